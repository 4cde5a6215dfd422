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
	"time"

	"github.com/palisade-dev/palisade/internal/kafka"
)

// kafkaEvents logs each refused Kafka request (and each one an audit-mode
// rule would refuse) with what the kernel knew of it (the socket's and the
// peer's addresses, and "egress" when it was decided on the client's
// side, API key and version, correlation ID, client ID, topic, reason,
// the answer the client got, the deciding rule and the generation), as l7Events does HTTP's (palisade_kafka_requests_total
// counts them per reason).
type kafkaEvents = eventLog[kafka.Event]

// newKafkaEvents returns the reader of the agent's Kafka datapath's
// events, or nil when it sends none.
func (a *Agent) newKafkaEvents() *kafkaEvents {
	if a.Kafka == nil {
		return nil
	}
	src, ok := a.Kafka.(eventSource[kafka.Event])
	if !ok {
		return nil
	}
	return &kafkaEvents{log: a.Log.WithName("kafka-events"), src: src, now: time.Now, line: kafkaEventLine, perSecond: kafkaEventsPerSecond}
}

// kafkaEventLine is the line of a refused request or of one an
// audit-mode rule would refuse; allowed requests are sent only when asked
// for, as flows, and not logged.
func kafkaEventLine(ev kafka.Event) (string, []any, bool) {
	audit := ev.Reason == kafka.ReasonAudit
	if ev.Allowed() && !audit {
		return "", nil, false
	}
	kv := []any{"local", ev.Local.String(), "remote", ev.Remote.String(), "apiKey", ev.APIKey, "apiVersion", ev.APIVersion,
		"correlationID", ev.Correlation, "clientID", ev.ClientID, "topic", ev.Topic, "reason", ev.Reason.String(),
		"answer", ev.Answer.String(), "rule", ev.Rule, "generation", ev.Generation}
	if ev.Egress {
		// decided on the client's side: local is the client's address
		kv = append(kv, "egress", true)
	}
	if ev.ClientLen > len(ev.ClientID) {
		kv = append(kv, "clientIDLength", ev.ClientLen)
	}
	if ev.TopicLen > len(ev.Topic) {
		kv = append(kv, "topicLength", ev.TopicLen)
	}
	if audit {
		return "kafka request passed; an audit-mode rule would refuse it", kv, true
	}
	return "kafka request refused", kv, true
}
