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
	"net/netip"
	"slices"
)

// Flow is one packet's worth of a connection: addresses, protocol,
// destination port (or ICMP type), and optionally the L7 request it
// carries.
type Flow struct {
	Src   netip.Addr `json:"src"`
	Dst   netip.Addr `json:"dst"`
	Proto Proto      `json:"proto"`
	// Port is the destination port, or the ICMP type. For a reply it is
	// the port of the connection (the reply's source port).
	Port uint16 `json:"port"`
	// Reply marks a packet of the reply direction of a connection that Dst
	// opened to Src:Port: it is allowed exactly when the connection is.
	Reply   bool     `json:"reply,omitempty"`
	Request *Request `json:"request,omitempty"`
}

// Verdict is the outcome for a flow.
type Verdict uint8

// The verdicts. Audit means "allowed, but a policy in audit mode would
// have dropped it".
const (
	VerdictAllow Verdict = iota
	VerdictDeny
	VerdictAudit
)

var verdictNames = [...]string{"allow", "deny", "audit"}

func (v Verdict) String() string { return verdictNames[v] }

// Reason says why a side reached its verdict.
type Reason uint8

// The reasons.
const (
	// ReasonNotEnforced: the side is not a managed endpoint or node (the
	// world, an unmanaged pod), so no policy applies there.
	ReasonNotEnforced Reason = iota
	// ReasonNotSelected: no policy makes the endpoint default-deny in this
	// direction and no deny rule matched.
	ReasonNotSelected
	// ReasonAllowed: an allow rule matched (Rule).
	ReasonAllowed
	// ReasonDenied: a deny rule matched (Rule).
	ReasonDenied
	// ReasonDefaultDeny: no allow rule matched and the endpoint is
	// default-deny in this direction (Policies say why).
	ReasonDefaultDeny
	// ReasonL7Denied: the port is allowed only for requests that match L7
	// rules, and the request matched none (Rule is one of them).
	ReasonL7Denied
)

var reasonNames = [...]string{"not-enforced", "not-selected", "allowed", "denied", "default-deny", "l7-denied"}

func (r Reason) String() string { return reasonNames[r] }

// Side is the decision of one enforcement point: the source's egress or
// the destination's ingress.
type Side struct {
	Direction Direction `json:"direction"`
	// Endpoint is "namespace/name" of the enforcing workload, or
	// "node/<name>" for a host firewall, or "" when not enforced.
	Endpoint string  `json:"endpoint,omitempty"`
	Verdict  Verdict `json:"verdict"`
	Reason   Reason  `json:"reason"`
	// Rule is the deciding rule: for several matching rules of the
	// deciding kind, the one with the lowest RuleID.
	Rule *Rule `json:"-"`
	// Policies are the policies that made the endpoint default-deny.
	Policies []Origin `json:"-"`
}

// Result is the verdict for a flow and how each side reached it.
type Result struct {
	Verdict Verdict `json:"verdict"`
	Egress  Side    `json:"egress"`
	Ingress Side    `json:"ingress"`
	// Decider is the side that decided: the first to deny, else the first
	// to audit, else egress.
	Decider Direction `json:"decider"`
}

// Evaluate answers whether flow is allowed under the policies in ir, in
// the cluster c. It is the statement of the semantics: straightforward and
// slow on purpose.
func Evaluate(ir *IR, c *Cluster, flow Flow) Result {
	if flow.Reply {
		orig := flow
		orig.Src, orig.Dst, orig.Reply, orig.Request = flow.Dst, flow.Src, false, nil
		return Evaluate(ir, c, orig)
	}
	var res Result
	res.Egress = evaluateSide(ir, c, Egress, flow.Src, flow.Dst, flow)
	res.Ingress = evaluateSide(ir, c, Ingress, flow.Dst, flow.Src, flow)
	switch {
	case res.Egress.Verdict == VerdictDeny:
		res.Verdict, res.Decider = VerdictDeny, Egress
	case res.Ingress.Verdict == VerdictDeny:
		res.Verdict, res.Decider = VerdictDeny, Ingress
	case res.Egress.Verdict == VerdictAudit:
		res.Verdict, res.Decider = VerdictAudit, Egress
	case res.Ingress.Verdict == VerdictAudit:
		res.Verdict, res.Decider = VerdictAudit, Ingress
	default:
		res.Verdict, res.Decider = VerdictAllow, Egress
	}
	return res
}

