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
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"cuelang.org/go/cue"

	"github.com/palisade-dev/palisade/internal/diag"
	"github.com/palisade-dev/palisade/internal/validate"
)

func newTestImporter(t *testing.T) *Importer {
	t.Helper()
	im, err := New()
	if err != nil {
		t.Fatal(err)
	}
	return im
}

// checkRendered compiles rendered CUE on its own, as a user's repository
// would, and checks that every object in it satisfies the schema: the
// importer's own check runs on its syntax tree, this one on the text.
func checkRendered(t *testing.T, im *Importer, src []byte) int {
	t.Helper()
	if src == nil {
		return 0
	}
	ctx := newContext()
	kinds, err := schemaKinds(ctx)
	if err != nil {
		t.Fatal(err)
	}
	v := ctx.CompileBytes(src, cue.Filename("output.cue"))
	if err := v.Err(); err != nil {
		t.Fatalf("rendered CUE does not compile: %v\n%s", err, src)
	}
	n := 0
	for kind, field := range fieldNames {
		objs := v.LookupPath(cue.MakePath(cue.Str(field)))
		if !objs.Exists() {
			continue
		}
		it, err := objs.Fields()
		if err != nil {
			t.Fatal(err)
		}
		for it.Next() {
			n++
			u := kinds.LookupPath(cue.MakePath(cue.Str(kind))).Unify(it.Value())
			if err := u.Validate(cue.Concrete(true), cue.Final()); err != nil {
				t.Errorf("%s %s does not validate against the schema: %v", field, it.Selector(), err)
			}
		}
	}
	return n
}

// corpusDir is the shared corpus of published policies, beside the
// repository.
const corpusDir = "../../../shared/corpus"

// counts are the import counts of one corpus folder.
type counts struct {
	documents, policies, imported, rejected, notPolicy, emitted int
}

func (c counts) String() string {
	return fmt.Sprintf("documents=%d policies=%d imported=%d rejected=%d not-policy=%d emitted=%d",
		c.documents, c.policies, c.imported, c.rejected, c.notPolicy, c.emitted)
}

