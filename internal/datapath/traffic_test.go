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

package datapath

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv4"
	"golang.org/x/sys/unix"

	"github.com/palisade-dev/palisade/internal/engine"
	"github.com/palisade-dev/palisade/internal/netlab"
)

// Two workloads, each a network namespace with a veth to the node, routed
// through the node: A 10.200.1.1 and B 10.200.2.1. The node is the test
// binary's own namespace (netlab.Isolate in TestMain), which forwards.
var (
	wlA = addr("10.200.1.1")
	wlB = addr("10.200.2.1")
)

const (
	ruleTCP  engine.RuleID = 1
	ruleUDP  engine.RuleID = 2
	ruleICMP engine.RuleID = 3
	ruleInB  engine.RuleID = 10
)

// trafficState: A may send TCP 8080, UDP 9000 and echo requests to B; B
// admits everything from A. Both are default-deny both ways, so replies
// pass only through conntrack. bID is B's identity and udpRule the rule
// allowing UDP, so that two generations can differ everywhere.
func trafficState(bID engine.Identity, udpRule engine.RuleID) *engine.MapState {
	both := engine.IngressDefaultDeny | engine.EgressDefaultDeny
	pk := func(pol uint32, dir engine.Direction, id engine.Identity, p engine.Proto, port uint16, plen uint8) engine.PolicyKey {
		return engine.PolicyKey{PolicyID: pol, Direction: dir, Identity: id, Proto: p, Port: port, PrefixLen: plen}
	}
	allow := func(r engine.RuleID) engine.PolicyEntry {
		return engine.PolicyEntry{Flags: engine.FlagAllow, AllowRule: r}
	}
	return &engine.MapState{
		Endpoints: map[netip.Addr]engine.EndpointEntry{
			wlA: {Identity: 256, PolicyID: 256, Flags: both},
			wlB: {Identity: bID, PolicyID: 257, Flags: both},
		},
		IPCache: map[netip.Prefix]engine.Identity{netip.PrefixFrom(wlA, 32): 256, netip.PrefixFrom(wlB, 32): bID},
		Policy: map[engine.PolicyKey]engine.PolicyEntry{
			pk(256, engine.Egress, bID, engine.ProtoTCP, 8080, 24): allow(ruleTCP),
			pk(256, engine.Egress, bID, engine.ProtoUDP, 9000, 24): allow(udpRule),
			pk(256, engine.Egress, bID, engine.ProtoICMP, 8, 24):   allow(ruleICMP),
			pk(257, engine.Ingress, 256, 0, 0, 0):                  allow(ruleInB),
		},
	}
}

type workloads struct {
	nsA, nsB string
	hA, hB   int // host-side ifindexes
}

func setupWorkloads(t *testing.T) *workloads {
	t.Helper()
	requireKernel(t)
	requireNode(t)
	sfx := strconv.Itoa(os.Getpid() % 100000)
	w := &workloads{}
	for _, x := range []struct {
		name string
		a    netip.Addr
		ns   *string
		idx  *int
	}{{"palA" + sfx, wlA, &w.nsA, &w.hA}, {"palB" + sfx, wlB, &w.nsB, &w.hB}} {
		nw, err := netlab.Create(x.name, x.a)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { nw.Delete() })
		*x.ns, *x.idx = nw.Name, nw.Ifindex
	}
	return w
}

// inNS runs f on a thread that is in the named network namespace; sockets
// that f opens stay in it.
func inNS(t testing.TB, ns string, f func()) {
	t.Helper()
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	self, err := os.Open("/proc/thread-self/ns/net")
	if err != nil {
		t.Fatal(err)
	}
	defer self.Close()
	target, err := os.Open("/run/netns/" + ns)
	if err != nil {
		t.Fatal(err)
	}
	defer target.Close()
	if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := unix.Setns(int(self.Fd()), unix.CLONE_NEWNET); err != nil {
			panic(err) // a thread left in the wrong namespace must not be reused
		}
	}()
	f()
}

