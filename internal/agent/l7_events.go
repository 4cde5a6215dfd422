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

	"github.com/palisade-dev/palisade/internal/l7"
)

// eventSource is the part of a socket datapath (bpf/l7, bpf/kafka) that
// sends verdict events (*l7.Datapath and *kafka.Datapath have it; the
// unit tests' fakes do not).
type eventSource[E any] interface {
	Events(ctx context.Context) (<-chan E, <-chan error, error)
}

// eventsPerSecond bounds the log lines of refused requests of each
// datapath: a client that is refused in a loop must not flood the
// agent's log.
const (
	l7EventsPerSecond    = 20
	kafkaEventsPerSecond = 20
)

// eventLog reads a socket datapath's verdict events and logs those line
// says to log, with what the kernel knew of the request, at most
// perSecond lines a second; the next line after a full second says how
// many were not logged. The counts per reason are the kernel's counters.
type eventLog[E any] struct {
	log logr.Logger
	src eventSource[E]
	now func() time.Time
	// line is an event's message and key-values; ok false: not logged.
	line      func(E) (msg string, kv []any, ok bool)
	perSecond int

	mu         sync.Mutex
	second     time.Time
	inSecond   int
	suppressed int
}

// l7Events logs each refused request of the L7 datapath (side, peer,
// method, path, host, reason, the status the client got, the refusing
// rule and the generation); the flows issue is to make flows of these
// events.
type l7Events = eventLog[l7.Event]

// newL7Events returns the reader of the agent's L7 datapath's events, or
// nil when it sends none.
func (a *Agent) newL7Events() *l7Events {
	src, ok := a.L7.(eventSource[l7.Event])
	if !ok || a.L7 == nil {
		return nil
	}
	return &l7Events{log: a.Log.WithName("l7-events"), src: src, now: time.Now, line: l7EventLine, perSecond: l7EventsPerSecond}
}

// Start reads events until ctx ends (a manager.Runnable).
func (e *eventLog[E]) Start(ctx context.Context) error {
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

func (e *eventLog[E]) handle(ev E) {
	msg, kv, ok := e.line(ev)
	if !ok {
		return
	}
	e.mu.Lock()
	now := e.now()
	if now.Sub(e.second) >= time.Second {
		e.second, e.inSecond = now, 0
	}
	if e.inSecond >= e.perSecond {
		e.suppressed++
		e.mu.Unlock()
		return
	}
	e.inSecond++
	suppressed := e.suppressed
	e.suppressed = 0
	e.mu.Unlock()
	if suppressed > 0 {
		kv = append(kv, "notLogged", suppressed)
	}
	e.log.Info(msg, kv...)
}

// l7EventLine is the line of a refused request; allowed requests are
// sent only when asked for, as flows, and not logged.
func l7EventLine(ev l7.Event) (string, []any, bool) {
	if ev.Allowed() {
		return "", nil, false
	}
	side := "ingress"
	if ev.Egress {
		side = "egress"
	}
	kv := []any{"side", side, "local", ev.Local.String(), "remote", ev.Remote.String(), "method", ev.Method, "path", ev.Path,
		"host", ev.Host, "reason", ev.Reason.String(), "status", ev.Status, "rule", ev.Rule, "generation", ev.Generation}
	if ev.TargetLen > uint32(len(ev.Path)) {
		kv = append(kv, "pathLength", ev.TargetLen)
	}
	return "l7 request refused", kv, true
}
