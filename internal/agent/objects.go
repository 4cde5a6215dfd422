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

package agent

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strconv"
	"strings"

	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "github.com/palisade-dev/palisade/api/v1alpha1"
	"github.com/palisade-dev/palisade/internal/capability"
	"github.com/palisade-dev/palisade/internal/engine"
	"github.com/palisade-dev/palisade/internal/policy"
	"github.com/palisade-dev/palisade/internal/render"
)

// objKey names a policy object.
type objKey struct{ kind, namespace, name string }

// String is "Kind ns/name", or "Kind name" for cluster-scoped kinds.
func (k objKey) String() string {
	if k.namespace == "" {
		return k.kind + " " + k.name
	}
	return k.kind + " " + k.namespace + "/" + k.name
}

func compareKeys(a, b objKey) int {
	return cmp.Or(strings.Compare(a.kind, b.kind), strings.Compare(a.namespace, b.namespace), strings.Compare(a.name, b.name))
}

func sortedKeys[V any](m map[objKey]V) []objKey {
	return slices.SortedFunc(maps.Keys(m), compareKeys)
}

// policyObject is one policy object the node considers.
type policyObject struct {
	key      objKey
	set      setKey // zero when no PolicySet owns the object
	revision string
	// revisionObjects is how many objects the revision renders, when
	// countsObjects.
	revisionObjects int
	countsObjects   bool
	obj             client.Object
	// gaps are what the capability table says the datapath does not
	// enforce of the object as written.
	gaps []capability.Gap
	// concerns is whether the object applies to this node: it selects a
	// local workload or the node itself.
	concerns bool
	// skipped says why a tracing policy is not loaded on this node at
	// all (its nodeSelector does not select the node); empty otherwise.
	skipped string

	// What objectCache keeps with the object's version: the last list
	// that saw it, its normalized policy (network policies), and the
	// local epoch in which concerns was computed (0: not yet).
	sweep         uint64
	norm          *engine.Policy
	normErr       error
	normDone      bool
	concernsEpoch uint64
}

func newPolicyObject(kind string, o client.Object) *policyObject {
	p := &policyObject{key: objKey{kind: kind, namespace: o.GetNamespace(), name: o.GetName()}, obj: o,
		revision: o.GetAnnotations()[render.AnnotationRevision]}
	if n, err := strconv.Atoi(o.GetAnnotations()[render.AnnotationRevisionObjects]); err == nil {
		p.revisionObjects, p.countsObjects = n, true
	}
	if l := o.GetLabels(); l[render.LabelPolicySetName] != "" {
		p.set = setKey{namespace: l[render.LabelPolicySetNamespace], name: l[render.LabelPolicySetName]}
	}
	switch t := o.(type) {
	case *v1.NetworkPolicy:
		p.gaps = capability.Network(&t.Spec.RuleSet)
	case *v1.ClusterNetworkPolicy:
		p.gaps = capability.Network(&t.Spec.RuleSet)
		if t.Spec.NodeSelector != nil {
			// A host policy: its ingress HTTP rules are HTTPHost's.
			p.gaps = capability.Host(&t.Spec.RuleSet)
		}
	case *v1.TracingPolicy:
		p.gaps = capability.TracingPolicy(&t.Spec)
	case *v1.ClusterTracingPolicy:
		p.gaps = capability.TracingPolicy(&t.Spec)
	}
	return p
}

func (p *policyObject) network() bool {
	return p.key.kind == "NetworkPolicy" || p.key.kind == "ClusterNetworkPolicy"
}

// setInfo is what the node enforces of one PolicySet: the objects of one
// revision.
type setInfo struct {
	revision string
	// pending is a newer revision whose objects are not all in the API
	// yet.
	pending string
	objects []*policyObject
}

// errRevisionIncomplete defers a sync: see selectObjects.
var errRevisionIncomplete = errors.New("revision incomplete")

// listObjects lists every policy object of the four kinds from the cache,
// without deep copies, sorted by key: an object whose version the agent
// has seen is the policyObject it kept (objectCache).
func (a *Agent) listObjects(ctx context.Context) ([]*policyObject, error) {
	c := &a.objCache
	c.startList()
	var nps v1.NetworkPolicyList
	npo, own, err := listObjs(ctx, a, &nps, func() []v1.NetworkPolicy { return nps.Items })
	if err != nil {
		return nil, fmt.Errorf("list network policies: %w", err)
	}
	for _, o := range npo {
		c.object("NetworkPolicy", o, keepable(o, own))
	}
	var cnps v1.ClusterNetworkPolicyList
	cnpo, own, err := listObjs(ctx, a, &cnps, func() []v1.ClusterNetworkPolicy { return cnps.Items })
	if err != nil {
		return nil, fmt.Errorf("list cluster network policies: %w", err)
	}
	for _, o := range cnpo {
		c.object("ClusterNetworkPolicy", o, keepable(o, own))
	}
	var tps v1.TracingPolicyList
	tpo, own, err := listObjs(ctx, a, &tps, func() []v1.TracingPolicy { return tps.Items })
	if err != nil {
		return nil, fmt.Errorf("list tracing policies: %w", err)
	}
	for _, o := range tpo {
		c.object("TracingPolicy", o, keepable(o, own))
	}
	var ctps v1.ClusterTracingPolicyList
	ctpo, own, err := listObjs(ctx, a, &ctps, func() []v1.ClusterTracingPolicy { return ctps.Items })
	if err != nil {
		return nil, fmt.Errorf("list cluster tracing policies: %w", err)
	}
	for _, o := range ctpo {
		c.object("ClusterTracingPolicy", o, keepable(o, own))
	}
	return c.endList(), nil
}

