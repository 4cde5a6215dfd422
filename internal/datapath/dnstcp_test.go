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
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/miekg/dns"

	"github.com/palisade-dev/palisade/internal/engine"
	"github.com/palisade-dev/palisade/internal/netlab"
)

// tcpSeg is a client's TCP segment from src:40000 to dst:53.
type tcpSeg struct {
	src, dst netip.Addr
	seq, ack uint32
	flags    byte
	opts     []byte // TCP options, a multiple of 4 bytes
	payload  []byte
}

const (
	tcpFIN = 0x01
	tcpSYN = 0x02
	tcpRST = 0x04
	tcpPSH = 0x08
	tcpACK = 0x10
)

// tsOpt is NOP, NOP and a timestamps option (TSval 0x11111111, TSecr
// 0x22222222), as Linux sends them.
var tsOpt = []byte{1, 1, 8, 10, 0x11, 0x11, 0x11, 0x11, 0x22, 0x22, 0x22, 0x22}

// inetSum adds b to a one's complement sum.
func inetSum(sum uint32, b []byte) uint32 {
	for i := 0; i+1 < len(b); i += 2 {
		sum += uint32(binary.BigEndian.Uint16(b[i:]))
	}
	if len(b)%2 == 1 {
		sum += uint32(b[len(b)-1]) << 8
	}
	return sum
}

func inetFold(sum uint32) uint16 {
	for sum > 0xffff {
		sum = sum&0xffff + sum>>16
	}
	return uint16(sum)
}

// tcpPseudo is the TCP checksum's pseudo header of a segment of n bytes.
func tcpPseudo(src, dst []byte, n int) uint32 {
	sum := inetSum(inetSum(0, src), dst)
	return sum + 6 + uint32(n)
}

// build returns the segment as an Ethernet frame with valid IP and TCP
// checksums.
func (s tcpSeg) build() []byte {
	tcp := make([]byte, 20+len(s.opts))
	binary.BigEndian.PutUint16(tcp[0:], 40000)
	binary.BigEndian.PutUint16(tcp[2:], 53)
	binary.BigEndian.PutUint32(tcp[4:], s.seq)
	binary.BigEndian.PutUint32(tcp[8:], s.ack)
	tcp[12] = byte(len(tcp)/4) << 4
	tcp[13] = s.flags
	binary.BigEndian.PutUint16(tcp[14:], 502)
	copy(tcp[20:], s.opts)
	tcp = append(tcp, s.payload...)
	src, dst := s.src.AsSlice(), s.dst.AsSlice()
	binary.BigEndian.PutUint16(tcp[16:], ^inetFold(inetSum(tcpPseudo(src, dst, len(tcp)), tcp)))

	frame := []byte{2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0, 0}
	var ip []byte
	if s.src.Is4() {
		binary.BigEndian.PutUint16(frame[12:], 0x0800)
		ip = make([]byte, 20)
		ip[0] = 0x45
		binary.BigEndian.PutUint16(ip[2:], uint16(20+len(tcp)))
		binary.BigEndian.PutUint16(ip[6:], 0x4000) // DF
		ip[8], ip[9] = 64, 6
		copy(ip[12:], src)
		copy(ip[16:], dst)
		binary.BigEndian.PutUint16(ip[10:], ^inetFold(inetSum(0, ip)))
	} else {
		binary.BigEndian.PutUint16(frame[12:], 0x86dd)
		ip = make([]byte, 40)
		ip[0] = 0x60
		binary.BigEndian.PutUint16(ip[4:], uint16(len(tcp)))
		ip[6], ip[7] = 6, 64
		copy(ip[8:], src)
		copy(ip[24:], dst)
	}
	return append(append(frame, ip...), tcp...)
}

// tcpFrame is a parsed frame: addresses, TCP header and payload.
type tcpFrame struct {
	src, dst []byte
	tcp      []byte // header with options
	payload  []byte
}

