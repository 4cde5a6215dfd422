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
	"errors"
	"net/netip"
	"slices"
)

// The node compiler turns (IR, cluster, identity table) into the MapState of
// one node. Its model:
//
//   - Peers are identities. Workloads have their cluster-wide identity;
//     nodes, unmanaged pods, pod-CIDR addresses, the world and the API
//     server have reserved ones; every prefix that a CIDR rule names (cidr
//     and except) gets a node-local identity of its own, and so does every
//     FQDN selector (see compile_classes.go). Because every rule prefix is
//     in the ipcache, an address resolving to prefix P is in CIDR rule
//     (C, except E) exactly when P ⊆ C and P ⊄ e for every e. A selector
//     identity has no ipcache entry: rules with FQDN peers are compiled
//     under it, and the datapath probes it for an address that a name the
//     selector selects resolved to (MapState, FQDNEligible).
//   - Enforcement points ("subjects") are the node's managed workloads, one
//     PolicyID per identity, and the node itself (PolicyID IdentityHost),
//     which is always in the endpoint map so that a host nobody selects is
//     "not selected", as Evaluate says.
//   - A group is (PolicyID, direction, peer identity); identity 0 holds the
//     rules that apply to every peer. A group's rules are swept over the
//     24-bit proto<<16|port space into disjoint segments, equal neighbours
//     are merged, and each segment is written as aligned prefixes: a range
//     costs at most 2·24 entries, never one per port.
//   - Named ports resolve on the destination identity: ingress on the
//     subject, egress on the peer. An egress rule for every peer with a
//     named port is expanded to the identities that have that port name.
//
// Incremental updates keep the groups' rules and emitted segments, mark the
// groups a change touches and recompute only those; the delta is the
// difference between the old and the new value of every touched key, so it
// is exactly diff(old, new).

// IdentityTable resolves a workload's security labels to its cluster-wide
// identity. Allocator implements it.
type IdentityTable interface {
	Lookup(l Labels) (Identity, bool)
}

// AllocateIdentities allocates an identity for the labels of every managed
// workload of c, in sorted label order, so that the numbers a fresh
// allocator hands out do not depend on the order of c.Endpoints.
func AllocateIdentities(c *Cluster, a Allocator) error {
	seen := map[string]Labels{}
	for i := range c.Endpoints {
		e := &c.Endpoints[i]
		if e.Unmanaged {
			continue
		}
		l := c.WorkloadLabels(e)
		seen[l.String()] = l
	}
	keys := make([]string, 0, len(seen))
	for k := range seen {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		if _, ok := a.Lookup(seen[k]); ok {
			continue
		}
		if _, err := a.Allocate(seen[k]); err != nil {
			return err
		}
	}
	return nil
}

// Compile compiles the policies of ir for node: the desired content of
// every datapath map of that node. The result depends only on the input,
// not on the order of policies, rules, endpoints or nodes.
func Compile(ir *IR, c *Cluster, node string, ids IdentityTable) (*MapState, error) {
	comp := NewCompiler(node, ids)
	if err := comp.compile(ir, c); err != nil {
		return nil, err
	}
	return comp.State(), nil
}

// Compiler is the incremental node compiler of one node. It holds the
// current input and desired state; every method that changes the input
// returns the Delta that turns the previous state into the new one, which
// is also the state a from-scratch Compile of the new input produces. On an
// error the compiler keeps its previous input and state. A Compiler is not
// safe for concurrent use.
type Compiler struct {
	node string
	ids  IdentityTable

	state *MapState
	view  *clusterView

	policies map[policyKey]*compPolicy
	slots    map[RuleID]*compRule // rule IDs in use, for incremental assignment

	classes      map[Identity]*peerClass     // every peer identity but 0
	locals       map[netip.Prefix]*peerClass // node-local prefix classes by prefix
	sels         map[FQDN]*peerClass         // selector classes by normalised selector
	untouched    []netip.Addr                // API server addresses that keep IdentityKubeAPIServer
	subjects     map[Identity]*subjectInfo   // local enforcement points by PolicyID
	peerSpecs    map[string]*peerSpec
	subjSpecs    map[string]*subjSpec
	wildNamed    map[string][]*compRule // egress rules for every peer with named ports, by name
	prefixes     map[netip.Prefix]int   // CIDR rule prefixes (cidr and except), counted
	fqdns        map[FQDN]int           // FQDN selectors, counted
	localProbe   int                    // local identities not at their hash slot
	localsDirty  bool                   // prefixes, FQDN selectors or the cluster changed
	ipcacheDirty bool                   // the ipcache must be recomputed
	building     bool                   // a full compile is running

	groups map[groupKey]*polGroup
	dirty  []*polGroup
	l7     l7Table
	track  tracker
	buf    sweepBuf
}

