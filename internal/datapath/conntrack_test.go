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
	"net/netip"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"github.com/palisade-dev/palisade/bpf"
	"github.com/palisade-dev/palisade/internal/engine"
)

// ctState is endpoints A (IPv4) and A6 (IPv6), default deny both ways,
// allowed to reach B and B6 on TCP 80.
func ctState() *engine.MapState {
	A, B, A6, B6 := addr("10.0.0.1"), addr("10.0.0.2"), addr("fd00::1"), addr("fd00::2")
	ep := engine.EndpointEntry{Identity: 256, PolicyID: 256, Flags: engine.EgressDefaultDeny | engine.IngressDefaultDeny}
	return &engine.MapState{
		Endpoints: map[netip.Addr]engine.EndpointEntry{A: ep, A6: ep},
		IPCache: map[netip.Prefix]engine.Identity{
			netip.PrefixFrom(A, 32): 256, netip.PrefixFrom(B, 32): 257,
			netip.PrefixFrom(A6, 128): 256, netip.PrefixFrom(B6, 128): 257,
		},
		Policy: map[engine.PolicyKey]engine.PolicyEntry{
			{PolicyID: 256, Direction: engine.Egress, Identity: 257, Proto: engine.ProtoTCP, Port: 80, PrefixLen: 24}: {Flags: engine.FlagAllow, AllowRule: 1},
		},
	}
}

func ctEntries[K comparable](t *testing.T, m *ebpf.Map) map[K]bpf.PalisadeCtValue {
	t.Helper()
	out := map[K]bpf.PalisadeCtValue{}
	var (
		k K
		v bpf.PalisadeCtValue
	)
	it := m.Iterate()
	for it.Next(&k, &v) {
		out[k] = v
	}
	if err := it.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestConntrackByFamily: the programs record IPv4 connections in
// conntrack4 and IPv6 ones in conntrack, and find their replies there.
func TestConntrackByFamily(t *testing.T) {
	d := openTest(t, nil)
	if err := d.Apply(context.Background(), ctState()); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ a, b string }{{"10.0.0.1", "10.0.0.2"}, {"fd00::1", "fd00::2"}} {
		a, b := addr(c.a), addr(c.b)
		req := packet{src: a, dst: b, proto: 6, sport: 40000, dport: 80, tcpFlags: 0x02}.build()
		if ret, err := d.program(engine.Egress).Run(&ebpf.RunOptions{Data: req}); err != nil || ret != actPass {
			t.Fatalf("%s→%s request: %d (%v), want pass", a, b, int32(ret), err)
		}
		reply := packet{src: b, dst: a, proto: 6, sport: 80, dport: 40000, tcpFlags: 0x12}.build()
		if ret, err := d.program(engine.Ingress).Run(&ebpf.RunOptions{Data: reply}); err != nil || ret != actPass {
			t.Fatalf("%s→%s reply: %d (%v), want pass", b, a, int32(ret), err)
		}
		stray := packet{src: b, dst: a, proto: 6, sport: 80, dport: 40001, tcpFlags: 0x12}.build()
		if ret, err := d.program(engine.Ingress).Run(&ebpf.RunOptions{Data: stray}); err != nil || ret != actShot {
			t.Fatalf("%s→%s packet of no connection: %d (%v), want drop", b, a, int32(ret), err)
		}
	}
	v4 := ctEntries[bpf.PalisadeCt4Key](t, d.objs.Conntrack4)
	v6 := ctEntries[bpf.PalisadeCtKey](t, d.objs.Conntrack)
	if len(v4) != 1 || len(v6) != 1 {
		t.Fatalf("conntrack4 %v, conntrack %v: want one connection each", v4, v6)
	}
	for k := range v4 {
		want := bpf.PalisadeCt4Key{Saddr: 0x0100000a, Daddr: 0x0200000a, Sport: 40000, Dport: 80, Proto: 6, Direction: 1}
		if k != want {
			t.Errorf("conntrack4 key %+v, want %+v", k, want)
		}
	}
	for k := range v6 {
		if k.Family != familyIPv6 || k.Saddr != addr("fd00::1").As16() || k.Dport != 80 {
			t.Errorf("conntrack key %+v, want the IPv6 connection", k)
		}
	}
}

// TestConntrackMigration: IPv4 connections that an older agent recorded
// in conntrack move to conntrack4 when a new agent opens the pins, so
// that their replies still pass; IPv6 ones stay, and an entry that
// conntrack4 holds already is kept.
func TestConntrackMigration(t *testing.T) {
	pin := tempPinDir(t)
	d1, err := Open(pin, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := d1.Apply(context.Background(), ctState()); err != nil {
		t.Fatal(err)
	}
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC_COARSE, &ts); err != nil {
		t.Fatal(err)
	}
	live := bpf.PalisadeCtValue{Expires: uint64(ts.Nano() + int64(time.Minute)), Generation: uint32(d1.Generation())}
	key := func(a, b string, sport uint16) bpf.PalisadeCtKey {
		k := bpf.PalisadeCtKey{Sport: sport, Dport: 80, Proto: 6, Family: familyIPv4, Direction: 1}
		if pa := addr(a); pa.Is4() {
			s, d := pa.As4(), addr(b).As4()
			copy(k.Saddr[:], s[:])
			copy(k.Daddr[:], d[:])
		} else {
			k.Family, k.Saddr, k.Daddr = familyIPv6, pa.As16(), addr(b).As16()
		}
		return k
	}
	// What an older agent's programs left: two IPv4 connections and an
	// IPv6 one in conntrack; the second IPv4 one is in conntrack4 too, as
	// if the new programs had recorded it since (their entry is newer).
	old4, both4, old6 := key("10.0.0.1", "10.0.0.2", 40000), key("10.0.0.1", "10.0.0.2", 40002), key("fd00::1", "fd00::2", 40000)
	for _, k := range []bpf.PalisadeCtKey{old4, both4, old6} {
		if err := d1.objs.Conntrack.Put(k, live); err != nil {
			t.Fatal(err)
		}
	}
	newer := live
	newer.Flags = 1 // CT_SEEN_REPLY
	if err := d1.objs.Conntrack4.Put(ct4Key(both4), newer); err != nil {
		t.Fatal(err)
	}
	d1.Close()

	d2, err := Open(pin, nil)
	if err != nil {
		t.Fatalf("Open over an older agent's conntrack: %v", err)
	}
	defer d2.Remove()
	v4 := ctEntries[bpf.PalisadeCt4Key](t, d2.objs.Conntrack4)
	if len(v4) != 2 || v4[ct4Key(old4)] != live || v4[ct4Key(both4)] != newer {
		t.Errorf("conntrack4 after the upgrade %v, want the older agent's entry and the newer one kept", v4)
	}
	v6 := ctEntries[bpf.PalisadeCtKey](t, d2.objs.Conntrack)
	if len(v6) != 1 || v6[old6] != live {
		t.Errorf("conntrack after the upgrade %v, want the IPv6 entry alone", v6)
	}
	// The reply of the migrated connection passes A's default-deny ingress.
	reply := packet{src: addr("10.0.0.2"), dst: addr("10.0.0.1"), proto: 6, sport: 80, dport: 40000, tcpFlags: 0x10}.build()
	if ret, err := d2.program(engine.Ingress).Run(&ebpf.RunOptions{Data: reply}); err != nil || ret != actPass {
		t.Errorf("reply of a migrated connection: %d (%v), want pass", int32(ret), err)
	}
	c, err := d2.Counters()
	if err != nil {
		t.Fatal(err)
	}
	if c.Replies != 1 {
		t.Errorf("replies %d, want 1", c.Replies)
	}
}
