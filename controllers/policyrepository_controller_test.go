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
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fluxcd/pkg/git"
	corev1 "k8s.io/api/core/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "github.com/palisade-dev/palisade/api/v1alpha1"
	"github.com/palisade-dev/palisade/internal/gitserver"
)

const (
	testUser     = "palisade"
	testPassword = "s3cret-password-do-not-leak"
	testToken    = "bearer-token-do-not-leak"
)

// gitFixture is a repository on a loopback HTTPS server with a history:
// c1 (tag v1.0.0), c2 (tag v1.2.0), c3 (tag v2.0.0) on main.
type gitFixture struct {
	srv        *gitserver.Server
	url        string
	c1, c2, c3 string
}

func newGitFixture(t *testing.T) gitFixture {
	t.Helper()
	srv := gitserver.New(t, gitserver.Options{Username: testUser, Password: testPassword, BearerToken: testToken})
	srv.InitBare(t, "policies")
	co := srv.Checkout(t, "policies")
	c1 := co.Commit("first", map[string]string{"shop/policy.cue": "package shop\n"}, gitserver.CommitOptions{})
	co.Tag("v1.0.0")
	c2 := co.Commit("second", map[string]string{"shop/more.cue": "package shop\n"}, gitserver.CommitOptions{})
	co.Tag("v1.2.0")
	c3 := co.Commit("third", map[string]string{"shop/more.cue": ""}, gitserver.CommitOptions{})
	co.Tag("v2.0.0")
	co.Push(false)
	return gitFixture{srv: srv, url: srv.URL("policies"), c1: c1.String(), c2: c2.String(), c3: c3.String()}
}

// newSecret creates a Secret in ns and returns its name.
func newSecret(t *testing.T, ns string, data map[string]string) string {
	t.Helper()
	s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{GenerateName: "s-", Namespace: ns}, StringData: data}
	if err := k8sClient.Create(context.Background(), s); err != nil {
		t.Fatal(err)
	}
	return s.Name
}

