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

package guard_test

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"runtime"
	"slices"
	"syscall"
	"testing"
	"time"

	k8sruntime "k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/palisade-dev/palisade/api/v1alpha1"
	"github.com/palisade-dev/palisade/hack/genpolicies/gen"
	"github.com/palisade-dev/palisade/internal/guard"
	"github.com/palisade-dev/palisade/internal/render"
	"github.com/palisade-dev/palisade/internal/validate"
)

// The guard benchmarks evaluate the built-in guards on changes of 1, 100
// and 1000 policies of a repository written by hack/genpolicies (the one
// `make bench-validate` uses): each changed policy gains an ingress rule,
// so every change is an update with a before and an after. They report
// the p50 and p99 of the per-change latency (`make bench-guard`,
// docs/guards.md):
//
//	Evaluate: Guards.Evaluate on a fresh change set (converting it for
//	          OPA and running every guard); the change set is built
//	          untimed.
//	Review:   guard.Review, i.e. building the change set and its facts
//	          from the policies too, as the controller and CLI call it.
//	ReviewNewHead: Review of a head that is new in every iteration (the
//	          added rule's port differs), while the base stays: what a
//	          controller pays for each new commit, whose policies no
//	          earlier review has seen. Review, which judges the same
//	          change again and again, derives nothing after its first
//	          iteration (cache.go).
//	ReviewOneMore: Review of a head that differs from the previous
//	          iteration's in one policy (a new port on one of the n
//	          changed ones, in turn), against the same base: what a
//	          controller pays for a commit that changes one policy more
//	          than the last reviewed one, when n policies differ from the
//	          applied ones (a denied revision fixed, say).
//
// Each benchmark starts from a cache its earlier sub-benchmarks filled,
// and the ports they add do not repeat, so that nothing is found in the
// cache that the model says is new.

func BenchmarkEvaluate(b *testing.B) {
	for _, n := range []int{1, 100, 1000} {
		b.Run(fmt.Sprintf("changes=%d", n), func(b *testing.B) { benchGuard(b, n, false) })
	}
}

func BenchmarkReview(b *testing.B) {
	for _, n := range []int{1, 100, 1000} {
		b.Run(fmt.Sprintf("changes=%d", n), func(b *testing.B) { benchGuard(b, n, true) })
	}
}

func BenchmarkReviewNewHead(b *testing.B) {
	for _, n := range []int{1, 100, 1000} {
		b.Run(fmt.Sprintf("changes=%d", n), func(b *testing.B) {
			base := benchPolicies(b)
			g := builtin(b)
			meta := guard.Meta{Revision: "head", PreviousRevision: "base", Overrides: []string{"max-changes"}}
			ctx := context.Background()
			var lat latencies
			port := int32(20000 + 10*n) // distinct per n
			for b.Loop() {
				port++ // a new head: policies no review has seen
				head := slices.Clone(base)
				for i := range n {
					head[i] = widenPort(b, base[i], port)
				}
				var d *guard.Decision
				lat.measure(func() { _, d = guard.Review(ctx, g, base, head, meta, guard.Options{}) })
				if len(d.Errors) > 0 || d.Summary.Total != n {
					b.Fatalf("unexpected decision: %s", d.JSON())
				}
			}
			lat.report(b)
		})
	}
}

func BenchmarkReviewOneMore(b *testing.B) {
	for _, n := range []int{1, 100, 1000} {
		b.Run(fmt.Sprintf("changes=%d", n), func(b *testing.B) {
			base := benchPolicies(b)
			g := builtin(b)
			meta := guard.Meta{Revision: "head", PreviousRevision: "base", Overrides: []string{"max-changes"}}
			ctx := context.Background()
			head := slices.Clone(base)
			for i := range n {
				head[i] = widenPort(b, base[i], 40000)
			}
			guard.Review(ctx, g, base, head, meta, guard.Options{}) // the previous review
			var lat latencies
			port := int32(40001 + 10*n) // distinct per n and from ReviewNewHead's
			for i := 0; b.Loop(); i++ {
				port++
				head = slices.Clone(head)
				head[i%n] = widenPort(b, base[i%n], port) // one policy more is new
				var d *guard.Decision
				lat.measure(func() { _, d = guard.Review(ctx, g, base, head, meta, guard.Options{}) })
				if len(d.Errors) > 0 || d.Summary.Total != n {
					b.Fatalf("unexpected decision: %s", d.JSON())
				}
			}
			lat.report(b)
		})
	}
}

// BenchmarkReviewObjectsOneMore is ReviewOneMore as the controller calls
// it: ReviewObjects with the objects it owns (as read back from the API
// server: uid, resourceVersion, render's labels and annotations of the
// applied revision; the same in every iteration, as while a revision is
// denied) and the objects the new revision renders (new objects in every
// iteration, with the new revision in their annotations; made untimed).
func BenchmarkReviewObjectsOneMore(b *testing.B) {
	for _, n := range []int{1, 100, 1000} {
		b.Run(fmt.Sprintf("changes=%d", n), func(b *testing.B) {
			base := benchPolicies(b)
			g := builtin(b)
			meta := guard.Meta{Revision: "head", PreviousRevision: "base", Overrides: []string{"max-changes"}}
			ctx := context.Background()
			live := make([]k8sruntime.Object, len(base))
			for i, p := range base {
				live[i] = object(p, "base", fmt.Sprintf("uid-%d", i), fmt.Sprint(1000+i))
			}
			head := slices.Clone(base)
			for i := range n {
				head[i] = widenPort(b, base[i], 50000)
			}
			rendered := func(rev string) []k8sruntime.Object {
				out := make([]k8sruntime.Object, len(head))
				for i, p := range head {
					out[i] = object(p, rev, "", "")
				}
				return out
			}
			guard.ReviewObjects(ctx, g, live, rendered("rev-0"), meta, guard.Options{}) // the previous review
			var lat latencies
			port := int32(50001 + 10*n) // distinct per n and from the other benchmarks'
			for i := 0; b.Loop(); i++ {
				port++
				head = slices.Clone(head)
				head[i%n] = widenPort(b, base[i%n], port)
				after := rendered(fmt.Sprint("rev-", i+1))
				var d *guard.Decision
				var err error
				lat.measure(func() { _, d, err = guard.ReviewObjects(ctx, g, live, after, meta, guard.Options{}) })
				if err != nil || len(d.Errors) > 0 || d.Summary.Total != n {
					b.Fatalf("unexpected decision (%v): %s", err, d.JSON())
				}
			}
			lat.report(b)
		})
	}
}

