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

package agent

// Decision tests of the l7 subsystem against a fake L7 datapath that
// decides requests from what the subsystem wrote as bpf/l7 does (peer by
// longest prefix, binding by identity then any peer, HTTPList.Decide).
// l7_root_test.go runs the real datapath.

import (
	"context"
	"errors"
	"fmt"
	"math/rand"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/yaml"

	v1 "github.com/palisade-dev/palisade/api/v1alpha1"
	"github.com/palisade-dev/palisade/internal/capability"
	"github.com/palisade-dev/palisade/internal/engine"
	"github.com/palisade-dev/palisade/internal/l7"
	"github.com/palisade-dev/palisade/internal/metrics"
	"github.com/palisade-dev/palisade/internal/render"
)

// fakeL7 keeps what the subsystem writes and decides as the kernel does.
type fakeL7 struct {
	tables   *engine.HTTPTables
	binds    []l7.Binding
	gen      uint64
	applies  int
	peers    map[netip.Prefix]uint32
	cgroups  []string
	pinned   []string
	applyErr error
	counters map[l7.Reason]uint64
}

func newFakeL7() *fakeL7 { return &fakeL7{peers: map[netip.Prefix]uint32{}} }

func (k *fakeL7) AttachCgroup(path string) error {
	if slices.Contains(k.cgroups, path) {
		return fmt.Errorf("%s attached twice", path)
	}
	k.cgroups = append(k.cgroups, path)
	return nil
}
func (k *fakeL7) Pin(dir string) error { k.pinned = append(k.pinned, dir); return nil }
func (k *fakeL7) SetPeer(p netip.Prefix, id uint32) error {
	k.peers[p] = id
	return nil
}
func (k *fakeL7) Apply(gen uint64, t *engine.HTTPTables, b []l7.Binding) error {
	if k.applyErr != nil {
		return k.applyErr
	}
	for _, x := range b {
		if _, ok := t.Lists[x.List]; !ok {
			return fmt.Errorf("binding names list %d, which has no tables", x.List)
		}
	}
	k.tables, k.binds, k.gen = t, slices.Clone(b), gen
	k.applies++
	return nil
}
func (k *fakeL7) Counters() (map[l7.Reason]uint64, error) { return k.counters, nil }
func (k *fakeL7) Close() error                            { return nil }

// decide decides a request to local:port from remote: bound is false when
// no binding decides it (the kernel passes it).
func (k *fakeL7) decide(local netip.Addr, port uint16, remote netip.Addr, q *engine.HTTPRequest) (bound, allowed bool, rule engine.RuleID) {
	var id uint32
	for bits := remote.BitLen(); bits >= 0; bits-- {
		p, _ := remote.Prefix(bits)
		if v, ok := k.peers[p]; ok {
			id = v
			break
		}
	}
	for _, want := range []uint32{id, 0} {
		for _, b := range k.binds {
			if !b.Egress && b.Addr == local && b.Port == port && b.Identity == want {
				ok, r := k.tables.Lists[b.List].Decide(q, false)
				return true, ok, r
			}
		}
	}
	return false, true, 0
}

// l7Fixture is the decisions fixture with a fake L7 datapath and a
// cgroup tree of its own (a plain directory: the resolver only walks it).
type l7Fixture struct {
	*fixture
	l7   *fakeL7
	root string
}

func newL7Fixture(t *testing.T) *l7Fixture {
	f := &l7Fixture{fixture: newFixture(t), l7: newFakeL7(), root: t.TempDir()}
	f.a.L7, f.a.CgroupRoot, f.a.L7PinDir = f.l7, f.root, ""
	return f
}

// podUID adds a pod as fixture.pod does, with a UID, and its pod-level
// cgroup directory unless noCgroup.
func (f *l7Fixture) podUID(name, app, ip string, ifindex int, noCgroup bool) types.UID {
	f.t.Helper()
	f.pod(name, app, ip, ifindex, false)
	uid := types.UID(fmt.Sprintf("00000000-0000-4000-8000-%012d", ifindex))
	p := &corev1.Pod{}
	if err := f.c.Get(context.Background(), types.NamespacedName{Namespace: "shop", Name: name}, p); err != nil {
		f.t.Fatal(err)
	}
	p.UID = uid
	if err := f.c.Update(context.Background(), p); err != nil {
		f.t.Fatal(err)
	}
	if !noCgroup {
		f.cgroup(uid)
	}
	return uid
}

