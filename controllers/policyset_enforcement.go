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

package controllers

import (
	"context"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"time"

	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/workqueue"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	v1 "github.com/palisade-dev/palisade/api/v1alpha1"
)

// DefaultKernelDriftWindow is how long a kernel drift a node reported
// keeps a PolicySet Drifted, as the agent's own window.
const DefaultKernelDriftWindow = 5 * time.Minute

// maxNodesInMessage bounds how many nodes a condition message names.
const maxNodesInMessage = 3

// enforcementReport is what the nodes' NodeEnforcement objects say about
// one PolicySet's applied revision.
type enforcementReport struct {
	summary v1.EnforcementSummary
	// status, reason and message of the Enforced condition.
	status  metav1.ConditionStatus
	reason  string
	message string
	// kernel describes, per node, the kernel drift within the window.
	kernel []string
	// recheck is how long until the newest drift of some node leaves the
	// window, when Drifted may turn False; 0 when no drift is in it.
	recheck time.Duration
}

// enforcementOf aggregates the nodes' reports for ps at time now.
//
//   - nodes: NodeEnforcement objects whose Ready is True (nodes with a
//     working agent);
//   - enforced: those of them that list the set at lastAppliedRevision and
//     enforce every object of it that concerns them fully (no object
//     Partial or NotEnforced): status never claims more than the kernel
//     does;
//   - drifted: nodes that list the set (at any revision) and reported a
//     kernel drift within window. Drifts are per node, not per set: a node
//     that enforces the set and whose kernel state drifted counts.
//
// Enforced is True when every Ready node enforces the revision fully;
// False with EnforcementFailed when a node that does not enforce it
// reports endpoint errors (they say why it cannot, e.g. MapFull; such a
// node is often not Ready); False with PartiallyEnforced when a node
// enforces the revision but not every object of it, naming the objects and
// what is missing; and False with EnforcementPending otherwise (a node
// behind, or waiting for a revision to be complete in the API).
func enforcementOf(ps *v1.PolicySet, nodes []v1.NodeEnforcement, now time.Time, window time.Duration) enforcementReport {
	rev := ps.Status.LastAppliedRevision
	nodes = slices.Clone(nodes)
	slices.SortFunc(nodes, func(a, b v1.NodeEnforcement) int { return strings.Compare(a.Name, b.Name) })
	var (
		rep              enforcementReport
		pending, failing []string
		partial          shortfalls
	)
	for i := range nodes {
		ne := &nodes[i]
		v := viewOf(ps, ne)
		enforces := rev != "" && v.listed != nil && v.listed.Revision == rev
		full := enforces && v.listed.Partial == 0 && v.listed.NotEnforced == 0
		if v.ready {
			rep.summary.Nodes++
			if full {
				rep.summary.Enforced++
			}
		}
		switch {
		case !enforces && len(v.errors) > 0:
			e := v.errors[0]
			what := fmt.Sprintf("%s: %s: %s: %s", ne.Name, e.Reason, e.Endpoint, e.Message)
			if n := len(v.errors); n > 1 {
				what += fmt.Sprintf(" (and %d more endpoints)", n-1)
			}
			failing = append(failing, what)
		case v.ready && enforces && !full:
			partial.add(ne.Name, v.listed)
		case v.ready && !enforces:
			pending = append(pending, behind(ne.Name, v.listed))
		}
		if v.listed == nil {
			continue
		}
		if d, ok := newestDrift(v.drifts, now, window); ok {
			rep.summary.Drifted++
			rep.kernel = append(rep.kernel, describeDrift(ne.Name, d))
			if left := d.Time.Add(window).Sub(now); rep.recheck == 0 || left < rep.recheck {
				rep.recheck = left
			}
		}
	}
	s := &rep.summary
	s.Summary = fmt.Sprintf("%d/%d", s.Enforced, s.Nodes)
	rep.status, rep.reason = metav1.ConditionFalse, v1.EnforcementPendingReason
	switch {
	case rev == "":
		rep.message = "no revision applied yet"
	case len(failing) > 0:
		rep.reason = v1.EnforcementFailedReason
		rep.message = fmt.Sprintf("%s nodes enforce %s; failing: %s", s.Summary, rev, nameSome(failing))
	case s.Nodes == 0:
		rep.message = fmt.Sprintf("0/0 nodes enforce %s: no NodeEnforcement is Ready; is the agent running?", rev)
	case s.Enforced == s.Nodes:
		rep.status, rep.reason = metav1.ConditionTrue, v1.EnforcementSucceededReason
		rep.message = fmt.Sprintf("%s nodes enforce %s", s.Summary, rev)
	case len(partial.groups) > 0:
		rep.reason = v1.PartiallyEnforcedReason
		rep.message = fmt.Sprintf("%s nodes enforce %s fully; %s", s.Summary, rev, partial.String())
		if len(pending) > 0 {
			rep.message += "; waiting for " + nameSome(pending)
		}
	default:
		rep.message = fmt.Sprintf("%s nodes enforce %s; waiting for %s", s.Summary, rev, nameSome(pending))
	}
	return rep
}

