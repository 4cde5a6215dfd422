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
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// heldAfter is how long a request may go without an answer, the client
// sending nothing more, before it counts as held: the server answers in
// microseconds on loopback, so this is a correctness bound, not a speed.
const heldAfter = 2 * time.Second

// heldConn runs one keep-alive connection: it writes each request of
// reqs (each a list of writes) and reads its answer. It returns how many
// requests it sent and whether the last was held: not answered within
// heldAfter, until the client shut its write side (then the answer must
// come, and the connection ends).
func heldConn(addr string, reqs [][]string) (sent int, held bool, err error) {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return 0, false, err
	}
	defer c.Close()
	br := bufio.NewReader(c)
	for i, writes := range reqs {
		for _, w := range writes {
			if _, err := io.WriteString(c, w); err != nil {
				return i, false, fmt.Errorf("request %d: write: %v", i+1, err)
			}
		}
		c.SetReadDeadline(time.Now().Add(heldAfter))
		resp, err := http.ReadResponse(br, nil)
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			// The client's FIN releases a held request.
			c.(*net.TCPConn).CloseWrite()
			c.SetReadDeadline(time.Now().Add(30 * time.Second))
			if resp, err = http.ReadResponse(br, nil); err != nil {
				return i + 1, true, fmt.Errorf("request %d: held, then no answer after the FIN: %v", i+1, err)
			}
			resp.Body.Close()
			return i + 1, true, nil
		}
		if err != nil {
			return i + 1, false, fmt.Errorf("request %d: %v", i+1, err)
		}
		io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return i + 1, false, fmt.Errorf("request %d: %d, want 200", i+1, resp.StatusCode)
		}
	}
	return len(reqs), false, nil
}

// TestTrafficNotHeld: on keep-alive connections every request is
// answered while the client waits, without its next segment. A request
// was held until the client's next segment or FIN when the strparser
// read again before the server had read a message passed earlier (see
// to_server in bpf/l7/l7.c). Before the fix, with 300 and 6,000
// connections: a Content-Length body written after its head, then a
// shorter request, held 37 of 300; a request written right after
// connecting, then shorter ones, held 15 of 6,000; 1 MiB bodies on 8
// keep-alive connections held 7 (the body's tail). PALISADE_L7_HELD_CONNS sets
// the connections of the first case (the second has 20 times as many).
func TestTrafficNotHeld(t *testing.T) {
	s := startServer(t)
	conns := 300
	if v := os.Getenv("PALISADE_L7_HELD_CONNS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 {
			t.Fatalf("PALISADE_L7_HELD_CONNS=%q: want a positive number", v)
		}
		conns = n
	}
	long := "GET /public/" + strings.Repeat("a", 150) + " HTTP/1.1\r\nHost: x\r\n\r\n"
	short := "GET /public/b HTTP/1.1\r\nHost: x\r\n\r\n"
	post := "POST /api/v1/items HTTP/1.1\r\nHost: x\r\nX-Token: secret\r\nContent-Length: 5\r\n\r\n"
	upload := "POST /api/v1/items HTTP/1.1\r\nHost: x\r\nX-Token: secret\r\nContent-Length: 1048576\r\n\r\n" + strings.Repeat("x", 1<<20)
	cases := []struct {
		name  string
		conns int
		reqs  [][]string
	}{
		{"body in its own write, then a shorter request", conns, [][]string{{post, "hello"}, {short}}},
		{"a request, then a shorter one", 20 * conns, [][]string{{long}, {short}, {short}}},
		{"1 MiB bodies, then a short request", 8, [][]string{{upload}, {upload}, {upload}, {upload}, {short}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			const workers = 8
			var mu sync.Mutex
			held, requests := 0, 0
			var wg sync.WaitGroup
			for w := range workers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := w; i < tc.conns; i += workers {
						n, h, err := heldConn(s.addr, tc.reqs)
						mu.Lock()
						requests += n
						if h {
							held++
						}
						mu.Unlock()
						if err != nil {
							t.Error(err)
							return
						}
					}
				}()
			}
			wg.Wait()
			cnt, _ := s.d.Counters()
			if held > 0 {
				t.Errorf("%d of %d requests on %d connections held until the client's FIN; counters %v", held, requests, tc.conns, cnt)
			}
			t.Logf("%d connections, %d requests, %d held; counters %v", tc.conns, requests, held, cnt)
		})
	}
}
