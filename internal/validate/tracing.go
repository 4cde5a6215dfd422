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
	"path"
	"slices"
	"strconv"
	"strings"

	"github.com/palisade-dev/palisade/api/v1alpha1"
)

// hook is the shape every tracing hook kind shares (kprobes, tracepoints,
// lsmhooks, uprobes), so that each check is written once.
type hook struct {
	path string // e.g. spec.kprobes[0]
	kind string // kprobe, tracepoint, lsmhook, uprobe
	name string // what it hooks, for messages
	*v1alpha1.HookCommon

	// canReturn: the hook kind can trace the return (kprobes only);
	// ret: it does (return: true).
	canReturn, ret bool
	returnArg      *v1alpha1.Arg
	// canDeny: Deny applies (lsmhooks only).
	canDeny bool
}

func (h *hook) at(format string, args ...any) string {
	return h.path + "." + fmt.Sprintf(format, args...)
}

func (h *hook) String() string { return fmt.Sprintf("%s %q", h.kind, h.name) }

// hooks flattens a tracing spec into hooks, in source order per kind.
func hooks(s *v1alpha1.TracingPolicySpec) []*hook {
	var out []*hook
	for i := range s.KProbes {
		k := &s.KProbes[i]
		out = append(out, &hook{
			path: fmt.Sprintf("spec.kprobes[%d]", i), kind: "kprobe", name: string(k.Call), HookCommon: &k.HookCommon,
			canReturn: true, ret: k.Return != nil && *k.Return, returnArg: k.ReturnArg,
		})
	}
	for i := range s.Tracepoints {
		t := &s.Tracepoints[i]
		out = append(out, &hook{
			path: fmt.Sprintf("spec.tracepoints[%d]", i), kind: "tracepoint", name: string(t.Subsystem) + "/" + string(t.Event), HookCommon: &t.HookCommon,
		})
	}
	for i := range s.LSMHooks {
		l := &s.LSMHooks[i]
		out = append(out, &hook{
			path: fmt.Sprintf("spec.lsmhooks[%d]", i), kind: "lsmhook", name: string(l.Hook), HookCommon: &l.HookCommon,
			canDeny: true,
		})
	}
	for i := range s.UProbes {
		u := &s.UProbes[i]
		out = append(out, &hook{
			path: fmt.Sprintf("spec.uprobes[%d]", i), kind: "uprobe", name: u.Path, HookCommon: &u.HookCommon,
		})
	}
	return out
}

// checkTracing runs the semantic checks of one tracing policy: selectors
// that do not fit the arguments they compare (PAL501, PAL502, PAL510,
// PAL514), return probes (PAL506, PAL507), argument declarations (PAL508),
// actions that cannot work where they are (PAL504, PAL505, PAL515,
// PAL516), executable paths (PAL511), enforcement actions that are
// unscoped (PAL503), may hit a protected process (PAL509) or are not taken
// (PAL513), the datapath's limits (PAL517), and, with a hook checker, the
// hooks against a kernel (PAL520 and up).
func (c *checker) checkTracing(p *Policy) {
	spec, _ := p.Tracing()
	hs := hooks(spec)
	if len(hs) == 0 {
		c.add(p, "PAL512", "spec", "%s has no kprobes, tracepoints, lsmhooks or uprobes: it traces nothing", p.ID())
		return
	}
	// An empty podSelector ({}) selects every pod: it scopes nothing.
	scoped := spec.PodSelector != nil && (len(spec.PodSelector.MatchLabels) > 0 || len(spec.PodSelector.MatchExpressions) > 0)
	audit := spec.Mode == v1alpha1.EnforcementModeAudit
	if spec.NodeSelector != nil {
		c.checkSelector(p, "spec.nodeSelector", *spec.NodeSelector)
	}
	if spec.PodSelector != nil {
		c.checkSelector(p, "spec.podSelector", *spec.PodSelector)
	}
	var values valueCounts
	for _, h := range hs {
		c.checkHook(p, h, scoped, audit)
		c.checkLimits(p, h, &values)
	}
	c.checkUnitLimits(p, spec, values)
	if c.hooks != nil {
		for _, pr := range c.hooks(spec) {
			c.add(p, pr.Code, pr.Path, "%s", pr.Message)
		}
	}
}

