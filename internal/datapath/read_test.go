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
	"math/rand/v2"
	"testing"

	"github.com/cilium/ebpf"

	"github.com/palisade-dev/palisade/bpf"
	"github.com/palisade-dev/palisade/internal/engine"
)

// TestCompareHints: a hints byte changed behind the agent's back makes
// the programs skip a policy entry that is there, which Read and Diff
// cannot see and Compare reports; applying the state again repairs it.
func TestCompareHints(t *testing.T) {
	d := openTest(t, nil)
	want := tableState()
	if err := d.Apply(context.Background(), want); err != nil {
		t.Fatal(err)
	}
	if drift, gen, err := d.Compare(want); err != nil || len(drift) != 0 || gen != 1 {
		t.Fatalf("after Apply: Compare = %v, generation %d, %v; want no drift in generation 1", drift, gen, err)
	}
	er, err := d.Events()
	if err != nil {
		t.Fatal(err)
	}
	defer er.Close()
	// A→B SCTP 1003 is allowed by an LPM entry of peer identity 257.
	pkt := packet{src: addr("10.0.0.1"), dst: addr("10.0.0.2"), proto: 132, sport: 7, dport: 1003}.build()
	if ret, _ := run(t, d, er, engine.Egress, pkt); ret != actPass {
		t.Fatalf("before the drift: return %d, want pass", int32(ret))
	}

	// Claim that A's policy has no LPM entry of a peer identity on egress.
	eps := activeInner(t, d, d.objs.GenEndpoints)
	k := addrKey(addr("10.0.0.1"))
	var v bpf.PalisadeEndpointValue
	if err := eps.Lookup(k, &v); err != nil {
		t.Fatal(err)
	}
	good := v.Hints
	v.Hints |= hintNoPeerLPM << hintEgressShift
	if v.Hints == good {
		t.Fatalf("hints %#x already skip the peer LPM lookup on egress", good)
	}
	if err := eps.Update(k, v, ebpf.UpdateExist); err != nil {
		t.Fatal(err)
	}
	clearTracking(t, d)
	if ret, ev := run(t, d, er, engine.Egress, pkt); ret != actShot || ev == nil || ev.Reason != Reason(engine.ReasonDefaultDeny) {
		t.Fatalf("with the drifted hint: return %d, event %v; want a drop by default deny", int32(ret), ev)
	}

	// Read cannot see it: a MapState has no hints.
	got, _, err := d.Read()
	if err != nil {
		t.Fatal(err)
	}
	if drift := Diff(want, got); len(drift) != 0 {
		t.Fatalf("Diff of Read = %v, want nothing (the entries are right)", drift)
	}
	drift, gen, err := d.Compare(want)
	if err != nil {
		t.Fatal(err)
	}
	wantDrift := Drift{Map: "endpoints", Key: "10.0.0.1", Want: hintsString(good), Got: hintsString(v.Hints)}
	if gen != 1 || len(drift) != 1 || drift[0] != wantDrift {
		t.Fatalf("Compare = %v (generation %d), want [%v]", drift, gen, wantDrift)
	}
	t.Logf("reported: %v", drift[0])

	// The repair a drift detector makes: the whole state as a new generation.
	if err := d.Apply(context.Background(), want); err != nil {
		t.Fatal(err)
	}
	if drift, _, err := d.Compare(want); err != nil || len(drift) != 0 {
		t.Fatalf("after the repair: Compare = %v, %v; want no drift", drift, err)
	}
	if ret, _ := run(t, d, er, engine.Egress, pkt); ret != actPass {
		t.Fatalf("after the repair: return %d, want pass", int32(ret))
	}
}

// TestCompareEntries: Compare reports what Diff of Read does, and the
// hints Apply writes for random states compare clean.
func TestCompareEntries(t *testing.T) {
	d := openTest(t, nil)
	r := rand.New(rand.NewPCG(11, 11))
	for i := 0; i < 10; i++ {
		s := newGen(r).state()
		if err := d.Apply(context.Background(), s); err != nil {
			t.Fatal(err)
		}
		if drift, _, err := d.Compare(s); err != nil || len(drift) != 0 {
			t.Fatalf("state %d: Compare = %v, %v; want no drift", i, drift, err)
		}
	}
	want := tableState()
	if err := d.Apply(context.Background(), want); err != nil {
		t.Fatal(err)
	}
	ep := activeInner(t, d, d.objs.GenEndpoints)
	if err := ep.Delete(addrKey(addr("10.0.0.3"))); err != nil {
		t.Fatal(err)
	}
	pol := activeInner(t, d, d.objs.GenPolicy)
	pk := engine.PolicyKey{PolicyID: 256, Direction: engine.Egress, Identity: 257, Proto: engine.ProtoTCP, Port: 80, PrefixLen: 24}
	if err := pol.Update(policyKey(pk), policyValue(engine.PolicyEntry{Flags: engine.FlagDeny, DenyRule: 9}), ebpf.UpdateExist); err != nil {
		t.Fatal(err)
	}
	got, _, err := d.Read()
	if err != nil {
		t.Fatal(err)
	}
	drift, _, err := d.Compare(want)
	if err != nil {
		t.Fatal(err)
	}
	if d := Diff(want, got); len(drift) != 2 || len(d) != 2 || drift[0] != d[0] || drift[1] != d[1] {
		t.Fatalf("Compare = %v, Diff of Read = %v; want the same two drifts", drift, d)
	}
}
