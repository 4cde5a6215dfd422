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
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/cilium/ebpf/rlimit"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/palisade-dev/palisade/internal/kafka"
	"github.com/palisade-dev/palisade/internal/l7"
)

// kafkaMetadataConn is a raw Kafka connection held across agent restarts.
type kafkaMetadataConn struct {
	t    *testing.T
	c    net.Conn
	corr int32
}

// restartClientID is long enough for the kernel's Metadata answer to fit
// in the request's frame: a refused request is answered with
// TOPIC_AUTHORIZATION_FAILED (29), not by closing the connection.
var restartClientID = "kafka-restart-test-" + strings.Repeat("x", 80)

// topicError sends a Metadata v11 request naming topic and returns the
// error code the answer gives it (the broker's, or the kernel's in the
// request's place).
func (m *kafkaMetadataConn) topicError(topic string) int16 {
	m.t.Helper()
	m.corr++
	req := kmsg.NewPtrMetadataRequest()
	rt := kmsg.NewMetadataRequestTopic()
	rt.Topic = kmsg.StringPtr(topic)
	req.Topics = append(req.Topics, rt)
	req.SetVersion(11)
	m.c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := m.c.Write(kmsg.NewRequestFormatter(kmsg.FormatterClientID(restartClientID)).AppendRequest(nil, req, m.corr)); err != nil {
		m.t.Fatalf("metadata %s: write: %v", topic, err)
	}
	var size [4]byte
	if _, err := io.ReadFull(m.c, size[:]); err != nil {
		m.t.Fatalf("metadata %s: read: %v", topic, err)
	}
	body := make([]byte, binary.BigEndian.Uint32(size[:]))
	if _, err := io.ReadFull(m.c, body); err != nil {
		m.t.Fatalf("metadata %s: read: %v", topic, err)
	}
	if corr := int32(binary.BigEndian.Uint32(body)); corr != m.corr {
		m.t.Fatalf("metadata %s: correlation ID %d, want %d", topic, corr, m.corr)
	}
	resp := kmsg.NewPtrMetadataResponse()
	resp.SetVersion(11)
	if err := resp.ReadFrom(body[5:]); err != nil { // after the flexible header's tags
		m.t.Fatalf("metadata %s: decode: %v", topic, err)
	}
	for _, rt := range resp.Topics {
		if rt.Topic != nil && *rt.Topic == topic {
			return rt.ErrorCode
		}
	}
	m.t.Fatalf("metadata %s: the answer names %d other topics", topic, len(resp.Topics))
	return 0
}

