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
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"reflect"
	"slices"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/prometheus/client_golang/prometheus"

	v1 "github.com/palisade-dev/palisade/api/v1alpha1"
	"github.com/palisade-dev/palisade/internal/capability"
	"github.com/palisade-dev/palisade/internal/engine"
	"github.com/palisade-dev/palisade/internal/kafka"
)

// KafkaKernel is the Kafka datapath the kafka subsystem drives.
// *kafka.Datapath implements it; the agent's unit tests use a fake.
type KafkaKernel interface {
	sockKernel[kafka.Reason]
	// Apply writes a generation beside the active one and switches to it.
	Apply(generation uint64, tables *engine.KafkaTables, binds []kafka.Binding) error
	Close() error
}

var _ KafkaKernel = (*kafka.Datapath)(nil)

// kafkaReadback is the part of the Kafka datapath that takes over a
// previous agent's pinned state and reads the kernel back
// (*kafka.Datapath has it; the unit tests' fake does not).
type kafkaReadback interface {
	sockReadback
	// Adopt takes over the state pinned under dir (nil: none pinned).
	Adopt(dir string) (*kafka.Adopted, error)
	// Compare reads the active generation back and compares it with what
	// was applied.
	Compare(generation uint64, tables *engine.KafkaTables, binds []kafka.Binding) ([]kafka.Drift, error)
	// ComparePeers compares kafka_peers with the identities written and
	// returns the prefixes the kernel holds beyond them.
	ComparePeers(want map[netip.Prefix]uint32) ([]kafka.Drift, []netip.Prefix, error)
}

var _ kafkaReadback = (*kafka.Datapath)(nil)

// kafkaSubsystem runs the node's Kafka rules in the kernel
// (bpf/kafka), as the l7 subsystem runs HTTP rules: from the map state
// the network subsystem applied, it builds the Kafka tables and the
// bindings, writes the peers' identities, applies both as one
// generation, and attaches the sockops program to the cgroup of every
// pod that has a binding (ingress rules: the broker's; egress rules: the
// client's). It reports per object what it does not enforce of their
// Kafka rules, and exports the kernel's counters as
// palisade_kafka_requests_total{reason}.
type kafkaSubsystem struct {
	sockSubsystem[kafka.Reason]
	k KafkaKernel

	plan    *kafkaPlan
	applied *kafkaPlan
	// tables are the applied plan's compiled tables, for the read-back.
	tables *engine.KafkaTables
}

// kafkaSubsystem returns the Kafka subsystem, or, without a Kafka
// datapath, a stand-in that reports the node's Kafka rules as not
// enforced.
func (a *Agent) kafkaSubsystem() Subsystem {
	if a.Kafka == nil {
		why := a.KafkaOff
		if why == "" {
			why = "the agent runs without the Kafka datapath"
		}
		return &kafkaOff{why: why}
	}
	return &kafkaSubsystem{sockSubsystem: newSockSubsystem[kafka.Reason](a, "kafka", a.Kafka, a.KafkaPinDir), k: a.Kafka}
}

func (s *kafkaSubsystem) Name() string { return "kafka" }

// Sync applies the node's Kafka tables and bindings and attaches the
// sockops program to the cgroups of the pods they bind. On an error the
// kernel keeps the previous generation.
func (s *kafkaSubsystem) Sync(_ context.Context, in *inputs) error {
	s.kmu.Lock()
	defer s.kmu.Unlock()
	s.syncs++
	s.syncErr = s.sync(in)
	return s.syncErr
}

