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
	"net/netip"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/cilium/ebpf/ringbuf"
	"github.com/go-logr/logr"

	v1 "github.com/palisade-dev/palisade/api/v1alpha1"
	"github.com/palisade-dev/palisade/internal/capability"
	"github.com/palisade-dev/palisade/internal/datapath"
	"github.com/palisade-dev/palisade/internal/engine"
	"github.com/palisade-dev/palisade/internal/flows"
	"github.com/palisade-dev/palisade/internal/metrics"
	"github.com/palisade-dev/palisade/internal/observer"
)

// DefaultGenerations is how many policy generations' rule tables the
// observer keeps, so that an event of an earlier generation still names
// its rule.
const DefaultGenerations = 8

// DefaultLossInterval is how often the observer counts losses between
// verify passes.
const DefaultLossInterval = time.Second

// EventSource is where the observer reads the datapath's verdict events:
// *datapath.EventReader, or a fake in unit tests. Read blocks; Close
// makes a blocked Read return.
type EventSource interface {
	Read() (datapath.Event, error)
	Close() error
}

var _ EventSource = (*datapath.EventReader)(nil)

// Observer is the flow observer, the agent's flows subsystem: it reads
// the datapath's events, resolves each to a flows.Flow (workloads,
// policy, Git revision, file:line) with the rule tables of the last
// Generations generations, and adds it to Buffer, which the gRPC service
// serves. Start runs the reader; the agent syncs, verifies and reports it
// as a subsystem.
type Observer struct {
	Source EventSource
	Buffer *observer.Buffer
	// Generations is how many generations' tables are kept; 0 means
	// DefaultGenerations.
	Generations int
	// Kernel is where the kernel's count of lost events is read; nil
	// means the agent's datapath.
	Kernel interface {
		Counters() (datapath.Counters, error)
	}
	// LossInterval is how often the reader counts the kernel's and its
	// own losses besides each verify pass, so a follower hears of them
	// soon; 0 means DefaultLossInterval.
	LossInterval time.Duration
	Log          logr.Logger

	a *Agent
	// mu guards views, rules and readErr: the reader resolves while the
	// agent syncs.
	mu      sync.RWMutex
	views   []*flowView // oldest first
	rules   ruleTable
	readErr error
	// lossMu guards kernelLost, counted and skipped: verify passes and
	// the reader's ticker both count.
	lossMu sync.Mutex
	// kernelLost is the datapath's EventsLost at the last count; counted
	// is whether there was one.
	kernelLost uint64
	counted    bool
	// skipped is the reader's count of records it could not decode.
	skipped uint64
}

// flowView is what the observer resolves one generation's events with;
// its rules are in the observer's ruleTable, shared by every generation.
type flowView struct {
	generation uint64
	node       string
	cluster    *engine.Cluster
	// policies, objects and local are the generation's inputs (shared
	// with them, never modified), for isolating.
	policies []*engine.Policy
	objects  []*policyObject
	local    []localEndpoint
	// failing are the local addresses that fail closed, and why.
	failing map[netip.Addr]flows.DropReason
	iso     isolationIndex
}

type isolation struct{ enforce, audit []flows.Policy }

// observerSubsystem is the flows subsystem: the observer, or, without
// one, a stand-in that reports what is then not observed.
func (a *Agent) observerSubsystem() Subsystem {
	if a.Observer == nil {
		return &noObserver{}
	}
	a.Observer.a = a
	return a.Observer
}

// Name implements Subsystem.
func (o *Observer) Name() string { return string(capability.SubsystemFlows) }

// Sync keeps the tables of the generation the kernel now runs. A sync
// that wrote nothing keeps the previous generation's tables, which are
// still the kernel's.
func (o *Observer) Sync(_ context.Context, in *inputs) error {
	gen := o.a.Datapath.Generation()
	o.mu.Lock()
	defer o.mu.Unlock()
	n := len(o.views)
	if gen == 0 || (!o.a.net.applied() && n > 0 && o.views[n-1].generation == gen) {
		return nil
	}
	o.rules.update(gen, in)
	v := newFlowView(gen, o.a.Node, in, o.a.net.failing)
	if n > 0 && o.views[n-1].generation == gen {
		o.views[n-1] = v // the same kernel state: newer origins (revision, file:line)
	} else {
		o.views = append(o.views, v)
	}
	keep := o.Generations
	if keep <= 0 {
		keep = DefaultGenerations
	}
	if len(o.views) > keep {
		o.views = append([]*flowView(nil), o.views[len(o.views)-keep:]...)
	}
	o.rules.prune(o.views[0].generation)
	return nil
}

// Verify counts the events the kernel lost because the ring buffer was
// full, and the records the reader could not decode, since the last count.
func (o *Observer) Verify(context.Context, driftRecorder) error { return o.countLost() }

