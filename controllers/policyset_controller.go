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
	"errors"
	"fmt"
	"os"
	"reflect"
	"slices"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/util/retry"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/recorder"

	v1 "github.com/palisade-dev/palisade/api/v1alpha1"
	"github.com/palisade-dev/palisade/internal/render"
)

// FieldManager is the server-side apply field manager of every object a
// PolicySet applies.
const FieldManager = "palisade"

// policySetSourceIndex indexes PolicySets by the PolicyRepository they
// read, so a new artifact wakes exactly the sets that use it.
const policySetSourceIndex = ".spec.sourceRef.policyRepository"

// PolicySetReconciler loads, validates, guards and applies the policies of
// PolicySets, prunes what left Git and restores what was edited by hand.
type PolicySetReconciler struct {
	client.Client
	// Recorder receives events on a new revision, a failure, a recovery
	// and a drift.
	Recorder recorder.EventRecorder
	// Storage holds the PolicyRepository artifacts.
	Storage *Storage
	// Drift, when set, counts API drift by kind (palisade_drift_total
	// with labels source, what, repaired).
	Drift *prometheus.CounterVec
	// KernelDriftWindow is how long a kernel drift reported by a node
	// keeps the set Drifted; DefaultKernelDriftWindow when zero.
	KernelDriftWindow time.Duration
	// MaxConcurrentReconciles is how many sets reconcile at once;
	// DefaultPolicySetConcurrency when zero.
	MaxConcurrentReconciles int
}

// DefaultPolicySetConcurrency is how many PolicySets reconcile at once by
// default, as Flux's kustomize-controller: a reconcile mostly waits on the
// API server, so a few in flight keep two cores busy.
const DefaultPolicySetConcurrency = 4

// +kubebuilder:rbac:groups=palisade.dev,resources=policysets,verbs=get;list;watch;update;patch
// +kubebuilder:rbac:groups=palisade.dev,resources=policysets/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=palisade.dev,resources=policyrepositories,verbs=get;list;watch
// +kubebuilder:rbac:groups=palisade.dev,resources=networkpolicies;clusternetworkpolicies;tracingpolicies;clustertracingpolicies,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups=palisade.dev,resources=networkpolicies/status;clusternetworkpolicies/status;tracingpolicies/status;clustertracingpolicies/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=palisade.dev,resources=nodeenforcements,verbs=get;list;watch
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch

// SetupWithManager registers the reconciler. Besides its own spec and the
// reconcile request annotation, it watches the PolicyRepositories it reads
// (a new artifact) and the objects it applied (a hand edit or deletion).
// The nodes' NodeEnforcement reports (enforcement and kernel drift) wake
// a second controller that runs the enforcement step alone
// (policySetEnforcement).
func (r *PolicySetReconciler) SetupWithManager(mgr ctrl.Manager) error {
	if err := mgr.GetFieldIndexer().IndexField(context.Background(), &v1.PolicySet{}, policySetSourceIndex, func(o client.Object) []string {
		ps := o.(*v1.PolicySet)
		var names []string
		if k := ps.Spec.SourceRef.Kind; k == "" || k == v1.SourceKindPolicyRepository {
			names = append(names, ps.Spec.SourceRef.Name)
		}
		// A new artifact of a guard source is a new review of the set.
		if g := ps.Spec.Guards; g != nil {
			for _, gs := range g.Sources {
				if k := gs.SourceRef.Kind; (k == "" || k == v1.SourceKindPolicyRepository) && !slices.Contains(names, gs.SourceRef.Name) {
					names = append(names, gs.SourceRef.Name)
				}
			}
		}
		return names
	}); err != nil {
		return fmt.Errorf("index policysets by source: %w", err)
	}
	concurrency := r.MaxConcurrentReconciles
	if concurrency <= 0 {
		concurrency = DefaultPolicySetConcurrency
	}
	b := ctrl.NewControllerManagedBy(mgr).
		For(&v1.PolicySet{}, builder.WithPredicates(
			predicate.Or(predicate.GenerationChangedPredicate{}, predicate.AnnotationChangedPredicate{}))).
		Watches(&v1.PolicyRepository{}, handler.EnqueueRequestsFromMapFunc(r.setsOfRepository),
			builder.WithPredicates(artifactChanged{})).
		WithOptions(controller.Options{MaxConcurrentReconciles: concurrency}).
		Named("policyset")
	owned := builder.WithPredicates(predicate.NewPredicateFuncs(func(o client.Object) bool {
		return o.GetLabels()[render.LabelPolicySetName] != ""
	}), foreignWrite{})
	for _, o := range ownedKinds() {
		b = b.Watches(o.object, handler.EnqueueRequestsFromMapFunc(ownerOf), owned)
	}
	if err := b.Complete(r); err != nil {
		return err
	}
	return r.setupEnforcement(mgr, concurrency)
}

