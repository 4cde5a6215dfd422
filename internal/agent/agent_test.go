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
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	"sigs.k8s.io/yaml"

	v1 "github.com/palisade-dev/palisade/api/v1alpha1"
	"github.com/palisade-dev/palisade/controllers"
	"github.com/palisade-dev/palisade/internal/agent"
	"github.com/palisade-dev/palisade/internal/datapath"
	"github.com/palisade-dev/palisade/internal/devenv"
	"github.com/palisade-dev/palisade/internal/metrics"
	"github.com/palisade-dev/palisade/internal/netlab"
	"github.com/palisade-dev/palisade/internal/render"
	"github.com/palisade-dev/palisade/internal/testenv"
)

const node = "node-1"

// TestMain runs the tests in a node namespace of their own
// (netlab.Isolate), which forwards between the workloads: the agent, in
// process, attaches to the host ends of their veths there, and no test
// here writes a device or sysctl of the machine's namespace, which other
// packages' tests share.
func TestMain(m *testing.M) { os.Exit(netlab.Isolate(m.Run)) }

// skip lets each restarted agent register its controllers again in the
// same test process.
var skip = true

// env is one test's cluster, node and workloads.
type env struct {
	t      *testing.T
	cfg    *rest.Config
	c      client.Client
	pinDir string
	wl     map[string]*netlab.Workload
	// links, when set, is what started agents resolve interfaces with.
	links agent.Links
	// api is the test's control plane, to restart its API server.
	api *envtest.Environment
	// setup, when set, is called on each started agent before its
	// manager starts (observer_root_test.go adds the flow observer).
	setup func(ctrl.Manager, *agent.Agent, *datapath.Datapath)
}

func requireNode(t *testing.T) {
	t.Helper()
	if err := netlab.Available(); err != nil {
		if os.Getenv("PALISADE_REQUIRE_TOOLS") == "1" && os.Geteuid() == 0 {
			t.Fatal(err)
		}
		t.Skip(err)
	}
	if !netlab.Isolated() {
		t.Fatal("not in a node namespace of its own: TestMain must run the tests through netlab.Isolate")
	}
}

// pinDir returns a fresh pin dir on a bpffs (devenv.PinDir), used by
// every agent the test starts, as on a node.
func pinDir(t *testing.T) string {
	dir, cleanup, err := devenv.PinDir(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cleanup() })
	return dir
}

func newEnv(t *testing.T) *env {
	requireNode(t)
	api, cfg, _ := testenv.StartEnv(t, testenv.RepoPath(t, "config", "crd", "bases"))
	s := testenv.Scheme()
	if err := v1.AddToScheme(s); err != nil {
		t.Fatal(err)
	}
	c, err := client.New(cfg, client.Options{Scheme: s})
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, cfg: cfg, c: c, pinDir: pinDir(t), wl: map[string]*netlab.Workload{}, api: api}
	e.create(&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "shop", Labels: map[string]string{"team": "shop"}}})
	e.create(&corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: node, Labels: map[string]string{"kubernetes.io/hostname": node}}})
	return e
}

func (e *env) create(o client.Object) {
	e.t.Helper()
	if err := e.c.Create(context.Background(), o); err != nil {
		e.t.Fatalf("create %T %s: %v", o, o.GetName(), err)
	}
}

// pod makes a workload and registers it as a running pod on the node.
func (e *env) pod(name, app, ip string) *netlab.Workload {
	e.t.Helper()
	ns := fmt.Sprintf("pa%d%s", os.Getpid()%10000, name)
	w, err := netlab.Create(ns, netip.MustParseAddr(ip))
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { w.Delete() })
	ctx, cancel := context.WithCancel(context.Background())
	e.t.Cleanup(cancel)
	if err := w.Serve(ctx, 8080); err != nil {
		e.t.Fatal(err)
	}
	if err := w.Serve(ctx, 8081); err != nil {
		e.t.Fatal(err)
	}
	p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: name, Labels: map[string]string{"app": app}},
		Spec: corev1.PodSpec{NodeName: node, Containers: []corev1.Container{{Name: "c", Image: "none"}}}}
	e.create(p)
	p.Status = corev1.PodStatus{Phase: corev1.PodRunning, PodIP: ip, PodIPs: []corev1.PodIP{{IP: ip}}}
	if err := e.c.Status().Update(context.Background(), p); err != nil {
		e.t.Fatal(err)
	}
	e.wl[name] = w
	return w
}