// behind says why a Ready node does not enforce the applied revision:
// "b enforces <rev>", "b does not enforce this set yet", or, when the node
// waits for a revision to be complete in the API, "b enforces <rev>
// (RevisionIncomplete: <pending> is not complete in the API yet)".
func behind(node string, listed *v1.PolicySetEnforcement) string {
	switch {
	case listed == nil:
		return node + " does not enforce this set yet"
	case listed.PendingRevision == "":
		return node + " enforces " + listed.Revision
	case listed.Revision == "":
		return fmt.Sprintf("%s enforces no revision of this set (%s: %s is not complete in the API yet)",
			node, v1.RevisionIncompleteReason, listed.PendingRevision)
	}
	return fmt.Sprintf("%s enforces %s (%s: %s is not complete in the API yet)",
		node, listed.Revision, v1.RevisionIncompleteReason, listed.PendingRevision)
}

// Bounds of the Enforced message of a set whose objects some nodes do not
// enforce fully: the objects named per node, and the length of each
// node's message quoted (the object's own status carries it whole).
const (
	maxObjectsInMessage    = 3
	maxObjectMessageLength = 256
)

// shortfalls collects what nodes that enforce the applied revision do not
// enforce of it, grouping the nodes that say the same: nodes running one
// datapath version usually do.
type shortfalls struct {
	groups []*shortfall
}

// shortfall is one account of the objects not enforced fully and the nodes
// that give it.
type shortfall struct {
	what  string
	nodes []string
}

// add records node's entry for the set.
func (s *shortfalls) add(node string, listed *v1.PolicySetEnforcement) {
	objs := slices.Clone(listed.Objects)
	slices.SortFunc(objs, func(a, b v1.ObjectEnforcement) int {
		return strings.Compare(a.Kind+"\x00"+a.Namespace+"\x00"+a.Name, b.Kind+"\x00"+b.Namespace+"\x00"+b.Name)
	})
	var parts []string
	for i, o := range objs {
		if i == maxObjectsInMessage {
			break
		}
		parts = append(parts, objectShortfall(o))
	}
	total := int(listed.Partial + listed.NotEnforced)
	if total < len(objs) {
		total = len(objs)
	}
	switch more := total - len(parts); {
	case len(parts) == 0:
		parts = append(parts, fmt.Sprintf("%d objects not enforced fully", total))
	case more > 0:
		parts = append(parts, fmt.Sprintf("and %d more objects not enforced fully", more))
	}
	what := strings.Join(parts, "; ")
	for _, g := range s.groups {
		if g.what == what {
			g.nodes = append(g.nodes, node)
			return
		}
	}
	s.groups = append(s.groups, &shortfall{what: what, nodes: []string{node}})
}

