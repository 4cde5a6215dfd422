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

package ui

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "github.com/palisade-dev/palisade/api/v1alpha1"
	"github.com/palisade-dev/palisade/internal/relay"
	"github.com/palisade-dev/palisade/internal/render"
)

// PolicySetSummary is a PolicySet as the page lists it.
type PolicySetSummary struct {
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	// Revision is the last applied revision, e.g. "main@sha1:…".
	Revision string `json:"revision,omitempty"`
	// Source is the Git URL of its PolicyRepository.
	Source string `json:"source,omitempty"`
	// Browse is BrowseTemplate's web address of a file, "" when the
	// source is not on a known forge.
	Browse      string                 `json:"browse,omitempty"`
	Conditions  []metav1.Condition     `json:"conditions,omitempty"`
	Enforcement *v1.EnforcementSummary `json:"enforcement,omitempty"`
}

// PolicySetView is the policy view of one PolicySet.
type PolicySetView struct {
	PolicySetSummary
	AttemptedRevision string `json:"attemptedRevision,omitempty"`
	Path              string `json:"path,omitempty"`
	Mode              string `json:"mode,omitempty"`
	// Nodes is each node's enforcement of the set, by name.
	Nodes []NodeView `json:"nodes"`
	// Policies are the set's applied objects the viewer may see.
	Policies []PolicyView `json:"policies"`
	// HiddenPolicies counts those in namespaces the viewer may not see.
	HiddenPolicies int `json:"hiddenPolicies,omitempty"`
}

// NodeView is one node's NodeEnforcement, as far as it concerns the set.
type NodeView struct {
	Name string `json:"name"`
	// Enforces is false when the node reports nothing of the set.
	Enforces bool `json:"enforces"`
	v1.PolicySetEnforcement
	Conditions   []metav1.Condition `json:"conditions,omitempty"`
	LastVerified *metav1.Time       `json:"lastVerified,omitempty"`
	DriftRepairs int64              `json:"driftRepairs,omitempty"`
	// Drifts are the node's recent kernel drifts, newest first.
	Drifts []v1.KernelDrift `json:"drifts,omitempty"`
}

// PolicyView is one applied policy object and the workloads it selects.
type PolicyView struct {
	Kind      string `json:"kind"`
	Namespace string `json:"namespace,omitempty"`
	Name      string `json:"name"`
	File      string `json:"file,omitempty"`
	Line      int    `json:"line,omitempty"`
	// Selects are the workloads (namespace/name, as the map names them)
	// of the running pods it selects, in namespaces the viewer may see.
	Selects []string `json:"selects"`
	// HiddenSelects counts selected pods in namespaces the viewer may
	// not see.
	HiddenSelects int `json:"hiddenSelects,omitempty"`
	// Host is true for a host firewall policy (a nodeSelector).
	Host bool `json:"host,omitempty"`
	// Error says why the selection could not be computed.
	Error string `json:"error,omitempty"`
}

// visibility answers CanSee for a request; a nil viewer sees all.
type visibility struct {
	ctx context.Context
	v   relay.Viewer
}

func (vis visibility) see(ns string) bool {
	if vis.v == nil || ns == "" {
		return true
	}
	ok, err := vis.v.CanSee(vis.ctx, ns)
	return ok && err == nil
}

func summary(ctx context.Context, r client.Reader, ps *v1.PolicySet) PolicySetSummary {
	s := PolicySetSummary{Namespace: ps.Namespace, Name: ps.Name, Revision: ps.Status.LastAppliedRevision,
		Conditions: ps.Status.Conditions, Enforcement: ps.Status.Enforcement}
	if ps.Spec.SourceRef.Kind == "" || ps.Spec.SourceRef.Kind == v1.SourceKindPolicyRepository {
		repo := &v1.PolicyRepository{}
		if err := r.Get(ctx, client.ObjectKey{Namespace: ps.Namespace, Name: ps.Spec.SourceRef.Name}, repo); err == nil {
			s.Source = repo.Spec.URL
			s.Browse = BrowseTemplate(repo.Spec.URL, ps.Spec.Path)
		}
	}
	return s
}

// listPolicySets lists the PolicySets of the namespaces the viewer sees.
func listPolicySets(ctx context.Context, r client.Reader, vis visibility) ([]PolicySetSummary, error) {
	list := &v1.PolicySetList{}
	if err := r.List(ctx, list); err != nil {
		return nil, fmt.Errorf("list policysets: %w", err)
	}
	out := []PolicySetSummary{}
	for i := range list.Items {
		ps := &list.Items[i]
		if vis.see(ps.Namespace) {
			out = append(out, summary(ctx, r, ps))
		}
	}
	slices.SortFunc(out, func(a, b PolicySetSummary) int {
		return strings.Compare(a.Namespace+"/"+a.Name, b.Namespace+"/"+b.Name)
	})
	return out, nil
}

