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

// Command run is `make run`: Palisade's whole system on this machine, on
// the example policy repository. It starts a local control plane with its
// data under .palisade/, the manager and one agent, a Git server on
// loopback seeded from policies/examples, the demo workloads of
// policies/examples/endpoints.yaml as network namespaces, and prints a
// tour. Ctrl-C stops everything and removes every namespace, link and pin
// it made. Without root it runs what needs no root and says what it
// skipped.
//
//	bin/palisade-run             start (make run builds and runs it)
//	bin/palisade-run probe FROM TO:PORT[/PROTO]
//	                             send traffic between demo workloads
package main

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	v1 "github.com/palisade-dev/palisade/api/v1alpha1"
	"github.com/palisade-dev/palisade/internal/datapath"
	"github.com/palisade-dev/palisade/internal/devenv"
	"github.com/palisade-dev/palisade/internal/netlab"
)

const (
	node      = "palisade-dev"
	namespace = "palisade-system"
	prefix    = "pal"
)

func main() {
	var err error
	if len(os.Args) > 1 && os.Args[1] == "probe" {
		err = probe(os.Args[2:])
	} else {
		err = up()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "run:", err)
		os.Exit(1)
	}
}

// state is what `up` writes for `probe`: the workloads by pod.
type state struct {
	Workloads map[string]workload `json:"workloads"`
}

type workload struct {
	NetNS string `json:"netns"`
	IP    string `json:"ip"`
}

func up() (err error) {
	start := time.Now()
	ctrllog.SetLogger(logr.Discard()) // the processes log to .palisade/logs
	root, err := os.Getwd()
	if err != nil {
		return err
	}
	dir := filepath.Join(root, ".palisade")
	root0 := os.Geteuid() == 0
	if err := netlab.Available(); err != nil {
		fmt.Printf("! %v: the agent (eBPF) and the demo workloads (network namespaces) will not run; everything else will.\n  Run `sudo make run` for the whole tour.\n", err)
		root0 = false
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var cleanups []func() error
	defer func() {
		fmt.Println("\nstopping: processes, workloads, links, pins, control plane")
		for i := len(cleanups) - 1; i >= 0; i-- {
			if cerr := cleanups[i](); cerr != nil {
				fmt.Fprintln(os.Stderr, "cleanup:", cerr)
			}
		}
	}()

	step("building the manager and the agent into bin/")
	bin := filepath.Join(root, "bin")
	if err := devenv.Build(root, bin, "manager", "agent", "palisadectl"); err != nil {
		return err
	}
	step("starting kube-apiserver and etcd (data in .palisade/)")
	cp, err := devenv.StartControlPlane(filepath.Join(dir, "cluster"), filepath.Join(root, "config", "crd", "bases"))
	if err != nil {
		return err
	}
	cleanups = append(cleanups, cp.Stop)
	c := cp.Client
	if err := devenv.Node(ctx, c, node); err != nil {
		return err
	}
	if err := c.Create(ctx, nsObject(namespace)); err != nil {
		return err
	}

	step("starting a Git server on loopback, seeded from policies/examples")
	git, err := devenv.StartGitServer(filepath.Join(dir, "git"))
	if err != nil {
		return err
	}
	cleanups = append(cleanups, git.Close)
	os.RemoveAll(filepath.Join(dir, "git", "policies.git"))
	repo, err := git.InitRepo("policies", filepath.Join(dir, "policies"), filepath.Join(root, "policies", "examples"))
	if err != nil {
		return err
	}

	logs := filepath.Join(dir, "logs")
	os.MkdirAll(logs, 0o755)
	step("starting the manager (log: .palisade/logs/manager.log)")
	mgr, err := devenv.Start("manager", filepath.Join(bin, "manager"), cp.Kubeconfig, filepath.Join(logs, "manager.log"),
		"--leader-elect=false", "--storage-path="+filepath.Join(dir, "artifacts"), "--metrics-bind-address=127.0.0.1:8080",
		"--health-probe-bind-address=127.0.0.1:8081", "--receiver-bind-address=127.0.0.1:9292")
	if err != nil {
		return err
	}
	cleanups = append(cleanups, mgr.Stop)

	st := state{Workloads: map[string]workload{}}
	if root0 {
		restore, err := netlab.EnableForwarding()
		if err != nil {
			return err
		}
		cleanups = append(cleanups, func() error { restore(); return nil })
		step("creating the demo workloads (network namespaces with veth, registered as Pods)")
		cluster, err := devenv.ReadCluster(filepath.Join(root, "policies", "examples", "endpoints.yaml"))
		if err != nil {
			return err
		}
		wls, cleanup, err := devenv.CreateWorkloads(ctx, c, node, prefix, cluster)
		cleanups = append(cleanups, cleanup)
		if err != nil {
			return err
		}
		for _, w := range wls {
			st.Workloads[w.ID()] = workload{NetNS: w.Net.Name, IP: w.Net.IP.String()}
		}
		pins, unmount, err := pinDir(dir)
		if err != nil {
			return err
		}
		cleanups = append(cleanups, unmount)
		step("starting the agent (log: .palisade/logs/agent.log; pins in " + pins + ")")
		agent, err := devenv.Start("agent", filepath.Join(bin, "agent"), cp.Kubeconfig, filepath.Join(logs, "agent.log"),
			"--node-name="+node, "--pin-dir="+pins, "--metrics-bind-address=127.0.0.1:9091", "--health-probe-bind-address=127.0.0.1:8082")
		if err != nil {
			return err
		}
		cleanups = append(cleanups, func() error { return removePins(agent, pins) })
	}
	if b, err := json.Marshal(st); err == nil {
		os.WriteFile(filepath.Join(dir, "state.json"), b, 0o644)
	}

	step("creating the PolicyRepository and the PolicySet")
	if err := c.Create(ctx, &v1.PolicyRepository{ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: "policies"},
		Spec: v1.PolicyRepositorySpec{URL: git.RepoURL("policies"), Ref: &v1.GitRef{Branch: "main"}, Interval: metav1.Duration{Duration: 5 * time.Second}}}); err != nil {
		return err
	}
	if err := c.Create(ctx, &v1.PolicySet{ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: "examples"},
		Spec: v1.PolicySetSpec{SourceRef: v1.SourceReference{Kind: v1.SourceKindPolicyRepository, Name: "policies"},
			Interval: metav1.Duration{Duration: 5 * time.Second}}}); err != nil {
		return err
	}
	if err := waitReady(ctx, c, root0); err != nil {
		if ctx.Err() != nil {
			return nil // Ctrl-C while waiting
		}
		return err
	}
	tour(root, repo.Dir, time.Since(start), root0)
	<-ctx.Done()
	return nil
}

