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

package validate

import "github.com/palisade-dev/palisade/api/v1alpha1"

// HookProblem is why a hook of a tracing policy cannot load on a kernel,
// at a field path of the policy (e.g. "spec.kprobes[0].args[1].type"),
// with a registered diagnostic code (PAL520 and up).
type HookProblem struct {
	Path, Code, Message string
}

// HookChecker checks the hooks of a tracing policy against a kernel. The
// validator stays pure (no BTF, no tracefs, no cilium/ebpf): the caller
// that knows the kernel passes one in, e.g. palisadectl validate --kernel
// with internal/tracing/hooks.Resolve. Nil: hooks are not checked.
type HookChecker func(spec *v1alpha1.TracingPolicySpec) []HookProblem
