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
	"bufio"
	"net"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
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

// BenchmarkEgressKeepAlive measures one request and answer on a
// keep-alive loopback connection whose client writes are decided by
// l7_msg (the test list), with the egress gate on the wire and with the
// gate detached (what the gate adds: a socket-storage lookup and the
// TCP header's sequence check per segment of an enforced client socket),
// and a client outside any enforced cgroup for reference.
func BenchmarkEgressKeepAlive(b *testing.B) {
	for _, bc := range []string{"unenforced", "l7-gate", "l7-nogate"} {
		b.Run(bc, func(b *testing.B) {
			e := startEgress(b, egressLists, testListID, false)
			var c *net.TCPConn
			var br *bufio.Reader
			if bc == "unenforced" {
				nc, err := net.Dial("tcp", e.addr)
				if err != nil {
					b.Fatal(err)
				}
				b.Cleanup(func() { nc.Close() })
				c, br = nc.(*net.TCPConn), bufio.NewReader(nc)
			} else {
				if bc == "l7-nogate" {
					if err := e.d.gates[0].Detach(); err != nil {
						b.Skipf("detach the gate: %v", err)
					}
				}
				c, br = e.dial(b)
			}
			c.SetDeadline(time.Time{})
			b.ResetTimer()
			for range b.N {
				if resp, _ := roundTrip(b, c, br, allowedGet); resp.StatusCode != 200 {
					b.Fatalf("status %d", resp.StatusCode)
				}
			}
			b.StopTimer()
			cs, err := e.d.CountersDir(true)
			if err != nil {
				b.Fatal(err)
			}
			if bc != "unenforced" && cs[ReasonAllowed] < uint64(b.N) || bc == "unenforced" && cs[ReasonAllowed] != 0 || cs[ReasonUndecided] != 0 {
				b.Fatalf("counters %v after %d requests", cs, b.N)
			}
		})
	}
}

// BenchmarkGateNoState measures l7_gate on a segment of a socket without
// egress state (every socket of an attached cgroup but the enforced
// client ones), through BPF_PROG_TEST_RUN: the kernel's time per run.
func BenchmarkGateNoState(b *testing.B) {
	d := requireKernel(b)
	pkt := make([]byte, 14+20+20+64)
	pkt[12], pkt[13] = 0x08, 0x00 // IPv4
	ip := pkt[14:]
	ip[0], ip[9] = 0x45, 6 // TCP
	ip[2], ip[3] = 0, byte(len(ip))
	copy(ip[12:], []byte{127, 0, 0, 1, 127, 0, 0, 1})
	ip[20+12] = 5 << 4
	// The same harness on a program that only passes: the difference is
	// l7_gate's own cost.
	pass, err := ebpf.NewProgram(&ebpf.ProgramSpec{Type: ebpf.CGroupSKB, License: "GPL",
		Instructions: asm.Instructions{asm.Mov.Imm(asm.R0, 1), asm.Return()}})
	if err != nil {
		b.Fatal(err)
	}
	defer pass.Close()
	_, base, err := pass.Benchmark(pkt, b.N, nil)
	if err != nil {
		b.Skipf("test run: %v", err)
	}
	ret, per, err := d.objs.L7Gate.Benchmark(pkt, b.N, nil)
	if err != nil {
		b.Skipf("test run: %v", err)
	}
	if ret != 1 {
		b.Fatalf("l7_gate returned %d for a socket without state, want 1 (pass)", ret)
	}
	b.ReportMetric(float64(per.Nanoseconds()), "ns/run")
	b.ReportMetric(float64(base.Nanoseconds()), "ns/run-of-pass")
}
