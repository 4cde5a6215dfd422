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
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/palisade-dev/palisade/internal/engine"
)

// recorder wraps a listener: it keeps every byte each accepted connection
// read, by the client's port, until the connection is closed.
type recorder struct {
	net.Listener
	mu    sync.Mutex
	conns map[string]*recConn // by the client's address and port
	cond  *sync.Cond
}

type recConn struct {
	net.Conn
	r      *recorder
	peer   string
	mu     sync.Mutex
	got    []byte
	closed bool
}

func newRecorder(ln net.Listener) *recorder {
	r := &recorder{Listener: ln, conns: map[string]*recConn{}}
	r.cond = sync.NewCond(&r.mu)
	return r
}

func (r *recorder) Accept() (net.Conn, error) {
	c, err := r.Listener.Accept()
	if err != nil {
		return nil, err
	}
	rc := &recConn{Conn: c, r: r, peer: c.RemoteAddr().String()}
	r.mu.Lock()
	r.conns[rc.peer] = rc
	r.mu.Unlock()
	return rc, nil
}

func (c *recConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	c.mu.Lock()
	c.got = append(c.got, b[:n]...)
	c.mu.Unlock()
	return n, err
}

func (c *recConn) Close() error {
	err := c.Conn.Close()
	c.r.mu.Lock()
	c.closed = true
	c.r.cond.Broadcast()
	c.r.mu.Unlock()
	return err
}

// received waits until the server closed the connection from the client
// address peer (after the client closed it), and returns what it read.
func (r *recorder) received(t testing.TB, peer string) string {
	t.Helper()
	deadline := time.AfterFunc(30*time.Second, func() { r.mu.Lock(); r.cond.Broadcast(); r.mu.Unlock() })
	defer deadline.Stop()
	start := time.Now()
	r.mu.Lock()
	defer r.mu.Unlock()
	for {
		if c, ok := r.conns[peer]; ok && c.closed {
			delete(r.conns, peer) // the address may be used again
			c.mu.Lock()
			defer c.mu.Unlock()
			return string(c.got)
		}
		if time.Since(start) > 30*time.Second {
			t.Fatalf("the server never closed the connection from %s", peer)
		}
		r.cond.Wait()
	}
}

// egress is a client cgroup with l7 enforcing its writes to a server.
type egress struct {
	d    *Datapath
	cg   string
	home string
	addr string // the server's
	rec  *recorder
	mu   sync.Mutex
	seen []string
	mux  sync.Mutex // one dial in the cgroup at a time
}

func (e *egress) handled() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Clone(e.seen)
}

// newCgroup creates a cgroup for the test under the cgroup v2 root and
// attaches sockops to it.
func newCgroup(t testing.TB, d *Datapath) string {
	t.Helper()
	if _, err := os.Stat(filepath.Join(CgroupRoot(), "cgroup.procs")); err != nil {
		t.Skipf("no cgroup v2 at %s: %v", CgroupRoot(), err)
	}
	var rnd [4]byte
	rand.Read(rnd[:])
	cg := filepath.Join(CgroupRoot(), fmt.Sprintf("palisade-l7-egress-%d-%s", os.Getpid(), hex.EncodeToString(rnd[:])))
	if err := os.Mkdir(cg, 0o755); err != nil {
		t.Fatalf("create cgroup: %v", err)
	}
	t.Cleanup(func() {
		if err := os.Remove(cg); err != nil {
			t.Errorf("remove cgroup %s: %v", cg, err)
		}
	})
	if err := d.AttachCgroup(cg); err != nil {
		t.Fatal(err)
	}
	return cg
}

// startEgress starts a net/http server (outside the test's cgroup; its
// connections are read through a recorder) and binds lists[id] to the
// client side of connections from 127.0.0.1 to its port. raw serves
// nothing: the connections are read and discarded.
func startEgress(t testing.TB, lists map[engine.L7ID]engine.L7List, id engine.L7ID, raw bool) *egress {
	t.Helper()
	return startEgressOn(t, "tcp4", "127.0.0.1", lists, id, raw)
}

