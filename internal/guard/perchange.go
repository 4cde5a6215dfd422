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
	"context"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"
)

// Per-change evaluation.
//
// Most guards judge one change at a time: their deny and warn rules read
// `some c in input.changes` once and nothing else of the change list. For
// such a guard the findings on a change set are the union of its findings
// on each change alone (the rest of the input unchanged), so what it found
// on a change can be kept and reused by the next review that has the same
// change, the same parameters and the same values of the other parts of
// the input it reads. A review of 1000 changes of which one is new then
// evaluates the guard on one change. The union is an OPA set again, so the
// findings come out in the order a whole evaluation gives them, and the
// decision's bytes do not change.
//
// Whether a guard is one of these is decided from its source when the
// guards are compiled (perChangeGuards), conservatively: any other use of
// input.changes, of the input as a whole or under a computed key, a `with`
// on the input, or a reference to another package that reads the input
// (other than the parameters), and the guard is evaluated whole, as
// before.

// perChangeGuards returns the names of the guard packages whose findings
// are a union over changes, and the top-level input keys other than
// "changes" that any module reads (each per-change result holds for those
// values only).
func perChangeGuards(modules map[string]*ast.Module, guards []guardInfo) (map[string]bool, []string) {
	byPkg := map[string][]*ast.Module{}
	for _, m := range modules {
		byPkg[m.Package.Path.String()] = append(byPkg[m.Package.Path.String()], m)
	}
	isGuard := map[string]bool{}
	for _, g := range guards {
		isGuard[g.path.String()] = true
	}
	keys := map[string]bool{}
	readsInput := map[string]bool{} // package → reads the input at all
	badInput := map[string]bool{}   // package → reads input.changes otherwise than allowed
	refs := map[string][]ast.Ref{}  // package → data refs outside itself
	for pkg, ms := range byPkg {
		for _, m := range ms {
			allowed := map[*ast.Term]bool{}
			if isGuard[pkg] {
				for _, r := range m.Rules {
					name := r.Head.Ref()[0].Value.String()
					if name != "deny" && name != "warn" {
						continue
					}
					for rule := r; rule != nil; rule = rule.Else {
						n := 0
						for _, e := range rule.Body {
							if t := someInChanges(e); t != nil {
								allowed[t] = true
								n++
							}
						}
						if n > 1 {
							badInput[pkg] = true
						}
					}
				}
			}
			for _, imp := range m.Imports {
				if p, ok := imp.Path.Value.(ast.Ref); ok && p.HasPrefix(ast.InputRootRef) {
					readsInput[pkg], badInput[pkg] = true, true
				}
			}
			var vis *ast.GenericVisitor
			vis = ast.NewGenericVisitor(func(x any) bool {
				switch x := x.(type) {
				case *ast.Expr:
					for _, w := range x.With {
						if r, ok := w.Target.Value.(ast.Ref); ok && r.HasPrefix(ast.InputRootRef) {
							readsInput[pkg], badInput[pkg] = true, true
						}
					}
				case *ast.Term:
					switch v := x.Value.(type) {
					case ast.Var:
						if v.Equal(ast.InputRootDocument.Value) {
							// The input as a whole (not a reference's head).
							readsInput[pkg], badInput[pkg] = true, true
						}
					case ast.Ref:
						if !v.HasPrefix(ast.InputRootRef) {
							if v.HasPrefix(ast.DefaultRootRef) && !v.HasPrefix(m.Package.Path) && !v.HasPrefix(paramsRoot) {
								refs[pkg] = append(refs[pkg], v)
							}
							return false
						}
						readsInput[pkg] = true
						if len(v) < 2 {
							badInput[pkg] = true
							return true
						}
						switch k, ok := v[1].Value.(ast.String); {
						case !ok:
							badInput[pkg] = true
						case k == "changes" && !(len(v) == 2 && allowed[x]):
							badInput[pkg] = true
						case k != "changes":
							keys[string(k)] = true
						}
						// The keys may hold other references; the head is
						// not a bare input.
						for _, t := range v[1:] {
							vis.Walk(t)
						}
						return true
					}
				}
				return false
			})
			vis.Walk(m)
		}
	}
	// A package reads the input if it does or if a package it refers to
	// does. A computed data reference must at least name its package.
	pkgOf := func(r ast.Ref) (string, bool) {
		prefix := r.ConstantPrefix()
		for pkg, ms := range byPkg {
			if prefix.HasPrefix(ms[0].Package.Path) {
				return pkg, true
			}
		}
		return "", false
	}
	tainted := maps.Clone(readsInput)
	for changed := true; changed; {
		changed = false
		for pkg, rs := range refs {
			for _, r := range rs {
				if q, ok := pkgOf(r); !tainted[pkg] && ok && tainted[q] {
					tainted[pkg], changed = true, true
				}
			}
		}
	}
	out := map[string]bool{}
	for _, g := range guards {
		pkg := g.path.String()
		ok := !badInput[pkg]
		for _, r := range refs[pkg] {
			q, found := pkgOf(r)
			if (!found && !r.IsGround()) || (found && tainted[q]) {
				ok = false
			}
		}
		out[g.name] = ok
	}
	return out, slices.Sorted(mapsKeys(keys))
}

