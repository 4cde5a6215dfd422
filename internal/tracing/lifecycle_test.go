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
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/go-logr/logr/testr"

	v1 "github.com/palisade-dev/palisade/api/v1alpha1"
)

// progIDs lists the program ids behind a unit's pinned links.
func progIDs(t testing.TB, m *Manager, key string) []ebpf.ProgramID {
	t.Helper()
	m.mu.Lock()
	defer m.mu.Unlock()
	u := m.units[key]
	if u == nil {
		t.Fatalf("no unit %q", key)
	}
	var ids []ebpf.ProgramID
	for _, h := range u.plan.hooks {
		l, err := link.LoadPinnedLink(filepath.Join(u.dir, fmt.Sprintf("link_%d", h.idx)), nil)
		if err != nil {
			t.Fatalf("hook %s: %v", h.path, err)
		}
		info, err := l.Info()
		l.Close()
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, info.Program)
	}
	return ids
}

// With the agent down (Manager closed, pins kept) a new process is still
// killed; Open and Apply of the same policy adopt the unit without
// reloading it (same program ids); a changed policy replaces it.
func TestAgentDownAndAdopt(t *testing.T) {
	requireKernel(t, false)
	pin := tempPinDir(t)
	cg := newCgroup(t)
	secret := tempFile(t, "secret", "the secret\n")
	cat := which(t, "cat")
	pol := Policy{Key: "TracingPolicy test/adopt", Spec: killOpen(secret), Cgroups: []uint64{cg.id}}

	m1, err := Open(Options{PinDir: pin, Log: testr.New(t)})
	if err != nil {
		t.Fatal(err)
	}
	rs := m1.Apply(context.Background(), []Policy{pol})
	mustLoaded(t, rs)
	if rs[0].Adopted {
		t.Errorf("first Apply says adopted")
	}
	before := progIDs(t, m1, pol.Key)
	if err := m1.Close(); err != nil {
		t.Fatal(err)
	}

	// Agent down.
	if out, _, ws := run(t, cg, cat, secret); !ws.Signaled() || ws.Signal() != syscall.SIGKILL || out != "" {
		t.Fatalf("agent down: status %v, stdout %q; want SIGKILL", ws, out)
	}

	m2 := openTest(t, pin)
	rs = m2.Apply(context.Background(), []Policy{pol})
	mustLoaded(t, rs)
	if !rs[0].Adopted {
		t.Errorf("second Apply did not adopt: %+v", rs[0])
	}
	if after := progIDs(t, m2, pol.Key); fmt.Sprint(after) != fmt.Sprint(before) {
		t.Errorf("program ids %v after adoption, %v before: reloaded", after, before)
	}
	ev := collect(t, m2)
	if _, _, ws := run(t, cg, cat, secret); !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("after adoption: status %v, want SIGKILL", ws)
	}
	ev.wait(t, "event of the adopted unit", func(e Event) bool { return e.Policy == pol.Key && isFile(secret)(e) })

	// A changed spec: a new version replaces the old one.
	other := tempFile(t, "other", "other\n")
	pol.Spec = killOpen(other)
	rs = m2.Apply(context.Background(), []Policy{pol})
	mustLoaded(t, rs)
	if rs[0].Adopted {
		t.Errorf("changed spec adopted")
	}
	if out, _, ws := run(t, cg, cat, secret); ws.ExitStatus() != 0 || out != "the secret\n" {
		t.Fatalf("old version still acts: status %v", ws)
	}
	if _, _, ws := run(t, cg, cat, other); !ws.Signaled() {
		t.Fatalf("new version does not act: status %v", ws)
	}
	dirs, _ := os.ReadDir(filepath.Join(pin, "units-"+abi, safeName(pol.Key)))
	if len(dirs) != 1 {
		t.Errorf("%d versions pinned, want 1", len(dirs))
	}

	// Removed from ps: detached and unpinned.
	m2.Apply(context.Background(), nil)
	if out, _, ws := run(t, cg, cat, other); ws.ExitStatus() != 0 || out != "other\n" {
		t.Fatalf("removed unit still acts: status %v", ws)
	}
	if dirs, _ := os.ReadDir(filepath.Join(pin, "units-"+abi)); len(dirs) != 0 {
		t.Errorf("pins left: %v", dirs)
	}
}

