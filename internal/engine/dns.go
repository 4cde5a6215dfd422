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
	"maps"
	"slices"
	"strconv"
	"strings"
)

// DNSTables is the kernel form of the DNS rules of a MapState's L7 lists:
// one deterministic automaton per list that has DNS rules, all in one
// transition table, so that the datapath decides a query name by one
// table step per byte and one accept lookup at the end.
//
// A name is fed as its presentation form without the trailing dot: the
// bytes of each label, ASCII letters folded to lower case, and '.' between
// labels (the root name is fed as no byte at all). The datapath refuses,
// before any table step, a name with a byte outside 0x21-0x7e or a '.'
// inside a label, so every name it feeds means what FQDN.Matches reads.
type DNSTables struct {
	// Lists holds every L7 list's automaton. A port is decided as DNS when
	// one of the lists found for it has DNS rules; a list without them
	// (HTTP or Kafka rules only) still has an automaton, whose one state
	// says that its allows with rules refuse every name, as MatchL7 does.
	Lists map[L7ID]DNSList
	// Next is the transition table: Next[state*256+byte] is the state
	// after byte. State numbers are global; each list's states are its own.
	Next []uint32
	// Accept[state] decides a name that ends in state.
	Accept []DNSAccept
}

// DNSList is one list's automaton: its start state, and whether the list
// has DNS rules.
type DNSList struct {
	Start uint32
	DNS   bool
}

// DNSAccept is what an L7 list says of a name: the lowest rule among its
// allows that admit the name and among those that refuse it, with the
// enforcing allows only (Allow, Restrict) and with the audit-mode ones too
// (AuditAllow, AuditRestrict); 0 where there is none. It holds exactly
// what decideL7 takes from a list, so the datapath decides as LookupSide.
type DNSAccept struct {
	Allow, Restrict           RuleID
	AuditAllow, AuditRestrict RuleID
}

// MaxDNSStates bounds the states of one generation's DNS tables.
const MaxDNSStates = 8192

// DNSListHasDNS reports whether a list has DNS rules, so that the datapath
// decides its requests as DNS queries.
func DNSListHasDNS(l L7List) bool {
	return slices.ContainsFunc(l, func(a L7Allow) bool { return a.Rules != nil && len(a.Rules.DNS) > 0 })
}

// CompileDNS builds the DNS tables of a state's L7 lists. The result
// depends only on the lists' content (lists are compiled in order of their
// IDs), so the same state gives the same tables. A state without DNS rules
// has no tables at all (nil): no port is decided as DNS.
func CompileDNS(lists map[L7ID]L7List) (*DNSTables, error) {
	if !slices.ContainsFunc(slices.Collect(maps.Values(lists)), DNSListHasDNS) {
		return nil, nil
	}
	t := &DNSTables{Lists: map[L7ID]DNSList{}}
	for _, id := range slices.Sorted(maps.Keys(lists)) {
		l := lists[id]
		start, err := t.addList(l)
		if err != nil {
			return nil, fmt.Errorf("DNS rules of L7 list %d: %w", id, err)
		}
		t.Lists[id] = DNSList{Start: start, DNS: DNSListHasDNS(l)}
	}
	return t, nil
}

// dnsPattern is one name or pattern of a list, normalized.
type dnsPattern struct {
	p     string
	exact bool // matchName: '*' is literal
	all   bool // the lone "*"
}

// nfaItem is a position in a pattern; pattern -1 is the lone "*".
type nfaItem struct{ pat, pos int }

func (t *DNSTables) addList(l L7List) (uint32, error) {
	var pats []dnsPattern
	index := map[dnsPattern]int{}
	// uses[i] are the patterns of entry i; nil Rules admits every name.
	uses := make([][]int, len(l))
	for i, a := range l {
		if a.Rules == nil {
			continue
		}
		for _, r := range a.Rules.DNS {
			var dp dnsPattern
			if r.MatchName != "" {
				dp = dnsPattern{p: strings.TrimSuffix(strings.ToLower(string(r.MatchName)), "."), exact: true}
			} else {
				dp.p = strings.TrimSuffix(strings.ToLower(string(r.MatchPattern)), ".")
				dp.all = dp.p == "*"
			}
			k, ok := index[dp]
			if !ok {
				k = len(pats)
				index[dp] = k
				pats = append(pats, dp)
			}
			uses[i] = append(uses[i], k)
		}
	}

	a := nameAutomaton{next: t.Next, max: MaxDNSStates}
	start, err := a.add(pats, func(matched []bool) error {
		t.Accept = append(t.Accept, t.accept(l, uses, matched))
		return nil
	})
	t.Next = a.next
	return start, err
}

