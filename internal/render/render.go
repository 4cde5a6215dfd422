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

// Package render turns validated policies into the Kubernetes objects a
// PolicySet applies, and objects read back from the API server into
// policies again (for the guards' in-cluster path and the node agent).
// What an object carries besides its spec — which PolicySet owns it, the
// file and line it came from, the revision — lives in labels and
// annotations named here.
package render

import (
	"cmp"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/palisade-dev/palisade/api/v1alpha1"
	"github.com/palisade-dev/palisade/internal/diag"
	"github.com/palisade-dev/palisade/internal/policy"
)

// Labels and annotations on applied objects.
const (
	// LabelPolicySetName and LabelPolicySetNamespace name the PolicySet
	// that owns the object; prune and drift detection select by them.
	LabelPolicySetName      = "palisade.dev/policyset"
	LabelPolicySetNamespace = "palisade.dev/policyset-namespace"
	// AnnotationSource is where the policy is declared: file:line:col,
	// relative to the PolicySet's path in the repository.
	AnnotationSource = "palisade.dev/source"
	// AnnotationCUEPath is the policy's CUE path inside its package.
	AnnotationCUEPath = "palisade.dev/cue-path"
	// AnnotationRevision is the Git revision the object was applied from.
	AnnotationRevision = "palisade.dev/revision"
	// AnnotationRevisionObjects is how many objects the revision renders
	// for the PolicySet. An agent that sees fewer objects carrying the
	// revision knows the revision is not completely applied yet (a
	// manager that died mid-apply) and keeps enforcing the previous one.
	AnnotationRevisionObjects = "palisade.dev/revision-objects"
	// AnnotationRuleSources maps each rule of a network policy (its field
	// path, e.g. "spec.ingress[1]") to where it is written, file:line:col,
	// as JSON: so the agent's flows name the line of the rule that decided,
	// not only the policy's. For a tracing policy, the rules are its hooks
	// ("spec.kprobes[0]", and "spec.uprobes[0].symbols[1]" for each symbol
	// of a uprobe) and their selectors ("spec.kprobes[0].selectors[1]"), so
	// that tracing events name the line of the selector that matched.
	AnnotationRuleSources = "palisade.dev/rule-sources"
)

// Keys render sets on every object (and guards leave out of what they
// judge, since they differ between the CLI and the cluster).
var (
	OwnLabels      = []string{LabelPolicySetName, LabelPolicySetNamespace}
	OwnAnnotations = []string{AnnotationSource, AnnotationCUEPath, AnnotationRevision, AnnotationRevisionObjects, AnnotationRuleSources}
)

// Owner is the PolicySet that applies the objects, and the revision.
type Owner struct {
	Namespace, Name string
	Revision        string
}

// Objects renders policies as objects for owner. A namespaced policy that
// names no namespace goes to the PolicySet's namespace. The objects are
// sorted by kind, namespace and name; two policies that render to the same
// object are an error naming both positions.
func Objects(policies []*policy.Policy, owner Owner) ([]policy.Object, error) {
	seen := map[string]diag.Pos{}
	out := make([]policy.Object, 0, len(policies))
	for _, p := range policies {
		obj, err := object(p)
		if err != nil {
			return nil, fmt.Errorf("%s: %s: %w", p.Pos, p.ID(), err)
		}
		if policy.Namespaced(p.Kind) && obj.GetNamespace() == "" {
			obj.SetNamespace(owner.Namespace)
		}
		id := p.Kind + "/" + obj.GetNamespace() + "/" + obj.GetName()
		if prev, dup := seen[id]; dup {
			return nil, fmt.Errorf("%s: %s is also declared at %s", p.Pos, id, prev)
		}
		seen[id] = p.Pos
		obj.SetLabels(merge(obj.GetLabels(), map[string]string{
			LabelPolicySetName:      owner.Name,
			LabelPolicySetNamespace: owner.Namespace,
		}))
		own := map[string]string{
			AnnotationSource:          posString(p.Pos),
			AnnotationCUEPath:         p.Path,
			AnnotationRevision:        owner.Revision,
			AnnotationRevisionObjects: strconv.Itoa(len(policies)),
		}
		if rules, err := ruleSources(p); err != nil {
			return nil, fmt.Errorf("%s: %s: %w", p.Pos, p.ID(), err)
		} else if rules != "" {
			own[AnnotationRuleSources] = rules
		}
		obj.SetAnnotations(merge(obj.GetAnnotations(), own))
		out = append(out, obj)
	}
	slices.SortFunc(out, func(a, b policy.Object) int {
		return cmp.Or(cmp.Compare(kindOf(a), kindOf(b)), cmp.Compare(a.GetNamespace(), b.GetNamespace()), cmp.Compare(a.GetName(), b.GetName()))
	})
	return out, nil
}

