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

// Package loader loads a policy repository: a tree of CUE packages. It
// unifies every policy object it finds with the embedded schema and yields
// the objects with the source position of every field, or diagnostics that
// say what is wrong and where. Loading runs within time and size budgets so
// that hostile input cannot hang or exhaust the caller.
package loader

import (
	"context"
	"encoding/json"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"cuelang.org/go/cue"
	"cuelang.org/go/cue/ast"
	"cuelang.org/go/cue/build"
	"cuelang.org/go/cue/load"

	"github.com/palisade-dev/palisade/internal/diag"
)

// APIVersion is the apiVersion of every Palisade policy object.
const APIVersion = "palisade.dev/v1alpha1"

// KindFlowTest is the kind of a flow test: an assertion about a flow's
// verdict that lives beside the policies (palisadectl test) and is never
// rendered as a cluster object.
const KindFlowTest = "FlowTest"

// Options bounds what a load may cost. Zero fields take the defaults.
type Options struct {
	// Timeout bounds the whole evaluation (default 60s).
	Timeout time.Duration
	// MaxFileBytes bounds one CUE file (default 4 MiB).
	MaxFileBytes int64
	// MaxTotalBytes bounds all CUE files together (default 256 MiB).
	MaxTotalBytes int64
	// MaxOutputBytes bounds the JSON of all policies found (default 512 MiB).
	MaxOutputBytes int64
	// MaxHeapBytes aborts evaluation when the Go heap grows past it
	// (default 8 GiB), which is how an exploding comprehension fails
	// before it exhausts the machine.
	MaxHeapBytes uint64
	// MaxDepth bounds how deeply values may nest (default 64).
	MaxDepth int
}

func (o Options) withDefaults() Options {
	if o.Timeout <= 0 {
		o.Timeout = 60 * time.Second
	}
	if o.MaxFileBytes <= 0 {
		o.MaxFileBytes = 4 << 20
	}
	if o.MaxTotalBytes <= 0 {
		o.MaxTotalBytes = 256 << 20
	}
	if o.MaxOutputBytes <= 0 {
		o.MaxOutputBytes = 512 << 20
	}
	if o.MaxHeapBytes == 0 {
		o.MaxHeapBytes = 8 << 30
	}
	if o.MaxDepth <= 0 {
		o.MaxDepth = 64
	}
	return o
}

// Object is one policy found in the repository, unified with the schema.
type Object struct {
	// Kind, Namespace and Name identify the object; Namespace is empty when
	// the policy does not set it.
	Kind, Namespace, Name string
	// Pos is where the object is declared.
	Pos diag.Pos
	// Path is the object's CUE path inside its package.
	Path string
	// Package is the directory of its package, relative to the root.
	Package string
	// JSON is the object as concrete JSON, defaults applied.
	JSON []byte

	// value is the user's value, before unification with the schema; field
	// positions come from here so that they point into the user's files.
	value cue.Value
	root  string
	// schemaOnce: the package's evaluation had applied the schema, and
	// the object was not unified with it again (schemaApplied).
	schemaOnce bool
}

// ID names the object as kind/namespace/name (namespace left empty for
// cluster-scoped or unset).
func (o *Object) ID() string { return o.Kind + "/" + o.Namespace + "/" + o.Name }

// PosOf returns the position of the field at path (CUE path syntax, e.g.
// "spec.ingress[0].toPorts[0].ports[0].port"), or of the closest enclosing
// field that has one, ending at the object itself.
func (o *Object) PosOf(path string) diag.Pos {
	for path != "" {
		v := o.value.LookupPath(cue.ParsePath(path))
		if v.Exists() {
			if p := userPos(v, o.root, o.Pos.File, 0); p.Line > 0 {
				return p
			}
		}
		path = parentPath(path)
	}
	return o.Pos
}

// parentPath drops the last selector or index of a CUE path.
func parentPath(p string) string {
	i := strings.LastIndexAny(p, ".[")
	if i < 0 {
		return ""
	}
	return p[:i]
}

