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
	"cmp"
	"fmt"
	"hash/fnv"
	"net/netip"
	"reflect"
	"slices"

	"github.com/palisade-dev/palisade/api/v1alpha1"
	"github.com/palisade-dev/palisade/internal/capability"
	"github.com/palisade-dev/palisade/internal/engine"
	"github.com/palisade-dev/palisade/internal/l7"
)

// Bounds of what the l7 subsystem binds, as bpf/l7 sizes its maps: a
// policy entry over more ports than maxL7BlockPorts (a wide range, or
// every port) is not bound port by port, and its HTTP rules are reported
// as not enforced.
const (
	maxL7BlockPorts = 1024
	maxL7Ports      = 4096
	maxL7Binds      = 16384
)

// bindPlan is what the socket datapaths' plans share (bpf/l7's for HTTP
// rules, bpf/kafka's for Kafka rules): the lists (each the allow rules
// that decide a request at one local address, port and peer identity,
// merged as engine.LookupSide merges the peer's and the any-peer entry),
// the workloads bound and the rules that could not be bound.
type bindPlan struct {
	lists map[engine.L7ID]engine.L7List
	// endpoints are the local workloads ("namespace/name") with at least
	// one binding: their pods' cgroups need the sockops program.
	endpoints map[string]bool
	// unbound are the rules whose rules of the protocol sit on a policy
	// entry over too many ports to bind, by rule.
	unbound map[engine.RuleID]string
}

func newBindPlan() bindPlan {
	return bindPlan{lists: map[engine.L7ID]engine.L7List{}, endpoints: map[string]bool{}, unbound: map[engine.RuleID]string{}}
}

// l7Plan is what one generation of the L7 datapath holds for the node:
// the lists and the bindings to them.
type l7Plan struct {
	bindPlan
	binds []l7.Binding
}

// l7Block is a policy entry's ports, as a range.
type l7Block struct{ lo, hi uint16 }

// tcpBlock returns the TCP ports a policy key covers; ok is false when it
// covers no TCP port.
func tcpBlock(k engine.PolicyKey) (l7Block, bool) {
	if k.PrefixLen == 0 {
		return l7Block{0, 65535}, true
	}
	if k.Proto != engine.ProtoTCP {
		return l7Block{}, false
	}
	if k.PrefixLen <= 8 {
		return l7Block{0, 65535}, true
	}
	span := uint32(1) << (24 - uint32(k.PrefixLen))
	return l7Block{k.Port, uint16(uint32(k.Port) + span - 1)}, true
}

// httpParts are the HTTP rules of a rule set that the l7 subsystem binds:
// ingress (the server's side) and egress (the client's side) ones. What a
// node fails to do of them is reported by them.
func httpParts(rs *v1alpha1.RuleSet) []capability.Gap {
	return append(capability.Parts(rs, capability.HTTP), capability.Parts(rs, capability.HTTPEgress)...)
}

// httpRules reports whether rules hold an HTTP rule.
func httpRules(r *v1alpha1.L7Rules) bool { return r != nil && len(r.HTTP) > 0 }

// hasHTTP reports whether a list holds an HTTP rule.
func hasHTTP(l engine.L7List) bool {
	return slices.ContainsFunc(l, func(a engine.L7Allow) bool { return httpRules(a.Rules) })
}

// planL7 computes the bindings of the local workloads' HTTP rules from
// the map state the network subsystem applied: ingress rules bind the
// workload's address and a local port (the server's side), egress rules
// bind the workload's address and a remote port (the client's side,
// l7.Binding.Egress). A request between a local address and a port with
// a peer of identity X is decided by the entries found for X and for any
// peer (0), as engine.LookupSide does for the direction: the kernel finds
// one binding (X's, else the any-peer one), so X's binding holds the
// merged list of both entries.
func planL7(state *engine.MapState, local []localEndpoint) (*l7Plan, error) {
	p := &l7Plan{bindPlan: newBindPlan()}
	for _, dir := range []engine.Direction{engine.Ingress, engine.Egress} {
		err := p.plan(state, local, dir, httpRules, func(ip netip.Addr, port uint16, id engine.Identity, lid engine.L7ID, _ engine.L7List) {
			p.binds = append(p.binds, l7.Binding{Addr: ip, Port: port, Identity: uint32(id), List: lid, Egress: dir == engine.Egress})
		})
		if err != nil {
			return nil, err
		}
	}
	slices.SortFunc(p.binds, func(x, y l7.Binding) int {
		return cmp.Or(cmpBool(x.Egress, y.Egress), x.Addr.Compare(y.Addr), cmp.Compare(x.Port, y.Port), cmp.Compare(x.Identity, y.Identity))
	})
	return p, nil
}

func cmpBool(a, b bool) int {
	switch {
	case a == b:
		return 0
	case !a:
		return -1
	}
	return 1
}

