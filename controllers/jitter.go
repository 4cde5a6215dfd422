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
	"math/rand/v2"
	"time"
)

// IntervalJitter is the fraction by which a PolicyRepository's or
// PolicySet's spec.interval is varied at random, either way, each time it
// is requeued, as Flux's controllers do (their
// --interval-jitter-percentage, 5 by default): a thousand objects created
// together with one interval spread over a tenth of it instead of firing
// together, and stay spread.
const IntervalJitter = 0.05

// jittered is interval varied by up to IntervalJitter either way; zero
// stays zero (no requeue).
func jittered(interval time.Duration) time.Duration {
	if interval <= 0 {
		return interval
	}
	return interval + time.Duration((rand.Float64()*2-1)*IntervalJitter*float64(interval))
}
