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

package tracing

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/go-logr/logr"
	"golang.org/x/sys/unix"

	v1 "github.com/palisade-dev/palisade/api/v1alpha1"
)

// The benchmarks of make bench-tracing (docs/bench-tracing.md): the cost
// of tracing policies on the operations they hook, in one run. Each
// moves the benchmark process into a cgroup of its own (and back at the
// end), scopes the policies to that cgroup, and measures:
//
//   - open: openat+close of a temp file, hooked at syscalls/sys_enter_openat;
//   - exec: fork+exec of /bin/true, hooked at syscalls/sys_enter_execve;
//   - build: go build -a of a small program (GOCACHE in a temp dir),
//     four per operation in the order none, policy, policy, none,
//     with sys_enter_openat watching every file under GOROOT, the
//     program's directory and the cache;
//
// with no policy (no Manager loaded at all), a monitor policy (Notify on
// the benchmarked file: an event per operation) and an enforcing policy
// on the same hook (Sigkill of the open, or exec, of another file: the
// selectors run, nothing matches). Tracepoints, because the development
// machine's kernel loads neither fentry nor BPF-LSM programs. Each
// benchmark reports the events delivered to user space and the events
// lost (Stats.Lost), per operation and in total.

// benchEnv is a cgroup the benchmark process runs in, a Manager and an
// event counter.
type benchEnv struct {
	cg        *testCgroup
	m         *Manager
	delivered atomic.Uint64
}

// enterCgroup moves the whole test process into a new cgroup and back at
// the end.
func enterCgroup(b *testing.B) *testCgroup {
	b.Helper()
	cg := newCgroup(b)
	orig := ownCgroup(b)
	if err := os.WriteFile(filepath.Join(cg.path, "cgroup.procs"), []byte(strconv.Itoa(os.Getpid())), 0); err != nil {
		b.Fatalf("move into %s: %v", cg.path, err)
	}
	// Registered after newCgroup's cleanup, so it runs first: the
	// process leaves before the cgroup is killed and removed.
	b.Cleanup(func() {
		if err := os.WriteFile(filepath.Join(orig, "cgroup.procs"), []byte(strconv.Itoa(os.Getpid())), 0); err != nil {
			panic("cannot leave the benchmark cgroup: " + err.Error())
		}
	})
	return cg
}

// ownCgroup is the directory of this process's cgroup v2.
func ownCgroup(b *testing.B) string {
	f, err := os.Open("/proc/self/cgroup")
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "0::"); ok {
			return filepath.Join(cgroupRoot, rest)
		}
	}
	b.Skip("no cgroup v2 line in /proc/self/cgroup")
	return ""
}