// errNotFound is a PolicySet that does not exist or that the viewer may
// not see: the two are not told apart.
type errNotFound struct{ ns, name string }

func (e errNotFound) Error() string {
	return fmt.Sprintf("no PolicySet %s/%s that you may see (seeing a namespace's needs list on its pods)", e.ns, e.name)
}

// policySetView assembles the policy view of ns/name.
func policySetView(ctx context.Context, r client.Reader, vis visibility, ns, name string) (*PolicySetView, error) {
	if !vis.see(ns) {
		return nil, errNotFound{ns, name}
	}
	ps := &v1.PolicySet{}
	if err := r.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, ps); apierrors.IsNotFound(err) {
		return nil, errNotFound{ns, name}
	} else if err != nil {
		return nil, fmt.Errorf("get policyset %s/%s: %w", ns, name, err)
	}
	view := &PolicySetView{PolicySetSummary: summary(ctx, r, ps), AttemptedRevision: ps.Status.LastAttemptedRevision,
		Path: ps.Spec.Path, Mode: string(ps.Spec.Mode), Nodes: []NodeView{}, Policies: []PolicyView{}}

	nes := &v1.NodeEnforcementList{}
	if err := r.List(ctx, nes); err != nil {
		return nil, fmt.Errorf("list nodeenforcements: %w", err)
	}
	redact, err := redactor(ctx, r, vis)
	if err != nil {
		return nil, err
	}
	for i := range nes.Items {
		ne := &nes.Items[i]
		nv := NodeView{Name: ne.Name, Conditions: slices.Clone(ne.Status.Conditions), LastVerified: ne.Status.LastVerifiedTime,
			DriftRepairs: ne.Status.DriftRepairs, Drifts: slices.Clone(ne.Status.Drifts)}
		// A node's drift and conditions are the node's, not a
		// namespace's, but their text may name a workload.
		for j := range nv.Conditions {
			nv.Conditions[j].Message = redact(nv.Conditions[j].Message)
		}
		for j := range nv.Drifts {
			nv.Drifts[j].What, nv.Drifts[j].Message = redact(nv.Drifts[j].What), redact(nv.Drifts[j].Message)
		}
		for _, pe := range ne.Status.PolicySets {
			if pe.Namespace == ns && pe.Name == name {
				nv.Enforces, nv.PolicySetEnforcement = true, pe
				// Objects of namespaces the viewer may not see are left out.
				nv.Objects = slices.DeleteFunc(slices.Clone(pe.Objects), func(o v1.ObjectEnforcement) bool { return !vis.see(o.Namespace) })
			}
		}
		view.Nodes = append(view.Nodes, nv)
	}
	slices.SortFunc(view.Nodes, func(a, b NodeView) int { return strings.Compare(a.Name, b.Name) })

	pods := &corev1.PodList{}
	if err := r.List(ctx, pods); err != nil {
		return nil, fmt.Errorf("list pods: %w", err)
	}
	if ps.Status.Inventory != nil {
		for _, e := range ps.Status.Inventory.Entries {
			pns, pname, kind, ok := parseID(e.ID)
			if !ok || !vis.see(pns) {
				view.HiddenPolicies++
				continue
			}
			pv, ok := policyView(ctx, r, vis, pods.Items, pns, pname, kind)
			if ok {
				view.Policies = append(view.Policies, pv)
			}
		}
	}
	return view, nil
}

// hiddenText replaces a text that names a namespace the viewer may not see.
const hiddenText = "(hidden: it names a namespace you may not see)"

// redactor returns a function that hides a text naming "NS/" for a
// namespace NS the viewer may not see (a workload, as the agent names
// them). It errs on the side of hiding: any such substring counts.
func redactor(ctx context.Context, r client.Reader, vis visibility) (func(string) string, error) {
	if vis.v == nil {
		return func(s string) string { return s }, nil
	}
	nss := &corev1.NamespaceList{}
	if err := r.List(ctx, nss); err != nil {
		return nil, fmt.Errorf("list namespaces: %w", err)
	}
	var hidden []string
	for _, ns := range nss.Items {
		if !vis.see(ns.Name) {
			hidden = append(hidden, ns.Name+"/")
		}
	}
	return func(s string) string {
		for _, h := range hidden {
			if strings.Contains(s, h) {
				return hiddenText
			}
		}
		return s
	}, nil
}

