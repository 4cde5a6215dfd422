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

package hooks

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"slices"
	"strings"

	"github.com/cilium/ebpf/btf"
	"golang.org/x/sys/unix"
)

// SecurityfsDir is where LoadKernel reads (or mounts) securityfs for the
// active LSM list.
const SecurityfsDir = "/sys/kernel/security"

// LoadKernel describes the running kernel: its BTF, tracefs (mounted at
// TracefsDir when it is not mounted anywhere yet), architecture, whether
// BPF-LSM is active (securityfs mounted at SecurityfsDir when needed), and
// this machine's binaries for uprobes. Mounting needs root; without it the
// Kernel says in Unchecked what it could not check.
func LoadKernel() (*Kernel, error) {
	spec, err := btf.LoadKernelSpec()
	if err != nil {
		return nil, fmt.Errorf("load kernel BTF: %w", err)
	}
	k := &Kernel{BTF: spec, Arch: goArch(runtime.GOARCH), Binaries: true, Running: true}
	if dir, err := mountTracefs(TracefsDir); err == nil {
		k.Tracefs = dir
	} else {
		k.Unchecked = append(k.Unchecked, noTracefs(err.Error()))
	}
	switch lsms, err := activeLSMs(SecurityfsDir); {
	case err != nil:
		k.LSM = true
		k.Unchecked = append(k.Unchecked, fmt.Sprintf("the active LSM list is unreadable (%v): LSM hooks are checked by name, not for BPF-LSM being active", err))
	default:
		k.LSM = slices.Contains(lsms, "bpf")
	}
	return k, nil
}

// KernelFromBTF describes another machine's kernel from its BTF file (e.g.
// /sys/kernel/btf/vmlinux copied from a target node): its functions, LSM
// hooks and syscalls are checked, but not its tracefs, whether BPF-LSM is
// active there, or its binaries, which Unchecked says.
func KernelFromBTF(file string) (*Kernel, error) {
	spec, err := btf.LoadSpec(file)
	if err != nil {
		return nil, fmt.Errorf("load BTF from %s: %w", file, err)
	}
	k := &Kernel{BTF: spec, LSM: true}
	k.Arch, err = btfArch(spec)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	k.Unchecked = append(k.Unchecked,
		noTracefs("a BTF file has no tracefs"),
		"whether BPF-LSM is active on the target kernel is not in its BTF: LSM hooks are checked by name only",
		"uprobe binaries are the target nodes' and are not checked here (use --kernel on a node)",
		"whether the target kernel loads fentry/fexit, kprobe and BPF-LSM programs cannot be probed from a BTF file: kernel functions and LSM hooks are checked for existence only (use --kernel on a node)",
	)
	return k, nil
}

func noTracefs(why string) string {
	return "tracefs is not available (" + why + "): tracepoints are checked through BTF (their trace_event_raw_<event> struct where the kernel has one, and the syscall for syscalls/*), others by name only; syscall argument counts come from BTF or are taken as 6, and their types are not checked"
}

func goArch(goarch string) string {
	switch goarch {
	case "amd64":
		return "x86_64"
	case "arm64":
		return "arm64"
	}
	return goarch
}

// btfArch tells the architecture of a kernel from its syscall wrappers.
func btfArch(spec *btf.Spec) (string, error) {
	for prefix, arch := range map[string]string{"__x64_sys_": "x86_64", "__arm64_sys_": "arm64"} {
		var fn *btf.Func
		if err := spec.TypeByName(prefix+"read", &fn); err == nil {
			return arch, nil
		}
	}
	return "", errors.New("no __x64_sys_read or __arm64_sys_read in the BTF: not an x86_64 or arm64 vmlinux BTF")
}

// activeLSMs reads the active LSM list, mounting securityfs at dir when
// the list is not there (idempotent).
func activeLSMs(dir string) ([]string, error) {
	file := dir + "/lsm"
	b, err := os.ReadFile(file)
	if errors.Is(err, os.ErrNotExist) {
		if merr := unix.Mount("securityfs", dir, "securityfs", 0, ""); merr != nil && !errors.Is(merr, unix.EBUSY) {
			return nil, fmt.Errorf("%s is missing and mounting securityfs failed: %w", file, merr)
		}
		b, err = os.ReadFile(file)
	}
	if err != nil {
		return nil, err
	}
	return strings.Split(strings.TrimSpace(string(b)), ","), nil
}
