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
	"bufio"
	"context"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cilium/ebpf/rlimit"

	v1 "github.com/palisade-dev/palisade/api/v1alpha1"
	"github.com/palisade-dev/palisade/internal/engine"
	"github.com/palisade-dev/palisade/internal/l7"
)

// The seed of TestL7EgressKernelMatchesEvaluate; PALISADE_L7_EGRESS_SEED
// picks another.
const evalEgressSeedDefault = 15

// evalEgressPorts are the destination servers' ports: the policies'
// "80", "81", the range "8000-8003" (both ends listened on) and a port
// just outside it.
var evalEgressPorts = struct{ p80, p81, lo, hi, out uint16 }{28180, 28181, 28200, 28203, 28204}

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
	p := evalEgressPorts
	peers := []string{`toEndpoints: [{matchLabels: {app: frontend}}]`, `toEndpoints: [{matchLabels: {app: monitor}}]`,
		`toEndpoints: [{}]`, `toEntities: [cluster]`, `toEntities: [all]`, `toEntities: [world]`, fmt.Sprintf(`toCIDR: [127.%d.5.0/25]`, nb),
		fmt.Sprintf(`toCIDRSet: [{cidr: 127.%d.5.0/24, except: [127.%d.5.0/26]}]`, nb, nb)}
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
		fmt.Fprintf(&b, "egressDeny:\n- %s\n  toPorts: [{ports: [%s]}]\n", peers[r.IntN(len(peers))], ports[r.IntN(3)])
	}
	b.WriteString("egress:\n")
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
	if os.Geteuid() != 0 {
		t.Skip("needs root to load bpf/l7 and attach sockops to a cgroup")
	}
	seed := evalSeed(t, "PALISADE_L7_EGRESS_SEED", evalEgressSeedDefault)
	if err := rlimit.RemoveMemlock(); err != nil {
		t.Skipf("remove memlock limit: %v", err)
	}
	probe, err := l7.Load()
	if err != nil {
		t.Skipf("the L7 datapath does not load here: %v", err)
	}
	probe.Close()

	const sets, perSet = 100, 250
	nb := evalNet()
	api := evalAddr(nb, 4, 2)
	apiUID := "00000000-0000-4000-8000-000000000002" // podUID's for ifindex 2
	root, pod := evalPodCgroup(t, "palisade-l7egress", apiUID)
	socks := newEvalSockets(t, pod)
	apps := []string{"frontend", "monitor", "blocked"}
	// The destinations: the apps' pods, an address of the /25 (inside the
	// CIDR set's exception), and world (inside the CIDR set only).
	dests := []netip.Addr{evalAddr(nb, 4, 3), evalAddr(nb, 4, 4), evalAddr(nb, 4, 5), evalAddr(nb, 5, 1), evalAddr(nb, 5, 200)}
	ports := []uint16{evalEgressPorts.p80, evalEgressPorts.p81, evalEgressPorts.lo, evalEgressPorts.hi, evalEgressPorts.out}
	srv := startEvalDests(t, dests, ports)

	start := time.Now()
	checked, refused, conns, skippedL4, audited := 0, 0, 0, 0, 0
	verdicts := map[string]int{}
	set := 0
	for ; set < sets; set++ {
		r := mrand.New(mrand.NewPCG(seed, uint64(set)))
		f := newL7Fixture(t)
		f.root = root
		f.a.CgroupRoot = root
		dp, err := l7.Load()
		if err != nil {
			t.Fatalf("set %d: l7.Load: %v", set, err)
		}
		f.a.L7 = dp
		if got := f.podUID("api", "api", api.String(), 2, true); string(got) != apiUID {
			t.Fatalf("api's UID %s, want %s (the cgroup made for it)", got, apiUID)
		}
		for i, app := range apps {
			f.podUID(app, app, dests[i].String(), 3+i, true)
		}
		n := 1 + r.IntN(4)
		var specs []string
		for i := range n {
			spec := evalEgressPolicy(r, nb)
			specs = append(specs, spec)
			f.policy(fmt.Sprintf("p%d", i), "r1", n, spec)
		}
		describe := func() string {
			return fmt.Sprintf("seed %d set %d, policies:\n%s", seed, set, strings.Join(specs, "---\n"))
		}
		if _, err := f.sync(); err != nil {
			t.Fatalf("%s\nsync: %v", describe(), err)
		}
		if c := f.condition(v1.L7EnforcedCondition); c.Reason == v1.DatapathErrorReason || c.Reason == reasonCgroupNotFound {
			t.Fatalf("%s\nL7Enforced %s: %s", describe(), c.Reason, c.Message)
		}
		in := f.a.last
		ctx, cancel := context.WithCancel(context.Background())
		events, evErrs, err := dp.Events(ctx)
		if err != nil {
			t.Fatalf("set %d: %v", set, err)
		}
		// refusal waits for the kernel's event of the request refused on
		// the connection from local.
		refusal := func(local netip.AddrPort) (l7.Event, error) {
			bound := time.After(30 * time.Second) // a bound on a lost event
			for {
				select {
				case e, ok := <-events:
					if !ok {
						return l7.Event{}, fmt.Errorf("the event reader stopped")
					}
					if e.Egress && e.Local == local && !e.Allowed() {
						return e, nil
					}
				case err := <-evErrs:
					return l7.Event{}, err
				case <-bound:
					return l7.Event{}, fmt.Errorf("no refusal event for %v in 30 s", local)
				}
			}
		}

		open := map[[2]int]*evalConn{}
		// The (destination, port) pairs whose packets L3/L4 lets through:
		// the requests to the others never leave api.
		var pairs [][2]int
		for di, dst := range dests {
			for po, port := range ports {
				res := engine.Evaluate(in.ir, in.cluster, engine.Flow{Src: api, Dst: dst, Proto: engine.ProtoTCP, Port: port})
				if res.Ingress.Verdict == engine.VerdictDeny {
					t.Fatalf("%s\n%s:%d: the ingress side denies (%s): the destinations have no ingress policy", describe(), dst, port, res.Ingress.Reason)
				}
				if res.Egress.Verdict == engine.VerdictDeny {
					skippedL4++
					continue
				}
				pairs = append(pairs, [2]int{di, po})
			}
		}
		done := 0
		for done < perSet && len(pairs) > 0 {
			key := pairs[r.IntN(len(pairs))]
			dst, port := dests[key[0]], ports[key[1]]
			flow := engine.Flow{Src: api, Dst: dst, Proto: engine.ProtoTCP, Port: port}
			req := evalRandomRequest(r)
			flow.Request = &engine.Request{HTTP: req.q}
			res := engine.Evaluate(in.ir, in.cluster, flow)
			if res.Ingress.Verdict == engine.VerdictDeny {
				t.Fatalf("%s\n%+v: the ingress side denies (%s): the destinations have no ingress policy", describe(), flow, res.Ingress.Reason)
			}
			wantAllowed := res.Egress.Verdict != engine.VerdictDeny
			if wantAllowed != (res.Verdict != engine.VerdictDeny) {
				t.Fatalf("%s\n%+v: egress %s, combined %s", describe(), flow, res.Egress.Verdict, res.Verdict)
			}

			c := open[key]
			if c == nil {
				nc, err := socks.dial(api, netip.AddrPortFrom(dst, port))
				if err != nil {
					t.Fatalf("set %d: %v", set, err)
				}
				c = &evalConn{c: nc, br: bufio.NewReader(nc)}
				open[key] = c
				conns++
			}
			local := netip.MustParseAddrPort(c.c.LocalAddr().String())
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
			verdicts[res.Verdict.String()+"/"+res.Egress.Reason.String()]++
			checked++
			done++
			if !gotAllowed {
				refused++
			}
			if !gotAllowed || resp.Close {
				c.c.Close()
				delete(open, key)
			}
		}
		for k, c := range open {
			c.c.Close()
			delete(open, k)
		}
		cancel()
		if len(pairs) == 0 {
			t.Logf("set %d: L3/L4 denies every destination and port: no request sent", set)
		}
		if err := dp.Close(); err != nil {
			t.Fatalf("set %d: close the datapath: %v", set, err)
		}
	}
	if checked < sets*perSet/2 || refused == 0 || refused == checked || audited == 0 {
		t.Fatalf("seed %d: %d requests checked, %d refused, %d audited: the sets do not exercise the outcomes", seed, checked, refused, audited)
	}
	t.Logf("seed %d: %d sets, %d egress requests through the kernel as engine.Evaluate decides them (%d refused, each with the deciding rule engine.Evaluate names; %d passed by audit mode), %d connections, %d (destination, port) pairs L3/L4 denies not sent to, %s; by verdict/egress reason: %v",
		seed, set, checked, refused, audited, conns, skippedL4, time.Since(start).Round(time.Millisecond), verdicts)
}
