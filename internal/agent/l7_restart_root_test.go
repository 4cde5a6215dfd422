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
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/cilium/ebpf/rlimit"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "github.com/palisade-dev/palisade/api/v1alpha1"
	l7bpf "github.com/palisade-dev/palisade/bpf/l7"
	"github.com/palisade-dev/palisade/internal/agent"
	"github.com/palisade-dev/palisade/internal/datapath"
	"github.com/palisade-dev/palisade/internal/l7"
	"github.com/palisade-dev/palisade/internal/netlab"
	"github.com/palisade-dev/palisade/internal/testenv"
)

// l7ChildEnv carries an agent process's configuration from
// TestL7AgentKilledDuringTraffic to TestL7AgentProcess.
const l7ChildEnv = "PALISADE_TEST_L7_AGENT_PROCESS"

// l7ChildConf is what an agent process needs: the test's API server,
// its pin directories and its cgroup v2 root.
type l7ChildConf struct {
	Host             string
	CA, Cert, Key    []byte
	PinDir, L7PinDir string
	CgroupRoot       string
}

// TestL7AgentProcess is the agent process TestL7AgentKilledDuringTraffic
// starts (this test binary run again, in the same node namespace): a
// real agent with the real network and L7 datapaths, as env.start runs
// it, until it is killed. Run on its own, it skips.
func TestL7AgentProcess(t *testing.T) {
	raw := os.Getenv(l7ChildEnv)
	if raw == "" {
		t.Skip("the agent process of TestL7AgentKilledDuringTraffic: runs only as its child")
	}
	var conf l7ChildConf
	if err := json.Unmarshal([]byte(raw), &conf); err != nil {
		t.Fatalf("%s: %v", l7ChildEnv, err)
	}
	if err := rlimit.RemoveMemlock(); err != nil {
		t.Fatal(err)
	}
	cfg := &rest.Config{Host: conf.Host, TLSClientConfig: rest.TLSClientConfig{CAData: conf.CA, CertData: conf.Cert, KeyData: conf.Key}}
	s := testenv.Scheme()
	if err := v1.AddToScheme(s); err != nil {
		t.Fatal(err)
	}
	c, err := client.New(cfg, client.Options{Scheme: s})
	if err != nil {
		t.Fatal(err)
	}
	dp, err := l7.Load()
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, cfg: cfg, c: c, pinDir: conf.PinDir, wl: map[string]*netlab.Workload{}}
	e.setup = func(_ ctrl.Manager, a *agent.Agent, _ *datapath.Datapath) {
		a.L7, a.L7PinDir, a.CgroupRoot = dp, conf.L7PinDir, conf.CgroupRoot
	}
	e.start(datapath.Limits{}, time.Hour)
	t.Logf("agent process %d started", os.Getpid())
	select {} // until killed
}

// agentProcess starts an agent process (TestL7AgentProcess) on the
// test's cluster, node and pins; its log goes to a file, shown when the
// test fails. The returned function kills it with SIGKILL.
func (e *l7Env) agentProcess(name string) (kill func()) {
	e.t.Helper()
	conf, err := json.Marshal(l7ChildConf{Host: e.cfg.Host, CA: e.cfg.CAData, Cert: e.cfg.CertData, Key: e.cfg.KeyData,
		PinDir: e.pinDir, L7PinDir: e.pins, CgroupRoot: e.root})
	if err != nil {
		e.t.Fatal(err)
	}
	exe, err := os.Executable()
	if err != nil {
		e.t.Fatal(err)
	}
	logPath := filepath.Join(e.t.TempDir(), "agent-"+name+".log")
	logf, err := os.Create(logPath)
	if err != nil {
		e.t.Fatal(err)
	}
	cmd := exec.Command(exe, "-test.run=^TestL7AgentProcess$", "-test.v", "-test.count=1", "-test.timeout=0")
	cmd.Env = append(os.Environ(), l7ChildEnv+"="+string(conf))
	cmd.Stdout, cmd.Stderr = logf, logf
	// It dies with the test if the test dies first.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		e.t.Fatal(err)
	}
	e.t.Logf("agent process %s: pid %d, log %s", name, cmd.Process.Pid, logPath)
	var once sync.Once
	kill = func() {
		once.Do(func() {
			if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
				e.t.Errorf("kill agent process %s: %v", name, err)
			}
			err := cmd.Wait()
			logf.Close()
			e.t.Logf("agent process %s (pid %d) killed: %v", name, cmd.Process.Pid, err)
		})
	}
	e.t.Cleanup(func() {
		kill()
		if e.t.Failed() {
			b, _ := os.ReadFile(logPath)
			lines := strings.Split(string(b), "\n")
			e.t.Logf("agent process %s, last lines of its log:\n%s", name, strings.Join(lines[max(0, len(lines)-60):], "\n"))
		}
	})
	return kill
}

