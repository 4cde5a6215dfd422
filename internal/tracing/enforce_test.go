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
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	v1 "github.com/palisade-dev/palisade/api/v1alpha1"
)

// openatHook hooks syscalls/sys_enter_openat with its filename (field 2)
// and flags (field 3).
func openatHook(sel ...v1.Selector) v1.TracingPolicySpec {
	return v1.TracingPolicySpec{Tracepoints: []v1.TracepointHook{{
		Subsystem: "syscalls", Event: "sys_enter_openat",
		HookCommon: v1.HookCommon{
			Args:      []v1.Arg{{Index: 2, Type: "string", Label: label("filename")}, {Index: 3, Type: "int", Label: label("flags")}},
			Selectors: sel,
		},
	}}}
}

func killOpen(file string, extra ...v1.Selector) v1.TracingPolicySpec {
	return openatHook(append([]v1.Selector{{
		MatchArgs:    []v1.ArgSelector{{Index: 2, Operator: "Equal", Values: []string{file}}},
		MatchActions: []v1.Action{{Action: "Sigkill"}},
	}}, extra...)...)
}

func isFile(file string) func(Event) bool {
	return func(e Event) bool { return len(e.Args) > 0 && e.Args[0].Value == file }
}

// Sigkill at sys_enter_openat of a protected test file: the process in
// the scoped cgroup dies of SIGKILL before the open, so it read nothing;
// the same binary outside the cgroup reads the file; the event carries
// the policy, hook, selector source, revision, process and args.
func TestSigkillInScope(t *testing.T) {
	requireKernel(t, false)
	m := openTest(t, tempPinDir(t))
	ev := collect(t, m)
	cg := newCgroup(t)
	secret := tempFile(t, "secret", "the secret\n")
	cat := which(t, "cat")
	rs := m.Apply(context.Background(), []Policy{{
		Key:      "TracingPolicy test/kill-secret",
		Spec:     killOpen(secret),
		Cgroups:  []uint64{cg.id},
		Revision: "rev1",
		Sources:  map[string]string{"spec.tracepoints[0].selectors[0]": "kill.yaml:9", "spec.tracepoints[0]": "kill.yaml:3"},
	}})
	mustLoaded(t, rs)
	if got := rs[0].Hooks[0].Attach; got != "tracepoint/syscalls/sys_enter_openat" {
		t.Errorf("attach = %q", got)
	}

	out, _, ws := run(t, cg, cat, secret)
	if !ws.Signaled() || ws.Signal() != syscall.SIGKILL || out != "" {
		t.Fatalf("in scope: status %v, stdout %q; want killed by SIGKILL, nothing read", ws, out)
	}
	e := ev.wait(t, "Sigkill of the secret's open", isFile(secret))
	if e.Action != v1.ActionSigkill || !e.Taken || e.Suppressed != "" || e.Policy != "TracingPolicy test/kill-secret" ||
		e.HookPath != "spec.tracepoints[0]" || e.Selector != 0 || e.Source != "kill.yaml:9" || e.Revision != "rev1" ||
		e.Process.Binary != cat || e.Process.CgroupID != cg.id || e.Args[0].Label != "filename" || e.Parent.PID != uint32(os.Getpid()) {
		t.Errorf("event = %+v", e)
	}

	if out, stderr, ws := run(t, nil, cat, secret); ws.ExitStatus() != 0 || out != "the secret\n" {
		t.Fatalf("out of scope: status %v, stdout %q, stderr %q; want the file read", ws, out, stderr)
	}
	other := tempFile(t, "other", "other\n")
	if out, _, ws := run(t, cg, cat, other); ws.ExitStatus() != 0 || out != "other\n" {
		t.Fatalf("another file in scope: status %v, stdout %q", ws, out)
	}
	st, err := m.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if st.Events["TracingPolicy test/kill-secret"][v1.ActionSigkill] < 1 {
		t.Errorf("stats = %+v, want a Sigkill event counted", st)
	}
	// Every openat in scope ran the hook: cat's own opens (libraries,
	// locale) and the two files, at least.
	if hits := st.Hits["TracingPolicy test/kill-secret"]["spec.tracepoints[0]"]; hits < 3 {
		t.Errorf("hook hits %d, want every openat in scope counted", hits)
	}
}

