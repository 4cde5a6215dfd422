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

package gen_test

import (
	"bytes"
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/palisade-dev/palisade/hack/genpolicies/gen"
	"github.com/palisade-dev/palisade/internal/loader"
	"github.com/palisade-dev/palisade/policies/schema"
)

// readTree returns the files under dir by slash path.
func readTree(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	files := map[string][]byte{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := os.ReadFile(p)
		rel, _ := filepath.Rel(dir, p)
		files[filepath.ToSlash(rel)] = data
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

func TestDeterministic(t *testing.T) {
	a, b, c := t.TempDir(), t.TempDir(), t.TempDir()
	for _, d := range []struct {
		dir  string
		seed uint64
	}{{a, 7}, {b, 7}, {c, 8}} {
		if _, err := gen.Write(d.dir, gen.Config{N: 250, Seed: d.seed}); err != nil {
			t.Fatal(err)
		}
	}
	ta, tb, tc := readTree(t, a), readTree(t, b), readTree(t, c)
	if len(ta) != len(tb) {
		t.Fatalf("same seed: %d and %d files", len(ta), len(tb))
	}
	differs := false
	for name, data := range ta {
		if !bytes.Equal(data, tb[name]) {
			t.Errorf("same seed: %s differs", name)
		}
		if !bytes.Equal(data, tc[name]) {
			differs = true
		}
	}
	if !differs {
		t.Error("seeds 7 and 8 wrote the same repository")
	}
}

func TestLayout(t *testing.T) {
	dir := t.TempDir()
	st, err := gen.Write(dir, gen.Config{N: 1050})
	if err != nil {
		t.Fatal(err)
	}
	if st.Files != 11 || st.Packages != 5 || st.Policies != 1050 {
		t.Errorf("stats = %+v, want 11 files in 5 packages", st)
	}
	files := readTree(t, dir)
	var cue int
	for name, data := range files {
		if strings.HasSuffix(name, ".cue") && !strings.HasPrefix(name, "cue.mod/") && !strings.HasPrefix(name, gen.SchemaDir+"/") {
			cue++
			if !bytes.Contains(data, []byte("import \"palisade.dev/schema\"")) {
				t.Errorf("%s does not import the schema", name)
			}
		}
	}
	if cue != 11 {
		t.Errorf("%d policy files, want 11", cue)
	}
	if m := string(files["cue.mod/module.cue"]); !strings.Contains(m, `deps: "palisade.dev/schema@v0": v: "v0.1.0"`) {
		t.Errorf("module.cue does not depend on the embedded schema version:\n%s", m)
	}
	if m := string(files["cue.mod/local-module.cue"]); !strings.Contains(m, `replaceWith: "./_schema"`) {
		t.Errorf("local-module.cue does not replace the schema with ./_schema:\n%s", m)
	}
	// The copy is the embedded schema, byte for byte.
	err = fs.WalkDir(schema.FS, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		want, _ := schema.FS.ReadFile(p)
		if got, ok := files[gen.SchemaDir+"/"+p]; !ok || !bytes.Equal(got, want) {
			t.Errorf("%s/%s is not a copy of the embedded %s", gen.SchemaDir, p, p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestValid loads generated repositories with the loader, through the
// schema copy and through the embedded schema: every policy is valid.
// (hack/bench-validate.sh also has cue vet and palisadectl check them.)
func TestValid(t *testing.T) {
	for _, embedded := range []bool{false, true} {
		dir := t.TempDir()
		if _, err := gen.Write(dir, gen.Config{N: 300, Seed: 3, Embedded: embedded}); err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(filepath.Join(dir, gen.SchemaDir)); (err == nil) == embedded {
			t.Errorf("embedded=%v: _schema present = %v", embedded, err == nil)
		}
		res, err := loader.Load(context.Background(), dir, loader.Options{})
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range res.Diagnostics {
			t.Errorf("embedded=%v: %s", embedded, d)
		}
		if len(res.Objects) != 300 {
			t.Errorf("embedded=%v: %d objects, want 300", embedded, len(res.Objects))
		}
		names := map[string]bool{}
		for _, o := range res.Objects {
			if o.Kind != "NetworkPolicy" || o.Namespace == "" || names[o.ID()] {
				t.Errorf("unexpected or duplicate object %s", o.ID())
			}
			names[o.ID()] = true
		}
	}
}
