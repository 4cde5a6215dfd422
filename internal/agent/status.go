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
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "github.com/palisade-dev/palisade/api/v1alpha1"
)

// nodeRef is the NodeEnforcement object events are about.
func (a *Agent) nodeRef() runtime.Object {
	ne := &v1.NodeEnforcement{ObjectMeta: metav1.ObjectMeta{Name: a.Node}}
	ne.SetGroupVersionKind(v1.GroupVersion.WithKind("NodeEnforcement"))
	if a.neUID != "" {
		ne.UID = a.neUID
	}
	return ne
}

// report is what the subsystems say for NodeEnforcement.
type report struct {
	conds []metav1.Condition
	errs  []v1.EndpointError
	gaps  map[objKey][]gap
}

// gap is one thing a node does not enforce of an object as written.
type gap struct {
	reason, message string
	// whole is true when nothing of the object is enforced.
	whole bool
}

func (r *report) condition(t string, ok bool, reason, msg string) {
	s := metav1.ConditionFalse
	if ok {
		s = metav1.ConditionTrue
	}
	r.conds = append(r.conds, metav1.Condition{Type: t, Status: s, Reason: reason, Message: truncate(msg, 32768)})
}

func (r *report) gap(k objKey, g gap) {
	if r.gaps == nil {
		r.gaps = map[objKey][]gap{}
	}
	r.gaps[k] = append(r.gaps[k], g)
}

// collect asks every subsystem for its report.
func (a *Agent) collect() *report {
	r := &report{}
	for _, s := range a.subsystems() {
		s.Report(a.last, r)
	}
	r.errs = mergeErrors(r.errs)
	return r
}

// setStatus is the NodeEnforcement entry of each enforced set: its
// revision, and how fully the node enforces each of its objects. Sets and
// objects are in a stable order, so the same state gives the same status.
func (a *Agent) setStatus(r *report) []v1.PolicySetEnforcement {
	gen := int64(a.Datapath.Generation())
	keys := slices.SortedFunc(maps.Keys(a.sets), func(x, y setKey) int {
		return cmp.Or(strings.Compare(x.namespace, y.namespace), strings.Compare(x.name, y.name))
	})
	budget := v1.MaxObjectsPerNode
	var out []v1.PolicySetEnforcement
	for _, k := range keys {
		si := a.sets[k]
		if si.revision == "" {
			continue
		}
		e := v1.PolicySetEnforcement{Namespace: k.namespace, Name: k.name, Revision: si.revision, Generation: gen, PendingRevision: si.pending}
		objs := si.objects // in key order as selectObjects chose them, but check
		byKey := func(x, y *policyObject) int { return compareKeys(x.key, y.key) }
		if !slices.IsSortedFunc(objs, byKey) {
			objs = slices.SortedFunc(slices.Values(objs), byKey)
		}
		for _, o := range objs {
			if !o.concerns {
				continue
			}
			e.Policies++
			gaps := r.gaps[o.key]
			if len(gaps) == 0 {
				e.Enforced++
				continue
			}
			oe := objectStatus(o.key, gaps)
			if oe.State == v1.ObjectNotEnforced {
				e.NotEnforced++
			} else {
				e.Partial++
			}
			if len(e.Objects) < v1.MaxObjectsPerSet && budget > 0 {
				e.Objects = append(e.Objects, oe)
				budget--
			}
		}
		out = append(out, e)
	}
	return out
}

// objectStatus sums up an object's gaps.
func objectStatus(k objKey, gaps []gap) v1.ObjectEnforcement {
	oe := v1.ObjectEnforcement{Kind: k.kind, Namespace: k.namespace, Name: k.name, State: v1.ObjectPartial, Reason: gaps[0].reason}
	msgs := make([]string, 0, len(gaps))
	for _, g := range gaps {
		if g.whole {
			oe.State = v1.ObjectNotEnforced
		}
		msgs = append(msgs, g.message)
	}
	oe.Message = truncate(strings.Join(msgs, "; "), 2048)
	return oe
}

