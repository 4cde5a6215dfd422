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

package observer

import (
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/palisade-dev/palisade/internal/flows"
)

// Filter selects flows, as hubble observe's flags do: every field that is
// set must match (AND), and a field with several values matches when any
// does (OR). From* match the source, To* the destination, and the
// unprefixed ones either end.
type Filter struct {
	// Pod is "namespace/name", or "name" in any namespace; a trailing
	// "*" matches by prefix.
	Pod     []string `json:"pod,omitempty"`
	FromPod []string `json:"fromPod,omitempty"`
	ToPod   []string `json:"toPod,omitempty"`

	Namespace     []string `json:"namespace,omitempty"`
	FromNamespace []string `json:"fromNamespace,omitempty"`
	ToNamespace   []string `json:"toNamespace,omitempty"`

	// Label is "key=value", or "key" for any value; for a reserved
	// identity, "reserved:<entity>" matches its entity.
	Label     []string `json:"label,omitempty"`
	FromLabel []string `json:"fromLabel,omitempty"`
	ToLabel   []string `json:"toLabel,omitempty"`

	// IP is an address or a prefix.
	IP     []string `json:"ip,omitempty"`
	FromIP []string `json:"fromIP,omitempty"`
	ToIP   []string `json:"toIP,omitempty"`

	Port     []uint16 `json:"port,omitempty"`
	FromPort []uint16 `json:"fromPort,omitempty"`
	ToPort   []uint16 `json:"toPort,omitempty"`

	// Protocol is TCP, UDP, SCTP, ICMP or ICMPv6 (any case).
	Protocol   []string           `json:"protocol,omitempty"`
	Verdict    []flows.Verdict    `json:"verdict,omitempty"`
	DropReason []flows.DropReason `json:"dropReason,omitempty"`
	// Policy is "name", "namespace/name" or "Kind/namespace/name"
	// ("Kind/name" for a cluster-scoped policy); it matches the deciding
	// policy and, for a default-deny drop, the isolating ones.
	Policy []string `json:"policy,omitempty"`
	Node   []string `json:"node,omitempty"`
}

// Match reports whether f passes the filter.
func (flt *Filter) Match(f *flows.Flow) bool {
	if flt == nil {
		return true
	}
	src, dst := &f.Source, &f.Destination
	return either(flt.Pod, src, dst, podIs) && each(flt.FromPod, src, podIs) && each(flt.ToPod, dst, podIs) &&
		either(flt.Namespace, src, dst, namespaceIs) && each(flt.FromNamespace, src, namespaceIs) && each(flt.ToNamespace, dst, namespaceIs) &&
		either(flt.Label, src, dst, labelIs) && each(flt.FromLabel, src, labelIs) && each(flt.ToLabel, dst, labelIs) &&
		either(flt.IP, src, dst, ipIs) && each(flt.FromIP, src, ipIs) && each(flt.ToIP, dst, ipIs) &&
		eitherPort(flt.Port, src, dst) && portIn(flt.FromPort, src) && portIn(flt.ToPort, dst) &&
		anyOf(flt.Protocol, func(p string) bool { return strings.EqualFold(p, f.Protocol) }) &&
		(len(flt.Verdict) == 0 || slices.Contains(flt.Verdict, f.Verdict)) &&
		(len(flt.DropReason) == 0 || slices.Contains(flt.DropReason, f.DropReason)) &&
		anyOf(flt.Policy, func(p string) bool { return policyIs(f, p) }) &&
		(len(flt.Node) == 0 || slices.Contains(flt.Node, f.Node))
}

func anyOf(vals []string, ok func(string) bool) bool {
	return len(vals) == 0 || slices.ContainsFunc(vals, ok)
}

func each(vals []string, e *flows.Endpoint, is func(*flows.Endpoint, string) bool) bool {
	return anyOf(vals, func(v string) bool { return is(e, v) })
}

func either(vals []string, a, b *flows.Endpoint, is func(*flows.Endpoint, string) bool) bool {
	return anyOf(vals, func(v string) bool { return is(a, v) || is(b, v) })
}

func podIs(e *flows.Endpoint, v string) bool {
	if e.Pod == "" {
		return false
	}
	name := e.Pod
	if strings.Contains(v, "/") {
		name = e.Namespace + "/" + e.Pod
	}
	if p, ok := strings.CutSuffix(v, "*"); ok {
		return strings.HasPrefix(name, p)
	}
	return name == v
}

func namespaceIs(e *flows.Endpoint, v string) bool { return e.Namespace != "" && e.Namespace == v }

func labelIs(e *flows.Endpoint, v string) bool {
	if ent, ok := strings.CutPrefix(v, "reserved:"); ok {
		return e.Entity == ent
	}
	k, val, hasVal := strings.Cut(v, "=")
	got, ok := e.Labels[k]
	return ok && (!hasVal || got == val)
}

func ipIs(e *flows.Endpoint, v string) bool {
	addr, err := netip.ParseAddr(e.IP)
	if err != nil {
		return false
	}
	if p, err := netip.ParsePrefix(v); err == nil {
		return p.Contains(addr)
	}
	want, err := netip.ParseAddr(v)
	return err == nil && want == addr
}

func portIn(ports []uint16, e *flows.Endpoint) bool {
	return len(ports) == 0 || slices.Contains(ports, e.Port)
}

func eitherPort(ports []uint16, a, b *flows.Endpoint) bool {
	return len(ports) == 0 || slices.Contains(ports, a.Port) || slices.Contains(ports, b.Port)
}

func policyIs(f *flows.Flow, v string) bool {
	if f.Policy != nil && policyNamed(f.Policy, v) {
		return true
	}
	for i := range f.Isolating {
		if policyNamed(&f.Isolating[i], v) {
			return true
		}
	}
	return false
}

func policyNamed(p *flows.Policy, v string) bool {
	switch v {
	case p.Name, p.Namespace + "/" + p.Name, p.Kind + "/" + p.Namespace + "/" + p.Name:
		return true
	}
	return p.Namespace == "" && v == p.Kind+"/"+p.Name
}

// ParsePorts reads port numbers, for flags.
func ParsePorts(ss []string) ([]uint16, error) {
	out := make([]uint16, 0, len(ss))
	for _, s := range ss {
		n, err := strconv.ParseUint(s, 10, 16)
		if err != nil {
			return nil, err
		}
		out = append(out, uint16(n))
	}
	return out, nil
}
