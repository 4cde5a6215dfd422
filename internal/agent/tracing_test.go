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

// Unit tests of the tracing subsystem against a fake tracing datapath, a
// fake API client and cgroup and proc trees of the test's own: they run
// without root. tracing_root_test.go runs the real tracing datapath.

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"golang.org/x/sys/unix"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	v1 "github.com/palisade-dev/palisade/api/v1alpha1"
	"github.com/palisade-dev/palisade/internal/metrics"
	"github.com/palisade-dev/palisade/internal/render"
	"github.com/palisade-dev/palisade/internal/tracing"
)

var update = flag.Bool("update", false, "rewrite the golden files of testdata/")

// fakeTracing keeps units in memory, as the tracing datapath would:
// Apply replaces the set of units; a unit whose load fails keeps its
// previous version.
type fakeTracing struct {
	units map[string]tracing.Policy
	// hooks, per unit key, are the hook results Apply reports (every
	// hook loaded when absent); fail makes a unit's Apply fail.
	hooks     map[string][]tracing.HookResult
	fail      map[string]error
	applies   int
	protected [][]uint32
	// protectErr makes SetProtected fail.
	protectErr error
	drifts     []tracing.Drift
	stats      tracing.Stats
	events     []tracing.Event
}

func newFakeTracing() *fakeTracing {
	return &fakeTracing{units: map[string]tracing.Policy{}, hooks: map[string][]tracing.HookResult{}, fail: map[string]error{}}
}

func (k *fakeTracing) Apply(_ context.Context, ps []tracing.Policy) []tracing.Result {
	k.applies++
	keep := map[string]bool{}
	var out []tracing.Result
	for _, p := range ps {
		keep[p.Key] = true
		if err := k.fail[p.Key]; err != nil {
			out = append(out, tracing.Result{Key: p.Key, Err: err, Hooks: k.hooks[p.Key]})
			continue
		}
		old, had := k.units[p.Key]
		k.units[p.Key] = p
		r := tracing.Result{Key: p.Key, Loaded: true, Adopted: had && reflect.DeepEqual(old, p), Hooks: k.hooks[p.Key]}
		for _, h := range r.Hooks {
			if h.State != tracing.HookLoaded {
				r.Loaded = false
			}
		}
		out = append(out, r)
	}
	for key := range k.units {
		if !keep[key] {
			delete(k.units, key)
		}
	}
	return out
}

func (k *fakeTracing) Verify(context.Context) []tracing.Drift { return k.drifts }

func (k *fakeTracing) ReadEvents(ctx context.Context, fn func(tracing.Event)) error {
	for _, ev := range k.events {
		fn(ev)
	}
	<-ctx.Done()
	return ctx.Err()
}

func (k *fakeTracing) Stats() (tracing.Stats, error) { return k.stats, nil }

func (k *fakeTracing) SetProtected(pids []uint32) error {
	if k.protectErr != nil {
		return k.protectErr
	}
	k.protected = append(k.protected, slices.Clone(pids))
	return nil
}

func (k *fakeTracing) Close() error { return nil }

// tracingFixture is the agent's fixture with a fake tracing datapath,
// and cgroup and proc trees of the test's own.
type tracingFixture struct {
	*fixture
	tk      *fakeTracing
	cgroups string
	proc    string
}

func newTracingFixture(t *testing.T) *tracingFixture {
	f := &tracingFixture{fixture: newFixture(t), tk: newFakeTracing(), cgroups: t.TempDir(), proc: t.TempDir()}
	f.a.Tracing, f.a.CgroupRoot, f.a.ProcRoot = f.tk, f.cgroups, f.proc
	f.create(&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "ops"}})
	f.process(1, "/sbin/init", "mnt:[1]")
	return f
}

// tpod creates a running pod ns/name with app=app on node, with uid.
func (f *tracingFixture) tpod(node, ns, name, app string, uid types.UID) {
	f.t.Helper()
	f.create(&corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, UID: uid, Labels: map[string]string{"app": app}},
		Spec: corev1.PodSpec{NodeName: node}, Status: corev1.PodStatus{Phase: corev1.PodRunning}})
}

// cgroup creates the pod-level cgroup directory of uid at rel (kubelet's
// layout, below the root) and returns its id.
func (f *tracingFixture) cgroup(rel string) uint64 {
	f.t.Helper()
	p := filepath.Join(f.cgroups, rel)
	if err := os.MkdirAll(p, 0o755); err != nil {
		f.t.Fatal(err)
	}
	var st syscall.Stat_t
	if err := syscall.Stat(p, &st); err != nil {
		f.t.Fatal(err)
	}
	return st.Ino
}

// process adds /proc/<pid> with its exe and mount namespace links.
func (f *tracingFixture) process(pid int, exe, mnt string) {
	f.t.Helper()
	dir := filepath.Join(f.proc, fmt.Sprint(pid))
	if err := os.MkdirAll(filepath.Join(dir, "ns"), 0o755); err != nil {
		f.t.Fatal(err)
	}
	if err := errors.Join(os.Symlink(exe, filepath.Join(dir, "exe")), os.Symlink(mnt, filepath.Join(dir, "ns", "mnt"))); err != nil {
		f.t.Fatal(err)
	}
}

