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

package config

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client/apiutil"

	"github.com/palisade-dev/palisade/api/v1alpha1"
	"github.com/palisade-dev/palisade/internal/agent"
	"github.com/palisade-dev/palisade/internal/testenv"
)

// watched is one kind a program's controllers watch, and where its cache
// lists it ("" for every namespace).
type watched struct {
	gvk        schema.GroupVersionKind
	namespaces []string
}

// agentWatches returns the kinds the agent's controllers watch, read from
// internal/agent's source, with the namespaces its cache (agent.CacheOptions)
// restricts them to.
func agentWatches(t *testing.T, scheme *runtime.Scheme) []watched {
	t.Helper()
	byObject := map[schema.GroupVersionKind][]string{}
	for obj, cfg := range agent.CacheOptions().ByObject {
		gvk, err := apiutil.GVKForObject(obj, scheme)
		if err != nil {
			t.Fatal(err)
		}
		for ns := range cfg.Namespaces {
			byObject[gvk] = append(byObject[gvk], ns)
		}
	}
	var out []watched
	for _, gvk := range watchedKinds(t, scheme, "internal/agent") {
		ns := byObject[gvk]
		if len(ns) == 0 {
			ns = []string{""}
		}
		out = append(out, watched{gvk, ns})
	}
	return out
}

// managerWatches returns the kinds the manager's controllers watch, read
// from controllers/ and cmd/manager; its cache lists every namespace.
func managerWatches(t *testing.T, scheme *runtime.Scheme) []watched {
	t.Helper()
	var out []watched
	for _, gvk := range watchedKinds(t, scheme, "controllers", "cmd/manager") {
		out = append(out, watched{gvk, []string{""}})
	}
	return out
}

// codeScheme knows every type Palisade's programs watch.
func codeScheme(t *testing.T) *runtime.Scheme {
	t.Helper()
	s := testenv.Scheme()
	if err := v1alpha1.AddToScheme(s); err != nil {
		t.Fatal(err)
	}
	return s
}

// watchedKinds returns the kinds whose types the non-test Go files under dirs
// pass as &T{} to a controller builder's For, Owns or Watches. Types passed
// through a variable are not seen.
func watchedKinds(t *testing.T, scheme *runtime.Scheme, dirs ...string) []schema.GroupVersionKind {
	t.Helper()
	known := map[string]schema.GroupVersionKind{} // "import/path.Type"
	for gvk, typ := range scheme.AllKnownTypes() {
		if gvk.Version != runtime.APIVersionInternal {
			known[typ.PkgPath()+"."+typ.Name()] = gvk
		}
	}
	seen := map[schema.GroupVersionKind]bool{}
	fset := token.NewFileSet()
	for _, dir := range dirs {
		root := testenv.RepoPath(t, strings.Split(dir, "/")...)
		err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
				return err
			}
			f, err := parser.ParseFile(fset, path, nil, parser.SkipObjectResolution)
			if err != nil {
				return err
			}
			imports := map[string]string{}
			for _, imp := range f.Imports {
				p, _ := strconv.Unquote(imp.Path.Value)
				name := filepath.Base(p)
				if imp.Name != nil {
					name = imp.Name.Name
				}
				imports[name] = p
			}
			ast.Inspect(f, func(n ast.Node) bool {
				call, ok := n.(*ast.CallExpr)
				if !ok || len(call.Args) == 0 {
					return true
				}
				sel, ok := call.Fun.(*ast.SelectorExpr)
				if !ok || (sel.Sel.Name != "For" && sel.Sel.Name != "Owns" && sel.Sel.Name != "Watches") {
					return true
				}
				addr, ok := call.Args[0].(*ast.UnaryExpr)
				if !ok || addr.Op != token.AND {
					return true
				}
				lit, ok := addr.X.(*ast.CompositeLit)
				if !ok {
					return true
				}
				typ, ok := lit.Type.(*ast.SelectorExpr)
				if !ok {
					return true
				}
				pkg, ok := typ.X.(*ast.Ident)
				if !ok {
					return true
				}
				gvk, ok := known[imports[pkg.Name]+"."+typ.Sel.Name]
				if !ok {
					t.Errorf("%s: %s watches %s.%s, which the test's scheme does not know", fset.Position(call.Pos()), sel.Sel.Name, pkg.Name, typ.Sel.Name)
					return true
				}
				seen[gvk] = true
				return true
			})
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	out := make([]schema.GroupVersionKind, 0, len(seen))
	for gvk := range seen {
		out = append(out, gvk)
	}
	slices.SortFunc(out, func(a, b schema.GroupVersionKind) int { return strings.Compare(a.String(), b.String()) })
	if len(out) == 0 {
		t.Fatalf("found no watched kinds under %v", dirs)
	}
	return out
}
