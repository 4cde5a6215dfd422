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
	"fmt"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/palisade-dev/palisade/internal/diag"
)

// tr is the translation of one source document: it knows the file, the
// object being translated and collects the diagnostics. Every translation
// function takes YAML nodes, so every diagnostic has the line and column of
// the field it is about.
type tr struct {
	file   string
	object string
	diags  diag.List
}

// entry is one field of a YAML mapping: the key (for "field X" reports),
// the value and the field's path inside the document.
type entry struct {
	name string
	key  *yaml.Node
	val  *yaml.Node
	path string
}

// field is one row of a translation table: the source field name and what
// to do with it. A mapping's fields are handled in table order, which is
// also the order in which output fields are written.
type field struct {
	name string
	fn   func(e entry)
}

func (t *tr) pos(n *yaml.Node) diag.Pos {
	if n == nil {
		return diag.Pos{File: t.file}
	}
	return diag.Pos{File: t.file, Line: n.Line, Column: n.Column}
}

func (t *tr) report(code string, n *yaml.Node, path, format string, args ...any) {
	t.reportAt(code, t.pos(n), path, format, args...)
}

func (t *tr) reportAt(code string, pos diag.Pos, path, format string, args ...any) {
	d := diag.New(code, pos, format, args...)
	d.Path = path
	d.Object = t.object
	t.diags = append(t.diags, d)
}

// fail reports that the object cannot be imported (PAL902).
func (t *tr) fail(n *yaml.Node, path, format string, args ...any) {
	t.report("PAL902", n, path, format, args...)
}

// drop reports a field that is not imported (PAL901).
func (t *tr) drop(e entry, why string, args ...any) {
	t.report("PAL901", e.key, e.path, "field %s has no Palisade equivalent: %s", e.path, fmt.Sprintf(why, args...))
}

// note reports a translation that changed the form of a value (PAL903).
func (t *tr) note(n *yaml.Node, path, format string, args ...any) {
	t.report("PAL903", n, path, format, args...)
}

// narrow reports a translation that allows less than the source (PAL905).
func (t *tr) narrow(n *yaml.Node, path, format string, args ...any) {
	t.report("PAL905", n, path, format, args...)
}

// failed reports whether the object has an error so far.
func (t *tr) failed() bool { return t.diags.HasErrors() }

// deref follows YAML aliases and unwraps documents.
func deref(n *yaml.Node) *yaml.Node {
	for n != nil {
		switch n.Kind {
		case yaml.AliasNode:
			n = n.Alias
		case yaml.DocumentNode:
			if len(n.Content) == 0 {
				return nil
			}
			n = n.Content[0]
		default:
			return n
		}
	}
	return nil
}

// isNull reports whether n is absent or a YAML null.
func isNull(n *yaml.Node) bool {
	n = deref(n)
	return n == nil || (n.Kind == yaml.ScalarNode && n.Tag == "!!null")
}

// entries returns the fields of a mapping in source order, reporting
// duplicate keys (Kubernetes rejects them, and which one would win is not
// defined) and merge keys. A null value reads as an empty mapping, as
// Kubernetes reads it. ok is false when n is not a mapping.
func (t *tr) entries(n *yaml.Node, path, what string) ([]entry, bool) {
	n = deref(n)
	if isNull(n) {
		return nil, true
	}
	if n.Kind != yaml.MappingNode {
		t.fail(n, path, "%s must be a mapping, not %s", what, describe(n))
		return nil, false
	}
	var out []entry
	seen := map[string]*yaml.Node{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := deref(n.Content[i]), n.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			t.fail(k, path, "%s has a key that is not a string", what)
			continue
		}
		if k.Tag == "!!merge" {
			t.fail(k, path, "YAML merge keys (<<) are not supported; write the fields out")
			continue
		}
		p := join(path, k.Value)
		if prev, dup := seen[k.Value]; dup {
			t.fail(k, p, "field %s is given twice (first at line %d); Kubernetes rejects duplicate fields", p, prev.Line)
			continue
		}
		seen[k.Value] = k
		out = append(out, entry{name: k.Value, key: k, val: deref(v), path: p})
	}
	return out, true
}

// walk handles the fields of mapping n with a table. A field that is not in
// the table is an error: the importer cannot tell whether leaving out a
// field it does not know would widen the policy, so it never guesses.
func (t *tr) walk(n *yaml.Node, path, what string, table []field) bool {
	es, ok := t.entries(n, path, what)
	if !ok {
		return false
	}
	byName := map[string]entry{}
	for _, e := range es {
		byName[e.name] = e
	}
	known := map[string]bool{}
	for _, f := range table {
		known[f.name] = true
	}
	for _, e := range es {
		if !known[e.name] {
			t.fail(e.key, e.path, "%s has no field %q that the importer knows; it cannot tell whether leaving it out would widen the policy", what, e.name)
		}
	}
	for _, f := range table {
		if e, ok := byName[f.name]; ok {
			f.fn(e)
		}
	}
	return true
}

