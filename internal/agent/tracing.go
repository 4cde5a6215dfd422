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
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"slices"
	"strings"

	"k8s.io/apimachinery/pkg/types"

	v1 "github.com/palisade-dev/palisade/api/v1alpha1"
	"github.com/palisade-dev/palisade/internal/render"
	"github.com/palisade-dev/palisade/internal/tracing"
)

// TracingKernel is the tracing datapath the tracing subsystem drives.
// *tracing.Manager implements it; the agent's unit tests use a fake, so
// that scoping, status, drift and events are tested without root.
type TracingKernel interface {
	// Apply brings the node's units to ps: units not in ps are unloaded,
	// the others loaded, updated or adopted. A unit that fails keeps its
	// previous version.
	Apply(ctx context.Context, ps []tracing.Policy) []tracing.Result
	// Verify compares the units with the kernel and repairs them.
	Verify(ctx context.Context) []tracing.Drift
	// ReadEvents calls fn for each event until ctx ends.
	ReadEvents(ctx context.Context, fn func(tracing.Event)) error
	Stats() (tracing.Stats, error)
	// SetProtected lists the processes no action may signal or deny.
	SetProtected(pids []uint32) error
	Close() error
}

var _ TracingKernel = (*tracing.Manager)(nil)

// Object reasons the tracing subsystem reports besides the API's.
const (
	// reasonCgroupNotFound: a pod the policy selects has no cgroup on
	// the node yet (or no longer), so the policy does not act on it.
	reasonCgroupNotFound = "CgroupNotFound"
)

// Bounds of what one hook's message may take of an object's status
// message (v1.ObjectEnforcement's 2048 bytes).
const (
	maxHookMessage = 256
	maxVerifierLog = 512
)

// tracingUnit is one policy object as the subsystem applies it.
type tracingUnit struct {
	obj    *policyObject
	policy tracing.Policy
	// missing are the selected pods whose cgroup was not found, and
	// selected how many pods the policy selects on the node.
	missing  []podName
	selected int
}

// tracingSubsystem runs the node's TracingPolicies and
// ClusterTracingPolicies: one tracing unit per object, scoped to the
// cgroups of the pods it selects on this node.
type tracingSubsystem struct {
	a  *Agent
	k  TracingKernel
	cg *cgroupResolver
	// procRoot and self find the processes to protect.
	procRoot string
	self     int

	units   []*tracingUnit
	results map[string]tracing.Result
	// running is, per unit key, the revision of the version the kernel
	// runs (the last one that loaded), for what to say when an update
	// fails.
	running map[string]string
	// syncErr is an error of the whole sync (no unit applied);
	// protectErr the last SetProtected's.
	syncErr, protectErr error
	protected           []uint32
	// lost is the kernel's lost-event counters at the last count, by
	// reason; counted is whether there was one.
	lost    map[string]uint64
	counted bool
}

func newTracingSubsystem(a *Agent) *tracingSubsystem {
	return &tracingSubsystem{a: a, k: a.Tracing, cg: newCgroupResolver(a.CgroupRoot),
		procRoot: cmp.Or(a.ProcRoot, "/proc"), self: os.Getpid(), running: map[string]string{}}
}

func (t *tracingSubsystem) Name() string { return "tracing" }

// Sync protects the node's own processes, scopes every tracing object to
// its pods' cgroups, and applies them as units.
func (t *tracingSubsystem) Sync(ctx context.Context, in *inputs) error {
	t.syncErr = nil
	if t.protected == nil {
		// Before any unit loads: no action may ever hit these.
		if err := t.protect(); err != nil {
			t.syncErr = err
			return err
		}
	}
	names := make(map[types.UID]podName, len(in.pods))
	for _, p := range in.pods {
		names[p.uid] = podName{p.namespace, p.name}
	}
	if err := t.cg.scan(names); err != nil {
		t.syncErr = err
		return err
	}
	var units []*tracingUnit
	for _, o := range t.tracingObjects(in) {
		u, err := t.unit(o, in)
		if err != nil {
			t.syncErr = err
			return err
		}
		units = append(units, u)
	}
	ps := make([]tracing.Policy, len(units))
	for i, u := range units {
		ps[i] = u.policy
	}
	results := map[string]tracing.Result{}
	for _, r := range t.k.Apply(ctx, ps) {
		results[r.Key] = r
	}
	if t.results == nil {
		adopted := 0
		for _, r := range results {
			if r.Adopted {
				adopted++
			}
		}
		t.a.Log.Info("tracing units applied", "units", len(units), "adopted", adopted)
	}
	t.units, t.results = units, results
	for k := range t.running {
		if _, ok := results[k]; !ok {
			delete(t.running, k) // unloaded
		}
	}
	for _, u := range units {
		if r, ok := results[u.policy.Key]; ok && r.Err == nil {
			t.running[u.policy.Key] = u.policy.Revision
		}
	}
	return nil
}

