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
	"encoding/hex"
	"flag"
	"math/rand/v2"
	"net/netip"
	"testing"

	"github.com/palisade-dev/palisade/internal/engine"
)

var (
	diffSeed    = flag.Uint64("datapath.seed", 20261124, "seed of the differential test")
	diffSets    = flag.Int("datapath.sets", 200, "random map states in the differential test")
	diffPackets = flag.Int("datapath.packets", 500, "random packets per map state")
)

// TestDifferential writes seeded random map states through Apply and
// checks that, for random packets (valid and malformed) run through both
// directions' programs, the kernel's verdict and the rule, reason and
// identities of its event are what engine.MapState.LookupSide (with no L7
// request) says, with conntrack and fragments followed as docs/datapath.md
// says. Odd sets run the workload programs, which differ on purpose where
// the local address has no endpoint entry: they drop (no-endpoint) unless
// the address is never a workload's own (neverOwn).
func TestDifferential(t *testing.T) {
	d := openTest(t, nil)
	if err := d.SetEventsAllowed(true); err != nil {
		t.Fatal(err)
	}
	er, err := d.Events()
	if err != nil {
		t.Fatal(err)
	}
	defer er.Close()
	t.Logf("seed %d: %d sets × %d packets (-datapath.seed to reproduce)", *diffSeed, *diffSets, *diffPackets)

	r := rand.New(rand.NewPCG(*diffSeed, 0x9e3779b97f4a7c15))
	fails, runs, malformed, shot := 0, 0, 0, 0
	seen := map[[2]uint8]int{} // verdict, reason of the expected events
	for set := 0; set < *diffSets && fails < 10; set++ {
		g := newGen(r)
		s := g.state()
		if err := d.Apply(context.Background(), s); err != nil {
			t.Fatalf("set %d: Apply: %v", set, err)
		}
		clearTracking(t, d)
		m := newModel(stateOracle{s}, d.Generation(), true)
		workload := set%2 == 1
		if workload {
			m.failClosed = s.Identity
		}
		for i := 0; i < *diffPackets && fails < 10; i++ {
			pkt := g.packet()
			p := refParse(pkt)
			if p.kind == parseMalformed {
				malformed++
			}
			for _, dir := range []engine.Direction{engine.Egress, engine.Ingress} {
				want := m.step(dir, p)
				if want.event != nil {
					seen[[2]uint8{uint8(want.event.Verdict), uint8(want.event.Reason)}]++
				}
				var ret uint32
				var ev *Event
				if workload {
					ret, ev = runOn(t, d.workloadProgram(dir), er, pkt)
				} else {
					ret, ev = run(t, d, er, dir, pkt)
				}
				runs++
				if ret == actShot {
					shot++
				}
				if msg := want.compare(ret, ev); msg != "" {
					fails++
					t.Errorf("seed %d set %d (workload %v) packet %d %s: %s\npacket %s\nparsed %v", *diffSeed, set, workload, i, dir, msg, hex.EncodeToString(pkt), p)
				}
			}
		}
	}
	t.Logf("%d program runs (%d packets), %d malformed packets, %d drops", runs, runs/2, malformed, shot)
	t.Logf("expected events by verdict/reason: %v", seen)
	for _, vr := range [][2]uint8{
		{uint8(engine.VerdictAllow), uint8(engine.ReasonAllowed)}, {uint8(engine.VerdictAllow), uint8(engine.ReasonNotSelected)},
		{uint8(engine.VerdictDeny), uint8(engine.ReasonDenied)}, {uint8(engine.VerdictDeny), uint8(engine.ReasonDefaultDeny)},
		{uint8(engine.VerdictAudit), uint8(engine.ReasonDenied)}, {uint8(engine.VerdictAudit), uint8(engine.ReasonDefaultDeny)},
		{uint8(engine.VerdictDeny), uint8(ReasonMalformed)}, {uint8(engine.VerdictDeny), uint8(ReasonNoEndpoint)},
	} {
		if fails == 0 && *diffSets >= 20 && seen[vr] == 0 {
			t.Errorf("no packet decided %s/%s: the random states exercise too little", engine.Verdict(vr[0]), Reason(vr[1]))
		}
	}
}