// subject is an enforcement point: a managed workload or a node's host.
type subject struct {
	id       string
	node     string
	labels   Labels            // workload labels; nil for a host
	nodeLbls map[string]string // node labels, for a host
	ep       *Endpoint
}

func subjectOf(c *Cluster, addr netip.Addr) (subject, bool) {
	if e, ok := c.EndpointByIP(addr); ok {
		if e.Unmanaged {
			return subject{}, false
		}
		return subject{id: e.ID(), node: e.Node, labels: c.WorkloadLabels(e), ep: e}, true
	}
	if n, ok := c.NodeByIP(addr); ok {
		return subject{id: "node/" + n.Name, node: n.Name, nodeLbls: n.Labels}, true
	}
	return subject{}, false
}

// Selects reports whether the policy applies to the subject.
func (s Subject) selects(sub subject) bool {
	if sub.labels != nil {
		return s.Endpoints != nil && s.Endpoints.Matches(sub.labels)
	}
	return s.Nodes != nil && s.Nodes.MatchesNode(sub.nodeLbls)
}

func evaluateSide(ir *IR, c *Cluster, dir Direction, local, remote netip.Addr, flow Flow) Side {
	side := Side{Direction: dir}
	sub, ok := subjectOf(c, local)
	if !ok {
		return side // ReasonNotEnforced, allow
	}
	side.Endpoint = sub.id
	peer := c.PeerLabels(remote, sub.node)
	// The destination's named ports: the local workload on ingress, the
	// remote one on egress.
	var dst *Endpoint
	if dir == Ingress {
		dst = sub.ep
	} else if e, ok := c.EndpointByIP(remote); ok && !e.Unmanaged {
		dst = e
	}

	var ddEnforce, ddAudit []Origin
	var denyEnf, denyAudit, allows []*Rule
	var allowL4 [][]L4
	for _, p := range ir.Policies {
		if !p.Subject.selects(sub) {
			continue
		}
		if p.DefaultDeny[dir] {
			if p.Audit {
				ddAudit = append(ddAudit, p.Origin)
			} else {
				ddEnforce = append(ddEnforce, p.Origin)
			}
		}
		for _, r := range p.Rules {
			if r.Direction != dir || !peerMatches(r.Peer, peer, remote, c) {
				continue
			}
			l4 := matchL4(r.L4, flow, dst, c)
			if l4 == nil {
				continue
			}
			switch {
			case r.Action == Allow:
				allows = append(allows, r)
				allowL4 = append(allowL4, l4)
			case r.Audit:
				denyAudit = append(denyAudit, r)
			default:
				denyEnf = append(denyEnf, r)
			}
		}
	}

	// Audit-mode policies must not change what is enforced: the side is
	// decided with the enforcing policies only, and, when that allows, again
	// as if every policy enforced; a deny of that second view is an audit.
	cands := sideCandidates{denyEnf, denyAudit, allows, allowL4, ddEnforce, ddAudit}
	enf := cands.decide(side, flow.Request, false)
	if enf.Verdict == VerdictDeny {
		return enf
	}
	all := cands.decide(side, flow.Request, true)
	switch {
	case all.Verdict == VerdictDeny:
		all.Verdict = VerdictAudit
		return all
	case enf.Reason == ReasonNotSelected:
		return all // allowed by an audit-mode rule: name it
	}
	return enf
}

// sideCandidates are what applies at one enforcement point for a flow.
type sideCandidates struct {
	denyEnf, denyAudit, allows []*Rule
	allowL4                    [][]L4
	ddEnforce, ddAudit         []Origin
}

