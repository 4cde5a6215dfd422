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
	"bytes"
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/palisade-dev/palisade/internal/engine"
)

// The veth benchmark: a sender in network namespace S (10.201.0.1) sends
// UDP datagrams to port 9000 of a receiver in namespace R (10.201.0.2)
// through one veth pair; R's socket is never read, so datagrams end at its
// full receive queue. The receiving side runs each filter in turn: none,
// Palisade (TCX ingress of R's veth, deciding S's egress), iptables INPUT
// and nftables input. R stands in for the host, so the host's own firewall
// is never touched. Every filter holds n rules whose matching one is the
// last: for iptables and for nftables rules that is the worst case, as they
// are evaluated in order; nftables is also measured with the rules as one
// set (a hash lookup).
var (
	vethSrc = addr("10.201.0.1")
	vethDst = addr("10.201.0.2")
)

const vethPort = 9000

// vethPeer is the address that Palisade's filler identity id stands for in
// the iptables and nftables rule sets (identities 1000.. → 10.202.x.y).
func vethPeer(id engine.Identity) netip.Addr {
	i := int(id) - 1000
	return netip.AddrFrom4([4]byte{10, 202, byte(i >> 8), byte(i)})
}

// vethFiller lists the n-1 rules that do not match, as in benchState: TCP
// port i%1000 to identity 1000+i/1000.
func vethFiller(n int) []engine.PolicyKey {
	var ks []engine.PolicyKey
	for i := 0; i < n-1; i++ {
		ks = append(ks, engine.PolicyKey{PolicyID: 256, Direction: engine.Egress, Identity: engine.Identity(1000 + i/1000),
			Proto: engine.ProtoTCP, Port: uint16(i % 1000), PrefixLen: 24})
	}
	return ks
}

// vethState is the Palisade rule set: S is default deny on egress, its
// n-1 filler entries and the allow of UDP 9000 to R (the hash path).
func vethState(n int) *engine.MapState {
	s := &engine.MapState{
		Endpoints: map[netip.Addr]engine.EndpointEntry{vethSrc: {Identity: 256, PolicyID: 256, Flags: engine.EgressDefaultDeny | engine.IngressDefaultDeny}},
		IPCache:   map[netip.Prefix]engine.Identity{netip.PrefixFrom(vethSrc, 32): 256, netip.PrefixFrom(vethDst, 32): 257},
		Policy: map[engine.PolicyKey]engine.PolicyEntry{
			{PolicyID: 256, Direction: engine.Egress, Identity: 257, Proto: engine.ProtoUDP, Port: vethPort, PrefixLen: 24}: {Flags: engine.FlagAllow, AllowRule: 1},
		},
	}
	for i, k := range vethFiller(n) {
		s.Policy[k] = engine.PolicyEntry{Flags: engine.FlagAllow, AllowRule: engine.RuleID(10 + i)}
		s.IPCache[netip.PrefixFrom(vethPeer(k.Identity), 32)] = k.Identity
	}
	return s
}

// iptablesRules is the same rule set for iptables-restore: INPUT drops by
// default, the filler rules accept other peers and ports, the last rule
// accepts the benchmark's datagrams.
func iptablesRules(n int) []byte {
	var b bytes.Buffer
	b.WriteString("*filter\n:INPUT DROP [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n")
	for _, k := range vethFiller(n) {
		fmt.Fprintf(&b, "-A INPUT -s %s -d %s -p tcp -m tcp --dport %d -j ACCEPT\n", vethSrc, vethPeer(k.Identity), k.Port)
	}
	fmt.Fprintf(&b, "-A INPUT -s %s -d %s -p udp -m udp --dport %d -j ACCEPT\nCOMMIT\n", vethSrc, vethDst, vethPort)
	return b.Bytes()
}

// nftRules is the same rule set for nft -f, as n rules in order.
func nftRules(n int) []byte {
	var b bytes.Buffer
	b.WriteString("flush ruleset\ntable ip pal {\n\tchain input {\n\t\ttype filter hook input priority 0; policy drop;\n")
	for _, k := range vethFiller(n) {
		fmt.Fprintf(&b, "\t\tip saddr %s ip daddr %s tcp dport %d accept\n", vethSrc, vethPeer(k.Identity), k.Port)
	}
	fmt.Fprintf(&b, "\t\tip saddr %s ip daddr %s udp dport %d accept\n\t}\n}\n", vethSrc, vethDst, vethPort)
	return b.Bytes()
}