// nameAutomaton is a transition table of name automata (Next[state*256+
// byte]), shared by the DNS rules' tables and the toFQDNs tables.
type nameAutomaton struct {
	next []uint32
	max  int // states at most
}

// add builds the deterministic automaton of pats after the states already
// in the table and returns its start state. For each new state, in order
// of state number, it calls accept with which patterns a name that ends in
// that state matches. Bytes are folded to lower case as the datapath feeds
// them; '*' of a pattern (not of a matchName) matches any run of bytes
// within a label and the lone "*" every name, as FQDN.Matches reads them.
func (a *nameAutomaton) add(pats []dnsPattern, accept func(matched []bool) error) (uint32, error) {
	// closure adds the epsilon moves: a '*' may match nothing.
	closure := func(set map[nfaItem]bool) {
		for it := range set {
			for p := pats[it.pat]; !p.exact && !p.all && it.pos < len(p.p) && p.p[it.pos] == '*'; {
				it.pos++
				set[it] = true
			}
		}
	}
	keyOf := func(set map[nfaItem]bool) string {
		items := slices.SortedFunc(maps.Keys(set), func(a, b nfaItem) int {
			if a.pat != b.pat {
				return a.pat - b.pat
			}
			return a.pos - b.pos
		})
		var sb strings.Builder
		for _, it := range items {
			sb.WriteString(strconv.Itoa(it.pat))
			sb.WriteByte(':')
			sb.WriteString(strconv.Itoa(it.pos))
			sb.WriteByte(' ')
		}
		return sb.String()
	}

	states := map[string]uint32{}
	var queue []map[nfaItem]bool
	intern := func(set map[nfaItem]bool) (uint32, error) {
		k := keyOf(set)
		if s, ok := states[k]; ok {
			return s, nil
		}
		n := len(a.next) / 256
		if n >= a.max {
			return 0, fmt.Errorf("the name automaton needs more than %d states", a.max)
		}
		s := uint32(n)
		states[k] = s
		matched := make([]bool, len(pats))
		for it := range set {
			if p := pats[it.pat]; p.all || it.pos == len(p.p) {
				matched[it.pat] = true
			}
		}
		if err := accept(matched); err != nil {
			return 0, err
		}
		a.next = append(a.next, make([]uint32, 256)...)
		queue = append(queue, set)
		return s, nil
	}

	init := map[nfaItem]bool{}
	for k := range pats {
		init[nfaItem{k, 0}] = true
	}
	closure(init)
	start, err := intern(init)
	if err != nil {
		return 0, err
	}
	for n := int(start); len(queue) > 0; n++ {
		set := queue[0]
		queue = queue[1:]
		for c := 0; c < 256; c++ {
			b := byte(c)
			if 'A' <= b && b <= 'Z' {
				b += 'a' - 'A'
			}
			next := map[nfaItem]bool{}
			for it := range set {
				p := pats[it.pat]
				switch {
				case p.all:
					next[it] = true
				case it.pos >= len(p.p):
				case !p.exact && p.p[it.pos] == '*':
					if b != '.' {
						next[it] = true
					}
				case p.p[it.pos] == b:
					next[nfaItem{it.pat, it.pos + 1}] = true
				}
			}
			closure(next)
			s, err := intern(next)
			if err != nil {
				return 0, err
			}
			a.next[n*256+c] = s
		}
	}
	return start, nil
}

// accept computes what a list says of a name that matches the patterns
// marked in matched.
func (t *DNSTables) accept(l L7List, uses [][]int, matched []bool) DNSAccept {
	var a DNSAccept
	for i, e := range l {
		ok := e.Rules == nil || slices.ContainsFunc(uses[i], func(k int) bool { return matched[k] })
		if ok {
			a.AuditAllow = minRule(a.AuditAllow, e.Rule)
			if !e.Audit {
				a.Allow = minRule(a.Allow, e.Rule)
			}
		} else {
			a.AuditRestrict = minRule(a.AuditRestrict, e.Rule)
			if !e.Audit {
				a.Restrict = minRule(a.Restrict, e.Rule)
			}
		}
	}
	return a
}

// Lookup runs a list's automaton on a name as the datapath feeds it; ok is
// false when the tables have no such list.
func (t *DNSTables) Lookup(id L7ID, name string) (DNSAccept, bool) {
	if t == nil {
		return DNSAccept{}, false
	}
	l, ok := t.Lists[id]
	if !ok {
		return DNSAccept{}, false
	}
	s := l.Start
	name = strings.TrimSuffix(name, ".")
	for i := 0; i < len(name); i++ {
		s = t.Next[int(s)*256+int(name[i])]
	}
	return t.Accept[s], true
}
