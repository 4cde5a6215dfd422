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
	"fmt"
	"os"
	"runtime"
	"strings"
	"testing"

	"github.com/palisade-dev/palisade/api/v1alpha1"
)

// hookString spells a hook's arguments for comparison:
// "index:type:ctype@offset+size[user]".
func hookString(h Hook) string {
	var parts []string
	for _, a := range h.Args {
		s := fmt.Sprintf("%d:%s:%s@%d+%d", a.Index, a.Type, a.BTFType, a.Offset, a.Size)
		if a.User {
			s += "[user]"
		}
		parts = append(parts, s)
	}
	return fmt.Sprintf("%s %s %s %d %s", h.Path, h.Kind, h.Target, h.NumArgs, strings.Join(parts, " "))
}

func tracepointSpec(sub, ev string, a ...any) v1alpha1.TracingPolicySpec {
	return v1alpha1.TracingPolicySpec{Tracepoints: []v1alpha1.TracepointHook{{
		Subsystem: v1alpha1.Symbol(sub), Event: v1alpha1.Symbol(ev), HookCommon: v1alpha1.HookCommon{Args: args(a...)},
	}}}
}

func TestResolveTracepoints(t *testing.T) {
	k := runningKernel(t)
	if k.Tracefs == "" {
		t.Skipf("tracefs is not available: %q", k.Unchecked)
	}
	// Without tracefs, the same tracepoints resolve from BTF: the
	// trace_event_raw_<event> struct, or the syscall's wrapper.
	btfOnly := *k
	btfOnly.Tracefs = ""
	for _, tc := range []struct {
		name    string
		spec    v1alpha1.TracingPolicySpec
		want    string
		btfWant string // when BTF gives less than tracefs ("" : same as want)
		problem string // "path code" of the only problem
	}{
		{
			name:    "data_loc and pid fields",
			spec:    tracepointSpec("sched", "sched_process_exec", 0, "string", 1, "int"),
			want:    "spec.tracepoints[0] tracepoint sched/sched_process_exec 3 0:string:__data_loc char[]@8+4 1:int:pid_t@12+4",
			btfWant: "spec.tracepoints[0] tracepoint sched/sched_process_exec 3 0:string:__data_loc@8+4 1:int:pid_t@12+4",
		},
		{
			name:    "raw_syscalls",
			spec:    tracepointSpec("raw_syscalls", "sys_enter", 0, "syscall64"),
			want:    "spec.tracepoints[0] tracepoint raw_syscalls/sys_enter 2 0:syscall64:long@8+8",
			btfWant: "spec.tracepoints[0] tracepoint raw_syscalls/sys_enter 2 0:syscall64:long int@8+8",
		},
		{
			name:    "syscall tracepoint: user pointers",
			spec:    tracepointSpec("syscalls", "sys_enter_openat", 0, "int", 1, "int", 2, "string"),
			want:    "spec.tracepoints[0] tracepoint syscalls/sys_enter_openat 5 0:int:int@8+4 1:int:int@16+8 2:string:const char *@24+8[user]",
			btfWant: "-", // BTF has no typed syscall prototype on this kernel: the types are not known
		},
		{
			name:    "no such tracepoint",
			spec:    tracepointSpec("sched", "palisade_no_such_event"),
			problem: "spec.tracepoints[0] " + CodeTracepointNotFound,
			btfWant: "spec.tracepoints[0] tracepoint sched/palisade_no_such_event 0 ", // found by name only
		},
		{
			name:    "no such syscall tracepoint",
			spec:    tracepointSpec("syscalls", "sys_enter_palisade"),
			problem: "spec.tracepoints[0] " + CodeTracepointNotFound,
		},
		{
			name:    "index past the fields",
			spec:    tracepointSpec("sched", "sched_process_exec", 3, "int"),
			want:    "spec.tracepoints[0] tracepoint sched/sched_process_exec 3 3:int:@0+0",
			problem: "spec.tracepoints[0].args[0].index " + CodeArgIndex,
		},
	} {
		for _, kk := range []struct {
			name string
			k    *Kernel
		}{{"tracefs", k}, {"btf", &btfOnly}} {
			t.Run(tc.name+"/"+kk.name, func(t *testing.T) {
				want := tc.want
				if kk.name == "btf" && tc.btfWant != "" {
					want = tc.btfWant
				}
				if want == "-" {
					t.Skip("not comparable without tracefs")
				}
				hs, ps := Resolve(kk.k, tc.spec)
				var got string
				if len(hs) == 1 {
					got = hookString(hs[0])
				}
				if strings.TrimSpace(got) != strings.TrimSpace(want) {
					t.Errorf("hook:\n got %q\nwant %q", got, want)
				}
				var gotP string
				for _, p := range ps {
					gotP += p.Path + " " + p.Code + "\n"
					t.Logf("problem: %s %s: %s", p.Path, p.Code, p.Message)
				}
				wantP := ""
				if tc.problem != "" && !(kk.name == "btf" && tc.btfWant != "" && !strings.Contains(tc.problem, "args")) {
					wantP = tc.problem + "\n"
				}
				if gotP != wantP {
					t.Errorf("problems:\n got %q\nwant %q", gotP, wantP)
				}
			})
		}
	}
}

