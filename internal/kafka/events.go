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
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"net/netip"
	"unsafe"

	kafkabpf "github.com/palisade-dev/palisade/bpf/kafka"
	"github.com/palisade-dev/palisade/internal/sockl7"
)

// What an Event holds of a request's client ID and topic at most (longer
// ones are cut off; ClientLen and TopicLen say the whole lengths), as
// bpf/kafka/kafka.h sizes struct kafka_event.
const (
	EventClientMax = 64
	EventTopicMax  = 128
)

// kafkaEvAllowed is KAFKA_EV_ALLOWED, the kafka_config flag that asks
// for an event per allowed request, as bpf/kafka/kafka.h defines it.
const kafkaEvAllowed = 1

// Answer is what the client of a decided request was given.
type Answer uint8

// The answers, as enum kafka_kind names them in an event.
const (
	// AnswerDropped: the request was refused and its answer could not be
	// written: it was dropped (ReasonAnswerErr counted).
	AnswerDropped = Answer(kafkabpf.KafkaKafkaKindKAFKA_KIND_NEED_MORE)
	// AnswerPassed: the request went to the broker.
	AnswerPassed = Answer(kafkabpf.KafkaKafkaKindKAFKA_KIND_REQUEST)
	// AnswerError: the kernel answered in the request's place with
	// TOPIC_AUTHORIZATION_FAILED (29) for the refused topics (and
	// LEADER_NOT_AVAILABLE for a refused Metadata request's allowed ones).
	AnswerError = Answer(kafkabpf.KafkaKafkaKindKAFKA_KIND_ANSWER)
	// AnswerClosed: the kernel sent a frame that makes the client close
	// the connection, and drops every later byte of it.
	AnswerClosed = Answer(kafkabpf.KafkaKafkaKindKAFKA_KIND_CLOSE)
)

func (a Answer) String() string {
	switch a {
	case AnswerDropped:
		return "dropped"
	case AnswerPassed:
		return "passed"
	case AnswerError:
		return "error-29"
	case AnswerClosed:
		return "connection-closed"
	}
	return fmt.Sprintf("answer-%d", uint8(a))
}

// Event is the kernel's verdict on one request (kafka_events): every
// refused request, every request passed that an audit-mode rule would
// refuse, and every allowed request of a generation applied after
// SetAllowedEvents(true). Requests on a connection after a closing
// refusal are dropped without events (ReasonDropped counts them).
type Event struct {
	Generation uint64
	Reason     Reason
	Answer     Answer
	// Rule is the deciding rule (the allowing one, or the lowest refusing
	// one); 0 when none decided (e.g. a malformed request).
	Rule uint32
	// List is the binding's list.
	List        uint32
	APIKey      int16
	APIVersion  int16
	Correlation int32
	// ClientID and Topic as sent, cut off at EventClientMax and
	// EventTopicMax bytes; ClientLen and TopicLen are their whole
	// lengths. Topic is the topic that decided the request (of several,
	// the first refused one, else the first), empty when none was read.
	ClientID, Topic     string
	ClientLen, TopicLen int
	// Local is the broker's address and port, Remote the client's; on
	// Egress (a client's request decided on its own side: an egress
	// binding) Local is the client's and Remote the broker's.
	Local, Remote netip.AddrPort
	Cookie        uint64
	Egress        bool
}

// Allowed reports whether the request was passed to the broker.
func (e Event) Allowed() bool { return e.Answer == AnswerPassed }

func (e Event) String() string {
	from, to := e.Remote, e.Local
	if e.Egress {
		from, to = e.Local, e.Remote
	}
	return fmt.Sprintf("gen %d %v->%v key %d v%d corr %d client %q topic %q: %v, %v, rule %d list %d",
		e.Generation, from, to, e.APIKey, e.APIVersion, e.Correlation, e.ClientID, e.Topic, e.Reason, e.Answer, e.Rule, e.List)
}

const eventSize = int(unsafe.Sizeof(kafkabpf.KafkaKafkaEvent{}))

func decodeEvent(b []byte) (Event, error) {
	if len(b) < eventSize {
		return Event{}, fmt.Errorf("kafka event of %d bytes, want %d", len(b), eventSize)
	}
	var k kafkabpf.KafkaKafkaEvent
	if err := binary.Read(bytes.NewReader(b[:eventSize]), binary.NativeEndian, &k); err != nil {
		return Event{}, fmt.Errorf("decode kafka event: %w", err)
	}
	e := Event{
		Generation: k.Generation, Reason: Reason(k.Reason), Answer: Answer(k.Answer), Rule: k.Rule, List: k.List,
		APIKey: k.ApiKey, APIVersion: k.ApiVersion, Correlation: k.Correlation, Cookie: k.Cookie,
		ClientID: string(k.Client[:min(int(k.ClientLen), EventClientMax)]), ClientLen: int(k.ClientFull),
		Topic: string(k.Topic[:min(int(k.TopicLen), EventTopicMax)]), TopicLen: int(k.TopicFull),
		Egress: k.Dir == uint8(kafkabpf.KafkaKafkaDirKAFKA_DIR_EGRESS),
	}
	e.Local, e.Remote = sockl7.EventAddrs(k.Family, k.Local, k.Remote, k.LocalPort, k.RemotePort)
	return e, nil
}

// Events reads the verdict events until ctx ends; the channel is closed
// then (or when the ring buffer cannot be read: the error is sent on errs,
// which has room for one). Events the ring buffer had no room for are
// counted (ReasonEventsLost), not sent.
func (d *Datapath) Events(ctx context.Context) (<-chan Event, <-chan error, error) {
	return sockl7.Events(ctx, d.objs.KafkaEvents, "kafka_events", decodeEvent)
}
