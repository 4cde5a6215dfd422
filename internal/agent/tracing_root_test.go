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

package agent_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/link"
	"github.com/go-logr/logr/testr"
	corev1 "k8s.io/api/core/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/yaml"

	v1 "github.com/palisade-dev/palisade/api/v1alpha1"
	"github.com/palisade-dev/palisade/internal/agent"
	"github.com/palisade-dev/palisade/internal/datapath"
	"github.com/palisade-dev/palisade/internal/render"
	"github.com/palisade-dev/palisade/internal/tracing"
)

// requireTracing skips unless the kernel has BTF and lets this process
// load a program of type typ (attached to attachTo, for an LSM program).
func requireTracing(t *testing.T, spec *ebpf.ProgramSpec) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to load eBPF programs")
	}
	if _, err := os.Stat("/sys/kernel/btf/vmlinux"); err != nil {
		t.Skip("needs kernel BTF (/sys/kernel/btf/vmlinux)")
	}
	spec.License = "GPL"
	spec.Instructions = asm.Instructions{asm.Mov.Imm(asm.R0, 0), asm.Return()}
	p, err := ebpf.NewProgram(spec)
	if err != nil {
		t.Skipf("needs the kernel to load %s programs; a trivial one fails: %v", spec.Type, err)
	}
	p.Close()
}

// podCgroup is a pod-level cgroup of the test's own, below a root of the
// test's own under the machine's cgroup v2 hierarchy.
type podCgroup struct {
	path string
	fd   int
}

// cgroupRoot makes the test's cgroup root.
func cgroupRoot(t *testing.T) string {
	t.Helper()
	root, err := agent.DetectCgroupRoot(agent.DefaultCgroupBase)
	if err != nil {
		t.Skip(err)
	}
	dir, err := os.MkdirTemp(root, "palisade-agent-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { removeCgroup(t, dir) })
	return dir
}

// removeCgroup kills what is left in a cgroup of the test's and removes it.
func removeCgroup(t *testing.T, dir string) {
	os.WriteFile(filepath.Join(dir, "cgroup.kill"), []byte("1"), 0)
	err := errors.New("not tried")
	for i := 0; i < 200 && err != nil && !errors.Is(err, os.ErrNotExist); i++ {
		if err = os.Remove(dir); err != nil {
			time.Sleep(10 * time.Millisecond) // the killed processes' exit
		}
	}
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Errorf("remove cgroup %s: %v", dir, err)
	}
}

// cgroupOf creates pod uid's cgroup (kubelet's cgroupfs layout) under root.
func cgroupOf(t *testing.T, root string, uid string) *podCgroup {
	t.Helper()
	dir := filepath.Join(root, "pod"+uid)
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	fd, err := syscall.Open(dir, syscall.O_RDONLY|syscall.O_DIRECTORY, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		syscall.Close(fd)
		removeCgroup(t, dir)
	})
	return &podCgroup{path: dir, fd: fd}
}

// runIn runs a command in cg (nil: the test's own cgroup) from its first
// instruction (clone into the cgroup) and returns its stdout, stderr and
// wait status.
func runIn(t *testing.T, cg *podCgroup, name string, args ...string) (string, string, syscall.WaitStatus) {
	t.Helper()
	cmd := exec.Command(name, args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if cg != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: cg.fd}
	}
	err := cmd.Run()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatalf("run %s: %v", name, err)
	}
	return out.String(), errb.String(), cmd.ProcessState.Sys().(syscall.WaitStatus)
}

// lockedBuffer is the events output, written by the agent's reader and
// read by the test.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// tracingPolicy applies TracingPolicy shop/name of set shop/demo at rev,
// whose revision renders total objects.
func (e *env) tracingPolicy(name, rev string, total int, spec string) {
	e.t.Helper()
	tp := &v1.TracingPolicy{}
	if err := yaml.UnmarshalStrict([]byte(spec), &tp.Spec); err != nil {
		e.t.Fatal(err)
	}
	tp.Name, tp.Namespace = name, "shop"
	tp.Labels = map[string]string{render.LabelPolicySetName: "demo", render.LabelPolicySetNamespace: "shop"}
	tp.Annotations = map[string]string{render.AnnotationRevision: rev, render.AnnotationRevisionObjects: fmt.Sprint(total),
		render.AnnotationRuleSources: `{"spec.lsmhooks[0].selectors[0]": "shop/tracing.cue:7:5", "spec.tracepoints[0].selectors[0]": "shop/tracing.cue:7:5"}`}
	e.create(tp)
}

