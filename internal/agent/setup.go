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
	"context"
	"maps"
	"slices"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/util/workqueue"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"

	v1 "github.com/palisade-dev/palisade/api/v1alpha1"
)

// syncKey is the one request every watched change maps to.
var syncKey = reconcile.Request{}

// CacheOptions keeps the agent's cache small: pods, nodes and namespaces
// are stripped to what the compiler reads as they arrive, so the cache
// holds labels and addresses rather than whole objects, and only the API
// server's own EndpointSlices are cached.
func CacheOptions() cache.Options {
	return cache.Options{
		DefaultTransform: cache.TransformStripManagedFields(),
		ByObject: map[client.Object]cache.ByObject{
			&corev1.Pod{}:       {Transform: stripPod},
			&corev1.Node{}:      {Transform: stripNode},
			&corev1.Namespace{}: {Transform: stripMeta},
			&discoveryv1.EndpointSlice{}: {
				Namespaces: map[string]cache.Config{"default": {}},
				Label:      labels.SelectorFromSet(labels.Set{discoveryv1.LabelServiceName: "kubernetes"}),
			},
		},
	}
}

// NodeCacheOptions is CacheOptions for the agent of node: it also caches
// only the node's own NodeEnforcement (a field selector on its name), the
// one the agent reads and writes. Without it every agent holds, and is
// sent every status write of, every node's NodeEnforcement: with a
// thousand nodes a thousand times the cluster's report traffic.
func NodeCacheOptions(node string) cache.Options {
	o := CacheOptions()
	o.ByObject[&v1.NodeEnforcement{}] = cache.ByObject{Field: fields.OneTermEqualSelector("metadata.name", node)}
	return o
}

func meta(m metav1.ObjectMeta) metav1.ObjectMeta {
	return metav1.ObjectMeta{Name: m.Name, Namespace: m.Namespace, UID: m.UID, ResourceVersion: m.ResourceVersion,
		Labels: m.Labels, DeletionTimestamp: m.DeletionTimestamp}
}

func stripMeta(o any) (any, error) {
	if ns, ok := o.(*corev1.Namespace); ok {
		return &corev1.Namespace{TypeMeta: ns.TypeMeta, ObjectMeta: meta(ns.ObjectMeta)}, nil
	}
	return o, nil
}

func stripPod(o any) (any, error) {
	p, ok := o.(*corev1.Pod)
	if !ok {
		return o, nil
	}
	out := &corev1.Pod{TypeMeta: p.TypeMeta, ObjectMeta: meta(p.ObjectMeta)}
	out.Spec.NodeName = p.Spec.NodeName
	out.Spec.HostNetwork = p.Spec.HostNetwork
	out.Spec.ServiceAccountName = p.Spec.ServiceAccountName
	for _, c := range p.Spec.Containers {
		var ports []corev1.ContainerPort
		for _, port := range c.Ports {
			if port.Name != "" {
				ports = append(ports, corev1.ContainerPort{Name: port.Name, ContainerPort: port.ContainerPort, Protocol: port.Protocol})
			}
		}
		if len(ports) > 0 {
			out.Spec.Containers = append(out.Spec.Containers, corev1.Container{Ports: ports})
		}
	}
	out.Status.Phase = p.Status.Phase
	out.Status.PodIPs = p.Status.PodIPs
	return out, nil
}

func stripNode(o any) (any, error) {
	n, ok := o.(*corev1.Node)
	if !ok {
		return o, nil
	}
	out := &corev1.Node{TypeMeta: n.TypeMeta, ObjectMeta: meta(n.ObjectMeta)}
	out.Spec.PodCIDRs = n.Spec.PodCIDRs
	out.Status.Addresses = n.Status.Addresses
	return out, nil
}

// nodeChange passes a node's update when something the agent reads of it
// changed: its labels, addresses and pod CIDRs (what stripNode keeps). The
// kubelet writes its node's status on every change of a condition and
// every few minutes besides: with a thousand nodes several writes a
// second, each of which, unfiltered, made every agent of the cluster sync.
var nodeChange = predicate.Funcs{UpdateFunc: func(e event.UpdateEvent) bool {
	o, ok1 := e.ObjectOld.(*corev1.Node)
	n, ok2 := e.ObjectNew.(*corev1.Node)
	return !ok1 || !ok2 || !nodeSame(o, n)
}}

// identityChange passes an identity's update when its labels changed or
// its deletion began: its number is its name, and its status (unusedSince,
// written by the manager as workloads come and go) changes nothing the
// agent compiles.
var identityChange = predicate.Funcs{UpdateFunc: func(e event.UpdateEvent) bool {
	o, ok1 := e.ObjectOld.(*v1.Identity)
	n, ok2 := e.ObjectNew.(*v1.Identity)
	return !ok1 || !ok2 || !maps.Equal(o.Spec.Labels, n.Spec.Labels) || o.DeletionTimestamp.IsZero() != n.DeletionTimestamp.IsZero()
}}

// nodeSame is whether two versions of a node agree in everything the
// agent reads of it (gather): labels, addresses, pod CIDRs.
func nodeSame(o, n *corev1.Node) bool {
	return maps.Equal(o.Labels, n.Labels) && slices.Equal(o.Status.Addresses, n.Status.Addresses) && slices.Equal(o.Spec.PodCIDRs, n.Spec.PodCIDRs)
}

// SyncBatch is how long the agent gathers events before it syncs: a
// rollout rewrites every object of a set (each carries the revision), and
// a set's objects arrive one by one; each sync reads and compiles the
// whole cluster, so one sync for the burst instead of one per object. An
// event during a sync causes one more sync after it.
const SyncBatch = 200 * time.Millisecond

