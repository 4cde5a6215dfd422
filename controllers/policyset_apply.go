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
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"

	v1 "github.com/palisade-dev/palisade/api/v1alpha1"
	"github.com/palisade-dev/palisade/internal/metrics"
	"github.com/palisade-dev/palisade/internal/render"
)

// ownedKind is one kind of object a PolicySet applies.
type ownedKind struct {
	kind   string
	object client.Object
	list   func() client.ObjectList
	items  func(client.ObjectList) []client.Object
}

// ownedKinds are the four policy kinds, in render's order.
func ownedKinds() []ownedKind {
	return []ownedKind{
		{"ClusterNetworkPolicy", &v1.ClusterNetworkPolicy{},
			func() client.ObjectList { return &v1.ClusterNetworkPolicyList{} },
			func(l client.ObjectList) []client.Object {
				return ptrs(l.(*v1.ClusterNetworkPolicyList).Items)
			}},
		{"ClusterTracingPolicy", &v1.ClusterTracingPolicy{},
			func() client.ObjectList { return &v1.ClusterTracingPolicyList{} },
			func(l client.ObjectList) []client.Object {
				return ptrs(l.(*v1.ClusterTracingPolicyList).Items)
			}},
		{"NetworkPolicy", &v1.NetworkPolicy{},
			func() client.ObjectList { return &v1.NetworkPolicyList{} },
			func(l client.ObjectList) []client.Object { return ptrs(l.(*v1.NetworkPolicyList).Items) }},
		{"TracingPolicy", &v1.TracingPolicy{},
			func() client.ObjectList { return &v1.TracingPolicyList{} },
			func(l client.ObjectList) []client.Object { return ptrs(l.(*v1.TracingPolicyList).Items) }},
	}
}

// ptrs returns pointers to a list's items as client.Objects.
func ptrs[T any, PT interface {
	*T
	client.Object
}](items []T) []client.Object {
	out := make([]client.Object, len(items))
	for i := range items {
		out[i] = PT(&items[i])
	}
	return out
}

// listOwned returns the objects the set owns now, selected by render's
// labels, each with its kind set.
func (r *PolicySetReconciler) listOwned(ctx context.Context, obj *v1.PolicySet) ([]client.Object, error) {
	sel := client.MatchingLabels{render.LabelPolicySetName: obj.Name, render.LabelPolicySetNamespace: obj.Namespace}
	var out []client.Object
	for _, k := range ownedKinds() {
		l := k.list()
		if err := r.List(ctx, l, sel); err != nil {
			return nil, fmt.Errorf("list owned %s: %w", k.kind, err)
		}
		for _, o := range k.items(l) {
			o.GetObjectKind().SetGroupVersionKind(v1.GroupVersion.WithKind(k.kind))
			out = append(out, o)
		}
	}
	return out, nil
}

// objectID is an inventory id: "<namespace>_<name>_<group>_<kind>".
func objectID(o client.Object) string {
	gvk := o.GetObjectKind().GroupVersionKind()
	return fmt.Sprintf("%s_%s_%s_%s", o.GetNamespace(), o.GetName(), gvk.Group, gvk.Kind)
}

// objectRef is "Kind namespace/name" (or "Kind name"), for messages.
func objectRef(o client.Object) string {
	k := o.GetObjectKind().GroupVersionKind().Kind
	if o.GetNamespace() == "" {
		return k + " " + o.GetName()
	}
	return k + " " + o.GetNamespace() + "/" + o.GetName()
}

// applyConfig is the server-side apply body of a rendered object: what
// render set, without status or server-set metadata.
func applyConfig(o client.Object) (*unstructured.Unstructured, error) {
	b, err := json.Marshal(o)
	if err != nil {
		return nil, err
	}
	m := map[string]any{}
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, err
	}
	delete(m, "status")
	if md, ok := m["metadata"].(map[string]any); ok {
		delete(md, "creationTimestamp")
	}
	return &unstructured.Unstructured{Object: m}, nil
}

// fingerprint is what drift detection compares: labels, annotations and
// spec, as JSON.
func fingerprint(o client.Object) ([]byte, error) {
	b, err := json.Marshal(o)
	if err != nil {
		return nil, err
	}
	var parts struct {
		Spec json.RawMessage `json:"spec"`
	}
	if err := json.Unmarshal(b, &parts); err != nil {
		return nil, err
	}
	meta, err := json.Marshal(map[string]any{"labels": o.GetLabels(), "annotations": o.GetAnnotations()})
	if err != nil {
		return nil, err
	}
	return append(append(meta, '\n'), parts.Spec...), nil
}

