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

package kafka

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// heldAfter is how long a request may go without an answer, the client
// sending nothing more, before it counts as held: the broker answers in
// microseconds to a millisecond on loopback, so this is a correctness
// bound, not a speed.
const heldAfter = 2 * time.Second

// readAnswer reads one response frame and checks its correlation ID.
func readAnswer(c net.Conn, corr int32) error {
	var hdr [8]byte
	if _, err := io.ReadFull(c, hdr[:]); err != nil {
		return err
	}
	n := int32(binary.BigEndian.Uint32(hdr[:4]))
	if n < 4 || n > 64<<20 {
		return fmt.Errorf("response size %d", n)
	}
	if got := int32(binary.BigEndian.Uint32(hdr[4:])); got != corr {
		return fmt.Errorf("response correlation ID %d, want %d", got, corr)
	}
	_, err := io.CopyN(io.Discard, c, int64(n-4))
	return err
}

// heldKafkaConn runs one keep-alive connection: it writes each request
// of reqs (each a list of writes of one frame, correlation ID its index
// plus one) and reads its answer. It returns how many requests it sent
// and whether the last was held: not answered within heldAfter, until
// the client shut its write side (then the answer must come).
func heldKafkaConn(addr string, reqs [][][]byte) (sent int, held bool, err error) {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return 0, false, err
	}
	defer c.Close()
	for i, writes := range reqs {
		for _, w := range writes {
			if _, err := c.Write(w); err != nil {
				return i, false, fmt.Errorf("request %d: write: %v", i+1, err)
			}
		}
		corr := int32(i + 1)
		c.SetReadDeadline(time.Now().Add(heldAfter))
		err := readAnswer(c, corr)
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			// The client's FIN releases a held request, but kfake
			// closes a connection whose client shut its write side,
			// often before it answers: an answer or an EOF both end
			// a held request. Anything else (a partial read before
			// the deadline, a wrong frame) fails.
			c.(*net.TCPConn).CloseWrite()
			c.SetReadDeadline(time.Now().Add(30 * time.Second))
			if err := readAnswer(c, corr); err != nil && !errors.Is(err, io.EOF) {
				return i + 1, true, fmt.Errorf("request %d: held, then after the FIN: %v", i+1, err)
			}
			return i + 1, true, nil
		}
		if err != nil {
			return i + 1, false, fmt.Errorf("request %d: %v", i+1, err)
		}
	}
	return len(reqs), false, nil
}

// TestFramesNotHeld: on keep-alive connections every request the policy
// allows is answered by the broker while the client waits, without its
// next segment. A request was held until the client's next segment or
// FIN when the strparser read again before the broker had read a frame
// passed earlier (see to_server in bpf/kafka/kafka.c; the HTTP datapath's
// TestTrafficNotHeld in internal/l7). PALISADE_KAFKA_HELD_CONNS sets the
// connections of the first case (the second has 5 times as many).
func TestFramesNotHeld(t *testing.T) {
	b := startBroker(t, ordersOnly())
	conns := 2000
	if v := os.Getenv("PALISADE_KAFKA_HELD_CONNS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 {
			t.Fatalf("PALISADE_KAFKA_HELD_CONNS=%q: want a positive number", v)
		}
		conns = n
	}
	longID, shortID := strings.Repeat("c", 150), "c"
	apiVersions := func(id string, corr int32) []byte {
		r := kmsg.NewPtrApiVersionsRequest()
		r.Version = 2
		return frame(r, &id, corr)
	}
	// produce is a Produce v7 request to "orders" (rule 10) whose
	// records are size bytes the broker refuses as a batch: it answers
	// with a partition error, which is all this test needs.
	produce := func(size int, corr int32) []byte {
		r := kmsg.NewPtrProduceRequest()
		r.Version = 7
		r.Acks = 1
		r.TimeoutMillis = 1000
		rt := kmsg.NewProduceRequestTopic()
		rt.Topic = "orders"
		p := kmsg.NewProduceRequestTopicPartition()
		p.Records = make([]byte, size)
		rt.Partitions = append(rt.Partitions, p)
		r.Topics = append(r.Topics, rt)
		return frame(r, &shortID, corr)
	}
	split := func(f []byte, at int) [][]byte { return [][]byte{f[:at], f[at:]} }
	one := func(f []byte) [][]byte { return [][]byte{f} }
	cases := []struct {
		name  string
		conns int
		reqs  [][][]byte
	}{
		{"a frame's tail in its own write, then a shorter frame", conns,
			[][][]byte{split(produce(200, 1), 60), one(apiVersions(shortID, 2))}},
		{"a frame, then shorter ones", 5 * conns,
			[][][]byte{one(apiVersions(longID, 1)), one(apiVersions(shortID, 2)), one(apiVersions(shortID, 3))}},
		// A large frame first on a new connection: longer than the
		// receive buffer the connection starts with (tcp_rmem[1],
		// 128 KiB), which the strparser refused (EMSGSIZE) before
		// kafka_sockops set SO_RCVBUF: the frame stalled undecided.
		{"a 128 KiB first frame, then a short one", 8,
			[][][]byte{one(produce(128<<10, 1)), one(apiVersions(shortID, 2))}},
		{"a 512 KiB first frame, more, then a short one", 8,
			[][][]byte{one(produce(512<<10, 1)), one(produce(512<<10, 2)), one(apiVersions(shortID, 3))}},
		{"a frame near FrameMax first, then a short one", 8,
			[][][]byte{one(produce(FrameMax-200, 1)), one(apiVersions(shortID, 2))}},
		{"a short frame, 512 KiB frames, then a short one", 8,
			[][][]byte{one(apiVersions(shortID, 1)), one(produce(512<<10, 2)), one(produce(512<<10, 3)), one(produce(512<<10, 4)), one(produce(512<<10, 5)), one(apiVersions(shortID, 6))}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before, err := b.d.Counters()
			if err != nil {
				t.Fatal(err)
			}
			const workers = 8
			var mu sync.Mutex
			held, requests := 0, 0
			var wg sync.WaitGroup
			for w := range workers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := w; i < tc.conns; i += workers {
						n, h, err := heldKafkaConn(b.addr, tc.reqs)
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
			cnt, err := b.d.Counters()
			if err != nil {
				t.Fatal(err)
			}
			// Every request was allowed: none refused, none undelivered.
			for r, n := range cnt {
				if d := n - before[r]; d != 0 && r != ReasonAllowed && r != ReasonSockets {
					t.Errorf("counter %v grew by %d, want only allowed and sockets", r, d)
				}
			}
			if held > 0 {
				t.Errorf("%d of %d requests on %d connections held until the client's FIN; counters %v", held, requests, tc.conns, cnt)
			}
			t.Logf("%d connections, %d requests, %d held; counters %v", tc.conns, requests, held, cnt)
		})
	}
}
