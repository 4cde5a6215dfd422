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

package engine

import (
	"fmt"
	"maps"
	"regexp/syntax"
	"slices"
	"strconv"
	"strings"
)

// Limits of the HTTP tables, shared with bpf/l7 (l7.h): the kernel keeps a
// list's rules in a mask of HTTPMaskWords 64-bit words and walks at most
// HTTPMaxAllows allows and HTTPMaxHeaderReqs header requirements per list.
const (
	HTTPMaskWords      = 4
	HTTPMaxRules       = HTTPMaskWords * 64
	HTTPMaxAllows      = 64
	HTTPMaxHeaderReqs  = 64
	HTTPMaxDFAStates   = 4096
	HTTPMethodOther    = 0
	HTTPMethodCount    = 10
	httpDeadState      = 0
	httpStartState     = 1
	httpMaxNFAThreads  = 1 << 16
	httpMaxPatternSize = 4096
)

// httpMethods numbers the methods of v1alpha1.HTTPMethod from 1; any
// other method is HTTPMethodOther. The kernel numbers them alike (l7.h).
var httpMethods = []string{"", "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"}

// HTTPMethodIndex returns the table index of an HTTP method (exact,
// case-sensitive, as matchHTTP compares methods).
func HTTPMethodIndex(m string) int {
	if i := slices.Index(httpMethods, m); i > 0 {
		return i
	}
	return HTTPMethodOther
}

// HTTPMask is a set of rule indices of one list.
type HTTPMask [HTTPMaskWords]uint64

func (m *HTTPMask) set(i int)     { m[i/64] |= 1 << (i % 64) }
func (m HTTPMask) has(i int) bool { return m[i/64]&(1<<(i%64)) != 0 }
func (m HTTPMask) and(o HTTPMask) (r HTTPMask) {
	for i := range m {
		r[i] = m[i] & o[i]
	}
	return r
}
func (m HTTPMask) or(o HTTPMask) (r HTTPMask) {
	for i := range m {
		r[i] = m[i] | o[i]
	}
	return r
}
func (m HTTPMask) andNot(o HTTPMask) (r HTTPMask) {
	for i := range m {
		r[i] = m[i] &^ o[i]
	}
	return r
}
func (m HTTPMask) empty() bool { return m == HTTPMask{} }

// HTTPTables is the kernel form of the HTTP rules of a MapState's L7
// lists: per list, the rules' fields as tables that the datapath decides a
// request from in one pass over its head (see docs/l7.md).
type HTTPTables struct {
	Lists map[L7ID]*HTTPList
}

// HTTPList is one L7 list's HTTP rules. The list's HTTP rules are
// numbered 0..Rules-1 in list order; a request matches rule r when
// Methods[method], the path automaton's accept mask (or PathAny), the host
// automaton's accept mask (or HostAny) all hold r, and no header
// requirement that r needs is missing.
type HTTPList struct {
	Allows  []HTTPAllow
	Rules   int
	Methods [HTTPMethodCount]HTTPMask
	PathAny HTTPMask
	HostAny HTTPMask
	// Path runs over the request target's bytes; a byte >= 0x80 leads to
	// the dead state (a target must be ASCII, RFC 3986), so such a target
	// matches only the rules without a path.
	Path DFA
	// Host runs over the Host header's value, OWS trimmed; ASCII letters
	// match either case.
	Host    DFA
	Headers []HTTPHeaderReq
}

// HTTPAllow is one allow of the list, in the list's order (by RuleID).
// Any says it allows every request (its L7 rules are nil); otherwise Rules
// holds its HTTP rules' indices (empty if it has none: it refuses every
// HTTP request, as MatchL7 does).
type HTTPAllow struct {
	Rule  RuleID
	Audit bool
	Any   bool
	Rules HTTPMask
}

// HTTPHeaderReq is one header requirement of the list: a header named
// Name (lower case) is present, with exactly Value if HasValue. Rules
// holds the rules that need it.
type HTTPHeaderReq struct {
	Name     string
	Value    string
	HasValue bool
	Rules    HTTPMask
}

// DFA is a deterministic automaton over bytes. Bytes are mapped to
// classes by Classes; Next[state*NumClasses+class] is the next state.
// State 0 is dead (no rule can match any more), state 1 the start.
// Accept[state] holds the rules whose pattern matches an input ending in
// state.
type DFA struct {
	Classes    [256]uint8
	NumClasses int
	Next       []uint16
	Accept     []HTTPMask
}

// States returns the number of states.
func (d *DFA) States() int { return len(d.Accept) }

