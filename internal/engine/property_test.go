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

package engine_test

// The property tests of the node compiler. Random policy sets and clusters
// come from the seeded generator of package enginetest (shared with the
// datapath's differential test); every test prints its seeds, and
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

	"github.com/palisade-dev/palisade/internal/engine"
	"github.com/palisade-dev/palisade/internal/engine/enginetest"
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

// newGen returns the generator of seed, with colliding policy names.
func newGen(t testing.TB, seed uint64) *enginetest.Gen {
	g := enginetest.New(seed)
	g.Collide = collidingNames(t)
	return g
}

// compileAll compiles ir for every node of c with identities from ids.
func compileAll(ir *engine.IR, c *engine.Cluster, ids *engine.MemoryAllocator) (map[string]*engine.MapState, error) {
	if err := engine.AllocateIdentities(c, ids); err != nil {
		return nil, err
	}
	out := map[string]*engine.MapState{}
	for _, n := range c.Nodes {
		m, err := engine.Compile(ir, c, n.Name, ids)
		if err != nil {
			return nil, fmt.Errorf("compile for node %s: %w", n.Name, err)
		}
		out[n.Name] = m
	}
	return out, nil
}

// TestCompileProperty is the property test of the node compiler: for
// random policy sets, clusters and flows, looking the flow up in the
// compiled state of the nodes enforcing it gives the verdict, reason and
// deciding rule of the reference evaluator, per side.
func TestCompileProperty(t *testing.T) {
	const flowsPerSeed = 80
	total, sides, fqdnFlows, fqdnNames := 0, 0, 0, 0
	tally := map[string]int{} // verdict/egress reason/ingress reason → flows
	for _, seed := range seeds(400, 1) {
		g := newGen(t, seed)
		c := g.Cluster()
		if err := c.Index(); err != nil {
			t.Fatalf("seed %d: cluster: %v", seed, err)
		}
		pols := g.Policies(1 + g.Pick(8))
		ids := engine.NewMemoryAllocator()
		ir := engine.BuildIR(pols)
		states, err := compileAll(ir, c, ids)
		if err != nil {
			t.Fatalf("seed %d: %v", seed, err)
		}
		fqdnNames += checkFQDNTables(t, seed, states)
		fp := enginetest.NewFlowPool(c, ir)
		for range flowsPerSeed {
			f := g.Flow(fp)
			total++
			for _, m := range states {
				src, dst := f.Src, f.Dst
				if f.Reply {
					src, dst = dst, src
				}
				if engine.FQDNHits(m, src, dst, f.Proto, f.Port) > 0 {
					fqdnFlows++
					break
				}
			}
			res := engine.Evaluate(ir, c, f)
			tally[res.Verdict.String()+"/"+res.Egress.Reason.String()+"/"+res.Ingress.Reason.String()]++
			diffs, _ := engine.CompareFlow(ir, c, states, f)
			sides += 2
			if len(diffs) == 0 {
				continue
			}
			fails := func(ps []*engine.Policy) bool {
				ir := engine.BuildIR(ps)
				st, err := compileAll(ir, c, ids)
				if err != nil {
					return true
				}
				d, _ := engine.CompareFlow(ir, c, st, f)
				return len(d) > 0
			}
			min := engine.BuildIR(enginetest.Shrink(pols, fails))
			st, _ := compileAll(min, c, ids)
			d, _ := engine.CompareFlow(min, c, st, f)
			t.Fatalf("seed %d (rerun: go test ./internal/engine -run TestCompileProperty -engine.seed=%d)\nflow: %s\n%s\nminimal policies:\n%scluster:\n%s",
				seed, seed, enginetest.FormatFlow(f), strings.Join(d, "\n"), enginetest.FormatPolicies(min), enginetest.FormatCluster(c, ids))
		}
	}
	t.Logf("%d flows (%d sides) agree with the reference evaluator; %d decided with selector identities; %d learned names checked against the automaton", total, sides, fqdnFlows, fqdnNames)
	if fqdnFlows < total/200 {
		t.Errorf("only %d of %d flows met a toFQDNs rule: the property test does not cover toFQDNs", fqdnFlows, total)
	}
	keys := slices.Sorted(maps.Keys(tally))
	for _, k := range keys {
		t.Logf("  %-45s %d", k, tally[k])
	}
}

