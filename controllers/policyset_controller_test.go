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
	"sigs.k8s.io/controller-runtime/pkg/event"

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
				return r.reconcileGuard(ctx, obj, src, t.TempDir(), nil, desired)
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
	srv  *gitserver.Server
	co   *gitserver.Checkout
	key  *gitserver.PGPKey
	repo types.NamespacedName
	set  types.NamespacedName
	// requests counts reconcile requests, so each one is a new value.
	requests int
}

// fixtureOptions change what newPolicySetFixtureWith sets up.
type fixtureOptions struct {
	// sign, when set, signs every commit push makes with a PGP key and
	// makes the repository verify signatures with it.
	sign bool
	// set changes the PolicySet before it is created.
	set func(*v1.PolicySet)
}

func newPolicySetFixture(t *testing.T, files map[string]string) *policySetFixture {
	t.Helper()
	return newPolicySetFixtureWith(t, files, fixtureOptions{})
}

func newPolicySetFixtureWith(t *testing.T, files map[string]string, opts fixtureOptions) *policySetFixture {
	t.Helper()
	srv := gitserver.New(t, gitserver.Options{Username: testUser, Password: testPassword})
	srv.InitBare(t, "policies")
	f := &policySetFixture{t: t, srv: srv, co: srv.Checkout(t, "policies")}
	if opts.sign {
		k := gitserver.NewPGPKey(t, gitserver.Author.Name, gitserver.Author.Email)
		f.key = &k
	}
	f.co.Commit("initial policies", files, f.commitOptions())
	f.co.Push(false)
	f.ns = newNamespace(t)
	secret := newSecret(t, f.ns, map[string]string{"username": testUser, "password": testPassword, "ca.crt": string(srv.CAPEM())})
	ctx := context.Background()
	repo := &v1.PolicyRepository{ObjectMeta: metav1.ObjectMeta{Name: "policies", Namespace: f.ns}}
	repo.Spec.URL = srv.URL("policies")
	repo.Spec.SecretRef = &v1.LocalObjectReference{Name: secret}
	repo.Spec.Interval = metav1.Duration{Duration: time.Hour}
	if f.key != nil {
		keys := newSecret(t, f.ns, map[string]string{"ada.asc": f.key.Armored})
		repo.Spec.Verify = &v1.GitVerification{Mode: v1.GitVerifyModeHEAD, SecretRef: v1.LocalObjectReference{Name: keys}}
	}
	if err := k8sClient.Create(ctx, repo); err != nil {
		t.Fatal(err)
	}
	f.repo = client.ObjectKeyFromObject(repo)
	f.set = f.addSet("shop", "shop", opts.set)
	return f
}

// addSet creates another PolicySet on the fixture's repository.
func (f *policySetFixture) addSet(name, path string, mutate func(*v1.PolicySet)) types.NamespacedName {
	f.t.Helper()
	set := &v1.PolicySet{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: f.ns}}
	set.Spec.SourceRef = v1.SourceReference{Name: f.repo.Name}
	set.Spec.Path = path
	set.Spec.Interval = metav1.Duration{Duration: time.Hour}
	if mutate != nil {
		mutate(set)
	}
	if err := k8sClient.Create(context.Background(), set); err != nil {
		f.t.Fatal(err)
	}
	return client.ObjectKeyFromObject(set)
}

// commitOptions signs with the fixture's key, if it has one.
func (f *policySetFixture) commitOptions() gitserver.CommitOptions {
	if f.key == nil {
		return gitserver.CommitOptions{}
	}
	return gitserver.CommitOptions{SignKey: f.key.Entity}
}

// push commits files (signed if the fixture signs) and asks the repository
// to fetch now, as the webhook receiver does; it returns the revision the
// PolicySet will see.
func (f *policySetFixture) push(msg string, files map[string]string) string {
	f.t.Helper()
	h := f.co.Commit(msg, files, f.commitOptions())
	f.co.Push(false)
	f.request()
	return "main@sha1:" + h.String()
}

// request asks the repository to fetch now, with a new annotation value.
func (f *policySetFixture) request() string {
	f.t.Helper()
	f.requests++
	v := fmt.Sprintf("request-%d", f.requests)
	patch := fmt.Sprintf(`{"metadata":{"annotations":{%q:%q}}}`, v1.ReconcileRequestAnnotation, v)
	repo := &v1.PolicyRepository{ObjectMeta: metav1.ObjectMeta{Name: f.repo.Name, Namespace: f.repo.Namespace}}
	if err := k8sClient.Patch(context.Background(), repo, client.RawPatch(types.MergePatchType, []byte(patch))); err != nil {
		f.t.Fatal(err)
	}
	return v
}

