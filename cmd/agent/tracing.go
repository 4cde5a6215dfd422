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
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"

	ctrl "sigs.k8s.io/controller-runtime"

	"github.com/palisade-dev/palisade/internal/agent"
	"github.com/palisade-dev/palisade/internal/tracing"
)

// Where the kernel says what it can do for tracing.
var (
	lsmFile = "/sys/kernel/security/lsm"
	btfFile = "/sys/kernel/btf/vmlinux"
)

// tracingSupport says whether this kernel can run tracing policies as
// Palisade loads them: BPF-LSM active (the only hooks that can Deny) and
// BTF (fentry/fexit trampolines and typed tracepoints). When it cannot,
// why says so for the agent's status.
func tracingSupport() (ok bool, why string) {
	if _, err := os.Stat(btfFile); err != nil {
		return false, fmt.Sprintf("the kernel has no BTF (%v), so fentry/fexit hooks cannot attach", err)
	}
	lsms, err := os.ReadFile(lsmFile)
	if err != nil {
		return false, fmt.Sprintf("the active LSMs cannot be read (%v; the agent needs the host's securityfs at /sys/kernel/security)", err)
	}
	if !slices.Contains(strings.Split(strings.TrimSpace(string(lsms)), ","), "bpf") {
		return false, fmt.Sprintf("BPF-LSM is not active (%s lists %s; boot with lsm=...,bpf)", lsmFile, strings.TrimSpace(string(lsms)))
	}
	return true, ""
}

// eventsOutput opens where --tracing-events writes: "" nowhere, "-"
// standard output, else the file, appended to.
func eventsOutput(path string) (io.Writer, func() error, error) {
	switch path {
	case "":
		return nil, func() error { return nil }, nil
	case "-":
		return os.Stdout, func() error { return nil }, nil
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return nil, nil, fmt.Errorf("--tracing-events: %w", err)
	}
	return f, f.Close, nil
}

// addTracing opens the events output, finds the cgroup v2 hierarchy
// below cgroupBase, and opens the tracing datapath (adopting the units
// pinned under pinDir). The returned function closes them; pins stay. A
// bad events output is an error; a node where tracing cannot start runs
// the agent without it, and its status says why for every tracing policy
// of the node: network enforcement does not wait for tracing.
func addTracing(a *agent.Agent, pinDir, cgroupBase, events string) (func() error, error) {
	w, closeEvents, err := eventsOutput(events)
	if err != nil {
		return nil, fmt.Errorf("tracing: %w", err)
	}
	off := func(err error) (func() error, error) {
		ctrl.Log.Error(err, "tracing does not run on this node")
		a.TracingOff = fmt.Sprintf("the tracing datapath could not start on this node (%v), so no program is loaded for it: its hooks never run and its actions never happen", err)
		return closeEvents, nil
	}
	root, err := agent.DetectCgroupRoot(cgroupBase)
	if err != nil {
		return off(fmt.Errorf("--cgroup-root: %w", err))
	}
	m, err := tracing.Open(tracing.Options{PinDir: pinDir, Log: ctrl.Log.WithName("tracing")})
	if err != nil {
		return off(err)
	}
	a.Tracing, a.CgroupRoot, a.TracingEvents = m, root, w
	return func() error { return errors.Join(m.Close(), closeEvents()) }, nil
}
