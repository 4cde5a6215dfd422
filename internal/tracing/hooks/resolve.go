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
	"github.com/palisade-dev/palisade/api/v1alpha1"
)

// Resolve resolves every hook of spec against k (which must not be nil).
// It returns the hooks that resolved (a hook with problems is still
// returned when its target was found, so callers can report on it) and
// the problems, in spec order.
func Resolve(k *Kernel, spec v1alpha1.TracingPolicySpec) ([]Hook, []Problem) {
	r := &resolver{k: k}
	for i := range spec.KProbes {
		r.kprobe(i, &spec.KProbes[i])
	}
	for i := range spec.Tracepoints {
		r.tracepoint(i, &spec.Tracepoints[i])
	}
	for i := range spec.LSMHooks {
		r.lsm(i, &spec.LSMHooks[i])
	}
	for i := range spec.UProbes {
		r.uprobe(i, &spec.UProbes[i])
	}
	return r.hooks, r.problems
}
