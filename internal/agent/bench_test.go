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
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	v1 "github.com/palisade-dev/palisade/api/v1alpha1"
	"github.com/palisade-dev/palisade/bpf"
	"github.com/palisade-dev/palisade/controllers"
	agentpkg "github.com/palisade-dev/palisade/internal/agent"
	"github.com/palisade-dev/palisade/internal/devenv"
	"github.com/palisade-dev/palisade/internal/render"
	"github.com/palisade-dev/palisade/internal/testenv"
)

// BenchmarkAgent runs the agent binary as a process against a real API
// server and measures, at 100 and 10k policies over 5k pods (50 of them
// on the agent's node), how long a policy object change takes to reach
// the kernel (from the API write to the new generation in the pinned
// maps, the first seen active with the new port in its policy map), and
// the agent's peak resident memory (VmHWM) and its resident memory at the
// end (VmRSS, and RssAnon: without the binary's pages). Changes are
// SyncBatch apart, each a lone one. The agent runs with the GOMEMLIMIT of
// its DaemonSet (config/agent), or PALISADE_BENCH_GOMEMLIMIT ("off":
// none). make bench-agent runs it. PALISADE_BENCH_LOG=debug and
// PALISADE_BENCH_LOGDIR=<dir> keep the agent's log, with every sync's
// phases, and each change's start and latency (changes-*.txt).
// PALISADE_BENCH_PPROF=<host:port> runs the agent with its pprof
// endpoint there and, with PALISADE_BENCH_LOGDIR, keeps a CPU profile and
// an execution trace of the agent over the changes (their first
// PALISADE_BENCH_PROFILE_SECONDS, 20 by default) and its heap profile at
// the end.
func BenchmarkAgent(b *testing.B) {
	if os.Geteuid() != 0 {
		b.Skip("needs root: the agent loads eBPF programs")
	}
	root, err := testenv.RepoRoot()
	if err != nil {
		b.Fatal(err)
	}
	bin := b.TempDir()
	if err := devenv.Build(root, bin, "agent"); err != nil {
		b.Fatal(err)
	}
	for _, n := range []int{100, 10000} {
		b.Run(fmt.Sprintf("policies=%d/pods=5000", n), func(b *testing.B) {
			// The framework runs a benchmark once with b.N = 1 before the
			// run of -benchtime Nx; here that would start and load a
			// control plane only to throw it away.
			if b.N == 1 && benchTimeN() > 1 {
				return
			}
			benchAgent(b, root, bin, n, 5000)
		})
	}
}

