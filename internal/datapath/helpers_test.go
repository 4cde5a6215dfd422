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
	"encoding/binary"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"github.com/palisade-dev/palisade/bpf"
	"github.com/palisade-dev/palisade/internal/engine"
	"github.com/palisade-dev/palisade/internal/netlab"
)

// Return codes of the TC programs.
const (
	actPass = ^uint32(0) // TC_ACT_UNSPEC (-1): the next program decides
	actShot = 2          // TC_ACT_SHOT
)

// requireKernel skips a test that needs root and bpffs.
func requireKernel(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to load eBPF programs")
	}
}

// tempPinDir returns a fresh pin dir: under /sys/fs/bpf when that is a
// bpffs, else on a private bpffs mounted for the test.
func tempPinDir(t testing.TB) string {
	t.Helper()
	requireKernel(t)
	var st unix.Statfs_t
	if err := unix.Statfs("/sys/fs/bpf", &st); err == nil && st.Type == unix.BPF_FS_MAGIC {
		dir, err := os.MkdirTemp("/sys/fs/bpf", "palisade-test-")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.RemoveAll(dir) })
		return filepath.Join(dir, "palisade")
	}
	dir := t.TempDir()
	if err := unix.Mount("bpf", dir, "bpf", 0, ""); err != nil {
		t.Skipf("no bpffs at /sys/fs/bpf and cannot mount one: %v", err)
	}
	t.Cleanup(func() { unix.Unmount(dir, unix.MNT_DETACH) })
	return filepath.Join(dir, "palisade")
}

// openTest opens a datapath on a fresh pin dir and removes it at the end.
func openTest(t testing.TB, opts *Options) *Datapath {
	t.Helper()
	pin := tempPinDir(t)
	d, err := Open(pin, opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { d.Remove() })
	return d
}

// run runs the program deciding dir on a packet and returns its return
// code and the event it reported, if any.
func run(t testing.TB, d *Datapath, er *EventReader, dir engine.Direction, pkt []byte) (uint32, *Event) {
	t.Helper()
	ret, err := d.program(dir).Run(&ebpf.RunOptions{Data: pkt})
	if err != nil {
		t.Fatalf("run %s program: %v", dir, err)
	}
	er.SetDeadline(time.Now().Add(-time.Second))
	ev, err := er.Read()
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return ret, nil
	}
	if err != nil {
		t.Fatalf("read event: %v", err)
	}
	if _, err := er.Read(); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("one packet made more than one event (%v)", err)
	}
	return ret, &ev
}

// clearTracking empties conntrack (both families), the flow cache (whose
// slots would answer for a connection forgotten here for up to a second)
// and the fragments map.
func clearTracking(t testing.TB, d *Datapath) {
	t.Helper()
	if err := d.clearFlowCache(); err != nil {
		t.Fatal(err)
	}
	var ck bpf.PalisadeCtKey
	var keys []bpf.PalisadeCtKey
	it := d.objs.Conntrack.Iterate()
	var cv bpf.PalisadeCtValue
	for it.Next(&ck, &cv) {
		keys = append(keys, ck)
	}
	for _, k := range keys {
		d.objs.Conntrack.Delete(k)
	}
	var ck4 bpf.PalisadeCt4Key
	var keys4 []bpf.PalisadeCt4Key
	it = d.objs.Conntrack4.Iterate()
	for it.Next(&ck4, &cv) {
		keys4 = append(keys4, ck4)
	}
	for _, k := range keys4 {
		d.objs.Conntrack4.Delete(k)
	}
	var fk bpf.PalisadeFragKey
	var fv bpf.PalisadeFragValue
	var fkeys []bpf.PalisadeFragKey
	it = d.objs.Fragments.Iterate()
	for it.Next(&fk, &fv) {
		fkeys = append(fkeys, fk)
	}
	for _, k := range fkeys {
		d.objs.Fragments.Delete(k)
	}
}

// packet describes a test packet; build turns it into bytes.
type packet struct {
	src, dst   netip.Addr
	proto      uint8
	sport      uint16 // ICMP echo: identifier
	dport      uint16
	icmpType   uint8
	tcpFlags   uint8
	payload    int
	ipOptions  int     // IPv4: 4-byte words of options
	extHdrs    []uint8 // IPv6: extension headers before the L4 header (8 bytes each; fragment headers use frag*)
	fragOffset uint16  // in 8-byte units
	moreFrags  bool
	fragID     uint32
	fragHeader bool // IPv6: add a fragment header (v4: frag fields go in the IP header)
	etherType  uint16
}

func (p packet) is4() bool { return p.src.Is4() }