// policy applies a NetworkPolicy owned by PolicySet shop/demo at rev.
func (e *env) policy(name, rev, spec string) {
	e.t.Helper()
	e.policyOf(name, rev, 0, spec)
}

// policyOf is policy for a revision that renders total objects (0: the
// count is not annotated).
func (e *env) policyOf(name, rev string, total int, spec string) {
	e.t.Helper()
	np := &v1.NetworkPolicy{}
	if err := yaml.UnmarshalStrict([]byte(spec), &np.Spec); err != nil {
		e.t.Fatal(err)
	}
	np.Name, np.Namespace = name, "shop"
	np.Labels = map[string]string{render.LabelPolicySetName: "demo", render.LabelPolicySetNamespace: "shop"}
	np.Annotations = map[string]string{render.AnnotationRevision: rev}
	if total > 0 {
		np.Annotations[render.AnnotationRevisionObjects] = strconv.Itoa(total)
	}
	old := &v1.NetworkPolicy{}
	if err := e.c.Get(context.Background(), client.ObjectKeyFromObject(np), old); err == nil {
		np.ResourceVersion = old.ResourceVersion
		if err := e.c.Update(context.Background(), np); err != nil {
			e.t.Fatal(err)
		}
		return
	}
	e.create(np)
}

// running is a started agent.
type running struct {
	a      *agent.Agent
	dp     *datapath.Datapath
	reg    *prometheus.Registry
	cancel context.CancelFunc
	done   chan error
}

