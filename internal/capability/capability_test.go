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

package capability

import (
	"slices"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/palisade-dev/palisade/api/v1alpha1"
)

func port(n int32, proto v1alpha1.Protocol) v1alpha1.PortProtocol {
	return v1alpha1.PortProtocol{Port: intstr.FromInt32(n), Protocol: proto}
}

// ruleSet has one rule of every feature beyond L3/L4, and L3/L4 rules
// that must produce no gap.
func ruleSet() *v1alpha1.RuleSet {
	return &v1alpha1.RuleSet{
		Mode: v1alpha1.EnforcementModeAudit,
		Ingress: []v1alpha1.IngressRule{
			{ToPorts: []v1alpha1.PortRule{{Ports: []v1alpha1.PortProtocol{port(5432, v1alpha1.ProtocolTCP)}}}},
			{ToPorts: []v1alpha1.PortRule{
				{Ports: []v1alpha1.PortProtocol{port(8080, v1alpha1.ProtocolTCP)}, Rules: &v1alpha1.L7Rules{HTTP: []v1alpha1.HTTPRule{{Method: "GET"}}}},
				{Ports: []v1alpha1.PortProtocol{port(9092, v1alpha1.ProtocolTCP)}, Rules: &v1alpha1.L7Rules{Kafka: []v1alpha1.KafkaRule{{Topic: "orders"}}}},
			}},
		},
		Egress: []v1alpha1.EgressRule{
			{ToPorts: []v1alpha1.PortRule{{Ports: []v1alpha1.PortProtocol{port(53, v1alpha1.ProtocolUDP), port(53, v1alpha1.ProtocolTCP)},
				Rules: &v1alpha1.L7Rules{DNS: []v1alpha1.DNSRule{{MatchPattern: "*"}}}}}},
			{ToFQDNs: []v1alpha1.FQDNSelector{{MatchName: "api.stripe.com"}, {MatchPattern: "*.googleapis.com"}}},
			{ToPorts: []v1alpha1.PortRule{{Ports: []v1alpha1.PortProtocol{port(443, v1alpha1.ProtocolTCP)},
				Rules: &v1alpha1.L7Rules{HTTP: []v1alpha1.HTTPRule{{Method: "POST", Path: "/v1/charges"}}}}}},
			// An outside resolver by name, whose queries are restricted.
			{ToFQDNs: []v1alpha1.FQDNSelector{{MatchName: "dns.google"}},
				ToPorts: []v1alpha1.PortRule{{Ports: []v1alpha1.PortProtocol{port(53, v1alpha1.ProtocolUDP)},
					Rules: &v1alpha1.L7Rules{DNS: []v1alpha1.DNSRule{{MatchPattern: "*.example.com"}}}}}},
			// An outside API by name, whose requests are restricted.
			{ToFQDNs: []v1alpha1.FQDNSelector{{MatchName: "api.github.com"}},
				ToPorts: []v1alpha1.PortRule{{Ports: []v1alpha1.PortProtocol{port(443, v1alpha1.ProtocolTCP)},
					Rules: &v1alpha1.L7Rules{HTTP: []v1alpha1.HTTPRule{{Method: "GET"}}}},
					{Ports: []v1alpha1.PortProtocol{port(9093, v1alpha1.ProtocolTCP)},
						Rules: &v1alpha1.L7Rules{Kafka: []v1alpha1.KafkaRule{{Role: v1alpha1.KafkaRoleProduce, Topic: "events"}}}}}},
		},
	}
}

// TestNetworkGaps pins each gap's field path and words, in field order.
func TestNetworkGaps(t *testing.T) {
	want := []Gap{
		// Ingress and egress HTTP rules, ingress Kafka rules, DNS rules
		// and toFQDNs are enforced in the kernel: no gap.
		{DNSOnFQDNPeers, "spec.egress[3].toPorts[0].rules.dns", "egress DNS rules on 53/UDP of a toFQDNs rule"},
		{HTTPOnFQDNPeers, "spec.egress[4].toPorts[0].rules.http", "egress HTTP rules on 443/TCP of a toFQDNs rule"},
		{KafkaOnFQDNPeers, "spec.egress[4].toPorts[1].rules.kafka", "egress Kafka rules on 9093/TCP of a toFQDNs rule"},
	}
	got := Network(ruleSet())
	if len(got) != len(want) {
		t.Fatalf("got %d gaps, want %d: %v", len(got), len(want), got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("gap %d: %+v, want %+v", i, got[i], want[i])
		}
	}
	if s := got[1].String(); s != "egress HTTP rules on 443/TCP of a toFQDNs rule are not enforced: the kernel "+Table[HTTPOnFQDNPeers].Kernel {
		t.Errorf("String() = %q", s)
	}
	// Without a DNS rule on an egress port, the kernel learns nothing for
	// the names: that is the gap, at the toFQDNs.
	noDNS := ruleSet()
	noDNS.Egress = noDNS.Egress[1:3]
	got = Network(noDNS)
	wantNoDNS := Gap{FQDNWithoutDNS, "spec.egress[0].toFQDNs", "toFQDNs (api.stripe.com, *.googleapis.com) of a policy without DNS rules"}
	if !slices.Contains(got, wantNoDNS) || slices.ContainsFunc(got, func(g Gap) bool { return g.Feature == FQDN }) {
		t.Errorf("toFQDNs without DNS rules: %v, want %v and no %s gap", got, wantNoDNS, FQDN)
	}
	if gaps := Network(&v1alpha1.RuleSet{Ingress: ruleSet().Ingress[:1]}); len(gaps) != 0 {
		t.Errorf("L3/L4 rule has gaps: %v", gaps)
	}
}

