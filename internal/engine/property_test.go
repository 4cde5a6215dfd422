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

// The property tests of the node compiler. Random policy sets and clusters
// come from a seeded generator; every test prints its seeds, and
//
//	go test ./internal/engine -run TestCompileProperty -engine.seed=N
//
// runs just seed N. A failure is shrunk to a minimal set of policies and
// rules that still fails and printed with the flow.

import (
	"cmp"
	"flag"
	"fmt"
	"maps"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/palisade-dev/palisade/api/v1alpha1"
)

var (
	flagSeed  = flag.Uint64("engine.seed", 0, "run the engine property tests with this seed only")
	flagSeeds = flag.Int("engine.seeds", 0, "number of seeds for the engine property tests (0: the default)")
)

// seeds returns the seeds a property test runs: the -engine.seed one, or n
// seeds derived from base.
func seeds(n int, base uint64) []uint64 {
	if *flagSeed != 0 {
		return []uint64{*flagSeed}
	}
	if *flagSeeds > 0 {
		n = *flagSeeds
	}
	out := make([]uint64, n)
	for i := range out {
		out[i] = base + uint64(i)
	}
	return out
}

// testIR makes an IR of policies the way Build does: sorted by kind,
// namespace and name, rule IDs from the hash of each rule's origin,
// probing past 0 and IDs in use. The policies and rules are copied, so
// that the input can be reused.
func testIR(pols []*Policy) *IR {
	ir := &IR{rules: map[RuleID]*Rule{}}
	for _, p := range pols {
		cp := *p
		cp.Rules = make([]*Rule, len(p.Rules))
		for i, r := range p.Rules {
			cr := *r
			cp.Rules[i] = &cr
		}
		ir.Policies = append(ir.Policies, &cp)
	}
	slices.SortFunc(ir.Policies, func(a, b *Policy) int {
		return cmp.Or(cmp.Compare(a.Origin.Kind, b.Origin.Kind), cmp.Compare(a.Origin.Namespace, b.Origin.Namespace), cmp.Compare(a.Origin.Name, b.Origin.Name))
	})
	for _, p := range ir.Policies {
		for _, r := range p.Rules {
			r.ID = ruleHash(r.Origin)
			for r.ID == 0 || ir.rules[r.ID] != nil {
				r.ID++
			}
			ir.rules[r.ID] = r
		}
	}
	return ir
}

// gen generates random clusters, policies and flows.
type gen struct {
	r      *rand.Rand
	nextEP int
	// collide holds policy names whose first ingress rules hash to the
	// same or neighbouring RuleIDs, to exercise ID probing.
	collide []string
}

func newGen(seed uint64) *gen {
	return &gen{r: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))}
}

func (g *gen) pick(n int) int        { return g.r.IntN(n) }
func (g *gen) chance(p float64) bool { return g.r.Float64() < p }

func pickOf[T any](g *gen, xs ...T) T { return xs[g.pick(len(xs))] }

var (
	genNamespaces = []string{"shop", "pay", "dev"}
	genApps       = []string{"web", "api", "db", "dns"}
	genDNS        = map[string][]netip.Addr{
		"api.example.com":   {netip.MustParseAddr("203.0.113.50")},
		"www.example.com":   {netip.MustParseAddr("198.51.100.80"), netip.MustParseAddr("2001:db8::80")},
		"a.b.example.com":   {netip.MustParseAddr("198.51.100.82")},
		"evil.other.org":    {netip.MustParseAddr("203.0.113.66")},
		"pod.example.com":   {netip.MustParseAddr("10.0.1.1")},
		"api.internal.test": {netip.MustParseAddr("198.51.100.10")},
	}
	genWorld = []string{"203.0.113.1", "203.0.113.50", "203.0.113.66", "203.0.113.130", "203.0.113.200",
		"198.51.100.10", "198.51.100.80", "198.51.100.82", "8.8.8.8", "10.0.9.9", "10.1.0.1",
		"2001:db8::80", "2001:db8::1", "2001:db8:1::1", "fd00:10::9:9"}
	genPrefixes = []string{"203.0.113.0/24", "203.0.113.0/25", "203.0.113.128/26", "203.0.113.50/32",
		"198.51.100.0/24", "198.51.100.10/32", "0.0.0.0/0", "10.0.0.0/8", "192.168.0.0/16", "2001:db8::/32", "::/0"}
)

// cluster returns a random cluster: three nodes (one serving the API),
// managed and unmanaged workloads with named ports, DNS answers.
func (g *gen) cluster() *Cluster {
	c := &Cluster{
		Namespaces: map[string]map[string]string{
			"shop": {"team": "shop", "env": "prod"},
			"pay":  {"team": "pay", "env": "prod"},
			"dev":  {"env": "dev"},
		},
		Nodes: []Node{
			{Name: "n1", Labels: map[string]string{"role": "worker", "zone": "a"}, IPs: []netip.Addr{netip.MustParseAddr("192.168.0.1"), netip.MustParseAddr("fd00:192::1")}},
			{Name: "n2", Labels: map[string]string{"role": "worker", "zone": "b"}, IPs: []netip.Addr{netip.MustParseAddr("192.168.0.2")}},
			{Name: "cp", Labels: map[string]string{"role": "control-plane", "zone": "a"}, IPs: []netip.Addr{netip.MustParseAddr("192.168.0.3")}},
		},
		APIServer: []netip.Addr{netip.MustParseAddr("192.168.0.3"), netip.MustParseAddr("198.51.100.10")},
		PodCIDRs:  []netip.Prefix{netip.MustParsePrefix("10.0.0.0/16"), netip.MustParsePrefix("fd00:10::/48")},
		DNS:       map[string][]netip.Addr{},
	}
	for n, a := range genDNS {
		if g.chance(0.8) {
			c.DNS[n] = a
		}
	}
	for range 4 + g.pick(8) {
		c.Endpoints = append(c.Endpoints, g.endpoint())
	}
	return c
}

