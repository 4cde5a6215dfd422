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
	"fmt"
	"os"
	"strings"
	"testing"

	tracingdp "github.com/palisade-dev/palisade/internal/tracing"
	"github.com/palisade-dev/palisade/internal/tracing/hooks"
)

// shadowPolicy is the guide's protect-shadow policy as imported: argument
// 0 of security_file_permission declared as a string, which it is not.
const shadowPolicy = `package policies

clusterTracingPolicy: "protect-shadow": {
	apiVersion: "palisade.dev/v1alpha1"
	kind:       "ClusterTracingPolicy"
	metadata: name: "protect-shadow"
	spec: kprobes: [{
		call: "security_file_permission"
		args: [{
			index: 0
			type:  "string"
		}]
		selectors: [{
			matchArgs: [{index: 0, operator: "Equal", values: ["/etc/shadow"]}]
			matchBinaries: [{operator: "In", values: ["/usr/bin/cat"]}]
			matchActions: [{action: "Sigkill"}]
		}]
	}]
}
`

func TestValidateKernel(t *testing.T) {
	if _, err := os.Stat("/sys/kernel/btf/vmlinux"); err != nil {
		t.Skipf("no kernel BTF at /sys/kernel/btf/vmlinux: %v", err)
	}
	dir := t.TempDir()
	writeFile(t, dir, "shadow.cue", shadowPolicy)
	const want = `shadow.cue:11:4: error PAL526: argument 0 of security_file_permission is "struct file *file", which type "string" cannot read (it is not a char * or char array); use type "file"`

	// Without a kernel: valid, and said once on standard error.
	out, errOut, code := validateCmd(t, dir)
	if code != exitOK || strings.Contains(out, "PAL526") {
		t.Errorf("without a kernel: exit %d, output:\n%s", code, out)
	}
	if n := strings.Count(errOut, "tracing hooks not checked against a kernel (1 tracing policy); use --kernel or --btf"); n != 1 {
		t.Errorf("without a kernel, the note appears %d times in:\n%s", n, errOut)
	}

	for _, args := range [][]string{{"--kernel", dir}, {"--btf", "/sys/kernel/btf/vmlinux", dir}} {
		out, errOut, code := validateCmd(t, args...)
		if code != exitInvalid {
			t.Errorf("%v: exit %d, want %d; output:\n%s%s", args, code, exitInvalid, out, errOut)
		}
		// The position is the type field's, in the user's file.
		if !strings.Contains(out, want) {
			t.Errorf("%v: output lacks\n%s\nin:\n%s", args, want, out)
		}
		if strings.Contains(errOut, "not checked against a kernel") {
			t.Errorf("%v: says hooks were not checked:\n%s", args, errOut)
		}
	}
	// --btf says what a BTF file cannot tell.
	if _, errOut, _ := validateCmd(t, "--btf", "/sys/kernel/btf/vmlinux", dir); !strings.Contains(errOut, "uprobe binaries are the target nodes'") {
		t.Errorf("--btf does not say that binaries are not checked:\n%s", errOut)
	}

	// Fixed as the message says, the policy validates against the
	// kernel's BTF; against the running kernel, when the kernel hooks
	// security_file_permission by some mechanism (TestValidateKernelLoads).
	writeFile(t, dir, "shadow.cue", strings.Replace(shadowPolicy, `type:  "string"`, `type:  "file"`, 1))
	if out, errOut, code := validateCmd(t, "--btf", "/sys/kernel/btf/vmlinux", dir); code != exitOK {
		t.Errorf("fixed policy: exit %d:\n%s%s", code, out, errOut)
	}

	if _, errOut, code := validateCmd(t, "--kernel", "--btf", "/sys/kernel/btf/vmlinux", dir); code != exitUsage || !strings.Contains(errOut, "not both") {
		t.Errorf("--kernel with --btf: exit %d, %s", code, errOut)
	}
	if _, errOut, code := validateCmd(t, "--btf", "/proc/self/status", dir); code != exitUsage || !strings.Contains(errOut, "load BTF from /proc/self/status") {
		t.Errorf("--btf of a file that is not BTF: exit %d, %s", code, errOut)
	}
}

// syscallPolicy hooks openat as a syscall kprobe (fentry, or its
// tracepoints where fentry does not load) and security_file_open as a
// kernel function (fentry or kprobe only).
const syscallPolicy = `package policies

clusterTracingPolicy: "opens": {
	apiVersion: "palisade.dev/v1alpha1"
	kind:       "ClusterTracingPolicy"
	metadata: name: "opens"
	spec: kprobes: [{
		call:    "sys_openat"
		syscall: true
		args: [{index: 1, type: "string"}]
	}, {
		call: "security_file_open"
		args: [{index: 0, type: "file"}]
	}]
}
`

// --kernel checks what the running kernel loads: on a kernel that loads
// neither fentry nor kprobe programs (this development machine), a
// kprobe on security_file_open is refused with the probe's reason, at
// the hook, while the syscall kprobe validates (its tracepoints). --btf
// cannot probe, and says so once.
func TestValidateKernelLoads(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to probe what the kernel loads")
	}
	k, err := hooks.LoadKernel()
	if err != nil {
		t.Skipf("cannot describe the running kernel: %v", err)
	}
	if err := tracingdp.ProbeKernel(k); err != nil {
		t.Skipf("cannot probe the kernel: %v", err)
	}
	dir := t.TempDir()
	writeFile(t, dir, "opens.cue", syscallPolicy)
	out, errOut, code := validateCmd(t, "--kernel", dir)
	if k.Loads.Fentry == nil || k.Loads.Kprobe == nil {
		if code != exitOK {
			t.Errorf("this kernel loads fentry or kprobes, yet exit %d:\n%s%s", code, out, errOut)
		}
		return
	}
	want := fmt.Sprintf("opens.cue:11:5: error PAL528: kernel function security_file_open cannot be hooked on this kernel: fentry/fexit programs do not load (%v), and kprobes do not attach (probed on security_file_open: %v)", k.Loads.Fentry, k.Loads.Kprobe)
	if code != exitInvalid || !strings.Contains(out, want) {
		t.Errorf("exit %d, output lacks\n%s\nin:\n%s%s", code, want, out, errOut)
	}
	if strings.Contains(out, "kprobes[0]") || strings.Count(out, "PAL528") != 1 {
		t.Errorf("the syscall kprobe is refused too:\n%s", out)
	}

	// Without the kernel function, the policy validates.
	writeFile(t, dir, "opens.cue", strings.Replace(syscallPolicy, `, {
		call: "security_file_open"
		args: [{index: 0, type: "file"}]
	}]`, "]", 1))
	if out, errOut, code := validateCmd(t, "--kernel", dir); code != exitOK {
		t.Errorf("the syscall kprobe alone: exit %d:\n%s%s", code, out, errOut)
	}
	_, errOut, _ = validateCmd(t, "--btf", "/sys/kernel/btf/vmlinux", dir)
	if n := strings.Count(errOut, "cannot be probed from a BTF file"); n != 1 {
		t.Errorf("--btf says %d times that it cannot probe:\n%s", n, errOut)
	}
}
