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
	"encoding/json"
	"reflect"
	"sort"
	"strings"
	"testing"

	"cuelang.org/go/cue"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Field paths name a field by where it sits in an object, with "[]" for a
// list element: "spec.ingress[].toPorts[].ports[].endPort". The paths stop
// at metadata (ObjectMeta is Kubernetes', not the policy language's) and
// leave out status (the API server's, not the author's); they go into
// metav1.LabelSelector, whose fields the schema defines too.

// fieldSet maps field paths to whether the field is required.
type fieldSet map[string]bool

// sortedPaths returns the paths of s in order.
func (s fieldSet) sortedPaths() []string {
	out := make([]string, 0, len(s))
	for p := range s {
		out = append(out, p)
	}
	sort.Strings(out)
	return out
}

// joinPath appends a field name to a path.
func joinPath(prefix, name string) string {
	if prefix == "" {
		return name
	}
	return prefix + "." + name
}

var (
	jsonMarshaler = reflect.TypeFor[json.Marshaler]()
	objectMeta    = reflect.TypeFor[metav1.ObjectMeta]()
)

// goFields lists the JSON field paths of the Go type t (a root kind).
func goFields(t reflect.Type) fieldSet {
	out := fieldSet{}
	goStruct(t, "", out)
	return out
}

// goStruct adds the fields of struct type t, under prefix, to out.
func goStruct(t reflect.Type, prefix string, out fieldSet) {
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		name, opts, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "-" {
			continue
		}
		if f.Anonymous && name == "" {
			// Inline: the embedded struct's fields are this struct's.
			goStruct(f.Type, prefix, out)
			continue
		}
		if name == "" {
			name = f.Name
		}
		p := joinPath(prefix, name)
		if p == "status" {
			continue
		}
		optional := false
		for _, o := range strings.Split(opts, ",") {
			optional = optional || o == "omitempty" || o == "omitzero"
		}
		out[p] = !optional
		goType(f.Type, p, out)
	}
}

// goType adds the fields reachable from a field of type t at path p.
func goType(t reflect.Type, p string, out fieldSet) {
	switch {
	case t.Implements(jsonMarshaler) || reflect.PointerTo(t).Implements(jsonMarshaler):
		// Own JSON form (intstr.IntOrString): a leaf.
	case t.Kind() == reflect.Pointer:
		goType(t.Elem(), p, out)
	case t.Kind() == reflect.Slice:
		goType(t.Elem(), p+"[]", out)
	case t.Kind() == reflect.Struct && t != objectMeta:
		goStruct(t, p, out)
	}
}

// cueFields lists the field paths of the CUE definition v (a root kind).
func cueFields(t *testing.T, v cue.Value) fieldSet {
	t.Helper()
	out := fieldSet{}
	cueStruct(t, v, "", out)
	return out
}

// cueStruct adds the regular and optional fields of the struct v, under
// prefix, to out. Pattern constraints ([string]: string) are map entries,
// not fields.
func cueStruct(t *testing.T, v cue.Value, prefix string, out fieldSet) {
	t.Helper()
	it, err := v.Fields(cue.Optional(true))
	if err != nil {
		t.Fatalf("%s: %v", prefix, err)
	}
	for it.Next() {
		sel := it.Selector()
		p := joinPath(prefix, sel.Unquoted())
		out[p] = sel.ConstraintType() != cue.OptionalConstraint
		if p == "metadata" {
			continue
		}
		cueType(t, it.Value(), p, out)
	}
}

// cueType adds the fields reachable from the value v at path p.
func cueType(t *testing.T, v cue.Value, p string, out fieldSet) {
	t.Helper()
	switch v.IncompleteKind() {
	case cue.ListKind:
		cueType(t, v.LookupPath(cue.MakePath(cue.AnyIndex)), p+"[]", out)
	case cue.StructKind:
		cueStruct(t, v, p, out)
	}
}

