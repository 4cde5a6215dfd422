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

package agent

import (
	"context"
	"maps"
	"testing"

	v1 "github.com/palisade-dev/palisade/api/v1alpha1"
)

// TestVerifyComparesOutsideTheLock: the verify pass's comparison of the
// maps, made outside the agent's lock, finds a real drift; one made stale
// by a sync that landed during it reports no drift (its copy of desired is
// no longer desired: here it would name the changed policy's entries),
// defers once, and the next pass compares under the lock and finds the
// drift that is there.
func TestVerifyComparesOutsideTheLock(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	f.pod("api", "api", "10.0.0.2", 2, false)
	f.pod("web", "frontend", "10.0.0.1", 1, false)
	f.links[mustAddr("10.0.0.2")] = 2
	f.links[mustAddr("10.0.0.1")] = 1
	f.policy("allow-frontend", "r1", 1, allowFrontend)
	f.mustSync()
	mapDrifts := func() int {
		n := 0
		for _, d := range f.a.drifts {
			if d.Kind == v1.KernelDriftMapEntry {
				n++
			}
		}
		return n
	}
	tamper := func() {
		for k := range f.k.state.Policy {
			delete(f.k.state.Policy, k)
			return
		}
		t.Fatal("no policy entry to tamper with")
	}
	pass := func(chk *mapCheck) {
		f.a.mu.Lock()
		defer f.a.mu.Unlock()
		f.a.net.check = chk
		f.a.verify(ctx)
	}

	// A comparison that still holds finds the drift and is repaired.
	tamper()
	chk := f.a.checkMaps()
	if !f.a.net.holds(chk) || len(chk.drifts) == 0 {
		t.Fatalf("comparison outside the lock: holds %v, %d drifts; want it to hold and find the drift", f.a.net.holds(chk), len(chk.drifts))
	}
	pass(chk)
	if got := mapDrifts(); got != 1 {
		t.Fatalf("%d map drifts recorded, want 1", got)
	}
	if !maps.Equal(f.k.state.Policy, f.a.net.desired.Policy) {
		t.Fatal("the drift was not repaired")
	}

	// A sync lands during the comparison: the copy is stale (the policy's
	// port changed), so its drifts are not the kernel's.
	f.a.mu.Lock()
	stale := f.a.net.startCheck()
	f.a.mu.Unlock()
	f.policy("allow-frontend", "r1", 1, allowFrontend9090)
	f.mustSync()
	stale.run(f.k)
	if len(stale.drifts) == 0 {
		t.Fatal("the stale comparison found nothing: the test does not test what it means to")
	}
	if f.a.net.holds(stale) {
		t.Fatal("a comparison made stale by a sync holds")
	}
	tamper()
	pass(stale)
	if got := mapDrifts(); got != 1 {
		t.Fatalf("a stale comparison recorded drift (%d map drifts, want 1)", got)
	}
	if !f.a.net.deferred {
		t.Fatal("a pass without a comparison that holds did not defer")
	}
	// The next pass, stale again, compares under the lock: the drift is
	// found and repaired.
	f.mustSync()
	f.a.mu.Lock()
	stale = f.a.net.startCheck()
	f.a.mu.Unlock()
	stale.run(f.k)
	f.mustSync()
	pass(stale)
	if got := mapDrifts(); got != 2 {
		t.Fatalf("%d map drifts recorded, want 2: the pass after a deferred one must compare", got)
	}
	if f.a.net.deferred || !maps.Equal(f.k.state.Policy, f.a.net.desired.Policy) {
		t.Fatal("the drift was not repaired")
	}
}