// parseTCPFrame parses an Ethernet frame that tcpSeg.build or the kernel
// made, checking the IP length (the frame ends where the IP packet does),
// the IPv4 header checksum and the TCP checksum.
func parseTCPFrame(t *testing.T, f []byte) tcpFrame {
	t.Helper()
	var r tcpFrame
	var seg []byte
	switch binary.BigEndian.Uint16(f[12:]) {
	case 0x0800:
		ip := f[14:]
		if n := int(binary.BigEndian.Uint16(ip[2:])); n != len(ip) {
			t.Fatalf("IPv4 total length %d, the frame holds %d bytes", n, len(ip))
		}
		if inetFold(inetSum(0, ip[:20])) != 0xffff {
			t.Errorf("bad IPv4 header checksum %04x", binary.BigEndian.Uint16(ip[10:]))
		}
		r.src, r.dst, seg = ip[12:16], ip[16:20], ip[20:]
	case 0x86dd:
		ip := f[14:]
		if n := int(binary.BigEndian.Uint16(ip[4:])); n != len(ip)-40 {
			t.Fatalf("IPv6 payload length %d, the frame holds %d bytes", n, len(ip)-40)
		}
		r.src, r.dst, seg = ip[8:24], ip[24:40], ip[40:]
	default:
		t.Fatalf("not IP: ethertype %04x", binary.BigEndian.Uint16(f[12:]))
	}
	if inetFold(inetSum(tcpPseudo(r.src, r.dst, len(seg)), seg)) != 0xffff {
		t.Errorf("bad TCP checksum %04x", binary.BigEndian.Uint16(seg[16:]))
	}
	hl := int(seg[12]>>4) * 4
	r.tcp, r.payload = seg[:hl], seg[hl:]
	return r
}

