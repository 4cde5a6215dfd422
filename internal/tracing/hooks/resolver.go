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

package hooks

import (
	"errors"
	"fmt"
	"strings"

	"github.com/cilium/ebpf/btf"

	"github.com/palisade-dev/palisade/api/v1alpha1"
)

// resolver accumulates the hooks and problems of one Resolve.
type resolver struct {
	k        *Kernel
	hooks    []Hook
	problems []Problem
}

func (r *resolver) problem(path, code, format string, args ...any) {
	r.problems = append(r.problems, Problem{Path: path, Code: code, Message: fmt.Sprintf(format, args...)})
}

// param is one argument of a hook as the kernel defines it.
type param struct {
	name string
	typ  ctype
	// offset and size locate a tracepoint field.
	offset, size uint32
	user         bool
}

// target is what a hook's arguments are checked against.
type target struct {
	what   string // for messages: "security_file_permission", "syscall openat", "tracepoint syscalls/sys_enter_openat"
	src    source
	params []param
	// known is false when the parameters' number is not known (a
	// tracepoint found by name only); then only types are checked.
	known bool
	ret   *ctype
	// hint is appended to type problems, e.g. "set syscall: true".
	hint string
}

// signature spells the target's parameters for messages.
func (t *target) signature() string {
	ps := make([]string, len(t.params))
	for i, p := range t.params {
		ps[i] = spellParam(p)
	}
	return "(" + strings.Join(ps, ", ") + ")"
}

func spellParam(p param) string {
	if p.typ.text == "" {
		return p.name
	}
	if p.name == "" {
		return p.typ.text
	}
	if strings.HasSuffix(p.typ.text, "*") {
		return p.typ.text + p.name
	}
	return p.typ.text + " " + p.name
}

// args resolves the declared arguments of a hook against t, reporting
// problems at base (the hook's path).
func (r *resolver) args(base string, t *target, decl []v1alpha1.Arg) []Arg {
	out := make([]Arg, 0, len(decl))
	for j, a := range decl {
		ap := fmt.Sprintf("%s.args[%d]", base, j)
		arg := Arg{Index: a.Index, Type: a.Type, User: t.src == fromSyscall || t.src == fromUser}
		if a.Label != nil {
			arg.Label = *a.Label
		}
		if a.SizeArgIndex != nil {
			arg.SizeArgIndex = *a.SizeArgIndex
		}
		if t.known && int(a.Index) >= len(t.params) {
			r.problem(ap+".index", CodeArgIndex, "argument index %d is past the %s of %s%s", a.Index, count(len(t.params), "argument"), t.what, t.signature())
			out = append(out, arg)
			continue
		}
		var p param
		if int(a.Index) < len(t.params) {
			p = t.params[a.Index]
			arg.BTFType = p.typ.text
			arg.Offset, arg.Size = p.offset, p.size
			if t.src == fromTracepoint {
				arg.User = p.user
			}
		}
		if why := fit(a.Type, p.typ, t.src); why != "" {
			r.problem(ap+".type", CodeArgType, "%s", typeMessage(fmt.Sprintf("argument %d of %s", a.Index, t.what), p, a.Type, why, t))
		}
		if a.SizeArgIndex != nil && t.known {
			si := int(*a.SizeArgIndex) - 1
			switch {
			case si < 0 || si >= len(t.params):
				r.problem(ap+".sizeArgIndex", CodeSizeArg, "sizeArgIndex %d (1-based) names no argument of %s%s", *a.SizeArgIndex, t.what, t.signature())
			case t.params[si].typ.kind != cInt && t.params[si].typ.kind != cUnknown:
				r.problem(ap+".sizeArgIndex", CodeSizeArg, "sizeArgIndex %d (1-based) names argument %d of %s, %q, which is not an integer size", *a.SizeArgIndex, si, t.what, spellParam(t.params[si]))
			}
		}
		out = append(out, arg)
	}
	return out
}

