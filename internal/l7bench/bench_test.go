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
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	l7bpf "github.com/palisade-dev/palisade/bpf/l7"
	"github.com/palisade-dev/palisade/internal/datapath"
	"github.com/palisade-dev/palisade/internal/engine"
	"github.com/palisade-dev/palisade/internal/l7"
	"github.com/palisade-dev/palisade/internal/netlab"
)

// The benchmark runs in a node namespace of its own (netlab.Isolate): the
// workloads' host-side veths, routes and forwarding are its, never the
// machine's.
func TestMain(m *testing.M) { os.Exit(netlab.Isolate(m.Run)) }

var (
	flagWindow   = flag.Duration("l7bench.window", time.Second, "saturation: requests counted over this window, per scenario and round")
	flagWarm     = flag.Duration("l7bench.warm", 300*time.Millisecond, "saturation: warm-up before the window")
	flagConns    = flag.Int("l7bench.conns", 16, "saturation: keep-alive connections")
	flagRequests = flag.Int("l7bench.requests", 5000, "latency: requests timed one at a time on one connection, per scenario and round")
	flagRepeat   = flag.Int("l7bench.repeat", 200000, "kernel parse: BPF_PROG_TEST_RUN repetitions per scenario and round")
	flagWork     = flag.Int("l7bench.work", 0, "KiB the server's handler hashes (SHA-256) per request: a server that does a fixed amount of work (0: it answers at once)")
	flagRounds   = flag.Int("l7bench.rounds", 5, "rounds over every scenario (interleaved); each figure is the median of the rounds")
)

// The two workloads: the client and the server (with the proxy beside
// the server, as a sidecar), each a network namespace with a veth to the
// node, routed through the node.
var (
	clientIP = netip.MustParseAddr("10.213.1.1")
	serverIP = netip.MustParseAddr("10.213.2.1")
)

const (
	clientID   engine.Identity = 1300
	serverID   engine.Identity = 1301
	serverPort                 = 8080 // the HTTP server; L7 rules bind here
	proxyPort                  = 8081 // the proxy hop, to 127.0.0.1:serverPort
	benchList  engine.L7ID     = 0x5e7
	l4Rule     engine.RuleID   = 1
	l4RuleIn   engine.RuleID   = 2
)

// scenario is one configuration of the path.
type scenario struct {
	name  string
	l4    bool // the network datapath on both workloads' veths, L4 allows
	rules int  // HTTP rules in the list (0: none)
	proxy bool // the rules are enforced by the proxy hop, not the kernel
	// passthrough: the server's connections go through a SOCKHASH with
	// a stream parser and verdict that do nothing (passthrough_test.go)
	// but give each message to the server: with SK_PASS, or (redirect)
	// redirected to the socket's own receive queue as bpf/l7 does.
	passthrough, redirect bool
}

func (s scenario) port() int {
	if s.proxy {
		return proxyPort
	}
	return serverPort
}

// kernelL7 says the kernel decides the scenario's requests.
func (s scenario) kernelL7() bool { return s.rules > 0 && !s.proxy }

// requestRules is the n of the requests sent (Request(n)).
func (s scenario) requestRules() int { return max(s.rules, 10) }

var scenarios = []scenario{
	{name: "a-none"},
	{name: "b-l4", l4: true},
	{name: "b2-sockmap-noop", l4: true, passthrough: true},
	{name: "b3-sockmap-redir", l4: true, passthrough: true, redirect: true},
	{name: "c-l7-10", l4: true, rules: 10},
	{name: "d-l7-256", l4: true, rules: engine.HTTPMaxRules},
	{name: "e-proxy-10", l4: true, rules: 10, proxy: true},
	{name: "e-proxy-256", l4: true, rules: engine.HTTPMaxRules, proxy: true},
}

// bench is the path: workloads, the two datapaths, server and proxy.
type bench struct {
	client, server *netlab.Workload
	net            *datapath.Datapath
	l7             *l7.Datapath
	generation     uint64
	proxies        map[int]*Proxy // by rule count
	proxyHandler   *switchHandler
	kparse         *kparse
	pt, ptRedirect *passthrough // the no-op SOCKHASHes: SK_PASS, redirect to self
	l7pins         string
}