func (f *l7Fixture) cgroup(uid types.UID) string {
	f.t.Helper()
	dir := filepath.Join(f.root, "kubepods", "pod"+string(uid))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		f.t.Fatal(err)
	}
	return dir
}

func (f *l7Fixture) object(name string) v1.ObjectEnforcement {
	f.t.Helper()
	for _, s := range f.status().Status.PolicySets {
		for _, o := range s.Objects {
			if o.Name == name {
				return o
			}
		}
	}
	return v1.ObjectEnforcement{Name: name, State: v1.ObjectEnforced}
}

// The policies of TestL7DecidesAsTheEngine: on api, HTTP rules for one
// peer, for every peer, an L4-only allow for a third, a port range, an
// audit-mode policy, and a deny.
var l7Policies = map[string]string{
	"api-frontend": `
endpointSelector: {matchLabels: {app: api}}
ingress:
- fromEndpoints: [{matchLabels: {app: frontend}}]
  toPorts: [{ports: [{port: "80", protocol: TCP}], rules: {http: [{method: GET, path: "/public.*"}, {method: POST, path: /orders, headers: ["X-Token: abc"]}]}}]
- fromEndpoints: [{matchLabels: {app: frontend}}]
  toPorts: [{ports: [{port: "8000", endPort: 8003, protocol: TCP}], rules: {http: [{path: "/r/[0-9]+"}]}}]
`,
	"api-everyone": `
endpointSelector: {matchLabels: {app: api}}
ingress:
- fromEntities: [all]
  toPorts: [{ports: [{port: "80", protocol: TCP}], rules: {http: [{method: GET, path: /health}]}}]
`,
	"api-monitor": `
endpointSelector: {matchLabels: {app: api}}
ingress:
- fromEndpoints: [{matchLabels: {app: monitor}}]
  toPorts: [{ports: [{port: "80", protocol: TCP}]}]
`,
	"api-audit": `
endpointSelector: {matchLabels: {app: api}}
mode: audit
ingress:
- fromEndpoints: [{matchLabels: {app: frontend}}]
  toPorts: [{ports: [{port: "81", protocol: TCP}], rules: {http: [{method: GET, path: /audit}]}}]
`,
	"api-deny": `
endpointSelector: {matchLabels: {app: api}}
ingressDeny:
- fromEndpoints: [{matchLabels: {app: blocked}}]
  toPorts: [{ports: [{port: "80", protocol: TCP}]}]
`,
}

