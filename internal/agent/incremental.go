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
	"fmt"
	"maps"
	"net/netip"
	"reflect"
	"slices"

	"k8s.io/apimachinery/pkg/types"

	"github.com/palisade-dev/palisade/internal/engine"
)

// maxIncrementalPolicies bounds how many policies one sync changes one by
// one; a larger change (a new revision of many objects) is compiled whole,
// which is cheaper than that many incremental updates.
const maxIncrementalPolicies = 64

// incremental keeps the node compiler across syncs, so that a change to
// one policy, identity or endpoint costs work in proportion to what it
// changes (engine.Compiler), and says what changed as a delta.
type incremental struct {
	node string
	ids  *liveIDs
	comp *engine.Compiler
	// versions identify the object each compiled policy was rendered
	// from (UID and resourceVersion): an object whose version did not
	// change renders the same policy.
	versions map[objKey]objVersion
	// cluster and ids are the compiler's cluster input and identity
	// table: an unchanged cluster is not given to the compiler again
	// (a cluster update costs work in proportion to the whole cluster).
	cluster *engine.Cluster
	ids0    identityTable
	// last describes the last update, for logs and tests.
	last compileInfo
}

// compileInfo says how the compiler reached the last state.
type compileInfo struct {
	whole            bool // compiled from scratch
	changed, deleted int  // policies set and deleted one by one
	cluster          bool // the cluster or the identities changed
	entries          int  // entries the delta writes or deletes
}

// liveIDs is the identity table the compiler reads: the agent swaps in
// the cluster's current table before every cluster update.
type liveIDs struct{ t engine.IdentityTable }

func (l *liveIDs) Lookup(x engine.Labels) (engine.Identity, bool) { return l.t.Lookup(x) }

// update brings the compiler to in and returns its state (the compiler's:
// never to be modified) and the delta from the state of the previous
// update, nil when it compiled from scratch.
func (c *incremental) update(in *inputs) (*engine.MapState, *engine.Delta, error) {
	versionOf := objectVersions(in)
	if c.comp == nil {
		return c.whole(in, versionOf)
	}
	var set []*engine.Policy
	var setKeys []objKey
	var setVersions []objVersion
	added := 0
	for i, p := range in.ir.Policies {
		k := originKey(p.Origin)
		v, had := c.versions[k]
		if nv := versionOf(i, k); !had || nv.rv == "" || v != nv {
			set, setKeys, setVersions = append(set, p), append(setKeys, k), append(setVersions, nv)
		}
		if !had {
			added++
		}
	}
	var gone []objKey
	if len(c.versions)+added != len(in.ir.Policies) {
		// Some compiled policies are no longer in the inputs.
		inIR := make(map[objKey]bool, len(in.ir.Policies))
		for _, p := range in.ir.Policies {
			inIR[originKey(p.Origin)] = true
		}
		for k := range c.versions {
			if !inIR[k] {
				gone = append(gone, k)
			}
		}
	}
	if len(set)+len(gone) > maxIncrementalPolicies {
		return c.whole(in, versionOf)
	}
	var delta *engine.Delta
	step := func(d *engine.Delta, err error) error {
		if err != nil {
			return err
		}
		delta = engine.ComposeDeltas(delta, d)
		return nil
	}
	var err error
	clusterChanged := !maps.Equal(c.ids0, in.ids) || !sameCluster(c.cluster, in.cluster)
	if clusterChanged {
		c.ids.t = in.ids
		err = step(c.comp.SetCluster(in.cluster))
	}
	for _, p := range set {
		if err != nil {
			break
		}
		err = step(c.comp.SetPolicy(p))
	}
	for _, k := range gone {
		if err != nil {
			break
		}
		err = step(c.comp.DeletePolicy(k.kind, k.namespace, k.name))
	}
	if err != nil {
		// The compiler may hold part of the change: start over next time.
		c.comp, c.versions, c.cluster = nil, nil, nil
		return nil, nil, fmt.Errorf("compile: %w", err)
	}
	for i, k := range setKeys {
		c.versions[k] = setVersions[i]
	}
	for _, k := range gone {
		delete(c.versions, k)
	}
	c.cluster, c.ids0 = in.cluster, in.ids
	if delta == nil {
		delta = &engine.Delta{}
	}
	c.last = compileInfo{changed: len(set), deleted: len(gone), cluster: clusterChanged, entries: delta.Len()}
	return c.comp.State(), delta, nil
}

