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
	"strings"

	"go.yaml.in/yaml/v3"
)

// Tracing policies restrict processes only through their enforcement
// actions (Sigkill, Override, Signal, ...). Everything else a tracing
// policy does is observation. So the importer's rule for tracing is:
//
//   - leaving out an enforcement action, or a hook or enforcer that
//     enforces, makes the policy less restrictive: the object is refused;
//   - leaving out a selector term (or a scope such as containerSelector)
//     widens what the selector's actions apply to: refused when those
//     actions enforce (they would kill or fail calls the source spares),
//     a warning when they only notify (more events);
//   - leaving out anything that only shapes events (rate limits, stack
//     traces, NoPost, socket tracking, GetUrl) is a warning.

// tracingSpecOrder is the order of a tracing spec's fields in the output.
var tracingSpecOrder = []string{"description", "mode", "podSelector", "kprobes", "tracepoints", "lsmhooks", "uprobes"}

// enforcingActions are the Tetragon (and Palisade) actions that stop or
// change what a process does.
var enforcingActions = map[string]bool{"sigkill": true, "override": true, "signal": true,
	"notifyenforcer": true, "set": true, "deny": true}

// enforces reports whether any action under n enforces.
func enforces(n *yaml.Node) bool {
	n = deref(n)
	if n == nil {
		return false
	}
	switch n.Kind {
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := deref(n.Content[i]), deref(n.Content[i+1])
			if k.Value == "action" && v != nil && v.Kind == yaml.ScalarNode && enforcingActions[strings.ToLower(v.Value)] {
				return true
			}
			if k.Value == "enforcers" && !isNull(v) {
				return true
			}
			if enforces(v) {
				return true
			}
		}
	case yaml.SequenceNode:
		for _, c := range n.Content {
			if enforces(c) {
				return true
			}
		}
	}
	return false
}

// tetragonList is one element of a policy's lists.
type tetragonList struct {
	typ    string
	values []string
	at     *yaml.Node
	used   bool
}

// tracing is the translation state of one tracing policy.
type tracing struct {
	t     *tr
	lists map[string]*tetragonList
}

// tetragon translates a Tetragon TracingPolicy (cluster-wide, to
// ClusterTracingPolicy) or TracingPolicyNamespaced (to TracingPolicy).
func (im *Importer) tetragon(t *tr, doc *yaml.Node, src Source) []*Policy {
	namespaced := src.Kind == "TracingPolicyNamespaced"
	kind := KindClusterTracingPolicy
	if namespaced {
		kind = KindTracingPolicy
	}
	var (
		m    *meta
		spec *val
	)
	t.walk(doc, "", src.Kind, []field{
		{"apiVersion", noop},
		{"apiversion", t.apiversionTypo},
		{"kind", noop},
		{"metadata", func(e entry) { m = t.metadata(e, namespaced) }},
		{"spec", func(e entry) { spec = (&tracing{t: t, lists: map[string]*tetragonList{}}).spec(e) }},
		{"status", t.status},
	})
	if m == nil {
		t.fail(doc, "metadata", "metadata is missing; every object needs a name")
		return nil
	}
	if spec == nil {
		if !t.failed() {
			t.fail(doc, "spec", "%s has no spec", src.Kind)
		}
		return nil
	}
	if m.description != nil {
		spec.set("description", m.description)
		spec.sortBy(tracingSpecOrder...)
	}
	o := obj(t.pos(doc), "")
	o.set("apiVersion", strv(APIVersion, t.pos(doc), "apiVersion"))
	o.set("kind", strv(kind, t.pos(doc), "kind"))
	o.set("metadata", m.value(t, m.name, namespaced))
	o.set("spec", spec)
	ns := ""
	if namespaced {
		ns = m.namespace
	}
	return []*Policy{newPolicy(kind, ns, m.name, "spec", o)}
}

