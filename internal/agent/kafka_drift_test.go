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

// The kafka subsystem's read-back against a fake (no root):
// kafka_drift_root_test.go runs the real datapath.

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

	v1 "github.com/palisade-dev/palisade/api/v1alpha1"
	"github.com/palisade-dev/palisade/internal/engine"
	"github.com/palisade-dev/palisade/internal/kafka"
	"github.com/palisade-dev/palisade/internal/metrics"
)

// readbackKafka is fakeKafka with *kafka.Datapath's adoption and
// read-back: Adopt returns adopt (or adoptErr) and the adopted links
// attach to adoptedCgroups; the next Compare finds drifts; peers are
// fakeKafka's, which a test may change behind the subsystem's back;
// MissingPins reports missing until RepairPins.
type readbackKafka struct {
	*fakeKafka
	adopt          *kafka.Adopted
	adoptErr       error
	adoptedCgroups []string
	drifts         []kafka.Drift
	missing        []string
	repairedPins   []string
}

var _ kafkaReadback = (*readbackKafka)(nil)

func (k *readbackKafka) Adopt(string) (*kafka.Adopted, error) { return k.adopt, k.adoptErr }
func (k *readbackKafka) HasCgroup(p string) bool              { return slices.Contains(k.adoptedCgroups, p) }
func (k *readbackKafka) Peers() (map[netip.Prefix]uint32, error) {
	return maps.Clone(k.peers), nil
}

func (k *readbackKafka) Compare(gen uint64, _ *engine.KafkaTables, _ []kafka.Binding) ([]kafka.Drift, error) {
	ds := k.drifts
	k.drifts = nil
	if gen != k.gen {
		ds = append(ds, kafka.Drift{Map: "kafka_gens", Key: "slot", Want: fmt.Sprint(gen), Got: fmt.Sprint(k.gen)})
	}
	return ds, nil
}

func (k *readbackKafka) ComparePeers(want map[netip.Prefix]uint32) ([]kafka.Drift, []netip.Prefix, error) {
	var ds []kafka.Drift
	var extra []netip.Prefix
	for _, p := range slices.SortedFunc(maps.Keys(want), func(x, y netip.Prefix) int { return strings.Compare(x.String(), y.String()) }) {
		if got, ok := k.peers[p]; !ok || got != want[p] {
			ds = append(ds, kafka.Drift{Map: "kafka_peers", Key: p.String(), Want: fmt.Sprint(want[p]), Got: fmt.Sprint(got)})
		}
	}
	for p, id := range k.peers {
		if _, ok := want[p]; !ok {
			ds = append(ds, kafka.Drift{Map: "kafka_peers", Key: p.String(), Got: fmt.Sprint(id)})
			extra = append(extra, p)
		}
	}
	return ds, extra, nil
}

func (k *readbackKafka) DeletePeer(p netip.Prefix) error { delete(k.peers, p); return nil }
func (k *readbackKafka) MissingPins(string) []string     { return k.missing }
func (k *readbackKafka) RepairPins(string) error {
	k.repairedPins = append(k.repairedPins, k.missing...)
	k.missing = nil
	return nil
}

// TestKafkaVerifyRepairsDrift: a verify pass over an unchanged kernel
// records nothing; a drifted generation is applied again (same tables and
// bindings, a new generation) and recorded as a repaired MapEntry drift
// "kafka generation: ..."; a drifted and an extra identity are written
// again and deleted, recorded as "kafka identities: ...".
func TestKafkaVerifyRepairsDrift(t *testing.T) {
	f, fk := newKafkaFixture(t)
	k := &readbackKafka{fakeKafka: fk}
	f.a.Kafka, f.a.KafkaPinDir = k, t.TempDir() // the fake pins nothing there
	f.a.subs = nil
	f.podUID("broker", "broker", "10.0.0.2", 2, false)
	f.policy("broker", "r1", 1, `
endpointSelector: {matchLabels: {app: broker}}
ingress:
- toPorts: [{ports: [{port: "9092", protocol: TCP}], rules: {kafka: [{role: produce, topic: orders}]}}]
`)
	if _, err := f.sync(); err != nil {
		t.Fatal(err)
	}
	if len(k.binds) == 0 {
		t.Fatal("no binding for the broker's Kafka rules")
	}
	ctx := context.Background()
	f.a.VerifyNow(ctx)
	if len(f.a.drifts) != 0 {
		t.Fatalf("drifts over an unchanged kernel: %+v", f.a.drifts)
	}
	tables, binds, gen := k.tables, k.binds, k.gen

	k.drifts = []kafka.Drift{{Map: "kafka_vals", Key: `{slot 1 list 7 topic "orders"}`, Want: "rules 0x1", Got: "rules 0x0"}}
	f.a.VerifyNow(ctx)
	if k.gen <= gen || k.tables != tables || !slices.Equal(k.binds, binds) {
		t.Errorf("repair applied generation %d (was %d), same tables %v, same bindings %v", k.gen, gen, k.tables == tables, slices.Equal(k.binds, binds))
	}
	if len(f.a.drifts) != 1 {
		t.Fatalf("drifts %+v, want 1", f.a.drifts)
	}
	if d := f.a.drifts[0]; d.Kind != v1.KernelDriftMapEntry || !d.Repaired ||
		d.What != `kafka generation: 1 entries differ: kafka_vals {slot 1 list 7 topic "orders"}: want rules 0x1, found rules 0x0` {
		t.Fatalf("drift %+v", d)
	}

	broker := netip.MustParsePrefix("10.0.0.2/32")
	want := k.peers[broker]
	k.peers[broker] = want + 1000
	k.peers[netip.MustParsePrefix("192.0.2.0/24")] = 9
	k.missing = []string{"/pins/kafka_socks"}
	f.a.VerifyNow(ctx)
	if k.peers[broker] != want {
		t.Errorf("the broker's identity after the repair: %d, want %d", k.peers[broker], want)
	}
	if _, ok := k.peers[netip.MustParsePrefix("192.0.2.0/24")]; ok {
		t.Error("the extra prefix was not deleted")
	}
	if !slices.Equal(k.repairedPins, []string{"/pins/kafka_socks"}) {
		t.Errorf("pins repaired: %v", k.repairedPins)
	}
	var whats []string
	for _, d := range f.a.drifts {
		if !d.Repaired {
			t.Errorf("drift %+v not repaired", d)
		}
		whats = append(whats, string(d.Kind)+" "+d.What)
	}
	all := strings.Join(whats, "\n")
	for _, w := range []string{"MapEntry kafka identities: 2 entries differ: kafka_peers 10.0.0.2/32", "Pin kafka pin /pins/kafka_socks removed"} {
		if !strings.Contains(all, w) {
			t.Errorf("drifts lack %q:\n%s", w, all)
		}
	}
}