func (g *gen) endpoint() Endpoint {
	g.nextEP++
	i := g.nextEP
	e := Endpoint{
		Namespace: pickOf(g, genNamespaces...),
		Name:      fmt.Sprintf("pod-%d", i),
		Labels:    map[string]string{"app": pickOf(g, genApps...)},
		IPs:       []netip.Addr{netip.AddrFrom4([4]byte{10, 0, byte(i / 250), byte(1 + i%250)})},
		Node:      pickOf(g, "n1", "n1", "n2", "cp"),
	}
	if g.chance(0.3) {
		e.IPs = append(e.IPs, netip.MustParseAddr(fmt.Sprintf("fd00:10::%x", i)))
	}
	if g.chance(0.5) {
		e.Labels["version"] = pickOf(g, "v1", "v2")
	}
	if g.chance(0.3) {
		e.Labels["pod-template-hash"] = fmt.Sprintf("h%d", g.pick(3))
	}
	if g.chance(0.3) {
		e.ServiceAccount = pickOf(g, "sa-a", "sa-b")
	}
	for _, np := range []NamedPort{{"http", 8080, ProtoTCP}, {"http", 8081, ProtoTCP}, {"dns", 53, ProtoUDP}, {"metrics", 9090, ProtoTCP}} {
		if g.chance(0.3) && !slices.ContainsFunc(e.Ports, func(p NamedPort) bool { return p.Name == np.Name }) {
			e.Ports = append(e.Ports, np)
		}
	}
	e.Unmanaged = g.chance(0.1)
	return e
}

// labelSelector returns a random API selector over workload labels.
func (g *gen) labelSelector(allowReserved bool) *metav1.LabelSelector {
	s := &metav1.LabelSelector{}
	switch g.pick(8) {
	case 0: // {}: every workload (of the namespace)
	case 1:
		s.MatchExpressions = []metav1.LabelSelectorRequirement{{Key: "app", Operator: metav1.LabelSelectorOpIn, Values: []string{pickOf(g, genApps...), pickOf(g, genApps...)}}}
	case 2:
		s.MatchExpressions = []metav1.LabelSelectorRequirement{{Key: "app", Operator: metav1.LabelSelectorOpNotIn, Values: []string{pickOf(g, genApps...)}}}
	case 3:
		s.MatchExpressions = []metav1.LabelSelectorRequirement{{Key: "version", Operator: pickOf(g, metav1.LabelSelectorOpExists, metav1.LabelSelectorOpDoesNotExist)}}
	case 4:
		s.MatchLabels = map[string]string{LabelNamespace: pickOf(g, genNamespaces...)}
		if g.chance(0.5) {
			s.MatchLabels["k8s:app"] = pickOf(g, genApps...)
		}
	case 5:
		s.MatchLabels = map[string]string{LabelNamespaceLabels + "env": pickOf(g, "prod", "dev")}
	case 6:
		if allowReserved {
			s.MatchLabels = map[string]string{"reserved:" + string(pickOf(g, EntityHost, EntityRemoteNode, EntityWorld, EntityKubeAPIServer)): ""}
			break
		}
		fallthrough
	default:
		s.MatchLabels = map[string]string{"app": pickOf(g, genApps...)}
		if g.chance(0.3) {
			s.MatchLabels["version"] = pickOf(g, "v1", "v2")
		}
		if g.chance(0.2) {
			s.MatchLabels[LabelServiceAccount] = pickOf(g, "sa-a", "sa-b")
		}
	}
	return s
}

func (g *gen) selector(ns string, allowReserved bool) Selector {
	s, err := NewSelector(g.labelSelector(allowReserved), ns)
	if err != nil {
		panic(err)
	}
	return s
}

