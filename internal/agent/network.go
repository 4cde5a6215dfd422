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
	"slices"
	"strings"
	"time"

	v1 "github.com/palisade-dev/palisade/api/v1alpha1"
	"github.com/palisade-dev/palisade/internal/datapath"
	"github.com/palisade-dev/palisade/internal/engine"
)

// Endpoint error reasons the network subsystem reports.
const (
	reasonIdentityPending   = "IdentityPending"
	reasonInterfaceNotFound = "InterfaceNotFound"
)

// network is the L3/L4 subsystem: it compiles the policies for the node,
// writes the maps, attaches the programs to every local workload and host
// interface, and verifies and repairs all of it. A workload it cannot
// program is dropped, never passed.
type network struct {
	a *Agent
	// desired is the map state the kernel must hold (the kernel keeps only
	// the L7 lists' IDs, which Apply and Compare treat so); nil until the
	// first sync.
	desired *engine.MapState
	// wanted are the interfaces Palisade's programs must be attached to,
	// by ifindex: the workload ("namespace/name") or "host:<name>".
	wanted map[int]string
	// hostAttached is how many host interfaces carry the host firewall.
	hostAttached int
	errs         []v1.EndpointError
	// failing maps each local workload that fails closed to its reason.
	failing map[string]string
	// syncErr is the last sync's error, verifyErr the last verify's.
	syncErr, verifyErr error
	syncReason         string
	// stateApplied is whether the last sync's state is in the kernel.
	stateApplied bool
	lastCounters datapath.Counters
	// fqdn is the kernel's toFQDNs table as NodeEnforcement shows it,
	// read on every verify pass.
	fqdn *v1.FQDNSummary

	// inc is the node compiler kept across syncs.
	inc incremental
	// over are the endpoint entries desired holds instead of the
	// compiler's: the local workloads that fail closed.
	over map[netip.Addr]engine.EndpointEntry
	// inStep is whether desired is the compiler's state with over, so
	// that the compiler's next delta applies to it.
	inStep bool
	// delta is the last sync's change of desired (nil: not known, as
	// after a failed write, a fallback or the first sync): the l7 and
	// kafka subsystems keep their state when it changes nothing they read
	// (sockSubsystem.keep).
	delta *engine.Delta
	// writer writes generations by delta (nil with a fake kernel, which
	// takes whole states).
	writer *datapath.Writer
	// compileTime is how long the last sync's compile took (for the log).
	compileTime time.Duration
	// syncs counts the syncs: a comparison of the maps made outside the
	// agent's lock (mapCheck) holds only while no sync ran since.
	syncs uint64
	// check is the verify pass's comparison of the maps, made outside the
	// agent's lock; Verify uses it when it still holds. deferred is
	// whether the last pass left the maps unchecked because syncs kept
	// landing during its comparisons (useCheck).
	check    *mapCheck
	deferred bool
}

// mapCheck compares the kernel's maps with a copy of desired outside the
// agent's lock: the read-back of a whole generation then no longer holds
// up a sync that arrives during a verify pass (at 10k policies a change
// waited up to the whole pass). The datapath's own lock keeps the read
// apart from a write.
type mapCheck struct {
	desired *engine.MapState // a copy: desired is changed in place by syncs
	gen     uint64           // the active generation when it was copied
	syncs   uint64           // network.syncs then
	drifts  []datapath.Drift
	readGen uint64 // the generation the comparison read
	err     error
}

// startCheck copies what a comparison needs; under the agent's lock.
func (n *network) startCheck() *mapCheck {
	if n.desired == nil {
		return nil
	}
	return &mapCheck{desired: n.desired.Clone(), gen: n.a.Datapath.Generation(), syncs: n.syncs}
}

// run reads the kernel and compares; outside the agent's lock.
func (c *mapCheck) run(k Kernel) { c.drifts, c.readGen, c.err = k.Compare(c.desired) }

