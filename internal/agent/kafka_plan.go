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
	"net/netip"
	"reflect"
	"slices"

	"github.com/palisade-dev/palisade/internal/engine"
	"github.com/palisade-dev/palisade/internal/kafka"
)

// kafkaPlan is what one generation of the Kafka datapath holds for the
// node: the lists (the allow rules that decide a request at one local
// address, port and peer identity, merged as engine.LookupSide merges
// the peer's and the any-peer entry, as for HTTP) and the bindings.
type kafkaPlan struct {
	lists map[engine.L7ID]engine.L7List
	binds []kafka.Binding
	// endpoints are the local workloads with at least one binding.
	endpoints map[string]bool
	// unbound are the rules whose Kafka rules sit on a policy entry over
	// too many ports to bind, by rule.
	unbound map[engine.RuleID]string
	// mixed are the rules whose Kafka rules share a bound port with HTTP
	// rules, by rule: the port's connections are decided by whichever
	// datapath takes the socket first, which refuses the other protocol.
	mixed map[engine.RuleID]string
}

// hasKafka reports whether a list holds a Kafka rule.
func hasKafka(l engine.L7List) bool { return engine.KafkaListHasKafka(l) }

// planKafka computes the bindings of the local workloads' ingress Kafka
// rules from the map state the network subsystem applied, as planL7
// does for HTTP rules: a request from a peer of identity X is decided by
// the entries found for X and for any peer (0), merged into X's binding.
func planKafka(state *engine.MapState, local []localEndpoint) (*kafkaPlan, error) {
	p := &kafkaPlan{lists: map[engine.L7ID]engine.L7List{}, endpoints: map[string]bool{},
		unbound: map[engine.RuleID]string{}, mixed: map[engine.RuleID]string{}}
	dir := engine.Ingress
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
			var ports []uint16
			for _, keys := range ids {
				for _, k := range keys {
					e := state.Policy[k]
					if e.L7 == 0 {
						continue
					}
					list, ok := state.L7[e.L7]
					if !ok {
						return nil, fmt.Errorf("policy entry %+v names l7 list %d, which the state does not hold", k, e.L7)
					}
					if !hasKafka(list) {
						continue
					}
					b, _ := tcpBlock(k)
					if int(b.hi)-int(b.lo)+1 > maxL7BlockPorts {
						for _, a := range list {
							if a.Rules != nil && len(a.Rules.Kafka) > 0 {
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
				anyKafka := hasAny && any0.L7 != 0 && hasKafka(state.L7[any0.L7])
				for _, id := range idList {
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
					if len(entries) == 0 || !anyKafka && !slices.ContainsFunc(entries, func(e engine.PolicyEntry) bool { return e.L7 != 0 && hasKafka(state.L7[e.L7]) }) {
						continue // no Kafka rule decides this peer's requests
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
					if hasHTTP(list) {
						for _, a := range list {
							if a.Rules != nil && len(a.Rules.Kafka) > 0 {
								p.mixed[a.Rule] = fmt.Sprintf("%d/TCP", port)
							}
						}
					}
					lid := p.add(list)
					p.binds = append(p.binds, kafka.Binding{Addr: ip, Port: port, Identity: uint32(id), List: lid})
					p.endpoints[l.id] = true
				}
			}
		}
	}
	slices.SortFunc(p.binds, func(x, y kafka.Binding) int {
		return cmp.Or(x.Addr.Compare(y.Addr), cmp.Compare(x.Port, y.Port), cmp.Compare(x.Identity, y.Identity))
	})
	return p, nil
}

// add holds list under its content ID (the next free one on a hash
// collision) and returns the ID.
func (p *kafkaPlan) add(list engine.L7List) engine.L7ID {
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
