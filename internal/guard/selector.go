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
	"slices"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/palisade-dev/palisade/internal/engine"
)

// Requirement is one term of a label selector in the change set, in the
// engine's canonical form (engine.NewSelector): matchLabels folded in as In
// with one value and label source prefixes ("k8s:", "any:") stripped, so
// that guards deal with one shape and judge the selector the datapath
// enforces. Values are sorted.
type Requirement struct {
	Key      string   `json:"key"`
	Operator string   `json:"operator"`
	Values   []string `json:"values"`
}

// requirements normalizes a selector into sorted requirements; nil for a
// nil selector, empty (not nil) for {} which selects everything. A
// selector the engine refuses (validation reports it, and no node enforces
// the policy) is described as far as the engine's model goes.
func requirements(s *metav1.LabelSelector) []Requirement {
	if s == nil {
		return nil
	}
	sel, _ := engine.NewSelector(s, "")
	out := make([]Requirement, 0, len(sel.Requirements))
	for _, r := range sel.Requirements {
		vs := r.Values
		if vs == nil {
			vs = []string{}
		}
		out = append(out, Requirement{Key: r.Key, Operator: r.Op.String(), Values: vs})
	}
	// The document's order: by key, operator name and values.
	slices.SortFunc(out, func(a, b Requirement) int {
		if c := strings.Compare(a.Key, b.Key); c != 0 {
			return c
		}
		if c := strings.Compare(a.Operator, b.Operator); c != 0 {
			return c
		}
		return slices.Compare(a.Values, b.Values)
	})
	return out
}

// selectorKey is a canonical text of normalized requirements, equal for
// selectors that are written differently but say the same.
func selectorKey(rs []Requirement) string {
	var b strings.Builder
	b.WriteByte('{')
	for i, r := range rs {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(r.Key)
		b.WriteByte(' ')
		b.WriteString(r.Operator)
		if len(r.Values) > 0 {
			b.WriteString(" (" + strings.Join(r.Values, ",") + ")")
		}
	}
	b.WriteByte('}')
	return b.String()
}

// covers reports whether every object that narrow selects is also selected
// by wide: each requirement of wide follows from one requirement of narrow
// on the same key. It is sound, not complete: a combination of several
// requirements that implies one is not recognized, so a selector can be
// reported as wider than it really is, never as narrower.
func covers(wide, narrow []Requirement) bool {
	for _, w := range wide {
		implied := false
		for _, n := range narrow {
			if n.Key == w.Key && implies(n, w) {
				implied = true
				break
			}
		}
		if !implied {
			return false
		}
	}
	return true
}

// implies reports whether requirement n, on the same key as w, implies w.
func implies(n, w Requirement) bool {
	switch w.Operator {
	case "Exists":
		return n.Operator == "In" || n.Operator == "Exists"
	case "In":
		return n.Operator == "In" && subset(n.Values, w.Values)
	case "NotIn":
		switch n.Operator {
		case "NotIn":
			return subset(w.Values, n.Values)
		case "In":
			return !intersects(n.Values, w.Values)
		case "DoesNotExist":
			return true
		}
	case "DoesNotExist":
		return n.Operator == "DoesNotExist"
	}
	return false
}

// widened reports whether after selects everything before did and more.
func widened(before, after []Requirement) bool {
	return covers(after, before) && !covers(before, after)
}

// subset and intersects work on sorted value lists.
func subset(a, b []string) bool {
	for _, x := range a {
		if _, ok := slices.BinarySearch(b, x); !ok {
			return false
		}
	}
	return true
}

func intersects(a, b []string) bool {
	for _, x := range a {
		if _, ok := slices.BinarySearch(b, x); ok {
			return true
		}
	}
	return false
}
