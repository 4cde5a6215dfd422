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
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/palisade-dev/palisade/api/v1alpha1"
	"github.com/palisade-dev/palisade/internal/engine"
)

// randomLists returns n seeded random lists (ids 1000...).
func randomLists(r *rand.Rand, n int) map[engine.L7ID]engine.L7List {
	lists := map[engine.L7ID]engine.L7List{}
	for i := range n {
		var list engine.L7List
		for a := range 1 + r.IntN(4) {
			al := engine.L7Allow{Rule: engine.RuleID(100*i + 10*a + 1 + r.IntN(9)), Audit: r.IntN(5) == 0}
			switch r.IntN(8) {
			case 0:
			case 1:
				al.Rules = &v1alpha1.L7Rules{DNS: []v1alpha1.DNSRule{{MatchName: "x.com"}}}
			default:
				al.Rules = &v1alpha1.L7Rules{}
				for range 1 + r.IntN(5) {
					al.Rules.HTTP = append(al.Rules.HTTP, diffRule(r))
				}
			}
			list = append(list, al)
		}
		lists[engine.L7ID(1000+i)] = list
	}
	return lists
}

// TestEgressMatchesEngine decides seeded random requests against seeded
// random lists on the client's side, over real sockets: list i is bound
// to the client address 127.0.1.i; every request is written on a client
// connection from that address, and the kernel's verdict and deciding
// rule (from its event) must equal engine.MatchL7's. The server must read
// exactly the allowed requests (and, after a refusal behind them, the
// invalid line that stands in for the refused request).
// PALISADE_L7_SEED picks another seed.
func TestEgressMatchesEngine(t *testing.T) {
	seed := uint64(14)
	if s := os.Getenv("PALISADE_L7_SEED"); s != "" {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("PALISADE_L7_SEED: %v", err)
		}
		seed = v
	}
	const nlists, perList = 100, 500
	if testing.Short() {
		t.Skip("50,000 requests over sockets: not in -short")
	}
	r := rand.New(rand.NewPCG(seed, seed))
	lists := randomLists(r, nlists)
	e := startEgress(t, lists, 1000, true)
	e.d.SetAllowedEvents(true)
	tables, err := engine.CompileHTTP(lists)
	if err != nil {
		t.Fatal(err)
	}
	_, portStr, _ := net.SplitHostPort(e.addr)
	port, _ := strconv.Atoi(portStr)
	var binds []Binding
	for i := range nlists {
		binds = append(binds, Binding{Addr: netip.AddrFrom4([4]byte{127, 0, 1, byte(i)}), Port: uint16(port), List: engine.L7ID(1000 + i), Egress: true})
	}
	if err := e.d.Apply(3, tables, binds); err != nil {
		t.Fatal(err)
	}
	ev := events(t, e.d)
	counts := map[Reason]int{}
	start := time.Now()
	conns := 0
	for i := range nlists {
		id := engine.L7ID(1000 + i)
		src := &net.TCPAddr{IP: net.IPv4(127, 0, 1, byte(i))}
		var c *net.TCPConn
		var sent string // what the server should read of c
		passed := false
		open := func() {
			var nc net.Conn
			var err error
			e.inCgroup(t, func() { nc, err = (&net.Dialer{LocalAddr: src}).Dial("tcp4", e.addr) })
			if err != nil {
				t.Fatal(err)
			}
			c, sent, passed = nc.(*net.TCPConn), "", false
			conns++
		}
		closeConn := func() {
			if got := e.finish(t, c); got != sent {
				t.Fatalf("list %d: the server read %q, want %q", id, got, sent)
			}
			c = nil
		}
		for range perList {
			if c == nil {
				open()
			}
			q, head := diffRequest(r)
			if _, err := io.WriteString(c, head); err != nil {
				t.Fatalf("write %q: %v", head, err)
			}
			x := nextEvent(t, ev)
			want, wantRule := reference(lists[id], q)
			switch {
			case unsafeTarget(q.Path):
				want, wantRule = ReasonTarget, 0
			case q.Method == "CONNECT":
				want, wantRule = ReasonUpgrade, 0
			}
			if x.Reason != want || x.Rule != wantRule || x.Generation != 3 || (x.List != uint32(id) && x.Reason != ReasonTarget) {
				t.Fatalf("seed %d list %d %+v\n%q: kernel %v, engine %v rule %d", seed, id, lists[id], head, x, want, wantRule)
			}
			counts[want]++
			if want == ReasonAllowed || want == ReasonAudit {
				sent += head
				passed = true
				continue
			}
			wantStatus := uint16(403)
			if passed {
				// the server has not answered (it answers nothing): the
				// request is replaced by an invalid line, passed in order
				wantStatus = 400
				sent += "XXXXXXXXXXXXXXXX\r\n"
			}
			if x.Status != wantStatus {
				t.Fatalf("%q: status %d, want %d", head, x.Status, wantStatus)
			}
			closeConn()
		}
		if c != nil {
			closeConn()
		}
	}
	t.Logf("seed %d: %d lists, %d requests on %d connections in %v: %v", seed, nlists, nlists*perList, conns, time.Since(start).Round(time.Millisecond), counts)
	if testing.Verbose() {
		cs, _ := e.d.CountersDir(true)
		t.Logf("egress counters: %v", fmt.Sprint(cs))
	}
}
