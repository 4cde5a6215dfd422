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
	"flag"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/cilium/ebpf"

	"github.com/palisade-dev/palisade/api/v1alpha1"
	"github.com/palisade-dev/palisade/internal/engine"
)

const actRedirect = 7 // TC_ACT_REDIRECT: a crafted answer sent back

// dnsQuestion is one question: a wire name (raw: as given, else encoded
// from the dotted name) and type A, class IN.
type dnsQuestion struct {
	name string
	raw  []byte
}

func dnsWireName(name string) []byte {
	var b []byte
	name = strings.TrimSuffix(name, ".")
	if name != "" {
		for _, l := range strings.Split(name, ".") {
			b = append(b, byte(len(l)))
			b = append(b, l...)
		}
	}
	return append(b, 0)
}

// dnsMsg builds a DNS message: header with id 0x1234, flags (RD), qdcount
// (as given, which may differ from the questions written), arcount, then
// the questions and extra bytes.
func dnsMsg(flags uint16, qdcount, arcount uint16, qs []dnsQuestion, extra []byte) []byte {
	m := make([]byte, 12)
	binary.BigEndian.PutUint16(m[0:], 0x1234)
	binary.BigEndian.PutUint16(m[2:], flags)
	binary.BigEndian.PutUint16(m[4:], qdcount)
	binary.BigEndian.PutUint16(m[10:], arcount)
	for _, q := range qs {
		if q.raw != nil {
			m = append(m, q.raw...)
		} else {
			m = append(m, dnsWireName(q.name)...)
		}
		m = append(m, 0, 1, 0, 1)
	}
	return append(m, extra...)
}

func dnsQuery(names ...string) []byte {
	var qs []dnsQuestion
	for _, n := range names {
		qs = append(qs, dnsQuestion{name: n})
	}
	return dnsMsg(0x0100, uint16(len(qs)), 0, qs, nil)
}

// ednsOPT is an OPT record (EDNS0, 1232-byte payload) for the additional section.
var ednsOPT = []byte{0, 0, 41, 0x04, 0xd0, 0, 0, 0, 0, 0, 0}

// dnsPacket is a UDP (or TCP, with the 2-byte length prefix) packet from
// src:40000 to dst:53 that carries msg.
func dnsPacket(src, dst netip.Addr, proto uint8, msg []byte) []byte {
	payload := msg
	if proto == 6 {
		payload = binary.BigEndian.AppendUint16(nil, uint16(len(msg)))
		payload = append(payload, msg...)
	}
	pkt := packet{src: src, dst: dst, proto: proto, sport: 40000, dport: 53, tcpFlags: 0x18, payload: len(payload)}.build()
	copy(pkt[len(pkt)-len(payload):], payload)
	return pkt
}

// Rule IDs of dnsState.
const (
	ruleDNSNames engine.RuleID = 500 // api.example.com, *.allowed.org, the 253-character name
	ruleDNSAudit engine.RuleID = 501 // audit mode: *.audit.org
)

// longName is 253 characters: the longest name there is.
var longName = strings.Repeat(strings.Repeat("a", 62)+".", 4)[:253-len("x.org")] + "x.org"

