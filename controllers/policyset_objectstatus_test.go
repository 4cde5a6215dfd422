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
	"slices"
	"strings"
	"testing"
	"time"

	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "github.com/palisade-dev/palisade/api/v1alpha1"
	"github.com/palisade-dev/palisade/internal/render"
)

// TestObjectEnforcement derives one object's Enforced condition from the
// nodes' reports, table-driven.
func TestObjectEnforcement(t *testing.T) {
	at := func(rev string) map[string]string { return map[string]string{"team/shop": rev} }
	with := func(o ...v1.ObjectEnforcement) map[string]v1.PolicySetEnforcement {
		return map[string]v1.PolicySetEnforcement{"team/shop": {Objects: o}}
	}
	frontend := objectKey{"NetworkPolicy", "shop", "frontend"}
	other := httpNotEnforced
	other.Message = "egress DNS rules on 53/UDP are not enforced"
	for _, tc := range []struct {
		name   string
		rev    string
		same   map[string]bool
		key    objectKey
		nodes  []nodeReport
		status metav1.ConditionStatus
		reason string
		msg    []string
	}{
		{name: "nothing applied", key: frontend, nodes: []nodeReport{{name: "a"}},
			status: metav1.ConditionFalse, reason: v1.EnforcementPendingReason, msg: []string{"no revision applied yet"}},
		{name: "no agent", rev: testRev, key: frontend, nodes: []nodeReport{{name: "a", notReady: true, sets: at(testRev)}},
			status: metav1.ConditionFalse, reason: v1.EnforcementPendingReason, msg: []string{"is the agent running?"}},
		{name: "every node enforces it", rev: testRev, key: frontend,
			nodes:  []nodeReport{{name: "a", sets: at(testRev)}, {name: "b", sets: at(testRev), objects: with(lsmNotLoaded)}},
			status: metav1.ConditionTrue, reason: v1.EnforcementSucceededReason, msg: []string{"every Ready node enforces generation 3 of the object fully"}},
		{name: "in part on one node", rev: testRev, key: frontend,
			nodes:  []nodeReport{{name: "a", sets: at(testRev)}, {name: "b", sets: at(testRev), objects: with(httpNotEnforced)}},
			status: metav1.ConditionFalse, reason: v1.NotSupportedReason,
			msg: []string{"partly enforced on b: ingress HTTP rules on 80/TCP are not enforced: the kernel passes every request on the port that L3/L4 allows"}},
		{name: "not at all", rev: testRev, key: objectKey{"TracingPolicy", "platform", "no-ptrace"},
			nodes:  []nodeReport{{name: "a", sets: at(testRev), objects: with(lsmNotLoaded)}},
			status: metav1.ConditionFalse, reason: v1.HookUnavailableReason,
			msg: []string{"not enforced on a (HookUnavailable): LSM hook file_open: the kernel has no BPF LSM"}},
		{name: "nodes that say the same are named together", rev: testRev, key: frontend,
			nodes: []nodeReport{
				{name: "a", sets: at(testRev), objects: with(httpNotEnforced)},
				{name: "b", sets: at(testRev), objects: with(other)},
				{name: "c", sets: at(testRev), objects: with(httpNotEnforced)},
				{name: "d", sets: at(testOldRev)},
			},
			status: metav1.ConditionFalse, reason: v1.NotSupportedReason,
			msg: []string{"partly enforced on a, c: ingress HTTP rules", "; partly enforced on b: egress DNS rules"}},
		{name: "behind", rev: testRev, key: frontend,
			nodes:  []nodeReport{{name: "a", sets: at(testRev)}, {name: "b", sets: at(testOldRev), objects: with(httpNotEnforced)}, {name: "c"}},
			status: metav1.ConditionFalse, reason: v1.EnforcementPendingReason,
			msg: []string{"waiting for every Ready node to enforce revision " + testRev + "; the Enforced condition of PolicySet team/shop names them"}},
		{name: "a node at an older revision that left the object as it is", rev: testRev, same: map[string]bool{testOldRev: true}, key: frontend,
			nodes:  []nodeReport{{name: "a", sets: at(testRev)}, {name: "b", sets: at(testOldRev)}},
			status: metav1.ConditionTrue, reason: v1.EnforcementSucceededReason, msg: []string{"every Ready node enforces generation 3 of the object fully"}},
		{name: "what a node at such a revision says of the object counts", rev: testRev, same: map[string]bool{testOldRev: true}, key: frontend,
			nodes:  []nodeReport{{name: "a", sets: at(testRev)}, {name: "b", sets: at(testOldRev), objects: with(httpNotEnforced)}},
			status: metav1.ConditionFalse, reason: v1.NotSupportedReason, msg: []string{"partly enforced on b: ingress HTTP rules"}},
		{name: "a node at a revision the object changed since", rev: testRev, same: map[string]bool{"main@sha1:4444444444444444444444444444444444444444": true}, key: frontend,
			nodes:  []nodeReport{{name: "a", sets: at(testRev)}, {name: "b", sets: at(testOldRev)}},
			status: metav1.ConditionFalse, reason: v1.EnforcementPendingReason,
			msg: []string{"waiting for every Ready node to enforce revision " + testRev}},
		{name: "a revision not complete in the API", rev: testRev, key: frontend,
			nodes: []nodeReport{{name: "a", sets: at(testOldRev), objects: map[string]v1.PolicySetEnforcement{
				"team/shop": {PendingRevision: testRev}}}},
			status: metav1.ConditionFalse, reason: v1.EnforcementPendingReason},
		{name: "a node lists only some of what it does not enforce", rev: testRev, key: frontend,
			nodes: []nodeReport{{name: "a", sets: at(testRev), objects: map[string]v1.PolicySetEnforcement{
				"team/shop": {Partial: 100, Objects: manyObjects(64)}}}},
			status: metav1.ConditionUnknown, reason: v1.PartiallyEnforcedReason, msg: []string{"the reports of a do not list every object", "at most 64 per set, 256 per node"}},
		{name: "a listed object on a node that lists only some", rev: testRev, key: objectKey{"NetworkPolicy", "shop", "p07"},
			nodes: []nodeReport{{name: "a", sets: at(testRev), objects: map[string]v1.PolicySetEnforcement{
				"team/shop": {Partial: 100, Objects: manyObjects(64)}}}},
			status: metav1.ConditionFalse, reason: v1.NotSupportedReason, msg: []string{"partly enforced on a: ingress HTTP"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ps := &v1.PolicySet{ObjectMeta: metav1.ObjectMeta{Namespace: "team", Name: "shop"}}
			var nodes []v1.NodeEnforcement
			for _, n := range tc.nodes {
				nodes = append(nodes, n.object())
			}
			status, reason, msg := objectEnforcement(ps, tc.rev, 3, tc.same, tc.key, setReports(ps, nodes))
			if status != tc.status || reason != tc.reason {
				t.Errorf("Enforced %s/%s %q, want %s/%s", status, reason, msg, tc.status, tc.reason)
			}
			for _, s := range tc.msg {
				if !strings.Contains(msg, s) {
					t.Errorf("message %q does not contain %q", msg, s)
				}
			}
		})
	}
}