// policy returns a random policy named name, with rules as Build would
// normalize them (IDs are given by testIR).
func (g *gen) policy(name string) *Policy {
	p := &Policy{Audit: g.chance(0.2)}
	var ns string
	switch k := g.pick(5); {
	case strings.HasPrefix(name, "c"): // a colliding name: see collidingNames
		ns = "shop"
		p.Origin = Origin{Kind: "NetworkPolicy", Namespace: ns, Name: name}
		s, err := subjectSelector(g.labelSelector(false), ns)
		if err != nil {
			panic(err)
		}
		p.Subject.Endpoints = &s
	case k == 0:
		p.Origin = Origin{Kind: "ClusterNetworkPolicy", Name: name}
		if g.chance(0.4) {
			s, err := nodeSelector(&metav1.LabelSelector{MatchLabels: map[string]string{"role": pickOf(g, "worker", "control-plane")}})
			if g.chance(0.3) {
				s, err = nodeSelector(&metav1.LabelSelector{})
			}
			if err != nil {
				panic(err)
			}
			p.Subject.Nodes = &s
		} else {
			s, err := subjectSelector(g.labelSelector(false), "")
			if err != nil {
				panic(err)
			}
			p.Subject.Endpoints = &s
		}
	case k == 1:
		p.Origin = Origin{Kind: "ClusterNetworkPolicy", Name: name}
		s, err := subjectSelector(g.labelSelector(false), "")
		if err != nil {
			panic(err)
		}
		p.Subject.Endpoints = &s
	default:
		ns = pickOf(g, genNamespaces...)
		p.Origin = Origin{Kind: "NetworkPolicy", Namespace: ns, Name: name}
		s, err := subjectSelector(g.labelSelector(false), ns)
		if err != nil {
			panic(err)
		}
		p.Subject.Endpoints = &s
	}
	var has [2]bool
	for _, sec := range []struct {
		name   string
		dir    Direction
		action Action
	}{{"ingress", Ingress, Allow}, {"ingressDeny", Ingress, Deny}, {"egress", Egress, Allow}, {"egressDeny", Egress, Deny}} {
		n := pickOf(g, 0, 0, 1, 1, 2, 3)
		if sec.action == Deny {
			n = pickOf(g, 0, 0, 0, 1)
		}
		if n > 0 {
			has[sec.dir] = true
		}
		for i := range n {
			r := g.rule(sec.dir, sec.action, ns)
			if r == nil {
				continue // "{}": isolates, allows nothing
			}
			r.Origin = Origin{Kind: p.Origin.Kind, Namespace: ns, Name: name, Path: fmt.Sprintf("spec.%s[%d]", sec.name, i)}
			r.Audit, r.Subject = p.Audit, p.Subject
			p.Rules = append(p.Rules, r)
		}
	}
	if strings.HasPrefix(name, "c") && !slices.ContainsFunc(p.Rules, func(r *Rule) bool { return r.Origin.Path == "spec.ingress[0]" }) {
		// Make the colliding rule exist, so that IDs really collide.
		r := &Rule{Direction: Ingress, Action: pickOf(g, Allow, Deny), Peer: Peer{Any: true}, L4: g.l4(Allow),
			Origin: Origin{Kind: p.Origin.Kind, Namespace: ns, Name: name, Path: "spec.ingress[0]"}, Audit: p.Audit, Subject: p.Subject}
		if r.Action == Deny {
			r.L4 = []L4{{Proto: ProtoTCP, Lo: 80, Hi: 80}}
		}
		p.Rules = append([]*Rule{r}, p.Rules...)
		has[Ingress] = true
	}
	p.DefaultDeny = has
	for d := range p.DefaultDeny {
		if g.chance(0.15) {
			p.DefaultDeny[d] = g.chance(0.5)
		}
	}
	return p
}

// rule returns a random rule, nil for an empty one.
func (g *gen) rule(dir Direction, action Action, ns string) *Rule {
	r := &Rule{Direction: dir, Action: action}
	named := false
	switch g.pick(9) {
	case 0: // no peer field
	case 1:
		named = true // a present but empty peer field: no peer
	case 2, 3:
		named = true
		for range 1 + g.pick(2) {
			r.Peer.Endpoints = append(r.Peer.Endpoints, g.selector(ns, true))
		}
	case 4:
		named = true
		for range 1 + g.pick(2) {
			r.Peer.Entities = append(r.Peer.Entities, pickOf(g, Entities...))
		}
	case 5, 6:
		named = true
		for range 1 + g.pick(2) {
			pfx := netip.MustParsePrefix(pickOf(g, genPrefixes...))
			cr := CIDRRule{Prefix: pfx}
			if g.chance(0.5) {
				for _, e := range genPrefixes {
					ep := netip.MustParsePrefix(e)
					if ep != pfx && within(ep, pfx) && g.chance(0.5) {
						cr.Except = append(cr.Except, ep)
					}
				}
			}
			r.Peer.CIDRs = append(r.Peer.CIDRs, cr)
		}
	case 7:
		named = true
		if dir == Egress && action == Allow {
			r.Peer.FQDNs = append(r.Peer.FQDNs, pickOf(g, FQDN{Name: "api.example.com"}, FQDN{Pattern: "*.example.com"},
				FQDN{Pattern: "*"}, FQDN{Name: "pod.example.com"}, FQDN{Pattern: "api.*"}, FQDN{Name: "API.internal.test."}))
		} else {
			r.Peer.Entities = []Entity{EntityCluster}
		}
	case 8: // a mix
		named = true
		r.Peer.Endpoints = []Selector{g.selector(ns, false)}
		r.Peer.Entities = []Entity{pickOf(g, Entities...)}
		r.Peer.CIDRs = []CIDRRule{{Prefix: netip.MustParsePrefix(pickOf(g, genPrefixes...))}}
	}
	r.Peer.Any = !named
	switch {
	case !named && g.chance(0.15):
		return nil // no peer, no ports: Cilium's "{}"
	case named && g.chance(0.3):
		return r // every port
	}
	r.L4 = g.l4(action)
	return r
}

