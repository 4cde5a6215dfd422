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

	"github.com/palisade-dev/palisade/api/v1alpha1"
	"github.com/palisade-dev/palisade/internal/policy"
)

// rule is a flattened rule (policy.Rules), the shape every check of a rule
// is written against once for ingress, ingressDeny, egress and egressDeny.
type rule = policy.Rule

// at is the field path of a part of rule r.
func at(r *rule, format string, args ...any) string {
	return r.Path + "." + fmt.Sprintf(format, args...)
}

// rules flattens a rule set into rules, in source order per direction.
func rules(rs *v1alpha1.RuleSet) (ingress, egress []*rule) {
	all := policy.Rules(rs)
	for i := range all {
		if all[i].Egress {
			egress = append(egress, &all[i])
		} else {
			ingress = append(ingress, &all[i])
		}
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
			c.add(p, "PAL106", at(r, "%s", field), "%s is an empty list, so this rule matches no peer", field)
		}
	}
	empty(r.PeerField("Endpoints"), len(r.Endpoints), r.Endpoints == nil)
	empty(r.PeerField("CIDR"), len(r.CIDRs), r.CIDRs == nil)
	empty(r.PeerField("CIDRSet"), len(r.CIDRSets), r.CIDRSets == nil)
	empty(r.PeerField("Entities"), len(r.Entities), r.Entities == nil)

	for i, s := range r.Endpoints {
		c.checkSelector(p, at(r, "%s[%d]", r.PeerField("Endpoints"), i), s)
	}
	for i, cidr := range r.CIDRs {
		c.checkCIDR(p, at(r, "%s[%d]", r.PeerField("CIDR"), i), string(cidr))
	}
	for i, set := range r.CIDRSets {
		c.checkCIDRSet(p, at(r, "%s[%d]", r.PeerField("CIDRSet"), i), set)
	}
	c.checkEntities(p, r)
	for i, f := range r.FQDNs {
		path := at(r, "toFQDNs[%d]", i)
		c.checkNameOrPattern(p, path, string(f.MatchName), string(f.MatchPattern))
	}
	if len(r.Ports) > 0 && len(r.ICMPs) > 0 {
		c.add(p, "PAL154", at(r, "icmps"), "a rule with toPorts cannot also have icmps")
	}
	for i, pr := range r.Ports {
		c.checkPortRule(p, at(r, "toPorts[%d]", i), pr)
	}
	for i, ic := range r.ICMPs {
		for j, f := range ic.Fields {
			c.checkICMP(p, at(r, "icmps[%d].fields[%d]", i, j), f)
		}
	}
}

func (c *checker) checkEntities(p *Policy, r *rule) {
	hasAll := false
	for _, e := range r.Entities {
		hasAll = hasAll || e == v1alpha1.EntityAll
	}
	if hasAll && len(r.Entities) > 1 {
		c.add(p, "PAL107", at(r, "%s", r.PeerField("Entities")), "%s lists \"all\" and %d other entities", r.PeerField("Entities"), len(r.Entities)-1)
	}
}

// checkFQDNResolution warns about toFQDNs when the policy lets the endpoint
// resolve no name: the names never map to addresses, so the rule allows
// nothing. A DNS rule in another policy selecting the same endpoints would
// do, which is why this is a warning.
func (c *checker) checkFQDNResolution(p *Policy, egress []*rule) {
	hasDNS := false
	for _, r := range egress {
		for _, pr := range r.Ports {
			if pr.Rules != nil && len(pr.Rules.DNS) > 0 {
				hasDNS = true
			}
		}
	}
	if hasDNS {
		return
	}
	for _, r := range egress {
		if len(r.FQDNs) > 0 {
			c.add(p, "PAL303", at(r, "toFQDNs"), "toFQDNs needs the endpoint to resolve the names through Palisade's DNS rules, and %s has no egress rule with rules.dns", p.ID())
		}
	}
}

// defaultDenyOn reports whether a policy explicitly turns default deny on
// in a direction: with no rules, that is a deny-all, not a no-op.
func defaultDenyOn(d *v1alpha1.DefaultDeny) bool {
	return d != nil && ((d.Ingress != nil && *d.Ingress) || (d.Egress != nil && *d.Egress))
}
