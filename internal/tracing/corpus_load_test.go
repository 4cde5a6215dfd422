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
	"flag"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/palisade-dev/palisade/internal/tracing/hooks"
)

var updateCorpusLoad = flag.Bool("update-corpus-load", false, "rewrite testdata/corpus-load.golden")

// corpusLoadGolden records what became of every Tetragon TracingPolicy
// of the shared corpus that validation accepts, on the kernel it was
// recorded on.
const corpusLoadGolden = "testdata/corpus-load.golden"

// A hookTrigger makes the hook it is written for run, in cg.
type hookTrigger struct {
	name string
	fire func(t *testing.T, cg *testCgroup)
}

// triggers maps a hook's target — the function or LSM hook, the
// tracepoint "subsystem/event", or the uprobe "binary:symbol" (base name)
// — to what makes it run.
var triggers = func() map[string]hookTrigger {
	exec := hookTrigger{"exec /bin/true", func(t *testing.T, cg *testCgroup) { run(t, cg, realPath(t, "/bin/true")) }}
	open := hookTrigger{"cat a file", func(t *testing.T, cg *testCgroup) { run(t, cg, which(t, "cat"), tempFile(t, "f", "x\n")) }}
	write := hookTrigger{"sh writes a file", func(t *testing.T, cg *testCgroup) {
		run(t, cg, "/bin/sh", "-c", "echo x > "+filepath.Join(t.TempDir(), "w"))
	}}
	connect := hookTrigger{"connect to 127.0.0.1:1", func(t *testing.T, cg *testCgroup) { trigger(t, cg, "connect 127.0.0.1:1") }}
	udp := hookTrigger{"udp send to 127.0.0.1:9", func(t *testing.T, cg *testCgroup) { trigger(t, cg, "udp 127.0.0.1:9") }}
	dup := hookTrigger{"dup(1)", func(t *testing.T, cg *testCgroup) { trigger(t, cg, "dup") }}
	setuid := hookTrigger{"set*id(own ids)", func(t *testing.T, cg *testCgroup) { trigger(t, cg, "setids") }}
	failing := hookTrigger{"clock_settime, pivot_root, ptrace with invalid arguments", func(t *testing.T, cg *testCgroup) { trigger(t, cg, "failing-syscalls") }}
	link := hookTrigger{"ln", func(t *testing.T, cg *testCgroup) {
		run(t, cg, which(t, "ln"), tempFile(t, "f", "x"), filepath.Join(t.TempDir(), "l"))
	}}
	symlink := hookTrigger{"ln -s", func(t *testing.T, cg *testCgroup) {
		run(t, cg, which(t, "ln"), "-s", "/nonexistent", filepath.Join(t.TempDir(), "l"))
	}}
	userns := hookTrigger{"unshare -U", func(t *testing.T, cg *testCgroup) { run(t, cg, which(t, "unshare"), "-U", "true") }}
	mount := hookTrigger{"mount tmpfs in a private mount namespace", func(t *testing.T, cg *testCgroup) {
		run(t, cg, which(t, "unshare"), "-m", "--propagation", "private", "mount", "-t", "tmpfs", "none", t.TempDir())
	}}
	readline := hookTrigger{"interactive bash reads a line", func(t *testing.T, cg *testCgroup) {
		run(t, cg, "/bin/sh", "-c", "echo exit | "+realPath(t, "/bin/bash")+" -i")
	}}
	bash := hookTrigger{"bash -c true", func(t *testing.T, cg *testCgroup) { run(t, cg, realPath(t, "/bin/bash"), "-c", "true") }}
	m := map[string]hookTrigger{
		"raw_syscalls/sys_enter": exec, "sched/sched_process_exec": exec, "syscalls/sys_enter_execve": exec,
		"__x64_sys_execve": exec, "security_bprm_check": exec, "bprm_check_security": exec,
		"security_bprm_creds_for_exec": exec, "bprm_creds_for_exec": exec, "security_bprm_committing_creds": exec,
		"bprm_committing_creds": exec, "bprm_committed_creds": exec, "commit_creds": exec, "wake_up_new_task": exec,
		"security_file_open": open, "file_open": open, "fd_install": open, "__x64_sys_openat": open,
		"syscalls/sys_enter_openat": open, "do_sys_openat2": open, "security_file_permission": open,
		"file_permission": open, "security_mmap_file": exec, "mmap_file": exec, "__x64_sys_close": open,
		"__x64_sys_read": open, "ksys_read": open, "vfs_read": open, "__x64_sys_write": write, "ksys_write": write,
		"vfs_write": write, "security_path_truncate": write, "path_truncate": write,
		"tcp_connect": connect, "__x64_sys_connect": connect, "syscalls/sys_enter_connect": connect,
		"security_socket_connect": connect, "socket_connect": connect, "tcp_close": connect, "tcp_set_state": connect,
		"tcp_sendmsg": connect, "inet_csk_accept": connect,
		"udp_sendmsg": udp, "ip_send_skb": udp, "ip_output": udp, "__x64_sys_sendto": udp, "__cgroup_bpf_run_filter_skb": udp,
		"__x64_sys_dup": dup, "__x64_sys_dup2": dup, "__x64_sys_dup3": dup,
		"__x64_sys_setuid": setuid, "__sys_setuid": setuid, "security_task_fix_setuid": setuid, "task_fix_setuid": setuid,
		"create_user_ns": userns, "security_create_user_ns": userns, "userns_create": userns, "__x64_sys_unshare": userns,
		"security_sb_mount": mount, "sb_mount": mount, "path_mount": mount, "__x64_sys_mount": mount,
		"bash:readline": readline, "bash:main": bash,
		"syscalls/sys_enter_dup": dup, "syscalls/sys_enter_dup2": dup, "syscalls/sys_exit_openat": open,
		"syscalls/sys_enter_write": write, "syscalls/sys_enter_mount": mount,
		"syscalls/sys_enter_linkat": link, "__x64_sys_linkat": link, "syscalls/sys_enter_symlinkat": symlink, "__x64_sys_symlinkat": symlink,
		"syscalls/sys_enter_clock_settime": failing, "__x64_sys_clock_settime": failing,
		"syscalls/sys_enter_pivot_root": failing, "__x64_sys_pivot_root": failing,
		"syscalls/sys_enter_ptrace": failing, "__x64_sys_ptrace": failing,
		"syscalls/sys_enter_setuid": setuid, "syscalls/sys_enter_setgid": setuid, "syscalls/sys_enter_setreuid": setuid,
		"syscalls/sys_enter_setregid": setuid, "syscalls/sys_enter_setresuid": setuid, "syscalls/sys_enter_setresgid": setuid,
		"syscalls/sys_enter_setfsuid": setuid, "syscalls/sys_enter_setfsgid": setuid,
		"__x64_sys_setgid": setuid, "__x64_sys_setreuid": setuid, "__x64_sys_setregid": setuid, "__x64_sys_setresuid": setuid,
		"__x64_sys_setresgid": setuid, "__x64_sys_setfsuid": setuid, "__x64_sys_setfsgid": setuid,
	}
	return m
}()

