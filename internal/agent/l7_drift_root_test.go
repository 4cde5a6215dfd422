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

package agent_test

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"testing"

	"github.com/cilium/ebpf"

	v1 "github.com/palisade-dev/palisade/api/v1alpha1"
	l7bpf "github.com/palisade-dev/palisade/bpf/l7"
)

// pinnedL7 opens one of the agent's pinned L7 maps, as bpftool would.
func (e *l7Env) pinnedL7(name string) *ebpf.Map {
	e.t.Helper()
	m, err := ebpf.LoadPinnedMap(filepath.Join(e.pins, name), nil)
	if err != nil {
		e.t.Fatalf("open pinned %s: %v", name, err)
	}
	e.t.Cleanup(func() { m.Close() })
	return m
}

// bites asserts that a tamper lets a request the policy refuses through.
func (e *l7Env) bites(what, path string) {
	e.t.Helper()
	if code, body := e.get(path); code != http.StatusOK || body != "ok "+path {
		e.t.Fatalf("%s does not change a decision: GET %s: %d %q, want the server's answer", what, path, code, body)
	}
}

// TestL7DriftRepaired tampers with the agent's pinned L7 state from
// outside (cilium/ebpf on the pins, as bpftool would): first the active
// generation's list record (every rule admits every path), then the
// client's identity in l7_peers (its requests find no binding and pass),
// then the SOCKHASH's pin is removed.
// Each tamper lets a refused request through; the verify pass reads the
// kernel back, finds it, repairs it (a new generation; the identity
// written again) and reports it on NodeEnforcement and in the drift
// metric; requests are refused again. A pass over an untampered kernel
// finds nothing.
func TestL7DriftRepaired(t *testing.T) {
	e := newL7Env(t)
	e.policyOf("api", "r1", 1, l7Policy)
	e.l7Enforced("r1")
	e.check("before any tamper")
	ctx := context.Background()

	// 1. The list record of the active slot: every rule admits any path.
	var act l7bpf.L7L7Active
	if err := e.pinnedL7("l7_slot").Lookup(uint32(0), &act); err != nil {
		t.Fatal(err)
	}
	lists := e.pinnedL7("l7_lists")
	var k, found l7bpf.L7L7ListKey
	var rec l7bpf.L7L7List
	n := 0
	for it := lists.Iterate(); it.Next(&k, &rec); {
		if k.Slot == act.Slot {
			found, n = k, n+1
		}
	}
	if n != 1 {
		t.Fatalf("%d lists in the active slot %d, want the policy's one", n, act.Slot)
	}
	if err := lists.Lookup(found, &rec); err != nil {
		t.Fatal(err)
	}
	for i := range rec.PathAny.W {
		rec.PathAny.W[i] = ^uint64(0)
	}
	if err := lists.Update(found, &rec, ebpf.UpdateExist); err != nil {
		t.Fatal(err)
	}
	e.bites("the list record tamper", "/private/list")
	e.r.a.VerifyNow(ctx)
	e.assertDrift(v1.KernelDriftMapEntry, "l7 generation", 1)
	if got := driftCount(t, e.r.reg, string(v1.KernelDriftMapEntry)); got != 1 {
		t.Errorf("palisade_drift_total{what=MapEntry} = %v, want 1", got)
	}
	e.check("after the list record's repair")

	// 2. The client's identity.
	peers := e.pinnedL7("l7_peers")
	key := l7bpf.L7L7PeerKey{Prefixlen: 64, Family: 4}
	copy(key.Addr[:], []byte{10, 99, 0, 10})
	var id uint32
	if err := peers.Lookup(key, &id); err != nil {
		t.Fatalf("the client's identity in l7_peers: %v", err)
	}
	if err := peers.Update(key, id+1000, ebpf.UpdateExist); err != nil {
		t.Fatal(err)
	}
	e.bites("the identity tamper", "/private/peer")
	e.r.a.VerifyNow(ctx)
	e.assertDrift(v1.KernelDriftMapEntry, "l7 identities", 2)
	if got := driftCount(t, e.r.reg, string(v1.KernelDriftMapEntry)); got != 2 {
		t.Errorf("palisade_drift_total{what=MapEntry} = %v, want 2", got)
	}
	var after uint32
	if err := peers.Lookup(key, &after); err != nil || after != id {
		t.Errorf("the client's identity after the repair: %d, %v; want %d", after, err, id)
	}
	e.check("after the identity's repair")

	// 3. A pin removed (the SOCKHASH's): pinned again, so that the next
	// agent can adopt the state.
	socks := filepath.Join(e.pins, "l7_socks")
	if err := os.Remove(socks); err != nil {
		t.Fatal(err)
	}
	e.r.a.VerifyNow(ctx)
	e.assertDrift(v1.KernelDriftPin, "l7 pin "+socks, 3)
	if _, err := os.Stat(socks); err != nil {
		t.Errorf("after the repair: %v", err)
	}
	e.check("after the pin's repair")

	// 4. Nothing tampered: nothing found.
	e.r.a.VerifyNow(ctx)
	if ne := e.nodeEnforcement(); ne == nil || ne.Status.DriftRepairs != 3 {
		t.Errorf("after an untampered pass: %+v, want 3 repairs", ne)
	}
	for _, d := range e.nodeEnforcement().Status.Drifts {
		t.Logf("drift: %s %s repaired=%v", d.Kind, d.What, d.Repaired)
	}
}
