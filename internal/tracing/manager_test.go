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
	"strings"
	"syscall"
	"testing"

	v1 "github.com/palisade-dev/palisade/api/v1alpha1"
)

// An LSM file_open Deny on a test file: the process in the scoped cgroup
// gets EPERM and reads nothing; the same binary outside the cgroup reads
// the file; the event names the file and the selector's source.
func TestLSMDenyInScope(t *testing.T) {
	requireKernel(t, true)
	m := openTest(t, tempPinDir(t))
	ev := collect(t, m)
	cg := newCgroup(t)
	secret := tempFile(t, "secret", "the secret\n")
	cat := which(t, "cat")
	rs := m.Apply(context.Background(), []Policy{{
		Key: "TracingPolicy test/deny-secret",
		Spec: lsmFileOpen(v1.Selector{
			MatchArgs:    []v1.ArgSelector{{Index: 0, Operator: "Equal", Values: []string{secret}}},
			MatchActions: []v1.Action{{Action: "Deny"}},
		}),
		Cgroups:  []uint64{cg.id},
		Revision: "rev1",
		Sources:  map[string]string{"spec.lsmhooks[0].selectors[0]": "deny.yaml:12"},
	}})
	mustLoaded(t, rs)
	if rs[0].Hooks[0].Attach != "lsm/file_open" {
		t.Errorf("attach = %q, want lsm/file_open", rs[0].Hooks[0].Attach)
	}

	out, stderr, ws := run(t, cg, cat, secret)
	if ws.ExitStatus() == 0 || out != "" || !strings.Contains(stderr, "Permission denied") {
		t.Fatalf("in scope: exit %d, stdout %q, stderr %q; want EPERM and nothing read", ws.ExitStatus(), out, stderr)
	}
	e := ev.wait(t, "deny of the secret", func(e Event) bool { return e.Action == "Deny" && len(e.Args) == 1 && e.Args[0].Value == secret })
	if !e.Taken || e.Suppressed != "" || e.Policy != "TracingPolicy test/deny-secret" || e.HookPath != "spec.lsmhooks[0]" ||
		e.Source != "deny.yaml:12" || e.Revision != "rev1" || e.Process.Binary != cat || e.Process.CgroupID != cg.id || e.Args[0].Label != "file" {
		t.Errorf("event = %+v", e)
	}

	// Outside the scoped cgroup: untouched.
	if out, stderr, ws := run(t, nil, cat, secret); ws.ExitStatus() != 0 || out != "the secret\n" {
		t.Fatalf("out of scope: exit %d, stdout %q, stderr %q; want the file read", ws.ExitStatus(), out, stderr)
	}
	// Another file in scope: untouched.
	other := tempFile(t, "other", "other\n")
	if out, _, ws := run(t, cg, cat, other); ws.ExitStatus() != 0 || out != "other\n" {
		t.Fatalf("other file: exit %d, stdout %q", ws.ExitStatus(), out)
	}
}

// requireFentry skips a test when the kernel does not load fentry
// programs.
func requireFentry(t *testing.T) {
	t.Helper()
	requireKernel(t, false)
	if err := probeFentry(); err != nil {
		t.Skipf("needs the kernel to load fentry programs; a trivial fentry/security_file_open program fails: %v", err)
	}
}

// fentry on security_file_open with a file argument, and a syscall hook
// on openat (the arch wrapper, arguments from its pt_regs): Sigkill of
// the scoped process, nothing read; fexit reports the return value.
func TestFentryAndSyscallSigkill(t *testing.T) {
	requireFentry(t)
	m := openTest(t, tempPinDir(t))
	ev := collect(t, m)
	cg := newCgroup(t)
	secret := tempFile(t, "secret", "the secret\n")
	other := tempFile(t, "other", "other\n")
	cat := which(t, "cat")
	kill := func(i int32, file string) []v1.Selector {
		return []v1.Selector{{MatchArgs: []v1.ArgSelector{{Index: i, Operator: "Equal", Values: []string{file}}}, MatchActions: []v1.Action{{Action: "Sigkill"}}}}
	}
	spec := v1.TracingPolicySpec{KProbes: []v1.FunctionHook{
		{Call: "security_file_open", HookCommon: v1.HookCommon{Args: []v1.Arg{{Index: 0, Type: "file"}}, Selectors: kill(0, secret)}},
		{Call: "openat", Syscall: ptr(true), HookCommon: v1.HookCommon{Args: []v1.Arg{{Index: 1, Type: "string"}}, Selectors: kill(1, other)}},
		{Call: "security_file_open", Return: ptr(true), ReturnArg: &v1.Arg{Index: 0, Type: "int"},
			HookCommon: v1.HookCommon{Args: []v1.Arg{{Index: 0, Type: "file"}}, Selectors: []v1.Selector{{MatchArgs: []v1.ArgSelector{{Index: 0, Operator: "Postfix", Values: []string{"/third"}}}}}}},
	}}
	rs := m.Apply(context.Background(), []Policy{{Key: "TracingPolicy test/fentry", Spec: spec, Cgroups: []uint64{cg.id}}})
	mustLoaded(t, rs)
	for _, file := range []string{secret, other} {
		if out, _, ws := run(t, cg, cat, file); !ws.Signaled() || ws.Signal() != syscall.SIGKILL || out != "" {
			t.Errorf("%s: status %v, stdout %q; want SIGKILL, nothing read", file, ws, out)
		}
	}
	ev.wait(t, "fentry kill", func(e Event) bool { return e.HookPath == "spec.kprobes[0]" && e.Args[0].Value == secret && e.Taken })
	ev.wait(t, "syscall kill", func(e Event) bool { return e.HookPath == "spec.kprobes[1]" && e.Args[0].Value == other && e.Taken })
	if out, _, ws := run(t, nil, cat, secret); ws.ExitStatus() != 0 || out != "the secret\n" {
		t.Errorf("out of scope: status %v", ws)
	}
	third := tempFile(t, "third", "3\n")
	if out, _, ws := run(t, cg, cat, third); ws.ExitStatus() != 0 || out != "3\n" {
		t.Errorf("third: status %v", ws)
	}
	e := ev.wait(t, "fexit of the third", func(e Event) bool { return e.HookPath == "spec.kprobes[2]" && e.Args[0].Value == third })
	if e.Return == nil || *e.Return != 0 || e.Attach != "fexit/security_file_open" {
		t.Errorf("fexit event = %+v, want return 0", e)
	}
}
