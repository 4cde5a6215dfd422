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

	"github.com/palisade-dev/palisade/api/v1alpha1"
)

// resolver accumulates the hooks and problems of one Resolve.
type resolver struct {
	k        *Kernel
	hooks    []Hook
	problems []Problem
}

func (r *resolver) problem(path, code, format string, args ...any) {
	r.problems = append(r.problems, Problem{Path: path, Code: code, Message: fmt.Sprintf(format, args...)})
}

// TODO(h4): the resolution of each kind lands in the next commits.
func (r *resolver) kprobe(i int, k *v1alpha1.FunctionHook) {
	r.problem(fmt.Sprintf("spec.kprobes[%d]", i), CodeFunctionNotFound, "not resolved yet")
}
func (r *resolver) tracepoint(i int, t *v1alpha1.TracepointHook) {
	r.problem(fmt.Sprintf("spec.tracepoints[%d]", i), CodeTracepointNotFound, "not resolved yet")
}
func (r *resolver) lsm(i int, l *v1alpha1.LSMHook) {
	r.problem(fmt.Sprintf("spec.lsmhooks[%d]", i), CodeLSMHookNotFound, "not resolved yet")
}
func (r *resolver) uprobe(i int, u *v1alpha1.UprobeHook) {
	r.problem(fmt.Sprintf("spec.uprobes[%d]", i), CodeUprobeNotFound, "not resolved yet")
}

// LoadKernel describes the running kernel.
func LoadKernel() (*Kernel, error) {
	return nil, fmt.Errorf("not implemented yet")
}