// diagnose says what the datapaths counted and the kernel's state of
// every socket it parses, for a run that failed.
func (be *bench) diagnose() string {
	var out strings.Builder
	if c, err := be.l7.Counters(); err == nil {
		fmt.Fprintf(&out, "l7 counters: %v\n", c)
	}
	if c, err := be.net.Counters(); err == nil {
		fmt.Fprintf(&out, "network datapath counters: %+v\n", c)
	}
	m, err := ebpf.LoadPinnedMap(filepath.Join(be.l7pins, "l7_sock_state"), nil)
	if err != nil {
		fmt.Fprintf(&out, "l7_sock_state: %v\n", err)
		return out.String()
	}
	defer m.Close()
	var k uint64
	var v []byte
	it := m.Iterate()
	for it.Next(&k, &v) {
		var st l7bpf.L7L7Sock
		binary.Read(bytes.NewReader(v), binary.LittleEndian, &st)
		fmt.Fprintf(&out, "socket %d: %+v\n", k, st)
	}
	if err := it.Err(); err != nil {
		fmt.Fprintf(&out, "l7_sock_state: %v\n", err)
	}
	return out.String()
}

// switchHandler is the proxy listener's handler, switched per scenario:
// the scenario's proxy, or 404 when it has none.
type switchHandler struct{ p atomic.Pointer[Proxy] }

func (s *switchHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if p := s.p.Load(); p != nil {
		p.ServeHTTP(w, r)
		return
	}
	http.NotFound(w, r)
}

func requireRoot(b *testing.B) {
	b.Helper()
	if os.Geteuid() != 0 {
		b.Skip("needs root: network namespaces, veths, cgroups and eBPF programs")
	}
	if err := netlab.Available(); err != nil {
		b.Skip(err)
	}
	if !netlab.Isolated() {
		b.Fatal("not in a node namespace of its own: TestMain must run through netlab.Isolate")
	}
	if _, err := os.Stat(filepath.Join(l7.CgroupRoot(), "cgroup.procs")); err != nil {
		b.Skipf("no cgroup v2 at %s: %v", l7.CgroupRoot(), err)
	}
}

// pinDir mounts a bpffs private to the run and returns a directory on it.
func pinDir(b *testing.B) string {
	b.Helper()
	dir := b.TempDir()
	if err := unix.Mount("bpf", dir, "bpf", 0, ""); err != nil {
		b.Skipf("cannot mount a bpffs: %v", err)
	}
	b.Cleanup(func() { unix.Unmount(dir, unix.MNT_DETACH) })
	return filepath.Join(dir, "palisade")
}

// ownCgroup is the cgroup v2 directory of this process.
func ownCgroup(b *testing.B) string {
	b.Helper()
	raw, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		b.Fatal(err)
	}
	for _, line := range strings.Split(string(raw), "\n") {
		if rest, ok := strings.CutPrefix(line, "0::"); ok {
			return filepath.Join(l7.CgroupRoot(), rest)
		}
	}
	b.Skip("no cgroup v2 membership in /proc/self/cgroup")
	return ""
}

