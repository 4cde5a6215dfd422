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

package guard

import (
	"bytes"
	"encoding/json"
	"fmt"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/open-policy-agent/opa/v1/ast"

	"github.com/palisade-dev/palisade/internal/policy"
)

// APIVersion versions the change-set and decision documents. A field is
// never removed or changes meaning within a version; see docs/guards.md.
const APIVersion = "guard.palisade.dev/v1"

// Input budgets. The loader already bounds what a repository may produce;
// these bound what reaches Rego, because a guard's cost grows with its
// input and a change beyond them is denied rather than judged in part.
const (
	// MaxInputBytes bounds the JSON of the changed policies (before and
	// after) in one change set.
	MaxInputBytes = 64 << 20
	// MaxDepth bounds how deeply a policy's JSON may nest.
	MaxDepth = 64
)

// Meta is what a change set knows besides the policies: where the change
// comes from and which PolicySet it is for.
type Meta struct {
	// Revision is the change's revision (a commit), PreviousRevision the
	// revision the base policies come from (the last applied one).
	Revision, PreviousRevision string
	// Author wrote the change.
	Author Author
	// PolicySet is the PolicySet the change is for.
	PolicySet PolicySetRef
	// Overrides are explicit approvals guards may honour, e.g.
	// "max-changes"; from a PolicySet field in the cluster, from
	// "Palisade-Override:" commit trailers in the CLI.
	Overrides []string
	// Params are the PolicySet's guard parameters, at data.palisade.params.
	Params map[string]any
}

// Author is the author of a change.
type Author struct {
	Name  string `json:"name"`
	Email string `json:"email"`
}

// PolicySetRef names a PolicySet.
type PolicySetRef struct {
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
}

// Summary counts the changes by operation.
type Summary struct {
	Create int `json:"create"`
	Update int `json:"update"`
	Delete int `json:"delete"`
	Total  int `json:"total"`
}

// Namespace is what guards need to know about a namespace a change
// reaches, over all policies and not just the changed ones.
type Namespace struct {
	// DefaultDenyBefore and DefaultDenyAfter: the directions in which an
	// enforced default deny isolates every pod of the namespace (its own,
	// or a cluster-wide one).
	DefaultDenyBefore Directions `json:"default_deny_before"`
	DefaultDenyAfter  Directions `json:"default_deny_after"`
	// PoliciesBefore and PoliciesAfter count the policies scoped to it.
	PoliciesBefore int `json:"policies_before"`
	PoliciesAfter  int `json:"policies_after"`
}

// Change is one changed policy.
type Change struct {
	// Op is create, update or delete.
	Op string `json:"op"`
	// ID is kind/namespace/name.
	ID        string `json:"id"`
	Kind      string `json:"kind"`
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	// File and Line locate the policy (after the change; before it for a
	// deletion), relative to the policy directory.
	File string `json:"file"`
	Line int    `json:"line"`
	// Before and After are the policy objects; null when it did not or
	// does not exist.
	Before json.RawMessage `json:"before"`
	After  json.RawMessage `json:"after"`
	// Facts are derived by Palisade; see Facts.
	Facts Facts `json:"facts"`

	problems []Finding // why the change cannot be judged in full
	// shapes of the policy before and after; nil for a side that does
	// not exist.
	before, after *shape
}

// ChangeSet is the document guards are written against: input in Rego.
type ChangeSet struct {
	APIVersion       string                `json:"apiVersion"`
	Kind             string                `json:"kind"`
	Revision         string                `json:"revision"`
	PreviousRevision string                `json:"previous_revision"`
	Author           Author                `json:"author"`
	PolicySet        PolicySetRef          `json:"policy_set"`
	Overrides        []string              `json:"overrides"`
	Summary          Summary               `json:"summary"`
	Namespaces       map[string]*Namespace `json:"namespaces"`
	Changes          []*Change             `json:"changes"`

	params map[string]any
	// problems are reasons the change cannot be judged in full; each
	// denies it.
	problems []Finding
	tooBig   bool
	byID     map[string]*Change

	value ast.Value // the document as OPA input
	// changeTerms are the changes' terms in value, in order.
	changeTerms []*ast.Term
}

// NewChangeSet computes the change from base to head: one Change per
// policy created, deleted or changed (by its JSON), sorted by ID, with its
// facts.
func NewChangeSet(base, head []*policy.Policy, meta Meta) *ChangeSet {
	return newChangeSet(base, head, meta)
}

