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

package render

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/palisade-dev/palisade/api/v1alpha1"
	"github.com/palisade-dev/palisade/internal/engine"
	"github.com/palisade-dev/palisade/internal/policy"
	"github.com/palisade-dev/palisade/internal/validate"
)

func examples(t *testing.T) []*validate.Policy {
	t.Helper()
	rep, err := validate.Dir(context.Background(), "../../policies/examples", validate.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if !rep.Valid() || len(rep.Objects) == 0 {
		t.Fatalf("examples: %d objects, diagnostics %v", len(rep.Objects), rep.Diagnostics)
	}
	return rep.Objects
}

var owner = Owner{Namespace: "policies", Name: "prod", Revision: "main@sha1:0123456789abcdef"}

// fromServer decodes an object's JSON into a fresh typed object, as a
// client reading it back from the API server does.
func fromServer(t *testing.T, obj policy.Object) policy.Object {
	t.Helper()
	raw, err := json.Marshal(obj)
	if err != nil {
		t.Fatal(err)
	}
	var out policy.Object
	switch kindOf(obj) {
	case "NetworkPolicy":
		out = &v1alpha1.NetworkPolicy{}
	case "ClusterNetworkPolicy":
		out = &v1alpha1.ClusterNetworkPolicy{}
	case "TracingPolicy":
		out = &v1alpha1.TracingPolicy{}
	case "ClusterTracingPolicy":
		out = &v1alpha1.ClusterTracingPolicy{}
	default:
		t.Fatalf("unexpected kind %q", kindOf(obj))
	}
	if err := json.Unmarshal(raw, out); err != nil {
		t.Fatal(err)
	}
	// Server-set fields the round trip must ignore, and what a typed
	// client leaves empty.
	out.GetObjectKind().SetGroupVersionKind(schema.GroupVersionKind{})
	out.SetResourceVersion("42")
	out.SetUID("0b5e")
	return out
}

func TestObjectsCarryOwnerAndSource(t *testing.T) {
	policies := examples(t)
	objs, err := Objects(policies, owner)
	if err != nil {
		t.Fatal(err)
	}
	if len(objs) != len(policies) {
		t.Fatalf("%d objects from %d policies", len(objs), len(policies))
	}
	for i, o := range objs {
		id := kindOf(o) + "/" + o.GetNamespace() + "/" + o.GetName()
		if o.GetObjectKind().GroupVersionKind().GroupVersion() != v1alpha1.GroupVersion {
			t.Errorf("%s: apiVersion %v", id, o.GetObjectKind().GroupVersionKind())
		}
		if l := o.GetLabels(); l[LabelPolicySetName] != "prod" || l[LabelPolicySetNamespace] != "policies" {
			t.Errorf("%s: labels %v", id, l)
		}
		a := o.GetAnnotations()
		if a[AnnotationRevision] != owner.Revision || a[AnnotationCUEPath] == "" {
			t.Errorf("%s: annotations %v", id, a)
		}
		if _, err := parsePos(a[AnnotationSource]); err != nil || !strings.HasSuffix(strings.SplitN(a[AnnotationSource], ":", 2)[0], ".cue") {
			t.Errorf("%s: source %q (%v)", id, a[AnnotationSource], err)
		}
		if policy.Namespaced(kindOf(o)) != (o.GetNamespace() != "") {
			t.Errorf("%s: namespace %q for kind %s", id, o.GetNamespace(), kindOf(o))
		}
		if i > 0 {
			p := objs[i-1]
			if kindOf(p) > kindOf(o) || kindOf(p) == kindOf(o) && p.GetNamespace()+"/"+p.GetName() > o.GetNamespace()+"/"+o.GetName() {
				t.Errorf("objects not sorted: %s before %s", p.GetName(), o.GetName())
			}
		}
	}
}

// TestRoundTripKeepsMeaning: policies rendered, read back as the API server
// returns them and turned into policies again build the same IR: the same
// rule IDs with the same meaning, and the same policy positions.
func TestRoundTripKeepsMeaning(t *testing.T) {
	policies := examples(t)
	objs, err := Objects(policies, owner)
	if err != nil {
		t.Fatal(err)
	}
	var back []*validate.Policy
	for _, o := range objs {
		p, err := Policy(fromServer(t, o))
		if err != nil {
			t.Fatal(err)
		}
		back = append(back, p)
	}
	want, err := engine.Build(policies, owner.Revision)
	if err != nil {
		t.Fatal(err)
	}
	got, err := engine.Build(back, owner.Revision)
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Policies) != len(want.Policies) || len(want.Policies) == 0 {
		t.Fatalf("%d policies back, want %d", len(got.Policies), len(want.Policies))
	}
	for i, w := range want.Policies {
		g := got.Policies[i]
		if g.Origin != w.Origin {
			t.Errorf("policy origin %+v, want %+v", g.Origin, w.Origin)
		}
		if g.Audit != w.Audit || g.DefaultDeny != w.DefaultDeny || !reflect.DeepEqual(g.Subject, w.Subject) || len(g.Rules) != len(w.Rules) {
			t.Errorf("%s: policy differs after the round trip", w.Origin.Policy())
			continue
		}
		for j, wr := range w.Rules {
			gr := *g.Rules[j]
			wr := *wr
			// In the cluster a rule keeps its own position
			// (AnnotationRuleSources), so flows name the rule's line.
			if gr.Origin.Position() != wr.Origin.Position() {
				t.Errorf("%s %s: position %s, want %s", w.Origin.Policy(), wr.Origin.Path, gr.Origin.Position(), wr.Origin.Position())
			}
			if !reflect.DeepEqual(gr, wr) {
				t.Errorf("%s %s: rule differs after the round trip:\n got  %+v\n want %+v", w.Origin.Policy(), wr.Origin.Path, gr, wr)
			}
		}
	}
}

