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
	"cmp"
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
	"sync"

	"k8s.io/apimachinery/pkg/types"

	"github.com/prometheus/client_golang/prometheus"

	v1 "github.com/palisade-dev/palisade/api/v1alpha1"
	"github.com/palisade-dev/palisade/internal/capability"
	"github.com/palisade-dev/palisade/internal/engine"
	"github.com/palisade-dev/palisade/internal/l7"
)

// L7Kernel is the L7 datapath the l7 subsystem drives. *l7.Datapath
// implements it; the agent's unit tests use a fake.
type L7Kernel interface {
	sockKernel[l7.Reason]
	// Apply writes a generation beside the active one and switches to it.
	Apply(generation uint64, tables *engine.HTTPTables, binds []l7.Binding) error
	Close() error
}

var _ L7Kernel = (*l7.Datapath)(nil)

// l7Readback is the part of the L7 datapath that takes over a previous
// agent's pinned state and reads the kernel back. *l7.Datapath has it;
// a kernel without it (the unit tests' fake) is neither adopted nor read
// back.
type l7Readback interface {
	sockReadback
	// Adopt takes over the state pinned under dir (nil: none pinned).
	Adopt(dir string) (*l7.Adopted, error)
	// Compare reads the active generation back and compares it with what
	// was applied.
	Compare(generation uint64, tables *engine.HTTPTables, binds []l7.Binding) ([]l7.Drift, error)
	// ComparePeers compares l7_peers with the identities written and
	// returns the prefixes the kernel holds beyond them.
	ComparePeers(want map[netip.Prefix]uint32) ([]l7.Drift, []netip.Prefix, error)
}

var _ l7Readback = (*l7.Datapath)(nil)

var (
	_ outsideChecker = (*l7Subsystem)(nil)
	_ outsideChecker = (*kafkaSubsystem)(nil)
)

// l7Subsystem runs the node's ingress HTTP rules in the kernel (bpf/l7):
// from the map state the network subsystem applied, it builds the HTTP
// tables and the bindings (which local address and port decides requests
// from which peer identity with which list), writes the peers' identities,
// applies both as one generation, and attaches the sockops program to the
// cgroup of every pod that has a binding. Egress HTTP and Kafka rules are
// not decided: they stay the capability table's gaps.
type l7Subsystem struct {
	sockSubsystem[l7.Reason]
	k L7Kernel

	// plan is the last plan computed, applied whether it was applied.
	plan    *l7Plan
	applied *l7Plan
	// tables are the applied plan's tables, as compiled: what the
	// read-back compares the kernel with.
	tables *engine.HTTPTables
}

func newL7Subsystem(a *Agent) *l7Subsystem {
	return &l7Subsystem{sockSubsystem: newSockSubsystem[l7.Reason](a, "l7", a.L7, a.L7PinDir), k: a.L7}
}

// l7Subsystem returns the L7 subsystem, or, without an L7 datapath, a
// stand-in that reports the node's L7 rules as not enforced.
func (a *Agent) l7Subsystem() Subsystem {
	if a.L7 == nil {
		return &l7Off{why: cmp.Or(a.L7Off, "the agent runs without the L7 datapath")}
	}
	return newL7Subsystem(a)
}

func (s *l7Subsystem) Name() string { return "l7" }

// Sync applies the node's HTTP tables and bindings and attaches the
// sockops program to the cgroups of the pods they bind. On an error the
// kernel keeps the previous generation.
func (s *l7Subsystem) Sync(_ context.Context, in *inputs) error {
	s.kmu.Lock()
	defer s.kmu.Unlock()
	s.syncs++
	s.syncErr = s.sync(in)
	return s.syncErr
}