// errRebuild makes an incremental update fall back to a full compile: an
// identity or L7 hash collision changed numbers that other entries use.
var errRebuild = errors.New("engine: rebuild needed")

// maxIncrementalClasses bounds how many identities one cluster update may
// add or remove incrementally; more is cheaper as a full compile.
const maxIncrementalClasses = 64

// NewCompiler returns a compiler for node with an empty input: no
// policies and an empty cluster.
func NewCompiler(node string, ids IdentityTable) *Compiler {
	c := &Compiler{node: node, ids: ids}
	v, err := newClusterView(&Cluster{}, node, ids)
	if err != nil {
		panic("engine: empty cluster: " + err.Error())
	}
	c.reset(v)
	c.build(nil)
	return c
}

// State returns the current desired state. It belongs to the compiler and
// changes with the next update; use Clone to keep a copy.
func (c *Compiler) State() *MapState { return c.state }

// Compile replaces the whole input with ir and cl and compiles from
// scratch. ir must come from Build, whose rule IDs the compiler keeps and
// continues.
func (c *Compiler) Compile(ir *IR, cl *Cluster) (*Delta, error) {
	old := c.state
	if err := c.compile(ir, cl); err != nil {
		return nil, err
	}
	return Diff(old, c.state), nil
}

// compile replaces the input and compiles from scratch, without a delta.
func (c *Compiler) compile(ir *IR, cl *Cluster) error {
	v, err := newClusterView(cl, c.node, c.ids)
	if err != nil {
		return err
	}
	pols := make([]*compPolicy, 0, len(ir.Policies))
	for _, p := range ir.Policies {
		cp := newCompPolicy(p)
		for i, r := range p.Rules {
			cp.rules[i].id = r.ID
		}
		pols = append(pols, cp)
	}
	c.reset(v)
	c.build(pols)
	return nil
}

// SetPolicy adds p, or replaces the policy of the same kind, namespace and
// name. The rule IDs of p are ignored: the compiler assigns them as Build
// would for the whole current set of policies (see IR).
func (c *Compiler) SetPolicy(p *Policy) (*Delta, error) {
	return c.update(func() error {
		np := newCompPolicy(p)
		old := c.policies[np.key]
		c.replacePolicy(old, np)
		return c.syncLocals()
	})
}

// DeletePolicy removes the policy kind namespace/name; it is not an error
// if there is none.
func (c *Compiler) DeletePolicy(kind, namespace, name string) (*Delta, error) {
	return c.update(func() error {
		old := c.policies[policyKey{kind, namespace, name}]
		if old == nil {
			return nil
		}
		c.replacePolicy(old, nil)
		return c.syncLocals()
	})
}

// SetCluster replaces the cluster: endpoints, nodes, namespaces, API
// server addresses, pod CIDRs and DNS answers. Every managed workload's
// labels must have an identity in the identity table.
func (c *Compiler) SetCluster(cl *Cluster) (*Delta, error) {
	v, err := newClusterView(cl, c.node, c.ids)
	if err != nil {
		return nil, err
	}
	plan := c.planCluster(v)
	if plan.size() > maxIncrementalClasses {
		return c.rebuild(v), nil
	}
	return c.update(func() error {
		c.applyCluster(v, plan)
		return c.syncLocals()
	})
}

// IR returns the current policies as an IR, with the rule IDs the
// compiler uses in the map state (the IDs Build gives the same policies).
func (c *Compiler) IR() *IR {
	ir := &IR{rules: map[RuleID]*Rule{}}
	for _, cp := range c.sortedPolicies() {
		p := *cp.pol
		p.Rules = make([]*Rule, len(cp.rules))
		for i, r := range cp.rules {
			cr := *r.r
			cr.ID = r.id
			p.Rules[i] = &cr
			ir.rules[cr.ID] = &cr
		}
		ir.Policies = append(ir.Policies, &p)
	}
	return ir
}