func benchAgent(b *testing.B, root, bin string, policies, pods int) {
	dir := b.TempDir()
	cp, err := devenv.StartControlPlane(filepath.Join(dir, "cp"), filepath.Join(root, "config", "crd", "bases"))
	if err != nil {
		b.Fatal(err)
	}
	defer cp.Stop()
	c := cp.Client
	ctx := context.Background()
	for _, name := range []string{node, "node-2"} {
		if err := devenv.Node(ctx, c, name); err != nil {
			b.Fatal(err)
		}
	}
	load(b, c, policies, pods)
	allocate(b, cp.Config, c, pods)

	pins := benchPinDir(b)
	// The agent runs with the environment its DaemonSet gives it
	// (GOMEMLIMIT); the runtime reads it at start, so setting it here
	// changes only the agent's process.
	limit := manifestEnv(b, root, "GOMEMLIMIT")
	if l, ok := os.LookupEnv("PALISADE_BENCH_GOMEMLIMIT"); ok {
		limit = l // "off" measures without it
	}
	if limit != "" {
		prev, had := os.LookupEnv("GOMEMLIMIT")
		os.Setenv("GOMEMLIMIT", limit)
		defer func() {
			if had {
				os.Setenv("GOMEMLIMIT", prev)
			} else {
				os.Unsetenv("GOMEMLIMIT")
			}
		}()
		b.Logf("agent GOMEMLIMIT=%s", limit)
	}
	pprofAddr := cmp.Or(os.Getenv("PALISADE_BENCH_PPROF"), "0")
	agent, err := devenv.Start("agent", filepath.Join(bin, "agent"), cp.Kubeconfig, filepath.Join(dir, "agent.log"),
		"--node-name="+node, "--pin-dir="+pins, "--metrics-bind-address=0", "--health-probe-bind-address=127.0.0.1:0",
		"--pprof-bind-address="+pprofAddr, "--zap-log-level="+benchLogLevel(), "--zap-time-encoding=rfc3339nano")
	if err != nil {
		b.Fatal(err)
	}
	defer func() {
		agent.Stop()
		log, _ := os.ReadFile(agent.Log)
		if d := os.Getenv("PALISADE_BENCH_LOGDIR"); d != "" {
			// The whole log (b.Log output is truncated): with
			// PALISADE_BENCH_LOG=debug it has every sync's phases.
			name := filepath.Join(d, fmt.Sprintf("agent-%d-policies.log", policies))
			if err := os.WriteFile(name, log, 0o644); err != nil {
				b.Error(err)
			}
		}
		if b.Failed() || os.Getenv("PALISADE_BENCH_LOG") != "" {
			b.Log(string(log))
		}
	}()
	start := time.Now()
	waitGen(b, pins, 1, 0)
	b.Logf("first sync of %d policies and %d pods: %v", policies, pods, time.Since(start))

	// One policy object is changed again and again; each change moves the
	// port it allows.
	np := &v1.NetworkPolicy{}
	if err := c.Get(ctx, client.ObjectKey{Namespace: "ns-0", Name: "p-0"}, np); err != nil {
		b.Fatal(err)
	}
	var lat []time.Duration
	var changes strings.Builder // each change's start and latency, to place it in the agent's log
	profiled := benchProfile(b, pprofAddr, policies)
	b.ResetTimer()
	for i := range b.N {
		// Each change is a lone one, as a commit is, not part of a burst
		// that the agent batches (agent.SyncBatch).
		b.StopTimer()
		time.Sleep(agentpkg.SyncBatch)
		b.StartTimer()
		port := 20000 + i
		gen := generation(b, pins)
		np.Spec.Ingress[0].ToPorts[0].Ports[0].Port = intstr.FromInt(port)
		t0 := time.Now()
		if err := c.Update(ctx, np); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, waitGen(b, pins, gen+1, uint16(port)).Sub(t0))
		fmt.Fprintf(&changes, "%d %s %.1f ms\n", i, t0.UTC().Format(time.RFC3339Nano), float64(lat[i].Microseconds())/1000)
	}
	b.StopTimer()
	profiled()
	if d := os.Getenv("PALISADE_BENCH_LOGDIR"); d != "" {
		if err := os.WriteFile(filepath.Join(d, fmt.Sprintf("changes-%d-policies.txt", policies)), []byte(changes.String()), 0o644); err != nil {
			b.Error(err)
		}
	}
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(lat[(len(lat)*99+99)/100-1].Microseconds())/1000, "p99-ms")
	b.ReportMetric(float64(procStatus(b, agent, "VmHWM:")), "peak-rss-MiB")
	b.ReportMetric(float64(procStatus(b, agent, "VmRSS:")), "rss-MiB")
	// Of which the Go heap and stacks, as against the binary's pages.
	b.ReportMetric(float64(procStatus(b, agent, "RssAnon:")), "rss-anon-MiB")
}

// benchProfile starts, when the agent serves pprof at addr and
// PALISADE_BENCH_LOGDIR is set, a CPU profile and an execution trace of
// the agent, kept in that directory; the function it returns waits for
// both and then keeps the agent's heap profile.
func benchProfile(b *testing.B, addr string, policies int) func() {
	d := os.Getenv("PALISADE_BENCH_LOGDIR")
	if addr == "0" || d == "" {
		return func() {}
	}
	secs := cmp.Or(os.Getenv("PALISADE_BENCH_PROFILE_SECONDS"), "20")
	fetch := func(path, name, ext string) {
		resp, err := http.Get("http://" + addr + path)
		if err != nil {
			b.Error(err)
			return
		}
		defer resp.Body.Close()
		f, err := os.Create(filepath.Join(d, fmt.Sprintf("%s-%d-policies.%s", name, policies, ext)))
		if err != nil {
			b.Error(err)
			return
		}
		defer f.Close()
		if _, err := io.Copy(f, resp.Body); err != nil {
			b.Error(err)
		}
	}
	var wg sync.WaitGroup
	wg.Go(func() { fetch("/debug/pprof/profile?seconds="+secs, "cpu", "pprof") })
	wg.Go(func() { fetch("/debug/pprof/trace?seconds="+secs, "trace", "out") })
	return func() {
		wg.Wait()
		fetch("/debug/pprof/heap?gc=1", "heap", "pprof")
	}
}