func posString(p diag.Pos) string { return fmt.Sprintf("%s:%d:%d", p.File, p.Line, p.Column) }

// ruleSources is the AnnotationRuleSources value of a policy: the
// position of each rule of a network policy, or of each hook and selector
// of a tracing policy; "" for a policy without any.
func ruleSources(p *policy.Policy) (string, error) {
	var paths []string
	if rs, _, _, ok := p.Network(); ok {
		for _, r := range policy.Rules(rs) {
			paths = append(paths, r.Path)
		}
	}
	if spec, ok := p.Tracing(); ok {
		paths = tracingRulePaths(spec)
	}
	m := map[string]string{}
	for _, path := range paths {
		m[path] = posString(p.PosOf(path))
	}
	if len(m) == 0 {
		return "", nil
	}
	b, err := json.Marshal(m) // sorted keys: the same policy, the same bytes
	return string(b), err
}

// tracingRulePaths lists the field paths of a tracing policy's hooks (each
// uprobe symbol too, as the datapath reports uprobe hooks per symbol) and
// of their selectors.
func tracingRulePaths(spec *v1alpha1.TracingPolicySpec) []string {
	var out []string
	add := func(hook string, h *v1alpha1.HookCommon) {
		out = append(out, hook)
		for i := range h.Selectors {
			out = append(out, fmt.Sprintf("%s.selectors[%d]", hook, i))
		}
	}
	for i := range spec.KProbes {
		add(fmt.Sprintf("spec.kprobes[%d]", i), &spec.KProbes[i].HookCommon)
	}
	for i := range spec.Tracepoints {
		add(fmt.Sprintf("spec.tracepoints[%d]", i), &spec.Tracepoints[i].HookCommon)
	}
	for i := range spec.LSMHooks {
		add(fmt.Sprintf("spec.lsmhooks[%d]", i), &spec.LSMHooks[i].HookCommon)
	}
	for i := range spec.UProbes {
		hook := fmt.Sprintf("spec.uprobes[%d]", i)
		add(hook, &spec.UProbes[i].HookCommon)
		for j := range spec.UProbes[i].Symbols {
			out = append(out, fmt.Sprintf("%s.symbols[%d]", hook, j))
		}
	}
	return out
}

// rulePositions locates a policy's rules from AnnotationRuleSources; other
// paths are at the policy's own position.
type rulePositions struct {
	rules  map[string]diag.Pos
	policy diag.Pos
}

func (r rulePositions) PosOf(path string) diag.Pos {
	if p, ok := r.rules[path]; ok {
		return p
	}
	return r.policy
}

// object copies the typed policy and keeps only what the user may set:
// apiVersion, kind, name, namespace, labels, annotations and spec.
func object(p *policy.Policy) (policy.Object, error) {
	var obj policy.Object
	switch {
	case p.NetworkPolicy != nil:
		obj = &v1alpha1.NetworkPolicy{Spec: *p.NetworkPolicy.Spec.DeepCopy()}
	case p.ClusterNetworkPolicy != nil:
		obj = &v1alpha1.ClusterNetworkPolicy{Spec: *p.ClusterNetworkPolicy.Spec.DeepCopy()}
	case p.TracingPolicy != nil:
		obj = &v1alpha1.TracingPolicy{Spec: *p.TracingPolicy.Spec.DeepCopy()}
	case p.ClusterTracingPolicy != nil:
		obj = &v1alpha1.ClusterTracingPolicy{Spec: *p.ClusterTracingPolicy.Spec.DeepCopy()}
	default:
		return nil, fmt.Errorf("kind %q has no API type", p.Kind)
	}
	src := p.Typed()
	obj.GetObjectKind().SetGroupVersionKind(v1alpha1.GroupVersion.WithKind(p.Kind))
	obj.SetName(src.GetName())
	if policy.Namespaced(p.Kind) {
		obj.SetNamespace(src.GetNamespace())
	} else if src.GetNamespace() != "" {
		return nil, fmt.Errorf("%s is cluster-scoped but sets namespace %q", p.Kind, src.GetNamespace())
	}
	obj.SetLabels(copyMap(src.GetLabels()))
	obj.SetAnnotations(copyMap(src.GetAnnotations()))
	return obj, nil
}