// checkHook checks one hook: its argument declarations, return probe and
// selectors.
func (c *checker) checkHook(p *Policy, h *hook, podScoped, audit bool) {
	args := map[int32]*v1alpha1.Arg{}
	first := map[int32]int{}
	for i := range h.Args {
		a := &h.Args[i]
		if j, ok := first[a.Index]; ok {
			c.add(p, "PAL508", h.at("args[%d].index", i), "%s declares argument index %d twice (first at args[%d])", h, a.Index, j)
			continue
		}
		first[a.Index] = i
		args[a.Index] = a
	}
	if h.returnArg != nil && !h.ret {
		c.add(p, "PAL507", h.at("returnArg"), "%s has returnArg but does not set return: true, so the return value is never read", h)
	}
	for i := range h.Selectors {
		c.checkTracingSelector(p, h, h.at("selectors[%d]", i), &h.Selectors[i], args, podScoped, audit)
	}
}

// checkTracingSelector checks one selector of a hook: the arguments it
// compares, its executable paths and its actions.
func (c *checker) checkTracingSelector(p *Policy, h *hook, sp string, s *v1alpha1.Selector, args map[int32]*v1alpha1.Arg, podScoped, audit bool) {
	for j := range s.MatchArgs {
		m := &s.MatchArgs[j]
		mp := fmt.Sprintf("%s.matchArgs[%d]", sp, j)
		a, ok := args[m.Index]
		if !ok {
			c.add(p, "PAL502", mp+".index", "matchArgs compares argument %d, which %s does not declare in args%s", m.Index, h, declared(h.Args))
			continue
		}
		c.checkArgSelector(p, mp, m, a)
	}

	if len(s.MatchReturnArgs) > 0 {
		switch {
		case !h.canReturn:
			c.add(p, "PAL506", sp+".matchReturnArgs", "matchReturnArgs on %s: only kprobes can trace a return", h)
		case !h.ret:
			c.add(p, "PAL506", sp+".matchReturnArgs", "matchReturnArgs on %s, which does not set return: true, so no return value is read", h)
		default:
			for j := range s.MatchReturnArgs {
				m := &s.MatchReturnArgs[j]
				mp := fmt.Sprintf("%s.matchReturnArgs[%d]", sp, j)
				switch {
				case h.returnArg == nil:
					c.add(p, "PAL502", mp+".index", "matchReturnArgs compares the return value, but %s declares no returnArg", h)
				case m.Index != h.returnArg.Index:
					c.add(p, "PAL502", mp+".index", "matchReturnArgs compares argument %d, but the returnArg of %s has index %d", m.Index, h, h.returnArg.Index)
				default:
					c.checkArgSelector(p, mp, m, h.returnArg)
				}
			}
		}
	}

	for j, b := range s.MatchBinaries {
		for k, v := range b.Values {
			vp := fmt.Sprintf("%s.matchBinaries[%d].values[%d]", sp, j, k)
			if msg := binaryPathProblem(b.Operator, v); msg != "" {
				c.add(p, "PAL511", vp, "matchBinaries %s value %q %s", b.Operator, v, msg)
			}
		}
	}

	enforcing := false
	for k, a := range s.MatchActions {
		ap := fmt.Sprintf("%s.matchActions[%d]", sp, k)
		c.checkAction(p, h, ap, a, args)
		if !enforces(a.Action) {
			continue
		}
		enforcing = true
		if !podScoped && len(s.MatchBinaries) == 0 && len(s.MatchNamespaces) == 0 && len(s.MatchPIDs) == 0 && len(s.MatchCapabilities) == 0 {
			every := "every process on the node"
			if p.TracingPolicy != nil {
				every = "every process in the namespace's pods"
			}
			c.add(p, "PAL503", ap+".action", "%s on %s applies to %s: the policy has no podSelector and the selector has no matchBinaries, matchNamespaces, matchPIDs or matchCapabilities", a.Action, h, every)
		}
		if audit {
			c.add(p, "PAL513", ap+".action", "%s on %s is reported, not taken: the policy's mode is audit", a.Action, h)
		}
	}
	if enforcing {
		c.checkProtected(p, sp, s)
	}
}

// enforces reports whether an action acts on the calling process (and so
// needs scoping, never targets protected processes, and is not taken in
// audit mode).
func enforces(a v1alpha1.ActionType) bool {
	return a == v1alpha1.ActionSigkill || a == v1alpha1.ActionSignal || a == v1alpha1.ActionDeny
}