// TestObjectRevision tells which revision an owned object belongs to.
func TestObjectRevision(t *testing.T) {
	const next = "main@sha1:3333333333333333333333333333333333333333"
	ps := &v1.PolicySet{}
	ps.Status.LastAppliedRevision, ps.Status.LastAttemptedRevision = testRev, next
	np := func(rev string) *v1.NetworkPolicy {
		o := &v1.NetworkPolicy{}
		o.SetAnnotations(map[string]string{render.AnnotationRevision: rev})
		return o
	}
	// An apply of next that failed half-way: its objects wait for it.
	if got := objectRevision(ps, np(next)); got != next {
		t.Errorf("object of the attempted revision: %s, want %s", got, next)
	}
	if got := objectRevision(ps, np(testRev)); got != testRev {
		t.Errorf("object of the applied revision: %s, want %s", got, testRev)
	}
	// The cache still holds the object as it was before the apply.
	ps.Status.LastAttemptedRevision = testRev
	if got := objectRevision(ps, np(testOldRev)); got != testRev {
		t.Errorf("stale object: %s, want %s", got, testRev)
	}
}

// TestSetObjectConditions writes Enforced and Ready and reports a change
// only when there is one, so a steady set writes no object.
func TestSetObjectConditions(t *testing.T) {
	var st v1.PolicyStatus
	long := strings.Repeat("ingress HTTP rules on 80/TCP are not enforced; ", 10)
	if !setObjectConditions(&st, 3, metav1.ConditionFalse, v1.NotSupportedReason, long) {
		t.Fatal("first write reported no change")
	}
	if setObjectConditions(&st, 3, metav1.ConditionFalse, v1.NotSupportedReason, long) {
		t.Error("the same conditions again reported a change")
	}
	e := apimeta.FindStatusCondition(st.Conditions, v1.EnforcedCondition)
	r := apimeta.FindStatusCondition(st.Conditions, v1.ReadyCondition)
	if e == nil || r == nil || e.Message != long || r.Status != metav1.ConditionFalse || r.Reason != v1.NotSupportedReason ||
		len([]rune(r.Message)) != maxReadyMessageLength || !strings.HasSuffix(r.Message, "…") || st.ObservedGeneration != 3 {
		t.Fatalf("conditions %+v", st)
	}
	if !setObjectConditions(&st, 4, metav1.ConditionTrue, v1.EnforcementSucceededReason, "every Ready node enforces revision x fully") {
		t.Fatal("a new status reported no change")
	}
	r = apimeta.FindStatusCondition(st.Conditions, v1.ReadyCondition)
	if r.Status != metav1.ConditionTrue || r.Reason != v1.SucceededReason || r.ObservedGeneration != 4 {
		t.Errorf("Ready %+v", r)
	}
}

