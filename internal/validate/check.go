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

import (
	"fmt"
	"maps"
	"slices"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/palisade-dev/palisade/internal/diag"
	"github.com/palisade-dev/palisade/internal/policy"
)

// checker collects the diagnostics of the semantic checks.
type checker struct {
	diags diag.List
	hooks HookChecker
}

// add reports a finding at the field path of a policy.
func (c *checker) add(p *Policy, code, path, format string, args ...any) {
	d := diag.New(code, p.PosOf(path), format, args...)
	d.Path = path
	d.Object = p.ID()
	c.diags = append(c.diags, d)
}

// Check runs the semantic checks on typed policies.
func Check(policies []*Policy) diag.List { return CheckWith(policies, Options{}) }

// CheckWith runs the semantic checks on typed policies, and the hook
// checks of opts.Hooks when set.
func CheckWith(policies []*Policy, opts Options) diag.List {
	c := &checker{hooks: opts.Hooks}
	c.checkDuplicates(policies)
	for _, p := range policies {
		if _, _, _, ok := p.Network(); ok {
			c.checkNetwork(p)
		}
		if _, ok := p.Tracing(); ok {
			c.checkTracing(p)
		}
		c.checkCapability(p)
	}
	return c.diags
}

// checkDuplicates reports policies of the same kind, namespace and name:
// applied to a cluster, one would silently replace the other.
func (c *checker) checkDuplicates(policies []*Policy) {
	seen := map[string]*Policy{}
	for _, p := range policies {
		if first, ok := seen[p.ID()]; ok {
			c.add(p, "PAL103", "metadata.name", "%s is also declared at %s", p.ID(), first.Pos)
			continue
		}
		seen[p.ID()] = p
	}
}

// checkSelector finds malformed requirements (PAL102) and selectors that
// no set of labels can satisfy (PAL101).
func (c *checker) checkSelector(p *Policy, path string, s metav1.LabelSelector) {
	// A key the engine cannot read would pass here and fail every node's
	// compile: refuse it now, with the engine's own rule.
	for _, k := range slices.Sorted(maps.Keys(s.MatchLabels)) {
		if _, err := policy.SelectorKey(k); err != nil {
			c.add(p, "PAL108", path+".matchLabels", "%v", err)
		}
	}
	for i, e := range s.MatchExpressions {
		if _, err := policy.SelectorKey(e.Key); err != nil {
			c.add(p, "PAL108", fmt.Sprintf("%s.matchExpressions[%d]", path, i), "%v", err)
		}
	}
	// allowed[key] is the set of values the key may take (nil: any value);
	// present[key] says whether the key must (true) or must not (false)
	// be present.
	allowed := map[string][]string{}
	present := map[string]bool{}
	never := func(i int, format string, args ...any) {
		c.add(p, "PAL101", fmt.Sprintf("%s.matchExpressions[%d]", path, i), "selector can never match: "+format, args...)
	}
	for k, v := range s.MatchLabels {
		allowed[k] = []string{v}
		present[k] = true
	}
	for i, e := range s.MatchExpressions {
		ep := fmt.Sprintf("%s.matchExpressions[%d]", path, i)
		switch e.Operator {
		case metav1.LabelSelectorOpIn, metav1.LabelSelectorOpNotIn:
			if len(e.Values) == 0 {
				c.add(p, "PAL102", ep, "operator %s on key %q needs at least one value", e.Operator, e.Key)
				continue
			}
		case metav1.LabelSelectorOpExists, metav1.LabelSelectorOpDoesNotExist:
			if len(e.Values) > 0 {
				c.add(p, "PAL102", ep+".values", "operator %s on key %q takes no values", e.Operator, e.Key)
				continue
			}
		}
		must, known := present[e.Key]
		switch e.Operator {
		case metav1.LabelSelectorOpIn:
			if known && !must {
				never(i, "%q must be absent and have a value in %v", e.Key, e.Values)
				continue
			}
			if cur, ok := allowed[e.Key]; ok && cur != nil {
				inter := intersect(cur, e.Values)
				if len(inter) == 0 {
					never(i, "%q must be one of %v and one of %v", e.Key, cur, e.Values)
					continue
				}
				allowed[e.Key] = inter
			} else {
				allowed[e.Key] = slices.Clone(e.Values)
			}
			present[e.Key] = true
		case metav1.LabelSelectorOpNotIn:
			if cur, ok := allowed[e.Key]; ok && cur != nil {
				rest := subtract(cur, e.Values)
				if len(rest) == 0 {
					never(i, "%q must be one of %v but none of %v", e.Key, cur, e.Values)
					continue
				}
				allowed[e.Key] = rest
			}
		case metav1.LabelSelectorOpExists:
			if known && !must {
				never(i, "%q must both exist and not exist", e.Key)
				continue
			}
			present[e.Key] = true
			if _, ok := allowed[e.Key]; !ok {
				allowed[e.Key] = nil
			}
		case metav1.LabelSelectorOpDoesNotExist:
			if known && must {
				never(i, "%q must both exist and not exist", e.Key)
				continue
			}
			present[e.Key] = false
		}
	}
}

func intersect(a, b []string) []string {
	var out []string
	for _, x := range a {
		if slices.Contains(b, x) {
			out = append(out, x)
		}
	}
	return out
}

func subtract(a, b []string) []string {
	var out []string
	for _, x := range a {
		if !slices.Contains(b, x) {
			out = append(out, x)
		}
	}
	return out
}
