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
	"fmt"
	"reflect"

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

// report writes this node's NodeEnforcement status, creating the object
// if it is missing. It writes only when the status changed.
func (a *Agent) report(ctx context.Context) error {
	ne := &v1.NodeEnforcement{}
	err := a.Client.Get(ctx, client.ObjectKey{Name: a.Node}, ne)
	if apierrors.IsNotFound(err) {
		ne = &v1.NodeEnforcement{ObjectMeta: metav1.ObjectMeta{Name: a.Node}, Spec: v1.NodeEnforcementSpec{NodeName: a.Node}}
		if err := a.Client.Create(ctx, ne); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("create NodeEnforcement %s: %w", a.Node, err)
		}
		if err := a.Client.Get(ctx, client.ObjectKey{Name: a.Node}, ne); err != nil {
			return fmt.Errorf("get NodeEnforcement %s: %w", a.Node, err)
		}
	} else if err != nil {
		return fmt.Errorf("get NodeEnforcement %s: %w", a.Node, err)
	}
	a.neUID = ne.UID
	base := ne.DeepCopy()
	st := &ne.Status
	st.ObservedGeneration = ne.Generation
	// A repair writes the same revisions as a new generation.
	for i := range a.sets {
		a.sets[i].Generation = int64(a.Datapath.Generation())
	}
	st.PolicySets = a.sets
	st.Errors = a.errs
	st.Drifts = a.drifts
	st.DriftRepairs = a.repairs
	if !a.lastVerified.IsZero() {
		t := metav1.NewTime(a.lastVerified)
		st.LastVerifiedTime = &t
	}
	st.Maps = nil
	if a.desired != nil {
		for _, u := range a.Datapath.Usage(a.desired) {
			st.Maps = append(st.Maps, v1.MapUsage{Name: u.Name, Entries: int64(u.Entries), MaxEntries: int64(u.MaxEntries)})
		}
	}
	a.setConditions(ne)
	if reflect.DeepEqual(base.Status, ne.Status) {
		return nil
	}
	if err := a.Client.Status().Patch(ctx, ne, client.MergeFrom(base)); err != nil {
		return fmt.Errorf("update NodeEnforcement %s status: %w", a.Node, err)
	}
	return nil
}

// setConditions sets Ready, Enforced and Drifted.
func (a *Agent) setConditions(ne *v1.NodeEnforcement) {
	set := func(t string, ok bool, reason, msg string) {
		s := metav1.ConditionFalse
		if ok {
			s = metav1.ConditionTrue
		}
		apimeta.SetStatusCondition(&ne.Status.Conditions, metav1.Condition{Type: t, Status: s, Reason: reason,
			Message: truncate(msg, 32768), ObservedGeneration: ne.Generation})
	}
	switch {
	case a.syncErr != nil:
		reason := a.syncReason
		if reason == "" {
			reason = v1.DatapathErrorReason
		}
		set(v1.EnforcedCondition, false, reason, fmt.Sprintf("the node keeps enforcing generation %d: %v", a.Datapath.Generation(), a.syncErr))
	case a.desired == nil:
		set(v1.EnforcedCondition, false, v1.EnforcementPendingReason, "waiting for the first sync")
	case len(a.errs) > 0:
		set(v1.EnforcedCondition, false, v1.EnforcementFailedReason, fmt.Sprintf("%d endpoints fail closed; first: %s: %s", len(a.errs), a.errs[0].Endpoint, a.errs[0].Message))
	default:
		set(v1.EnforcedCondition, true, v1.EnforcementSucceededReason, fmt.Sprintf("generation %d enforces %d policy sets on %d interfaces", a.Datapath.Generation(), len(a.sets), len(a.wanted)))
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
		set(v1.DriftedCondition, true, reason, fmt.Sprintf("%s drift at %s, %s: %s", d.Kind, d.Time.UTC().Format("15:04:05Z"), verb, d.What))
	} else {
		set(v1.DriftedCondition, false, v1.NoDriftReason, "the kernel matches the desired state")
	}

	switch {
	case a.verifyErr != nil:
		set(v1.ReadyCondition, false, v1.VerifyFailedReason, fmt.Sprintf("cannot read the kernel state back: %v", a.verifyErr))
	case a.syncErr != nil:
		set(v1.ReadyCondition, false, apimeta.FindStatusCondition(ne.Status.Conditions, v1.EnforcedCondition).Reason, a.syncErr.Error())
	case a.desired == nil:
		set(v1.ReadyCondition, false, v1.ProgressingReason, "waiting for the first sync")
	default:
		set(v1.ReadyCondition, true, v1.SucceededReason, fmt.Sprintf("enforcing generation %d", a.Datapath.Generation()))
	}
}
