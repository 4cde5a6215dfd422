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

package relay

import (
	"bufio"
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/palisade-dev/palisade/internal/flows"
	"github.com/palisade-dev/palisade/internal/observer"
)

var t0 = time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)

func flowAt(node string, sec int, v flows.Verdict) flows.Flow {
	return flows.Flow{Time: t0.Add(time.Duration(sec) * time.Second), Node: node, Protocol: "TCP", Verdict: v,
		Source: flows.Endpoint{IP: "10.0.0.1", Port: uint16(40000 + sec)}, Destination: flows.Endpoint{IP: "10.0.0.2", Port: 8080}}
}

// agent serves a buffer as a node agent does and returns its address.
func agent(t *testing.T, b *observer.Buffer) string {
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

// deadAddr is an address where nothing listens.
func deadAddr(t *testing.T) string {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := lis.Addr().String()
	lis.Close()
	return addr
}

// get requests the relay and returns a channel of its messages.
func get(t *testing.T, srv *httptest.Server, ctx context.Context, req *observer.Request) <-chan Message {
	hr, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+Path+"?"+Query(req).Encode(), nil)
	resp, err := http.DefaultClient.Do(hr)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %s", resp.Status)
	}
	ch := make(chan Message, 100)
	go func() {
		defer resp.Body.Close()
		defer close(ch)
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			var m Message
			if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
				t.Error(err)
				return
			}
			ch <- m
		}
	}()
	return ch
}

func next(t *testing.T, ch <-chan Message) Message {
	t.Helper()
	select {
	case m, ok := <-ch:
		if !ok {
			t.Fatal("the stream ended")
		}
		return m
	case <-time.After(10 * time.Second):
		t.Fatal("no message in 10s")
	}
	return Message{}
}

func TestLastMergesByTimeAndReportsNodes(t *testing.T) {
	a, b := observer.NewBuffer(8), observer.NewBuffer(8)
	for _, s := range []int{1, 4, 6} {
		a.Add(flowAt("a", s, flows.Dropped))
	}
	for _, s := range []int{2, 3, 5} {
		b.Add(flowAt("b", s, flows.Dropped))
	}
	b.Lost(observer.StageKernel, 3)
	r := New()
	r.SetNode("a", agent(t, a))
	r.SetNode("b", agent(t, b))
	r.SetNode("c", deadAddr(t))
	r.SetNode("d", "")
	t.Cleanup(r.Close)
	srv := httptest.NewServer(r)
	t.Cleanup(srv.Close)

	var got []string
	for m := range get(t, srv, context.Background(), &observer.Request{Last: 4}) {
		switch {
		case m.Flow != nil:
			got = append(got, m.Flow.Node+m.Flow.Time.Format(":05"))
		case m.Lost != nil:
			got = append(got, "lost "+m.Lost.Node+" "+m.Lost.Stage)
		case m.Node != nil:
			got = append(got, m.Node.Name+" "+m.Node.State)
		}
	}
	want := []string{"lost b kernel", "c unreachable", "d no-observer", "b:03", "a:04", "b:05", "a:06"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %q\nwant %q", got, want)
	}
}

