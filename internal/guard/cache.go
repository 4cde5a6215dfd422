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
	"sync"

	"github.com/open-policy-agent/opa/v1/ast"

	"github.com/palisade-dev/palisade/internal/policy"
)

// Cache keeps, between reviews, what a review derives from each policy and
// from each change, keyed by content, so that a review converts and derives
// only what no earlier review has seen:
//
//   - per policy (a side of a change): its canonical JSON, its OPA value
//     and its shape, found by the canonical JSON and, without encoding
//     anything, by the JSON the policy arrives with (the loader's, or
//     render.Policy's for an object read from the API server, which is the
//     same for the same uid and resourceVersion) together with its kind and
//     the PolicySet's namespace, which with that JSON determine the
//     canonical object;
//   - per object read from the API server (ReviewObjects), the policy
//     render.Policy makes of it, by its kind, uid and resourceVersion;
//   - per change (a pair of sides): its facts and, for the same file and
//     line, the whole change and its OPA term.
//
// Keys are the full bytes, compared in full by the maps (no hash stands in
// for content), so a hit is the same content and a review with the cache
// reaches the same decision as one without. It is bounded: two generations
// of at most limit/2 bytes of estimated heap each approximate LRU (when the
// current one is full it becomes the old one and the old one is dropped;
// hits in the old one move back). A Cache is safe for concurrent use.
//
// What it keeps is shared, read-only, by the change sets of the reviews
// that find it: a Change and its Facts must not be modified.
type Cache struct {
	mu       sync.Mutex
	limit    int
	cur, old *generation
	// stats, for tests and benchmarks
	hits, misses int
}

// DefaultCacheBytes bounds the default cache's estimated heap: about 6,000
// policies and 6,000 changes of the kind make bench-guard generates.
const DefaultCacheBytes = 256 << 20

// Estimated heap per byte of canonical JSON, measured on the generated
// policies of make bench-guard (2,000 sides and 1,000 changes: 42 MiB of
// heap for 1.9 MiB of JSON): an OPA value is a tree of small maps.
const (
	sideCost   = 16 // a side: its OPA value, JSON and shape
	pairCost   = 5  // a change, of its sides' JSON: facts, terms, the change
	objectCost = 8  // a policy made of a stored object: typed copy and JSON
)

// defaultCache is the cache reviews use when Options.Cache is nil: one per
// process, shared by every PolicySet a controller reviews.
var defaultCache = NewCache(DefaultCacheBytes)

// NewCache returns a cache of up to about maxBytes of heap (estimated from
// the JSON of what it holds). A cache of 0 bytes keeps no more than the
// last entry or two it was given.
func NewCache(maxBytes int) *Cache {
	return &Cache{limit: maxBytes, cur: newGeneration(), old: newGeneration()}
}

type generation struct {
	size   int
	byOrig map[string][]alias // a policy's own JSON → its canonical side
	byJSON map[string]*side   // canonical JSON → side
	pairs  map[[2]*side]*pair
	// objects are the policies made of objects as the API server stored
	// them (ReviewObjects).
	objects map[objectKey]*policy.Policy
}

func newGeneration() *generation {
	return &generation{byOrig: map[string][]alias{}, byJSON: map[string]*side{}, pairs: map[[2]*side]*pair{}, objects: map[objectKey]*policy.Policy{}}
}

// object returns the policy made of a stored object, nil if none is kept.
func (c *Cache) object(k objectKey) *policy.Policy {
	c.mu.Lock()
	defer c.mu.Unlock()
	p := c.cur.objects[k]
	if p == nil {
		if p = c.old.objects[k]; p != nil {
			c.putObject0(k, p)
		}
	}
	return p
}

// putObject keeps the policy made of a stored object.
func (c *Cache) putObject(k objectKey, p *policy.Policy) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.putObject0(k, p)
}

func (c *Cache) putObject0(k objectKey, p *policy.Policy) {
	c.add(len(p.JSON) * objectCost)
	c.cur.objects[k] = p
}

// alias says which canonical side a policy with some JSON of its own has:
// the canonical object is a function of that JSON (from which the typed
// object is decoded, or which encodes it), the kind the typed object's Go
// type says and the PolicySet's namespace (for a policy without one).
type alias struct {
	kind, defaultNS string
	s               *side
}

// side is one policy as guards see it: derived from its canonical JSON
// only, immutable once made.
type side struct {
	json  []byte    // canonical JSON
	depth int       // how deeply json nests when over MaxDepth, else 0
	term  *ast.Term // the OPA value of json (null when too deep)
	shape shape
	// cached: the side is in a cache (its pointer identifies its
	// content there); sides of policies without a typed object are not.
	cached bool
}