// Result is the outcome of a load.
type Result struct {
	// Objects are the policies found, in a deterministic order (file, line).
	Objects []*Object
	// Tests are the flow tests found (kind FlowTest), unified with the
	// schema's #FlowTest, in the same order. They are not policies.
	Tests []*Object
	// Diagnostics says what is wrong; objects with errors are left out of
	// Objects.
	Diagnostics diag.List
}

// Load loads the policy repository at dir. The returned error is for
// failures that are not the input's fault (e.g. the directory does not
// exist); everything wrong with the input is a diagnostic.
func Load(ctx context.Context, dir string, opts Options) (*Result, error) {
	opts = opts.withDefaults()
	root, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	files, diags, err := scan(root, opts)
	if err != nil {
		return nil, err
	}
	if diags.HasErrors() {
		return &Result{Diagnostics: diags.Sort()}, nil
	}
	if len(files) == 0 {
		return &Result{Diagnostics: diag.List{diag.New("PAL010", diag.Pos{File: "."}, "no CUE files in %s", dir)}}, nil
	}

	ctx, cancel := context.WithTimeout(ctx, opts.Timeout)
	defer cancel()
	l := &loadRun{root: root, opts: opts, hasModule: hasModuleFile(root)}
	done := make(chan *Result, 1)
	go func() {
		done <- l.run()
	}()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	var ms runtime.MemStats
	for {
		select {
		case r := <-done:
			r.Diagnostics = append(diags, r.Diagnostics...).Sort()
			return r, nil
		case <-ctx.Done():
			// CUE's evaluator cannot be interrupted: the evaluation goes
			// on in its goroutine until it ends, and its result is dropped.
			return l.abort("PAL006", "evaluation did not finish within %s", opts.Timeout), nil
		case <-tick.C:
			runtime.ReadMemStats(&ms)
			if ms.HeapAlloc > opts.MaxHeapBytes {
				return l.abort("PAL011", "evaluation used more than %d MiB of memory", opts.MaxHeapBytes>>20), nil
			}
		}
	}
}

// loadRun is one evaluation of a repository.
type loadRun struct {
	root      string
	opts      Options
	hasModule bool
	// current is the position of the value being evaluated, for budget
	// errors: it says which file did not finish.
	current atomic.Pointer[diag.Pos]
	// note names the files of the package being built, when several.
	note   atomic.Pointer[string]
	output int64
	// direct are the kinds whose #Kinds entry is #<Kind> (schemaApplied).
	direct map[string]bool
	// schemas remembers which directories hold the embedded schema.
	schemas schemaDirs
}

func (l *loadRun) abort(code, format string, args ...any) *Result {
	pos := diag.Pos{File: "."}
	if p := l.current.Load(); p != nil {
		pos = *p
	}
	d := diag.New(code, pos, format, args...)
	if n := l.note.Load(); n != nil && pos.Line == 0 {
		d.Message += " (while evaluating " + *n + ")"
	}
	return &Result{Diagnostics: diag.List{d}}
}

