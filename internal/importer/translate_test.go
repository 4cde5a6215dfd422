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
	"slices"
	"strings"
	"testing"
)

// cnp wraps a Cilium rule body (fields under spec, indented by two) into a
// CiliumNetworkPolicy.
func cnp(body string) string {
	return "apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata: {name: t}\nspec:\n  endpointSelector: {}\n" + body
}

// knp wraps a NetworkPolicy spec body.
func knp(body string) string {
	return "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: t}\nspec:\n" + body
}

// ttp wraps a Tetragon spec body.
func ttp(body string) string {
	return "apiVersion: cilium.io/v1alpha1\nkind: TracingPolicy\nmetadata: {name: t}\nspec:\n" + body
}

// TestTranslate checks one translation rule per case: whether the object is
// imported, which diagnostic codes it gets, and what the CUE says.
func TestTranslate(t *testing.T) {
	im := newTestImporter(t)
	tests := []struct {
		name   string
		in     string
		status Status
		codes  []string // codes that must be reported
		want   []string // substrings of the rendered CUE
		not    []string // substrings the CUE must not have
	}{
		// Cilium ports.
		{"port string becomes number", cnp("  egress:\n  - toPorts:\n    - ports:\n      - {port: \"80\", protocol: TCP}\n"), Imported, nil,
			[]string{"port:     80", `protocol: "TCP"`}, nil},
		{"named port kept", cnp("  egress:\n  - toPorts:\n    - ports:\n      - {port: http}\n"), Imported, nil,
			[]string{`port: "http"`}, nil},
		{"placeholder port rejected", cnp("  egress:\n  - toPorts:\n    - ports:\n      - {port: REMOVE_ME_AFTER_DOUBLE_CHECKING_PORTS}\n"), Rejected, []string{"PAL902"}, nil, nil},
		{"port out of range rejected", cnp("  egress:\n  - toPorts:\n    - ports:\n      - {port: \"65536\"}\n"), Rejected, []string{"PAL902"}, nil, nil},
		{"lower-case protocol normalized", cnp("  egress:\n  - toPorts:\n    - ports:\n      - {port: \"53\", protocol: udp}\n"), Imported, []string{"PAL903"},
			[]string{`protocol: "UDP"`}, nil},
		{"unsupported protocol beside others narrows", cnp("  egress:\n  - toPorts:\n    - ports:\n      - {port: \"53\", protocol: UDP}\n      - {protocol: VRRP}\n"), Imported, []string{"PAL901"},
			[]string{"port:     53"}, []string{"VRRP"}},
		{"unsupported protocol alone would widen", cnp("  egress:\n  - toPorts:\n    - ports:\n      - {protocol: ICMP}\n"), Rejected, []string{"PAL902"}, nil, nil},
		{"unsupported protocol in deny rejected", cnp("  egressDeny:\n  - toEntities: [world]\n    toPorts:\n    - ports:\n      - {protocol: VRRP}\n"), Rejected, []string{"PAL902"}, nil, nil},
		{"icmp types", cnp("  egress:\n  - icmps:\n    - fields:\n      - {type: 8, family: IPv4}\n      - {type: EchoRequest, family: IPv6}\n"), Imported, nil,
			[]string{"type:   8", `type:   "EchoRequest"`, `toEntities: ["all"]`}, nil},
		{"unknown icmp type rejected", cnp("  egress:\n  - icmps:\n    - fields:\n      - {type: Bogus}\n"), Rejected, []string{"PAL902"}, nil, nil},

		// Cilium peers and entities.
		{"L4-only rule applies to every peer", cnp("  ingress:\n  - toPorts:\n    - ports:\n      - {port: \"22\"}\n"), Imported, nil,
			[]string{`fromEntities: ["all"]`}, nil},
		{"empty rule keeps default deny", cnp("  ingress:\n  - {}\n"), Imported, []string{"PAL903"},
			[]string{"enableDefaultDeny: ingress: true"}, []string{"ingress: ["}},
		{"explicit default deny copied", cnp("  enableDefaultDeny: {egress: false}\n  egress:\n  - toEntities: [world]\n"), Imported, nil,
			[]string{"enableDefaultDeny: egress: false"}, nil},
		{"world-ipv4 becomes a CIDR", cnp("  egress:\n  - toEntities: [world-ipv4]\n"), Imported, []string{"PAL903"},
			[]string{`toCIDR: ["0.0.0.0/0"]`}, nil},
		{"health-only rule left out, isolation kept", cnp("  ingress:\n  - fromEntities: [health]\n"), Imported, []string{"PAL901"},
			[]string{"enableDefaultDeny: ingress: true"}, []string{"health"}},
		{"unknown entity rejected", cnp("  ingress:\n  - fromEntities: [nowhere]\n"), Rejected, []string{"PAL902"}, nil, nil},
		{"fromRequires rejected", cnp("  ingress:\n  - fromRequires:\n    - matchLabels: {env: prod}\n"), Rejected, []string{"PAL902"}, nil, nil},
		{"toServices alone rejected", cnp("  egress:\n  - toServices:\n    - k8sService: {serviceName: s, namespace: default}\n"), Rejected, []string{"PAL902"}, nil, nil},
		{"toGroups beside endpoints narrows", cnp("  egress:\n  - toEndpoints: [{matchLabels: {app: db}}]\n    toGroups:\n    - aws: {securityGroupsIds: [sg-1]}\n"), Imported, []string{"PAL901"},
			[]string{"app: \"db\""}, []string{"aws"}},
		{"toServices in deny rejected", cnp("  egressDeny:\n  - toEndpoints: [{}]\n    toServices:\n    - k8sService: {serviceName: s}\n"), Rejected, []string{"PAL902"}, nil, nil},
		{"CIDR rule with except", cnp("  egress:\n  - toCIDRSet:\n    - cidr: 10.0.0.0/8\n      except: [10.96.0.0/12]\n"), Imported, nil,
			[]string{`cidr: "10.0.0.0/8"`, `except: ["10.96.0.0/12"]`}, nil},
		{"bad CIDR rejected", cnp("  egress:\n  - toCIDR: [10.0.0.300/8]\n"), Rejected, []string{"PAL902"}, nil, nil},
		{"cidrGroupRef alone rejected", cnp("  egress:\n  - toCIDRSet:\n    - cidrGroupRef: group\n"), Rejected, []string{"PAL902"}, nil, nil},
		{"required authentication rejected", cnp("  ingress:\n  - fromEndpoints: [{}]\n    authentication: {mode: required}\n"), Rejected, []string{"PAL902"}, nil, nil},
		{"disabled authentication dropped", cnp("  ingress:\n  - fromEndpoints: [{}]\n    authentication: {mode: disabled}\n"), Imported, []string{"PAL901"}, nil, nil},

		// Cilium selectors.
		{"cluster label rejected", cnp("  egress:\n  - toEndpoints:\n    - matchLabels: {io.cilium.k8s.policy.cluster: c2}\n"), Rejected, []string{"PAL902"}, nil, nil},
		{"reserved subject selects nothing", strings.Replace(cnp("  ingress:\n  - fromEntities: [world]\n"), "endpointSelector: {}", "endpointSelector: {matchLabels: {'reserved:health': ''}}", 1), Imported, []string{"PAL906"}, nil, nil},
		{"operator case normalized", cnp("  ingress:\n  - fromEndpoints:\n    - matchExpressions: [{key: a, operator: notin, values: [b]}]\n"), Imported, []string{"PAL903"},
			[]string{`operator: "NotIn"`}, nil},
		{"bad operator rejected", cnp("  ingress:\n  - fromEndpoints:\n    - matchExpressions: [{key: a, operator: Like}]\n"), Rejected, []string{"PAL902"}, nil, nil},
		{"unprefixed namespace label gets k8s prefix", cnp("  ingress:\n  - fromEndpoints:\n    - matchLabels: {io.kubernetes.pod.namespace: ns2}\n"), Imported, []string{"PAL903"},
			[]string{`"k8s:io.kubernetes.pod.namespace": "ns2"`}, nil},
		{"misplaced selector key rejected", cnp("  ingress:\n  - fromEndpoints:\n    - matchLabels:\n      role: x\n"), Rejected, []string{"PAL902"}, nil, nil},
		{"unknown rule field rejected", cnp("  ingress:\n  - fromEndpoint: [{}]\n"), Rejected, []string{"PAL902"}, nil, nil},
		{"duplicate key rejected", cnp("  ingress:\n  - fromEntities: [world]\n    fromEntities: [host]\n"), Rejected, []string{"PAL902"}, nil, nil},

		// Cilium L7.
		{"method alternation becomes rules", cnp("  ingress:\n  - toPorts:\n    - ports: [{port: \"80\", protocol: TCP}]\n      rules:\n        http:\n        - {method: \"GET|HEAD\", path: \"/x$\"}\n"), Imported, []string{"PAL903"},
			[]string{`method: "GET"`, `method: "HEAD"`, `path:   "/x"`}, []string{"$"}},
		{"method matching nothing rejected", cnp("  ingress:\n  - toPorts:\n    - ports: [{port: \"80\", protocol: TCP}]\n      rules:\n        http:\n        - {method: FETCH}\n"), Rejected, []string{"PAL902"}, nil, nil},
		{"bad path regex rejected", cnp("  ingress:\n  - toPorts:\n    - ports: [{port: \"80\", protocol: TCP}]\n      rules:\n        http:\n        - {path: \"/a(\"}\n"), Rejected, []string{"PAL902"}, nil, nil},
		{"host wildcard regex", cnp("  ingress:\n  - toPorts:\n    - ports: [{port: \"80\", protocol: TCP}]\n      rules:\n        http:\n        - {host: \"[^.]+\\\\.example\\\\.com\"}\n"), Imported, []string{"PAL903"},
			[]string{`host: "*.example.com"`}, nil},
		{"header match with secret rejected", cnp("  ingress:\n  - toPorts:\n    - ports: [{port: \"80\", protocol: TCP}]\n      rules:\n        http:\n        - headerMatches: [{name: X, secret: {name: s}}]\n"), Rejected, []string{"PAL902"}, nil, nil},
		{"header match value", cnp("  ingress:\n  - toPorts:\n    - ports: [{port: \"80\", protocol: TCP}]\n      rules:\n        http:\n        - headerMatches: [{name: X-A, value: b}]\n"), Imported, nil,
			[]string{`headers: ["X-A: b"]`}, nil},
		{"double star DNS pattern narrowed", cnp("  egress:\n  - toFQDNs: [{matchPattern: \"**.example.com\"}]\n"), Imported, []string{"PAL905"},
			[]string{`matchPattern: "*.example.com"`}, nil},
		{"kafka topic out of range rejected at its line", cnp("  egress:\n  - toPorts:\n    - ports: [{port: \"9092\", protocol: TCP}]\n      rules:\n        kafka: [{topic: \"a b\"}]\n"), Rejected, []string{"PAL902"}, nil, nil},
		{"serverNames rejected", cnp("  egress:\n  - toPorts:\n    - ports: [{port: \"443\", protocol: TCP}]\n      serverNames: [a.example.com]\n"), Rejected, []string{"PAL902"}, nil, nil},
		{"listener rejected", cnp("  egress:\n  - toPorts:\n    - ports: [{port: \"80\", protocol: TCP}]\n      listener: {name: l, envoyConfig: {kind: CiliumEnvoyConfig, name: c}}\n"), Rejected, []string{"PAL902"}, nil, nil},
		{"terminatingTLS dropped with a warning", cnp("  egress:\n  - toPorts:\n    - ports: [{port: \"443\", protocol: TCP}]\n      terminatingTLS: {secret: {name: s}}\n"), Imported, []string{"PAL901"}, nil, nil},

		// Kubernetes NetworkPolicy.
		{"k8s default policy types", knp("  podSelector: {}\n  egress:\n  - to: [{podSelector: {}}]\n"), Imported, nil,
			[]string{"ingress: true", "egress:  true"}, nil},
		{"k8s deny all ingress", knp("  podSelector: {}\n"), Imported, nil,
			[]string{"ingress: true", "egress:  false"}, []string{"fromEntities"}},
		{"k8s allow all", knp("  podSelector: {}\n  ingress: [{}]\n"), Imported, nil,
			[]string{`fromEntities: ["all"]`}, nil},
		{"k8s port defaults to TCP", knp("  podSelector: {}\n  ingress:\n  - ports: [{port: 80}]\n"), Imported, nil,
			[]string{`protocol: "TCP"`}, nil},
		{"k8s namespace labels prefixed", knp("  podSelector: {}\n  ingress:\n  - from: [{namespaceSelector: {matchLabels: {team: ops}}}]\n"), Imported, nil,
			[]string{`"k8s:io.cilium.k8s.namespace.labels.team": "ops"`, `operator: "Exists"`}, nil},
		{"k8s namespace name label", knp("  podSelector: {}\n  ingress:\n  - from: [{namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: kube-system}}}]\n"), Imported, nil,
			[]string{`"k8s:io.kubernetes.pod.namespace": "kube-system"`}, []string{"Exists"}},
		{"k8s missing podSelector rejected", knp("  ingress: [{}]\n"), Rejected, []string{"PAL902"}, nil, nil},

		// Tetragon.
		{"post becomes notify", ttp("  kprobes:\n  - call: fd_install\n    selectors:\n    - matchActions: [{action: Post, rateLimit: 1m}]\n"), Imported, []string{"PAL903"},
			[]string{`action:    "Notify"`, `rateLimit: "1m"`}, nil},
		{"override on kprobe rejected", ttp("  kprobes:\n  - call: do_sys_open\n    selectors:\n    - matchActions: [{action: Override, argError: -1}]\n"), Rejected, []string{"PAL902"}, nil, nil},
		{"override on security_ kprobe becomes LSM deny", ttp("  kprobes:\n  - call: security_file_open\n    args: [{index: 0, type: file}]\n    selectors:\n    - matchActions: [{action: Override, argError: -13}]\n"), Imported, []string{"PAL903"},
			[]string{`hook: "file_open"`, `action:   "Deny"`, "argError: -13"}, []string{"kprobes"}},
		{"override with sigkill on security_ kprobe rejected", ttp("  kprobes:\n  - call: security_file_open\n    selectors:\n    - matchActions: [{action: Override, argError: -1}, {action: Sigkill}]\n"), Rejected, []string{"PAL902"}, nil, nil},
		{"positive argError rejected", ttp("  lsmhooks:\n  - hook: file_open\n    selectors:\n    - matchActions: [{action: Override, argError: 1}]\n"), Rejected, []string{"PAL902"}, nil, nil},
		{"signal 9 becomes sigkill", ttp("  kprobes:\n  - call: fd_install\n    selectors:\n    - matchActions: [{action: Signal, argSig: 9}]\n"), Imported, []string{"PAL903"},
			[]string{`action: "Sigkill"`}, nil},
		{"other signal kept", ttp("  kprobes:\n  - call: fd_install\n    selectors:\n    - matchActions: [{action: Signal, argSig: 19}]\n"), Imported, nil,
			[]string{`action: "Signal"`, `argSig: 19`}, nil},
		{"signal out of range rejected", ttp("  kprobes:\n  - call: fd_install\n    selectors:\n    - matchActions: [{action: Signal, argSig: 65}]\n"), Rejected, []string{"PAL902"}, nil, nil},
		{"tracepoint index without the common fields", ttp("  tracepoints:\n  - subsystem: raw_syscalls\n    event: sys_enter\n    args: [{index: 4, type: int64}]\n    selectors:\n    - matchArgs: [{index: 0, operator: Equal, values: [\"59\"]}]\n"), Imported, []string{"PAL903"},
			[]string{"index: 0\n\t\t\ttype:  \"int64\"", "index:    0\n\t\t\t\toperator: \"Equal\""}, nil},
		{"tracepoint common field rejected", ttp("  tracepoints:\n  - subsystem: raw_syscalls\n    event: sys_enter\n    args: [{index: 3, type: int}]\n"), Rejected, []string{"PAL902"}, nil, nil},
		{"net_device comparison with notify warns", ttp("  kprobes:\n  - call: dev_queue_xmit\n    args: [{index: 1, type: net_device}]\n    selectors:\n    - matchArgs: [{index: 1, operator: Equal, values: [lo]}]\n"), Imported, []string{"PAL901"}, nil, []string{"matchArgs"}},
		{"net_device comparison with sigkill rejected", ttp("  kprobes:\n  - call: dev_queue_xmit\n    args: [{index: 1, type: net_device}]\n    selectors:\n    - matchArgs: [{index: 1, operator: Equal, values: [lo]}]\n      matchActions: [{action: Sigkill}]\n"), Rejected, []string{"PAL902"}, nil, nil},
		{"unknown action rejected", ttp("  kprobes:\n  - call: fd_install\n    selectors:\n    - matchActions: [{action: Explode}]\n"), Rejected, []string{"PAL902"}, nil, nil},
		{"dropped term with notify warns", ttp("  kprobes:\n  - call: fd_install\n    selectors:\n    - matchNamespaceChanges: [{operator: In, values: [Mnt]}]\n"), Imported, []string{"PAL901"}, nil, nil},
		{"dropped term with sigkill rejected", ttp("  kprobes:\n  - call: fd_install\n    selectors:\n    - matchNamespaceChanges: [{operator: In, values: [Mnt]}]\n      matchActions: [{action: Sigkill}]\n"), Rejected, []string{"PAL902"}, nil, nil},
		{"unknown operator with notify warns", ttp("  kprobes:\n  - call: fd_install\n    args: [{index: 0, type: int}]\n    selectors:\n    - matchArgs: [{index: 0, operator: InRange, values: [\"1:2\"]}]\n"), Imported, []string{"PAL901"}, nil, []string{"InRange"}},
		{"unknown arg type rejected", ttp("  kprobes:\n  - call: fd_install\n    args: [{index: 0, type: bpf_prog}]\n"), Rejected, []string{"PAL902"}, nil, nil},
		{"podSelector kept even when empty", ttp("  podSelector: {}\n  kprobes:\n  - call: fd_install\n"), Imported, nil,
			[]string{"podSelector: {}"}, nil},
		{"namespaced kind", strings.Replace(ttp("  kprobes:\n  - call: fd_install\n"), "kind: TracingPolicy", "kind: TracingPolicyNamespaced", 1), Imported, nil,
			[]string{`kind:       "TracingPolicy"`, "tracingPolicy: t:"}, nil},
		{"no hooks left rejected", ttp("  loader: true\n"), Rejected, []string{"PAL902", "PAL901"}, nil, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res := im.File("in.yaml", []byte(tc.in))
			if len(res.Objects) != 1 {
				t.Fatalf("want 1 object, got %d (%v)", len(res.Objects), res.All())
			}
			o := res.Objects[0]
			if o.Status != tc.status {
				t.Errorf("status %s, want %s: %v", o.Status, tc.status, o.Diagnostics)
			}
			var codes []string
			for _, d := range o.Diagnostics {
				codes = append(codes, d.Code)
				if d.Pos.Line == 0 {
					t.Errorf("diagnostic without a line: %s", d)
				}
			}
			for _, c := range tc.codes {
				if !slices.Contains(codes, c) {
					t.Errorf("no %s among %v", c, o.Diagnostics)
				}
			}
			out, err := Render(DefaultPackage, res)
			if err != nil {
				t.Fatal(err)
			}
			checkRendered(t, im, out)
			for _, w := range tc.want {
				if !strings.Contains(string(out), w) {
					t.Errorf("CUE lacks %q:\n%s", w, out)
				}
			}
			var code []string // the CUE without comments, which quote the source
			for _, l := range strings.Split(string(out), "\n") {
				if !strings.HasPrefix(strings.TrimSpace(l), "//") {
					code = append(code, l)
				}
			}
			for _, w := range tc.not {
				if strings.Contains(strings.Join(code, "\n"), w) {
					t.Errorf("CUE has %q:\n%s", w, out)
				}
			}
		})
	}
}