// dnsState: A (10.0.0.1, fd00::1; identity 256) is default-deny on egress
// and may send DNS (UDP and TCP 53) to anyone for the names of rule 500;
// an audit-mode allow (rule 501) admits *.audit.org.
func dnsState() *engine.MapState {
	list := engine.L7List{
		{Rule: ruleDNSNames, Rules: &v1alpha1.L7Rules{DNS: []v1alpha1.DNSRule{
			{MatchName: "api.example.com"}, {MatchPattern: "*.allowed.org"}, {MatchName: v1alpha1.DNSName(longName)},
		}}},
		{Rule: ruleDNSAudit, Audit: true, Rules: &v1alpha1.L7Rules{DNS: []v1alpha1.DNSRule{{MatchPattern: "*.audit.org"}}}},
	}
	entry := engine.PolicyEntry{Flags: engine.FlagAllow | engine.FlagAuditAllow, AllowRule: ruleDNSNames, AuditAllowRule: ruleDNSAudit, L7: 77}
	pol := map[engine.PolicyKey]engine.PolicyEntry{}
	for _, proto := range []engine.Proto{6, 17} {
		pol[engine.PolicyKey{PolicyID: 256, Direction: engine.Egress, Proto: proto, Port: 53, PrefixLen: 24}] = entry
	}
	return &engine.MapState{
		Endpoints: map[netip.Addr]engine.EndpointEntry{
			addr("10.0.0.1"): {Identity: 256, PolicyID: 256, Flags: engine.EgressDefaultDeny},
			addr("fd00::1"):  {Identity: 256, PolicyID: 256, Flags: engine.EgressDefaultDeny},
		},
		IPCache: map[netip.Prefix]engine.Identity{},
		Policy:  pol,
		L7:      map[engine.L7ID]engine.L7List{77: list},
	}
}