// fieldDiff names what differs between the live object and the one the
// set wants: "spec", "labels", "annotations".
func fieldDiff(live, want client.Object) []string {
	var out []string
	if !maps.Equal(live.GetLabels(), want.GetLabels()) {
		out = append(out, "labels")
	}
	if !maps.Equal(live.GetAnnotations(), want.GetAnnotations()) {
		out = append(out, "annotations")
	}
	a, _ := fingerprint(live)
	b, _ := fingerprint(want)
	if i, j := bytes.IndexByte(a, '\n'), bytes.IndexByte(b, '\n'); i >= 0 && j >= 0 && !bytes.Equal(a[i:], b[j:]) {
		out = append(out, "spec")
	}
	return out
}

// foreignSpecManager returns a field manager other than Palisade that owns
// spec fields of the object: someone wrote into an object the set owns.
func foreignSpecManager(o client.Object) string {
	for _, mf := range o.GetManagedFields() {
		if mf.Manager == FieldManager || mf.Subresource != "" || mf.FieldsV1 == nil {
			continue
		}
		if bytes.Contains(mf.FieldsV1.Raw, []byte(`"f:spec"`)) {
			return mf.Manager
		}
	}
	return ""
}

// planned is one rendered object with its dry-run result and what the
// apply will do to it.
type planned struct {
	want    *unstructured.Unstructured
	result  client.Object // the dry-run's answer: the object as it will be
	live    client.Object // nil when it does not exist
	changed []string      // what differs from live
	foreign string        // a foreign manager that owns spec fields
}