// targetOf is the key of triggers for an attach string: "fentry/f",
// "lsm/h", "tracepoint/s/e", "uprobe/<path>:<symbol>", each possibly
// followed by a note in parentheses ("tracepoint/syscalls/sys_enter_dup
// (syscall kprobe: fentry not loadable on this kernel)").
func targetOf(attach string) string {
	attach, _, _ = strings.Cut(attach, " (")
	kind, rest, _ := strings.Cut(attach, "/")
	if kind == "uprobe" {
		path, sym, _ := strings.Cut(rest, ":")
		return filepath.Base(path) + ":" + sym
	}
	return rest
}

// Every Tetragon TracingPolicy of ../shared/corpus/tetragon-tracingpolicy
// that palisadectl import and validate --kernel accept is loaded through
// the Manager, scoped to a cgroup of the test's own (so that its Sigkill
// and Signal actions touch nothing else), and each hook that loads is
// fired by its trigger in that cgroup: the hook ran when its per-hook hit
// counter (Stats.Hits: calls in scope, before selectors) grew. A hook of
// an accepted policy that does not load is an error: a policy that
// validates on a kernel loads there. The outcome of every hook is
// recorded in corpusLoadGolden.
func TestCorpusLoadAndFire(t *testing.T) {
	requireKernel(t, false)
	dir := requireCorpus(t, "tetragon-tracingpolicy")
	k, err := hooks.LoadKernel()
	if err != nil {
		t.Fatal(err)
	}
	release, err := os.ReadFile("/proc/sys/kernel/osrelease")
	if err != nil {
		t.Fatal(err)
	}
	kernel := fmt.Sprintf("kernel %s %s", strings.TrimSpace(string(release)), k.Arch)

	var files []string
	err = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && (strings.HasSuffix(path, ".yaml") || strings.HasSuffix(path, ".yml")) {
			files = append(files, path)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(files)

	m := openTest(t, tempPinDir(t))
	cg := newCgroup(t)
	var lines, refusals []string
	var importRefused, validateRefused, accepted int
	policies := map[string]int{}
	hookCounts := map[string]int{}
	failedBy := map[HookState]int{}
	for _, path := range files {
		rel, _ := filepath.Rel(filepath.Dir(dir), path)
		rel = filepath.ToSlash(rel)
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		r := importOnKernel(t, rel, data)
		switch {
		case len(r.ImportErrors) > 0:
			importRefused++
			refusals = append(refusals, "import-refused "+rel)
			for _, d := range r.ImportErrors.Sort() {
				refusals = append(refusals, "\t"+oneLine(d.String()))
			}
			continue
		case len(r.Errors) > 0:
			validateRefused++
			refusals = append(refusals, "refused "+rel)
			for _, d := range r.Errors.Sort() {
				refusals = append(refusals, "\t"+oneLine(d.String()))
			}
			continue
		}
		for _, p := range r.Policies {
			accepted++
			pol := scoped(p, cg)
			rs := m.Apply(context.Background(), []Policy{pol})
			if len(rs) != 1 {
				t.Fatalf("%s: %d results", rel, len(rs))
			}
			worst := "fired"
			for _, h := range rs[0].Hooks {
				var line string
				switch {
				case h.State != HookLoaded:
					line = fmt.Sprintf("load-failed %s %s %s: %s: %s", rel, h.Path, h.Attach, h.State, oneLine(h.Message))
					worst = "load-failed"
					failedBy[h.State]++
					t.Errorf("%s: validate --kernel accepts it, and %s does not load: %s: %s", rel, h.Path, h.State, h.Message)
				default:
					tr, ok := triggers[targetOf(h.Attach)]
					if !ok {
						line = fmt.Sprintf("no-trigger %s %s %s", rel, h.Path, h.Attach)
						if worst == "fired" {
							worst = "no-trigger"
						}
						break
					}
					before := hits(t, m, pol.Key, h.Path)
					tr.fire(t, cg)
					if after := hits(t, m, pol.Key, h.Path); after > before {
						line = fmt.Sprintf("fired %s %s %s by %s", rel, h.Path, h.Attach, tr.name)
					} else {
						line = fmt.Sprintf("not-fired %s %s %s by %s", rel, h.Path, h.Attach, tr.name)
						t.Errorf("%s %s (%s): %s did not make the hook run (hits %d before, %d after)", rel, h.Path, h.Attach, tr.name, before, after)
						worst = "not-fired"
					}
				}
				hookCounts[strings.Fields(line)[0]]++
				lines = append(lines, line)
			}
			policies[worst]++
		}
	}
	m.Apply(context.Background(), nil)

	var b strings.Builder
	b.WriteString("# Every Tetragon TracingPolicy of ../shared/corpus/tetragon-tracingpolicy that palisadectl import\n" +
		"# and palisadectl validate --kernel accept, loaded through internal/tracing's Manager (scoped to a\n" +
		"# test cgroup) and each loaded hook fired by a trigger run in that cgroup (Stats.Hits grew).\n" +
		"# Lines: fired / no-trigger (loaded, no trigger written) / load-failed (state: reason) /\n" +
		"# not-fired (a failure). Policies count by their worst hook; a load failure of an accepted\n" +
		"# policy fails the test. The refused documents follow, with their reasons. Regenerate with\n" +
		"#   go test ./internal/tracing/ -run TestCorpusLoadAndFire -update-corpus-load\n")
	b.WriteString(kernel + "\n\n")
	fmt.Fprintf(&b, "documents %d: refused by the importer %d, refused by validate %d, accepted %d\n",
		len(files), importRefused, validateRefused, accepted)
	fmt.Fprintf(&b, "accepted policies %d: fired %d, loaded with a hook without trigger %d, a hook failed to load %d, not fired %d\n",
		accepted, policies["fired"], policies["no-trigger"], policies["load-failed"], policies["not-fired"])
	fmt.Fprintf(&b, "hooks %d: fired %d, no-trigger %d, load-failed %d (%s %d, %s %d, %s %d), not-fired %d\n\n",
		hookCounts["fired"]+hookCounts["no-trigger"]+hookCounts["load-failed"]+hookCounts["not-fired"],
		hookCounts["fired"], hookCounts["no-trigger"], hookCounts["load-failed"],
		HookNotSupported, failedBy[HookNotSupported], HookLoadError, failedBy[HookLoadError], HookNotFound, failedBy[HookNotFound],
		hookCounts["not-fired"])
	b.WriteString(strings.Join(lines, "\n") + "\n")
	b.WriteString("\n# refused by palisadectl import or by palisadectl validate --kernel, with the positioned reasons\n")
	b.WriteString(strings.Join(refusals, "\n") + "\n")
	got := b.String()
	t.Logf("accepted %d: fired %d, no trigger %d, load failed %d, not fired %d", accepted, policies["fired"], policies["no-trigger"], policies["load-failed"], policies["not-fired"])

	if *updateCorpusLoad {
		if err := os.MkdirAll(filepath.Dir(corpusLoadGolden), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(corpusLoadGolden, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(corpusLoadGolden)
	if err != nil {
		t.Fatalf("read %s: %v (run with -update-corpus-load to create it)", corpusLoadGolden, err)
	}
	if wantKernel := goldenKernel(string(want)); wantKernel != kernel {
		t.Skipf("%s was recorded on %q, and this is %q: what loads differs between kernels, so it is not compared (run with -update-corpus-load to see this kernel's)", corpusLoadGolden, wantKernel, kernel)
	}
	if string(want) != got {
		t.Errorf("corpus load changed (run go test ./internal/tracing/ -run TestCorpusLoadAndFire -update-corpus-load and review the diff)\n--- want\n%s--- got\n%s", want, got)
	}
}

// hits is the hit counter of one hook of a unit.
func hits(t *testing.T, m *Manager, key, path string) uint64 {
	t.Helper()
	st, err := m.Stats()
	if err != nil {
		t.Fatal(err)
	}
	return st.Hits[key][path]
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

func goldenKernel(s string) string {
	for l := range strings.Lines(s) {
		if strings.HasPrefix(l, "kernel ") {
			return strings.TrimSpace(l)
		}
	}
	return ""
}