// checkTCPAnswer checks the kernel's answer a to the segment q (whose DNS
// message has questions of qlen bytes after its header, kept when keep):
// Ethernet and IP addresses and ports swapped, seq the query's ack, ack
// its seq and length, flags ACK|PSH|FIN (a reset: RST|ACK and no
// payload), timestamps swapped, and the payload the query's header as a
// response with rcode and its questions, nothing after them.
func checkTCPAnswer(t *testing.T, q, a []byte, reset bool, qlen int, keep bool, rcode byte) {
	t.Helper()
	if !bytes.Equal(a[0:6], q[6:12]) || !bytes.Equal(a[6:12], q[0:6]) {
		t.Errorf("Ethernet addresses not swapped")
	}
	fq, fa := parseTCPFrame(t, q), parseTCPFrame(t, a)
	if !bytes.Equal(fa.src, fq.dst) || !bytes.Equal(fa.dst, fq.src) {
		t.Errorf("IP addresses %x→%x, want %x→%x", fa.src, fa.dst, fq.dst, fq.src)
	}
	u16 := binary.BigEndian.Uint16
	u32 := binary.BigEndian.Uint32
	if u16(fa.tcp[0:]) != 53 || u16(fa.tcp[2:]) != u16(fq.tcp[0:]) {
		t.Errorf("ports %d→%d, want 53→%d", u16(fa.tcp[0:]), u16(fa.tcp[2:]), u16(fq.tcp[0:]))
	}
	ackWant := u32(fq.tcp[4:]) + uint32(len(fq.payload))
	if fq.tcp[13]&tcpFIN != 0 {
		ackWant++
	}
	if u32(fa.tcp[4:]) != u32(fq.tcp[8:]) || u32(fa.tcp[8:]) != ackWant {
		t.Errorf("seq %d ack %d, want %d and %d", u32(fa.tcp[4:]), u32(fa.tcp[8:]), u32(fq.tcp[8:]), ackWant)
	}
	flags := byte(tcpACK | tcpPSH | tcpFIN)
	if reset {
		flags = tcpRST | tcpACK
	}
	if fa.tcp[13] != flags {
		t.Errorf("TCP flags %02x, want %02x", fa.tcp[13], flags)
	}
	if len(fa.tcp) != len(fq.tcp) || u16(fa.tcp[18:]) != 0 {
		t.Errorf("TCP header of %d bytes with urgent pointer %d, want %d and 0", len(fa.tcp), u16(fa.tcp[18:]), len(fq.tcp))
	}
	if i := bytes.Index(fq.tcp[20:], []byte{8, 10}); i >= 0 {
		ts, tsA := fq.tcp[20+i+2:], fa.tcp[20+i+2:]
		if !bytes.Equal(tsA[0:4], ts[4:8]) || !bytes.Equal(tsA[4:8], ts[0:4]) {
			t.Errorf("timestamps TSval %x TSecr %x, want %x %x", tsA[0:4], tsA[4:8], ts[4:8], ts[0:4])
		}
	} else if !bytes.Equal(fa.tcp[20:], fq.tcp[20:]) {
		t.Errorf("options %x, want %x", fa.tcp[20:], fq.tcp[20:])
	}
	if reset {
		if len(fa.payload) != 0 {
			t.Errorf("a reset with %d bytes of payload", len(fa.payload))
		}
		return
	}
	m, mA := fq.payload[2:], fa.payload[2:]
	wantLen := 12
	if keep {
		wantLen += qlen
	}
	if len(mA) != wantLen || int(u16(fa.payload)) != len(mA) {
		t.Fatalf("answer message of %d bytes, length prefix %d, want %d", len(mA), u16(fa.payload), wantLen)
	}
	if !bytes.Equal(mA[:2], m[:2]) {
		t.Errorf("id %x, want %x", mA[:2], m[:2])
	}
	if mA[2] != (m[2]|0x80)&^0x06 || mA[3] != 0x80|rcode {
		t.Errorf("flags %02x%02x, want QR, the query's opcode and RD, RA, rcode %d", mA[2], mA[3], rcode)
	}
	qd := u16(m[4:])
	if !keep {
		qd = 0
	}
	if u16(mA[4:]) != qd || u16(mA[6:]) != 0 || u16(mA[8:]) != 0 || u16(mA[10:]) != 0 {
		t.Errorf("counts QD %d AN %d NS %d AR %d, want %d 0 0 0", u16(mA[4:]), u16(mA[6:]), u16(mA[8:]), u16(mA[10:]), qd)
	}
	if keep && !bytes.Equal(mA[12:], m[12:12+qlen]) {
		t.Errorf("questions %x, want %x", mA[12:], m[12:12+qlen])
	}
}

