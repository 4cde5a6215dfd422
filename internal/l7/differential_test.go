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
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/palisade-dev/palisade/api/v1alpha1"
	l7bpf "github.com/palisade-dev/palisade/bpf/l7"
	"github.com/palisade-dev/palisade/internal/engine"
)

var (
	diffPaths = []string{"/", "/api/v1/users", "/api/v[12]/.*", "/public/.*", "/a+b?", "/(foo|bar)/[0-9]+",
		"/items/[^/]+/edit", "/x.y", "/[a-z]*", "/API/(?i:case)", ".*", "/q\\?x=1", "/u\\d+"}
	diffPathInputs = []string{"/", "/api/v1/users", "/api/v2/x", "/api/v3/x", "/public/", "/public/a/b", "/ab", "/a",
		"/foo/12", "/bar/", "/items/7/edit", "/items//edit", "/x.y", "/xzy", "/abc", "/API/CaSe", "/q?x=1", "/u42"}
	diffHosts      = []string{"example.com", "*.example.com", "API.example.com", "*.b.c", "localhost:8080"}
	diffHostInputs = []string{"example.com", "EXAMPLE.com", "a.example.com", "a.b.example.com", ".example.com",
		"api.example.com", "b.c", "a.b.c", "localhost:8080", "localhost", "a.example.comm", "\x80.b.c", "a b.c"}
	diffHeaders      = []string{"X-Token", "X-Token: secret", "x-token: Secret", "Accept: */*", "X-Empty:", "X-Sp: a b"}
	diffHeaderInputs = [][2]string{{"X-Token", "secret"}, {"x-token", "Secret"}, {"X-TOKEN", ""}, {"Accept", "*/*"},
		{"accept", "text/html"}, {"X-Empty", ""}, {"X-Sp", "a b"}, {"X-Other", "1"}}
	diffMethods = []string{"GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH", "PROPFIND", "get"}
)

func diffRule(r *rand.Rand) v1alpha1.HTTPRule {
	var h v1alpha1.HTTPRule
	if r.IntN(2) == 0 {
		h.Method = v1alpha1.HTTPMethod(diffMethods[r.IntN(9)])
	}
	if r.IntN(3) > 0 {
		h.Path = diffPaths[r.IntN(len(diffPaths))]
	}
	if r.IntN(3) == 0 {
		h.Host = diffHosts[r.IntN(len(diffHosts))]
	}
	for range r.IntN(3) {
		h.Headers = append(h.Headers, v1alpha1.HTTPHeader(diffHeaders[r.IntN(len(diffHeaders))]))
	}
	return h
}

// diffRequest returns a request and its head on the wire.
func diffRequest(r *rand.Rand) (*engine.HTTPRequest, string) {
	q := &engine.HTTPRequest{Method: diffMethods[r.IntN(len(diffMethods))], Path: diffPathInputs[r.IntN(len(diffPathInputs))], Headers: map[string]string{}}
	if r.IntN(4) == 0 {
		var b strings.Builder
		b.WriteByte('/')
		for range r.IntN(12) {
			if r.IntN(4) == 0 { // pieces of what the kernel refuses in a path
				b.WriteString([]string{"/", ".", "..", "%2", "%2e", "%2F", "%5c", "\\", "?"}[r.IntN(9)])
				continue
			}
			b.WriteByte(byte(0x21 + r.IntN(0x5e))) // visible ASCII
		}
		q.Path = b.String()
	}
	var head strings.Builder
	head.WriteString(q.Method + " " + q.Path + " HTTP/1.1\r\n")
	if r.IntN(5) > 0 {
		q.Host = diffHostInputs[r.IntN(len(diffHostInputs))]
		head.WriteString("Host: " + q.Host + "\r\n")
	}
	used := map[string]bool{"host": true}
	for range r.IntN(4) {
		h := diffHeaderInputs[r.IntN(len(diffHeaderInputs))]
		if used[strings.ToLower(h[0])] {
			continue
		}
		used[strings.ToLower(h[0])] = true
		q.Headers[h[0]] = h[1]
		head.WriteString(h[0] + ":" + strings.Repeat(" ", r.IntN(3)) + h[1] + strings.Repeat(" ", r.IntN(2)) + "\r\n")
	}
	head.WriteString("\r\n")
	return q, head.String()
}

