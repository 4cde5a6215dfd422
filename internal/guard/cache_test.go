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

package guard

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	goruntime "runtime"
	"slices"
	"testing"

	"github.com/open-policy-agent/opa/v1/ast"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/palisade-dev/palisade/api/v1alpha1"
	"github.com/palisade-dev/palisade/hack/genpolicies/gen"
	"github.com/palisade-dev/palisade/internal/policy"
	"github.com/palisade-dev/palisade/internal/render"
	"github.com/palisade-dev/palisade/internal/validate"
)

// TestCacheSameDecision runs random sequences of reviews, each judged three
// ways: with a cache shared by the whole sequence, with one so small that
// it rotates within a review, and from scratch (NewChangeSet of the
// canonical policies, which uses no cache of policies or changes). The
// change-set documents (JSON and OPA value) and the decisions must be the
// same, byte for byte.
func TestCacheSameDecision(t *testing.T) {
	dir := t.TempDir()
	if _, err := gen.Write(dir, gen.Config{N: 60, Seed: 7, Embedded: true}); err != nil {
		t.Fatal(err)
	}
	rep, err := validate.Dir(context.Background(), dir, validate.Options{})
	if err != nil || !rep.Valid() {
		t.Fatalf("generated repository: %v %v", err, rep.Diagnostics)
	}
	g, diags := Compile(Builtin())
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	ctx := context.Background()
	for seed := range uint64(4) {
		t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(seed, 99))
			meta := Meta{Revision: "head", PreviousRevision: "base", PolicySet: PolicySetRef{Name: "main"}}
			initial := slices.Clone(rep.Objects)
			// Some policies leave their namespace to the PolicySet.
			for i, p := range initial {
				if p.NetworkPolicy != nil && rng.IntN(4) == 0 {
					initial[i] = edit(t, p, func(np *v1alpha1.NetworkPolicy) { np.Namespace = "" })
				}
			}
			shared, tiny := NewCache(DefaultCacheBytes), NewCache(8<<10)
			base, head := initial, slices.Clone(initial)
			var deleted []*policy.Policy
			resourceVersion := 0
			for step := range 120 {
				// Mutate a few policies of head.
				for range 1 + rng.IntN(6) {
					head, deleted = mutate(t, rng, head, deleted)
				}
				// One cache serves PolicySets of different namespaces.
				meta.PolicySet.Namespace = []string{"shop", "billing"}[rng.IntN(2)]
				want := NewChangeSet(Canonical(base, meta), Canonical(head, meta), meta)
				wantD := g.Evaluate(ctx, want, Options{})
				for _, c := range []*Cache{shared, tiny, NewCache(DefaultCacheBytes)} {
					got := reviewChangeSet(base, head, meta, c)
					if !bytes.Equal(got.JSON(), want.JSON()) {
						t.Fatalf("step %d: change set differs\ngot:  %s\nwant: %s", step, got.JSON(), want.JSON())
					}
					if ast.Compare(got.value, want.value) != 0 {
						t.Fatalf("step %d: OPA input differs", step)
					}
					js, _ := Review(ctx, g, base, head, meta, Options{Cache: c})
					if !bytes.Equal(js, wantD.JSON()) {
						t.Fatalf("step %d: decision differs\ngot:  %s\nwant: %s", step, js, wantD.JSON())
					}
				}
				// ReviewObjects, as the controller calls it, with the
				// cache and without.
				if step%4 == 0 {
					objs := func(ps []*policy.Policy) []runtime.Object {
						out := make([]runtime.Object, len(ps))
						for i, p := range ps {
							out[i] = p.Typed()
						}
						return out
					}
					js, _, err := ReviewObjects(ctx, g, objs(base), objs(head), meta, Options{Cache: shared})
					if err != nil {
						t.Fatal(err)
					}
					fresh, _, err := ReviewObjects(ctx, g, objs(base), objs(head), meta, Options{Cache: NewCache(DefaultCacheBytes)})
					if err != nil {
						t.Fatal(err)
					}
					if !bytes.Equal(js, fresh) {
						t.Fatalf("step %d: ReviewObjects' decision differs with the cache\ngot:  %s\nwant: %s", step, js, fresh)
					}
				}
				// Sometimes the head is applied and becomes the base; the
				// objects read back carry render's labels and annotations.
				if rng.IntN(3) == 0 {
					base = make([]*policy.Policy, len(head))
					for i, p := range head {
						resourceVersion++
						base[i] = readBack(t, p, rng.IntN(5), resourceVersion)
					}
				}
			}
			if shared.hits == 0 || tiny.hits+tiny.misses == 0 {
				t.Fatalf("the caches were not used: shared %d hits, tiny %d hits %d misses", shared.hits, tiny.hits, tiny.misses)
			}
			t.Logf("shared cache: %d hits, %d misses; tiny: %d hits, %d misses", shared.hits, shared.misses, tiny.hits, tiny.misses)
		})
	}
}

