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
	"hash/fnv"
	"strings"
)

// FQDNMaxSelectorsPerName is how many selector identities the kernel's
// learned table stores for one name. A name that more selectors select is
// a compile error (CompileFQDN), never a silent truncation.
const FQDNMaxSelectorsPerName = 4

// NormalizeFQDN returns a DNS name as the FQDN tables key it: ASCII
// letters folded to lower case and the trailing dot removed.
func NormalizeFQDN(name string) string {
	return strings.TrimSuffix(asciiLower(name), ".")
}

// asciiLower folds ASCII letters only, as the datapath does: other bytes
// are kept as they are.
func asciiLower(s string) string {
	for i := 0; i < len(s); i++ {
		if 'A' <= s[i] && s[i] <= 'Z' {
			b := []byte(s)
			for j := i; j < len(b); j++ {
				if 'A' <= b[j] && b[j] <= 'Z' {
					b[j] += 'a' - 'A'
				}
			}
			return string(b)
		}
	}
	return s
}

// FQDNNameHash is the key of a name in the kernel's learned table: the
// 64-bit FNV-1a hash of the normalised name (NormalizeFQDN).
func FQDNNameHash(name string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(NormalizeFQDN(name)))
	return h.Sum64()
}

// FQDNEligible reports whether a peer whose ipcache identity is id can be
// selected by an FQDN selector. FQDN peers select addresses outside the
// cluster only: world, the API server's external addresses and node-local
// (CIDR) prefixes; workloads, nodes, the host and the cluster never.
func FQDNEligible(id Identity) bool {
	return id == IdentityWorld || id == IdentityKubeAPIServer || id.IsLocal()
}