// Verify finds a link unpinned and detached, a selector overwritten and a
// scope entry removed behind the Manager's back, reports each and
// repairs them.
func TestVerifyRepairs(t *testing.T) {
	requireKernel(t, false)
	m := openTest(t, tempPinDir(t))
	cg := newCgroup(t)
	secret := tempFile(t, "secret", "the secret\n")
	cat := which(t, "cat")
	pol := Policy{Key: "TracingPolicy test/verify", Spec: killOpen(secret), Cgroups: []uint64{cg.id}}
	mustLoaded(t, m.Apply(context.Background(), []Policy{pol}))
	if d := m.Verify(context.Background()); len(d) != 0 {
		t.Fatalf("drift right after Apply: %+v", d)
	}

	// Detach: unpin the link and close the Manager's fd.
	m.mu.Lock()
	u := m.units[pol.Key]
	os.Remove(filepath.Join(u.dir, "link_0"))
	u.links[0].Close()
	delete(u.links, 0)
	m.mu.Unlock()
	if out, _, ws := run(t, cg, cat, secret); ws.ExitStatus() != 0 || out != "the secret\n" {
		t.Fatalf("detached link still acts: status %v", ws)
	}
	d := m.Verify(context.Background())
	if len(d) != 1 || !strings.Contains(d[0].What, "detached or unpinned") || d[0].Key != pol.Key || d[0].Err != nil {
		t.Fatalf("drift = %+v, want the detached link", d)
	}
	if _, _, ws := run(t, cg, cat, secret); !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("after repair: status %v, want SIGKILL", ws)
	}

	// Maps: a selector zeroed and the scope emptied, through the pins.
	sels, err := ebpf.LoadPinnedMap(filepath.Join(u.dir, "selectors"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer sels.Close()
	if err := sels.Put(uint32(0), make([]byte, sels.ValueSize())); err != nil {
		t.Fatal(err)
	}
	scope, err := ebpf.LoadPinnedMap(filepath.Join(u.dir, "scope"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer scope.Close()
	if err := scope.Delete(cg.id); err != nil {
		t.Fatal(err)
	}
	d = m.Verify(context.Background())
	var what []string
	for _, x := range d {
		what = append(what, x.What)
	}
	if got := strings.Join(what, "; "); len(d) != 2 || !strings.Contains(got, "selectors") || !strings.Contains(got, "scope") {
		t.Fatalf("drift = %q, want selectors and scope", got)
	}
	if _, _, ws := run(t, cg, cat, secret); !ws.Signaled() {
		t.Fatalf("after map repair: status %v, want SIGKILL", ws)
	}

	// The process tracker's link unpinned: re-attached.
	m.mu.Lock()
	os.Remove(filepath.Join(m.baseDir(), "link_track_exec"))
	m.mu.Unlock()
	d = m.Verify(context.Background())
	if len(d) != 1 || d[0].Key != "base" {
		t.Fatalf("drift = %+v, want the process tracker", d)
	}
	// A base map and a unit map unpinned: pinned again.
	os.Remove(filepath.Join(m.baseDir(), "procs"))
	os.Remove(filepath.Join(u.dir, "vals_str"))
	d = m.Verify(context.Background())
	if len(d) != 2 || !strings.Contains(d[0].What, "procs") || !strings.Contains(d[1].What, "vals_str") || d[0].Err != nil || d[1].Err != nil {
		t.Fatalf("drift = %+v, want the procs and vals_str maps", d)
	}
	if d := m.Verify(context.Background()); len(d) != 0 {
		t.Fatalf("drift after repair: %+v", d)
	}
}

// 64 selectors, one with 1,000 values, load and match: the call matches
// the last selector through a value in the middle of its set.
func TestManySelectorsAndValues(t *testing.T) {
	requireKernel(t, false)
	m := openTest(t, tempPinDir(t))
	ev := collect(t, m)
	cg := newCgroup(t)
	dir := t.TempDir()
	var sels []v1.Selector
	for i := 0; i < MaxSelectorsPerHook-1; i++ {
		var vals []string
		for j := 0; j < 16; j++ {
			vals = append(vals, fmt.Sprintf("%s/s%d-v%d", dir, i, j))
		}
		sels = append(sels, v1.Selector{MatchArgs: []v1.ArgSelector{{Index: 2, Operator: "Equal", Values: vals}}})
	}
	var vals, ports []string
	for j := 0; j < 1000; j++ {
		vals = append(vals, fmt.Sprintf("%s/last-%d", dir, j))
		ports = append(ports, fmt.Sprint(j))
	}
	var terms []v1.ArgSelector
	terms = append(terms, v1.ArgSelector{Index: 2, Operator: "Equal", Values: vals})
	// 15 more terms: the selector has MaxTermsPerSelector terms.
	for i := 0; i < MaxTermsPerSelector-2; i++ {
		terms = append(terms, v1.ArgSelector{Index: 2, Operator: "NotPostfix", Values: []string{fmt.Sprintf(".no%d", i)}})
	}
	terms = append(terms, v1.ArgSelector{Index: 3, Operator: "InMap", Values: ports}) // flags 0 (O_RDONLY) is in 0..999
	sels = append(sels, v1.Selector{MatchArgs: terms, MatchActions: []v1.Action{{Action: "Sigkill"}}})
	spec := openatHook(sels...)
	rs := m.Apply(context.Background(), []Policy{{Key: "TracingPolicy test/many", Spec: spec, Cgroups: []uint64{cg.id}}})
	mustLoaded(t, rs)
	target := fmt.Sprintf("%s/last-%d", dir, 500)
	os.WriteFile(target, []byte("x"), 0o644)
	if _, _, ws := run(t, cg, which(t, "cat"), target); !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("status %v, want SIGKILL by selector 63", ws)
	}
	e := ev.wait(t, "selector 63", isFile(target))
	if e.Selector != MaxSelectorsPerHook-1 || e.Action != v1.ActionSigkill {
		t.Errorf("event selector %d action %s, want %d Sigkill", e.Selector, e.Action, MaxSelectorsPerHook-1)
	}
	mid := fmt.Sprintf("%s/s%d-v%d", dir, 40, 7)
	os.WriteFile(mid, []byte("x"), 0o644)
	run(t, cg, which(t, "cat"), mid)
	if e := ev.wait(t, "selector 40", isFile(mid)); e.Selector != 40 {
		t.Errorf("event selector %d, want 40", e.Selector)
	}
}

// Problems are per hook: a hook that does not exist and one with an
// unreadable type do not stop the others; each says why.
func TestHookProblemsArePerHook(t *testing.T) {
	requireKernel(t, false)
	m := openTest(t, tempPinDir(t))
	spec := openatHook()
	spec.Tracepoints = append(spec.Tracepoints,
		v1.TracepointHook{Subsystem: "syscalls", Event: "sys_enter_no_such_call"},
		v1.TracepointHook{Subsystem: "syscalls", Event: "sys_enter_openat", HookCommon: v1.HookCommon{Args: []v1.Arg{{Index: 2, Type: "bpf_attr"}}}},
	)
	rs := m.Apply(context.Background(), []Policy{{Key: "TracingPolicy test/problems", Spec: spec, AllProcesses: true}})
	r := rs[0]
	if r.Err != nil || r.Loaded || len(r.Hooks) != 3 {
		t.Fatalf("result = %+v, want not Loaded, no Err, 3 hooks", r)
	}
	if r.Hooks[0].State != HookLoaded {
		t.Errorf("hook 0 = %+v, want Loaded", r.Hooks[0])
	}
	if h := r.Hooks[1]; h.State != HookNotFound || !strings.Contains(h.Message, "spec.tracepoints[1]") {
		t.Errorf("hook 1 = %+v, want HookNotFound on its path", h)
	}
	if h := r.Hooks[2]; h.Path != "spec.tracepoints[2]" || h.State == HookLoaded || h.Message == "" {
		t.Errorf("hook 2 = %+v, want a positioned error", h)
	}
}

// The kprobe and kretprobe variants of the generic program pass the
// verifier (this kernel cannot attach them: no CONFIG_KPROBES), and a
// kernel-function hook on a kernel without trampolines is reported as
// NotSupported when kprobes cannot attach either.
func TestKprobeFallback(t *testing.T) {
	requireKernel(t, false)
	m := openTest(t, tempPinDir(t))
	for _, name := range []string{"generic_kprobe", "generic_kretprobe"} {
		u := &unit{maps: map[string]*ebpf.Map{}}
		for _, n := range unitMaps {
			mp, err := ebpf.NewMap(m.spec.Maps[n])
			if err != nil {
				t.Fatal(err)
			}
			defer mp.Close()
			u.maps[n] = mp
		}
		p, err := m.loadProgram(name, "", u.maps)
		if err != nil {
			var ve *ebpf.VerifierError
			errors.As(err, &ve)
			t.Fatalf("%s does not load: %v", name, err)
		}
		p.Close()
	}
	m.noTrampolines = true
	spec := v1.TracingPolicySpec{KProbes: []v1.FunctionHook{{Call: "security_file_open", HookCommon: v1.HookCommon{Args: []v1.Arg{{Index: 0, Type: "file"}}}}}}
	rs := m.Apply(context.Background(), []Policy{{Key: "TracingPolicy test/kprobe", Spec: spec, AllProcesses: true}})
	h := rs[0].Hooks[0]
	if _, err := os.Stat("/sys/kernel/tracing/kprobe_events"); err == nil {
		t.Logf("this kernel has kprobes: hook = %+v", h)
		return
	}
	if h.State != HookNotSupported || h.Attach != "kprobe/security_file_open" || !strings.Contains(h.Message, "kprobe") {
		t.Errorf("hook = %+v, want NotSupported naming fentry and kprobe", h)
	}
}

// An update none of whose hooks loads reports Err and leaves the previous
// version running: the same agent's, and one pinned before a restart.
func TestFailedUpdateKeepsPrevious(t *testing.T) {
	requireKernel(t, false)
	pin := tempPinDir(t)
	cg := newCgroup(t)
	secret := tempFile(t, "secret", "the secret\n")
	cat := which(t, "cat")
	good := Policy{Key: "TracingPolicy test/update", Spec: killOpen(secret), Cgroups: []uint64{cg.id}}
	bad := good
	bad.Spec = v1.TracingPolicySpec{Tracepoints: []v1.TracepointHook{{Subsystem: "syscalls", Event: "sys_enter_no_such_call"}}}
	killed := func(when string) {
		t.Helper()
		if _, _, ws := run(t, cg, cat, secret); !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
			t.Fatalf("%s: status %v, want the previous version to kill", when, ws)
		}
	}

	m1, err := Open(Options{PinDir: pin})
	if err != nil {
		t.Fatal(err)
	}
	mustLoaded(t, m1.Apply(context.Background(), []Policy{good}))
	rs := m1.Apply(context.Background(), []Policy{bad})
	if rs[0].Err == nil || rs[0].Loaded || rs[0].Hooks[0].State != HookNotFound {
		t.Fatalf("bad update: %+v, want Err and HookNotFound", rs[0])
	}
	killed("after a failed update")
	m1.Close()

	m2 := openTest(t, pin)
	if rs := m2.Apply(context.Background(), []Policy{bad}); rs[0].Err == nil {
		t.Fatalf("bad update after restart: %+v, want Err", rs[0])
	}
	killed("after a failed update following a restart")
	rs = m2.Apply(context.Background(), []Policy{good})
	mustLoaded(t, rs)
	if !rs[0].Adopted {
		t.Errorf("the previous version was not adopted: %+v", rs[0])
	}
	killed("after adopting the previous version")
}