// TestDNSTCPAnswer runs refused TCP queries through the egress program:
// each becomes the server's answer (or, with no whole message, a reset)
// sent back to the client, every field as checkTCPAnswer says.
func TestDNSTCPAnswer(t *testing.T) {
	d := openTest(t, nil)
	if err := d.Apply(context.Background(), dnsState()); err != nil {
		t.Fatalf("Apply: %v", err)
	}
	er, err := d.Events()
	if err != nil {
		t.Fatal(err)
	}
	defer er.Close()

	A, A6, server, server6 := addr("10.0.0.1"), addr("fd00::1"), addr("10.0.0.53"), addr("fd00::53")
	q := func(names ...string) []dnsQuestion {
		var qs []dnsQuestion
		for _, n := range names {
			qs = append(qs, dnsQuestion{name: n})
		}
		return qs
	}
	qlen := func(qs []dnsQuestion) int { return len(dnsMsg(0, 0, 0, qs, nil)) - 12 }
	// An OPT record with 700 bytes of padding (option 12): several chunks to cut.
	padded := append(append([]byte{}, ednsOPT[:9]...), 0x02, 0xc0, 0, 12, 0x02, 0xbc)
	padded = append(padded, make([]byte, 700)...)
	frame := func(m []byte) []byte { return binary.BigEndian.AppendUint16(nil, uint16(len(m))) }
	withPrefix := func(m []byte) []byte { return append(frame(m), m...) }

	for _, c := range []struct {
		name   string
		src    netip.Addr
		flags  byte
		opts   []byte
		qs     []dnsQuestion
		extra  []byte // after the questions: cut from the answer
		msg    []byte // the payload as is, when set
		want   uint32
		reset  bool
		keep   bool // the questions are echoed
		reason Reason
	}{
		{name: "IPv4, EDNS0 cut", src: A, flags: tcpACK | tcpPSH, opts: tsOpt, qs: q("evil.com"), extra: ednsOPT, want: actRedirect, keep: true, reason: Reason(engine.ReasonL7Denied)},
		{name: "IPv6, EDNS0 cut", src: A6, flags: tcpACK | tcpPSH, opts: tsOpt, qs: q("evil.com"), extra: ednsOPT, want: actRedirect, keep: true, reason: Reason(engine.ReasonL7Denied)},
		{name: "no options, no EDNS0", src: A, flags: tcpACK | tcpPSH, qs: q("allowed.org"), want: actRedirect, keep: true, reason: Reason(engine.ReasonL7Denied)},
		{name: "odd cut", src: A, flags: tcpACK | tcpPSH, opts: tsOpt, qs: q("evil.co"), extra: ednsOPT, want: actRedirect, keep: true, reason: Reason(engine.ReasonL7Denied)},
		{name: "long odd cut", src: A, flags: tcpACK | tcpPSH, opts: tsOpt, qs: q("evil.co"), extra: padded, want: actRedirect, keep: true, reason: Reason(engine.ReasonL7Denied)},
		{name: "IPv6 long even cut", src: A6, flags: tcpACK | tcpPSH, opts: tsOpt, qs: q("evil.com"), extra: padded, want: actRedirect, keep: true, reason: Reason(engine.ReasonL7Denied)},
		{name: "two questions, one refused", src: A, flags: tcpACK | tcpPSH, opts: tsOpt, qs: q("api.example.com", "evil.com"), extra: ednsOPT, want: actRedirect, keep: true, reason: Reason(engine.ReasonL7Denied)},
		{name: "query with FIN", src: A, flags: tcpACK | tcpPSH | tcpFIN, opts: tsOpt, qs: q("evil.com"), want: actRedirect, keep: true, reason: Reason(engine.ReasonL7Denied)},
		// Questions the parser could not read are not echoed.
		{name: "compression pointer", src: A, flags: tcpACK | tcpPSH, opts: tsOpt, qs: []dnsQuestion{{raw: []byte{3, 'w', 'w', 'w', 0xc0, 12}}}, extra: ednsOPT, want: actRedirect, reason: ReasonDNSMalformed},
		{name: "100 questions", src: A6, flags: tcpACK | tcpPSH, opts: tsOpt, msg: withPrefix(dnsMsg(0x0100, 100, 0, q("a.b", "c.d"), nil)), want: actRedirect, reason: ReasonDNSMalformed},
		// No whole message: a reset.
		{name: "bad length prefix", src: A, flags: tcpACK | tcpPSH, opts: tsOpt, msg: append(frame(make([]byte, 200)), dnsMsg(0x0100, 1, 0, q("api.example.com"), nil)...), want: actRedirect, reset: true, reason: ReasonDNSMalformed},
		{name: "length prefix alone", src: A6, flags: tcpACK | tcpPSH, opts: tsOpt, msg: []byte{0, 40}, want: actRedirect, reset: true, reason: ReasonDNSMalformed},
		{name: "two messages in one segment", src: A, flags: tcpACK | tcpPSH, msg: append(withPrefix(dnsQuery("api.example.com")), withPrefix(dnsQuery("evil.com"))...), want: actRedirect, reset: true, reason: ReasonDNSMalformed},
		// Data in a SYN (TCP Fast Open) is refused and dropped: no connection to answer on.
		{name: "SYN with a query", src: A, flags: tcpSYN, opts: tsOpt, qs: q("evil.com"), want: actShot, reason: Reason(engine.ReasonL7Denied)},
		{name: "allowed", src: A, flags: tcpACK | tcpPSH, opts: tsOpt, qs: q("api.example.com"), extra: ednsOPT, want: actPass},
	} {
		t.Run(c.name, func(t *testing.T) {
			clearTracking(t, d)
			dst := server
			if c.src.Is6() {
				dst = server6
			}
			payload := c.msg
			if payload == nil {
				arcount := uint16(0)
				if c.extra != nil {
					arcount = 1
				}
				payload = withPrefix(dnsMsg(0x0100, uint16(len(c.qs)), arcount, c.qs, c.extra))
			}
			pkt := tcpSeg{src: c.src, dst: dst, seq: 0xfffffff0, ack: 77777, flags: c.flags, opts: c.opts, payload: payload}.build()
			parseTCPFrame(t, pkt) // the query itself is well formed
			before, err := d.Counters()
			if err != nil {
				t.Fatal(err)
			}
			opts := &ebpf.RunOptions{Data: pkt, DataOut: make([]byte, len(pkt)+64)}
			ret, err := d.program(engine.Egress).Run(opts)
			if err != nil {
				t.Fatal(err)
			}
			after, err := d.Counters()
			if err != nil {
				t.Fatal(err)
			}
			if ret != c.want {
				t.Fatalf("return %d, want %d", ret, c.want)
			}
			var ev *Event
			er.SetDeadline(time.Now().Add(-time.Second))
			for {
				e, err := er.Read()
				if err != nil {
					break
				}
				if e.Verdict == engine.VerdictDeny {
					ev = &e
				}
			}
			if c.want == actPass {
				if ev != nil {
					t.Errorf("deny event %+v for an allowed query", *ev)
				}
				if !bytes.Equal(opts.DataOut, pkt) {
					t.Errorf("an allowed query was changed")
				}
				return
			}
			if ev == nil || ev.Reason != c.reason {
				t.Errorf("event %+v, want a deny with reason %v", ev, c.reason)
			}
			answered := after.DNSAnswered - before.DNSAnswered
			if c.want == actShot {
				if answered != 0 {
					t.Errorf("a dropped query counted %d answers", answered)
				}
				return
			}
			if answered != 1 {
				t.Errorf("DNSAnswered moved by %d, want 1", answered)
			}
			if c.reason == Reason(engine.ReasonL7Denied) && after.DNSRefused-before.DNSRefused != 1 {
				t.Errorf("DNSRefused moved by %d, want 1", after.DNSRefused-before.DNSRefused)
			}
			checkTCPAnswer(t, pkt, opts.DataOut, c.reset, qlen(c.qs), c.keep, 5)
		})
	}

	// NXDOMAIN instead of REFUSED, when the agent says so.
	if err := d.SetDNSRcode(DNSRcodeNXDomain); err != nil {
		t.Fatal(err)
	}
	for _, src := range []netip.Addr{A, A6} {
		clearTracking(t, d)
		dst := server
		if src.Is6() {
			dst = server6
		}
		qs := []dnsQuestion{{name: "evil.com"}}
		pkt := tcpSeg{src: src, dst: dst, seq: 1, ack: 2, flags: tcpACK | tcpPSH, opts: tsOpt, payload: withPrefix(dnsMsg(0x0100, 1, 1, qs, ednsOPT))}.build()
		opts := &ebpf.RunOptions{Data: pkt, DataOut: make([]byte, len(pkt)+64)}
		ret, err := d.program(engine.Egress).Run(opts)
		if err != nil || ret != actRedirect {
			t.Fatalf("NXDOMAIN from %v: return %d (%v), want redirect", src, ret, err)
		}
		checkTCPAnswer(t, pkt, opts.DataOut, false, qlen(qs), true, 3)
	}
}

