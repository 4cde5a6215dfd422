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
	"net/netip"
	"reflect"

	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/palisade-dev/palisade/api/v1alpha1"
)

// checkShadowed warns about allow rules that a deny rule of the same policy
// fully covers, peers and ports: deny wins, so the allow never takes
// effect. Only what can be decided from the policy alone is reported.
func (c *checker) checkShadowed(p *Policy, rs []*rule) {
	for _, a := range rs {
		if a.Deny {
			continue
		}
		for _, d := range rs {
			if d.Deny && coversPeers(d, a) && coversPorts(d, a) {
				c.add(p, "PAL450", a.Path, "every peer and port this rule allows is denied by %s", d.Path)
				break
			}
		}
	}
}

func hasEntity(r *rule, es ...v1alpha1.Entity) bool {
	for _, e := range r.Entities {
		for _, x := range es {
			if e == x {
				return true
			}
		}
	}
	return false
}

// coversPeers reports whether deny rule d matches every peer of allow rule a.
func coversPeers(d, a *rule) bool {
	if !d.HasPeers() || hasEntity(d, v1alpha1.EntityAll) {
		return true
	}
	if !a.HasPeers() || len(a.FQDNs) > 0 {
		return false
	}
	for _, e := range a.Entities {
		if !hasEntity(d, e) {
			return false
		}
	}
	for _, s := range a.Endpoints {
		covered := hasEntity(d, v1alpha1.EntityCluster)
		for _, ds := range d.Endpoints {
			if reflect.DeepEqual(ds, s) || (len(ds.MatchLabels) == 0 && len(ds.MatchExpressions) == 0) {
				covered = true
			}
		}
		if !covered {
			return false
		}
	}
	prefixes := make([]string, 0, len(a.CIDRs)+len(a.CIDRSets))
	for _, x := range a.CIDRs {
		prefixes = append(prefixes, string(x))
	}
	for _, x := range a.CIDRSets {
		prefixes = append(prefixes, string(x.CIDR))
	}
	for _, s := range prefixes {
		if !cidrCovered(d, s) {
			return false
		}
	}
	return true
}

// cidrCovered reports whether d's CIDRs (less their excepts) or its world
// entity contain the whole prefix s.
func cidrCovered(d *rule, s string) bool {
	if hasEntity(d, v1alpha1.EntityWorld) {
		return true
	}
	in, err := parsePrefix(s)
	if err != nil {
		return false
	}
	contains := func(outer netip.Prefix) bool {
		return outer.Addr().Is4() == in.Addr().Is4() && outer.Bits() <= in.Bits() && outer.Contains(in.Addr())
	}
	for _, x := range d.CIDRs {
		if out, err := parsePrefix(string(x)); err == nil && contains(out.Masked()) {
			return true
		}
	}
	for _, x := range d.CIDRSets {
		out, err := parsePrefix(string(x.CIDR))
		if err != nil || !contains(out.Masked()) {
			continue
		}
		overlaps := false
		for _, e := range x.Except {
			if ex, err := parsePrefix(string(e)); err == nil && ex.Overlaps(in) {
				overlaps = true
			}
		}
		if !overlaps {
			return true
		}
	}
	return false
}

// coversPorts reports whether deny rule d applies to every port (and ICMP
// type) allow rule a allows.
func coversPorts(d, a *rule) bool {
	if len(d.Ports) == 0 && len(d.ICMPs) == 0 {
		return true // the deny applies to all traffic of its peers
	}
	if len(a.Ports) == 0 || len(a.ICMPs) > 0 {
		return false
	}
	for _, ap := range a.Ports {
		if len(ap.Ports) == 0 {
			return false
		}
		for _, x := range ap.Ports {
			if !portCovered(d, x) {
				return false
			}
		}
	}
	return true
}

func portCovered(d *rule, x v1alpha1.PortProtocol) bool {
	for _, dp := range d.Ports {
		if len(dp.Ports) == 0 {
			return true
		}
		for _, y := range dp.Ports {
			if protocol(y.Protocol) != v1alpha1.ProtocolAny && protocol(y.Protocol) != protocol(x.Protocol) {
				continue
			}
			if y.Port.Type == intstr.String || x.Port.Type == intstr.String {
				if y.Port == x.Port && y.EndPort == nil && x.EndPort == nil {
					return true
				}
				continue
			}
			if y.Port.IntVal == 0 {
				return true
			}
			lo, hi := span(x)
			dlo, dhi := span(y)
			if lo == 0 {
				continue // x means every port; only port 0 covers it
			}
			if dlo <= lo && hi <= dhi {
				return true
			}
		}
	}
	return false
}

func span(p v1alpha1.PortProtocol) (int32, int32) {
	lo := p.Port.IntVal
	if p.EndPort != nil {
		return lo, *p.EndPort
	}
	return lo, lo
}