// complete reports whether objs (one PolicySet's) are all of one
// revision, and all of it: as many as the revision rendered.
func complete(objs []*policyObject) (string, bool) {
	rev := objs[0].revision
	for _, o := range objs {
		if o.revision != rev {
			return "", false
		}
		if o.countsObjects && o.revisionObjects != len(objs) {
			return "", false
		}
	}
	return rev, true
}

// selectObjects chooses, per PolicySet, the objects of one complete
// revision: the newest complete one seen. A set whose objects are of two
// revisions, or fewer than its revision has (a PolicySet mid-apply, a
// manager that died between two applies), keeps the objects of its last
// complete revision. A set whose objects all vanished from the cache is
// confirmed gone with a read from the API server itself before it is
// dropped: a watch gap or relist is never read as "deleted".
//
// With no complete revision ever seen for a set (the agent just started
// during an apply), a kernel that already holds a generation keeps it
// (errRevisionIncomplete defers the sync); on an empty kernel the objects
// of both revisions are compiled together until one is complete.
func (a *Agent) selectObjects(ctx context.Context, all []*policyObject) ([]*policyObject, map[setKey]*setInfo, error) {
	if a.snapshots == nil {
		a.snapshots = map[setKey]*setInfo{}
	}
	bySet := map[setKey][]*policyObject{}
	for _, o := range all {
		if o.set != (setKey{}) {
			bySet[o.set] = append(bySet[o.set], o)
		}
	}
	sets := map[setKey]*setInfo{}
	var deferred []string
	for k, objs := range bySet {
		if rev, ok := complete(objs); ok {
			si := &setInfo{revision: rev, objects: objs}
			a.snapshots[k] = si
			sets[k] = si
			continue
		}
		newer := newestOther(objs, "")
		if snap, ok := a.snapshots[k]; ok {
			sets[k] = &setInfo{revision: snap.revision, pending: newestOther(objs, snap.revision), objects: snap.objects}
			continue
		}
		if a.Datapath.Generation() > 0 {
			deferred = append(deferred, fmt.Sprintf("%s/%s (revision %s)", k.namespace, k.name, newer))
			continue
		}
		sets[k] = &setInfo{pending: newer, objects: objs}
	}
	if len(deferred) > 0 {
		sort.Strings(deferred)
		return nil, nil, fmt.Errorf("%w: the objects of %v are not all in the API yet, and no complete revision was seen since the agent started; the kernel keeps its generation", errRevisionIncomplete, deferred)
	}
	for k, snap := range a.snapshots {
		if _, ok := bySet[k]; ok {
			continue
		}
		gone, err := a.setGone(ctx, k)
		if err != nil {
			return nil, nil, err
		}
		if gone {
			delete(a.snapshots, k)
			continue
		}
		a.Log.Info("the cache lists no object of a PolicySet the API server still has; keeping its revision", "policyset", k.namespace+"/"+k.name, "revision", snap.revision)
		sets[k] = snap
	}
	// The chosen objects, sorted by key as all is: the listed ones of the
	// sets that enforce them, and the objects sets keep from an earlier
	// list.
	var kept []*policyObject
	earlier := map[setKey]bool{}
	for k, si := range sets {
		if objs := bySet[k]; len(objs) == 0 || len(objs) != len(si.objects) || &objs[0] != &si.objects[0] {
			kept = append(kept, si.objects...)
			earlier[k] = true
		}
	}
	chosen := make([]*policyObject, 0, len(all)+len(kept))
	for _, o := range all {
		if o.set == (setKey{}) || sets[o.set] != nil && !earlier[o.set] {
			chosen = append(chosen, o)
		}
	}
	if len(kept) > 0 {
		chosen = append(chosen, kept...)
		slices.SortStableFunc(chosen, func(x, y *policyObject) int { return compareKeys(x.key, y.key) })
	}
	return chosen, sets, nil
}

// newestOther is the greatest revision among objs other than not, so the
// choice is stable ("" when none).
func newestOther(objs []*policyObject, not string) string {
	best := ""
	for _, o := range objs {
		if o.revision != not && o.revision > best {
			best = o.revision
		}
	}
	return best
}

