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

package v1alpha1_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"

	"cuelang.org/go/cue"
	"cuelang.org/go/cue/cuecontext"
	cueerrors "cuelang.org/go/cue/errors"
	"cuelang.org/go/cue/load"
	"k8s.io/apimachinery/pkg/runtime"
	kcbor "k8s.io/apimachinery/pkg/runtime/serializer/cbor"
	kjson "k8s.io/apimachinery/pkg/runtime/serializer/json"

	"sigs.k8s.io/yaml"

	"github.com/palisade-dev/palisade/api/v1alpha1"
	"github.com/palisade-dev/palisade/policies/schema"
)

// The round trip that every example in testdata/roundtrip must survive:
//
//	CUE example ──unify #Kinds[kind], validate──► JSON A
//	A ──strict decode──► Go object ──marshal──► JSON G
//	G ──unify #Kinds[kind], validate──► JSON B
//
// and A == G == B as canonical JSON. A field renamed, added or dropped on
// either side breaks one of the steps: CUE rejects a field its closed
// definitions lack, the strict decoder rejects a field the Go type lacks,
// and the comparison catches a field Go drops or invents.

// exampleGlob finds the valid examples of the round trip.
const exampleGlob = "testdata/roundtrip/*.cue"

// minExamples guards against the glob silently matching too little.
const minExamples = 12

// newObject returns an empty Go object for each policy kind.
var newObject = map[string]func() runtime.Object{
	"NetworkPolicy":        func() runtime.Object { return &v1alpha1.NetworkPolicy{} },
	"ClusterNetworkPolicy": func() runtime.Object { return &v1alpha1.ClusterNetworkPolicy{} },
	"TracingPolicy":        func() runtime.Object { return &v1alpha1.TracingPolicy{} },
	"ClusterTracingPolicy": func() runtime.Object { return &v1alpha1.ClusterTracingPolicy{} },
}

// cueSchema is the embedded schema, compiled once.
var cueSchema struct {
	once  sync.Once
	ctx   *cue.Context
	kinds cue.Value // #Kinds
	err   error
}

// schemaKinds compiles the embedded schema (policies/schema, exactly as the
// binaries embed it) and returns its context and #Kinds.
func schemaKinds(t testing.TB) (*cue.Context, cue.Value) {
	t.Helper()
	s := &cueSchema
	s.once.Do(func() {
		s.ctx = cuecontext.New()
		insts := load.Instances([]string{"."}, &load.Config{
			FS:         schema.FS,
			Dir:        "/",
			FromFSPath: func(p string) string { return path.Join("policies/schema", p) },
		})
		if len(insts) != 1 {
			s.err = fmt.Errorf("load schema: %d instances", len(insts))
			return
		}
		if err := insts[0].Err; err != nil {
			s.err = fmt.Errorf("load schema: %s", cueerrors.Details(err, nil))
			return
		}
		v := s.ctx.BuildInstance(insts[0])
		if err := v.Err(); err != nil {
			s.err = fmt.Errorf("build schema: %s", cueerrors.Details(err, nil))
			return
		}
		s.kinds = v.LookupPath(cue.MakePath(cue.Def("Kinds")))
		if !s.kinds.Exists() {
			s.err = errors.New("schema has no #Kinds")
		}
	})
	if s.err != nil {
		t.Fatal(s.err)
	}
	return s.ctx, s.kinds
}

// exportWithSchema unifies v with the schema's definition of its kind,
// requires the result to be valid and concrete, and exports it as JSON.
func exportWithSchema(kinds, v cue.Value) (kind string, out []byte, err error) {
	kind, err = v.LookupPath(cue.ParsePath("kind")).String()
	if err != nil {
		return "", nil, fmt.Errorf("kind: %s", cueerrors.Details(err, nil))
	}
	def := kinds.LookupPath(cue.MakePath(cue.Str(kind)))
	if !def.Exists() {
		return "", nil, fmt.Errorf("kind %q is not in #Kinds", kind)
	}
	u := def.Unify(v)
	if err := u.Validate(cue.Concrete(true)); err != nil {
		return "", nil, fmt.Errorf("%s does not validate against the schema:\n%s", kind, cueerrors.Details(err, nil))
	}
	out, err = u.MarshalJSON()
	if err != nil {
		return "", nil, fmt.Errorf("export %s: %s", kind, cueerrors.Details(err, nil))
	}
	return kind, out, nil
}