// TestPolicySetObjectEnforcement writes a NodeEnforcement that enforces
// one object of a set in part, as an agent whose datapath lacks a feature
// does, and reads the set's summary and Enforced condition, the objects'
// Enforced and Ready conditions and `kubectl get pnp`, with the manager's
// controllers and the real API server.
func TestPolicySetObjectEnforcement(t *testing.T) {
	needEnv(t)
	ctx := context.Background()
	f := newPolicySetFixture(t, map[string]string{"shop/web.cue": webCUE, "shop/db.cue": dbCUE})
	rev := "main@sha1:" + f.co.Head().String()
	f.waitSet(rev, setReadyIs(metav1.ConditionTrue, v1.SucceededReason, rev))
	key := f.ns + "/shop"

	var others v1.NodeEnforcementList
	if err := k8sClient.List(ctx, &others); err != nil || len(others.Items) != 0 {
		t.Fatalf("NodeEnforcements left by other tests: %d (%v)", len(others.Items), err)
	}
	// objectIs waits for a NetworkPolicy's Enforced and Ready conditions.
	objectIs := func(name string, status metav1.ConditionStatus, reason string, msg ...string) *v1.NetworkPolicy {
		t.Helper()
		np := &v1.NetworkPolicy{}
		eventually(t, 60*time.Second, func() error {
			if err := k8sClient.Get(ctx, types.NamespacedName{Namespace: f.ns, Name: name}, np); err != nil {
				return err
			}
			e := apimeta.FindStatusCondition(np.Status.Conditions, v1.EnforcedCondition)
			r := apimeta.FindStatusCondition(np.Status.Conditions, v1.ReadyCondition)
			if e == nil || e.Status != status || e.Reason != reason || r == nil || r.Status != status {
				return fmt.Errorf("%s: Enforced %+v, Ready %+v; want %s/%s", name, e, r, status, reason)
			}
			for _, s := range msg {
				if !strings.Contains(e.Message, s) {
					return fmt.Errorf("%s: Enforced message %q does not contain %q", name, e.Message, s)
				}
			}
			return nil
		})
		return np
	}

	// The node enforces the revision but web's HTTP rules only in part.
	web := httpNotEnforced
	web.Namespace, web.Name = f.ns, "web"
	node := writeNode(t, nodeReport{name: "node-partial", sets: map[string]string{key: rev},
		objects: map[string]v1.PolicySetEnforcement{key: {Objects: []v1.ObjectEnforcement{web}}}})
	f.waitSet(rev, func(ps *v1.PolicySet) error {
		if e := ps.Status.Enforcement; e == nil || e.Summary != "0/1" {
			return fmt.Errorf("enforcement %+v, want 0/1", e)
		}
		return conditionIs(ps, v1.EnforcedCondition, metav1.ConditionFalse, v1.PartiallyEnforcedReason,
			"0/1 nodes enforce "+rev+" fully", "node-partial: NetworkPolicy "+f.ns+"/web: "+web.Message)
	})
	objectIs("web", metav1.ConditionFalse, v1.NotSupportedReason, "partly enforced on node-partial: "+web.Message)
	objectIs("db", metav1.ConditionTrue, v1.EnforcementSucceededReason, "every Ready node enforces generation 1 of the object fully")

	// kubectl get pnp shows READY and ENFORCED by default.
	k := newKubectlRunner(t, kubectlPath(t), f.ns)
	out, err := k.run("get", "pnp")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	rows := map[string][]string{}
	for _, l := range lines[1:] {
		rows[strings.Fields(l)[0]] = strings.Fields(l)
	}
	if header := strings.Fields(lines[0]); !slices.Equal(header, []string{"NAME", "MODE", "READY", "ENFORCED", "AGE"}) &&
		!slices.Equal(header, []string{"NAME", "READY", "ENFORCED", "AGE"}) {
		t.Errorf("kubectl get pnp header %v, want READY and ENFORCED", header)
	}
	if w, d := rows["web"], rows["db"]; !slices.Contains(w, "False") || slices.Contains(w, "True") || !slices.Contains(d, "True") || slices.Contains(d, "False") {
		t.Errorf("kubectl get pnp:\n%s", out)
	}

	// The node now enforces everything: 1/1, and every object Enforced.
	updateNode(t, node, nodeReport{name: "node-partial", sets: map[string]string{key: rev}})
	f.waitSet(rev, func(ps *v1.PolicySet) error {
		if e := ps.Status.Enforcement; e == nil || e.Summary != "1/1" {
			return fmt.Errorf("enforcement %+v, want 1/1", e)
		}
		return conditionIs(ps, v1.EnforcedCondition, metav1.ConditionTrue, v1.EnforcementSucceededReason, "1/1 nodes enforce "+rev)
	})
	np := objectIs("web", metav1.ConditionTrue, v1.EnforcementSucceededReason, "every Ready node enforces generation 1 of the object fully")
	objectIs("db", metav1.ConditionTrue, v1.EnforcementSucceededReason)

	// A steady set writes no object: a reconcile leaves web as it was.
	req := "steady"
	ps := &v1.PolicySet{ObjectMeta: metav1.ObjectMeta{Namespace: f.set.Namespace, Name: f.set.Name}}
	patch := fmt.Sprintf(`{"metadata":{"annotations":{%q:%q}}}`, v1.ReconcileRequestAnnotation, req)
	if err := k8sClient.Patch(ctx, ps, client.RawPatch(types.MergePatchType, []byte(patch))); err != nil {
		t.Fatal(err)
	}
	f.waitSet(rev, func(ps *v1.PolicySet) error {
		if ps.Status.LastHandledReconcileAt != req {
			return fmt.Errorf("lastHandledReconcileAt %q, want %q", ps.Status.LastHandledReconcileAt, req)
		}
		return nil
	})
	after := &v1.NetworkPolicy{}
	if err := k8sClient.Get(ctx, client.ObjectKeyFromObject(np), after); err != nil {
		t.Fatal(err)
	}
	if after.ResourceVersion != np.ResourceVersion {
		t.Errorf("a reconcile with nothing new wrote web: resourceVersion %s → %s", np.ResourceVersion, after.ResourceVersion)
	}
}