// newKafkaReadbackFixture is newKafkaFixture with readbackKafka and a pin
// directory holding a previous agent's pin (a plain file: the fake only
// says whether it adopts).
func newKafkaReadbackFixture(t *testing.T) (*l7Fixture, *readbackKafka, string) {
	f, fk := newKafkaFixture(t)
	k := &readbackKafka{fakeKafka: fk}
	pins := t.TempDir()
	if err := os.WriteFile(filepath.Join(pins, "kafka_socks"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	f.a.Kafka, f.a.KafkaPinDir = k, pins
	f.a.subs = nil
	return f, k, pins
}

const brokerProduceOrders = `
endpointSelector: {matchLabels: {app: broker}}
ingress:
- toPorts: [{ports: [{port: "9092", protocol: TCP}], rules: {kafka: [{role: produce, topic: orders}]}}]
`

// TestKafkaAdoptsPinnedState: the first sync adopts what the previous
// agent pinned, as the l7 subsystem does: the pins stay, the generation
// continues from the adopted one, a cgroup an adopted link attaches to is
// not attached again, the adopted counters are not exported again, and
// an identity the previous agent wrote for a prefix that left the
// ipcache is written with its fallback identity.
func TestKafkaAdoptsPinnedState(t *testing.T) {
	f, k, pins := newKafkaReadbackFixture(t)
	uid := f.podUID("broker", "broker", "10.0.0.2", 2, false)
	k.adopt = &kafka.Adopted{Generation: 41, Links: 1}
	k.adoptedCgroups = []string{f.cgroup(uid)}
	stale := netip.MustParsePrefix("10.9.9.0/24")
	k.peers[stale] = 77
	k.counters = map[kafka.Reason]uint64{kafka.ReasonAllowed: 500}
	m, err := metrics.New(prometheus.NewRegistry(), "")
	if err != nil {
		t.Fatal(err)
	}
	f.a.Metrics = m
	f.policy("broker", "r1", 1, brokerProduceOrders)
	if _, err := f.sync(); err != nil {
		t.Fatal(err)
	}
	if k.gen <= 41 || k.applies != 1 {
		t.Errorf("applied generation %d (%d applies), want one after the adopted 41", k.gen, k.applies)
	}
	if _, err := os.Stat(filepath.Join(pins, "kafka_socks")); err != nil {
		t.Errorf("the adopted pin: %v", err)
	}
	if len(k.cgroups) != 0 {
		t.Errorf("attached %v, whose cgroup an adopted link attaches to", k.cgroups)
	}
	if got := k.peers[stale]; got != uint32(engine.IdentityWorld) {
		t.Errorf("the previous agent's %v: identity %d, want world (%d)", stale, got, engine.IdentityWorld)
	}
	k.counters = map[kafka.Reason]uint64{kafka.ReasonAllowed: 503}
	f.a.VerifyNow(context.Background())
	if got := counter(t, m.KafkaRequests.WithLabelValues("allowed")); got != 3 {
		t.Errorf("palisade_kafka_requests_total{reason=allowed} = %v, want 3 (the adopted 500 not exported again)", got)
	}
	if len(f.a.drifts) != 0 {
		t.Errorf("drifts after the adoption: %+v", f.a.drifts)
	}
}

// TestKafkaNotAdoptedReplaces: where the pinned state cannot be adopted
// (a version whose maps differ), the agent replaces it: its own
// generation from scratch, its own attachment, the old pins removed.
func TestKafkaNotAdoptedReplaces(t *testing.T) {
	f, k, pins := newKafkaReadbackFixture(t)
	f.podUID("broker", "broker", "10.0.0.2", 2, false)
	k.adoptErr = errors.New("adopt: pinned kafka_lists (pinned by an incompatible version): ValueSize: 1240 changed to 1232")
	f.policy("broker", "r1", 1, brokerProduceOrders)
	if _, err := f.sync(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(pins, "kafka_socks")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the previous agent's pin after a replace: %v, want removed", err)
	}
	if len(k.cgroups) != 1 || k.applies != 1 || k.gen != 1 {
		t.Errorf("attached %v, %d applies, generation %d; want the pod's cgroup, one apply, generation 1", k.cgroups, k.applies, k.gen)
	}
}