func (l *loadRun) run() *Result {
	cfg := &load.Config{
		Dir:      l.root,
		Registry: schemaRegistry{},
		Overlay:  map[string]load.Source{},
	}
	if err := schemaOverlay(cfg.Overlay); err != nil {
		return &Result{Diagnostics: diag.List{diag.New("PAL009", diag.Pos{File: "."}, "embedded schema: %v", err)}}
	}
	if !l.hasModule {
		cfg.ModuleRoot = l.root
		cfg.Overlay[filepath.Join(l.root, "cue.mod", "module.cue")] = load.FromString(defaultModuleFile)
	}
	res := &Result{}
	insts := load.Instances([]string{"./..."}, cfg)
	cctx := newContext()
	defs, flowTest, err := kinds(cctx)
	if err != nil {
		res.Diagnostics = append(res.Diagnostics, diag.New("PAL009", diag.Pos{File: "."}, "%v", err))
		return res
	}
	l.direct, l.schemas = directKinds(defs), schemaDirs{}
	for _, inst := range insts {
		if inst.Err != nil {
			res.Diagnostics = append(res.Diagnostics, l.loadErrors(inst.Err)...)
			continue
		}
		pkgDir := l.rel(inst.Dir)
		// Building evaluates the package; a budget error during it names
		// the package's file, or its directory and files when several.
		cur := diag.Pos{File: pkgDir}
		l.note.Store(nil)
		if len(inst.BuildFiles) == 1 {
			cur.File = l.rel(inst.BuildFiles[0].Filename)
		} else if len(inst.BuildFiles) > 1 {
			names := make([]string, len(inst.BuildFiles))
			for i, f := range inst.BuildFiles {
				names[i] = filepath.Base(f.Filename)
			}
			note := "package " + pkgDir + ", files " + strings.Join(names, ", ")
			l.note.Store(&note)
		}
		l.current.Store(&cur)
		v := cctx.BuildInstance(inst)
		pkgErr := v.Err()
		// A package with an error in one policy still yields its other
		// policies: the walk reports each error where it is. An error
		// the walk cannot reach (in a definition, say) is reported as
		// the package's.
		before := res.Diagnostics.Count(diag.Error)
		w := walker{l: l, defs: defs, flowTest: flowTest, pkg: pkgDir, res: res, embeddedImport: l.importsEmbeddedSchema(inst)}
		if pkgErr != nil {
			w.declared = declaredLabels(inst)
		}
		w.walk(v, cue.Path{}, 0)
		if pkgErr != nil && res.Diagnostics.Count(diag.Error) == before {
			res.Diagnostics = append(res.Diagnostics, l.evalErrors(pkgErr, "PAL009", diag.Pos{File: pkgDir}, "")...)
		}
		if w.stop {
			break
		}
	}
	byPos := func(a, b *Object) int {
		if c := strings.Compare(a.Pos.File, b.Pos.File); c != 0 {
			return c
		}
		if a.Pos.Line != b.Pos.Line {
			return a.Pos.Line - b.Pos.Line
		}
		return strings.Compare(a.Path, b.Path)
	}
	slices.SortStableFunc(res.Objects, byPos)
	slices.SortStableFunc(res.Tests, byPos)
	if len(res.Objects) == 0 && !res.Diagnostics.HasErrors() {
		res.Diagnostics = append(res.Diagnostics, diag.New("PAL010", diag.Pos{File: "."}, "no policy objects found"))
	}
	return res
}

// walker finds policy objects in a package value.
type walker struct {
	l    *loadRun
	defs cue.Value
	// flowTest is the schema's #FlowTest.
	flowTest cue.Value
	pkg      string
	res      *Result
	stop     bool
	// declared maps a field path to the regular field names the files
	// declare under it; set only for packages that fail to evaluate.
	declared map[string][]string
	// embeddedImport: the package imports the embedded schema directly.
	embeddedImport bool
}