// artifactChanged passes PolicyRepository updates that change the stored
// artifact, not every status patch.
type artifactChanged struct{ predicate.Funcs }

func (artifactChanged) Update(e event.UpdateEvent) bool {
	o, ok1 := e.ObjectOld.(*v1.PolicyRepository)
	n, ok2 := e.ObjectNew.(*v1.PolicyRepository)
	if !ok1 || !ok2 {
		return false
	}
	if o.Status.Artifact == nil || n.Status.Artifact == nil {
		return n.Status.Artifact != nil
	}
	return o.Status.Artifact.Revision != n.Status.Artifact.Revision || o.Status.Artifact.Digest != n.Status.Artifact.Digest
}

func (artifactChanged) Create(event.CreateEvent) bool   { return true }
func (artifactChanged) Delete(event.DeleteEvent) bool   { return true }
func (artifactChanged) Generic(event.GenericEvent) bool { return false }

// foreignWrite passes the events on applied objects that someone other
// than Palisade caused: a deletion, or a write whose managed fields show a
// field manager other than Palisade's that was not there, or not so,
// before. The events of the set's own applies pass nothing, so applying a
// revision does not wake the set once per object it wrote. Status writes
// (another subresource) pass nothing either.
type foreignWrite struct{ predicate.Funcs }

func (foreignWrite) Create(e event.CreateEvent) bool { return len(foreignEntries(e.Object)) > 0 }
func (foreignWrite) Update(e event.UpdateEvent) bool {
	return !reflect.DeepEqual(foreignEntries(e.ObjectOld), foreignEntries(e.ObjectNew))
}
func (foreignWrite) Delete(event.DeleteEvent) bool   { return true }
func (foreignWrite) Generic(event.GenericEvent) bool { return false }

// foreignEntries are the managed fields entries of other managers than
// Palisade, on the object itself rather than a subresource.
func foreignEntries(o client.Object) []metav1.ManagedFieldsEntry {
	var out []metav1.ManagedFieldsEntry
	for _, mf := range o.GetManagedFields() {
		if mf.Manager != FieldManager && mf.Subresource == "" {
			out = append(out, mf)
		}
	}
	return out
}

// setsOfRepository lists the PolicySets that read a PolicyRepository.
func (r *PolicySetReconciler) setsOfRepository(ctx context.Context, o client.Object) []reconcile.Request {
	var list v1.PolicySetList
	if err := r.List(ctx, &list, client.InNamespace(o.GetNamespace()), client.MatchingFields{policySetSourceIndex: o.GetName()}); err != nil {
		log.FromContext(ctx).Error(err, "list policysets of repository", "repository", o.GetName())
		return nil
	}
	out := make([]reconcile.Request, 0, len(list.Items))
	for _, ps := range list.Items {
		out = append(out, reconcile.Request{NamespacedName: types.NamespacedName{Namespace: ps.Namespace, Name: ps.Name}})
	}
	return out
}

// ownerOf maps an applied object to its PolicySet by render's labels.
func ownerOf(_ context.Context, o client.Object) []reconcile.Request {
	l := o.GetLabels()
	name, ns := l[render.LabelPolicySetName], l[render.LabelPolicySetNamespace]
	if name == "" || ns == "" {
		return nil
	}
	return []reconcile.Request{{NamespacedName: types.NamespacedName{Namespace: ns, Name: name}}}
}