// TestGapsFollowTable: a feature the table marks enforced has no gaps,
// and an object's state follows.
func TestGapsFollowTable(t *testing.T) {
	for _, f := range []Feature{HTTP, HTTPEgress, FQDN, AuditReports, Tracing, FQDNWithoutDNS, DNSOnFQDNPeers, HTTPOnFQDNPeers, KafkaOnFQDNPeers} {
		t.Run(string(f), func(t *testing.T) {
			old := Table[f]
			t.Cleanup(func() { Table[f] = old })
			if old.Enforced {
				// Enforced already: check the mechanism as if it were not.
				Table[f] = Support{Subsystem: old.Subsystem, Effect: Unreported, Kernel: "does not"}
			}
			rs := ruleSet()
			if f == FQDNWithoutDNS {
				rs.Egress = rs.Egress[1:3] // no DNS rule
			}
			before := append(Network(rs), TracingPolicy(&v1alpha1.TracingPolicySpec{})...)
			ofF := 0
			for _, g := range before {
				if g.Feature == f {
					ofF++
				}
			}
			if ofF == 0 {
				t.Fatalf("no %s gap while not enforced: %v", f, before)
			}
			Table[f] = Support{Enforced: true, Subsystem: old.Subsystem}
			gaps := append(Network(rs), TracingPolicy(&v1alpha1.TracingPolicySpec{})...)
			if len(gaps) != len(before)-ofF {
				t.Errorf("%d gaps with %s enforced, want %d", len(gaps), f, len(before)-ofF)
			}
			for _, g := range gaps {
				if g.Feature == f {
					t.Errorf("%s is enforced, yet %v", f, g)
				}
			}
		})
	}
}

func TestState(t *testing.T) {
	if s, r, m := State(nil); s != v1alpha1.ObjectEnforced || r != "" || m != "" {
		t.Errorf("no gaps: %s %q %q", s, r, m)
	}
	s, r, m := State(Network(ruleSet()))
	if s != v1alpha1.ObjectPartial || r != v1alpha1.NotSupportedReason || strings.Count(m, "are not enforced") != 3 {
		t.Errorf("network gaps: %s %q %q", s, r, m)
	}
	// A feature that is not loaded at all makes the object not enforced;
	// tracing is enforced now, so the check runs as if it were not.
	old := Table[Tracing]
	t.Cleanup(func() { Table[Tracing] = old })
	Table[Tracing] = Support{Subsystem: old.Subsystem, Effect: NotLoaded, Kernel: old.Kernel}
	if s, _, m := State(TracingPolicy(&v1alpha1.TracingPolicySpec{})); s != v1alpha1.ObjectNotEnforced || !strings.Contains(m, Table[Tracing].Kernel) {
		t.Errorf("tracing: %s %q", s, m)
	}
}

// TestAuditReported: the observer reports audit verdicts as flows, so an
// audit-mode policy has no gap.
func TestAuditReported(t *testing.T) {
	for _, g := range Network(ruleSet()) {
		if g.Feature == AuditReports {
			t.Errorf("audit mode has a gap: %v", g)
		}
	}
}

func TestPortsString(t *testing.T) {
	end := int32(8010)
	for _, tc := range []struct {
		ports []v1alpha1.PortProtocol
		want  string
	}{
		{nil, "every port"},
		{[]v1alpha1.PortProtocol{port(80, "")}, "80/" + string(v1alpha1.ProtocolAny)},
		{[]v1alpha1.PortProtocol{{Port: intstr.FromInt32(8000), EndPort: &end, Protocol: v1alpha1.ProtocolTCP}}, "8000-8010/TCP"},
		{[]v1alpha1.PortProtocol{{Port: intstr.FromString("http"), Protocol: v1alpha1.ProtocolTCP}}, "http/TCP"},
	} {
		if got := PortsString(tc.ports); got != tc.want {
			t.Errorf("PortsString(%v) = %q, want %q", tc.ports, got, tc.want)
		}
	}
}