// tcpDNSLog is a DNS server's record of the questions it received.
type tcpDNSLog struct {
	mu    sync.Mutex
	names []string
}

func (l *tcpDNSLog) has(name string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, n := range l.names {
		if strings.EqualFold(n, name) {
			return true
		}
	}
	return false
}

// tcpDNSServe runs a DNS server (miekg/dns) in B on UDP and TCP 53 that
// logs every question it receives and answers A queries with 192.0.2.1.
func tcpDNSServe(t *testing.T, w *workloads) *tcpDNSLog {
	log := &tcpDNSLog{}
	h := dns.HandlerFunc(func(rw dns.ResponseWriter, q *dns.Msg) {
		log.mu.Lock()
		for _, qq := range q.Question {
			log.names = append(log.names, qq.Name)
		}
		log.mu.Unlock()
		m := new(dns.Msg)
		m.SetReply(q)
		rr, _ := dns.NewRR(q.Question[0].Name + " 60 IN A 192.0.2.1")
		m.Answer = append(m.Answer, rr)
		rw.WriteMsg(m)
	})
	var pc net.PacketConn
	var l net.Listener
	inNS(t, w.nsB, func() {
		var err error
		if pc, err = net.ListenPacket("udp4", wlB.String()+":53"); err != nil {
			t.Fatal(err)
		}
		if l, err = net.Listen("tcp4", wlB.String()+":53"); err != nil {
			t.Fatal(err)
		}
	})
	us, ts := &dns.Server{PacketConn: pc, Handler: h}, &dns.Server{Listener: l, Handler: h}
	go us.ActivateAndServe()
	go ts.ActivateAndServe()
	t.Cleanup(func() { us.Shutdown(); ts.Shutdown() })
	return log
}