// Reconcile runs one PolicySet's steps: source, validate, render, guard,
// apply, then the enforcement summary. A failing step leaves the applied
// objects as they were.
func (r *PolicySetReconciler) Reconcile(ctx context.Context, req ctrl.Request) (result ctrl.Result, retErr error) {
	obj := &v1.PolicySet{}
	if err := r.Get(ctx, req.NamespacedName, obj); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if !obj.DeletionTimestamp.IsZero() {
		return r.reconcileDelete(ctx, obj)
	}
	if err := r.ensureFinalizer(ctx, obj); err != nil {
		return ctrl.Result{}, err
	}
	if obj.Spec.Suspend {
		log.FromContext(ctx).V(1).Info("suspended; not reconciling")
		return ctrl.Result{}, nil
	}
	base := obj.DeepCopy()
	var recheck time.Duration
	var apiDrift []string
	defer func() {
		retErr = r.finish(ctx, base, obj, apiDrift, retErr)
		if retErr == nil || isStalling(retErr) {
			result, retErr = ctrl.Result{RequeueAfter: requeueAfter(obj.Spec.Interval.Duration, recheck)}, nil
		}
	}()
	if v, ok := obj.Annotations[v1.ReconcileRequestAnnotation]; ok {
		obj.Status.LastHandledReconcileAt = v
	}
	apiDrift, err := r.reconcileRevision(ctx, obj)
	// The nodes report on the applied revision whether or not this
	// reconcile applied a new one.
	recheck, eerr := r.reconcileEnforcement(ctx, obj, apiDrift)
	if eerr != nil {
		log.FromContext(ctx).Error(eerr, "enforcement summary")
	}
	return ctrl.Result{}, err
}

// requeueAfter is when a set reconciles again: after its interval,
// jittered so that sets with one interval do not fire together, or at
// recheck (a kernel drift leaving the window) when that is sooner.
func requeueAfter(interval, recheck time.Duration) time.Duration {
	after := jittered(interval)
	if recheck > 0 && recheck < after {
		after = recheck
	}
	return after
}

// reconcileRevision runs the steps that bring the source's revision into
// the cluster, within spec.timeout, and returns the API drift restored.
func (r *PolicySetReconciler) reconcileRevision(ctx context.Context, obj *v1.PolicySet) ([]string, error) {
	timeout := obj.Spec.Interval.Duration
	if obj.Spec.Timeout != nil {
		timeout = obj.Spec.Timeout.Duration
	}
	// The steps get the timeout; finish patches the status with the
	// outer context even when they ran out of time.
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}

	tmp, err := os.MkdirTemp("", "policyset-")
	if err != nil {
		return nil, waiting(v1.ArtifactFailedReason, err)
	}
	defer os.RemoveAll(tmp)

	src, err := r.reconcileSource(ctx, obj, tmp)
	if err != nil {
		return nil, err
	}
	policies, err := r.reconcilePolicies(ctx, obj, src)
	if err != nil {
		return nil, err
	}
	desired, err := r.reconcileRender(obj, src, policies)
	if err != nil {
		return nil, err
	}
	live, err := r.listOwned(ctx, obj)
	if err != nil {
		return nil, waiting(v1.ApplyFailedReason, err)
	}
	if err := r.reconcileGuard(ctx, obj, src, tmp, live, desired); err != nil {
		return nil, err
	}
	return r.reconcileApply(ctx, obj, src, live, desired)
}

// finish summarizes the conditions, sends events on a change of Ready and
// patches the status once.
func (r *PolicySetReconciler) finish(ctx context.Context, base, obj *v1.PolicySet, apiDrift []string, err error) error {
	msg := ""
	if rev := obj.Status.LastAppliedRevision; rev != "" {
		msg = fmt.Sprintf("applied revision '%s'", rev)
	}
	summarize(&obj.Status.Conditions, obj.Generation, err, msg)
	obj.Status.ObservedGeneration = obj.Generation
	r.eventOnChange(base, obj)
	// Optimistic lock: a merge patch replaces the whole conditions list,
	// so a reconcile that read a stale PolicySet from the cache must not
	// overwrite what a newer one reported.
	perr := r.Status().Patch(ctx, obj, client.MergeFromWithOptions(base, client.MergeFromWithOptimisticLock{}))
	if apierrors.IsConflict(perr) {
		perr = r.patchStatusAgain(ctx, obj, apiDrift)
	}
	if perr != nil {
		return errors.Join(err, fmt.Errorf("patch status: %w", perr))
	}
	return err
}