func TestFollowFansInAndReportsNodeChanges(t *testing.T) {
	a, b := observer.NewBuffer(8), observer.NewBuffer(8)
	a.Add(flowAt("a", 1, flows.Dropped))
	r := New()
	r.MinBackoff = 10 * time.Millisecond
	r.SetNode("a", agent(t, a))
	t.Cleanup(r.Close)
	srv := httptest.NewServer(r)
	t.Cleanup(srv.Close)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ch := get(t, srv, ctx, &observer.Request{Follow: true, Last: 10, Filter: observer.Filter{Verdict: []flows.Verdict{flows.Dropped}}})
	if m := next(t, ch); m.Flow == nil || m.Flow.Node != "a" {
		t.Fatalf("first message %+v, want a's held flow", m)
	}
	// A node joins; the filter passes through to the agents.
	r.SetNode("b", agent(t, b))
	if m := next(t, ch); m.Node == nil || m.Node.Name != "b" || m.Node.State != NodeJoined {
		t.Fatalf("got %+v, want b joined", m)
	}
	// Followers subscribe asynchronously: add until one is seen.
	deadline := time.Now().Add(10 * time.Second)
	sec := 10
	var m Message
	for m.Flow == nil || m.Flow.Node != "b" {
		if time.Now().After(deadline) {
			t.Fatal("no flow of b")
		}
		b.Add(flowAt("b", sec, flows.Forwarded)) // filtered out by the agent
		b.Add(flowAt("b", sec+1, flows.Dropped))
		sec += 2
		select {
		case m = <-ch:
			if m.Flow != nil && m.Flow.Verdict != flows.Dropped {
				t.Fatalf("a forwarded flow passed the filter: %+v", m.Flow)
			}
		case <-time.After(50 * time.Millisecond):
		}
	}
	a.Add(flowAt("a", 100, flows.Dropped))
	for m = next(t, ch); m.Flow != nil && m.Flow.Node == "b"; m = next(t, ch) {
	}
	if m.Flow == nil || m.Flow.Node != "a" || !m.Flow.Time.Equal(t0.Add(100*time.Second)) {
		t.Fatalf("got %+v, want a's new flow", m)
	}
	r.RemoveNode("a")
	for m = next(t, ch); m.Node == nil; m = next(t, ch) {
	}
	if m.Node.Name != "a" || m.Node.State != NodeGone {
		t.Fatalf("got %+v, want a gone", m.Node)
	}
}

func TestFollowReportsUnreachableAndReconnected(t *testing.T) {
	addr := deadAddr(t)
	r := New()
	r.MinBackoff, r.MaxBackoff = 10*time.Millisecond, 50*time.Millisecond
	r.SetNode("a", addr)
	t.Cleanup(r.Close)
	srv := httptest.NewServer(r)
	t.Cleanup(srv.Close)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ch := get(t, srv, ctx, &observer.Request{Follow: true})
	if m := next(t, ch); m.Node == nil || m.Node.State != NodeUnreachable || !strings.Contains(m.Node.Error, addr) {
		t.Fatalf("got %+v, want a unreachable at %s", m, addr)
	}
	// The agent comes up at the same address.
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		t.Skipf("the address was taken meanwhile: %v", err)
	}
	b := observer.NewBuffer(8)
	sctx, scancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- observer.Serve(sctx, lis, b) }()
	defer func() { scancel(); <-done }()
	if m := next(t, ch); m.Node == nil || m.Node.State != NodeReconnected {
		t.Fatalf("got %+v, want a reconnected", m)
	}
}

func TestQueryRoundTrip(t *testing.T) {
	req := &observer.Request{Follow: true, Last: 7, Filter: observer.Filter{
		FromPod: []string{"shop/client"}, ToIP: []string{"10.0.0.0/8"}, ToPort: []uint16{8080, 8081},
		Verdict: []flows.Verdict{flows.Dropped}, DropReason: []flows.DropReason{flows.DefaultDeny}, Policy: []string{"shop/server"},
	}}
	q := Query(req)
	for _, p := range []string{"follow", "last", "from-pod", "to-ip", "to-port", "verdict", "drop-reason", "policy"} {
		if !q.Has(p) {
			t.Errorf("query %s lacks %s", q.Encode(), p)
		}
	}
	got, err := ParseQuery(q)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, req) {
		t.Errorf("round trip: got %+v, want %+v", got, req)
	}
	comma, err := ParseQuery(map[string][]string{"to-port": {"80,443"}, "verdict": {"dropped", "audit"}})
	if err != nil || !reflect.DeepEqual(comma.Filter.ToPort, []uint16{80, 443}) || len(comma.Filter.Verdict) != 2 {
		t.Errorf("comma-separated and repeated: %+v, %v", comma, err)
	}
	for _, bad := range []map[string][]string{{"nope": {"1"}}, {"to-port": {"http"}}, {"last": {"-1"}}} {
		if _, err := ParseQuery(bad); err == nil {
			t.Errorf("ParseQuery(%v) did not fail", bad)
		}
	}
}
