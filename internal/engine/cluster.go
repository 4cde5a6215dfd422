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
	"fmt"
	"net/netip"
	"slices"
)

// NamedPort is a port a workload's containers declare by name.
type NamedPort struct {
	Name     string `json:"name"`
	Port     uint16 `json:"port"`
	Protocol Proto  `json:"protocol"`
}

// Endpoint is a workload (pod) as policy sees it.
type Endpoint struct {
	Namespace      string            `json:"namespace"`
	Name           string            `json:"name"`
	Labels         map[string]string `json:"labels,omitempty"`
	ServiceAccount string            `json:"serviceAccount,omitempty"`
	IPs            []netip.Addr      `json:"ips"`
	Node           string            `json:"node,omitempty"`
	Ports          []NamedPort       `json:"ports,omitempty"`
	// Unmanaged pods are not enforced on and carry the unmanaged identity.
	Unmanaged bool `json:"unmanaged,omitempty"`
}

// ID is "namespace/name".
func (e *Endpoint) ID() string { return e.Namespace + "/" + e.Name }

// Node is a cluster node: its addresses are "host" on the node itself and
// "remote-node" everywhere else.
type Node struct {
	Name   string            `json:"name"`
	Labels map[string]string `json:"labels,omitempty"`
	IPs    []netip.Addr      `json:"ips"`
}

// Cluster is what the evaluator and the compiler need to know about the
// cluster besides the policies.
type Cluster struct {
	// Namespaces holds each namespace's labels.
	Namespaces map[string]map[string]string `json:"namespaces,omitempty"`
	Endpoints  []Endpoint                   `json:"endpoints,omitempty"`
	Nodes      []Node                       `json:"nodes,omitempty"`
	// APIServer lists the API server's addresses.
	APIServer []netip.Addr `json:"apiServer,omitempty"`
	// PodCIDRs are cluster-internal ranges: an address in them that
	// belongs to no known pod has the "cluster" identity, not "world".
	PodCIDRs []netip.Prefix `json:"podCIDRs,omitempty"`
	// DNS maps the names workloads resolved to the addresses in the
	// answers, which is what toFQDNs rules select.
	DNS map[string][]netip.Addr `json:"dns,omitempty"`
	// Labels decides which pod labels are security relevant.
	Labels LabelPolicy `json:"-"`

	index *clusterIndex
}

type clusterIndex struct {
	byIP   map[netip.Addr]*Endpoint
	nodeIP map[netip.Addr]*Node
	nodes  map[string]*Node
	byID   map[string]*Endpoint
	api    map[netip.Addr]bool
}

// Index checks the cluster for addresses claimed twice and prepares the
// lookups the evaluator and compiler make. It must be called again after
// the cluster changes.
func (c *Cluster) Index() error {
	x := &clusterIndex{byIP: map[netip.Addr]*Endpoint{}, nodeIP: map[netip.Addr]*Node{}, nodes: map[string]*Node{}, byID: map[string]*Endpoint{}, api: map[netip.Addr]bool{}}
	for i := range c.Nodes {
		n := &c.Nodes[i]
		if x.nodes[n.Name] != nil {
			return fmt.Errorf("node %q is listed twice", n.Name)
		}
		x.nodes[n.Name] = n
		for _, ip := range n.IPs {
			if o := x.nodeIP[ip]; o != nil {
				return fmt.Errorf("address %s belongs to nodes %q and %q", ip, o.Name, n.Name)
			}
			x.nodeIP[ip] = n
		}
	}
	for i := range c.Endpoints {
		e := &c.Endpoints[i]
		if x.byID[e.ID()] != nil {
			return fmt.Errorf("endpoint %s is listed twice", e.ID())
		}
		if e.Node != "" && x.nodes[e.Node] == nil {
			return fmt.Errorf("endpoint %s: unknown node %q", e.ID(), e.Node)
		}
		x.byID[e.ID()] = e
		for _, ip := range e.IPs {
			if o := x.byIP[ip]; o != nil {
				return fmt.Errorf("address %s belongs to endpoints %s and %s", ip, o.ID(), e.ID())
			}
			if n := x.nodeIP[ip]; n != nil {
				return fmt.Errorf("address %s belongs to endpoint %s and node %q (host-network pods are the node)", ip, e.ID(), n.Name)
			}
			x.byIP[ip] = e
		}
	}
	for _, ip := range c.APIServer {
		x.api[ip] = true
	}
	c.index = x
	return nil
}

func (c *Cluster) idx() *clusterIndex {
	if c.index == nil {
		if err := c.Index(); err != nil {
			panic("engine: cluster not indexed: " + err.Error())
		}
	}
	return c.index
}

// Endpoint returns the endpoint "namespace/name".
func (c *Cluster) Endpoint(id string) (*Endpoint, bool) {
	e, ok := c.idx().byID[id]
	return e, ok
}

// EndpointByIP returns the endpoint that owns addr.
func (c *Cluster) EndpointByIP(addr netip.Addr) (*Endpoint, bool) {
	e, ok := c.idx().byIP[addr]
	return e, ok
}

// NodeByIP returns the node that owns addr.
func (c *Cluster) NodeByIP(addr netip.Addr) (*Node, bool) {
	n, ok := c.idx().nodeIP[addr]
	return n, ok
}

// Node returns the node called name.
func (c *Cluster) Node(name string) (*Node, bool) {
	n, ok := c.idx().nodes[name]
	return n, ok
}

// WorkloadLabels returns the security labels of a managed endpoint.
func (c *Cluster) WorkloadLabels(e *Endpoint) Labels {
	return c.Labels.WorkloadLabels(e.Namespace, e.Labels, c.Namespaces[e.Namespace], e.ServiceAccount)
}

// PeerLabels returns the security labels of the owner of addr as seen from
// node (the node enforcing policy): a workload's labels, or the reserved
// labels of a node, the API server, an unmanaged pod, a cluster-internal
// address, or the world.
func (c *Cluster) PeerLabels(addr netip.Addr, node string) Labels {
	x := c.idx()
	if e := x.byIP[addr]; e != nil {
		if e.Unmanaged {
			return Reserved(EntityUnmanaged)
		}
		return c.WorkloadLabels(e)
	}
	if n := x.nodeIP[addr]; n != nil {
		ent := EntityRemoteNode
		if n.Name == node {
			ent = EntityHost
		}
		if x.api[addr] {
			return Reserved(ent, EntityKubeAPIServer)
		}
		return Reserved(ent)
	}
	if x.api[addr] {
		return Reserved(EntityKubeAPIServer, EntityWorld)
	}
	if slices.ContainsFunc(c.PodCIDRs, func(p netip.Prefix) bool { return p.Contains(addr) }) {
		return Reserved(EntityCluster)
	}
	return Reserved(EntityWorld)
}

// NamesOf returns the DNS names that resolved to addr, sorted.
func (c *Cluster) NamesOf(addr netip.Addr) []string {
	var names []string
	for name, addrs := range c.DNS {
		if slices.Contains(addrs, addr) {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	return names
}
