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
	"encoding/binary"
	"net/netip"
	"strings"
	"testing"

	"github.com/cilium/ebpf/btf"

	v1 "github.com/palisade-dev/palisade/api/v1alpha1"
	bt "github.com/palisade-dev/palisade/bpf/tracing"
	"github.com/palisade-dev/palisade/internal/tracing/hooks"
)

// The Go view of the ABI agrees with the C one (tracing.h asserts the
// sizes on its side).
func TestLayouts(t *testing.T) {
	for name, c := range map[string]struct{ got, want int }{
		"event_header": {binary.Size(bt.TracingEventHeader{}), 16},
		"arg_slot":     {binary.Size(bt.TracingArgSlot{}), 272},
		"sock_info":    {binary.Size(bt.TracingSockInfo{}), 48},
		"str_key":      {binary.Size(bt.TracingStrKey{}), len(strKey(0, ""))},
		"lpm_str_key":  {binary.Size(bt.TracingLpmStrKey{}), len(lpmKey(0, ""))},
		"int_key":      {binary.Size(bt.TracingIntKey{}), len(intKey(0, 0))},
		"prot_key":     {binary.Size(bt.TracingProtKey{}), len(protKey("x"))},
		"selector":     {binary.Size(bt.TracingSelector{}), 24 + 16*MaxTermsPerSelector},
		"trace_event":  {binary.Size(bt.TracingTraceEvent{}), fixedSize + MaxArgsPerHook*272},
	} {
		if c.got != c.want {
			t.Errorf("%s: %d bytes in Go, want %d", name, c.got, c.want)
		}
	}
	spec, err := bt.LoadTracing()
	if err != nil {
		t.Fatal(err)
	}
	for name, size := range map[string]uint32{"hooks": uint32(binary.Size(bt.TracingHookCfg{})), "selectors": uint32(binary.Size(bt.TracingSelector{}))} {
		if spec.Maps[name].ValueSize != size {
			t.Errorf("map %s: value %d bytes, Go %d", name, spec.Maps[name].ValueSize, size)
		}
	}
	if n := spec.Maps["selectors"].MaxEntries; n != MaxHooksPerUnit*MaxSelectorsPerHook {
		t.Errorf("selectors map holds %d, want %d", n, MaxHooksPerUnit*MaxSelectorsPerHook)
	}
}

// testKernel resolves against the running kernel's BTF when there is one.
func testKernel(t *testing.T) *hooks.Kernel {
	t.Helper()
	spec, err := btf.LoadKernelSpec()
	if err != nil {
		t.Skipf("needs kernel BTF: %v", err)
	}
	return &hooks.Kernel{BTF: spec, Arch: "x86_64", LSM: true}
}

func noHost(v1.NamespaceType) (uint32, error) { return 4026531836, nil }

// Bad selectors are reported on the hook, positioned at the field.
func TestCompileErrorsArePositioned(t *testing.T) {
	k := testKernel(t)
	for _, c := range []struct {
		name string
		hook v1.Symbol
		sel  v1.Selector
		args []v1.Arg
		want string
	}{
		{"undeclared arg", "", v1.Selector{MatchArgs: []v1.ArgSelector{{Index: 1, Operator: "Equal", Values: []string{"x"}}}}, nil,
			"spec.lsmhooks[0].selectors[0].matchArgs[0].index: argument 1 is not declared"},
		{"port on a file", "", v1.Selector{MatchArgs: []v1.ArgSelector{{Index: 0, Operator: "DPort", Values: []string{"80"}}}}, nil,
			"spec.lsmhooks[0].selectors[0].matchArgs[0].operator: DPort does not apply"},
		{"bad integer", "file_permission", v1.Selector{MatchArgs: []v1.ArgSelector{{Index: 1, Operator: "GT", Values: []string{"ten"}}}},
			[]v1.Arg{{Index: 0, Type: "file"}, {Index: 1, Type: "int"}},
			"spec.lsmhooks[0].selectors[0].matchArgs[0].values[0]: \"ten\" is not an integer"},
		{"bad rate limit", "", v1.Selector{MatchActions: []v1.Action{{Action: "Notify", RateLimit: "1x"}}}, nil,
			"spec.lsmhooks[0].selectors[0].matchActions[0].rateLimit: \"1x\" is not a duration"},
		{"data_loc on a function", "", v1.Selector{}, []v1.Arg{{Index: 0, Type: "data_loc"}},
			"spec.lsmhooks[0].args[0].type"},
		{"unread type", "bpf", v1.Selector{}, []v1.Arg{{Index: 1, Type: "bpf_attr"}},
			"spec.lsmhooks[0].args[0].type: type bpf_attr is not read"},
		{"bad capability", "", v1.Selector{MatchCapabilities: []v1.CapabilitySelector{{Operator: "In", Values: []v1.Capability{"CAP_NOPE"}}}}, nil,
			"spec.lsmhooks[0].selectors[0].matchCapabilities[0].values[0]: unknown capability"},
		{"long prefix", "", v1.Selector{MatchArgs: []v1.ArgSelector{{Index: 0, Operator: "Prefix", Values: []string{strings.Repeat("a", 300)}}}}, nil,
			"values[0]: 300 bytes, Prefix compares at most 252"},
	} {
		t.Run(c.name, func(t *testing.T) {
			spec := lsmFileOpen(c.sel)
			if c.hook != "" {
				spec.LSMHooks[0].Hook = c.hook
			}
			if c.args != nil {
				spec.LSMHooks[0].Args = c.args
			}
			pl := compile(k, Policy{Key: "k", Spec: spec}, noHost)
			h := pl.hooks[0]
			if h.state != HookLoadError || !strings.Contains(h.msg, c.want) {
				t.Errorf("state %q msg %q, want LoadError containing %q", h.state, h.msg, c.want)
			}
		})
	}
	// Deny on an LSM hook that returns void.
	spec := lsmFileOpen(v1.Selector{MatchActions: []v1.Action{{Action: "Deny"}}})
	spec.LSMHooks[0].Hook = "file_free_security"
	spec.LSMHooks[0].Args = nil
	if h := compile(k, Policy{Key: "k", Spec: spec}, noHost).hooks[0]; !strings.Contains(h.msg, "returns nothing and cannot deny") {
		t.Errorf("Deny on a void LSM hook: %s %q", h.state, h.msg)
	}
	// Deny on a kernel function.
	spec = v1.TracingPolicySpec{KProbes: []v1.FunctionHook{{Call: "security_file_open", HookCommon: v1.HookCommon{
		Selectors: []v1.Selector{{MatchActions: []v1.Action{{Action: "Deny"}}}}}}}}
	if h := compile(k, Policy{Key: "k", Spec: spec}, noHost).hooks[0]; !strings.Contains(h.msg, "spec.kprobes[0].selectors[0].matchActions[0].action: Deny acts on LSM hooks only") {
		t.Errorf("Deny on fentry: %q", h.msg)
	}
}