// TestDNSParserTable runs adversarial DNS queries through the egress
// program: each has its expected verdict (pass, refused with a crafted
// answer, dropped), event reason and rule, and counter.
func TestDNSParserTable(t *testing.T) {
	d := openTest(t, nil)
	if err := d.Apply(context.Background(), dnsState()); err != nil {
		t.Fatalf("Apply: %v", err)
	}
	er, err := d.Events()
	if err != nil {
		t.Fatal(err)
	}
	defer er.Close()

	A, A6, server, server6 := addr("10.0.0.1"), addr("fd00::1"), addr("10.0.0.53"), addr("fd00::53")
	label63 := strings.Repeat("b", 63)
	ptrSelf := append(dnsWireName("www"), 0) // rewritten below into a pointer
	ptrSelf = []byte{0xc0, 12}               // a pointer to itself: the loop
	ptrFwd := []byte{3, 'w', 'w', 'w', 0xc0, 12}
	hundred := make([]dnsQuestion, 100)
	for i := range hundred {
		hundred[i] = dnsQuestion{name: "api.example.com"}
	}
	tooLong := "c." + longName // 255 characters

	type counter func(c Counters) uint64
	cDNSAllowed := func(c Counters) uint64 { return c.DNSAllowed }
	cRefused := func(c Counters) uint64 { return c.DNSRefused }
	cMalformed := func(c Counters) uint64 { return c.DNSMalformed }
	cPointer := func(c Counters) uint64 { return c.DNSPointer }
	cQD := func(c Counters) uint64 { return c.DNSQDCount }
	cName := func(c Counters) uint64 { return c.DNSName }
	cSplit := func(c Counters) uint64 { return c.DNSSplit }

	for _, c := range []struct {
		name    string
		src     netip.Addr
		proto   uint8
		msg     []byte
		raw     []byte // the whole packet, when set
		want    uint32
		reason  Reason // of a refusal's event
		rule    engine.RuleID
		counter counter
	}{
		{name: "allowed name", src: A, proto: 17, msg: dnsQuery("api.example.com"), want: actPass, counter: cDNSAllowed},
		{name: "case and trailing dot", src: A, proto: 17, msg: dnsQuery("API.Example.COM."), want: actPass, counter: cDNSAllowed},
		{name: "pattern", src: A, proto: 17, msg: dnsQuery("x-1.allowed.org"), want: actPass, counter: cDNSAllowed},
		{name: "pattern needs its label", src: A, proto: 17, msg: dnsQuery("allowed.org"), want: actRedirect, reason: Reason(engine.ReasonL7Denied), rule: ruleDNSNames, counter: cRefused},
		{name: "pattern is one label", src: A, proto: 17, msg: dnsQuery("a.b.allowed.org"), want: actRedirect, reason: Reason(engine.ReasonL7Denied), rule: ruleDNSNames, counter: cRefused},
		{name: "other name", src: A, proto: 17, msg: dnsQuery("evil.com"), want: actRedirect, reason: Reason(engine.ReasonL7Denied), rule: ruleDNSNames, counter: cRefused},
		{name: "IPv6", src: A6, proto: 17, msg: dnsQuery("evil.com"), want: actRedirect, reason: Reason(engine.ReasonL7Denied), rule: ruleDNSNames, counter: cRefused},
		// An audit-mode allow reports; it never admits what the enforcing rules refuse.
		{name: "audit-mode allow does not admit", src: A, proto: 17, msg: dnsQuery("x.audit.org"), want: actRedirect, reason: Reason(engine.ReasonL7Denied), rule: ruleDNSNames, counter: cRefused},
		{name: "label of 63", src: A, proto: 17, msg: dnsQuery(label63 + ".allowed.org"), want: actPass, counter: cDNSAllowed},
		{name: "label of 64", src: A, proto: 17, msg: dnsQuery(label63 + "b.allowed.org"), want: actRedirect, reason: ReasonDNSMalformed, counter: cMalformed},
		{name: "name of 253", src: A, proto: 17, msg: dnsQuery(longName), want: actPass, counter: cDNSAllowed},
		{name: "name of 255", src: A, proto: 17, msg: dnsQuery(tooLong), want: actRedirect, reason: ReasonDNSMalformed, counter: cName},
		{name: "compression pointer", src: A, proto: 17, msg: dnsMsg(0x0100, 1, 0, []dnsQuestion{{raw: ptrFwd}}, nil), want: actRedirect, reason: ReasonDNSMalformed, counter: cPointer},
		{name: "pointer loop", src: A, proto: 17, msg: dnsMsg(0x0100, 1, 0, []dnsQuestion{{raw: ptrSelf}}, nil), want: actRedirect, reason: ReasonDNSMalformed, counter: cPointer},
		{name: "0 questions", src: A, proto: 17, msg: dnsMsg(0x0100, 0, 0, nil, nil), want: actRedirect, reason: ReasonDNSMalformed, counter: cQD},
		{name: "100 questions", src: A, proto: 17, msg: dnsMsg(0x0100, 100, 0, hundred, nil), want: actRedirect, reason: ReasonDNSMalformed, counter: cQD},
		{name: "2 questions allowed", src: A, proto: 17, msg: dnsQuery("api.example.com", "a.allowed.org"), want: actPass, counter: cDNSAllowed},
		{name: "2 questions, one refused", src: A, proto: 17, msg: dnsQuery("api.example.com", "evil.com"), want: actRedirect, reason: Reason(engine.ReasonL7Denied), rule: ruleDNSNames, counter: cRefused},
		{name: "EDNS0", src: A, proto: 17, msg: dnsMsg(0x0100, 1, 1, []dnsQuestion{{name: "api.example.com"}}, ednsOPT), want: actPass, counter: cDNSAllowed},
		{name: "EDNS0 refused", src: A, proto: 17, msg: dnsMsg(0x0100, 1, 1, []dnsQuestion{{name: "evil.com"}}, ednsOPT), want: actRedirect, reason: Reason(engine.ReasonL7Denied), rule: ruleDNSNames, counter: cRefused},
		{name: "truncated name", src: A, proto: 17, msg: dnsQuery("api.example.com")[:20], want: actRedirect, reason: ReasonDNSMalformed, counter: cMalformed},
		{name: "no QTYPE and QCLASS", src: A, proto: 17, msg: dnsQuery("api.example.com")[:12+17], want: actRedirect, reason: ReasonDNSMalformed, counter: cMalformed},
		{name: "short header", src: A, proto: 17, msg: dnsQuery("api.example.com")[:11], want: actRedirect, reason: ReasonDNSMalformed, counter: cMalformed},
		{name: "a response, not a query", src: A, proto: 17, msg: dnsMsg(0x8180, 1, 0, []dnsQuestion{{name: "api.example.com"}}, nil), want: actRedirect, reason: ReasonDNSMalformed, counter: cMalformed},
		{name: "a space in a label", src: A, proto: 17, msg: dnsQuery("a b.allowed.org"), want: actRedirect, reason: ReasonDNSMalformed, counter: cName},
		{name: "a dot in a label", src: A, proto: 17, msg: dnsMsg(0x0100, 1, 0, []dnsQuestion{{raw: []byte{3, 'a', '.', 'b', 7, 'a', 'l', 'l', 'o', 'w', 'e', 'd', 3, 'o', 'r', 'g', 0}}}, nil), want: actRedirect, reason: ReasonDNSMalformed, counter: cName},
		{name: "TCP allowed", src: A, proto: 6, msg: dnsQuery("api.example.com"), want: actPass, counter: cDNSAllowed},
		// Refused TCP queries are answered by the kernel too (TestDNSTCPAnswer checks the segment).
		{name: "TCP refused", src: A, proto: 6, msg: dnsQuery("evil.com"), want: actRedirect, reason: Reason(engine.ReasonL7Denied), rule: ruleDNSNames, counter: cRefused},
		{name: "TCP bad length prefix", src: A, proto: 6, raw: func() []byte {
			p := dnsPacket(A, server, 6, dnsQuery("api.example.com"))
			binary.BigEndian.PutUint16(p[14+20+20:], 200) // more than the segment holds: split
			return p
		}(), want: actRedirect, reason: ReasonDNSMalformed, counter: cSplit}, // a reset
	} {
		t.Run(c.name, func(t *testing.T) {
			clearTracking(t, d)
			dst := server
			if c.src.Is6() {
				dst = server6
			}
			pkt := c.raw
			if pkt == nil {
				pkt = dnsPacket(c.src, dst, c.proto, c.msg)
			}
			before, err := d.Counters()
			if err != nil {
				t.Fatal(err)
			}
			out := make([]byte, len(pkt)+64)
			opts := &ebpf.RunOptions{Data: pkt, DataOut: out}
			ret, err := d.program(engine.Egress).Run(opts)
			if err != nil {
				t.Fatal(err)
			}
			out = opts.DataOut
			after, err := d.Counters()
			if err != nil {
				t.Fatal(err)
			}
			if ret != c.want {
				t.Fatalf("return %d, want %d (counters before %+v after %+v)", ret, c.want, before, after)
			}
			if got := c.counter(after) - c.counter(before); got != 1 {
				t.Errorf("the case's counter moved by %d, want 1 (counters before %+v after %+v)", got, before, after)
			}
			// Events: a refusal reports its reason and rule.
			var ev *Event
			er.SetDeadline(time.Now().Add(-time.Second))
			for {
				e, err := er.Read()
				if err != nil {
					break
				}
				if e.Verdict == engine.VerdictDeny {
					ev = &e
				}
			}
			if c.want != actPass {
				if ev == nil {
					t.Fatalf("no deny event for a refused query")
				}
				if ev.Reason != c.reason || ev.Rule != c.rule {
					t.Errorf("event reason %v rule %d, want %v rule %d", ev.Reason, ev.Rule, c.reason, c.rule)
				}
			} else if ev != nil {
				t.Errorf("deny event %+v for a passed query", *ev)
			}
			if ret == actRedirect && c.proto == 17 {
				checkDNSAnswer(t, pkt, out, 5)
			}
		})
	}

	// NXDOMAIN instead of REFUSED, when the agent says so.
	if err := d.SetDNSRcode(DNSRcodeNXDomain); err != nil {
		t.Fatal(err)
	}
	pkt := dnsPacket(A, server, 17, dnsQuery("evil.com"))
	opts := &ebpf.RunOptions{Data: pkt, DataOut: make([]byte, len(pkt)+64)}
	ret, err := d.program(engine.Egress).Run(opts)
	if err != nil || ret != actRedirect {
		t.Fatalf("NXDOMAIN: return %d (%v), want redirect", ret, err)
	}
	checkDNSAnswer(t, pkt, opts.DataOut, 3)
	if err := d.SetDNSRcode(4); err == nil {
		t.Errorf("SetDNSRcode(4) accepted")
	}
}

