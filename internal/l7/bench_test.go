/*
Copyright 2026 The Palisade Authors.

Licensed under the Apache License, Version 2.0 (the "License");
you may not use this file except in compliance with the License.
You may obtain a copy of the License at

    http://www.apache.org/licenses/LICENSE-2.0

Unless required by applicable law or agreed to in writing, software
distributed under the License is distributed on an "AS IS" BASIS,
WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
See the License for the specific language governing permissions and
limitations under the License.
*/

package l7

import (
	"testing"
)

// BenchmarkKeepAlive measures one request and answer on a keep-alive
// loopback connection to the test server, without and with the kernel
// deciding each request (the test list: 5 HTTP rules in 2 allows).
func BenchmarkKeepAlive(b *testing.B) {
	req := "GET /public/bench HTTP/1.1\r\nHost: www.example.com\r\nUser-Agent: bench\r\nAccept: */*\r\n\r\n"
	for _, bc := range []struct {
		name    string
		enforce bool
	}{{"unenforced", false}, {"l7", true}} {
		b.Run(bc.name, func(b *testing.B) {
			s := startServerWith(b, "tcp4", "127.0.0.1", bc.enforce)
			conn, br := dial(b, s.addr)
			b.ResetTimer()
			for range b.N {
				if resp, _ := roundTrip(b, conn, br, req); resp.StatusCode != 200 {
					b.Fatalf("status %d", resp.StatusCode)
				}
			}
			b.StopTimer()
			c, err := s.d.Counters()
			if err != nil {
				b.Fatal(err)
			}
			if bc.enforce && c[ReasonAllowed] < uint64(b.N) || !bc.enforce && c[ReasonAllowed] != 0 {
				b.Fatalf("counters %v after %d requests", c, b.N)
			}
		})
	}
}