// plan adds the lists of one direction's entries whose lists hold rules
// of the protocol (mine says which rules are), and calls bind for each
// local address, port and peer identity they decide, once, with the
// merged list and its ID.
func (p *bindPlan) plan(state *engine.MapState, local []localEndpoint, dir engine.Direction, mine func(*v1alpha1.L7Rules) bool,
	bind func(ip netip.Addr, port uint16, id engine.Identity, lid engine.L7ID, list engine.L7List)) error {
	has := func(l engine.L7List) bool {
		return slices.ContainsFunc(l, func(a engine.L7Allow) bool { return mine(a.Rules) })
	}
	// The entries of each policy ID in the direction, by identity.
	byPolicy := map[uint32]map[engine.Identity][]engine.PolicyKey{}
	for k := range state.Policy {
		if k.Direction != dir {
			continue
		}
		if _, ok := tcpBlock(k); !ok {
			continue
		}
		if byPolicy[k.PolicyID] == nil {
			byPolicy[k.PolicyID] = map[engine.Identity][]engine.PolicyKey{}
		}
		byPolicy[k.PolicyID][k.Identity] = append(byPolicy[k.PolicyID][k.Identity], k)
	}
	type bindKey struct {
		addr netip.Addr
		port uint16
		id   engine.Identity
	}
	seen := map[bindKey]bool{}
	for _, l := range local {
		for _, ip := range l.ips {
			ep, ok := state.Endpoints[ip]
			if !ok || l.pending {
				continue
			}
			ids := byPolicy[ep.PolicyID]
			// The ports where some entry of this endpoint carries rules of
			// the protocol.
			var ports []uint16
			for _, keys := range ids {
				for _, k := range keys {
					e := state.Policy[k]
					if e.L7 == 0 {
						continue
					}
					list, ok := state.L7[e.L7]
					if !ok {
						return fmt.Errorf("policy entry %+v names l7 list %d, which the state does not hold", k, e.L7)
					}
					if !has(list) {
						continue
					}
					b, _ := tcpBlock(k)
					if int(b.hi)-int(b.lo)+1 > maxL7BlockPorts {
						for _, a := range list {
							if mine(a.Rules) {
								p.unbound[a.Rule] = fmt.Sprintf("%d-%d/TCP", b.lo, b.hi)
							}
						}
						continue
					}
					for port := int(b.lo); port <= int(b.hi); port++ {
						ports = append(ports, uint16(port))
					}
				}
			}
			slices.Sort(ports)
			ports = slices.Compact(ports)
			idList := peerIdentities(state, ids)
			for _, port := range ports {
				any0, hasAny := lookupEntry(state, ep.PolicyID, dir, 0, port)
				allWorld, hasAllWorld := lookupEntry(state, ep.PolicyID, dir, engine.IdentityAllWorld, port)
				anyMine := hasAny && any0.L7 != 0 && has(state.L7[any0.L7])
				for _, id := range idList {
					// The entries the datapath finds for a peer of id, as
					// engine.LookupSide probes them: id's, any peer's, and
					// for a world peer those of every world address.
					var entries []engine.PolicyEntry
					own := false
					if id != 0 {
						if e, ok := lookupEntry(state, ep.PolicyID, dir, id, port); ok {
							entries, own = append(entries, e), true
						}
						if hasAllWorld && engine.WorldPeer(id) {
							entries, own = append(entries, allWorld), true
						}
						if !own {
							continue // the any-peer binding decides, as it should
						}
					}
					if hasAny {
						entries = append(entries, any0)
					}
					if len(entries) == 0 || !anyMine && !slices.ContainsFunc(entries, func(e engine.PolicyEntry) bool { return e.L7 != 0 && has(state.L7[e.L7]) }) {
						continue // no rule of the protocol decides this peer's requests
					}
					list, ok := mergeL7(state, entries)
					if !ok {
						continue // denied or not allowed at L3/L4: no request arrives
					}
					k := bindKey{ip, port, id}
					if seen[k] {
						continue
					}
					seen[k] = true
					bind(ip, port, id, p.add(list), list)
					p.endpoints[l.id] = true
				}
			}
		}
	}
	return nil
}

// peerIdentities are the peer identities that may need a binding of
// their own at an endpoint whose ingress entries are ids: any peer (0),
// every identity with entries, and, where entries for every world address
// exist, every world identity of the ipcache and world itself.
func peerIdentities(state *engine.MapState, ids map[engine.Identity][]engine.PolicyKey) []engine.Identity {
	set := map[engine.Identity]bool{0: true}
	for id := range ids {
		if id != engine.IdentityAllWorld {
			set[id] = true
		}
	}
	if _, ok := ids[engine.IdentityAllWorld]; ok {
		set[engine.IdentityWorld] = true
		for _, id := range state.IPCache {
			if engine.WorldPeer(id) {
				set[id] = true
			}
		}
	}
	out := make([]engine.Identity, 0, len(set))
	for id := range set {
		out = append(out, id)
	}
	slices.Sort(out)
	return out
}

// add holds list under its content ID (the next free one on a hash
// collision) and returns the ID.
func (p *bindPlan) add(list engine.L7List) engine.L7ID {
	id := l7ListID(list)
	for {
		have, ok := p.lists[id]
		if !ok {
			p.lists[id] = list
			return id
		}
		if reflect.DeepEqual(have, list) {
			return id
		}
		id++
		if id == 0 {
			id = 1
		}
	}
}

