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

package guard

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/open-policy-agent/opa/v1/storage/inmem"

	"github.com/palisade-dev/palisade/internal/diag"
)

// guardsRoot is the package every guard lives under, paramsRoot where
// parameters live in data (reserved: no module may declare it).
var (
	guardsRoot = ast.MustParseRef("data.palisade.guards")
	paramsRoot = ast.MustParseRef("data.palisade.params")
)

// Guards is one compiled guard revision: every source's modules compiled
// together once, evaluated many times through prepared queries. It is safe
// for concurrent use.
type Guards struct {
	revision string
	compiler *ast.Compiler
	guards   []guardInfo
	data     map[string]any

	// perChange names the guards whose findings are a union over
	// changes (perchange.go), restKeys the other input keys guards read,
	// memos their findings per change, changeIDs the changes' numbers
	// the memos are keyed by.
	perChange map[string]bool
	restKeys  []string
	memos     map[string]*memo
	changeIDs changeIDs

	mu       sync.Mutex
	prepared map[string][]preparedGuard // by parameters hash
}

// guardInfo is one guard package.
type guardInfo struct {
	name, source string
	path         ast.Ref
	deny, warn   bool
}

type preparedGuard struct {
	guardInfo
	query rego.PreparedEvalQuery
	// perChange, when set (hasPerChange), evaluates the guard on each
	// change alone (perChangeQuery).
	perChange    rego.PreparedEvalQuery
	hasPerChange bool
	paramsKey    string
}

// Revision is the content hash of the sources ("sha256:..."): guards
// compiled from the same modules and data have the same revision.
func (g *Guards) Revision() string { return g.revision }

// Names lists the guards as source/package, sorted.
func (g *Guards) Names() []string {
	out := make([]string, len(g.guards))
	for i, x := range g.guards {
		out[i] = x.source + "/" + x.name
	}
	slices.Sort(out)
	return out
}

// compiled caches Guards by revision, so that a controller reconciling many
// PolicySets with the same guards compiles them once.
var compiled = struct {
	sync.Mutex
	m map[string]*Guards
}{m: map[string]*Guards{}}

const maxCompiled = 16

// capabilities are OPA's built-ins minus the non-deterministic ones
// (http.send, time.now_ns, rand.*, ...): a guard must reach the same
// decision in CI and in the cluster, and must not reach the network.
var capabilities = sync.OnceValue(func() *ast.Capabilities {
	c := ast.CapabilitiesForThisVersion()
	c.Builtins = slices.DeleteFunc(slices.Clone(c.Builtins), func(b *ast.Builtin) bool { return b.Nondeterministic })
	return c
})

// Compile compiles sources (tests left out) into one guard revision. Any
// error is a PAL603 diagnostic at file:line:col and yields no Guards:
// nothing is evaluated with guards that do not compile.
func Compile(sources ...Source) (*Guards, diag.List) {
	srcs := slices.Clone(sources)
	slices.SortFunc(srcs, func(a, b Source) int { return strings.Compare(a.Name, b.Name) })
	rev := revision(srcs)
	compiled.Lock()
	if g := compiled.m[rev]; g != nil {
		compiled.Unlock()
		return g, nil
	}
	compiled.Unlock()

	modules, guards, data, diags := parseSources(srcs, false)
	if diags.HasErrors() {
		return nil, diags.Sort()
	}
	perChange, restKeys := perChangeGuards(modules, guards)
	for _, gi := range guards {
		if !perChange[gi.name] {
			continue
		}
		var ms []*ast.Module
		for _, m := range modules {
			if m.Package.Path.Equal(gi.path) {
				ms = append(ms, m)
			}
		}
		perChange[gi.name] = addPerChangeRules(ms)
	}
	c := ast.NewCompiler().WithCapabilities(capabilities())
	if c.Compile(modules); c.Failed() {
		return nil, astDiags(c.Errors).Sort()
	}
	g := &Guards{revision: rev, compiler: c, guards: guards, data: data, prepared: map[string][]preparedGuard{},
		perChange: perChange, restKeys: restKeys, memos: map[string]*memo{}}
	for _, gi := range guards {
		g.memos[gi.name] = &memo{rest: map[string]*memoGen{}}
	}
	compiled.Lock()
	if len(compiled.m) >= maxCompiled {
		clear(compiled.m)
	}
	compiled.m[rev] = g
	compiled.Unlock()
	return g, nil
}