// TestAppliedHistory: which objects an apply changed, and the older
// revisions at which a node enforces an object as the applied one has it.
func TestAppliedHistory(t *testing.T) {
	const r3 = "main@sha1:3333333333333333333333333333333333333333"
	np := func(name, rev string) client.Object {
		o := &v1.NetworkPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: name, Annotations: map[string]string{render.AnnotationRevision: rev}}}
		o.SetGroupVersionKind(v1.GroupVersion.WithKind("NetworkPolicy"))
		return o
	}
	id := func(name string) string { return objectID(np(name, "")) }
	plan := []planned{
		{result: np("same", testRev), live: np("same", testOldRev), changed: []string{"annotations"}},
		{result: np("spec", testRev), live: np("spec", testOldRev), changed: []string{"annotations", "spec"}},
		{result: np("new", testRev), changed: []string{"created"}},
		{result: np("half", testRev), live: np("half", r3), changed: []string{"annotations"}},
		{result: np("edited", testRev), live: np("edited", testOldRev), foreign: "kubectl-edit"},
	}
	e := appliedRevision(testRev, testOldRev, plan)
	if want := []string{id("edited"), id("half"), id("new"), id("spec")}; e.Revision != testRev || e.ChangedAll || !slices.Equal(e.Changed, want) {
		t.Errorf("applied %+v, want changed %v", e, want)
	}
	if e := appliedRevision(testRev, "", plan); !e.ChangedAll {
		t.Errorf("first apply %+v, want changedAll", e)
	}
	many := make([]planned, v1.MaxChangedObjects+1)
	for i := range many {
		many[i] = planned{result: np(fmt.Sprintf("p%02d", i), testRev), changed: []string{"created"}}
	}
	if e := appliedRevision(testRev, testOldRev, many); !e.ChangedAll || len(e.Changed) != 0 {
		t.Errorf("%d changed: %+v, want changedAll", len(many), e)
	}

	// History, newest first: r3 changed p1, testRev changed p2, testOldRev
	// everything.
	ps := &v1.PolicySet{}
	for _, e := range []v1.AppliedRevision{{Revision: testOldRev, ChangedAll: true}, {Revision: testRev, Changed: []string{id("p2")}}, {Revision: r3, Changed: []string{id("p1")}}} {
		ps.Status.History = addHistory(ps.Status.History, e)
	}
	ps.Status.LastAppliedRevision = r3
	for _, tc := range []struct {
		rev, name string
		want      []string
	}{
		{r3, "p1", nil},
		{r3, "p2", []string{testRev}},
		{r3, "p3", []string{testOldRev, testRev}},
		{testRev, "p3", nil}, // not the applied revision: a half-done apply
	} {
		got := sameSince(ps, tc.rev, id(tc.name))
		var keys []string
		for k := range got {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		if !slices.Equal(keys, tc.want) {
			t.Errorf("sameSince(%s, %s) = %v, want %v", tc.rev, tc.name, keys, tc.want)
		}
	}
	// r3 applied again, changing p3 (the set's path changed): nodes at
	// older revisions no longer count for p3; nothing changed, nothing
	// new.
	again := []planned{{result: np("p3", r3), live: np("p3", r3), changed: []string{"annotations", "spec"}}, {result: np("p4", r3), live: np("p4", r3)}}
	ps.Status.History = recordApply(ps.Status.History, r3, r3, again)
	if h := ps.Status.History; len(h) != 3 || !slices.Equal(h[0].Changed, []string{id("p1"), id("p3")}) {
		t.Errorf("history after r3 again: %+v", h)
	}
	if got := sameSince(ps, r3, id("p3")); len(got) != 0 {
		t.Errorf("sameSince(r3, p3) after r3 changed it again = %v, want none", got)
	}
	before := ps.Status.History
	if ps.Status.History = recordApply(ps.Status.History, r3, r3, again[1:]); !slices.EqualFunc(before, ps.Status.History, func(a, b v1.AppliedRevision) bool {
		return a.Revision == b.Revision && slices.Equal(a.Changed, b.Changed)
	}) {
		t.Errorf("history after a steady reconcile: %+v, want %+v", ps.Status.History, before)
	}
	for range 2 * v1.MaxAppliedHistory {
		ps.Status.History = addHistory(ps.Status.History, v1.AppliedRevision{Revision: r3})
	}
	if len(ps.Status.History) != v1.MaxAppliedHistory {
		t.Errorf("history of %d entries, want at most %d", len(ps.Status.History), v1.MaxAppliedHistory)
	}
}

