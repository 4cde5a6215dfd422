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

// The l7 subsystem's adoption and read-back against a fake (no root):
// l7_drift_root_test.go and l7_restart_root_test.go run the real
// datapath.

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1 "github.com/palisade-dev/palisade/api/v1alpha1"
	"github.com/palisade-dev/palisade/internal/engine"
	"github.com/palisade-dev/palisade/internal/l7"
	"github.com/palisade-dev/palisade/internal/metrics"
)

// readbackL7 is fakeL7 with *l7.Datapath's adoption and read-back:
// Adopt returns adopt (or adoptErr) and the adopted links attach to
// adoptedCgroups; the next Compare finds drifts; MissingPins reports
// missing until RepairPins. Peers are fakeL7's, which a test may change
// behind the subsystem's back.
type readbackL7 struct {
	*fakeL7
	adopt          *l7.Adopted
	adoptErr       error
	adoptedCgroups []string
	drifts         []l7.Drift
	compareErr     error
	missing        []string
	repairedPins   []string
}

var _ l7Readback = (*readbackL7)(nil)

func (k *readbackL7) Adopt(string) (*l7.Adopted, error) { return k.adopt, k.adoptErr }
func (k *readbackL7) HasCgroup(p string) bool           { return slices.Contains(k.adoptedCgroups, p) }
func (k *readbackL7) Peers() (map[netip.Prefix]uint32, error) {
	return maps.Clone(k.peers), nil
}

func (k *readbackL7) Compare(gen uint64, _ *engine.HTTPTables, _ []l7.Binding) ([]l7.Drift, error) {
	if k.compareErr != nil {
		return nil, k.compareErr
	}
	ds := k.drifts
	k.drifts = nil
	if gen != k.gen {
		ds = append(ds, l7.Drift{Map: "l7_gens", Key: "slot", Want: fmt.Sprint(gen), Got: fmt.Sprint(k.gen)})
	}
	return ds, nil
}

func (k *readbackL7) ComparePeers(want map[netip.Prefix]uint32) ([]l7.Drift, []netip.Prefix, error) {
	var ds []l7.Drift
	var extra []netip.Prefix
	for p, id := range want {
		if got, ok := k.peers[p]; !ok || got != id {
			ds = append(ds, l7.Drift{Map: "l7_peers", Key: p.String(), Want: fmt.Sprint(id), Got: fmt.Sprint(got)})
		}
	}
	for p, id := range k.peers {
		if _, ok := want[p]; !ok {
			ds = append(ds, l7.Drift{Map: "l7_peers", Key: p.String(), Got: fmt.Sprint(id)})
			extra = append(extra, p)
		}
	}
	return ds, extra, nil
}

func (k *readbackL7) DeletePeer(p netip.Prefix) error {
	delete(k.peers, p)
	return nil
}

func (k *readbackL7) MissingPins(string) []string { return k.missing }

func (k *readbackL7) RepairPins(string) error {
	k.repairedPins = append(k.repairedPins, k.missing...)
	k.missing = nil
	return nil
}

