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
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "github.com/palisade-dev/palisade/api/v1alpha1"
)

const (
	testRev    = "main@sha1:2222222222222222222222222222222222222222"
	testOldRev = "main@sha1:1111111111111111111111111111111111111111"
)

// nodeReport builds a NodeEnforcement for the enforcement tests.
type nodeReport struct {
	name     string
	notReady bool
	sets     map[string]string // "ns/name" → revision
	errs     []v1.EndpointError
	drifts   []v1.KernelDrift
	// objects are what the node says of the sets' objects, by "ns/name"
	// of the set: counts, the objects not enforced fully, a pending
	// revision. The counts are derived from the objects unless set.
	objects map[string]v1.PolicySetEnforcement
}

func (n nodeReport) object() v1.NodeEnforcement {
	ne := v1.NodeEnforcement{ObjectMeta: metav1.ObjectMeta{Name: n.name}, Spec: v1.NodeEnforcementSpec{NodeName: n.name}}
	n.fill(&ne)
	return ne
}

// fill writes the report into ne's status, as the agent does.
func (n nodeReport) fill(ne *v1.NodeEnforcement) {
	st := metav1.ConditionTrue
	reason := v1.SucceededReason
	if n.notReady {
		st, reason = metav1.ConditionFalse, v1.MapFullReason
	}
	ne.Status.Conditions = nil
	apimeta.SetStatusCondition(&ne.Status.Conditions, metav1.Condition{Type: v1.ReadyCondition, Status: st, Reason: reason, Message: "test report"})
	ne.Status.PolicySets = nil
	// In a stable order, as the agent writes them.
	for _, k := range slices.Sorted(maps.Keys(n.sets)) {
		rev := n.sets[k]
		ns, name, _ := strings.Cut(k, "/")
		e := v1.PolicySetEnforcement{Namespace: ns, Name: name, Revision: rev, Policies: 2, Generation: 7, Enforced: 2}
		if o, ok := n.objects[k]; ok {
			e.Objects, e.PendingRevision, e.Partial, e.NotEnforced = o.Objects, o.PendingRevision, o.Partial, o.NotEnforced
			if o.Partial == 0 && o.NotEnforced == 0 {
				for _, oe := range o.Objects {
					if oe.State == v1.ObjectNotEnforced {
						e.NotEnforced++
					} else {
						e.Partial++
					}
				}
			}
			e.Enforced = max(0, e.Policies-e.Partial-e.NotEnforced)
		}
		ne.Status.PolicySets = append(ne.Status.PolicySets, e)
	}
	ne.Status.Errors = n.errs
	ne.Status.Drifts = n.drifts
}

// httpNotEnforced is the agent's account of an HTTP rule its datapath
// does not enforce.
var httpNotEnforced = v1.ObjectEnforcement{Kind: "NetworkPolicy", Namespace: "shop", Name: "frontend", State: v1.ObjectPartial,
	Reason: v1.NotSupportedReason, Message: "ingress HTTP rules on 80/TCP are not enforced: the kernel passes every request on the port that L3/L4 allows"}

// lsmNotLoaded is the agent's account of a tracing policy it cannot load.
var lsmNotLoaded = v1.ObjectEnforcement{Kind: "TracingPolicy", Namespace: "platform", Name: "no-ptrace", State: v1.ObjectNotEnforced,
	Reason: v1.HookUnavailableReason, Message: "LSM hook file_open: the kernel has no BPF LSM (lsm= lacks bpf)"}

var mapFull = v1.EndpointError{Endpoint: "shop/web-0", Reason: v1.MapFullReason, Message: "policy map full (65536 entries)"}

func drift(at time.Time, what string, repaired bool) v1.KernelDrift {
	d := v1.KernelDrift{Time: metav1.NewTime(at), Kind: v1.KernelDriftMapEntry, What: what, Repaired: repaired}
	if !repaired {
		d.Message = "map is read-only"
	}
	return d
}

