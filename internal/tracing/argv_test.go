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
	"encoding/binary"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/cilium/ebpf"

	v1 "github.com/palisade-dev/palisade/api/v1alpha1"
	bt "github.com/palisade-dev/palisade/bpf/tracing"
)

func TestSplitArgv(t *testing.T) {
	for _, c := range []struct {
		in   string
		want []string
	}{
		{"", nil},
		{"/bin/sh\x00", []string{"/bin/sh"}},
		{"/bin/sh\x00-c\x00echo hello world\x00", []string{"/bin/sh", "-c", "echo hello world"}},
		{"a\x00\x00b\x00", []string{"a", "", "b"}}, // an empty argument stays
		{"a\x00bc", []string{"a", "bc"}},           // cut: the last argument has no NUL
		{"\x00", []string{""}},                     // argv[0] empty (execve with no argv)
	} {
		if got := splitArgv([]byte(c.in)); !slices.Equal(got, c.want) || (got == nil) != (c.want == nil) {
			t.Errorf("splitArgv(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

// The C and Go sides agree on how many bytes of argv are kept.
func TestArgvLayout(t *testing.T) {
	var pi bt.TracingProcInfo
	var ev bt.TracingTraceEvent
	if len(pi.Argv) != MaxArgvBytes || len(ev.Argv) != MaxArgvBytes || len(ev.Pargv) != MaxArgvBytes {
		t.Errorf("argv: proc_info %d, event %d/%d bytes; MaxArgvBytes %d", len(pi.Argv), len(ev.Argv), len(ev.Pargv), MaxArgvBytes)
	}
	spec, err := bt.LoadTracing()
	if err != nil {
		t.Fatal(err)
	}
	procs := spec.Maps["procs"]
	if procs.ValueSize != uint32(binary.Size(pi)) || procs.ValueSize != 24+MaxStringBytes+1+MaxArgvBytes {
		t.Errorf("procs value: %d bytes, Go %d", procs.ValueSize, binary.Size(pi))
	}
	if procs.MaxEntries != 65536 {
		t.Errorf("procs holds %d entries; docs/tracing.md says 65536", procs.MaxEntries)
	}
}

// argvSpec notifies execve (its filename) and openat (its filename) of
// the processes in scope.
func argvSpec() v1.TracingPolicySpec {
	hook := func(call string) v1.FunctionHook {
		return v1.FunctionHook{Call: v1.Symbol(call), Syscall: ptr(true), HookCommon: v1.HookCommon{
			Args: []v1.Arg{{Index: argIndex(call), Type: "string", Label: label("filename")}},
		}}
	}
	return v1.TracingPolicySpec{KProbes: []v1.FunctionHook{hook("sys_execve"), hook("sys_openat")}}
}

func argIndex(call string) int32 {
	if call == "sys_openat" {
		return 1
	}
	return 0
}

// A shell runs echo: the exec event names the shell and its arguments
// (the forked child that execs has its parent's until it execs), and
// echo's own opens name echo's arguments and the shell as parent.
func TestProcessArgs(t *testing.T) {
	requireKernel(t, false)
	m := openTest(t, tempPinDir(t))
	ev := collect(t, m)
	cg := newCgroup(t)
	rs := m.Apply(context.Background(), []Policy{{Key: "TracingPolicy test/argv", Spec: argvSpec(), Cgroups: []uint64{cg.id}}})
	mustLoaded(t, rs)

	sh := which(t, "sh") // /usr/bin/dash on Debian
	echo := which(t, "echo")
	script := echo + " hello world; exit 0" // not the last command: the shell forks, then execs
	cmd := exec.Command("/bin/sh", "-c", script)
	cmd.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: cg.fd}
	out, err := cmd.Output()
	if err != nil || string(out) != "hello world\n" {
		t.Fatalf("sh: %v, stdout %q", err, out)
	}
	shPID := uint32(cmd.Process.Pid)
	shArgs := []string{"/bin/sh", "-c", script}

	e := ev.wait(t, "execve of "+echo, func(e Event) bool {
		return e.HookPath == "spec.kprobes[0]" && len(e.Args) == 1 && e.Args[0].Value == echo
	})
	t.Logf("execve of echo: process %+v, parent %+v", e.Process, e.Parent)
	if e.Process.Binary != sh || !slices.Equal(e.Process.Args, shArgs) || e.Process.ArgsTruncated {
		t.Errorf("execve's caller (the shell's child before exec) = %+v; want %s with %q", e.Process, sh, shArgs)
	}
	if e.Parent.PID != shPID || e.Parent.Binary != sh || !slices.Equal(e.Parent.Args, shArgs) || !slices.Contains(e.Parent.Args, "-c") {
		t.Errorf("execve's parent = %+v; want the shell %d, %s with %q", e.Parent, shPID, sh, shArgs)
	}

	o := ev.wait(t, "an openat by echo", func(e Event) bool {
		return e.HookPath == "spec.kprobes[1]" && e.Process.Binary == echo
	})
	t.Logf("openat by echo: process %+v, parent %+v", o.Process, o.Parent)
	if want := []string{echo, "hello", "world"}; !slices.Equal(o.Process.Args, want) || o.Process.ArgsTruncated {
		t.Errorf("echo's openat: process %+v; want arguments %q", o.Process, want)
	}
	if got := strings.Join(o.Process.Args, " "); !strings.HasSuffix(got, "echo hello world") {
		t.Errorf("echo's arguments joined = %q", got)
	}
	if o.Parent.PID != shPID || o.Parent.Binary != sh || !slices.Equal(o.Parent.Args, shArgs) {
		t.Errorf("echo's openat: parent %+v; want the shell %d with %q", o.Parent, shPID, shArgs)
	}

	// The command alone: a shell may exec it in place, so the shell is
	// the exec's caller, or its parent when it forks (dash 0.5.12 forks).
	cmd = exec.Command("/bin/sh", "-c", echo+" hello world")
	cmd.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: cg.fd}
	if out, err := cmd.Output(); err != nil || string(out) != "hello world\n" {
		t.Fatalf("sh: %v, stdout %q", err, out)
	}
	pid := uint32(cmd.Process.Pid)
	e = ev.wait(t, "execve of "+echo+" by the second shell", func(e Event) bool {
		return e.HookPath == "spec.kprobes[0]" && len(e.Args) == 1 && e.Args[0].Value == echo && (e.Process.PID == pid || e.Parent.PID == pid)
	})
	t.Logf("execve of echo in place: process %+v, parent %+v", e.Process, e.Parent)
	shell := e.Parent
	if e.Process.PID == pid {
		shell = e.Process
	}
	if want := []string{"/bin/sh", "-c", echo + " hello world"}; shell.Binary != sh || !slices.Equal(shell.Args, want) {
		t.Errorf("the shell %d in the exec's event = %+v; want %s with %q", pid, shell, sh, want)
	}
	o = ev.wait(t, "an openat by the second echo", func(e Event) bool {
		return e.HookPath == "spec.kprobes[1]" && (e.Process.PID == pid || e.Parent.PID == pid) && e.Process.Binary == echo
	})
	if want := []string{echo, "hello", "world"}; !slices.Equal(o.Process.Args, want) {
		t.Errorf("the second echo's openat: process %+v; want arguments %q", o.Process, want)
	}
}

// Arguments longer than MaxArgvBytes are cut at the bound and flagged,
// at exec and in /proc seeding alike.
func TestProcessArgsTruncated(t *testing.T) {
	requireKernel(t, false)
	m := openTest(t, tempPinDir(t))
	ev := collect(t, m)
	cg := newCgroup(t)
	rs := m.Apply(context.Background(), []Policy{{Key: "TracingPolicy test/argv-long", Spec: argvSpec(), Cgroups: []uint64{cg.id}}})
	mustLoaded(t, rs)

	tr := which(t, "true")
	long := strings.Repeat("x", 300)
	if _, _, ws := run(t, cg, tr, "short", long); ws.ExitStatus() != 0 {
		t.Fatalf("true: status %v", ws)
	}
	o := ev.wait(t, "an openat by true", func(e Event) bool { return e.HookPath == "spec.kprobes[1]" && e.Process.Binary == tr })
	wantCut(t, "exec", o.Process, []string{tr, "short", long})
}

// wantCut checks args are want's first MaxArgvBytes bytes (with their
// NULs), flagged as cut.
func wantCut(t *testing.T, what string, p Process, want []string) {
	t.Helper()
	full := strings.Join(want, "\x00") + "\x00"
	cut := splitArgv([]byte(full[:MaxArgvBytes]))
	if !p.ArgsTruncated || !slices.Equal(p.Args, cut) {
		t.Errorf("%s: args %q (truncated %v); want %q, truncated", what, p.Args, p.ArgsTruncated, cut)
	}
	if n := len(strings.Join(p.Args, "\x00")) + 1; n != MaxArgvBytes+1 {
		t.Errorf("%s: %d bytes of arguments kept, want %d", what, n-1, MaxArgvBytes)
	}
}

// A process that started before Open has its arguments from /proc: in
// the process map, in its own events and as the parent of its children.
func TestProcessArgsSeeded(t *testing.T) {
	requireKernel(t, false)
	cg := newCgroup(t)
	tr := which(t, "true")
	// The shell waits for a line, then forks and execs true.
	script := "read x; " + tr + " after-read; exit 0"
	cmd := exec.Command("/bin/sh", "-c", script, "seeded", strings.Repeat("y", 300))
	cmd.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: cg.fd}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil { // returns once the shell is exec'd
		t.Fatal(err)
	}
	t.Cleanup(func() {
		stdin.Close()
		cmd.Process.Kill()
		cmd.Wait()
	})
	pid := uint32(cmd.Process.Pid)
	shArgs := []string{"/bin/sh", "-c", script, "seeded", strings.Repeat("y", 300)}

	m := openTest(t, tempPinDir(t))
	var pi bt.TracingProcInfo
	if err := m.base["procs"].Lookup(pid, &pi); err != nil {
		t.Fatalf("the shell %d is not in the process map after Open: %v", pid, err)
	}
	seeded := Process{Args: splitArgv(pi.Argv[:pi.ArgvLen]), ArgsTruncated: pi.Flags&procArgvTrunc != 0}
	if pi.Flags&procProcfs == 0 {
		t.Errorf("the shell's entry: flags %#x, want seeded from /proc", pi.Flags)
	}
	wantCut(t, "seeded from /proc", seeded, shArgs)

	ev := collect(t, m)
	rs := m.Apply(context.Background(), []Policy{{Key: "TracingPolicy test/argv-seeded", Spec: argvSpec(), Cgroups: []uint64{cg.id}}})
	mustLoaded(t, rs)
	if _, err := stdin.Write([]byte("go\n")); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("sh: %v", err)
	}
	e := ev.wait(t, "execve of "+tr, func(e Event) bool {
		return e.HookPath == "spec.kprobes[0]" && len(e.Args) == 1 && e.Args[0].Value == tr
	})
	if e.Parent.PID != pid {
		t.Fatalf("execve's parent = %+v, want the shell %d", e.Parent, pid)
	}
	wantCut(t, "the seeded parent", e.Parent, shArgs)
	wantCut(t, "its forked child", e.Process, shArgs)
	o := ev.wait(t, "an openat by true", func(e Event) bool { return e.HookPath == "spec.kprobes[1]" && e.Process.Binary == tr })
	if want := []string{tr, "after-read"}; !slices.Equal(o.Process.Args, want) || o.Process.ArgsTruncated {
		t.Errorf("true's openat: process %+v, want arguments %q", o.Process, want)
	}
}

