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

package relay

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/go-logr/logr"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/palisade-dev/palisade/internal/flows"
	"github.com/palisade-dev/palisade/internal/observer"
)

// Default bounds of the wait before a node's stream is opened again.
const (
	DefaultMinBackoff = time.Second
	DefaultMaxBackoff = 30 * time.Second
	// DefaultHistoryTimeout bounds how long a request for recent flows
	// waits for one node.
	DefaultHistoryTimeout = 10 * time.Second
)

// Relay fans in from the nodes' observers. The zero value is not usable:
// use New.
type Relay struct {
	// MinBackoff and MaxBackoff bound the wait before a following stream
	// reopens a node's stream that failed; it doubles on each failure.
	MinBackoff, MaxBackoff time.Duration
	// HistoryTimeout bounds a request for one node's recent flows.
	HistoryTimeout time.Duration
	Log            logr.Logger
	// Auth, when set, authenticates every request and hides from each
	// user what lies in namespaces they may not see (Redact).
	Auth Authorizer
	// UI, when set, serves every path but Path and /healthz: the web
	// view beside the flows.
	UI http.Handler

	mu    sync.Mutex
	nodes map[string]*node
	// changed is closed and replaced when the set of nodes changes.
	changed chan struct{}
}

// node is one node's observer and the relay's client of it; conn is nil
// when the node reports no address. grpc.ClientConn reconnects by itself,
// with backoff.
type node struct {
	name, addr string
	conn       *grpc.ClientConn
	err        error // of grpc.NewClient
}

// New returns a relay with no nodes.
func New() *Relay {
	return &Relay{MinBackoff: DefaultMinBackoff, MaxBackoff: DefaultMaxBackoff, HistoryTimeout: DefaultHistoryTimeout,
		Log: logr.Discard(), nodes: map[string]*node{}, changed: make(chan struct{})}
}

// SetNode records a node's observer address (host:port; empty when it
// has none). A changed address replaces the node's client.
func (r *Relay) SetNode(name, addr string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if n, ok := r.nodes[name]; ok && n.addr == addr {
		return
	}
	r.closeNode(name)
	n := &node{name: name, addr: addr}
	if addr != "" {
		n.conn, n.err = grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	}
	r.nodes[name] = n
	r.notify()
	r.Log.Info("node", "node", name, "flowsAddress", addr)
}

// RemoveNode forgets a node.
func (r *Relay) RemoveNode(name string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.nodes[name]; ok {
		r.closeNode(name)
		delete(r.nodes, name)
		r.notify()
		r.Log.Info("node removed", "node", name)
	}
}

// Close closes every node's client.
func (r *Relay) Close() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for name := range r.nodes {
		r.closeNode(name)
	}
	r.nodes = map[string]*node{}
	r.notify()
}

func (r *Relay) closeNode(name string) {
	if n := r.nodes[name]; n != nil && n.conn != nil {
		n.conn.Close()
	}
}

// current reports whether n is still the relay's client of its node.
func (r *Relay) current(n *node) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.nodes[n.name] == n
}

func (r *Relay) notify() {
	close(r.changed)
	r.changed = make(chan struct{})
}

// snapshot is the nodes, by name, and the channel that says when they
// change.
func (r *Relay) snapshot() ([]*node, <-chan struct{}) {
	r.mu.Lock()
	defer r.mu.Unlock()
	ns := make([]*node, 0, len(r.nodes))
	for _, n := range r.nodes {
		ns = append(ns, n)
	}
	slices.SortFunc(ns, func(a, b *node) int { return strings.Compare(a.name, b.name) })
	return ns, r.changed
}

