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

// The egress L7 differential end to end: seeded random policy sets whose
// egress rules on a client workload carry HTTP rules go through the
// agent's l7 subsystem into the REAL bpf/l7 datapath (sockops on the
// client's pod cgroup, sk_msg on its connections), the client writes real
// requests over loopback to servers on the addresses of its peers (pods,
// a CIDR, world), and the kernel's answer to every request is compared
// with engine.Evaluate's egress side over the same policies and cluster.

import (
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

// The seed of TestL7EgressKernelMatchesEvaluate; PALISADE_L7_EGRESS_SEED
// picks another.
const evalEgressSeedDefault = 15

// evalEgressPorts are the destination servers' ports: the policies'
// "80", "81", the range "8000-8003" (both ends listened on) and a port
// just outside it.
var evalEgressPorts = evalPortSet{28180, 28181, 28200, 28203, 28204}

// evalDests is a net/http server on every port of evalEgressPorts at each
// destination address (outside every cgroup of the test); it records, per
// request its handler ran for, the address and port it was sent to.
type evalDests struct {
	mu   sync.Mutex
	seen []string
}

func (s *evalDests) log() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.seen
}

func startEvalDests(t *testing.T, addrs []netip.Addr, ports []uint16) *evalDests {
	t.Helper()
	s := &evalDests{}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		local, _ := r.Context().Value(http.LocalAddrContextKey).(net.Addr)
		s.mu.Lock()
		s.seen = append(s.seen, fmt.Sprintf("%v %s %s", local, r.Method, r.URL.RequestURI()))
		s.mu.Unlock()
		fmt.Fprintf(w, "ok %s", r.URL.Path)
	})}
	t.Cleanup(func() { srv.Close() })
	for _, a := range addrs {
		for _, p := range ports {
			ln, err := net.Listen("tcp4", netip.AddrPortFrom(a, p).String())
			if err != nil {
				t.Fatalf("listen: %v", err)
			}
			go srv.Serve(ln)
		}
	}
	return s
}

// evalEgressPolicy is a random egress policy on api: peers (one app,
// every endpoint, the cluster, every entity, world, a CIDR, a CIDR with
// an exception), ports (one, a range, any protocol), HTTP rules or none,
// audit mode, deny rules.
func evalEgressPolicy(r *mrand.Rand, nb byte) string {
	return evalHTTPPolicy(r, "egress", evalEgressPorts, []string{`toEndpoints: [{matchLabels: {app: frontend}}]`, `toEndpoints: [{matchLabels: {app: monitor}}]`,
		`toEndpoints: [{}]`, `toEntities: [cluster]`, `toEntities: [all]`, `toEntities: [world]`, fmt.Sprintf(`toCIDR: [127.%d.5.0/25]`, nb),
		fmt.Sprintf(`toCIDRSet: [{cidr: 127.%d.5.0/24, except: [127.%d.5.0/26]}]`, nb, nb)})
}

