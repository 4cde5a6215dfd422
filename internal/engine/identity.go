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
	"slices"
	"sync"
)

// Entity names a reserved peer: something that is not a workload selected
// by labels.
type Entity string

// The entities of the policy language.
const (
	EntityHost          Entity = "host"
	EntityRemoteNode    Entity = "remote-node"
	EntityKubeAPIServer Entity = "kube-apiserver"
	EntityUnmanaged     Entity = "unmanaged"
	EntityWorld         Entity = "world"
	EntityCluster       Entity = "cluster"
	EntityAll           Entity = "all"
)

// Entities lists every entity, in a fixed order.
var Entities = []Entity{EntityHost, EntityRemoteNode, EntityKubeAPIServer, EntityUnmanaged, EntityWorld, EntityCluster, EntityAll}

// MatchesEntity reports whether entity e covers an identity with labels l.
// "cluster" is everything that is not outside the cluster; "all" is
// everything.
func MatchesEntity(e Entity, l Labels) bool {
	switch e {
	case EntityAll:
		return true
	case EntityCluster:
		return !l.Has(EntityWorld)
	default:
		return l.Has(e)
	}
}

// Identity is a numeric security identity. Numbers below
// MinWorkloadIdentity are reserved; numbers from MinLocalIdentity up are
// local to one node (CIDR and FQDN prefixes) and never leave it.
type Identity uint32

// Reserved identities. Their numbers are fixed so that every node, every
// version and the datapath agree on them without allocation.
const (
	// IdentityUnknown is never allocated: a lookup that finds it failed.
	IdentityUnknown Identity = 0
	// IdentityHost is the local node.
	IdentityHost Identity = 1
	// IdentityWorld is every address outside the cluster.
	IdentityWorld Identity = 2
	// IdentityUnmanaged is a pod that Palisade does not enforce on.
	IdentityUnmanaged Identity = 3
	// IdentityCluster is a cluster-internal address that has no better
	// identity (a pod CIDR address without a known pod).
	IdentityCluster Identity = 4
	// IdentityRemoteNode is another node of the cluster.
	IdentityRemoteNode Identity = 6
	// IdentityKubeAPIServer is the API server outside the nodes.
	IdentityKubeAPIServer Identity = 7
	// IdentityHostAPIServer is the local node when it serves the API.
	IdentityHostAPIServer Identity = 8
	// IdentityRemoteNodeAPIServer is another node that serves the API.
	IdentityRemoteNodeAPIServer Identity = 9

	// IdentityAllWorld is no address's identity: it is the policy map key
	// of the rules that select every address outside the cluster (entity
	// world, reserved:world selectors). The datapath probes it for every
	// peer outside the cluster (WorldPeer), so such a rule is written once
	// instead of once per node-local CIDR identity. See MapState.
	IdentityAllWorld Identity = 5

	// MinWorkloadIdentity is the first number the allocator hands out.
	MinWorkloadIdentity Identity = 256
	// MaxWorkloadIdentity is the last cluster-wide number.
	MaxWorkloadIdentity Identity = 1<<24 - 1
	// MinLocalIdentity is the first node-local number (CIDR, FQDN).
	MinLocalIdentity Identity = 1 << 24
)

// reservedIdentities maps each reserved identity to its labels.
var reservedIdentities = map[Identity]Labels{
	IdentityHost:                Reserved(EntityHost),
	IdentityWorld:               Reserved(EntityWorld),
	IdentityUnmanaged:           Reserved(EntityUnmanaged),
	IdentityCluster:             Reserved(EntityCluster),
	IdentityRemoteNode:          Reserved(EntityRemoteNode),
	IdentityKubeAPIServer:       Reserved(EntityKubeAPIServer, EntityWorld),
	IdentityHostAPIServer:       Reserved(EntityHost, EntityKubeAPIServer),
	IdentityRemoteNodeAPIServer: Reserved(EntityRemoteNode, EntityKubeAPIServer),
}

