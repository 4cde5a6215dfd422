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
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/palisade-dev/palisade/internal/engine"
	"github.com/palisade-dev/palisade/internal/engine/enginetest"
)

// The differential test against the reference evaluator: policy sets from
// enginetest's seeded generator are compiled for each node of their
// cluster (engine.Compile), each node's state is applied to a datapath of
// its own, and packets made from random flows run through the real
// programs: the egress program on the node of the source, the ingress
// program on the node of the destination. Every side's verdict, reason,
// rule and event equal what engine.Evaluate says for the flow the packet
// carries (at L4: the kernel does not see L7 requests), with conntrack and
// fragments followed as docs/datapath.md says; malformed packets are
// dropped with reason malformed.
//
// Policy set i uses seed evalseed+i, so
//
//	go test ./internal/datapath -run TestEvaluateDifferential -datapath.evalseed=S -datapath.evalsets=1
//
// reruns the set of seed S alone.
var (
	evalSeed  = flag.Uint64("datapath.evalseed", 20261124, "seed of the first policy set of TestEvaluateDifferential (set i: seed+i)")
	evalSets  = flag.Int("datapath.evalsets", 200, "policy sets in TestEvaluateDifferential")
	evalFlows = flag.Int("datapath.evalflows", 320, "random flows per policy set in TestEvaluateDifferential")
)

// evalNodes are the nodes of enginetest's clusters.
var evalNodes = []string{"n1", "n2", "cp"}

// The kinds of test packets.
type evalKind uint8

const (
	kindRequest   evalKind = iota // the first packet of a connection
	kindAgain                     // a later packet of the connection
	kindReply                     // a reply of the connection
	kindFragment                  // a later fragment of a request
	kindOrphan                    // a later fragment whose first fragment was not sent
	kindMalformed                 // damaged as docs/datapath.md says the parser refuses
	kindNonIP                     // an ARP frame
	numKinds
)

var kindNames = [numKinds]string{"request", "again", "reply", "fragment", "orphan", "malformed", "non-ip"}

// evalPacket is one test packet and the flow that the evaluator is asked
// about for it.
type evalPacket struct {
	kind     evalKind
	what     string // how it was made
	pkt      []byte
	src, dst netip.Addr
	flow     engine.Flow
	req      *evalPacket // a reply's request
	// Set when the packet has run: it was decided by policy on both
	// sides (no connection state in play), and it passed both.
	fresh, passed bool
}

// evalGen makes the packets of one policy set's flows.
type evalGen struct {
	g      *enginetest.Gen
	sport  uint16 // the next source port, or ICMP echo identifier
	fragID uint32 // the next fragment ID
}

func (eg *evalGen) nextPort() uint16 {
	eg.sport++
	return eg.sport
}

func (eg *evalGen) nextFragID() uint32 {
	eg.fragID++
	return eg.fragID
}

func isICMP(f engine.Flow) bool {
	return f.Proto == engine.ProtoICMP && f.Src.Is4() || f.Proto == engine.ProtoICMPv6 && f.Src.Is6()
}

func isEcho(f engine.Flow) bool {
	return isICMP(f) && (f.Port == 8 && f.Src.Is4() || f.Port == 128 && f.Src.Is6())
}

// base returns the packet that opens a connection of flow f.
func (eg *evalGen) base(f engine.Flow) packet {
	g := eg.g
	p := packet{src: f.Src, dst: f.Dst, proto: uint8(f.Proto), payload: g.Pick(48)}
	switch {
	case isICMP(f):
		p.icmpType = uint8(f.Port)
		p.sport = eg.nextPort() // the echo identifier
	case f.Proto == engine.ProtoTCP || f.Proto == engine.ProtoUDP || f.Proto == engine.ProtoSCTP:
		p.sport, p.dport = eg.nextPort(), f.Port
		p.tcpFlags = 0x02 // SYN
	}
	return p
}