// spec translates a tracing policy's spec.
func (g *tracing) spec(e entry) *val {
	t := g.t
	out := obj(t.pos(e.val), e.path)
	policyEnforces := enforces(e.val)
	hooks := map[string]*val{}
	hookList := func(kind string) func(entry) {
		return func(e entry) {
			its, ok := t.items(e)
			if !ok {
				return
			}
			for _, it := range its {
				// A hook may come out as another kind (a security_
				// kprobe that overrides becomes an LSM hook).
				outKind, hs := g.hook(it, kind)
				f := hookFields[outKind]
				if hooks[f] == nil {
					hooks[f] = list(t.pos(e.val), e.path)
				}
				for _, h := range hs {
					hooks[f].add(h)
				}
			}
		}
	}
	t.walk(e.val, e.path, "a TracingPolicy spec", []field{
		{"lists", g.readLists},
		{"podSelector", func(e entry) {
			// Kept even when empty: in Tetragon any podSelector, {}
			// included, limits the policy to processes in pods, which
			// leaves host processes out.
			out.set("podSelector", t.selector(e, selSubject, verbatim))
		}},
		{"containerSelector", func(e entry) {
			if policyEnforces {
				t.fail(e.key, e.path, "containerSelector limits the policy to some containers; Palisade has no equivalent, and leaving it out would let the policy's enforcement actions act on every container")
				return
			}
			t.drop(e, "the policy only reports, so without the container scope it reports calls from every container of the selected pods")
		}},
		{"kprobes", hookList("kprobe")},
		{"tracepoints", hookList("tracepoint")},
		{"lsmhooks", hookList("lsmhook")},
		{"uprobes", hookList("uprobe")},
		{"usdts", func(e entry) {
			if enforces(e.val) {
				t.fail(e.key, e.path, "USDT probes have no Palisade equivalent, and these carry enforcement actions that leaving them out would drop")
				return
			}
			t.drop(e, "Palisade hooks kernel functions, tracepoints, LSM hooks and uprobes, not USDT probes; the policy reports less than the source")
		}},
		{"enforcers", func(e entry) {
			t.fail(e.key, e.path, "enforcers make Tetragon fail or kill listed calls; Palisade has no equivalent, and leaving them out would stop that enforcement")
		}},
		{"options", func(e entry) {
			t.drop(e, "options tune Tetragon's sensors; they change how events are collected, not what is enforced")
		}},
		{"loader", func(e entry) {
			t.drop(e, "loader events report the binaries and libraries processes load; Palisade has no such sensor")
		}},
	})
	for name, l := range g.lists {
		if !l.used {
			t.report("PAL901", l.at, e.path+".lists", "list %q is not used by any hook or selector and is not imported", name)
		}
	}
	if t.failed() {
		return nil
	}
	n := 0
	for _, f := range hookFields {
		out.setList(f, hooks[f])
		n += len(listItems(hooks[f]))
	}
	if n == 0 {
		t.fail(e.key, e.path, "no hook is left to import, so the Palisade policy would do nothing")
		return nil
	}
	out.sortBy(tracingSpecOrder...)
	return out
}

// readLists reads spec.lists; hooks and selectors that refer to a list
// ("list:NAME") get its values written out.
func (g *tracing) readLists(e entry) {
	t := g.t
	its, ok := t.items(e)
	if !ok {
		return
	}
	for _, it := range its {
		l := &tetragonList{at: it.val}
		name := ""
		t.walk(it.val, it.path, "a list", []field{
			{"name", func(e entry) { name, _ = t.str(e) }},
			{"type", func(e entry) { l.typ, _ = t.str(e) }},
			{"values", func(e entry) { l.values, _, _ = t.strs(e) }},
			{"pattern", noop},
			{"validated", noop},
		})
		if name != "" {
			g.lists[name] = l
		}
	}
}

// hookFields maps a hook kind to its spec field.
var hookFields = map[string]string{"kprobe": "kprobes", "tracepoint": "tracepoints", "lsmhook": "lsmhooks", "uprobe": "uprobes"}

// securityHooks maps kernel functions security_X to the LSM hook they
// call, for the functions whose arguments are exactly the hook's, so that
// a kprobe's args and matchArgs mean the same on the hook.
var securityHooks = map[string]string{
	"security_bprm_check":            "bprm_check_security",
	"security_file_open":             "file_open",
	"security_file_permission":       "file_permission",
	"security_inode_follow_link":     "inode_follow_link",
	"security_inode_mkdir":           "inode_mkdir",
	"security_inode_rmdir":           "inode_rmdir",
	"security_inode_unlink":          "inode_unlink",
	"security_kernel_load_data":      "kernel_load_data",
	"security_kernel_module_request": "kernel_module_request",
	"security_kernel_read_file":      "kernel_read_file",
	"security_path_truncate":         "path_truncate",
	"security_ptrace_access_check":   "ptrace_access_check",
	"security_sb_mount":              "sb_mount",
	"security_socket_bind":           "socket_bind",
	"security_socket_connect":        "socket_connect",
	"security_task_kill":             "task_kill",
}