func setup(b *testing.B) *bench {
	requireRoot(b)
	sfx := strconv.Itoa(os.Getpid() % 100000)
	be := &bench{proxies: map[int]*Proxy{}}
	var err error
	if be.client, err = netlab.Create("pl7c"+sfx, clientIP); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { be.client.Delete() })
	if be.server, err = netlab.Create("pl7s"+sfx, serverIP); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { be.server.Delete() })

	if be.net, err = datapath.Open(pinDir(b), nil); err != nil {
		b.Fatalf("open network datapath: %v", err)
	}
	b.Cleanup(func() { be.net.Remove() })

	// The server's cgroup, with the L7 sockops program (removed after the
	// datapath is closed, which detaches it).
	var rnd [4]byte
	rand.Read(rnd[:])
	cg := filepath.Join(l7.CgroupRoot(), fmt.Sprintf("palisade-l7bench-%d-%s", os.Getpid(), hex.EncodeToString(rnd[:])))
	if err := os.Mkdir(cg, 0o755); err != nil {
		b.Fatalf("create cgroup: %v", err)
	}
	b.Cleanup(func() {
		if err := os.Remove(cg); err != nil {
			b.Errorf("remove cgroup %s: %v", cg, err)
		}
	})
	// The L7 state is pinned on a bpffs of the run's own (unmounted after
	// the datapath is closed, which frees it all), for kparse.
	l7pins := filepath.Dir(pinDir(b))
	if be.l7, err = l7.Load(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { be.l7.Close() })
	if err := be.l7.AttachCgroup(cg); err != nil {
		b.Fatal(err)
	}
	if err := be.l7.Pin(l7pins); err != nil {
		b.Fatal(err)
	}
	be.l7pins = l7pins
	if be.kparse, err = newKparse(l7pins); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(be.kparse.Close)
	if be.pt, err = newPassthrough(cg, serverPort, false); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(be.pt.Close)
	if be.ptRedirect, err = newPassthrough(cg, serverPort, true); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(be.ptRedirect.Close)
	if err := be.l7.SetPeer(netip.PrefixFrom(clientIP, 32), uint32(clientID)); err != nil {
		b.Fatal(err)
	}

	// The server listens from inside the cgroup (the process enters it for
	// the listen only), in the server's namespace: its connections are the
	// workload's, and sockops sees them.
	home := ownCgroup(b)
	pid := []byte(strconv.Itoa(os.Getpid()))
	var srvLn, proxyLn net.Listener
	err = be.server.Do(func() error {
		if err := os.WriteFile(filepath.Join(cg, "cgroup.procs"), pid, 0); err != nil {
			return fmt.Errorf("enter cgroup: %w", err)
		}
		ln, lerr := net.Listen("tcp4", fmt.Sprintf("0.0.0.0:%d", serverPort))
		if err := os.WriteFile(filepath.Join(home, "cgroup.procs"), pid, 0); err != nil {
			return errors.Join(lerr, fmt.Errorf("leave cgroup: %w", err))
		}
		if lerr != nil {
			return lerr
		}
		srvLn = ln
		proxyLn, err = net.Listen("tcp4", fmt.Sprintf("0.0.0.0:%d", proxyPort))
		return err
	})
	if err != nil {
		b.Fatal(err)
	}
	work := make([]byte, *flagWork<<10)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if len(work) > 0 {
			sha256.Sum256(work)
		}
		w.Write([]byte("ok"))
	})}
	go srv.Serve(srvLn)
	b.Cleanup(func() { srv.Close() })

	// The proxy, a sidecar in the server's namespace: its upstream
	// connections are dialed there, to the server on loopback.
	upstream := &url.URL{Scheme: "http", Host: fmt.Sprintf("127.0.0.1:%d", serverPort)}
	dialUp := func(ctx context.Context, network, addr string) (c net.Conn, err error) {
		err = be.server.Do(func() error {
			var d net.Dialer
			c, err = d.DialContext(ctx, network, addr)
			return err
		})
		return c, err
	}
	for _, sc := range scenarios {
		if sc.proxy {
			p := NewProxy(upstream, Rules(sc.rules), dialUp)
			be.proxies[sc.rules] = p
			b.Cleanup(p.Close)
		}
	}
	be.proxyHandler = &switchHandler{}
	psrv := &http.Server{Handler: be.proxyHandler}
	go psrv.Serve(proxyLn)
	b.Cleanup(func() { psrv.Close() })
	return be
}

