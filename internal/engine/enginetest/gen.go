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

// Package enginetest generates random clusters, policies and flows for
// property tests of the policy engine and of what enforces its map state
// (the eBPF datapath). Everything is drawn from one seeded generator, so a
// seed reproduces a case exactly; Shrink and the Format functions turn a
// failing case into a readable reproducer.
//
// The policies are what engine.Build produces: normalized rules with
// subjects, peers and L4 entries; IR assigns Build's rule IDs.
package enginetest

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/palisade-dev/palisade/api/v1alpha1"
	"github.com/palisade-dev/palisade/internal/engine"
)

// Gen generates random clusters, policies, flows and changes.
type Gen struct {
	R *rand.Rand
	// Collide holds policy names (NetworkPolicy shop/<name>) whose first
	// ingress rules hash to the same or neighbouring RuleIDs; Policies
	// draws names from it now and then to exercise Build's ID probing.
	Collide []string
	nextEP  int
}

// New returns a generator seeded with seed.
func New(seed uint64) *Gen {
	return &Gen{R: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))}
}

// Pick returns a random int in [0, n).
func (g *Gen) Pick(n int) int { return g.R.IntN(n) }

// Chance returns true with probability p.
func (g *Gen) Chance(p float64) bool { return g.R.Float64() < p }

// PickOf returns one of xs at random.
func PickOf[T any](g *Gen, xs ...T) T { return xs[g.Pick(len(xs))] }

// Shuffle shuffles xs in place.
func Shuffle[T any](g *Gen, xs []T) {
	g.R.Shuffle(len(xs), func(i, j int) { xs[i], xs[j] = xs[j], xs[i] })
}

// What random clusters and policies are made of.
var (
	Namespaces = []string{"shop", "pay", "dev"}
	Apps       = []string{"web", "api", "db", "dns"}
	// DNS is the answers a cluster may have seen, for FQDN peers.
	DNS = map[string][]netip.Addr{
		"api.example.com":   {netip.MustParseAddr("203.0.113.50")},
		"www.example.com":   {netip.MustParseAddr("198.51.100.80"), netip.MustParseAddr("2001:db8::80")},
		"a.b.example.com":   {netip.MustParseAddr("198.51.100.82")},
		"evil.other.org":    {netip.MustParseAddr("203.0.113.66")},
		"pod.example.com":   {netip.MustParseAddr("10.0.1.1")},
		"api.internal.test": {netip.MustParseAddr("198.51.100.10")},
	}
	// AnswerNames are names that random DNS answers are for: names that no
	// selector of Rule selects, one, or several, some written in another
	// case or with a trailing dot.
	AnswerNames = []string{"api.example.com", "Mixed.Example.COM.", "api.test", "deep.a.b.example.com", "other.net", "API.example.com."}
	// World is addresses outside the cluster's workloads and nodes (some
	// in the pod CIDRs), that flows go to and come from.
	World = []string{"203.0.113.1", "203.0.113.50", "203.0.113.66", "203.0.113.130", "203.0.113.200",
		"198.51.100.10", "198.51.100.80", "198.51.100.82", "8.8.8.8", "10.0.9.9", "10.1.0.1",
		"2001:db8::80", "2001:db8::1", "2001:db8:1::1", "fd00:10::9:9"}
	// Prefixes is what CIDR rules and their exceptions name.
	Prefixes = []string{"203.0.113.0/24", "203.0.113.0/25", "203.0.113.128/26", "203.0.113.50/32",
		"198.51.100.0/24", "198.51.100.10/32", "0.0.0.0/0", "10.0.0.0/8", "192.168.0.0/16", "2001:db8::/32", "::/0"}
)

