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

// The Kafka differential end to end: seeded random policy sets with
// ingress Kafka rules on a broker workload go through the agent's kafka
// subsystem into the REAL bpf/kafka datapath (sockops on the broker's pod
// cgroup, the stream parser on its connections), clients on its peers'
// addresses send real requests encoded by franz-go's kmsg over loopback,
// and the kernel's answer to every request is compared with
// engine.Evaluate's ingress side over the same policies and cluster.

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/palisade-dev/palisade/internal/engine"
	"github.com/palisade-dev/palisade/internal/kafka"
)

// The seed of TestKafkaKernelMatchesEvaluate; PALISADE_KAFKA_EVAL_SEED
// picks another.
const evalKafkaSeedDefault = 16

// evalKafkaPorts are the broker's ports: the policies' "9092", "9093",
// the range "9090-9093" and a port just outside it, all listened on.
var evalKafkaPorts = []uint16{29090, 29091, 29092, 29093, 29094}

// evalKafkaOK is what the broker answers to every request it reads, after
// the request's correlation ID: a refused request's answer (the kernel's)
// never carries it.
const evalKafkaOK = "palisade-broker-read-it"

// evalBroker is a minimal Kafka-protocol reader on every port of
// evalKafkaPorts, its listening sockets made inside the broker's pod
// cgroup: it reads frames (int32 size, then the frame), records each with
// the connection's addresses, and answers it under its correlation ID.
type evalBroker struct {
	mu   sync.Mutex
	seen []string
}

func (b *evalBroker) log() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.seen
}

func evalBrokerEntry(local, remote string, frame []byte) string {
	return fmt.Sprintf("%s<-%s %x", local, remote, frame)
}

func startEvalBroker(t *testing.T, addr netip.Addr, pod string) *evalBroker {
	t.Helper()
	var lns []net.Listener
	var lerr error
	evalInCgroup(t, pod, func() {
		for _, p := range evalKafkaPorts {
			ln, err := net.Listen("tcp4", netip.AddrPortFrom(addr, p).String())
			if err != nil {
				lerr = err
				return
			}
			lns = append(lns, ln)
		}
	})
	t.Cleanup(func() {
		for _, ln := range lns {
			ln.Close()
		}
	})
	if lerr != nil {
		t.Fatalf("listen: %v", lerr)
	}
	b := &evalBroker{}
	for _, ln := range lns {
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				go b.serve(c)
			}
		}()
	}
	return b
}

func (b *evalBroker) serve(c net.Conn) {
	defer c.Close()
	br := bufio.NewReader(c)
	for {
		var size [4]byte
		if _, err := io.ReadFull(br, size[:]); err != nil {
			return
		}
		n := binary.BigEndian.Uint32(size[:])
		if n < 8 || n > 1<<20 {
			return // not a request this test sends: the connection ends
		}
		frame := make([]byte, 4+n)
		copy(frame, size[:])
		if _, err := io.ReadFull(br, frame[4:]); err != nil {
			return
		}
		b.mu.Lock()
		b.seen = append(b.seen, evalBrokerEntry(c.LocalAddr().String(), c.RemoteAddr().String(), frame))
		b.mu.Unlock()
		ans := binary.BigEndian.AppendUint32(nil, uint32(4+len(evalKafkaOK)))
		ans = append(ans, frame[8:12]...) // the correlation ID
		ans = append(ans, evalKafkaOK...)
		if _, err := c.Write(ans); err != nil {
			return
		}
	}
}

var (
	evalKafkaTopics  = []string{"orders", "payments", "logs", "a"}
	evalKafkaClients = []string{"app-1", "admin", "x", "consumer-orders-1"}
	// The keys whose topics the kernel reads, and the highest version it
	// reads them at (docs/kafka.md); OffsetCommit from v1.
	evalKafkaParsed = map[int16][2]int16{0: {0, 12}, 1: {0, 12}, 2: {0, 10}, 3: {0, 13}, 8: {1, 9}, 9: {0, 7}}
	// Keys without topics.
	evalKafkaTopicless = []int16{10, 11, 12, 13, 14, 15, 16, 17, 18, 22}
)

