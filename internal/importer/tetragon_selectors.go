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
	"strconv"
	"strings"
)

// selectorOrder is the order of a tracing selector's fields in the output.
var selectorOrder = []string{"matchArgs", "matchReturnArgs", "matchPIDs", "matchBinaries",
	"matchNamespaces", "matchCapabilities", "matchActions"}

// argOperators are the matchArgs operators Palisade knows, by lower-case
// name, with Tetragon's long names for GT and LT.
var argOperators = map[string]string{}

func init() {
	for _, op := range strings.Fields(`Equal NotEqual Prefix NotPrefix Postfix NotPostfix Mask GT LT
		InMap NotInMap SAddr DAddr NotSAddr NotDAddr SPort DPort NotSPort NotDPort
		SPortPriv DPortPriv NotSPortPriv NotDPortPriv Protocol Family State`) {
		argOperators[strings.ToLower(op)] = op
	}
	argOperators["greaterthan"] = "GT"
	argOperators["lessthan"] = "LT"
}

// selector translates one selector of a hook. hookKind and call say where
// it is (Override becomes Deny on LSM hooks only); args are the declared
// argument indexes, in order (a tracepoint's matchArgs index counts them),
// and argTypes their types by index.
func (g *tracing) selector(e entry, hookKind, call string, args []int64, argTypes map[int64]string) *val {
	t := g.t
	s := obj(t.pos(e.val), e.path)
	enforcing := enforces(e.val)
	// dropTerm leaves out a term the importer cannot translate: that
	// widens what the selector matches, so it is refused when the
	// selector's actions enforce.
	dropTerm := func(e entry, why string, args ...any) {
		reason := fmt.Sprintf(why, args...)
		if enforcing {
			t.fail(e.key, e.path, "%s: %s, and leaving it out would widen what this selector's enforcement actions apply to", e.name, reason)
			return
		}
		t.report("PAL901", e.key, e.path, "%s: %s; the selector only reports, so leaving it out reports more calls than the source", e.name, reason)
	}
	argSelectors := func(ret bool) func(entry) {
		return func(e entry) {
			its, ok := t.items(e)
			if !ok {
				return
			}
			l := list(t.pos(e.val), e.path)
			for _, it := range its {
				if a := g.argSelector(it, hookKind, ret, args, argTypes, dropTerm); a != nil {
					l.add(a)
				}
			}
			s.setList(e.name, l)
		}
	}
	t.walk(e.val, e.path, "a selector", []field{
		{"matchArgs", argSelectors(false)},
		{"matchReturnArgs", argSelectors(true)},
		{"matchPIDs", g.terms(s, "a matchPIDs term", []termField{
			{"operator", "str"}, {"values", "ints"}, {"followForks", "bool"}, {"isNamespacePID", "bool"},
		})},
		{"matchBinaries", g.terms(s, "a matchBinaries term", []termField{
			{"operator", "str"}, {"values", "strs"}, {"followChildren", "bool"},
		})},
		{"matchNamespaces", g.terms(s, "a matchNamespaces term", []termField{
			{"namespace", "str"}, {"operator", "str"}, {"values", "strs"},
		})},
		{"matchCapabilities", g.terms(s, "a matchCapabilities term", []termField{
			{"type", "str"}, {"operator", "str"}, {"isNamespaceCapability", "bool"}, {"values", "strs"},
		})},
		{"matchNamespaceChanges", func(e entry) {
			dropTerm(e, "Palisade cannot match changes of a process's Linux namespaces")
		}},
		{"matchCapabilityChanges", func(e entry) {
			dropTerm(e, "Palisade cannot match changes of a process's capabilities")
		}},
		{"matchParentBinaries", func(e entry) {
			dropTerm(e, "Palisade matches the calling process's binary only, not its parent's")
		}},
		{"matchActions", func(e entry) {
			its, ok := t.items(e)
			if !ok {
				return
			}
			l := list(t.pos(e.val), e.path)
			for _, it := range its {
				if a := g.action(it, hookKind, call); a != nil {
					l.add(a)
				}
			}
			s.setList("matchActions", l)
		}},
		{"matchReturnActions", func(e entry) {
			if enforces(e.val) {
				t.fail(e.key, e.path, "matchReturnActions acts when the function returns; Palisade has no return actions, and leaving them out would drop their enforcement")
				return
			}
			t.drop(e, "Palisade has no return actions; these only report")
		}},
	})
	s.sortBy(selectorOrder...)
	return s
}

// termField is a field of a selector term and how to read it.
type termField struct {
	name string
	kind string // "str", "bool", "strs" or "ints"
}

