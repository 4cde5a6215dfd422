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
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// clusterCache keeps the cluster the last sync built (engine.Cluster,
// identity table, local endpoints and pods) with the versions (UID and
// resourceVersion) of the objects it was built from. While none of them
// changed, as when only policy objects do, a sync reuses it: no cluster is
// built, indexed or compared with the compiler's, and the compiler, the
// observer and the last inputs share the one copy.
type clusterCache struct {
	versions map[listedKey]objVersion
	built    *inputs
}

// listedKey names a listed object: its list (see clusterLists.each),
// namespace and name.
type listedKey struct {
	list            int
	namespace, name string
}

// lookup returns the kept inputs when ls are the objects they were built
// from, nil otherwise.
func (c *clusterCache) lookup(ls *clusterLists) *inputs {
	if c.built == nil {
		return nil
	}
	n := 0
	same := true
	see := func(list int, o client.Object) {
		n++
		if same {
			v, ok := c.versions[listedKey{list, o.GetNamespace(), o.GetName()}]
			same = ok && v.rv != "" && v == objVersion{uid: o.GetUID(), rv: o.GetResourceVersion()}
		}
	}
	ls.each(see)
	if !same || n != len(c.versions) {
		return nil
	}
	return c.built
}

// keep remembers in's cluster as built from ls.
func (c *clusterCache) keep(ls *clusterLists, in *inputs) {
	c.versions = make(map[listedKey]objVersion, len(c.versions))
	ls.each(func(list int, o client.Object) {
		c.versions[listedKey{list, o.GetNamespace(), o.GetName()}] = objVersion{uid: o.GetUID(), rv: o.GetResourceVersion()}
	})
	c.built = &inputs{cluster: in.cluster, ids: in.ids, local: in.local, pods: in.pods}
}

// each calls f with every listed object and the number of its list.
func (ls *clusterLists) each(f func(list int, o client.Object)) {
	for _, o := range ls.nss {
		f(0, o)
	}
	for _, o := range ls.nodes {
		f(1, o)
	}
	for _, o := range ls.ids {
		f(2, o)
	}
	for _, o := range ls.pods {
		f(3, o)
	}
	for _, o := range ls.slices {
		f(4, o)
	}
}
