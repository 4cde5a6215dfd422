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
	"slices"

	"github.com/palisade-dev/palisade/api/v1alpha1"
	"github.com/palisade-dev/palisade/internal/engine"
	"github.com/palisade-dev/palisade/internal/kafka"
)

// kafkaPlan is what one generation of the Kafka datapath holds for the
// node: the lists and the bindings, as for HTTP (bindPlan).
type kafkaPlan struct {
	bindPlan
	binds []kafka.Binding
	// mixed are the rules whose Kafka rules share a bound port with HTTP
	// rules, by rule: the port's connections are decided by whichever
	// datapath takes the socket first, which refuses the other protocol.
	mixed map[engine.RuleID]string
}

// kafkaRules reports whether rules hold a Kafka rule.
func kafkaRules(r *v1alpha1.L7Rules) bool { return r != nil && len(r.Kafka) > 0 }

// planKafka computes the bindings of the local workloads' Kafka rules
// from the map state the network subsystem applied, as planL7 does for
// HTTP rules: ingress rules bind the broker's address and a local port,
// egress rules the client's address and a remote port
// (kafka.Binding.Egress); a request with a peer of identity X is decided
// by the entries found for X and for any peer (0), merged into X's
// binding.
func planKafka(state *engine.MapState, local []localEndpoint) (*kafkaPlan, error) {
	p := &kafkaPlan{bindPlan: newBindPlan(), mixed: map[engine.RuleID]string{}}
	for _, dir := range []engine.Direction{engine.Ingress, engine.Egress} {
		err := p.plan(state, local, dir, kafkaRules, func(ip netip.Addr, port uint16, id engine.Identity, lid engine.L7ID, list engine.L7List) {
			if hasHTTP(list) {
				for _, a := range list {
					if kafkaRules(a.Rules) {
						p.mixed[a.Rule] = fmt.Sprintf("%d/TCP", port)
					}
				}
			}
			p.binds = append(p.binds, kafka.Binding{Addr: ip, Port: port, Identity: uint32(id), List: lid, Egress: dir == engine.Egress})
		})
		if err != nil {
			return nil, err
		}
	}
	slices.SortFunc(p.binds, func(x, y kafka.Binding) int {
		return cmp.Or(cmpBool(x.Egress, y.Egress), x.Addr.Compare(y.Addr), cmp.Compare(x.Port, y.Port), cmp.Compare(x.Identity, y.Identity))
	})
	return p, nil
}