// checkAction checks that an action can work on its hook (PAL504), that
// FollowFD and UnfollowFD name suitable declared arguments (PAL505), that
// Signal says which signal (PAL516), and that the action's parameters are
// ones it uses (PAL515).
func (c *checker) checkAction(p *Policy, h *hook, ap string, a v1alpha1.Action, args map[int32]*v1alpha1.Arg) {
	if a.Action == v1alpha1.ActionDeny && !h.canDeny {
		c.add(p, "PAL504", ap+".action", "Deny on %s: only lsmhooks can fail a call; use Sigkill, or hook the matching LSM hook", h)
	}

	// refArg checks that field (argFd or argName) names a declared argument
	// of the wanted class.
	refArg := func(field string, idx *int32, want argClass) {
		if idx == nil {
			return
		}
		arg, ok := args[*idx]
		switch {
		case !ok:
			c.add(p, "PAL505", ap+"."+field, "%s %s is %d, which %s does not declare in args%s", a.Action, field, *idx, h, declared(h.Args))
		case classOf(arg.Type) != want:
			c.add(p, "PAL505", ap+"."+field, "%s %s is argument %d of type %s; it must be %s", a.Action, field, *idx, arg.Type, want.article())
		}
	}
	// argFd may be any integer argument, not only type fd: the kernel's
	// fd_install takes an unsigned int, and Tetragon's (and the examples')
	// FollowFD policies declare it as int.
	switch a.Action {
	case v1alpha1.ActionSignal:
		if a.ArgSig == nil {
			c.add(p, "PAL516", ap, "Signal on %s needs argSig, the signal to send (1-64, e.g. 10 for SIGUSR1)", h)
		}
	case v1alpha1.ActionFollowFD:
		var missing []string
		if a.ArgFd == nil {
			missing = append(missing, "argFd")
		}
		if a.ArgName == nil {
			missing = append(missing, "argName")
		}
		if len(missing) > 0 {
			c.add(p, "PAL505", ap, "FollowFD on %s needs %s", h, strings.Join(missing, " and "))
		}
		refArg("argFd", a.ArgFd, classInt)
		refArg("argName", a.ArgName, classString)
	case v1alpha1.ActionUnfollowFD:
		if a.ArgFd == nil {
			c.add(p, "PAL505", ap, "UnfollowFD on %s needs argFd", h)
		}
		refArg("argFd", a.ArgFd, classInt)
	}

	unused := func(field string, set bool, usedBy string) {
		if set {
			c.add(p, "PAL515", ap+"."+field, "%s has no effect on %s: only %s uses it", field, a.Action, usedBy)
		}
	}
	unused("argError", a.ArgError != nil && a.Action != v1alpha1.ActionDeny, "Deny")
	unused("argFd", a.ArgFd != nil && a.Action != v1alpha1.ActionFollowFD && a.Action != v1alpha1.ActionUnfollowFD, "FollowFD and UnfollowFD")
	// argName on UnfollowFD is tolerated: Tetragon's documented sys_close
	// policy sets it, and it does no harm.
	unused("argName", a.ArgName != nil && a.Action != v1alpha1.ActionFollowFD && a.Action != v1alpha1.ActionUnfollowFD, "FollowFD")
	unused("argSig", a.ArgSig != nil && a.Action != v1alpha1.ActionSignal, "Signal")
	unused("rateLimit", a.RateLimit != "" && a.Action != v1alpha1.ActionNotify, "Notify")
}

