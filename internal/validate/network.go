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

package validate

import (
	"fmt"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/palisade-dev/palisade/api/v1alpha1"
)

// rule is the shape every network rule kind shares, so that each check is
// written once for ingress, ingressDeny, egress and egressDeny.
type rule struct {
	path string // e.g. spec.ingress[2]
	deny bool
	// field names in this direction: fromEndpoints or toEndpoints, ...
	endpointsField, cidrField, cidrSetField, entitiesField string

	endpoints []metav1.LabelSelector
	cidrs     []v1alpha1.CIDR
	cidrSets  []v1alpha1.CIDRRule
	entities  []v1alpha1.Entity
	fqdns     []v1alpha1.FQDNSelector
	ports     []v1alpha1.PortRule
	icmps     []v1alpha1.ICMPRule
}

func (r *rule) at(format string, args ...any) string {
	return r.path + "." + fmt.Sprintf(format, args...)
}

// hasPeers reports whether the rule names any peer; a rule without peers
// applies to every peer (on its ports).
func (r *rule) hasPeers() bool {
	return r.endpoints != nil || r.cidrs != nil || r.cidrSets != nil || r.entities != nil || r.fqdns != nil
}

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

// rules flattens a rule set into rules, in source order per direction.
func rules(rs *v1alpha1.RuleSet) (ingress, egress []*rule) {
	in := func(i int, name string, deny bool) *rule {
		return &rule{path: fmt.Sprintf("spec.%s[%d]", name, i), deny: deny,
			endpointsField: "fromEndpoints", cidrField: "fromCIDR", cidrSetField: "fromCIDRSet", entitiesField: "fromEntities"}
	}
	out := func(i int, name string, deny bool) *rule {
		return &rule{path: fmt.Sprintf("spec.%s[%d]", name, i), deny: deny,
			endpointsField: "toEndpoints", cidrField: "toCIDR", cidrSetField: "toCIDRSet", entitiesField: "toEntities"}
	}
	for i, x := range rs.Ingress {
		r := in(i, "ingress", false)
		r.endpoints, r.cidrs, r.cidrSets, r.entities, r.ports, r.icmps = x.FromEndpoints, x.FromCIDR, x.FromCIDRSet, x.FromEntities, x.ToPorts, x.ICMPs
		ingress = append(ingress, r)
	}
	for i, x := range rs.IngressDeny {
		r := in(i, "ingressDeny", true)
		r.endpoints, r.cidrs, r.cidrSets, r.entities, r.ports, r.icmps = x.FromEndpoints, x.FromCIDR, x.FromCIDRSet, x.FromEntities, denyPorts(x.ToPorts), x.ICMPs
		ingress = append(ingress, r)
	}
	for i, x := range rs.Egress {
		r := out(i, "egress", false)
		r.endpoints, r.cidrs, r.cidrSets, r.entities, r.fqdns, r.ports, r.icmps = x.ToEndpoints, x.ToCIDR, x.ToCIDRSet, x.ToEntities, x.ToFQDNs, x.ToPorts, x.ICMPs
		egress = append(egress, r)
	}
	for i, x := range rs.EgressDeny {
		r := out(i, "egressDeny", true)
		r.endpoints, r.cidrs, r.cidrSets, r.entities, r.ports, r.icmps = x.ToEndpoints, x.ToCIDR, x.ToCIDRSet, x.ToEntities, denyPorts(x.ToPorts), x.ICMPs
		egress = append(egress, r)
	}
	return ingress, egress
}