// items returns the elements of a sequence; null reads as empty.
func (t *tr) items(e entry) ([]entry, bool) {
	n := e.val
	if isNull(n) {
		return nil, true
	}
	if n.Kind != yaml.SequenceNode {
		t.fail(n, e.path, "%s must be a list, not %s", e.path, describe(n))
		return nil, false
	}
	out := make([]entry, 0, len(n.Content))
	for i, c := range n.Content {
		c = deref(c)
		out = append(out, entry{name: e.name, key: c, val: c, path: fmt.Sprintf("%s[%d]", e.path, i)})
	}
	return out, true
}

// str reads a string scalar. Numbers and booleans are read as their text
// with a note, because Kubernetes would have needed them quoted.
func (t *tr) str(e entry) (string, bool) {
	n := e.val
	if n == nil || n.Kind != yaml.ScalarNode || n.Tag == "!!null" {
		t.fail(e.key, e.path, "%s must be a string, not %s", e.path, describe(n))
		return "", false
	}
	switch n.Tag {
	case "!!str":
		return n.Value, true
	case "!!int", "!!float", "!!bool":
		t.note(n, e.path, "%s: %s %s read as the string %q", e.path, strings.TrimPrefix(n.Tag, "!!"), n.Value, n.Value)
		return n.Value, true
	}
	t.fail(n, e.path, "%s must be a string, not %s", e.path, describe(n))
	return "", false
}

// integer reads an integer scalar; a string holding a decimal integer is
// accepted with a note (Cilium writes ports as strings).
func (t *tr) integer(e entry) (int64, bool) {
	n := e.val
	if n != nil && n.Kind == yaml.ScalarNode {
		switch n.Tag {
		case "!!int":
			var v int64
			if err := n.Decode(&v); err == nil {
				return v, true
			}
		case "!!str":
			if v, err := strconv.ParseInt(strings.TrimSpace(n.Value), 10, 64); err == nil {
				return v, true
			}
		}
	}
	t.fail(n, e.path, "%s must be an integer, not %s", e.path, describe(n))
	return 0, false
}

// boolean reads a boolean scalar.
func (t *tr) boolean(e entry) (bool, bool) {
	n := e.val
	if n != nil && n.Kind == yaml.ScalarNode {
		switch n.Tag {
		case "!!bool":
			var v bool
			if err := n.Decode(&v); err == nil {
				return v, true
			}
		case "!!str":
			if v, err := strconv.ParseBool(n.Value); err == nil {
				t.note(n, e.path, "%s: string %q read as a boolean", e.path, n.Value)
				return v, true
			}
		}
	}
	t.fail(n, e.path, "%s must be true or false, not %s", e.path, describe(n))
	return false, false
}

// strings reads a list of strings.
func (t *tr) strs(e entry) ([]string, []entry, bool) {
	its, ok := t.items(e)
	if !ok {
		return nil, nil, false
	}
	out := make([]string, 0, len(its))
	okAll := true
	for _, it := range its {
		s, ok := t.str(it)
		if !ok {
			okAll = false
			continue
		}
		out = append(out, s)
	}
	return out, its, okAll
}

// stringMap reads a mapping of strings to strings (labels, annotations).
func (t *tr) stringMap(e entry) (*val, bool) {
	es, ok := t.entries(e.val, e.path, e.path)
	if !ok {
		return nil, false
	}
	m := obj(t.pos(e.val), e.path)
	okAll := true
	for _, x := range es {
		v := x.val
		if isNull(v) {
			// Kubernetes reads a null label value as "".
			m.set(x.name, strv("", t.pos(x.key), x.path))
			continue
		}
		s, ok := t.str(x)
		if !ok {
			okAll = false
			continue
		}
		m.set(x.name, strv(s, t.pos(x.val), x.path))
	}
	return m, okAll
}

// describe names the YAML type of n for messages.
func describe(n *yaml.Node) string {
	n = deref(n)
	if n == nil {
		return "nothing"
	}
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		switch n.Tag {
		case "!!null":
			return "null"
		case "!!str":
			return fmt.Sprintf("the string %q", n.Value)
		}
		return fmt.Sprintf("%s %s", strings.TrimPrefix(n.Tag, "!!"), n.Value)
	}
	return "an unknown node"
}

// join appends a field name to a path.
func join(path, name string) string {
	if path == "" {
		return name
	}
	return path + "." + name
}

// errs counts the errors reported so far; with failedSince it tells
// whether one part of a translation failed, where failed tells whether
// anything in the object did.
func (t *tr) errs() int { return t.diags.Count(diag.Error) }

// failedSince reports whether an error was reported after errs returned
// mark.
func (t *tr) failedSince(mark int) bool { return t.errs() > mark }