func (s *kafkaSubsystem) sync(in *inputs) error {
	state := s.a.net.desired
	if state == nil {
		return errors.New("the network subsystem has not applied a state yet")
	}
	plan, err := planKafka(state, in.local)
	if err != nil {
		return fmt.Errorf("plan: %w", err)
	}
	s.plan = plan
	tables, failed := compileKafka(plan)
	if rb, ok := s.k.(kafkaReadback); ok {
		s.adopt(func(dir string) (bool, uint64, int, int, error) {
			ad, err := rb.Adopt(dir)
			if err != nil || ad == nil {
				return false, 0, 0, 0, err
			}
			return true, ad.Generation, ad.Links, len(ad.Maps), nil
		})
	}
	if err := s.writePeers(state); err != nil {
		return err
	}
	if s.applied == nil || !reflect.DeepEqual(s.applied.lists, plan.lists) || !slices.Equal(s.applied.binds, plan.binds) {
		if len(plan.binds) > kafka.MaxBinds {
			return fmt.Errorf("%d kafka bindings, the kernel holds %d: the previous generation stays", len(plan.binds), kafka.MaxBinds)
		}
		gen := max(s.a.Datapath.Generation(), s.gen+1)
		if err := s.k.Apply(gen, tables, plan.binds); err != nil {
			return fmt.Errorf("apply kafka generation %d: %w", gen, err)
		}
		s.gen, s.applied, s.tables = gen, plan, tables
		s.a.Log.Info("kafka tables applied", "generation", gen, "lists", len(plan.lists), "bindings", len(plan.binds))
	}
	s.failed = failed
	s.uids = map[string]types.UID{}
	names := make(map[types.UID]podName, len(in.pods))
	for _, p := range in.pods {
		names[p.uid] = podName{p.namespace, p.name}
		s.uids[p.namespace+"/"+p.name] = p.uid
	}
	if len(plan.endpoints) > 0 {
		if err := s.cg.scan(names); err != nil {
			return err
		}
	}
	s.attach(plan.endpoints)
	return s.pin()
}

// compileKafka compiles the plan's lists. A list the kernel cannot hold
// is replaced by one that refuses every request, named by its lowest
// rule, and reported by rule.
func compileKafka(p *kafkaPlan) (*engine.KafkaTables, map[engine.RuleID]string) {
	t := &engine.KafkaTables{Lists: make(map[engine.L7ID]*engine.KafkaList, len(p.lists))}
	failed := map[engine.RuleID]string{}
	for id, list := range p.lists {
		kl, err := engine.CompileKafkaList(list)
		if err != nil {
			for _, a := range list {
				if a.Rules != nil && len(a.Rules.Kafka) > 0 {
					failed[a.Rule] = err.Error()
				}
			}
			kl, err = engine.CompileKafkaList(refuseAll(list[0].Rule))
			if err != nil {
				panic(fmt.Sprintf("the refuse-all list does not compile: %v", err))
			}
		}
		t.Lists[id] = kl
	}
	return t, failed
}

// Verify attaches the cgroups that were missing, reads the active
// generation back (a drift is recorded and repaired) and exports the
// kernel's counters as palisade_kafka_requests_total{reason}.
func (s *kafkaSubsystem) Verify(_ context.Context, rec driftRecorder) error {
	s.kmu.Lock()
	defer s.kmu.Unlock()
	var endpoints map[string]bool
	if s.plan != nil {
		endpoints = s.plan.endpoints
	}
	var readback func() error
	if _, ok := s.k.(kafkaReadback); ok && s.applied != nil {
		readback = func() error {
			return s.readback(rec, s.startCheck, func(gen uint64) error { return s.k.Apply(gen, s.tables, s.applied.binds) })
		}
	}
	var vec *prometheus.CounterVec
	if m := s.a.Metrics; m != nil {
		vec = m.KafkaRequests
	}
	return s.verify(endpoints, readback, vec)
}

// startCheck copies what the read-back compares the kernel with, as the
// l7 subsystem's; under the agent's lock.
func (s *kafkaSubsystem) startCheck() *sockCheck {
	rb, ok := s.k.(kafkaReadback)
	if !ok || s.applied == nil {
		return nil
	}
	tables, binds := s.tables, s.applied.binds
	return newSockCheck(&s.sockSubsystem, func(gen uint64) ([]kafka.Drift, error) { return rb.Compare(gen, tables, binds) },
		rb.ComparePeers, func(d kafka.Drift) string { return d.Key })
}

