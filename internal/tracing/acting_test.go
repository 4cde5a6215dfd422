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
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	v1 "github.com/palisade-dev/palisade/api/v1alpha1"
)

// The guide's five TracingPolicies (seed-examples/tracing-*.yaml), each
// imported with the importer, validated against the running kernel, and
// shown acting on real processes in a cgroup of the test's own.
//
// Where validation refuses an example for a defect of its own, the test
// asserts the refusal (code, position, message), then makes the minimal
// correction a user would make and validates again. The corrected example
// is either valid, and then it loads and acts; or validate refuses it only
// because this kernel cannot attach its hook (PAL528: the examples hook
// kernel functions, which Palisade attaches as fentry or kprobes, and the
// development VM's lockdown refuses fentry programs while CONFIG_KPROBES
// is off; a syscall hook falls back to its tracepoint), the Manager agrees
// (NotSupported), and the test shows the same policy written on the
// syscall's tracepoint acting instead — the correction a user of such a
// kernel makes. On tracepoints, matchArgs index counts the declared args
// (as in Tetragon), and a sockaddr has one address, which SAddr/NotSAddr
// compare (as in Tetragon; validate refuses DAddr/NotDAddr on a sockaddr
// with PAL501).

// guideCase is one of the guide's examples.
type guideCase struct {
	file string
	// refused are the errors validate must give the example as written:
	// code and a part of the message.
	refused [][2]string
	// fix is the minimal correction (old, new pairs of YAML text).
	fix []string
	// tracepoint is the policy on a syscall tracepoint, for kernels
	// where the kprobe cannot attach.
	tracepoint string
	// act shows the loaded policy acting in cg.
	act func(t *testing.T, ev *events, cg *testCgroup)
}

func runGuide(t *testing.T, c guideCase) {
	requireKernel(t, false)
	dir := requireCorpus(t, "seed-examples")
	data, err := os.ReadFile(filepath.Join(dir, c.file))
	if err != nil {
		t.Fatal(err)
	}
	doc := string(data)
	r := importOnKernel(t, c.file, data)
	if len(r.ImportErrors) > 0 {
		t.Fatalf("import refused %s:\n%s", c.file, r.ImportErrors)
	}
	for _, want := range c.refused {
		wantRefusal(t, r.Errors, want[0], want[1])
	}
	if len(c.refused) == 0 && len(r.Errors) > 0 {
		t.Fatalf("validate refused %s:\n%s", c.file, r.Errors)
	}
	if len(r.Errors) != len(c.refused) {
		t.Errorf("validate gave %d errors, want %d:\n%s", len(r.Errors), len(c.refused), r.Errors)
	}

	cg := newCgroup(t)
	fixed := replace(t, doc, c.fix...)
	r = importOnKernel(t, c.file, []byte(fixed))
	if len(r.ImportErrors) > 0 || len(r.Policies) != 1 {
		t.Fatalf("corrected %s: import errors %s, %d policies", c.file, r.ImportErrors, len(r.Policies))
	}
	m := openTest(t, tempPinDir(t))
	ev := collect(t, m)
	rs := m.Apply(context.Background(), []Policy{scoped(r.Policies[0], cg)})
	if len(r.Errors) == 0 {
		// Validated: it loads, and acts.
		mustLoaded(t, rs)
		t.Logf("%s (corrected) loaded: %+v", c.file, rs[0].Hooks)
		c.act(t, ev, cg)
		return
	}
	// Validate refuses the corrected example only because this kernel
	// cannot attach its kind of hook (PAL528), and the Manager agrees.
	for _, d := range r.Errors {
		if d.Code != "PAL528" || d.Pos.Line == 0 {
			t.Fatalf("corrected %s refused for another reason than the kernel's hooks:\n%s", c.file, r.Errors)
		}
		t.Logf("refused on this kernel: %s", d)
	}
	unavailable, why := hookUnavailable(rs)
	if !unavailable {
		t.Fatalf("%s: validate says no mechanism attaches, the Manager says loaded=%v err=%v hooks=%+v", c.file, rs[0].Loaded, rs[0].Err, rs[0].Hooks)
	}
	t.Logf("the Manager agrees (%s); the same policy on the syscall's tracepoint instead", why)
	tp := mustValid(t, c.file, c.tracepoint, cg)
	mustLoaded(t, m.Apply(context.Background(), []Policy{tp}))
	c.act(t, ev, cg)
}