// asLSMHook says which LSM hook a kprobe becomes, or "". Tetragon fails a
// call with Override on a kprobe; Palisade fails calls on LSM hooks only.
// A kprobe on security_X that overrides becomes the LSM hook X with Deny:
// the call fails with the same error. Only kprobes whose enforcement is
// Override alone are rewritten: the LSM hook runs after the other LSMs, so
// when one of them already refused the call a Sigkill on the hook would
// not run, which would enforce less than the source.
func asLSMHook(n *yaml.Node) string {
	var callName string
	for i := 0; i+1 < len(n.Content); i += 2 {
		if deref(n.Content[i]).Value == "call" {
			if v := deref(n.Content[i+1]); v != nil {
				callName = v.Value
			}
		}
	}
	hook, ok := securityHooks[callName]
	if !ok {
		return ""
	}
	actions := map[string]bool{}
	collectActions(n, actions)
	if !actions["override"] {
		return ""
	}
	for a := range actions {
		if a != "override" && enforcingActions[a] {
			return ""
		}
	}
	return hook
}

// collectActions gathers the lower-case names of the actions under n.
func collectActions(n *yaml.Node, into map[string]bool) {
	n = deref(n)
	if n == nil {
		return
	}
	for i, c := range n.Content {
		if n.Kind == yaml.MappingNode && i%2 == 0 && deref(c).Value == "action" && i+1 < len(n.Content) {
			if v := deref(n.Content[i+1]); v != nil && v.Kind == yaml.ScalarNode {
				into[strings.ToLower(v.Value)] = true
			}
		}
		collectActions(c, into)
	}
}

// matchedArgs returns the argument indexes that a hook's selectors
// compare (matchArgs and matchReturnArgs).
func matchedArgs(n *yaml.Node) map[int64]bool {
	out := map[int64]bool{}
	var walk func(n *yaml.Node, inMatch bool)
	walk = func(n *yaml.Node, inMatch bool) {
		n = deref(n)
		if n == nil {
			return
		}
		if n.Kind == yaml.MappingNode {
			for i := 0; i+1 < len(n.Content); i += 2 {
				k, v := deref(n.Content[i]).Value, deref(n.Content[i+1])
				if inMatch && k == "index" && v != nil {
					var x int64
					if v.Decode(&x) == nil {
						out[x] = true
					}
				}
				walk(v, k == "matchArgs" || k == "matchReturnArgs")
			}
			return
		}
		for _, c := range n.Content {
			walk(c, inMatch)
		}
	}
	walk(n, false)
	return out
}

