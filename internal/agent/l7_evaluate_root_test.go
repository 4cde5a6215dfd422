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

package agent

// The L7 differential test end to end: seeded random policy sets go
// through the agent's l7 subsystem into the REAL bpf/l7 datapath (sockops
// attached to a pod cgroup this test makes under the machine's cgroup v2
// hierarchy, holding the server's listening sockets), real requests are
// sent over loopback from the peers' addresses, and the kernel's answer
// for every request is compared with engine.Evaluate over the same
// policies and cluster.

import (
	"errors"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/palisade-dev/palisade/internal/engine"
	"github.com/palisade-dev/palisade/internal/l7"
)

// The seed of TestL7KernelMatchesEvaluate; PALISADE_L7_EVAL_SEED picks
// another.
const evalSeedDefault = 14

// evalPorts are the server's ports: the policies' "80", "81", the range
// "8000-8003" (both ends listened on) and a port just outside it.
var evalPorts = evalPortSet{28080, 28081, 28100, 28103, 28104}

// evalPortSet is a server's ports: the policies' "80", "81", the range
// "8000-8003" (both ends) and a port just outside it.
type evalPortSet struct{ p80, p81, lo, hi, out uint16 }

// evalServer is a net/http server on every port of evalPorts at one
// address, whose listening sockets were made inside a pod cgroup; it
// records the requests its handler ran for.
type evalServer struct {
	mu   sync.Mutex
	seen []string
}

func (s *evalServer) log() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.seen
}

// startEvalServer makes the test's cgroup root <v2>/palisade-l7eval-*
// with kubepods/pod<uid> in it, listens on addr at every port of
// evalPorts from inside that cgroup (the process enters it for the
// listens only) and serves. It returns the root (the agent's CgroupRoot).
func startEvalServer(t *testing.T, addr netip.Addr, uid string) (string, *evalServer) {
	t.Helper()
	root, pod := evalPodCgroup(t, "palisade-l7eval", uid)
	var lns []net.Listener
	var lerr error
	evalInCgroup(t, pod, func() {
		for _, p := range []uint16{evalPorts.p80, evalPorts.p81, evalPorts.lo, evalPorts.hi, evalPorts.out} {
			ln, err := net.Listen("tcp4", netip.AddrPortFrom(addr, p).String())
			if err != nil {
				lerr = err
				return
			}
			lns = append(lns, ln)
		}
	})
	s := &evalServer{}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		s.mu.Lock()
		s.seen = append(s.seen, r.Method+" "+r.URL.RequestURI())
		s.mu.Unlock()
		fmt.Fprintf(w, "ok %s", r.URL.Path)
	})}
	for _, ln := range lns {
		go srv.Serve(ln)
	}
	t.Cleanup(func() {
		srv.Close()
		for _, ln := range lns {
			ln.Close()
		}
	})
	if lerr != nil {
		t.Fatalf("listen: %v", lerr)
	}
	return root, s
}

// evalRequest is a random request: its engine form and its head on the
// wire.
type evalRequest struct {
	q    *engine.HTTPRequest
	head string
}

var (
	evalMethods = []string{"GET", "GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"}
	evalPaths   = []string{"/", "/public", "/public/x", "/public/a/b", "/private", "/orders", "/orders/1", "/r/42", "/r/x", "/r/", "/health", "/audit", "/Public/x"}
	evalHosts   = []string{"api", "example.com", "a.example.com", "b.a.example.com", "A.Example.COM", "a.example.comm"}
	evalHeaders = [][2]string{{"X-Token", "abc"}, {"x-token", "abc"}, {"X-TOKEN", "xyz"}, {"X-Token", ""}, {"Accept", "*/*"}, {"X-Other", "1"}}
)

func evalRandomRequest(r *mrand.Rand) evalRequest {
	q := &engine.HTTPRequest{Method: evalMethods[r.IntN(len(evalMethods))], Path: evalPaths[r.IntN(len(evalPaths))], Headers: map[string]string{}}
	if r.IntN(4) == 0 { // a random tail: digits, letters, a query
		var b strings.Builder
		b.WriteString(q.Path)
		for range 1 + r.IntN(6) {
			b.WriteByte("abz09/_-"[r.IntN(8)])
		}
		if r.IntN(3) == 0 {
			b.WriteString("?q=1")
		}
		q.Path = b.String()
	}
	q.Host = evalHosts[r.IntN(len(evalHosts))]
	var head strings.Builder
	head.WriteString(q.Method + " " + q.Path + " HTTP/1.1\r\nHost: " + q.Host + "\r\n")
	used := map[string]bool{}
	for range r.IntN(3) {
		h := evalHeaders[r.IntN(len(evalHeaders))]
		if used[strings.ToLower(h[0])] {
			continue
		}
		used[strings.ToLower(h[0])] = true
		q.Headers[h[0]] = h[1]
		head.WriteString(h[0] + ": " + h[1] + "\r\n")
	}
	head.WriteString("User-Agent: palisade-l7eval\r\n\r\n")
	return evalRequest{q: q, head: head.String()}
}

