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
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/palisade-dev/palisade/internal/capability"
	"github.com/palisade-dev/palisade/internal/diag"
	"github.com/palisade-dev/palisade/internal/validate"
)

// capabilityRepo has one rule of each feature the language has beyond
// L3/L4, on its own line, so each warning's position can be checked; nodns
// has toFQDNs and no DNS rule (and egress Kafka rules), host is a host
// policy with ingress HTTP and Kafka rules (its second and third rules, so
// that the paths differ from api's).
const capabilityRepo = `package policies

np: {
	apiVersion: "palisade.dev/v1alpha1"
	kind:       "NetworkPolicy"
	metadata: {name: "api", namespace: "shop"}
	spec: {
		mode: "audit"
		endpointSelector: matchLabels: app: "api"
		ingress: [{
			toPorts: [{
				ports: [{port: 8080, protocol: "TCP"}]
				rules: http: [{method: "GET"}]
			}, {
				ports: [{port: 9092, protocol: "TCP"}]
				rules: kafka: [{role: "produce", topic: "orders"}, {apiKey: "createtopics", topic: "orders"}]
			}]
		}]
		egress: [{
			toEndpoints: [{matchLabels: {"k8s:io.kubernetes.pod.namespace": "kube-system", "k8s-app": "kube-dns"}}]
			toPorts: [{
				ports: [{port: 53, protocol: "UDP"}]
				rules: dns: [{matchPattern: "*"}]
			}, {
				ports: [{port: 5353}]
				rules: dns: [{matchPattern: "*"}]
			}]
		}, {
			toFQDNs: [{matchName: "api.stripe.com"}]
		}, {
			toEndpoints: [{matchLabels: app: "payments"}]
			toPorts: [{
				ports: [{port: 8443, protocol: "TCP"}]
				rules: http: [{method: "POST", path: "/charges"}]
			}]
		}, {
			toFQDNs: [{matchName: "dns.google"}]
			toPorts: [{
				ports: [{port: 53, protocol: "UDP"}]
				rules: dns: [{matchPattern: "*.example.com"}]
			}]
		}, {
			toFQDNs: [{matchName: "api.github.com"}]
			toPorts: [{
				ports: [{port: 443, protocol: "TCP"}]
				rules: http: [{method: "GET"}]
			}, {
				ports: [{port: 9093, protocol: "TCP"}]
				rules: kafka: [{role: "produce", topic: "events"}]
			}]
		}]
	}
}

tp: {
	apiVersion: "palisade.dev/v1alpha1"
	kind:       "TracingPolicy"
	metadata: {name: "t", namespace: "shop"}
	spec: kprobes: [{call: "sys_openat"}]
}

np2: {
	apiVersion: "palisade.dev/v1alpha1"
	kind:       "NetworkPolicy"
	metadata: {name: "nodns", namespace: "shop"}
	spec: {
		endpointSelector: matchLabels: app: "web"
		egress: [{
			toFQDNs: [{matchName: "api.stripe.com"}]
		}, {
			toEndpoints: [{matchLabels: app: "kafka"}]
			toPorts: [{
				ports: [{port: 9092, protocol: "TCP"}]
				rules: kafka: [{role: "consume", topic: "orders"}]
			}]
		}]
	}
}

cnp: {
	apiVersion: "palisade.dev/v1alpha1"
	kind:       "ClusterNetworkPolicy"
	metadata: name: "host"
	spec: {
		nodeSelector: matchLabels: role: "worker"
		ingress: [{
			toPorts: [{ports: [{port: 22, protocol: "TCP"}]}]
		}, {
			toPorts: [{
				ports: [{port: 10250, protocol: "TCP"}]
				rules: http: [{method: "GET", path: "/healthz"}]
			}]
		}, {
			toPorts: [{
				ports: [{port: 9092, protocol: "TCP"}]
				rules: kafka: [{role: "produce"}]
			}]
		}]
		egress: [{
			toPorts: [{
				ports: [{port: 443, protocol: "TCP"}]
				rules: http: [{method: "GET"}]
			}]
		}]
	}
}
`

