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

package importer

import (
	"regexp"
	"slices"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// portName is a named container port (IANA service name).
var portName = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)

// protocols maps the L4 protocols Palisade matches; Cilium's ICMP, ICMPv6,
// VRRP and IGMP port protocols have no Palisade equivalent.
var protocols = map[string]bool{"TCP": true, "UDP": true, "SCTP": true, "ANY": true}

// ciliumPorts translates a rule's toPorts into r. It returns whether any
// port rule was written.
func (t *tr) ciliumPorts(e entry, r *val, deny bool) bool {
	mark := t.errs()
	its, ok := t.items(e)
	if !ok {
		return false
	}
	l := list(t.pos(e.val), e.path)
	for _, it := range its {
		if p := t.ciliumPortRule(it, deny); p != nil {
			l.add(p)
		}
	}
	if len(its) > 0 && len(l.items) == 0 && !t.failedSince(mark) {
		t.fail(e.key, e.path, "no port of %s can be imported, and a rule without toPorts applies to every port", e.path)
	}
	r.setList("toPorts", l)
	return len(l.items) > 0
}

// ciliumPortRule translates one element of toPorts. It returns nil when
// every port of it was left out (which only narrows an allow rule; the
// caller refuses the rule if nothing is left).
func (t *tr) ciliumPortRule(e entry, deny bool) *val {
	p := obj(t.pos(e.val), e.path)
	var (
		rules *entry
		tls   []entry
		empty bool
	)
	table := []field{
		{"ports", func(e entry) {
			its, ok := t.items(e)
			if !ok {
				return
			}
			l := list(t.pos(e.val), e.path)
			for _, it := range its {
				if pp := t.port(it, deny, false); pp != nil {
					l.add(pp)
				}
			}
			if len(its) > 0 && len(l.items) == 0 {
				empty = true
			}
			p.setList("ports", l)
		}},
	}
	if !deny {
		table = append(table,
			field{"rules", func(e entry) { rules = &e }},
			field{"terminatingTLS", func(e entry) { tls = append(tls, e) }},
			field{"originatingTLS", func(e entry) { tls = append(tls, e) }},
			field{"serverNames", func(e entry) {
				if its, _ := t.items(e); len(its) > 0 {
					t.fail(e.key, e.path, "serverNames restricts the port to TLS connections for these server names; Palisade cannot match TLS server names, and leaving it out would allow every server on the port")
				}
			}},
			field{"listener", func(e entry) {
				t.fail(e.key, e.path, "listener redirects the traffic to an Envoy listener, which may filter or reroute it; Palisade runs no proxy, and allowing the port without it could let through what the listener stops")
			}},
		)
	}
	t.walk(e.val, e.path, "a port rule", table)
	if rules != nil {
		if l7 := t.l7(*rules); l7 != nil && len(l7.fields) > 0 {
			p.set("rules", l7)
		}
	}
	for _, x := range tls {
		if x.name == "originatingTLS" {
			t.drop(x, "Palisade does not originate TLS; the connection leaves as the endpoint sent it, and the port allows nothing the source denies")
			continue
		}
		if rules != nil {
			t.drop(x, "Palisade does not terminate or originate TLS; the L7 rules on this port then see encrypted traffic, which no rule matches, so the port allows less than the source")
		} else {
			t.drop(x, "Palisade does not terminate or originate TLS; the port is allowed at L4 as the source allows it")
		}
	}
	if empty {
		// Every port of it had a protocol Palisade cannot match.
		return nil
	}
	p.sortBy("ports", "rules")
	return p
}

// port translates one {port, endPort, protocol}. k8s says the source is a
// Kubernetes NetworkPolicy, whose protocol defaults to TCP (Cilium's and
// Palisade's default to ANY). It returns nil for a port whose protocol
// Palisade cannot match: left out of an allow rule that narrows it, so it
// is a warning; left out of a deny rule it would widen the policy.
func (t *tr) port(e entry, deny, k8s bool) *val {
	out := obj(t.pos(e.val), e.path)
	var (
		num     *val
		proto   string
		protoAt entry
	)
	t.walk(e.val, e.path, "a port", []field{
		{"port", func(e entry) {
			num = t.portValue(e, k8s)
		}},
		{"endPort", func(e entry) {
			n, ok := t.integer(e)
			if !ok {
				return
			}
			if n < 1 || n > 65535 {
				t.fail(e.val, e.path, "endPort %d is not between 1 and 65535", n)
				return
			}
			out.set("endPort", intv(n, t.pos(e.val), e.path))
		}},
		{"protocol", func(e entry) {
			s, ok := t.str(e)
			if !ok {
				return
			}
			proto, protoAt = s, e
		}},
	})
	if num == nil {
		num = intv(0, t.pos(e.val), e.path+".port")
	}
	out.set("port", num)
	switch up := strings.ToUpper(proto); {
	case proto == "" && k8s:
		out.set("protocol", strv("TCP", t.pos(e.val), e.path+".protocol"))
	case proto == "":
	case protocols[up]:
		if up != proto {
			t.note(protoAt.val, protoAt.path, "protocol %q written as %q", proto, up)
		}
		out.set("protocol", strv(up, t.pos(protoAt.val), protoAt.path))
	case deny:
		t.fail(protoAt.val, protoAt.path, "protocol %q has no Palisade equivalent, and leaving this port out of a deny rule would let its traffic through", proto)
		return nil
	default:
		t.report("PAL901", protoAt.val, protoAt.path, "protocol %q has no Palisade equivalent (Palisade matches TCP, UDP and SCTP ports); the port is left out, so the rule allows less than the source", proto)
		return nil
	}
	out.sortBy("port", "endPort", "protocol")
	return out
}