// edit returns p with its NetworkPolicy changed by f and its JSON the
// changed object's.
func edit(t *testing.T, p *policy.Policy, f func(*v1alpha1.NetworkPolicy)) *policy.Policy {
	t.Helper()
	np := p.NetworkPolicy.DeepCopy()
	f(np)
	js, err := json.Marshal(np)
	if err != nil {
		t.Fatal(err)
	}
	q := *p
	q.NetworkPolicy, q.JSON, q.Namespace = np, js, np.Namespace
	return &q
}

// readBack returns p as the controller reads it back from the API server
// (render.Policy of the object render applied at some revision), with a
// uid and a resourceVersion no other content has had.
func readBack(t *testing.T, p *policy.Policy, rev, resourceVersion int) *policy.Policy {
	t.Helper()
	if p.NetworkPolicy == nil {
		return p
	}
	np := p.NetworkPolicy.DeepCopy()
	if np.Annotations == nil {
		np.Annotations = map[string]string{}
	}
	np.Annotations[render.AnnotationRevision] = fmt.Sprintf("rev-%d", rev)
	np.Annotations[render.AnnotationSource] = fmt.Sprintf("%s:%d:1", p.Pos.File, max(p.Pos.Line, 1))
	np.UID = types.UID("uid-" + p.Name)
	np.ResourceVersion = fmt.Sprint(resourceVersion)
	q, err := render.Policy(np)
	if err != nil {
		t.Fatal(err)
	}
	return q
}

// mutate changes one policy of ps at random: a new or removed rule, a new
// mode, label, render annotation or position, the same content in a new
// object, a deletion, or the return of a deleted policy.
func mutate(t *testing.T, rng *rand.Rand, ps, deleted []*policy.Policy) ([]*policy.Policy, []*policy.Policy) {
	ps = slices.Clone(ps)
	i := rng.IntN(len(ps))
	p := ps[i]
	if p.NetworkPolicy == nil {
		return ps, deleted
	}
	entities := []v1alpha1.Entity{v1alpha1.EntityCluster, v1alpha1.EntityWorld, v1alpha1.EntityAll, v1alpha1.EntityHost}
	switch rng.IntN(9) {
	case 0, 1:
		ps[i] = edit(t, p, func(np *v1alpha1.NetworkPolicy) {
			np.Spec.Ingress = append(np.Spec.Ingress, v1alpha1.IngressRule{
				FromEntities: []v1alpha1.Entity{entities[rng.IntN(len(entities))]},
				ToPorts:      []v1alpha1.PortRule{{Ports: []v1alpha1.PortProtocol{{Port: intstr.FromInt32(int32(20 + rng.IntN(8))), Protocol: v1alpha1.ProtocolTCP}}}},
			})
		})
	case 2:
		ps[i] = edit(t, p, func(np *v1alpha1.NetworkPolicy) {
			if n := len(np.Spec.Ingress); n > 0 {
				np.Spec.Ingress = np.Spec.Ingress[:n-1]
			}
		})
	case 3:
		ps[i] = edit(t, p, func(np *v1alpha1.NetworkPolicy) {
			if np.Spec.Mode == v1alpha1.EnforcementModeAudit {
				np.Spec.Mode = ""
			} else {
				np.Spec.Mode = v1alpha1.EnforcementModeAudit
			}
		})
	case 4:
		ps[i] = edit(t, p, func(np *v1alpha1.NetworkPolicy) {
			if np.Labels == nil {
				np.Labels = map[string]string{}
			}
			np.Labels["team"] = fmt.Sprint("t", rng.IntN(3))
			np.Labels[render.LabelPolicySetName] = fmt.Sprint("set", rng.IntN(3))
		})
	case 5:
		q := *p
		q.Pos.Line = 1 + rng.IntN(3)
		ps[i] = &q
	case 6:
		ps[i] = edit(t, p, func(*v1alpha1.NetworkPolicy) {})
	case 7:
		if len(ps) > 1 {
			deleted = append(deleted, p)
			ps = slices.Delete(ps, i, i+1)
		}
	case 8:
		if n := len(deleted); n > 0 {
			j := rng.IntN(n)
			ps = append(ps, deleted[j])
			deleted = slices.Delete(deleted, j, j+1)
		}
	}
	return ps, deleted
}

