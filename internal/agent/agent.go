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
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "github.com/palisade-dev/palisade/api/v1alpha1"
	"github.com/palisade-dev/palisade/internal/engine"
	"github.com/palisade-dev/palisade/internal/metrics"
)

// Defaults of the agent's timing.
const (
	DefaultVerifyInterval = 10 * time.Second
	DefaultDriftWindow    = 5 * time.Minute
	// retryInterval is how soon a sync that failed, or left a workload
	// failing closed for a reason that may pass (an interface not there
	// yet), runs again.
	retryInterval = 5 * time.Second
)

// Subsystem is one part of what the agent enforces on the node: the L3/L4
// network datapath, the L7 tables, tracing programs, the flow observer.
// The agent syncs each to the desired state, verifies each in its loop,
// and lets each report its condition and what it does not enforce of each
// object.
type Subsystem interface {
	// Name names the subsystem in logs and errors.
	Name() string
	// Sync brings the subsystem to the desired state. After an error the
	// subsystem is never less restrictive than its last good state.
	Sync(ctx context.Context, in *inputs) error
	// Verify compares the kernel with the last sync, repairs what
	// differs, and records each drift with rec.
	Verify(ctx context.Context, rec driftRecorder) error
	// Report adds the subsystem's condition, endpoint errors and object
	// gaps to r. in is the last sync's input, nil before the first.
	Report(in *inputs, r *report)
}

// keeper is a subsystem that can tell, before its Sync, that the sync
// would leave it as it is (sockSubsystem.keep); the agent then does not
// call Sync.
type keeper interface {
	keep(in *inputs) bool
}

// driftRecorder records one kernel drift and whether its repair failed.
type driftRecorder func(kind v1.KernelDriftKind, what string, repairErr error)

