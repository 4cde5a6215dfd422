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
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/palisade-dev/palisade/api/v1alpha1"
)

var (
	kernelOnce sync.Once
	kernel     *Kernel
	kernelErr  error
)

// runningKernel returns the running kernel, or skips the test when it has
// no BTF (or the test cannot read it).
func runningKernel(t *testing.T) *Kernel {
	t.Helper()
	if _, err := os.Stat("/sys/kernel/btf/vmlinux"); err != nil {
		t.Skipf("no kernel BTF at /sys/kernel/btf/vmlinux: %v", err)
	}
	kernelOnce.Do(func() { kernel, kernelErr = LoadKernel() })
	if kernelErr != nil {
		t.Fatalf("LoadKernel: %v", kernelErr)
	}
	return kernel
}

func ptr[T any](v T) *T { return &v }

func args(a ...any) []v1alpha1.Arg {
	var out []v1alpha1.Arg
	for i := 0; i < len(a); i += 2 {
		out = append(out, v1alpha1.Arg{Index: int32(a[i].(int)), Type: v1alpha1.ArgType(a[i+1].(string))})
	}
	return out
}

func TestResolveRunningKernel(t *testing.T) {
	k := runningKernel(t)
	w := map[string]string{"x86_64": "__x64_sys_", "arm64": "__arm64_sys_"}[k.Arch] // the syscall wrappers' prefix
	t.Logf("kernel: arch %s, tracefs %q, lsm %v, unchecked %q", k.Arch, k.Tracefs, k.LSM, k.Unchecked)
	for _, tc := range []struct {
		name string
		spec v1alpha1.TracingPolicySpec
		// hooks: "path kind target numArgs" of every resolved hook.
		hooks []string
		// btfTypes: the C types of the first hook's args.
		btfTypes []string
		// problems: "path code" and a substring of the message.
		problems [][3]string
	}{
		{
			name:     "fentry with typed args",
			spec:     v1alpha1.TracingPolicySpec{KProbes: []v1alpha1.FunctionHook{{Call: "security_file_permission", HookCommon: v1alpha1.HookCommon{Args: args(0, "file", 1, "int")}}}},
			hooks:    []string{"spec.kprobes[0] fentry security_file_permission 2"},
			btfTypes: []string{"struct file *", "int"},
		},
		{
			name:  "string on a struct file pointer",
			spec:  v1alpha1.TracingPolicySpec{KProbes: []v1alpha1.FunctionHook{{Call: "security_file_permission", HookCommon: v1alpha1.HookCommon{Args: args(0, "string")}}}},
			hooks: []string{"spec.kprobes[0] fentry security_file_permission 2"},
			problems: [][3]string{{"spec.kprobes[0].args[0].type", CodeArgType,
				`argument 0 of security_file_permission is "struct file *file", which type "string" cannot read (it is not a char * or char array); use type "file"`}},
		},
		{
			name:  "index past the parameters",
			spec:  v1alpha1.TracingPolicySpec{KProbes: []v1alpha1.FunctionHook{{Call: "security_file_permission", HookCommon: v1alpha1.HookCommon{Args: args(2, "int")}}}},
			hooks: []string{"spec.kprobes[0] fentry security_file_permission 2"},
			problems: [][3]string{{"spec.kprobes[0].args[0].index", CodeArgIndex,
				"argument index 2 is past the 2 arguments of security_file_permission(struct file *file, int mask)"}},
		},
		{
			name:     "missing function",
			spec:     v1alpha1.TracingPolicySpec{KProbes: []v1alpha1.FunctionHook{{Call: "palisade_no_such_function"}}},
			problems: [][3]string{{"spec.kprobes[0].call", CodeFunctionNotFound, `kernel function "palisade_no_such_function" is not in the kernel's BTF`}},
		},
		{
			name:     "syscall without syscall: true",
			spec:     v1alpha1.TracingPolicySpec{KProbes: []v1alpha1.FunctionHook{{Call: "sys_openat"}}},
			problems: [][3]string{{"spec.kprobes[0].call", CodeFunctionNotFound, "openat is a syscall: set syscall: true"}},
		},
		{
			name: "syscall names",
			spec: v1alpha1.TracingPolicySpec{KProbes: []v1alpha1.FunctionHook{
				{Call: "sys_openat", Syscall: ptr(true), HookCommon: v1alpha1.HookCommon{Args: args(0, "int", 1, "string", 2, "int")}},
				{Call: "openat", Syscall: ptr(true)},
				{Call: v1alpha1.Symbol(w + "openat"), Syscall: ptr(true)},
				{Call: "write", Syscall: ptr(true), Return: ptr(true), ReturnArg: &v1alpha1.Arg{Type: "int64"}},
			}},
			hooks: []string{
				"spec.kprobes[0] fentry " + w + "openat 4", "spec.kprobes[1] fentry " + w + "openat 4",
				"spec.kprobes[2] fentry " + w + "openat 4", "spec.kprobes[3] fexit " + w + "write 3",
			},
			btfTypes: []string{"int", "const char *", "int"},
		},
		{
			name: "syscall argument types",
			spec: v1alpha1.TracingPolicySpec{KProbes: []v1alpha1.FunctionHook{
				{Call: "sys_openat", Syscall: ptr(true), HookCommon: v1alpha1.HookCommon{Args: args(1, "file", 6, "int")}},
				{Call: "sys_no_such_syscall", Syscall: ptr(true)},
			}},
			hooks: []string{"spec.kprobes[0] fentry " + w + "openat 4"},
			problems: [][3]string{
				{"spec.kprobes[0].args[0].type", CodeArgType, `argument 1 of syscall openat is "const char *filename", which type "file" cannot read (a syscall argument is a user-space value, never a kernel struct file); use type "string"`},
				{"spec.kprobes[0].args[1].index", CodeArgIndex, "argument index 6 is past the 4 arguments of syscall openat(int dfd, const char *filename, int flags, umode_t mode)"},
				{"spec.kprobes[1].call", CodeFunctionNotFound, `syscall "no_such_syscall" has no wrapper ` + w + `no_such_syscall`},
			},
		},
		{
			name:     "integer wider than the parameter",
			spec:     v1alpha1.TracingPolicySpec{KProbes: []v1alpha1.FunctionHook{{Call: "security_file_permission", HookCommon: v1alpha1.HookCommon{Args: args(1, "uint64")}}}},
			hooks:    []string{"spec.kprobes[0] fentry security_file_permission 2"},
			problems: [][3]string{{"spec.kprobes[0].args[0].type", CodeArgType, `"int mask", which type "uint64" cannot read (it has 4 bytes and the type reads 8 bytes); use type "int"`}},
		},
		{
			name: "fexit return",
			spec: v1alpha1.TracingPolicySpec{KProbes: []v1alpha1.FunctionHook{
				{Call: "security_file_permission", Return: ptr(true), ReturnArg: &v1alpha1.Arg{Type: "int"}},
				{Call: "security_file_permission", Return: ptr(true), ReturnArg: &v1alpha1.Arg{Type: "file"}},
			}},
			hooks:    []string{"spec.kprobes[0] fexit security_file_permission 2", "spec.kprobes[1] fexit security_file_permission 2"},
			problems: [][3]string{{"spec.kprobes[1].returnArg.type", CodeArgType, `the return value of security_file_permission is "int", which type "file" cannot read`}},
		},
		{
			name: "lsm hooks",
			spec: v1alpha1.TracingPolicySpec{LSMHooks: []v1alpha1.LSMHook{
				{Hook: "file_open", HookCommon: v1alpha1.HookCommon{Args: args(0, "file")}},
				{Hook: "bprm_check_security", HookCommon: v1alpha1.HookCommon{Args: args(0, "linux_binprm")}},
				{Hook: "security_file_open"},
				{Hook: "no_such_hook"},
				{Hook: "socket_connect", HookCommon: v1alpha1.HookCommon{Args: args(0, "socket", 1, "sockaddr", 2, "int")}},
			}},
			hooks:    []string{"spec.lsmhooks[0] lsm file_open 1", "spec.lsmhooks[1] lsm bprm_check_security 1", "spec.lsmhooks[4] lsm socket_connect 3"},
			btfTypes: []string{"struct file *"},
			problems: [][3]string{
				{"spec.lsmhooks[2].hook", CodeLSMHookNotFound, `write the hook without the security_ prefix: "file_open"`},
				{"spec.lsmhooks[3].hook", CodeLSMHookNotFound, `LSM hook "no_such_hook" does not exist on this kernel`},
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			hs, ps := Resolve(k, tc.spec)
			var got []string
			for _, h := range hs {
				got = append(got, strings.Join([]string{h.Path, string(h.Kind), h.Target, strconv.Itoa(h.NumArgs)}, " "))
			}
			if !slices.Equal(got, tc.hooks) {
				t.Errorf("hooks:\n got %q\nwant %q", got, tc.hooks)
			}
			if tc.btfTypes != nil {
				var types []string
				for _, a := range hs[0].Args {
					types = append(types, a.BTFType)
				}
				if !slices.Equal(types, tc.btfTypes) {
					t.Errorf("arg types: got %q, want %q", types, tc.btfTypes)
				}
			}
			if len(ps) != len(tc.problems) {
				t.Errorf("got %d problems, want %d: %+v", len(ps), len(tc.problems), ps)
			}
			for i := range min(len(ps), len(tc.problems)) {
				w := tc.problems[i]
				if ps[i].Path != w[0] || ps[i].Code != w[1] || !strings.Contains(ps[i].Message, w[2]) {
					t.Errorf("problem %d:\n got %s %s %q\nwant %s %s containing %q", i, ps[i].Path, ps[i].Code, ps[i].Message, w[0], w[1], w[2])
				}
			}
		})
	}
}