func (w *walker) walk(v cue.Value, path cue.Path, depth int) {
	if w.stop {
		return
	}
	pos := userPos(v, w.l.root, "", 0)
	if pos.Line > 0 {
		w.l.current.Store(&pos)
	}
	if depth > w.l.opts.MaxDepth {
		w.res.Diagnostics = append(w.res.Diagnostics, diag.New("PAL008", pos, "value at %s is nested more than %d levels deep", path, w.l.opts.MaxDepth))
		return
	}
	switch v.IncompleteKind() {
	case cue.StructKind:
		if w.isPolicy(v) {
			w.policy(v, path, pos)
			return
		}
		it, err := v.Fields()
		if err != nil {
			w.res.Diagnostics = append(w.res.Diagnostics, w.l.evalErrors(err, "", pos, pos.File)...)
			return
		}
		for it.Next() {
			w.walk(it.Value(), cue.MakePath(append(path.Selectors(), it.Selector())...), depth+1)
		}
	case cue.ListKind:
		it, err := v.List()
		if err != nil {
			w.res.Diagnostics = append(w.res.Diagnostics, w.l.evalErrors(err, "", pos, pos.File)...)
			return
		}
		for i := 0; it.Next(); i++ {
			w.walk(it.Value(), cue.MakePath(append(path.Selectors(), cue.Index(i))...), depth+1)
		}
	default:
		// An error inside a struct can make the struct an error value;
		// its fields can still be looked up. A policy is validated
		// whole, which reports all its errors; anything else is walked
		// through the fields its files declare, so that one bad policy
		// hides neither the others nor its own other errors.
		if kids := w.declared[path.String()]; v.Err() != nil && (len(kids) > 0 || w.isPolicy(v)) {
			if w.isPolicy(v) {
				w.policy(v, path, pos)
				return
			}
			for _, k := range kids {
				w.walk(v.LookupPath(cue.MakePath(cue.Str(k))), cue.MakePath(append(path.Selectors(), cue.Str(k))...), depth+1)
			}
			return
		}
		if err := v.Err(); err != nil {
			w.res.Diagnostics = append(w.res.Diagnostics, w.l.evalErrors(err, "", pos, pos.File)...)
		}
	}
}

// isPolicy reports whether v looks like a Palisade object: it has a kind and
// an apiVersion in the palisade.dev group. Structs that are not ours (a
// ConfigMap a repository happens to hold) are left alone.
func (w *walker) isPolicy(v cue.Value) bool {
	av, err := v.LookupPath(cue.ParsePath("apiVersion")).String()
	if err != nil {
		return false
	}
	if strings.HasPrefix(av, "palisade.dev/") {
		return v.LookupPath(cue.ParsePath("kind")).Exists()
	}
	// A Cilium or Kubernetes policy by the name of one of ours is a
	// mistake to report, not a value to skip.
	kind, err := v.LookupPath(cue.ParsePath("kind")).String()
	return err == nil && w.defs.LookupPath(cue.MakePath(cue.Str(kind))).Exists()
}

func (w *walker) policy(v cue.Value, path cue.Path, pos diag.Pos) {
	kind, err := v.LookupPath(cue.ParsePath("kind")).String()
	if err != nil && v.Err() != nil {
		// The value failed before the schema saw it (e.g. a closed
		// template of the user's): its own errors say why.
		w.res.Diagnostics = append(w.res.Diagnostics, w.l.evalErrors(v.Err(), "", pos, pos.File)...)
		return
	}
	if err != nil {
		w.res.Diagnostics = append(w.res.Diagnostics, diag.New("PAL052", posOf(v.LookupPath(cue.ParsePath("kind")), w.l.root).or(pos), "kind of %s is not a concrete string", path))
		return
	}
	if av, _ := v.LookupPath(cue.ParsePath("apiVersion")).String(); av != APIVersion {
		w.res.Diagnostics = append(w.res.Diagnostics, diag.New("PAL054", posOf(v.LookupPath(cue.ParsePath("apiVersion")), w.l.root).or(pos), "apiVersion %q of %s %s is not Palisade's; convert Cilium, Kubernetes and Tetragon policies with palisadectl import", av, kind, path))
		return
	}
	def := w.defs.LookupPath(cue.MakePath(cue.Str(kind)))
	if kind == KindFlowTest {
		def = w.flowTest
		pos = w.testPos(v, pos)
	}
	if !def.Exists() {
		w.res.Diagnostics = append(w.res.Diagnostics, diag.New("PAL053", posOf(v.LookupPath(cue.ParsePath("kind")), w.l.root).or(pos), "unknown kind %q at %s", kind, path))
		return
	}
	// Fastest path: v was written as, or through a template of,
	// schema.#Kind & {...}, so the package's evaluation has unified it
	// with def already; if it is valid, it needs no second unification
	// (unification is idempotent). An invalid v takes the paths below,
	// which say what is wrong and where.
	if kind != KindFlowTest && w.schemaApplied(v, kind) && v.Validate(cue.Concrete(true), cue.Final()) == nil {
		if data, err := v.MarshalJSON(); err == nil {
			if o := w.accept(v, path, pos, kind, data); o != nil {
				o.schemaOnce = true
			}
			return
		}
	}
	// Fast path: unify the policy's concrete data with the definition.
	// Unifying the user's value itself re-evaluates all of its
	// expressions (often already unified with the schema by the user's
	// own import), which costs several times more; it is done only when
	// the data fails, for the errors' positions in the user's files.
	if data, err := v.MarshalJSON(); err == nil {
		if d := w.defs.Context().CompileBytes(data); d.Err() == nil {
			if def.Unify(d).Validate(cue.Concrete(true), cue.Final()) == nil {
				w.accept(v, path, pos, kind, data)
				return
			}
		}
	}
	u := def.Unify(v)
	if err := u.Validate(cue.Concrete(true), cue.Final()); err != nil {
		fallback := "PAL050"
		if v.Err() != nil {
			fallback = "" // broken before the schema: schema's or the user's own conflict
		}
		for _, d := range w.l.evalErrors(err, fallback, pos, pos.File) {
			if d.Pos.File == pos.File && d.Pos.Line == pos.Line && d.Path != "" {
				// Errors about missing or incomplete fields carry the
				// schema's position only: point at the closest field
				// the user did write.
				d.Pos = w.fieldPos(v, d.Path, pos)
			}
			w.res.Diagnostics = append(w.res.Diagnostics, d)
		}
		return
	}
	data, err := u.MarshalJSON()
	if err != nil {
		w.res.Diagnostics = append(w.res.Diagnostics, w.l.evalErrors(err, "PAL050", pos, pos.File)...)
		return
	}
	w.accept(v, path, pos, kind, data)
}