// Audit mode reports the Sigkill without taking it.
func TestAuditModeOnlyReports(t *testing.T) {
	requireKernel(t, false)
	m := openTest(t, tempPinDir(t))
	ev := collect(t, m)
	cg := newCgroup(t)
	secret := tempFile(t, "secret", "the secret\n")
	spec := killOpen(secret)
	spec.Mode = "audit"
	mustLoaded(t, m.Apply(context.Background(), []Policy{{Key: "TracingPolicy test/audit", Spec: spec, Cgroups: []uint64{cg.id}}}))
	if out, _, ws := run(t, cg, which(t, "cat"), secret); ws.ExitStatus() != 0 || out != "the secret\n" {
		t.Fatalf("audit: status %v, stdout %q; want the file read", ws, out)
	}
	e := ev.wait(t, "audit report", isFile(secret))
	if e.Action != v1.ActionSigkill || e.Taken || e.Suppressed != "audit mode" {
		t.Errorf("event = %+v, want Sigkill not taken, suppressed by audit mode", e)
	}
	st, _ := m.Stats()
	if st.Suppressed["audit mode"] < 1 {
		t.Errorf("stats = %+v", st)
	}
}

// A protected pid (SetProtected) and a protected binary name are never
// killed; the event says why.
func TestProtectedNeverKilled(t *testing.T) {
	requireKernel(t, false)
	pin := tempPinDir(t)
	m, err := Open(Options{PinDir: pin, ProtectedBinaries: []string{"palisade-test-shim*"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Apply(context.Background(), nil); m.Close() })
	ev := collect(t, m)
	cg := newCgroup(t)
	secret := tempFile(t, "secret", "the secret\n")
	mustLoaded(t, m.Apply(context.Background(), []Policy{{Key: "TracingPolicy test/protect", Spec: killOpen(secret), Cgroups: []uint64{cg.id}}}))

	// A pid made protected before it opens the file.
	sh := exec.Command(which(t, "sh"), "-c", "read x; exec cat "+secret)
	sh.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: cg.fd}
	stdin, _ := sh.StdinPipe()
	var out strings.Builder
	sh.Stdout = &out
	if err := sh.Start(); err != nil {
		t.Fatal(err)
	}
	if err := m.SetProtected([]uint32{uint32(sh.Process.Pid)}); err != nil {
		t.Fatal(err)
	}
	io.WriteString(stdin, "go\n")
	stdin.Close()
	if err := sh.Wait(); err != nil || out.String() != "the secret\n" {
		t.Fatalf("protected pid: %v, stdout %q; want the file read", err, out.String())
	}
	e := ev.wait(t, "protected pid", func(e Event) bool { return isFile(secret)(e) && e.Process.PID == uint32(sh.Process.Pid) })
	if e.Taken || e.Suppressed != "protected process" {
		t.Errorf("event = %+v, want suppressed for a protected process", e)
	}
	if err := m.SetProtected(nil); err != nil {
		t.Fatal(err)
	}

	// A binary whose name Options.ProtectedBinaries lists, exec'd now.
	shim := filepath.Join(t.TempDir(), "palisade-test-shim-v2")
	copyFile(t, which(t, "cat"), shim)
	if out, _, ws := run(t, cg, shim, secret); ws.ExitStatus() != 0 || out != "the secret\n" {
		t.Fatalf("protected binary: status %v, stdout %q; want the file read", ws, out)
	}
	e = ev.wait(t, "protected binary", func(e Event) bool { return isFile(secret)(e) && e.Process.Binary == shim })
	if e.Taken || e.Suppressed != "protected process" {
		t.Errorf("event = %+v, want suppressed for a protected process", e)
	}
	// Unprotected again: killed.
	if _, _, ws := run(t, cg, which(t, "cat"), secret); !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("unprotected: status %v, want SIGKILL", ws)
	}
	st, _ := m.Stats()
	if st.Suppressed["protected process"] < 2 {
		t.Errorf("stats = %+v, want 2 protected suppressions", st)
	}
}

func copyFile(t testing.TB, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o755); err != nil {
		t.Fatal(err)
	}
}

// matchBinaries NotIn: an allowed binary is untouched, another is killed.
func TestMatchBinariesNotIn(t *testing.T) {
	requireKernel(t, false)
	m := openTest(t, tempPinDir(t))
	cg := newCgroup(t)
	secret := tempFile(t, "secret", "the secret\n")
	cat, head := which(t, "cat"), which(t, "head")
	spec := openatHook(v1.Selector{
		MatchArgs:     []v1.ArgSelector{{Index: 2, Operator: "Postfix", Values: []string{"/" + filepath.Base(secret)}}},
		MatchBinaries: []v1.BinarySelector{{Operator: "NotIn", Values: []string{cat}}},
		MatchActions:  []v1.Action{{Action: "Sigkill"}},
	})
	mustLoaded(t, m.Apply(context.Background(), []Policy{{Key: "TracingPolicy test/bins", Spec: spec, Cgroups: []uint64{cg.id}}}))
	if out, _, ws := run(t, cg, cat, secret); ws.ExitStatus() != 0 || out != "the secret\n" {
		t.Fatalf("allowed binary %s: status %v, stdout %q", cat, ws, out)
	}
	if out, _, ws := run(t, cg, head, secret); !ws.Signaled() || ws.Signal() != syscall.SIGKILL || out != "" {
		t.Fatalf("other binary %s: status %v, stdout %q; want SIGKILL", head, ws, out)
	}
}