// tracingEnv is a real agent with the real tracing datapath, a pod
// shop/web-0 (app=web) whose cgroup the test made, and a secret file.
type tracingEnv struct {
	*env
	r           *running
	cg          *podCgroup
	events      *lockedBuffer
	cat, secret string
	// tm is the tracing datapath of the running agent; pins its pin dir.
	tm   *tracing.Manager
	pins string
}

func newTracingEnv(t *testing.T) *tracingEnv {
	e := newEnv(t)
	root := cgroupRoot(t)
	te := &tracingEnv{env: e, events: &lockedBuffer{}, pins: filepath.Join(pinDir(t), "tracing")}
	te.openTracing()
	t.Cleanup(func() {
		te.tm.Apply(context.Background(), nil)
		te.tm.Close()
	})
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "web-0", Labels: map[string]string{"app": "web"}},
		Spec: corev1.PodSpec{NodeName: node, Containers: []corev1.Container{{Name: "c", Image: "none"}}}}
	e.create(pod)
	te.cg = cgroupOf(t, root, string(pod.UID))
	var err error
	te.secret = filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(te.secret, []byte("the secret\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if te.cat, err = exec.LookPath("cat"); err != nil {
		t.Skip(err)
	}
	if te.cat, err = filepath.EvalSymlinks(te.cat); err != nil {
		t.Fatal(err)
	}
	e.setup = func(_ ctrl.Manager, a *agent.Agent, _ *datapath.Datapath) {
		a.Tracing, a.CgroupRoot, a.TracingEvents = te.tm, root, te.events
	}
	te.r = e.start(datapath.Limits{}, time.Hour)
	return te
}

// openTracing opens the tracing datapath on the test's pin dir, as an
// agent does on start.
func (e *tracingEnv) openTracing() {
	e.t.Helper()
	tm, err := tracing.Open(tracing.Options{PinDir: e.pins, Log: testr.New(e.t)})
	if err != nil {
		e.t.Fatalf("tracing.Open: %v", err)
	}
	e.tm = tm
}

// restart stops the agent and closes its tracing datapath (the pins
// stay), calls down while no agent runs, then opens the tracing datapath
// again and starts a new agent.
func (e *tracingEnv) restart(down func()) {
	e.t.Helper()
	e.r.stop()
	if err := e.tm.Close(); err != nil {
		e.t.Fatal(err)
	}
	down()
	e.openTracing()
	e.r = e.start(datapath.Limits{}, time.Hour)
}

// programIDs lists the ids of the programs the tracing datapath's pinned
// links run: the same ids after a restart mean the programs were adopted,
// not loaded again.
func (e *tracingEnv) programIDs() []ebpf.ProgramID {
	e.t.Helper()
	var ids []ebpf.ProgramID
	err := filepath.WalkDir(e.pins, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		l, err := link.LoadPinnedLink(p, nil)
		if err != nil {
			return nil // a map's pin
		}
		defer l.Close()
		info, err := l.Info()
		if err != nil {
			return err
		}
		ids = append(ids, info.Program)
		return nil
	})
	if err != nil {
		e.t.Fatal(err)
	}
	slices.Sort(ids)
	return ids
}

// setEntry waits for shop/demo at rev with want objects enforced and
// returns its entry.
func (e *tracingEnv) setEntry(rev string, policies, enforced int) v1.PolicySetEnforcement {
	e.t.Helper()
	var entry v1.PolicySetEnforcement
	e.eventually("the tracing policies' status", func() error {
		ne := e.nodeEnforcement()
		if ne == nil {
			return errors.New("no NodeEnforcement")
		}
		for _, s := range ne.Status.PolicySets {
			if s.Namespace == "shop" && s.Name == "demo" && s.Revision == rev {
				if entry = s; s.Policies != int32(policies) || s.Enforced != int32(enforced) {
					return fmt.Errorf("set entry %+v", s)
				}
				return nil
			}
		}
		return fmt.Errorf("policySets = %+v; conditions %+v", ne.Status.PolicySets, ne.Status.Conditions)
	})
	return entry
}

// eventLine waits for the JSON line of an event of policy with action,
// and checks that it has each of want.
func (e *tracingEnv) eventLine(policy, action string, want ...string) {
	e.t.Helper()
	e.eventually("the "+action+" event's line", func() error {
		for _, l := range strings.Split(e.events.String(), "\n") {
			if strings.Contains(l, `"policy":"`+policy+`"`) && strings.Contains(l, `"action":"`+action+`","taken":true`) {
				for _, w := range want {
					if !strings.Contains(l, w) {
						return fmt.Errorf("line %s lacks %s", l, w)
					}
				}
				return nil
			}
		}
		return fmt.Errorf("no %s line of %s in %q", action, policy, e.events.String())
	})
}

