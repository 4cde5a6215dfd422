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
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	v1 "github.com/palisade-dev/palisade/api/v1alpha1"
	"github.com/palisade-dev/palisade/internal/diag"
	"github.com/palisade-dev/palisade/internal/importer"
	"github.com/palisade-dev/palisade/internal/policy"
	"github.com/palisade-dev/palisade/internal/tracing/hooks"
	"github.com/palisade-dev/palisade/internal/validate"
)

// corpusRoot is the shared corpus beside the repository.
const corpusRoot = "../../../shared/corpus"

// requireCorpus returns the absolute path of a corpus sub-directory, or
// skips when the corpus is not there.
func requireCorpus(t testing.TB, sub string) string {
	t.Helper()
	dir, err := filepath.Abs(filepath.Join(corpusRoot, sub))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("corpus not found at %s under CI: %v", dir, err)
		}
		t.Skipf("corpus not found at %s (it lives in the shared folder beside the repository): %v", dir, err)
	}
	return dir
}

// imported is a Tetragon document after palisadectl import and
// palisadectl validate --kernel.
type imported struct {
	// ImportErrors are the importer's errors (the document was refused).
	ImportErrors diag.List
	// Policies are the tracing policies validate decoded.
	Policies []*policy.Policy
	// Errors are validate's errors (schema, semantics, hooks on this
	// kernel).
	Errors diag.List
}

// importOnKernel imports one Tetragon YAML file as palisadectl import
// does, renders it into a repository of its own (one CUE file named
// after name) and validates that repository against the running kernel
// as palisadectl validate --kernel does.
func importOnKernel(t testing.TB, name string, data []byte) imported {
	t.Helper()
	im, err := importer.New()
	if err != nil {
		t.Fatal(err)
	}
	res := im.File(name, data)
	var out imported
	for _, d := range res.All() {
		if d.Severity == diag.Error {
			out.ImportErrors = append(out.ImportErrors, d)
		}
	}
	src, err := importer.Render(importer.DefaultPackage, res)
	if err != nil {
		t.Fatalf("%s: render: %v", name, err)
	}
	if src == nil {
		return out
	}
	dir := t.TempDir()
	cue := strings.TrimSuffix(filepath.Base(name), filepath.Ext(name)) + ".cue"
	if err := os.WriteFile(filepath.Join(dir, cue), src, 0o644); err != nil {
		t.Fatal(err)
	}
	rep, err := validate.Dir(context.Background(), dir, validate.Options{Hooks: kernelHooks(t)})
	if err != nil {
		t.Fatalf("%s: validate: %v", name, err)
	}
	for _, p := range rep.Objects {
		if _, ok := p.Tracing(); ok {
			out.Policies = append(out.Policies, p)
		}
	}
	for _, d := range rep.Diagnostics {
		if d.Severity == diag.Error {
			out.Errors = append(out.Errors, d)
		}
	}
	return out
}

// kernelHooks checks hooks against the running kernel as palisadectl
// validate --kernel does: the kernel described and probed once
// (ProbeKernel), then Check for each policy.
func kernelHooks(t testing.TB) validate.HookChecker {
	t.Helper()
	if _, err := os.Stat("/sys/kernel/btf/vmlinux"); err != nil {
		t.Skipf("no kernel BTF at /sys/kernel/btf/vmlinux, so hooks cannot be checked: %v", err)
	}
	k, err := hooks.LoadKernel()
	if err != nil {
		t.Fatalf("LoadKernel: %v", err)
	}
	if err := ProbeKernel(k); err != nil {
		t.Fatalf("ProbeKernel: %v", err)
	}
	return func(spec *v1.TracingPolicySpec) []validate.HookProblem {
		problems := Check(k, *spec)
		out := make([]validate.HookProblem, len(problems))
		for i, p := range problems {
			out[i] = validate.HookProblem{Path: p.Path, Code: p.Code, Message: p.Message}
		}
		return out
	}
}

// mustValid imports and validates a document that must be accepted, and
// returns its one tracing policy scoped to cg.
func mustValid(t testing.TB, name, yaml string, cg *testCgroup) Policy {
	t.Helper()
	r := importOnKernel(t, name, []byte(yaml))
	if len(r.ImportErrors) > 0 || len(r.Errors) > 0 {
		t.Fatalf("%s: refused:\n%s%s", name, r.ImportErrors, r.Errors)
	}
	if len(r.Policies) != 1 {
		t.Fatalf("%s: %d tracing policies, want 1", name, len(r.Policies))
	}
	return scoped(r.Policies[0], cg)
}

// scoped is the Manager's unit for p, scoped to cg.
func scoped(p *policy.Policy, cg *testCgroup) Policy {
	spec, _ := p.Tracing()
	key := p.Kind + " " + p.Name
	if p.Namespace != "" {
		key = p.Kind + " " + p.Namespace + "/" + p.Name
	}
	return Policy{Key: key, Spec: *spec, Cgroups: []uint64{cg.id}}
}

// wantRefusal checks that errs has an error with code, a position (file
// and line) and a message containing msg.
func wantRefusal(t testing.TB, errs diag.List, code, msg string) {
	t.Helper()
	for _, d := range errs {
		if d.Code == code && d.Pos.File != "" && d.Pos.Line > 0 && strings.Contains(d.Message, msg) {
			t.Logf("refused as expected: %s", d)
			return
		}
	}
	t.Errorf("no positioned %s error containing %q among:\n%s", code, msg, errs)
}

