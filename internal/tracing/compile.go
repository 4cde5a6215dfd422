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

package tracing

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"math"
	"net/netip"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/cilium/ebpf/btf"
	"golang.org/x/sys/unix"

	v1 "github.com/palisade-dev/palisade/api/v1alpha1"
	bt "github.com/palisade-dev/palisade/bpf/tracing"
	"github.com/palisade-dev/palisade/internal/tracing/hooks"
)

// The limits of a unit, as bpf/tracing/tracing.h sets them. The validator
// checks policies against them.
const (
	// MaxArgsPerHook is how many arguments a hook reads.
	MaxArgsPerHook = 6
	// MaxSelectorsPerHook is how many selectors a hook has.
	MaxSelectorsPerHook = 64
	// MaxTermsPerSelector is how many terms (one per matchArgs,
	// matchReturnArgs, matchPIDs, matchBinaries, matchNamespaces and
	// matchCapabilities entry) a selector has.
	MaxTermsPerSelector = 16
	// MaxHooksPerUnit is how many hooks (uprobe symbols count one each) a
	// policy has.
	MaxHooksPerUnit = 32
	// MaxStringBytes is how many bytes of a string, buffer or path an
	// event carries and Equal compares (the rest is cut, and the event
	// says so).
	MaxStringBytes = 255
	// MaxPrefixBytes is how many leading (Prefix) or trailing (Postfix)
	// bytes are compared.
	MaxPrefixBytes = 252
	// MaxArgvBytes is how many bytes of a process's arguments (argv,
	// each NUL-terminated, as /proc/<pid>/cmdline) process tracking
	// keeps; longer ones are cut and Process.ArgsTruncated says so.
	MaxArgvBytes = 256
	// MaxPathDepth is how many path components the dentry walk follows.
	MaxPathDepth = 64
	// MaxCgroupLevels is how many cgroup ancestors scope looks at.
	MaxCgroupLevels = 16
	// MaxAncestors is how many parents followForks and followChildren
	// walk.
	MaxAncestors = 16
	// MaxIntValues, MaxStringValues, MaxPrefixValues and MaxAddrValues
	// bound the values of all terms of a unit, by map.
	MaxIntValues    = 65536
	MaxStringValues = 16384
	MaxPrefixValues = 16384
	MaxAddrValues   = 16384
	// MaxScopeCgroups bounds Policy.Cgroups.
	MaxScopeCgroups = 4096
)

// abi names the layout of the maps and programs (tracing.h's
// TRACING_ABI); pins of another abi are not adopted.
var abi = fmt.Sprintf("v%d", bt.TracingTracingAbiTRACING_ABI)

// ProtectedBinaries are the base names of executables that tracing
// policies never kill, signal or deny (a trailing * matches a prefix).
// Options.ProtectedBinaries extends the list.
var ProtectedBinaries = []string{"kubelet", "containerd", "containerd-shim*", "runc", "crun", "crio", "conmon", "dockerd", "palisade-agent"}

// plan is a unit compiled to map contents.
type plan struct {
	key  string
	id   uint32
	hash string
	pol  Policy
	// hooks are in spec order, one per attach point.
	hooks []*hookPlan
	// values of the unit's value maps, by raw key.
	ints, strs, lpms, addrs map[string][]byte
}

// hookPlan is one hook of a unit.
type hookPlan struct {
	idx    uint32
	path   string
	attach string
	kind   hooks.Kind
	target string
	args   []hooks.Arg
	cfg    bt.TracingHookCfg
	sels   []bt.TracingSelector
	// sources are the selectors' field paths.
	sources []string
	// void is set on LSM hooks that return nothing (they cannot deny).
	void bool
	// syscall is set on kprobes with syscall: true: when fentry cannot
	// load, they attach to the syscall's tracepoints.
	syscall bool
	// attached is how the hook's link is attached when that differs
	// from attach (a fallback); the event reader reads it concurrently.
	attached atomic.Pointer[string]
	// state and msg are set when the hook cannot load as compiled;
	// problems are the same, positioned, for Check.
	state    HookState
	msg      string
	problems []hooks.Problem
}

// attachName is how the hook is attached, for events.
func (h *hookPlan) attachName() string {
	if a := h.attached.Load(); a != nil {
		return *a
	}
	return h.attach
}

// unitID derives a unit's id from its key; events carry it.
func unitID(key string) uint32 {
	h := fnv.New32a()
	h.Write([]byte(key))
	return h.Sum32()
}

// safeName turns a key into a pin directory name. bpffs refuses names
// with a dot (EPERM), so dots, like every other character outside
// [a-z0-9-], become "_"; the key's hash keeps names apart.
func safeName(key string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(key) {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9', r == '-':
			b.WriteRune(r)
		default:
			b.WriteByte('_')
		}
	}
	s := b.String()
	if len(s) > 200 {
		s = s[:200]
	}
	return fmt.Sprintf("%s-%08x", s, unitID(key))
}

// specHash decides adoption: the ABI, the spec and whether every process
// is in scope. The scope's cgroups are written in place.
func specHash(p Policy) string {
	b, _ := json.Marshal(struct {
		ABI  string
		Spec v1.TracingPolicySpec
		All  bool
	}{abi, p.Spec, p.AllProcesses})
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:8])
}

// hookPaths lists every hook of a spec with its path, in Resolve's order.
func hookPaths(spec v1.TracingPolicySpec) []string {
	var out []string
	for i := range spec.KProbes {
		out = append(out, fmt.Sprintf("spec.kprobes[%d]", i))
	}
	for i := range spec.Tracepoints {
		out = append(out, fmt.Sprintf("spec.tracepoints[%d]", i))
	}
	for i := range spec.LSMHooks {
		out = append(out, fmt.Sprintf("spec.lsmhooks[%d]", i))
	}
	for i, u := range spec.UProbes {
		for j := range u.Symbols {
			out = append(out, fmt.Sprintf("spec.uprobes[%d].symbols[%d]", i, j))
		}
	}
	return out
}