// packets turns one random flow into test packets: the request of its
// connection (plain, with IPv4 options or IPv6 extension headers,
// fragmented, or only a later fragment), now and then another packet of
// the connection, the reply (always for the generator's reply flows), a
// malformed packet or a non-IP frame.
func (eg *evalGen) packets(f engine.Flow) []*evalPacket {
	g := eg.g
	reply := f.Reply
	f.Reply, f.Request = false, nil // the kernel decides at L4
	if reply {
		f.Src, f.Dst = f.Dst, f.Src // the request of the connection
	}
	switch {
	case f.Proto == engine.ProtoTCP && g.Chance(0.03):
		f.Proto, f.Port = 47, 0 // GRE: a protocol without ports
	case f.Proto == engine.ProtoICMPv6 && g.Chance(0.05):
		f.Proto, f.Port = engine.ProtoICMP, 0 // ICMP in IPv6 is not ICMPv6: port 0
	}
	var out []*evalPacket
	add := func(kind evalKind, what string, p packet, flow engine.Flow) *evalPacket {
		ep := &evalPacket{kind: kind, what: what, pkt: p.build(), src: p.src, dst: p.dst, flow: flow}
		out = append(out, ep)
		return ep
	}
	p := eg.base(f)
	var req *evalPacket
	switch k := g.Pick(100); {
	case k < 10:
		if p.src.Is4() {
			p.ipOptions = 1 + g.Pick(10)
		} else {
			for n := 1 + g.Pick(7); n > 0; n-- {
				p.extHdrs = append(p.extHdrs, enginetest.PickOf(g, uint8(0), 43, 51, 60))
			}
		}
		req = add(kindRequest, fmt.Sprintf("request, %d option words, extension headers %v", p.ipOptions, p.extHdrs), p, f)
	case k < 18:
		p.fragID, p.fragHeader, p.moreFrags = eg.nextFragID(), p.src.Is6(), true
		if p.src.Is6() && g.Chance(0.3) {
			p.extHdrs = []uint8{0, 60}[:1+g.Pick(2)] // before the fragment header
		}
		req = add(kindRequest, fmt.Sprintf("first fragment, extension headers %v", p.extHdrs), p, f)
		later := p
		later.fragOffset, later.moreFrags = uint16(1+g.Pick(100)), g.Chance(0.5)
		add(kindFragment, "later fragment", later, f)
	case k < 21:
		p.fragID, p.fragHeader = eg.nextFragID(), p.src.Is6()
		p.fragOffset, p.moreFrags = uint16(1+g.Pick(100)), g.Chance(0.5)
		of := f
		of.Port = 0 // no first fragment: decided with port 0
		add(kindOrphan, "later fragment without its first", p, of)
		return out
	default:
		req = add(kindRequest, "request", p, f)
	}
	if g.Chance(0.3) {
		again := p
		again.fragID, again.fragHeader, again.moreFrags, again.fragOffset = 0, false, false, 0
		again.tcpFlags = 0x10 // ACK
		add(kindAgain, "another packet of the connection", again, f)
	}
	if (reply || g.Chance(0.1)) && (!isICMP(f) || isEcho(f)) {
		r := packet{src: f.Dst, dst: f.Src, proto: p.proto, sport: p.dport, dport: p.sport, tcpFlags: 0x12, payload: g.Pick(48)}
		if isICMP(f) {
			r.sport, r.dport, r.icmpType = p.sport, 0, 129 // echo reply: same identifier
			if f.Src.Is4() {
				r.icmpType = 0
			}
		}
		rf := engine.Flow{Src: f.Dst, Dst: f.Src, Proto: f.Proto, Port: f.Port, Reply: true}
		add(kindReply, "reply", r, rf).req = req
	}
	if g.Chance(0.1) {
		mp := eg.base(f)
		mp.payload = 8 + g.Pick(40)
		b, what := eg.malform(mp)
		out = append(out, &evalPacket{kind: kindMalformed, what: what, pkt: b, src: f.Src, dst: f.Dst})
	}
	if g.Chance(0.01) {
		np := eg.base(f)
		np.etherType = 0x0806
		add(kindNonIP, "ARP frame", np, engine.Flow{})
	}
	return out
}