// Observe sends what req asks of every node to send: without Follow, the
// last req.Last matching flows of all nodes merged by time (all held
// flows when Last is 0); with Follow, those (when Last is set), then every
// node's new flows as they come, from the nodes known now and those that
// join. Losses come with their node; a node that cannot be read, that
// has no observer, joins or goes is a NodeEvent, never a silent gap.
func (r *Relay) Observe(ctx context.Context, req *observer.Request, send func(*Message) error) error {
	nodes, changed := r.snapshot()
	if !req.Follow {
		return r.history(ctx, nodes, req, send)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// The followers start first and queue what they read while the
	// history is gathered, so nothing falls between the two; what both
	// hold is sent once.
	out := make(chan *Message, 64)
	f := &fanIn{r: r, req: req, out: out, running: map[string]*follower{}}
	f.update(ctx, nodes, false)
	seen := map[flowKey]bool{}
	if req.Last > 0 {
		if err := r.history(ctx, nodes, req, func(m *Message) error {
			if m.Flow != nil {
				seen[keyOf(m.Flow)] = true
			}
			return send(m)
		}); err != nil {
			return err
		}
	} else {
		for _, n := range nodes {
			if n.conn == nil {
				if err := send(noObserver(n)); err != nil {
					return err
				}
			}
		}
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-changed:
			nodes, changed = r.snapshot()
			for _, m := range f.update(ctx, nodes, true) {
				if err := send(m); err != nil {
					return err
				}
			}
		case m := <-out:
			if m.Flow != nil && len(seen) > 0 {
				if k := keyOf(m.Flow); seen[k] {
					delete(seen, k)
					continue
				}
			}
			if err := send(m); err != nil {
				return err
			}
		}
	}
}

func noObserver(n *node) *Message {
	return &Message{Node: &NodeEvent{Name: n.name, State: NodeNoObserver, Error: "the node reports no flowsAddress: its agent runs without the flow observer, or has not reported yet"}}
}

// history gathers the nodes' held flows and sends the losses and node
// events, then the flows by time.
func (r *Relay) history(ctx context.Context, nodes []*node, req *observer.Request, send func(*Message) error) error {
	type result struct {
		flows []flows.Flow
		lost  []*Lost
		err   error
	}
	results := make([]result, len(nodes))
	var wg sync.WaitGroup
	for i, n := range nodes {
		if n.conn == nil {
			continue
		}
		wg.Go(func() {
			res := &results[i]
			if n.err != nil {
				res.err = n.err
				return
			}
			hctx, cancel := context.WithTimeout(ctx, r.HistoryTimeout)
			defer cancel()
			res.err = observer.Observe(hctx, n.conn, &observer.Request{Filter: req.Filter, Last: req.Last}, func(resp *observer.Response) error {
				switch {
				case resp.Flow != nil:
					res.flows = append(res.flows, *resp.Flow)
				case resp.Lost != nil:
					res.lost = append(res.lost, &Lost{Node: n.name, Lost: *resp.Lost})
				}
				return nil
			})
		})
	}
	wg.Wait()
	if ctx.Err() != nil {
		return nil
	}
	var all []flows.Flow
	for i, n := range nodes {
		res := &results[i]
		var m *Message
		switch {
		case n.conn == nil:
			m = noObserver(n)
		case res.err != nil:
			m = &Message{Node: &NodeEvent{Name: n.name, State: NodeUnreachable, Error: fmt.Sprintf("%s: %v", n.addr, res.err)}}
		}
		if m != nil {
			if err := send(m); err != nil {
				return err
			}
		}
		for _, l := range res.lost {
			if err := send(&Message{Lost: l}); err != nil {
				return err
			}
		}
		all = append(all, res.flows...)
	}
	slices.SortStableFunc(all, func(a, b flows.Flow) int { return a.Time.Compare(b.Time) })
	if req.Last > 0 && len(all) > req.Last {
		all = all[len(all)-req.Last:]
	}
	for i := range all {
		if err := send(&Message{Flow: &all[i]}); err != nil {
			return err
		}
	}
	return nil
}

// flowKey tells a flow the history sent from the same flow read again by
// a follower.
type flowKey struct {
	node       string
	time       int64
	src, dst   string
	sport, dpt uint16
	verdict    flows.Verdict
}

func keyOf(f *flows.Flow) flowKey {
	return flowKey{f.Node, f.Time.UnixNano(), f.Source.IP, f.Destination.IP, f.Source.Port, f.Destination.Port, f.Verdict}
}