// pair is one change as guards see it, derived from its sides only.
type pair struct {
	facts      Facts
	overBudget bool
	factsTerm  *ast.Term
	// last is the last change made of it, for its file and line.
	last     *Change
	lastTerm *ast.Term
}

func (c *Cache) get(f func(g *generation) bool) {
	if f(c.cur) {
		return
	}
	f(c.old)
}

// add charges n bytes to the current generation, rotating first when they
// do not fit; c must be locked.
func (c *Cache) add(n int) {
	if c.cur.size+n > c.limit/2 {
		c.old, c.cur = c.cur, newGeneration()
	}
	c.cur.size += n
}

// lookupOrig finds the side of a policy by its own JSON; c must be locked.
func (c *Cache) lookupOrig(js []byte, kind, defaultNS string) *side {
	for _, g := range []*generation{c.cur, c.old} {
		for _, a := range g.byOrig[string(js)] {
			if a.kind == kind && a.defaultNS == defaultNS {
				if g == c.old {
					c.putOrig(string(js), a)
				}
				return a.s
			}
		}
	}
	return nil
}

// putOrig records an alias (and its side) in the current generation; c
// must be locked.
func (c *Cache) putOrig(js string, a alias) {
	c.putSide(a.s)
	list := c.cur.byOrig[js]
	for i := range list {
		if list[i].kind == a.kind && list[i].defaultNS == a.defaultNS {
			list[i] = a
			return
		}
	}
	c.add(len(js)) // the key, a copy; its side is charged by putSide
	c.cur.byOrig[js] = append(list, a)
}

// putSide records a side in the current generation; c must be locked.
func (c *Cache) putSide(s *side) {
	if c.cur.byJSON[string(s.json)] == s {
		return
	}
	c.add(len(s.json) * sideCost)
	c.cur.byJSON[string(s.json)] = s
}

// lookupJSON finds a side by canonical JSON; c must be locked.
func (c *Cache) lookupJSON(js []byte) *side {
	if s := c.cur.byJSON[string(js)]; s != nil {
		return s
	}
	if s := c.old.byJSON[string(js)]; s != nil {
		c.putSide(s)
		return s
	}
	return nil
}