// l4 returns the L4 header and payload.
func (p packet) l4() []byte {
	var h []byte
	switch p.proto {
	case 6:
		h = make([]byte, 20)
		binary.BigEndian.PutUint16(h[0:], p.sport)
		binary.BigEndian.PutUint16(h[2:], p.dport)
		h[12] = 5 << 4
		h[13] = p.tcpFlags
	case 17:
		h = make([]byte, 8)
		binary.BigEndian.PutUint16(h[0:], p.sport)
		binary.BigEndian.PutUint16(h[2:], p.dport)
		binary.BigEndian.PutUint16(h[4:], uint16(8+p.payload))
	case 132:
		h = make([]byte, 12)
		binary.BigEndian.PutUint16(h[0:], p.sport)
		binary.BigEndian.PutUint16(h[2:], p.dport)
	case 1, 58:
		h = make([]byte, 8)
		h[0] = p.icmpType
		binary.BigEndian.PutUint16(h[4:], p.sport)
	}
	return append(h, make([]byte, p.payload)...)
}

// build serializes p: Ethernet, IP, L4. Lengths are consistent; malformed
// packets are made by changing the bytes afterwards.
func (p packet) build() []byte {
	eth := make([]byte, 14)
	copy(eth[0:6], []byte{2, 0, 0, 0, 0, 2})
	copy(eth[6:12], []byte{2, 0, 0, 0, 0, 1})
	l4 := p.l4()
	if p.fragOffset != 0 {
		l4 = make([]byte, 8+p.payload) // a later fragment carries no L4 header
	}
	if p.is4() {
		binary.BigEndian.PutUint16(eth[12:], 0x0800)
		ip := make([]byte, 20+4*p.ipOptions)
		ip[0] = 0x40 | byte(5+p.ipOptions)
		binary.BigEndian.PutUint16(ip[2:], uint16(len(ip)+len(l4)))
		binary.BigEndian.PutUint16(ip[4:], uint16(p.fragID))
		fo := p.fragOffset
		if p.moreFrags {
			fo |= 0x2000
		}
		binary.BigEndian.PutUint16(ip[6:], fo)
		ip[8] = 64
		ip[9] = p.proto
		for i := 20; i < len(ip); i++ {
			ip[i] = 1 // NOP options
		}
		s, d := p.src.As4(), p.dst.As4()
		copy(ip[12:], s[:])
		copy(ip[16:], d[:])
		out := append(eth, ip...)
		if p.etherType != 0 {
			binary.BigEndian.PutUint16(out[12:], p.etherType)
		}
		return append(out, l4...)
	}
	binary.BigEndian.PutUint16(eth[12:], 0x86dd)
	var ext []byte
	hdrs := p.extHdrs
	if p.fragHeader {
		hdrs = append(append([]uint8{}, hdrs...), 44)
	}
	for i, h := range hdrs {
		next := p.proto
		if i+1 < len(hdrs) {
			next = hdrs[i+1]
		}
		e := make([]byte, 8)
		e[0] = next
		if h == 44 {
			fo := p.fragOffset << 3
			if p.moreFrags {
				fo |= 1
			}
			binary.BigEndian.PutUint16(e[2:], fo)
			binary.BigEndian.PutUint32(e[4:], p.fragID)
		} else if h == 51 {
			e[1] = 0 // AH length: (0+2)*4 = 8 bytes
		}
		ext = append(ext, e...)
	}
	ip := make([]byte, 40)
	ip[0] = 0x60
	binary.BigEndian.PutUint16(ip[4:], uint16(len(ext)+len(l4)))
	ip[6] = p.proto
	if len(hdrs) > 0 {
		ip[6] = hdrs[0]
	}
	ip[7] = 64
	s, d := p.src.As16(), p.dst.As16()
	copy(ip[8:], s[:])
	copy(ip[24:], d[:])
	out := append(append(eth, ip...), ext...)
	if p.etherType != 0 {
		binary.BigEndian.PutUint16(out[12:], p.etherType)
	}
	return append(out, l4...)
}

func ebpfRun(pkt []byte) *ebpf.RunOptions { return &ebpf.RunOptions{Data: pkt} }

// TestMain runs the tests in a node namespace of their own (netlab.Isolate):
// the traffic tests route between workloads through the node and attach to
// its veths, and `go test ./...` runs other packages that do the same at
// the same time. TestRealTraffic's loader, a child of the test, inherits
// the namespace.
func TestMain(m *testing.M) {
	if os.Getenv(helperEnv) != "" {
		loaderMain()
		return
	}
	os.Exit(netlab.Isolate(m.Run))
}
