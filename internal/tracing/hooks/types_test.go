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
	"strings"
	"testing"

	"github.com/palisade-dev/palisade/api/v1alpha1"
)

// TestArgumentTypes checks declared types against the real prototypes of
// the running kernel: each type reads the parameter it is made for, and
// refuses the others with the type that would read them.
func TestArgumentTypes(t *testing.T) {
	k := runningKernel(t)
	for _, tc := range []struct {
		call    string
		syscall bool
		index   int
		typ     v1alpha1.ArgType
		// problem: "" when the type fits, else a substring of the message.
		problem string
	}{
		{call: "security_socket_connect", index: 0, typ: "socket"},
		{call: "security_socket_connect", index: 1, typ: "sockaddr"},
		{call: "security_socket_connect", index: 2, typ: "int"},
		{call: "security_socket_connect", index: 0, typ: "sock", problem: `is "struct socket *sock", which type "sock" cannot read (it is not a struct sock *); use type "socket"`},
		{call: "tcp_connect", index: 0, typ: "sock"},
		{call: "tcp_connect", index: 0, typ: "skb", problem: `use type "sock"`},
		{call: "commit_creds", index: 0, typ: "cred"},
		{call: "commit_creds", index: 0, typ: "int64", problem: `it is not an integer); use type "cred"`},
		{call: "security_path_truncate", index: 0, typ: "path"},
		{call: "security_inode_follow_link", index: 0, typ: "dentry"},
		{call: "security_bprm_check", index: 0, typ: "linux_binprm"},
		{call: "__cgroup_bpf_run_filter_skb", index: 1, typ: "skb"},
		{call: "cap_capable", index: 2, typ: "capability"},
		{call: "fd_install", index: 0, typ: "fd"},
		{call: "fd_install", index: 0, typ: "int"},
		{call: "fd_install", index: 1, typ: "file"},
		{call: "fd_install", index: 1, typ: "data_loc", problem: "it is not a tracepoint's __data_loc field"},
		{call: "fd_install", index: 1, typ: "char_buf", problem: `use type "file"`},
		{call: "fd_install", index: 1, typ: "nop"},
		{call: "security_kernel_module_request", index: 0, typ: "string"},
		{call: "security_kernel_module_request", index: 0, typ: "char_buf"},
		{call: "security_kernel_module_request", index: 0, typ: "const_buf"},
		{call: "write", syscall: true, index: 1, typ: "char_buf"},
		{call: "write", syscall: true, index: 2, typ: "size_t"},
		{call: "write", syscall: true, index: 0, typ: "fd"},
		{call: "write", syscall: true, index: 1, typ: "int8", problem: `use type "string"`},
		{call: "writev", syscall: true, index: 1, typ: "char_iovec"},
		{call: "connect", syscall: true, index: 1, typ: "sockaddr"},
		{call: "connect", syscall: true, index: 0, typ: "sock", problem: "a syscall argument is a user-space value, never a kernel struct sock"},
		{call: "capset", syscall: true, index: 0, typ: "kernel_cap_t", problem: "it is not a kernel_cap_t"},
	} {
		name := tc.call + "/" + string(tc.typ)
		t.Run(name, func(t *testing.T) {
			spec := v1alpha1.TracingPolicySpec{KProbes: []v1alpha1.FunctionHook{{
				Call: v1alpha1.Symbol(tc.call), Syscall: &tc.syscall,
				HookCommon: v1alpha1.HookCommon{Args: []v1alpha1.Arg{{Index: int32(tc.index), Type: tc.typ}}},
			}}}
			hs, ps := Resolve(k, spec)
			if len(hs) != 1 {
				t.Fatalf("hook did not resolve: %v", ps)
			}
			a := hs[0].Args[0]
			t.Logf("%s argument %d: %q (user %v): %v", hs[0].Target, tc.index, a.BTFType, a.User, ps)
			switch {
			case tc.problem == "" && len(ps) > 0:
				t.Errorf("want no problem, got %v", ps)
			case tc.problem != "" && (len(ps) != 1 || ps[0].Code != CodeArgType || !strings.Contains(ps[0].Message, tc.problem)):
				t.Errorf("want one %s containing %q, got %v", CodeArgType, tc.problem, ps)
			}
			if a.User != tc.syscall {
				t.Errorf("User = %v for a syscall hook %v", a.User, tc.syscall)
			}
		})
	}
}

// TestSizeArgIndex checks that sizeArgIndex names an integer argument.
func TestSizeArgIndex(t *testing.T) {
	k := runningKernel(t)
	spec := v1alpha1.TracingPolicySpec{KProbes: []v1alpha1.FunctionHook{{
		Call: "write", Syscall: ptr(true),
		HookCommon: v1alpha1.HookCommon{Args: []v1alpha1.Arg{
			{Index: 1, Type: "char_buf", SizeArgIndex: ptr(int32(3))},
			{Index: 1, Type: "char_buf", SizeArgIndex: ptr(int32(2))},
			{Index: 1, Type: "char_buf", SizeArgIndex: ptr(int32(4))},
		}},
	}}}
	hs, ps := Resolve(k, spec)
	if len(hs) != 1 || hs[0].Args[0].SizeArgIndex != 3 {
		t.Fatalf("hooks %+v", hs)
	}
	checkProblems(t, ps, []string{
		`spec.kprobes[0].args[1].sizeArgIndex PAL527 sizeArgIndex 2 (1-based) names argument 1 of syscall write, "const char *buf", which is not an integer size`,
		`spec.kprobes[0].args[2].sizeArgIndex PAL527 sizeArgIndex 4 (1-based) names no argument of syscall write(unsigned int fd, const char *buf, size_t count)`,
	})
}

// TestSuggestions: a name that is not found is answered with the
// kernel's names that look like it.
func TestSuggestions(t *testing.T) {
	k := runningKernel(t)
	_, ps := Resolve(k, v1alpha1.TracingPolicySpec{
		KProbes: []v1alpha1.FunctionHook{
			{Call: "security_file_permision"},
			{Call: "opnat", Syscall: ptr(true)},
			{Call: "palisade_nothing_like_it"},
		},
		LSMHooks: []v1alpha1.LSMHook{{Hook: "file_opne"}},
	})
	checkProblems(t, ps, []string{
		`spec.kprobes[0].call PAL520 kernel function "security_file_permision" is not in the kernel's BTF (functions of modules are not checked and not hooked); this kernel has security_file_permission`,
		`spec.kprobes[1].call PAL520 syscall "opnat" has no wrapper ` + map[string]string{"x86_64": "__x64_sys_", "arm64": "__arm64_sys_"}[k.Arch] + `opnat in the kernel's BTF: the kernel has no such syscall; this kernel has similar: sys_openat, sys_openat2`,
		`spec.kprobes[2].call PAL520 kernel function "palisade_nothing_like_it" is not in the kernel's BTF (functions of modules are not checked and not hooked)`,
		`spec.lsmhooks[0].hook PAL521 LSM hook "file_opne" does not exist on this kernel (no bpf_lsm_file_opne in its BTF); this kernel has file_open`,
	})
	if len(ps) == 4 && strings.Contains(ps[2].Message, ";") {
		t.Errorf("a name like nothing gets a suggestion: %s", ps[2].Message)
	}
}
