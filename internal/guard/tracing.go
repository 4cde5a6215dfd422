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

package guard

import (
	"fmt"
	"slices"

	"github.com/palisade-dev/palisade/api/v1alpha1"
	"github.com/palisade-dev/palisade/internal/policy"
)

// tracingFacts fills f for a tracing policy after a change: which
// enforcing actions (Sigkill, Signal, Deny) it takes and whether each is scoped the
// way validation's PAL503 asks. An empty podSelector scopes nothing.
func tracingFacts(f *Facts, before, after *policy.Policy) {
	if before != nil && after != nil {
		bs, _ := before.Tracing()
		as, _ := after.Tracing()
		if b, a := requirements(bs.PodSelector), requirements(as.PodSelector); b != nil && widened(b, orEmpty(a)) {
			f.WidenedSelectors = append(f.WidenedSelectors, WidenedSelector{Path: "spec.podSelector", Before: b, After: orEmpty(a)})
		}
	}
	if after == nil {
		return
	}
	spec, ok := after.Tracing()
	if !ok {
		return
	}
	podScoped := len(requirements(spec.PodSelector)) > 0
	type hook struct {
		path, name string
		common     *v1alpha1.HookCommon
	}
	var hooks []hook
	for i := range spec.KProbes {
		h := &spec.KProbes[i]
		hooks = append(hooks, hook{fmt.Sprintf("spec.kprobes[%d]", i), "kprobe " + string(h.Call), &h.HookCommon})
	}
	for i := range spec.Tracepoints {
		h := &spec.Tracepoints[i]
		hooks = append(hooks, hook{fmt.Sprintf("spec.tracepoints[%d]", i), "tracepoint " + string(h.Subsystem) + "/" + string(h.Event), &h.HookCommon})
	}
	for i := range spec.LSMHooks {
		h := &spec.LSMHooks[i]
		hooks = append(hooks, hook{fmt.Sprintf("spec.lsmhooks[%d]", i), "lsmhook " + string(h.Hook), &h.HookCommon})
	}
	for i := range spec.UProbes {
		h := &spec.UProbes[i]
		hooks = append(hooks, hook{fmt.Sprintf("spec.uprobes[%d]", i), "uprobe " + h.Path, &h.HookCommon})
	}
	for _, h := range hooks {
		for j, s := range h.common.Selectors {
			scoped := podScoped || len(s.MatchBinaries) > 0 || len(s.MatchNamespaces) > 0 || len(s.MatchPIDs) > 0 || len(s.MatchCapabilities) > 0
			for k, a := range s.MatchActions {
				if a.Action != v1alpha1.ActionSigkill && a.Action != v1alpha1.ActionSignal && a.Action != v1alpha1.ActionDeny {
					continue
				}
				if !slices.Contains(f.EnforcingActions, string(a.Action)) {
					f.EnforcingActions = append(f.EnforcingActions, string(a.Action))
				}
				if !scoped {
					f.Scoped = false
					f.UnscopedActions = append(f.UnscopedActions, ActionFact{
						Path: fmt.Sprintf("%s.selectors[%d].matchActions[%d]", h.path, j, k), Hook: h.name, Action: string(a.Action),
					})
				}
			}
		}
	}
	slices.Sort(f.EnforcingActions)
}

func orEmpty(r []Requirement) []Requirement {
	if r == nil {
		return []Requirement{}
	}
	return r
}
