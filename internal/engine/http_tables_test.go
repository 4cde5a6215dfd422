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

package engine

import (
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/palisade-dev/palisade/api/v1alpha1"
)

// Pieces the random rules and requests are built from; requests are built
// from the same pieces so that rules match often enough to matter.
var (
	httpTestPaths = []string{
		"/", "/api/v1/users", "/api/v[12]/.*", "/public/.*", "/a+b?", "/(foo|bar)/[0-9]+",
		"/items/[^/]+/edit", "/x.y", "/[a-z]*", "/API/(?i:case)", "/(a|ab)(c|bcd)", ".*", "/\\.well-known/.*",
		"/q\\?x=1", "/[[:alpha:]]{2,3}", "/e\\z", "/u\\d+",
	}
	httpTestPathInputs = []string{
		"/", "/api/v1/users", "/api/v2/x", "/api/v3/x", "/public/", "/public/a/b", "/ab", "/aab", "/a",
		"/foo/12", "/bar/", "/items/7/edit", "/items//edit", "/x.y", "/xzy", "/abc", "/API/CaSe", "/api/case",
		"/abcd", "/.well-known/acme", "/q?x=1", "/ab1", "/abcd", "/e", "/u42", "/u", "", "/api/v1/users?x=1",
		"/public/\x7f", "/pub lic/", "/é",
	}
	httpTestHosts      = []string{"example.com", "*.example.com", "API.example.com", "*.b.c", "localhost:8080", "*.x"}
	httpTestHostInputs = []string{"example.com", "EXAMPLE.com", "a.example.com", "a.b.example.com", ".example.com",
		"api.example.com", "b.c", "a.b.c", "localhost:8080", "localhost", "x", "y.x", "", "a.example.comm", "\x80.x"}
	httpTestHeaders      = []string{"X-Token", "X-Token: secret", "x-token: Secret", "Accept: */*", "X-Empty:", "X-Empty: ", "X-Sp: a b"}
	httpTestHeaderInputs = [][2]string{{"X-Token", "secret"}, {"x-token", "Secret"}, {"X-TOKEN", ""}, {"Accept", "*/*"},
		{"accept", "text/html"}, {"X-Empty", ""}, {"X-Sp", "a b"}, {"X-Other", "1"}}
	httpTestMethods = []string{"", "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"}
)

func randomHTTPRule(r *rand.Rand) v1alpha1.HTTPRule {
	var h v1alpha1.HTTPRule
	if r.IntN(2) == 0 {
		h.Method = v1alpha1.HTTPMethod(httpTestMethods[r.IntN(len(httpTestMethods))])
	}
	if r.IntN(3) > 0 {
		h.Path = httpTestPaths[r.IntN(len(httpTestPaths))]
	}
	if r.IntN(3) == 0 {
		h.Host = httpTestHosts[r.IntN(len(httpTestHosts))]
	}
	for range r.IntN(3) {
		h.Headers = append(h.Headers, v1alpha1.HTTPHeader(httpTestHeaders[r.IntN(len(httpTestHeaders))]))
	}
	return h
}

func randomHTTPRequest(r *rand.Rand) *HTTPRequest {
	q := &HTTPRequest{
		Method:  []string{"GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH", "PROPFIND", "get"}[r.IntN(11)],
		Path:    httpTestPathInputs[r.IntN(len(httpTestPathInputs))],
		Host:    httpTestHostInputs[r.IntN(len(httpTestHostInputs))],
		Headers: map[string]string{},
	}
	if r.IntN(4) == 0 { // a path of random ASCII bytes
		var b strings.Builder
		b.WriteByte('/')
		for range r.IntN(12) {
			b.WriteByte(byte(0x21 + r.IntN(0x5e)))
		}
		q.Path = b.String()
	}
	used := map[string]bool{}
	for range r.IntN(4) {
		h := httpTestHeaderInputs[r.IntN(len(httpTestHeaderInputs))]
		if used[strings.ToLower(h[0])] { // a request carries each header once
			continue
		}
		used[strings.ToLower(h[0])] = true
		q.Headers[h[0]] = h[1]
	}
	return q
}

