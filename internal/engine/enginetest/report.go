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

package enginetest

import (
	"fmt"
	"slices"
	"strings"

	"github.com/palisade-dev/palisade/internal/engine"
)

// Shrink reduces pols to a minimal set (policies, then rules, then L4
// entries) for which fails still holds. pols are not changed.
func Shrink(pols []*engine.Policy, fails func([]*engine.Policy) bool) []*engine.Policy {
	for i := 0; i < len(pols); {
		cand := slices.Delete(slices.Clone(pols), i, i+1)
		if fails(cand) {
			pols = cand
			continue
		}
		i++
	}
	for pi := range pols {
		for ri := 0; ri < len(pols[pi].Rules); {
			p := *pols[pi]
			p.Rules = slices.Delete(slices.Clone(p.Rules), ri, ri+1)
			cand := slices.Clone(pols)
			cand[pi] = &p
			if fails(cand) {
				pols = cand
				continue
			}
			ri++
		}
		for ri := range pols[pi].Rules {
			for li := 0; len(pols[pi].Rules[ri].L4) > 1 && li < len(pols[pi].Rules[ri].L4); {
				r := *pols[pi].Rules[ri]
				r.L4 = slices.Delete(slices.Clone(r.L4), li, li+1)
				p := *pols[pi]
				p.Rules = slices.Clone(p.Rules)
				p.Rules[ri] = &r
				cand := slices.Clone(pols)
				cand[pi] = &p
				if fails(cand) {
					pols = cand
					continue
				}
				li++
			}
		}
	}
	return pols
}

// FormatPolicies renders the policies of ir for a reproducer.
func FormatPolicies(ir *engine.IR) string {
	var b strings.Builder
	for _, p := range ir.Policies {
		subj := ""
		if p.Subject.Nodes != nil {
			subj = "nodes " + p.Subject.Nodes.String()
		} else {
			subj = "endpoints " + p.Subject.Endpoints.String()
		}
		fmt.Fprintf(&b, "%s audit=%v defaultDeny(ingress=%v egress=%v) subject: %s\n", p.Origin.Policy(), p.Audit, p.DefaultDeny[engine.Ingress], p.DefaultDeny[engine.Egress], subj)
		for _, r := range p.Rules {
			fmt.Fprintf(&b, "  %s id=%d %s %s peer=%s ports=%s\n", r.Origin.Path, r.ID, r.Direction, r.Action, formatPeer(r.Peer), formatL4(r.L4))
		}
	}
	return b.String()
}

func formatPeer(p engine.Peer) string {
	if p.Any {
		return "any"
	}
	var parts []string
	for _, s := range p.Endpoints {
		parts = append(parts, "sel{"+s.String()+"}")
	}
	for _, e := range p.Entities {
		parts = append(parts, "entity:"+string(e))
	}
	for _, c := range p.CIDRs {
		s := "cidr:" + c.Prefix.String()
		for _, e := range c.Except {
			s += "!" + e.String()
		}
		parts = append(parts, s)
	}
	for _, f := range p.FQDNs {
		parts = append(parts, "fqdn:"+f.Name+f.Pattern)
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ",")
}

func formatL4(ls []engine.L4) string {
	if ls == nil {
		return "all"
	}
	var parts []string
	for _, l := range ls {
		s := fmt.Sprintf("%s/%d-%d", l.Proto, l.Lo, l.Hi)
		if l.Name != "" {
			s = fmt.Sprintf("%s/%s", l.Proto, l.Name)
		}
		if l.L7 != nil {
			s += fmt.Sprintf("+l7%+v", *l.L7)
		}
		parts = append(parts, s)
	}
	return strings.Join(parts, ",")
}

// FormatFlow renders a flow for a reproducer.
func FormatFlow(f engine.Flow) string {
	s := fmt.Sprintf("%s -> %s:%d/%s", f.Src, f.Dst, f.Port, f.Proto)
	if f.Reply {
		s += " reply"
	}
	if f.Request != nil {
		switch {
		case f.Request.HTTP != nil:
			s += fmt.Sprintf(" http %s %s", f.Request.HTTP.Method, f.Request.HTTP.Path)
		case f.Request.DNS != nil:
			s += " dns " + f.Request.DNS.Name
		}
	}
	return s
}

// FormatCluster renders a cluster's workloads, with their identities in
// ids, and its DNS answers for a reproducer.
func FormatCluster(c *engine.Cluster, ids engine.IdentityTable) string {
	var b strings.Builder
	for _, e := range c.Endpoints {
		id := engine.Identity(0)
		if !e.Unmanaged {
			id, _ = ids.Lookup(c.WorkloadLabels(&e))
		}
		fmt.Fprintf(&b, "  %s ips=%v node=%s unmanaged=%v identity=%d labels=%v sa=%q ports=%v\n", e.ID(), e.IPs, e.Node, e.Unmanaged, id, e.Labels, e.ServiceAccount, e.Ports)
	}
	fmt.Fprintf(&b, "  dns=%v\n", c.DNS)
	return b.String()
}
