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
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	v1 "github.com/palisade-dev/palisade/api/v1alpha1"
)

// wantSyscallAttach checks how a syscall hook attached: fentry/fexit
// where the kernel loads trampoline programs, else the syscall's
// tracepoint, saying why.
func wantSyscallAttach(t *testing.T, h HookResult, fentry, tracepoint string) {
	t.Helper()
	if err := probeFentry(); err == nil {
		if h.Attach != fentry {
			t.Errorf("attach = %q, want %q (fentry loads here)", h.Attach, fentry)
		}
		return
	}
	if !strings.HasPrefix(h.Attach, tracepoint+" (syscall kprobe: ") || !strings.Contains(h.Attach, "not loadable on this kernel") {
		t.Errorf("attach = %q, want %q with the reason (fentry does not load here)", h.Attach, tracepoint)
	}
}

// The seed example process-execution's shape: sys_execve as a syscall
// kprobe with its filename as a string. Where fentry does not load, it
// runs on syscalls/sys_enter_execve with the same arguments and selectors.
func TestSyscallKprobeExecve(t *testing.T) {
	requireKernel(t, false)
	m := openTest(t, tempPinDir(t))
	ev := collect(t, m)
	cg := newCgroup(t)
	dir := t.TempDir()
	bin := filepath.Join(dir, "true-copy")
	copyFile(t, which(t, "true"), bin)
	spec := v1.TracingPolicySpec{KProbes: []v1.FunctionHook{{
		Call: "sys_execve", Syscall: ptr(true),
		HookCommon: v1.HookCommon{
			Args: []v1.Arg{{Index: 0, Type: "string", Label: label("filename")}},
			Selectors: []v1.Selector{{
				MatchArgs:    []v1.ArgSelector{{Index: 0, Operator: "Prefix", Values: []string{dir + "/"}}},
				MatchActions: []v1.Action{{Action: "Notify"}},
			}},
		},
	}}}
	rs := m.Apply(context.Background(), []Policy{{Key: "TracingPolicy test/execve", Spec: spec, Cgroups: []uint64{cg.id}}})
	mustLoaded(t, rs)
	wantSyscallAttach(t, rs[0].Hooks[0], "fentry/__x64_sys_execve", "tracepoint/syscalls/sys_enter_execve")

	if _, _, ws := run(t, cg, bin); ws.ExitStatus() != 0 {
		t.Fatalf("%s: status %v", bin, ws)
	}
	e := ev.wait(t, "execve of "+bin, func(e Event) bool { return len(e.Args) == 1 && e.Args[0].Value == bin })
	if e.HookPath != "spec.kprobes[0]" || e.Args[0].Label != "filename" || e.Action != v1.ActionNotify || e.Process.CgroupID != cg.id ||
		e.Attach != rs[0].Hooks[0].Attach || e.Return != nil {
		t.Errorf("event = %+v", e)
	}
	// Out of scope: the same exec is not reported (the scope's own
	// execs are, and come first: the reader keeps order per CPU only, so
	// the check is on the process's cgroup).
	if _, _, ws := run(t, nil, bin); ws.ExitStatus() != 0 {
		t.Fatalf("%s out of scope: status %v", bin, ws)
	}
	if _, _, ws := run(t, cg, bin); ws.ExitStatus() != 0 {
		t.Fatalf("%s: status %v", bin, ws)
	}
	ev.wait(t, "the second execve in scope", func(x Event) bool {
		return x.Process.PID != e.Process.PID && len(x.Args) == 1 && x.Args[0].Value == bin
	})
	ev.mu.Lock()
	defer ev.mu.Unlock()
	for _, x := range ev.list {
		if x.Process.CgroupID != cg.id {
			t.Errorf("event of a process outside the scope: %+v", x)
		}
	}
}

