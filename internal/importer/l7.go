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
	"fmt"
	"regexp"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"
)

// l7 translates a port rule's rules. Every L7 rule restricts the port to
// the requests it matches, so a rule the importer cannot translate is an
// error: leaving it out would allow more requests, and leaving out all of
// them would allow every request.
func (t *tr) l7(e entry) *val {
	mark := t.errs()
	out := obj(t.pos(e.val), e.path)
	t.walk(e.val, e.path, "L7 rules", []field{
		{"http", func(e entry) {
			its, ok := t.items(e)
			if !ok {
				return
			}
			l := list(t.pos(e.val), e.path)
			for _, it := range its {
				for _, r := range t.httpRule(it) {
					l.add(r)
				}
			}
			if len(its) > 0 && len(l.items) == 0 && !t.failedSince(mark) {
				t.fail(e.key, e.path, "no HTTP rule could be imported, and a port without HTTP rules allows every request")
			}
			out.setList("http", l)
		}},
		{"dns", func(e entry) {
			its, ok := t.items(e)
			if !ok {
				return
			}
			l := list(t.pos(e.val), e.path)
			for _, it := range its {
				if r := t.dnsMatch(it, "a DNS rule"); r != nil {
					l.add(r)
				}
			}
			out.setList("dns", l)
		}},
		{"kafka", func(e entry) {
			its, ok := t.items(e)
			if !ok {
				return
			}
			l := list(t.pos(e.val), e.path)
			for _, it := range its {
				if r := t.kafkaRule(it); r != nil {
					l.add(r)
				}
			}
			out.setList("kafka", l)
		}},
		{"l7proto", func(e entry) {
			t.fail(e.key, e.path, "generic L7 protocol rules run in Cilium's proxy; Palisade matches HTTP, DNS and Kafka only, and leaving the rules out would allow every request")
		}},
		{"l7", func(e entry) {
			t.fail(e.key, e.path, "generic L7 rules run in Cilium's proxy; Palisade matches HTTP, DNS and Kafka only, and leaving the rules out would allow every request")
		}},
	})
	out.sortBy("http", "dns", "kafka")
	return out
}

// httpMethods are the methods Palisade matches, in the schema's order.
var httpMethods = []string{"GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"}

// methodAlternation is a regex that is a plain list of alternatives, such
// as "GET|POST" or "(GET|HEAD)".
var methodAlternation = regexp.MustCompile(`^\(?[A-Za-z-]+(\|[A-Za-z-]+)*\)?$`)

// methodSet reads a Cilium method, which is a regular expression matched
// against the whole method. all says it matches any method (Palisade then
// leaves method out); methods are the Palisade methods it matches; extra
// are methods the expression names that Palisade does not match; exact
// says the expression is a plain list, so methods and extra are all it
// matches.
func methodSet(re string) (methods []string, all, exact bool, extra []string, err error) {
	s, _ := stripAnchors(re)
	if s == "" || s == ".*" {
		return nil, true, true, nil, nil
	}
	rx, err := regexp.Compile("^(?:" + s + ")$")
	if err != nil {
		return nil, false, false, nil, err
	}
	all = true
	for _, probe := range append([]string{"PROPFIND", "X", "MKCOL", "FOO-BAR"}, httpMethods...) {
		if !rx.MatchString(probe) {
			all = false
		}
	}
	if all {
		return nil, true, false, nil, nil
	}
	for _, m := range httpMethods {
		if rx.MatchString(m) {
			methods = append(methods, m)
		}
	}
	if methodAlternation.MatchString(s) {
		exact = true
		for _, lit := range strings.Split(strings.Trim(s, "()"), "|") {
			if !slices.Contains(httpMethods, lit) {
				extra = append(extra, lit)
			}
		}
	}
	return methods, false, exact, extra, nil
}

// stripAnchors removes a leading "^" and a trailing unescaped "$": Cilium
// matches method, path and host against the whole value, as Palisade
// does, so the anchors add nothing.
func stripAnchors(re string) (string, bool) {
	s := strings.TrimPrefix(re, "^")
	if strings.HasSuffix(s, "$") && !strings.HasSuffix(s, `\$`) {
		s = strings.TrimSuffix(s, "$")
	}
	return s, s != re
}

// hostPattern turns a Cilium host regex into what Palisade matches: an
// exact host, or "*." and a host for one leading label. narrowed says the
// result matches less than the regex did (".*\." matches several labels,
// an unescaped "." any character).
func hostPattern(re string) (host string, narrowed, ok bool) {
	s, _ := stripAnchors(re)
	prefix := ""
	for _, p := range []struct {
		re     string
		narrow bool
	}{{`.*\.`, true}, {`.+\.`, true}, {`[^.]+\.`, false}, {`[^\.]+\.`, false}} {
		if strings.HasPrefix(s, p.re) {
			prefix, s, narrowed = "*.", s[len(p.re):], p.narrow
			break
		}
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '\\' && i+1 < len(s) && s[i+1] == '.':
			b.WriteByte('.')
			i++
		case c == '.':
			b.WriteByte('.')
			narrowed = true
		case c == '-' || c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9':
			b.WriteByte(c)
		default:
			return "", false, false
		}
	}
	if b.Len() == 0 {
		return "", false, false
	}
	return prefix + b.String(), narrowed, true
}