// portValue reads a port: a number (Cilium writes it as a string) or a
// named container port. Anything else, such as the placeholder
// "REMOVE_ME_AFTER_DOUBLE_CHECKING_PORTS" in a published Cilium example,
// is an error: the importer cannot know which port was meant.
func (t *tr) portValue(e entry, k8s bool) *val {
	n := e.val
	if n == nil || n.Kind != yaml.ScalarNode || n.Tag == "!!null" {
		t.fail(e.key, e.path, "port must be a number or a port name, not %s", describe(n))
		return nil
	}
	s := strings.TrimSpace(n.Value)
	if v, err := strconv.ParseInt(s, 10, 64); err == nil {
		if v < 0 || v > 65535 {
			t.fail(n, e.path, "port %d is not between 0 and 65535", v)
			return nil
		}
		if k8s && n.Tag == "!!str" {
			t.note(n, e.path, "port %q written as the number %d", s, v)
		}
		return intv(v, t.pos(n), e.path)
	}
	if n.Tag == "!!str" && portName.MatchString(s) && len(s) <= 15 && strings.ContainsAny(s, "abcdefghijklmnopqrstuvwxyz") {
		return strv(s, t.pos(n), e.path)
	}
	t.fail(n, e.path, "port %q is neither a port number nor a valid port name (at most 15 lower-case letters, digits and '-'); the importer cannot tell which port was meant", n.Value)
	return nil
}

// icmpTypes are the ICMP type names Palisade understands.
var icmpTypes = []string{"EchoReply", "DestinationUnreachable", "Redirect", "EchoRequest",
	"RouterAdvertisement", "RouterSelection", "TimeExceeded", "ParameterProblem",
	"Timestamp", "TimestampReply", "Photuris", "ExtendedEchoRequest", "ExtendedEchoReply",
	"PacketTooBig", "MulticastListenerQuery", "MulticastListenerReport",
	"MulticastListenerDone", "RouterSolicitation", "NeighborSolicitation",
	"NeighborAdvertisement"}

// icmps translates a rule's icmps.
func (t *tr) icmps(e entry) *val {
	mark := t.errs()
	its, ok := t.items(e)
	if !ok {
		return nil
	}
	l := list(t.pos(e.val), e.path)
	for _, it := range its {
		rule := obj(t.pos(it.val), it.path)
		t.walk(it.val, it.path, "an ICMP rule", []field{
			{"fields", func(e entry) {
				fs, ok := t.items(e)
				if !ok {
					return
				}
				fl := list(t.pos(e.val), e.path)
				for _, f := range fs {
					if x := t.icmpField(f); x != nil {
						fl.add(x)
					}
				}
				rule.set("fields", fl)
			}},
		})
		if rule.get("fields") == nil && !t.failedSince(mark) {
			t.fail(it.val, it.path, "an ICMP rule needs fields")
		}
		l.add(rule)
	}
	return l
}

func (t *tr) icmpField(e entry) *val {
	mark := t.errs()
	f := obj(t.pos(e.val), e.path)
	t.walk(e.val, e.path, "an ICMP field", []field{
		{"family", func(e entry) {
			s, ok := t.str(e)
			if !ok {
				return
			}
			if s != "IPv4" && s != "IPv6" {
				t.fail(e.val, e.path, "ICMP family %q is not IPv4 or IPv6", s)
				return
			}
			f.set("family", strv(s, t.pos(e.val), e.path))
		}},
		{"type", func(e entry) {
			n := e.val
			if n != nil && n.Kind == yaml.ScalarNode {
				if v, err := strconv.ParseInt(n.Value, 10, 64); err == nil {
					f.set("type", intv(v, t.pos(n), e.path))
					return
				}
				if n.Tag == "!!str" && slices.Contains(icmpTypes, n.Value) {
					f.set("type", strv(n.Value, t.pos(n), e.path))
					return
				}
			}
			t.fail(n, e.path, "ICMP type %s is not a number or a type name Palisade knows; leaving it out would change which messages the rule matches", describe(n))
		}},
	})
	if f.get("type") == nil {
		if !t.failedSince(mark) {
			t.fail(e.val, e.path, "an ICMP field needs type")
		}
		return nil
	}
	f.sortBy("family", "type")
	return f
}
