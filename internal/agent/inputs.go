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

package agent

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strconv"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "github.com/palisade-dev/palisade/api/v1alpha1"
	"github.com/palisade-dev/palisade/internal/engine"
)

// setKey names a PolicySet.
type setKey struct{ namespace, name string }

// localEndpoint is a workload on this node.
type localEndpoint struct {
	id  string // namespace/name
	ips []netip.Addr
	// pending is true while the workload's labels have no Identity yet:
	// the datapath fails closed for it until one is allocated.
	pending bool
}

// inputs is everything the node compiler needs, read from the cache.
type inputs struct {
	cluster *engine.Cluster
	ir      *engine.IR
	ids     identityTable
	local   []localEndpoint
	// objects are the policy objects the node enforces: per PolicySet,
	// those of one complete revision (see selectObjects).
	objects []*policyObject
	// sets are the PolicySets among them and their revisions.
	sets map[setKey]*setInfo
	// pods are the pods of this node that are not over, with or without
	// an address: tracing scopes policies to them by their cgroups.
	pods []localPod
	// clusterKept is whether the cluster is the previous sync's, none of
	// its objects having changed (for the log).
	clusterKept bool
}

// localPod is a pod of this node as tracing selects it.
type localPod struct {
	namespace, name string
	uid             types.UID
	labels          engine.Labels
}

// identityTable is engine.IdentityTable over the cluster's Identity
// objects.
type identityTable map[string]engine.Identity

func (t identityTable) Lookup(l engine.Labels) (engine.Identity, bool) {
	id, ok := t[l.String()]
	return id, ok
}

// clusterLists are the cluster's objects as the agent's cache holds
// them (listObjs): shared with the cache, never to be modified.
type clusterLists struct {
	nss    []*corev1.Namespace
	nodes  []*corev1.Node
	ids    []*v1.Identity
	pods   []*corev1.Pod
	slices []*discoveryv1.EndpointSlice
}

// gather reads the cluster as the agent's cache holds it. The cluster
// (endpoints, nodes, namespaces, identities) is built again only when one
// of its objects changed (clusterCache); the policy objects' derived forms
// are kept per object version (objectCache).
func (a *Agent) gather(ctx context.Context) (*inputs, error) {
	in := &inputs{sets: map[setKey]*setInfo{}}
	var ls clusterLists
	var err error
	var nss corev1.NamespaceList
	if ls.nss, _, err = listObjs(ctx, a, &nss, func() []corev1.Namespace { return nss.Items }); err != nil {
		return nil, fmt.Errorf("list namespaces: %w", err)
	}
	var nodes corev1.NodeList
	if ls.nodes, _, err = listObjs(ctx, a, &nodes, func() []corev1.Node { return nodes.Items }); err != nil {
		return nil, fmt.Errorf("list nodes: %w", err)
	}
	var ids v1.IdentityList
	if ls.ids, _, err = listObjs(ctx, a, &ids, func() []v1.Identity { return ids.Items }); err != nil {
		return nil, fmt.Errorf("list identities: %w", err)
	}
	var pods corev1.PodList
	if ls.pods, _, err = listObjs(ctx, a, &pods, func() []corev1.Pod { return pods.Items }); err != nil {
		return nil, fmt.Errorf("list pods: %w", err)
	}
	var eps discoveryv1.EndpointSliceList
	if ls.slices, _, err = listObjs(ctx, a, &eps, func() []discoveryv1.EndpointSlice { return eps.Items },
		client.InNamespace("default"), client.MatchingLabels{discoveryv1.LabelServiceName: "kubernetes"}); err != nil {
		return nil, fmt.Errorf("list the API server's endpoints: %w", err)
	}
	if kept := a.clusterCache.lookup(&ls); kept != nil {
		in.cluster, in.ids, in.local, in.pods, in.clusterKept = kept.cluster, kept.ids, kept.local, kept.pods, true
	} else {
		if err := a.buildCluster(in, &ls); err != nil {
			return nil, err
		}
		a.clusterCache.keep(&ls, in)
	}

	all, err := a.listObjects(ctx)
	if err != nil {
		return nil, err
	}
	if in.objects, in.sets, err = a.selectObjects(ctx, all); err != nil {
		return nil, err
	}
	if in.ir, err = a.objCache.buildIR(in.objects); err != nil {
		return nil, err
	}
	if err := a.markConcerns(in); err != nil {
		return nil, err
	}
	return in, nil
}