// malform builds p damaged in one of the ways the parser refuses.
func (eg *evalGen) malform(p packet) ([]byte, string) {
	g := eg.g
	l4min := map[uint8]int{6: 20, 17: 8, 132: 12, 1: 8, 58: 8}[p.proto]
	if (p.proto == 1) != p.src.Is4() && (p.proto == 1 || p.proto == 58) {
		l4min = 0 // ICMP in IPv6 or ICMPv6 in IPv4: no header is parsed
	}
	if p.src.Is4() {
		b := p.build()
		ip := b[14:]
		switch k := g.Pick(6); {
		case k == 0 && l4min > 0:
			n := g.Pick(l4min)
			binary.BigEndian.PutUint16(ip[2:], uint16(20+n))
			return b[:14+20+n], fmt.Sprintf("L4 header truncated to %d bytes", n)
		case k == 1 && p.proto == 6:
			ip[20+12] = byte(g.Pick(5)) << 4
			return b, "TCP data offset below 5"
		case k == 2:
			binary.BigEndian.PutUint16(ip[2:], uint16(len(ip)+1+g.Pick(100)))
			return b, "total length past the frame"
		case k == 3:
			binary.BigEndian.PutUint16(ip[2:], uint16(1+g.Pick(19)))
			return b, "total length below the header"
		case k == 4:
			ip[0] = 0x40 | byte(g.Pick(5))
			return b, "IHL below 5"
		default:
			ip[0] = byte(enginetest.PickOf(g, 0, 1, 5, 6, 15))<<4 | 5
			return b, "IP version is not 4"
		}
	}
	switch k := g.Pick(6); {
	case k == 0 && l4min > 0:
		b := p.build()
		n := g.Pick(l4min)
		binary.BigEndian.PutUint16(b[14+4:], uint16(n))
		return b[:14+40+n], fmt.Sprintf("L4 header truncated to %d bytes", n)
	case k == 1 && p.proto == 6:
		b := p.build()
		b[14+40+12] = byte(g.Pick(5)) << 4
		return b, "TCP data offset below 5"
	case k == 2:
		p.extHdrs = []uint8{0, 60, 43, 60, 51, 60, 43, 60, 60}
		return p.build(), "nine extension headers"
	case k == 3:
		p.extHdrs = []uint8{60}
		b := p.build()
		b[14+40+1] = byte(100 + g.Pick(156)) // the header runs past the payload
		return b, "extension header past the payload"
	case k == 4:
		b := p.build()
		binary.BigEndian.PutUint16(b[14+4:], uint16(len(b)-14-40+1+g.Pick(100)))
		return b, "payload length past the frame"
	default:
		b := p.build()
		b[14] = byte(enginetest.PickOf(g, 0, 4, 5, 7, 15))<<4 | b[14]&0xf
		return b, "IP version is not 6"
	}
}

// evalOracle decides one node's sides with the reference evaluator. The
// peer identity of events is the one the node's compiled ipcache gives
// (the evaluator has no identities for CIDRs).
type evalOracle struct {
	ir    *engine.IR
	c     *engine.Cluster
	ids   engine.IdentityTable
	node  string
	state *engine.MapState
}

func (o *evalOracle) endpoint(a netip.Addr) (engine.Identity, bool) {
	if e, ok := o.c.EndpointByIP(a); ok {
		if e.Unmanaged || e.Node != o.node {
			return 0, false
		}
		id, ok := o.ids.Lookup(o.c.WorkloadLabels(e))
		if !ok {
			panic("no identity for " + e.ID())
		}
		return id, true
	}
	if n, ok := o.c.NodeByIP(a); ok && n.Name == o.node {
		if slices.Contains(o.c.APIServer, a) {
			return engine.IdentityHostAPIServer, true
		}
		return engine.IdentityHost, true
	}
	return 0, false
}

func (o *evalOracle) decide(dir engine.Direction, local, remote netip.Addr, proto engine.Proto, port uint16) (engine.Verdict, engine.Reason, engine.RuleID, engine.Identity) {
	s := evaluateSide(o.ir, o.c, dir, local, remote, proto, port)
	rule := engine.RuleID(0)
	if s.Rule != nil {
		rule = s.Rule.ID
	}
	return s.Verdict, s.Reason, rule, o.state.Identity(remote)
}

// evaluateSide is the evaluator's decision of side dir at local.
func evaluateSide(ir *engine.IR, c *engine.Cluster, dir engine.Direction, local, remote netip.Addr, proto engine.Proto, port uint16) engine.Side {
	f := engine.Flow{Src: local, Dst: remote, Proto: proto, Port: port}
	if dir == engine.Ingress {
		f.Src, f.Dst = remote, local
	}
	res := engine.Evaluate(ir, c, f)
	if dir == engine.Ingress {
		return res.Ingress
	}
	return res.Egress
}

