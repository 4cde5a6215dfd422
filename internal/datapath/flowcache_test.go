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
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"github.com/palisade-dev/palisade/bpf"
	"github.com/palisade-dev/palisade/internal/engine"
)

// onOneCPU keeps the test's goroutine on one CPU until undo, so that
// every BPF_PROG_TEST_RUN sees that CPU's flow cache (it is per CPU).
func onOneCPU(t *testing.T) (cpu int, undo func()) {
	t.Helper()
	runtime.LockOSThread()
	var old, one unix.CPUSet
	if err := unix.SchedGetaffinity(0, &old); err != nil {
		runtime.UnlockOSThread()
		t.Fatal(err)
	}
	cpu = -1
	for i := 0; i < 1024 && cpu < 0; i++ {
		if old.IsSet(i) {
			cpu = i
		}
	}
	one.Set(cpu)
	if err := unix.SchedSetaffinity(0, &one); err != nil {
		runtime.UnlockOSThread()
		t.Fatal(err)
	}
	return cpu, func() {
		unix.SchedSetaffinity(0, &old)
		runtime.UnlockOSThread()
	}
}

// flowKey is the conntrack4 key of a TCP packet from 10.0.0.1:sport to
// 10.0.0.2:dport decided on egress, as the programs write it.
func flowKey(sport, dport uint16) bpf.PalisadeCt4Key {
	a, b := addr("10.0.0.1").As4(), addr("10.0.0.2").As4()
	return bpf.PalisadeCt4Key{
		Saddr: binary.NativeEndian.Uint32(a[:]), Daddr: binary.NativeEndian.Uint32(b[:]),
		Sport: sport, Dport: dport, Proto: 6, Direction: uint8(engine.Egress),
	}
}

func flowPacket(sport, dport uint16, flags uint8) []byte {
	return packet{src: addr("10.0.0.1"), dst: addr("10.0.0.2"), proto: 6, sport: sport, dport: dport, tcpFlags: flags, payload: 64}.build()
}

// slotOf reads cpu's flow cache slot of k.
func slotOf(t *testing.T, d *Datapath, cpu int, k bpf.PalisadeCt4Key) bpf.PalisadeFlowCacheEntry {
	t.Helper()
	var per []bpf.PalisadeFlowCacheEntry
	if err := d.objs.FlowCache.Lookup(flowCacheSlot(d.flowCacheSeed, k), &per); err != nil {
		t.Fatal(err)
	}
	return per[cpu]
}

func holds(e bpf.PalisadeFlowCacheEntry, k bpf.PalisadeCt4Key, gen uint64) bool {
	var b [16]byte
	binary.NativeEndian.PutUint32(b[0:], k.Saddr)
	binary.NativeEndian.PutUint32(b[4:], k.Daddr)
	binary.NativeEndian.PutUint16(b[8:], k.Sport)
	binary.NativeEndian.PutUint16(b[10:], k.Dport)
	b[12], b[13] = k.Proto, k.Direction
	return e.Key == [2]uint64{binary.NativeEndian.Uint64(b[:8]), binary.NativeEndian.Uint64(b[8:])} &&
		e.Generation == uint32(gen)
}

func fills(t *testing.T, d *Datapath) uint64 {
	t.Helper()
	c, err := d.Counters()
	if err != nil {
		t.Fatal(err)
	}
	return c.FlowCacheFills
}