// Run returns the accept mask of the state that input ends in.
func (d *DFA) Run(input string) HTTPMask {
	s := httpStartState
	for i := 0; i < len(input) && s != httpDeadState; i++ {
		s = int(d.Next[s*d.NumClasses+int(d.Classes[input[i]])])
	}
	return d.Accept[s]
}

// CompileHTTP compiles the HTTP rules of every list into HTTPTables. It
// fails, naming the list and rule, for what the kernel cannot decide: a
// path the automaton cannot express (word boundaries, multi-line anchors)
// or whose automaton exceeds HTTPMaxDFAStates, a non-ASCII host, more than
// HTTPMaxRules rules, HTTPMaxAllows allows or HTTPMaxHeaderReqs header
// requirements in one list.
func CompileHTTP(lists map[L7ID]L7List) (*HTTPTables, error) {
	t := &HTTPTables{Lists: make(map[L7ID]*HTTPList, len(lists))}
	for _, id := range slices.Sorted(maps.Keys(lists)) {
		l, err := CompileHTTPList(lists[id])
		if err != nil {
			return nil, fmt.Errorf("l7 list %d: %w", id, err)
		}
		t.Lists[id] = l
	}
	return t, nil
}

// CompileHTTPList compiles one list (see CompileHTTP).
func CompileHTTPList(list L7List) (*HTTPList, error) {
	if len(list) > HTTPMaxAllows {
		return nil, fmt.Errorf("%d allow rules at one point, the kernel decides at most %d", len(list), HTTPMaxAllows)
	}
	l := &HTTPList{}
	var paths, hosts []string
	var pathRules, hostRules []int
	reqs := map[HTTPHeaderReq]int{}
	for _, a := range list {
		ha := HTTPAllow{Rule: a.Rule, Audit: a.Audit, Any: a.Rules == nil}
		if a.Rules != nil {
			for i, r := range a.Rules.HTTP {
				n := l.Rules
				if n >= HTTPMaxRules {
					return nil, fmt.Errorf("more than %d HTTP rules at one point", HTTPMaxRules)
				}
				l.Rules++
				ha.Rules.set(n)
				where := fmt.Sprintf("rule %d http[%d]", a.Rule, i)
				for m := range l.Methods {
					if r.Method == "" || HTTPMethodIndex(string(r.Method)) == m && m != HTTPMethodOther {
						l.Methods[m].set(n)
					}
				}
				if r.Method != "" && HTTPMethodIndex(string(r.Method)) == HTTPMethodOther {
					return nil, fmt.Errorf("%s: method %q is not one the kernel knows", where, r.Method)
				}
				if r.Path == "" {
					l.PathAny.set(n)
				} else {
					paths, pathRules = append(paths, "^(?:"+r.Path+")$"), append(pathRules, n)
				}
				if r.Host == "" {
					l.HostAny.set(n)
				} else {
					re, err := hostPattern(r.Host)
					if err != nil {
						return nil, fmt.Errorf("%s: %w", where, err)
					}
					hosts, hostRules = append(hosts, re), append(hostRules, n)
				}
				for _, h := range r.Headers {
					name, value, hasValue := strings.Cut(string(h), ":")
					req := HTTPHeaderReq{Name: strings.ToLower(name), HasValue: hasValue}
					if hasValue {
						req.Value = strings.TrimPrefix(value, " ")
					}
					k, ok := reqs[req]
					if !ok {
						if len(l.Headers) >= HTTPMaxHeaderReqs {
							return nil, fmt.Errorf("%s: more than %d distinct header requirements at one point", where, HTTPMaxHeaderReqs)
						}
						k = len(l.Headers)
						reqs[req] = k
						l.Headers = append(l.Headers, req)
					}
					l.Headers[k].Rules.set(n)
				}
			}
		}
		l.Allows = append(l.Allows, ha)
	}
	var err error
	if l.Path, err = buildDFA(paths, pathRules, false); err != nil {
		return nil, fmt.Errorf("path: %w", err)
	}
	if l.Host, err = buildDFA(hosts, hostRules, true); err != nil {
		return nil, fmt.Errorf("host: %w", err)
	}
	return l, nil
}

// hostPattern turns a host rule into the regular expression matchHost
// means: exact, or "*." and one or more bytes of any kind in front of the
// domain, ASCII letters of either case.
func hostPattern(h string) (string, error) {
	for i := 0; i < len(h); i++ {
		if h[i] >= 0x80 {
			return "", fmt.Errorf("host %q: only ASCII hosts are decided in the kernel (use the IDNA form)", h)
		}
	}
	lower := strings.ToLower(h)
	if rest, ok := strings.CutPrefix(lower, "*."); ok {
		return `^(?s:.+)(?i:` + regexpQuote("."+rest) + `)$`, nil
	}
	return `^(?i:` + regexpQuote(lower) + `)$`, nil
}