// Cluster returns a random cluster: three nodes (cp serving the API; n1
// with an IPv6 address too), 4 to 11 managed and unmanaged workloads with
// named ports, and DNS answers.
func (g *Gen) Cluster() *engine.Cluster {
	c := &engine.Cluster{
		Namespaces: map[string]map[string]string{
			"shop": {"team": "shop", "env": "prod"},
			"pay":  {"team": "pay", "env": "prod"},
			"dev":  {"env": "dev"},
		},
		Nodes: []engine.Node{
			{Name: "n1", Labels: map[string]string{"role": "worker", "zone": "a"}, IPs: []netip.Addr{netip.MustParseAddr("192.168.0.1"), netip.MustParseAddr("fd00:192::1")}},
			{Name: "n2", Labels: map[string]string{"role": "worker", "zone": "b"}, IPs: []netip.Addr{netip.MustParseAddr("192.168.0.2")}},
			{Name: "cp", Labels: map[string]string{"role": "control-plane", "zone": "a"}, IPs: []netip.Addr{netip.MustParseAddr("192.168.0.3")}},
		},
		APIServer: []netip.Addr{netip.MustParseAddr("192.168.0.3"), netip.MustParseAddr("198.51.100.10")},
		PodCIDRs:  []netip.Prefix{netip.MustParsePrefix("10.0.0.0/16"), netip.MustParsePrefix("fd00:10::/48")},
		DNS:       map[string][]netip.Addr{},
	}
	for _, n := range slices.Sorted(maps.Keys(DNS)) { // in order: the seed decides
		if g.Chance(0.8) {
			c.DNS[n] = DNS[n]
		}
	}
	for range 4 + g.Pick(8) {
		c.Endpoints = append(c.Endpoints, g.Endpoint())
	}
	for _, n := range AnswerNames {
		if g.Chance(0.4) {
			c.DNS[n] = slices.Concat(c.DNS[n], g.Answer(c))
		}
	}
	return c
}

// Answer returns 1 to 3 random addresses of a DNS answer: mostly world
// addresses (some in CIDR rules' prefixes, some in the pod CIDRs), and
// addresses of c's workloads, nodes and API server, which FQDN peers never
// select, or select as the API server.
func (g *Gen) Answer(c *engine.Cluster) []netip.Addr {
	var out []netip.Addr
	for range 1 + g.Pick(3) {
		switch k := g.Pick(10); {
		case k < 2 && len(c.Endpoints) > 0:
			e := c.Endpoints[g.Pick(len(c.Endpoints))]
			out = append(out, PickOf(g, e.IPs...))
		case k < 3:
			n := c.Nodes[g.Pick(len(c.Nodes))]
			out = append(out, PickOf(g, n.IPs...))
		case k < 4 && len(c.APIServer) > 0:
			out = append(out, PickOf(g, c.APIServer...))
		default:
			out = append(out, netip.MustParseAddr(PickOf(g, World...)))
		}
	}
	return out
}

// Endpoint returns a random workload with an address not used before by
// this generator.
func (g *Gen) Endpoint() engine.Endpoint {
	g.nextEP++
	i := g.nextEP
	e := engine.Endpoint{
		Namespace: PickOf(g, Namespaces...),
		Name:      fmt.Sprintf("pod-%d", i),
		Labels:    map[string]string{"app": PickOf(g, Apps...)},
		IPs:       []netip.Addr{netip.AddrFrom4([4]byte{10, 0, byte(i / 250), byte(1 + i%250)})},
		Node:      PickOf(g, "n1", "n1", "n2", "cp"),
	}
	if g.Chance(0.3) {
		e.IPs = append(e.IPs, netip.MustParseAddr(fmt.Sprintf("fd00:10::%x", i)))
	}
	if g.Chance(0.5) {
		e.Labels["version"] = PickOf(g, "v1", "v2")
	}
	if g.Chance(0.3) {
		e.Labels["pod-template-hash"] = fmt.Sprintf("h%d", g.Pick(3))
	}
	if g.Chance(0.3) {
		e.ServiceAccount = PickOf(g, "sa-a", "sa-b")
	}
	for _, np := range []engine.NamedPort{{Name: "http", Port: 8080, Protocol: engine.ProtoTCP}, {Name: "http", Port: 8081, Protocol: engine.ProtoTCP},
		{Name: "dns", Port: 53, Protocol: engine.ProtoUDP}, {Name: "metrics", Port: 9090, Protocol: engine.ProtoTCP}} {
		if g.Chance(0.3) && !slices.ContainsFunc(e.Ports, func(p engine.NamedPort) bool { return p.Name == np.Name }) {
			e.Ports = append(e.Ports, np)
		}
	}
	e.Unmanaged = g.Chance(0.1)
	return e
}

