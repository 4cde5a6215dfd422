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
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"strconv"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/palisade-dev/palisade/api/v1alpha1"
	"github.com/palisade-dev/palisade/internal/diag"
	"github.com/palisade-dev/palisade/internal/loader"
	"github.com/palisade-dev/palisade/internal/validate"
)

// SourceAnnotation records on a policy object where in the policy
// repository it is declared, as "file:line" relative to the PolicySet's
// path. The PolicySet controller sets it when it renders objects, so that
// guard findings about objects read back from the API server point at the
// same line as in CI. Guards do not see it: it is dropped from the
// canonical form.
const SourceAnnotation = "palisade.dev/source"

// ReviewObjects is the in-cluster path: the function the PolicySet
// controller calls with the policy objects it has applied (before, as read
// from the API server) and the ones the new revision renders (after). The
// objects are *v1alpha1.NetworkPolicy, ClusterNetworkPolicy,
// TracingPolicy or ClusterTracingPolicy; what the API server adds to them
// (uid, resourceVersion, managedFields, ...) does not reach the guards.
// For the same change, meta and guards it returns the same decision JSON,
// byte for byte, as Review does in the CLI. An object of another type or
// with a malformed SourceAnnotation is an error, and nothing is evaluated.
func ReviewObjects(ctx context.Context, g *Guards, before, after []runtime.Object, meta Meta, opts Options) ([]byte, *Decision, error) {
	cs, err := ObjectsChangeSet(before, after, meta)
	if err != nil {
		return nil, nil, err
	}
	d := g.Evaluate(ctx, cs, opts)
	return d.JSON(), d, nil
}

// ObjectsChangeSet is the change set ReviewObjects judges: the same
// document, byte for byte, as the CLI builds for the same change.
func ObjectsChangeSet(before, after []runtime.Object, meta Meta) (*ChangeSet, error) {
	base, err := policiesOf(before, "before")
	if err != nil {
		return nil, err
	}
	head, err := policiesOf(after, "after")
	if err != nil {
		return nil, err
	}
	return NewChangeSet(Canonical(base, meta), Canonical(head, meta), meta), nil
}

// policiesOf converts API objects into policies for a change set.
func policiesOf(objs []runtime.Object, side string) ([]*validate.Policy, error) {
	out := make([]*validate.Policy, 0, len(objs))
	for i, o := range objs {
		p, err := policyOf(o)
		if err != nil {
			return nil, fmt.Errorf("guard %s[%d]: %w", side, i, err)
		}
		out = append(out, p)
	}
	return out, nil
}

func policyOf(o runtime.Object) (*validate.Policy, error) {
	p := &validate.Policy{}
	var m *metav1.ObjectMeta
	switch x := o.(type) {
	case *v1alpha1.NetworkPolicy:
		p.NetworkPolicy, m = x, &x.ObjectMeta
	case *v1alpha1.ClusterNetworkPolicy:
		p.ClusterNetworkPolicy, m = x, &x.ObjectMeta
	case *v1alpha1.TracingPolicy:
		p.TracingPolicy, m = x, &x.ObjectMeta
	case *v1alpha1.ClusterTracingPolicy:
		p.ClusterTracingPolicy, m = x, &x.ObjectMeta
	default:
		return nil, fmt.Errorf("%T is not a Palisade policy", o)
	}
	pos, err := sourcePos(m.Annotations[SourceAnnotation])
	if err != nil {
		return nil, fmt.Errorf("%s %s/%s: annotation %s: %w", kindOf(p), m.Namespace, m.Name, SourceAnnotation, err)
	}
	p.Object = &loader.Object{Kind: kindOf(p), Namespace: m.Namespace, Name: m.Name, Pos: pos}
	return p, nil
}

