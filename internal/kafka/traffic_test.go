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

package kafka

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/kversion"
	"golang.org/x/sys/unix"

	"github.com/palisade-dev/palisade/api/v1alpha1"
	"github.com/palisade-dev/palisade/internal/engine"
)

// cgroupRoot is where cgroup v2 is mounted (the hybrid layout's
// /sys/fs/cgroup/unified on this machine).
func cgroupRoot() string {
	if _, err := os.Stat("/sys/fs/cgroup/unified/cgroup.procs"); err == nil {
		return "/sys/fs/cgroup/unified"
	}
	return "/sys/fs/cgroup"
}

// ownCgroup returns the cgroup v2 directory this process is in.
func ownCgroup(t testing.TB) string {
	t.Helper()
	b, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "0::"); ok {
			return filepath.Join(cgroupRoot(), rest)
		}
	}
	t.Skip("no cgroup v2 membership in /proc/self/cgroup")
	return ""
}

// broker is franz-go's kfake broker listening from a cgroup the test
// made, with bpf/kafka's sockops attached to it; seen records the topics
// of every request the broker handled, by API key.
type broker struct {
	d    *Datapath
	c    *kfake.Cluster
	addr string
	// cg is the cgroup the broker listens from.
	cg   string
	mu   sync.Mutex
	seen map[int16][]string
}

func (b *broker) saw(key int16) []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.Clone(b.seen[key])
}

// requestTopics lists the topics a request names.
func requestTopics(req kmsg.Request) []string {
	var out []string
	switch r := req.(type) {
	case *kmsg.MetadataRequest:
		for _, t := range r.Topics {
			if t.Topic != nil {
				out = append(out, *t.Topic)
			}
		}
	case *kmsg.ProduceRequest:
		for _, t := range r.Topics {
			out = append(out, t.Topic)
		}
	case *kmsg.FetchRequest:
		for _, t := range r.Topics {
			out = append(out, t.Topic)
		}
	case *kmsg.ListOffsetsRequest:
		for _, t := range r.Topics {
			out = append(out, t.Topic)
		}
	}
	return out
}

// startBroker starts kfake with topics "orders" and "secret", its
// listening socket created inside a new cgroup under the cgroup v2 root
// (the test process enters the cgroup for the listen only), and enforces
// list on its port.
func startBroker(t *testing.T, list engine.L7List) *broker {
	t.Helper()
	d := requireKernel(t)
	cg := newCgroup(t, d)
	home := ownCgroup(t)
	listen := func(network, address string) (ln net.Listener, err error) {
		if cerr := inCgroup(cg, home, func() { ln, err = net.Listen(network, address) }); cerr != nil {
			return nil, cerr
		}
		return ln, err
	}
	b := runKfake(t, d, cg, listen)
	b.apply(t, 1, list, false)
	return b
}

// inCgroup runs f with the process in the cgroup directory cg, then moves
// it back to home: sockets f creates are cg's (a socket's cgroup is its
// creator's at creation, for its whole life).
func inCgroup(cg, home string, f func()) error {
	pid := []byte(strconv.Itoa(os.Getpid()))
	if err := os.WriteFile(filepath.Join(cg, "cgroup.procs"), pid, 0); err != nil {
		return fmt.Errorf("enter cgroup: %w", err)
	}
	f()
	if err := os.WriteFile(filepath.Join(home, "cgroup.procs"), pid, 0); err != nil {
		return fmt.Errorf("leave cgroup: %w", err)
	}
	return nil
}

// newCgroup creates a cgroup for the test under the cgroup v2 root (removed
// at the end) and attaches bpf/kafka's programs to it.
func newCgroup(t *testing.T, d *Datapath) string {
	t.Helper()
	if _, err := os.Stat(filepath.Join(cgroupRoot(), "cgroup.procs")); err != nil {
		t.Skipf("no cgroup v2 at %s: %v", cgroupRoot(), err)
	}
	var rnd [4]byte
	rand.Read(rnd[:])
	cg := filepath.Join(cgroupRoot(), fmt.Sprintf("palisade-kafka-test-%d-%s", os.Getpid(), hex.EncodeToString(rnd[:])))
	if err := os.Mkdir(cg, 0o755); err != nil {
		t.Fatalf("create cgroup: %v", err)
	}
	t.Cleanup(func() {
		if err := os.Remove(cg); err != nil {
			t.Errorf("remove cgroup %s: %v", cg, err)
		}
	})
	if err := d.AttachCgroup(cg); err != nil {
		t.Fatal(err)
	}
	return cg
}