// example is one file of testdata/roundtrip, exported through the schema.
type example struct {
	name string
	kind string
	json []byte // A: the CUE export
}

// loadExamples compiles and exports every example.
func loadExamples(t *testing.T) []example {
	t.Helper()
	ctx, kinds := schemaKinds(t)
	files, err := filepath.Glob(exampleGlob)
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < minExamples {
		t.Fatalf("%s: %d examples, want at least %d", exampleGlob, len(files), minExamples)
	}
	var out []example
	for _, f := range files {
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		v := ctx.CompileBytes(src, cue.Filename(f))
		if err := v.Err(); err != nil {
			t.Fatalf("compile %s:\n%s", f, cueerrors.Details(err, nil))
		}
		kind, a, err := exportWithSchema(kinds, v)
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		if newObject[kind] == nil {
			t.Fatalf("%s: no Go type for kind %q", f, kind)
		}
		out = append(out, example{name: strings.TrimSuffix(filepath.Base(f), ".cue"), kind: kind, json: a})
	}
	return out
}

// sampleGlob finds the sample objects of config/samples.
const sampleGlob = "../../config/samples/palisade_*.yaml"

// loadSamples reads the YAML samples and exports them through the schema:
// a sample must be a valid policy too.
func loadSamples(t *testing.T) []example {
	t.Helper()
	ctx, kinds := schemaKinds(t)
	files, err := filepath.Glob(sampleGlob)
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != len(newObject) {
		t.Fatalf("%s: %d samples, want one per kind (%d)", sampleGlob, len(files), len(newObject))
	}
	var out []example
	for _, f := range files {
		y, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		j, err := yaml.YAMLToJSONStrict(y)
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		kind, a, err := exportWithSchema(kinds, ctx.CompileBytes(j, cue.Filename(f)))
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		out = append(out, example{name: strings.TrimSuffix(filepath.Base(f), ".yaml"), kind: kind, json: a})
	}
	return out
}

func TestRoundTrip(t *testing.T) {
	for _, ex := range loadExamples(t) {
		t.Run(ex.name, func(t *testing.T) { checkRoundTrip(t, ex) })
	}
	for _, ex := range loadSamples(t) {
		t.Run("sample/"+ex.name, func(t *testing.T) { checkRoundTrip(t, ex) })
	}
}

// checkRoundTrip takes ex from its CUE export (A) through Go and back, and
// through the Kubernetes serializers; see the top of this file.
func checkRoundTrip(t *testing.T, ex example) {
	ctx, kinds := schemaKinds(t)
	// A -> Go, refusing any field the Go type does not have. encoding/json
	// matches keys case-insensitively, so a field renamed only in case
	// passes here; the comparisons below and apimachinery's case-sensitive
	// decoder catch it.
	obj := newObject[ex.kind]()
	if err := decodeStrict(ex.json, obj); err != nil {
		t.Fatalf("decode the CUE export into %T: %v\nA:\n%s", obj, err, ex.json)
	}

	// Go -> G. creationTimestamp is the usual suspect for a field the Go
	// type invents (metav1.Time used to marshal as null); the apimachinery
	// in go.mod tags it omitzero, so nothing is stripped here, and
	// extraFields reports it should it come back.
	g, err := json.Marshal(obj)
	if err != nil {
		t.Fatal(err)
	}
	if extra := extraFields(t, ex.json, g); len(extra) > 0 {
		t.Errorf("the Go JSON has fields the CUE export lacks: %s", strings.Join(extra, ", "))
	}
	if d := jsonDiff(t, ex.json, g); d != "" {
		t.Errorf("CUE export (-) and Go JSON (+) differ:\n%s", d)
	}

	// G -> CUE -> B: the Go JSON is itself a valid policy and exports to
	// the same JSON.
	v := ctx.CompileBytes(g, cue.Filename(ex.name+".go.json"))
	if err := v.Err(); err != nil {
		t.Fatalf("compile the Go JSON: %s", cueerrors.Details(err, nil))
	}
	_, b, err := exportWithSchema(kinds, v)
	if err != nil {
		t.Fatalf("the Go JSON: %v\nG:\n%s", err, g)
	}
	if d := jsonDiff(t, ex.json, b); d != "" {
		t.Errorf("first (-) and second (+) CUE export differ:\n%s", d)
	}

	// The paths the object takes through Kubernetes machinery keep it too:
	// apimachinery's strict, case-sensitive JSON decoder (through the
	// scheme's registration), its CBOR serializer (client-go's other wire
	// format) and DeepCopy, which must all keep explicitly empty lists.
	if d := jsonDiff(t, g, mustMarshal(t, decodeKube(t, ex.json))); d != "" {
		t.Errorf("encoding/json (-) and apimachinery's JSON decoder (+) differ:\n%s", d)
	}
	if d := jsonDiff(t, g, mustMarshal(t, cborRoundTrip(t, obj))); d != "" {
		t.Errorf("object (-) and its CBOR round trip (+) differ:\n%s", d)
	}
	if d := jsonDiff(t, g, mustMarshal(t, obj.DeepCopyObject())); d != "" {
		t.Errorf("object (-) and its DeepCopy (+) differ:\n%s", d)
	}
}