// TestL7DecidesAsTheEngine: every request the kernel would see (L3/L4
// allows the packet) to every port of api from every peer is decided
// from what the subsystem wrote exactly as engine.LookupSide decides it
// from the map state, with the same deciding rule.
func TestL7DecidesAsTheEngine(t *testing.T) {
	f := newL7Fixture(t)
	f.podUID("api", "api", "10.0.0.2", 2, false)
	f.podUID("frontend", "frontend", "10.0.0.3", 3, false)
	f.podUID("monitor", "monitor", "10.0.0.4", 4, false)
	f.podUID("blocked", "blocked", "10.0.0.5", 5, false)
	for name, spec := range l7Policies {
		f.policy(name, "r1", len(l7Policies), spec)
	}
	if _, err := f.sync(); err != nil {
		t.Fatal(err)
	}
	state := f.k.state
	api := netip.MustParseAddr("10.0.0.2")
	reqs := []*engine.HTTPRequest{
		{Method: "GET", Path: "/public/x"}, {Method: "GET", Path: "/health"}, {Method: "GET", Path: "/private"},
		{Method: "POST", Path: "/orders"}, {Method: "POST", Path: "/orders", Headers: map[string]string{"x-token": "abc"}},
		{Method: "GET", Path: "/r/42"}, {Method: "GET", Path: "/r/x"}, {Method: "GET", Path: "/audit"}, {Method: "DELETE", Path: "/public"},
	}
	peers := []string{"10.0.0.3", "10.0.0.4", "10.0.0.5", "10.0.0.2", "192.0.2.1"}
	checked, refused := 0, 0
	for _, peer := range peers {
		remote := netip.MustParseAddr(peer)
		for _, port := range []uint16{80, 81, 8000, 8002, 8003, 8004, 443} {
			if v, _, _ := state.LookupSide(engine.Ingress, api, remote, engine.ProtoTCP, port, nil); v == engine.VerdictDeny {
				continue // L3/L4 drops it: no request reaches the socket
			}
			for _, q := range reqs {
				v, reason, rule := state.LookupSide(engine.Ingress, api, remote, engine.ProtoTCP, port, &engine.Request{HTTP: q})
				bound, allowed, krule := f.l7.decide(api, port, remote, q)
				wantAllowed := v != engine.VerdictDeny
				if allowed != wantAllowed {
					t.Errorf("%s -> %d %s %s: kernel allowed=%v (bound %v, rule %d), engine %s %s rule %d", peer, port, q.Method, q.Path, allowed, bound, krule, v, reason, rule)
					continue
				}
				checked++
				if !allowed {
					refused++
					if krule != rule {
						t.Errorf("%s -> %d %s %s: refused by rule %d, engine names %d", peer, port, q.Method, q.Path, krule, rule)
					}
				}
			}
		}
	}
	if refused == 0 || checked == refused {
		t.Fatalf("%d requests checked, %d refused: the scenario decides nothing", checked, refused)
	}
	t.Logf("%d requests decided as the engine does, %d of them refused; %d bindings, %d lists", checked, refused, len(f.l7.binds), len(f.l7.tables.Lists))
	// Only api has bindings: only its cgroup carries the program.
	if want := []string{filepath.Join(f.root, "kubepods", "pod00000000-0000-4000-8000-000000000002")}; !slices.Equal(f.l7.cgroups, want) {
		t.Errorf("cgroups attached: %v, want %v", f.l7.cgroups, want)
	}
	for name := range l7Policies {
		// api-audit's reports need the flow observer, which this agent
		// runs without: that gap is not the l7 subsystem's.
		if o := f.object(name); o.State != v1.ObjectEnforced && (name != "api-audit" || strings.Contains(o.Message, "HTTP")) {
			t.Errorf("%s: %s %s: %s", name, o.State, o.Reason, o.Message)
		}
	}
	if c := f.condition(v1.L7EnforcedCondition); c.Status != metav1.ConditionTrue {
		t.Errorf("L7Enforced: %s %s: %s", c.Status, c.Reason, c.Message)
	}
	// The same inputs again: no new generation.
	applies := f.l7.applies
	if _, err := f.sync(); err != nil {
		t.Fatal(err)
	}
	if f.l7.applies != applies {
		t.Errorf("an unchanged state was applied again (%d applies, was %d)", f.l7.applies, applies)
	}
}

// TestL7CgroupMissing: a bound pod without a cgroup is reported, and the
// verify pass attaches it once its cgroup appears.
func TestL7CgroupMissing(t *testing.T) {
	f := newL7Fixture(t)
	uid := f.podUID("api", "api", "10.0.0.2", 2, true)
	f.podUID("frontend", "frontend", "10.0.0.3", 3, false)
	f.policy("api", "r1", 1, allowHTTP)
	if res, err := f.sync(); err != nil || res.RequeueAfter == 0 {
		t.Fatalf("sync: %v %+v, want a retry while the cgroup is missing", err, res)
	}
	o := f.object("api")
	if o.State != v1.ObjectPartial || o.Reason != reasonCgroupNotFound || !strings.Contains(o.Message, "ingress HTTP rules on 80/TCP are not decided for workloads") ||
		!strings.Contains(o.Message, "shop/api") {
		t.Errorf("object: %+v", o)
	}
	if c := f.condition(v1.L7EnforcedCondition); c.Status != metav1.ConditionFalse || c.Reason != v1.PartiallyEnforcedReason {
		t.Errorf("L7Enforced: %s %s: %s", c.Status, c.Reason, c.Message)
	}
	if len(f.l7.cgroups) != 0 {
		t.Fatalf("attached %v without a cgroup", f.l7.cgroups)
	}
	dir := f.cgroup(uid)
	f.a.VerifyNow(context.Background())
	if !slices.Equal(f.l7.cgroups, []string{dir}) {
		t.Fatalf("after the cgroup appeared, attached: %v", f.l7.cgroups)
	}
	if o := f.object("api"); o.State != v1.ObjectEnforced {
		t.Errorf("object after attach: %+v", o)
	}
	if c := f.condition(v1.L7EnforcedCondition); c.Status != metav1.ConditionTrue {
		t.Errorf("L7Enforced after attach: %s %s: %s", c.Status, c.Reason, c.Message)
	}
	if res, err := f.sync(); err != nil || res.RequeueAfter != 0 {
		t.Errorf("sync after attach: %v %+v, want no retry", err, res)
	}
}