// checkProtected reports selectors of Sigkill, Signal and Deny actions that name a
// protected process (PAL509), enforcing DESIGN.md's failure rule: tracing
// actions never target Palisade's own agent, PID 1, the kubelet or the
// container runtime.
//
// Only what the policy names explicitly is decidable here: PID 1 in a
// matchPIDs In, and protected executables by basename in matchBinaries In,
// Prefix and Postfix. PID 1 counted in the caller's PID namespace
// (isNamespacePID) is a container's init, not the node's, when the policy
// is a namespaced TracingPolicy, which only sees processes in pods; in a
// ClusterTracingPolicy it includes the node's init. A selector that reaches a protected process without
// naming it (no matchBinaries, a NotIn, a directory prefix such as
// "/usr/bin/") passes this check; the node agent enforces the rule again at
// runtime by excluding the protected processes from every Sigkill and Deny
// (a later issue), so this check is the early, precise error and not the
// only guard.
func (c *checker) checkProtected(p *Policy, sp string, s *v1alpha1.Selector) {
	for j, m := range s.MatchPIDs {
		if m.Operator != v1alpha1.SetOperatorIn {
			continue
		}
		if p.TracingPolicy != nil && m.IsNamespacePID != nil && *m.IsNamespacePID {
			continue
		}
		for k, pid := range m.Values {
			if pid == 1 {
				c.add(p, "PAL509", fmt.Sprintf("%s.matchPIDs[%d].values[%d]", sp, j, k), "Sigkill, Signal and Deny never target PID 1 (init), and this selector matches it")
			}
		}
	}
	for j, b := range s.MatchBinaries {
		for k, v := range b.Values {
			if name, ok := protectedBinary(b.Operator, v); ok {
				c.add(p, "PAL509", fmt.Sprintf("%s.matchBinaries[%d].values[%d]", sp, j, k), "Sigkill, Signal and Deny never target %s, and matchBinaries %s %q matches it", name, b.Operator, v)
			}
		}
	}
}

// protectedNames are the executables (by basename) of the processes
// tracing actions must never target: the kubelet, container runtimes and
// their shims, and Palisade's agent. containerd-shim stands for every
// containerd-shim* (e.g. containerd-shim-runc-v2).
var protectedNames = []string{
	"kubelet",
	"containerd", "containerd-shim", "containerd-shim-runc-v1", "containerd-shim-runc-v2",
	"crio", "conmon", "dockerd", "runc", "crun",
	"palisade-agent",
}

// isProtected reports whether an executable's basename is protected.
func isProtected(base string) bool {
	return slices.Contains(protectedNames, base) || strings.HasPrefix(base, "containerd-shim")
}

// protectedBinary reports which protected executable a matchBinaries value
// selects, judged by basename: In names it exactly, Prefix names the start
// of its basename, Postfix the end of its path.
func protectedBinary(op v1alpha1.BinaryOperator, v string) (string, bool) {
	base := v[strings.LastIndex(v, "/")+1:]
	switch op {
	case "In":
		if isProtected(base) {
			return base, true
		}
	case "Prefix":
		if base == "" {
			return "", false // a directory prefix: not decidable by name
		}
		for _, n := range protectedNames {
			if strings.HasPrefix(n, base) {
				return n, true
			}
		}
		if strings.HasPrefix(base, "containerd-shim") {
			return base + "*", true
		}
	case "Postfix":
		if strings.Contains(v, "/") {
			// The value ends with a whole basename.
			if isProtected(base) {
				return base, true
			}
			return "", false
		}
		// The value is the end of a basename.
		for _, n := range protectedNames {
			if strings.HasSuffix(n, v) {
				return n, true
			}
		}
	}
	return "", false
}

// binaryPathProblem says why a matchBinaries value cannot match an
// executable's path, or "" when it can. The kernel reports the resolved
// absolute path, so In and NotIn need clean absolute paths and Prefix and
// NotPrefix an absolute path prefix; Postfix and NotPostfix compare the end
// of the path and take any suffix.
func binaryPathProblem(op v1alpha1.BinaryOperator, v string) string {
	switch op {
	case "In", "NotIn":
		if !strings.HasPrefix(v, "/") {
			return "is not an absolute path"
		}
		if path.Clean(v) != v {
			return fmt.Sprintf("is not a clean path (the kernel reports %q)", path.Clean(v))
		}
	case "Prefix", "NotPrefix":
		if !strings.HasPrefix(v, "/") {
			return "is not an absolute path prefix"
		}
		if c := path.Clean(v); c != v && c+"/" != v {
			return fmt.Sprintf("is not a clean path prefix (the kernel reports paths such as %q)", c)
		}
	}
	return ""
}

// argClass groups argument types by the operators they take.
type argClass int

const (
	classObject argClass = iota
	classInt
	classString
	classAddr
)

func (k argClass) article() string {
	return [...]string{"a kernel object", "an integer (e.g. fd or int)", "string-like (e.g. file, path or string)", "socket-like"}[k]
}

// intType is the value range of an integer argument type.
type intType struct {
	bits   int
	signed bool
	// caps: values may also be capability names, joined by "|" when the
	// type is a capability set.
	caps, capSet bool
}

