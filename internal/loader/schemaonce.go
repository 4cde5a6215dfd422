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

package loader

import (
	"bytes"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"

	"cuelang.org/go/cue"
	"cuelang.org/go/cue/ast"
	"cuelang.org/go/cue/build"
	"cuelang.org/go/cue/token"

	"github.com/palisade-dev/palisade/policies/schema"
)

// Most repositories write a policy as schema.#NetworkPolicy & {...}, or
// through a template that is: the evaluation of the package has then
// already unified the policy with the definition of its kind, and unifying
// it again with #Kinds[kind] costs a second evaluation for nothing
// (unification is idempotent). schemaApplied finds those policies so that
// policy can skip the second unification; every other policy, and every
// invalid one, takes the paths that report diagnostics, so what a user
// sees does not depend on how a policy is written (docs/bench-validate.md).

// schemaDirs decides whether a directory a schema import resolved to holds
// the embedded schema: the embedded module itself, or a copy of it that is
// byte for byte the same (a repository's cue.mod/local-module.cue may
// replace the module with a directory of its own; a copy of the embedded
// files defines the same #Kinds, anything else does not count).
type schemaDirs map[string]bool

func (s schemaDirs) embedded(dir string) bool {
	if dir == schemaRoot {
		return true
	}
	if dir == "" || !filepath.IsAbs(dir) {
		return false
	}
	ok, seen := s[dir]
	if !seen {
		ok = sameAsEmbedded(dir)
		s[dir] = ok
	}
	return ok
}

// sameAsEmbedded reports whether dir holds exactly the embedded module's
// files: cue.mod/module.cue and the package's *.cue files, no other *.cue
// file, each with the same bytes.
func sameAsEmbedded(dir string) bool {
	want, err := fs.Glob(schema.FS, "*.cue")
	if err != nil {
		return false
	}
	have, err := filepath.Glob(filepath.Join(dir, "*.cue"))
	if err != nil || len(have) != len(want) {
		return false
	}
	for _, p := range append(want, path.Join("cue.mod", "module.cue")) {
		w, err := schema.FS.ReadFile(p)
		if err != nil {
			return false
		}
		h, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(p)))
		if err != nil || !bytes.Equal(h, w) {
			return false
		}
	}
	return true
}

// importsEmbeddedSchema reports whether inst imports the schema package
// directly and the import resolved to the embedded schema.
func (l *loadRun) importsEmbeddedSchema(inst *build.Instance) bool {
	for _, imp := range inst.Imports {
		if ast.ParseImportPath(imp.ImportPath).Path == schema.ImportPath && l.schemas.embedded(imp.Dir) {
			return true
		}
	}
	return false
}

// directKinds returns the kinds whose #Kinds entry is the definition of
// the same name (#Kinds: NetworkPolicy: #NetworkPolicy), for which a
// reference to #<Kind> is as good as #Kinds[kind].
func directKinds(defs cue.Value) map[string]bool {
	out := map[string]bool{}
	it, err := defs.Fields()
	if err != nil {
		return out
	}
	for it.Next() {
		f, ok := it.Value().Source().(*ast.Field)
		if !ok {
			continue
		}
		if id, ok := f.Value.(*ast.Ident); ok && id.Name == "#"+it.Selector().Unquoted() {
			out[it.Selector().Unquoted()] = true
		}
	}
	return out
}

// schemaApplied reports whether v is certainly already unified with the
// embedded definition #<kind>: one of its conjuncts is, through &, parens,
// embeddings and references to definitions of the user's, a reference to
// that definition in the embedded schema. False means "not known", never
// "invalid".
func (w *walker) schemaApplied(v cue.Value, kind string) bool {
	if !w.l.direct[kind] {
		return false
	}
	// A cheap syntactic check first, for the common schema.#Kind & {...}
	// in a package whose schema import is the embedded one.
	if w.embeddedImport && syntacticDef(v.Source(), "#"+kind) {
		return true
	}
	return w.semanticDef(v, "#"+kind, 0)
}

// syntacticDef reports whether n, a field or expression, unifies with
// <id>.<def> where <id> names an import of the schema package.
func syntacticDef(n ast.Node, def string) bool {
	switch x := n.(type) {
	case *ast.Field:
		return syntacticDef(x.Value, def)
	case *ast.BinaryExpr:
		return x.Op == token.AND && (syntacticDef(x.X, def) || syntacticDef(x.Y, def))
	case *ast.ParenExpr:
		return syntacticDef(x.X, def)
	case *ast.StructLit:
		for _, d := range x.Elts {
			if e, ok := d.(*ast.EmbedDecl); ok && syntacticDef(e.Expr, def) {
				return true
			}
		}
	case *ast.SelectorExpr:
		id, ok := x.X.(*ast.Ident)
		if !ok {
			return false
		}
		spec, ok := id.Node.(*ast.ImportSpec)
		if !ok {
			return false
		}
		p, err := strconv.Unquote(spec.Path.Value)
		if err != nil {
			return false
		}
		ip := ast.ParseImportPath(p)
		if ip.Path != schema.ImportPath || (ip.Qualifier != "" && ip.Qualifier != "schema") {
			return false
		}
		name, _, err := ast.LabelName(x.Sel)
		return err == nil && name == def
	}
	return false
}

// semanticDef follows v's conjuncts and references (to a bounded depth)
// looking for a reference to def at the root of the embedded schema.
func (w *walker) semanticDef(v cue.Value, def string, depth int) bool {
	if depth > 6 {
		return false
	}
	if root, p := v.ReferencePath(); root.Exists() {
		sel := p.Selectors()
		if bi := root.BuildInstance(); bi != nil && w.l.schemas.embedded(bi.Dir) && isSchemaInstance(bi) {
			return len(sel) == 1 && sel[0].String() == def
		}
		// A reference to the user's own definition: a template.
		if len(sel) > 0 && sel[len(sel)-1].IsDefinition() {
			return w.semanticDef(root.LookupPath(p), def, depth+1)
		}
		return false
	}
	op, args := v.Expr()
	if op != cue.AndOp {
		return false
	}
	for _, a := range args {
		if w.semanticDef(a, def, depth+1) {
			return true
		}
	}
	return false
}

// isSchemaInstance reports whether bi is the schema package (and not, say,
// a package of the user's that happens to live in the same directory).
func isSchemaInstance(bi *build.Instance) bool {
	return bi.PkgName == "schema" && strings.TrimSuffix(ast.ParseImportPath(bi.ImportPath).Path, "@v0") == schema.ImportPath
}