// model follows what the programs of one node do with conntrack and
// fragments; the policy decision itself is the oracle's.
type model struct {
	o      oracle
	gen    uint64
	events bool // events for allowed packets are on
	// failClosed, when set, makes the model a workload's programs: a local
	// address without an endpoint entry, but neverOwn, is dropped with
	// reason no-endpoint and the remote's identity, which it returns.
	failClosed func(remote netip.Addr) engine.Identity
	ct         map[ctKey]engine.Verdict
	frags      map[fragKey]parsed
}

func newModel(o oracle, gen uint64, events bool) *model {
	return &model{o: o, gen: gen, events: events, ct: map[ctKey]engine.Verdict{}, frags: map[fragKey]parsed{}}
}

// oracle decides the sides that one node enforces.
type oracle interface {
	// endpoint returns the identity of the enforcement point at address
	// local; false when the node does not enforce local.
	endpoint(local netip.Addr) (engine.Identity, bool)
	// decide decides side dir of the endpoint at local for a packet to or
	// from remote, with the policy port port (no L7 request: the kernel
	// decides at L4); peer is the identity of remote in the node's ipcache.
	decide(dir engine.Direction, local, remote netip.Addr, proto engine.Proto, port uint16) (v engine.Verdict, r engine.Reason, rule engine.RuleID, peer engine.Identity)
}

// stateOracle decides from a map state, as engine.MapState.LookupSide.
type stateOracle struct{ s *engine.MapState }

func (o stateOracle) endpoint(local netip.Addr) (engine.Identity, bool) {
	ep, ok := o.s.Endpoints[local]
	return ep.Identity, ok
}

func (o stateOracle) decide(dir engine.Direction, local, remote netip.Addr, proto engine.Proto, port uint16) (engine.Verdict, engine.Reason, engine.RuleID, engine.Identity) {
	v, r, rule := o.s.LookupSide(dir, local, remote, proto, port, nil)
	return v, r, rule, o.s.Identity(remote)
}

type ctKey struct {
	src, dst     netip.Addr
	sport, dport uint16
	proto        uint8
	dir          engine.Direction
}

type fragKey struct {
	src, dst netip.Addr
	id       uint32
	proto    uint8
}

type outcome struct {
	shot  bool
	event *Event
	// how the side was decided
	how decidedBy
}

type decidedBy uint8

const (
	byNothing   decidedBy = iota // not IP, or the node does not enforce the side
	byMalformed                  // dropped by the parser
	byReply                      // the reply of a connection the other side recorded
	byTracked                    // by policy, with the connection already recorded
	byPolicy                     // by policy, first packet of the connection (or untracked)
)

func (m *model) step(dir engine.Direction, p parsed) outcome {
	switch p.kind {
	case parseNotIP:
		return outcome{}
	case parseMalformed:
		return outcome{shot: true, event: &Event{Verdict: engine.VerdictDeny, Reason: ReasonMalformed, Direction: dir, Generation: m.gen}, how: byMalformed}
	}
	local, remote := p.dst, p.src
	if dir == engine.Egress {
		local, remote = p.src, p.dst
	}
	localID, ok := m.o.endpoint(local)
	if !ok {
		if m.failClosed == nil || neverOwn(local) {
			return outcome{}
		}
		return outcome{shot: true, how: byNothing, event: &Event{Generation: m.gen, Direction: dir, Verdict: engine.VerdictDeny,
			Reason: ReasonNoEndpoint, PeerIdentity: m.failClosed(remote), Src: p.src, Dst: p.dst, Proto: engine.Proto(p.proto),
			SrcPort: p.sport, DstPort: p.dport, Port: p.port}}
	}
	frag := p.fragFirst || p.fragLater
	if frag {
		fk := fragKey{p.src, p.dst, p.fragID, p.proto}
		if p.fragFirst {
			m.frags[fk] = p
		} else if f, ok := m.frags[fk]; ok {
			p.sport, p.dport, p.port, p.icmpType = f.sport, f.dport, f.port, f.icmpType
			p.echoReq, p.echoReply = p.echoReq || f.echoReq, p.echoReply || f.echoReply
		}
	}
	icmp := p.proto == 1 && p.src.Is4() || p.proto == 58 && !p.src.Is4()
	opens, answers := !icmp || p.echoReq, !icmp || p.echoReply
	fwd := ctKey{p.src, p.dst, p.sport, p.dport, p.proto, dir}
	ctV, ctHit := engine.Verdict(0), false
	if opens {
		ctV, ctHit = m.ct[fwd]
	}
	if !ctHit && answers {
		rk := ctKey{p.dst, p.src, p.dport, p.sport, p.proto, dir ^ 1}
		if icmp {
			rk.sport, rk.dport = p.sport, 0
		}
		if _, ok := m.ct[rk]; ok {
			return outcome{how: byReply}
		}
	}
	v, reason, rule, peer := m.o.decide(dir, local, remote, engine.Proto(p.proto), p.port)
	ev := &Event{Generation: m.gen, Direction: dir, Verdict: v, Reason: Reason(reason), Rule: rule,
		LocalIdentity: localID, PeerIdentity: peer, Src: p.src, Dst: p.dst,
		Proto: engine.Proto(p.proto), SrcPort: p.sport, DstPort: p.dport, Port: p.port, Fragment: frag}
	how := byPolicy
	if ctHit {
		how = byTracked
	}
	if v == engine.VerdictDeny {
		if ctHit {
			delete(m.ct, fwd)
		}
		return outcome{shot: true, event: ev, how: how}
	}
	report := v == engine.VerdictAudit
	if opens {
		if ctHit && ctV == v {
			report = false
		}
		m.ct[fwd] = v
	}
	if v == engine.VerdictAllow {
		// Allowed: when the connection's entry is created, or every packet.
		report = m.events || opens && !ctHit
	}
	if !report {
		ev = nil
	}
	return outcome{event: ev, how: how}
}

