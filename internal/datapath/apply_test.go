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

package datapath

import (
	"context"
	"errors"
	"math/rand/v2"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/cilium/ebpf"

	"github.com/palisade-dev/palisade/bpf"
	"github.com/palisade-dev/palisade/internal/engine"
)

func TestReadBackAndDiff(t *testing.T) {
	d := openTest(t, nil)
	r := rand.New(rand.NewPCG(7, 7))
	for i := 0; i < 20; i++ {
		s := newGen(r).state()
		if err := d.Apply(context.Background(), s); err != nil {
			t.Fatal(err)
		}
		got, gen, err := d.Read()
		if err != nil {
			t.Fatal(err)
		}
		if gen != uint64(i+1) {
			t.Fatalf("read generation %d, want %d", gen, i+1)
		}
		if drift := Diff(s, got); len(drift) != 0 {
			t.Fatalf("state %d read back with %d differences, first: %v", i, len(drift), drift[0])
		}
	}

	// Drift: change one entry of the active policy map behind the agent's back.
	want := tableState()
	if err := d.Apply(context.Background(), want); err != nil {
		t.Fatal(err)
	}
	pol := activeInner(t, d, d.objs.GenPolicy)
	k := engine.PolicyKey{PolicyID: 256, Direction: engine.Egress, Identity: 257, Proto: engine.ProtoTCP, Port: 80, PrefixLen: 24}
	if err := pol.Update(policyKey(k), policyValue(engine.PolicyEntry{Flags: engine.FlagDeny, DenyRule: 9}), ebpf.UpdateExist); err != nil {
		t.Fatal(err)
	}
	lpm := activeInner(t, d, d.objs.GenPolicyLpm)
	gone := engine.PolicyKey{PolicyID: 256, Direction: engine.Egress, Identity: 257, Proto: engine.ProtoSCTP, Port: 1000, PrefixLen: 22}
	if err := lpm.Delete(policyLPMKey(gone)); err != nil {
		t.Fatal(err)
	}
	ep := activeInner(t, d, d.objs.GenEndpoints)
	if err := ep.Delete(addrKey(addr("10.0.0.3"))); err != nil {
		t.Fatal(err)
	}
	got, _, err := d.Read()
	if err != nil {
		t.Fatal(err)
	}
	drift := Diff(want, got)
	if len(drift) != 3 || drift[0].Map != "endpoints" || drift[0].Got != "" ||
		drift[1].Map != "policy" || drift[2].Map != "policy" {
		t.Fatalf("drift = %v, want the removed endpoint, the changed and the removed policy entry", drift)
	}
	for _, dr := range drift[1:] {
		switch dr.Key {
		case keyString(k):
			if dr.Got == "" || dr.Want == "" {
				t.Errorf("changed entry reported as %v", dr)
			}
		case keyString(gone):
			if dr.Got != "" {
				t.Errorf("removed entry reported as %v", dr)
			}
		default:
			t.Errorf("unexpected drift %v", dr)
		}
	}
}

func keyString(k engine.PolicyKey) string {
	return Diff(&engine.MapState{Policy: map[engine.PolicyKey]engine.PolicyEntry{k: {}}}, &engine.MapState{})[0].Key
}

