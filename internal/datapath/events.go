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
	"errors"
	"fmt"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/cilium/ebpf/ringbuf"
	"golang.org/x/sys/unix"

	"github.com/palisade-dev/palisade/bpf"
	"github.com/palisade-dev/palisade/internal/engine"
)

// Reason says why the datapath reached a verdict: the engine's reasons,
// and the datapath's own from 16 up.
type Reason uint8

// The datapath's own reasons.
const (
	// ReasonReply: the reply of a connection that the side allowed.
	ReasonReply Reason = Reason(bpf.PalisadeReasonREASON_REPLY)
	// ReasonMalformed: an IP packet the parser rejects (truncated headers,
	// bad lengths, too many IPv6 extension headers).
	ReasonMalformed Reason = Reason(bpf.PalisadeReasonREASON_MALFORMED)
	// ReasonNoEndpoint: on a workload's interface, the packet's local
	// address has no endpoint entry in the active generation (the agent
	// could not program the workload); dropped, never passed.
	ReasonNoEndpoint Reason = Reason(bpf.PalisadeReasonREASON_NO_ENDPOINT)
	// ReasonNoState: on a workload's interface, a packet before the first
	// generation; dropped.
	ReasonNoState Reason = Reason(bpf.PalisadeReasonREASON_NO_STATE)
	// ReasonDNSMalformed: a DNS query the kernel could not decide
	// (malformed, a compression pointer in a question, 0 or too many
	// questions, a name it does not match, not whole in one packet) on a
	// port whose rules restrict names.
	ReasonDNSMalformed Reason = Reason(bpf.PalisadeReasonREASON_DNS_MALFORMED)
)

func (r Reason) String() string {
	switch r {
	case ReasonReply:
		return "reply"
	case ReasonMalformed:
		return "malformed"
	case ReasonNoEndpoint:
		return "no-endpoint"
	case ReasonDNSMalformed:
		return "dns-malformed"
	case ReasonNoState:
		return "no-state"
	}
	if r <= Reason(engine.ReasonL7Denied) {
		return engine.Reason(r).String()
	}
	return fmt.Sprintf("reason-%d", uint8(r))
}

// EventType is the type in an event's header: what the event is.
type EventType uint8

// Event types the kernel writes.
const (
	// EventVerdict is a verdict event (Event).
	EventVerdict EventType = EventType(bpf.PalisadeEventTypeEVENT_TYPE_VERDICT)
)

// The layout versions of each type that this package decodes.
const (
	// VerdictEventVersion is the layout of bpf.PalisadeVerdictEvent.
	VerdictEventVersion = uint8(bpf.PalisadeEventVersionVERDICT_EVENT_VERSION)
)

// eventHeaderSize and verdictEventSize are the sizes of the C structs
// event_header and verdict_event (TestEventLayout checks them against the
// object's BTF).
var (
	eventHeaderSize  = int(unsafe.Sizeof(bpf.PalisadeEventHeader{}))
	verdictEventSize = int(unsafe.Sizeof(bpf.PalisadeVerdictEvent{}))
)

// ErrUnknownEvent is what a record with a header this package cannot
// decode is: an unknown type, an unknown version of a known type, or a
// length that is not the type's. EventReader.Read counts such records and
// skips them (Skipped); decoding one directly returns an error that wraps
// ErrUnknownEvent.
var ErrUnknownEvent = errors.New("unknown event")

// TCP flags as Event.TCPFlags holds them (the TCP header's flags byte).
const (
	TCPFlagFIN = 0x01
	TCPFlagSYN = 0x02
	TCPFlagRST = 0x04
	TCPFlagPSH = 0x08
	TCPFlagACK = 0x10
	TCPFlagURG = 0x20
	TCPFlagECE = 0x40
	TCPFlagCWR = 0x80
)