// someInChanges returns the input.changes term of `some x in
// input.changes`, if e is that.
func someInChanges(e *ast.Expr) *ast.Term {
	decl, ok := e.Terms.(*ast.SomeDecl)
	if !ok || len(decl.Symbols) != 1 || len(e.With) > 0 || e.Negated {
		return nil
	}
	call, ok := decl.Symbols[0].Value.(ast.Call)
	if !ok || len(call) != 3 {
		return nil
	}
	if op, ok := call[0].Value.(ast.Ref); !ok || !op.Equal(ast.Member.Ref()) {
		return nil
	}
	if r, ok := call[2].Value.(ast.Ref); ok && r.Equal(ast.InputRootRef.Append(ast.StringTerm("changes"))) {
		return call[2]
	}
	return nil
}

// byChangeRule names the rule addPerChangeRules derives from deny or
// warn; changeIndex is the index variable it binds.
const (
	byChangeSuffix = "_by_change_palisade"
	changeIndex    = "change_index_palisade"
	globalIndex    = -1
)

// addPerChangeRules adds to a per-change guard's modules, for each deny
// and warn rule, the same rule keyed by the change it iterates:
// `deny contains X if { A; some c in input.changes; B }` gains
// `deny_by_change_palisade[i] contains X if { A; some i, c in
// input.changes; B }`, and a rule that iterates no change is keyed by -1.
// One evaluation then says which change each finding came from, at the
// cost of the guard's own evaluation. It returns false, adding nothing,
// when a name it would use is taken.
func addPerChangeRules(ms []*ast.Module) bool {
	for _, m := range ms {
		for _, r := range m.Rules {
			name := r.Head.Ref()[0].Value.String()
			if strings.HasSuffix(name, byChangeSuffix) {
				return false
			}
			if r.Head.Vars().Contains(ast.Var(changeIndex)) || r.Body.Vars(ast.VarVisitorParams{}).Contains(ast.Var(changeIndex)) {
				return false
			}
		}
	}
	for _, m := range ms {
		var add []*ast.Rule
		for _, r := range m.Rules {
			name := r.Head.Ref()[0].Value.String()
			if name != "deny" && name != "warn" {
				continue
			}
			cp := r.Copy()
			var key *ast.Term = ast.IntNumberTerm(globalIndex)
			for _, e := range cp.Body {
				if t := someInChanges(e); t != nil {
					c := e.Terms.(*ast.SomeDecl).Symbols[0].Value.(ast.Call)[1]
					key = ast.VarTerm(changeIndex)
					e.Terms = &ast.SomeDecl{Symbols: []*ast.Term{ast.CallTerm(ast.NewTerm(ast.MemberWithKey.Ref()), key, c, t)}, Location: e.Location}
				}
			}
			cp.Head.SetRef(ast.Ref{ast.VarTerm(name + byChangeSuffix), key})
			cp.Head.Name = ""
			cp.Module = m
			add = append(add, cp)
		}
		m.Rules = append(m.Rules, add...)
	}
	return true
}