// decodeStrict decodes exactly one JSON value into out, refusing unknown
// fields.
func decodeStrict(data []byte, out any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(out); err != nil {
		return err
	}
	if _, err := dec.Token(); err != io.EOF {
		return errors.New("trailing data after the JSON value")
	}
	return nil
}

// newScheme returns a scheme with the API registered.
func newScheme(t *testing.T) *runtime.Scheme {
	t.Helper()
	s := runtime.NewScheme()
	if err := v1alpha1.AddToScheme(s); err != nil {
		t.Fatal(err)
	}
	return s
}

// decodeKube decodes data with apimachinery's strict JSON serializer into
// the type the scheme registers for its apiVersion and kind.
func decodeKube(t *testing.T, data []byte) runtime.Object {
	t.Helper()
	s := newScheme(t)
	ser := kjson.NewSerializerWithOptions(kjson.DefaultMetaFactory, s, s, kjson.SerializerOptions{Strict: true})
	obj, gvk, err := ser.Decode(data, nil, nil)
	if err != nil {
		t.Fatalf("apimachinery strict JSON decode: %v", err)
	}
	if gvk.GroupVersion() != v1alpha1.GroupVersion {
		t.Fatalf("decoded as %v, want group version %v", gvk, v1alpha1.GroupVersion)
	}
	return obj
}

// cborRoundTrip encodes obj with apimachinery's CBOR serializer and decodes
// it again.
func cborRoundTrip(t *testing.T, obj runtime.Object) runtime.Object {
	t.Helper()
	s := newScheme(t)
	ser := kcbor.NewSerializer(s, s, kcbor.Strict(true))
	var buf bytes.Buffer
	if err := ser.Encode(obj, &buf); err != nil {
		t.Fatalf("CBOR encode: %v", err)
	}
	out, _, err := ser.Decode(buf.Bytes(), nil, nil)
	if err != nil {
		t.Fatalf("CBOR decode: %v", err)
	}
	return out
}

func mustMarshal(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// parseJSON decodes data keeping numbers exact.
func parseJSON(t *testing.T, data []byte) any {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("parse JSON: %v\n%s", err, data)
	}
	return v
}

