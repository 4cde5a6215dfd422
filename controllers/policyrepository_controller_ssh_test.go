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
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh/knownhosts"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1 "github.com/palisade-dev/palisade/api/v1alpha1"
	"github.com/palisade-dev/palisade/internal/gitserver"
)

// TestPolicyRepositoryReconcileSourceSSH fetches over SSH from the test
// Git server (git-upload-pack behind golang.org/x/crypto/ssh) with the
// identity and known_hosts of a Secret, and checks what an unknown host
// key, an unauthorized key or a Secret without known_hosts does. No
// private key reaches an error. Then the manager's controller fetches over
// SSH too.
func TestPolicyRepositoryReconcileSourceSSH(t *testing.T) {
	needEnv(t)
	fx := newGitFixture(t)
	client := gitserver.NewClientKey(t)
	stranger := gitserver.NewClientKey(t)
	sshd := fx.srv.ServeSSH(t, client.Public)
	impostor := fx.srv.ServeSSH(t, client.Public) // same repositories, another host key
	url := sshd.URL("policies")

	ns := newNamespace(t)
	good := newSecret(t, ns, map[string]string{"identity": string(client.PrivateKeyPEM), "known_hosts": sshd.KnownHosts()})
	// The impostor's host key, recorded for this server's address.
	wrongKey := strings.Replace(impostor.KnownHosts(), knownhosts.Normalize(impostor.Addr()), knownhosts.Normalize(sshd.Addr()), 1)
	wrongHost := newSecret(t, ns, map[string]string{"identity": string(client.PrivateKeyPEM), "known_hosts": wrongKey})
	unauthorized := newSecret(t, ns, map[string]string{"identity": string(stranger.PrivateKeyPEM), "known_hosts": sshd.KnownHosts()})
	noKnownHosts := newSecret(t, ns, map[string]string{"identity": string(client.PrivateKeyPEM)})

	r := &PolicyRepositoryReconciler{Client: k8sClient, Storage: testStorage}
	for _, tc := range []struct {
		name       string
		url        string
		secret     string
		ref        *v1.GitRef
		wantCommit string
		wantReason string
		wantErr    string
		stalling   bool
	}{
		{name: "branch", url: url, secret: good, wantCommit: fx.c3},
		{name: "tag", url: url, secret: good, ref: &v1.GitRef{Tag: "v1.0.0"}, wantCommit: fx.c1},
		{name: "host key not in known_hosts", url: impostor.URL("policies"), secret: good,
			wantReason: v1.GitOperationFailedReason, wantErr: "knownhosts: key is unknown"},
		{name: "host key does not match", url: url, secret: wrongHost,
			wantReason: v1.GitOperationFailedReason, wantErr: "key mismatch"},
		{name: "key not authorized", url: url, secret: unauthorized,
			wantReason: v1.GitOperationFailedReason, wantErr: "unable to authenticate"},
		{name: "no known_hosts", url: url, secret: noKnownHosts,
			wantReason: v1.AuthenticationFailedReason, wantErr: "known_hosts", stalling: true},
		{name: "no such repository", url: sshd.URL("nope"), secret: good,
			wantReason: v1.GitOperationFailedReason, wantErr: "fetch " + sshd.URL("nope")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			obj := &v1.PolicyRepository{ObjectMeta: metav1.ObjectMeta{Name: "r", Namespace: ns}}
			obj.Spec.URL = tc.url
			obj.Spec.SecretRef = &v1.LocalObjectReference{Name: tc.secret}
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
				if got := reasonOf(err, ""); got != tc.wantReason || isStalling(err) != tc.stalling {
					t.Errorf("reason %q stalling %v, want %q stalling %v", got, isStalling(err), tc.wantReason, tc.stalling)
				}
				for _, k := range []gitserver.ClientKey{client, stranger} {
					if strings.Contains(err.Error(), strings.TrimSpace(string(k.PrivateKeyPEM))[40:80]) {
						t.Errorf("error leaks a private key: %q", err)
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
			if _, err := os.Stat(filepath.Join(dir, "shop", "policy.cue")); err != nil {
				t.Errorf("checkout: %v", err)
			}
		})
	}

	// The manager's controller stores the SSH-fetched revision.
	repo := &v1.PolicyRepository{ObjectMeta: metav1.ObjectMeta{Name: "over-ssh", Namespace: ns}}
	repo.Spec = v1.PolicyRepositorySpec{URL: url, Interval: metav1.Duration{Duration: time.Hour}, SecretRef: &v1.LocalObjectReference{Name: good}}
	if err := k8sClient.Create(context.Background(), repo); err != nil {
		t.Fatal(err)
	}
	waitRevision(t, repo, "main@sha1:"+fx.c3)
	if sshd.Requests() == 0 {
		t.Error("the SSH server ran no git command")
	}
}