// digB runs dig against B with one try of 2 s: in A, or on the node
// when ns is "".
func digB(t *testing.T, ns string, args ...string) digResult {
	t.Helper()
	argv := append([]string{"dig", "@" + wlB.String(), "+time=2", "+tries=1", "+retry=0"}, args...)
	if ns != "" {
		argv = append([]string{"ip", "netns", "exec", ns}, argv...)
	}
	out, _ := exec.Command(argv[0], argv[1:]...).CombinedOutput()
	r := digResult{out: string(out)}
	if m := digStatus.FindAllStringSubmatch(r.out, -1); m != nil {
		r.status = m[len(m)-1][1]
	}
	if m := digAnswers.FindAllStringSubmatch(r.out, -1); m != nil {
		fmt.Sscan(m[len(m)-1][1], &r.answers)
	}
	if m := digTime.FindStringSubmatch(r.out); m != nil {
		fmt.Sscan(m[1], &r.msec)
	}
	return r
}

// TestDNSTCPRealTraffic: `dig +tcp` in A queries a DNS server in B through
// the attached programs. A refused name gets the kernel's answer (dig
// reports its status: with one try of 2 s, a dropped query would have
// none) and never reaches the server; an allowed query on a new
// connection after it is answered by the server; NXDOMAIN when set; a
// query without EDNS0 (nothing cut); a Go client sees the answer and then
// the end of the stream; the same with the rules on B's ingress.
func TestDNSTCPRealTraffic(t *testing.T) {
	if _, err := exec.LookPath("dig"); err != nil {
		t.Skip("dig (dnsutils) is not installed: hack/apt-install.sh dnsutils")
	}
	w := setupWorkloads(t)
	log := tcpDNSServe(t, w)
	d := openTest(t, nil)
	if err := d.Apply(context.Background(), dnsTrafficState()); err != nil {
		t.Fatal(err)
	}
	if err := d.AttachWorkload(w.hA); err != nil {
		t.Fatal(err)
	}
	if err := d.AttachWorkload(w.hB); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.DetachWorkload(w.hA); d.DetachWorkload(w.hB) })

	steps := func(when string, refused []string, rcode string) {
		for _, c := range []struct {
			name    string
			status  string
			answers int
		}{
			{refused[0], rcode, 0},
			{"api.example.com", "NOERROR", 1},
			{refused[1], rcode, 0},
			{"x.allowed.org", "NOERROR", 1},
		} {
			r := digB(t, w.nsA, "+tcp", c.name)
			if r.status != c.status || r.answers != c.answers {
				t.Errorf("%s: dig +tcp %s: status %q with %d answers, want %s with %d\n%s", when, c.name, r.status, r.answers, c.status, c.answers, r.out)
				continue
			}
			got := log.has(c.name + ".")
			if want := c.status == "NOERROR"; got != want {
				t.Errorf("%s: dig +tcp %s: the server's log has the query: %v, want %v", when, c.name, got, want)
			}
			t.Logf("%s: dig +tcp %s: %s, %d answers, %d ms", when, c.name, r.status, r.answers, r.msec)
		}
	}
	before, err := d.Counters()
	if err != nil {
		t.Fatal(err)
	}
	steps("egress rules", []string{"evil.com", "allowed.org"}, "REFUSED")
	if err := d.SetDNSRcode(DNSRcodeNXDomain); err != nil {
		t.Fatal(err)
	}
	steps("egress rules, NXDOMAIN", []string{"evil.net", "b.c.allowed.org"}, "NXDOMAIN")
	if err := d.SetDNSRcode(DNSRcodeRefused); err != nil {
		t.Fatal(err)
	}

	// Without EDNS0 there is nothing to cut: the answer has the query's length.
	if r := digB(t, w.nsA, "+tcp", "+noedns", "noedns.evil.com"); r.status != "REFUSED" {
		t.Errorf("dig +tcp +noedns noedns.evil.com: status %q, want REFUSED\n%s", r.status, r.out)
	}
	// A Go client on one connection: the answer, then the end of the
	// stream (the kernel's FIN), not a timeout.
	inNS(t, w.nsA, func() {
		c, err := net.Dial("tcp4", wlB.String()+":53")
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(5 * time.Second)) // a guard: the kernel answers at once
		dc := &dns.Conn{Conn: c}
		q := new(dns.Msg)
		q.SetQuestion("conn.evil.com.", dns.TypeA)
		if err := dc.WriteMsg(q); err != nil {
			t.Fatal(err)
		}
		a, err := dc.ReadMsg()
		if err != nil {
			t.Fatalf("Go client: read the answer: %v", err)
		}
		if a.Id != q.Id || a.Rcode != dns.RcodeRefused || !a.Response || !a.RecursionAvailable || len(a.Question) != 1 || a.Question[0].Name != "conn.evil.com." {
			t.Errorf("Go client: answer %v, want REFUSED for the question with the query's id", a)
		}
		if n, err := c.Read(make([]byte, 1)); n != 0 || err != io.EOF {
			t.Errorf("Go client: after the answer read %d bytes, %v; want the end of the stream", n, err)
		}
	})
	if log.has("noedns.evil.com.") || log.has("conn.evil.com.") {
		t.Errorf("the server received a refused query")
	}

	// The same rules on B's ingress: the answer enters the node from B's
	// interface, as if B had sent it.
	ing := dnsTrafficState()
	rules := ing.Policy[engine.PolicyKey{PolicyID: 256, Direction: engine.Egress, Identity: 257, Proto: engine.ProtoTCP, Port: 53, PrefixLen: 24}]
	for k := range ing.Policy {
		delete(ing.Policy, k)
	}
	ing.Policy[engine.PolicyKey{PolicyID: 256, Direction: engine.Egress, Identity: 257, Proto: engine.ProtoTCP, Port: 53, PrefixLen: 24}] = engine.PolicyEntry{Flags: engine.FlagAllow, AllowRule: 602}
	ing.Policy[engine.PolicyKey{PolicyID: 257, Direction: engine.Ingress, Identity: 256, Proto: engine.ProtoTCP, Port: 53, PrefixLen: 24}] = rules
	if err := d.Apply(context.Background(), ing); err != nil {
		t.Fatal(err)
	}
	steps("ingress rules", []string{"evil.org", "allowed.org.evil.com"}, "REFUSED")

	after, err := d.Counters()
	if err != nil {
		t.Fatal(err)
	}
	answered, refused := after.DNSAnswered-before.DNSAnswered, after.DNSRefused-before.DNSRefused
	t.Logf("counters: %d refused by rule, %d answered by the kernel", refused, answered)
	if answered != 8 || refused != 8 {
		t.Errorf("%d answered and %d refused by the kernel, want 8 and 8", answered, refused)
	}
	// The kernel's answers pass the client's reply path, where toFQDNs
	// reads answers: they are no unsolicited answers.
	if u := after.FQDNUnsolicited - before.FQDNUnsolicited; u != 0 {
		t.Errorf("the kernel's %d refusal answers counted %d unsolicited answers", answered, u)
	}
}