// ReservedIdentities returns the reserved identities, sorted.
func ReservedIdentities() []Identity {
	ids := make([]Identity, 0, len(reservedIdentities))
	for id := range reservedIdentities {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

// ReservedLabels returns the labels of a reserved identity.
func ReservedLabels(id Identity) (Labels, bool) {
	l, ok := reservedIdentities[id]
	return l, ok
}

// IsReserved reports whether id is a reserved identity.
func (id Identity) IsReserved() bool { _, ok := reservedIdentities[id]; return ok }

// IsLocal reports whether id is node-local (a CIDR or FQDN prefix).
func (id Identity) IsLocal() bool { return id >= MinLocalIdentity }

// Allocator hands out cluster-wide identities for workload label sets.
// The same labels always get the same number while any workload holds it;
// the Kubernetes implementation stores them as Identity objects so that
// every node agrees.
type Allocator interface {
	// Allocate returns the identity of labels, allocating it if needed.
	Allocate(l Labels) (Identity, error)
	// Lookup returns the identity of labels if it is allocated.
	Lookup(l Labels) (Identity, bool)
	// Labels returns the labels of an identity, reserved ones included.
	Labels(id Identity) (Labels, bool)
	// Release drops a reference to labels' identity; an identity without
	// references may be reused.
	Release(l Labels) error
}

// MemoryAllocator is an Allocator that keeps identities in memory, for the
// CLI and tests. It numbers identities in allocation order; callers that
// need numbers independent of order allocate in sorted label order.
type MemoryAllocator struct {
	mu     sync.Mutex
	next   Identity
	byKey  map[string]Identity
	labels map[Identity]Labels
	refs   map[Identity]int
	free   []Identity
}

// NewMemoryAllocator returns an empty in-memory allocator.
func NewMemoryAllocator() *MemoryAllocator {
	return &MemoryAllocator{
		next:   MinWorkloadIdentity,
		byKey:  map[string]Identity{},
		labels: map[Identity]Labels{},
		refs:   map[Identity]int{},
	}
}

// Allocate implements Allocator.
func (a *MemoryAllocator) Allocate(l Labels) (Identity, error) {
	if !l.IsWorkload() {
		return IdentityUnknown, fmt.Errorf("allocate identity: labels %q are not a workload's (no namespace label, or a reserved label)", l.String())
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	key := l.String()
	if id, ok := a.byKey[key]; ok {
		a.refs[id]++
		return id, nil
	}
	var id Identity
	if n := len(a.free); n > 0 {
		slices.Sort(a.free)
		id, a.free = a.free[0], a.free[1:]
	} else {
		if a.next > MaxWorkloadIdentity {
			return IdentityUnknown, fmt.Errorf("allocate identity: all %d workload identities are in use", MaxWorkloadIdentity-MinWorkloadIdentity+1)
		}
		id = a.next
		a.next++
	}
	cp := make(Labels, len(l))
	for k, v := range l {
		cp[k] = v
	}
	a.byKey[key], a.labels[id], a.refs[id] = id, cp, 1
	return id, nil
}

// Lookup implements Allocator.
func (a *MemoryAllocator) Lookup(l Labels) (Identity, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	id, ok := a.byKey[l.String()]
	return id, ok
}

// Labels implements Allocator.
func (a *MemoryAllocator) Labels(id Identity) (Labels, bool) {
	if l, ok := reservedIdentities[id]; ok {
		return l, true
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	l, ok := a.labels[id]
	return l, ok
}

// Release implements Allocator.
func (a *MemoryAllocator) Release(l Labels) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	key := l.String()
	id, ok := a.byKey[key]
	if !ok {
		return fmt.Errorf("release identity: labels %q have no identity", key)
	}
	if a.refs[id]--; a.refs[id] == 0 {
		delete(a.byKey, key)
		delete(a.labels, id)
		delete(a.refs, id)
		a.free = append(a.free, id)
	}
	return nil
}
