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
	"net/netip"
	"slices"
	"strconv"
	"strings"
)

// peerSpec is a distinct rule peer and the peer identities it selects.
// Rules with the same peer share it, so each distinct peer is matched once.
type peerSpec struct {
	key  string
	peer Peer
	// allWorld: the spec selects every address outside the cluster by
	// labels (selectsAllWorld) and its rules have no L7 rules. Its rules
	// are written under IdentityAllWorld, which the datapath probes for
	// every peer outside the cluster, and not under each world identity.
	allWorld bool
	ids      []Identity // sorted
	rules    []*compRule
}

// The labels of the identities of addresses outside the cluster: world and
// node-local CIDR identities, and the API server outside the nodes
// (IdentityKubeAPIServer and its node-local prefixes).
var (
	worldLabels    = Reserved(EntityWorld)
	apiWorldLabels = Reserved(EntityKubeAPIServer, EntityWorld)
)

// selectsAllWorld reports whether the peer's selectors or entities select
// both label sets that addresses outside the cluster have, and so every
// such address, whatever prefixes the ipcache holds.
func selectsAllWorld(p *Peer) bool {
	return peerLabelsMatch(p, worldLabels) && peerLabelsMatch(p, apiWorldLabels)
}

func peerLabelsMatch(p *Peer, l Labels) bool {
	for i := range p.Endpoints {
		if p.Endpoints[i].Matches(l) {
			return true
		}
	}
	for _, e := range p.Entities {
		if MatchesEntity(e, l) {
			return true
		}
	}
	return false
}

// worldClass reports whether cl is an address outside the cluster (see
// WorldPeer); selector identities are not addresses.
func (cl *peerClass) worldClass() bool { return cl.world && cl.fqdn == nil }

// subjSpec is a distinct policy subject and the local enforcement points
// it selects.
type subjSpec struct {
	key  string
	sub  Subject
	ids  []Identity // sorted PolicyIDs
	pols []*compPolicy
}

// subjectInfo is a local enforcement point: a workload identity with
// endpoints on the node, or the node itself (IdentityHost).
type subjectInfo struct {
	id  Identity
	sub subject
	// dd and audit count the selecting policies that make the subject
	// default-deny (enforced, audited) per direction.
	dd, audit [2]int
}

func (s *subjectInfo) count(p *Policy, n int) {
	for _, d := range []Direction{Ingress, Egress} {
		if !p.DefaultDeny[d] {
			continue
		}
		if p.Audit {
			s.audit[d] += n
		} else {
			s.dd[d] += n
		}
	}
}

func (s *subjectInfo) flags() EndpointFlags {
	var f EndpointFlags
	if s.dd[Ingress] > 0 {
		f |= IngressDefaultDeny
	}
	if s.audit[Ingress] > 0 {
		f |= IngressDefaultAudit
	}
	if s.dd[Egress] > 0 {
		f |= EgressDefaultDeny
	}
	if s.audit[Egress] > 0 {
		f |= EgressDefaultAudit
	}
	return f
}

// matches reports whether the spec selects the peer class, as peerMatches
// does for every address of the class.
func (s *peerSpec) matches(cl *peerClass) bool {
	p := &s.peer
	if s.allWorld && cl.worldClass() {
		return false // IdentityAllWorld stands for it
	}
	if cl.fqdn != nil {
		// A selector identity is selected by its selector only.
		for _, f := range p.FQDNs {
			if f.normalized() == *cl.fqdn {
				return true
			}
		}
		return false
	}
	for i := range p.Endpoints {
		if p.Endpoints[i].Matches(cl.labels) {
			return true
		}
	}
	for _, e := range p.Entities {
		if MatchesEntity(e, cl.labels) {
			return true
		}
	}
	if !cl.world || !cl.prefix.IsValid() {
		return false
	}
	for _, cr := range p.CIDRs {
		if cidrCovers(cr, cl.prefix) {
			return true
		}
	}
	return false
}

// cidrCovers reports whether every address resolving to prefix p is in the
// CIDR rule, given that the rule's prefix and exceptions are all in the
// ipcache: p lies in the rule's prefix and in none of its exceptions.
func cidrCovers(cr CIDRRule, p netip.Prefix) bool {
	if !within(p, cr.Prefix) {
		return false
	}
	for _, e := range cr.Except {
		if within(p, e) {
			return false
		}
	}
	return true
}

// within reports whether p ⊆ outer.
func within(p, outer netip.Prefix) bool {
	return outer.Bits() <= p.Bits() && outer.Contains(p.Addr())
}

