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
	"net/netip"
	"slices"
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

// normalized returns the selector as the FQDN tables key it: its name or
// pattern normalised (NormalizeFQDN).
func (f FQDN) normalized() FQDN {
	if f.Name != "" {
		return FQDN{Name: NormalizeFQDN(f.Name)}
	}
	return FQDN{Pattern: NormalizeFQDN(f.Pattern)}
}

// text renders the selector as policies write it.
func (f FQDN) text() string {
	if f.Name != "" {
		return "matchName:" + f.Name
	}
	return "matchPattern:" + f.Pattern
}

// computeFQDN returns the selector identities and the learned table: every
// name of the cluster's DNS answers, normalised, with its addresses
// sorted (answers for names that differ in case or trailing dot merged).
func (c *Compiler) computeFQDN() (map[Identity]FQDN, map[string][]netip.Addr) {
	sels := make(map[Identity]FQDN, len(c.sels))
	for f, cl := range c.sels {
		sels[cl.id] = f
	}
	names := make(map[string][]netip.Addr, len(c.view.cl.DNS))
	for name, addrs := range c.view.cl.DNS {
		if len(addrs) == 0 {
			continue
		}
		n := NormalizeFQDN(name)
		names[n] = append(names[n], addrs...)
	}
	for n, addrs := range names {
		slices.SortFunc(addrs, netip.Addr.Compare)
		names[n] = slices.Compact(addrs)
	}
	return sels, names
}

// fqdnProbes returns the selector identities that the datapath probes for
// remote on egress: those whose selector selects a name that remote is an
// address of, sorted. The caller checks that remote is eligible.
func (m *MapState) fqdnProbes(remote netip.Addr) []Identity {
	var out []Identity
	for name, addrs := range m.FQDNNames {
		if !slices.Contains(addrs, remote) {
			continue
		}
		for id, f := range m.FQDNSelectors {
			if !slices.Contains(out, id) && f.Matches(name) {
				out = append(out, id)
			}
		}
	}
	slices.Sort(out)
	return out
}
