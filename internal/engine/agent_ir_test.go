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
	"fmt"
	"reflect"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/palisade-dev/palisade/api/v1alpha1"
	"github.com/palisade-dev/palisade/internal/policy"
)

func assembleTestPolicy(name string, port int) *policy.Policy {
	np := &v1alpha1.NetworkPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: name}}
	np.Spec.EndpointSelector = metav1.LabelSelector{MatchLabels: map[string]string{"app": name}}
	np.Spec.Ingress = []v1alpha1.IngressRule{{
		FromEndpoints: []metav1.LabelSelector{{MatchLabels: map[string]string{"app": "client"}}},
		ToPorts:       []v1alpha1.PortRule{{Ports: []v1alpha1.PortProtocol{{Port: intstr.FromInt(port), Protocol: v1alpha1.ProtocolTCP}}}},
	}}
	return &policy.Policy{Kind: policy.KindNetworkPolicy, Namespace: "ns", Name: name, NetworkPolicy: np}
}

// collidingNames finds two policy names whose first ingress rules hash to
// the same ID.
func collidingNames(t *testing.T) (string, string) {
	seen := map[RuleID]string{}
	for i := range 1 << 20 {
		name := fmt.Sprintf("p-%d", i)
		h := ruleHash(Origin{Kind: policy.KindNetworkPolicy, Namespace: "ns", Name: name, Path: "spec.ingress[0]"})
		if other, ok := seen[h]; ok {
			return other, name
		}
		seen[h] = name
	}
	t.Fatal("no colliding rule hashes among 2^20 names")
	return "", ""
}

// TestAssembleIsBuild: an IR assembled from policies normalized one by
// one equals Build's, colliding rule IDs included, whatever the input
// order; the policies kept are not changed, and a copy made for a
// collision is reused by the next assembly.
func TestAssembleIsBuild(t *testing.T) {
	a, b := collidingNames(t)
	srcs := []*policy.Policy{assembleTestPolicy("web", 80), assembleTestPolicy(b, 443), assembleTestPolicy(a, 8080), assembleTestPolicy("db", 5432)}
	want, err := Build(srcs, "")
	if err != nil {
		t.Fatal(err)
	}
	var one []*Policy
	for _, p := range srcs {
		np, err := BuildPolicy(p, "")
		if err != nil {
			t.Fatal(err)
		}
		one = append(one, np)
	}
	hashes := map[*Rule]RuleID{}
	for _, p := range one {
		for _, r := range p.Rules {
			hashes[r] = r.ID
		}
	}
	var asm Assembler
	got := asm.Assemble(one)
	if !reflect.DeepEqual(got.Policies, want.Policies) || !reflect.DeepEqual(got.rules, want.rules) {
		t.Fatalf("assembled IR differs from Build's:\n got %v\nwant %v", got.Rules(), want.Rules())
	}
	moved := 0
	for _, p := range got.Policies {
		for _, r := range p.Rules {
			if r.ID != ruleHash(r.Origin) {
				moved++
			}
		}
	}
	if moved != 1 {
		t.Fatalf("%d rules moved off their hash, want 1 (names %s and %s collide)", moved, a, b)
	}
	for r, h := range hashes {
		if r.ID != h {
			t.Fatalf("Assemble changed a kept rule's ID from %d to %d", h, r.ID)
		}
	}
	again := asm.Assemble([]*Policy{one[3], one[2], one[1], one[0]})
	for i := range got.Policies {
		if again.Policies[i] != got.Policies[i] {
			t.Fatalf("policy %s is a new pointer in the second assembly", got.Policies[i].Origin.Name)
		}
	}
	// Without the earlier of the two, the other keeps its hash.
	alone := asm.Assemble([]*Policy{one[0], one[1], one[3]})
	want2, err := Build([]*policy.Policy{srcs[0], srcs[1], srcs[3]}, "")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(alone.Policies, want2.Policies) || !reflect.DeepEqual(alone.rules, want2.rules) {
		t.Fatalf("assembled IR differs from Build's:\n got %v\nwant %v", alone.Rules(), want2.Rules())
	}
}
