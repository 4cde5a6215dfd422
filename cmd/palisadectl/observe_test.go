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
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/palisade-dev/palisade/internal/flows"
	"github.com/palisade-dev/palisade/internal/observer"
	"github.com/palisade-dev/palisade/internal/relay"
)

func serveFlows(t *testing.T, fs ...flows.Flow) string {
	b := observer.NewBuffer(16)
	for _, f := range fs {
		b.Add(f)
	}
	b.Lost(observer.StageKernel, 2)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- observer.Serve(ctx, lis, b) }()
	t.Cleanup(func() { cancel(); <-done })
	return lis.Addr().String()
}

func observeCmd(t *testing.T, args ...string) (string, string, error) {
	root := newRootCmd()
	var out, errOut bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&errOut)
	root.SetArgs(append([]string{"observe"}, args...))
	err := root.Execute()
	return out.String(), errOut.String(), err
}

func TestObserve(t *testing.T) {
	drop := flows.Flow{Node: "n1", Protocol: "TCP", Direction: "ingress", Verdict: flows.Dropped, DropReason: flows.DefaultDeny,
		Source:      flows.Endpoint{IP: "10.0.0.1", Namespace: "shop", Pod: "frontend"},
		Destination: flows.Endpoint{IP: "10.0.0.2", Port: 22, Namespace: "shop", Pod: "api"},
		Isolating:   []flows.Policy{{Kind: "NetworkPolicy", Namespace: "shop", Name: "api", File: "shop/api.cue", Line: 3, Column: 1, Revision: "abc123"}}}
	fwd := drop
	fwd.Verdict, fwd.DropReason, fwd.Isolating = flows.Forwarded, "", nil
	fwd.Destination.Port = 8080
	fwd.Policy = &flows.Policy{Kind: "NetworkPolicy", Namespace: "shop", Name: "api", Path: "spec.ingress[0]", File: "shop/api.cue", Line: 7, Column: 3, Revision: "abc123"}
	addr := serveFlows(t, drop, fwd)

	out, errOut, err := observeCmd(t, "--server", addr, "--verdict", "dropped", "-o", "jsonl")
	if err != nil {
		t.Fatal(err)
	}
	var got flows.Flow
	if err := json.Unmarshal([]byte(out), &got); err != nil || got.DropReason != flows.DefaultDeny || strings.Count(out, "\n") != 1 {
		t.Fatalf("jsonl: %q, %v", out, err)
	}
	if !strings.Contains(errOut, "2 flows at stage kernel") {
		t.Errorf("the losses are not printed: %q", errOut)
	}

	out, _, err = observeCmd(t, "--server", addr, "--to-port", "8080")
	if err != nil {
		t.Fatal(err)
	}
	if want := "shop/frontend -> shop/api:8080 TCP ingress FORWARDED by NetworkPolicy shop/api spec.ingress[0] at shop/api.cue:7:3 @abc123"; !strings.Contains(out, want) {
		t.Errorf("text: %q, want %q", out, want)
	}

	if _, _, err := observeCmd(t, "--server", addr, "--verdict", "denied"); err == nil {
		t.Error("an unknown verdict is accepted")
	}
}

// TestObserveThroughAPIServer reads a relay through a stand-in API server
// that serves the service proxy path, with a kubeconfig and its token.
func TestObserveThroughAPIServer(t *testing.T) {
	drop := flows.Flow{Node: "n1", Protocol: "TCP", Direction: "ingress", Verdict: flows.Dropped, DropReason: flows.ExplicitDeny,
		Source:      flows.Endpoint{IP: "10.0.0.1", Namespace: "shop", Pod: "frontend"},
		Destination: flows.Endpoint{IP: "10.0.0.2", Port: 22, Namespace: "shop", Pod: "api"},
		Policy:      &flows.Policy{Kind: "NetworkPolicy", Namespace: "shop", Name: "api", Path: "spec.ingressDeny[0]", File: "shop/api.cue", Line: 9, Column: 3, Revision: "main@sha1:abc"}}
	r := relay.New()
	r.SetNode("n1", serveFlows(t, drop))
	r.SetNode("n2", "")
	t.Cleanup(r.Close)
	var gotPath, gotQuery, gotAuth string
	// TLS: clientcmd sends a user's credentials to https servers only.
	api := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		gotPath, gotQuery, gotAuth = req.URL.Path, req.URL.RawQuery, req.Header.Get("Authorization")
		const prefix = "/api/v1/namespaces/palisade-system/services/http:palisade-relay:flows/proxy"
		if !strings.HasPrefix(req.URL.Path, prefix) {
			http.Error(w, "forbidden", http.StatusForbidden)
			return
		}
		req.URL.Path = strings.TrimPrefix(req.URL.Path, prefix)
		r.ServeHTTP(w, req)
	}))
	t.Cleanup(api.Close)
	kc := filepath.Join(t.TempDir(), "kubeconfig")
	os.WriteFile(kc, []byte(`apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "`+api.URL+`", certificate-authority-data: "`+base64.StdEncoding.EncodeToString(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: api.Certificate().Raw}))+`"}}]
users: [{name: u, user: {token: viewer-token}}]
contexts: [{name: x, context: {cluster: c, user: u}}]
current-context: x
`), 0o600)

	out, errOut, err := observeCmd(t, "--kubeconfig", kc, "--verdict", "dropped", "--from-pod", "shop/frontend", "--last", "5")
	if err != nil {
		t.Fatal(err)
	}
	if gotAuth != "Bearer viewer-token" {
		t.Errorf("Authorization %q: the kubeconfig's credentials are not used", gotAuth)
	}
	if !strings.Contains(gotQuery, "from-pod=shop%2Ffrontend") || !strings.Contains(gotQuery, "verdict=dropped") || !strings.Contains(gotQuery, "last=5") {
		t.Errorf("query %q", gotQuery)
	}
	if want := "DROPPED (explicit-deny) by NetworkPolicy shop/api spec.ingressDeny[0] at shop/api.cue:9:3 @main@sha1:abc"; !strings.Contains(out, want) {
		t.Errorf("out %q (path %s), want %q", out, gotPath, want)
	}
	for _, want := range []string{"lost since the agent started on node n1: 2 flows at stage kernel", "NODE n2 HAS NO OBSERVER"} {
		if !strings.Contains(errOut, want) {
			t.Errorf("stderr %q lacks %q", errOut, want)
		}
	}

	_, _, err = observeCmd(t, "--kubeconfig", kc, "--relay-service", "other")
	if err == nil || !strings.Contains(err.Error(), "services/proxy") {
		t.Errorf("a forbidden proxy: %v, want the RBAC it needs", err)
	}
}
