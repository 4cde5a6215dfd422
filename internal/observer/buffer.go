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

// Package observer keeps the agent's recent flows and serves them: a
// bounded ring of flow records, followers with bounded queues, loss
// counted by stage, filters like hubble observe's, and the gRPC service
// that `palisadectl observe` reads. It holds no kernel or Kubernetes
// code: the agent resolves the datapath's events into flows.Flow and adds
// them here.
package observer

import (
	"context"
	"sync"

	"github.com/palisade-dev/palisade/internal/flows"
)

// The stages where flows are lost. Every loss is counted in one of them;
// none is silent.
const (
	// StageKernel: the datapath's ring buffer was full, so the kernel
	// dropped the event (its EventsLost counter).
	StageKernel = "kernel"
	// StageDecode: an event the agent read but could not decode.
	StageDecode = "decode"
	// StageBuffer: a flow overwritten in the agent's ring before any
	// request for recent flows read it; expected once the ring is full.
	StageBuffer = "buffer"
	// StageClient: a follower read too slowly and its queue was full.
	StageClient = "client"
)

// Stages lists the stages in pipeline order.
var Stages = []string{StageKernel, StageDecode, StageBuffer, StageClient}

// DefaultBufferSize and DefaultClientQueue are the default sizes of the
// ring and of each follower's queue.
const (
	DefaultBufferSize  = 4096
	DefaultClientQueue = 1024
)

// Buffer is the ring of recent flows and its followers. It is safe for
// concurrent use.
type Buffer struct {
	// OnLost, when set, is called (without locks held) for every loss, for
	// metrics.
	OnLost func(stage string, n uint64)
	// ClientQueue is each follower's queue; 0 means DefaultClientQueue.
	ClientQueue int

	mu   sync.Mutex
	ring []flows.Flow
	next int // where the next flow goes
	held int
	seen uint64 // flows added since start
	lost map[string]uint64
	// subs is a slice, not a set: Add ranges over it for every flow.
	subs []*subscriber
}

// NewBuffer returns a buffer that holds the last size flows.
func NewBuffer(size int) *Buffer {
	if size <= 0 {
		size = DefaultBufferSize
	}
	return &Buffer{ring: make([]flows.Flow, size), lost: map[string]uint64{}}
}

// Add appends a flow, overwriting the oldest when the ring is full, and
// hands it to every follower whose filter matches.
func (b *Buffer) Add(f flows.Flow) {
	var overwritten, dropped uint64
	b.mu.Lock()
	if b.held == len(b.ring) {
		overwritten = 1
		b.lost[StageBuffer]++
	} else {
		b.held++
	}
	b.ring[b.next] = f
	b.next = (b.next + 1) % len(b.ring)
	b.seen++
	for _, s := range b.subs {
		if !s.push(&f) {
			dropped++
		}
	}
	b.lost[StageClient] += dropped
	b.mu.Unlock()
	b.report(StageBuffer, overwritten)
	b.report(StageClient, dropped)
}

// Lost counts n flows lost at stage before they reached the buffer
// (StageKernel, StageDecode); every follower is told.
func (b *Buffer) Lost(stage string, n uint64) {
	if n == 0 {
		return
	}
	b.mu.Lock()
	b.lost[stage] += n
	for _, s := range b.subs {
		s.noteLost(stage, n)
	}
	b.mu.Unlock()
	b.report(stage, n)
}

func (b *Buffer) report(stage string, n uint64) {
	if n > 0 && b.OnLost != nil {
		b.OnLost(stage, n)
	}
}

// Stats are the buffer's totals since start.
type Stats struct {
	// Seen is every flow added; Held those the ring holds now.
	Seen uint64
	Held int
	// Lost is the count by stage.
	Lost map[string]uint64
}

// Stats returns the totals.
func (b *Buffer) Stats() Stats {
	b.mu.Lock()
	defer b.mu.Unlock()
	s := Stats{Seen: b.seen, Held: b.held, Lost: map[string]uint64{}}
	for k, v := range b.lost {
		s.Lost[k] = v
	}
	return s
}