// intTypes are the integer argument types (#IntArgType).
var intTypes = map[v1alpha1.ArgType]intType{
	"int":             {bits: 32, signed: true},
	"int8":            {bits: 8, signed: true},
	"int16":           {bits: 16, signed: true},
	"int32":           {bits: 32, signed: true},
	"int64":           {bits: 64, signed: true},
	"uint8":           {bits: 8},
	"uint16":          {bits: 16},
	"uint32":          {bits: 32},
	"uint64":          {bits: 64},
	"size_t":          {bits: 64},
	"fd":              {bits: 32, signed: true},
	"syscall64":       {bits: 64, signed: true},
	"capability":      {bits: 32, signed: true, caps: true},
	"kernel_cap_t":    {bits: 64, caps: true, capSet: true},
	"cap_inheritable": {bits: 64, caps: true, capSet: true},
	"cap_permitted":   {bits: 64, caps: true, capSet: true},
	"cap_effective":   {bits: 64, caps: true, capSet: true},
}

// stringTypes are the string-like argument types (#StringArgType).
var stringTypes = []v1alpha1.ArgType{"string", "char_buf", "char_iovec", "const_buf", "file", "path", "dentry", "linux_binprm", "data_loc"}

// addrTypes are the socket-like argument types (#AddrArgType).
var addrTypes = []v1alpha1.ArgType{"sock", "skb", "sockaddr", "socket"}

func classOf(t v1alpha1.ArgType) argClass {
	switch {
	case intTypes[t].bits > 0:
		return classInt
	case slices.Contains(stringTypes, t):
		return classString
	case slices.Contains(addrTypes, t):
		return classAddr
	}
	return classObject
}

var (
	intOps    = []v1alpha1.ArgOperator{"Equal", "NotEqual", "GT", "LT", "Mask", "InMap", "NotInMap"}
	stringOps = []v1alpha1.ArgOperator{"Equal", "NotEqual", "Prefix", "NotPrefix", "Postfix", "NotPostfix"}
	addrOps   = []v1alpha1.ArgOperator{"SAddr", "DAddr", "NotSAddr", "NotDAddr", "SPort", "DPort", "NotSPort", "NotDPort",
		"SPortPriv", "DPortPriv", "NotSPortPriv", "NotDPortPriv", "Protocol", "Family", "State"}
	// sockaddrOps: a sockaddr is one address, with no peer, protocol or
	// state.
	sockaddrOps = []v1alpha1.ArgOperator{"SAddr", "NotSAddr", "SPort", "NotSPort", "SPortPriv", "NotSPortPriv", "Family"}
)

// operatorsFor returns the operators an argument type takes.
func operatorsFor(t v1alpha1.ArgType) []v1alpha1.ArgOperator {
	switch classOf(t) {
	case classInt:
		return intOps
	case classString:
		return stringOps
	case classAddr:
		if t == "sockaddr" {
			return sockaddrOps
		}
		return addrOps
	}
	// Kernel objects are reported as a whole; comparing documented
	// subfields is not supported yet, so they take no operator.
	return nil
}

func joinOps(ops []v1alpha1.ArgOperator) string {
	if len(ops) == 0 {
		return "none"
	}
	s := make([]string, len(ops))
	for i, o := range ops {
		s[i] = string(o)
	}
	return strings.Join(s, ", ")
}

// declared lists the declared argument indexes for messages.
func declared(args []v1alpha1.Arg) string {
	if len(args) == 0 {
		return " (it declares none)"
	}
	idx := make([]string, len(args))
	for i, a := range args {
		idx[i] = strconv.Itoa(int(a.Index))
	}
	return " (declared: " + strings.Join(idx, ", ") + ")"
}