// TestL7EgressBoundKafkaGap: egress HTTP rules are bound on the
// client's side (the source's address, the remote port, the peer's
// identity) and the object is enforced; on a node without the Kafka
// datapath, Kafka rules are reported as not enforced, with what the
// kernel does instead, and L7Enforced is False.
func TestL7EgressBoundKafkaGap(t *testing.T) {
	f := newL7Fixture(t)
	f.podUID("api", "api", "10.0.0.2", 2, false)
	f.podUID("frontend", "frontend", "10.0.0.3", 3, false)
	f.policy("frontend", "r1", 2, `
endpointSelector: {matchLabels: {app: frontend}}
egress:
- toEndpoints: [{matchLabels: {app: api}}]
  toPorts: [{ports: [{port: "80", protocol: TCP}], rules: {http: [{method: GET}]}}]
`)
	f.policy("kafka", "r1", 2, `
endpointSelector: {matchLabels: {app: api}}
ingress:
- fromEndpoints: [{matchLabels: {app: frontend}}]
  toPorts: [{ports: [{port: "9092", protocol: TCP}], rules: {kafka: [{topic: orders}]}}]
`)
	if _, err := f.sync(); err != nil {
		t.Fatal(err)
	}
	if o := f.object("frontend"); o.State != v1.ObjectEnforced {
		t.Errorf("frontend: %+v", o)
	}
	if o := f.object("kafka"); o.State != v1.ObjectPartial || o.Reason != v1.NotSupportedReason ||
		!strings.Contains(o.Message, "ingress Kafka rules on 9092/TCP are not enforced: the agent runs without the Kafka datapath") {
		t.Errorf("kafka: %+v", o)
	}
	api := f.k.state.Identity(netip.MustParseAddr("10.0.0.2"))
	if len(f.l7.binds) != 1 || !f.l7.binds[0].Egress || f.l7.binds[0].Addr != netip.MustParseAddr("10.0.0.3") ||
		f.l7.binds[0].Port != 80 || f.l7.binds[0].Identity != uint32(api) {
		t.Errorf("bindings %+v, want frontend's egress binding to api's identity %d on 80", f.l7.binds, api)
	}
	if c := f.condition(v1.L7EnforcedCondition); c.Status != metav1.ConditionFalse || c.Reason != v1.PartiallyEnforcedReason ||
		!strings.Contains(c.Message, "1 Kafka rule sets are not enforced") {
		t.Errorf("L7Enforced: %s %s: %s", c.Status, c.Reason, c.Message)
	}
}

// TestL7DNSOnFQDNPeersIsAGap: the kernel matches DNS rules of the peer's
// and the any-peer entries only, so a toFQDNs rule's DNS rules are
// reported not enforced (capability.DNSOnFQDNPeers), once, with the
// table's words; the object is partial.
func TestL7DNSOnFQDNPeersIsAGap(t *testing.T) {
	f := newL7Fixture(t)
	f.podUID("frontend", "frontend", "10.0.0.3", 3, false)
	f.policy("resolver", "r1", 1, `
endpointSelector: {matchLabels: {app: frontend}}
egress:
- toFQDNs: [{matchName: dns.google}]
  toPorts: [{ports: [{port: "53", protocol: UDP}], rules: {dns: [{matchPattern: "*.example.com"}]}}]
`)
	if _, err := f.sync(); err != nil {
		t.Fatal(err)
	}
	o := f.object("resolver")
	want := "egress DNS rules on 53/UDP of a toFQDNs rule are not enforced: the kernel " + capability.Table[capability.DNSOnFQDNPeers].Kernel
	if o.State != v1.ObjectPartial || o.Reason != v1.NotSupportedReason || strings.Count(o.Message, want) != 1 {
		t.Errorf("resolver: %+v\nwant the message once: %s", o, want)
	}
	if c := f.condition(v1.L7EnforcedCondition); c.Status != metav1.ConditionFalse || c.Reason != v1.NotSupportedReason {
		t.Errorf("L7Enforced: %s %s: %s", c.Status, c.Reason, c.Message)
	}
}