func step(s string) { fmt.Printf("• %s\n", s) }

func nsObject(name string) client.Object {
	return &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}
}

// waitReady waits for the PolicySet to be Ready and, with the agent, for
// the node to enforce its applied revision with every workload
// programmed (NetworkEnforced: none failing closed). The set's Enforced
// condition is not awaited: the example repository has L7 rules and
// toFQDNs that this version does not enforce in the kernel, and tracing
// policies on hooks a kernel may not attach (fentry, BPF-LSM), and the
// PolicySet says so (ENFORCED 0/1); the tour shows where.
func waitReady(ctx context.Context, c client.Client, withAgent bool) error {
	what := "the PolicySet to be Ready"
	if withAgent {
		what += " and its revision enforced on this node"
	}
	step("waiting for " + what)
	return devenv.WaitFor(ctx, 5*time.Minute, what, func() error {
		ps := &v1.PolicySet{}
		if err := c.Get(ctx, client.ObjectKey{Namespace: namespace, Name: "examples"}, ps); err != nil {
			return err
		}
		r := apimeta.FindStatusCondition(ps.Status.Conditions, v1.ReadyCondition)
		if r == nil || r.Status != metav1.ConditionTrue {
			return fmt.Errorf("Ready = %+v", r)
		}
		if !withAgent {
			return nil
		}
		ne := &v1.NodeEnforcement{}
		if err := c.Get(ctx, client.ObjectKey{Name: node}, ne); err != nil {
			return err
		}
		if n := apimeta.FindStatusCondition(ne.Status.Conditions, v1.NetworkEnforcedCondition); n == nil || n.Status != metav1.ConditionTrue {
			return fmt.Errorf("NodeEnforcement NetworkEnforced = %+v", n)
		}
		for _, s := range ne.Status.PolicySets {
			if s.Namespace == namespace && s.Name == "examples" && s.Revision == ps.Status.LastAppliedRevision {
				return nil
			}
		}
		return fmt.Errorf("the node does not enforce %s yet: %+v", ps.Status.LastAppliedRevision, ne.Status.PolicySets)
	})
}

// pinDir returns the agent's pin dir: under /sys/fs/bpf when that is a
// bpffs, else on a bpffs mounted at .palisade/bpffs for this run.
func pinDir(dir string) (string, func() error, error) {
	return devenv.PinDir(filepath.Join(dir, "bpffs"))
}

// removePins stops the agent, then detaches its programs and removes its
// pins: enforcement ends with the demo.
func removePins(agent *devenv.Proc, pins string) error {
	err := agent.Stop()
	dp, oerr := datapath.Open(pins, nil)
	if oerr != nil {
		return errors.Join(err, oerr)
	}
	return errors.Join(err, dp.Remove())
}

