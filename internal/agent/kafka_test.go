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

import (
	"context"
	"fmt"
	"math/rand"
	"net/netip"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	v1 "github.com/palisade-dev/palisade/api/v1alpha1"
	"github.com/palisade-dev/palisade/internal/capability"
	"github.com/palisade-dev/palisade/internal/engine"
	"github.com/palisade-dev/palisade/internal/kafka"
	"github.com/palisade-dev/palisade/internal/metrics"
)

// fakeKafka keeps what the subsystem writes and decides as the kernel
// does (bindings as bpf/kafka finds them, then the list's tables).
type fakeKafka struct {
	tables   *engine.KafkaTables
	binds    []kafka.Binding
	gen      uint64
	applies  int
	peers    map[netip.Prefix]uint32
	cgroups  []string
	counters map[kafka.Reason]uint64
}

func (k *fakeKafka) AttachCgroup(path string) error { k.cgroups = append(k.cgroups, path); return nil }
func (k *fakeKafka) Pin(string) error               { return nil }
func (k *fakeKafka) SetPeer(p netip.Prefix, id uint32) error {
	k.peers[p] = id
	return nil
}
func (k *fakeKafka) Apply(gen uint64, t *engine.KafkaTables, b []kafka.Binding) error {
	for _, x := range b {
		if _, ok := t.Lists[x.List]; !ok {
			return fmt.Errorf("binding names list %d, which has no tables", x.List)
		}
	}
	k.gen, k.tables, k.binds = gen, t, slices.Clone(b)
	k.applies++
	return nil
}
func (k *fakeKafka) Counters() (map[kafka.Reason]uint64, error) { return k.counters, nil }
func (k *fakeKafka) Close() error                               { return nil }

// decide decides a request between local and remote on port (the local
// port of an ingress binding, the remote port of an egress one) as the
// kernel does: the peer's identity by longest prefix, its binding else
// any peer's; no binding passes.
func (k *fakeKafka) decide(egress bool, local netip.Addr, port uint16, remote netip.Addr, q *engine.KafkaRequest) (bound, allowed bool, rule engine.RuleID) {
	var id uint32
	best := -1
	for p, v := range k.peers {
		if p.Contains(remote) && p.Bits() > best {
			best, id = p.Bits(), v
		}
	}
	for _, want := range []uint32{id, 0} {
		for _, b := range k.binds {
			if b.Egress == egress && b.Addr == local && b.Port == port && b.Identity == want {
				l := k.tables.Lists[b.List]
				ok, _, r := l.Decide(l.Mask(q))
				return true, ok, r
			}
		}
	}
	return false, true, 0
}

func newKafkaFixture(t *testing.T) (*l7Fixture, *fakeKafka) {
	f := newL7Fixture(t)
	k := &fakeKafka{peers: map[netip.Prefix]uint32{}}
	f.a.Kafka, f.a.KafkaPinDir = k, ""
	f.a.subs = nil // the subsystems again, with the Kafka datapath
	return f, k
}

// TestKafkaDecidesAsTheEngineRandom: for 100 seeded sets of policies on a
// broker pod's ingress, and 100 on a client pod's egress (Kafka rules by
// role, key, version, client and topic, for several peers, ports, audit
// mode and denies), every request the kernel would see is decided from
// what the subsystem wrote as engine.LookupSide decides it, with the
// same refusing rule, and the pod's cgroup is the one attached.
func TestKafkaDecidesAsTheEngineRandom(t *testing.T) {
	for _, egress := range []bool{false, true} {
		t.Run(map[bool]string{false: "ingress", true: "egress"}[egress], func(t *testing.T) { kafkaDecidesRandom(t, egress) })
	}
}