// peerSpecFor returns the spec of peer p for rules with (l7) or without
// L7 rules. A peer selecting every world address has two specs: the rules
// without L7 rules are written under IdentityAllWorld, those with L7 rules
// under every world identity, because the kernel decides DNS rules from
// the entries of the peer's identity and of identity 0 only (bpf/dns.h).
func (c *Compiler) peerSpecFor(p Peer, l7 bool) *peerSpec {
	key := peerKey(p)
	all := selectsAllWorld(&p)
	if all && l7 {
		key += "\x1fL7"
	}
	if s := c.peerSpecs[key]; s != nil {
		return s
	}
	s := &peerSpec{key: key, peer: p, allWorld: all && !l7}
	c.peerSpecs[key] = s
	if !c.building {
		for id, cl := range c.classes {
			if s.matches(cl) {
				s.ids = append(s.ids, id)
			}
		}
		if s.allWorld {
			s.ids = append(s.ids, IdentityAllWorld)
		}
		slices.Sort(s.ids)
	}
	return s
}

func (c *Compiler) subjSpecFor(sub Subject) *subjSpec {
	key := subjectKey(sub)
	if s := c.subjSpecs[key]; s != nil {
		return s
	}
	s := &subjSpec{key: key, sub: sub}
	c.subjSpecs[key] = s
	if !c.building {
		for id, si := range c.subjects {
			if sub.selects(si.sub) {
				s.ids = append(s.ids, id)
			}
		}
		slices.Sort(s.ids)
	}
	return s
}

func subjectKey(s Subject) string {
	var b strings.Builder
	if s.Nodes != nil {
		b.WriteByte('N')
		writeSelector(&b, *s.Nodes)
	} else if s.Endpoints != nil {
		b.WriteByte('E')
		writeSelector(&b, *s.Endpoints)
	}
	return b.String()
}

// peerKey is a canonical key of what a peer selects: equal for peers that
// differ only in the order of their parts.
func peerKey(p Peer) string {
	if p.Any {
		return "*"
	}
	parts := make([]string, 0, len(p.Endpoints)+len(p.Entities)+len(p.CIDRs)+len(p.FQDNs))
	var b strings.Builder
	for _, s := range p.Endpoints {
		b.Reset()
		b.WriteByte('s')
		writeSelector(&b, s)
		parts = append(parts, b.String())
	}
	for _, e := range p.Entities {
		parts = append(parts, "e"+string(e))
	}
	for _, cr := range p.CIDRs {
		parts = append(parts, "c"+cidrKey(cr))
	}
	for _, f := range p.FQDNs {
		parts = append(parts, "f"+f.Name+"\x00"+f.Pattern)
	}
	slices.Sort(parts)
	parts = slices.Compact(parts)
	return strings.Join(parts, "\x1e")
}

// cidrKey renders a CIDR rule canonically: prefix, then sorted exceptions.
func cidrKey(cr CIDRRule) string {
	ex := make([]string, len(cr.Except))
	for i, e := range cr.Except {
		ex[i] = e.String()
	}
	slices.Sort(ex)
	return cr.Prefix.String() + "!" + strings.Join(ex, "!")
}

func writeSelector(b *strings.Builder, s Selector) {
	for _, r := range s.Requirements {
		b.WriteString(r.Key)
		b.WriteByte(0)
		b.WriteString(strconv.Itoa(int(r.Op)))
		for _, v := range r.Values {
			b.WriteByte(1)
			b.WriteString(v)
		}
		b.WriteByte(2)
	}
}

// selIndex finds the workloads a selector selects without testing every
// workload: candidates come from the most selective "key in (values)" or
// "key exists" requirement and are then tested in full.
type selIndex struct {
	all    []Identity
	labels map[Identity]Labels
	byKV   map[string]map[string][]Identity
	byKey  map[string][]Identity
	buf    []Identity
}

func newSelIndex(labels map[Identity]Labels) *selIndex {
	x := &selIndex{labels: labels, byKV: map[string]map[string][]Identity{}, byKey: map[string][]Identity{}}
	for id := range labels {
		x.all = append(x.all, id)
	}
	slices.Sort(x.all)
	for _, id := range x.all {
		for k, v := range labels[id] {
			m := x.byKV[k]
			if m == nil {
				m = map[string][]Identity{}
				x.byKV[k] = m
			}
			m[v] = append(m[v], id)
			x.byKey[k] = append(x.byKey[k], id)
		}
	}
	return x
}

// match appends the workloads that s selects to out, in no order.
func (x *selIndex) match(s Selector, out []Identity) []Identity {
	if s.selectsReserved() {
		return out
	}
	cand := x.all
	for _, r := range s.Requirements {
		switch r.Op {
		case OpIn:
			n := 0
			for _, v := range r.Values {
				n += len(x.byKV[r.Key][v])
			}
			if n < len(cand) {
				x.buf = x.buf[:0]
				for _, v := range r.Values {
					x.buf = append(x.buf, x.byKV[r.Key][v]...)
				}
				cand = x.buf
			}
		case OpExists:
			if l := x.byKey[r.Key]; len(l) < len(cand) {
				cand = l
			}
		}
	}
	for _, id := range cand {
		if s.Matches(x.labels[id]) {
			out = append(out, id)
		}
	}
	return out
}

