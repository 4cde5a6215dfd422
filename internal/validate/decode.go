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

package validate

import (
	"bytes"
	"encoding/json"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/palisade-dev/palisade/api/v1alpha1"
	"github.com/palisade-dev/palisade/internal/diag"
	"github.com/palisade-dev/palisade/internal/loader"
)

// Policy is a loaded policy decoded into its API type. Exactly one of the
// typed fields is set, according to Kind.
type Policy struct {
	*loader.Object

	NetworkPolicy        *v1alpha1.NetworkPolicy
	ClusterNetworkPolicy *v1alpha1.ClusterNetworkPolicy
	TracingPolicy        *v1alpha1.TracingPolicy
	ClusterTracingPolicy *v1alpha1.ClusterTracingPolicy
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

// Decode turns loaded objects into typed policies. The loader has unified
// each with the schema, so a decoding failure means the schema and the Go
// types disagree: it is reported, never ignored.
func Decode(objs []*loader.Object) ([]*Policy, diag.List) {
	var (
		out   []*Policy
		diags diag.List
	)
	for _, o := range objs {
		p := &Policy{Object: o}
		var target any
		switch o.Kind {
		case "NetworkPolicy":
			p.NetworkPolicy = &v1alpha1.NetworkPolicy{}
			target = p.NetworkPolicy
		case "ClusterNetworkPolicy":
			p.ClusterNetworkPolicy = &v1alpha1.ClusterNetworkPolicy{}
			target = p.ClusterNetworkPolicy
		case "TracingPolicy":
			p.TracingPolicy = &v1alpha1.TracingPolicy{}
			target = p.TracingPolicy
		case "ClusterTracingPolicy":
			p.ClusterTracingPolicy = &v1alpha1.ClusterTracingPolicy{}
			target = p.ClusterTracingPolicy
		default:
			diags = append(diags, diag.New("PAL053", o.Pos, "unknown kind %q", o.Kind))
			continue
		}
		dec := json.NewDecoder(bytes.NewReader(o.JSON))
		dec.DisallowUnknownFields()
		if err := dec.Decode(target); err != nil {
			diags = append(diags, diag.New("PAL050", o.Pos, "%s does not decode into the %s API type: %v", o.ID(), o.Kind, err))
			continue
		}
		out = append(out, p)
	}
	return out, diags
}