// tracingObjects are the tracing objects to run: those of the inputs,
// except that a PolicySet whose new revision the network subsystem could
// not apply keeps the tracing objects of the revision the node enforces,
// so the node runs one revision per set.
func (t *tracingSubsystem) tracingObjects(in *inputs) []*policyObject {
	keep := map[setKey]*setInfo{}
	if t.a.net != nil && !t.a.net.applied() {
		for k, si := range in.sets {
			if cur, ok := t.a.sets[k]; ok && cur.revision != "" && cur.revision != si.revision {
				keep[k] = cur
			}
		}
	}
	var out []*policyObject
	for _, o := range in.objects {
		if !o.network() && o.skipped == "" && keep[o.set] == nil {
			out = append(out, o)
		}
	}
	for _, k := range slices.SortedFunc(maps.Keys(keep), func(x, y setKey) int {
		return cmp.Or(strings.Compare(x.namespace, y.namespace), strings.Compare(x.name, y.name))
	}) {
		for _, o := range keep[k].objects {
			if !o.network() && o.skipped == "" {
				out = append(out, o)
			}
		}
	}
	return out
}

// skippedNote names the tracing policies this node does not load because
// their nodeSelector does not select it ("" when there are none), for the
// TracingEnforced condition's message.
func skippedNote(in *inputs) string {
	if in == nil {
		return ""
	}
	var names []string
	for _, o := range in.objects {
		if !o.network() && o.skipped != "" {
			names = append(names, o.key.String())
		}
	}
	if len(names) == 0 {
		return ""
	}
	slices.Sort(names)
	more := ""
	if len(names) > 3 {
		more = fmt.Sprintf(", and %d more", len(names)-3)
		names = names[:3]
	}
	return fmt.Sprintf("; skipped by nodeSelector: %s%s", strings.Join(names, ", "), more)
}

// unit turns one object into its unit: spec, scope, revision and rule
// sources.
func (t *tracingSubsystem) unit(o *policyObject, in *inputs) (*tracingUnit, error) {
	u := &tracingUnit{obj: o}
	p := &u.policy
	p.Key = o.key.String()
	p.Revision = o.revision
	switch obj := o.obj.(type) {
	case *v1.TracingPolicy:
		p.Spec = *obj.Spec.DeepCopy()
	case *v1.ClusterTracingPolicy:
		p.Spec = *obj.Spec.DeepCopy()
	}
	p.Sources = ruleSources(o.obj.GetAnnotations()[render.AnnotationRuleSources])
	sel, all, err := tracingSelector(o)
	if err != nil {
		return nil, err
	}
	if all {
		p.AllProcesses = true
		return u, nil
	}
	p.Cgroups = []uint64{} // loaded, acting on no process until a pod is selected
	for _, pod := range in.pods {
		if !sel.Matches(pod.labels) {
			continue
		}
		u.selected++
		pc, ok := t.cg.pod(pod.uid)
		if !ok {
			u.missing = append(u.missing, podName{pod.namespace, pod.name})
			continue
		}
		p.Cgroups = append(p.Cgroups, pc.id)
	}
	slices.Sort(p.Cgroups)
	p.Cgroups = slices.Compact(p.Cgroups)
	return u, nil
}

// ruleSources reads the rule-sources annotation, {"spec.kprobes[0]":
// "file:line:col"}, into field path → "file:line". It is read
// tolerantly: events name the rule's line when it is there, and the
// policy runs all the same when it is not.
func ruleSources(ann string) map[string]string {
	if ann == "" {
		return nil
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(ann), &m); err != nil {
		return nil
	}
	out := make(map[string]string, len(m))
	for path, v := range m {
		pos, ok := v.(string)
		if !ok {
			continue
		}
		// file:line:col → file:line; anything else as written.
		if i := strings.LastIndexByte(pos, ':'); i > 0 && strings.Count(pos, ":") >= 2 {
			if _, err := fmt.Sscanf(pos[i+1:], "%d", new(int)); err == nil {
				pos = pos[:i]
			}
		}
		out[path] = pos
	}
	return out
}

// protect tells the kernel which processes no action may hit.
func (t *tracingSubsystem) protect() error {
	pids, err := protectedPIDs(t.procRoot, t.self)
	if err != nil {
		// Which processes are the kubelet's or the runtime's is unknown:
		// no unit loads (loaded ones keep the last list set).
		t.protectErr = fmt.Errorf("protect the node's processes: %w", err)
		return t.protectErr
	}
	if err := t.k.SetProtected(pids); err != nil {
		t.protectErr = fmt.Errorf("protect the node's processes: %w", err)
		return t.protectErr
	}
	t.protectErr = nil
	t.protected = pids
	return nil
}