func (s *l7Subsystem) sync(in *inputs) error {
	state := s.a.net.desired
	if state == nil {
		return errors.New("the network subsystem has not applied a state yet")
	}
	plan, err := planL7(state, in.local)
	if err != nil {
		return fmt.Errorf("plan: %w", err)
	}
	s.plan = plan
	tables, failed := compileL7(plan)
	if rb, ok := s.k.(l7Readback); ok {
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
		if len(plan.binds) > maxL7Binds {
			return fmt.Errorf("%d bindings, the kernel holds %d: the previous generation stays", len(plan.binds), maxL7Binds)
		}
		if n := countPorts(plan.binds); n > maxL7Ports {
			return fmt.Errorf("%d bound addresses and ports, the kernel holds %d: the previous generation stays", n, maxL7Ports)
		}
		gen := max(s.a.Datapath.Generation(), s.gen+1)
		if err := s.k.Apply(gen, tables, plan.binds); err != nil {
			return fmt.Errorf("apply generation %d: %w", gen, err)
		}
		s.gen, s.applied, s.tables = gen, plan, tables
		s.a.Log.Info("l7 tables applied", "generation", gen, "lists", len(plan.lists), "bindings", len(plan.binds))
	}
	s.failed = failed

	s.uids = map[string]types.UID{}
	names := make(map[types.UID]podName, len(in.pods))
	for _, p := range in.pods {
		names[p.uid] = podName{p.namespace, p.name}
		s.uids[p.namespace+"/"+p.name] = p.uid
	}
	if err := s.cg.scan(names); err != nil {
		return err
	}
	s.attach(plan.endpoints)
	return s.pin()
}

// compileL7 compiles the plan's lists. A list the kernel cannot decide
// is replaced by one that refuses every request, named by its lowest
// rule, and reported by rule.
func compileL7(p *l7Plan) (*engine.HTTPTables, map[engine.RuleID]string) {
	t := &engine.HTTPTables{Lists: make(map[engine.L7ID]*engine.HTTPList, len(p.lists))}
	failed := map[engine.RuleID]string{}
	for id, list := range p.lists {
		hl, err := engine.CompileHTTPList(list)
		if err != nil {
			for _, a := range list {
				if a.Rules != nil && len(a.Rules.HTTP) > 0 {
					failed[a.Rule] = err.Error()
				}
			}
			hl, err = engine.CompileHTTPList(refuseAll(list[0].Rule))
			if err != nil {
				panic(fmt.Sprintf("the refuse-all list does not compile: %v", err))
			}
		}
		t.Lists[id] = hl
	}
	return t, failed
}

func countPorts(binds []l7.Binding) int {
	type pk struct {
		a netip.Addr
		p uint16
	}
	seen := map[pk]bool{}
	for _, b := range binds {
		seen[pk{b.Addr, b.Port}] = true
	}
	return len(seen)
}

// fallbackIdentity is the identity of the addresses of p once p is gone:
// that of the longest ipcache prefix shorter than p that contains it.
func fallbackIdentity(state *engine.MapState, p netip.Prefix) engine.Identity {
	for bits := p.Bits() - 1; bits >= 0; bits-- {
		q, _ := p.Addr().Prefix(bits)
		if id, ok := state.IPCache[q]; ok {
			return id
		}
	}
	return engine.IdentityWorld
}

// l7Retry reports whether a bound workload's cgroup is missing: it may
// appear (a pod starting), so the sync should run again. Verify passes
// retry the attach meanwhile.
func (a *Agent) l7Retry() bool {
	for _, sub := range a.subs {
		if s, ok := sub.(*l7Subsystem); ok {
			return len(s.missing) > 0
		}
	}
	return false
}

// Verify attaches the cgroups that were missing (a pod starting), reads
// the active generation and the identities back and repairs what
// drifted, and exports the kernel's counters.
func (s *l7Subsystem) Verify(_ context.Context, rec driftRecorder) error {
	s.kmu.Lock()
	defer s.kmu.Unlock()
	var endpoints map[string]bool
	if s.plan != nil {
		endpoints = s.plan.endpoints
	}
	var readback func() error
	if _, ok := s.k.(l7Readback); ok && s.applied != nil {
		readback = func() error {
			return s.readback(rec, s.startCheck, func(gen uint64) error { return s.k.Apply(gen, s.tables, s.applied.binds) })
		}
	}
	var vec *prometheus.CounterVec
	if m := s.a.Metrics; m != nil {
		vec = m.L7Requests
	}
	return s.verify(endpoints, readback, vec)
}

// startCheck copies what the read-back compares the kernel with (nil:
// the kernel has no read-back, or nothing was applied); under the
// agent's lock.
func (s *l7Subsystem) startCheck() *sockCheck {
	rb, ok := s.k.(l7Readback)
	if !ok || s.applied == nil {
		return nil
	}
	tables, binds := s.tables, s.applied.binds
	return newSockCheck(&s.sockSubsystem, func(gen uint64) ([]l7.Drift, error) { return rb.Compare(gen, tables, binds) },
		rb.ComparePeers, func(d l7.Drift) string { return d.Key })
}