// tracingPolicy creates or updates TracingPolicy ns/name (cluster-scoped
// when ns is empty) of set shop/demo at rev, whose revision renders total
// objects.
func (f *tracingFixture) tracingPolicy(ns, name, rev string, total int, spec string) {
	f.t.Helper()
	var o client.Object
	var s *v1.TracingPolicySpec
	if ns == "" {
		c := &v1.ClusterTracingPolicy{}
		o, s = c, &c.Spec
	} else {
		c := &v1.TracingPolicy{}
		o, s = c, &c.Spec
	}
	if err := yaml.UnmarshalStrict([]byte(spec), s); err != nil {
		f.t.Fatal(err)
	}
	o.SetName(name)
	o.SetNamespace(ns)
	o.SetLabels(map[string]string{render.LabelPolicySetName: "demo", render.LabelPolicySetNamespace: "shop"})
	o.SetAnnotations(map[string]string{render.AnnotationRevision: rev, render.AnnotationRevisionObjects: fmt.Sprint(total),
		render.AnnotationRuleSources: `{"spec.lsmhooks[0]": "shop/files.cue:12:3", "spec.kprobes[0].selectors[1]": "shop/files.cue:20:5", "bad": 7}`})
	ctx := context.Background()
	old := o.DeepCopyObject().(client.Object)
	if err := f.c.Get(ctx, client.ObjectKeyFromObject(o), old); err == nil {
		o.SetResourceVersion(old.GetResourceVersion())
		if err := f.c.Update(ctx, o); err != nil {
			f.t.Fatal(err)
		}
		return
	}
	f.create(o)
}

func (f *tracingFixture) delete(o client.Object) {
	f.t.Helper()
	if err := f.c.Delete(context.Background(), o); err != nil {
		f.t.Fatal(err)
	}
}

func (f *tracingFixture) mustSync() {
	f.t.Helper()
	if _, err := f.sync(); err != nil {
		f.t.Fatal(err)
	}
}

// object returns the status of one object in the set's entry.
func (f *tracingFixture) object(kind, ns, name string) (v1.ObjectEnforcement, v1.PolicySetEnforcement) {
	f.t.Helper()
	sets := f.status().Status.PolicySets
	if len(sets) != 1 {
		f.t.Fatalf("policy sets: %+v", sets)
	}
	for _, o := range sets[0].Objects {
		if o.Kind == kind && o.Namespace == ns && o.Name == name {
			return o, sets[0]
		}
	}
	return v1.ObjectEnforcement{Kind: kind, Namespace: ns, Name: name, State: v1.ObjectEnforced}, sets[0]
}

const (
	uidA = "0a1b2c3d-0000-4000-8000-00000000000a"
	uidB = "0a1b2c3d-0000-4000-8000-00000000000b"
	uidC = "0a1b2c3d-0000-4000-8000-00000000000c"
	uidD = "0a1b2c3d-0000-4000-8000-00000000000d"
)

const denyShadow = `
podSelector: {matchLabels: {app: web}}
lsmhooks:
- hook: file_open
  args: [{index: 0, type: file}]
  selectors:
  - matchArgs: [{index: 0, operator: Equal, values: [/etc/shadow]}]
    matchActions: [{action: Deny}]
`