// checkNetwork runs the semantic checks of one network policy.
func (c *checker) checkNetwork(p *Policy) {
	rs, endpoints, nodes, _ := p.Network()
	if p.ClusterNetworkPolicy != nil && (endpoints == nil) == (nodes == nil) {
		c.add(p, "PAL105", "spec", "%s sets %s endpointSelector and nodeSelector", p.ID(), map[bool]string{true: "neither", false: "both"}[endpoints == nil])
	}
	if endpoints != nil {
		c.checkSelector(p, "spec.endpointSelector", *endpoints)
	}
	if nodes != nil {
		c.checkSelector(p, "spec.nodeSelector", *nodes)
	}
	if len(rs.Ingress)+len(rs.IngressDeny)+len(rs.Egress)+len(rs.EgressDeny) == 0 && !defaultDenyOn(rs.EnableDefaultDeny) {
		c.add(p, "PAL104", "spec", "%s has no ingress, ingressDeny, egress or egressDeny rules: it selects endpoints but changes nothing", p.ID())
	}
	ingress, egress := rules(rs)
	all := append(append([]*rule{}, ingress...), egress...)
	for _, r := range all {
		c.checkRule(p, r)
	}
	c.checkFQDNResolution(p, egress)
	c.checkShadowed(p, ingress)
	c.checkShadowed(p, egress)
}

func (c *checker) checkRule(p *Policy, r *rule) {
	empty := func(field string, n int, isNil bool) {
		if !isNil && n == 0 {
			c.add(p, "PAL106", r.at("%s", field), "%s is an empty list, so this rule matches no peer", field)
		}
	}
	empty(r.endpointsField, len(r.endpoints), r.endpoints == nil)
	empty(r.cidrField, len(r.cidrs), r.cidrs == nil)
	empty(r.cidrSetField, len(r.cidrSets), r.cidrSets == nil)
	empty(r.entitiesField, len(r.entities), r.entities == nil)

	for i, s := range r.endpoints {
		c.checkSelector(p, r.at("%s[%d]", r.endpointsField, i), s)
	}
	for i, cidr := range r.cidrs {
		c.checkCIDR(p, r.at("%s[%d]", r.cidrField, i), string(cidr))
	}
	for i, set := range r.cidrSets {
		c.checkCIDRSet(p, r.at("%s[%d]", r.cidrSetField, i), set)
	}
	c.checkEntities(p, r)
	for i, f := range r.fqdns {
		path := r.at("toFQDNs[%d]", i)
		c.checkNameOrPattern(p, path, string(f.MatchName), string(f.MatchPattern))
	}
	if len(r.ports) > 0 && len(r.icmps) > 0 {
		c.add(p, "PAL154", r.at("icmps"), "a rule with toPorts cannot also have icmps")
	}
	for i, pr := range r.ports {
		c.checkPortRule(p, r.at("toPorts[%d]", i), pr)
	}
	for i, ic := range r.icmps {
		for j, f := range ic.Fields {
			c.checkICMP(p, r.at("icmps[%d].fields[%d]", i, j), f)
		}
	}
}

func (c *checker) checkEntities(p *Policy, r *rule) {
	hasAll := false
	for _, e := range r.entities {
		hasAll = hasAll || e == v1alpha1.EntityAll
	}
	if hasAll && len(r.entities) > 1 {
		c.add(p, "PAL107", r.at("%s", r.entitiesField), "%s lists \"all\" and %d other entities", r.entitiesField, len(r.entities)-1)
	}
}

// checkFQDNResolution warns about toFQDNs when the policy lets the endpoint
// resolve no name: the names never map to addresses, so the rule allows
// nothing. A DNS rule in another policy selecting the same endpoints would
// do, which is why this is a warning.
func (c *checker) checkFQDNResolution(p *Policy, egress []*rule) {
	hasDNS := false
	for _, r := range egress {
		for _, pr := range r.ports {
			if pr.Rules != nil && len(pr.Rules.DNS) > 0 {
				hasDNS = true
			}
		}
	}
	if hasDNS {
		return
	}
	for _, r := range egress {
		if len(r.fqdns) > 0 {
			c.add(p, "PAL303", r.at("toFQDNs"), "toFQDNs needs the endpoint to resolve the names through Palisade's DNS rules, and %s has no egress rule with rules.dns", p.ID())
		}
	}
}

// defaultDenyOn reports whether a policy explicitly turns default deny on
// in a direction: with no rules, that is a deny-all, not a no-op.
func defaultDenyOn(d *v1alpha1.DefaultDeny) bool {
	return d != nil && ((d.Ingress != nil && *d.Ingress) || (d.Egress != nil && *d.Egress))
}
