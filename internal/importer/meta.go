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

package importer

import (
	"strings"

	"go.yaml.in/yaml/v3"
)

// meta is translated object metadata.
type meta struct {
	name, namespace string
	labels          *val
	annotations     *val
	// description is metadata.description, which some published Cilium
	// examples use; it becomes spec.description.
	description *val
	pos         *yaml.Node
}

// value returns the metadata for a Palisade object with the given name.
func (m *meta) value(t *tr, name string, namespaced bool) *val {
	v := obj(t.pos(m.pos), "metadata")
	v.set("name", strv(name, t.pos(m.pos), "metadata.name"))
	if namespaced && m.namespace != "" {
		v.set("namespace", strv(m.namespace, t.pos(m.pos), "metadata.namespace"))
	}
	if m.labels != nil && len(m.labels.fields) > 0 {
		v.set("labels", m.labels)
	}
	if m.annotations != nil && len(m.annotations.fields) > 0 {
		v.set("annotations", m.annotations)
	}
	return v
}

// serverManaged are metadata fields the API server writes; they describe
// one stored copy of the object, not the policy.
var serverManaged = []string{"uid", "resourceVersion", "generation", "creationTimestamp",
	"managedFields", "selfLink", "deletionTimestamp", "deletionGracePeriodSeconds"}

// metadata translates object metadata. namespaced says whether the
// Palisade kind is namespaced; a cluster-scoped kind drops the namespace
// as Kubernetes ignores it.
func (t *tr) metadata(e entry, namespaced bool) *meta {
	mark := t.errs()
	m := &meta{pos: e.key}
	table := []field{
		{"name", func(e entry) {
			if s, ok := t.str(e); ok {
				m.name = s
				m.pos = e.val
			}
		}},
		{"namespace", func(e entry) {
			s, ok := t.str(e)
			if !ok {
				return
			}
			if !namespaced {
				t.drop(e, "the object is cluster-scoped, and Kubernetes ignores the namespace of cluster-scoped objects")
				return
			}
			m.namespace = s
		}},
		{"labels", func(e entry) { m.labels, _ = t.stringMap(e) }},
		{"annotations", func(e entry) {
			a, _ := t.stringMap(e)
			if a == nil {
				return
			}
			// kubectl's copy of the whole source object would describe the
			// source, not the Palisade object.
			const lastApplied = "kubectl.kubernetes.io/last-applied-configuration"
			if a.get(lastApplied) != nil {
				a.del(lastApplied)
				t.drop(entry{key: e.key, path: e.path + "." + lastApplied}, "kubectl's record of the source object does not describe the Palisade object")
			}
			m.annotations = a
		}},
		{"description", func(e entry) {
			if s, ok := t.str(e); ok {
				m.description = strv(s, t.pos(e.val), e.path)
				t.note(e.key, e.path, "metadata.description is not a Kubernetes field; it becomes spec.description")
			}
		}},
		{"generateName", func(e entry) {
			t.fail(e.key, e.path, "generateName cannot be imported: a Palisade object needs a fixed name so that Git and the cluster agree on it")
		}},
		{"ownerReferences", func(e entry) {
			t.drop(e, "the PolicySet owns the Palisade objects it applies")
		}},
		{"finalizers", func(e entry) {
			t.drop(e, "the PolicySet manages the lifecycle of the Palisade objects it applies")
		}},
	}
	for _, f := range serverManaged {
		table = append(table, field{f, func(e entry) {
			t.drop(e, "the API server sets it on the stored object; it is not part of the policy")
		}})
	}
	t.walk(e.val, e.path, "metadata", table)
	if m.name == "" && !t.failedSince(mark) {
		t.fail(e.key, e.path, "metadata.name is missing; every object needs a name")
	}
	return m
}

// selCtx says where a label selector is, which decides whether a term the
// importer cannot translate narrows or widens the policy.
type selCtx int

const (
	// selSubject selects what the policy applies to.
	selSubject selCtx = iota
	// selAllow selects the peers of an allow rule.
	selAllow
	// selDeny selects the peers of a deny rule.
	selDeny
)

// clusterLabel is the label Cilium gives every endpoint with the name of
// its cluster in a cluster mesh.
const clusterLabel = "io.cilium.k8s.policy.cluster"

// namespaceLabel is the label every endpoint carries with its namespace.
const namespaceLabel = "k8s:io.kubernetes.pod.namespace"

// rekeyFunc rewrites a selector's label keys instead of the Cilium checks:
// Kubernetes pod selectors keep them, namespace selectors address the
// namespace's labels.
type rekeyFunc func(key string) string