// start runs the agent (and the manager's identity controller, which
// allocates the identities it needs) against the test cluster.
func (e *env) start(limits datapath.Limits, verify time.Duration) *running {
	e.t.Helper()
	dp, err := datapath.Open(e.pinDir, &datapath.Options{Limits: limits})
	if err != nil {
		e.t.Fatal(err)
	}
	mgr, err := ctrl.NewManager(e.cfg, ctrl.Options{Scheme: e.c.Scheme(), Cache: agent.CacheOptions(),
		Metrics: metricsserver.Options{BindAddress: "0"}, Controller: config.Controller{SkipNameValidation: &skip}, Logger: zap.New(zap.UseDevMode(true), zap.WriteTo(testWriter{e.t}))})
	if err != nil {
		e.t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	m, err := metrics.New(reg, node)
	if err != nil {
		e.t.Fatal(err)
	}
	var links agent.Links = agent.RouteLinks{}
	if e.links != nil {
		links = e.links
	}
	a := &agent.Agent{Client: mgr.GetClient(), APIReader: mgr.GetAPIReader(), Datapath: dp, Node: node, Links: links, Metrics: m,
		Recorder: mgr.GetEventRecorder("palisade-agent"), VerifyInterval: verify, Log: mgr.GetLogger()}
	// No link-event watch: the tests of this package add and remove
	// interfaces in the node namespace they share, and a verify pass that
	// triggers would repair tampering before the test sees it bite. The
	// verify passes here are the test's own (VerifyNow); the e2e runs the
	// agent with the watch.
	if e.setup != nil {
		e.setup(mgr, a, dp)
	}
	if err := a.SetupWithManager(mgr, false); err != nil {
		e.t.Fatal(err)
	}
	if err := (&controllers.IdentityReconciler{Client: mgr.GetClient(),
		Allocator: &controllers.IdentityAllocator{Client: mgr.GetClient(), Reader: mgr.GetAPIReader()}}).SetupWithManager(mgr); err != nil {
		e.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{a: a, dp: dp, reg: reg, cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- mgr.Start(ctx) }()
	e.t.Cleanup(r.stop)
	return r
}

func (r *running) stop() {
	if r.cancel == nil {
		return
	}
	r.cancel()
	<-r.done
	r.dp.Close()
	r.cancel = nil
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(string(p))
	return len(p), nil
}

// eventually polls f until it returns nil or a minute passes.
func (e *env) eventually(what string, f func() error) {
	e.t.Helper()
	if err := devenv.WaitFor(context.Background(), time.Minute, what, f); err != nil {
		e.t.Fatal(err)
	}
}

func (e *env) nodeEnforcement() *v1.NodeEnforcement {
	ne := &v1.NodeEnforcement{}
	if err := e.c.Get(context.Background(), client.ObjectKey{Name: node}, ne); err != nil {
		return nil
	}
	return ne
}

// enforced waits until the node reports shop/demo enforced at rev.
func (e *env) enforced(rev string) *v1.NodeEnforcement {
	e.t.Helper()
	var ne *v1.NodeEnforcement
	e.eventually("enforced "+rev, func() error {
		ne = e.nodeEnforcement()
		if ne == nil {
			return fmt.Errorf("no NodeEnforcement")
		}
		c := apimeta.FindStatusCondition(ne.Status.Conditions, v1.EnforcedCondition)
		if c == nil || c.Status != metav1.ConditionTrue {
			return fmt.Errorf("Enforced = %+v", c)
		}
		for _, s := range ne.Status.PolicySets {
			if s.Namespace == "shop" && s.Name == "demo" && s.Revision == rev {
				return nil
			}
		}
		return fmt.Errorf("policySets = %+v", ne.Status.PolicySets)
	})
	return ne
}

const serverPolicy = `
endpointSelector: {matchLabels: {app: server}}
ingress:
- fromEndpoints: [{matchLabels: {app: client}}]
  toPorts: [{ports: [{port: "8080", protocol: TCP}]}]
`

const serverPolicy8081 = `
endpointSelector: {matchLabels: {app: server}}
ingress:
- fromEndpoints: [{matchLabels: {app: client}}]
  toPorts: [{ports: [{port: "8081", protocol: TCP}]}]
`

// traffic asserts which of client→server TCP 8080 and 8081 pass.
func (e *env) traffic(when string, want8080, want8081 bool) {
	e.t.Helper()
	cl, srv := e.wl["client"], e.wl["server"]
	for _, c := range []struct {
		port int
		want bool
	}{{8080, want8080}, {8081, want8081}} {
		if got := cl.TCP(srv.IP, c.port, time.Second); got != c.want {
			e.t.Errorf("%s: client→server TCP %d passed=%v, want %v", when, c.port, got, c.want)
		}
	}
}

func TestAgentEnforcesRepairsAndAdopts(t *testing.T) {
	e := newEnv(t)
	e.pod("client", "client", "10.77.0.1")
	e.pod("server", "server", "10.77.0.2")
	e.policy("server", "rev1", serverPolicy)

	r := e.start(datapath.Limits{}, time.Hour) // verify passes are driven by the test
	ne := e.enforced("rev1")
	if got := ne.Status.PolicySets[0]; got.Policies != 1 || got.Generation < 1 {
		t.Errorf("policySets[0] = %+v, want 1 policy at a generation", got)
	}
	e.traffic("rev1", true, false)

	// A new revision in the API reaches the kernel.
	e.policy("server", "rev2", serverPolicy8081)
	e.enforced("rev2")
	e.traffic("rev2", false, true)

	// Tampering 1: a policy entry deleted from the active generation.
	deletePolicyEntries(t, e.pinDir)
	e.traffic("after tampering with the policy map", false, false)
	r.a.VerifyNow(context.Background())
	e.traffic("after repair", false, true)
	e.assertDrift(v1.KernelDriftMapEntry, "policy ", 1)

	// Tampering 2: a program detached from the server's veth.
	detach(t, e.pinDir, e.wl["server"].Ifindex, "egress")
	r.a.VerifyNow(context.Background())
	e.assertDrift(v1.KernelDriftProgram, "detached", 2)
	e.traffic("after re-attaching", false, true)

	// Tampering 3: a map pin and a link pin removed.
	if err := os.Remove(filepath.Join(e.pinDir, "maps", "conntrack")); err != nil {
		t.Fatal(err)
	}
	r.a.VerifyNow(context.Background())
	e.assertDrift(v1.KernelDriftPin, "map pin", 3)
	if _, err := os.Stat(filepath.Join(e.pinDir, "maps", "conntrack")); err != nil {
		t.Errorf("conntrack pin not restored: %v", err)
	}
	linkPin := filepath.Join(e.pinDir, "links", fmt.Sprintf("tcx_%d_egress_ingress", e.wl["server"].Ifindex))
	if err := os.Remove(linkPin); err != nil {
		t.Fatal(err)
	}
	r.a.VerifyNow(context.Background())
	e.assertDrift(v1.KernelDriftPin, "link pin", 4)
	e.traffic("after re-pinning", false, true)
	if got := driftCount(t, r.reg, "Pin"); got != 2 {
		t.Errorf("palisade_drift_total{what=Pin} = %v, want 2", got)
	}

	// The agent is killed: enforcement goes on without it.
	gen := r.dp.Generation()
	r.stop()
	e.traffic("agent stopped", false, true)
	e.policy("server", "rev3", serverPolicy) // changes wait for the next agent
	e.traffic("agent stopped, rev3 in the API", false, true)

	// A new agent adopts the pinned generation, then applies rev3.
	r2 := e.start(datapath.Limits{}, time.Hour)
	if g := r2.dp.Generation(); g != gen {
		t.Errorf("the new agent opened generation %d, want the pinned %d", g, gen)
	}
	e.enforced("rev3")
	e.traffic("rev3 after restart", true, false)
}

// TestAgentAdoptsWithoutANewGeneration: an agent restarted with nothing
// changed keeps the pinned generation as it is.
func TestAgentAdoptsWithoutANewGeneration(t *testing.T) {
	e := newEnv(t)
	e.pod("client", "client", "10.78.0.1")
	e.pod("server", "server", "10.78.0.2")
	e.policy("server", "rev1", serverPolicy)
	r := e.start(datapath.Limits{}, time.Hour)
	e.enforced("rev1")
	gen := r.dp.Generation()
	r.stop()

	r2 := e.start(datapath.Limits{}, time.Hour)
	e.eventually("synced", func() error {
		if !r2.a.Synced() {
			return fmt.Errorf("not synced")
		}
		return nil
	})
	if g := r2.dp.Generation(); g != gen {
		t.Errorf("generation %d after restart, want %d (adopted, not re-created)", g, gen)
	}
	e.traffic("after restart", true, false)
}

// TestAgentMapFullFailsClosed: a state that does not fit keeps the
// previous generation, and a workload it would have added is dropped
// rather than left unenforced.
func TestAgentMapFullFailsClosed(t *testing.T) {
	e := newEnv(t)
	e.pod("client", "client", "10.79.0.1")
	e.pod("server", "server", "10.79.0.2")
	e.policy("server", "rev1", serverPolicy)
	r := e.start(datapath.Limits{Policy: 64}, time.Hour)
	e.enforced("rev1")
	extra := e.pod("extra", "extra", "10.79.0.3")
	if !extra.TCP(e.wl["client"].IP, 8080, time.Second) {
		t.Fatal("extra→client before the big policy: dropped, want passed (client has no ingress policy)")
	}
	// 200 ports for extra, 8080 among them: more policy entries than the
	// map holds. Were the policy enforced, or extra left unenforced,
	// extra→client 8080 would pass; failing closed drops it.
	spec := "endpointSelector: {matchLabels: {app: extra}}\negress:\n- toPorts:\n  - ports: [{port: \"8080\", protocol: TCP}]\n"
	for p := 1000; p < 1400; p += 2 { // not a range: one entry each
		spec += "  - ports: [{port: \"" + strconv.Itoa(p) + "\", protocol: TCP}]\n"
	}
	e.policy("server", "rev2", serverPolicy)
	e.policy("extra", "rev2", spec)
	e.eventually("MapFull", func() error {
		ne := e.nodeEnforcement()
		c := apimeta.FindStatusCondition(ne.Status.Conditions, v1.EnforcedCondition)
		if c == nil || c.Reason != v1.MapFullReason {
			return fmt.Errorf("Enforced = %+v", c)
		}
		return nil
	})
	ne := e.nodeEnforcement()
	if len(ne.Status.Errors) != 1 || ne.Status.Errors[0].Endpoint != "shop/extra" || ne.Status.Errors[0].Reason != v1.MapFullReason {
		t.Errorf("errors = %+v, want shop/extra MapFull", ne.Status.Errors)
	}
	if extra.TCP(e.wl["client"].IP, 8080, time.Second) {
		t.Error("extra→client passed while its policy does not fit: want dropped (fail closed)")
	}
	e.traffic("while the map is full", true, false) // the previous policy stays

	// The policy leaves: everything fits again and extra is released.
	if err := e.c.Delete(context.Background(), &v1.NetworkPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "extra"}}); err != nil {
		t.Fatal(err)
	}
	ne = e.enforced("rev2")
	if len(ne.Status.Errors) != 0 {
		t.Errorf("errors after the policy left = %+v, want none", ne.Status.Errors)
	}
	if !extra.TCP(e.wl["client"].IP, 8080, time.Second) {
		t.Error("extra→client after the oversized policy left: dropped, want passed")
	}
	if r.dp.Generation() < 3 {
		t.Errorf("generation %d: want the first state, the fail-closed one and the recovered one", r.dp.Generation())
	}
}

