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
	"bytes"
	"encoding/binary"
	"fmt"
	"net/netip"
	"time"

	"github.com/cilium/ebpf/ringbuf"

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
)

func (r Reason) String() string {
	switch r {
	case ReasonReply:
		return "reply"
	case ReasonMalformed:
		return "malformed"
	case ReasonNoEndpoint:
		return "no-endpoint"
	case ReasonNoState:
		return "no-state"
	}
	if r <= Reason(engine.ReasonL7Denied) {
		return engine.Reason(r).String()
	}
	return fmt.Sprintf("reason-%d", uint8(r))
}

// Event is a verdict the datapath reports: every denied packet, and each
// connection that an audit-mode policy would have dropped.
type Event struct {
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
}

func decodeEvent(raw []byte) (Event, error) {
	var e bpf.PalisadeEvent
	if err := binary.Read(bytes.NewReader(raw), binary.NativeEndian, &e); err != nil {
		return Event{}, fmt.Errorf("decode event: %w", err)
	}
	src, dst := netip.AddrFrom16(e.Saddr), netip.AddrFrom16(e.Daddr)
	if e.Family == familyIPv4 {
		src, dst = netip.AddrFrom4([4]byte(e.Saddr[:4])), netip.AddrFrom4([4]byte(e.Daddr[:4]))
	}
	return Event{
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
	}, nil
}

// EventReader reads verdict events from the ring buffer. One reader at a
// time should consume a datapath's events.
type EventReader struct {
	rd  *ringbuf.Reader
	rec ringbuf.Record
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
func (r *EventReader) Read() (Event, error) {
	if err := r.rd.ReadInto(&r.rec); err != nil {
		return Event{}, err
	}
	return decodeEvent(r.rec.RawSample)
}

// SetDeadline sets when Read gives up; the zero time waits forever, a
// time in the past makes Read return what is already there, or
// os.ErrDeadlineExceeded.
func (r *EventReader) SetDeadline(t time.Time) { r.rd.SetDeadline(t) }

// Close stops the reader; a blocked Read returns ringbuf.ErrClosed.
func (r *EventReader) Close() error { return r.rd.Close() }
