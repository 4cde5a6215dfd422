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

package loader_test

import (
	"context"
	"encoding/json"
	"path"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/palisade-dev/palisade/internal/diag"
	"github.com/palisade-dev/palisade/internal/loader"
)

// examplesDir is the example policy repository that docs and the demo use.
const examplesDir = "../../policies/examples"

// exampleObjects is every object the example repository defines, with the
// file that declares it. It is spelled out, not derived, so that a loader
// bug or a CUE mistake that silently drops (or adds) a policy fails here.
var exampleObjects = map[string]string{
	// platform/: generated per namespace by a comprehension.
	"NetworkPolicy/shop/default-deny":     "platform/default-deny.cue",
	"NetworkPolicy/payments/default-deny": "platform/default-deny.cue",
	"NetworkPolicy/ledger/default-deny":   "platform/default-deny.cue",
	// platform/: cluster-wide.
	"ClusterNetworkPolicy//host-firewall-workers": "platform/host-firewall.cue",
	"ClusterTracingPolicy//process-exec":          "platform/process-exec.cue",
	"ClusterTracingPolicy//network-connect":       "platform/network-connect.cue",
	"ClusterTracingPolicy//block-reverse-shell":   "platform/reverse-shell.cue",
	// kube-system/
	"NetworkPolicy/kube-system/kube-dns": "kube-system/kube-dns.cue",
	// shop/
	"NetworkPolicy/shop/frontend":            "shop/frontend.cue",
	"NetworkPolicy/shop/api":                 "shop/api.cue",
	"NetworkPolicy/shop/postgres":            "shop/postgres.cue",
	"NetworkPolicy/shop/allow-icmp-echo":     "shop/icmp.cue",
	"TracingPolicy/shop/protect-credentials": "shop/protect-credentials.cue",
	// payments/
	"NetworkPolicy/payments/kafka":             "payments/kafka.cue",
	"NetworkPolicy/payments/payment-processor": "payments/clients.cue",
	"NetworkPolicy/payments/fraud-detector":    "payments/clients.cue",
}

func loadExamples(t *testing.T) map[string]*loader.Object {
	t.Helper()
	res, err := loader.Load(context.Background(), examplesDir, loader.Options{})
	if err != nil {
		t.Fatalf("Load(%s): %v", examplesDir, err)
	}
	if res.Diagnostics.HasErrors() {
		for _, d := range res.Diagnostics {
			t.Log(d)
		}
		t.Fatalf("Load(%s): %d errors, %d warnings", examplesDir, res.Diagnostics.Count(diag.Error), res.Diagnostics.Count(diag.Warning))
	}
	for _, d := range res.Diagnostics {
		t.Logf("diagnostic (not an error): %s", d)
	}
	objs := map[string]*loader.Object{}
	for _, o := range res.Objects {
		if prev, dup := objs[o.ID()]; dup {
			t.Errorf("%s defined twice: at %s and %s", o.ID(), prev.Pos, o.Pos)
		}
		objs[o.ID()] = o
	}
	return objs
}

func TestExamplesLoad(t *testing.T) {
	objs := loadExamples(t)

	var got, want []string
	for id := range objs {
		got = append(got, id)
	}
	for id := range exampleObjects {
		want = append(want, id)
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("object IDs:\n got  %s\n want %s", strings.Join(got, "\n      "), strings.Join(want, "\n      "))
	}

	for id, file := range exampleObjects {
		o, ok := objs[id]
		if !ok {
			continue
		}
		// Pos.File is relative to the repository root; it must be the file
		// that declares the object, with a line, so that messages point
		// where the user has to look.
		if o.Pos.File != file || o.Pos.Line == 0 {
			t.Errorf("%s: Pos = %s, want %s:<line>", id, o.Pos, file)
		}
		if got := path.Dir(file); o.Package != got {
			t.Errorf("%s: Package = %q, want %q", id, o.Package, got)
		}
	}
}

// object decodes one example object's JSON.
func object(t *testing.T, objs map[string]*loader.Object, id string) map[string]any {
	t.Helper()
	o, ok := objs[id]
	if !ok {
		t.Fatalf("%s not loaded", id)
	}
	var v map[string]any
	if err := json.Unmarshal(o.JSON, &v); err != nil {
		t.Fatalf("%s: %v", id, err)
	}
	return v
}

