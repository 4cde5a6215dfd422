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

// Real-kernel tests of the paths where a workload could end up without
// enforcement, and of the one-revision rule.

import (
	"fmt"
	"net/netip"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1 "github.com/palisade-dev/palisade/api/v1alpha1"
	"github.com/palisade-dev/palisade/internal/agent"
	"github.com/palisade-dev/palisade/internal/datapath"
)

// waitError waits until the node reports endpoint's error with reason.
func (e *env) waitError(endpoint, reason string) {
	e.t.Helper()
	e.eventually(endpoint+" "+reason, func() error {
		ne := e.nodeEnforcement()
		if ne == nil {
			return fmt.Errorf("no NodeEnforcement")
		}
		for _, x := range ne.Status.Errors {
			if x.Endpoint == endpoint && x.Reason == reason {
				return nil
			}
		}
		return fmt.Errorf("errors = %+v", ne.Status.Errors)
	})
}

// TestAgentEndpointsFullDropsANewWorkload: when the endpoints map is full,
// a workload that appears gets no endpoint entry; its interface still gets
// the workload programs, which drop an address they have no entry for.
func TestAgentEndpointsFullDropsANewWorkload(t *testing.T) {
	e := newEnv(t)
	e.pod("client", "client", "10.81.0.1")
	e.pod("server", "server", "10.81.0.2")
	e.policy("server", "rev1", serverPolicy)
	r := e.start(datapath.Limits{Endpoints: 2}, time.Hour)
	e.enforced("rev1")
	extra := e.pod("extra", "extra", "10.81.0.3")
	e.waitError("shop/extra", v1.MapFullReason)
	// client has no policy: were extra left unenforced, this would pass.
	if extra.TCP(e.wl["client"].IP, 8080, time.Second) {
		t.Error("extra→client passed while the endpoints map has no room for extra: want dropped")
	}
	if c, err := r.dp.Counters(); err != nil || c.NoEndpoint == 0 {
		t.Errorf("counters %+v, %v: want drops counted as no endpoint", c, err)
	}
	e.traffic("while the endpoints map is full", true, false)
	if got := apimeta.FindStatusCondition(e.nodeEnforcement().Status.Conditions, v1.EnforcedCondition); got == nil || got.Status != metav1.ConditionFalse {
		t.Errorf("Enforced = %+v, want False", got)
	}
}

// failingLinks fails the route lookup of some addresses, as when a
// workload's route is not (yet, or no longer) the one the agent expects.
type failingLinks struct {
	agent.RouteLinks
	fail map[netip.Addr]bool
}

func (l *failingLinks) Interface(a netip.Addr) (int, string, error) {
	if l.fail[a] {
		return 0, "", fmt.Errorf("no route to %s", a)
	}
	return l.RouteLinks.Interface(a)
}

// TestAgentRouteLookupFailureFailsClosed: a workload whose interface
// cannot be resolved any more keeps the programs on its interface, with
// deny-all entries: its traffic is dropped, not passed or left to the old
// policy, until its interface resolves again.
func TestAgentRouteLookupFailureFailsClosed(t *testing.T) {
	e := newEnv(t)
	links := &failingLinks{fail: map[netip.Addr]bool{}}
	e.links = links
	e.pod("client", "client", "10.82.0.1")
	e.pod("server", "server", "10.82.0.2")
	e.policy("server", "rev1", serverPolicy)
	r := e.start(datapath.Limits{}, time.Hour)
	e.enforced("rev1")
	e.traffic("before", true, false)

	links.fail[e.wl["client"].IP] = true
	e.policy("server", "rev2", serverPolicy) // any change makes the agent sync
	e.waitError("shop/client", "InterfaceNotFound")
	e.traffic("while client's interface cannot be resolved", false, false)

	delete(links.fail, e.wl["client"].IP)
	r.a.Trigger()
	e.enforced("rev2") // retried by itself: the agent requeues such a sync
	e.traffic("after client's interface resolves again", true, false)
}

