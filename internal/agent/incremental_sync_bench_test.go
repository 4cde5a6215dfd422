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
	"context"
	"fmt"
	"net/netip"
	"os"
	goruntime "runtime"
	"runtime/pprof"
	"strconv"
	"testing"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	v1 "github.com/palisade-dev/palisade/api/v1alpha1"
	"github.com/palisade-dev/palisade/internal/engine"
	"github.com/palisade-dev/palisade/internal/observer"
	"github.com/palisade-dev/palisade/internal/render"
)

// listClient serves the lists of pods and network policies from memory as
// the agent's cache does with client.UnsafeDisableDeepCopy: a list holds
// copies of the objects' structs, which share their maps and slices. The
// rest (NodeEnforcement and the small lists) is a fake client's.
type listClient struct {
	client.Client
	pods []corev1.Pod
	nps  []v1.NetworkPolicy
}

func (c *listClient) List(ctx context.Context, l client.ObjectList, opts ...client.ListOption) error {
	switch l := l.(type) {
	case *corev1.PodList:
		l.Items = append([]corev1.Pod(nil), c.pods...)
		return nil
	case *v1.NetworkPolicyList:
		l.Items = append([]v1.NetworkPolicy(nil), c.nps...)
		return nil
	}
	return c.Client.List(ctx, l, opts...)
}

// stateKernel is the fake kernel without a copy of each state it is
// given: the datapath writes only the delta.
type stateKernel struct{ *fakeKernel }

func (k stateKernel) Apply(_ context.Context, s *engine.MapState) error {
	k.state = s
	k.gen++
	return nil
}

// BenchmarkSync measures the agent's whole sync of one policy change
// (Reconcile: gather the inputs, every subsystem, the status report) with
// BenchmarkAgent's cluster, 10k policies over 5k pods, read from memory
// as from the cache and written to a fake kernel. make bench-agent
// measures it with the real API server and kernel.
func BenchmarkSync(b *testing.B) {
	s := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{clientgoscheme.AddToScheme, v1.AddToScheme} {
		if err := add(s); err != nil {
			b.Fatal(err)
		}
	}
	ctx := context.Background()
	fc := fake.NewClientBuilder().WithScheme(s).WithStatusSubresource(&v1.NodeEnforcement{}).Build()
	c := &listClient{Client: fc}
	links := fakeLinks{}
	for i := range 50 {
		if err := fc.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("ns-%d", i)}}); err != nil {
			b.Fatal(err)
		}
	}
	for _, n := range []string{testNode, "node-2"} {
		if err := fc.Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: n}}); err != nil {
			b.Fatal(err)
		}
	}
	if err := fc.Create(ctx, &discoveryv1.EndpointSlice{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "kubernetes",
		Labels: map[string]string{discoveryv1.LabelServiceName: "kubernetes"}}, AddressType: discoveryv1.AddressTypeIPv4}); err != nil {
		b.Fatal(err)
	}
	ids := map[string]bool{}
	for i := range 5000 {
		ns, app := fmt.Sprintf("ns-%d", i%50), fmt.Sprintf("app-%d", i%100)
		ip := netip.AddrFrom4([4]byte{10, byte(100 + i/65536), byte(i / 256), byte(i)})
		p := corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: fmt.Sprintf("pod-%d", i), UID: types.UID(fmt.Sprintf("pod-uid-%d", i)),
			ResourceVersion: "1", Labels: map[string]string{"app": app}},
			Spec:   corev1.PodSpec{NodeName: "node-2"},
			Status: corev1.PodStatus{Phase: corev1.PodRunning, PodIPs: []corev1.PodIP{{IP: ip.String()}}}}
		if i%100 == 0 {
			p.Spec.NodeName = testNode
			links[ip] = 10 + i/100
		}
		c.pods = append(c.pods, p)
		l := engine.LabelPolicy{}.WorkloadLabels(ns, p.Labels, nil, "")
		if !ids[l.String()] {
			ids[l.String()] = true
			id := &v1.Identity{ObjectMeta: metav1.ObjectMeta{Name: strconv.Itoa(1000 + len(ids))}, Spec: v1.IdentitySpec{Labels: l}}
			if err := fc.Create(ctx, id); err != nil {
				b.Fatal(err)
			}
		}
	}
	np := func(i, port, version int) v1.NetworkPolicy {
		np := v1.NetworkPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: fmt.Sprintf("ns-%d", i%50), Name: fmt.Sprintf("p-%d", i),
			UID: types.UID(fmt.Sprintf("uid-%d", i)), ResourceVersion: strconv.Itoa(version),
			Labels:      map[string]string{render.LabelPolicySetName: "bench", render.LabelPolicySetNamespace: "ns-0"},
			Annotations: map[string]string{render.AnnotationRevision: "rev1"}}}
		np.Spec.EndpointSelector = metav1.LabelSelector{MatchLabels: map[string]string{"app": fmt.Sprintf("app-%d", i%100)}}
		np.Spec.Ingress = []v1.IngressRule{{
			FromEndpoints: []metav1.LabelSelector{{MatchLabels: map[string]string{"app": fmt.Sprintf("app-%d", (i+50)%100)}}},
			ToPorts:       []v1.PortRule{{Ports: []v1.PortProtocol{{Port: intstr.FromInt(port), Protocol: v1.ProtocolTCP}}}},
		}}
		return np
	}
	for i := range 10000 {
		c.nps = append(c.nps, np(i, 1000+i%5000, 1))
	}
	k := stateKernel{newFakeKernel()}
	a := &Agent{Client: c, Datapath: k, Node: testNode, Links: links, Log: logr.Discard(),
		Observer: &Observer{Buffer: observer.NewBuffer(16)}}
	if _, err := a.Reconcile(ctx, ctrl.Request{}); err != nil {
		b.Fatal(err)
	}
	if _, err := a.Reconcile(ctx, ctrl.Request{}); err != nil {
		b.Fatal(err)
	}
	var ms goruntime.MemStats
	goruntime.GC()
	goruntime.ReadMemStats(&ms)
	b.ReportMetric(float64(ms.HeapAlloc)/(1<<20), "live-MiB")
	if f := os.Getenv("PALISADE_BENCH_HEAPPROFILE"); f != "" {
		// The live heap of the agent and of the objects it reads, as the
		// informers' caches would hold them.
		w, err := os.Create(f)
		if err != nil {
			b.Fatal(err)
		}
		if err := pprof.WriteHeapProfile(w); err != nil {
			b.Fatal(err)
		}
		w.Close()
	}
	for i := 0; b.Loop(); i++ {
		c.nps[0] = np(0, 20000+i, i+2)
		gen := k.gen
		if _, err := a.Reconcile(ctx, ctrl.Request{}); err != nil {
			b.Fatal(err)
		}
		if k.gen != gen+1 {
			b.Fatalf("generation %d after a change at %d", k.gen, gen)
		}
	}
}
