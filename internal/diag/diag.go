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

// Package diag defines the diagnostics that Palisade's loader, validator and
// importer report: a stable code, a severity, a message, an optional hint and
// the file:line:col it is about.
package diag

import (
	"cmp"
	"fmt"
	"slices"
)

// Severity says whether a diagnostic makes the input invalid.
type Severity string

const (
	// Error makes the input invalid.
	Error Severity = "error"
	// Warning is reported but does not make the input invalid.
	Warning Severity = "warning"
	// Info is a remark, e.g. an importer's translation note.
	Info Severity = "info"
)

// Pos is a position in a source file. Line and Column are 1-based; zero
// means unknown. File is slash-separated and relative to the directory being
// validated whenever the file lies inside it.
type Pos struct {
	File   string `json:"file"`
	Line   int    `json:"line,omitempty"`
	Column int    `json:"column,omitempty"`
}

// String formats the position as file:line:col, leaving out what is unknown.
func (p Pos) String() string {
	switch {
	case p.File == "":
		return "-"
	case p.Line == 0:
		return p.File
	case p.Column == 0:
		return fmt.Sprintf("%s:%d", p.File, p.Line)
	}
	return fmt.Sprintf("%s:%d:%d", p.File, p.Line, p.Column)
}

// Diagnostic is one finding about the input.
type Diagnostic struct {
	// Code is stable across releases, e.g. "PAL101"; see Codes.
	Code string `json:"code"`
	// Severity of the finding.
	Severity Severity `json:"severity"`
	// Pos is where the finding is.
	Pos Pos `json:"pos"`
	// Message says what is wrong, for people.
	Message string `json:"message"`
	// Hint says how to fix it, where that helps.
	Hint string `json:"hint,omitempty"`
	// Path is the field path inside the object, e.g.
	// "spec.ingress[0].toPorts[0].ports[0].endPort", when known.
	Path string `json:"path,omitempty"`
	// Object names the policy the finding is about, as kind/namespace/name.
	Object string `json:"object,omitempty"`
}

// String formats the diagnostic the way compilers do:
// file:line:col: severity CODE: message (hint).
func (d Diagnostic) String() string {
	s := fmt.Sprintf("%s: %s %s: %s", d.Pos, d.Severity, d.Code, d.Message)
	if d.Hint != "" {
		s += " (hint: " + d.Hint + ")"
	}
	return s
}

// List is a set of diagnostics.
type List []Diagnostic

// HasErrors reports whether any diagnostic is an error.
func (l List) HasErrors() bool {
	return slices.ContainsFunc(l, func(d Diagnostic) bool { return d.Severity == Error })
}

// Count returns the number of diagnostics of severity s.
func (l List) Count(s Severity) int {
	n := 0
	for _, d := range l {
		if d.Severity == s {
			n++
		}
	}
	return n
}

// Sort orders diagnostics by file, line, column, code and message, so output
// is deterministic whatever order the checks ran in, and drops exact
// duplicates.
func (l List) Sort() List {
	slices.SortStableFunc(l, func(a, b Diagnostic) int {
		return cmp.Or(
			cmp.Compare(a.Pos.File, b.Pos.File),
			cmp.Compare(a.Pos.Line, b.Pos.Line),
			cmp.Compare(a.Pos.Column, b.Pos.Column),
			cmp.Compare(a.Code, b.Code),
			cmp.Compare(a.Message, b.Message),
		)
	})
	return slices.Compact(l)
}

// New returns a diagnostic with the severity registered for code.
func New(code string, pos Pos, format string, args ...any) Diagnostic {
	c, ok := Codes[code]
	if !ok {
		panic("diag: unregistered code " + code)
	}
	return Diagnostic{Code: code, Severity: c.Severity, Pos: pos, Message: fmt.Sprintf(format, args...), Hint: c.Hint}
}
