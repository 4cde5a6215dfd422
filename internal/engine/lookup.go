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
)

// LookupSide decides one enforcement point from map contents only, the way
// the datapath does (see MapState). local is the enforcing endpoint's
// address, remote the peer's. It returns the verdict, the reason and the
// deciding rule (0 for default deny and not-selected).
func (m *MapState) LookupSide(dir Direction, local, remote netip.Addr, proto Proto, port uint16, req *Request) (Verdict, Reason, RuleID) {
	ep, ok := m.Endpoints[local]
	if !ok {
		return VerdictAllow, ReasonNotEnforced, 0
	}
	peer := m.Identity(remote)
	probes := []Identity{peer, 0}
	if WorldPeer(peer) {
		probes = append(probes, IdentityAllWorld)
		if dir == Egress {
			probes = append(probes, m.fqdnProbes(remote)...)
		}
	}
	entries := make([]PolicyEntry, 0, len(probes))
	for _, id := range probes {
		if e, ok := m.lookupPolicy(PolicyKey{PolicyID: ep.PolicyID, Direction: dir, Identity: id, Proto: proto, Port: port}); ok {
			entries = append(entries, e)
		}
	}
	v, r, rule := m.decideView(entries, ep.Flags, dir, req, false)
	if v == VerdictDeny {
		return v, r, rule
	}
	av, ar, arule := m.decideView(entries, ep.Flags, dir, req, true)
	switch {
	case av == VerdictDeny:
		return VerdictAudit, ar, arule
	case r == ReasonNotSelected:
		return av, ar, arule // allowed by an audit-mode rule
	}
	return v, r, rule
}

// decideView decides one side from the entries found, with the enforcing
// flags only or with the audit flags too (withAudit); see MapState.
func (m *MapState) decideView(entries []PolicyEntry, epFlags EndpointFlags, dir Direction, req *Request, withAudit bool) (Verdict, Reason, RuleID) {
	allowMask, denyMask := FlagAllow, FlagDeny
	ddMask := IngressDefaultDeny
	if dir == Egress {
		ddMask = EgressDefaultDeny
	}
	if withAudit {
		allowMask, denyMask = allowMask|FlagAuditAllow, denyMask|FlagAuditDeny
		ddMask |= ddMask << 1 // the DefaultAudit flag follows DefaultDeny
	}
	var flags PolicyFlags
	var allow, deny, openRule RuleID
	var l7 []L7List
	open := false // an allow entry without an L7 list: every request passes
	for _, e := range entries {
		flags |= e.Flags
		if e.Flags&FlagDeny != 0 {
			deny = minRule(deny, e.DenyRule)
		}
		if withAudit && e.Flags&FlagAuditDeny != 0 {
			deny = minRule(deny, e.AuditRule)
		}
		if e.Flags&allowMask == 0 {
			continue
		}
		var rule RuleID
		if e.Flags&FlagAllow != 0 {
			rule = minRule(rule, e.AllowRule)
		}
		if withAudit && e.Flags&FlagAuditAllow != 0 {
			rule = minRule(rule, e.AuditAllowRule)
		}
		allow = minRule(allow, rule)
		if e.L7 == 0 {
			// Only this entry's rules allow every request; an L7-restricted
			// allow of the other entry must not be named for a request it
			// refuses.
			open, openRule = true, minRule(openRule, rule)
		} else {
			l7 = append(l7, m.L7[e.L7])
		}
	}
	switch {
	case flags&denyMask != 0:
		return VerdictDeny, ReasonDenied, deny
	case flags&allowMask != 0:
		if req == nil {
			return VerdictAllow, ReasonAllowed, allow
		}
		return decideL7(l7, open, openRule, req, withAudit)
	case epFlags&ddMask != 0:
		return VerdictDeny, ReasonDefaultDeny, 0
	}
	return VerdictAllow, ReasonNotSelected, 0
}

// decideL7 decides a request against the L7 lists of the allow entries
// found; open says an allow entry without a list was found (its rules
// allow every request; the lowest of them is allow). Audit-mode
// rules of the lists count only withAudit.
func decideL7(lists []L7List, open bool, allow RuleID, req *Request, withAudit bool) (Verdict, Reason, RuleID) {
	matched := RuleID(0)
	if open {
		matched = allow
	}
	var restricting RuleID
	for _, list := range lists {
		for _, a := range list {
			if a.Audit && !withAudit {
				continue
			}
			if a.Rules == nil || MatchL7(a.Rules, req) {
				matched, open = minRule(matched, a.Rule), true
				continue
			}
			restricting = minRule(restricting, a.Rule)
		}
	}
	if open {
		return VerdictAllow, ReasonAllowed, matched
	}
	return VerdictDeny, ReasonL7Denied, restricting
}

func minRule(a, b RuleID) RuleID {
	if a == 0 || b != 0 && b < a {
		return b
	}
	return a
}

// Identity returns the identity of addr: the IPCache entry with the
// longest prefix containing it, world when none does.
func (m *MapState) Identity(addr netip.Addr) Identity {
	for bits := addr.BitLen(); bits >= 0; bits-- {
		p, _ := addr.Prefix(bits)
		if id, ok := m.IPCache[p]; ok {
			return id
		}
	}
	return IdentityWorld
}

// lookupPolicy finds the entry with the longest prefix matching k's
// proto and port.
func (m *MapState) lookupPolicy(k PolicyKey) (PolicyEntry, bool) {
	full := uint32(k.Proto)<<16 | uint32(k.Port)
	for bits := 24; bits >= 0; bits-- {
		v := full &^ (1<<(24-bits) - 1)
		k.Proto, k.Port, k.PrefixLen = Proto(v>>16), uint16(v), uint8(bits)
		if e, ok := m.Policy[k]; ok {
			return e, true
		}
	}
	return PolicyEntry{}, false
}

// Lookup decides a flow from map contents: the source's egress and the
// destination's ingress, each where the state has the endpoint, combined
// as Evaluate combines sides. Replies take the verdict of the original
// direction, which the datapath gets from conntrack.
func (m *MapState) Lookup(flow Flow) (egress, ingress Side, v Verdict) {
	if flow.Reply {
		flow.Src, flow.Dst, flow.Reply, flow.Request = flow.Dst, flow.Src, false, nil
	}
	ev, er, erule := m.LookupSide(Egress, flow.Src, flow.Dst, flow.Proto, flow.Port, flow.Request)
	iv, ir, irule := m.LookupSide(Ingress, flow.Dst, flow.Src, flow.Proto, flow.Port, flow.Request)
	egress = Side{Direction: Egress, Verdict: ev, Reason: er, Rule: &Rule{ID: erule}}
	ingress = Side{Direction: Ingress, Verdict: iv, Reason: ir, Rule: &Rule{ID: irule}}
	switch {
	case ev == VerdictDeny || iv == VerdictDeny:
		v = VerdictDeny
	case ev == VerdictAudit || iv == VerdictAudit:
		v = VerdictAudit
	}
	return egress, ingress, v
}