// common returns the HookCommon behind a hook path.
func common(spec *v1.TracingPolicySpec, path string) *v1.HookCommon {
	var i, j int
	switch {
	case scan(path, "spec.kprobes[%d]", &i):
		return &spec.KProbes[i].HookCommon
	case scan(path, "spec.tracepoints[%d]", &i):
		return &spec.Tracepoints[i].HookCommon
	case scan(path, "spec.lsmhooks[%d]", &i):
		return &spec.LSMHooks[i].HookCommon
	case scan(path, "spec.uprobes[%d].symbols[%d]", &i, &j):
		return &spec.UProbes[i].HookCommon
	}
	return nil
}

func scan(s, format string, a ...*int) bool {
	args := make([]any, len(a))
	for i := range a {
		args[i] = a[i]
	}
	n, err := fmt.Sscanf(s, format, args...)
	if err != nil || n != len(a) {
		return false
	}
	vals := make([]any, len(a))
	for i := range a {
		vals[i] = *a[i]
	}
	return fmt.Sprintf(format, vals...) == s
}

// compile resolves and compiles a policy. Problems of a hook keep it from
// loading; the other hooks load. hostNS resolves "host_ns".
func compile(k *hooks.Kernel, p Policy, hostNS func(v1.NamespaceType) (uint32, error)) *plan {
	pl := &plan{key: p.Key, id: unitID(p.Key), hash: specHash(p), pol: p,
		ints: map[string][]byte{}, strs: map[string][]byte{}, lpms: map[string][]byte{}, addrs: map[string][]byte{}}
	resolved, problems := hooks.Resolve(k, p.Spec)
	byPath := map[string]hooks.Hook{}
	for _, h := range resolved {
		byPath[h.Path] = h
	}
	c := &compiler{pl: pl, hostNS: hostNS, k: k}
	for i, path := range hookPaths(p.Spec) {
		hp := &hookPlan{idx: uint32(i), path: path}
		pl.hooks = append(pl.hooks, hp)
		h, ok := byPath[path]
		var msgs []string
		notFound, unsupported := !ok, false
		for _, pr := range problems {
			mine := pr.Path == path || strings.HasPrefix(pr.Path, path+".")
			// A uprobe's binary problem is positioned on the uprobe.
			if strings.HasPrefix(path, "spec.uprobes[") && strings.HasPrefix(path, pr.Path+".") {
				mine = true
			}
			if !mine {
				continue
			}
			msgs = append(msgs, fmt.Sprintf("%s: %s (%s)", pr.Path, pr.Message, pr.Code))
			hp.problems = append(hp.problems, pr)
			switch pr.Code {
			case hooks.CodeFunctionNotFound, hooks.CodeLSMHookNotFound, hooks.CodeTracepointNotFound, hooks.CodeUprobeNotFound:
				notFound = true
			case hooks.CodeLSMInactive:
				unsupported = true
			}
		}
		if ok {
			hp.kind, hp.target, hp.args = h.Kind, h.Target, h.Args
			hp.attach = string(h.Kind) + "/" + h.Target
		}
		switch {
		case unsupported:
			hp.state, hp.msg = HookNotSupported, strings.Join(msgs, "; ")
			continue
		case notFound:
			hp.state, hp.msg = HookNotFound, strings.Join(msgs, "; ")
			if hp.msg == "" {
				hp.msg = path + ": the hook did not resolve"
			}
			continue
		case len(msgs) > 0:
			hp.state, hp.msg = HookLoadError, strings.Join(msgs, "; ")
			continue
		case i >= MaxHooksPerUnit:
			hp.state, hp.msg = HookLoadError, fmt.Sprintf("%s: a policy has at most %d hooks (uprobe symbols count one each)", path, MaxHooksPerUnit)
			hp.problems = append(hp.problems, hooks.Problem{Path: path, Code: hooks.CodeNotCompiled, Message: strings.TrimPrefix(hp.msg, path+": ")})
			continue
		}
		if err := c.hook(hp, h); err != nil {
			hp.state, hp.msg = HookLoadError, err.Error()
			if !errors.As(err, new(validatedError)) {
				hp.problems = append(hp.problems, positioned(hp.path, err))
			}
		}
	}
	return pl
}

// validatedError marks a compile error that internal/validate reports on
// its own (PAL502, PAL504, PAL506, PAL516): Check leaves it out, so that
// validate does not say the same thing twice.
type validatedError struct{ error }

func (e validatedError) Unwrap() error { return e.error }

func validated(err error) error { return validatedError{err} }

// positioned makes a compile error ("spec.….field: message") a problem
// at its field; an error without a field path is placed at the hook.
func positioned(hook string, err error) hooks.Problem {
	msg := err.Error()
	if path, rest, ok := strings.Cut(msg, ": "); ok && strings.HasPrefix(path, "spec.") && !strings.ContainsRune(path, ' ') {
		return hooks.Problem{Path: path, Code: hooks.CodeNotCompiled, Message: rest}
	}
	return hooks.Problem{Path: hook, Code: hooks.CodeNotCompiled, Message: msg}
}

type compiler struct {
	k      *hooks.Kernel
	pl     *plan
	hostNS func(v1.NamespaceType) (uint32, error)
	nextID uint32
}