// netState is the network datapath's generation: both workloads default
// deny both ways; the client may send TCP to the server's two ports and
// the server admits them from the client. With kernel L7 rules, the
// server's entry for its port names their list, as the engine writes it.
func netState(sc scenario) *engine.MapState {
	both := engine.IngressDefaultDeny | engine.EgressDefaultDeny
	s := &engine.MapState{
		Endpoints: map[netip.Addr]engine.EndpointEntry{
			clientIP: {Identity: clientID, PolicyID: uint32(clientID), Flags: both},
			serverIP: {Identity: serverID, PolicyID: uint32(serverID), Flags: both},
		},
		IPCache: map[netip.Prefix]engine.Identity{netip.PrefixFrom(clientIP, 32): clientID, netip.PrefixFrom(serverIP, 32): serverID},
		Policy:  map[engine.PolicyKey]engine.PolicyEntry{},
		L7:      map[engine.L7ID]engine.L7List{},
	}
	for _, port := range []uint16{serverPort, proxyPort} {
		s.Policy[engine.PolicyKey{PolicyID: uint32(clientID), Direction: engine.Egress, Identity: serverID, Proto: engine.ProtoTCP, Port: port, PrefixLen: 24}] =
			engine.PolicyEntry{Flags: engine.FlagAllow, AllowRule: l4Rule}
		in := engine.PolicyEntry{Flags: engine.FlagAllow, AllowRule: l4RuleIn}
		if port == serverPort && sc.kernelL7() {
			in.L7 = benchList
			s.L7[benchList] = Rules(sc.rules)
		}
		s.Policy[engine.PolicyKey{PolicyID: uint32(serverID), Direction: engine.Ingress, Identity: clientID, Proto: engine.ProtoTCP, Port: port, PrefixLen: 24}] = in
	}
	return s
}

// configure puts the path in the scenario's state. Connections are
// opened after it: sockops decides at connection time whether the kernel
// parses a connection.
func (be *bench) configure(sc scenario) error {
	for _, w := range []*netlab.Workload{be.client, be.server} {
		if sc.l4 {
			if err := be.net.AttachWorkload(w.Ifindex); err != nil {
				return err
			}
			continue
		}
		for _, h := range []datapath.Hook{datapath.HookIngress, datapath.HookEgress} {
			if err := be.net.Detach(w.Ifindex, h); err != nil {
				return err
			}
		}
	}
	if err := be.net.Apply(context.Background(), netState(sc)); err != nil {
		return fmt.Errorf("network datapath: %w", err)
	}
	lists := map[engine.L7ID]engine.L7List{}
	var binds []l7.Binding
	if sc.kernelL7() {
		lists[benchList] = Rules(sc.rules)
		binds = append(binds, l7.Binding{Addr: netip.IPv4Unspecified(), Port: serverPort, Identity: uint32(clientID), List: benchList})
	}
	tables, err := engine.CompileHTTP(lists)
	if err != nil {
		return err
	}
	be.generation++
	if err := be.l7.Apply(be.generation, tables, binds); err != nil {
		return fmt.Errorf("l7 datapath: %w", err)
	}
	for _, pt := range []struct {
		p  *passthrough
		on bool
	}{{be.pt, sc.passthrough && !sc.redirect}, {be.ptRedirect, sc.passthrough && sc.redirect}} {
		if err := pt.p.off(); err != nil {
			return err
		}
		if pt.on {
			if err := pt.p.on(); err != nil {
				return err
			}
		}
	}
	be.proxyHandler.p.Store(nil)
	if sc.proxy {
		be.proxyHandler.p.Store(be.proxies[sc.rules])
	}
	return nil
}

func (be *bench) dial(port int) func() (net.Conn, error) {
	return func() (c net.Conn, err error) {
		err = be.client.Do(func() error {
			c, err = net.DialTimeout("tcp4", netip.AddrPortFrom(serverIP, uint16(port)).String(), 10*time.Second)
			if err == nil {
				// A bound on a lost answer, which would otherwise hang the
				// run: no measurement of a connection takes this long.
				c.SetDeadline(time.Now().Add(*flagWarm + *flagWindow + time.Minute))
			}
			return err
		})
		return c, err
	}
}

// probe sends the refused request on a connection of its own: the answer
// says whether the scenario's rules are in force (403) or not (200).
func (be *bench) probe(sc scenario) (int, error) {
	nc, err := be.dial(sc.port())()
	if err != nil {
		return 0, err
	}
	c := NewConn(nc, Refused(sc.requestRules()))
	defer c.Close()
	nc.SetDeadline(time.Now().Add(10 * time.Second))
	status, err := c.Do()
	if errors.Is(err, ErrClosed) {
		err = nil
	}
	return status, err
}