// TestL7UncompilableRefuses: a list the kernel cannot decide (a word
// boundary in a path) refuses every request, and the object says so.
func TestL7UncompilableRefuses(t *testing.T) {
	f := newL7Fixture(t)
	f.podUID("api", "api", "10.0.0.2", 2, false)
	f.podUID("frontend", "frontend", "10.0.0.3", 3, false)
	f.policy("api", "r1", 1, `
endpointSelector: {matchLabels: {app: api}}
ingress:
- fromEndpoints: [{matchLabels: {app: frontend}}]
  toPorts: [{ports: [{port: "80", protocol: TCP}], rules: {http: [{path: "/a\\bb"}]}}]
`)
	if _, err := f.sync(); err != nil {
		t.Fatal(err)
	}
	bound, allowed, _ := f.l7.decide(netip.MustParseAddr("10.0.0.2"), 80, netip.MustParseAddr("10.0.0.3"), &engine.HTTPRequest{Method: "GET", Path: "/a"})
	if !bound || allowed {
		t.Errorf("request under an uncompilable list: bound %v allowed %v, want refused", bound, allowed)
	}
	if o := f.object("api"); o.State != v1.ObjectPartial || o.Reason != v1.DatapathErrorReason || !strings.Contains(o.Message, "refuses every request") {
		t.Errorf("object: %+v", o)
	}
}

// TestL7ApplyFailureKeepsGeneration: a failed apply keeps the previous
// generation and says so; the next sync writes the new one.
func TestL7ApplyFailureKeepsGeneration(t *testing.T) {
	f := newL7Fixture(t)
	f.podUID("api", "api", "10.0.0.2", 2, false)
	f.podUID("frontend", "frontend", "10.0.0.3", 3, false)
	f.policy("api", "r1", 1, allowHTTP)
	if _, err := f.sync(); err != nil {
		t.Fatal(err)
	}
	gen, binds := f.l7.gen, slices.Clone(f.l7.binds)
	f.l7.applyErr = errors.New("map full")
	f.policy("api", "r2", 1, strings.Replace(allowHTTP, "/public", "/other", 1))
	if res, err := f.sync(); err != nil || res.RequeueAfter == 0 {
		t.Fatalf("sync: %v %+v, want a retry", err, res)
	}
	if f.l7.gen != gen || !slices.Equal(f.l7.binds, binds) {
		t.Errorf("the kernel's generation changed: %d, was %d", f.l7.gen, gen)
	}
	c := f.condition(v1.L7EnforcedCondition)
	if c.Status != metav1.ConditionFalse || c.Reason != v1.DatapathErrorReason || !strings.Contains(c.Message, fmt.Sprintf("generation %d", gen)) ||
		!strings.Contains(c.Message, "map full") {
		t.Errorf("L7Enforced: %s %s: %s", c.Status, c.Reason, c.Message)
	}
	if o := f.object("api"); o.Reason != v1.DatapathErrorReason || !strings.Contains(o.Message, "keeps deciding requests") {
		t.Errorf("object: %+v", o)
	}
	f.l7.applyErr = nil
	if _, err := f.sync(); err != nil {
		t.Fatal(err)
	}
	if f.l7.gen <= gen {
		t.Errorf("generation %d after the repair, was %d", f.l7.gen, gen)
	}
	bound, allowed, _ := f.l7.decide(netip.MustParseAddr("10.0.0.2"), 80, netip.MustParseAddr("10.0.0.3"), &engine.HTTPRequest{Method: "GET", Path: "/other"})
	if !bound || !allowed {
		t.Errorf("the new rule: bound %v allowed %v", bound, allowed)
	}
}

// TestL7PeersFollowIPCache: a peer whose address leaves the ipcache is
// rewritten with the identity it falls back to (the kernel has no
// delete), so no stale identity opens another peer's binding.
func TestL7PeersFollowIPCache(t *testing.T) {
	f := newL7Fixture(t)
	f.podUID("api", "api", "10.0.0.2", 2, false)
	f.podUID("frontend", "frontend", "10.0.0.3", 3, false)
	f.policy("api", "r1", 1, allowHTTP)
	if _, err := f.sync(); err != nil {
		t.Fatal(err)
	}
	fe := netip.MustParsePrefix("10.0.0.3/32")
	if id := f.l7.peers[fe]; id == 0 || id == uint32(engine.IdentityWorld) {
		t.Fatalf("frontend's identity in the kernel: %d", id)
	}
	p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "frontend"}}
	if err := f.c.Delete(context.Background(), p); err != nil {
		t.Fatal(err)
	}
	if _, err := f.sync(); err != nil {
		t.Fatal(err)
	}
	want := uint32(f.k.state.Identity(fe.Addr()))
	if got := f.l7.peers[fe]; got != want {
		t.Errorf("the gone peer's identity in the kernel: %d, want %d (what its address falls back to)", got, want)
	}
	if f.l7.peers[netip.MustParsePrefix("0.0.0.0/0")] == 0 {
		t.Errorf("no world prefix: %v", f.l7.peers)
	}
}

