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
	"math/rand/v2"
	"net/netip"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cilium/ebpf"

	"github.com/palisade-dev/palisade/api/v1alpha1"
	l7bpf "github.com/palisade-dev/palisade/bpf/l7"
	"github.com/palisade-dev/palisade/internal/engine"
	"github.com/palisade-dev/palisade/internal/sockl7"
)

// enforced is a server (startServer) with its state pinned, and the
// tables and bindings last applied.
type enforced struct {
	*server
	dir    string
	tables *engine.HTTPTables
	binds  []Binding
	gen    uint64
}

func startEnforced(t *testing.T) *enforced {
	t.Helper()
	s := startServer(t)
	dir := tempPinDir(t)
	if err := s.d.Pin(dir); err != nil {
		t.Fatal(err)
	}
	tables, err := engine.CompileHTTP(map[engine.L7ID]engine.L7List{testListID: testList})
	if err != nil {
		t.Fatal(err)
	}
	ap, err := netip.ParseAddrPort(s.addr)
	if err != nil {
		t.Fatal(err)
	}
	return &enforced{server: s, dir: dir, tables: tables, gen: 1,
		binds: []Binding{{Addr: ap.Addr(), Port: ap.Port(), List: testListID}}}
}

// status sends GET path on a new connection and returns the status.
func (e *enforced) status(t *testing.T, path string) int {
	t.Helper()
	c, br := dial(t, e.addr)
	defer c.Close()
	resp, _ := roundTrip(t, c, br, "GET "+path+" HTTP/1.1\r\nHost: x\r\nUser-Agent: readback-test\r\n\r\n")
	return resp.StatusCode
}

// compare reads the state back and returns the drifts.
func (e *enforced) compare(t *testing.T) []Drift {
	t.Helper()
	ds, err := e.d.Compare(e.gen, e.tables, e.binds)
	if err != nil {
		t.Fatalf("compare: %v", err)
	}
	return ds
}

// repair applies the same tables and bindings as a new generation, as
// the agent repairs a drift.
func (e *enforced) repair(t *testing.T) {
	t.Helper()
	e.gen++
	if err := e.d.Apply(e.gen, e.tables, e.binds); err != nil {
		t.Fatalf("apply generation %d: %v", e.gen, err)
	}
}