// TestKafkaAgentRestartAdoptsConnections: the kafka subsystem on the real
// bpf/kafka datapath, a kfake broker listening from its pod's cgroup (a
// real cgroup v2 directory the test makes) at the pod's address
// 127.0.0.2. A connection to the broker accepted under the first agent
// is refused the topic "secret" (TOPIC_AUTHORIZATION_FAILED, answered by
// the kernel) while the agent runs, while none runs (the pinned state),
// and under a second agent process's datapath that adopted the pins; once
// the second agent applies a revision admitting "secret", the same
// connection gets the broker's answer. The second agent attached nothing
// again (the first agent's link, adopted, runs its program), and its
// read-back finds no drift.
func TestKafkaAgentRestartAdoptsConnections(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("loading bpf/kafka needs root")
	}
	if err := rlimit.RemoveMemlock(); err != nil {
		t.Skipf("remove memlock limit: %v", err)
	}
	cgRoot := l7.CgroupRoot()
	if _, err := os.Stat(filepath.Join(cgRoot, "cgroup.procs")); err != nil {
		t.Skipf("no cgroup v2 at %s: %v", cgRoot, err)
	}
	pins := filepath.Join(kafkaBpffs(t), "kafka")
	var rnd [4]byte
	rand.Read(rnd[:])
	root := filepath.Join(cgRoot, fmt.Sprintf("palisade-kafka-restart-%d-%s", os.Getpid(), hex.EncodeToString(rnd[:])))
	if err := os.Mkdir(root, 0o755); err != nil {
		t.Fatalf("create cgroup: %v", err)
	}

	f, _ := newKafkaFixture(t)
	f.root, f.a.CgroupRoot = root, root
	dp1, err := kafka.Load()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dp1.Close() })
	f.a.Kafka, f.a.KafkaPinDir = dp1, pins
	uid := f.podUID("broker", "broker", "127.0.0.2", 2, false)
	podCg := f.cgroup(uid)
	t.Cleanup(func() {
		for _, d := range []string{podCg, filepath.Dir(podCg), root} {
			if err := os.Remove(d); err != nil {
				t.Errorf("remove cgroup %s: %v", d, err)
			}
		}
	})

	// The broker listens from the pod's cgroup (the test process enters
	// it for the listen only), at the pod's address.
	home := ""
	if b, err := os.ReadFile("/proc/self/cgroup"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if rest, ok := strings.CutPrefix(line, "0::"); ok {
				home = filepath.Join(cgRoot, rest)
			}
		}
	}
	if home == "" {
		t.Skip("no cgroup v2 membership in /proc/self/cgroup")
	}
	pid := []byte(strconv.Itoa(os.Getpid()))
	listen := func(network, _ string) (net.Listener, error) {
		if err := os.WriteFile(filepath.Join(podCg, "cgroup.procs"), pid, 0); err != nil {
			return nil, fmt.Errorf("enter cgroup: %w", err)
		}
		ln, lerr := net.Listen(network, "127.0.0.2:0")
		if err := os.WriteFile(filepath.Join(home, "cgroup.procs"), pid, 0); err != nil {
			return nil, fmt.Errorf("leave cgroup: %w", err)
		}
		return ln, lerr
	}
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "orders", "secret"), kfake.ListenFn(listen))
	if err != nil {
		t.Fatalf("kfake: %v", err)
	}
	t.Cleanup(c.Close)
	var mu sync.Mutex
	var sawSecret int
	c.Control(func(req kmsg.Request) (kmsg.Response, error, bool) {
		if r, ok := req.(*kmsg.MetadataRequest); ok {
			for _, rt := range r.Topics {
				if rt.Topic != nil && *rt.Topic == "secret" {
					mu.Lock()
					sawSecret++
					mu.Unlock()
				}
			}
		}
		return nil, nil, false // observe only
	})
	saw := func() int { mu.Lock(); defer mu.Unlock(); return sawSecret }
	addr := c.ListenAddrs()[0]
	_, port, _ := net.SplitHostPort(addr)
	policy := func(topics string) string {
		return fmt.Sprintf(`
endpointSelector: {matchLabels: {app: broker}}
ingress:
- toPorts: [{ports: [{port: "%s", protocol: TCP}], rules: {kafka: [%s]}}]
`, port, topics)
	}
	f.policy("broker", "r1", 1, policy(`{apiKey: metadata, topic: orders}`))
	if _, err := f.sync(); err != nil {
		t.Fatal(err)
	}
	if got := f.a.Kafka.(*kafka.Datapath); !got.HasCgroup(podCg) {
		t.Fatalf("the first agent did not attach its sockops program to %s", podCg)
	}
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	ka := &kafkaMetadataConn{t: t, c: conn}
	const refused = int16(29)
	expect := func(when string, orders, secret int16) {
		t.Helper()
		if got := ka.topicError("orders"); got != orders {
			t.Errorf("%s: metadata orders: error %d, want %d", when, got, orders)
		}
		if got := ka.topicError("secret"); got != secret {
			t.Errorf("%s: metadata secret: error %d, want %d", when, got, secret)
		}
	}
	expect("the first agent", 0, refused)
	lnk0, prog0 := kafkaLinkProgram(t, pins)

	// The first agent exits.
	if err := dp1.Close(); err != nil {
		t.Fatal(err)
	}
	expect("no agent", 0, refused)

	// A second agent: a new datapath and new subsystems on the same
	// cluster and node; its first sync adopts the pins.
	dp2, err := kafka.Load()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dp2.Close() })
	f.a.Kafka, f.a.subs = dp2, nil
	f.policy("broker", "r2", 1, policy(`{apiKey: metadata, topic: orders}, {apiKey: metadata, topic: secret}`))
	if saw() != 0 {
		t.Fatalf("the broker saw %d Metadata requests naming secret while it was refused", saw())
	}
	if _, err := f.sync(); err != nil {
		t.Fatal(err)
	}
	expect("the second agent, r2 (the connection accepted under the first)", 0, 0)
	if saw() == 0 {
		t.Error("the broker did not see the admitted Metadata request naming secret")
	}
	if lnk, prog := kafkaLinkProgram(t, pins); lnk != lnk0 || prog == prog0 {
		t.Errorf("the pinned link %d runs program %d; want the first agent's link %d running the second agent's program, not the first's %d", lnk, prog, lnk0, prog0)
	}
	links, _ := filepath.Glob(filepath.Join(pins, "kafka_sockops_link_*"))
	if !dp2.HasCgroup(podCg) || len(links) != 1 {
		t.Errorf("HasCgroup(%s) = %t, link pins %v: want the adopted link alone", podCg, dp2.HasCgroup(podCg), links)
	}
	f.a.VerifyNow(context.Background())
	if len(f.a.drifts) != 0 {
		t.Errorf("drifts after the adoption: %+v", f.a.drifts)
	}
	// And a revision refusing secret again decides the same connection
	// (without the adoption, that connection would have left the freed
	// SOCKHASH, and secret would pass).
	f.policy("broker", "r3", 1, policy(`{apiKey: metadata, topic: orders}`))
	if _, err := f.sync(); err != nil {
		t.Fatal(err)
	}
	expect("the second agent, r3", 0, refused)
}

// kafkaLinkProgram is the pinned sockops link's id and the program it
// runs.
func kafkaLinkProgram(t *testing.T, pins string) (link.ID, ebpf.ProgramID) {
	t.Helper()
	l, err := link.LoadPinnedLink(filepath.Join(pins, "kafka_sockops_link_0"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	info, err := l.Info()
	if err != nil {
		t.Fatal(err)
	}
	return info.ID, info.Program
}