// checkDNSAnswer checks a crafted answer to the UDP query q: addresses and
// ports swapped, the message the query's with QR and RA set and rcode.
func checkDNSAnswer(t *testing.T, q, a []byte, rcode byte) {
	t.Helper()
	if len(a) != len(q) {
		t.Fatalf("answer of %d bytes for a query of %d", len(a), len(q))
	}
	var ipLen, addrOff, addrLen int
	if binary.BigEndian.Uint16(q[12:]) == 0x0800 {
		ipLen, addrOff, addrLen = 20, 12, 4
	} else {
		ipLen, addrOff, addrLen = 40, 8, 16
	}
	ip, ipA := q[14:], a[14:]
	if string(ipA[addrOff:addrOff+addrLen]) != string(ip[addrOff+addrLen:addrOff+2*addrLen]) ||
		string(ipA[addrOff+addrLen:addrOff+2*addrLen]) != string(ip[addrOff:addrOff+addrLen]) {
		t.Errorf("addresses not swapped")
	}
	if string(a[0:6]) != string(q[6:12]) || string(a[6:12]) != string(q[0:6]) {
		t.Errorf("Ethernet addresses not swapped")
	}
	udp, udpA := ip[ipLen:], ipA[ipLen:]
	if binary.BigEndian.Uint16(udpA[0:]) != 53 || binary.BigEndian.Uint16(udpA[2:]) != binary.BigEndian.Uint16(udp[0:]) {
		t.Errorf("ports %d→%d, want 53→%d", binary.BigEndian.Uint16(udpA[0:]), binary.BigEndian.Uint16(udpA[2:]), binary.BigEndian.Uint16(udp[0:]))
	}
	m, mA := udp[8:], udpA[8:]
	if mA[2]&0x80 == 0 || mA[3]&0x0f != rcode || mA[2]&0x7f != m[2]&0x79 {
		t.Errorf("flags %02x%02x, want QR, the query's opcode and RD, rcode %d", mA[2], mA[3], rcode)
	}
	if string(mA[:2]) != string(m[:2]) || string(mA[4:]) != string(m[4:]) {
		t.Errorf("the answer's message differs from the query's beyond the flags")
	}
}

