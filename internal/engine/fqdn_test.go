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
	"math/rand/v2"
	"net/netip"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
)

// wantFQDNAccept is what FQDN.Matches says of name: the sorted selector
// identities that select it.
func wantFQDNAccept(sels map[Identity]FQDN, name string) []Identity {
	var out []Identity
	for id, f := range sels {
		if f.Matches(name) {
			out = append(out, id)
		}
	}
	slices.Sort(out)
	return out
}

func TestCompileFQDNCiliumSemantics(t *testing.T) {
	sels := map[Identity]FQDN{
		MinLocalIdentity + 1: {Name: "api.example.com"},
		MinLocalIdentity + 2: {Pattern: "*.example.com"},
		MinLocalIdentity + 3: {Name: "Upper.Example.COM."},
		MinLocalIdentity + 4: {Pattern: "a*b.test"},
	}
	tb, err := CompileFQDN(sels)
	if err != nil {
		t.Fatal(err)
	}
	id := func(n ...int) []Identity {
		var out []Identity
		for _, k := range n {
			out = append(out, MinLocalIdentity+Identity(k))
		}
		return out
	}
	for _, c := range []struct {
		name string
		want []Identity
	}{
		{"api.example.com", id(1, 2)},
		{"API.EXAMPLE.COM", id(1, 2)},  // case-insensitive
		{"api.example.com.", id(1, 2)}, // trailing dot
		{"upper.example.com", id(2, 3)},
		{"www.example.com", id(2)},
		{"example.com", nil},          // *.example.com does not match example.com
		{"a.b.example.com", nil},      // '*' stays within one label
		{".example.com", id(2)},       // '*' may match nothing
		{"ab.test", id(4)},            // a*b: '*' matches nothing
		{"axxxb.test", id(4)},         // a*b: '*' matches a run
		{"ax.b.test", nil},            // not across labels
		{"api.example.com.evil", nil}, // no suffix match
		{"", nil},
	} {
		got := tb.Lookup(c.name)
		if !slices.Equal(got, c.want) {
			t.Errorf("%q: automaton accepts %v, want %v", c.name, got, c.want)
		}
		if w := wantFQDNAccept(sels, c.name); !slices.Equal(w, c.want) {
			t.Errorf("%q: FQDN.Matches gives %v, the table says %v", c.name, w, c.want)
		}
	}

	// A lone "*" selects every name, the root name too.
	all := map[Identity]FQDN{MinLocalIdentity + 9: {Pattern: "*"}}
	ta, err := CompileFQDN(all)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"", "a", "x.y.z", "EXAMPLE.com."} {
		if got := ta.Lookup(n); !slices.Equal(got, []Identity{MinLocalIdentity + 9}) {
			t.Errorf("lone *: %q accepts %v", n, got)
		}
	}
}

func TestCompileFQDNMatchesFQDN(t *testing.T) {
	r := rand.New(rand.NewPCG(15, 2))
	for set := range 300 {
		sels := map[Identity]FQDN{}
		for range 1 + r.IntN(FQDNMaxSelectorsPerName) {
			id := MinLocalIdentity + Identity(r.IntN(1000))
			switch r.IntN(8) {
			case 0:
				sels[id] = FQDN{Pattern: "*"}
			case 1, 2, 3:
				sels[id] = FQDN{Name: randomDNSName(r, false)}
			default:
				sels[id] = FQDN{Pattern: randomDNSName(r, true)}
			}
		}
		tb, err := CompileFQDN(sels)
		if err != nil {
			t.Fatalf("set %d: %v", set, err)
		}
		if tb.Next[0] >= uint32(len(tb.Accept)) || len(tb.Next) != 256*len(tb.Accept) {
			t.Fatalf("set %d: malformed tables: %d states, %d transitions", set, len(tb.Accept), len(tb.Next))
		}
		again, _ := CompileFQDN(sels)
		if !reflect.DeepEqual(tb, again) {
			t.Fatalf("set %d: two compiles of the same selectors differ", set)
		}
		names := []string{"", "a", "a.b", "A.B.", "x.abc.c"}
		for _, f := range sels {
			names = append(names, f.Name, strings.ReplaceAll(f.Pattern, "*", "xy"), strings.ReplaceAll(f.Pattern, "*", ""))
		}
		for range 60 {
			names = append(names, randomDNSName(r, false))
		}
		for _, n := range names {
			if got, want := tb.Lookup(n), wantFQDNAccept(sels, n); !slices.Equal(got, want) {
				t.Fatalf("set %d %v: %q: automaton accepts %v, FQDN.Matches %v", set, sels, n, got, want)
			}
		}
	}
}

