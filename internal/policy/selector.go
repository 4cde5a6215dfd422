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

package policy

import (
	"fmt"
	"slices"
	"strings"

	"github.com/palisade-dev/palisade/api/v1alpha1"
)

// ReservedSelectable are the entities a selector may name as
// "reserved:<entity>" (not "all" or "cluster", which are sets of them).
var ReservedSelectable = []v1alpha1.Entity{v1alpha1.EntityHost, v1alpha1.EntityRemoteNode,
	v1alpha1.EntityKubeAPIServer, v1alpha1.EntityUnmanaged, v1alpha1.EntityWorld}

// SelectorKey strips Cilium's label source prefixes "k8s:" and "any:" from
// a selector key, keeps "reserved:<entity>", and refuses every other
// source (cidr:, fqdn:, container:, ...), which the datapath cannot
// match. The engine and validate both use it, so what validates is what
// the engine can compile.
func SelectorKey(k string) (string, error) {
	src, key, ok := strings.Cut(k, ":")
	if !ok {
		return k, nil
	}
	switch src {
	case "k8s", "any":
		return key, nil
	case "reserved":
		if !slices.Contains(ReservedSelectable, v1alpha1.Entity(key)) {
			return "", fmt.Errorf("selector key %q: unknown reserved entity %q", k, key)
		}
		return k, nil
	}
	return "", fmt.Errorf("selector key %q: unknown label source %q (want k8s, any or reserved)", k, src)
}