// hook translates one hook of the given kind and returns the kind it
// became. A kprobe whose call is a list of syscalls becomes one kprobe per
// syscall.
func (g *tracing) hook(e entry, kind string) (string, []*val) {
	t := g.t
	mark := t.errs()
	h := obj(t.pos(e.val), e.path)
	hookEnforces := enforces(e.val)
	lsm := ""
	if kind == "kprobe" && e.val != nil && e.val.Kind == yaml.MappingNode {
		lsm = asLSMHook(e.val)
	}
	outKind := kind
	if lsm != "" {
		outKind = "lsmhook"
	}
	var (
		calls    []call
		returns  bool
		retArg   *entry
		args     []int64 // declared argument indexes, in order
		argTypes = map[int64]string{}
		callName string
		dropArgs string // why the args are left out, if they are
	)
	matched := matchedArgs(e.val)
	common := []field{
		{"args", func(e entry) {
			its, ok := t.items(e)
			if !ok {
				return
			}
			if dropArgs != "" && len(its) > 0 {
				t.drop(e, "%s", dropArgs)
				return
			}
			l := list(t.pos(e.val), e.path)
			for _, it := range its {
				a := g.arg(it, matched)
				if a != nil && kind == "tracepoint" && !g.tracepointIndex(it, a) {
					a = nil
				}
				if a != nil {
					l.add(a)
					idx := a.get("index").num
					args = append(args, idx)
					if ty := a.get("type"); ty != nil {
						argTypes[idx] = ty.str
					}
				}
			}
			h.setList("args", l)
		}},
		{"selectors", func(e entry) {
			its, ok := t.items(e)
			if !ok {
				return
			}
			l := list(t.pos(e.val), e.path)
			for _, it := range its {
				if s := g.selector(it, outKind, callName, args, argTypes); s != nil {
					l.add(s)
				}
			}
			h.setList("selectors", l)
		}},
		{"message", func(e entry) {
			if s, ok := t.str(e); ok {
				h.set("message", strv(s, t.pos(e.val), e.path))
			}
		}},
		{"tags", func(e entry) {
			ss, its, _ := t.strs(e)
			l := list(t.pos(e.val), e.path)
			for i, s := range ss {
				l.add(strv(s, t.pos(its[i].val), its[i].path))
			}
			h.setList("tags", l)
		}},
	}
	var table []field
	order := []string{"args", "selectors", "message", "tags"}
	switch {
	case kind == "kprobe" && lsm != "":
		table = []field{
			{"call", func(e entry) {
				callName, _ = t.str(e)
				h.set("hook", strv(lsm, t.pos(e.val), e.path))
				t.note(e.val, e.path, "kprobe on %s with Override written as the LSM hook %q with Deny, which fails the call the same way", callName, lsm)
			}},
			{"syscall", noop},
			{"return", func(e entry) {
				if b, _ := t.boolean(e); b {
					t.drop(e, "an LSM hook reports no return value; the events lack it")
				}
			}},
			{"returnArg", func(e entry) {
				t.drop(e, "an LSM hook reports no return value; the events lack it")
			}},
			{"returnArgAction", func(e entry) {
				t.drop(e, "socket tracking only attributes later events to the socket's process; it enforces nothing")
			}},
			{"ignore", func(e entry) {
				t.drop(e, "Palisade refuses to load a policy whose hook does not exist rather than skipping the hook")
			}},
		}
		order = append([]string{"hook"}, order...)
	case kind == "kprobe":
		table = []field{
			{"call", func(e entry) {
				s, ok := t.str(e)
				if !ok {
					return
				}
				callName = s
				calls = g.calls(e, s, hookEnforces)
			}},
			{"syscall", func(e entry) {
				if b, ok := t.boolean(e); ok {
					h.set("syscall", boolv(b, t.pos(e.val), e.path))
				}
			}},
			{"return", func(e entry) {
				if b, ok := t.boolean(e); ok {
					returns = b
					h.set("return", boolv(b, t.pos(e.val), e.path))
				}
			}},
			{"returnArg", func(e entry) { retArg = &e }},
			{"returnArgAction", func(e entry) {
				t.drop(e, "socket tracking only attributes later events to the socket's process; it enforces nothing")
			}},
			{"ignore", func(e entry) {
				t.drop(e, "Palisade refuses to load a policy whose function does not exist rather than skipping the hook")
			}},
		}
		order = append([]string{"call", "syscall", "return", "args", "returnArg"}, order[1:]...)
	case kind == "tracepoint":
		table = []field{
			{"subsystem", g.symbol(h, "subsystem")},
			{"event", g.symbol(h, "event")},
			{"raw", func(e entry) {
				b, _ := t.boolean(e)
				switch {
				case !b:
				case len(matched) > 0:
					t.fail(e.key, e.path, "raw tracepoints pass the tracepoint's raw arguments, which the selectors compare; Palisade hooks the tracepoint's formatted fields only, so the comparisons would change")
				default:
					dropArgs = "a raw tracepoint's arguments are not its formatted fields, which Palisade reads; no selector compares them, so only the events lack them"
					t.drop(e, "Palisade hooks the same tracepoint through its formatted fields; it fires on the same events")
				}
			}},
		}
		order = append([]string{"subsystem", "event"}, order...)
	case kind == "lsmhook":
		table = []field{{"hook", g.symbol(h, "hook")}}
		order = append([]string{"hook"}, order...)
	case kind == "uprobe":
		table = []field{
			{"path", func(e entry) {
				if s, ok := t.str(e); ok {
					h.set("path", strv(s, t.pos(e.val), e.path))
				}
			}},
			{"symbols", func(e entry) {
				ss, its, _ := t.strs(e)
				l := list(t.pos(e.val), e.path)
				for i, s := range ss {
					l.add(strv(s, t.pos(its[i].val), its[i].path))
				}
				h.setList("symbols", l)
			}},
		}
		order = append([]string{"path", "symbols"}, order...)
	}
	// raw must be read before args, which it may drop.
	t.walk(e.val, e.path, "a "+kind, append(table, common...))
	if retArg != nil {
		if returns {
			if a := g.arg(*retArg, matched); a != nil {
				h.set("returnArg", a)
			}
		} else {
			t.drop(*retArg, "Tetragon reads returnArg only when return is true, so it has no effect here")
		}
	}
	h.sortBy(order...)
	if kind != "kprobe" || lsm != "" {
		return outKind, []*val{h}
	}
	if callName == "" && !t.failedSince(mark) {
		t.fail(e.val, e.path, "a kprobe needs call")
	}
	out := make([]*val, 0, len(calls))
	for _, c := range calls {
		k := &val{kind: kindObj, pos: h.pos, path: h.path}
		for _, f := range h.fields {
			k.fields = append(k.fields, &member{f.name, f.v})
		}
		k.set("call", c.name)
		if c.syscall {
			k.set("syscall", boolv(true, c.name.pos, c.name.path))
		}
		k.sortBy(order...)
		out = append(out, k)
	}
	return outKind, out
}