func (c *Compiler) sortedPolicies() []*compPolicy {
	pols := make([]*compPolicy, 0, len(c.policies))
	for _, p := range c.policies {
		pols = append(pols, p)
	}
	slices.SortFunc(pols, func(a, b *compPolicy) int { return a.key.compare(b.key) })
	return pols
}

// reset empties the compiler's derived state, keeping node and identities.
func (c *Compiler) reset(v *clusterView) {
	*c = Compiler{node: c.node, ids: c.ids, view: v}
	c.state = &MapState{
		IPCache:   map[netip.Prefix]Identity{},
		Endpoints: map[netip.Addr]EndpointEntry{},
		Policy:    map[PolicyKey]PolicyEntry{},
		L7:        map[L7ID]L7List{},

		FQDNSelectors: map[Identity]FQDN{},
		FQDNNames:     map[string][]netip.Addr{},
	}
	c.policies = map[policyKey]*compPolicy{}
	c.slots = map[RuleID]*compRule{}
	c.classes = map[Identity]*peerClass{}
	c.locals = map[netip.Prefix]*peerClass{}
	c.sels = map[FQDN]*peerClass{}
	c.subjects = map[Identity]*subjectInfo{}
	c.peerSpecs = map[string]*peerSpec{}
	c.subjSpecs = map[string]*subjSpec{}
	c.wildNamed = map[string][]*compRule{}
	c.prefixes = map[netip.Prefix]int{}
	c.fqdns = map[FQDN]int{}
	c.groups = map[groupKey]*polGroup{}
	c.l7 = newL7Table()
}

// rebuild compiles the current policies with cluster view v from scratch
// and returns the difference to the state before.
func (c *Compiler) rebuild(v *clusterView) *Delta {
	var pols []*compPolicy
	for _, old := range c.sortedPolicies() {
		cp := newCompPolicy(old.pol)
		for i, r := range old.rules {
			cp.rules[i].id = r.id
		}
		pols = append(pols, cp)
	}
	old := c.state
	c.reset(v)
	c.build(pols)
	return Diff(old, c.state)
}

// update runs an incremental change: fn changes the input and marks the
// groups it touches; update recomputes them, refreshes the endpoint map and
// the ipcache, and returns the delta. fn fails only with errRebuild, after
// which the state is restored and compiled from scratch.
func (c *Compiler) update(fn func() error) (*Delta, error) {
	c.track.begin()
	err := fn()
	if err == nil {
		err = c.recomputeDirty()
	}
	if err != nil {
		if !errors.Is(err, errRebuild) {
			return nil, err
		}
		c.track.restore(c.state)
		c.dirty = nil
		return c.rebuild(c.view), nil
	}
	d := c.track.finish(c.state)
	diffInto(d, c.state, c.computeIPCache(), c.computeEndpoints())
	sels, names := c.computeFQDN()
	diffFQDNInto(d, c.state, sels, names)
	return d, nil
}

// policyKey identifies a policy.
type policyKey struct{ kind, namespace, name string }

func (k policyKey) compare(o policyKey) int {
	return cmp.Or(cmp.Compare(k.kind, o.kind), cmp.Compare(k.namespace, o.namespace), cmp.Compare(k.name, o.name))
}

// compPolicy is a policy as the compiler holds it.
type compPolicy struct {
	key   policyKey
	pol   *Policy
	subj  *subjSpec
	rules []*compRule
}

func newCompPolicy(p *Policy) *compPolicy {
	cp := &compPolicy{key: policyKey{p.Origin.Kind, p.Origin.Namespace, p.Origin.Name}, pol: p}
	cp.rules = make([]*compRule, len(p.Rules))
	for i, r := range p.Rules {
		cp.rules[i] = newCompRule(cp, i, r)
	}
	return cp
}

// ruleOrder is the order in which Build assigns rule IDs.
func ruleOrder(a, b *compRule) int {
	if c := a.pol.key.compare(b.pol.key); c != 0 {
		return c
	}
	return cmp.Compare(a.idx, b.idx)
}
