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

package l7bench

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/palisade-dev/palisade/internal/engine"
)

// httpRequest parses a raw request into the engine's form.
func httpRequest(t *testing.T, raw string) *engine.HTTPRequest {
	t.Helper()
	r, err := http.ReadRequest(bufio.NewReader(strings.NewReader(raw)))
	if err != nil {
		t.Fatalf("parse %q: %v", raw, err)
	}
	q := &engine.HTTPRequest{Method: r.Method, Path: r.URL.RequestURI(), Host: r.Host, Headers: map[string]string{}}
	for k, v := range r.Header {
		q.Headers[k] = v[0]
	}
	return q
}

// TestRules: the benchmark's lists compile for the kernel up to its
// per-list limit, the request is admitted by the last rule only, by the
// engine and by the kernel tables' decision alike, and the probe is
// refused.
func TestRules(t *testing.T) {
	for _, n := range []int{1, 10, 100, engine.HTTPMaxRules} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			list := Rules(n)
			if got := len(list); got != (n+RulesPerAllow-1)/RulesPerAllow {
				t.Fatalf("%d allows", got)
			}
			hl, err := engine.CompileHTTPList(list)
			if err != nil {
				t.Fatalf("compile: %v", err)
			}
			if hl.Rules != n {
				t.Fatalf("compiled %d rules, want %d", hl.Rules, n)
			}
			last := list[len(list)-1].Rule
			q := httpRequest(t, Request(n))
			if ok, rule := Decide(list, q); !ok || rule != last {
				t.Fatalf("Decide(request) = %v, %d; want allowed by %d", ok, rule, last)
			}
			if ok, rule := hl.Decide(q, false); !ok || rule != last {
				t.Fatalf("tables decide request = %v, %d; want allowed by %d", ok, rule, last)
			}
			// Only the last HTTP rule admits it.
			if m := hl.HTTPRequestMask(q); m != (engine.HTTPMask{}) {
				var set []int
				for i := 0; i < n; i++ {
					if m[i/64]&(1<<(i%64)) != 0 {
						set = append(set, i)
					}
				}
				if !slices.Equal(set, []int{n - 1}) {
					t.Fatalf("request matches rules %v, want only %d", set, n-1)
				}
			}
			p := httpRequest(t, Refused(n))
			if ok, rule := Decide(list, p); ok || rule != FirstRule {
				t.Fatalf("Decide(refused) = %v, %d; want refused by %d", ok, rule, FirstRule)
			}
			if ok, _ := hl.Decide(p, false); ok {
				t.Fatal("tables admit the refused probe")
			}
		})
	}
	// Past the kernel's per-list limit the compiler refuses the list.
	_, err := engine.CompileHTTPList(Rules(1000))
	if err == nil || !strings.Contains(err.Error(), "HTTP rules at one point") {
		t.Fatalf("1000 rules in one list: %v, want the per-list limit", err)
	}
}

// TestDecideAudit: audit-mode allows do not restrict.
func TestDecideAudit(t *testing.T) {
	list := Rules(3)
	list[0].Audit = true
	if ok, _ := Decide(list, httpRequest(t, Refused(3))); !ok {
		t.Fatal("a list of audit-mode allows only refused a request")
	}
}

// upstream is an HTTP server on loopback that records the paths it
// handled.
func upstream(t *testing.T) (*httptest.Server, func() []string) {
	var mu sync.Mutex
	var seen []string
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = append(seen, r.Host+" "+r.URL.RequestURI())
		mu.Unlock()
		w.Write([]byte("ok"))
	}))
	t.Cleanup(s.Close)
	return s, func() []string { mu.Lock(); defer mu.Unlock(); return slices.Clone(seen) }
}

func dialer(addr string) func() (net.Conn, error) {
	return func() (net.Conn, error) { return net.Dial("tcp", addr) }
}

