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

package ui_test

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"time"

	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/palisade-dev/palisade/internal/relay"
	"github.com/palisade-dev/palisade/internal/ui"
)

// TestTokenAuth reviews real ServiceAccount tokens and RBAC against the
// API server: the viewer may see shop, not other; a bad or missing token
// is unauthenticated; a RoleBinding removed stops counting once its
// decision expires.
func TestTokenAuth(t *testing.T) {
	cl := startCluster(t)
	ctx := context.Background()
	a := &ui.TokenAuth{Client: cl.c, TTL: time.Millisecond}
	req := func(header, value string) *http.Request {
		r, _ := http.NewRequest(http.MethodGet, "http://relay/v1/flows", nil)
		if header != "" {
			r.Header.Set(header, value)
		}
		return r
	}
	for _, r := range []*http.Request{req("", ""), req(relay.TokenHeader, "not-a-token"), req("Authorization", "Bearer not-a-token")} {
		if _, err := a.Authenticate(ctx, r); !errors.Is(err, relay.ErrUnauthenticated) {
			t.Errorf("headers %v: %v, want unauthenticated", r.Header, err)
		}
	}
	v, err := a.Authenticate(ctx, req("Authorization", "Bearer "+cl.viewer)) // a client reaching the relay directly
	if err != nil || v.Name() != "system:serviceaccount:shop:viewer" {
		t.Fatalf("the viewer's token: %v, %v", v, err)
	}
	v, err = a.Authenticate(ctx, req(relay.TokenHeader, cl.viewer))
	if err != nil {
		t.Fatal(err)
	}
	for ns, want := range map[string]bool{"shop": true, "other": false, "kube-system": false} {
		if got, err := v.CanSee(ctx, ns); got != want || err != nil {
			t.Errorf("the viewer may see %s: %v, %v; want %v", ns, got, err, want)
		}
	}
	if err := cl.c.Delete(ctx, &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "viewer-lists-pods"}}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		ok, err := v.CanSee(ctx, "shop")
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the viewer still sees shop 30s after its RoleBinding was deleted")
		}
		time.Sleep(20 * time.Millisecond)
	}
}