// evalKafkaRequest is a random request: its key, version, client ID
// (nil: null), topics, and the frame kmsg encodes.
type evalKafkaRequest struct {
	key, version int16
	client       *string
	topics       []string
	corr         int32
	frame        []byte
}

// engine is the request as engine.Evaluate takes it, naming topic.
func (q evalKafkaRequest) engine(topic string) *engine.KafkaRequest {
	e := &engine.KafkaRequest{APIKey: engine.KafkaKeyName(int(q.key)), APIVersion: int(q.version), Topic: topic}
	if q.client != nil {
		e.ClientID = *q.client
	}
	return e
}

func (q evalKafkaRequest) String() string {
	c := "null"
	if q.client != nil {
		c = fmt.Sprintf("%q", *q.client)
	}
	return fmt.Sprintf("%s v%d client %s topics %q corr %d", engine.KafkaKeyName(int(q.key)), q.version, c, q.topics, q.corr)
}

func evalRandomKafkaRequest(r *mrand.Rand, corr int32) evalKafkaRequest {
	q := evalKafkaRequest{corr: corr}
	if r.IntN(4) == 0 {
		q.key = evalKafkaTopicless[r.IntN(len(evalKafkaTopicless))]
		q.version = int16(r.IntN(4))
	} else {
		keys := []int16{0, 1, 2, 3, 8, 9}
		q.key = keys[r.IntN(len(keys))]
		v := evalKafkaParsed[q.key]
		q.version = v[0] + int16(r.IntN(int(v[1]-v[0])+1))
		n := 1
		if q.key == 3 {
			n += r.IntN(3)
		}
		for range n {
			q.topics = append(q.topics, evalKafkaTopics[r.IntN(len(evalKafkaTopics))])
		}
	}
	if c := r.IntN(len(evalKafkaClients) + 1); c < len(evalKafkaClients) {
		q.client = &evalKafkaClients[c]
	}
	var f *kmsg.RequestFormatter
	if q.client != nil {
		f = kmsg.NewRequestFormatter(kmsg.FormatterClientID(*q.client))
	} else {
		f = kmsg.NewRequestFormatter()
	}
	q.frame = f.AppendRequest(nil, evalKafkaBody(q.key, q.version, q.topics), corr)
	return q
}

// evalKafkaBody builds a request of key at version naming topics (one
// partition each; Produce with acks -1, so that a refusal is answered).
func evalKafkaBody(key, version int16, topics []string) kmsg.Request {
	var req kmsg.Request
	switch key {
	case 0:
		r := kmsg.NewPtrProduceRequest()
		r.Acks, r.TimeoutMillis = -1, 1000
		for _, t := range topics {
			rt := kmsg.NewProduceRequestTopic()
			rt.Topic = t
			p := kmsg.NewProduceRequestTopicPartition()
			p.Records = make([]byte, 70)
			rt.Partitions = append(rt.Partitions, p)
			r.Topics = append(r.Topics, rt)
		}
		req = r
	case 1:
		r := kmsg.NewPtrFetchRequest()
		for _, t := range topics {
			rt := kmsg.NewFetchRequestTopic()
			rt.Topic = t
			p := kmsg.NewFetchRequestTopicPartition()
			p.PartitionMaxBytes = 1 << 20
			rt.Partitions = append(rt.Partitions, p)
			r.Topics = append(r.Topics, rt)
		}
		req = r
	case 2:
		r := kmsg.NewPtrListOffsetsRequest()
		for _, t := range topics {
			rt := kmsg.NewListOffsetsRequestTopic()
			rt.Topic = t
			p := kmsg.NewListOffsetsRequestTopicPartition()
			p.Timestamp = -1
			rt.Partitions = append(rt.Partitions, p)
			r.Topics = append(r.Topics, rt)
		}
		req = r
	case 3:
		r := kmsg.NewPtrMetadataRequest()
		for _, t := range topics {
			rt := kmsg.NewMetadataRequestTopic()
			rt.Topic = kmsg.StringPtr(t)
			r.Topics = append(r.Topics, rt)
		}
		req = r
	case 8:
		r := kmsg.NewPtrOffsetCommitRequest()
		r.Group, r.MemberID = "group-1", "member-1"
		for _, t := range topics {
			rt := kmsg.NewOffsetCommitRequestTopic()
			rt.Topic = t
			p := kmsg.NewOffsetCommitRequestTopicPartition()
			p.Offset = 10
			rt.Partitions = append(rt.Partitions, p)
			r.Topics = append(r.Topics, rt)
		}
		req = r
	case 9:
		r := kmsg.NewPtrOffsetFetchRequest()
		r.Group = "group-1"
		for _, t := range topics {
			rt := kmsg.NewOffsetFetchRequestTopic()
			rt.Topic = t
			rt.Partitions = []int32{0}
			r.Topics = append(r.Topics, rt)
		}
		req = r
	default:
		req = kmsg.RequestForKey(key)
	}
	req.SetVersion(version)
	return req
}

