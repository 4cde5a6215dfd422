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
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func TestMain(m *testing.M) { os.Exit(Isolate(m.Run)) }

// inNetns runs f on a thread in the network namespace at nsPath. Only the
// thread is there: /proc/self and /proc/net show the main thread's
// namespace, but /proc/sys/net files and netlink sockets that f opens
// belong to the thread's.
func inNetns(t *testing.T, nsPath string, f func() error) {
	t.Helper()
	done := make(chan error)
	go func() {
		runtime.LockOSThread()
		self, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			done <- err
			return
		}
		defer self.Close()
		ns, err := os.Open(nsPath)
		if err != nil {
			done <- err
			return
		}
		defer ns.Close()
		if err := unix.Setns(int(ns.Fd()), unix.CLONE_NEWNET); err != nil {
			done <- err
			return
		}
		err = f()
		if unix.Setns(int(self.Fd()), unix.CLONE_NEWNET) == nil {
			runtime.UnlockOSThread() // else the thread ends with this goroutine
		}
		done <- err
	}()
	if err := <-done; err != nil {
		t.Fatalf("in %s: %v", nsPath, err)
	}
}

// forwarding reads ip_forward in the network namespace at nsPath.
func forwarding(t *testing.T, nsPath string) string {
	t.Helper()
	var b []byte
	inNetns(t, nsPath, func() (err error) {
		b, err = os.ReadFile("/proc/sys/net/ipv4/ip_forward")
		return err
	})
	return strings.TrimSpace(string(b))
}

// TestIsolate checks the node namespace Isolate made for this binary: it
// is not the namespace `go test` started it in, its loopback is up, it has
// a default route, it forwards, and routing workloads through it leaves
// the outer namespace's ip_forward as it was.
func TestIsolate(t *testing.T) {
	if !Isolated() {
		if err := Available(); err != nil {
			t.Skipf("not isolated: %v", err)
		}
		t.Fatal("root and iproute2 are here, but TestMain did not run the tests in a node namespace of their own")
	}
	outer := fmt.Sprintf("/proc/%d/ns/net", os.Getppid())
	same, err := sameNetns("/proc/thread-self/ns/net", outer)
	if err != nil {
		t.Fatal(err)
	}
	if same {
		t.Fatalf("node namespace %s is the namespace of the parent process", NodeNamespace())
	}
	outerBefore := forwarding(t, outer)
	if got := forwarding(t, "/run/netns/"+NodeNamespace()); got != "1" {
		t.Errorf("ip_forward in the node namespace = %s, want 1", got)
	}
	lo, err := net.InterfaceByName("lo")
	if err != nil || lo.Flags&net.FlagUp == 0 {
		t.Errorf("loopback of the node namespace not up: %+v, %v", lo, err)
	}
	if routes, err := os.ReadFile("/proc/net/route"); err != nil || !strings.Contains(string(routes), "\n"+UplinkName+"\t00000000\t") {
		t.Errorf("no default route through %s in the node namespace: %v\n%s", UplinkName, err, routes)
	}

	// Two workloads talk through the node: forwarding works here.
	sfx := fmt.Sprint(os.Getpid() % 100000)
	a, err := Create("nlA"+sfx, netip.MustParseAddr("10.203.0.1"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Delete() })
	b, err := Create("nlB"+sfx, netip.MustParseAddr("10.203.0.2"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Delete() })
	if _, err := net.InterfaceByName(a.HostIf); err != nil {
		t.Errorf("host side %s is not in the node namespace: %v", a.HostIf, err)
	}
	inNetns(t, outer, func() error {
		if _, err := net.InterfaceByName(a.HostIf); err == nil {
			t.Errorf("host side %s is in the outer namespace", a.HostIf)
		}
		return nil
	})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := b.Serve(ctx, 8080); err != nil {
		t.Fatal(err)
	}
	if !a.TCP(b.IP, 8080, 2*time.Second) {
		t.Error("workload A cannot reach B through the node namespace")
	}
	if after := forwarding(t, outer); after != outerBefore {
		t.Errorf("the outer namespace's ip_forward changed from %s to %s", outerBefore, after)
	}
	t.Logf("node namespace %s forwards; the outer namespace's ip_forward stays %s", NodeNamespace(), outerBefore)
}
