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
	"io"

	"github.com/spf13/cobra"

	"github.com/palisade-dev/palisade/api/v1alpha1"
	tracingdp "github.com/palisade-dev/palisade/internal/tracing"
	"github.com/palisade-dev/palisade/internal/tracing/hooks"
	"github.com/palisade-dev/palisade/internal/validate"
)

// kernelFlags choose the kernel that validate checks tracing hooks
// against: the running one (--kernel) or a BTF file (--btf).
type kernelFlags struct {
	running bool
	btf     string
}

func (f *kernelFlags) register(cmd *cobra.Command) {
	cmd.Flags().BoolVar(&f.running, "kernel", false, "check tracing hooks against the running kernel (its BTF at /sys/kernel/btf/vmlinux, tracefs, BPF-LSM, this machine's uprobe binaries, and whether it loads fentry, kprobe and BPF-LSM programs), and what the tracing datapath compiles")
	cmd.Flags().StringVar(&f.btf, "btf", "", "check tracing hooks against the kernel whose BTF this file holds (e.g. /sys/kernel/btf/vmlinux copied from a target node), and what the tracing datapath compiles")
}

// checker returns the hook checker the flags ask for, and notes for
// people on what it does not check. With neither flag it returns a checker
// that checks nothing and counts the tracing policies, so validate can say
// once that their hooks were not checked.
func (f *kernelFlags) checker(unchecked *int) (validate.HookChecker, []string, error) {
	var (
		k   *hooks.Kernel
		err error
	)
	switch {
	case f.running && f.btf != "":
		return nil, nil, fmt.Errorf("give --kernel or --btf, not both")
	case f.running:
		k, err = hooks.LoadKernel()
		if err == nil {
			// What this kernel loads, probed once; without the
			// privileges to probe, hooks are checked for existence.
			if perr := tracingdp.ProbeKernel(k); perr != nil {
				k.Unchecked = append(k.Unchecked, perr.Error()+": kernel functions and LSM hooks are checked for existence only (run as root to probe)")
			}
		}
	case f.btf != "":
		k, err = hooks.KernelFromBTF(f.btf)
	default:
		return func(*v1alpha1.TracingPolicySpec) []validate.HookProblem {
			*unchecked++
			return nil
		}, nil, nil
	}
	if err != nil {
		return nil, nil, err
	}
	return hookChecker(k), k.Unchecked, nil
}

// hookChecker checks tracing policies against k with tracing.Check: the
// hooks resolve, the datapath compiles them, and (on the running kernel)
// some mechanism attaches them, so that a policy that validates loads.
func hookChecker(k *hooks.Kernel) validate.HookChecker {
	return func(spec *v1alpha1.TracingPolicySpec) []validate.HookProblem {
		problems := tracingdp.Check(k, *spec)
		out := make([]validate.HookProblem, len(problems))
		for i, p := range problems {
			out[i] = validate.HookProblem{Path: p.Path, Code: p.Code, Message: p.Message}
		}
		return out
	}
}

// noteUnchecked says, once, what validate did not check.
func noteUnchecked(w io.Writer, tracingPolicies int, notes []string) {
	if tracingPolicies > 0 {
		fmt.Fprintf(w, "palisadectl: note: tracing hooks not checked against a kernel (%d tracing %s); use --kernel or --btf\n", tracingPolicies, map[bool]string{true: "policy", false: "policies"}[tracingPolicies == 1])
	}
	for _, n := range notes {
		fmt.Fprintf(w, "palisadectl: note: %s\n", n)
	}
}