// objVersion identifies one version of an object.
type objVersion struct {
	uid types.UID
	rv  string // empty: unknown, so the policy is compiled again
}

// objectVersions returns the version of the object of the IR's i-th
// policy, key k. The network objects among in.objects are in the IR's
// order when the agent gathered them (both sorted by key), so the version
// is found by position; otherwise by key.
func objectVersions(in *inputs) func(i int, k objKey) objVersion {
	nets := make([]*policyObject, 0, len(in.ir.Policies))
	for _, o := range in.objects {
		if o.network() {
			nets = append(nets, o)
		}
	}
	var byKey map[objKey]objVersion
	return func(i int, k objKey) objVersion {
		if i < len(nets) && nets[i].key == k {
			return objVersion{uid: nets[i].obj.GetUID(), rv: nets[i].obj.GetResourceVersion()}
		}
		if byKey == nil {
			byKey = make(map[objKey]objVersion, len(nets))
			for _, o := range nets {
				byKey[o.key] = objVersion{uid: o.obj.GetUID(), rv: o.obj.GetResourceVersion()}
			}
		}
		return byKey[k]
	}
}

// whole compiles in from scratch.
func (c *incremental) whole(in *inputs, versionOf func(int, objKey) objVersion) (*engine.MapState, *engine.Delta, error) {
	if c.ids == nil {
		c.ids = &liveIDs{}
	}
	c.ids.t = in.ids
	comp := engine.NewCompiler(c.node, c.ids)
	if _, err := comp.Compile(in.ir, in.cluster); err != nil {
		c.comp, c.versions = nil, nil
		return nil, nil, fmt.Errorf("compile: %w", err)
	}
	c.comp, c.cluster, c.ids0 = comp, in.cluster, in.ids
	c.versions = make(map[objKey]objVersion, len(in.ir.Policies))
	for i, p := range in.ir.Policies {
		k := originKey(p.Origin)
		c.versions[k] = versionOf(i, k)
	}
	c.last = compileInfo{whole: true}
	return comp.State(), nil, nil
}

// withOverrides returns a copy of s whose endpoint entries for the
// addresses in over are those of over.
func withOverrides(s *engine.MapState, over map[netip.Addr]engine.EndpointEntry) *engine.MapState {
	out := s.Clone()
	for a, e := range over {
		out.Endpoints[a] = e
	}
	return out
}

// kernelDelta returns the change from desired (the compiler's previous
// state with the previous overrides oldOver) to state with the overrides
// over, given cd, the compiler's delta to state, and the delta that undoes
// it on desired.
func kernelDelta(desired, state *engine.MapState, cd *engine.Delta, oldOver, over map[netip.Addr]engine.EndpointEntry) (kd, undo *engine.Delta) {
	kd = engine.ComposeDeltas(cd, nil) // a copy: cd's endpoints are redone below
	kd.Endpoints, kd.EndpointsDeleted = map[netip.Addr]engine.EndpointEntry{}, nil
	touched := map[netip.Addr]bool{}
	for a := range cd.Endpoints {
		touched[a] = true
	}
	for _, a := range cd.EndpointsDeleted {
		touched[a] = true
	}
	for a := range oldOver {
		touched[a] = true
	}
	for a := range over {
		touched[a] = true
	}
	for a := range touched {
		want, ok := over[a]
		if !ok {
			want, ok = state.Endpoints[a]
		}
		have, had := desired.Endpoints[a]
		switch {
		case ok && (!had || have != want):
			kd.Endpoints[a] = want
		case !ok && had:
			kd.EndpointsDeleted = append(kd.EndpointsDeleted, a)
		}
	}
	return kd, inverse(desired, kd)
}