// l4 returns random ports as buildL4 normalizes them.
func (g *gen) l4(action Action) []L4 {
	var out []L4
	any3 := func(l L4) {
		for _, p := range []Proto{ProtoTCP, ProtoUDP, ProtoSCTP} {
			l.Proto = p
			out = append(out, l)
		}
	}
	for range 1 + g.pick(2) {
		var l7 *v1alpha1.L7Rules
		if action == Allow && g.chance(0.35) {
			l7 = g.l7()
		}
		switch g.pick(8) {
		case 0:
			any3(L4{Lo: 0, Hi: 65535, L7: l7}) // toPorts without ports
		case 1:
			p := uint16(pickOf(g, 53, 80, 8080))
			any3(L4{Lo: p, Hi: p, L7: l7})
		case 2:
			lo := uint16(pickOf(g, 1, 80, 1000, 1024, 8000))
			out = append(out, L4{Proto: pickOf(g, ProtoTCP, ProtoUDP), Lo: lo, Hi: lo + uint16(pickOf(g, 0, 1, 100, 1000, 65535-int(lo))), L7: l7})
		case 3:
			out = append(out, L4{Proto: pickOf(g, ProtoTCP, ProtoUDP, ProtoSCTP), Lo: 0, Hi: 65535, L7: l7})
		case 4:
			n := pickOf(g, "http", "dns", "metrics", "nope")
			p := ProtoTCP
			if n == "dns" {
				p = ProtoUDP
			}
			out = append(out, L4{Proto: p, Name: n, L7: l7})
		case 5:
			typ := uint16(pickOf(g, 0, 8, 128))
			out = append(out, L4{Proto: pickOf(g, ProtoICMP, ProtoICMPv6), Lo: typ, Hi: typ})
		default:
			p := uint16(pickOf(g, 53, 80, 443, 8080, 8081, 9090))
			out = append(out, L4{Proto: pickOf(g, ProtoTCP, ProtoTCP, ProtoUDP), Lo: p, Hi: p, L7: l7})
		}
	}
	return out
}

func (g *gen) l7() *v1alpha1.L7Rules {
	if g.chance(0.5) {
		var rs []v1alpha1.HTTPRule
		for range 1 + g.pick(2) {
			rs = append(rs, v1alpha1.HTTPRule{Method: v1alpha1.HTTPMethod(pickOf(g, "", "GET", "POST")), Path: pickOf(g, "", "/a.*", "/b")})
		}
		return &v1alpha1.L7Rules{HTTP: rs}
	}
	return &v1alpha1.L7Rules{DNS: []v1alpha1.DNSRule{pickOf(g, v1alpha1.DNSRule{MatchPattern: "*.example.com"}, v1alpha1.DNSRule{MatchName: "api.example.com"})}}
}

// policies returns n random policies with distinct names; some names come
// from g.collide so that rule IDs collide.
func (g *gen) policies(n int) []*Policy {
	var out []*Policy
	for i := range n {
		name := fmt.Sprintf("p%d", i)
		if len(g.collide) > 0 && g.chance(0.3) {
			name = pickOf(g, g.collide...)
		}
		if slices.ContainsFunc(out, func(p *Policy) bool { return p.Origin.Name == name }) {
			name = fmt.Sprintf("p%d", i)
		}
		out = append(out, g.policy(name))
	}
	return out
}

// flowPool is what random flows are made of: addresses by family (pod
// addresses also on their own, so that flows meet enforced endpoints
// often) and the ports the policies name.
type flowPool struct {
	all, pods [2][]netip.Addr // [0] IPv4, [1] IPv6
	ports     []uint16
}

func newFlowPool(c *Cluster, ir *IR) *flowPool {
	fp := &flowPool{}
	fam := func(a netip.Addr) int {
		if a.Is4() {
			return 0
		}
		return 1
	}
	for _, e := range c.Endpoints {
		for _, a := range e.IPs {
			fp.all[fam(a)] = append(fp.all[fam(a)], a)
			fp.pods[fam(a)] = append(fp.pods[fam(a)], a)
		}
	}
	for _, n := range c.Nodes {
		for _, a := range n.IPs {
			fp.all[fam(a)] = append(fp.all[fam(a)], a)
		}
	}
	for _, w := range genWorld {
		a := netip.MustParseAddr(w)
		fp.all[fam(a)] = append(fp.all[fam(a)], a)
	}
	for _, r := range ir.Rules() {
		for _, l := range r.L4 {
			fp.ports = append(fp.ports, l.Lo, l.Hi)
			if l.Lo > 0 {
				fp.ports = append(fp.ports, l.Lo-1)
			}
			if l.Hi < 65535 {
				fp.ports = append(fp.ports, l.Hi+1)
			}
		}
	}
	return fp
}

// flow returns a random flow between addresses of the pool.
func (g *gen) flow(fp *flowPool) Flow {
	fam := 0
	if g.chance(0.15) && len(fp.pods[1]) > 0 {
		fam = 1
	}
	addr := func() netip.Addr {
		if g.chance(0.5) && len(fp.pods[fam]) > 0 {
			return pickOf(g, fp.pods[fam]...)
		}
		return pickOf(g, fp.all[fam]...)
	}
	f := Flow{Src: addr(), Dst: addr()}
	switch g.pick(10) {
	case 0:
		f.Proto = ProtoICMP
		if f.Src.Is6() {
			f.Proto = ProtoICMPv6
		}
		f.Port = uint16(pickOf(g, 0, 8, 128, 3))
	case 1:
		f.Proto = ProtoSCTP
	case 2, 3:
		f.Proto = ProtoUDP
	default:
		f.Proto = ProtoTCP
	}
	if f.Proto != ProtoICMP && f.Proto != ProtoICMPv6 {
		f.Port = uint16(pickOf(g, 0, 1, 53, 80, 443, 1000, 8080, 8081, 9090, 65535, g.pick(65536)))
		if len(fp.ports) > 0 && g.chance(0.6) {
			f.Port = pickOf(g, fp.ports...)
		}
	}
	f.Reply = g.chance(0.2)
	if !f.Reply && g.chance(0.5) {
		switch f.Proto {
		case ProtoTCP:
			f.Request = &Request{HTTP: &HTTPRequest{Method: pickOf(g, "GET", "POST", "DELETE"), Path: pickOf(g, "/a", "/abc", "/b", "/c")}}
		case ProtoUDP:
			f.Request = &Request{DNS: &DNSRequest{Name: pickOf(g, "api.example.com", "x.example.com", "evil.other.org")}}
		}
	}
	return f
}

