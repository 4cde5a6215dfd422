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
	"bytes"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"github.com/open-policy-agent/opa/v1/ast"

	"github.com/palisade-dev/palisade/policies/guards"
)

// Budgets of a guard source: guards are code someone else owns, loaded into
// the controller, so their size is bounded like the policies' is.
const (
	maxModuleBytes = 1 << 20
	maxSourceBytes = 16 << 20
)

// BuiltinName is the name of the built-in guard source.
const BuiltinName = "builtin"

// Source is one set of guards with one owner: the built-in library, a
// directory or repository path, or a ConfigMap. A Rego package belongs to
// exactly one source, so a finding always names who owns the rule.
type Source struct {
	// Name identifies the source in positions and findings, e.g. "builtin",
	// "security-guards" or "configmap/security/guards". Module positions are
	// Name + "/" + the module's path, so it must not be an absolute path if
	// decisions are to be free of machine-specific paths.
	Name string
	// Modules maps a slash-separated path (relative to the source) to Rego
	// source text. Files ending in _test.rego are tests: RunTests runs them,
	// Compile leaves them out.
	Modules map[string][]byte
	// Data is merged into OPA's data document (e.g. data.json of a bundle).
	// params.json is stored at data.palisade.params.
	Data map[string]any
}

// Builtin returns the built-in guard library embedded from policies/guards.
func Builtin() Source {
	s := Source{Name: BuiltinName, Modules: map[string][]byte{}}
	entries, err := guards.FS.ReadDir(".")
	if err != nil {
		panic(fmt.Sprintf("guard: read embedded library: %v", err)) // the embed pattern guarantees the directory
	}
	for _, e := range entries {
		b, err := guards.FS.ReadFile(e.Name())
		if err != nil {
			panic(fmt.Sprintf("guard: read embedded %s: %v", e.Name(), err))
		}
		s.Modules[e.Name()] = b
	}
	return s
}

// Without returns s without the modules whose package one of others
// declares, nor those of the tests of such a package (package P_test),
// and the packages it left out, sorted. `palisadectl guard test` uses it
// so that an edited copy of the built-in guards is tested in their place;
// Compile still refuses a package that two sources declare, as the
// cluster does. A module that does not parse stays, so that its error is
// reported.
func (s Source) Without(others ...Source) (Source, []string) {
	taken := map[string]bool{}
	for _, o := range others {
		for p, b := range o.Modules {
			if pkg, ok := modulePackage(o.moduleFile(p), b); ok {
				taken[pkg] = true
			}
		}
	}
	out := Source{Name: s.Name, Modules: map[string][]byte{}, Data: s.Data}
	replaced := map[string]bool{}
	for p, b := range s.Modules {
		pkg, ok := modulePackage(s.moduleFile(p), b)
		switch {
		case ok && taken[pkg]:
			replaced[pkg] = true
		case ok && taken[strings.TrimSuffix(pkg, "_test")] && isTest(p):
			// The built-in tests of a replaced package would test the
			// replacement against the built-in expectations.
		default:
			out.Modules[p] = b
		}
	}
	return out, slices.Sorted(mapsKeys(replaced))
}

// modulePackage returns the package a Rego module declares, as
// data.a.b.
func modulePackage(file string, b []byte) (string, bool) {
	m, err := ast.ParseModuleWithOpts(file, string(b), ast.ParserOptions{RegoVersion: ast.RegoV1, Capabilities: capabilities()})
	if err != nil || m == nil || m.Package == nil {
		return "", false
	}
	return m.Package.Path.String(), true
}