// pinned opens a pinned map as another process (bpftool) would.
func pinned(t *testing.T, dir, name string) *ebpf.Map {
	t.Helper()
	m, err := ebpf.LoadPinnedMap(filepath.Join(dir, name), nil)
	if err != nil {
		t.Fatalf("open pinned %s: %v", name, err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

// activeSlot reads l7_slot through its pin.
func activeSlot(t *testing.T, dir string) uint32 {
	t.Helper()
	var a l7bpf.L7L7Active
	if err := pinned(t, dir, "l7_slot").Lookup(uint32(0), &a); err != nil {
		t.Fatal(err)
	}
	return a.Slot
}

// activeList reads the test list's record in the active slot.
func activeList(t *testing.T, dir string) (l7bpf.L7L7ListKey, l7bpf.L7L7List) {
	t.Helper()
	k := l7bpf.L7L7ListKey{Slot: activeSlot(t, dir), List: testListID}
	var l l7bpf.L7L7List
	if err := pinned(t, dir, "l7_lists").Lookup(k, &l); err != nil {
		t.Fatal(err)
	}
	return k, l
}

func update(t *testing.T, m *ebpf.Map, k, v any) {
	t.Helper()
	if err := m.Update(k, v, ebpf.UpdateAny); err != nil {
		t.Fatalf("tamper: %v", err)
	}
}

// TestReadbackMatchesApply: what Apply wrote reads back without a drift,
// generation after generation, and a read-back for another generation
// than the kernel's names it.
func TestReadbackMatchesApply(t *testing.T) {
	e := startEnforced(t)
	if ds := e.compare(t); len(ds) != 0 {
		t.Fatalf("after Apply: drifts %v", ds)
	}
	// A second list with header requirements and another binding.
	other := engine.L7List{{Rule: 21, Rules: rules(
		v1alpha1.HTTPRule{Method: "GET", Path: "/x/[a-z]+", Headers: []v1alpha1.HTTPHeader{"X-A: 1", "X-B"}},
		v1alpha1.HTTPRule{Host: "api.example.com"},
	)}, {Rule: 22, Audit: true}}
	tables, err := engine.CompileHTTP(map[engine.L7ID]engine.L7List{testListID: testList, 9: other})
	if err != nil {
		t.Fatal(err)
	}
	e.tables = tables
	e.binds = append(e.binds, Binding{Addr: netip.MustParseAddr("::1"), Port: 81, Identity: 5, List: 9}, Binding{Addr: netip.IPv4Unspecified(), Port: 82, List: 9},
		Binding{Addr: netip.MustParseAddr("10.0.0.1"), Port: 80, Identity: 6, List: 9, Egress: true})
	for range 3 {
		e.repair(t)
		if ds := e.compare(t); len(ds) != 0 {
			t.Fatalf("generation %d: drifts %v", e.gen, ds)
		}
	}
	ds, err := e.d.Compare(e.gen+7, e.tables, e.binds)
	if err != nil {
		t.Fatal(err)
	}
	if len(ds) != 1 || ds[0].Map != "l7_gens" {
		t.Fatalf("compare with generation %d: %v, want one l7_gens drift", e.gen+7, ds)
	}
	t.Logf("%v", ds[0])

	// The egress side and the event flags: an egress binding deleted and
	// allowed events switched on behind the datapath's back.
	slot := activeSlot(t, e.dir)
	eb := pinned(t, e.dir, "l7_ebinds")
	k := sockl7.BindKey{Slot: slot, Identity: 6, Port: 80, Family: 4, Addr: [16]byte{10, 0, 0, 1}}
	if err := eb.Delete(k); err != nil {
		t.Fatalf("delete the egress binding: %v", err)
	}
	update(t, pinned(t, e.dir, "l7_evcfg"), slot, uint32(1))
	ds = e.compare(t)
	var maps []string
	for _, d := range ds {
		maps = append(maps, d.Map)
	}
	if strings.Join(maps, ",") != "l7_evcfg,l7_ebinds" {
		t.Fatalf("drifts %v, want l7_evcfg and l7_ebinds", ds)
	}
	t.Logf("%v; %v", ds[0], ds[1])
	e.repair(t)
	if ds := e.compare(t); len(ds) != 0 {
		t.Fatalf("after the repair: drifts %v", ds)
	}
}

// TestReadbackTamper tampers with each kind of pinned L7 state, as
// someone with bpftool could: the tamper changes what the kernel decides
// (shown on real traffic where it does), the read-back names it, and a
// new generation of the same tables repairs it: the read-back is clean
// again, also after further generations (an entry the tamper added is
// not carried into a later generation of its slot).
func TestReadbackTamper(t *testing.T) {
	cases := []struct {
		name string
		// tamper changes the pinned state; bites says which request it
		// lets through, "" when it does not change a decision on this
		// server.
		tamper func(t *testing.T, dir string)
		bites  string
		want   string // the map named in the drift
	}{
		{"allow row allows everything", func(t *testing.T, dir string) {
			_, l := activeList(t, dir)
			row := activeSlot(t, dir)*maxAllowRows + l.Allows
			var a l7bpf.L7L7Allow
			m := pinned(t, dir, "l7_allows")
			if err := m.Lookup(row, &a); err != nil {
				t.Fatal(err)
			}
			a.Any = 1
			update(t, m, row, a)
		}, "/private/any", "l7_allows"},
		{"binding deleted", func(t *testing.T, dir string) {
			m := pinned(t, dir, "l7_binds")
			var k sockl7.BindKey
			var v l7bpf.L7L7Bind
			slot := activeSlot(t, dir)
			it := m.Iterate()
			var keys []sockl7.BindKey
			for it.Next(&k, &v) {
				if k.Slot == slot {
					keys = append(keys, k)
				}
			}
			for _, k := range keys {
				if err := m.Delete(k); err != nil {
					t.Fatal(err)
				}
			}
		}, "/private/unbound", "l7_binds"},
		{"path transition", func(t *testing.T, dir string) {
			// Every transition of the path automaton's start state leads
			// to state 1: a different automaton.
			_, l := activeList(t, dir)
			m := pinned(t, dir, "l7_next")
			for c := range l.Path.Nclasses {
				update(t, m, activeSlot(t, dir)*MaxNext+l.Path.Next+c, uint32(1))
			}
		}, "", "l7_next"},
		{"accept mask", func(t *testing.T, dir string) {
			_, l := activeList(t, dir)
			m := pinned(t, dir, "l7_accept")
			all := l7bpf.L7L7Mask{W: [4]uint64{^uint64(0), ^uint64(0), ^uint64(0), ^uint64(0)}}
			// Every state of the path automaton (the host automaton's
			// rows follow them) accepts every rule's path.
			for i := l.Path.Accept; i < l.Host.Accept; i++ {
				update(t, m, activeSlot(t, dir)*MaxStates+i, all)
			}
		}, "/private/accept", "l7_accept"},
		{"method mask", func(t *testing.T, dir string) {
			k, l := activeList(t, dir)
			l.Methods[1] = l7bpf.L7L7Mask{W: [4]uint64{^uint64(0)}}
			l.PathAny = l7bpf.L7L7Mask{W: [4]uint64{^uint64(0)}}
			update(t, pinned(t, dir, "l7_lists"), k, &l)
		}, "/private/method", "l7_lists"},
		{"extra header key", func(t *testing.T, dir string) {
			k := l7bpf.L7L7HdrKey{Slot: activeSlot(t, dir), List: testListID, Name: 0x1234}
			update(t, pinned(t, dir, "l7_hdrs"), k, uint32(0))
		}, "", "l7_hdrs"},
		{"extra list and binding", func(t *testing.T, dir string) {
			k, l := activeList(t, dir)
			k.List = 99
			update(t, pinned(t, dir, "l7_lists"), k, &l)
			bk := sockl7.BindKey{Slot: k.Slot, Identity: 3, Port: 1, Family: 4}
			update(t, pinned(t, dir, "l7_binds"), bk, l7bpf.L7L7Bind{List: 99})
		}, "", "l7_lists"},
		{"port no longer enforced", func(t *testing.T, dir string) {
			m := pinned(t, dir, "l7_ports")
			var k sockl7.PortKey
			var v uint32
			var keys []sockl7.PortKey
			it := m.Iterate()
			for it.Next(&k, &v) {
				keys = append(keys, k)
			}
			for _, k := range keys {
				if err := m.Delete(k); err != nil {
					t.Fatal(err)
				}
			}
		}, "/private/port", "l7_ports"},
		{"slot switched", func(t *testing.T, dir string) {
			update(t, pinned(t, dir, "l7_slot"), uint32(0), l7bpf.L7L7Active{Slot: activeSlot(t, dir) ^ 1})
		}, "/private/slot", "l7_slot"},
		{"hash seed", func(t *testing.T, dir string) {
			m := pinned(t, dir, "l7_gens")
			slot := activeSlot(t, dir)
			var c l7bpf.L7L7Config
			if err := m.Lookup(slot, &c); err != nil {
				t.Fatal(err)
			}
			c.Seed++
			update(t, m, slot, c)
		}, "", "l7_hdrs"},
	}
	for _, tc := range cases {
		t.Run(strings.ReplaceAll(tc.name, " ", "_"), func(t *testing.T) {
			e := startEnforced(t)
			e.repair(t) // a second generation: both slots have been written
			if code := e.status(t, "/private/before"); code != 403 {
				t.Fatalf("before the tamper: GET /private/before: %d, want 403", code)
			}
			tc.tamper(t, e.dir)
			if tc.bites != "" {
				if code := e.status(t, tc.bites); code != 200 {
					t.Fatalf("the tamper does not bite: GET %s: %d, want 200 (passed)", tc.bites, code)
				}
			}
			ds := e.compare(t)
			if len(ds) == 0 {
				t.Fatal("the read-back found no drift")
			}
			named := false
			for _, d := range ds {
				named = named || d.Map == tc.want
			}
			if !named {
				t.Fatalf("drifts %v, want one in %s", ds, tc.want)
			}
			t.Logf("%d drifts, first: %v", len(ds), ds[0])
			e.repair(t)
			for i := range 3 {
				if ds := e.compare(t); len(ds) != 0 {
					t.Fatalf("%d generations after the repair: drifts %v", i, ds)
				}
				e.repair(t)
			}
			if code := e.status(t, "/private/after"); code != 403 {
				t.Errorf("after the repair: GET /private/after: %d, want 403", code)
			}
			if code := e.status(t, "/public/after"); code != 200 {
				t.Errorf("after the repair: GET /public/after: %d, want 200", code)
			}
			for _, p := range e.handled() {
				if strings.HasPrefix(p, "GET /private/") && p != "GET "+tc.bites {
					t.Errorf("the server handled %s", p)
				}
			}
		})
	}
}

// TestReadbackPeers: ComparePeers finds a changed, a missing and an
// added identity; SetPeer and DeletePeer repair them.
func TestReadbackPeers(t *testing.T) {
	d := requireKernel(t)
	want := map[netip.Prefix]uint32{}
	for i := range 20 {
		p := netip.MustParsePrefix(fmt.Sprintf("10.1.%d.0/24", i))
		want[p] = uint32(100 + i)
	}
	want[netip.MustParsePrefix("fd00::/64")] = 7
	want[netip.MustParsePrefix("0.0.0.0/0")] = 2
	for p, id := range want {
		if err := d.SetPeer(p, id); err != nil {
			t.Fatal(err)
		}
	}
	if ds, extra, err := d.ComparePeers(want); err != nil || len(ds) != 0 || len(extra) != 0 {
		t.Fatalf("ComparePeers after SetPeer: %v %v %v", ds, extra, err)
	}
	changed, gone, added := netip.MustParsePrefix("10.1.3.0/24"), netip.MustParsePrefix("fd00::/64"), netip.MustParsePrefix("192.0.2.0/28")
	if err := d.objs.L7Peers.Update(sockl7.PeerKeyOf(changed), uint32(1), ebpf.UpdateAny); err != nil {
		t.Fatal(err)
	}
	if err := d.objs.L7Peers.Delete(sockl7.PeerKeyOf(gone)); err != nil {
		t.Fatal(err)
	}
	if err := d.objs.L7Peers.Update(sockl7.PeerKeyOf(added), uint32(4), ebpf.UpdateAny); err != nil {
		t.Fatal(err)
	}
	ds, extra, err := d.ComparePeers(want)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, d := range ds {
		got = append(got, d.String())
	}
	wantDrifts := []string{
		"l7_peers 10.1.3.0/24: want identity 103, found identity 1",
		"l7_peers fd00::/64: want identity 7, found absent",
		"l7_peers 192.0.2.0/28: want absent, found identity 4",
	}
	if strings.Join(got, "\n") != strings.Join(wantDrifts, "\n") {
		t.Fatalf("drifts\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(wantDrifts, "\n"))
	}
	if len(extra) != 1 || extra[0] != added {
		t.Fatalf("extra %v, want [%v]", extra, added)
	}
	for _, p := range []netip.Prefix{changed, gone} {
		if err := d.SetPeer(p, want[p]); err != nil {
			t.Fatal(err)
		}
	}
	if err := d.DeletePeer(added); err != nil {
		t.Fatal(err)
	}
	if ds, extra, err := d.ComparePeers(want); err != nil || len(ds) != 0 || len(extra) != 0 {
		t.Fatalf("ComparePeers after the repair: %v %v %v", ds, extra, err)
	}
}

// BenchmarkReadback reads back a generation of 200 seeded random lists
// (one binding each), as every verify pass does; it reports the rows
// read.
func BenchmarkReadback(b *testing.B) {
	d := requireKernel(b)
	r := rand.New(rand.NewPCG(1, 2))
	tables, err := engine.CompileHTTP(randomLists(r, 200))
	if err != nil {
		b.Fatal(err)
	}
	var binds []Binding
	rows := 0
	for id, l := range tables.Lists {
		binds = append(binds, Binding{Addr: netip.AddrFrom4([4]byte{10, 2, byte(id >> 8), byte(id)}), Port: 80, List: id})
		rows += 2 + len(l.Path.Next) + len(l.Path.Accept) + len(l.Host.Next) + len(l.Host.Accept) + len(l.Allows) + len(l.Headers)
	}
	if err := d.Apply(1, tables, binds); err != nil {
		b.Fatal(err)
	}
	// CPU time as well as wall time: on a shared machine the wall time
	// is mostly waiting.
	var before, after syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &before)
	for b.Loop() {
		ds, err := d.Compare(1, tables, binds)
		if err != nil || len(ds) != 0 {
			b.Fatalf("compare: %v %v", ds, err)
		}
	}
	syscall.Getrusage(syscall.RUSAGE_SELF, &after)
	cpu := time.Duration(after.Utime.Nano() + after.Stime.Nano() - before.Utime.Nano() - before.Stime.Nano())
	b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N), "cpu-ns/op")
	b.ReportMetric(float64(rows), "rows")
}

// TestReadbackLinks: Compare reads the cgroup links back: a gate link
// detached from its cgroup is a drift (a cgroup whose client sockets are
// no longer gated), and so is the cgroup's sockops without a gate.
func TestReadbackLinks(t *testing.T) {
	e := startEgress(t, egressLists, testListID, false)
	tables, err := engine.CompileHTTP(egressLists)
	if err != nil {
		t.Fatal(err)
	}
	ap := netip.MustParseAddrPort(e.addr)
	binds := []Binding{{Addr: ap.Addr(), Port: ap.Port(), List: testListID, Egress: true}}
	if ds, err := e.d.Compare(1, tables, binds); err != nil || len(ds) != 0 {
		t.Fatalf("Compare: %v, %v; want no drift", ds, err)
	}
	if err := e.d.gates[0].Detach(); err != nil {
		t.Skipf("detach the gate link: %v", err)
	}
	ds, err := e.d.Compare(1, tables, binds)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, d := range ds {
		got = append(got, d.String())
	}
	want := []string{"l7_gate_link 0: want attached, found detached", fmt.Sprintf("l7_gate_link cgroup %d: want attached, found absent", cgroupInode(t, e.cg))}
	if !slices.Equal(got, want) {
		t.Fatalf("drifts %q, want %q", got, want)
	}
	if e.d.HasCgroup(e.cg) {
		t.Fatal("HasCgroup with the gate detached")
	}
}

func cgroupInode(t *testing.T, path string) uint64 {
	t.Helper()
	var st syscall.Stat_t
	if err := syscall.Stat(path, &st); err != nil {
		t.Fatal(err)
	}
	return st.Ino
}
