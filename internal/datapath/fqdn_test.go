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

package datapath

import (
	"context"
	"encoding/binary"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cilium/ebpf"

	"github.com/palisade-dev/palisade/api/v1alpha1"
	"github.com/palisade-dev/palisade/bpf"
	"github.com/palisade-dev/palisade/internal/engine"
)

// Selector identities and rules of fqdnState.
const (
	selAPI     = engine.MinLocalIdentity + 1 // matchName api.example.com
	selCDN     = engine.MinLocalIdentity + 2 // matchPattern *.cdn.example.com
	selLong    = engine.MinLocalIdentity + 3 // matchName longName
	selOther   = engine.MinLocalIdentity + 4 // matchPattern n*.example.net (the slots case)
	ruleFQDN   = engine.RuleID(600)
	ruleFQDNv6 = engine.RuleID(601)
)

// fqdnState: A (10.0.0.1, fd00::1) is default-deny on egress, may send
// DNS (UDP and TCP 53) to anyone for every name (a DNS rule "*", so its
// queries are parsed), and may connect to TCP 443 of the addresses learned
// for the four selectors (rule 600), and to TCP 8443 of the patterns' (rule
// 601: a second entry, to see the fold).
func fqdnState() *engine.MapState {
	s := dnsState()
	s.L7 = map[engine.L7ID]engine.L7List{77: {{Rule: ruleDNSNames, Rules: &v1alpha1.L7Rules{DNS: []v1alpha1.DNSRule{{MatchPattern: "*"}}}}}}
	for k, e := range s.Policy {
		e.Flags, e.AuditAllowRule = engine.FlagAllow, 0
		s.Policy[k] = e
	}
	s.FQDNSelectors = map[engine.Identity]engine.FQDN{
		selAPI:   {Name: "api.example.com"},
		selCDN:   {Pattern: "*.cdn.example.com"},
		selLong:  {Name: longName},
		selOther: {Pattern: "n*.example.net"},
	}
	for id := range s.FQDNSelectors {
		s.Policy[engine.PolicyKey{PolicyID: 256, Direction: engine.Egress, Identity: id, Proto: 6, Port: 443, PrefixLen: 24}] =
			engine.PolicyEntry{Flags: engine.FlagAllow, AllowRule: ruleFQDN}
	}
	s.Policy[engine.PolicyKey{PolicyID: 256, Direction: engine.Egress, Identity: selCDN, Proto: 6, Port: 8443, PrefixLen: 24}] =
		engine.PolicyEntry{Flags: engine.FlagAllow, AllowRule: ruleFQDNv6}
	return s
}

// dnsRR is an answer record: owner (wire form, pointers allowed), type, TTL, data.
type dnsRR struct {
	owner []byte
	typ   uint16
	ttl   uint32
	data  []byte
}

// ptrQ is a compression pointer to the question name (offset 12).
var ptrQ = []byte{0xc0, 12}

func rrA(owner []byte, ttl uint32, a string) dnsRR {
	ip := netip.MustParseAddr(a)
	if ip.Is4() {
		b := ip.As4()
		return dnsRR{owner, 1, ttl, b[:]}
	}
	b := ip.As16()
	return dnsRR{owner, 28, ttl, b[:]}
}

// dnsAnswer builds a response: id, flags, qdcount and ancount as given
// (which may differ from what is written), the question (raw wire bytes,
// type A class IN appended), the records, and extra bytes.
func dnsAnswer(id, flags, qdcount, ancount, arcount uint16, question []byte, rrs []dnsRR, extra []byte) []byte {
	m := make([]byte, 12)
	binary.BigEndian.PutUint16(m[0:], id)
	binary.BigEndian.PutUint16(m[2:], flags)
	binary.BigEndian.PutUint16(m[4:], qdcount)
	binary.BigEndian.PutUint16(m[6:], ancount)
	binary.BigEndian.PutUint16(m[10:], arcount)
	if question != nil {
		m = append(m, question...)
		m = append(m, 0, 1, 0, 1)
	}
	for _, r := range rrs {
		m = append(m, r.owner...)
		m = binary.BigEndian.AppendUint16(m, r.typ)
		m = binary.BigEndian.AppendUint16(m, 1)
		m = binary.BigEndian.AppendUint32(m, r.ttl)
		m = binary.BigEndian.AppendUint16(m, uint16(len(r.data)))
		m = append(m, r.data...)
	}
	return append(m, extra...)
}

// okAnswer is a NOERROR answer with id 0x1234 to one question.
func okAnswer(qname string, rrs ...dnsRR) []byte {
	return dnsAnswer(0x1234, 0x8180, 1, uint16(len(rrs)), 0, dnsWireName(qname), rrs, nil)
}