// selector translates a label selector (matchLabels and matchExpressions).
func (t *tr) selector(e entry, where selCtx, rekey rekeyFunc) *val {
	out := obj(t.pos(e.val), e.path)
	labels := obj(t.pos(e.val), e.path+".matchLabels")
	exprs := list(t.pos(e.val), e.path+".matchExpressions")
	key := func(at entry, k string) (string, bool) {
		if rekey != nil {
			return rekey(k), true
		}
		return t.labelKey(at, k, where)
	}
	// A key beside matchLabels is most often a label indented one level
	// too little; Kubernetes prunes it, which leaves the selector wider
	// than written, so it is an error with a pointed message.
	table := []field{}
	if es, ok := t.entries(e.val, e.path, "a label selector"); ok {
		nullLabels := false
		for _, x := range es {
			if x.name == "matchLabels" && isNull(x.val) {
				nullLabels = true
			}
		}
		for _, x := range es {
			if x.name == "matchLabels" || x.name == "matchExpressions" {
				continue
			}
			hint := ""
			if nullLabels {
				hint = "; matchLabels is empty, so it is likely meant to be indented under matchLabels"
			}
			t.fail(x.key, x.path, "%q is not a field of a label selector; Kubernetes drops it, which would leave the selector wider than written%s", x.name, hint)
			table = append(table, field{x.name, noop})
		}
	}
	t.walk(e.val, e.path, "a label selector", append(table, []field{
		{"matchLabels", func(e entry) {
			es, ok := t.entries(e.val, e.path, "matchLabels")
			if !ok {
				return
			}
			for _, x := range es {
				k, ok := key(x, x.name)
				if !ok {
					continue
				}
				v := ""
				if !isNull(x.val) {
					s, ok := t.str(x)
					if !ok {
						continue
					}
					v = s
				}
				labels.set(k, strv(v, t.pos(x.val), x.path))
			}
		}},
		{"matchExpressions", func(e entry) {
			its, ok := t.items(e)
			if !ok {
				return
			}
			for _, it := range its {
				if r := t.requirement(it, key); r != nil {
					exprs.add(r)
				}
			}
		}},
	}...))
	if len(labels.fields) > 0 {
		out.set("matchLabels", labels)
	}
	out.setList("matchExpressions", exprs)
	return out
}

// operators are the label selector operators, by lower-case name: Cilium's
// examples write "in", which Cilium accepts.
var operators = map[string]string{"in": "In", "notin": "NotIn", "exists": "Exists", "doesnotexist": "DoesNotExist"}

// requirement translates one matchExpressions term.
func (t *tr) requirement(e entry, key func(entry, string) (string, bool)) *val {
	mark := t.errs()
	r := obj(t.pos(e.val), e.path)
	t.walk(e.val, e.path, "a selector requirement", []field{
		{"key", func(e entry) {
			s, ok := t.str(e)
			if !ok {
				return
			}
			if k, ok := key(e, s); ok {
				r.set("key", strv(k, t.pos(e.val), e.path))
			}
		}},
		{"operator", func(e entry) {
			s, ok := t.str(e)
			if !ok {
				return
			}
			op, ok := operators[strings.ToLower(s)]
			if !ok {
				t.fail(e.val, e.path, "selector operator %q is not one of In, NotIn, Exists, DoesNotExist", s)
				return
			}
			if op != s {
				t.note(e.val, e.path, "selector operator %q written as %q", s, op)
			}
			r.set("operator", strv(op, t.pos(e.val), e.path))
		}},
		{"values", func(e entry) {
			vs, its, _ := t.strs(e)
			l := list(t.pos(e.val), e.path)
			for i, v := range vs {
				l.add(strv(v, t.pos(its[i].val), its[i].path))
			}
			r.setList("values", l)
		}},
	})
	if r.get("key") == nil || r.get("operator") == nil {
		if !t.failedSince(mark) {
			t.fail(e.val, e.path, "a selector requirement needs key and operator")
		}
		return nil
	}
	return r
}

// labelKey checks and normalizes a Cilium label key.
func (t *tr) labelKey(e entry, k string, where selCtx) (string, bool) {
	bare := k
	if i := strings.Index(k, ":"); i >= 0 {
		bare = k[i+1:]
	}
	switch {
	case bare == clusterLabel:
		t.fail(e.key, e.path, "label %q selects endpoints by cluster-mesh cluster; Palisade has no cluster mesh, and the selector cannot be translated without changing what it selects", k)
		return "", false
	case k == "io.kubernetes.pod.namespace":
		// Without a source prefix Cilium matches any source; the
		// namespace label only ever comes from Kubernetes.
		t.note(e.key, e.path, "label %q written as %q", k, namespaceLabel)
		return namespaceLabel, true
	case strings.HasPrefix(k, "reserved:") && where == selSubject:
		t.report("PAL906", e.key, e.path, "label %q selects Cilium's reserved %s endpoint; Palisade policies select pods by their labels and nodes by node labels, so this selector matches nothing", k, strings.TrimPrefix(k, "reserved:"))
	}
	return k, true
}
