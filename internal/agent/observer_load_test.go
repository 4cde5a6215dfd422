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

package agent_test

// The flow observer under load, on the real datapath: every event the
// kernel makes either reaches a client of the gRPC service or is counted
// as lost at one stage (docs/flows.md, "load and losses").

import (
	"context"
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"google.golang.org/grpc"
	ctrl "sigs.k8s.io/controller-runtime"

	"github.com/palisade-dev/palisade/internal/agent"
	"github.com/palisade-dev/palisade/internal/datapath"
	"github.com/palisade-dev/palisade/internal/observer"
)

// ingressProgram is the program attached at the host end of a workload's
// veth that decides what enters the workload, from its pinned link: a
// BPF_PROG_TEST_RUN of it is a packet arriving at the workload.
func ingressProgram(tb testing.TB, pinDir string, ifindex int) *ebpf.Program {
	tb.Helper()
	l, err := link.LoadPinnedLink(filepath.Join(pinDir, "links", fmt.Sprintf("tcx_%d_egress_ingress", ifindex)), nil)
	if err != nil {
		tb.Fatal(err)
	}
	defer l.Close()
	info, err := l.Info()
	if err != nil {
		tb.Fatal(err)
	}
	p, err := ebpf.NewProgramFromID(info.Program)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { p.Close() })
	return p
}

// udpFrame is an Ethernet frame with a UDP datagram from src to dst:port.
func udpFrame(src, dst netip.Addr, sport, dport uint16) []byte {
	const payload = 16
	b := make([]byte, 14+20+8+payload)
	binary.BigEndian.PutUint16(b[12:], 0x0800)
	ip := b[14:34]
	ip[0], ip[8], ip[9] = 0x45, 64, 17
	binary.BigEndian.PutUint16(ip[2:], 20+8+payload)
	s, d := src.As4(), dst.As4()
	copy(ip[12:], s[:])
	copy(ip[16:], d[:])
	var sum uint32
	for i := 0; i < 20; i += 2 {
		sum += uint32(binary.BigEndian.Uint16(ip[i:]))
	}
	for sum > 0xffff {
		sum = sum>>16 + sum&0xffff
	}
	binary.BigEndian.PutUint16(ip[10:], ^uint16(sum))
	udp := b[34:]
	binary.BigEndian.PutUint16(udp[0:], sport)
	binary.BigEndian.PutUint16(udp[2:], dport)
	binary.BigEndian.PutUint16(udp[4:], 8+payload)
	return b
}

// run makes n events: n runs of prog on frame, each a drop with an event.
func run(tb testing.TB, prog *ebpf.Program, frame []byte, n int) {
	tb.Helper()
	for n > 0 {
		k := min(n, 1<<16)
		if _, err := prog.Run(&ebpf.RunOptions{Data: frame, Repeat: uint32(k)}); err != nil {
			tb.Fatal(err)
		}
		n -= k
	}
}

// tally is what one client of the service received: flows, and losses by
// stage, the totals sent first apart from those while following.
type tally struct {
	mu     sync.Mutex
	flows  uint64
	lost   map[string]uint64
	totals map[string]uint64
}

func newTally() *tally { return &tally{lost: map[string]uint64{}, totals: map[string]uint64{}} }

func (t *tally) add(r *observer.Response) {
	t.mu.Lock()
	defer t.mu.Unlock()
	switch {
	case r.Flow != nil:
		t.flows++
	case r.Lost != nil && r.Lost.Total:
		t.totals[r.Lost.Stage] += r.Lost.Count
	case r.Lost != nil:
		t.lost[r.Lost.Stage] += r.Lost.Count
	}
}

// accounted is flows received plus the losses of the stages given.
func (t *tally) accounted(lost map[string]uint64, stages ...string) uint64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := t.flows
	for _, st := range stages {
		n += lost[st]
	}
	return n
}

func (t *tally) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return fmt.Sprintf("flows %d, lost while following %v, totals %v", t.flows, t.lost, t.totals)
}

// observingLoad is observing with the buffer's sizes given, losses
// counted every 100ms, and only the events the datapath always makes
// (drops, and allowed connections at creation).
func observingLoad(t *testing.T, size, queue int) (func(ctrl.Manager, *agent.Agent, *datapath.Datapath), *observer.Buffer, func() *grpc.ClientConn) {
	buf := observer.NewBuffer(size)
	buf.ClientQueue = queue
	hook, dial := observerHook(t, buf, false, 100*time.Millisecond)
	return hook, buf, dial
}