// evalPolicy is a random ingress policy on api, in the style of
// TestL7DecidesAsTheEngineRandom (peers: one app, every endpoint, every
// entity, world, a CIDR; ports: one, a range, any protocol; HTTP rules or
// none; audit mode; deny rules).
func evalPolicy(r *mrand.Rand) string {
	return evalHTTPPolicy(r, "ingress", evalPorts, []string{`fromEndpoints: [{matchLabels: {app: frontend}}]`, `fromEndpoints: [{matchLabels: {app: monitor}}]`,
		`fromEndpoints: [{}]`, `fromEntities: [all]`, `fromEntities: [world]`, `fromCIDR: [127.0.3.0/25]`})
}

// evalHTTPPolicy is a random policy on api with dir ("ingress" or
// "egress") rules, and deny rules in one set in five, to or from one of
// peers on ports of p (one, another, the range, any protocol), with HTTP
// rules or none, in audit mode in one set in four.
func evalHTTPPolicy(r *mrand.Rand, dir string, p evalPortSet, peers []string) string {
	ports := []string{fmt.Sprintf(`{port: "%d", protocol: TCP}`, p.p80), fmt.Sprintf(`{port: "%d", protocol: TCP}`, p.p81),
		fmt.Sprintf(`{port: "%d", endPort: %d, protocol: TCP}`, p.lo, p.hi), fmt.Sprintf(`{port: "%d", protocol: ANY}`, p.p80)}
	rules := []string{``, `{method: GET}`, `{method: GET, path: "/public.*"}`, `{path: "/r/[0-9]+"}`,
		`{method: POST, path: /orders, headers: ["X-Token: abc"]}`, `{host: "*.example.com"}`, `{method: PUT, path: "/orders(/.*)?"}`,
		`{headers: ["X-Token"]}`, `{method: DELETE, host: "a.example.com"}`, `{path: "/health"}`}
	var b strings.Builder
	b.WriteString("endpointSelector: {matchLabels: {app: api}}\n")
	if r.IntN(4) == 0 {
		b.WriteString("mode: audit\n")
	}
	if r.IntN(5) == 0 {
		fmt.Fprintf(&b, "%sDeny:\n- %s\n  toPorts: [{ports: [%s]}]\n", dir, peers[r.IntN(len(peers))], ports[r.IntN(3)])
	}
	b.WriteString(dir + ":\n")
	for range 1 + r.IntN(3) {
		port := ports[r.IntN(len(ports))]
		var http []string
		for range r.IntN(4) {
			if x := rules[r.IntN(len(rules))]; x != "" {
				http = append(http, x)
			}
		}
		rl := ""
		if len(http) > 0 && !strings.Contains(port, "ANY") {
			rl = ", rules: {http: [" + strings.Join(http, ", ") + "]}"
		}
		fmt.Fprintf(&b, "- %s\n  toPorts: [{ports: [%s]%s}]\n", peers[r.IntN(len(peers))], port, rl)
	}
	return b.String()
}