// Report states L7Enforced and what each object does not enforce of its
// L7 rules on this node.
func (s *l7Subsystem) Report(in *inputs, r *report) {
	var gaps int
	var first string
	add := func(k objKey, g gap) {
		r.gap(k, g)
		if gaps == 0 {
			first = k.String() + ": " + g.message
		}
		gaps++
	}
	unsupported := 0
	if in != nil {
		for _, o := range in.objects {
			if !o.concerns {
				continue
			}
			for _, g := range o.gaps {
				if g.Support().Subsystem == capability.SubsystemL7 {
					r.gap(o.key, gap{reason: v1.NotSupportedReason, message: g.String(), whole: g.Support().Effect == capability.NotLoaded})
					unsupported++
				}
			}
			if !o.network() {
				continue
			}
			if hostPolicy(o) {
				// Its ingress HTTP rules are HTTPHost's, among o.gaps:
				// nothing is bound for them.
				continue
			}
			for _, g := range s.httpGaps(o, in) {
				add(o.key, g)
			}
		}
	}
	switch {
	case s.syncErr != nil:
		r.condition(v1.L7EnforcedCondition, false, v1.DatapathErrorReason, fmt.Sprintf("the node keeps deciding requests with l7 generation %d: %v", s.gen, s.syncErr))
	case s.plan == nil:
		r.condition(v1.L7EnforcedCondition, false, v1.EnforcementPendingReason, "waiting for the first sync")
	case gaps > 0:
		r.condition(v1.L7EnforcedCondition, false, v1.PartiallyEnforcedReason, fmt.Sprintf("%d ingress HTTP rule sets are not enforced as written on this node; first: %s", gaps, first))
	case unsupported > 0:
		r.condition(v1.L7EnforcedCondition, false, v1.NotSupportedReason,
			fmt.Sprintf("this version's datapath does not enforce %d L7 parts of this node's objects (egress HTTP, Kafka, ...); ingress HTTP rules: %s", unsupported, s.summary()))
	default:
		r.condition(v1.L7EnforcedCondition, true, v1.EnforcementSucceededReason, s.summary())
	}
}

func (s *l7Subsystem) summary() string {
	if s.applied == nil || len(s.applied.binds) == 0 {
		return "no ingress HTTP rule on this node's workloads"
	}
	return fmt.Sprintf("l7 generation %d decides the requests of %d addresses and ports (%d lists) on %d workloads whose cgroups carry the sockops program",
		s.gen, countPorts(s.applied.binds), len(s.applied.lists), len(s.podCgroups))
}

// httpGaps says what the node does not enforce of an object's ingress
// HTTP rules as written.
func (s *l7Subsystem) httpGaps(o *policyObject, in *inputs) []gap {
	rs := ruleSetOf(o)
	if rs == nil {
		return nil
	}
	parts := httpParts(rs)
	if len(parts) == 0 {
		return nil
	}
	var unbound map[engine.RuleID]string
	if s.plan != nil {
		unbound = s.plan.unbound
	}
	out, _ := s.gaps(o, in, partsWhat(parts), s.applied != nil, s.plan != nil, unbound, gapTexts{sockops: "the sockops program", proto: "HTTP",
		failed: "the kernel cannot decide them (%s), so it refuses every request they would decide"})
	return out
}

// partsWhat joins the parts' names: "ingress HTTP rules on 80/TCP".
func partsWhat(parts []capability.Gap) string {
	names := make([]string, len(parts))
	for i, p := range parts {
		names[i] = p.What
	}
	return strings.Join(slices.Compact(names), ", ")
}

// hostPolicy reports whether o is a host policy (a ClusterNetworkPolicy
// with nodeSelector), whose ingress HTTP rules are capability.HTTPHost's:
// its capability gaps report them.
func hostPolicy(o *policyObject) bool {
	cnp, ok := o.obj.(*v1.ClusterNetworkPolicy)
	return ok && cnp.Spec.NodeSelector != nil
}

// ruleSetOf is a network policy object's rules, nil for other kinds.
func ruleSetOf(o *policyObject) *v1.RuleSet {
	switch t := o.obj.(type) {
	case *v1.NetworkPolicy:
		return &t.Spec.RuleSet
	case *v1.ClusterNetworkPolicy:
		return &t.Spec.RuleSet
	}
	return nil
}

