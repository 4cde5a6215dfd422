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
	"fmt"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"

	v1 "github.com/palisade-dev/palisade/api/v1alpha1"
	"github.com/palisade-dev/palisade/internal/engine"
	"github.com/palisade-dev/palisade/internal/kafka"
	"github.com/palisade-dev/palisade/internal/l7"
)

// readGate holds a fake's next Compare until the test releases it, once
// armed: the test then acts while the read-back is in progress.
type readGate struct {
	armed            atomic.Bool
	entered, release chan struct{}
}

func newReadGate() *readGate {
	return &readGate{entered: make(chan struct{}), release: make(chan struct{})}
}

func (g *readGate) wait() {
	if g.armed.CompareAndSwap(true, false) {
		g.entered <- struct{}{}
		<-g.release
	}
}

type gatedL7 struct {
	*readbackL7
	g *readGate
}

func (k *gatedL7) Compare(gen uint64, t *engine.HTTPTables, b []l7.Binding) ([]l7.Drift, error) {
	k.g.wait()
	return k.readbackL7.Compare(gen, t, b)
}

type gatedKafka struct {
	*readbackKafka
	g *readGate
}

func (k *gatedKafka) Compare(gen uint64, t *engine.KafkaTables, b []kafka.Binding) ([]kafka.Drift, error) {
	k.g.wait()
	return k.readbackKafka.Compare(gen, t, b)
}

// testState is what the test reads of a sock subsystem.
func (s *sockSubsystem[R]) testState() (syncs, gen uint64, deferred bool) {
	return s.syncs, s.gen, s.deferred
}