// TestL7CountersMetric: the kernel's counters become
// palisade_l7_requests_total{reason}, counted by difference.
func TestL7CountersMetric(t *testing.T) {
	f := newL7Fixture(t)
	m, err := metrics.New(prometheus.NewRegistry(), "")
	if err != nil {
		t.Fatal(err)
	}
	f.a.Metrics = m
	f.podUID("api", "api", "10.0.0.2", 2, false)
	f.policy("api", "r1", 1, allowHTTP)
	if _, err := f.sync(); err != nil {
		t.Fatal(err)
	}
	f.l7.counters = map[l7.Reason]uint64{l7.ReasonAllowed: 5, l7.ReasonDenied: 2}
	f.a.VerifyNow(context.Background())
	f.l7.counters = map[l7.Reason]uint64{l7.ReasonAllowed: 7, l7.ReasonDenied: 2, l7.ReasonTLS: 1}
	f.a.VerifyNow(context.Background())
	for reason, want := range map[string]float64{"allowed": 7, "denied": 2, "tls": 1} {
		if got := counter(t, m.L7Requests.WithLabelValues(reason)); got != want {
			t.Errorf("palisade_l7_requests_total{reason=%q} = %v, want %v", reason, got, want)
		}
	}
}

// TestL7HostPolicyHTTPIsAGap: requests to the host are not parsed (no pod
// cgroup holds the host's servers), so a host policy's ingress HTTP rules
// are reported not enforced, with the capability table's words, and
// nothing is bound for them.
func TestL7HostPolicyHTTPIsAGap(t *testing.T) {
	f := newL7Fixture(t)
	f.a.HostInterfaces = []string{"eth0"}
	f.podUID("frontend", "frontend", "10.0.0.3", 3, false)
	cnp := &v1.ClusterNetworkPolicy{ObjectMeta: metav1.ObjectMeta{Name: "host",
		Labels:      map[string]string{render.LabelPolicySetName: "demo", render.LabelPolicySetNamespace: "shop"},
		Annotations: map[string]string{render.AnnotationRevision: "r1", render.AnnotationRevisionObjects: "1"}},
		Spec: v1.ClusterNetworkPolicySpec{NodeSelector: &metav1.LabelSelector{}}}
	if err := yaml.UnmarshalStrict([]byte(`
ingress:
- fromEndpoints: [{matchLabels: {app: frontend}}]
  toPorts: [{ports: [{port: "10250", protocol: TCP}], rules: {http: [{method: GET, path: /healthz}]}}]
`), &cnp.Spec.RuleSet); err != nil {
		t.Fatal(err)
	}
	f.create(cnp)
	if _, err := f.sync(); err != nil {
		t.Fatal(err)
	}
	o := f.object("host")
	if o.State != v1.ObjectPartial || o.Reason != v1.NotSupportedReason ||
		!strings.Contains(o.Message, "ingress HTTP rules on 10250/TCP are not enforced: the kernel "+capability.Table[capability.HTTPHost].Kernel) {
		t.Errorf("host policy: %+v", o)
	}
	if n := strings.Count(o.Message, "ingress HTTP rules on 10250/TCP"); n != 1 {
		t.Errorf("host policy's HTTP rules reported %d times, want once: %s", n, o.Message)
	}
	if len(f.l7.binds) != 0 {
		t.Errorf("bindings for a host policy: %+v", f.l7.binds)
	}
	if c := f.condition(v1.L7EnforcedCondition); c.Status != metav1.ConditionFalse || c.Reason != v1.NotSupportedReason {
		t.Errorf("L7Enforced: %s %s: %s", c.Status, c.Reason, c.Message)
	}
}

