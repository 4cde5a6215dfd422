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

import (
	"bytes"
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "github.com/palisade-dev/palisade/api/v1alpha1"
	"github.com/palisade-dev/palisade/internal/datapath"
	"github.com/palisade-dev/palisade/internal/engine"
	"github.com/palisade-dev/palisade/internal/render"
)

// fromScratch is what the agent wrote before it kept its compiler: the
// inputs of the last sync compiled whole, with deny-all for every local
// workload that fails closed.
func fromScratch(t *testing.T, a *Agent) *engine.MapState {
	t.Helper()
	in := a.last
	s, err := engine.Compile(in.ir, in.cluster, a.Node, in.ids)
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range in.local {
		if a.net.failing[l.id] != "" {
			failClosed(s, l.ips)
		}
	}
	return s
}

// incrementalSteps changes a fixture one object at a time: policies
// edited, added and deleted, workloads added (one pending until its
// identity exists, one without an interface) and deleted. check runs after
// every sync with the step's name and whether the step is one the compiler
// must take incrementally.
func incrementalSteps(t *testing.T, f *fixture, check func(step string, incremental bool)) {
	ctx := context.Background()
	sync := func(step string, incremental bool) {
		t.Helper()
		if _, err := f.sync(); err != nil {
			t.Fatalf("%s: %v", step, err)
		}
		check(step, incremental)
	}
	f.pod("api", "api", "10.0.0.2", 2, false)
	f.pod("frontend", "frontend", "10.0.0.3", 3, false)
	f.podOn("node-2", "remote", "frontend", "10.0.1.3", 0, false)
	f.policy("api", "r1", 2, allowFrontend)
	f.policy("web", "r1", 2, `
endpointSelector: {matchLabels: {app: frontend}}
egress:
- toEndpoints: [{matchLabels: {app: api}}]
  toPorts: [{ports: [{port: "8080", protocol: TCP}]}]
- toCIDR: [192.0.2.0/24]
`)
	sync("first", false)
	f.policy("api", "r2", 2, `
endpointSelector: {matchLabels: {app: api}}
ingress:
- fromEndpoints: [{matchLabels: {app: frontend}}]
  toPorts: [{ports: [{port: "9090", protocol: TCP}]}]
`)
	sync("api edited (r2 incomplete: the set keeps r1)", true)
	f.policy("web", "r2", 2, `
endpointSelector: {matchLabels: {app: frontend}}
egress:
- toEndpoints: [{matchLabels: {app: api}}]
  toPorts: [{ports: [{port: "9090", protocol: TCP}]}]
`)
	sync("web edited (r2 complete)", true)
	f.pod("db", "db", "10.0.0.4", 4, true)
	sync("pending workload", true)
	f.pod("db2", "db", "10.0.0.5", 5, false) // allocates db's identity
	sync("identity allocated", true)
	f.pod("lost", "api", "10.0.0.6", 0, false)
	sync("workload without an interface", true)
	f.links[mustAddr("10.0.0.6")] = 6
	sync("its interface appears", true)
	var p corev1.Pod
	if err := f.c.Get(ctx, objectKey("shop", "frontend"), &p); err != nil {
		t.Fatal(err)
	}
	if err := f.c.Delete(ctx, &p); err != nil {
		t.Fatal(err)
	}
	sync("workload deleted", true)
	var np v1.NetworkPolicy
	if err := f.c.Get(ctx, objectKey("shop", "web"), &np); err != nil {
		t.Fatal(err)
	}
	np.Annotations[render.AnnotationRevisionObjects] = "1"
	np.Annotations[render.AnnotationRevision] = "r3"
	if err := f.c.Update(ctx, &np); err != nil {
		t.Fatal(err)
	}
	var api v1.NetworkPolicy
	if err := f.c.Get(ctx, objectKey("shop", "api"), &api); err != nil {
		t.Fatal(err)
	}
	if err := f.c.Delete(ctx, &api); err != nil {
		t.Fatal(err)
	}
	sync("api deleted (r3 renders web only)", true)
	// Revision r4: web and more new policies than are set one by one.
	n := maxIncrementalPolicies + 1
	for i := range n {
		f.policy(fmt.Sprintf("bulk-%d", i), "r4", n+1, allowFrontend)
	}
	if err := f.c.Get(ctx, objectKey("shop", "web"), &np); err != nil {
		t.Fatal(err)
	}
	np.Annotations[render.AnnotationRevisionObjects] = fmt.Sprint(n + 1)
	np.Annotations[render.AnnotationRevision] = "r4"
	if err := f.c.Update(ctx, &np); err != nil {
		t.Fatal(err)
	}
	sync("many policies at once", false)
	f.policy("bulk-3", "r4", n+1, allowHTTP)
	sync("one of many edited", true)
}

// TestIncrementalMatchesFromScratch: after every change the kernel holds
// what a from-scratch compile of the same inputs gives, and a change to one
// object is compiled incrementally.
func TestIncrementalMatchesFromScratch(t *testing.T) {
	f := newFixture(t)
	incrementalSteps(t, f, func(step string, incremental bool) {
		want := fromScratch(t, f.a)
		if got := f.k.state.Encode(); !bytes.Equal(got, want.Encode()) {
			t.Fatalf("%s: the kernel holds\n%s\nwant (from scratch)\n%s", step, got, want.Encode())
		}
		if got := f.a.net.desired.Encode(); !bytes.Equal(got, want.Encode()) {
			t.Fatalf("%s: desired is\n%s\nwant\n%s", step, got, want.Encode())
		}
		if c := f.a.net.inc.last; c.whole == incremental {
			t.Errorf("%s: compiled whole %v, want incremental %v (%+v)", step, c.whole, incremental, c)
		}
	})
}

