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

package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/palisade-dev/palisade/internal/capability"
)

// explainCmd runs "palisadectl explain" on the example repository.
func explainCmd(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	root := newRootCmd()
	var out, errOut bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&errOut)
	base := []string{"explain", "--policies", "../../policies/examples", "--endpoints", "../../policies/examples/endpoints.yaml"}
	root.SetArgs(append(base, args...))
	err := root.Execute()
	return out.String(), errOut.String(), exitCode(err)
}

// TestExplainExamples asks about flows of the example cluster. Each
// expectation is read off the example policies (policies/examples), not
// off explain's output: which rule of which policy should decide, and on
// which line of which file that rule is written.
func TestExplainExamples(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		verdict string
		// side is the deciding side; rule "policy path" and its file:line.
		side, reason, rule, pos string
	}{
		{"frontend calls api", []string{"--from", "shop/frontend-7d9f", "--to", "shop/api-5c8b:8080/TCP"},
			"allow", "ingress", "allowed", "shop/api spec.ingress[0]", "shop/api.cue:15:13"},
		{"world reaches frontend's http", []string{"--from-entity", "world", "--to", "shop/frontend-7d9f:80/TCP"},
			"allow", "ingress", "allowed", "shop/frontend spec.ingress[0]", "shop/frontend.cue:24:4"},
		{"world to frontend ssh is default-deny", []string{"--from-entity", "world", "--to", "shop/frontend-7d9f:22/TCP"},
			"deny", "ingress", "default-deny", "", ""},
		{"frontend may not reach postgres", []string{"--from", "shop/frontend-7d9f", "--to", "shop/postgres-0:5432/TCP"},
			"deny", "egress", "default-deny", "", ""},
		{"api reaches postgres", []string{"--from", "shop/api-5c8b", "--to", "shop/postgres-0:5432/TCP"},
			"allow", "egress", "allowed", "shop/api spec.egress[1]", "shop/api.cue:25:4"},
		{"backup network, not its excepted /24", []string{"--from", "10.20.5.9", "--to", "shop/postgres-0:8433/TCP"},
			"deny", "ingress", "default-deny", "", ""},
		{"backup network reaches the backup port range", []string{"--from", "10.20.7.9", "--to", "shop/postgres-0:8435/TCP"},
			"allow", "ingress", "allowed", "shop/postgres spec.ingress[2]", "shop/postgres.cue:23:4"},
		{"prometheus scrapes the named metrics port", []string{"--from", "monitoring/prometheus-0", "--to", "shop/api-5c8b:9090/TCP"},
			"allow", "ingress", "allowed", "shop/default-deny spec.ingress[0]", "platform/default-deny.cue"},
		{"frontend's HTTP to api must match its L7 rules", []string{"--from", "shop/frontend-7d9f", "--to", "shop/api-5c8b:8080/TCP", "--http-method", "GET", "--http-path", "/admin", "--http-host", "api.shop.svc.cluster.local"},
			"deny", "egress", "l7-denied", "shop/frontend spec.egress[1]", "shop/frontend.cue:50:4"},
		{"api produces orders to kafka", []string{"--from", "shop/api-5c8b", "--to", "payments/kafka-0:9092/TCP", "--kafka-api-key", "produce", "--kafka-topic", "orders", "--kafka-client-id", "shop-api"},
			"allow", "ingress", "allowed", "payments/kafka spec.ingress[0]", "payments/kafka.cue:13:4"},
		{"api may not consume orders", []string{"--from", "shop/api-5c8b", "--to", "payments/kafka-0:9092/TCP", "--kafka-api-key", "fetch", "--kafka-topic", "orders"},
			"deny", "ingress", "l7-denied", "payments/kafka spec.ingress[0]", "payments/kafka.cue:13:4"},
		{"ledger is in audit mode", []string{"--from", "ledger/ledger-1", "--to-entity", "world:443/TCP"},
			"audit", "egress", "default-deny", "", ""},
		{"bastion reaches a worker's ssh", []string{"--from", "10.0.8.5", "--to", "node/worker-1:22/TCP"},
			"allow", "ingress", "allowed", "host-firewall-workers spec.ingress[1]", "platform/host-firewall.cue"},
		{"world may not ssh into a worker", []string{"--from-entity", "world", "--to", "node/worker-1:22/TCP"},
			"deny", "ingress", "default-deny", "", ""},
		{"api reaches stripe by name", []string{"--from", "shop/api-5c8b", "--to", "198.51.100.20:443/TCP"},
			"allow", "egress", "allowed", "shop/api spec.egress[3]", "shop/api.cue:35:4"},
		{"the reply of an allowed call is allowed", []string{"--from", "shop/frontend-7d9f", "--to", "shop/api-5c8b:8080/TCP", "--reply"},
			"allow", "ingress", "allowed", "shop/api spec.ingress[0]", "shop/api.cue:15:13"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out, errOut, code := explainCmd(t, append(tc.args, "-o", "json")...)
			if code != exitOK {
				t.Fatalf("exit %d: %s", code, errOut)
			}
			var got struct {
				Verdict string
				Egress  sideJSON
				Ingress sideJSON
			}
			if err := json.Unmarshal([]byte(out), &got); err != nil {
				t.Fatalf("output is not JSON: %v\n%s", err, out)
			}
			if got.Verdict != tc.verdict {
				t.Fatalf("verdict %s, want %s\n%s", got.Verdict, tc.verdict, out)
			}
			side := got.Ingress
			if tc.side == "egress" {
				side = got.Egress
			}
			if side.Reason != tc.reason {
				t.Fatalf("%s reason %s, want %s\n%s", tc.side, side.Reason, tc.reason, out)
			}
			if tc.rule == "" {
				return
			}
			if side.Rule == nil {
				t.Fatalf("%s names no rule\n%s", tc.side, out)
			}
			name := side.Rule.Name
			if side.Rule.Namespace != "" {
				name = side.Rule.Namespace + "/" + name
			}
			if got := name + " " + side.Rule.Path; got != tc.rule {
				t.Errorf("deciding rule %q, want %q", got, tc.rule)
			}
			pos := fmt.Sprintf("%s:%d:%d", side.Rule.File, side.Rule.Line, side.Rule.Column)
			if !strings.HasPrefix(pos, tc.pos) || side.Rule.Line == 0 {
				t.Errorf("rule position %s, want %s", pos, tc.pos)
			}
			// The position must point at the rule in the file.
			src, err := os.ReadFile(filepath.Join("../../policies/examples", side.Rule.File))
			if err != nil {
				t.Fatalf("rule file: %v", err)
			}
			if lines := strings.Split(string(src), "\n"); side.Rule.Line > len(lines) {
				t.Errorf("line %d is beyond %s", side.Rule.Line, side.Rule.File)
			}
		})
	}
}