// holds reports whether c's outcome is the kernel's against desired now:
// no sync ran since the copy, so desired is what was copied and nothing
// of the agent wrote the maps meanwhile, and the generation compared is
// the active one. Under the agent's lock.
func (n *network) holds(c *mapCheck) bool {
	return c != nil && c.err == nil && c.syncs == n.syncs && c.readGen == c.gen && c.gen == n.a.Datapath.Generation()
}

func (n *network) Name() string { return "network" }

// Sync compiles and applies. On any error the kernel keeps the previous
// generation, and every local workload whose state could not be written
// fails closed.
func (n *network) Sync(ctx context.Context, in *inputs) error {
	n.syncs++
	err := n.sync(ctx, in)
	n.syncErr = err
	return err
}

func (n *network) sync(ctx context.Context, in *inputs) error {
	a := n.a
	n.syncReason = ""
	n.stateApplied = false
	n.delta = nil
	n.inc.node = a.Node
	t0 := time.Now()
	compiled, cd, err := n.inc.update(in)
	n.compileTime = time.Since(t0)
	if err != nil {
		n.syncReason = v1.DatapathErrorReason
		n.inStep = false
		return err
	}
	// The workloads that fail closed: their entries in the kernel are
	// deny-all instead of the compiler's.
	over := map[netip.Addr]engine.EndpointEntry{}
	var errs []v1.EndpointError
	// Interfaces first: a workload whose interface cannot be found gets
	// no program, so its entries become deny-all, which every interface
	// Palisade does attach to enforces.
	ifaces := map[string]int{}
	for _, l := range in.local {
		if l.pending {
			failCloseOver(over, l.ips)
			errs = append(errs, v1.EndpointError{Endpoint: l.id, Reason: reasonIdentityPending,
				Message: "no Identity is allocated for the workload's labels yet; its traffic is dropped until one is"})
		}
		ifindex, _, err := a.Links.Interface(l.ips[0])
		if err != nil {
			failCloseOver(over, l.ips)
			errs = append(errs, v1.EndpointError{Endpoint: l.id, Reason: reasonInterfaceNotFound,
				Message: err.Error() + "; no program can be attached, so the workload's traffic is dropped wherever Palisade's programs see it"})
			continue
		}
		ifaces[l.id] = ifindex
	}
	applyErr := n.applyState(ctx, compiled, cd, over, in, &errs)
	n.stateApplied = applyErr == nil
	// Attach even when the state could not be written: a new workload
	// then has no endpoint entry, and the workload program drops what it
	// cannot decide.
	ifErrs, attachErr := n.attach(in, ifaces)
	n.errs = mergeErrors(append(errs, ifErrs...))
	n.failing = map[string]string{}
	for _, e := range n.errs {
		n.failing[e.Endpoint] = e.Reason
	}
	if applyErr != nil {
		return applyErr
	}
	if attachErr != nil {
		n.syncReason = v1.DatapathErrorReason
	}
	return attachErr
}

