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
	"hash/fnv"
	"net/netip"
	"slices"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/palisade-dev/palisade/api/v1alpha1"
	"github.com/palisade-dev/palisade/internal/policy"
)

// Direction is the direction of traffic relative to the subject endpoint.
type Direction uint8

// The two directions.
const (
	Ingress Direction = iota
	Egress
)

func (d Direction) String() string {
	if d == Egress {
		return "egress"
	}
	return "ingress"
}

// Action is what a rule does with the traffic it matches.
type Action uint8

// Rule actions.
const (
	Allow Action = iota
	Deny
)

func (a Action) String() string {
	if a == Deny {
		return "deny"
	}
	return "allow"
}

// Proto is an IP protocol number.
type Proto uint8

// The protocols policies name.
const (
	ProtoAny    Proto = 0
	ProtoICMP   Proto = 1
	ProtoTCP    Proto = 6
	ProtoUDP    Proto = 17
	ProtoICMPv6 Proto = 58
	ProtoSCTP   Proto = 132
)

var protoNames = map[Proto]string{ProtoAny: "ANY", ProtoICMP: "ICMP", ProtoTCP: "TCP", ProtoUDP: "UDP", ProtoICMPv6: "ICMPv6", ProtoSCTP: "SCTP"}

func (p Proto) String() string {
	if s, ok := protoNames[p]; ok {
		return s
	}
	return fmt.Sprintf("proto-%d", uint8(p))
}

// ParseProto parses a protocol name as flows and the CLI spell it.
func ParseProto(s string) (Proto, error) {
	for p, n := range protoNames {
		if strings.EqualFold(n, s) {
			return p, nil
		}
	}
	return 0, fmt.Errorf("unknown protocol %q (want TCP, UDP, SCTP, ICMP or ICMPv6)", s)
}

// RuleID identifies a rule. It is a hash of the rule's place (kind,
// namespace, policy name, section, index), so it stays the same while the
// policy keeps its name and the rule its place, and the datapath can carry
// it in 32 bits. 0 means "no rule".
type RuleID uint32

// Origin is where a rule or policy comes from.
type Origin struct {
	Kind      string `json:"kind"`
	Namespace string `json:"namespace,omitempty"`
	Name      string `json:"name"`
	// Path is the rule's place in the object, e.g. "spec.ingress[1]".
	Path     string `json:"path,omitempty"`
	File     string `json:"file,omitempty"`
	Line     int    `json:"line,omitempty"`
	Column   int    `json:"column,omitempty"`
	Revision string `json:"revision,omitempty"`
}

// Policy names the policy of an origin, "Kind ns/name".
func (o Origin) Policy() string {
	if o.Namespace == "" {
		return o.Kind + " " + o.Name
	}
	return o.Kind + " " + o.Namespace + "/" + o.Name
}

// Position is "file:line:col", or "" when unknown.
func (o Origin) Position() string {
	if o.File == "" {
		return ""
	}
	return fmt.Sprintf("%s:%d:%d", o.File, o.Line, o.Column)
}

// Subject is what a policy applies to: workloads, or nodes (host firewall).
// Exactly one is set.
type Subject struct {
	Endpoints *Selector
	Nodes     *Selector
}

// CIDRRule is a prefix minus the prefixes in Except.
type CIDRRule struct {
	Prefix netip.Prefix
	Except []netip.Prefix
}

// Contains reports whether addr is in the prefix and in no exception.
func (c CIDRRule) Contains(addr netip.Addr) bool {
	if !c.Prefix.Contains(addr) {
		return false
	}
	for _, e := range c.Except {
		if e.Contains(addr) {
			return false
		}
	}
	return true
}

// FQDN selects names: exactly one of Name and Pattern is set.
type FQDN struct {
	Name    string `json:"name,omitempty"`
	Pattern string `json:"pattern,omitempty"`
}

// Matches reports whether the selector selects the DNS name.
func (f FQDN) Matches(name string) bool {
	name = strings.TrimSuffix(strings.ToLower(name), ".")
	if f.Name != "" {
		return strings.TrimSuffix(strings.ToLower(f.Name), ".") == name
	}
	return matchDNSPattern(strings.TrimSuffix(strings.ToLower(f.Pattern), "."), name)
}