// counter reads a counter of the agent's metrics (0 when absent).
func (r *running) counter(t *testing.T, name string, labels map[string]string) float64 {
	t.Helper()
	mfs, err := r.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	metric:
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if v, ok := labels[l.GetName()]; ok && v != l.GetValue() {
					continue metric
				}
			}
			return m.GetCounter().GetValue()
		}
	}
	return 0
}

// TestTracingSigkillThroughTheAgent runs the real agent with the real
// tracing datapath against a real API server: a TracingPolicy selecting
// a pod whose cgroup the test made kills its process that opens the
// test's file (tracepoint sys_enter_openat, Sigkill) before the open, and
// the node reports the policy enforced; the same binary outside the pod
// reads the file; a policy with a hook the kernel lacks is reported
// partial, naming that hook; the event's JSON line names the pod and the
// rule, and the metric counts it.
func TestTracingSigkillThroughTheAgent(t *testing.T) {
	requireTracing(t, &ebpf.ProgramSpec{Type: ebpf.TracePoint})
	e := newTracingEnv(t)
	e.tracingPolicy("kill-secret", "r1", 2, fmt.Sprintf(`
podSelector: {matchLabels: {app: web}}
tracepoints:
- subsystem: syscalls
  event: sys_enter_openat
  args: [{index: 2, type: string, label: filename}]
  selectors:
  - matchArgs: [{index: 2, operator: Equal, values: [%q]}]
    matchActions: [{action: Sigkill}]
`, e.secret))
	e.tracingPolicy("half", "r1", 2, `
podSelector: {matchLabels: {app: web}}
tracepoints:
- subsystem: syscalls
  event: sys_enter_openat
  args: [{index: 2, type: string}]
  selectors: [{matchArgs: [{index: 2, operator: Equal, values: [/palisade/never/opened]}]}]
kprobes: [{call: palisade_no_such_function}]
`)
	entry := e.setEntry("r1", 2, 1)
	if len(entry.Objects) != 1 {
		t.Fatalf("set entry %+v; want half listed", entry)
	}
	half := entry.Objects[0]
	if half.Name != "half" || half.State != v1.ObjectPartial || half.Reason != v1.HookUnavailableReason ||
		!strings.Contains(half.Message, "hook spec.kprobes[0]: "+string(tracing.HookNotFound)) {
		t.Errorf("half: %+v; want Partial, HookUnavailable, naming spec.kprobes[0] not found", half)
	}
	ne := e.nodeEnforcement()
	if c := apimeta.FindStatusCondition(ne.Status.Conditions, v1.TracingEnforcedCondition); c == nil || c.Status != metav1.ConditionFalse ||
		c.Reason != v1.PartiallyEnforcedReason || !strings.Contains(c.Message, "TracingPolicy shop/half") {
		t.Errorf("TracingEnforced = %+v", c)
	}

	// In the pod: killed before the open, nothing read.
	out, _, ws := runIn(t, e.cg, e.cat, e.secret)
	if !ws.Signaled() || ws.Signal() != syscall.SIGKILL || out != "" {
		t.Fatalf("in the pod: status %v, stdout %q; want killed by SIGKILL and nothing read", ws, out)
	}
	// The same binary outside the pod: untouched.
	if out, stderr, ws := runIn(t, nil, e.cat, e.secret); ws.ExitStatus() != 0 || out != "the secret\n" {
		t.Fatalf("outside the pod: status %v, stdout %q, stderr %q; want the file read", ws, out, stderr)
	}
	e.eventLine("TracingPolicy shop/kill-secret", "Sigkill", `"pod":{"namespace":"shop","name":"web-0"}`, `"binary":"`+e.cat+`"`,
		`"value":"`+e.secret+`"`, `"revision":"r1"`, `"source":"shop/tracing.cue:7"`, `"hook":"spec.tracepoints[0]"`)
	if n := e.r.counter(t, "palisade_tracing_events_total", map[string]string{"policy": "TracingPolicy shop/kill-secret", "action": "Sigkill"}); n < 1 {
		t.Errorf("palisade_tracing_events_total{policy=kill-secret,action=Sigkill} = %v, want the kill counted", n)
	}

	// A unit's link pin removed: the verify pass pins it again and
	// records the drift.
	var linkPin string
	filepath.WalkDir(e.pins, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && d.Name() == "link_0" && strings.Contains(p, "kill-secret") {
			linkPin = p
		}
		return nil
	})
	if linkPin == "" {
		t.Fatalf("no link pin of kill-secret under %s", e.pins)
	}
	if err := os.Remove(linkPin); err != nil {
		t.Fatal(err)
	}
	e.r.a.VerifyNow(context.Background())
	if _, err := os.Stat(linkPin); err != nil {
		t.Errorf("the verify pass did not pin the link again: %v", err)
	}
	var drift *v1.KernelDrift
	for _, d := range e.nodeEnforcement().Status.Drifts {
		if strings.HasPrefix(d.What, "TracingPolicy shop/kill-secret: spec.tracepoints[0]") {
			drift = &d
			break
		}
	}
	if drift == nil || drift.Kind != v1.KernelDriftProgram || !drift.Repaired {
		t.Errorf("drift = %+v in %+v; want the link's repair recorded", drift, e.nodeEnforcement().Status.Drifts)
	}
	if out, _, ws := runIn(t, e.cg, e.cat, e.secret); !ws.Signaled() || ws.Signal() != syscall.SIGKILL || out != "" {
		t.Errorf("after the repair: status %v, stdout %q; want killed by SIGKILL and nothing read", ws, out)
	}

	// The agent stops: the pinned units keep killing. It starts again:
	// it adopts them (the same programs), and reports as before.
	before := e.programIDs()
	if len(before) == 0 {
		t.Fatalf("no pinned tracing link under %s", e.pins)
	}
	e.restart(func() {
		if out, _, ws := runIn(t, e.cg, e.cat, e.secret); !ws.Signaled() || ws.Signal() != syscall.SIGKILL || out != "" {
			t.Errorf("agent down: status %v, stdout %q; want killed by SIGKILL and nothing read", ws, out)
		}
	})
	// Synced holds the agent's lock, which a sync (tracing's Apply
	// included) holds throughout: true means a whole sync ran.
	e.eventually("the restarted agent's first sync", func() error {
		if !e.r.a.Synced() {
			return errors.New("not synced")
		}
		return nil
	})
	e.setEntry("r1", 2, 1)
	if after := e.programIDs(); !slices.Equal(after, before) {
		t.Errorf("programs after the restart %v, before %v: want the pinned ones adopted, not loaded again", after, before)
	}
	if out, _, ws := runIn(t, e.cg, e.cat, e.secret); !ws.Signaled() || ws.Signal() != syscall.SIGKILL || out != "" {
		t.Errorf("after the restart: status %v, stdout %q; want killed by SIGKILL and nothing read", ws, out)
	}
}