// buildCluster builds the inputs' cluster, identity table, local
// endpoints and pods from the listed objects. Label maps and address
// lists are the cache's, shared: nothing here or in the engine modifies
// them.
func (a *Agent) buildCluster(in *inputs, ls *clusterLists) error {
	in.cluster = &engine.Cluster{Namespaces: map[string]map[string]string{}, Labels: a.Labels}
	in.ids = identityTable{}
	c := in.cluster

	for _, ns := range ls.nss {
		c.Namespaces[ns.Name] = ns.Labels
	}

	known := map[string]bool{}
	for _, n := range ls.nodes {
		en := engine.Node{Name: n.Name, Labels: n.Labels}
		for _, addr := range n.Status.Addresses {
			if addr.Type != corev1.NodeInternalIP && addr.Type != corev1.NodeExternalIP {
				continue
			}
			if ip, err := netip.ParseAddr(addr.Address); err == nil && !slices.Contains(en.IPs, ip) {
				en.IPs = append(en.IPs, ip)
			}
		}
		for _, s := range n.Spec.PodCIDRs {
			if p, err := netip.ParsePrefix(s); err == nil {
				c.PodCIDRs = append(c.PodCIDRs, p.Masked())
			}
		}
		known[n.Name] = true
		c.Nodes = append(c.Nodes, en)
	}
	if !known[a.Node] {
		// The agent's own node must be known for host and remote-node to
		// mean anything; without a Node object (a bare test cluster) it is
		// a node without addresses.
		c.Nodes = append(c.Nodes, engine.Node{Name: a.Node})
	}

	for _, id := range ls.ids {
		n, err := strconv.ParseUint(id.Name, 10, 32)
		if err != nil || !id.DeletionTimestamp.IsZero() {
			continue
		}
		in.ids[engine.Labels(id.Spec.Labels).String()] = engine.Identity(n)
	}

	claimed := map[netip.Addr]bool{}
	for _, n := range c.Nodes {
		for _, ip := range n.IPs {
			claimed[ip] = true
		}
	}
	for _, p := range ls.pods {
		if p.Spec.NodeName == a.Node && p.Status.Phase != corev1.PodSucceeded && p.Status.Phase != corev1.PodFailed {
			in.pods = append(in.pods, localPod{namespace: p.Namespace, name: p.Name, uid: p.UID,
				labels: c.Labels.WorkloadLabels(p.Namespace, p.Labels, c.Namespaces[p.Namespace], p.Spec.ServiceAccountName)})
		}
		if p.Spec.HostNetwork || p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed {
			continue
		}
		ep := engine.Endpoint{Namespace: p.Namespace, Name: p.Name, Labels: p.Labels, ServiceAccount: p.Spec.ServiceAccountName}
		if known[p.Spec.NodeName] || p.Spec.NodeName == a.Node {
			ep.Node = p.Spec.NodeName
		}
		for _, pip := range p.Status.PodIPs {
			ip, err := netip.ParseAddr(pip.IP)
			if err != nil || claimed[ip] {
				// An address claimed twice is a stale pod beside a new
				// one: the first claim wins until the stale one is gone.
				continue
			}
			claimed[ip] = true
			ep.IPs = append(ep.IPs, ip)
		}
		if len(ep.IPs) == 0 {
			continue
		}
		for _, ctr := range p.Spec.Containers {
			for _, port := range ctr.Ports {
				if port.Name == "" {
					continue
				}
				proto, err := engine.ParseProto(string(port.Protocol))
				if err != nil {
					continue
				}
				ep.Ports = append(ep.Ports, engine.NamedPort{Name: port.Name, Port: uint16(port.ContainerPort), Protocol: proto})
			}
		}
		_, hasID := in.ids.Lookup(c.Labels.WorkloadLabels(ep.Namespace, ep.Labels, c.Namespaces[ep.Namespace], ep.ServiceAccount))
		// A workload whose identity is not allocated yet is unmanaged for
		// the compiler; on this node the datapath fails closed for it.
		ep.Unmanaged = !hasID
		if p.Spec.NodeName == a.Node {
			in.local = append(in.local, localEndpoint{id: ep.ID(), ips: ep.IPs, pending: !hasID})
		}
		c.Endpoints = append(c.Endpoints, ep)
	}

	for _, s := range ls.slices {
		for _, e := range s.Endpoints {
			for _, addr := range e.Addresses {
				if ip, err := netip.ParseAddr(addr); err == nil && !slices.Contains(c.APIServer, ip) {
					c.APIServer = append(c.APIServer, ip)
				}
			}
		}
	}
	if err := c.Index(); err != nil {
		return fmt.Errorf("cluster: %w", err)
	}
	return nil
}