// lookup returns the side of one policy of a review (an original), if an
// earlier review made it from the same JSON of the policy's own; nil
// otherwise.
func (c *Cache) lookup(p *policy.Policy, ns string) *side {
	kind := p.TypedKind()
	if kind == "" || p.JSON == nil {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.lookupOrig(p.JSON, kind, ns)
	if s != nil {
		c.hits++
	}
	return s
}

// side returns the side of one policy of a review (an original, not a
// review shell), ns the PolicySet's namespace.
func (c *Cache) side(p *policy.Policy, ns string) *side {
	kind := p.TypedKind()
	if kind == "" {
		// Not a typed policy: nothing says its JSON determines it.
		return newSide(p, p.JSON, false)
	}
	if p.JSON != nil {
		c.mu.Lock()
		s := c.lookupOrig(p.JSON, kind, ns)
		if s != nil {
			c.hits++
		}
		c.mu.Unlock()
		if s != nil {
			return s
		}
	}
	q := reviewShell(p, ns)
	encodeCanonical(q)
	c.mu.Lock()
	s := c.lookupJSON(q.JSON)
	c.mu.Unlock()
	if s == nil {
		s = newSide(q, q.JSON, true)
	}
	c.mu.Lock()
	c.misses++
	if p.JSON != nil {
		c.putOrig(string(p.JSON), alias{kind: kind, defaultNS: ns, s: s})
	} else {
		c.putSide(s)
	}
	c.mu.Unlock()
	return s
}

// newSide derives a side from a policy whose canonical JSON is js.
func newSide(p *policy.Policy, js []byte, cached bool) *side {
	s := &side{json: js, shape: shapeOf(p), cached: cached}
	// Text with no more than MaxDepth brackets cannot nest deeper;
	// bytes.Count tells that several times faster than jsonDepth's scan.
	if bytes.Count(js, []byte{'{'})+bytes.Count(js, []byte{'['}) > MaxDepth {
		if d := jsonDepth(js); d > MaxDepth {
			s.depth = d
		}
	}
	if s.depth > 0 || js == nil {
		s.term = ast.NullTerm()
		return s
	}
	v, err := jsonValue(js)
	if err != nil {
		// The loader produced it; should it not parse, guards see null
		// rather than half a policy, and the facts still hold.
		s.term = ast.NullTerm()
		return s
	}
	s.term = ast.NewTerm(v)
	return s
}

// guardJSON is what the change-set document holds for the side: its JSON,
// or null when it nests too deeply.
func (s *side) guardJSON() json.RawMessage {
	if s == nil || s.depth > 0 {
		return nil
	}
	return s.json
}

// opaTerm is the side's OPA term, null for none.
func (s *side) opaTerm() *ast.Term {
	if s == nil {
		return ast.NullTerm()
	}
	return s.term
}

// sameContent reports whether two sides are the same canonical object.
func sameContent(a, b *side) bool { return a == b || bytes.Equal(a.json, b.json) }

// change returns the change from before to after (originals, either nil),
// whose sides are sb and sa, reusing what an earlier review derived.
func (c *Cache) change(before, after *policy.Policy, sb, sa *side, ns string) (*Change, *ast.Term) {
	cur := after
	if cur == nil {
		cur = before
	}
	cacheable := (sb == nil || sb.cached) && (sa == nil || sa.cached)
	key := [2]*side{sb, sa}
	var pr *pair
	if cacheable {
		c.mu.Lock()
		c.get(func(g *generation) bool {
			pr = g.pairs[key]
			if pr != nil && g == c.old {
				c.putPair(key, pr)
			}
			return pr != nil
		})
		if pr != nil && pr.last != nil && pr.last.File == cur.Pos.File && pr.last.Line == cur.Pos.Line {
			ch, t := pr.last, pr.lastTerm
			c.mu.Unlock()
			return ch, t
		}
		c.mu.Unlock()
	}
	if pr == nil {
		pr = derivePair(before, after, sb, sa, ns)
	}
	ch := assemble(cur, ns, sb, sa, pr)
	t := ch.term(sb.opaTerm(), sa.opaTerm(), pr.factsTerm)
	if cacheable {
		c.mu.Lock()
		if c.cur.pairs[key] == nil && c.old.pairs[key] == nil {
			c.putPair(key, pr)
		}
		pr.last, pr.lastTerm = ch, t
		c.mu.Unlock()
	}
	return ch, t
}

// putPair records a pair in the current generation; c must be locked.
func (c *Cache) putPair(key [2]*side, pr *pair) {
	n := 0
	for _, s := range key {
		if s != nil {
			n += len(s.json) * pairCost
		}
	}
	c.add(n)
	c.cur.pairs[key] = pr
}

// derivePair derives the facts of a change.
func derivePair(before, after *policy.Policy, sb, sa *side, ns string) *pair {
	var b, a *policy.Policy
	var bsh, ash *shape
	if before != nil {
		b, bsh = reviewShell(before, ns), &sb.shape
	}
	if after != nil {
		a, ash = reviewShell(after, ns), &sa.shape
	}
	pr := &pair{}
	pr.facts, pr.overBudget = deriveFacts(b, a, bsh, ash)
	pr.factsTerm = toTerm(&pr.facts)
	return pr
}

// assemble makes the change of a pair at cur's position.
func assemble(cur *policy.Policy, ns string, sb, sa *side, pr *pair) *Change {
	kind, namespace := reviewIdent(cur, ns)
	op := "update"
	switch {
	case sb == nil:
		op = "create"
	case sa == nil:
		op = "delete"
	}
	ch := &Change{Op: op, ID: kind + "/" + namespace + "/" + cur.Name, Kind: kind, Namespace: namespace, Name: cur.Name, File: cur.Pos.File, Line: cur.Pos.Line, Facts: pr.facts}
	for _, s := range []*side{sb, sa} {
		if s != nil && s.depth > 0 {
			ch.problem("%s nests %d levels deep, over the guards' budget of %d", ch.ID, s.depth, MaxDepth)
		}
	}
	ch.Before, ch.After = sb.guardJSON(), sa.guardJSON()
	if sb != nil {
		ch.before = &sb.shape
	}
	if sa != nil {
		ch.after = &sa.shape
	}
	if pr.overBudget {
		ch.problem("%s has too many peer, port and selector combinations for the guards' derived facts (budget %d comparisons)", ch.ID, maxFactWork)
	}
	return ch
}

// reviewIdent is the identity of a policy's canonical form: its
// namespace defaulted to the PolicySet's for a namespaced policy without
// one.
func reviewIdent(p *policy.Policy, ns string) (kind, namespace string) {
	kind = p.TypedKind()
	if kind == "" {
		return p.Kind, p.Namespace
	}
	namespace = p.Namespace
	if namespace == "" && policy.Namespaced(kind) {
		namespace = ns
	}
	return kind, namespace
}

// reviewID is the ID of a policy's canonical form.
func reviewID(p *policy.Policy, ns string) string {
	kind, namespace := reviewIdent(p, ns)
	return kind + "/" + namespace + "/" + p.Name
}
