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

package validate_test

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/tools/txtar"

	"github.com/palisade-dev/palisade/internal/validate"
)

var schemaLine = regexp.MustCompile(`\(schema ([a-z0-9_]+\.cue):[0-9]+\)`)

var update = flag.Bool("update", false, "rewrite the golden diagnostics of testdata/golden/*.txtar")

// TestGolden validates each txtar archive in testdata/golden as a policy
// repository and compares the diagnostics with the archive's "want"
// section, one "file:line:col: severity CODE: message" per line.
//
// The archive comment holds directives, one per line:
//
//	timeout: 2s                      evaluation time budget
//	max-file-size: 1024              per-file size budget in bytes
//	max-output-size: 4096            budget for the policies' JSON in bytes
//	symlink: link.cue -> /etc/hosts  create a symlink in the repository
//	bigfile: big.cue 52428800        create a file of that many bytes
//	unescape: file.cue               turn \xNN in the file into raw bytes
func TestGolden(t *testing.T) {
	files, err := filepath.Glob("testdata/golden/*.txtar")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("no golden files")
	}
	for _, file := range files {
		t.Run(strings.TrimSuffix(filepath.Base(file), ".txtar"), func(t *testing.T) {
			t.Parallel()
			ar, err := txtar.ParseFile(file)
			if err != nil {
				t.Fatal(err)
			}
			dir := t.TempDir()
			opts := validate.Options{}
			var want []byte
			wantIdx := -1
			unescape := map[string]bool{}
			var setup []func()
			for _, line := range strings.Split(string(ar.Comment), "\n") {
				key, val, ok := strings.Cut(strings.TrimSpace(line), ":")
				if !ok {
					continue
				}
				val = strings.TrimSpace(val)
				switch key {
				case "timeout":
					d, err := time.ParseDuration(val)
					if err != nil {
						t.Fatal(err)
					}
					opts.Load.Timeout = d
				case "max-file-size":
					n, err := strconv.ParseInt(val, 10, 64)
					if err != nil {
						t.Fatal(err)
					}
					opts.Load.MaxFileBytes = n
				case "max-output-size":
					n, err := strconv.ParseInt(val, 10, 64)
					if err != nil {
						t.Fatal(err)
					}
					opts.Load.MaxOutputBytes = n
				case "symlink":
					name, target, _ := strings.Cut(val, " -> ")
					setup = append(setup, func() {
						if err := os.Symlink(target, filepath.Join(dir, name)); err != nil {
							t.Fatal(err)
						}
					})
				case "bigfile":
					name, size, _ := strings.Cut(val, " ")
					n, err := strconv.Atoi(size)
					if err != nil {
						t.Fatal(err)
					}
					setup = append(setup, func() {
						// A valid CUE comment, so only the size is wrong.
						data := append([]byte("package big\n"), bytes.Repeat([]byte("// padding padding padding padding\n"), n/35+1)...)
						if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
							t.Fatal(err)
						}
					})
				case "unescape":
					unescape[val] = true
				}
			}
			for i, f := range ar.Files {
				if f.Name == "want" {
					want, wantIdx = f.Data, i
					continue
				}
				data := f.Data
				if unescape[f.Name] {
					s, err := strconv.Unquote(`"` + strings.ReplaceAll(string(data), "\n", `\n`) + `"`)
					if err != nil {
						t.Fatalf("unescape %s: %v", f.Name, err)
					}
					data = []byte(s)
				}
				p := filepath.Join(dir, f.Name)
				if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(p, data, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			for _, f := range setup {
				f()
			}
			rep, err := validate.Dir(context.Background(), dir, opts)
			if err != nil {
				t.Fatal(err)
			}
			var got bytes.Buffer
			for _, d := range rep.Diagnostics {
				// Schema line numbers move with every schema edit; the
				// golden files keep the schema file name only.
				line := schemaLine.ReplaceAllString(d.String(), "(schema $1)")
				fmt.Fprintln(&got, strings.ReplaceAll(line, dir, "$DIR"))
			}
			if *update {
				if wantIdx < 0 {
					ar.Files = append(ar.Files, txtar.File{Name: "want"})
					wantIdx = len(ar.Files) - 1
				}
				ar.Files[wantIdx].Data = got.Bytes()
				if err := os.WriteFile(file, txtar.Format(ar), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			if wantIdx < 0 {
				t.Fatalf("no want section; run go test -run TestGolden -update and review the result")
			}
			if got.String() != string(want) {
				t.Errorf("diagnostics differ\n--- got\n%s--- want\n%s", got.String(), want)
			}
			if len(want) == 0 && !strings.HasPrefix(filepath.Base(file), "valid") {
				t.Errorf("a bad-input case must produce diagnostics")
			}
		})
	}
}
