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

	"github.com/palisade-dev/palisade/api/v1alpha1"
	"github.com/palisade-dev/palisade/internal/diag"
	"github.com/palisade-dev/palisade/internal/loader"
	"github.com/palisade-dev/palisade/internal/policy"
)

// Policy is a loaded policy decoded into its API type: the model every
// later stage takes. Decode sets its Source to the loader's object, so that
// findings point at the field the user wrote; nothing else of CUE reaches
// it.
type Policy = policy.Policy

// Decode turns loaded objects into typed policies. The loader has unified
// each with the schema, so a decoding failure means the schema and the Go
// types disagree: it is reported, never ignored.
func Decode(objs []*loader.Object) ([]*Policy, diag.List) {
	var (
		out   []*Policy
		diags diag.List
	)
	for _, o := range objs {
		p := &Policy{Kind: o.Kind, Namespace: o.Namespace, Name: o.Name, Pos: o.Pos, Path: o.Path, JSON: o.JSON, Source: o}
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
