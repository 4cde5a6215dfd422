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

package agent

import (
	"context"
	"sync"
	"time"

	"github.com/go-logr/logr"

	"github.com/palisade-dev/palisade/internal/kafka"
)

// kafkaEventSource is the part of the Kafka datapath that sends verdict
// events (*kafka.Datapath has it; the unit tests' fake does not).
type kafkaEventSource interface {
	Events(ctx context.Context) (<-chan kafka.Event, <-chan error, error)
}

// kafkaEventsPerSecond bounds the log lines of refused Kafka requests, as
// l7EventsPerSecond does HTTP's.
const kafkaEventsPerSecond = 20

// kafkaEvents reads the Kafka datapath's verdict events and logs each
// refused request (and each one an audit-mode rule would refuse) with
// what the kernel knew of it (broker and client addresses, API key and
// version, correlation ID, client ID, topic, reason, the answer the
// client got, the deciding rule and the generation), at most
// kafkaEventsPerSecond lines a second; the next line after a full second
// says how many were not logged. The counts per reason are the kernel's
// counters (palisade_kafka_requests_total).
type kafkaEvents struct {
	log logr.Logger
	src kafkaEventSource
	now func() time.Time

	mu         sync.Mutex
	second     time.Time
	inSecond   int
	suppressed int
}

// newKafkaEvents returns the reader of the agent's Kafka datapath's
// events, or nil when it sends none.
func (a *Agent) newKafkaEvents() *kafkaEvents {
	if a.Kafka == nil {
		return nil
	}
	src, ok := a.Kafka.(kafkaEventSource)
	if !ok {
		return nil
	}
	return &kafkaEvents{log: a.Log.WithName("kafka-events"), src: src, now: time.Now}
}

// Start reads events until ctx ends (a manager.Runnable).
func (e *kafkaEvents) Start(ctx context.Context) error {
	ch, errs, err := e.src.Events(ctx)
	if err != nil {
		return err
	}
	for ev := range ch {
		e.handle(ev)
	}
	select {
	case err := <-errs:
		return err
	default:
		return nil
	}
}

func (e *kafkaEvents) handle(ev kafka.Event) {
	audit := ev.Reason == kafka.ReasonAudit
	if ev.Allowed() && !audit {
		return // allowed requests are sent only when asked for, as flows
	}
	e.mu.Lock()
	now := e.now()
	if now.Sub(e.second) >= time.Second {
		e.second, e.inSecond = now, 0
	}
	if e.inSecond >= kafkaEventsPerSecond {
		e.suppressed++
		e.mu.Unlock()
		return
	}
	e.inSecond++
	suppressed := e.suppressed
	e.suppressed = 0
	e.mu.Unlock()
	kv := []any{"local", ev.Local.String(), "remote", ev.Remote.String(), "apiKey", ev.APIKey, "apiVersion", ev.APIVersion,
		"correlationID", ev.Correlation, "clientID", ev.ClientID, "topic", ev.Topic, "reason", ev.Reason.String(),
		"answer", ev.Answer.String(), "rule", ev.Rule, "generation", ev.Generation}
	if ev.ClientLen > len(ev.ClientID) {
		kv = append(kv, "clientIDLength", ev.ClientLen)
	}
	if ev.TopicLen > len(ev.Topic) {
		kv = append(kv, "topicLength", ev.TopicLen)
	}
	if suppressed > 0 {
		kv = append(kv, "notLogged", suppressed)
	}
	msg := "kafka request refused"
	if audit {
		msg = "kafka request passed; an audit-mode rule would refuse it"
	}
	e.log.Info(msg, kv...)
}
