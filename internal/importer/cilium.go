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

package importer

import (
	"fmt"
	"net/netip"

	"go.yaml.in/yaml/v3"
)

// specOrder is the order of a network policy's spec fields in the output:
// the schema's, with the selector first because people read it first.
var specOrder = []string{"description", "mode", "endpointSelector", "nodeSelector",
	"ingress", "ingressDeny", "egress", "egressDeny", "enableDefaultDeny"}

// noop handles a field that another step already read.
func noop(entry) {}

// apiversionTypo accepts the lower-case "apiversion" key that one published
// Cilium example has.
func (t *tr) apiversionTypo(e entry) {
	t.note(e.key, e.path, "the key is spelled \"apiversion\"; read as apiVersion (the API server would refuse the object as written)")
}

// status is written by the cluster.
func (t *tr) status(e entry) {
	t.drop(e, "status is written by the cluster, not by the policy's author")
}

// cilium translates a CiliumNetworkPolicy or CiliumClusterwideNetworkPolicy.
// Each rule (spec, and every element of specs) becomes one Palisade object:
// Cilium adds up the rules of one object exactly as it adds up rules of
// separate objects, so splitting them keeps the meaning.
func (im *Importer) cilium(t *tr, doc *yaml.Node, src Source) []*Policy {
	clusterwide := src.Kind == "CiliumClusterwideNetworkPolicy"
	var (
		m       *meta
		topDesc *val
		spec    *entry
		specs   []entry
		hasList bool
	)
	t.walk(doc, "", src.Kind, []field{
		{"apiVersion", noop},
		{"apiversion", t.apiversionTypo},
		{"kind", noop},
		{"metadata", func(e entry) { m = t.metadata(e, !clusterwide) }},
		{"description", func(e entry) {
			if s, ok := t.str(e); ok {
				topDesc = strv(s, t.pos(e.val), e.path)
				t.note(e.key, e.path, "top-level description is not a field Cilium reads; it becomes spec.description")
			}
		}},
		{"spec", func(e entry) { spec = &e }},
		{"specs", func(e entry) { specs, _ = t.items(e); hasList = true }},
		{"status", t.status},
	})
	if m == nil {
		t.fail(doc, "metadata", "metadata is missing; every object needs a name")
		return nil
	}
	if spec == nil && len(specs) == 0 {
		at := doc
		if hasList {
			at = nil
		}
		t.fail(at, "spec", "%s has neither spec nor specs: there is no rule to import", src.Kind)
		return nil
	}
	desc := topDesc
	if m.description != nil {
		desc = m.description
	}
	var out []*Policy
	emit := func(e entry, name string) {
		v, kind := t.ciliumRule(e, clusterwide)
		if v == nil {
			return
		}
		if v.get("description") == nil && desc != nil {
			v.set("description", desc)
			v.sortBy(specOrder...)
		}
		namespaced := kind == KindNetworkPolicy
		o := obj(t.pos(doc), "")
		o.set("apiVersion", strv(APIVersion, t.pos(doc), "apiVersion"))
		o.set("kind", strv(kind, t.pos(doc), "kind"))
		o.set("metadata", m.value(t, name, namespaced))
		o.set("spec", v)
		ns := ""
		if namespaced {
			ns = m.namespace
		}
		out = append(out, newPolicy(kind, ns, name, e.path, o))
	}
	if spec != nil {
		emit(*spec, m.name)
	}
	for i, e := range specs {
		emit(e, fmt.Sprintf("%s-%d", m.name, i))
	}
	return out
}

// direction holds what the source says about one traffic direction, to
// keep default deny where the source has it.
type direction struct {
	rules    int   // allow and deny rules in the source
	explicit *bool // enableDefaultDeny as written
}

