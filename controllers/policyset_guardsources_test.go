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

package controllers

import (
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1 "github.com/palisade-dev/palisade/api/v1alpha1"
)

// namesGuard is a guard owned by the security team: no policy may be
// called "forbidden".
const namesGuard = `package palisade.guards.names

deny contains {"msg": msg, "policy": c.id} if {
	some c in input.changes
	c.op != "delete"
	endswith(c.id, "/forbidden")
	msg := sprintf("%s: the name forbidden is reserved by security", [c.id])
}
`

// TestPolicySetGuardSources: guards from another path of a repository run
// beside the built-in ones, and a policy change cannot change them.
func TestPolicySetGuardSources(t *testing.T) {
	f := newPolicySetFixtureWith(t, map[string]string{"shop/web.cue": webCUE, "security/names.rego": namesGuard}, fixtureOptions{
		set: func(ps *v1.PolicySet) {
			ps.Spec.Guards = &v1.Guards{Sources: []v1.GuardSource{{SourceRef: v1.SourceReference{Name: "policies"}, Path: "security"}}}
		},
	})
	first := f.waitSet("", setReadyIs(metav1.ConditionTrue, v1.SucceededReason))
	if err := conditionIs(first, v1.GuardedCondition, metav1.ConditionTrue, v1.GuardSucceededReason); err != nil {
		t.Fatal(err)
	}

	rev := f.push("add a policy named forbidden", map[string]string{"shop/forbidden.cue": netpol("forbidden", `fromEndpoints: [{matchLabels: app: "web"}]`, 8080)})
	f.waitSet(rev, setReadyIs(metav1.ConditionFalse, v1.GuardDeniedReason, "guard names", "the name forbidden is reserved by security"))
	if _, ok := f.policies()["forbidden"]; ok {
		t.Error("the denied policy was applied")
	}

	// A source that does not compile stalls the set and names the file.
	rev = f.push("break the guard", map[string]string{"security/names.rego": "package palisade.guards.names\n\ndeny contains x if {\n"})
	f.waitSet(rev, setReadyIs(metav1.ConditionFalse, v1.GuardDeniedReason, "compile guards", "names.rego"))
}