// wantGaps is each feature's warning: its field path and line in
// capabilityRepo.
var wantGaps = map[capability.Feature]struct {
	path string
	line int
}{
	capability.AuditReports:      {"spec.mode", 8},
	capability.HTTP:              {"spec.ingress[0].toPorts[0].rules.http", 13},
	capability.Kafka:             {"spec.ingress[0].toPorts[1].rules.kafka", 16},
	capability.DNS:               {"spec.egress[0].toPorts[0].rules.dns", 23},
	capability.DNSOtherProtocols: {"spec.egress[0].toPorts[1].rules.dns", 26},
	capability.FQDN:              {"spec.egress[1].toFQDNs", 29},
	capability.HTTPEgress:        {"spec.egress[2].toPorts[0].rules.http", 34},
	capability.DNSOnFQDNPeers:    {"spec.egress[3].toPorts[0].rules.dns", 40},
	capability.HTTPOnFQDNPeers:   {"spec.egress[4].toPorts[0].rules.http", 46},
	capability.KafkaOnFQDNPeers:  {"spec.egress[4].toPorts[1].rules.kafka", 49},
	capability.FQDNWithoutDNS:    {"spec.egress[0].toFQDNs", 69},
	capability.Tracing:           {"spec", 59},
	capability.HTTPHost:          {"spec.ingress[1].toPorts[0].rules.http", 91},
	capability.HTTPHostEgress:    {"spec.egress[0].toPorts[0].rules.http", 102},
	capability.KafkaTopicUnread:  {"spec.ingress[0].toPorts[1].rules.kafka[1]", 16},
	capability.KafkaEgress:       {"spec.egress[1].toPorts[0].rules.kafka", 74},
	capability.KafkaHost:         {"spec.ingress[2].toPorts[0].rules.kafka", 96},
}

func validateCapabilityRepo(t *testing.T) diag.List {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "policies.cue"), []byte(capabilityRepo), 0o644); err != nil {
		t.Fatal(err)
	}
	rep, err := validate.Dir(context.Background(), dir, validate.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if !rep.Valid() {
		t.Fatalf("repository does not validate: %v", rep.Diagnostics)
	}
	var out diag.List
	for _, d := range rep.Diagnostics {
		if d.Code == "PAL060" {
			out = append(out, d)
		}
	}
	return out
}

// TestCapabilityWarnings checks that validate warns at the field of every
// rule the capability table lists as not enforced, with the table's words,
// and that flipping a table entry makes its warning disappear by itself
// while the others stay. The test changes the package-level table, so it
// must not run in parallel with another test.
func TestCapabilityWarnings(t *testing.T) {
	for _, f := range capability.Features() {
		if _, ok := wantGaps[f]; !ok && !capability.Enforced(f) {
			t.Errorf("feature %q is not enforced, but the test repository has no rule of it", f)
		}
	}
	check := func(t *testing.T, diags diag.List) {
		t.Helper()
		seen := map[string]bool{}
		for _, d := range diags {
			seen[d.Path] = true
			if d.Severity != diag.Warning || d.Pos.File != "policies.cue" {
				t.Errorf("%s: want a warning in policies.cue", d)
			}
		}
		n := 0
		for f, w := range wantGaps {
			if capability.Enforced(f) {
				if seen[w.path] {
					t.Errorf("%s is enforced, yet validate warns at %s", f, w.path)
				}
				continue
			}
			n++
			found := false
			for _, d := range diags {
				if d.Path != w.path {
					continue
				}
				found = true
				if d.Pos.Line != w.line {
					t.Errorf("%s: warning on line %d, want %d", w.path, d.Pos.Line, w.line)
				}
				if want := capability.Table[f].Kernel; want == "" || !strings.Contains(d.Message, want) {
					t.Errorf("%s: message %q does not say what the kernel does (%q)", w.path, d.Message, want)
				}
			}
			if !found {
				t.Errorf("%s is not enforced, but validate gives no warning at %s; got %v", f, w.path, diags)
			}
		}
		if len(diags) != n {
			t.Errorf("got %d PAL060 warnings, want %d: %v", len(diags), n, diags)
		}
	}

	t.Run("table as shipped", func(t *testing.T) {
		check(t, validateCapabilityRepo(t))
	})
	for _, f := range []capability.Feature{capability.HTTP, capability.HTTPEgress, capability.HTTPHost, capability.DNSOnFQDNPeers,
		capability.FQDN, capability.FQDNWithoutDNS, capability.Tracing} {
		t.Run(string(f)+" enforced", func(t *testing.T) {
			old, had := capability.Table[f]
			t.Cleanup(func() {
				if had {
					capability.Table[f] = old
				} else {
					delete(capability.Table, f)
				}
			})
			capability.Table[f] = capability.Support{Enforced: true, Subsystem: old.Subsystem}
			diags := validateCapabilityRepo(t)
			check(t, diags)
			for _, d := range diags {
				if d.Path == wantGaps[f].path {
					t.Errorf("%s is enforced now, yet: %s", f, d)
				}
			}
		})
	}
}
