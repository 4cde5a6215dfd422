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

package hollow

// TestScale is make bench-scale: a real kube-apiserver and etcd
// (envtest), the manager's controllers in this process, a Git server, and
// -hollow.nodes hollow agents in a child process (the test binary run
// again), so that /proc tells the manager's memory and CPU from the
// agents'. See docs/scale.md.

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/rest"
	toolscache "k8s.io/client-go/tools/cache"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	v1 "github.com/palisade-dev/palisade/api/v1alpha1"
	"github.com/palisade-dev/palisade/controllers"
	"github.com/palisade-dev/palisade/internal/gitserver"
	"github.com/palisade-dev/palisade/internal/testenv"
)

var (
	flagNodes    = flag.Int("hollow.nodes", 0, "hollow nodes for TestScale (make bench-scale); 0 skips it")
	flagPods     = flag.Int("hollow.pods", 10000, "pods spread over the hollow nodes")
	flagPolicies = flag.Int("hollow.policies", 100, "NetworkPolicies in Git, spread over -hollow.sets PolicySets")
	flagSets     = flag.Int("hollow.sets", 10, "PolicySets reading the repository")
	flagCommits  = flag.Int("hollow.commits", 20, "commits to time")
	flagRest     = flag.Duration("hollow.rest", 2*time.Minute, "how long the agents' requests are counted at rest")
	flagWait     = flag.Duration("hollow.wait", 15*time.Minute, "how long one phase (start, a rollout) may take before the test fails")
	flagStart    = flag.Int("hollow.start-parallel", 4, "hollow agents started at once")
	flagMemLimit = flag.String("hollow.memlimit", "10GiB", "GOMEMLIMIT of the process that runs the hollow agents, so that their garbage does not take the machine's memory")
	flagShared   = flag.Bool("hollow.shared-transport", false, "let the hollow agents share HTTP/2 connections (hollow.Options.SharedTransport) instead of one connection each")
	flagOut      = flag.String("hollow.out", "", "also write the report to this file")
	flagPing     = flag.Int("hollow.http2-ping-timeout", 15, "seconds the agents' HTTP/2 connections wait for a ping's answer before they count as lost (client-go's HTTP2_PING_TIMEOUT_SECONDS; 15 is client-go's default)")
	flagProfile  = flag.String("hollow.profile", "", "write CPU profiles of the rollouts (manager, hollow agents) and a heap profile of the agents after them to this directory")
	flagNoGzip   = flag.Bool("hollow.disable-compression", false, "the hollow agents ask for uncompressed responses (hollow.Options.DisableCompression; cmd/agent does not yet)")
	flagAPIProf  = flag.Duration("hollow.apiserver-profile", time.Minute, "with -hollow.profile, the API server's CPU profile over this much of the rollouts from the first commit (apiserver.cpu.pprof)")
)

// childEnv names the directory through which the parent and the child
// that runs the agents talk: config.json in, state.json out.
const childEnv = "PALISADE_HOLLOW_CHILD"

// childConfig is what the child needs to reach the API server.
type childConfig struct {
	Host                      string
	CAData, CertData, KeyData []byte
	Nodes                     []string
}

// childState is what the child reports, rewritten every second.
type childState struct {
	Started  int
	Restarts int
	// Exits counts agents whose manager returned and was started again;
	// ExitErrors are the errors the first few returned with.
	Exits      int
	ExitErrors []string
	Errors     []string
	Requests   map[string]int64
	// StatusFields counts the NodeEnforcement status patches by what
	// they write (StatusFields).
	StatusFields map[string]int64
	Applies      int
}

func TestScale(t *testing.T) {
	if dir := os.Getenv(childEnv); dir != "" {
		runChild(t, dir)
		return
	}
	if *flagNodes <= 0 {
		t.Skip("set -hollow.nodes (make bench-scale) to run the hollow-node benchmark")
	}
	ctrllog.SetLogger(logr.Discard())
	s := &scale{t: t, nodes: *flagNodes, pods: *flagPods, policies: *flagPolicies, sets: *flagSets}
	s.run()
}