// retry reports whether a selected pod's cgroup is missing: it may appear
// (a pod starting), so the sync should run again.
func (t *tracingSubsystem) retry() bool {
	return slices.ContainsFunc(t.units, func(u *tracingUnit) bool { return len(u.missing) > 0 })
}

// Verify refreshes the protected processes, checks the units against the
// kernel (the manager repairs what differs) and counts lost events.
func (t *tracingSubsystem) Verify(ctx context.Context, rec driftRecorder) error {
	var errs []error
	if err := t.protect(); err != nil {
		errs = append(errs, err)
	}
	for _, d := range t.k.Verify(ctx) {
		rec(tracingDriftKind(d.What), d.Key+": "+d.What, d.Err)
	}
	if err := t.countLost(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// tracingDriftKind classifies a unit's drift by what the tracing
// datapath says of it (tracing.Drift carries no kind): a pin removed, a
// program detached, or a map's (or the scope's) content changed.
func tracingDriftKind(what string) v1.KernelDriftKind {
	w := strings.ToLower(what)
	switch {
	case strings.Contains(w, "detached"):
		return v1.KernelDriftProgram
	case strings.Contains(w, "unpinned"), strings.Contains(w, "pins were removed"), strings.Contains(w, "pin "):
		return v1.KernelDriftPin
	case strings.Contains(w, "map"), strings.Contains(w, "scope"), strings.Contains(w, "rewritten"):
		return v1.KernelDriftMapEntry
	default:
		return v1.KernelDriftProgram
	}
}

// countLost adds the kernel's lost events since the last count to the
// metric. The first count reads the baseline only: the counters are the
// pinned units', and what was lost before this agent started is not its
// to count again. A counter that went down (a unit reloaded) restarts
// its baseline.
func (t *tracingSubsystem) countLost() error {
	st, err := t.k.Stats()
	if err != nil {
		return fmt.Errorf("read tracing stats: %w", err)
	}
	m := t.a.Metrics
	for reason, n := range st.Lost {
		if m != nil {
			m.TracingEventsLost.WithLabelValues(reason) // a series from the start
		}
		if was, ok := t.lost[reason]; (ok || t.counted) && n > was && m != nil {
			m.TracingEventsLost.WithLabelValues(reason).Add(float64(n - was))
		}
	}
	t.lost = st.Lost
	t.counted = true
	return nil
}

// Report states the condition and what each object does not enforce.
func (t *tracingSubsystem) Report(in *inputs, r *report) {
	if t.syncErr != nil {
		// Nothing was applied: no object counts as enforced as written.
		if in != nil {
			for _, o := range t.tracingObjects(in) {
				msg := "the tracing subsystem could not sync: " + t.syncErr.Error()
				if rev, ok := t.running[o.key.String()]; ok {
					msg += fmt.Sprintf("; the version of revision %s keeps running", cmp.Or(rev, "(none)"))
				}
				r.gap(o.key, gap{reason: v1.DatapathErrorReason, whole: true, message: truncate(msg, 2*maxHookMessage)})
			}
		}
		r.condition(v1.TracingEnforcedCondition, false, v1.DatapathErrorReason, "the node keeps its tracing units as they were: "+t.syncErr.Error())
		return
	}
	if t.units == nil && t.results == nil {
		r.condition(v1.TracingEnforcedCondition, false, v1.EnforcementPendingReason, "waiting for the first sync")
		return
	}
	var bad []string
	for _, u := range t.units {
		gaps := t.gaps(u)
		for _, g := range gaps {
			r.gap(u.obj.key, g)
		}
		if len(gaps) > 0 && u.obj.concerns {
			bad = append(bad, u.policy.Key+": "+gaps[0].message)
		}
	}
	skipped := skippedNote(in)
	switch {
	case len(bad) > 0:
		msg := fmt.Sprintf("%d of %d tracing units are not enforced as written; first: %s", len(bad), len(t.units), bad[0])
		r.condition(v1.TracingEnforcedCondition, false, v1.PartiallyEnforcedReason, msg+skipped)
	case t.protectErr != nil:
		r.condition(v1.TracingEnforcedCondition, false, v1.DatapathErrorReason, t.protectErr.Error()+skipped)
	case len(t.units) == 0:
		r.condition(v1.TracingEnforcedCondition, true, v1.EnforcementSucceededReason, "no tracing policy on this node"+skipped)
	default:
		r.condition(v1.TracingEnforcedCondition, true, v1.EnforcementSucceededReason,
			fmt.Sprintf("%d tracing units loaded, every hook attached", len(t.units))+skipped)
	}
}

// gaps says what the node does not enforce of u as written.
func (t *tracingSubsystem) gaps(u *tracingUnit) []gap {
	var out []gap
	res, ok := t.results[u.policy.Key]
	switch {
	case !ok:
		out = append(out, gap{reason: v1.DatapathErrorReason, whole: true,
			message: "the tracing datapath returned no result for the unit; whether it runs is unknown"})
	case res.Err != nil:
		msg := fmt.Sprintf("revision %s could not be loaded: %v", cmp.Or(u.policy.Revision, "(none)"), res.Err)
		if rev, ok := t.running[u.policy.Key]; ok {
			msg += fmt.Sprintf("; the previous version (revision %s) keeps running", cmp.Or(rev, "(none)"))
		} else {
			msg += "; no version of it runs"
		}
		reason := v1.DatapathErrorReason
		if slices.ContainsFunc(res.Hooks, func(h tracing.HookResult) bool { return h.State == tracing.HookLoadError }) {
			reason = v1.LoadFailedReason
		}
		out = append(out, gap{reason: reason, whole: true, message: truncate(msg, 2*maxHookMessage)})
		for _, h := range res.Hooks {
			if h.State != tracing.HookLoaded {
				out = append(out, gap{reason: hookReason(h.State), whole: true, message: hookMessage(h)})
			}
		}
	case !res.Loaded:
		loaded := 0
		for _, h := range res.Hooks {
			if h.State == tracing.HookLoaded {
				loaded++
			}
		}
		for _, h := range res.Hooks {
			if h.State != tracing.HookLoaded {
				out = append(out, gap{reason: hookReason(h.State), whole: loaded == 0, message: hookMessage(h)})
			}
		}
		if len(out) == 0 {
			out = append(out, gap{reason: v1.DatapathErrorReason, whole: true, message: "the unit is not loaded, and the tracing datapath names no hook that failed"})
		}
	}
	if len(u.missing) > 0 {
		names := make([]string, 0, min(len(u.missing), 4))
		for i, p := range u.missing {
			if i == 3 {
				names = append(names, fmt.Sprintf("and %d more", len(u.missing)-3))
				break
			}
			names = append(names, p.namespace+"/"+p.name)
		}
		out = append(out, gap{reason: reasonCgroupNotFound, whole: len(u.missing) == u.selected,
			message: fmt.Sprintf("%d of the %d pods it selects on this node have no cgroup under %s yet (%s): the policy does not act on their processes until it is found",
				len(u.missing), u.selected, t.cg.root, strings.Join(names, ", "))})
	}
	return out
}

// hookReason is the object reason of a hook that did not load.
func hookReason(s tracing.HookState) string {
	switch s {
	case tracing.HookLoadError:
		return v1.LoadFailedReason
	case tracing.HookNotFound, tracing.HookNotSupported:
		return v1.HookUnavailableReason
	}
	return v1.DatapathErrorReason
}

// hookMessage says what became of one hook, within maxHookMessage bytes
// plus the verifier log's last maxVerifierLog bytes.
func hookMessage(h tracing.HookResult) string {
	msg := "hook " + h.Path
	if h.Attach != "" {
		msg += " (" + h.Attach + ")"
	}
	msg += ": " + string(h.State)
	if h.Message != "" {
		msg += ": " + h.Message
	}
	msg = truncate(msg, maxHookMessage)
	if log := strings.TrimSpace(h.VerifierLog); log != "" {
		if len(log) > maxVerifierLog {
			log = "..." + log[len(log)-maxVerifierLog+3:]
		}
		msg += "; verifier log: " + log
	}
	return msg
}

// tracingOff stands in for tracing on a node that runs without it (the
// agent's --tracing=false, or a kernel without BPF-LSM and fentry): it
// loads nothing and reports every tracing object of the node as not
// enforced.
type tracingOff struct {
	why  string
	objs []objKey
}

func (t *tracingOff) Name() string { return "tracing" }

func (t *tracingOff) Sync(_ context.Context, in *inputs) error {
	t.objs = nil
	for _, o := range in.objects {
		if !o.network() && o.concerns {
			t.objs = append(t.objs, o.key)
		}
	}
	return nil
}

func (t *tracingOff) Verify(context.Context, driftRecorder) error { return nil }

func (t *tracingOff) Report(_ *inputs, r *report) {
	if len(t.objs) == 0 {
		r.condition(v1.TracingEnforcedCondition, true, v1.EnforcementSucceededReason, "no tracing policy on this node")
		return
	}
	msg := "the tracing policy's hooks and actions are not enforced: " + t.why
	for _, k := range t.objs {
		r.gap(k, gap{reason: v1.NotSupportedReason, whole: true, message: msg})
	}
	r.condition(v1.TracingEnforcedCondition, false, v1.NotSupportedReason,
		fmt.Sprintf("%d tracing objects are not enforced on this node (first: %s): %s", len(t.objs), t.objs[0], t.why))
}
