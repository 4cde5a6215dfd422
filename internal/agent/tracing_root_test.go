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
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
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

// requireTracing skips unless the kernel runs BPF-LSM programs with BTF.
func requireTracing(t *testing.T) {
	t.Helper()
	if _, err := os.Stat("/sys/kernel/btf/vmlinux"); err != nil {
		t.Skip("needs kernel BTF (/sys/kernel/btf/vmlinux)")
	}
	lsm, err := os.ReadFile("/sys/kernel/security/lsm")
	if err != nil || !strings.Contains(","+strings.TrimSpace(string(lsm))+",", ",bpf,") {
		t.Skipf("needs BPF-LSM active (/sys/kernel/security/lsm: %q, %v)", lsm, err)
	}
	// BPF-LSM listed is not enough: the kernel must also let this process
	// load an LSM program.
	p, err := ebpf.NewProgram(&ebpf.ProgramSpec{Type: ebpf.LSM, AttachType: ebpf.AttachLSMMac, AttachTo: "file_open", License: "GPL",
		Instructions: asm.Instructions{asm.Mov.Imm(asm.R0, 0), asm.Return()}})
	if err != nil {
		t.Skipf("needs the kernel to load BPF-LSM programs; a trivial lsm/file_open program fails: %v", err)
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
// exit status.
func runIn(t *testing.T, cg *podCgroup, name string, args ...string) (string, string, int) {
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
	return out.String(), errb.String(), cmd.ProcessState.ExitCode()
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
		render.AnnotationRuleSources: `{"spec.lsmhooks[0].selectors[0]": "shop/tracing.cue:7:5"}`}
	e.create(tp)
}

// TestTracingThroughTheAgent runs the real agent with the real tracing
// datapath against a real API server: a TracingPolicy selecting a pod
// whose cgroup the test made denies its processes the test's file (LSM
// file_open, Deny) and the node reports it enforced; the same binary
// outside the pod reads the file; a policy with a hook the kernel lacks
// is reported partial, naming that hook; the event names the pod.
func TestTracingThroughTheAgent(t *testing.T) {
	requireTracing(t)
	e := newEnv(t)
	root := cgroupRoot(t)
	tm, err := tracing.Open(tracing.Options{PinDir: filepath.Join(pinDir(t), "tracing"), Log: testr.New(t)})
	if err != nil {
		t.Fatalf("tracing.Open: %v", err)
	}
	t.Cleanup(func() {
		tm.Apply(context.Background(), nil)
		tm.Close()
	})

	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "web-0", Labels: map[string]string{"app": "web"}},
		Spec: corev1.PodSpec{NodeName: node, Containers: []corev1.Container{{Name: "c", Image: "none"}}}}
	e.create(pod)
	cg := cgroupOf(t, root, string(pod.UID))
	secret := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(secret, []byte("the secret\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cat, err := exec.LookPath("cat")
	if err != nil {
		t.Skip(err)
	}
	if cat, err = filepath.EvalSymlinks(cat); err != nil {
		t.Fatal(err)
	}

	events := &lockedBuffer{}
	e.setup = func(_ ctrl.Manager, a *agent.Agent, _ *datapath.Datapath) {
		a.Tracing, a.CgroupRoot, a.TracingEvents = tm, root, events
	}
	e.start(datapath.Limits{}, time.Hour)
	e.tracingPolicy("deny-secret", "r1", 2, fmt.Sprintf(`
podSelector: {matchLabels: {app: web}}
lsmhooks:
- hook: file_open
  args: [{index: 0, type: file}]
  selectors:
  - matchArgs: [{index: 0, operator: Equal, values: [%q]}]
    matchActions: [{action: Deny}]
`, secret))
	e.tracingPolicy("half", "r1", 2, `
podSelector: {matchLabels: {app: web}}
lsmhooks: [{hook: bprm_check_security}]
kprobes: [{call: palisade_no_such_function}]
`)

	var half v1.ObjectEnforcement
	e.eventually("the tracing policies' status", func() error {
		ne := e.nodeEnforcement()
		if ne == nil {
			return errors.New("no NodeEnforcement")
		}
		for _, s := range ne.Status.PolicySets {
			if s.Namespace != "shop" || s.Name != "demo" || s.Revision != "r1" {
				continue
			}
			if s.Policies != 2 || s.Enforced != 1 || s.Partial != 1 || len(s.Objects) != 1 {
				return fmt.Errorf("set entry %+v", s)
			}
			half = s.Objects[0]
			return nil
		}
		return fmt.Errorf("policySets = %+v; conditions %+v", ne.Status.PolicySets, ne.Status.Conditions)
	})
	if half.Name != "half" || half.State != v1.ObjectPartial || half.Reason != v1.HookUnavailableReason ||
		!strings.Contains(half.Message, "hook spec.kprobes[0]") || !strings.Contains(half.Message, string(tracing.HookNotFound)) {
		t.Errorf("half: %+v; want Partial, HookUnavailable, naming spec.kprobes[0] not found", half)
	}
	ne := e.nodeEnforcement()
	if c := apimeta.FindStatusCondition(ne.Status.Conditions, v1.TracingEnforcedCondition); c == nil || c.Status != metav1.ConditionFalse ||
		c.Reason != v1.PartiallyEnforcedReason || !strings.Contains(c.Message, "TracingPolicy shop/half") {
		t.Errorf("TracingEnforced = %+v", c)
	}

	// In the pod: denied, nothing read.
	out, stderr, code := runIn(t, cg, cat, secret)
	if code == 0 || out != "" || !strings.Contains(stderr, "Permission denied") {
		t.Fatalf("in the pod: exit %d, stdout %q, stderr %q; want EPERM and nothing read", code, out, stderr)
	}
	// The same binary outside the pod: untouched.
	if out, stderr, code := runIn(t, nil, cat, secret); code != 0 || out != "the secret\n" {
		t.Fatalf("outside the pod: exit %d, stdout %q, stderr %q; want the file read", code, out, stderr)
	}
	// The event, as a JSON line, names the policy, the pod and the rule.
	e.eventually("the deny event's line", func() error {
		for _, l := range strings.Split(events.String(), "\n") {
			if strings.Contains(l, `"policy":"TracingPolicy shop/deny-secret"`) && strings.Contains(l, `"action":"Deny","taken":true`) {
				for _, want := range []string{`"pod":{"namespace":"shop","name":"web-0"}`, `"binary":"` + cat + `"`, `"value":"` + secret + `"`,
					`"revision":"r1"`, `"source":"shop/tracing.cue:7"`} {
					if !strings.Contains(l, want) {
						return fmt.Errorf("line %s lacks %s", l, want)
					}
				}
				return nil
			}
		}
		return fmt.Errorf("no deny line in %q", events.String())
	})
}