func TestTracingScopesPoliciesToTheirPodsCgroups(t *testing.T) {
	f := newTracingFixture(t)
	f.tpod(testNode, "shop", "web-0", "web", uidA)
	f.tpod(testNode, "shop", "web-1", "web", uidB)
	f.tpod(testNode, "shop", "db-0", "db", uidC)
	f.tpod("node-2", "shop", "web-2", "web", uidD) // another node's
	f.tpod(testNode, "ops", "web-9", "web", "0a1b2c3d-0000-4000-8000-0000000000ff")
	// cgroupfs and systemd drivers' layouts.
	a := f.cgroup("kubepods/burstable/pod" + uidA)
	f.cgroup("kubepods/burstable/pod" + uidA + "/0123abcd") // a container
	b := f.cgroup("kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod" + strings.ReplaceAll(uidB, "-", "_") + ".slice")
	c := f.cgroup("kubepods/pod" + uidC)
	f.cgroup("kubepods/pod" + uidD) // not this node's pod, though its directory is here
	f.cgroup("kubepods/pod0a1b2c3d-0000-4000-8000-0000000000ff")
	f.tracingPolicy("shop", "no-shadow", "r1", 4, denyShadow)
	f.tracingPolicy("shop", "all-of-shop", "r1", 4, "lsmhooks: [{hook: bprm_check_security}]")
	f.tracingPolicy("", "web-everywhere", "r1", 4, "podSelector: {matchLabels: {app: web}}\nlsmhooks: [{hook: bprm_check_security}]")
	f.tracingPolicy("", "every-process", "r1", 4, "lsmhooks: [{hook: bprm_check_security}]")
	f.mustSync()

	ops := f.tk.units["ClusterTracingPolicy web-everywhere"].Cgroups
	for key, want := range map[string][]uint64{
		"TracingPolicy shop/no-shadow":   sorted(a, b),
		"TracingPolicy shop/all-of-shop": sorted(a, b, c),
	} {
		u, ok := f.tk.units[key]
		if !ok {
			t.Fatalf("%s not applied; units: %v", key, slices.Collect(maps.Keys(f.tk.units)))
		}
		if u.AllProcesses || !reflect.DeepEqual(u.Cgroups, want) {
			t.Errorf("%s: cgroups %v (all processes %v), want %v", key, u.Cgroups, u.AllProcesses, want)
		}
		if u.Revision != "r1" || u.Sources["spec.lsmhooks[0]"] != "shop/files.cue:12" || u.Sources["spec.kprobes[0].selectors[1]"] != "shop/files.cue:20" {
			t.Errorf("%s: revision %q, sources %v", key, u.Revision, u.Sources)
		}
	}
	if len(ops) != 3 || !slices.Contains(ops, a) || !slices.Contains(ops, b) {
		t.Errorf("ClusterTracingPolicy web-everywhere: cgroups %v, want web-0's, web-1's and ops/web-9's", ops)
	}
	if u := f.tk.units["ClusterTracingPolicy every-process"]; !u.AllProcesses {
		t.Errorf("ClusterTracingPolicy every-process: %+v, want every process", u)
	}
	if u := f.tk.units["TracingPolicy shop/no-shadow"]; len(u.Spec.LSMHooks) != 1 || u.Spec.LSMHooks[0].Hook != "file_open" {
		t.Errorf("the spec is not passed as written: %+v", u.Spec)
	}
	if o, s := f.object("TracingPolicy", "shop", "no-shadow"); o.State != v1.ObjectEnforced || s.Enforced != 4 {
		t.Errorf("no-shadow: %+v; set %+v", o, s)
	}
	if c := f.condition(v1.TracingEnforcedCondition); c.Status != metav1.ConditionTrue {
		t.Errorf("TracingEnforced: %s %s: %s", c.Status, c.Reason, c.Message)
	}
}

func TestTracingReportsAndRetriesPodsWithoutCgroup(t *testing.T) {
	f := newTracingFixture(t)
	f.tpod(testNode, "shop", "web-0", "web", uidA)
	f.tpod(testNode, "shop", "web-1", "web", uidB)
	a := f.cgroup("kubepods/pod" + uidA)
	f.tracingPolicy("shop", "no-shadow", "r1", 1, denyShadow)
	res, err := f.sync()
	if err != nil {
		t.Fatal(err)
	}
	if res.RequeueAfter == 0 {
		t.Error("a pod without cgroup is not retried")
	}
	if got := f.tk.units["TracingPolicy shop/no-shadow"].Cgroups; !reflect.DeepEqual(got, []uint64{a}) {
		t.Errorf("cgroups %v, want web-0's %d", got, a)
	}
	o, s := f.object("TracingPolicy", "shop", "no-shadow")
	if o.State != v1.ObjectPartial || o.Reason != reasonCgroupNotFound || !strings.Contains(o.Message, "1 of the 2 pods") || !strings.Contains(o.Message, "shop/web-1") {
		t.Errorf("no-shadow: %+v", o)
	}
	if s.Partial != 1 {
		t.Errorf("set: %+v", s)
	}
	if c := f.condition(v1.TracingEnforcedCondition); c.Status != metav1.ConditionFalse || c.Reason != v1.PartiallyEnforcedReason {
		t.Errorf("TracingEnforced: %s %s: %s", c.Status, c.Reason, c.Message)
	}

	// The cgroup appears: the retry finds it.
	b := f.cgroup("kubepods/pod" + uidB)
	if res, err = f.sync(); err != nil || res.RequeueAfter != 0 {
		t.Fatalf("sync: %v, %+v", err, res)
	}
	if got := f.tk.units["TracingPolicy shop/no-shadow"].Cgroups; !reflect.DeepEqual(got, sorted(a, b)) {
		t.Errorf("cgroups %v, want %v", got, sorted(a, b))
	}
	if o, _ := f.object("TracingPolicy", "shop", "no-shadow"); o.State != v1.ObjectEnforced {
		t.Errorf("no-shadow: %+v", o)
	}

	// No selected pod has a cgroup: nothing of it acts on this node.
	if err := os.Remove(filepath.Join(f.cgroups, "kubepods/pod"+uidA)); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(f.cgroups, "kubepods/pod"+uidB)); err != nil {
		t.Fatal(err)
	}
	f.mustSync()
	if got := f.tk.units["TracingPolicy shop/no-shadow"].Cgroups; len(got) != 0 {
		t.Errorf("cgroups %v, want none", got)
	}
	if o, _ := f.object("TracingPolicy", "shop", "no-shadow"); o.State != v1.ObjectNotEnforced || o.Reason != reasonCgroupNotFound {
		t.Errorf("no-shadow: %+v", o)
	}
}