// reviewChangeSet is NewChangeSet(Canonical(base), Canonical(head)), the
// same document, built from what cache keeps of earlier reviews (nil: the
// default cache): a policy whose JSON no review has seen is made canonical,
// encoded, converted and its shape taken; a change no review has seen gets
// its facts derived. Which policies changed is told by their canonical
// sides.
func reviewChangeSet(base, head []*policy.Policy, meta Meta, cache *Cache) *ChangeSet {
	if cache == nil {
		cache = defaultCache
	}
	ns := meta.PolicySet.Namespace
	cs := emptyChangeSet(meta)
	byID := func(ps []*policy.Policy) map[string]*policy.Policy {
		m := make(map[string]*policy.Policy, len(ps))
		for _, p := range ps {
			m[reviewID(p, ns)] = p
		}
		return m
	}
	bm, hm := byID(base), byID(head)
	ids := sortedIDs(bm, hm)
	// Each policy's side and each change are independent of the others:
	// computed in parallel, each into its own slot.
	changes := make([]*Change, len(ids))
	terms := make([]*ast.Term, len(ids))
	bs, hs := make([]*side, len(ids)), make([]*side, len(ids))
	parallel(len(ids), func(i int) {
		b, a := bm[ids[i]], hm[ids[i]]
		if b != nil && a != nil {
			// Unchanged policies are told apart cheaply: by their own
			// JSON, then by the sides an earlier review made of them,
			// then by their typed objects. Only the others are encoded.
			if sameOwnJSON(b, a) {
				return
			}
			bs[i], hs[i] = cache.lookup(b, ns), cache.lookup(a, ns)
			if bs[i] != nil && hs[i] != nil {
				if sameContent(bs[i], hs[i]) {
					return
				}
			} else if sameOriginals(b, a) {
				return
			}
		}
		if b != nil && bs[i] == nil {
			bs[i] = cache.side(b, ns)
		}
		if a != nil && hs[i] == nil {
			hs[i] = cache.side(a, ns)
		}
		if b != nil && a != nil && sameContent(bs[i], hs[i]) {
			return
		}
		changes[i], terms[i] = cache.change(b, a, bs[i], hs[i], ns)
	})
	// The namespace summary counts every policy of the namespaces changes
	// reach, by its canonical namespace and shape: its side's, or for an
	// unchanged policy without one, computed when needed.
	baseShapes, headShapes := make([]scoped, 0, len(base)), make([]scoped, 0, len(head))
	for i, id := range ids {
		for _, x := range []struct {
			p    *policy.Policy
			s    *side
			into *[]scoped
		}{{bm[id], bs[i], &baseShapes}, {hm[id], hs[i], &headShapes}} {
			if x.p == nil {
				continue
			}
			_, pns := reviewIdent(x.p, ns)
			sc := scoped{namespace: pns, namespaced: x.p.NetworkPolicy != nil || x.p.TracingPolicy != nil, p: x.p, defaultNS: ns, shell: true}
			if x.s != nil {
				sc.shape = &x.s.shape
			}
			*x.into = append(*x.into, sc)
		}
	}
	cs.finish(changes, terms, baseShapes, headShapes)
	return cs
}

// scoped is a policy as the namespace summary sees it.
type scoped struct {
	namespace  string
	namespaced bool // a NetworkPolicy or TracingPolicy
	shape      *shape
	// p computes the shape when nil: its own, or with shell its review
	// shell's (for the PolicySet's namespace defaultNS).
	p         *policy.Policy
	shell     bool
	defaultNS string
}

func emptyChangeSet(meta Meta) *ChangeSet {
	cs := &ChangeSet{
		APIVersion: APIVersion, Kind: "ChangeSet",
		Revision: meta.Revision, PreviousRevision: meta.PreviousRevision,
		Author: meta.Author, PolicySet: meta.PolicySet,
		Overrides:  slices.Compact(slices.Sorted(slices.Values(meta.Overrides))),
		Namespaces: map[string]*Namespace{}, Changes: []*Change{},
		params: meta.Params, byID: map[string]*Change{},
	}
	if cs.Overrides == nil {
		cs.Overrides = []string{}
	}
	return cs
}

