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

package agent_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/cilium/ebpf/rlimit"
	corev1 "k8s.io/api/core/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "github.com/palisade-dev/palisade/api/v1alpha1"
	"github.com/palisade-dev/palisade/internal/agent"
	"github.com/palisade-dev/palisade/internal/datapath"
	"github.com/palisade-dev/palisade/internal/l7"
)

// l7Env is a real agent with the real L7 datapath: workloads client and
// api (netlab namespaces), and a Go net/http server in api's namespace
// whose listening socket was created in api's pod cgroup, which the test
// made under the machine's cgroup v2 hierarchy.
type l7Env struct {
	*env
	root  string
	pins  string
	dp    *l7.Datapath
	r     *running
	srv   *l7Server
	api   netip.Addr
	cgDir string
}

// l7Server records the requests its handler ran for.
type l7Server struct {
	mu   sync.Mutex
	seen []string
	addr string
}

func (s *l7Server) handled() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.seen)
}

const l7Port = 8090

const l7Policy = `
endpointSelector: {matchLabels: {app: api}}
ingress:
- fromEndpoints: [{matchLabels: {app: client}}]
  toPorts: [{ports: [{port: "8090", protocol: TCP}], rules: {http: [{method: GET, path: "/public.*"}]}}]
`

// ownCgroupV2 is the cgroup v2 directory this process is in.
func ownCgroupV2(t *testing.T, root string) string {
	t.Helper()
	b, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "0::"); ok {
			return filepath.Join(root, rest)
		}
	}
	t.Skip("no cgroup v2 membership in /proc/self/cgroup")
	return ""
}

func newL7Env(t *testing.T) *l7Env {
	if os.Geteuid() != 0 {
		t.Skip("needs root to load bpf/l7 and attach it to cgroups")
	}
	v2, err := agent.DetectCgroupRoot(agent.DefaultCgroupBase)
	if err != nil {
		t.Skip(err)
	}
	if err := rlimit.RemoveMemlock(); err != nil {
		t.Skipf("remove memlock limit: %v", err)
	}
	e := &l7Env{env: newEnv(t), api: netip.MustParseAddr("10.99.0.20")}
	e.root = cgroupRoot(t)
	e.pins = filepath.Join(e.pinDir, "l7")
	e.pod("client", "client", "10.99.0.10")
	w := e.pod("api", "api", e.api.String())
	p := &corev1.Pod{}
	if err := e.c.Get(context.Background(), client.ObjectKey{Namespace: "shop", Name: "api"}, p); err != nil {
		t.Fatal(err)
	}
	cg := cgroupOf(t, e.root, string(p.UID))
	e.cgDir = cg.path

	// The server's listening socket is created inside api's cgroup (the
	// process enters it for the listen only) and api's namespace.
	home := ownCgroupV2(t, v2)
	pid := []byte(strconv.Itoa(os.Getpid()))
	var ln net.Listener
	err = w.Do(func() error {
		if err := os.WriteFile(filepath.Join(cg.path, "cgroup.procs"), pid, 0); err != nil {
			return fmt.Errorf("enter cgroup: %w", err)
		}
		var lerr error
		ln, lerr = net.Listen("tcp4", fmt.Sprintf(":%d", l7Port))
		if err := os.WriteFile(filepath.Join(home, "cgroup.procs"), pid, 0); err != nil {
			return errors.Join(lerr, fmt.Errorf("leave cgroup: %w", err))
		}
		return lerr
	})
	if err != nil {
		t.Fatal(err)
	}
	e.srv = &l7Server{addr: netip.AddrPortFrom(e.api, l7Port).String()}
	hs := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		e.srv.mu.Lock()
		e.srv.seen = append(e.srv.seen, r.Method+" "+r.URL.RequestURI())
		e.srv.mu.Unlock()
		fmt.Fprintf(w, "ok %s", r.URL.Path)
	})}
	go hs.Serve(ln)
	t.Cleanup(func() { hs.Close() })

	e.env.setup = func(_ ctrl.Manager, a *agent.Agent, _ *datapath.Datapath) {
		a.L7, a.L7PinDir, a.CgroupRoot = e.dp, e.pins, e.root
	}
	e.load()
	e.r = e.start(datapath.Limits{}, time.Hour)
	return e
}

