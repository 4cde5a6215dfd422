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
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"

	"github.com/palisade-dev/palisade/internal/engine"
)

// runOn runs prog on a packet and returns its return code and the event it
// reported, if any (run, for a program of the caller's choice).
func runOn(t testing.TB, prog *ebpf.Program, er *EventReader, pkt []byte) (uint32, *Event) {
	t.Helper()
	ret, err := prog.Run(&ebpf.RunOptions{Data: pkt})
	if err != nil {
		t.Fatalf("run %s: %v", prog, err)
	}
	er.SetDeadline(time.Now().Add(-time.Second))
	ev, err := er.Read()
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return ret, nil
	}
	if err != nil {
		t.Fatalf("read event: %v", err)
	}
	if _, err := er.Read(); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("one packet made more than one event (%v)", err)
	}
	return ret, &ev
}

// exemptPackets are packets whose local address can never be a workload's
// own: a workload's programs pass them without an endpoint entry. The
// workload (the local side) is 10.0.0.9 / fd00::9 / fe80::9.
func exemptPackets() []struct {
	name string
	dir  engine.Direction
	pkt  packet
} {
	icmp6 := func(src, dst string, typ uint8) packet {
		return packet{src: addr(src), dst: addr(dst), proto: 58, icmpType: typ, payload: 16}
	}
	eg, in := engine.Egress, engine.Ingress
	return []struct {
		name string
		dir  engine.Direction
		pkt  packet
	}{
		{"neighbour solicitation to the solicited-node group", in, icmp6("fe80::1", "ff02::1:ff00:9", 135)},
		{"neighbour solicitation from a global address", in, icmp6("fd00::1", "ff02::1:ff00:9", 135)},
		{"neighbour advertisement from link-local", eg, icmp6("fe80::9", "fe80::1", 136)},
		{"neighbour solicitation to link-local (unicast probe)", in, icmp6("fe80::1", "fe80::9", 135)},
		{"duplicate address detection from ::", eg, icmp6("::", "ff02::1:ff00:9", 135)},
		{"router solicitation", eg, icmp6("fe80::9", "ff02::2", 133)},
		{"router advertisement to all nodes", in, icmp6("fe80::1", "ff02::1", 134)},
		{"mldv2 report from ::", eg, icmp6("::", "ff02::16", 143)},
		{"link-local fe80::/10 upper end", in, icmp6("fe80::1", "febf::9", 128)},
		{"ipv6 link-local udp (dhcpv6)", eg, packet{src: addr("fe80::9"), dst: addr("ff02::1:2"), proto: 17, sport: 546, dport: 547}},
		{"dhcp discover from 0.0.0.0", eg, packet{src: addr("0.0.0.0"), dst: addr("255.255.255.255"), proto: 17, sport: 68, dport: 67}},
		{"dhcp offer to broadcast", in, packet{src: addr("10.0.0.1"), dst: addr("255.255.255.255"), proto: 17, sport: 67, dport: 68}},
		{"igmp query to all systems", in, packet{src: addr("10.0.0.1"), dst: addr("224.0.0.1"), proto: 2}},
		{"mdns to 224.0.0.251", in, packet{src: addr("10.0.0.1"), dst: addr("224.0.0.251"), proto: 17, sport: 5353, dport: 5353}},
		{"ipv4 multicast upper end", in, packet{src: addr("10.0.0.1"), dst: addr("239.255.255.255"), proto: 17, sport: 1, dport: 2}},
	}
}

