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
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	v1 "github.com/palisade-dev/palisade/api/v1alpha1"
	"github.com/palisade-dev/palisade/internal/capability"
	"github.com/palisade-dev/palisade/internal/engine"
	"github.com/palisade-dev/palisade/internal/kafka"
)

// KafkaKernel is the Kafka datapath the kafka subsystem drives.
// *kafka.Datapath implements it; the agent's unit tests use a fake.
type KafkaKernel interface {
	// AttachCgroup attaches the sockops program to a cgroup v2 directory.
	AttachCgroup(path string) error
	// Pin pins the maps and the cgroup links under dir; pinning again
	// pins what was attached since.
	Pin(dir string) error
	// SetPeer says which identity the addresses of prefix have.
	SetPeer(prefix netip.Prefix, identity uint32) error
	// Apply writes a generation beside the active one and switches to it.
	Apply(generation uint64, tables *engine.KafkaTables, binds []kafka.Binding) error
	Counters() (map[kafka.Reason]uint64, error)
	Close() error
}

var _ KafkaKernel = (*kafka.Datapath)(nil)

// kafkaReadback is the part of the Kafka datapath that takes over a
// previous agent's pinned state and reads the kernel back
// (*kafka.Datapath has it; the unit tests' fake does not).
type kafkaReadback interface {
	// Adopt takes over the state pinned under dir (nil: none pinned).
	Adopt(dir string) (*kafka.Adopted, error)
	// HasCgroup reports whether the sockops program is attached to the
	// cgroup directory path (by an adopted link too).
	HasCgroup(path string) bool
	// Peers is kafka_peers as the kernel holds it.
	Peers() (map[netip.Prefix]uint32, error)
	// Compare reads the active generation back and compares it with what
	// was applied.
	Compare(generation uint64, tables *engine.KafkaTables, binds []kafka.Binding) ([]kafka.Drift, error)
	// ComparePeers compares kafka_peers with the identities written and
	// returns the prefixes the kernel holds beyond them.
	ComparePeers(want map[netip.Prefix]uint32) ([]kafka.Drift, []netip.Prefix, error)
	// DeletePeer deletes a prefix's identity.
	DeletePeer(prefix netip.Prefix) error
	// MissingPins are the pins under dir that were made and are gone;
	// RepairPins pins them again.
	MissingPins(dir string) []string
	RepairPins(dir string) error
}

var _ kafkaReadback = (*kafka.Datapath)(nil)

// kafkaSubsystem runs the node's ingress Kafka rules in the kernel
// (bpf/kafka), as the l7 subsystem runs HTTP rules: from the map state
// the network subsystem applied, it builds the Kafka tables and the
// bindings, writes the peers' identities, applies both as one
// generation, and attaches the sockops program to the cgroup of every
// pod that has a binding. It reports per object what it does not enforce
// of their ingress Kafka rules, and exports the kernel's counters as
// palisade_kafka_requests_total{reason}.
type kafkaSubsystem struct {
	a      *Agent
	k      KafkaKernel
	cg     *cgroupResolver
	pinDir string
	pinned bool
	// adoptTried is set once the state a previous agent pinned was
	// looked for; adopted when it was taken over.
	adoptTried, adopted bool

	plan    *kafkaPlan
	applied *kafkaPlan
	// tables are the applied plan's compiled tables, for the read-back.
	tables *engine.KafkaTables
	gen    uint64
	// failed are the lists that could not be compiled, replaced by lists
	// that refuse every request: by rule, the reason.
	failed     map[engine.RuleID]string
	peers      map[netip.Prefix]uint32
	attached   map[string]bool
	podCgroups map[string]string
	missing    map[string]string
	uids       map[string]types.UID

	syncErr, attachErr error
	counters           map[kafka.Reason]uint64
}

// kafkaSubsystem returns the Kafka subsystem, or, without a Kafka
// datapath, a stand-in that reports the node's ingress Kafka rules as
// not enforced.
func (a *Agent) kafkaSubsystem() Subsystem {
	if a.Kafka == nil {
		why := a.KafkaOff
		if why == "" {
			why = "the agent runs without the Kafka datapath"
		}
		return &kafkaOff{why: why}
	}
	return &kafkaSubsystem{a: a, k: a.Kafka, cg: newCgroupResolver(a.CgroupRoot), pinDir: a.KafkaPinDir,
		peers: map[netip.Prefix]uint32{}, attached: map[string]bool{}}
}

