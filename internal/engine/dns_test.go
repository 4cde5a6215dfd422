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
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/palisade-dev/palisade/api/v1alpha1"
)

// randomDNSName returns a name from a small alphabet, so that random rules
// and names meet often: labels of a-c, 'X' (upper case), '-' and '*'.
func randomDNSName(r *rand.Rand, star bool) string {
	labels := make([]string, 1+r.IntN(4))
	alpha := "abcX-"
	if star {
		alpha = "abcX-**"
	}
	for i := range labels {
		b := make([]byte, r.IntN(4))
		for j := range b {
			b[j] = alpha[r.IntN(len(alpha))]
		}
		labels[i] = string(b)
	}
	n := strings.Join(labels, ".")
	if r.IntN(4) == 0 {
		n += "."
	}
	return n
}

// randomDNSList is an L7 list of 1-4 allows, some audit-mode, some
// without L7 rules, some with HTTP rules only, most with DNS rules.
func randomDNSList(r *rand.Rand) L7List {
	var l L7List
	for i := range 1 + r.IntN(4) {
		a := L7Allow{Rule: RuleID(1 + i*3 + r.IntN(3)), Audit: r.IntN(4) == 0}
		switch r.IntN(8) {
		case 0:
		case 1:
			a.Rules = &v1alpha1.L7Rules{HTTP: []v1alpha1.HTTPRule{{Method: "GET"}}}
		default:
			a.Rules = &v1alpha1.L7Rules{}
			for range 1 + r.IntN(3) {
				switch r.IntN(6) {
				case 0:
					a.Rules.DNS = append(a.Rules.DNS, v1alpha1.DNSRule{MatchPattern: "*"})
				case 1, 2:
					a.Rules.DNS = append(a.Rules.DNS, v1alpha1.DNSRule{MatchName: v1alpha1.DNSName(randomDNSName(r, false))})
				default:
					a.Rules.DNS = append(a.Rules.DNS, v1alpha1.DNSRule{MatchPattern: v1alpha1.DNSPattern(randomDNSName(r, true))})
				}
			}
		}
		l = append(l, a)
	}
	return l
}

// wantDNSAccept is what decideL7 takes from a list for a name.
func wantDNSAccept(l L7List, name string) DNSAccept {
	var a DNSAccept
	req := &Request{DNS: &DNSRequest{Name: name}}
	for _, e := range l {
		if e.Rules == nil || MatchL7(e.Rules, req) {
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

func TestCompileDNSMatchesFQDN(t *testing.T) {
	r := rand.New(rand.NewPCG(15, 1))
	for set := range 300 {
		lists := map[L7ID]L7List{}
		for i := range 1 + r.IntN(3) {
			lists[L7ID(i+1)] = randomDNSList(r)
		}
		tab, err := CompileDNS(lists)
		if err != nil {
			t.Fatalf("set %d: %v", set, err)
		}
		for id, l := range lists {
			if tab == nil {
				if DNSListHasDNS(l) {
					t.Fatalf("set %d: no tables, list %d has DNS rules", set, id)
				}
				continue
			}
			if tab.Lists[id].DNS != DNSListHasDNS(l) {
				t.Fatalf("set %d list %d: tables say DNS %v, list has DNS rules %v", set, id, tab.Lists[id].DNS, DNSListHasDNS(l))
			}
			for range 200 {
				name := randomDNSName(r, false)
				got, _ := tab.Lookup(id, name)
				if want := wantDNSAccept(l, name); got != want {
					t.Fatalf("set %d list %d %+v name %q: tables say %+v, MatchL7 %+v", set, id, l, name, got, want)
				}
			}
		}
	}
}

func TestCompileDNSCases(t *testing.T) {
	rules := func(rs ...v1alpha1.DNSRule) L7List {
		return L7List{{Rule: 7, Rules: &v1alpha1.L7Rules{DNS: rs}}}
	}
	for _, c := range []struct {
		rule v1alpha1.DNSRule
		name string
		want bool
	}{
		{v1alpha1.DNSRule{MatchName: "API.example.com."}, "api.EXAMPLE.com", true},
		{v1alpha1.DNSRule{MatchName: "api.example.com"}, "api.example.com.", true},
		{v1alpha1.DNSRule{MatchName: "api.example.com"}, "x.api.example.com", false},
		{v1alpha1.DNSRule{MatchPattern: "*.example.com"}, "example.com", false},
		{v1alpha1.DNSRule{MatchPattern: "*.example.com"}, "a.example.com", true},
		{v1alpha1.DNSRule{MatchPattern: "*.example.com"}, "a.b.example.com", false},
		{v1alpha1.DNSRule{MatchPattern: "api-*.example.com"}, "api-.example.com", true},
		{v1alpha1.DNSRule{MatchPattern: "api-*.example.com"}, "api-eu1.example.com", true},
		{v1alpha1.DNSRule{MatchPattern: "*"}, "", true},
		{v1alpha1.DNSRule{MatchPattern: "*"}, "a.b.c", true},
		{v1alpha1.DNSRule{MatchName: "*.example.com"}, "a.example.com", false},
	} {
		tab, err := CompileDNS(map[L7ID]L7List{1: rules(c.rule)})
		if err != nil {
			t.Fatal(err)
		}
		got, _ := tab.Lookup(1, c.name)
		if (got.Allow == 7) != c.want || (FQDN{Name: string(c.rule.MatchName), Pattern: string(c.rule.MatchPattern)}).Matches(c.name) != c.want {
			t.Errorf("%+v %q: tables %+v, want match %v", c.rule, c.name, got, c.want)
		}
	}
}