type sideJSON struct {
	Verdict string
	Reason  string
	Rule    *struct {
		Namespace, Name, Path, File string
		Line, Column                int
	}
}

func TestExplainText(t *testing.T) {
	out, errOut, code := explainCmd(t, "--from", "shop/frontend-7d9f", "--to", "shop/api-5c8b:8080/TCP")
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	for _, want := range []string{
		"verdict: ALLOW",
		"egress   at shop/frontend-7d9f: allow, allowed by NetworkPolicy shop/frontend spec.egress[1] (shop/frontend.cue:50:4)",
		"ingress  at shop/api-5c8b: allow, allowed by NetworkPolicy shop/api spec.ingress[0] (shop/api.cue:15:13)",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

func TestExplainUsageErrors(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"unknown endpoint", []string{"--from", "shop/nope", "--to", "shop/api-5c8b:80/TCP"}, `no endpoint "shop/nope"`},
		{"no port", []string{"--from", "shop/frontend-7d9f", "--to-entity", "world"}, "no destination port"},
		{"bad protocol", []string{"--from", "shop/frontend-7d9f", "--to", "shop/api-5c8b:80/XTP"}, "want TCP, UDP"},
		{"both from flags", []string{"--from", "shop/frontend-7d9f", "--from-entity", "world", "--to", "shop/api-5c8b:80"}, "exactly one of --from"},
		{"entity cluster is not one address", []string{"--from", "shop/frontend-7d9f", "--to-entity", "cluster:80/TCP"}, "does not name one kind"},
		{"two L7 requests", []string{"--from", "shop/frontend-7d9f", "--to", "shop/api-5c8b:80", "--dns-name", "x", "--http-path", "/"}, "give one L7 request"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, _, code := explainCmd(t, tc.args...)
			if code != exitUsage {
				t.Fatalf("exit %d, want %d", code, exitUsage)
			}
			root := newRootCmd()
			root.SetOut(&bytes.Buffer{})
			root.SetErr(&bytes.Buffer{})
			root.SetArgs(append([]string{"explain", "--policies", "../../policies/examples", "--endpoints", "../../policies/examples/endpoints.yaml"}, tc.args...))
			if err := root.Execute(); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want it to say %q", err, tc.want)
			}
		})
	}
}