// TestTracingLSMDenyThroughTheAgent: the same with an LSM file_open Deny,
// where the kernel loads BPF-LSM programs: the process in the pod gets
// EPERM and reads nothing, and the node reports the policy enforced.
func TestTracingLSMDenyThroughTheAgent(t *testing.T) {
	requireTracing(t, &ebpf.ProgramSpec{Type: ebpf.LSM, AttachType: ebpf.AttachLSMMac, AttachTo: "file_open"})
	e := newTracingEnv(t)
	e.tracingPolicy("deny-secret", "r1", 1, fmt.Sprintf(`
podSelector: {matchLabels: {app: web}}
lsmhooks:
- hook: file_open
  args: [{index: 0, type: file}]
  selectors:
  - matchArgs: [{index: 0, operator: Equal, values: [%q]}]
    matchActions: [{action: Deny}]
`, e.secret))
	e.setEntry("r1", 1, 1)
	out, stderr, ws := runIn(t, e.cg, e.cat, e.secret)
	if ws.ExitStatus() == 0 || out != "" || !strings.Contains(stderr, "Permission denied") {
		t.Fatalf("in the pod: status %v, stdout %q, stderr %q; want EPERM and nothing read", ws, out, stderr)
	}
	if out, stderr, ws := runIn(t, nil, e.cat, e.secret); ws.ExitStatus() != 0 || out != "the secret\n" {
		t.Fatalf("outside the pod: status %v, stdout %q, stderr %q; want the file read", ws, out, stderr)
	}
	e.eventLine("TracingPolicy shop/deny-secret", "Deny", `"pod":{"namespace":"shop","name":"web-0"}`, `"value":"`+e.secret+`"`)
}