func tour(root, work string, took time.Duration, withAgent bool) {
	kubectl := "bin/kubectl-v1.37.2"
	if m, _ := filepath.Glob(filepath.Join(root, "bin", "kubectl-*")); len(m) > 0 {
		kubectl, _ = filepath.Rel(root, m[0])
	}
	fmt.Printf(`
Palisade is ready (%s). In another terminal, from %s:

  export KUBECONFIG=$PWD/.palisade/cluster/kubeconfig
  %[3]s get policysets -A          # READY  REVISION  ENFORCED 0/1  DRIFT
  %[3]s get pnp,ptp -A             # per object: READY, ENFORCED
  %[3]s get nodeenforcements       # what the kernel enforces, drift, map usage

ENFORCED is 0/1 on purpose: the examples have HTTP and Kafka rules and
toFQDNs, which this version does not enforce in the kernel, and tracing
policies whose hooks some kernels cannot attach (fentry and BPF-LSM
programs; bin/palisadectl validate --kernel says which on this one). The
PolicySet's Enforced condition names each such object and what the kernel
does instead:

  %[3]s get policyset -n palisade-system examples \
    -o jsonpath='{.status.conditions[?(@.type=="Enforced")].message}'
  bin/palisadectl validate policies/examples   # PAL060 at each such rule's file:line
`, took.Round(time.Second), root, kubectl)
	if withAgent {
		fmt.Print(`
Send traffic between the demo workloads (network namespaces):

  bin/palisade-run probe shop/frontend-7d9f shop/api-5c8b:8080     # allowed: frontend → api
  bin/palisade-run probe shop/frontend-7d9f shop/postgres-0:5432   # dropped: only api reaches postgres

and watch the verdicts with the policy, revision and file:line that decided
(the agent's flow observer; make run starts no relay, so ask the agent):

  bin/palisadectl observe --server 127.0.0.1:4245 --last 20
  bin/palisadectl observe --server 127.0.0.1:4245 --follow --verdict dropped
`)
	}
	fmt.Printf(`
Ask why, without a cluster:

  bin/palisadectl explain --policies %[1]s --endpoints policies/examples/endpoints.yaml \
    --from shop/frontend-7d9f --to shop/postgres-0:5432/TCP

and where the kernel differs from the policy (an HTTP rule it does not
enforce yet: the policy denies this request, the kernel passes it):

  bin/palisadectl explain --policies %[1]s --endpoints policies/examples/endpoints.yaml \
    --from shop/frontend-7d9f --to shop/api-5c8b:8080/TCP --http-method DELETE --http-path /admin

Make a commit (the repository polls every 5s): postgres stops taking
connections from api.

  cd %[1]s
  sed -i 's/fromEndpoints: \[#API\]/fromEndpoints: [#Frontend]/' shop/postgres.cue
  git commit -qam "postgres: take connections from frontend only" && git push -q

and watch REVISION move with kubectl, then probe again:

  bin/palisade-run probe shop/api-5c8b shop/postgres-0:5432        # now dropped
 A commit with a CUE
error or a guard denial leaves the last good policy enforced; the
PolicySet's Ready condition says why.

Ctrl-C stops everything and removes what it made.
`, work)
}

// probe sends one TCP (or UDP) exchange from a demo workload to another.
func probe(args []string) error {
	if len(args) != 2 {
		return errors.New("usage: probe NAMESPACE/POD NAMESPACE/POD:PORT[/TCP|UDP]")
	}
	b, err := os.ReadFile(filepath.Join(".palisade", "state.json"))
	if err != nil {
		return fmt.Errorf("no demo running here (start one with `sudo make run`): %w", err)
	}
	var st state
	if err := json.Unmarshal(b, &st); err != nil {
		return err
	}
	from, ok := st.Workloads[args[0]]
	if !ok {
		return fmt.Errorf("no workload %s; the workloads are those of policies/examples/endpoints.yaml", args[0])
	}
	dst, proto := args[1], ""
	if i := strings.LastIndex(dst, "/"); i > strings.LastIndex(dst, ":") && strings.Contains(dst, ":") {
		dst, proto = dst[:i], dst[i+1:]
	}
	toName, portS, ok := strings.Cut(dst, ":")
	to, found := st.Workloads[toName]
	port, perr := strconv.Atoi(portS)
	if !ok || !found || perr != nil {
		return fmt.Errorf("bad destination %q: want NAMESPACE/POD:PORT of a demo workload", args[1])
	}
	w := &netlab.Workload{Name: from.NetNS, IP: netip.MustParseAddr(from.IP)}
	ip := netip.MustParseAddr(to.IP)
	var passed bool
	switch strings.ToUpper(proto) {
	case "", "TCP":
		passed = w.TCP(ip, port, 2*time.Second)
	case "UDP":
		passed = w.UDP(ip, port, 2*time.Second)
	default:
		return fmt.Errorf("protocol %q: want TCP or UDP", proto)
	}
	verdict := "DROPPED"
	if passed {
		verdict = "ALLOWED"
	}
	fmt.Printf("%s → %s (%s:%d/%s): %s\n", args[0], toName, to.IP, port, strings.ToUpper(cmp.Or(proto, "TCP")), verdict)
	return nil
}
