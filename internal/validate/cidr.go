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
	"net/netip"
	"strconv"
	"strings"

	"github.com/palisade-dev/palisade/api/v1alpha1"
)

// parsePrefix parses a CIDR or a plain address (a single host).
func parsePrefix(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		return netip.ParsePrefix(s) // rejects zones
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	if a.Zone() != "" {
		return netip.Prefix{}, fmt.Errorf("IPv6 zone %q has no meaning in a policy", a.Zone())
	}
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// checkCIDR reports malformed CIDRs (PAL350), host bits (PAL351) and
// prefixes that match every address (PAL353).
func (c *checker) checkCIDR(p *Policy, path, s string) (netip.Prefix, bool) {
	pfx, err := parsePrefix(s)
	if err != nil {
		c.add(p, "PAL350", path, "%q: %v", s, err)
		return netip.Prefix{}, false
	}
	if pfx.Masked() != pfx {
		c.add(p, "PAL351", path, "%q has host bits set; the prefix is %s", s, pfx.Masked())
		return pfx.Masked(), true
	}
	if pfx.Bits() == 0 {
		c.add(p, "PAL353", path, "%q matches every %s address", s, map[bool]string{true: "IPv4", false: "IPv6"}[pfx.Addr().Is4()])
	}
	return pfx, true
}

// checkCIDRSet checks a CIDR and that each except lies inside it (PAL352).
func (c *checker) checkCIDRSet(p *Policy, path string, set v1alpha1.CIDRRule) {
	outer, ok := c.checkCIDR(p, path+".cidr", string(set.CIDR))
	for i, e := range set.Except {
		ep := path + ".except[" + strconv.Itoa(i) + "]"
		inner, ok2 := c.checkCIDR(p, ep, string(e))
		if !ok || !ok2 {
			continue
		}
		if inner.Addr().Is4() != outer.Addr().Is4() || inner.Bits() < outer.Bits() || !outer.Contains(inner.Addr()) {
			c.add(p, "PAL352", ep, "except %s is not inside %s", inner, outer)
		}
	}
}