// startEgressOn is startEgress with the server on network ("tcp4" or
// "tcp6") and addr; the binding is of the same address (the client's
// local address on loopback).
func startEgressOn(t testing.TB, network, addr string, lists map[engine.L7ID]engine.L7List, id engine.L7ID, raw bool) *egress {
	t.Helper()
	d := requireKernel(t)
	ln, err := net.Listen(network, net.JoinHostPort(addr, "0"))
	if err != nil {
		t.Skipf("listen on %s %s: %v", network, addr, err)
	}
	e := &egress{d: d, cg: newCgroup(t, d), home: ownCgroup(t)}
	if err != nil {
		t.Fatal(err)
	}
	e.rec = newRecorder(ln)
	e.addr = ln.Addr().String()
	if raw {
		go func() {
			for {
				c, err := e.rec.Accept()
				if err != nil {
					return
				}
				go func() { io.Copy(io.Discard, c); c.Close() }()
			}
		}()
		t.Cleanup(func() { ln.Close() })
	} else {
		srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			io.Copy(io.Discard, r.Body)
			e.mu.Lock()
			e.seen = append(e.seen, r.Method+" "+r.URL.RequestURI())
			e.mu.Unlock()
			fmt.Fprintf(w, "ok %s", r.URL.Path)
		})}
		go srv.Serve(e.rec)
		t.Cleanup(func() { srv.Close() })
	}
	e.apply(t, lists, id, 1)
	return e
}

// apply writes a generation binding list id to the server's port.
func (e *egress) apply(t testing.TB, lists map[engine.L7ID]engine.L7List, id engine.L7ID, gen uint64) {
	t.Helper()
	tables, err := engine.CompileHTTP(lists)
	if err != nil {
		t.Fatal(err)
	}
	ap := netip.MustParseAddrPort(e.addr)
	binds := []Binding{{Addr: ap.Addr(), Port: ap.Port(), List: id, Egress: true}}
	if err := e.d.Apply(gen, tables, binds); err != nil {
		t.Fatal(err)
	}
}

// inCgroup runs f with the process in the test's cgroup: sockets created
// then are the cgroup's.
func (e *egress) inCgroup(t testing.TB, f func()) {
	t.Helper()
	e.mux.Lock()
	defer e.mux.Unlock()
	pid := []byte(strconv.Itoa(os.Getpid()))
	if err := os.WriteFile(filepath.Join(e.cg, "cgroup.procs"), pid, 0); err != nil {
		t.Fatalf("enter cgroup: %v", err)
	}
	defer func() {
		if err := os.WriteFile(filepath.Join(e.home, "cgroup.procs"), pid, 0); err != nil {
			t.Fatalf("leave cgroup: %v", err)
		}
	}()
	f()
}

// dial connects to the server from a socket of the test's cgroup.
func (e *egress) dial(t testing.TB) (*net.TCPConn, *bufio.Reader) {
	t.Helper()
	var c net.Conn
	var err error
	e.inCgroup(t, func() { c, err = net.Dial("tcp", e.addr) })
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(30 * time.Second))
	return c.(*net.TCPConn), bufio.NewReader(c)
}

// finish closes the client and returns what the server read of it.
func (e *egress) finish(t testing.TB, c *net.TCPConn) string {
	t.Helper()
	peer := c.LocalAddr().String()
	c.Close()
	return e.rec.received(t, peer)
}

// events starts reading the verdict events for the test.
func events(t testing.TB, d *Datapath) <-chan Event {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ch, errs, err := d.Events(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		for range ch {
		}
		select {
		case err := <-errs:
			t.Errorf("events: %v", err)
		default:
		}
	})
	return ch
}

func nextEvent(t testing.TB, ch <-chan Event) Event {
	t.Helper()
	select {
	case e, ok := <-ch:
		if !ok {
			t.Fatal("events closed")
		}
		return e
	case <-time.After(30 * time.Second):
		t.Fatal("no event within 30 s")
	}
	return Event{}
}