// sourcePos parses a SourceAnnotation value; empty means unknown (an object
// the controller did not render, e.g. one created by hand).
func sourcePos(v string) (diag.Pos, error) {
	if v == "" {
		return diag.Pos{}, nil
	}
	i := strings.LastIndexByte(v, ':')
	if i <= 0 {
		return diag.Pos{}, fmt.Errorf("%q is not file:line", v)
	}
	line, err := strconv.Atoi(v[i+1:])
	if err != nil || line < 1 {
		return diag.Pos{}, fmt.Errorf("%q is not file:line", v)
	}
	return diag.Pos{File: v[:i], Line: line}, nil
}

func kindOf(p *validate.Policy) string {
	switch {
	case p.NetworkPolicy != nil:
		return "NetworkPolicy"
	case p.ClusterNetworkPolicy != nil:
		return "ClusterNetworkPolicy"
	case p.TracingPolicy != nil:
		return "TracingPolicy"
	case p.ClusterTracingPolicy != nil:
		return "ClusterTracingPolicy"
	}
	return ""
}

// canonical returns the policy as guards see it, the same whether it was
// loaded from CUE or read from the API server: its typed object encoded by
// encoding/json with only apiVersion, kind, metadata.name, namespace
// (defaulted to the PolicySet's for a namespaced policy that sets none, as
// the controller applies it), labels and annotations (without
// SourceAnnotation), and spec. A policy without a typed object is returned
// unchanged.
func canonical(p *validate.Policy, defaultNamespace string) *validate.Policy {
	kind := kindOf(p)
	if kind == "" {
		return p
	}
	ns := p.Namespace
	if ns == "" && (kind == "NetworkPolicy" || kind == "TracingPolicy") {
		ns = defaultNamespace
	}
	var src *metav1.ObjectMeta
	switch {
	case p.NetworkPolicy != nil:
		src = &p.NetworkPolicy.ObjectMeta
	case p.ClusterNetworkPolicy != nil:
		src = &p.ClusterNetworkPolicy.ObjectMeta
	case p.TracingPolicy != nil:
		src = &p.TracingPolicy.ObjectMeta
	default:
		src = &p.ClusterTracingPolicy.ObjectMeta
	}
	om := metav1.ObjectMeta{Name: p.Name, Namespace: ns}
	if len(src.Labels) > 0 {
		om.Labels = src.Labels
	}
	if a := maps.Clone(src.Annotations); len(a) > 0 {
		delete(a, SourceAnnotation)
		if len(a) > 0 {
			om.Annotations = a
		}
	}
	tm := metav1.TypeMeta{APIVersion: v1alpha1.GroupVersion.String(), Kind: kind}
	q := &validate.Policy{}
	var obj any
	switch {
	case p.NetworkPolicy != nil:
		q.NetworkPolicy = &v1alpha1.NetworkPolicy{TypeMeta: tm, ObjectMeta: om, Spec: p.NetworkPolicy.Spec}
		obj = q.NetworkPolicy
	case p.ClusterNetworkPolicy != nil:
		q.ClusterNetworkPolicy = &v1alpha1.ClusterNetworkPolicy{TypeMeta: tm, ObjectMeta: om, Spec: p.ClusterNetworkPolicy.Spec}
		obj = q.ClusterNetworkPolicy
	case p.TracingPolicy != nil:
		q.TracingPolicy = &v1alpha1.TracingPolicy{TypeMeta: tm, ObjectMeta: om, Spec: p.TracingPolicy.Spec}
		obj = q.TracingPolicy
	default:
		q.ClusterTracingPolicy = &v1alpha1.ClusterTracingPolicy{TypeMeta: tm, ObjectMeta: om, Spec: p.ClusterTracingPolicy.Spec}
		obj = q.ClusterTracingPolicy
	}
	js, err := json.Marshal(obj)
	if err != nil {
		panic(fmt.Sprintf("guard: encode %s: %v", p.ID(), err)) // API types always encode
	}
	q.Object = &loader.Object{Kind: kind, Namespace: ns, Name: p.Name, Pos: p.Pos, JSON: js}
	return q
}
