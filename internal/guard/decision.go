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
	"cmp"
	"encoding/json"
	"fmt"
	"slices"
	"unicode/utf8"

	"github.com/palisade-dev/palisade/internal/diag"
)

// maxMessageBytes bounds one finding's message: a guard may quote a
// hostile policy's field, and the decision goes into status and CI logs.
const maxMessageBytes = 1024

// Finding is one message of a guard: a denial, a warning, or the reason a
// guard failed.
type Finding struct {
	// Guard is the guard's package below palisade.guards, e.g.
	// "admin_ports"; empty for problems with the change set itself.
	Guard string `json:"guard"`
	// Source names the guard's source, e.g. "builtin".
	Source string `json:"source"`
	// Message is for people.
	Message string `json:"message"`
	// Policy is the kind/namespace/name the finding is about, if any.
	Policy string `json:"policy,omitempty"`
	// File and Line locate it, relative to the policy directory.
	File string `json:"file,omitempty"`
	Line int    `json:"line,omitempty"`
}

// Decision is the outcome of guarding a change. Its JSON is deterministic:
// sorted, without timings or machine-specific paths, so the CLI and the
// controller produce the same bytes for the same change and guards.
type Decision struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	// Allowed: no guard denied and none failed.
	Allowed          bool   `json:"allowed"`
	Revision         string `json:"revision"`
	PreviousRevision string `json:"previous_revision"`
	// GuardsRevision is the content hash of the guards and their data.
	GuardsRevision string  `json:"guards_revision"`
	Summary        Summary `json:"summary"`
	// Denies and Warnings are the guards' deny and warn messages.
	Denies   []Finding `json:"denies"`
	Warnings []Finding `json:"warnings"`
	// Errors are why the change is denied without a guard saying so: a
	// guard that failed, timed out or returned malformed output, or a change
	// set beyond the input budget (fail closed).
	Errors []Finding `json:"errors"`
}

// finish sorts the findings and decides.
func (d *Decision) finish() *Decision {
	for _, l := range []*[]Finding{&d.Denies, &d.Warnings, &d.Errors} {
		if *l == nil {
			*l = []Finding{}
		}
		for i := range *l {
			(*l)[i].Message = truncate((*l)[i].Message)
		}
		slices.SortFunc(*l, func(a, b Finding) int {
			return cmp.Or(cmp.Compare(a.File, b.File), cmp.Compare(a.Line, b.Line), cmp.Compare(a.Guard, b.Guard),
				cmp.Compare(a.Source, b.Source), cmp.Compare(a.Policy, b.Policy), cmp.Compare(a.Message, b.Message))
		})
		*l = slices.Compact(*l)
	}
	d.Allowed = len(d.Denies) == 0 && len(d.Errors) == 0
	return d
}

func truncate(s string) string {
	if len(s) <= maxMessageBytes {
		return s
	}
	i := maxMessageBytes
	for i > 0 && !utf8.RuneStart(s[i]) {
		i--
	}
	return s[:i] + "…"
}

// JSON returns the decision document, indented, with a final newline.
func (d *Decision) JSON() []byte {
	b, err := json.MarshalIndent(d, "", "  ")
	if err != nil {
		panic(fmt.Sprintf("guard: encode decision: %v", err)) // plain strings and ints only
	}
	return append(b, '\n')
}

// Diagnostics returns the findings as diagnostics (PAL601 deny, PAL602
// warning, PAL604 failure), for the formats validation prints.
func (d *Decision) Diagnostics() diag.List {
	var l diag.List
	add := func(code string, fs []Finding) {
		for _, f := range fs {
			who := f.Guard
			if who == "" {
				who = "guard input"
			}
			x := diag.New(code, diag.Pos{File: f.File, Line: f.Line}, "[%s] %s", who, f.Message)
			x.Object = f.Policy
			l = append(l, x)
		}
	}
	add("PAL601", d.Denies)
	add("PAL602", d.Warnings)
	add("PAL604", d.Errors)
	return l.Sort()
}