// evalKafkaPolicy is a random ingress policy on broker: peers (two apps,
// every endpoint, every entity, world, a CIDR), ports (one, a range),
// Kafka rules by role, key, version, client ID and topic, or none; audit
// mode; deny rules.
func evalKafkaPolicy(r *mrand.Rand, nb byte) string {
	peers := []string{`fromEndpoints: [{matchLabels: {app: producer}}]`, `fromEndpoints: [{matchLabels: {app: consumer}}]`,
		`fromEndpoints: [{}]`, `fromEntities: [all]`, `fromEntities: [world]`, fmt.Sprintf(`fromCIDR: [127.%d.7.0/25]`, nb)}
	ports := []string{`{port: "29092", protocol: TCP}`, `{port: "29093", protocol: TCP}`, `{port: "29090", endPort: 29093, protocol: TCP}`}
	rules := []string{`{role: produce, topic: orders}`, `{role: consume, topic: orders}`, `{apiKey: metadata}`, `{apiKey: apiversions}`,
		`{apiKey: produce, apiVersion: "9", topic: logs}`, `{clientID: admin}`, `{topic: logs}`, `{apiKey: fetch, clientID: app-1}`,
		`{role: consume, topic: payments, clientID: x}`, `{apiKey: findcoordinator}`, `{apiKey: offsetcommit, apiVersion: "7"}`,
		`{role: produce}`, `{apiKey: joingroup, clientID: consumer-orders-1}`}
	var b strings.Builder
	b.WriteString("endpointSelector: {matchLabels: {app: broker}}\n")
	if r.IntN(4) == 0 {
		b.WriteString("mode: audit\n")
	}
	if r.IntN(5) == 0 {
		fmt.Fprintf(&b, "ingressDeny:\n- %s\n  toPorts: [{ports: [%s]}]\n", peers[r.IntN(len(peers))], ports[r.IntN(2)])
	}
	b.WriteString("ingress:\n")
	for range 1 + r.IntN(3) {
		var ks []string
		for range r.IntN(4) {
			ks = append(ks, rules[r.IntN(len(rules))])
		}
		rl := ""
		if len(ks) > 0 {
			rl = ", rules: {kafka: [" + strings.Join(ks, ", ") + "]}"
		}
		fmt.Fprintf(&b, "- %s\n  toPorts: [{ports: [%s]%s}]\n", peers[r.IntN(len(peers))], ports[r.IntN(len(ports))], rl)
	}
	return b.String()
}