// argType maps a policy type to how the programs read it.
func argType(t v1.ArgType) (typ bt.TracingArgType, size uint8, signed bool, err error) {
	switch t {
	case "int", "int32", "capability":
		return bt.TracingArgTypeAT_INT, 4, true, nil
	case "int8":
		return bt.TracingArgTypeAT_INT, 1, true, nil
	case "int16":
		return bt.TracingArgTypeAT_INT, 2, true, nil
	case "int64", "syscall64":
		return bt.TracingArgTypeAT_INT, 8, true, nil
	case "uint8":
		return bt.TracingArgTypeAT_INT, 1, false, nil
	case "uint16":
		return bt.TracingArgTypeAT_INT, 2, false, nil
	case "uint32":
		return bt.TracingArgTypeAT_INT, 4, false, nil
	case "uint64", "size_t":
		return bt.TracingArgTypeAT_INT, 8, false, nil
	case "kernel_cap_t", "cap_inheritable", "cap_permitted", "cap_effective":
		return bt.TracingArgTypeAT_CAPS, 8, false, nil
	case "fd":
		return bt.TracingArgTypeAT_FD, 4, true, nil
	case "string":
		return bt.TracingArgTypeAT_STRING, 8, false, nil
	case "char_buf", "const_buf":
		return bt.TracingArgTypeAT_CHAR_BUF, 8, false, nil
	case "file":
		return bt.TracingArgTypeAT_FILE, 8, false, nil
	case "path":
		return bt.TracingArgTypeAT_PATH, 8, false, nil
	case "dentry":
		return bt.TracingArgTypeAT_DENTRY, 8, false, nil
	case "linux_binprm":
		return bt.TracingArgTypeAT_BINPRM, 8, false, nil
	case "sock":
		return bt.TracingArgTypeAT_SOCK, 8, false, nil
	case "socket":
		return bt.TracingArgTypeAT_SOCKET, 8, false, nil
	case "sockaddr":
		return bt.TracingArgTypeAT_SOCKADDR, 8, false, nil
	case "skb":
		return bt.TracingArgTypeAT_SKB, 8, false, nil
	case "cred":
		return bt.TracingArgTypeAT_CRED, 8, false, nil
	case "data_loc":
		return bt.TracingArgTypeAT_DATA_LOC, 4, false, nil
	case "nop":
		return bt.TracingArgTypeAT_NONE, 8, false, nil
	}
	return 0, 0, false, fmt.Errorf("type %s is not read by this datapath (it reads integers, fd, capability, kernel_cap_t and the cap_* sets, string, char_buf, const_buf, file, path, dentry, linux_binprm, sock, socket, sockaddr, skb, cred, data_loc and nop)", t)
}

type valueClass int

const (
	classInt valueClass = iota
	classString
	classSock
	classNone
)

func classOf(t bt.TracingArgType) valueClass {
	switch t {
	case bt.TracingArgTypeAT_INT, bt.TracingArgTypeAT_CAPS, bt.TracingArgTypeAT_FD:
		return classInt
	case bt.TracingArgTypeAT_STRING, bt.TracingArgTypeAT_CHAR_BUF, bt.TracingArgTypeAT_FILE, bt.TracingArgTypeAT_PATH,
		bt.TracingArgTypeAT_DENTRY, bt.TracingArgTypeAT_BINPRM, bt.TracingArgTypeAT_DATA_LOC:
		return classString
	case bt.TracingArgTypeAT_SOCK, bt.TracingArgTypeAT_SOCKET, bt.TracingArgTypeAT_SOCKADDR, bt.TracingArgTypeAT_SKB:
		return classSock
	}
	return classNone
}