// TestFlowCacheGenerationSwitch: a connection that the cache answers
// (its slot holds it, and its packets fill nothing) is dropped on its
// next packet once a generation denies it, and passes again under the
// allowing generation.
func TestFlowCacheGenerationSwitch(t *testing.T) {
	d := openTest(t, nil)
	er, err := d.Events()
	if err != nil {
		t.Fatal(err)
	}
	defer er.Close()
	cpu, undo := onOneCPU(t)
	defer undo()
	allow := benchState(10)
	if err := d.Apply(context.Background(), allow); err != nil {
		t.Fatal(err)
	}
	pkt, k := flowPacket(40000, 80, 0x10), flowKey(40000, 80)
	if ret, ev := run(t, d, er, engine.Egress, pkt); ret != actPass || ev == nil {
		t.Fatalf("first packet: ret %d event %v, want pass and the connection's event", int32(ret), ev)
	}
	if e := slotOf(t, d, cpu, k); !holds(e, k, d.Generation()) {
		t.Fatalf("after the first packet the slot holds %+v, want the connection of generation %d", e, d.Generation())
	}
	f := fills(t, d)
	for i := 0; i < 3; i++ {
		if ret, ev := run(t, d, er, engine.Egress, pkt); ret != actPass || ev != nil {
			t.Fatalf("cached packet %d: ret %d event %v, want pass, no event", i, int32(ret), ev)
		}
	}
	if g := fills(t, d); g != f {
		t.Fatalf("cached packets filled %d slots, want 0 (the cache answers)", g-f)
	}

	deny := benchState(10)
	for k := range deny.Policy {
		if k.Port == 80 && k.Identity == 257 {
			delete(deny.Policy, k)
		}
	}
	if err := d.Apply(context.Background(), deny); err != nil {
		t.Fatal(err)
	}
	ret, ev := run(t, d, er, engine.Egress, pkt)
	if ret != actShot || ev == nil || ev.Reason != Reason(engine.ReasonDefaultDeny) || ev.Generation != d.Generation() {
		t.Fatalf("after the deny generation: ret %d event %+v, want drop by default deny in generation %d", int32(ret), ev, d.Generation())
	}
	if e := slotOf(t, d, cpu, k); e.Generation != 0 {
		t.Fatalf("after the drop the slot holds %+v, want it emptied", e)
	}
	if err := d.Apply(context.Background(), allow); err != nil {
		t.Fatal(err)
	}
	if ret, ev := run(t, d, er, engine.Egress, pkt); ret != actPass || ev == nil || ev.Verdict != engine.VerdictAllow {
		t.Fatalf("after the allow generation again: ret %d event %v, want pass, reported as a new connection", int32(ret), ev)
	}
	if ret, ev := run(t, d, er, engine.Egress, pkt); ret != actPass || ev != nil {
		t.Fatalf("next packet: ret %d event %v, want pass from the cache", int32(ret), ev)
	}
}

// TestFlowCacheCloses: FIN and RST are never answered by the cache; they
// mark the connection closing in conntrack as without the cache, and a
// sequence of packets leaves the same verdicts, events, counters (but the
// cache's) and conntrack entries with the cache and without.
func TestFlowCacheCloses(t *testing.T) {
	on := openTest(t, nil)
	off := openTest(t, &Options{flowCacheOff: true})
	_, undo := onOneCPU(t)
	defer undo()
	type step struct {
		sport uint16
		flags uint8
	}
	// Two connections: one closed by FIN (both ways' packets are the
	// client's here), one by RST, with data after each.
	steps := []step{{1000, 0x02}, {1000, 0x10}, {1000, 0x18}, {1000, 0x10}, {2000, 0x02}, {2000, 0x10},
		{1000, 0x11}, {1000, 0x10}, {1000, 0x10}, {2000, 0x10}, {2000, 0x04}, {2000, 0x10}, {2000, 0x14}}
	var flags [2][]uint8
	for i, d := range []*Datapath{on, off} {
		er, err := d.Events()
		if err != nil {
			t.Fatal(err)
		}
		if err := d.Apply(context.Background(), benchState(10)); err != nil {
			t.Fatal(err)
		}
		for j, s := range steps {
			ret, ev := run(t, d, er, engine.Egress, flowPacket(s.sport, 80, s.flags))
			first := j == 0 || j == 4
			if ret != actPass || (ev != nil) != first {
				t.Fatalf("cache=%v step %d %+v: ret %d event %v, want pass, an event for the first packet only", i == 0, j, s, int32(ret), ev)
			}
			var v bpf.PalisadeCtValue
			if err := d.objs.Conntrack4.Lookup(flowKey(s.sport, 80), &v); err != nil {
				t.Fatalf("cache=%v step %d: conntrack entry: %v", i == 0, j, err)
			}
			flags[i] = append(flags[i], v.Flags)
			if closing := v.Flags&2 != 0; closing != (j >= 6 && s.sport == 1000 || j >= 10 && s.sport == 2000) {
				t.Errorf("cache=%v step %d %+v: conntrack flags %#x, closing %v", i == 0, j, s, v.Flags, closing)
			}
		}
		er.Close()
	}
	con, err := on.Counters()
	if err != nil {
		t.Fatal(err)
	}
	coff, err := off.Counters()
	if err != nil {
		t.Fatal(err)
	}
	if con.FlowCacheFills == 0 || coff.FlowCacheFills != 0 {
		t.Errorf("fills %d with the cache, %d without: want some, none", con.FlowCacheFills, coff.FlowCacheFills)
	}
	con.FlowCacheFills = 0
	if con != coff {
		t.Errorf("counters with the cache %+v, without %+v", con, coff)
	}
	for j := range flags[0] {
		if flags[0][j] != flags[1][j] {
			t.Errorf("step %d: conntrack flags %#x with the cache, %#x without", j, flags[0][j], flags[1][j])
		}
	}
}

