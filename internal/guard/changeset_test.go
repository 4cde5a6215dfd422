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

package guard_test

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/palisade-dev/palisade/api/v1alpha1"
	"github.com/palisade-dev/palisade/internal/guard"
	"github.com/palisade-dev/palisade/internal/render"
	"github.com/palisade-dev/palisade/internal/validate"
)

// TestChangeSet builds the change set of a CUE repository whose commit
// creates, updates and deletes a policy and leaves one alone, and checks
// the document field by field as docs/guards.md describes it.
func TestChangeSet(t *testing.T) {
	base := load(t, map[string]string{
		"keep.cue": np("keep", "shop", "keep", `endpointSelector: matchLabels: app: "keep"
		ingress: [{fromEndpoints: [{matchLabels: app: "x"}]}]`),
		"web.cue": np("web", "shop", "web", `endpointSelector: matchLabels: app: "web"
		ingress: [{
			fromEndpoints: [{matchLabels: app: "fe"}]
			toPorts: [{ports: [{port: 8080, protocol: "TCP"}]}]
		}]`),
		"old.cue": np("old", "shop", "old", `endpointSelector: matchLabels: app: "old"
		ingress: [{fromEndpoints: [{matchLabels: app: "x"}]}]`),
	})
	head := load(t, map[string]string{
		"keep.cue": np("keep", "shop", "keep", `endpointSelector: matchLabels: app: "keep"
		ingress: [{fromEndpoints: [{matchLabels: app: "x"}]}]`),
		"web.cue": np("web", "shop", "web", `endpointSelector: matchLabels: app: "web"
		ingress: [{
			fromEndpoints: [{}]
			toPorts: [{ports: [{port: 8080, protocol: "TCP"}]}]
		}, {
			fromEntities: ["world"]
			toPorts: [{ports: [{port: 22, protocol: "TCP"}]}]
		}]`),
		"new.cue": np("new", "shop", "new", `endpointSelector: {}
		ingress: []
		enableDefaultDeny: ingress: true`),
	})
	meta := guard.Meta{
		Revision: "r2", PreviousRevision: "r1",
		Author:    guard.Author{Name: "Ann", Email: "ann@example.com"},
		PolicySet: guard.PolicySetRef{Namespace: "shop", Name: "main"},
		Overrides: []string{"b", "a", "b"},
	}
	cs := guard.NewChangeSet(guard.Canonical(base, meta), guard.Canonical(head, meta), meta)

	var doc map[string]any
	if err := json.Unmarshal(cs.JSON(), &doc); err != nil {
		t.Fatal(err)
	}
	for k, want := range map[string]any{"apiVersion": "guard.palisade.dev/v1", "kind": "ChangeSet", "revision": "r2", "previous_revision": "r1"} {
		if doc[k] != want {
			t.Errorf("%s = %v, want %v", k, doc[k], want)
		}
	}
	if got := cs.Overrides; !slices.Equal(got, []string{"a", "b"}) {
		t.Errorf("overrides = %v, want sorted and unique [a b]", got)
	}
	if cs.Summary != (guard.Summary{Create: 1, Update: 1, Delete: 1, Total: 3}) {
		t.Errorf("summary = %+v", cs.Summary)
	}
	var ids []string
	for _, c := range cs.Changes {
		ids = append(ids, c.Op+" "+c.ID)
	}
	if want := []string{"create NetworkPolicy/shop/new", "delete NetworkPolicy/shop/old", "update NetworkPolicy/shop/web"}; !slices.Equal(ids, want) {
		t.Fatalf("changes = %q, want %q (sorted by id, unchanged keep left out)", ids, want)
	}

	created := change(t, cs, "NetworkPolicy/shop/new")
	if created.Before != nil || created.After == nil || created.File != "new.cue" || created.Line == 0 {
		t.Errorf("create: before=%s after-nil=%v at %s:%d", created.Before, created.After == nil, created.File, created.Line)
	}
	if !created.Facts.IsDefaultDeny || created.Facts.WasDefaultDeny || !created.Facts.SelectsAll {
		t.Errorf("create: facts %+v, want a new default deny selecting all", created.Facts)
	}
	deleted := change(t, cs, "NetworkPolicy/shop/old")
	if deleted.Before == nil || deleted.After != nil || deleted.File != "old.cue" {
		t.Errorf("delete: before-nil=%v after=%s at %s", deleted.Before == nil, deleted.After, deleted.File)
	}

	web := change(t, cs, "NetworkPolicy/shop/web")
	f := web.Facts
	if !slices.Equal(f.NewIngressEntities, []string{"world"}) {
		t.Errorf("new_ingress_entities = %v, want [world]", f.NewIngressEntities)
	}
	var world []guard.PortFact
	for _, p := range f.NewPorts {
		if p.World {
			world = append(world, p)
		}
	}
	if len(world) != 1 || world[0].Port != 22 || world[0].EndPort != 22 || world[0].Protocol != "TCP" || world[0].Peer != (guard.Peer{Kind: "entity", Value: "world"}) || world[0].Path != "spec.ingress[1]" {
		t.Errorf("new world ports = %+v, want 22/TCP from entity world at spec.ingress[1]", world)
	}
	if len(f.WidenedSelectors) != 1 || f.WidenedSelectors[0].Path != "spec.ingress[0].fromEndpoints[0]" || len(f.WidenedSelectors[0].After) != 0 {
		t.Errorf("widened_selectors = %+v, want spec.ingress[0].fromEndpoints[0] widened to {}", f.WidenedSelectors)
	}
	if len(f.AllowAll) != 1 || f.AllowAll[0].Reason != "empty-selector" || !f.AllowAll[0].New {
		t.Errorf("allow_all = %+v, want one new empty-selector", f.AllowAll)
	}
	var before, after map[string]any
	if err := json.Unmarshal(web.Before, &before); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(web.After, &after); err != nil {
		t.Fatal(err)
	}
	if before["kind"] != "NetworkPolicy" || after["apiVersion"] != "palisade.dev/v1alpha1" {
		t.Errorf("before/after are not the policy objects: %s / %s", web.Before, web.After)
	}

	ns := cs.Namespaces["shop"]
	if ns == nil || ns.PoliciesBefore != 3 || ns.PoliciesAfter != 3 || ns.DefaultDenyBefore.Ingress || !ns.DefaultDenyAfter.Ingress {
		t.Errorf("namespaces[shop] = %+v", ns)
	}
}