// TestProxy: the proxy forwards an admitted request with its Host and
// answers a refused one 403 itself, on the same keep-alive client
// connection as the load generator uses.
func TestProxy(t *testing.T) {
	up, seen := upstream(t)
	u, _ := url.Parse(up.URL)
	p := NewProxy(u, Rules(10), nil)
	defer p.Close()
	ps := httptest.NewServer(p)
	defer ps.Close()
	nc, err := net.Dial("tcp", ps.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	allowed := NewConn(nc, Request(10))
	defer allowed.Close()
	for i := range 3 {
		if status, err := allowed.Do(); err != nil || status != 200 {
			t.Fatalf("allowed request %d: %d, %v", i, status, err)
		}
	}
	nc, err = net.Dial("tcp", ps.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	refused := NewConn(nc, Refused(10))
	defer refused.Close()
	if status, err := refused.Do(); err != nil || status != 403 {
		t.Fatalf("refused request: %d, %v", status, err)
	}
	want := slices.Repeat([]string{"svc9.internal /api/v1/svc9/items/42"}, 3)
	if got := seen(); !slices.Equal(got, want) {
		t.Fatalf("upstream handled %q, want %q", got, want)
	}
	if f, r := p.Counts(); f != 3 || r != 1 {
		t.Fatalf("proxy counts forwarded %d refused %d", f, r)
	}
}

// TestLoad runs the load generator against a loopback server: it counts
// requests, and fails on an answer other than 200.
func TestLoad(t *testing.T) {
	up, _ := upstream(t)
	addr := up.Listener.Addr().String()
	s, err := Saturate(dialer(addr), "GET /x HTTP/1.1\r\nHost: a\r\n\r\n", 4, 10*time.Millisecond, 50*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	if s.Requests == 0 || s.PerSecond() <= 0 || s.Total < s.Requests || s.CPU <= 0 || s.CPUPerRequest() <= 0 {
		t.Fatalf("no requests counted: %+v", s)
	}
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	c := NewConn(nc, "GET /x HTTP/1.1\r\nHost: a\r\n\r\n")
	defer c.Close()
	rtts, err := Latencies(c, 5, 50)
	if err != nil {
		t.Fatal(err)
	}
	if len(rtts) != 50 || !slices.IsSorted(rtts) || Percentile(rtts, 50) > Percentile(rtts, 99) {
		t.Fatalf("latencies %v", rtts)
	}
	// A 404 is a failure of the run, not a request.
	_, err = Saturate(dialer(ps404(t)), "GET /x HTTP/1.1\r\nHost: a\r\n\r\n", 2, 0, 20*time.Millisecond)
	if err == nil || !strings.Contains(err.Error(), "status 404") {
		t.Fatalf("saturating a 404: %v", err)
	}
	// Connection: close ends the run with ErrClosed.
	cl := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Connection", "close")
	}))
	defer cl.Close()
	_, err = Saturate(dialer(cl.Listener.Addr().String()), "GET /x HTTP/1.1\r\nHost: a\r\n\r\n", 1, 0, time.Second)
	if !errors.Is(err, ErrClosed) {
		t.Fatalf("saturating a closing server: %v", err)
	}
}

func ps404(t *testing.T) string {
	s := httptest.NewServer(http.NotFoundHandler())
	t.Cleanup(s.Close)
	return s.Listener.Addr().String()
}

func TestPercentile(t *testing.T) {
	var d []time.Duration
	for i := 1; i <= 100; i++ {
		d = append(d, time.Duration(i))
	}
	for _, c := range []struct {
		p    float64
		want time.Duration
	}{{50, 50}, {99, 99}, {100, 100}, {1, 1}, {0.5, 1}} {
		if got := Percentile(d, c.p); got != c.want {
			t.Errorf("p%v = %v, want %v", c.p, got, c.want)
		}
	}
	if Percentile(nil, 50) != 0 {
		t.Error("percentile of nothing")
	}
}