// TestFlowCacheCollision: two connections in one slot never share a
// verdict. An allowed connection's slot is taken by a denied one's packet
// (dropped, and the slot stays the allowed one's), then by another
// allowed connection, each packet of the two passing and refilling it.
func TestFlowCacheCollision(t *testing.T) {
	const seed = 0x5eed
	d := openTest(t, &Options{flowCacheSeed: seed})
	if d.flowCacheSeed != seed {
		t.Fatalf("seed %#x, want %#x", d.flowCacheSeed, seed)
	}
	er, err := d.Events()
	if err != nil {
		t.Fatal(err)
	}
	defer er.Close()
	cpu, undo := onOneCPU(t)
	defer undo()
	if err := d.Apply(context.Background(), benchState(10)); err != nil {
		t.Fatal(err)
	}
	// X: allowed (port 80). Y: denied (port 81, default deny), in X's
	// slot. Z: allowed, in X's slot.
	kx := flowKey(40000, 80)
	slot := flowCacheSlot(seed, kx)
	var ydenied, zallowed uint16
	for sp := uint16(1024); sp < 65535 && (ydenied == 0 || zallowed == 0); sp++ {
		if ydenied == 0 && flowCacheSlot(seed, flowKey(sp, 81)) == slot {
			ydenied = sp
		}
		if zallowed == 0 && sp != 40000 && flowCacheSlot(seed, flowKey(sp, 80)) == slot {
			zallowed = sp
		}
	}
	if ydenied == 0 || zallowed == 0 {
		t.Fatalf("no source port puts a connection in slot %d", slot)
	}
	x, y, z := flowPacket(40000, 80, 0x10), flowPacket(ydenied, 81, 0x10), flowPacket(zallowed, 80, 0x10)
	gen := d.Generation()
	if ret, _ := run(t, d, er, engine.Egress, x); ret != actPass {
		t.Fatalf("X: ret %d, want pass", int32(ret))
	}
	if e := slotOf(t, d, cpu, kx); !holds(e, kx, gen) {
		t.Fatalf("slot %d holds %+v, want X (the Go copy of the hash disagrees with the kernel's)", slot, e)
	}
	for i := 0; i < 2; i++ {
		ret, ev := run(t, d, er, engine.Egress, y)
		if ret != actShot || ev == nil || ev.Reason != Reason(engine.ReasonDefaultDeny) || ev.SrcPort != ydenied {
			t.Fatalf("Y %d in X's slot: ret %d event %+v, want its own drop by default deny", i, int32(ret), ev)
		}
		if e := slotOf(t, d, cpu, kx); !holds(e, kx, gen) {
			t.Fatalf("after Y the slot holds %+v, want X still", e)
		}
		if ret, ev := run(t, d, er, engine.Egress, x); ret != actPass || ev != nil {
			t.Fatalf("X after Y: ret %d event %v, want pass from the cache", int32(ret), ev)
		}
	}
	kz := flowKey(zallowed, 80)
	for i := 0; i < 3; i++ {
		f := fills(t, d)
		if ret, ev := run(t, d, er, engine.Egress, z); ret != actPass || (ev != nil) != (i == 0) {
			t.Fatalf("Z %d: ret %d event %v, want pass, an event for its first packet", i, int32(ret), ev)
		}
		if e := slotOf(t, d, cpu, kz); !holds(e, kz, gen) {
			t.Fatalf("after Z the slot holds %+v, want Z", e)
		}
		if ret, ev := run(t, d, er, engine.Egress, x); ret != actPass || ev != nil {
			t.Fatalf("X after Z: ret %d event %v, want pass through conntrack", int32(ret), ev)
		}
		if g := fills(t, d); g-f != 2 {
			t.Fatalf("Z then X filled %d slots, want 2 (each took the slot from the other)", g-f)
		}
	}
}

