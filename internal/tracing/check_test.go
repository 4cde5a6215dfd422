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

package tracing

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	v1 "github.com/palisade-dev/palisade/api/v1alpha1"
	"github.com/palisade-dev/palisade/internal/tracing/hooks"
)

func problems(ps []hooks.Problem) string {
	var b strings.Builder
	for _, p := range ps {
		fmt.Fprintf(&b, "%s %s %s\n", p.Path, p.Code, p.Message)
	}
	return b.String()
}

func fileOpenKprobe() v1.FunctionHook {
	return v1.FunctionHook{Call: "security_file_open", HookCommon: v1.HookCommon{Args: []v1.Arg{{Index: 0, Type: "file"}}}}
}

func openatSyscall(ret bool) v1.FunctionHook {
	h := v1.FunctionHook{Call: "sys_openat", Syscall: ptr(true), HookCommon: v1.HookCommon{Args: []v1.Arg{{Index: 1, Type: "string"}}}}
	if ret {
		h.Return, h.ReturnArg = ptr(true), &v1.Arg{Index: 0, Type: "int"}
	}
	return h
}

// Check adds to Resolve what the compiler refuses, positioned, and, with
// what the kernel loads, hooks that cannot attach by any mechanism.
func TestCheck(t *testing.T) {
	k := testKernel(t)
	// The syscall tracepoints are looked up in tracefs.
	if rk, err := hooks.LoadKernel(); err != nil || rk.Tracefs == "" {
		t.Skipf("needs tracefs (mounted by LoadKernel as root): %v", err)
	} else {
		k.Tracefs = rk.Tracefs
	}
	eperm := errors.New("load program: operation not permitted")
	noKprobes := errors.New("open /sys/kernel/tracing/kprobe_events: no such file or directory")
	spec := v1.TracingPolicySpec{
		KProbes:  []v1.FunctionHook{fileOpenKprobe(), openatSyscall(false), openatSyscall(true)},
		LSMHooks: lsmFileOpen().LSMHooks,
	}
	for _, c := range []struct {
		name  string
		loads *hooks.Loads
		want  string
	}{
		{"not probed (another kernel's BTF)", nil, ""},
		{"everything loads", &hooks.Loads{}, ""},
		{"no fentry, no kprobes, no BPF-LSM", &hooks.Loads{Fentry: eperm, Kprobe: noKprobes, LSM: eperm},
			"spec.kprobes[0] PAL528 kernel function security_file_open cannot be hooked on this kernel: fentry/fexit programs do not load (load program: operation not permitted), and kprobes do not attach (probed on security_file_open: open /sys/kernel/tracing/kprobe_events: no such file or directory)\n" +
				"spec.lsmhooks[0] PAL528 LSM hook file_open cannot attach: the kernel does not load BPF-LSM programs (load program: operation not permitted)\n"},
		{"kprobes but no fentry", &hooks.Loads{Fentry: eperm}, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			k.Loads = c.loads
			if got := problems(Check(k, spec)); got != c.want {
				t.Errorf("problems:\n%s\nwant:\n%s", got, c.want)
			}
		})
	}
	// A return hook of a kernel function with arguments needs fexit: a
	// kretprobe cannot read them.
	k.Loads = &hooks.Loads{Fentry: eperm}
	ret := fileOpenKprobe()
	ret.Return = ptr(true)
	if got := problems(Check(k, v1.TracingPolicySpec{KProbes: []v1.FunctionHook{ret}})); !strings.Contains(got, "spec.kprobes[0] PAL528") || !strings.Contains(got, "a kretprobe cannot read arguments") {
		t.Errorf("fexit with arguments, no fentry: %s", got)
	}

	// What the compiler refuses, at the field.
	k.Loads = nil
	bad := v1.TracingPolicySpec{Tracepoints: []v1.TracepointHook{{Subsystem: "syscalls", Event: "sys_enter_openat", HookCommon: v1.HookCommon{
		Args: []v1.Arg{{Index: 2, Type: "string"}, {Index: 3, Type: "int"}},
		Selectors: []v1.Selector{{
			MatchArgs:    []v1.ArgSelector{{Index: 3, Operator: "InMap", Values: []string{"0:70000"}}},
			MatchActions: []v1.Action{{Action: "Notify", RateLimit: "soon"}},
		}},
	}}}}
	want := "spec.tracepoints[0].selectors[0].matchArgs[0].values[0] PAL529 range 0:70000 has 70001 values, at most 65536 (each is a map entry)\n"
	if got := problems(Check(k, bad)); got != want {
		t.Errorf("compile problems:\n%s\nwant:\n%s", got, want)
	}
	bad.Tracepoints[0].Selectors[0].MatchArgs[0].Values = []string{"1:3", "8"}
	want = "spec.tracepoints[0].selectors[0].matchActions[0].rateLimit PAL529 \"soon\" is not a duration (e.g. 1m, 30s) or a number of seconds\n"
	if got := problems(Check(k, bad)); got != want {
		t.Errorf("compile problems:\n%s\nwant:\n%s", got, want)
	}
	bad.Tracepoints[0].Selectors[0].MatchActions[0].RateLimit = "1m"
	if got := problems(Check(k, bad)); got != "" {
		t.Errorf("fixed policy: %s", got)
	}
	pl := compile(k, Policy{Key: "k", Spec: bad}, noHost)
	if len(pl.ints) != 4 {
		t.Errorf("InMap 1:3 and 8: %d values, want 4", len(pl.ints))
	}
}

// On the running kernel Check probes what loads: here (fentry and BPF-LSM
// programs refused, no kprobes) a kprobe on security_file_open is refused
// with the kernel's error, and the syscall kprobe on openat validates.
func TestCheckRunningKernel(t *testing.T) {
	requireKernel(t, false)
	k, err := hooks.LoadKernel()
	if err != nil {
		t.Fatal(err)
	}
	if err := ProbeKernel(k); err != nil {
		t.Fatal(err)
	}
	t.Logf("probed: fentry %v; kprobe %v; lsm %v", k.Loads.Fentry, k.Loads.Kprobe, k.Loads.LSM)
	got := problems(Check(k, v1.TracingPolicySpec{KProbes: []v1.FunctionHook{fileOpenKprobe(), openatSyscall(false), openatSyscall(true)}}))
	if k.Loads.Fentry == nil || k.Loads.Kprobe == nil {
		if got != "" {
			t.Errorf("fentry or kprobes load here, yet: %s", got)
		}
		return
	}
	want := fmt.Sprintf("spec.kprobes[0] PAL528 kernel function security_file_open cannot be hooked on this kernel: fentry/fexit programs do not load (%v), and kprobes do not attach (probed on security_file_open: %v)\n", k.Loads.Fentry, k.Loads.Kprobe)
	if got != want {
		t.Errorf("problems:\n%s\nwant:\n%s", got, want)
	}
}