// dnsReply is the server's packet (src:53) to the client's port 40000.
func dnsReply(server, client netip.Addr, proto uint8, msg []byte) []byte {
	payload := msg
	if proto == 6 {
		payload = binary.BigEndian.AppendUint16(nil, uint16(len(msg)))
		payload = append(payload, msg...)
	}
	pkt := packet{src: server, dst: client, proto: proto, sport: 53, dport: 40000, tcpFlags: 0x18, payload: len(payload)}.build()
	copy(pkt[len(pkt)-len(payload):], payload)
	return pkt
}

// clearFQDN empties the learned table and the pending queries.
func clearFQDN(t testing.TB, d *Datapath) {
	t.Helper()
	for _, m := range []*ebpf.Map{d.objs.FqdnNames, d.objs.FqdnAddrs, d.objs.FqdnPending} {
		var keys [][]byte
		k := make([]byte, m.KeySize())
		v := make([]byte, m.ValueSize())
		it := m.Iterate()
		for it.Next(&k, &v) {
			keys = append(keys, slices.Clone(k))
		}
		for _, k := range keys {
			m.Delete(k)
		}
	}
}

func runProg(t testing.TB, d *Datapath, dir engine.Direction, pkt []byte) uint32 {
	t.Helper()
	ret, err := d.program(dir).Run(&ebpf.RunOptions{Data: pkt})
	if err != nil {
		t.Fatalf("run %s program: %v", dir, err)
	}
	return ret
}

func fqdnSYN(src, dst netip.Addr, port uint16) []byte {
	return packet{src: src, dst: dst, proto: 6, sport: 50000, dport: port, tcpFlags: 0x02}.build()
}

// table returns the learned table as name -> sorted addresses, and the capped names.
func learnedTable(t testing.TB, d *Datapath) (map[string][]string, []string) {
	t.Helper()
	tab, err := d.FQDNTable()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]string{}
	var capped []string
	for _, e := range tab {
		for _, a := range e.Addrs {
			out[e.Name] = append(out[e.Name], a.Addr.String())
		}
		if e.Capped {
			capped = append(capped, e.Name)
		}
	}
	return out, capped
}

