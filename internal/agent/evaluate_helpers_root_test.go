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

package agent

// Helpers of the end-to-end differential tests (TestL7KernelMatchesEvaluate,
// TestL7EgressKernelMatchesEvaluate, TestKafkaKernelMatchesEvaluate): the
// seed, a pod cgroup of the test's own under the machine's cgroup v2
// hierarchy, and client sockets created inside it.

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"

	"golang.org/x/sys/unix"
)

// evalSeed is the seed of a differential test: def, or the value of the
// environment variable env.
func evalSeed(t *testing.T, env string, def uint64) uint64 {
	t.Helper()
	s := os.Getenv(env)
	if s == "" {
		return def
	}
	v, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		t.Fatalf("%s=%q: %v", env, s, err)
	}
	return v
}

// evalNet is the second byte of the loopback addresses a differential
// test uses, 127.<evalNet>.x.y: random per process (not from the seed:
// it changes no verdict), so that two processes running the same test
// (two checkouts' make test) do not listen on the same addresses.
func evalNet() byte {
	var b [1]byte
	rand.Read(b[:])
	return 10 + b[0]%240
}

// evalAddr is 127.<b>.<c>.<d>.
func evalAddr(b, c, d byte) netip.Addr { return netip.AddrFrom4([4]byte{127, b, c, d}) }

// evalPodCgroup makes the test's cgroup root <v2>/<prefix>-<pid>-<random>
// with kubepods/pod<uid> in it (removed at the end) and returns the root
// (the agent's CgroupRoot) and the pod's directory.
func evalPodCgroup(t *testing.T, prefix, uid string) (root, pod string) {
	t.Helper()
	v2 := evalCgroupV2(t)
	var rnd [4]byte
	rand.Read(rnd[:])
	root = filepath.Join(v2, fmt.Sprintf("%s-%d-%s", prefix, os.Getpid(), hex.EncodeToString(rnd[:])))
	pod = filepath.Join(root, "kubepods", "pod"+uid)
	for _, d := range []string{root, filepath.Dir(pod), pod} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatalf("create cgroup %s: %v", d, err)
		}
	}
	t.Cleanup(func() {
		for _, d := range []string{pod, filepath.Dir(pod), root} {
			if err := os.Remove(d); err != nil {
				t.Errorf("remove cgroup %s: %v", d, err)
			}
		}
	})
	return root, pod
}

// evalInCgroup runs f with the process in the cgroup directory dir, and
// moves it back to its own cgroup after: sockets created by f are dir's
// (a socket's cgroup is its creator's at creation, for its whole life).
func evalInCgroup(t *testing.T, dir string, f func()) {
	t.Helper()
	home := evalOwnCgroup(t, evalCgroupV2(t))
	pid := []byte(strconv.Itoa(os.Getpid()))
	if err := os.WriteFile(filepath.Join(dir, "cgroup.procs"), pid, 0); err != nil {
		t.Fatalf("enter cgroup %s: %v", dir, err)
	}
	defer func() {
		if err := os.WriteFile(filepath.Join(home, "cgroup.procs"), pid, 0); err != nil {
			t.Fatalf("leave cgroup %s: %v", dir, err)
		}
	}()
	f()
}

// evalSockets hands out IPv4 TCP sockets created inside a cgroup, made
// in batches (the process enters the cgroup once per batch, not once per
// connection), so that a workload's client connections are its cgroup's.
type evalSockets struct {
	t    *testing.T
	dir  string
	mu   sync.Mutex
	free []int
}

func newEvalSockets(t *testing.T, dir string) *evalSockets {
	s := &evalSockets{t: t, dir: dir}
	t.Cleanup(func() {
		for _, fd := range s.free {
			unix.Close(fd)
		}
	})
	return s
}

// dial connects from local (port chosen by the kernel) to remote with a
// socket of the cgroup; the connection is established when it returns,
// so that the sockops program has seen it before the first write.
func (s *evalSockets) dial(local netip.Addr, remote netip.AddrPort) (net.Conn, error) {
	s.t.Helper()
	s.mu.Lock()
	if len(s.free) == 0 {
		evalInCgroup(s.t, s.dir, func() {
			for range 256 {
				fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
				if err != nil {
					s.t.Errorf("socket in cgroup %s: %v", s.dir, err)
					return
				}
				s.free = append(s.free, fd)
			}
		})
	}
	if len(s.free) == 0 {
		s.mu.Unlock()
		return nil, fmt.Errorf("no socket could be made in cgroup %s", s.dir)
	}
	fd := s.free[len(s.free)-1]
	s.free = s.free[:len(s.free)-1]
	s.mu.Unlock()
	if err := unix.Bind(fd, &unix.SockaddrInet4{Addr: local.As4()}); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("bind %s: %w", local, err)
	}
	if err := unix.Connect(fd, &unix.SockaddrInet4{Addr: remote.Addr().As4(), Port: int(remote.Port())}); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("connect %s -> %s: %w", local, remote, err)
	}
	f := os.NewFile(uintptr(fd), "evalsock")
	defer f.Close()
	return net.FileConn(f)
}
