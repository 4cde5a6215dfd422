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
	"bytes"
	"context"
	"slices"
	"testing"

	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/palisade-dev/palisade/api/v1alpha1"
	"github.com/palisade-dev/palisade/internal/guard"
	"github.com/palisade-dev/palisade/internal/validate"
)

// TestPerChangeGuards: a guard is evaluated per change only when its
// source shows that its findings are a union over changes; any other use
// of the change list, or of the input as a whole, keeps it whole.
func TestPerChangeGuards(t *testing.T) {
	g := builtin(t)
	per, keys := guard.PerChange(g)
	for name, ok := range per {
		if !ok {
			t.Errorf("built-in guard %s is not evaluated per change", name)
		}
	}
	if want := []string{"namespaces", "overrides", "summary"}; !slices.Equal(keys, want) {
		t.Errorf("other input keys %v, want %v", keys, want)
	}
	for _, tc := range []struct {
		name, src string
		lib       string
		want      bool
	}{
		{"fine", "deny contains c.id if {\n\tsome c in input.changes\n\tc.op == \"create\"\n\tnot \"x\" in input.overrides\n}\n", "", true},
		{"nochange", "deny contains \"many\" if {\n\tinput.summary.total > 3\n}\n", "", true},
		{"count", "deny contains \"many\" if {\n\tcount(input.changes) > 1\n}\n", "", false},
		{"pairs", "deny contains a.id if {\n\tsome a in input.changes\n\tsome b in input.changes\n\ta.id != b.id\n}\n", "", false},
		{"helper", "ids := {c.id | some c in input.changes}\n\ndeny contains x if {\n\tsome x in ids\n}\n", "", false},
		{"whole", "deny contains x if {\n\tsome c in input.changes\n\tx := json.marshal(input)\n\tc.op == \"never\"\n}\n", "", false},
		{"index", "deny contains c.id if {\n\tsome i, c in input.changes\n\ti > 0\n}\n", "", false},
		{"computed", "deny contains x if {\n\tsome c in input.changes\n\tsome k\n\tx := input[k]\n\tc.op == \"never\"\n}\n", "", false},
		{"lib", "import data.palisade.guards.mylib\n\ndeny contains c.id if {\n\tsome c in input.changes\n\tmylib.n > 1\n}\n", "package palisade.guards.mylib\n\nn := count(input.changes)\n", false},
		{"purelib", "import data.palisade.guards.mylib\n\ndeny contains c.id if {\n\tsome c in input.changes\n\tmylib.n > 1\n}\n", "package palisade.guards.mylib\n\nn := 2\n", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src := guard.Source{Name: "ext", Modules: map[string][]byte{"g.rego": []byte("package palisade.guards." + tc.name + "\n\n" + tc.src)}}
			if tc.lib != "" {
				src.Modules["lib.rego"] = []byte(tc.lib)
			}
			g := builtin(t, src)
			per, _ := guard.PerChange(g)
			if per[tc.name] != tc.want {
				t.Errorf("per change: %v, want %v", per[tc.name], tc.want)
			}
			for name, ok := range per {
				if name != tc.name && !ok {
					t.Errorf("built-in guard %s no longer per change beside %s", name, tc.name)
				}
			}
		})
	}
}