func (c *compiler) hook(hp *hookPlan, h hooks.Hook) error {
	spec := &c.pl.pol.Spec
	hc := common(spec, hp.path)
	if hc == nil {
		return fmt.Errorf("%s: no such hook", hp.path)
	}
	cfg := &hp.cfg
	cfg.Unit = c.pl.id
	cfg.Hook = uint16(hp.idx)
	switch h.Kind {
	case hooks.KindFentry:
		cfg.Kind = uint8(bt.TracingHookKindKIND_FENTRY)
	case hooks.KindFexit:
		cfg.Kind = uint8(bt.TracingHookKindKIND_FEXIT)
		cfg.Flags |= hfReturn
	case hooks.KindLSM:
		cfg.Kind = uint8(bt.TracingHookKindKIND_LSM)
		hp.void = c.lsmVoid(h.Target)
	case hooks.KindTracepoint:
		cfg.Kind = uint8(bt.TracingHookKindKIND_TRACEPOINT)
	case hooks.KindUprobe:
		cfg.Kind = uint8(bt.TracingHookKindKIND_UPROBE)
	default:
		return fmt.Errorf("%s: hook kind %q is not supported", hp.path, h.Kind)
	}
	if h.Syscall {
		cfg.Flags |= hfSyscall
		hp.syscall = true
	}
	if spec.Mode == "audit" {
		cfg.Flags |= hfAudit
	}
	if c.pl.pol.AllProcesses {
		cfg.Flags |= hfAll
	}
	if len(h.Args) > MaxArgsPerHook {
		return fmt.Errorf("%s.args: %d arguments, at most %d are read", hp.path, len(h.Args), MaxArgsPerHook)
	}
	slots := map[int32]int{}
	types := map[int32]bt.TracingArgType{}
	signed := map[int32]bool{}
	for i, a := range h.Args {
		ap := fmt.Sprintf("%s.args[%d]", hp.path, i)
		typ, size, sgn, err := argType(a.Type)
		if err != nil {
			return fmt.Errorf("%s.type: %w", ap, err)
		}
		d := bt.TracingArgDesc{Type: uint8(typ), Size: size, Index: uint16(a.Index), Decl: uint8(i)}
		if sgn {
			d.Flags |= argSigned
		}
		if a.User {
			d.Flags |= argUser
		}
		if typ == bt.TracingArgTypeAT_DATA_LOC && h.Kind != hooks.KindTracepoint {
			return fmt.Errorf("%s.type: data_loc is a tracepoint's __data_loc field; this hook is %s", ap, h.Kind)
		}
		if h.Kind == hooks.KindTracepoint {
			switch {
			case a.Size == 0:
				return fmt.Errorf("%s.index: the tracepoint's format gives no field %d", ap, a.Index)
			case a.Offset > 0xfff:
				return fmt.Errorf("%s.index: field offset %d is past what the program reads (4095)", ap, a.Offset)
			}
			d.Index = uint16(a.Offset)
			if strings.HasPrefix(a.BTFType, "__data_loc") || typ == bt.TracingArgTypeAT_DATA_LOC {
				// A __data_loc field is a 4-byte locator of a string in
				// the record; it reads as a string (type string or
				// data_loc) and compares with the string operators.
				if classOf(typ) != classString || a.Size != 4 || !strings.HasPrefix(a.BTFType, "__data_loc") {
					return fmt.Errorf("%s.type: field %d is %q; a __data_loc field is read with type string or data_loc", ap, a.Index, a.BTFType)
				}
				typ = bt.TracingArgTypeAT_DATA_LOC
				d.Type, d.Size = uint8(typ), 4
			} else if classOf(typ) == classInt {
				d.Size = uint8(min(a.Size, 8))
			} else if a.Size != 8 {
				return fmt.Errorf("%s.type: %s needs a pointer field, the field has %d bytes", ap, a.Type, a.Size)
			}
		}
		if a.SizeArgIndex > 0 {
			if h.Kind == hooks.KindTracepoint {
				return fmt.Errorf("%s.sizeArgIndex: not supported on tracepoints (the buffer is read up to %d bytes)", ap, MaxStringBytes+1)
			}
			d.HasSize = 1
			d.SizeIndex = uint16(a.SizeArgIndex - 1)
			d.SizeSize = 8
		}
		if i < len(hc.Args) && hc.Args[i].ReturnCopy != nil && *hc.Args[i].ReturnCopy && h.Kind != hooks.KindFexit {
			return fmt.Errorf("%s.returnCopy: needs return: true (an fexit hook reads every argument at return)", ap)
		}
		cfg.Args[i] = d
		slots[a.Index] = i
		types[a.Index] = typ
		signed[a.Index] = sgn
	}
	cfg.Nargs = uint32(len(h.Args))
	retType, retSigned := bt.TracingArgTypeAT_INT, true
	if h.Return != nil {
		t, size, sgn, err := argType(h.Return.Type)
		if err != nil || classOf(t) != classInt {
			return fmt.Errorf("%s.returnArg.type: the return value is read as an integer; %s is not one", hp.path, h.Return.Type)
		}
		cfg.Ret = bt.TracingArgDesc{Type: uint8(t), Size: size}
		retType, retSigned = t, sgn
	}
	if len(hc.Selectors) > MaxSelectorsPerHook {
		return fmt.Errorf("%s.selectors: %d selectors, at most %d", hp.path, len(hc.Selectors), MaxSelectorsPerHook)
	}
	for si, s := range hc.Selectors {
		sp := fmt.Sprintf("%s.selectors[%d]", hp.path, si)
		sel, err := c.selector(sp, s, h, slots, types, signed, retType, retSigned)
		if err != nil {
			return err
		}
		if hp.void && sel.Actions&actDeny != 0 {
			return fmt.Errorf("%s.matchActions: Deny on LSM hook %s, which returns nothing and cannot deny", sp, h.Target)
		}
		hp.sels = append(hp.sels, sel)
		hp.sources = append(hp.sources, sp)
	}
	cfg.Nsel = uint32(len(hp.sels))
	return nil
}

