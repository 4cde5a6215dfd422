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

package engine

// Benchmarks of the node compiler (make bench-engine). The synthetic
// cluster has 1000 workloads in 20 namespaces on 10 nodes, 500 workload
// identities; the compiled node holds 100 of the workloads. Policies have
// 10 rules each: ingress and egress allows between workloads with single
// ports and port ranges, CIDR peers with exceptions (from a pool of 256
// prefixes; one case gives every CIDR rule its own), entity peers, deny
// rules and an L7 rule now and then; one policy in ten is in audit mode.

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"runtime"
	"runtime/metrics"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/palisade-dev/palisade/api/v1alpha1"
)

const (
	benchEndpoints  = 1000
	benchNodes      = 10
	benchApps       = 25 // per namespace: 20 × 25 = 500 identities
	benchNamespaces = 20
	benchCIDRs      = 256 // distinct CIDR prefixes that rules draw from
)

func benchCluster() *Cluster {
	c := &Cluster{Namespaces: map[string]map[string]string{}, PodCIDRs: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")},
		APIServer: []netip.Addr{netip.MustParseAddr("192.168.0.1")}}
	for i := range benchNamespaces {
		c.Namespaces[fmt.Sprintf("ns%d", i)] = map[string]string{"team": fmt.Sprintf("t%d", i%5)}
	}
	for i := range benchNodes {
		c.Nodes = append(c.Nodes, Node{Name: fmt.Sprintf("node%d", i), Labels: map[string]string{"role": "worker"},
			IPs: []netip.Addr{netip.AddrFrom4([4]byte{192, 168, 0, byte(1 + i)})}})
	}
	for i := range benchEndpoints {
		ns := i % benchNamespaces
		app := (i / benchNamespaces) % benchApps
		c.Endpoints = append(c.Endpoints, Endpoint{
			Namespace: fmt.Sprintf("ns%d", ns), Name: fmt.Sprintf("pod%d", i),
			Labels: map[string]string{"app": fmt.Sprintf("app%d", app), "tier": fmt.Sprintf("tier%d", app%3)},
			IPs:    []netip.Addr{netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})},
			Node:   fmt.Sprintf("node%d", i%benchNodes),
			Ports:  []NamedPort{{Name: "http", Port: uint16(8000 + app), Protocol: ProtoTCP}},
		})
	}
	return c
}

// benchPolicies returns rules/10 policies of 10 rules each. CIDR peers
// come from a pool of cidrs /16 prefixes (each with a /24 exception);
// cidrs = 0 gives every CIDR rule prefixes of its own.
func benchPolicies(rules, cidrs int, seed uint64) []*Policy {
	r := rand.New(rand.NewPCG(seed, seed))
	var out []*Policy
	for i := range rules / 10 {
		out = append(out, benchPolicy(r, i, cidrs))
	}
	return out
}

func benchPolicy(r *rand.Rand, i, cidrs int) *Policy {
	cidr := func() (int, int) {
		if cidrs > 0 {
			k := r.IntN(cidrs)
			return k % 50, k / 50 % 256
		}
		return r.IntN(50), r.IntN(256)
	}
	ns := fmt.Sprintf("ns%d", r.IntN(benchNamespaces))
	name := fmt.Sprintf("pol%d", i)
	sel := func() *metav1.LabelSelector {
		if r.IntN(4) == 0 {
			return &metav1.LabelSelector{MatchLabels: map[string]string{"tier": fmt.Sprintf("tier%d", r.IntN(3))}}
		}
		return &metav1.LabelSelector{MatchLabels: map[string]string{"app": fmt.Sprintf("app%d", r.IntN(benchApps))}}
	}
	subj, err := subjectSelector(sel(), ns)
	if err != nil {
		panic(err)
	}
	p := &Policy{Origin: Origin{Kind: "NetworkPolicy", Namespace: ns, Name: name}, Subject: Subject{Endpoints: &subj},
		Audit: r.IntN(10) == 0, DefaultDeny: [2]bool{true, true}}
	for j := range 10 {
		dir := Direction(j % 2)
		rule := &Rule{Direction: dir, Action: Allow, Audit: p.Audit, Subject: p.Subject}
		sec := "ingress"
		if dir == Egress {
			sec = "egress"
		}
		switch r.IntN(10) {
		case 0:
			rule.Action = Deny
			sec += "Deny"
			rule.Peer.CIDRs = []CIDRRule{{Prefix: netip.PrefixFrom(netip.AddrFrom4([4]byte{203, 0, byte(r.IntN(256)), 0}), 24)}}
		case 1:
			a, b := cidr()
			rule.Peer.CIDRs = []CIDRRule{{Prefix: netip.PrefixFrom(netip.AddrFrom4([4]byte{byte(100 + a), byte(b), 0, 0}), 16),
				Except: []netip.Prefix{netip.PrefixFrom(netip.AddrFrom4([4]byte{byte(100 + a), byte(b), byte(b + 7), 0}), 24)}}}
		case 2:
			rule.Peer.Entities = []Entity{pickOf(&gen{r: r}, EntityWorld, EntityHost, EntityRemoteNode, EntityKubeAPIServer)}
		default:
			s, err := NewSelector(sel(), ns)
			if err != nil {
				panic(err)
			}
			rule.Peer.Endpoints = []Selector{s}
		}
		switch r.IntN(6) {
		case 0:
			lo := uint16(1024 + r.IntN(30000))
			rule.L4 = []L4{{Proto: ProtoTCP, Lo: lo, Hi: lo + uint16(r.IntN(20000))}}
		case 1:
			rule.L4 = []L4{{Proto: ProtoTCP, Name: "http"}}
		case 2:
			rule.L4 = []L4{{Proto: ProtoUDP, Lo: 53, Hi: 53}, {Proto: ProtoTCP, Lo: 53, Hi: 53}}
		default:
			port := uint16(1 + r.IntN(10000))
			rule.L4 = []L4{{Proto: ProtoTCP, Lo: port, Hi: port}}
			if rule.Action == Allow && r.IntN(20) == 0 {
				rule.L4[0].L7 = &v1alpha1.L7Rules{HTTP: []v1alpha1.HTTPRule{{Method: "GET", Path: fmt.Sprintf("/v%d/.*", r.IntN(3))}}}
			}
		}
		rule.Origin = Origin{Kind: p.Origin.Kind, Namespace: ns, Name: name, Path: fmt.Sprintf("spec.%s[%d]", sec, j)}
		p.Rules = append(p.Rules, rule)
	}
	return p
}