// compileAll compiles ir for every node of c with identities from ids.
func compileAll(ir *IR, c *Cluster, ids *MemoryAllocator) (map[string]*MapState, error) {
	if err := AllocateIdentities(c, ids); err != nil {
		return nil, err
	}
	out := map[string]*MapState{}
	for _, n := range c.Nodes {
		m, err := Compile(ir, c, n.Name, ids)
		if err != nil {
			return nil, fmt.Errorf("compile for node %s: %w", n.Name, err)
		}
		out[n.Name] = m
	}
	return out, nil
}

// shrink reduces pols to a minimal set (policies, then rules, then L4
// entries) for which fails still holds.
func shrink(pols []*Policy, fails func([]*Policy) bool) []*Policy {
	for i := 0; i < len(pols); {
		cand := slices.Delete(slices.Clone(pols), i, i+1)
		if fails(cand) {
			pols = cand
			continue
		}
		i++
	}
	for pi := range pols {
		for ri := 0; ri < len(pols[pi].Rules); {
			p := *pols[pi]
			p.Rules = slices.Delete(slices.Clone(p.Rules), ri, ri+1)
			cand := slices.Clone(pols)
			cand[pi] = &p
			if fails(cand) {
				pols = cand
				continue
			}
			ri++
		}
		for ri := range pols[pi].Rules {
			for li := 0; len(pols[pi].Rules[ri].L4) > 1 && li < len(pols[pi].Rules[ri].L4); {
				r := *pols[pi].Rules[ri]
				r.L4 = slices.Delete(slices.Clone(r.L4), li, li+1)
				p := *pols[pi]
				p.Rules = slices.Clone(p.Rules)
				p.Rules[ri] = &r
				cand := slices.Clone(pols)
				cand[pi] = &p
				if fails(cand) {
					pols = cand
					continue
				}
				li++
			}
		}
	}
	return pols
}

// formatPolicies renders policies for a reproducer.
func formatPolicies(ir *IR) string {
	var b strings.Builder
	for _, p := range ir.Policies {
		subj := ""
		if p.Subject.Nodes != nil {
			subj = "nodes " + p.Subject.Nodes.String()
		} else {
			subj = "endpoints " + p.Subject.Endpoints.String()
		}
		fmt.Fprintf(&b, "%s audit=%v defaultDeny(ingress=%v egress=%v) subject: %s\n", p.Origin.Policy(), p.Audit, p.DefaultDeny[Ingress], p.DefaultDeny[Egress], subj)
		for _, r := range p.Rules {
			fmt.Fprintf(&b, "  %s id=%d %s %s peer=%s ports=%s\n", r.Origin.Path, r.ID, r.Direction, r.Action, formatPeer(r.Peer), formatL4(r.L4))
		}
	}
	return b.String()
}

func formatPeer(p Peer) string {
	if p.Any {
		return "any"
	}
	var parts []string
	for _, s := range p.Endpoints {
		parts = append(parts, "sel{"+s.String()+"}")
	}
	for _, e := range p.Entities {
		parts = append(parts, "entity:"+string(e))
	}
	for _, c := range p.CIDRs {
		s := "cidr:" + c.Prefix.String()
		for _, e := range c.Except {
			s += "!" + e.String()
		}
		parts = append(parts, s)
	}
	for _, f := range p.FQDNs {
		parts = append(parts, "fqdn:"+f.Name+f.Pattern)
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ",")
}

func formatL4(ls []L4) string {
	if ls == nil {
		return "all"
	}
	var parts []string
	for _, l := range ls {
		s := fmt.Sprintf("%s/%d-%d", l.Proto, l.Lo, l.Hi)
		if l.Name != "" {
			s = fmt.Sprintf("%s/%s", l.Proto, l.Name)
		}
		if l.L7 != nil {
			s += fmt.Sprintf("+l7%+v", *l.L7)
		}
		parts = append(parts, s)
	}
	return strings.Join(parts, ",")
}

func formatFlow(f Flow) string {
	s := fmt.Sprintf("%s -> %s:%d/%s", f.Src, f.Dst, f.Port, f.Proto)
	if f.Reply {
		s += " reply"
	}
	if f.Request != nil {
		switch {
		case f.Request.HTTP != nil:
			s += fmt.Sprintf(" http %s %s", f.Request.HTTP.Method, f.Request.HTTP.Path)
		case f.Request.DNS != nil:
			s += " dns " + f.Request.DNS.Name
		}
	}
	return s
}

func formatCluster(c *Cluster, ids *MemoryAllocator) string {
	var b strings.Builder
	for _, e := range c.Endpoints {
		id := Identity(0)
		if !e.Unmanaged {
			id, _ = ids.Lookup(c.WorkloadLabels(&e))
		}
		fmt.Fprintf(&b, "  %s ips=%v node=%s unmanaged=%v identity=%d labels=%v sa=%q ports=%v\n", e.ID(), e.IPs, e.Node, e.Unmanaged, id, e.Labels, e.ServiceAccount, e.Ports)
	}
	fmt.Fprintf(&b, "  dns=%v\n", c.DNS)
	return b.String()
}