// TestWorkloadProgramFailsClosed: on a workload's interface a packet whose
// local address has no endpoint entry is dropped and reported, but for the
// exempt addresses; the host program passes the same packets, and both
// decide a packet of an endpoint alike.
func TestWorkloadProgramFailsClosed(t *testing.T) {
	d := openTest(t, nil)
	if err := d.Apply(context.Background(), tableState()); err != nil {
		t.Fatal(err)
	}
	er, err := d.Events()
	if err != nil {
		t.Fatal(err)
	}
	defer er.Close()
	eg, in := engine.Egress, engine.Ingress
	A, B, X, X6 := addr("10.0.0.1"), addr("10.0.0.2"), addr("10.0.0.9"), addr("fd00::9")
	udp := func(src, dst netip.Addr, dport uint16) packet {
		return packet{src: src, dst: dst, proto: 17, sport: 4000, dport: dport, payload: 8}
	}
	noEndpoint := func(dir engine.Direction, peer engine.Identity, sport, dport, port uint16) Event {
		return Event{Generation: 1, Verdict: engine.VerdictDeny, Reason: ReasonNoEndpoint, Direction: dir,
			PeerIdentity: peer, SrcPort: sport, DstPort: dport, Port: port}
	}

	misses := []struct {
		name string
		dir  engine.Direction
		pkt  packet
		ev   Event
	}{
		{"egress of an unknown workload to an endpoint", eg, udp(X, B, 53), noEndpoint(eg, 257, 4000, 53, 53)},
		{"egress of an unknown workload to world", eg, udp(X, addr("1.1.1.1"), 53), noEndpoint(eg, engine.IdentityWorld, 4000, 53, 53)},
		{"ingress to an unknown workload", in, udp(A, X, 80), noEndpoint(in, 256, 4000, 80, 80)},
		{"ipv6 ingress to an unknown workload", in, udp(addr("fd00::1"), X6, 80), noEndpoint(in, 256, 4000, 80, 80)},
		{"icmpv6 echo to an unknown workload", in, packet{src: addr("fd00::1"), dst: X6, proto: 58, icmpType: 128, sport: 7},
			noEndpoint(in, 256, 7, 0, 128)},
		// Near the exempt ranges, and not in them.
		{"ipv4 link-local is not exempt", in, udp(A, addr("169.254.1.9"), 80), noEndpoint(in, 256, 4000, 80, 80)},
		{"240.0.0.0/4 is not multicast", in, udp(A, addr("240.0.0.9"), 80), noEndpoint(in, 256, 4000, 80, 80)},
		{"site-local fec0::/10 is not link-local", in, udp(addr("fd00::1"), addr("fec0::9"), 80), noEndpoint(in, 256, 4000, 80, 80)},
		{"::1 is not unspecified", eg, udp(addr("::1"), addr("fd00::1"), 80), noEndpoint(eg, 256, 4000, 80, 80)},
		{"a subnet's broadcast is no exemption", in, udp(A, addr("10.0.0.255"), 80), noEndpoint(in, 256, 4000, 80, 80)},
	}
	before, err := d.Counters()
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range misses {
		t.Run("workload/"+c.name, func(t *testing.T) {
			clearTracking(t, d)
			ret, ev := runOn(t, d.workloadProgram(c.dir), er, c.pkt.build())
			if ret != actShot {
				t.Errorf("return %d, want shot", int32(ret))
			}
			if ev == nil {
				t.Fatalf("no event, want %+v", c.ev)
			}
			got := withoutHeader(*ev)
			if got.Src != c.pkt.src || got.Dst != c.pkt.dst {
				t.Errorf("event addresses %s -> %s, want %s -> %s", got.Src, got.Dst, c.pkt.src, c.pkt.dst)
			}
			got.Ifindex, got.Src, got.Dst, got.Proto = 0, netip.Addr{}, netip.Addr{}, 0
			if got != c.ev {
				t.Errorf("event\n got %+v\nwant %+v", got, c.ev)
			}
		})
		t.Run("host/"+c.name, func(t *testing.T) {
			clearTracking(t, d)
			if ret, ev := runOn(t, d.program(c.dir), er, c.pkt.build()); ret != actPass || ev != nil {
				t.Errorf("host program: return %d, event %v; want pass, no event", int32(ret), ev)
			}
		})
	}
	for _, c := range exemptPackets() {
		t.Run("exempt/"+c.name, func(t *testing.T) {
			clearTracking(t, d)
			for _, prog := range []*ebpf.Program{d.workloadProgram(c.dir), d.program(c.dir)} {
				if ret, ev := runOn(t, prog, er, c.pkt.build()); ret != actPass || ev != nil {
					t.Errorf("%s: return %d, event %v; want pass, no event", prog, int32(ret), ev)
				}
			}
		})
	}
	after, err := d.Counters()
	if err != nil {
		t.Fatal(err)
	}
	exempt := uint64(len(exemptPackets()))
	if n := after.NoEndpoint - before.NoEndpoint; n != uint64(len(misses)) {
		t.Errorf("NoEndpoint counted %d, want %d", n, len(misses))
	}
	// Host misses and exempt packets (on both programs) are not enforced.
	if n := after.NotEnforced - before.NotEnforced; n != uint64(len(misses))+2*exempt {
		t.Errorf("NotEnforced counted %d, want %d", n, uint64(len(misses))+2*exempt)
	}
	if after.Denied != before.Denied {
		t.Errorf("Denied counted %d: a missing endpoint is not a policy drop", after.Denied-before.Denied)
	}

	// An endpoint's packets are decided by policy on both programs alike,
	// malformed ones dropped as such.
	if err := d.SetEventsAllowed(true); err != nil {
		t.Fatal(err)
	}
	defer d.SetEventsAllowed(false)
	same := []struct {
		name string
		dir  engine.Direction
		pkt  []byte
	}{
		{"allowed", eg, packet{src: A, dst: B, proto: 6, sport: 1, dport: 80, tcpFlags: 0x02}.build()},
		{"default deny", eg, packet{src: A, dst: B, proto: 6, sport: 1, dport: 81, tcpFlags: 0x02}.build()},
		{"ingress allowed", in, packet{src: A, dst: B, proto: 6, sport: 1, dport: 5000, tcpFlags: 0x02}.build()},
		{"malformed of an unknown address", eg, mutate(udp(X, B, 53).build(), func(b []byte) []byte { b[14] = 0x44; return b })},
	}
	for _, c := range same {
		t.Run("same/"+c.name, func(t *testing.T) {
			clearTracking(t, d)
			hret, hev := runOn(t, d.program(c.dir), er, c.pkt)
			clearTracking(t, d)
			wret, wev := runOn(t, d.workloadProgram(c.dir), er, c.pkt)
			if hret != wret || (hev == nil) != (wev == nil) || hev != nil && withoutHeader(*hev) != withoutHeader(*wev) {
				t.Errorf("host program: %d %v; workload program: %d %v", int32(hret), hev, int32(wret), wev)
			}
		})
	}
}