// selects reports whether the object's policy selects local workload id.
func selects(o *policyObject, in *inputs, id string) bool {
	e, ok := in.cluster.Endpoint(id)
	if !ok {
		return false
	}
	for _, p := range in.ir.Policies {
		if p.Origin.Kind == o.key.kind && p.Origin.Namespace == o.key.namespace && p.Origin.Name == o.key.name &&
			p.Subject.Endpoints != nil && p.Subject.Endpoints.Matches(in.cluster.WorkloadLabels(e)) {
			return true
		}
	}
	return false
}

// ruleOf reports whether rule is one of object k's.
func ruleOf(in *inputs, rule engine.RuleID, k objKey) bool {
	r, ok := in.ir.Rule(rule)
	return ok && r.Origin.Kind == k.kind && r.Origin.Namespace == k.namespace && r.Origin.Name == k.name
}

// l7Off stands in for the L7 subsystem on a node that runs without the
// L7 datapath: it loads nothing and reports the node's ingress HTTP rules
// as not enforced, and, as with the datapath, the L7 parts the capability
// table lists as not enforced.
type l7Off struct {
	why  string
	gaps map[objKey][]gap
}

func (l *l7Off) Name() string { return "l7" }

func (l *l7Off) Sync(_ context.Context, in *inputs) error {
	l.gaps = map[objKey][]gap{}
	for _, o := range in.objects {
		if !o.concerns {
			continue
		}
		for _, g := range o.gaps {
			if g.Support().Subsystem == capability.SubsystemL7 {
				l.gaps[o.key] = append(l.gaps[o.key], gap{reason: v1.NotSupportedReason, message: g.String(), whole: g.Support().Effect == capability.NotLoaded})
			}
		}
		if rs := ruleSetOf(o); rs != nil && !hostPolicy(o) {
			for _, p := range httpParts(rs) {
				l.gaps[o.key] = append(l.gaps[o.key], gap{reason: v1.NotSupportedReason,
					message: fmt.Sprintf("%s are not enforced: %s, so the kernel %s", p.What, l.why, capability.Table[capability.HTTP].Kernel)})
			}
		}
	}
	return nil
}

func (l *l7Off) Verify(context.Context, driftRecorder) error { return nil }

func (l *l7Off) Report(_ *inputs, r *report) {
	if len(l.gaps) == 0 {
		r.condition(v1.L7EnforcedCondition, true, v1.EnforcementSucceededReason, "no object on this node needs it")
		return
	}
	keys := sortedKeys(l.gaps)
	for _, k := range keys {
		for _, g := range l.gaps[k] {
			r.gap(k, g)
		}
	}
	r.condition(v1.L7EnforcedCondition, false, v1.NotSupportedReason,
		fmt.Sprintf("%d objects have L7 rules this node does not enforce (first: %s: %s)", len(keys), keys[0], l.gaps[keys[0]][0].message))
}

// sockKernel is what the l7 and kafka subsystems drive alike of their
// datapaths (L7Kernel, KafkaKernel).
type sockKernel[R comparable] interface {
	// AttachCgroup attaches the sockops program to a cgroup v2 directory.
	AttachCgroup(path string) error
	// Pin pins the maps and the cgroup links under dir; pinning again
	// pins what was attached since.
	Pin(dir string) error
	// SetPeer says which identity the addresses of prefix have.
	SetPeer(prefix netip.Prefix, identity uint32) error
	// Counters are the kernel's counters by reason.
	Counters() (map[R]uint64, error)
}

// sockReadback is what l7Readback and kafkaReadback share.
type sockReadback interface {
	// HasCgroup reports whether the sockops program is attached to the
	// cgroup directory path (by an adopted link too).
	HasCgroup(path string) bool
	// Peers is the peers map as the kernel holds it.
	Peers() (map[netip.Prefix]uint32, error)
	// DeletePeer deletes a prefix's identity.
	DeletePeer(prefix netip.Prefix) error
	// MissingPins are the pins under dir that were made and are gone;
	// RepairPins pins them again.
	MissingPins(dir string) []string
	RepairPins(dir string) error
}