// typeMessage says that declared cannot read p, and what to write instead.
func typeMessage(what string, p param, declared v1alpha1.ArgType, why string, t *target) string {
	var b strings.Builder
	if p.typ.kind == cUnknown {
		fmt.Fprintf(&b, "%s cannot be read as type %q: %s", what, declared, why)
	} else {
		fmt.Fprintf(&b, "%s is %q, which type %q cannot read (%s)", what, spellParam(p), declared, why)
	}
	switch s := suggest(p.typ, t.src); {
	case s != "" && s != declared:
		fmt.Fprintf(&b, "; use type %q", s)
	case t.src == fromSyscall && p.typ.kind == cUnknown:
		b.WriteString("; a syscall's arguments are integers, fds (type \"fd\"), strings and buffers in user memory, or sockaddr")
	case p.typ.kind != cUnknown:
		b.WriteString("; no argument type reads it (use \"nop\" to report nothing, or leave the argument out)")
	}
	if t.hint != "" {
		b.WriteString("; " + t.hint)
	}
	return b.String()
}

func count(n int, unit string) string {
	if n == 1 {
		return "1 " + unit
	}
	return fmt.Sprintf("%d %ss", n, unit)
}

// funcByName finds a FUNC in the kernel's BTF.
func (r *resolver) funcByName(name string) (*btf.Func, error) {
	if r.k == nil || r.k.BTF == nil {
		return nil, errors.New("no kernel BTF")
	}
	types, err := r.k.BTF.AnyTypesByName(name)
	if err != nil {
		return nil, err
	}
	for _, t := range types {
		if fn, ok := t.(*btf.Func); ok {
			return fn, nil
		}
	}
	return nil, fmt.Errorf("%s is not a function", name)
}

// funcTarget makes a target of a BTF function's parameters.
func funcTarget(what string, fn *btf.Func, src source) *target {
	t := &target{what: what, src: src, known: true}
	proto, ok := fn.Type.(*btf.FuncProto)
	if !ok {
		t.known = false
		return t
	}
	for _, p := range proto.Params {
		t.params = append(t.params, param{name: p.Name, typ: fromBTF(p.Type)})
	}
	ret := fromBTF(proto.Return)
	if proto.Return == nil {
		ret = ctype{kind: cVoid, text: "void"}
	}
	t.ret = &ret
	return t
}

// wrapperPrefix is the syscall wrapper prefix of the kernel's architecture.
func (r *resolver) wrapperPrefix() string {
	if r.k != nil && r.k.Arch == "arm64" {
		return "__arm64_sys_"
	}
	return "__x64_sys_"
}

// syscallName reduces "sys_openat", "openat", "__x64_sys_openat" (and the
// arm64 and ia32 forms) to "openat".
func syscallName(call string) string {
	for _, p := range []string{"__x64_sys_", "__arm64_sys_", "__ia32_sys_", "__ia32_compat_sys_", "__x64_compat_sys_", "sys_"} {
		if s, ok := strings.CutPrefix(call, p); ok {
			return s
		}
	}
	return call
}

func (r *resolver) kprobe(i int, k *v1alpha1.FunctionHook) {
	path := fmt.Sprintf("spec.kprobes[%d]", i)
	h := Hook{Path: path, Kind: KindFentry}
	if k.Return != nil && *k.Return {
		h.Kind = KindFexit
	}
	call := string(k.Call)
	var t *target
	if k.Syscall != nil && *k.Syscall {
		name := syscallName(call)
		wrapper := r.wrapperPrefix() + name
		if _, err := r.funcByName(wrapper); err != nil {
			var sys []string
			for _, n := range r.similar(r.wrapperPrefix(), name) {
				sys = append(sys, "sys_"+n)
			}
			r.problem(path+".call", CodeFunctionNotFound, "syscall %q has no wrapper %s in the kernel's BTF: the kernel has no such syscall%s", name, wrapper, suggestion(sys))
			return
		}
		h.Target, h.Syscall = wrapper, true
		t = r.syscallTarget(name)
	} else {
		fn, err := r.funcByName(call)
		if err != nil {
			msg := fmt.Sprintf("kernel function %q is not in the kernel's BTF (functions of modules are not checked and not hooked)", call)
			if _, werr := r.funcByName(r.wrapperPrefix() + syscallName(call)); werr == nil && call != r.wrapperPrefix()+syscallName(call) {
				msg += fmt.Sprintf("; %s is a syscall: set syscall: true", syscallName(call))
			} else {
				msg += suggestion(r.similar("", call))
			}
			r.problem(path+".call", CodeFunctionNotFound, "%s", msg)
			return
		}
		h.Target = call
		t = funcTarget(call, fn, fromKernel)
		if strings.HasPrefix(call, r.wrapperPrefix()) {
			t.hint = "this is a syscall wrapper, whose only parameter is the caller's registers: set syscall: true to read the syscall's arguments"
		}
	}
	h.NumArgs = len(t.params)
	h.Args = r.args(path, t, k.Args)
	if k.ReturnArg != nil && h.Kind == KindFexit {
		ra := Arg{Index: k.ReturnArg.Index, Type: k.ReturnArg.Type}
		if k.ReturnArg.Label != nil {
			ra.Label = *k.ReturnArg.Label
		}
		if t.ret != nil {
			ra.BTFType = t.ret.text
			p := param{typ: *t.ret}
			if why := fit(k.ReturnArg.Type, *t.ret, fromKernel); why != "" {
				r.problem(path+".returnArg.type", CodeArgType, "%s", typeMessage("the return value of "+t.what, p, k.ReturnArg.Type, why, &target{src: fromKernel}))
			}
		}
		h.Return = &ra
	}
	r.hooks = append(r.hooks, h)
}

