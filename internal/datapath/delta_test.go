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
	"encoding/hex"
	"math/rand/v2"
	"net/netip"
	"strings"
	"testing"

	"github.com/palisade-dev/palisade/internal/engine"
)

// mutateState returns s with a random part of the change from s to another
// random state of g: a small, realistic delta over the same addresses.
func mutateState(g *gen, s *engine.MapState) *engine.MapState {
	d := engine.Diff(s, g.state())
	part := &engine.Delta{IPCache: map[netip.Prefix]engine.Identity{}, Endpoints: map[netip.Addr]engine.EndpointEntry{},
		Policy: map[engine.PolicyKey]engine.PolicyEntry{}}
	keep := func() bool { return g.r.IntN(5) == 0 }
	for k, v := range d.Policy {
		if keep() {
			part.Policy[k] = v
		}
	}
	for _, k := range d.PolicyDeleted {
		if keep() {
			part.PolicyDeleted = append(part.PolicyDeleted, k)
		}
	}
	for k, v := range d.IPCache {
		if keep() {
			part.IPCache[k] = v
		}
	}
	for _, k := range d.IPCacheDeleted {
		if keep() {
			part.IPCacheDeleted = append(part.IPCacheDeleted, k)
		}
	}
	for k, v := range d.Endpoints {
		if keep() {
			part.Endpoints[k] = v
		}
	}
	for _, k := range d.EndpointsDeleted {
		if keep() {
			part.EndpointsDeleted = append(part.EndpointsDeleted, k)
		}
	}
	out := s.Clone()
	part.Apply(out)
	return out
}

// checkKernel asserts that the active generation is s exactly, hints
// included.
func checkKernel(t *testing.T, d *Datapath, s *engine.MapState, step int) {
	t.Helper()
	drifts, _, err := d.Compare(s)
	if err != nil {
		t.Fatalf("step %d: Compare: %v", step, err)
	}
	if len(drifts) > 0 {
		t.Fatalf("step %d: the kernel differs from the state written (%d differences), first: %v", step, len(drifts), drifts[0])
	}
}

// TestDeltaWriter writes a chain of random states, each a small change of
// the one before, by delta, and checks after every step that the kernel
// holds exactly the new state, and that most steps patched the inactive
// slot instead of building a whole generation.
func TestDeltaWriter(t *testing.T) {
	d := openTest(t, nil)
	w := NewWriter(d)
	r := rand.New(rand.NewPCG(11, 18))
	g := newGen(r)
	s := g.state()
	if err := w.Apply(context.Background(), s, nil); err != nil {
		t.Fatal(err)
	}
	if l := w.Last(); l.Incremental || l.Rebuilt == "" {
		t.Fatalf("first write: %+v, want a whole generation", l)
	}
	checkKernel(t, d, s, 0)
	patched, written := 0, 0
	const steps = 60
	for i := 1; i <= steps; i++ {
		next := mutateState(g, s)
		if err := w.Apply(context.Background(), next, engine.Diff(s, next)); err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
		l := w.Last()
		if l.Generation != d.Generation() || l.Generation != uint64(i+1) {
			t.Fatalf("step %d: writer says generation %d, datapath %d, want %d", i, l.Generation, d.Generation(), i+1)
		}
		if l.Incremental {
			patched++
			written += l.Written + l.Deleted
		} else if i > 1 && !strings.Contains(l.Rebuilt, "entries") {
			t.Errorf("step %d rebuilt whole: %s", i, l.Rebuilt)
		}
		checkKernel(t, d, next, i)
		s = next
	}
	t.Logf("%d of %d steps patched in place, %d entries written or deleted (states of about %d entries)", patched, steps, written,
		len(s.Policy)+len(s.IPCache)+len(s.Endpoints))
	if patched < steps/2 {
		t.Errorf("only %d of %d steps patched in place", patched, steps)
	}
}

