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
	"runtime"
	"slices"
	"sync"
)

// groupKey is the unit of policy compilation: the entries of one
// (PolicyID, direction, peer identity) never overlap.
type groupKey struct {
	pid  Identity
	dir  Direction
	peer Identity
}

// polGroup holds the rules of a group and the segments last written for
// it, so that a change can rewrite exactly the group's entries.
type polGroup struct {
	key     groupKey
	members []*compRule
	segs    []segment
	dirty   bool
}

func (c *Compiler) markDirty(g *polGroup) {
	if !g.dirty {
		g.dirty = true
		c.dirty = append(c.dirty, g)
	}
}

func (c *Compiler) markIfAny(k groupKey) {
	if g := c.groups[k]; g != nil {
		c.markDirty(g)
	}
}

func (c *Compiler) addMember(k groupKey, r *compRule) {
	g := c.groups[k]
	if g == nil {
		g = &polGroup{key: k}
		c.groups[k] = g
	}
	g.members = append(g.members, r)
	c.markDirty(g)
}

func (c *Compiler) removeMember(k groupKey, r *compRule) {
	if g := c.groups[k]; g != nil {
		g.members = deleteRule(g.members, r)
		c.markDirty(g)
	}
}

func (c *Compiler) clearGroup(k groupKey) {
	if g := c.groups[k]; g != nil {
		g.members = nil
		c.markDirty(g)
	}
}

// recomputeDirty rewrites the entries of every group marked dirty.
func (c *Compiler) recomputeDirty() error {
	for len(c.dirty) > 0 {
		g := c.dirty[len(c.dirty)-1]
		c.dirty = c.dirty[:len(c.dirty)-1]
		g.dirty = false
		if err := c.recompute(g); err != nil {
			return err
		}
		if len(g.members) == 0 && len(g.segs) == 0 && c.groups[g.key] == g {
			delete(c.groups, g.key)
		}
	}
	return nil
}

// recompute rewrites one group's entries, recording the keys it touches.
func (c *Compiler) recompute(g *polGroup) error {
	segs, err := c.computeSegs(&c.buf, g, true)
	if err != nil {
		return err
	}
	if slices.Equal(g.segs, segs) {
		return c.releaseSegs(segs)
	}
	for _, s := range g.segs {
		eachPrefix(s.lo, s.hi, func(v uint32, plen uint8) {
			k := policyKey24(g.key, v, plen)
			c.track.notePolicy(c.state, k)
			delete(c.state.Policy, k)
		})
	}
	for _, s := range segs {
		eachPrefix(s.lo, s.hi, func(v uint32, plen uint8) {
			k := policyKey24(g.key, v, plen)
			c.track.notePolicy(c.state, k)
			c.state.Policy[k] = s.e
		})
	}
	old := g.segs
	g.segs = segs
	return c.releaseSegs(old)
}

func policyKey24(k groupKey, v uint32, plen uint8) PolicyKey {
	return PolicyKey{PolicyID: uint32(k.pid), Direction: k.dir, Identity: k.peer, Proto: Proto(v >> 16), Port: uint16(v), PrefixLen: plen}
}

// eachPrefix calls fn with the aligned prefixes of the 24-bit space that
// cover [lo, hi] exactly: at most two per bit.
func eachPrefix(lo, hi uint32, fn func(v uint32, plen uint8)) {
	for lo <= hi {
		size, plen := uint32(portSpace), uint8(0)
		if lo != 0 {
			size = lo & -lo
			plen = 24
			for s := size; s > 1; s >>= 1 {
				plen--
			}
		}
		for size > hi-lo+1 {
			size >>= 1
			plen++
		}
		fn(lo, plen)
		lo += size
		if lo == 0 || lo >= portSpace {
			return
		}
	}
}

// build compiles pols with the current view from scratch into the empty
// compiler (see reset).
func (c *Compiler) build(pols []*compPolicy) {
	c.building = true
	defer func() { c.building = false }()
	for _, id := range ReservedIdentities() {
		l, _ := ReservedLabels(id)
		c.classes[id] = &peerClass{id: id, labels: l, world: l.Has(EntityWorld)}
	}
	for id, w := range c.view.work {
		c.classes[id] = workloadClass(id, w)
	}
	for id, sub := range c.view.subjects() {
		c.subjects[id] = &subjectInfo{id: id, sub: sub}
	}
	for _, p := range pols {
		c.policies[p.key] = p
		p.subj = c.subjSpecFor(p.pol.Subject)
		p.subj.pols = append(p.subj.pols, p)
		for _, r := range p.rules {
			c.slots[r.id] = r
			c.registerRule(r)
		}
	}
	c.matchSubjects()
	for _, p := range pols {
		if len(p.subj.ids) > 0 {
			c.countAddrs(p, 1)
		}
	}
	want, untouched := c.desiredLocals()
	c.untouched = untouched
	c.assignLocals(want, c.desiredSelectors())
	c.localsDirty = false
	c.matchAll()
	for _, p := range pols {
		for _, s := range p.subj.ids {
			c.subjects[s].count(p.pol, 1)
			for _, r := range p.rules {
				c.eachGroup(r, s, func(k groupKey) { c.addMember(k, r) })
			}
		}
	}
	c.computeAll()
	c.l7.assignAll(c.state)
	n := 0
	for _, g := range c.groups {
		for _, s := range g.segs {
			n += prefixCount(s.lo, s.hi)
		}
	}
	c.state.Policy = make(map[PolicyKey]PolicyEntry, n)
	for _, g := range c.groups {
		for i := range g.segs {
			s := &g.segs[i]
			if s.l7 != nil {
				s.e.L7 = s.l7.id
			}
			e := s.e
			eachPrefix(s.lo, s.hi, func(v uint32, plen uint8) { c.state.Policy[policyKey24(g.key, v, plen)] = e })
		}
	}
	c.state.IPCache = c.computeIPCache()
	c.state.Endpoints = c.computeEndpoints()
	c.state.FQDNSelectors, c.state.FQDNNames = c.computeFQDN()
	c.ipcacheDirty = false
}

func prefixCount(lo, hi uint32) int {
	n := 0
	eachPrefix(lo, hi, func(uint32, uint8) { n++ })
	return n
}

// computeAll computes the segments of every dirty group of a full compile,
// in parallel: groups are independent, and L7 lists are interned without
// numbers, which assignAll gives afterwards in sorted order.
func (c *Compiler) computeAll() {
	groups := c.dirty
	c.dirty = nil
	workers := min(runtime.GOMAXPROCS(0), 1+len(groups)/512)
	var mu sync.Mutex
	var wg sync.WaitGroup
	const chunk = 256
	next := 0
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var buf sweepBuf
			for {
				mu.Lock()
				lo := next
				next += chunk
				mu.Unlock()
				if lo >= len(groups) {
					return
				}
				for _, g := range groups[lo:min(lo+chunk, len(groups))] {
					g.dirty = false
					g.segs = c.sweepGroup(&buf, g)
				}
			}
		}()
	}
	wg.Wait()
	for _, g := range groups {
		for i := range g.segs {
			if s := &g.segs[i]; s.pending != nil {
				s.l7, _ = c.internL7(s.pending.key, s.pending.list, false)
				s.pending = nil
			}
		}
	}
}