// Report says, per object, what the node does not enforce of its Kafka
// rules as written. The L7Enforced condition is the l7
// subsystem's; this one adds the objects' gaps.
func (s *kafkaSubsystem) Report(in *inputs, r *report) {
	if in == nil || !capability.Enforced(capability.Kafka) {
		return // the capability table lists Kafka rules as gaps: the l7 subsystem reports them
	}
	n, first := 0, ""
	for _, o := range in.objects {
		if !o.concerns || !o.network() || hostPolicy(o) {
			continue
		}
		for _, g := range s.kafkaGaps(o, in) {
			r.gap(o.key, g)
			if n++; first == "" {
				first = g.message
			}
		}
	}
	kafkaCondition(r, n, first)
}

// kafkaCondition turns L7Enforced False when n of the node's Kafka rule
// sets are not enforced as written (first says why for one): the
// condition is the l7 subsystem's, which knows HTTP alone, and reports
// before this one.
func kafkaCondition(r *report, n int, first string) {
	if n == 0 {
		return
	}
	for i := range r.conds {
		if c := &r.conds[i]; c.Type == v1.L7EnforcedCondition && c.Status == metav1.ConditionTrue {
			*c = metav1.Condition{Type: v1.L7EnforcedCondition, Status: metav1.ConditionFalse, Reason: v1.PartiallyEnforcedReason,
				Message: truncate(fmt.Sprintf("%d Kafka rule sets are not enforced as written on this node; first: %s", n, first), 32768)}
		}
	}
}

// kafkaParts are an object's Kafka rules that the kafka subsystem binds,
// as the capability table names them: ingress ones (the broker's side)
// and egress ones (the client's side).
func kafkaParts(o *policyObject) []capability.Gap {
	rs := ruleSetOf(o)
	if rs == nil {
		return nil
	}
	return append(capability.Parts(rs, capability.Kafka), capability.Parts(rs, capability.KafkaEgress)...)
}

// kafkaGaps says what the node does not enforce of an object's Kafka
// rules as written.
func (s *kafkaSubsystem) kafkaGaps(o *policyObject, in *inputs) []gap {
	parts := kafkaParts(o)
	if len(parts) == 0 {
		return nil
	}
	what := partsWhat(parts)
	var unbound map[engine.RuleID]string
	if s.plan != nil {
		unbound = s.plan.unbound
	}
	out, final := s.gaps(o, in, what, s.applied != nil, s.plan != nil, unbound, gapTexts{sockops: "the Kafka sockops program", proto: "Kafka",
		failed: "the kernel cannot hold them (%s), so it refuses every Kafka request they would decide"})
	if final {
		return out
	}
	for _, rule := range slices.Sorted(maps.Keys(s.plan.mixed)) {
		if ruleOf(in, rule, o.key) {
			out = append(out, gap{reason: v1.NotSupportedReason, message: fmt.Sprintf("%s share %s with HTTP rules: the kernel decides one protocol per connection (the datapath whose sockops program takes the socket first) and refuses the other's requests",
				what, s.plan.mixed[rule])})
			break
		}
	}
	return out
}

// kafkaOff stands in for the Kafka subsystem on a node that runs without
// the Kafka datapath: it reports the node's Kafka rules as not enforced
// (when the capability table says the datapath enforces them).
type kafkaOff struct {
	why  string
	gaps map[objKey][]gap
}

func (k *kafkaOff) Name() string { return "kafka" }

func (k *kafkaOff) Sync(_ context.Context, in *inputs) error {
	k.gaps = map[objKey][]gap{}
	if !capability.Enforced(capability.Kafka) {
		return nil
	}
	for _, o := range in.objects {
		if !o.concerns || !o.network() || hostPolicy(o) {
			continue
		}
		for _, p := range kafkaParts(o) {
			k.gaps[o.key] = append(k.gaps[o.key], gap{reason: v1.NotSupportedReason,
				message: fmt.Sprintf("%s are not enforced: %s, so the kernel %s", p.What, k.why, capability.Table[p.Feature].Kernel)})
		}
	}
	return nil
}

func (k *kafkaOff) Verify(context.Context, driftRecorder) error { return nil }

func (k *kafkaOff) Report(_ *inputs, r *report) {
	n, first := 0, ""
	for _, key := range sortedKeys(k.gaps) {
		for _, g := range k.gaps[key] {
			r.gap(key, g)
			if n++; first == "" {
				first = g.message
			}
		}
	}
	kafkaCondition(r, n, first)
}