// checkFQDNTables checks that the kernel's automaton of each state's
// selectors (engine.CompileFQDN) gives every learned name the selector
// identities LookupSide probes for its addresses (FQDN.Matches), and
// returns how many names it checked.
func checkFQDNTables(t *testing.T, seed uint64, states map[string]*engine.MapState) int {
	t.Helper()
	n := 0
	for node, m := range states {
		tb, err := engine.CompileFQDN(m.FQDNSelectors)
		if err != nil {
			t.Fatalf("seed %d, node %s: %v", seed, node, err)
		}
		for name := range m.FQDNNames {
			var want []engine.Identity
			for id, f := range m.FQDNSelectors {
				if f.Matches(name) {
					want = append(want, id)
				}
			}
			slices.Sort(want)
			if got := tb.Lookup(name); !slices.Equal(got, want) {
				t.Fatalf("seed %d, node %s: %q: automaton gives %v, the selectors %v", seed, node, name, got, want)
			}
			n++
		}
	}
	return n
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
	seen := map[engine.RuleID]string{}
	var out []string
	exact := 0
	r := rand.New(rand.NewPCG(1, 2)) // fixed: the names are part of the test
	for i := 0; exact < 3 && i < 1<<21; i++ {
		name := fmt.Sprintf("c%08x", r.Uint32())
		h := engine.RuleHash(engine.Origin{Kind: "NetworkPolicy", Namespace: "shop", Name: name, Path: "spec.ingress[0]"})
		for _, d := range []engine.RuleID{0, 1} {
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
// L4 entries, endpoints, nodes, named ports, DNS answers. The IR keeps the
// rule IDs of ir.
func shuffled(g *enginetest.Gen, ir *engine.IR, c *engine.Cluster) (*engine.IR, *engine.Cluster) {
	out := &engine.IR{}
	for _, p := range ir.Policies {
		cp := *p
		cp.Rules = make([]*engine.Rule, len(p.Rules))
		for i, r := range p.Rules {
			cr := *r
			cr.Peer.Endpoints = slices.Clone(r.Peer.Endpoints)
			cr.Peer.Entities = slices.Clone(r.Peer.Entities)
			cr.Peer.FQDNs = slices.Clone(r.Peer.FQDNs)
			cr.Peer.CIDRs = slices.Clone(r.Peer.CIDRs)
			for j := range cr.Peer.CIDRs {
				cr.Peer.CIDRs[j].Except = slices.Clone(cr.Peer.CIDRs[j].Except)
				g.R.Shuffle(len(cr.Peer.CIDRs[j].Except), func(a, b int) {
					cr.Peer.CIDRs[j].Except[a], cr.Peer.CIDRs[j].Except[b] = cr.Peer.CIDRs[j].Except[b], cr.Peer.CIDRs[j].Except[a]
				})
			}
			if r.L4 != nil {
				cr.L4 = slices.Clone(r.L4)
			}
			enginetest.Shuffle(g, cr.Peer.Endpoints)
			enginetest.Shuffle(g, cr.Peer.Entities)
			enginetest.Shuffle(g, cr.Peer.FQDNs)
			enginetest.Shuffle(g, cr.Peer.CIDRs)
			enginetest.Shuffle(g, cr.L4)
			cp.Rules[i] = &cr
		}
		out.Policies = append(out.Policies, &cp)
	}
	enginetest.Shuffle(g, out.Policies)
	oc := enginetest.CopyCluster(c)
	enginetest.Shuffle(g, oc.Endpoints)
	enginetest.Shuffle(g, oc.Nodes)
	enginetest.Shuffle(g, oc.APIServer)
	enginetest.Shuffle(g, oc.PodCIDRs)
	for i := range oc.Endpoints {
		enginetest.Shuffle(g, oc.Endpoints[i].Ports)
	}
	for _, a := range oc.DNS {
		enginetest.Shuffle(g, a)
	}
	return out, oc
}

// TestCompileDeterministic checks that the map state depends only on the
// input, not on the order of policies, peers, ports, endpoints and nodes,
// nor on the order in which a fresh allocator saw the workloads.
func TestCompileDeterministic(t *testing.T) {
	for _, seed := range seeds(60, 5000) {
		g := newGen(t, seed)
		c := g.Cluster()
		ir := engine.BuildIR(g.Policies(2 + g.Pick(8)))
		base, err := compileAll(ir, c, engine.NewMemoryAllocator())
		if err != nil {
			t.Fatalf("seed %d: %v", seed, err)
		}
		for i := range 3 {
			sir, sc := shuffled(g, ir, c)
			got, err := compileAll(sir, sc, engine.NewMemoryAllocator())
			if err != nil {
				t.Fatalf("seed %d: %v", seed, err)
			}
			for node, m := range base {
				if ok, diff := engine.StatesEqual(m, got[node]); !ok {
					t.Fatalf("seed %d, shuffle %d, node %s: the state depends on input order:\n%s", seed, i, node, diff)
				}
			}
		}
	}
}

// encodeDelta renders a delta canonically, for comparison.
func encodeDelta(d *engine.Delta) string {
	w := &engine.MapState{IPCache: d.IPCache, Endpoints: d.Endpoints, Policy: d.Policy, L7: d.L7,
		FQDNSelectors: d.FQDNSelectors, FQDNNames: d.FQDNNames}
	var b strings.Builder
	b.Write(w.Encode())
	for _, k := range slices.SortedFunc(slices.Values(d.IPCacheDeleted), func(a, b netip.Prefix) int {
		return cmp.Or(a.Addr().Compare(b.Addr()), cmp.Compare(a.Bits(), b.Bits()))
	}) {
		fmt.Fprintf(&b, "-ipcache %s\n", k)
	}
	for _, k := range slices.SortedFunc(slices.Values(d.EndpointsDeleted), netip.Addr.Compare) {
		fmt.Fprintf(&b, "-endpoint %s\n", k)
	}
	for _, k := range slices.SortedFunc(slices.Values(d.PolicyDeleted), func(a, b engine.PolicyKey) int {
		return cmp.Or(cmp.Compare(a.PolicyID, b.PolicyID), cmp.Compare(a.Direction, b.Direction), cmp.Compare(a.Identity, b.Identity),
			cmp.Compare(a.Proto, b.Proto), cmp.Compare(a.Port, b.Port), cmp.Compare(a.PrefixLen, b.PrefixLen))
	}) {
		fmt.Fprintf(&b, "-policy %+v\n", k)
	}
	for _, k := range slices.Sorted(slices.Values(d.L7Deleted)) {
		fmt.Fprintf(&b, "-l7 %d\n", k)
	}
	for _, k := range slices.Sorted(slices.Values(d.FQDNSelectorsDeleted)) {
		fmt.Fprintf(&b, "-fqdnSelector %d\n", k)
	}
	for _, k := range slices.Sorted(slices.Values(d.FQDNNamesDeleted)) {
		fmt.Fprintf(&b, "-fqdnName %s\n", k)
	}
	return b.String()
}

// policyKey identifies a policy.
type policyKey struct{ kind, namespace, name string }

func (k policyKey) compare(o policyKey) int {
	return cmp.Or(cmp.Compare(k.kind, o.kind), cmp.Compare(k.namespace, o.namespace), cmp.Compare(k.name, o.name))
}

// TestCompilerIncremental applies random changes to an incremental
// Compiler: policies added, changed and removed, workloads and identities
// added, removed and changed, DNS answers changed. After each, its state
// must equal a from-scratch Compile of the same input, and the Delta it
// returned must be exactly the difference between the old and the new
// state (nothing missing, nothing that did not change).
func TestCompilerIncremental(t *testing.T) {
	changes := 0
	for _, seed := range seeds(60, 9000) {
		g := newGen(t, seed)
		c := g.Cluster()
		ids := engine.NewMemoryAllocator()
		node := enginetest.PickOf(g, "n1", "n2", "cp")
		comp := engine.NewCompiler(node, ids)
		pols := map[policyKey]*engine.Policy{}
		var log []string
		step := func(what string, fn func() (*engine.Delta, error)) {
			changes++
			log = append(log, what)
			old := comp.State().Clone()
			d, err := fn()
			if err != nil {
				t.Fatalf("seed %d: %s: %v", seed, what, err)
			}
			list := slices.Collect(maps.Values(pols))
			fresh, err := engine.Compile(engine.BuildIR(list), c, node, ids)
			if err != nil {
				t.Fatalf("seed %d: %s: compile: %v", seed, what, err)
			}
			if ok, diff := engine.StatesEqual(fresh, comp.State()); !ok {
				t.Fatalf("seed %d (-engine.seed=%d), node %s, after:\n  %s\nincremental state differs from a full compile (- full, + incremental):\n%s\npolicies:\n%s",
					seed, seed, node, strings.Join(log, "\n  "), diff, enginetest.FormatPolicies(engine.BuildIR(list)))
			}
			if got, want := encodeDelta(d), encodeDelta(engine.Diff(old, comp.State())); got != want {
				t.Fatalf("seed %d (-engine.seed=%d), node %s, after:\n  %s\ndelta is not the difference of the states:\ngot:\n%s\nwant:\n%s",
					seed, seed, node, strings.Join(log, "\n  "), got, want)
			}
			applied := old.Clone()
			d.Apply(applied)
			if ok, diff := engine.StatesEqual(applied, comp.State()); !ok {
				t.Fatalf("seed %d: %s: applying the delta does not give the new state:\n%s", seed, what, diff)
			}
		}
		if err := engine.AllocateIdentities(c, ids); err != nil {
			t.Fatal(err)
		}
		step("set cluster", func() (*engine.Delta, error) { return comp.SetCluster(c) })
		next := 0
		for range 30 {
			switch k := g.Pick(10); {
			case k < 4 || len(pols) == 0:
				var p *engine.Policy
				if len(g.Collide) > 0 && g.Chance(0.3) {
					p = g.Policy(enginetest.PickOf(g, g.Collide...))
				} else {
					next++
					p = g.Policy(fmt.Sprintf("q%d", next))
				}
				key := policyKey{p.Origin.Kind, p.Origin.Namespace, p.Origin.Name}
				pols[key] = p
				step("set "+p.Origin.Policy(), func() (*engine.Delta, error) { return comp.SetPolicy(p) })
			case k < 6:
				keys := slices.SortedFunc(maps.Keys(pols), policyKey.compare)
				key := enginetest.PickOf(g, keys...)
				p := g.Mutate(pols[key])
				pols[key] = p
				step("change "+p.Origin.Policy(), func() (*engine.Delta, error) { return comp.SetPolicy(p) })
			case k < 7:
				keys := slices.SortedFunc(maps.Keys(pols), policyKey.compare)
				key := enginetest.PickOf(g, keys...)
				delete(pols, key)
				step("delete "+key.kind+" "+key.namespace+"/"+key.name, func() (*engine.Delta, error) {
					return comp.DeletePolicy(key.kind, key.namespace, key.name)
				})
			default:
				nc, what := g.MutateCluster(c)
				if err := nc.Index(); err != nil {
					continue // e.g. an address taken twice: not a valid cluster
				}
				if err := engine.AllocateIdentities(nc, ids); err != nil {
					t.Fatal(err)
				}
				c = nc
				step(what, func() (*engine.Delta, error) { return comp.SetCluster(nc) })
			}
		}
		// The rule IDs the compiler uses are Build's.
		want := engine.BuildIR(slices.Collect(maps.Values(pols)))
		got := comp.IR()
		for _, r := range want.Rules() {
			if gr, ok := got.Rule(r.ID); !ok || gr.Origin != r.Origin {
				t.Fatalf("seed %d: rule %s %s: compiler has no rule %d", seed, r.Origin.Policy(), r.Origin.Path, r.ID)
			}
		}
	}
	t.Logf("%d incremental changes match full compiles", changes)
}

// TestEnginetestIR checks that enginetest.IR, which the datapath's tests
// build their IR with, gives the rule IDs of Build, colliding names
// included.
func TestEnginetestIR(t *testing.T) {
	for _, seed := range seeds(40, 12000) {
		g := newGen(t, seed)
		pols := g.Policies(2 + g.Pick(8))
		want, got := engine.BuildIR(pols), enginetest.IR(pols)
		if a, b := enginetest.FormatPolicies(want), enginetest.FormatPolicies(got); a != b {
			t.Fatalf("seed %d: enginetest.IR differs from Build's:\n%s\nwant:\n%s", seed, b, a)
		}
	}
}