// applyState writes the compiled state with the overrides over unless
// the kernel already holds it. On start that is adoption: a state pinned by
// the previous agent that equals the compiled one is kept as it is,
// without a new generation. When desired is in step with the compiler, the
// change is the compiler's delta cd (and the overrides' change): desired
// is changed in place and the datapath writes only that.
func (n *network) applyState(ctx context.Context, compiled *engine.MapState, cd *engine.Delta, over map[netip.Addr]engine.EndpointEntry, in *inputs, errs *[]v1.EndpointError) error {
	a := n.a
	cur := n.desired
	adopting := cur == nil
	var state *engine.MapState
	var kd, undo *engine.Delta
	if !adopting && n.inStep && cd != nil {
		kd, undo = kernelDelta(cur, compiled, cd, n.over, over)
		kd.Apply(cur)
		state = cur
	} else {
		state = withOverrides(compiled, over)
		if adopting {
			kernel, gen, err := a.Datapath.Read()
			if err == nil && gen > 0 {
				cur = kernel
			}
		}
		if cur != nil {
			kd = engine.Diff(cur, state)
		}
	}
	// L7 lists are not compared: the kernel holds only their IDs, which
	// are in the policy entries (and a state read back has no lists).
	if kd != nil && kd.Len() == len(kd.L7)+len(kd.L7Deleted) {
		if adopting {
			a.Log.Info("adopted the pinned datapath state", "generation", a.Datapath.Generation())
		} else {
			n.delta = kd
		}
		n.desired, n.over, n.inStep = state, over, true
		return nil
	}
	if adopting && cur != nil {
		a.Log.Info("the pinned datapath state differs from the cluster's; writing a new generation",
			"generation", a.Datapath.Generation(), "difference", describeDrifts(datapath.Diff(state, cur)))
	}
	err := n.write(ctx, state, kd)
	if err == nil {
		if !adopting {
			n.delta = kd
		}
		n.desired, n.over, n.inStep = state, over, true
		return nil
	}
	n.inStep = false
	if undo != nil {
		// desired was changed in place: back to what the kernel holds.
		undo.Apply(cur)
		state = withOverrides(compiled, over)
	}
	var ce *datapath.CapacityError
	if !errors.As(err, &ce) {
		n.syncReason = v1.DatapathErrorReason
		if n.desired == nil && cur != nil {
			// The kernel keeps what it held; verify it against that.
			n.desired = cur
		}
		return fmt.Errorf("apply: %w", err)
	}

	// A map would overflow: keep what is enforced, and fail closed for
	// the local workloads whose entries would change.
	n.syncReason = v1.MapFullReason
	base := cur
	if base == nil {
		base = &engine.MapState{IPCache: map[netip.Prefix]engine.Identity{}, Endpoints: map[netip.Addr]engine.EndpointEntry{}, Policy: map[engine.PolicyKey]engine.PolicyEntry{}}
	}
	fallback := base.Clone()
	for _, l := range in.local {
		changed := false
		for _, ip := range l.ips {
			if want, ok := state.Endpoints[ip]; ok && base.Endpoints[ip] != want {
				changed = true
			}
		}
		if !changed {
			continue
		}
		if ce.Map == "endpoints" {
			// No room for new entries: an address that has none stays
			// absent, which the workload program drops.
			failClosedExisting(fallback, l.ips)
		} else {
			failClosed(fallback, l.ips)
		}
		*errs = append(*errs, v1.EndpointError{Endpoint: l.id, Reason: v1.MapFullReason,
			Message: fmt.Sprintf("%v; the workload's traffic is dropped until the policy fits", ce)})
	}
	if ferr := a.Datapath.Apply(ctx, fallback); ferr != nil {
		if n.desired == nil {
			n.desired = cur
		}
		return fmt.Errorf("%w; failing closed also failed: %w", ce, ferr)
	}
	n.desired, n.over = fallback, nil
	return ce
}

// write makes state the kernel's, by delta when the kernel is the real
// datapath; kd is the change from the active generation's state (nil:
// unknown).
func (n *network) write(ctx context.Context, state *engine.MapState, kd *engine.Delta) error {
	a := n.a
	if n.writer == nil {
		dp, ok := a.Datapath.(*datapath.Datapath)
		if !ok {
			return a.Datapath.Apply(ctx, state)
		}
		n.writer = datapath.NewWriter(dp)
	}
	t0 := time.Now()
	err := n.writer.Apply(ctx, state, kd)
	if err == nil {
		l, c := n.writer.Last(), n.inc.last
		a.Log.V(1).Info("generation written", "generation", l.Generation, "patched", l.Incremental, "written", l.Written,
			"deleted", l.Deleted, "rebuilt", l.Rebuilt, "compiledWhole", c.whole, "policiesSet", c.changed,
			"policiesDeleted", c.deleted, "compilerDelta", c.entries, "compile", n.compileTime, "write", time.Since(t0))
	}
	return err
}

// failCloseOver makes the workload addresses default-deny both ways with
// no policy (see failClosed) in the overrides.
func failCloseOver(over map[netip.Addr]engine.EndpointEntry, ips []netip.Addr) {
	for _, ip := range ips {
		over[ip] = denyAll
	}
}

