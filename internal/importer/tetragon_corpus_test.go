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
	"context"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/palisade-dev/palisade/api/v1alpha1"
	"github.com/palisade-dev/palisade/internal/diag"
	tracingdp "github.com/palisade-dev/palisade/internal/tracing"
	"github.com/palisade-dev/palisade/internal/tracing/hooks"
	"github.com/palisade-dev/palisade/internal/validate"
)

// tetragonCorpusGolden records what becomes of every Tetragon
// TracingPolicy of the shared corpus on the kernel it was recorded on.
const tetragonCorpusGolden = "testdata/tetragon-corpus.golden"

// TestTetragonCorpusOnKernel imports every Tetragon TracingPolicy of
// ../shared/corpus/tetragon-tracingpolicy and the guide's five
// seed-examples/tracing-*.yaml, validates each imported policy as
// palisadectl validate --kernel does (schema, semantic checks, and the
// hooks against the running kernel), and classifies each document:
// valid (it would load here), refused by validate with its positioned
// reasons, or refused by the importer with its. The classification and
// the counts by reason code are compared with tetragonCorpusGolden, so a
// change in what loads shows in review.
func TestTetragonCorpusOnKernel(t *testing.T) {
	if _, err := os.Stat(corpusDir); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("corpus not found at %s under CI: %v", corpusDir, err)
		}
		t.Skipf("corpus not found at %s (it lives in the shared folder beside the repository): %v", corpusDir, err)
	}
	if _, err := os.Stat("/sys/kernel/btf/vmlinux"); err != nil {
		t.Skipf("no kernel BTF at /sys/kernel/btf/vmlinux, so hooks cannot be checked: %v", err)
	}
	k, err := hooks.LoadKernel()
	if err != nil {
		t.Fatalf("LoadKernel: %v", err)
	}
	release, err := os.ReadFile("/proc/sys/kernel/osrelease")
	if err != nil {
		t.Fatal(err)
	}
	kernel := fmt.Sprintf("kernel %s %s", strings.TrimSpace(string(release)), k.Arch)
	// The checker of palisadectl validate --kernel: the hooks resolve, the
	// datapath compiles them, and some mechanism attaches them on this
	// kernel (probed), so "valid" means "loads here".
	if err := tracingdp.ProbeKernel(k); err != nil {
		t.Skipf("cannot probe what the kernel loads, so valid would not mean loadable: %v", err)
	}
	opts := validate.Options{Hooks: func(spec *v1alpha1.TracingPolicySpec) []validate.HookProblem {
		problems := tracingdp.Check(k, *spec)
		out := make([]validate.HookProblem, len(problems))
		for i, p := range problems {
			out[i] = validate.HookProblem{Path: p.Path, Code: p.Code, Message: p.Message}
		}
		return out
	}}

	var files []string
	err = filepath.WalkDir(filepath.Join(corpusDir, "tetragon-tracingpolicy"), func(path string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && (strings.HasSuffix(path, ".yaml") || strings.HasSuffix(path, ".yml")) {
			files = append(files, path)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	seeds, err := filepath.Glob(filepath.Join(corpusDir, "seed-examples", "tracing-*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 || len(seeds) != 5 {
		t.Fatalf("found %d Tetragon policies and %d tracing seed examples, want some and 5", len(files), len(seeds))
	}
	files = append(files, seeds...)
	slices.Sort(files)

	im := newTestImporter(t)
	var lines []string
	counts := map[string]int{}            // class → documents
	byCode := map[string]map[string]int{} // class → code → documents
	for _, path := range files {
		rel, _ := filepath.Rel(corpusDir, path)
		rel = filepath.ToSlash(rel)
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		res := importNoPanic(t, im, rel, data)
		if res == nil {
			continue
		}
		// The imported objects validate in one repository per file, as
		// palisadectl import -d writes them.
		var reasons map[string]diag.List // object ID → validate's errors
		if out, err := Render(DefaultPackage, res); err != nil {
			t.Errorf("%s: render: %v", rel, err)
			continue
		} else if out != nil {
			reasons = validateOnKernel(t, rel, out, opts)
		}
		for _, o := range res.Objects {
			if !o.Policy {
				continue
			}
			var class string
			var why diag.List
			switch o.Status {
			case Rejected:
				class = "import-refused"
				for _, d := range o.Diagnostics {
					if d.Severity == diag.Error {
						why = append(why, d)
					}
				}
			default:
				for _, p := range o.Emitted {
					why = append(why, reasons[p.Kind+"/"+p.Namespace+"/"+p.Name]...)
				}
				class = "valid"
				if len(why) > 0 {
					class = "refused"
				}
			}
			if class != "valid" && len(why) == 0 {
				t.Errorf("%s: %s is %s without a reason", rel, o.Source.ID(), class)
			}
			counts[class]++
			lines = append(lines, fmt.Sprintf("%s %s %s", class, rel, o.Source.ID()))
			codes := map[string]bool{}
			for _, d := range why.Sort() {
				if d.Pos.Line == 0 {
					t.Errorf("%s: reason without a position: %s", rel, d)
				}
				codes[d.Code] = true
				lines = append(lines, "\t"+d.String())
			}
			for c := range codes {
				if byCode[class] == nil {
					byCode[class] = map[string]int{}
				}
				byCode[class][c]++
			}
		}
	}

	var b strings.Builder
	b.WriteString("# palisadectl import, then palisadectl validate --kernel, over every Tetragon TracingPolicy of\n" +
		"# ../shared/corpus/tetragon-tracingpolicy and the guide's seed-examples/tracing-*.yaml: each document\n" +
		"# is valid (it would load on this kernel), refused by validate, or refused by the importer, with\n" +
		"# the positioned reasons. Regenerate with\n" +
		"#   go test ./internal/importer/ -run TestTetragonCorpusOnKernel -update\n" +
		"# and review the diff. The counts hold for the kernel (and the machine's uprobe binaries) below.\n")
	b.WriteString(kernel + "\n\n")
	total := counts["valid"] + counts["refused"] + counts["import-refused"]
	fmt.Fprintf(&b, "documents %d: valid %d, refused by validate %d, refused by the importer %d\n", total, counts["valid"], counts["refused"], counts["import-refused"])
	for _, class := range []string{"refused", "import-refused"} {
		for _, c := range slices.Sorted(maps.Keys(byCode[class])) {
			fmt.Fprintf(&b, "%s %s %d\n", class, c, byCode[class][c])
		}
	}
	b.WriteString("\n" + strings.Join(lines, "\n") + "\n")
	got := b.String()
	t.Logf("documents %d: valid %d, refused by validate %d, refused by the importer %d", total, counts["valid"], counts["refused"], counts["import-refused"])

	if *update {
		if err := os.WriteFile(tetragonCorpusGolden, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(tetragonCorpusGolden)
	if err != nil {
		t.Fatalf("read %s: %v (run with -update to create it)", tetragonCorpusGolden, err)
	}
	if wantKernel := kernelLine(string(want)); wantKernel != kernel {
		t.Skipf("%s was recorded on %q, and this is %q: hooks differ between kernels, so the counts are not compared (run with -update to see this kernel's)", tetragonCorpusGolden, wantKernel, kernel)
	}
	if string(want) != got {
		t.Errorf("corpus classification changed (run go test ./internal/importer/ -run TestTetragonCorpusOnKernel -update and review the diff)\n--- want\n%s--- got\n%s", want, got)
	}
}

// kernelLine returns the "kernel ..." line of a golden file.
func kernelLine(s string) string {
	for l := range strings.Lines(s) {
		if strings.HasPrefix(l, "kernel ") {
			return strings.TrimSpace(l)
		}
	}
	return ""
}

// validateOnKernel validates rendered CUE as palisadectl validate does
// with opts, in a repository holding one file named after rel, and
// returns the errors by object ID.
func validateOnKernel(t *testing.T, rel string, src []byte, opts validate.Options) map[string]diag.List {
	t.Helper()
	dir := t.TempDir()
	name := strings.TrimSuffix(filepath.Base(rel), filepath.Ext(rel)) + ".cue"
	if err := os.WriteFile(filepath.Join(dir, name), src, 0o644); err != nil {
		t.Fatal(err)
	}
	rep, err := validate.Dir(context.Background(), dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]diag.List{}
	for _, d := range rep.Diagnostics {
		if d.Severity != diag.Error {
			continue
		}
		if d.Object == "" {
			t.Errorf("%s: error not about an object: %s", rel, d)
			continue
		}
		out[d.Object] = append(out[d.Object], d)
	}
	return out
}