func (c *compiler) selector(sp string, s v1.Selector, h hooks.Hook, slots map[int32]int, types map[int32]bt.TracingArgType,
	signed map[int32]bool, retType bt.TracingArgType, retSigned bool) (bt.TracingSelector, error) {
	var sel bt.TracingSelector
	var terms []bt.TracingTerm
	for j, m := range s.MatchArgs {
		mp := fmt.Sprintf("%s.matchArgs[%d]", sp, j)
		slot, ok := slots[m.Index]
		if !ok {
			return sel, validated(fmt.Errorf("%s.index: argument %d is not declared in args", mp, m.Index))
		}
		t, err := c.argTerm(mp, m, types[m.Index], signed[m.Index])
		if err != nil {
			return sel, err
		}
		t.Kind = uint8(bt.TracingTermKindT_ARG)
		t.Arg = uint8(slot)
		terms = append(terms, t)
	}
	for j, m := range s.MatchReturnArgs {
		mp := fmt.Sprintf("%s.matchReturnArgs[%d]", sp, j)
		if h.Kind != hooks.KindFexit {
			return sel, validated(fmt.Errorf("%s: matchReturnArgs needs return: true", mp))
		}
		t, err := c.argTerm(mp, m, retType, retSigned)
		if err != nil {
			return sel, err
		}
		t.Kind = uint8(bt.TracingTermKindT_RET)
		terms = append(terms, t)
	}
	for j, m := range s.MatchPIDs {
		mp := fmt.Sprintf("%s.matchPIDs[%d]", sp, j)
		t := bt.TracingTerm{Kind: uint8(bt.TracingTermKindT_PID), Op: uint8(bt.TracingTermOpOP_INT_IN), Id: c.id()}
		if err := setOp(&t, string(m.Operator), mp); err != nil {
			return sel, err
		}
		if m.FollowForks != nil && *m.FollowForks {
			t.Flags |= tfFollow
		}
		if m.IsNamespacePID != nil && *m.IsNamespacePID {
			t.Flags |= tfNSPID
		}
		for _, v := range m.Values {
			c.pl.ints[string(intKey(t.Id, uint64(v)))] = []byte{1}
		}
		terms = append(terms, t)
	}
	for j, m := range s.MatchBinaries {
		mp := fmt.Sprintf("%s.matchBinaries[%d]", sp, j)
		t := bt.TracingTerm{Kind: uint8(bt.TracingTermKindT_BIN), Id: c.id()}
		op := v1.ArgOperator(m.Operator)
		switch m.Operator {
		case "In":
			op = "Equal"
		case "NotIn":
			op = "NotEqual"
		}
		if err := c.strValues(&t, mp, op, c.nodePaths(op, m.Values)); err != nil {
			return sel, err
		}
		if m.FollowChildren != nil && *m.FollowChildren {
			t.Flags |= tfFollow
		}
		terms = append(terms, t)
	}
	for j, m := range s.MatchNamespaces {
		mp := fmt.Sprintf("%s.matchNamespaces[%d]", sp, j)
		kind, ok := nsKinds[m.Namespace]
		if !ok {
			return sel, fmt.Errorf("%s.namespace: unknown namespace %q", mp, m.Namespace)
		}
		t := bt.TracingTerm{Kind: uint8(bt.TracingTermKindT_NS), Op: uint8(bt.TracingTermOpOP_INT_IN), Arg: uint8(kind), Id: c.id()}
		if err := setOp(&t, string(m.Operator), mp); err != nil {
			return sel, err
		}
		for vi, v := range m.Values {
			var inum uint64
			if v == "host_ns" {
				n, err := c.hostNS(m.Namespace)
				if err != nil {
					return sel, fmt.Errorf("%s.values[%d]: host_ns: %w", mp, vi, err)
				}
				inum = uint64(n)
			} else {
				n, err := strconv.ParseUint(v, 10, 32)
				if err != nil {
					return sel, fmt.Errorf("%s.values[%d]: %q is not an inode number or host_ns", mp, vi, v)
				}
				inum = n
			}
			c.pl.ints[string(intKey(t.Id, inum))] = []byte{1}
		}
		terms = append(terms, t)
	}
	for j, m := range s.MatchCapabilities {
		mp := fmt.Sprintf("%s.matchCapabilities[%d]", sp, j)
		t := bt.TracingTerm{Kind: uint8(bt.TracingTermKindT_CAP), Op: uint8(bt.TracingTermOpOP_CAP_ANY)}
		switch m.Type {
		case "", "Effective":
			t.Arg = uint8(bt.TracingCapSetCAPS_EFFECTIVE)
		case "Inheritable":
			t.Arg = uint8(bt.TracingCapSetCAPS_INHERITABLE)
		case "Permitted":
			t.Arg = uint8(bt.TracingCapSetCAPS_PERMITTED)
		default:
			return sel, fmt.Errorf("%s.type: unknown capability set %q", mp, m.Type)
		}
		if m.IsNamespaceCapability != nil && *m.IsNamespaceCapability {
			return sel, fmt.Errorf("%s.isNamespaceCapability: capabilities relative to the caller's user namespace are not read by this datapath (it compares the caller's capability sets); remove the field", mp)
		}
		if err := setOp(&t, string(m.Operator), mp); err != nil {
			return sel, err
		}
		for vi, v := range m.Values {
			n, ok := capabilities[string(v)]
			if !ok {
				return sel, fmt.Errorf("%s.values[%d]: unknown capability %q", mp, vi, v)
			}
			t.Val |= 1 << n
		}
		terms = append(terms, t)
	}
	if len(terms) > MaxTermsPerSelector {
		return sel, fmt.Errorf("%s: %d terms, at most %d", sp, len(terms), MaxTermsPerSelector)
	}
	copy(sel.Terms[:], terms)
	sel.Nterms = uint32(len(terms))
	sel.ArgError = -int32(unix.EPERM)
	if len(s.MatchActions) == 0 {
		sel.Actions = actNotify
	}
	for j, a := range s.MatchActions {
		ap := fmt.Sprintf("%s.matchActions[%d]", sp, j)
		switch a.Action {
		case v1.ActionNotify:
			sel.Actions |= actNotify
		case v1.ActionSigkill:
			sel.Actions |= actSigkill
		case v1.ActionDeny:
			if h.Kind != hooks.KindLSM {
				return sel, validated(fmt.Errorf("%s.action: Deny acts on LSM hooks only (this hook is %s)", ap, h.Kind))
			}
			sel.Actions |= actDeny
			if a.ArgError != nil {
				sel.ArgError = *a.ArgError
			}
		case v1.ActionFollowFD:
			sel.Actions |= actFollowFD
		case v1.ActionUnfollowFD:
			sel.Actions |= actUnfollowFD
		case v1.ActionSignal:
			sig, ok := int32(0), a.ArgSig != nil
			if ok {
				sig = *a.ArgSig
			}
			if !ok || sig <= 0 || sig > 64 {
				return sel, validated(fmt.Errorf("%s.argSig: Signal needs a signal number from 1 to 64", ap))
			}
			sel.Actions |= actSignal
			sel.Signal = uint32(sig)
		default:
			return sel, fmt.Errorf("%s.action: %q is not supported", ap, a.Action)
		}
		// rateLimit limits Notify's events; on other actions it has no
		// effect (the validator warns, PAL515).
		if a.RateLimit != "" && a.Action == v1.ActionNotify {
			d, err := parseRate(a.RateLimit)
			if err != nil {
				return sel, fmt.Errorf("%s.rateLimit: %w", ap, err)
			}
			sel.RateNs = uint64(d)
		}
	}
	return sel, nil
}

// lsmVoid says whether the LSM hook returns void, from bpf_lsm_<hook>'s
// BTF.
func (c *compiler) lsmVoid(hook string) bool {
	if c.k == nil || c.k.BTF == nil {
		return false
	}
	var fn *btf.Func
	if err := c.k.BTF.TypeByName("bpf_lsm_"+hook, &fn); err != nil {
		return false
	}
	proto, ok := fn.Type.(*btf.FuncProto)
	if !ok {
		return false
	}
	_, void := proto.Return.(*btf.Void)
	return void
}

func (c *compiler) id() uint32 {
	c.nextID++
	return c.nextID
}

func setOp(t *bt.TracingTerm, op, path string) error {
	switch op {
	case "In":
	case "NotIn":
		t.Flags |= tfNegate
	default:
		return fmt.Errorf("%s.operator: %q is not In or NotIn", path, op)
	}
	return nil
}

