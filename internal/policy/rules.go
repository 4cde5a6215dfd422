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

package policy

import (
	"strconv"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/palisade-dev/palisade/api/v1alpha1"
)

// The rule lists of a rule set, in the order Rules returns them.
const (
	SectionIngress     = "ingress"
	SectionIngressDeny = "ingressDeny"
	SectionEgress      = "egress"
	SectionEgressDeny  = "egressDeny"
)

// Rule is one rule of a rule set in the shape every rule list shares, so
// that validate's checks, guard's facts and engine's normalization each
// handle ingress, ingressDeny, egress and egressDeny once.
type Rule struct {
	// Section is the rule list the rule is in, Index its place there.
	Section string
	Index   int
	// Path is the rule's field path, e.g. "spec.ingressDeny[2]".
	Path string
	// Egress: the rule is about traffic out of the subject; Deny: it denies
	// what it matches.
	Egress, Deny bool

	// The peers: nil when the field is omitted, which differs from an empty
	// list (HasPeers).
	Endpoints []metav1.LabelSelector
	CIDRs     []v1alpha1.CIDR
	CIDRSets  []v1alpha1.CIDRRule
	Entities  []v1alpha1.Entity
	FQDNs     []v1alpha1.FQDNSelector
	// Ports and ICMPs restrict what the rule matches; a deny rule's ports
	// have no L7 rules.
	Ports []v1alpha1.PortRule
	ICMPs []v1alpha1.ICMPRule
}

// HasPeers reports whether the rule names any peer; one that does not
// applies to every peer (on its ports), as in Cilium.
func (r *Rule) HasPeers() bool {
	return r.Endpoints != nil || r.CIDRs != nil || r.CIDRSets != nil || r.Entities != nil || r.FQDNs != nil
}

// Direction is "ingress" or "egress".
func (r *Rule) Direction() string {
	if r.Egress {
		return "egress"
	}
	return "ingress"
}

// PeerField is the API field name of a peer field in the rule's
// direction: PeerField("Endpoints") is "fromEndpoints" in an ingress rule
// and "toEndpoints" in an egress rule; likewise "CIDR", "CIDRSet" and
// "Entities".
func (r *Rule) PeerField(name string) string {
	if r.Egress {
		return "to" + name
	}
	return "from" + name
}

// Rules flattens a rule set into its rules: ingress, ingressDeny, egress
// and egressDeny, each in source order. The rules share the rule set's
// slices, which must not be modified through them.
func Rules(rs *v1alpha1.RuleSet) []Rule {
	out := make([]Rule, 0, len(rs.Ingress)+len(rs.IngressDeny)+len(rs.Egress)+len(rs.EgressDeny))
	mk := func(section string, i int, egress, deny bool) Rule {
		return Rule{Section: section, Index: i, Path: "spec." + section + "[" + strconv.Itoa(i) + "]", Egress: egress, Deny: deny}
	}
	for i, x := range rs.Ingress {
		r := mk(SectionIngress, i, false, false)
		r.Endpoints, r.CIDRs, r.CIDRSets, r.Entities, r.Ports, r.ICMPs = x.FromEndpoints, x.FromCIDR, x.FromCIDRSet, x.FromEntities, x.ToPorts, x.ICMPs
		out = append(out, r)
	}
	for i, x := range rs.IngressDeny {
		r := mk(SectionIngressDeny, i, false, true)
		r.Endpoints, r.CIDRs, r.CIDRSets, r.Entities, r.Ports, r.ICMPs = x.FromEndpoints, x.FromCIDR, x.FromCIDRSet, x.FromEntities, denyPorts(x.ToPorts), x.ICMPs
		out = append(out, r)
	}
	for i, x := range rs.Egress {
		r := mk(SectionEgress, i, true, false)
		r.Endpoints, r.CIDRs, r.CIDRSets, r.Entities, r.FQDNs, r.Ports, r.ICMPs = x.ToEndpoints, x.ToCIDR, x.ToCIDRSet, x.ToEntities, x.ToFQDNs, x.ToPorts, x.ICMPs
		out = append(out, r)
	}
	for i, x := range rs.EgressDeny {
		r := mk(SectionEgressDeny, i, true, true)
		r.Endpoints, r.CIDRs, r.CIDRSets, r.Entities, r.Ports, r.ICMPs = x.ToEndpoints, x.ToCIDR, x.ToCIDRSet, x.ToEntities, denyPorts(x.ToPorts), x.ICMPs
		out = append(out, r)
	}
	return out
}

// denyPorts gives a deny rule's ports the shape of an allow rule's; nil
// stays nil.
func denyPorts(in []v1alpha1.PortDenyRule) []v1alpha1.PortRule {
	if in == nil {
		return nil
	}
	out := make([]v1alpha1.PortRule, len(in))
	for i, p := range in {
		out[i] = v1alpha1.PortRule{Ports: p.Ports}
	}
	return out
}