func TestCompileFQDNBound(t *testing.T) {
	four := map[Identity]FQDN{
		MinLocalIdentity + 1: {Name: "api.example.com"},
		MinLocalIdentity + 2: {Pattern: "*.example.com"},
		MinLocalIdentity + 3: {Pattern: "api.*.com"},
		MinLocalIdentity + 4: {Pattern: "*"},
	}
	tb, err := CompileFQDN(four)
	if err != nil {
		t.Fatalf("four selectors of one name: %v", err)
	}
	if got := tb.Lookup("api.example.com"); len(got) != 4 {
		t.Fatalf("api.example.com: %v, want the four selectors", got)
	}
	five := map[Identity]FQDN{MinLocalIdentity + 5: {Pattern: "a*.example.com"}}
	for id, f := range four {
		five[id] = f
	}
	_, err = CompileFQDN(five)
	if err == nil {
		t.Fatal("five selectors of one name compiled; the kernel stores four")
	}
	for _, want := range []string{"5 toFQDNs selectors", "matchName:api.example.com", "matchPattern:*.example.com", "matchPattern:api.*.com", "matchPattern:*", "matchPattern:a*.example.com", "4"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %q", err, want)
		}
	}
	// Five selectors that never select one name together are fine.
	apart := map[Identity]FQDN{}
	for i, n := range []string{"a.com", "b.com", "c.com", "d.com", "e.com"} {
		apart[MinLocalIdentity+Identity(i)] = FQDN{Name: n}
	}
	if _, err := CompileFQDN(apart); err != nil {
		t.Fatalf("five distinct names: %v", err)
	}
	empty, err := CompileFQDN(nil)
	if err != nil || len(empty.Accept) != 1 || empty.Lookup("x.com") != nil {
		t.Fatalf("no selectors: %+v, %v; want one state that accepts nothing", empty, err)
	}
}

func TestFQDNNameHash(t *testing.T) {
	// FNV-1a 64 test vectors.
	if got := FQDNNameHash(""); got != 0xcbf29ce484222325 {
		t.Errorf("hash of the root name: %#x", got)
	}
	if got := FQDNNameHash("a"); got != 0xaf63dc4c8601ec8c {
		t.Errorf("hash of a: %#x", got)
	}
	if FQDNNameHash("API.Example.com.") != FQDNNameHash("api.example.com") {
		t.Error("the hash is not of the normalised name")
	}
	if NormalizeFQDN("WWW.Example.COM.") != "www.example.com" {
		t.Errorf("NormalizeFQDN: %q", NormalizeFQDN("WWW.Example.COM."))
	}
}

func TestFQDNEligible(t *testing.T) {
	for id, want := range map[Identity]bool{
		IdentityWorld: true, IdentityKubeAPIServer: true, MinLocalIdentity: true, MinLocalIdentity + 77: true,
		IdentityHost: false, IdentityUnmanaged: false, IdentityCluster: false, IdentityRemoteNode: false,
		IdentityHostAPIServer: false, IdentityRemoteNodeAPIServer: false, MinWorkloadIdentity: false, MaxWorkloadIdentity: false,
	} {
		if FQDNEligible(id) != want {
			t.Errorf("FQDNEligible(%d) = %v", id, !want)
		}
	}
}

// TestSelectorIdentities compiles a scenario with toFQDNs rules: each
// selector gets the node-local identity of its hash, the rules are
// compiled under it, and the DNS answers add no ipcache entries.
func TestSelectorIdentities(t *testing.T) {
	sc, err := loadScenario(filepath.Join(scenarioDir, "fqdn-match-pattern.txtar"))
	if err != nil {
		t.Fatal(err)
	}
	s := sc.Steps[0]
	ir := s.buildIR(t)
	c := s.Cluster
	var node string
	for _, e := range c.Endpoints {
		if e.Namespace == "shop" && e.Labels["app"] == "frontend" {
			node = e.Node
		}
	}
	ids := NewMemoryAllocator()
	if err := AllocateIdentities(c, ids); err != nil {
		t.Fatal(err)
	}
	m, err := Compile(ir, c, node, ids)
	if err != nil {
		t.Fatal(err)
	}
	want := map[Identity]FQDN{
		localHash("fqdn|matchPattern:*.example.com"):       {Pattern: "*.example.com"},
		localHash("fqdn|matchName:storage.googleapis.com"): {Name: "storage.googleapis.com"},
	}
	if !reflect.DeepEqual(m.FQDNSelectors, want) {
		t.Fatalf("selectors %v, want %v", m.FQDNSelectors, want)
	}
	for id := range want {
		found := false
		for k := range m.Policy {
			found = found || k.Identity == id && k.Direction == Egress
		}
		if !found {
			t.Errorf("no egress policy entry under selector identity %d", id)
		}
	}
	for p, id := range m.IPCache {
		if _, sel := want[id]; sel {
			t.Errorf("ipcache %s has selector identity %d", p, id)
		}
		if id.IsLocal() {
			t.Errorf("ipcache %s has node-local identity %d: no CIDR rule names it", p, id)
		}
	}
	if len(m.FQDNNames) == 0 {
		t.Fatal("no learned names from the cluster's DNS answers")
	}
	for n := range m.FQDNNames {
		if n != NormalizeFQDN(n) {
			t.Errorf("learned name %q is not normalised", n)
		}
	}
	www := netip.MustParseAddr("198.51.100.80")
	if got := m.fqdnProbes(www); !slices.Equal(got, []Identity{localHash("fqdn|matchPattern:*.example.com")}) {
		t.Errorf("probes for %s: %v", www, got)
	}
}