// waitRepo waits until the repository handled request req (any, if "")
// and cond holds.
func (f *policySetFixture) waitRepo(req string, cond func(*v1.PolicyRepository) error) *v1.PolicyRepository {
	f.t.Helper()
	got := &v1.PolicyRepository{}
	eventually(f.t, 60*time.Second, func() error {
		if err := k8sClient.Get(context.Background(), f.repo, got); err != nil {
			return err
		}
		if req != "" && got.Status.LastHandledReconcileAt != req {
			return fmt.Errorf("lastHandledReconcileAt %q, want %q", got.Status.LastHandledReconcileAt, req)
		}
		return cond(got)
	})
	return got
}

// waitSet waits until the PolicySet has attempted rev and cond holds.
func (f *policySetFixture) waitSet(rev string, cond func(*v1.PolicySet) error) *v1.PolicySet {
	f.t.Helper()
	return f.waitSetKey(f.set, rev, cond)
}

// waitSetKey is waitSet for another of the fixture's sets.
func (f *policySetFixture) waitSetKey(key types.NamespacedName, rev string, cond func(*v1.PolicySet) error) *v1.PolicySet {
	f.t.Helper()
	got := &v1.PolicySet{}
	eventually(f.t, 60*time.Second, func() error {
		if err := k8sClient.Get(context.Background(), key, got); err != nil {
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
// real API server and a real Git server: a good commit is applied, prune
// and API drift work. Bad commits are TestPolicySetBadCommits.
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

// TestForeignWrite checks which events on applied objects wake the set:
// someone else's writes and deletions, not the set's own applies or status
// writes.
func TestForeignWrite(t *testing.T) {
	entry := func(manager, op, sub string, sec int64) metav1.ManagedFieldsEntry {
		return metav1.ManagedFieldsEntry{Manager: manager, Operation: metav1.ManagedFieldsOperationType(op), Subresource: sub,
			Time: &metav1.Time{Time: time.Unix(sec, 0)}, FieldsV1: &metav1.FieldsV1{Raw: []byte(`{"f:spec":{}}`)}}
	}
	obj := func(entries ...metav1.ManagedFieldsEntry) client.Object {
		return &v1.NetworkPolicy{ObjectMeta: metav1.ObjectMeta{Name: "web", ManagedFields: entries}}
	}
	ours := entry(FieldManager, "Apply", "", 1)
	oursLater := entry(FieldManager, "Apply", "", 2)
	edit := entry("kubectl-edit", "Update", "", 3)
	editLater := entry("kubectl-edit", "Update", "", 4)
	agentStatus := entry("palisade-agent", "Update", "status", 5)
	for _, tc := range []struct {
		name string
		got  bool
		want bool
	}{
		{"created by the set", foreignWrite{}.Create(event.CreateEvent{Object: obj(ours)}), false},
		{"created by hand with the set's labels", foreignWrite{}.Create(event.CreateEvent{Object: obj(edit)}), true},
		{"applied again by the set", foreignWrite{}.Update(event.UpdateEvent{ObjectOld: obj(ours), ObjectNew: obj(oursLater)}), false},
		{"edited by hand", foreignWrite{}.Update(event.UpdateEvent{ObjectOld: obj(ours), ObjectNew: obj(ours, edit)}), true},
		{"edited by hand again", foreignWrite{}.Update(event.UpdateEvent{ObjectOld: obj(ours, edit), ObjectNew: obj(ours, editLater)}), true},
		{"restored by the set", foreignWrite{}.Update(event.UpdateEvent{ObjectOld: obj(ours, edit), ObjectNew: obj(oursLater)}), true},
		{"status written by the agent", foreignWrite{}.Update(event.UpdateEvent{ObjectOld: obj(ours), ObjectNew: obj(ours, agentStatus)}), false},
		{"deleted", foreignWrite{}.Delete(event.DeleteEvent{Object: obj(ours)}), true},
	} {
		if tc.got != tc.want {
			t.Errorf("%s: passes %v, want %v", tc.name, tc.got, tc.want)
		}
	}
}
