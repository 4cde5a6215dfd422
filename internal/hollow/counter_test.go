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

package hollow

import (
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"reflect"
	"strings"
	"testing"
)

// TestCounter sends requests through a counting transport to a server and
// checks how they are named.
func TestCounter(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	defer srv.Close()
	var c Counter
	hc := &http.Client{Transport: c.Wrap(http.DefaultTransport)}
	for _, r := range []struct{ method, path string }{
		{"GET", "/api/v1/pods"},
		{"GET", "/api/v1/pods?watch=true&resourceVersion=5"},
		{"GET", "/api/v1/namespaces/default/pods/web"},
		{"PATCH", "/apis/palisade.dev/v1alpha1/nodeenforcements/n1/status"},
		{"PATCH", "/apis/palisade.dev/v1alpha1/nodeenforcements/n2/status"},
		{"POST", "/apis/palisade.dev/v1alpha1/nodeenforcements"},
		{"PUT", "/apis/palisade.dev/v1alpha1/namespaces/ns/networkpolicies/p"},
		{"DELETE", "/apis/palisade.dev/v1alpha1/identities/300"},
		{"GET", "/apis"},
	} {
		req, err := http.NewRequest(r.method, srv.URL+r.path, strings.NewReader(""))
		if err != nil {
			t.Fatal(err)
		}
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	want := map[string]int64{
		"list pods": 1, "watch pods": 1, "get pods": 1,
		"patch nodeenforcements/status": 2, "create nodeenforcements": 1,
		"update networkpolicies": 1, "delete identities": 1, "get /apis": 1,
	}
	got := c.Snapshot()
	if !reflect.DeepEqual(got, want) {
		t.Errorf("counts %v, want %v", got, want)
	}
	if n := Total(got); n != 9 {
		t.Errorf("total %d, want 9", n)
	}
	if d := Sub(got, map[string]int64{"list pods": 1, "watch pods": 0}); d["list pods"] != 0 || d["watch pods"] != 1 {
		t.Errorf("Sub: %v", d)
	}
}

// TestLinks: every pod address of a node's /24 has its own interface.
func TestLinks(t *testing.T) {
	seen := map[int]bool{}
	for i := 2; i < 254; i++ {
		idx, _, err := Links{}.Interface(netip.AddrFrom4([4]byte{10, 1, 7, byte(i)}))
		if err != nil {
			t.Fatal(err)
		}
		if seen[idx] || idx < 2 {
			t.Fatalf("address .%d: interface %d taken or reserved", i, idx)
		}
		seen[idx] = true
	}
	if _, _, err := (Links{}).Interface(netip.MustParseAddr("fd00::1")); err == nil {
		t.Error("IPv6 address: no error")
	}
}

func TestStatusFields(t *testing.T) {
	for patch, want := range map[string]string{
		`{"status":{"lastVerifiedTime":"2026-01-01T00:00:00Z"}}`:                                 "lastVerifiedTime",
		`{"status":{"policySets":[{"name":"a","pendingRevision":"r2"}]}}`:                        "policySets",
		`{"status":{"conditions":[],"lastVerifiedTime":"2026-01-01T00:00:00Z","policySets":[]}}`: "conditions+policySets",
		`{"metadata":{"resourceVersion":"1"}}`:                                                   "other",
		`not json`:                                                                               "other",
	} {
		if got := StatusFields([]byte(patch)); got != want {
			t.Errorf("StatusFields(%s) = %q, want %q", patch, got, want)
		}
	}
}

// TestCounterStatusFields: a NodeEnforcement status patch is counted by
// the fields it writes, and the server still receives its whole body.
func TestCounterStatusFields(t *testing.T) {
	var bodies []string
	srv := httptest.NewServer(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		bodies = append(bodies, string(b))
	}))
	defer srv.Close()
	var c Counter
	hc := &http.Client{Transport: c.Wrap(http.DefaultTransport)}
	patches := []string{
		`{"status":{"policySets":[{"name":"a","pendingRevision":"r2"}]}}`,
		`{"status":{"conditions":[],"policySets":[]}}`,
		`{"status":{"policySets":[]}}`,
	}
	for _, p := range patches {
		req, err := http.NewRequest("PATCH", srv.URL+"/apis/palisade.dev/v1alpha1/nodeenforcements/n1/status", strings.NewReader(p))
		if err != nil {
			t.Fatal(err)
		}
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	if want := map[string]int64{"policySets": 2, "conditions+policySets": 1}; !reflect.DeepEqual(c.StatusSnapshot(), want) {
		t.Errorf("status fields %v, want %v", c.StatusSnapshot(), want)
	}
	if !reflect.DeepEqual(bodies, patches) {
		t.Errorf("the server received %q, want %q", bodies, patches)
	}
}