// sample is one round's figures for a scenario.
type sample struct {
	rps      float64
	p50, p99 time.Duration
	cpu      time.Duration // the process's CPU time per request at saturation
	kparse   time.Duration // the kernel's decision of one request (BPF_PROG_TEST_RUN)
	kparse1k time.Duration // the same, the request padded to 1 KiB
}

// counts are what the datapaths and the proxy counted.
type counts struct {
	packets, l7allowed, l7denied, proxied, proxyRefused uint64
}

func (be *bench) counts() (counts, error) {
	nc, err := be.net.Counters()
	if err != nil {
		return counts{}, err
	}
	lc, err := be.l7.Counters()
	if err != nil {
		return counts{}, err
	}
	c := counts{packets: nc.Packets, l7allowed: lc[l7.ReasonAllowed], l7denied: lc[l7.ReasonDenied]}
	for _, p := range be.proxies {
		f, r := p.Counts()
		c.proxied += f
		c.proxyRefused += r
	}
	return c, nil
}

// run measures a scenario once and checks that what enforced it counted
// every request (and nothing else did).
func (be *bench) run(sc scenario) (sample, error) {
	if err := be.configure(sc); err != nil {
		return sample{}, err
	}
	var kp, kp1k time.Duration
	if sc.kernelL7() {
		n := sc.requestRules()
		per, out, err := be.kparse.run(uint32(benchList), Request(n), *flagRepeat)
		if err != nil {
			return sample{}, err
		}
		last := Rules(n)[len(Rules(n))-1].Rule
		if out.Kind != uint8(l7bpf.L7L7KindL7KIND_REQUEST) || l7.Reason(out.Reason) != l7.ReasonAllowed || out.Rule != uint32(last) || out.Len != uint32(len(Request(n))) {
			return sample{}, fmt.Errorf("the kernel's parse decided %+v, want the whole request allowed by rule %d", out, last)
		}
		kp = per
		// The same request with a 1 KiB header block: the per-byte part.
		padded := strings.Replace(Request(n), "\r\n\r\n", "\r\nX-Pad: "+strings.Repeat("p", 1024-len(Request(n))-9)+"\r\n\r\n", 1)
		if len(padded) != 1024 {
			return sample{}, fmt.Errorf("padded request of %d bytes", len(padded))
		}
		per, out, err = be.kparse.run(uint32(benchList), padded, *flagRepeat/4)
		if err != nil {
			return sample{}, err
		}
		if out.Kind != uint8(l7bpf.L7L7KindL7KIND_REQUEST) || l7.Reason(out.Reason) != l7.ReasonAllowed || out.Len != 1024 {
			return sample{}, fmt.Errorf("the kernel's parse decided the padded request %+v, want it allowed", out)
		}
		kp1k = per
	}
	before, err := be.counts()
	if err != nil {
		return sample{}, err
	}
	status, err := be.probe(sc)
	if err != nil {
		return sample{}, fmt.Errorf("probe: %w", err)
	}
	if want := map[bool]int{true: 403, false: 200}[sc.rules > 0]; status != want {
		return sample{}, fmt.Errorf("the refused probe got %d, want %d: the scenario's rules are not what is in force", status, want)
	}
	req := Request(sc.requestRules())
	sat, err := Saturate(be.dial(sc.port()), req, *flagConns, *flagWarm, *flagWindow)
	if err != nil {
		return sample{}, fmt.Errorf("saturation: %w", err)
	}
	nc, err := be.dial(sc.port())()
	if err != nil {
		return sample{}, err
	}
	c := NewConn(nc, req)
	rtts, err := Latencies(c, 200, *flagRequests)
	if err != nil {
		c.Close()
		return sample{}, fmt.Errorf("latency: %w", err)
	}
	// The server's side of the open connection is in the scenario's
	// no-op SOCKHASH, and in no other, exactly when the scenario says so.
	socks, err := be.pt.sockets()
	if err != nil {
		c.Close()
		return sample{}, err
	}
	redirSocks, err := be.ptRedirect.sockets()
	c.Close()
	if err != nil {
		return sample{}, err
	}
	if sc.passthrough && !sc.redirect != (socks > 0) || sc.passthrough && sc.redirect != (redirSocks > 0) {
		return sample{}, fmt.Errorf("%d sockets in the no-op SOCKHASH, %d in the redirecting one (scenario: no-op %v, redirect %v)", socks, redirSocks, sc.passthrough, sc.redirect)
	}
	after, err := be.counts()
	if err != nil {
		return sample{}, err
	}
	n := uint64(sat.Requests + len(rtts))
	d := counts{after.packets - before.packets, after.l7allowed - before.l7allowed, after.l7denied - before.l7denied,
		after.proxied - before.proxied, after.proxyRefused - before.proxyRefused}
	switch {
	case sc.l4 != (d.packets >= n):
		return sample{}, fmt.Errorf("the network datapath saw %d packets for %d requests (attached: %v)", d.packets, n, sc.l4)
	case sc.kernelL7() && (d.l7allowed < n || d.l7denied != 1), !sc.kernelL7() && d.l7allowed+d.l7denied != 0:
		return sample{}, fmt.Errorf("the kernel allowed %d and refused %d requests of %d and the probe", d.l7allowed, d.l7denied, n)
	case sc.proxy && (d.proxied < n || d.proxyRefused != 1), !sc.proxy && d.proxied+d.proxyRefused != 0:
		return sample{}, fmt.Errorf("the proxy forwarded %d and refused %d requests of %d and the probe", d.proxied, d.proxyRefused, n)
	}
	return sample{rps: sat.PerSecond(), p50: Percentile(rtts, 50), p99: Percentile(rtts, 99), cpu: sat.CPUPerRequest(), kparse: kp, kparse1k: kp1k}, nil
}