// TestChangeSetNamespaceDefault: a namespaced policy that sets no
// namespace is the PolicySet's, as the controller applies it.
func TestChangeSetNamespaceDefault(t *testing.T) {
	head := load(t, map[string]string{"a.cue": `package policies

a: {
	apiVersion: "palisade.dev/v1alpha1"
	kind:       "NetworkPolicy"
	metadata: name: "a"
	spec: endpointSelector: matchLabels: app: "a"
}
`})
	meta := guard.Meta{PolicySet: guard.PolicySetRef{Namespace: "team", Name: "main"}}
	cs := guard.NewChangeSet(nil, guard.Canonical(head, meta), meta)
	c := change(t, cs, "NetworkPolicy/team/a")
	var obj struct {
		Metadata struct{ Namespace string } `json:"metadata"`
	}
	if err := json.Unmarshal(c.After, &obj); err != nil || obj.Metadata.Namespace != "team" {
		t.Errorf("after = %s, want metadata.namespace team", c.After)
	}
}

// TestReviewChangeSetMatchesCanonical: the review paths (Review,
// ReviewObjects) tell changed policies from unchanged ones without
// encoding the unchanged, and must reach the document NewChangeSet builds
// from every policy's canonical JSON: typed objects that differ only where
// JSON does not show (nil against empty), or only in render's labels and
// annotations, are unchanged; a real difference is an update.
func TestReviewChangeSetMatchesCanonical(t *testing.T) {
	base := load(t, map[string]string{
		"a.cue": np("a", "shop", "a", `endpointSelector: matchLabels: app: "a"`),
		"b.cue": np("b", "shop", "b", `endpointSelector: matchLabels: app: "b"`),
		"c.cue": np("c", "shop", "c", `endpointSelector: matchLabels: app: "c"`),
		"d.cue": np("d", "shop", "d", `endpointSelector: matchLabels: app: "d"`),
		"e.cue": np("e", "shop", "e", `endpointSelector: matchLabels: app: "e"`),
	})
	meta := guard.Meta{PolicySet: guard.PolicySetRef{Namespace: "shop", Name: "main"}}
	var before, after []runtime.Object
	for _, p := range base {
		before = append(before, withRender(p.NetworkPolicy.DeepCopy(), "r1"))
		np := withRender(p.NetworkPolicy.DeepCopy(), "r2")
		switch p.Name {
		case "a": // nil against empty: the same JSON
			np.Spec.EndpointSelector.MatchExpressions = []metav1.LabelSelectorRequirement{}
		case "b": // a new label: an update
			np.Labels = map[string]string{"team": "b"}
		case "c": // an annotation of the user's: an update
			np.Annotations["owner"] = "c"
		case "d": // a spec change: an update
			np.Spec.EndpointSelector.MatchLabels["tier"] = "d"
		}
		after = append(after, np)
	}
	cs, err := guard.ObjectsChangeSet(before, after, meta)
	if err != nil {
		t.Fatal(err)
	}
	if cs.Summary != (guard.Summary{Update: 3, Total: 3}) || cs.Changes[0].ID != "NetworkPolicy/shop/b" || cs.Changes[1].ID != "NetworkPolicy/shop/c" || cs.Changes[2].ID != "NetworkPolicy/shop/d" {
		t.Fatalf("change set:\n%s", cs.JSON())
	}
	var bp, ap []*validate.Policy
	for i := range before {
		bp, ap = append(bp, policyFromObject(t, before[i])), append(ap, policyFromObject(t, after[i]))
	}
	want := guard.NewChangeSet(guard.Canonical(bp, meta), guard.Canonical(ap, meta), meta)
	if got := cs.JSON(); string(got) != string(want.JSON()) {
		t.Errorf("review path:\n%s\ncanonical path:\n%s", got, want.JSON())
	}
	for _, k := range []string{render.LabelPolicySetName, render.LabelPolicySetNamespace, render.AnnotationSource, render.AnnotationCUEPath, render.AnnotationRevision} {
		if strings.Contains(string(want.JSON()), `"`+k+`"`) {
			t.Errorf("render's %s reaches the guards:\n%s", k, want.JSON())
		}
	}
}

// withRender stamps p as render.Objects does for PolicySet shop/main at
// revision.
func withRender(p *v1alpha1.NetworkPolicy, revision string) *v1alpha1.NetworkPolicy {
	p.Labels = map[string]string{render.LabelPolicySetName: "main", render.LabelPolicySetNamespace: "shop"}
	p.Annotations = map[string]string{render.AnnotationSource: p.Name + ".cue:3:1", render.AnnotationCUEPath: p.Name, render.AnnotationRevision: revision}
	return p
}

func policyFromObject(t *testing.T, o runtime.Object) *validate.Policy {
	t.Helper()
	p, err := render.Policy(o.(*v1alpha1.NetworkPolicy))
	if err != nil {
		t.Fatal(err)
	}
	return p
}