// TestLookupFQDNProbes pins the probes of the map state contract on a
// hand-made state: selector identities are probed on egress only, for
// eligible peers only, and their entries fold with the others.
func TestLookupFQDNProbes(t *testing.T) {
	const pid = 300
	sel, other := MinLocalIdentity+10, MinLocalIdentity+11
	src := netip.MustParseAddr("10.0.0.1")
	learned := netip.MustParseAddr("203.0.113.7")
	pod := netip.MustParseAddr("10.0.0.2")
	cidr := netip.MustParseAddr("198.51.100.7")
	m := &MapState{
		IPCache: map[netip.Prefix]Identity{
			netip.MustParsePrefix("0.0.0.0/0"):       IdentityWorld,
			netip.MustParsePrefix("10.0.0.1/32"):     pid,
			netip.MustParsePrefix("10.0.0.2/32"):     pid + 1,
			netip.MustParsePrefix("198.51.100.0/24"): MinLocalIdentity + 99,
		},
		Endpoints: map[netip.Addr]EndpointEntry{src: {Identity: pid, PolicyID: pid, Flags: EgressDefaultDeny | IngressDefaultDeny}},
		Policy: map[PolicyKey]PolicyEntry{
			{PolicyID: pid, Direction: Egress, Identity: sel, Proto: ProtoTCP, Port: 443, PrefixLen: 24}:   {Flags: FlagAllow, AllowRule: 7},
			{PolicyID: pid, Direction: Ingress, Identity: sel, Proto: ProtoTCP, Port: 443, PrefixLen: 24}:  {Flags: FlagAllow, AllowRule: 8},
			{PolicyID: pid, Direction: Egress, Identity: other, Proto: ProtoTCP, Port: 443, PrefixLen: 24}: {Flags: FlagDeny, DenyRule: 9},
		},
		L7:            map[L7ID]L7List{},
		FQDNSelectors: map[Identity]FQDN{sel: {Pattern: "*.example.com"}, other: {Name: "bad.example.com"}},
		FQDNNames: map[string][]netip.Addr{
			"api.example.com": {learned, pod, cidr},
			"bad.other.org":   {learned},
		},
	}
	for _, c := range []struct {
		name   string
		dir    Direction
		remote netip.Addr
		want   Verdict
		rule   RuleID
	}{
		{"learned world address", Egress, learned, VerdictAllow, 7},
		{"learned address in a CIDR identity", Egress, cidr, VerdictAllow, 7},
		{"a workload's address is never selected", Egress, pod, VerdictDeny, 0},
		{"ingress never probes selectors", Ingress, learned, VerdictDeny, 0},
		{"an address no name resolved to", Egress, netip.MustParseAddr("203.0.113.8"), VerdictDeny, 0},
	} {
		v, _, rule := m.LookupSide(c.dir, src, c.remote, ProtoTCP, 443, nil)
		if v != c.want || rule != c.rule {
			t.Errorf("%s: %s rule %d, want %s rule %d", c.name, v, rule, c.want, c.rule)
		}
	}
	// A second name of the same address, selected by a deny: the entries
	// fold, and the deny wins.
	m.FQDNNames["bad.example.com"] = []netip.Addr{learned}
	if v, r, rule := m.LookupSide(Egress, src, learned, ProtoTCP, 443, nil); v != VerdictDeny || r != ReasonDenied || rule != 9 {
		t.Errorf("two selectors of one address: %s %s rule %d, want deny by rule 9", v, r, rule)
	}
}
