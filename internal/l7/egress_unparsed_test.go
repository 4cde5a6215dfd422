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

package l7

import (
	"errors"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/palisade-dev/palisade/internal/engine"
)

// waitingInConnect reports whether a thread of this process sleeps in
// sk_stream_wait_connect (a write waiting for its connection), from the
// threads' kernel stacks.
func waitingInConnect(t *testing.T) bool {
	t.Helper()
	tasks, err := filepath.Glob("/proc/self/task/*/stack")
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range tasks {
		b, err := os.ReadFile(p)
		if err == nil && strings.Contains(string(b), "sk_stream_wait_connect") {
			return true
		}
	}
	return false
}

// TestEgressWriteBeforeEstablished: a write that begins while the
// connection is still being established goes through TCP's own sendmsg,
// not sk_msg (the socket enters l7_esocks only once established): that
// write is NOT decided (the documented limit), but l7_msg sees on the next
// write that TCP holds bytes it never passed, and refuses the connection
// from then on (EACCES, counter unparsed-write).
//
// The listener's accept queue is kept full so that the client's SYN is
// dropped: its connect stays in progress until the queue has room and the
// SYN is sent again (TCP's first retransmission, about a second).
func TestEgressWriteBeforeEstablished(t *testing.T) {
	d := requireKernel(t)
	e := &egress{d: d, cg: newCgroup(t, d), home: ownCgroup(t)}
	lfd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(lfd)
	if err := unix.Bind(lfd, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	if err := unix.Listen(lfd, 0); err != nil {
		t.Fatal(err)
	}
	sa, err := unix.Getsockname(lfd)
	if err != nil {
		t.Fatal(err)
	}
	port := sa.(*unix.SockaddrInet4).Port
	tables, err := engine.CompileHTTP(egressLists)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Apply(1, tables, []Binding{{Addr: netip.MustParseAddr("127.0.0.1"), Port: uint16(port), List: testListID, Egress: true}}); err != nil {
		t.Fatal(err)
	}
	// Fill the accept queue (one pending connection, from outside the cgroup).
	filler, err := net.Dial("tcp4", (&net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: port}).String())
	if err != nil {
		t.Fatal(err)
	}
	defer filler.Close()
	var cfd int
	e.inCgroup(t, func() { cfd, err = unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, 0) })
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(cfd)
	if err := unix.Connect(cfd, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}, Port: port}); !errors.Is(err, unix.EINPROGRESS) {
		t.Fatalf("connect: %v, want EINPROGRESS (the SYN dropped by the full queue)", err)
	}
	if err := unix.SetNonblock(cfd, false); err != nil {
		t.Fatal(err)
	}
	written := make(chan error, 1)
	go func() {
		_, err := unix.Write(cfd, []byte(refusedGet))
		written <- err
	}()
	deadline := time.Now().Add(10 * time.Second)
	for !waitingInConnect(t) {
		if time.Now().After(deadline) {
			t.Skip("no thread seen in sk_stream_wait_connect (kernel stacks not readable?)")
		}
		time.Sleep(time.Millisecond)
	}
	// Room in the queue: the SYN's retransmission connects.
	nfd, _, err := unix.Accept(lfd)
	if err != nil {
		t.Fatal(err)
	}
	unix.Close(nfd)
	if err := <-written; err != nil {
		t.Fatalf("the write waiting for the connection: %v", err)
	}
	sfd, _, err := unix.Accept(lfd)
	if err != nil {
		t.Fatal(err)
	}
	server, err := net.FileConn(os.NewFile(uintptr(sfd), "server"))
	if err != nil {
		t.Fatal(err)
	}
	defer server.Close()
	server.SetDeadline(time.Now().Add(30 * time.Second))
	got := make([]byte, len(refusedGet))
	if _, err := io.ReadFull(server, got); err != nil {
		t.Fatalf("server read: %v", err)
	}
	if string(got) != refusedGet {
		t.Fatalf("server read %q", got)
	}
	t.Logf("the write that began before the connection was established reached the server undecided: %q", got)
	// The next write: l7_msg finds bytes it never passed and refuses.
	if _, err := unix.Write(cfd, []byte(allowedGet)); !errors.Is(err, unix.EACCES) {
		t.Fatalf("next write: %v, want EACCES", err)
	}
	c, err := d.CountersDir(true)
	if err != nil {
		t.Fatal(err)
	}
	if c[ReasonUnparsed] != 1 || c[ReasonSockets] != 1 {
		t.Fatalf("egress counters %v", c)
	}
	unix.Shutdown(cfd, unix.SHUT_WR)
	if rest, err := io.ReadAll(server); err != nil || len(rest) != 0 {
		t.Fatalf("server read %q after the refusal (%v)", rest, err)
	}
}