func (s *kafkaSubsystem) Name() string { return "kafka" }

// Sync applies the node's Kafka tables and bindings and attaches the
// sockops program to the cgroups of the pods they bind. On an error the
// kernel keeps the previous generation.
func (s *kafkaSubsystem) Sync(_ context.Context, in *inputs) error {
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
	s.adopt()
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
	s.attach()
	return s.pin()
}

// adopt takes over, once, the state a previous agent pinned under
// pinDir, as the l7 subsystem does: its tables keep deciding requests, on
// the connections accepted before the restart too, until this agent's
// first generation replaces them beside the active one. Where the state
// cannot be adopted (a version whose maps differ, an incomplete pin
// directory), the first pin replaces it.
func (s *kafkaSubsystem) adopt() {
	rb, ok := s.k.(kafkaReadback)
	if s.adoptTried || s.pinDir == "" || !ok {
		return
	}
	s.adoptTried = true
	ad, err := rb.Adopt(s.pinDir)
	if err != nil {
		s.a.Log.Error(err, "the kafka state pinned by the previous agent is replaced, not adopted: connections accepted before this restart are no longer decided", "dir", s.pinDir)
		return
	}
	if ad == nil {
		return
	}
	s.adopted, s.pinned, s.gen = true, true, ad.Generation
	if peers, err := rb.Peers(); err != nil {
		s.a.Log.Error(err, "read the adopted kafka identities: every ipcache prefix is written again")
	} else {
		s.peers = peers
	}
	// The adopted counters hold the previous agents' counts: the metric
	// counts from here.
	if c, err := s.k.Counters(); err == nil {
		s.counters = c
	}
	s.a.Log.Info("adopted the kafka state pinned by the previous agent", "generation", ad.Generation, "links", ad.Links, "maps", len(ad.Maps), "dir", s.pinDir)
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

// writePeers writes the identity of every ipcache prefix that changed
// (as the l7 subsystem does for its own table).
func (s *kafkaSubsystem) writePeers(state *engine.MapState) error {
	want := make(map[netip.Prefix]uint32, len(state.IPCache)+2)
	for p, id := range state.IPCache {
		want[p] = uint32(id)
	}
	for _, p := range []netip.Prefix{netip.MustParsePrefix("0.0.0.0/0"), netip.MustParsePrefix("::/0")} {
		if _, ok := want[p]; !ok {
			want[p] = uint32(engine.IdentityWorld)
		}
	}
	for p := range s.peers {
		if _, ok := want[p]; !ok {
			want[p] = uint32(fallbackIdentity(state, p))
		}
	}
	for _, p := range slices.SortedFunc(maps.Keys(want), func(x, y netip.Prefix) int { return strings.Compare(x.String(), y.String()) }) {
		id := want[p]
		if have, ok := s.peers[p]; ok && have == id {
			continue
		}
		if err := s.k.SetPeer(p, id); err != nil {
			return err
		}
		s.peers[p] = id
	}
	return nil
}

// attach attaches the sockops program to the cgroup of every bound
// workload not attached yet; a workload whose cgroup is not found is
// recorded and tried again on every verify pass.
func (s *kafkaSubsystem) attach() {
	s.missing = map[string]string{}
	s.podCgroups = map[string]string{}
	var errs []error
	for _, id := range slices.Sorted(maps.Keys(s.plan.endpoints)) {
		uid, ok := s.uids[id]
		if !ok {
			s.missing[id] = "the pod is not among the node's pods"
			continue
		}
		pc, ok := s.cg.pod(uid)
		if !ok {
			s.missing[id] = fmt.Sprintf("no cgroup of pod UID %s under %s yet", uid, s.cg.root)
			continue
		}
		s.podCgroups[id] = pc.path
		if s.attached[pc.path] {
			continue
		}
		if rb, ok := s.k.(kafkaReadback); ok && s.adopted && rb.HasCgroup(pc.path) {
			s.attached[pc.path] = true // by the previous agent's link, adopted
			continue
		}
		if err := s.k.AttachCgroup(pc.path); err != nil {
			s.missing[id] = err.Error()
			errs = append(errs, err)
			continue
		}
		s.attached[pc.path] = true
	}
	s.attachErr = errors.Join(errs...)
}

// pin pins the kernel state under pinDir, so that requests are still
// decided while the agent is down. What a previous agent pinned there
// was adopted (adopt) and stays pinned; only where it could not be
// adopted, the first pin of this process replaces it.
func (s *kafkaSubsystem) pin() error {
	if s.pinDir == "" {
		return nil
	}
	if !s.pinned {
		if err := os.MkdirAll(s.pinDir, 0o700); err != nil {
			return fmt.Errorf("kafka pin dir: %w", err)
		}
		old, err := os.ReadDir(s.pinDir)
		if err != nil {
			return fmt.Errorf("kafka pin dir: %w", err)
		}
		for _, e := range old {
			if err := os.Remove(filepath.Join(s.pinDir, e.Name())); err != nil {
				return fmt.Errorf("release the previous agent's kafka pins: %w", err)
			}
		}
	}
	if err := s.k.Pin(s.pinDir); err != nil {
		return fmt.Errorf("pin kafka: %w", err)
	}
	s.pinned = true
	return nil
}

// Verify attaches the cgroups that were missing, reads the active
// generation back (a drift is recorded and repaired) and exports the
// kernel's counters.
func (s *kafkaSubsystem) Verify(_ context.Context, rec driftRecorder) error {
	var errs []error
	if s.plan != nil && len(s.missing) > 0 && s.syncErr == nil {
		if err := s.cg.scan(s.cg.names); err != nil {
			errs = append(errs, err)
		} else {
			s.attach()
			if err := s.pin(); err != nil {
				errs = append(errs, err)
			}
		}
	}
	if rb, ok := s.k.(kafkaReadback); ok && s.applied != nil {
		errs = append(errs, s.readback(rb, rec))
	}
	c, err := s.k.Counters()
	if err != nil {
		return errors.Join(append(errs, fmt.Errorf("read kafka counters: %w", err))...)
	}
	if m := s.a.Metrics; m != nil && m.KafkaRequests != nil {
		for r, n := range c {
			if was := s.counters[r]; n > was {
				m.KafkaRequests.WithLabelValues(r.String()).Add(float64(n - was))
			}
		}
	}
	s.counters = c
	return errors.Join(errs...)
}

// readback checks the pins (each missing one is pinned again, a Pin
// drift), then compares the kernel's active Kafka generation (tables and
// bindings) and identities with the last applied. A drifted generation is
// repaired by applying the same tables as a new generation (requests
// switch from the tampered tables to the right ones at once); drifted
// identities are written again, extra ones deleted. Each is recorded as a
// MapEntry drift naming kafka.
func (s *kafkaSubsystem) readback(rb kafkaReadback, rec driftRecorder) error {
	if s.pinDir != "" && s.pinned {
		if missing := rb.MissingPins(s.pinDir); len(missing) > 0 {
			err := rb.RepairPins(s.pinDir)
			for _, p := range missing {
				rec(v1.KernelDriftPin, "kafka pin "+p+" removed", err)
			}
		}
	}
	ds, err := rb.Compare(s.gen, s.tables, s.applied.binds)
	if err != nil {
		return fmt.Errorf("read back kafka generation %d: %w", s.gen, err)
	}
	if len(ds) > 0 {
		gen := max(s.a.Datapath.Generation(), s.gen+1)
		err := s.k.Apply(gen, s.tables, s.applied.binds)
		if err == nil {
			s.gen = gen
			s.a.Log.Info("kafka tables applied again after a drift", "generation", gen)
		}
		rec(v1.KernelDriftMapEntry, describeKafkaDrifts("kafka generation", ds), err)
	}
	pds, extra, err := rb.ComparePeers(s.peers)
	if err != nil {
		return fmt.Errorf("read back kafka identities: %w", err)
	}
	if len(pds) > 0 {
		var errs []error
		for _, d := range pds {
			p, perr := netip.ParsePrefix(d.Key)
			if id, ok := s.peers[p]; perr == nil && ok {
				errs = append(errs, s.k.SetPeer(p, id))
			}
		}
		for _, p := range extra {
			errs = append(errs, rb.DeletePeer(p))
		}
		rec(v1.KernelDriftMapEntry, describeKafkaDrifts("kafka identities", pds), errors.Join(errs...))
	}
	return nil
}

// describeKafkaDrifts says what differs, naming up to five entries.
func describeKafkaDrifts(what string, ds []kafka.Drift) string {
	parts := make([]string, 0, min(len(ds), 6))
	for i, d := range ds {
		if i == 5 {
			parts = append(parts, fmt.Sprintf("and %d more", len(ds)-5))
			break
		}
		parts = append(parts, d.String())
	}
	return fmt.Sprintf("%s: %d entries differ: %s", what, len(ds), strings.Join(parts, "; "))
}

// Report says, per object, what the node does not enforce of its
// ingress Kafka rules as written. The L7Enforced condition is the l7
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
				Message: truncate(fmt.Sprintf("%d ingress Kafka rule sets are not enforced as written on this node; first: %s", n, first), 32768)}
		}
	}
}

