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
	"fmt"
	"math/rand"
	"net/netip"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	v1 "github.com/palisade-dev/palisade/api/v1alpha1"
	"github.com/palisade-dev/palisade/internal/engine"
)

// decideEgress decides a request that local writes to remote:port from
// what the subsystem wrote, as bpf/l7's sk_msg program does: the peer's
// identity by longest prefix, the egress binding of (local, port,
// identity), else of any peer; none: the request passes.
func (k *fakeL7) decideEgress(local netip.Addr, port uint16, remote netip.Addr, q *engine.HTTPRequest) (bound, allowed bool, rule engine.RuleID) {
	var id uint32
	for bits := remote.BitLen(); bits >= 0; bits-- {
		p, _ := remote.Prefix(bits)
		if v, ok := k.peers[p]; ok {
			id = v
			break
		}
	}
	for _, want := range []uint32{id, 0} {
		for _, b := range k.binds {
			if b.Egress && b.Addr == local && b.Port == port && b.Identity == want {
				ok, r := k.tables.Lists[b.List].Decide(q, false)
				return true, ok, r
			}
		}
	}
	return false, true, 0
}

// TestL7EgressDecidesAsTheEngine: over seeded random egress policy sets
// of api (peers: one app, every endpoint, every entity, world, a CIDR;
// ports: one, a range, any protocol; HTTP rules or none; audit mode; deny
// rules), every request api writes that L3/L4 lets out is decided from
// the egress bindings the subsystem wrote exactly as
// engine.LookupSide(Egress) decides it, with the same deciding rule when
// refused; only api's cgroup is attached (its client sockets).
func TestL7EgressDecidesAsTheEngine(t *testing.T) {
	apps := []string{"frontend", "monitor", "blocked"}
	peers := []string{`toEndpoints: [{matchLabels: {app: frontend}}]`, `toEndpoints: [{matchLabels: {app: monitor}}]`,
		`toEndpoints: [{}]`, `toEntities: [all]`, `toEntities: [world]`, `toCIDR: [192.0.2.0/25]`}
	ports := []string{`{port: "80", protocol: TCP}`, `{port: "81", protocol: TCP}`, `{port: "8000", endPort: 8003, protocol: TCP}`, `{port: "80", protocol: ANY}`}
	rules := []string{``, `{method: GET}`, `{method: GET, path: "/public.*"}`, `{path: "/r/[0-9]+"}`, `{method: POST, path: /orders, headers: ["X-Token: abc"]}`, `{host: "*.example.com"}`}
	reqs := []*engine.HTTPRequest{
		{Method: "GET", Path: "/public/x"}, {Method: "GET", Path: "/private"}, {Method: "POST", Path: "/orders"},
		{Method: "POST", Path: "/orders", Headers: map[string]string{"x-token": "abc"}}, {Method: "GET", Path: "/r/42", Host: "a.example.com"},
		{Method: "DELETE", Path: "/r/1"},
	}
	remotes := []string{"10.0.0.3", "10.0.0.4", "10.0.0.5", "192.0.2.1", "192.0.2.200"}
	checked, refused, bound := 0, 0, 0
	const sets = 100
	for seed := int64(1); seed <= sets; seed++ {
		rnd := rand.New(rand.NewSource(seed))
		f := newL7Fixture(t)
		f.podUID("api", "api", "10.0.0.2", 2, false)
		for i, app := range apps {
			f.podUID(app, app, fmt.Sprintf("10.0.0.%d", 3+i), 3+i, false)
		}
		n := 1 + rnd.Intn(4)
		for i := 0; i < n; i++ {
			var b strings.Builder
			b.WriteString("endpointSelector: {matchLabels: {app: api}}\n")
			if rnd.Intn(4) == 0 {
				b.WriteString("mode: audit\n")
			}
			if rnd.Intn(5) == 0 {
				fmt.Fprintf(&b, "egressDeny:\n- %s\n  toPorts: [{ports: [%s]}]\n", peers[rnd.Intn(2)], ports[rnd.Intn(2)])
			}
			b.WriteString("egress:\n")
			for j := 0; j < 1+rnd.Intn(3); j++ {
				port := ports[rnd.Intn(len(ports))]
				var http []string
				for k := 0; k < rnd.Intn(3); k++ {
					if r := rules[rnd.Intn(len(rules))]; r != "" {
						http = append(http, r)
					}
				}
				l7 := ""
				if len(http) > 0 && !strings.Contains(port, "ANY") {
					l7 = ", rules: {http: [" + strings.Join(http, ", ") + "]}"
				}
				fmt.Fprintf(&b, "- %s\n  toPorts: [{ports: [%s]%s}]\n", peers[rnd.Intn(len(peers))], port, l7)
			}
			f.policy(fmt.Sprintf("p%d", i), "r1", n, b.String())
		}
		if _, err := f.sync(); err != nil {
			t.Fatal(err)
		}
		if c := f.condition(v1.L7EnforcedCondition); c.Reason == v1.DatapathErrorReason {
			t.Fatalf("seed %d: L7Enforced %s: %s", seed, c.Reason, c.Message)
		}
		for _, b := range f.l7.binds {
			if !b.Egress || b.Addr != netip.MustParseAddr("10.0.0.2") {
				t.Fatalf("seed %d: binding %+v: only api's egress is restricted", seed, b)
			}
		}
		bound += len(f.l7.binds)
		// The source's cgroup carries the program (its client sockets),
		// and no other.
		apiCgroup := filepath.Join(f.root, "kubepods", "pod00000000-0000-4000-8000-000000000002")
		if len(f.l7.binds) > 0 && !slices.Equal(f.l7.cgroups, []string{apiCgroup}) {
			t.Fatalf("seed %d: cgroups attached %v, want %v", seed, f.l7.cgroups, []string{apiCgroup})
		}
		state, api := f.k.state, netip.MustParseAddr("10.0.0.2")
		for _, peer := range remotes {
			remote := netip.MustParseAddr(peer)
			for _, port := range []uint16{80, 81, 8000, 8003, 8004} {
				if v, _, _ := state.LookupSide(engine.Egress, api, remote, engine.ProtoTCP, port, nil); v == engine.VerdictDeny {
					continue // L3/L4 drops the connection: no request is written on it
				}
				for _, q := range reqs {
					v, reason, rule := state.LookupSide(engine.Egress, api, remote, engine.ProtoTCP, port, &engine.Request{HTTP: q})
					isBound, allowed, krule := f.l7.decideEgress(api, port, remote, q)
					if allowed != (v != engine.VerdictDeny) || !allowed && krule != rule {
						t.Errorf("seed %d: api -> %s:%d %s %s: kernel allowed=%v (bound %v, rule %d), engine %s %s rule %d", seed, peer, port, q.Method, q.Path, allowed, isBound, krule, v, reason, rule)
						continue
					}
					checked++
					if !allowed {
						refused++
					}
				}
			}
		}
	}
	if refused == 0 || refused == checked {
		t.Fatalf("%d requests checked, %d refused: the sets decide nothing", checked, refused)
	}
	t.Logf("%d seeded sets, %d egress bindings: %d requests decided as the engine does, %d refused", sets, bound, checked, refused)
}