// matchDNSPattern matches a pattern where "*" alone matches every name and
// "*" inside a label matches any run of characters within that label.
func matchDNSPattern(pattern, name string) bool {
	if pattern == "*" {
		return true
	}
	pl, nl := strings.Split(pattern, "."), strings.Split(name, ".")
	if len(pl) != len(nl) {
		return false
	}
	for i := range pl {
		if !matchGlob(pl[i], nl[i]) {
			return false
		}
	}
	return true
}

// matchGlob matches s against p where '*' matches any run of characters.
func matchGlob(p, s string) bool {
	star, mark := -1, 0
	i, j := 0, 0
	for j < len(s) {
		switch {
		case i < len(p) && p[i] == '*':
			star, mark = i, j
			i++
		case i < len(p) && p[i] == s[j]:
			i++
			j++
		case star >= 0:
			i, mark = star+1, mark+1
			j = mark
		default:
			return false
		}
	}
	for i < len(p) && p[i] == '*' {
		i++
	}
	return i == len(p)
}

// Peer is the other end of the traffic a rule matches: the union of its
// fields. Any means the rule named no peer and so matches every peer.
type Peer struct {
	Any       bool
	Endpoints []Selector
	Entities  []Entity
	CIDRs     []CIDRRule
	FQDNs     []FQDN
}

// L4 is a protocol and a port range (inclusive), or an ICMP type (Lo = Hi
// = type). A named port has Name set and is resolved against the
// destination workload's ports.
type L4 struct {
	Proto  Proto
	Lo, Hi uint16
	Name   string
	// L7 restricts the requests allowed on this port; nil allows all.
	L7 *v1alpha1.L7Rules
}

// Rule is one normalized rule.
type Rule struct {
	ID        RuleID
	Origin    Origin
	Direction Direction
	Action    Action
	// Audit is set when the rule's policy is in audit mode.
	Audit   bool
	Subject Subject
	Peer    Peer
	// L4 lists what the rule matches; nil means every protocol and port.
	L4 []L4
}

// Policy is a normalized network policy.
type Policy struct {
	Origin  Origin
	Subject Subject
	Audit   bool
	// DefaultDeny says whether the policy makes its subjects default-deny,
	// per Direction.
	DefaultDeny [2]bool
	Rules       []*Rule
}

// IR is the normalized form of a set of network policies, sorted by kind,
// namespace and name, so that it does not depend on input order.
type IR struct {
	Policies []*Policy
	rules    map[RuleID]*Rule
}

// Rule returns the rule with id.
func (ir *IR) Rule(id RuleID) (*Rule, bool) {
	r, ok := ir.rules[id]
	return r, ok
}

// Rules returns every rule, in policy order.
func (ir *IR) Rules() []*Rule {
	var out []*Rule
	for _, p := range ir.Policies {
		out = append(out, p.Rules...)
	}
	return out
}

// Build normalizes the network policies among policies; other kinds are
// skipped. revision is recorded in every origin. The policies are expected
// to have passed validation; what still cannot be normalized is an error
// naming the policy and position. The input carries no CUE: policies
// loaded from a repository and policies read back from the API server
// (render.Policy) build alike.
func Build(policies []*policy.Policy, revision string) (*IR, error) {
	ir := &IR{rules: map[RuleID]*Rule{}}
	for _, p := range policies {
		np, err := buildPolicy(p, revision)
		if err != nil {
			return nil, fmt.Errorf("%s: %s: %w", p.Pos, p.ID(), err)
		}
		if np != nil {
			ir.Policies = append(ir.Policies, np)
		}
	}
	slices.SortFunc(ir.Policies, func(a, b *Policy) int {
		return cmp.Or(cmp.Compare(a.Origin.Kind, b.Origin.Kind), cmp.Compare(a.Origin.Namespace, b.Origin.Namespace), cmp.Compare(a.Origin.Name, b.Origin.Name))
	})
	// IDs are assigned in sorted order so that a collision resolves the
	// same way whatever the input order.
	for _, p := range ir.Policies {
		for _, r := range p.Rules {
			r.ID = ruleHash(r.Origin)
			for r.ID == 0 || ir.rules[r.ID] != nil {
				r.ID++
			}
			ir.rules[r.ID] = r
		}
	}
	return ir, nil
}

