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

package tracing

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	v1 "github.com/palisade-dev/palisade/api/v1alpha1"
)

// A __data_loc field (sched/sched_process_exec's filename, as the example
// policies/examples/platform/process-exec.cue reads it: index 0, Prefix)
// reads as a string, declared data_loc or string.
func TestDataLocTracepoint(t *testing.T) {
	requireKernel(t, false)
	m := openTest(t, tempPinDir(t))
	ev := collect(t, m)
	cg := newCgroup(t)
	dir := t.TempDir()
	bin := filepath.Join(dir, "true-copy")
	copyFile(t, which(t, "true"), bin)
	other := which(t, "true")
	var ps []Policy
	for _, typ := range []v1.ArgType{"data_loc", "string"} {
		ps = append(ps, Policy{Key: "TracingPolicy test/exec-" + string(typ), Cgroups: []uint64{cg.id}, Spec: v1.TracingPolicySpec{
			Tracepoints: []v1.TracepointHook{{Subsystem: "sched", Event: "sched_process_exec", HookCommon: v1.HookCommon{
				Args: []v1.Arg{{Index: 0, Type: typ, Label: label("filename")}},
				Selectors: []v1.Selector{{
					MatchArgs:    []v1.ArgSelector{{Index: 0, Operator: "Prefix", Values: []string{dir + "/"}}},
					MatchActions: []v1.Action{{Action: "Notify"}},
				}},
			}}},
		}})
	}
	rs := m.Apply(context.Background(), ps)
	mustLoaded(t, rs)
	if _, _, ws := run(t, cg, other); ws.ExitStatus() != 0 {
		t.Fatalf("%s: status %v", other, ws)
	}
	if _, _, ws := run(t, cg, bin); ws.ExitStatus() != 0 {
		t.Fatalf("%s: status %v", bin, ws)
	}
	for _, p := range ps {
		e := ev.wait(t, p.Key+" of "+bin, func(e Event) bool { return e.Policy == p.Key })
		if len(e.Args) != 1 || e.Args[0].Value != bin || e.Args[0].Label != "filename" || e.Process.CgroupID != cg.id {
			t.Errorf("event = %+v", e)
		}
	}
	ev.mu.Lock()
	defer ev.mu.Unlock()
	for _, e := range ev.list {
		if len(e.Args) == 1 && !strings.HasPrefix(e.Args[0].Value, dir+"/") {
			t.Errorf("an exec outside the prefix was reported: %+v", e)
		}
	}
}

// rateLimit: 100 opens of a file by one process within the window give
// one event and 99 counted as rate limited; another process has its own
// window.
func TestRateLimit(t *testing.T) {
	requireKernel(t, false)
	m := openTest(t, tempPinDir(t))
	ev := collect(t, m)
	cg := newCgroup(t)
	file := tempFile(t, "often", "x\n")
	const key = "TracingPolicy test/rate"
	rs := m.Apply(context.Background(), []Policy{{Key: key, Cgroups: []uint64{cg.id}, Spec: openatHook(v1.Selector{
		MatchArgs:    []v1.ArgSelector{{Index: 2, Operator: "Equal", Values: []string{file}}},
		MatchActions: []v1.Action{{Action: "Notify", RateLimit: "1h"}},
	})}})
	mustLoaded(t, rs)
	// dash opens the file for the builtin's redirection in its own
	// process: 100 openat calls by one process.
	script := fmt.Sprintf(`i=0; while [ $i -lt 100 ]; do : < %s; i=$((i+1)); done`, file)
	sh := which(t, "sh")
	for round := 1; round <= 2; round++ {
		if _, errOut, ws := run(t, cg, sh, "-c", script); ws.ExitStatus() != 0 {
			t.Fatalf("round %d: status %v: %s", round, ws, errOut)
		}
		st, err := m.Stats()
		if err != nil {
			t.Fatal(err)
		}
		// The counters are written before each call returns: final when
		// the process has exited.
		if got, lim := st.Events[key][v1.ActionNotify], st.Suppressed["rate limited"]; got != uint64(round) || lim != uint64(99*round) {
			t.Errorf("after process %d: %d events, %d rate limited; want %d and %d", round, got, lim, round, 99*round)
		}
	}
	// The events themselves: one per process.
	deadline := time.Now().Add(10 * time.Second)
	for {
		ev.mu.Lock()
		pids := map[uint32]int{}
		for _, e := range ev.list {
			if e.Policy == key {
				pids[e.Process.PID]++
			}
		}
		ev.mu.Unlock()
		if len(pids) == 2 {
			for pid, n := range pids {
				if n != 1 {
					t.Errorf("process %d: %d events, want 1", pid, n)
				}
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("events by process %v, want one for each of 2 processes", pids)
		}
		select {
		case <-ev.cond:
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// rateLimit compiles to the selector's window; on another action than
// Notify it has no effect (the validator warns, PAL515).
func TestCompileRateLimit(t *testing.T) {
	k := testKernel(t)
	for _, c := range []struct {
		action v1.ActionType
		rate   string
		want   time.Duration
	}{
		{"Notify", "1m", time.Minute},
		{"Notify", "30", 30 * time.Second},
		{"Sigkill", "1m", 0},
	} {
		spec := lsmFileOpen(v1.Selector{MatchActions: []v1.Action{{Action: c.action, RateLimit: c.rate}}})
		h := compile(k, Policy{Key: "k", Spec: spec}, noHost).hooks[0]
		if h.state != "" || len(h.sels) != 1 || time.Duration(h.sels[0].RateNs) != c.want {
			t.Errorf("%s rateLimit %q: state %q %q, window %v; want %v", c.action, c.rate, h.state, h.msg, time.Duration(h.sels[0].RateNs), c.want)
		}
	}
}