// scale is one run of the benchmark.
type scale struct {
	t                           *testing.T
	nodes, pods, policies, sets int
	cfg                         *rest.Config
	c                           client.Client
	mgrCounter                  Counter
	mgrReader                   client.Reader
	co                          *gitserver.Checkout
	repo                        *v1.PolicyRepository
	ns                          string
	child                       *exec.Cmd
	childDir                    string
	apiPID, etcdPID             int
	ports                       []int // per policy, the port the next commit changes
	report                      strings.Builder
	nodeNames                   []string
	// phases are, per wait, when the repository stored the commit, every
	// set applied it, every node enforced it and every set said so.
	phases  [][4]time.Duration
	trackMu sync.Mutex
	want    string
	done    map[string]bool
}

func (s *scale) logf(format string, args ...any) {
	s.t.Helper()
	line := fmt.Sprintf(format, args...)
	s.t.Log(line)
	s.report.WriteString(line + "\n")
}

func (s *scale) run() {
	t := s.t
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	_, cfg, _ := testenv.StartEnv(t, testenv.RepoPath(t, "config", "crd", "bases"))
	s.cfg = cfg
	scheme := newScheme(t)
	cfg = rest.CopyConfig(cfg)
	cfg.QPS, cfg.Burst = -1, 0
	var err error
	if s.c, err = client.New(cfg, client.Options{Scheme: scheme}); err != nil {
		t.Fatal(err)
	}
	s.findServers()
	s.logf("hollow scale: %d nodes, %d pods, %d policies in %d PolicySets, %d commits; API server pid %d, etcd pid %d",
		s.nodes, s.pods, s.policies, s.sets, *flagCommits, s.apiPID, s.etcdPID)

	mgr := s.startManager(ctx, scheme)
	s.setupCluster(ctx)
	s.startTracking(ctx, mgr)

	t0 := time.Now()
	s.startChild()
	defer s.stopChild()
	cpu0 := s.cpu()
	stopStartProfiles := s.startPhaseProfiles()
	s.waitChildStarted()
	s.logf("agents started in %s (%d restarted after a failed start)", time.Since(t0).Round(time.Millisecond), s.childState().Restarts)
	first := s.co.Head().String()
	s.waitEnforced(ctx, first, t0)
	took := time.Since(t0)
	cpu1 := s.cpu()
	stopStartProfiles()
	st := s.childState()
	req := st.Requests
	s.logf("every node enforces the first revision %s after %s", first[:8], took.Round(time.Millisecond))
	s.logf("start phase: CPU seconds %s; agents %d requests (%.1f/s: %s); NodeEnforcement status writes by the fields they write: %s",
		cpu1.sub(cpu0), Total(req), float64(Total(req))/took.Seconds(), top(req, 12), top(st.StatusFields, 6))
	s.usage("after start")

	s.atRest(*flagRest)
	s.rollouts(ctx, *flagCommits)
	s.atRest(*flagRest)
	s.usage("at the end")
	if *flagOut != "" {
		if err := os.WriteFile(*flagOut, []byte(s.report.String()), 0o644); err != nil {
			t.Error(err)
		}
	}
}

func newScheme(t *testing.T) *runtime.Scheme {
	scheme := testenv.Scheme()
	if err := v1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	return scheme
}