// TestFQDNAnswerTable runs a query and its answer through the programs
// (the client's egress, then its ingress) for adversarial answers, and
// checks what the kernel learned, the counter that moved and the verdict
// of a first SYN to the answered addresses.
func TestFQDNAnswerTable(t *testing.T) {
	d := openTest(t, nil)
	if err := d.Apply(context.Background(), fqdnState()); err != nil {
		t.Fatalf("Apply: %v", err)
	}
	A, A6, server, server6 := addr("10.0.0.1"), addr("fd00::1"), addr("10.0.0.53"), addr("fd00::53")
	label63 := strings.Repeat("b", 63)
	cdn63 := label63 + ".cdn.example.com"

	type cnt func(c Counters) uint64
	cLearned := func(c Counters) uint64 { return c.FQDNLearned }
	cMalformed := func(c Counters) uint64 { return c.FQDNMalformed }
	cPointer := func(c Counters) uint64 { return c.FQDNPointer }
	cUnsolicited := func(c Counters) uint64 { return c.FQDNUnsolicited }
	cRcode := func(c Counters) uint64 { return c.FQDNRcode }
	cSplit := func(c Counters) uint64 { return c.FQDNSplit }
	cUntracked := func(c Counters) uint64 { return c.FQDNUntracked }
	cAnswers := func(c Counters) uint64 { return c.FQDNAnswers }

	// The CNAME chain: api.example.com CNAME edge.other.net; edge.other.net
	// (a pointer into the first record's data) CNAME e1.akamai.net;
	// e1.akamai.net A 192.0.2.10; and an unrelated A record.
	chain := func() []byte {
		q := dnsWireName("api.example.com")
		m := dnsAnswer(0x1234, 0x8180, 1, 4, 0, q, nil, nil)
		edgeOff := len(m) + 2 + 10 // the first record's data
		m = append(m, dnsAnswer(0, 0, 0, 0, 0, nil, []dnsRR{{ptrQ, 5, 300, dnsWireName("edge.other.net")}}, nil)[12:]...)
		akamaiOff := len(m) + 2 + 10
		m = append(m, dnsAnswer(0, 0, 0, 0, 0, nil, []dnsRR{{[]byte{0xc0, byte(edgeOff)}, 5, 300, dnsWireName("e1.akamai.net")}}, nil)[12:]...)
		m = append(m, dnsAnswer(0, 0, 0, 0, 0, nil, []dnsRR{rrA([]byte{0xc0, byte(akamaiOff)}, 300, "192.0.2.10")}, nil)[12:]...)
		m = append(m, dnsAnswer(0, 0, 0, 0, 0, nil, []dnsRR{rrA(dnsWireName("unrelated.org"), 300, "192.0.2.66")}, nil)[12:]...)
		return m
	}()

	for _, c := range []struct {
		name    string
		client  netip.Addr
		proto   uint8
		query   []byte // the query sent first (nil: dnsQuery(qname))
		qname   string
		answer  []byte
		counter cnt
		delta   uint64
		learned map[string][]string
		allow   []string // SYNs to 443 that pass
		deny    []string // SYNs to 443 that are dropped
	}{
		{name: "A record", qname: "api.example.com", answer: okAnswer("api.example.com", rrA(ptrQ, 300, "192.0.2.1")),
			counter: cLearned, delta: 1, learned: map[string][]string{"api.example.com": {"192.0.2.1"}},
			allow: []string{"192.0.2.1"}, deny: []string{"192.0.2.2"}},
		{name: "owner written out, case folded", qname: "API.Example.com", answer: okAnswer("API.Example.com", rrA(dnsWireName("api.EXAMPLE.com"), 300, "192.0.2.1")),
			counter: cLearned, delta: 1, learned: map[string][]string{"api.example.com": {"192.0.2.1"}}, allow: []string{"192.0.2.1"}},
		{name: "AAAA over IPv6", client: A6, qname: "api.example.com", answer: okAnswer("api.example.com", rrA(ptrQ, 300, "2001:db8::1")),
			counter: cLearned, delta: 1, learned: map[string][]string{"api.example.com": {"2001:db8::1"}},
			allow: []string{"2001:db8::1"}, deny: []string{"2001:db8::2"}},
		{name: "several records", qname: "x.cdn.example.com", answer: okAnswer("x.cdn.example.com", rrA(ptrQ, 300, "192.0.2.1"), rrA(ptrQ, 300, "192.0.2.2"), rrA(ptrQ, 300, "192.0.2.3")),
			counter: cLearned, delta: 3, learned: map[string][]string{"x.cdn.example.com": {"192.0.2.1", "192.0.2.2", "192.0.2.3"}},
			allow: []string{"192.0.2.1", "192.0.2.2", "192.0.2.3"}},
		{name: "CNAME chain followed, unrelated record ignored", qname: "api.example.com", answer: chain,
			counter: cLearned, delta: 1, learned: map[string][]string{"api.example.com": {"192.0.2.10"}},
			allow: []string{"192.0.2.10"}, deny: []string{"192.0.2.66"}},
		{name: "EDNS0", qname: "api.example.com", answer: dnsAnswer(0x1234, 0x8180, 1, 1, 1, dnsWireName("api.example.com"), []dnsRR{rrA(ptrQ, 300, "192.0.2.1")}, ednsOPT),
			counter: cLearned, delta: 1, learned: map[string][]string{"api.example.com": {"192.0.2.1"}}, allow: []string{"192.0.2.1"}},
		{name: "TCP", proto: 6, qname: "api.example.com", answer: okAnswer("api.example.com", rrA(ptrQ, 300, "192.0.2.1")),
			counter: cLearned, delta: 1, learned: map[string][]string{"api.example.com": {"192.0.2.1"}}, allow: []string{"192.0.2.1"}},
		{name: "label of 63", qname: cdn63, answer: okAnswer(cdn63, rrA(ptrQ, 300, "192.0.2.1")),
			counter: cLearned, delta: 1, learned: map[string][]string{cdn63: {"192.0.2.1"}}, allow: []string{"192.0.2.1"}},
		{name: "name of 253", qname: longName, answer: okAnswer(longName, rrA(ptrQ, 300, "192.0.2.1")),
			counter: cLearned, delta: 1, learned: map[string][]string{longName: {"192.0.2.1"}}, allow: []string{"192.0.2.1"}},
		{name: "label of 64 in an owner", qname: "api.example.com",
			answer:  okAnswer("api.example.com", rrA(ptrQ, 300, "192.0.2.1"), rrA(append([]byte{64}, append([]byte(strings.Repeat("c", 64)), 0)...), 300, "192.0.2.2")),
			counter: cMalformed, delta: 1, deny: []string{"192.0.2.1"}},
		{name: "owner of 255 (labels before a pointer to a 253-character name)", qname: longName,
			answer:  okAnswer(longName, rrA(ptrQ, 300, "192.0.2.1"), rrA([]byte{1, 'c', 0xc0, 12}, 300, "192.0.2.2")),
			counter: cMalformed, delta: 1, deny: []string{"192.0.2.1"}},
		// The second record's owner is a pointer to itself.
		{name: "pointer loop", qname: "api.example.com",
			answer:  okAnswer("api.example.com", rrA(ptrQ, 300, "192.0.2.1"), rrA([]byte{0xc0, 12 + 17 + 4 + 16}, 300, "192.0.2.2")),
			counter: cPointer, delta: 1, deny: []string{"192.0.2.1"}},
		{name: "pointer forward", qname: "api.example.com",
			answer:  okAnswer("api.example.com", rrA([]byte{0xc0, 200}, 300, "192.0.2.1")),
			counter: cPointer, delta: 1, deny: []string{"192.0.2.1"}},
		{name: "0 questions", qname: "api.example.com", answer: dnsAnswer(0x1234, 0x8180, 0, 1, 0, nil, []dnsRR{rrA(dnsWireName("api.example.com"), 300, "192.0.2.1")}, nil),
			counter: cMalformed, delta: 1, deny: []string{"192.0.2.1"}},
		{name: "100 questions", qname: "api.example.com", answer: dnsAnswer(0x1234, 0x8180, 100, 1, 0, dnsWireName("api.example.com"), []dnsRR{rrA(ptrQ, 300, "192.0.2.1")}, nil),
			counter: cMalformed, delta: 1, deny: []string{"192.0.2.1"}},
		{name: "truncated in a record", qname: "api.example.com", answer: okAnswer("api.example.com", rrA(ptrQ, 300, "192.0.2.1"), rrA(ptrQ, 300, "192.0.2.2"))[:12+17+4+16+8],
			counter: cMalformed, delta: 1, deny: []string{"192.0.2.1"}},
		{name: "truncated in the question", qname: "api.example.com", answer: okAnswer("api.example.com", rrA(ptrQ, 300, "192.0.2.1"))[:20],
			counter: cMalformed, delta: 1, deny: []string{"192.0.2.1"}},
		{name: "answer section longer than the packet", qname: "api.example.com",
			answer:  dnsAnswer(0x1234, 0x8180, 1, 3, 0, dnsWireName("api.example.com"), []dnsRR{rrA(ptrQ, 300, "192.0.2.1")}, nil),
			counter: cMalformed, delta: 1, deny: []string{"192.0.2.1"}},
		{name: "record data longer than the packet", qname: "api.example.com",
			answer: func() []byte {
				m := okAnswer("api.example.com", rrA(ptrQ, 300, "192.0.2.1"))
				binary.BigEndian.PutUint16(m[len(m)-6:], 400)
				return m
			}(),
			counter: cMalformed, delta: 1, deny: []string{"192.0.2.1"}},
		{name: "mismatched id", qname: "api.example.com", answer: dnsAnswer(0x4321, 0x8180, 1, 1, 0, dnsWireName("api.example.com"), []dnsRR{rrA(ptrQ, 300, "192.0.2.1")}, nil),
			counter: cUnsolicited, delta: 1, deny: []string{"192.0.2.1"}},
		{name: "another question", qname: "api.example.com", answer: okAnswer("x.cdn.example.com", rrA(ptrQ, 300, "192.0.2.1")),
			counter: cUnsolicited, delta: 1, deny: []string{"192.0.2.1"}},
		{name: "a name no selector selects is tracked and teaches nothing", qname: "www.example.org", answer: okAnswer("www.example.org", rrA(ptrQ, 300, "192.0.2.1")),
			counter: cAnswers, delta: 1, deny: []string{"192.0.2.1"}},
		{name: "two questions are not tracked", query: dnsQuery("api.example.com", "x.cdn.example.com"), qname: "api.example.com",
			answer: okAnswer("api.example.com", rrA(ptrQ, 300, "192.0.2.1")), counter: cUntracked, delta: 1, deny: []string{"192.0.2.1"}},
		{name: "NXDOMAIN", qname: "api.example.com", answer: dnsAnswer(0x1234, 0x8183, 1, 1, 0, dnsWireName("api.example.com"), []dnsRR{rrA(ptrQ, 300, "192.0.2.1")}, nil),
			counter: cRcode, delta: 1, deny: []string{"192.0.2.1"}},
		{name: "TCP with a bad length prefix", proto: 6, qname: "api.example.com", answer: okAnswer("api.example.com", rrA(ptrQ, 300, "192.0.2.1")),
			counter: cSplit, delta: 1, deny: []string{"192.0.2.1"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			clearTracking(t, d)
			clearFQDN(t, d)
			client, srv := A, server
			if c.client.IsValid() {
				client, srv = c.client, server6
			}
			proto := c.proto
			if proto == 0 {
				proto = 17
			}
			q := c.query
			if q == nil {
				q = dnsQuery(c.qname)
			}
			before, err := d.Counters()
			if err != nil {
				t.Fatal(err)
			}
			if ret := runProg(t, d, engine.Egress, dnsPacket(client, srv, proto, q)); ret != actPass {
				t.Fatalf("query: return %d, want pass", ret)
			}
			reply := dnsReply(srv, client, proto, c.answer)
			if c.name == "TCP with a bad length prefix" {
				binary.BigEndian.PutUint16(reply[len(reply)-len(c.answer)-2:], uint16(len(c.answer)+9))
			}
			// The answer is delivered, whatever it teaches.
			if ret := runProg(t, d, engine.Ingress, reply); ret != actPass {
				t.Fatalf("answer: return %d, want pass", ret)
			}
			after, err := d.Counters()
			if err != nil {
				t.Fatal(err)
			}
			if got := c.counter(after) - c.counter(before); got != c.delta {
				t.Errorf("counter moved by %d, want %d (before %+v after %+v)", got, c.delta, before, after)
			}
			got, _ := learnedTable(t, d)
			want := c.learned
			if want == nil {
				want = map[string][]string{}
			}
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Errorf("learned %v, want %v", got, want)
			}
			for _, a := range c.allow {
				if ret := runProg(t, d, engine.Egress, fqdnSYN(client, addr(a), 443)); ret != actPass {
					t.Errorf("SYN to %s:443: return %d, want pass", a, ret)
				}
			}
			for _, a := range c.deny {
				if ret := runProg(t, d, engine.Egress, fqdnSYN(client, addr(a), 443)); ret != actShot {
					t.Errorf("SYN to %s:443: return %d, want drop", a, ret)
				}
			}
		})
	}
}