// newReadbackFixture is newL7Fixture with readbackL7 and a pin
// directory holding a previous agent's pin (a plain file: the fake only
// says whether it adopts).
func newReadbackFixture(t *testing.T) (*l7Fixture, *readbackL7, string) {
	f := newL7Fixture(t)
	k := &readbackL7{fakeL7: f.l7}
	pins := t.TempDir()
	if err := os.WriteFile(filepath.Join(pins, "l7_socks"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	f.a.L7, f.a.L7PinDir = k, pins
	return f, k, pins
}

// TestL7AdoptsPinnedState: the first sync adopts what the previous agent
// pinned: the pins stay, the generation continues from the adopted one,
// a cgroup an adopted link attaches to is not attached again (and counts
// as attached), the adopted counters are not exported again, and an
// identity the previous agent wrote for a prefix that left the ipcache is
// written with its fallback identity.
func TestL7AdoptsPinnedState(t *testing.T) {
	f, k, pins := newReadbackFixture(t)
	uid := f.podUID("api", "api", "10.0.0.2", 2, false)
	f.podUID("frontend", "frontend", "10.0.0.3", 3, false)
	k.adopt = &l7.Adopted{Generation: 41, Links: 1}
	k.adoptedCgroups = []string{f.cgroup(uid)}
	stale := netip.MustParsePrefix("10.9.9.0/24")
	k.peers[stale] = 77
	k.counters = map[l7.Reason]uint64{l7.ReasonAllowed: 500}
	m, err := metrics.New(prometheus.NewRegistry(), "")
	if err != nil {
		t.Fatal(err)
	}
	f.a.Metrics = m
	f.policy("api", "r1", 1, allowHTTP)
	if _, err := f.sync(); err != nil {
		t.Fatal(err)
	}
	if k.gen <= 41 || k.applies != 1 {
		t.Errorf("applied generation %d (%d applies), want one after the adopted 41", k.gen, k.applies)
	}
	if _, err := os.Stat(filepath.Join(pins, "l7_socks")); err != nil {
		t.Errorf("the adopted pin: %v", err)
	}
	if len(k.cgroups) != 0 {
		t.Errorf("attached %v, whose cgroup an adopted link attaches to", k.cgroups)
	}
	if got := k.peers[stale]; got != uint32(engine.IdentityWorld) {
		t.Errorf("the previous agent's %v: identity %d, want world (%d)", stale, got, engine.IdentityWorld)
	}
	if c := f.condition(v1.L7EnforcedCondition); c.Status != metav1.ConditionTrue {
		t.Errorf("L7Enforced: %s %s: %s", c.Status, c.Reason, c.Message)
	}
	k.counters = map[l7.Reason]uint64{l7.ReasonAllowed: 503}
	f.a.VerifyNow(context.Background())
	if got := counter(t, m.L7Requests.WithLabelValues("allowed")); got != 3 {
		t.Errorf("palisade_l7_requests_total{reason=allowed} = %v, want 3 (the adopted 500 not exported again)", got)
	}
	if len(f.a.drifts) != 0 {
		t.Errorf("drifts after the adoption: %+v", f.a.drifts)
	}
}

// TestL7NotAdoptedReplaces: where the pinned state cannot be adopted,
// the agent replaces it as before: its own generation from scratch, its
// own attachments, the old pins removed.
func TestL7NotAdoptedReplaces(t *testing.T) {
	f, k, pins := newReadbackFixture(t)
	f.podUID("api", "api", "10.0.0.2", 2, false)
	f.podUID("frontend", "frontend", "10.0.0.3", 3, false)
	k.adoptErr = errors.New("the state pinned lacks l7_allows")
	f.policy("api", "r1", 1, allowHTTP)
	if _, err := f.sync(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(pins, "l7_socks")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the previous agent's pin after a replace: %v, want removed", err)
	}
	if len(k.cgroups) != 1 || k.applies != 1 {
		t.Errorf("attached %v, %d applies; want the pod's cgroup and one apply", k.cgroups, k.applies)
	}
}

// TestL7VerifyRepairsDrift: a verify pass that reads back a drifted
// generation applies the same tables as a new generation and records a
// MapEntry drift naming l7 generation; drifted identities are written
// again (an extra one deleted) and recorded as l7 identities; a removed
// pin is pinned again (Pin); a failed repair is recorded not repaired; a
// pass over an unchanged kernel records nothing; a read-back that fails
// is an error of the pass.
func TestL7VerifyRepairsDrift(t *testing.T) {
	f, k, _ := newReadbackFixture(t)
	f.podUID("api", "api", "10.0.0.2", 2, false)
	f.podUID("frontend", "frontend", "10.0.0.3", 3, false)
	f.policy("api", "r1", 1, allowHTTP)
	if _, err := f.sync(); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	f.a.VerifyNow(ctx)
	if len(f.a.drifts) != 0 {
		t.Fatalf("drifts over an unchanged kernel: %+v", f.a.drifts)
	}
	tables, binds, gen := k.tables, k.binds, k.gen

	k.drifts = []l7.Drift{{Map: "l7_allows", Key: "[0]", Want: "{any 0}", Got: "{any 1}"}}
	f.a.VerifyNow(ctx)
	if k.gen <= gen || k.tables != tables || !slices.Equal(k.binds, binds) {
		t.Errorf("repair applied generation %d (was %d), same tables %v, same bindings %v", k.gen, gen, k.tables == tables, slices.Equal(k.binds, binds))
	}
	d := f.a.drifts[0]
	if len(f.a.drifts) != 1 || d.Kind != v1.KernelDriftMapEntry || !d.Repaired ||
		d.What != "l7 generation: 1 entries differ: l7_allows [0]: want {any 0}, found {any 1}" {
		t.Fatalf("drifts %+v", f.a.drifts)
	}

	client := netip.MustParsePrefix("10.0.0.3/32")
	want := k.peers[client]
	k.peers[client] = want + 1000
	k.peers[netip.MustParsePrefix("192.0.2.0/24")] = 9
	k.missing = []string{"/pins/l7_socks"}
	f.a.VerifyNow(ctx)
	if k.peers[client] != want {
		t.Errorf("the client's identity after the repair: %d, want %d", k.peers[client], want)
	}
	if _, ok := k.peers[netip.MustParsePrefix("192.0.2.0/24")]; ok {
		t.Error("the extra prefix was not deleted")
	}
	if !slices.Equal(k.repairedPins, []string{"/pins/l7_socks"}) {
		t.Errorf("pins repaired: %v", k.repairedPins)
	}
	var whats []string
	for _, d := range f.a.drifts[:2] {
		if !d.Repaired {
			t.Errorf("drift %+v not repaired", d)
		}
		whats = append(whats, string(d.Kind)+" "+d.What)
	}
	if !strings.HasPrefix(whats[0], "MapEntry l7 identities: 2 entries differ") || whats[1] != "Pin l7 pin /pins/l7_socks removed" {
		t.Errorf("drifts %q", whats)
	}

	k.applyErr = errors.New("update l7_lists: no space")
	k.drifts = []l7.Drift{{Map: "l7_lists", Key: "{slot 0 list 1}", Want: "the list's record"}}
	f.a.VerifyNow(ctx)
	if d := f.a.drifts[0]; d.Repaired || !strings.Contains(d.Message, "no space") {
		t.Errorf("a failed repair: %+v", d)
	}
	k.applyErr = nil
	n := len(f.a.drifts)
	f.a.VerifyNow(ctx) // the kernel still holds the last generation applied
	f.a.VerifyNow(ctx)
	if len(f.a.drifts) != n {
		t.Errorf("drifts over an unchanged kernel: %+v", f.a.drifts[:len(f.a.drifts)-n])
	}

	k.compareErr = errors.New("read l7_slot: bad file descriptor")
	s := f.a.l7sub()
	if err := s.Verify(ctx, f.a.drift); err == nil || !strings.Contains(err.Error(), "bad file descriptor") {
		t.Errorf("Verify with a failing read-back: %v", err)
	}
}

// l7sub is the agent's l7 subsystem.
func (a *Agent) l7sub() *l7Subsystem {
	for _, s := range a.subs {
		if l, ok := s.(*l7Subsystem); ok {
			return l
		}
	}
	return nil
}
