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

package controllers

import (
	"testing"
	"time"
)

// TestRequeueJitter: a thousand sets with one interval are requeued within
// IntervalJitter of it, spread over that window rather than together; a
// sooner recheck (a drift leaving its window) is kept exactly.
func TestRequeueJitter(t *testing.T) {
	const interval = 10 * time.Minute
	lo, hi := interval-time.Duration(IntervalJitter*float64(interval)), interval+time.Duration(IntervalJitter*float64(interval))
	// One-second buckets of the ±30 s window: how many distinct seconds
	// the thousand requeues fall in.
	buckets := map[time.Duration]int{}
	for range 1000 {
		d := requeueAfter(interval, 0)
		if d < lo || d > hi {
			t.Fatalf("requeue after %s, want within [%s, %s]", d, lo, hi)
		}
		buckets[d.Truncate(time.Second)]++
	}
	// Uniform over 60 one-second buckets, a thousand draws leave none
	// with more than a small share; together they would all be in one.
	most := 0
	for _, n := range buckets {
		most = max(most, n)
	}
	if len(buckets) < 50 || most > 100 {
		t.Errorf("1000 requeues fall in %d distinct seconds, at most %d in one: not spread", len(buckets), most)
	}
	if d := requeueAfter(interval, 90*time.Second); d != 90*time.Second {
		t.Errorf("with a recheck in 90s: requeue after %s", d)
	}
	if d := requeueAfter(0, 0); d != 0 {
		t.Errorf("no interval: requeue after %s, want 0", d)
	}
}
