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
	"regexp"
	"regexp/syntax"
	"strings"

	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/palisade-dev/palisade/api/v1alpha1"
	"github.com/palisade-dev/palisade/internal/policy"
)

// checkPortRule checks the ports of a rule and its L7 rules.
func (c *checker) checkPortRule(p *Policy, path string, pr v1alpha1.PortRule) {
	type key struct {
		port string
		end  int32
		prot v1alpha1.Protocol
	}
	seen := map[key]bool{}
	for i, pp := range pr.Ports {
		pth := fmt.Sprintf("%s.ports[%d]", path, i)
		if pp.EndPort != nil {
			switch {
			case pp.Port.Type == intstr.String:
				c.add(p, "PAL151", pth+".endPort", "endPort %d follows the named port %q", *pp.EndPort, pp.Port.StrVal)
			case pp.Port.IntVal == 0:
				c.add(p, "PAL151", pth+".endPort", "endPort %d follows port 0, which already means every port", *pp.EndPort)
			case *pp.EndPort < pp.Port.IntVal:
				c.add(p, "PAL150", pth+".endPort", "port range %d-%d is reversed", pp.Port.IntVal, *pp.EndPort)
			}
		}
		k := key{portString(pp.Port), 0, protocol(pp.Protocol)}
		if pp.EndPort != nil {
			k.end = *pp.EndPort
		}
		if seen[k] {
			c.add(p, "PAL152", pth, "port %s/%s is listed twice in this rule", k.port, k.prot)
		}
		seen[k] = true
	}
	if pr.Rules != nil {
		c.checkL7(p, path, pr)
	}
}

// protocol returns the protocol a port applies to; omitted means ANY.
func protocol(p v1alpha1.Protocol) v1alpha1.Protocol {
	if p == "" {
		return v1alpha1.ProtocolAny
	}
	return p
}

// checkL7 checks that the datapath can enforce a port rule's L7 rules: one
// protocol, on one port, over a transport that carries it.
func (c *checker) checkL7(p *Policy, path string, pr v1alpha1.PortRule) {
	r := pr.Rules
	rp := path + ".rules"
	var kinds []string
	if len(r.HTTP) > 0 {
		kinds = append(kinds, "http")
	}
	if len(r.DNS) > 0 {
		kinds = append(kinds, "dns")
	}
	if len(r.Kafka) > 0 {
		kinds = append(kinds, "kafka")
	}
	if len(kinds) > 1 {
		c.add(p, "PAL204", rp, "one port rule carries %s rules", strings.Join(kinds, " and "))
	}
	if len(pr.Ports) == 0 {
		c.add(p, "PAL205", rp, "L7 rules apply to the ports of their rule, and this rule lists none (every port)")
	}
	for i, pp := range pr.Ports {
		pth := fmt.Sprintf("%s.ports[%d]", path, i)
		switch {
		case pp.EndPort != nil:
			c.add(p, "PAL205", pth, "L7 rules on the port range %s-%d", portString(pp.Port), *pp.EndPort)
		case pp.Port.Type == intstr.Int && pp.Port.IntVal == 0:
			c.add(p, "PAL205", pth, "L7 rules on port 0 (every port)")
		}
		prot := protocol(pp.Protocol)
		if len(r.HTTP) > 0 && (prot == v1alpha1.ProtocolUDP || prot == v1alpha1.ProtocolSCTP) {
			c.add(p, "PAL201", pth+".protocol", "HTTP rules on a %s port: HTTP/1.x runs over TCP", prot)
		}
		if len(r.DNS) > 0 && prot == v1alpha1.ProtocolSCTP {
			c.add(p, "PAL201", pth+".protocol", "DNS rules on an SCTP port: DNS runs over UDP or TCP")
		}
		if len(r.Kafka) > 0 && (prot == v1alpha1.ProtocolUDP || prot == v1alpha1.ProtocolSCTP) {
			c.add(p, "PAL401", pth+".protocol", "Kafka rules on a %s port", prot)
		}
	}
	for i, h := range r.HTTP {
		hp := fmt.Sprintf("%s.http[%d]", rp, i)
		if h.Path != "" {
			c.checkHTTPPath(p, hp+".path", h.Path)
		}
		if h.Host != "" && !validHostPattern(h.Host) {
			c.add(p, "PAL206", hp+".host", "host %q is neither a host name nor \"*.\" followed by one", h.Host)
		}
		names := map[string]bool{}
		for j, hd := range h.Headers {
			name, _, _ := strings.Cut(string(hd), ":")
			lname := strings.ToLower(strings.TrimSpace(name))
			switch {
			case lname == "host":
				c.add(p, "PAL207", fmt.Sprintf("%s.headers[%d]", hp, j), "match the Host header with the host field, not headers")
			case names[lname]:
				c.add(p, "PAL207", fmt.Sprintf("%s.headers[%d]", hp, j), "header %q is listed twice", name)
			}
			names[lname] = true
		}
	}
	for i, d := range r.DNS {
		c.checkNameOrPattern(p, fmt.Sprintf("%s.dns[%d]", rp, i), string(d.MatchName), string(d.MatchPattern))
	}
	for i, k := range r.Kafka {
		if k.Role != "" && k.APIKey != "" {
			c.add(p, "PAL402", fmt.Sprintf("%s.kafka[%d]", rp, i), "role %q and apiKey %q are both set", k.Role, k.APIKey)
		}
	}
}

