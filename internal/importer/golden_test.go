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
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/tools/txtar"
)

var update = flag.Bool("update", false, "rewrite the want sections of testdata/golden/*.txtar and testdata/corpus-counts.txt")

// TestGolden imports the input.yaml of each txtar archive in
// testdata/golden and compares the CUE and the report (one line per
// document, then every diagnostic) with the archive's output.cue and
// report sections. Run with -update to rewrite them, then review the diff.
func TestGolden(t *testing.T) {
	im := newTestImporter(t)
	files, err := filepath.Glob("testdata/golden/*.txtar")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 15 {
		t.Fatalf("want at least 15 golden archives, have %d", len(files))
	}
	for _, file := range files {
		t.Run(strings.TrimSuffix(filepath.Base(file), ".txtar"), func(t *testing.T) {
			ar, err := txtar.ParseFile(file)
			if err != nil {
				t.Fatal(err)
			}
			var input []byte
			for _, f := range ar.Files {
				if f.Name == "input.yaml" {
					input = f.Data
				}
			}
			if input == nil {
				t.Fatal("archive has no input.yaml")
			}
			res := im.File("input.yaml", input)
			cue, err := Render(DefaultPackage, res)
			if err != nil {
				t.Fatal(err)
			}
			checkRendered(t, im, cue)
			got := map[string][]byte{"output.cue": cue, "report": report(res)}
			if *update {
				var out []txtar.File
				for _, f := range ar.Files {
					if f.Name == "input.yaml" {
						out = append(out, f)
					}
				}
				for _, name := range []string{"output.cue", "report"} {
					if len(got[name]) > 0 {
						out = append(out, txtar.File{Name: name, Data: got[name]})
					}
				}
				ar.Files = out
				if err := os.WriteFile(file, txtar.Format(ar), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want := map[string][]byte{}
			for _, f := range ar.Files {
				want[f.Name] = f.Data
			}
			for _, name := range []string{"output.cue", "report"} {
				if !bytes.Equal(want[name], got[name]) {
					t.Errorf("%s differs (run go test -run TestGolden -update and review the diff)\n--- want\n%s\n--- got\n%s", name, want[name], got[name])
				}
			}
		})
	}
}

// report is the golden form of a file's import: one line per document,
// then every diagnostic, sorted.
func report(r *FileResult) []byte {
	var b bytes.Buffer
	for _, o := range r.Objects {
		fmt.Fprintf(&b, "%s %s %s", o.Status, o.Source.Pos, o.Source.ID())
		for _, p := range o.Emitted {
			fmt.Fprintf(&b, " -> %s: %q", p.Field, p.Key)
		}
		b.WriteString("\n")
	}
	for _, d := range r.All() {
		fmt.Fprintln(&b, d)
	}
	return b.Bytes()
}