// openat as a syscall kprobe with Sigkill on the file: killed before the
// open returns to it, as with fentry; another file is untouched.
func TestSyscallKprobeOpenatSigkill(t *testing.T) {
	requireKernel(t, false)
	m := openTest(t, tempPinDir(t))
	ev := collect(t, m)
	cg := newCgroup(t)
	secret := tempFile(t, "secret", "the secret\n")
	other := tempFile(t, "other", "other\n")
	cat := which(t, "cat")
	spec := v1.TracingPolicySpec{KProbes: []v1.FunctionHook{{
		Call: "sys_openat", Syscall: ptr(true),
		HookCommon: v1.HookCommon{
			Args: []v1.Arg{{Index: 0, Type: "int", Label: label("dfd")}, {Index: 1, Type: "string", Label: label("filename")}, {Index: 2, Type: "int", Label: label("flags")}},
			Selectors: []v1.Selector{{
				MatchArgs:    []v1.ArgSelector{{Index: 1, Operator: "Equal", Values: []string{secret}}},
				MatchActions: []v1.Action{{Action: "Sigkill"}},
			}},
		},
	}}}
	rs := m.Apply(context.Background(), []Policy{{Key: "TracingPolicy test/openat-kill", Spec: spec, Cgroups: []uint64{cg.id}}})
	mustLoaded(t, rs)
	wantSyscallAttach(t, rs[0].Hooks[0], "fentry/__x64_sys_openat", "tracepoint/syscalls/sys_enter_openat")

	if out, _, ws := run(t, cg, cat, secret); !ws.Signaled() || ws.Signal() != syscall.SIGKILL || out != "" {
		t.Fatalf("in scope: status %v, stdout %q; want SIGKILL and nothing read", ws, out)
	}
	e := ev.wait(t, "Sigkill of the secret's open", func(e Event) bool { return len(e.Args) == 3 && e.Args[1].Value == secret })
	// AT_FDCWD (-100) and O_RDONLY as cat opens: integers of the
	// syscall's registers, sign-extended as declared.
	if e.Action != v1.ActionSigkill || !e.Taken || e.Args[0].Value != "-100" || e.Args[2].Value != "0" || e.Process.Binary != cat {
		t.Errorf("event = %+v", e)
	}
	if out, _, ws := run(t, cg, cat, other); ws.ExitStatus() != 0 || out != "other\n" {
		t.Fatalf("another file: status %v, stdout %q", ws, out)
	}
	if out, _, ws := run(t, nil, cat, secret); ws.ExitStatus() != 0 || out != "the secret\n" {
		t.Fatalf("out of scope: status %v, stdout %q", ws, out)
	}
}

// A return syscall hook: matchReturnArgs on openat's return value
// (-ENOENT) together with matchArgs on its filename, which the hook reads
// at return from the task's registers as fexit does.
func TestSyscallKprobeReturn(t *testing.T) {
	requireKernel(t, false)
	m := openTest(t, tempPinDir(t))
	ev := collect(t, m)
	cg := newCgroup(t)
	dir := t.TempDir()
	present := tempFile(t, "present", "here\n")
	missing := filepath.Join(dir, "missing")
	cat := which(t, "cat")
	spec := v1.TracingPolicySpec{KProbes: []v1.FunctionHook{{
		Call: "sys_openat", Syscall: ptr(true), Return: ptr(true),
		ReturnArg: &v1.Arg{Index: 0, Type: "int"},
		HookCommon: v1.HookCommon{
			Args: []v1.Arg{{Index: 1, Type: "string", Label: label("filename")}},
			Selectors: []v1.Selector{{
				MatchArgs:       []v1.ArgSelector{{Index: 1, Operator: "Prefix", Values: []string{filepath.Dir(present) + "/", dir + "/"}}},
				MatchReturnArgs: []v1.ArgSelector{{Index: 0, Operator: "Equal", Values: []string{"-2"}}},
				MatchActions:    []v1.Action{{Action: "Notify"}},
			}},
		},
	}}}
	rs := m.Apply(context.Background(), []Policy{{Key: "TracingPolicy test/openat-ret", Spec: spec, Cgroups: []uint64{cg.id}}})
	mustLoaded(t, rs)
	wantSyscallAttach(t, rs[0].Hooks[0], "fexit/__x64_sys_openat", "tracepoint/syscalls/sys_exit_openat")

	if out, _, ws := run(t, cg, cat, present); ws.ExitStatus() != 0 || out != "here\n" {
		t.Fatalf("cat %s: status %v, stdout %q", present, ws, out)
	}
	if _, _, ws := run(t, cg, cat, missing); ws.ExitStatus() == 0 {
		t.Fatalf("cat %s: status %v, want a failure", missing, ws)
	}
	e := ev.wait(t, "openat of the missing file returning -ENOENT", func(e Event) bool { return len(e.Args) == 1 && e.Args[0].Value == missing })
	if e.Return == nil || *e.Return != -2 || e.Process.Binary != cat {
		t.Errorf("event = %+v, want return -2", e)
	}
	ev.mu.Lock()
	defer ev.mu.Unlock()
	for _, x := range ev.list {
		if len(x.Args) == 1 && x.Args[0].Value == present {
			t.Errorf("the successful open was reported: %+v", x)
		}
	}
}