var hostName = regexp.MustCompile(`^([A-Za-z0-9]([-A-Za-z0-9]*[A-Za-z0-9])?\.)*[A-Za-z0-9]([-A-Za-z0-9]*[A-Za-z0-9])?(:[0-9]{1,5})?$`)

func validHostPattern(h string) bool {
	return hostName.MatchString(strings.TrimPrefix(h, "*."))
}

// maxPathProgram bounds the size of an HTTP path pattern, in regexp
// program instructions: the datapath compiles patterns into a DFA in a map
// of bounded size, and the DFA grows with the program.
const maxPathProgram = 256

// maxPathRepeat bounds counted repetition such as {1,64}, which unrolls.
const maxPathRepeat = 16

// checkHTTPPath checks that an HTTP path pattern is an RE2 expression the
// datapath can compile: no anchors except at the ends, no word boundaries,
// no case folding, bounded repetition and size.
func (c *checker) checkHTTPPath(p *Policy, path, pattern string) {
	re, err := syntax.Parse(pattern, syntax.Perl)
	if err != nil {
		c.add(p, "PAL202", path, "path %q: %v", pattern, err)
		return
	}
	if why := unsupported(re, true); why != "" {
		c.add(p, "PAL203", path, "path %q: %s", pattern, why)
		return
	}
	prog, err := syntax.Compile(re.Simplify())
	if err != nil {
		c.add(p, "PAL202", path, "path %q: %v", pattern, err)
		return
	}
	if n := len(prog.Inst); n > maxPathProgram {
		c.add(p, "PAL203", path, "path %q compiles to %d instructions, more than the datapath's %d", pattern, n, maxPathProgram)
	}
}

// unsupported returns why the datapath cannot compile re, or "".
func unsupported(re *syntax.Regexp, top bool) string {
	if re.Flags&syntax.FoldCase != 0 && (re.Op == syntax.OpLiteral || re.Op == syntax.OpCharClass) {
		return "case-insensitive matching ((?i)) is not supported; list the cases in a character class"
	}
	switch re.Op {
	case syntax.OpWordBoundary, syntax.OpNoWordBoundary:
		return "word boundaries (\\b, \\B) are not supported"
	case syntax.OpBeginLine, syntax.OpEndLine:
		return "multi-line anchors ((?m)^, $) are not supported"
	case syntax.OpBeginText, syntax.OpEndText:
		if !top {
			return "anchors are only allowed at the start or end of the pattern (patterns are anchored anyway)"
		}
	case syntax.OpRepeat:
		if re.Max > maxPathRepeat || (re.Max == -1 && re.Min > maxPathRepeat) {
			return fmt.Sprintf("counted repetition {%d,%d} exceeds the datapath's limit of %d", re.Min, re.Max, maxPathRepeat)
		}
	}
	for i, sub := range re.Sub {
		// Only the first and last element of a top-level concatenation
		// may be anchors.
		childTop := top && re.Op == syntax.OpConcat && (i == 0 || i == len(re.Sub)-1)
		if why := unsupported(sub, childTop); why != "" {
			return why
		}
	}
	return ""
}

// checkNameOrPattern checks a DNS matchName/matchPattern pair: exactly one
// set (PAL302), and a pattern the datapath understands (PAL301).
func (c *checker) checkNameOrPattern(p *Policy, path, name, pattern string) {
	if (name == "") == (pattern == "") {
		c.add(p, "PAL302", path, "set exactly one of matchName and matchPattern")
		return
	}
	if pattern == "" || pattern == "*" {
		return
	}
	labels := strings.Split(strings.TrimSuffix(pattern, "."), ".")
	for _, l := range labels {
		switch {
		case l == "":
			c.add(p, "PAL301", path+".matchPattern", "pattern %q has an empty label", pattern)
			return
		case strings.Contains(l, "**"):
			c.add(p, "PAL301", path+".matchPattern", "pattern %q has \"**\"; \"*\" already matches any characters within a label", pattern)
			return
		case len(l) > 63:
			c.add(p, "PAL301", path+".matchPattern", "label %q of pattern %q is longer than 63 characters", l, pattern)
			return
		case strings.HasPrefix(l, "-") || strings.HasSuffix(l, "-"):
			c.add(p, "PAL301", path+".matchPattern", "label %q of pattern %q starts or ends with '-'", l, pattern)
			return
		}
	}
}

func (c *checker) checkICMP(p *Policy, path string, f v1alpha1.ICMPField) {
	if fam, _, ok := policy.ICMPType(f); !ok && f.Type.Type == intstr.String {
		c.add(p, "PAL153", path+".type", "ICMP type %q is not defined for %s", f.Type.StrVal, fam)
	}
}

// portString formats a port number or name.
func portString(p intstr.IntOrString) string { return p.String() }