// sortedIDs returns the IDs of head and of base, once each, sorted.
func sortedIDs(bm, hm map[string]*policy.Policy) []string {
	ids := make([]string, 0, len(hm))
	for id := range hm {
		ids = append(ids, id)
	}
	for id := range bm {
		if hm[id] == nil {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	return ids
}

// finish completes the change set from the changes (nil where a policy did
// not change) and their terms.
func (cs *ChangeSet) finish(changes []*Change, terms []*ast.Term, base, head []scoped) {
	cs.Changes = slices.DeleteFunc(changes, func(c *Change) bool { return c == nil })
	terms = slices.DeleteFunc(terms, func(t *ast.Term) bool { return t == nil })
	for _, c := range cs.Changes {
		switch c.Op {
		case "create":
			cs.Summary.Create++
		case "delete":
			cs.Summary.Delete++
		default:
			cs.Summary.Update++
		}
		cs.byID[c.ID] = c
		cs.problems = append(cs.problems, c.problems...)
	}
	cs.Summary.Total = len(cs.Changes)
	cs.summarizeNamespaces(base, head)

	size := 0
	for _, c := range cs.Changes {
		size += len(c.Before) + len(c.After)
	}
	if size > MaxInputBytes {
		cs.tooBig = true
		cs.problems = append(cs.problems, Finding{Message: fmt.Sprintf("the changed policies are %d bytes of JSON, over the guards' input budget of %d", size, MaxInputBytes)})
	}
	cs.value = cs.document(terms)
	cs.changeTerms = terms
}

// newChangeSet is NewChangeSet: policies are told apart by their JSON,
// and only their OPA values are cached (valuecache.go).
func newChangeSet(base, head []*policy.Policy, meta Meta) *ChangeSet {
	cs := emptyChangeSet(meta)
	byID := func(ps []*policy.Policy) map[string]*policy.Policy {
		m := make(map[string]*policy.Policy, len(ps))
		for _, p := range ps {
			m[p.ID()] = p
		}
		return m
	}
	bm, hm := byID(base), byID(head)
	ids := sortedIDs(bm, hm)
	changes := make([]*Change, len(ids))
	terms := make([]*ast.Term, len(ids))
	parallel(len(ids), func(i int) {
		b, a := bm[ids[i]], hm[ids[i]]
		var op string
		switch {
		case b == nil:
			op = "create"
		case a == nil:
			op = "delete"
		case !bytes.Equal(b.JSON, a.JSON):
			op = "update"
		default:
			return
		}
		c := newChange(op, b, a)
		changes[i], terms[i] = c, c.term(policyTerm(c.Before), policyTerm(c.After), toTerm(&c.Facts))
	})
	// The shapes the changes computed are reused by the summary; an
	// unchanged policy's is computed once for base and head.
	changed := map[*policy.Policy]*shape{}
	for _, c := range changes {
		if c != nil {
			if p := bm[c.ID]; p != nil {
				changed[p] = c.before
			}
			if p := hm[c.ID]; p != nil {
				changed[p] = c.after
			}
		}
	}
	list := func(ps []*policy.Policy) []scoped {
		out := make([]scoped, len(ps))
		for i, p := range ps {
			out[i] = scoped{namespace: p.Namespace, namespaced: p.NetworkPolicy != nil || p.TracingPolicy != nil, shape: changed[p], p: p}
		}
		return out
	}
	cs.finish(changes, terms, list(base), list(head))
	return cs
}

// newChange builds one change and its facts.
func newChange(op string, before, after *policy.Policy) *Change {
	cur := after
	if cur == nil {
		cur = before
	}
	c := &Change{Op: op, ID: cur.ID(), Kind: cur.Kind, Namespace: cur.Namespace, Name: cur.Name, File: cur.Pos.File, Line: cur.Pos.Line, Facts: newFacts()}
	c.Before, c.After = c.policyJSON(before), c.policyJSON(after)
	// Each side's shape is computed once: the facts and the namespace
	// summary need it.
	if before != nil {
		sh := shapeOf(before)
		c.before = &sh
	}
	if after != nil {
		sh := shapeOf(after)
		c.after = &sh
	}
	var over bool
	c.Facts, over = deriveFacts(before, after, c.before, c.after)
	if over {
		c.problem("%s has too many peer, port and selector combinations for the guards' derived facts (budget %d comparisons)", c.ID, maxFactWork)
	}
	return c
}

// deriveFacts derives the facts of a change from before to after (nil when
// created or deleted), whose shapes are bsh and ash. over: the work budget
// ran out, and only the facts of the shape are there.
func deriveFacts(before, after *policy.Policy, bsh, ash *shape) (f Facts, over bool) {
	f = newFacts()
	cur, sh := after, ash
	if cur == nil {
		cur, sh = before, bsh
	}
	f.Subject, f.SelectsAll, f.ScopeNamespaces, f.Mode, f.DefaultDeny = sh.subject, sh.selectsAll, sh.scope, sh.mode, sh.defaultDeny
	f.IsDefaultDeny = ash != nil && sh.isDefaultDeny
	f.WasDefaultDeny = bsh != nil && bsh.isDefaultDeny
	switch cur.Kind {
	case "NetworkPolicy", "ClusterNetworkPolicy":
		if !networkFacts(&f, before, after, bsh, ash, &budget{left: maxFactWork}) {
			keep := f
			f = newFacts()
			f.Subject, f.SelectsAll, f.ScopeNamespaces, f.Mode, f.DefaultDeny = keep.Subject, keep.SelectsAll, keep.ScopeNamespaces, keep.Mode, keep.DefaultDeny
			f.IsDefaultDeny, f.WasDefaultDeny = keep.IsDefaultDeny, keep.WasDefaultDeny
			return f, true
		}
	case "TracingPolicy", "ClusterTracingPolicy":
		tracingFacts(&f, before, after)
	}
	return f, false
}

// policyJSON returns a policy's JSON for the document, or null (with a
// problem) when it nests deeper than MaxDepth.
func (c *Change) policyJSON(p *policy.Policy) json.RawMessage {
	if p == nil {
		return nil
	}
	// Text with no more than MaxDepth brackets cannot nest deeper;
	// bytes.Count tells that several times faster than jsonDepth's scan.
	if bytes.Count(p.JSON, []byte{'{'})+bytes.Count(p.JSON, []byte{'['}) <= MaxDepth {
		return p.JSON
	}
	if d := jsonDepth(p.JSON); d > MaxDepth {
		c.problem("%s nests %d levels deep, over the guards' budget of %d", c.ID, d, MaxDepth)
		return nil
	}
	return p.JSON
}

func (c *Change) problem(format string, args ...any) {
	c.problems = append(c.problems, Finding{Message: fmt.Sprintf(format, args...), Policy: c.ID, File: c.File, Line: c.Line})
}

// jsonDepth returns how deeply JSON text nests, in one pass without
// decoding, so that hostile nesting is measured before anything recurses
// into it.
func jsonDepth(b []byte) int {
	depth, deepest := 0, 0
	inString, escaped := false, false
	for _, c := range b {
		if inString {
			switch {
			case escaped:
				escaped = false
			case c == '\\':
				escaped = true
			case c == '"':
				inString = false
			}
			continue
		}
		switch c {
		case '"':
			inString = true
		case '{', '[':
			depth++
			deepest = max(deepest, depth)
		case '}', ']':
			depth--
		}
	}
	return deepest
}

// summarizeNamespaces fills Namespaces for every namespace a change
// reaches ("*" for cluster-wide policies).
func (cs *ChangeSet) summarizeNamespaces(base, head []scoped) {
	for _, c := range cs.Changes {
		for _, sh := range []*shape{c.before, c.after} {
			if sh != nil {
				for _, ns := range sh.scope {
					cs.Namespaces[ns] = &Namespace{}
				}
			}
		}
	}
	if len(cs.Namespaces) == 0 {
		return
	}
	// A shape not given is computed once per policy (base and head often
	// hold the same one).
	computed := map[*policy.Policy]*shape{}
	shapeFor := func(x *scoped) *shape {
		if x.shape != nil {
			return x.shape
		}
		if sh := computed[x.p]; sh != nil {
			return sh
		}
		p := x.p
		if x.shell {
			p = reviewShell(p, x.defaultNS)
		}
		sh := shapeOf(p)
		computed[x.p] = &sh
		return &sh
	}
	tally := func(ps []scoped, count func(*Namespace) *int, dd func(*Namespace) *Directions) {
		cluster := Directions{}
		for i := range ps {
			p := &ps[i]
			if p.namespaced && p.namespace != "*" && cs.Namespaces[p.namespace] == nil {
				continue // its scope is its namespace, which no change reaches
			}
			sh := shapeFor(p)
			for _, ns := range sh.scope {
				n := cs.Namespaces[ns]
				if sh.isDefaultDeny && ns == "*" {
					cluster.Ingress, cluster.Egress = cluster.Ingress || sh.defaultDeny.Ingress, cluster.Egress || sh.defaultDeny.Egress
				}
				if n == nil {
					continue
				}
				*count(n)++
				if sh.isDefaultDeny {
					d := dd(n)
					d.Ingress, d.Egress = d.Ingress || sh.defaultDeny.Ingress, d.Egress || sh.defaultDeny.Egress
				}
			}
		}
		for _, n := range cs.Namespaces {
			d := dd(n)
			d.Ingress, d.Egress = d.Ingress || cluster.Ingress, d.Egress || cluster.Egress
		}
	}
	tally(base, func(n *Namespace) *int { return &n.PoliciesBefore }, func(n *Namespace) *Directions { return &n.DefaultDenyBefore })
	tally(head, func(n *Namespace) *int { return &n.PoliciesAfter }, func(n *Namespace) *Directions { return &n.DefaultDenyAfter })
}

// JSON returns the change-set document, indented: what guards see as
// input.
func (cs *ChangeSet) JSON() []byte {
	b, err := json.MarshalIndent(cs, "", "  ")
	if err != nil {
		panic(fmt.Sprintf("guard: encode change set: %v", err)) // policies' JSON comes from the loader, valid
	}
	return append(b, '\n')
}

// term converts the change for OPA, given its policies' and facts' terms.
func (c *Change) term(before, after, facts *ast.Term) *ast.Term {
	return ast.ObjectTerm(
		[2]*ast.Term{ast.InternedTerm("op"), ast.InternedTerm(c.Op)},
		[2]*ast.Term{ast.InternedTerm("id"), ast.StringTerm(c.ID)},
		[2]*ast.Term{ast.InternedTerm("kind"), ast.InternedTerm(c.Kind)},
		[2]*ast.Term{ast.InternedTerm("namespace"), ast.InternedTerm(c.Namespace)},
		[2]*ast.Term{ast.InternedTerm("name"), ast.InternedTerm(c.Name)},
		[2]*ast.Term{ast.InternedTerm("file"), ast.InternedTerm(c.File)},
		[2]*ast.Term{ast.InternedTerm("line"), ast.InternedTerm(c.Line)},
		[2]*ast.Term{ast.InternedTerm("before"), before},
		[2]*ast.Term{ast.InternedTerm("after"), after},
		[2]*ast.Term{ast.InternedTerm("facts"), facts},
	)
}

// document assembles the OPA input from the changes' terms. The change set
// carries it from construction on, shared by every guard and evaluation
// (OPA values are safe for concurrent reads). The policies' and changes'
// terms come from caches keyed by content: cache.go for a review,
// valuecache.go for NewChangeSet.
func (cs *ChangeSet) document(changes []*ast.Term) ast.Value {
	return ast.NewObject(
		[2]*ast.Term{ast.InternedTerm("apiVersion"), ast.StringTerm(cs.APIVersion)},
		[2]*ast.Term{ast.InternedTerm("kind"), ast.StringTerm(cs.Kind)},
		[2]*ast.Term{ast.InternedTerm("revision"), ast.StringTerm(cs.Revision)},
		[2]*ast.Term{ast.InternedTerm("previous_revision"), ast.StringTerm(cs.PreviousRevision)},
		[2]*ast.Term{ast.InternedTerm("author"), toTerm(cs.Author)},
		[2]*ast.Term{ast.InternedTerm("policy_set"), toTerm(cs.PolicySet)},
		[2]*ast.Term{ast.InternedTerm("overrides"), toTerm(cs.Overrides)},
		[2]*ast.Term{ast.InternedTerm("summary"), toTerm(cs.Summary)},
		[2]*ast.Term{ast.InternedTerm("namespaces"), toTerm(cs.Namespaces)},
		[2]*ast.Term{ast.InternedTerm("changes"), ast.ArrayTerm(changes...)},
	)
}

// parallel runs f(0..n-1) on GOMAXPROCS goroutines.
func parallel(n int, f func(i int)) {
	var (
		next atomic.Int64
		wg   sync.WaitGroup
	)
	for range min(runtime.GOMAXPROCS(0), n) {
		wg.Go(func() {
			for i := int(next.Add(1) - 1); i < n; i = int(next.Add(1) - 1) {
				f(i)
			}
		})
	}
	wg.Wait()
}