// HeartbeatInterval is how often a node whose report does not change
// writes its lastVerifiedTime: the verify loop runs every
// VerifyInterval (10 s), and a status write on every pass would cost the
// API server a write per node every ten seconds (100/s with a thousand
// nodes) for nothing but a clock. Any other change writes at once, with
// the time of the newest verification; as the kubelet, which reports an
// unchanged node status every five minutes and renews a Lease between.
const HeartbeatInterval = time.Minute

// processStart makes a restarted agent report its first verification at
// once, so that lastVerifiedTime says the new process has verified.
var processStart = time.Now()

// heartbeatDue reports whether lastVerifiedTime must be written: never
// written, written before this process started, or older than
// HeartbeatInterval at the verification of last.
func heartbeatDue(written *metav1.Time, last time.Time) bool {
	return written == nil || written.Time.Before(processStart.Truncate(time.Second)) || last.Sub(written.Time) >= HeartbeatInterval
}

// statusWrite is a status patch a report decided on: base is the object
// as read, ne with the new status; seq orders the writes.
type statusWrite struct {
	base, ne *v1.NodeEnforcement
	seq      uint64
}

// report writes the agent's state to the node's NodeEnforcement status.
// Under the agent's lock.
func (a *Agent) report(ctx context.Context) error {
	w, err := a.prepareReport(ctx)
	if err != nil || w == nil {
		return err
	}
	return a.writeReport(ctx, w)
}

// writeReport patches the status a report decided on. It needs not the
// agent's lock: the status was made from the agent's state under it, and
// a write older than one already made is dropped, so the API never goes
// back to an older report.
func (a *Agent) writeReport(ctx context.Context, w *statusWrite) error {
	a.writeMu.Lock()
	defer a.writeMu.Unlock()
	if w.seq < a.written {
		return nil
	}
	if err := a.Client.Status().Patch(ctx, w.ne, client.MergeFrom(w.base)); err != nil {
		return fmt.Errorf("update NodeEnforcement %s status: %w", a.Node, err)
	}
	a.written = w.seq
	return nil
}

// prepareReport makes the node's NodeEnforcement status from the agent's
// state and returns the write it needs, nil when the status is as
// written or the write waits for the end of ReportBatch. Under the
// agent's lock.
func (a *Agent) prepareReport(ctx context.Context) (*statusWrite, error) {
	ne := &v1.NodeEnforcement{}
	reader := a.APIReader
	if reader == nil {
		reader = a.Client
	}
	err := a.Client.Get(ctx, client.ObjectKey{Name: a.Node}, ne)
	if apierrors.IsNotFound(err) && a.neUID != "" {
		// This process created or read it, and the cache has not seen it
		// yet (its watch lags while a thousand agents start): ask the API
		// server rather than create it again (1,034 creates for 685
		// hollow agents before).
		err = reader.Get(ctx, client.ObjectKey{Name: a.Node}, ne)
	}
	if apierrors.IsNotFound(err) {
		// The created object, as the API server answered, is the base of
		// the status patch: the cache has not seen it yet (reading it
		// back from there failed, and the retry created it again: 1.4
		// creates per node when 100 hollow agents started at once).
		ne = &v1.NodeEnforcement{ObjectMeta: metav1.ObjectMeta{Name: a.Node}, Spec: v1.NodeEnforcementSpec{NodeName: a.Node}}
		if err := a.Client.Create(ctx, ne); apierrors.IsAlreadyExists(err) {
			// Created before (by this process, or before a restart) and
			// not in the cache yet: read it from the API server.
			if err := reader.Get(ctx, client.ObjectKey{Name: a.Node}, ne); err != nil {
				return nil, fmt.Errorf("get NodeEnforcement %s: %w", a.Node, err)
			}
		} else if err != nil {
			return nil, fmt.Errorf("create NodeEnforcement %s: %w", a.Node, err)
		}
	} else if err != nil {
		return nil, fmt.Errorf("get NodeEnforcement %s: %w", a.Node, err)
	}
	a.neUID = ne.UID
	base := ne.DeepCopy()
	st := &ne.Status
	st.ObservedGeneration = ne.Generation
	r := a.collect()
	st.PolicySets = a.setStatus(r)
	st.Errors = r.errs
	st.Drifts = a.drifts
	st.DriftRepairs = a.repairs
	st.Maps = a.net.recordUsage()
	st.FQDN = a.net.fqdn
	st.FlowsAddress = a.FlowsAddress
	a.setConditions(ne, r, st.PolicySets)
	if !a.lastVerified.IsZero() {
		beat := heartbeatDue(base.Status.LastVerifiedTime, a.lastVerified)
		if !beat && a.sameReport(&base.Status, &ne.Status) {
			return nil, nil
		}
		t := metav1.NewTime(a.lastVerified)
		st.LastVerifiedTime = &t
	}
	if a.sameReport(&base.Status, &ne.Status) {
		a.reportWaiting = false
		return nil, nil
	}
	if wait := a.reportWait(); wait > 0 {
		if !a.reportWaiting {
			a.reportWaiting = true
			time.AfterFunc(wait, func() {
				a.mu.Lock()
				a.reportWaiting = false
				a.mu.Unlock()
				a.reportSoon()
			})
		}
		return nil, nil
	}
	a.lastReport, a.reportWaiting = a.now(), false
	a.reportSeq++
	return &statusWrite{base: base, ne: ne, seq: a.reportSeq}, nil
}

