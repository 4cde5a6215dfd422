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

// Package tracing runs tracing policies in the kernel: it compiles each
// TracingPolicy or ClusterTracingPolicy into one loadable unit (programs
// attached to its hooks, and maps that hold its selectors' values), pins
// the unit in bpffs so that it keeps acting while the agent is down,
// adopts pinned units on start, checks them in the verify loop, and reads
// the events they emit.
//
// The agent's tracing subsystem is its only user; it knows nothing of
// Kubernetes.
package tracing

import (
	"time"

	v1 "github.com/palisade-dev/palisade/api/v1alpha1"
)

// Policy is one loadable unit as the node must run it.
type Policy struct {
	// Key names the unit uniquely on the node, e.g.
	// "TracingPolicy ns/name" or "ClusterTracingPolicy name". The unit's
	// pin directory derives from it.
	Key string
	// Spec is the policy as written.
	Spec v1.TracingPolicySpec
	// AllProcesses is true for a ClusterTracingPolicy without
	// podSelector: every process of the node, the host's included.
	AllProcesses bool
	// Cgroups are the cgroup v2 ids (inode numbers under
	// /sys/fs/cgroup/unified) of the pod-level cgroups of the pods the
	// policy applies to on this node. A process is in scope when one of
	// its cgroup's ancestors (or the cgroup itself) is listed. Ignored
	// when AllProcesses is set; empty otherwise means the unit is loaded
	// and acts on no process.
	Cgroups []uint64
	// Revision is the Git revision the policy came from; events carry it.
	Revision string
	// Sources maps a field path of the spec (e.g.
	// "spec.kprobes[0].selectors[1]") to "file:line"; events carry the
	// source of the selector that matched.
	Sources map[string]string
}

// HookState is what became of one hook of a unit on this node.
type HookState string

const (
	// HookLoaded: the hook's program is loaded and attached.
	HookLoaded HookState = "Loaded"
	// HookNotFound: the kernel has no such function, tracepoint, LSM
	// hook, binary or symbol.
	HookNotFound HookState = "HookNotFound"
	// HookLoadError: the verifier or the attach refused the program.
	HookLoadError HookState = "LoadError"
	// HookNotSupported: this kernel cannot attach the hook kind (e.g.
	// neither fentry nor kprobes).
	HookNotSupported HookState = "NotSupported"
)

// HookResult reports one hook of a unit.
type HookResult struct {
	// Path is the hook's field path, e.g. "spec.kprobes[0]" or
	// "spec.uprobes[1].symbols[0]".
	Path string
	// Attach says how it is attached, e.g. "fentry/security_file_open",
	// "lsm/file_open", "tracepoint/syscalls/sys_enter_openat",
	// "uprobe//usr/bin/bash:readline", or a fallback with its reason:
	// "tracepoint/syscalls/sys_enter_execve (syscall kprobe: fentry not
	// loadable on this kernel)", "kprobe/tcp_connect".
	Attach string
	State  HookState
	// Message says why the hook is not loaded; VerifierLog is the tail
	// of the verifier's log when it refused the program.
	Message     string
	VerifierLog string
}

// Result reports one unit after Apply.
type Result struct {
	Key string
	// Loaded is true when every hook of the unit is attached as written.
	Loaded bool
	// Adopted is true when the unit was found pinned with the same spec
	// and kept, not reloaded.
	Adopted bool
	Hooks   []HookResult
	// Err is set when the unit could not be brought to its desired
	// state; its previous version, if any, stays attached.
	Err error
}

// Drift is one difference the verify loop found between a unit and the
// kernel.
type Drift struct {
	Key  string
	What string
	// Err is set when the repair failed.
	Err error
}

// Process is a process as events report it.
type Process struct {
	PID, TID uint32
	// Binary is the executable's absolute path, as process tracking saw
	// it at exec (or read from /proc for processes older than the agent).
	Binary string
	// Args are the process's arguments, argv[0] first, as it was
	// exec'd (process tracking reads them at exec, /proc/<pid>/cmdline
	// for processes older than the agent); a child that has not exec'd
	// has its parent's. One element per argument, so arguments that
	// hold spaces stay apart. At most MaxArgvBytes bytes (each argument
	// with its NUL terminator) are kept: when there were more,
	// ArgsTruncated is set and the last element is cut. Nil when the
	// process is not known to process tracking.
	Args          []string
	ArgsTruncated bool
	UID           uint32
	CgroupID      uint64
}

// ArgValue is one argument an event carries, rendered for people.
type ArgValue struct {
	Index int32
	Label string
	Type  v1.ArgType
	Value string
}

// Event is one selector match.
type Event struct {
	Time time.Time
	// Policy is the unit's Key; HookPath its hook's field path; Selector
	// the index of the selector that matched.
	Policy   string
	HookPath string
	Attach   string
	Selector int
	// Action is the action the selector asks for; Taken says whether
	// the kernel took it, and Suppressed why not ("audit mode",
	// "protected process").
	Action     v1.ActionType
	Taken      bool
	Suppressed string
	Process    Process
	Parent     Process
	Args       []ArgValue
	// Return is the return value on return hooks.
	Return *int64
	// Revision and Source ("file:line") locate the rule that matched.
	Revision string
	Source   string
}

// Stats are the counters the kernel keeps, for metrics.
type Stats struct {
	// Events counts events by unit key and action.
	Events map[string]map[v1.ActionType]uint64
	// Lost counts lost events by reason (e.g. "ringbuf full").
	Lost map[string]uint64
	// Suppressed counts actions not taken and events not sent, by
	// reason ("protected process", "audit mode", "rate limited": a
	// Notify within its rateLimit window).
	Suppressed map[string]uint64
	// Hits counts the calls in scope of each hook (before selectors), by
	// unit key and hook path: whether a hook runs at all.
	Hits map[string]map[string]uint64
}