func kafkaDecidesRandom(t *testing.T, egress bool) {
	apps := []string{"producer", "consumer", "blocked"}
	// The workload whose rules are bound: the broker (ingress), or the
	// producer writing to every other pod and 192.0.2.0/24 (egress).
	self, selfIP, selfUID, dir, dirDeny := "broker", "10.0.0.2", 2, engine.Ingress, "ingressDeny"
	peers := []string{`fromEndpoints: [{matchLabels: {app: producer}}]`, `fromEndpoints: [{matchLabels: {app: consumer}}]`,
		`fromEndpoints: [{}]`, `fromEntities: [all]`, `fromCIDR: [192.0.2.0/25]`}
	remotes := []string{"10.0.0.3", "10.0.0.4", "10.0.0.5", "192.0.2.1", "192.0.2.200"}
	if egress {
		self, selfIP, selfUID, dir, dirDeny = "producer", "10.0.0.3", 3, engine.Egress, "egressDeny"
		peers = []string{`toEndpoints: [{matchLabels: {app: broker}}]`, `toEndpoints: [{matchLabels: {app: consumer}}]`,
			`toEndpoints: [{}]`, `toEntities: [all]`, `toCIDR: [192.0.2.0/25]`}
		remotes = []string{"10.0.0.2", "10.0.0.4", "10.0.0.5", "192.0.2.1", "192.0.2.200"}
	}
	section := map[engine.Direction]string{engine.Ingress: "ingress", engine.Egress: "egress"}[dir]
	ports := []string{`{port: "9092", protocol: TCP}`, `{port: "9093", protocol: TCP}`, `{port: "9090", endPort: 9093, protocol: TCP}`}
	rules := []string{`{role: produce, topic: orders}`, `{role: consume, topic: orders}`, `{apiKey: metadata}`, `{apiKey: apiversions}`,
		`{apiKey: produce, apiVersion: "9", topic: logs}`, `{clientID: admin}`, `{topic: logs}`}
	var reqs []*engine.KafkaRequest
	for _, key := range []string{"produce", "fetch", "metadata", "apiversions", "createtopics", "key-22"} {
		for _, topic := range []string{"orders", "logs", ""} {
			reqs = append(reqs, &engine.KafkaRequest{APIKey: key, APIVersion: 9, Topic: topic}, &engine.KafkaRequest{APIKey: key, APIVersion: 7, ClientID: "admin", Topic: topic})
		}
	}
	checked, refused := 0, 0
	const sets = 100
	for seed := int64(1); seed <= sets; seed++ {
		rnd := rand.New(rand.NewSource(seed))
		f, k := newKafkaFixture(t)
		f.podUID("broker", "broker", "10.0.0.2", 2, false)
		for i, app := range apps {
			f.podUID(app, app, fmt.Sprintf("10.0.0.%d", 3+i), 3+i, false)
		}
		n := 1 + rnd.Intn(4)
		for i := 0; i < n; i++ {
			var b strings.Builder
			fmt.Fprintf(&b, "endpointSelector: {matchLabels: {app: %s}}\n", self)
			if rnd.Intn(4) == 0 {
				b.WriteString("mode: audit\n")
			}
			if rnd.Intn(5) == 0 {
				fmt.Fprintf(&b, "%s:\n- %s\n  toPorts: [{ports: [%s]}]\n", dirDeny, peers[rnd.Intn(2)], ports[rnd.Intn(2)])
			}
			b.WriteString(section + ":\n")
			for j := 0; j < 1+rnd.Intn(3); j++ {
				var ks []string
				for range rnd.Intn(3) {
					ks = append(ks, rules[rnd.Intn(len(rules))])
				}
				l7 := ""
				if len(ks) > 0 {
					l7 = ", rules: {kafka: [" + strings.Join(ks, ", ") + "]}"
				}
				fmt.Fprintf(&b, "- %s\n  toPorts: [{ports: [%s]%s}]\n", peers[rnd.Intn(len(peers))], ports[rnd.Intn(len(ports))], l7)
			}
			f.policy(fmt.Sprintf("p%d", i), "r1", n, b.String())
		}
		if _, err := f.sync(); err != nil {
			t.Fatal(err)
		}
		state, local := f.k.state, netip.MustParseAddr(selfIP)
		for _, b := range k.binds {
			if b.Egress != egress || b.Addr != local {
				t.Errorf("seed %d: binding %+v, want only %s's %s bindings", seed, b, self, section)
			}
		}
		for _, peer := range remotes {
			remote := netip.MustParseAddr(peer)
			for _, port := range []uint16{9090, 9092, 9093, 9094} {
				if v, _, _ := state.LookupSide(dir, local, remote, engine.ProtoTCP, port, nil); v == engine.VerdictDeny {
					continue // L3/L4 drops it: no request reaches the socket
				}
				for _, q := range reqs {
					v, reason, rule := state.LookupSide(dir, local, remote, engine.ProtoTCP, port, &engine.Request{Kafka: q})
					bound, allowed, krule := k.decide(egress, local, port, remote, q)
					if allowed != (v != engine.VerdictDeny) || !allowed && krule != rule {
						t.Errorf("seed %d: %s %s %d %+v: kernel allowed=%v (bound %v, rule %d), engine %s %s rule %d", seed, section, peer, port, q, allowed, bound, krule, v, reason, rule)
						continue
					}
					checked++
					if !allowed {
						refused++
					}
				}
			}
		}
		if len(k.binds) > 0 {
			want := filepath.Join(f.root, "kubepods", fmt.Sprintf("pod00000000-0000-4000-8000-%012d", selfUID))
			if !slices.Equal(k.cgroups, []string{want}) {
				t.Errorf("seed %d: cgroups attached %v, want %s's %s", seed, k.cgroups, self, want)
			}
		}
	}
	if refused == 0 || refused == checked {
		t.Fatalf("%d requests checked, %d refused: the sets decide nothing", checked, refused)
	}
	t.Logf("%d seeded sets: %d requests decided as the engine does, %d refused", sets, checked, refused)
}

