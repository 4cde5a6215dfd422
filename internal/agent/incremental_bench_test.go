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
	"fmt"
	"net/netip"
	"strconv"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"

	v1 "github.com/palisade-dev/palisade/api/v1alpha1"
	"github.com/palisade-dev/palisade/internal/engine"
)

// benchInputs are the inputs of BenchmarkAgent's cluster, built in
// memory: policies over 50 namespaces and 100 apps, pods pods, 1% of them
// on this node.
func benchInputs(b *testing.B, policies, pods int) *inputs {
	in := &inputs{cluster: &engine.Cluster{Namespaces: map[string]map[string]string{}}, ids: identityTable{}}
	for i := range 50 {
		in.cluster.Namespaces[fmt.Sprintf("ns-%d", i)] = map[string]string{}
	}
	in.cluster.Nodes = []engine.Node{{Name: testNode}, {Name: "node-2"}}
	for i := range pods {
		ep := engine.Endpoint{Namespace: fmt.Sprintf("ns-%d", i%50), Name: fmt.Sprintf("pod-%d", i),
			Labels: map[string]string{"app": fmt.Sprintf("app-%d", i%100)}, Node: "node-2",
			IPs: []netip.Addr{netip.AddrFrom4([4]byte{10, byte(100 + i/65536), byte(i / 256), byte(i)})}}
		if i%100 == 0 {
			ep.Node = testNode
			in.local = append(in.local, localEndpoint{id: ep.ID(), ips: ep.IPs})
		}
		l := in.cluster.WorkloadLabels(&ep)
		if _, ok := in.ids[l.String()]; !ok {
			in.ids[l.String()] = engine.Identity(1000 + len(in.ids))
		}
		in.cluster.Endpoints = append(in.cluster.Endpoints, ep)
	}
	if err := in.cluster.Index(); err != nil {
		b.Fatal(err)
	}
	for i := range policies {
		in.objects = append(in.objects, benchPolicy(i, 1000+i%5000, 1))
	}
	var err error
	if in.ir, err = buildIR(in.objects); err != nil {
		b.Fatal(err)
	}
	return in
}

func benchPolicy(i, port, version int) *policyObject {
	np := &v1.NetworkPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: fmt.Sprintf("ns-%d", i%50), Name: fmt.Sprintf("p-%d", i),
		UID: types.UID(fmt.Sprintf("uid-%d", i)), ResourceVersion: strconv.Itoa(version)}}
	np.Spec.EndpointSelector = metav1.LabelSelector{MatchLabels: map[string]string{"app": fmt.Sprintf("app-%d", i%100)}}
	np.Spec.Ingress = []v1.IngressRule{{
		FromEndpoints: []metav1.LabelSelector{{MatchLabels: map[string]string{"app": fmt.Sprintf("app-%d", (i+50)%100)}}},
		ToPorts:       []v1.PortRule{{Ports: []v1.PortProtocol{{Port: intstr.FromInt(port), Protocol: v1.ProtocolTCP}}}},
	}}
	return newPolicyObject("NetworkPolicy", np)
}

