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
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/palisade-dev/palisade/hack/genpolicies/gen"
)

// The schema-once path must change nothing a user sees: which policies
// take it, and that the objects and diagnostics are those of the paths
// that unify with the schema again.

func mustLoad(t *testing.T, dir string) *Result {
	t.Helper()
	res, err := Load(context.Background(), dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func countSchemaOnce(objs []*Object) int {
	n := 0
	for _, o := range objs {
		if o.schemaOnce {
			n++
		}
	}
	return n
}

// TestSchemaOnceExamples: every policy of the examples is written through
// schema.#Kind, directly or through a template of lib's.
func TestSchemaOnceExamples(t *testing.T) {
	res := mustLoad(t, "../../policies/examples")
	if res.Diagnostics.HasErrors() || len(res.Objects) == 0 {
		t.Fatalf("examples: %d objects, diagnostics %v", len(res.Objects), res.Diagnostics)
	}
	for _, o := range res.Objects {
		if !o.schemaOnce {
			t.Errorf("%s (%s) was unified with the schema twice", o.ID(), o.Pos)
		}
	}
}

// TestSchemaOnceGenerated: the benchmark's trees, with the import served
// by the loader and through a replace with a byte-identical copy, take the
// path; a copy that differs (even by a comment) does not, and yields the
// same objects and diagnostics.
func TestSchemaOnceGenerated(t *testing.T) {
	const n = 200
	embedded, copied, changed := t.TempDir(), t.TempDir(), t.TempDir()
	for _, c := range []struct {
		dir      string
		embedded bool
	}{{embedded, true}, {copied, false}, {changed, false}} {
		if _, err := gen.Write(c.dir, gen.Config{N: n, Seed: 7, Embedded: c.embedded}); err != nil {
			t.Fatal(err)
		}
	}
	f := filepath.Join(changed, gen.SchemaDir, "kinds.cue")
	b, err := os.ReadFile(f)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(f, append(b, []byte("\n// not the embedded file any more\n")...), 0o644); err != nil {
		t.Fatal(err)
	}

	want := map[string]int{embedded: n, copied: n, changed: 0}
	results := map[string]*Result{}
	for _, dir := range []string{embedded, copied, changed} {
		res := mustLoad(t, dir)
		if res.Diagnostics.HasErrors() || len(res.Objects) != n {
			t.Fatalf("%s: %d objects, diagnostics %v", dir, len(res.Objects), res.Diagnostics)
		}
		if got := countSchemaOnce(res.Objects); got != want[dir] {
			t.Errorf("%s: %d of %d objects took the schema-once path, want %d", dir, got, n, want[dir])
		}
		results[dir] = res
	}
	for _, dir := range []string{embedded, copied} {
		a, b := results[dir], results[changed]
		for i := range a.Objects {
			x, y := a.Objects[i], b.Objects[i]
			if x.ID() != y.ID() || x.Path != y.Path || x.Pos != y.Pos || !bytes.Equal(x.JSON, y.JSON) {
				t.Fatalf("object %d differs between the paths:\n%s %s %s\n%s\n%s %s %s\n%s", i, x.ID(), x.Path, x.Pos, x.JSON, y.ID(), y.Path, y.Pos, y.JSON)
			}
		}
	}
}

// TestSchemaOnceInvalid: invalid policies written as schema.#Kind & {...}
// are reported as before, and a look-alike definition of the user's is no
// reason to skip the schema.
func TestSchemaOnceInvalid(t *testing.T) {
	for _, tc := range []struct {
		name, src string
		want      []string // substrings of the diagnostics
		objects   int
	}{{
		name: "invalid via import",
		src: `package p

import "palisade.dev/schema"

np: bad: schema.#NetworkPolicy & {
	metadata: {name: "bad", namespace: "Bad_NS"}
	spec: endpointSelector: {}
}
np: good: schema.#NetworkPolicy & {
	metadata: {name: "good", namespace: "shop"}
	spec: endpointSelector: {}
}
`,
		want:    []string{"p.cue:6", "Bad_NS"},
		objects: 1,
	}, {
		name: "look-alike definition",
		src: `package p

#NetworkPolicy: {
	apiVersion: "palisade.dev/v1alpha1"
	kind:       "NetworkPolicy"
	...
}

np: x: #NetworkPolicy & {
	metadata: {name: "x", namespace: "shop"}
	spec: {endpointSelector: {}, ingress: [{toPorts: [{ports: [{port: "80", protocol: "FOO"}]}]}]}
}
`,
		want:    []string{"p.cue:11", "FOO"},
		objects: 0,
	}} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, "p.cue"), []byte(tc.src), 0o644); err != nil {
				t.Fatal(err)
			}
			res := mustLoad(t, dir)
			var sb strings.Builder
			for _, d := range res.Diagnostics {
				sb.WriteString(d.String() + "\n")
			}
			all := sb.String()
			if !res.Diagnostics.HasErrors() {
				t.Fatalf("no errors; objects %d", len(res.Objects))
			}
			for _, w := range tc.want {
				if !strings.Contains(all, w) {
					t.Errorf("diagnostics do not mention %q:\n%s", w, all)
				}
			}
			if len(res.Objects) != tc.objects {
				t.Errorf("%d objects, want %d", len(res.Objects), tc.objects)
			}
			for _, o := range res.Objects {
				if !o.schemaOnce {
					t.Errorf("%s: valid and written through schema.#NetworkPolicy, but unified twice", o.ID())
				}
			}
		})
	}
}