// TestPerChangeSameDecision: a sequence of reviews, each sharing changes
// with the ones before (so findings come from the per-change memo) and
// some with other overrides or parameters, give the same decision bytes
// per change as on the whole change set, with the built-in guards (which
// find something here), a per-change extension guard and a whole one.
func TestPerChangeSameDecision(t *testing.T) {
	base := benchPolicies(t)[:200]
	g := builtin(t,
		guard.Source{Name: "ext", Modules: map[string][]byte{
			"pc.rego":    []byte("package palisade.guards.pc\n\nwarn contains sprintf(\"%s is %s\", [c.id, c.op]) if {\n\tsome c in input.changes\n\tc.op != \"update\"\n}\n\nwarn contains \"global\" if {\n\tinput.summary.total > 20\n}\n"),
			"whole.rego": []byte("package palisade.guards.whole\n\nwarn contains sprintf(\"%d changes\", [count(input.changes)]) if {\n\tcount(input.changes) > 0\n}\n"),
		}})
	open := func(p *validate.Policy, port int32, world bool) *validate.Policy {
		q := widenPort(t, p, port)
		if world {
			q.NetworkPolicy.Spec.Ingress[len(q.NetworkPolicy.Spec.Ingress)-1].FromEntities = []v1alpha1.Entity{v1alpha1.EntityWorld}
			q.NetworkPolicy.Spec.Ingress[len(q.NetworkPolicy.Spec.Ingress)-1].ToPorts[0].Ports[0].Port = intstr.FromInt32(port)
		}
		return q
	}
	head := slices.Clone(base)
	for i := range 60 {
		head[i] = open(base[i], 22+int32(i%3), i%2 == 0) // admin ports from the world, some
	}
	head = slices.Delete(head, 60, 70) // deletes
	params := map[string]any{"admin_ports": []any{23, 8443}}
	steps := []struct {
		name   string
		change func()
		meta   guard.Meta
	}{
		{"first", func() {}, guard.Meta{Revision: "r1"}},
		{"same again", func() {}, guard.Meta{Revision: "r2"}},
		{"one more", func() { head[100] = open(base[100], 22, true) }, guard.Meta{Revision: "r3"}},
		{"one fewer", func() { head[0] = base[0] }, guard.Meta{Revision: "r4"}},
		{"overrides", func() {}, guard.Meta{Revision: "r5", Overrides: []string{"max-changes", "default-deny"}}},
		{"params", func() {}, guard.Meta{Revision: "r6", Params: params}},
		{"params, one more", func() { head[101] = open(base[101], 8443, true) }, guard.Meta{Revision: "r7", Params: params}},
		{"back", func() {}, guard.Meta{Revision: "r8"}},
		{"none", func() { head = slices.Clone(base) }, guard.Meta{Revision: "r9"}},
	}
	for _, st := range steps {
		st.change()
		st.meta.PreviousRevision = "base"
		cs := guard.NewChangeSet(base, head, st.meta)
		got := g.Evaluate(context.Background(), cs, guard.Options{})
		want := g.EvaluateWhole(cs)
		if !bytes.Equal(got.JSON(), want.JSON()) {
			t.Errorf("%s: per change:\n%s\nwhole:\n%s", st.name, got.JSON(), want.JSON())
		}
		if st.name == "first" && (len(want.Denies) == 0 || len(want.Warnings) == 0) {
			t.Fatalf("the review finds nothing to compare: %s", want.JSON())
		}
		t.Logf("%s: %d denies, %d warnings, %d errors", st.name, len(got.Denies), len(got.Warnings), len(got.Errors))
	}
}

// TestPerChangeForgets: change sets that share no changes, large then
// small, make the change numbers and the memos drop the changes no longer
// reviewed; a change seen again after that is judged anew, with the same
// decision as on the whole change set.
func TestPerChangeForgets(t *testing.T) {
	base := benchPolicies(t)[:300]
	g := builtin(t)
	head := func(from, to int, port int32) []*validate.Policy {
		h := slices.Clone(base)
		for i := from; i < to; i++ {
			q := widenPort(t, base[i], port)
			if i%2 == 0 {
				q.NetworkPolicy.Spec.Ingress[len(q.NetworkPolicy.Spec.Ingress)-1].FromEntities = []v1alpha1.Entity{v1alpha1.EntityWorld}
			}
			h[i] = q
		}
		return h
	}
	steps := []struct {
		name     string
		from, to int
		port     int32
	}{
		{"a", 0, 20, 22},
		{"b", 20, 250, 23},
		{"a again", 0, 20, 22},
		{"c, small", 250, 253, 2379},
		{"b again", 20, 250, 23},
		{"c again", 250, 253, 2379},
		{"a and c", 0, 253, 22},
	}
	for _, st := range steps {
		cs := guard.NewChangeSet(base, head(st.from, st.to, st.port), guard.Meta{Revision: st.name, PreviousRevision: "base", Overrides: []string{"max-changes"}})
		got := g.Evaluate(context.Background(), cs, guard.Options{})
		want := g.EvaluateWhole(cs)
		if !bytes.Equal(got.JSON(), want.JSON()) {
			t.Errorf("%s: per change:\n%s\nwhole:\n%s", st.name, got.JSON(), want.JSON())
		}
		if len(want.Denies) == 0 {
			t.Fatalf("%s: the review finds nothing to compare: %s", st.name, want.JSON())
		}
	}
}