// perChangeQuery is the query that evaluates guard gi keyed by change.
func perChangeQuery(gi guardInfo) string {
	var q []string
	if gi.deny {
		q = append(q, "deny := "+gi.path.String()+".deny"+byChangeSuffix)
	}
	if gi.warn {
		q = append(q, "warn := "+gi.path.String()+".warn"+byChangeSuffix)
	}
	return strings.Join(q, "; ")
}

// changeIDs numbers change contents for every guard's memo: equal change
// terms get the same number, found once per change set for all the guards
// (by pointer when a review gets the term from the review cache, otherwise
// by hash and one deep comparison), so that each guard's memo looks a
// change up by its number instead of comparing the whole change again.
// Numbers are never reused: a change dropped from the table and seen again
// gets a new number, which no memo holds, and is judged anew.
type changeIDs struct {
	mu     sync.Mutex
	byHash map[uint64][]*numberedChange
	n      int
	next   uint64
}

type numberedChange struct {
	term *ast.Term
	id   uint64
}

// ids returns the numbers of terms. Entries of changes no longer reviewed
// are dropped when they outnumber the reviewed ones, as the memos do.
func (c *changeIDs) ids(terms []*ast.Term) []uint64 {
	out := make([]uint64, len(terms))
	hashes := make([]uint64, len(terms))
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.byHash == nil {
		c.byHash = make(map[uint64][]*numberedChange, len(terms))
	}
	for i, t := range terms {
		h := uint64(t.Hash())
		hashes[i] = h
		var e *numberedChange
		for _, x := range c.byHash[h] {
			if x.term == t {
				e = x
				break
			}
			if x.term.Equal(t) {
				// The same change in a new term (a change set built
				// anew): keep the new one, so the next review of it
				// finds it by pointer.
				x.term = t
				e = x
				break
			}
		}
		if e == nil {
			c.next++
			e = &numberedChange{term: t, id: c.next}
			c.byHash[h] = append(c.byHash[h], e)
			c.n++
		}
		out[i] = e.id
	}
	if c.n > 2*len(terms)+64 {
		keep := make(map[uint64][]*numberedChange, len(terms))
		n := 0
		for i, t := range terms {
			if !slices.ContainsFunc(keep[hashes[i]], func(x *numberedChange) bool { return x.id == out[i] }) {
				keep[hashes[i]] = append(keep[hashes[i]], &numberedChange{term: t, id: out[i]})
				n++
			}
		}
		c.byHash, c.n = keep, n
	}
	return out
}

// memo keeps one guard's findings per change (by its number in
// changeIDs), for each parameter set and value of the other input keys the
// guards read (up to maxMemoRest of them). Entries of changes no longer
// reviewed are dropped when they outnumber the reviewed ones: the size
// follows the change sets.
type memo struct {
	mu   sync.Mutex
	rest map[string]*memoGen
}

type memoGen struct {
	entries map[uint64]*memoEntry
	// global are the findings of the rules that iterate no change.
	global *memoEntry
}

type memoEntry struct {
	change     *ast.Term
	deny, warn []*ast.Term
}

const maxMemoRest = 16

// restKey is the value of the input keys other than "changes" that the
// guards read, with the parameters' key.
func restKey(params string, input ast.Object, keys []string) string {
	var b strings.Builder
	b.WriteString(params)
	for _, k := range keys {
		b.WriteString("\x00")
		b.WriteString(k)
		b.WriteString("=")
		if v := input.Get(ast.StringTerm(k)); v != nil {
			b.WriteString(v.String())
		}
	}
	return b.String()
}