// countLost adds the losses since the last count to the buffer. The first
// count only reads the baseline: the kernel's counter is the pinned
// datapath's, and what it lost before this observer read is not its.
func (o *Observer) countLost() error {
	k := o.Kernel
	if k == nil && o.a != nil && o.a.Datapath != nil {
		k = o.a.Datapath
	}
	o.lossMu.Lock()
	defer o.lossMu.Unlock()
	if k != nil {
		c, err := k.Counters()
		if err != nil {
			return fmt.Errorf("read counters: %w", err)
		}
		if o.counted && c.EventsLost > o.kernelLost {
			o.Buffer.Lost(observer.StageKernel, c.EventsLost-o.kernelLost)
		}
		o.kernelLost, o.counted = c.EventsLost, true
	}
	// Records the reader skipped (an unknown type or version) are flows
	// lost to decoding.
	if sk, ok := o.Source.(interface{ Skipped() (uint64, error) }); ok {
		if n, err := sk.Skipped(); err == nil && n > o.skipped {
			o.Buffer.Lost(observer.StageDecode, n-o.skipped)
			o.skipped = n
		}
	}
	return nil
}

// Report states whether events are read.
func (o *Observer) Report(_ *inputs, r *report) {
	o.mu.RLock()
	err := o.readErr
	o.mu.RUnlock()
	if err != nil {
		r.condition(v1.FlowsObservedCondition, false, v1.DatapathErrorReason, "reading the datapath's events failed: "+err.Error())
		return
	}
	r.condition(v1.FlowsObservedCondition, true, v1.EnforcementSucceededReason, "the datapath's verdict events are read and served as flows")
}

// NeedLeaderElection: every node observes its own datapath.
func (o *Observer) NeedLeaderElection() bool { return false }

// Start reads events until ctx ends, resolving each into the buffer.
func (o *Observer) Start(ctx context.Context) error {
	if o.Source == nil {
		<-ctx.Done()
		return nil
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// The baseline now, not at the first verify pass, which may come
	// after a flood: what the kernel loses from here on is counted.
	if err := o.countLost(); err != nil {
		o.Log.Error(err, "count lost events")
	}
	every := o.LossInterval
	if every <= 0 {
		every = DefaultLossInterval
	}
	go func() {
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				o.Source.Close()
				return
			case <-t.C:
				if err := o.countLost(); err != nil {
					o.Log.V(1).Info("count lost events", "error", err.Error())
				}
			}
		}
	}()
	failures := 0
	for {
		ev, err := o.Source.Read()
		switch {
		case err == nil:
			failures = 0
			o.Observe(&ev, time.Time{}) // the kernel's time; a clock read per event costs
			continue
		case ctx.Err() != nil || errors.Is(err, ringbuf.ErrClosed):
			return nil
		case errors.Is(err, os.ErrDeadlineExceeded):
			continue
		}
		// An event that could not be decoded is a lost flow.
		o.Buffer.Lost(observer.StageDecode, 1)
		o.Log.V(1).Info("read event", "error", err.Error())
		if failures++; failures == 100 {
			o.mu.Lock()
			o.readErr = err
			o.mu.Unlock()
			return fmt.Errorf("read events: %w", err)
		}
	}
}

// Observe resolves one event into a flow and adds it to the buffer; now
// is the flow's time when the event has none (zero: the clock's).
func (o *Observer) Observe(ev *datapath.Event, now time.Time) {
	f := o.resolve(ev, now)
	o.Buffer.Add(f)
	if o.a != nil && o.a.Metrics != nil {
		countFlow(o.a.Metrics, &f)
	}
}

// countFlow counts a flow in the metrics.
func countFlow(m *metrics.Metrics, f *flows.Flow) {
	m.Flows.WithLabelValues(string(f.Verdict), f.Direction, string(f.DropReason)).Inc()
	if f.Policy != nil {
		m.CountPolicyVerdict(policyName(f.Policy), string(f.Verdict))
	}
	for i := range f.Isolating {
		m.CountPolicyVerdict(policyName(&f.Isolating[i]), string(f.Verdict))
	}
}

// policyName is "Kind/namespace/name", or "Kind/name" cluster-wide.
func policyName(p *flows.Policy) string {
	if p.Namespace == "" {
		return p.Kind + "/" + p.Name
	}
	return p.Kind + "/" + p.Namespace + "/" + p.Name
}

// view returns the generation's view, or the newest when it is not kept
// (an event of a generation before the agent started).
func (o *Observer) view(gen uint64) *flowView {
	for i := len(o.views) - 1; i >= 0; i-- {
		if o.views[i].generation == gen {
			return o.views[i]
		}
	}
	if n := len(o.views); n > 0 {
		return o.views[n-1]
	}
	return nil
}

