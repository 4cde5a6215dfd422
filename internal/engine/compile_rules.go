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
	"encoding/json"
	"net/netip"
	"slices"

	"github.com/palisade-dev/palisade/api/v1alpha1"
)

// portSpace is the size of the policy map's proto<<16|port space.
const portSpace = 1 << 24

// compRule is a rule as the compiler holds it: the IR rule (never
// modified), its compiler-assigned ID and what the compiler derives once.
type compRule struct {
	r    *Rule
	pol  *compPolicy
	idx  int
	id   RuleID
	hash RuleID
	peer *peerSpec // nil for a rule that applies to every peer
	wild bool      // Peer.Any or entity "all"
	none bool      // an empty L4 list: matches nothing
	// fixed are the rule's numeric L4 entries as ranges of the port space;
	// named its named ports, resolved per group.
	fixed []ruleRange
	named []namedPort
	names []string // distinct port names, sorted
}

type ruleRange struct {
	lo, hi uint32
	l7     *v1alpha1.L7Rules
	enc    string // canonical encoding of l7, "" for nil
}

type namedPort struct {
	name  string
	proto Proto
	l7    *v1alpha1.L7Rules
	enc   string
}

func newCompRule(p *compPolicy, idx int, r *Rule) *compRule {
	cr := &compRule{r: r, pol: p, idx: idx, hash: ruleHash(r.Origin)}
	cr.wild = r.Peer.Any || slices.Contains(r.Peer.Entities, EntityAll)
	if r.L4 == nil {
		cr.fixed = []ruleRange{{lo: 0, hi: portSpace - 1}}
		return cr
	}
	cr.none = len(r.L4) == 0
	encs := map[*v1alpha1.L7Rules]string{}
	enc := func(l *v1alpha1.L7Rules) string {
		if l == nil {
			return ""
		}
		s, ok := encs[l]
		if !ok {
			b, err := json.Marshal(l)
			if err != nil {
				panic("engine: encode L7 rules: " + err.Error())
			}
			s = string(b)
			encs[l] = s
		}
		return s
	}
	for _, l := range r.L4 {
		if l.Name != "" {
			cr.named = append(cr.named, namedPort{name: l.Name, proto: l.Proto, l7: l.L7, enc: enc(l.L7)})
			cr.names = append(cr.names, l.Name)
			continue
		}
		base := uint32(l.Proto) << 16
		cr.fixed = append(cr.fixed, ruleRange{lo: base | uint32(l.Lo), hi: base | uint32(l.Hi), l7: l.L7, enc: enc(l.L7)})
	}
	slices.Sort(cr.names)
	cr.names = slices.Compact(cr.names)
	return cr
}

// hasL7 reports whether any of the rule's ports has L7 rules.
func (r *compRule) hasL7() bool {
	for _, f := range r.fixed {
		if f.l7 != nil {
			return true
		}
	}
	for _, n := range r.named {
		if n.l7 != nil {
			return true
		}
	}
	return false
}

// eachGroup calls fn with every group the rule belongs to for subject s.
func (c *Compiler) eachGroup(r *compRule, s Identity, fn func(groupKey)) {
	if r.none {
		return
	}
	dir := r.r.Direction
	if !r.wild {
		for _, p := range r.peer.ids {
			fn(groupKey{s, dir, p})
		}
		return
	}
	// Named ports resolve on the destination: on egress that is the peer,
	// so a rule for every peer is expanded to the identities that have
	// one of its port names.
	if dir == Ingress || len(r.fixed) > 0 {
		fn(groupKey{s, dir, 0})
	}
	if dir == Egress && len(r.named) > 0 {
		for _, x := range c.view.holdersOf(r.names) {
			fn(groupKey{s, dir, x})
		}
	}
}

// appendRanges appends the rule's ranges in group k to buf.
func (c *Compiler) appendRanges(buf []ivl, r *compRule, k groupKey) []ivl {
	if !r.wild || k.peer == 0 {
		for _, f := range r.fixed {
			buf = append(buf, ivl{lo: f.lo, hi: f.hi, r: r, l7: f.l7, enc: f.enc})
		}
	}
	if len(r.named) == 0 || r.wild && k.dir == Egress && k.peer == 0 {
		return buf
	}
	dst := k.pid
	if k.dir == Egress {
		dst = k.peer
	}
	w := c.view.work[dst]
	if w == nil {
		return buf // not a workload: named ports mean nothing
	}
	for _, n := range r.named {
		for _, np := range w.ports {
			if np.Name == n.name && np.Protocol == n.proto {
				v := uint32(np.Protocol)<<16 | uint32(np.Port)
				buf = append(buf, ivl{lo: v, hi: v, r: r, l7: n.l7, enc: n.enc})
			}
		}
	}
	return buf
}

// registerRule records what the rule needs from the compiler: its peer
// spec, its CIDR prefixes and FQDN selectors.
func (c *Compiler) registerRule(r *compRule) {
	if r.none {
		return
	}
	if r.wild {
		for _, n := range r.names {
			if r.r.Direction == Egress {
				c.wildNamed[n] = append(c.wildNamed[n], r)
			}
		}
		return
	}
	r.peer = c.peerSpecFor(r.r.Peer, r.hasL7())
	r.peer.rules = append(r.peer.rules, r)
}

// countAddrs counts (n = 1) or uncounts (n = -1) the CIDR prefixes and
// FQDN selectors of a policy's rules. Only policies that select an
// enforcement point of the node count: the node-local identities are the
// prefixes and names that the rules enforced here tell apart, so rules of
// other nodes' workloads add no identities and no entries here.
func (c *Compiler) countAddrs(p *compPolicy, n int) {
	for _, r := range p.rules {
		if r.none || r.wild {
			continue
		}
		for _, cr := range r.r.Peer.CIDRs {
			c.countPrefix(cr.Prefix, n)
			for _, e := range cr.Except {
				c.countPrefix(e, n)
			}
		}
		for _, f := range r.r.Peer.FQDNs {
			c.fqdns[f] += n
			switch c.fqdns[f] {
			case 0:
				delete(c.fqdns, f)
				c.localsDirty = true
			case n:
				c.localsDirty = true
			}
		}
	}
}