// TestCompileProperty is the property test of the node compiler: for
// random policy sets, clusters and flows, looking the flow up in the
// compiled state of the nodes enforcing it gives the verdict, reason and
// deciding rule of the reference evaluator, per side.
func TestCompileProperty(t *testing.T) {
	const flowsPerSeed = 80
	total, sides := 0, 0
	tally := map[string]int{} // verdict/egress reason/ingress reason → flows
	collide := collidingNames(t)
	for _, seed := range seeds(400, 1) {
		g := newGen(seed)
		g.collide = collide
		c := g.cluster()
		if err := c.Index(); err != nil {
			t.Fatalf("seed %d: cluster: %v", seed, err)
		}
		pols := g.policies(1 + g.pick(8))
		ids := NewMemoryAllocator()
		ir := testIR(pols)
		states, err := compileAll(ir, c, ids)
		if err != nil {
			t.Fatalf("seed %d: %v", seed, err)
		}
		fp := newFlowPool(c, ir)
		for range flowsPerSeed {
			f := g.flow(fp)
			total++
			res := Evaluate(ir, c, f)
			tally[res.Verdict.String()+"/"+res.Egress.Reason.String()+"/"+res.Ingress.Reason.String()]++
			diffs, _ := compareFlow(ir, c, states, f)
			sides += 2
			if len(diffs) == 0 {
				continue
			}
			fails := func(ps []*Policy) bool {
				ir := testIR(ps)
				st, err := compileAll(ir, c, ids)
				if err != nil {
					return true
				}
				d, _ := compareFlow(ir, c, st, f)
				return len(d) > 0
			}
			min := testIR(shrink(pols, fails))
			st, _ := compileAll(min, c, ids)
			d, _ := compareFlow(min, c, st, f)
			t.Fatalf("seed %d (rerun: go test ./internal/engine -run TestCompileProperty -engine.seed=%d)\nflow: %s\n%s\nminimal policies:\n%scluster:\n%s",
				seed, seed, formatFlow(f), strings.Join(d, "\n"), formatPolicies(min), formatCluster(c, ids))
		}
	}
	t.Logf("%d flows (%d sides) agree with the reference evaluator", total, sides)
	keys := slices.Sorted(maps.Keys(tally))
	for _, k := range keys {
		t.Logf("  %-45s %d", k, tally[k])
	}
}

// collidingNames returns policy names whose spec.ingress[0] rules of
// NetworkPolicy shop/<name> hash to the same RuleID or neighbouring ones,
// so that the tests exercise Build's probing.
func collidingNames(t testing.TB) []string {
	collideOnce.Do(func() { collideNames = findColliding() })
	if len(collideNames) < 2 {
		t.Fatal("no colliding rule names found")
	}
	return collideNames
}

var (
	collideOnce  sync.Once
	collideNames []string
)

func findColliding() []string {
	seen := map[RuleID]string{}
	var out []string
	exact := 0
	r := rand.New(rand.NewPCG(1, 2)) // fixed: the names are part of the test
	for i := 0; exact < 3 && i < 1<<21; i++ {
		name := fmt.Sprintf("c%08x", r.Uint32())
		h := ruleHash(Origin{Kind: "NetworkPolicy", Namespace: "shop", Name: name, Path: "spec.ingress[0]"})
		for _, d := range []RuleID{0, 1} {
			if o, ok := seen[h-d]; ok && o != name && !slices.Contains(out, o) && !slices.Contains(out, name) {
				if d == 0 {
					exact++
				}
				out = append(out, o, name)
			}
		}
		seen[h] = name
	}
	return out
}

// shuffled returns a copy of ir and c with everything whose order carries
// no meaning shuffled: policies, the parts of every peer, CIDR exceptions,
// L4 entries, endpoints, nodes, named ports, DNS answers.
func shuffled(g *gen, ir *IR, c *Cluster) (*IR, *Cluster) {
	out := &IR{rules: map[RuleID]*Rule{}}
	for _, p := range ir.Policies {
		cp := *p
		cp.Rules = make([]*Rule, len(p.Rules))
		for i, r := range p.Rules {
			cr := *r
			cr.Peer.Endpoints = slices.Clone(r.Peer.Endpoints)
			cr.Peer.Entities = slices.Clone(r.Peer.Entities)
			cr.Peer.FQDNs = slices.Clone(r.Peer.FQDNs)
			cr.Peer.CIDRs = slices.Clone(r.Peer.CIDRs)
			for j := range cr.Peer.CIDRs {
				cr.Peer.CIDRs[j].Except = slices.Clone(cr.Peer.CIDRs[j].Except)
				g.r.Shuffle(len(cr.Peer.CIDRs[j].Except), func(a, b int) {
					cr.Peer.CIDRs[j].Except[a], cr.Peer.CIDRs[j].Except[b] = cr.Peer.CIDRs[j].Except[b], cr.Peer.CIDRs[j].Except[a]
				})
			}
			if r.L4 != nil {
				cr.L4 = slices.Clone(r.L4)
			}
			shuffle(g, cr.Peer.Endpoints)
			shuffle(g, cr.Peer.Entities)
			shuffle(g, cr.Peer.FQDNs)
			shuffle(g, cr.Peer.CIDRs)
			shuffle(g, cr.L4)
			cp.Rules[i] = &cr
			out.rules[cr.ID] = &cr
		}
		out.Policies = append(out.Policies, &cp)
	}
	shuffle(g, out.Policies)
	oc := copyCluster(c)
	shuffle(g, oc.Endpoints)
	shuffle(g, oc.Nodes)
	shuffle(g, oc.APIServer)
	shuffle(g, oc.PodCIDRs)
	for i := range oc.Endpoints {
		shuffle(g, oc.Endpoints[i].Ports)
	}
	for _, a := range oc.DNS {
		shuffle(g, a)
	}
	return out, oc
}

