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
	"cmp"
	"maps"
	"net/netip"
	"slices"
)

// ComposeDeltas returns the delta that has the effect of applying a and
// then b: for every key the last of the two that writes or deletes it
// decides. Neither argument is changed, and the result shares no map or
// slice with them (L7 lists and FQDN addresses are shared: they are never
// modified). A nil delta is the empty one.
//
// A delete in the result may name a key that the state before a does not
// hold (a wrote it, b deleted it): a datapath applying the result must
// treat deleting an absent key as done.
func ComposeDeltas(a, b *Delta) *Delta {
	if a == nil {
		a = &Delta{}
	}
	if b == nil {
		b = &Delta{}
	}
	d := &Delta{}
	d.IPCache, d.IPCacheDeleted = composeMap(a.IPCache, a.IPCacheDeleted, b.IPCache, b.IPCacheDeleted, comparePrefix)
	d.Endpoints, d.EndpointsDeleted = composeMap(a.Endpoints, a.EndpointsDeleted, b.Endpoints, b.EndpointsDeleted, netip.Addr.Compare)
	d.Policy, d.PolicyDeleted = composeMap(a.Policy, a.PolicyDeleted, b.Policy, b.PolicyDeleted, comparePolicyKey)
	d.L7, d.L7Deleted = composeMap(a.L7, a.L7Deleted, b.L7, b.L7Deleted, cmp.Compare[L7ID])
	d.FQDNSelectors, d.FQDNSelectorsDeleted = composeMap(a.FQDNSelectors, a.FQDNSelectorsDeleted, b.FQDNSelectors, b.FQDNSelectorsDeleted, cmp.Compare[Identity])
	d.FQDNNames, d.FQDNNamesDeleted = composeMap(a.FQDNNames, a.FQDNNamesDeleted, b.FQDNNames, b.FQDNNamesDeleted, cmp.Compare[string])
	return d
}

func composeMap[K comparable, V any](aw map[K]V, ad []K, bw map[K]V, bd []K, order func(a, b K) int) (map[K]V, []K) {
	w := make(map[K]V, len(aw)+len(bw))
	maps.Copy(w, aw)
	del := make(map[K]struct{}, len(ad)+len(bd))
	for _, k := range ad {
		del[k] = struct{}{}
	}
	for _, k := range bd {
		delete(w, k)
		del[k] = struct{}{}
	}
	for k, v := range bw {
		w[k] = v
		delete(del, k)
	}
	return w, slices.SortedFunc(maps.Keys(del), order)
}

// PolicyIDsTouched returns the policy IDs of the policy keys the delta
// writes or deletes: the endpoints of these IDs are the ones whose
// datapath lookup hints may change.
func (d *Delta) PolicyIDsTouched() map[uint32]bool {
	out := map[uint32]bool{}
	for k := range d.Policy {
		out[k.PolicyID] = true
	}
	for _, k := range d.PolicyDeleted {
		out[k.PolicyID] = true
	}
	return out
}