// TestL7DecidesAsTheEngineRandom is TestL7DecidesAsTheEngine over seeded
// random policy sets: peers (one app, every endpoint, every entity,
// world, a CIDR), ports (one, a range, any protocol), HTTP rules or none,
// audit mode, deny rules; peers from the cluster, world and the CIDR.
func TestL7DecidesAsTheEngineRandom(t *testing.T) {
	apps := []string{"frontend", "monitor", "blocked"}
	peers := []string{`fromEndpoints: [{matchLabels: {app: frontend}}]`, `fromEndpoints: [{matchLabels: {app: monitor}}]`,
		`fromEndpoints: [{}]`, `fromEntities: [all]`, `fromEntities: [world]`, `fromCIDR: [192.0.2.0/25]`}
	ports := []string{`{port: "80", protocol: TCP}`, `{port: "81", protocol: TCP}`, `{port: "8000", endPort: 8003, protocol: TCP}`, `{port: "80", protocol: ANY}`}
	rules := []string{``, `{method: GET}`, `{method: GET, path: "/public.*"}`, `{path: "/r/[0-9]+"}`, `{method: POST, path: /orders, headers: ["X-Token: abc"]}`, `{host: "*.example.com"}`}
	reqs := []*engine.HTTPRequest{
		{Method: "GET", Path: "/public/x"}, {Method: "GET", Path: "/private"}, {Method: "POST", Path: "/orders"},
		{Method: "POST", Path: "/orders", Headers: map[string]string{"x-token": "abc"}}, {Method: "GET", Path: "/r/42", Host: "a.example.com"},
		{Method: "DELETE", Path: "/r/1"},
	}
	remotes := []string{"10.0.0.3", "10.0.0.4", "10.0.0.5", "192.0.2.1", "192.0.2.200"}
	checked, refused := 0, 0
	const sets = 100
	for seed := int64(1); seed <= sets; seed++ {
		rnd := rand.New(rand.NewSource(seed))
		f := newL7Fixture(t)
		f.podUID("api", "api", "10.0.0.2", 2, false)
		for i, app := range apps {
			f.podUID(app, app, fmt.Sprintf("10.0.0.%d", 3+i), 3+i, false)
		}
		n := 1 + rnd.Intn(4)
		for i := 0; i < n; i++ {
			var b strings.Builder
			b.WriteString("endpointSelector: {matchLabels: {app: api}}\n")
			if rnd.Intn(4) == 0 {
				b.WriteString("mode: audit\n")
			}
			if rnd.Intn(5) == 0 {
				fmt.Fprintf(&b, "ingressDeny:\n- %s\n  toPorts: [{ports: [%s]}]\n", peers[rnd.Intn(2)], ports[rnd.Intn(2)])
			}
			b.WriteString("ingress:\n")
			for j := 0; j < 1+rnd.Intn(3); j++ {
				port := ports[rnd.Intn(len(ports))]
				var http []string
				for k := 0; k < rnd.Intn(3); k++ {
					if r := rules[rnd.Intn(len(rules))]; r != "" {
						http = append(http, r)
					}
				}
				l7 := ""
				if len(http) > 0 && !strings.Contains(port, "ANY") {
					l7 = ", rules: {http: [" + strings.Join(http, ", ") + "]}"
				}
				fmt.Fprintf(&b, "- %s\n  toPorts: [{ports: [%s]%s}]\n", peers[rnd.Intn(len(peers))], port, l7)
			}
			f.policy(fmt.Sprintf("p%d", i), "r1", n, b.String())
		}
		if _, err := f.sync(); err != nil {
			t.Fatal(err)
		}
		if c := f.condition(v1.L7EnforcedCondition); c.Reason == v1.DatapathErrorReason {
			t.Fatalf("seed %d: L7Enforced %s: %s", seed, c.Reason, c.Message)
		}
		state, api := f.k.state, netip.MustParseAddr("10.0.0.2")
		for _, peer := range remotes {
			remote := netip.MustParseAddr(peer)
			for _, port := range []uint16{80, 81, 8000, 8003, 8004} {
				if v, _, _ := state.LookupSide(engine.Ingress, api, remote, engine.ProtoTCP, port, nil); v == engine.VerdictDeny {
					continue
				}
				for _, q := range reqs {
					v, reason, rule := state.LookupSide(engine.Ingress, api, remote, engine.ProtoTCP, port, &engine.Request{HTTP: q})
					bound, allowed, krule := f.l7.decide(api, port, remote, q)
					if allowed != (v != engine.VerdictDeny) || !allowed && krule != rule {
						t.Errorf("seed %d: %s -> %d %s %s: kernel allowed=%v (bound %v, rule %d), engine %s %s rule %d", seed, peer, port, q.Method, q.Path, allowed, bound, krule, v, reason, rule)
						continue
					}
					checked++
					if !allowed {
						refused++
					}
				}
			}
		}
	}
	if refused == 0 || refused == checked {
		t.Fatalf("%d requests checked, %d refused: the sets decide nothing", checked, refused)
	}
	t.Logf("%d seeded sets: %d requests decided as the engine does, %d refused", sets, checked, refused)
}

