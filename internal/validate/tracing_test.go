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

package validate_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/palisade-dev/palisade/internal/diag"
	"github.com/palisade-dev/palisade/internal/validate"
)

// tracingFile is the policy file every case writes.
const tracingFile = "policy.cue"

// tracingPolicy wraps a spec body into a one-policy CUE file of the given
// kind.
func tracingPolicy(kind, spec string) string {
	meta := `{name: "t", namespace: "default"}`
	if kind == "ClusterTracingPolicy" {
		meta = `{name: "t"}`
	}
	var imports string
	for _, pkg := range []string{"list", "strings"} {
		if strings.Contains(spec, pkg+".") {
			imports += fmt.Sprintf("import %q\n", pkg)
		}
	}
	return fmt.Sprintf(`package policies

%spolicy: {
	apiVersion: "palisade.dev/v1alpha1"
	kind:       %q
	metadata:   %s
	spec: {%s}
}
`, imports, kind, meta, spec)
}

// wanted reads the expected diagnostics from "// want CODE..." markers:
// each code listed after "want" is expected on that line of the file.
func wanted(src string) []string {
	var out []string
	for i, line := range strings.Split(src, "\n") {
		_, marker, ok := strings.Cut(line, "// want ")
		if !ok {
			continue
		}
		for _, code := range strings.Fields(marker) {
			out = append(out, fmt.Sprintf("%s:%d", code, i+1))
		}
	}
	slices.Sort(out)
	return out
}

func got(diags diag.List) []string {
	out := []string{}
	for _, d := range withoutCapability(diags) {
		out = append(out, fmt.Sprintf("%s:%d", d.Code, d.Pos.Line))
	}
	slices.Sort(out)
	return out
}