// TestIncrementalOnTheKernel runs the same steps with the real datapath:
// after every sync the active generation is the from-scratch state, and
// the generations after the first ones are patched in place.
func TestIncrementalOnTheKernel(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: the datapath loads eBPF programs")
	}
	dir := t.TempDir()
	if err := unix.Mount("bpf", dir, "bpf", 0, ""); err != nil {
		t.Skipf("cannot mount a bpffs: %v", err)
	}
	t.Cleanup(func() { unix.Unmount(dir, unix.MNT_DETACH) })
	dp, err := datapath.Open(filepath.Join(dir, "palisade"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dp.Remove() })
	f := newFixture(t)
	f.a.Datapath = dp
	f.a.Links = noLinks{}
	patched := 0
	incrementalSteps(t, f, func(step string, incremental bool) {
		want := fromScratch(t, f.a)
		drifts, _, err := dp.Compare(want)
		if err != nil {
			t.Fatal(err)
		}
		if len(drifts) > 0 {
			t.Fatalf("%s: the kernel differs from the from-scratch state: %v", step, drifts)
		}
		if f.a.net.writer.Last().Incremental {
			patched++
		}
		t.Logf("%s: generation %d %+v", step, dp.Generation(), f.a.net.writer.Last())
	})
	if patched < 5 {
		t.Errorf("%d generations patched in place, want most of the one-object steps", patched)
	}
}

func objectKey(ns, name string) client.ObjectKey { return client.ObjectKey{Namespace: ns, Name: name} }

func mustAddr(s string) netip.Addr { return netip.MustParseAddr(s) }

// noLinks resolves no interface: the kernel test attaches nothing (its
// workloads fail closed), so it touches no interface of the machine.
type noLinks struct{}

func (noLinks) Interface(a netip.Addr) (int, string, error) {
	return 0, "", fmt.Errorf("no interface for %s in this test", a)
}
func (noLinks) ByName(name string) (int, error) {
	return 0, fmt.Errorf("no interface %s in this test", name)
}

const allowFrontend9090 = `
endpointSelector: {matchLabels: {app: api}}
ingress:
- fromEndpoints: [{matchLabels: {app: frontend}}]
  toPorts: [{ports: [{port: "9090", protocol: TCP}]}]
`

// TestSyncKeepsWhatDidNotChange: a sync reuses what it derived from each
// object whose version did not change (its policyObject and normalized
// policy) and the cluster while none of its objects changed, and still
// enforces every change: a changed policy gets new derived forms and its
// new port in the kernel, a new pod a new cluster and its entry.
func TestSyncKeepsWhatDidNotChange(t *testing.T) {
	f := newFixture(t)
	f.pod("api", "api", "10.0.0.2", 2, false)
	f.pod("web", "frontend", "10.0.0.1", 1, false)
	f.policy("allow-frontend", "r1", 2, allowFrontend)
	f.policy("allow-api", "r1", 2, allowAPIEgress)
	f.mustSync()
	first := f.a.last
	if !hasPolicyPort(f.k.state, 8080) {
		t.Fatal("the policy's port is not the kernel's")
	}
	f.mustSync()
	same := f.a.last
	if !same.clusterKept || same.cluster != first.cluster {
		t.Fatal("the cluster was built again though none of its objects changed")
	}
	for i := range first.objects {
		if same.objects[i] != first.objects[i] || same.ir.Policies[i] != first.ir.Policies[i] {
			t.Fatalf("%s was derived again though its object did not change", first.objects[i].key)
		}
	}

	f.policy("allow-frontend", "r1", 2, allowFrontend9090)
	f.mustSync()
	changed := f.a.last
	if !changed.clusterKept {
		t.Error("a policy change built the cluster again")
	}
	for i, o := range changed.objects {
		if kept := o == same.objects[i]; kept != (o.key.name == "allow-api") {
			t.Errorf("%s: kept %v", o.key, kept)
		}
	}
	if !hasPolicyPort(f.k.state, 9090) || hasPolicyPort(f.k.state, 8080) {
		t.Fatal("the changed policy's port is not the kernel's")
	}

	f.pod("db", "db", "10.0.0.3", 3, false)
	f.mustSync()
	if f.a.last.clusterKept || f.a.last.cluster == first.cluster {
		t.Fatal("a new pod did not build the cluster again")
	}
	if _, ok := f.endpoint("10.0.0.3"); !ok {
		t.Fatal("the new pod has no endpoint entry")
	}
}

const allowAPIEgress = `
endpointSelector: {matchLabels: {app: api}}
egress:
- toEndpoints: [{matchLabels: {app: db}}]
  toPorts: [{ports: [{port: "5432", protocol: TCP}]}]
`

func hasPolicyPort(s *engine.MapState, port uint16) bool {
	for k := range s.Policy {
		if k.Port == port {
			return true
		}
	}
	return false
}