func TestResolveUprobes(t *testing.T) {
	k := runningKernel(t)
	// libc is ELF with a .dynsym on every glibc system.
	var exe string
	for _, p := range []string{"/lib/x86_64-linux-gnu/libc.so.6", "/lib/aarch64-linux-gnu/libc.so.6", "/usr/lib64/libc.so.6", "/lib64/libc.so.6"} {
		if _, err := os.Stat(p); err == nil {
			exe = p
			break
		}
	}
	if exe == "" {
		t.Skip("no glibc libc.so.6 found to hook")
	}
	spec := v1alpha1.TracingPolicySpec{UProbes: []v1alpha1.UprobeHook{
		{Path: exe, Symbols: []v1alpha1.Symbol{"malloc", "palisade_no_such_symbol"}, HookCommon: v1alpha1.HookCommon{Args: args(0, "int", 1, "file", 6, "int")}},
		{Path: "/palisade/no/such/binary", Symbols: []v1alpha1.Symbol{"main"}},
		{Path: "/proc/self/status", Symbols: []v1alpha1.Symbol{"main"}},
	}}
	local := *k
	local.Binaries = true
	hs, ps := Resolve(&local, spec)
	var got []string
	for _, h := range hs {
		got = append(got, h.Path+" "+h.Target)
	}
	if want := []string{"spec.uprobes[0].symbols[0] " + exe + ":malloc"}; strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("hooks: got %q, want %q", got, want)
	}
	wantP := []string{
		`spec.uprobes[0].args[1].type PAL526 argument 1 of uprobe ` + exe + ` cannot be read as type "file": a uprobe reads user-space registers, never a kernel struct file`,
		"spec.uprobes[0].args[2].index PAL525 argument index 6 is past the 6 arguments",
		"spec.uprobes[0].symbols[1] PAL524 " + exe + ` defines no symbol "palisade_no_such_symbol"`,
		"spec.uprobes[1].path PAL524 binary /palisade/no/such/binary does not exist on this machine",
		"spec.uprobes[2].path PAL524 /proc/self/status is not an ELF binary",
	}
	checkProblems(t, ps, wantP)

	// Validated for another node, the binaries are not looked at here:
	// only what the policy itself gets wrong is a problem.
	remote := *k
	remote.Binaries = false
	hs, ps = Resolve(&remote, spec)
	if len(hs) != 4 {
		t.Errorf("got %d hooks without binary checks, want 4 (one per symbol)", len(hs))
	}
	checkProblems(t, ps, wantP[:2])

	// An agent in a container looks binaries up under the node's root.
	malloc := v1alpha1.TracingPolicySpec{UProbes: []v1alpha1.UprobeHook{{Path: exe, Symbols: []v1alpha1.Symbol{"malloc"}}}}
	rooted := local
	rooted.BinaryRoot = "/proc/self/root"
	if hs, ps := Resolve(&rooted, malloc); len(hs) != 1 || len(ps) != 0 {
		t.Errorf("under /proc/self/root: hooks %v, problems %v", hs, ps)
	}
	rooted.BinaryRoot = t.TempDir()
	_, ps = Resolve(&rooted, malloc)
	checkProblems(t, ps, []string{"spec.uprobes[0].path PAL524 binary " + exe + " (under " + rooted.BinaryRoot + ") does not exist on this machine"})
}