func (c *Compiler) unregisterRule(r *compRule) {
	if r.none {
		return
	}
	if r.wild {
		for _, n := range r.names {
			if r.r.Direction == Egress {
				c.wildNamed[n] = deleteRule(c.wildNamed[n], r)
				if len(c.wildNamed[n]) == 0 {
					delete(c.wildNamed, n)
				}
			}
		}
		return
	}
	r.peer.rules = deleteRule(r.peer.rules, r)
	if len(r.peer.rules) == 0 {
		delete(c.peerSpecs, r.peer.key)
	}
}

func (c *Compiler) countPrefix(p netip.Prefix, n int) {
	c.prefixes[p] += n
	switch {
	case c.prefixes[p] == 0:
		delete(c.prefixes, p)
		c.localsDirty = true
	case n > 0 && c.prefixes[p] == n:
		c.localsDirty = true
	}
}

func deleteRule(rs []*compRule, r *compRule) []*compRule {
	if i := slices.Index(rs, r); i >= 0 {
		rs[i] = rs[len(rs)-1]
		rs[len(rs)-1] = nil
		rs = rs[:len(rs)-1]
	}
	return rs
}

// replacePolicy swaps policy old for np (either may be nil).
func (c *Compiler) replacePolicy(old, np *compPolicy) {
	var gone, added []*compRule
	if old != nil {
		c.removePolicy(old)
		gone = old.rules
	}
	if np != nil {
		added = np.rules
	}
	for _, r := range c.reassignIDs(gone, added) {
		for _, s := range r.pol.subj.ids {
			c.eachGroup(r, s, func(k groupKey) {
				if g := c.groups[k]; g != nil {
					c.markDirty(g)
				}
			})
		}
	}
	if np != nil {
		c.addPolicy(np)
	}
}

func (c *Compiler) addPolicy(p *compPolicy) {
	c.policies[p.key] = p
	p.subj = c.subjSpecFor(p.pol.Subject)
	p.subj.pols = append(p.subj.pols, p)
	for _, r := range p.rules {
		c.registerRule(r)
	}
	if len(p.subj.ids) > 0 {
		c.countAddrs(p, 1)
	}
	for _, s := range p.subj.ids {
		c.subjects[s].count(p.pol, 1)
		for _, r := range p.rules {
			c.eachGroup(r, s, func(k groupKey) { c.addMember(k, r) })
		}
	}
}

func (c *Compiler) removePolicy(p *compPolicy) {
	for _, s := range p.subj.ids {
		c.subjects[s].count(p.pol, -1)
		for _, r := range p.rules {
			c.eachGroup(r, s, func(k groupKey) { c.removeMember(k, r) })
		}
	}
	if len(p.subj.ids) > 0 {
		c.countAddrs(p, -1)
	}
	for _, r := range p.rules {
		c.unregisterRule(r)
	}
	i := slices.Index(p.subj.pols, p)
	p.subj.pols = slices.Delete(p.subj.pols, i, i+1)
	if len(p.subj.pols) == 0 {
		delete(c.subjSpecs, p.subj.key)
	}
	delete(c.policies, p.key)
}

// reassignIDs keeps rule IDs equal to what Build assigns: Build gives each
// rule, in policy and rule order, the first free ID from its hash on
// (linear probing, 0 skipped). Only the runs of occupied IDs that a change
// touches can change, so they are cleared and refilled in Build's order,
// absorbing any further run that a refill runs into. It returns the
// surviving rules whose ID changed.
func (c *Compiler) reassignIDs(gone, added []*compRule) []*compRule {
	if len(gone) == 0 && len(added) == 0 {
		return nil
	}
	occupied := func(id RuleID) bool { return id == 0 || c.slots[id] != nil }
	inT := map[*compRule]bool{}
	oldID := map[*compRule]RuleID{}
	var T []*compRule
	collect := func(s RuleID) {
		a := s
		for occupied(a-1) && a-1 != s {
			a--
		}
		for id := a; occupied(id); id++ {
			if r := c.slots[id]; r != nil && !inT[r] {
				inT[r], oldID[r] = true, id
				T = append(T, r)
				delete(c.slots, id)
			}
			if id+1 == a {
				break
			}
		}
	}
	for _, r := range gone {
		if c.slots[r.id] == r {
			collect(r.id)
		}
	}
	for _, r := range added {
		if occupied(r.hash) {
			collect(r.hash)
		}
	}
	T = slices.DeleteFunc(T, func(r *compRule) bool { return slices.Contains(gone, r) })
	for _, r := range added {
		inT[r] = true
		T = append(T, r)
	}
	for {
		slices.SortFunc(T, ruleOrder)
		var placed []*compRule
		merged := false
		for _, r := range T {
			s := r.hash
			for occupied(s) {
				if o := c.slots[s]; o != nil && !inT[o] {
					// A run this change did not touch: refill it too.
					for _, p := range placed {
						delete(c.slots, p.id)
					}
					collect(s)
					merged = true
					break
				}
				s++
			}
			if merged {
				break
			}
			r.id = s
			c.slots[s] = r
			placed = append(placed, r)
		}
		if !merged {
			break
		}
	}
	var moved []*compRule
	for _, r := range T {
		if old, ok := oldID[r]; ok && old != r.id {
			moved = append(moved, r)
		}
	}
	return moved
}
