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

package validate

import "github.com/palisade-dev/palisade/internal/capability"

// checkCapability warns (PAL060) at every part of a policy that this
// version's datapath does not enforce as written. What is enforced is
// read from capability.Table only, so a warning disappears by itself when
// the datapath learns the feature.
func (c *checker) checkCapability(p *Policy) {
	var gaps []capability.Gap
	if rs, _, nodes, ok := p.Network(); ok {
		gaps = capability.Network(rs)
		if nodes != nil {
			// A host policy (ClusterNetworkPolicy with nodeSelector).
			gaps = capability.Host(rs)
		}
	}
	if spec, ok := p.Tracing(); ok {
		gaps = capability.TracingPolicy(spec)
	}
	for _, g := range gaps {
		// The object is named: a template line can make several policies.
		c.add(p, "PAL060", g.Path, "%s: %s", p.ID(), g.String())
	}
}