func regexpQuote(s string) string {
	var b strings.Builder
	for _, c := range []byte(s) {
		if strings.IndexByte(`\.+*?()|[]{}^$`, c) >= 0 {
			b.WriteByte('\\')
		}
		b.WriteByte(c)
	}
	return b.String()
}

// HTTPRequestMask returns the rules of the list that the request matches,
// computed from the tables as the kernel does.
func (l *HTTPList) HTTPRequestMask(q *HTTPRequest) HTTPMask {
	m := l.Methods[HTTPMethodIndex(q.Method)]
	m = m.and(l.Path.Run(q.Path).or(l.PathAny))
	m = m.and(l.Host.Run(q.Host).or(l.HostAny))
	for _, h := range l.Headers {
		if !headerSatisfied(h, q.Headers) {
			m = m.andNot(h.Rules)
		}
	}
	return m
}

func headerSatisfied(h HTTPHeaderReq, headers map[string]string) bool {
	for k, v := range headers {
		if strings.ToLower(k) == h.Name && (!h.HasValue || v == h.Value) {
			return true
		}
	}
	return false
}

// Decide decides a request from the tables, as the kernel does and as
// decideL7 does for this one list: with the enforcing allows only, or
// with the audit-mode ones too. It returns whether the request is allowed
// and the deciding rule: the lowest allow that admits it, or the lowest
// that refuses it. A list without an enforcing allow does not restrict
// the enforced view (enforced is true, rule 0).
func (l *HTTPList) Decide(q *HTTPRequest, withAudit bool) (bool, RuleID) {
	m := l.HTTPRequestMask(q)
	var restricting RuleID
	seen := false
	for _, a := range l.Allows {
		if a.Audit && !withAudit {
			continue
		}
		seen = true
		if a.Any || !a.Rules.and(m).empty() {
			return true, a.Rule
		}
		if restricting == 0 {
			restricting = a.Rule
		}
	}
	if !seen {
		return true, 0
	}
	return false, restricting
}

// buildDFA builds one automaton for all patterns, whose accept masks say
// which of them (by rule index) match. With allBytes, bytes 0x80-0xff are
// runes U+0080-U+00FF to the patterns (the host automaton, whose patterns
// are ASCII apart from "any byte"); without, they lead to the dead state.
func buildDFA(patterns []string, rules []int, allBytes bool) (DFA, error) {
	progs := make([]*syntax.Prog, len(patterns))
	for i, p := range patterns {
		if len(p) > httpMaxPatternSize {
			return DFA{}, fmt.Errorf("pattern of %d bytes is too long", len(p))
		}
		re, err := syntax.Parse(p, syntax.Perl)
		if err != nil {
			return DFA{}, fmt.Errorf("pattern %q: %w", p, err)
		}
		prog, err := syntax.Compile(re.Simplify())
		if err != nil {
			return DFA{}, fmt.Errorf("pattern %q: %w", p, err)
		}
		for _, in := range prog.Inst {
			if in.Op == syntax.InstEmptyWidth && syntax.EmptyOp(in.Arg)&^(syntax.EmptyBeginText|syntax.EmptyEndText) != 0 {
				return DFA{}, fmt.Errorf("pattern %q: word boundaries and multi-line anchors cannot be decided in the kernel", p)
			}
		}
		progs[i] = prog
	}
	b := &dfaBuilder{progs: progs, rules: rules, allBytes: allBytes, ids: map[string]int{}}
	return b.build()
}

type thread struct{ pat, pc uint32 }

type dfaBuilder struct {
	progs    []*syntax.Prog
	rules    []int
	allBytes bool
	ids      map[string]int
	states   [][]thread
	next     [][256]uint16
	accept   []HTTPMask
}

func (b *dfaBuilder) key(ts []thread) string {
	var sb strings.Builder
	for _, t := range ts {
		sb.WriteString(strconv.FormatUint(uint64(t.pat), 36))
		sb.WriteByte(':')
		sb.WriteString(strconv.FormatUint(uint64(t.pc), 36))
		sb.WriteByte(',')
	}
	return sb.String()
}