// runKfake starts kfake with topics "orders" and "secret" listening
// through listen, recording the topics of every request it handles.
func runKfake(t *testing.T, d *Datapath, cg string, listen func(network, address string) (net.Listener, error)) *broker {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "orders", "secret"), kfake.ListenFn(listen))
	if err != nil {
		t.Fatalf("kfake: %v", err)
	}
	t.Cleanup(c.Close)
	b := &broker{d: d, c: c, addr: c.ListenAddrs()[0], cg: cg, seen: map[int16][]string{}}
	c.Control(func(req kmsg.Request) (kmsg.Response, error, bool) {
		b.mu.Lock()
		b.seen[req.Key()] = append(b.seen[req.Key()], requestTopics(req)...)
		b.mu.Unlock()
		return nil, nil, false // observe only: the broker handles it
	})
	return b
}

// apply enforces list (as list 7) on the broker's port: on the broker's
// side, or (egress) on what the test cgroup's clients write to it.
func (b *broker) apply(t *testing.T, gen uint64, list engine.L7List, egress bool) {
	t.Helper()
	ap, err := netip.ParseAddrPort(b.addr)
	if err != nil {
		t.Fatal(err)
	}
	kl, err := engine.CompileKafkaList(list)
	if err != nil {
		t.Fatal(err)
	}
	bind := Binding{Addr: ap.Addr(), Port: ap.Port(), List: 7, Egress: egress}
	if egress {
		bind.Addr = netip.IPv4Unspecified() // any local address of the client
	}
	if err := b.d.Apply(gen, &engine.KafkaTables{Lists: map[engine.L7ID]*engine.KafkaList{7: kl}}, []Binding{bind}); err != nil {
		t.Fatal(err)
	}
}

// ordersOnly admits producing to and consuming from "orders" (rule 10)
// and the API versions handshake (rule 20).
func ordersOnly() engine.L7List {
	return engine.L7List{
		{Rule: 10, Rules: &v1alpha1.L7Rules{Kafka: []v1alpha1.KafkaRule{
			{Role: v1alpha1.KafkaRoleProduce, Topic: "orders"}, {Role: v1alpha1.KafkaRoleConsume, Topic: "orders"},
		}}},
		{Rule: 20, Rules: &v1alpha1.L7Rules{Kafka: []v1alpha1.KafkaRule{{APIKey: "apiversions"}}}},
	}
}

// newClient is a franz-go client of the broker that speaks the request
// versions of Kafka 3.0 (Produce v9, Fetch v12, Metadata v11: topics by
// name, which the kernel reads), produces without idempotence and sends
// no client metrics (InitProducerId and GetTelemetrySubscriptions are
// keys the policies here do not admit).
func newClient(t *testing.T, b *broker, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	if os.Getenv("KAFKA_DEBUG") != "" {
		opts = append(opts, kgo.WithLogger(kgo.BasicLogger(os.Stderr, kgo.LogLevelDebug, nil)))
	}
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(b.addr), kgo.DisableIdempotentWrite(), kgo.DisableClientMetrics(),
		kgo.MaxVersions(kversion.V3_0_0())}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

