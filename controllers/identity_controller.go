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
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	v1 "github.com/palisade-dev/palisade/api/v1alpha1"
	"github.com/palisade-dev/palisade/internal/engine"
)

// DefaultIdentityGracePeriod is how long an unused identity is kept, so a
// pod that is recreated (a rollout, a node drain) gets its number back and
// agents never see a number reused while they may still hold it.
const DefaultIdentityGracePeriod = 15 * time.Minute

// identityKey is the one request every pod or namespace event maps to:
// identities are a function of the whole set of workloads.
var identityKey = reconcile.Request{NamespacedName: types.NamespacedName{Name: "identities"}}

// IdentityReconciler gives every distinct security label set of the
// cluster's pods an Identity and deletes identities that no pod has held
// for the grace period.
type IdentityReconciler struct {
	client.Client
	// Allocator creates identities.
	Allocator *IdentityAllocator
	// LabelPolicy decides which pod labels are security relevant.
	LabelPolicy engine.LabelPolicy
	// GracePeriod before an unused identity is deleted; zero means
	// DefaultIdentityGracePeriod.
	GracePeriod time.Duration
	// Now returns the current time; nil means time.Now.
	Now func() time.Time
}

// +kubebuilder:rbac:groups=palisade.dev,resources=identities,verbs=get;list;watch;create;delete
// +kubebuilder:rbac:groups=palisade.dev,resources=identities/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=palisade.dev,resources=identityclaims,verbs=get;list;create;update;delete
// +kubebuilder:rbac:groups="",resources=pods;namespaces,verbs=get;list;watch

// SetupWithManager registers the reconciler.
func (r *IdentityReconciler) SetupWithManager(mgr ctrl.Manager) error {
	all := handler.EnqueueRequestsFromMapFunc(func(context.Context, client.Object) []reconcile.Request {
		return []reconcile.Request{identityKey}
	})
	return ctrl.NewControllerManagedBy(mgr).
		Named("identity").
		Watches(&corev1.Pod{}, all).
		Watches(&corev1.Namespace{}, all).
		Watches(&v1.Identity{}, all).
		Complete(r)
}

// Reconcile allocates the identities in use and collects the rest.
func (r *IdentityReconciler) Reconcile(ctx context.Context, _ ctrl.Request) (ctrl.Result, error) {
	now := time.Now()
	if r.Now != nil {
		now = r.Now()
	}
	grace := r.GracePeriod
	if grace == 0 {
		grace = DefaultIdentityGracePeriod
	}
	inUse, err := r.labelSets(ctx)
	if err != nil {
		return ctrl.Result{}, err
	}
	var errs []error
	// held is the number the allocator gives each label set in use.
	held := map[string]engine.Identity{}
	for key, l := range inUse {
		n, err := r.Allocator.Allocate(l)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		held[key] = n
	}
	// Claims are read before identities, so a claim whose identity is
	// missing from the list below was made before the list was read.
	claims := &v1.IdentityClaimList{}
	if err := r.Allocator.reader().List(ctx, claims); err != nil {
		return ctrl.Result{}, errors.Join(append(errs, fmt.Errorf("list identity claims: %w", err))...)
	}
	list := &v1.IdentityList{}
	if err := r.Allocator.reader().List(ctx, list); err != nil {
		return ctrl.Result{}, errors.Join(append(errs, fmt.Errorf("list identities: %w", err))...)
	}
	// An identity is used when it is the number its labels' claim gives:
	// others with the same labels (made before claims, or by an allocator
	// that died before it deleted one its claim no longer named) are
	// unused, and collected after the grace period like any.
	var requeue time.Duration
	exist := make(map[engine.Identity]*v1.Identity, len(list.Items))
	for i := range list.Items {
		id := &list.Items[i]
		exist[identityNumber(id)] = id
		n, ok := held[engine.Labels(id.Spec.Labels).String()]
		used := ok && n == identityNumber(id)
		switch {
		case used && id.Status.UnusedSince != nil:
			errs = append(errs, r.setUnusedSince(ctx, id, nil))
		case used:
		case id.Status.UnusedSince == nil:
			errs = append(errs, r.setUnusedSince(ctx, id, &metav1.Time{Time: now}))
			requeue = minPositive(requeue, grace)
		case now.Sub(id.Status.UnusedSince.Time) >= grace:
			// The precondition keeps a concurrent change (it became used
			// again) from being deleted on a stale read.
			err := r.Delete(ctx, id, client.Preconditions{ResourceVersion: &id.ResourceVersion})
			if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
				errs = append(errs, fmt.Errorf("delete unused identity %s: %w", id.Name, err))
			} else if err == nil {
				delete(exist, identityNumber(id))
				log.FromContext(ctx).Info("deleted unused identity", "identity", id.Name, "unusedSince", id.Status.UnusedSince.Time)
			}
		default:
			requeue = minPositive(requeue, grace-now.Sub(id.Status.UnusedSince.Time))
		}
	}
	// The claims of collected identities go with them; a claim too young
	// to collect is looked at again after the grace period.
	for i := range claims.Items {
		c := &claims.Items[i]
		if _, ok := held[engine.Labels(c.Spec.Labels).String()]; !ok && exist[engine.Identity(c.Spec.Number)] == nil {
			if age := now.Sub(c.CreationTimestamp.Time); age < grace {
				requeue = minPositive(requeue, grace-age)
			}
		}
	}
	errs = append(errs, r.Allocator.collectClaims(ctx, claims.Items, exist, held, now, grace))
	return ctrl.Result{RequeueAfter: requeue}, errors.Join(errs...)
}

func minPositive(a, b time.Duration) time.Duration {
	if a == 0 || b < a {
		return b
	}
	return a
}

func (r *IdentityReconciler) setUnusedSince(ctx context.Context, id *v1.Identity, t *metav1.Time) error {
	base := id.DeepCopy()
	id.Status.UnusedSince = t
	if err := r.Status().Patch(ctx, id, client.MergeFrom(base)); err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("identity %s status: %w", id.Name, err)
	}
	return nil
}

// labelSets returns the security labels of every running pod, keyed by
// their canonical string. Host-network pods have the host's identity and
// finished pods hold none.
func (r *IdentityReconciler) labelSets(ctx context.Context) (map[string]engine.Labels, error) {
	nsList := &corev1.NamespaceList{}
	if err := r.List(ctx, nsList); err != nil {
		return nil, fmt.Errorf("list namespaces: %w", err)
	}
	nsLabels := make(map[string]map[string]string, len(nsList.Items))
	for _, ns := range nsList.Items {
		nsLabels[ns.Name] = ns.Labels
	}
	pods := &corev1.PodList{}
	if err := r.List(ctx, pods); err != nil {
		return nil, fmt.Errorf("list pods: %w", err)
	}
	out := map[string]engine.Labels{}
	for _, p := range pods.Items {
		if p.Spec.HostNetwork || p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed {
			continue
		}
		l := r.LabelPolicy.WorkloadLabels(p.Namespace, p.Labels, nsLabels[p.Namespace], p.Spec.ServiceAccountName)
		out[l.String()] = l
	}
	return out, nil
}
