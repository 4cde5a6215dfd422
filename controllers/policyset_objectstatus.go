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

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "github.com/palisade-dev/palisade/api/v1alpha1"
	"github.com/palisade-dev/palisade/internal/render"
)

// maxReadyMessageLength bounds an object's Ready message: kubectl shows
// it in the wide STATUS column; Enforced carries the whole account.
const maxReadyMessageLength = 160

// objectKey names a policy object as nodes report it.
type objectKey struct{ kind, namespace, name string }

// keyOf is o's objectKey; o's kind must be set (listOwned sets it).
func keyOf(o client.Object) objectKey {
	return objectKey{o.GetObjectKind().GroupVersionKind().Kind, o.GetNamespace(), o.GetName()}
}

// nodeObjects is one Ready node's report on a set, indexed by object.
type nodeObjects struct {
	name   string
	listed *v1.PolicySetEnforcement // nil when the node does not list the set
	// objects are the set's objects the node does not enforce fully.
	objects map[objectKey]v1.ObjectEnforcement
	// truncated is true when the node counts more objects not enforced
	// fully than it lists (at most MaxObjectsPerSet per set and
	// MaxObjectsPerNode in all are listed): an
	// object it does not list may be one of them.
	truncated bool
}

// setReports indexes the Ready nodes' reports on ps, sorted by node, for
// the objects' conditions. Nodes that are not Ready count nowhere, as in
// the set's summary.
func setReports(ps *v1.PolicySet, nodes []v1.NodeEnforcement) []nodeObjects {
	var out []nodeObjects
	for i := range nodes {
		v := viewOf(ps, &nodes[i])
		if !v.ready {
			continue
		}
		n := nodeObjects{name: nodes[i].Name, listed: v.listed}
		if l := v.listed; l != nil {
			n.objects = make(map[objectKey]v1.ObjectEnforcement, len(l.Objects))
			for _, o := range l.Objects {
				n.objects[objectKey{o.Kind, o.Namespace, o.Name}] = o
			}
			n.truncated = int(l.Partial+l.NotEnforced) > len(l.Objects)
		}
		out = append(out, n)
	}
	slices.SortFunc(out, func(a, b nodeObjects) int { return strings.Compare(a.name, b.name) })
	return out
}

// objectRevision is the revision an owned object belongs to: the set's
// applied revision, unless the object already carries the revision the
// set attempted and has not applied completely (an apply that failed
// half-way), whose objects the nodes do not enforce yet. The informer
// cache may still hold an object as it was before this reconcile applied
// it; the set's status is what was applied.
func objectRevision(ps *v1.PolicySet, o client.Object) string {
	if a := o.GetAnnotations()[render.AnnotationRevision]; a != "" && a == ps.Status.LastAttemptedRevision {
		return a
	}
	return ps.Status.LastAppliedRevision
}