// Agent is the node agent: it compiles the cluster's policies for its
// node, keeps the kernel equal to the result, and reports on its node's
// NodeEnforcement. Sync and Verify are serialized.
type Agent struct {
	Client client.Client
	// APIReader reads from the API server, not the cache; it confirms
	// that a PolicySet's objects are gone before they are unenforced. Nil
	// means Client.
	APIReader client.Reader
	// Cache, when set, is the manager's cache (mgr.GetCache()): the agent
	// then lists the informers' own objects from their stores, without a
	// copy (listObjs). Nil lists through Client without deep copies.
	Cache cache.Cache
	// Datapath is the kernel side: *datapath.Datapath, or a fake in unit
	// tests.
	Datapath Kernel
	Node     string
	Labels   engine.LabelPolicy
	Links    Links
	// HostInterfaces are attached for the host firewall.
	HostInterfaces []string
	Metrics        *metrics.Metrics
	Recorder       events.EventRecorder
	VerifyInterval time.Duration
	// ReportBatch, when positive, is the least time between two writes of
	// the node's NodeEnforcement status: a change within it is written at
	// its end (DefaultReportBatch). Zero writes every change at once.
	ReportBatch time.Duration
	// DriftWindow is how long a drift keeps Drifted=True.
	DriftWindow time.Duration
	Log         logr.Logger
	// Now returns the current time; nil means time.Now.
	Now func() time.Time
	// Observer is the flow observer; nil runs the agent without one.
	Observer *Observer
	// FlowsAddress is host:port where the relay reaches Observer's gRPC
	// service, reported as NodeEnforcement.status.flowsAddress.
	FlowsAddress string
	// Tracing is the tracing datapath: *tracing.Manager, or a fake in
	// unit tests. Nil runs the agent without tracing, and TracingOff says
	// why in status.
	Tracing    TracingKernel
	TracingOff string
	// CgroupRoot is the cgroup v2 hierarchy where pods' cgroups are
	// found (DetectCgroupRoot); ProcRoot is the proc filesystem where
	// the processes to protect are found ("" means /proc).
	CgroupRoot string
	ProcRoot   string
	// TracingEvents, when not nil, receives every tracing event as one
	// JSON line.
	TracingEvents io.Writer
	// L7 is the L7 datapath (*l7.Datapath, or a fake in unit tests),
	// pinned under L7PinDir ("" pins nothing). Nil runs the agent without
	// it, and L7Off says why in status.
	L7       L7Kernel
	L7PinDir string
	L7Off    string
	// Kafka is the Kafka datapath (*kafka.Datapath, or a fake in unit
	// tests), pinned under KafkaPinDir. Nil runs the agent without it,
	// and KafkaOff says why in status.
	Kafka       KafkaKernel
	KafkaPinDir string
	KafkaOff    string

	// lastReport is when a status write was last decided; reportWaiting
	// says a change waits for the end of ReportBatch (a report is asked
	// for then).
	lastReport    time.Time
	reportWaiting bool
	// reportSeq numbers the status writes decided (under mu); written is
	// the newest one made (under writeMu, which serializes the writes).
	reportSeq uint64
	writeMu   sync.Mutex
	written   uint64
	// reports asks the verify loop for a report; reporting is set while
	// that loop runs (Start), and then, with ReportBatch, a sync leaves
	// the report to it.
	reports     chan struct{}
	reportsOnce sync.Once
	reporting   bool

	mu    sync.Mutex
	net   *network
	trace *tracingSubsystem // nil without Tracing
	subs  []Subsystem
	// last is the last sync's input; nil before the first.
	last *inputs
	// objCache keeps what is derived from each policy object per object
	// version; clusterCache the cluster while its objects are unchanged.
	objCache     objectCache
	clusterCache clusterCache
	// snapshots are, per PolicySet, the objects of its last complete
	// revision.
	snapshots map[setKey]*setInfo
	// sets are the revisions the kernel enforces, per set.
	sets    map[setKey]*setInfo
	pending map[setKey]pendingRev
	drifts  []v1.KernelDrift
	repairs int64
	// gatherErr is the last sync's error before any subsystem ran.
	gatherErr    error
	lastVerified time.Time
	// trigger asks the verify loop for a pass now (link events).
	trigger chan struct{}
	neUID   types.UID
	// eventAt is when the first event not yet synced arrived (UnixNano,
	// 0: none), and lockWait how long the running sync waited for mu: the
	// debug log gives both, to place a slow change's time.
	eventAt  atomic.Int64
	lockWait time.Duration
}

// pendingRev is a revision seen in the API but not yet enforced.
type pendingRev struct {
	revision string
	since    time.Time
}

func (a *Agent) now() time.Time {
	if a.Now != nil {
		return a.Now()
	}
	return time.Now()
}

// subsystems returns the subsystems, network first.
func (a *Agent) subsystems() []Subsystem {
	if a.subs == nil {
		a.net = &network{a: a}
		a.subs = []Subsystem{
			a.net,
			a.l7Subsystem(),
			a.kafkaSubsystem(),
			a.tracingSubsystem(),
			a.observerSubsystem(),
		}
	}
	return a.subs
}

// tracingSubsystem is the tracing subsystem, or, without a tracing
// datapath, a stand-in that reports tracing policies as not enforced.
func (a *Agent) tracingSubsystem() Subsystem {
	if a.Tracing == nil {
		return &tracingOff{why: cmp.Or(a.TracingOff, "this agent runs without a tracing datapath, so no program is loaded for it: its hooks never run and its actions never happen")}
	}
	a.trace = newTracingSubsystem(a)
	return a.trace
}

// Reconcile brings the kernel to what the cluster's objects say. Every
// watched object maps to the same request: one sync reads everything.
func (a *Agent) Reconcile(ctx context.Context, _ ctrl.Request) (ctrl.Result, error) {
	t0 := time.Now()
	a.mu.Lock()
	defer a.mu.Unlock()
	a.lockWait = time.Since(t0)
	err := a.sync(ctx)
	var rerr error
	if a.reporting && a.ReportBatch > 0 {
		// The verify loop reports, off this sync's path.
		a.reportSoon()
	} else {
		t1 := time.Now()
		rerr = a.report(ctx)
		a.Log.V(1).Info("reported", "took", time.Since(t1))
	}
	if rerr != nil {
		return ctrl.Result{}, errors.Join(err, rerr)
	}
	if err != nil || a.net.retry() || (a.trace != nil && a.trace.retry()) || a.l7Retry() {
		return ctrl.Result{RequeueAfter: retryInterval}, nil
	}
	return ctrl.Result{}, nil
}