// httpRule translates one Cilium HTTP rule. A method expression that
// matches several methods becomes one rule per method, because Palisade
// matches one method per rule; the rules are ORed, as the alternatives of
// the expression were.
func (t *tr) httpRule(e entry) []*val {
	mark := t.errs()
	r := obj(t.pos(e.val), e.path)
	var (
		methods  []string
		methodAt *yaml.Node
		headers  = list(t.pos(e.val), e.path+".headers")
	)
	t.walk(e.val, e.path, "an HTTP rule", []field{
		{"method", func(e entry) {
			s, ok := t.str(e)
			if !ok {
				return
			}
			methodAt = e.val
			ms, all, exact, extra, err := methodSet(s)
			switch {
			case err != nil:
				t.fail(e.val, e.path, "method %q is not a valid regular expression: %v", s, err)
			case all:
				if s != "" {
					t.note(e.val, e.path, "method %q matches every method; written without method", s)
				}
			case len(ms) == 0:
				t.fail(e.val, e.path, "method %q matches none of the methods Palisade matches (%s), and leaving it out would allow every method", s, strings.Join(httpMethods, ", "))
			default:
				methods = ms
				if len(extra) > 0 {
					t.narrow(e.val, e.path, "method %q: %s not matched by Palisade and left out; the rule allows %s", s, strings.Join(extra, ", "), strings.Join(ms, ", "))
				} else if !exact {
					t.narrow(e.val, e.path, "method %q is a regular expression; written as the methods of Palisade's list it matches (%s), any other method it matched is left out", s, strings.Join(ms, ", "))
				} else if len(ms) > 1 {
					t.note(e.val, e.path, "method %q written as %d rules, one per method", s, len(ms))
				}
			}
		}},
		{"path", func(e entry) {
			s, ok := t.str(e)
			if !ok {
				return
			}
			p, changed := stripAnchors(s)
			if _, err := regexp.Compile(p); err != nil {
				t.fail(e.val, e.path, "path %q is not a valid regular expression: %v", s, err)
				return
			}
			if p == "" || p == ".*" {
				t.note(e.val, e.path, "path %q matches every path; written without path", s)
				return
			}
			if changed {
				t.note(e.val, e.path, "path %q written as %q: Palisade anchors paths at both ends, as Cilium does", s, p)
			}
			r.set("path", strv(p, t.pos(e.val), e.path))
		}},
		{"host", func(e entry) {
			s, ok := t.str(e)
			if !ok {
				return
			}
			h, narrowed, ok := hostPattern(s)
			if !ok {
				t.fail(e.val, e.path, "host %q is a regular expression that is neither an exact host nor \"*.\" and a host, which is what Palisade matches; leaving it out would allow every host", s)
				return
			}
			if narrowed {
				t.narrow(e.val, e.path, "host %q is a regular expression; written as %q, which matches less (in the expression an unescaped \".\" matches any character and \".*\\.\" any number of labels)", s, h)
			} else if h != s {
				t.note(e.val, e.path, "host %q written as %q", s, h)
			}
			r.set("host", strv(h, t.pos(e.val), e.path))
		}},
		{"headers", func(e entry) {
			its, ok := t.items(e)
			if !ok {
				return
			}
			for _, it := range its {
				if h := t.header(it); h != nil {
					headers.add(h)
				}
			}
		}},
		{"headerMatches", func(e entry) {
			its, ok := t.items(e)
			if !ok {
				return
			}
			for _, it := range its {
				if h := t.headerMatch(it); h != nil {
					headers.add(h)
				}
			}
		}},
	})
	r.setList("headers", headers)
	if t.failedSince(mark) {
		return nil
	}
	r.sortBy("method", "path", "host", "headers")
	if len(methods) == 0 {
		return []*val{r}
	}
	out := make([]*val, 0, len(methods))
	for _, m := range methods {
		c := &val{kind: kindObj, pos: r.pos, path: r.path}
		c.fields = append(c.fields, &member{"method", strv(m, t.pos(methodAt), e.path+".method")})
		c.fields = append(c.fields, r.fields...)
		out = append(out, c)
	}
	return out
}