// TestDeltaDifferential decides random packets against generations made
// by patching, as TestDifferential does for whole generations: the
// programs must decide exactly as the reference evaluator on the new state.
func TestDeltaDifferential(t *testing.T) {
	d := openTest(t, nil)
	if err := d.SetEventsAllowed(true); err != nil {
		t.Fatal(err)
	}
	er, err := d.Events()
	if err != nil {
		t.Fatal(err)
	}
	defer er.Close()
	w := NewWriter(d)
	r := rand.New(rand.NewPCG(*diffSeed, 18))
	g := newGen(r)
	s := g.state()
	if err := w.Apply(context.Background(), s, nil); err != nil {
		t.Fatal(err)
	}
	fails, patched := 0, 0
	for set := 0; set < 40 && fails < 10; set++ {
		next := mutateState(g, s)
		if err := w.Apply(context.Background(), next, engine.Diff(s, next)); err != nil {
			t.Fatalf("set %d: %v", set, err)
		}
		if w.Last().Incremental {
			patched++
		}
		s = next
		clearTracking(t, d)
		m := newModel(stateOracle{s}, d.Generation(), true)
		workload := set%2 == 1
		if workload {
			m.failClosed = s.Identity
		}
		for i := 0; i < 200 && fails < 10; i++ {
			pkt := g.packet()
			p := refParse(pkt)
			for _, dir := range []engine.Direction{engine.Egress, engine.Ingress} {
				want := m.step(dir, p)
				var ret uint32
				var ev *Event
				if workload {
					ret, ev = runOn(t, d.workloadProgram(dir), er, pkt)
				} else {
					ret, ev = run(t, d, er, dir, pkt)
				}
				if msg := want.compare(ret, ev); msg != "" {
					fails++
					t.Errorf("set %d (patched %v, workload %v) packet %d %s: %s\npacket %s\nparsed %v", set, w.Last().Incremental, workload, i, dir, msg, hex.EncodeToString(pkt), p)
				}
			}
		}
	}
	if patched == 0 {
		t.Fatal("no generation was patched: the test decided packets on whole generations only")
	}
	t.Logf("%d of 40 generations patched in place", patched)
}

// TestDeltaFallbacks covers the cases where the writer must build a whole
// generation: an Apply it did not make (a drift repair), a map that has no
// room for the patch, L7 changes, and a delta that cannot be encoded
// (refused, nothing written).
func TestDeltaFallbacks(t *testing.T) {
	ctx := context.Background()
	d := openTest(t, nil)
	w := NewWriter(d)
	big := func(n int, port uint16) *engine.MapState {
		s := tableState()
		for i := range n {
			k := engine.PolicyKey{PolicyID: 300, Direction: engine.Ingress, Identity: engine.Identity(1000 + i), Proto: engine.ProtoTCP, Port: port, PrefixLen: 24}
			s.Policy[k] = engine.PolicyEntry{Flags: engine.FlagAllow, AllowRule: engine.RuleID(i + 1)}
		}
		return s
	}
	step := func(name string, old, s *engine.MapState, wantPatched bool, why string) {
		t.Helper()
		if err := w.Apply(ctx, s, engine.Diff(old, s)); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		l := w.Last()
		if l.Incremental != wantPatched || !strings.Contains(l.Rebuilt, why) {
			t.Fatalf("%s: %+v, want patched %v (rebuilt for %q)", name, l, wantPatched, why)
		}
		checkKernel(t, d, s, 0)
	}
	s0 := big(400, 80)
	if err := w.Apply(ctx, s0, nil); err != nil {
		t.Fatal(err)
	}
	s1 := big(401, 80)
	step("second write", s0, s1, false, "not known")
	s2 := big(402, 80)
	step("third write", s1, s2, true, "")

	// The slot that holds s1 was sized for it: 200 more entries do not fit.
	s3 := big(602, 80)
	step("growth", s2, s3, false, "patch failed")
	// The other slot, which holds s2, is as small: it grows on the next
	// write, and from then on both slots have room.
	s4 := big(603, 80)
	step("growth of the other slot", s3, s4, false, "patch failed")
	s4b := big(604, 80)
	step("after growth", s4, s4b, true, "")
	s4 = s4b

	// A drift repair writes a whole generation behind the writer's back.
	if err := d.Apply(ctx, s4); err != nil {
		t.Fatal(err)
	}
	s5 := big(605, 80)
	step("after a foreign Apply", s4, s5, false, "not known")
	s6 := big(606, 80)
	step("patch again", s5, s6, true, "")

	s7 := s6.Clone()
	s7.L7 = map[engine.L7ID]engine.L7List{1: nil}
	step("L7", s6, s7, false, "L7")

	// A bad prefix is refused before anything is written.
	s8 := s7.Clone()
	s8.IPCache[netip.MustParsePrefix("10.1.2.3/8")] = 5
	gen := d.Generation()
	if err := w.Apply(ctx, s8, engine.Diff(s7, s8)); err == nil {
		t.Fatal("a non-canonical prefix was accepted")
	}
	if d.Generation() != gen {
		t.Fatalf("a refused delta made generation %d", d.Generation())
	}
	checkKernel(t, d, s7, 0)
}