// Observe sends the flows req asks for: the last req.Last matching flows
// held (all of them when Last is 0 and Follow is not set), then, with
// Follow, every new matching flow until ctx ends. Losses that concern the
// request are sent as Responses with Lost set: the totals first, then
// each loss while following.
func (b *Buffer) Observe(ctx context.Context, req *Request, send func(*Response) error) error {
	var sub *subscriber
	b.mu.Lock()
	totals := make([]*Lost, 0, len(Stages))
	for _, st := range Stages {
		if n := b.lost[st]; n > 0 {
			totals = append(totals, &Lost{Stage: st, Count: n, Total: true})
		}
	}
	var history []flows.Flow
	if req.Last > 0 || !req.Follow {
		start := (b.next - b.held + len(b.ring)) % len(b.ring)
		for i := 0; i < b.held; i++ {
			f := &b.ring[(start+i)%len(b.ring)]
			if req.Filter.Match(f) {
				history = append(history, *f)
			}
		}
		if req.Last > 0 && len(history) > req.Last {
			history = history[len(history)-req.Last:]
		}
	}
	if req.Follow {
		q := b.ClientQueue
		if q <= 0 {
			q = DefaultClientQueue
		}
		sub = &subscriber{filter: req.Filter, max: q, wake: make(chan struct{}, 1), lost: map[string]uint64{}}
		b.subs = append(b.subs, sub)
		defer func() {
			b.mu.Lock()
			for i, s := range b.subs {
				if s == sub {
					b.subs = append(b.subs[:i:i], b.subs[i+1:]...)
					break
				}
			}
			b.mu.Unlock()
		}()
	}
	b.mu.Unlock()

	for _, l := range totals {
		if err := send(&Response{Lost: l}); err != nil {
			return err
		}
	}
	for i := range history {
		if err := send(&Response{Flow: &history[i]}); err != nil {
			return err
		}
	}
	if sub == nil {
		return nil
	}
	var fs []flows.Flow
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-sub.wake:
		}
		var lost map[string]uint64
		fs, lost = sub.take(fs)
		for _, st := range Stages {
			if n := lost[st]; n > 0 {
				if err := send(&Response{Lost: &Lost{Stage: st, Count: n}}); err != nil {
					return err
				}
			}
		}
		for i := range fs {
			if err := send(&Response{Flow: &fs[i]}); err != nil {
				return err
			}
		}
	}
}

// subscriber is one follower: a bounded queue of matching flows and the
// losses it has not been told of yet.
type subscriber struct {
	filter Filter
	max    int
	wake   chan struct{}

	mu    sync.Mutex
	queue []flows.Flow
	lost  map[string]uint64
}

// push queues f if it matches; it returns false when the queue was full
// and the flow was dropped for this follower.
func (s *subscriber) push(f *flows.Flow) bool {
	if !s.filter.Match(f) {
		return true
	}
	s.mu.Lock()
	ok := len(s.queue) < s.max
	if ok {
		s.queue = append(s.queue, *f)
	} else {
		s.lost[StageClient]++
	}
	s.mu.Unlock()
	s.signal()
	return ok
}

func (s *subscriber) noteLost(stage string, n uint64) {
	s.mu.Lock()
	s.lost[stage] += n
	s.mu.Unlock()
	s.signal()
}

func (s *subscriber) signal() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// take returns the queued flows and the losses not told yet; the queue
// goes on in sent, the slice take returned last time (double buffering:
// no allocation per batch).
func (s *subscriber) take(sent []flows.Flow) ([]flows.Flow, map[string]uint64) {
	clear(sent) // what the flows refer to is not kept alive
	s.mu.Lock()
	defer s.mu.Unlock()
	q, l := s.queue, s.lost
	s.queue = sent[:0]
	if len(l) > 0 {
		s.lost = map[string]uint64{}
	}
	return q, l
}