// labelSelector returns a random API selector over workload labels.
func (g *Gen) labelSelector(allowReserved bool) *metav1.LabelSelector {
	s := &metav1.LabelSelector{}
	switch g.Pick(8) {
	case 0: // {}: every workload (of the namespace)
	case 1:
		s.MatchExpressions = []metav1.LabelSelectorRequirement{{Key: "app", Operator: metav1.LabelSelectorOpIn, Values: []string{PickOf(g, Apps...), PickOf(g, Apps...)}}}
	case 2:
		s.MatchExpressions = []metav1.LabelSelectorRequirement{{Key: "app", Operator: metav1.LabelSelectorOpNotIn, Values: []string{PickOf(g, Apps...)}}}
	case 3:
		s.MatchExpressions = []metav1.LabelSelectorRequirement{{Key: "version", Operator: PickOf(g, metav1.LabelSelectorOpExists, metav1.LabelSelectorOpDoesNotExist)}}
	case 4:
		s.MatchLabels = map[string]string{engine.LabelNamespace: PickOf(g, Namespaces...)}
		if g.Chance(0.5) {
			s.MatchLabels["k8s:app"] = PickOf(g, Apps...)
		}
	case 5:
		s.MatchLabels = map[string]string{engine.LabelNamespaceLabels + "env": PickOf(g, "prod", "dev")}
	case 6:
		if allowReserved {
			e := PickOf(g, engine.EntityHost, engine.EntityRemoteNode, engine.EntityWorld, engine.EntityKubeAPIServer)
			s.MatchLabels = map[string]string{"reserved:" + string(e): ""}
			if e == engine.EntityWorld && g.Chance(0.3) {
				// The world but not the API server's external addresses:
				// a world rule the compiler cannot write under
				// engine.IdentityAllWorld.
				s.MatchExpressions = []metav1.LabelSelectorRequirement{{Key: "reserved:" + string(engine.EntityKubeAPIServer), Operator: metav1.LabelSelectorOpDoesNotExist}}
			}
			break
		}
		fallthrough
	default:
		s.MatchLabels = map[string]string{"app": PickOf(g, Apps...)}
		if g.Chance(0.3) {
			s.MatchLabels["version"] = PickOf(g, "v1", "v2")
		}
		if g.Chance(0.2) {
			s.MatchLabels[engine.LabelServiceAccount] = PickOf(g, "sa-a", "sa-b")
		}
	}
	return s
}

// peerSelector returns a random peer selector of a policy of namespace ns.
func (g *Gen) peerSelector(ns string, allowReserved bool) engine.Selector {
	return mustSelector(g.labelSelector(allowReserved), ns)
}

// subjectSelector is a random policy subject, canonicalized as Build does:
// a namespaced policy selects pods of its own namespace only.
func (g *Gen) subjectSelector(ns string) *engine.Selector {
	s := g.labelSelector(false)
	if ns != "" {
		s.MatchExpressions = append(s.MatchExpressions, metav1.LabelSelectorRequirement{Key: engine.LabelNamespace, Operator: metav1.LabelSelectorOpIn, Values: []string{ns}})
	}
	sel := mustSelector(s, "")
	return &sel
}