// newNetns creates a network namespace of the test's own with 10.1.2.3/8
// on its loopback and a default route through it, so that connects go
// nowhere outside the machine.
func newNetns(t *testing.T) string {
	t.Helper()
	ip := which(t, "ip")
	name := fmt.Sprintf("palisade-tracing-test-%d-%s", os.Getpid(), strings.ReplaceAll(filepath.Base(t.Name()), "/", "-"))
	if out, err := exec.Command(ip, "netns", "add", name).CombinedOutput(); err != nil {
		t.Skipf("cannot create a network namespace: %v: %s", err, out)
	}
	t.Cleanup(func() { exec.Command(ip, "netns", "del", name).Run() })
	for _, args := range [][]string{
		{"-n", name, "link", "set", "lo", "up"},
		{"-n", name, "addr", "add", "10.1.2.3/8", "dev", "lo"},
		{"-n", name, "route", "add", "default", "dev", "lo"},
	} {
		if out, err := exec.Command(ip, args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %v: %v: %s", args, err, out)
		}
	}
	return name
}

// bashConnect runs bash in netns (in cg) connecting to addr/port and
// says whether it was killed by SIGKILL, or else its exit status. The
// timeout bounds a connect that nobody answers (exit 124); timeout dies
// of the signal that killed its child.
func bashConnect(t *testing.T, cg *testCgroup, netns, addr string) (killed bool, status int) {
	t.Helper()
	_, _, ws := run(t, cg, which(t, "ip"), "netns", "exec", netns, which(t, "timeout"), "5", realPath(t, "/bin/bash"), "-c", "echo > /dev/tcp/"+addr)
	if ws.Signaled() && ws.Signal() == syscall.SIGKILL || ws.ExitStatus() == 128+int(syscall.SIGKILL) {
		return true, 0
	}
	return false, ws.ExitStatus()
}

func hasArg(s string) func(Event) bool {
	return func(e Event) bool {
		for _, a := range e.Args {
			if strings.Contains(a.Value, s) {
				return true
			}
		}
		return false
	}
}

// Process execution: /bin/sh exec'ing a program reports the program.
func TestGuideProcessExecution(t *testing.T) {
	sh, bash := realPath(t, "/bin/sh"), realPath(t, "/bin/bash")
	runGuide(t, guideCase{
		file: "tracing-process-execution.yaml",
		refused: [][2]string{
			{"PAL526", `argument 1 of syscall execve is "const char *const *argv"`},
		},
		fix: []string{
			// argv is an array of strings, which no argument type reads:
			// leave it out (the event has the program's path).
			"    - index: 1\n      type: \"string\"\n", "",
			// Process tracking records the executable's real path
			// (/bin/sh is a symlink on a merged-/usr system): add the
			// real paths beside the example's.
			"        - \"/bin/sh\"\n", "        - \"/bin/sh\"\n        - \"" + sh + "\"\n        - \"" + bash + "\"\n",
		},
		tracepoint: `apiVersion: cilium.io/v1alpha1
kind: TracingPolicy
metadata:
  name: process-execution
spec:
  tracepoints:
  - subsystem: "syscalls"
    event: "sys_enter_execve"
    args:
    - index: 5
      type: "string"
    selectors:
    - matchBinaries:
      - operator: "In"
        values:
        - "/bin/bash"
        - "/bin/sh"
        - "` + sh + `"
        - "` + bash + `"
`,
		act: func(t *testing.T, ev *events, cg *testCgroup) {
			echo := realPath(t, "/bin/echo")
			// Not a shell: the test binary's child exec'ing echo is not
			// reported.
			run(t, cg, echo, "not", "a", "shell")
			out, _, ws := run(t, cg, "/bin/sh", "-c", echo+" hello palisade")
			if ws.ExitStatus() != 0 || out != "hello palisade\n" {
				t.Fatalf("sh: status %v, stdout %q", ws, out)
			}
			e := ev.wait(t, "exec of echo by /bin/sh", hasArg(echo))
			if e.Process.Binary != sh || e.Process.CgroupID != cg.id {
				t.Errorf("event = %+v, want %s exec'ing %s in cgroup %d", e, sh, echo, cg.id)
			}
			t.Logf("event: %s (pid %d, parent %s) exec %v", e.Process.Binary, e.Process.PID, e.Parent.Binary, e.Args)
			ev.mu.Lock()
			defer ev.mu.Unlock()
			for _, e := range ev.list {
				if e.Process.Binary != sh && e.Process.Binary != bash {
					t.Errorf("event of a binary not selected: %+v", e)
				}
			}
		},
	})
}