// findServers finds the API server and etcd processes envtest started.
func (s *scale) findServers() {
	u, err := url.Parse(s.cfg.Host)
	if err != nil {
		s.t.Fatal(err)
	}
	if s.apiPID, err = FindProcess("kube-apiserver", "--secure-port="+u.Port()); err != nil {
		s.t.Fatal(err)
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", s.apiPID))
	if err != nil {
		s.t.Fatal(err)
	}
	for _, a := range strings.Split(string(b), "\x00") {
		if v, ok := strings.CutPrefix(a, "--etcd-servers="); ok {
			eu, err := url.Parse(strings.Split(v, ",")[0])
			if err != nil {
				s.t.Fatal(err)
			}
			if s.etcdPID, err = FindProcess("etcd", eu.Host); err != nil {
				s.t.Fatal(err)
			}
		}
	}
}

// startManager runs the manager's controllers as cmd/manager sets them up
// (PolicyRepository, PolicySet, Identity), counting its requests.
func (s *scale) startManager(ctx context.Context, scheme *runtime.Scheme) ctrl.Manager {
	t := s.t
	cfg := rest.CopyConfig(s.cfg)
	cfg.UserAgent = "palisade-manager"
	cfg.Wrap(s.mgrCounter.Wrap)
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:  scheme,
		Metrics: metricsserver.Options{BindAddress: "0"},
		Client:  client.Options{Cache: &client.CacheOptions{DisableFor: []client.Object{&corev1.Secret{}}}},
		Logger:  logr.Discard(),
	})
	if err != nil {
		t.Fatal(err)
	}
	storage := &controllers.Storage{BasePath: t.TempDir()}
	if err := errors.Join(
		(&controllers.PolicyRepositoryReconciler{Client: mgr.GetClient(), Recorder: mgr.GetEventRecorder("policyrepository-controller"), Storage: storage}).SetupWithManager(mgr),
		(&controllers.PolicySetReconciler{Client: mgr.GetClient(), Recorder: mgr.GetEventRecorder("policyset-controller"), Storage: storage}).SetupWithManager(mgr),
		(&controllers.IdentityReconciler{Client: mgr.GetClient(), Allocator: &controllers.IdentityAllocator{Client: mgr.GetClient(), Reader: mgr.GetAPIReader()}}).SetupWithManager(mgr),
	); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	mctx, cancel := context.WithCancel(ctx)
	go func() { done <- mgr.Start(mctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("manager: %v", err)
		}
	})
	if !mgr.GetCache().WaitForCacheSync(ctx) {
		t.Fatal("manager cache did not sync")
	}
	return mgr
}

// policyFiles is the repository: set k's directory holds its policies,
// each selecting one app and admitting the next app on its port.
func (s *scale) policyFiles(only int) map[string]string {
	files := map[string]string{}
	for i := range s.policies {
		if only >= 0 && i != only {
			continue
		}
		set := i % s.sets
		app, peer := i%100, (i+1)%100
		files[fmt.Sprintf("set%d/p%03d.cue", set, i)] = fmt.Sprintf(`package set%d

np: "p%03d": {
	apiVersion: "palisade.dev/v1alpha1"
	kind:       "NetworkPolicy"
	metadata: name: "p%03d"
	spec: {
		endpointSelector: matchLabels: app: "a%02d"
		ingress: [{fromEndpoints: [{matchLabels: app: "a%02d"}], toPorts: [{ports: [{port: %d, protocol: "TCP"}]}]}]
	}
}
`, set, i, i, app, peer, s.ports[i])
	}
	return files
}