// header translates one element of headers: Cilium's "Name" or "Name:
// value" string, or the {name, presence/required} form that some
// hand-written policies use.
func (t *tr) header(e entry) *val {
	mark := t.errs()
	if e.val != nil && e.val.Kind == yaml.ScalarNode {
		s, ok := t.str(e)
		if !ok {
			return nil
		}
		return strv(s, t.pos(e.val), e.path)
	}
	var (
		name, value string
		required    = true
		form        []string
	)
	t.walk(e.val, e.path, "an HTTP header", []field{
		{"name", func(e entry) { name, _ = t.str(e) }},
		{"value", func(e entry) { value, _ = t.str(e); form = append(form, "value") }},
		{"presence", func(e entry) { required, _ = t.boolean(e); form = append(form, "presence") }},
		{"required", func(e entry) { required, _ = t.boolean(e); form = append(form, "required") }},
	})
	switch {
	case t.failedSince(mark):
		return nil
	case name == "":
		t.fail(e.val, e.path, "an HTTP header needs a name")
		return nil
	case !required && value == "":
		t.report("PAL901", e.val, e.path, "header %q is marked as not required, so it restricts nothing and is left out", name)
		return nil
	}
	s := name
	if value != "" {
		s = fmt.Sprintf("%s: %s", name, value)
	}
	t.note(e.val, e.path, "header {name: %q, %s} is not Cilium's form; written as %q", name, strings.Join(form, ", "), s)
	return strv(s, t.pos(e.val), e.path)
}

// headerMatch translates one element of Cilium's headerMatches. Without a
// mismatch action a request must carry the header (with the value, when
// given); with one, Cilium lets the request through anyway and only logs or
// rewrites the header, so leaving it out allows nothing more.
func (t *tr) headerMatch(e entry) *val {
	mark := t.errs()
	var name, value, mismatch string
	secret := false
	t.walk(e.val, e.path, "an HTTP header match", []field{
		{"name", func(e entry) { name, _ = t.str(e) }},
		{"value", func(e entry) { value, _ = t.str(e) }},
		{"mismatch", func(e entry) { mismatch, _ = t.str(e) }},
		{"secret", func(e entry) { secret = true }},
	})
	switch {
	case t.failedSince(mark):
		return nil
	case mismatch != "":
		t.report("PAL901", e.val, e.path, "header match %q with mismatch action %s has no Palisade equivalent; Cilium lets a mismatching request through, so leaving it out allows nothing more", name, mismatch)
		return nil
	case secret:
		t.fail(e.val, e.path, "header match %q takes its value from a Kubernetes secret, which the importer cannot read; leaving it out would allow requests without the header", name)
		return nil
	case name == "":
		t.fail(e.val, e.path, "a header match needs a name")
		return nil
	case value == "":
		return strv(name, t.pos(e.val), e.path)
	}
	return strv(name+": "+value, t.pos(e.val), e.path)
}

// dnsMatch translates a {matchName, matchPattern} pair, in toFQDNs or in a
// DNS L7 rule.
func (t *tr) dnsMatch(e entry, what string) *val {
	mark := t.errs()
	out := obj(t.pos(e.val), e.path)
	t.walk(e.val, e.path, what, []field{
		{"matchName", func(e entry) {
			if s, ok := t.str(e); ok {
				out.set("matchName", strv(s, t.pos(e.val), e.path))
			}
		}},
		{"matchPattern", func(e entry) {
			s, ok := t.str(e)
			if !ok {
				return
			}
			if strings.Contains(s, "**") {
				n := strings.ReplaceAll(s, "**", "*")
				t.narrow(e.val, e.path, "pattern %q written as %q: in Cilium \"**.\" matches any number of labels, in Palisade \"*\" matches within one label, so fewer names match", s, n)
				s = n
			}
			out.set("matchPattern", strv(s, t.pos(e.val), e.path))
		}},
	})
	if t.failedSince(mark) {
		return nil
	}
	if len(out.fields) == 0 {
		t.fail(e.val, e.path, "%s needs matchName or matchPattern", what)
		return nil
	}
	return out
}

// kafkaRule translates one Cilium Kafka rule. Cilium reads role and apiKey
// without regard to case; Palisade writes them in lower case.
func (t *tr) kafkaRule(e entry) *val {
	mark := t.errs()
	out := obj(t.pos(e.val), e.path)
	lower := func(name string) func(entry) {
		return func(e entry) {
			s, ok := t.str(e)
			if !ok {
				return
			}
			if l := strings.ToLower(s); l != s {
				t.note(e.val, e.path, "%s %q written as %q", name, s, l)
				s = l
			}
			out.set(name, strv(s, t.pos(e.val), e.path))
		}
	}
	plain := func(name string) func(entry) {
		return func(e entry) {
			if s, ok := t.str(e); ok {
				out.set(name, strv(s, t.pos(e.val), e.path))
			}
		}
	}
	t.walk(e.val, e.path, "a Kafka rule", []field{
		{"role", lower("role")},
		{"apiKey", lower("apiKey")},
		{"apiVersion", plain("apiVersion")},
		{"clientID", plain("clientID")},
		{"topic", plain("topic")},
	})
	if t.failedSince(mark) {
		return nil
	}
	return out
}