// TestTracingChecks validates one-file repositories and compares the exact
// set of (code, line) pairs with the "// want" markers of the file.
func TestTracingChecks(t *testing.T) {
	cases := []struct {
		name string
		kind string // default TracingPolicy
		spec string
	}{
		// Valid policies, one per hook kind: no diagnostic at all.
		{name: "valid kprobe", spec: `
		kprobes: [{
			call: "fd_install"
			args: [{index: 0, type: "int"}, {index: 1, type: "file"}]
			selectors: [{
				matchArgs: [{index: 1, operator: "Prefix", values: ["/etc/"]}]
				matchActions: [{action: "FollowFD", argFd: 0, argName: 1}]
			}]
		}, {
			call: "sys_close"
			syscall: true
			args: [{index: 0, type: "fd"}]
			selectors: [{matchActions: [{action: "UnfollowFD", argFd: 0, argName: 0}]}]
		}, {
			call: "security_bprm_check"
			return: true
			args: [{index: 0, type: "linux_binprm"}, {index: 1, type: "uint32"}]
			returnArg: {index: 0, type: "int"}
			selectors: [{
				matchArgs: [{index: 0, operator: "Postfix", values: ["/nc", "/ncat"]}, {index: 1, operator: "Mask", values: ["0x1ff"]}]
				matchReturnArgs: [{index: 0, operator: "LT", values: ["-1"]}]
				matchBinaries: [{operator: "In", values: ["/usr/bin/bash", "/bin/sh"]}]
				matchActions: [{action: "Sigkill"}]
			}]
		}]
`},
		{name: "valid tracepoint", spec: `
		tracepoints: [{
			subsystem: "syscalls"
			event: "sys_enter_openat"
			args: [{index: 4, type: "int64"}, {index: 5, type: "string"}]
			selectors: [{
				matchArgs: [{index: 5, operator: "NotPrefix", values: ["/proc/"]}, {index: 4, operator: "InMap", values: ["-3", "10:20", "0x40"]}]
				matchPIDs: [{operator: "NotIn", values: [1, 2]}]
				matchNamespaces: [{namespace: "Pid", operator: "NotIn", values: ["host_ns"]}]
				matchActions: [{action: "Sigkill"}]
			}]
		}]
`},
		{name: "valid lsmhook", spec: `
		podSelector: matchLabels: app: "web"
		lsmhooks: [{
			hook: "file_open"
			args: [{index: 0, type: "file"}]
			selectors: [{
				matchArgs: [{index: 0, operator: "Equal", values: ["/etc/shadow"]}]
				matchActions: [{action: "Deny", argError: -13}, {action: "Notify", rateLimit: "1m"}]
			}]
		}]
`},
		{name: "valid uprobe", spec: `
		uprobes: [{
			path: "/usr/bin/bash"
			symbols: ["readline"]
			args: [{index: 0, type: "string"}, {index: 1, type: "kernel_cap_t"}]
			selectors: [{
				matchArgs: [{index: 1, operator: "Equal", values: ["CAP_SYS_ADMIN|CAP_NET_RAW"]}]
				matchBinaries: [{operator: "Postfix", values: ["bash"]}, {operator: "NotPrefix", values: ["/usr/local/"]}]
				matchCapabilities: [{operator: "In", values: ["CAP_SYS_ADMIN"]}]
				matchActions: [{action: "Sigkill"}]
			}]
		}]
`},
		{name: "valid socket operators", kind: "ClusterTracingPolicy", spec: `
		kprobes: [{
			call: "tcp_connect"
			args: [{index: 0, type: "sock"}, {index: 1, type: "sockaddr"}]
			selectors: [{
				matchArgs: [
					{index: 0, operator: "DAddr", values: ["10.0.0.0/8", "fd00::1", "192.168.1.1"]},
					{index: 0, operator: "DPort", values: ["443", "8000:8080"]},
					{index: 0, operator: "Protocol", values: ["IPPROTO_TCP", "17"]},
					{index: 0, operator: "State", values: ["TCP_SYN_SENT"]},
					{index: 0, operator: "NotDPortPriv", values: [""]},
					{index: 1, operator: "Family", values: ["AF_INET", "AF_INET6", "10"]},
				]
			}]
		}]
`},

		// PAL512: no hooks.
		{name: "no hooks", spec: ` // want PAL512
		description: "nothing"
`},
		{name: "empty hook lists", kind: "ClusterTracingPolicy", spec: ` // want PAL512
		kprobes: []
		uprobes: []
`},

		// PAL508: an argument index declared twice.
		{name: "duplicate argument index", spec: `
		kprobes: [{
			call: "security_file_open"
			args: [
				{index: 0, type: "file"},
				{index: 0, type: "int"}, // want PAL508
			]
		}]
`},

		// PAL502: selectors that compare undeclared arguments.
		{name: "matchArgs index not declared", spec: `
		tracepoints: [{
			subsystem: "syscalls"
			event: "sys_enter_openat"
			args: [{index: 1, type: "string"}]
			selectors: [{matchArgs: [
				{index: 1, operator: "Prefix", values: ["/etc"]},
				{
					index: 2 // want PAL502
					operator: "Equal"
					values: ["0"]
				},
			]}]
		}]
`},
		{name: "matchReturnArgs without returnArg", spec: `
		kprobes: [{
			call: "security_file_open"
			return: true
			selectors: [{matchReturnArgs: [{
				index: 0 // want PAL502
				operator: "Equal"
				values: ["0"]
			}]}]
		}]
`},

		// PAL501: operators that do not fit the argument type.
		{name: "string operator on integer", spec: `
		kprobes: [{
			call: "sys_openat"
			args: [{index: 2, type: "int"}]
			selectors: [{matchArgs: [{
				index: 2
				operator: "Prefix" // want PAL501
				values: ["1"]
			}]}]
		}]
`},
		{name: "integer operator on string", spec: `
		lsmhooks: [{
			hook: "file_open"
			args: [{index: 0, type: "file"}]
			selectors: [{matchArgs: [{
				index: 0
				operator: "GT" // want PAL501
				values: ["1"]
			}]}]
		}]
`},
		{name: "operator on kernel object", spec: `
		kprobes: [{
			call: "commit_creds"
			args: [{index: 0, type: "cred"}]
			selectors: [{matchArgs: [{
				index: 0
				operator: "Equal" // want PAL501
				values: ["0"]
			}]}]
		}]
`},
		{name: "peer address on sockaddr", spec: `
		kprobes: [{
			call: "security_socket_connect"
			args: [{index: 1, type: "sockaddr"}]
			selectors: [{matchArgs: [{
				index: 1
				operator: "DAddr" // want PAL501
				values: ["10.0.0.1"]
			}]}]
		}]
`},
		{name: "return operator checked against returnArg type", spec: `
		kprobes: [{
			call: "security_file_open"
			return: true
			returnArg: {index: 0, type: "int"}
			selectors: [{matchReturnArgs: [{
				index: 0
				operator: "Postfix" // want PAL501
				values: ["x"]
			}]}]
		}]
`},

		// PAL510: values that do not parse for their operator.
		{name: "unparsable values", kind: "ClusterTracingPolicy", spec: `
		kprobes: [{
			call: "tcp_connect"
			args: [{index: 0, type: "sock"}]
			selectors: [{matchArgs: [
				{index: 0, operator: "SAddr", values: [
					"10.0.0.0/8",
					"10.0.0.300", // want PAL510
				]},
				{index: 0, operator: "DPort", values: [
					"65536", // want PAL510
				]},
				{index: 0, operator: "NotSPort", values: [
					"100:90", // want PAL510
				]},
				{index: 0, operator: "Protocol", values: [
					"IPPROTO_FOO", // want PAL510
				]},
				{index: 0, operator: "Family", values: [
					"INET", // want PAL510
				]},
				{index: 0, operator: "State", values: [
					"ESTABLISHED", // want PAL510
				]},
			]}]
		}]
`},
		{name: "integer values out of range or malformed", spec: `
		kprobes: [{
			call: "sys_setuid"
			args: [{index: 0, type: "uint8"}, {index: 1, type: "int"}, {index: 2, type: "capability"}]
			selectors: [{matchArgs: [
				{index: 0, operator: "Equal", values: [
					"255",
					"256", // want PAL510
					"-1",  // want PAL510
				]},
				{index: 1, operator: "NotEqual", values: [
					"-2147483648",
					"0x7fffffff",
					"abc",  // want PAL510
					"0755", // want PAL510
				]},
				{index: 2, operator: "Equal", values: [
					"CAP_SYS_ADMIN",
					"CAP_FLY", // want PAL510
				]},
			]}]
		}]
`},

		// PAL514: Mask, GT and LT with more than one value.
		{name: "GT with two values", spec: `
		tracepoints: [{
			subsystem: "syscalls"
			event: "sys_enter_read"
			args: [{index: 2, type: "size_t"}]
			selectors: [{matchArgs: [{
				index: 2
				operator: "GT"
				values: ["4096", "8192"] // want PAL514
			}]}]
		}]
`},

		// PAL506: matchReturnArgs where no return is traced.
		{name: "matchReturnArgs without return", spec: `
		kprobes: [{
			call: "security_file_open"
			returnArg: {index: 0, type: "int"} // want PAL507
			selectors: [{
				matchReturnArgs: [{index: 0, operator: "Equal", values: ["0"]}] // want PAL506
			}]
		}]
`},
		{name: "matchReturnArgs on a tracepoint", spec: `
		tracepoints: [{
			subsystem: "syscalls"
			event: "sys_exit_openat"
			selectors: [{
				matchReturnArgs: [{index: 0, operator: "Equal", values: ["0"]}] // want PAL506
			}]
		}]
`},

		// PAL507: returnArg without return: true.
		{name: "returnArg without return", spec: `
		kprobes: [{
			call: "security_file_open"
			return: false
			returnArg: {index: 0, type: "int"} // want PAL507
		}]
`},

		// PAL504: Deny outside lsmhooks.
		{name: "Deny on a kprobe", spec: `
		kprobes: [{
			call: "security_file_open"
			selectors: [{
				matchBinaries: [{operator: "In", values: ["/usr/bin/cat"]}]
				matchActions: [{action: "Deny"}] // want PAL504
			}]
		}]
`},
		{name: "Deny on a uprobe", spec: `
		uprobes: [{
			path: "/usr/lib/libssl.so.3"
			symbols: ["SSL_write"]
			selectors: [{
				matchPIDs: [{operator: "In", values: [4242]}]
				matchActions: [{
					action: "Deny" // want PAL504
				}]
			}]
		}]
`},

		// PAL505: FollowFD and UnfollowFD arguments.
		{name: "FollowFD without argName", spec: `
		kprobes: [{
			call: "fd_install"
			args: [{index: 0, type: "fd"}, {index: 1, type: "file"}]
			selectors: [{matchActions: [
				{action: "FollowFD", argFd: 0}, // want PAL505
			]}]
		}]
`},
		{name: "FollowFD arguments of the wrong type or undeclared", spec: `
		kprobes: [{
			call: "fd_install"
			args: [{index: 0, type: "file"}, {index: 1, type: "file"}]
			selectors: [{matchActions: [{
				action: "FollowFD"
				argFd: 1   // want PAL505
				argName: 3 // want PAL505
			}]}]
		}]
`},
		{name: "UnfollowFD without argFd", spec: `
		kprobes: [{
			call: "sys_close"
			args: [{index: 0, type: "fd"}]
			selectors: [{matchActions: [
				{action: "UnfollowFD"}, // want PAL505
			]}]
		}]
`},

		// PAL511: matchBinaries values that are no clean absolute paths.
		{name: "relative and unclean binary paths", spec: `
		kprobes: [{
			call: "security_file_open"
			selectors: [{matchBinaries: [
				{operator: "In", values: [
					"/usr/bin/curl",
					"curl", // want PAL511
					"/usr/bin/../bin/wget", // want PAL511
				]},
				{operator: "NotPrefix", values: [
					"/usr/",
					"usr/local", // want PAL511
				]},
				{operator: "Postfix", values: ["/curl", "curl"]},
			]}]
		}]
`},

		// PAL503: Sigkill and Deny without any scoping.
		{name: "unscoped Sigkill", kind: "ClusterTracingPolicy", spec: `
		kprobes: [{
			call: "security_file_open"
			args: [{index: 0, type: "file"}]
			selectors: [{
				matchArgs: [{index: 0, operator: "Prefix", values: ["/etc/"]}]
				matchActions: [{action: "Sigkill"}] // want PAL503
			}]
		}]
`},
		{name: "empty podSelector does not scope a Deny", spec: `
		podSelector: {}
		lsmhooks: [{
			hook: "bprm_check_security"
			selectors: [{matchActions: [{
				action: "Deny" // want PAL503
			}]}]
		}]
`},

		// Signal: like Sigkill, it needs scoping, never targets a
		// protected process, is not taken in audit mode, and needs argSig
		// (PAL516), which no other action takes (PAL515).
		{name: "Signal", spec: `
		podSelector: matchLabels: app: "web"
		kprobes: [{
			call: "security_file_open"
			selectors: [{
				matchActions: [{action: "Signal", argSig: 10}]
			}, {
				matchActions: [{action: "Signal"}] // want PAL516
			}, {
				matchActions: [{action: "Notify", argSig: 10}] // want PAL515
			}]
		}]
`},
		{name: "unscoped Signal on a protected binary in audit mode", kind: "ClusterTracingPolicy", spec: `
		mode: "audit"
		kprobes: [{
			call: "security_file_open"
			selectors: [{
				matchActions: [{action: "Signal", argSig: 15}] // want PAL503 PAL513
			}, {
				matchBinaries: [{operator: "In", values: [
					"/usr/bin/kubelet", // want PAL509
				]}]
				matchActions: [{action: "Signal", argSig: 15}] // want PAL513
			}]
		}]
`},

		// PAL517: the datapath's limits.
		{name: "limits", spec: `
		podSelector: matchLabels: app: "web"
		kprobes: [{
			call: "security_file_open"
			args: [{index: 0, type: "file"}, {index: 1, type: "int"}]
			selectors: [{
				matchArgs: [{index: 0, operator: "Prefix", values: [
					"/etc/",
					"/\(strings.Repeat("a", 251))",
					"/\(strings.Repeat("a", 252))", // want PAL517
				]}, {
					index: 0, operator: "Equal"
					values: [
						"/\(strings.Repeat("a", 254))",
						"/\(strings.Repeat("a", 255))", // want PAL517
					]
				}]
				matchBinaries: [{operator: "In", values: [
					"/\(strings.Repeat("b", 255))", // want PAL517
				]}]
			}, { // want PAL517
				matchArgs: [for i in list.Range(0, 17, 1) {index: 1, operator: "Equal", values: ["\(i)"]}]
			}, {
				matchArgs: [for i in list.Range(0, 16, 1) {index: 1, operator: "Equal", values: ["\(i)"]}]
			}]
		}, {
			call: "security_file_permission"
			selectors: [ // want PAL517
				for i in list.Range(0, 65, 1) {matchPIDs: [{operator: "In", values: [i + 2]}]},
			]
		}, {
			call: "security_file_permission"
			selectors: [for i in list.Range(0, 64, 1) {matchPIDs: [{operator: "In", values: [i + 2]}]}]
		}, {
			call: "do_sys_openat2"
			args: [ // want PAL517
				for i in list.Range(0, 7, 1) {index: i, type: "int"},
			]
		}]
`},
		{name: "hooks of a policy", kind: "ClusterTracingPolicy", spec: ` // want PAL517
		kprobes: [for i in list.Range(0, 32, 1) {call: "security_file_open"}]
		uprobes: [{path: "/bin/bash", symbols: ["readline"]}]
`},
		{name: "hooks of a policy, at most", kind: "ClusterTracingPolicy", spec: `
		kprobes: [for i in list.Range(0, 31, 1) {call: "security_file_open"}]
		uprobes: [{path: "/bin/bash", symbols: ["readline"]}]
`},

		// PAL509: Sigkill and Deny that name a protected process.
		{name: "Sigkill on PID 1", spec: `
		podSelector: matchLabels: app: "web"
		kprobes: [{
			call: "security_file_open"
			selectors: [{
				matchPIDs: [{operator: "In", values: [
					42,
					1, // want PAL509
				]}]
				matchActions: [{action: "Sigkill"}]
			}]
		}]
`},
		{name: "PID 1 of the node in a cluster policy", kind: "ClusterTracingPolicy", spec: `
		kprobes: [{
			call: "security_file_open"
			selectors: [{
				matchPIDs: [{operator: "In", isNamespacePID: true, values: [
					1, // want PAL509
				]}]
				matchActions: [{action: "Sigkill"}]
			}]
		}]
`},
		{name: "PID 1 of a container in a namespaced policy is fine", spec: `
		kprobes: [{
			call: "security_file_open"
			selectors: [{
				matchPIDs: [{operator: "In", isNamespacePID: true, values: [1]}]
				matchActions: [{action: "Sigkill"}]
			}]
		}]
`},
		{name: "Deny on protected binaries", kind: "ClusterTracingPolicy", spec: `
		lsmhooks: [{
			hook: "file_open"
			selectors: [{
				matchBinaries: [
					{operator: "In", values: [
						"/usr/bin/kubelet", // want PAL509
						"/usr/bin/containerd-shim-runc-v2", // want PAL509
						"/usr/bin/nginx",
					]},
					{operator: "Prefix", values: [
						"/usr/local/bin/cri", // want PAL509
						"/opt/",
					]},
					{operator: "Postfix", values: [
						"/runc", // want PAL509
						"palisade-agent", // want PAL509
						"/nginx",
					]},
					{operator: "NotIn", values: ["/usr/bin/dockerd"]},
				]
				matchActions: [{action: "Deny"}]
			}]
		}]
`},
		{name: "Notify on protected processes is fine", kind: "ClusterTracingPolicy", spec: `
		kprobes: [{
			call: "security_file_open"
			selectors: [{
				matchPIDs: [{operator: "In", values: [1]}]
				matchBinaries: [{operator: "In", values: ["/usr/bin/kubelet"]}]
				matchActions: [{action: "Notify"}]
			}]
		}]
`},

		// PAL513: enforcement actions in audit mode.
		{name: "Sigkill in audit mode", spec: `
		mode: "audit"
		uprobes: [{
			path: "/usr/bin/bash"
			symbols: ["readline"]
			selectors: [{
				matchBinaries: [{operator: "In", values: ["/usr/bin/bash"]}]
				matchActions: [{action: "Sigkill"}] // want PAL513
			}]
		}]
`},

		// PAL515: action parameters that the action does not use.
		{name: "parameters of other actions", spec: `
		lsmhooks: [{
			hook: "file_open"
			args: [{index: 0, type: "file"}]
			selectors: [{
				matchBinaries: [{operator: "In", values: ["/usr/bin/cat"]}]
				matchActions: [{
					action: "Sigkill"
					argError: -1 // want PAL515
				}, {
					action: "Deny"
					rateLimit: "1m" // want PAL515
				}, {
					action: "Notify"
					argFd: 0 // want PAL515
				}]
			}]
		}]
`},

		// The podSelector is checked like every label selector.
		{name: "contradicting podSelector", spec: `
		podSelector: {
			matchLabels: app: "web"
			matchExpressions: [{ // want PAL101
				key: "app", operator: "NotIn", values: ["web"]
			}]
		}
		tracepoints: [{subsystem: "sched", event: "sched_process_exec"}]
`},

		// So is the nodeSelector.
		{name: "contradicting nodeSelector", kind: "ClusterTracingPolicy", spec: `
		nodeSelector: {
			matchLabels: gpu: "true"
			matchExpressions: [{ // want PAL101
				key: "gpu", operator: "DoesNotExist"
			}]
		}
		tracepoints: [{subsystem: "sched", event: "sched_process_exec"}]
`},

		// Several findings in one selector, each at its own field.
		{name: "several findings in one policy", kind: "ClusterTracingPolicy", spec: `
		mode: "audit"
		kprobes: [{
			call: "sys_openat"
			args: [{index: 1, type: "string"}, {index: 1, type: "int"}] // want PAL508
			selectors: [{
				matchArgs: [{
					index: 1
					operator: "Mask" // want PAL501
					values: ["1", "2"]
				}]
				matchBinaries: [{operator: "Prefix", values: ["/usr/sbin/kube"]}] // want PAL509
				matchActions: [
					{action: "Sigkill"}, // want PAL513
					{action: "Deny"}, // want PAL504 PAL513
				]
			}]
		}]
`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			kind := tc.kind
			if kind == "" {
				kind = "TracingPolicy"
			}
			src := tracingPolicy(kind, tc.spec)
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, tracingFile), []byte(src), 0o644); err != nil {
				t.Fatal(err)
			}
			rep, err := validate.Dir(context.Background(), dir, validate.Options{})
			if err != nil {
				t.Fatal(err)
			}
			for _, d := range rep.Diagnostics {
				if d.Pos.File != tracingFile {
					t.Errorf("diagnostic not in %s: %s", tracingFile, d)
				}
			}
			if want, have := wanted(src), got(rep.Diagnostics); !slices.Equal(want, have) {
				var b strings.Builder
				for _, d := range rep.Diagnostics {
					fmt.Fprintf(&b, "\n\t%s [%s]", d, d.Path)
				}
				t.Errorf("diagnostics (code:line)\n want %v\n have %v\nall:%s\nsource:\n%s", want, have, b.String(), numbered(src))
			}
			if wantValid := !slices.ContainsFunc(wanted(src), isErrorCode); rep.Valid() != wantValid {
				t.Errorf("Valid() = %v, want %v", rep.Valid(), wantValid)
			}
		})
	}
}