// load loads the L7 datapath, as an agent does on start.
func (e *l7Env) load() {
	e.t.Helper()
	dp, err := l7.Load()
	if err != nil {
		e.t.Fatalf("l7.Load: %v", err)
	}
	e.dp = dp
	e.t.Cleanup(func() { dp.Close() })
}

// sockopsLinkProgram is the id of the pinned sockops cgroup link and of
// the program it runs.
func (e *l7Env) sockopsLinkProgram() (link.ID, ebpf.ProgramID) {
	e.t.Helper()
	l, err := link.LoadPinnedLink(filepath.Join(e.pins, "l7_sockops_link_0"), nil)
	if err != nil {
		e.t.Fatalf("the pinned sockops link: %v", err)
	}
	defer l.Close()
	info, err := l.Info()
	if err != nil {
		e.t.Fatal(err)
	}
	return info.ID, info.Program
}

// l7Conn is a keep-alive connection from client to the server.
type l7Conn struct {
	c  net.Conn
	br *bufio.Reader
}

// dial opens a connection from client to the server.
func (e *l7Env) dial() *l7Conn {
	e.t.Helper()
	var conn net.Conn
	if err := e.wl["client"].Do(func() error {
		var err error
		conn, err = net.DialTimeout("tcp", e.srv.addr, 5*time.Second)
		return err
	}); err != nil {
		e.t.Fatalf("dial %s: %v", e.srv.addr, err)
	}
	e.t.Cleanup(func() { conn.Close() })
	conn.SetDeadline(time.Now().Add(30 * time.Second)) // a bound on a lost answer
	return &l7Conn{c: conn, br: bufio.NewReader(conn)}
}