// decide decides the side with the enforcing policies only, or with
// every policy treated as enforcing (withAudit).
func (c sideCandidates) decide(side Side, req *Request, withAudit bool) Side {
	denies, dd := c.denyEnf, c.ddEnforce
	var allows []*Rule
	var allowL4 [][]L4
	for i, r := range c.allows {
		if withAudit || !r.Audit {
			allows, allowL4 = append(allows, r), append(allowL4, c.allowL4[i])
		}
	}
	if withAudit {
		denies = append(slices.Clip(denies), c.denyAudit...)
		dd = append(slices.Clip(dd), c.ddAudit...)
	}
	switch {
	case len(denies) > 0:
		side.Verdict, side.Reason, side.Rule = VerdictDeny, ReasonDenied, lowest(denies)
	case len(allows) > 0:
		side.Verdict, side.Reason, side.Rule = VerdictAllow, ReasonAllowed, lowest(allows)
		if req != nil {
			l7Allow(&side, allows, allowL4, req)
		}
	case len(dd) > 0:
		side.Verdict, side.Reason, side.Policies = VerdictDeny, ReasonDefaultDeny, dd
	default:
		side.Verdict, side.Reason = VerdictAllow, ReasonNotSelected
	}
	return side
}

// l7Allow applies L7 rules to an L4-allowed request: an allow without L7
// rules on the port allows every request; otherwise the request must match
// one of the L7 rules of the matching allows, or is denied by the lowest
// of them.
func l7Allow(side *Side, allows []*Rule, l4 [][]L4, req *Request) {
	var matched, restricting []*Rule
	for i, r := range allows {
		ok := slices.ContainsFunc(l4[i], func(l L4) bool { return l.L7 == nil || MatchL7(l.L7, req) })
		if ok {
			matched = append(matched, r)
		} else {
			restricting = append(restricting, r)
		}
	}
	if len(matched) > 0 {
		side.Rule = lowest(matched)
		return
	}
	side.Verdict, side.Reason, side.Rule = VerdictDeny, ReasonL7Denied, lowest(restricting)
}

func lowest(rs []*Rule) *Rule {
	return slices.MinFunc(rs, func(a, b *Rule) int { return int(int64(a.ID) - int64(b.ID)) })
}

// peerMatches reports whether the remote end (labels as seen from the
// enforcing node, and address) is one of the rule's peers.
func peerMatches(p Peer, l Labels, addr netip.Addr, c *Cluster) bool {
	if p.Any {
		return true
	}
	for _, s := range p.Endpoints {
		if s.Matches(l) {
			return true
		}
	}
	for _, e := range p.Entities {
		if MatchesEntity(e, l) {
			return true
		}
	}
	// CIDR and FQDN peers reach outside the cluster only.
	if !l.Has(EntityWorld) {
		return false
	}
	for _, cr := range p.CIDRs {
		if cr.Contains(addr) {
			return true
		}
	}
	if len(p.FQDNs) > 0 {
		for _, name := range c.NamesOf(addr) {
			for _, f := range p.FQDNs {
				if f.Matches(name) {
					return true
				}
			}
		}
	}
	return false
}

// matchL4 returns the rule's L4 entries that match the flow, or nil when
// none does. A rule without L4 entries (every port) matches with one entry
// that has no L7 rules.
func matchL4(ls []L4, flow Flow, dst *Endpoint, c *Cluster) []L4 {
	if ls == nil {
		return []L4{{}}
	}
	var out []L4
	for _, l := range ls {
		if l.Proto != flow.Proto {
			continue
		}
		if l.Name != "" {
			if dst != nil && namedPortIs(dst, c, l.Name, flow.Proto, flow.Port) {
				out = append(out, l)
			}
			continue
		}
		if flow.Port >= l.Lo && flow.Port <= l.Hi {
			out = append(out, l)
		}
	}
	return out
}

// namedPortIs reports whether name means port/proto at the destination
// workload. Named ports resolve on the destination's identity: every
// workload with the same security labels counts, which is what the
// datapath can know when it sees only identities.
func namedPortIs(dst *Endpoint, c *Cluster, name string, proto Proto, port uint16) bool {
	want := c.WorkloadLabels(dst).String()
	for i := range c.Endpoints {
		e := &c.Endpoints[i]
		if e.Unmanaged || e != dst && c.WorkloadLabels(e).String() != want {
			continue
		}
		for _, np := range e.Ports {
			if np.Name == name && np.Port == port && np.Protocol == proto {
				return true
			}
		}
	}
	return false
}