// TestKafkaKernelMatchesEvaluate runs seeded random policy sets with
// ingress Kafka rules on broker through the agent's kafka subsystem into
// the real Kafka datapath, sends real requests (encoded by franz-go's
// kmsg, in every version the kernel reads topics at, and keys without
// topics) to the broker from its peers (apps, world, a CIDR, all on
// loopback, 127.<random>.6-7.x) and requires, for every request the L3/L4 rules let through,
// that the kernel allows exactly when engine.Evaluate's ingress side does
// not deny for any topic the request names (a Metadata request names one
// to three, each evaluated): an allowed request reaches the broker byte
// for byte and gets its answer; a refused one never reaches it and gets
// the kernel's answer (TOPIC_AUTHORIZATION_FAILED for the refused topics
// of a Produce or Metadata request, LEADER_NOT_AVAILABLE for a Metadata
// request's allowed ones, or the closing frame under the inverted
// correlation ID), and the kernel's event for it names the rule
// engine.Evaluate names (the first refused topic's). 100 sets of 250
// requests on keep-alive connections (a new one after a closing
// refusal); seed 16, or PALISADE_KAFKA_EVAL_SEED.
func TestKafkaKernelMatchesEvaluate(t *testing.T) {
	evalNeeds(t, "bpf/kafka", func() (io.Closer, error) { return kafka.Load() })
	seed := evalSeed(t, "PALISADE_KAFKA_EVAL_SEED", evalKafkaSeedDefault)

	const sets, perSet = 100, 250
	nb := evalNet()
	broker := evalAddr(nb, 6, 2)
	brokerUID := "00000000-0000-4000-8000-000000000002" // podUID's for ifindex 2
	root, pod := evalPodCgroup(t, "palisade-kafkaeval", brokerUID)
	srv := startEvalBroker(t, broker, pod)
	// The peers: the apps' pods, an address of the CIDR, and world.
	remotes := []netip.Addr{evalAddr(nb, 6, 3), evalAddr(nb, 6, 4), evalAddr(nb, 6, 5), evalAddr(nb, 7, 1), evalAddr(nb, 7, 200)}

	answered, closed, audited := 0, 0, 0
	var dp *kafka.Datapath
	run := newEvalRun(t, seed, evalWorkload{
		name: "broker", addr: broker, uid: brokerUID, root: root,
		apps: []string{"producer", "consumer", "blocked"}, appAddrs: remotes[:3],
		policy: func(r *mrand.Rand) string { return evalKafkaPolicy(r, nb) },
		// The l7 subsystem stays on the fixture's fake: no HTTP rule here.
		attach: func(f *l7Fixture, set int) {
			var err error
			if dp, err = kafka.Load(); err != nil {
				t.Fatalf("set %d: kafka.Load: %v", set, err)
			}
			f.a.Kafka, f.a.KafkaPinDir = dp, ""
			f.a.subs = nil // the subsystems again, with the Kafka datapath
		},
	})
	set := run.each(sets, 0, func(s *evalSet) {
		s.onClose(dp.Close)
		in, set, describe := s.in, s.n, s.describe
		events, evErrs, err := dp.Events(s.ctx)
		if err != nil {
			t.Fatalf("set %d: %v", set, err)
		}
		// refusal waits for the kernel's event of the request refused on
		// the connection from remote.
		refusal := func(remote netip.AddrPort) (kafka.Event, error) {
			return evalRefusal(events, evErrs, remote, func(e kafka.Event) bool { return e.Remote == remote && !e.Allowed() })
		}
		// The (peer, port) pairs whose packets L3/L4 lets through.
		s.pairsOf(remotes, evalKafkaPorts, func(peer netip.Addr, port uint16) bool {
			return engine.Evaluate(in.ir, in.cluster, engine.Flow{Src: peer, Dst: broker, Proto: engine.ProtoTCP, Port: port}).Ingress.Verdict == engine.VerdictDeny
		})
		for {
			key, ok := s.pick(perSet)
			if !ok {
				break
			}
			peer, port := remotes[key[0]], evalKafkaPorts[key[1]]
			q := evalRandomKafkaRequest(s.r, int32(1+s.done))
			// engine.Evaluate once per topic the request names (none:
			// once, without a topic): allowed when every topic is; the
			// first refused topic names the rule.
			names := q.topics
			if len(names) == 0 {
				names = []string{""}
			}
			wantAllowed, audit := true, false
			var rule *engine.Rule
			var reason engine.Reason
			topicOK := make([]bool, len(names))
			for i, tp := range names {
				flow := engine.Flow{Src: peer, Dst: broker, Proto: engine.ProtoTCP, Port: port, Request: &engine.Request{Kafka: q.engine(tp)}}
				res := engine.Evaluate(in.ir, in.cluster, flow)
				if res.Egress.Verdict == engine.VerdictDeny {
					t.Fatalf("%s\n%+v: the egress side denies (%s): the peers have no egress policy", describe(), flow, res.Egress.Reason)
				}
				ok := res.Ingress.Verdict != engine.VerdictDeny
				if ok != (res.Verdict != engine.VerdictDeny) {
					t.Fatalf("%s\n%+v: ingress %s, combined %s", describe(), flow, res.Ingress.Verdict, res.Verdict)
				}
				topicOK[i] = ok
				audit = audit || res.Ingress.Verdict == engine.VerdictAudit
				if i == 0 || !ok && wantAllowed {
					rule, reason = res.Ingress.Rule, res.Ingress.Reason
				}
				wantAllowed = wantAllowed && ok
			}

			c := s.conn(key, func() (net.Conn, error) { return evalDialFrom(peer, netip.AddrPortFrom(broker, port)) })
			local := c.local()
			before := len(srv.log())
			fail := func(format string, args ...any) {
				t.Helper()
				cnt, _ := dp.Counters()
				t.Fatalf("%s\n%s -> %s:%d %s: %s\nengine.Evaluate: allowed %v, %s rule %+v; sent before on the connection: %q; kernel counters %v",
					describe(), local, broker, port, q, fmt.Sprintf(format, args...), wantAllowed, reason, rule, c.sent, cnt)
			}
			c.c.SetDeadline(time.Now().Add(stallAfter))
			if _, err := c.c.Write(q.frame); err != nil {
				fail("write: %v", err)
			}
			var size [4]byte
			held := false
			_, err := io.ReadFull(c.br, size[:])
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				// No answer and no refusal: the kernel holds the request
				// (as bpf/l7's stream parser holds some, see stallAfter).
				// The client's FIN releases it; its verdict is then
				// checked as any other's.
				cnt, _ := dp.Counters()
				s.hold(c, fmt.Sprintf("seed %d set %d: %s -> %d %s (request %d on its connection, after %q; engine allowed %v; kernel counters %v, broker log +%d)",
					seed, set, local, port, q, len(c.sent)+1, c.sent, wantAllowed, cnt, len(srv.log())-before))
				_, err = io.ReadFull(c.br, size[:])
				if errors.Is(err, io.EOF) {
					// Released by the FIN and refused, the connection
					// ends without an answer: the kernel's event says it
					// refused, and the broker never read it.
					e, eerr := refusal(local)
					if eerr != nil || wantAllowed || len(srv.log()) != before || rule == nil || e.Rule != uint32(rule.ID) || e.Reason != kafka.ReasonDenied {
						fail("held, then the connection ended without an answer; kernel event %v (%v), broker log +%d", e, eerr, len(srv.log())-before)
					}
					s.held(fmt.Sprintf("; released by the FIN and refused (rule %d, %v) without an answer", e.Rule, e.Answer))
					s.count(fmt.Sprintf("%v/%s", wantAllowed, reason), true)
					s.drop(key, c)
					continue
				}
				s.held("; released by the FIN")
				held = true
			}
			if err != nil {
				fail("read the answer's size: %v", err)
			}
			ans := make([]byte, binary.BigEndian.Uint32(size[:]))
			if len(ans) > 1<<20 {
				fail("an answer of %d bytes", len(ans))
			}
			if _, err := io.ReadFull(c.br, ans); err != nil {
				fail("read the answer: %v", err)
			}
			c.sent = append(c.sent, q.String())
			after := srv.log()
			var corr int32
			if len(ans) >= 4 {
				corr = int32(binary.BigEndian.Uint32(ans))
			}
			gotAllowed := corr == q.corr && string(ans[4:]) == evalKafkaOK
			if gotAllowed {
				if len(after) != before+1 || after[before] != evalBrokerEntry(netip.AddrPortFrom(broker, port).String(), local.String(), q.frame) {
					fail("the broker's answer, but its log grew from %d to %d entries: want exactly this frame", before, len(after))
				}
			} else if len(after) != before {
				fail("refused (answer %x), but the broker's log grew from %d to %d entries", ans, before, len(after))
			}
			if gotAllowed != wantAllowed {
				fail("kernel allowed=%v (answer %x)", gotAllowed, ans)
			}
			if !gotAllowed {
				e, err := refusal(local)
				if err != nil {
					fail("%v", err)
				}
				if rule == nil || e.Rule != uint32(rule.ID) || e.Reason != kafka.ReasonDenied || e.APIKey != q.key || e.APIVersion != q.version || e.Correlation != q.corr {
					fail("the kernel refused it (%v), the rule or request differs", e)
				}
				switch {
				case corr == q.corr && e.Answer == kafka.AnswerError:
					// The error a Kafka client understands, for each topic.
					if err := evalKafkaAnswer(q, ans[4:], topicOK); err != nil {
						fail("the kernel's answer: %v", err)
					}
					answered++
				case corr == ^q.corr && e.Answer == kafka.AnswerClosed:
					if !bytes.Equal(ans[4:], make([]byte, len(ans)-4)) || len(ans)+4 != len(q.frame) {
						fail("the closing answer %x: want the frame's length, zeros after the inverted correlation ID", ans)
					}
					closed++
					s.drop(key, c)
				default:
					fail("answer %x under correlation ID %d, event %v: want an answer under the request's correlation ID (event error-29) or the inverted one (event connection-closed)", ans, corr, e)
				}
			}
			if audit && wantAllowed {
				audited++
			}
			s.count(fmt.Sprintf("%v/%s", wantAllowed, reason), !gotAllowed)
			if held {
				s.drop(key, c) // its write side is shut: not used again
			}
		}
	})
	checkStalls(t, run.stalls)
	if run.checked < sets*perSet/2 || run.refused == 0 || run.refused == run.checked || answered == 0 || closed == 0 || audited == 0 {
		t.Fatalf("seed %d: %d requests checked, %d refused (%d answered, %d closed), %d passed by audit mode: the sets do not exercise the outcomes",
			seed, run.checked, run.refused, answered, closed, audited)
	}
	t.Logf("seed %d: %d sets, %d Kafka requests through the kernel as engine.Evaluate decides them (%d refused, each with the deciding rule engine.Evaluate names: %d answered with TOPIC_AUTHORIZATION_FAILED, %d with the closing frame; %d passed by audit mode), %d connections, %d (peer, port) pairs L3/L4 denies not sent to, %d held until the client's FIN, %s; by allowed/ingress reason: %v",
		seed, set, run.checked, run.refused, answered, closed, audited, run.conns, run.skippedL4, len(run.stalls), time.Since(run.start).Round(time.Millisecond), run.verdicts)
}