// reconcileApply applies the rendered objects with server-side apply and
// prunes what left Git, owning the Applied condition. Every object is first
// applied as a dry run, so a rejection writes nothing. Differences between
// the live objects and the revision they were applied from are API drift:
// restored, counted, sent as an event and returned for the Drifted
// condition.
func (r *PolicySetReconciler) reconcileApply(ctx context.Context, obj *v1.PolicySet, src *policySource, live, desired []client.Object) ([]string, error) {
	conds := &obj.Status.Conditions
	fail := func(err *stepError) ([]string, error) {
		setCondition(conds, obj.Generation, v1.AppliedCondition, metav1.ConditionFalse, err.reason, err.Error())
		return nil, err
	}
	liveByID := make(map[string]client.Object, len(live))
	for _, o := range live {
		liveByID[objectID(o)] = o
	}
	inInventory := map[string]bool{}
	if inv := obj.Status.Inventory; inv != nil {
		for _, e := range inv.Entries {
			inInventory[e.ID] = true
		}
	}

	// Plan: a dry run of every object; nothing is written unless all pass.
	plan := make([]planned, 0, len(desired))
	for _, o := range desired {
		u, err := applyConfig(o)
		if err != nil {
			return fail(stalled(v1.ApplyFailedReason, fmt.Errorf("%s: %w", objectRef(o), err)))
		}
		dry := u.DeepCopy()
		if err := r.Apply(ctx, client.ApplyConfigurationFromUnstructured(dry), client.FieldOwner(FieldManager), client.ForceOwnership, client.DryRunAll); err != nil {
			return fail(applyError(src.Revision, o, err))
		}
		res := o.DeepCopyObject().(client.Object)
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(dry.Object, res); err != nil {
			return fail(waiting(v1.ApplyFailedReason, fmt.Errorf("dry-run %s: %w", objectRef(o), err)))
		}
		res.GetObjectKind().SetGroupVersionKind(o.GetObjectKind().GroupVersionKind())
		p := planned{want: u, result: res, live: liveByID[objectID(o)]}
		if p.live == nil {
			p.changed = []string{"created"}
		} else {
			p.changed = fieldDiff(p.live, res)
			p.foreign = foreignSpecManager(p.live)
		}
		plan = append(plan, p)
	}

	// API drift: an inventoried object that is gone, or one applied from
	// this revision that no longer looks as applied.
	var drift []string
	for _, p := range plan {
		id := objectID(p.result)
		switch {
		case p.live == nil && inInventory[id]:
			drift = append(drift, objectRef(p.result)+" was deleted")
			r.countDrift(p.result)
		case p.live != nil && p.live.GetAnnotations()[render.AnnotationRevision] == src.Revision && (len(p.changed) > 0 || p.foreign != ""):
			what := slices.Clone(p.changed)
			if p.foreign != "" {
				what = append(what, "spec fields set by "+p.foreign)
			}
			drift = append(drift, objectRef(p.result)+" was edited ("+strings.Join(what, ", ")+")")
			r.countDrift(p.result)
		}
	}

	// Apply: restore spec fields someone else set (server-side apply
	// would keep them: it removes only fields Palisade owned), then apply
	// what changed.
	var created, configured int
	for _, p := range plan {
		if p.foreign != "" {
			fixed := p.live.DeepCopyObject().(client.Object)
			if err := setSpec(fixed, p.result); err != nil {
				return fail(waiting(v1.ApplyFailedReason, err))
			}
			if err := r.Update(ctx, fixed, client.FieldOwner(FieldManager)); err != nil {
				return fail(applyError(src.Revision, p.result, err))
			}
		}
		if p.live != nil && len(p.changed) == 0 && p.foreign == "" {
			continue
		}
		if err := r.Apply(ctx, client.ApplyConfigurationFromUnstructured(p.want.DeepCopy()), client.FieldOwner(FieldManager), client.ForceOwnership); err != nil {
			return fail(applyError(src.Revision, p.result, err))
		}
		if p.live == nil {
			created++
		} else {
			configured++
		}
	}

	// Prune: what the set owns and the revision no longer renders.
	wanted := make(map[string]bool, len(plan))
	entries := make([]v1.InventoryEntry, 0, len(plan))
	for _, p := range plan {
		id := objectID(p.result)
		wanted[id] = true
		entries = append(entries, v1.InventoryEntry{ID: id, Version: p.result.GetObjectKind().GroupVersionKind().Version})
	}
	pruned := 0
	if obj.Spec.Prune == nil || *obj.Spec.Prune {
		for _, o := range live {
			if wanted[objectID(o)] {
				continue
			}
			if err := r.Delete(ctx, o, client.Preconditions{UID: ptrTo(o.GetUID())}); client.IgnoreNotFound(err) != nil {
				return fail(waiting(v1.PruneFailedReason, fmt.Errorf("prune %s: %w", objectRef(o), err)))
			}
			pruned++
		}
	}
	slices.SortFunc(entries, func(a, b v1.InventoryEntry) int { return strings.Compare(a.ID, b.ID) })
	obj.Status.Inventory = &v1.Inventory{Entries: entries}
	prev := obj.Status.LastAppliedRevision
	obj.Status.LastAppliedRevision = src.Revision
	obj.Status.History = recordApply(obj.Status.History, src.Revision, prev, plan)
	// The message is stable across reconciles of one revision; what a
	// reconcile changed goes to the log and, on a new revision, an event.
	setCondition(conds, obj.Generation, v1.AppliedCondition, metav1.ConditionTrue, v1.ApplySucceededReason,
		fmt.Sprintf("applied revision %s: %d objects", src.Revision, len(plan)))
	if created+configured+pruned > 0 {
		log.FromContext(ctx).Info("applied", "revision", src.Revision, "created", created, "configured", configured, "pruned", pruned)
	}
	if prev != src.Revision && r.Recorder != nil {
		r.Recorder.AnnotatedEventf(obj, nil, map[string]string{"palisade.dev/revision": src.Revision}, corev1.EventTypeNormal, v1.NewRevisionReason, "Apply",
			"applied revision %s: %d objects (%d created, %d configured, %d pruned)", src.Revision, len(plan), created, configured, pruned)
	}

	if len(drift) > 0 {
		msg := apiDriftMessage(src.Revision, drift)
		log.FromContext(ctx).Info("API drift corrected", "drift", drift)
		if r.Recorder != nil {
			r.Recorder.AnnotatedEventf(obj, nil, map[string]string{"palisade.dev/revision": src.Revision},
				corev1.EventTypeWarning, v1.APIDriftReason, "Reconcile", "%s", msg)
		}
	}
	// Drifted is set by the enforcement step, which adds the nodes'
	// kernel drift to the API drift found here.
	return drift, nil
}

// countDrift counts one API drift, repaired, by kind.
func (r *PolicySetReconciler) countDrift(o client.Object) {
	if r.Drift != nil {
		r.Drift.WithLabelValues(metrics.SourceAPI, o.GetObjectKind().GroupVersionKind().Kind, "true").Inc()
	}
}