// enforcingNode is the node that enforces addr: a managed workload's node
// or the node owning the address; "" when none does.
func enforcingNode(c *engine.Cluster, addr netip.Addr) string {
	if e, ok := c.EndpointByIP(addr); ok {
		if e.Unmanaged {
			return ""
		}
		return e.Node
	}
	if n, ok := c.NodeByIP(addr); ok {
		return n.Name
	}
	return ""
}

type evalNode struct {
	d  *Datapath
	er *EventReader
	m  *model
}

// openEvalNodes opens a datapath for each node.
func openEvalNodes(t *testing.T) map[string]*evalNode {
	nodes := map[string]*evalNode{}
	for _, name := range evalNodes {
		d := openTest(t, nil)
		er, err := d.Events()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { er.Close() })
		nodes[name] = &evalNode{d: d, er: er}
	}
	return nodes
}

type evalStats struct {
	sets, eventsOff, flows, runs, fresh, replies int
	packets                                      [numKinds]int
	sides                                        map[string]int // verdict/reason of sides decided by policy
	failures                                     int
}

func (s *evalStats) add(o *evalStats) {
	s.sets += o.sets
	s.eventsOff += o.eventsOff
	s.flows += o.flows
	s.runs += o.runs
	s.fresh += o.fresh
	s.replies += o.replies
	s.failures += o.failures
	for k, n := range o.packets {
		s.packets[k] += n
	}
	for k, n := range o.sides {
		s.sides[k] += n
	}
}

// TestEvaluateDifferential: see the comment on evalSeed.
func TestEvaluateDifferential(t *testing.T) {
	requireKernel(t)
	t.Logf("seeds %d to %d: %d policy sets × %d flows (-datapath.evalseed=S -datapath.evalsets=1 reruns set S)",
		*evalSeed, *evalSeed+uint64(*evalSets)-1, *evalSets, *evalFlows)
	// Two workers, each with datapaths of its own, take every other set:
	// the time goes to Apply waiting for RCU grace periods, which the
	// workers share.
	const workers = 2
	var stats [workers]*evalStats
	t.Run("sets", func(t *testing.T) {
		for w := range workers {
			st := &evalStats{sides: map[string]int{}}
			stats[w] = st
			t.Run(fmt.Sprintf("worker%d", w), func(t *testing.T) {
				t.Parallel()
				nodes := openEvalNodes(t)
				for i := w; i < *evalSets && st.failures < 5; i += workers {
					runEvalSet(t, nodes, *evalSeed+uint64(i), st)
				}
			})
		}
	})
	st := stats[0]
	for _, o := range stats[1:] {
		st.add(o)
	}
	total := 0
	for _, n := range st.packets {
		total += n
	}
	var kinds []string
	for k, n := range st.packets {
		kinds = append(kinds, fmt.Sprintf("%s %d", kindNames[k], n))
	}
	t.Logf("%d sets (%d with events for allowed packets off), %d flows, %d packets (%s), %d program runs",
		st.sets, st.eventsOff, st.flows, total, strings.Join(kinds, ", "), st.runs)
	t.Logf("%d packets decided by policy on both sides equal engine.Evaluate's verdict; %d replies of connections allowed on both sides passed", st.fresh, st.replies)
	t.Logf("sides decided by policy, by verdict/reason: %v", st.sides)
	if st.failures > 0 || *evalSets < 20 {
		return
	}
	for _, vr := range []string{"allow/allowed", "allow/not-selected", "deny/denied", "deny/default-deny", "audit/denied", "audit/default-deny"} {
		if st.sides[vr] == 0 {
			t.Errorf("no side was decided %s: the random policy sets exercise too little", vr)
		}
	}
	for k, n := range st.packets {
		if n == 0 {
			t.Errorf("no %s packet was sent", kindNames[k])
		}
	}
	if st.replies == 0 || st.eventsOff == 0 {
		t.Errorf("%d replies, %d sets with events off: want some of each", st.replies, st.eventsOff)
	}
}

