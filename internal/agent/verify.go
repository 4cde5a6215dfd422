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
	"sync"
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
	reports := a.reportC()
	a.mu.Lock()
	a.reporting = true
	a.mu.Unlock()
	defer func() {
		a.mu.Lock()
		a.reporting = false
		a.mu.Unlock()
	}()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		case <-a.triggerC():
		case <-reports:
			a.ReportNow(ctx)
			continue
		}
		a.VerifyNow(ctx)
	}
}

// reportC is the verify loop's channel of report requests; it takes not
// the agent's lock, so a sync asks for a report under it.
func (a *Agent) reportC() chan struct{} {
	a.reportsOnce.Do(func() { a.reports = make(chan struct{}, 1) })
	return a.reports
}

// reportSoon asks the verify loop for a report (ReportNow), with or
// without the agent's lock.
func (a *Agent) reportSoon() {
	select {
	case a.reportC() <- struct{}{}:
	default:
	}
}

// ReportNow makes the status under the agent's lock and writes it after
// releasing it: a sync waits for the report's making, not for the API
// server's answer. A write that fails is tried again by a report
// retryInterval later.
func (a *Agent) ReportNow(ctx context.Context) {
	t0 := time.Now()
	a.mu.Lock()
	w, err := a.prepareReport(ctx)
	a.mu.Unlock()
	t1 := time.Now()
	if err == nil && w != nil {
		err = a.writeReport(ctx, w)
	}
	a.Log.V(1).Info("reported", "locked", t1.Sub(t0), "write", time.Since(t1), "written", w != nil)
	if err != nil {
		a.Log.Error(err, "report NodeEnforcement")
		time.AfterFunc(retryInterval, a.reportSoon)
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
// drifted, and reports. The network's maps and the l7 and kafka
// subsystems' generations and identities are read back and compared
// first, outside the agent's lock, so a sync does not wait for that.
func (a *Agent) VerifyNow(ctx context.Context) {
	t0 := time.Now()
	chk := a.checkMaps()
	socks := a.checkSocks()
	t1 := time.Now()
	a.mu.Lock()
	t2 := time.Now()
	held := a.net != nil && a.net.holds(chk)
	if a.net != nil {
		// Used when no sync ran since; otherwise Verify compares again
		// or defers to the next pass.
		a.net.check = chk
	}
	for i, c := range socks.subs {
		c.setCheck(socks.checks[i])
	}
	a.verify(ctx)
	// The status is made under the lock and written after it.
	w, err := a.prepareReport(ctx)
	deferred := a.net != nil && a.net.deferred
	a.mu.Unlock()
	t3 := time.Now()
	if err == nil && w != nil {
		err = a.writeReport(ctx, w)
	}
	if err != nil {
		a.Log.Error(err, "report NodeEnforcement")
	}
	a.Log.V(1).Info("verified", "compare", t1.Sub(t0), "compareHeld", held, "mapsDeferred", deferred,
		"lockWait", t2.Sub(t1), "locked", t3.Sub(t2), "write", time.Since(t3))
}

// checkAttempts is how many times compareOutside compares when syncs
// keep landing during the comparison; after that the pass leaves the
// comparison to the next one, which makes it under the agent's lock if
// it must (useCheck).
const checkAttempts = 3

// compareOutside makes a subsystem's comparison of the kernel with a copy
// of what it applied outside the agent's lock (mu): start copies, under
// the lock (nil: nothing to compare); run reads back and compares,
// outside it; holds says, under the lock, whether the outcome is still
// the kernel's against what the subsystem applied (no sync ran since).
// When a sync ran meanwhile (its outcome would be of a state no longer
// applied) it compares again. It returns the last comparison; the
// subsystem's Verify uses it only if it holds, and one whose run failed
// is made again there.
func compareOutside[C any](mu *sync.Mutex, start func() *C, run func(*C) error, holds func(*C) bool) *C {
	var chk *C
	for range checkAttempts {
		mu.Lock()
		chk = start()
		mu.Unlock()
		if chk == nil {
			return nil
		}
		if run(chk) != nil {
			return chk // Verify compares again and reports the error
		}
		mu.Lock()
		ok := holds(chk)
		mu.Unlock()
		if ok {
			return chk
		}
	}
	return chk
}

// useCheck decides, in a subsystem's Verify under the agent's lock, what
// it does with the comparison made outside the lock (compareOutside):
// use it when it holds; when it was made but syncs landed during every
// attempt (a burst of changes), leave the comparison to the next pass,
// once (*deferred), since comparing under the lock would hold up the
// next change; otherwise (none made, its run failed, or the last pass
// deferred already) compare now, under the lock. So a drift is found
// within two passes however busy the node.
func useCheck(holds, made bool, deferred *bool) (use, compare bool) {
	switch {
	case holds:
		*deferred = false
		return true, false
	case made && !*deferred:
		*deferred = true
		return false, false
	default:
		*deferred = false
		return false, true
	}
}

// checkMaps compares the network's maps with a copy of the desired state
// outside the agent's lock (compareOutside). It returns nil when there
// was nothing to compare.
func (a *Agent) checkMaps() *mapCheck {
	return compareOutside(&a.mu, func() *mapCheck {
		if a.net == nil {
			return nil
		}
		return a.net.startCheck()
	}, func(c *mapCheck) error {
		c.run(a.Datapath)
		return c.err
	}, func(c *mapCheck) bool { return a.net.holds(c) })
}

// sockChecks are the comparisons checkSocks made, one per subsystem.
type sockChecks struct {
	subs   []outsideChecker
	checks []*sockCheck
}

// checkSocks compares the l7 and kafka subsystems' generations and
// identities with copies of what they applied outside the agent's lock
// (compareOutside).
func (a *Agent) checkSocks() sockChecks {
	var out sockChecks
	a.mu.Lock()
	for _, s := range a.subs {
		if c, ok := s.(outsideChecker); ok {
			out.subs = append(out.subs, c)
		}
	}
	a.mu.Unlock()
	for _, c := range out.subs {
		out.checks = append(out.checks, compareOutside(&a.mu, c.startCheck, c.runCheck, c.holds))
	}
	return out
}

// verify runs every subsystem's part of the verify loop.
func (a *Agent) verify(ctx context.Context) {
	if a.net == nil || a.net.desired == nil {
		return // nothing applied yet: the first sync has not run
	}
	start := time.Now()
	defer func() {
		if a.Metrics != nil {
			a.Metrics.VerifyDuration.Observe(time.Since(start).Seconds())
		}
	}()
	failed := false
	for _, s := range a.subsystems() {
		if err := s.Verify(ctx, a.drift); err != nil {
			a.Log.Error(err, "verify", "subsystem", s.Name())
			failed = true
		}
	}
	if failed && a.Metrics != nil {
		a.Metrics.VerifyFailures.Inc()
	}
	a.lastVerified = a.now()
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
	return fmt.Sprintf("%d map entries differ: %s", len(ds), firstDrifts(ds))
}

// firstDrifts names up to five drifts, then how many more there are.
func firstDrifts[D fmt.Stringer](ds []D) string {
	parts := make([]string, 0, min(len(ds), 6))
	for i, d := range ds {
		if i == 5 {
			parts = append(parts, fmt.Sprintf("and %d more", len(ds)-5))
			break
		}
		parts = append(parts, d.String())
	}
	return strings.Join(parts, "; ")
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n-3] + "..."
}
