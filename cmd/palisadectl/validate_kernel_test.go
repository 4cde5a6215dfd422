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
	"os"
	"strings"
	"testing"
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

	// Fixed as the message says, the policy validates against the kernel.
	writeFile(t, dir, "shadow.cue", strings.Replace(shadowPolicy, `type:  "string"`, `type:  "file"`, 1))
	if out, errOut, code := validateCmd(t, "--kernel", dir); code != exitOK {
		t.Errorf("fixed policy: exit %d:\n%s%s", code, out, errOut)
	}

	if _, errOut, code := validateCmd(t, "--kernel", "--btf", "/sys/kernel/btf/vmlinux", dir); code != exitUsage || !strings.Contains(errOut, "not both") {
		t.Errorf("--kernel with --btf: exit %d, %s", code, errOut)
	}
	if _, errOut, code := validateCmd(t, "--btf", "/proc/self/status", dir); code != exitUsage || !strings.Contains(errOut, "load BTF from /proc/self/status") {
		t.Errorf("--btf of a file that is not BTF: exit %d, %s", code, errOut)
	}
}