func kindOf(o policy.Object) string { return o.GetObjectKind().GroupVersionKind().Kind }

func merge(user, ours map[string]string) map[string]string {
	out := copyMap(user)
	if out == nil {
		out = map[string]string{}
	}
	for k, v := range ours {
		out[k] = v
	}
	return out
}

func copyMap(m map[string]string) map[string]string {
	if m == nil {
		return nil
	}
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// Policy turns an object read from the API server back into a policy: its
// position and CUE path from the annotations (rule positions inside it are
// not known in the cluster and resolve to the policy's own), its JSON from
// the typed object. Objects without the source annotation (not applied by
// a PolicySet) get an empty position.
func Policy(obj policy.Object) (*policy.Policy, error) {
	p := &policy.Policy{Namespace: obj.GetNamespace(), Name: obj.GetName(), Path: obj.GetAnnotations()[AnnotationCUEPath]}
	switch t := obj.(type) {
	case *v1alpha1.NetworkPolicy:
		p.NetworkPolicy = t.DeepCopy()
	case *v1alpha1.ClusterNetworkPolicy:
		p.ClusterNetworkPolicy = t.DeepCopy()
	case *v1alpha1.TracingPolicy:
		p.TracingPolicy = t.DeepCopy()
	case *v1alpha1.ClusterTracingPolicy:
		p.ClusterTracingPolicy = t.DeepCopy()
	default:
		return nil, fmt.Errorf("%T is not a Palisade policy", obj)
	}
	// Typed clients often leave apiVersion and kind empty: the Go type
	// says the kind.
	p.Kind = p.TypedKind()
	if src := obj.GetAnnotations()[AnnotationSource]; src != "" {
		pos, err := parsePos(src)
		if err != nil {
			return nil, fmt.Errorf("%s: annotation %s: %w", p.ID(), AnnotationSource, err)
		}
		p.Pos = pos
	}
	if src := obj.GetAnnotations()[AnnotationRuleSources]; src != "" {
		var m map[string]string
		if err := json.Unmarshal([]byte(src), &m); err != nil {
			return nil, fmt.Errorf("%s: annotation %s: %w", p.ID(), AnnotationRuleSources, err)
		}
		loc := rulePositions{rules: make(map[string]diag.Pos, len(m)), policy: p.Pos}
		for path, s := range m {
			pos, err := parsePos(s)
			if err != nil {
				return nil, fmt.Errorf("%s: annotation %s: %s: %w", p.ID(), AnnotationRuleSources, path, err)
			}
			loc.rules[path] = pos
		}
		p.Source = loc
	}
	// The JSON a policy carries is what the user wrote: spec and identity,
	// not server-set metadata or status.
	clean, err := object(p)
	if err != nil {
		return nil, err
	}
	clean.SetNamespace(obj.GetNamespace())
	if p.JSON, err = json.Marshal(clean); err != nil {
		return nil, err
	}
	return p, nil
}

// parsePos reads file:line:col (file may itself contain colons).
func parsePos(s string) (diag.Pos, error) {
	parts := strings.Split(s, ":")
	if len(parts) < 3 {
		return diag.Pos{}, fmt.Errorf("%q is not file:line:col", s)
	}
	line, err1 := strconv.Atoi(parts[len(parts)-2])
	col, err2 := strconv.Atoi(parts[len(parts)-1])
	if err1 != nil || err2 != nil || line < 1 || col < 0 {
		return diag.Pos{}, fmt.Errorf("%q is not file:line:col", s)
	}
	return diag.Pos{File: strings.Join(parts[:len(parts)-2], ":"), Line: line, Column: col}, nil
}
