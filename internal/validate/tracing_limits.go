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
	"slices"

	"github.com/palisade-dev/palisade/api/v1alpha1"
)

// The tracing datapath's limits, checked at validation time so that a
// policy that validates also loads: its selectors' values live in maps
// sized by these numbers.
//
// TODO(tracing): use internal/tracing's MaxSelectorsPerHook,
// MaxTermsPerSelector, MaxValuesPerTerm and MaxStringValueLen once the
// datapath exports them from a package this one may import (it must not
// pull in cilium/ebpf).
const (
	// MaxSelectorsPerHook is the number of selectors one hook may have.
	MaxSelectorsPerHook = 64
	// MaxTermsPerSelector is the number of terms (entries of matchArgs,
	// matchReturnArgs, matchPIDs, matchBinaries, matchNamespaces and
	// matchCapabilities together) one selector may have.
	MaxTermsPerSelector = 16
	// MaxValuesPerTerm is the number of values one term may compare with.
	MaxValuesPerTerm = 1000
	// MaxStringValueLen is the longest string value, in bytes, that
	// Equal, Prefix and Postfix (and their negations) compare with: the
	// values are keys of LPM tries.
	MaxStringValueLen = 255
)

// checkLimits reports (PAL517) what of a hook exceeds the datapath's
// limits.
func (c *checker) checkLimits(p *Policy, h *hook) {
	if n := len(h.Selectors); n > MaxSelectorsPerHook {
		c.add(p, "PAL517", h.at("selectors"), "%s has %d selectors; the tracing datapath takes at most %d per hook", h, n, MaxSelectorsPerHook)
	}
	types := map[int32]v1alpha1.ArgType{}
	for _, a := range h.Args {
		if _, ok := types[a.Index]; !ok {
			types[a.Index] = a.Type
		}
	}
	for i := range h.Selectors {
		s := &h.Selectors[i]
		sp := h.at("selectors[%d]", i)
		terms := len(s.MatchArgs) + len(s.MatchReturnArgs) + len(s.MatchPIDs) + len(s.MatchBinaries) + len(s.MatchNamespaces) + len(s.MatchCapabilities)
		if terms > MaxTermsPerSelector {
			c.add(p, "PAL517", sp, "selector has %d terms (matchArgs, matchReturnArgs, matchPIDs, matchBinaries, matchNamespaces and matchCapabilities entries); the tracing datapath takes at most %d per selector", terms, MaxTermsPerSelector)
		}
		values := func(field string, j, n int) {
			if n > MaxValuesPerTerm {
				c.add(p, "PAL517", fmt.Sprintf("%s.%s[%d].values", sp, field, j), "%s[%d] has %d values; the tracing datapath takes at most %d per term", field, j, n, MaxValuesPerTerm)
			}
		}
		args := func(field string, ms []v1alpha1.ArgSelector, ret bool) {
			for j, m := range ms {
				values(field, j, len(m.Values))
				t, ok := types[m.Index]
				if ret && h.returnArg != nil {
					t, ok = h.returnArg.Type, true
				}
				if !ok || classOf(t) != classString || !slices.Contains(stringOps, m.Operator) {
					continue
				}
				for k, v := range m.Values {
					if len(v) > MaxStringValueLen {
						c.add(p, "PAL517", fmt.Sprintf("%s.%s[%d].values[%d]", sp, field, j, k), "%s value is %d bytes long; the tracing datapath compares strings of at most %d bytes", m.Operator, len(v), MaxStringValueLen)
					}
				}
			}
		}
		args("matchArgs", s.MatchArgs, false)
		args("matchReturnArgs", s.MatchReturnArgs, true)
		for j, m := range s.MatchPIDs {
			values("matchPIDs", j, len(m.Values))
		}
		for j, m := range s.MatchBinaries {
			values("matchBinaries", j, len(m.Values))
		}
		for j, m := range s.MatchNamespaces {
			values("matchNamespaces", j, len(m.Values))
		}
		for j, m := range s.MatchCapabilities {
			values("matchCapabilities", j, len(m.Values))
		}
	}
}