// servers listens in B: TCP 8080 and 8081, UDP echo on 9000 and 9001.
func (w *workloads) servers(t *testing.T) {
	t.Helper()
	inNS(t, w.nsB, func() {
		for _, port := range []string{"8080", "8081"} {
			l, err := net.Listen("tcp4", wlB.String()+":"+port)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { l.Close() })
			go func() {
				for {
					c, err := l.Accept()
					if err != nil {
						return
					}
					go func() { defer c.Close(); buf := make([]byte, 64); n, _ := c.Read(buf); c.Write(buf[:n]) }()
				}
			}()
		}
		for _, port := range []string{"9000", "9001"} {
			pc, err := net.ListenPacket("udp4", wlB.String()+":"+port)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { pc.Close() })
			go func() {
				buf := make([]byte, 64)
				for {
					n, from, err := pc.ReadFrom(buf)
					if err != nil {
						return
					}
					pc.WriteTo(buf[:n], from)
				}
			}()
		}
	})
}

// Clients in A. Each says whether the exchange (request and reply) worked.
func (w *workloads) tcp(t *testing.T, port int) bool {
	var c net.Conn
	var err error
	inNS(t, w.nsA, func() {
		c, err = net.DialTimeout("tcp4", netip.AddrPortFrom(wlB, uint16(port)).String(), 500*time.Millisecond)
	})
	if err != nil {
		return false
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(time.Second))
	if _, err := c.Write([]byte("hello")); err != nil {
		return false
	}
	buf := make([]byte, 5)
	_, err = c.Read(buf)
	return err == nil && string(buf) == "hello"
}

