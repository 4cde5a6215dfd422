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
	"net/netip"
	"slices"
	"sync"

	"github.com/palisade-dev/palisade/internal/engine"
	"github.com/palisade-dev/palisade/internal/flows"
)

// ruleTable is the observer's one table of rules for every generation it
// keeps: each rule ID has the versions it had, each valid from the
// generation that added it until the one that replaced it. A sync changes
// the versions of the policies that changed, so it costs work in
// proportion to the change, and the kept generations share every rule
// that did not change instead of holding a table each.
type ruleTable struct {
	ids  map[engine.RuleID][]*ruleVersion
	pols map[objKey]*tablePolicy
	// byPol are pols by normalized policy: an unchanged policy is found
	// by pointer, without hashing its key.
	byPol map[*engine.Policy]*tablePolicy
	// retired are the versions replaced since the last prune, in the
	// order they were (their to never decreases).
	retired []*ruleVersion
	sweep   uint64
}

// ruleVersion is what a rule ID resolves to from generation from until
// generation to (0: still).
type ruleVersion struct {
	id       engine.RuleID
	from, to uint64
	p        flows.Policy
}

// tablePolicy is the normalized policy a version of rules came from.
type tablePolicy struct {
	pol   *engine.Policy
	rules []*ruleVersion
	sweep uint64
}

// update makes the table's current rules those of in, from generation gen
// on. A policy whose normalized form is the same pointer as before (the
// object cache keeps it per object version) keeps its rules.
func (t *ruleTable) update(gen uint64, in *inputs) {
	if t.ids == nil {
		t.ids, t.pols, t.byPol = map[engine.RuleID][]*ruleVersion{}, map[objKey]*tablePolicy{}, map[*engine.Policy]*tablePolicy{}
	}
	t.sweep++
	var changed []*engine.Policy
	for _, pol := range in.ir.Policies {
		if tp := t.byPol[pol]; tp != nil {
			tp.sweep = t.sweep
			continue
		}
		changed = append(changed, pol)
	}
	objectOf := objectFinder(in.objects, len(changed))
	for _, pol := range changed {
		k := originKey(pol.Origin)
		if tp := t.pols[k]; tp != nil {
			t.retire(gen, tp)
			delete(t.byPol, tp.pol)
		}
		obj := objectOf(k)
		tp := &tablePolicy{pol: pol, sweep: t.sweep, rules: make([]*ruleVersion, 0, len(pol.Rules))}
		for _, r := range pol.Rules {
			rv := &ruleVersion{id: r.ID, from: gen, p: policyOf(r.Origin, obj)}
			t.ids[r.ID] = append(t.ids[r.ID], rv)
			tp.rules = append(tp.rules, rv)
		}
		t.pols[k] = tp
		t.byPol[pol] = tp
	}
	if len(t.pols) != len(in.ir.Policies) {
		for k, tp := range t.pols {
			if tp.sweep != t.sweep {
				t.retire(gen, tp)
				delete(t.pols, k)
				delete(t.byPol, tp.pol)
			}
		}
	}
}

// retire ends the versions of tp's rules at generation gen.
func (t *ruleTable) retire(gen uint64, tp *tablePolicy) {
	for _, rv := range tp.rules {
		rv.to = gen
		if rv.from == gen {
			// Replaced in the generation that added it: no event names it.
			t.drop(rv)
			continue
		}
		t.retired = append(t.retired, rv)
	}
}

// prune drops the versions that ended at or before generation oldest, the
// oldest kept: no kept generation has them.
func (t *ruleTable) prune(oldest uint64) {
	i := 0
	for ; i < len(t.retired) && t.retired[i].to <= oldest; i++ {
		t.drop(t.retired[i])
	}
	t.retired = t.retired[i:]
}

func (t *ruleTable) drop(rv *ruleVersion) {
	vs := slices.DeleteFunc(t.ids[rv.id], func(x *ruleVersion) bool { return x == rv })
	if len(vs) == 0 {
		delete(t.ids, rv.id)
		return
	}
	t.ids[rv.id] = vs
}

// lookup resolves a rule ID: as generation gen had it when exact (gen is
// a kept generation), else as the newest version has it.
func (t *ruleTable) lookup(gen uint64, id engine.RuleID, exact bool) (flows.Policy, bool) {
	vs := t.ids[id]
	if len(vs) == 0 {
		return flows.Policy{}, false
	}
	if exact {
		for i := len(vs) - 1; i >= 0; i-- {
			if v := vs[i]; v.from <= gen && (v.to == 0 || gen < v.to) {
				return v.p, true
			}
		}
	}
	return vs[len(vs)-1].p, true
}

func originKey(o engine.Origin) objKey {
	return objKey{kind: o.Kind, namespace: o.Namespace, name: o.Name}
}

// objectFinder returns a lookup of objs by key: a scan for a few lookups,
// a map for many.
func objectFinder(objs []*policyObject, lookups int) func(objKey) *policyObject {
	if lookups <= 8 {
		return func(k objKey) *policyObject {
			for _, o := range objs {
				if o.key == k {
					return o
				}
			}
			return nil
		}
	}
	m := make(map[objKey]*policyObject, len(objs))
	for _, o := range objs {
		m[o.key] = o
	}
	return func(k objKey) *policyObject { return m[k] }
}

// policyOf is the flow's policy of a rule or policy origin, with the
// object's revision and PolicySet (obj may be nil).
func policyOf(o engine.Origin, obj *policyObject) flows.Policy {
	p := flows.Policy{Kind: o.Kind, Namespace: o.Namespace, Name: o.Name, Path: o.Path, File: o.File,
		Line: o.Line, Column: o.Column, Revision: o.Revision}
	if obj != nil {
		if p.Revision == "" {
			p.Revision = obj.revision
		}
		if obj.set.name != "" {
			p.PolicySet = obj.set.namespace + "/" + obj.set.name
		}
	}
	return p
}

// isolation finds, the first time an address is asked for in a
// generation, the policies that make a local enforcement point
// default-deny: a drop for default deny is rare next to a sync, and
// computing it for every point of every generation would cost a pass over
// every policy per point per sync.
type isolationIndex struct {
	mu sync.Mutex
	// points are the local enforcement points by address; nil until the
	// first lookup.
	points map[netip.Addr]*isoPoint
	objs   func(objKey) *policyObject
}

type isoPoint struct {
	labels engine.Labels     // a workload's, nil for the node
	node   map[string]string // the node's labels
	iso    *[2]isolation     // nil until computed
}
