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
	"errors"
	"net/netip"
	"os"
	"reflect"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/btf"

	"github.com/palisade-dev/palisade/bpf"
	"github.com/palisade-dev/palisade/internal/engine"
)

// TestEventLayout: the Go structs that decode events have the C structs'
// layout, member by member, as the object's BTF says.
func TestEventLayout(t *testing.T) {
	spec, err := bpf.LoadPalisade()
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		goT  reflect.Type
		size int
	}{
		{"event_header", reflect.TypeOf(bpf.PalisadeEventHeader{}), eventHeaderSize},
		{"verdict_event", reflect.TypeOf(bpf.PalisadeVerdictEvent{}), verdictEventSize},
	} {
		var s *btf.Struct
		if err := spec.Types.TypeByName(c.name, &s); err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if int(s.Size) != int(c.goT.Size()) || int(s.Size) != c.size {
			t.Errorf("%s: C size %d, Go size %d, decoder's size %d", c.name, s.Size, c.goT.Size(), c.size)
		}
		var fields []reflect.StructField
		for i := range c.goT.NumField() {
			if f := c.goT.Field(i); f.Name != "_" {
				fields = append(fields, f)
			}
		}
		if len(fields) != len(s.Members) {
			t.Fatalf("%s: %d C members, %d Go fields", c.name, len(s.Members), len(fields))
		}
		for i, m := range s.Members {
			f := fields[i]
			size, err := btf.Sizeof(m.Type)
			if err != nil {
				t.Fatal(err)
			}
			if int(m.Offset.Bytes()) != int(f.Offset) || size != int(f.Type.Size()) {
				t.Errorf("%s.%s: C offset %d size %d; Go %s offset %d size %d", c.name, m.Name, m.Offset.Bytes(), size,
					f.Name, f.Offset, f.Type.Size())
			}
		}
		if s.Members[0].Name != "hdr" && c.name != "event_header" {
			t.Errorf("%s does not start with the header", c.name)
		}
	}
	if EventVerdict != 1 || VerdictEventVersion != 1 {
		t.Errorf("verdict event type %d version %d, want 1 and 1", EventVerdict, VerdictEventVersion)
	}
}

// rawHeader makes an event header's bytes.
func rawHeader(typ, version uint8, length uint16, bootNs uint64) []byte {
	b := make([]byte, 16)
	b[0], b[1] = typ, version
	binary.NativeEndian.PutUint16(b[2:], length)
	binary.NativeEndian.PutUint64(b[8:], bootNs)
	return b
}

// TestDecodeEventHeader: records whose header this package does not know
// are refused with ErrUnknownEvent and a message that says why.
func TestDecodeEventHeader(t *testing.T) {
	full := func(typ, version uint8, length uint16) []byte {
		return append(rawHeader(typ, version, length, 0), make([]byte, max(int(length), 16)-16)...)
	}
	for _, c := range []struct {
		name string
		raw  []byte
		want string
	}{
		{"short", []byte{1, 1, 88}, "shorter than the 16-byte header"},
		{"unknown type", full(99, 1, 88), "type 99"},
		{"type 0", full(0, 1, 88), "type 0"},
		{"newer version", full(1, 2, 96), "verdict event version 2 of 96 bytes"},
		{"wrong length", full(1, 1, 80), "verdict event version 1 of 80 bytes"},
		{"length past the record", rawHeader(1, 1, 88, 0), "header length 88, record 16 bytes"},
	} {
		_, err := decodeEvent(c.raw, &bootClock{})
		if !errors.Is(err, ErrUnknownEvent) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want ErrUnknownEvent saying %q", c.name, err, c.want)
		}
	}
	ev, err := decodeEvent(full(1, 1, 88), &bootClock{})
	if err != nil || ev.Type != EventVerdict || ev.Version != 1 {
		t.Errorf("a verdict event: %+v, %v", ev, err)
	}
}