// sockSubsystem is what the l7 and kafka subsystems share: the state
// pinned under pinDir and its adoption, the peers' identities, the
// sockops program's cgroups, the counters and the read-back's pins and
// identities. Each subsystem keeps its plan, tables and generation's
// read-back.
type sockSubsystem[R interface {
	comparable
	fmt.Stringer
}] struct {
	a *Agent
	// name is the datapath's, in logs, errors and drifts ("l7", "kafka").
	name string
	kern sockKernel[R]
	cg   *cgroupResolver
	// pinDir is where the kernel state is pinned ("" pins nothing).
	pinDir string
	pinned bool
	// adoptTried is set once the state a previous agent pinned was
	// looked for; adopted when it was taken over.
	adoptTried, adopted bool
	gen                 uint64
	// failed are the lists that could not be compiled, replaced by lists
	// that refuse every request: by rule, the reason.
	failed map[engine.RuleID]string
	// peers are the identities written to the kernel, by prefix.
	peers map[netip.Prefix]uint32
	// attached are the cgroup directories the sockops program is attached
	// to; podCgroups the cgroup of each local workload found.
	attached   map[string]bool
	podCgroups map[string]string
	// missing are the workloads with bindings whose cgroup is not found
	// or could not be attached: workload → why.
	missing map[string]string
	// uids are the local pods' UIDs by workload, for the retries.
	uids map[string]types.UID

	syncErr, attachErr error
	counters           map[R]uint64
	// synced is network.syncs at this subsystem's last sync (kept or
	// run), cluster the cluster it read.
	synced  uint64
	cluster *engine.Cluster

	// kmu serializes the subsystem's calls to its datapath, which has no
	// lock of its own: the verify pass's read-back outside the agent's
	// lock (runCheck) against a sync's or a repair's writes.
	kmu *sync.Mutex
	// syncs counts the syncs run (not kept) and the repairs: a
	// comparison made outside the agent's lock (sockCheck) holds only
	// while none ran since. check is that comparison, made by the verify
	// pass for Verify; deferred as network.deferred (useCheck).
	syncs    uint64
	check    *sockCheck
	deferred bool
}

// outsideChecker is a subsystem whose verify pass reads the kernel back
// outside the agent's lock (checkSocks): the l7 and kafka subsystems.
type outsideChecker interface {
	// startCheck copies what was applied; under the agent's lock.
	startCheck() *sockCheck
	// runCheck reads back and compares; outside the agent's lock.
	runCheck(c *sockCheck) error
	// holds reports whether c's outcome is the kernel's against what is
	// applied now; under the agent's lock.
	holds(c *sockCheck) bool
	// setCheck hands c to the next Verify; under the agent's lock.
	setCheck(c *sockCheck)
}

// sockCheck is a sock subsystem's read-back of its active generation and
// identities, compared with copies of what it applied (the tables, the
// bindings, the generation and the identities written), so that it can
// run outside the agent's lock: at 10k policies and 5k pods the l7 and
// kafka read-backs held the lock 60 to 135 ms every verify pass, and a
// change arriving then waited. The repairs are made by Verify, under the
// lock, and only from a comparison that holds.
type sockCheck struct {
	syncs uint64 // sockSubsystem.syncs when copied
	gen   uint64 // the generation compared
	err   error
	// drifts are the generation's, peerDrifts the identities'; drifted
	// are the prefixes whose identity differs, extra those the kernel
	// holds beyond the ones written.
	drifts, peerDrifts []fmt.Stringer
	drifted, extra     []netip.Prefix
	read               func(c *sockCheck)
}

// newSockCheck copies what s applied for a comparison: compare compares
// the active generation with gen (the tables and bindings are the
// caller's copies), comparePeers the identities with a copy of those
// written; key is a peer drift's prefix. Under the agent's lock.
func newSockCheck[R interface {
	comparable
	fmt.Stringer
}, D fmt.Stringer](s *sockSubsystem[R], compare func(gen uint64) ([]D, error),
	comparePeers func(want map[netip.Prefix]uint32) ([]D, []netip.Prefix, error), key func(D) string) *sockCheck {
	name, gen, peers := s.name, s.gen, maps.Clone(s.peers)
	return &sockCheck{syncs: s.syncs, gen: gen, read: func(c *sockCheck) {
		ds, err := compare(gen)
		if err != nil {
			c.err = fmt.Errorf("read back %s generation %d: %w", name, gen, err)
			return
		}
		c.drifts = stringers(ds)
		pds, extra, err := comparePeers(peers)
		if err != nil {
			c.err = fmt.Errorf("read back %s identities: %w", name, err)
			return
		}
		c.peerDrifts, c.extra = stringers(pds), extra
		for _, d := range pds {
			if p, err := netip.ParsePrefix(key(d)); err == nil {
				c.drifted = append(c.drifted, p)
			}
		}
	}}
}