// get sends GET path on the connection and returns the status and body.
func (e *l7Env) getOn(c *l7Conn, path string) (int, string) {
	e.t.Helper()
	if _, err := fmt.Fprintf(c.c, "GET %s HTTP/1.1\r\nHost: api\r\nUser-Agent: palisade-test\r\n\r\n", path); err != nil {
		e.t.Fatal(err)
	}
	resp, err := http.ReadResponse(c.br, nil)
	if err != nil {
		e.t.Fatalf("GET %s: read response: %v", path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// get sends GET path from client to the server on a new connection.
func (e *l7Env) get(path string) (int, string) {
	e.t.Helper()
	c := e.dial()
	defer c.c.Close()
	return e.getOn(c, path)
}

// check asserts that an allowed request gets the server's answer and a
// refused one gets 403 without reaching the handler.
func (e *l7Env) check(when string) {
	e.t.Helper()
	if code, body := e.get("/public/a"); code != http.StatusOK || body != "ok /public/a" {
		e.t.Errorf("%s: GET /public/a: %d %q, want 200 from the server", when, code, body)
	}
	before := len(e.srv.handled())
	if code, _ := e.get("/private"); code != http.StatusForbidden {
		e.t.Errorf("%s: GET /private: %d, want 403", when, code)
	}
	if seen := e.srv.handled(); slices.Contains(seen, "GET /private") || len(seen) != before {
		e.t.Errorf("%s: the server handled %v: the refused request reached it", when, seen)
	}
}

// l7Enforced waits until the node reports the policy enforced and
// L7Enforced true.
func (e *l7Env) l7Enforced(rev string) *v1.NodeEnforcement {
	e.t.Helper()
	var ne *v1.NodeEnforcement
	e.eventually("the HTTP policy enforced", func() error {
		ne = e.nodeEnforcement()
		if ne == nil {
			return errors.New("no NodeEnforcement")
		}
		c := apimeta.FindStatusCondition(ne.Status.Conditions, v1.L7EnforcedCondition)
		if c == nil || c.Status != metav1.ConditionTrue {
			return fmt.Errorf("L7Enforced = %+v", c)
		}
		for _, s := range ne.Status.PolicySets {
			if s.Namespace == "shop" && s.Name == "demo" && s.Revision == rev {
				if s.Policies != 1 || s.Enforced != 1 {
					return fmt.Errorf("set entry %+v", s)
				}
				return nil
			}
		}
		return fmt.Errorf("policySets = %+v", ne.Status.PolicySets)
	})
	return ne
}

// TestL7ThroughTheAgent runs the real agent with the real L7 datapath
// against a real API server: an ingress HTTP rule on a pod whose cgroup
// the test made is decided in the kernel (an allowed request gets the
// server's answer, a refused one 403 and never reaches the handler), the
// node reports the object enforced, and the kernel counts both. The
// agent is then stopped: the pinned state keeps deciding; a new agent
// adopts it (the same sockops link, now running its program) and decides
// the same, on the connection accepted before the restart too.
func TestL7ThroughTheAgent(t *testing.T) {
	e := newL7Env(t)
	e.policyOf("api", "r1", 1, l7Policy)
	ne := e.l7Enforced("r1")
	c := apimeta.FindStatusCondition(ne.Status.Conditions, v1.L7EnforcedCondition)
	t.Logf("L7Enforced: %s", c.Message)
	e.check("through the agent")

	// The kernel counted both; the verify pass exports them as
	// palisade_l7_requests_total (TestL7CountersMetric: a verify pass of
	// this agent with an empty toFQDNs table dereferences a nil
	// status.fqdn in the network subsystem, so it is not run here).
	cnt, err := e.dp.Counters()
	if err != nil {
		t.Fatal(err)
	}
	if cnt[l7.ReasonAllowed] < 1 || cnt[l7.ReasonDenied] < 1 || cnt[l7.ReasonSockets] < 2 {
		t.Errorf("kernel counters %v, want allowed, denied and two sockets counted", cnt)
	}

	old, oldProg := e.sockopsLinkProgram()
	// A keep-alive connection opened under this agent.
	ka := e.dial()
	if code, _ := e.getOn(ka, "/public/ka"); code != http.StatusOK {
		t.Fatalf("keep-alive GET /public/ka: %d", code)
	}
	// The agent stopped and its L7 handles closed: the pins decide, on
	// new connections and on the one opened before.
	e.r.stop()
	if err := e.dp.Close(); err != nil {
		t.Fatal(err)
	}
	e.check("while no agent runs")
	if code, _ := e.getOn(ka, "/public/ka2"); code != http.StatusOK {
		t.Errorf("while no agent runs: keep-alive GET /public/ka2: %d, want 200", code)
	}

	// A new agent: its datapath adopts the pinned one and decides alike.
	e.load()
	e.r = e.start(datapath.Limits{}, time.Hour)
	e.eventually("the new agent's program on the adopted link", func() error {
		ents, err := os.ReadDir(e.pins)
		if err != nil {
			return err
		}
		var links []string
		for _, d := range ents {
			if strings.HasPrefix(d.Name(), "l7_sockops_link_") {
				links = append(links, d.Name())
			}
		}
		if len(links) != 1 {
			return fmt.Errorf("sockops link pins %v under %s, want the adopted one", links, e.pins)
		}
		if id, prog := e.sockopsLinkProgram(); id != old || prog == oldProg {
			return fmt.Errorf("the pinned sockops link is %d running program %d; want the adopted %d running the new agent's program, not %d", id, prog, old, oldProg)
		}
		return nil
	})
	e.l7Enforced("r1")
	e.check("after the restart")
	// A new revision that allows /private too: new connections follow it,
	// and so does the connection accepted under the previous agent (it is
	// in the adopted SOCKHASH, decided by the adopted tables).
	e.policyOf("api", "r2", 1, strings.Replace(l7Policy, `path: "/public.*"}`, `path: "/public.*"}, {method: GET, path: /private}`, 1))
	e.l7Enforced("r2")
	if code, body := e.get("/private"); code != http.StatusOK || body != "ok /private" {
		t.Errorf("r2: GET /private on a new connection: %d %q, want 200 from the server", code, body)
	}
	if code, body := e.getOn(ka, "/private"); code != http.StatusOK || body != "ok /private" {
		t.Errorf("r2: GET /private on a connection accepted before the restart: %d %q, want 200 from the server", code, body)
	}
}