// TestDNSHostRealTraffic: DNS rules of the node itself (host firewall,
// programs attached to B's host-side veth as to a host interface): dig on
// the node queries B over UDP and TCP. The kernel's answer to a refused
// query leaves the interface's egress hook into the node, as if B had
// sent it; it never reaches B.
func TestDNSHostRealTraffic(t *testing.T) {
	if _, err := exec.LookPath("dig"); err != nil {
		t.Skip("dig (dnsutils) is not installed: hack/apt-install.sh dnsutils")
	}
	w := setupWorkloads(t)
	log := tcpDNSServe(t, w)
	node := netip.MustParseAddr(netlab.Gateway) // the node's address toward B
	s := dnsTrafficState()
	rules := s.Policy[engine.PolicyKey{PolicyID: 256, Direction: engine.Egress, Identity: 257, Proto: engine.ProtoTCP, Port: 53, PrefixLen: 24}]
	s.Endpoints = map[netip.Addr]engine.EndpointEntry{node: {Identity: engine.IdentityHost, PolicyID: 300, Flags: engine.EgressDefaultDeny}}
	s.IPCache = map[netip.Prefix]engine.Identity{netip.PrefixFrom(wlB, 32): 257}
	s.Policy = map[engine.PolicyKey]engine.PolicyEntry{}
	for _, proto := range []engine.Proto{engine.ProtoUDP, engine.ProtoTCP} {
		s.Policy[engine.PolicyKey{PolicyID: 300, Direction: engine.Egress, Identity: 257, Proto: proto, Port: 53, PrefixLen: 24}] = rules
	}
	d := openTest(t, nil)
	if err := d.Apply(context.Background(), s); err != nil {
		t.Fatal(err)
	}
	if err := d.AttachHost(w.hB); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Detach(w.hB, HookIngress); d.Detach(w.hB, HookEgress) })

	for _, c := range []struct {
		args    []string
		status  string
		answers int
	}{
		{[]string{"evil.com"}, "REFUSED", 0},
		{[]string{"api.example.com"}, "NOERROR", 1},
		{[]string{"+tcp", "evil.org"}, "REFUSED", 0},
		{[]string{"+tcp", "x.allowed.org"}, "NOERROR", 1},
	} {
		r := digB(t, "", c.args...)
		if r.status != c.status || r.answers != c.answers {
			t.Errorf("node: dig %v: status %q with %d answers, want %s with %d\n%s", c.args, r.status, r.answers, c.status, c.answers, r.out)
			continue
		}
		name := c.args[len(c.args)-1]
		if got, want := log.has(name+"."), c.status == "NOERROR"; got != want {
			t.Errorf("node: dig %v: the server's log has the query: %v, want %v", c.args, got, want)
		}
		t.Logf("node: dig %v: %s, %d answers, %d ms", c.args, r.status, r.answers, r.msec)
	}
}
