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
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	v1 "github.com/palisade-dev/palisade/api/v1alpha1"
)

// readHook hooks syscalls/sys_enter_read with its fd (field 1), which the
// program resolves to the file's path through the task's fd table.
func readHook(sel ...v1.Selector) v1.TracingPolicySpec {
	return v1.TracingPolicySpec{Tracepoints: []v1.TracepointHook{{
		Subsystem: "syscalls", Event: "sys_enter_read",
		HookCommon: v1.HookCommon{Args: []v1.Arg{{Index: 1, Type: "fd", Label: label("fd")}}, Selectors: sel},
	}}}
}

// startWaiting starts `sh -c "read x; <script>"` in cg and returns it
// with the pipe that lets it go on.
func startWaiting(t testing.TB, cg *testCgroup, script string) (*exec.Cmd, io.WriteCloser, *strings.Builder) {
	t.Helper()
	cmd := exec.Command(which(t, "sh"), "-c", "read x; "+script)
	cmd.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: cg.fd}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out := &strings.Builder{}
	cmd.Stdout = out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	return cmd, stdin, out
}

// An fd argument renders as "fd:path" and compares by path;
// matchPIDs In with followForks matches the children of the pid, and
// without it only the pid itself.
func TestFdArgAndMatchPIDs(t *testing.T) {
	requireKernel(t, false)
	m := openTest(t, tempPinDir(t))
	ev := collect(t, m)
	cg := newCgroup(t)
	secret := tempFile(t, "secret", "the secret\n")
	sh, stdin, out := startWaiting(t, cg, "cat "+secret)
	pid := int32(sh.Process.Pid)
	spec := readHook(
		v1.Selector{
			MatchArgs: []v1.ArgSelector{{Index: 1, Operator: "Postfix", Values: []string{"/secret"}}},
			MatchPIDs: []v1.PIDSelector{{Operator: "In", Values: []int32{pid}}},
		},
		v1.Selector{
			MatchArgs:    []v1.ArgSelector{{Index: 1, Operator: "Postfix", Values: []string{"/secret"}}},
			MatchPIDs:    []v1.PIDSelector{{Operator: "In", Values: []int32{pid}, FollowForks: ptr(true)}},
			MatchActions: []v1.Action{{Action: "Sigkill"}},
		},
	)
	mustLoaded(t, m.Apply(context.Background(), []Policy{{Key: "TracingPolicy test/pids", Spec: spec, Cgroups: []uint64{cg.id}}}))
	io.WriteString(stdin, "go\n")
	stdin.Close()
	sh.Wait()
	if out.String() != "" {
		t.Errorf("the child of the pid read %q; want it killed", out.String())
	}
	e := ev.wait(t, "read of the secret", func(e Event) bool { return len(e.Args) == 1 && strings.HasSuffix(e.Args[0].Value, ":"+secret) })
	if e.Selector != 1 || e.Process.PID == uint32(pid) || e.Parent.PID != uint32(pid) || !e.Taken {
		t.Errorf("event = %+v, want selector 1 (followForks) for a child of %d", e, pid)
	}
	// A process that is not a descendant: untouched.
	if o, _, ws := run(t, cg, which(t, "cat"), secret); ws.ExitStatus() != 0 || o != "the secret\n" {
		t.Errorf("unrelated process: status %v", ws)
	}
}

// matchNamespaces (host_ns resolved from /proc/1/ns) and
// matchCapabilities (Effective) select by the caller's namespaces and
// capabilities.
func TestMatchNamespacesAndCapabilities(t *testing.T) {
	requireKernel(t, false)
	m := openTest(t, tempPinDir(t))
	ev := collect(t, m)
	cg := newCgroup(t)
	dir := t.TempDir()
	os.Chmod(dir, 0o755)
	file := filepath.Join(dir, "file")
	os.WriteFile(file, []byte("x"), 0o644)
	onFile := v1.ArgSelector{Index: 2, Operator: "Equal", Values: []string{file}}
	spec := openatHook(
		v1.Selector{MatchArgs: []v1.ArgSelector{onFile}, MatchNamespaces: []v1.NamespaceSelector{{Namespace: "Mnt", Operator: "NotIn", Values: []string{"host_ns"}}}},
		v1.Selector{MatchArgs: []v1.ArgSelector{onFile}, MatchCapabilities: []v1.CapabilitySelector{{Type: "Effective", Operator: "NotIn", Values: []v1.Capability{"CAP_SYS_ADMIN"}}}},
		v1.Selector{MatchArgs: []v1.ArgSelector{onFile},
			MatchNamespaces:   []v1.NamespaceSelector{{Namespace: "Mnt", Operator: "In", Values: []string{"host_ns"}}, {Namespace: "Net", Operator: "In", Values: []string{"host_ns"}}},
			MatchCapabilities: []v1.CapabilitySelector{{Operator: "In", Values: []v1.Capability{"CAP_SYS_ADMIN", "CAP_NET_ADMIN"}}}},
	)
	mustLoaded(t, m.Apply(context.Background(), []Policy{{Key: "TracingPolicy test/ns", Spec: spec, Cgroups: []uint64{cg.id}}}))
	cat := which(t, "cat")
	run(t, cg, cat, file) // root, host namespaces: selector 2
	if e := ev.wait(t, "root's open", func(e Event) bool { return isFile(file)(e) && e.Process.UID == 0 }); e.Selector != 2 {
		t.Errorf("root: selector %d, want 2", e.Selector)
	}
	// As nobody: no capabilities, selector 1.
	cmd := exec.Command(cat, file)
	cmd.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: cg.fd, Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	cmd.Run()
	if e := ev.wait(t, "nobody's open", func(e Event) bool { return isFile(file)(e) && e.Process.UID == 65534 }); e.Selector != 1 {
		t.Errorf("nobody: selector %d, want 1", e.Selector)
	}
}