// setGone asks the API server itself (not the cache) whether any policy
// object of set k is left.
func (a *Agent) setGone(ctx context.Context, k setKey) (bool, error) {
	r := a.APIReader
	if r == nil {
		r = a.Client
	}
	sel := client.MatchingLabels{render.LabelPolicySetName: k.name, render.LabelPolicySetNamespace: k.namespace}
	for _, l := range []client.ObjectList{&v1.NetworkPolicyList{}, &v1.ClusterNetworkPolicyList{}, &v1.TracingPolicyList{}, &v1.ClusterTracingPolicyList{}} {
		if err := r.List(ctx, l, sel, client.Limit(1)); err != nil {
			return false, fmt.Errorf("confirm that PolicySet %s/%s has no objects left: %w", k.namespace, k.name, err)
		}
		if apimeta.LenList(l) > 0 {
			return false, nil
		}
	}
	return true, nil
}

// buildIR normalizes the chosen network policy objects.
func buildIR(objs []*policyObject) (*engine.IR, error) {
	var nets []client.Object
	for _, o := range objs {
		if o.network() {
			nets = append(nets, o.obj)
		}
	}
	pols, err := policiesOf(nets)
	if err != nil {
		return nil, err
	}
	ir, err := engine.Build(pols, "")
	if err != nil {
		return nil, fmt.Errorf("build policies: %w", err)
	}
	return ir, nil
}

// markConcerns sets, for every object, whether it applies to this node.
// A network object's answer is kept while its version and the node's
// local labels are unchanged (objectCache.localEpoch).
func (a *Agent) markConcerns(in *inputs) error {
	var localLabels []engine.Labels
	for _, l := range in.local {
		if e, ok := in.cluster.Endpoint(l.id); ok {
			localLabels = append(localLabels, in.cluster.WorkloadLabels(e))
		}
	}
	node, _ := in.cluster.Node(a.Node)
	epoch := a.objCache.localEpoch(localLabels, node)
	for _, o := range in.objects {
		if o.network() {
			if o.concernsEpoch != epoch {
				o.concerns, o.concernsEpoch = false, epoch
				if p, _ := o.normalized(); p != nil {
					switch s := p.Subject; {
					case s.Endpoints != nil:
						o.concerns = slices.ContainsFunc(localLabels, s.Endpoints.Matches)
					case s.Nodes != nil && node != nil:
						o.concerns = s.Nodes.MatchesNode(node.Labels)
					}
				}
			}
			continue
		}
		o.skipped = ""
		if ns := tracingNodeSelector(o); ns != nil && node != nil {
			nsel, err := engine.NewSelector(ns, "")
			if err != nil {
				return fmt.Errorf("%s: nodeSelector: %w", o.key, err)
			}
			if !nsel.MatchesNode(node.Labels) {
				// Not this node's: nothing of it loads here. A node whose
				// labels are unknown loads it (the more protective way).
				o.skipped = "its nodeSelector does not select this node"
				o.concerns = false
				continue
			}
		}
		sel, all, err := tracingSelector(o)
		if err != nil {
			return err
		}
		if all {
			// Every process of the node, pods or not.
			o.concerns = true
			continue
		}
		o.concerns = slices.ContainsFunc(in.pods, func(p localPod) bool { return sel.Matches(p.labels) })
	}
	return nil
}

// tracingSelector is the selector of the pods a tracing policy applies
// to; all is true for a ClusterTracingPolicy without podSelector, which
// applies to every process of the node.
func tracingSelector(o *policyObject) (sel engine.Selector, all bool, err error) {
	switch t := o.obj.(type) {
	case *v1.TracingPolicy:
		sel, err = engine.NewSelector(orAll(t.Spec.PodSelector), t.Namespace)
	case *v1.ClusterTracingPolicy:
		if t.Spec.PodSelector == nil {
			return engine.Selector{}, true, nil
		}
		sel, err = engine.NewSelector(t.Spec.PodSelector, "")
	default:
		err = fmt.Errorf("%s is not a tracing policy", o.key)
	}
	if err != nil {
		err = fmt.Errorf("%s: podSelector: %w", o.key, err)
	}
	return sel, false, err
}

// tracingNodeSelector is a tracing policy's nodeSelector, nil when it has
// none.
func tracingNodeSelector(o *policyObject) *metav1.LabelSelector {
	switch t := o.obj.(type) {
	case *v1.TracingPolicy:
		return t.Spec.NodeSelector
	case *v1.ClusterTracingPolicy:
		return t.Spec.NodeSelector
	}
	return nil
}

// orAll is s, or the selector that selects everything when s is nil.
func orAll(s *metav1.LabelSelector) *metav1.LabelSelector {
	if s == nil {
		return &metav1.LabelSelector{}
	}
	return s
}

// policiesOf converts applied network policy objects back into the
// policies the engine builds.
func policiesOf(objs []client.Object) ([]*policy.Policy, error) {
	out := make([]*policy.Policy, 0, len(objs))
	for _, o := range objs {
		p, err := render.Policy(o)
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, nil
}