func mustSelector(s *metav1.LabelSelector, ns string) engine.Selector {
	sel, err := engine.NewSelector(s, ns)
	if err != nil {
		panic(err)
	}
	return sel
}

// Policy returns a random policy named name, with rules as Build would
// normalize them (IR gives them their IDs). A name starting with "c" (see
// Collide) is a NetworkPolicy in namespace shop with a spec.ingress[0]
// rule.
func (g *Gen) Policy(name string) *engine.Policy {
	p := &engine.Policy{Audit: g.Chance(0.2)}
	var ns string
	switch k := g.Pick(5); {
	case strings.HasPrefix(name, "c"): // a colliding name
		ns = "shop"
		p.Origin = engine.Origin{Kind: "NetworkPolicy", Namespace: ns, Name: name}
		p.Subject.Endpoints = g.subjectSelector(ns)
	case k == 0:
		p.Origin = engine.Origin{Kind: "ClusterNetworkPolicy", Name: name}
		if g.Chance(0.4) {
			s := mustSelector(&metav1.LabelSelector{MatchLabels: map[string]string{"role": PickOf(g, "worker", "control-plane")}}, "")
			if g.Chance(0.3) {
				s = mustSelector(&metav1.LabelSelector{}, "")
			}
			p.Subject.Nodes = &s
		} else {
			p.Subject.Endpoints = g.subjectSelector("")
		}
	case k == 1:
		p.Origin = engine.Origin{Kind: "ClusterNetworkPolicy", Name: name}
		p.Subject.Endpoints = g.subjectSelector("")
	default:
		ns = PickOf(g, Namespaces...)
		p.Origin = engine.Origin{Kind: "NetworkPolicy", Namespace: ns, Name: name}
		p.Subject.Endpoints = g.subjectSelector(ns)
	}
	var has [2]bool
	for _, sec := range []struct {
		name   string
		dir    engine.Direction
		action engine.Action
	}{{"ingress", engine.Ingress, engine.Allow}, {"ingressDeny", engine.Ingress, engine.Deny}, {"egress", engine.Egress, engine.Allow}, {"egressDeny", engine.Egress, engine.Deny}} {
		n := PickOf(g, 0, 0, 1, 1, 2, 3)
		if sec.action == engine.Deny {
			n = PickOf(g, 0, 0, 0, 1)
		}
		if n > 0 {
			has[sec.dir] = true
		}
		for i := range n {
			r := g.Rule(sec.dir, sec.action, ns)
			if r == nil {
				continue // "{}": isolates, allows nothing
			}
			r.Origin = engine.Origin{Kind: p.Origin.Kind, Namespace: ns, Name: name, Path: fmt.Sprintf("spec.%s[%d]", sec.name, i)}
			r.Audit, r.Subject = p.Audit, p.Subject
			p.Rules = append(p.Rules, r)
		}
	}
	if strings.HasPrefix(name, "c") && !slices.ContainsFunc(p.Rules, func(r *engine.Rule) bool { return r.Origin.Path == "spec.ingress[0]" }) {
		// Make the colliding rule exist, so that IDs really collide.
		r := &engine.Rule{Direction: engine.Ingress, Action: PickOf(g, engine.Allow, engine.Deny), Peer: engine.Peer{Any: true}, L4: g.L4(engine.Allow),
			Origin: engine.Origin{Kind: p.Origin.Kind, Namespace: ns, Name: name, Path: "spec.ingress[0]"}, Audit: p.Audit, Subject: p.Subject}
		if r.Action == engine.Deny {
			r.L4 = []engine.L4{{Proto: engine.ProtoTCP, Lo: 80, Hi: 80}}
		}
		p.Rules = append([]*engine.Rule{r}, p.Rules...)
		has[engine.Ingress] = true
	}
	p.DefaultDeny = has
	for d := range p.DefaultDeny {
		if g.Chance(0.15) {
			p.DefaultDeny[d] = g.Chance(0.5)
		}
	}
	return p
}

