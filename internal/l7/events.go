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

package l7

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"net/netip"
	"unsafe"

	l7bpf "github.com/palisade-dev/palisade/bpf/l7"
	"github.com/palisade-dev/palisade/internal/sockl7"
)

// What an Event holds of a request at most (longer ones are cut off;
// TargetLen says the whole target's length).
const (
	EventMethodMax = 16
	EventPathMax   = 128
	EventHostMax   = 64
)

// Event is the kernel's verdict on one request (l7_events): every refused
// request and refusal before a decision, and every allowed request of a
// generation applied after SetAllowedEvents(true).
type Event struct {
	Generation uint64
	// Egress is true for a request a local client wrote (an egress
	// binding), false for one a local server received.
	Egress bool
	Reason Reason
	// Status is what the client was given: 403 (answered by the kernel),
	// 400 (the request was overwritten with an invalid line, which the
	// server answers 400 after its pending answers), 0 (passed if
	// allowed; else dropped, ReasonRedirectFail counted).
	Status uint16
	// Rule is the deciding rule (the allowing one, or the lowest refusing
	// one); 0 for refusals before a decision.
	Rule uint32
	// List is the binding's list (0: none).
	List uint32
	// Method, Path and Host as sent, cut off at EventMethodMax,
	// EventPathMax and EventHostMax bytes; empty when the refusal came
	// before them (e.g. TLS). TargetLen is the target's whole length.
	Method, Path, Host string
	TargetLen          uint32
	// Local is the enforcing side's address and port (the server for
	// ingress, the client for egress), Remote the peer's.
	Local, Remote netip.AddrPort
	Cookie        uint64
}

// Allowed reports whether the request was passed.
func (e Event) Allowed() bool { return e.Reason == ReasonAllowed || e.Reason == ReasonAudit }

func (e Event) String() string {
	dir := "ingress"
	if e.Egress {
		dir = "egress"
	}
	return fmt.Sprintf("gen %d %s %v->%v %s %q host %q: %v status %d rule %d list %d",
		e.Generation, dir, e.Remote, e.Local, e.Method, e.Path, e.Host, e.Reason, e.Status, e.Rule, e.List)
}

const eventSize = int(unsafe.Sizeof(l7bpf.L7L7Event{}))

func decodeEvent(b []byte) (Event, error) {
	if len(b) < eventSize {
		return Event{}, fmt.Errorf("l7 event of %d bytes, want %d", len(b), eventSize)
	}
	var k l7bpf.L7L7Event
	if err := binary.Read(bytes.NewReader(b[:eventSize]), binary.NativeEndian, &k); err != nil {
		return Event{}, fmt.Errorf("decode l7 event: %w", err)
	}
	e := Event{
		Generation: k.Generation, Egress: k.Dir == uint8(l7bpf.L7L7DirL7DIR_EGRESS), Reason: Reason(k.Reason),
		Status: k.Status, Rule: k.Rule, List: k.List, TargetLen: k.TargetLen, Cookie: k.Cookie,
		Method: string(k.Method[:min(int(k.MethodLen), EventMethodMax)]),
		Path:   string(k.Path[:min(int(k.PathLen), EventPathMax)]),
		Host:   string(k.Host[:min(int(k.HostLen), EventHostMax)]),
	}
	e.Local, e.Remote = sockl7.EventAddrs(k.Family, k.Local, k.Remote, k.LocalPort, k.RemotePort)
	return e, nil
}

// Events reads the verdict events until ctx ends; the channel is closed
// then (or when the ring buffer cannot be read: the error is sent on errs,
// which has room for one). Events the ring buffer had no room for are
// counted (ReasonEventsLost), not sent.
func (d *Datapath) Events(ctx context.Context) (<-chan Event, <-chan error, error) {
	return sockl7.Events(ctx, d.objs.L7Events, "l7_events", decodeEvent)
}
