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
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "github.com/palisade-dev/palisade/api/v1alpha1"
	"github.com/palisade-dev/palisade/internal/datapath"
	"github.com/palisade-dev/palisade/internal/engine"
	"github.com/palisade-dev/palisade/internal/metrics"
)

// Defaults of the agent's timing.
const (
	DefaultVerifyInterval = 10 * time.Second
	DefaultDriftWindow    = 5 * time.Minute
)

// Links finds the host-side interface of a local workload address.
type Links interface {
	// Interface returns the index and name of the host interface that
	// leads to addr, which must be a workload's own interface (a veth),
	// not a route through a gateway.
	Interface(addr netip.Addr) (int, string, error)
}

// Agent is the node agent: it compiles the cluster's policies for its
// node, keeps the kernel equal to the result, and reports on its node's
// NodeEnforcement. Sync and Verify are serialized.
type Agent struct {
	Client   client.Client
	Datapath *datapath.Datapath
	Node     string
	Labels   engine.LabelPolicy
	Links    Links
	// HostInterfaces are attached for the host firewall.
	HostInterfaces []string
	Metrics        *metrics.Metrics
	Recorder       events.EventRecorder
	VerifyInterval time.Duration
	// DriftWindow is how long a drift keeps Drifted=True.
	DriftWindow time.Duration
	Log         logr.Logger
	// Now returns the current time; nil means time.Now.
	Now func() time.Time

	mu sync.Mutex
	// desired is the map state the kernel must hold (the kernel keeps only
	// the L7 lists' IDs, which Apply and Compare treat so); nil until the
	// first sync.
	desired *engine.MapState
	// wanted are the interfaces Palisade's programs must be attached to,
	// by ifindex: the workload ("namespace/name") or "host:<name>".
	wanted  map[int]string
	sets    []v1.PolicySetEnforcement
	pending map[setKey]pendingRev
	errs    []v1.EndpointError
	drifts  []v1.KernelDrift
	repairs int64
	// syncErr is the last sync's error, verifyErr the last verify's.
	syncErr, verifyErr error
	syncReason         string
	lastVerified       time.Time
	lastCounters       datapath.Counters
	// trigger asks the verify loop for a pass now (link events).
	trigger chan struct{}
	neUID   types.UID
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

// Reconcile brings the kernel to what the cluster's objects say. Every
// watched object maps to the same request: one sync reads everything.
func (a *Agent) Reconcile(ctx context.Context, _ ctrl.Request) (ctrl.Result, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	err := a.sync(ctx)
	a.syncErr = err
	if rerr := a.report(ctx); rerr != nil {
		return ctrl.Result{}, errors.Join(err, rerr)
	}
	if err != nil {
		return ctrl.Result{RequeueAfter: 5 * time.Second}, nil
	}
	return ctrl.Result{}, nil
}

// sync compiles and applies. On any error the kernel keeps the previous
// generation.
func (a *Agent) sync(ctx context.Context) error {
	a.syncReason = ""
	t0 := time.Now()
	in, err := a.gather(ctx)
	if err != nil {
		a.syncReason = v1.DatapathErrorReason
		return err
	}
	t1 := time.Now()
	state, err := engine.Compile(in.ir, in.cluster, a.Node, in.ids)
	if err != nil {
		a.syncReason = v1.DatapathErrorReason
		return fmt.Errorf("compile: %w", err)
	}
	t2 := time.Now()
	defer func() {
		a.Log.V(1).Info("synced", "gather", t1.Sub(t0), "compile", t2.Sub(t1), "write", time.Since(t2),
			"policies", len(in.ir.Policies), "endpoints", len(in.cluster.Endpoints), "generation", a.Datapath.Generation())
	}()
	var errs []v1.EndpointError
	for _, l := range in.local {
		if l.pending {
			failClosed(state, l.ips)
			errs = append(errs, v1.EndpointError{Endpoint: l.id, Reason: "IdentityPending",
				Message: "no Identity is allocated for the workload's labels yet; its traffic is dropped until one is"})
		}
	}

	if err := a.applyState(ctx, state, in, &errs); err != nil {
		a.errs = mergeErrors(errs)
		a.notePending(in)
		return err
	}
	ifErrs, err := a.attach(in)
	a.errs = mergeErrors(append(errs, ifErrs...))
	a.recordSets(in)
	a.recordUsage()
	if err != nil {
		a.syncReason = v1.DatapathErrorReason
	}
	return err
}

// applyState writes state unless the kernel already holds it. On start
// that is adoption: a state pinned by the previous agent that equals the
// compiled one is kept as it is, without a new generation.
func (a *Agent) applyState(ctx context.Context, state *engine.MapState, in *inputs, errs *[]v1.EndpointError) error {
	cur := a.desired
	adopting := cur == nil
	if adopting {
		kernel, gen, err := a.Datapath.Read()
		if err == nil && gen > 0 {
			cur = kernel
		}
	}
	if cur != nil {
		if sameInKernel(state, cur) {
			if adopting {
				a.Log.Info("adopted the pinned datapath state", "generation", a.Datapath.Generation())
			}
			a.desired = state
			return nil
		}
		if adopting {
			a.Log.Info("the pinned datapath state differs from the cluster's; writing a new generation",
				"generation", a.Datapath.Generation(), "difference", describeDrifts(datapath.Diff(state, cur)))
		}
	}
	err := a.Datapath.Apply(ctx, state)
	var ce *datapath.CapacityError
	if !errors.As(err, &ce) {
		if err != nil {
			a.syncReason = v1.DatapathErrorReason
			return fmt.Errorf("apply: %w", err)
		}
		a.desired = state
		return nil
	}

	// A map would overflow: keep what is enforced, and fail closed for
	// the local workloads whose entries would change.
	a.syncReason = v1.MapFullReason
	base := cur
	if base == nil {
		base = &engine.MapState{IPCache: map[netip.Prefix]engine.Identity{}, Endpoints: map[netip.Addr]engine.EndpointEntry{}, Policy: map[engine.PolicyKey]engine.PolicyEntry{}}
	}
	fallback := base.Clone()
	for _, l := range in.local {
		changed := false
		for _, ip := range l.ips {
			if want, ok := state.Endpoints[ip]; ok && base.Endpoints[ip] != want {
				changed = true
			}
		}
		if !changed {
			continue
		}
		failClosed(fallback, l.ips)
		*errs = append(*errs, v1.EndpointError{Endpoint: l.id, Reason: v1.MapFullReason,
			Message: fmt.Sprintf("%v; the workload's traffic is dropped until the policy fits", ce)})
	}
	if ferr := a.Datapath.Apply(ctx, fallback); ferr != nil {
		return fmt.Errorf("%w; failing closed also failed: %w", ce, ferr)
	}
	a.desired = fallback
	return ce
}

// failClosed makes the workload addresses default-deny both ways with no
// policy: policy ID 0 has no entries (identities start at 1).
func failClosed(s *engine.MapState, ips []netip.Addr) {
	for _, ip := range ips {
		s.Endpoints[ip] = engine.EndpointEntry{Identity: engine.IdentityUnmanaged, PolicyID: 0,
			Flags: engine.IngressDefaultDeny | engine.EgressDefaultDeny}
	}
}

// sameInKernel reports whether a and b put the same entries in the
// kernel. L7 lists are not compared: the kernel holds only their IDs, which
// are in the policy entries (and a state read back has no lists).
func sameInKernel(a, b *engine.MapState) bool {
	d := engine.Diff(a, b)
	return d.Len() == len(d.L7)+len(d.L7Deleted)
}

// attach makes Palisade's programs run on every local workload's
// interface and on the host interfaces, and nowhere else.
func (a *Agent) attach(in *inputs) ([]v1.EndpointError, error) {
	var errs []v1.EndpointError
	wanted := map[int]string{}
	unresolved := map[string]bool{}
	for _, l := range in.local {
		ifindex, _, err := a.Links.Interface(l.ips[0])
		if err != nil {
			errs = append(errs, v1.EndpointError{Endpoint: l.id, Reason: "InterfaceNotFound", Message: err.Error()})
			unresolved[l.id] = true
			continue
		}
		wanted[ifindex] = l.id
	}
	var failed []error
	hostIfs := map[int]bool{}
	for _, name := range a.HostInterfaces {
		ifindex, err := interfaceIndex(name)
		if err != nil {
			failed = append(failed, err)
			continue
		}
		wanted[ifindex] = "host:" + name
		hostIfs[ifindex] = true
	}
	atts, err := a.Datapath.Attachments()
	if err != nil {
		return errs, err
	}
	have := map[int]bool{}
	for _, at := range atts {
		have[at.Ifindex] = true
	}
	for ifindex, who := range wanted {
		if have[ifindex] && (a.wanted[ifindex] == who) {
			continue
		}
		var err error
		if hostIfs[ifindex] {
			err = a.Datapath.AttachHost(ifindex)
		} else {
			err = a.Datapath.AttachWorkload(ifindex)
		}
		if err != nil {
			if !hostIfs[ifindex] {
				errs = append(errs, v1.EndpointError{Endpoint: who, Reason: v1.DatapathErrorReason, Message: err.Error()})
			}
			failed = append(failed, err)
			delete(wanted, ifindex)
		}
	}
	for ifindex := range have {
		if _, ok := wanted[ifindex]; ok {
			continue
		}
		// An interface that may belong to a workload whose route could not
		// be resolved this time keeps its programs: detaching would leave
		// the workload unenforced. Known to belong to no local workload (or
		// gone), it is detached.
		if who, known := a.wanted[ifindex]; known && unresolved[who] || !known && len(unresolved) > 0 {
			wanted[ifindex] = who
			continue
		}
		if err := a.Datapath.DetachWorkload(ifindex); err != nil {
			failed = append(failed, err)
		}
	}
	a.wanted = wanted
	return errs, errors.Join(failed...)
}

// notePending remembers when a revision first failed to be enforced, for
// the enforcement lag.
func (a *Agent) notePending(in *inputs) {
	if a.pending == nil {
		a.pending = map[setKey]pendingRev{}
	}
	enforced := map[setKey]string{}
	for _, s := range a.sets {
		enforced[setKey{s.Namespace, s.Name}] = s.Revision
	}
	for k, si := range in.sets {
		rev, ok := single(si.revisions)
		if !ok || rev == enforced[k] {
			continue
		}
		if p, ok := a.pending[k]; !ok || p.revision != rev {
			a.pending[k] = pendingRev{revision: rev, since: a.now()}
		}
	}
}

// recordSets records the set revisions now enforced.
func (a *Agent) recordSets(in *inputs) {
	gen := int64(a.Datapath.Generation())
	var sets []v1.PolicySetEnforcement
	for k, si := range in.sets {
		rev, ok := single(si.revisions)
		if !ok {
			// Objects of two revisions: the PolicySet is mid-apply; the
			// node enforces neither revision whole.
			continue
		}
		sets = append(sets, v1.PolicySetEnforcement{Namespace: k.namespace, Name: k.name, Revision: rev, Policies: si.policies, Generation: gen})
	}
	sort.Slice(sets, func(i, j int) bool {
		return sets[i].Namespace < sets[j].Namespace || sets[i].Namespace == sets[j].Namespace && sets[i].Name < sets[j].Name
	})
	a.sets = sets
	a.pending = nil
	if a.Metrics != nil {
		a.Metrics.EnforcementLag.Reset()
		for _, s := range sets {
			a.Metrics.EnforcementLag.WithLabelValues(s.Namespace, s.Name).Set(0)
		}
	}
}

func single(m map[string]bool) (string, bool) {
	if len(m) != 1 {
		return "", false
	}
	for k := range m {
		return k, true
	}
	return "", false
}

// recordUsage exports the fill of the maps.
func (a *Agent) recordUsage() {
	if a.Metrics == nil || a.desired == nil {
		return
	}
	for _, u := range a.Datapath.Usage(a.desired) {
		a.Metrics.MapEntries.WithLabelValues(u.Name).Set(float64(u.Entries))
		a.Metrics.MapCapacity.WithLabelValues(u.Name).Set(float64(u.MaxEntries))
	}
}

// wantedIfindexes returns the wanted interfaces in order.
func (a *Agent) wantedIfindexes() []int {
	return slices.Sorted(maps.Keys(a.wanted))
}

// Synced reports whether a sync has written (or adopted) the desired
// state.
func (a *Agent) Synced() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.desired != nil
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
