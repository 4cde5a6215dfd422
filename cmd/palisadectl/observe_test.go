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
	"encoding/json"
	"net"
	"strings"
	"testing"

	"github.com/palisade-dev/palisade/internal/flows"
	"github.com/palisade-dev/palisade/internal/observer"
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