// TestGoFieldsMatchSchema holds the Go types to the CUE schema field for
// field: the same JSON paths, and the same fields required. It needs no
// example, so a field added, renamed or dropped on one side fails here
// first.
func TestGoFieldsMatchSchema(t *testing.T) {
	_, kinds := schemaKinds(t)
	for kind, newObj := range newObject {
		t.Run(kind, func(t *testing.T) {
			gf := goFields(reflect.TypeOf(newObj()).Elem())
			cf := cueFields(t, kinds.LookupPath(cue.MakePath(cue.Str(kind))))
			for _, p := range gf.sortedPaths() {
				if _, ok := cf[p]; !ok {
					t.Errorf("%s: in the Go type, not in the CUE schema", p)
				}
			}
			for _, p := range cf.sortedPaths() {
				greq, ok := gf[p]
				switch {
				case !ok:
					t.Errorf("%s: in the CUE schema, not in the Go type", p)
				case !strings.HasPrefix(p, "spec."):
					// apiVersion, kind and metadata are required by the
					// schema and optional (omitempty) in TypeMeta/ObjectMeta.
				case greq != cf[p]:
					t.Errorf("%s: required in CUE: %v, required in Go (no omitempty/omitzero): %v", p, cf[p], greq)
				}
			}
		})
	}
}

// TestExamplesCoverEveryField requires every field of every Go type of the
// API to be set by at least one example, so a new field without an example
// fails. A field counts once per declaring type, wherever the type is used:
// HookCommon.args set in a kprobe covers it for tracepoints too, which is
// enough because the JSON of a type does not depend on where it sits.
func TestExamplesCoverEveryField(t *testing.T) {
	covered := map[string]bool{}
	for _, ex := range loadExamples(t) {
		coverJSON(parseJSON(t, ex.json), reflect.TypeOf(newObject[ex.kind]()).Elem(), covered)
	}
	all := map[string]bool{}
	for _, newObj := range newObject {
		typeFields(reflect.TypeOf(newObj()).Elem(), all)
	}
	var missing []string
	for f := range all {
		if !covered[f] {
			missing = append(missing, f)
		}
	}
	sort.Strings(missing)
	for _, f := range missing {
		t.Errorf("%s: no example in %s sets it", f, exampleGlob)
	}
}

// goField is a JSON field of a Go struct, with the struct that declares it
// (an inline-embedded struct for its fields).
type goField struct {
	decl reflect.Type
	typ  reflect.Type
}

// name is the field's coverage key, e.g. "PortProtocol.endPort".
func (f goField) name(json string) string { return f.decl.Name() + "." + json }

// structFields maps the JSON names of struct t's fields to the fields,
// flattening inline-embedded structs. status is left out.
func structFields(t reflect.Type) map[string]goField {
	out := map[string]goField{}
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		switch {
		case name == "-" || name == "status":
			continue
		case f.Anonymous && name == "":
			for k, v := range structFields(f.Type) {
				out[k] = v
			}
			continue
		case name == "":
			name = f.Name
		}
		out[name] = goField{decl: t, typ: f.Type}
	}
	return out
}

// elemStruct strips pointers and slices from t and returns the struct type
// underneath, or nil for leaves: scalars, maps, types with their own JSON
// form (intstr.IntOrString) and ObjectMeta.
func elemStruct(t reflect.Type) reflect.Type {
	for {
		switch {
		case t.Implements(jsonMarshaler) || reflect.PointerTo(t).Implements(jsonMarshaler):
			return nil
		case t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice:
			t = t.Elem()
		case t.Kind() == reflect.Struct && t != objectMeta:
			return t
		default:
			return nil
		}
	}
}

// typeFields adds the coverage key of every field reachable from struct t
// to out.
func typeFields(t reflect.Type, out map[string]bool) {
	for json, f := range structFields(t) {
		k := f.name(json)
		if out[k] {
			continue
		}
		out[k] = true
		if st := elemStruct(f.typ); st != nil {
			typeFields(st, out)
		}
	}
}

// coverJSON walks the decoded JSON v alongside the Go type t and adds the
// coverage key of every field v sets to covered.
func coverJSON(v any, t reflect.Type, covered map[string]bool) {
	switch v := v.(type) {
	case []any:
		for _, e := range v {
			coverJSON(e, t, covered)
		}
	case map[string]any:
		st := elemStruct(t)
		if st == nil {
			return // a map such as matchLabels, or ObjectMeta
		}
		fields := structFields(st)
		for k, e := range v {
			f, ok := fields[k]
			if !ok {
				continue // TestRoundTrip reports unknown fields
			}
			covered[f.name(k)] = true
			coverJSON(e, f.typ, covered)
		}
	}
}
