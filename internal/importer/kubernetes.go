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
	"net/netip"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"
)

// namespaceLabelsPrefix is the label prefix under which Palisade, like
// Cilium, addresses a namespace's labels from a pod selector: a pod in a
// namespace labelled team=ops matches
// "k8s:io.cilium.k8s.namespace.labels.team": "ops".
const namespaceLabelsPrefix = "k8s:io.cilium.k8s.namespace.labels."

// namespaceNameLabel is the label Kubernetes puts on every namespace with
// its name; selecting it is selecting the namespace by name.
const namespaceNameLabel = "kubernetes.io/metadata.name"

// kubernetes translates a Kubernetes NetworkPolicy into a Palisade
// NetworkPolicy. Kubernetes says per policy which directions it isolates
// (policyTypes) and allows everything in the others; the importer writes
// both directions into enableDefaultDeny, so the output means the same
// whatever a reader assumes about absent rule lists.
func (im *Importer) kubernetes(t *tr, doc *yaml.Node, src Source) []*Policy {
	var (
		m    *meta
		spec *entry
	)
	t.walk(doc, "", src.Kind, []field{
		{"apiVersion", noop},
		{"apiversion", t.apiversionTypo},
		{"kind", noop},
		{"metadata", func(e entry) { m = t.metadata(e, true) }},
		{"spec", func(e entry) { spec = &e }},
		{"status", t.status},
	})
	if m == nil {
		t.fail(doc, "metadata", "metadata is missing; every object needs a name")
		return nil
	}
	if spec == nil {
		t.fail(doc, "spec", "NetworkPolicy has no spec")
		return nil
	}
	out := obj(t.pos(spec.val), "spec")
	var (
		types        []string
		typesAt      *entry
		rules        = map[string]*entry{}
		hasPodSelect bool
	)
	t.walk(spec.val, "spec", "a NetworkPolicy spec", []field{
		{"podSelector", func(e entry) {
			hasPodSelect = true
			out.set("endpointSelector", t.selector(e, selSubject, verbatim))
		}},
		{"policyTypes", func(e entry) {
			typesAt = &e
			ss, its, _ := t.strs(e)
			for i, s := range ss {
				if s != "Ingress" && s != "Egress" {
					t.fail(its[i].val, its[i].path, "policy type %q is not Ingress or Egress", s)
					continue
				}
				types = append(types, s)
			}
		}},
		{"ingress", func(e entry) { rules["ingress"] = &e }},
		{"egress", func(e entry) { rules["egress"] = &e }},
	})
	if !hasPodSelect {
		t.fail(spec.key, "spec", "spec.podSelector is missing; Kubernetes requires it ({} selects every pod of the namespace)")
	}
	if typesAt == nil {
		// Kubernetes' defaulting: every policy isolates ingress, and
		// egress too when it has egress rules.
		types = []string{"Ingress"}
		if e := rules["egress"]; e != nil {
			if its, _ := t.items(*e); len(its) > 0 {
				types = append(types, "Egress")
			}
		}
	}
	dd := obj(t.pos(spec.val), "spec.enableDefaultDeny")
	for _, dir := range []string{"ingress", "egress"} {
		isolated := slices.Contains(types, map[string]string{"ingress": "Ingress", "egress": "Egress"}[dir])
		dd.set(dir, boolv(isolated, t.pos(spec.val), "spec.enableDefaultDeny."+dir))
		e := rules[dir]
		if e == nil {
			continue
		}
		its, ok := t.items(*e)
		if !ok {
			continue
		}
		if !isolated {
			if len(its) > 0 {
				t.report("PAL901", e.key, e.path, "%s rules are not imported: policyTypes does not list %s, so Kubernetes ignores them", dir, map[string]string{"ingress": "Ingress", "egress": "Egress"}[dir])
			}
			continue
		}
		l := list(t.pos(e.val), e.path)
		for _, it := range its {
			if r := t.k8sRule(it, dir); r != nil {
				l.add(r)
			}
		}
		out.setList(dir, l)
	}
	out.set("enableDefaultDeny", dd)
	out.sortBy(specOrder...)
	if t.failed() {
		return nil
	}
	o := obj(t.pos(doc), "")
	o.set("apiVersion", strv(APIVersion, t.pos(doc), "apiVersion"))
	o.set("kind", strv(KindNetworkPolicy, t.pos(doc), "kind"))
	o.set("metadata", m.value(t, m.name, true))
	if m.description != nil {
		out.set("description", m.description)
		out.sortBy(specOrder...)
	}
	o.set("spec", out)
	return []*Policy{newPolicy(KindNetworkPolicy, m.namespace, m.name, "spec", o)}
}