func ruleHash(o Origin) RuleID {
	h := fnv.New32a()
	fmt.Fprintf(h, "%s\x00%s\x00%s\x00%s", o.Kind, o.Namespace, o.Name, o.Path)
	return RuleID(h.Sum32())
}

func buildPolicy(p *policy.Policy, revision string) (*Policy, error) {
	rs, eps, nodes, ok := p.Network()
	if !ok {
		return nil, nil
	}
	ns := p.Namespace
	out := &Policy{
		Origin: Origin{Kind: p.Kind, Namespace: ns, Name: p.Name, File: p.Pos.File, Line: p.Pos.Line, Column: p.Pos.Column, Revision: revision},
		Audit:  rs.Mode == v1alpha1.EnforcementModeAudit,
	}
	switch {
	case nodes != nil:
		s, err := nodeSelector(nodes)
		if err != nil {
			return nil, fmt.Errorf("spec.nodeSelector: %w", err)
		}
		out.Subject.Nodes = &s
	default:
		s, err := subjectSelector(eps, ns)
		if err != nil {
			return nil, fmt.Errorf("spec.endpointSelector: %w", err)
		}
		out.Subject.Endpoints = &s
	}
	var has [2]bool
	for _, pr := range policy.Rules(rs) {
		has[direction(&pr)] = true
		r, err := buildRule(p, out, &pr, ns)
		if err != nil {
			return nil, err
		}
		if r != nil {
			out.Rules = append(out.Rules, r)
		}
	}
	out.DefaultDeny = has
	if dd := rs.EnableDefaultDeny; dd != nil {
		if dd.Ingress != nil {
			out.DefaultDeny[Ingress] = *dd.Ingress
		}
		if dd.Egress != nil {
			out.DefaultDeny[Egress] = *dd.Egress
		}
	}
	return out, nil
}

// subjectSelector canonicalizes a policy's endpointSelector. A namespaced
// policy selects pods of its own namespace whatever its selector says, as
// in Cilium: the namespace requirement is added even when the selector
// names the namespace label, so a policy of one namespace can never
// isolate the pods of another.
func subjectSelector(s *metav1.LabelSelector, ns string) (Selector, error) {
	out, err := NewSelector(s, "")
	if err != nil || ns == "" {
		return out, err
	}
	out.Requirements = append(out.Requirements, Requirement{Key: LabelNamespace, Op: OpIn, Values: []string{ns}})
	slices.SortFunc(out.Requirements, compareRequirement)
	return out, nil
}

// nodeSelector canonicalizes a host firewall's node selector: node labels
// are plain Kubernetes labels, with no namespace.
func nodeSelector(s *metav1.LabelSelector) (Selector, error) {
	return NewSelector(s, "")
}

// direction is the Direction of a flattened rule.
func direction(r *policy.Rule) Direction {
	if r.Egress {
		return Egress
	}
	return Ingress
}

func buildRule(p *policy.Policy, pol *Policy, pr *policy.Rule, ns string) (*Rule, error) {
	path := pr.Path
	pos := p.PosOf(path)
	r := &Rule{
		Origin:    Origin{Kind: pol.Origin.Kind, Namespace: ns, Name: pol.Origin.Name, Path: path, File: pos.File, Line: pos.Line, Column: pos.Column, Revision: pol.Origin.Revision},
		Direction: direction(pr),
		Action:    Allow,
		Audit:     pol.Audit,
		Subject:   pol.Subject,
	}
	if pr.Deny {
		r.Action = Deny
	}
	eps, cidrs, sets, ents, fqdns := pr.Endpoints, pr.CIDRs, pr.CIDRSets, pr.Entities, pr.FQDNs
	named := pr.HasPeers()
	for j := range eps {
		s, err := NewSelector(&eps[j], ns)
		if err != nil {
			return nil, fmt.Errorf("%s.endpoints[%d]: %w", path, j, err)
		}
		r.Peer.Endpoints = append(r.Peer.Endpoints, s)
	}
	for _, c := range cidrs {
		pfx, err := parsePrefix(string(c))
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		r.Peer.CIDRs = append(r.Peer.CIDRs, CIDRRule{Prefix: pfx})
	}
	for _, c := range sets {
		pfx, err := parsePrefix(string(c.CIDR))
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		cr := CIDRRule{Prefix: pfx}
		for _, e := range c.Except {
			ep, err := parsePrefix(string(e))
			if err != nil {
				return nil, fmt.Errorf("%s: %w", path, err)
			}
			cr.Except = append(cr.Except, ep)
		}
		r.Peer.CIDRs = append(r.Peer.CIDRs, cr)
	}
	for _, e := range ents {
		r.Peer.Entities = append(r.Peer.Entities, Entity(e))
	}
	for _, f := range fqdns {
		r.Peer.FQDNs = append(r.Peer.FQDNs, FQDN{Name: string(f.MatchName), Pattern: string(f.MatchPattern)})
	}
	// An empty toPorts or icmps list says nothing about ports, as in
	// Cilium and Kubernetes: the rule covers every port.
	ports, icmps := pr.Ports, pr.ICMPs
	if len(ports) == 0 && len(icmps) == 0 {
		if !named {
			// Cilium's "ingress: [{}]": isolates, allows nothing.
			return nil, nil
		}
	} else {
		l4, err := buildL4(ports, icmps)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		r.L4 = l4
	}
	r.Peer.Any = !named
	return r, nil
}