func TestTracingStatusFromHookResults(t *testing.T) {
	f := newTracingFixture(t)
	f.tpod(testNode, "shop", "web-0", "web", uidA)
	f.cgroup("kubepods/pod" + uidA)
	const two = denyShadow + "kprobes: [{call: no_such_function}]\n"
	f.tracingPolicy("shop", "no-shadow", "r1", 1, two)
	key := "TracingPolicy shop/no-shadow"
	f.tk.hooks[key] = []tracing.HookResult{
		{Path: "spec.lsmhooks[0]", Attach: "lsm/file_open", State: tracing.HookLoaded},
		{Path: "spec.kprobes[0]", Attach: "fentry/no_such_function", State: tracing.HookNotFound, Message: "the kernel has no function no_such_function"},
	}
	f.mustSync()
	o, _ := f.object("TracingPolicy", "shop", "no-shadow")
	if o.State != v1.ObjectPartial || o.Reason != v1.HookUnavailableReason ||
		o.Message != "hook spec.kprobes[0] (fentry/no_such_function): HookNotFound: the kernel has no function no_such_function" {
		t.Errorf("partial: %+v", o)
	}

	// A verifier rejection: the hook's message carries the log's tail,
	// bounded.
	long := strings.Repeat("R1 invalid mem access 'scalar'\n", 200) + "processed 1000001 insns (limit 1000000)"
	f.tk.hooks[key] = []tracing.HookResult{
		{Path: "spec.lsmhooks[0]", Attach: "lsm/file_open", State: tracing.HookLoadError, Message: "load program: permission denied", VerifierLog: long},
		{Path: "spec.kprobes[0]", Attach: "fentry/no_such_function", State: tracing.HookNotFound},
	}
	f.mustSync()
	o, _ = f.object("TracingPolicy", "shop", "no-shadow")
	if o.State != v1.ObjectNotEnforced || o.Reason != v1.LoadFailedReason || !strings.Contains(o.Message, "limit 1000000") ||
		!strings.Contains(o.Message, "hook spec.kprobes[0]") || len(o.Message) > 2048 {
		t.Errorf("load error (%d bytes): %+v", len(o.Message), o)
	}

	// Every hook loads.
	delete(f.tk.hooks, key)
	f.mustSync()
	if o, _ := f.object("TracingPolicy", "shop", "no-shadow"); o.State != v1.ObjectEnforced {
		t.Errorf("loaded: %+v", o)
	}

	// Revision r2 fails to load: not enforced, and the status says r1
	// keeps running.
	f.tk.fail[key] = errors.New("create map selectors: no space left on device")
	f.tracingPolicy("shop", "no-shadow", "r2", 1, denyShadow)
	f.mustSync()
	o, _ = f.object("TracingPolicy", "shop", "no-shadow")
	if o.State != v1.ObjectNotEnforced || o.Reason != v1.DatapathErrorReason ||
		o.Message != "revision r2 could not be loaded: create map selectors: no space left on device; the previous version (revision r1) keeps running" {
		t.Errorf("unit error: %+v", o)
	}
	if got := f.tk.units[key].Revision; got != "r1" {
		t.Errorf("the kernel runs revision %q, want r1 kept", got)
	}
	if c := f.condition(v1.TracingEnforcedCondition); c.Status != metav1.ConditionFalse || !strings.Contains(c.Message, "r1") {
		t.Errorf("TracingEnforced: %s %s: %s", c.Status, c.Reason, c.Message)
	}
}

func TestTracingRemovalUnloads(t *testing.T) {
	f := newTracingFixture(t)
	f.tpod(testNode, "shop", "web-0", "web", uidA)
	f.cgroup("kubepods/pod" + uidA)
	f.tracingPolicy("shop", "no-shadow", "r1", 2, denyShadow)
	f.tracingPolicy("", "every-process", "r1", 2, "lsmhooks: [{hook: bprm_check_security}]")
	f.mustSync()
	if len(f.tk.units) != 2 {
		t.Fatalf("units: %v", slices.Collect(maps.Keys(f.tk.units)))
	}
	f.delete(&v1.ClusterTracingPolicy{ObjectMeta: metav1.ObjectMeta{Name: "every-process"}})
	f.tracingPolicy("shop", "no-shadow", "r2", 1, denyShadow)
	f.mustSync()
	if _, ok := f.tk.units["ClusterTracingPolicy every-process"]; ok || len(f.tk.units) != 1 {
		t.Errorf("units after removal: %v", slices.Collect(maps.Keys(f.tk.units)))
	}
}

