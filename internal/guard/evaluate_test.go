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
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/palisade-dev/palisade/api/v1alpha1"
	"github.com/palisade-dev/palisade/internal/diag"
	"github.com/palisade-dev/palisade/internal/guard"
	"github.com/palisade-dev/palisade/internal/render"
	"github.com/palisade-dev/palisade/internal/validate"
)

// netpol is a NetworkPolicy selecting app=name that allows ingress from
// peers (entities) to port.
func netpol(ns, name string, port int32, entities ...v1alpha1.Entity) *v1alpha1.NetworkPolicy {
	p := &v1alpha1.NetworkPolicy{
		TypeMeta:   metav1.TypeMeta{APIVersion: "palisade.dev/v1alpha1", Kind: "NetworkPolicy"},
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Annotations: map[string]string{render.AnnotationSource: name + ".cue:3:1"}},
	}
	p.Spec.EndpointSelector = metav1.LabelSelector{MatchLabels: map[string]string{"app": name}}
	if port > 0 {
		p.Spec.Ingress = []v1alpha1.IngressRule{{
			FromEntities: entities,
			ToPorts:      []v1alpha1.PortRule{{Ports: []v1alpha1.PortProtocol{{Port: intstr.FromInt32(port), Protocol: v1alpha1.ProtocolTCP}}}},
		}}
	}
	return p
}

func objs(ps ...*v1alpha1.NetworkPolicy) []runtime.Object {
	out := make([]runtime.Object, len(ps))
	for i, p := range ps {
		out[i] = p
	}
	return out
}

// review runs the in-cluster path and fails the test on an error.
func review(t *testing.T, g *guard.Guards, before, after []runtime.Object, meta guard.Meta, opts guard.Options) *guard.Decision {
	t.Helper()
	_, d, err := guard.ReviewObjects(context.Background(), g, before, after, meta, opts)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func messages(fs []guard.Finding) string {
	var b strings.Builder
	for _, f := range fs {
		fmt.Fprintf(&b, "[%s/%s] %s\n", f.Source, f.Guard, f.Message)
	}
	return b.String()
}

// rego returns a source of one module.
func rego(name, file, src string) guard.Source {
	return guard.Source{Name: name, Modules: map[string][]byte{file: []byte(src)}}
}

// TestCompileErrors: guards that do not compile, or break the rules of a
// guard source, are positioned PAL603 errors and yield no guards; without
// guards every change is denied.
func TestCompileErrors(t *testing.T) {
	for _, tc := range []struct {
		name    string
		sources []guard.Source
		want    string // file:line:col prefix of the first diagnostic
		msg     string
	}{
		{"syntax", []guard.Source{rego("ext", "bad.rego", "package palisade.guards.bad\n\ndeny contains msg if {\n\tmsg := input.x +\n}\n")}, "ext/bad.rego:5:1", "unexpected"},
		{"undefined function", []guard.Source{rego("ext", "bad.rego", "package palisade.guards.bad\n\ndeny contains msg if {\n\tmsg := nope(input.x)\n}\n")}, "ext/bad.rego:4:9", "undefined function nope"},
		{"network is not a built-in", []guard.Source{rego("ext", "bad.rego", "package palisade.guards.bad\n\ndeny contains msg if {\n\tmsg := http.send({\"url\": \"https://example.com\", \"method\": \"get\"})\n}\n")}, "ext/bad.rego:4:9", "undefined function http.send"},
		{"outside palisade.guards", []guard.Source{rego("ext", "x.rego", "package other\n\ndeny contains \"x\" if true\n")}, "ext/x.rego:1:1", "outside palisade.guards"},
		{"params are reserved", []guard.Source{rego("ext", "x.rego", "package palisade.params\n\nadmin_ports := []\n")}, "ext/x.rego:1:1", "reserved"},
		{"package of the built-in set", []guard.Source{guard.Builtin(), rego("ext", "x.rego", "package palisade.guards.admin_ports\n\ndeny contains \"x\" if false\n")}, "ext/x.rego:1:1", `already declared by guard source "builtin"`},
		{"two sources, one name", []guard.Source{rego("ext", "a.rego", "package palisade.guards.a\n\ndeny contains \"a\" if false\n"), rego("ext", "b.rego", "package palisade.guards.b\n\ndeny contains \"b\" if false\n")}, "ext", `two guard sources are named "ext"`},
		{"deny is not a set", []guard.Source{rego("ext", "x.rego", "package palisade.guards.x\n\ndeny := \"no\"\n")}, "ext/x.rego:3:1", "must be a set"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g, diags := guard.Compile(tc.sources...)
			if g != nil {
				t.Fatalf("Compile returned guards for broken input (%v)", diags)
			}
			if !diags.HasErrors() {
				t.Fatal("no error")
			}
			d := diags[0]
			if d.Code != "PAL603" || !strings.HasPrefix(d.String(), tc.want) || !strings.Contains(d.Message, tc.msg) {
				t.Errorf("got %v, want PAL603 at %s containing %q", d, tc.want, tc.msg)
			}
		})
	}
	// Nothing is evaluated: without guards, the change is denied.
	d := review(t, nil, nil, objs(netpol("shop", "a", 80, v1alpha1.EntityCluster)), guard.Meta{}, guard.Options{})
	if d.Allowed || len(d.Errors) != 1 || d.GuardsRevision != "" {
		t.Errorf("nil guards: %s", d.JSON())
	}
}