// TestEnforcementOf aggregates node reports for one set, table-driven.
func TestEnforcementOf(t *testing.T) {
	now := time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)
	window := 5 * time.Minute
	at := func(rev string) map[string]string { return map[string]string{"team/shop": rev} }
	for _, tc := range []struct {
		name    string
		applied string
		nodes   []nodeReport
		summary v1.EnforcementSummary
		status  metav1.ConditionStatus
		reason  string
		msg     []string
		kernel  []string
		recheck time.Duration
	}{
		{name: "no agent", applied: testRev,
			summary: v1.EnforcementSummary{Summary: "0/0"}, status: metav1.ConditionFalse, reason: v1.EnforcementPendingReason,
			msg: []string{"0/0 nodes enforce " + testRev, "is the agent running"}},
		{name: "nothing applied", nodes: []nodeReport{{name: "a"}},
			summary: v1.EnforcementSummary{Nodes: 1, Summary: "0/1"}, status: metav1.ConditionFalse, reason: v1.EnforcementPendingReason,
			msg: []string{"no revision applied yet"}},
		{name: "one node enforces", applied: testRev, nodes: []nodeReport{{name: "a", sets: at(testRev)}},
			summary: v1.EnforcementSummary{Nodes: 1, Enforced: 1, Summary: "1/1"}, status: metav1.ConditionTrue, reason: v1.EnforcementSucceededReason,
			msg: []string{"1/1 nodes enforce " + testRev}},
		{name: "one node behind, one without the set", applied: testRev,
			nodes:   []nodeReport{{name: "a", sets: at(testRev)}, {name: "b", sets: at(testOldRev)}, {name: "c"}},
			summary: v1.EnforcementSummary{Nodes: 3, Enforced: 1, Summary: "1/3"}, status: metav1.ConditionFalse, reason: v1.EnforcementPendingReason,
			msg: []string{"1/3 nodes enforce " + testRev, "waiting for b enforces " + testOldRev + "; c does not enforce this set yet"}},
		{name: "other sets do not count", applied: testRev,
			nodes:   []nodeReport{{name: "a", sets: map[string]string{"team/other": testRev, "other/shop": testRev}}},
			summary: v1.EnforcementSummary{Nodes: 1, Summary: "0/1"}, status: metav1.ConditionFalse, reason: v1.EnforcementPendingReason},
		{name: "a node that is not Ready is not counted", applied: testRev,
			nodes:   []nodeReport{{name: "a", sets: at(testRev)}, {name: "b", notReady: true, sets: at(testRev)}},
			summary: v1.EnforcementSummary{Nodes: 1, Enforced: 1, Summary: "1/1"}, status: metav1.ConditionTrue, reason: v1.EnforcementSucceededReason},
		{name: "a behind node with errors fails", applied: testRev,
			nodes:   []nodeReport{{name: "a", sets: at(testRev)}, {name: "b", notReady: true, sets: at(testOldRev), errs: []v1.EndpointError{mapFull, mapFull}}},
			summary: v1.EnforcementSummary{Nodes: 1, Enforced: 1, Summary: "1/1"}, status: metav1.ConditionFalse, reason: v1.EnforcementFailedReason,
			msg: []string{"1/1 nodes enforce " + testRev + "; failing: b: MapFull: shop/web-0: policy map full (65536 entries) (and 1 more endpoints)"}},
		{name: "errors on a node that enforces the revision", applied: testRev,
			nodes:   []nodeReport{{name: "a", sets: at(testRev), errs: []v1.EndpointError{mapFull}}},
			summary: v1.EnforcementSummary{Nodes: 1, Enforced: 1, Summary: "1/1"}, status: metav1.ConditionTrue, reason: v1.EnforcementSucceededReason},
		{name: "drift within the window", applied: testRev,
			nodes: []nodeReport{
				{name: "a", sets: at(testRev), drifts: []v1.KernelDrift{drift(now.Add(-time.Minute), "policy map entry 10.0.0.1:443", true), drift(now.Add(-10*time.Minute), "old", true)}},
				{name: "b", sets: at(testRev), drifts: []v1.KernelDrift{drift(now.Add(-4*time.Minute), "tcx link on veth1", false)}},
				{name: "c", sets: at(testRev), drifts: []v1.KernelDrift{drift(now.Add(-6*time.Minute), "expired", true)}},
				{name: "d", drifts: []v1.KernelDrift{drift(now.Add(-time.Minute), "a node without the set", true)}},
			},
			summary: v1.EnforcementSummary{Nodes: 4, Enforced: 3, Drifted: 2, Summary: "3/4"}, status: metav1.ConditionFalse, reason: v1.EnforcementPendingReason,
			kernel: []string{"a: MapEntry drift at 11:59:00Z, repaired: policy map entry 10.0.0.1:443",
				"b: MapEntry drift at 11:56:00Z, not repaired (map is read-only): tcx link on veth1"},
			recheck: time.Minute},
		{name: "an object enforced in part", applied: testRev,
			nodes: []nodeReport{{name: "a", sets: at(testRev), objects: map[string]v1.PolicySetEnforcement{"team/shop": {
				Objects: []v1.ObjectEnforcement{lsmNotLoaded, httpNotEnforced}}}}},
			summary: v1.EnforcementSummary{Nodes: 1, Summary: "0/1"}, status: metav1.ConditionFalse, reason: v1.PartiallyEnforcedReason,
			msg: []string{"0/1 nodes enforce " + testRev + " fully; a: NetworkPolicy shop/frontend: ingress HTTP rules on 80/TCP are not enforced: the kernel passes every request on the port that L3/L4 allows" +
				"; TracingPolicy platform/no-ptrace: not enforced (HookUnavailable): LSM hook file_open"}},
		{name: "nodes that say the same are named together", applied: testRev,
			nodes: []nodeReport{
				{name: "a", sets: at(testRev), objects: map[string]v1.PolicySetEnforcement{"team/shop": {Objects: []v1.ObjectEnforcement{httpNotEnforced}}}},
				{name: "b", sets: at(testRev), objects: map[string]v1.PolicySetEnforcement{"team/shop": {Objects: []v1.ObjectEnforcement{httpNotEnforced}}}},
				{name: "c", sets: at(testRev)},
				{name: "d", sets: at(testRev), objects: map[string]v1.PolicySetEnforcement{"team/shop": {Objects: []v1.ObjectEnforcement{lsmNotLoaded}}}},
			},
			summary: v1.EnforcementSummary{Nodes: 4, Enforced: 1, Summary: "1/4"}, status: metav1.ConditionFalse, reason: v1.PartiallyEnforcedReason,
			msg: []string{"1/4 nodes enforce " + testRev + " fully; a, b: NetworkPolicy shop/frontend: ingress HTTP", "; d: TracingPolicy platform/no-ptrace: not enforced"}},
		{name: "a few objects named, the rest counted", applied: testRev,
			nodes: []nodeReport{{name: "a", sets: at(testRev), objects: map[string]v1.PolicySetEnforcement{"team/shop": {
				Partial: 70, Objects: manyObjects(64)}}}},
			summary: v1.EnforcementSummary{Nodes: 1, Summary: "0/1"}, status: metav1.ConditionFalse, reason: v1.PartiallyEnforcedReason,
			msg: []string{"NetworkPolicy shop/p00: ", "NetworkPolicy shop/p02: ", "; and 67 more objects not enforced fully"}},
		{name: "counts without a list", applied: testRev,
			nodes:   []nodeReport{{name: "a", sets: at(testRev), objects: map[string]v1.PolicySetEnforcement{"team/shop": {NotEnforced: 2}}}},
			summary: v1.EnforcementSummary{Nodes: 1, Summary: "0/1"}, status: metav1.ConditionFalse, reason: v1.PartiallyEnforcedReason,
			msg: []string{"a: 2 objects not enforced fully"}},
		{name: "a long message is clipped", applied: testRev,
			nodes: []nodeReport{{name: "a", sets: at(testRev), objects: map[string]v1.PolicySetEnforcement{"team/shop": {
				Objects: []v1.ObjectEnforcement{{Kind: "TracingPolicy", Namespace: "platform", Name: "x", State: v1.ObjectNotEnforced, Reason: v1.LoadFailedReason,
					Message: "verifier: " + strings.Repeat("R1 invalid mem access; ", 80)}}}}}},
			summary: v1.EnforcementSummary{Nodes: 1, Summary: "0/1"}, status: metav1.ConditionFalse, reason: v1.PartiallyEnforcedReason,
			msg: []string{"TracingPolicy platform/x: not enforced (LoadFailed): verifier: R1", "…"}},
		{name: "in part on one node, behind on another", applied: testRev,
			nodes: []nodeReport{
				{name: "a", sets: at(testRev), objects: map[string]v1.PolicySetEnforcement{"team/shop": {Objects: []v1.ObjectEnforcement{httpNotEnforced}}}},
				{name: "b", sets: at(testOldRev)},
			},
			summary: v1.EnforcementSummary{Nodes: 2, Summary: "0/2"}, status: metav1.ConditionFalse, reason: v1.PartiallyEnforcedReason,
			msg: []string{"a: NetworkPolicy shop/frontend", "; waiting for b enforces " + testOldRev}},
		{name: "endpoint errors come before objects enforced in part", applied: testRev,
			nodes: []nodeReport{
				{name: "a", sets: at(testRev), objects: map[string]v1.PolicySetEnforcement{"team/shop": {Objects: []v1.ObjectEnforcement{httpNotEnforced}}}},
				{name: "b", notReady: true, errs: []v1.EndpointError{mapFull}},
			},
			summary: v1.EnforcementSummary{Nodes: 1, Summary: "0/1"}, status: metav1.ConditionFalse, reason: v1.EnforcementFailedReason,
			msg: []string{"failing: b: MapFull"}},
		{name: "waiting for a revision to be complete in the API", applied: testRev,
			nodes: []nodeReport{
				{name: "a", sets: at(testOldRev), objects: map[string]v1.PolicySetEnforcement{"team/shop": {PendingRevision: testRev}}},
				{name: "b", sets: at(""), objects: map[string]v1.PolicySetEnforcement{"team/shop": {PendingRevision: testRev}}},
			},
			summary: v1.EnforcementSummary{Nodes: 2, Summary: "0/2"}, status: metav1.ConditionFalse, reason: v1.EnforcementPendingReason,
			msg: []string{"waiting for a enforces " + testOldRev + " (RevisionIncomplete: " + testRev + " is not complete in the API yet)",
				"b enforces no revision of this set (RevisionIncomplete: "}},
		{name: "a newer pending revision does not take the applied one away", applied: testRev,
			nodes:   []nodeReport{{name: "a", sets: at(testRev), objects: map[string]v1.PolicySetEnforcement{"team/shop": {PendingRevision: "main@sha1:3333333333333333333333333333333333333333"}}}},
			summary: v1.EnforcementSummary{Nodes: 1, Enforced: 1, Summary: "1/1"}, status: metav1.ConditionTrue, reason: v1.EnforcementSucceededReason},
		{name: "objects of an older revision do not count", applied: testRev,
			nodes:   []nodeReport{{name: "a", sets: at(testOldRev), objects: map[string]v1.PolicySetEnforcement{"team/shop": {Objects: []v1.ObjectEnforcement{httpNotEnforced}}}}},
			summary: v1.EnforcementSummary{Nodes: 1, Summary: "0/1"}, status: metav1.ConditionFalse, reason: v1.EnforcementPendingReason,
			msg: []string{"waiting for a enforces " + testOldRev}},
		{name: "many nodes behind", applied: testRev,
			nodes:   []nodeReport{{name: "a"}, {name: "b"}, {name: "c"}, {name: "d"}, {name: "e"}},
			summary: v1.EnforcementSummary{Nodes: 5, Summary: "0/5"}, status: metav1.ConditionFalse, reason: v1.EnforcementPendingReason,
			msg: []string{"c does not enforce this set yet; and 2 more nodes"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ps := &v1.PolicySet{ObjectMeta: metav1.ObjectMeta{Namespace: "team", Name: "shop"}}
			ps.Status.LastAppliedRevision = tc.applied
			var nodes []v1.NodeEnforcement
			for _, n := range tc.nodes {
				nodes = append(nodes, n.object())
			}
			rep := enforcementOf(ps, nodes, now, window)
			if rep.summary != tc.summary {
				t.Errorf("summary %+v, want %+v", rep.summary, tc.summary)
			}
			if rep.status != tc.status || rep.reason != tc.reason {
				t.Errorf("Enforced %s/%s %q, want %s/%s", rep.status, rep.reason, rep.message, tc.status, tc.reason)
			}
			for _, s := range tc.msg {
				if !strings.Contains(rep.message, s) {
					t.Errorf("message %q does not contain %q", rep.message, s)
				}
			}
			if strings.Join(rep.kernel, "\n") != strings.Join(tc.kernel, "\n") {
				t.Errorf("kernel drift\n%s\nwant\n%s", strings.Join(rep.kernel, "\n"), strings.Join(tc.kernel, "\n"))
			}
			if rep.recheck != tc.recheck {
				t.Errorf("recheck %s, want %s", rep.recheck, tc.recheck)
			}
		})
	}
}