func stringers[D fmt.Stringer](ds []D) []fmt.Stringer {
	out := make([]fmt.Stringer, len(ds))
	for i, d := range ds {
		out[i] = d
	}
	return out
}

// runCheck reads back and compares, outside the agent's lock; kmu keeps
// it apart from the datapath's writes.
func (s *sockSubsystem[R]) runCheck(c *sockCheck) error {
	s.kmu.Lock()
	defer s.kmu.Unlock()
	c.read(c)
	return c.err
}

// holds reports whether c's outcome is the kernel's against what s
// applied: no sync or repair ran since the copy, and the generation
// compared is still the active one. Under the agent's lock.
func (s *sockSubsystem[R]) holds(c *sockCheck) bool {
	return c != nil && c.err == nil && c.syncs == s.syncs && c.gen == s.gen
}

func (s *sockSubsystem[R]) setCheck(c *sockCheck) { s.check = c }

// keep reports whether this sync leaves the subsystem as the last one
// left it, without running: the last sync (the network's previous one)
// succeeded with every binding attached, the cluster is the one it read
// (the same local workloads and pods), and the network's change of the
// map state since then (network.delta) touches nothing the bind planner
// and the peers read (bindInputsSame). A change to one policy that
// selects no local workload then costs the subsystem nothing; every
// other change, and any doubt, runs the sync as before. Called once per
// sync, before Sync, by the agent.
func (s *sockSubsystem[R]) keep(in *inputs) bool {
	n := s.a.net
	last, cluster := s.synced, s.cluster
	s.synced, s.cluster = n.syncs, in.cluster
	return last != 0 && last+1 == n.syncs && cluster == in.cluster && s.syncErr == nil && s.attachErr == nil && len(s.missing) == 0 &&
		n.stateApplied && n.delta != nil && n.desired != nil && bindInputsSame(n.delta, n.desired, in.local)
}

func newSockSubsystem[R interface {
	comparable
	fmt.Stringer
}](a *Agent, name string, k sockKernel[R], pinDir string) sockSubsystem[R] {
	return sockSubsystem[R]{a: a, name: name, kern: k, cg: newCgroupResolver(a.CgroupRoot), pinDir: pinDir,
		peers: map[netip.Prefix]uint32{}, attached: map[string]bool{}, kmu: &sync.Mutex{}}
}

// adopt takes over, once, the state a previous agent pinned under
// pinDir (adopt is the datapath's Adopt: found false when none is
// pinned): its tables keep deciding requests, on the connections
// accepted before the restart too, until this agent's first generation
// replaces them beside the active one. Its identities are this agent's
// to keep up to date. Where the state cannot be adopted (an incompatible
// version, an incomplete pin directory), the first pin replaces it.
func (s *sockSubsystem[R]) adopt(adopt func(dir string) (found bool, gen uint64, links, maps int, err error)) {
	rb, ok := s.kern.(sockReadback)
	if s.adoptTried || s.pinDir == "" || !ok {
		return
	}
	s.adoptTried = true
	found, gen, links, nmaps, err := adopt(s.pinDir)
	if err != nil {
		s.a.Log.Error(err, "the "+s.name+" state pinned by the previous agent is replaced, not adopted: connections accepted before this restart are no longer decided", "dir", s.pinDir)
		return
	}
	if !found {
		return
	}
	s.adopted, s.pinned, s.gen = true, true, gen
	if peers, err := rb.Peers(); err != nil {
		s.a.Log.Error(err, "read the adopted "+s.name+" identities: every ipcache prefix is written again")
	} else {
		s.peers = peers
	}
	// The adopted counters hold the previous agents' counts: the metric
	// counts from here.
	if c, err := s.kern.Counters(); err == nil {
		s.counters = c
	}
	s.a.Log.Info("adopted the "+s.name+" state pinned by the previous agent", "generation", gen, "links", links, "maps", nmaps, "dir", s.pinDir)
}