// sameReport is whether a status write of n over o would say nothing new;
// with ReportBatch set, nothing new but pendingRevision either: a set's
// newer revision seen, not complete. The node
// still enforces the revision it lists, so leaving pendingRevision to the
// next write (the set's revision moving when the rest of its objects
// arrive, any other change, or the heartbeat within HeartbeatInterval)
// never claims more than the kernel does. A rollout reaches a node set by
// set, each set's first objects before the rest, and writing each set's
// pendingRevision on its own was about half of a rollout's
// NodeEnforcement writes, one API server write per node each
// (docs/scale.md).
func (a *Agent) sameReport(o, n *v1.NodeEnforcementStatus) bool {
	if reflect.DeepEqual(o, n) {
		return true
	}
	if a.ReportBatch <= 0 || len(o.PolicySets) != len(n.PolicySets) {
		return false
	}
	oc, nc := *o, *n
	oc.PolicySets, nc.PolicySets = withoutPending(o.PolicySets), withoutPending(n.PolicySets)
	return reflect.DeepEqual(oc, nc)
}

// withoutPending is sets with every pendingRevision cleared, a copy.
func withoutPending(sets []v1.PolicySetEnforcement) []v1.PolicySetEnforcement {
	out := slices.Clone(sets)
	for i := range out {
		out[i].PendingRevision = ""
	}
	return out
}

// DefaultReportBatch is the least time between two status writes of a
// running agent (Agent.ReportBatch; cmd/agent and the hollow nodes set
// it). A rollout reaches a node set by set, and each set in two steps:
// its first objects (the set's entry gets a pendingRevision: a revision
// seen, not complete) and the rest (the entry moves to the revision).
// Written one by one, that was 18.8 status writes per node and commit
// with 10 sets (5 hollow nodes on a quiet API server; 6.1 with 100 nodes,
// where the agents' syncs already merged more), each one an API server
// write and an event the manager decodes and summarizes: 6,100 writes per
// commit at 1,000 nodes for the same news. At most one write a second
// keeps a rollout's steps in that second in one write; a change that
// waits is written at the end of the window by a verify pass (Trigger),
// with whatever the node enforces then. A report is never ahead of the
// kernel, only up to a second behind it.
//
// A running agent (Start) with ReportBatch also writes the status off the
// sync's path: a sync asks the verify loop's goroutine for a report
// (reportSoon), which makes it under the agent's lock and writes it after
// releasing it, so the next change's sync waits neither for the API
// server's answer nor in the queue behind it.
const DefaultReportBatch = time.Second

// reportWait is how long a status write must wait for the end of
// ReportBatch since the last one; 0 writes now.
func (a *Agent) reportWait() time.Duration {
	if a.ReportBatch <= 0 || a.lastReport.IsZero() {
		return 0
	}
	return a.ReportBatch - a.now().Sub(a.lastReport)
}