// learn runs a query for qname and its answer through the programs.
func learn(t testing.TB, d *Datapath, qname string, rrs ...dnsRR) {
	t.Helper()
	A, server := addr("10.0.0.1"), addr("10.0.0.53")
	if ret := runProg(t, d, engine.Egress, dnsPacket(A, server, 17, dnsQuery(qname))); ret != actPass {
		t.Fatalf("query %s: return %d", qname, ret)
	}
	if ret := runProg(t, d, engine.Ingress, dnsReply(server, A, 17, okAnswer(qname, rrs...))); ret != actPass {
		t.Fatalf("answer %s: return %d", qname, ret)
	}
}

// TestFQDNBounds: the cap of addresses per name, the fifth name on one
// address, the TTL and min TTL, expiry, the fold of several selector
// entries, read-back, and the names' identities after a generation switch.
func TestFQDNBounds(t *testing.T) {
	d := openTest(t, nil)
	if err := d.Apply(context.Background(), fqdnState()); err != nil {
		t.Fatalf("Apply: %v", err)
	}
	A := addr("10.0.0.1")
	ctx := context.Background()

	t.Run("cap", func(t *testing.T) {
		clearFQDN(t, d)
		if err := d.SetFQDNSettings(FQDNSettings{MaxAddrsPerName: 2}); err != nil {
			t.Fatal(err)
		}
		defer d.SetFQDNSettings(FQDNSettings{})
		before, _ := d.Counters()
		learn(t, d, "x.cdn.example.com", rrA(ptrQ, 300, "192.0.2.1"), rrA(ptrQ, 300, "192.0.2.2"), rrA(ptrQ, 300, "192.0.2.3"))
		after, _ := d.Counters()
		got, capped := learnedTable(t, d)
		if fmt.Sprint(got) != fmt.Sprint(map[string][]string{"x.cdn.example.com": {"192.0.2.1", "192.0.2.2"}}) {
			t.Errorf("learned %v", got)
		}
		if after.FQDNCap-before.FQDNCap != 1 || !slices.Equal(capped, []string{"x.cdn.example.com"}) {
			t.Errorf("cap counter +%d, capped %v; want +1 and the name", after.FQDNCap-before.FQDNCap, capped)
		}
		// A known address is refreshed at the cap.
		learn(t, d, "x.cdn.example.com", rrA(ptrQ, 300, "192.0.2.1"))
		if c, _ := d.Counters(); c.FQDNCap != after.FQDNCap {
			t.Errorf("refreshing a known address counted against the cap")
		}
	})

	t.Run("fifth name on one address", func(t *testing.T) {
		clearFQDN(t, d)
		before, _ := d.Counters()
		for i := 1; i <= 5; i++ {
			learn(t, d, fmt.Sprintf("n%d.example.net", i), rrA(ptrQ, 300, "192.0.2.7"))
		}
		after, _ := d.Counters()
		got, capped := learnedTable(t, d)
		if len(got) != 4 || got["n5.example.net"] != nil {
			t.Errorf("learned %v, want n1-n4", got)
		}
		if after.FQDNSlots-before.FQDNSlots != 1 || !slices.Equal(capped, []string{"n5.example.net"}) {
			t.Errorf("slots counter +%d, capped %v", after.FQDNSlots-before.FQDNSlots, capped)
		}
		if ret := runProg(t, d, engine.Egress, fqdnSYN(A, addr("192.0.2.7"), 443)); ret != actPass {
			t.Errorf("SYN: %d, want pass", ret)
		}
	})

	t.Run("fold of several selector entries", func(t *testing.T) {
		clearFQDN(t, d)
		clearTracking(t, d)
		// 192.0.2.8 is an address of api.example.com (443 only) and of
		// y.cdn.example.com (443 and 8443): both names' entries count.
		learn(t, d, "api.example.com", rrA(ptrQ, 300, "192.0.2.8"))
		if ret := runProg(t, d, engine.Egress, fqdnSYN(A, addr("192.0.2.8"), 8443)); ret != actShot {
			t.Errorf("8443 before the CDN name: %d, want drop", ret)
		}
		learn(t, d, "y.cdn.example.com", rrA(ptrQ, 300, "192.0.2.8"))
		clearTracking(t, d)
		for _, port := range []uint16{443, 8443} {
			if ret := runProg(t, d, engine.Egress, fqdnSYN(A, addr("192.0.2.8"), port)); ret != actPass {
				t.Errorf("SYN to %d: %d, want pass", port, ret)
			}
		}
		// The kernel's answer is the engine's on the state read back.
		s, _, err := d.Read()
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(s.FQDNNames["y.cdn.example.com"], []netip.Addr{addr("192.0.2.8")}) || len(s.FQDNSelectors) != 4 {
			t.Errorf("read back names %v selectors %v", s.FQDNNames, s.FQDNSelectors)
		}
		for _, port := range []uint16{443, 8443, 80} {
			v, _, _ := s.LookupSide(engine.Egress, A, addr("192.0.2.8"), 6, port, nil)
			clearTracking(t, d)
			ret := runProg(t, d, engine.Egress, fqdnSYN(A, addr("192.0.2.8"), port))
			if (v == engine.VerdictDeny) != (ret == actShot) {
				t.Errorf("port %d: engine %v, kernel %d", port, v, ret)
			}
		}
	})

	t.Run("TTL, min TTL and expiry", func(t *testing.T) {
		clearFQDN(t, d)
		clearTracking(t, d)
		if err := d.SetFQDNSettings(FQDNSettings{MinTTL: time.Second}); err != nil {
			t.Fatal(err)
		}
		defer d.SetFQDNSettings(FQDNSettings{})
		start := time.Now()
		learn(t, d, "api.example.com", rrA(ptrQ, 0, "192.0.2.20"), rrA(ptrQ, 3600, "192.0.2.21"))
		tab, err := d.FQDNTable()
		if err != nil || len(tab) != 1 || len(tab[0].Addrs) != 2 {
			t.Fatalf("table %+v (%v)", tab, err)
		}
		for _, a := range tab[0].Addrs {
			ttl := time.Second
			if a.Addr == addr("192.0.2.21") {
				ttl = time.Hour
			}
			if lo, hi := start.Add(ttl-100*time.Millisecond), time.Now().Add(ttl+100*time.Millisecond); a.Expires.Before(lo) || a.Expires.After(hi) {
				t.Errorf("%v expires at %v, want about %v after the answer", a.Addr, a.Expires, ttl)
			}
		}
		if ret := runProg(t, d, engine.Egress, fqdnSYN(A, addr("192.0.2.20"), 443)); ret != actPass {
			t.Fatalf("SYN before expiry: %d", ret)
		}
		// Poll until the kernel drops a new connection to it.
		clearTracking(t, d)
		deadline := time.Now().Add(5 * time.Second)
		for runProg(t, d, engine.Egress, fqdnSYN(A, addr("192.0.2.20"), 443)) != actShot {
			if time.Now().After(deadline) {
				t.Fatalf("192.0.2.20 still allowed 5 s after a 1 s TTL")
			}
			time.Sleep(20 * time.Millisecond)
			clearTracking(t, d) // the allowed SYN's entry would pass the next
		}
		if runProg(t, d, engine.Egress, fqdnSYN(A, addr("192.0.2.21"), 443)) != actPass {
			t.Errorf("the 1 h address expired too")
		}
		n, err := d.ExpireFQDN()
		if err != nil || n != 1 {
			t.Errorf("ExpireFQDN removed %d (%v), want 1", n, err)
		}
		var v bpf.PalisadeFqdnName
		if err := d.objs.FqdnNames.Lookup(engine.FQDNNameHash("api.example.com"), &v); err != nil || v.Addrs != 1 {
			t.Errorf("name after expiry: %+v (%v), want 1 address", v.Addrs, err)
		}
	})

	t.Run("identities rewritten after a switch, drift repaired", func(t *testing.T) {
		clearFQDN(t, d)
		learn(t, d, "api.example.com", rrA(ptrQ, 300, "192.0.2.30"))
		s := fqdnState()
		// The selector of api.example.com gets another identity.
		delete(s.FQDNSelectors, selAPI)
		newID := engine.MinLocalIdentity + 9
		s.FQDNSelectors[newID] = engine.FQDN{Name: "api.example.com"}
		for k, e := range s.Policy {
			if k.Identity == selAPI {
				delete(s.Policy, k)
				k.Identity = newID
				s.Policy[k] = e
			}
		}
		if err := d.Apply(ctx, s); err != nil {
			t.Fatal(err)
		}
		var v bpf.PalisadeFqdnName
		if err := d.objs.FqdnNames.Lookup(engine.FQDNNameHash("api.example.com"), &v); err != nil || v.Nids != 1 || v.Ids[0] != uint32(newID) {
			t.Fatalf("identities after the switch: %v %d (%v)", v.Ids, v.Nids, err)
		}
		clearTracking(t, d)
		if ret := runProg(t, d, engine.Egress, fqdnSYN(A, addr("192.0.2.30"), 443)); ret != actPass {
			t.Errorf("SYN after the switch: %d", ret)
		}
		if drifts, _, err := d.Compare(s); err != nil || len(drifts) != 0 {
			t.Fatalf("Compare: %v (%v)", drifts, err)
		}
		// Tamper with the name's identities: drift, and Apply repairs it.
		v.Ids[0] = uint32(selOther)
		if err := d.objs.FqdnNames.Update(engine.FQDNNameHash("api.example.com"), v, ebpf.UpdateExist); err != nil {
			t.Fatal(err)
		}
		drifts, _, err := d.Compare(s)
		if err != nil || len(drifts) != 1 || drifts[0].Map != "fqdn-names" {
			t.Fatalf("Compare after tampering: %v (%v)", drifts, err)
		}
		if err := d.Apply(ctx, s); err != nil {
			t.Fatal(err)
		}
		if drifts, _, err := d.Compare(s); err != nil || len(drifts) != 0 {
			t.Fatalf("Compare after repair: %v (%v)", drifts, err)
		}
		// A different automaton is drift of map fqdn.
		s2 := fqdnState()
		if drifts, _, _ := d.Compare(s2); len(drifts) == 0 {
			t.Errorf("no drift against other selectors")
		}
	})

	t.Run("a generation without toFQDNs tables (an older agent's)", func(t *testing.T) {
		s := fqdnState()
		if err := d.Apply(ctx, s); err != nil {
			t.Fatal(err)
		}
		slot := d.slot
		for _, m := range []*ebpf.Map{d.objs.GenFqdnNext, d.objs.GenFqdnAccept, d.objs.GenFqdnSelectors} {
			if err := m.Delete(slot); err != nil {
				t.Fatal(err)
			}
		}
		// Packets still pass (learned addresses decide nothing meanwhile).
		clearTracking(t, d)
		if ret := runProg(t, d, engine.Egress, dnsPacket(A, addr("10.0.0.53"), 17, dnsQuery("api.example.com"))); ret != actPass {
			t.Errorf("query: %d", ret)
		}
		drifts, _, err := d.Compare(s)
		if err != nil {
			t.Fatalf("Compare: %v", err)
		}
		maps := map[string]bool{}
		for _, dr := range drifts {
			maps[dr.Map] = true
		}
		if !maps["fqdn"] || !maps["fqdn-selectors"] {
			t.Errorf("drifts %v, want the automaton and the selectors", drifts)
		}
		if err := d.Apply(ctx, s); err != nil {
			t.Fatal(err)
		}
		if drifts, _, err := d.Compare(s); err != nil || len(drifts) != 0 {
			t.Errorf("after Apply: %v (%v)", drifts, err)
		}
	})

	t.Run("settings are checked", func(t *testing.T) {
		for _, s := range []FQDNSettings{{MinTTL: 500 * time.Millisecond}, {MinTTL: -time.Second}, {MaxAddrsPerName: -1}, {MaxAddrsPerName: 1 << 20}} {
			if err := d.SetFQDNSettings(s); err == nil {
				t.Errorf("SetFQDNSettings(%+v) accepted", s)
			}
		}
	})
}