// withoutCapability drops PAL060: whether the datapath loads tracing
// policies is the capability table's business (capability_test.go), not
// the tracing checks'.
func withoutCapability(diags diag.List) diag.List {
	var out diag.List
	for _, d := range diags {
		if d.Code != "PAL060" {
			out = append(out, d)
		}
	}
	return out
}

func isErrorCode(codeLine string) bool {
	code, _, _ := strings.Cut(codeLine, ":")
	return diag.Codes[code].Severity == diag.Error
}

func numbered(src string) string {
	var b strings.Builder
	for i, line := range strings.Split(src, "\n") {
		fmt.Fprintf(&b, "%3d %s\n", i+1, line)
	}
	return b.String()
}

// TestTracingMessages pins the wording that people read for the findings
// whose message carries the facts needed to fix them.
func TestTracingMessages(t *testing.T) {
	src := tracingPolicy("TracingPolicy", `
		kprobes: [{
			call: "sys_openat"
			args: [{index: 2, type: "int"}]
			selectors: [{
				matchArgs: [{index: 2, operator: "Prefix", values: ["1"]}]
				matchBinaries: [{operator: "In", values: ["/usr/bin/runc"]}]
				matchActions: [{action: "Sigkill"}]
			}]
		}]
`)
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, tracingFile), []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	rep, err := validate.Dir(context.Background(), dir, validate.Options{})
	if err != nil {
		t.Fatal(err)
	}
	rep.Diagnostics = withoutCapability(rep.Diagnostics)
	want := map[string]struct{ path, msg string }{
		"PAL501": {"spec.kprobes[0].selectors[0].matchArgs[0].operator",
			"operator Prefix does not apply to argument 2 of type int; valid operators: Equal, NotEqual, GT, LT, Mask, InMap, NotInMap"},
		"PAL509": {"spec.kprobes[0].selectors[0].matchBinaries[0].values[0]",
			`Sigkill, Signal and Deny never target runc, and matchBinaries In "/usr/bin/runc" matches it`},
	}
	if len(rep.Diagnostics) != len(want) {
		t.Fatalf("got %d diagnostics, want %d: %v", len(rep.Diagnostics), len(want), rep.Diagnostics)
	}
	for _, d := range rep.Diagnostics {
		w, ok := want[d.Code]
		if !ok {
			t.Errorf("unexpected %s", d)
			continue
		}
		if d.Path != w.path || d.Message != w.msg || d.Object != "TracingPolicy/default/t" {
			t.Errorf("%s:\n path %q, want %q\n message %q, want %q\n object %q", d.Code, d.Path, w.path, d.Message, w.msg, d.Object)
		}
	}
}