// The DNS differential test: seeded random states whose policy entries
// carry random L7 lists (DNS names and patterns, audit-mode allows, HTTP
// rules, allows without rules), beside random deny and audit flags and
// default-deny, are applied to the real programs; random query names in
// UDP queries run through the egress program, and every verdict, reason
// and rule equals engine.MapState.LookupSide's for the DNS request (the
// contract between compiler and kernel; internal/engine checks that
// LookupSide equals Evaluate). Set i uses seed dnsseed+i:
//
//	go test ./internal/datapath -run TestDNSDifferential -datapath.dnsseed=S -datapath.dnssets=1
var (
	dnsSeed    = flag.Uint64("datapath.dnsseed", 1515, "seed of the first state of TestDNSDifferential (set i: seed+i)")
	dnsSets    = flag.Int("datapath.dnssets", 100, "random states in TestDNSDifferential")
	dnsQueries = flag.Int("datapath.dnsqueries", 500, "random queries per state in TestDNSDifferential")
)

func randomLabelName(r *rand.Rand, star bool) string {
	if r.IntN(30) == 0 {
		return ""
	}
	alpha := "abX-"
	if star {
		alpha = "abX-**"
	}
	labels := make([]string, 1+r.IntN(3))
	for i := range labels {
		b := make([]byte, 1+r.IntN(3))
		for j := range b {
			b[j] = alpha[r.IntN(len(alpha))]
		}
		labels[i] = string(b)
	}
	return strings.Join(labels, ".")
}