// unsafeTarget says what the kernel refuses in a path: a "." or ".."
// segment, %2e, %2f or %5c (any case), or a backslash, before the query.
func unsafeTarget(target string) bool {
	path, _, _ := strings.Cut(target, "?")
	low := strings.ToLower(path)
	if strings.ContainsRune(path, '\\') || strings.Contains(low, "%2e") || strings.Contains(low, "%2f") || strings.Contains(low, "%5c") {
		return true
	}
	for _, seg := range strings.Split(path, "/")[1:] {
		if seg == "." || seg == ".." {
			return true
		}
	}
	return false
}

// reference decides a request against one list with engine.MatchL7, as
// the kernel is meant to: the enforcing allows decide; a list with none
// only audits.
func reference(list engine.L7List, q *engine.HTTPRequest) (Reason, uint32) {
	req := &engine.Request{HTTP: q}
	var enforced, restricting, full engine.RuleID
	seen := false
	for _, a := range list {
		ok := a.Rules == nil || engine.MatchL7(a.Rules, req)
		if ok && full == 0 {
			full = a.Rule
		}
		if a.Audit {
			continue
		}
		seen = true
		if ok && enforced == 0 {
			enforced = a.Rule
		}
		if !ok && restricting == 0 {
			restricting = a.Rule
		}
	}
	switch {
	case seen && enforced == 0:
		return ReasonDenied, uint32(restricting)
	case full == 0:
		return ReasonAudit, 0
	case seen:
		return ReasonAllowed, uint32(enforced)
	}
	return ReasonAllowed, uint32(full)
}

// TestKernelMatchesEngine decides seeded random requests against seeded
// random lists in the kernel (BPF_PROG_TEST_RUN of the parser over the
// request's head) and with engine.MatchL7, and requires the same verdict
// and deciding rule for every request.
func TestKernelMatchesEngine(t *testing.T) {
	const seed, nlists, perList = 14, 100, 500
	d := requireKernel(t)
	r := rand.New(rand.NewPCG(seed, seed))
	lists := map[engine.L7ID]engine.L7List{}
	for i := range nlists {
		var list engine.L7List
		for a := range 1 + r.IntN(4) {
			al := engine.L7Allow{Rule: engine.RuleID(100*i + 10*a + 1 + r.IntN(9)), Audit: r.IntN(5) == 0}
			switch r.IntN(8) {
			case 0:
			case 1:
				al.Rules = &v1alpha1.L7Rules{DNS: []v1alpha1.DNSRule{{MatchName: "x.com"}}}
			default:
				al.Rules = &v1alpha1.L7Rules{}
				for range 1 + r.IntN(5) {
					al.Rules.HTTP = append(al.Rules.HTTP, diffRule(r))
				}
			}
			list = append(list, al)
		}
		lists[engine.L7ID(1000+i)] = list
	}
	tables, err := engine.CompileHTTP(lists)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Apply(1, tables, nil); err != nil {
		t.Fatal(err)
	}
	counts := map[Reason]int{}
	for i := range nlists {
		id := engine.L7ID(1000 + i)
		for range perList {
			q, head := diffRequest(r)
			got := parse(t, d, l7bpf.L7L7Sock{}, uint32(id), []byte(head))
			if unsafeTarget(q.Path) { // refused whatever the rules say
				if got.Kind != uint8(kRefuse) || Reason(got.Reason) != ReasonTarget {
					t.Fatalf("%q: kind %d %v, want refused (target)", head, got.Kind, Reason(got.Reason))
				}
				counts[ReasonTarget]++
				continue
			}
			if q.Method == "CONNECT" { // a tunnel is refused whatever the rules say
				if got.Kind != uint8(kRefuse) || Reason(got.Reason) != ReasonUpgrade {
					t.Fatalf("%q: kind %d %v, want refused (upgrade)", head, got.Kind, Reason(got.Reason))
				}
				counts[ReasonUpgrade]++
				continue
			}
			if got.Kind != uint8(kRequest) || int(got.Len) != len(head) {
				t.Fatalf("list %d, %q: kind %d %v len %d", id, head, got.Kind, Reason(got.Reason), got.Len)
			}
			want, wantRule := reference(lists[id], q)
			if Reason(got.Reason) != want || got.Rule != wantRule {
				t.Fatalf("list %d %+v\n%q: kernel %v rule %d, engine %v rule %d", id, lists[id], head, Reason(got.Reason), got.Rule, want, wantRule)
			}
			counts[want]++
		}
	}
	t.Logf("seed %d: %d lists, %d requests: %v", seed, nlists, nlists*perList, counts)
}