// evalKafkaAnswer checks the kernel's answer to a refused Produce or
// Metadata request (after the correlation ID): the response of the
// request's key and version, TOPIC_AUTHORIZATION_FAILED (29) for each
// refused topic and, in a Metadata answer, LEADER_NOT_AVAILABLE (5) for
// each allowed one, in the request's order.
func evalKafkaAnswer(q evalKafkaRequest, body []byte, topicOK []bool) error {
	resp := kmsg.ResponseForKey(q.key)
	if resp == nil || q.key != 0 && q.key != 3 {
		return fmt.Errorf("an answer to key %d: the kernel answers only Produce and Metadata", q.key)
	}
	resp.SetVersion(q.version)
	if resp.IsFlexible() {
		if len(body) == 0 || body[0] != 0 {
			return fmt.Errorf("the flexible response header's tags are not empty: %x", body)
		}
		body = body[1:]
	}
	if err := resp.ReadFrom(body); err != nil {
		return fmt.Errorf("decode: %v", err)
	}
	var got, want []string
	switch r := resp.(type) {
	case *kmsg.ProduceResponse:
		for _, tp := range r.Topics {
			for _, p := range tp.Partitions {
				got = append(got, fmt.Sprintf("%s/%d:%d", tp.Topic, p.Partition, p.ErrorCode))
			}
		}
		want = []string{fmt.Sprintf("%s/0:29", q.topics[0])}
	case *kmsg.MetadataResponse:
		for _, tp := range r.Topics {
			name := "<null>"
			if tp.Topic != nil {
				name = *tp.Topic
			}
			got = append(got, fmt.Sprintf("%s:%d", name, tp.ErrorCode))
		}
		for i, tp := range q.topics {
			want = append(want, fmt.Sprintf("%s:%d", tp, map[bool]int{true: 5, false: 29}[topicOK[i]]))
		}
	}
	if !slices.Equal(got, want) {
		return fmt.Errorf("topics %v, want %v", got, want)
	}
	return nil
}