// Event is a verdict the datapath reports: every denied packet, each
// allowed connection when its conntrack entry is created (its first
// packet), each connection that an audit-mode policy would have dropped,
// once, and every allowed packet while SetEventsAllowed(true).
type Event struct {
	// Type and Version are the event's header: EventVerdict, and the
	// layout version it was decoded from.
	Type    EventType
	Version uint8
	// Time is when the kernel wrote the event: its CLOCK_BOOTTIME
	// timestamp, as wall-clock time (see bootClock).
	Time          time.Time
	Generation    uint64
	Ifindex       int
	Direction     engine.Direction
	Verdict       engine.Verdict
	Reason        Reason
	Rule          engine.RuleID
	LocalIdentity engine.Identity
	PeerIdentity  engine.Identity
	Src, Dst      netip.Addr
	Proto         engine.Proto
	SrcPort       uint16 // ICMP echo: the identifier
	DstPort       uint16
	// Port is the policy port: the destination port or the ICMP type.
	Port uint16
	// Fragment is set for a fragment of a fragmented datagram.
	Fragment bool
	// TCPFlags are the packet's TCP flags (TCPFlag*); 0 for other
	// protocols, and for a later fragment (which has no TCP header).
	TCPFlags uint8
}

// bootClock turns the kernel's CLOCK_BOOTTIME timestamps into wall time:
// wall = now - (boottime(now) - ts). It reads both clocks when made and
// again once a second, so a step of the wall clock (NTP, settimeofday) is
// followed within a second. CLOCK_BOOTTIME counts time in suspend, so the
// offset survives a suspend as well.
type bootClock struct {
	offset  time.Duration // wall - boottime
	sampled time.Time     // when offset was read (monotonic)
}

func (c *bootClock) wall(bootNs uint64) time.Time {
	now := time.Now()
	if c.sampled.IsZero() || now.Sub(c.sampled) > time.Second {
		var ts unix.Timespec
		if err := unix.ClockGettime(unix.CLOCK_BOOTTIME, &ts); err == nil {
			now = time.Now()
			c.offset = time.Duration(now.UnixNano() - ts.Nano())
			c.sampled = now
		}
	}
	return time.Unix(0, int64(bootNs)+int64(c.offset))
}

// decodeHeader reads an event's header and checks its length against the
// record's.
func decodeHeader(raw []byte) (bpf.PalisadeEventHeader, error) {
	var h bpf.PalisadeEventHeader
	if len(raw) < eventHeaderSize {
		return h, fmt.Errorf("%w: %d bytes, shorter than the %d-byte header", ErrUnknownEvent, len(raw), eventHeaderSize)
	}
	copy(unsafe.Slice((*byte)(unsafe.Pointer(&h)), eventHeaderSize), raw)
	if int(h.Len) > len(raw) || int(h.Len) < eventHeaderSize {
		return h, fmt.Errorf("%w: type %d version %d: header length %d, record %d bytes", ErrUnknownEvent, h.Type, h.Version, h.Len, len(raw))
	}
	return h, nil
}

