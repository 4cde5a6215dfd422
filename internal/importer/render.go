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

package importer

import (
	"fmt"
	"strings"

	"cuelang.org/go/cue/ast"
	"cuelang.org/go/cue/format"

	"github.com/palisade-dev/palisade/internal/diag"
)

// DefaultPackage is the CUE package imported files belong to unless told
// otherwise.
const DefaultPackage = "policies"

// Render formats the imported objects of the given files as one CUE file
// of package pkg. Each object is a top-level field named after its kind and
// keyed by namespace/name, e.g.
//
//	networkPolicy: "prod/l3-rule": {...}
//
// so that objects from many files can share a package without clashing,
// and a comment above each says where it came from and what the import
// left out. Objects that were rejected are not rendered. It returns nil
// when no object was imported.
func Render(pkg string, results ...*FileResult) ([]byte, error) {
	if !ast.IsValidIdent(pkg) || strings.HasPrefix(pkg, "_") || strings.HasPrefix(pkg, "#") {
		return nil, fmt.Errorf("package name %q is not a CUE identifier", pkg)
	}
	var (
		decls   []ast.Decl
		sources []string
	)
	for _, r := range results {
		n := 0
		for _, o := range r.Objects {
			if o.Status != Imported {
				continue
			}
			for i, p := range o.Emitted {
				decls = append(decls, p.decl(o, i == 0))
				n++
			}
		}
		if n > 0 {
			sources = append(sources, r.File)
		}
	}
	if len(decls) == 0 {
		return nil, nil
	}
	pc := &ast.Package{Name: ast.NewIdent(pkg)}
	ast.AddComment(pc, comment(
		fmt.Sprintf("Imported by palisadectl import from %s.", strings.Join(sources, ", ")),
		"Review the warnings noted above each object, then edit freely.",
	))
	f := &ast.File{Decls: append([]ast.Decl{pc}, decls...)}
	b, err := format.Node(f, format.Simplify())
	if err != nil {
		return nil, fmt.Errorf("format CUE: %w", err)
	}
	return b, nil
}

// decl is the top-level field of one emitted policy.
func (p *Policy) decl(o *Object, first bool) ast.Decl {
	inner := &ast.Field{Label: ast.NewStringLabel(p.Key), Value: p.value.expr()}
	outer := &ast.Field{Label: ast.NewIdent(p.Field), Value: &ast.StructLit{Elts: []ast.Decl{inner}}}
	lines := []string{fmt.Sprintf("%s %q from %s (%s).", o.Source.Kind, o.Source.Name, o.Source.Pos, p.rulePath)}
	for _, d := range o.Diagnostics {
		if d.Severity != diag.Warning || !p.owns(d.Path, first) {
			continue
		}
		lines = append(lines, fmt.Sprintf("%s %s: %s", d.Code, d.Pos, d.Message))
	}
	ast.AddComment(outer, comment(lines...))
	return outer
}

// owns says whether a diagnostic at path is about this policy: those
// inside its rule, and those about the whole document on the first policy
// of a document.
func (p *Policy) owns(path string, first bool) bool {
	if path == p.rulePath || strings.HasPrefix(path, p.rulePath+".") || strings.HasPrefix(path, p.rulePath+"[") {
		return true
	}
	inRule := path == "spec" || strings.HasPrefix(path, "spec.") || strings.HasPrefix(path, "specs[")
	return first && !inRule
}

// comment builds a doc comment from lines, wrapping none: a finding reads
// best on one line, the way compilers print it.
func comment(lines ...string) *ast.CommentGroup {
	cg := &ast.CommentGroup{Doc: true}
	for _, l := range lines {
		cg.List = append(cg.List, &ast.Comment{Text: "// " + strings.ReplaceAll(l, "\n", " ")})
	}
	return cg
}