// TestKafkaTrafficProduceConsume: franz-go produces to and consumes from an
// allowed topic through the kernel; producing to a denied topic fails
// with TOPIC_AUTHORIZATION_FAILED, and the broker never sees a request
// naming it.
func TestKafkaTrafficProduceConsume(t *testing.T) {
	b := startBroker(t, ordersOnly())
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()

	prod := newClient(t, b, kgo.ClientID("orders-producer-1"))
	if err := prod.ProduceSync(ctx, &kgo.Record{Topic: "orders", Value: []byte("order 1")}).FirstErr(); err != nil {
		c, _ := b.d.Counters()
		t.Fatalf("produce to orders: %v (counters %v, broker saw %v)", err, c, b.seen)
	}
	cons := newClient(t, b, kgo.ClientID("orders-consumer-1"), kgo.ConsumeTopics("orders"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	var got []string
	for len(got) == 0 {
		fs := cons.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			t.Fatalf("consume from orders: %v (errors %v)", err, fs.Errors())
		}
		for _, e := range fs.Errors() {
			t.Fatalf("consume from orders: %v", e)
		}
		fs.EachRecord(func(r *kgo.Record) { got = append(got, string(r.Value)) })
	}
	if !slices.Equal(got, []string{"order 1"}) {
		t.Fatalf("consumed %q, want [order 1]", got)
	}

	// A producer of the denied topic alone: its Metadata request names
	// that one topic and is answered in the kernel.
	leak := newClient(t, b, kgo.ClientID("secret-producer-1"))
	err := leak.ProduceSync(ctx, &kgo.Record{Topic: "secret", Value: []byte("leak")}).FirstErr()
	if !errors.Is(err, kerr.TopicAuthorizationFailed) {
		t.Fatalf("produce to secret: %v, want TOPIC_AUTHORIZATION_FAILED", err)
	}
	// A Produce to the denied topic (its Metadata allowed by a rule that
	// does not name it, say): answered with TOPIC_AUTHORIZATION_FAILED
	// for its partition.
	raw := newClient(t, b, kgo.ClientID("raw-1"), kgo.RequestRetries(0))
	resp, err := raw.Request(ctx, request(0, 9, []string{"secret"}))
	if err != nil {
		t.Fatalf("produce request to secret: %v", err)
	}
	if pr := resp.(*kmsg.ProduceResponse); len(pr.Topics) != 1 || pr.Topics[0].Topic != "secret" || len(pr.Topics[0].Partitions) != 1 ||
		pr.Topics[0].Partitions[0].ErrorCode != kerr.TopicAuthorizationFailed.Code {
		t.Fatalf("produce response %+v, want secret's partition with TOPIC_AUTHORIZATION_FAILED", pr.Topics)
	}
	// A Metadata request naming an allowed and a denied topic whose answer
	// does not fit in the request (a short client ID): the kernel sends a
	// frame under another correlation ID and the client drops the
	// connection.
	if _, err := raw.Request(ctx, request(3, 11, []string{"orders", "secret"})); err == nil || !strings.Contains(err.Error(), "correlation ID mismatch") {
		t.Fatalf("metadata naming secret: %v, want the connection dropped for a correlation ID mismatch", err)
	}
	// The allowed topic still works, with a frame of ~900 KB too (the
	// parser holds it whole before deciding).
	if err := prod.ProduceSync(ctx, &kgo.Record{Topic: "orders", Value: []byte("order 2")}).FirstErr(); err != nil {
		t.Fatalf("produce to orders after the refusals: %v", err)
	}
	big := make([]byte, 900_000)
	rand.Read(big) // incompressible
	if err := prod.ProduceSync(ctx, &kgo.Record{Topic: "orders", Value: big}).FirstErr(); err != nil {
		t.Fatalf("produce 900 KB to orders: %v", err)
	}
	for key, topics := range map[int16][]string{0: b.saw(0), 3: b.saw(3), 1: b.saw(1)} {
		if slices.Contains(topics, "secret") {
			t.Fatalf("the broker saw a request (key %d) naming secret: %v", key, topics)
		}
	}
	if !slices.Contains(b.saw(0), "orders") || !slices.Contains(b.saw(1), "orders") {
		t.Fatalf("the broker did not see the allowed produce and fetch: produce %v fetch %v", b.saw(0), b.saw(1))
	}
	c, err := b.d.Counters()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("counters %v", c)
	if c[ReasonDenied] < 3 || c[ReasonAnswered] < 2 || c[ReasonClosed] < 1 || c[ReasonAllowed] == 0 || c[ReasonSockets] == 0 {
		t.Fatalf("counters %v: want allowed, 3 denied (2 answered, 1 closed) and sockets", c)
	}
}

// TestKafkaTrafficPinnedWithoutAgent: with the state pinned and every handle
// of the process closed (the agent gone), requests on a connection opened
// before and on one opened after are still decided as before: on the
// broker's side, and on the client's (egress: sk_msg, the gate's link and
// the sockets' storage pinned too).
func TestKafkaTrafficPinnedWithoutAgent(t *testing.T) {
	for _, egress := range []bool{false, true} {
		t.Run(map[bool]string{false: "ingress", true: "egress"}[egress], func(t *testing.T) { pinnedWithoutAgent(t, egress) })
	}
}

// pinnedWithoutAgent runs TestKafkaTrafficPinnedWithoutAgent with the
// rules on the broker's side, or (egress) on the client cgroup's writes.
func pinnedWithoutAgent(t *testing.T, egress bool) {
	var b *broker
	var opts []kgo.Opt
	if egress {
		var cl *egressClients
		b, cl = startEgress(t, ordersOnly())
		opts = append(opts, kgo.Dialer(cl.dial))
	} else {
		b = startBroker(t, ordersOnly())
	}
	dir := t.TempDir()
	if err := unix.Mount("bpf", dir, "bpf", 0, ""); err != nil {
		t.Skipf("mount bpffs: %v", err)
	}
	t.Cleanup(func() { unix.Unmount(dir, unix.MNT_DETACH) })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	before := newClient(t, b, append(opts, kgo.ClientID("orders-producer-1"))...)
	if err := before.ProduceSync(ctx, &kgo.Record{Topic: "orders", Value: []byte("1")}).FirstErr(); err != nil {
		t.Fatalf("produce before: %v", err)
	}
	if err := b.d.Pin(dir); err != nil {
		t.Fatal(err)
	}
	if err := b.d.Close(); err != nil {
		t.Fatal(err)
	}
	if err := before.ProduceSync(ctx, &kgo.Record{Topic: "orders", Value: []byte("2")}).FirstErr(); err != nil {
		t.Fatalf("produce on the connection opened before, agent gone: %v", err)
	}
	after := newClient(t, b, append(opts, kgo.ClientID("secret-producer-1"))...)
	if err := after.ProduceSync(ctx, &kgo.Record{Topic: "secret", Value: []byte("leak")}).FirstErr(); !errors.Is(err, kerr.TopicAuthorizationFailed) {
		t.Fatalf("produce to secret on a new connection, agent gone: %v, want TOPIC_AUTHORIZATION_FAILED", err)
	}
	if slices.Contains(b.saw(3), "secret") || slices.Contains(b.saw(0), "secret") {
		t.Fatalf("the broker saw a request naming secret: metadata %v produce %v", b.saw(3), b.saw(0))
	}
}

// TestKafkaTrafficOneProducerTwoTopics: one franz-go producer of an allowed
// and a denied topic (its Metadata requests name both): records to the
// denied topic fail with TOPIC_AUTHORIZATION_FAILED, records to the
// allowed one are written, and the broker never sees the denied topic.
func TestKafkaTrafficOneProducerTwoTopics(t *testing.T) {
	b := startBroker(t, ordersOnly())
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	p := newClient(t, b, kgo.ClientID("orders-and-secret-producer"))
	if err := p.ProduceSync(ctx, &kgo.Record{Topic: "orders", Value: []byte("1")}).FirstErr(); err != nil {
		t.Fatalf("produce to orders: %v", err)
	}
	if err := p.ProduceSync(ctx, &kgo.Record{Topic: "secret", Value: []byte("leak")}).FirstErr(); !errors.Is(err, kerr.TopicAuthorizationFailed) {
		t.Fatalf("produce to secret: %v, want TOPIC_AUTHORIZATION_FAILED", err)
	}
	if err := p.ProduceSync(ctx, &kgo.Record{Topic: "orders", Value: []byte("2")}).FirstErr(); err != nil {
		t.Fatalf("produce to orders after secret was refused: %v", err)
	}
	if slices.Contains(b.saw(3), "secret") || slices.Contains(b.saw(0), "secret") {
		t.Fatalf("the broker saw a request naming secret: metadata %v produce %v", b.saw(3), b.saw(0))
	}
}
