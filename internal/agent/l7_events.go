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

// l7EventSource is the part of the L7 datapath that sends verdict events
// (*l7.Datapath has it; the unit tests' fake does not).
type l7EventSource interface {
	Events(ctx context.Context) (<-chan l7.Event, <-chan error, error)
}

// l7EventsPerSecond bounds the log lines of refused requests: a client
// that is refused in a loop must not flood the agent's log.
const l7EventsPerSecond = 20

// l7Events reads the L7 datapath's verdict events and logs each refused
// request with what the kernel knew of it (side, peer, method, path,
// host, reason, the status the client got, the refusing rule and the
// generation), at most l7EventsPerSecond lines a second; the next line
// after a full second says how many were not logged. The counts per
// reason are the kernel's counters (palisade_l7_requests_total); the
// flows issue is to make flows of these events.
type l7Events struct {
	log logr.Logger
	src l7EventSource
	now func() time.Time

	mu         sync.Mutex
	second     time.Time
	inSecond   int
	suppressed int
}

// newL7Events returns the reader of the agent's L7 datapath's events, or
// nil when it sends none.
func (a *Agent) newL7Events() *l7Events {
	src, ok := a.L7.(l7EventSource)
	if !ok || a.L7 == nil {
		return nil
	}
	return &l7Events{log: a.Log.WithName("l7-events"), src: src, now: time.Now}
}

// Start reads events until ctx ends (a manager.Runnable).
func (e *l7Events) Start(ctx context.Context) error {
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

func (e *l7Events) handle(ev l7.Event) {
	if ev.Allowed() {
		return // allowed requests are sent only when asked for, as flows
	}
	e.mu.Lock()
	now := e.now()
	if now.Sub(e.second) >= time.Second {
		e.second, e.inSecond = now, 0
	}
	if e.inSecond >= l7EventsPerSecond {
		e.suppressed++
		e.mu.Unlock()
		return
	}
	e.inSecond++
	suppressed := e.suppressed
	e.suppressed = 0
	e.mu.Unlock()
	side := "ingress"
	if ev.Egress {
		side = "egress"
	}
	kv := []any{"side", side, "local", ev.Local.String(), "remote", ev.Remote.String(), "method", ev.Method, "path", ev.Path,
		"host", ev.Host, "reason", ev.Reason.String(), "status", ev.Status, "rule", ev.Rule, "generation", ev.Generation}
	if ev.TargetLen > uint32(len(ev.Path)) {
		kv = append(kv, "pathLength", ev.TargetLen)
	}
	if suppressed > 0 {
		kv = append(kv, "notLogged", suppressed)
	}
	e.log.Info("l7 request refused", kv...)
}
