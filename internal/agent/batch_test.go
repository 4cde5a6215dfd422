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
	"sync/atomic"
	"testing"
	"time"

	"k8s.io/client-go/util/workqueue"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
)

// recordingQueue records how the handler asks for the sync.
type recordingQueue struct {
	workqueue.TypedRateLimitingInterface[reconcile.Request]
	now   int
	after []time.Duration
}

func (q *recordingQueue) Add(reconcile.Request) { q.now++ }
func (q *recordingQueue) AddAfter(_ reconcile.Request, d time.Duration) {
	q.after = append(q.after, d)
}

// TestBatchedLeadingEdge: a lone change asks for the sync at once; events
// within SyncBatch of it wait for the rest of that window (one sync for a
// burst); an event after the window asks at once again.
func TestBatchedLeadingEdge(t *testing.T) {
	b := batched{last: new(atomic.Int64)}
	q := &recordingQueue{}
	ctx := context.Background()
	b.Create(ctx, event.CreateEvent{}, q)
	if q.now != 1 || len(q.after) != 0 {
		t.Fatalf("a lone change: %d at once, %v later; want one at once", q.now, q.after)
	}
	b.Update(ctx, event.UpdateEvent{}, q)
	b.Delete(ctx, event.DeleteEvent{}, q)
	b.Generic(ctx, event.GenericEvent{}, q)
	if q.now != 1 || len(q.after) != 3 {
		t.Fatalf("a burst: %d at once, %v later; want the burst after the window", q.now, q.after)
	}
	for _, d := range q.after {
		if d <= 0 || d > SyncBatch {
			t.Errorf("waits %s, want within (0, %s]", d, SyncBatch)
		}
	}
	// The window has passed: the next change is synced at once.
	b.last.Store(time.Now().Add(-SyncBatch).UnixNano())
	b.Update(ctx, event.UpdateEvent{}, q)
	if q.now != 2 {
		t.Errorf("a change after the window: %d at once, want 2", q.now)
	}
}