// setSpec copies want's spec into obj (both the same kind).
func setSpec(obj, want client.Object) error {
	switch t := obj.(type) {
	case *v1.NetworkPolicy:
		t.Spec = *want.(*v1.NetworkPolicy).Spec.DeepCopy()
	case *v1.ClusterNetworkPolicy:
		t.Spec = *want.(*v1.ClusterNetworkPolicy).Spec.DeepCopy()
	case *v1.TracingPolicy:
		t.Spec = *want.(*v1.TracingPolicy).Spec.DeepCopy()
	case *v1.ClusterTracingPolicy:
		t.Spec = *want.(*v1.ClusterTracingPolicy).Spec.DeepCopy()
	default:
		return fmt.Errorf("%T is not a Palisade policy", obj)
	}
	return nil
}

// applyError classifies an apply failure: an object the API server
// rejects as invalid stalls until the next revision; anything else may go
// away on retry.
func applyError(rev string, o client.Object, err error) *stepError {
	err = fmt.Errorf("apply %s from revision %s: %w", objectRef(o), rev, err)
	if apierrors.IsInvalid(err) || apierrors.IsBadRequest(err) {
		return stalled(v1.ApplyFailedReason, err)
	}
	return waiting(v1.ApplyFailedReason, err)
}

func ptrTo[T any](v T) *T { return &v }

// appliedRevision is the history entry of applying rev over prev: the
// objects the apply created or whose spec it changed. An object that is
// not of prev (a half-done apply of another revision left it, or it was
// written by hand) counts as changed too, whatever its spec: what the
// nodes at prev enforce of it is not known.
func appliedRevision(rev, prev string, plan []planned) v1.AppliedRevision {
	e := v1.AppliedRevision{Revision: rev}
	if prev == "" {
		e.ChangedAll = true
		return e
	}
	for _, p := range plan {
		if p.live != nil && p.live.GetAnnotations()[render.AnnotationRevision] == prev && !slices.Contains(p.changed, "spec") && p.foreign == "" {
			continue
		}
		if len(e.Changed) == v1.MaxChangedObjects {
			e.Changed, e.ChangedAll = nil, true
			break
		}
		e.Changed = append(e.Changed, objectID(p.result))
	}
	slices.Sort(e.Changed)
	return e
}

// recordApply is the set's history after applying rev over prev: a new
// entry for a new revision; for the same revision applied again (the
// set's path changed, an edit restored), the objects this apply changed
// join its entry, so that nodes at older revisions stop counting for
// them.
func recordApply(h []v1.AppliedRevision, rev, prev string, plan []planned) []v1.AppliedRevision {
	if prev != rev {
		return addHistory(h, appliedRevision(rev, prev, plan))
	}
	if len(h) == 0 || h[0].Revision != rev || h[0].ChangedAll {
		return h
	}
	e := appliedRevision(rev, prev, plan)
	if !e.ChangedAll {
		for _, id := range h[0].Changed {
			if !slices.Contains(e.Changed, id) {
				e.Changed = append(e.Changed, id)
			}
		}
		if len(e.Changed) == len(h[0].Changed) {
			return h // nothing new
		}
		if len(e.Changed) > v1.MaxChangedObjects {
			e.Changed, e.ChangedAll = nil, true
		}
		slices.Sort(e.Changed)
	}
	out := slices.Clone(h)
	out[0] = e
	return out
}

// addHistory puts e first in h, keeping at most MaxAppliedHistory
// entries.
func addHistory(h []v1.AppliedRevision, e v1.AppliedRevision) []v1.AppliedRevision {
	out := append([]v1.AppliedRevision{e}, h...)
	if len(out) > v1.MaxAppliedHistory {
		out = out[:v1.MaxAppliedHistory]
	}
	return out
}

// sameSince is the revisions older than rev at which a node enforces the
// object id exactly as rev has it: those of the set's history after which
// no apply changed the object. It is empty unless rev is the set's
// applied revision and the history's newest entry (a half-done apply of
// another revision is not in the history).
func sameSince(ps *v1.PolicySet, rev, id string) map[string]bool {
	h := ps.Status.History
	if rev == "" || rev != ps.Status.LastAppliedRevision || len(h) == 0 || h[0].Revision != rev {
		return nil
	}
	var out map[string]bool
	for k, e := range h {
		if k > 0 && e.Revision != rev {
			if out == nil {
				out = map[string]bool{}
			}
			out[e.Revision] = true
		}
		if e.ChangedAll || slices.Contains(e.Changed, id) {
			break
		}
	}
	return out
}