func shuffle[T any](g *gen, xs []T) {
	g.r.Shuffle(len(xs), func(i, j int) { xs[i], xs[j] = xs[j], xs[i] })
}

// TestCompileDeterministic checks that the map state depends only on the
// input, not on the order of policies, peers, ports, endpoints and nodes,
// nor on the order in which a fresh allocator saw the workloads.
func TestCompileDeterministic(t *testing.T) {
	collide := collidingNames(t)
	for _, seed := range seeds(60, 5000) {
		g := newGen(seed)
		g.collide = collide
		c := g.cluster()
		ir := testIR(g.policies(2 + g.pick(8)))
		base, err := compileAll(ir, c, NewMemoryAllocator())
		if err != nil {
			t.Fatalf("seed %d: %v", seed, err)
		}
		for i := range 3 {
			sir, sc := shuffled(g, ir, c)
			got, err := compileAll(sir, sc, NewMemoryAllocator())
			if err != nil {
				t.Fatalf("seed %d: %v", seed, err)
			}
			for node, m := range base {
				if ok, diff := statesEqual(m, got[node]); !ok {
					t.Fatalf("seed %d, shuffle %d, node %s: the state depends on input order:\n%s", seed, i, node, diff)
				}
			}
		}
	}
}

// encodeDelta renders a delta canonically, for comparison.
func encodeDelta(d *Delta) string {
	w := &MapState{IPCache: d.IPCache, Endpoints: d.Endpoints, Policy: d.Policy, L7: d.L7}
	var b strings.Builder
	b.Write(w.Encode())
	for _, k := range slices.SortedFunc(slices.Values(d.IPCacheDeleted), comparePrefix) {
		fmt.Fprintf(&b, "-ipcache %s\n", k)
	}
	for _, k := range slices.SortedFunc(slices.Values(d.EndpointsDeleted), netip.Addr.Compare) {
		fmt.Fprintf(&b, "-endpoint %s\n", k)
	}
	for _, k := range slices.SortedFunc(slices.Values(d.PolicyDeleted), comparePolicyKey) {
		fmt.Fprintf(&b, "-policy %+v\n", k)
	}
	for _, k := range slices.Sorted(slices.Values(d.L7Deleted)) {
		fmt.Fprintf(&b, "-l7 %d\n", k)
	}
	return b.String()
}

// mutate returns a changed copy of p: a rule added or removed, audit mode
// or default deny toggled. The policy keeps its kind, namespace and name.
func (g *gen) mutate(p *Policy) *Policy {
	np := *p
	np.Rules = slices.Clone(p.Rules)
	switch g.pick(4) {
	case 0:
		np.Audit = !np.Audit
		for i, r := range np.Rules {
			cr := *r
			cr.Audit = np.Audit
			np.Rules[i] = &cr
		}
	case 1:
		if len(np.Rules) > 0 {
			i := g.pick(len(np.Rules))
			np.Rules = slices.Delete(np.Rules, i, i+1)
			break
		}
		fallthrough
	case 2:
		sec := pickOf(g, "ingress", "egress", "ingressDeny", "egressDeny")
		dir, action := Ingress, Allow
		if strings.HasPrefix(sec, "egress") {
			dir = Egress
		}
		if strings.HasSuffix(sec, "Deny") {
			action = Deny
		}
		r := g.rule(dir, action, np.Origin.Namespace)
		if r == nil {
			np.DefaultDeny[dir] = true
			break
		}
		n := 0
		for _, o := range np.Rules {
			if strings.HasPrefix(o.Origin.Path, "spec."+sec+"[") {
				n++
			}
		}
		r.Origin = Origin{Kind: np.Origin.Kind, Namespace: np.Origin.Namespace, Name: np.Origin.Name, Path: fmt.Sprintf("spec.%s[%d]", sec, 10+n+g.pick(5))}
		if slices.ContainsFunc(np.Rules, func(o *Rule) bool { return o.Origin.Path == r.Origin.Path }) {
			break
		}
		r.Audit, r.Subject = np.Audit, np.Subject
		np.Rules = append(np.Rules, r)
	default:
		d := Direction(g.pick(2))
		np.DefaultDeny[d] = !np.DefaultDeny[d]
	}
	return &np
}

// mutateCluster returns a changed copy of c: a workload added, removed,
// relabelled (a new identity), moved to another node, with other named
// ports, or other DNS answers.
func (g *gen) mutateCluster(c *Cluster) (*Cluster, string) {
	nc := copyCluster(c)
	switch k := g.pick(6); {
	case k == 0 || len(nc.Endpoints) == 0:
		e := g.endpoint()
		nc.Endpoints = append(nc.Endpoints, e)
		return nc, "add endpoint " + e.ID()
	case k == 1:
		i := g.pick(len(nc.Endpoints))
		id := nc.Endpoints[i].ID()
		nc.Endpoints = slices.Delete(nc.Endpoints, i, i+1)
		return nc, "remove endpoint " + id
	case k == 2:
		e := &nc.Endpoints[g.pick(len(nc.Endpoints))]
		e.Labels["app"] = pickOf(g, genApps...)
		if g.chance(0.5) {
			e.Labels["rollout"] = fmt.Sprint(g.pick(100))
		}
		return nc, "relabel endpoint " + e.ID()
	case k == 3:
		e := &nc.Endpoints[g.pick(len(nc.Endpoints))]
		e.Node = pickOf(g, "n1", "n2", "cp")
		return nc, "move endpoint " + e.ID() + " to " + e.Node
	case k == 4:
		e := &nc.Endpoints[g.pick(len(nc.Endpoints))]
		e.Ports = nil
		if g.chance(0.7) {
			e.Ports = []NamedPort{{Name: pickOf(g, "http", "metrics", "dns"), Port: uint16(pickOf(g, 8080, 8082, 9090)), Protocol: ProtoTCP}}
		}
		return nc, "ports of endpoint " + e.ID()
	default:
		n := pickOf(g, slices.Sorted(maps.Keys(genDNS))...)
		if _, ok := nc.DNS[n]; ok && g.chance(0.5) {
			delete(nc.DNS, n)
		} else {
			nc.DNS[n] = append(slices.Clone(genDNS[n]), netip.AddrFrom4([4]byte{203, 0, 113, byte(100 + g.pick(50))}))
		}
		return nc, "dns " + n
	}
}

