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

// Package netlab makes workloads out of network namespaces on this host,
// wired the way veth-based CNIs wire pods: a veth pair with the host side
// in the node's namespace (the calling process's), a /32 host route to the
// workload's address on it, and the workload's default route through the
// link-local gateway 169.254.1.1 that the host side answers for. Tests, the
// e2e suite and `make run` use it; it needs root and iproute2.
//
// `make run` uses the machine's namespace as the node. Tests must not: each
// test binary that builds workloads runs in a node namespace of its own
// (Isolate), so that no test writes a device or sysctl of the machine's
// namespace and packages tested in parallel cannot disturb each other.
package netlab

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Gateway is the workloads' default gateway, owned by every host-side veth.
const Gateway = "169.254.1.1"

// Workload is a network namespace with one veth to the host.
type Workload struct {
	// Name is the namespace's name (under /run/netns).
	Name string
	// HostIf is the host-side interface and Ifindex its index.
	HostIf  string
	Ifindex int
	IP      netip.Addr
}

// Available says why workloads cannot be made here, or nil.
func Available() error {
	if os.Geteuid() != 0 {
		return errors.New("network namespaces and veth pairs need root")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		return errors.New("the ip command (iproute2) is not installed")
	}
	return nil
}

// EnableForwarding turns on IPv4 forwarding in the calling process's
// network namespace, which routing between workloads through the node
// needs; it returns a function that restores the old value. Isolate calls
// it inside a test's own node namespace; tests never call it themselves,
// as outside that namespace it would change the machine's setting under
// every other test running at the time.
func EnableForwarding() (restore func(), err error) {
	const p = "/proc/sys/net/ipv4/ip_forward"
	old, err := os.ReadFile(p)
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(p, []byte("1"), 0o644); err != nil {
		return nil, err
	}
	return func() { os.WriteFile(p, old, 0o644) }, nil
}

func ipCmd(args ...string) error {
	out, err := exec.Command("ip", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ip %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// Create makes the workload name (at most 15 characters, the interface
// name limit, with the host side called "h" + name) with address ip. On
// error, what was made is removed.
func Create(name string, ip netip.Addr) (w *Workload, err error) {
	host := "h" + name
	if len(host) > 15 {
		return nil, fmt.Errorf("workload name %q is too long: the host interface name %q exceeds 15 characters", name, host)
	}
	w = &Workload{Name: name, HostIf: host, IP: ip}
	defer func() {
		if err != nil {
			w.Delete()
		}
	}()
	steps := [][]string{
		{"netns", "add", name},
		{"link", "add", host, "type", "veth", "peer", "name", "eth0", "netns", name},
		{"addr", "add", Gateway + "/32", "dev", host},
		{"link", "set", host, "up"},
		{"route", "add", ip.String() + "/32", "dev", host},
		{"-n", name, "link", "set", "lo", "up"},
		{"-n", name, "addr", "add", ip.String() + "/32", "dev", "eth0"},
		{"-n", name, "link", "set", "eth0", "up"},
		{"-n", name, "route", "add", Gateway, "dev", "eth0"},
		{"-n", name, "route", "add", "default", "via", Gateway, "dev", "eth0"},
	}
	for _, s := range steps {
		if err := ipCmd(s...); err != nil {
			return w, err
		}
	}
	ifc, err := net.InterfaceByName(host)
	if err != nil {
		return w, err
	}
	w.Ifindex = ifc.Index
	return w, nil
}

// Delete removes the namespace and with it the veth pair.
func (w *Workload) Delete() error {
	err := ipCmd("netns", "del", w.Name)
	if _, serr := os.Stat("/run/netns/" + w.Name); errors.Is(serr, os.ErrNotExist) {
		err = nil
	}
	// Deleting the namespace destroys the pair, asynchronously: the host
	// side may still be listed for a moment, or vanish under our feet.
	if _, lerr := net.InterfaceByName(w.HostIf); lerr == nil {
		if derr := ipCmd("link", "del", w.HostIf); derr != nil && !strings.Contains(derr.Error(), "Cannot find device") {
			err = errors.Join(err, derr)
		}
	}
	return err
}

// Do runs f on a thread inside the workload's namespace: sockets f opens
// belong to the workload.
func (w *Workload) Do(f func() error) error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	self, err := os.Open("/proc/thread-self/ns/net")
	if err != nil {
		return err
	}
	defer self.Close()
	target, err := os.Open("/run/netns/" + w.Name)
	if err != nil {
		return err
	}
	defer target.Close()
	if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
		return fmt.Errorf("enter %s: %w", w.Name, err)
	}
	defer func() {
		if err := unix.Setns(int(self.Fd()), unix.CLONE_NEWNET); err != nil {
			panic(err) // a thread left in the wrong namespace must not be reused
		}
	}()
	return f()
}

// Serve listens on TCP and UDP port in the workload until ctx ends: TCP
// connections get "ok\n" and are closed, UDP datagrams are echoed.
func (w *Workload) Serve(ctx context.Context, port int) error {
	addr := fmt.Sprintf(":%d", port)
	var ln net.Listener
	var pc net.PacketConn
	err := w.Do(func() error {
		var err error
		if ln, err = net.Listen("tcp", addr); err != nil {
			return err
		}
		pc, err = net.ListenPacket("udp", addr)
		return err
	})
	if err != nil {
		if ln != nil {
			ln.Close()
		}
		return err
	}
	go func() {
		<-ctx.Done()
		ln.Close()
		pc.Close()
	}()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Write([]byte("ok\n"))
			c.Close()
		}
	}()
	go func() {
		buf := make([]byte, 1500)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			pc.WriteTo(buf[:n], from)
		}
	}()
	return nil
}

// TCP reports whether a TCP connection from the workload to addr:port is
// answered within timeout.
func (w *Workload) TCP(to netip.Addr, port int, timeout time.Duration) bool {
	var ok bool
	w.Do(func() error {
		c, err := net.DialTimeout("tcp", netip.AddrPortFrom(to, uint16(port)).String(), timeout)
		if err != nil {
			return nil
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(timeout))
		buf := make([]byte, 3)
		n, _ := c.Read(buf)
		ok = string(buf[:n]) == "ok\n"
		return nil
	})
	return ok
}

// UDP reports whether a datagram from the workload to addr:port is echoed
// within timeout.
func (w *Workload) UDP(to netip.Addr, port int, timeout time.Duration) bool {
	var ok bool
	w.Do(func() error {
		c, err := net.Dial("udp", netip.AddrPortFrom(to, uint16(port)).String())
		if err != nil {
			return nil
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(timeout))
		msg := []byte("palisade")
		if _, err := c.Write(msg); err != nil {
			return nil
		}
		buf := make([]byte, 64)
		n, err := c.Read(buf)
		ok = err == nil && string(buf[:n]) == string(msg)
		return nil
	})
	return ok
}