// A set whose new revision the network subsystem cannot apply keeps the
// tracing objects of the revision the node enforces: one revision per
// set.
func TestTracingKeepsTheEnforcedRevision(t *testing.T) {
	f := newTracingFixture(t)
	f.pod("api", "api", "10.0.0.2", 2, false)
	f.tpod(testNode, "shop", "web-0", "web", uidA)
	f.cgroup("kubepods/pod" + uidA)
	f.policy("api", "r1", 2, allowFrontend)
	f.tracingPolicy("shop", "no-shadow", "r1", 2, denyShadow)
	f.mustSync()
	f.k.maxEndpoint = 0 // r2's network state cannot be written
	f.policy("api", "r2", 2, allowFrontend+"egress: [{toEndpoints: [{matchLabels: {app: db}}]}]\n")
	f.tracingPolicy("shop", "no-shadow", "r2", 2, "podSelector: {matchLabels: {app: web}}\nlsmhooks: [{hook: bprm_check_security}]")
	f.sync()
	u := f.tk.units["TracingPolicy shop/no-shadow"]
	if u.Revision != "r1" || len(u.Spec.LSMHooks) != 1 || u.Spec.LSMHooks[0].Hook != "file_open" {
		t.Errorf("the node runs %s of no-shadow (%+v), want r1's while r1 is the set's enforced revision", u.Revision, u.Spec.LSMHooks)
	}
	if sets := f.status().Status.PolicySets; len(sets) != 1 || sets[0].Revision != "r1" {
		t.Errorf("sets: %+v", sets)
	}
}

func TestTracingProtectsTheNodesProcesses(t *testing.T) {
	f := newTracingFixture(t)
	f.process(40, "/usr/bin/kubelet", "mnt:[1]")
	f.process(41, "/usr/bin/containerd-shim-runc-v2 (deleted)", "mnt:[1]")
	f.process(42, "/usr/bin/bash", "mnt:[1]")
	f.process(43, "/usr/bin/runc", "mnt:[77]") // a workload's binary named runc: not protected
	f.mustSync()
	self := uint32(os.Getpid())
	want := sorted64to32(1, 40, 41, uint64(self))
	if len(f.tk.protected) != 1 || !reflect.DeepEqual(f.tk.protected[0], want) {
		t.Fatalf("protected at start: %v, want %v", f.tk.protected, want)
	}
	// Every verify pass refreshes the list.
	f.process(44, "/usr/local/bin/containerd", "mnt:[1]")
	f.a.VerifyNow(context.Background())
	want = sorted64to32(1, 40, 41, 44, uint64(self))
	if n := len(f.tk.protected); n != 2 || !reflect.DeepEqual(f.tk.protected[n-1], want) {
		t.Errorf("protected after a verify pass: %v, want %v last", f.tk.protected, want)
	}
}

// Without the protected processes handed to the kernel, no unit loads,
// and no object counts as enforced.
func TestTracingLoadsNothingUnprotected(t *testing.T) {
	f := newTracingFixture(t)
	f.tk.protectErr = errors.New("update protected_pids: permission denied")
	f.tracingPolicy("", "every-process", "r1", 1, "lsmhooks: [{hook: bprm_check_security}]")
	res, _ := f.sync()
	if f.tk.applies != 0 || len(f.tk.units) != 0 {
		t.Errorf("%d applies, units %v; want none before the node's processes are protected", f.tk.applies, slices.Collect(maps.Keys(f.tk.units)))
	}
	if res.RequeueAfter == 0 {
		t.Error("the sync is not retried")
	}
	if o, _ := f.object("ClusterTracingPolicy", "", "every-process"); o.State != v1.ObjectNotEnforced || o.Reason != v1.DatapathErrorReason ||
		!strings.Contains(o.Message, "permission denied") {
		t.Errorf("every-process: %+v", o)
	}
	if c := f.condition(v1.TracingEnforcedCondition); c.Status != metav1.ConditionFalse || c.Reason != v1.DatapathErrorReason {
		t.Errorf("TracingEnforced: %s %s: %s", c.Status, c.Reason, c.Message)
	}
	f.tk.protectErr = nil
	f.mustSync()
	if o, _ := f.object("ClusterTracingPolicy", "", "every-process"); o.State != v1.ObjectEnforced || len(f.tk.units) != 1 {
		t.Errorf("every-process after the protection succeeded: %+v; units %v", o, slices.Collect(maps.Keys(f.tk.units)))
	}
}

func TestTracingDriftIsRecorded(t *testing.T) {
	f := newTracingFixture(t)
	f.tracingPolicy("", "every-process", "r1", 1, "lsmhooks: [{hook: bprm_check_security}]")
	f.mustSync()
	f.tk.drifts = []tracing.Drift{
		{Key: "ClusterTracingPolicy every-process", What: "link of spec.lsmhooks[0] detached"},
		{Key: "ClusterTracingPolicy every-process", What: "pin cgroups removed", Err: errors.New("pin: read-only file system")},
		{Key: "ClusterTracingPolicy every-process", What: "map selectors: 2 entries differ"},
	}
	f.a.VerifyNow(context.Background())
	ds := f.status().Status.Drifts
	if len(ds) != 3 {
		t.Fatalf("drifts: %+v", ds)
	}
	// Newest first.
	if ds[2].Kind != v1.KernelDriftProgram || !ds[2].Repaired || ds[2].What != "ClusterTracingPolicy every-process: link of spec.lsmhooks[0] detached" {
		t.Errorf("program drift: %+v", ds[2])
	}
	if ds[1].Kind != v1.KernelDriftPin || ds[1].Repaired || ds[1].Message != "pin: read-only file system" {
		t.Errorf("pin drift: %+v", ds[1])
	}
	if ds[0].Kind != v1.KernelDriftMapEntry {
		t.Errorf("map drift: %+v", ds[0])
	}
	if c := f.condition(v1.DriftedCondition); c.Status != metav1.ConditionTrue {
		t.Errorf("Drifted: %s %s: %s", c.Status, c.Reason, c.Message)
	}
}