// failClosed makes the workload addresses default-deny both ways with no
// policy: policy ID 0 has no entries (identities start at 1).
func failClosed(s *engine.MapState, ips []netip.Addr) {
	for _, ip := range ips {
		s.Endpoints[ip] = denyAll
	}
}

// failClosedExisting does what failClosed does for the addresses that
// already have an entry and removes nothing: without an entry the
// workload program drops the address's traffic anyway.
func failClosedExisting(s *engine.MapState, ips []netip.Addr) {
	for _, ip := range ips {
		if _, ok := s.Endpoints[ip]; ok {
			s.Endpoints[ip] = denyAll
		}
	}
}

var denyAll = engine.EndpointEntry{Identity: engine.IdentityUnmanaged, PolicyID: 0,
	Flags: engine.IngressDefaultDeny | engine.EgressDefaultDeny}

// attach makes Palisade's programs run on every local workload's
// interface (ifaces, by workload) and on the host interfaces, and nowhere
// else.
func (n *network) attach(in *inputs, ifaces map[string]int) ([]v1.EndpointError, error) {
	a := n.a
	var errs []v1.EndpointError
	wanted := map[int]string{}
	unresolved := map[string]bool{}
	for _, l := range in.local {
		ifindex, ok := ifaces[l.id]
		if !ok {
			unresolved[l.id] = true
			continue
		}
		wanted[ifindex] = l.id
	}
	var failed []error
	hostIfs := map[int]bool{}
	for _, name := range a.HostInterfaces {
		ifindex, err := a.Links.ByName(name)
		if err != nil {
			failed = append(failed, err)
			continue
		}
		wanted[ifindex] = "host:" + name
		hostIfs[ifindex] = true
	}
	atts, err := a.Datapath.Attachments()
	if err != nil {
		return errs, err
	}
	have := map[int]bool{}
	for _, at := range atts {
		have[at.Ifindex] = true
	}
	for ifindex, who := range wanted {
		if have[ifindex] && (n.wanted[ifindex] == who) {
			continue
		}
		var err error
		if hostIfs[ifindex] {
			err = a.Datapath.AttachHost(ifindex)
		} else {
			err = a.Datapath.AttachWorkload(ifindex)
		}
		if err != nil {
			if !hostIfs[ifindex] {
				errs = append(errs, v1.EndpointError{Endpoint: who, Reason: v1.DatapathErrorReason, Message: err.Error()})
			}
			failed = append(failed, err)
			delete(wanted, ifindex)
			delete(hostIfs, ifindex)
		}
	}
	for ifindex := range have {
		if _, ok := wanted[ifindex]; ok {
			continue
		}
		// An interface that may belong to a workload whose route could not
		// be resolved this time keeps its programs: detaching would leave
		// the workload unenforced. Known to belong to no local workload (or
		// gone), it is detached.
		if who, known := n.wanted[ifindex]; known && unresolved[who] || !known && len(unresolved) > 0 {
			wanted[ifindex] = who
			continue
		}
		if err := a.Datapath.DetachWorkload(ifindex); err != nil {
			failed = append(failed, err)
		}
	}
	n.wanted = wanted
	n.hostAttached = len(hostIfs)
	return errs, errors.Join(failed...)
}