// seedFQDN replaces the kernel's learned table with s.FQDNNames, as if
// the node had seen those answers (expiring in an hour), so that the
// kernel decides toFQDNs peers as engine.MapState.LookupSide does.
func seedFQDN(t testing.TB, d *Datapath, s *engine.MapState) {
	t.Helper()
	clearFQDN(t, d)
	_, now, err := fqdnClock()
	if err != nil {
		t.Fatal(err)
	}
	addrs := map[netip.Addr]bpf.PalisadeFqdnAddr{}
	for name, as := range s.FQDNNames {
		ids, err := fqdnIDs(s.FQDNSelectors, name)
		if err != nil {
			t.Fatalf("seed toFQDNs: %v", err)
		}
		if len(ids) == 0 {
			continue // no selector selects it: the kernel would not learn it
		}
		var v bpf.PalisadeFqdnName
		setNameIDs(&v, ids)
		v.Len = uint16(copy(v.Name[:], name))
		h := engine.FQDNNameHash(name)
		as = slices.Clone(as)
		slices.SortFunc(as, netip.Addr.Compare)
		for _, a := range slices.Compact(as) {
			av := addrs[a]
			i := slices.IndexFunc(av.Slots[:], func(s bpf.PalisadeFqdnSlot) bool { return s.Name == 0 })
			if i < 0 {
				t.Fatalf("seed toFQDNs: %v is an address of more than %d selected names", a, fqdnSlots)
			}
			av.Slots[i] = bpf.PalisadeFqdnSlot{Name: h, Expires: now + uint64(time.Hour)}
			addrs[a] = av
			v.Addrs++
		}
		if err := d.objs.FqdnNames.Put(h, v); err != nil {
			t.Fatal(err)
		}
	}
	for a, av := range addrs {
		if err := d.objs.FqdnAddrs.Put(addrKey(a), av); err != nil {
			t.Fatal(err)
		}
	}
}