// A syscall hook attached through its tracepoint is adopted after a
// restart as such: the same program, and Attach still says how.
func TestSyscallKprobeAdopted(t *testing.T) {
	requireKernel(t, false)
	pin := tempPinDir(t)
	cg := newCgroup(t)
	secret := tempFile(t, "secret", "the secret\n")
	cat := which(t, "cat")
	p := Policy{Key: "TracingPolicy test/openat-adopt", Cgroups: []uint64{cg.id}, Spec: v1.TracingPolicySpec{KProbes: []v1.FunctionHook{{
		Call: "sys_openat", Syscall: ptr(true),
		HookCommon: v1.HookCommon{
			Args: []v1.Arg{{Index: 1, Type: "string"}},
			Selectors: []v1.Selector{{
				MatchArgs:    []v1.ArgSelector{{Index: 1, Operator: "Equal", Values: []string{secret}}},
				MatchActions: []v1.Action{{Action: "Sigkill"}},
			}},
		},
	}}}}
	m1, err := Open(Options{PinDir: pin})
	if err != nil {
		t.Fatal(err)
	}
	rs := m1.Apply(context.Background(), []Policy{p})
	mustLoaded(t, rs)
	before := progIDs(t, m1, p.Key)
	m1.Close()
	if _, _, ws := run(t, cg, cat, secret); !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("agent down: status %v, want SIGKILL", ws)
	}
	m2 := openTest(t, pin)
	rs2 := m2.Apply(context.Background(), []Policy{p})
	mustLoaded(t, rs2)
	if !rs2[0].Adopted || rs2[0].Hooks[0].Attach != rs[0].Hooks[0].Attach {
		t.Errorf("after restart: adopted %v, attach %q; want adopted, attach %q", rs2[0].Adopted, rs2[0].Hooks[0].Attach, rs[0].Hooks[0].Attach)
	}
	if after := progIDs(t, m2, p.Key); len(after) != 1 || len(before) != 1 || after[0] != before[0] {
		t.Errorf("program ids %v before, %v after: reloaded", before, after)
	}
}

// Policy names may hold dots (Tetragon's
// process.credentials.changes.at.syscalls does); bpffs refuses dots in
// names, so the pin directory has none, and the unit loads.
func TestKeyWithDots(t *testing.T) {
	requireKernel(t, false)
	m := openTest(t, tempPinDir(t))
	p := Policy{Key: "ClusterTracingPolicy process.credentials.changes", Spec: openatHook(), Cgroups: []uint64{newCgroup(t).id}}
	mustLoaded(t, m.Apply(context.Background(), []Policy{p}))
	if strings.Contains(safeName(p.Key), ".") {
		t.Errorf("pin dir name %q has a dot", safeName(p.Key))
	}
}