func randomL7List(r *rand.Rand, base engine.RuleID) engine.L7List {
	var l engine.L7List
	for i := range 1 + r.IntN(3) {
		a := engine.L7Allow{Rule: base + engine.RuleID(i), Audit: r.IntN(4) == 0}
		switch r.IntN(8) {
		case 0:
		case 1:
			a.Rules = &v1alpha1.L7Rules{HTTP: []v1alpha1.HTTPRule{{Method: "GET"}}}
		default:
			a.Rules = &v1alpha1.L7Rules{}
			for range 1 + r.IntN(3) {
				switch r.IntN(7) {
				case 0:
					a.Rules.DNS = append(a.Rules.DNS, v1alpha1.DNSRule{MatchPattern: "*"})
				case 1, 2:
					a.Rules.DNS = append(a.Rules.DNS, v1alpha1.DNSRule{MatchName: v1alpha1.DNSName(randomLabelName(r, false))})
				default:
					a.Rules.DNS = append(a.Rules.DNS, v1alpha1.DNSRule{MatchPattern: v1alpha1.DNSPattern(randomLabelName(r, true))})
				}
			}
		}
		l = append(l, a)
	}
	return l
}

// randomDNSState: A (10.0.0.1) sends to B (10.0.0.2, identity 300, or when
// world a node-local CIDR identity, a peer outside the cluster) on UDP 53;
// the entries for B's identity and for any peer are random, and for a peer
// outside the cluster so is the every-world entry (engine.IdentityAllWorld),
// drawn after the others, without an L7 list as the engine writes it, and
// not when both other entries have lists (the gap docs/datapath.md names).
func randomDNSState(r *rand.Rand, world bool) *engine.MapState {
	s := &engine.MapState{
		Endpoints: map[netip.Addr]engine.EndpointEntry{addr("10.0.0.1"): {Identity: 256, PolicyID: 256,
			Flags: engine.EndpointFlags(r.IntN(16)) & (engine.EgressDefaultDeny | engine.EgressDefaultAudit)}},
		IPCache: map[netip.Prefix]engine.Identity{netip.MustParsePrefix("10.0.0.2/32"): 300},
		Policy:  map[engine.PolicyKey]engine.PolicyEntry{},
		L7:      map[engine.L7ID]engine.L7List{},
	}
	peer := engine.Identity(300)
	if world {
		peer = engine.MinLocalIdentity + 5
		s.IPCache[netip.MustParsePrefix("10.0.0.2/32")] = peer
	}
	lists := 0
	for i, id := range []engine.Identity{peer, 0, engine.IdentityAllWorld} {
		if r.IntN(5) == 0 || id == engine.IdentityAllWorld && (!world || lists == 2) {
			continue
		}
		var e engine.PolicyEntry
		flags := []engine.PolicyFlags{engine.FlagAllow, engine.FlagAllow, engine.FlagAllow, engine.FlagAuditAllow, engine.FlagDeny, engine.FlagAuditDeny}
		for range 1 + r.IntN(2) {
			e.Flags |= flags[r.IntN(len(flags))]
		}
		base := engine.RuleID(10 + 10*i)
		if e.Flags&engine.FlagAllow != 0 {
			e.AllowRule = base
		}
		if e.Flags&engine.FlagAuditAllow != 0 {
			e.AuditAllowRule = base + 1
		}
		if e.Flags&engine.FlagDeny != 0 {
			e.DenyRule = base + 5
		}
		if e.Flags&engine.FlagAuditDeny != 0 {
			e.AuditRule = base + 6
		}
		if e.Flags&(engine.FlagAllow|engine.FlagAuditAllow) != 0 && r.IntN(5) != 0 && id != engine.IdentityAllWorld {
			e.L7 = engine.L7ID(1 + i)
			s.L7[e.L7] = randomL7List(r, base+100)
			lists++
		}
		s.Policy[engine.PolicyKey{PolicyID: 256, Direction: engine.Egress, Identity: id, Proto: 17, Port: 53, PrefixLen: 24}] = e
	}
	return s
}

