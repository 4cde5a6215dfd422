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

// Package hooks resolves the hooks of a tracing policy against a kernel:
// which BTF function, LSM hook, tracepoint or user symbol each hook
// attaches to, how many arguments it has, and the C type behind every
// declared argument. Resolve says, as positioned problems, what a policy
// asks that the kernel cannot give: a function that does not exist, an
// argument index past the function's parameters, a declared type that
// cannot read the parameter's real type.
//
// The package is pure Go apart from reading BTF (cilium/ebpf's btf
// package), tracefs and ELF files. It imports nothing of Kubernetes and
// nothing of the datapath, so that palisadectl validate and the agent's
// tracing datapath decide the same thing from the same code.
//
// Scope: kernel functions are looked up in vmlinux BTF only; functions of
// loadable modules (module BTF) are out of scope and resolve as not found.
package hooks

import (
	"github.com/cilium/ebpf/btf"

	"github.com/palisade-dev/palisade/api/v1alpha1"
)

// Kernel is what Resolve checks hooks against.
type Kernel struct {
	// BTF is the kernel's BTF (btf.LoadKernelSpec, or btf.LoadSpec for a
	// file taken from the target nodes' kernel).
	BTF *btf.Spec
	// Tracefs is the mounted tracefs directory, for tracepoint formats.
	// Empty: tracepoints are checked through BTF only (the
	// trace_event_raw_<event> struct where the kernel has one, and the
	// syscall wrapper for syscalls/sys_enter_* and sys_exit_*), and
	// Unchecked says so.
	Tracefs string
	// Arch is "x86_64" or "arm64"; it gives the syscall wrapper prefix
	// (__x64_sys_, __arm64_sys_).
	Arch string
	// LSM is true when BPF-LSM is active (the kernel's lsm list names
	// "bpf"). LSM hooks on a kernel without it are problems.
	LSM bool
	// Binaries is true when uprobe binaries are checked on this machine's
	// file system: the path must exist, be ELF and define the symbols.
	// It is set only when this machine is the node the policy is for
	// (palisadectl validate --kernel, the agent); a policy validated in CI
	// against another node's BTF names binaries of that node, which need
	// not exist here, so their absence proves nothing.
	Binaries bool
	// BinaryRoot is the directory under which uprobe binaries are looked
	// up when Binaries is set, for a checker whose own root is not the
	// node's (an agent in a container: "/proc/1/root", or where it mounts
	// the host's /). Empty: "/".
	BinaryRoot string
	// Unchecked lists, for people, what this Kernel cannot check (e.g.
	// "tracefs is not mounted: ..."). Resolve adds no problem for them.
	Unchecked []string
	// Running is true for the kernel this process runs on (LoadKernel):
	// what it loads can be probed (internal/tracing's Check does).
	Running bool
	// Loads says which program kinds the kernel loads and attaches, once
	// probed; nil: not probed, and hooks are checked for existence only.
	Loads *Loads
}

// Loads are the results of loading trivial programs of each kind that
// hooks a kernel function or LSM hook: nil when the kind loads (and, for
// kprobes, attaches), else the kernel's error.
type Loads struct {
	// Fentry: an fentry program (fexit and fmod_ret share its fate).
	Fentry error
	// Kprobe: a kprobe program attached to a kernel function.
	Kprobe error
	// LSM: a BPF-LSM program.
	LSM error
}

// The codes of problems found beyond Resolve: by the datapath's compiler
// and by probing what the kernel loads (internal/tracing's Check).
const (
	// CodeNotAttachable: the hook's kind cannot attach on this kernel by
	// any mechanism (e.g. neither fentry nor kprobes; BPF-LSM programs
	// refused).
	CodeNotAttachable = "PAL528"
	// CodeNotCompiled: the tracing datapath cannot compile the field
	// (a type it does not read, a value it cannot parse, a limit).
	CodeNotCompiled = "PAL529"
)