func TestTracingOffReportsNotEnforced(t *testing.T) {
	f := newFixture(t)
	f.a.TracingOff = "the agent runs with --tracing=false"
	f.create(&corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "web-0", UID: uidA, Labels: map[string]string{"app": "web"}},
		Spec: corev1.PodSpec{NodeName: testNode}, Status: corev1.PodStatus{Phase: corev1.PodPending}})
	tf := &tracingFixture{fixture: f}
	tf.tracingPolicy("shop", "no-shadow", "r1", 1, denyShadow)
	tf.mustSync()
	o, _ := tf.object("TracingPolicy", "shop", "no-shadow")
	if o.State != v1.ObjectNotEnforced || o.Reason != v1.NotSupportedReason || !strings.Contains(o.Message, "--tracing=false") {
		t.Errorf("no-shadow: %+v", o)
	}
	if c := f.condition(v1.TracingEnforcedCondition); c.Status != metav1.ConditionFalse || c.Reason != v1.NotSupportedReason {
		t.Errorf("TracingEnforced: %s %s: %s", c.Status, c.Reason, c.Message)
	}
}

func TestTracingMetrics(t *testing.T) {
	f := newTracingFixture(t)
	reg := prometheus.NewRegistry()
	m, err := metrics.New(reg, "")
	if err != nil {
		t.Fatal(err)
	}
	f.a.Metrics = m
	f.tracingPolicy("", "every-process", "r1", 1, "lsmhooks: [{hook: bprm_check_security}]")
	f.tk.stats.Lost = map[string]uint64{"ringbuf full": 40} // before this agent: not its
	f.mustSync()
	f.a.VerifyNow(context.Background())
	f.tk.stats.Lost = map[string]uint64{"ringbuf full": 45, "decode": 2}
	f.a.VerifyNow(context.Background())
	f.tk.stats.Lost = map[string]uint64{"ringbuf full": 3, "decode": 2} // a unit reloaded: a new baseline
	f.a.VerifyNow(context.Background())
	f.tk.stats.Lost = map[string]uint64{"ringbuf full": 4, "decode": 2}
	f.a.VerifyNow(context.Background())
	if got := counter(t, m.TracingEventsLost.WithLabelValues("ringbuf full")); got != 6 {
		t.Errorf("lost (ringbuf full) = %v, want 5 + 1", got)
	}
	if got := counter(t, m.TracingEventsLost.WithLabelValues("decode")); got != 2 {
		t.Errorf("lost (decode) = %v, want 2", got)
	}

	ev := func(policy string, a v1.ActionType) tracing.Event { return tracing.Event{Policy: policy, Action: a} }
	f.tk.events = []tracing.Event{
		ev("ClusterTracingPolicy every-process", v1.ActionNotify), ev("ClusterTracingPolicy every-process", v1.ActionNotify),
		ev("TracingPolicy shop/no-shadow", v1.ActionDeny),
	}
	e := f.a.newTracingEvents(nil)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := e.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if got := counter(t, m.TracingEvents.WithLabelValues("ClusterTracingPolicy every-process", "Notify")); got != 2 {
		t.Errorf("events (every-process, Notify) = %v, want 2", got)
	}
	if got := counter(t, m.TracingEvents.WithLabelValues("TracingPolicy shop/no-shadow", "Deny")); got != 1 {
		t.Errorf("events (no-shadow, Deny) = %v, want 1", got)
	}
}

