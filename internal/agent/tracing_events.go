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
	"encoding/json"
	"fmt"
	"io"
	"time"

	"github.com/palisade-dev/palisade/internal/tracing"
)

// eventLine is one tracing event as a JSON line (--tracing-events). Its
// field names are a stable, documented schema (docs/agent.md): people
// and log pipelines read it.
type eventLine struct {
	Time       time.Time `json:"time"`
	Node       string    `json:"node"`
	Policy     string    `json:"policy"`
	Hook       string    `json:"hook"`
	Attach     string    `json:"attach"`
	Selector   int       `json:"selector"`
	Action     string    `json:"action"`
	Taken      bool      `json:"taken"`
	Suppressed string    `json:"suppressed,omitempty"`
	Process    procLine  `json:"process"`
	Parent     *procLine `json:"parent,omitempty"`
	Args       []argLine `json:"args,omitempty"`
	Return     *int64    `json:"return,omitempty"`
	Revision   string    `json:"revision,omitempty"`
	Source     string    `json:"source,omitempty"`
}

type procLine struct {
	PID    uint32 `json:"pid"`
	TID    uint32 `json:"tid,omitempty"`
	Binary string `json:"binary,omitempty"`
	// Argv are the process's arguments, argv[0] first, one string each
	// (the hook's arguments are the event's "args"); ArgvTruncated says
	// the kernel kept only their first bytes and the last one is cut.
	Argv          []string `json:"argv,omitempty"`
	ArgvTruncated bool     `json:"argvTruncated,omitempty"`
	UID           uint32   `json:"uid"`
	Cgroup        uint64   `json:"cgroup,omitempty"`
	Pod           *podLine `json:"pod,omitempty"`
}

type podLine struct {
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
}

type argLine struct {
	Index int32  `json:"index"`
	Label string `json:"label,omitempty"`
	Type  string `json:"type"`
	Value string `json:"value"`
}

// tracingEvents reads the tracing datapath's events: it counts each in
// the metrics and, with an output, writes it as a JSON line.
type tracingEvents struct {
	a   *Agent
	cg  *cgroupResolver
	enc *json.Encoder
}

// NeedLeaderElection: every node reads its own events.
func (e *tracingEvents) NeedLeaderElection() bool { return false }

// Start reads events until ctx ends.
func (e *tracingEvents) Start(ctx context.Context) error {
	err := e.a.Tracing.ReadEvents(ctx, e.handle)
	if ctx.Err() != nil {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read tracing events: %w", err)
	}
	return nil
}

// handle counts and writes one event.
func (e *tracingEvents) handle(ev tracing.Event) {
	if m := e.a.Metrics; m != nil {
		m.CountTracingEvent(ev.Policy, string(ev.Action))
	}
	if e.enc == nil {
		return
	}
	if err := e.enc.Encode(e.line(&ev)); err != nil {
		e.a.Log.V(1).Info("write tracing event", "error", err.Error())
	}
}

// line is ev as a JSON line, its processes' pods named from their cgroups.
func (e *tracingEvents) line(ev *tracing.Event) *eventLine {
	l := &eventLine{Time: ev.Time.UTC(), Node: e.a.Node, Policy: ev.Policy, Hook: ev.HookPath, Attach: ev.Attach,
		Selector: ev.Selector, Action: string(ev.Action), Taken: ev.Taken, Suppressed: ev.Suppressed,
		Process: e.proc(ev.Process), Return: ev.Return, Revision: ev.Revision, Source: ev.Source}
	if ev.Parent.PID != 0 {
		p := e.proc(ev.Parent)
		l.Parent = &p
	}
	for _, a := range ev.Args {
		l.Args = append(l.Args, argLine{Index: a.Index, Label: a.Label, Type: string(a.Type), Value: a.Value})
	}
	return l
}

func (e *tracingEvents) proc(p tracing.Process) procLine {
	out := procLine{PID: p.PID, TID: p.TID, Binary: p.Binary, Argv: p.Args, ArgvTruncated: p.ArgsTruncated, UID: p.UID, Cgroup: p.CgroupID}
	if out.TID == out.PID {
		out.TID = 0 // the main thread: said once
	}
	if e.cg != nil {
		if pod, ok := e.cg.podOf(p.CgroupID); ok {
			out.Pod = &podLine{Namespace: pod.namespace, Name: pod.name}
		}
	}
	return out
}

// newTracingEvents is the agent's event reader; w may be nil (metrics
// only).
func (a *Agent) newTracingEvents(w io.Writer) *tracingEvents {
	a.subsystems()
	e := &tracingEvents{a: a}
	if a.trace != nil {
		e.cg = a.trace.cg
	}
	if w != nil {
		e.enc = json.NewEncoder(w)
		e.enc.SetEscapeHTML(false) // arguments as written: "a<b", not "a\u003cb"
	}
	return e
}
