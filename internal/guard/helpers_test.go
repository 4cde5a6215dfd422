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
	"os"
	"path/filepath"
	"testing"

	"github.com/palisade-dev/palisade/internal/guard"
	"github.com/palisade-dev/palisade/internal/validate"
)

// load writes a policy repository of CUE files and validates it; the
// files must be valid.
func load(t testing.TB, files map[string]string) []*validate.Policy {
	t.Helper()
	dir := t.TempDir()
	for name, src := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if len(files) == 0 {
		return nil
	}
	rep, err := validate.Dir(context.Background(), dir, validate.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if !rep.Valid() {
		t.Fatalf("test repository does not validate:\n%v", rep.Diagnostics)
	}
	return rep.Objects
}

// np is a NetworkPolicy in CUE, in package policies, under field key.
func np(key, namespace, name, spec string) string {
	return "package policies\n\n" + key + `: {
	apiVersion: "palisade.dev/v1alpha1"
	kind:       "NetworkPolicy"
	metadata: {name: "` + name + `", namespace: "` + namespace + `"}
	spec: {
` + spec + `
	}
}
`
}

// builtin compiles the built-in guards.
func builtin(t testing.TB, extra ...guard.Source) *guard.Guards {
	t.Helper()
	g, diags := guard.Compile(append([]guard.Source{guard.Builtin()}, extra...)...)
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	return g
}

// change returns the change with id, failing the test without one.
func change(t *testing.T, cs *guard.ChangeSet, id string) *guard.Change {
	t.Helper()
	for _, c := range cs.Changes {
		if c.ID == id {
			return c
		}
	}
	t.Fatalf("no change of %s in %s", id, cs.JSON())
	return nil
}