func TestExplainBadEndpointsFile(t *testing.T) {
	dir := t.TempDir()
	f := writeFile(t, dir, "e.yaml", "endpoints:\n  - namespace: a\n    name: b\n    lables: {x: y}\n")
	root := newRootCmd()
	root.SetOut(&bytes.Buffer{})
	root.SetErr(&bytes.Buffer{})
	root.SetArgs([]string{"explain", "--policies", "../../policies/examples", "--endpoints", f, "--from", "a/b", "--to", "a/b:1"})
	err := root.Execute()
	if exitCode(err) != exitUsage || !strings.Contains(err.Error(), `unknown field "lables"`) {
		t.Fatalf("err %v: want a usage error naming the unknown field", err)
	}
}

// TestExplainKernel checks that explain says where the kernel's verdict
// differs from the policies', with the capability table's reasons, on the
// example repository: HTTP and Kafka rules and toFQDNs are enforced, so
// the kernel agrees with the policies (on the same DNS answers); a table
// that says egress HTTP is not enforced makes it pass the request.
func TestExplainKernel(t *testing.T) {
	l7Denied := []string{"--from", "shop/frontend-7d9f", "--to", "shop/api-5c8b:8080/TCP", "--http-method", "GET", "--http-path", "/admin", "--http-host", "api.shop.svc.cluster.local"}
	tests := []struct {
		name    string
		args    []string
		verdict string
		kernel  string
		differs bool
		reason  string
	}{
		{"HTTP request refused by L7 rules", l7Denied, "deny", "deny", false, ""},
		{"Kafka request refused by L7 rules", []string{"--from", "shop/api-5c8b", "--to", "payments/kafka-0:9092/TCP", "--kafka-api-key", "fetch", "--kafka-topic", "orders"},
			"deny", "deny", false, ""},
		{"flow allowed by toFQDNs", []string{"--from", "shop/api-5c8b", "--to", "198.51.100.20:443/TCP"}, "allow", "allow", false, ""},
		{"flow to an address of no allowed name", []string{"--from", "shop/api-5c8b", "--to", "198.51.100.40:443/TCP"}, "deny", "deny", false, ""},
		{"Kafka request allowed by L7 rules", []string{"--from", "shop/api-5c8b", "--to", "payments/kafka-0:9092/TCP", "--kafka-api-key", "produce", "--kafka-topic", "orders", "--kafka-client-id", "shop-api"},
			"allow", "allow", false, ""},
		{"L3/L4 only", []string{"--from", "shop/api-5c8b", "--to", "shop/postgres-0:5432/TCP"}, "allow", "allow", false, ""},
		{"L3/L4 default deny", []string{"--from", "shop/frontend-7d9f", "--to", "shop/postgres-0:5432/TCP"}, "deny", "deny", false, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out, errOut, code := explainCmd(t, append(tc.args, "-o", "json")...)
			if code != exitOK {
				t.Fatalf("exit %d: %s", code, errOut)
			}
			var got struct {
				Verdict string
				Kernel  struct {
					Verdict string
					Differs bool
					Reason  string
				}
			}
			if err := json.Unmarshal([]byte(out), &got); err != nil {
				t.Fatalf("%v\n%s", err, out)
			}
			k := got.Kernel
			if got.Verdict != tc.verdict || k.Verdict != tc.kernel || k.Differs != tc.differs || k.Reason != tc.reason {
				t.Errorf("verdict %s, kernel %+v\nwant %s, kernel {%s %v %q}", got.Verdict, k, tc.verdict, tc.kernel, tc.differs, tc.reason)
			}
		})
	}

	t.Run("text", func(t *testing.T) {
		out, errOut, code := explainCmd(t, l7Denied...)
		if code != exitOK || !strings.Contains(out, "verdict: DENY") || !strings.Contains(out, "kernel:  DENY, as the policies say\n") {
			t.Errorf("exit %d:\n%s%s", code, out, errOut)
		}
	})

	// The kernel's verdict comes from the capability table alone: where
	// the table says egress HTTP rules are not enforced (a node whose
	// agent runs without the L7 datapath behaves so), explain says the
	// kernel passes the request the policies refuse. The test changes the
	// package-level table, so no test of this package may run in parallel
	// with it.
	t.Run("table says egress HTTP is not enforced", func(t *testing.T) {
		old := capability.Table[capability.HTTPEgress]
		t.Cleanup(func() { capability.Table[capability.HTTPEgress] = old })
		capability.Table[capability.HTTPEgress] = capability.Support{Subsystem: old.Subsystem, Effect: old.Effect, Kernel: old.Kernel}
		out, errOut, code := explainCmd(t, l7Denied...)
		want := "kernel:  ALLOW, NOT as the policies say: the kernel passes this request today: egress HTTP rules on 8080/TCP are not enforced by this version\n"
		if code != exitOK || !strings.Contains(out, "verdict: DENY") || !strings.Contains(out, want) {
			t.Errorf("exit %d, output lacks %q:\n%s%s", code, want, out, errOut)
		}
	})
}

