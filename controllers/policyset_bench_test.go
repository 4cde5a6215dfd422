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

package controllers

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"
	crzap "sigs.k8s.io/controller-runtime/pkg/log/zap"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	v1 "github.com/palisade-dev/palisade/api/v1alpha1"
	"github.com/palisade-dev/palisade/internal/gitserver"
	"github.com/palisade-dev/palisade/internal/render"
)

// Sizes of the controller benchmarks. The benchmarks ignore b.N: run them
// with -benchtime 1x (make bench-controllers does).
var (
	benchCommits  = flag.Int("controllers.commits", 50, "BenchmarkCommitToApplied: commits to time")
	benchSets     = flag.Int("controllers.sets", 500, "BenchmarkPolicySetThroughput: PolicySets")
	benchPolicies = flag.Int("controllers.policies", 20, "BenchmarkPolicySetThroughput and BenchmarkCommitToApplied: policies per set")
)

// fluxKustomizationsPerSecond is Flux's published reconcile throughput on
// two CPUs, for comparison.
const fluxKustomizationsPerSecond = 3.9

// benchPolicyFile is one CUE file of a package with a NetworkPolicy per
// name, each admitting app=web on port.
func benchPolicyFile(pkg string, names []string, port int) string {
	var b strings.Builder
	fmt.Fprintf(&b, "package %s\n", pkg)
	for _, n := range names {
		fmt.Fprintf(&b, `
np: %q: {
	apiVersion: "palisade.dev/v1alpha1"
	kind:       "NetworkPolicy"
	metadata: name: %q
	spec: {
		endpointSelector: matchLabels: app: %q
		ingress: [{fromEndpoints: [{matchLabels: app: "web"}], toPorts: [{ports: [{port: %d, protocol: "TCP"}]}]}]
	}
}
`, n, n, n, port)
	}
	return b.String()
}

// benchEnv is a namespace with a PolicyRepository on a loopback HTTPS Git
// server, for the benchmarks (which cannot use the *testing.T helpers).
type benchEnv struct {
	ns   string
	srv  *gitserver.Server
	co   *gitserver.Checkout
	repo *v1.PolicyRepository
}

func newBenchEnv(b *testing.B, files map[string]string, webhookToken string) *benchEnv {
	b.Helper()
	if envSkip != "" {
		b.Skip(envSkip)
	}
	// The tests log nothing; say so before controller-runtime prints a
	// warning with a stack trace for a run longer than 30s.
	ctrllog.SetLogger(crzap.New(crzap.WriteTo(io.Discard)))
	ctx := context.Background()
	e := &benchEnv{srv: gitserver.New(b, gitserver.Options{Username: testUser, Password: testPassword})}
	e.srv.InitBare(b, "bench")
	e.co = e.srv.Checkout(b, "bench")
	e.co.Commit("policies", files, gitserver.CommitOptions{})
	e.co.Push(false)
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "bench-"}}
	if err := k8sClient.Create(ctx, ns); err != nil {
		b.Fatal(err)
	}
	e.ns = ns.Name
	secret := func(data map[string]string) string {
		s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{GenerateName: "s-", Namespace: e.ns}, StringData: data}
		if err := k8sClient.Create(ctx, s); err != nil {
			b.Fatal(err)
		}
		return s.Name
	}
	e.repo = &v1.PolicyRepository{ObjectMeta: metav1.ObjectMeta{Name: "bench", Namespace: e.ns}}
	e.repo.Spec = v1.PolicyRepositorySpec{
		URL: e.srv.URL("bench"), Interval: metav1.Duration{Duration: time.Hour},
		SecretRef: &v1.LocalObjectReference{Name: secret(map[string]string{"username": testUser, "password": testPassword, "ca.crt": string(e.srv.CAPEM())})},
	}
	if webhookToken != "" {
		e.repo.Spec.Webhook = &v1.WebhookSpec{SecretRef: v1.LocalObjectReference{Name: secret(map[string]string{"token": webhookToken})}}
	}
	if err := k8sClient.Create(ctx, e.repo); err != nil {
		b.Fatal(err)
	}
	return e
}

