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
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/kversion"

	v1 "github.com/palisade-dev/palisade/api/v1alpha1"
	"github.com/palisade-dev/palisade/internal/kafka"
)

// TestKafkaEgressAgentRealKernel: a client pod's egress Kafka rules go
// through the agent's kafka subsystem into the real bpf/kafka datapath:
// the subsystem binds the client's address, the broker's port and
// identity, and attaches sockops and the egress gate to the client pod's
// cgroup. franz-go (Kafka 3.0's versions) in that cgroup produces to the
// allowed topic; producing to the denied one fails with
// TOPIC_AUTHORIZATION_FAILED, and kfake (at the broker pod's address, in
// no enforced cgroup) never sees a request naming it.
func TestKafkaEgressAgentRealKernel(t *testing.T) {
	evalNeeds(t, "bpf/kafka", func() (io.Closer, error) { return kafka.Load() })
	nb := evalNet()
	brokerIP, clientIP := evalAddr(nb, 0, 2), evalAddr(nb, 0, 3)
	const clientUID = "00000000-0000-4000-8000-000000000003"
	root, pod := evalPodCgroup(t, "palisade-kafka-egress", clientUID)

	var mu sync.Mutex
	seen := map[int16][]string{}
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "orders", "secret"),
		kfake.ListenFn(func(string, string) (net.Listener, error) {
			return net.Listen("tcp4", netip.AddrPortFrom(brokerIP, 0).String())
		}))
	if err != nil {
		t.Fatalf("kfake: %v", err)
	}
	t.Cleanup(c.Close)
	c.Control(func(req kmsg.Request) (kmsg.Response, error, bool) {
		mu.Lock()
		defer mu.Unlock()
		if r, ok := req.(*kmsg.ProduceRequest); ok {
			for _, tp := range r.Topics {
				seen[0] = append(seen[0], tp.Topic)
			}
		}
		if r, ok := req.(*kmsg.MetadataRequest); ok {
			for _, tp := range r.Topics {
				if tp.Topic != nil {
					seen[3] = append(seen[3], *tp.Topic)
				}
			}
		}
		return nil, nil, false
	})
	broker := netip.MustParseAddrPort(c.ListenAddrs()[0])

	dp, err := kafka.Load()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dp.Close() })
	f, _ := newKafkaFixture(t)
	f.root = root
	f.a.Kafka, f.a.KafkaPinDir, f.a.CgroupRoot = dp, "", root
	f.podUID("broker", "broker", brokerIP.String(), 2, true)
	f.podUID("client", "client", clientIP.String(), 3, false)
	f.policy("client", "r1", 1, fmt.Sprintf(`
endpointSelector: {matchLabels: {app: client}}
egress:
- toEndpoints: [{matchLabels: {app: broker}}]
  toPorts: [{ports: [{port: "%d", protocol: TCP}], rules: {kafka: [{role: produce, topic: orders}, {apiKey: apiversions}]}}]
`, broker.Port()))
	if _, err := f.sync(); err != nil {
		t.Fatal(err)
	}
	if o := f.object("client"); o.State != v1.ObjectEnforced {
		t.Fatalf("client: %+v, want enforced", o)
	}

	var dialMu sync.Mutex
	dial := func(ctx context.Context, _, host string) (net.Conn, error) {
		dialMu.Lock()
		defer dialMu.Unlock()
		var conn net.Conn
		var derr error
		evalInCgroup(t, pod, func() { conn, derr = evalDialFrom(clientIP, netip.MustParseAddrPort(host)) })
		return conn, derr
	}
	client := func(opts ...kgo.Opt) *kgo.Client {
		cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(broker.String()), kgo.Dialer(dial), kgo.DisableIdempotentWrite(),
			kgo.DisableClientMetrics(), kgo.MaxVersions(kversion.V3_0_0())}, opts...)...)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(cl.Close)
		return cl
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := client().ProduceSync(ctx, &kgo.Record{Topic: "orders", Value: []byte("order 1")}).FirstErr(); err != nil {
		cnt, _ := dp.CountersDir(true)
		t.Fatalf("produce to orders: %v (egress counters %v)", err, cnt)
	}
	if err := client().ProduceSync(ctx, &kgo.Record{Topic: "secret", Value: []byte("leak")}).FirstErr(); !errors.Is(err, kerr.TopicAuthorizationFailed) {
		t.Fatalf("produce to secret: %v, want TOPIC_AUTHORIZATION_FAILED", err)
	}
	mu.Lock()
	defer mu.Unlock()
	for key, topics := range seen {
		if slices.Contains(topics, "secret") {
			t.Fatalf("the broker saw a request (key %d) naming secret: %v", key, topics)
		}
	}
	if !slices.Contains(seen[0], "orders") {
		t.Fatalf("the broker did not see the allowed produce: %v", seen)
	}
	cnt, err := dp.CountersDir(true)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("egress counters %v", cnt)
	if cnt[kafka.ReasonAnswered] == 0 || cnt[kafka.ReasonAllowed] == 0 || cnt[kafka.ReasonSockets] == 0 {
		t.Fatalf("egress counters %v: want allowed, answered and sockets", cnt)
	}
}
