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
	"hash/fnv"
	"slices"
	"strconv"
	"strings"

	"github.com/palisade-dev/palisade/api/v1alpha1"
)

// ivl is one rule's range of the port space in a group.
type ivl struct {
	lo, hi uint32
	r      *compRule
	l7     *v1alpha1.L7Rules
	enc    string
}

// segment is a maximal range of the port space with one entry.
type segment struct {
	lo, hi  uint32
	e       PolicyEntry
	l7      *l7Item
	pending *pendingL7 // an L7 list not yet interned
}

type pendingL7 struct {
	key  string
	list L7List
}

// sweepBuf holds the scratch space of the sweep, reused across groups.
type sweepBuf struct {
	ivls   []ivl
	events []uint64
	active []int32
	refs   []l7Ref
}

type l7Ref struct {
	id    RuleID
	audit bool
	l7    *v1alpha1.L7Rules
	enc   string
}

// computeSegs computes a group's segments and interns their L7 lists;
// assign gives new lists their numbers at once (incremental updates).
func (c *Compiler) computeSegs(b *sweepBuf, g *polGroup, assign bool) ([]segment, error) {
	segs := c.sweepGroup(b, g)
	for i := range segs {
		s := &segs[i]
		if s.pending == nil {
			continue
		}
		it, err := c.internL7(s.pending.key, s.pending.list, assign)
		if err != nil {
			return nil, err
		}
		s.l7, s.e.L7, s.pending = it, it.id, nil
	}
	return segs, nil
}

// sweepGroup sweeps the group's ranges in order of position: at every
// position where the set of active ranges changes, the entry of the next
// stretch is the OR of the active rules' flags with the lowest rule of each
// kind; equal neighbours merge.
func (c *Compiler) sweepGroup(b *sweepBuf, g *polGroup) []segment {
	b.ivls = b.ivls[:0]
	for _, r := range g.members {
		b.ivls = c.appendRanges(b.ivls, r, g.key)
	}
	if len(b.ivls) == 0 {
		return nil
	}
	b.events = b.events[:0]
	for i, iv := range b.ivls {
		b.events = append(b.events, uint64(iv.lo)<<32|uint64(i)<<1, uint64(iv.hi+1)<<32|uint64(i)<<1|1)
	}
	slices.Sort(b.events)
	b.active = b.active[:0]
	var segs []segment
	var keys []string // L7 keys of segs, for merging
	ev := b.events
	for k := 0; k < len(ev); {
		pos := uint32(ev[k] >> 32)
		for ; k < len(ev) && uint32(ev[k]>>32) == pos; k++ {
			i := int32(uint32(ev[k]) >> 1)
			if ev[k]&1 == 0 {
				b.active = append(b.active, i)
			} else if j := slices.Index(b.active, i); j >= 0 {
				b.active[j] = b.active[len(b.active)-1]
				b.active = b.active[:len(b.active)-1]
			}
		}
		if k == len(ev) || len(b.active) == 0 {
			continue
		}
		next := uint32(ev[k] >> 32)
		e, key, list := b.entry()
		if n := len(segs); n > 0 && segs[n-1].hi+1 == pos && segs[n-1].e == e && keys[n-1] == key {
			segs[n-1].hi = next - 1
			continue
		}
		s := segment{lo: pos, hi: next - 1, e: e}
		if key != "" {
			s.pending = &pendingL7{key: key, list: list}
		}
		segs = append(segs, s)
		keys = append(keys, key)
	}
	return segs
}