// nftSet is the same rule set as one rule matching a set of
// (source, destination, protocol, port).
func nftSet(n int) []byte {
	var b bytes.Buffer
	b.WriteString("flush ruleset\ntable ip pal {\n\tset allowed {\n\t\ttype ipv4_addr . ipv4_addr . inet_proto . inet_service\n\t\telements = {\n")
	for _, k := range vethFiller(n) {
		fmt.Fprintf(&b, "\t\t\t%s . %s . tcp . %d,\n", vethSrc, vethPeer(k.Identity), k.Port)
	}
	fmt.Fprintf(&b, "\t\t\t%s . %s . udp . %d\n\t\t}\n\t}\n", vethSrc, vethDst, vethPort)
	b.WriteString("\tchain input {\n\t\ttype filter hook input priority 0; policy drop;\n\t\tip saddr . ip daddr . meta l4proto . th dport @allowed accept\n\t}\n}\n")
	return b.Bytes()
}

// inNSRun runs a command in the named network namespace with stdin.
func inNSRun(ns string, stdin []byte, args ...string) error {
	cmd := exec.Command("ip", append([]string{"netns", "exec", ns}, args...)...)
	cmd.Stdin = bytes.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s: %v: %s", strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return nil
}

type vethBench struct {
	nsS, nsR string
	ifR      int // R's veth, as R numbers it
	fd       int // the sender's socket, connected, in S
	pkt      []byte
}

func setupVethBench(b *testing.B) *vethBench {
	requireKernel(b)
	requireIP(b)
	sfx := strconv.Itoa(os.Getpid() % 100000)
	v := &vethBench{nsS: "palbS" + sfx, nsR: "palbR" + sfx, pkt: make([]byte, 64)}
	for _, ns := range []string{v.nsS, v.nsR} {
		ip(b, "netns", "add", ns)
		b.Cleanup(func() { exec.Command("ip", "netns", "del", ns).Run() })
	}
	ip(b, "-n", v.nsS, "link", "add", "eth0", "address", "02:00:00:00:01:01", "type", "veth",
		"peer", "name", "eth0", "address", "02:00:00:00:01:02", "netns", v.nsR)
	for _, x := range []struct {
		ns   string
		a, p netip.Addr
		mac  string
	}{{v.nsS, vethSrc, vethDst, "02:00:00:00:01:02"}, {v.nsR, vethDst, vethSrc, "02:00:00:00:01:01"}} {
		ip(b, "-n", x.ns, "link", "set", "lo", "up")
		ip(b, "-n", x.ns, "addr", "add", x.a.String()+"/24", "dev", "eth0")
		ip(b, "-n", x.ns, "link", "set", "eth0", "up")
		ip(b, "-n", x.ns, "neigh", "replace", x.p.String(), "lladdr", x.mac, "dev", "eth0", "nud", "permanent")
	}
	var err error
	inNS(b, v.nsR, func() {
		var ifc *net.Interface
		if ifc, err = net.InterfaceByName("eth0"); err != nil {
			return
		}
		v.ifR = ifc.Index
		var fd int
		if fd, err = unix.Socket(unix.AF_INET, unix.SOCK_DGRAM, 0); err != nil {
			return
		}
		b.Cleanup(func() { unix.Close(fd) })
		unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, 4096)
		err = unix.Bind(fd, &unix.SockaddrInet4{Port: vethPort, Addr: vethDst.As4()})
	})
	if err != nil {
		b.Fatal(err)
	}
	inNS(b, v.nsS, func() {
		if v.fd, err = unix.Socket(unix.AF_INET, unix.SOCK_DGRAM, 0); err != nil {
			return
		}
		err = unix.Connect(v.fd, &unix.SockaddrInet4{Port: vethPort, Addr: vethDst.As4()})
	})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { unix.Close(v.fd) })
	return v
}

