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

// Package policy is the typed policy model that every stage after the
// loader shares: validate produces it from CUE, render turns it into API
// objects and back, guard derives facts from it and engine compiles it.
// It carries no CUE values and links no Kubernetes client, so the node
// agent (which compiles policies read from the API server) links neither
// cuelang.org nor more of Kubernetes than the API types, and palisadectl
// does not link controller-runtime. See DESIGN.md, "Dependency direction".
package policy

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/palisade-dev/palisade/api/v1alpha1"
	"github.com/palisade-dev/palisade/internal/diag"
)

// Object is an API object of a policy kind as a client reads or writes it:
// what controller-runtime calls client.Object (the same method set, so a
// client.Object is an Object and the other way round), named here so that
// the pure packages need not link controller-runtime for one interface.
type Object interface {
	metav1.Object
	runtime.Object
}

// Locator resolves a field path of a policy (CUE path syntax, e.g.
// "spec.ingress[0].toPorts[0]") to where the user wrote it.
type Locator interface {
	PosOf(path string) diag.Pos
}

// Policy is a policy decoded into its API type. Exactly one of the typed
// fields is set, according to Kind.
type Policy struct {
	// Kind, Namespace and Name identify the policy; Namespace is empty when
	// the policy does not set it.
	Kind, Namespace, Name string
	// Pos is where the policy is declared.
	Pos diag.Pos
	// Path is the policy's CUE path inside its package.
	Path string
	// JSON is the policy as the user wrote it (defaults applied): what
	// guards see.
	JSON []byte
	// Source locates fields inside the policy; nil when only the policy's
	// own position is known, as for an object read from the API server.
	Source Locator

	NetworkPolicy        *v1alpha1.NetworkPolicy
	ClusterNetworkPolicy *v1alpha1.ClusterNetworkPolicy
	TracingPolicy        *v1alpha1.TracingPolicy
	ClusterTracingPolicy *v1alpha1.ClusterTracingPolicy
}

// The policy kinds.
const (
	KindNetworkPolicy        = "NetworkPolicy"
	KindClusterNetworkPolicy = "ClusterNetworkPolicy"
	KindTracingPolicy        = "TracingPolicy"
	KindClusterTracingPolicy = "ClusterTracingPolicy"
)

// ID names the policy as kind/namespace/name (namespace left empty for
// cluster-scoped or unset).
func (p *Policy) ID() string { return p.Kind + "/" + p.Namespace + "/" + p.Name }

// PosOf returns the position of the field at path, or of the closest
// enclosing field that has one, ending at the policy itself.
func (p *Policy) PosOf(path string) diag.Pos {
	if p.Source == nil {
		return p.Pos
	}
	return p.Source.PosOf(path)
}

// Network returns the rules of a network policy and its subject selectors
// (endpoint, node); ok is false for other kinds.
func (p *Policy) Network() (rules *v1alpha1.RuleSet, endpoints, nodes *metav1.LabelSelector, ok bool) {
	switch {
	case p.NetworkPolicy != nil:
		s := &p.NetworkPolicy.Spec
		return &s.RuleSet, &s.EndpointSelector, nil, true
	case p.ClusterNetworkPolicy != nil:
		s := &p.ClusterNetworkPolicy.Spec
		return &s.RuleSet, s.EndpointSelector, s.NodeSelector, true
	}
	return nil, nil, nil, false
}

// Tracing returns the spec of a tracing policy; ok is false for other kinds.
func (p *Policy) Tracing() (*v1alpha1.TracingPolicySpec, bool) {
	switch {
	case p.TracingPolicy != nil:
		return &p.TracingPolicy.Spec, true
	case p.ClusterTracingPolicy != nil:
		return &p.ClusterTracingPolicy.Spec, true
	}
	return nil, false
}

// Typed returns the policy's typed API object, nil when none is set.
func (p *Policy) Typed() Object {
	switch {
	case p.NetworkPolicy != nil:
		return p.NetworkPolicy
	case p.ClusterNetworkPolicy != nil:
		return p.ClusterNetworkPolicy
	case p.TracingPolicy != nil:
		return p.TracingPolicy
	case p.ClusterTracingPolicy != nil:
		return p.ClusterTracingPolicy
	}
	return nil
}

// TypedKind is the kind the typed object's Go type says, "" when none is
// set.
func (p *Policy) TypedKind() string {
	switch {
	case p.NetworkPolicy != nil:
		return KindNetworkPolicy
	case p.ClusterNetworkPolicy != nil:
		return KindClusterNetworkPolicy
	case p.TracingPolicy != nil:
		return KindTracingPolicy
	case p.ClusterTracingPolicy != nil:
		return KindClusterTracingPolicy
	}
	return ""
}

// Namespaced reports whether objects of kind live in a namespace.
func Namespaced(kind string) bool {
	return kind == KindNetworkPolicy || kind == KindTracingPolicy
}
