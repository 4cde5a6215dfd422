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
	"net/netip"
	"strings"
	"testing"

	"github.com/palisade-dev/palisade/internal/kafka"
)

// TestKafkaEventsLogged: a refused Kafka request's event is logged with
// its fields, an audit-mode one with its own message; allowed ones are
// not; past kafkaEventsPerSecond in one second the rest are counted and
// said by the next line logged.
func TestKafkaEventsLogged(t *testing.T) {
	refused := kafka.Event{Generation: 4, Reason: kafka.ReasonDenied, Answer: kafka.AnswerError, Rule: 11, List: 7, APIKey: 0, APIVersion: 9,
		Correlation: 42, ClientID: strings.Repeat("c", kafka.EventClientMax), ClientLen: 100, Topic: "secret", TopicLen: 6,
		Local: netip.MustParseAddrPort("10.0.0.3:9092"), Remote: netip.MustParseAddrPort("10.0.0.2:40000")}
	first := []kafka.Event{{Reason: kafka.ReasonAllowed, Answer: kafka.AnswerPassed, Topic: "public"}}
	for range kafkaEventsPerSecond + 5 {
		first = append(first, refused)
	}
	first = append(first, kafka.Event{Reason: kafka.ReasonAllowed, Answer: kafka.AnswerPassed})
	lines := logEvents(t, kafkaEventLine, kafkaEventsPerSecond, first,
		[]kafka.Event{{Reason: kafka.ReasonAudit, Answer: kafka.AnswerPassed, Topic: "audited", Egress: true}})
	if len(lines) != kafkaEventsPerSecond+1 {
		t.Fatalf("%d lines, want %d: %q", len(lines), kafkaEventsPerSecond+1, lines)
	}
	for _, want := range []string{`"local"="10.0.0.3:9092"`, `"remote"="10.0.0.2:40000"`, `"apiKey"=0`, `"apiVersion"=9`, `"correlationID"=42`,
		`"topic"="secret"`, `"reason"="denied"`, `"answer"="error-29"`, `"rule"=11`, `"generation"=4`, `"clientIDLength"=100`} {
		if !strings.Contains(lines[0], want) {
			t.Errorf("line %q lacks %s", lines[0], want)
		}
	}
	if strings.Contains(strings.Join(lines, "\n"), "public") {
		t.Errorf("an allowed request was logged: %q", lines)
	}
	last := lines[len(lines)-1]
	if !strings.Contains(last, `"notLogged"=5`) || !strings.Contains(last, `"topic"="audited"`) || !strings.Contains(last, "audit-mode") ||
		!strings.Contains(last, `"egress"=true`) {
		t.Errorf("last line %q: want the audit-mode request decided on the client's side, saying 5 were not logged", last)
	}
	if strings.Contains(lines[0], "egress") {
		t.Errorf("line %q: the broker's side's request says egress", lines[0])
	}
}