// lookupEntry finds the entry of a direction with the longest prefix for
// a TCP port, as the datapath does.
func lookupEntry(state *engine.MapState, policyID uint32, dir engine.Direction, id engine.Identity, port uint16) (engine.PolicyEntry, bool) {
	full := uint32(engine.ProtoTCP)<<16 | uint32(port)
	for bits := 24; bits >= 0; bits-- {
		v := full &^ (1<<(24-bits) - 1)
		k := engine.PolicyKey{PolicyID: policyID, Direction: dir, Identity: id, Proto: engine.Proto(v >> 16), Port: uint16(v), PrefixLen: uint8(bits)}
		if e, ok := state.Policy[k]; ok {
			return e, true
		}
	}
	return engine.PolicyEntry{}, false
}

// mergeL7 is the list that decides a request from the entries found, as
// engine's decideView and decideL7 do: an allow entry without a list
// becomes an allow of every request (its allow rule, and its audit-mode
// allow rule as an audit allow), an entry with a list adds the list's
// allows. ok is false when the entries deny (an enforcing deny rule) or
// allow nothing: L3/L4 then decides every packet, and no request is
// inspected.
func mergeL7(state *engine.MapState, entries []engine.PolicyEntry) (engine.L7List, bool) {
	var out engine.L7List
	for _, e := range entries {
		if e.Flags&engine.FlagDeny != 0 {
			return nil, false
		}
		if e.Flags&(engine.FlagAllow|engine.FlagAuditAllow) == 0 {
			continue
		}
		if e.L7 != 0 {
			out = append(out, state.L7[e.L7]...)
			continue
		}
		if e.Flags&engine.FlagAllow != 0 {
			out = append(out, engine.L7Allow{Rule: e.AllowRule})
		}
		if e.Flags&engine.FlagAuditAllow != 0 {
			out = append(out, engine.L7Allow{Rule: e.AuditAllowRule, Audit: true})
		}
	}
	if len(out) == 0 {
		return nil, false
	}
	slices.SortStableFunc(out, func(x, y engine.L7Allow) int {
		if c := cmp.Compare(x.Rule, y.Rule); c != 0 {
			return c
		}
		// The enforcing allow of a rule before its audit twin.
		if x.Audit != y.Audit {
			if !x.Audit {
				return -1
			}
			return 1
		}
		return 0
	})
	return slices.CompactFunc(out, func(x, y engine.L7Allow) bool { return x.Rule == y.Rule && x.Audit == y.Audit }), true
}

// l7ListID names a merged list by its content, so that the same list is
// one list in the kernel, whatever binds it.
func l7ListID(l engine.L7List) engine.L7ID {
	h := fnv.New32a()
	for _, a := range l {
		fmt.Fprintf(h, "%d/%t/", a.Rule, a.Audit)
		if a.Rules == nil {
			h.Write([]byte("*;"))
			continue
		}
		writeL7Rules(h, a.Rules)
	}
	id := engine.L7ID(h.Sum32())
	if id == 0 {
		id = 1
	}
	return id
}

func writeL7Rules(h interface{ Write([]byte) (int, error) }, r *v1alpha1.L7Rules) {
	for _, x := range r.HTTP {
		fmt.Fprintf(h, "h%q %q %q %q;", x.Method, x.Path, x.Host, x.Headers)
	}
	for _, x := range r.Kafka {
		fmt.Fprintf(h, "k%+v;", x)
	}
	for _, x := range r.DNS {
		fmt.Fprintf(h, "d%+v;", x)
	}
	h.Write([]byte("|"))
}

// refuseAll is the list that refuses every request, naming rule: an
// allow with L7 rules none of which is an HTTP rule. A list the kernel
// cannot hold is replaced by it, so that its requests are refused, never
// passed.
func refuseAll(rule engine.RuleID) engine.L7List {
	return engine.L7List{{Rule: rule, Rules: &v1alpha1.L7Rules{}}}
}

// bindInputsSame reports whether the change d of the map state (state
// after it) leaves what the bind planner (bindPlan.plan) and writePeers
// read as it was: the endpoint entries of the local addresses, the policy
// entries of their policy IDs, the L7 lists and the ipcache.
func bindInputsSame(d *engine.Delta, state *engine.MapState, local []localEndpoint) bool {
	if len(d.L7)+len(d.L7Deleted)+len(d.IPCache)+len(d.IPCacheDeleted) > 0 {
		return false
	}
	ids := map[uint32]bool{}
	for _, l := range local {
		for _, ip := range l.ips {
			if _, ok := d.Endpoints[ip]; ok || slices.Contains(d.EndpointsDeleted, ip) {
				return false
			}
			if ep, ok := state.Endpoints[ip]; ok {
				ids[ep.PolicyID] = true
			}
		}
	}
	for k := range d.Policy {
		if ids[k.PolicyID] {
			return false
		}
	}
	return !slices.ContainsFunc(d.PolicyDeleted, func(k engine.PolicyKey) bool { return ids[k.PolicyID] })
}
