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
	"maps"
	"net/netip"
	"slices"
)

// clusterView is the compiler's private copy of the cluster with what it
// derives from it: workload identities and their named ports.
type clusterView struct {
	cl      *Cluster // indexed deep copy
	node    *Node    // the compiled node; nil when the cluster lacks it
	work    map[Identity]*workload
	epID    map[string]Identity   // managed endpoint → identity
	local   map[Identity]int      // managed endpoints on the node, per identity
	holders map[string][]Identity // port name → identities declaring it, sorted
}

// workload is one workload identity: its labels and the union of the named
// ports of every managed endpoint that has it, as namedPortIs sees them.
type workload struct {
	labels Labels
	key    string
	ports  []NamedPort
	names  []string
}

func newClusterView(in *Cluster, node string, ids IdentityTable) (*clusterView, error) {
	cl := copyCluster(in)
	if err := cl.Index(); err != nil {
		return nil, err
	}
	v := &clusterView{cl: cl, work: map[Identity]*workload{}, epID: map[string]Identity{},
		local: map[Identity]int{}, holders: map[string][]Identity{}}
	v.node, _ = cl.Node(node)
	for i := range cl.Endpoints {
		e := &cl.Endpoints[i]
		if e.Unmanaged {
			continue
		}
		l := cl.WorkloadLabels(e)
		key := l.String()
		id, ok := ids.Lookup(l)
		if !ok {
			return nil, fmt.Errorf("endpoint %s: no identity for labels %q", e.ID(), key)
		}
		if id < MinWorkloadIdentity || id > MaxWorkloadIdentity {
			return nil, fmt.Errorf("endpoint %s: identity %d is not a workload identity", e.ID(), id)
		}
		w := v.work[id]
		if w == nil {
			w = &workload{labels: l, key: key}
			v.work[id] = w
		} else if w.key != key {
			return nil, fmt.Errorf("identity %d is given to two label sets: %q and %q", id, w.key, key)
		}
		w.ports = append(w.ports, e.Ports...)
		v.epID[e.ID()] = id
		if node != "" && e.Node == node {
			v.local[id]++
		}
	}
	for id, w := range v.work {
		slices.SortFunc(w.ports, func(a, b NamedPort) int {
			return cmp.Or(cmp.Compare(a.Name, b.Name), cmp.Compare(a.Protocol, b.Protocol), cmp.Compare(a.Port, b.Port))
		})
		w.ports = slices.Compact(w.ports)
		for _, p := range w.ports {
			if len(w.names) == 0 || w.names[len(w.names)-1] != p.Name {
				w.names = append(w.names, p.Name)
			}
		}
		for _, n := range w.names {
			v.holders[n] = append(v.holders[n], id)
		}
	}
	for _, h := range v.holders {
		slices.Sort(h)
	}
	return v, nil
}

func copyCluster(in *Cluster) *Cluster {
	out := &Cluster{
		Namespaces: make(map[string]map[string]string, len(in.Namespaces)),
		Endpoints:  make([]Endpoint, len(in.Endpoints)),
		Nodes:      make([]Node, len(in.Nodes)),
		APIServer:  slices.Clone(in.APIServer),
		PodCIDRs:   slices.Clone(in.PodCIDRs),
		DNS:        make(map[string][]netip.Addr, len(in.DNS)),
		Labels:     LabelPolicy{Volatile: slices.Clone(in.Labels.Volatile)},
	}
	for k, v := range in.Namespaces {
		out.Namespaces[k] = maps.Clone(v)
	}
	for i, e := range in.Endpoints {
		e.Labels, e.IPs, e.Ports = maps.Clone(e.Labels), slices.Clone(e.IPs), slices.Clone(e.Ports)
		out.Endpoints[i] = e
	}
	for i, n := range in.Nodes {
		n.Labels, n.IPs = maps.Clone(n.Labels), slices.Clone(n.IPs)
		out.Nodes[i] = n
	}
	for k, v := range in.DNS {
		out.DNS[k] = slices.Clone(v)
	}
	return out
}

