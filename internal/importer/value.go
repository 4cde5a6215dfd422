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
	"slices"
	"strconv"

	"cuelang.org/go/cue/ast"
	"cuelang.org/go/cue/token"

	"github.com/palisade-dev/palisade/internal/diag"
)

type valKind int

const (
	kindObj valKind = iota
	kindList
	kindStr
	kindInt
	kindBool
)

// val is a translated value: an ordered tree that remembers, for every
// node, where in the source it came from. Order is kept because the output
// is for people (apiVersion, kind, metadata, spec, then schema order), and
// the source position is kept so that a value the schema refuses can be
// reported at the line the user wrote.
type val struct {
	kind   valKind
	fields []*member
	items  []*val
	str    string
	num    int64
	b      bool
	pos    diag.Pos
	path   string
}

type member struct {
	name string
	v    *val
}

func obj(pos diag.Pos, path string) *val { return &val{kind: kindObj, pos: pos, path: path} }
func list(pos diag.Pos, path string) *val {
	return &val{kind: kindList, pos: pos, path: path, items: []*val{}}
}
func strv(s string, pos diag.Pos, path string) *val {
	return &val{kind: kindStr, str: s, pos: pos, path: path}
}
func intv(n int64, pos diag.Pos, path string) *val {
	return &val{kind: kindInt, num: n, pos: pos, path: path}
}
func boolv(b bool, pos diag.Pos, path string) *val {
	return &val{kind: kindBool, b: b, pos: pos, path: path}
}

// set sets field name, replacing an earlier value in place.
func (o *val) set(name string, v *val) {
	for _, m := range o.fields {
		if m.name == name {
			m.v = v
			return
		}
	}
	o.fields = append(o.fields, &member{name, v})
}

// get returns field name, or nil.
func (o *val) get(name string) *val {
	if o == nil {
		return nil
	}
	for _, m := range o.fields {
		if m.name == name {
			return m.v
		}
	}
	return nil
}

// del removes field name.
func (o *val) del(name string) {
	o.fields = slices.DeleteFunc(o.fields, func(m *member) bool { return m.name == name })
}

// setList sets field name to a list unless the list is empty: an empty
// list and an absent field can mean different things, and the importer
// writes what it means explicitly elsewhere.
func (o *val) setList(name string, l *val) {
	if l != nil && len(l.items) > 0 {
		o.set(name, l)
	}
}

// add appends to a list.
func (l *val) add(v *val) { l.items = append(l.items, v) }

// sortBy orders the fields of an object: names in order first, in that
// order, then the rest as they were.
func (o *val) sortBy(order ...string) {
	rank := func(n string) int {
		if i := slices.Index(order, n); i >= 0 {
			return i
		}
		return len(order)
	}
	slices.SortStableFunc(o.fields, func(a, b *member) int { return rank(a.name) - rank(b.name) })
}

// strings returns the strings of a list of strings.
func (l *val) strings() []string {
	if l == nil {
		return nil
	}
	out := make([]string, 0, len(l.items))
	for _, it := range l.items {
		out = append(out, it.str)
	}
	return out
}

// lookup follows a path of field names and list indexes as far as it
// exists and returns the deepest value found.
func (o *val) lookup(path []string) *val {
	cur := o
	for _, sel := range path {
		var next *val
		switch cur.kind {
		case kindObj:
			next = cur.get(sel)
		case kindList:
			if i, err := strconv.Atoi(sel); err == nil && i >= 0 && i < len(cur.items) {
				next = cur.items[i]
			}
		}
		if next == nil {
			return cur
		}
		cur = next
	}
	return cur
}

// expr converts the value to CUE syntax.
func (o *val) expr() ast.Expr {
	switch o.kind {
	case kindObj:
		s := &ast.StructLit{Lbrace: token.NoSpace.Pos()}
		for _, m := range o.fields {
			s.Elts = append(s.Elts, &ast.Field{Label: ast.NewStringLabel(m.name), Value: m.v.expr()})
		}
		return s
	case kindList:
		l := &ast.ListLit{}
		for _, it := range o.items {
			l.Elts = append(l.Elts, it.expr())
		}
		return l
	case kindStr:
		return ast.NewString(o.str)
	case kindInt:
		return ast.NewLit(token.INT, strconv.FormatInt(o.num, 10))
	case kindBool:
		return ast.NewBool(o.b)
	}
	panic("importer: unknown value kind")
}