// verbatim keeps a Kubernetes pod label key as it is: without a source
// prefix it matches the pod's Kubernetes labels.
func verbatim(k string) string { return k }

// namespaceKey addresses a namespace label from a pod selector.
func namespaceKey(k string) string {
	if k == namespaceNameLabel {
		return namespaceLabel
	}
	return namespaceLabelsPrefix + k
}

// k8sRule translates one ingress or egress rule. A rule without peers
// (from/to absent or empty) matches every source or destination in
// Kubernetes; Palisade writes that as the entity "all".
func (t *tr) k8sRule(e entry, dir string) *val {
	peersField, endpointsField, cidrSetField, entitiesField := "from", "fromEndpoints", "fromCIDRSet", "fromEntities"
	if dir == "egress" {
		peersField, endpointsField, cidrSetField, entitiesField = "to", "toEndpoints", "toCIDRSet", "toEntities"
	}
	r := obj(t.pos(e.val), e.path)
	endpoints := list(t.pos(e.val), e.path+"."+endpointsField)
	cidrs := list(t.pos(e.val), e.path+"."+cidrSetField)
	peers := 0
	t.walk(e.val, e.path, "a NetworkPolicy "+dir+" rule", []field{
		{peersField, func(e entry) {
			its, ok := t.items(e)
			if !ok {
				return
			}
			peers = len(its)
			for _, it := range its {
				ep, c := t.k8sPeer(it, entitiesField, endpointsField)
				if ep != nil {
					endpoints.add(ep)
				}
				if c != nil {
					cidrs.add(c)
				}
			}
		}},
		{"ports", func(e entry) {
			its, ok := t.items(e)
			if !ok || len(its) == 0 {
				return
			}
			pl := list(t.pos(e.val), e.path)
			for _, it := range its {
				if p := t.port(it, false, true); p != nil {
					pl.add(p)
				}
			}
			if len(pl.items) == 0 {
				return
			}
			pr := obj(t.pos(e.val), e.path)
			pr.set("ports", pl)
			r.set("toPorts", &val{kind: kindList, items: []*val{pr}, pos: t.pos(e.val), path: e.path})
		}},
	})
	r.setList(endpointsField, endpoints)
	r.setList(cidrSetField, cidrs)
	if peers == 0 {
		r.set(entitiesField, &val{kind: kindList, items: []*val{strv("all", t.pos(e.val), e.path)}, pos: t.pos(e.val), path: e.path})
	}
	r.sortBy(ruleOrder...)
	return r
}

