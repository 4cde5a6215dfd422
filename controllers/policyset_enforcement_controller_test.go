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
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/watch"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	v1 "github.com/palisade-dev/palisade/api/v1alpha1"
)

// reconcileCount is how many reconciles the named controller ran in this
// process, from controller-runtime's metrics.
func reconcileCount(t *testing.T, controller string) float64 {
	t.Helper()
	mfs, err := ctrlmetrics.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var n float64
	for _, mf := range mfs {
		if mf.GetName() != "controller_runtime_reconcile_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "controller" && l.GetValue() == controller {
					n += m.GetCounter().GetValue()
				}
			}
		}
	}
	return n
}

// TestNodeReportsRunOnlyTheEnforcementStep: nodes' reports change the
// set's summary through the enforcement controller, and run no full
// reconcile (no source, validate, guard or apply dry-run): in a rollout
// to a thousand nodes each report used to.
func TestNodeReportsRunOnlyTheEnforcementStep(t *testing.T) {
	needEnv(t)
	f := newPolicySetFixture(t, map[string]string{"shop/web.cue": webCUE, "shop/db.cue": dbCUE})
	rev := "main@sha1:" + f.co.Head().String()
	f.waitSet(rev, setReadyIs(metav1.ConditionTrue, v1.SucceededReason, rev))
	key := f.ns + "/shop"
	summaryIs := func(want string) func(*v1.PolicySet) error {
		return func(ps *v1.PolicySet) error {
			if e := ps.Status.Enforcement; e == nil || e.Summary != want {
				return fmt.Errorf("enforcement %+v, want %s", e, want)
			}
			return nil
		}
	}
	f.waitSet(rev, summaryIs("0/0"))
	full, enf := reconcileCount(t, "policyset"), reconcileCount(t, "policyset-enforcement")

	n := writeNode(t, nodeReport{name: "node-reports", sets: map[string]string{key: rev}})
	f.waitSet(rev, summaryIs("1/1"))
	updateNode(t, n, nodeReport{name: "node-reports", sets: map[string]string{key: testOldRev}})
	f.waitSet(rev, summaryIs("0/1"))
	updateNode(t, n, nodeReport{name: "node-reports", sets: map[string]string{key: rev}})
	f.waitSet(rev, summaryIs("1/1"))

	if got := reconcileCount(t, "policyset"); got != full {
		t.Errorf("three node reports ran %v full reconciles, want none", got-full)
	}
	if got := reconcileCount(t, "policyset-enforcement"); got-enf < 3 {
		t.Errorf("three node reports ran %v enforcement reconciles, want at least 3", got-enf)
	}
}

// TestNodeReportsAreBatched: a stream of nodes' reports (a rollout) is
// summed up by about one status patch of the set per EnforcementBatch, not
// one per report; the last summary counts them all. The set's writes are
// counted on a watch of it (other tests' sets may be woken by the same
// reports).
func TestNodeReportsAreBatched(t *testing.T) {
	needEnv(t)
	f := newPolicySetFixture(t, map[string]string{"shop/web.cue": webCUE, "shop/db.cue": dbCUE})
	rev := "main@sha1:" + f.co.Head().String()
	f.waitSet(rev, setReadyIs(metav1.ConditionTrue, v1.SucceededReason, rev))
	key := f.ns + "/shop"
	summaryIs := func(want string) func(*v1.PolicySet) error {
		return func(ps *v1.PolicySet) error {
			if e := ps.Status.Enforcement; e == nil || e.Summary != want {
				return fmt.Errorf("enforcement %+v, want %s", e, want)
			}
			return nil
		}
	}
	start := f.waitSet(rev, summaryIs("0/0"))

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	wc, err := client.NewWithWatch(testCfg, client.Options{Scheme: testScheme})
	if err != nil {
		t.Fatal(err)
	}
	w, err := wc.Watch(ctx, &v1.PolicySetList{}, &client.ListOptions{Namespace: f.ns,
		FieldSelector: fields.OneTermEqualSelector("metadata.name", f.set.Name),
		Raw:           &metav1.ListOptions{ResourceVersion: start.ResourceVersion}})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()

	const nodes = 40
	t0 := time.Now()
	// One after the other, as a rollout's reports arrive: each would
	// find the set idle and wake it for a summary of its own.
	for i := range nodes {
		n := nodeReport{name: fmt.Sprintf("node-burst-%02d", i), sets: map[string]string{key: rev}}
		ne := n.object()
		status := ne.Status
		if err := k8sClient.Create(ctx, &ne); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			if err := k8sClient.Delete(context.Background(), &ne); err != nil && !apierrors.IsNotFound(err) {
				t.Error(err)
			}
		})
		ne.Status = status
		if err := k8sClient.Status().Update(ctx, &ne); err != nil {
			t.Fatal(err)
		}
	}
	final := f.waitSet(rev, summaryIs(fmt.Sprintf("%d/%d", nodes, nodes)))
	took := time.Since(t0)
	writes := 0
	for seen := false; !seen; {
		select {
		case ev, ok := <-w.ResultChan():
			if !ok {
				t.Fatal("the PolicySet's watch ended")
			}
			ps, isSet := ev.Object.(*v1.PolicySet)
			if !isSet {
				t.Fatalf("watch event %s: %T", ev.Type, ev.Object)
			}
			if ev.Type == watch.Modified {
				writes++
			}
			seen = ps.ResourceVersion == final.ResourceVersion
		case <-time.After(time.Minute):
			t.Fatalf("the PolicySet's watch did not show resourceVersion %s within a minute", final.ResourceVersion)
		}
	}
	// The first report wakes the set EnforcementBatch later; reports in
	// between wait with it; one arriving during a summary wakes it once
	// more. So however slow the API server, at most one write per batch
	// of the time the reports took, and one more.
	if most := int(took/EnforcementBatch) + 1; writes > most {
		t.Errorf("%d reports over %s made %d writes of the set, want at most %d (one per %s)", nodes, took.Round(time.Millisecond), writes, most, EnforcementBatch)
	}
	t.Logf("%d reports over %s: %d writes of the set", nodes, took.Round(time.Millisecond), writes)
}