// Kind is how a hook attaches. The datapath maps fentry and fexit to
// kprobe and kretprobe on kernels without BPF trampolines.
type Kind string

// The hook kinds.
const (
	KindFentry     Kind = "fentry"
	KindFexit      Kind = "fexit"
	KindLSM        Kind = "lsm"
	KindTracepoint Kind = "tracepoint"
	KindUprobe     Kind = "uprobe"
)

// Hook is one resolved attach point of a policy.
type Hook struct {
	// Path is the hook's field path: "spec.kprobes[0]", "spec.lsmhooks[1]",
	// "spec.tracepoints[0]", or "spec.uprobes[0].symbols[2]" (one Hook per
	// symbol).
	Path string
	Kind Kind
	// Target is what the hook attaches to: a BTF function
	// ("security_file_open", "__x64_sys_openat"), an LSM hook
	// ("file_open"), a tracepoint ("syscalls/sys_enter_openat"), or
	// "/path/to/binary:symbol".
	Target string
	// Syscall is true when the arguments come from the pt_regs of a
	// syscall wrapper (the wrapper's only parameter), not from the
	// function's own parameters.
	Syscall bool
	// NumArgs is the number of arguments the function, syscall, LSM hook
	// or tracepoint has (for uprobes, where there is no BTF, the
	// architecture's register arguments: 6 on x86_64, 8 on arm64).
	NumArgs int
	// Args are the declared arguments, resolved, in declaration order.
	Args []Arg
	// Return is the resolved returnArg of an fexit hook.
	Return *Arg
}

// Arg is one declared argument, resolved against the hook.
type Arg struct {
	Index int32
	Type  v1alpha1.ArgType
	Label string
	// BTFType is the C type of the parameter or field, e.g.
	// "struct file *" or "const char *"; empty for uprobes (no BTF) and
	// for syscall arguments whose types neither BTF nor tracefs gives.
	BTFType string
	// User is true when a pointer argument points into user memory
	// (syscall arguments, pointer fields of syscalls/* tracepoints,
	// uprobes): the datapath reads it with bpf_probe_read_user*.
	User bool
	// Offset and Size locate a tracepoint field in the raw record
	// (tracepoints only; for __data_loc fields, the 4-byte locator).
	Offset, Size uint32
	// SizeArgIndex is the 1-based index of the argument that holds the
	// buffer's size (char_buf, char_iovec), 0 if none.
	SizeArgIndex int32
}

// Problem is why a hook cannot load as written on the kernel.
type Problem struct {
	// Path is the field path of what is wrong, e.g.
	// "spec.kprobes[0].args[1].index", in the validator's form.
	Path string
	// Code is the diagnostic code (PAL520 and up).
	Code string
	// Message says what is wrong and, where it can, what to write instead.
	Message string
}

// The problem codes Resolve reports. They are registered with the
// validator's diagnostics (internal/diag).
const (
	// CodeFunctionNotFound: a kprobe's function (or syscall wrapper) is not
	// in the kernel's BTF.
	CodeFunctionNotFound = "PAL520"
	// CodeLSMHookNotFound: there is no bpf_lsm_<hook> in the kernel's BTF.
	CodeLSMHookNotFound = "PAL521"
	// CodeLSMInactive: BPF-LSM is not active on the kernel.
	CodeLSMInactive = "PAL522"
	// CodeTracepointNotFound: the tracepoint does not exist.
	CodeTracepointNotFound = "PAL523"
	// CodeUprobeNotFound: the binary is missing, not ELF, or lacks the
	// symbol (checked only when Kernel.Binaries is set).
	CodeUprobeNotFound = "PAL524"
	// CodeArgIndex: an argument index is past the hook's arguments.
	CodeArgIndex = "PAL525"
	// CodeArgType: the declared type cannot read the argument's real type.
	CodeArgType = "PAL526"
	// CodeSizeArg: sizeArgIndex names no integer argument of the hook.
	CodeSizeArg = "PAL527"
)