func (c *compiler) argTerm(mp string, m v1.ArgSelector, typ bt.TracingArgType, signed bool) (bt.TracingTerm, error) {
	t := bt.TracingTerm{Id: c.id()}
	op := string(m.Operator)
	neg := false
	switch op {
	case "NotEqual":
		neg, op = true, "Equal"
	case "NotInMap":
		neg, op = true, "InMap"
	case "NotPrefix", "NotPostfix", "NotSAddr", "NotDAddr", "NotSPort", "NotDPort", "NotSPortPriv", "NotDPortPriv":
		neg, op = true, strings.TrimPrefix(op, "Not")
	}
	bad := fmt.Errorf("%s.operator: %s does not apply to this argument's type", mp, m.Operator)
	class := classOf(typ)
	if typ == bt.TracingArgTypeAT_FD && (op == "Prefix" || op == "Postfix" || (op == "Equal" && len(m.Values) > 0 && strings.HasPrefix(m.Values[0], "/"))) {
		// An fd compares as its file's path with string operators (and
		// with Equal on absolute paths), as its number otherwise.
		class = classString
	}
	switch class {
	case classInt:
		switch op {
		case "Equal", "InMap":
			t.Op = uint8(bt.TracingTermOpOP_INT_IN)
			for i, v := range m.Values {
				parse := parseInt
				if op == "InMap" {
					// InMap takes "min:max" ranges too, as Tetragon does.
					parse = nil
				}
				if err := c.intValues(t.Id, v, parse, parseInt); err != nil {
					return t, fmt.Errorf("%s.values[%d]: %w", mp, i, err)
				}
			}
		case "GT", "LT":
			t.Op = uint8(bt.TracingTermOpOP_GT)
			if op == "LT" {
				t.Op = uint8(bt.TracingTermOpOP_LT)
			}
			if signed {
				t.Flags |= tfSigned
			}
			// Any value matching is a match: GT the smallest, LT the largest.
			for i, v := range m.Values {
				n, err := parseInt(v)
				if err != nil {
					return t, fmt.Errorf("%s.values[%d]: %w", mp, i, err)
				}
				less := n < t.Val
				if signed {
					less = int64(n) < int64(t.Val)
				}
				if i == 0 || (op == "GT") == less {
					t.Val = n
				}
			}
		case "Mask":
			t.Op = uint8(bt.TracingTermOpOP_MASK)
			for i, v := range m.Values {
				n, err := parseInt(v)
				if err != nil {
					return t, fmt.Errorf("%s.values[%d]: %w", mp, i, err)
				}
				t.Val |= n
			}
		default:
			return t, bad
		}
	case classString:
		switch op {
		case "Equal", "Prefix", "Postfix":
			return t, c.strValues(&t, mp, m.Operator, m.Values)
		default:
			return t, bad
		}
	case classSock:
		switch op {
		case "SAddr", "DAddr":
			t.Op = uint8(bt.TracingTermOpOP_SADDR)
			if op == "DAddr" {
				t.Op = uint8(bt.TracingTermOpOP_DADDR)
			}
			for i, v := range m.Values {
				pfx, err := parseCIDR(v)
				if err != nil {
					return t, fmt.Errorf("%s.values[%d]: %w", mp, i, err)
				}
				c.pl.addrs[string(addrKey(t.Id, pfx))] = []byte{1}
			}
		case "SPort", "DPort", "Protocol", "Family", "State":
			t.Op = uint8(map[string]bt.TracingTermOp{"SPort": bt.TracingTermOpOP_SPORT, "DPort": bt.TracingTermOpOP_DPORT,
				"Protocol": bt.TracingTermOpOP_PROTO, "Family": bt.TracingTermOpOP_FAMILY, "State": bt.TracingTermOpOP_STATE}[op])
			one := func(v string) (uint64, error) { return sockValue(op, v) }
			for i, v := range m.Values {
				parse := one
				if op == "SPort" || op == "DPort" {
					// Ports take "min:max" ranges.
					parse = nil
				}
				if err := c.intValues(t.Id, v, parse, one); err != nil {
					return t, fmt.Errorf("%s.values[%d]: %w", mp, i, err)
				}
			}
		case "SPortPriv":
			t.Op = uint8(bt.TracingTermOpOP_SPORT_PRIV)
		case "DPortPriv":
			t.Op = uint8(bt.TracingTermOpOP_DPORT_PRIV)
		default:
			return t, bad
		}
	default:
		return t, fmt.Errorf("%s: arguments of this type are reported, not compared", mp)
	}
	if neg {
		t.Flags |= tfNegate
	}
	return t, nil
}

// maxRange bounds the values one "min:max" range expands to.
const maxRange = 65536

// intValues adds v to the integer set of term id: one value parsed by
// single, or, when single is nil, a value or a "min:max" range of values
// parsed by each (inclusive).
func (c *compiler) intValues(id uint32, v string, single, each func(string) (uint64, error)) error {
	lo, hi, isRange := strings.Cut(v, ":")
	if single != nil || !isRange {
		parse := single
		if parse == nil {
			parse = each
		}
		n, err := parse(v)
		if err != nil {
			return err
		}
		c.pl.ints[string(intKey(id, n))] = []byte{1}
		return nil
	}
	a, err := each(lo)
	if err != nil {
		return err
	}
	b, err := each(hi)
	if err != nil {
		return err
	}
	if int64(a) > int64(b) {
		return fmt.Errorf("range %s is reversed", v)
	}
	if uint64(int64(b)-int64(a)) >= maxRange {
		return fmt.Errorf("range %s has %d values, at most %d (each is a map entry)", v, uint64(int64(b)-int64(a))+1, maxRange)
	}
	for n := int64(a); n <= int64(b); n++ {
		c.pl.ints[string(intKey(id, uint64(n)))] = []byte{1}
	}
	return nil
}