// syscallTarget returns the arguments of syscall name: from the BTF
// prototype of __do_sys_<name> (typed), the tracepoint
// syscalls/sys_enter_<name> (typed), __se_sys_<name> (number only), or
// else up to 6 of unknown type.
func (r *resolver) syscallTarget(name string) *target {
	what := "syscall " + name
	if fn, err := r.funcByName("__do_sys_" + name); err == nil {
		t := funcTarget(what, fn, fromSyscall)
		long := ctype{kind: cInt, size: 8, signed: true, text: "long"}
		t.ret = &long
		return t
	}
	long := ctype{kind: cInt, size: 8, signed: true, text: "long"}
	if r.k != nil && r.k.Tracefs != "" {
		if fields, err := readFormat(r.k.Tracefs, "syscalls", "sys_enter_"+name); err == nil {
			t := &target{what: what, src: fromSyscall, known: true, ret: &long}
			for _, f := range fields {
				if f.name == "__syscall_nr" {
					continue
				}
				t.params = append(t.params, param{name: f.name, typ: f.typ})
			}
			return t
		}
	}
	if fn, err := r.funcByName("__se_sys_" + name); err == nil {
		t := funcTarget(what, fn, fromSyscall)
		for j := range t.params {
			t.params[j].typ = ctype{kind: cUnknown}
		}
		t.ret = &long
		return t
	}
	t := &target{what: what, src: fromSyscall, known: true, ret: &long}
	for j := range 6 {
		t.params = append(t.params, param{name: fmt.Sprintf("arg%d", j), typ: ctype{kind: cUnknown}})
	}
	return t
}

func (r *resolver) lsm(i int, l *v1alpha1.LSMHook) {
	path := fmt.Sprintf("spec.lsmhooks[%d]", i)
	hook := string(l.Hook)
	fn, err := r.funcByName("bpf_lsm_" + hook)
	if err != nil {
		msg := fmt.Sprintf("LSM hook %q does not exist on this kernel (no bpf_lsm_%s in its BTF)", hook, hook)
		s, ok := strings.CutPrefix(hook, "security_")
		if _, err := r.funcByName("bpf_lsm_" + s); ok && err == nil {
			msg += fmt.Sprintf("; write the hook without the security_ prefix: %q", s)
		} else {
			msg += suggestion(r.similar("bpf_lsm_", hook))
		}
		r.problem(path+".hook", CodeLSMHookNotFound, "%s", msg)
		return
	}
	if r.k != nil && !r.k.LSM {
		r.problem(path+".hook", CodeLSMInactive, "BPF-LSM is not active on this kernel (its active LSM list does not name \"bpf\"), so LSM hook %q cannot attach; boot with lsm=...,bpf", hook)
	}
	t := funcTarget("LSM hook "+hook, fn, fromKernel)
	h := Hook{Path: path, Kind: KindLSM, Target: hook, NumArgs: len(t.params)}
	h.Args = r.args(path, t, l.Args)
	r.hooks = append(r.hooks, h)
}