// Selector values become map entries: GT keeps the smallest value, Mask
// ORs them, Postfix is stored reversed, CIDRs as IPv4-mapped prefixes,
// host_ns is resolved.
func TestCompileValues(t *testing.T) {
	k := testKernel(t)
	spec := v1.TracingPolicySpec{LSMHooks: []v1.LSMHook{{Hook: "socket_connect", HookCommon: v1.HookCommon{
		Args: []v1.Arg{{Index: 0, Type: "socket"}, {Index: 2, Type: "int"}},
		Selectors: []v1.Selector{{
			MatchArgs: []v1.ArgSelector{
				{Index: 2, Operator: "GT", Values: []string{"7", "3", "5"}},
				{Index: 2, Operator: "Mask", Values: []string{"1", "4"}},
				{Index: 0, Operator: "DAddr", Values: []string{"10.0.0.0/8"}},
			},
			MatchBinaries:   []v1.BinarySelector{{Operator: "Postfix", Values: []string{"/curl"}}},
			MatchNamespaces: []v1.NamespaceSelector{{Namespace: "Net", Operator: "NotIn", Values: []string{"host_ns"}}},
			MatchActions:    []v1.Action{{Action: "Deny", ArgError: ptr(int32(-13))}},
		}},
	}}}}
	pl := compile(k, Policy{Key: "k", Spec: spec, AllProcesses: true}, noHost)
	h := pl.hooks[0]
	if h.state != "" {
		t.Fatalf("hook: %s %s", h.state, h.msg)
	}
	sel := h.sels[0]
	if sel.Nterms != 5 || sel.Actions != actDeny || sel.ArgError != -13 {
		t.Fatalf("selector %+v", sel)
	}
	if gt := sel.Terms[0]; gt.Op != uint8(bt.TracingTermOpOP_GT) || gt.Val != 3 || gt.Flags&tfSigned == 0 {
		t.Errorf("GT term %+v, want threshold 3, signed", gt)
	}
	if mask := sel.Terms[1]; mask.Val != 5 {
		t.Errorf("Mask term %+v, want 5", mask)
	}
	if _, ok := pl.addrs[string(addrKey(sel.Terms[2].Id, mustPrefix("10.0.0.0/8")))]; !ok || len(pl.addrs) != 1 {
		t.Errorf("addrs %d entries, want the 10/8 prefix", len(pl.addrs))
	}
	if _, ok := pl.lpms[string(lpmKey(sel.Terms[3].Id, "lruc/"))]; !ok {
		t.Errorf("Postfix /curl not stored reversed")
	}
	if ns := sel.Terms[4]; ns.Flags&tfNegate == 0 || ns.Arg != uint8(bt.TracingNsKindNS_NET) {
		t.Errorf("namespace term %+v", ns)
	}
	if _, ok := pl.ints[string(intKey(sel.Terms[4].Id, 4026531836))]; !ok {
		t.Errorf("host_ns not resolved into the set")
	}
	if h.cfg.Flags&hfAll == 0 || h.cfg.Kind != uint8(bt.TracingHookKindKIND_LSM) || h.cfg.Nargs != 2 {
		t.Errorf("cfg %+v", h.cfg)
	}
}

func mustPrefix(s string) netip.Prefix {
	p, err := parseCIDR(s)
	if err != nil {
		panic(err)
	}
	return p
}

// Open refuses a pin dir that is not on bpffs.
func TestOpenRefusesNonBpffs(t *testing.T) {
	_, err := Open(Options{PinDir: t.TempDir()})
	if err == nil || !strings.Contains(err.Error(), "is not on bpffs") {
		t.Fatalf("err = %v, want a not-on-bpffs error", err)
	}
}

func TestProtectedNames(t *testing.T) {
	for base, want := range map[string]bool{"kubelet": true, "kubelet2": false, "containerd-shim-runc-v2": true, "containerd": true, "bash": false} {
		if got := protectedName(base, ProtectedBinaries); got != want {
			t.Errorf("%s: %v, want %v", base, got, want)
		}
	}
	if k := protKey("containerd-shim*"); binary.LittleEndian.Uint32(k) != 8*15 {
		t.Errorf("prefix key length %d bits", binary.LittleEndian.Uint32(k))
	}
	if k := protKey("runc"); binary.LittleEndian.Uint32(k) != 8*5 {
		t.Errorf("exact key length %d bits, want the NUL included", binary.LittleEndian.Uint32(k))
	}
}