// eventsState is endpoint A (identity 256, egress default deny) and peer
// B (257): TCP 80 allowed (rule 1), TCP 81 allowed but denied by an
// audit-mode policy (rule 3), UDP 53 allowed (rule 4); the rest denied.
func eventsState() *engine.MapState {
	A, B := addr("10.0.0.1"), addr("10.0.0.2")
	key := func(proto engine.Proto, port uint16) engine.PolicyKey {
		return engine.PolicyKey{PolicyID: 256, Direction: engine.Egress, Identity: 257, Proto: proto, Port: port, PrefixLen: 24}
	}
	return &engine.MapState{
		Endpoints: map[netip.Addr]engine.EndpointEntry{A: {Identity: 256, PolicyID: 256, Flags: engine.EgressDefaultDeny}},
		IPCache:   map[netip.Prefix]engine.Identity{netip.PrefixFrom(A, 32): 256, netip.PrefixFrom(B, 32): 257},
		Policy: map[engine.PolicyKey]engine.PolicyEntry{
			key(engine.ProtoTCP, 80): {Flags: engine.FlagAllow, AllowRule: 1},
			key(engine.ProtoTCP, 81): {Flags: engine.FlagAllow | engine.FlagAuditDeny, AllowRule: 2, AuditRule: 3},
			key(engine.ProtoUDP, 53): {Flags: engine.FlagAllow, AllowRule: 4},
		},
	}
}

func tcpTo(dport uint16, flags uint8) packet {
	return packet{src: addr("10.0.0.1"), dst: addr("10.0.0.2"), proto: 6, sport: 40000, dport: dport, tcpFlags: flags, payload: 10}
}

func tcpFrom(sport uint16, flags uint8) packet {
	return packet{src: addr("10.0.0.2"), dst: addr("10.0.0.1"), proto: 6, sport: sport, dport: 40000, tcpFlags: flags, payload: 10}
}

const (
	syn    = TCPFlagSYN
	ack    = TCPFlagACK
	synAck = TCPFlagSYN | TCPFlagACK
	finAck = TCPFlagFIN | TCPFlagACK
)

