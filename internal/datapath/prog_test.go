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
	"net/netip"
	"testing"

	"github.com/palisade-dev/palisade/internal/engine"
)

func TestLoad(t *testing.T) {
	d := openTest(t, nil)
	if g := d.Generation(); g != 0 {
		t.Fatalf("fresh datapath at generation %d, want 0", g)
	}
	// Before the first generation nothing is enforced, and it is counted.
	ret, err := d.objs.PalisadeFromEndpoint.Run(ebpfRun(packet{src: addr("10.0.0.1"), dst: addr("10.0.0.2"), proto: 6, dport: 80}.build()))
	if err != nil {
		t.Fatal(err)
	}
	if ret != actPass {
		t.Fatalf("before the first Apply: return %d, want pass", ret)
	}
	c, err := d.Counters()
	if err != nil {
		t.Fatal(err)
	}
	if c.Packets != 1 || c.NoState != 1 {
		t.Fatalf("counters %+v, want 1 packet with no state", c)
	}
}

func addr(s string) netip.Addr { return netip.MustParseAddr(s) }

// Rule IDs of tableState.
const (
	ruleHTTP   engine.RuleID = 100
	ruleDNS    engine.RuleID = 101
	ruleEcho   engine.RuleID = 102
	ruleSCTP   engine.RuleID = 103
	ruleSSH    engine.RuleID = 104
	ruleEcho6  engine.RuleID = 105
	ruleFromA  engine.RuleID = 200
	ruleAudit  engine.RuleID = 201
	ruleAAllow engine.RuleID = 300
)

// tableState: A (10.0.0.1, fd00::1; identity 256) is default-deny both
// ways; B (10.0.0.2, fd00::2; 257) default-deny on ingress; C (10.0.0.3;
// 258) selected by an audit-mode policy only.
func tableState() *engine.MapState {
	pk := func(pol uint32, dir engine.Direction, id engine.Identity, proto engine.Proto, port uint16, plen uint8) engine.PolicyKey {
		return engine.PolicyKey{PolicyID: pol, Direction: dir, Identity: id, Proto: proto, Port: port, PrefixLen: plen}
	}
	allow := func(r engine.RuleID) engine.PolicyEntry {
		return engine.PolicyEntry{Flags: engine.FlagAllow, AllowRule: r}
	}
	both := engine.IngressDefaultDeny | engine.EgressDefaultDeny
	return &engine.MapState{
		Endpoints: map[netip.Addr]engine.EndpointEntry{
			addr("10.0.0.1"): {Identity: 256, PolicyID: 256, Flags: both},
			addr("fd00::1"):  {Identity: 256, PolicyID: 256, Flags: both},
			addr("10.0.0.2"): {Identity: 257, PolicyID: 257, Flags: engine.IngressDefaultDeny},
			addr("fd00::2"):  {Identity: 257, PolicyID: 257, Flags: engine.IngressDefaultDeny},
			addr("10.0.0.3"): {Identity: 258, PolicyID: 258, Flags: engine.IngressDefaultAudit},
		},
		IPCache: map[netip.Prefix]engine.Identity{
			netip.MustParsePrefix("10.0.0.1/32"):    256,
			netip.MustParsePrefix("fd00::1/128"):    256,
			netip.MustParsePrefix("10.0.0.2/32"):    257,
			netip.MustParsePrefix("fd00::2/128"):    257,
			netip.MustParsePrefix("10.0.0.3/32"):    258,
			netip.MustParsePrefix("192.168.0.0/16"): 1 << 24,
		},
		Policy: map[engine.PolicyKey]engine.PolicyEntry{
			pk(256, engine.Egress, 257, engine.ProtoTCP, 80, 24):     allow(ruleHTTP),
			pk(256, engine.Egress, 0, engine.ProtoUDP, 53, 24):       allow(ruleDNS),
			pk(256, engine.Egress, 257, engine.ProtoICMP, 8, 24):     allow(ruleEcho),
			pk(256, engine.Egress, 257, engine.ProtoSCTP, 1000, 22):  allow(ruleSCTP), // 1000-1003, LPM path
			pk(256, engine.Egress, 0, engine.ProtoTCP, 22, 24):       {Flags: engine.FlagDeny, DenyRule: ruleSSH},
			pk(256, engine.Egress, 257, engine.ProtoICMPv6, 128, 24): allow(ruleEcho6),
			pk(256, engine.Egress, 1<<24, engine.ProtoTCP, 0, 8):     allow(ruleHTTP + 50),
			pk(257, engine.Ingress, 256, 0, 0, 0):                    allow(ruleFromA),
			pk(257, engine.Ingress, 256, engine.ProtoTCP, 443, 24): {
				Flags: engine.FlagAllow | engine.FlagAuditDeny, AllowRule: ruleFromA, AuditRule: ruleAudit},
			pk(258, engine.Ingress, 0, engine.ProtoTCP, 8080, 24): {Flags: engine.FlagAuditAllow, AuditAllowRule: ruleAAllow},
		},
	}
}