// TestCompilerIncremental applies random changes to an incremental
// Compiler: policies added, changed and removed, workloads and identities
// added, removed and changed, DNS answers changed. After each, its state
// must equal a from-scratch Compile of the same input, and the Delta it
// returned must be exactly the difference between the old and the new
// state (nothing missing, nothing that did not change).
func TestCompilerIncremental(t *testing.T) {
	collide := collidingNames(t)
	changes := 0
	for _, seed := range seeds(60, 9000) {
		g := newGen(seed)
		g.collide = collide
		c := g.cluster()
		ids := NewMemoryAllocator()
		node := pickOf(g, "n1", "n2", "cp")
		comp := NewCompiler(node, ids)
		pols := map[policyKey]*Policy{}
		var log []string
		step := func(what string, fn func() (*Delta, error)) {
			changes++
			log = append(log, what)
			old := comp.State().Clone()
			d, err := fn()
			if err != nil {
				t.Fatalf("seed %d: %s: %v", seed, what, err)
			}
			list := slices.Collect(maps.Values(pols))
			fresh, err := Compile(testIR(list), c, node, ids)
			if err != nil {
				t.Fatalf("seed %d: %s: compile: %v", seed, what, err)
			}
			if ok, diff := statesEqual(fresh, comp.State()); !ok {
				t.Fatalf("seed %d (-engine.seed=%d), node %s, after:\n  %s\nincremental state differs from a full compile (- full, + incremental):\n%s\npolicies:\n%s",
					seed, seed, node, strings.Join(log, "\n  "), diff, formatPolicies(testIR(list)))
			}
			if got, want := encodeDelta(d), encodeDelta(Diff(old, comp.State())); got != want {
				t.Fatalf("seed %d (-engine.seed=%d), node %s, after:\n  %s\ndelta is not the difference of the states:\ngot:\n%s\nwant:\n%s",
					seed, seed, node, strings.Join(log, "\n  "), got, want)
			}
			applied := old.Clone()
			d.Apply(applied)
			if ok, diff := statesEqual(applied, comp.State()); !ok {
				t.Fatalf("seed %d: %s: applying the delta does not give the new state:\n%s", seed, what, diff)
			}
		}
		if err := AllocateIdentities(c, ids); err != nil {
			t.Fatal(err)
		}
		step("set cluster", func() (*Delta, error) { return comp.SetCluster(c) })
		next := 0
		for range 30 {
			switch k := g.pick(10); {
			case k < 4 || len(pols) == 0:
				var p *Policy
				if len(g.collide) > 0 && g.chance(0.3) {
					p = g.policy(pickOf(g, g.collide...))
				} else {
					next++
					p = g.policy(fmt.Sprintf("q%d", next))
				}
				key := policyKey{p.Origin.Kind, p.Origin.Namespace, p.Origin.Name}
				pols[key] = p
				step("set "+p.Origin.Policy(), func() (*Delta, error) { return comp.SetPolicy(p) })
			case k < 6:
				keys := slices.SortedFunc(maps.Keys(pols), policyKey.compare)
				key := pickOf(g, keys...)
				p := g.mutate(pols[key])
				pols[key] = p
				step("change "+p.Origin.Policy(), func() (*Delta, error) { return comp.SetPolicy(p) })
			case k < 7:
				keys := slices.SortedFunc(maps.Keys(pols), policyKey.compare)
				key := pickOf(g, keys...)
				delete(pols, key)
				step("delete "+key.kind+" "+key.namespace+"/"+key.name, func() (*Delta, error) {
					return comp.DeletePolicy(key.kind, key.namespace, key.name)
				})
			default:
				nc, what := g.mutateCluster(c)
				if err := nc.Index(); err != nil {
					continue // e.g. an address taken twice: not a valid cluster
				}
				if err := AllocateIdentities(nc, ids); err != nil {
					t.Fatal(err)
				}
				c = nc
				step(what, func() (*Delta, error) { return comp.SetCluster(nc) })
			}
		}
		// The rule IDs the compiler uses are Build's.
		want := testIR(slices.Collect(maps.Values(pols)))
		got := comp.IR()
		for _, r := range want.Rules() {
			if gr, ok := got.Rule(r.ID); !ok || gr.Origin != r.Origin {
				t.Fatalf("seed %d: rule %s %s: compiler has no rule %d", seed, r.Origin.Policy(), r.Origin.Path, r.ID)
			}
		}
	}
	t.Logf("%d incremental changes match full compiles", changes)
}