func TestNamespaceDefaultsToThePolicySet(t *testing.T) {
	p := examples(t)[0]
	for _, q := range examples(t) {
		if q.NetworkPolicy != nil {
			p = q
			break
		}
	}
	if p.NetworkPolicy == nil {
		t.Fatal("no NetworkPolicy in the examples")
	}
	p.NetworkPolicy.Namespace = ""
	objs, err := Objects([]*validate.Policy{p}, owner)
	if err != nil {
		t.Fatal(err)
	}
	if objs[0].GetNamespace() != "policies" {
		t.Errorf("namespace %q, want the PolicySet's", objs[0].GetNamespace())
	}
}

func TestErrors(t *testing.T) {
	policies := examples(t)
	var np, cnp *validate.Policy
	for _, p := range policies {
		switch {
		case np == nil && p.NetworkPolicy != nil:
			np = p
		case cnp == nil && p.ClusterNetworkPolicy != nil:
			cnp = p
		}
	}
	if np == nil || cnp == nil {
		t.Fatal("the examples need a NetworkPolicy and a ClusterNetworkPolicy")
	}
	if _, err := Objects([]*validate.Policy{np, np}, owner); err == nil || !strings.Contains(err.Error(), "is also declared at "+np.Pos.String()) {
		t.Errorf("duplicate: %v", err)
	}
	bad := *cnp
	bad.ClusterNetworkPolicy = cnp.ClusterNetworkPolicy.DeepCopy()
	bad.ClusterNetworkPolicy.Namespace = "x"
	if _, err := Objects([]*validate.Policy{&bad}, owner); err == nil || !strings.Contains(err.Error(), "cluster-scoped but sets namespace") || !strings.HasPrefix(err.Error(), cnp.Pos.String()) {
		t.Errorf("cluster-scoped with a namespace: %v", err)
	}
	objs, err := Objects([]*validate.Policy{np}, owner)
	if err != nil {
		t.Fatal(err)
	}
	o := fromServer(t, objs[0])
	o.GetAnnotations()[AnnotationSource] = "no-position"
	o.SetAnnotations(o.GetAnnotations())
	if _, err := Policy(o); err == nil || !strings.Contains(err.Error(), AnnotationSource) {
		t.Errorf("bad source annotation: %v", err)
	}
}

// TestTracingRuleSources: a tracing policy's hooks and selectors carry
// their lines, and keep them after the round trip through the API server,
// so that tracing events name the line of the selector that matched.
func TestTracingRuleSources(t *testing.T) {
	dir := t.TempDir()
	src := `package policies

tracingPolicy: shadow: {
	apiVersion: "palisade.dev/v1alpha1"
	kind:       "TracingPolicy"
	metadata: name: "shadow"
	spec: {
		podSelector: matchLabels: app: "web"
		kprobes: [{
			call: "security_file_permission"
			args: [{index: 0, type: "file"}]
			selectors: [{
				matchArgs: [{index: 0, operator: "Equal", values: ["/etc/shadow"]}]
				matchActions: [{action: "Sigkill"}]
			}, {
				matchArgs: [{index: 0, operator: "Prefix", values: ["/etc/"]}]
			}]
		}]
		uprobes: [{
			path: "/bin/bash"
			symbols: ["readline",
				"main"]
		}]
	}
}
`
	if err := os.WriteFile(filepath.Join(dir, "shadow.cue"), []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	rep, err := validate.Dir(context.Background(), dir, validate.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if !rep.Valid() || len(rep.Objects) != 1 {
		t.Fatalf("%d objects, diagnostics %v", len(rep.Objects), rep.Diagnostics)
	}
	objs, err := Objects(rep.Objects, owner)
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]string
	if err := json.Unmarshal([]byte(objs[0].GetAnnotations()[AnnotationRuleSources]), &got); err != nil {
		t.Fatalf("annotation %s: %v", AnnotationRuleSources, err)
	}
	want := map[string]string{
		"spec.kprobes[0]":              "shadow.cue:9:13",
		"spec.kprobes[0].selectors[0]": "shadow.cue:12:16",
		"spec.kprobes[0].selectors[1]": "shadow.cue:15:7",
		"spec.uprobes[0]":              "shadow.cue:19:13",
		"spec.uprobes[0].symbols[0]":   "shadow.cue:21:14",
		"spec.uprobes[0].symbols[1]":   "shadow.cue:22:5",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("rule sources:\n got %v\nwant %v", got, want)
	}
	back, err := Policy(fromServer(t, objs[0]))
	if err != nil {
		t.Fatal(err)
	}
	for path, pos := range want {
		if g := posString(back.PosOf(path)); g != pos {
			t.Errorf("after the round trip, %s is at %s, want %s", path, g, pos)
		}
	}
}