// explainJSON runs explain with args on the repository and endpoints
// given and decodes its JSON output.
func explainJSON(t *testing.T, policies, endpoints string, args ...string) (verdict string, kernel kernelJSON, dns string) {
	t.Helper()
	root := newRootCmd()
	var out, errOut bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&errOut)
	root.SetArgs(append([]string{"explain", "--policies", policies, "--endpoints", endpoints, "-o", "json"}, args...))
	if err := root.Execute(); err != nil {
		t.Fatalf("explain %v: %v\n%s", args, err, errOut.String())
	}
	var got struct {
		Verdict  string
		Kernel   kernelJSON
		DNSTable string
	}
	if err := json.Unmarshal(out.Bytes(), &got); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	return got.Verdict, got.Kernel, got.DNSTable
}

type kernelJSON struct {
	Verdict string
	Differs bool
	Reason  string
}

// TestExplainDNSTable: --dns replaces the endpoints file's answers for the
// verdict and the kernel line alike, in YAML or JSON (the agent's
// status.fqdn.table), and the output says which table was used.
func TestExplainDNSTable(t *testing.T) {
	const repo, eps = "../../policies/examples", "../../policies/examples/endpoints.yaml"
	dir := t.TempDir()
	yamlTable := writeFile(t, dir, "dns.yaml", "api.stripe.com: [198.51.100.99, 2001:db8::99]\nwww.google.com: [198.51.100.20]\n")
	jsonTable := writeFile(t, dir, "dns.json", `{"api.stripe.com":["198.51.100.99"],"www.google.com":["198.51.100.20"]}`)
	for _, table := range []string{yamlTable, jsonTable} {
		t.Run(filepath.Ext(table), func(t *testing.T) {
			// The learned address of api.stripe.com is allowed.
			v, k, dns := explainJSON(t, repo, eps, "--from", "shop/api-5c8b", "--to", "198.51.100.99:443/TCP", "--dns", table)
			if v != "allow" || k.Verdict != "allow" || k.Differs {
				t.Errorf("to the learned address: verdict %s, kernel %+v; want allow, allow", v, k)
			}
			if !strings.Contains(dns, table) || !strings.Contains(dns, "replaces the endpoints file's answers") {
				t.Errorf("dnsTable %q does not name %s", dns, table)
			}
			// The endpoints file's address of api.stripe.com is now
			// www.google.com's only, which api may not reach.
			v, k, _ = explainJSON(t, repo, eps, "--from", "shop/api-5c8b", "--to", "198.51.100.20:443/TCP", "--dns", table)
			if v != "deny" || k.Verdict != "deny" || k.Differs {
				t.Errorf("to the replaced address: verdict %s, kernel %+v; want deny, deny", v, k)
			}
		})
	}
	t.Run("text", func(t *testing.T) {
		out, errOut, code := explainCmd(t, "--from", "shop/api-5c8b", "--to", "198.51.100.99:443/TCP", "--dns", yamlTable)
		want := "dns:     toFQDNs decided with " + yamlTable + ", which replaces the endpoints file's answers\n"
		if code != exitOK || !strings.Contains(out, "verdict: ALLOW") || !strings.Contains(out, want) {
			t.Errorf("exit %d, output lacks %q:\n%s%s", code, want, out, errOut)
		}
		out, _, _ = explainCmd(t, "--from", "shop/api-5c8b", "--to", "198.51.100.20:443/TCP")
		if want := "dns:     toFQDNs decided with the endpoints file's answers (" + eps + ")\n"; !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	})
	for name, body := range map[string]string{
		"bad address": "api.stripe.com: [198.51.100.999]\n",
		"not a map":   "- api.stripe.com\n",
		"not a list":  "api.stripe.com: 198.51.100.1\n",
		"not a name":  "\"a b\": [198.51.100.1]\n",
	} {
		t.Run(name, func(t *testing.T) {
			f := writeFile(t, dir, "bad.yaml", body)
			_, _, code := explainCmd(t, "--from", "shop/api-5c8b", "--to", "198.51.100.1:443/TCP", "--dns", f)
			if code != exitUsage {
				t.Fatalf("exit %d, want a usage error", code)
			}
			root := newRootCmd()
			root.SetOut(&bytes.Buffer{})
			root.SetErr(&bytes.Buffer{})
			root.SetArgs([]string{"explain", "--policies", repo, "--endpoints", eps, "--from", "shop/api-5c8b", "--to", "198.51.100.1:443/TCP", "--dns", f})
			if err := root.Execute(); err == nil || !strings.Contains(err.Error(), f) {
				t.Errorf("error %v does not name the file", err)
			}
		})
	}
}