// TestKafkaCountersMetric: the kernel's counters become
// palisade_kafka_requests_total{reason}.
func TestKafkaCountersMetric(t *testing.T) {
	f, k := newKafkaFixture(t)
	m, err := metrics.New(prometheus.NewRegistry(), "")
	if err != nil {
		t.Fatal(err)
	}
	f.a.Metrics = m
	f.podUID("broker", "broker", "10.0.0.2", 2, false)
	f.policy("broker", "r1", 1, `
endpointSelector: {matchLabels: {app: broker}}
ingress:
- toPorts: [{ports: [{port: "9092", protocol: TCP}], rules: {kafka: [{role: produce, topic: orders}]}}]
`)
	if _, err := f.sync(); err != nil {
		t.Fatal(err)
	}
	if len(k.binds) == 0 {
		t.Fatal("no binding for the broker's Kafka rules")
	}
	k.counters = map[kafka.Reason]uint64{kafka.ReasonAllowed: 5, kafka.ReasonDenied: 2}
	f.a.VerifyNow(context.Background())
	k.counters = map[kafka.Reason]uint64{kafka.ReasonAllowed: 7, kafka.ReasonDenied: 3, kafka.ReasonAnswered: 1, kafka.ReasonVersion: 1}
	f.a.VerifyNow(context.Background())
	for reason, want := range map[string]float64{"allowed": 7, "denied": 3, "answered": 1, "version": 1} {
		if got := counter(t, m.KafkaRequests.WithLabelValues(reason)); got != want {
			t.Errorf("palisade_kafka_requests_total{reason=%q} = %v, want %v", reason, got, want)
		}
	}
}

// TestKafkaReport: an object's ingress and egress Kafka rules are
// reported as enforced where the table says the datapath enforces them
// (egress ones bound on the client's side); HTTP and Kafka rules on one
// port, and a pod without a cgroup, are gaps of the object.
func TestKafkaReport(t *testing.T) {
	f, k := newKafkaFixture(t)
	f.podUID("broker", "broker", "10.0.0.2", 2, false)
	f.podUID("other", "other", "10.0.0.3", 3, true)
	f.podUID("client", "client", "10.0.0.4", 4, false)
	f.policy("client", "r1", 4, `
endpointSelector: {matchLabels: {app: client}}
egress:
- toEndpoints: [{matchLabels: {app: broker}}]
  toPorts: [{ports: [{port: "9092", protocol: TCP}], rules: {kafka: [{role: produce, topic: orders}]}}]
`)
	f.policy("broker", "r1", 4, `
endpointSelector: {matchLabels: {app: broker}}
ingress:
- toPorts: [{ports: [{port: "9092", protocol: TCP}], rules: {kafka: [{role: produce, topic: orders}]}}]
`)
	f.policy("mixed", "r1", 4, `
endpointSelector: {matchLabels: {app: broker}}
ingress:
- toPorts: [{ports: [{port: "8080", protocol: TCP}], rules: {kafka: [{topic: orders}], http: [{method: GET}]}}]
`)
	f.policy("nocgroup", "r1", 4, `
endpointSelector: {matchLabels: {app: other}}
ingress:
- toPorts: [{ports: [{port: "9092", protocol: TCP}], rules: {kafka: [{topic: orders}]}}]
`)
	if _, err := f.sync(); err != nil {
		t.Fatal(err)
	}
	if len(k.binds) != 4 || !k.binds[3].Egress || k.binds[3].Addr != netip.MustParseAddr("10.0.0.4") || k.binds[3].Port != 9092 {
		t.Fatalf("bindings %+v, want the broker's 9092 and 8080, other's 9092 and client's egress to 9092", k.binds)
	}
	if !capability.Enforced(capability.Kafka) || !capability.Enforced(capability.KafkaEgress) {
		t.Fatal("the capability table lists Kafka rules as a gap, but the kafka subsystem enforces them")
	}
	if o := f.object("client"); o.State != v1.ObjectEnforced {
		t.Errorf("client: %+v", o)
	}
	if o := f.object("broker"); o.State != v1.ObjectEnforced {
		t.Errorf("broker: %+v", o)
	}
	if o := f.object("mixed"); !strings.Contains(o.Message, "share 8080/TCP with HTTP rules") {
		t.Errorf("mixed: %+v", o)
	}
	if o := f.object("nocgroup"); !strings.Contains(o.Message, "Kafka sockops program is not attached") {
		t.Errorf("nocgroup: %+v", o)
	}
}