// ciliumRule translates one Cilium rule into a Palisade network policy
// spec and says which kind it needs.
func (t *tr) ciliumRule(e entry, clusterwide bool) (*val, string) {
	spec := obj(t.pos(e.val), e.path)
	var endpoints, nodes *entry
	dirs := map[string]*direction{"ingress": {}, "egress": {}}
	rules := func(dir string, deny bool) func(entry) {
		return func(e entry) {
			its, ok := t.items(e)
			if !ok {
				return
			}
			dirs[dir].rules += len(its)
			l := list(t.pos(e.val), e.path)
			for _, it := range its {
				if r := t.ciliumPeerRule(it, dir, deny); r != nil {
					l.add(r)
				}
			}
			spec.setList(e.name, l)
		}
	}
	t.walk(e.val, e.path, "a Cilium rule", []field{
		{"description", func(e entry) {
			if s, ok := t.str(e); ok {
				spec.set("description", strv(s, t.pos(e.val), e.path))
			}
		}},
		{"endpointSelector", func(e entry) {
			endpoints = &e
			spec.set("endpointSelector", t.selector(e, selSubject, nil))
		}},
		{"nodeSelector", func(e entry) {
			nodes = &e
			spec.set("nodeSelector", t.selector(e, selSubject, nil))
		}},
		{"ingress", rules("ingress", false)},
		{"ingressDeny", rules("ingress", true)},
		{"egress", rules("egress", false)},
		{"egressDeny", rules("egress", true)},
		{"enableDefaultDeny", func(e entry) {
			t.walk(e.val, e.path, "enableDefaultDeny", []field{
				{"ingress", func(e entry) {
					if b, ok := t.boolean(e); ok {
						dirs["ingress"].explicit = &b
					}
				}},
				{"egress", func(e entry) {
					if b, ok := t.boolean(e); ok {
						dirs["egress"].explicit = &b
					}
				}},
			})
		}},
		{"labels", func(e entry) {
			t.drop(e, "rule labels name a rule inside Cilium's policy repository; put labels on metadata.labels")
		}},
		{"log", func(e entry) {
			t.drop(e, "policy verdict logging is configured on the Palisade agent, not per rule; leaving it out changes no verdict")
		}},
	})
	kind := KindNetworkPolicy
	switch {
	case endpoints != nil && nodes != nil:
		t.fail(nodes.key, nodes.path, "a rule has either endpointSelector or nodeSelector, not both")
	case endpoints == nil && nodes == nil:
		t.fail(e.val, e.path, "a rule needs endpointSelector or nodeSelector to say what it applies to")
	case nodes != nil && !clusterwide:
		t.fail(nodes.key, nodes.path, "nodeSelector in a namespaced CiliumNetworkPolicy: Cilium refuses it, since host policies are cluster-wide; use CiliumClusterwideNetworkPolicy")
	}
	if clusterwide {
		kind = KindClusterNetworkPolicy
	}
	// Keep default deny exactly where the source has it. Cilium isolates
	// a direction when a rule has rules in it (even one empty rule) unless
	// enableDefaultDeny says otherwise; the importer drops empty rules and
	// rules whose peers cannot exist under Palisade, so it writes the
	// default deny out when no rule is left to imply it.
	dd := obj(t.pos(e.val), e.path+".enableDefaultDeny")
	for _, dir := range []string{"ingress", "egress"} {
		if t.failed() {
			break
		}
		d := dirs[dir]
		left := len(listItems(spec.get(dir))) + len(listItems(spec.get(dir+"Deny")))
		switch {
		case d.explicit != nil:
			dd.set(dir, boolv(*d.explicit, t.pos(e.val), e.path+".enableDefaultDeny."+dir))
		case d.rules > 0 && left == 0:
			dd.set(dir, boolv(true, t.pos(e.val), e.path+".enableDefaultDeny."+dir))
			t.note(e.val, e.path, "no %s rule is left to make %s default-deny as the source does; written as enableDefaultDeny.%s: true", dir, dir, dir)
		}
	}
	if len(dd.fields) > 0 {
		spec.set("enableDefaultDeny", dd)
	}
	spec.sortBy(specOrder...)
	if t.failed() {
		return nil, kind
	}
	return spec, kind
}

func listItems(v *val) []*val {
	if v == nil {
		return nil
	}
	return v.items
}

// peerFields names a rule's fields by direction.
type peerFields struct {
	endpoints, requires, cidr, cidrSet, entities, services, groups, nodes string
}

var peerNames = map[string]peerFields{
	"ingress": {"fromEndpoints", "fromRequires", "fromCIDR", "fromCIDRSet", "fromEntities", "fromServices", "fromGroups", "fromNodes"},
	"egress":  {"toEndpoints", "toRequires", "toCIDR", "toCIDRSet", "toEntities", "toServices", "toGroups", "toNodes"},
}

// ruleOrder is the order of a rule's fields in the output.
var ruleOrder = []string{"fromEndpoints", "toEndpoints", "fromCIDR", "toCIDR", "fromCIDRSet", "toCIDRSet",
	"fromEntities", "toEntities", "toFQDNs", "toPorts", "icmps"}

// entityMap says what becomes of each Cilium entity. An entity that names
// an identity Palisade does not have matches nothing under Palisade, so
// leaving it out of a rule changes nothing the rule allows or denies.
var entityMap = map[string]struct {
	entity, cidr, missing string
}{
	"world":          {entity: "world"},
	"host":           {entity: "host"},
	"remote-node":    {entity: "remote-node"},
	"cluster":        {entity: "cluster"},
	"kube-apiserver": {entity: "kube-apiserver"},
	"unmanaged":      {entity: "unmanaged"},
	"all":            {entity: "all"},
	"world-ipv4":     {cidr: "0.0.0.0/0"},
	"world-ipv6":     {cidr: "::/0"},
	"health":         {missing: "it names Cilium's health-check endpoints, which do not exist under Palisade"},
	"init":           {missing: "it names Cilium endpoints whose labels are not yet known; Palisade has no such identity"},
	"ingress":        {missing: "it names Cilium's Envoy ingress endpoint, which does not exist under Palisade"},
}