// withoutDNSRules drops the DNS rules of the IR's L7 rules: the kernel
// decides every DNS query on a port with DNS rules (TestDNSDifferential
// checks those), while this test compares at L4, with packets that carry
// no DNS message. L7 rules left without rules still restrict requests, as
// HTTP rules do, and are decided at L4 here.
func withoutDNSRules(ir *engine.IR) *engine.IR {
	for _, p := range ir.Policies {
		for _, r := range p.Rules {
			for i := range r.L4 {
				if l7 := r.L4[i].L7; l7 != nil && len(l7.DNS) > 0 {
					c := *l7
					c.DNS = nil
					r.L4[i].L7 = &c
				}
			}
		}
	}
	return ir
}

// runEvalSet runs the policy set of seed.
func runEvalSet(t *testing.T, nodes map[string]*evalNode, seed uint64, st *evalStats) {
	t.Helper()
	g := enginetest.New(seed)
	c := g.Cluster()
	if err := c.Index(); err != nil {
		t.Fatalf("seed %d: cluster: %v", seed, err)
	}
	ir := withoutDNSRules(enginetest.IR(g.Policies(1 + g.Pick(8))))
	ids := engine.NewMemoryAllocator()
	if err := engine.AllocateIdentities(c, ids); err != nil {
		t.Fatal(err)
	}
	// One set in four runs with events for allowed packets off, so that
	// later packets of allowed connections take the fast path.
	events := seed%4 != 3
	st.sets++
	if !events {
		st.eventsOff++
	}
	states := make([]*engine.MapState, len(evalNodes))
	for i, name := range evalNodes {
		s, err := engine.Compile(ir, c, name, ids)
		if err != nil {
			t.Fatalf("seed %d: compile for node %s: %v", seed, name, err)
		}
		states[i] = s
	}
	// The nodes apply at once: an Apply is mostly waiting for RCU grace
	// periods, which concurrent waiters share.
	errs := make([]error, len(evalNodes))
	var wg sync.WaitGroup
	for i, name := range evalNodes {
		wg.Go(func() { errs[i] = nodes[name].d.Apply(context.Background(), states[i]) })
	}
	wg.Wait()
	for i, name := range evalNodes {
		if errs[i] != nil {
			t.Fatalf("seed %d: node %s: Apply: %v", seed, name, errs[i])
		}
		n := nodes[name]
		if err := n.d.SetEventsAllowed(events); err != nil {
			t.Fatal(err)
		}
		clearTracking(t, n.d)
		// The answers of the cluster's DNS, as if the node had seen them.
		seedFQDN(t, n.d, states[i])
		n.m = newModel(&evalOracle{ir: ir, c: c, ids: ids, node: name, state: states[i]}, n.d.Generation(), events)
	}

	failed := 0
	fail := func(ep *evalPacket, format string, args ...any) {
		t.Helper()
		st.failures++
		if failed == 0 {
			t.Errorf("seed %d (rerun: go test ./internal/datapath -run TestEvaluateDifferential -datapath.evalseed=%d -datapath.evalsets=1)\npolicies:\n%scluster:\n%s",
				seed, seed, enginetest.FormatPolicies(ir), enginetest.FormatCluster(c, ids))
		}
		failed++
		flow := "-"
		if ep.flow.Src.IsValid() {
			flow = enginetest.FormatFlow(ep.flow)
		}
		t.Errorf("seed %d: %s packet (%s), flow %s: %s\npacket %s\nparsed %v", seed, kindNames[ep.kind], ep.what, flow,
			fmt.Sprintf(format, args...), hex.EncodeToString(ep.pkt), refParse(ep.pkt))
	}

	fp := enginetest.NewFlowPool(c, ir)
	eg := &evalGen{g: g, sport: 32767}
	for range *evalFlows {
		st.flows++
		for _, ep := range eg.packets(g.Flow(fp)) {
			st.packets[ep.kind]++
			runEvalPacket(t, nodes, c, ir, ep, st, fail)
			if failed >= 3 {
				return
			}
		}
	}
}

