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

package main

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/palisade-dev/palisade/internal/agent"
)

func TestTracingSupport(t *testing.T) {
	dir := t.TempDir()
	oldLSM, oldBTF := lsmFile, btfFile
	t.Cleanup(func() { lsmFile, btfFile = oldLSM, oldBTF })
	lsmFile, btfFile = filepath.Join(dir, "lsm"), filepath.Join(dir, "vmlinux")
	write := func(p, s string) {
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if ok, why := tracingSupport(); ok || !strings.Contains(why, "no BTF") {
		t.Errorf("without BTF: %v %q", ok, why)
	}
	write(btfFile, "")
	if ok, why := tracingSupport(); ok || !strings.Contains(why, "securityfs") {
		t.Errorf("without securityfs: %v %q", ok, why)
	}
	write(lsmFile, "lockdown,capability,landlock\n")
	if ok, why := tracingSupport(); ok || !strings.Contains(why, "BPF-LSM is not active") || !strings.Contains(why, "landlock") {
		t.Errorf("without bpf in the LSMs: %v %q", ok, why)
	}
	write(lsmFile, "lockdown,capability,landlock,bpf\n")
	if ok, why := tracingSupport(); !ok || why != "" {
		t.Errorf("with BTF and BPF-LSM: %v %q", ok, why)
	}
}

func TestEventsOutput(t *testing.T) {
	if w, closeFn, err := eventsOutput(""); w != nil || err != nil || closeFn() != nil {
		t.Errorf(`"": %v, %v`, w, err)
	}
	if w, _, err := eventsOutput("-"); w != io.Writer(os.Stdout) || err != nil {
		t.Errorf(`"-": %v, %v`, w, err)
	}
	p := filepath.Join(t.TempDir(), "events.jsonl")
	if err := os.WriteFile(p, []byte("old\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	w, closeFn, err := eventsOutput(p)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.WriteString(w, "new\n"); err != nil {
		t.Fatal(err)
	}
	if err := closeFn(); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(p); string(b) != "old\nnew\n" {
		t.Errorf("the file holds %q; want lines appended", b)
	}
	if _, _, err := eventsOutput(filepath.Join(t.TempDir(), "no", "such", "dir")); err == nil || !strings.HasPrefix(err.Error(), "--tracing-events: ") {
		t.Errorf("a path in a missing directory: %v", err)
	}
}

// A node where the tracing datapath cannot start runs the agent without
// it, and says why; a bad events output stops the agent.
func TestAddTracingOff(t *testing.T) {
	a := &agent.Agent{}
	closeFn, err := addTracing(a, filepath.Join(t.TempDir(), "tracing"), t.TempDir(), "")
	if err != nil {
		t.Fatal(err)
	}
	defer closeFn()
	if a.Tracing != nil || !strings.Contains(a.TracingOff, "no cgroup v2 hierarchy") {
		t.Errorf("without cgroup v2: tracing %v, off %q", a.Tracing, a.TracingOff)
	}
	if _, err := agent.DetectCgroupRoot(agent.DefaultCgroupBase); err == nil {
		a := &agent.Agent{}
		closeFn, err := addTracing(a, filepath.Join(t.TempDir(), "tracing"), agent.DefaultCgroupBase, "")
		if err != nil {
			t.Fatal(err)
		}
		defer closeFn()
		if a.Tracing != nil || !strings.Contains(a.TracingOff, "not on bpffs") {
			t.Errorf("pin dir not on bpffs: tracing %v, off %q", a.Tracing, a.TracingOff)
		}
	}
	if _, err := addTracing(&agent.Agent{}, t.TempDir(), t.TempDir(), filepath.Join(t.TempDir(), "no", "dir", "x")); err == nil {
		t.Error("a bad --tracing-events does not stop the agent")
	}
}