// setupCluster creates the nodes, the pods (running, with addresses) and
// the repository with its PolicySets, and waits for the first revision
// to be applied and every pod's identity.
func (s *scale) setupCluster(ctx context.Context) {
	t := s.t
	t0 := time.Now()
	s.ns = "scale"
	s.must(s.c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: s.ns}}))
	s.nodeNames = make([]string, s.nodes)
	for i := range s.nodes {
		s.nodeNames[i] = fmt.Sprintf("hollow-%04d", i)
	}
	parallel(64, s.nodes, func(i int) error {
		n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: s.nodeNames[i], Labels: map[string]string{"kubernetes.io/hostname": s.nodeNames[i]}},
			Spec: corev1.NodeSpec{PodCIDRs: []string{fmt.Sprintf("10.%d.%d.0/24", 1+i/256, i%256)}}}
		n.Spec.PodCIDR = n.Spec.PodCIDRs[0]
		if err := s.c.Create(ctx, n); err != nil {
			return err
		}
		n.Status.Addresses = []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: fmt.Sprintf("172.%d.%d.1", 16+i/256, i%256)}}
		return s.c.Status().Update(ctx, n)
	}, t)
	parallel(64, s.pods, func(i int) error {
		node := i % s.nodes
		slot := i / s.nodes
		p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("pod-%05d", i), Namespace: s.ns, Labels: map[string]string{"app": fmt.Sprintf("a%02d", i%100)}},
			Spec: corev1.PodSpec{NodeName: s.nodeNames[node], Containers: []corev1.Container{{Name: "c", Image: "hollow"}}}}
		if err := s.c.Create(ctx, p); err != nil {
			return err
		}
		ip := fmt.Sprintf("10.%d.%d.%d", 1+node/256, node%256, 2+slot)
		p.Status.Phase = corev1.PodRunning
		p.Status.PodIP = ip
		p.Status.PodIPs = []corev1.PodIP{{IP: ip}}
		return s.c.Status().Update(ctx, p)
	}, t)
	s.logf("created %d nodes and %d running pods in %s", s.nodes, s.pods, time.Since(t0).Round(time.Millisecond))

	srv := gitserver.New(t, gitserver.Options{Username: "palisade", Password: "hollow-password"})
	srv.InitBare(t, "policies")
	s.co = srv.Checkout(t, "policies")
	s.ports = make([]int, s.policies)
	for i := range s.ports {
		s.ports[i] = 8000
	}
	s.co.Commit("policies", s.policyFiles(-1), gitserver.CommitOptions{})
	s.co.Push(false)
	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "git", Namespace: s.ns},
		StringData: map[string]string{"username": "palisade", "password": "hollow-password", "ca.crt": string(srv.CAPEM())}}
	s.must(s.c.Create(ctx, secret))
	s.repo = &v1.PolicyRepository{ObjectMeta: metav1.ObjectMeta{Name: "policies", Namespace: s.ns}, Spec: v1.PolicyRepositorySpec{
		URL: srv.URL("policies"), Interval: metav1.Duration{Duration: time.Hour}, SecretRef: &v1.LocalObjectReference{Name: "git"}}}
	s.must(s.c.Create(ctx, s.repo))
	for k := range s.sets {
		ps := &v1.PolicySet{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("set%d", k), Namespace: s.ns}, Spec: v1.PolicySetSpec{
			SourceRef: v1.SourceReference{Name: s.repo.Name}, Path: fmt.Sprintf("set%d", k), Interval: metav1.Duration{Duration: time.Hour}}}
		s.must(s.c.Create(ctx, ps))
	}
	s.poll("identities allocated for every app", func() error {
		var ids v1.IdentityList
		if err := s.c.List(ctx, &ids); err != nil {
			return err
		}
		if want := min(100, s.pods); len(ids.Items) < want {
			return fmt.Errorf("%d identities, want %d", len(ids.Items), want)
		}
		return nil
	})
	s.logf("cluster ready (objects, identities) after %s", time.Since(t0).Round(time.Millisecond))
}

// startTracking follows the NodeEnforcements in the manager's cache: a
// node is done when it is Ready and lists every set at the revision of
// the wanted commit, every object enforced.
func (s *scale) startTracking(ctx context.Context, mgr ctrl.Manager) {
	inf, err := mgr.GetCache().GetInformer(ctx, &v1.NodeEnforcement{})
	if err != nil {
		s.t.Fatal(err)
	}
	s.done = map[string]bool{}
	on := func(o any) {
		ne, ok := o.(*v1.NodeEnforcement)
		if !ok {
			return
		}
		s.trackMu.Lock()
		defer s.trackMu.Unlock()
		if s.want != "" && s.nodeDone(ne, s.want) {
			s.done[ne.Name] = true
		}
	}
	if _, err := inf.AddEventHandler(toolscache.ResourceEventHandlerFuncs{
		AddFunc:    on,
		UpdateFunc: func(_, n any) { on(n) },
	}); err != nil {
		s.t.Fatal(err)
	}
	s.mgrReader = mgr.GetCache()
}

func (s *scale) nodeDone(ne *v1.NodeEnforcement, commit string) bool {
	if !apimeta.IsStatusConditionTrue(ne.Status.Conditions, v1.ReadyCondition) {
		return false
	}
	n := 0
	for _, e := range ne.Status.PolicySets {
		if e.Namespace == s.ns && strings.HasSuffix(e.Revision, commit) && e.Partial == 0 && e.NotEnforced == 0 {
			n++
		}
	}
	return n == s.sets
}

