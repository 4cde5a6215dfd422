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
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strings"

	"github.com/palisade-dev/palisade/internal/engine"
)

// Mutate returns a changed copy of p: a rule added or removed, audit mode
// or default deny toggled. The policy keeps its kind, namespace and name.
func (g *Gen) Mutate(p *engine.Policy) *engine.Policy {
	np := *p
	np.Rules = slices.Clone(p.Rules)
	switch g.Pick(4) {
	case 0:
		np.Audit = !np.Audit
		for i, r := range np.Rules {
			cr := *r
			cr.Audit = np.Audit
			np.Rules[i] = &cr
		}
	case 1:
		if len(np.Rules) > 0 {
			i := g.Pick(len(np.Rules))
			np.Rules = slices.Delete(np.Rules, i, i+1)
			break
		}
		fallthrough
	case 2:
		sec := PickOf(g, "ingress", "egress", "ingressDeny", "egressDeny")
		dir, action := engine.Ingress, engine.Allow
		if strings.HasPrefix(sec, "egress") {
			dir = engine.Egress
		}
		if strings.HasSuffix(sec, "Deny") {
			action = engine.Deny
		}
		r := g.Rule(dir, action, np.Origin.Namespace)
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
		r.Origin = engine.Origin{Kind: np.Origin.Kind, Namespace: np.Origin.Namespace, Name: np.Origin.Name, Path: fmt.Sprintf("spec.%s[%d]", sec, 10+n+g.Pick(5))}
		if slices.ContainsFunc(np.Rules, func(o *engine.Rule) bool { return o.Origin.Path == r.Origin.Path }) {
			break
		}
		r.Audit, r.Subject = np.Audit, np.Subject
		np.Rules = append(np.Rules, r)
	default:
		d := engine.Direction(g.Pick(2))
		np.DefaultDeny[d] = !np.DefaultDeny[d]
	}
	return &np
}

// MutateCluster returns a changed copy of c and what changed: a workload
// added, removed, relabelled (a new identity), moved to another node, with
// other named ports, or other DNS answers. The copy is not indexed.
func (g *Gen) MutateCluster(c *engine.Cluster) (*engine.Cluster, string) {
	nc := CopyCluster(c)
	switch k := g.Pick(6); {
	case k == 0 || len(nc.Endpoints) == 0:
		e := g.Endpoint()
		nc.Endpoints = append(nc.Endpoints, e)
		return nc, "add endpoint " + e.ID()
	case k == 1:
		i := g.Pick(len(nc.Endpoints))
		id := nc.Endpoints[i].ID()
		nc.Endpoints = slices.Delete(nc.Endpoints, i, i+1)
		return nc, "remove endpoint " + id
	case k == 2:
		e := &nc.Endpoints[g.Pick(len(nc.Endpoints))]
		e.Labels["app"] = PickOf(g, Apps...)
		if g.Chance(0.5) {
			e.Labels["rollout"] = fmt.Sprint(g.Pick(100))
		}
		return nc, "relabel endpoint " + e.ID()
	case k == 3:
		e := &nc.Endpoints[g.Pick(len(nc.Endpoints))]
		e.Node = PickOf(g, "n1", "n2", "cp")
		return nc, "move endpoint " + e.ID() + " to " + e.Node
	case k == 4:
		e := &nc.Endpoints[g.Pick(len(nc.Endpoints))]
		e.Ports = nil
		if g.Chance(0.7) {
			e.Ports = []engine.NamedPort{{Name: PickOf(g, "http", "metrics", "dns"), Port: uint16(PickOf(g, 8080, 8082, 9090)), Protocol: engine.ProtoTCP}}
		}
		return nc, "ports of endpoint " + e.ID()
	case g.Chance(0.5):
		n := PickOf(g, AnswerNames...)
		if _, ok := nc.DNS[n]; ok && g.Chance(0.3) {
			delete(nc.DNS, n)
		} else {
			nc.DNS[n] = g.Answer(nc)
		}
		return nc, "dns " + n
	default:
		n := PickOf(g, slices.Sorted(maps.Keys(DNS))...)
		if _, ok := nc.DNS[n]; ok && g.Chance(0.5) {
			delete(nc.DNS, n)
		} else {
			nc.DNS[n] = append(slices.Clone(DNS[n]), netip.AddrFrom4([4]byte{203, 0, 113, byte(100 + g.Pick(50))}))
		}
		return nc, "dns " + n
	}
}

// CopyCluster returns a deep copy of c, not indexed.
func CopyCluster(c *engine.Cluster) *engine.Cluster {
	out := &engine.Cluster{
		Namespaces: make(map[string]map[string]string, len(c.Namespaces)),
		Endpoints:  make([]engine.Endpoint, len(c.Endpoints)),
		Nodes:      make([]engine.Node, len(c.Nodes)),
		APIServer:  slices.Clone(c.APIServer),
		PodCIDRs:   slices.Clone(c.PodCIDRs),
		DNS:        make(map[string][]netip.Addr, len(c.DNS)),
		Labels:     engine.LabelPolicy{Volatile: slices.Clone(c.Labels.Volatile)},
	}
	for k, v := range c.Namespaces {
		out.Namespaces[k] = maps.Clone(v)
	}
	for i, e := range c.Endpoints {
		e.Labels, e.IPs, e.Ports = maps.Clone(e.Labels), slices.Clone(e.IPs), slices.Clone(e.Ports)
		out.Endpoints[i] = e
	}
	for i, n := range c.Nodes {
		n.Labels, n.IPs = maps.Clone(n.Labels), slices.Clone(n.IPs)
		out.Nodes[i] = n
	}
	for k, v := range c.DNS {
		out.DNS[k] = slices.Clone(v)
	}
	return out
}
