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
	"net/netip"
	"slices"
)

// peerClass is one peer identity and what rules can match on: the labels
// PeerLabels gives its addresses and, for a node-local prefix identity, the
// ipcache prefix its addresses resolve to. A selector identity (fqdn set)
// has no addresses: it stands for every eligible address that a name the
// selector selects resolved to (see MapState).
type peerClass struct {
	id     Identity
	labels Labels
	world  bool
	work   *workload
	prefix netip.Prefix
	fqdn   *FQDN  // selector identities: the normalised selector
	key    string // node-local identities: what the number is hashed from
}

func workloadClass(id Identity, w *workload) *peerClass {
	return &peerClass{id: id, labels: w.labels, work: w}
}

// Node-local identities are one per ipcache prefix that needs its own
// policy (Cilium's CIDR identities): every prefix a CIDR rule names and an
// external API server address that a CIDR rule reaches; and one per FQDN
// selector the node's rules name (selector identities, which are never in
// the ipcache: the datapath probes them for the addresses its learned DNS
// table holds). One identity per prefix or selector rather than per set of
// matching rules keeps numbers stable: a new CIDR rule adds the identities
// of its own prefixes and changes no other prefix's identity. The number
// is a hash of the labels and the prefix ("fqdn|" and the selector) in the
// local range; a collision is resolved by probing in sorted key order,
// like rule IDs.
const localSpan = 1<<32 - 1<<24 // how many node-local identities there are

func localHash(key string) Identity {
	h := fnv.New32a()
	h.Write([]byte(key))
	return MinLocalIdentity + Identity(h.Sum32()%localSpan)
}

func nextLocal(id Identity) Identity {
	if id == 1<<32-1 {
		return MinLocalIdentity
	}
	return id + 1
}

// desiredLocals computes the node-local prefix classes the current rules
// and cluster need, by prefix, and the API server addresses that no CIDR
// rule reaches, which keep IdentityKubeAPIServer.
func (c *Compiler) desiredLocals() (map[netip.Prefix]*peerClass, []netip.Addr) {
	v := c.view
	x := v.cl.idx()
	inPod := func(p netip.Prefix) bool {
		return slices.ContainsFunc(v.cl.PodCIDRs, func(pc netip.Prefix) bool { return within(p, pc) })
	}
	world, apiWorld := Reserved(EntityWorld), Reserved(EntityKubeAPIServer, EntityWorld)
	want := map[netip.Prefix]*peerClass{}
	hosts := map[netip.Addr]bool{}
	for p := range c.prefixes {
		switch {
		case p.IsSingleIP():
			hosts[p.Addr()] = true
		case !inPod(p): // inside a pod CIDR every address is "cluster"
			want[p] = localClass(world, p)
		}
	}
	for _, a := range v.cl.APIServer {
		hosts[a] = true
	}
	var untouched []netip.Addr
	for a := range hosts {
		if x.byIP[a] != nil || x.nodeIP[a] != nil {
			continue // workloads and nodes have their own identity
		}
		p := hostPrefix(a)
		switch {
		case x.api[a]:
			if !c.reaches(p) {
				untouched = append(untouched, a)
				continue
			}
			want[p] = localClass(apiWorld, p)
		case !inPod(p):
			want[p] = localClass(world, p)
		}
	}
	slices.SortFunc(untouched, func(a, b netip.Addr) int { return a.Compare(b) })
	return want, untouched
}

func localClass(l Labels, p netip.Prefix) *peerClass {
	return &peerClass{labels: l, world: true, prefix: p, key: l.String() + "|" + p.String()}
}

// reaches reports whether a CIDR rule prefix contains p.
func (c *Compiler) reaches(p netip.Prefix) bool {
	for q := range c.prefixes {
		if within(p, q) {
			return true
		}
	}
	return false
}

// desiredSelectors computes the selector classes the current rules need:
// one per distinct normalised FQDN selector of the policies that select an
// enforcement point of the node.
func (c *Compiler) desiredSelectors() map[FQDN]*peerClass {
	want := map[FQDN]*peerClass{}
	for f := range c.fqdns {
		n := f.normalized()
		if want[n] == nil {
			want[n] = &peerClass{fqdn: &n, key: "fqdn|" + n.text()}
		}
	}
	return want
}

// assignLocals numbers the classes of a full compile: sorted by key, each
// takes the first free number from its hash on.
func (c *Compiler) assignLocals(want map[netip.Prefix]*peerClass, sels map[FQDN]*peerClass) {
	all := make([]*peerClass, 0, len(want)+len(sels))
	for _, cl := range want {
		all = append(all, cl)
	}
	for _, cl := range sels {
		all = append(all, cl)
	}
	slices.SortFunc(all, func(a, b *peerClass) int { return cmp.Compare(a.key, b.key) })
	for _, cl := range all {
		base := localHash(cl.key)
		id := base
		for c.classes[id] != nil {
			id = nextLocal(id)
		}
		if id != base {
			c.localProbe++
		}
		cl.id = id
		c.classes[id] = cl
		if cl.fqdn != nil {
			c.sels[*cl.fqdn] = cl
		} else {
			c.locals[cl.prefix] = cl
		}
	}
}