func (w *workloads) udpConn(t *testing.T, port int) net.Conn {
	var c net.Conn
	var err error
	inNS(t, w.nsA, func() { c, err = net.Dial("udp4", netip.AddrPortFrom(wlB, uint16(port)).String()) })
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func udpExchange(c net.Conn, msg string, timeout time.Duration) bool {
	c.SetDeadline(time.Now().Add(timeout))
	if _, err := c.Write([]byte(msg)); err != nil {
		return false
	}
	buf := make([]byte, 64)
	for {
		n, err := c.Read(buf)
		if err != nil {
			return false
		}
		if string(buf[:n]) == msg {
			return true
		}
	}
}

func (w *workloads) udp(t *testing.T, port int) bool {
	c := w.udpConn(t, port)
	defer c.Close()
	return udpExchange(c, "ping", 500*time.Millisecond)
}

var icmpSeq atomic.Int32

func (w *workloads) ping(t *testing.T) bool {
	var pc *icmp.PacketConn
	var err error
	inNS(t, w.nsA, func() { pc, err = icmp.ListenPacket("ip4:icmp", wlA.String()) })
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	seq := int(icmpSeq.Add(1))
	msg, _ := (&icmp.Message{Type: ipv4.ICMPTypeEcho, Body: &icmp.Echo{ID: 0x5a5a, Seq: seq, Data: []byte("palisade")}}).Marshal(nil)
	if _, err := pc.WriteTo(msg, &net.IPAddr{IP: wlB.AsSlice()}); err != nil {
		return false
	}
	pc.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
	buf := make([]byte, 1500)
	for {
		n, _, err := pc.ReadFrom(buf)
		if err != nil {
			return false
		}
		m, err := icmp.ParseMessage(1, buf[:n])
		if err != nil {
			continue
		}
		if e, ok := m.Body.(*icmp.Echo); ok && m.Type == ipv4.ICMPTypeEchoReply && e.Seq == seq {
			return true
		}
	}
}

// checkPolicy checks the allowed and denied exchanges of trafficState.
func (w *workloads) checkPolicy(t *testing.T, when string) {
	t.Helper()
	for _, c := range []struct {
		name string
		ok   func() bool
		want bool
	}{
		{"tcp 8080", func() bool { return w.tcp(t, 8080) }, true},
		{"tcp 8081", func() bool { return w.tcp(t, 8081) }, false},
		{"udp 9000", func() bool { return w.udp(t, 9000) }, true},
		{"udp 9001", func() bool { return w.udp(t, 9001) }, false},
		{"icmp echo", func() bool { return w.ping(t) }, true},
	} {
		if got := c.ok(); got != c.want {
			t.Errorf("%s: %s exchange worked = %v, want %v", when, c.name, got, c.want)
		}
	}
}

const helperEnv = "PALISADE_DATAPATH_LOADER"

// loaderMain is the child process of TestRealTraffic: it loads the
// programs, applies trafficState, attaches to both veths, says "ready"
// and waits to be killed.
func loaderMain() {
	var hA, hB int
	fmt.Sscanf(os.Getenv(helperEnv+"_IFS"), "%d,%d", &hA, &hB)
	d, err := Open(os.Getenv(helperEnv), nil)
	if err == nil {
		err = d.Apply(context.Background(), trafficState(257, ruleUDP))
	}
	if err == nil {
		err = errors.Join(d.AttachWorkload(hA), d.AttachWorkload(hB))
	}
	if err != nil {
		fmt.Println("error:", err)
		os.Exit(1)
	}
	fmt.Println("ready")
	select {}
}

func TestRealTraffic(t *testing.T) {
	w := setupWorkloads(t)
	w.servers(t)
	pin := tempPinDir(t)

	// Without Palisade, everything passes.
	if !w.tcp(t, 8081) || !w.udp(t, 9001) || !w.ping(t) {
		t.Fatal("the test network does not work without policy")
	}

	// A child process loads and attaches, then is killed.
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), helperEnv+"="+pin, fmt.Sprintf("%s_IFS=%d,%d", helperEnv, w.hA, w.hB))
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, _ := bufio.NewReader(out).ReadString('\n')
	if line != "ready\n" {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("loader: %q", line)
	}
	w.checkPolicy(t, "loader running")
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
	w.checkPolicy(t, "loader killed")

	// A new process adopts under continuous UDP: no exchange may fail.
	stop := make(chan struct{})
	var lost, sent atomic.Int64
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		c := w.udpConn(t, 9000)
		defer c.Close()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			sent.Add(1)
			if !udpExchange(c, strconv.Itoa(i), time.Second) {
				lost.Add(1)
			}
		}
	}()
	time.Sleep(100 * time.Millisecond)
	d, err := Open(pin, nil)
	if err != nil {
		close(stop)
		wg.Wait()
		t.Fatalf("adopt: %v", err)
	}
	defer d.Remove()
	if g := d.Generation(); g != 1 {
		t.Errorf("adopted generation %d, want 1", g)
	}
	time.Sleep(100 * time.Millisecond)
	if err := d.SetEventsAllowed(true); err != nil {
		t.Fatal(err)
	}
	er, err := d.Events()
	if err != nil {
		t.Fatal(err)
	}
	defer er.Close()

	// Switch generations under the same traffic: B's identity and the
	// UDP rule change together, so a mixed view would drop.
	before, _ := d.Counters()
	states := [2]*engine.MapState{trafficState(257, ruleUDP), trafficState(258, ruleUDP+100)}
	for i := 0; i < 20; i++ {
		if err := d.Apply(context.Background(), states[i%2^1]); err != nil {
			t.Fatal(err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	close(stop)
	wg.Wait()
	after, _ := d.Counters()
	t.Logf("%d UDP exchanges during adoption and 20 switches, %d lost; counters %+v", sent.Load(), lost.Load(), after)
	if lost.Load() != 0 || sent.Load() < 50 {
		t.Errorf("%d of %d exchanges lost during adoption and switches", lost.Load(), sent.Load())
	}
	if after.Denied != before.Denied {
		t.Errorf("%d packets denied during switches", after.Denied-before.Denied)
	}
	// Every UDP 9000 decision names its generation's rule.
	n, gens := 0, map[uint64]bool{}
	er.SetDeadline(time.Now().Add(100 * time.Millisecond))
	for {
		ev, err := er.Read()
		if err != nil {
			break
		}
		if ev.Proto != engine.ProtoUDP || ev.DstPort != 9000 || ev.Direction != engine.Egress {
			continue
		}
		n++
		gens[ev.Generation] = true
		want := ruleUDP
		if ev.Generation%2 == 0 {
			want = ruleUDP + 100
		}
		if ev.Verdict != engine.VerdictAllow || ev.Rule != want {
			t.Errorf("generation %d: UDP decided %s by rule %d, want allow by %d", ev.Generation, ev.Verdict, ev.Rule, want)
		}
	}
	t.Logf("%d UDP events checked over %d generations", n, len(gens))
	if len(gens) < 2 {
		t.Errorf("UDP events from %d generations: the switch under traffic was not observed", len(gens))
	}
	w.checkPolicy(t, "after switches")
}