// String names the first groups' nodes and objects and counts the rest.
func (s *shortfalls) String() string {
	var parts []string
	for i, g := range s.groups {
		if i == maxNodesInMessage {
			n := 0
			for _, g := range s.groups[i:] {
				n += len(g.nodes)
			}
			parts = append(parts, fmt.Sprintf("and %d more nodes", n))
			break
		}
		parts = append(parts, nodeList(g.nodes)+": "+g.what)
	}
	return strings.Join(parts, "; ")
}

// objectShortfall is "NetworkPolicy shop/web: <message>" for an object
// enforced in part, "NetworkPolicy shop/web: not enforced (LoadFailed):
// <message>" for one not enforced at all.
func objectShortfall(o v1.ObjectEnforcement) string {
	ref := o.Kind + " " + o.Name
	if o.Namespace != "" {
		ref = o.Kind + " " + o.Namespace + "/" + o.Name
	}
	msg := clip(o.Message, maxObjectMessageLength)
	if o.State == v1.ObjectNotEnforced {
		return fmt.Sprintf("%s: not enforced (%s): %s", ref, o.Reason, msg)
	}
	return ref + ": " + msg
}

// nodeList is "a", "a, b", "a, b, c" or "a, b, c and 4 more nodes".
func nodeList(nodes []string) string {
	if len(nodes) <= maxNodesInMessage {
		return strings.Join(nodes, ", ")
	}
	return strings.Join(nodes[:maxNodesInMessage], ", ") + fmt.Sprintf(" and %d more nodes", len(nodes)-maxNodesInMessage)
}

// clip shortens s to at most n runes, marking the cut with "…".
func clip(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}

// newestDrift returns the newest drift found within window before now.
func newestDrift(drifts []v1.KernelDrift, now time.Time, window time.Duration) (v1.KernelDrift, bool) {
	var (
		best v1.KernelDrift
		ok   bool
	)
	for _, d := range drifts {
		if now.Sub(d.Time.Time) >= window || (ok && !d.Time.After(best.Time.Time)) {
			continue
		}
		best, ok = d, true
	}
	return best, ok
}

// describeDrift is "node: MapEntry drift at 12:00:05Z, repaired: what".
func describeDrift(node string, d v1.KernelDrift) string {
	verb := "repaired"
	if !d.Repaired {
		verb = "not repaired (" + d.Message + ")"
	}
	return fmt.Sprintf("%s: %s drift at %s, %s: %s", node, d.Kind, d.Time.UTC().Format("15:04:05Z"), verb, d.What)
}

// nameSome joins the first maxNodesInMessage items and counts the rest.
func nameSome(items []string) string {
	if len(items) <= maxNodesInMessage {
		return strings.Join(items, "; ")
	}
	return strings.Join(items[:maxNodesInMessage], "; ") + fmt.Sprintf("; and %d more nodes", len(items)-maxNodesInMessage)
}

// apiDriftPrefix starts the Drifted message of API drift found while rev
// was applied; it lets a later reconcile of the same revision recognize
// the report and keep it.
func apiDriftPrefix(rev string) string {
	return "restored revision " + rev + " over hand edits: "
}

// apiDriftMessage describes the API drift corrected while applying rev.
func apiDriftMessage(rev string, drift []string) string {
	return apiDriftPrefix(rev) + strings.Join(drift, "; ")
}

// setDrifted sets the Drifted condition from API drift and kernel drift.
//
// API drift found in this reconcile (apiDrift) or reported earlier for the
// same applied revision stays until a new revision is applied, so that a
// hand edit restored within a second still shows in kubectl get. Kernel
// drift shows while some node's newest drift is within the window. When
// both hold, the reason is KernelDrift and the message names both, the API
// part last.
func setDrifted(conds *[]metav1.Condition, gen int64, rev string, apiDrift, kernel []string, window time.Duration) {
	api := ""
	switch prev := apimeta.FindStatusCondition(*conds, v1.DriftedCondition); {
	case rev == "":
	case len(apiDrift) > 0:
		api = apiDriftMessage(rev, apiDrift)
	case prev != nil && prev.Status == metav1.ConditionTrue:
		if i := strings.Index(prev.Message, apiDriftPrefix(rev)); i >= 0 {
			api = prev.Message[i:]
		}
	}
	switch {
	case len(kernel) > 0:
		msg := fmt.Sprintf("kernel drift within the last %s on %s", window, nameSome(kernel))
		if api != "" {
			msg += "; " + api
		}
		setCondition(conds, gen, v1.DriftedCondition, metav1.ConditionTrue, v1.KernelDriftReason, msg)
	case api != "":
		setCondition(conds, gen, v1.DriftedCondition, metav1.ConditionTrue, v1.APIDriftReason, api)
	case rev != "":
		setCondition(conds, gen, v1.DriftedCondition, metav1.ConditionFalse, v1.NoDriftReason,
			fmt.Sprintf("no hand edits since revision %s was applied and no kernel drift within the last %s", rev, window))
	}
}

