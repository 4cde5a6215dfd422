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
	"slices"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/palisade-dev/palisade/api/v1alpha1"
	"github.com/palisade-dev/palisade/internal/policy"
)

// namespaceLabels are the labels Cilium gives every endpoint with its
// namespace; a cluster policy's selector that requires them is scoped to
// those namespaces.
var namespaceLabels = []string{"k8s:io.kubernetes.pod.namespace", "io.kubernetes.pod.namespace"}

// shape is what a policy is, independent of any change: whom it applies
// to, in which mode, and whether it isolates its scope.
type shape struct {
	subject     Subject
	selectsAll  bool
	scope       []string
	mode        string
	defaultDeny Directions
	// isDefaultDeny: an enforced default deny of every pod of its scope.
	isDefaultDeny bool
}

func shapeOf(p *policy.Policy) shape {
	s := shape{mode: "enforce"}
	clusterWide := p.ClusterNetworkPolicy != nil || p.ClusterTracingPolicy != nil
	var endpoints, nodeSel *metav1.LabelSelector
	if rs, eps, nodes, ok := p.Network(); ok {
		endpoints, nodeSel = eps, nodes
		s.subject = Subject{Endpoints: requirements(eps), Nodes: requirements(nodes)}
		if rs.Mode == v1alpha1.EnforcementModeAudit {
			s.mode = "audit"
		}
		s.defaultDeny = defaultDeny(rs)
		s.selectsAll = eps != nil && onlyNamespaces(s.subject.Endpoints, clusterWide) ||
			eps == nil && nodes != nil && len(s.subject.Nodes) == 0
	} else if spec, ok := p.Tracing(); ok {
		endpoints = spec.PodSelector
		s.subject = Subject{Endpoints: requirements(spec.PodSelector)}
		if s.subject.Endpoints == nil {
			s.subject.Endpoints = []Requirement{} // no podSelector: every pod (and the host, for a cluster policy)
		}
		if spec.Mode == v1alpha1.EnforcementModeAudit {
			s.mode = "audit"
		}
		s.selectsAll = onlyNamespaces(s.subject.Endpoints, clusterWide)
	}
	switch {
	case !clusterWide:
		s.scope = []string{p.Namespace}
	case endpoints != nil:
		s.scope = namespacesOf(s.subject.Endpoints)
	case nodeSel != nil:
		// A host policy selects nodes, not pods: it reaches no namespace.
		s.scope = []string{}
	default:
		s.scope = []string{"*"}
	}
	s.isDefaultDeny = s.mode == "enforce" && s.selectsAll && s.subject.Endpoints != nil &&
		(p.NetworkPolicy != nil || p.ClusterNetworkPolicy != nil) && (s.defaultDeny.Ingress || s.defaultDeny.Egress)
	return s
}

// defaultDeny says in which directions a policy isolates what it selects:
// as enableDefaultDeny says, and where it says nothing, in each direction
// that has rules (Cilium's semantics).
func defaultDeny(rs *v1alpha1.RuleSet) Directions {
	d := Directions{
		Ingress: len(rs.Ingress)+len(rs.IngressDeny) > 0,
		Egress:  len(rs.Egress)+len(rs.EgressDeny) > 0,
	}
	if e := rs.EnableDefaultDeny; e != nil {
		if e.Ingress != nil {
			d.Ingress = *e.Ingress
		}
		if e.Egress != nil {
			d.Egress = *e.Egress
		}
	}
	return d
}

// onlyNamespaces reports whether a selector selects every pod of its
// scope: it is empty, or (for a cluster policy) only names namespaces.
func onlyNamespaces(rs []Requirement, clusterWide bool) bool {
	for _, r := range rs {
		if !clusterWide || !slices.Contains(namespaceLabels, r.Key) || r.Operator != "In" {
			return false
		}
	}
	return true
}

// namespacesOf returns the namespaces a cluster policy's selector is
// limited to, or ["*"].
func namespacesOf(rs []Requirement) []string {
	var out []string
	for _, r := range rs {
		if slices.Contains(namespaceLabels, r.Key) && r.Operator == "In" {
			if out != nil { // two namespace requirements: their intersection
				out = slices.DeleteFunc(out, func(ns string) bool { return !slices.Contains(r.Values, ns) })
				continue
			}
			out = slices.Clone(r.Values)
		}
	}
	if out == nil {
		return []string{"*"}
	}
	return out
}