// benchTimeN is N of -test.benchtime Nx, 0 for a duration.
func benchTimeN() int {
	f := flag.Lookup("test.benchtime")
	if f == nil {
		return 0
	}
	n, err := strconv.Atoi(strings.TrimSuffix(f.Value.String(), "x"))
	if err != nil || !strings.HasSuffix(f.Value.String(), "x") {
		return 0
	}
	return n
}

// manifestEnv is the value of the agent container's environment variable
// name in config/agent/agent.yaml ("" when it sets none).
func manifestEnv(b *testing.B, root, name string) string {
	f, err := os.Open(filepath.Join(root, "config", "agent", "agent.yaml"))
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	dec := utilyaml.NewYAMLOrJSONDecoder(f, 4096)
	for {
		var ds appsv1.DaemonSet
		if err := dec.Decode(&ds); err != nil {
			if errors.Is(err, io.EOF) {
				return ""
			}
			b.Fatalf("config/agent/agent.yaml: %v", err)
		}
		if ds.Kind != "DaemonSet" {
			continue
		}
		for _, c := range ds.Spec.Template.Spec.Containers {
			for _, e := range c.Env {
				if c.Name == "agent" && e.Name == name {
					return e.Value
				}
			}
		}
	}
}

// load creates policies NetworkPolicies in 50 namespaces and pods running
// pods, 1% of them on the agent's node, with 4 concurrent writers.
func load(b *testing.B, c client.Client, policies, pods int) {
	ctx := context.Background()
	for i := range 50 {
		if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("ns-%d", i)}}); err != nil {
			b.Fatal(err)
		}
	}
	work := make(chan func() error)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var firstErr error
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for f := range work {
				if err := f(); err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = err
					}
					mu.Unlock()
				}
			}
		}()
	}
	for i := range policies {
		work <- func() error {
			np := &v1.NetworkPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: fmt.Sprintf("ns-%d", i%50), Name: fmt.Sprintf("p-%d", i),
				Labels:      map[string]string{render.LabelPolicySetName: "bench", render.LabelPolicySetNamespace: "ns-0"},
				Annotations: map[string]string{render.AnnotationRevision: "rev1"}}}
			np.Spec.EndpointSelector = metav1.LabelSelector{MatchLabels: map[string]string{"app": fmt.Sprintf("app-%d", i%100)}}
			np.Spec.Ingress = []v1.IngressRule{{
				FromEndpoints: []metav1.LabelSelector{{MatchLabels: map[string]string{"app": fmt.Sprintf("app-%d", (i+50)%100)}}}, // app-(i+50) pods share the policy's namespace
				ToPorts:       []v1.PortRule{{Ports: []v1.PortProtocol{{Port: intstr.FromInt(1000 + i%5000), Protocol: v1.ProtocolTCP}}}},
			}}
			return c.Create(ctx, np)
		}
	}
	for i := range pods {
		work <- func() error {
			nodeName := "node-2"
			if i%100 == 0 {
				nodeName = node
			}
			ip := fmt.Sprintf("10.%d.%d.%d", 100+i/65536, (i/256)%256, i%256)
			p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: fmt.Sprintf("ns-%d", i%50), Name: fmt.Sprintf("pod-%d", i),
				Labels: map[string]string{"app": fmt.Sprintf("app-%d", i%100)}},
				Spec: corev1.PodSpec{NodeName: nodeName, Containers: []corev1.Container{{Name: "c", Image: "none"}}}}
			if err := c.Create(ctx, p); err != nil {
				return err
			}
			p.Status = corev1.PodStatus{Phase: corev1.PodRunning, PodIP: ip, PodIPs: []corev1.PodIP{{IP: ip}}}
			return c.Status().Update(ctx, p)
		}
	}
	close(work)
	wg.Wait()
	if firstErr != nil {
		b.Fatal(firstErr)
	}
}