// Sensitive files: reading /etc/passwd is reported with the file's name.
func TestGuideSensitiveFiles(t *testing.T) {
	runGuide(t, guideCase{
		file: "tracing-sensitive-files.yaml",
		refused: [][2]string{
			{"PAL526", `argument 0 of security_file_permission is "struct file *file", which type "string" cannot read`},
		},
		// The hint says so: the argument is a file.
		fix: []string{`type: "string"`, `type: "file"`},
		tracepoint: `apiVersion: cilium.io/v1alpha1
kind: TracingPolicy
metadata:
  name: sensitive-files
spec:
  tracepoints:
  - subsystem: "syscalls"
    event: "sys_enter_openat"
    args:
    - index: 6
      type: "string"
    selectors:
    - matchArgs:
      - index: 0
        operator: "Prefix"
        values:
        - "/etc/shadow"
        - "/etc/passwd"
`,
		act: func(t *testing.T, ev *events, cg *testCgroup) {
			cat := which(t, "cat")
			other := tempFile(t, "other", "x\n")
			run(t, cg, cat, other)
			if _, _, ws := run(t, cg, cat, "/etc/passwd"); ws.ExitStatus() != 0 {
				t.Fatalf("cat /etc/passwd: %v", ws)
			}
			e := ev.wait(t, "read of /etc/passwd", func(e Event) bool { return len(e.Args) == 1 && e.Args[0].Value == "/etc/passwd" })
			if e.Process.Binary != cat || e.Process.CgroupID != cg.id {
				t.Errorf("event = %+v", e)
			}
			ev.mu.Lock()
			defer ev.mu.Unlock()
			for _, e := range ev.list {
				if hasArg(other)(e) {
					t.Errorf("event for a file not listed: %+v", e)
				}
			}
		},
	})
}

// Network connections: a connect outside the listed CIDRs is reported
// (and, as the example asks, killed); one inside is not.
func TestGuideNetworkConnections(t *testing.T) {
	runGuide(t, guideCase{
		file: "tracing-network-connections.yaml",
		refused: [][2]string{
			{"PAL502", `matchArgs compares argument 1, which kprobe "tcp_connect" does not declare`},
			{"PAL505", `FollowFD on kprobe "tcp_connect" needs argFd and argName`},
		},
		fix: []string{
			// The address is in the declared argument 0 (the sock).
			"      - index: 1\n", "      - index: 0\n",
			// FollowFD has nothing to follow on tcp_connect.
			"      - action: \"FollowFD\"\n", "",
		},
		tracepoint: `apiVersion: cilium.io/v1alpha1
kind: TracingPolicy
metadata:
  name: network-connections
spec:
  tracepoints:
  - subsystem: "syscalls"
    event: "sys_enter_connect"
    args:
    - index: 6
      type: "sockaddr"
    selectors:
    - matchArgs:
      - index: 0
        operator: "NotSAddr"
        values:
        - "10.0.0.0/8"
        - "172.16.0.0/12"
        - "192.168.0.0/16"
      - index: 0
        operator: "Family"
        values:
        - "AF_INET"
      matchActions:
      - action: "Notify"
      - action: "Sigkill"
`,
		act: func(t *testing.T, ev *events, cg *testCgroup) {
			ns := newNetns(t)
			if killed, st := bashConnect(t, cg, ns, "10.1.2.3/1"); killed || st != 1 {
				t.Errorf("connect inside 10.0.0.0/8: killed %v, exit %d; want exit 1 (connection refused): NotSAddr on a sockaddr does not compare the sockaddr's address", killed, st)
			}
			if killed, st := bashConnect(t, cg, ns, "192.0.2.1/80"); !killed {
				t.Errorf("connect to 192.0.2.1: exit %d, want bash killed", st)
			}
			e := ev.wait(t, "connect to 192.0.2.1:80", hasArg("192.0.2.1:80"))
			if e.Process.CgroupID != cg.id || !e.Taken {
				t.Errorf("event = %+v", e)
			}
			ev.mu.Lock()
			defer ev.mu.Unlock()
			for _, e := range ev.list {
				if hasArg("10.1.2.3")(e) {
					t.Errorf("event for a connect inside the listed CIDRs: %+v", e)
				}
			}
		},
	})
}