func TestTracingEventLines(t *testing.T) {
	f := newTracingFixture(t)
	f.tpod(testNode, "shop", "web-0", "web", uidA)
	f.cgroup("kubepods/pod" + uidA)
	ctr := f.cgroup("kubepods/pod" + uidA + "/cri-containerd-0123.scope")
	f.tracingPolicy("shop", "no-shadow", "r1", 1, denyShadow)
	f.mustSync()
	ret := int64(-13)
	at := time.Date(2026, 12, 7, 5, 30, 0, 123456789, time.UTC)
	f.tk.events = []tracing.Event{{
		Time: at, Policy: "TracingPolicy shop/no-shadow", HookPath: "spec.lsmhooks[0]", Attach: "lsm/file_open", Selector: 0,
		Action: v1.ActionDeny, Taken: true,
		Process: tracing.Process{PID: 4242, TID: 4242, Binary: "/usr/bin/cat", Args: []string{"cat", "/etc/shadow"}, UID: 1000, CgroupID: ctr},
		Parent: tracing.Process{PID: 4200, TID: 4200, Binary: "/usr/bin/dash", Args: []string{"/bin/sh", "-c", "cat /etc/shadow; exit 0"},
			UID: 1000, CgroupID: ctr},
		Args:   []tracing.ArgValue{{Index: 0, Type: v1.ArgType("file"), Value: "/etc/shadow"}},
		Return: &ret, Revision: "r1", Source: "shop/files.cue:12",
	}, {
		Time: at.Add(time.Millisecond), Policy: "TracingPolicy shop/no-shadow", HookPath: "spec.lsmhooks[0]", Attach: "lsm/file_open",
		Action: v1.ActionDeny, Suppressed: "protected process",
		Process: tracing.Process{PID: 1, TID: 1, Binary: "/sbin/init", Args: []string{"/sbin/init", "splash", "x-cut-at-the-bou"},
			ArgsTruncated: true, CgroupID: 1},
		Args:     []tracing.ArgValue{{Index: 0, Label: "path", Type: v1.ArgType("file"), Value: "/etc/<shadow>"}},
		Revision: "r1",
	}}
	var buf bytes.Buffer
	e := f.a.newTracingEvents(&buf)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := e.Start(ctx); err != nil {
		t.Fatal(err)
	}
	// The container's cgroup id varies: the golden file names it CTR.
	got := strings.ReplaceAll(buf.String(), fmt.Sprintf(`"cgroup":%d,`, ctr), `"cgroup":CTR,`)
	golden := filepath.Join("testdata", "tracing-events.jsonl")
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if got != string(want) {
		t.Errorf("event lines:\n%s\nwant (%s):\n%s", got, golden, want)
	}
}

func TestPodUIDOfCgroup(t *testing.T) {
	for name, want := range map[string]types.UID{
		"pod" + uidA: uidA,
		"kubepods-burstable-pod" + strings.ReplaceAll(uidB, "-", "_") + ".slice": uidB,
		"kubepods-pod" + strings.ReplaceAll(uidC, "-", "_") + ".slice":           uidC,
		"podman":                    "",
		"kubepods-burstable.slice":  "",
		"pods.slice":                "",
		"pod" + uidA + "x":          "",
		"cri-containerd-0123.scope": "",
	} {
		got, ok := podUIDOfCgroup(name)
		if got != want || ok != (want != "") {
			t.Errorf("podUIDOfCgroup(%q) = %q, %v; want %q", name, got, ok, want)
		}
	}
}

func sorted(ids ...uint64) []uint64 {
	slices.Sort(ids)
	return ids
}

func sorted64to32(ids ...uint64) []uint32 {
	out := make([]uint32, len(ids))
	for i, id := range ids {
		out[i] = uint32(id)
	}
	slices.Sort(out)
	return out
}

// counter reads one counter's value.
func counter(t *testing.T, c prometheus.Counter) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}

func TestDetectCgroupRoot(t *testing.T) {
	if _, err := DetectCgroupRoot(t.TempDir()); err == nil || !strings.Contains(err.Error(), "no cgroup v2 hierarchy") {
		t.Errorf("a plain directory: %v, want an error", err)
	}
	var st syscall.Statfs_t
	if err := syscall.Statfs("/sys/fs/cgroup/unified", &st); err == nil && st.Type == 0x63677270 {
		if got, err := DetectCgroupRoot("/sys/fs/cgroup"); err != nil || got != "/sys/fs/cgroup/unified" {
			t.Errorf("hybrid layout: %q, %v; want /sys/fs/cgroup/unified", got, err)
		}
		return
	}
	if err := syscall.Statfs("/sys/fs/cgroup", &st); err == nil && st.Type == 0x63677270 {
		if got, err := DetectCgroupRoot("/sys/fs/cgroup"); err != nil || got != "/sys/fs/cgroup" {
			t.Errorf("pure v2 layout: %q, %v; want /sys/fs/cgroup", got, err)
		}
		return
	}
	t.Skip("this machine mounts no cgroup v2 hierarchy under /sys/fs/cgroup")
}

// On the machine's cgroup v2 hierarchy, the id the walk reads (the
// directory's inode) is the kernel's cgroup id: the 8 bytes of the
// directory's file handle, as BPF programs see it.
func TestCgroupIDIsTheKernels(t *testing.T) {
	root, err := DetectCgroupRoot(DefaultCgroupBase)
	if err != nil {
		t.Skip(err)
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root to create a cgroup")
	}
	dir, err := os.MkdirTemp(root, "palisade-agent-unit-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Remove(dir) })
	pod := filepath.Join(dir, "pod"+uidA)
	if err := os.Mkdir(pod, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Remove(pod) })
	idx, err := scanCgroups(dir)
	if err != nil {
		t.Fatal(err)
	}
	h, _, err := unix.NameToHandleAt(unix.AT_FDCWD, pod, 0)
	if err != nil {
		t.Fatal(err)
	}
	b := h.Bytes()
	if len(b) != 8 {
		t.Fatalf("file handle of %s: %d bytes, want 8", pod, len(b))
	}
	if want, got := binary.NativeEndian.Uint64(b), idx.pods[uidA].id; got != want {
		t.Errorf("the walk's id of %s is %d, the kernel's cgroup id %d", pod, got, want)
	}
}