// rule finds a rule as the event's generation has it, else (a
// generation not kept) as the newest generation that has it does.
func (o *Observer) rule(gen uint64, id engine.RuleID) (flows.Policy, bool) {
	kept := false
	for _, v := range o.views {
		kept = kept || v.generation == gen
	}
	return o.rules.lookup(gen, id, kept)
}

// resolve turns an event into a flow.
func (o *Observer) resolve(ev *datapath.Event, now time.Time) flows.Flow {
	o.mu.RLock()
	defer o.mu.RUnlock()
	switch {
	case !ev.Time.IsZero():
		now = ev.Time // the kernel's time of the verdict
	case now.IsZero():
		now = time.Now()
	}
	f := flows.Flow{Time: now, Protocol: ev.Proto.String(), Direction: ev.Direction.String(),
		Generation: ev.Generation, RuleID: uint32(ev.Rule), TCPFlags: tcpFlags(ev.TCPFlags)}
	v := o.view(ev.Generation)
	if v == nil {
		v = &flowView{}
	}
	if o.a != nil {
		f.Node = o.a.Node
	}
	srcID, dstID, local := ev.PeerIdentity, ev.LocalIdentity, ev.Dst
	if ev.Direction == engine.Egress {
		srcID, dstID, local = ev.LocalIdentity, ev.PeerIdentity, ev.Src
	}
	sport, dport := ev.SrcPort, ev.DstPort
	if ev.Proto == engine.ProtoICMP || ev.Proto == engine.ProtoICMPv6 {
		t := uint8(ev.Port)
		f.ICMPType, sport, dport = &t, 0, 0
	}
	f.Source = v.endpoint(ev.Src, sport, srcID)
	f.Destination = v.endpoint(ev.Dst, dport, dstID)

	switch ev.Verdict {
	case engine.VerdictAllow:
		f.Verdict = flows.Forwarded
	case engine.VerdictDeny:
		f.Verdict = flows.Dropped
	case engine.VerdictAudit:
		f.Verdict = flows.Audit
	default:
		f.Verdict = flows.Error
	}
	if f.Verdict != flows.Forwarded {
		f.DropReason = dropReason(ev.Reason)
		if r, ok := v.failing[local]; ok && (f.DropReason == flows.DefaultDeny || f.DropReason == flows.NoEndpoint) {
			f.DropReason = r
		}
	}
	if ev.Rule != 0 {
		if p, ok := o.rule(ev.Generation, ev.Rule); ok {
			f.Policy = &p
		}
	}
	if f.DropReason == flows.DefaultDeny {
		if iso := v.isolating(local); iso != nil {
			side := iso[ev.Direction]
			f.Isolating = side.enforce
			if f.Verdict == flows.Audit {
				f.Isolating = append(append([]flows.Policy(nil), side.enforce...), side.audit...)
			}
		}
	}
	return f
}

// tcpFlags spells the flags as hubble does, e.g. "SYN, ACK".
func tcpFlags(b uint8) string {
	names := []string{"FIN", "SYN", "RST", "PSH", "ACK", "URG", "ECE", "CWR"}
	var out []string
	for i, n := range names {
		if b&(1<<i) != 0 {
			out = append(out, n)
		}
	}
	return strings.Join(out, ", ")
}

// dropReason maps the datapath's reason to the flow's.
func dropReason(r datapath.Reason) flows.DropReason {
	switch r {
	case datapath.ReasonMalformed:
		return flows.Malformed
	case datapath.ReasonNoEndpoint:
		return flows.NoEndpoint
	case datapath.ReasonNoState:
		return flows.NoState
	case datapath.Reason(engine.ReasonDenied):
		return flows.ExplicitDeny
	case datapath.Reason(engine.ReasonDefaultDeny):
		return flows.DefaultDeny
	case datapath.Reason(engine.ReasonL7Denied):
		return flows.L7Refused
	}
	// Not one the observer knows: say so rather than hide it.
	return flows.DropReason(r.String())
}

// endpoint resolves one end of a flow.
func (v *flowView) endpoint(addr netip.Addr, port uint16, id engine.Identity) flows.Endpoint {
	e := flows.Endpoint{IP: addr.String(), Port: port, Identity: uint32(id)}
	if v.cluster != nil {
		if ep, ok := v.cluster.EndpointByIP(addr); ok {
			e.Namespace, e.Pod, e.Labels = ep.Namespace, ep.Name, ep.Labels
			if ep.Unmanaged {
				e.Entity = string(engine.EntityUnmanaged)
			}
		}
	}
	if id.IsReserved() {
		e.Entity = entityOf(id)
	}
	return e
}

