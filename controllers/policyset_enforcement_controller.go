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
	"time"

	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/predicate"

	v1 "github.com/palisade-dev/palisade/api/v1alpha1"
)

// policySetEnforcement is the PolicySet's second controller: the nodes'
// reports wake it, and it runs the enforcement step alone (summary,
// Enforced, Drifted, the objects' Enforced and Ready) on the revision the
// set applied. A rollout to a thousand nodes is a thousand NodeEnforcement
// writes; each used to wake the full reconcile (source, validate, guard
// and a server-side apply dry-run of every object), which made the
// manager, not the nodes, the slow part of a rollout. The full reconcile
// still ends with the enforcement step, so a new revision is summed up at
// once.
type policySetEnforcement struct {
	r *PolicySetReconciler
}

// EnforcementBatch is how long the enforcement controller gathers the
// nodes' reports for a set before it sums them up: a rollout to a
// thousand nodes is a thousand reports over a few seconds, and without it
// nearly every one cost a PolicySet status patch (the n/N summary moves
// with each node that catches up; 45 patches per set and commit at 100
// hollow nodes, docs/scale.md). With it a set's status is written at most
// about once per EnforcementBatch while reports stream in, and its summary
// lags the last node's report by at most that. The full reconcile (a new
// revision, the set itself changed) still sums up at once.
const EnforcementBatch = time.Second

// setupEnforcement registers the enforcement controller.
func (r *PolicySetReconciler) setupEnforcement(mgr ctrl.Manager, concurrency int) error {
	return ctrl.NewControllerManagedBy(mgr).
		Named("policyset-enforcement").
		// Its own PolicySet events matter only for its creation (a
		// manager start): the full reconcile sums up every change of the
		// set itself.
		For(&v1.PolicySet{}, builder.WithPredicates(predicate.Funcs{
			UpdateFunc:  func(e event.UpdateEvent) bool { return false },
			DeleteFunc:  func(event.DeleteEvent) bool { return false },
			GenericFunc: func(event.GenericEvent) bool { return false },
		})).
		Watches(&v1.NodeEnforcement{}, r.enforcementHandler(EnforcementBatch)).
		WithOptions(controller.Options{MaxConcurrentReconciles: concurrency}).
		Complete(&policySetEnforcement{r: r})
}

// Reconcile sums up the nodes' reports on the set's applied revision and
// patches the set's status, with the optimistic lock the full reconcile
// uses too (both write the conditions list).
func (e *policySetEnforcement) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	r := e.r
	obj := &v1.PolicySet{}
	if err := r.Get(ctx, req.NamespacedName, obj); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if !obj.DeletionTimestamp.IsZero() || obj.Spec.Suspend || obj.Status.ObservedGeneration == 0 {
		// Deleting, suspended (nothing is written), or never reconciled:
		// the full reconcile owns it.
		return ctrl.Result{}, nil
	}
	base := obj.DeepCopy()
	recheck, err := r.reconcileEnforcement(ctx, obj, nil)
	if err != nil {
		return ctrl.Result{}, err
	}
	r.eventOnChange(base, obj)
	if reflect.DeepEqual(base.Status, obj.Status) {
		// Nothing to write (a node's report that changes no count or
		// message): a patch with only the lock would still cost a request.
		return ctrl.Result{RequeueAfter: recheck}, nil
	}
	if err := r.Status().Patch(ctx, obj, client.MergeFromWithOptions(base, client.MergeFromWithOptimisticLock{})); err != nil {
		return ctrl.Result{}, fmt.Errorf("patch status: %w", err)
	}
	return ctrl.Result{RequeueAfter: recheck}, nil
}