// l7Generation is the generation the kernel decides requests by, read
// through the pins.
func (e *l7Env) l7Generation() uint64 {
	e.t.Helper()
	var act l7bpf.L7L7Active
	if err := e.pinnedL7("l7_slot").Lookup(uint32(0), &act); err != nil {
		e.t.Fatal(err)
	}
	var conf l7bpf.L7L7Config
	if err := e.pinnedL7("l7_gens").Lookup(act.Slot, &conf); err != nil {
		e.t.Fatal(err)
	}
	return conf.Generation
}

// adopted waits until an agent adopted the pinned state (the sockops
// link runs another program than prog, on the same link) and applied a
// generation after gen; it returns the program and the generation.
func (e *l7Env) adopted(who string, link0 link.ID, prog ebpf.ProgramID, gen uint64) (ebpf.ProgramID, uint64) {
	e.t.Helper()
	var p ebpf.ProgramID
	var g uint64
	e.eventually(who+" adopts the pinned state and applies a generation", func() error {
		id, np := e.sockopsLinkProgram()
		if id != link0 {
			return fmt.Errorf("the pinned sockops link is %d, want the adopted %d", id, link0)
		}
		if np == prog {
			return fmt.Errorf("the sockops link still runs program %d", np)
		}
		if g = e.l7Generation(); g <= gen {
			return fmt.Errorf("l7 generation %d, want one after %d", g, gen)
		}
		p = np
		return nil
	})
	return p, g
}

// l7Traffic is a stream of requests from client to the server: per
// round, an allowed and a refused request on new connections, and an
// allowed one on a keep-alive connection opened before the stream.
type l7Traffic struct {
	e      *l7Env
	ka     *l7Conn
	phase  atomic.Value // string: what the agents are doing
	rounds atomic.Int64
	stop   chan struct{}
	done   chan struct{}

	mu       sync.Mutex
	failures []string
	counts   map[string]int // phase/kind → requests answered as the policy says
}

func (e *l7Env) startTraffic() *l7Traffic {
	e.t.Helper()
	tr := &l7Traffic{e: e, ka: e.dial(), stop: make(chan struct{}), done: make(chan struct{}), counts: map[string]int{}}
	tr.ka.c.SetDeadline(time.Time{})
	tr.phase.Store("start")
	go tr.run()
	e.t.Cleanup(tr.end)
	return tr
}

func (tr *l7Traffic) setPhase(p string) { tr.phase.Store(p) }

func (tr *l7Traffic) fail(format string, args ...any) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	tr.failures = append(tr.failures, fmt.Sprintf("%s: ", tr.phase.Load())+fmt.Sprintf(format, args...))
}

func (tr *l7Traffic) ok(kind string) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	tr.counts[tr.phase.Load().(string)+"/"+kind]++
}