// objectEnforcement is the Enforced condition of one object of the set at
// revision rev, generation gen, from the Ready nodes' reports. A node
// enforces the object as it is when it enforces rev, or one of the older
// revisions in same (sameSince: no apply since changed the object):
//
//   - False with the node's reason (NotSupported, HookUnavailable,
//     LoadFailed, FailClosed) when such a node lists the object as
//     Partial or NotEnforced, quoting what it says;
//   - Unknown (PartiallyEnforced) when such a node counts more objects
//     not enforced fully than it lists, so this one may be among them;
//   - False (EnforcementPending) while a Ready node does not enforce the
//     object as it is;
//   - True when every Ready node does and none lists the object.
//
// The messages stay the same while nodes catch up with a revision one by
// one, so that a rollout writes the status of each object it changes
// twice, not once per node; and they do not name the revision once every
// node enforces the object, so that a rollout that leaves an object as it
// was writes nothing to it (each object status write is sent to every
// agent, which watches the policy objects: at a thousand nodes, a
// thousand watch events).
func objectEnforcement(ps *v1.PolicySet, rev string, gen int64, same map[string]bool, key objectKey, nodes []nodeObjects) (metav1.ConditionStatus, string, string) {
	if rev == "" {
		return metav1.ConditionFalse, v1.EnforcementPendingReason, "no revision applied yet"
	}
	if len(nodes) == 0 {
		return metav1.ConditionFalse, v1.EnforcementPendingReason, "no NodeEnforcement is Ready; is the agent running?"
	}
	type account struct {
		oe    v1.ObjectEnforcement
		nodes []string
	}
	var (
		accounts           []*account
		pending, truncated []string
	)
	for _, n := range nodes {
		if n.listed == nil || (n.listed.Revision != rev && !same[n.listed.Revision]) {
			pending = append(pending, n.name)
			continue
		}
		oe, ok := n.objects[key]
		if !ok {
			if n.truncated {
				truncated = append(truncated, n.name)
			}
			continue
		}
		i := slices.IndexFunc(accounts, func(a *account) bool {
			return a.oe.State == oe.State && a.oe.Reason == oe.Reason && a.oe.Message == oe.Message
		})
		if i < 0 {
			accounts = append(accounts, &account{oe: oe})
			i = len(accounts) - 1
		}
		accounts[i].nodes = append(accounts[i].nodes, n.name)
	}
	switch {
	case len(accounts) > 0:
		var parts []string
		for i, a := range accounts {
			if i == maxErrorsInMessage {
				parts = append(parts, fmt.Sprintf("and %d more accounts", len(accounts)-i))
				break
			}
			if a.oe.State == v1.ObjectNotEnforced {
				parts = append(parts, fmt.Sprintf("not enforced on %s (%s): %s", nodeList(a.nodes), a.oe.Reason, a.oe.Message))
			} else {
				parts = append(parts, fmt.Sprintf("partly enforced on %s: %s", nodeList(a.nodes), a.oe.Message))
			}
		}
		reason := accounts[0].oe.Reason
		if reason == "" {
			reason = v1.PartiallyEnforcedReason
		}
		return metav1.ConditionFalse, reason, strings.Join(parts, "; ")
	case len(truncated) > 0:
		return metav1.ConditionUnknown, v1.PartiallyEnforcedReason, fmt.Sprintf(
			"the reports of %s do not list every object of revision %s they do not enforce fully (at most %d per set, %d per node); this one may be among the rest",
			nodeList(truncated), rev, v1.MaxObjectsPerSet, v1.MaxObjectsPerNode)
	case len(pending) > 0:
		return metav1.ConditionFalse, v1.EnforcementPendingReason, fmt.Sprintf(
			"waiting for every Ready node to enforce revision %s; the Enforced condition of PolicySet %s/%s names them",
			rev, ps.Namespace, ps.Name)
	}
	return metav1.ConditionTrue, v1.EnforcementSucceededReason, fmt.Sprintf("every Ready node enforces generation %d of the object fully", gen)
}

// policyStatus is the status of one of the four policy kinds.
func policyStatus(o client.Object) *v1.PolicyStatus {
	switch t := o.(type) {
	case *v1.NetworkPolicy:
		return &t.Status
	case *v1.ClusterNetworkPolicy:
		return &t.Status
	case *v1.TracingPolicy:
		return &t.Status
	case *v1.ClusterTracingPolicy:
		return &t.Status
	}
	return nil
}

// setObjectConditions writes o's Enforced condition, and Ready mirroring
// it with a short message, into st; it reports whether st changed.
func setObjectConditions(st *v1.PolicyStatus, gen int64, status metav1.ConditionStatus, reason, msg string) bool {
	before := st.DeepCopy()
	setCondition(&st.Conditions, gen, v1.EnforcedCondition, status, reason, msg)
	readyReason, readyMsg := reason, clip(msg, maxReadyMessageLength)
	if status == metav1.ConditionTrue {
		readyReason = v1.SucceededReason
	}
	setCondition(&st.Conditions, gen, v1.ReadyCondition, status, readyReason, readyMsg)
	st.ObservedGeneration = gen
	return !reflect.DeepEqual(before, st)
}

// reconcileObjectStatus writes the Enforced and Ready conditions of each
// object the set owns, from the nodes' reports. It patches the status
// subresource of an object only when its conditions change, so a steady
// set writes nothing however many objects it has. A status patch is no
// foreign write: it wakes no set.
func (r *PolicySetReconciler) reconcileObjectStatus(ctx context.Context, obj *v1.PolicySet, nodes []v1.NodeEnforcement) error {
	owned, err := r.listOwned(ctx, obj)
	if err != nil {
		return err
	}
	reports := setReports(obj, nodes)
	var (
		first  error
		failed int
	)
	for _, o := range owned {
		st := policyStatus(o)
		if st == nil {
			continue
		}
		base := o.DeepCopyObject().(client.Object)
		rev := objectRevision(obj, o)
		status, reason, msg := objectEnforcement(obj, rev, o.GetGeneration(), sameSince(obj, rev, objectID(o)), keyOf(o), reports)
		if !setObjectConditions(st, o.GetGeneration(), status, reason, msg) {
			continue
		}
		if err := r.Status().Patch(ctx, o, client.MergeFrom(base), client.FieldOwner(FieldManager)); err != nil && !apierrors.IsNotFound(err) {
			if failed++; first == nil {
				first = fmt.Errorf("patch status of %s: %w", objectRef(o), err)
			}
		}
	}
	if failed > 1 {
		return fmt.Errorf("%w (and %d more objects)", first, failed-1)
	}
	return first
}