// /proc/<pid>/cmdline as seeding reads it: this process's arguments.
func TestReadArgv(t *testing.T) {
	b, trunc := readArgv(uint32(os.Getpid()))
	full := strings.Join(os.Args, "\x00") + "\x00"
	if len(full) > MaxArgvBytes {
		if !trunc || string(b) != full[:MaxArgvBytes] {
			t.Errorf("readArgv = %q, %v; want %q cut", b, trunc, full[:MaxArgvBytes])
		}
	} else if trunc || string(b) != full {
		t.Errorf("readArgv = %q, %v; want %q", b, trunc, full)
	}
	if b, trunc := readArgv(1 << 30); b != nil || trunc {
		t.Errorf("readArgv of no process = %q, %v", b, trunc)
	}
}

// Pins of the previous ABI (v2: a process map without arguments) are not
// adopted: Open builds its own base beside them, and Apply removes them.
func TestPreviousABIPinsNotAdopted(t *testing.T) {
	requireKernel(t, false)
	pin := tempPinDir(t)
	if abi != "v3" {
		t.Fatalf("abi = %s: this test names v2 as the previous one", abi)
	}
	old := filepath.Join(pin, "base-v2")
	if err := os.MkdirAll(filepath.Join(pin, "units-v2", "x"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(old, 0o700); err != nil {
		t.Fatal(err)
	}
	// v2's proc_info: 24 bytes and the binary, 280 bytes.
	mp, err := ebpf.NewMap(&ebpf.MapSpec{Type: ebpf.LRUHash, KeySize: 4, ValueSize: 280, MaxEntries: 16})
	if err != nil {
		t.Fatal(err)
	}
	defer mp.Close()
	if err := mp.Pin(filepath.Join(old, "procs")); err != nil {
		t.Fatal(err)
	}
	m := openTest(t, pin)
	if got, want := m.base["procs"].ValueSize(), uint32(binary.Size(bt.TracingProcInfo{})); got != want {
		t.Fatalf("procs value %d bytes, want %d (this ABI's)", got, want)
	}
	if m.baseDir() != filepath.Join(pin, "base-v3") {
		t.Errorf("base dir %s", m.baseDir())
	}
	m.Apply(context.Background(), nil)
	for _, d := range []string{"base-v2", "units-v2"} {
		if _, err := os.Stat(filepath.Join(pin, d)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s after Apply: %v, want removed", d, err)
		}
	}
}