// manyObjects are n NetworkPolicies p00, p01, ... enforced in part.
func manyObjects(n int) []v1.ObjectEnforcement {
	out := make([]v1.ObjectEnforcement, n)
	for i := range out {
		out[i] = httpNotEnforced
		out[i].Name = fmt.Sprintf("p%02d", i)
	}
	// The agent's order is not the message's.
	slices.Reverse(out)
	return out
}

// TestChangedSets wakes the sets whose report a node's change changes,
// and only those.
func TestChangedSets(t *testing.T) {
	set := func(ns, name, applied string) v1.PolicySet {
		ps := v1.PolicySet{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}
		ps.Status.LastAppliedRevision = applied
		return ps
	}
	sets := []v1.PolicySet{set("team", "shop", testRev), set("team", "db", testRev), set("other", "shop", testRev)}
	both := map[string]string{"team/shop": testRev, "team/db": testRev}
	node := func(n nodeReport) *v1.NodeEnforcement {
		ne := n.object()
		return &ne
	}
	heartbeat := node(nodeReport{name: "a", sets: both})
	heartbeat.Status.LastVerifiedTime = &metav1.Time{Time: time.Now()}
	heartbeat.Status.Maps = []v1.MapUsage{{Name: "policy", Entries: 10, MaxEntries: 100}}
	heartbeat.Status.PolicySets[0].Generation++
	for _, tc := range []struct {
		name string
		old  *v1.NodeEnforcement
		new  *v1.NodeEnforcement
		want []string
	}{
		{name: "a Ready node appears: every count changes", new: node(nodeReport{name: "a", sets: both}),
			want: []string{"team/shop", "team/db", "other/shop"}},
		{name: "a node that is not Ready appears", new: node(nodeReport{name: "a", notReady: true})},
		{name: "a node goes", old: node(nodeReport{name: "a", sets: both}),
			want: []string{"team/shop", "team/db", "other/shop"}},
		{name: "heartbeat, map usage and generations", old: node(nodeReport{name: "a", sets: both}), new: heartbeat},
		{name: "one set's objects", old: node(nodeReport{name: "a", sets: both}),
			new:  node(nodeReport{name: "a", sets: both, objects: map[string]v1.PolicySetEnforcement{"team/db": {Objects: []v1.ObjectEnforcement{httpNotEnforced}}}}),
			want: []string{"team/db"}},
		{name: "one set's pending revision", old: node(nodeReport{name: "a", sets: both}),
			new:  node(nodeReport{name: "a", sets: both, objects: map[string]v1.PolicySetEnforcement{"team/shop": {PendingRevision: testOldRev}}}),
			want: []string{"team/shop"}},
		{name: "one set's new revision", old: node(nodeReport{name: "a", sets: map[string]string{"team/shop": testOldRev, "team/db": testRev}}),
			new: node(nodeReport{name: "a", sets: both}), want: []string{"team/shop"}},
		{name: "endpoint errors matter to the sets the node does not enforce", old: node(nodeReport{name: "a", sets: both}),
			new: node(nodeReport{name: "a", sets: both, errs: []v1.EndpointError{mapFull}}), want: []string{"other/shop"}},
		{name: "drift matters to the sets the node lists", old: node(nodeReport{name: "a", sets: both}),
			new:  node(nodeReport{name: "a", sets: both, drifts: []v1.KernelDrift{drift(time.Now(), "x", true)}}),
			want: []string{"team/shop", "team/db"}},
		{name: "readiness", old: node(nodeReport{name: "a", sets: both}), new: node(nodeReport{name: "a", notReady: true, sets: both}),
			want: []string{"team/shop", "team/db", "other/shop"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got []string
			for _, k := range changedSets(sets, tc.old, tc.new) {
				got = append(got, k.String())
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("woke %v, want %v", got, tc.want)
			}
			if tc.old != nil && tc.new != nil && sameReport(tc.old, tc.new) != (len(tc.want) == 0) {
				t.Errorf("sameReport %v with %d sets woken", sameReport(tc.old, tc.new), len(tc.want))
			}
		})
	}
}

