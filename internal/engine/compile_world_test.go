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
	"fmt"
	"net/netip"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/palisade-dev/palisade/api/v1alpha1"
)

// TestCompileWorldRulesOnce checks the world contract: a rule that selects
// every address outside the cluster is written under IdentityAllWorld only,
// whatever number of node-local CIDR identities there are, while a rule
// that selects only part of the world (here: not the API server's external
// address), or one with L7 rules, is written under each identity it
// selects; and every side is decided as Evaluate decides it.
func TestCompileWorldRulesOnce(t *testing.T) {
	for _, prefixes := range []int{1, 12} {
		t.Run(fmt.Sprintf("prefixes=%d", prefixes), func(t *testing.T) {
			c := &Cluster{
				Namespaces: map[string]map[string]string{"ns": {}},
				Nodes:      []Node{{Name: "n1", IPs: []netip.Addr{netip.MustParseAddr("192.168.0.1")}}},
				Endpoints: []Endpoint{
					{Namespace: "ns", Name: "a", Labels: map[string]string{"app": "a"}, IPs: []netip.Addr{netip.MustParseAddr("10.0.0.1")}, Node: "n1"},
				},
				APIServer: []netip.Addr{netip.MustParseAddr("198.51.100.10")},
			}
			sub := mustSelector(t, nil)
			partial := mustSelector(t, &metav1.LabelSelector{
				MatchLabels:      map[string]string{"reserved:world": ""},
				MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "reserved:kube-apiserver", Operator: metav1.LabelSelectorOpDoesNotExist}},
			})
			pol := &Policy{Origin: Origin{Kind: "NetworkPolicy", Namespace: "ns", Name: "p"}, Subject: Subject{Endpoints: &sub},
				DefaultDeny: [2]bool{true, true}}
			add := func(path string, peer Peer, l4 ...L4) {
				pol.Rules = append(pol.Rules, &Rule{Origin: Origin{Kind: "NetworkPolicy", Namespace: "ns", Name: "p", Path: path},
					Direction: Egress, Action: Allow, Subject: pol.Subject, Peer: peer, L4: l4})
			}
			add("spec.egress[0]", Peer{Entities: []Entity{EntityWorld}}, L4{Proto: ProtoTCP, Lo: 443, Hi: 443})
			add("spec.egress[1]", Peer{Endpoints: []Selector{partial}}, L4{Proto: ProtoTCP, Lo: 80, Hi: 80})
			add("spec.egress[2]", Peer{Entities: []Entity{EntityWorld}}, L4{Proto: ProtoTCP, Lo: 8080, Hi: 8080,
				L7: &v1alpha1.L7Rules{HTTP: []v1alpha1.HTTPRule{{Method: "GET", Path: "/ok"}}}})
			add("spec.egress[3]", Peer{CIDRs: []CIDRRule{{Prefix: netip.MustParsePrefix("198.51.100.0/24")}}}, L4{Proto: ProtoTCP, Lo: 22, Hi: 22})
			for i := range prefixes {
				add(fmt.Sprintf("spec.egress[%d]", 4+i), Peer{CIDRs: []CIDRRule{{Prefix: netip.PrefixFrom(netip.AddrFrom4([4]byte{100, 64, byte(i), 0}), 24)}}},
					L4{Proto: ProtoTCP, Lo: 22, Hi: 22})
			}
			ir := testIR([]*Policy{pol})
			m := nodeStates(t, ir, c)["n1"]

			at := map[uint16]map[Identity]bool{}
			for k := range m.Policy {
				if at[k.Port] == nil {
					at[k.Port] = map[Identity]bool{}
				}
				at[k.Port][k.Identity] = true
			}
			locals := 0
			for _, id := range m.IPCache {
				if id.IsLocal() {
					locals++
				}
			}
			if locals < prefixes+1 {
				t.Fatalf("%d node-local identities in the ipcache, want at least %d", locals, prefixes+1)
			}
			if got := at[443]; len(got) != 1 || !got[IdentityAllWorld] {
				t.Errorf("entity world on 443/TCP: entries under %v, want under IdentityAllWorld only", got)
			}
			// The partial world rule: under world and every plain CIDR
			// identity, never under IdentityAllWorld or the API server's.
			if got := at[80]; got[IdentityAllWorld] || !got[IdentityWorld] || len(got) != locals {
				t.Errorf("world but not the API server on 80/TCP: entries under %v, want world and the %d plain CIDR identities", got, locals-1)
			}
			// With L7 rules: under every world identity.
			if got := at[8080]; got[IdentityAllWorld] || !got[IdentityWorld] {
				t.Errorf("entity world with L7 rules on 8080/TCP: entries under %v, want world's and not IdentityAllWorld", got)
			}
			for _, id := range m.IPCache {
				if id.IsLocal() && !at[8080][id] {
					t.Errorf("entity world with L7 rules on 8080/TCP: no entry under CIDR identity %d", id)
				}
			}

			src := netip.MustParseAddr("10.0.0.1")
			dsts := []string{"8.8.8.8", "198.51.100.10", "198.51.100.11", "100.64.0.9", "2001:db8::1", "192.168.0.1"}
			reqs := []*Request{nil, {HTTP: &HTTPRequest{Method: "GET", Path: "/ok"}}, {HTTP: &HTTPRequest{Method: "POST", Path: "/ok"}}}
			for _, d := range dsts {
				for _, port := range []uint16{22, 80, 443, 8080, 9999} {
					for _, req := range reqs {
						flow := Flow{Src: src, Dst: netip.MustParseAddr(d), Proto: ProtoTCP, Port: port, Request: req}
						if diffs, _ := compareFlow(ir, c, map[string]*MapState{"n1": m}, flow); len(diffs) > 0 {
							t.Errorf("%s:%d %v: %v", d, port, req, diffs)
						}
					}
				}
			}
			if v, _, rule := m.LookupSide(Egress, src, netip.MustParseAddr("100.64.0.9"), ProtoTCP, 443, nil); v != VerdictAllow || rule != ir.Policies[0].Rules[0].ID {
				t.Errorf("443/TCP to a CIDR identity's address: %s by %d, want allow by %d (IdentityAllWorld's entry)", v, rule, ir.Policies[0].Rules[0].ID)
			}
		})
	}
}

func mustSelector(t *testing.T, s *metav1.LabelSelector) Selector {
	t.Helper()
	sel, err := NewSelector(s, "ns")
	if err != nil {
		t.Fatal(err)
	}
	return sel
}
