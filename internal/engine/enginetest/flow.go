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

package enginetest

import (
	"maps"
	"net/netip"
	"slices"

	"github.com/palisade-dev/palisade/internal/engine"
)

// FlowPool is what random flows are made of: addresses by family (pod
// addresses and DNS answers also on their own, so that flows meet enforced
// endpoints and toFQDNs rules often) and the ports the policies name, with
// their neighbours.
type FlowPool struct {
	All, Pods, Answers [2][]netip.Addr // [0] IPv4, [1] IPv6
	Ports              []uint16
}

// NewFlowPool collects the addresses of c's workloads and nodes, World,
// and the ports of ir's rules.
func NewFlowPool(c *engine.Cluster, ir *engine.IR) *FlowPool {
	fp := &FlowPool{}
	fam := func(a netip.Addr) int {
		if a.Is4() {
			return 0
		}
		return 1
	}
	for _, e := range c.Endpoints {
		for _, a := range e.IPs {
			fp.All[fam(a)] = append(fp.All[fam(a)], a)
			fp.Pods[fam(a)] = append(fp.Pods[fam(a)], a)
		}
	}
	for _, n := range c.Nodes {
		for _, a := range n.IPs {
			fp.All[fam(a)] = append(fp.All[fam(a)], a)
		}
	}
	for _, name := range slices.Sorted(maps.Keys(c.DNS)) {
		for _, a := range c.DNS[name] {
			fp.Answers[fam(a)] = append(fp.Answers[fam(a)], a)
		}
	}
	for _, w := range World {
		a := netip.MustParseAddr(w)
		fp.All[fam(a)] = append(fp.All[fam(a)], a)
	}
	for _, r := range ir.Rules() {
		for _, l := range r.L4 {
			fp.Ports = append(fp.Ports, l.Lo, l.Hi)
			if l.Lo > 0 {
				fp.Ports = append(fp.Ports, l.Lo-1)
			}
			if l.Hi < 65535 {
				fp.Ports = append(fp.Ports, l.Hi+1)
			}
		}
	}
	return fp
}

// Flow returns a random flow between addresses of the pool, of one family:
// TCP, UDP, SCTP, or ICMP (ICMPv6 for IPv6) with a type as Port; a fifth of
// them replies, half of the others with an HTTP or DNS request.
func (g *Gen) Flow(fp *FlowPool) engine.Flow {
	fam := 0
	if g.Chance(0.15) && len(fp.Pods[1]) > 0 {
		fam = 1
	}
	addr := func() netip.Addr {
		if g.Chance(0.5) && len(fp.Pods[fam]) > 0 {
			return PickOf(g, fp.Pods[fam]...)
		}
		return PickOf(g, fp.All[fam]...)
	}
	f := engine.Flow{Src: addr(), Dst: addr()}
	if g.Chance(0.25) && len(fp.Answers[fam]) > 0 {
		f.Dst = PickOf(g, fp.Answers[fam]...) // egress to a name's address
		if len(fp.Pods[fam]) > 0 {
			f.Src = PickOf(g, fp.Pods[fam]...)
		}
	}
	switch g.Pick(10) {
	case 0:
		f.Proto = engine.ProtoICMP
		if f.Src.Is6() {
			f.Proto = engine.ProtoICMPv6
		}
		f.Port = uint16(PickOf(g, 0, 8, 128, 3))
	case 1:
		f.Proto = engine.ProtoSCTP
	case 2, 3:
		f.Proto = engine.ProtoUDP
	default:
		f.Proto = engine.ProtoTCP
	}
	if f.Proto != engine.ProtoICMP && f.Proto != engine.ProtoICMPv6 {
		f.Port = uint16(PickOf(g, 0, 1, 53, 80, 443, 1000, 8080, 8081, 9090, 65535, g.Pick(65536)))
		if len(fp.Ports) > 0 && g.Chance(0.6) {
			f.Port = PickOf(g, fp.Ports...)
		}
	}
	f.Reply = g.Chance(0.2)
	if !f.Reply && g.Chance(0.5) {
		switch f.Proto {
		case engine.ProtoTCP:
			f.Request = &engine.Request{HTTP: &engine.HTTPRequest{Method: PickOf(g, "GET", "POST", "DELETE"), Path: PickOf(g, "/a", "/abc", "/b", "/c")}}
		case engine.ProtoUDP:
			f.Request = &engine.Request{DNS: &engine.DNSRequest{Name: PickOf(g, "api.example.com", "x.example.com", "evil.other.org")}}
		}
	}
	return f
}