// testPos returns where the user wrote the flow test v: a set of tests is
// usually a template applied to a struct of tests (lib.#FlowTests & {...}),
// and the value's own position is then the template's. The earliest of
// the fields the test spells out, in the file of the first one found,
// is where the test is.
func (w *walker) testPos(v cue.Value, def diag.Pos) diag.Pos {
	var best diag.Pos
	for _, f := range []string{"from", "to", "port", "expect", "name", "description", "protocol", "reply", "http", "dns", "kafka", "reason", "policy", "kernel"} {
		q := userPos(v.LookupPath(cue.MakePath(cue.Str(f))), w.l.root, best.File, 0)
		if q.Line == 0 || (best.Line > 0 && (q.Line > best.Line || (q.Line == best.Line && q.Column > best.Column))) {
			continue
		}
		best = q
	}
	if best.Line == 0 {
		return def
	}
	return best
}

// accept records a policy that passed the schema, as data, and returns
// it (nil when it is refused).
func (w *walker) accept(v cue.Value, path cue.Path, pos diag.Pos, kind string, data []byte) *Object {
	w.l.output += int64(len(data))
	if w.l.output > w.l.opts.MaxOutputBytes {
		w.res.Diagnostics = append(w.res.Diagnostics, diag.New("PAL011", pos, "policies evaluate to more than %d bytes of JSON", w.l.opts.MaxOutputBytes))
		w.stop = true
		return nil
	}
	var meta struct {
		Metadata struct {
			Name      string `json:"name"`
			Namespace string `json:"namespace"`
		} `json:"metadata"`
		// Name is a flow test's name.
		Name string `json:"name"`
	}
	if err := json.Unmarshal(data, &meta); err != nil {
		w.res.Diagnostics = append(w.res.Diagnostics, diag.New("PAL050", pos, "%v", err))
		return nil
	}
	if kind == KindFlowTest {
		meta.Metadata.Name = meta.Name
	}
	objs := &w.res.Objects
	if kind == KindFlowTest {
		objs = &w.res.Tests
	}
	o := &Object{
		Kind:      kind,
		Namespace: meta.Metadata.Namespace,
		Name:      meta.Metadata.Name,
		Pos:       pos,
		Path:      path.String(),
		Package:   w.pkg,
		JSON:      data,
		value:     v,
		root:      w.l.root,
	}
	*objs = append(*objs, o)
	return o
}

