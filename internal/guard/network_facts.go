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
	"strconv"

	"github.com/palisade-dev/palisade/api/v1alpha1"
	"github.com/palisade-dev/palisade/internal/policy"
)

// rulesOf returns the flattened rules of a network policy, nil for none.
func rulesOf(p *policy.Policy) []*netRule {
	if p == nil {
		return nil
	}
	if rs, _, _, ok := p.Network(); ok {
		return netRules(rs)
	}
	return nil
}

// networkFacts fills f for a network policy changed from before to after
// (nil when created or deleted), whose shapes are bs and as. It returns
// false when the work budget ran out, and the facts are then incomplete.
func networkFacts(f *Facts, before, after *policy.Policy, bs, as *shape, b *budget) bool {
	br, ar := rulesOf(before), rulesOf(after)

	// What before allowed, and what after denies: the references that new
	// allows and lifted denies are checked against.
	allowed, denied := newReach(b), newReach(b)
	for _, x := range []struct {
		rules []*netRule
		deny  bool
		into  *reach
	}{{br, false, allowed}, {ar, true, denied}} {
		for _, r := range x.rules {
			if r.Deny != x.deny {
				continue
			}
			for _, p := range r.peers() {
				for _, s := range r.spans() {
					if !b.spend(1) {
						return false
					}
					x.into.add(r.direction, p, s)
				}
			}
		}
		x.into.seal()
	}
	var ok bool
	if f.NewPorts, ok = uncovered(ar, false, allowed, b); !ok {
		return false
	}
	if f.LiftedDenies, ok = uncovered(br, true, denied, b); !ok {
		return false
	}

	f.NewIngressEntities = newEntities(br, ar, "ingress")
	f.NewEgressEntities = newEntities(br, ar, "egress")
	f.AllowAll = allowAll(br, ar)
	if before != nil && after != nil {
		f.WidenedSelectors = widenedSelectors(br, ar, bs.subject, as.subject)
	}
	f.L7MatchAll = l7MatchAll(br, ar)
	return true
}

// uncovered lists the combinations of rules (allows, or denies when deny)
// that ref does not cover.
func uncovered(rules []*netRule, deny bool, ref *reach, b *budget) ([]PortFact, bool) {
	out := []PortFact{}
	seen := map[PortFact]bool{}
	for _, r := range rules {
		if r.Deny != deny {
			continue
		}
		for _, p := range r.peers() {
			for _, s := range r.spans() {
				if !b.spend(1) {
					return nil, false
				}
				c, ok := ref.covered(r.direction, p, s)
				if !ok {
					return nil, false
				}
				if f := s.fact(r.direction, p, r.Path); !c && !seen[f] {
					seen[f] = true
					out = append(out, f)
				}
			}
		}
	}
	return out, true
}

// newEntities lists the entities allow rules of after name in dir and
// those of before did not, sorted.
func newEntities(br, ar []*netRule, dir string) []string {
	names := func(rules []*netRule) map[v1alpha1.Entity]bool {
		m := map[v1alpha1.Entity]bool{}
		for _, r := range rules {
			if !r.Deny && r.direction == dir {
				for _, e := range r.Entities {
					m[e] = true
				}
			}
		}
		return m
	}
	old := names(br)
	out := []string{}
	for e := range names(ar) {
		if !old[e] {
			out = append(out, string(e))
		}
	}
	slices.Sort(out)
	return out
}

// allowAll lists the allow rules of after that admit every peer, marking
// those before had no counterpart of (same direction, reason and ports).
func allowAll(br, ar []*netRule) []AllowAll {
	list := func(rules []*netRule) []AllowAll {
		out := []AllowAll{}
		for _, r := range rules {
			if r.Deny {
				continue
			}
			allPorts := len(r.Ports) == 0 && len(r.ICMPs) == 0
			add := func(reason string) {
				out = append(out, AllowAll{Direction: r.direction, Path: r.Path, Reason: reason, AllPorts: allPorts})
			}
			if !r.HasPeers() {
				add("no-peers")
			}
			if slices.Contains(r.Entities, v1alpha1.EntityAll) {
				add("entity-all")
			}
			if slices.ContainsFunc(r.peers(), func(p peer) bool { return p.Kind == "endpoints" && len(p.reqs) == 0 }) {
				add("empty-selector")
			}
		}
		return out
	}
	old := list(br)
	out := list(ar)
	for i := range out {
		out[i].New = !slices.ContainsFunc(old, func(o AllowAll) bool {
			return o.Direction == out[i].Direction && o.Reason == out[i].Reason && (o.AllPorts || !out[i].AllPorts)
		})
	}
	return out
}

// widenedSelectors compares the selectors at the same path before and
// after: the subject's, and each peer selector's.
func widenedSelectors(br, ar []*netRule, bs, as Subject) []WidenedSelector {
	at := func(rules []*netRule, s Subject) ([]string, map[string][]Requirement) {
		m := map[string][]Requirement{}
		var order []string
		put := func(path string, r []Requirement) {
			if r != nil {
				m[path] = r
				order = append(order, path)
			}
		}
		put("spec.endpointSelector", s.Endpoints)
		put("spec.nodeSelector", s.Nodes)
		for _, r := range rules {
			i := 0
			for _, p := range r.peers() {
				if p.Kind == "endpoints" { // peers lists the endpoint selectors first, in order
					put(r.Path+"."+r.PeerField("Endpoints")+"["+strconv.Itoa(i)+"]", p.reqs)
					i++
				}
			}
		}
		return order, m
	}
	_, old := at(br, bs)
	order, cur := at(ar, as)
	out := []WidenedSelector{}
	for _, path := range order {
		if o, ok := old[path]; ok && widened(o, cur[path]) {
			out = append(out, WidenedSelector{Path: path, Before: o, After: cur[path]})
		}
	}
	return out
}
