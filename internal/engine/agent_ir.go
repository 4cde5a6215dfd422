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

package engine

import (
	"cmp"
	"fmt"
	"slices"

	"github.com/palisade-dev/palisade/internal/policy"
)

// BuildPolicy normalizes one policy as Build does; it returns nil for a
// kind that is not a network policy. Each rule's ID is its hash alone:
// Assemble gives the rules the IDs Build would give them among other
// policies. A caller can keep the result per object version and assemble
// it again and again, so that a change to one policy of many costs the
// normalization of that one.
func BuildPolicy(p *policy.Policy, revision string) (*Policy, error) {
	np, err := buildPolicy(p, revision)
	if err != nil {
		return nil, fmt.Errorf("%s: %s: %w", p.Pos, p.ID(), err)
	}
	if np == nil {
		return nil, nil
	}
	for _, r := range np.Rules {
		r.ID = ruleHash(r.Origin)
	}
	return np, nil
}

// Assembler builds IRs from policies normalized one by one (BuildPolicy),
// equal to what Build returns for the same policies. It keeps the copies it
// had to make, so that an unchanged policy stays the same pointer from one
// IR to the next. The zero value is ready to use.
type Assembler struct {
	// copies are, per policy given, the copy with other rule IDs that the
	// last IR holds instead.
	copies map[*Policy]*Policy
}

// Assemble returns the IR of policies. The policies given are not changed;
// one whose rules need other IDs than their hashes (a collision with an
// earlier policy's rule) is replaced in the IR by a copy with the IDs Build
// gives.
func (a *Assembler) Assemble(policies []*Policy) *IR {
	prev := a.copies
	a.copies = nil
	ir := &IR{Policies: slices.Clone(policies), rules: make(map[RuleID]*Rule, len(policies)*2)}
	order := func(a, b *Policy) int {
		return cmp.Or(cmp.Compare(a.Origin.Kind, b.Origin.Kind), cmp.Compare(a.Origin.Namespace, b.Origin.Namespace), cmp.Compare(a.Origin.Name, b.Origin.Name))
	}
	// A caller that keeps its policies in order saves the sort.
	if !slices.IsSortedFunc(ir.Policies, order) {
		slices.SortFunc(ir.Policies, order)
	}
	var ids []RuleID
	for i, src := range ir.Policies {
		ids = ids[:0]
		moved := false
		for _, r := range src.Rules {
			id := r.ID // the hash, see BuildPolicy
			for id == 0 || ir.rules[id] != nil {
				id++
			}
			ids = append(ids, id)
			ir.rules[id] = r
			moved = moved || id != r.ID
		}
		if !moved {
			continue
		}
		var cp *Policy
		if prev != nil {
			if c := prev[src]; c != nil && slices.EqualFunc(c.Rules, ids, func(r *Rule, id RuleID) bool { return r.ID == id }) {
				cp = c
			}
		}
		if cp == nil {
			p := *src
			p.Rules = make([]*Rule, len(src.Rules))
			for j, r := range src.Rules {
				cr := *r
				cr.ID = ids[j]
				p.Rules[j] = &cr
			}
			cp = &p
		}
		for _, r := range cp.Rules {
			ir.rules[r.ID] = r
		}
		if a.copies == nil {
			a.copies = map[*Policy]*Policy{}
		}
		a.copies[src] = cp
		ir.Policies[i] = cp
	}
	return ir
}