// writePeers writes the identity of every ipcache prefix that changed.
// The kernel offers no delete: a prefix no longer in the ipcache is
// written with the identity its addresses fall back to (the longest
// shorter prefix that holds it, else world), which decides as its absence
// would. A peer the kernel finds no prefix for is any peer; the world
// prefixes make it world, as the engine's Identity does.
func (s *sockSubsystem[R]) writePeers(state *engine.MapState) error {
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
	// Only the prefixes to write are sorted (in a stable order): sorting
	// and formatting all of them on every sync was a fifth of the agent's
	// CPU at 5k pods, for syncs that write none.
	var changed []netip.Prefix
	for p, id := range want {
		if have, ok := s.peers[p]; !ok || have != id {
			changed = append(changed, p)
		}
	}
	slices.SortFunc(changed, func(x, y netip.Prefix) int { return cmp.Compare(x.String(), y.String()) })
	for _, p := range changed {
		id := want[p]
		if err := s.kern.SetPeer(p, id); err != nil {
			return err
		}
		s.peers[p] = id
	}
	return nil
}

// attach attaches the sockops program to the cgroup of every bound
// workload (endpoints) not attached yet. A workload whose cgroup is not
// found is recorded, and tried again on every verify pass.
func (s *sockSubsystem[R]) attach(endpoints map[string]bool) {
	s.missing = map[string]string{}
	s.podCgroups = map[string]string{}
	var errs []error
	for _, id := range slices.Sorted(maps.Keys(endpoints)) {
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
		if rb, ok := s.kern.(sockReadback); ok && s.adopted && rb.HasCgroup(pc.path) {
			s.attached[pc.path] = true // by the previous agent's link, adopted
			continue
		}
		if err := s.kern.AttachCgroup(pc.path); err != nil {
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
// adopted, the first pin of this process replaces it: its cgroup links
// are released (the program it attached stops running) once this
// process's are attached, and its maps, and the connections in its
// SOCKHASH with them, are freed.
func (s *sockSubsystem[R]) pin() error {
	if s.pinDir == "" {
		return nil
	}
	if !s.pinned {
		if err := os.MkdirAll(s.pinDir, 0o700); err != nil {
			return fmt.Errorf("%s pin dir: %w", s.name, err)
		}
		old, err := os.ReadDir(s.pinDir)
		if err != nil {
			return fmt.Errorf("%s pin dir: %w", s.name, err)
		}
		for _, e := range old {
			if err := os.Remove(filepath.Join(s.pinDir, e.Name())); err != nil {
				return fmt.Errorf("release the previous agent's %s pins: %w", s.name, err)
			}
		}
		if len(old) > 0 {
			s.a.Log.Info("replaced the "+s.name+" state pinned by the previous agent", "pins", len(old), "dir", s.pinDir)
		}
	}
	if err := s.kern.Pin(s.pinDir); err != nil {
		return fmt.Errorf("pin %s: %w", s.name, err)
	}
	s.pinned = true
	return nil
}

// verify attaches the cgroups of the bound workloads (endpoints) that
// were missing (a pod starting), runs the read-back (nil: none), and
// exports the kernel's counters' increments to vec (nil: none).
func (s *sockSubsystem[R]) verify(endpoints map[string]bool, readback func() error, vec *prometheus.CounterVec) error {
	var errs []error
	if endpoints != nil && len(s.missing) > 0 && s.syncErr == nil {
		if err := s.cg.scan(s.cg.names); err != nil {
			errs = append(errs, err)
		} else {
			s.attach(endpoints)
			if err := s.pin(); err != nil {
				errs = append(errs, err)
			}
		}
	}
	if readback != nil {
		errs = append(errs, readback())
	}
	c, err := s.kern.Counters()
	if err != nil {
		return errors.Join(append(errs, fmt.Errorf("read %s counters: %w", s.name, err))...)
	}
	if vec != nil {
		for r, n := range c {
			if was := s.counters[r]; n > was {
				vec.WithLabelValues(r.String()).Add(float64(n - was))
			}
		}
	}
	s.counters = c
	return errors.Join(errs...)
}

// readback checks the pins (without them the next agent cannot adopt
// the state: each missing one is pinned again, a Pin drift), then takes
// the comparison of the kernel's active generation and identities with
// the last applied that the verify pass made outside the agent's lock
// (sockCheck), as the network subsystem takes its maps' (useCheck): when
// it does not hold, start makes one here, under the lock, or the
// comparison is left to the next pass. A drifted generation is repaired
// by applying the same tables as a new generation (apply: requests
// switch from the tampered tables to the right ones at once); drifted
// identities are written again, extra ones deleted. Each is recorded as
// a MapEntry drift naming the datapath. Under kmu.
func (s *sockSubsystem[R]) readback(rec driftRecorder, start func() *sockCheck, apply func(gen uint64) error) error {
	rb, ok := s.kern.(sockReadback)
	if !ok {
		return nil
	}
	if s.pinDir != "" && s.pinned {
		if missing := rb.MissingPins(s.pinDir); len(missing) > 0 {
			err := rb.RepairPins(s.pinDir)
			for _, p := range missing {
				rec(v1.KernelDriftPin, s.name+" pin "+p+" removed", err)
			}
		}
	}
	chk := s.check
	s.check = nil
	use, compare := useCheck(s.holds(chk), chk != nil && chk.err == nil, &s.deferred)
	switch {
	case compare:
		if chk = start(); chk == nil {
			return nil
		}
		chk.read(chk)
	case !use:
		return nil
	}
	if len(chk.drifts) > 0 {
		gen := max(s.a.Datapath.Generation(), s.gen+1)
		err := apply(gen)
		if err == nil {
			s.gen = gen
			s.a.Log.Info(s.name+" tables applied again after a drift", "generation", gen)
		}
		s.syncs++
		rec(v1.KernelDriftMapEntry, describeSockDrifts(s.name+" generation", chk.drifts), err)
	}
	if chk.err != nil {
		return chk.err
	}
	if len(chk.peerDrifts) > 0 {
		var errs []error
		for _, p := range chk.drifted {
			if id, ok := s.peers[p]; ok {
				errs = append(errs, s.kern.SetPeer(p, id))
			}
		}
		for _, p := range chk.extra {
			errs = append(errs, rb.DeletePeer(p))
		}
		s.syncs++
		rec(v1.KernelDriftMapEntry, describeSockDrifts(s.name+" identities", chk.peerDrifts), errors.Join(errs...))
	}
	return nil
}

// describeSockDrifts says what differs, naming up to five entries.
func describeSockDrifts[D fmt.Stringer](what string, ds []D) string {
	return fmt.Sprintf("%s: %d entries differ: %s", what, len(ds), firstDrifts(ds))
}

// gapTexts are the words a subsystem's gaps differ by: its sockops
// program, its protocol and what the kernel does with a list it cannot
// hold (a format of the reason).
type gapTexts struct{ sockops, proto, failed string }

// gaps says what the node does not enforce of an object's rules of the
// protocol (what names them) as written: the subsystem could not sync
// (applied: a generation of this agent's decides meanwhile), no plan yet
// (planned false; final true: nothing more to say), a
// selected workload's cgroup missing, a list the kernel cannot hold, and
// rules over too many ports to bind (unbound).
func (s *sockSubsystem[R]) gaps(o *policyObject, in *inputs, what string, applied, planned bool, unbound map[engine.RuleID]string, t gapTexts) (out []gap, final bool) {
	if s.syncErr != nil {
		msg := fmt.Sprintf("%s are not enforced as written: the %s subsystem could not sync (%v)", what, s.name, s.syncErr)
		if applied {
			msg += fmt.Sprintf("; the kernel keeps deciding requests with %s generation %d", s.name, s.gen)
		} else {
			msg += "; the kernel passes every request on the port that L3/L4 allows"
		}
		return []gap{{reason: v1.DatapathErrorReason, message: msg}}, true
	}
	if !planned {
		return []gap{{reason: v1.EnforcementPendingReason, message: what + " are not enforced yet: waiting for the first sync"}}, true
	}
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
		out = append(out, gap{reason: reasonCgroupNotFound, message: fmt.Sprintf("%s are not decided for workloads whose cgroup %s is not attached to: %s%s; the kernel passes their requests on the port that L3/L4 allows",
			what, t.sockops, strings.Join(missing, ", "), more)})
	}
	for _, rule := range slices.Sorted(maps.Keys(s.failed)) {
		if ruleOf(in, rule, o.key) {
			out = append(out, gap{reason: v1.DatapathErrorReason, message: what + ": " + fmt.Sprintf(t.failed, s.failed[rule])})
			break
		}
	}
	for _, rule := range slices.Sorted(maps.Keys(unbound)) {
		if ruleOf(in, rule, o.key) {
			out = append(out, gap{reason: v1.NotSupportedReason, message: fmt.Sprintf("%s on %s are not enforced: the kernel binds %s rules to at most %d ports per range, and passes every request on the others that L3/L4 allows",
				what, unbound[rule], t.proto, maxL7BlockPorts)})
			break
		}
	}
	return out, false
}
