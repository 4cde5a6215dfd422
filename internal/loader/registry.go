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
	"context"
	"embed"
	"fmt"
	"io/fs"
	"path"
	"sync"

	"cuelang.org/go/cue"
	"cuelang.org/go/cue/cuecontext"
	"cuelang.org/go/cue/load"
	"cuelang.org/go/mod/modfile"
	"cuelang.org/go/mod/module"

	"github.com/palisade-dev/palisade/policies/schema"
)

// schemaRegistry serves the embedded schema module to CUE's module loader,
// so a policy repository can import "palisade.dev/schema" with no registry
// and no network: the binary always validates against the schema it
// enforces.
type schemaRegistry struct{}

var (
	schemaModFileOnce sync.Once
	schemaModFile     *modfile.File
	schemaModFileErr  error
)

func (schemaRegistry) check(mv module.Version) error {
	if mv.Path() != schema.ModulePath {
		return fmt.Errorf("module %s is not available: policy repositories may depend on %s only", mv.Path(), schema.ModulePath)
	}
	if mv.Version() != schema.Version {
		return fmt.Errorf("module %s@%s is not available: this palisade embeds version %s", mv.BasePath(), mv.Version(), schema.Version)
	}
	return nil
}

// ModFile implements modconfig.Registry.
func (r schemaRegistry) ModFile(_ context.Context, mv module.Version) (*modfile.File, error) {
	if err := r.check(mv); err != nil {
		return nil, err
	}
	schemaModFileOnce.Do(func() {
		data, err := schema.FS.ReadFile("cue.mod/module.cue")
		if err != nil {
			schemaModFileErr = err
			return
		}
		schemaModFile, schemaModFileErr = modfile.Parse(data, "cue.mod/module.cue")
	})
	return schemaModFile, schemaModFileErr
}

// Fetch implements modconfig.Registry.
func (r schemaRegistry) Fetch(_ context.Context, mv module.Version) (module.SourceLoc, error) {
	if err := r.check(mv); err != nil {
		return module.SourceLoc{}, err
	}
	return module.SourceLoc{FS: schemaFS{schema.FS}, Dir: "."}, nil
}

// schemaRoot is the made-up absolute directory the embedded schema appears
// under. CUE's loader wants an OS path for a dependency's files; the
// overlay built by schemaOverlay puts the files there.
const schemaRoot = "/.palisade-embedded/schema@" + schema.Version

// schemaFS is the embedded schema as a module.OSRootFS.
type schemaFS struct{ embed.FS }

// OSRoot implements module.OSRootFS.
func (schemaFS) OSRoot() string { return schemaRoot }

// schemaOverlay adds the embedded schema's files under schemaRoot to an
// overlay.
func schemaOverlay(overlay map[string]load.Source) error {
	return fs.WalkDir(schema.FS, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := schema.FS.ReadFile(p)
		if err != nil {
			return err
		}
		overlay[path.Join(schemaRoot, p)] = load.FromBytes(data)
		return nil
	})
}

// ModuleVersions implements modconfig.Registry.
func (schemaRegistry) ModuleVersions(_ context.Context, mpath string) ([]string, error) {
	if mpath != schema.ModulePath {
		return nil, nil
	}
	return []string{schema.Version}, nil
}

// defaultModuleFile is overlaid on a repository that has no
// cue.mod/module.cue of its own.
var defaultModuleFile = fmt.Sprintf(`module: "policies.palisade.local@v0"
language: version: "v0.17.0"
deps: %q: v: %q
`, schema.ModulePath, schema.Version)

// kinds compiles the embedded schema in ctx and returns #Kinds, the map
// from kind to definition, and #FlowTest, the definition of flow tests.
func kinds(ctx *cue.Context) (cue.Value, cue.Value, error) {
	insts := load.Instances([]string{"."}, &load.Config{
		FS:         schema.FS,
		Dir:        "/",
		FromFSPath: func(p string) string { return path.Join(schemaRoot, p) },
		Registry:   schemaRegistry{},
	})
	if len(insts) != 1 || insts[0].Err != nil {
		return cue.Value{}, cue.Value{}, fmt.Errorf("load embedded schema: %v", insts[0].Err)
	}
	v := ctx.BuildInstance(insts[0])
	if err := v.Err(); err != nil {
		return cue.Value{}, cue.Value{}, fmt.Errorf("build embedded schema: %w", err)
	}
	k := v.LookupPath(cue.MakePath(cue.Def("Kinds")))
	if !k.Exists() {
		return cue.Value{}, cue.Value{}, fmt.Errorf("embedded schema has no #Kinds")
	}
	ft := v.LookupPath(cue.MakePath(cue.Def("FlowTest")))
	if !ft.Exists() {
		return cue.Value{}, cue.Value{}, fmt.Errorf("embedded schema has no #FlowTest")
	}
	return k, ft, nil
}

// newContext returns a CUE context on the current evaluator.
func newContext() *cue.Context { return cuecontext.New() }