// CacheSyncTimeout is how long the agent's controller waits for its
// watches to sync before it gives up, which stops the agent. The agent
// can do nothing useful before then (the kernel keeps its pinned
// generation meanwhile), and giving up after controller-runtime's default
// of 2 minutes makes agents that start while the API server is busiest (a
// thousand agents listing at once: 122 of 1,000 hollow agents gave up so,
// docs/scale.md) exit and be restarted, to list everything again.
const CacheSyncTimeout = 15 * time.Minute

// batched maps every event to the one sync request: at once when none
// was asked for within SyncBatch, else at the end of that window. A lone
// change syncs at once; a burst (a rollout's objects arriving one by one)
// costs one sync per SyncBatch. The queue keeps one request however many
// events arrive, and an event during a sync causes one more after it.
type batched struct {
	last *atomic.Int64
	// first is the time of the first event no sync has started for yet
	// (0: none), for the log (Agent.eventAt).
	first *atomic.Int64
}

var _ handler.EventHandler = batched{}

func (b batched) add(q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
	now := time.Now().UnixNano()
	if b.first != nil {
		b.first.CompareAndSwap(0, now)
	}
	last := b.last.Load()
	if d := time.Duration(now - last); d < SyncBatch {
		q.AddAfter(syncKey, SyncBatch-d)
		return
	}
	if b.last.CompareAndSwap(last, now) {
		q.Add(syncKey)
		return
	}
	q.AddAfter(syncKey, SyncBatch)
}

func (b batched) Create(_ context.Context, _ event.CreateEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
	b.add(q)
}

func (b batched) Update(_ context.Context, _ event.UpdateEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
	b.add(q)
}

func (b batched) Delete(_ context.Context, _ event.DeleteEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
	b.add(q)
}

func (b batched) Generic(_ context.Context, _ event.GenericEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
	b.add(q)
}

// SetupWithManager registers the agent's sync controller, its verify loop
// and, when watchLinks is set, the link event watch.
func (a *Agent) SetupWithManager(mgr ctrl.Manager, watchLinks bool) error {
	a.Cache = mgr.GetCache()
	all := batched{last: new(atomic.Int64), first: &a.eventAt}
	// Pods on other nodes matter only through their addresses and labels;
	// status churn (conditions, container states) is ignored.
	podChange := predicate.Or(predicate.LabelChangedPredicate{}, predicate.Funcs{
		UpdateFunc: func(e event.UpdateEvent) bool {
			o, n := e.ObjectOld.(*corev1.Pod), e.ObjectNew.(*corev1.Pod)
			return o == nil || n == nil || o.Status.Phase != n.Status.Phase || len(o.Status.PodIPs) != len(n.Status.PodIPs) ||
				(len(n.Status.PodIPs) > 0 && o.Status.PodIPs[0] != n.Status.PodIPs[0]) || o.Spec.NodeName != n.Spec.NodeName
		},
	})
	// A policy object matters through its spec, labels and annotations
	// (the revision); its status is written by the manager, twice per
	// rollout, and changes nothing the agent compiles.
	policyChange := predicate.Or(predicate.GenerationChangedPredicate{}, predicate.LabelChangedPredicate{}, predicate.AnnotationChangedPredicate{})
	ownNE := predicate.NewPredicateFuncs(func(o client.Object) bool { return o.GetName() == a.Node })
	links := make(chan event.GenericEvent, 1)
	b := ctrl.NewControllerManagedBy(mgr).
		Named("agent").
		WithOptions(controller.Options{MaxConcurrentReconciles: 1, CacheSyncTimeout: CacheSyncTimeout}).
		Watches(&v1.NetworkPolicy{}, all, builder.WithPredicates(policyChange)).
		Watches(&v1.ClusterNetworkPolicy{}, all, builder.WithPredicates(policyChange)).
		Watches(&v1.TracingPolicy{}, all, builder.WithPredicates(policyChange)).
		Watches(&v1.ClusterTracingPolicy{}, all, builder.WithPredicates(policyChange)).
		Watches(&v1.Identity{}, all, builder.WithPredicates(identityChange)).
		Watches(&corev1.Pod{}, all, builder.WithPredicates(podChange)).
		Watches(&corev1.Namespace{}, all, builder.WithPredicates(predicate.LabelChangedPredicate{})).
		Watches(&corev1.Node{}, all, builder.WithPredicates(nodeChange)).
		Watches(&discoveryv1.EndpointSlice{}, all).
		Watches(&v1.NodeEnforcement{}, all, builder.WithPredicates(ownNE, predicate.Funcs{UpdateFunc: func(event.UpdateEvent) bool { return false }})).
		WatchesRawSource(source.Channel(links, all))
	if err := b.Complete(a); err != nil {
		return err
	}
	if err := mgr.Add(a); err != nil {
		return err
	}
	if a.Tracing != nil {
		if err := mgr.Add(a.newTracingEvents(a.TracingEvents)); err != nil {
			return err
		}
	}
	// The L7 datapath's verdict events: each refused request logged (at
	// most 20 lines a second).
	if ev := a.newL7Events(); ev != nil {
		if err := mgr.Add(ev); err != nil {
			return err
		}
	}
	if ev := a.newKafkaEvents(); ev != nil {
		if err := mgr.Add(ev); err != nil {
			return err
		}
	}
	if !watchLinks {
		return nil
	}
	return mgr.Add(manager.RunnableFunc(func(ctx context.Context) error {
		return WatchLinks(ctx, func() {
			select {
			case links <- event.GenericEvent{Object: &v1.NodeEnforcement{ObjectMeta: metav1.ObjectMeta{Name: a.Node}}}:
			default:
			}
			a.Trigger()
		})
	}))
}