// waitArtifact waits until the repository stored revision rev.
func (e *benchEnv) waitArtifact(b *testing.B, rev string) {
	b.Helper()
	deadline := time.Now().Add(5 * time.Minute)
	for {
		got := &v1.PolicyRepository{}
		if err := k8sClient.Get(context.Background(), client.ObjectKeyFromObject(e.repo), got); err != nil {
			b.Fatal(err)
		}
		if a := got.Status.Artifact; a != nil && a.Revision == rev {
			return
		}
		if time.Now().After(deadline) {
			b.Fatalf("repository did not store %s: %+v", rev, got.Status.Conditions)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// createSet creates a PolicySet reading path of the bench repository.
func (e *benchEnv) createSet(b *testing.B, name, path string) {
	b.Helper()
	ps := &v1.PolicySet{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: e.ns}}
	ps.Spec = v1.PolicySetSpec{SourceRef: v1.SourceReference{Name: e.repo.Name}, Path: path, Interval: metav1.Duration{Duration: time.Hour}}
	if err := k8sClient.Create(context.Background(), ps); err != nil {
		b.Fatal(err)
	}
}

// percentile is the p-th percentile (nearest rank) of sorted durations.
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(p/100*float64(len(sorted))+0.999999) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

// reconciles is how many reconciles the named controller has run in this
// process, from controller-runtime's metrics.
func reconciles(b *testing.B, controller string) float64 {
	b.Helper()
	mfs, err := ctrlmetrics.Registry.Gather()
	if err != nil {
		b.Fatal(err)
	}
	var n float64
	for _, mf := range mfs {
		if mf.GetName() != "controller_runtime_reconcile_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "controller" && l.GetValue() == controller {
					n += m.GetCounter().GetValue()
				}
			}
		}
	}
	return n
}