// fanIn is one following request's followers, one per node.
type fanIn struct {
	r       *Relay
	req     *observer.Request
	out     chan<- *Message
	running map[string]*follower
}

type follower struct {
	n      *node
	cancel context.CancelFunc
}

// update starts a follower for each new node (or changed address) and
// stops those of nodes gone; it returns the node events to send when
// announce is set.
func (f *fanIn) update(ctx context.Context, nodes []*node, announce bool) []*Message {
	var msgs []*Message
	now := map[string]bool{}
	for _, n := range nodes {
		now[n.name] = true
		old, ok := f.running[n.name]
		if ok && old.n == n {
			continue
		}
		if ok {
			old.cancel()
		}
		if announce && !ok {
			msgs = append(msgs, &Message{Node: &NodeEvent{Name: n.name, State: NodeJoined}})
		}
		fctx, cancel := context.WithCancel(ctx)
		f.running[n.name] = &follower{n: n, cancel: cancel}
		if n.conn == nil {
			if announce {
				msgs = append(msgs, noObserver(n))
			}
			continue
		}
		go f.r.follow(fctx, n, f.req.Filter, f.out)
	}
	for name, fl := range f.running {
		if !now[name] {
			fl.cancel()
			delete(f.running, name)
			msgs = append(msgs, &Message{Node: &NodeEvent{Name: name, State: NodeGone, Error: "the node's NodeEnforcement was deleted"}})
		}
	}
	return msgs
}

// follow reads one node's new flows into out until ctx ends, reopening
// the stream with backoff when it fails, and says so on out each time.
func (r *Relay) follow(ctx context.Context, n *node, flt observer.Filter, out chan<- *Message) {
	put := func(m *Message) bool {
		select {
		case out <- m:
			return true
		case <-ctx.Done():
			return false
		}
	}
	backoff := r.MinBackoff
	failed := false
	for {
		err := n.err
		if err == nil {
			err = observeNode(ctx, n.conn, &observer.Request{Filter: flt, Follow: true}, func() bool {
				if failed {
					failed = false
					backoff = r.MinBackoff
					return put(&Message{Node: &NodeEvent{Name: n.name, State: NodeReconnected}})
				}
				return true
			}, func(resp *observer.Response) error {
				m := &Message{Flow: resp.Flow}
				if resp.Lost != nil {
					m = &Message{Lost: &Lost{Node: n.name, Lost: *resp.Lost}}
				}
				if !put(m) {
					return ctx.Err()
				}
				return nil
			})
		}
		if ctx.Err() != nil || !r.current(n) {
			return // a node removed or readdressed is the fan-in's to report
		}
		if err == nil {
			err = errors.New("the stream ended")
		}
		if !failed {
			failed = true
			if !put(&Message{Node: &NodeEvent{Name: n.name, State: NodeUnreachable, Error: fmt.Sprintf("%s: %v", n.addr, err)}}) {
				return
			}
		}
		r.Log.V(1).Info("node unreachable", "node", n.name, "error", err.Error(), "retry", backoff)
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, cmp.Or(r.MaxBackoff, DefaultMaxBackoff))
	}
}

// observeNode is observer.Observe, with opened called once the stream is
// open (the node is reachable) and before any response; opened returns
// false to stop.
func observeNode(ctx context.Context, conn grpc.ClientConnInterface, req *observer.Request, opened func() bool, fn func(*observer.Response) error) error {
	stream, err := conn.NewStream(ctx, &observer.ServiceDesc.Streams[0], observer.ObserveMethod, grpc.CallContentSubtype(observer.CodecName))
	if err != nil {
		return err
	}
	if err := stream.SendMsg(req); err != nil {
		return err
	}
	if err := stream.CloseSend(); err != nil {
		return err
	}
	if !opened() {
		return ctx.Err()
	}
	for {
		resp := new(observer.Response)
		if err := stream.RecvMsg(resp); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
		if err := fn(resp); err != nil {
			return err
		}
	}
}
