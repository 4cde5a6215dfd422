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

	"github.com/palisade-dev/palisade/api/v1alpha1"
)

// The tracing datapath's limits (internal/tracing, which sets them from
// bpf/tracing/tracing.h), checked at validation time so that a policy that
// validates also loads. They are copied here because this package must
// not import the datapath (it links cilium/ebpf); a test checks that the
// copies equal the datapath's constants.
const (
	// MaxHooksPerUnit is how many hooks a tracing policy has; each symbol
	// of a uprobe counts as one.
	MaxHooksPerUnit = 32
	// MaxArgsPerHook is how many arguments a hook declares.
	MaxArgsPerHook = 6
	// MaxSelectorsPerHook is how many selectors a hook has.
	MaxSelectorsPerHook = 64
	// MaxTermsPerSelector is how many terms (entries of matchArgs,
	// matchReturnArgs, matchPIDs, matchBinaries, matchNamespaces and
	// matchCapabilities together) a selector has.
	MaxTermsPerSelector = 16
	// MaxStringBytes is the longest string Equal and NotEqual (and
	// matchBinaries In and NotIn) compare with, in bytes.
	MaxStringBytes = 255
	// MaxPrefixBytes is the longest string Prefix and Postfix (and their
	// negations, in matchArgs and matchBinaries) compare with, in bytes.
	MaxPrefixBytes = 252
	// MaxIntValues, MaxStringValues, MaxPrefixValues and MaxAddrValues
	// bound the values of all terms of a policy, by the map that holds
	// them: integers (matchPIDs, matchNamespaces, integer Equal and
	// InMap, ports, protocols, families, states), strings compared whole,
	// prefixes and suffixes, and CIDRs. Any one term may use a map up to
	// its bound, far beyond Tetragon's 4 values per term.
	MaxIntValues    = 65536
	MaxStringValues = 16384
	MaxPrefixValues = 16384
	MaxAddrValues   = 16384
)

// valueCounts counts a policy's selector values by the map that holds
// them.
type valueCounts struct {
	ints, strs, prefixes, addrs int
}

// checkLimits reports (PAL517) what of a hook exceeds the datapath's
// limits, and adds its values to n.
func (c *checker) checkLimits(p *Policy, h *hook, n *valueCounts) {
	if len(h.Args) > MaxArgsPerHook {
		c.add(p, "PAL517", h.at("args"), "%s declares %d arguments; the tracing datapath reads at most %d per hook", h, len(h.Args), MaxArgsPerHook)
	}
	if len(h.Selectors) > MaxSelectorsPerHook {
		c.add(p, "PAL517", h.at("selectors"), "%s has %d selectors; the tracing datapath takes at most %d per hook", h, len(h.Selectors), MaxSelectorsPerHook)
	}
	types := map[int32]v1alpha1.ArgType{}
	for _, a := range h.Args {
		if _, ok := types[a.Index]; !ok {
			types[a.Index] = a.Type
		}
	}
	// strValues checks the length of string values and counts them.
	strValues := func(vp string, op string, values []string) {
		limit, count := MaxStringBytes, &n.strs
		switch op {
		case "Prefix", "NotPrefix", "Postfix", "NotPostfix":
			limit, count = MaxPrefixBytes, &n.prefixes
		}
		for k, v := range values {
			if len(v) > limit {
				c.add(p, "PAL517", fmt.Sprintf("%s.values[%d]", vp, k), "%s value is %d bytes long; the tracing datapath compares %s values of at most %d bytes", op, len(v), op, limit)
			}
		}
		*count += len(values)
	}
	for i := range h.Selectors {
		s := &h.Selectors[i]
		sp := h.at("selectors[%d]", i)
		terms := len(s.MatchArgs) + len(s.MatchReturnArgs) + len(s.MatchPIDs) + len(s.MatchBinaries) + len(s.MatchNamespaces) + len(s.MatchCapabilities)
		if terms > MaxTermsPerSelector {
			c.add(p, "PAL517", sp, "selector has %d terms (matchArgs, matchReturnArgs, matchPIDs, matchBinaries, matchNamespaces and matchCapabilities entries); the tracing datapath takes at most %d per selector", terms, MaxTermsPerSelector)
		}
		args := func(field string, ms []v1alpha1.ArgSelector, ret bool) {
			for j, m := range ms {
				t, ok := types[m.Index]
				if ret && h.returnArg != nil {
					t, ok = h.returnArg.Type, true
				}
				if !ok {
					continue
				}
				mp := fmt.Sprintf("%s.%s[%d]", sp, field, j)
				switch classOf(t) {
				case classString:
					strValues(mp, string(m.Operator), m.Values)
				case classInt:
					switch m.Operator {
					case "Equal", "NotEqual", "InMap", "NotInMap":
						n.ints += len(m.Values)
					}
				case classAddr:
					switch m.Operator {
					case "SAddr", "DAddr", "NotSAddr", "NotDAddr":
						n.addrs += len(m.Values)
					case "SPort", "DPort", "NotSPort", "NotDPort", "Protocol", "Family", "State":
						n.ints += len(m.Values)
					}
				}
			}
		}
		args("matchArgs", s.MatchArgs, false)
		args("matchReturnArgs", s.MatchReturnArgs, true)
		for j, m := range s.MatchBinaries {
			op := string(m.Operator)
			switch m.Operator {
			case "In":
				op = "Equal"
			case "NotIn":
				op = "NotEqual"
			}
			strValues(fmt.Sprintf("%s.matchBinaries[%d]", sp, j), op, m.Values)
		}
		for _, m := range s.MatchPIDs {
			n.ints += len(m.Values)
		}
		for _, m := range s.MatchNamespaces {
			n.ints += len(m.Values)
		}
	}
}

// checkUnitLimits reports (PAL517) a policy whose hooks or values exceed
// what one tracing unit holds.
func (c *checker) checkUnitLimits(p *Policy, spec *v1alpha1.TracingPolicySpec, n valueCounts) {
	hooks := len(spec.KProbes) + len(spec.Tracepoints) + len(spec.LSMHooks)
	for _, u := range spec.UProbes {
		hooks += len(u.Symbols)
	}
	if hooks > MaxHooksPerUnit {
		c.add(p, "PAL517", "spec", "%s has %d hooks (each uprobe symbol counts one); the tracing datapath loads at most %d per policy: split it into several policies", p.ID(), hooks, MaxHooksPerUnit)
	}
	for _, l := range []struct {
		what       string
		have, most int
	}{
		{"integer values (matchPIDs, matchNamespaces, integer Equal and InMap, ports, protocols, families, states)", n.ints, MaxIntValues},
		{"whole-string values (Equal, NotEqual, matchBinaries In and NotIn)", n.strs, MaxStringValues},
		{"prefix and suffix values (Prefix, Postfix and their negations)", n.prefixes, MaxPrefixValues},
		{"address values (SAddr, DAddr and their negations)", n.addrs, MaxAddrValues},
	} {
		if l.have > l.most {
			c.add(p, "PAL517", "spec", "%s has %d %s; the tracing datapath holds at most %d per policy: split it into several policies", p.ID(), l.have, l.what, l.most)
		}
	}
}