// matchAll computes the identities of every peer spec at once, for a full
// compile.
func (c *Compiler) matchAll() {
	work := map[Identity]Labels{}
	var others []*peerClass
	for id, cl := range c.classes {
		switch {
		case cl.work != nil:
			work[id] = cl.labels
		case cl.fqdn == nil: // selector identities match FQDN peers only
			others = append(others, cl)
		}
	}
	slices.SortFunc(others, func(a, b *peerClass) int { return cmp.Compare(a.id, b.id) })
	under := c.prefixIndex(others)
	wx := newSelIndex(work)
	sels := map[string][]Identity{}
	ents := map[Entity][]Identity{}
	cidrs := map[string][]Identity{}
	var buf []Identity
	var kb strings.Builder
	for _, ps := range c.peerSpecs {
		buf = buf[:0]
		p := &ps.peer
		for _, s := range p.Endpoints {
			kb.Reset()
			writeSelector(&kb, s)
			ids, ok := sels[kb.String()]
			if !ok {
				ids = wx.match(s, nil)
				if s.selectsReserved() {
					for _, cl := range others {
						if s.Matches(cl.labels) {
							ids = append(ids, cl.id)
						}
					}
				}
				sels[kb.String()] = ids
			}
			buf = append(buf, ids...)
		}
		for _, e := range p.Entities {
			ids, ok := ents[e]
			if !ok {
				for id, cl := range c.classes {
					if cl.fqdn == nil && MatchesEntity(e, cl.labels) {
						ids = append(ids, id)
					}
				}
				ents[e] = ids
			}
			buf = append(buf, ids...)
		}
		for _, cr := range p.CIDRs {
			k := cidrKey(cr)
			ids, ok := cidrs[k]
			if !ok {
				for _, cl := range under[cr.Prefix.Masked()] {
					if cidrCovers(cr, cl.prefix) {
						ids = append(ids, cl.id)
					}
				}
				cidrs[k] = ids
			}
			buf = append(buf, ids...)
		}
		for _, f := range p.FQDNs {
			if cl := c.sels[f.normalized()]; cl != nil {
				buf = append(buf, cl.id)
			}
		}
		if ps.allWorld {
			buf = slices.DeleteFunc(buf, func(id Identity) bool { return c.classes[id].worldClass() })
			buf = append(buf, IdentityAllWorld)
		}
		slices.Sort(buf)
		ps.ids = slices.Clone(slices.Compact(buf))
	}
}

// prefixIndex returns, for the prefix (masked) of every CIDR rule of the
// peer specs, the classes among others whose prefix lies within it: each
// class is filed under the rule prefixes among its own ancestors, so a full
// compile costs classes × address bits map probes rather than CIDR rules ×
// classes prefix tests. Every spec counts, not only those of policies that
// apply on the node (c.prefixes): a spec keeps its identities for when a
// policy of it comes to apply here.
func (c *Compiler) prefixIndex(others []*peerClass) map[netip.Prefix][]*peerClass {
	rules := map[netip.Prefix]bool{}
	for _, ps := range c.peerSpecs {
		for _, cr := range ps.peer.CIDRs {
			rules[cr.Prefix.Masked()] = true
		}
	}
	under := map[netip.Prefix][]*peerClass{}
	for _, cl := range others {
		if !cl.world || !cl.prefix.IsValid() {
			continue
		}
		for bits := 0; bits <= cl.prefix.Bits(); bits++ {
			anc, _ := cl.prefix.Addr().Prefix(bits)
			if rules[anc] {
				under[anc] = append(under[anc], cl)
			}
		}
	}
	return under
}

// matchSubjects computes the enforcement points of every subject spec at
// once, for a full compile.
func (c *Compiler) matchSubjects() {
	subj := map[Identity]Labels{}
	for id, si := range c.subjects {
		if si.sub.labels != nil {
			subj[id] = si.sub.labels
		}
	}
	sx := newSelIndex(subj)
	host := c.subjects[IdentityHost]
	for _, ss := range c.subjSpecs {
		switch {
		case ss.sub.Nodes != nil:
			if host != nil && ss.sub.selects(host.sub) {
				ss.ids = []Identity{IdentityHost}
			}
		case ss.sub.Endpoints != nil:
			ss.ids = sx.match(*ss.sub.Endpoints, nil)
			slices.Sort(ss.ids)
		}
	}
}