// TestL7EgressKernelMatchesEvaluate runs seeded random policy sets with
// egress HTTP rules on api (a client workload) through the agent's l7
// subsystem into the real L7 datapath, writes real requests from api's
// pod cgroup (its sockets are made there) to servers on its peers'
// addresses (three apps' pods, an address of a CIDR, one of world, all on
// loopback, 127.<random>.4-5.x), and requires, for every request the L3/L4 rules let
// through, that the kernel allows exactly when engine.Evaluate's egress
// side (and its combined verdict: the destinations have no ingress
// policy) does not deny: an allowed request gets the server's answer and
// is in that server's log, a refused one gets the kernel's 403, never
// reaches any server, and the kernel's egress event for it names the rule
// engine.Evaluate names. 100 sets of 250 requests on keep-alive
// connections (a new one after each refusal); seed 15, or
// PALISADE_L7_EGRESS_SEED.
func TestL7EgressKernelMatchesEvaluate(t *testing.T) {
	evalNeeds(t, "bpf/l7", func() (io.Closer, error) { return l7.Load() })
	seed := evalSeed(t, "PALISADE_L7_EGRESS_SEED", evalEgressSeedDefault)

	const sets, perSet = 100, 250
	nb := evalNet()
	api := evalAddr(nb, 4, 2)
	apiUID := "00000000-0000-4000-8000-000000000002" // podUID's for ifindex 2
	root, pod := evalPodCgroup(t, "palisade-l7egress", apiUID)
	socks := newEvalSockets(t, pod)
	// The destinations: the apps' pods, an address of the /25 (inside the
	// CIDR set's exception), and world (inside the CIDR set only).
	dests := []netip.Addr{evalAddr(nb, 4, 3), evalAddr(nb, 4, 4), evalAddr(nb, 4, 5), evalAddr(nb, 5, 1), evalAddr(nb, 5, 200)}
	ports := []uint16{evalEgressPorts.p80, evalEgressPorts.p81, evalEgressPorts.lo, evalEgressPorts.hi, evalEgressPorts.out}
	srv := startEvalDests(t, dests, ports)

	audited := 0
	var dp *l7.Datapath
	run := newEvalRun(t, seed, evalWorkload{
		name: "api", addr: api, uid: apiUID, root: root,
		apps: []string{"frontend", "monitor", "blocked"}, appAddrs: dests[:3],
		policy: func(r *mrand.Rand) string { return evalEgressPolicy(r, nb) },
		attach: func(f *l7Fixture, set int) {
			var err error
			if dp, err = l7.Load(); err != nil {
				t.Fatalf("set %d: l7.Load: %v", set, err)
			}
			f.a.L7 = dp
		},
	})
	set := run.each(sets, 0, func(s *evalSet) {
		s.onClose(dp.Close)
		in, set, describe := s.in, s.n, s.describe
		events, evErrs, err := dp.Events(s.ctx)
		if err != nil {
			t.Fatalf("set %d: %v", set, err)
		}
		// refusal waits for the kernel's event of the request refused on
		// the connection from local.
		refusal := func(local netip.AddrPort) (l7.Event, error) {
			return evalRefusal(events, evErrs, local, func(e l7.Event) bool { return e.Egress && e.Local == local && !e.Allowed() })
		}
		// The (destination, port) pairs whose packets L3/L4 lets through:
		// the requests to the others never leave api.
		s.pairsOf(dests, ports, func(dst netip.Addr, port uint16) bool {
			res := engine.Evaluate(in.ir, in.cluster, engine.Flow{Src: api, Dst: dst, Proto: engine.ProtoTCP, Port: port})
			if res.Ingress.Verdict == engine.VerdictDeny {
				t.Fatalf("%s\n%s:%d: the ingress side denies (%s): the destinations have no ingress policy", describe(), dst, port, res.Ingress.Reason)
			}
			return res.Egress.Verdict == engine.VerdictDeny
		})
		for {
			key, ok := s.pick(perSet)
			if !ok {
				break
			}
			dst, port := dests[key[0]], ports[key[1]]
			flow := engine.Flow{Src: api, Dst: dst, Proto: engine.ProtoTCP, Port: port}
			req := evalRandomRequest(s.r)
			flow.Request = &engine.Request{HTTP: req.q}
			res := engine.Evaluate(in.ir, in.cluster, flow)
			if res.Ingress.Verdict == engine.VerdictDeny {
				t.Fatalf("%s\n%+v: the ingress side denies (%s): the destinations have no ingress policy", describe(), flow, res.Ingress.Reason)
			}
			wantAllowed := res.Egress.Verdict != engine.VerdictDeny
			if wantAllowed != (res.Verdict != engine.VerdictDeny) {
				t.Fatalf("%s\n%+v: egress %s, combined %s", describe(), flow, res.Egress.Verdict, res.Verdict)
			}

			c := s.conn(key, func() (net.Conn, error) { return socks.dial(api, netip.AddrPortFrom(dst, port)) })
			local := c.local()
			before := len(srv.log())
			c.c.SetDeadline(time.Now().Add(30 * time.Second)) // a bound on a lost answer
			if _, err := io.WriteString(c.c, req.head); err != nil {
				t.Fatalf("%s\n%s -> %s:%d %q: write: %v (engine %s; sent before on the connection: %q)", describe(), local, dst, port, req.head, err, res.Egress.Verdict, c.sent)
			}
			resp, err := http.ReadResponse(c.br, nil)
			if err != nil {
				cnt, _ := dp.CountersDir(true)
				t.Fatalf("%s\n%s -> %s:%d %q: read the answer: %v (engine: %s %s); sent before on the connection: %q; egress counters %v",
					describe(), local, dst, port, req.head, err, res.Egress.Verdict, res.Egress.Reason, c.sent, cnt)
			}
			c.sent = append(c.sent, req.head)
			body, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil {
				t.Fatalf("set %d: %s -> %s:%d %q: read the body: %v", set, local, dst, port, req.head, err)
			}
			after := srv.log()
			gotAllowed := resp.StatusCode == http.StatusOK
			want := fmt.Sprintf("%s %s %s", netip.AddrPortFrom(dst, port), req.q.Method, req.q.Path)
			reached := len(after) == before+1 && after[before] == want
			switch {
			case gotAllowed && (string(body) != "ok "+strings.SplitN(req.q.Path, "?", 2)[0] || !reached):
				t.Fatalf("%s\n%s -> %s:%d %q: 200 %q, the servers' log grew from %d to %q: want the answer of %s to exactly this request",
					describe(), local, dst, port, req.head, body, before, after[before:], netip.AddrPortFrom(dst, port))
			case !gotAllowed && (resp.StatusCode != http.StatusForbidden || len(body) != 0 || !resp.Close || len(after) != before):
				t.Fatalf("%s\n%s -> %s:%d %q: %d %q (close %v), the servers' log grew from %d to %q: want the kernel's 403 (empty, Connection: close) and nothing reaching a server",
					describe(), local, dst, port, req.head, resp.StatusCode, body, resp.Close, before, after[before:])
			case gotAllowed != wantAllowed:
				t.Fatalf("%s\nflow %s -> %s:%d %q:\nkernel allowed=%v (%d), engine.Evaluate: %s (egress %s %s rule %v, ingress %s %s)",
					describe(), local, dst, port, req.head, gotAllowed, resp.StatusCode, res.Verdict, res.Egress.Verdict, res.Egress.Reason, res.Egress.Rule,
					res.Ingress.Verdict, res.Ingress.Reason)
			}
			if !gotAllowed {
				// The deciding rule: the kernel's egress event names the
				// rule engine.Evaluate's egress side names.
				e, err := refusal(local)
				if err != nil {
					t.Fatalf("set %d: %s -> %s:%d %q: %v", set, local, dst, port, req.head, err)
				}
				if res.Egress.Rule == nil || e.Rule != uint32(res.Egress.Rule.ID) || e.Reason != l7.ReasonDenied || e.Status != http.StatusForbidden ||
					e.Remote != netip.AddrPortFrom(dst, port) || e.Method != req.q.Method {
					t.Fatalf("%s\nflow %s -> %s:%d %q: the kernel refused it (%v), engine.Evaluate: %s %s rule %+v",
						describe(), local, dst, port, req.head, e, res.Egress.Verdict, res.Egress.Reason, res.Egress.Rule)
				}
			}
			if res.Egress.Verdict == engine.VerdictAudit {
				audited++
			}
			s.count(res.Verdict.String()+"/"+res.Egress.Reason.String(), !gotAllowed)
			if !gotAllowed || resp.Close {
				s.drop(key, c)
			}
		}
	})
	if run.checked < sets*perSet/2 || run.refused == 0 || run.refused == run.checked || audited == 0 {
		t.Fatalf("seed %d: %d requests checked, %d refused, %d audited: the sets do not exercise the outcomes", seed, run.checked, run.refused, audited)
	}
	t.Logf("seed %d: %d sets, %d egress requests through the kernel as engine.Evaluate decides them (%d refused, each with the deciding rule engine.Evaluate names; %d passed by audit mode), %d connections, %d (destination, port) pairs L3/L4 denies not sent to, %s; by verdict/egress reason: %v",
		seed, set, run.checked, run.refused, audited, run.conns, run.skippedL4, time.Since(run.start).Round(time.Millisecond), run.verdicts)
}