// TestEventsReporting: the kernel reports every drop, an allowed
// connection once, when its conntrack entry is created, and an audited
// connection once; every event carries the header, its time and the
// packet's TCP flags.
func TestEventsReporting(t *testing.T) {
	d := openTest(t, nil)
	er, err := d.Events()
	if err != nil {
		t.Fatal(err)
	}
	defer er.Close()
	if err := d.Apply(context.Background(), eventsState()); err != nil {
		t.Fatal(err)
	}
	type step struct {
		dir     engine.Direction
		pkt     packet
		shot    bool
		verdict engine.Verdict // when an event is wanted
		reason  Reason
		rule    engine.RuleID
		event   bool
	}
	eg, in := engine.Egress, engine.Ingress
	allowed, denied, audited := Reason(engine.ReasonAllowed), Reason(engine.ReasonDefaultDeny), Reason(engine.ReasonDenied)
	for _, c := range []struct {
		name  string
		steps []step
	}{
		{"denied SYN, every time", []step{
			{dir: eg, pkt: tcpTo(82, syn), shot: true, event: true, verdict: engine.VerdictDeny, reason: denied},
			{dir: eg, pkt: tcpTo(82, syn), shot: true, event: true, verdict: engine.VerdictDeny, reason: denied},
			{dir: eg, pkt: tcpTo(82, ack), shot: true, event: true, verdict: engine.VerdictDeny, reason: denied},
		}},
		{"allowed connection, at creation only", []step{
			{dir: eg, pkt: tcpTo(80, syn), event: true, verdict: engine.VerdictAllow, reason: allowed, rule: 1},
			{dir: in, pkt: tcpFrom(80, synAck)}, // the reply
			{dir: eg, pkt: tcpTo(80, ack)},
			{dir: eg, pkt: tcpTo(80, ack|TCPFlagPSH)},
			{dir: in, pkt: tcpFrom(80, ack)},
			{dir: eg, pkt: tcpTo(80, finAck)},
		}},
		{"allowed UDP flow, at creation only", []step{
			{dir: eg, pkt: packet{src: addr("10.0.0.1"), dst: addr("10.0.0.2"), proto: 17, sport: 5353, dport: 53, payload: 30},
				event: true, verdict: engine.VerdictAllow, reason: allowed, rule: 4},
			{dir: eg, pkt: packet{src: addr("10.0.0.1"), dst: addr("10.0.0.2"), proto: 17, sport: 5353, dport: 53, payload: 30}},
		}},
		{"audited connection, once", []step{
			{dir: eg, pkt: tcpTo(81, syn), event: true, verdict: engine.VerdictAudit, reason: audited, rule: 3},
			{dir: in, pkt: tcpFrom(81, synAck)},
			{dir: eg, pkt: tcpTo(81, ack)},
			{dir: eg, pkt: tcpTo(81, ack)},
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			clearTracking(t, d)
			before, err := d.Counters()
			if err != nil {
				t.Fatal(err)
			}
			events := 0
			for i, s := range c.steps {
				t0 := time.Now()
				ret, ev := run(t, d, er, s.dir, s.pkt.build())
				t1 := time.Now()
				if want := actPass; s.shot && ret != actShot || !s.shot && ret != want {
					t.Errorf("packet %d: return %s, want shot %v", i, retName(ret), s.shot)
				}
				if !s.event {
					if ev != nil {
						t.Errorf("packet %d (flags %#x): unexpected event %+v", i, s.pkt.tcpFlags, ev)
					}
					continue
				}
				if ev == nil {
					t.Errorf("packet %d: no event, want %s/%s", i, s.verdict, s.reason)
					continue
				}
				events++
				if ev.Type != EventVerdict || ev.Version != VerdictEventVersion {
					t.Errorf("packet %d: header type %d version %d", i, ev.Type, ev.Version)
				}
				// The wall clock conversion is good to well under a millisecond.
				if ev.Time.Before(t0.Add(-time.Millisecond)) || ev.Time.After(t1.Add(time.Millisecond)) {
					t.Errorf("packet %d: event time %s not within [%s, %s]", i, ev.Time.Format(time.RFC3339Nano),
						t0.Format(time.RFC3339Nano), t1.Format(time.RFC3339Nano))
				}
				if ev.Verdict != s.verdict || ev.Reason != s.reason || ev.Rule != s.rule || ev.TCPFlags != s.pkt.tcpFlags ||
					ev.Direction != s.dir || ev.Src != s.pkt.src || ev.Dst != s.pkt.dst || ev.DstPort != s.pkt.dport ||
					ev.LocalIdentity != 256 || ev.PeerIdentity != 257 || ev.Generation != d.Generation() {
					t.Errorf("packet %d: event %+v, want %s/%s rule %d flags %#x", i, *ev, s.verdict, s.reason, s.rule, s.pkt.tcpFlags)
				}
			}
			after, err := d.Counters()
			if err != nil {
				t.Fatal(err)
			}
			if n := after.EventsSent - before.EventsSent; n != uint64(events) || after.EventsLost != before.EventsLost {
				t.Errorf("EventsSent counted %d, EventsLost %d; want %d, 0", n, after.EventsLost-before.EventsLost, events)
			}
		})
	}

	// Tracing: every allowed packet, one event each.
	t.Run("events for allowed packets on", func(t *testing.T) {
		clearTracking(t, d)
		if err := d.SetEventsAllowed(true); err != nil {
			t.Fatal(err)
		}
		defer d.SetEventsAllowed(false)
		for i, flags := range []uint8{syn, ack, ack} {
			if _, ev := run(t, d, er, eg, tcpTo(80, flags).build()); ev == nil || ev.TCPFlags != flags || ev.Verdict != engine.VerdictAllow {
				t.Errorf("packet %d: event %+v, want an allow with flags %#x", i, ev, flags)
			}
		}
	})
}

