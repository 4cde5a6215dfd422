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
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "github.com/palisade-dev/palisade/api/v1alpha1"
	"github.com/palisade-dev/palisade/internal/gitserver"
	"github.com/palisade-dev/palisade/internal/render"
)

// netpol is a CUE file declaring one NetworkPolicy in the set's namespace
// that admits peer on port.
func netpol(name, peer string, port int) string {
	return fmt.Sprintf(`package shop

np: %q: {
	apiVersion: "palisade.dev/v1alpha1"
	kind:       "NetworkPolicy"
	metadata: name: %q
	spec: {
		endpointSelector: matchLabels: app: %q
		ingress: [{%s, toPorts: [{ports: [{port: %d, protocol: "TCP"}]}]}]
	}
}
`, name, name, name, peer, port)
}

var (
	webCUE = netpol("web", `fromEntities: ["world"]`, 443)
	dbCUE  = netpol("db", `fromEndpoints: [{matchLabels: app: "web"}]`, 5432)
	// syntaxCUE forgets the closing brace of spec (line 10).
	syntaxCUE = strings.Replace(webCUE, "\t}\n}\n", "}\n", 1)
	// schemaCUE has a CIDR with a prefix too long for IPv4, on line 9.
	schemaCUE = netpol("web", `fromCIDR: ["10.20.0.0/33"]`, 443)
	// sshCUE opens SSH to the world: the admin_ports guard denies it.
	sshCUE = netpol("web", `fromEntities: ["world"]`, 22)
)

