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
	"maps"
	"reflect"
	"slices"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/palisade-dev/palisade/api/v1alpha1"
	"github.com/palisade-dev/palisade/internal/diag"
	"github.com/palisade-dev/palisade/internal/policy"
	"github.com/palisade-dev/palisade/internal/render"
)

// ReviewObjects is the in-cluster path: the function the PolicySet
// controller calls with the policy objects it has applied (before, as read
// from the API server) and the ones the new revision renders (after), both
// as render.Objects makes them. The objects are *v1alpha1.NetworkPolicy,
// ClusterNetworkPolicy, TracingPolicy or ClusterTracingPolicy; what the API
// server adds to them (uid, resourceVersion, managedFields, ...) and what
// render adds (its labels and annotations) does not reach the guards, and
// positions come from render.AnnotationSource. For the same change, meta
// and guards it returns the same decision JSON, byte for byte, as Review
// does in the CLI. An object of another type or with a malformed source
// annotation is an error, and nothing is evaluated.
func ReviewObjects(ctx context.Context, g *Guards, before, after []runtime.Object, meta Meta, opts Options) ([]byte, *Decision, error) {
	cs, err := objectsChangeSet(before, after, meta, opts.Cache)
	if err != nil {
		return nil, nil, err
	}
	d := g.Evaluate(ctx, cs, opts)
	return d.JSON(), d, nil
}

// ObjectsChangeSet is the change set ReviewObjects judges: the same
// document, byte for byte, as the CLI builds for the same change.
func ObjectsChangeSet(before, after []runtime.Object, meta Meta) (*ChangeSet, error) {
	return objectsChangeSet(before, after, meta, nil)
}

func objectsChangeSet(before, after []runtime.Object, meta Meta, cache *Cache) (*ChangeSet, error) {
	if cache == nil {
		cache = defaultCache
	}
	base, err := policiesOf(before, "before", cache)
	if err != nil {
		return nil, err
	}
	head, err := policiesOf(after, "after", cache)
	if err != nil {
		return nil, err
	}
	return reviewChangeSet(base, head, meta, cache), nil
}