// The binary's path is rendered across mounts (a tmpfs of the test's),
// and matchBinaries followChildren matches the children of a binary.
func TestBinaryPathAcrossMountsAndFollowChildren(t *testing.T) {
	requireKernel(t, false)
	m := openTest(t, tempPinDir(t))
	ev := collect(t, m)
	cg := newCgroup(t)
	mnt := t.TempDir()
	if err := unix.Mount("tmpfs", mnt, "tmpfs", 0, "size=16m"); err != nil {
		t.Skipf("cannot mount a tmpfs: %v", err)
	}
	t.Cleanup(func() { unix.Unmount(mnt, unix.MNT_DETACH) })
	sub := filepath.Join(mnt, "deep", "er")
	os.MkdirAll(sub, 0o755)
	mycat := filepath.Join(sub, "mycat")
	copyFile(t, which(t, "cat"), mycat)
	sh := which(t, "sh")
	secret := tempFile(t, "secret", "s\n")
	onFile := v1.ArgSelector{Index: 2, Operator: "Equal", Values: []string{secret}}
	spec := openatHook(
		v1.Selector{MatchArgs: []v1.ArgSelector{onFile}, MatchBinaries: []v1.BinarySelector{{Operator: "In", Values: []string{mycat}}}},
		v1.Selector{MatchArgs: []v1.ArgSelector{onFile}, MatchBinaries: []v1.BinarySelector{{Operator: "Prefix", Values: []string{sh}}}},
		v1.Selector{MatchArgs: []v1.ArgSelector{onFile}, MatchBinaries: []v1.BinarySelector{{Operator: "In", Values: []string{sh}, FollowChildren: ptr(true)}}},
	)
	mustLoaded(t, m.Apply(context.Background(), []Policy{{Key: "TracingPolicy test/bins", Spec: spec, Cgroups: []uint64{cg.id}}}))
	run(t, cg, mycat, secret)
	e := ev.wait(t, "open by mycat", func(e Event) bool { return isFile(secret)(e) && e.Process.Binary == mycat })
	if e.Selector != 0 {
		t.Errorf("mycat: selector %d, want 0", e.Selector)
	}
	// cat as a child of sh: not sh itself (selector 1 needs the caller to
	// be sh), but a child of sh (selector 2, followChildren).
	run(t, cg, sh, "-c", which(t, "cat")+" "+secret+"; true")
	e = ev.wait(t, "open by sh's child", func(e Event) bool { return isFile(secret)(e) && e.Process.Binary == which(t, "cat") })
	if e.Selector != 2 || e.Parent.Binary != sh {
		t.Errorf("child of sh: selector %d parent %q, want 2 and %s", e.Selector, e.Parent.Binary, sh)
	}
}

// matchPIDs with isNamespacePID compares the pid in the caller's own PID
// namespace: cat as PID 1 of a new PID namespace matches In [1].
func TestMatchNamespacePID(t *testing.T) {
	requireKernel(t, false)
	unshare := which(t, "unshare")
	m := openTest(t, tempPinDir(t))
	ev := collect(t, m)
	cg := newCgroup(t)
	file := tempFile(t, "file", "x")
	spec := openatHook(v1.Selector{
		MatchArgs: []v1.ArgSelector{{Index: 2, Operator: "Equal", Values: []string{file}}},
		MatchPIDs: []v1.PIDSelector{{Operator: "In", Values: []int32{1}, IsNamespacePID: ptr(true)}},
	})
	mustLoaded(t, m.Apply(context.Background(), []Policy{{Key: "TracingPolicy test/nspid", Spec: spec, Cgroups: []uint64{cg.id}}}))
	run(t, cg, which(t, "cat"), file) // not PID 1 of its namespace
	if _, stderr, ws := run(t, cg, unshare, "--pid", "--fork", which(t, "cat"), file); ws.ExitStatus() != 0 {
		t.Skipf("cannot make a PID namespace: %v %s", ws, stderr)
	}
	e := ev.wait(t, "open by PID 1 of a new namespace", isFile(file))
	if e.Process.PID == 1 || e.Parent.Binary != unshare {
		t.Errorf("event = %+v, want cat forked by unshare, with its host pid", e)
	}
	ev.mu.Lock()
	defer ev.mu.Unlock()
	if n := len(ev.list); n != 1 {
		t.Errorf("%d events, want only the namespaced cat's", n)
	}
}