// TestJSONValue: the direct conversion makes the value OPA's does, for
// every generated policy and for JSON encoding/json would write or read
// in other ways.
func TestJSONValue(t *testing.T) {
	dir := t.TempDir()
	if _, err := gen.Write(dir, gen.Config{N: 200, Seed: 3, Embedded: true}); err != nil {
		t.Fatal(err)
	}
	rep, err := validate.Dir(context.Background(), dir, validate.Options{})
	if err != nil || !rep.Valid() {
		t.Fatalf("generated repository: %v %v", err, rep.Diagnostics)
	}
	inputs := []string{
		`{}`, `[]`, `{"a":[]}`, ` { "a" : [ 1 , -2.50 , 1e5 , 0 , -0 , 1E-3 ] , "b" : null } `,
		`{"s":"a\"b\\c\/d\u00e9\u003c\n","t":"é ü","u":"\ud83d\ude00"}`,
		`{"a":true,"b":false,"c":{"d":{"e":["x",{"f":null}]}}}`,
		`{"a":1,"a":2}`, "\"bad \xff utf8\"", `[1,]`, `{"a"}`, `tru`, `[1 2]`, `"x" 1`, `-`, `1.`,
	}
	for _, p := range rep.Objects {
		inputs = append(inputs, string(p.JSON))
		q := reviewShell(p, "shop")
		encodeCanonical(q)
		inputs = append(inputs, string(q.JSON))
	}
	for _, in := range inputs {
		want, wantErr := ast.ValueFromReader(bytes.NewReader([]byte(in)))
		got, err := jsonValue([]byte(in))
		if (err != nil) != (wantErr != nil) {
			t.Fatalf("%s: error %v, OPA's %v", in, err, wantErr)
		}
		if err == nil && ast.Compare(got, want) != 0 {
			t.Fatalf("%s: got %v, OPA's %v", in, got, want)
		}
	}
}

// TestCacheCost: what the cache charges for what it holds is its heap
// within a factor of two, on the repository make bench-guard generates,
// and a cache filled by ever new changes stays within its limit.
func TestCacheCost(t *testing.T) {
	if testing.Short() {
		t.Skip("generates and loads 1000 policies")
	}
	dir := t.TempDir()
	if _, err := gen.Write(dir, gen.Config{N: 1000, Seed: 1, Embedded: true}); err != nil {
		t.Fatal(err)
	}
	rep, err := validate.Dir(context.Background(), dir, validate.Options{})
	if err != nil || !rep.Valid() {
		t.Fatalf("generated repository: %v %v", err, rep.Diagnostics)
	}
	base := rep.Objects
	widened := func(port int) []*policy.Policy {
		head := make([]*policy.Policy, len(base))
		for i, p := range base {
			head[i] = edit(t, p, func(np *v1alpha1.NetworkPolicy) {
				np.Spec.Ingress = append(np.Spec.Ingress, v1alpha1.IngressRule{
					FromEntities: []v1alpha1.Entity{v1alpha1.EntityCluster},
					ToPorts:      []v1alpha1.PortRule{{Ports: []v1alpha1.PortProtocol{{Port: intstr.FromInt32(int32(port)), Protocol: v1alpha1.ProtocolTCP}}}},
				})
			})
		}
		return head
	}
	head := widened(8443)
	// The heap of a second cache of the same review, the first one and
	// everything else alive.
	first := NewCache(1 << 30)
	reviewChangeSet(base, head, Meta{}, first)
	var m0, m1 goruntime.MemStats
	goruntime.GC()
	goruntime.ReadMemStats(&m0)
	c := NewCache(1 << 30)
	reviewChangeSet(base, head, Meta{}, c)
	goruntime.GC()
	goruntime.ReadMemStats(&m1)
	heap, charged := int64(m1.HeapAlloc)-int64(m0.HeapAlloc), int64(c.cur.size)
	t.Logf("1000 changes of 1000 policies: %.1f MiB of heap, %.1f MiB charged", float64(heap)/(1<<20), float64(charged)/(1<<20))
	if heap > 2*charged || heap < charged/2 {
		t.Errorf("the cache charges %d bytes for %d bytes of heap", charged, heap)
	}
	goruntime.KeepAlive(first)
	goruntime.KeepAlive(c)

	// Ever new heads: the cache rotates and stays within its limit.
	limit := int(charged) // one review's worth: two generations of half
	small := NewCache(limit)
	for port := range 6 {
		reviewChangeSet(base, widened(9000+port), Meta{}, small)
		if n := small.cur.size + small.old.size; n > limit+int(charged)/100 {
			t.Fatalf("after %d reviews the cache holds %d bytes, over its limit of %d", port+1, n, limit)
		}
	}
}