// BenchmarkPolicyChange measures the agent's side of one policy change (a
// policy selecting local workloads moves its port): the compile and the
// change of the desired state, incrementally (what the agent does) and
// from scratch (what it did), at 100 and 10k policies over 5k pods. The
// inputs are rebuilt outside the timer: gathering them from the cache is
// not measured here. make bench-agent measures the whole path.
func BenchmarkPolicyChange(b *testing.B) {
	for _, n := range []int{100, 10000} {
		in := benchInputs(b, n, 5000)
		change := func(i int) *inputs {
			next := *in
			next.objects = append([]*policyObject(nil), in.objects...)
			next.objects[0] = benchPolicy(0, 20000+i%2, i+2)
			var err error
			if next.ir, err = buildIR(next.objects); err != nil {
				b.Fatal(err)
			}
			return &next
		}
		b.Run(fmt.Sprintf("incremental/policies=%d", n), func(b *testing.B) {
			var inc incremental
			inc.node = testNode
			s, _, err := inc.update(in)
			if err != nil {
				b.Fatal(err)
			}
			desired := withOverrides(s, nil)
			entries := 0
			for i := 0; b.Loop(); i++ {
				b.StopTimer()
				next := change(i)
				b.StartTimer()
				s, cd, err := inc.update(next)
				if err != nil || cd == nil {
					b.Fatalf("update: %v (delta %v)", err, cd)
				}
				kd, _ := kernelDelta(desired, s, cd, nil, nil)
				kd.Apply(desired)
				entries += kd.Len()
			}
			b.ReportMetric(float64(entries)/float64(b.N), "entries/op")
		})
		b.Run(fmt.Sprintf("incremental-pod/policies=%d", n), func(b *testing.B) {
			// One remote pod comes and goes: a cluster update.
			var inc incremental
			inc.node = testNode
			s, _, err := inc.update(in)
			if err != nil {
				b.Fatal(err)
			}
			desired := withOverrides(s, nil)
			entries := 0
			for i := 0; b.Loop(); i++ {
				b.StopTimer()
				next := *in
				next.cluster = &engine.Cluster{Namespaces: in.cluster.Namespaces, Nodes: in.cluster.Nodes,
					Endpoints: in.cluster.Endpoints[:len(in.cluster.Endpoints):len(in.cluster.Endpoints)]}
				if i%2 == 0 {
					next.cluster.Endpoints = append(next.cluster.Endpoints, engine.Endpoint{Namespace: "ns-1", Name: "extra",
						Labels: map[string]string{"app": "app-51"}, Node: "node-2", IPs: []netip.Addr{netip.MustParseAddr("10.200.0.1")}})
				}
				if err := next.cluster.Index(); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
				s, cd, err := inc.update(&next)
				if err != nil || cd == nil {
					b.Fatalf("update: %v (delta %v)", err, cd)
				}
				kd, _ := kernelDelta(desired, s, cd, nil, nil)
				kd.Apply(desired)
				entries += kd.Len()
			}
			b.ReportMetric(float64(entries)/float64(b.N), "entries/op")
		})
		b.Run(fmt.Sprintf("whole/policies=%d", n), func(b *testing.B) {
			prev, err := engine.Compile(in.ir, in.cluster, testNode, in.ids)
			if err != nil {
				b.Fatal(err)
			}
			entries := 0
			for i := 0; b.Loop(); i++ {
				b.StopTimer()
				next := change(i)
				b.StartTimer()
				s, err := engine.Compile(next.ir, next.cluster, testNode, next.ids)
				if err != nil {
					b.Fatal(err)
				}
				entries += len(s.Policy) + len(s.IPCache) + len(s.Endpoints)
				prev = s
			}
			_ = prev
			b.ReportMetric(float64(entries)/float64(b.N), "entries/op")
		})
	}
}

// BenchmarkSyncParts measures, at 10k policies over 5k pods, the parts of
// a sync besides the compile: building the IR of every policy object
// (whole: what every sync did; cached: one object changed, the others'
// normalized policies kept per object version), the observer's rules and
// view of the new generation after one change, and comparing the
// cluster with the compiler's.
func BenchmarkSyncParts(b *testing.B) {
	in := benchInputs(b, 10000, 5000)
	change := func(i int) []*policyObject {
		objs := append([]*policyObject(nil), in.objects...)
		objs[0] = benchPolicy(0, 20000+i%2, i+2)
		return objs
	}
	b.Run("buildIR/whole", func(b *testing.B) {
		for b.Loop() {
			if _, err := buildIR(in.objects); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("buildIR/cached", func(b *testing.B) {
		var c objectCache
		if _, err := c.buildIR(in.objects); err != nil {
			b.Fatal(err)
		}
		for i := 0; b.Loop(); i++ {
			b.StopTimer()
			objs := change(i)
			b.StartTimer()
			if _, err := c.buildIR(objs); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("observer", func(b *testing.B) {
		var c objectCache
		var t ruleTable
		first := *in
		var err error
		if first.ir, err = c.buildIR(in.objects); err != nil {
			b.Fatal(err)
		}
		t.update(1, &first)
		for i := 0; b.Loop(); i++ {
			b.StopTimer()
			next := *in
			next.objects = change(i)
			if next.ir, err = c.buildIR(next.objects); err != nil {
				b.Fatal(err)
			}
			gen := uint64(i + 2)
			b.StartTimer()
			t.update(gen, &next)
			newFlowView(gen, testNode, &next, nil)
			t.prune(gen - min(gen-1, DefaultGenerations-1))
		}
	})
	b.Run("sameCluster", func(b *testing.B) {
		other := *in.cluster
		for b.Loop() {
			if !sameCluster(in.cluster, &other) {
				b.Fatal("a cluster differs from itself")
			}
		}
	})
}