// commonFields are the fields every tracepoint record starts with
// (common_type, common_flags, common_preempt_count, common_pid), which
// Tetragon counts in a tracepoint argument's index and Palisade does not.
const commonFields = 4

// tracepointIndex rewrites the index of tracepoint argument a from
// Tetragon's count, which includes the record's common fields, to
// Palisade's, which counts the event's own fields from 0 (as
// /sys/kernel/tracing/events/<subsystem>/<event>/format lists them after
// the common_ fields). It reports false when the argument is a common
// field, which Palisade does not read.
func (g *tracing) tracepointIndex(e entry, a *val) bool {
	idx := a.get("index")
	if idx.num < commonFields {
		g.t.fail(e.val, idx.path, "argument index %d is the tracepoint record's common field %s, which Palisade does not read (the event carries its process's identity anyway)",
			idx.num, []string{"common_type", "common_flags", "common_preempt_count", "common_pid"}[max(idx.num, 0)])
		return false
	}
	g.t.note(e.val, idx.path, "tracepoint argument index %d written as %d: Tetragon counts the record's %d common_ fields, Palisade counts the event's own fields from 0", idx.num, idx.num-commonFields, commonFields)
	a.set("index", intv(idx.num-commonFields, idx.pos, idx.path))
	return true
}

// call is one function a kprobe hooks.
type call struct {
	name *val
	// syscall is set for calls from a list of syscalls, which Tetragon
	// hooks as syscalls.
	syscall bool
}

// symbol sets a symbol-valued field of a hook.
func (g *tracing) symbol(h *val, name string) func(entry) {
	return func(e entry) {
		if s, ok := g.t.str(e); ok {
			h.set(name, strv(s, g.t.pos(e.val), e.path))
		}
	}
}

// syscallPrefixes are the architecture prefixes of syscall symbols;
// Palisade adds the right one itself for syscall hooks.
var syscallPrefixes = []string{"__x64_", "__arm64_", "__s390x_", "__riscv_"}

// calls expands a kprobe's call: a plain function, a syscall symbol with
// an architecture prefix, or "list:NAME".
func (g *tracing) calls(e entry, s string, enforcing bool) []call {
	t := g.t
	one := func(name string, at entry, fromList bool) *call {
		switch {
		case strings.HasPrefix(name, "__ia32_"):
			if enforcing {
				t.fail(at.val, at.path, "%q is a 32-bit compat syscall; Palisade hooks the native syscall table only, and leaving it out would stop enforcing on it", name)
			} else {
				t.report("PAL901", at.val, at.path, "%q is a 32-bit compat syscall; Palisade hooks the native syscall table only, so it is left out", name)
			}
			return nil
		}
		for _, p := range syscallPrefixes {
			if strings.HasPrefix(name, p) {
				n := strings.TrimPrefix(name, p)
				t.note(at.val, at.path, "%q written as %q: Palisade adds the architecture prefix of syscall hooks itself", name, n)
				name = n
				break
			}
		}
		return &call{name: strv(name, t.pos(at.val), at.path), syscall: fromList}
	}
	name, isList := strings.CutPrefix(s, "list:")
	if !isList {
		if c := one(s, e, false); c != nil {
			return []call{*c}
		}
		return nil
	}
	l, ok := g.lists[name]
	switch {
	case !ok:
		t.fail(e.val, e.path, "call refers to list %q, which spec.lists does not define", name)
		return nil
	case l.typ != "syscalls" && l.typ != "":
		l.used = true
		if enforcing {
			t.fail(e.val, e.path, "list %q is generated by Tetragon (%s) when the policy loads; the importer cannot write it out, and leaving the hook out would stop its enforcement", name, l.typ)
		} else {
			t.report("PAL901", e.val, e.path, "list %q is generated by Tetragon (%s) when the policy loads; the importer cannot write it out, so the hook is left out", name, l.typ)
		}
		return nil
	}
	l.used = true
	var out []call
	for _, v := range l.values {
		if c := one(v, e, true); c != nil {
			out = append(out, *c)
		}
	}
	t.note(e.val, e.path, "call %q written as one kprobe per syscall of the list (%s)", s, strings.Join(l.values, ", "))
	return out
}