func TestMethodSet(t *testing.T) {
	tests := []struct {
		re      string
		methods []string
		all     bool
		exact   bool
		extra   []string
	}{
		{"", nil, true, true, nil},
		{".*", nil, true, true, nil},
		{"GET", []string{"GET"}, false, true, nil},
		{"^GET$", []string{"GET"}, false, true, nil},
		{"GET|POST", []string{"GET", "POST"}, false, true, nil},
		{"(PUT|PROPFIND)", []string{"PUT"}, false, true, []string{"PROPFIND"}},
		{"P.*", []string{"POST", "PUT", "PATCH"}, false, false, nil},
		{"get", nil, false, true, []string{"get"}},
	}
	for _, tc := range tests {
		methods, all, exact, extra, err := methodSet(tc.re)
		if err != nil {
			t.Errorf("%q: %v", tc.re, err)
			continue
		}
		if !slices.Equal(methods, tc.methods) || all != tc.all || exact != tc.exact || !slices.Equal(extra, tc.extra) {
			t.Errorf("methodSet(%q) = %v %v %v %v, want %v %v %v %v", tc.re, methods, all, exact, extra, tc.methods, tc.all, tc.exact, tc.extra)
		}
	}
	if _, _, _, _, err := methodSet("GET("); err == nil {
		t.Error("methodSet accepted an invalid expression")
	}
}

func TestHostPattern(t *testing.T) {
	tests := []struct {
		re, host     string
		narrowed, ok bool
	}{
		{`^api\.example\.com$`, "api.example.com", false, true},
		{`api.example.com`, "api.example.com", true, true},
		{`.*\.example\.com`, "*.example.com", true, true},
		{`[^.]+\.example\.com`, "*.example.com", false, true},
		{`(a|b)\.example\.com`, "", false, false},
		{`.*`, "", false, false},
	}
	for _, tc := range tests {
		host, narrowed, ok := hostPattern(tc.re)
		if host != tc.host || narrowed != tc.narrowed || ok != tc.ok {
			t.Errorf("hostPattern(%q) = %q %v %v, want %q %v %v", tc.re, host, narrowed, ok, tc.host, tc.narrowed, tc.ok)
		}
	}
}

func TestStripAnchors(t *testing.T) {
	for in, want := range map[string]string{"^/a$": "/a", "/a": "/a", `/a\$`: `/a\$`, "^": ""} {
		if got, _ := stripAnchors(in); got != want {
			t.Errorf("stripAnchors(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestRenderRejectsBadPackage(t *testing.T) {
	if _, err := Render("not a package"); err == nil {
		t.Error("Render accepted an invalid package name")
	}
}