func (o outcome) compare(ret uint32, ev *Event) string {
	want := actPass
	if o.shot {
		want = actShot
	}
	switch {
	case ret != want:
		return "return " + retName(ret) + ", want " + retName(want) + eventNote(o.event, ev)
	case o.event == nil && ev != nil:
		return "unexpected event" + eventNote(nil, ev)
	case o.event != nil && ev == nil:
		return "missing event" + eventNote(o.event, nil)
	case o.event == nil:
		return ""
	}
	got := withoutHeader(*ev)
	got.Ifindex = 0
	if o.event.Reason == ReasonMalformed {
		got = Event{Generation: got.Generation, Direction: got.Direction, Verdict: got.Verdict, Reason: got.Reason,
			Rule: got.Rule, LocalIdentity: got.LocalIdentity, PeerIdentity: got.PeerIdentity}
	}
	if got != *o.event {
		return "event differs" + eventNote(o.event, ev)
	}
	return ""
}

func retName(r uint32) string {
	if r == actShot {
		return "drop"
	}
	if r == actPass {
		return "pass"
	}
	return "unknown"
}

func eventNote(want, got *Event) string {
	s := ""
	if want != nil {
		s += "\n want event " + eventString(*want)
	}
	if got != nil {
		s += "\n  got event " + eventString(*got)
	}
	return s
}

func eventString(e Event) string {
	return e.Direction.String() + " " + e.Verdict.String() + " " + e.Reason.String() + " rule " +
		itoa(uint64(e.Rule)) + " gen " + itoa(e.Generation) + " ids " + itoa(uint64(e.LocalIdentity)) + "/" + itoa(uint64(e.PeerIdentity)) +
		" " + e.Src.String() + ":" + itoa(uint64(e.SrcPort)) + " > " + e.Dst.String() + ":" + itoa(uint64(e.DstPort)) +
		" proto " + itoa(uint64(e.Proto)) + " port " + itoa(uint64(e.Port)) + map[bool]string{true: " frag", false: ""}[e.Fragment]
}

func itoa(x uint64) string {
	if x == 0 {
		return "0"
	}
	var b []byte
	for ; x > 0; x /= 10 {
		b = append([]byte{byte('0' + x%10)}, b...)
	}
	return string(b)
}

// gen draws one random map state and packets that hit it.
type gen struct {
	r      *rand.Rand
	v4, v6 []netip.Addr
	ids    []engine.Identity
	ports  []uint16
	sent   []packet
}