// TestHTTPTablesMatchReference checks, for seeded random lists and
// requests, that every rule's bit in the tables' mask equals matchHTTP and
// that the tables' decision equals decideL7 in both views.
func TestHTTPTablesMatchReference(t *testing.T) {
	const seed, lists, requests = 14, 300, 200
	r := rand.New(rand.NewPCG(seed, seed))
	checked := 0
	for li := range lists {
		var list L7List
		var flat []v1alpha1.HTTPRule
		for a := range 1 + r.IntN(4) {
			al := L7Allow{Rule: RuleID(10*a + 1 + r.IntN(9)), Audit: r.IntN(4) == 0}
			switch r.IntN(8) {
			case 0: // allows every request
			case 1:
				al.Rules = &v1alpha1.L7Rules{DNS: []v1alpha1.DNSRule{{MatchName: "x.com"}}}
			default:
				al.Rules = &v1alpha1.L7Rules{}
				for range 1 + r.IntN(5) {
					al.Rules.HTTP = append(al.Rules.HTTP, randomHTTPRule(r))
				}
				flat = append(flat, al.Rules.HTTP...)
			}
			list = append(list, al)
		}
		l, err := CompileHTTPList(list)
		if err != nil {
			t.Fatalf("list %d: %v", li, err)
		}
		if l.Rules != len(flat) {
			t.Fatalf("list %d: %d rules compiled, want %d", li, l.Rules, len(flat))
		}
		for range requests {
			q := randomHTTPRequest(r)
			m := l.HTTPRequestMask(q)
			// A target with a byte >= 0x80 matches no path pattern in the
			// kernel (docs/l7.md): the tables may only be stricter there.
			stricter := !isASCII(q.Path)
			for i, rule := range flat {
				got, want := m.has(i), matchHTTP(rule, q)
				if stricter && rule.Path != "" {
					want = false
				}
				if got != want {
					t.Fatalf("list %d rule %d %+v, request %+v: tables say %v, matchHTTP %v", li, i, rule, q, got, want)
				}
			}
			for _, audit := range []bool{false, true} {
				gotOK, gotRule := l.Decide(q, audit)
				wantV, _, wantRule := decideL7([]L7List{list}, false, 0, &Request{HTTP: q}, audit)
				hasEnforcing := false
				for _, a := range list {
					hasEnforcing = hasEnforcing || !a.Audit || audit
				}
				if !hasEnforcing {
					wantV, wantRule = VerdictAllow, 0
				}
				if stricter {
					if gotOK && wantV != VerdictAllow {
						t.Fatalf("list %d %+v, request %+v, audit %v: tables allow what decideL7 refuses", li, list, q, audit)
					}
					continue
				}
				if gotOK != (wantV == VerdictAllow) || gotRule != wantRule {
					t.Fatalf("list %d %+v, request %+v, audit %v: tables (%v, %d), decideL7 (%v, %d)", li, list, q, audit, gotOK, gotRule, wantV, wantRule)
				}
			}
			checked++
		}
	}
	t.Logf("seed %d: %d lists, %d requests checked", seed, lists, checked)
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

func TestHTTPTablesRefuse(t *testing.T) {
	for _, tc := range []struct {
		name string
		rule v1alpha1.HTTPRule
		want string
	}{
		{"word boundary", v1alpha1.HTTPRule{Path: `/a\b`}, "word boundaries"},
		{"multi-line", v1alpha1.HTTPRule{Path: `(?m)^/a$`}, "multi-line"},
		{"bad regexp", v1alpha1.HTTPRule{Path: `/(`}, "missing closing )"},
		{"non-ASCII host", v1alpha1.HTTPRule{Host: "bücher.example"}, "only ASCII hosts"},
		{"state explosion", v1alpha1.HTTPRule{Path: `.*a.{13}`}, "states"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := CompileHTTPList(L7List{{Rule: 7, Rules: &v1alpha1.L7Rules{HTTP: []v1alpha1.HTTPRule{tc.rule}}}})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want one containing %q", err, tc.want)
			}
			if !strings.Contains(err.Error(), "rule 7") && !strings.Contains(err.Error(), "path") {
				t.Fatalf("err %q does not say where", err)
			}
		})
	}
}

func TestHTTPTablesClasses(t *testing.T) {
	l, err := CompileHTTPList(L7List{{Rule: 1, Rules: &v1alpha1.L7Rules{HTTP: []v1alpha1.HTTPRule{{Path: "/api/[0-9]+"}}}}})
	if err != nil {
		t.Fatal(err)
	}
	if l.Path.NumClasses > 8 {
		t.Errorf("%d byte classes for /api/[0-9]+, want few", l.Path.NumClasses)
	}
	for _, p := range []string{"/api/1", "/api/123"} {
		if !l.Path.Run(p).has(0) {
			t.Errorf("%q does not match", p)
		}
	}
	for _, p := range []string{"/api/", "/api/1a", "/api/1\x80"} {
		if l.Path.Run(p).has(0) {
			t.Errorf("%q matches", p)
		}
	}
}