// sync gathers the inputs and syncs every subsystem. On any error the
// kernel keeps the previous generation.
func (a *Agent) sync(ctx context.Context) error {
	subs := a.subsystems()
	t0 := time.Now()
	var queued time.Duration // from the first event to the sync
	if ev := a.eventAt.Swap(0); ev != 0 {
		queued = t0.Sub(time.Unix(0, ev))
	}
	in, err := a.gather(ctx)
	a.gatherErr = err
	if err != nil {
		if errors.Is(err, errRevisionIncomplete) {
			a.Log.Info("sync deferred", "reason", err.Error())
		}
		return err
	}
	t1 := time.Now()
	var errs []error
	took := make([]any, 0, 2*len(subs))
	for _, s := range subs {
		ts := time.Now()
		if k, ok := s.(keeper); ok && k.keep(in) {
			took = append(took, s.Name(), "kept")
			continue
		}
		if err := s.Sync(ctx, in); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", s.Name(), err))
		}
		took = append(took, s.Name(), time.Since(ts))
	}
	a.last = in
	a.Log.V(1).Info("synced", append([]any{"queued", queued, "lockWait", a.lockWait, "gather", t1.Sub(t0), "sync", time.Since(t1), "policies", len(in.ir.Policies),
		"endpoints", len(in.cluster.Endpoints), "clusterKept", in.clusterKept, "generation", a.Datapath.Generation()}, took...)...)
	if a.net.applied() {
		a.recordSets(in)
	} else {
		a.notePending(in)
	}
	return errors.Join(errs...)
}

// notePending remembers when a revision first failed to be enforced, for
// the enforcement lag.
func (a *Agent) notePending(in *inputs) {
	if a.pending == nil {
		a.pending = map[setKey]pendingRev{}
	}
	for k, si := range in.sets {
		rev := si.revision
		if si.pending != "" {
			rev = si.pending
		}
		if rev == "" {
			continue
		}
		if cur, ok := a.sets[k]; ok && cur.revision == rev {
			continue
		}
		if p, ok := a.pending[k]; !ok || p.revision != rev {
			a.pending[k] = pendingRev{revision: rev, since: a.now()}
		}
	}
}

// recordSets records the set revisions now enforced.
func (a *Agent) recordSets(in *inputs) {
	a.sets = map[setKey]*setInfo{}
	for k, si := range in.sets {
		a.sets[k] = si
	}
	a.pending = nil
	if a.Metrics != nil {
		a.Metrics.EnforcementLag.Reset()
		for k, si := range a.sets {
			if si.revision != "" {
				a.Metrics.EnforcementLag.WithLabelValues(k.namespace, k.name).Set(0)
			}
		}
	}
}

// Synced reports whether a sync has written (or adopted) the desired
// state.
func (a *Agent) Synced() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.net != nil && a.net.desired != nil
}

// mergeErrors sorts endpoint errors and keeps one per endpoint (the
// first reason; the messages joined), as NodeEnforcement lists them by
// endpoint.
func mergeErrors(errs []v1.EndpointError) []v1.EndpointError {
	slices.SortStableFunc(errs, func(x, y v1.EndpointError) int { return strings.Compare(x.Endpoint, y.Endpoint) })
	var out []v1.EndpointError
	for _, e := range errs {
		if n := len(out); n > 0 && out[n-1].Endpoint == e.Endpoint {
			out[n-1].Message = truncate(out[n-1].Message+"; "+e.Reason+": "+e.Message, 1024)
			continue
		}
		e.Message = truncate(e.Message, 1024)
		out = append(out, e)
	}
	return out
}