// runPerChange evaluates guard q on the changes no earlier evaluation
// judged with the same rest of the input, and unites its findings on every
// change.
func (g *Guards) runPerChange(ctx context.Context, q *preparedGuard, cs *ChangeSet, ids []uint64, rest string, timeout time.Duration) result {
	fail := func(format string, args ...any) result {
		return result{errs: []Finding{{Guard: q.name, Source: q.source, Message: fmt.Sprintf(format, args...)}}}
	}
	terms := cs.changeTerms
	found := make([]*memoEntry, len(terms))
	var miss []*ast.Term
	var missAt []int
	m := g.memos[q.name]
	m.mu.Lock()
	gen := m.rest[rest]
	global := (*memoEntry)(nil)
	if gen != nil {
		for i := range terms {
			found[i] = gen.entries[ids[i]]
		}
		global = gen.global
	}
	m.mu.Unlock()
	fresh := map[uint64]*memoEntry{}
	for i, t := range terms {
		if found[i] != nil {
			continue
		}
		e := fresh[ids[i]]
		if e == nil {
			e = &memoEntry{change: t}
			fresh[ids[i]] = e
			miss, missAt = append(miss, t), append(missAt, i)
		}
		found[i] = e
	}
	if len(miss) > 0 || global == nil {
		global = &memoEntry{}
		rs, err := q.perChange.Eval(ctx, rego.EvalParsedInput(cs.withChanges(miss)))
		switch {
		case err != nil && ctx.Err() != nil:
			return fail("did not finish within %s", timeout)
		case err != nil:
			return fail("evaluation failed: %v", err)
		case len(rs) != 1:
			return fail("produced %d results, want one (is deny or warn undefined?)", len(rs))
		}
		for _, x := range []struct {
			name string
			want bool
			pick func(*memoEntry) *[]*ast.Term
		}{{"deny", q.deny, func(e *memoEntry) *[]*ast.Term { return &e.deny }}, {"warn", q.warn, func(e *memoEntry) *[]*ast.Term { return &e.warn }}} {
			if !x.want {
				continue
			}
			byChange, ok := rs[0].Bindings[x.name].(map[string]any)
			if !ok {
				return fail("%s: is %T, want a set of messages per change", x.name, rs[0].Bindings[x.name])
			}
			for k, v := range byChange {
				i, err := strconv.Atoi(k)
				if err != nil || i < globalIndex || i >= len(miss) {
					return fail("%s: finding of change %q, of %d", x.name, k, len(miss))
				}
				e := global
				if i != globalIndex {
					e = found[missAt[i]]
				}
				set, ok := v.([]any)
				if !ok {
					return fail("%s: is %T, want a set of messages", x.name, v)
				}
				for _, f := range set {
					t, err := ast.InterfaceToValue(f)
					if err != nil {
						return fail("%s: %v", x.name, err)
					}
					*x.pick(e) = append(*x.pick(e), ast.NewTerm(t))
				}
			}
		}
		m.mu.Lock()
		if cur := m.rest[rest]; cur == nil || len(cur.entries) > 2*len(terms)+64 {
			// New, or holding more changes no longer reviewed than
			// reviewed ones: start over with the reviewed ones.
			if len(m.rest) >= maxMemoRest {
				clear(m.rest)
			}
			cur = &memoGen{entries: make(map[uint64]*memoEntry, len(terms))}
			for i, e := range found {
				cur.entries[ids[i]] = e
			}
			m.rest[rest] = cur
			cur.global = global
		} else {
			for _, i := range missAt {
				if cur.entries[ids[i]] == nil {
					cur.entries[ids[i]] = found[i]
				}
			}
			cur.global = global
		}
		m.mu.Unlock()
	}

	deny, warn := ast.NewSet(global.deny...), ast.NewSet(global.warn...)
	for _, e := range found {
		for _, t := range e.deny {
			deny.Add(t)
		}
		for _, t := range e.warn {
			warn.Add(t)
		}
	}
	var out result
	for _, x := range []struct {
		name string
		want bool
		set  ast.Set
		into *[]Finding
	}{{"deny", q.deny, deny, &out.denies}, {"warn", q.warn, warn, &out.warnings}} {
		if !x.want {
			continue
		}
		v, err := ast.JSONWithOpt(x.set, ast.JSONOpt{SortSets: true})
		if err != nil {
			return fail("%s: %v", x.name, err)
		}
		fs, err := findings(v, q, cs)
		if err != nil {
			return fail("%s: %v", x.name, err)
		}
		*x.into = fs
	}
	return out
}

// withChanges is the change set's input document with only the changes
// given.
func (cs *ChangeSet) withChanges(changes []*ast.Term) ast.Value {
	obj := cs.value.(ast.Object)
	var kvs [][2]*ast.Term
	obj.Foreach(func(k, v *ast.Term) {
		if k.Equal(ast.StringTerm("changes")) {
			v = ast.ArrayTerm(changes...)
		}
		kvs = append(kvs, [2]*ast.Term{k, v})
	})
	return ast.NewObject(kvs...)
}