// policiesOf converts API objects into policies for a change set, in
// parallel. An object as the API server stored it (with a uid and a
// resourceVersion) is converted once: the policy made of it is kept in
// the cache under its kind, uid and resourceVersion, which the API server
// never reuses for other content.
func policiesOf(objs []runtime.Object, side string, cache *Cache) ([]*policy.Policy, error) {
	out := make([]*policy.Policy, len(objs))
	errs := make([]error, len(objs))
	parallel(len(objs), func(i int) {
		key, stored := storedKey(objs[i])
		if stored {
			if p := cache.object(key); p != nil {
				out[i] = p
				return
			}
		}
		p, err := policyOf(objs[i])
		if err != nil {
			errs[i] = fmt.Errorf("guard %s[%d]: %w", side, i, err)
			return
		}
		if stored {
			cache.putObject(key, p)
		}
		out[i] = p
	})
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

// objectKey identifies an object as the API server stored it.
type objectKey struct {
	typ                  reflect.Type
	uid, resourceVersion string
}

// storedKey returns an object's key, and whether it has one.
func storedKey(o runtime.Object) (objectKey, bool) {
	obj, ok := o.(policy.Object)
	if !ok {
		return objectKey{}, false
	}
	k := objectKey{typ: reflect.TypeOf(o), uid: string(obj.GetUID()), resourceVersion: obj.GetResourceVersion()}
	return k, k.uid != "" && k.resourceVersion != ""
}

// policyOf is render.Policy for an object the controller holds. Typed
// objects read through a client often carry no apiVersion and kind; render
// reads the kind from them, so a copy gets the one its Go type says (the
// caller's object, possibly a shared cache entry, is never modified).
func policyOf(o runtime.Object) (*policy.Policy, error) {
	obj, ok := o.(policy.Object)
	if !ok {
		return nil, fmt.Errorf("%T is not a Palisade policy", o)
	}
	// render.Policy takes the kind from the Go type, so objects from a
	// typed client (empty apiVersion and kind) need no copy.
	return render.Policy(obj)
}

// withoutKeys returns m without keys, sharing m when it has none of them;
// nil when nothing is left.
func withoutKeys(m map[string]string, keys []string) map[string]string {
	n := len(m)
	for _, k := range keys {
		if _, ok := m[k]; ok {
			n--
		}
	}
	switch {
	case n == 0:
		return nil
	case n == len(m):
		return m
	}
	out := make(map[string]string, n)
	for k, v := range m {
		if !slices.Contains(keys, k) {
			out[k] = v
		}
	}
	return out
}

// canonical returns the policy as guards see it, the same whether it was
// loaded from CUE or read from the API server: its typed object encoded by
// encoding/json with only apiVersion, kind, metadata.name, namespace
// (defaulted to the PolicySet's for a namespaced policy that sets none, as
// render.Objects applies it), labels and annotations (without render's),
// and spec. A policy without a typed object is returned unchanged.
func canonical(p *policy.Policy, defaultNamespace string) *policy.Policy {
	q := canonicalShell(p, defaultNamespace)
	if q != p {
		encodeCanonical(q)
	}
	return q
}

// canonicalShell is canonical without the JSON: the typed object with the
// canonical metadata (sharing p's spec, which is never modified), JSON nil
// until encodeCanonical. Telling whether a policy changed needs the JSON
// only when the typed objects differ (sameCanonical), so unchanged
// policies are never encoded.
func canonicalShell(p *policy.Policy, defaultNamespace string) *policy.Policy {
	kind := p.TypedKind()
	if kind == "" {
		return p
	}
	ns := p.Namespace
	if ns == "" && policy.Namespaced(kind) {
		ns = defaultNamespace
	}
	src := p.Typed()
	om := metav1.ObjectMeta{Name: p.Name, Namespace: ns, Labels: withoutKeys(src.GetLabels(), render.OwnLabels), Annotations: withoutKeys(src.GetAnnotations(), render.OwnAnnotations)}
	tm := metav1.TypeMeta{APIVersion: v1alpha1.GroupVersion.String(), Kind: kind}
	q := &policy.Policy{Kind: kind, Namespace: ns, Name: p.Name, Pos: p.Pos}
	switch {
	case p.NetworkPolicy != nil:
		q.NetworkPolicy = &v1alpha1.NetworkPolicy{TypeMeta: tm, ObjectMeta: om, Spec: p.NetworkPolicy.Spec}
	case p.ClusterNetworkPolicy != nil:
		q.ClusterNetworkPolicy = &v1alpha1.ClusterNetworkPolicy{TypeMeta: tm, ObjectMeta: om, Spec: p.ClusterNetworkPolicy.Spec}
	case p.TracingPolicy != nil:
		q.TracingPolicy = &v1alpha1.TracingPolicy{TypeMeta: tm, ObjectMeta: om, Spec: p.TracingPolicy.Spec}
	default:
		q.ClusterTracingPolicy = &v1alpha1.ClusterTracingPolicy{TypeMeta: tm, ObjectMeta: om, Spec: p.ClusterTracingPolicy.Spec}
	}
	return q
}

// reviewShell is what Review starts from, cheaper still than a canonical
// shell: the canonical identity (kind, defaulted namespace, name), the
// original's typed object, whose spec facts read, and the original kept in
// Source (a pending), so that the canonical object is made only for a
// policy that changed (materialize). Telling an unchanged policy needs
// neither: sameCanonical compares the originals' canonical parts.
func reviewShell(p *policy.Policy, defaultNamespace string) *policy.Policy {
	kind := p.TypedKind()
	if kind == "" {
		return p
	}
	ns := p.Namespace
	if ns == "" && policy.Namespaced(kind) {
		ns = defaultNamespace
	}
	return &policy.Policy{
		Kind: kind, Namespace: ns, Name: p.Name, Pos: p.Pos, Source: pending{orig: p, ns: defaultNamespace},
		NetworkPolicy: p.NetworkPolicy, ClusterNetworkPolicy: p.ClusterNetworkPolicy,
		TracingPolicy: p.TracingPolicy, ClusterTracingPolicy: p.ClusterTracingPolicy,
	}
}

// pending marks a review shell whose canonical object is not made yet.
type pending struct {
	orig *policy.Policy
	ns   string // the PolicySet's namespace
}

// PosOf implements policy.Locator.
func (s pending) PosOf(path string) diag.Pos { return s.orig.PosOf(path) }

// materialize turns a review shell into a canonical shell; other policies
// are left alone.
func materialize(q *policy.Policy) {
	s, ok := q.Source.(pending)
	if !ok {
		return
	}
	c := canonicalShell(s.orig, s.ns)
	q.NetworkPolicy, q.ClusterNetworkPolicy, q.TracingPolicy, q.ClusterTracingPolicy = c.NetworkPolicy, c.ClusterNetworkPolicy, c.TracingPolicy, c.ClusterTracingPolicy
	q.Source = s.orig.Source
}

// encodeCanonical sets a canonical shell's JSON, once.
func encodeCanonical(q *policy.Policy) {
	if q.JSON != nil {
		return
	}
	materialize(q)
	js, err := json.Marshal(q.Typed())
	if err != nil {
		panic(fmt.Sprintf("guard: encode %s: %v", q.ID(), err)) // API types always encode
	}
	q.JSON = js
}

// sameOwnJSON reports that two typed policies with the same review ID
// have the same canonical object because they have the same JSON of their
// own, from which, with the kind and the PolicySet's namespace, the
// canonical object follows. false means only "not told".
func sameOwnJSON(b, a *policy.Policy) bool {
	kind := b.TypedKind()
	return kind != "" && a.TypedKind() == kind && b.JSON != nil && bytes.Equal(b.JSON, a.JSON)
}

// sameOriginals reports, without encoding, that two typed policies with the
// same review ID have the same canonical object: equal identities, labels
// and annotations guards see, and specs. false means only "not told":
// objects that differ in a way JSON does not show (a nil and an empty
// list, say) are told by their canonical JSON.
func sameOriginals(b, a *policy.Policy) bool {
	kind := b.TypedKind()
	if kind == "" || a.TypedKind() != kind {
		return false
	}
	bo, ao := b.Typed(), a.Typed()
	return maps.Equal(withoutKeys(bo.GetLabels(), render.OwnLabels), withoutKeys(ao.GetLabels(), render.OwnLabels)) &&
		maps.Equal(withoutKeys(bo.GetAnnotations(), render.OwnAnnotations), withoutKeys(ao.GetAnnotations(), render.OwnAnnotations)) &&
		reflect.DeepEqual(specOf(b), specOf(a))
}

// specOf returns a pointer to the policy's spec.
func specOf(p *policy.Policy) any {
	switch {
	case p.NetworkPolicy != nil:
		return &p.NetworkPolicy.Spec
	case p.ClusterNetworkPolicy != nil:
		return &p.ClusterNetworkPolicy.Spec
	case p.TracingPolicy != nil:
		return &p.TracingPolicy.Spec
	case p.ClusterTracingPolicy != nil:
		return &p.ClusterTracingPolicy.Spec
	}
	return nil
}