// TestWorkloadProgramNoState: before the first generation a workload's
// programs drop (but the exempt addresses) and the host's pass.
func TestWorkloadProgramNoState(t *testing.T) {
	d := openTest(t, nil)
	er, err := d.Events()
	if err != nil {
		t.Fatal(err)
	}
	defer er.Close()
	pkt := packet{src: addr("10.0.0.1"), dst: addr("10.0.0.2"), proto: 6, sport: 1, dport: 80, tcpFlags: 0x02}
	ret, ev := runOn(t, d.workloadProgram(engine.Egress), er, pkt.build())
	if ret != actShot || ev == nil {
		t.Fatalf("workload program before the first Apply: return %d, event %v; want shot and an event", int32(ret), ev)
	}
	want := Event{Verdict: engine.VerdictDeny, Reason: ReasonNoState, Direction: engine.Egress, Src: pkt.src, Dst: pkt.dst,
		Proto: engine.ProtoTCP, SrcPort: 1, DstPort: 80, Port: 80}
	got := withoutHeader(*ev)
	got.Ifindex = 0
	if got != want {
		t.Errorf("event\n got %+v\nwant %+v", got, want)
	}
	if ret, ev := runOn(t, d.program(engine.Egress), er, pkt.build()); ret != actPass || ev != nil {
		t.Errorf("host program before the first Apply: return %d, event %v; want pass", int32(ret), ev)
	}
	for _, c := range exemptPackets() {
		if ret, ev := runOn(t, d.workloadProgram(c.dir), er, c.pkt.build()); ret != actPass || ev != nil {
			t.Errorf("%s before the first Apply: return %d, event %v; want pass", c.name, int32(ret), ev)
		}
	}
	c, err := d.Counters()
	if err != nil {
		t.Fatal(err)
	}
	n := uint64(len(exemptPackets()))
	if c.NoState != n+2 || c.NoEndpoint != 1 || c.NotEnforced != 0 {
		t.Errorf("counters %+v, want NoState %d, NoEndpoint 1", c, n+2)
	}
}