// ingressKafkaParts are an object's ingress Kafka rules, as the
// capability table names them.
func ingressKafkaParts(o *policyObject) []capability.Gap {
	rs := ruleSetOf(o)
	if rs == nil {
		return nil
	}
	var out []capability.Gap
	for _, p := range capability.Parts(rs, capability.Kafka) {
		if strings.HasPrefix(p.What, "ingress ") {
			out = append(out, p)
		}
	}
	return out
}

// kafkaGaps says what the node does not enforce of an object's ingress
// Kafka rules as written.
func (s *kafkaSubsystem) kafkaGaps(o *policyObject, in *inputs) []gap {
	parts := ingressKafkaParts(o)
	if len(parts) == 0 {
		return nil
	}
	what := partsWhat(parts)
	if s.syncErr != nil {
		msg := fmt.Sprintf("%s are not enforced as written: the kafka subsystem could not sync (%v)", what, s.syncErr)
		if s.applied != nil {
			msg += fmt.Sprintf("; the kernel keeps deciding requests with kafka generation %d", s.gen)
		} else {
			msg += "; the kernel passes every request on the port that L3/L4 allows"
		}
		return []gap{{reason: v1.DatapathErrorReason, message: msg}}
	}
	if s.plan == nil {
		return []gap{{reason: v1.EnforcementPendingReason, message: what + " are not enforced yet: waiting for the first sync"}}
	}
	var out []gap
	var missing []string
	for _, l := range in.local {
		if why, ok := s.missing[l.id]; ok && selects(o, in, l.id) {
			missing = append(missing, l.id+" ("+why+")")
		}
	}
	if len(missing) > 0 {
		more := ""
		if len(missing) > 3 {
			more = fmt.Sprintf(", and %d more", len(missing)-3)
			missing = missing[:3]
		}
		out = append(out, gap{reason: reasonCgroupNotFound, message: fmt.Sprintf("%s are not decided for workloads whose cgroup the Kafka sockops program is not attached to: %s%s; the kernel passes their requests on the port that L3/L4 allows",
			what, strings.Join(missing, ", "), more)})
	}
	for _, rule := range slices.Sorted(maps.Keys(s.failed)) {
		if ruleOf(in, rule, o.key) {
			out = append(out, gap{reason: v1.DatapathErrorReason, message: fmt.Sprintf("%s: the kernel cannot hold them (%s), so it refuses every Kafka request they would decide", what, s.failed[rule])})
			break
		}
	}
	for _, rule := range slices.Sorted(maps.Keys(s.plan.unbound)) {
		if ruleOf(in, rule, o.key) {
			out = append(out, gap{reason: v1.NotSupportedReason, message: fmt.Sprintf("%s on %s are not enforced: the kernel binds Kafka rules to at most %d ports per range, and passes every request on the others that L3/L4 allows",
				what, s.plan.unbound[rule], maxL7BlockPorts)})
			break
		}
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
// the Kafka datapath: it reports the node's ingress Kafka rules as not
// enforced (when the capability table says the datapath enforces them).
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
		for _, p := range ingressKafkaParts(o) {
			k.gaps[o.key] = append(k.gaps[o.key], gap{reason: v1.NotSupportedReason,
				message: fmt.Sprintf("%s are not enforced: %s, so the kernel %s", p.What, k.why, capability.Table[capability.Kafka].Kernel)})
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
