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

package guard

import (
	"strconv"

	"github.com/palisade-dev/palisade/api/v1alpha1"
)

// l7 statuses of one allowed port.
const (
	l7None        = iota // no L7 rules: every request on the port
	l7Restricted         // L7 rules, none of which matches every request
	l7AllRequests        // L7 rules, one of which matches every request
)

// anyPath are the HTTP path patterns that match every path (Cilium
// anchors them, and every request path starts with "/").
var anyPath = map[string]bool{"": true, ".*": true, "^.*$": true, ".*$": true, "^.*": true, ".+": true, "/.*": true, "^/.*": true, "/.*$": true, "^/.*$": true, "/.+": true}

// anyMethod are the HTTP method patterns that match every method.
var anyMethod = map[string]bool{"": true, ".*": true, "^.*$": true, ".+": true}

// l7Status classifies the L7 rules of a port rule and names their protocol.
func l7Status(r *v1alpha1.L7Rules) (kind string, status int) {
	if r == nil {
		return "", l7None
	}
	switch {
	case len(r.HTTP) > 0:
		for _, h := range r.HTTP {
			if anyMethod[string(h.Method)] && anyPath[h.Path] && (h.Host == "" || h.Host == "*") && len(h.Headers) == 0 {
				return "http", l7AllRequests
			}
		}
		return "http", l7Restricted
	case len(r.DNS) > 0:
		for _, d := range r.DNS {
			if d.MatchPattern == "*" {
				return "dns", l7AllRequests
			}
		}
		return "dns", l7Restricted
	case len(r.Kafka) > 0:
		for _, k := range r.Kafka {
			if k.Role == "" && k.APIKey == "" && k.APIVersion == "" && k.ClientID == "" && k.Topic == "" {
				return "kafka", l7AllRequests
			}
		}
		return "kafka", l7Restricted
	}
	return "", l7None
}

// l7Key identifies an allowed port across rules.
type l7Key struct {
	dir, proto, named string
	lo, hi            int
}

// l7Port is one allowed port of one port rule with the status of its L7
// rules.
type l7Port struct {
	key    l7Key
	span   portSpan
	dir    string
	kind   string
	status int
	// rule and index locate the port rule; its path is made only for a
	// fact (path).
	rule  *netRule
	index int
}

// path is the field path of the port's port rule.
func (p *l7Port) path() string {
	return p.rule.Path + ".toPorts[" + strconv.Itoa(p.index) + "]"
}

func l7Ports(rules []*netRule) []l7Port {
	n := 0
	for _, r := range rules {
		if !r.Deny {
			for _, pr := range r.Ports {
				n += len(pr.Ports)
			}
		}
	}
	out := make([]l7Port, 0, n)
	for _, r := range rules {
		if r.Deny {
			continue
		}
		for i, pr := range r.Ports {
			kind, st := l7Status(pr.Rules)
			for _, p := range pr.Ports {
				s := span(p)
				out = append(out, l7Port{
					key:  l7Key{r.direction, s.proto, s.named, s.lo, s.hi},
					span: s, dir: r.direction, kind: kind, status: st,
					rule: r, index: i,
				})
			}
		}
	}
	return out
}

// l7MatchAll finds ports whose L7 restriction after the change matches
// every request: a new match-everything rule, or a port that had only
// restricting L7 rules before and is now also allowed without any.
func l7MatchAll(br, ar []*netRule) []L7Fact {
	if !hasL7(br) && !hasL7(ar) {
		return []L7Fact{} // both facts need L7 rules, after or before
	}
	type was struct {
		allRestricted, anyMatchAll bool
		kind                       string
	}
	before := map[l7Key]*was{}
	for _, p := range l7Ports(br) {
		w := before[p.key]
		if w == nil {
			w = &was{allRestricted: true}
			before[p.key] = w
		}
		w.allRestricted = w.allRestricted && p.status == l7Restricted
		w.anyMatchAll = w.anyMatchAll || p.status == l7AllRequests
		if w.kind == "" {
			w.kind = p.kind
		}
	}
	out := []L7Fact{}
	type seenKey struct {
		l7Key
		reason string
	}
	seen := map[seenKey]bool{}
	ports := l7Ports(ar)
	for i := range ports {
		p := &ports[i]
		w := before[p.key]
		var f L7Fact
		switch {
		case p.status == l7AllRequests && (w == nil || !w.anyMatchAll):
			f = L7Fact{L7: p.kind, Reason: "match-all-rule"}
		case p.status == l7None && w != nil && w.allRestricted:
			f = L7Fact{L7: w.kind, Reason: "l7-removed"}
		default:
			continue
		}
		if seen[seenKey{p.key, f.Reason}] {
			continue
		}
		seen[seenKey{p.key, f.Reason}] = true
		f.Direction, f.Protocol, f.Port, f.EndPort, f.NamedPort, f.Path = p.dir, p.span.proto, p.span.lo, p.span.hi, p.span.named, p.path()
		out = append(out, f)
	}
	return out
}

// hasL7 reports whether any allow rule restricts a port by L7 rules.
func hasL7(rules []*netRule) bool {
	for _, r := range rules {
		if r.Deny {
			continue
		}
		for _, pr := range r.Ports {
			if pr.Rules != nil {
				return true
			}
		}
	}
	return false
}
