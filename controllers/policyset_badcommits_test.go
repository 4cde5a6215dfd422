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
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"strings"
	"testing"

	"github.com/go-git/go-git/v5/plumbing"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1 "github.com/palisade-dev/palisade/api/v1alpha1"
	"github.com/palisade-dev/palisade/internal/gitserver"
)

// appliedState is what a bad commit must not change: every NetworkPolicy
// in the namespace, by name, as resourceVersion and spec.
func (f *policySetFixture) appliedState() map[string]string {
	f.t.Helper()
	out := map[string]string{}
	for name, p := range f.policies() {
		spec, err := json.Marshal(p.Spec)
		if err != nil {
			f.t.Fatal(err)
		}
		out[name] = p.ResourceVersion + " " + string(spec)
	}
	return out
}

// hashOf is the commit of a revision "main@sha1:<hash>".
func hashOf(rev string) plumbing.Hash {
	_, h, _ := strings.Cut(rev, "@sha1:")
	return plumbing.NewHash(h)
}

// TestPolicySetBadCommits makes the mistakes a new user makes, one after
// the other on one PolicySet whose repository verifies PGP signatures,
// with the manager's controllers against the real API server and a real
// Git server. Each leaves the applied objects exactly as they were
// (resourceVersion and spec), never moves lastAppliedRevision, and is
// explained on the object that refused it: the PolicySet for what is
// wrong with the policies or the history, the PolicyRepository for what is
// wrong with the commit's signature or the server. After each case a good
// commit recovers, so the next case starts from Ready.
func TestPolicySetBadCommits(t *testing.T) {
	needEnv(t)
	good := map[string]string{"shop/web.cue": webCUE, "shop/db.cue": dbCUE}
	f := newPolicySetFixtureWith(t, good, fixtureOptions{sign: true})
	initial := f.co.Head()
	rev := f.push("readme", map[string]string{"README.md": "policies\n"})
	f.waitSet(rev, setReadyIs(metav1.ConditionTrue, v1.SucceededReason, rev))

	type outcome struct {
		// set: the PolicySet attempted the bad revision and refused it.
		// Otherwise the repository refused it and the set never saw it.
		set    bool
		reason string
		msg    []string
	}
	for _, tc := range []struct {
		name string
		// do makes the mistake; it returns the bad revision (for a set
		// outcome) or the reconcile request (for a repository outcome),
		// and the strings the message must hold that only it knows.
		do func(applied string) (string, []string)
		// recover is what the recovering commit changes besides the
		// good policies.
		recover map[string]string
		// last: the case cannot be recovered from.
		last bool
		want outcome
	}{
		{
			name: "CUE syntax error",
			do: func(string) (string, []string) {
				return f.push("syntax error", map[string]string{"shop/web.cue": syntaxCUE}), nil
			},
			want: outcome{set: true, reason: v1.ValidationFailedReason, msg: []string{"shop/web.cue:", "PAL001"}},
		},
		{
			name: "schema violation",
			do: func(string) (string, []string) {
				return f.push("schema violation", map[string]string{"shop/web.cue": schemaCUE}), nil
			},
			want: outcome{set: true, reason: v1.ValidationFailedReason, msg: []string{"shop/web.cue:9:", "PAL050", "10.20.0.0/33"}},
		},
		{
			name: "guard denial",
			do: func(string) (string, []string) {
				return f.push("open ssh", map[string]string{"shop/web.cue": sshCUE}), nil
			},
			want: outcome{set: true, reason: v1.GuardDeniedReason, msg: []string{"shop/web.cue:", "guard admin_ports", "22/TCP"}},
		},
		{
			name: "path no longer exists",
			do: func(string) (string, []string) {
				return f.push("move shop to store", map[string]string{"shop/web.cue": "", "shop/db.cue": "", "store/web.cue": webCUE}), nil
			},
			recover: map[string]string{"store/web.cue": ""},
			want:    outcome{set: true, reason: v1.GitOperationFailedReason, msg: []string{`path "shop" does not exist in revision`}},
		},
		{
			name: "unsigned commit",
			do: func(string) (string, []string) {
				h := f.co.Commit("unsigned change", map[string]string{"shop/db.cue": netpol("db", `fromEntities: ["world"]`, 5432)}, gitserver.CommitOptions{})
				f.co.Push(false)
				return f.request(), []string{"commit " + h.String() + " by Ada Author <ada@example.org> is not signed"}
			},
			want: outcome{reason: v1.VerificationErrorReason},
		},
		{
			name: "force-push to an older commit",
			do: func(applied string) (string, []string) {
				f.co.ResetHard(initial)
				f.co.Push(true)
				f.request()
				bad := "main@sha1:" + initial.String()
				return bad, []string{"revision " + bad + " is not a descendant of the applied revision " + applied}
			},
			want: outcome{set: true, reason: v1.RollbackRefusedReason, msg: []string{"force-push", "spec.allowRollback"}},
		},
		{
			name: "force-push rewriting history",
			do: func(applied string) (string, []string) {
				f.co.ResetHard(initial)
				h := f.co.Commit("rewritten", map[string]string{"shop/db.cue": netpol("db", `fromEndpoints: [{matchLabels: app: "web"}]`, 5433)}, f.commitOptions())
				f.co.Push(true)
				f.request()
				bad := "main@sha1:" + h.String()
				return bad, []string{bad, applied}
			},
			want: outcome{set: true, reason: v1.RollbackRefusedReason, msg: []string{"not a descendant"}},
		},
		{
			name: "unreachable repository",
			do: func(string) (string, []string) {
				f.srv.Close()
				return f.request(), []string{"fetch " + f.srv.URL("policies") + " at branch main"}
			},
			last: true,
			want: outcome{reason: v1.GitOperationFailedReason},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f.t = t
			ctx := context.Background()
			before := f.waitSet("", setReadyIs(metav1.ConditionTrue, v1.SucceededReason))
			applied := before.Status.LastAppliedRevision
			objects := f.appliedState()
			if len(objects) != 2 {
				t.Fatalf("%d objects applied before the bad commit, want 2", len(objects))
			}

			bad, msg := tc.do(applied)
			msg = append(msg, tc.want.msg...)
			var after *v1.PolicySet
			if tc.want.set {
				after = f.waitSet(bad, setReadyIs(metav1.ConditionFalse, tc.want.reason, msg...))
				if !apimeta.IsStatusConditionTrue(after.Status.Conditions, v1.StalledCondition) {
					t.Errorf("not Stalled: %+v", after.Status.Conditions)
				}
			} else {
				repo := f.waitRepo(bad, func(r *v1.PolicyRepository) error {
					c := apimeta.FindStatusCondition(r.Status.Conditions, v1.ReadyCondition)
					if c == nil || c.Status != metav1.ConditionFalse || c.Reason != tc.want.reason {
						return fmt.Errorf("repository Ready %+v, want False/%s", c, tc.want.reason)
					}
					for _, s := range msg {
						if !strings.Contains(c.Message, s) {
							return fmt.Errorf("repository Ready message %q does not contain %q", c.Message, s)
						}
					}
					if strings.Contains(c.Message, testPassword) {
						return fmt.Errorf("repository Ready message leaks the password: %q", c.Message)
					}
					return nil
				})
				if a := repo.Status.Artifact; a == nil || a.Revision != applied {
					t.Errorf("repository artifact %+v moved from %s", a, applied)
				}
				after = &v1.PolicySet{}
				if err := k8sClient.Get(ctx, f.set, after); err != nil {
					t.Fatal(err)
				}
				if after.Status.LastAttemptedRevision != applied {
					t.Errorf("the set attempted %s, which the repository refused", after.Status.LastAttemptedRevision)
				}
			}
			if after.Status.LastAppliedRevision != applied {
				t.Errorf("lastAppliedRevision moved from %s to %s", applied, after.Status.LastAppliedRevision)
			}
			if now := f.appliedState(); !maps.Equal(now, objects) {
				t.Errorf("applied objects changed:\nbefore %v\nafter  %v", objects, now)
			}
			if inv := after.Status.Inventory; inv == nil || len(inv.Entries) != 2 {
				t.Errorf("inventory %+v", inv)
			}

			if tc.last {
				return
			}
			// Recover: the remote back at the applied commit if history
			// was rewritten, then a good commit on top.
			if tc.want.reason == v1.RollbackRefusedReason {
				f.co.ResetHard(hashOf(applied))
				f.co.Push(true)
			}
			files := map[string]string{"README.md": "recovered from " + tc.name + "\n"}
			maps.Copy(files, good)
			maps.Copy(files, tc.recover)
			rev := f.push("recover from "+tc.name, files)
			f.waitSet(rev, setReadyIs(metav1.ConditionTrue, v1.SucceededReason, rev))
		})
	}
}