// allocate runs the manager's identity controller until every pod's
// label set has an Identity.
func allocate(b *testing.B, cfg *rest.Config, c client.Client, pods int) {
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{Scheme: c.Scheme(), Metrics: metricsserver.Options{BindAddress: "0"},
		Controller: config.Controller{SkipNameValidation: &skip}})
	if err != nil {
		b.Fatal(err)
	}
	if err := (&controllers.IdentityReconciler{Client: mgr.GetClient(),
		Allocator: &controllers.IdentityAllocator{Client: mgr.GetClient(), Reader: mgr.GetAPIReader()}}).SetupWithManager(mgr); err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	defer func() { cancel(); <-done }()
	pairs := map[[2]int]bool{} // the (namespace, app) label sets of load's pods
	for i := range pods {
		pairs[[2]int{i % 50, i % 100}] = true
	}
	want := len(pairs)
	deadline := time.Now().Add(5 * time.Minute)
	for {
		var ids v1.IdentityList
		if err := c.List(ctx, &ids); err != nil {
			b.Fatal(err)
		}
		if len(ids.Items) >= want {
			return
		}
		if time.Now().After(deadline) {
			b.Fatalf("%d identities after 5 minutes, want %d", len(ids.Items), want)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// hasPort reports whether the active generation's hash policy map has an
// entry for port.
func hasPort(pins string, port uint16) bool {
	active, err := ebpf.LoadPinnedMap(filepath.Join(pins, "maps", "active"), nil)
	if err != nil {
		return false
	}
	defer active.Close()
	var slot uint32
	if err := active.Lookup(uint32(0), &slot); err != nil {
		return false
	}
	outer, err := ebpf.LoadPinnedMap(filepath.Join(pins, "maps", "gen_policy"), nil)
	if err != nil {
		return false
	}
	defer outer.Close()
	var id uint32
	if err := outer.Lookup(slot&1, &id); err != nil {
		return false
	}
	m, err := ebpf.NewMapFromID(ebpf.MapID(id))
	if err != nil {
		return false
	}
	defer m.Close()
	var k bpf.PalisadePolicyKey
	var v bpf.PalisadePolicyValue
	it := m.Iterate()
	for it.Next(&k, &v) {
		if k.Port == port {
			return true
		}
	}
	return false
}

func mountBPF(dir string) error { return unix.Mount("bpf", dir, "bpf", 0, "") }

func unmountBPF(dir string) { unix.Unmount(dir, unix.MNT_DETACH) }

func benchPinDir(b *testing.B) string {
	dir := b.TempDir()
	if err := mountBPF(dir); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { unmountBPF(dir) })
	return filepath.Join(dir, "palisade")
}

// generation reads the active generation from the pinned maps.
func generation(b *testing.B, pins string) uint64 {
	active, err := ebpf.LoadPinnedMap(filepath.Join(pins, "maps", "active"), nil)
	if err != nil {
		return 0
	}
	defer active.Close()
	gens, err := ebpf.LoadPinnedMap(filepath.Join(pins, "maps", "generations"), nil)
	if err != nil {
		return 0
	}
	defer gens.Close()
	var slot uint32
	if err := active.Lookup(uint32(0), &slot); err != nil {
		return 0
	}
	var gen uint64
	if err := gens.Lookup(slot&1, &gen); err != nil {
		return 0
	}
	return gen
}

// waitGen polls the pinned maps until generation gen or later is active
// and, when port is set, its policy map holds an entry for port. It
// returns when that generation was first seen active: the time the
// kernel enforced it, not counting the search of its policy map for the
// port, which at 10k policies reads every entry.
func waitGen(b *testing.B, pins string, gen uint64, port uint16) time.Time {
	deadline := time.Now().Add(5 * time.Minute)
	var seen uint64
	var at time.Time
	for time.Now().Before(deadline) {
		g := generation(b, pins)
		now := time.Now()
		if g >= gen && g != seen {
			seen, at = g, now
			if port == 0 || hasPort(pins, port) {
				return at
			}
		}
		time.Sleep(time.Millisecond)
	}
	b.Fatalf("generation %d with port %d never became active", gen, port)
	return time.Time{}
}

// procStatus is a memory line of the process's /proc status, in MiB.
func procStatus(b *testing.B, p *devenv.Proc, field string) int {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", p.Pid()))
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if v, ok := strings.CutPrefix(s.Text(), field); ok {
			kb, _ := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")))
			return kb / 1024
		}
	}
	b.Fatalf("no %s", field)
	return 0
}

// benchLogLevel is the agent's log level in the benchmark: error, or
// PALISADE_BENCH_LOG (e.g. debug, to see each sync's phases).
func benchLogLevel() string {
	if l := os.Getenv("PALISADE_BENCH_LOG"); l != "" {
		return l
	}
	return "error"
}