// strValues compiles Equal, NotEqual, Prefix, NotPrefix, Postfix and
// NotPostfix on strings.
// nodePaths returns values with, after each executable path (Equal,
// NotEqual) or path prefix (Prefix, NotPrefix) that the node's file system
// reaches through a symbolic link, the path it resolves to. Process
// tracking records an executable's real path (/usr/bin/dash), while
// policies name it as people type it (/bin/sh, where /bin links to
// /usr/bin and sh to dash): without this, matchBinaries In ["/bin/sh"]
// would match nothing on such a node. Only on the node itself
// (hooks.Kernel.Binaries); a path that does not resolve stays as written.
func (c *compiler) nodePaths(op v1.ArgOperator, values []string) []string {
	if c.k == nil || !c.k.Binaries {
		return values
	}
	root := c.k.BinaryRoot
	if root == "" {
		root = "/"
	}
	resolve := func(p string) (string, bool) {
		r, err := filepath.EvalSymlinks(filepath.Join(root, p))
		if err != nil {
			return "", false
		}
		rel, err := filepath.Rel(root, r)
		if err != nil || strings.HasPrefix(rel, "..") {
			return "", false
		}
		return "/" + rel, true
	}
	out := make([]string, 0, len(values))
	seen := map[string]bool{}
	add := func(v string) {
		if !seen[v] {
			seen[v] = true
			out = append(out, v)
		}
	}
	for _, v := range values {
		add(v)
		switch op {
		case "Equal", "NotEqual":
			if r, ok := resolve(v); ok {
				add(r)
			}
		case "Prefix", "NotPrefix":
			// The directory part resolves; the rest is a name prefix.
			dir, rest := v, ""
			if !strings.HasSuffix(v, "/") {
				dir, rest = filepath.Dir(v), filepath.Base(v)
			}
			if r, ok := resolve(dir); ok {
				add(strings.TrimSuffix(r, "/") + "/" + rest)
			}
		}
	}
	return out
}

func (c *compiler) strValues(t *bt.TracingTerm, mp string, op v1.ArgOperator, values []string) error {
	switch op {
	case "Equal", "NotEqual":
		t.Op = uint8(bt.TracingTermOpOP_STR_EQ)
		for i, v := range values {
			if len(v) > MaxStringBytes {
				return fmt.Errorf("%s.values[%d]: %d bytes, Equal compares at most %d", mp, i, len(v), MaxStringBytes)
			}
			c.pl.strs[string(strKey(t.Id, v))] = []byte{1}
		}
	case "Prefix", "NotPrefix", "Postfix", "NotPostfix":
		post := strings.HasSuffix(string(op), "Postfix")
		t.Op = uint8(bt.TracingTermOpOP_PREFIX)
		if post {
			t.Op = uint8(bt.TracingTermOpOP_POSTFIX)
		}
		for i, v := range values {
			if len(v) > MaxPrefixBytes {
				return fmt.Errorf("%s.values[%d]: %d bytes, %s compares at most %d", mp, i, len(v), op, MaxPrefixBytes)
			}
			if post {
				v = reverse(v)
			}
			c.pl.lpms[string(lpmKey(t.Id, v))] = []byte{1}
		}
	default:
		return fmt.Errorf("%s.operator: %s does not apply to strings", mp, op)
	}
	if strings.HasPrefix(string(op), "Not") {
		t.Flags |= tfNegate
	}
	return nil
}

// parseRate parses a rateLimit: a duration ("1m", "30s", "1h30m") or a
// number of seconds, as Tetragon takes it.
func parseRate(v string) (time.Duration, error) {
	d, err := time.ParseDuration(v)
	if err != nil {
		n, nerr := strconv.ParseUint(v, 10, 32)
		if nerr != nil {
			return 0, fmt.Errorf("%q is not a duration (e.g. 1m, 30s) or a number of seconds", v)
		}
		d = time.Duration(n) * time.Second
	}
	if d <= 0 {
		return 0, fmt.Errorf("%q: the window must be positive", v)
	}
	return d, nil
}

func reverse(s string) string {
	b := []byte(s)
	for i, j := 0, len(b)-1; i < j; i, j = i+1, j-1 {
		b[i], b[j] = b[j], b[i]
	}
	return string(b)
}

func parseInt(v string) (uint64, error) {
	if n, err := strconv.ParseInt(v, 0, 64); err == nil {
		return uint64(n), nil
	}
	n, err := strconv.ParseUint(v, 0, 64)
	if err != nil {
		return 0, fmt.Errorf("%q is not an integer", v)
	}
	return n, nil
}

func parseCIDR(v string) (netip.Prefix, error) {
	if p, err := netip.ParsePrefix(v); err == nil {
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(v)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("%q is not an address or CIDR", v)
	}
	return netip.PrefixFrom(a, a.BitLen()), nil
}

var sockNames = map[string]map[string]uint64{
	"Protocol": {"IPPROTO_TCP": 6, "IPPROTO_UDP": 17, "IPPROTO_ICMP": 1, "IPPROTO_ICMPV6": 58, "IPPROTO_SCTP": 132, "IPPROTO_RAW": 255},
	"Family":   {"AF_UNIX": 1, "AF_INET": 2, "AF_INET6": 10, "AF_NETLINK": 16, "AF_PACKET": 17},
	"State": {"TCP_ESTABLISHED": 1, "TCP_SYN_SENT": 2, "TCP_SYN_RECV": 3, "TCP_FIN_WAIT1": 4, "TCP_FIN_WAIT2": 5,
		"TCP_TIME_WAIT": 6, "TCP_CLOSE": 7, "TCP_CLOSE_WAIT": 8, "TCP_LAST_ACK": 9, "TCP_LISTEN": 10, "TCP_CLOSING": 11, "TCP_NEW_SYN_RECV": 12},
}

func sockValue(op, v string) (uint64, error) {
	if n, ok := sockNames[op][v]; ok {
		return n, nil
	}
	n, err := strconv.ParseUint(v, 0, 64)
	if err != nil {
		return 0, fmt.Errorf("%q is not a number or a known %s name", v, strings.ToLower(op))
	}
	if (op == "SPort" || op == "DPort") && n > math.MaxUint16 {
		return 0, fmt.Errorf("port %d is above 65535", n)
	}
	return n, nil
}