func newGen(r *rand.Rand) *gen {
	g := &gen{r: r, ids: []engine.Identity{1, 2, 3, 4, 6, 256, 257, 258, 259, 1 << 24, 1<<24 + 1}}
	for i := 0; i < 8; i++ {
		g.v4 = append(g.v4, netip.AddrFrom4([4]byte{10, byte(r.IntN(2)), byte(r.IntN(2)), byte(1 + r.IntN(250))}))
		g.v6 = append(g.v6, netip.AddrFrom16([16]byte{0xfd, 0, 0, byte(r.IntN(2)), 14: byte(r.IntN(2)), 15: byte(1 + r.IntN(250))}))
	}
	g.v4 = append(g.v4, netip.AddrFrom4([4]byte{192, 168, byte(r.IntN(256)), byte(r.IntN(256))}), netip.AddrFrom4([4]byte{8, 8, 8, 8}))
	g.v6 = append(g.v6, netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 15: byte(r.IntN(256))}))
	// One address that is never a workload's own, or is close to one.
	near4 := []netip.Addr{netip.AddrFrom4([4]byte{224, 0, 0, byte(r.IntN(256))}), netip.AddrFrom4([4]byte{239, 255, 255, 255}),
		netip.AddrFrom4([4]byte{255, 255, 255, 255}), netip.IPv4Unspecified(),
		netip.AddrFrom4([4]byte{169, 254, 1, byte(r.IntN(256))}), netip.AddrFrom4([4]byte{240, 0, 0, 1})}
	near6 := []netip.Addr{netip.AddrFrom16([16]byte{0xfe, 0x80 | byte(r.IntN(64)), 15: byte(r.IntN(256))}),
		netip.AddrFrom16([16]byte{0xff, 0x02, 11: 1, 12: 0xff, 15: byte(r.IntN(256))}), netip.IPv6Unspecified(),
		netip.AddrFrom16([16]byte{0xfe, 0xc0, 15: 1}), netip.IPv6Loopback()}
	g.v4 = append(g.v4, near4[r.IntN(len(near4))])
	g.v6 = append(g.v6, near6[r.IntN(len(near6))])
	g.ports = []uint16{0, 22, 53, 80, 443, 1000, 1001, 8080, 65535, uint16(r.IntN(65536))}
	return g
}

func (g *gen) pick(xs []netip.Addr) netip.Addr { return xs[g.r.IntN(len(xs))] }
func (g *gen) id() engine.Identity             { return g.ids[g.r.IntN(len(g.ids))] }
func (g *gen) rule() engine.RuleID {
	if g.r.IntN(5) == 0 {
		return 0
	}
	return engine.RuleID(1 + g.r.Uint32N(5000))
}

var protos = []uint8{6, 6, 17, 17, 132, 1, 58, 47, 0}

func (g *gen) state() *engine.MapState {
	r := g.r
	s := &engine.MapState{
		Endpoints: map[netip.Addr]engine.EndpointEntry{},
		IPCache:   map[netip.Prefix]engine.Identity{},
		Policy:    map[engine.PolicyKey]engine.PolicyEntry{},
	}
	for _, a := range append(append([]netip.Addr{}, g.v4...), g.v6...) {
		if r.IntN(2) == 0 {
			s.Endpoints[a] = engine.EndpointEntry{Identity: g.id(), PolicyID: uint32(1 + r.IntN(4)), Flags: engine.EndpointFlags(r.IntN(16))}
		}
		if r.IntN(5) < 3 {
			bits := a.BitLen()
			switch r.IntN(6) {
			case 0:
				bits -= 8
			case 1:
				bits = r.IntN(bits + 1)
			case 2:
				bits = 0
			}
			p, _ := a.Prefix(bits)
			s.IPCache[p] = g.id()
		}
	}
	for n := r.IntN(80); n > 0; n-- {
		plen := []uint8{24, 24, 24, 16, 8, 0, uint8(r.IntN(25))}[r.IntN(7)]
		v := uint32(protos[r.IntN(len(protos))])<<16 | uint32(g.ports[r.IntN(len(g.ports))])
		v &^= 1<<(24-plen) - 1
		id := engine.Identity(0)
		if r.IntN(3) > 0 {
			id = g.id()
		}
		k := engine.PolicyKey{PolicyID: uint32(1 + r.IntN(4)), Direction: engine.Direction(r.IntN(2)), Identity: id,
			Proto: engine.Proto(v >> 16), Port: uint16(v), PrefixLen: plen}
		e := engine.PolicyEntry{Flags: engine.PolicyFlags(r.IntN(16)), AllowRule: g.rule(), DenyRule: g.rule(),
			AuditRule: g.rule(), AuditAllowRule: g.rule()}
		if r.IntN(4) == 0 {
			e.L7 = engine.L7ID(r.Uint32())
		}
		s.Policy[k] = e
	}
	return s
}