// ciliumPeerRule translates one allow or deny rule. It returns nil when
// the rule is left out, which happens only when leaving it out does not
// widen the policy (the caller keeps the direction's default deny).
func (t *tr) ciliumPeerRule(e entry, dir string, deny bool) *val {
	mark := t.errs()
	pf := peerNames[dir]
	r := obj(t.pos(e.val), e.path)
	var (
		hadPeers  bool
		unrep     []entry // peers Palisade cannot express
		gone      bool    // a peer that matches nothing was left out
		hasL4     bool
		selWhere  = selAllow
		cidrs     = list(t.pos(e.val), e.path+"."+pf.cidr)
		cidrField entry
	)
	if deny {
		selWhere = selDeny
	}
	peers := func(fn func(its []entry)) func(entry) {
		return func(e entry) {
			its, ok := t.items(e)
			if !ok {
				return
			}
			if len(its) > 0 {
				hadPeers = true
			}
			fn(its)
		}
	}
	unrepresentable := func(e entry) {
		if its, ok := t.items(e); ok && len(its) > 0 {
			hadPeers = true
			unrep = append(unrep, e)
		}
	}
	table := []field{
		{pf.endpoints, peers(func(its []entry) {
			l := list(t.pos(e.val), "")
			for _, it := range its {
				l.add(t.selector(it, selWhere, nil))
			}
			if len(its) > 0 {
				r.setList(pf.endpoints, l)
			}
		})},
		{pf.requires, func(e entry) {
			t.fail(e.key, e.path, "%s adds its selectors as a requirement to every peer of every rule that selects the endpoint; Palisade has no equivalent, and leaving it out would widen the policy", e.name)
		}},
		{pf.cidr, peers(func(its []entry) {
			cidrField = entry{key: its[0].key, path: e.path}
			for _, it := range its {
				if s, ok := t.str(it); ok && t.checkCIDR(it, s) {
					cidrs.add(strv(s, t.pos(it.val), it.path))
				}
			}
		})},
		{pf.cidrSet, peers(func(its []entry) {
			l := list(t.pos(e.val), "")
			for _, it := range its {
				if c := t.cidrRule(it, &unrep); c != nil {
					l.add(c)
				}
			}
			r.setList(pf.cidrSet, l)
		})},
		{pf.entities, peers(func(its []entry) {
			l := list(t.pos(e.val), "")
			for _, it := range its {
				s, ok := t.str(it)
				if !ok {
					continue
				}
				m, known := entityMap[s]
				switch {
				case !known:
					t.fail(it.val, it.path, "entity %q is not one the importer knows, so it cannot tell what the rule would lose without it", s)
				case m.entity != "":
					l.add(strv(m.entity, t.pos(it.val), it.path))
				case m.cidr != "":
					cidrs.add(strv(m.cidr, t.pos(it.val), it.path))
					t.note(it.val, it.path, "entity %q written as CIDR %s", s, m.cidr)
				default:
					gone = true
					t.report("PAL901", it.val, it.path, "entity %q has no Palisade equivalent and is left out: %s", s, m.missing)
				}
			}
			r.setList(pf.entities, l)
		})},
		{pf.services, unrepresentable},
		{pf.groups, unrepresentable},
		{pf.nodes, unrepresentable},
		{"toPorts", func(e entry) {
			hasL4 = t.ciliumPorts(e, r, deny) || hasL4
		}},
		{"icmps", func(e entry) {
			if l := t.icmps(e); l != nil && len(l.items) > 0 {
				r.set("icmps", l)
				hasL4 = true
			}
		}},
	}
	if dir == "egress" && !deny {
		table = append(table, field{"toFQDNs", peers(func(its []entry) {
			l := list(t.pos(e.val), "")
			for _, it := range its {
				if f := t.dnsMatch(it, "a toFQDNs selector"); f != nil {
					l.add(f)
				}
			}
			r.setList("toFQDNs", l)
		})})
	}
	if !deny {
		table = append(table,
			field{"authentication", func(e entry) { t.authentication(e) }},
			field{"auth", func(e entry) { t.authentication(e) }},
		)
	}
	what := "a Cilium " + dir + " rule"
	if deny {
		what = "a Cilium " + dir + "Deny rule"
	}
	t.walk(e.val, e.path, what, table)
	if len(cidrs.items) > 0 {
		cidrs.path = cidrField.path + "." + pf.cidr
		r.set(pf.cidr, cidrs)
	}
	kept := 0
	for _, f := range []string{pf.endpoints, pf.cidr, pf.cidrSet, pf.entities, "toFQDNs"} {
		kept += len(listItems(r.get(f)))
	}
	for _, u := range unrep {
		switch {
		case deny:
			t.fail(u.key, u.path, "%s has no Palisade equivalent, and leaving a peer out of a deny rule would let its traffic through", u.name)
		case kept == 0:
			t.fail(u.key, u.path, "%s has no Palisade equivalent, and without it the rule would have no peers, which means every peer", u.name)
		default:
			t.drop(u, "the rule keeps its other peers, so it allows less than the source, never more")
		}
	}
	switch {
	case t.failedSince(mark):
		return nil
	case hadPeers && kept == 0 && gone:
		// Every peer names something that does not exist under Palisade:
		// the rule allows (or denies) nothing there.
		t.report("PAL901", e.val, e.path, "rule left out: none of its peers exists under Palisade, so it matches no traffic")
		return nil
	case !hadPeers && !hasL4:
		// Cilium reads an empty rule as "allow nothing", written to make
		// the direction default-deny; the caller keeps that.
		t.note(e.val, e.path, "empty rule left out: it allows nothing and only makes %s default-deny, which the policy keeps", dir)
		return nil
	case !hadPeers:
		// A Cilium rule without peers applies to every peer. Palisade
		// says so explicitly, so the output means the same to a reader and
		// to every tool whatever they assume about an empty peer list.
		f := "fromEntities"
		if dir == "egress" {
			f = "toEntities"
		}
		r.set(f, &val{kind: kindList, items: []*val{strv("all", t.pos(e.val), e.path)}, pos: t.pos(e.val), path: e.path})
	}
	r.sortBy(ruleOrder...)
	return r
}