var nsKinds = map[v1.NamespaceType]bt.TracingNsKind{
	"Uts": bt.TracingNsKindNS_UTS, "Ipc": bt.TracingNsKindNS_IPC, "Mnt": bt.TracingNsKindNS_MNT, "Pid": bt.TracingNsKindNS_PID,
	"PidForChildren": bt.TracingNsKindNS_PID_CHILDREN, "Net": bt.TracingNsKindNS_NET, "Time": bt.TracingNsKindNS_TIME,
	"TimeForChildren": bt.TracingNsKindNS_TIME_CHILDREN, "Cgroup": bt.TracingNsKindNS_CGROUP, "User": bt.TracingNsKindNS_USER,
}

// nsFiles are the /proc/<pid>/ns entries of each namespace kind.
var nsFiles = map[v1.NamespaceType]string{
	"Uts": "uts", "Ipc": "ipc", "Mnt": "mnt", "Pid": "pid", "PidForChildren": "pid_for_children", "Net": "net",
	"Time": "time", "TimeForChildren": "time_for_children", "Cgroup": "cgroup", "User": "user",
}

// initNamespaces are the fixed inode numbers of the kernel's initial
// namespaces (include/linux/proc_ns.h: PROC_*_INIT_INO; mnt and net have
// fixed ones on recent kernels such as 6.18).
var initNamespaces = map[v1.NamespaceType]uint32{
	"Ipc": 0xEFFFFFFF, "Uts": 0xEFFFFFFE, "User": 0xEFFFFFFD, "Pid": 0xEFFFFFFC, "PidForChildren": 0xEFFFFFFC,
	"Cgroup": 0xEFFFFFFB, "Time": 0xEFFFFFFA, "TimeForChildren": 0xEFFFFFFA, "Net": 0xEFFFFFF9, "Mnt": 0xEFFFFFF8,
}

// hostNamespace reads the inode of PID 1's namespace of a kind; when
// /proc/1/ns is not readable (PID 1 holds capabilities the agent lacks),
// it takes the kernel's fixed inode number of the initial namespace.
func hostNamespace(t v1.NamespaceType) (uint32, error) {
	var st unix.Stat_t
	err := unix.Stat("/proc/1/ns/"+nsFiles[t], &st)
	if err == nil {
		return uint32(st.Ino), nil
	}
	if n, ok := initNamespaces[t]; ok && errors.Is(err, unix.EACCES) {
		return n, nil
	}
	return 0, fmt.Errorf("read /proc/1/ns/%s: %w", nsFiles[t], err)
}

var capabilities = func() map[string]uint {
	names := []string{"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL", "CAP_SETGID",
		"CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE", "CAP_NET_BIND_SERVICE", "CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW",
		"CAP_IPC_LOCK", "CAP_IPC_OWNER", "CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_CHROOT", "CAP_SYS_PTRACE", "CAP_SYS_PACCT",
		"CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE", "CAP_SYS_RESOURCE", "CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD",
		"CAP_LEASE", "CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL", "CAP_SETFCAP", "CAP_MAC_OVERRIDE", "CAP_MAC_ADMIN", "CAP_SYSLOG",
		"CAP_WAKE_ALARM", "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ", "CAP_PERFMON", "CAP_BPF", "CAP_CHECKPOINT_RESTORE"}
	m := map[string]uint{}
	for i, n := range names {
		m[n] = uint(i)
	}
	return m
}()

// Raw keys of the value maps, as tracing.h lays them out.

func intKey(id uint32, v uint64) []byte {
	b := make([]byte, 16)
	binary.LittleEndian.PutUint32(b, id)
	binary.LittleEndian.PutUint64(b[8:], v)
	return b
}

func strKey(id uint32, s string) []byte {
	b := make([]byte, 4+MaxStringBytes+1)
	binary.LittleEndian.PutUint32(b, id)
	copy(b[4:4+MaxStringBytes], s)
	return b
}

func lpmKey(id uint32, s string) []byte {
	b := make([]byte, 8+MaxPrefixBytes)
	binary.LittleEndian.PutUint32(b, uint32(32+8*len(s)))
	binary.LittleEndian.PutUint32(b[4:], id)
	copy(b[8:], s)
	return b
}

func addrKey(id uint32, p netip.Prefix) []byte {
	b := make([]byte, 8+16)
	bits := p.Bits()
	if p.Addr().Is4() {
		bits += 96
	}
	binary.LittleEndian.PutUint32(b, uint32(32+bits))
	binary.LittleEndian.PutUint32(b[4:], id)
	a16 := p.Addr().As16()
	copy(b[8:], a16[:])
	return b
}

// protKey is a protected_names key: the base name with its NUL (exact),
// or without it for a name ending in * (prefix).
func protKey(name string) []byte {
	b := make([]byte, 4+64)
	exact := !strings.HasSuffix(name, "*")
	name = strings.TrimSuffix(name, "*")
	if len(name) > 62 {
		name = name[:62]
	}
	n := len(name)
	if exact {
		n++
	}
	binary.LittleEndian.PutUint32(b, uint32(8*n))
	copy(b[4:], name)
	return b
}

// Flags of tracing.h.
const (
	hfSyscall = 1 << 0
	hfAudit   = 1 << 1
	hfAll     = 1 << 2
	hfReturn  = 1 << 3

	argSigned = 1 << 0
	argUser   = 1 << 1

	tfNegate = 1 << 0
	tfSigned = 1 << 1
	tfFollow = 1 << 2
	tfNSPID  = 1 << 3

	actNotify     = 1 << 0
	actSigkill    = 1 << 1
	actDeny       = 1 << 2
	actSignal     = 1 << 3
	actFollowFD   = 1 << 4
	actUnfollowFD = 1 << 5

	slotOK    = 1 << 0
	slotTrunc = 1 << 1
	slotErr   = 1 << 2

	procProtected = 1 << 0
	procProcfs    = 1 << 1
	procArgvTrunc = 1 << 2

	suppAudit     = 1
	suppProtected = 2
)