// revision hashes the sources' names, modules and data.
func revision(srcs []Source) string {
	h := sha256.New()
	for _, s := range srcs {
		fmt.Fprintf(h, "source %q\n", s.Name)
		for _, p := range slices.Sorted(mapsKeys(s.Modules)) {
			fmt.Fprintf(h, "module %q %d\n", p, len(s.Modules[p]))
			h.Write(s.Modules[p])
		}
		d, _ := json.Marshal(s.Data) // maps marshal sorted
		fmt.Fprintf(h, "data %d\n", len(d))
		h.Write(d)
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil))
}

func mapsKeys[V any](m map[string]V) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// parseSources parses every module (tests too when withTests), checks that
// each package has one owner and that deny and warn are sets, and merges
// the sources' data.
func parseSources(srcs []Source, withTests bool) (map[string]*ast.Module, []guardInfo, map[string]any, diag.List) {
	var (
		diags   diag.List
		guards  []guardInfo
		data    map[string]any
		modules = map[string]*ast.Module{}
		owner   = map[string]string{} // package → source
		seen    = map[string]bool{}
	)
	for _, s := range srcs {
		if seen[s.Name] {
			diags = append(diags, diag.New("PAL603", diag.Pos{File: s.Name}, "two guard sources are named %q", s.Name))
			continue
		}
		seen[s.Name] = true
		merged, err := mergeData(data, s.Data, "")
		if err != nil {
			diags = append(diags, diag.New("PAL603", diag.Pos{File: s.Name}, "data of %s: %v", s.Name, err))
		}
		data = merged
		for _, p := range slices.Sorted(mapsKeys(s.Modules)) {
			if isTest(p) && !withTests {
				continue
			}
			file := s.moduleFile(p)
			m, err := ast.ParseModuleWithOpts(file, string(s.Modules[p]), ast.ParserOptions{RegoVersion: ast.RegoV1, Capabilities: capabilities()})
			if err != nil {
				diags = append(diags, errDiags(file, err)...)
				continue
			}
			modules[file] = m
			pkg := m.Package.Path.String()
			pos := locPos(m.Package.Location, file)
			if m.Package.Path.HasPrefix(paramsRoot) {
				diags = append(diags, diag.New("PAL603", pos, "package %s: data.palisade.params is reserved for guard parameters", pkg))
				continue
			}
			if o, ok := owner[pkg]; ok && o != s.Name {
				d := diag.New("PAL603", pos, "package %s is already declared by guard source %q; a package belongs to one source", pkg, o)
				if o == BuiltinName || s.Name == BuiltinName {
					d.Hint = "give your guard a package name of its own; to test an edited copy of the built-in guards, `palisadectl guard test DIR` tests DIR in their place"
				}
				diags = append(diags, d)
				continue
			}
			owner[pkg] = s.Name
			if isTest(p) {
				continue
			}
			if !m.Package.Path.HasPrefix(guardsRoot) || len(m.Package.Path) == len(guardsRoot) {
				// A guard source owns packages below palisade.guards only,
				// so it cannot redefine data another source or the
				// parameters rely on. Tests may declare helper packages.
				diags = append(diags, diag.New("PAL603", pos, "package %s is outside palisade.guards: a guard module declares package palisade.guards.<name>", pkg))
				continue
			}
			gi := guardInfo{name: strings.TrimPrefix(pkg, guardsRoot.String()+"."), source: s.Name, path: m.Package.Path}
			for _, r := range m.Rules {
				ref := r.Head.Ref()
				name := ref[0].Value.String()
				if name != "deny" && name != "warn" {
					continue
				}
				if len(ref) != 1 || r.Head.RuleKind() != ast.MultiValue {
					diags = append(diags, diag.New("PAL603", locPos(r.Location, file), "%s in %s must be a set: write `%s contains msg if { ... }`", name, pkg, name))
					continue
				}
				gi.deny = gi.deny || name == "deny"
				gi.warn = gi.warn || name == "warn"
			}
			if !gi.deny && !gi.warn {
				continue // a library package: nothing to evaluate
			}
			if i := slices.IndexFunc(guards, func(x guardInfo) bool { return x.name == gi.name }); i >= 0 {
				guards[i].deny, guards[i].warn = guards[i].deny || gi.deny, guards[i].warn || gi.warn
				continue
			}
			guards = append(guards, gi)
		}
	}
	slices.SortFunc(guards, func(a, b guardInfo) int { return strings.Compare(a.name, b.name) })
	return modules, guards, data, diags
}