// replace applies the corrections old→new (each must occur) to a YAML
// document.
func replace(t testing.TB, doc string, pairs ...string) string {
	t.Helper()
	for i := 0; i+1 < len(pairs); i += 2 {
		if !strings.Contains(doc, pairs[i]) {
			t.Fatalf("correction: %q not in the document", pairs[i])
		}
		doc = strings.Replace(doc, pairs[i], pairs[i+1], 1)
	}
	return doc
}

// realPath resolves a binary's symlinks (/bin/sh → /usr/bin/dash on a
// merged-/usr system): process tracking records the executable's real
// path.
func realPath(t testing.TB, p string) string {
	t.Helper()
	r, err := filepath.EvalSymlinks(p)
	if err != nil {
		t.Skipf("needs %s: %v", p, err)
	}
	return r
}

// hookUnavailable reports whether every hook of rs failed only because
// this kernel cannot attach its kind (NotSupported), with the reasons.
func hookUnavailable(rs []Result) (bool, string) {
	if len(rs) != 1 || rs[0].Loaded {
		return false, ""
	}
	var why []string
	for _, h := range rs[0].Hooks {
		if h.State != HookNotSupported {
			return false, ""
		}
		why = append(why, h.Path+": "+h.Message)
	}
	return len(why) > 0, strings.Join(why, "; ")
}

// Triggers run as a child process of the test binary (so that it can be
// started in a test cgroup): the child sees triggerEnv and runs
// runTrigger before any test.
const triggerEnv = "PALISADE_TRACING_TEST_TRIGGER"

func init() {
	if spec := os.Getenv(triggerEnv); spec != "" {
		if err := runTrigger(spec); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
}

// runTrigger does what spec ("verb arg...") says.
func runTrigger(spec string) error {
	f := strings.Fields(spec)
	switch f[0] {
	case "connect": // connect addr:port, with a short timeout
		c, err := net.DialTimeout("tcp", f[1], 300*time.Millisecond)
		if err == nil {
			c.Close()
		}
		return nil
	case "udp": // send one datagram to addr:port
		c, err := net.Dial("udp", f[1])
		if err != nil {
			return err
		}
		defer c.Close()
		_, err = c.Write([]byte("x"))
		return err
	case "dup": // dup and dup2 of stdout
		fd, _, errno := unix.RawSyscall(unix.SYS_DUP, 1, 0, 0)
		if errno != 0 {
			return errno
		}
		if _, _, errno := unix.RawSyscall(unix.SYS_DUP2, 1, fd, 0); errno != 0 {
			return errno
		}
		return unix.Close(int(fd))
	case "setids": // every set*id call, to the ids we have: no change
		uid, gid := uintptr(os.Getuid()), uintptr(os.Getgid())
		for _, c := range [][4]uintptr{
			{unix.SYS_SETUID, uid}, {unix.SYS_SETGID, gid},
			{unix.SYS_SETREUID, uid, uid}, {unix.SYS_SETREGID, gid, gid},
			{unix.SYS_SETRESUID, uid, uid, uid}, {unix.SYS_SETRESGID, gid, gid, gid},
			{unix.SYS_SETFSUID, uid}, {unix.SYS_SETFSGID, gid},
		} {
			unix.RawSyscall(c[0], c[1], c[2], c[3])
		}
		return nil
	case "failing-syscalls": // calls that fail on their arguments
		unix.RawSyscall(unix.SYS_CLOCK_SETTIME, ^uintptr(0), 0, 0) // clock -1: EINVAL
		unix.PivotRoot("/nonexistent-palisade-test", "/nonexistent-palisade-test")
		unix.RawSyscall6(unix.SYS_PTRACE, 0xdead, 0, 0, 0, 0, 0) // no such request
		return nil
	}
	return fmt.Errorf("unknown trigger %q", spec)
}

// trigger runs runTrigger(spec) in a child of the test binary in cg and
// returns its wait status; wrap (e.g. ip netns exec NAME) runs first.
func trigger(t testing.TB, cg *testCgroup, spec string, wrap ...string) syscall.WaitStatus {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	argv := append(append([]string{}, wrap...), self, "-test.run=^$")
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), triggerEnv+"="+spec)
	cmd.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: cg.fd}
	err = cmd.Run()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatalf("trigger %q: %v", spec, err)
	}
	return cmd.ProcessState.Sys().(syscall.WaitStatus)
}

// runCounts returns the run counts of a unit's loaded hook programs
// (BPF statistics must be on, see ebpf.EnableStats), by hook path.
func runCounts(t testing.TB, m *Manager, key string) map[string]uint64 {
	t.Helper()
	m.mu.Lock()
	defer m.mu.Unlock()
	u := m.units[key]
	if u == nil {
		return nil
	}
	out := map[string]uint64{}
	for _, h := range u.plan.hooks {
		p := u.progs[h.idx]
		if p == nil {
			continue
		}
		st, err := p.Stats()
		if err != nil {
			t.Fatalf("%s: program stats: %v", h.path, err)
		}
		out[h.path] = st.RunCount
	}
	return out
}