// at follows a path of map keys and list indexes through decoded JSON.
func at(t *testing.T, v any, steps ...any) any {
	t.Helper()
	for i, s := range steps {
		switch s := s.(type) {
		case string:
			m, ok := v.(map[string]any)
			if !ok {
				t.Fatalf("%v: not an object at step %d", steps[:i+1], i)
			}
			if v, ok = m[s]; !ok {
				t.Fatalf("%v: no field %q", steps[:i+1], s)
			}
		case int:
			l, ok := v.([]any)
			if !ok || s >= len(l) {
				t.Fatalf("%v: no element %d", steps[:i+1], s)
			}
			v = l[s]
		}
	}
	return v
}

// jsonOf decodes a JSON literal, for comparing with decoded objects.
func jsonOf(t *testing.T, s string) any {
	t.Helper()
	var v any
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		t.Fatalf("bad JSON literal %s: %v", s, err)
	}
	return v
}

func TestExamplesContent(t *testing.T) {
	objs := loadExamples(t)

	eq := func(t *testing.T, id string, got any, want string) {
		t.Helper()
		if w := jsonOf(t, want); !reflect.DeepEqual(got, w) {
			g, _ := json.Marshal(got)
			t.Errorf("%s:\n got  %s\n want %s", id, g, want)
		}
	}

	t.Run("default-deny per namespace", func(t *testing.T) {
		modes := map[string]string{"shop": "enforce", "payments": "enforce", "ledger": "audit"}
		n := 0
		for _, o := range objs {
			if o.Name == "default-deny" {
				n++
			}
		}
		if n != len(modes) {
			t.Errorf("%d default-deny policies, want one per namespace (%d)", n, len(modes))
		}
		for ns, mode := range modes {
			id := "NetworkPolicy/" + ns + "/default-deny"
			v := object(t, objs, id)
			eq(t, id, at(t, v, "metadata", "namespace"), `"`+ns+`"`)
			eq(t, id, at(t, v, "spec", "mode"), `"`+mode+`"`)
			eq(t, id, at(t, v, "spec", "endpointSelector"), `{}`)
			eq(t, id, at(t, v, "spec", "enableDefaultDeny"), `{"ingress": true, "egress": true}`)
			eq(t, id, at(t, v, "metadata", "labels"), `{"app.kubernetes.io/managed-by": "palisade", "example.com/owner": "platform"}`)
		}
		// The template's parameters (#namespace, #mode) are definitions and
		// must not leak into the object.
		if s := string(objs["NetworkPolicy/shop/default-deny"].JSON); strings.Contains(s, "#") {
			t.Errorf("default-deny JSON contains a definition: %s", s)
		}
	})

	t.Run("postgres CIDR except and port range", func(t *testing.T) {
		id := "NetworkPolicy/shop/postgres"
		v := object(t, objs, id)
		eq(t, id, at(t, v, "spec", "ingress", 2), `{
			"fromCIDRSet": [{"cidr": "10.20.0.0/16", "except": ["10.20.5.0/24"]}],
			"toPorts": [{"ports": [{"port": 8432, "endPort": 8435, "protocol": "TCP"}]}]
		}`)
		eq(t, id, at(t, v, "spec", "ingressDeny"), `[{
			"fromEntities": ["world"],
			"toPorts": [{"ports": [{"port": 5432, "protocol": "TCP"}]}]
		}]`)
	})

	t.Run("kafka topics", func(t *testing.T) {
		id := "NetworkPolicy/payments/kafka"
		v := object(t, objs, id)
		eq(t, id, at(t, v, "spec", "ingress", 0), `{
			"fromEndpoints": [{"matchLabels": {
				"app.kubernetes.io/name": "api",
				"k8s:io.kubernetes.pod.namespace": "shop"
			}}],
			"toPorts": [{
				"ports": [{"port": 9092, "protocol": "TCP"}],
				"rules": {"kafka": [{"role": "produce", "topic": "orders", "clientID": "shop-api"}]}
			}]
		}`)
		eq(t, id, at(t, v, "spec", "ingress", 1, "toPorts", 0, "rules", "kafka", 0), `{"role": "consume", "topic": "orders"}`)
		eq(t, id, at(t, v, "spec", "ingress", 2, "toPorts", 0, "rules", "kafka", 3), `{"apiKey": "fetch", "topic": "orders", "clientID": "fraud-detector"}`)
	})

	t.Run("frontend HTTP and DNS rules", func(t *testing.T) {
		id := "NetworkPolicy/shop/frontend"
		v := object(t, objs, id)
		// 2 methods x 4 public paths from the comprehension, then POST and DELETE.
		http := at(t, v, "spec", "ingress", 0, "toPorts", 0, "rules", "http").([]any)
		if len(http) != 10 {
			t.Errorf("%s: %d ingress HTTP rules, want 10", id, len(http))
		}
		eq(t, id, http[0], `{"method": "GET", "path": "/"}`)
		eq(t, id, http[7], `{"method": "HEAD", "path": "/api/v1/.*"}`)
		eq(t, id, http[8], `{"method": "POST", "path": "/api/v1/(cart|checkout)(/.*)?", "headers": ["X-CSRF-Token"]}`)
		eq(t, id, at(t, v, "spec", "egress", 0), `{
			"toEndpoints": [{"matchLabels": {"k8s:io.kubernetes.pod.namespace": "kube-system", "k8s-app": "kube-dns"}}],
			"toPorts": [{
				"ports": [{"port": 53, "protocol": "UDP"}, {"port": 53, "protocol": "TCP"}],
				"rules": {"dns": [{"matchPattern": "*.shop.svc.cluster.local"}, {"matchName": "www.google.com"}]}
			}]
		}`)
		eq(t, id, at(t, v, "spec", "egress", 1, "toPorts", 0, "rules", "http", 0), `{"method": "GET", "path": "/api/v1/.*", "host": "api.shop.svc.cluster.local"}`)
	})

	t.Run("api FQDNs match its DNS rule", func(t *testing.T) {
		id := "NetworkPolicy/shop/api"
		v := object(t, objs, id)
		saas := `[{"matchName": "api.stripe.com"}, {"matchPattern": "*.googleapis.com"}]`
		eq(t, id, at(t, v, "spec", "egress", 3, "toFQDNs"), saas)
		dns := at(t, v, "spec", "egress", 0, "toPorts", 0, "rules", "dns").([]any)
		eq(t, id, dns[2:], saas)
	})

	t.Run("icmp by number and by name", func(t *testing.T) {
		id := "NetworkPolicy/shop/allow-icmp-echo"
		v := object(t, objs, id)
		eq(t, id, at(t, v, "spec", "ingress", 0, "icmps"), `[{"fields": [{"family": "IPv4", "type": 8}, {"family": "IPv6", "type": "EchoRequest"}]}]`)
	})

	t.Run("host firewall", func(t *testing.T) {
		id := "ClusterNetworkPolicy//host-firewall-workers"
		v := object(t, objs, id)
		if _, ok := v["metadata"].(map[string]any)["namespace"]; ok {
			t.Errorf("%s: cluster policy has a namespace", id)
		}
		eq(t, id, at(t, v, "spec", "nodeSelector"), `{"matchExpressions": [{"key": "node-role.kubernetes.io/control-plane", "operator": "DoesNotExist"}]}`)
		eq(t, id, at(t, v, "spec", "ingress", 1, "fromCIDR"), `["10.0.8.0/24", "fd00:10:8::/64"]`)
	})

	t.Run("file protection denies", func(t *testing.T) {
		id := "TracingPolicy/shop/protect-credentials"
		v := object(t, objs, id)
		sel := at(t, v, "spec", "lsmhooks", 0, "selectors", 0)
		eq(t, id, at(t, sel, "matchArgs", 0, "values"), `["/etc/shadow", "/etc/gshadow", "/etc/kubernetes/pki"]`)
		eq(t, id, at(t, sel, "matchActions"), `[{"action": "Deny", "argError": -13}]`)
	})

	t.Run("reverse shell hooks", func(t *testing.T) {
		id := "ClusterTracingPolicy//block-reverse-shell"
		v := object(t, objs, id)
		var calls []string
		for _, k := range at(t, v, "spec", "kprobes").([]any) {
			calls = append(calls, at(t, k, "call").(string))
		}
		if want := []string{"tcp_connect", "fd_install", "sys_close", "sys_dup2", "sys_dup3"}; !slices.Equal(calls, want) {
			t.Errorf("%s: kprobes %v, want %v", id, calls, want)
		}
		eq(t, id, at(t, v, "spec", "kprobes", 0, "selectors", 0, "matchActions"), `[{"action": "Sigkill"}]`)
		eq(t, id, at(t, v, "spec", "kprobes", 1, "selectors", 0, "matchActions"), `[{"action": "FollowFD", "argFd": 0, "argName": 1}]`)
	})
}
