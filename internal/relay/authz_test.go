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
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/palisade-dev/palisade/internal/flows"
	"github.com/palisade-dev/palisade/internal/observer"
)

// nsViewer sees the namespaces it lists.
type nsViewer map[string]bool

func (nsViewer) Name() string { return "test" }
func (v nsViewer) CanSee(_ context.Context, ns string) (bool, error) {
	if ns == "broken" {
		return true, errors.New("review failed")
	}
	return v[ns], nil
}

func TestRedact(t *testing.T) {
	pod := func(ns string) flows.Endpoint {
		return flows.Endpoint{Namespace: ns, Pod: ns + "-pod", IP: "10.0.0.1", Port: 80, Labels: map[string]string{"app": ns}, Identity: 1234}
	}
	world := flows.Endpoint{IP: "203.0.113.1", Entity: "world"}
	pol := func(ns string) *flows.Policy {
		return &flows.Policy{Kind: "NetworkPolicy", Namespace: ns, Name: ns + "-policy", File: ns + ".cue", Line: 3}
	}
	hidden := flows.Endpoint{Port: 80, Entity: Hidden}
	v := nsViewer{"shop": true}
	for _, c := range []struct {
		name string
		in   flows.Flow
		keep bool
		want flows.Flow
	}{
		{"both seen", flows.Flow{Source: pod("shop"), Destination: pod("shop"), Policy: pol("shop")}, true,
			flows.Flow{Source: pod("shop"), Destination: pod("shop"), Policy: pol("shop")}},
		{"to a hidden namespace", flows.Flow{Source: pod("shop"), Destination: pod("other"), Isolating: []flows.Policy{*pol("other"), *pol("other"), *pol("shop")}}, true,
			flows.Flow{Source: pod("shop"), Destination: hidden, Isolating: []flows.Policy{{Kind: "NetworkPolicy", Name: Hidden}, *pol("shop")}}},
		{"from a hidden namespace", flows.Flow{Source: pod("other"), Destination: pod("shop"), Policy: pol("other")}, true,
			flows.Flow{Source: hidden, Destination: pod("shop"), Policy: &flows.Policy{Kind: "NetworkPolicy", Name: Hidden}}},
		{"within a hidden namespace", flows.Flow{Source: pod("other"), Destination: pod("other")}, false, flows.Flow{}},
		{"a hidden namespace and world", flows.Flow{Source: world, Destination: pod("other")}, false, flows.Flow{}},
		{"a failed review hides", flows.Flow{Source: pod("broken"), Destination: pod("shop")}, true, flows.Flow{Source: hidden, Destination: pod("shop")}},
		{"entities only", flows.Flow{Source: flows.Endpoint{IP: "192.0.2.1", Entity: "host"}, Destination: world, Policy: &flows.Policy{Kind: "ClusterNetworkPolicy", Name: "host-fw"}}, true,
			flows.Flow{Source: flows.Endpoint{IP: "192.0.2.1", Entity: "host"}, Destination: world, Policy: &flows.Policy{Kind: "ClusterNetworkPolicy", Name: "host-fw"}}},
	} {
		f := c.in
		keep := Redact(context.Background(), v, &f)
		if keep != c.keep {
			t.Errorf("%s: kept %v, want %v", c.name, keep, c.keep)
			continue
		}
		if keep && !equalFlows(f, c.want) {
			t.Errorf("%s:\n got %+v\nwant %+v", c.name, f, c.want)
		}
	}
}

func equalFlows(a, b flows.Flow) bool {
	var x, y strings.Builder
	flows.Write(&x, a)
	flows.Write(&y, b)
	return x.String() == y.String()
}

// tokenAuth accepts the token "good" as a viewer of shop.
type tokenAuth struct{}

func (tokenAuth) Authenticate(_ context.Context, req *http.Request) (Viewer, error) {
	switch req.Header.Get(TokenHeader) {
	case "good":
		return nsViewer{"shop": true}, nil
	case "down":
		return nil, errors.New("the API server is down")
	}
	return nil, errors.Join(ErrUnauthenticated, errors.New("bad token"))
}

func TestServeHTTPAuthorizesAndRedacts(t *testing.T) {
	b := observer.NewBuffer(8)
	b.Add(flows.Flow{Node: "a", Protocol: "TCP", Verdict: flows.Dropped, Source: flows.Endpoint{IP: "10.0.0.1", Namespace: "other", Pod: "x"}, Destination: flows.Endpoint{IP: "10.0.0.2", Namespace: "other", Pod: "y"}})
	b.Add(flows.Flow{Node: "a", Protocol: "TCP", Verdict: flows.Dropped, Source: flows.Endpoint{IP: "10.0.0.3", Namespace: "shop", Pod: "z"}, Destination: flows.Endpoint{IP: "10.0.0.2", Namespace: "other", Pod: "y", Port: 5432}})
	r := New()
	r.Auth = tokenAuth{}
	r.SetNode("a", agent(t, b))
	t.Cleanup(r.Close)
	srv := httptest.NewServer(r)
	t.Cleanup(srv.Close)
	for token, code := range map[string]int{"": http.StatusUnauthorized, "bad": http.StatusUnauthorized, "down": http.StatusServiceUnavailable} {
		req, _ := http.NewRequest(http.MethodGet, srv.URL+Path, nil)
		req.Header.Set(TokenHeader, token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != code {
			t.Errorf("token %q: %s, want %d", token, resp.Status, code)
		}
	}
	req, _ := http.NewRequest(http.MethodGet, srv.URL+Path, nil)
	req.Header.Set(TokenHeader, "good")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	got := strings.TrimSpace(string(body))
	var m Message
	json.Unmarshal(body, &m)
	if strings.Count(got, "\n") != 0 || strings.Contains(got, "other") || strings.Contains(got, "10.0.0.2") || m.Flow == nil || m.Flow.Destination.Entity != Hidden {
		t.Errorf("a viewer of shop got:\n%s\nwant one flow, its end in other hidden", got)
	}
}