// request sends GET path on c (nil: a new connection) and returns the
// status and body.
func (tr *l7Traffic) request(c *l7Conn, path string) (int, string, error) {
	if c == nil {
		var conn net.Conn
		if err := tr.e.wl["client"].Do(func() error {
			var err error
			conn, err = net.DialTimeout("tcp", tr.e.srv.addr, 5*time.Second)
			return err
		}); err != nil {
			return 0, "", fmt.Errorf("dial: %w", err)
		}
		defer conn.Close()
		c = &l7Conn{c: conn, br: bufio.NewReader(conn)}
	}
	c.c.SetDeadline(time.Now().Add(20 * time.Second)) // a bound on a lost answer
	if _, err := fmt.Fprintf(c.c, "GET %s HTTP/1.1\r\nHost: api\r\nUser-Agent: palisade-kill-test\r\n\r\n", path); err != nil {
		return 0, "", err
	}
	resp, err := http.ReadResponse(c.br, nil)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

func (tr *l7Traffic) run() {
	defer close(tr.done)
	for i := 0; ; i++ {
		select {
		case <-tr.stop:
			return
		default:
		}
		allowed := fmt.Sprintf("/public/new-%d", i)
		if code, body, err := tr.request(nil, allowed); err != nil || code != http.StatusOK || body != "ok "+allowed {
			tr.fail("GET %s on a new connection: %d %q %v, want the server's answer", allowed, code, body, err)
		} else {
			tr.ok("allowed")
		}
		refused := fmt.Sprintf("/private/new-%d", i)
		if code, _, err := tr.request(nil, refused); err != nil || code != http.StatusForbidden {
			tr.fail("GET %s on a new connection: %d %v, want 403", refused, code, err)
		} else {
			tr.ok("refused")
		}
		ka := fmt.Sprintf("/public/ka-%d", i)
		if code, body, err := tr.request(tr.ka, ka); err != nil || code != http.StatusOK || body != "ok "+ka {
			tr.fail("GET %s on the keep-alive connection: %d %q %v, want the server's answer", ka, code, body, err)
			if err != nil {
				return // the connection is lost: the test fails on it
			}
		} else {
			tr.ok("keep-alive")
		}
		tr.rounds.Add(1)
		// Pacing, not a wait: the stream leaves the two shared cores to
		// the agents it runs beside.
		time.Sleep(10 * time.Millisecond)
	}
}

// more waits until n more rounds have run.
func (tr *l7Traffic) more(n int64) {
	tr.e.t.Helper()
	want := tr.rounds.Load() + n
	tr.e.eventually(fmt.Sprintf("%d more rounds of requests (%s)", n, tr.phase.Load()), func() error {
		select {
		case <-tr.done:
			return errors.New("the stream stopped")
		default:
		}
		if got := tr.rounds.Load(); got < want {
			return fmt.Errorf("%d rounds, want %d", got, want)
		}
		return nil
	})
}

func (tr *l7Traffic) end() {
	select {
	case <-tr.stop:
	default:
		close(tr.stop)
	}
	<-tr.done
}

// TestL7AgentKilledDuringTraffic: requests flow from client to the server
// (allowed and refused ones on new connections, allowed ones on a
// keep-alive connection opened before) while the agent stops, an agent
// process starts (adopting the pinned state and applying a generation)
// and is killed with SIGKILL, another is killed as soon as it adopted
// (before, during or right after its first generation), and a third
// starts. Every request is answered
// as the policy says: no allowed one fails, no refused one reaches the
// server. After the restarts a new revision applies to the keep-alive
// connection opened under the first agent.
func TestL7AgentKilledDuringTraffic(t *testing.T) {
	e := newL7Env(t)
	e.policyOf("api", "r1", 1, l7Policy)
	e.l7Enforced("r1")
	e.check("the first agent")
	link0, prog := e.sockopsLinkProgram()
	gen := e.l7Generation()

	tr := e.startTraffic()
	tr.setPhase("first agent")
	tr.more(5)

	tr.setPhase("no agent (stopped)")
	e.r.stop()
	if err := e.dp.Close(); err != nil {
		t.Fatal(err)
	}
	tr.more(5)

	tr.setPhase("agent process 1 starting")
	kill1 := e.agentProcess("1")
	p1, g1 := e.adopted("agent process 1", link0, prog, gen)
	tr.setPhase("agent process 1")
	tr.more(5)

	tr.setPhase("no agent (process 1 killed)")
	kill1()
	tr.more(5)

	// Killed as soon as it runs its program: before, during or right
	// after its first generation.
	tr.setPhase("agent process 2 starting, killed once adopted")
	kill2 := e.agentProcess("2")
	var p2 ebpf.ProgramID
	e.eventually("agent process 2 adopts the pinned state", func() error {
		if _, p2 = e.sockopsLinkProgram(); p2 == p1 {
			return fmt.Errorf("the sockops link still runs program %d", p2)
		}
		return nil
	})
	kill2()
	tr.setPhase("no agent (process 2 killed)")
	tr.more(5)

	tr.setPhase("agent process 3 starting")
	kill3 := e.agentProcess("3")
	_, g3 := e.adopted("agent process 3", link0, p2, g1)
	tr.setPhase("agent process 3")
	tr.more(5)
	tr.end()

	tr.mu.Lock()
	for _, f := range tr.failures[:min(len(tr.failures), 20)] {
		t.Error(f)
	}
	if len(tr.failures) > 20 {
		t.Errorf("and %d more failures", len(tr.failures)-20)
	}
	t.Logf("%d rounds; generations %d, %d, %d; answered as the policy says:", tr.rounds.Load(), gen, g1, g3)
	for _, k := range slices.Sorted(maps.Keys(tr.counts)) {
		t.Logf("  %s: %d", k, tr.counts[k])
	}
	for _, phase := range []string{"first agent", "no agent (stopped)", "agent process 1", "no agent (process 1 killed)", "no agent (process 2 killed)", "agent process 3"} {
		for _, kind := range []string{"allowed", "refused", "keep-alive"} {
			if tr.counts[phase+"/"+kind] == 0 {
				t.Errorf("no %s request answered as the policy says while %s", kind, phase)
			}
		}
	}
	tr.mu.Unlock()
	for _, h := range e.srv.handled() {
		if strings.HasPrefix(h, "GET /private") {
			t.Errorf("the server handled %s: a refused request reached it", h)
		}
	}

	// A new revision that allows /private: the keep-alive connection
	// opened under the first agent follows it.
	e.policyOf("api", "r2", 1, strings.Replace(l7Policy, `path: "/public.*"}`, `path: "/public.*"}, {method: GET, path: /private}`, 1))
	e.eventually("agent process 3 applies r2", func() error {
		if g := e.l7Generation(); g <= g3 {
			return fmt.Errorf("l7 generation %d", g)
		}
		return nil
	})
	if code, body, err := tr.request(tr.ka, "/private"); err != nil || code != http.StatusOK || body != "ok /private" {
		t.Errorf("r2: GET /private on the keep-alive connection opened under the first agent: %d %q %v, want the server's answer", code, body, err)
	}
	kill3()
}
