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

	"github.com/fluxcd/pkg/git"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "github.com/palisade-dev/palisade/api/v1alpha1"
)

// TestPolicyRepositoryReconcileHistory clones a real repository and checks
// the history stored beside each artifact: every ancestor of the head and
// nothing else, kept and collected with its artifact.
func TestPolicyRepositoryReconcileHistory(t *testing.T) {
	needEnv(t)
	fx := newGitFixture(t)
	ns := newNamespace(t)
	creds := newSecret(t, ns, map[string]string{"username": testUser, "password": testPassword, "ca.crt": string(fx.srv.CAPEM())})
	r := &PolicyRepositoryReconciler{Client: k8sClient, Storage: &Storage{BasePath: t.TempDir()}}
	obj := &v1.PolicyRepository{ObjectMeta: metav1.ObjectMeta{Name: "r", Namespace: ns}}
	obj.Spec.URL = fx.url
	obj.Spec.SecretRef = &v1.LocalObjectReference{Name: creds}
	ctx := context.Background()

	store := func(ref *v1.GitRef) *git.Commit {
		t.Helper()
		obj.Spec.Ref = ref
		dir := t.TempDir()
		commit, err := r.reconcileSource(ctx, obj, dir)
		if err != nil {
			t.Fatal(err)
		}
		if err := r.reconcileHistory(ctx, obj, commit, dir); err != nil {
			t.Fatal(err)
		}
		if err := r.reconcileArtifact(ctx, obj, commit, dir); err != nil {
			t.Fatal(err)
		}
		return commit
	}
	for _, tc := range []struct {
		ref      *v1.GitRef
		contains []string
		lacks    []string
	}{
		{ref: &v1.GitRef{Commit: fx.c1}, contains: []string{fx.c1}, lacks: []string{fx.c2, fx.c3}},
		{ref: &v1.GitRef{Tag: "v1.2.0"}, contains: []string{fx.c1, fx.c2}, lacks: []string{fx.c3}},
		{ref: &v1.GitRef{Branch: "main"}, contains: []string{fx.c1, fx.c2, fx.c3}},
	} {
		commit := store(tc.ref)
		h, err := r.Storage.History(obj.Status.Artifact.Path)
		if err != nil {
			t.Fatal(err)
		}
		if h.Head != commit.Hash.String() || !h.Complete || h.Len() != len(tc.contains) {
			t.Errorf("%+v: history head %s complete %v len %d, want %s, complete, %d", tc.ref, h.Head, h.Complete, h.Len(), commit.Hash, len(tc.contains))
		}
		for _, c := range tc.contains {
			if !h.Contains(c) {
				t.Errorf("%+v: history lacks %s", tc.ref, c)
			}
		}
		for _, c := range tc.lacks {
			if h.Contains(c) {
				t.Errorf("%+v: history of an older commit contains the newer %s", tc.ref, c)
			}
		}
	}
	// Garbage collection keeps the current and the previous artifact's
	// histories (c2 and c3 above) and drops c1's with its archive.
	for c, want := range map[string]bool{fx.c1: false, fx.c2: true, fx.c3: true} {
		if got := r.Storage.HasHistory("PolicyRepository", ns, "r", c); got != want {
			t.Errorf("history of %s stored: %v, want %v", c, got, want)
		}
	}

	// The walk stops at the bound and says so.
	dir := t.TempDir()
	obj.Spec.Ref = nil
	commit, err := r.reconcileSource(ctx, obj, dir)
	if err != nil {
		t.Fatal(err)
	}
	h, err := commitHistory(ctx, dir, commit.Hash.String(), 2)
	if err != nil {
		t.Fatal(err)
	}
	if h.Complete || h.Len() != 2 || !h.Contains(fx.c3) || !h.Contains(fx.c2) || h.Contains(fx.c1) {
		t.Errorf("bounded history: complete %v, len %d", h.Complete, h.Len())
	}
}