// Strings (Equal, Prefix, Postfix, NotPrefix) and integers (Mask, GT,
// LT) each select their calls; the event names the selector.
func TestMatchArgsStringsAndIntegers(t *testing.T) {
	requireKernel(t, false)
	m := openTest(t, tempPinDir(t))
	ev := collect(t, m)
	cg := newCgroup(t)
	dir := t.TempDir()
	f := func(n string) string { return filepath.Join(dir, n) }
	sel := func(ops ...v1.ArgSelector) v1.Selector { return v1.Selector{MatchArgs: ops} }
	spec := openatHook(
		sel(v1.ArgSelector{Index: 2, Operator: "Equal", Values: []string{f("equal-a"), f("equal-b")}}),
		sel(v1.ArgSelector{Index: 2, Operator: "Prefix", Values: []string{f("pre-")}}),
		sel(v1.ArgSelector{Index: 2, Operator: "Postfix", Values: []string{".post"}}),
		// O_CREAT (0100) on files under dir whose name is not "pre-…".
		sel(v1.ArgSelector{Index: 2, Operator: "Prefix", Values: []string{f("")}},
			v1.ArgSelector{Index: 2, Operator: "NotPrefix", Values: []string{f("pre-")}},
			v1.ArgSelector{Index: 3, Operator: "Mask", Values: []string{"0100"}}),
		// Flags GT 0 (not read-only) and LT 02000 (no O_APPEND) on
		// ".gtlt" files.
		sel(v1.ArgSelector{Index: 2, Operator: "Postfix", Values: []string{".gtlt"}},
			v1.ArgSelector{Index: 3, Operator: "GT", Values: []string{"0"}},
			v1.ArgSelector{Index: 3, Operator: "LT", Values: []string{"02000"}}),
	)
	mustLoaded(t, m.Apply(context.Background(), []Policy{{Key: "TracingPolicy test/args", Spec: spec, Cgroups: []uint64{cg.id}}}))
	cat, touch, sh := which(t, "cat"), which(t, "touch"), which(t, "sh")
	for _, n := range []string{"equal-b", "pre-x", "y.post"} {
		os.WriteFile(f(n), []byte("x"), 0o644)
	}
	gtlt := filepath.Join(t.TempDir(), "z.gtlt") // outside dir: not selector 3
	for _, c := range []struct {
		cmd  []string
		file string
		sel  int
	}{
		{[]string{cat, f("equal-b")}, f("equal-b"), 0},
		{[]string{cat, f("pre-x")}, f("pre-x"), 1},
		{[]string{cat, f("y.post")}, f("y.post"), 2},
		{[]string{touch, f("created")}, f("created"), 3},
		{[]string{sh, "-c", "echo > " + gtlt}, gtlt, 4}, // O_WRONLY|O_CREAT|O_TRUNC
	} {
		if _, stderr, ws := run(t, cg, c.cmd[0], c.cmd[1:]...); ws.ExitStatus() != 0 {
			t.Fatalf("%v: status %v %s", c.cmd, ws, stderr)
		}
		e := ev.wait(t, "open of "+c.file, isFile(c.file))
		if e.Selector != c.sel || e.Action != v1.ActionNotify {
			t.Errorf("%s: selector %d action %s, want selector %d Notify", c.file, e.Selector, e.Action, c.sel)
		}
		if len(e.Args) != 2 || e.Args[1].Label != "flags" {
			t.Errorf("%s: args %+v", c.file, e.Args)
		}
	}
	// Files no selector matches: read-only, not created, no suffix; and
	// an O_APPEND open of a .gtlt file (flags above 02000).
	os.WriteFile(f("plain"), []byte("x"), 0o644)
	appended := filepath.Join(t.TempDir(), "a.gtlt")
	run(t, cg, cat, f("plain"))
	run(t, cg, sh, "-c", "echo >> "+appended)
	run(t, cg, cat, f("equal-b")) // a later event, to know "plain" was seen
	ev.wait(t, "second open of equal-b", func(e Event) bool { return isFile(f("equal-b"))(e) })
	ev.mu.Lock()
	defer ev.mu.Unlock()
	for _, e := range ev.list {
		if isFile(f("plain"))(e) || isFile(appended)(e) {
			t.Errorf("unexpected event for a file no selector matches: %+v", e)
		}
	}
}