func (r *resolver) tracepoint(i int, tp *v1alpha1.TracepointHook) {
	path := fmt.Sprintf("spec.tracepoints[%d]", i)
	sub, ev := string(tp.Subsystem), string(tp.Event)
	name := sub + "/" + ev
	t := &target{what: "tracepoint " + name, src: fromTracepoint}
	if r.k != nil && r.k.Tracefs != "" {
		fields, err := readFormat(r.k.Tracefs, sub, ev)
		if errors.Is(err, errNoTracepoint) {
			r.problem(path, CodeTracepointNotFound, "tracepoint %s does not exist on this kernel (no %s/events/%s/format)", name, r.k.Tracefs, name)
			return
		}
		if err != nil {
			r.problem(path, CodeTracepointNotFound, "tracepoint %s: %v", name, err)
			return
		}
		t.known = true
		for _, f := range fields {
			t.params = append(t.params, param{name: f.name, typ: f.typ, offset: f.offset, size: f.size, user: sub == "syscalls" && f.typ.kind == cPtr})
		}
	} else if !r.btfTracepoint(path, sub, ev, t) {
		return
	}
	h := Hook{Path: path, Kind: KindTracepoint, Target: name, NumArgs: len(t.params)}
	h.Args = r.args(path, t, tp.Args)
	r.hooks = append(r.hooks, h)
}

// btfTracepoint fills t from BTF alone (no tracefs): the
// trace_event_raw_<event> struct where the kernel has one, the syscall
// wrapper for syscalls/sys_enter_* and sys_exit_*. It returns false after
// reporting a tracepoint that certainly does not exist. Other tracepoints
// (those defined from a shared event class) are accepted by name:
// Kernel.Unchecked says so.
func (r *resolver) btfTracepoint(path, sub, ev string, t *target) bool {
	if sub == "syscalls" {
		var name string
		var enter bool
		if s, ok := strings.CutPrefix(ev, "sys_enter_"); ok {
			name, enter = s, true
		} else if s, ok := strings.CutPrefix(ev, "sys_exit_"); ok {
			name = s
		}
		if name == "" {
			r.problem(path, CodeTracepointNotFound, "tracepoint syscalls/%s does not exist: syscall tracepoints are sys_enter_<name> and sys_exit_<name>", ev)
			return false
		}
		if _, err := r.funcByName(r.wrapperPrefix() + name); err != nil {
			r.problem(path, CodeTracepointNotFound, "tracepoint syscalls/%s does not exist on this kernel: it has no syscall %q (no %s%s in its BTF)", ev, name, r.wrapperPrefix(), name)
			return false
		}
		if !enter {
			// sys_exit_*: __syscall_nr, ret.
			t.known = true
			t.params = []param{
				{name: "__syscall_nr", typ: ctype{kind: cInt, size: 4, signed: true, text: "int"}, offset: 8, size: 4},
				{name: "ret", typ: ctype{kind: cInt, size: 8, signed: true, text: "long"}, offset: 16, size: 8},
			}
			return true
		}
		st := r.syscallTarget(name)
		t.known = true
		t.params = append(t.params, param{name: "__syscall_nr", typ: ctype{kind: cInt, size: 4, signed: true, text: "int"}, offset: 8, size: 4})
		for j, p := range st.params {
			p.offset, p.size = uint32(16+8*j), 8
			p.user = p.typ.kind == cPtr
			t.params = append(t.params, p)
		}
		return true
	}
	if r.k == nil || r.k.BTF == nil {
		return true
	}
	var s *btf.Struct
	if err := r.k.BTF.TypeByName("trace_event_raw_"+ev, &s); err != nil {
		return true // found by name only where the event has its own struct
	}
	t.known = true
	for _, m := range s.Members {
		if m.Name == "ent" || m.Name == "__data" {
			continue
		}
		ct := fromBTF(m.Type)
		name := m.Name
		if n, ok := strings.CutPrefix(name, "__data_loc_"); ok {
			name = n
			ct = ctype{kind: cDataLoc, size: 4, text: "__data_loc"}
		}
		size, _ := btf.Sizeof(m.Type)
		t.params = append(t.params, param{name: name, typ: ct, offset: uint32(m.Offset.Bytes()), size: uint32(size)})
	}
	return true
}