// inverse returns the delta that turns s changed by d back into s.
func inverse(s *engine.MapState, d *engine.Delta) *engine.Delta {
	u := &engine.Delta{IPCache: map[netip.Prefix]engine.Identity{}, Endpoints: map[netip.Addr]engine.EndpointEntry{},
		Policy: map[engine.PolicyKey]engine.PolicyEntry{}, L7: map[engine.L7ID]engine.L7List{},
		FQDNSelectors: map[engine.Identity]engine.FQDN{}, FQDNNames: map[string][]netip.Addr{}}
	undoMap(s.IPCache, d.IPCache, d.IPCacheDeleted, u.IPCache, &u.IPCacheDeleted)
	undoMap(s.Endpoints, d.Endpoints, d.EndpointsDeleted, u.Endpoints, &u.EndpointsDeleted)
	undoMap(s.Policy, d.Policy, d.PolicyDeleted, u.Policy, &u.PolicyDeleted)
	undoMap(s.L7, d.L7, d.L7Deleted, u.L7, &u.L7Deleted)
	undoMap(s.FQDNSelectors, d.FQDNSelectors, d.FQDNSelectorsDeleted, u.FQDNSelectors, &u.FQDNSelectorsDeleted)
	undoMap(s.FQDNNames, d.FQDNNames, d.FQDNNamesDeleted, u.FQDNNames, &u.FQDNNamesDeleted)
	return u
}

func undoMap[K comparable, V any](s map[K]V, up map[K]V, del []K, uup map[K]V, udel *[]K) {
	note := func(k K) {
		if v, ok := s[k]; ok {
			uup[k] = v
		} else {
			*udel = append(*udel, k)
		}
	}
	for k := range up {
		note(k)
	}
	for _, k := range del {
		if _, ok := s[k]; ok {
			note(k)
		}
	}
}

// sameCluster reports whether a and b (both indexed) describe the same
// cluster, whatever the order of their lists (the cache lists in no
// particular order).
func sameCluster(a, b *engine.Cluster) bool {
	if a == nil || b == nil || a == b {
		return a == b
	}
	if len(a.Endpoints) != len(b.Endpoints) || len(a.Nodes) != len(b.Nodes) ||
		!maps.EqualFunc(a.Namespaces, b.Namespaces, maps.Equal) ||
		!sameSet(a.APIServer, b.APIServer, netip.Addr.Compare) ||
		!sameSet(a.PodCIDRs, b.PodCIDRs, func(x, y netip.Prefix) int { return cmpPrefix(x, y) }) ||
		!maps.EqualFunc(a.DNS, b.DNS, slices.Equal) || !reflect.DeepEqual(a.Labels, b.Labels) {
		return false
	}
	for i := range b.Nodes {
		n := &b.Nodes[i]
		o, ok := a.Node(n.Name)
		if !ok || !maps.Equal(o.Labels, n.Labels) || !slices.Equal(o.IPs, n.IPs) {
			return false
		}
	}
	for i := range b.Endpoints {
		e := &b.Endpoints[i]
		o, ok := a.Endpoint(e.ID())
		if !ok || o.Namespace != e.Namespace || o.Name != e.Name || o.ServiceAccount != e.ServiceAccount || o.Node != e.Node ||
			o.Unmanaged != e.Unmanaged || !maps.Equal(o.Labels, e.Labels) || !slices.Equal(o.IPs, e.IPs) || !slices.Equal(o.Ports, e.Ports) {
			return false
		}
	}
	return true
}

func sameSet[T comparable](a, b []T, order func(x, y T) int) bool {
	if len(a) != len(b) {
		return false
	}
	return slices.Equal(slices.SortedFunc(slices.Values(a), order), slices.SortedFunc(slices.Values(b), order))
}

func cmpPrefix(x, y netip.Prefix) int {
	if c := x.Addr().Compare(y.Addr()); c != 0 {
		return c
	}
	return x.Bits() - y.Bits()
}