// TestCorpus imports every YAML file of the shared corpus and checks that
// nothing panics, that every document is either imported (and its CUE
// compiles and validates on its own) or rejected with at least one
// positioned PAL9xx error, and that the counts per folder match
// testdata/corpus-counts.txt, so that any change in what the importer
// accepts shows up as a diff to review.
func TestCorpus(t *testing.T) {
	if _, err := os.Stat(corpusDir); err != nil {
		// CI clones the repository with shared/ beside it, so there the
		// corpus must be found; elsewhere it may be absent.
		if os.Getenv("CI") == "true" {
			t.Fatalf("corpus not found at %s under CI: %v", corpusDir, err)
		}
		t.Skipf("corpus not found at %s (it lives in the shared folder beside the repository): %v", corpusDir, err)
	}
	im := newTestImporter(t)
	got := map[string]*counts{}
	var semantic []string          // validate's errors on imported policies
	invalid := map[string]string{} // file → codes of those errors
	err := filepath.WalkDir(corpusDir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() || (!strings.HasSuffix(path, ".yaml") && !strings.HasSuffix(path, ".yml")) {
			return nil
		}
		rel, _ := filepath.Rel(corpusDir, path)
		rel = filepath.ToSlash(rel)
		folder, _, _ := strings.Cut(rel, "/")
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		c := got[folder]
		if c == nil {
			c = &counts{}
			got[folder] = c
		}
		res := importNoPanic(t, im, rel, data)
		if res == nil {
			return nil
		}
		for _, d := range res.Diagnostics {
			if d.Pos.Line == 0 {
				t.Errorf("%s: file diagnostic without a line: %s", rel, d)
			}
		}
		emitted := 0
		for _, o := range res.Objects {
			c.documents++
			if o.Policy {
				c.policies++
			}
			switch {
			case o.Status == Imported:
				c.imported++
				c.emitted += len(o.Emitted)
				emitted += len(o.Emitted)
			case !o.Policy:
				c.notPolicy++
			default:
				c.rejected++
			}
			if o.Status == Rejected && !hasPositionedError(o.Diagnostics) {
				t.Errorf("%s: %s is rejected without a positioned PAL9xx error: %v", rel, o.Source.ID(), o.Diagnostics)
			}
			for _, d := range o.Diagnostics {
				if !strings.HasPrefix(d.Code, "PAL9") {
					t.Errorf("%s: diagnostic with a code outside the importer's: %s", rel, d)
				}
			}
		}
		out, err := Render(DefaultPackage, res)
		if err != nil {
			t.Errorf("%s: render: %v", rel, err)
			return nil
		}
		if n := checkRendered(t, im, out); n != emitted {
			t.Errorf("%s: rendered %d objects, imported %d", rel, n, emitted)
		}
		if out != nil {
			var codes []string
			for _, d := range validateRendered(t, out) {
				if d.Severity == diag.Error {
					semantic = append(semantic, rel+": "+d.String())
					codes = append(codes, d.Code)
				}
			}
			invalid[rel] = strings.Join(codes, " ")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	total := counts{}
	for folder, c := range got {
		lines = append(lines, fmt.Sprintf("%s %s", folder, c))
		total.documents += c.documents
		total.policies += c.policies
		total.imported += c.imported
		total.rejected += c.rejected
		total.notPolicy += c.notPolicy
		total.emitted += c.emitted
	}
	// An imported policy must validate: import checks the schema only, and
	// validate's semantic checks are what the cluster applies. The files
	// of knownInvalid are the exceptions, each for its stated reason;
	// one that validates now must leave the list.
	for rel, codes := range invalid {
		known, isKnown := knownInvalid[rel]
		switch {
		case codes == "" && isKnown:
			t.Errorf("%s validates now: remove it from knownInvalid", rel)
		case codes != "" && !isKnown:
			for _, e := range semantic {
				if strings.HasPrefix(e, rel+": ") {
					t.Errorf("imported policy does not validate: %s", e)
				}
			}
		case codes != known.codes:
			t.Errorf("%s: validate reports %s, knownInvalid says %s (%s)", rel, codes, known.codes, known.why)
		}
	}
	for rel := range knownInvalid {
		if _, ok := invalid[rel]; !ok {
			t.Errorf("knownInvalid lists %s, which imported nothing", rel)
		}
	}
	sort.Strings(lines)
	lines = append(lines, fmt.Sprintf("total %s", total))
	for _, l := range lines {
		t.Log(l)
	}
	if total.policies > 0 {
		t.Logf("imported %d of %d policy documents (%.1f%%)", total.imported, total.policies, 100*float64(total.imported)/float64(total.policies))
	}
	text := "# palisadectl import over ../shared/corpus, per folder; regenerate with\n" +
		"# go test ./internal/importer/ -run TestCorpus -update and review the diff.\n" +
		strings.Join(lines, "\n") + "\n"
	const file = "testdata/corpus-counts.txt"
	if *update {
		if err := os.WriteFile(file, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(file)
	if err != nil {
		t.Fatalf("read %s: %v (run with -update to create it)", file, err)
	}
	if string(want) != text {
		t.Errorf("corpus counts changed (run go test ./internal/importer/ -run TestCorpus -update and review the diff)\n--- want\n%s--- got\n%s", want, text)
	}
}

// importNoPanic imports a file, turning a panic into a test failure.
func importNoPanic(t *testing.T, im *Importer, name string, data []byte) (res *FileResult) {
	t.Helper()
	defer func() {
		if r := recover(); r != nil {
			t.Errorf("%s: import panicked: %v", name, r)
			res = nil
		}
	}()
	return im.File(name, data)
}

// hasPositionedError reports whether l has a PAL9xx error with a line.
func hasPositionedError(l diag.List) bool {
	for _, d := range l {
		if d.Severity == diag.Error && strings.HasPrefix(d.Code, "PAL9") && d.Pos.Line > 0 && d.Pos.File != "" {
			return true
		}
	}
	return false
}

// knownInvalid are the corpus files that import without an error but do
// not validate, with validate's error codes (in order) and why. Each is a
// gap of the importer: it should reject (PAL902) or translate what it
// emits today.
var knownInvalid = map[string]struct{ codes, why string }{
	"seed-examples/tracing-block-reverse-shell.yaml": {"PAL501",
		"NotDAddr on a sockaddr argument: Tetragon's sockaddr operators are SAddr/SPort/Family (the one address); the importer keeps the operator as written"},
	"seed-examples/tracing-network-connections.yaml": {"PAL502 PAL505",
		"matchArgs compares argument 1, which the kprobe does not declare, and FollowFD has no argFd/argName: the source is invalid for Tetragon too, and the importer does not check either"},
	"cilium-policies/l4/init.yaml": {"PAL108",
		"selects reserved:init endpoints, which have no identity in Palisade: the importer keeps the selector, and validate refuses it rather than let every node's compile fail"},
	"cilium-policies/kubernetes/clusterwide/health.yaml": {"PAL108",
		"selects reserved:health endpoints (Cilium's health checker), which Palisade does not have: kept by the importer, refused by validate"},
}

// validateRendered runs palisadectl validate's checks (schema and
// semantic) on rendered CUE, as the user will right after importing.
func validateRendered(t *testing.T, src []byte) diag.List {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "imported.cue"), src, 0o644); err != nil {
		t.Fatal(err)
	}
	rep, err := validate.Dir(context.Background(), dir, validate.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return rep.Diagnostics
}