// FromDir loads every *.rego file under dir (hidden directories skipped,
// symlinks not followed), plus dir/data.json (merged at the root of data)
// and dir/params.json (at data.palisade.params).
func FromDir(name, dir string) (Source, error) {
	s := Source{Name: name, Modules: map[string][]byte{}}
	total := int64(0)
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if p != dir && strings.HasPrefix(d.Name(), ".") {
				return filepath.SkipDir
			}
			return nil
		}
		if !d.Type().IsRegular() || !strings.HasSuffix(d.Name(), ".rego") {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		if info.Size() > maxModuleBytes {
			return fmt.Errorf("%s is %d bytes, over the %d-byte budget of a guard module", p, info.Size(), maxModuleBytes)
		}
		if total += info.Size(); total > maxSourceBytes {
			return fmt.Errorf("guards in %s exceed the %d-byte budget of a source", dir, maxSourceBytes)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		s.Modules[filepath.ToSlash(rel)] = b
		return nil
	})
	if err != nil {
		return Source{}, fmt.Errorf("load guards %s: %w", name, err)
	}
	for _, f := range []string{"data.json", "params.json"} {
		b, err := os.ReadFile(filepath.Join(dir, f))
		if os.IsNotExist(err) {
			continue
		}
		if err != nil {
			return Source{}, fmt.Errorf("load guards %s: %w", name, err)
		}
		if err := s.addData(f, b); err != nil {
			return Source{}, err
		}
	}
	return s, nil
}

// FromConfigMap builds a source from a ConfigMap's data: keys ending in
// .rego are modules, data.json and params.json are data as in FromDir, and
// other keys are ignored so that a ConfigMap may carry a README. It is pure:
// the caller has fetched the ConfigMap.
func FromConfigMap(name string, data map[string]string) (Source, error) {
	s := Source{Name: name, Modules: map[string][]byte{}}
	keys := make([]string, 0, len(data))
	for k := range data {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	total := 0
	for _, k := range keys {
		v := data[k]
		if total += len(v); total > maxSourceBytes {
			return Source{}, fmt.Errorf("load guards %s: over the %d-byte budget of a source", name, maxSourceBytes)
		}
		switch {
		case strings.HasSuffix(k, ".rego"):
			if len(v) > maxModuleBytes {
				return Source{}, fmt.Errorf("load guards %s: %s is %d bytes, over the %d-byte budget of a guard module", name, k, len(v), maxModuleBytes)
			}
			s.Modules[k] = []byte(v)
		case k == "data.json" || k == "params.json":
			if err := s.addData(k, []byte(v)); err != nil {
				return Source{}, err
			}
		}
	}
	return s, nil
}

// addData decodes a data file into s.Data.
func (s *Source) addData(file string, b []byte) error {
	var v map[string]any
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	if err := dec.Decode(&v); err != nil {
		return fmt.Errorf("load guards %s: %s: want a JSON object: %w", s.Name, file, err)
	}
	if file == "params.json" {
		v = map[string]any{"palisade": map[string]any{"params": v}}
	}
	merged, err := mergeData(s.Data, v, "")
	if err != nil {
		return fmt.Errorf("load guards %s: %s: %w", s.Name, file, err)
	}
	s.Data = merged
	return nil
}

// mergeData deep-merges b into a copy of a; two sources setting the same
// leaf is an error, because which one wins would depend on their order.
func mergeData(a, b map[string]any, at string) (map[string]any, error) {
	out := make(map[string]any, len(a)+len(b))
	for k, v := range a {
		out[k] = v
	}
	for k, v := range b {
		old, ok := out[k]
		if !ok {
			out[k] = v
			continue
		}
		om, ok1 := old.(map[string]any)
		nm, ok2 := v.(map[string]any)
		if !ok1 || !ok2 {
			return nil, fmt.Errorf("data.%s is set twice", dotted(at, k))
		}
		m, err := mergeData(om, nm, dotted(at, k))
		if err != nil {
			return nil, err
		}
		out[k] = m
	}
	return out, nil
}

// overlay deep-merges b over a copy of a, b winning on conflicts: a
// PolicySet's parameters override the defaults its guard sources ship.
func overlay(a, b map[string]any) map[string]any {
	out := make(map[string]any, len(a)+len(b))
	for k, v := range a {
		out[k] = v
	}
	for k, v := range b {
		om, ok1 := out[k].(map[string]any)
		nm, ok2 := v.(map[string]any)
		if ok1 && ok2 {
			v = overlay(om, nm)
		}
		out[k] = v
	}
	return out
}

func dotted(at, k string) string {
	if at == "" {
		return k
	}
	return at + "." + k
}

// isTest reports whether a module path is a Rego test file.
func isTest(p string) bool { return strings.HasSuffix(p, "_test.rego") }

// moduleFile is the file name OPA reports a module's positions with.
func (s *Source) moduleFile(p string) string { return s.Name + "/" + p }
