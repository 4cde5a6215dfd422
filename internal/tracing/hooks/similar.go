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

package hooks

import (
	"slices"
	"strings"
	"sync"

	"github.com/cilium/ebpf/btf"
)

// funcNames caches the FUNC names of each BTF spec, for suggestions.
var funcNames sync.Map // *btf.Spec → []string

func allFuncs(spec *btf.Spec) []string {
	if v, ok := funcNames.Load(spec); ok {
		return v.([]string)
	}
	var names []string
	for t, err := range spec.All() {
		if err != nil {
			break
		}
		if fn, ok := t.(*btf.Func); ok {
			names = append(names, fn.Name)
		}
	}
	slices.Sort(names)
	names = slices.Compact(names)
	funcNames.Store(spec, names)
	return names
}

// similar returns up to three names of want's kind (prefix "" for kernel
// functions, "bpf_lsm_" for LSM hooks) that look like want: a typo away,
// or the same name of three words or more with another last word
// (security_bpf_map_alloc, security_bpf_map_create), closest first.
func (r *resolver) similar(prefix, want string) []string {
	if r.k == nil || r.k.BTF == nil {
		return nil
	}
	// The stem is kept only when it is specific (three words or more,
	// e.g. security_bpf_map_): do_init_ would suggest anything.
	stem := ""
	if i := strings.LastIndexByte(want, '_'); i > 0 && strings.Count(want[:i+1], "_") >= 3 {
		stem = want[:i+1]
	}
	type cand struct {
		name string
		d    int
	}
	var cs []cand
	for _, n := range allFuncs(r.k.BTF) {
		name, ok := strings.CutPrefix(n, prefix)
		if !ok || name == want {
			continue
		}
		sameStem := stem != "" && strings.HasPrefix(name, stem)
		if !sameStem && (len(name) > len(want)+2 || len(want) > len(name)+2) {
			continue
		}
		d := distance(want, name)
		if d <= 2 || sameStem {
			cs = append(cs, cand{name, d})
		}
	}
	slices.SortFunc(cs, func(a, b cand) int {
		if a.d != b.d {
			return a.d - b.d
		}
		return strings.Compare(a.name, b.name)
	})
	var out []string
	for _, c := range cs[:min(3, len(cs))] {
		out = append(out, c.name)
	}
	return out
}

// distance is the Levenshtein distance between a and b.
func distance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// suggestion spells similar names for a message, or "".
func suggestion(names []string) string {
	switch len(names) {
	case 0:
		return ""
	case 1:
		return "; this kernel has " + names[0]
	}
	return "; this kernel has similar: " + strings.Join(names, ", ")
}