// waitEnforced waits until every node enforces commit, and reports when
// the PolicySets' summaries said so too.
func (s *scale) waitEnforced(ctx context.Context, commit string, since time.Time) (nodes, sets time.Duration) {
	s.trackMu.Lock()
	s.want, s.done = commit, map[string]bool{}
	var all v1.NodeEnforcementList
	if err := s.mgrReader.List(ctx, &all); err != nil {
		s.trackMu.Unlock()
		s.t.Fatal(err)
	}
	for i := range all.Items {
		if s.nodeDone(&all.Items[i], commit) {
			s.done[all.Items[i].Name] = true
		}
	}
	s.trackMu.Unlock()
	deadline := time.Now().Add(*flagWait)
	var fetched, applied time.Duration
	for nodes == 0 || sets == 0 {
		if fetched == 0 {
			var repo v1.PolicyRepository
			if err := s.mgrReader.Get(ctx, client.ObjectKeyFromObject(s.repo), &repo); err == nil && repo.Status.Artifact != nil && strings.HasSuffix(repo.Status.Artifact.Revision, commit) {
				fetched = time.Since(since)
			}
		}
		if applied == 0 && s.setsApplied(ctx, commit) {
			applied = time.Since(since)
		}
		s.trackMu.Lock()
		n := len(s.done)
		s.trackMu.Unlock()
		if nodes == 0 && n == s.nodes {
			nodes = time.Since(since)
		}
		if sets == 0 && s.setsEnforced(ctx, commit) {
			sets = time.Since(since)
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("after %s: %d/%d nodes enforce %s; sets enforced: %v", *flagWait, n, s.nodes, commit, sets > 0)
		}
		time.Sleep(20 * time.Millisecond)
	}
	s.phases = append(s.phases, [4]time.Duration{fetched, applied, nodes, sets})
	return nodes, sets
}

// setsApplied is whether every PolicySet applied commit.
func (s *scale) setsApplied(ctx context.Context, commit string) bool {
	var list v1.PolicySetList
	// Read only, every 20 ms: without deep copies, so that the benchmark
	// costs the manager's process little.
	if err := s.mgrReader.List(ctx, &list, client.InNamespace(s.ns), client.UnsafeDisableDeepCopy); err != nil || len(list.Items) != s.sets {
		return false
	}
	for _, ps := range list.Items {
		if !strings.HasSuffix(ps.Status.LastAppliedRevision, commit) {
			return false
		}
	}
	return true
}

// setsEnforced is whether every PolicySet's summary counts every node
// enforcing commit.
func (s *scale) setsEnforced(ctx context.Context, commit string) bool {
	var list v1.PolicySetList
	if err := s.mgrReader.List(ctx, &list, client.InNamespace(s.ns), client.UnsafeDisableDeepCopy); err != nil {
		return false
	}
	if len(list.Items) != s.sets {
		return false
	}
	for _, ps := range list.Items {
		e := ps.Status.Enforcement
		if !strings.HasSuffix(ps.Status.LastAppliedRevision, commit) || e == nil || int(e.Enforced) != s.nodes || int(e.Nodes) != s.nodes {
			return false
		}
	}
	return true
}