func loadavg() string {
	raw, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(raw))
	return strings.Join(f[:min(3, len(f))], " ")
}

func us(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1000 }

func median[T int64 | float64 | time.Duration](xs []T) T {
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[len(s)/2]
}

// BenchmarkL7Path measures, in one run on one veth path (client and
// server workloads in network namespaces of their own, routed through
// the node; the server's process in a cgroup with the L7 sockops program),
// requests/s at saturation (-l7bench.conns keep-alive connections), the
// process's CPU time per request meanwhile, and the latency p50/p99 of
// one request at a time on one connection, for: no policy; an L4-only
// allow (the network datapath on both veths); the same with the server's
// connections in a SOCKHASH whose programs do nothing but give each
// message to the server, with SK_PASS (b2) or redirected to the socket's
// own receive queue as bpf/l7 does (b3: b3 - b2 is the kernel's sk_psock
// work-queue hop that the redirect costs); Palisade's L7 rules in the
// kernel with 10 rules and with 256 (the most one list holds:
// engine.HTTPMaxRules); the same rules enforced by a userspace reverse
// proxy hop (httputil.ReverseProxy, engine.MatchL7) beside the server.
// Client, server and proxy are this process, so that its CPU time is the
// path's. Scenarios are interleaved over -l7bench.rounds rounds: each
// figure is the median of the rounds, and each ratio between scenarios
// the median of the ratios within a round (scenarios of one round run
// seconds apart, under the same load of the machine). It ignores b.N:
// run it with -benchtime 1x.
func BenchmarkL7Path(b *testing.B) {
	be := setup(b)
	loadStart := loadavg()
	res := map[string][]sample{}
	for round := range *flagRounds {
		for _, sc := range scenarios {
			s, err := be.run(sc)
			if err != nil {
				b.Fatalf("round %d, %s: %v\n%s", round, sc.name, err, be.diagnose())
			}
			res[sc.name] = append(res[sc.name], s)
			b.Logf("round %d %-12s %8.0f req/s  %5.1f cpu-µs/req  p50 %6.1f µs  p99 %7.1f µs  kernel parse %4.0f ns (1 KiB %5.0f ns)  (load %s)",
				round, sc.name, s.rps, us(s.cpu), us(s.p50), us(s.p99), float64(s.kparse.Nanoseconds()), float64(s.kparse1k.Nanoseconds()), loadavg())
		}
	}
	loadEnd := loadavg()
	var table strings.Builder
	fmt.Fprintf(&table, "%-16s %9s %12s %9s %9s %10s %13s\n", "scenario", "req/s", "cpu-µs/req", "p50 µs", "p99 µs", "parse ns", "parse-1KiB ns")
	med := func(name string, f func(sample) float64) float64 {
		var xs []float64
		for _, s := range res[name] {
			xs = append(xs, f(s))
		}
		return median(xs)
	}
	// ratio is the median over rounds of f(x's sample, y's sample).
	ratio := func(x, y string, f func(x, y sample) float64) float64 {
		var xs []float64
		for i := range res[x] {
			xs = append(xs, f(res[x][i], res[y][i]))
		}
		return median(xs)
	}
	for _, sc := range scenarios {
		rps := med(sc.name, func(s sample) float64 { return s.rps })
		cpu := med(sc.name, func(s sample) float64 { return us(s.cpu) })
		p50 := med(sc.name, func(s sample) float64 { return us(s.p50) })
		p99 := med(sc.name, func(s sample) float64 { return us(s.p99) })
		kp := med(sc.name, func(s sample) float64 { return float64(s.kparse.Nanoseconds()) })
		kp1k := med(sc.name, func(s sample) float64 { return float64(s.kparse1k.Nanoseconds()) })
		fmt.Fprintf(&table, "%-16s %9.0f %12.2f %9.1f %9.1f %10.0f %13.0f\n", sc.name, rps, cpu, p50, p99, kp, kp1k)
		b.Run(sc.name, func(b *testing.B) {
			if sc.kernelL7() {
				b.ReportMetric(kp, "parse-ns")
				b.ReportMetric(kp1k, "parse-1KiB-ns")
			}
			b.ReportMetric(rps, "req/s")
			b.ReportMetric(cpu, "cpu-µs/req")
			b.ReportMetric(p50, "p50-µs")
			b.ReportMetric(p99, "p99-µs")
		})
	}
	const (
		none, l4, noop, redir, c, d, e = "a-none", "b-l4", "b2-sockmap-noop", "b3-sockmap-redir", "c-l7-10", "d-l7-256", "e-proxy-10"
		// An added latency or cost at or under the noise (≤ 0) is taken as
		// floor in a ratio, which then says "at least" or "at most".
		floor = 0.1
	)
	rpsRatio := func(x, y sample) float64 { return x.rps / y.rps }
	cpuRatio := func(x, y sample) float64 { return float64(y.cpu) / float64(x.cpu) } // y's cost per x's: a throughput ratio
	added := func(name string, f func(sample) time.Duration) float64 {
		return ratio(name, l4, func(x, y sample) float64 { return us(f(x)) - us(f(y)) })
	}
	p50 := func(s sample) time.Duration { return s.p50 }
	cpu := func(s sample) time.Duration { return s.cpu }
	addC, addD, addE := added(c, p50), added(d, p50), added(e, p50)
	cpuC, cpuD, cpuE := added(c, cpu), added(d, cpu), added(e, cpu)
	goals := []struct {
		name, unit string
		v          float64
		goal       string
		ok         bool
	}{}
	goal := func(name, unit string, v float64, g string, ok bool) {
		goals = append(goals, struct {
			name, unit string
			v          float64
			goal       string
			ok         bool
		}{name, unit, v, g, ok})
	}
	rc := ratio(c, l4, rpsRatio)
	goal("c/b req/s (measured)", "c/b-rps", rc, "≥ 0.95", rc >= 0.95)
	cc := ratio(c, l4, cpuRatio)
	goal("c/b req/s from CPU per request", "c/b-rps-cpu", cc, "≥ 0.95", cc >= 0.95)
	goal("c-b added p50 µs", "c-added-p50-µs", addC, "≤ 20", addC <= 20)
	goal("e added p50 / c added p50", "e/c-added-p50", addE/max(addC, floor), "≥ 5", addE/max(addC, floor) >= 5)
	goal("e added CPU / c added CPU", "e/c-added-cpu", cpuE/max(cpuC, floor), "≥ 5", cpuE/max(cpuC, floor) >= 5)
	rd := ratio(c, d, rpsRatio)
	goal("d/c time per request (c/d req/s)", "d/c-rps", rd, "≤ 1.2", rd <= 1.2)
	dc := ratio(d, c, func(x, y sample) float64 { return float64(x.cpu) / float64(y.cpu) })
	goal("d/c CPU per request", "d/c-cpu", dc, "≤ 1.2", dc <= 1.2)
	goal("d/c added p50", "d/c-added-p50", max(addD, floor)/max(addC, floor), "≤ 1.2", max(addD, floor)/max(addC, floor) <= 1.2)
	kd := ratio(d, c, func(x, y sample) float64 { return float64(x.kparse) / float64(y.kparse) })
	goal("d/c kernel parse per request", "d/c-parse", kd, "≤ 1.2", kd <= 1.2)
	goal("d/c added CPU per request", "d/c-added-cpu", max(cpuD, floor)/max(cpuC, floor), "≤ 1.2", max(cpuD, floor)/max(cpuC, floor) <= 1.2)
	fmt.Fprintf(&table, "added over b-l4 (median of rounds): p50 c %.1f µs, d %.1f µs, e %.1f µs, b2 (no-op SOCKHASH, SK_PASS) %.1f µs, b3 (no-op, redirect to self) %.1f µs; CPU per request c %.2f µs, d %.2f µs, e %.2f µs, b2 %.2f µs, b3 %.2f µs; b over a-none: p50 %.1f µs, CPU %.2f µs\n",
		addC, addD, addE, added(noop, p50), added(redir, p50), cpuC, cpuD, cpuE, added(noop, cpu), added(redir, cpu),
		ratio(l4, none, func(x, y sample) float64 { return us(x.p50) - us(y.p50) }),
		ratio(l4, none, func(x, y sample) float64 { return us(x.cpu) - us(y.cpu) }))
	// The redirect's work-queue hop alone: b3 over b2, the same no-op
	// programs but the delivery; and c over b3, Palisade's programs over
	// the machinery with the delivery they use.
	fmt.Fprintf(&table, "redirect to self over SK_PASS (b3 - b2, median of rounds): p50 %.1f µs, p99 %.1f µs, CPU per request %.2f µs, req/s ratio %.3f; c over b3: p50 %.1f µs, CPU %.2f µs\n",
		ratio(redir, noop, func(x, y sample) float64 { return us(x.p50) - us(y.p50) }),
		ratio(redir, noop, func(x, y sample) float64 { return us(x.p99) - us(y.p99) }),
		ratio(redir, noop, func(x, y sample) float64 { return us(x.cpu) - us(y.cpu) }),
		ratio(redir, noop, rpsRatio),
		ratio(c, redir, func(x, y sample) float64 { return us(x.p50) - us(y.p50) }),
		ratio(c, redir, func(x, y sample) float64 { return us(x.cpu) - us(y.cpu) }))
	for _, g := range goals {
		verdict := "met"
		if !g.ok {
			verdict = "MISSED"
		}
		fmt.Fprintf(&table, "%-34s %8.3f  goal %-7s %s\n", g.name, g.v, g.goal, verdict)
	}
	fmt.Fprintf(&table, "load average (1 5 15 min): %s at the start, %s at the end; %d rounds, %d connections, %v windows, %d timed requests, handler hashes %d KiB",
		loadStart, loadEnd, *flagRounds, *flagConns, *flagWindow, *flagRequests, *flagWork)
	b.Run("goals", func(b *testing.B) {
		for _, g := range goals {
			b.ReportMetric(g.v, g.unit)
		}
	})
	b.Logf("summary\n%s", table.String())
}