// TestFeaturesListed: every feature has a row, and every row that is not
// enforced says what the kernel does instead.
func TestFeaturesListed(t *testing.T) {
	for _, f := range []Feature{L3L4, HTTP, HTTPEgress, HTTPOnFQDNPeers, KafkaOnFQDNPeers, HTTPHost, HTTPHostEgress, Kafka, DNS, DNSOtherProtocols, FQDN, FQDNWithoutDNS, DNSOnFQDNPeers, Tracing, AuditReports} {
		row, ok := Table[f]
		if !ok {
			t.Errorf("%s has no row", f)
			continue
		}
		if !row.Enforced && (row.Kernel == "" || row.Effect == "") {
			t.Errorf("%s is not enforced but the table does not say what happens: %+v", f, row)
		}
	}
	if len(Features()) != len(Table) {
		t.Errorf("Features() lists %d of %d", len(Features()), len(Table))
	}
}

// DNS rules are decided for UDP and TCP; on a port that also admits SCTP
// (ANY, the default), an SCTP packet is decided at L3/L4, and the table
// says so for that port only.
func TestDNSRulesOnSCTP(t *testing.T) {
	rs := &v1alpha1.RuleSet{Egress: []v1alpha1.EgressRule{{ToPorts: []v1alpha1.PortRule{{
		Ports: []v1alpha1.PortProtocol{port(53, v1alpha1.ProtocolUDP), port(5353, v1alpha1.ProtocolAny)},
		Rules: &v1alpha1.L7Rules{DNS: []v1alpha1.DNSRule{{MatchName: "example.com"}}}}}}}}
	got := Network(rs)
	want := Gap{DNSOtherProtocols, "spec.egress[0].toPorts[0].rules.dns", "egress DNS rules for SCTP packets on 5353/ANY"}
	if len(got) != 1 || got[0] != want {
		t.Errorf("gaps %v, want only %v", got, want)
	}
	if got := Network(ruleSet()); slices.ContainsFunc(got, func(g Gap) bool { return g.Feature == DNSOtherProtocols }) {
		t.Errorf("DNS rules on 53/UDP and 53/TCP: %v, want no SCTP gap", got)
	}
}

// TestHTTPSplit: ingress and egress HTTP rules are enforced (the
// server's and the client's side are decided in the kernel), those of a
// toFQDNs rule are a gap; Parts lists both sides, whatever the table
// says, for the agent's per-node report.
func TestHTTPSplit(t *testing.T) {
	if !Enforced(HTTP) || !Enforced(HTTPEgress) || Enforced(HTTPOnFQDNPeers) {
		t.Fatalf("table: ingress HTTP %v, egress HTTP %v, toFQDNs HTTP %v; want true, true, false",
			Enforced(HTTP), Enforced(HTTPEgress), Enforced(HTTPOnFQDNPeers))
	}
	rs := ruleSet()
	for _, g := range Network(rs) {
		if g.Feature == HTTP || g.Feature == HTTPEgress {
			t.Errorf("HTTP rules reported as a gap: %v", g)
		}
	}
	if got, want := Parts(rs, HTTP), []Gap{{HTTP, "spec.ingress[1].toPorts[0].rules.http", "ingress HTTP rules on 8080/TCP"}}; !slices.Equal(got, want) {
		t.Errorf("Parts(HTTP) = %v, want %v", got, want)
	}
	if got, want := Parts(rs, HTTPEgress), []Gap{{HTTPEgress, "spec.egress[2].toPorts[0].rules.http", "egress HTTP rules on 443/TCP"},
		{HTTPEgress, "spec.egress[4].toPorts[0].rules.http", "egress HTTP rules on 443/TCP"}}; !slices.Equal(got, want) {
		t.Errorf("Parts(HTTPEgress) = %v, want %v", got, want)
	}
	if got := Parts(&v1alpha1.RuleSet{Ingress: rs.Ingress[:1]}, HTTP); len(got) != 0 {
		t.Errorf("an L3/L4 rule has HTTP parts: %v", got)
	}
}

// TestHostHTTP: a host policy's ingress and egress HTTP rules are gaps
// (requests to and from the host are not parsed), once per rule; its
// other gaps are Network's.
func TestHostHTTP(t *testing.T) {
	rs := ruleSet()
	got := Host(rs)
	want := []Gap{
		{HTTPHost, "spec.ingress[1].toPorts[0].rules.http", "ingress HTTP rules on 8080/TCP"},
		{KafkaHost, "spec.ingress[1].toPorts[1].rules.kafka", "ingress Kafka rules on 9092/TCP"},
		{HTTPHostEgress, "spec.egress[2].toPorts[0].rules.http", "egress HTTP rules on 443/TCP"},
		{DNSOnFQDNPeers, "spec.egress[3].toPorts[0].rules.dns", "egress DNS rules on 53/UDP of a toFQDNs rule"},
		{HTTPHostEgress, "spec.egress[4].toPorts[0].rules.http", "egress HTTP rules on 443/TCP"},
		{KafkaHost, "spec.egress[4].toPorts[1].rules.kafka", "egress Kafka rules on 9093/TCP"},
	}
	if !slices.Equal(got, want) {
		t.Errorf("Host() = %v, want %v", got, want)
	}
	if s := got[0].String(); !strings.Contains(s, "passes every request to the host") {
		t.Errorf("String() = %q", s)
	}
}