// checkCIDR reports a CIDR or address that does not parse: Cilium would
// refuse it, and there is no narrower reading of it.
func (t *tr) checkCIDR(e entry, s string) bool {
	if _, err := netip.ParsePrefix(s); err == nil {
		return true
	}
	if _, err := netip.ParseAddr(s); err == nil {
		return true
	}
	t.fail(e.val, e.path, "%q is not a CIDR or an IP address", s)
	return false
}

// cidrRule translates one element of fromCIDRSet/toCIDRSet. A CIDR group
// reference is recorded as a peer Palisade cannot express.
func (t *tr) cidrRule(e entry, unrep *[]entry) *val {
	mark := t.errs()
	c := obj(t.pos(e.val), e.path)
	group := false
	t.walk(e.val, e.path, "a CIDR rule", []field{
		{"cidr", func(e entry) {
			if s, ok := t.str(e); ok && t.checkCIDR(e, s) {
				c.set("cidr", strv(s, t.pos(e.val), e.path))
			}
		}},
		{"except", func(e entry) {
			ss, its, _ := t.strs(e)
			l := list(t.pos(e.val), e.path)
			for i, s := range ss {
				if t.checkCIDR(its[i], s) {
					l.add(strv(s, t.pos(its[i].val), its[i].path))
				}
			}
			c.setList("except", l)
		}},
		{"cidrGroupRef", func(e entry) { group = true; *unrep = append(*unrep, e) }},
		{"cidrGroupSelector", func(e entry) { group = true; *unrep = append(*unrep, e) }},
	})
	if group {
		return nil
	}
	if c.get("cidr") == nil {
		if !t.failedSince(mark) {
			t.fail(e.val, e.path, "a CIDR rule needs cidr")
		}
		return nil
	}
	return c
}

// authentication translates Cilium's mutual authentication requirement:
// a rule with it allows traffic only once both sides have authenticated,
// so leaving it out would widen the rule, unless the mode is one that
// requires nothing.
func (t *tr) authentication(e entry) {
	mark := t.errs()
	mode := ""
	t.walk(e.val, e.path, e.name, []field{
		{"mode", func(e entry) { mode, _ = t.str(e) }},
		{"type", func(e entry) { mode, _ = t.str(e) }},
	})
	switch mode {
	case "disabled":
		t.drop(e, "mode %q requires nothing", mode)
	case "null":
		t.drop(e, "the %q authentication type always succeeds, so it requires nothing", mode)
	default:
		if !t.failedSince(mark) {
			t.fail(e.key, e.path, "mutual authentication (%s %q) has no Palisade equivalent; the rule allows traffic only after authentication, and leaving that out would widen it", e.name, mode)
		}
	}
}
