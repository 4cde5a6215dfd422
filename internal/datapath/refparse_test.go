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
	"fmt"
	"net/netip"
)

// refParse is the parser of bpf/parse.h written again in Go from
// docs/datapath.md, for the differential test's expectations.
type parsed struct {
	kind         int // parseOK, parseNotIP, parseMalformed
	src, dst     netip.Addr
	proto        uint8
	sport, dport uint16
	port         uint16
	fragFirst    bool
	fragLater    bool
	fragID       uint32
	echoReq      bool
	echoReply    bool
	icmpType     uint8
	tcpFlags     uint8
}

func (p parsed) String() string {
	switch p.kind {
	case parseNotIP:
		return "not IP"
	case parseMalformed:
		return "malformed"
	}
	s := fmt.Sprintf("%s:%d > %s:%d proto %d port %d", p.src, p.sport, p.dst, p.dport, p.proto, p.port)
	if p.proto == 6 {
		s += fmt.Sprintf(" tcp flags %#x", p.tcpFlags)
	}
	if p.echoReq || p.echoReply {
		s += fmt.Sprintf(" icmp type %d (echo)", p.icmpType)
	}
	if p.fragFirst || p.fragLater {
		s += fmt.Sprintf(" fragment id %d first %v", p.fragID, p.fragFirst)
	}
	return s
}

const (
	parseOK = iota
	parseNotIP
	parseMalformed
)

func refParse(b []byte) parsed {
	if len(b) < 14 {
		return parsed{kind: parseNotIP}
	}
	switch binary.BigEndian.Uint16(b[12:]) {
	case 0x0800:
		return refParse4(b[14:])
	case 0x86dd:
		return refParse6(b[14:])
	}
	return parsed{kind: parseNotIP}
}

var malformedPkt = parsed{kind: parseMalformed}

func refParse4(ip []byte) parsed {
	n := len(ip)
	if n < 20 || ip[0]>>4 != 4 || ip[0]&0xf < 5 {
		return malformedPkt
	}
	hlen := int(ip[0]&0xf) * 4
	tot := int(binary.BigEndian.Uint16(ip[2:]))
	if tot == 0 && n > 0xffff {
		tot = n
	}
	if tot < hlen || tot > n {
		return malformedPkt
	}
	p := parsed{src: netip.AddrFrom4([4]byte(ip[12:16])), dst: netip.AddrFrom4([4]byte(ip[16:20])), proto: ip[9]}
	frag := binary.BigEndian.Uint16(ip[6:])
	if frag&0x1fff != 0 {
		p.fragLater, p.fragID = true, uint32(binary.BigEndian.Uint16(ip[4:]))
		return p
	}
	if frag&0x2000 != 0 {
		p.fragFirst, p.fragID = true, uint32(binary.BigEndian.Uint16(ip[4:]))
	}
	return refL4(p, ip[hlen:tot], true)
}

func isExt(nh uint8) bool { return nh == 0 || nh == 43 || nh == 44 || nh == 51 || nh == 60 }

func refParse6(ip []byte) parsed {
	n := len(ip)
	if n < 40 || ip[0]>>4 != 6 {
		return malformedPkt
	}
	end := 40 + int(binary.BigEndian.Uint16(ip[4:]))
	if binary.BigEndian.Uint16(ip[4:]) == 0 {
		end = n
	}
	if end > n {
		return malformedPkt
	}
	p := parsed{src: netip.AddrFrom16([16]byte(ip[8:24])), dst: netip.AddrFrom16([16]byte(ip[24:40]))}
	off, nh := 40, ip[6]
	for i := 0; i < 8 && isExt(nh); i++ {
		if off+8 > end {
			return malformedPkt
		}
		h := ip[off : off+8]
		switch nh {
		case 44:
			fo := binary.BigEndian.Uint16(h[2:])
			p.fragID = binary.BigEndian.Uint32(h[4:])
			if fo&0xfff8 != 0 {
				p.fragLater, p.proto = true, h[0]
				return p
			}
			if fo&1 != 0 {
				p.fragFirst = true
			}
			off += 8
		case 51:
			off += (int(h[1]) + 2) * 4
		default:
			off += (int(h[1]) + 1) * 8
		}
		nh = h[0]
	}
	if isExt(nh) || off > end {
		return malformedPkt
	}
	p.proto = nh
	return refL4(p, ip[off:end], false)
}

func refL4(p parsed, l4 []byte, v4 bool) parsed {
	need := map[uint8]int{6: 20, 17: 8, 132: 12}
	switch p.proto {
	case 6, 17, 132:
		if len(l4) < need[p.proto] {
			return malformedPkt
		}
		if p.proto == 6 {
			if l4[12]>>4 < 5 {
				return malformedPkt
			}
			p.tcpFlags = l4[13]
		}
		p.sport, p.dport = binary.BigEndian.Uint16(l4), binary.BigEndian.Uint16(l4[2:])
		p.port = p.dport
	case 1, 58:
		if (p.proto == 1) != v4 {
			return p
		}
		if len(l4) < 8 {
			return malformedPkt
		}
		p.icmpType, p.port = l4[0], uint16(l4[0])
		req, rep := uint8(128), uint8(129)
		if v4 {
			req, rep = 8, 0
		}
		p.echoReq, p.echoReply = l4[0] == req, l4[0] == rep
		if p.echoReq || p.echoReply {
			p.sport = binary.BigEndian.Uint16(l4[4:])
		}
	}
	return p
}