// checkArgSelector checks one matchArgs or matchReturnArgs entry against the
// argument it compares: the operator must suit the type (PAL501), Mask, GT
// and LT take one value (PAL514), and every value must parse (PAL510).
func (c *checker) checkArgSelector(p *Policy, mp string, m *v1alpha1.ArgSelector, a *v1alpha1.Arg) {
	ops := operatorsFor(a.Type)
	if !slices.Contains(ops, m.Operator) {
		c.add(p, "PAL501", mp+".operator", "operator %s does not apply to argument %d of type %s; valid operators: %s", m.Operator, a.Index, a.Type, joinOps(ops))
		return
	}
	switch m.Operator {
	case "Mask", "GT", "LT":
		if len(m.Values) != 1 {
			c.add(p, "PAL514", mp+".values", "%s compares with exactly one value, and %d are given", m.Operator, len(m.Values))
		}
	}
	for k, v := range m.Values {
		if err := parseArgValue(a.Type, m.Operator, v); err != nil {
			c.add(p, "PAL510", fmt.Sprintf("%s.values[%d]", mp, k), "%s value %q for argument %d of type %s: %v", m.Operator, v, a.Index, a.Type, err)
		}
	}
}

// parseArgValue checks that v is a value operator op can compare an
// argument of type t with. The operator suits the type.
func parseArgValue(t v1alpha1.ArgType, op v1alpha1.ArgOperator, v string) error {
	switch op {
	case "SAddr", "DAddr", "NotSAddr", "NotDAddr":
		if _, err := parsePrefix(v); err != nil {
			return fmt.Errorf("not an IP address or CIDR")
		}
		return nil
	case "SPort", "DPort", "NotSPort", "NotDPort":
		return parseRange(v, parsePort)
	case "SPortPriv", "DPortPriv", "NotSPortPriv", "NotDPortPriv":
		// These match the privileged ports (0-1023) and compare with no
		// value; the schema requires values, which are ignored.
		return nil
	case "Protocol":
		return parseNamedNumber(v, ipProtocols, 255, "an IP protocol number (0-255) or name such as IPPROTO_TCP")
	case "Family":
		return parseNamedNumber(v, addressFamilies, 65535, "an address family number or name such as AF_INET or AF_INET6")
	case "State":
		if !slices.Contains(tcpStates, v) {
			return fmt.Errorf("not a TCP state; states: %s", strings.Join(tcpStates, ", "))
		}
		return nil
	}
	it, ok := intTypes[t]
	if !ok {
		return nil // strings compare with any text
	}
	switch op {
	case "InMap", "NotInMap":
		return parseRange(v, func(s string) (int64, error) { return 0, parseInt(s, it, false) })
	case "Mask":
		return parseInt(v, it, true)
	}
	return parseInt(v, it, false)
}

// parseRange parses a value or a "min:max" range of values.
func parseRange(v string, parse func(string) (int64, error)) error {
	lo, hi, isRange := strings.Cut(v, ":")
	a, err := parse(lo)
	if err != nil || !isRange {
		return err
	}
	b, err := parse(hi)
	if err != nil {
		return err
	}
	if a > b {
		return fmt.Errorf("range %s is reversed", v)
	}
	return nil
}

func parsePort(s string) (int64, error) {
	if !isDecimal(s) {
		return 0, fmt.Errorf("%q is not a port number (0-65535) or a min:max range", s)
	}
	n, err := strconv.ParseUint(s, 10, 16)
	if err != nil {
		return 0, fmt.Errorf("%s is not a port number (0-65535)", s)
	}
	return int64(n), nil
}

// isDecimal reports whether s is a decimal number without sign or leading
// zeros.
func isDecimal(s string) bool {
	if s == "" || (len(s) > 1 && s[0] == '0') {
		return false
	}
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	return true
}