func TestDNSDifferential(t *testing.T) {
	requireKernel(t)
	d := openTest(t, nil)
	er, err := d.Events()
	if err != nil {
		t.Fatal(err)
	}
	defer er.Close()
	A, B := addr("10.0.0.1"), addr("10.0.0.2")
	sides := map[string]int{}
	queries, worldSets := 0, 0
	for i := range *dnsSets {
		seed := *dnsSeed + uint64(i)
		r := rand.New(rand.NewPCG(seed, 15))
		s := randomDNSState(r, i%2 == 1)
		for k := range s.Policy {
			if k.Identity == engine.IdentityAllWorld {
				worldSets++
				break
			}
		}
		if err := d.Apply(context.Background(), s); err != nil {
			t.Fatalf("seed %d: Apply: %v", seed, err)
		}
		drift, _, err := d.Compare(s)
		if err != nil || len(drift) > 0 {
			t.Fatalf("seed %d: Compare: %v %v", seed, drift, err)
		}
		clearTracking(t, d)
		for q := range *dnsQueries {
			name := randomLabelName(r, false)
			if r.IntN(3) == 0 {
				name = strings.ToUpper(name) + "."
			}
			msg := dnsQuery(name)
			pkt := dnsPacket(A, B, 17, msg)
			binary.BigEndian.PutUint16(pkt[14+20:], uint16(1024+q)) // a new connection: its first packet is reported
			// A port none of whose lists has DNS rules is decided at L4.
			var req *engine.Request
			if dnsPort(s) {
				req = &engine.Request{DNS: &engine.DNSRequest{Name: name}}
			}
			wv, wr, wrule := s.LookupSide(engine.Egress, A, B, 17, 53, req)
			ret, ev := run(t, d, er, engine.Egress, pkt)
			queries++
			gv, gr, grule := engine.VerdictAllow, Reason(0), engine.RuleID(0)
			if ev != nil {
				gv, gr, grule = ev.Verdict, ev.Reason, ev.Rule
			}
			switch {
			case ret == actRedirect || ret == actShot:
				if gv != engine.VerdictDeny {
					t.Fatalf("seed %d query %q: return %d with event %+v", seed, name, ret, ev)
				}
			case ev == nil:
				t.Fatalf("seed %d query %q: passed without an event", seed, name)
			}
			if gv != wv || gr != Reason(wr) || grule != wrule {
				t.Fatalf("seed %d query %q: kernel %s %s rule %d (return %d), LookupSide %s %s rule %d\nstate: endpoints %+v\npolicy %+v\nL7 %s",
					seed, name, gv, gr, grule, ret, wv, wr, wrule, s.Endpoints, s.Policy, formatL7(s.L7))
			}
			sides[wv.String()+"/"+wr.String()]++
		}
	}
	c, err := d.Counters()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d states, %d queries (%d parsed as DNS in the kernel: %d allowed, %d refused by rule, %d audited); kernel = LookupSide for all; by verdict/reason: %v",
		*dnsSets, queries, c.DNSQueries, c.DNSAllowed, c.DNSRefused, c.DNSAudited, sides)
	t.Logf("%d states with an every-world entry (engine.IdentityAllWorld)", worldSets)
	if *dnsSets >= 20 {
		if worldSets == 0 {
			t.Errorf("no state has an every-world entry: the random states exercise too little")
		}
		for _, vr := range []string{"allow/allowed", "deny/l7-denied", "deny/denied", "audit/l7-denied"} {
			if sides[vr] == 0 {
				t.Errorf("no query was decided %s: the random states exercise too little", vr)
			}
		}
	}
}

// dnsPort says whether the kernel decides randomDNSState's port as DNS:
// an allow entry found for it has a list with DNS rules.
func dnsPort(s *engine.MapState) bool {
	for _, e := range s.Policy {
		if e.Flags&(engine.FlagAllow|engine.FlagAuditAllow) != 0 && e.L7 != 0 && engine.DNSListHasDNS(s.L7[e.L7]) {
			return true
		}
	}
	return false
}

func formatL7(m map[engine.L7ID]engine.L7List) string {
	var b strings.Builder
	for id, l := range m {
		fmt.Fprintf(&b, "%d:", id)
		for _, a := range l {
			fmt.Fprintf(&b, " {rule %d audit %v", a.Rule, a.Audit)
			if a.Rules != nil {
				fmt.Fprintf(&b, " dns %+v http %d", a.Rules.DNS, len(a.Rules.HTTP))
			}
			b.WriteString("}")
		}
		b.WriteString("\n")
	}
	return b.String()
}