// load opens the Manager (once) and applies spec (nil: none) scoped to
// the benchmark's cgroup, with an event reader counting deliveries.
func (e *benchEnv) load(b *testing.B, spec *v1.TracingPolicySpec) {
	b.Helper()
	if e.m == nil {
		m, err := Open(Options{PinDir: tempPinDir(b), Log: logr.Discard()})
		if err != nil {
			b.Fatalf("Open: %v", err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() {
			defer close(done)
			m.ReadEvents(ctx, func(Event) { e.delivered.Add(1) })
		}()
		b.Cleanup(func() {
			cancel()
			<-done
			m.Apply(context.Background(), nil)
			m.Close()
		})
		e.m = m
	}
	var ps []Policy
	if spec != nil {
		ps = []Policy{{Key: benchKey, Spec: *spec, Cgroups: []uint64{e.cg.id}}}
	}
	mustLoaded(b, e.m.Apply(context.Background(), ps))
}

const benchKey = "TracingPolicy bench/policy"

// progRuntime is the time a unit's hook programs have run (BPF
// statistics must be on).
func progRuntime(b *testing.B, m *Manager, key string) time.Duration {
	m.mu.Lock()
	defer m.mu.Unlock()
	u := m.units[key]
	if u == nil {
		b.Fatalf("no unit %q", key)
	}
	var d time.Duration
	for _, p := range u.progs {
		st, err := p.Stats()
		if err != nil {
			b.Fatalf("program stats: %v", err)
		}
		d += st.Runtime
	}
	return d
}

// counts are the kernel's event counters: events written to the ring
// buffer and events lost, over every unit.
func (e *benchEnv) counts(b *testing.B) (written, lost uint64) {
	if e.m == nil {
		return 0, 0
	}
	st, err := e.m.Stats()
	if err != nil {
		b.Fatal(err)
	}
	for _, byAction := range st.Events {
		for _, v := range byAction {
			written += v
		}
	}
	for _, v := range st.Lost {
		lost += v
	}
	return written, lost
}

// hits is the number of calls in scope of every hook (Stats.Hits).
func (e *benchEnv) hits(b *testing.B) uint64 {
	st, err := e.m.Stats()
	if err != nil {
		b.Fatal(err)
	}
	var n uint64
	for _, byHook := range st.Hits {
		for _, v := range byHook {
			n += v
		}
	}
	return n
}

// measure runs op b.N times, then waits until the reader has delivered
// every event the kernel wrote, and reports events delivered and lost
// per operation.
func (e *benchEnv) measure(b *testing.B, op func(b *testing.B)) {
	d0 := e.delivered.Load()
	w0, l0 := e.counts(b)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		op(b)
	}
	b.StopTimer()
	w, l := e.counts(b)
	w, l = w-w0, l-l0
	deadline := time.Now().Add(30 * time.Second)
	for e.delivered.Load()-d0 < w && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	d := e.delivered.Load() - d0
	b.ReportMetric(float64(d)/float64(b.N), "events/op")
	b.ReportMetric(float64(l)/float64(b.N), "lost/op")
	b.Logf("N=%d: the kernel wrote %d events to the ring buffer and lost %d (Stats.Lost); %d delivered to user space", b.N, w, l, d)
	if d < w {
		b.Errorf("%d events written, %d delivered after 30s", w, d)
	}
}

func openHook(arg v1.ArgSelector, action v1.ActionType) *v1.TracingPolicySpec {
	s := openatHook(v1.Selector{MatchArgs: []v1.ArgSelector{arg}, MatchActions: []v1.Action{{Action: action}}})
	return &s
}

func execHook(arg v1.ArgSelector, action v1.ActionType) *v1.TracingPolicySpec {
	arg.Index = 1
	return &v1.TracingPolicySpec{Tracepoints: []v1.TracepointHook{{
		Subsystem: "syscalls", Event: "sys_enter_execve",
		HookCommon: v1.HookCommon{
			Args:      []v1.Arg{{Index: 1, Type: "string", Label: label("filename")}},
			Selectors: []v1.Selector{{MatchArgs: []v1.ArgSelector{arg}, MatchActions: []v1.Action{{Action: action}}}},
		},
	}}}
}

type benchCase struct {
	name string
	spec *v1.TracingPolicySpec
}

func BenchmarkOpenClose(b *testing.B) {
	requireKernel(b, false)
	e := &benchEnv{cg: enterCgroup(b)}
	file := tempFile(b, "bench", "x")
	other := tempFile(b, "other", "x")
	for _, c := range []benchCase{
		{"policy=none", nil},
		{"policy=monitor", openHook(v1.ArgSelector{Index: 2, Operator: "Equal", Values: []string{file}}, v1.ActionNotify)},
		{"policy=enforce", openHook(v1.ArgSelector{Index: 2, Operator: "Equal", Values: []string{other}}, v1.ActionSigkill)},
	} {
		if c.spec != nil {
			e.load(b, c.spec)
		}
		b.Run(c.name, func(b *testing.B) {
			e.measure(b, func(b *testing.B) {
				fd, err := unix.Open(file, unix.O_RDONLY|unix.O_CLOEXEC, 0)
				if err != nil {
					b.Fatal(err)
				}
				unix.Close(fd)
			})
		})
	}
}

func BenchmarkExec(b *testing.B) {
	requireKernel(b, false)
	e := &benchEnv{cg: enterCgroup(b)}
	true_ := realPath(b, "/bin/true")
	other := realPath(b, "/bin/false")
	for _, c := range []benchCase{
		{"policy=none", nil},
		{"policy=monitor", execHook(v1.ArgSelector{Operator: "Equal", Values: []string{true_}}, v1.ActionNotify)},
		{"policy=enforce", execHook(v1.ArgSelector{Operator: "Equal", Values: []string{other}}, v1.ActionSigkill)},
	} {
		if c.spec != nil {
			e.load(b, c.spec)
		}
		b.Run(c.name, func(b *testing.B) {
			e.measure(b, func(b *testing.B) {
				if err := exec.Command(true_).Run(); err != nil {
					b.Fatal(err)
				}
			})
		})
	}
}

// buildMain is the program go build compiles: a few standard packages.
const buildMain = `package main

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"
)

func main() {
	out, _ := json.Marshal(map[string]string{"hello": strings.ToUpper("palisade")})
	fmt.Fprintln(os.Stdout, string(out))
}
`

func BenchmarkGoBuild(b *testing.B) {
	requireKernel(b, false)
	goBin, err := exec.LookPath("go")
	if err != nil {
		b.Skip("needs the go command")
	}
	goroot, err := exec.Command(goBin, "env", "GOROOT").Output()
	if err != nil {
		b.Fatalf("go env GOROOT: %v", err)
	}
	e := &benchEnv{cg: enterCgroup(b)}
	dir := b.TempDir()
	for name, content := range map[string]string{"main.go": buildMain, "go.mod": "module benchbuild\n\ngo 1.24\n"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			b.Fatal(err)
		}
	}
	cache := filepath.Join(b.TempDir(), "gocache")
	prefixes := []string{strings.TrimSpace(string(goroot)) + "/", dir + "/", cache + "/"}
	policy := openHook(v1.ArgSelector{Index: 2, Operator: "Prefix", Values: prefixes}, v1.ActionNotify)
	// build returns the wall time of one build and the CPU time (user and
	// system) of its processes: the CPU time is less sensitive to what
	// else the machine runs.
	build := func(b *testing.B) (time.Duration, time.Duration) {
		os.RemoveAll(cache)
		cmd := exec.Command(goBin, "build", "-a", "-o", filepath.Join(dir, "out"), ".")
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "GOCACHE="+cache, "GOFLAGS=", "GOTOOLCHAIN=local", "CGO_ENABLED=0")
		start := time.Now()
		out, err := cmd.CombinedOutput()
		took := time.Since(start)
		if err != nil {
			b.Fatalf("go build: %v\n%s", err, out)
		}
		return took, cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
	}
	e.load(b, nil)
	// One operation is four builds, in the order none, policy, policy,
	// none: the machine's other load drifts over seconds, and a build
	// right after another runs warmer; the ABBA order keeps both out of
	// the ratio.
	b.Run("paired", func(b *testing.B) {
		var none, monitor, noneCPU, monitorCPU, bpfTime time.Duration
		hits0 := e.hits(b)
		// BPF statistics give the time the policy's programs ran: the
		// policy's own cost, free of the machine's noise. They are on
		// for this benchmark only.
		stats, err := ebpf.EnableStats(uint32(unix.BPF_STATS_RUN_TIME))
		if err != nil {
			b.Logf("no BPF run time statistics: %v", err)
		} else {
			defer stats.Close()
		}
		e.measure(b, func(b *testing.B) {
			for _, withPolicy := range []bool{false, true, true, false} {
				if withPolicy {
					e.load(b, policy)
					wall, cpu := build(b)
					monitor, monitorCPU = monitor+wall, monitorCPU+cpu
					if stats != nil {
						bpfTime += progRuntime(b, e.m, benchKey)
					}
					e.load(b, nil)
				} else {
					wall, cpu := build(b)
					none, noneCPU = none+wall, noneCPU+cpu
				}
			}
		})
		n := float64(2 * b.N) // builds of each kind
		b.ReportMetric(float64(e.hits(b)-hits0)/n, "hooked-calls/build")
		b.ReportMetric(none.Seconds()/n, "s/build-none")
		b.ReportMetric(monitor.Seconds()/n, "s/build-monitor")
		b.ReportMetric(monitor.Seconds()/none.Seconds(), "ratio")
		if stats != nil {
			b.ReportMetric(float64(bpfTime.Microseconds())/1000/n, "bpf-ms/build")
		}
		b.ReportMetric(noneCPU.Seconds()/n, "cpu-s/build-none")
		b.ReportMetric(monitorCPU.Seconds()/n, "cpu-s/build-monitor")
		b.ReportMetric(monitorCPU.Seconds()/noneCPU.Seconds(), "cpu-ratio")
	})
}