// rollouts times commits: each changes one policy's port, is pushed, and
// the repository is asked to reconcile (as the push webhook does).
func (s *scale) rollouts(ctx context.Context, commits int) {
	var lat, setLat []time.Duration
	st0 := s.childState()
	before, fieldsBefore := st0.Requests, st0.StatusFields
	mgrBefore := s.mgrCounter.Snapshot()
	api0 := s.apiServerMetrics()
	cpu0 := s.cpu()
	stopProfiles := s.startProfiles()
	waitAPIProfile := s.apiServerProfile("apiserver.cpu.pprof", *flagAPIProf)
	t0 := time.Now()
	for i := range commits {
		p := i * 7 % s.policies
		s.ports[p]++
		start := time.Now()
		h := s.co.Commit(fmt.Sprintf("commit %d", i), s.policyFiles(p), gitserver.CommitOptions{})
		s.co.Push(false)
		patch := client.MergeFrom(s.repo.DeepCopy())
		if s.repo.Annotations == nil {
			s.repo.Annotations = map[string]string{}
		}
		s.repo.Annotations[v1.ReconcileRequestAnnotation] = time.Now().Format(time.RFC3339Nano)
		s.must(s.c.Patch(ctx, s.repo, patch))
		nodes, sets := s.waitEnforced(ctx, h.String(), start)
		lat, setLat = append(lat, nodes), append(setLat, sets)
		ph := s.phases[len(s.phases)-1]
		s.logf("commit %2d: stored %s, applied by every set %s, enforced by every node %s, every PolicySet says so %s", i,
			ph[0].Round(time.Millisecond), ph[1].Round(time.Millisecond), nodes.Round(time.Millisecond), sets.Round(time.Millisecond))
	}
	took := time.Since(t0)
	cpu1 := s.cpu()
	api1 := s.apiServerMetrics()
	stopProfiles()
	waitAPIProfile()
	st1 := s.childState()
	req := Sub(st1.Requests, before)
	mreq := Sub(s.mgrCounter.Snapshot(), mgrBefore)
	slices.Sort(lat)
	slices.Sort(setLat)
	s.logf("commit → every node enforces: p50 %s p99 %s max %s (goal: p99 under 5s)", percentile(lat, 50), percentile(lat, 99), lat[len(lat)-1])
	s.logf("commit → every PolicySet summary counts every node: p50 %s p99 %s", percentile(setLat, 50), percentile(setLat, 99))
	s.logf("during %d rollouts (%s): agents %.1f requests/s (%s), manager %.1f requests/s (%s)", commits, took.Round(time.Millisecond),
		float64(Total(req))/took.Seconds(), top(req, 6), float64(Total(mreq))/took.Seconds(), top(mreq, 6))
	s.logf("CPU seconds during the rollouts: %s; per node and commit: agents %.3f, API server %.3f", cpu1.sub(cpu0),
		(cpu1.agents-cpu0.agents)/float64(s.nodes*commits), (cpu1.apiserver-cpu0.apiserver)/float64(s.nodes*commits))
	s.logf("API server during the rollouts, per commit (its /metrics, every client): requests %s; watch events sent %s; watch bytes sent %s",
		perCommit(api1.sub(api0, "request "), commits, 10), perCommit(api1.sub(api0, "watch events "), commits, 8), perCommit(api1.sub(api0, "watch bytes "), commits, 8))
	ne := req["patch nodeenforcements/status"]
	s.logf("NodeEnforcement status writes during the rollouts: %d, %.1f per node and commit; by the status fields they write: %s", ne, float64(ne)/float64(s.nodes*commits), top(Sub(st1.StatusFields, fieldsBefore), 8))
}

// atRest counts the agents' requests over d with nothing changing.
func (s *scale) atRest(d time.Duration) {
	before := s.childState().Requests
	mgrBefore := s.mgrCounter.Snapshot()
	api0 := s.apiServerMetrics()
	cpu0 := s.cpu()
	time.Sleep(d)
	req := Sub(s.childState().Requests, before)
	mreq := Sub(s.mgrCounter.Snapshot(), mgrBefore)
	api1 := s.apiServerMetrics()
	s.logf("at rest for %s: agents %.2f requests/s in total (%s) (goal: under 50), manager %.2f requests/s (%s); CPU seconds %s; API server (every client) requests %s, watch events %s", d,
		float64(Total(req))/d.Seconds(), top(req, 6), float64(Total(mreq))/d.Seconds(), top(mreq, 6), s.cpu().sub(cpu0),
		top(api1.sub(api0, "request "), 6), top(api1.sub(api0, "watch events "), 6))
}

// cpuSample is the CPU seconds of the processes.
type cpuSample struct{ manager, agents, apiserver, etcd float64 }

func (c cpuSample) sub(o cpuSample) string {
	return fmt.Sprintf("manager %.1f, agents %.1f, API server %.1f, etcd %.1f",
		c.manager-o.manager, c.agents-o.agents, c.apiserver-o.apiserver, c.etcd-o.etcd)
}

func (s *scale) cpu() cpuSample {
	get := func(pid int) float64 {
		u, err := ProcUsage(pid)
		if err != nil {
			s.t.Fatal(err)
		}
		return u.CPUSeconds
	}
	return cpuSample{manager: get(os.Getpid()), agents: get(s.child.Process.Pid), apiserver: get(s.apiPID), etcd: get(s.etcdPID)}
}

// usage reports the processes' memory.
func (s *scale) usage(when string) {
	var parts []string
	for _, p := range []struct {
		name string
		pid  int
	}{{"manager (this process: manager, Git client, benchmark)", os.Getpid()}, {"API server", s.apiPID}, {"etcd", s.etcdPID}, {"hollow agents", s.child.Process.Pid}} {
		u, err := ProcUsage(p.pid)
		if err != nil {
			s.t.Fatal(err)
		}
		parts = append(parts, fmt.Sprintf("%s RSS %d MiB (peak %d MiB)", p.name, u.RSS>>20, u.PeakRSS>>20))
	}
	st := s.childState()
	agents, err := ProcUsage(s.child.Process.Pid)
	if err != nil {
		s.t.Fatal(err)
	}
	s.logf("memory %s: %s (%.1f MiB per hollow agent); agents applied %d generations in all; %d agents exited and were restarted", when, strings.Join(parts, ", "), float64(agents.RSS)/float64(s.nodes)/(1<<20), st.Applies, st.Exits)
	if len(st.ExitErrors) > 0 {
		s.logf("agents' managers returned with: %s", strings.Join(st.ExitErrors, "; "))
	}
}