// TestL7KeptWhenTheChangeBindsNothing: a sync whose change of the map
// state touches no local workload's entries, policies, L7 lists or the
// ipcache keeps the l7 subsystem as it is without running it (its plan is
// the same object, nothing is applied); a change of the bound workload's
// HTTP rules and a new pod run it again, and what it then binds decides
// as before.
func TestL7KeptWhenTheChangeBindsNothing(t *testing.T) {
	f := newL7Fixture(t)
	f.podUID("api", "api", "10.0.0.2", 2, false)
	f.podUID("frontend", "frontend", "10.0.0.3", 3, false)
	f.podOn("node-2", "db", "db", "10.0.1.2", 0, false)
	const other = `
endpointSelector: {matchLabels: {app: db}}
ingress:
- fromEndpoints: [{matchLabels: {app: frontend}}]
  toPorts: [{ports: [{port: "%d", protocol: TCP}]}]
`
	f.policy("api", "r1", 2, allowHTTP)
	f.policy("db", "r1", 2, fmt.Sprintf(other, 5432))
	if _, err := f.sync(); err != nil {
		t.Fatal(err)
	}
	s := f.a.subs[1].(*l7Subsystem)
	plan, applies := s.plan, f.l7.applies
	if plan == nil || len(f.l7.binds) == 0 {
		t.Fatalf("first sync bound nothing: %+v", f.l7.binds)
	}
	api, fe := netip.MustParseAddr("10.0.0.2"), netip.MustParseAddr("10.0.0.3")
	if _, ok, _ := f.l7.decide(api, 80, fe, &engine.HTTPRequest{Method: "GET", Path: "/private"}); ok {
		t.Fatal("GET /private allowed before the changes")
	}

	// A remote workload's policy changes: kept.
	for port := 5433; port < 5436; port++ {
		f.policy("db", "r1", 2, fmt.Sprintf(other, port))
		if _, err := f.sync(); err != nil {
			t.Fatal(err)
		}
		if s.plan != plan || f.l7.applies != applies {
			t.Fatalf("port %d: the l7 subsystem ran for a change that binds nothing (applies %d, was %d)", port, f.l7.applies, applies)
		}
	}
	if c := f.condition(v1.L7EnforcedCondition); c.Status != metav1.ConditionTrue {
		t.Errorf("L7Enforced while kept: %s %s: %s", c.Status, c.Reason, c.Message)
	}

	// The bound workload's HTTP rules change: run, and applied.
	f.policy("api", "r1", 2, strings.Replace(allowHTTP, "/public", "/private", 1))
	if _, err := f.sync(); err != nil {
		t.Fatal(err)
	}
	if s.plan == plan || f.l7.applies != applies+1 {
		t.Fatalf("a change of the bound rules was not applied (applies %d, was %d)", f.l7.applies, applies)
	}
	if _, ok, _ := f.l7.decide(api, 80, fe, &engine.HTTPRequest{Method: "GET", Path: "/private"}); !ok {
		t.Error("GET /private refused after the rule allowing it was applied")
	}

	// A new pod (a new cluster): run.
	plan = s.plan
	f.podUID("frontend-2", "frontend", "10.0.0.4", 4, false)
	if _, err := f.sync(); err != nil {
		t.Fatal(err)
	}
	if s.plan == plan {
		t.Error("the l7 subsystem was kept after a pod was added")
	}
	if _, ok, _ := f.l7.decide(api, 80, netip.MustParseAddr("10.0.0.4"), &engine.HTTPRequest{Method: "GET", Path: "/private"}); !ok {
		t.Error("the new frontend's GET /private refused")
	}
}