// driftCount sums palisade_drift_total for what.
func driftCount(t *testing.T, reg *prometheus.Registry, what string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() != metrics.DriftTotal {
			continue
		}
		for _, m := range mf.Metric {
			for _, l := range m.Label {
				if l.GetName() == "what" && l.GetValue() == what {
					sum += m.GetCounter().GetValue()
				}
			}
		}
	}
	return sum
}

// assertDrift waits for the n-th drift on NodeEnforcement, newest first
// of kind, naming what, repaired.
func (e *env) assertDrift(kind v1.KernelDriftKind, what string, n int64) {
	e.t.Helper()
	e.eventually(fmt.Sprintf("drift %d (%s)", n, kind), func() error {
		ne := e.nodeEnforcement()
		if ne == nil || ne.Status.DriftRepairs < n || len(ne.Status.Drifts) == 0 {
			return fmt.Errorf("status = %+v", ne.Status)
		}
		for _, d := range ne.Status.Drifts {
			if d.Kind == kind && d.Repaired && strings.Contains(d.What, what) {
				c := apimeta.FindStatusCondition(ne.Status.Conditions, v1.DriftedCondition)
				if c == nil || c.Status != metav1.ConditionTrue {
					return fmt.Errorf("Drifted = %+v", c)
				}
				return nil
			}
		}
		return fmt.Errorf("no repaired %s drift naming %q in %+v", kind, what, ne.Status.Drifts)
	})
}

