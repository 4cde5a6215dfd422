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
	"reflect"
	"slices"
	"strings"
	"sync"

	"github.com/open-policy-agent/opa/v1/ast"
)

// toTerm converts the change set's Go types (structs with json tags,
// slices, maps with string keys, strings, ints, bools, pointers) to an OPA
// term directly. OPA's generic conversion goes through JSON, which made
// converting the facts of 1000 changes cost more than evaluating them.
// Scalars and empty lists are OPA's interned, shared terms.
func toTerm(x any) *ast.Term { return valueTerm(reflect.ValueOf(x)) }

func valueTerm(v reflect.Value) *ast.Term {
	switch v.Kind() {
	case reflect.Pointer, reflect.Interface:
		if v.IsNil() {
			return ast.NullTerm()
		}
		return valueTerm(v.Elem())
	case reflect.String:
		return ast.InternedTerm(v.String())
	case reflect.Bool:
		return ast.InternedTerm(v.Bool())
	case reflect.Int, reflect.Int32, reflect.Int64:
		return ast.InternedTerm(int(v.Int()))
	case reflect.Slice:
		if v.IsNil() {
			return ast.NullTerm()
		}
		if v.Len() == 0 {
			return ast.InternedEmptyArray // most facts are empty lists
		}
		ts := make([]*ast.Term, v.Len())
		for i := range ts {
			ts[i] = valueTerm(v.Index(i))
		}
		return ast.ArrayTerm(ts...)
	case reflect.Map:
		keys := v.MapKeys()
		kvs := make([][2]*ast.Term, 0, len(keys))
		for _, k := range keys {
			kvs = append(kvs, [2]*ast.Term{ast.StringTerm(k.String()), valueTerm(v.MapIndex(k))})
		}
		return ast.ObjectTerm(kvs...)
	case reflect.Struct:
		fs := structFields(v.Type())
		kvs := make([][2]*ast.Term, len(fs))
		for i, f := range fs {
			kvs[i] = [2]*ast.Term{f.key, valueTerm(v.Field(f.index))}
		}
		return ast.ObjectTerm(kvs...)
	}
	panic("guard: cannot convert " + v.Type().String()) // only the change set's own types reach here
}

// field is a struct field with its JSON name as a term, made once: terms
// are immutable, so every object can share it.
type field struct {
	key   *ast.Term
	index int
}

var fieldCache sync.Map // reflect.Type → []field

// structFields lists a struct's exported fields by their JSON names.
func structFields(t reflect.Type) []field {
	if fs, ok := fieldCache.Load(t); ok {
		return fs.([]field)
	}
	var fs []field
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if !f.IsExported() || name == "-" {
			continue
		}
		if name == "" {
			name = f.Name
		}
		fs = append(fs, field{ast.StringTerm(name), i})
	}
	fs = slices.Clip(fs)
	fieldCache.Store(t, fs)
	return fs
}
