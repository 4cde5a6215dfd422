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

package engine

import (
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestWorkloadLabelsDropVolatile(t *testing.T) {
	var p LabelPolicy
	a := p.WorkloadLabels("shop", map[string]string{"app": "api", "pod-template-hash": "5c8b"}, map[string]string{"team": "x"}, "api-sa")
	b := p.WorkloadLabels("shop", map[string]string{"app": "api", "pod-template-hash": "77aa"}, map[string]string{"team": "x"}, "api-sa")
	if a.String() != b.String() {
		t.Fatalf("two replicas of one workload differ: %q vs %q", a, b)
	}
	want := "app=api,io.cilium.k8s.namespace.labels.team=x,io.cilium.k8s.policy.serviceaccount=api-sa,io.kubernetes.pod.namespace=shop"
	if a.String() != want {
		t.Fatalf("labels %q, want %q", a, want)
	}
	custom := LabelPolicy{Volatile: []string{"app"}}
	if got := custom.WorkloadLabels("shop", map[string]string{"app": "api", "pod-template-hash": "1"}, nil, ""); got["app"] != "" || got["pod-template-hash"] != "1" {
		t.Fatalf("configured volatile labels not applied: %v", got)
	}
}

func TestMemoryAllocator(t *testing.T) {
	a := NewMemoryAllocator()
	l1 := Labels{LabelNamespace: "shop", "app": "api"}
	l2 := Labels{LabelNamespace: "shop", "app": "web"}
	id1, err := a.Allocate(l1)
	if err != nil || id1 != MinWorkloadIdentity {
		t.Fatalf("first identity %d, %v; want %d", id1, err, MinWorkloadIdentity)
	}
	// The same labels, in another map, get the same identity.
	again, _ := a.Allocate(Labels{"app": "api", LabelNamespace: "shop"})
	if again != id1 {
		t.Fatalf("same labels got %d and %d", id1, again)
	}
	id2, _ := a.Allocate(l2)
	if id2 == id1 {
		t.Fatal("different labels share an identity")
	}
	if got, ok := a.Labels(id2); !ok || got.String() != l2.String() {
		t.Fatalf("Labels(%d) = %v, %v", id2, got, ok)
	}
	if got, ok := a.Labels(IdentityWorld); !ok || !got.Has(EntityWorld) {
		t.Fatalf("reserved world labels: %v %v", got, ok)
	}
	// Two references: one release keeps it, the second frees it.
	if err := a.Release(l1); err != nil {
		t.Fatal(err)
	}
	if _, ok := a.Lookup(l1); !ok {
		t.Fatal("identity freed while still referenced")
	}
	if err := a.Release(l1); err != nil {
		t.Fatal(err)
	}
	if _, ok := a.Lookup(l1); ok {
		t.Fatal("identity not freed after the last release")
	}
	if err := a.Release(l1); err == nil {
		t.Fatal("releasing an unallocated identity must fail")
	}
	// A freed number is reused before new ones are taken.
	id3, _ := a.Allocate(Labels{LabelNamespace: "shop", "app": "db"})
	if id3 != id1 {
		t.Fatalf("freed identity %d not reused (got %d)", id1, id3)
	}
	if _, err := a.Allocate(Reserved(EntityHost)); err == nil || !strings.Contains(err.Error(), "not a workload") {
		t.Fatalf("allocating reserved labels: %v", err)
	}
}

func TestReservedIdentitiesAndEntities(t *testing.T) {
	tests := []struct {
		id    Identity
		in    []Entity
		notIn []Entity
	}{
		{IdentityHost, []Entity{EntityHost, EntityCluster, EntityAll}, []Entity{EntityWorld, EntityRemoteNode}},
		{IdentityWorld, []Entity{EntityWorld, EntityAll}, []Entity{EntityCluster, EntityHost}},
		{IdentityRemoteNode, []Entity{EntityRemoteNode, EntityCluster}, []Entity{EntityHost, EntityWorld}},
		{IdentityKubeAPIServer, []Entity{EntityKubeAPIServer, EntityWorld}, []Entity{EntityCluster}},
		{IdentityHostAPIServer, []Entity{EntityHost, EntityKubeAPIServer, EntityCluster}, []Entity{EntityWorld}},
		{IdentityRemoteNodeAPIServer, []Entity{EntityRemoteNode, EntityKubeAPIServer}, []Entity{EntityHost}},
		{IdentityUnmanaged, []Entity{EntityUnmanaged, EntityCluster}, []Entity{EntityWorld}},
		{IdentityCluster, []Entity{EntityCluster}, []Entity{EntityWorld, EntityHost}},
	}
	for _, tc := range tests {
		l, ok := ReservedLabels(tc.id)
		if !ok {
			t.Fatalf("identity %d is not reserved", tc.id)
		}
		for _, e := range tc.in {
			if !MatchesEntity(e, l) {
				t.Errorf("identity %d (%s) should be in entity %s", tc.id, l, e)
			}
		}
		for _, e := range tc.notIn {
			if MatchesEntity(e, l) {
				t.Errorf("identity %d (%s) should not be in entity %s", tc.id, l, e)
			}
		}
	}
	if len(ReservedIdentities()) != 8 {
		t.Fatalf("reserved identities: %v", ReservedIdentities())
	}
}

func sel(t *testing.T, s metav1.LabelSelector, ns string) Selector {
	t.Helper()
	out, err := NewSelector(&s, ns)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestSelectors(t *testing.T) {
	api := Labels{LabelNamespace: "shop", "app": "api", "tier": "backend"}
	web := Labels{LabelNamespace: "shop", "app": "web"}
	other := Labels{LabelNamespace: "payments", "app": "api", LabelNamespaceLabels + "pci": "true"}
	host := Reserved(EntityHost)
	tests := []struct {
		name  string
		sel   metav1.LabelSelector
		ns    string
		match []Labels
		miss  []Labels
	}{
		{"empty selector in a namespace", metav1.LabelSelector{}, "shop", []Labels{api, web}, []Labels{other, host}},
		{"empty cluster-wide selector", metav1.LabelSelector{}, "", []Labels{api, web, other}, []Labels{host}},
		{"k8s: prefix is stripped", metav1.LabelSelector{MatchLabels: map[string]string{"k8s:app": "api"}}, "shop", []Labels{api}, []Labels{web, other}},
		{"explicit namespace label reaches another namespace", metav1.LabelSelector{MatchLabels: map[string]string{"k8s:io.kubernetes.pod.namespace": "payments"}}, "shop", []Labels{other}, []Labels{api}},
		{"namespace labels", metav1.LabelSelector{MatchLabels: map[string]string{"io.cilium.k8s.namespace.labels.pci": "true"}}, "", []Labels{other}, []Labels{api}},
		{"In", metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "app", Operator: "In", Values: []string{"web", "db"}}}}, "shop", []Labels{web}, []Labels{api}},
		{"NotIn matches a missing key", metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "tier", Operator: "NotIn", Values: []string{"backend"}}}}, "shop", []Labels{web}, []Labels{api}},
		{"Exists", metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "tier", Operator: "Exists"}}}, "shop", []Labels{api}, []Labels{web}},
		{"DoesNotExist", metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "tier", Operator: "DoesNotExist"}}}, "", []Labels{web, other}, []Labels{api}},
		{"reserved key selects the reserved identity only", metav1.LabelSelector{MatchLabels: map[string]string{"reserved:host": ""}}, "shop", []Labels{host}, []Labels{api, Reserved(EntityWorld)}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := sel(t, tc.sel, tc.ns)
			for _, l := range tc.match {
				if !s.Matches(l) {
					t.Errorf("%s should select %s", s, l)
				}
			}
			for _, l := range tc.miss {
				if s.Matches(l) {
					t.Errorf("%s should not select %s", s, l)
				}
			}
		})
	}
	for _, bad := range []string{"k8z:app", "reserved:nothing", "reserved:all"} {
		if _, err := NewSelector(&metav1.LabelSelector{MatchLabels: map[string]string{bad: "x"}}, ""); err == nil {
			t.Errorf("key %q must be refused", bad)
		}
	}
	// Canonical form does not depend on how the selector was written.
	a := sel(t, metav1.LabelSelector{MatchLabels: map[string]string{"b": "1", "a": "2"}}, "ns")
	b := sel(t, metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "k8s:a", Operator: "In", Values: []string{"2"}}}, MatchLabels: map[string]string{"b": "1"}}, "ns")
	if a.String() != b.String() {
		t.Fatalf("canonical forms differ: %q vs %q", a, b)
	}
}

func TestFQDNMatching(t *testing.T) {
	tests := []struct {
		f    FQDN
		name string
		want bool
	}{
		{FQDN{Name: "api.stripe.com"}, "API.Stripe.com.", true},
		{FQDN{Name: "api.stripe.com"}, "x.api.stripe.com", false},
		{FQDN{Pattern: "*.googleapis.com"}, "storage.googleapis.com", true},
		{FQDN{Pattern: "*.googleapis.com"}, "a.b.googleapis.com", false}, // * stays within a label
		{FQDN{Pattern: "*.googleapis.com"}, "googleapis.com", false},
		{FQDN{Pattern: "api-*.example.com"}, "api-v2.example.com", true},
		{FQDN{Pattern: "api-*.example.com"}, "web-v2.example.com", false},
		{FQDN{Pattern: "*"}, "anything.at.all", true},
	}
	for _, tc := range tests {
		if got := tc.f.Matches(tc.name); got != tc.want {
			t.Errorf("%+v matches %q = %v, want %v", tc.f, tc.name, got, tc.want)
		}
	}
}
