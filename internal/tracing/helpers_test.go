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
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/go-logr/logr/testr"
	"golang.org/x/sys/unix"

	v1 "github.com/palisade-dev/palisade/api/v1alpha1"
	"github.com/palisade-dev/palisade/internal/tracing/hooks"
)

// requireKernel skips a test that needs root, BTF and (lsm) BPF-LSM.
func requireKernel(t testing.TB, lsm bool) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to load eBPF programs")
	}
	if _, err := os.Stat("/sys/kernel/btf/vmlinux"); err != nil {
		t.Skip("needs kernel BTF (/sys/kernel/btf/vmlinux)")
	}
	if lsm {
		k, err := hooks.LoadKernel()
		if err != nil {
			t.Skipf("cannot describe the kernel: %v", err)
		}
		if !k.LSM {
			t.Skip("needs BPF-LSM active (\"bpf\" in the kernel's lsm list)")
		}
		if err := probeLSM(); err != nil {
			t.Skipf("needs the kernel to load BPF-LSM programs; a trivial lsm/file_open program fails: %v", err)
		}
	}
}

// probeLSM loads a trivial lsm/file_open program.
func probeLSM() error {
	p, err := ebpf.NewProgram(&ebpf.ProgramSpec{
		Type: ebpf.LSM, AttachType: ebpf.AttachLSMMac, AttachTo: "file_open", License: "GPL",
		Instructions: asm.Instructions{asm.Mov.Imm(asm.R0, 0), asm.Return()},
	})
	if err != nil {
		return err
	}
	return p.Close()
}

// probeFentry loads a trivial fentry program on security_file_open.
func probeFentry() error {
	p, err := ebpf.NewProgram(&ebpf.ProgramSpec{
		Type: ebpf.Tracing, AttachType: ebpf.AttachTraceFEntry, AttachTo: "security_file_open", License: "GPL",
		Instructions: asm.Instructions{asm.Mov.Imm(asm.R0, 0), asm.Return()},
	})
	if err != nil {
		return err
	}
	return p.Close()
}

// tempPinDir returns a fresh pin dir on a private bpffs.
func tempPinDir(t testing.TB) string {
	t.Helper()
	dir := t.TempDir()
	if err := unix.Mount("bpf", dir, "bpf", 0, ""); err != nil {
		t.Skipf("cannot mount a bpffs: %v", err)
	}
	t.Cleanup(func() { unix.Unmount(dir, unix.MNT_DETACH) })
	return filepath.Join(dir, "tracing")
}

// openTest opens a Manager on pin and removes every unit at the end.
func openTest(t testing.TB, pin string) *Manager {
	t.Helper()
	m, err := Open(Options{PinDir: pin, Log: testr.New(t.(*testing.T))})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		m.Apply(context.Background(), nil)
		m.Close()
	})
	return m
}

const cgroupRoot = "/sys/fs/cgroup/unified"

// testCgroup creates a cgroup v2 of the test's own and returns its id
// and an open fd for SysProcAttr.CgroupFD.
type testCgroup struct {
	path string
	id   uint64
	fd   int
}

func newCgroup(t testing.TB) *testCgroup {
	t.Helper()
	var st unix.Statfs_t
	if err := unix.Statfs(cgroupRoot, &st); err != nil || st.Type != unix.CGROUP2_SUPER_MAGIC {
		t.Skipf("needs cgroup v2 at %s", cgroupRoot)
	}
	path, err := os.MkdirTemp(cgroupRoot, "palisade-tracing-test-")
	if err != nil {
		t.Fatal(err)
	}
	var s unix.Stat_t
	if err := unix.Stat(path, &s); err != nil {
		t.Fatal(err)
	}
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		t.Fatal(err)
	}
	cg := &testCgroup{path: path, id: s.Ino, fd: fd}
	t.Cleanup(func() {
		unix.Close(fd)
		// Kill what is left, then remove the cgroup.
		os.WriteFile(filepath.Join(path, "cgroup.kill"), []byte("1"), 0)
		for i := 0; i < 100; i++ {
			if err := os.Remove(path); err == nil || errors.Is(err, os.ErrNotExist) {
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
		t.Logf("cgroup %s not removed", path)
	})
	return cg
}

// run runs a command in cg (nil: the test's own cgroup) and returns its
// stdout, stderr and wait status.
func run(t testing.TB, cg *testCgroup, name string, args ...string) (string, string, syscall.WaitStatus) {
	t.Helper()
	cmd := exec.Command(name, args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if cg != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: cg.fd}
	}
	err := cmd.Run()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatalf("run %s: %v", name, err)
	}
	return out.String(), errb.String(), cmd.ProcessState.Sys().(syscall.WaitStatus)
}

// events collects a Manager's events in the background.
type events struct {
	mu   sync.Mutex
	list []Event
	cond chan struct{}
}

func collect(t testing.TB, m *Manager) *events {
	t.Helper()
	ev := &events{cond: make(chan struct{}, 1)}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- m.ReadEvents(ctx, func(e Event) {
			ev.mu.Lock()
			ev.list = append(ev.list, e)
			ev.mu.Unlock()
			select {
			case ev.cond <- struct{}{}:
			default:
			}
		})
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("ReadEvents: %v", err)
		}
	})
	return ev
}

// wait returns the first event pred accepts, failing after 10s.
func (ev *events) wait(t testing.TB, what string, pred func(Event) bool) Event {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		ev.mu.Lock()
		for _, e := range ev.list {
			if pred(e) {
				ev.mu.Unlock()
				return e
			}
		}
		n := len(ev.list)
		ev.mu.Unlock()
		select {
		case <-ev.cond:
		case <-deadline:
			ev.mu.Lock()
			defer ev.mu.Unlock()
			var b strings.Builder
			for _, e := range ev.list {
				fmt.Fprintf(&b, "\n  %s %s sel %d %s taken=%v %q pid %d %s args %v", e.Policy, e.HookPath, e.Selector, e.Action, e.Taken, e.Suppressed, e.Process.PID, e.Process.Binary, e.Args)
			}
			t.Fatalf("no event %s among %d:%s", what, n, b.String())
		}
	}
}

func ptr[T any](v T) *T { return &v }

func label(s string) *string { return &s }

// tempFile writes a test file with content and returns its path.
func tempFile(t testing.TB, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func lsmFileOpen(sel ...v1.Selector) v1.TracingPolicySpec {
	return v1.TracingPolicySpec{LSMHooks: []v1.LSMHook{{
		Hook:       "file_open",
		HookCommon: v1.HookCommon{Args: []v1.Arg{{Index: 0, Type: "file", Label: label("file")}}, Selectors: sel},
	}}}
}

func mustLoaded(t testing.TB, rs []Result) {
	t.Helper()
	for _, r := range rs {
		if r.Err != nil || !r.Loaded {
			t.Fatalf("unit %s: loaded=%v err=%v hooks=%+v", r.Key, r.Loaded, r.Err, r.Hooks)
		}
	}
}

func which(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Skipf("needs %s", name)
	}
	p, err = filepath.EvalSymlinks(p)
	if err != nil {
		t.Fatal(err)
	}
	return p
}