// terms translates a list of selector terms whose fields map one to one.
func (g *tracing) terms(s *val, what string, fields []termField) func(entry) {
	t := g.t
	return func(e entry) {
		its, ok := t.items(e)
		if !ok {
			return
		}
		l := list(t.pos(e.val), e.path)
		for _, it := range its {
			term := obj(t.pos(it.val), it.path)
			table := make([]field, 0, len(fields))
			for _, f := range fields {
				table = append(table, field{f.name, func(e entry) {
					if v := g.termValue(e, f.kind); v != nil {
						term.set(f.name, v)
					}
				}})
			}
			t.walk(it.val, it.path, what, table)
			l.add(term)
		}
		s.setList(e.name, l)
	}
}

// termValue reads one field of a selector term.
func (g *tracing) termValue(e entry, kind string) *val {
	t := g.t
	switch kind {
	case "str":
		if s, ok := t.str(e); ok {
			return strv(s, t.pos(e.val), e.path)
		}
	case "bool":
		if b, ok := t.boolean(e); ok {
			return boolv(b, t.pos(e.val), e.path)
		}
	case "strs", "ints":
		its, ok := t.items(e)
		if !ok {
			return nil
		}
		l := list(t.pos(e.val), e.path)
		for _, it := range its {
			if kind == "ints" {
				if n, ok := t.integer(it); ok {
					l.add(intv(n, t.pos(it.val), it.path))
				}
				continue
			}
			if s, ok := t.str(it); ok {
				l.add(strv(s, t.pos(it.val), it.path))
			}
		}
		return l
	}
	return nil
}

// argSelector translates one matchArgs or matchReturnArgs term.
func (g *tracing) argSelector(e entry, hookKind string, ret bool, args []int64, argTypes map[int64]string, dropTerm func(entry, string, ...any)) *val {
	t := g.t
	mark := t.errs()
	a := obj(t.pos(e.val), e.path)
	var (
		op      string
		opAt    entry
		values  []string
		valsAt  []entry
		index   int64
		indexAt *entry
	)
	t.walk(e.val, e.path, "an argument selector", []field{
		{"index", func(e entry) {
			if n, ok := t.integer(e); ok {
				index, indexAt = n, &e
			}
		}},
		{"operator", func(e entry) {
			op, _ = t.str(e)
			opAt = e
		}},
		{"values", func(e entry) {
			values, valsAt, _ = t.strs(e)
		}},
	})
	if t.failedSince(mark) {
		return nil
	}
	norm, ok := argOperators[strings.ToLower(op)]
	if !ok {
		dropTerm(entry{name: e.name, key: opAt.val, path: e.path}, "operator %q has no Palisade equivalent", op)
		return nil
	}
	if norm != op {
		t.note(opAt.val, opAt.path, "operator %q written as %q", op, norm)
	}
	if hookKind == "tracepoint" && !ret && indexAt != nil {
		// Tetragon counts a tracepoint's matchArgs index in the policy's
		// args list; Palisade, as for every hook, takes the argument's
		// declared index.
		if index < 0 || int(index) >= len(args) {
			t.fail(indexAt.val, indexAt.path, "matchArgs index %d refers to argument %d of the tracepoint's args, which declares %d", index, index, len(args))
			return nil
		}
		if args[index] != index {
			t.note(indexAt.val, indexAt.path, "tracepoint matchArgs index %d (the %s entry of args) written as that argument's index %d", index, ordinal(index), args[index])
		}
		index = args[index]
	}
	if ty := argTypes[index]; !ret && uncomparable[ty] {
		dropTerm(entry{name: e.name, key: opAt.val, path: e.path}, "it compares argument %d of type %s, which Palisade reports as a whole and whose fields its selectors cannot compare", index, ty)
		return nil
	}
	l := list(t.pos(e.val), e.path+".values")
	for i, v := range values {
		name, isList := strings.CutPrefix(v, "list:")
		if !isList {
			l.add(strv(v, t.pos(valsAt[i].val), valsAt[i].path))
			continue
		}
		lst, ok := g.lists[name]
		if !ok || (lst.typ != "syscalls" && lst.typ != "") {
			dropTerm(entry{name: e.name, key: valsAt[i].val, path: valsAt[i].path}, "value %q refers to a list the importer cannot write out", v)
			return nil
		}
		if lst.typ == "syscalls" {
			// Tetragon turns the names into the syscall numbers of the
			// node's architecture when the policy loads; Palisade
			// compares the numbers as written, which differ between
			// x86_64 and arm64, so the importer cannot choose them.
			lst.used = true
			dropTerm(entry{name: e.name, key: valsAt[i].val, path: valsAt[i].path}, "value %q names syscalls (%s), which Palisade compares by number; their numbers depend on the nodes' architecture, unknown to the importer", v, strings.Join(lst.values, ", "))
			return nil
		}
		lst.used = true
		t.note(valsAt[i].val, valsAt[i].path, "value %q written as the list's values (%s)", v, strings.Join(lst.values, ", "))
		for _, x := range lst.values {
			l.add(strv(x, t.pos(valsAt[i].val), valsAt[i].path))
		}
	}
	if norm == "Mask" && len(l.items) > 1 {
		// Tetragon's Mask matches when any value's bits are set in the
		// argument, which is one mask of all the values ORed.
		var m uint64
		ok := true
		for _, it := range l.items {
			v, err := strconv.ParseUint(it.str, 0, 64)
			if err != nil {
				ok = false
				break
			}
			m |= v
		}
		if ok {
			merged := strconv.FormatUint(m, 10)
			t.note(e.val, e.path+".values", "Mask values %s written as their bitwise OR %s, which matches the same arguments", strings.Join(l.strings(), ", "), merged)
			l.items = []*val{strv(merged, l.items[0].pos, l.items[0].path)}
		}
	}
	p := e.path
	a.set("index", intv(index, t.pos(e.val), p+".index"))
	a.set("operator", strv(norm, t.pos(opAt.val), opAt.path))
	a.set("values", l)
	return a
}