// closure follows the non-consuming instructions from ts; begin and end
// say whether the position is the start or the end of the input. It
// returns the consuming (and Match) threads, and the EmptyWidth threads
// blocked on the end of the input, sorted.
func (b *dfaBuilder) closure(ts []thread, begin, end bool) []thread {
	seen := map[thread]bool{}
	var out []thread
	stack := slices.Clone(ts)
	for len(stack) > 0 {
		t := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if seen[t] {
			continue
		}
		seen[t] = true
		in := &b.progs[t.pat].Inst[t.pc]
		switch in.Op {
		case syntax.InstAlt, syntax.InstAltMatch:
			stack = append(stack, thread{t.pat, in.Out}, thread{t.pat, in.Arg})
		case syntax.InstCapture, syntax.InstNop:
			stack = append(stack, thread{t.pat, in.Out})
		case syntax.InstEmptyWidth:
			op := syntax.EmptyOp(in.Arg)
			if op&syntax.EmptyBeginText != 0 && !begin {
				continue
			}
			if op&syntax.EmptyEndText != 0 && !end {
				out = append(out, t) // blocked until the end
				continue
			}
			stack = append(stack, thread{t.pat, in.Out})
		case syntax.InstFail:
		default:
			out = append(out, t)
		}
	}
	slices.SortFunc(out, func(x, y thread) int {
		if x.pat != y.pat {
			return int(x.pat) - int(y.pat)
		}
		return int(x.pc) - int(y.pc)
	})
	return out
}

func (b *dfaBuilder) state(ts []thread, start bool) (int, error) {
	k := b.key(ts)
	if start { // state 1 even if its threads are some other state's
		k = "^" + k
	}
	if id, ok := b.ids[k]; ok {
		return id, nil
	}
	if len(b.states) >= HTTPMaxDFAStates {
		return 0, fmt.Errorf("the automaton of %d patterns has more than %d states; simplify the patterns or split the rules", len(b.progs), HTTPMaxDFAStates)
	}
	if len(ts) > httpMaxNFAThreads {
		return 0, fmt.Errorf("patterns too large")
	}
	id := len(b.states)
	b.ids[k] = id
	b.states = append(b.states, ts)
	var acc HTTPMask
	for _, t := range b.closure(ts, false, true) {
		if b.progs[t.pat].Inst[t.pc].Op == syntax.InstMatch {
			acc.set(b.rules[t.pat])
		}
	}
	b.accept = append(b.accept, acc)
	b.next = append(b.next, [256]uint16{})
	return id, nil
}

func matchByte(in *syntax.Inst, c byte) bool {
	r := rune(c)
	switch in.Op {
	case syntax.InstRune1:
		return in.Rune[0] == r
	case syntax.InstRune:
		return in.MatchRune(r)
	case syntax.InstRuneAny:
		return true
	case syntax.InstRuneAnyNotNL:
		return r != '\n'
	}
	return false
}

func (b *dfaBuilder) build() (DFA, error) {
	if _, err := b.state(nil, false); err != nil { // dead
		return DFA{}, err
	}
	var start []thread
	for i, p := range b.progs {
		start = append(start, thread{uint32(i), uint32(p.Start)})
	}
	if _, err := b.state(b.closure(start, true, false), true); err != nil {
		return DFA{}, err
	}
	for s := 1; s < len(b.states); s++ {
		ts := b.states[s]
		for c := 0; c < 256; c++ {
			if c >= 0x80 && !b.allBytes {
				continue
			}
			var nx []thread
			for _, t := range ts {
				in := &b.progs[t.pat].Inst[t.pc]
				if matchByte(in, byte(c)) {
					nx = append(nx, thread{t.pat, in.Out})
				}
			}
			id := httpDeadState
			if len(nx) > 0 {
				var err error
				if id, err = b.state(b.closure(nx, false, false), false); err != nil {
					return DFA{}, err
				}
			}
			b.next[s][c] = uint16(id)
		}
	}
	// Byte classes: bytes whose columns are equal in every state.
	d := DFA{Accept: b.accept}
	cols := map[string]int{}
	var reps []int
	for c := 0; c < 256; c++ {
		var sb strings.Builder
		for s := range b.next {
			sb.WriteString(strconv.Itoa(int(b.next[s][c])))
			sb.WriteByte(',')
		}
		k, ok := cols[sb.String()]
		if !ok {
			k = len(reps)
			cols[sb.String()] = k
			reps = append(reps, c)
		}
		d.Classes[c] = uint8(k)
	}
	d.NumClasses = len(reps)
	d.Next = make([]uint16, len(b.next)*d.NumClasses)
	for s := range b.next {
		for k, c := range reps {
			d.Next[s*d.NumClasses+k] = b.next[s][c]
		}
	}
	return d, nil
}