func buildL4(ports []v1alpha1.PortRule, icmps []v1alpha1.ICMPRule) ([]L4, error) {
	var out []L4
	for _, pr := range ports {
		if len(pr.Ports) == 0 {
			for _, proto := range []Proto{ProtoTCP, ProtoUDP, ProtoSCTP} {
				out = append(out, L4{Proto: proto, Lo: 0, Hi: 65535, L7: pr.Rules})
			}
			continue
		}
		for _, pp := range pr.Ports {
			protos := []Proto{ProtoTCP, ProtoUDP, ProtoSCTP}
			switch pp.Protocol {
			case v1alpha1.ProtocolTCP:
				protos = []Proto{ProtoTCP}
			case v1alpha1.ProtocolUDP:
				protos = []Proto{ProtoUDP}
			case v1alpha1.ProtocolSCTP:
				protos = []Proto{ProtoSCTP}
			}
			l := L4{L7: pr.Rules}
			if pp.Port.Type == intstr.String {
				if n, err := parsePortNumber(pp.Port.StrVal); err == nil {
					l.Lo = n
				} else {
					l.Name = pp.Port.StrVal
				}
			} else {
				if pp.Port.IntVal < 0 || pp.Port.IntVal > 65535 {
					return nil, fmt.Errorf("port %d out of range", pp.Port.IntVal)
				}
				l.Lo = uint16(pp.Port.IntVal)
			}
			l.Hi = l.Lo
			switch {
			case l.Name != "":
			case pp.EndPort != nil:
				if *pp.EndPort < int32(l.Lo) || *pp.EndPort > 65535 {
					return nil, fmt.Errorf("port range %d-%d is invalid", l.Lo, *pp.EndPort)
				}
				l.Hi = uint16(*pp.EndPort)
			case l.Lo == 0:
				l.Hi = 65535 // port 0: every port
			}
			for _, proto := range protos {
				l.Proto = proto
				out = append(out, l)
			}
		}
	}
	for _, ir := range icmps {
		for _, f := range ir.Fields {
			fam, typ, ok := policy.ICMPType(f)
			if !ok {
				return nil, fmt.Errorf("ICMP type %s is not defined for %s", f.Type.String(), fam)
			}
			proto := ProtoICMP
			if fam == v1alpha1.ICMPFamilyIPv6 {
				proto = ProtoICMPv6
			}
			out = append(out, L4{Proto: proto, Lo: uint16(typ), Hi: uint16(typ)})
		}
	}
	return out, nil
}

func parsePortNumber(s string) (uint16, error) {
	var n int
	if _, err := fmt.Sscanf(s, "%d", &n); err != nil || fmt.Sprint(n) != s || n < 0 || n > 65535 {
		return 0, fmt.Errorf("not a port number: %q", s)
	}
	return uint16(n), nil
}

// parsePrefix parses a CIDR, or a bare address as a host prefix.
func parsePrefix(s string) (netip.Prefix, error) {
	if p, err := netip.ParsePrefix(s); err == nil {
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("invalid CIDR %q", s)
	}
	return netip.PrefixFrom(a, a.BitLen()), nil
}