// entry computes the entry of the active ranges, and the L7 list (and its
// key) when an allow among them has L7 rules.
func (b *sweepBuf) entry() (PolicyEntry, string, L7List) {
	var e PolicyEntry
	hasL7 := false
	for _, i := range b.active {
		iv := &b.ivls[i]
		r := iv.r
		switch {
		case r.r.Action == Allow && r.r.Audit:
			e.Flags |= FlagAuditAllow
			e.AuditAllowRule = minRule(e.AuditAllowRule, r.id)
			hasL7 = hasL7 || iv.l7 != nil
		case r.r.Action == Allow:
			e.Flags |= FlagAllow
			e.AllowRule = minRule(e.AllowRule, r.id)
			hasL7 = hasL7 || iv.l7 != nil
		case r.r.Audit:
			e.Flags |= FlagAuditDeny
			e.AuditRule = minRule(e.AuditRule, r.id)
		default:
			e.Flags |= FlagDeny
			e.DenyRule = minRule(e.DenyRule, r.id)
		}
	}
	if !hasL7 {
		return e, "", nil
	}
	b.refs = b.refs[:0]
	for _, i := range b.active {
		if iv := &b.ivls[i]; iv.r.r.Action == Allow {
			b.refs = append(b.refs, l7Ref{id: iv.r.id, audit: iv.r.r.Audit, l7: iv.l7, enc: iv.enc})
		}
	}
	slices.SortFunc(b.refs, func(x, y l7Ref) int { return cmp.Or(cmp.Compare(x.id, y.id), cmp.Compare(x.enc, y.enc)) })
	var list L7List
	var kb strings.Builder
	add := func(r l7Ref) {
		list = append(list, L7Allow{Rule: r.id, Audit: r.audit, Rules: r.l7})
		kb.WriteString(strconv.FormatUint(uint64(r.id), 10))
		kb.WriteString(strconv.FormatBool(r.audit)[:1])
		kb.WriteString(r.enc)
		kb.WriteByte('\n')
	}
	for j := 0; j < len(b.refs); {
		k := j
		for k < len(b.refs) && b.refs[k].id == b.refs[j].id {
			k++
		}
		if b.refs[j].enc == "" {
			add(b.refs[j]) // a rule that allows every request here
		} else {
			for m := j; m < k; m++ {
				if m == j || b.refs[m].enc != b.refs[m-1].enc {
					add(b.refs[m])
				}
			}
		}
		j = k
	}
	return e, kb.String(), list
}

// l7Item is an interned L7 list, counted by the segments that use it.
type l7Item struct {
	id   L7ID
	key  string
	list L7List
	refs int
}

type l7Table struct {
	byKey  map[string]*l7Item
	byID   map[L7ID]*l7Item
	probed int // items not at their hash
}

func newL7Table() l7Table {
	return l7Table{byKey: map[string]*l7Item{}, byID: map[L7ID]*l7Item{}}
}

func l7Hash(key string) L7ID {
	h := fnv.New32a()
	h.Write([]byte(key))
	if id := L7ID(h.Sum32()); id != 0 {
		return id
	}
	return 1
}

// internL7 returns the item of a list, creating it with its number when
// assign is set (a full compile numbers all lists at the end).
func (c *Compiler) internL7(key string, list L7List, assign bool) (*l7Item, error) {
	if it := c.l7.byKey[key]; it != nil {
		it.refs++
		return it, nil
	}
	it := &l7Item{key: key, list: list, refs: 1}
	if assign {
		id := l7Hash(key)
		if c.l7.byID[id] != nil {
			return nil, errRebuild
		}
		it.id = id
		c.l7.byID[id] = it
		c.track.noteL7(c.state, id)
		c.state.L7[id] = list
	}
	c.l7.byKey[key] = it
	return it, nil
}

func (c *Compiler) releaseSegs(segs []segment) error {
	for _, s := range segs {
		it := s.l7
		if it == nil {
			continue
		}
		if it.refs--; it.refs > 0 {
			continue
		}
		if c.l7.probed > 0 {
			return errRebuild
		}
		delete(c.l7.byKey, it.key)
		delete(c.l7.byID, it.id)
		c.track.noteL7(c.state, it.id)
		delete(c.state.L7, it.id)
	}
	return nil
}

// assignAll numbers the lists of a full compile in sorted key order, each
// taking the first free number from its hash on.
func (t *l7Table) assignAll(m *MapState) {
	items := make([]*l7Item, 0, len(t.byKey))
	for _, it := range t.byKey {
		items = append(items, it)
	}
	slices.SortFunc(items, func(a, b *l7Item) int { return cmp.Compare(a.key, b.key) })
	for _, it := range items {
		base := l7Hash(it.key)
		id := base
		for t.byID[id] != nil || id == 0 {
			id++
		}
		if id != base {
			t.probed++
		}
		it.id = id
		t.byID[id] = it
		m.L7[id] = it.list
	}
}