// activeInner opens the inner map that packets read now.
func activeInner(t *testing.T, d *Datapath, outer *ebpf.Map) *ebpf.Map {
	t.Helper()
	var a bpf.PalisadeActiveSlot
	if err := d.objs.Active.Lookup(uint32(0), &a); err != nil {
		t.Fatal(err)
	}
	var id uint32
	if err := outer.Lookup(a.Slot, &id); err != nil {
		t.Fatal(err)
	}
	m, err := ebpf.NewMapFromID(ebpf.MapID(id))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

func TestCapacityFailsClosed(t *testing.T) {
	d := openTest(t, &Options{Limits: Limits{Policy: 10, IPCache: 6, Endpoints: 5}})
	// tableState fits the limits exactly; one more entry in any map is refused.
	if err := d.Apply(context.Background(), tableState()); err != nil {
		t.Fatalf("Apply within limits: %v", err)
	}
	before, gen, err := d.Read()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		mutate func(s *engine.MapState)
		want   string
	}{
		{"policy", func(s *engine.MapState) {
			s.Policy[engine.PolicyKey{PolicyID: 1, Proto: 6, Port: 1, PrefixLen: 24}] = engine.PolicyEntry{Flags: engine.FlagAllow}
		}, "policy"},
		{"ipcache", func(s *engine.MapState) { s.IPCache[netip.MustParsePrefix("10.9.0.0/16")] = 300 }, "ipcache"},
		{"endpoints", func(s *engine.MapState) {
			s.Endpoints[addr("10.0.0.4")] = engine.EndpointEntry{}
		}, "endpoints"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := tableState()
			tc.mutate(s)
			err := d.Apply(context.Background(), s)
			var ce *CapacityError
			if !errors.As(err, &ce) || ce.Map != tc.want {
				t.Fatalf("Apply over the %s limit: %v, want a CapacityError for %s", tc.want, err, tc.want)
			}
			assertUnchanged(t, d, before, gen)
		})
	}
	// Bad input is refused whole too.
	s := tableState()
	s.IPCache[netip.PrefixFrom(addr("10.1.2.3"), 8)] = 5
	if err := d.Apply(context.Background(), s); err == nil {
		t.Fatal("non-canonical prefix accepted")
	}
	assertUnchanged(t, d, before, gen)
	s = tableState()
	s.Policy[engine.PolicyKey{PolicyID: 1, Proto: 6, Port: 81, PrefixLen: 16}] = engine.PolicyEntry{}
	if err := d.Apply(context.Background(), s); err == nil {
		t.Fatal("policy key with bits past its prefix accepted")
	}
	assertUnchanged(t, d, before, gen)
}

// assertUnchanged checks that the active generation and its content are
// as before and that nothing was left in the inactive slot.
func assertUnchanged(t *testing.T, d *Datapath, before *engine.MapState, gen uint64) {
	t.Helper()
	after, g, err := d.Read()
	if err != nil {
		t.Fatal(err)
	}
	if g != gen || len(Diff(before, after)) != 0 {
		t.Fatalf("refused state changed the kernel: generation %d (was %d), %v", g, gen, Diff(before, after))
	}
	var a bpf.PalisadeActiveSlot
	if err := d.objs.Active.Lookup(uint32(0), &a); err != nil {
		t.Fatal(err)
	}
	// The inactive slot holds the previous generation's maps, or none; a
	// refused state never got as far as writing its generation there.
	var inactive uint64
	if err := d.objs.Generations.Lookup(a.Slot^1, &inactive); err != nil {
		t.Fatal(err)
	}
	if inactive >= gen && gen > 0 {
		t.Fatalf("inactive slot holds generation %d after a refused state; the active one is %d", inactive, gen)
	}
}