// setConditions sets the subsystems' conditions, then Enforced, Drifted
// and Ready from them.
func (a *Agent) setConditions(ne *v1.NodeEnforcement, r *report, sets []v1.PolicySetEnforcement) {
	set := func(c metav1.Condition) {
		c.ObservedGeneration = ne.Generation
		apimeta.SetStatusCondition(&ne.Status.Conditions, c)
	}
	cond := func(t string, ok bool, reason, msg string) {
		s := metav1.ConditionFalse
		if ok {
			s = metav1.ConditionTrue
		}
		set(metav1.Condition{Type: t, Status: s, Reason: reason, Message: truncate(msg, 32768)})
	}
	var notOK *metav1.Condition
	for i := range r.conds {
		set(r.conds[i])
		if notOK == nil && r.conds[i].Status != metav1.ConditionTrue {
			notOK = &r.conds[i]
		}
	}
	var partial []string
	n := 0
	for _, s := range sets {
		n += int(s.Partial + s.NotEnforced)
		for _, o := range s.Objects {
			if len(partial) < 3 {
				partial = append(partial, fmt.Sprintf("%s: %s", objKey{o.Kind, o.Namespace, o.Name}, o.Message))
			}
		}
	}
	switch {
	case a.gatherErr != nil:
		cond(v1.EnforcedCondition, false, v1.DatapathErrorReason, fmt.Sprintf("the node keeps enforcing generation %d: %v", a.Datapath.Generation(), a.gatherErr))
	case a.net.syncErr != nil || a.net.desired == nil:
		c := apimeta.FindStatusCondition(ne.Status.Conditions, v1.NetworkEnforcedCondition)
		cond(v1.EnforcedCondition, false, c.Reason, c.Message)
	case n > 0:
		msg := fmt.Sprintf("%d objects are not enforced as written: %s", n, strings.Join(partial, "; "))
		if n > len(partial) {
			msg += fmt.Sprintf("; and %d more", n-len(partial))
		}
		cond(v1.EnforcedCondition, false, v1.PartiallyEnforcedReason, msg)
	case notOK != nil:
		cond(v1.EnforcedCondition, false, notOK.Reason, notOK.Type+": "+notOK.Message)
	default:
		cond(v1.EnforcedCondition, true, v1.EnforcementSucceededReason, fmt.Sprintf("generation %d enforces every object of %d policy sets as written", a.Datapath.Generation(), len(sets)))
	}
	window := a.DriftWindow
	if window <= 0 {
		window = DefaultDriftWindow
	}
	if n := len(a.drifts); n > 0 && a.now().Sub(a.drifts[0].Time.Time) < window {
		d := a.drifts[0]
		reason, verb := v1.DriftCorrectedReason, "repaired"
		if !d.Repaired {
			reason, verb = v1.KernelDriftReason, "not repaired: "+d.Message
		}
		cond(v1.DriftedCondition, true, reason, fmt.Sprintf("%s drift at %s, %s: %s", d.Kind, d.Time.UTC().Format("15:04:05Z"), verb, d.What))
	} else {
		cond(v1.DriftedCondition, false, v1.NoDriftReason, "the kernel matches the desired state")
	}
	switch {
	case a.net.verifyErr != nil:
		cond(v1.ReadyCondition, false, v1.VerifyFailedReason, fmt.Sprintf("cannot read the kernel state back: %v", a.net.verifyErr))
	case a.gatherErr != nil:
		cond(v1.ReadyCondition, false, v1.DatapathErrorReason, a.gatherErr.Error())
	case a.net.syncErr != nil:
		cond(v1.ReadyCondition, false, apimeta.FindStatusCondition(ne.Status.Conditions, v1.NetworkEnforcedCondition).Reason, a.net.syncErr.Error())
	case a.net.desired == nil:
		cond(v1.ReadyCondition, false, v1.ProgressingReason, "waiting for the first sync")
	default:
		cond(v1.ReadyCondition, true, v1.SucceededReason, fmt.Sprintf("enforcing generation %d", a.Datapath.Generation()))
	}
}
