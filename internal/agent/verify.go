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
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1 "github.com/palisade-dev/palisade/api/v1alpha1"
	"github.com/palisade-dev/palisade/internal/datapath"
	"github.com/palisade-dev/palisade/internal/metrics"
)

// Start runs the verify loop until ctx ends: a pass every VerifyInterval
// and one on every Trigger (link events).
func (a *Agent) Start(ctx context.Context) error {
	every := a.VerifyInterval
	if every <= 0 {
		every = DefaultVerifyInterval
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		case <-a.triggerC():
		}
		a.VerifyNow(ctx)
	}
}

// NeedLeaderElection: every node's agent runs its own loop.
func (a *Agent) NeedLeaderElection() bool { return false }

func (a *Agent) triggerC() chan struct{} {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.trigger == nil {
		a.trigger = make(chan struct{}, 1)
	}
	return a.trigger
}

// Trigger asks for a verify pass soon.
func (a *Agent) Trigger() {
	select {
	case a.triggerC() <- struct{}{}:
	default:
	}
}

// VerifyNow compares the kernel with the desired state, repairs what
// drifted, and reports.
func (a *Agent) VerifyNow(ctx context.Context) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.verify(ctx)
	if err := a.report(ctx); err != nil {
		a.Log.Error(err, "report NodeEnforcement")
	}
}

// verify is one pass of the verify loop.
func (a *Agent) verify(ctx context.Context) {
	if a.desired == nil {
		return // nothing applied yet: the first sync has not run
	}
	start := time.Now()
	defer func() {
		if a.Metrics != nil {
			a.Metrics.VerifyDuration.Observe(time.Since(start).Seconds())
		}
	}()
	a.verifyErr = nil

	// Pins first: a removed link pin is also a detached program, and the
	// map pins are what the next agent adopts.
	if probs := a.Datapath.CheckPins(); len(probs) > 0 {
		err := a.Datapath.RepairPins()
		for _, p := range probs {
			a.drift(v1.KernelDriftPin, p.What, err)
		}
	}
	for _, ifindex := range a.wantedIfindexes() {
		who := a.wanted[ifindex]
		host := strings.HasPrefix(who, "host:")
		var probs []datapath.Problem
		if host {
			probs = a.Datapath.CheckHost(ifindex)
		} else {
			probs = a.Datapath.CheckWorkload(ifindex)
		}
		if len(probs) == 0 {
			continue
		}
		var err error
		if host {
			err = a.Datapath.RepairHost(ifindex)
		} else {
			err = a.Datapath.RepairWorkload(ifindex)
		}
		for _, p := range probs {
			kind := v1.KernelDriftProgram
			if p.Pin {
				kind = v1.KernelDriftPin
			}
			a.drift(kind, fmt.Sprintf("%s (%s)", p.What, who), err)
		}
	}

	drifts, _, err := a.Datapath.Compare(a.desired)
	if err != nil {
		a.verifyErr = err
		if a.Metrics != nil {
			a.Metrics.VerifyFailures.Inc()
		}
		a.lastVerified = a.now()
		return
	}
	if len(drifts) > 0 {
		// Repair by writing the whole desired state as a new generation:
		// packets switch from the tampered state to the right one at once.
		err := a.Datapath.Apply(ctx, a.desired)
		a.drift(v1.KernelDriftMapEntry, describeDrifts(drifts), err)
	}
	a.lastVerified = a.now()
	a.countVerdicts()
}

// drift records one kernel drift: on NodeEnforcement (newest first), as
// an event and in the metric.
func (a *Agent) drift(kind v1.KernelDriftKind, what string, repairErr error) {
	d := v1.KernelDrift{Time: metav1.NewTime(a.now()), Kind: kind, What: truncate(what, 1024), Repaired: repairErr == nil}
	if repairErr != nil {
		d.Message = truncate(repairErr.Error(), 1024)
	} else {
		a.repairs++
	}
	a.drifts = append([]v1.KernelDrift{d}, a.drifts...)
	if len(a.drifts) > v1.MaxKernelDrifts {
		a.drifts = a.drifts[:v1.MaxKernelDrifts]
	}
	a.Log.Info("kernel drift", "kind", kind, "what", d.What, "repaired", d.Repaired, "error", d.Message)
	if a.Metrics != nil {
		a.Metrics.Drift.WithLabelValues(metrics.SourceKernel, string(kind), fmt.Sprint(d.Repaired)).Inc()
	}
	if a.Recorder != nil {
		verb := "repaired"
		if !d.Repaired {
			verb = "NOT repaired: " + d.Message
		}
		a.Recorder.Eventf(a.nodeRef(), nil, corev1.EventTypeWarning, v1.KernelDriftReason, "Verify",
			"%s drift %s: %s", kind, verb, d.What)
	}
}

// describeDrifts says what differs between the desired state and the
// kernel, naming up to five entries.
func describeDrifts(ds []datapath.Drift) string {
	parts := make([]string, 0, min(len(ds), 6))
	for i, d := range ds {
		if i == 5 {
			parts = append(parts, fmt.Sprintf("and %d more", len(ds)-5))
			break
		}
		parts = append(parts, d.String())
	}
	return fmt.Sprintf("%d map entries differ: %s", len(ds), strings.Join(parts, "; "))
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n-3] + "..."
}

// countVerdicts adds the datapath's counters since the last pass to the
// verdict metric.
func (a *Agent) countVerdicts() {
	if a.Metrics == nil {
		return
	}
	c, err := a.Datapath.Counters()
	if err != nil {
		return
	}
	p := a.lastCounters
	for _, v := range []struct {
		name     string
		now, was uint64
	}{{"allowed", c.Allowed, p.Allowed}, {"denied", c.Denied, p.Denied}, {"audited", c.Audited, p.Audited}, {"reply", c.Replies, p.Replies}, {"malformed", c.Malformed, p.Malformed}} {
		if v.now > v.was {
			a.Metrics.Verdicts.WithLabelValues(v.name, "any").Add(float64(v.now - v.was))
		}
	}
	a.lastCounters = c
}