// Verify checks pins, attachments and map contents against the last sync
// and repairs what differs.
func (n *network) Verify(ctx context.Context, rec driftRecorder) error {
	a := n.a
	if n.desired == nil {
		return nil // nothing applied yet: the first sync has not run
	}
	n.verifyErr = nil
	// Pins first: a removed link pin is also a detached program, and the
	// map pins are what the next agent adopts.
	if probs := a.Datapath.CheckPins(); len(probs) > 0 {
		err := a.Datapath.RepairPins()
		for _, p := range probs {
			rec(v1.KernelDriftPin, p.What, err)
		}
	}
	for _, ifindex := range slices.Sorted(maps.Keys(n.wanted)) {
		who := n.wanted[ifindex]
		host := strings.HasPrefix(who, "host:")
		var probs []datapath.Problem
		if host {
			probs = a.Datapath.CheckHost(ifindex)
		} else {
			probs = a.Datapath.CheckWorkload(ifindex)
		}
		if len(probs) == 0 {
			continue
		}
		var err error
		if host {
			err = a.Datapath.RepairHost(ifindex)
		} else {
			err = a.Datapath.RepairWorkload(ifindex)
		}
		for _, p := range probs {
			kind := v1.KernelDriftProgram
			if p.Pin {
				kind = v1.KernelDriftPin
			}
			rec(kind, fmt.Sprintf("%s (%s)", p.What, who), err)
		}
	}
	// The comparison made outside the agent's lock, when it still holds;
	// otherwise (a sync ran meanwhile, or none was made) here, under it.
	var drifts []datapath.Drift
	var err error
	chk := n.check
	n.check = nil
	use, compare := useCheck(n.holds(chk), chk != nil && chk.err == nil, &n.deferred)
	switch {
	case use:
		drifts = chk.drifts
	case compare:
		drifts, _, err = a.Datapath.Compare(n.desired)
	}
	if err != nil {
		n.verifyErr = err
		return err
	}
	if len(drifts) > 0 {
		// Repair by writing the whole desired state as a new generation:
		// packets switch from the tampered state to the right one at once.
		err := a.Datapath.Apply(ctx, n.desired)
		rec(v1.KernelDriftMapEntry, describeDrifts(drifts), err)
	}
	c, err := a.Datapath.Counters()
	if err != nil {
		n.verifyErr = err
		return err
	}
	if err := n.fqdnVerify(c); err != nil {
		n.verifyErr = err
		return err
	}
	n.countVerdicts(c)
	return nil
}

// Report states NetworkEnforced, the endpoint errors, and which objects
// the subsystem does not enforce as written on this node: those whose
// workloads fail closed, and host policies without a host interface.
func (n *network) Report(in *inputs, r *report) {
	a := n.a
	r.errs = append(r.errs, n.errs...)
	if in != nil {
		n.objectGaps(in, r)
	}
	switch {
	case n.syncErr != nil:
		reason := n.syncReason
		if reason == "" {
			reason = v1.DatapathErrorReason
		}
		r.condition(v1.NetworkEnforcedCondition, false, reason, fmt.Sprintf("the node keeps enforcing generation %d: %v", a.Datapath.Generation(), n.syncErr))
	case n.desired == nil:
		r.condition(v1.NetworkEnforcedCondition, false, v1.EnforcementPendingReason, "waiting for the first sync")
	case len(n.errs) > 0:
		r.condition(v1.NetworkEnforcedCondition, false, v1.FailClosedReason, fmt.Sprintf("%d workloads fail closed; first: %s: %s: %s", len(n.errs), n.errs[0].Endpoint, n.errs[0].Reason, n.errs[0].Message))
	default:
		r.condition(v1.NetworkEnforcedCondition, true, v1.EnforcementSucceededReason, fmt.Sprintf("generation %d enforces L3/L4 rules on %d interfaces", a.Datapath.Generation(), len(n.wanted)))
	}
}