// TestObserverAccountsForEveryEvent: N events of known traffic reach a
// following client, or the losses it is told of (kernel, decode, client)
// make up the difference exactly; a request for the held flows afterwards
// gets them plus the totals of kernel, decode and buffer losses, which
// again add up to every event the kernel made. Once with traffic that
// loses nothing, once with a flood and a slow client that lose at every
// stage.
func TestObserverAccountsForEveryEvent(t *testing.T) {
	e := newEnv(t)
	e.pod("client", "client", "10.77.0.1")
	srv := e.pod("server", "server", "10.77.0.2")
	e.policy("server", "rev1", serverPolicy)

	hook, buf, dial := observingLoad(t, 1024, 256)
	e.setup = hook
	r := e.start(datapath.Limits{}, time.Hour)
	e.enforced("rev1")
	conn := dial()

	kernel := func() uint64 {
		c, err := r.dp.Counters()
		if err != nil {
			t.Fatal(err)
		}
		return c.EventsSent + c.EventsLost
	}
	prog := ingressProgram(t, e.pinDir, srv.Ifindex)
	// UDP to 8081 is not allowed by serverPolicy: a drop and its event
	// at the server's ingress, whatever came before (drops open no
	// connection).
	frame := udpFrame(netip.MustParseAddr("10.77.0.1"), srv.IP, 40000, 8081)
	made := uint64(0) // every event the kernel made since the agent started

	// follow starts a following client once it is certainly subscribed:
	// it asks for the last held flow, which comes with the subscription.
	follow := func(ctx context.Context, slow time.Duration) *tally {
		seen := buf.Stats().Seen
		run(t, prog, frame, 1)
		made++
		e.eventually("the marker flow", func() error {
			if buf.Stats().Seen == seen {
				return fmt.Errorf("not read yet")
			}
			return nil
		})
		tl := newTally()
		first := make(chan struct{})
		var once sync.Once
		go func() {
			observer.Observe(ctx, conn, &observer.Request{Follow: true, Last: 1}, func(resp *observer.Response) error {
				if resp.Flow != nil {
					done := false
					once.Do(func() { close(first); done = true })
					if done {
						return nil // the subscription's marker, not one of the N
					}
				}
				tl.add(resp)
				if slow > 0 && resp.Flow != nil {
					time.Sleep(slow)
				}
				return nil
			})
		}()
		select {
		case <-first:
		case <-time.After(time.Minute):
			t.Fatalf("the follower got no flow: %v", buf.Stats())
		}
		return tl
	}
	await := func(what string, n uint64, f func() uint64) {
		t.Helper()
		e.eventually(what, func() error {
			if got := f(); got < n {
				return fmt.Errorf("%d of %d accounted for", got, n)
			}
			return nil
		})
		time.Sleep(300 * time.Millisecond) // three loss counts: nothing more comes
		if got := f(); got != n {
			t.Errorf("%s: %d accounted for, want exactly %d", what, got, n)
		}
	}
	following := []string{observer.StageKernel, observer.StageDecode, observer.StageClient}

	t.Run("lossless", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		tl := follow(ctx, 0)
		// Real datagrams from the client workload, one socket: the
		// client's egress allows and reports the connection once,
		// the server's ingress drops and reports each datagram.
		const n = 200
		before := kernel()
		err := e.wl["client"].Do(func() error {
			c, err := net.Dial("udp", netip.AddrPortFrom(srv.IP, 8081).String())
			if err != nil {
				return err
			}
			defer c.Close()
			for i := 0; i < n; i++ {
				if _, err := c.Write([]byte("palisade")); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		const events = n + 1
		made += events
		await("the datagrams' flows", events, func() uint64 { return tl.accounted(tl.lost, following...) })
		if k := kernel() - before; k != events {
			t.Errorf("the kernel made %d events, want %d", k, events)
		}
		if tl.accounted(tl.lost, following...) != tl.flows {
			t.Errorf("losses without load: %v", tl)
		}
		t.Logf("N=%d: %v", events, tl)
	})

	t.Run("losses", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		tl := follow(ctx, 20*time.Microsecond)
		const n = 400_000 // ~9 ring buffers of events at once
		before := kernel()
		run(t, prog, frame, n)
		made += n
		await("the flood's flows", n, func() uint64 { return tl.accounted(tl.lost, following...) })
		if k := kernel() - before; k != n {
			t.Errorf("the kernel made %d events, want %d", k, n)
		}
		t.Logf("N=%d: %v", n, tl)
		for _, st := range []string{observer.StageKernel, observer.StageClient} {
			if tl.lost[st] == 0 {
				t.Errorf("no %s losses: the run does not test them (%v)", st, tl)
			}
		}
	})

	// Every event the kernel made since the agent started: held, or
	// counted lost before the ring (kernel, decode) or overwritten in it
	// (buffer). Client losses are the followers', not the ring's.
	t.Run("held", func(t *testing.T) {
		var tl *tally
		await("every event", made, func() uint64 {
			tl = newTally()
			if err := observer.Observe(context.Background(), conn, &observer.Request{}, func(r *observer.Response) error { tl.add(r); return nil }); err != nil {
				t.Fatal(err)
			}
			return tl.accounted(tl.totals, observer.StageKernel, observer.StageDecode, observer.StageBuffer)
		})
		t.Logf("%d events: %v; buffer %+v", made, tl, buf.Stats())
		if tl.totals[observer.StageBuffer] == 0 {
			t.Errorf("no buffer losses: %v", tl)
		}
	})
}