// TestSockVerifyComparesOutsideTheLock: the l7 and kafka subsystems' read-
// back runs outside the agent's lock: a sync runs while it is in progress
// (a change the subsystem keeps: its outcome still holds), and the drift
// it found is repaired under the lock. A comparison made stale by a sync
// of the subsystem that landed during it reports no drift (it would name
// the generation the sync replaced), defers once, and the next pass,
// stale again, compares under the lock: a tampered identity is found and
// written again within two passes.
func TestSockVerifyComparesOutsideTheLock(t *testing.T) {
	const remote = `
endpointSelector: {matchLabels: {app: db}}
ingress:
- fromEndpoints: [{matchLabels: {app: frontend}}]
  toPorts: [{ports: [{port: "%d", protocol: TCP}]}]
`
	type sockCase struct {
		name string
		// setup makes the fixture with a gated read-back kernel and
		// synced; bound is the policy text of the bound workload, by
		// variant; tamperGen makes the next Compare find a drift;
		// peers are the kernel's identities.
		setup     func(t *testing.T, g *readGate) (f *l7Fixture, peers map[netip.Prefix]uint32, tamperGen func())
		bound     func(v int) string
		boundName string
		peer      netip.Prefix
		genPrefix string
	}
	cases := []sockCase{{
		name: "l7",
		setup: func(t *testing.T, g *readGate) (*l7Fixture, map[netip.Prefix]uint32, func()) {
			f, k, _ := newReadbackFixture(t)
			f.a.L7 = &gatedL7{readbackL7: k, g: g}
			f.podUID("api", "api", "10.0.0.2", 2, false)
			f.podUID("frontend", "frontend", "10.0.0.3", 3, false)
			return f, k.peers, func() { k.drifts = []l7.Drift{{Map: "l7_allows", Key: "[0]", Want: "{any 0}", Got: "{any 1}"}} }
		},
		boundName: "api",
		bound: func(v int) string {
			return strings.Replace(allowHTTP, "/public", fmt.Sprintf("/v%d", v), 1)
		},
		peer:      netip.MustParsePrefix("10.0.0.3/32"),
		genPrefix: "l7 generation: 1 entries differ",
	}, {
		name: "kafka",
		setup: func(t *testing.T, g *readGate) (*l7Fixture, map[netip.Prefix]uint32, func()) {
			f, fk := newKafkaFixture(t)
			k := &readbackKafka{fakeKafka: fk}
			f.a.Kafka, f.a.KafkaPinDir = &gatedKafka{readbackKafka: k, g: g}, t.TempDir()
			f.a.subs = nil
			f.podUID("broker", "broker", "10.0.0.2", 2, false)
			f.podUID("frontend", "frontend", "10.0.0.3", 3, false)
			return f, fk.peers, func() {
				k.drifts = []kafka.Drift{{Map: "kafka_vals", Key: `{slot 1 list 7 topic "orders"}`, Want: "rules 0x1", Got: "rules 0x0"}}
			}
		},
		boundName: "broker",
		bound: func(v int) string {
			return strings.Replace(brokerProduceOrders, "orders", fmt.Sprintf("topic-%d", v), 1)
		},
		peer:      netip.MustParsePrefix("10.0.0.2/32"),
		genPrefix: "kafka generation: 1 entries differ",
	}}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ctx := context.Background()
			g := newReadGate()
			f, peers, tamperGen := c.setup(t, g)
			f.podOn("node-2", "db", "db", "10.0.1.2", 0, false)
			f.policy(c.boundName, "r1", 2, c.bound(0))
			f.policy("db", "r1", 2, fmt.Sprintf(remote, 5432))
			if _, err := f.sync(); err != nil {
				t.Fatal(err)
			}
			var sub outsideChecker
			for _, s := range f.a.subs {
				if oc, ok := s.(outsideChecker); ok && s.Name() == c.name {
					sub = oc
				}
			}
			if sub == nil {
				t.Fatalf("no %s subsystem with a read-back", c.name)
			}
			state := sub.(interface {
				testState() (uint64, uint64, bool)
			}).testState
			f.a.VerifyNow(ctx)
			if len(f.a.drifts) != 0 {
				t.Fatalf("drifts over an unchanged kernel: %+v", f.a.drifts)
			}
			pass := func(chk *sockCheck) {
				f.a.mu.Lock()
				defer f.a.mu.Unlock()
				sub.setCheck(chk)
				f.a.verify(ctx)
			}
			mapDrifts := func(prefix string) int {
				n := 0
				for _, d := range f.a.drifts {
					if d.Kind == v1.KernelDriftMapEntry && strings.HasPrefix(d.What, prefix) {
						if !d.Repaired {
							t.Errorf("drift not repaired: %+v", d)
						}
						n++
					}
				}
				return n
			}

			// The read-back is in progress when a change arrives: the
			// sync runs (the agent's lock is free); the subsystem keeps
			// its state for it (a remote workload's policy), so the
			// comparison still holds and its drift is repaired.
			tamperGen()
			syncs0, gen0, _ := state()
			done := make(chan sockChecks, 1)
			g.armed.Store(true)
			go func() { done <- f.a.checkSocks() }()
			<-g.entered
			f.policy("db", "r1", 2, fmt.Sprintf(remote, 5433))
			if _, err := f.sync(); err != nil {
				t.Fatal(err)
			}
			if syncs, _, _ := state(); syncs != syncs0 {
				t.Fatalf("the %s subsystem ran for a change it should keep (syncs %d, was %d)", c.name, syncs, syncs0)
			}
			g.release <- struct{}{}
			chks := <-done
			var chk *sockCheck
			for i, s := range chks.subs {
				if s == sub {
					chk = chks.checks[i]
				}
			}
			f.a.mu.Lock()
			held := sub.holds(chk)
			f.a.mu.Unlock()
			if !held || len(chk.drifts) == 0 {
				t.Fatalf("comparison outside the lock: holds %v, %+v; want it to hold and find the drift", held, chk)
			}
			pass(chk)
			if got := mapDrifts(c.genPrefix); got != 1 {
				t.Fatalf("%d generation drifts recorded, want 1: %+v", got, f.a.drifts)
			}
			if _, gen, _ := state(); gen <= gen0 {
				t.Fatalf("the drifted generation was not applied again (generation %d, was %d)", gen, gen0)
			}

			// A sync of the subsystem lands during the comparison: its
			// outcome is of the generation the sync replaced.
			startRun := func(v int) *sockCheck {
				f.a.mu.Lock()
				chk := sub.startCheck()
				f.a.mu.Unlock()
				f.policy(c.boundName, "r1", 2, c.bound(v))
				if _, err := f.sync(); err != nil {
					t.Fatal(err)
				}
				if err := sub.runCheck(chk); err != nil {
					t.Fatal(err)
				}
				return chk
			}
			stale := startRun(1)
			if len(stale.drifts) == 0 {
				t.Fatal("the stale comparison found nothing: the test does not test what it means to")
			}
			if sub.holds(stale) {
				t.Fatal("a comparison made stale by a sync holds")
			}
			want := peers[c.peer]
			peers[c.peer] = want + 1000
			pass(stale)
			if got := mapDrifts(c.name + " identities"); got != 0 {
				t.Fatalf("a stale comparison recorded %d identity drifts", got)
			}
			if _, _, deferred := state(); !deferred {
				t.Fatal("a pass without a comparison that holds did not defer")
			}
			// The next pass, stale again, compares under the lock.
			pass(startRun(2))
			if got := mapDrifts(c.name + " identities"); got != 1 {
				t.Fatalf("%d identity drifts recorded, want 1: the pass after a deferred one must compare", got)
			}
			if _, _, deferred := state(); deferred || peers[c.peer] != want {
				t.Fatalf("the identity was not written again (deferred %v, identity %d, want %d)", deferred, peers[c.peer], want)
			}
		})
	}
}