func TestPolicyRepositoryReconcileSource(t *testing.T) {
	needEnv(t)
	fx := newGitFixture(t)
	ns := newNamespace(t)
	ca := string(fx.srv.CAPEM())
	basic := newSecret(t, ns, map[string]string{"username": testUser, "password": testPassword, "ca.crt": ca})
	bearer := newSecret(t, ns, map[string]string{"bearerToken": testToken, "ca.crt": ca})
	wrong := newSecret(t, ns, map[string]string{"username": testUser, "password": "wrong-password-x", "ca.crt": ca})
	noCA := newSecret(t, ns, map[string]string{"username": testUser, "password": testPassword})

	closed := gitserver.New(t, gitserver.Options{})
	closed.InitBare(t, "gone")
	gone := closed.URL("gone")
	closed.Close()

	r := &PolicyRepositoryReconciler{Client: k8sClient, Storage: testStorage}
	for _, tc := range []struct {
		name       string
		url        string
		secret     string
		ref        *v1.GitRef
		wantCommit string
		wantRef    string
		wantReason string
		wantErr    string
		stalling   bool
	}{
		{name: "default branch, basic auth", secret: basic, wantCommit: fx.c3, wantRef: "main@sha1:" + fx.c3},
		{name: "bearer token", secret: bearer, ref: &v1.GitRef{Branch: "main"}, wantCommit: fx.c3},
		{name: "tag", secret: basic, ref: &v1.GitRef{Tag: "v1.0.0"}, wantCommit: fx.c1, wantRef: "v1.0.0@sha1:" + fx.c1},
		{name: "semver range picks highest match", secret: basic, ref: &v1.GitRef{SemVer: ">=1.0.0 <2.0.0"}, wantCommit: fx.c2, wantRef: "v1.2.0@sha1:" + fx.c2},
		{name: "commit", secret: basic, ref: &v1.GitRef{Commit: fx.c1}, wantCommit: fx.c1},
		{name: "branch and commit", secret: basic, ref: &v1.GitRef{Branch: "main", Commit: fx.c2}, wantCommit: fx.c2},
		{name: "no credentials", wantReason: v1.GitOperationFailedReason, wantErr: "fetch " + fx.url + " at branch main"},
		{name: "wrong password", secret: wrong, wantReason: v1.GitOperationFailedReason, wantErr: "authentication required"},
		{name: "untrusted certificate", secret: noCA, wantReason: v1.GitOperationFailedReason, wantErr: "certificate"},
		{name: "missing secret", secret: "nope", wantReason: v1.AuthenticationFailedReason, wantErr: "get credentials Secret " + ns + "/nope"},
		{name: "missing branch", secret: basic, ref: &v1.GitRef{Branch: "gone"}, wantReason: v1.GitOperationFailedReason, wantErr: "at branch gone"},
		{name: "missing tag", secret: basic, ref: &v1.GitRef{Tag: "v9"}, wantReason: v1.GitOperationFailedReason, wantErr: "at tag v9"},
		{name: "no semver match", secret: basic, ref: &v1.GitRef{SemVer: ">=3.0.0"}, wantReason: v1.GitOperationFailedReason, wantErr: "semver >=3.0.0"},
		{name: "unreachable", url: gone, wantReason: v1.GitOperationFailedReason, wantErr: "fetch " + gone},
		{name: "credentials over http refused", url: strings.Replace(fx.url, "https:", "http:", 1), secret: basic, wantReason: v1.AuthenticationFailedReason, wantErr: "plain http", stalling: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			obj := &v1.PolicyRepository{ObjectMeta: metav1.ObjectMeta{Name: "r", Namespace: ns}}
			obj.Spec.URL = fx.url
			if tc.url != "" {
				obj.Spec.URL = tc.url
			}
			if tc.secret != "" {
				obj.Spec.SecretRef = &v1.LocalObjectReference{Name: tc.secret}
			}
			obj.Spec.Ref = tc.ref
			obj.Spec.Timeout = &metav1.Duration{Duration: 20 * time.Second}
			dir := t.TempDir()
			commit, err := r.reconcileSource(context.Background(), obj, dir)
			if tc.wantErr != "" {
				if err == nil {
					t.Fatalf("want error %q, got commit %v", tc.wantErr, commit)
				}
				if !strings.Contains(err.Error(), tc.wantErr) {
					t.Errorf("error %q does not contain %q", err, tc.wantErr)
				}
				if got := reasonOf(err, ""); got != tc.wantReason {
					t.Errorf("reason %q, want %q", got, tc.wantReason)
				}
				if isStalling(err) != tc.stalling {
					t.Errorf("stalling %v, want %v", isStalling(err), tc.stalling)
				}
				for _, s := range []string{testPassword, testToken, "wrong-password-x"} {
					if strings.Contains(err.Error(), s) {
						t.Errorf("error leaks a credential: %q", err)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if commit.Hash.String() != tc.wantCommit {
				t.Errorf("commit %s, want %s", commit.Hash, tc.wantCommit)
			}
			if tc.wantRef != "" && commit.String() != tc.wantRef {
				t.Errorf("revision %s, want %s", commit.String(), tc.wantRef)
			}
			if _, err := os.Stat(filepath.Join(dir, "shop", "policy.cue")); err != nil {
				t.Errorf("checkout: %v", err)
			}
		})
	}
}

// TestPolicyRepositoryReconcileVerify pushes commits signed in different
// ways and checks the verify step on each.
func TestPolicyRepositoryReconcileVerify(t *testing.T) {
	needEnv(t)
	srv := gitserver.New(t, gitserver.Options{})
	srv.InitBare(t, "signed")
	co := srv.Checkout(t, "signed")
	trusted := gitserver.NewPGPKey(t, "Ada Author", "ada@example.org")
	stranger := gitserver.NewPGPKey(t, "Mallory", "mallory@example.org")
	sshTrusted := gitserver.NewSSHKey(t)
	sshStranger := gitserver.NewSSHKey(t)
	commits := map[string]string{
		"unsigned":     co.Commit("unsigned", map[string]string{"a.cue": "package a\n"}, gitserver.CommitOptions{}).String(),
		"pgp trusted":  co.Commit("pgp", map[string]string{"a.cue": "package a\n// 2\n"}, gitserver.CommitOptions{SignKey: trusted.Entity}).String(),
		"pgp stranger": co.Commit("pgp", map[string]string{"a.cue": "package a\n// 3\n"}, gitserver.CommitOptions{SignKey: stranger.Entity}).String(),
		"ssh trusted":  co.Commit("ssh", map[string]string{"a.cue": "package a\n// 4\n"}, gitserver.CommitOptions{Signer: sshTrusted.Signer}).String(),
		"ssh stranger": co.Commit("ssh", map[string]string{"a.cue": "package a\n// 5\n"}, gitserver.CommitOptions{Signer: sshStranger.Signer}).String(),
	}
	co.Push(false)

	ns := newNamespace(t)
	keys := newSecret(t, ns, map[string]string{
		"ada.asc":         trusted.Armored,
		"allowed_signers": "ada@example.org namespaces=\"git\" " + sshTrusted.AuthorizedKey,
	})
	pgpOnly := newSecret(t, ns, map[string]string{"ada.asc": trusted.Armored})
	empty := newSecret(t, ns, map[string]string{"README": "no keys here"})

	r := &PolicyRepositoryReconciler{Client: k8sClient, Storage: testStorage}
	for _, tc := range []struct {
		name       string
		commit     string
		secret     string // "" means no spec.verify
		wantStatus metav1.ConditionStatus
		wantMsg    string
		stalling   bool
	}{
		{name: "not asked to verify", commit: "unsigned"},
		{name: "unsigned", commit: "unsigned", secret: keys, wantStatus: metav1.ConditionFalse, wantMsg: "by Ada Author <ada@example.org> is not signed", stalling: true},
		{name: "pgp trusted", commit: "pgp trusted", secret: keys, wantStatus: metav1.ConditionTrue, wantMsg: "verified signature of commit"},
		{name: "pgp untrusted", commit: "pgp stranger", secret: keys, wantStatus: metav1.ConditionFalse, wantMsg: "does not verify with the keys in Secret " + keys, stalling: true},
		{name: "ssh trusted", commit: "ssh trusted", secret: keys, wantStatus: metav1.ConditionTrue, wantMsg: "verified signature of commit"},
		{name: "ssh untrusted", commit: "ssh stranger", secret: keys, wantStatus: metav1.ConditionFalse, wantMsg: "does not verify", stalling: true},
		{name: "ssh-signed, only pgp keys", commit: "ssh trusted", secret: pgpOnly, wantStatus: metav1.ConditionFalse, wantMsg: "has no SSH keys", stalling: true},
		{name: "secret without keys", commit: "pgp trusted", secret: empty, wantStatus: metav1.ConditionFalse, wantMsg: "has no keys", stalling: true},
		{name: "missing secret", commit: "pgp trusted", secret: "nope", wantStatus: metav1.ConditionFalse, wantMsg: "get verification Secret " + ns + "/nope"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			obj := &v1.PolicyRepository{ObjectMeta: metav1.ObjectMeta{Name: "r", Namespace: ns, Generation: 3}}
			obj.Spec.URL = srv.URL("signed")
			obj.Spec.Ref = &v1.GitRef{Commit: commits[tc.commit]}
			obj.Spec.SecretRef = &v1.LocalObjectReference{Name: newSecret(t, ns, map[string]string{"ca.crt": string(srv.CAPEM())})}
			if tc.secret != "" {
				obj.Spec.Verify = &v1.GitVerification{Mode: v1.GitVerifyModeHEAD, SecretRef: v1.LocalObjectReference{Name: tc.secret}}
			}
			commit, err := r.reconcileSource(context.Background(), obj, t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			err = r.reconcileVerify(context.Background(), obj, commit)
			c := apimeta.FindStatusCondition(obj.Status.Conditions, v1.SourceVerifiedCondition)
			if tc.secret == "" {
				if err != nil || c != nil {
					t.Fatalf("without spec.verify: err %v, condition %v", err, c)
				}
				return
			}
			if c == nil {
				t.Fatal("no SourceVerified condition")
			}
			if c.Status != tc.wantStatus || !strings.Contains(c.Message, tc.wantMsg) || c.ObservedGeneration != 3 {
				t.Errorf("SourceVerified %s %q (generation %d), want %s containing %q", c.Status, c.Message, c.ObservedGeneration, tc.wantStatus, tc.wantMsg)
			}
			if (err == nil) != (tc.wantStatus == metav1.ConditionTrue) {
				t.Errorf("err %v with condition %s", err, c.Status)
			}
			if err != nil && isStalling(err) != tc.stalling {
				t.Errorf("stalling %v, want %v", isStalling(err), tc.stalling)
			}
			if tc.wantStatus == metav1.ConditionFalse && !strings.Contains(c.Message, commits[tc.commit]) && tc.secret == keys {
				t.Errorf("message does not name the commit: %q", c.Message)
			}
		})
	}
}

func TestPolicyRepositoryReconcileArtifact(t *testing.T) {
	needEnv(t)
	r := &PolicyRepositoryReconciler{Client: k8sClient, Storage: &Storage{BasePath: t.TempDir()}}
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "shop"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "shop", "p.cue"), []byte("package shop\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	obj := &v1.PolicyRepository{ObjectMeta: metav1.ObjectMeta{Name: "r", Namespace: "ns"}}
	h1 := strings.Repeat("1", 40)
	commit := &git.Commit{Hash: git.Hash(h1), Reference: "refs/heads/main"}
	if err := r.reconcileArtifact(context.Background(), obj, commit, dir); err != nil {
		t.Fatal(err)
	}
	a := obj.Status.Artifact
	if a == nil || a.Revision != "main@sha1:"+h1 || !strings.HasPrefix(a.Digest, "sha256:") {
		t.Fatalf("artifact %+v", a)
	}
	first := *a
	// The same tree stored again under another revision has the same
	// digest: archives are reproducible.
	h2 := strings.Repeat("2", 40)
	if err := r.reconcileArtifact(context.Background(), obj, &git.Commit{Hash: git.Hash(h2), Reference: "refs/heads/main"}, dir); err != nil {
		t.Fatal(err)
	}
	if obj.Status.Artifact.Digest != first.Digest || obj.Status.Artifact.Path == first.Path {
		t.Errorf("second artifact %+v, first %+v", obj.Status.Artifact, first)
	}
	out := t.TempDir()
	if err := r.Storage.Extract(obj.Status.Artifact.Path, obj.Status.Artifact.Digest, out); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(filepath.Join(out, "shop", "p.cue")); err != nil || string(b) != "package shop\n" {
		t.Errorf("extracted %q, %v", b, err)
	}
	if err := r.Storage.Extract(obj.Status.Artifact.Path, "sha256:00", t.TempDir()); err == nil {
		t.Error("extract with a wrong digest succeeded")
	}
	// A symlink in the tree is refused, and says which.
	if err := os.Symlink("/etc/passwd", filepath.Join(dir, "shop", "evil.cue")); err != nil {
		t.Fatal(err)
	}
	err := r.reconcileArtifact(context.Background(), obj, &git.Commit{Hash: git.Hash(strings.Repeat("3", 40)), Reference: "refs/heads/main"}, dir)
	if err == nil || !strings.Contains(err.Error(), "shop/evil.cue") || !isStalling(err) {
		t.Errorf("symlink: %v", err)
	}
	if obj.Status.Artifact.Path == "" || !strings.Contains(obj.Status.Artifact.Revision, h2) {
		t.Errorf("a failed store replaced the artifact: %+v", obj.Status.Artifact)
	}
}

// TestPolicyRepositoryIntegration runs the controller in the manager: a
// signed commit becomes the artifact; an unsigned one pushed on top is not
// used and says why; a fixed commit recovers. No credential reaches the
// status or events.
func TestPolicyRepositoryIntegration(t *testing.T) {
	needEnv(t)
	ctx := context.Background()
	srv := gitserver.New(t, gitserver.Options{Username: testUser, Password: testPassword})
	srv.InitBare(t, "prod")
	co := srv.Checkout(t, "prod")
	key := gitserver.NewPGPKey(t, "Ada Author", "ada@example.org")
	good := co.Commit("good", map[string]string{"p.cue": "package p\n"}, gitserver.CommitOptions{SignKey: key.Entity})
	co.Push(false)

	ns := newNamespace(t)
	creds := newSecret(t, ns, map[string]string{"username": testUser, "password": testPassword, "ca.crt": string(srv.CAPEM())})
	keys := newSecret(t, ns, map[string]string{"ada.asc": key.Armored})
	obj := &v1.PolicyRepository{ObjectMeta: metav1.ObjectMeta{Name: "prod", Namespace: ns}}
	obj.Spec = v1.PolicyRepositorySpec{
		URL: srv.URL("prod"), Interval: metav1.Duration{Duration: time.Hour},
		SecretRef: &v1.LocalObjectReference{Name: creds},
		Verify:    &v1.GitVerification{Mode: v1.GitVerifyModeHEAD, SecretRef: v1.LocalObjectReference{Name: keys}},
	}
	if err := k8sClient.Create(ctx, obj); err != nil {
		t.Fatal(err)
	}
	waitRepo := func(want func(*v1.PolicyRepository) error) *v1.PolicyRepository {
		t.Helper()
		got := &v1.PolicyRepository{}
		eventually(t, 30*time.Second, func() error {
			if err := k8sClient.Get(ctx, client.ObjectKeyFromObject(obj), got); err != nil {
				return err
			}
			return want(got)
		})
		return got
	}
	waitRepo(func(o *v1.PolicyRepository) error {
		return readyIs(o.Status.Conditions, metav1.ConditionTrue, "main@sha1:"+good.String())
	})

	// An unsigned commit: not used, SourceVerified=False names it.
	bad := co.Commit("sneaky", map[string]string{"p.cue": "package p\n// unsigned\n"}, gitserver.CommitOptions{})
	co.Push(false)
	requestReconcile(t, obj, "1")
	got := waitRepo(func(o *v1.PolicyRepository) error {
		c := apimeta.FindStatusCondition(o.Status.Conditions, v1.SourceVerifiedCondition)
		if c == nil || c.Status != metav1.ConditionFalse {
			return errorf("SourceVerified %v", c)
		}
		return nil
	})
	if got.Status.Artifact == nil || got.Status.Artifact.Revision != "main@sha1:"+good.String() {
		t.Errorf("artifact moved to an unverified commit: %+v", got.Status.Artifact)
	}
	if err := readyIs(got.Status.Conditions, metav1.ConditionFalse, bad.String()+" by Ada Author <ada@example.org> is not signed"); err != nil {
		t.Error(err)
	}
	if got.Status.LastHandledReconcileAt != "1" {
		t.Errorf("lastHandledReconcileAt %q", got.Status.LastHandledReconcileAt)
	}

	// A signed fix recovers.
	fixed := co.Commit("fix", map[string]string{"p.cue": "package p\n// signed\n"}, gitserver.CommitOptions{SignKey: key.Entity})
	co.Push(false)
	requestReconcile(t, obj, "2")
	waitRepo(func(o *v1.PolicyRepository) error {
		return readyIs(o.Status.Conditions, metav1.ConditionTrue, "main@sha1:"+fixed.String())
	})

	// Nothing secret in status or events.
	raw, _ := json.Marshal(got.Status)
	evs := &corev1.EventList{}
	if err := k8sClient.List(ctx, evs, client.InNamespace(ns)); err != nil {
		t.Fatal(err)
	}
	evRaw, _ := json.Marshal(evs)
	for _, s := range []string{testPassword, key.Armored[40:80]} {
		if strings.Contains(string(raw), s) || strings.Contains(string(evRaw), s) {
			t.Errorf("status or events contain secret data %q", s)
		}
	}
}

func requestReconcile(t *testing.T, obj client.Object, v string) {
	t.Helper()
	patch := []byte(`{"metadata":{"annotations":{"` + v1.ReconcileRequestAnnotation + `":"` + v + `"}}}`)
	if err := k8sClient.Patch(context.Background(), obj, client.RawPatch("application/merge-patch+json", patch)); err != nil {
		t.Fatal(err)
	}
}

// readyIs checks the Ready condition's status and that its message holds
// want.
func readyIs(conds []metav1.Condition, status metav1.ConditionStatus, want string) error {
	c := apimeta.FindStatusCondition(conds, v1.ReadyCondition)
	if c == nil {
		return errorf("no Ready condition")
	}
	if c.Status != status || !strings.Contains(c.Message, want) {
		return errorf("Ready %s %q, want %s containing %q", c.Status, c.Message, status, want)
	}
	return nil
}

func errorf(format string, args ...any) error { return fmt.Errorf(format, args...) }