// canonical renders data with sorted keys, one value per line.
func canonical(t *testing.T, data []byte) string {
	t.Helper()
	b, err := json.MarshalIndent(parseJSON(t, data), "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// extraFields lists the object keys present in got but not in want, as
// paths.
func extraFields(t *testing.T, want, got []byte) []string {
	t.Helper()
	var out []string
	var walk func(w, g any, p string)
	walk = func(w, g any, p string) {
		switch g := g.(type) {
		case map[string]any:
			wm, _ := w.(map[string]any)
			for k, gv := range g {
				wv, ok := wm[k]
				if !ok {
					out = append(out, p+"."+k)
					continue
				}
				walk(wv, gv, p+"."+k)
			}
		case []any:
			wl, _ := w.([]any)
			for i, gv := range g {
				if i < len(wl) {
					walk(wl[i], gv, fmt.Sprintf("%s[%d]", p, i))
				}
			}
		}
	}
	walk(parseJSON(t, want), parseJSON(t, got), "")
	sort.Strings(out)
	return out
}

// jsonDiff compares a and b as canonical JSON and returns a line diff, or
// "" when they are equal.
func jsonDiff(t *testing.T, a, b []byte) string {
	t.Helper()
	ca, cb := canonical(t, a), canonical(t, b)
	if ca == cb {
		return ""
	}
	return lineDiff(strings.Split(ca, "\n"), strings.Split(cb, "\n"))
}

// lineDiff renders the longest-common-subsequence diff of two line lists:
// "- " lines only in a, "+ " lines only in b, "  " common lines.
func lineDiff(a, b []string) string {
	// lcs[i][j] is the LCS length of a[i:] and b[j:].
	lcs := make([][]int, len(a)+1)
	for i := range lcs {
		lcs[i] = make([]int, len(b)+1)
	}
	for i := len(a) - 1; i >= 0; i-- {
		for j := len(b) - 1; j >= 0; j-- {
			if a[i] == b[j] {
				lcs[i][j] = lcs[i+1][j+1] + 1
			} else {
				lcs[i][j] = max(lcs[i+1][j], lcs[i][j+1])
			}
		}
	}
	var sb strings.Builder
	i, j := 0, 0
	for i < len(a) || j < len(b) {
		switch {
		case i < len(a) && j < len(b) && a[i] == b[j]:
			sb.WriteString("  " + a[i] + "\n")
			i++
			j++
		case j < len(b) && (i == len(a) || lcs[i][j+1] >= lcs[i+1][j]):
			sb.WriteString("+ " + b[j] + "\n")
			j++
		default:
			sb.WriteString("- " + a[i] + "\n")
			i++
		}
	}
	return sb.String()
}

// TestUpstreamEmptyValuesDropped pins the only places where the round trip
// is not exact: Kubernetes' own types tag these fields omitempty, so an
// explicitly empty map or list there is dropped. Each is empty in a way
// that means the same as absent (no labels; a selector term that
// constrains nothing; no values for Exists), so policy meaning is kept.
// Every other explicitly empty value is kept, as the *-explicit-empty
// examples show. Should Kubernetes keep one of these one day, this test
// fails and the case belongs in the examples instead.
func TestUpstreamEmptyValuesDropped(t *testing.T) {
	ctx, kinds := schemaKinds(t)
	const head = `apiVersion: "palisade.dev/v1alpha1", kind: "NetworkPolicy", `
	for _, tc := range []struct{ name, in, want string }{
		{"metadata.labels",
			`metadata: {name: "x", labels: {}}, spec: endpointSelector: {}`,
			`metadata: {name: "x"}, spec: endpointSelector: {}`},
		{"metadata.annotations",
			`metadata: {name: "x", annotations: {}}, spec: endpointSelector: {}`,
			`metadata: {name: "x"}, spec: endpointSelector: {}`},
		{"LabelSelector.matchLabels",
			`metadata: name: "x", spec: endpointSelector: matchLabels: {}`,
			`metadata: name: "x", spec: endpointSelector: {}`},
		{"LabelSelector.matchExpressions",
			`metadata: name: "x", spec: {endpointSelector: {}, ingress: [{fromEndpoints: [{matchExpressions: []}]}]}`,
			`metadata: name: "x", spec: {endpointSelector: {}, ingress: [{fromEndpoints: [{}]}]}`},
		{"LabelSelectorRequirement.values",
			`metadata: name: "x", spec: endpointSelector: matchExpressions: [{key: "a", operator: "Exists", values: []}]`,
			`metadata: name: "x", spec: endpointSelector: matchExpressions: [{key: "a", operator: "Exists"}]`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			export := func(src string) []byte {
				_, out, err := exportWithSchema(kinds, ctx.CompileString(head+src))
				if err != nil {
					t.Fatal(err)
				}
				return out
			}
			in, want := export(tc.in), export(tc.want)
			var obj v1alpha1.NetworkPolicy
			if err := decodeStrict(in, &obj); err != nil {
				t.Fatal(err)
			}
			if d := jsonDiff(t, want, mustMarshal(t, &obj)); d != "" {
				t.Errorf("want (-) the empty value dropped, got (+):\n%s", d)
			}
		})
	}
}