// TestWorkloadLinkSwap: a workload's links run the workload programs; one
// swapped for the host program (which fails open) is a problem that
// RepairWorkload mends.
func TestWorkloadLinkSwap(t *testing.T) {
	d := openTest(t, nil)
	ns := newTestNetns(t, "palfcs")
	ifW, ifH := ns.veth(t, "wl0", "hs0")
	ns.do(t, func() {
		if err := d.AttachWorkload(ifW); err != nil {
			t.Fatal(err)
		}
		if err := d.AttachHost(ifH); err != nil {
			t.Fatal(err)
		}
	})
	atts, err := d.Attachments()
	if err != nil || len(atts) != 4 {
		t.Fatalf("attachments %v (%v), want 4", atts, err)
	}
	for _, a := range atts {
		if a.Workload() != (a.Ifindex == ifW) {
			t.Errorf("attachment %+v: Workload() = %v", a, a.Workload())
		}
		want := d.program(a.Direction)
		if a.Workload() {
			want = d.workloadProgram(a.Direction)
		}
		if got := linkProgram(t, d.pinDir, a); got != progID(t, want) {
			t.Errorf("attachment %+v runs program %d, want %s (%d)", a, got, want, progID(t, want))
		}
	}
	if p := d.CheckWorkload(ifW); len(p) != 0 {
		t.Fatalf("fresh workload attachment has problems: %v", p)
	}
	if p := d.CheckHost(ifH); len(p) != 0 {
		t.Fatalf("fresh host attachment has problems: %v", p)
	}

	// The host program, loaded by Palisade itself, is no workload's.
	pin := linkPin(d.pinDir, ifW, HookIngress, engine.Egress)
	l, err := link.LoadPinnedLink(pin, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Update(d.program(engine.Egress)); err != nil {
		t.Fatal(err)
	}
	l.Close()
	probs := d.CheckWorkload(ifW)
	if len(probs) != 1 || !strings.Contains(probs[0].What, "not Palisade's workload egress program") {
		t.Fatalf("swapped program: problems %v, want one naming the workload program", probs)
	}
	if err := d.RepairWorkload(ifW); err != nil {
		t.Fatal(err)
	}
	if p := d.CheckWorkload(ifW); len(p) != 0 {
		t.Fatalf("after repair: %v", p)
	}
	// A host interface running the workload program is a problem too.
	l, err = link.LoadPinnedLink(linkPin(d.pinDir, ifH, HookEgress, engine.Egress), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Update(d.workloadProgram(engine.Egress)); err != nil {
		t.Fatal(err)
	}
	l.Close()
	if p := d.CheckHost(ifH); len(p) != 1 {
		t.Fatalf("host interface with the workload program: problems %v, want one", p)
	}
}

// TestAdoptOlderAgentLinks: an older agent ran the host programs on
// workloads' links and had fewer counters; Open adopts its pins, carries
// the counters over and puts the workload programs on those links.
func TestAdoptOlderAgentLinks(t *testing.T) {
	pin := tempPinDir(t)
	d1, err := Open(pin, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := d1.Apply(context.Background(), tableState()); err != nil {
		t.Fatal(err)
	}
	ns := newTestNetns(t, "palfca")
	ifW, _ := ns.veth(t, "wl0", "hs0")
	ns.do(t, func() {
		if err := d1.AttachWorkload(ifW); err != nil {
			t.Fatal(err)
		}
	})
	// What the older agent left: its program (no workload variant) on the
	// links, and a counters map with the 12 counters it had, some counted.
	for _, a := range []Attachment{{ifW, HookIngress, engine.Egress}, {ifW, HookEgress, engine.Ingress}} {
		l, err := link.LoadPinnedLink(linkPin(pin, a.Ifindex, a.Hook, a.Direction), nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := l.Update(d1.program(a.Direction)); err != nil {
			t.Fatal(err)
		}
		l.Close()
	}
	const oldCounters = 12
	cpath := filepath.Join(mapsDir(pin), "counters")
	if err := os.Remove(cpath); err != nil {
		t.Fatal(err)
	}
	old, err := ebpf.NewMap(&ebpf.MapSpec{Type: ebpf.PerCPUArray, KeySize: 4, ValueSize: 8, MaxEntries: oldCounters})
	if err != nil {
		t.Fatal(err)
	}
	per := make([]uint64, mustPossibleCPUs(t))
	for i := range uint32(oldCounters) {
		per[0] = uint64(100 + i)
		if err := old.Put(i, per); err != nil {
			t.Fatal(err)
		}
	}
	if err := old.Pin(cpath); err != nil {
		t.Fatal(err)
	}
	old.Close()
	d1.Close()

	d2, err := Open(pin, nil)
	if err != nil {
		t.Fatalf("Open over an older agent's pins: %v", err)
	}
	defer d2.Remove()
	c, err := d2.Counters()
	if err != nil {
		t.Fatal(err)
	}
	if c.Packets != 100 || c.L7Unenforced != 111 || c.NoEndpoint != 0 {
		t.Errorf("counters after the upgrade %+v, want the older agent's carried over", c)
	}
	if p := d2.CheckWorkload(ifW); len(p) != 0 {
		t.Errorf("adopted workload links: %v", p)
	}
	atts, err := d2.Attachments()
	if err != nil || len(atts) != 2 {
		t.Fatalf("attachments %v (%v)", atts, err)
	}
	for _, a := range atts {
		if got, want := linkProgram(t, pin, a), progID(t, d2.workloadProgram(a.Direction)); got != want {
			t.Errorf("adopted link %+v runs program %d, want the workload program %d", a, got, want)
		}
	}
	// The adopted counters map is the one the programs count in.
	er, err := d2.Events()
	if err != nil {
		t.Fatal(err)
	}
	defer er.Close()
	if ret, _ := runOn(t, d2.workloadProgram(engine.Egress), er, packet{src: addr("10.0.0.9"), dst: addr("10.0.0.2"), proto: 17, dport: 53}.build()); ret != actShot {
		t.Errorf("adopted workload program passed a packet without an endpoint")
	}
	if c, _ := d2.Counters(); c.NoEndpoint != 1 || c.Packets != 101 {
		t.Errorf("counters %+v, want NoEndpoint 1 and Packets 101", c)
	}
	if _, err := os.Stat(cpath + "_new"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("migration left %s_new behind (%v)", cpath, err)
	}
}

func mustPossibleCPUs(t testing.TB) int {
	t.Helper()
	n, err := ebpf.PossibleCPU()
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func progID(t testing.TB, p *ebpf.Program) ebpf.ProgramID {
	t.Helper()
	info, err := p.Info()
	if err != nil {
		t.Fatal(err)
	}
	id, _ := info.ID()
	return id
}

// TestFailClosedTraffic: real traffic over a veth between two namespaces
// the test creates (host and workload). With the workload programs on the
// host side and no endpoint entry for the workload, its IPv4 and IPv6
// traffic is dropped while IPv6 neighbour discovery and link-local
// traffic pass; with the entry, or with the host programs, it flows.
func TestFailClosedTraffic(t *testing.T) {
	requireKernel(t)
	d := openTest(t, nil)
	host := newTestNetns(t, "palfch")
	wl := newTestNetns(t, "palfcw")
	ifH, _ := host.veth(t, "hv0", "wv0")
	fcIP(t, "-n", host.name, "link", "set", "wv0", "netns", wl.name)
	for _, c := range []struct {
		ns     *testNetns
		dev    string
		v4, v6 string
		ll     string
	}{{host, "hv0", "10.77.0.1/24", "fd77::1/64", "fe80::1/64"}, {wl, "wv0", "10.77.0.2/24", "fd77::2/64", "fe80::2/64"}} {
		// No automatic link-local address (and so no wait for its DAD).
		fcIP(t, "-n", c.ns.name, "link", "set", c.dev, "addrgenmode", "none")
		fcIP(t, "-n", c.ns.name, "addr", "add", c.v4, "dev", c.dev)
		fcIP(t, "-n", c.ns.name, "addr", "add", c.v6, "dev", c.dev, "nodad")
		fcIP(t, "-n", c.ns.name, "addr", "add", c.ll, "dev", c.dev, "nodad")
		fcIP(t, "-n", c.ns.name, "link", "set", c.dev, "up")
	}
	without := &engine.MapState{Endpoints: map[netip.Addr]engine.EndpointEntry{
		addr("10.99.0.1"): {Identity: 300, PolicyID: 300}, // a generation, but not the workload's entry
	}}
	with := &engine.MapState{Endpoints: map[netip.Addr]engine.EndpointEntry{
		addr("10.77.0.2"): {Identity: 301, PolicyID: 301},
		addr("fd77::2"):   {Identity: 301, PolicyID: 301},
	}}

	// The workload's socket, and a sender in the host namespace.
	var lc net.PacketConn
	wl.do(t, func() {
		var err error
		if lc, err = net.ListenPacket("udp", ":7777"); err != nil {
			t.Fatal(err)
		}
	})
	defer lc.Close()
	seq := 0
	reaches := func(dst string) bool {
		t.Helper()
		seq++
		msg := []byte("probe-" + strconv.Itoa(seq))
		var c net.Conn
		host.do(t, func() {
			var err error
			if c, err = net.Dial("udp", net.JoinHostPort(dst, "7777")); err != nil {
				t.Fatal(err)
			}
		})
		defer c.Close()
		// The first datagram may wait for address resolution; send a few.
		deadline := time.Now().Add(3 * time.Second)
		buf := make([]byte, 64)
		for time.Now().Before(deadline) {
			c.Write(msg)
			lc.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
			for {
				n, _, err := lc.ReadFrom(buf)
				if err != nil {
					break
				}
				if string(buf[:n]) == string(msg) {
					return true
				}
			}
		}
		return false
	}

	if err := d.Apply(context.Background(), without); err != nil {
		t.Fatal(err)
	}
	host.do(t, func() {
		if err := d.AttachWorkload(ifH); err != nil {
			t.Fatal(err)
		}
	})
	if reaches("10.77.0.2") {
		t.Error("workload programs, no endpoint entry: IPv4 reached the workload")
	}
	if reaches("fd77::2") {
		t.Error("workload programs, no endpoint entry: IPv6 reached the workload")
	}
	if !reaches("fe80::2%hv0") {
		t.Error("workload programs, no endpoint entry: link-local IPv6 (neighbour discovery included) did not reach the workload")
	}
	c, err := d.Counters()
	if err != nil {
		t.Fatal(err)
	}
	if c.NoEndpoint == 0 {
		t.Errorf("counters %+v: no NoEndpoint drop", c)
	}

	if err := d.Apply(context.Background(), with); err != nil {
		t.Fatal(err)
	}
	for _, dst := range []string{"10.77.0.2", "fd77::2"} {
		if !reaches(dst) {
			t.Errorf("workload programs with the endpoint entry: %s did not reach the workload", dst)
		}
	}

	if err := d.Apply(context.Background(), without); err != nil {
		t.Fatal(err)
	}
	host.do(t, func() {
		if err := d.AttachHost(ifH); err != nil {
			t.Fatal(err)
		}
	})
	if p := d.CheckHost(ifH); len(p) != 0 {
		t.Fatalf("host programs: %v", p)
	}
	if !reaches("10.77.0.2") {
		t.Error("host programs, no endpoint entry: IPv4 did not pass")
	}
}

// testNetns is a network namespace that a test creates and deletes; the
// root namespace's settings are never touched.
type testNetns struct{ name string }

func newTestNetns(t testing.TB, prefix string) *testNetns {
	t.Helper()
	requireKernel(t)
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("needs iproute2's ip (make test installs it)")
	}
	n := &testNetns{name: fmt.Sprintf("%s%d", prefix, os.Getpid()%100000)}
	exec.Command("ip", "netns", "del", n.name).Run() // a crashed run's
	fcIP(t, "netns", "add", n.name)
	t.Cleanup(func() { exec.Command("ip", "netns", "del", n.name).Run() })
	fcIP(t, "-n", n.name, "link", "set", "lo", "up")
	return n
}

// veth creates a veth pair in the namespace and returns both indexes.
func (n *testNetns) veth(t testing.TB, a, b string) (int, int) {
	t.Helper()
	fcIP(t, "-n", n.name, "link", "add", a, "type", "veth", "peer", "name", b)
	var ia, ib int
	n.do(t, func() {
		for _, x := range []struct {
			name string
			idx  *int
		}{{a, &ia}, {b, &ib}} {
			ifc, err := net.InterfaceByName(x.name)
			if err != nil {
				t.Fatal(err)
			}
			*x.idx = ifc.Index
		}
	})
	return ia, ib
}

// do runs f on a thread inside the namespace. Sockets made there stay in
// it; ifindexes are the namespace's.
func (n *testNetns) do(t testing.TB, f func()) {
	t.Helper()
	runtime.LockOSThread()
	self, err := os.Open("/proc/thread-self/ns/net")
	if err != nil {
		runtime.UnlockOSThread()
		t.Fatal(err)
	}
	defer self.Close()
	target, err := os.Open("/run/netns/" + n.name)
	if err != nil {
		runtime.UnlockOSThread()
		t.Fatal(err)
	}
	defer target.Close()
	if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
		runtime.UnlockOSThread()
		t.Fatal(err)
	}
	defer func() {
		// A thread that cannot go back stays locked and dies with the goroutine.
		if err := unix.Setns(int(self.Fd()), unix.CLONE_NEWNET); err == nil {
			runtime.UnlockOSThread()
		}
	}()
	f()
}

func fcIP(t testing.TB, args ...string) {
	t.Helper()
	out, err := exec.Command("ip", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
	}
}