// deletePolicyEntries deletes every entry of the active generation's hash
// policy map, as someone with bpftool could.
func deletePolicyEntries(t *testing.T, pinDir string) {
	t.Helper()
	active, err := ebpf.LoadPinnedMap(filepath.Join(pinDir, "maps", "active"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer active.Close()
	var slot uint32
	if err := active.Lookup(uint32(0), &slot); err != nil {
		t.Fatal(err)
	}
	outer, err := ebpf.LoadPinnedMap(filepath.Join(pinDir, "maps", "gen_policy"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer outer.Close()
	var id uint32
	if err := outer.Lookup(slot&1, &id); err != nil {
		t.Fatal(err)
	}
	inner, err := ebpf.NewMapFromID(ebpf.MapID(id))
	if err != nil {
		t.Fatal(err)
	}
	defer inner.Close()
	var keys [][]byte
	k := make([]byte, inner.KeySize())
	it := inner.Iterate()
	v := make([]byte, inner.ValueSize())
	for it.Next(&k, &v) {
		keys = append(keys, append([]byte(nil), k...))
	}
	if len(keys) == 0 {
		t.Fatal("the active policy map is empty")
	}
	for _, k := range keys {
		if err := inner.Delete(k); err != nil {
			t.Fatal(err)
		}
	}
}

// detach detaches the TCX link pinned for ifindex's hook, leaving its pin.
func detach(t *testing.T, pinDir string, ifindex int, hook string) {
	t.Helper()
	dir := "ingress"
	if hook == "ingress" {
		dir = "egress"
	}
	l, err := link.LoadPinnedLink(filepath.Join(pinDir, "links", fmt.Sprintf("tcx_%d_%s_%s", ifindex, hook, dir)), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if err := l.Detach(); err != nil {
		t.Fatal(err)
	}
}