// patchStatusAgain writes what this reconcile found over a newer version
// of the set, after a conflict: most often the enforcement controller
// summed up a node's report meanwhile, or this reconcile read the set from
// a cache that had not seen the last one's status yet. It must not be left
// to the next reconcile, since this one's side effects are done: a hand
// edit it reverted (apiDrift) would be found no more, and the API drift
// never reported. The conditions this reconcile owns are its own; Drifted
// starts from the newer version's (an API drift reported there for the
// applied revision stays) and the enforcement step runs again on it, with
// the current nodes and apiDrift, so neither report is lost.
func (r *PolicySetReconciler) patchStatusAgain(ctx context.Context, obj *v1.PolicySet, apiDrift []string) error {
	backoff := wait.Backoff{Steps: 8, Duration: 20 * time.Millisecond, Factor: 2, Jitter: 0.1}
	return retry.RetryOnConflict(backoff, func() error {
		latest := &v1.PolicySet{}
		if err := r.Get(ctx, client.ObjectKeyFromObject(obj), latest); err != nil {
			return err
		}
		fresh := latest.DeepCopy()
		fresh.Status = *obj.Status.DeepCopy()
		if d := apimeta.FindStatusCondition(latest.Status.Conditions, v1.DriftedCondition); d != nil {
			if i := slices.IndexFunc(fresh.Status.Conditions, func(c metav1.Condition) bool { return c.Type == v1.DriftedCondition }); i >= 0 {
				fresh.Status.Conditions[i] = *d
			} else {
				fresh.Status.Conditions = append(fresh.Status.Conditions, *d)
			}
		} else {
			apimeta.RemoveStatusCondition(&fresh.Status.Conditions, v1.DriftedCondition)
		}
		if _, err := r.reconcileEnforcement(ctx, fresh, apiDrift); err != nil {
			return err
		}
		return r.Status().Patch(ctx, fresh, client.MergeFromWithOptions(latest, client.MergeFromWithOptimisticLock{}))
	})
}

// eventOnChange records a Warning when Ready turns False or its message
// changes, a Normal event on a new applied revision or a recovery, and a
// Warning when a node reports new kernel drift; never on a steady loop.
func (r *PolicySetReconciler) eventOnChange(base, obj *v1.PolicySet) {
	if r.Recorder == nil {
		return
	}
	bd := apimeta.FindStatusCondition(base.Status.Conditions, v1.DriftedCondition)
	nd := apimeta.FindStatusCondition(obj.Status.Conditions, v1.DriftedCondition)
	if nd != nil && nd.Reason == v1.KernelDriftReason && (bd == nil || bd.Message != nd.Message) {
		r.Recorder.AnnotatedEventf(obj, nil, map[string]string{"palisade.dev/revision": obj.Status.LastAppliedRevision},
			corev1.EventTypeWarning, v1.KernelDriftReason, "Enforce", "%s", nd.Message)
	}
	before := apimeta.FindStatusCondition(base.Status.Conditions, v1.ReadyCondition)
	now := apimeta.FindStatusCondition(obj.Status.Conditions, v1.ReadyCondition)
	if now == nil || (before != nil && before.Status == now.Status && before.Message == now.Message) {
		return
	}
	ann := map[string]string{"palisade.dev/revision": obj.Status.LastAttemptedRevision}
	typ := corev1.EventTypeWarning
	if now.Status == metav1.ConditionTrue {
		typ = corev1.EventTypeNormal
	}
	r.Recorder.AnnotatedEventf(obj, nil, ann, typ, now.Reason, "Reconcile", "%s", now.Message)
}
