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
	"slices"
	"testing"

	"github.com/palisade-dev/palisade/api/v1alpha1"
	"github.com/palisade-dev/palisade/internal/policy"
)

// Every action that stops a process or fails a call is enforcing: Sigkill,
// Signal and Deny. Notify is not.
func TestTracingFactsEnforcingActions(t *testing.T) {
	sig := int32(19)
	for _, tc := range []struct {
		action    v1alpha1.ActionType
		enforcing bool
	}{
		{v1alpha1.ActionNotify, false},
		{v1alpha1.ActionSigkill, true},
		{v1alpha1.ActionSignal, true},
		{v1alpha1.ActionDeny, true},
	} {
		a := v1alpha1.Action{Action: tc.action}
		if tc.action == v1alpha1.ActionSignal {
			a.ArgSig = &sig
		}
		p := &policy.Policy{Kind: policy.KindClusterTracingPolicy, Name: "p",
			ClusterTracingPolicy: &v1alpha1.ClusterTracingPolicy{Spec: v1alpha1.TracingPolicySpec{
				LSMHooks: []v1alpha1.LSMHook{{Hook: "file_open", HookCommon: v1alpha1.HookCommon{
					Selectors: []v1alpha1.Selector{{MatchActions: []v1alpha1.Action{a}}}}}},
			}}}
		var f Facts
		f.Scoped = true
		tracingFacts(&f, nil, p)
		if got := slices.Contains(f.EnforcingActions, string(tc.action)); got != tc.enforcing {
			t.Errorf("%s: enforcing = %v, want %v (facts %+v)", tc.action, got, tc.enforcing, f)
		}
		if tc.enforcing && (f.Scoped || len(f.UnscopedActions) != 1 || f.UnscopedActions[0].Path != "spec.lsmhooks[0].selectors[0].matchActions[0]") {
			t.Errorf("%s on every process: scoped = %v, unscoped %+v; want unscoped at its path", tc.action, f.Scoped, f.UnscopedActions)
		}
	}
}