// TestL7KernelMatchesEvaluate runs seeded random policy sets with ingress
// HTTP rules on api through the agent's l7 subsystem into the real L7
// datapath, sends real requests to api's server from its peers (apps,
// world, a CIDR, all on loopback) and requires, for every request the
// L3/L4 rules let through, that the kernel allows exactly when
// engine.Evaluate's ingress side (and its combined verdict: the peers
// have no egress policy) does not deny: an allowed request gets the
// server's answer and is in the server's log, a refused one gets 403,
// never reaches the server, and the kernel's event for it names the rule
// engine.Evaluate names. At least 100 sets and 50,000 requests, on
// keep-alive connections (a new one after each refusal); seed 14, or
// PALISADE_L7_EVAL_SEED. A request the kernel holds is logged (see
// stallAfter).
func TestL7KernelMatchesEvaluate(t *testing.T) {
	evalNeeds(t, "bpf/l7", func() (io.Closer, error) { return l7.Load() })
	seed := evalSeed(t, "PALISADE_L7_EVAL_SEED", evalSeedDefault)

	const sets, perSet, minRequests = 100, 500, 50000
	api := netip.MustParseAddr("127.0.2.2")
	apiUID := "00000000-0000-4000-8000-000000000002" // podUID's for ifindex 2
	root, srv := startEvalServer(t, api, apiUID)
	// The peers: the apps' pods, an address of the CIDR, and world.
	remotes := []netip.Addr{netip.MustParseAddr("127.0.2.3"), netip.MustParseAddr("127.0.2.4"), netip.MustParseAddr("127.0.2.5"),
		netip.MustParseAddr("127.0.3.1"), netip.MustParseAddr("127.0.3.200")}
	ports := []uint16{evalPorts.p80, evalPorts.p81, evalPorts.lo, evalPorts.hi, evalPorts.out}

	var dp *l7.Datapath
	run := newEvalRun(t, seed, evalWorkload{
		name: "api", addr: api, uid: apiUID, root: root,
		apps: []string{"frontend", "monitor", "blocked"}, appAddrs: remotes[:3],
		policy: evalPolicy,
		attach: func(f *l7Fixture, set int) {
			var err error
			if dp, err = l7.Load(); err != nil {
				t.Fatalf("set %d: l7.Load: %v", set, err)
			}
			f.a.L7 = dp
		},
	})
	set := run.each(sets, minRequests, func(s *evalSet) {
		s.onClose(dp.Close)
		in, set, describe := s.in, s.n, s.describe
		events, evErrs, err := dp.Events(s.ctx)
		if err != nil {
			t.Fatalf("set %d: %v", set, err)
		}
		// refusal waits for the kernel's event of the request refused on
		// the connection from local.
		refusal := func(local netip.AddrPort) (l7.Event, error) {
			return evalRefusal(events, evErrs, local, func(e l7.Event) bool { return e.Remote == local && !e.Allowed() })
		}
		// The (peer, port) pairs whose packets L3/L4 lets through: the
		// requests of the others never reach a socket.
		s.pairsOf(remotes, ports, func(peer netip.Addr, port uint16) bool {
			return engine.Evaluate(in.ir, in.cluster, engine.Flow{Src: peer, Dst: api, Proto: engine.ProtoTCP, Port: port}).Ingress.Verdict == engine.VerdictDeny
		})
		for {
			key, ok := s.pick(perSet)
			if !ok {
				break
			}
			peer, port := remotes[key[0]], ports[key[1]]
			flow := engine.Flow{Src: peer, Dst: api, Proto: engine.ProtoTCP, Port: port}
			req := evalRandomRequest(s.r)
			flow.Request = &engine.Request{HTTP: req.q}
			res := engine.Evaluate(in.ir, in.cluster, flow)
			if res.Egress.Verdict == engine.VerdictDeny {
				t.Fatalf("%s\n%+v: the egress side denies (%s): the peers have no egress policy", describe(), flow, res.Egress.Reason)
			}
			wantAllowed := res.Ingress.Verdict != engine.VerdictDeny
			if wantAllowed != (res.Verdict != engine.VerdictDeny) {
				t.Fatalf("%s\n%+v: ingress %s, combined %s", describe(), flow, res.Ingress.Verdict, res.Verdict)
			}

			c := s.conn(key, func() (net.Conn, error) { return evalDialFrom(peer, netip.AddrPortFrom(api, port)) })
			before := len(srv.log())
			held := false
			c.c.SetDeadline(time.Now().Add(stallAfter))
			if _, err := io.WriteString(c.c, req.head); err != nil {
				t.Fatalf("set %d: write %q from %s to %d: %v", set, req.head, peer, port, err)
			}
			resp, err := http.ReadResponse(c.br, nil)
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				// No answer and no refusal: the kernel holds the request
				// (see stallAfter). The client's FIN releases it; its
				// verdict is then checked as any other's.
				cnt, _ := dp.Counters()
				s.hold(c, fmt.Sprintf("seed %d set %d: %s -> %d %q (request %d on its connection, after %q; engine %s; kernel counters %v, server log +%d)",
					seed, set, peer, port, req.head, len(c.sent)+1, c.sent, res.Ingress.Verdict, cnt, len(srv.log())-before))
				held = true
				resp, err = http.ReadResponse(c.br, nil)
				if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
					// Released by the FIN and refused, the connection
					// ends without the 403: the kernel's event says it
					// refused, and the server never saw it.
					e, eerr := refusal(c.local())
					if eerr != nil || wantAllowed || len(srv.log()) != before || res.Ingress.Rule == nil || e.Rule != uint32(res.Ingress.Rule.ID) {
						t.Fatalf("%s\n%s -> %d %q: held, then the connection ended without an answer (%v); kernel event %v (%v), server log +%d; engine.Evaluate: %s %s rule %+v",
							describe(), peer, port, req.head, err, e, eerr, len(srv.log())-before, res.Ingress.Verdict, res.Ingress.Reason, res.Ingress.Rule)
					}
					s.held(fmt.Sprintf("; released by the FIN and refused (rule %d) without the 403", e.Rule))
					s.count(res.Verdict.String()+"/"+res.Ingress.Reason.String(), true)
					s.drop(key, c)
					continue
				}
			}
			if err != nil {
				cnt, _ := dp.Counters()
				t.Fatalf("%s\n%s -> %d %q: read the answer: %v (engine: %s %s); sent before on the connection: %q; kernel counters %v",
					describe(), peer, port, req.head, err, res.Ingress.Verdict, res.Ingress.Reason, c.sent, cnt)
			}
			c.sent = append(c.sent, req.head)
			body, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil {
				t.Fatalf("set %d: %s -> %d %q: read the body: %v", set, peer, port, req.head, err)
			}
			after := srv.log()
			gotAllowed := resp.StatusCode == http.StatusOK
			uri := req.q.Path
			reached := len(after) == before+1 && after[before] == req.q.Method+" "+uri
			switch {
			case gotAllowed && (string(body) != "ok "+strings.SplitN(uri, "?", 2)[0] || !reached):
				t.Fatalf("%s\n%s -> %d %q: 200 %q, server log grew from %d to %v: want the server's answer to exactly this request", describe(), peer, port, req.head, body, before, after[before:])
			case !gotAllowed && (resp.StatusCode != http.StatusForbidden || len(after) != before):
				t.Fatalf("%s\n%s -> %d %q: %d, server log grew from %d to %v: want 403 and nothing reaching the server", describe(), peer, port, req.head, resp.StatusCode, before, after[before:])
			case gotAllowed != wantAllowed:
				t.Fatalf("%s\nflow %s -> %s:%d %q:\nkernel allowed=%v (%d), engine.Evaluate: %s (ingress %s %s rule %v, egress %s %s)",
					describe(), peer, api, port, req.head, gotAllowed, resp.StatusCode, res.Verdict, res.Ingress.Verdict, res.Ingress.Reason, res.Ingress.Rule,
					res.Egress.Verdict, res.Egress.Reason)
			}
			if !gotAllowed {
				// The deciding rule: the kernel's event names the rule
				// engine.Evaluate names.
				e, err := refusal(c.local())
				if err != nil {
					t.Fatalf("set %d: %s -> %d %q: %v", set, peer, port, req.head, err)
				}
				if res.Ingress.Rule == nil || e.Rule != uint32(res.Ingress.Rule.ID) || e.Reason != l7.ReasonDenied {
					t.Fatalf("%s\nflow %s -> %s:%d %q: the kernel refused it (%v), engine.Evaluate: %s %s rule %+v",
						describe(), peer, api, port, req.head, e, res.Ingress.Verdict, res.Ingress.Reason, res.Ingress.Rule)
				}
			}
			s.count(res.Verdict.String()+"/"+res.Ingress.Reason.String(), !gotAllowed)
			if !gotAllowed || resp.Close || held {
				s.drop(key, c)
			}
		}
	})
	checkStalls(t, run.stalls)
	if run.checked < minRequests || run.refused == 0 || run.refused == run.checked {
		t.Fatalf("seed %d: %d requests checked, %d refused: want at least 50,000, some refused and some allowed", seed, run.checked, run.refused)
	}
	t.Logf("seed %d: %d sets, %d requests through the kernel as engine.Evaluate decides them (%d refused, each with the deciding rule engine.Evaluate names), %d connections, %d (peer, port) pairs L3/L4 denies not sent to, %d held until the client's FIN, %s; by verdict/ingress reason: %v",
		seed, set, run.checked, run.refused, run.conns, run.skippedL4, len(run.stalls), time.Since(run.start).Round(time.Millisecond), run.verdicts)
}