// BenchmarkFQDNLearn runs a query and its answer (one A record) through
// the programs per op, for a name a selector selects (tracked and
// learned) and one none selects (neither); the difference is what
// toFQDNs adds to a lookup. Each op is two BPF_PROG_TEST_RUN calls.
func BenchmarkFQDNLearn(b *testing.B) {
	d := openTest(b, nil)
	if err := d.Apply(context.Background(), fqdnState()); err != nil {
		b.Fatal(err)
	}
	A, server := addr("10.0.0.1"), addr("10.0.0.53")
	for _, name := range []string{"x.cdn.example.com", "www.example.org"} {
		q := dnsPacket(A, server, 17, dnsQuery(name))
		a := dnsReply(server, A, 17, okAnswer(name, rrA(ptrQ, 300, "192.0.2.1")))
		b.Run(name, func(b *testing.B) {
			qp, ap := d.program(engine.Egress), d.program(engine.Ingress)
			for b.Loop() {
				if _, err := qp.Run(&ebpf.RunOptions{Data: q}); err != nil {
					b.Fatal(err)
				}
				if _, err := ap.Run(&ebpf.RunOptions{Data: a}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	c, _ := d.Counters()
	b.Logf("%d tracked, %d learned", c.FQDNTracked, c.FQDNLearned)
}

// BenchmarkFQDNDecide measures the egress decision of a first packet (a
// SYN dropped on a port no entry allows, so that no conntrack entry
// short-cuts the next) to an address with no learned name and to one
// with two learned names (two selector identities probed).
func BenchmarkFQDNDecide(b *testing.B) {
	d := openTest(b, nil)
	if err := d.Apply(context.Background(), fqdnState()); err != nil {
		b.Fatal(err)
	}
	learn(b, d, "api.example.com", rrA(ptrQ, 300, "192.0.2.8"))
	learn(b, d, "y.cdn.example.com", rrA(ptrQ, 300, "192.0.2.8"))
	A := addr("10.0.0.1")
	for _, c := range []struct{ name, dst string }{{"unlearned", "192.0.2.9"}, {"two names", "192.0.2.8"}} {
		pkt := fqdnSYN(A, addr(c.dst), 80)
		b.Run(c.name, func(b *testing.B) {
			// Repeat: the kernel times its own loop, without the syscall.
			ret, dur, err := d.program(engine.Egress).Benchmark(pkt, b.N, nil)
			if err != nil || ret != actShot {
				b.Fatalf("return %d (%v)", ret, err)
			}
			b.ReportMetric(float64(dur.Nanoseconds()), "ns/packet")
		})
	}
}
