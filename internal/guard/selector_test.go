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

package guard_test

import (
	"reflect"
	"testing"

	"github.com/palisade-dev/palisade/internal/engine"
	"github.com/palisade-dev/palisade/internal/guard"
)

// asGuard describes an engine selector as guards see selectors, leaving out
// the namespace requirement the engine adds for a namespaced policy (the
// guard document says the namespace elsewhere).
func asGuard(s engine.Selector) []guard.Requirement {
	out := []guard.Requirement{}
	for _, r := range s.Requirements {
		if r.Key == engine.LabelNamespace {
			continue
		}
		vs := r.Values
		if vs == nil {
			vs = []string{}
		}
		out = append(out, guard.Requirement{Key: r.Key, Operator: r.Op.String(), Values: vs})
	}
	return out
}

// TestSelectorsAsEnforced: a "k8s:" label source prefix means the
// workload's own labels, to the engine and so to the guards. Dropping the
// prefix changes nothing the datapath does, so it must change no fact;
// dropping a requirement next to a prefixed one widens the selector, and
// the prefix must not hide that. The guard's selectors are the engine's.
func TestSelectorsAsEnforced(t *testing.T) {
	base := load(t, map[string]string{"web.cue": np("web", "shop", "web", `endpointSelector: matchLabels: {"k8s:app": "web", tier: "front"}
		ingress: [{
			fromEndpoints: [{matchLabels: "k8s:role": "db"}, {matchExpressions: [{key: "any:team", operator: "In", values: ["b", "a"]}]}]
			toPorts: [{ports: [{port: 5432, protocol: "TCP"}]}]
		}]`)})
	head := load(t, map[string]string{"web.cue": np("web", "shop", "web", `endpointSelector: matchLabels: app: "web"
		ingress: [{
			fromEndpoints: [{matchLabels: role: "db"}, {matchExpressions: [{key: "team", operator: "In", values: ["a", "b"]}]}]
			toPorts: [{ports: [{port: 5432, protocol: "TCP"}]}]
		}]`)})

	cs := guard.NewChangeSet(base, head, guard.Meta{PolicySet: guard.PolicySetRef{Namespace: "shop", Name: "main"}})
	f := change(t, cs, "NetworkPolicy/shop/web").Facts

	web := []guard.Requirement{{Key: "app", Operator: "In", Values: []string{"web"}}}
	if !reflect.DeepEqual(f.Subject.Endpoints, web) {
		t.Errorf("subject %+v, want %+v", f.Subject.Endpoints, web)
	}
	if len(f.NewPorts) != 0 {
		t.Errorf("the same peers without the k8s:/any: prefix look new: %+v", f.NewPorts)
	}
	wantWidened := []guard.WidenedSelector{{
		Path:   "spec.endpointSelector",
		Before: []guard.Requirement{{Key: "app", Operator: "In", Values: []string{"web"}}, {Key: "tier", Operator: "In", Values: []string{"front"}}},
		After:  web,
	}}
	if !reflect.DeepEqual(f.WidenedSelectors, wantWidened) {
		t.Errorf("widened selectors %+v, want %+v", f.WidenedSelectors, wantWidened)
	}

	// What the engine enforces for either revision is what the guards saw.
	for _, side := range []struct {
		name    string
		subject []guard.Requirement
	}{{"base", wantWidened[0].Before}, {"head", web}} {
		pols := base
		if side.name == "head" {
			pols = head
		}
		ir, err := engine.Build(pols, "")
		if err != nil {
			t.Fatal(err)
		}
		p := ir.Policies[0]
		if got := asGuard(*p.Subject.Endpoints); !reflect.DeepEqual(got, side.subject) {
			t.Errorf("%s: engine subject %+v, guard subject %+v", side.name, got, side.subject)
		}
		if len(p.Rules) != 1 || len(p.Rules[0].Peer.Endpoints) != 2 {
			t.Fatalf("%s: engine rules %+v", side.name, p.Rules)
		}
		peers := [][]guard.Requirement{
			{{Key: "role", Operator: "In", Values: []string{"db"}}},
			{{Key: "team", Operator: "In", Values: []string{"a", "b"}}},
		}
		for i, s := range p.Rules[0].Peer.Endpoints {
			if got := asGuard(s); !reflect.DeepEqual(got, peers[i]) {
				t.Errorf("%s: engine peer %d %+v, want %+v", side.name, i, got, peers[i])
			}
			// And the engine selects the workload the requirements name.
			w := engine.LabelPolicy{}.WorkloadLabels("shop", map[string]string{"role": "db", "team": "a"}, nil, "")
			if !s.Matches(w) {
				t.Errorf("%s: engine peer %d (%s) does not select %s", side.name, i, s, w)
			}
		}
	}
}