// TestExplainFQDNWithoutDNSRules: the kernel learns only from queries on
// ports with DNS rules, so a source without any learns nothing from the
// endpoints file's answers and the kernel drops what its toFQDNs allow,
// with the table's reason; given the node's learned table, the kernel
// line is that table's answer.
func TestExplainFQDNWithoutDNSRules(t *testing.T) {
	dir := t.TempDir()
	repo := filepath.Join(dir, "repo")
	writeFile(t, repo, "policies.cue", `package policies

np: payments: {
	apiVersion: "palisade.dev/v1alpha1"
	kind:       "NetworkPolicy"
	metadata: {name: "payments", namespace: "shop"}
	spec: {
		endpointSelector: matchLabels: app: "payments"
		egress: [{
			toFQDNs: [{matchName: "api.stripe.com"}]
			toPorts: [{ports: [{port: 443, protocol: "TCP"}]}]
		}]
	}
}
`)
	eps := writeFile(t, dir, "endpoints.yaml", `namespaces:
  shop: {}
nodes:
  - name: n1
    ips: [10.0.16.11]
podCIDRs: [10.244.0.0/16]
dns:
  api.stripe.com: [198.51.100.20]
endpoints:
  - namespace: shop
    name: payments-0
    labels: {app: payments}
    ips: [10.244.1.5]
    node: n1
`)
	v, k, _ := explainJSON(t, repo, eps, "--from", "shop/payments-0", "--to", "198.51.100.20:443/TCP")
	if v != "allow" || k.Verdict != "deny" || !k.Differs {
		t.Fatalf("verdict %s, kernel %+v; want allow, and the kernel dropping it", v, k)
	}
	want := "the kernel drops this flow today: toFQDNs (api.stripe.com) of a policy without DNS rules are not enforced by this version: the kernel " +
		capability.Table[capability.FQDNWithoutDNS].Kernel
	if k.Reason != want {
		t.Errorf("reason %q\nwant   %q", k.Reason, want)
	}
	table := writeFile(t, dir, "dns.json", `{"api.stripe.com":["198.51.100.20"]}`)
	if v, k, _ := explainJSON(t, repo, eps, "--from", "shop/payments-0", "--to", "198.51.100.20:443/TCP", "--dns", table); v != "allow" || k.Verdict != "allow" || k.Differs {
		t.Errorf("with the node's learned table: verdict %s, kernel %+v; want allow, allow", v, k)
	}
}

