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

package l7

import (
	"io"
	"testing"
)

// egressHeads are single request heads and what the kernel decides on the
// client's side: their reason and deciding rule (testList).
var egressHeads = []struct {
	name, head string
	reason     Reason
	rule       uint32
}{
	{"allowed", "GET /public/x HTTP/1.1\r\nHost: a\r\n\r\n", ReasonAllowed, 11},
	{"no rule matches", "GET /private HTTP/1.1\r\nHost: a\r\n\r\n", ReasonDenied, 11},
	{"lowercase method", "get /public/x HTTP/1.1\r\n\r\n", ReasonDenied, 11},
	{"unknown method", "FOO /public/x HTTP/1.1\r\n\r\n", ReasonDenied, 11},
	{"invalid method", "G(T /public/x HTTP/1.1\r\n\r\n", ReasonMalformed, 0},
	{"header name case", "POST /api/v1/items HTTP/1.1\r\nx-TOKEN: secret\r\nContent-Length: 0\r\n\r\n", ReasonAllowed, 11},
	{"header value differs", "POST /api/v1/items HTTP/1.1\r\nX-Token: Secret\r\n\r\n", ReasonDenied, 11},
	{"host name case", "GET /h HTTP/1.1\r\nHOST: A.Example.com\r\n\r\n", ReasonAllowed, 11},
	{"missing Host", "GET /h HTTP/1.1\r\n\r\n", ReasonDenied, 11},
	{"HTTP/1.0", "GET /public/x HTTP/1.0\r\n\r\n", ReasonAllowed, 11},
	{"second rule", "DELETE /d/12 HTTP/1.1\r\n\r\n", ReasonAllowed, 12},
	{"HTTP/2.0 line", "GET /public/x HTTP/2.0\r\n\r\n", ReasonVersion, 0},
	{"HTTP/2 preface", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", ReasonHTTP2, 0},
	{"dot segment", "GET /public/../admin HTTP/1.1\r\n\r\n", ReasonTarget, 0},
	{"encoded slash", "GET /public/a%2Fb HTTP/1.1\r\n\r\n", ReasonTarget, 0},
	{"bare LF", "GET /public/x HTTP/1.1\nHost: a\n\n", ReasonMalformed, 0},
	{"obs-fold", "GET /public/x HTTP/1.1\r\nX: a\r\n b\r\n\r\n", ReasonMalformed, 0},
	{"TLS", "\x16\x03\x01\x00\x05hello", ReasonTLS, 0},
	{"upgrade", "GET /public/x HTTP/1.1\r\nUpgrade: websocket\r\n\r\n", ReasonUpgrade, 0},
	{"CONNECT", "CONNECT /public/x HTTP/1.1\r\n\r\n", ReasonUpgrade, 0},
	{"two Content-Length", "GET /public/x HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n", ReasonFraming, 0},
	{"TE and CL", "POST /api/v1/items HTTP/1.1\r\nX-Token: secret\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n", ReasonFraming, 0},
}

// TestEgressHeads writes each head as the first request of a client
// connection: the event names the reason and rule the table says; the
// server reads the head if allowed and nothing else; a refused head is
// answered 403.
func TestEgressHeads(t *testing.T) {
	e := startEgress(t, egressLists, testListID, true)
	e.d.SetAllowedEvents(true)
	e.apply(t, egressLists, testListID, 2)
	ev := events(t, e.d)
	for _, tc := range egressHeads {
		c, br := e.dial(t)
		if _, err := io.WriteString(c, tc.head); err != nil {
			t.Fatalf("%s: write: %v", tc.name, err)
		}
		x := nextEvent(t, ev)
		if x.Reason != tc.reason || x.Rule != tc.rule || !x.Egress || x.Generation != 2 {
			t.Errorf("%s: event %v, want %v rule %d", tc.name, x, tc.reason, tc.rule)
		}
		if tc.reason != ReasonAllowed {
			if x.Status != 403 {
				t.Errorf("%s: status %d", tc.name, x.Status)
			}
			resp, _ := readResponse(t, br)
			if resp.StatusCode != 403 {
				t.Errorf("%s: answer %d", tc.name, resp.StatusCode)
			}
		}
		want := ""
		if tc.reason == ReasonAllowed {
			want = tc.head
		}
		if got := e.finish(t, c); got != want {
			t.Errorf("%s: server read %q, want %q", tc.name, got, want)
		}
	}
}

// TestEgressSplit writes requests split at every byte offset (two
// writes), and their prefixes alone: an allowed request reaches the
// server whole, a refused one never does, and a prefix never does.
func TestEgressSplit(t *testing.T) {
	e := startEgress(t, egressLists, testListID, true)
	ev := events(t, e.d)
	for _, tc := range []struct {
		head    string
		allowed bool
	}{
		{"GET /public/a HTTP/1.1\r\nHost: x.example.com\r\nAccept: */*\r\n\r\n", true},
		{"POST /api/v1/items HTTP/1.1\r\nX-Token: secret\r\nContent-Length: 0\r\n\r\n", true},
		{"GET /admin HTTP/1.1\r\nHost: x.example.com\r\nAccept: */*\r\n\r\n", false},
	} {
		for k := 1; k < len(tc.head); k++ {
			c, br := e.dial(t)
			if _, err := io.WriteString(c, tc.head[:k]); err != nil {
				t.Fatal(err)
			}
			if _, err := io.WriteString(c, tc.head[k:]); err != nil {
				t.Fatal(err)
			}
			want := tc.head
			if !tc.allowed {
				want = ""
				if resp, _ := readResponse(t, br); resp.StatusCode != 403 {
					t.Fatalf("split at %d: %d", k, resp.StatusCode)
				}
				if x := nextEvent(t, ev); x.Reason != ReasonDenied {
					t.Fatalf("split at %d: %v", k, x)
				}
			}
			if got := e.finish(t, c); got != want {
				t.Fatalf("%q split at %d: server read %q", tc.head, k, got)
			}
			// the prefix alone is held, never passed
			c, _ = e.dial(t)
			if _, err := io.WriteString(c, tc.head[:k]); err != nil {
				t.Fatal(err)
			}
			if got := e.finish(t, c); got != "" {
				t.Fatalf("prefix %q: server read %q", tc.head[:k], got)
			}
		}
	}
}