// TestRolloutWritesChangedObjectsOnly: a commit that changes one object
// of a set leaves the other's Enforced condition True while the node
// still enforces the older revision (it enforces that object exactly as
// the new revision has it), and the changed object waits for the node.
func TestRolloutWritesChangedObjectsOnly(t *testing.T) {
	needEnv(t)
	ctx := context.Background()
	f := newPolicySetFixture(t, map[string]string{"shop/web.cue": webCUE, "shop/db.cue": dbCUE})
	rev := "main@sha1:" + f.co.Head().String()
	f.waitSet(rev, setReadyIs(metav1.ConditionTrue, v1.SucceededReason, rev))
	key := f.ns + "/shop"
	enforced := func(name string) *metav1.Condition {
		t.Helper()
		np := &v1.NetworkPolicy{}
		if err := k8sClient.Get(ctx, types.NamespacedName{Namespace: f.ns, Name: name}, np); err != nil {
			t.Fatal(err)
		}
		return apimeta.FindStatusCondition(np.Status.Conditions, v1.EnforcedCondition)
	}
	objectIs := func(name string, status metav1.ConditionStatus, msg string) *metav1.Condition {
		t.Helper()
		var c *metav1.Condition
		eventually(t, 60*time.Second, func() error {
			if c = enforced(name); c == nil || c.Status != status || !strings.Contains(c.Message, msg) {
				return fmt.Errorf("%s: Enforced %+v, want %s %q", name, c, status, msg)
			}
			return nil
		})
		return c
	}

	node := writeNode(t, nodeReport{name: "node-rollout", sets: map[string]string{key: rev}})
	web := objectIs("web", metav1.ConditionTrue, "every Ready node enforces generation 1 of the object fully")
	objectIs("db", metav1.ConditionTrue, "every Ready node enforces generation 1 of the object fully")

	next := f.push("db on 5433", map[string]string{"shop/db.cue": netpol("db", `fromEndpoints: [{matchLabels: app: "web"}]`, 5433)})
	summaryIs := func(summary string) func(*v1.PolicySet) error {
		return func(ps *v1.PolicySet) error {
			if e := ps.Status.Enforcement; e == nil || e.Summary != summary {
				return fmt.Errorf("enforcement %+v, want %s", e, summary)
			}
			return nil
		}
	}
	ps := f.waitSet(next, summaryIs("0/1"))
	if h := ps.Status.History; len(h) != 2 || h[0].Revision != next || h[0].ChangedAll || len(h[0].Changed) != 1 || !strings.Contains(h[0].Changed[0], "_db_") || h[1].Revision != rev {
		t.Fatalf("history %+v, want %s changing db, then %s", h, next, rev)
	}
	objectIs("db", metav1.ConditionFalse, "waiting for every Ready node to enforce revision "+next)
	if c := enforced("web"); c.Status != metav1.ConditionTrue || c.Message != web.Message || !c.LastTransitionTime.Equal(&web.LastTransitionTime) {
		t.Errorf("web, unchanged by %s, while the node enforces %s: Enforced %+v, want it as it was, %+v", next, rev, c, web)
	}

	updateNode(t, node, nodeReport{name: "node-rollout", sets: map[string]string{key: next}})
	f.waitSet(next, summaryIs("1/1"))
	objectIs("db", metav1.ConditionTrue, "every Ready node enforces generation 2 of the object fully")
	if c := enforced("web"); c.Status != metav1.ConditionTrue || !c.LastTransitionTime.Equal(&web.LastTransitionTime) {
		t.Errorf("web after the rollout: Enforced %+v", c)
	}

	// A node that still enforces the first revision is behind for db only.
	updateNode(t, node, nodeReport{name: "node-rollout", sets: map[string]string{key: rev}})
	objectIs("db", metav1.ConditionFalse, "waiting for every Ready node to enforce revision "+next)
	if c := enforced("web"); c.Status != metav1.ConditionTrue {
		t.Errorf("web with the node at %s: Enforced %+v", rev, c)
	}
}