// argTypes are the argument types Palisade reads.
var argTypes = map[string]bool{}

func init() {
	for _, s := range strings.Fields(`int int8 int16 int32 int64 uint8 uint16 uint32 uint64 size_t fd
		syscall64 capability kernel_cap_t cap_inheritable cap_permitted cap_effective
		string char_buf char_iovec const_buf file path dentry linux_binprm data_loc
		sock skb sockaddr socket
		cred bpf_attr perf_event bpf_map user_namespace module load_info net_device kiocb iov_iter nop`) {
		argTypes[s] = true
	}
}

// argTypeAliases are Tetragon's short names for integer types.
var argTypeAliases = map[string]string{"u8": "uint8", "s8": "int8", "u16": "uint16", "s16": "int16",
	"u32": "uint32", "s32": "int32", "u64": "uint64", "s64": "int64"}

// arg translates one argument declaration (or returnArg).
// An argument whose resolve Palisade cannot follow is left out when no
// selector compares it (the events lack it), and refused otherwise.
func (g *tracing) arg(e entry, matched map[int64]bool) *val {
	t := g.t
	mark := t.errs()
	a := obj(t.pos(e.val), e.path)
	var resolve *entry
	intField := func(name string) func(entry) {
		return func(e entry) {
			if n, ok := t.integer(e); ok {
				a.set(name, intv(n, t.pos(e.val), e.path))
			}
		}
	}
	boolField := func(name string) func(entry) {
		return func(e entry) {
			if b, ok := t.boolean(e); ok {
				a.set(name, boolv(b, t.pos(e.val), e.path))
			}
		}
	}
	t.walk(e.val, e.path, "an argument", []field{
		{"index", intField("index")},
		{"type", func(e entry) {
			s, ok := t.str(e)
			if !ok {
				return
			}
			if alias, ok := argTypeAliases[s]; ok {
				t.note(e.val, e.path, "type %q written as %q", s, alias)
				s = alias
			}
			if !argTypes[s] {
				t.fail(e.val, e.path, "argument type %q has no Palisade equivalent; reading the argument as another type would change what selectors compare", s)
				return
			}
			a.set("type", strv(s, t.pos(e.val), e.path))
		}},
		{"label", func(e entry) {
			if s, ok := t.str(e); ok {
				a.set("label", strv(s, t.pos(e.val), e.path))
			}
		}},
		{"returnCopy", boolField("returnCopy")},
		{"maxData", boolField("maxData")},
		{"sizeArgIndex", intField("sizeArgIndex")},
		{"resolve", func(e entry) { resolve = &e }},
	})
	if a.get("index") == nil {
		a.set("index", intv(0, t.pos(e.val), e.path+".index"))
	}
	if a.get("type") == nil && !t.failedSince(mark) {
		t.fail(e.val, e.path, "an argument needs a type")
	}
	if resolve != nil {
		idx := a.get("index").num
		if matched[idx] {
			t.fail(resolve.key, resolve.path, "resolve reads a field reached from the argument (%s), which a selector compares; Palisade has no equivalent, and without it the comparison would be made on a different value", resolve.val.Value)
			return nil
		}
		t.report("PAL901", resolve.key, resolve.path, "argument %d is left out: resolve reads a field reached from it (%s), which Palisade cannot follow; no selector compares it, so only the events lack it", idx, resolve.val.Value)
		return nil
	}
	if t.failedSince(mark) {
		return nil
	}
	a.sortBy("index", "type", "label", "returnCopy", "maxData", "sizeArgIndex")
	return a
}
