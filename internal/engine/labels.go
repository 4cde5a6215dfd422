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

package engine

import (
	"fmt"
	"github.com/palisade-dev/palisade/internal/policy"
	"slices"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Label keys that Palisade derives for every workload, as Cilium names them.
const (
	// LabelNamespace holds the workload's namespace.
	LabelNamespace = "io.kubernetes.pod.namespace"
	// LabelNamespaceLabels prefixes the labels of the workload's namespace.
	LabelNamespaceLabels = "io.cilium.k8s.namespace.labels."
	// LabelServiceAccount holds the workload's service account.
	LabelServiceAccount = "io.cilium.k8s.policy.serviceaccount"
	// reservedPrefix marks reserved labels ("reserved:host").
	reservedPrefix = "reserved:"
)

// DefaultVolatileLabels are pod labels that change with every rollout and
// so must not split a workload into many identities.
var DefaultVolatileLabels = []string{
	"pod-template-hash",
	"controller-revision-hash",
	"pod-template-generation",
	"statefulset.kubernetes.io/pod-name",
	"apps.kubernetes.io/pod-index",
	"batch.kubernetes.io/controller-uid",
	"batch.kubernetes.io/job-name",
	"controller-uid",
	"job-name",
}

// Labels is a set of security-relevant labels: key → value. Workload
// labels have plain Kubernetes keys; reserved labels have keys
// "reserved:<entity>" and an empty value. The two never collide, because a
// Kubernetes label key cannot contain ':'.
type Labels map[string]string

// String renders the labels sorted by key, "k=v,k=v": the canonical form
// that identities are allocated by.
func (l Labels) String() string {
	keys := make([]string, 0, len(l))
	for k := range l {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var b strings.Builder
	for i, k := range keys {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(k)
		if v := l[k]; v != "" {
			b.WriteByte('=')
			b.WriteString(v)
		}
	}
	return b.String()
}

// Has reports whether the reserved label of entity e is present.
func (l Labels) Has(e Entity) bool {
	_, ok := l[reservedPrefix+string(e)]
	return ok
}

// Reserved returns the label set of reserved entities.
func Reserved(es ...Entity) Labels {
	l := make(Labels, len(es))
	for _, e := range es {
		l[reservedPrefix+string(e)] = ""
	}
	return l
}

// IsWorkload reports whether the labels are a workload's (they carry the
// namespace label and no reserved label).
func (l Labels) IsWorkload() bool {
	if _, ok := l[LabelNamespace]; !ok {
		return false
	}
	for k := range l {
		if strings.HasPrefix(k, reservedPrefix) {
			return false
		}
	}
	return true
}

// LabelPolicy decides which pod labels are security relevant.
type LabelPolicy struct {
	// Volatile pod label keys are dropped; nil means DefaultVolatileLabels.
	Volatile []string
}

// WorkloadLabels returns the security labels of a pod: its own labels
// minus the volatile ones, its namespace, its namespace's labels and its
// service account.
func (p LabelPolicy) WorkloadLabels(namespace string, podLabels, nsLabels map[string]string, serviceAccount string) Labels {
	volatile := p.Volatile
	if volatile == nil {
		volatile = DefaultVolatileLabels
	}
	l := make(Labels, len(podLabels)+len(nsLabels)+2)
	for k, v := range podLabels {
		if !slices.Contains(volatile, k) {
			l[k] = v
		}
	}
	for k, v := range nsLabels {
		l[LabelNamespaceLabels+k] = v
	}
	l[LabelNamespace] = namespace
	if serviceAccount != "" {
		l[LabelServiceAccount] = serviceAccount
	}
	return l
}

// Operator is a selector requirement's operator.
type Operator uint8

// The operators of a label selector requirement.
const (
	OpIn Operator = iota
	OpNotIn
	OpExists
	OpDoesNotExist
)

var opNames = [...]string{"In", "NotIn", "Exists", "DoesNotExist"}

func (o Operator) String() string { return opNames[o] }

// Requirement is one term of a selector, with a canonical key (no "k8s:"
// or "any:" source prefix) and sorted values.
type Requirement struct {
	Key    string
	Op     Operator
	Values []string
}

// Selector is a label selector in canonical form: the AND of its
// requirements, sorted by key and operator. A selector without
// requirements selects every workload.
type Selector struct {
	Requirements []Requirement
}

// NewSelector turns an API selector into canonical form: the one label
// selector model of Palisade, which guard's facts describe too, so that
// what guards judge is what the engine enforces. namespace, when not
// empty, restricts the selector to that namespace unless it already says
// something about the namespace label, which is how a namespaced policy's
// selectors behave.
//
// A selector the engine cannot enforce (a key with an unknown label
// source, an unknown operator) is an error; the selector returned with it
// is canonical as far as it goes (such keys as written, such requirements
// left out), for callers that describe policies rather than enforce them.
func NewSelector(s *metav1.LabelSelector, namespace string) (Selector, error) {
	var (
		out   Selector
		first error
	)
	fail := func(err error) {
		if first == nil {
			first = err
		}
	}
	if s != nil {
		for k, v := range s.MatchLabels {
			key, err := canonicalKey(k)
			if err != nil {
				fail(err)
				key = k
			}
			out.Requirements = append(out.Requirements, Requirement{Key: key, Op: OpIn, Values: []string{v}})
		}
		for _, e := range s.MatchExpressions {
			key, err := canonicalKey(e.Key)
			if err != nil {
				fail(err)
				key = e.Key
			}
			r := Requirement{Key: key, Values: slices.Clone(e.Values)}
			switch e.Operator {
			case metav1.LabelSelectorOpIn:
				r.Op = OpIn
			case metav1.LabelSelectorOpNotIn:
				r.Op = OpNotIn
			case metav1.LabelSelectorOpExists:
				r.Op, r.Values = OpExists, nil
			case metav1.LabelSelectorOpDoesNotExist:
				r.Op, r.Values = OpDoesNotExist, nil
			default:
				fail(fmt.Errorf("selector key %q: unknown operator %q", e.Key, e.Operator))
				continue
			}
			slices.Sort(r.Values)
			r.Values = slices.Compact(r.Values)
			out.Requirements = append(out.Requirements, r)
		}
	}
	if namespace != "" && !out.mentions(LabelNamespace) && !out.selectsReserved() {
		out.Requirements = append(out.Requirements, Requirement{Key: LabelNamespace, Op: OpIn, Values: []string{namespace}})
	}
	slices.SortFunc(out.Requirements, compareRequirement)
	// "k8s:app: web" and "app: web" in one selector say the same twice.
	out.Requirements = slices.CompactFunc(out.Requirements, func(a, b Requirement) bool { return compareRequirement(a, b) == 0 })
	return out, first
}

func compareRequirement(a, b Requirement) int {
	if c := strings.Compare(a.Key, b.Key); c != 0 {
		return c
	}
	if a.Op != b.Op {
		return int(a.Op) - int(b.Op)
	}
	return slices.Compare(a.Values, b.Values)
}

func (s Selector) mentions(key string) bool {
	for _, r := range s.Requirements {
		if r.Key == key {
			return true
		}
	}
	return false
}

// canonicalKey is policy.SelectorKey: one rule for label sources.
func canonicalKey(k string) (string, error) { return policy.SelectorKey(k) }

// selectsReserved reports whether the selector names a reserved label; only
// such selectors can select a reserved identity.
func (s Selector) selectsReserved() bool {
	for _, r := range s.Requirements {
		if strings.HasPrefix(r.Key, reservedPrefix) && (r.Op == OpIn || r.Op == OpExists) {
			return true
		}
	}
	return false
}

// Matches reports whether the selector selects an identity with labels l.
// A selector selects workloads only, unless it names a reserved label
// positively ("reserved:host"), in which case it selects reserved
// identities only.
func (s Selector) Matches(l Labels) bool {
	if s.selectsReserved() {
		if l.IsWorkload() {
			return false
		}
	} else if !l.IsWorkload() {
		return false
	}
	return s.matchRequirements(l)
}

// MatchesNode reports whether a host firewall's node selector selects a
// node with labels l.
func (s Selector) MatchesNode(l map[string]string) bool { return s.matchRequirements(l) }

func (s Selector) matchRequirements(l map[string]string) bool {
	for _, r := range s.Requirements {
		v, ok := l[r.Key]
		switch r.Op {
		case OpIn:
			if !ok || !slices.Contains(r.Values, v) {
				return false
			}
		case OpNotIn:
			if ok && slices.Contains(r.Values, v) {
				return false
			}
		case OpExists:
			if !ok {
				return false
			}
		case OpDoesNotExist:
			if ok {
				return false
			}
		}
	}
	return true
}

// String renders the selector for messages, "k in (a,b), !k2".
func (s Selector) String() string {
	if len(s.Requirements) == 0 {
		return "{}"
	}
	parts := make([]string, len(s.Requirements))
	for i, r := range s.Requirements {
		switch r.Op {
		case OpIn:
			if len(r.Values) == 1 {
				parts[i] = r.Key + "=" + r.Values[0]
			} else {
				parts[i] = r.Key + " in (" + strings.Join(r.Values, ",") + ")"
			}
		case OpNotIn:
			parts[i] = r.Key + " notin (" + strings.Join(r.Values, ",") + ")"
		case OpExists:
			parts[i] = r.Key
		case OpDoesNotExist:
			parts[i] = "!" + r.Key
		}
	}
	return strings.Join(parts, ", ")
}