// Protect /etc/shadow: a process reading it is killed and read nothing;
// one reading another file is not.
func TestGuideProtectShadow(t *testing.T) {
	runGuide(t, guideCase{
		file: "tracing-protect-shadow.yaml",
		refused: [][2]string{
			{"PAL526", `argument 0 of security_file_permission is "struct file *file", which type "string" cannot read`},
		},
		fix: []string{`type: "string"`, `type: "file"`},
		tracepoint: `apiVersion: cilium.io/v1alpha1
kind: TracingPolicy
metadata:
  name: protect-shadow
spec:
  tracepoints:
  - subsystem: "syscalls"
    event: "sys_enter_openat"
    args:
    - index: 6
      type: "string"
    selectors:
    - matchArgs:
      - index: 0
        operator: "Equal"
        values:
        - "/etc/shadow"
      matchActions:
      - action: "Sigkill"
`,
		act: func(t *testing.T, ev *events, cg *testCgroup) {
			cat := which(t, "cat")
			out, _, ws := run(t, cg, cat, "/etc/shadow")
			if !ws.Signaled() || ws.Signal() != syscall.SIGKILL || out != "" {
				t.Fatalf("cat /etc/shadow: status %v, stdout %d bytes; want SIGKILL and nothing read", ws, len(out))
			}
			e := ev.wait(t, "kill at /etc/shadow", hasArg("/etc/shadow"))
			if e.Action != v1.ActionSigkill || !e.Taken || e.Process.CgroupID != cg.id {
				t.Errorf("event = %+v", e)
			}
			if out, _, ws := run(t, cg, cat, "/etc/hostname"); ws.ExitStatus() != 0 || out == "" {
				t.Errorf("cat /etc/hostname: status %v, stdout %q; want it read", ws, out)
			}
		},
	})
}

// Block reverse shells: bash connecting outside 10.0.0.0/8 is killed,
// connecting inside is not, and another binary connecting outside is not.
func TestGuideBlockReverseShell(t *testing.T) {
	sh, bash := realPath(t, "/bin/sh"), realPath(t, "/bin/bash")
	runGuide(t, guideCase{
		file: "tracing-block-reverse-shell.yaml",
		refused: [][2]string{
			{"PAL525", `argument index 1 is past the 1 argument of tcp_connect(struct sock *sk)`},
			{"PAL501", `operator NotDAddr does not apply to argument 1 of type sockaddr`},
		},
		fix: []string{
			// tcp_connect has one argument, the sock, whose destination
			// NotDAddr compares.
			"    - index: 1\n      type: \"sockaddr\"\n", "    - index: 0\n      type: \"sock\"\n",
			"      - index: 1\n", "      - index: 0\n",
			// Process tracking records the real path of the shells.
			"        - \"/bin/sh\"\n", "        - \"/bin/sh\"\n        - \"" + sh + "\"\n        - \"" + bash + "\"\n",
		},
		tracepoint: `apiVersion: cilium.io/v1alpha1
kind: TracingPolicy
metadata:
  name: block-reverse-shell
spec:
  tracepoints:
  - subsystem: "syscalls"
    event: "sys_enter_connect"
    args:
    - index: 6
      type: "sockaddr"
    selectors:
    - matchArgs:
      - index: 0
        operator: "NotSAddr"
        values:
        - "10.0.0.0/8"
      - index: 0
        operator: "Family"
        values:
        - "AF_INET"
      matchBinaries:
      - operator: "In"
        values:
        - "/bin/bash"
        - "/bin/sh"
        - "` + sh + `"
        - "` + bash + `"
      matchActions:
      - action: "Sigkill"
`,
		act: func(t *testing.T, ev *events, cg *testCgroup) {
			ns := newNetns(t)
			if killed, st := bashConnect(t, cg, ns, "10.1.2.3/1"); killed || st != 1 {
				t.Errorf("bash connecting inside 10.0.0.0/8: killed %v, exit %d; want exit 1 (connection refused, not killed): NotSAddr on a sockaddr does not compare the sockaddr's address", killed, st)
			}
			if killed, st := bashConnect(t, cg, ns, "192.0.2.1/80"); !killed {
				t.Errorf("bash connecting to 192.0.2.1: exit %d, want bash killed", st)
			}
			e := ev.wait(t, "kill of bash connecting to 192.0.2.1:80", hasArg("192.0.2.1:80"))
			if e.Action != v1.ActionSigkill || !e.Taken || e.Process.Binary != bash || e.Process.CgroupID != cg.id {
				t.Errorf("event = %+v", e)
			}
			// Not a shell: the test binary connecting outside lives.
			if ws := trigger(t, cg, "connect 192.0.2.1:81", which(t, "ip"), "netns", "exec", ns); ws.Signaled() {
				t.Errorf("a binary that is not a shell connecting outside: %v, want not killed", ws)
			}
		},
	})
}