// runEvalPacket runs ep through the egress program of its source's node
// and the ingress program of its destination's node, and checks each side
// against the model (the evaluator, conntrack, fragments) and, when both
// sides are decided by policy, the verdicts against engine.Evaluate's.
func runEvalPacket(t *testing.T, nodes map[string]*evalNode, c *engine.Cluster, ir *engine.IR, ep *evalPacket, st *evalStats, fail func(*evalPacket, string, ...any)) {
	t.Helper()
	p := refParse(ep.pkt)
	switch ep.kind {
	case kindMalformed:
		if p.kind != parseMalformed {
			t.Fatalf("test bug: %s packet %x parses as %+v", ep.what, ep.pkt, p)
		}
	case kindNonIP:
		if p.kind != parseNotIP {
			t.Fatalf("test bug: %s packet %x parses as %+v", ep.what, ep.pkt, p)
		}
	default:
		if p.kind != parseOK || p.src != ep.flow.Src || p.dst != ep.flow.Dst || p.proto != uint8(ep.flow.Proto) ||
			ep.kind != kindReply && ep.kind != kindFragment && p.port != ep.flow.Port {
			t.Fatalf("test bug: %s packet of flow %s parses as %+v", ep.what, enginetest.FormatFlow(ep.flow), p)
		}
	}

	var outs [2]outcome
	var kernel [2]engine.Verdict
	for _, dir := range []engine.Direction{engine.Egress, engine.Ingress} {
		local, other := ep.src, ep.dst
		if dir == engine.Ingress {
			local, other = ep.dst, ep.src
		}
		node := enforcingNode(c, local)
		if node == "" {
			node = enforcingNode(c, other) // a node with policy that must not enforce local
		}
		if node == "" {
			node = evalNodes[0]
		}
		n := nodes[node]
		want := n.m.step(dir, p)
		ret, ev := run(t, n.d, n.er, dir, ep.pkt)
		st.runs++
		if msg := want.compare(ret, ev); msg != "" {
			fail(ep, "%s at node %s: %s", dir, node, msg)
		}
		outs[dir] = want
		switch {
		case ret == actShot:
			kernel[dir] = engine.VerdictDeny
		case ev != nil && ev.Verdict == engine.VerdictAudit:
			kernel[dir] = engine.VerdictAudit
		}
		if want.how == byPolicy && want.event != nil {
			st.sides[want.event.Verdict.String()+"/"+want.event.Reason.String()]++
		}
	}
	if ep.kind == kindMalformed || ep.kind == kindNonIP {
		return
	}

	// The packet as a whole: when no connection state is in play, the
	// kernel's verdict on each side and overall is the evaluator's.
	freshSide := func(o outcome) bool { return o.how == byPolicy || o.how == byNothing }
	if freshSide(outs[engine.Egress]) && freshSide(outs[engine.Ingress]) && ep.kind != kindReply {
		want := engine.Evaluate(ir, c, ep.flow)
		got := engine.VerdictAllow
		switch {
		case kernel[engine.Egress] == engine.VerdictDeny || kernel[engine.Ingress] == engine.VerdictDeny:
			got = engine.VerdictDeny
		case kernel[engine.Egress] == engine.VerdictAudit || kernel[engine.Ingress] == engine.VerdictAudit:
			got = engine.VerdictAudit
		}
		if got != want.Verdict || kernel[engine.Egress] != want.Egress.Verdict || kernel[engine.Ingress] != want.Ingress.Verdict {
			fail(ep, "kernel %s (egress %s, ingress %s), evaluator %s (egress %s %s at %q, ingress %s %s at %q)", got,
				kernel[engine.Egress], kernel[engine.Ingress], want.Verdict, want.Egress.Verdict, want.Egress.Reason, want.Egress.Endpoint,
				want.Ingress.Verdict, want.Ingress.Reason, want.Ingress.Endpoint)
		}
		st.fresh++
		ep.fresh, ep.passed = true, got != engine.VerdictDeny
	}
	// The reply of a connection that both sides passed passes both, as the
	// evaluator says of replies.
	if ep.kind == kindReply && ep.req != nil && ep.req.fresh && ep.req.passed {
		want := engine.Evaluate(ir, c, ep.flow)
		if want.Verdict == engine.VerdictDeny || kernel[engine.Egress] == engine.VerdictDeny || kernel[engine.Ingress] == engine.VerdictDeny {
			fail(ep, "reply of a passed connection: kernel egress %s, ingress %s; evaluator %s", kernel[engine.Egress], kernel[engine.Ingress], want.Verdict)
		}
		st.replies++
	}
}