func checkProblems(t *testing.T, ps []Problem, want []string) {
	t.Helper()
	if len(ps) != len(want) {
		t.Errorf("got %d problems, want %d: %+v", len(ps), len(want), ps)
	}
	for i := range min(len(ps), len(want)) {
		got := ps[i].Path + " " + ps[i].Code + " " + ps[i].Message
		if !strings.HasPrefix(got, want[i]) {
			t.Errorf("problem %d:\n got %q\nwant prefix %q", i, got, want[i])
		}
	}
}

func TestLSMInactive(t *testing.T) {
	k := runningKernel(t)
	off := *k
	off.LSM = false
	_, ps := Resolve(&off, v1alpha1.TracingPolicySpec{LSMHooks: []v1alpha1.LSMHook{{Hook: "file_open"}}})
	checkProblems(t, ps, []string{"spec.lsmhooks[0].hook PAL522 BPF-LSM is not active on this kernel"})
}

func TestKernelFromBTF(t *testing.T) {
	runningKernel(t) // skips without BTF
	k, err := KernelFromBTF("/sys/kernel/btf/vmlinux")
	if err != nil {
		t.Fatal(err)
	}
	if want := goArch(runtimeGOARCH()); k.Arch != want {
		t.Errorf("arch from BTF: got %q, want %q", k.Arch, want)
	}
	if k.Binaries || k.Running || k.Tracefs != "" || len(k.Unchecked) != 4 || !strings.Contains(k.Unchecked[3], "cannot be probed from a BTF file") {
		t.Errorf("a kernel from a BTF file checks binaries %v, tracefs %q, and says %q", k.Binaries, k.Tracefs, k.Unchecked)
	}
	hs, ps := Resolve(k, v1alpha1.TracingPolicySpec{KProbes: []v1alpha1.FunctionHook{
		{Call: "sys_openat", Syscall: ptr(true), HookCommon: v1alpha1.HookCommon{Args: args(1, "string", 5, "int", 6, "int")}},
	}})
	if len(hs) != 1 || hs[0].Target != "__"+map[string]string{"x86_64": "x64", "arm64": "arm64"}[k.Arch]+"_sys_openat" {
		t.Errorf("hooks: %+v", hs)
	}
	// Without tracefs or a typed prototype, a syscall has up to 6
	// arguments of unchecked types.
	checkProblems(t, ps, []string{"spec.kprobes[0].args[2].index PAL525 argument index 6 is past the 6 arguments of syscall openat"})

	if _, err := KernelFromBTF("/proc/self/status"); err == nil {
		t.Error("KernelFromBTF of a non-BTF file: no error")
	}
}

func TestParseFieldLine(t *testing.T) {
	for _, tc := range []struct{ line, want string }{
		{"field:const char * filename;\toffset:24;\tsize:8;\tsigned:0;", "filename const char * ptr 24 8"},
		{"field:__data_loc char[] name;\toffset:8;\tsize:4;\tsigned:0;", "name __data_loc char[] dataloc 8 4"},
		{"field:char comm[16];\toffset:8;\tsize:16;\tsigned:0;", "comm char[16] array 8 16"},
		{"field:unsigned long args[6];\toffset:16;\tsize:48;\tsigned:0;", "args unsigned long[6] array 16 48"},
		{"field:struct task_struct * task;\toffset:8;\tsize:8;\tsigned:0;", "task struct task_struct * ptr 8 8"},
		{"field:my_typedef_t v;\toffset:8;\tsize:4;\tsigned:1;", "v my_typedef_t int 8 4"},
	} {
		f, err := parseFieldLine(tc.line)
		if err != nil {
			t.Errorf("%q: %v", tc.line, err)
			continue
		}
		kind := map[ckind]string{cInt: "int", cPtr: "ptr", cArray: "array", cDataLoc: "dataloc", cStruct: "struct", cUnknown: "unknown"}[f.typ.kind]
		if got := fmt.Sprintf("%s %s %s %d %d", f.name, f.typ.text, kind, f.offset, f.size); got != tc.want {
			t.Errorf("%q:\n got %q\nwant %q", tc.line, got, tc.want)
		}
	}
	if _, err := parseFieldLine("field:;\toffset:x;"); err == nil {
		t.Error("malformed field line: no error")
	}
}

func runtimeGOARCH() string { return runtime.GOARCH }
