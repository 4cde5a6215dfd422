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
	"net/netip"

	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/palisade-dev/palisade/api/v1alpha1"
	"github.com/palisade-dev/palisade/internal/policy"
)

// netRule is a flattened rule (policy.Rules), so that each fact is computed
// once for ingress, ingressDeny, egress and egressDeny.
type netRule struct {
	policy.Rule
	direction string // ingress or egress

	// peerList and spanList cache peers() and spans(): facts ask for them
	// several times, and a rule's selectors are normalized once.
	peerList []peer
	spanList []portSpan
}

// netRules flattens a rule set, in source order.
func netRules(rs *v1alpha1.RuleSet) []*netRule {
	flat := policy.Rules(rs)
	rules := make([]netRule, len(flat)) // one allocation for all
	out := make([]*netRule, len(flat))
	for i, r := range flat {
		rules[i] = netRule{Rule: r, direction: r.Direction()}
		out[i] = &rules[i]
	}
	return out
}

// peer is a rule's peer with what coverage needs.
type peer struct {
	Peer
	world  bool
	reqs   []Requirement // endpoints
	prefix netip.Prefix  // cidr; invalid when it does not parse
}

// privateRanges are addresses that are not "the world": private, shared
// (CGNAT), loopback and link-local ranges. A CIDR inside one of them reaches
// the cluster's own networks; anything else reaches the internet.
var privateRanges = func() []netip.Prefix {
	var out []netip.Prefix
	for _, s := range []string{"10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16", "fc00::/7", "fe80::/10", "::1/128"} {
		out = append(out, netip.MustParsePrefix(s))
	}
	return out
}()

func cidrPeer(s string) peer {
	p := peer{Peer: Peer{Kind: "cidr", Value: s}, world: true}
	pfx, err := netip.ParsePrefix(s)
	if err != nil {
		return p // the validator rejects it; count it as the world meanwhile
	}
	p.prefix = pfx.Masked()
	for _, r := range privateRanges {
		if r.Bits() <= p.prefix.Bits() && r.Contains(p.prefix.Addr()) {
			p.world = false
		}
	}
	return p
}

// peers lists the peers of a rule.
func (r *netRule) peers() []peer {
	if r.peerList == nil {
		r.peerList = r.listPeers()
	}
	return r.peerList
}

func (r *netRule) listPeers() []peer {
	if !r.HasPeers() {
		return []peer{{Peer: Peer{Kind: "all"}, world: true}}
	}
	var out []peer
	for i := range r.Endpoints {
		reqs := requirements(&r.Endpoints[i])
		out = append(out, peer{Peer: Peer{Kind: "endpoints", Value: selectorKey(reqs)}, reqs: reqs})
	}
	for _, c := range r.CIDRs {
		out = append(out, cidrPeer(string(c)))
	}
	for _, c := range r.CIDRSets {
		out = append(out, cidrPeer(string(c.CIDR)))
	}
	for _, e := range r.Entities {
		switch e {
		case v1alpha1.EntityAll:
			out = append(out, peer{Peer: Peer{Kind: "all"}, world: true})
		default:
			out = append(out, peer{Peer: Peer{Kind: "entity", Value: string(e)}, world: e == v1alpha1.EntityWorld})
		}
	}
	for _, f := range r.FQDNs {
		v := string(f.MatchName)
		if v == "" {
			v = string(f.MatchPattern)
		}
		out = append(out, peer{Peer: Peer{Kind: "fqdn", Value: v}, world: true})
	}
	return out
}

// portSpan is a protocol and port range, or a named port.
type portSpan struct {
	proto  string
	lo, hi int
	named  string
	// l3: the rule has neither toPorts nor icmps, so it allows every
	// protocol, ICMP included.
	l3 bool
}

// spans lists the protocol/port spans of a rule: every port when it has
// neither toPorts nor icmps.
func (r *netRule) spans() []portSpan {
	if r.spanList == nil {
		r.spanList = r.listSpans()
	}
	return r.spanList
}

func (r *netRule) listSpans() []portSpan {
	if len(r.Ports) == 0 && len(r.ICMPs) == 0 {
		return []portSpan{{proto: "ANY", lo: 0, hi: 65535, l3: true}}
	}
	var out []portSpan
	for _, pr := range r.Ports {
		if len(pr.Ports) == 0 {
			out = append(out, portSpan{proto: "ANY", lo: 0, hi: 65535})
		}
		for _, p := range pr.Ports {
			out = append(out, span(p))
		}
	}
	for _, ic := range r.ICMPs {
		for _, f := range ic.Fields {
			s := portSpan{proto: "ICMP"}
			if f.Family == v1alpha1.ICMPFamilyIPv6 {
				s.proto = "ICMPv6"
			}
			if f.Type.Type == intstr.String {
				s.named = f.Type.StrVal
			} else {
				s.lo, s.hi = int(f.Type.IntVal), int(f.Type.IntVal)
			}
			out = append(out, s)
		}
	}
	return out
}

func span(p v1alpha1.PortProtocol) portSpan {
	s := portSpan{proto: string(p.Protocol)}
	if s.proto == "" {
		s.proto = "ANY"
	}
	switch {
	case p.Port.Type == intstr.String:
		s.named = p.Port.StrVal
	case p.Port.IntVal == 0:
		s.lo, s.hi = 0, 65535
	default:
		s.lo, s.hi = int(p.Port.IntVal), int(p.Port.IntVal)
		if p.EndPort != nil && int(*p.EndPort) > s.hi {
			s.hi = int(*p.EndPort)
		}
	}
	return s
}

func (s portSpan) fact(dir string, p peer, path string) PortFact {
	return PortFact{Direction: dir, Peer: p.Peer, World: p.world, Protocol: s.proto, Port: s.lo, EndPort: s.hi, NamedPort: s.named, Path: path}
}