// DAddr/NotDAddr CIDRs and DPort on connect (syscalls/sys_enter_connect,
// a sockaddr in user memory).
func TestConnectAddrAndPort(t *testing.T) {
	requireKernel(t, false)
	m := openTest(t, tempPinDir(t))
	ev := collect(t, m)
	cg := newCgroup(t)
	bash := which(t, "bash")
	spec := v1.TracingPolicySpec{Tracepoints: []v1.TracepointHook{{
		Subsystem: "syscalls", Event: "sys_enter_connect",
		HookCommon: v1.HookCommon{
			Args: []v1.Arg{{Index: 2, Type: "sockaddr", Label: label("addr")}},
			Selectors: []v1.Selector{
				{MatchArgs: []v1.ArgSelector{{Index: 2, Operator: "DAddr", Values: []string{"127.0.0.0/8"}}, {Index: 2, Operator: "DPort", Values: []string{"1"}}}},
				{MatchArgs: []v1.ArgSelector{{Index: 2, Operator: "NotDAddr", Values: []string{"127.0.0.0/8", "::1"}}, {Index: 2, Operator: "Family", Values: []string{"AF_INET"}}}},
			},
		},
	}}}
	mustLoaded(t, m.Apply(context.Background(), []Policy{{Key: "TracingPolicy test/connect", Spec: spec, Cgroups: []uint64{cg.id}}}))
	// Port 1 on loopback: refused, but connect is called. 192.0.2.1
	// (TEST-NET-1) has no route here, or times out: bound it.
	run(t, cg, bash, "-c", "echo > /dev/tcp/127.0.0.1/1")
	run(t, cg, bash, "-c", "echo > /dev/tcp/127.0.0.1/2")
	run(t, cg, "timeout", "1", bash, "-c", "echo > /dev/tcp/192.0.2.1/80")
	e := ev.wait(t, "connect to 127.0.0.1:1", func(e Event) bool { return len(e.Args) == 1 && e.Args[0].Value == "AF_INET 127.0.0.1:1" })
	if e.Selector != 0 {
		t.Errorf("127.0.0.1:1 matched selector %d, want 0", e.Selector)
	}
	e = ev.wait(t, "connect to 192.0.2.1:80", func(e Event) bool { return len(e.Args) == 1 && e.Args[0].Value == "AF_INET 192.0.2.1:80" })
	if e.Selector != 1 {
		t.Errorf("192.0.2.1:80 matched selector %d, want 1", e.Selector)
	}
	ev.mu.Lock()
	defer ev.mu.Unlock()
	for _, e := range ev.list {
		if e.Args[0].Value == "AF_INET 127.0.0.1:2" {
			t.Errorf("127.0.0.1:2 matched: %+v", e)
		}
	}
}

