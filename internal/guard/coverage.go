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
	"slices"
)

// reach indexes what one side of a change allows (or denies), so that each
// combination of the other side can be asked "was this already covered?"
// without comparing every pair of rules.
type reach struct {
	groups map[groupKey]*reachGroup
	// endpoints and cidrs list the groups of those kinds per direction, for
	// selector implication and prefix containment.
	endpoints, cidrs map[string][]*reachGroup
	b                *budget
}

// reachGroup is everything allowed for one peer.
type reachGroup struct {
	peer  peer
	l3    bool                // every protocol and port, ICMP included
	spans map[string][][2]int // protocol → merged inclusive ranges
	named map[string]bool     // protocol + "/" + name
}

func newReach(b *budget) *reach {
	return &reach{groups: map[groupKey]*reachGroup{}, endpoints: map[string][]*reachGroup{}, cidrs: map[string][]*reachGroup{}, b: b}
}

// groupKey identifies a peer in one direction.
type groupKey struct{ dir, kind, value string }

func keyOf(dir string, p Peer) groupKey { return groupKey{dir, p.Kind, p.Value} }

// add records that rule direction dir allows (or denies) s for p.
func (r *reach) add(dir string, p peer, s portSpan) {
	k := keyOf(dir, p.Peer)
	g := r.groups[k]
	if g == nil {
		g = &reachGroup{peer: p} // maps made on first use: most groups need one
		r.groups[k] = g
		switch p.Kind {
		case "endpoints":
			r.endpoints[dir] = append(r.endpoints[dir], g)
		case "cidr":
			r.cidrs[dir] = append(r.cidrs[dir], g)
		}
	}
	switch {
	case s.l3:
		g.l3 = true
	case s.named != "":
		if g.named == nil {
			g.named = map[string]bool{}
		}
		g.named[s.proto+"/"+s.named] = true
	default:
		if g.spans == nil {
			g.spans = map[string][][2]int{}
		}
		g.spans[s.proto] = append(g.spans[s.proto], [2]int{s.lo, s.hi})
	}
}

// seal merges each group's ranges; call it once, after the last add.
func (r *reach) seal() {
	for _, g := range r.groups {
		for proto, rs := range g.spans {
			g.spans[proto] = merge(rs)
		}
	}
}

func merge(rs [][2]int) [][2]int {
	slices.SortFunc(rs, func(a, b [2]int) int { return a[0] - b[0] })
	out := rs[:0]
	for _, x := range rs {
		if n := len(out); n > 0 && x[0] <= out[n-1][1]+1 {
			out[n-1][1] = max(out[n-1][1], x[1])
			continue
		}
		out = append(out, x)
	}
	return out
}

// covered reports whether s for p in direction dir is already allowed (or
// denied) by one peer of r. Coverage split across several peers is not
// recognized, so the answer errs towards "new". ok is false when the work
// budget ran out.
func (r *reach) covered(dir string, p peer, s portSpan) (covered, ok bool) {
	check := func(g *reachGroup) bool { return g != nil && g.covers(s) }
	if check(r.groups[keyOf(dir, Peer{Kind: "all"})]) || check(r.groups[keyOf(dir, p.Peer)]) {
		return true, true
	}
	switch p.Kind {
	case "endpoints":
		if check(r.groups[keyOf(dir, Peer{Kind: "entity", Value: "cluster"})]) {
			return true, true
		}
		for _, g := range r.endpoints[dir] {
			if !r.b.spend(len(g.peer.reqs)*len(p.reqs) + 1) {
				return false, false
			}
			if covers(g.peer.reqs, p.reqs) && g.covers(s) {
				return true, true
			}
		}
	case "cidr":
		if !p.prefix.IsValid() {
			return false, true
		}
		for _, g := range r.cidrs[dir] {
			if !r.b.spend(1) {
				return false, false
			}
			gp := g.peer.prefix
			if gp.IsValid() && gp.Bits() <= p.prefix.Bits() && gp.Contains(p.prefix.Addr()) && g.covers(s) {
				return true, true
			}
		}
	}
	return false, true
}

// covers reports whether the group allows all of s.
func (g *reachGroup) covers(s portSpan) bool {
	if g.l3 {
		return true
	}
	if s.l3 {
		return false
	}
	protos := []string{s.proto}
	switch s.proto {
	case "TCP", "UDP", "SCTP":
		protos = append(protos, "ANY")
	}
	if s.named != "" {
		for _, pr := range protos {
			if g.named[pr+"/"+s.named] || inRanges(g.spans[pr], 0, 65535) {
				return true
			}
		}
		return false
	}
	for _, pr := range protos {
		if inRanges(g.spans[pr], s.lo, s.hi) {
			return true
		}
	}
	return false
}

// inRanges reports whether lo..hi lies within one of the merged ranges.
func inRanges(rs [][2]int, lo, hi int) bool {
	i, _ := slices.BinarySearchFunc(rs, lo, func(r [2]int, v int) int {
		switch {
		case r[1] < v:
			return -1
		case r[0] > v:
			return 1
		}
		return 0
	})
	return i < len(rs) && rs[i][0] <= lo && hi <= rs[i][1]
}