// TestSetDrifted combines API and kernel drift into one condition.
func TestSetDrifted(t *testing.T) {
	window := 5 * time.Minute
	apiMsg := apiDriftMessage(testRev, []string{"NetworkPolicy team/web was edited (spec)"})
	cond := func(s metav1.ConditionStatus, reason, msg string) *metav1.Condition {
		return &metav1.Condition{Type: v1.DriftedCondition, Status: s, Reason: reason, Message: msg}
	}
	for _, tc := range []struct {
		name     string
		prev     *metav1.Condition
		applied  string
		api      []string
		kernel   []string
		want     *metav1.Condition
		contains []string
	}{
		{name: "nothing applied, nothing to say"},
		{name: "no drift", applied: testRev, want: cond(metav1.ConditionFalse, v1.NoDriftReason, "")},
		{name: "API drift now", applied: testRev, api: []string{"NetworkPolicy team/web was edited (spec)"},
			want: cond(metav1.ConditionTrue, v1.APIDriftReason, apiMsg)},
		{name: "API drift stays for its revision", applied: testRev, prev: cond(metav1.ConditionTrue, v1.APIDriftReason, apiMsg),
			want: cond(metav1.ConditionTrue, v1.APIDriftReason, apiMsg)},
		{name: "API drift goes with a new revision", applied: "main@sha1:3333333333333333333333333333333333333333", prev: cond(metav1.ConditionTrue, v1.APIDriftReason, apiMsg),
			want: cond(metav1.ConditionFalse, v1.NoDriftReason, "")},
		{name: "kernel drift", applied: testRev, kernel: []string{"a: MapEntry drift"},
			want: cond(metav1.ConditionTrue, v1.KernelDriftReason, "kernel drift within the last 5m0s on a: MapEntry drift")},
		{name: "kernel and API drift", applied: testRev, prev: cond(metav1.ConditionTrue, v1.APIDriftReason, apiMsg), kernel: []string{"a: MapEntry drift"},
			want: cond(metav1.ConditionTrue, v1.KernelDriftReason, "kernel drift within the last 5m0s on a: MapEntry drift; "+apiMsg)},
		{name: "kernel drift leaves the window, API drift stays", applied: testRev,
			prev: cond(metav1.ConditionTrue, v1.KernelDriftReason, "kernel drift within the last 5m0s on a: MapEntry drift; "+apiMsg),
			want: cond(metav1.ConditionTrue, v1.APIDriftReason, apiMsg)},
		{name: "kernel drift leaves the window", applied: testRev,
			prev: cond(metav1.ConditionTrue, v1.KernelDriftReason, "kernel drift within the last 5m0s on a: MapEntry drift"),
			want: cond(metav1.ConditionFalse, v1.NoDriftReason, "")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var conds []metav1.Condition
			if tc.prev != nil {
				conds = append(conds, *tc.prev)
			}
			setDrifted(&conds, 1, tc.applied, tc.api, tc.kernel, window)
			got := apimeta.FindStatusCondition(conds, v1.DriftedCondition)
			if tc.want == nil {
				if got != nil {
					t.Fatalf("Drifted %+v, want none", got)
				}
				return
			}
			if got == nil || got.Status != tc.want.Status || got.Reason != tc.want.Reason || (tc.want.Message != "" && got.Message != tc.want.Message) {
				t.Fatalf("Drifted %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

// TestPolicySetEnforcement writes NodeEnforcement objects as agents would
// and reads the PolicySet's enforcement summary, Enforced and Drifted
// conditions, with the manager's controllers and the real API server.
func TestPolicySetEnforcement(t *testing.T) {
	needEnv(t)
	ctx := context.Background()
	f := newPolicySetFixture(t, map[string]string{"shop/web.cue": webCUE, "shop/db.cue": dbCUE})
	rev := "main@sha1:" + f.co.Head().String()
	f.waitSet(rev, setReadyIs(metav1.ConditionTrue, v1.SucceededReason, rev))
	key := f.ns + "/shop"
	enforcedIs := func(summary string, status metav1.ConditionStatus, reason string, msg ...string) func(*v1.PolicySet) error {
		return func(ps *v1.PolicySet) error {
			if e := ps.Status.Enforcement; e == nil || e.Summary != summary {
				return fmt.Errorf("enforcement %+v, want %s", e, summary)
			}
			return conditionIs(ps, v1.EnforcedCondition, status, reason, msg...)
		}
	}

	// The nodes of other tests are not this test's business.
	var others v1.NodeEnforcementList
	if err := k8sClient.List(ctx, &others); err != nil || len(others.Items) != 0 {
		t.Fatalf("NodeEnforcements left by other tests: %d (%v)", len(others.Items), err)
	}
	f.waitSet(rev, enforcedIs("0/0", metav1.ConditionFalse, v1.EnforcementPendingReason, "is the agent running"))

	// One node enforces the applied revision.
	a := writeNode(t, nodeReport{name: "node-a", sets: map[string]string{key: rev}})
	f.waitSet(rev, enforcedIs("1/1", metav1.ConditionTrue, v1.EnforcementSucceededReason, "1/1 nodes enforce "+rev))

	// A second node is still at an older revision.
	b := writeNode(t, nodeReport{name: "node-b", sets: map[string]string{key: testOldRev}})
	f.waitSet(rev, enforcedIs("1/2", metav1.ConditionFalse, v1.EnforcementPendingReason, "waiting for node-b enforces "+testOldRev))

	// Its maps are full: it is not Ready and says why.
	updateNode(t, b, nodeReport{name: "node-b", notReady: true, sets: map[string]string{key: testOldRev}, errs: []v1.EndpointError{mapFull}})
	f.waitSet(rev, enforcedIs("1/1", metav1.ConditionFalse, v1.EnforcementFailedReason, "node-b: MapFull: shop/web-0"))
	updateNode(t, b, nodeReport{name: "node-b", sets: map[string]string{key: rev}})
	f.waitSet(rev, enforcedIs("2/2", metav1.ConditionTrue, v1.EnforcementSucceededReason, "2/2 nodes enforce "+rev))

	// node-a's verify loop repaired a map entry a minute ago.
	updateNode(t, a, nodeReport{name: "node-a", sets: map[string]string{key: rev},
		drifts: []v1.KernelDrift{drift(time.Now().Add(-time.Minute), "policy map entry 10.0.0.1:443 allow → deny", true)}})
	ps := f.waitSet(rev, func(ps *v1.PolicySet) error {
		if ps.Status.Enforcement.Drifted != 1 {
			return fmt.Errorf("enforcement %+v, want 1 drifted", ps.Status.Enforcement)
		}
		return conditionIs(ps, v1.DriftedCondition, metav1.ConditionTrue, v1.KernelDriftReason, "node-a: MapEntry drift", "policy map entry 10.0.0.1:443")
	})
	if !apimeta.IsStatusConditionTrue(ps.Status.Conditions, v1.ReadyCondition) {
		t.Errorf("kernel drift changed Ready: %+v", ps.Status.Conditions)
	}

	// A hand edit on top: both drifts in one condition.
	web := f.policies()["web"]
	web.Spec.Ingress[0].ToPorts[0].Ports[0].Port = intstr.FromInt32(8443)
	if err := k8sClient.Update(ctx, &web, client.FieldOwner("kubectl-edit")); err != nil {
		t.Fatal(err)
	}
	f.waitSet(rev, func(ps *v1.PolicySet) error {
		return conditionIs(ps, v1.DriftedCondition, metav1.ConditionTrue, v1.KernelDriftReason,
			"node-a: MapEntry drift", apiDriftPrefix(rev), "NetworkPolicy "+f.ns+"/web was edited (spec")
	})

	// The kernel drift is older than the window: the API drift stays.
	updateNode(t, a, nodeReport{name: "node-a", sets: map[string]string{key: rev},
		drifts: []v1.KernelDrift{drift(time.Now().Add(-time.Hour), "policy map entry 10.0.0.1:443 allow → deny", true)}})
	ps = f.waitSet(rev, func(ps *v1.PolicySet) error {
		if ps.Status.Enforcement.Drifted != 0 {
			return fmt.Errorf("enforcement %+v, want 0 drifted", ps.Status.Enforcement)
		}
		return conditionIs(ps, v1.DriftedCondition, metav1.ConditionTrue, v1.APIDriftReason, apiDriftPrefix(rev))
	})
	if c := apimeta.FindStatusCondition(ps.Status.Conditions, v1.DriftedCondition); strings.Contains(c.Message, "node-a") {
		t.Errorf("Drifted still names the expired kernel drift: %q", c.Message)
	}

	// A node going away changes the count.
	if err := k8sClient.Delete(ctx, b); err != nil {
		t.Fatal(err)
	}
	f.waitSet(rev, enforcedIs("1/1", metav1.ConditionTrue, v1.EnforcementSucceededReason))

	// A new revision: pending until the node reports it.
	next := f.push("db on 5433", map[string]string{"shop/db.cue": netpol("db", `fromEndpoints: [{matchLabels: app: "web"}]`, 5433)})
	f.waitSet(next, enforcedIs("0/1", metav1.ConditionFalse, v1.EnforcementPendingReason, "waiting for node-a enforces "+rev))
	updateNode(t, a, nodeReport{name: "node-a", sets: map[string]string{key: next}})
	f.waitSet(next, enforcedIs("1/1", metav1.ConditionTrue, v1.EnforcementSucceededReason, "1/1 nodes enforce "+next))
}

// conditionIs checks a condition's status, reason and message.
func conditionIs(ps *v1.PolicySet, typ string, status metav1.ConditionStatus, reason string, msg ...string) error {
	c := apimeta.FindStatusCondition(ps.Status.Conditions, typ)
	if c == nil || c.Status != status || c.Reason != reason {
		return fmt.Errorf("%s is %+v, want %s/%s", typ, c, status, reason)
	}
	for _, s := range msg {
		if !strings.Contains(c.Message, s) {
			return fmt.Errorf("%s message %q does not contain %q", typ, c.Message, s)
		}
	}
	return nil
}

// writeNode creates a NodeEnforcement with a status, as an agent does,
// and deletes it when the test ends.
func writeNode(t *testing.T, n nodeReport) *v1.NodeEnforcement {
	t.Helper()
	ctx := context.Background()
	ne := &v1.NodeEnforcement{ObjectMeta: metav1.ObjectMeta{Name: n.name}, Spec: v1.NodeEnforcementSpec{NodeName: n.name}}
	if err := k8sClient.Create(ctx, ne); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := k8sClient.Delete(context.Background(), ne); err != nil && !apierrors.IsNotFound(err) {
			t.Error(err)
		}
	})
	updateNode(t, ne, n)
	return ne
}

// updateNode replaces a NodeEnforcement's status with n.
func updateNode(t *testing.T, ne *v1.NodeEnforcement, n nodeReport) {
	t.Helper()
	ctx := context.Background()
	if err := k8sClient.Get(ctx, client.ObjectKeyFromObject(ne), ne); err != nil {
		t.Fatal(err)
	}
	n.fill(ne)
	if err := k8sClient.Status().Update(ctx, ne); err != nil {
		t.Fatal(err)
	}
}