// driftWindow is the configured kernel drift window or the default.
func (r *PolicySetReconciler) driftWindow() time.Duration {
	if r.KernelDriftWindow > 0 {
		return r.KernelDriftWindow
	}
	return DefaultKernelDriftWindow
}

// reconcileEnforcement fills status.enforcement from the NodeEnforcement
// objects, owns the Enforced and Drifted conditions, and writes the
// Enforced and Ready conditions of the objects the set owns
// (reconcileObjectStatus); apiDrift is what the apply step restored in
// this reconcile. It runs after the other steps whether they succeeded or
// not: the nodes enforce the applied revision either way. It returns when
// to look again for a drift to leave the window.
func (r *PolicySetReconciler) reconcileEnforcement(ctx context.Context, obj *v1.PolicySet, apiDrift []string) (time.Duration, error) {
	// Without deep copies: the reports are only read (enforcementOf,
	// viewOf and setReports copy what they change); copying every node's
	// report for each summary was a third of the enforcement step's CPU
	// at 100 hollow nodes.
	var nodes v1.NodeEnforcementList
	if err := r.List(ctx, &nodes, client.UnsafeDisableDeepCopy); err != nil {
		return 0, fmt.Errorf("list NodeEnforcements: %w", err)
	}
	window := r.driftWindow()
	rep := enforcementOf(obj, nodes.Items, time.Now(), window)
	obj.Status.Enforcement = &rep.summary
	setCondition(&obj.Status.Conditions, obj.Generation, v1.EnforcedCondition, rep.status, rep.reason, rep.message)
	setDrifted(&obj.Status.Conditions, obj.Generation, obj.Status.LastAppliedRevision, apiDrift, rep.kernel, window)
	if err := r.reconcileObjectStatus(ctx, obj, nodes.Items); err != nil {
		return rep.recheck, fmt.Errorf("objects' status: %w", err)
	}
	return rep.recheck, nil
}

// nodeView is what one node's report says about one set: everything
// enforcementOf and the objects' status read from it. Equal views give
// equal reports, which is how the NodeEnforcement watch tells which sets a
// change concerns.
type nodeView struct {
	ready bool
	// listed is the node's entry for the set, without what changes with
	// every switch of the node's maps (generation) or what nothing reads
	// (the number of policies and of those enforced); nil when the node
	// does not list the set.
	listed *v1.PolicySetEnforcement
	// errors are the node's endpoint errors when it does not enforce the
	// set's applied revision: they say why it cannot.
	errors []v1.EndpointError
	// drifts are the node's kernel drifts when it lists the set.
	drifts []v1.KernelDrift
}

// viewOf is what ne says about ps; a nil ne says nothing.
func viewOf(ps *v1.PolicySet, ne *v1.NodeEnforcement) nodeView {
	var v nodeView
	if ne == nil {
		return v
	}
	v.ready = apimeta.IsStatusConditionTrue(ne.Status.Conditions, v1.ReadyCondition)
	for j := range ne.Status.PolicySets {
		if s := ne.Status.PolicySets[j]; s.Namespace == ps.Namespace && s.Name == ps.Name {
			s.Generation, s.Policies, s.Enforced = 0, 0, 0
			v.listed = &s
			break
		}
	}
	rev := ps.Status.LastAppliedRevision
	if rev == "" || v.listed == nil || v.listed.Revision != rev {
		v.errors = ne.Status.Errors
	}
	if v.listed != nil {
		v.drifts = ne.Status.Drifts
	}
	return v
}

