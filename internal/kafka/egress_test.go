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
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/palisade-dev/palisade/internal/engine"
)

// egressClients dials the broker from sockets of the test's cgroup (the
// process enters it for the dial only, one dial at a time): what those
// sockets write is decided by the broker's egress binding.
type egressClients struct {
	cg, home string
	mu       sync.Mutex
}

func (e *egressClients) dial(ctx context.Context, network, addr string) (c net.Conn, err error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	var dl net.Dialer
	if cerr := inCgroup(e.cg, e.home, func() { c, err = dl.DialContext(ctx, network, addr) }); cerr != nil {
		return nil, cerr
	}
	return c, err
}

// startEgress starts kfake outside the test's cgroup and enforces list
// on what the cgroup's clients write to it (an egress binding).
func startEgress(t *testing.T, list engine.L7List) (*broker, *egressClients) {
	t.Helper()
	d := requireKernel(t)
	cg := newCgroup(t, d)
	b := runKfake(t, d, cg, net.Listen)
	b.apply(t, 1, list, true)
	return b, &egressClients{cg: cg, home: ownCgroup(t)}
}

// TestKafkaEgressProduceConsume: franz-go in the client cgroup produces
// to and consumes from the allowed topic; producing to the denied topic
// fails with TOPIC_AUTHORIZATION_FAILED answered on the client's own
// socket, a raw Produce to it is answered with 29 for its partition, and
// the broker never sees a request naming it.
func TestKafkaEgressProduceConsume(t *testing.T) {
	b, cl := startEgress(t, ordersOnly())
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	prod := newClient(t, b, kgo.ClientID("p"), kgo.Dialer(cl.dial))
	if err := prod.ProduceSync(ctx, &kgo.Record{Topic: "orders", Value: []byte("order 1")}).FirstErr(); err != nil {
		c, _ := b.d.CountersDir(true)
		t.Fatalf("produce to orders: %v (egress counters %v, broker saw %v)", err, c, b.seen)
	}
	cons := newClient(t, b, kgo.Dialer(cl.dial), kgo.ConsumeTopics("orders"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
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

	// A producer of the denied topic: its Metadata request naming it is
	// answered in the kernel, on the client's side (franz-go's default
	// client ID: the answer need not fit in the request there).
	leak := newClient(t, b, kgo.Dialer(cl.dial))
	err := leak.ProduceSync(ctx, &kgo.Record{Topic: "secret", Value: []byte("leak")}).FirstErr()
	if !errors.Is(err, kerr.TopicAuthorizationFailed) {
		c, _ := b.d.CountersDir(true)
		t.Fatalf("produce to secret: %v, want TOPIC_AUTHORIZATION_FAILED (egress counters %v)", err, c)
	}
	raw := newClient(t, b, kgo.ClientID("raw-1"), kgo.RequestRetries(0), kgo.Dialer(cl.dial))
	resp, err := raw.Request(ctx, request(0, 9, []string{"secret"}))
	if err != nil {
		t.Fatalf("produce request to secret: %v", err)
	}
	if pr := resp.(*kmsg.ProduceResponse); len(pr.Topics) != 1 || pr.Topics[0].Topic != "secret" || len(pr.Topics[0].Partitions) != 1 ||
		pr.Topics[0].Partitions[0].ErrorCode != kerr.TopicAuthorizationFailed.Code {
		t.Fatalf("produce response %+v, want secret's partition with TOPIC_AUTHORIZATION_FAILED", pr.Topics)
	}
	// The same connection goes on: an allowed request after the refusal.
	if _, err := raw.Request(ctx, request(3, 11, []string{"orders"})); err != nil {
		t.Fatalf("metadata for orders after the refusal: %v", err)
	}
	// A key the kernel cannot answer in its terms (ListOffsets of
	// secret): the closing frame, under the request's correlation ID
	// inverted, in place of the request; every later write fails.
	conn, err := cl.dial(ctx, "tcp", b.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	id := "raw-2"
	if _, err := conn.Write(frame(request(2, 6, []string{"secret"}), &id, 7)); err != nil {
		t.Fatalf("write list offsets of secret: %v", err)
	}
	cf, err := readFrame(bufio.NewReader(conn))
	if err != nil || len(cf) != 4 || int32(binary.BigEndian.Uint32(cf)) != ^int32(7) {
		t.Fatalf("list offsets of secret: answer %x (%v), want the closing frame (correlation ^7)", cf, err)
	}
	if _, err := conn.Write(frame(request(18, 3, nil), &id, 8)); !errors.Is(err, syscall.EACCES) {
		t.Fatalf("write after the closing frame: %v, want EACCES", err)
	}
	if err := prod.ProduceSync(ctx, &kgo.Record{Topic: "orders", Value: []byte("order 2")}).FirstErr(); err != nil {
		t.Fatalf("produce to orders after the refusals: %v", err)
	}
	for key, topics := range map[int16][]string{0: b.saw(0), 2: b.saw(2), 3: b.saw(3), 1: b.saw(1)} {
		if slices.Contains(topics, "secret") {
			t.Fatalf("the broker saw a request (key %d) naming secret: %v", key, topics)
		}
	}
	if !slices.Contains(b.saw(0), "orders") || !slices.Contains(b.saw(1), "orders") {
		t.Fatalf("the broker did not see the allowed produce and fetch: produce %v fetch %v", b.saw(0), b.saw(1))
	}
	cnt, err := b.d.CountersDir(true)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("egress counters %v", cnt)
	if c := cnt; c[ReasonDenied] < 3 || c[ReasonAnswered] < 2 || c[ReasonClosed] < 1 || c[ReasonAllowed] == 0 || c[ReasonSockets] == 0 {
		t.Fatalf("egress counters %v: want allowed, 3 denied (2 answered, 1 closed) and sockets", c)
	}
	if in, err := b.d.CountersDir(false); err != nil || in[ReasonAllowed] != 0 || in[ReasonSockets] != 0 {
		t.Fatalf("ingress counters %v (%v): want none, the broker's side is not bound", in, err)
	}
}

// readFrame reads one response frame (size field, then the response).
func readFrame(r *bufio.Reader) ([]byte, error) {
	var sz [4]byte
	if _, err := io.ReadFull(r, sz[:]); err != nil {
		return nil, err
	}
	b := make([]byte, binary.BigEndian.Uint32(sz[:]))
	_, err := io.ReadFull(r, b)
	return b, err
}

// TestKafkaEgressSplit: a Metadata request written in two writes split at
// every byte offset (TCP_NODELAY) is decided whole: naming "orders" the
// broker answers it; naming "secret" the kernel answers with
// TOPIC_AUTHORIZATION_FAILED and the broker never sees it.
func TestKafkaEgressSplit(t *testing.T) {
	b, cl := startEgress(t, ordersOnly())
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	id := "split"
	for _, topic := range []string{"orders", "secret"} {
		f := frame(request(3, 11, []string{topic}), &id, 42)
		for cut := 1; cut < len(f); cut++ {
			c, err := cl.dial(ctx, "tcp", b.addr)
			if err != nil {
				t.Fatal(err)
			}
			c.(*net.TCPConn).SetNoDelay(true)
			c.SetDeadline(time.Now().Add(10 * time.Second))
			if _, err := c.Write(f[:cut]); err != nil {
				t.Fatalf("%s cut %d: first write: %v", topic, cut, err)
			}
			if _, err := c.Write(f[cut:]); err != nil {
				t.Fatalf("%s cut %d: second write: %v", topic, cut, err)
			}
			resp, err := readFrame(bufio.NewReader(c))
			c.Close()
			if err != nil {
				t.Fatalf("%s cut %d: read the answer: %v", topic, cut, err)
			}
			if corr := int32(binary.BigEndian.Uint32(resp)); corr != 42 {
				t.Fatalf("%s cut %d: answer under correlation %d, want 42", topic, cut, corr)
			}
			mr := kmsg.NewPtrMetadataResponse()
			mr.Version = 11
			if err := mr.ReadFrom(resp[4+1:]); err != nil {
				t.Fatalf("%s cut %d: decode the answer: %v", topic, cut, err)
			}
			want := int16(0)
			if topic == "secret" {
				want = kerr.TopicAuthorizationFailed.Code
			}
			if len(mr.Topics) != 1 || mr.Topics[0].ErrorCode != want {
				t.Fatalf("%s cut %d: answer %+v, want error %d", topic, cut, mr.Topics, want)
			}
		}
	}
	if slices.Contains(b.saw(3), "secret") {
		t.Fatalf("the broker saw a Metadata request naming secret")
	}
	if n := len(b.saw(3)); n < len(frame(request(3, 11, []string{"orders"}), &id, 42))-1 {
		t.Fatalf("the broker saw %d Metadata requests for orders, want one per cut", n)
	}
	c, _ := b.d.CountersDir(true)
	t.Logf("egress counters %v", c)
}

// TestKafkaEgressKernelMatchesEngine: the client's side copy of the
// parser (kafka_msg) against the engine: 100 seeded lists × 500 requests
// (diffRequest: every parsed key and version, client IDs, one to three
// topics), each written on its own connection from the client cgroup to
// kfake; the verdict event of each (allowed events on) says allowed or
// denied and the deciding rule as the engine does, and a refused one was
// not passed.
func TestKafkaEgressKernelMatchesEngine(t *testing.T) {
	b, cl := startEgress(t, ordersOnly())
	b.d.SetAllowedEvents(true)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	events, errs, err := b.d.Events(ctx)
	if err != nil {
		t.Fatal(err)
	}
	const sets, perSet = 100, 500
	seed := uint64(20261208)
	var allowed, denied int
	for s := range sets {
		r := rand.New(rand.NewPCG(seed, uint64(s)))
		list := diffList(r)
		b.apply(t, uint64(s+2), list, true)
		for i := range perSet {
			dr := diffRequest(r, list, int32(i))
			c, err := cl.dial(ctx, "tcp", b.addr)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := c.Write(dr.frame); err != nil {
				t.Fatalf("set %d request %d: write: %v", s, i, err)
			}
			var ev Event
			select {
			case ev = <-events:
			case err := <-errs:
				t.Fatalf("events: %v", err)
			case <-time.After(10 * time.Second):
				t.Fatalf("set %d request %d: no verdict event", s, i)
			}
			c.Close()
			wantReason := ReasonAllowed
			if !dr.ok {
				wantReason = ReasonDenied
				denied++
			} else {
				allowed++
			}
			if !ev.Egress || ev.Correlation != int32(i) || ev.Reason != wantReason || ev.Rule != uint32(dr.rule) || ev.Allowed() != dr.ok ||
				ev.Generation != uint64(s+2) || ev.APIKey != dr.key || ev.APIVersion != dr.ver {
				t.Fatalf("seed %d set %d request %d: key %d v%d client %v topics %v\nlist %s\nevent %v, want %v rule %d",
					seed, s, i, dr.key, dr.ver, dr.q.ClientID, dr.topics, fmtList(list), ev, wantReason, dr.rule)
			}
		}
	}
	t.Logf("%d lists, %d requests on the client's side: %d allowed, %d refused, kernel = engine", sets, sets*perSet, allowed, denied)
	if allowed < sets*perSet/20 || denied < sets*perSet/20 {
		t.Fatalf("the requests do not exercise both outcomes: %d allowed, %d refused", allowed, denied)
	}
}

// TestKafkaEgressOversize: a client may write frames up to
// EgressFrameMax: franz-go produces a 200 KB record (uncompressed) to the
// allowed topic; a 300 KiB
// Produce frame is refused oversize from its size field: the client reads
// a response frame of size 0, the broker never sees it, and the event
// names the client's and the broker's addresses.
func TestKafkaEgressOversize(t *testing.T) {
	b, cl := startEgress(t, ordersOnly())
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	events, errs, err := b.d.Events(ctx)
	if err != nil {
		t.Fatal(err)
	}
	big := make([]byte, 200_000)
	for i := range big {
		big[i] = byte(i * 7919 >> 3)
	}
	prod := newClient(t, b, kgo.ClientID("big-1"), kgo.Dialer(cl.dial), kgo.ProducerBatchCompression(kgo.NoCompression()))
	if err := prod.ProduceSync(ctx, &kgo.Record{Topic: "orders", Value: big}).FirstErr(); err != nil {
		c, _ := b.d.CountersDir(true)
		t.Fatalf("produce 200 KB to orders: %v (egress counters %v)", err, c)
	}
	before := len(b.saw(0))

	req := kmsg.NewPtrProduceRequest()
	req.Acks, req.TimeoutMillis = -1, 1000
	rt := kmsg.NewProduceRequestTopic()
	rt.Topic = "orders"
	p := kmsg.NewProduceRequestTopicPartition()
	p.Records = make([]byte, 300<<10)
	rt.Partitions = append(rt.Partitions, p)
	req.Topics = append(req.Topics, rt)
	req.SetVersion(9)
	id := "big-2"
	f := frame(req, &id, 5)
	if len(f) <= EgressFrameMax {
		t.Fatalf("frame of %d bytes, want more than %d", len(f), EgressFrameMax)
	}
	conn, err := cl.dial(ctx, "tcp", b.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := conn.Write(f); err != nil {
		t.Fatalf("write the 300 KiB frame: %v", err)
	}
	resp, err := readFrame(bufio.NewReader(conn))
	if err != nil || len(resp) != 0 {
		t.Fatalf("answer to the 300 KiB frame: %x (%v), want a response frame of size 0", resp, err)
	}
	var ev Event
	for ev.Reason != ReasonOversize {
		select {
		case ev = <-events:
		case err := <-errs:
			t.Fatalf("events: %v", err)
		case <-ctx.Done():
			t.Fatal("no oversize event")
		}
	}
	if !ev.Egress || ev.Answer != AnswerClosed || ev.Local.String() != conn.LocalAddr().String() || ev.Remote.String() != b.addr {
		t.Fatalf("event %+v: want egress, closed, local %s remote %s", ev, conn.LocalAddr(), b.addr)
	}
	if got := len(b.saw(0)); got != before {
		t.Fatalf("the broker saw %d produce requests after the oversize frame, want %d", got, before)
	}
	if c, _ := b.d.CountersDir(true); c[ReasonOversize] != 1 || c[ReasonClosed] != 1 {
		t.Fatalf("egress counters %v: want 1 oversize, closed", c)
	}
}

// TestKafkaEgressPipelined: ten Metadata requests in one write are decided
// one by one and each answered by the broker in order; an allowed, a
// refused and an allowed request in one write: the first reaches the
// broker, the refused one never does, and neither does the one after it
// (the kernel cannot answer the refused one before the broker's answer to
// the first, so it sends the closing frame in place of the rest of the
// write: docs/kafka.md).
func TestKafkaEgressPipelined(t *testing.T) {
	b, cl := startEgress(t, ordersOnly())
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	id := "pipe"
	var w []byte
	for i := range 10 {
		w = append(w, frame(request(3, 11, []string{"orders"}), &id, int32(i))...)
	}
	c, err := cl.dial(ctx, "tcp", b.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Write(w); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	for i := range 10 {
		resp, err := readFrame(br)
		if err != nil {
			t.Fatalf("answer %d: %v", i, err)
		}
		if corr := int32(binary.BigEndian.Uint32(resp)); corr != int32(i) {
			t.Fatalf("answer %d under correlation %d", i, corr)
		}
	}
	if n := len(b.saw(3)); n != 10 {
		t.Fatalf("the broker saw %d Metadata topics, want 10", n)
	}

	c2, err := cl.dial(ctx, "tcp", b.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	c2.SetDeadline(time.Now().Add(10 * time.Second))
	w = append(frame(request(3, 11, []string{"orders"}), &id, 20), frame(request(3, 11, []string{"secret"}), &id, 21)...)
	w = append(w, frame(request(3, 11, []string{"orders"}), &id, 22)...)
	if _, err := c2.Write(w); err != nil {
		t.Fatal(err)
	}
	br = bufio.NewReader(c2)
	got := map[int32]bool{}
	for range 2 {
		resp, err := readFrame(br)
		if err != nil {
			t.Fatalf("answers %v, then: %v", got, err)
		}
		got[int32(binary.BigEndian.Uint32(resp))] = true
	}
	if !got[20] || !got[^int32(21)] {
		t.Fatalf("answers under correlations %v, want 20 (the broker's) and ^21 (the closing frame)", got)
	}
	if saw := b.saw(3); len(saw) != 11 || slices.Contains(saw, "secret") {
		t.Fatalf("the broker saw Metadata topics %v, want one more orders and no secret", saw)
	}
}