// startChild runs the agents in the test binary run again.
func (s *scale) startChild() {
	s.childDir = s.t.TempDir()
	cc := childConfig{Host: s.cfg.Host, CAData: s.cfg.CAData, CertData: s.cfg.CertData, KeyData: s.cfg.KeyData, Nodes: s.nodeNames}
	b, err := json.Marshal(cc)
	if err != nil {
		s.t.Fatal(err)
	}
	s.must(os.WriteFile(filepath.Join(s.childDir, "config.json"), b, 0o600))
	s.child = exec.Command(os.Args[0], "-test.run=^TestScale$", fmt.Sprintf("-hollow.start-parallel=%d", *flagStart), fmt.Sprintf("-hollow.shared-transport=%v", *flagShared), fmt.Sprintf("-hollow.disable-compression=%v", *flagNoGzip), "-hollow.profile="+*flagProfile)
	// A thousand agents on two busy cores may answer a ping late: with
	// shared connections one lost connection is hundreds of agents'
	// watches failing at once (docs/scale.md). -hollow.http2-ping-timeout
	// lets a run on a loaded machine wait longer, as a node with its own
	// CPU would not need to.
	s.child.Env = append(os.Environ(), childEnv+"="+s.childDir, "GOMEMLIMIT="+*flagMemLimit,
		fmt.Sprintf("HTTP2_PING_TIMEOUT_SECONDS=%d", *flagPing))
	s.child.Stdout, s.child.Stderr = os.Stderr, os.Stderr
	s.must(s.child.Start())
}

func (s *scale) stopChild() {
	if s.child == nil || s.child.Process == nil {
		return
	}
	_ = s.child.Process.Signal(syscall.SIGTERM)
	_ = s.child.Wait()
}

func (s *scale) childState() childState {
	var st childState
	b, err := os.ReadFile(filepath.Join(s.childDir, "state.json"))
	if err != nil {
		return st
	}
	if err := json.Unmarshal(b, &st); err != nil {
		s.t.Fatalf("child state: %v", err)
	}
	return st
}

func (s *scale) waitChildStarted() {
	s.poll("hollow agents started", func() error {
		if s.child.ProcessState != nil {
			return fmt.Errorf("child exited: %v", s.child.ProcessState)
		}
		st := s.childState()
		if len(st.Errors) > 0 {
			s.t.Fatalf("hollow agents: %s", strings.Join(st.Errors, "; "))
		}
		if st.Started < s.nodes {
			return fmt.Errorf("%d/%d started, %d exited and restarted (%s)", st.Started, s.nodes, st.Exits, strings.Join(st.ExitErrors, "; "))
		}
		return nil
	})
}