// ringbufWriter loads a program that writes the bytes of raw (a multiple
// of 8, at most 64) to the events ring buffer as one record: records that
// the datapath's programs never write.
func ringbufWriter(t *testing.T, d *Datapath, raw []byte) *ebpf.Program {
	t.Helper()
	insns := asm.Instructions{}
	for off := 0; off < len(raw); off += 4 {
		insns = append(insns, asm.StoreImm(asm.RFP, int16(off-len(raw)), int64(int32(binary.NativeEndian.Uint32(raw[off:]))), asm.Word))
	}
	insns = append(insns,
		asm.LoadMapPtr(asm.R1, d.objs.Events.FD()),
		asm.Mov.Reg(asm.R2, asm.RFP),
		asm.Add.Imm(asm.R2, int32(-len(raw))),
		asm.Mov.Imm(asm.R3, int32(len(raw))),
		asm.Mov.Imm(asm.R4, 0),
		asm.FnRingbufOutput.Call(),
		asm.Mov.Imm(asm.R0, 0),
		asm.Return(),
	)
	p, err := ebpf.NewProgram(&ebpf.ProgramSpec{Type: ebpf.SocketFilter, Instructions: insns, License: "GPL"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

// TestEventsUnknownSkipped: the reader counts and skips records of an
// unknown type or version, and reads on.
func TestEventsUnknownSkipped(t *testing.T) {
	d := openTest(t, nil)
	er, err := d.Events()
	if err != nil {
		t.Fatal(err)
	}
	defer er.Close()
	if err := d.Apply(context.Background(), eventsState()); err != nil {
		t.Fatal(err)
	}
	for _, raw := range [][]byte{
		append(rawHeader(42, 1, 24, 0), make([]byte, 8)...), // a type from the future
		rawHeader(uint8(EventVerdict), 2, 16, 0),            // a newer verdict event
	} {
		if _, err := ringbufWriter(t, d, raw).Run(&ebpf.RunOptions{Data: make([]byte, 14)}); err != nil {
			t.Fatal(err)
		}
	}
	ret, ev := run(t, d, er, engine.Egress, tcpTo(82, syn).build())
	if ret != actShot || ev == nil || ev.Verdict != engine.VerdictDeny {
		t.Fatalf("after two unknown records: return %s, event %+v; want the drop's event", retName(ret), ev)
	}
	n, last := er.Skipped()
	if n != 2 || !errors.Is(last, ErrUnknownEvent) || !strings.Contains(last.Error(), "version 2") {
		t.Errorf("Skipped: %d, %v; want 2, the newer verdict event's error", n, last)
	}
}

// TestEventsRingFull: when the ring buffer is full, every event the
// kernel could not write is counted, by verdict, and those it wrote reach
// the reader.
func TestEventsRingFull(t *testing.T) {
	d := openTest(t, nil)
	er, err := d.Events()
	if err != nil {
		t.Fatal(err)
	}
	defer er.Close()
	if err := d.Apply(context.Background(), eventsState()); err != nil {
		t.Fatal(err)
	}
	before, err := d.Counters()
	if err != nil {
		t.Fatal(err)
	}
	// More drops than the ring buffer holds (4 MiB / 96 bytes a record).
	const drops = 60000
	eg := d.program(engine.Egress)
	if ret, err := eg.Run(&ebpf.RunOptions{Data: tcpTo(82, syn).build(), Repeat: drops}); err != nil || ret != actShot {
		t.Fatalf("drops: return %d, %v", int32(ret), err)
	}
	// With the ring full, a new allowed and a new audited connection.
	if ret, err := eg.Run(&ebpf.RunOptions{Data: tcpTo(80, syn).build()}); err != nil || ret != actPass {
		t.Fatalf("allowed SYN: return %d, %v", int32(ret), err)
	}
	if ret, err := eg.Run(&ebpf.RunOptions{Data: tcpTo(81, syn).build()}); err != nil || ret != actPass {
		t.Fatalf("audited SYN: return %d, %v", int32(ret), err)
	}
	after, err := d.Counters()
	if err != nil {
		t.Fatal(err)
	}
	sent, lost := after.EventsSent-before.EventsSent, after.EventsLost-before.EventsLost
	lostDeny := after.EventsLostDenied - before.EventsLostDenied
	lostAllow := after.EventsLostAllowed - before.EventsLostAllowed
	lostAudit := after.EventsLostAudited - before.EventsLostAudited
	t.Logf("%d events: %d sent, %d lost (%d denied, %d allowed, %d audited)", drops+2, sent, lost, lostDeny, lostAllow, lostAudit)
	if sent+lost != drops+2 || lost == 0 || lostAllow != 1 || lostAudit != 1 || lostDeny+lostAllow+lostAudit != lost {
		t.Errorf("want every event sent or lost, the lost split by verdict summing to EventsLost, and the allowed and audited ones lost")
	}
	var got uint64
	for {
		er.SetDeadline(time.Now().Add(-time.Second))
		ev, err := er.Read()
		if errors.Is(err, os.ErrDeadlineExceeded) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if ev.Verdict != engine.VerdictDeny {
			t.Fatalf("event %d: %+v, want a drop's", got, ev)
		}
		got++
	}
	if got != sent {
		t.Errorf("read %d events, the kernel sent %d", got, sent)
	}
	if n, _ := er.Skipped(); n != 0 {
		t.Errorf("%d records skipped", n)
	}
}

// BenchmarkEventsToUserspace measures verdict events from the kernel
// through the ring buffer to a Go reader that decodes them (Read), with
// drops generated in the same run by BPF_PROG_TEST_RUN (repeat 1024 a
// call). paced keeps at most a quarter of the ring buffer in flight, so
// nothing is lost and events/s is what the reader sustains; flood never
// waits, and reports what the reader got and what the kernel lost.
func BenchmarkEventsToUserspace(b *testing.B) {
	for _, paced := range []bool{true, false} {
		name := "flood"
		if paced {
			name = "paced"
		}
		b.Run(name, func(b *testing.B) { benchEvents(b, paced) })
	}
}

func benchEvents(b *testing.B, paced bool) {
	d := openTest(b, nil)
	if err := d.Apply(context.Background(), eventsState()); err != nil {
		b.Fatal(err)
	}
	er, err := d.Events()
	if err != nil {
		b.Fatal(err)
	}
	var received atomic.Uint64
	done := make(chan error, 1)
	go func() {
		for {
			if _, err := er.Read(); err != nil {
				done <- err
				return
			}
			received.Add(1)
		}
	}()
	before, err := d.Counters()
	if err != nil {
		b.Fatal(err)
	}
	pkt := tcpTo(82, syn).build()
	prog := d.program(engine.Egress)
	const batch, inFlight = 1024, 11000 // a quarter of the ring's 43690 records
	b.ResetTimer()
	start := time.Now()
	for sent := 0; sent < b.N; {
		n := min(batch, b.N-sent)
		for paced && uint64(sent)-received.Load() > inFlight {
			runtime.Gosched()
		}
		if _, err := prog.Run(&ebpf.RunOptions{Data: pkt, Repeat: uint32(n)}); err != nil {
			b.Fatal(err)
		}
		sent += n
	}
	produced := time.Since(start)
	after, err := d.Counters()
	if err != nil {
		b.Fatal(err)
	}
	want := after.EventsSent - before.EventsSent
	for received.Load() < want {
		runtime.Gosched()
	}
	elapsed := time.Since(start)
	b.StopTimer()
	er.Close()
	if err := <-done; err != nil && !errors.Is(err, os.ErrClosed) && !strings.Contains(err.Error(), "closed") {
		b.Fatal(err)
	}
	lost := after.EventsLost - before.EventsLost
	if paced && lost != 0 {
		b.Errorf("paced run lost %d events", lost)
	}
	b.ReportMetric(float64(received.Load())/elapsed.Seconds(), "events/s")
	b.ReportMetric(float64(lost)/float64(max(b.N, 1)), "lost/event")
	b.ReportMetric(float64(produced.Nanoseconds())/float64(max(b.N, 1)), "kernel-ns/event")
}

// withoutHeader returns e without what the event header and TCP flags
// added to Event (type, version, time, TCP flags), for the tables of
// other tests, which compare the rest.
func withoutHeader(e Event) Event {
	e.Type, e.Version, e.Time, e.TCPFlags = 0, 0, time.Time{}, 0
	return e
}

// BenchmarkFirstPacketReported is BenchmarkPerPacket's flow=first (every
// packet creates its connection, and so is reported) with a reader
// draining the ring buffer, so every event is written, never lost: the
// cost of reporting allowed connections at creation, beside
// BenchmarkPerPacket/.../flow=first (which, with nobody reading, fills
// the ring and then mostly counts losses).
func BenchmarkFirstPacketReported(b *testing.B) {
	d := openTest(b, nil)
	er, err := d.Events()
	if err != nil {
		b.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			if _, err := er.Read(); err != nil {
				return
			}
		}
	}()
	defer func() { er.Close(); <-done }()
	for _, n := range []int{10, 100000} {
		if err := d.Apply(context.Background(), benchState(n)); err != nil {
			b.Fatal(err)
		}
		b.Run("rules="+strconv.Itoa(n)+"/path=hash/flow=first", func(b *testing.B) {
			clearTracking(b, d)
			before, _ := d.Counters()
			benchPerCall(b, d, d.objs.PalisadeFromEndpoint, 80, true)
			after, _ := d.Counters()
			if lost := after.EventsLost - before.EventsLost; lost != 0 {
				b.Logf("%d events lost", lost)
			}
		})
	}
}