// The kinds of the drifts the tracing datapath reports, by its words.
func TestTracingDriftKind(t *testing.T) {
	for what, want := range map[string]v1.KernelDriftKind{
		"map selectors was unpinned; pinned again":                           v1.KernelDriftPin,
		"the unit's pins were removed; reloaded":                             v1.KernelDriftPin,
		"spec.lsmhooks[0]: link was detached or unpinned; attached again":    v1.KernelDriftProgram,
		"process tracking was detached or unpinned: track_exec":              v1.KernelDriftProgram,
		"spec.kprobes[1]: link was detached and could not be attached again": v1.KernelDriftProgram,
		"map vals_str; rewritten":                                            v1.KernelDriftMapEntry,
		"scope: 2 cgroups differed; rewritten":                               v1.KernelDriftMapEntry,
		"maps":                                                               v1.KernelDriftMapEntry,
		"verify":                                                             v1.KernelDriftProgram,
	} {
		if got := tracingDriftKind(what); got != want {
			t.Errorf("%q: %s, want %s", what, got, want)
		}
	}
}

// A tracing policy whose nodeSelector does not select the node loads
// nothing there, is not counted as the node's, and the node says it
// skipped it; one that selects the node loads as usual. When the node's
// label changes, the skipped policy loads.
func TestTracingSkipsPoliciesOfOtherNodes(t *testing.T) {
	f := newTracingFixture(t)
	f.tpod(testNode, "shop", "web-0", "web", uidA)
	f.cgroup("kubepods/pod" + uidA)
	f.tracingPolicy("", "gpu-nodes", "r1", 3, "nodeSelector: {matchLabels: {gpu: \"true\"}}\nlsmhooks: [{hook: bprm_check_security}]")
	f.tracingPolicy("", "this-node", "r1", 3, "nodeSelector: {matchLabels: {kubernetes.io/hostname: "+testNode+"}}\nlsmhooks: [{hook: bprm_check_security}]")
	f.tracingPolicy("shop", "no-shadow", "r1", 3, denyShadow)
	f.mustSync()

	if _, ok := f.tk.units["ClusterTracingPolicy gpu-nodes"]; ok {
		t.Errorf("gpu-nodes loaded on a node without gpu=true; units: %v", slices.Collect(maps.Keys(f.tk.units)))
	}
	if _, ok := f.tk.units["ClusterTracingPolicy this-node"]; !ok {
		t.Errorf("this-node not loaded; units: %v", slices.Collect(maps.Keys(f.tk.units)))
	}
	c := f.condition(v1.TracingEnforcedCondition)
	if c.Status != metav1.ConditionTrue || !strings.Contains(c.Message, "skipped by nodeSelector: ClusterTracingPolicy gpu-nodes") {
		t.Errorf("TracingEnforced: %s %s: %q, want true, naming gpu-nodes as skipped", c.Status, c.Reason, c.Message)
	}
	if _, s := f.object("ClusterTracingPolicy", "", "gpu-nodes"); s.Enforced != 2 {
		t.Errorf("set: %+v, want the node's 2 objects enforced (gpu-nodes is not the node's)", s)
	}

	var n corev1.Node
	if err := f.c.Get(context.Background(), client.ObjectKey{Name: testNode}, &n); err != nil {
		t.Fatal(err)
	}
	n.Labels["gpu"] = "true"
	if err := f.c.Update(context.Background(), &n); err != nil {
		t.Fatal(err)
	}
	f.mustSync()
	if _, ok := f.tk.units["ClusterTracingPolicy gpu-nodes"]; !ok {
		t.Errorf("gpu-nodes not loaded after the node got gpu=true; units: %v", slices.Collect(maps.Keys(f.tk.units)))
	}
	if c := f.condition(v1.TracingEnforcedCondition); strings.Contains(c.Message, "skipped") {
		t.Errorf("TracingEnforced still names a skipped policy: %q", c.Message)
	}
}

// Where PID 1's mount namespace cannot be read, processes of protected
// binaries are protected in every mount namespace: the kubelet and the
// runtime stay out of reach, a workload named runc is shielded too.
func TestTracingProtectsByNameWithoutPID1sNamespace(t *testing.T) {
	f := newTracingFixture(t)
	if err := os.Remove(filepath.Join(f.proc, "1", "ns", "mnt")); err != nil {
		t.Fatal(err)
	}
	f.process(40, "/usr/bin/kubelet", "mnt:[1]")
	f.process(42, "/usr/bin/bash", "mnt:[1]")
	f.process(43, "/usr/bin/runc", "mnt:[77]")
	f.mustSync()
	want := sorted64to32(1, 40, 43, uint64(os.Getpid()))
	if len(f.tk.protected) != 1 || !reflect.DeepEqual(f.tk.protected[0], want) {
		t.Fatalf("protected: %v, want %v", f.tk.protected, want)
	}
	if c := f.condition(v1.TracingEnforcedCondition); c.Status != metav1.ConditionTrue {
		t.Errorf("TracingEnforced: %s %s: %s", c.Status, c.Reason, c.Message)
	}
}
