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

package kafka

import (
	"context"
	"encoding/binary"
	"io"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	kafkabpf "github.com/palisade-dev/palisade/bpf/kafka"
	"github.com/palisade-dev/palisade/internal/engine"
)

// roundTrip writes one request frame on c and reads the answer frame,
// returning its correlation ID.
func roundTrip(t *testing.T, c net.Conn, f []byte) int32 {
	t.Helper()
	if err := c.SetDeadline(time.Now().Add(10 * time.Second)); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Write(f); err != nil {
		t.Fatalf("write request: %v", err)
	}
	var hdr [8]byte
	if _, err := io.ReadFull(c, hdr[:]); err != nil {
		t.Fatalf("read answer: %v", err)
	}
	n := binary.BigEndian.Uint32(hdr[:4])
	if _, err := io.CopyN(io.Discard, c, int64(n)-4); err != nil {
		t.Fatalf("read answer body: %v", err)
	}
	return int32(binary.BigEndian.Uint32(hdr[4:]))
}

// nextEvent waits for the next event (the test's context bounds it).
func nextEvent(t *testing.T, ctx context.Context, evs <-chan Event, errs <-chan error) Event {
	t.Helper()
	select {
	case e, ok := <-evs:
		if !ok {
			t.Fatal("the events channel closed")
		}
		return e
	case err := <-errs:
		t.Fatalf("events: %v", err)
	case <-ctx.Done():
		t.Fatal("no kafka event before the deadline")
	}
	return Event{}
}

// TestKafkaEventsRefusedAndAllowed: a refused Produce request on a real
// connection to a kfake broker yields exactly one event naming its key,
// version, correlation ID, client ID, topic, the answer given, the
// reason, the deciding rule, list, generation and the connection's
// 4-tuple; an allowed request yields none until a generation asks for
// allowed events, then one; a client ID longer than the event holds is
// cut off with its whole length said.
func TestKafkaEventsRefusedAndAllowed(t *testing.T) {
	b := startBroker(t, ordersOnly())
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	evs, errs, err := b.d.Events(ctx)
	if err != nil {
		t.Fatal(err)
	}
	broker := netip.MustParseAddrPort(b.addr)
	c, err := net.Dial("tcp", b.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	client := netip.MustParseAddrPort(c.LocalAddr().String())

	// Allowed, no event asked for; then refused: the first event is the
	// refusal's.
	id := "events-client-1"
	if got := roundTrip(t, c, frame(request(0, 9, []string{"orders"}), &id, 4241)); got != 4241 {
		t.Fatalf("allowed produce answered under correlation %d", got)
	}
	if got := roundTrip(t, c, frame(request(0, 9, []string{"secret"}), &id, 4242)); got != 4242 {
		t.Fatalf("refused produce answered under correlation %d", got)
	}
	e := nextEvent(t, ctx, evs, errs)
	want := Event{Generation: 1, Reason: ReasonDenied, Answer: AnswerError, Rule: 10, List: 7, APIKey: 0, APIVersion: 9,
		Correlation: 4242, ClientID: id, ClientLen: len(id), Topic: "secret", TopicLen: len("secret"),
		Local: broker, Remote: client, Cookie: e.Cookie}
	if e != want {
		t.Fatalf("refusal event\n %+v, want\n %+v", e, want)
	}
	if e.Cookie == 0 || e.Allowed() {
		t.Fatalf("refusal event %v: want a socket cookie, not allowed", e)
	}

	// Allowed events asked for by generation 2.
	kl, err := engine.CompileKafkaList(ordersOnly())
	if err != nil {
		t.Fatal(err)
	}
	b.d.SetAllowedEvents(true)
	if err := b.d.Apply(2, &engine.KafkaTables{Lists: map[engine.L7ID]*engine.KafkaList{7: kl}},
		[]Binding{{Addr: broker.Addr(), Port: broker.Port(), List: 7}}); err != nil {
		t.Fatal(err)
	}
	long := strings.Repeat("c", 100)
	if got := roundTrip(t, c, frame(request(0, 9, []string{"orders"}), &long, 4243)); got != 4243 {
		t.Fatalf("allowed produce answered under correlation %d", got)
	}
	e = nextEvent(t, ctx, evs, errs)
	want = Event{Generation: 2, Reason: ReasonAllowed, Answer: AnswerPassed, Rule: 10, List: 7, APIKey: 0, APIVersion: 9,
		Correlation: 4243, ClientID: long[:EventClientMax], ClientLen: 100, Topic: "orders", TopicLen: len("orders"),
		Local: broker, Remote: client, Cookie: want.Cookie}
	if e != want {
		t.Fatalf("allowed event\n %+v, want\n %+v", e, want)
	}
	if !e.Allowed() {
		t.Fatalf("allowed event %v: Allowed() false", e)
	}

	// A refusal that closes: Metadata naming both topics, whose answer
	// does not fit in the request.
	short := "m"
	if _, err := c.Write(frame(request(3, 11, []string{"orders", "secret"}), &short, 4244)); err != nil {
		t.Fatal(err)
	}
	e = nextEvent(t, ctx, evs, errs)
	if e.Correlation != 4244 || e.APIKey != 3 || e.Answer != AnswerClosed || e.Reason != ReasonDenied || e.Topic != "secret" || e.ClientID != "m" || e.Generation != 2 {
		t.Fatalf("closing refusal event %+v: want correlation 4244, Metadata, closed, denied, topic secret, client m, generation 2", e)
	}
	cnt, err := b.d.Counters()
	if err != nil {
		t.Fatal(err)
	}
	if cnt[ReasonEventsLost] != 0 {
		t.Fatalf("counters %v: events lost", cnt)
	}
}

// TestKafkaEventLayout: the Go limits are bpf/kafka/kafka.h's.
func TestKafkaEventLayout(t *testing.T) {
	var k kafkabpf.KafkaKafkaEvent
	if len(k.Client) != EventClientMax || len(k.Topic) != EventTopicMax {
		t.Fatalf("struct kafka_event holds %d client ID and %d topic bytes; Go says %d and %d", len(k.Client), len(k.Topic), EventClientMax, EventTopicMax)
	}
}