// Rule returns a random rule of a policy of namespace ns, or nil for an
// empty one ("{}": isolates, allows nothing). Origin, Audit and Subject
// are the caller's to set.
func (g *Gen) Rule(dir engine.Direction, action engine.Action, ns string) *engine.Rule {
	r := &engine.Rule{Direction: dir, Action: action}
	named := false
	switch g.Pick(10) {
	case 0: // no peer field
	case 1:
		named = true // a present but empty peer field: no peer
	case 2, 3:
		named = true
		for range 1 + g.Pick(2) {
			r.Peer.Endpoints = append(r.Peer.Endpoints, g.peerSelector(ns, true))
		}
	case 4:
		named = true
		for range 1 + g.Pick(2) {
			r.Peer.Entities = append(r.Peer.Entities, PickOf(g, engine.Entities...))
		}
	case 5, 6:
		named = true
		for range 1 + g.Pick(2) {
			pfx := netip.MustParsePrefix(PickOf(g, Prefixes...))
			cr := engine.CIDRRule{Prefix: pfx}
			if g.Chance(0.5) {
				for _, e := range Prefixes {
					ep := netip.MustParsePrefix(e)
					if ep != pfx && within(ep, pfx) && g.Chance(0.5) {
						cr.Except = append(cr.Except, ep)
					}
				}
			}
			r.Peer.CIDRs = append(r.Peer.CIDRs, cr)
		}
	case 7, 9:
		named = true
		if dir == engine.Egress {
			// Egress deny rules have no toFQDNs in the API; the engine
			// decides them all the same. At most 3 of these select one
			// name, within the kernel's bound (engine.CompileFQDN).
			for range 1 + g.Pick(2) {
				r.Peer.FQDNs = append(r.Peer.FQDNs, PickOf(g, engine.FQDN{Name: "api.example.com"}, engine.FQDN{Pattern: "*.example.com"},
					engine.FQDN{Pattern: "*"}, engine.FQDN{Name: "pod.example.com"}, engine.FQDN{Pattern: "api.*"}, engine.FQDN{Name: "API.internal.test."},
					engine.FQDN{Pattern: "*.EXAMPLE.com."}, engine.FQDN{Pattern: "a*.b.example.com"}))
			}
			if g.Chance(0.2) {
				r.Peer.CIDRs = []engine.CIDRRule{{Prefix: netip.MustParsePrefix(PickOf(g, Prefixes...))}}
			}
		} else {
			r.Peer.Entities = []engine.Entity{engine.EntityCluster}
		}
	case 8: // a mix
		named = true
		r.Peer.Endpoints = []engine.Selector{g.peerSelector(ns, false)}
		r.Peer.Entities = []engine.Entity{PickOf(g, engine.Entities...)}
		r.Peer.CIDRs = []engine.CIDRRule{{Prefix: netip.MustParsePrefix(PickOf(g, Prefixes...))}}
	}
	r.Peer.Any = !named
	switch {
	case !named && g.Chance(0.15):
		return nil // no peer, no ports: Cilium's "{}"
	case named && g.Chance(0.3):
		return r // every port
	}
	r.L4 = g.L4(action)
	return r
}

// within reports whether p lies inside outer.
func within(p, outer netip.Prefix) bool {
	return outer.Bits() <= p.Bits() && outer.Contains(p.Addr())
}