// syncLocals brings the node-local classes in line with the current rules
// and cluster. A class that must move to another number because of a hash
// collision makes the update a full compile.
func (c *Compiler) syncLocals() error {
	if !c.localsDirty {
		return nil
	}
	c.localsDirty, c.ipcacheDirty = false, true
	want, untouched := c.desiredLocals()
	wantSel := c.desiredSelectors()
	c.untouched = untouched
	var gone, added []*peerClass
	for p, cur := range c.locals {
		if w := want[p]; w == nil || w.key != cur.key {
			gone = append(gone, cur)
		}
	}
	for f, cur := range c.sels {
		if wantSel[f] == nil {
			gone = append(gone, cur)
		}
	}
	if len(gone) > 0 && c.localProbe > 0 {
		return errRebuild
	}
	for _, cur := range gone {
		if cur.fqdn != nil {
			delete(c.sels, *cur.fqdn)
		} else {
			delete(c.locals, cur.prefix)
		}
		c.removeClass(cur.id)
	}
	for p, w := range want {
		if c.locals[p] == nil {
			added = append(added, w)
		}
	}
	for f, w := range wantSel {
		if c.sels[f] == nil {
			added = append(added, w)
		}
	}
	slices.SortFunc(added, func(a, b *peerClass) int { return cmp.Compare(a.key, b.key) })
	for _, w := range added {
		w.id = localHash(w.key)
		if c.classes[w.id] != nil {
			return errRebuild
		}
		if w.fqdn != nil {
			c.sels[*w.fqdn] = w
		} else {
			c.locals[w.prefix] = w
		}
		c.addClass(w)
	}
	return nil
}

// addClass adds a peer identity: to the specs that select it and to the
// groups of their rules.
func (c *Compiler) addClass(cl *peerClass) {
	c.classes[cl.id] = cl
	for _, ps := range c.peerSpecs {
		if !ps.matches(cl) {
			continue
		}
		i, _ := slices.BinarySearch(ps.ids, cl.id)
		ps.ids = slices.Insert(ps.ids, i, cl.id)
		for _, r := range ps.rules {
			for _, s := range r.pol.subj.ids {
				c.addMember(groupKey{s, r.r.Direction, cl.id}, r)
			}
		}
	}
	if cl.work != nil {
		c.addWildNamed(cl.id, cl.work.names)
	}
}

// removeClass removes a peer identity and every group it is the peer of.
func (c *Compiler) removeClass(id Identity) {
	delete(c.classes, id)
	for _, ps := range c.peerSpecs {
		if i, ok := slices.BinarySearch(ps.ids, id); ok {
			ps.ids = slices.Delete(ps.ids, i, i+1)
		}
	}
	for s := range c.subjects {
		c.clearGroup(groupKey{s, Ingress, id})
		c.clearGroup(groupKey{s, Egress, id})
	}
}

// addSubject adds a local enforcement point with the groups of every rule
// of the policies that select it.
func (c *Compiler) addSubject(si *subjectInfo) {
	c.subjects[si.id] = si
	for _, ss := range c.subjSpecs {
		if !ss.sub.selects(si.sub) {
			continue
		}
		i, _ := slices.BinarySearch(ss.ids, si.id)
		ss.ids = slices.Insert(ss.ids, i, si.id)
		for _, p := range ss.pols {
			if len(ss.ids) == 1 {
				c.countAddrs(p, 1) // the policy now applies on the node
			}
			si.count(p.pol, 1)
			for _, r := range p.rules {
				c.eachGroup(r, si.id, func(k groupKey) { c.addMember(k, r) })
			}
		}
	}
}

// removeSubject removes a local enforcement point and all its groups.
func (c *Compiler) removeSubject(id Identity) {
	for _, ss := range c.subjSpecs {
		if i, ok := slices.BinarySearch(ss.ids, id); ok {
			ss.ids = slices.Delete(ss.ids, i, i+1)
			if len(ss.ids) == 0 {
				for _, p := range ss.pols {
					c.countAddrs(p, -1) // the policy no longer applies here
				}
			}
		}
	}
	for _, d := range []Direction{Ingress, Egress} {
		c.clearGroup(groupKey{id, d, 0})
		c.clearGroup(groupKey{id, d, IdentityAllWorld})
		for p := range c.classes {
			c.clearGroup(groupKey{id, d, p})
		}
	}
	delete(c.subjects, id)
}

// wildRulesFor returns the egress rules for every peer that name one of
// names as a port.
func (c *Compiler) wildRulesFor(names []string) []*compRule {
	var out []*compRule
	for _, n := range names {
		for _, r := range c.wildNamed[n] {
			if !slices.Contains(out, r) {
				out = append(out, r)
			}
		}
	}
	return out
}

// addWildNamed adds workload identity x, which declares port names, to the
// groups of the egress rules for every peer that name one of them.
func (c *Compiler) addWildNamed(x Identity, names []string) {
	for _, r := range c.wildRulesFor(names) {
		for _, s := range r.pol.subj.ids {
			c.addMember(groupKey{s, Egress, x}, r)
		}
	}
}

func (c *Compiler) dropWildNamed(x Identity, names []string) {
	for _, r := range c.wildRulesFor(names) {
		for _, s := range r.pol.subj.ids {
			c.removeMember(groupKey{s, Egress, x}, r)
		}
	}
}

// markNamedDirty marks the groups whose named ports resolve on x.
func (c *Compiler) markNamedDirty(x Identity) {
	if _, ok := c.subjects[x]; ok {
		c.markIfAny(groupKey{x, Ingress, 0})
		c.markIfAny(groupKey{x, Ingress, IdentityAllWorld})
		for p := range c.classes {
			c.markIfAny(groupKey{x, Ingress, p})
		}
	}
	for s := range c.subjects {
		c.markIfAny(groupKey{s, Egress, x})
	}
}
