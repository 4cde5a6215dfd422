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
//   - enforced: those of them that list the set at lastAppliedRevision;
//   - drifted: nodes that list the set (at any revision) and reported a
//     kernel drift within window. Drifts are per node, not per set: a node
//     that enforces the set and whose kernel state drifted counts.
//
// Enforced is True when every Ready node enforces the revision, False with
// EnforcementFailed when a node that does not enforce it reports endpoint
// errors (they say why it cannot, e.g. MapFull; such a node is often not
// Ready), and False with EnforcementPending otherwise.
func enforcementOf(ps *v1.PolicySet, nodes []v1.NodeEnforcement, now time.Time, window time.Duration) enforcementReport {
	rev := ps.Status.LastAppliedRevision
	nodes = slices.Clone(nodes)
	slices.SortFunc(nodes, func(a, b v1.NodeEnforcement) int { return strings.Compare(a.Name, b.Name) })
	var (
		rep              enforcementReport
		pending, failing []string
	)
	for i := range nodes {
		ne := &nodes[i]
		ready := apimeta.IsStatusConditionTrue(ne.Status.Conditions, v1.ReadyCondition)
		var listed *v1.PolicySetEnforcement
		for j := range ne.Status.PolicySets {
			if s := &ne.Status.PolicySets[j]; s.Namespace == ps.Namespace && s.Name == ps.Name {
				listed = s
				break
			}
		}
		enforces := rev != "" && listed != nil && listed.Revision == rev
		if ready {
			rep.summary.Nodes++
			if enforces {
				rep.summary.Enforced++
			}
		}
		switch {
		case !enforces && len(ne.Status.Errors) > 0:
			e := ne.Status.Errors[0]
			what := fmt.Sprintf("%s: %s: %s: %s", ne.Name, e.Reason, e.Endpoint, e.Message)
			if n := len(ne.Status.Errors); n > 1 {
				what += fmt.Sprintf(" (and %d more endpoints)", n-1)
			}
			failing = append(failing, what)
		case ready && !enforces && listed != nil:
			pending = append(pending, ne.Name+" enforces "+listed.Revision)
		case ready && !enforces:
			pending = append(pending, ne.Name+" does not enforce this set yet")
		}
		if listed == nil {
			continue
		}
		if d, ok := newestDrift(ne.Status.Drifts, now, window); ok {
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
	default:
		rep.message = fmt.Sprintf("%s nodes enforce %s; waiting for %s", s.Summary, rev, nameSome(pending))
	}
	return rep
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
// objects and owns the Enforced and Drifted conditions; apiDrift is what
// the apply step restored in this reconcile. It runs after the other steps
// whether they succeeded or not: the nodes enforce the applied revision
// either way. It returns when to look again for a drift to leave the
// window.
func (r *PolicySetReconciler) reconcileEnforcement(ctx context.Context, obj *v1.PolicySet, apiDrift []string) (time.Duration, error) {
	var nodes v1.NodeEnforcementList
	if err := r.List(ctx, &nodes); err != nil {
		return 0, fmt.Errorf("list NodeEnforcements: %w", err)
	}
	window := r.driftWindow()
	rep := enforcementOf(obj, nodes.Items, time.Now(), window)
	obj.Status.Enforcement = &rep.summary
	setCondition(&obj.Status.Conditions, obj.Generation, v1.EnforcedCondition, rep.status, rep.reason, rep.message)
	setDrifted(&obj.Status.Conditions, obj.Generation, obj.Status.LastAppliedRevision, apiDrift, rep.kernel, window)
	return rep.recheck, nil
}

// enforcementHandler maps NodeEnforcement events to the PolicySets they
// concern. A node's list of set revisions, or its kernel drifts, changing
// wakes the sets it lists (before and after); a node appearing, going, or
// turning Ready or not, or its endpoint errors changing, changes every
// set's count, so it wakes them all. The verify loop's heartbeat
// (lastVerifiedTime) and map usage wake nothing.
func (r *PolicySetReconciler) enforcementHandler() handler.EventHandler {
	return handler.Funcs{
		CreateFunc: func(ctx context.Context, e event.CreateEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
			r.enqueueAllSets(ctx, q)
		},
		DeleteFunc: func(ctx context.Context, e event.DeleteEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
			r.enqueueAllSets(ctx, q)
		},
		UpdateFunc: func(ctx context.Context, e event.UpdateEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
			o, ok1 := e.ObjectOld.(*v1.NodeEnforcement)
			n, ok2 := e.ObjectNew.(*v1.NodeEnforcement)
			if !ok1 || !ok2 {
				return
			}
			ready := func(ne *v1.NodeEnforcement) bool {
				return apimeta.IsStatusConditionTrue(ne.Status.Conditions, v1.ReadyCondition)
			}
			if ready(o) != ready(n) || !reflect.DeepEqual(o.Status.Errors, n.Status.Errors) {
				r.enqueueAllSets(ctx, q)
				return
			}
			if setRevisions(o) == setRevisions(n) && reflect.DeepEqual(o.Status.Drifts, n.Status.Drifts) {
				return
			}
			for _, ne := range []*v1.NodeEnforcement{o, n} {
				for _, s := range ne.Status.PolicySets {
					q.Add(reconcile.Request{NamespacedName: types.NamespacedName{Namespace: s.Namespace, Name: s.Name}})
				}
			}
		},
	}
}

// setRevisions is a node's list of set revisions, without the datapath
// generation and counts that change on every switch of its maps.
func setRevisions(ne *v1.NodeEnforcement) string {
	var b strings.Builder
	for _, s := range ne.Status.PolicySets {
		fmt.Fprintf(&b, "%s/%s@%s\n", s.Namespace, s.Name, s.Revision)
	}
	return b.String()
}

// enqueueAllSets wakes every PolicySet.
func (r *PolicySetReconciler) enqueueAllSets(ctx context.Context, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
	var list v1.PolicySetList
	if err := r.List(ctx, &list); err != nil {
		log.FromContext(ctx).Error(err, "list policysets for a NodeEnforcement change")
		return
	}
	for _, ps := range list.Items {
		q.Add(reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&ps)})
	}
}