// runChild runs the hollow agents until SIGTERM, writing state.json.
func runChild(t *testing.T, dir string) {
	ctrllog.SetLogger(logr.Discard())
	b, err := os.ReadFile(filepath.Join(dir, "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	var cc childConfig
	if err := json.Unmarshal(b, &cc); err != nil {
		t.Fatal(err)
	}
	cfg := &rest.Config{Host: cc.Host, TLSClientConfig: rest.TLSClientConfig{CAData: cc.CAData, CertData: cc.CertData, KeyData: cc.KeyData}}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	childProfiles(ctx, *flagProfile)
	var (
		counter Counter
		mu      sync.Mutex
		nodes   []*Node
		errs    []string
		started atomic.Int64
		retries atomic.Int64
		exits   atomic.Int64
		exitErr []string
	)
	opts := Options{Config: cfg, Scheme: newScheme(t), Counter: &counter, SharedTransport: *flagShared, DisableCompression: *flagNoGzip}
	write := func() {
		mu.Lock()
		st := childState{Started: int(started.Load()), Restarts: int(retries.Load()), Exits: int(exits.Load()), ExitErrors: slices.Clone(exitErr), Errors: slices.Clone(errs), Requests: counter.Snapshot(), StatusFields: counter.StatusSnapshot()}
		for _, n := range nodes {
			st.Applies += n.Kernel.Recorded().Applies
		}
		mu.Unlock()
		b, err := json.Marshal(st)
		if err == nil {
			tmp := filepath.Join(dir, "state.json.tmp")
			if os.WriteFile(tmp, b, 0o600) == nil {
				_ = os.Rename(tmp, filepath.Join(dir, "state.json"))
			}
		}
	}
	go func() {
		sem := make(chan struct{}, max(1, *flagStart))
		var wg sync.WaitGroup
		for _, name := range cc.Nodes {
			sem <- struct{}{}
			wg.Add(1)
			go func() {
				defer func() { <-sem; wg.Done() }()
				// A real agent that fails to start is restarted by its
				// DaemonSet; so is a hollow one, a few times.
				var (
					n   *Node
					err error
				)
				for try := range 5 {
					if n, err = Start(ctx, name, opts); err == nil || ctx.Err() != nil {
						break
					}
					retries.Add(1)
					time.Sleep(time.Duration(1+try) * time.Second)
				}
				mu.Lock()
				if err != nil {
					if ctx.Err() == nil {
						errs = append(errs, err.Error())
					}
					mu.Unlock()
					return
				}
				nodes = append(nodes, n)
				i := len(nodes) - 1
				mu.Unlock()
				started.Add(1)
				// An agent whose manager returns is restarted, as its
				// DaemonSet restarts it.
				go func() {
					for {
						werr := n.Wait()
						if ctx.Err() != nil {
							return
						}
						exits.Add(1)
						mu.Lock()
						if len(exitErr) < 10 {
							exitErr = append(exitErr, fmt.Sprintf("%s: %v", name, werr))
						}
						mu.Unlock()
						for {
							next, err := Start(ctx, name, opts)
							if err == nil {
								n = next
								mu.Lock()
								nodes[i] = n
								mu.Unlock()
								break
							}
							if ctx.Err() != nil {
								return
							}
							time.Sleep(time.Second)
						}
					}
				}()
			}()
		}
		wg.Wait()
	}()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		write()
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

func (s *scale) must(err error) {
	s.t.Helper()
	if err != nil {
		s.t.Fatal(err)
	}
}

// poll waits for cond within -hollow.wait.
func (s *scale) poll(what string, cond func() error) {
	s.t.Helper()
	deadline := time.Now().Add(*flagWait)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("%s: after %s: %v", what, *flagWait, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// parallel runs f(0..n-1) on width goroutines, failing t on the first
// error.
func parallel(width, n int, f func(int) error, t *testing.T) {
	t.Helper()
	var (
		wg    sync.WaitGroup
		next  atomic.Int64
		first atomic.Pointer[error]
	)
	for range width {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n || first.Load() != nil {
					return
				}
				if err := f(i); err != nil {
					first.CompareAndSwap(nil, &err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if p := first.Load(); p != nil {
		t.Fatal(*p)
	}
}

// percentile is the p-th percentile (nearest rank) of sorted durations.
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(p/100*float64(len(sorted))+0.999999) - 1
	return sorted[min(max(i, 0), len(sorted)-1)].Round(time.Millisecond)
}

// perCommit lists the n largest counts divided by commits.
func perCommit(m map[string]int64, commits, n int) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return m[keys[i]] > m[keys[j]] || (m[keys[i]] == m[keys[j]] && keys[i] < keys[j]) })
	var parts []string
	for i, k := range keys {
		if i == n {
			parts = append(parts, "...")
			break
		}
		parts = append(parts, fmt.Sprintf("%s %.0f", k, float64(m[k])/float64(commits)))
	}
	return strings.Join(parts, ", ")
}

// top lists the n largest counts.
func top(m map[string]int64, n int) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return m[keys[i]] > m[keys[j]] || (m[keys[i]] == m[keys[j]] && keys[i] < keys[j]) })
	var parts []string
	for i, k := range keys {
		if i == n {
			parts = append(parts, "...")
			break
		}
		parts = append(parts, fmt.Sprintf("%s %d", k, m[k]))
	}
	return strings.Join(parts, ", ")
}