type step struct {
	name string
	dir  engine.Direction
	pkt  []byte
	// want
	shot   bool
	event  bool
	ev     Event // checked when event: Verdict, Reason, Rule, Direction, identities, ports, Fragment
	noPort bool  // do not check ports (malformed packets)
}

func mutate(b []byte, f func(b []byte) []byte) []byte { return f(append([]byte(nil), b...)) }

func TestProgramTable(t *testing.T) {
	d := openTest(t, nil)
	if err := d.Apply(context.Background(), tableState()); err != nil {
		t.Fatalf("Apply: %v", err)
	}
	if err := d.SetEventsAllowed(true); err != nil {
		t.Fatal(err)
	}
	er, err := d.Events()
	if err != nil {
		t.Fatal(err)
	}
	defer er.Close()

	A, B, C, A6, B6 := addr("10.0.0.1"), addr("10.0.0.2"), addr("10.0.0.3"), addr("fd00::1"), addr("fd00::2")
	world := addr("1.1.1.1")
	eg, in := engine.Egress, engine.Ingress
	allowEv := func(dir engine.Direction, local, peer engine.Identity, rule engine.RuleID, sport, dport, port uint16) Event {
		return Event{Verdict: engine.VerdictAllow, Reason: Reason(engine.ReasonAllowed), Rule: rule, Direction: dir,
			LocalIdentity: local, PeerIdentity: peer, SrcPort: sport, DstPort: dport, Port: port}
	}
	denyEv := func(dir engine.Direction, reason engine.Reason, local, peer engine.Identity, rule engine.RuleID, sport, dport, port uint16) Event {
		return Event{Verdict: engine.VerdictDeny, Reason: Reason(reason), Rule: rule, Direction: dir,
			LocalIdentity: local, PeerIdentity: peer, SrcPort: sport, DstPort: dport, Port: port}
	}
	malformed := Event{Verdict: engine.VerdictDeny, Reason: ReasonMalformed}
	tcp := func(src, dst netip.Addr, sport, dport uint16) packet {
		return packet{src: src, dst: dst, proto: 6, sport: sport, dport: dport, tcpFlags: 0x02, payload: 10}
	}
	ab80 := tcp(A, B, 40000, 80).build()

	cases := []struct {
		name  string
		steps []step
	}{
		{"tcp allowed, hash path", []step{{dir: eg, pkt: ab80, event: true, ev: allowEv(eg, 256, 257, ruleHTTP, 40000, 80, 80)}}},
		{"tcp other port default deny", []step{{dir: eg, pkt: tcp(A, B, 40000, 81).build(), shot: true, event: true,
			ev: denyEv(eg, engine.ReasonDefaultDeny, 256, 257, 0, 40000, 81, 81)}}},
		{"deny rule wins for any peer", []step{{dir: eg, pkt: tcp(A, world, 40000, 22).build(), shot: true, event: true,
			ev: denyEv(eg, engine.ReasonDenied, 256, engine.IdentityWorld, ruleSSH, 40000, 22, 22)}}},
		{"cidr identity, proto-wide LPM entry", []step{{dir: eg, pkt: tcp(A, addr("192.168.7.7"), 1, 9999).build(), event: true,
			ev: allowEv(eg, 256, 1<<24, ruleHTTP+50, 1, 9999, 9999)}}},
		{"udp any peer", []step{{dir: eg, pkt: packet{src: A, dst: world, proto: 17, sport: 5353, dport: 53, payload: 30}.build(), event: true,
			ev: allowEv(eg, 256, engine.IdentityWorld, ruleDNS, 5353, 53, 53)}}},
		{"sctp port range via LPM", []step{
			{dir: eg, pkt: packet{src: A, dst: B, proto: 132, sport: 7, dport: 1003}.build(), event: true, ev: allowEv(eg, 256, 257, ruleSCTP, 7, 1003, 1003)},
			{dir: eg, pkt: packet{src: A, dst: B, proto: 132, sport: 7, dport: 1004}.build(), shot: true, event: true,
				ev: denyEv(eg, engine.ReasonDefaultDeny, 256, 257, 0, 7, 1004, 1004)}}},
		{"icmp echo allowed, other type denied", []step{
			{dir: eg, pkt: packet{src: A, dst: B, proto: 1, icmpType: 8, sport: 77}.build(), event: true, ev: allowEv(eg, 256, 257, ruleEcho, 77, 0, 8)},
			{dir: eg, pkt: packet{src: A, dst: B, proto: 1, icmpType: 13}.build(), shot: true, event: true,
				ev: denyEv(eg, engine.ReasonDefaultDeny, 256, 257, 0, 0, 0, 13)}}},
		{"ipv6 tcp and icmpv6", []step{
			{dir: eg, pkt: tcp(A6, B6, 40000, 80).build(), event: true, ev: allowEv(eg, 256, 257, ruleHTTP, 40000, 80, 80)},
			{dir: eg, pkt: packet{src: A6, dst: B6, proto: 58, icmpType: 128, sport: 9}.build(), event: true, ev: allowEv(eg, 256, 257, ruleEcho6, 9, 0, 128)},
			{dir: eg, pkt: packet{src: A6, dst: B6, proto: 58, icmpType: 1}.build(), shot: true, event: true,
				ev: denyEv(eg, engine.ReasonDefaultDeny, 256, 257, 0, 0, 0, 1)}}},
		{"icmp in ipv6 is not icmpv6", []step{{dir: eg, pkt: packet{src: A6, dst: B6, proto: 1, icmpType: 8}.build(), shot: true, event: true,
			ev: denyEv(eg, engine.ReasonDefaultDeny, 256, 257, 0, 0, 0, 0)}}},
		{"ingress allow-all from A; audit deny on 443", []step{
			{dir: in, pkt: tcp(A, B, 1, 5000).build(), event: true, ev: allowEv(in, 257, 256, ruleFromA, 1, 5000, 5000)},
			{dir: in, pkt: tcp(A, B, 1, 443).build(), event: true,
				ev: Event{Verdict: engine.VerdictAudit, Reason: Reason(engine.ReasonDenied), Rule: ruleAudit, Direction: in, LocalIdentity: 257, PeerIdentity: 256, SrcPort: 1, DstPort: 443, Port: 443}},
			{dir: in, pkt: tcp(world, B, 1, 5000).build(), shot: true, event: true, ev: denyEv(in, engine.ReasonDefaultDeny, 257, engine.IdentityWorld, 0, 1, 5000, 5000)}}},
		{"audit-mode only: allow reported, default audit", []step{
			{dir: in, pkt: tcp(world, C, 1, 8080).build(), event: true, ev: allowEv(in, 258, engine.IdentityWorld, ruleAAllow, 1, 8080, 8080)},
			{dir: in, pkt: tcp(world, C, 1, 8081).build(), event: true,
				ev: Event{Verdict: engine.VerdictAudit, Reason: Reason(engine.ReasonDefaultDeny), Direction: in, LocalIdentity: 258, PeerIdentity: engine.IdentityWorld, SrcPort: 1, DstPort: 8081, Port: 8081}},
			// The audited connection is reported once.
			{dir: in, pkt: tcp(world, C, 1, 8081).build()}}},
		{"not enforced, not selected", []step{
			{dir: eg, pkt: tcp(world, B, 1, 80).build()},
			{dir: eg, pkt: tcp(B, world, 1, 80).build(), event: true,
				ev: Event{Verdict: engine.VerdictAllow, Reason: Reason(engine.ReasonNotSelected), Direction: eg, LocalIdentity: 257, PeerIdentity: engine.IdentityWorld, SrcPort: 1, DstPort: 80, Port: 80}}}},
		{"non-ip passes", []step{{dir: eg, pkt: packet{src: A, dst: B, proto: 6, dport: 81, etherType: 0x0806}.build()}}},
		{"reply of allowed connection passes, unsolicited is denied", []step{
			{dir: eg, pkt: ab80, event: true, ev: allowEv(eg, 256, 257, ruleHTTP, 40000, 80, 80)},
			{dir: in, pkt: tcp(B, A, 80, 40000).build()},
			{dir: in, pkt: tcp(B, A, 80, 40001).build(), shot: true, event: true, ev: denyEv(in, engine.ReasonDefaultDeny, 256, 257, 0, 80, 40001, 40001)}}},
		{"icmp echo reply passes", []step{
			{dir: eg, pkt: packet{src: A, dst: B, proto: 1, icmpType: 8, sport: 77}.build(), event: true, ev: allowEv(eg, 256, 257, ruleEcho, 77, 0, 8)},
			{dir: in, pkt: packet{src: B, dst: A, proto: 1, icmpType: 0, sport: 77}.build()},
			{dir: in, pkt: packet{src: B, dst: A, proto: 1, icmpType: 0, sport: 78}.build(), shot: true, event: true,
				ev: denyEv(in, engine.ReasonDefaultDeny, 256, 257, 0, 78, 0, 0)}}},
		{"fragmented icmp echo reply passes whole", []step{
			{dir: eg, pkt: packet{src: A, dst: B, proto: 1, icmpType: 8, sport: 79}.build(), event: true, ev: allowEv(eg, 256, 257, ruleEcho, 79, 0, 8)},
			{dir: in, pkt: packet{src: B, dst: A, proto: 1, icmpType: 0, sport: 79, payload: 16, moreFrags: true, fragID: 11}.build()},
			// The later fragment is the echo reply too, not ICMP type 0 on its own.
			{dir: in, pkt: packet{src: B, dst: A, proto: 1, fragOffset: 3, fragID: 11, payload: 8}.build()}}},
		{"fragmented icmpv6 echo reply passes whole", []step{
			{dir: eg, pkt: packet{src: A6, dst: B6, proto: 58, icmpType: 128, sport: 80}.build(), event: true, ev: allowEv(eg, 256, 257, ruleEcho6, 80, 0, 128)},
			{dir: in, pkt: packet{src: B6, dst: A6, proto: 58, icmpType: 129, sport: 80, payload: 16, fragHeader: true, moreFrags: true, fragID: 12}.build()},
			{dir: in, pkt: packet{src: B6, dst: A6, proto: 58, fragHeader: true, fragOffset: 3, fragID: 12, payload: 8}.build()}}},
		{"ip options skipped", []step{{dir: eg, pkt: packet{src: A, dst: B, proto: 6, sport: 3, dport: 80, ipOptions: 10}.build(), event: true,
			ev: allowEv(eg, 256, 257, ruleHTTP, 3, 80, 80)}}},
		{"ipv6 extension headers followed", []step{{dir: eg, pkt: packet{src: A6, dst: B6, proto: 6, sport: 3, dport: 80, extHdrs: []uint8{0, 60, 43, 51}}.build(), event: true,
			ev: allowEv(eg, 256, 257, ruleHTTP, 3, 80, 80)}}},
		{"ipv4 fragments take the first fragment's ports", []step{
			{dir: eg, pkt: packet{src: A, dst: world, proto: 17, sport: 5, dport: 53, payload: 16, moreFrags: true, fragID: 9}.build(), event: true,
				ev: withFrag(allowEv(eg, 256, engine.IdentityWorld, ruleDNS, 5, 53, 53))},
			{dir: eg, pkt: packet{src: A, dst: world, proto: 17, fragOffset: 3, fragID: 9, payload: 8}.build(), event: true,
				ev: withFrag(allowEv(eg, 256, engine.IdentityWorld, ruleDNS, 5, 53, 53))},
			{dir: eg, pkt: packet{src: A, dst: world, proto: 17, fragOffset: 3, fragID: 10, payload: 8}.build(), shot: true, event: true,
				ev: withFrag(denyEv(eg, engine.ReasonDefaultDeny, 256, engine.IdentityWorld, 0, 0, 0, 0))}}},
		{"ipv6 fragments take the first fragment's ports", []step{
			{dir: eg, pkt: packet{src: A6, dst: B6, proto: 6, sport: 5, dport: 80, fragHeader: true, moreFrags: true, fragID: 70000}.build(), event: true,
				ev: withFrag(allowEv(eg, 256, 257, ruleHTTP, 5, 80, 80))},
			{dir: eg, pkt: packet{src: A6, dst: B6, proto: 6, fragHeader: true, fragOffset: 5, fragID: 70000}.build(), event: true,
				ev: withFrag(allowEv(eg, 256, 257, ruleHTTP, 5, 80, 80))}}},
		// BPF_PROG_TEST_RUN refuses IP frames shorter than the base IP
		// header (EINVAL), so the shortest truncations start there.
		{"malformed: ipv4 header options truncated", []step{{dir: eg, pkt: mutate(ab80[:14+20], func(b []byte) []byte { b[14] = 0x46; return b }), shot: true, event: true, ev: malformed, noPort: true}}},
		{"malformed: truncated tcp header", []step{{dir: eg, pkt: mutate(ab80[:14+20+10], func(b []byte) []byte {
			binary.BigEndian.PutUint16(b[16:], 30)
			return b
		}), shot: true, event: true, ev: malformed, noPort: true}}},
		{"malformed: ihl < 5", []step{{dir: eg, pkt: mutate(ab80, func(b []byte) []byte { b[14] = 0x44; return b }), shot: true, event: true, ev: malformed, noPort: true}}},
		{"malformed: ip version", []step{{dir: eg, pkt: mutate(ab80, func(b []byte) []byte { b[14] = 0x65; return b }), shot: true, event: true, ev: malformed, noPort: true}}},
		{"malformed: total length past the packet", []step{{dir: eg, pkt: mutate(ab80, func(b []byte) []byte {
			binary.BigEndian.PutUint16(b[16:], uint16(len(b)))
			return b
		}), shot: true, event: true, ev: malformed, noPort: true}}},
		{"malformed: total length below header", []step{{dir: eg, pkt: mutate(ab80, func(b []byte) []byte {
			binary.BigEndian.PutUint16(b[16:], 19)
			return b
		}), shot: true, event: true, ev: malformed, noPort: true}}},
		{"malformed: options past the packet", []step{{dir: eg, pkt: mutate(ab80, func(b []byte) []byte { b[14] = 0x4f; return b[:14+40] }), shot: true, event: true, ev: malformed, noPort: true}}},
		{"malformed: tcp data offset < 5", []step{{dir: eg, pkt: mutate(ab80, func(b []byte) []byte { b[14+20+12] = 0x40; return b }), shot: true, event: true, ev: malformed, noPort: true}}},
		{"malformed: ipv6 extension header truncated", []step{{dir: eg, pkt: mutate(tcp(A6, B6, 1, 80).build()[:14+40], func(b []byte) []byte {
			b[14+6] = 0 // hop-by-hop options follow, but the packet ends
			binary.BigEndian.PutUint16(b[18:], 0)
			return b
		}), shot: true, event: true, ev: malformed, noPort: true}}},
		{"malformed: ipv6 payload length past the packet", []step{{dir: eg, pkt: mutate(tcp(A6, B6, 1, 80).build(), func(b []byte) []byte {
			binary.BigEndian.PutUint16(b[18:], 500)
			return b
		}), shot: true, event: true, ev: malformed, noPort: true}}},
		{"malformed: too many ipv6 extension headers", []step{{dir: eg, pkt: packet{src: A6, dst: B6, proto: 6, dport: 80, extHdrs: []uint8{0, 60, 60, 60, 60, 60, 60, 60, 60}}.build(),
			shot: true, event: true, ev: malformed, noPort: true}}},
		{"malformed: extension header past the payload", []step{{dir: eg, pkt: mutate(packet{src: A6, dst: B6, proto: 6, dport: 80, extHdrs: []uint8{60}}.build(), func(b []byte) []byte {
			b[14+40+1] = 200 // header length far past the end
			return b
		}), shot: true, event: true, ev: malformed, noPort: true}}},
		{"malformed: truncated udp", []step{{dir: eg, pkt: mutate(packet{src: A, dst: world, proto: 17, dport: 53}.build(), func(b []byte) []byte {
			binary.BigEndian.PutUint16(b[16:], 24)
			return b[:14+24]
		}), shot: true, event: true, ev: malformed, noPort: true}}},
		{"malformed: truncated icmpv6", []step{{dir: eg, pkt: mutate(packet{src: A6, dst: B6, proto: 58, icmpType: 128}.build(), func(b []byte) []byte {
			binary.BigEndian.PutUint16(b[18:], 4)
			return b[:14+44]
		}), shot: true, event: true, ev: malformed, noPort: true}}},
		{"bare ethernet header passes as non-ip", []step{{dir: eg, pkt: mutate(ab80[:14], func(b []byte) []byte { b[12], b[13] = 0x88, 0xcc; return b })}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			clearTracking(t, d)
			for i, s := range c.steps {
				ret, ev := run(t, d, er, s.dir, s.pkt)
				want := actPass
				if s.shot {
					want = actShot
				}
				if ret != want {
					t.Errorf("step %d: return %d, want %d", i, int32(ret), int32(want))
				}
				if !s.event {
					if ev != nil {
						t.Errorf("step %d: unexpected event %+v", i, *ev)
					}
					continue
				}
				if ev == nil {
					t.Errorf("step %d: no event, want %+v", i, s.ev)
					continue
				}
				if ev.Generation != 1 {
					t.Errorf("step %d: event generation %d, want 1", i, ev.Generation)
				}
				got := withoutHeader(*ev)
				got.Generation, got.Ifindex, got.Src, got.Dst, got.Proto = 0, 0, netip.Addr{}, netip.Addr{}, 0
				if s.noPort {
					got.SrcPort, got.DstPort, got.Port, got.LocalIdentity, got.PeerIdentity, got.Direction = 0, 0, 0, 0, 0, 0
				}
				if got != s.ev {
					t.Errorf("step %d: event\n got %+v\nwant %+v", i, got, s.ev)
				}
			}
		})
	}
}

func withFrag(e Event) Event { e.Fragment = true; return e }