// TestExplainDNSOnFQDNPeers: DNS rules of a rule whose peers are toFQDNs
// are decided at L4 by the kernel (DNSOnFQDNPeers): a query they refuse
// passes, and the kernel line says so with the table's words; a query
// they allow is allowed by both, with the gap named. Once the table says
// the feature is enforced, explain agrees with the policies.
func TestExplainDNSOnFQDNPeers(t *testing.T) {
	dir := t.TempDir()
	repo := filepath.Join(dir, "repo")
	writeFile(t, repo, "policies.cue", `package policies

np: client: {
	apiVersion: "palisade.dev/v1alpha1"
	kind:       "NetworkPolicy"
	metadata: {name: "client", namespace: "shop"}
	spec: {
		endpointSelector: matchLabels: app: "client"
		egress: [{
			toFQDNs: [{matchName: "dns.google"}]
			toPorts: [{
				ports: [{port: 53, protocol: "UDP"}]
				rules: dns: [{matchPattern: "*.example.com"}]
			}]
		}]
	}
}
`)
	eps := writeFile(t, dir, "endpoints.yaml", `namespaces:
  shop: {}
nodes:
  - name: n1
    ips: [10.0.16.11]
podCIDRs: [10.244.0.0/16]
dns:
  dns.google: [8.8.8.8]
endpoints:
  - namespace: shop
    name: client-0
    labels: {app: client}
    ips: [10.244.1.5]
    node: n1
`)
	refused := []string{"--from", "shop/client-0", "--to", "8.8.8.8:53/UDP", "--dns-name", "evil.org"}
	v, k, _ := explainJSON(t, repo, eps, refused...)
	if v != "deny" || k.Verdict != "allow" || !k.Differs {
		t.Fatalf("refused query: verdict %s, kernel %+v; want deny, and the kernel passing it", v, k)
	}
	want := "the kernel passes this request today: egress DNS rules on 53/UDP of a toFQDNs rule are not enforced by this version: the kernel " +
		capability.Table[capability.DNSOnFQDNPeers].Kernel
	if k.Reason != want {
		t.Errorf("reason %q\nwant   %q", k.Reason, want)
	}
	v, k, _ = explainJSON(t, repo, eps, "--from", "shop/client-0", "--to", "8.8.8.8:53/UDP", "--dns-name", "www.example.com")
	wantAllowed := "egress DNS rules on 53/UDP of a toFQDNs rule are not enforced by this version: the kernel would pass any other request on the port too"
	if v != "allow" || k.Verdict != "allow" || k.Differs || k.Reason != wantAllowed {
		t.Errorf("allowed query: verdict %s, kernel %+v; want allow, allow, %q", v, k, wantAllowed)
	}

	old := capability.Table[capability.DNSOnFQDNPeers]
	t.Cleanup(func() { capability.Table[capability.DNSOnFQDNPeers] = old })
	capability.Table[capability.DNSOnFQDNPeers] = capability.Support{Enforced: true, Subsystem: old.Subsystem}
	if v, k, _ := explainJSON(t, repo, eps, refused...); v != "deny" || k.Verdict != "deny" || k.Differs {
		t.Errorf("table says enforced: verdict %s, kernel %+v; want deny, deny", v, k)
	}
}

// TestExplainHostHTTP: a host policy's ingress HTTP rules are not
// decided by the kernel (HTTPHost): a request they refuse passes there,
// and the kernel line names the host policy's rules.
func TestExplainHostHTTP(t *testing.T) {
	dir := t.TempDir()
	repo := filepath.Join(dir, "repo")
	writeFile(t, repo, "policies.cue", `package policies

cnp: host: {
	apiVersion: "palisade.dev/v1alpha1"
	kind:       "ClusterNetworkPolicy"
	metadata: name: "host"
	spec: {
		nodeSelector: matchLabels: role: "worker"
		ingress: [{
			fromEndpoints: [{matchLabels: {"k8s:io.kubernetes.pod.namespace": "shop", app: "monitor"}}]
			toPorts: [{
				ports: [{port: 10250, protocol: "TCP"}]
				rules: http: [{method: "GET", path: "/healthz"}]
			}]
		}]
	}
}
`)
	eps := writeFile(t, dir, "endpoints.yaml", `namespaces:
  shop: {}
nodes:
  - name: n1
    ips: [10.0.16.11]
    labels: {role: worker}
podCIDRs: [10.244.0.0/16]
endpoints:
  - namespace: shop
    name: monitor-0
    labels: {app: monitor}
    ips: [10.244.1.5]
    node: n1
`)
	v, k, _ := explainJSON(t, repo, eps, "--from", "shop/monitor-0", "--to", "10.0.16.11:10250/TCP", "--http-method", "GET", "--http-path", "/pods")
	if v != "deny" || k.Verdict != "allow" || !k.Differs {
		t.Fatalf("verdict %s, kernel %+v; want deny, and the kernel passing it", v, k)
	}
	want := "the kernel passes this request today: ingress HTTP rules on 10250/TCP are not enforced by this version"
	if k.Reason != want {
		t.Errorf("reason %q\nwant   %q", k.Reason, want)
	}
}