// TestAtomicSwitch switches between two generations whose ipcache and
// policy only agree with each other: a packet that saw one map of each
// would be default-denied. Packets run while generations switch; each must
// be allowed by the rule of the generation its event names.
func TestAtomicSwitch(t *testing.T) {
	d := openTest(t, nil)
	if err := d.SetEventsAllowed(true); err != nil {
		t.Fatal(err)
	}
	er, err := d.Events()
	if err != nil {
		t.Fatal(err)
	}
	defer er.Close()
	A, B := addr("10.0.0.1"), addr("10.0.0.2")
	state := func(id engine.Identity, rule engine.RuleID) *engine.MapState {
		return &engine.MapState{
			Endpoints: map[netip.Addr]engine.EndpointEntry{A: {Identity: 256, PolicyID: 256, Flags: engine.EgressDefaultDeny}},
			IPCache:   map[netip.Prefix]engine.Identity{netip.PrefixFrom(B, 32): id},
			Policy: map[engine.PolicyKey]engine.PolicyEntry{
				{PolicyID: 256, Direction: engine.Egress, Identity: id, Proto: engine.ProtoTCP, Port: 80, PrefixLen: 24}: {Flags: engine.FlagAllow, AllowRule: rule},
			},
		}
	}
	states := [2]*engine.MapState{state(300, 1), state(301, 2)} // odd generations: [0]
	if err := d.Apply(context.Background(), states[0]); err != nil {
		t.Fatal(err)
	}
	pkt := packet{src: A, dst: B, proto: 6, sport: 1, dport: 80}.build()

	var stop atomic.Bool
	var wg sync.WaitGroup
	var applyErr error
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer stop.Store(true)
		for i := 0; i < 40; i++ {
			if err := d.Apply(context.Background(), states[i%2^1]); err != nil {
				applyErr = err
				return
			}
		}
	}()
	n, gens := 0, map[uint64]bool{}
	for !stop.Load() || n == 0 {
		clearTracking(t, d)
		ret, ev := run(t, d, er, engine.Egress, pkt)
		n++
		if ret != actPass || ev == nil {
			t.Fatalf("packet %d: return %d, event %v: a packet saw a mix of generations or none", n, int32(ret), ev)
		}
		want := states[(ev.Generation+1)%2].Policy
		var rule engine.RuleID
		for _, e := range want {
			rule = e.AllowRule
		}
		if ev.Rule != rule || ev.Verdict != engine.VerdictAllow {
			t.Fatalf("packet %d: generation %d decided %s by rule %d, want allow by rule %d", n, ev.Generation, ev.Verdict, ev.Rule, rule)
		}
		gens[ev.Generation] = true
	}
	wg.Wait()
	if applyErr != nil {
		t.Fatal(applyErr)
	}
	t.Logf("%d packets saw %d generations", n, len(gens))
	if len(gens) < 3 {
		t.Fatalf("packets saw %d generations: the switch was not exercised", len(gens))
	}
}

func TestAdoptPinnedState(t *testing.T) {
	pin := tempPinDir(t)
	d1, err := Open(pin, nil)
	if err != nil {
		t.Fatal(err)
	}
	s := tableState()
	if err := d1.Apply(context.Background(), s); err != nil {
		t.Fatal(err)
	}
	if err := d1.Apply(context.Background(), s); err != nil {
		t.Fatal(err)
	}
	ifindex := dummyLink(t)
	if err := d1.AttachWorkload(ifindex); err != nil {
		t.Fatal(err)
	}
	if err := d1.Close(); err != nil {
		t.Fatal(err)
	}

	d2, err := Open(pin, nil)
	if err != nil {
		t.Fatalf("second Open: %v", err)
	}
	defer d2.Remove()
	if g := d2.Generation(); g != 2 {
		t.Fatalf("adopted generation %d, want 2", g)
	}
	got, _, err := d2.Read()
	if err != nil {
		t.Fatal(err)
	}
	if drift := Diff(s, got); len(drift) != 0 {
		t.Fatalf("adopted state differs: %v", drift)
	}
	atts, err := d2.Attachments()
	if err != nil || len(atts) != 2 {
		t.Fatalf("adopted attachments %v (%v), want 2", atts, err)
	}
	for _, a := range atts {
		if a.Ifindex != ifindex {
			t.Errorf("attachment %+v, want ifindex %d", a, ifindex)
		}
		if !a.Workload() {
			t.Errorf("attachment %+v of AttachWorkload does not face a workload", a)
		}
		info, err := d2.programAt(a.Hook, a.Direction).Info()
		if err != nil {
			t.Fatal(err)
		}
		want, _ := info.ID()
		if got := linkProgram(t, pin, a); got != want {
			t.Errorf("link %+v runs program %d, want the adopting process's %d", a, got, want)
		}
	}
	// The adopting process continues the generations.
	if err := d2.Apply(context.Background(), s); err != nil || d2.Generation() != 3 {
		t.Fatalf("Apply after adoption: %v, generation %d", err, d2.Generation())
	}
}