// parseID splits an inventory id, "<namespace>_<name>_<group>_<kind>";
// only Palisade's policy kinds are wanted.
func parseID(id string) (ns, name, kind string, ok bool) {
	parts := strings.Split(id, "_")
	if len(parts) != 4 || parts[2] != v1.GroupVersion.Group {
		return "", "", "", false
	}
	return parts[0], parts[1], parts[3], true
}

// policyView reads one policy object and selects its workloads.
func policyView(ctx context.Context, r client.Reader, vis visibility, pods []corev1.Pod, ns, name, kind string) (PolicyView, bool) {
	pv := PolicyView{Kind: kind, Namespace: ns, Name: name, Selects: []string{}}
	var obj client.Object
	allNS := false
	switch kind {
	case "NetworkPolicy":
		obj = &v1.NetworkPolicy{}
	case "ClusterNetworkPolicy":
		obj, allNS = &v1.ClusterNetworkPolicy{}, true
	case "TracingPolicy":
		obj = &v1.TracingPolicy{}
	case "ClusterTracingPolicy":
		obj, allNS = &v1.ClusterTracingPolicy{}, true
	default:
		return pv, false
	}
	if err := r.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, obj); err != nil {
		pv.Error = err.Error()
		return pv, true
	}
	pv.File, pv.Line = sourcePos(obj.GetAnnotations()[render.AnnotationSource])
	// A tracing policy without a podSelector selects every pod; a cluster
	// network policy without an endpointSelector none (a host firewall).
	var sel *metav1.LabelSelector
	all := false
	switch o := obj.(type) {
	case *v1.NetworkPolicy:
		sel = &o.Spec.EndpointSelector
	case *v1.ClusterNetworkPolicy:
		sel, pv.Host = o.Spec.EndpointSelector, o.Spec.NodeSelector != nil
	case *v1.TracingPolicy:
		sel, all = o.Spec.PodSelector, o.Spec.PodSelector == nil
	case *v1.ClusterTracingPolicy:
		sel, all = o.Spec.PodSelector, o.Spec.PodSelector == nil
	}
	if sel == nil && !all {
		return pv, true
	}
	var s labels.Selector = labels.Everything()
	if sel != nil {
		var err error
		if s, err = selector(sel); err != nil {
			pv.Error = "endpoint selector: " + err.Error()
			return pv, true
		}
	}
	seen := map[string]bool{}
	for i := range pods {
		p := &pods[i]
		if p.Spec.HostNetwork || p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed {
			continue
		}
		if !allNS && p.Namespace != ns {
			continue
		}
		if !s.Matches(podLabels(p)) {
			continue
		}
		if !vis.see(p.Namespace) {
			pv.HiddenSelects++
			continue
		}
		if w := Workload(p.Namespace, p.Name, p.Labels); !seen[w] {
			seen[w] = true
			pv.Selects = append(pv.Selects, w)
		}
	}
	slices.Sort(pv.Selects)
	return pv, true
}

// nsLabel is the label Cilium-compatible selectors use for a pod's
// namespace.
const nsLabel = "io.kubernetes.pod.namespace"

// podLabels are a pod's labels as selectors see them: its own and its
// namespace's name.
func podLabels(p *corev1.Pod) labels.Set {
	ls := labels.Set{nsLabel: p.Namespace}
	for k, v := range p.Labels {
		ls[k] = v
	}
	return ls
}

// selector converts a policy's selector, dropping the "k8s:" source
// prefix Cilium's selectors may carry on keys.
func selector(sel *metav1.LabelSelector) (labels.Selector, error) {
	s := sel.DeepCopy()
	strip := func(k string) string { return strings.TrimPrefix(strings.TrimPrefix(k, "any:"), "k8s:") }
	ml := map[string]string{}
	for k, v := range s.MatchLabels {
		ml[strip(k)] = v
	}
	s.MatchLabels = ml
	for i := range s.MatchExpressions {
		s.MatchExpressions[i].Key = strip(s.MatchExpressions[i].Key)
	}
	return metav1.LabelSelectorAsSelector(s)
}

// sourcePos reads render.AnnotationSource, "file:line:col".
func sourcePos(s string) (string, int) {
	parts := strings.Split(s, ":")
	if len(parts) < 3 {
		return "", 0
	}
	line, err := strconv.Atoi(parts[len(parts)-2])
	if err != nil {
		return "", 0
	}
	return strings.Join(parts[:len(parts)-2], ":"), line
}