// errDiags turns OPA parse or compile errors into PAL603 diagnostics.
func errDiags(file string, err error) diag.List {
	var errs ast.Errors
	if errors.As(err, &errs) {
		return astDiags(errs)
	}
	return diag.List{diag.New("PAL603", diag.Pos{File: file}, "%v", err)}
}

func astDiags(errs ast.Errors) diag.List {
	var l diag.List
	for _, e := range errs {
		l = append(l, diag.New("PAL603", locPos(e.Location, ""), "%s", e.Message))
	}
	return l
}

func locPos(l *ast.Location, file string) diag.Pos {
	if l == nil {
		return diag.Pos{File: file}
	}
	if l.File != "" {
		file = l.File
	}
	return diag.Pos{File: file, Line: l.Row, Column: l.Col}
}

// prepare returns the guards' prepared queries for one set of parameters,
// preparing them on first use: parameters are data, and a PolicySet's
// parameters rarely change, so each set is prepared once.
func (g *Guards) prepare(ctx context.Context, params map[string]any) ([]preparedGuard, error) {
	pj, err := json.Marshal(params)
	if err != nil {
		return nil, fmt.Errorf("encode guard parameters: %w", err)
	}
	sum := sha256.Sum256(pj)
	key := string(sum[:])
	g.mu.Lock()
	defer g.mu.Unlock()
	if p, ok := g.prepared[key]; ok {
		return p, nil
	}
	data := g.data
	if params != nil {
		data = overlay(data, map[string]any{"palisade": map[string]any{"params": params}})
	}
	if data == nil {
		data = map[string]any{}
	}
	store := inmem.NewFromObjectWithOpts(data, inmem.OptRoundTripOnWrite(true), inmem.OptReturnASTValuesOnRead(true))
	out := make([]preparedGuard, 0, len(g.guards))
	for _, gi := range g.guards {
		var q []string
		if gi.deny {
			q = append(q, "deny := "+gi.path.String()+".deny")
		}
		if gi.warn {
			q = append(q, "warn := "+gi.path.String()+".warn")
		}
		pq, err := rego.New(
			rego.Compiler(g.compiler), rego.Store(store), rego.Query(strings.Join(q, "; ")),
			rego.StrictBuiltinErrors(true),
		).PrepareForEval(ctx)
		if err != nil {
			return nil, fmt.Errorf("prepare guard %s: %w", gi.name, err)
		}
		pg := preparedGuard{guardInfo: gi, query: pq, paramsKey: key}
		if g.perChange[gi.name] {
			pc, err := rego.New(
				rego.Compiler(g.compiler), rego.Store(store), rego.Query(perChangeQuery(gi)),
				rego.StrictBuiltinErrors(true),
			).PrepareForEval(ctx)
			if err != nil {
				return nil, fmt.Errorf("prepare guard %s per change: %w", gi.name, err)
			}
			pg.perChange, pg.hasPerChange = pc, true
		}
		out = append(out, pg)
	}
	if len(g.prepared) >= 32 {
		clear(g.prepared)
	}
	g.prepared[key] = out
	return out, nil
}
