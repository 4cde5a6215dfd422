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
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "github.com/palisade-dev/palisade/api/v1alpha1"
	"github.com/palisade-dev/palisade/internal/gitserver"
)

const hookToken = "hook-token-0123456789"

func sign(token string, data []byte) string {
	m := hmac.New(sha256.New, []byte(token))
	m.Write(data)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

type hookReq struct {
	header map[string]string
	body   string
}

func githubPush(delivery, after, token string) hookReq {
	body := fmt.Sprintf(`{"ref":"refs/heads/main","before":"0000","after":%q,"repository":{"full_name":"o/r"}}`, after)
	return hookReq{map[string]string{"X-GitHub-Event": "push", "X-GitHub-Delivery": delivery, "X-Hub-Signature-256": sign(token, []byte(body))}, body}
}

func gitlabPush(delivery, after, token string) hookReq {
	body := fmt.Sprintf(`{"object_kind":"push","ref":"refs/heads/main","after":%q}`, after)
	return hookReq{map[string]string{"X-Gitlab-Event": "Push Hook", "X-Gitlab-Event-UUID": delivery, "X-Gitlab-Token": token}, body}
}

func genericPush(delivery, after, token string, at time.Time) hookReq {
	body := fmt.Sprintf(`{"ref":"refs/heads/main","after":%q}`, after)
	ts := strconv.FormatInt(at.Unix(), 10)
	return hookReq{map[string]string{GenericDeliveryHeader: delivery, GenericTimestampHeader: ts, GenericSignatureHeader: sign(token, []byte(ts+"."+body))}, body}
}

func (h hookReq) send(rc *Receiver, path string) int {
	req := httptest.NewRequest(http.MethodPost, path, bytes.NewBufferString(h.body))
	for k, v := range h.header {
		req.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	rc.ServeHTTP(rec, req)
	return rec.Code
}

func TestReceiver(t *testing.T) {
	needEnv(t)
	ctx := context.Background()
	ns := newNamespace(t)
	tok := newSecret(t, ns, map[string]string{"token": hookToken})
	repo := &v1.PolicyRepository{ObjectMeta: metav1.ObjectMeta{Name: "hooked", Namespace: ns}}
	repo.Spec = v1.PolicyRepositorySpec{URL: "https://127.0.0.1:1/none.git", Interval: metav1.Duration{Duration: time.Hour}, Suspend: true,
		Webhook: &v1.WebhookSpec{SecretRef: v1.LocalObjectReference{Name: tok}}}
	plain := repo.DeepCopy()
	plain.Name, plain.Spec.Webhook = "plain", nil
	for _, o := range []*v1.PolicyRepository{repo, plain} {
		if err := k8sClient.Create(ctx, o); err != nil {
			t.Fatal(err)
		}
	}
	now := time.Unix(1767225600, 0)
	rc := &Receiver{Client: k8sClient, Now: func() time.Time { return now }, Window: 5 * time.Minute}
	path := "/hook/" + ns + "/hooked"
	after := "0123456789abcdef0123456789abcdef01234567"
	for _, tc := range []struct {
		name string
		req  hookReq
		path string
		want int
	}{
		{"github", githubPush("d1", after, hookToken), path, http.StatusAccepted},
		{"github replayed delivery", githubPush("d1", after+"x", hookToken), path, http.StatusConflict},
		{"github same body, new delivery id", githubPush("d1-forged", after, hookToken), path, http.StatusConflict},
		{"github wrong key", githubPush("d2", after, "not-the-token"), path, http.StatusUnauthorized},
		{"github unsigned", hookReq{map[string]string{"X-GitHub-Event": "push", "X-GitHub-Delivery": "d3"}, `{"ref":"refs/heads/main"}`}, path, http.StatusUnauthorized},
		{"github ping", hookReq{map[string]string{"X-GitHub-Event": "ping", "X-GitHub-Delivery": "d4", "X-Hub-Signature-256": sign(hookToken, []byte(`{}`))}, `{}`}, path, http.StatusOK},
		{"github no delivery id", hookReq{map[string]string{"X-GitHub-Event": "push", "X-Hub-Signature-256": sign(hookToken, []byte(`{}`))}, `{}`}, path, http.StatusBadRequest},
		{"gitlab", gitlabPush("g1", after, hookToken), path, http.StatusAccepted},
		{"gitlab replayed", gitlabPush("g1", after, hookToken), path, http.StatusConflict},
		{"gitlab wrong token", gitlabPush("g2", after, "nope-nope"), path, http.StatusUnauthorized},
		{"generic", genericPush("x1", after, hookToken, now), path, http.StatusAccepted},
		{"generic replayed", genericPush("x1", after, hookToken, now), path, http.StatusConflict},
		{"generic stale timestamp", genericPush("x2", after+"2", hookToken, now.Add(-time.Hour)), path, http.StatusUnauthorized},
		{"generic future timestamp", genericPush("x3", after+"3", hookToken, now.Add(time.Hour)), path, http.StatusUnauthorized},
		{"unknown provider", hookReq{map[string]string{"X-Other": "1"}, `{}`}, path, http.StatusBadRequest},
		{"repository without webhook", githubPush("d9", after, hookToken), "/hook/" + ns + "/plain", http.StatusNotFound},
		{"no such repository", githubPush("d10", after, hookToken), "/hook/" + ns + "/nope", http.StatusNotFound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.req.send(rc, tc.path); got != tc.want {
				t.Errorf("status %d, want %d", got, tc.want)
			}
		})
	}
	got := &v1.PolicyRepository{}
	if err := k8sClient.Get(ctx, client.ObjectKeyFromObject(repo), got); err != nil {
		t.Fatal(err)
	}
	if got.Annotations[v1.ReconcileRequestAnnotation] != now.UTC().Format(time.RFC3339Nano) {
		t.Errorf("reconcile annotation %q", got.Annotations[v1.ReconcileRequestAnnotation])
	}
	if err := k8sClient.Get(ctx, client.ObjectKeyFromObject(plain), got); err != nil {
		t.Fatal(err)
	}
	if _, ok := got.Annotations[v1.ReconcileRequestAnnotation]; ok {
		t.Error("a repository without a webhook was triggered")
	}
}

// TestReceiverTriggersFetch: a push and its webhook move the artifact to
// the new commit long before the (one hour) interval.
func TestReceiverTriggersFetch(t *testing.T) {
	needEnv(t)
	ctx := context.Background()
	srv := gitserver.New(t, gitserver.Options{})
	srv.InitBare(t, "hooked")
	co := srv.Checkout(t, "hooked")
	co.Commit("one", map[string]string{"p.cue": "package p\n"}, gitserver.CommitOptions{})
	co.Push(false)
	ns := newNamespace(t)
	ca := newSecret(t, ns, map[string]string{"ca.crt": string(srv.CAPEM())})
	tok := newSecret(t, ns, map[string]string{"token": hookToken})
	repo := &v1.PolicyRepository{ObjectMeta: metav1.ObjectMeta{Name: "r", Namespace: ns}}
	repo.Spec = v1.PolicyRepositorySpec{URL: srv.URL("hooked"), Interval: metav1.Duration{Duration: time.Hour},
		SecretRef: &v1.LocalObjectReference{Name: ca}, Webhook: &v1.WebhookSpec{SecretRef: v1.LocalObjectReference{Name: tok}}}
	if err := k8sClient.Create(ctx, repo); err != nil {
		t.Fatal(err)
	}
	waitRevision(t, repo, "")
	h := co.Commit("two", map[string]string{"p.cue": "package p\n// 2\n"}, gitserver.CommitOptions{})
	co.Push(false)
	rc := &Receiver{Client: k8sClient}
	if code := githubPush("delivery-"+h.String(), h.String(), hookToken).send(rc, "/hook/"+ns+"/r"); code != http.StatusAccepted {
		t.Fatalf("webhook: %d", code)
	}
	waitRevision(t, repo, "main@sha1:"+h.String())
}

// waitRevision waits for the repository's artifact to be want (any, if
// want is empty).
func waitRevision(t *testing.T, repo *v1.PolicyRepository, want string) {
	t.Helper()
	eventually(t, 20*time.Second, func() error {
		got := &v1.PolicyRepository{}
		if err := k8sClient.Get(context.Background(), client.ObjectKeyFromObject(repo), got); err != nil {
			return err
		}
		if a := got.Status.Artifact; a == nil || (want != "" && a.Revision != want) {
			return fmt.Errorf("artifact %+v, want %q", a, want)
		}
		return nil
	})
}

// FuzzParsePush feeds arbitrary headers and bodies to the parser: it must
// never panic, and what it accepts must be a well-formed push.
func FuzzParsePush(f *testing.F) {
	after := "0123456789abcdef0123456789abcdef01234567"
	for _, r := range []hookReq{
		githubPush("d1", after, hookToken),
		gitlabPush("g1", after, hookToken),
		genericPush("x1", after, hookToken, time.Unix(1767225600, 0)),
		{map[string]string{"X-GitHub-Event": "ping", "X-GitHub-Delivery": "p"}, `{"zen":"hi"}`},
		{map[string]string{"X-Gitlab-Event": "Tag Push Hook", "X-Gitlab-Event-UUID": "t"}, `{"ref":"refs/tags/v1","after":"x"}`},
	} {
		var provider, event, delivery string
		for k, v := range r.header {
			switch k {
			case "X-GitHub-Event":
				provider, event = "X-GitHub-Event", v
			case "X-Gitlab-Event":
				provider, event = "X-Gitlab-Event", v
			case GenericSignatureHeader:
				provider, event = GenericSignatureHeader, v
			case "X-GitHub-Delivery", "X-Gitlab-Event-UUID", GenericDeliveryHeader:
				delivery = v
			}
		}
		f.Add(provider, event, delivery, []byte(r.body))
	}
	f.Fuzz(func(t *testing.T, provider, event, delivery string, body []byte) {
		h := http.Header{}
		h.Set(provider, event)
		h.Set("X-GitHub-Delivery", delivery)
		h.Set("X-Gitlab-Event-UUID", delivery)
		h.Set(GenericDeliveryHeader, delivery)
		p, err := ParsePush(h, body)
		if err != nil {
			return
		}
		if p.Delivery == "" || len(p.Delivery) > 128 {
			t.Fatalf("accepted delivery id %q", p.Delivery)
		}
		if p.Event != "ping" && (len(p.Ref) < 5 || p.Ref[:5] != "refs/") {
			t.Fatalf("accepted ref %q", p.Ref)
		}
		// Verification with any token must not panic either.
		_ = VerifyPush(p, h, body, []byte("k"), time.Unix(0, 0), time.Minute)
	})
}