// TestExternalSources: guards from a directory and from a ConfigMap's
// data apply together with the built-in ones, each finding naming its
// source, and each source's data and parameters reach its guards.
func TestExternalSources(t *testing.T) {
	dir := t.TempDir()
	for name, src := range map[string]string{
		"lib/teams.rego": "package palisade.guards.lib.teams\n\nowner(ns) := data.teams[ns]\n",
		"owners.rego":    "package palisade.guards.owners\n\nimport data.palisade.guards.lib.teams\n\ndeny contains {\"msg\": sprintf(\"%s: namespace %s has no owner\", [c.id, c.namespace]), \"policy\": c.id} if {\n\tsome c in input.changes\n\tnot teams.owner(c.namespace)\n}\n",
		"data.json":      `{"teams": {"shop": "web-team"}}`,
		".git/x.rego":    "this is skipped: hidden directory",
		"README.md":      "not Rego",
	} {
		if err := os.MkdirAll(filepath.Join(dir, filepath.Dir(name)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	fromDir, err := guard.FromDir("security", dir)
	if err != nil {
		t.Fatal(err)
	}
	fromCM, err := guard.FromConfigMap("configmap/platform/guards", map[string]string{
		"names.rego":  "package palisade.guards.names\n\nwarn contains sprintf(\"%s: name longer than %d\", [c.id, data.palisade.params.max_name]) if {\n\tsome c in input.changes\n\tcount(c.name) > data.palisade.params.max_name\n}\n",
		"params.json": `{"max_name": 5}`,
		"README":      "ignored",
	})
	if err != nil {
		t.Fatal(err)
	}
	g := builtin(t, fromDir, fromCM)
	if want := []string{"builtin/admin_ports", "builtin/allow_all", "builtin/default_deny", "builtin/l7_protected", "builtin/max_changes", "builtin/tracing_scope", "configmap/platform/guards/names", "security/owners"}; !slices.Equal(g.Names(), want) {
		t.Errorf("guards = %q, want %q", g.Names(), want)
	}
	d := review(t, g, nil, objs(netpol("shop", "ssh", 22, v1alpha1.EntityWorld), netpol("billing", "billing-api", 443, v1alpha1.EntityCluster)), guard.Meta{}, guard.Options{})
	if d.Allowed || len(d.Errors) > 0 {
		t.Fatalf("decision: %s", d.JSON())
	}
	got := messages(d.Denies) + messages(d.Warnings)
	for _, want := range []string{
		"[builtin/admin_ports] NetworkPolicy/shop/ssh allows ingress from entity world",
		"[security/owners] NetworkPolicy/billing/billing-api: namespace billing has no owner",
		"[configmap/platform/guards/names] NetworkPolicy/billing/billing-api: name longer than 5",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("missing %q in\n%s", want, got)
		}
	}
	if strings.Contains(got, "shop/ssh: namespace") {
		t.Errorf("owners guard ignored data.json:\n%s", got)
	}
	// A module over the size budget of a source is refused, not cut.
	if _, err := guard.FromConfigMap("cm", map[string]string{"big.rego": strings.Repeat("#", 2<<20)}); err == nil {
		t.Error("FromConfigMap accepted a 2 MiB module")
	}
	if _, err := guard.FromConfigMap("cm", map[string]string{"params.json": "[1]"}); err == nil {
		t.Error("FromConfigMap accepted params.json that is not an object")
	}
}

// TestParams: a PolicySet's parameters (Meta.Params) override the
// defaults of the guards, per evaluation.
func TestParams(t *testing.T) {
	g := builtin(t)
	after := objs(netpol("shop", "a", 22, v1alpha1.EntityWorld), netpol("shop", "b", 8443, v1alpha1.EntityWorld))
	def := review(t, g, nil, after, guard.Meta{}, guard.Options{})
	custom := review(t, g, nil, after, guard.Meta{Params: map[string]any{"admin_ports": []any{8443}}}, guard.Options{})
	if len(def.Denies) != 1 || def.Denies[0].Policy != "NetworkPolicy/shop/a" {
		t.Errorf("default admin ports: %s", messages(def.Denies))
	}
	if len(custom.Denies) != 1 || custom.Denies[0].Policy != "NetworkPolicy/shop/b" {
		t.Errorf("admin_ports [8443]: %s", messages(custom.Denies))
	}
	if def.Denies[0].File != "a.cue" || def.Denies[0].Line != 3 {
		t.Errorf("finding at %s:%d, want the policy's source annotation a.cue:3", def.Denies[0].File, def.Denies[0].Line)
	}
}

// TestFailClosed: a guard that errors, returns something other than a set
// of messages, or runs out of time denies the change with the reason
// (PAL604); the other guards still report.
func TestFailClosed(t *testing.T) {
	for _, tc := range []struct {
		name, src, reason string
		timeout           time.Duration
	}{
		{"runtime error", "deny contains x if {\n\tsome c in input.changes\n\tx := to_number(c.name)\n}\n", "evaluation failed", 0},
		{"conflict", "deny contains {\"msg\": 1} if { some c in input.changes }\n", `"msg"`, 0},
		{"not a message", "deny contains 42 if { some c in input.changes }\n", "contains a number", 0},
		{"bad line", "deny contains {\"msg\": \"m\", \"line\": \"x\"} if true\n", `"line" must be a whole number`, 0},
		{"time budget", "deny contains x if {\n\tsome i in numbers.range(1, 100000000)\n\tsome j in numbers.range(1, 100)\n\tx := sprintf(\"%d\", [i * j])\n\tx == \"never\"\n}\n", "did not finish within 200ms", 200 * time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := builtin(t, rego("ext", "bad.rego", "package palisade.guards.bad\n\n"+tc.src))
			d := review(t, g, nil, objs(netpol("shop", "ssh", 22, v1alpha1.EntityWorld)), guard.Meta{}, guard.Options{Timeout: tc.timeout})
			if d.Allowed {
				t.Fatalf("allowed: %s", d.JSON())
			}
			if len(d.Errors) != 1 || d.Errors[0].Guard != "bad" || d.Errors[0].Source != "ext" || !strings.Contains(d.Errors[0].Message, tc.reason) {
				t.Errorf("errors = %s, want one of guard ext/bad containing %q", messages(d.Errors), tc.reason)
			}
			if !slices.ContainsFunc(d.Diagnostics(), func(x diag.Diagnostic) bool { return x.Code == "PAL604" }) {
				t.Errorf("no PAL604 in %v", d.Diagnostics())
			}
			if len(d.Denies) != 1 || d.Denies[0].Guard != "admin_ports" {
				t.Errorf("the other guards did not report: %s", messages(d.Denies))
			}
		})
	}
	// The caller's deadline bounds evaluation as the budget does.
	g := builtin(t, rego("ext", "slow.rego", "package palisade.guards.slow\n\ndeny contains x if {\n\tsome i in numbers.range(1, 100000000)\n\tx := sprintf(\"%d\", [i])\n\tx == \"never\"\n}\n"))
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	_, d, err := guard.ReviewObjects(ctx, g, nil, objs(netpol("shop", "a", 80)), guard.Meta{}, guard.Options{})
	if err != nil || d.Allowed || len(d.Errors) != 1 || !strings.Contains(d.Errors[0].Message, "did not finish") {
		t.Errorf("cancelled context: err %v, decision %s", err, d.JSON())
	}
}

// TestHostileInput: policies written to stall or swamp the guards get a
// decision, not a hang: bounded by the input budget, the facts' work
// budget, the message size limit and the evaluation deadline.
func TestHostileInput(t *testing.T) {
	g := builtin(t, rego("ext", "quote.rego", "package palisade.guards.quote\n\nwarn contains sprintf(\"%s says %s\", [c.id, c.after.metadata.annotations.note]) if {\n\tsome c in input.changes\n\tc.after.metadata.annotations.note\n}\n"))
	huge := strings.Repeat("x", 4<<20)

	t.Run("many policies", func(t *testing.T) {
		var after []runtime.Object
		for i := range 5000 {
			after = append(after, netpol("shop", fmt.Sprintf("p%04d", i), 8080, v1alpha1.EntityCluster))
		}
		d := review(t, g, nil, after, guard.Meta{}, guard.Options{})
		if d.Allowed || d.Summary.Total != 5000 || len(d.Errors) > 0 || len(d.Denies) != 1 || d.Denies[0].Guard != "max_changes" {
			t.Errorf("5000 policies: %s", d.JSON())
		}
	})
	t.Run("huge string", func(t *testing.T) {
		p := netpol("shop", "a", 80)
		p.Annotations["note"] = huge
		d := review(t, g, nil, objs(p), guard.Meta{}, guard.Options{})
		if !d.Allowed || len(d.Warnings) != 1 || len(d.Warnings[0].Message) > 1100 || !strings.HasSuffix(d.Warnings[0].Message, "…") {
			t.Errorf("4 MiB annotation: allowed %v, %d warnings, first %d bytes", d.Allowed, len(d.Warnings), len(d.Warnings[0].Message))
		}
	})
	t.Run("over the input budget", func(t *testing.T) {
		var after []runtime.Object
		for i := range 20 { // 80 MiB
			p := netpol("shop", fmt.Sprintf("p%d", i), 80)
			p.Annotations["note"] = huge
			after = append(after, p)
		}
		d := review(t, g, nil, after, guard.Meta{}, guard.Options{})
		if d.Allowed || len(d.Errors) != 1 || !strings.Contains(d.Errors[0].Message, "input budget") || len(d.Warnings) != 0 {
			t.Errorf("80 MiB: %s", messages(d.Errors))
		}
	})
	t.Run("combinatorial selectors", func(t *testing.T) {
		mk := func(prefix string) *v1alpha1.NetworkPolicy {
			p := netpol("shop", "web", 0)
			var eps []metav1.LabelSelector
			var ports []v1alpha1.PortProtocol
			for i := range 1500 {
				eps = append(eps, metav1.LabelSelector{MatchLabels: map[string]string{"app": fmt.Sprintf("%s%d", prefix, i)}})
			}
			for i := range 10 {
				ports = append(ports, v1alpha1.PortProtocol{Port: intstr.FromInt32(int32(1000 + i)), Protocol: v1alpha1.ProtocolTCP})
			}
			p.Spec.Ingress = []v1alpha1.IngressRule{{FromEndpoints: eps, ToPorts: []v1alpha1.PortRule{{Ports: ports}}}}
			return p
		}
		d := review(t, g, objs(mk("old")), objs(mk("new")), guard.Meta{}, guard.Options{})
		if d.Allowed || len(d.Errors) != 1 || !strings.Contains(d.Errors[0].Message, "too many peer, port and selector combinations") {
			t.Errorf("hostile selectors: %s", messages(d.Errors))
		}
	})
	t.Run("deep nesting", func(t *testing.T) {
		// The API types bound nesting; a loader object's JSON need not.
		deep := strings.Repeat(`{"a":`, 100) + "1" + strings.Repeat("}", 100)
		np := netpol("shop", "deep", 80)
		p := &validate.Policy{Kind: "NetworkPolicy", Namespace: "shop", Name: "deep", JSON: []byte(deep), NetworkPolicy: np}
		d := g.Evaluate(context.Background(), guard.NewChangeSet(nil, []*validate.Policy{p}, guard.Meta{}), guard.Options{})
		if d.Allowed || len(d.Errors) != 1 || !strings.Contains(d.Errors[0].Message, "nests 100 levels deep") {
			t.Errorf("deep nesting: %s", messages(d.Errors))
		}
	})
}

// TestReviewObjectsErrors: what the controller passes that is not a
// policy, or carries a malformed source annotation, is an error.
func TestReviewObjectsErrors(t *testing.T) {
	g := builtin(t)
	bad := netpol("shop", "a", 80)
	bad.Annotations[render.AnnotationSource] = "a.cue:line:1"
	for name, after := range map[string][]runtime.Object{
		"not a policy":   {&metav1.Status{}},
		"bad annotation": {bad},
	} {
		if js, d, err := guard.ReviewObjects(context.Background(), g, nil, after, guard.Meta{}, guard.Options{}); err == nil || js != nil || d != nil {
			t.Errorf("%s: err %v, decision %s", name, err, js)
		}
	}
}

// TestCompileOnce: the same sources give the same compiled guards and
// revision; different data another revision.
func TestCompileOnce(t *testing.T) {
	a, b := builtin(t), builtin(t)
	if a != b {
		t.Error("the same guard revision was compiled twice")
	}
	c := builtin(t, guard.Source{Name: "x", Data: map[string]any{"k": "v"}})
	if c.Revision() == a.Revision() || !strings.HasPrefix(a.Revision(), "sha256:") {
		t.Errorf("revisions %s and %s", a.Revision(), c.Revision())
	}
}
