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

package netlab

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"syscall"

	"golang.org/x/sys/unix"
)

// nodeEnv marks a process that Isolate started in a node namespace of its
// own; it holds the namespace's name.
const nodeEnv = "PALISADE_NETLAB_NODE"

// UplinkName is the node namespace's stand-in for a node's uplink: the
// device of its default route, which leads nowhere.
const UplinkName = "uplink"

// The uplink's address and gateway, from TEST-NET-1 (RFC 5737), which no
// workload of a test uses.
const (
	uplinkAddr    = "192.0.2.1/24"
	uplinkGateway = "192.0.2.254"
)

// isolated is the node namespace this process runs in, once verified.
var isolated string

// Isolate gives a test binary a node of its own. Tests that wire workloads
// to "the node" (host-side veths, routes, forwarding between workloads,
// TCX programs on the host ends) use the process's network namespace as
// that node; `go test ./...` runs packages in parallel, so two packages
// doing that in the machine's namespace would share its devices and its
// ip_forward sysctl, and one package's restore could cut the other's
// traffic. Instead, Isolate creates a network namespace named for this
// process ("palnode<pid>"), brings its loopback up, gives it a default
// route through a stand-in uplink (UplinkName), and runs this very program again
// inside it, with the same arguments; there, it turns forwarding on (in
// that namespace only) and calls run. Everything the
// tests start — kube-apiserver, etcd, the agent, ip, bpftool — inherits
// the namespace, and it is deleted when the run ends. Mounts (bpffs
// included) are shared with the machine as before: only the network is
// private.
//
// Use it as the whole of TestMain:
//
//	func TestMain(m *testing.M) { os.Exit(netlab.Isolate(m.Run)) }
//
// Without root or iproute2 (Available), run is called in place: the tests
// that need namespaces skip themselves, and nothing else here touches the
// network. Any other failure to isolate is returned as exit status 1
// rather than letting the tests run in the machine's namespace.
func Isolate(run func() int) int {
	if name := os.Getenv(nodeEnv); name != "" {
		if err := enterNode(name); err != nil {
			fmt.Fprintf(os.Stderr, "netlab: %v\n", err)
			return 1
		}
		return run()
	}
	if Available() != nil {
		return run()
	}
	code, err := runInNode(fmt.Sprintf("palnode%d", os.Getpid()))
	if err != nil {
		fmt.Fprintf(os.Stderr, "netlab: %v\n", err)
		return 1
	}
	return code
}

// Isolated reports whether this process runs in a node namespace that
// Isolate made for it. Tests that add devices or routes to the node check
// it, so that a package that forgets Isolate fails instead of disturbing
// the machine.
func Isolated() bool { return isolated != "" }

// NodeNamespace is the name of the node namespace this process runs in
// (see Isolate), or "" when it is not isolated.
func NodeNamespace() string { return isolated }

// enterNode is the inner half of Isolate: it checks that this process is
// in fact in the named namespace, and turns forwarding on there.
func enterNode(name string) error {
	same, err := sameNetns("/proc/self/ns/net", "/run/netns/"+name)
	if err != nil {
		return fmt.Errorf("check node namespace %s: %w", name, err)
	}
	if !same {
		return fmt.Errorf("%s=%s is set but this process is not in that namespace: refusing to write its sysctls", nodeEnv, name)
	}
	if _, err := EnableForwarding(); err != nil {
		return fmt.Errorf("forwarding in node namespace %s: %w", name, err)
	}
	isolated = name
	return nil
}

// runInNode is the outer half of Isolate: it makes the namespace, runs
// this program again inside it and returns its exit status.
func runInNode(name string) (code int, err error) {
	if err := ipCmd("netns", "add", name); err != nil {
		return 0, err
	}
	defer func() {
		if derr := ipCmd("netns", "del", name); derr != nil {
			err = errors.Join(err, derr)
		}
	}()
	for _, step := range [][]string{
		{"link", "set", "lo", "up"},
		// A default route, as every node has: kube-apiserver will not
		// start without one (it takes its advertise address from it). It
		// leads into a veth whose peer, also here, has no address, so what
		// a test sends to the world is dropped there rather than leaving
		// the machine. (veth, which workloads need anyway, rather than
		// dummy, which some kernels lack.)
		{"link", "add", UplinkName, "type", "veth", "peer", "name", UplinkName + "peer"},
		{"addr", "add", uplinkAddr, "dev", UplinkName},
		{"link", "set", UplinkName + "peer", "up"},
		{"link", "set", UplinkName, "up"},
		{"route", "add", "default", "via", uplinkGateway, "dev", UplinkName},
	} {
		if err := ipCmd(append([]string{"-n", name}, step...)...); err != nil {
			return 0, err
		}
	}
	exe, err := os.Executable()
	if err != nil {
		return 0, err
	}
	cmd := exec.Command(exe, os.Args[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.Env = append(os.Environ(), nodeEnv+"="+name)
	// The child dies with the thread that starts it, which stays locked
	// (and so alive) until the child is reaped: a killed `go test` leaves
	// no test running in an orphaned namespace.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}

	runtime.LockOSThread() // never unlocked: see above, and a thread whose setns back failed must die with us
	if err := startIn(cmd, "/run/netns/"+name); err != nil {
		return 0, err
	}
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGQUIT, syscall.SIGHUP)
	defer signal.Stop(sigs)
	go func() {
		for s := range sigs {
			cmd.Process.Signal(s) // the child reports: a timeout's SIGQUIT dumps its goroutines
		}
	}()
	err = cmd.Wait()
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		if exit.ExitCode() >= 0 {
			return exit.ExitCode(), nil
		}
		return 1, fmt.Errorf("tests in node namespace %s: %v", name, err)
	}
	if err != nil {
		return 0, err
	}
	return 0, nil
}

// startIn starts cmd in the network namespace at path: the calling
// thread, which must be locked, enters it, forks the child (which inherits
// the thread's namespace) and returns to its own.
func startIn(cmd *exec.Cmd, path string) error {
	self, err := os.Open("/proc/thread-self/ns/net")
	if err != nil {
		return err
	}
	defer self.Close()
	target, err := os.Open(path)
	if err != nil {
		return err
	}
	defer target.Close()
	if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
		return fmt.Errorf("enter %s: %w", path, err)
	}
	serr := cmd.Start()
	if err := unix.Setns(int(self.Fd()), unix.CLONE_NEWNET); err != nil {
		if serr == nil {
			cmd.Process.Kill()
			cmd.Wait()
		}
		return fmt.Errorf("return from %s: %w", path, err)
	}
	return serr
}

// sameNetns reports whether two nsfs paths name the same namespace.
func sameNetns(a, b string) (bool, error) {
	var sa, sb unix.Stat_t
	if err := unix.Stat(a, &sa); err != nil {
		return false, fmt.Errorf("%s: %w", a, err)
	}
	if err := unix.Stat(b, &sb); err != nil {
		return false, fmt.Errorf("%s: %w", b, err)
	}
	return sa.Dev == sb.Dev && sa.Ino == sb.Ino, nil
}