// entityOf names a reserved identity by its first entity ("host" for the
// local node that serves the API).
func entityOf(id engine.Identity) string {
	l, _ := engine.ReservedLabels(id)
	for _, en := range engine.Entities {
		if l.Has(en) {
			return string(en)
		}
	}
	return ""
}

// newFlowView keeps what resolves one generation's endpoints from the
// sync's inputs: the cluster, and the local addresses that fail closed.
func newFlowView(gen uint64, node string, in *inputs, failing map[string]string) *flowView {
	v := &flowView{generation: gen, node: node, cluster: in.cluster, policies: in.ir.Policies, objects: in.objects,
		local: in.local, failing: map[netip.Addr]flows.DropReason{}}
	for _, l := range in.local {
		if r, ok := failing[l.id]; ok {
			for _, ip := range l.ips {
				v.failing[ip] = failReason(r)
			}
		}
	}
	return v
}

// isolating returns the policies that make the local enforcement point
// at addr (a workload, or the node's host) default-deny, per direction:
// enforcing ones, and those in audit mode. Nil when addr is not a local
// point.
func (v *flowView) isolating(addr netip.Addr) *[2]isolation {
	if v.cluster == nil {
		return nil
	}
	x := &v.iso
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.points == nil {
		x.points = map[netip.Addr]*isoPoint{}
		for _, l := range v.local {
			if ep, ok := v.cluster.Endpoint(l.id); ok {
				pt := &isoPoint{labels: v.cluster.WorkloadLabels(ep)}
				for _, ip := range l.ips {
					x.points[ip] = pt
				}
			}
		}
		if n, ok := v.cluster.Node(v.node); ok {
			pt := &isoPoint{node: n.Labels}
			for _, ip := range n.IPs {
				x.points[ip] = pt
			}
		}
	}
	pt := x.points[addr]
	if pt == nil {
		return nil
	}
	if pt.iso != nil {
		return pt.iso
	}
	if x.objs == nil {
		x.objs = objectFinder(v.objects, len(v.objects))
	}
	var iso [2]isolation
	for _, pol := range v.policies {
		s := pol.Subject
		if pt.labels != nil && (s.Endpoints == nil || !s.Endpoints.Matches(pt.labels)) ||
			pt.labels == nil && (s.Nodes == nil || !s.Nodes.MatchesNode(pt.node)) {
			continue
		}
		for _, dir := range []engine.Direction{engine.Ingress, engine.Egress} {
			if !pol.DefaultDeny[dir] {
				continue
			}
			p := policyOf(pol.Origin, x.objs(originKey(pol.Origin)))
			if pol.Audit {
				iso[dir].audit = append(iso[dir].audit, p)
			} else {
				iso[dir].enforce = append(iso[dir].enforce, p)
			}
		}
	}
	pt.iso = &iso
	return pt.iso
}

// failReason maps why the agent fails a workload closed to the flow's
// drop reason.
func failReason(r string) flows.DropReason {
	switch r {
	case reasonIdentityPending:
		return flows.IdentityPending
	case v1.MapFullReason:
		return flows.FailClosedFull
	}
	return flows.NoEndpoint
}

// noObserver stands in for the observer when the agent runs without one:
// nothing reads the datapath's events, so what audit-mode policies ask to
// be reported is not, and the node says so.
type noObserver struct{ audit []objKey }

func (n *noObserver) Name() string { return string(capability.SubsystemFlows) }

func (n *noObserver) Sync(_ context.Context, in *inputs) error {
	n.audit = nil
	for _, o := range in.objects {
		if o.concerns && isAudit(o) {
			n.audit = append(n.audit, o.key)
		}
	}
	return nil
}

func (n *noObserver) Verify(context.Context, driftRecorder) error { return nil }

func (n *noObserver) Report(_ *inputs, r *report) {
	if len(n.audit) == 0 {
		r.condition(v1.FlowsObservedCondition, true, v1.EnforcementSucceededReason, "no object on this node needs it")
		return
	}
	names := make([]string, 0, len(n.audit))
	for _, k := range n.audit {
		r.gap(k, gap{reason: v1.NotSupportedReason, message: "audit mode's reports of what it would drop are not made: the agent runs without its flow observer"})
		names = append(names, k.String())
	}
	r.condition(v1.FlowsObservedCondition, false, v1.NotSupportedReason,
		"the agent runs without its flow observer, so the audit-mode policies' reports are not made ("+strings.Join(names, ", ")+")")
}

func isAudit(o *policyObject) bool {
	switch t := o.obj.(type) {
	case *v1.NetworkPolicy:
		return t.Spec.Mode == v1.EnforcementModeAudit
	case *v1.ClusterNetworkPolicy:
		return t.Spec.Mode == v1.EnforcementModeAudit
	}
	return false
}