// TestPolicySetCheckDescends calls the rollback check directly on
// artifacts with stored histories.
func TestPolicySetCheckDescends(t *testing.T) {
	const (
		c1 = "1111111111111111111111111111111111111111"
		c2 = "2222222222222222222222222222222222222222"
		c3 = "3333333333333333333333333333333333333333"
		x2 = "9999999999999999999999999999999999999999" // c1's other child
	)
	st := &Storage{BasePath: t.TempDir()}
	for head, commits := range map[string][]string{c2: {c1, c2}, c3: {c1, c2, c3}, x2: {c1, x2}} {
		if err := st.StoreHistory("PolicyRepository", "ns", "r", head, NewHistory(head, commits, true)); err != nil {
			t.Fatal(err)
		}
	}
	// A history cut at the bound, without c1.
	const long = "4444444444444444444444444444444444444444"
	if err := st.StoreHistory("PolicyRepository", "ns", "r", long, NewHistory(long, []string{c2, c3, long}, false)); err != nil {
		t.Fatal(err)
	}
	// A corrupt history file.
	const bad = "5555555555555555555555555555555555555555"
	if err := os.WriteFile(filepath.Join(st.BasePath, "policyrepository", "ns", "r", bad+".history"), []byte("garbage\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	artifact := func(c string) *v1.Artifact {
		return &v1.Artifact{Revision: "main@sha1:" + c, Path: "policyrepository/ns/r/" + c + ".tar.gz"}
	}
	r := &PolicySetReconciler{Storage: st}
	for _, tc := range []struct {
		name, applied, next string
		allowRollback       bool
		wantReason          string
		stalling            bool
		wantMsg             []string
	}{
		{name: "nothing applied yet", next: c1},
		{name: "same commit", applied: c2, next: c2},
		{name: "same commit, other ref name", applied: "v1.0.0@sha1:" + c2, next: c2},
		{name: "descendant", applied: c1, next: c3},
		{name: "older commit", applied: c3, next: c2, wantReason: v1.RollbackRefusedReason, stalling: true,
			wantMsg: []string{"revision main@sha1:" + c2 + " is not a descendant of the applied revision main@sha1:" + c3, "force-push", "spec.allowRollback"}},
		{name: "rewritten history", applied: c2, next: x2, wantReason: v1.RollbackRefusedReason, stalling: true,
			wantMsg: []string{x2, c2}},
		{name: "older commit, rollback allowed", applied: c3, next: c2, allowRollback: true},
		{name: "beyond the stored bound", applied: c1, next: long, wantReason: v1.RollbackRefusedReason, stalling: true,
			wantMsg: []string{"not among the newest 3 commits"}},
		{name: "no history stored", applied: c1, next: "6666666666666666666666666666666666666666", wantReason: v1.ArtifactFailedReason,
			wantMsg: []string{"cannot tell whether it descends", "read history"}},
		{name: "corrupt history", applied: c1, next: bad, wantReason: v1.ArtifactFailedReason, wantMsg: []string{"malformed header"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			obj := &v1.PolicySet{}
			if tc.applied != "" && !strings.Contains(tc.applied, "@") {
				tc.applied = "main@sha1:" + tc.applied
			}
			obj.Status.LastAppliedRevision = tc.applied
			obj.Spec.AllowRollback = tc.allowRollback
			err := r.checkDescends(obj, artifact(tc.next))
			if tc.wantReason == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil {
				t.Fatalf("want %s, got no error", tc.wantReason)
			}
			if got := reasonOf(err, ""); got != tc.wantReason || isStalling(err) != tc.stalling {
				t.Errorf("reason %s stalling %v, want %s stalling %v", got, isStalling(err), tc.wantReason, tc.stalling)
			}
			for _, s := range tc.wantMsg {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not contain %q", err, s)
				}
			}
		})
	}
}

// TestPolicySetAllowRollback force-pushes a branch back to an older
// commit: refused, then applied once the set allows rollback, and a later
// commit on top of the older one goes through after allowRollback is
// unset again.
func TestPolicySetAllowRollback(t *testing.T) {
	needEnv(t)
	f := newPolicySetFixture(t, map[string]string{"shop/web.cue": webCUE, "shop/db.cue": dbCUE})
	older := f.co.Head()
	olderRev := "main@sha1:" + older.String()
	f.waitSet(olderRev, setReadyIs(metav1.ConditionTrue, v1.SucceededReason, olderRev))
	newer := f.push("web on 8443", map[string]string{"shop/web.cue": netpol("web", `fromEntities: ["world"]`, 8443)})
	f.waitSet(newer, setReadyIs(metav1.ConditionTrue, v1.SucceededReason, newer))

	f.co.ResetHard(older)
	f.co.Push(true)
	f.request()
	f.waitSet(olderRev, setReadyIs(metav1.ConditionFalse, v1.RollbackRefusedReason, olderRev, newer))
	if p := f.policies()["web"].Spec.Ingress[0].ToPorts[0].Ports[0].Port.String(); p != "8443" {
		t.Fatalf("web port %s after a refused rollback, want 8443", p)
	}

	setAllowRollback(t, f, true)
	f.waitSet(olderRev, func(ps *v1.PolicySet) error {
		if ps.Status.LastAppliedRevision != olderRev {
			return errorf("lastAppliedRevision %s, want %s", ps.Status.LastAppliedRevision, olderRev)
		}
		return setReadyIs(metav1.ConditionTrue, v1.SucceededReason, olderRev)(ps)
	})
	if p := f.policies()["web"].Spec.Ingress[0].ToPorts[0].Ports[0].Port.String(); p != "443" {
		t.Errorf("web port %s after the allowed rollback, want 443", p)
	}

	setAllowRollback(t, f, false)
	next := f.push("db on 5433", map[string]string{"shop/db.cue": netpol("db", `fromEndpoints: [{matchLabels: app: "web"}]`, 5433)})
	f.waitSet(next, setReadyIs(metav1.ConditionTrue, v1.SucceededReason, next))
}

func setAllowRollback(t *testing.T, f *policySetFixture, allow bool) {
	t.Helper()
	ps := &v1.PolicySet{ObjectMeta: metav1.ObjectMeta{Name: f.set.Name, Namespace: f.set.Namespace}}
	patch := fmt.Sprintf(`{"spec":{"allowRollback":%t}}`, allow)
	if err := k8sClient.Patch(context.Background(), ps, client.RawPatch(types.MergePatchType, []byte(patch))); err != nil {
		t.Fatal(err)
	}
}