// TestL7EgressReportedWhenNotDecided: what a node fails to do of egress
// HTTP rules is reported by them, as of ingress ones: the source's cgroup
// missing (not decided for that workload), and an agent run without the
// L7 datapath (not enforced at all).
func TestL7EgressReportedWhenNotDecided(t *testing.T) {
	const frontendEgress = `
endpointSelector: {matchLabels: {app: frontend}}
egress:
- toEndpoints: [{matchLabels: {app: api}}]
  toPorts: [{ports: [{port: "80", protocol: TCP}], rules: {http: [{method: GET}]}}]
`
	f := newL7Fixture(t)
	f.podUID("api", "api", "10.0.0.2", 2, false)
	f.podUID("frontend", "frontend", "10.0.0.3", 3, true) // no cgroup
	f.policy("frontend", "r1", 1, frontendEgress)
	if _, err := f.sync(); err != nil {
		t.Fatal(err)
	}
	if o := f.object("frontend"); o.State != v1.ObjectPartial || o.Reason != reasonCgroupNotFound ||
		!strings.Contains(o.Message, "egress HTTP rules on 80/TCP are not decided for workloads") || !strings.Contains(o.Message, "shop/frontend") {
		t.Errorf("frontend without a cgroup: %+v", o)
	}

	off := newL7Fixture(t)
	off.a.L7, off.a.L7Off = nil, "this node runs without --l7"
	off.podUID("api", "api", "10.0.0.2", 2, false)
	off.podUID("frontend", "frontend", "10.0.0.3", 3, false)
	off.policy("frontend", "r1", 1, frontendEgress)
	if _, err := off.sync(); err != nil {
		t.Fatal(err)
	}
	if o := off.object("frontend"); o.State != v1.ObjectPartial || o.Reason != v1.NotSupportedReason ||
		!strings.Contains(o.Message, "egress HTTP rules on 80/TCP are not enforced: this node runs without --l7") {
		t.Errorf("frontend on a node without L7: %+v", o)
	}
}