// k8sPeer translates one NetworkPolicyPeer into an endpoint selector or a
// CIDR rule. entitiesField and endpointsField name the rule's fields in
// its direction, for the advice of podAddresses.
func (t *tr) k8sPeer(e entry, entitiesField, endpointsField string) (endpoints, cidr *val) {
	var pods, nss, block *entry
	t.walk(e.val, e.path, "a NetworkPolicy peer", []field{
		{"podSelector", func(e entry) { pods = &e }},
		{"namespaceSelector", func(e entry) { nss = &e }},
		{"ipBlock", func(e entry) { block = &e }},
	})
	switch {
	case block != nil && (pods != nil || nss != nil):
		t.fail(block.key, block.path, "ipBlock cannot be combined with podSelector or namespaceSelector in one peer (Kubernetes refuses it)")
		return nil, nil
	case block != nil:
		c := t.cidrRule(*block, &[]entry{})
		if c != nil {
			t.podAddresses(*block, c, entitiesField, endpointsField)
		}
		return nil, c
	case pods == nil && nss == nil:
		t.fail(e.val, e.path, "a peer needs podSelector, namespaceSelector or ipBlock (Kubernetes refuses an empty peer)")
		return nil, nil
	}
	sel := obj(t.pos(e.val), e.path)
	if pods != nil {
		sel = t.selector(*pods, selAllow, verbatim)
	}
	if nss == nil {
		// Pods of the policy's own namespace, which is what a Palisade
		// selector without a namespace label selects too.
		return sel, nil
	}
	ns := t.selector(*nss, selAllow, namespaceKey)
	if ml := ns.get("matchLabels"); ml != nil {
		labels := sel.get("matchLabels")
		if labels == nil {
			labels = obj(ml.pos, ml.path)
		}
		labels.fields = append(labels.fields, ml.fields...)
		sel.set("matchLabels", labels)
	}
	exprs := sel.get("matchExpressions")
	if exprs == nil {
		exprs = list(t.pos(nss.val), nss.path)
	}
	if me := ns.get("matchExpressions"); me != nil {
		exprs.items = append(exprs.items, me.items...)
	}
	if !selectsNamespace(sel, exprs) {
		// A namespace selector selects across namespaces; saying that
		// the namespace label must exist keeps the selector from being
		// read as "this namespace only".
		req := obj(t.pos(nss.val), nss.path)
		req.set("key", strv(namespaceLabel, t.pos(nss.val), nss.path))
		req.set("operator", strv("Exists", t.pos(nss.val), nss.path))
		exprs.add(req)
	}
	sel.setList("matchExpressions", exprs)
	sel.sortBy("matchLabels", "matchExpressions")
	return sel, nil
}

// selectsNamespace reports whether a selector already names the
// namespace label.
func selectsNamespace(sel, exprs *val) bool {
	if sel.get("matchLabels").get(namespaceLabel) != nil {
		return true
	}
	for _, x := range exprs.items {
		if k := x.get("key"); k != nil && k.str == namespaceLabel {
			return true
		}
	}
	return false
}

// privateRanges are where pod addresses usually are: the private IPv4
// ranges and IPv6 unique local addresses.
var privateRanges = []netip.Prefix{
	netip.MustParsePrefix("10.0.0.0/8"),
	netip.MustParsePrefix("172.16.0.0/12"),
	netip.MustParsePrefix("192.168.0.0/16"),
	netip.MustParsePrefix("fc00::/7"),
}

// podAddresses warns (PAL907) at an ipBlock that covers private
// addresses its except list does not take out. In Kubernetes such a block
// admits the pods whose addresses it covers (on the usual CNIs); a
// Palisade CIDR never matches a cluster endpoint, so the imported rule
// admits fewer peers than the source unless the pods are named.
func (t *tr) podAddresses(block entry, c *val, entitiesField, endpointsField string) {
	cidr, err := netip.ParsePrefix(c.get("cidr").str)
	if err != nil {
		return // reported by checkCIDR
	}
	var excepts []netip.Prefix
	if ex := c.get("except"); ex != nil {
		for _, it := range ex.items {
			if p, err := netip.ParsePrefix(it.str); err == nil {
				excepts = append(excepts, p)
			}
		}
	}
	var covered []string
	for _, r := range privateRanges {
		if !cidr.Overlaps(r) {
			continue
		}
		in := r // the overlap of two prefixes is the longer one
		if cidr.Bits() > r.Bits() {
			in = cidr
		}
		if slices.ContainsFunc(excepts, func(e netip.Prefix) bool { return e.Bits() <= in.Bits() && e.Contains(in.Addr()) }) {
			continue
		}
		covered = append(covered, in.String())
	}
	if len(covered) == 0 {
		return
	}
	t.report("PAL907", block.key, block.path,
		"ipBlock %s covers private addresses (%s), where pods usually are: Kubernetes admits the pods it covers, a Palisade CIDR matches no pod; to keep them, add %s: [\"cluster\"] to the rule, or %s selecting them",
		cidr, strings.Join(covered, ", "), entitiesField, endpointsField)
}