// parseInt checks that s is an integer that fits the argument type: decimal
// (optionally negative) or 0x hexadecimal, or for capability types a
// capability name. A mask is the type's bits, so it is unsigned.
func parseInt(s string, it intType, mask bool) error {
	if it.caps && strings.HasPrefix(s, "CAP_") {
		names := []string{s}
		if it.capSet {
			names = strings.Split(s, "|")
		}
		for _, n := range names {
			if !slices.Contains(capabilities, n) {
				return fmt.Errorf("%q is not a capability name", n)
			}
		}
		return nil
	}
	neg := strings.HasPrefix(s, "-")
	body := strings.TrimPrefix(s, "-")
	var (
		mag uint64
		err error
	)
	switch {
	case strings.HasPrefix(body, "0x") || strings.HasPrefix(body, "0X"):
		mag, err = strconv.ParseUint(body[2:], 16, 64)
	case isDecimal(body):
		mag, err = strconv.ParseUint(body, 10, 64)
	case body != "" && strings.Trim(body, "0123456789") == "":
		return fmt.Errorf("leading zero is ambiguous (octal or decimal); write decimal without leading zeros, or hexadecimal with 0x")
	default:
		return fmt.Errorf("not an integer (decimal or 0x hexadecimal)")
	}
	if err != nil {
		return fmt.Errorf("not an integer (decimal or 0x hexadecimal) of at most 64 bits")
	}
	signed := it.signed && !mask
	var lo, hi string
	ok := true
	switch {
	case signed:
		limit := uint64(1) << (it.bits - 1)
		ok = (neg && mag <= limit) || (!neg && mag < limit)
		lo, hi = "-"+strconv.FormatUint(limit, 10), strconv.FormatUint(limit-1, 10)
	default:
		max := ^uint64(0) >> (64 - it.bits)
		ok = (!neg || mag == 0) && mag <= max
		lo, hi = "0", strconv.FormatUint(max, 10)
	}
	if !ok {
		what := "value"
		if mask {
			what = "mask"
		}
		return fmt.Errorf("%s out of range for a %d-bit %s argument (%s to %s)", what, it.bits, map[bool]string{true: "signed", false: "unsigned"}[signed], lo, hi)
	}
	return nil
}

// parseNamedNumber accepts a name from names or a number up to max.
func parseNamedNumber(v string, names []string, max uint64, want string) error {
	if slices.Contains(names, v) {
		return nil
	}
	if isDecimal(v) {
		if n, err := strconv.ParseUint(v, 10, 64); err == nil && n <= max {
			return nil
		}
	}
	return fmt.Errorf("not %s", want)
}

var ipProtocols = []string{
	"IPPROTO_IP", "IPPROTO_ICMP", "IPPROTO_IGMP", "IPPROTO_IPIP", "IPPROTO_TCP", "IPPROTO_EGP", "IPPROTO_PUP",
	"IPPROTO_UDP", "IPPROTO_IDP", "IPPROTO_TP", "IPPROTO_DCCP", "IPPROTO_IPV6", "IPPROTO_RSVP", "IPPROTO_GRE",
	"IPPROTO_ESP", "IPPROTO_AH", "IPPROTO_ICMPV6", "IPPROTO_MTP", "IPPROTO_BEETPH", "IPPROTO_ENCAP", "IPPROTO_PIM",
	"IPPROTO_COMP", "IPPROTO_L2TP", "IPPROTO_SCTP", "IPPROTO_UDPLITE", "IPPROTO_MPLS", "IPPROTO_ETHERNET",
	"IPPROTO_RAW", "IPPROTO_MPTCP",
}

var addressFamilies = []string{
	"AF_UNSPEC", "AF_UNIX", "AF_LOCAL", "AF_INET", "AF_INET6", "AF_NETLINK", "AF_PACKET", "AF_VSOCK", "AF_XDP",
	"AF_BLUETOOTH", "AF_CAN", "AF_ALG", "AF_KEY", "AF_TIPC", "AF_RDS", "AF_SMC", "AF_MCTP",
}

var tcpStates = []string{
	"TCP_ESTABLISHED", "TCP_SYN_SENT", "TCP_SYN_RECV", "TCP_FIN_WAIT1", "TCP_FIN_WAIT2", "TCP_TIME_WAIT",
	"TCP_CLOSE", "TCP_CLOSE_WAIT", "TCP_LAST_ACK", "TCP_LISTEN", "TCP_CLOSING", "TCP_NEW_SYN_RECV",
	"TCP_BOUND_INACTIVE",
}

// capabilities are the Linux capability names (#Capability).
var capabilities = []string{
	"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL", "CAP_SETGID",
	"CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE", "CAP_NET_BIND_SERVICE", "CAP_NET_BROADCAST",
	"CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_IPC_LOCK", "CAP_IPC_OWNER", "CAP_SYS_MODULE", "CAP_SYS_RAWIO",
	"CAP_SYS_CHROOT", "CAP_SYS_PTRACE", "CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE",
	"CAP_SYS_RESOURCE", "CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE", "CAP_AUDIT_WRITE",
	"CAP_AUDIT_CONTROL", "CAP_SETFCAP", "CAP_MAC_OVERRIDE", "CAP_MAC_ADMIN", "CAP_SYSLOG", "CAP_WAKE_ALARM",
	"CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ", "CAP_PERFMON", "CAP_BPF", "CAP_CHECKPOINT_RESTORE",
}
