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
	"hash/fnv"
	"maps"
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
	return WorldPeer(id)
}

// WorldPeer reports whether id, a peer's ipcache identity, is an address
// outside the cluster: world, the API server's external addresses or a
// node-local (CIDR) prefix, the identities whose labels carry
// reserved:world. The datapath probes IdentityAllWorld for such a peer.
func WorldPeer(id Identity) bool {
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

// MaxFQDNStates bounds the states of one generation's toFQDNs automaton.
const MaxFQDNStates = MaxDNSStates

// FQDNTables is the kernel form of a state's FQDN selectors: one
// deterministic automaton over all of them, with start state 0, fed as the
// DNS rules' automaton is (DNSTables: the presentation form without the
// trailing dot, ASCII letters folded to lower case, '.' between labels).
// The state a name ends in says which selector identities select it: the
// identities the kernel stores with a name it learns from an answer.
type FQDNTables struct {
	// Next is the transition table: Next[state*256+byte] is the state after
	// byte.
	Next []uint32
	// Accept[state] is what a name that ends in state is selected by.
	Accept []FQDNAccept
}

// FQDNAccept is the selector identities whose selector selects a name that
// ends in a state, sorted; at most FQDNMaxSelectorsPerName.
type FQDNAccept struct {
	IDs []Identity
}

// CompileFQDN builds the toFQDNs automaton of selectors (as in
// MapState.FQDNSelectors). The result depends only on the selectors, so
// the same state gives the same tables; no selectors give one state that
// selects nothing. A state that more than FQDNMaxSelectorsPerName
// selectors accept is an error naming them: the kernel stores that many
// identities per name, and the node must refuse the generation rather than
// drop some of them.
func CompileFQDN(selectors map[Identity]FQDN) (FQDNTables, error) {
	ids := slices.Sorted(maps.Keys(selectors))
	pats := make([]dnsPattern, len(ids))
	for i, id := range ids {
		f := selectors[id].normalized()
		if f.Name != "" {
			pats[i] = dnsPattern{p: f.Name, exact: true}
		} else {
			pats[i] = dnsPattern{p: f.Pattern, all: f.Pattern == "*"}
		}
	}
	var t FQDNTables
	a := nameAutomaton{max: MaxFQDNStates}
	_, err := a.add(pats, func(matched []bool) error {
		var acc FQDNAccept
		for i, ok := range matched {
			if ok {
				acc.IDs = append(acc.IDs, ids[i])
			}
		}
		if len(acc.IDs) > FQDNMaxSelectorsPerName {
			texts := make([]string, len(acc.IDs))
			for i, id := range acc.IDs {
				texts[i] = selectors[id].text()
			}
			return fmt.Errorf("a name is selected by %d toFQDNs selectors (%s), more than the %d the kernel stores per name",
				len(acc.IDs), strings.Join(texts, ", "), FQDNMaxSelectorsPerName)
		}
		t.Accept = append(t.Accept, acc)
		return nil
	})
	if err != nil {
		return FQDNTables{}, fmt.Errorf("toFQDNs: %w", err)
	}
	t.Next = a.next
	return t, nil
}

// Lookup runs the automaton on a name as the datapath feeds it and returns
// the selector identities that select it.
func (t *FQDNTables) Lookup(name string) []Identity {
	if len(t.Accept) == 0 {
		return nil
	}
	s := uint32(0)
	name = strings.TrimSuffix(name, ".")
	for i := 0; i < len(name); i++ {
		s = t.Next[int(s)*256+int(name[i])]
	}
	return t.Accept[s].IDs
}
