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

package guards_test

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/open-policy-agent/opa/v1/ast"

	"github.com/palisade-dev/palisade/internal/guard"
)

// TestMutations proves the Rego tests guard the guards: for every built-in
// guard, the whole module is removed, and each of its deny and warn rules
// in turn, and then all of them together, is replaced by one that never
// fires; the guard's own tests must then fail. A rule no test notices missing is a rule nobody checks.
func TestMutations(t *testing.T) {
	lib := guard.Builtin()
	mutated := 0
	for _, path := range slices.Sorted(maps.Keys(lib.Modules)) {
		if strings.HasSuffix(path, "_test.rego") {
			continue
		}
		src := string(lib.Modules[path])
		m, err := ast.ParseModuleWithOpts(path, src, ast.ParserOptions{RegoVersion: ast.RegoV1})
		if err != nil {
			t.Fatal(err)
		}
		var rules []*ast.Rule
		for _, r := range m.Rules {
			if n := r.Head.Ref()[0].Value.String(); n == "deny" || n == "warn" {
				rules = append(rules, r)
			}
		}
		if len(rules) == 0 {
			continue
		}
		pkg := m.Package.Path.String() + "_test"
		cases := map[string][]*ast.Rule{"all rules": rules}
		for _, r := range rules {
			cases[fmt.Sprintf("rule at line %d", r.Location.Row)] = []*ast.Rule{r}
		}
		// The whole guard removed: its tests must fail (or no longer
		// compile), not pass vacuously against an undefined package.
		t.Run(path+"/module removed", func(t *testing.T) {
			mutated++
			lib := guard.Builtin()
			delete(lib.Modules, path)
			results, diags, err := guard.RunTests(context.Background(), lib)
			if err != nil {
				t.Fatal(err)
			}
			if diags.HasErrors() {
				return // the tests no longer compile: removal is noticed
			}
			if !slices.ContainsFunc(results, func(r guard.TestResult) bool { return r.Package == pkg && !r.Pass }) {
				t.Errorf("removing %s leaves every test of %s passing", path, pkg)
			}
		})
		for name, drop := range cases {
			t.Run(path+"/"+name, func(t *testing.T) {
				mutated++
				src := neverFire(t, src, drop)
				lib := guard.Builtin()
				lib.Modules[path] = []byte(src)
				results, diags, err := guard.RunTests(context.Background(), lib)
				if err != nil || diags.HasErrors() {
					t.Fatalf("mutant does not compile: %v %v\n%s", err, diags, src)
				}
				failed := 0
				for _, r := range results {
					if r.Package == pkg && !r.Pass {
						failed++
					}
				}
				if failed == 0 {
					t.Errorf("dropping %s of %s leaves every test of %s passing:\n%s", name, path, pkg, src)
				}
			})
		}
	}
	if mutated == 0 {
		t.Fatal("no guard rules to mutate")
	}
}

// neverFire replaces rules in src by rules of the same name whose body is
// false, so deny and warn stay defined (as empty sets, of elements of any
// type so the tests still type-check) and only what the dropped rules said
// is missing.
func neverFire(t *testing.T, src string, drop []*ast.Rule) string {
	slices.SortFunc(drop, func(a, b *ast.Rule) int { return b.Location.Offset - a.Location.Offset })
	for _, r := range drop {
		l := r.Location
		if got := src[l.Offset : l.Offset+len(l.Text)]; got != string(l.Text) {
			t.Fatalf("rule at line %d: location does not match the source", l.Row)
		}
		name := r.Head.Ref()[0].Value.String()
		src = src[:l.Offset] + name + " contains x if { x := input.never; false }" + src[l.Offset+len(l.Text):]
	}
	return src
}