// TestPolicySetReconcilePolicies calls the validate and guard steps
// directly on policy directories.
func TestPolicySetReconcilePolicies(t *testing.T) {
	r := &PolicySetReconciler{}
	for _, tc := range []struct {
		name       string
		files      map[string]string
		wantReason string
		wantMsg    []string
	}{
		{name: "valid", files: map[string]string{"web.cue": webCUE, "db.cue": dbCUE}},
		{name: "syntax error", files: map[string]string{"web.cue": syntaxCUE},
			wantReason: v1.ValidationFailedReason, wantMsg: []string{"shop/web.cue:", "PAL001"}},
		{name: "schema violation", files: map[string]string{"web.cue": schemaCUE},
			wantReason: v1.ValidationFailedReason, wantMsg: []string{"shop/web.cue:9:", "PAL050", "10.20.0.0/33"}},
		{name: "guard denial", files: map[string]string{"web.cue": sshCUE},
			wantReason: v1.GuardDeniedReason, wantMsg: []string{"shop/web.cue:", "guard admin_ports", "22/TCP"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			for name, content := range tc.files {
				if err := os.MkdirAll(filepath.Join(root, "shop"), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(filepath.Join(root, "shop", name), []byte(content), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			obj := &v1.PolicySet{ObjectMeta: metav1.ObjectMeta{Name: "set", Namespace: "team", Generation: 2}}
			obj.Spec.Path = "shop"
			src := &policySource{Revision: "main@sha1:abc", Dir: filepath.Join(root, "shop")}
			ctx := context.Background()
			err := func() error {
				policies, err := r.reconcilePolicies(ctx, obj, src)
				if err != nil {
					return err
				}
				desired, err := r.reconcileRender(obj, src, policies)
				if err != nil {
					return err
				}
				return r.reconcileGuard(ctx, obj, src, nil, desired)
			}()
			if tc.wantReason == "" {
				if err != nil {
					t.Fatal(err)
				}
				for _, c := range []string{v1.ValidatedCondition, v1.GuardedCondition} {
					if !apimeta.IsStatusConditionTrue(obj.Status.Conditions, c) {
						t.Errorf("%s is not True: %+v", c, obj.Status.Conditions)
					}
				}
				return
			}
			if err == nil {
				t.Fatalf("want %s, got no error", tc.wantReason)
			}
			if got := reasonOf(err, ""); got != tc.wantReason || !isStalling(err) {
				t.Errorf("reason %q stalling %v, want %q stalling", got, isStalling(err), tc.wantReason)
			}
			for _, s := range tc.wantMsg {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not contain %q", err, s)
				}
			}
		})
	}
}

// policySetFixture is a PolicySet reading a PolicyRepository on a loopback
// HTTPS Git server with basic auth.
type policySetFixture struct {
	t    *testing.T
	ns   string
	co   *gitserver.Checkout
	repo types.NamespacedName
	set  types.NamespacedName
}

func newPolicySetFixture(t *testing.T, files map[string]string) *policySetFixture {
	t.Helper()
	srv := gitserver.New(t, gitserver.Options{Username: testUser, Password: testPassword})
	srv.InitBare(t, "policies")
	co := srv.Checkout(t, "policies")
	co.Commit("initial policies", files, gitserver.CommitOptions{})
	co.Push(false)
	ns := newNamespace(t)
	secret := newSecret(t, ns, map[string]string{"username": testUser, "password": testPassword, "ca.crt": string(srv.CAPEM())})
	ctx := context.Background()
	repo := &v1.PolicyRepository{ObjectMeta: metav1.ObjectMeta{Name: "policies", Namespace: ns}}
	repo.Spec.URL = srv.URL("policies")
	repo.Spec.SecretRef = &v1.LocalObjectReference{Name: secret}
	repo.Spec.Interval = metav1.Duration{Duration: time.Hour}
	if err := k8sClient.Create(ctx, repo); err != nil {
		t.Fatal(err)
	}
	set := &v1.PolicySet{ObjectMeta: metav1.ObjectMeta{Name: "shop", Namespace: ns}}
	set.Spec.SourceRef = v1.SourceReference{Name: repo.Name}
	set.Spec.Path = "shop"
	set.Spec.Interval = metav1.Duration{Duration: time.Hour}
	if err := k8sClient.Create(ctx, set); err != nil {
		t.Fatal(err)
	}
	return &policySetFixture{t: t, ns: ns, co: co, repo: client.ObjectKeyFromObject(repo), set: client.ObjectKeyFromObject(set)}
}

// push commits files and asks the repository to fetch now, as the webhook
// receiver does; it returns the revision the PolicySet will see.
func (f *policySetFixture) push(msg string, files map[string]string) string {
	f.t.Helper()
	h := f.co.Commit(msg, files, gitserver.CommitOptions{})
	f.co.Push(false)
	patch := fmt.Sprintf(`{"metadata":{"annotations":{%q:%q}}}`, v1.ReconcileRequestAnnotation, h.String())
	repo := &v1.PolicyRepository{ObjectMeta: metav1.ObjectMeta{Name: f.repo.Name, Namespace: f.repo.Namespace}}
	if err := k8sClient.Patch(context.Background(), repo, client.RawPatch(types.MergePatchType, []byte(patch))); err != nil {
		f.t.Fatal(err)
	}
	return "main@sha1:" + h.String()
}

// waitSet waits until the PolicySet has attempted rev and cond holds.
func (f *policySetFixture) waitSet(rev string, cond func(*v1.PolicySet) error) *v1.PolicySet {
	f.t.Helper()
	got := &v1.PolicySet{}
	eventually(f.t, 60*time.Second, func() error {
		if err := k8sClient.Get(context.Background(), f.set, got); err != nil {
			return err
		}
		if rev != "" && got.Status.LastAttemptedRevision != rev {
			return fmt.Errorf("lastAttemptedRevision %q, want %q; conditions %+v", got.Status.LastAttemptedRevision, rev, got.Status.Conditions)
		}
		return cond(got)
	})
	return got
}

// readyIs checks Ready's status, reason and message.
func setReadyIs(status metav1.ConditionStatus, reason string, msg ...string) func(*v1.PolicySet) error {
	return func(ps *v1.PolicySet) error {
		c := apimeta.FindStatusCondition(ps.Status.Conditions, v1.ReadyCondition)
		if c == nil || c.Status != status || c.Reason != reason || c.ObservedGeneration != ps.Generation {
			return fmt.Errorf("Ready is %+v, want %s/%s", c, status, reason)
		}
		for _, s := range msg {
			if !strings.Contains(c.Message, s) {
				return fmt.Errorf("Ready message %q does not contain %q", c.Message, s)
			}
		}
		return nil
	}
}

// policies returns the set's NetworkPolicies by name.
func (f *policySetFixture) policies() map[string]v1.NetworkPolicy {
	f.t.Helper()
	var l v1.NetworkPolicyList
	if err := k8sClient.List(context.Background(), &l, client.InNamespace(f.ns)); err != nil {
		f.t.Fatal(err)
	}
	out := map[string]v1.NetworkPolicy{}
	for _, p := range l.Items {
		out[p.Name] = p
	}
	return out
}

// TestPolicySetGitOps runs the manager's PolicySet controller against the
// real API server and a real Git server: a good commit is applied, bad
// commits leave it in place and say why, prune and drift work.
func TestPolicySetGitOps(t *testing.T) {
	needEnv(t)
	f := newPolicySetFixture(t, map[string]string{"shop/web.cue": webCUE, "shop/db.cue": dbCUE, "README.md": "policies\n"})
	ctx := context.Background()

	repo := &v1.PolicyRepository{}
	eventually(t, 60*time.Second, func() error {
		if err := k8sClient.Get(ctx, f.repo, repo); err != nil {
			return err
		}
		if repo.Status.Artifact == nil {
			return fmt.Errorf("no artifact yet: %+v", repo.Status.Conditions)
		}
		return nil
	})
	good := repo.Status.Artifact.Revision
	ps := f.waitSet(good, setReadyIs(metav1.ConditionTrue, v1.SucceededReason, good))
	if ps.Status.LastAppliedRevision != good || ps.Status.ObservedGeneration != ps.Generation {
		t.Fatalf("status %+v, want lastAppliedRevision %s", ps.Status, good)
	}
	if ps.Status.Inventory == nil || len(ps.Status.Inventory.Entries) != 2 ||
		ps.Status.Inventory.Entries[0].ID != f.ns+"_db_palisade.dev_NetworkPolicy" {
		t.Fatalf("inventory %+v", ps.Status.Inventory)
	}
	applied := f.policies()
	if len(applied) != 2 {
		t.Fatalf("applied %d NetworkPolicies, want 2", len(applied))
	}
	web := applied["web"]
	for k, want := range map[string]string{render.LabelPolicySetName: "shop", render.LabelPolicySetNamespace: f.ns} {
		if web.Labels[k] != want {
			t.Errorf("label %s = %q, want %q", k, web.Labels[k], want)
		}
	}
	if web.Annotations[render.AnnotationRevision] != good || !strings.HasPrefix(web.Annotations[render.AnnotationSource], "web.cue:3:") {
		t.Errorf("annotations %v", web.Annotations)
	}
	if len(web.Spec.Ingress) != 1 || web.Spec.Ingress[0].ToPorts[0].Ports[0].Port.String() != "443" {
		t.Errorf("web ingress %+v", web.Spec.Ingress)
	}

	// Bad commits: each leaves the applied objects exactly as they were.
	for _, tc := range []struct {
		name   string
		files  map[string]string
		reason string
		msg    []string
	}{
		{"CUE syntax error", map[string]string{"shop/web.cue": syntaxCUE}, v1.ValidationFailedReason, []string{"shop/web.cue:", "PAL001"}},
		{"schema violation", map[string]string{"shop/web.cue": schemaCUE}, v1.ValidationFailedReason, []string{"shop/web.cue:9:", "PAL050"}},
		{"guard denial", map[string]string{"shop/web.cue": sshCUE}, v1.GuardDeniedReason, []string{"shop/web.cue:", "admin_ports", "22/TCP"}},
		{"path no longer exists", map[string]string{"shop/web.cue": "", "shop/db.cue": "", "store/web.cue": webCUE}, v1.GitOperationFailedReason, []string{`path "shop" does not exist`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rev := f.push(tc.name, tc.files)
			got := f.waitSet(rev, setReadyIs(metav1.ConditionFalse, tc.reason, tc.msg...))
			if got.Status.LastAppliedRevision != good {
				t.Errorf("lastAppliedRevision moved to %q", got.Status.LastAppliedRevision)
			}
			if !apimeta.IsStatusConditionTrue(got.Status.Conditions, v1.StalledCondition) {
				t.Errorf("not Stalled: %+v", got.Status.Conditions)
			}
			now := f.policies()
			for name, before := range applied {
				if now[name].ResourceVersion != before.ResourceVersion {
					t.Errorf("%s changed: resourceVersion %s → %s", name, before.ResourceVersion, now[name].ResourceVersion)
				}
			}
			// Back to the good tree for the next case (pushed with it).
			revert := map[string]string{"shop/web.cue": webCUE, "shop/db.cue": dbCUE}
			if _, ok := tc.files["store/web.cue"]; ok {
				revert["store/web.cue"] = ""
			}
			f.co.Commit("revert "+tc.name, revert, gitserver.CommitOptions{})
		})
	}

	// Prune: db left Git, so it leaves the cluster; web stays as it was.
	rev := f.push("drop db", map[string]string{"shop/db.cue": ""})
	ps = f.waitSet(rev, setReadyIs(metav1.ConditionTrue, v1.SucceededReason, rev))
	if ps.Status.LastAppliedRevision != rev || len(ps.Status.Inventory.Entries) != 1 {
		t.Fatalf("after prune: lastAppliedRevision %q, inventory %+v", ps.Status.LastAppliedRevision, ps.Status.Inventory)
	}
	eventually(t, 30*time.Second, func() error {
		if _, ok := f.policies()["db"]; ok {
			return fmt.Errorf("db not pruned")
		}
		return nil
	})
	if c := apimeta.FindStatusCondition(ps.Status.Conditions, v1.DriftedCondition); c == nil || c.Status != metav1.ConditionFalse {
		t.Errorf("Drifted = %+v, want False", c)
	}

	// API drift: a hand edit of web's spec is reverted and reported.
	web = f.policies()["web"]
	web.Spec.Ingress[0].ToPorts[0].Ports[0].Port = intstr.FromInt32(8443)
	if err := k8sClient.Update(ctx, &web, client.FieldOwner("kubectl-edit")); err != nil {
		t.Fatal(err)
	}
	f.waitSet(rev, func(ps *v1.PolicySet) error {
		c := apimeta.FindStatusCondition(ps.Status.Conditions, v1.DriftedCondition)
		if c == nil || c.Status != metav1.ConditionTrue || c.Reason != v1.APIDriftReason ||
			!strings.Contains(c.Message, "NetworkPolicy "+f.ns+"/web was edited (spec") {
			return fmt.Errorf("Drifted = %+v", c)
		}
		return nil
	})
	eventually(t, 30*time.Second, func() error {
		if p := f.policies()["web"].Spec.Ingress[0].ToPorts[0].Ports[0].Port; p.String() != "443" {
			return fmt.Errorf("web port %s, want 443 restored", p.String())
		}
		return nil
	})

	// API drift: a deleted object is recreated.
	web = f.policies()["web"]
	if err := k8sClient.Delete(ctx, &web); err != nil {
		t.Fatal(err)
	}
	f.waitSet(rev, func(ps *v1.PolicySet) error {
		c := apimeta.FindStatusCondition(ps.Status.Conditions, v1.DriftedCondition)
		if c == nil || !strings.Contains(c.Message, "NetworkPolicy "+f.ns+"/web was deleted") {
			return fmt.Errorf("Drifted = %+v", c)
		}
		return nil
	})
	eventually(t, 30*time.Second, func() error {
		p, ok := f.policies()["web"]
		if !ok || p.UID == web.UID {
			return fmt.Errorf("web not recreated")
		}
		return nil
	})
}