// peakHeap samples the live heap every millisecond until stopped and
// returns its high-water mark in bytes.
func peakHeap() (stop func() uint64) {
	sample := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	var peak uint64
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(time.Millisecond)
		defer t.Stop()
		for {
			metrics.Read(sample)
			peak = max(peak, sample[0].Value.Uint64())
			select {
			case <-done:
				return
			case <-t.C:
			}
		}
	}()
	return func() uint64 {
		close(done)
		wg.Wait()
		metrics.Read(sample)
		return max(peak, sample[0].Value.Uint64())
	}
}

// BenchmarkCompile compiles 1k, 10k and 100k rules over 1000 workloads
// for one node from scratch. Reported besides time and allocations: the
// policy entries produced, per rule, and the peak live heap during the
// compile (including the input, about the same for every iteration).
func BenchmarkCompile(b *testing.B) {
	c := benchCluster()
	ids := NewMemoryAllocator()
	if err := AllocateIdentities(c, ids); err != nil {
		b.Fatal(err)
	}
	for _, bc := range []struct {
		name         string
		rules, cidrs int
	}{
		{"rules=1000", 1000, benchCIDRs},
		{"rules=10000", 10000, benchCIDRs},
		{"rules=100000", 100000, benchCIDRs},
		// Every CIDR rule with prefixes of its own: the node-local
		// identities grow with the rules, and every "world" rule has an
		// entry for each of them (as in Cilium).
		{"rules=100000/distinct-cidrs", 100000, 0},
	} {
		n := bc.rules
		b.Run(bc.name, func(b *testing.B) {
			ir := testIR(benchPolicies(n, bc.cidrs, 1))
			runtime.GC()
			stop := peakHeap()
			var m *MapState
			b.ResetTimer()
			for range b.N {
				var err error
				if m, err = Compile(ir, c, "node0", ids); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			peak := stop()
			b.ReportMetric(float64(peak)/(1<<20), "peak-heap-MB")
			b.ReportMetric(float64(len(m.Policy)), "entries")
			b.ReportMetric(float64(len(m.Policy))/float64(n), "entries/rule")
			b.ReportMetric(float64(len(m.IPCache)), "ipcache")
		})
	}
}

// BenchmarkCompilerOneRuleChange changes one rule of one policy (its port)
// against 100k rules with the incremental compiler, back and forth, and
// reports the size of the delta: only the entries that really change.
func BenchmarkCompilerOneRuleChange(b *testing.B) {
	c := benchCluster()
	ids := NewMemoryAllocator()
	if err := AllocateIdentities(c, ids); err != nil {
		b.Fatal(err)
	}
	pols := benchPolicies(100000, benchCIDRs, 1)
	comp := NewCompiler("node0", ids)
	if _, err := comp.Compile(testIR(pols), c); err != nil {
		b.Fatal(err)
	}
	// A policy that selects workloads on node0 (so that the change has an
	// effect there), with one rule's port changed.
	var orig *Policy
	st := comp.State()
	for _, p := range pols {
		for _, e := range st.Endpoints {
			if l, ok := ids.Labels(e.Identity); ok && p.Subject.Endpoints.Matches(l) {
				orig = p
				break
			}
		}
		if orig != nil {
			break
		}
	}
	if orig == nil {
		b.Fatal("no policy selects a workload of node0")
	}
	changed := *orig
	changed.Rules = append([]*Rule(nil), orig.Rules...)
	r := *changed.Rules[0]
	r.L4 = []L4{{Proto: ProtoTCP, Lo: 61000, Hi: 61000}}
	changed.Rules[0] = &r
	versions := []*Policy{&changed, orig}
	var total, maxLen int
	b.ResetTimer()
	for i := range b.N {
		d, err := comp.SetPolicy(versions[i%2])
		if err != nil {
			b.Fatal(err)
		}
		total += d.Len()
		maxLen = max(maxLen, d.Len())
	}
	b.ReportMetric(float64(total)/float64(b.N), "delta-entries/op")
	b.ReportMetric(float64(maxLen), "max-delta")
}