// TestDNSOnFQDNPeers: DNS rules of a rule whose peers are toFQDNs are a
// gap at those rules (the kernel matches DNS rules of the peer's and the
// any-peer entries only), and only there: DNS rules to an endpoint peer
// are enforced.
func TestDNSOnFQDNPeers(t *testing.T) {
	rs := ruleSet()
	got := Parts(rs, DNSOnFQDNPeers)
	want := []Gap{{DNSOnFQDNPeers, "spec.egress[3].toPorts[0].rules.dns", "egress DNS rules on 53/UDP of a toFQDNs rule"}}
	if !slices.Equal(got, want) {
		t.Errorf("Parts(DNSOnFQDNPeers) = %v, want %v", got, want)
	}
	if Enforced(DNSOnFQDNPeers) || Table[DNSOnFQDNPeers].Effect != Passes {
		t.Errorf("table row %+v, want not enforced, effect %s", Table[DNSOnFQDNPeers], Passes)
	}
	if !slices.Contains(Host(rs), want[0]) {
		t.Errorf("Host() lacks %v", want[0])
	}
	state, _, msg := State(Network(rs))
	if state != v1alpha1.ObjectPartial || !strings.Contains(msg, want[0].What+" are not enforced: the kernel "+Table[DNSOnFQDNPeers].Kernel) {
		t.Errorf("State() = %s, %q", state, msg)
	}
}

// TestKafkaSplit: ingress and egress Kafka rules are enforced (the
// broker's side and the client's are decided in the kernel); a topic on
// a key whose topics the kernel does not read, and a host policy's Kafka
// rules (ingress and egress) are gaps, once per rule.
func TestKafkaSplit(t *testing.T) {
	if !Enforced(Kafka) || !Enforced(KafkaEgress) || Enforced(KafkaTopicUnread) || Enforced(KafkaHost) {
		t.Fatalf("table: Kafka %v, egress %v, topic unread %v, host %v; want true, true, false, false",
			Enforced(Kafka), Enforced(KafkaEgress), Enforced(KafkaTopicUnread), Enforced(KafkaHost))
	}
	kafka := func(rs ...v1alpha1.KafkaRule) []v1alpha1.PortRule {
		return []v1alpha1.PortRule{{Ports: []v1alpha1.PortProtocol{port(9092, v1alpha1.ProtocolTCP)}, Rules: &v1alpha1.L7Rules{Kafka: rs}}}
	}
	rs := &v1alpha1.RuleSet{
		Ingress: []v1alpha1.IngressRule{
			{ToPorts: kafka(v1alpha1.KafkaRule{Role: v1alpha1.KafkaRoleProduce, Topic: "orders"})},
			{ToPorts: kafka(v1alpha1.KafkaRule{APIKey: "fetch", Topic: "orders"}, v1alpha1.KafkaRule{APIKey: "createtopics", Topic: "orders"})},
		},
		Egress: []v1alpha1.EgressRule{{ToPorts: kafka(v1alpha1.KafkaRule{Topic: "orders"}, v1alpha1.KafkaRule{APIKey: "deletetopics", Topic: "orders"})}},
	}
	want := []Gap{
		{KafkaTopicUnread, "spec.ingress[1].toPorts[0].rules.kafka[1]", "ingress Kafka rules for createtopics requests of topic orders on 9092/TCP"},
		{KafkaTopicUnread, "spec.egress[0].toPorts[0].rules.kafka[1]", "egress Kafka rules for deletetopics requests of topic orders on 9092/TCP"},
	}
	if got := Network(rs); !slices.Equal(got, want) {
		t.Errorf("Network() = %v\nwant %v", got, want)
	}
	wantHost := []Gap{
		{KafkaHost, "spec.ingress[0].toPorts[0].rules.kafka", "ingress Kafka rules on 9092/TCP"},
		{KafkaHost, "spec.ingress[1].toPorts[0].rules.kafka", "ingress Kafka rules on 9092/TCP"},
		{KafkaHost, "spec.egress[0].toPorts[0].rules.kafka", "egress Kafka rules on 9092/TCP"},
	}
	if got := Host(rs); !slices.Equal(got, wantHost) {
		t.Errorf("Host() = %v\nwant %v", got, wantHost)
	}
}