// received is the number of UDP datagrams that reached R's UDP layer
// (delivered or dropped at the full socket): they passed the filter.
func (v *vethBench) received(b *testing.B) uint64 {
	out, err := exec.Command("ip", "netns", "exec", v.nsR, "cat", "/proc/net/snmp").Output()
	if err != nil {
		b.Fatal(err)
	}
	var names []string
	var total uint64
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 0 || f[0] != "Udp:" {
			continue
		}
		if names == nil {
			names = f
			continue
		}
		for i, name := range names {
			if name == "InDatagrams" || name == "RcvbufErrors" {
				x, _ := strconv.ParseUint(f[i], 10, 64)
				total += x
			}
		}
	}
	return total
}

// measure sends for about d and returns ns per datagram that passed, the
// median of three rounds; it fails when datagrams do not pass.
func (v *vethBench) measure(b *testing.B, d time.Duration) float64 {
	send := func(n int) {
		for i := 0; i < n; i++ {
			if _, err := unix.Write(v.fd, v.pkt); err != nil && err != unix.ENOBUFS && err != unix.ECONNREFUSED {
				b.Fatal(err)
			}
		}
	}
	send(200) // warm up: conntrack entry, caches
	var res []float64
	for round := 0; round < 3; round++ {
		before := v.received(b)
		start := time.Now()
		sent := 0
		for time.Since(start) < d {
			send(100)
			sent += 100
		}
		el := time.Since(start)
		got := v.received(b) - before
		if got < uint64(sent)*9/10 {
			b.Fatalf("only %d of %d datagrams passed the filter", got, sent)
		}
		res = append(res, float64(el.Nanoseconds())/float64(got))
	}
	slices.Sort(res)
	return res[1]
}

// BenchmarkVeth measures ns per datagram on the veth path with no filter,
// Palisade, iptables (the iptables command as installed, and
// iptables-legacy when the kernel has it), nftables rules and an nftables
// set, for 10 to 100k rules. It ignores b.N: run it with -benchtime=1x.
func BenchmarkVeth(b *testing.B) {
	for _, tool := range []string{"iptables-restore", "nft"} {
		if _, err := exec.LookPath(tool); err != nil {
			b.Skipf("needs %s (make bench-datapath installs iptables and nftables)", tool)
		}
	}
	v := setupVethBench(b)
	d := openTest(b, nil)
	const dur = 300 * time.Millisecond
	clear := func() {
		inNSRun(v.nsR, nil, "nft", "flush", "ruleset")
		inNSRun(v.nsR, []byte("*filter\n:INPUT ACCEPT [0:0]\nCOMMIT\n"), "iptables-legacy-restore")
	}
	b.Cleanup(clear)
	legacy := inNSRun(v.nsR, []byte("*filter\n:INPUT ACCEPT [0:0]\nCOMMIT\n"), "iptables-legacy-restore") == nil
	filters := []struct {
		name  string
		setup func(n int) error
	}{
		{"none", func(int) error { return nil }},
		{"palisade", func(n int) error {
			if err := d.Apply(context.Background(), vethState(n)); err != nil {
				return err
			}
			var err error
			inNS(b, v.nsR, func() { err = d.Attach(v.ifR, HookIngress, engine.Egress) })
			return err
		}},
		{"iptables", func(n int) error { return inNSRun(v.nsR, iptablesRules(n), "iptables-restore") }},
		{"iptables-legacy", func(n int) error {
			if !legacy {
				return errSkip
			}
			return inNSRun(v.nsR, iptablesRules(n), "iptables-legacy-restore")
		}},
		{"nft-rules", func(n int) error { return inNSRun(v.nsR, nftRules(n), "nft", "-f", "-") }},
		{"nft-set", func(n int) error { return inNSRun(v.nsR, nftSet(n), "nft", "-f", "-") }},
	}
	for _, n := range []int{10, 1000, 10000, 100000} {
		for _, f := range filters {
			b.Run(fmt.Sprintf("rules=%d/filter=%s", n, f.name), func(b *testing.B) {
				start := time.Now()
				err := f.setup(n)
				defer func() {
					clear()
					d.Detach(v.ifR, HookIngress)
				}()
				if err == errSkip {
					b.Skip("iptables-legacy: the kernel has no legacy x_tables")
				}
				if err != nil {
					b.Fatal(err)
				}
				load := time.Since(start)
				b.ReportMetric(v.measure(b, dur), "ns/pkt")
				b.ReportMetric(load.Seconds()*1000, "load-ms")
			})
		}
	}
}

var errSkip = fmt.Errorf("skip")