// TestFlowCacheOutlivesEntry: the open question of a cached allow whose
// conntrack entry is gone (the LRU evicted it): the slot answers until its
// deadline (at most a second after it was written), then the next packet
// misses conntrack and re-creates the entry, reported and counted as a new
// connection, as it would have been at once without the cache.
func TestFlowCacheOutlivesEntry(t *testing.T) {
	d := openTest(t, nil)
	er, err := d.Events()
	if err != nil {
		t.Fatal(err)
	}
	defer er.Close()
	cpu, undo := onOneCPU(t)
	defer undo()
	if err := d.Apply(context.Background(), benchState(10)); err != nil {
		t.Fatal(err)
	}
	pkt, k := flowPacket(40000, 80, 0x10), flowKey(40000, 80)
	run(t, d, er, engine.Egress, pkt)
	if e := slotOf(t, d, cpu, k); !holds(e, k, d.Generation()) || e.Until == 0 {
		t.Fatalf("after the first packet the slot holds %+v, want the connection, answering", e)
	}
	if err := d.objs.Conntrack4.Delete(k); err != nil { // as the LRU would
		t.Fatal(err)
	}
	if ret, ev := run(t, d, er, engine.Egress, pkt); ret != actPass || ev != nil {
		t.Fatalf("before the slot's deadline: ret %d event %v, want pass from the cache", int32(ret), ev)
	}
	// The deadline passes (as a second would).
	var per []bpf.PalisadeFlowCacheEntry
	if err := d.objs.FlowCache.Lookup(flowCacheSlot(d.flowCacheSeed, k), &per); err != nil {
		t.Fatal(err)
	}
	per[cpu].Until = 1
	if err := d.objs.FlowCache.Put(flowCacheSlot(d.flowCacheSeed, k), per); err != nil {
		t.Fatal(err)
	}
	before, _ := d.Counters()
	ret, ev := run(t, d, er, engine.Egress, pkt)
	if ret != actPass || ev == nil || ev.Verdict != engine.VerdictAllow || ev.Reason != Reason(engine.ReasonAllowed) {
		t.Fatalf("after the slot's deadline: ret %d event %+v, want pass, reported as a new connection", int32(ret), ev)
	}
	after, _ := d.Counters()
	if after.Allowed-before.Allowed != 1 || after.FlowCacheFills-before.FlowCacheFills != 1 {
		t.Fatalf("allowed +%d, fills +%d: want 1 and 1", after.Allowed-before.Allowed, after.FlowCacheFills-before.FlowCacheFills)
	}
	var v bpf.PalisadeCtValue
	if err := d.objs.Conntrack4.Lookup(k, &v); err != nil {
		t.Fatalf("the connection's entry was not re-created: %v", err)
	}
}

// TestFlowCacheReplacedPin: a pinned flow cache of another layout (an
// older or newer agent's) is replaced at Open, not refused.
func TestFlowCacheReplacedPin(t *testing.T) {
	pin := tempPinDir(t)
	d, err := Open(pin, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Remove() })
	d.Close()
	p := filepath.Join(mapsDir(pin), bpf.PalisadeMapFlowCache)
	if err := os.Remove(p); err != nil {
		t.Fatal(err)
	}
	other, err := ebpf.NewMap(&ebpf.MapSpec{Type: ebpf.PerCPUArray, KeySize: 4, ValueSize: 24, MaxEntries: 16})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	if err := other.Pin(p); err != nil {
		t.Fatal(err)
	}
	d2, err := Open(pin, nil)
	if err != nil {
		t.Fatalf("Open with a flow cache pin of another layout: %v", err)
	}
	t.Cleanup(func() { d2.Remove() })
	if d2.objs.FlowCache.MaxEntries() != 1<<flowCacheBits || d2.objs.FlowCache.ValueSize() != 32 {
		t.Fatalf("flow cache %d entries of %d bytes, want %d of 32", d2.objs.FlowCache.MaxEntries(), d2.objs.FlowCache.ValueSize(), 1<<flowCacheBits)
	}
}
