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

// The property tests (property_test.go) draw their cases from package
// enginetest, which imports engine, so they are in package engine_test
// and reach these internals through the names below.

import (
	"cmp"
	"math/rand/v2"
	"net/netip"
	"slices"
)

var (
	// BuildIR is testIR.
	BuildIR = testIR
	// RuleHash is the hash Build starts a rule's ID from.
	RuleHash = ruleHash
	// CompareFlow is compareFlow (compile_test.go).
	CompareFlow = compareFlow
	// StatesEqual is statesEqual (compile_test.go).
	StatesEqual = statesEqual
)

// FQDNHits counts the policy entries that the selector probes of an
// egress lookup from local to remote find, so that the property test can
// tell that toFQDNs decided flows.
func FQDNHits(m *MapState, local, remote netip.Addr, proto Proto, port uint16) int {
	ep, ok := m.Endpoints[local]
	if !ok || !FQDNEligible(m.Identity(remote)) {
		return 0
	}
	n := 0
	for _, id := range m.fqdnProbes(remote) {
		if _, ok := m.lookupPolicy(PolicyKey{PolicyID: ep.PolicyID, Direction: Egress, Identity: id, Proto: proto, Port: port}); ok {
			n++
		}
	}
	return n
}

// testIR makes an IR of policies the way Build does: sorted by kind,
// namespace and name, rule IDs from the hash of each rule's origin,
// probing past 0 and IDs in use. The policies and rules are copied, so
// that the input can be reused.
func testIR(pols []*Policy) *IR {
	ir := &IR{rules: map[RuleID]*Rule{}}
	for _, p := range pols {
		cp := *p
		cp.Rules = make([]*Rule, len(p.Rules))
		for i, r := range p.Rules {
			cr := *r
			cp.Rules[i] = &cr
		}
		ir.Policies = append(ir.Policies, &cp)
	}
	slices.SortFunc(ir.Policies, func(a, b *Policy) int {
		return cmp.Or(cmp.Compare(a.Origin.Kind, b.Origin.Kind), cmp.Compare(a.Origin.Namespace, b.Origin.Namespace), cmp.Compare(a.Origin.Name, b.Origin.Name))
	})
	for _, p := range ir.Policies {
		for _, r := range p.Rules {
			r.ID = ruleHash(r.Origin)
			for r.ID == 0 || ir.rules[r.ID] != nil {
				r.ID++
			}
			ir.rules[r.ID] = r
		}
	}
	return ir
}

// gen and pickOf serve bench_test.go's random choices.
type gen struct{ r *rand.Rand }

func pickOf[T any](g *gen, xs ...T) T { return xs[g.r.IntN(len(xs))] }