// objectGaps adds, per object, what this node's failures leave unenforced.
func (n *network) objectGaps(in *inputs, r *report) {
	node, _ := in.cluster.Node(n.a.Node)
	// The local workloads that fail closed, with their labels: usually
	// none, and then a policy's gaps are only the host's. Workloads with
	// the same labels (a deployment's pods) share one label set, matched
	// once per policy: a report at 10k policies with the 50 workloads of
	// a node failing closed matched every selector 50 times, 64 ms of CPU
	// per report, where one label set takes about 1 ms.
	type failingLocal struct {
		id, reason string
		set        int // index in sets
	}
	var failing []failingLocal
	var sets []engine.Labels
	setOf := map[string]int{}
	for _, l := range in.local {
		if reason, ok := n.failing[l.id]; ok {
			if e, ok := in.cluster.Endpoint(l.id); ok {
				labels := in.cluster.WorkloadLabels(e)
				k := labels.String()
				i, seen := setOf[k]
				if !seen {
					i = len(sets)
					setOf[k] = i
					sets = append(sets, labels)
				}
				failing = append(failing, failingLocal{id: l.id, reason: reason, set: i})
			}
		}
	}
	hostGaps := node != nil && n.hostAttached == 0
	if len(failing) == 0 && !hostGaps {
		return
	}
	matched := make([]bool, len(sets))
	for _, p := range in.ir.Policies {
		key := objKey{kind: p.Origin.Kind, namespace: p.Origin.Namespace, name: p.Origin.Name}
		switch s := p.Subject; {
		case s.Nodes != nil && node != nil && s.Nodes.MatchesNode(node.Labels) && n.hostAttached == 0:
			r.gap(key, gap{reason: v1.HostInterfaceMissingReason, whole: true,
				message: "the host firewall is attached to no host interface on this node (see the agent's --host-interfaces), so the kernel passes the host's traffic"})
		case s.Endpoints != nil && len(failing) > 0:
			hit := false
			for i, labels := range sets {
				matched[i] = s.Endpoints.Matches(labels)
				hit = hit || matched[i]
			}
			if !hit {
				continue
			}
			for _, l := range failing {
				if matched[l.set] {
					r.gap(key, gap{reason: v1.FailClosedReason,
						message: fmt.Sprintf("workload %s fails closed (%s): the kernel drops its traffic", l.id, l.reason)})
				}
			}
		}
	}
}

// recordUsage exports the fill of the maps.
func (n *network) recordUsage() []v1.MapUsage {
	a := n.a
	if n.desired == nil {
		return nil
	}
	var out []v1.MapUsage
	for _, u := range a.Datapath.Usage(n.desired) {
		if a.Metrics != nil {
			a.Metrics.MapEntries.WithLabelValues(u.Name).Set(float64(u.Entries))
			a.Metrics.MapCapacity.WithLabelValues(u.Name).Set(float64(u.MaxEntries))
		}
		out = append(out, v1.MapUsage{Name: u.Name, Entries: int64(u.Entries), MaxEntries: int64(u.MaxEntries)})
	}
	return out
}

// countVerdicts exports the datapath's verdict counters.
func (n *network) countVerdicts(c datapath.Counters) {
	a := n.a
	if a.Metrics == nil {
		n.lastCounters = c
		return
	}
	n.countFQDN(c)
	p := n.lastCounters
	for _, v := range []struct {
		name     string
		now, was uint64
	}{{"allowed", c.Allowed, p.Allowed}, {"denied", c.Denied, p.Denied}, {"audited", c.Audited, p.Audited}, {"reply", c.Replies, p.Replies}, {"malformed", c.Malformed, p.Malformed}} {
		if v.now > v.was {
			a.Metrics.Verdicts.WithLabelValues(v.name, "any").Add(float64(v.now - v.was))
		}
	}
	for _, v := range []struct {
		name     string
		now, was uint64
	}{{"allowed", c.DNSAllowed, p.DNSAllowed}, {"refused", c.DNSRefused, p.DNSRefused}, {"audited", c.DNSAudited, p.DNSAudited},
		{"malformed", c.DNSMalformed, p.DNSMalformed}, {"pointer", c.DNSPointer, p.DNSPointer}, {"qdcount", c.DNSQDCount, p.DNSQDCount},
		{"name", c.DNSName, p.DNSName}, {"split", c.DNSSplit, p.DNSSplit}, {"answered", c.DNSAnswered, p.DNSAnswered}} {
		if v.now > v.was {
			a.Metrics.DNSQueries.WithLabelValues(v.name).Add(float64(v.now - v.was))
		}
	}
	n.lastCounters = c
}

// applied reports whether the last sync wrote (or adopted) the compiled
// state whole, so the node enforces the inputs' revisions.
func (n *network) applied() bool { return n.stateApplied }

// retry reports whether a workload fails closed for a reason that may pass
// by itself (its interface not there yet), so the sync should run again.
func (n *network) retry() bool {
	for _, e := range n.errs {
		if e.Reason == reasonInterfaceNotFound {
			return true
		}
	}
	return false
}
