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

package main

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"k8s.io/client-go/tools/clientcmd"

	"github.com/palisade-dev/palisade/internal/flows"
	"github.com/palisade-dev/palisade/internal/observer"
	"github.com/palisade-dev/palisade/internal/relay"
)

// kubeconfig writes a kubeconfig for server with the given user entry.
func kubeconfig(t *testing.T, server, user string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "kubeconfig")
	kc := `apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "` + server + `", insecure-skip-tls-verify: true}}]
contexts: [{name: c, context: {cluster: c, user: u}}]
current-context: c
users: [{name: u, user: ` + user + `}]
`
	if err := os.WriteFile(path, []byte(kc), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestBearerTokenFromKubeconfig(t *testing.T) {
	dir := t.TempDir()
	plugin := filepath.Join(dir, "plugin")
	os.WriteFile(plugin, []byte("#!/bin/sh\necho '{\"apiVersion\":\"client.authentication.k8s.io/v1\",\"kind\":\"ExecCredential\",\"status\":{\"token\":\"exec-token\"}}'\n"), 0o755)
	tokenFile := filepath.Join(dir, "token")
	os.WriteFile(tokenFile, []byte("file-token\n"), 0o600)
	for _, c := range []struct{ user, want string }{
		{`{token: plain-token}`, "plain-token"},
		{`{tokenFile: "` + tokenFile + `"}`, "file-token"},
		{`{exec: {apiVersion: client.authentication.k8s.io/v1, command: "` + plugin + `", interactiveMode: Never}}`, "exec-token"},
		{`{username: u, password: p}`, ""},
	} {
		rules := &clientcmd.ClientConfigLoadingRules{ExplicitPath: kubeconfig(t, "https://127.0.0.1:1", c.user)}
		cfg, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{}).ClientConfig()
		if err != nil {
			t.Fatal(err)
		}
		got, err := bearerToken(cfg)
		if err != nil || got != c.want {
			t.Errorf("user %s: token %q, %v; want %q", c.user, got, err, c.want)
		}
	}
}

// TestUIForwardsThroughTheAPIServer runs palisadectl ui's port against an
// API server stand-in that, like the real service proxy, authenticates
// the kubeconfig's token and drops it before forwarding to the relay: the
// relay gets it in X-Palisade-Token, the flows stream through, the plan
// is served, and nothing answers without the printed key.
func TestUIForwardsThroughTheAPIServer(t *testing.T) {
	b := observer.NewBuffer(16)
	b.Add(flows.Flow{Time: time.Now(), Node: "n", Protocol: "TCP", Verdict: flows.Dropped, Direction: "ingress",
		Source: flows.Endpoint{IP: "10.0.0.1"}, Destination: flows.Endpoint{IP: "10.0.0.2", Port: 80}})
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	actx, acancel := context.WithCancel(context.Background())
	adone := make(chan error, 1)
	go func() { adone <- observer.Serve(actx, lis, b) }()
	t.Cleanup(func() { acancel(); <-adone })
	r := relay.New()
	r.SetNode("n", lis.Addr().String())
	t.Cleanup(r.Close)

	var relayToken string
	prefix := "/api/v1/namespaces/palisade-system/services/http:palisade-relay:flows/proxy"
	// https: clientcmd reads a user's credentials for TLS servers only.
	apiserver := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.Header.Get("Authorization") != "Bearer kube-token" {
			http.Error(w, "Unauthorized", http.StatusUnauthorized)
			return
		}
		rest, ok := strings.CutPrefix(req.URL.Path, prefix)
		if !ok {
			http.NotFound(w, req)
			return
		}
		req.Header.Del("Authorization")
		relayToken = req.Header.Get(relay.TokenHeader)
		req.URL.Path = rest
		r.ServeHTTP(w, req)
	}))
	t.Cleanup(apiserver.Close)

	plan := filepath.Join(t.TempDir(), "plan.json")
	os.WriteFile(plan, []byte(`{"pairs": []}`), 0o644)
	planBytes, err := readPlan(plan)
	if err != nil {
		t.Fatal(err)
	}
	rules := &clientcmd.ClientConfigLoadingRules{ExplicitPath: kubeconfig(t, apiserver.URL, `{token: kube-token}`)}
	cfg, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{}).ClientConfig()
	if err != nil {
		t.Fatal(err)
	}
	p, err := newUIProxy(cfg, "kube-token", "palisade-system", "palisade-relay", planBytes)
	if err != nil {
		t.Fatal(err)
	}
	ulis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	out := &syncBuffer{}
	done := make(chan error, 1)
	go func() { done <- serveUI(ctx, ulis, p, out) }()
	t.Cleanup(func() { cancel(); <-done })
	base := "http://" + ulis.Addr().String()

	// Without the key: nothing.
	if resp, err := http.Get(base + "/v1/flows"); err != nil || resp.StatusCode != http.StatusForbidden {
		t.Fatalf("without the key: %v %v, want 403", resp, err)
	}
	jar, _ := cookiejar.New(nil)
	hc := &http.Client{Jar: jar}
	var url string
	for deadline := time.Now().Add(5 * time.Second); url == ""; {
		if s := out.String(); strings.Contains(s, "\n") {
			url = strings.TrimSpace(strings.TrimPrefix(s, "Palisade web view: "))
		} else if time.Now().After(deadline) {
			t.Fatal("no address printed")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if !strings.HasPrefix(url, base+"/?key=") {
		t.Fatalf("printed %q", url)
	}
	resp, err := hc.Get(url) // sets the cookie, redirects to /ui/, forwarded
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.Request.URL.Path != "/ui/" {
		t.Errorf("the key's address led to %s, want /ui/", resp.Request.URL)
	}

	resp, err = hc.Get(base + relay.Path + "?last=10")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var m relay.Message
	if resp.StatusCode != 200 || json.NewDecoder(bufio.NewReader(strings.NewReader(string(body)))).Decode(&m) != nil || m.Flow == nil || m.Flow.Destination.Port != 80 {
		t.Errorf("flows through palisadectl ui: %s %s", resp.Status, body)
	}
	if relayToken != "kube-token" {
		t.Errorf("the relay got token %q in %s, want the kubeconfig's", relayToken, relay.TokenHeader)
	}
	resp, err = hc.Get(base + "/v1/plan")
	if err != nil {
		t.Fatal(err)
	}
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(body) != `{"pairs": []}` {
		t.Errorf("/v1/plan: %s", body)
	}
	// Another Host (DNS rebinding) is refused.
	req, _ := http.NewRequest(http.MethodGet, base+"/v1/plan", nil)
	req.Host = "evil.example:80"
	if resp, err := hc.Do(req); err != nil || resp.StatusCode != http.StatusForbidden {
		t.Errorf("another Host: %v %v, want 403", resp, err)
	}
}

// syncBuffer is a strings.Builder that one goroutine writes and another
// reads.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestReadPlanErrors(t *testing.T) {
	dir := t.TempDir()
	for name, c := range map[string]struct{ content, want string }{
		"syntax.json": {"{\n  \"pairs\": [,]\n}", "syntax.json:2:13: invalid character ','"},
		"other.json":  {`{"tests": []}`, `other.json: not the output of palisadectl plan -o json (no "pairs")`},
	} {
		path := filepath.Join(dir, name)
		os.WriteFile(path, []byte(c.content), 0o644)
		_, err := readPlan(path)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q", name, err, c.want)
		}
	}
}