// isImportError reports whether a cue/load message is about imports.
func isImportError(msg string) bool {
	for _, s := range []string{"cannot find package", "import cycle", "imports", "module", "package"} {
		if strings.Contains(msg, s) {
			return true
		}
	}
	return false
}

// loadErrors turns cue/load errors into diagnostics: syntax errors
// (PAL001) and import errors (PAL007).
func (l *loadRun) loadErrors(err error) diag.List {
	var out diag.List
	for _, d := range l.cueErrors(err, diag.Pos{File: "."}, "", true) {
		code := "PAL001"
		if isImportError(d.msg) && !strings.Contains(d.msg, "expected") {
			code = "PAL007"
		}
		out = append(out, diag.New(code, d.pos, "%s", d.msg))
	}
	return out
}

// evalErrors turns evaluation errors into diagnostics, choosing the code
// from what the error says.
func (l *loadRun) evalErrors(err error, fallback string, at diag.Pos, prefer string) diag.List {
	var out diag.List
	for _, d := range l.cueErrors(err, at, prefer, false) {
		code := fallback
		if code == "" {
			// An error outside a policy: the schema's if it involves one
			// of its constraints, else a conflict among the user's values.
			code = map[bool]string{true: "PAL050", false: "PAL009"}[d.inSchema]
		}
		switch {
		case strings.Contains(d.msg, "not allowed"):
			code = "PAL051"
		case strings.Contains(d.msg, "incomplete value"), strings.Contains(d.msg, "non-concrete"),
			strings.Contains(d.msg, "field is required but not present"):
			code = "PAL052"
		case strings.Contains(d.msg, "structural cycle"), strings.Contains(d.msg, "cycle"):
			code = "PAL009"
		}
		dg := diag.New(code, d.pos, "%s", d.msg)
		dg.Path = d.path
		out = append(out, dg)
	}
	return out
}

// fieldPos returns the position of the field at path in the user's value
// v, or of its closest ancestor the user wrote, else def.
func (w *walker) fieldPos(v cue.Value, path string, def diag.Pos) diag.Pos {
	for p := path; p != ""; p = parentPath(p) {
		f := v.LookupPath(cue.ParsePath(p))
		if !f.Exists() {
			continue
		}
		if q := userPos(f, w.l.root, "", 0); q.Line > 0 {
			return q
		}
	}
	return def
}

// declaredLabels maps each field path the package's files spell out
// (fields of struct literals, also as operands of &) to the regular field
// names declared under it, in order.
func declaredLabels(inst *build.Instance) map[string][]string {
	out := map[string][]string{}
	var visit func(parent cue.Path, decls []ast.Decl)
	var expr func(parent cue.Path, x ast.Expr)
	expr = func(parent cue.Path, x ast.Expr) {
		switch x := x.(type) {
		case *ast.StructLit:
			visit(parent, x.Elts)
		case *ast.BinaryExpr:
			expr(parent, x.X)
			expr(parent, x.Y)
		case *ast.ParenExpr:
			expr(parent, x.X)
		}
	}
	visit = func(parent cue.Path, decls []ast.Decl) {
		for _, d := range decls {
			fd, ok := d.(*ast.Field)
			if !ok {
				continue
			}
			name, isIdent, err := ast.LabelName(fd.Label)
			if err != nil || (isIdent && (strings.HasPrefix(name, "#") || strings.HasPrefix(name, "_"))) {
				continue
			}
			key := parent.String()
			if !slices.Contains(out[key], name) {
				out[key] = append(out[key], name)
			}
			expr(cue.MakePath(append(parent.Selectors(), cue.Str(name))...), fd.Value)
		}
	}
	for _, f := range inst.Files {
		visit(cue.Path{}, f.Decls)
	}
	return out
}