// enforcementHandler maps NodeEnforcement events to the PolicySets whose
// report they change: those for which viewOf differs before and after
// (for a node appearing or going, every set it counts in). A node's
// heartbeat (lastVerifiedTime), map usage and datapath generations change
// no view and wake nothing; a node's new revision, objects, drifts or
// readiness wake the sets it changes, not every set. A set is woken batch
// after the first report that concerns it: the queue keeps the earliest
// wake of a waiting set, so the reports of a rollout that arrive
// meanwhile are summed up by one reconcile and cost one status patch.
func (r *PolicySetReconciler) enforcementHandler(batch time.Duration) handler.EventHandler {
	return handler.Funcs{
		CreateFunc: func(ctx context.Context, e event.CreateEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
			if n, ok := e.Object.(*v1.NodeEnforcement); ok {
				r.enqueueChangedSets(ctx, q, nil, n, batch)
			}
		},
		DeleteFunc: func(ctx context.Context, e event.DeleteEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
			if o, ok := e.Object.(*v1.NodeEnforcement); ok {
				r.enqueueChangedSets(ctx, q, o, nil, batch)
			}
		},
		UpdateFunc: func(ctx context.Context, e event.UpdateEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
			o, ok1 := e.ObjectOld.(*v1.NodeEnforcement)
			n, ok2 := e.ObjectNew.(*v1.NodeEnforcement)
			if !ok1 || !ok2 || sameReport(o, n) {
				return
			}
			r.enqueueChangedSets(ctx, q, o, n, batch)
		},
	}
}

// sameReport is true when two versions of a node's report differ in
// nothing any set's view reads, so no set needs listing.
func sameReport(o, n *v1.NodeEnforcement) bool {
	ready := func(ne *v1.NodeEnforcement) bool {
		return apimeta.IsStatusConditionTrue(ne.Status.Conditions, v1.ReadyCondition)
	}
	sets := func(ne *v1.NodeEnforcement) []v1.PolicySetEnforcement {
		out := slices.Clone(ne.Status.PolicySets)
		for i := range out {
			out[i].Generation, out[i].Policies, out[i].Enforced = 0, 0, 0
		}
		return out
	}
	return ready(o) == ready(n) &&
		reflect.DeepEqual(sets(o), sets(n)) &&
		reflect.DeepEqual(o.Status.Errors, n.Status.Errors) &&
		reflect.DeepEqual(o.Status.Drifts, n.Status.Drifts)
}

// enqueueChangedSets wakes, after batch, the PolicySets whose view of the
// node differs between o and n (either may be nil), read from the cache.
func (r *PolicySetReconciler) enqueueChangedSets(ctx context.Context, q workqueue.TypedRateLimitingInterface[reconcile.Request], o, n *v1.NodeEnforcement, batch time.Duration) {
	// Read only (changedSets), so without deep copies: this runs for
	// every node's report.
	var list v1.PolicySetList
	if err := r.List(ctx, &list, client.UnsafeDisableDeepCopy); err != nil {
		log.FromContext(ctx).Error(err, "list policysets for a NodeEnforcement change")
		return
	}
	for _, key := range changedSets(list.Items, o, n) {
		q.AddAfter(reconcile.Request{NamespacedName: key}, batch)
	}
}

// changedSets are the sets whose view of the node differs between o and n.
func changedSets(sets []v1.PolicySet, o, n *v1.NodeEnforcement) []types.NamespacedName {
	var out []types.NamespacedName
	for i := range sets {
		ps := &sets[i]
		if !reflect.DeepEqual(viewOf(ps, o), viewOf(ps, n)) {
			out = append(out, client.ObjectKeyFromObject(ps))
		}
	}
	return out
}