// BenchmarkCommitToApplied times commit → objects applied: a push to the
// real Git server, the push webhook to the receiver over HTTP, the
// PolicyRepository fetch, the PolicySet's validate, guard and apply by the
// manager's controllers, until every object of the set carries the new
// revision in the real API server (seen through a watch). It reports the
// p50 and p99 over -controllers.commits commits.
func BenchmarkCommitToApplied(b *testing.B) {
	const token = "bench-webhook-token-0123456789"
	n := *benchPolicies
	names := make([]string, n)
	for i := range names {
		names[i] = fmt.Sprintf("p%02d", i)
	}
	// p00 is in its own file, changed by each commit; the others stay.
	files := map[string]string{
		"shop/p00.cue":  benchPolicyFile("shop", names[:1], 1000),
		"shop/rest.cue": benchPolicyFile("shop", names[1:], 5432),
	}
	e := newBenchEnv(b, files, token)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	hook := httptest.NewServer(&Receiver{Client: k8sClient})
	defer hook.Close()
	e.createSet(b, "shop", "shop")

	// Watch the set's objects; applied[rev] closes once all n carry rev.
	wc, err := client.NewWithWatch(testCfg, client.Options{Scheme: testScheme})
	if err != nil {
		b.Fatal(err)
	}
	w, err := wc.Watch(ctx, &v1.NetworkPolicyList{}, client.InNamespace(e.ns))
	if err != nil {
		b.Fatal(err)
	}
	defer w.Stop()
	type target struct {
		rev  string
		done chan time.Time
	}
	targets := make(chan target)
	go func() {
		revs := map[string]string{}
		var want *target
		for {
			select {
			case t := <-targets:
				want = &t
			case ev, ok := <-w.ResultChan():
				if !ok {
					return
				}
				p, isPolicy := ev.Object.(*v1.NetworkPolicy)
				if !isPolicy {
					continue
				}
				if ev.Type == watch.Deleted {
					delete(revs, p.Name)
				} else {
					revs[p.Name] = p.Annotations[render.AnnotationRevision]
				}
			}
			if want == nil || len(revs) != n {
				continue
			}
			all := true
			for _, r := range revs {
				all = all && r == want.rev
			}
			if all {
				want.done <- time.Now()
				want = nil
			}
		}
	}()
	await := func(rev string) chan time.Time {
		t := target{rev: rev, done: make(chan time.Time, 1)}
		targets <- t
		return t.done
	}
	wait := func(done chan time.Time, rev string) time.Time {
		select {
		case at := <-done:
			return at
		case <-time.After(2 * time.Minute):
			ps := &v1.PolicySet{}
			_ = k8sClient.Get(ctx, client.ObjectKey{Namespace: e.ns, Name: "shop"}, ps)
			b.Fatalf("objects of %s not applied after 2m: %+v", rev, ps.Status.Conditions)
			return time.Time{}
		}
	}
	first := "main@sha1:" + e.co.Head().String()
	wait(await(first), first)

	var lat []time.Duration
	b.ResetTimer()
	for i := range *benchCommits {
		h := e.co.Commit(fmt.Sprintf("commit %d", i), map[string]string{"shop/p00.cue": benchPolicyFile("shop", names[:1], 1001+i)}, gitserver.CommitOptions{})
		rev := "main@sha1:" + h.String()
		done := await(rev)
		start := time.Now()
		e.co.Push(false)
		req := githubPush(fmt.Sprintf("bench-%d-%s", i, h), h.String(), token)
		hr, err := http.NewRequest(http.MethodPost, hook.URL+"/hook/"+e.ns+"/bench", bytes.NewBufferString(req.body))
		if err != nil {
			b.Fatal(err)
		}
		for k, v := range req.header {
			hr.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(hr)
		if err != nil {
			b.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusAccepted {
			b.Fatalf("webhook: %s", resp.Status)
		}
		lat = append(lat, wait(done, rev).Sub(start))
	}
	b.StopTimer()
	slices.Sort(lat)
	var sum time.Duration
	for _, d := range lat {
		sum += d
	}
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	b.ReportMetric(float64(sum)/float64(len(lat)), "ns/op")
	b.ReportMetric(ms(percentile(lat, 50)), "p50-ms")
	b.ReportMetric(ms(percentile(lat, 99)), "p99-ms")
	b.ReportMetric(ms(lat[len(lat)-1]), "max-ms")
	b.Logf("commit → %d objects applied, over %d commits with the webhook: p50 %s, p99 %s, max %s (goal: p99 under 2s)",
		n, len(lat), percentile(lat, 50).Round(time.Millisecond), percentile(lat, 99).Round(time.Millisecond), lat[len(lat)-1].Round(time.Millisecond))
}

// BenchmarkPolicySetThroughput creates -controllers.sets PolicySets of
// -controllers.policies policies each, all reading one repository (one
// directory per set), and times until every set has applied the revision:
// objects and sets applied per second by the manager's controllers,
// against the real API server, set beside Flux's published figure.
func BenchmarkPolicySetThroughput(b *testing.B) {
	sets, n := *benchSets, *benchPolicies
	files := map[string]string{}
	for s := range sets {
		pkg := fmt.Sprintf("s%03d", s)
		names := make([]string, n)
		for i := range names {
			names[i] = fmt.Sprintf("%s-p%02d", pkg, i)
		}
		files[pkg+"/policies.cue"] = benchPolicyFile(pkg, names, 5432)
	}
	e := newBenchEnv(b, files, "")
	rev := "main@sha1:" + e.co.Head().String()
	e.waitArtifact(b, rev)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	wc, err := client.NewWithWatch(testCfg, client.Options{Scheme: testScheme})
	if err != nil {
		b.Fatal(err)
	}
	w, err := wc.Watch(ctx, &v1.PolicySetList{}, client.InNamespace(e.ns))
	if err != nil {
		b.Fatal(err)
	}
	defer w.Stop()

	before := reconciles(b, "policyset")
	b.ResetTimer()
	start := time.Now()
	for s := range sets {
		e.createSet(b, fmt.Sprintf("s%03d", s), fmt.Sprintf("s%03d", s))
	}
	created := time.Since(start)
	applied := map[string]bool{}
	timeout := time.After(30 * time.Minute)
	for len(applied) < sets {
		select {
		case ev, ok := <-w.ResultChan():
			if !ok {
				b.Fatalf("watch closed after %d sets applied", len(applied))
			}
			if ps, isSet := ev.Object.(*v1.PolicySet); isSet && ps.Status.LastAppliedRevision == rev {
				applied[ps.Name] = true
			}
		case <-timeout:
			b.Fatalf("%d of %d sets applied after 30m", len(applied), sets)
		}
	}
	elapsed := time.Since(start)
	b.StopTimer()

	var objs v1.NetworkPolicyList
	if err := k8sClient.List(ctx, &objs, client.InNamespace(e.ns)); err != nil {
		b.Fatal(err)
	}
	if len(objs.Items) != sets*n {
		b.Fatalf("%d objects in the API server, want %d", len(objs.Items), sets*n)
	}
	perSet := (reconciles(b, "policyset") - before) / float64(sets)
	objPerSec := float64(sets*n) / elapsed.Seconds()
	setPerSec := float64(sets) / elapsed.Seconds()
	b.ReportMetric(float64(elapsed), "ns/op")
	b.ReportMetric(objPerSec, "objects/s")
	b.ReportMetric(setPerSec, "sets/s")
	b.ReportMetric(perSet, "reconciles/set")
	b.Logf("%d PolicySets × %d policies = %d objects applied in %s (creating the sets took %s; %.2f reconciles per set): %.0f objects/s, %.1f PolicySets/s; Flux (published): %.1f Kustomizations/s on 2 CPUs",
		sets, n, sets*n, elapsed.Round(time.Millisecond), created.Round(time.Millisecond), perSet, objPerSec, setPerSec, fluxKustomizationsPerSecond)
}