// TestAgentKeepsTheLastCompleteRevision: objects of two revisions of one
// PolicySet (a manager that died between two applies) are never compiled
// together; the node keeps the previous revision until the new one is
// complete.
func TestAgentKeepsTheLastCompleteRevision(t *testing.T) {
	e := newEnv(t)
	e.pod("client", "client", "10.83.0.1")
	e.pod("server", "server", "10.83.0.2")
	e.policyOf("server", "rev1", 2, serverPolicy)
	e.policyOf("server-egress", "rev1", 2, "endpointSelector: {matchLabels: {app: server}}\negressDeny: [{toEntities: [world]}]\n")
	r := e.start(datapath.Limits{}, time.Hour)
	e.enforced("rev1")
	e.traffic("rev1", true, false)
	gen := r.dp.Generation()

	// rev2 moves the port; only one of its two objects is applied.
	e.policyOf("server", "rev2", 2, serverPolicy8081)
	e.eventually("rev2 pending", func() error {
		for _, s := range e.nodeEnforcement().Status.PolicySets {
			if s.PendingRevision == "rev2" && s.Revision == "rev1" {
				return nil
			}
		}
		return fmt.Errorf("policySets = %+v", e.nodeEnforcement().Status.PolicySets)
	})
	e.traffic("rev2 half applied", true, false)
	if r.dp.Generation() != gen {
		t.Errorf("generation %d → %d: a half-applied revision was written", gen, r.dp.Generation())
	}

	// The agent restarts in the middle: it keeps the pinned generation
	// rather than compile two revisions together.
	r.stop()
	r = e.start(datapath.Limits{}, time.Hour)
	time.Sleep(2 * time.Second)
	e.traffic("agent restarted during a half-applied revision", true, false)
	if r.dp.Generation() != gen {
		t.Errorf("generation %d → %d after the restart: a half-applied revision was written", gen, r.dp.Generation())
	}

	e.policyOf("server-egress", "rev2", 2, "endpointSelector: {matchLabels: {app: server}}\negressDeny: [{toEntities: [world]}]\n")
	e.enforced("rev2")
	e.traffic("rev2 complete", false, true)
}

// TestAgentSurvivesAPIServerRestart: the API server goes away and comes
// back under a running agent; the watch gap and the relist change
// nothing in the kernel.
func TestAgentSurvivesAPIServerRestart(t *testing.T) {
	e := newEnv(t)
	e.pod("client", "client", "10.84.0.1")
	e.pod("server", "server", "10.84.0.2")
	e.policy("server", "rev1", serverPolicy)
	r := e.start(datapath.Limits{}, time.Hour)
	e.enforced("rev1")
	gen := r.dp.Generation()

	// The API server dies (SIGKILL) and comes back with the same command
	// line: the same port, certificates and etcd.
	restart := killAPIServer(t, e.cfg.Host)
	e.traffic("while the API server is down", true, false)
	time.Sleep(3 * time.Second) // long enough for the watches to fail
	restart()
	e.enforced("rev1")
	time.Sleep(3 * time.Second) // the relists land
	e.traffic("after the API server restarted", true, false)
	if r.dp.Generation() != gen {
		t.Errorf("generation %d → %d: the restart changed the kernel", gen, r.dp.Generation())
	}
	// And the agent still follows the cluster.
	e.policy("server", "rev2", serverPolicy8081)
	e.enforced("rev2")
	e.traffic("rev2", false, true)
}

// killAPIServer SIGKILLs the kube-apiserver serving host (https://IP:port)
// and returns a function that starts it again with the same command line
// and environment (envtest's own Stop would remove its certificates).
func killAPIServer(t *testing.T, host string) (restart func()) {
	t.Helper()
	u, err := url.Parse(host)
	if err != nil {
		t.Fatal(err)
	}
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		args := strings.Split(strings.TrimRight(string(b), "\x00"), "\x00")
		if !strings.HasSuffix(args[0], "kube-apiserver") || !slices.Contains(args, "--secure-port="+u.Port()) {
			continue
		}
		dir := filepath.Dir(p)
		env, err := os.ReadFile(filepath.Join(dir, "environ"))
		if err != nil {
			t.Fatal(err)
		}
		pid, _ := strconv.Atoi(filepath.Base(dir))
		if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		for i := 0; i < 100; i++ { // the port is free once the process is gone
			if _, err := os.Stat(dir); err != nil {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		return func() {
			cmd := exec.Command(args[0], args[1:]...)
			cmd.Env = strings.Split(strings.TrimRight(string(env), "\x00"), "\x00")
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
		}
	}
	t.Fatalf("no kube-apiserver serving %s", host)
	return nil
}
