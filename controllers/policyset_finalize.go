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
	"encoding/json"
	"errors"
	"fmt"

	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/log"

	v1 "github.com/palisade-dev/palisade/api/v1alpha1"
	"github.com/palisade-dev/palisade/internal/render"
)

// PolicySetFinalizer keeps a deleted PolicySet until the objects it
// applied are pruned or orphaned.
const PolicySetFinalizer = "finalizers.palisade.dev"

// ensureFinalizer adds the finalizer before the set applies anything, so
// that no object is ever applied by a set that can go away unnoticed.
func (r *PolicySetReconciler) ensureFinalizer(ctx context.Context, obj *v1.PolicySet) error {
	if controllerutil.ContainsFinalizer(obj, PolicySetFinalizer) {
		return nil
	}
	patch := client.MergeFromWithOptions(obj.DeepCopy(), client.MergeFromWithOptimisticLock{})
	controllerutil.AddFinalizer(obj, PolicySetFinalizer)
	if err := r.Patch(ctx, obj, patch); err != nil {
		return fmt.Errorf("add finalizer: %w", err)
	}
	return nil
}

// reconcileDelete cleans up after a deleted PolicySet, then lets it go:
//
//   - prune (the default): the objects in its inventory that still carry
//     its labels are deleted, and nothing else;
//   - prune: false: those objects stay and lose the set's labels, so no
//     set (a new one of the same name included) treats them as its own;
//   - suspended: Palisade writes nothing to the objects, as while
//     suspended; they stay as they are, labels included.
//
// A failure keeps the finalizer, says why in status and is retried.
func (r *PolicySetReconciler) reconcileDelete(ctx context.Context, obj *v1.PolicySet) (ctrl.Result, error) {
	if !controllerutil.ContainsFinalizer(obj, PolicySetFinalizer) {
		return ctrl.Result{}, nil
	}
	logger := log.FromContext(ctx)
	var err error
	switch {
	case obj.Spec.Suspend:
		logger.Info("suspended; leaving the applied objects as they are")
	case obj.Spec.Prune == nil || *obj.Spec.Prune:
		err = r.pruneInventory(ctx, obj)
	default:
		err = r.orphanInventory(ctx, obj)
	}
	if err != nil {
		base := obj.DeepCopy()
		summarize(&obj.Status.Conditions, obj.Generation, err, "")
		if perr := r.Status().Patch(ctx, obj, client.MergeFrom(base)); perr != nil {
			err = errors.Join(err, fmt.Errorf("patch status: %w", perr))
		}
		return ctrl.Result{}, err
	}
	patch := client.MergeFromWithOptions(obj.DeepCopy(), client.MergeFromWithOptimisticLock{})
	controllerutil.RemoveFinalizer(obj, PolicySetFinalizer)
	if err := r.Patch(ctx, obj, patch); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(fmt.Errorf("remove finalizer: %w", err))
	}
	return ctrl.Result{}, nil
}

// inventoryObjects are the objects listed in the set's inventory that
// still carry its labels: an object someone else took over since is not
// the set's to delete.
func (r *PolicySetReconciler) inventoryObjects(ctx context.Context, obj *v1.PolicySet) ([]client.Object, error) {
	if obj.Status.Inventory == nil || len(obj.Status.Inventory.Entries) == 0 {
		return nil, nil
	}
	inv := make(map[string]bool, len(obj.Status.Inventory.Entries))
	for _, e := range obj.Status.Inventory.Entries {
		inv[e.ID] = true
	}
	live, err := r.listOwned(ctx, obj)
	if err != nil {
		return nil, err
	}
	var out []client.Object
	for _, o := range live {
		if inv[objectID(o)] {
			out = append(out, o)
		}
	}
	return out, nil
}

// pruneInventory deletes the set's inventoried objects.
func (r *PolicySetReconciler) pruneInventory(ctx context.Context, obj *v1.PolicySet) error {
	objs, err := r.inventoryObjects(ctx, obj)
	if err != nil {
		return waiting(v1.PruneFailedReason, err)
	}
	for _, o := range objs {
		if err := r.Delete(ctx, o, client.Preconditions{UID: ptrTo(o.GetUID())}); client.IgnoreNotFound(err) != nil {
			return waiting(v1.PruneFailedReason, fmt.Errorf("delete %s of deleted PolicySet: %w", objectRef(o), err))
		}
	}
	log.FromContext(ctx).Info("deleted the applied objects of the deleted PolicySet", "objects", len(objs))
	return nil
}

// orphanInventory removes the set's labels from its inventoried objects.
func (r *PolicySetReconciler) orphanInventory(ctx context.Context, obj *v1.PolicySet) error {
	objs, err := r.inventoryObjects(ctx, obj)
	if err != nil {
		return waiting(v1.PruneFailedReason, err)
	}
	body, err := json.Marshal(map[string]any{"metadata": map[string]any{"labels": map[string]any{
		render.LabelPolicySetName: nil, render.LabelPolicySetNamespace: nil,
	}}})
	if err != nil {
		return waiting(v1.PruneFailedReason, err)
	}
	for _, o := range objs {
		if err := r.Patch(ctx, o, client.RawPatch(types.MergePatchType, body), client.FieldOwner(FieldManager)); client.IgnoreNotFound(err) != nil {
			return waiting(v1.PruneFailedReason, fmt.Errorf("orphan %s of deleted PolicySet: %w", objectRef(o), err))
		}
	}
	log.FromContext(ctx).Info("orphaned the applied objects of the deleted PolicySet (prune: false)", "objects", len(objs))
	return nil
}