// packet draws a packet: mostly well-formed between addresses of the
// state, some replies of earlier ones, some fragments, options and
// extension headers, and some malformed.
func (g *gen) packet() []byte {
	r := g.r
	var p packet
	if len(g.sent) > 0 && r.IntN(10) == 0 {
		// The reply of an earlier packet.
		p = g.sent[r.IntN(len(g.sent))]
		p.src, p.dst, p.sport, p.dport = p.dst, p.src, p.dport, p.sport
		switch p.icmpType {
		case 8:
			p.icmpType = 0
		case 128:
			p.icmpType = 129
		}
		if p.proto == 1 || p.proto == 58 {
			p.sport = p.dport
			if p.dport == 0 {
				p.sport = uint16(p.src.As16()[15]) // keep an identifier
			}
			p.dport = 0
		}
		return p.build()
	}
	pool := g.v4
	if r.IntN(2) == 0 {
		pool = g.v6
	}
	p.src, p.dst = g.pick(pool), g.pick(pool)
	if r.IntN(8) == 0 {
		b := p.dst.As16()
		b[15] ^= byte(1 + r.IntN(255))
		if p.dst.Is4() {
			p.dst = netip.AddrFrom4([4]byte(b[12:]))
		} else {
			p.dst = netip.AddrFrom16(b)
		}
	}
	if r.IntN(2) == 0 {
		p.src, p.dst = p.dst, p.src
	}
	p.proto = protos[r.IntN(len(protos))]
	p.sport = []uint16{40000, 40001, uint16(r.IntN(65536))}[r.IntN(3)]
	p.dport = g.ports[r.IntN(len(g.ports))]
	if r.IntN(4) == 0 {
		p.dport = uint16(r.IntN(65536))
	}
	p.tcpFlags = []uint8{0x02, 0x10, 0x11, 0x04, 0x18}[r.IntN(5)]
	p.icmpType = []uint8{0, 8, 128, 129, 3, 1, uint8(r.IntN(256))}[r.IntN(7)]
	if p.proto == 1 || p.proto == 58 {
		p.dport = 0
		p.sport = uint16(r.IntN(3))
	}
	p.payload = r.IntN(64)
	switch r.IntN(20) {
	case 0:
		if p.src.Is4() {
			p.ipOptions = 1 + r.IntN(10)
		} else {
			for n := 1 + r.IntN(9); n > 0; n-- {
				p.extHdrs = append(p.extHdrs, []uint8{0, 43, 51, 60}[r.IntN(4)])
			}
		}
	case 1, 2:
		p.fragID = uint32(1 + r.IntN(3))
		p.fragHeader = !p.src.Is4()
		if r.IntN(2) == 0 {
			p.moreFrags = true
		} else {
			p.fragOffset = uint16(1 + r.IntN(100))
			p.moreFrags = r.IntN(2) == 0
		}
	case 3:
		p.etherType = []uint16{0x0806, 0x88cc, 0x8100}[r.IntN(3)]
	}
	g.sent = append(g.sent, p)
	b := p.build()
	if r.IntN(6) == 0 {
		b = g.malform(b)
	}
	return b
}

// malform damages a packet: a cut, a length field, or random header bytes.
func (g *gen) malform(b []byte) []byte {
	r := g.r
	b = append([]byte(nil), b...)
	v4 := binary.BigEndian.Uint16(b[12:]) == 0x0800
	minLen := 14 + 40
	if v4 {
		minLen = 14 + 20 // BPF_PROG_TEST_RUN refuses shorter IP frames
	}
	switch r.IntN(4) {
	case 0:
		if len(b) > minLen {
			b = b[:minLen+r.IntN(len(b)-minLen)]
		}
	case 1:
		off := 14 + 2
		if !v4 {
			off = 14 + 4
		}
		binary.BigEndian.PutUint16(b[off:], uint16(r.IntN(len(b)+20)))
	case 2:
		for n := 1 + r.IntN(3); n > 0; n-- {
			i := 14 + r.IntN(min(len(b)-14, 80))
			b[i] = byte(r.IntN(256))
		}
	case 3:
		b[14] = byte(r.IntN(256))
	}
	return b
}

// neverOwn is the reference for the addresses that the workload programs
// exempt (docs/datapath.md): unspecified, IPv4 limited broadcast and
// multicast, IPv6 link-local unicast and multicast.
func neverOwn(a netip.Addr) bool {
	if a.Is4In6() {
		return false // an IPv6 address, in none of the IPv6 ranges
	}
	return a.IsUnspecified() || a.IsMulticast() || a.Is6() && a.IsLinkLocalUnicast() ||
		a == netip.AddrFrom4([4]byte{255, 255, 255, 255})
}