// holdersOf returns the workload identities that declare one of names.
func (v *clusterView) holdersOf(names []string) []Identity {
	if len(names) == 1 {
		return v.holders[names[0]]
	}
	var out []Identity
	for _, n := range names {
		out = append(out, v.holders[n]...)
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// subjects returns the node's enforcement points.
func (v *clusterView) subjects() map[Identity]subject {
	out := map[Identity]subject{}
	for id, n := range v.local {
		if n > 0 {
			out[id] = subject{labels: v.work[id].labels}
		}
	}
	if v.node != nil {
		out[IdentityHost] = subject{id: "node/" + v.node.Name, node: v.node.Name, nodeLbls: v.node.Labels}
	}
	return out
}

func sameSubject(a, b subject) bool {
	if a.labels != nil || b.labels != nil {
		return a.labels != nil && b.labels != nil && a.labels.String() == b.labels.String()
	}
	return maps.Equal(a.nodeLbls, b.nodeLbls)
}

// clusterPlan is what a cluster update changes in classes and subjects.
type clusterPlan struct {
	goneW, newW, ports []Identity
	goneS, newS        []Identity
	subjects           map[Identity]subject
}

func (p *clusterPlan) size() int {
	return len(p.goneW) + len(p.newW) + len(p.goneS) + len(p.newS)
}

func (c *Compiler) planCluster(v *clusterView) *clusterPlan {
	o := c.view
	p := &clusterPlan{subjects: v.subjects()}
	for id, w := range o.work {
		switch nw := v.work[id]; {
		case nw == nil || nw.key != w.key:
			p.goneW = append(p.goneW, id)
		case !slices.Equal(nw.ports, w.ports):
			p.ports = append(p.ports, id)
		}
	}
	for id, nw := range v.work {
		if w := o.work[id]; w == nil || w.key != nw.key {
			p.newW = append(p.newW, id)
		}
	}
	for id, si := range c.subjects {
		if ns, ok := p.subjects[id]; !ok || !sameSubject(si.sub, ns) {
			p.goneS = append(p.goneS, id)
		}
	}
	for id, ns := range p.subjects {
		if si, ok := c.subjects[id]; !ok || !sameSubject(si.sub, ns) {
			p.newS = append(p.newS, id)
		}
	}
	for _, l := range [][]Identity{p.goneW, p.newW, p.ports, p.goneS, p.newS} {
		slices.Sort(l)
	}
	return p
}

func (c *Compiler) applyCluster(v *clusterView, p *clusterPlan) {
	for _, id := range p.goneS {
		c.removeSubject(id)
	}
	for _, id := range p.goneW {
		c.removeClass(id)
	}
	for _, id := range p.ports {
		c.dropWildNamed(id, c.view.work[id].names)
	}
	c.view = v
	c.localsDirty, c.ipcacheDirty = true, true
	for _, id := range p.ports {
		c.addWildNamed(id, v.work[id].names)
		c.markNamedDirty(id)
	}
	for _, id := range p.newW {
		c.addClass(workloadClass(id, v.work[id]))
	}
	for _, id := range p.newS {
		c.addSubject(&subjectInfo{id: id, sub: p.subjects[id]})
	}
}

// computeIPCache returns the ipcache: every address and prefix the node
// can meet, with the identity PeerLabels gives it as seen from the node.
func (c *Compiler) computeIPCache() map[netip.Prefix]Identity {
	v := c.view
	m := make(map[netip.Prefix]Identity, len(v.cl.Endpoints)+len(c.locals)+16)
	m[netip.PrefixFrom(netip.IPv4Unspecified(), 0)] = IdentityWorld
	m[netip.PrefixFrom(netip.IPv6Unspecified(), 0)] = IdentityWorld
	for _, p := range v.cl.PodCIDRs {
		m[p.Masked()] = IdentityCluster
	}
	for _, a := range c.untouched {
		m[hostPrefix(a)] = IdentityKubeAPIServer
	}
	for p, cl := range c.locals {
		m[p] = cl.id
	}
	api := v.cl.idx().api
	for i := range v.cl.Nodes {
		n := &v.cl.Nodes[i]
		for _, ip := range n.IPs {
			id := IdentityRemoteNode
			switch {
			case n.Name == c.node && api[ip]:
				id = IdentityHostAPIServer
			case n.Name == c.node:
				id = IdentityHost
			case api[ip]:
				id = IdentityRemoteNodeAPIServer
			}
			m[hostPrefix(ip)] = id
		}
	}
	for i := range v.cl.Endpoints {
		e := &v.cl.Endpoints[i]
		id := IdentityUnmanaged
		if !e.Unmanaged {
			id = v.epID[e.ID()]
		}
		for _, ip := range e.IPs {
			m[hostPrefix(ip)] = id
		}
	}
	return m
}

// computeEndpoints returns the endpoint map: the node's managed workloads
// and the node itself, which is always present (a host that no policy
// selects is "not selected" and allowed, as Evaluate has it).
func (c *Compiler) computeEndpoints() map[netip.Addr]EndpointEntry {
	v := c.view
	m := map[netip.Addr]EndpointEntry{}
	if v.node == nil {
		return m
	}
	for i := range v.cl.Endpoints {
		e := &v.cl.Endpoints[i]
		if e.Unmanaged || e.Node != c.node {
			continue
		}
		id := v.epID[e.ID()]
		ent := EndpointEntry{Identity: id, PolicyID: uint32(id), Flags: c.subjects[id].flags()}
		for _, ip := range e.IPs {
			m[ip] = ent
		}
	}
	api := v.cl.idx().api
	flags := c.subjects[IdentityHost].flags()
	for _, ip := range v.node.IPs {
		id := IdentityHost
		if api[ip] {
			id = IdentityHostAPIServer
		}
		m[ip] = EndpointEntry{Identity: id, PolicyID: uint32(IdentityHost), Flags: flags}
	}
	return m
}

func hostPrefix(a netip.Addr) netip.Prefix { return netip.PrefixFrom(a, a.BitLen()) }