// L4 returns random ports as Build normalizes them: single ports, ranges,
// every port of a protocol, named ports, ICMP types, some with L7 rules
// (allows only).
func (g *Gen) L4(action engine.Action) []engine.L4 {
	var out []engine.L4
	any3 := func(l engine.L4) {
		for _, p := range []engine.Proto{engine.ProtoTCP, engine.ProtoUDP, engine.ProtoSCTP} {
			l.Proto = p
			out = append(out, l)
		}
	}
	for range 1 + g.Pick(2) {
		var l7 *v1alpha1.L7Rules
		if action == engine.Allow && g.Chance(0.35) {
			l7 = g.l7()
		}
		switch g.Pick(8) {
		case 0:
			any3(engine.L4{Lo: 0, Hi: 65535, L7: l7}) // toPorts without ports
		case 1:
			p := uint16(PickOf(g, 53, 80, 8080))
			any3(engine.L4{Lo: p, Hi: p, L7: l7})
		case 2:
			lo := uint16(PickOf(g, 1, 80, 1000, 1024, 8000))
			out = append(out, engine.L4{Proto: PickOf(g, engine.ProtoTCP, engine.ProtoUDP), Lo: lo, Hi: lo + uint16(PickOf(g, 0, 1, 100, 1000, 65535-int(lo))), L7: l7})
		case 3:
			out = append(out, engine.L4{Proto: PickOf(g, engine.ProtoTCP, engine.ProtoUDP, engine.ProtoSCTP), Lo: 0, Hi: 65535, L7: l7})
		case 4:
			n := PickOf(g, "http", "dns", "metrics", "nope")
			p := engine.ProtoTCP
			if n == "dns" {
				p = engine.ProtoUDP
			}
			out = append(out, engine.L4{Proto: p, Name: n, L7: l7})
		case 5:
			typ := uint16(PickOf(g, 0, 8, 128))
			out = append(out, engine.L4{Proto: PickOf(g, engine.ProtoICMP, engine.ProtoICMPv6), Lo: typ, Hi: typ})
		default:
			p := uint16(PickOf(g, 53, 80, 443, 8080, 8081, 9090))
			out = append(out, engine.L4{Proto: PickOf(g, engine.ProtoTCP, engine.ProtoTCP, engine.ProtoUDP), Lo: p, Hi: p, L7: l7})
		}
	}
	return out
}

func (g *Gen) l7() *v1alpha1.L7Rules {
	if g.Chance(0.5) {
		var rs []v1alpha1.HTTPRule
		for range 1 + g.Pick(2) {
			rs = append(rs, v1alpha1.HTTPRule{Method: v1alpha1.HTTPMethod(PickOf(g, "", "GET", "POST")), Path: PickOf(g, "", "/a.*", "/b")})
		}
		return &v1alpha1.L7Rules{HTTP: rs}
	}
	return &v1alpha1.L7Rules{DNS: []v1alpha1.DNSRule{PickOf(g, v1alpha1.DNSRule{MatchPattern: "*.example.com"}, v1alpha1.DNSRule{MatchName: "api.example.com"})}}
}

// Policies returns n random policies with distinct names; some names come
// from g.Collide so that rule IDs collide.
func (g *Gen) Policies(n int) []*engine.Policy {
	var out []*engine.Policy
	for i := range n {
		name := fmt.Sprintf("p%d", i)
		if len(g.Collide) > 0 && g.Chance(0.3) {
			name = PickOf(g, g.Collide...)
		}
		if slices.ContainsFunc(out, func(p *engine.Policy) bool { return p.Origin.Name == name }) {
			name = fmt.Sprintf("p%d", i)
		}
		out = append(out, g.Policy(name))
	}
	return out
}

// IR returns the IR that engine.Build makes of pols: sorted by kind,
// namespace and name, with Build's rule IDs. pols are not changed.
func IR(pols []*engine.Policy) *engine.IR {
	// The compiler assigns rule IDs as Build does (the engine's
	// TestCompilerIncremental checks it), and only through it can an IR
	// be made outside the engine without validated policies.
	c := engine.NewCompiler("", engine.NewMemoryAllocator())
	for _, p := range pols {
		if _, err := c.SetPolicy(p); err != nil {
			panic(fmt.Sprintf("enginetest: %s: %v", p.Origin.Policy(), err))
		}
	}
	return c.IR()
}
