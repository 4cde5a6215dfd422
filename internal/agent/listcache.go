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

	"k8s.io/apimachinery/pkg/labels"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// listObjs lists the objects of type T as the agent's cache holds them,
// shared and never to be modified. With the manager's cache (Agent.Cache)
// they are the informer's own objects, read from its store: a sync then
// copies none of the cluster's objects. Without it (a client in tests)
// they are listed through Client without deep copies, as pointers into
// list's items; own is then false, and a pointer kept beyond the sync
// must be to a copy (keepable), or it would keep the whole list alive.
func listObjs[T any, P interface {
	*T
	client.Object
}](ctx context.Context, a *Agent, list client.ObjectList, items func() []T, opts ...client.ListOption) (objs []P, own bool, err error) {
	if a.Cache != nil {
		inf, err := a.Cache.GetInformer(ctx, P(new(T)))
		if err != nil {
			return nil, false, err
		}
		if s, ok := inf.(interface{ GetStore() toolscache.Store }); ok {
			lo := (&client.ListOptions{}).ApplyOptions(opts)
			for _, x := range s.GetStore().List() {
				p, ok := x.(P)
				if !ok || lo.Namespace != "" && p.GetNamespace() != lo.Namespace ||
					lo.LabelSelector != nil && !lo.LabelSelector.Matches(labels.Set(p.GetLabels())) {
					continue
				}
				objs = append(objs, p)
			}
			return objs, true, nil
		}
	}
	if err := a.Client.List(ctx, list, append(opts, client.UnsafeDisableDeepCopy)...); err != nil {
		return nil, false, err
	}
	its := items()
	objs = make([]P, len(its))
	for i := range its {
		objs[i] = &its[i]
	}
	return objs, false, nil
}

// keepable returns p, or, when p is not the cache's own object, a copy
// of its struct (sharing its maps and slices, which are never modified).
func keepable[T any, P interface {
	*T
	client.Object
}](p P, own bool) func() client.Object {
	return func() client.Object {
		if own {
			return p
		}
		c := *(*T)(p)
		return P(&c)
	}
}