// A uprobe on libc's unlinkat reads its path argument from user memory.
func TestUprobeArgs(t *testing.T) {
	requireKernel(t, false)
	libc := ""
	for _, p := range []string{"/lib/x86_64-linux-gnu/libc.so.6", "/usr/lib/x86_64-linux-gnu/libc.so.6", "/lib64/libc.so.6"} {
		if _, err := os.Stat(p); err == nil {
			libc, _ = filepath.EvalSymlinks(p)
			break
		}
	}
	if libc == "" {
		t.Skip("needs glibc's libc.so.6")
	}
	m := openTest(t, tempPinDir(t))
	ev := collect(t, m)
	cg := newCgroup(t)
	victim := tempFile(t, "victim", "x")
	spec := v1.TracingPolicySpec{UProbes: []v1.UprobeHook{{
		Path: libc, Symbols: []v1.Symbol{"unlinkat"},
		HookCommon: v1.HookCommon{
			Args:      []v1.Arg{{Index: 0, Type: "int", Label: label("dirfd")}, {Index: 1, Type: "string", Label: label("path")}},
			Selectors: []v1.Selector{{MatchArgs: []v1.ArgSelector{{Index: 1, Operator: "Postfix", Values: []string{"/victim"}}}}},
		},
	}}}
	rs := m.Apply(context.Background(), []Policy{{Key: "TracingPolicy test/uprobe", Spec: spec, Cgroups: []uint64{cg.id}}})
	mustLoaded(t, rs)
	if want := "uprobe/" + libc + ":unlinkat"; rs[0].Hooks[0].Attach != want {
		t.Errorf("attach = %q, want %q", rs[0].Hooks[0].Attach, want)
	}
	if _, stderr, ws := run(t, cg, which(t, "rm"), victim); ws.ExitStatus() != 0 {
		t.Fatalf("rm: %v %s", ws, stderr)
	}
	e := ev.wait(t, "unlinkat of the victim", func(e Event) bool { return len(e.Args) == 2 && e.Args[1].Value == victim })
	if e.Args[0].Value != fmt.Sprint(-100) { // AT_FDCWD
		t.Errorf("dirfd = %s, want -100 (AT_FDCWD)", e.Args[0].Value)
	}

	// char_buf with sizeArgIndex: libc's write(fd, buf, count) reads
	// count bytes of buf.
	spec = v1.TracingPolicySpec{UProbes: []v1.UprobeHook{{
		Path: libc, Symbols: []v1.Symbol{"write"},
		HookCommon: v1.HookCommon{
			Args:      []v1.Arg{{Index: 1, Type: "char_buf", SizeArgIndex: ptr(int32(3)), Label: label("buf")}},
			Selectors: []v1.Selector{{MatchArgs: []v1.ArgSelector{{Index: 1, Operator: "Prefix", Values: []string{"palisade-"}}}}},
		},
	}}}
	mustLoaded(t, m.Apply(context.Background(), []Policy{{Key: "TracingPolicy test/write", Spec: spec, Cgroups: []uint64{cg.id}}}))
	if _, stderr, ws := run(t, cg, which(t, "sh"), "-c", "printf 'palisade-%s\\tx' test"); ws.ExitStatus() != 0 {
		t.Fatalf("printf: %v %s", ws, stderr)
	}
	ev.wait(t, "write of the buffer", func(e Event) bool { return len(e.Args) == 1 && e.Args[0].Value == `palisade-test\tx` })
}

// Signal sends the action's signal (argSig) to the caller.
func TestSignal(t *testing.T) {
	requireKernel(t, false)
	m := openTest(t, tempPinDir(t))
	ev := collect(t, m)
	cg := newCgroup(t)
	secret := tempFile(t, "secret", "the secret\n")
	spec := openatHook(v1.Selector{
		MatchArgs:    []v1.ArgSelector{{Index: 2, Operator: "Equal", Values: []string{secret}}},
		MatchActions: []v1.Action{{Action: v1.ActionSignal, ArgSig: ptr(int32(syscall.SIGUSR1))}},
	})
	mustLoaded(t, m.Apply(context.Background(), []Policy{{Key: "TracingPolicy test/signal", Spec: spec, Cgroups: []uint64{cg.id}}}))
	if out, _, ws := run(t, cg, which(t, "cat"), secret); !ws.Signaled() || ws.Signal() != syscall.SIGUSR1 || out != "" {
		t.Fatalf("status %v, stdout %q; want killed by SIGUSR1", ws, out)
	}
	if e := ev.wait(t, "Signal", isFile(secret)); e.Action != v1.ActionSignal || !e.Taken {
		t.Errorf("event = %+v", e)
	}
}

// With nobody reading, a flood of events fills the ring buffer; the
// records that do not fit are counted as lost, the others as events.
func TestLostEventsCounted(t *testing.T) {
	requireKernel(t, false)
	m := openTest(t, tempPinDir(t))
	cg := newCgroup(t)
	spec := v1.TracingPolicySpec{Tracepoints: []v1.TracepointHook{{Subsystem: "syscalls", Event: "sys_enter_write"}}}
	mustLoaded(t, m.Apply(context.Background(), []Policy{{Key: "TracingPolicy test/flood", Spec: spec, Cgroups: []uint64{cg.id}}}))
	// 100,000 one-byte writes: far more records than 4 MiB holds.
	if _, stderr, ws := run(t, cg, which(t, "dd"), "if=/dev/zero", "of=/dev/null", "bs=1", "count=100000"); ws.ExitStatus() != 0 {
		t.Fatalf("dd: %v %s", ws, stderr)
	}
	st, err := m.Stats()
	if err != nil {
		t.Fatal(err)
	}
	events, lost := st.Events["TracingPolicy test/flood"][v1.ActionNotify], st.Lost["ringbuf full"]
	if events == 0 || lost == 0 || events+lost < 100000 {
		t.Errorf("events %d, lost %d; want both, at least 100000 in all", events, lost)
	}
	t.Logf("events %d, lost %d", events, lost)
}
