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

package l7bench

import (
	"fmt"

	"github.com/palisade-dev/palisade/api/v1alpha1"
	"github.com/palisade-dev/palisade/internal/engine"
)

// RulesPerAllow is how many HTTP rules each allow rule of Rules carries.
const RulesPerAllow = 32

// FirstRule is the RuleID of Rules' first allow.
const FirstRule engine.RuleID = 100

var methods = []v1alpha1.HTTPMethod{"GET", "POST", "PUT", "DELETE"}

// Rules returns an L7 list of n HTTP rules (n ≥ 1) spread over allow
// rules of at most RulesPerAllow rules each, in RuleID order. The rules
// mix what the schema has: methods, path patterns of two shapes, exact
// hosts on every other rule, an exact-value header on every fourth (at
// most 32 distinct). Only the last rule admits Request(n); every other
// rule names another service in its path, so every request of the
// benchmark is decided against the whole list.
func Rules(n int) engine.L7List {
	if n < 1 {
		panic(fmt.Sprintf("l7bench.Rules(%d): a list needs at least one rule", n))
	}
	var list engine.L7List
	for i := 0; i < n; i++ {
		var r v1alpha1.HTTPRule
		if i == n-1 {
			r = v1alpha1.HTTPRule{Method: "GET", Path: fmt.Sprintf("/api/v1/svc%d/items/[0-9]+", i),
				Host: fmt.Sprintf("svc%d.internal", i), Headers: []v1alpha1.HTTPHeader{"X-Tenant: bench"}}
		} else {
			r.Method = methods[i%len(methods)]
			r.Path = fmt.Sprintf("/api/v%d/svc%d/items/[0-9]+", i%3+1, i)
			if i%5 == 0 {
				r.Path = fmt.Sprintf("/static/svc%d/.*", i)
			}
			if i%2 == 0 {
				r.Host = fmt.Sprintf("svc%d.internal", i)
			}
			if i%4 == 0 {
				r.Headers = []v1alpha1.HTTPHeader{v1alpha1.HTTPHeader(fmt.Sprintf("X-Tenant: t%d", i%32))}
			}
		}
		if i%RulesPerAllow == 0 {
			list = append(list, engine.L7Allow{Rule: FirstRule + engine.RuleID(i/RulesPerAllow), Rules: &v1alpha1.L7Rules{}})
		}
		a := list[len(list)-1].Rules
		a.HTTP = append(a.HTTP, r)
	}
	return list
}

// Request returns the request the benchmark sends for Rules(n): admitted
// by the list's last rule only.
func Request(n int) string {
	return fmt.Sprintf("GET /api/v1/svc%d/items/42 HTTP/1.1\r\nHost: svc%d.internal\r\nUser-Agent: l7bench\r\nAccept: */*\r\nX-Tenant: bench\r\n\r\n", n-1, n-1)
}

// Refused returns a request that Rules(n) refuses (the path of no rule),
// which the benchmark sends to check that a policy is in force.
func Refused(n int) string {
	return fmt.Sprintf("GET /api/v1/svc%d/admin HTTP/1.1\r\nHost: svc%d.internal\r\nUser-Agent: l7bench\r\nAccept: */*\r\nX-Tenant: bench\r\n\r\n", n-1, n-1)
}

// Decide decides an HTTP request against an L7 list as the engine does
// for one list (engine.MatchL7 per allow rule, audit-mode allows left
// out; a list of audit-mode allows only does not restrict): it returns
// whether the request is allowed and the deciding rule (the lowest that
// admits it, else the lowest that refused it).
func Decide(list engine.L7List, q *engine.HTTPRequest) (bool, engine.RuleID) {
	req := &engine.Request{HTTP: q}
	var refused engine.RuleID
	enforcing := false
	for _, a := range list {
		if a.Audit {
			continue
		}
		enforcing = true
		if a.Rules == nil || engine.MatchL7(a.Rules, req) {
			return true, a.Rule
		}
		if refused == 0 {
			refused = a.Rule
		}
	}
	return !enforcing, refused
}
