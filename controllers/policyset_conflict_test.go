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
	"strings"
	"testing"
	"time"

	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "github.com/palisade-dev/palisade/api/v1alpha1"
)

// TestFinishAfterConflict: a full reconcile whose status patch conflicts
// (it read the set before someone else wrote its status) writes its
// findings over the newer version instead of leaving them to the next
// reconcile. The API drift it restored is reported, and an API drift
// another reconcile reported is not overwritten by a stale view. Both
// were lost before (TestPolicySetGitOps failed now and then on the
// first). The set is suspended, so the running controllers leave it
// alone and only this test writes it.
func TestFinishAfterConflict(t *testing.T) {
	needEnv(t)
	ctx := context.Background()
	ns := newNamespace(t)
	r := &PolicySetReconciler{Client: k8sClient}

	set := &v1.PolicySet{ObjectMeta: metav1.ObjectMeta{Name: "shop", Namespace: ns}}
	set.Spec.SourceRef = v1.SourceReference{Name: "nowhere"}
	set.Spec.Path = "shop"
	set.Spec.Interval = metav1.Duration{Duration: time.Hour}
	set.Spec.Suspend = true
	if err := k8sClient.Create(ctx, set); err != nil {
		t.Fatal(err)
	}
	// statusWrite is another writer's status patch (the enforcement
	// controller, or an earlier reconcile). It retries on a conflict: the
	// running PolicySet controller adds its finalizer once, suspended or
	// not.
	statusWrite := func(mutate func(*v1.PolicySet)) {
		t.Helper()
		err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
			cur := &v1.PolicySet{}
			if err := k8sClient.Get(ctx, client.ObjectKeyFromObject(set), cur); err != nil {
				return err
			}
			base := cur.DeepCopy()
			mutate(cur)
			return k8sClient.Status().Patch(ctx, cur, client.MergeFromWithOptions(base, client.MergeFromWithOptimisticLock{}))
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	drifted := func() *metav1.Condition {
		t.Helper()
		cur := &v1.PolicySet{}
		if err := k8sClient.Get(ctx, client.ObjectKeyFromObject(set), cur); err != nil {
			t.Fatal(err)
		}
		return apimeta.FindStatusCondition(cur.Status.Conditions, v1.DriftedCondition)
	}
	// stale is what a reconcile read: the set before the other writer.
	stale := func() (*v1.PolicySet, *v1.PolicySet) {
		t.Helper()
		cur := &v1.PolicySet{}
		if err := k8sClient.Get(ctx, client.ObjectKeyFromObject(set), cur); err != nil {
			t.Fatal(err)
		}
		return cur.DeepCopy(), cur
	}
	statusWrite(func(ps *v1.PolicySet) {
		ps.Status.LastAppliedRevision = testRev
		setDrifted(&ps.Status.Conditions, ps.Generation, testRev, nil, nil, time.Minute)
	})

	// 1. The reconcile restored a hand edit, but the enforcement
	// controller wrote the status after it read the set.
	base, obj := stale()
	statusWrite(func(ps *v1.PolicySet) {
		ps.Status.Enforcement = &v1.EnforcementSummary{}
	})
	edit := []string{"NetworkPolicy " + ns + "/web was edited (spec)"}
	setDrifted(&obj.Status.Conditions, obj.Generation, testRev, edit, nil, time.Minute)
	if err := r.finish(ctx, base, obj, edit, nil); err != nil {
		t.Fatalf("finish after a conflict: %v", err)
	}
	if c := drifted(); c == nil || c.Status != metav1.ConditionTrue || c.Reason != v1.APIDriftReason || !strings.Contains(c.Message, edit[0]) {
		t.Fatalf("after the conflict the restored hand edit is not reported: Drifted = %+v", c)
	}

	// 2. A reconcile that read the set before that report found no drift
	// (the edit was already restored): it must not turn Drifted False.
	statusWrite(func(ps *v1.PolicySet) {
		apimeta.RemoveStatusCondition(&ps.Status.Conditions, v1.DriftedCondition)
		setDrifted(&ps.Status.Conditions, ps.Generation, testRev, nil, nil, time.Minute)
	})
	base, obj = stale()
	statusWrite(func(ps *v1.PolicySet) {
		setDrifted(&ps.Status.Conditions, ps.Generation, testRev, edit, nil, time.Minute)
	})
	setDrifted(&obj.Status.Conditions, obj.Generation, testRev, nil, nil, time.Minute)
	if err := r.finish(ctx, base, obj, nil, nil); err != nil {
		t.Fatalf("finish after a conflict: %v", err)
	}
	if c := drifted(); c == nil || c.Status != metav1.ConditionTrue || c.Reason != v1.APIDriftReason {
		t.Fatalf("a stale reconcile overwrote the API drift another one reported: Drifted = %+v", c)
	}
}
