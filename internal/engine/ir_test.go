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
	"context"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/palisade-dev/palisade/api/v1alpha1"
	"github.com/palisade-dev/palisade/internal/validate"
)

// buildFiles writes a policy repository, validates it and builds the IR.
func buildFiles(t *testing.T, files map[string]string) *IR {
	t.Helper()
	dir := t.TempDir()
	for name, src := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	rep, err := validate.Dir(context.Background(), dir, validate.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if !rep.Valid() {
		t.Fatalf("invalid test policies: %v", rep.Diagnostics)
	}
	ir, err := Build(rep.Objects, "rev1")
	if err != nil {
		t.Fatal(err)
	}
	return ir
}

const irPolicies = `package p

import "palisade.dev/schema"

np: a: schema.#NetworkPolicy & {
	metadata: {name: "a", namespace: "shop"}
	spec: {
		endpointSelector: matchLabels: app: "api"
		ingress: [
			{fromEndpoints: [{matchLabels: app: "web"}], toPorts: [{ports: [{port: 8080}]}]},
			{toPorts: [{ports: [{port: 1, endPort: 65535, protocol: "UDP"}, {port: 0, protocol: "TCP"}, {port: "http", protocol: "TCP"}]}]},
			{},
			{fromEntities: ["world"], icmps: [{fields: [{type: 8}, {family: "IPv6", type: "EchoRequest"}]}]},
		]
		egressDeny: [{toCIDRSet: [{cidr: "10.0.0.0/8", except: ["10.1.0.0/16"]}]}]
	}
}
np: b: schema.#NetworkPolicy & {
	metadata: {name: "b", namespace: "shop"}
	spec: {
		mode: "audit"
		endpointSelector: {}
		enableDefaultDeny: egress: false
		egress: [{toEntities: ["all"]}]
	}
}
`

func TestBuild(t *testing.T) {
	ir := buildFiles(t, map[string]string{"p.cue": irPolicies})
	if len(ir.Policies) != 2 {
		t.Fatalf("%d policies, want 2", len(ir.Policies))
	}
	a, b := ir.Policies[0], ir.Policies[1]
	if a.Origin.Name != "a" || b.Origin.Name != "b" {
		t.Fatalf("policies not sorted by name: %s, %s", a.Origin.Name, b.Origin.Name)
	}
	// a has ingress rules and egress deny rules: default deny both ways.
	if a.DefaultDeny != [2]bool{true, true} || a.Audit {
		t.Errorf("policy a: default deny %v audit %v", a.DefaultDeny, a.Audit)
	}
	// b turns egress default deny off explicitly and has no ingress.
	if b.DefaultDeny != [2]bool{false, false} || !b.Audit {
		t.Errorf("policy b: default deny %v audit %v", b.DefaultDeny, b.Audit)
	}
	// The empty rule ingress[2] matches nothing and is left out.
	var paths []string
	for _, r := range a.Rules {
		paths = append(paths, r.Origin.Path)
	}
	if want := []string{"spec.ingress[0]", "spec.ingress[1]", "spec.ingress[3]", "spec.egressDeny[0]"}; !slices.Equal(paths, want) {
		t.Fatalf("rules %v, want %v", paths, want)
	}
	r0, r1, r3, deny := a.Rules[0], a.Rules[1], a.Rules[2], a.Rules[3]
	// Protocol omitted: TCP, UDP and SCTP.
	if len(r0.L4) != 3 || r0.L4[0].Proto != ProtoTCP || r0.L4[1].Proto != ProtoUDP || r0.L4[2].Proto != ProtoSCTP || r0.L4[0].Lo != 8080 || r0.L4[0].Hi != 8080 {
		t.Errorf("ingress[0] L4 %+v", r0.L4)
	}
	// The peer selector is scoped to the policy's namespace.
	if got := r0.Peer.Endpoints[0].String(); got != "app=web, io.kubernetes.pod.namespace=shop" {
		t.Errorf("peer selector %q", got)
	}
	// No peer field, ports given: every peer; a range, port 0 and a name.
	if !r1.Peer.Any {
		t.Error("ingress[1] has no peer field and must match every peer")
	}
	want := []L4{{Proto: ProtoUDP, Lo: 1, Hi: 65535}, {Proto: ProtoTCP, Lo: 0, Hi: 65535}, {Proto: ProtoTCP, Name: "http"}}
	if len(r1.L4) != 3 || r1.L4[0] != want[0] || r1.L4[1] != want[1] || r1.L4[2].Name != "http" || r1.L4[2].Proto != ProtoTCP {
		t.Errorf("ingress[1] L4 %+v, want %+v", r1.L4, want)
	}
	if len(r3.L4) != 2 || r3.L4[0] != (L4{Proto: ProtoICMP, Lo: 8, Hi: 8}) || r3.L4[1] != (L4{Proto: ProtoICMPv6, Lo: 128, Hi: 128}) {
		t.Errorf("ingress[3] ICMP %+v", r3.L4)
	}
	if deny.Action != Deny || deny.Direction != Egress || len(deny.Peer.CIDRs) != 1 || len(deny.Peer.CIDRs[0].Except) != 1 || deny.L4 != nil {
		t.Errorf("egressDeny[0] %+v", deny)
	}
	// Origins lead back to the source.
	if r0.Origin.File != "p.cue" || r0.Origin.Line != 10 || r0.Origin.Revision != "rev1" {
		t.Errorf("origin %+v", r0.Origin)
	}
	for _, r := range ir.Rules() {
		if got, ok := ir.Rule(r.ID); !ok || got != r || r.ID == 0 {
			t.Errorf("rule %s: id %d not indexed", r.Origin.Path, r.ID)
		}
	}
}

func TestRuleIDsAreStable(t *testing.T) {
	one := buildFiles(t, map[string]string{"p.cue": irPolicies})
	// The same policies split over two files in another order, plus an
	// unrelated policy: every rule keeps its ID.
	two := buildFiles(t, map[string]string{
		"z.cue": irPolicies,
		"a.cue": `package p

import "palisade.dev/schema"

np: c: schema.#NetworkPolicy & {
	metadata: {name: "c", namespace: "other"}
	spec: {endpointSelector: {}, ingress: [{fromEntities: ["cluster"]}]}
}
`,
	})
	ids := map[string]RuleID{}
	for _, r := range two.Rules() {
		ids[r.Origin.Policy()+" "+r.Origin.Path] = r.ID
	}
	for _, r := range one.Rules() {
		if got := ids[r.Origin.Policy()+" "+r.Origin.Path]; got != r.ID {
			t.Errorf("%s %s: id %d, then %d", r.Origin.Policy(), r.Origin.Path, r.ID, got)
		}
	}
}

func TestL7Matching(t *testing.T) {
	rules := &v1alpha1.L7Rules{HTTP: []v1alpha1.HTTPRule{
		{Method: "GET", Path: "/api/v1/.*", Host: "*.shop.svc"},
		{Method: "POST", Path: "/cart", Headers: []v1alpha1.HTTPHeader{"X-CSRF-Token", "X-Env: prod"}},
	}}
	tests := []struct {
		req  HTTPRequest
		want bool
	}{
		{HTTPRequest{Method: "GET", Path: "/api/v1/items", Host: "api.shop.svc"}, true},
		{HTTPRequest{Method: "GET", Path: "/api/v1/items", Host: "shop.svc"}, false},
		{HTTPRequest{Method: "GET", Path: "/admin/api/v1/", Host: "api.shop.svc"}, false}, // anchored
		{HTTPRequest{Method: "HEAD", Path: "/api/v1/items", Host: "api.shop.svc"}, false},
		{HTTPRequest{Method: "POST", Path: "/cart", Headers: map[string]string{"x-csrf-token": "t", "X-Env": "prod"}}, true},
		{HTTPRequest{Method: "POST", Path: "/cart", Headers: map[string]string{"X-CSRF-Token": "t", "X-Env": "dev"}}, false},
		{HTTPRequest{Method: "POST", Path: "/cart", Headers: map[string]string{"X-Env": "prod"}}, false},
	}
	for _, tc := range tests {
		if got := MatchL7(rules, &Request{HTTP: &tc.req}); got != tc.want {
			t.Errorf("%+v: %v, want %v", tc.req, got, tc.want)
		}
	}
	// A DNS request never matches HTTP rules.
	if MatchL7(rules, &Request{DNS: &DNSRequest{Name: "x"}}) {
		t.Error("a DNS request matched HTTP rules")
	}
	kafka := &v1alpha1.L7Rules{Kafka: []v1alpha1.KafkaRule{{Role: "produce", Topic: "orders"}, {APIKey: "fetch", Topic: "orders", APIVersion: "11"}}}
	for _, tc := range []struct {
		req  KafkaRequest
		want bool
	}{
		{KafkaRequest{APIKey: "produce", Topic: "orders"}, true},
		{KafkaRequest{APIKey: "metadata", Topic: "orders"}, true}, // part of the produce role
		{KafkaRequest{APIKey: "produce", Topic: "payments"}, false},
		{KafkaRequest{APIKey: "fetch", Topic: "orders", APIVersion: 11}, true},
		{KafkaRequest{APIKey: "fetch", Topic: "orders", APIVersion: 12}, false},
	} {
		if got := MatchL7(kafka, &Request{Kafka: &tc.req}); got != tc.want {
			t.Errorf("%+v: %v, want %v", tc.req, got, tc.want)
		}
	}
}