// decodeEvent decodes a verdict event; clk turns its time into wall time.
func decodeEvent(raw []byte, clk *bootClock) (Event, error) {
	h, err := decodeHeader(raw)
	if err != nil {
		return Event{}, err
	}
	if EventType(h.Type) != EventVerdict {
		return Event{}, fmt.Errorf("%w: type %d (version %d, %d bytes)", ErrUnknownEvent, h.Type, h.Version, h.Len)
	}
	if h.Version != VerdictEventVersion || int(h.Len) != verdictEventSize {
		return Event{}, fmt.Errorf("%w: verdict event version %d of %d bytes (this agent decodes version %d of %d bytes)",
			ErrUnknownEvent, h.Version, h.Len, VerdictEventVersion, verdictEventSize)
	}
	var e bpf.PalisadeVerdictEvent
	// The kernel wrote the struct in this machine's layout and byte order
	// (TestEventLayout); copying it into a Go value keeps the alignment.
	copy(unsafe.Slice((*byte)(unsafe.Pointer(&e)), verdictEventSize), raw)
	src, dst := netip.AddrFrom16(e.Saddr), netip.AddrFrom16(e.Daddr)
	if e.Family == familyIPv4 {
		src, dst = netip.AddrFrom4([4]byte(e.Saddr[:4])), netip.AddrFrom4([4]byte(e.Daddr[:4]))
	}
	return Event{
		Type:          EventType(h.Type),
		Version:       h.Version,
		Time:          clk.wall(h.Time),
		Generation:    e.Generation,
		Ifindex:       int(e.Ifindex),
		Direction:     engine.Direction(e.Direction),
		Verdict:       engine.Verdict(e.Verdict),
		Reason:        Reason(e.Reason),
		Rule:          engine.RuleID(e.Rule),
		LocalIdentity: engine.Identity(e.LocalIdentity),
		PeerIdentity:  engine.Identity(e.PeerIdentity),
		Src:           src,
		Dst:           dst,
		Proto:         engine.Proto(e.Proto),
		SrcPort:       e.Sport,
		DstPort:       e.Dport,
		Port:          e.Port,
		Fragment:      e.Flags&1 != 0,
		TCPFlags:      e.TcpFlags,
	}, nil
}

// eventsPoll is how long a blocked Read waits before it looks for events
// the kernel wrote without a wakeup: the programs wake the reader only when
// the unread data crosses 64 KiB (bpf/palisade.c, events_wakeup), so this
// bounds how late an event of light traffic is read.
const eventsPoll = 50 * time.Millisecond

// EventReader reads verdict events from the ring buffer. One reader at a
// time should consume a datapath's events.
type EventReader struct {
	deadline time.Time // SetDeadline's
	rd       *ringbuf.Reader
	rec      ringbuf.Record
	clk      bootClock
	skipped  atomic.Uint64
	mu       sync.Mutex
	lastErr  error
}

// Events opens the ring buffer of verdict events.
func (d *Datapath) Events() (*EventReader, error) {
	rd, err := ringbuf.NewReader(d.objs.Events)
	if err != nil {
		return nil, fmt.Errorf("open events: %w", err)
	}
	return &EventReader{rd: rd}, nil
}

// Read blocks until an event arrives, the deadline passes
// (os.ErrDeadlineExceeded) or the reader is closed (ringbuf.ErrClosed).
// A record it cannot decode (ErrUnknownEvent: an unknown type or version,
// as a newer kernel program may write) is counted and skipped, never
// returned; Skipped reports them.
func (r *EventReader) Read() (Event, error) {
	for {
		dl := time.Now().Add(eventsPoll)
		if !r.deadline.IsZero() && r.deadline.Before(dl) {
			dl = r.deadline
		}
		r.rd.SetDeadline(dl)
		if err := r.rd.ReadInto(&r.rec); err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) && (r.deadline.IsZero() || time.Now().Before(r.deadline)) {
				continue // the poll's deadline, not the caller's
			}
			return Event{}, err
		}
		ev, err := decodeEvent(r.rec.RawSample, &r.clk)
		if err == nil {
			return ev, nil
		}
		r.skipped.Add(1)
		r.mu.Lock()
		r.lastErr = err
		r.mu.Unlock()
	}
}

// Skipped returns how many records Read skipped because it could not
// decode them, and the error of the last one (nil when none).
func (r *EventReader) Skipped() (uint64, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.skipped.Load(), r.lastErr
}

// SetDeadline sets when Read gives up; the zero time waits forever, a
// time in the past makes Read return what is already there, or
// os.ErrDeadlineExceeded.
// Call it from the goroutine that reads.
func (r *EventReader) SetDeadline(t time.Time) { r.deadline = t }

// Close stops the reader; a blocked Read returns ringbuf.ErrClosed.
func (r *EventReader) Close() error { return r.rd.Close() }