// uncomparable are the argument types Palisade reports as a whole: its
// selectors compare none of their fields (validate's PAL501).
var uncomparable = map[string]bool{"cred": true, "bpf_attr": true, "perf_event": true, "bpf_map": true,
	"user_namespace": true, "module": true, "load_info": true, "net_device": true, "kiocb": true,
	"iov_iter": true, "nop": true}

// ordinal spells a 0-based index as a 1-based ordinal.
func ordinal(i int64) string {
	n := i + 1
	suffix := "th"
	switch {
	case n%100 >= 11 && n%100 <= 13:
	case n%10 == 1:
		suffix = "st"
	case n%10 == 2:
		suffix = "nd"
	case n%10 == 3:
		suffix = "rd"
	}
	return strconv.FormatInt(n, 10) + suffix
}

// rateLimit is Palisade's rate limit form.
var rateLimit = regexp.MustCompile(`^[0-9]+(ms|s|m|h)$`)

// action translates one matchActions element. It returns nil when the
// action is left out, which only happens for actions that do not enforce.
func (g *tracing) action(e entry, hookKind, call string) *val {
	t := g.t
	mark := t.errs()
	a := obj(t.pos(e.val), e.path)
	params := map[string]entry{}
	var name string
	var nameAt entry
	table := []field{{"action", func(e entry) { name, _ = t.str(e); nameAt = e }}}
	for _, p := range []string{"argError", "argFd", "argName", "argSig", "argUrl", "argFqdn", "argSock",
		"argIndex", "argValue", "rateLimit", "rateLimitScope", "kernelStackTrace", "userStackTrace", "imaHash"} {
		table = append(table, field{p, func(e entry) { params[e.name] = e }})
	}
	t.walk(e.val, e.path, "an action", table)
	if t.failedSince(mark) {
		return nil
	}
	// ignore reports parameters that the action does not read.
	ignore := func(keep ...string) {
		for p, pe := range params {
			if !contains(keep, p) {
				t.drop(pe, "Tetragon's %s action does not use it", name)
			}
		}
	}
	set := func(out, in string) bool {
		pe, ok := params[in]
		if !ok {
			return true
		}
		n, ok := t.integer(pe)
		if !ok {
			return false
		}
		a.set(out, intv(n, t.pos(pe.val), pe.path))
		return true
	}
	observe := func(why string) *val {
		t.report("PAL901", nameAt.val, nameAt.path, "action %s has no Palisade equivalent and is left out: %s; it enforces nothing", name, why)
		return nil
	}
	switch strings.ToLower(name) {
	case "post", "notify":
		if name != "Notify" {
			t.note(nameAt.val, nameAt.path, "action %s written as Notify", name)
		}
		a.set("action", strv("Notify", t.pos(nameAt.val), nameAt.path))
		if pe, ok := params["rateLimit"]; ok {
			if s, ok := t.str(pe); ok {
				r := strings.ToLower(s)
				if _, err := strconv.ParseUint(r, 10, 32); err == nil {
					r += "s"
					t.note(pe.val, pe.path, "rate limit %q written as %q: Tetragon reads a bare number as seconds", s, r)
				}
				if rateLimit.MatchString(r) {
					a.set("rateLimit", strv(r, t.pos(pe.val), pe.path))
				} else {
					t.drop(pe, "%q is not a duration Palisade reads (a number with ms, s, m or h); the events are not rate limited", s)
				}
			}
		}
		if pe, ok := params["rateLimitScope"]; ok {
			t.drop(pe, "Palisade rate-limits per process")
		}
		for _, p := range []string{"kernelStackTrace", "userStackTrace", "imaHash"} {
			if pe, ok := params[p]; ok {
				t.drop(pe, "Palisade's events carry no stack traces or IMA hashes")
			}
		}
		ignore("rateLimit", "rateLimitScope", "kernelStackTrace", "userStackTrace", "imaHash")
	case "sigkill":
		a.set("action", strv("Sigkill", t.pos(nameAt.val), nameAt.path))
		ignore()
	case "signal":
		sig, ok := params["argSig"]
		if !ok {
			t.fail(nameAt.val, nameAt.path, "a Signal action needs argSig")
			return nil
		}
		n, ok := t.integer(sig)
		if !ok {
			return nil
		}
		switch {
		case n == 9:
			t.note(nameAt.val, nameAt.path, "Signal with argSig 9 (SIGKILL) written as Sigkill")
			a.set("action", strv("Sigkill", t.pos(nameAt.val), nameAt.path))
		case n < 1 || n > 64:
			t.fail(sig.val, sig.path, "argSig %d is not a signal number (1-64), and leaving the Signal out would stop that enforcement", n)
			return nil
		default:
			a.set("action", strv("Signal", t.pos(nameAt.val), nameAt.path))
			a.set("argSig", intv(n, t.pos(sig.val), sig.path))
		}
		ignore("argSig")
	case "override", "deny":
		if hookKind != "lsmhook" {
			hint := ""
			if h, ok := securityHooks[call]; ok {
				hint = fmt.Sprintf(" (not rewritten as the LSM hook %q with Deny because the hook also has other enforcement actions, which an LSM hook would skip when another LSM refuses the call first)", h)
			} else if h, ok := strings.CutPrefix(call, "security_"); ok {
				hint = fmt.Sprintf(" (if the LSM hook %q takes the same arguments, hook it in lsmhooks and use Deny)", h)
			}
			t.fail(nameAt.val, nameAt.path, "%s on a %s has no Palisade equivalent: only LSM hooks can fail a call in Palisade%s; leaving it out would stop that enforcement", name, hookKind, hint)
			return nil
		}
		pe, ok := params["argError"]
		if !ok {
			if strings.ToLower(name) == "deny" {
				a.set("action", strv("Deny", t.pos(nameAt.val), nameAt.path))
				break
			}
			t.fail(nameAt.val, nameAt.path, "Override without argError returns 0 from the hook, which lets the call go on; Palisade's Deny always fails the call, so it cannot be translated faithfully")
			return nil
		}
		n, ok := t.integer(pe)
		if !ok {
			return nil
		}
		if n >= 0 {
			t.fail(pe.val, pe.path, "argError %d is not a negative errno; Palisade's Deny fails the call with a negative errno only", n)
			return nil
		}
		if strings.ToLower(name) == "override" {
			t.note(nameAt.val, nameAt.path, "Override on an LSM hook written as Deny with argError %d", n)
		}
		a.set("action", strv("Deny", t.pos(nameAt.val), nameAt.path))
		a.set("argError", intv(n, t.pos(pe.val), pe.path))
		ignore("argError")
	case "followfd", "unfollowfd":
		a.set("action", strv(map[string]string{"followfd": "FollowFD", "unfollowfd": "UnfollowFD"}[strings.ToLower(name)], t.pos(nameAt.val), nameAt.path))
		if !set("argFd", "argFd") || !set("argName", "argName") {
			return nil
		}
		ignore("argFd", "argName")
	case "copyfd":
		return observe("it duplicates fd tracking to a new descriptor, which only affects later events")
	case "geturl":
		return observe("it fetches a URL to signal an external system; Palisade reports the match as an event")
	case "dnslookup":
		return observe("it resolves a name to signal an external system; Palisade reports the match as an event")
	case "nopost":
		return observe("it suppresses the event; Palisade reports the match")
	case "tracksock", "untracksock":
		return observe("socket tracking only attributes later events to the socket's process")
	case "notifyenforcer":
		t.fail(nameAt.val, nameAt.path, "NotifyEnforcer has Tetragon's enforcer fail or kill the call; Palisade has no equivalent, and leaving it out would stop that enforcement")
		return nil
	case "set":
		t.fail(nameAt.val, nameAt.path, "Set changes an argument of the call; Palisade has no equivalent, and leaving it out would change what the call does")
		return nil
	default:
		t.fail(nameAt.val, nameAt.path, "action %q is not one the importer knows, so it cannot tell whether leaving it out would stop enforcement", name)
		return nil
	}
	a.sortBy("action", "argError", "argFd", "argName", "argSig", "rateLimit")
	return a
}

func contains(l []string, s string) bool {
	for _, x := range l {
		if x == s {
			return true
		}
	}
	return false
}