// object is the object render makes of p at revision rev, as the API
// server stores it when uid and resourceVersion are set.
func object(p *validate.Policy, rev, uid, resourceVersion string) k8sruntime.Object {
	np := p.NetworkPolicy.DeepCopy()
	np.Annotations = maps.Clone(np.Annotations)
	if np.Annotations == nil {
		np.Annotations = map[string]string{}
	}
	np.Annotations[render.AnnotationRevision] = rev
	np.Annotations[render.AnnotationSource] = fmt.Sprintf("%s:%d:%d", p.Pos.File, max(p.Pos.Line, 1), p.Pos.Column)
	np.UID, np.ResourceVersion = types.UID(uid), resourceVersion
	return np
}

var benchBase []*validate.Policy

// benchPolicies loads the generated repository once per process.
func benchPolicies(b testing.TB) []*validate.Policy {
	if benchBase == nil {
		dir := b.TempDir()
		if _, err := gen.Write(dir, gen.Config{N: 1000, Seed: 1, Embedded: true}); err != nil {
			b.Fatal(err)
		}
		rep, err := validate.Dir(context.Background(), dir, validate.Options{})
		if err != nil {
			b.Fatal(err)
		}
		if !rep.Valid() || len(rep.Objects) != 1000 {
			b.Fatalf("generated repository: %d policies, %d errors", len(rep.Objects), len(rep.Diagnostics))
		}
		benchBase = rep.Objects
	}
	return benchBase
}

// widen returns p with one more ingress rule: port 8443 from the cluster.
func widen(b testing.TB, p *validate.Policy) *validate.Policy { return widenPort(b, p, 8443) }

// widenPort returns p with one more ingress rule: port from the cluster.
func widenPort(b testing.TB, p *validate.Policy, port int32) *validate.Policy {
	np := p.NetworkPolicy.DeepCopy()
	np.Spec.Ingress = append(np.Spec.Ingress, v1alpha1.IngressRule{
		FromEntities: []v1alpha1.Entity{v1alpha1.EntityCluster},
		ToPorts:      []v1alpha1.PortRule{{Ports: []v1alpha1.PortProtocol{{Port: intstr.FromInt32(port), Protocol: v1alpha1.ProtocolTCP}}}},
	})
	js, err := json.Marshal(np)
	if err != nil {
		b.Fatal(err)
	}
	q := *p
	q.NetworkPolicy, q.JSON = np, js
	return &q
}

func benchGuard(b *testing.B, n int, review bool) {
	base := benchPolicies(b)
	head := slices.Clone(base)
	for i := range n {
		head[i] = widen(b, base[i])
	}
	g := builtin(b)
	meta := guard.Meta{Revision: "head", PreviousRevision: "base", Overrides: []string{"max-changes"}}
	ctx := context.Background()
	var lat latencies
	for b.Loop() {
		var d *guard.Decision
		if review {
			lat.measure(func() { _, d = guard.Review(ctx, g, base, head, meta, guard.Options{}) })
		} else {
			cs := guard.NewChangeSet(base, head, meta)
			lat.measure(func() { d = g.Evaluate(ctx, cs, guard.Options{}) })
		}
		if len(d.Errors) > 0 || d.Summary.Total != n {
			b.Fatalf("unexpected decision: %s", d.JSON())
		}
	}
	lat.report(b)
}

// latencies are the wall times of the timed sections and the CPU time
// the process spent in them (every thread: guards in parallel, the
// garbage collector). On a host shared with other work, wall times grow
// with the load; CPU time says what one review costs.
type latencies struct {
	wall []time.Duration
	cpu  time.Duration
}

func (l *latencies) measure(f func()) {
	c0 := cpuTime()
	t0 := time.Now()
	f()
	l.wall = append(l.wall, time.Since(t0))
	l.cpu += cpuTime() - c0
}

// cpuTime is the process's user and system time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		panic(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// report reports the p50 and p99 of the wall times, the mean CPU time and
// the live heap after a collection (the review cache is bounded: it must
// not grow with the iterations).
func (l *latencies) report(b *testing.B) {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	b.ReportMetric(float64(ms.HeapAlloc)/(1<<20), "heap-MiB")
	lat := l.wall
	slices.Sort(lat)
	q := func(p float64) float64 { return float64(lat[int(p*float64(len(lat)-1))].Microseconds()) / 1000 }
	b.ReportMetric(q(0.50), "p50-ms")
	b.ReportMetric(q(0.99), "p99-ms")
	b.ReportMetric(float64(l.cpu.Microseconds())/1000/float64(len(lat)), "cpu-ms/op")
}
