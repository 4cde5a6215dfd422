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

	"github.com/palisade-dev/palisade/bpf"
	"github.com/palisade-dev/palisade/internal/engine"
)

// Address families as the programs encode them.
const (
	familyIPv4 = 4
	familyIPv6 = 6
)

// policyLPMFixedBits is the part of a policy LPM key before the 24 bits
// proto<<16|port: policy ID, peer identity and direction.
const policyLPMFixedBits = 72

// addrKey encodes an address for the endpoints map and the exact ipcache.
func addrKey(a netip.Addr) bpf.PalisadeAddrKey {
	var k bpf.PalisadeAddrKey
	if a.Is4() {
		k.Family = familyIPv4
		b := a.As4()
		copy(k.Addr[:], b[:])
	} else {
		k.Family = familyIPv6
		k.Addr = a.As16()
	}
	return k
}

func addrFromKey(family uint32, b [16]byte) (netip.Addr, error) {
	switch family {
	case familyIPv4:
		return netip.AddrFrom4([4]byte(b[:4])), nil
	case familyIPv6:
		return netip.AddrFrom16(b), nil
	}
	return netip.Addr{}, fmt.Errorf("unknown address family %d", family)
}

// isExact reports whether p is a single address: it goes to the exact
// ipcache, probed before the LPM trie.
func isExact(p netip.Prefix) bool { return p.Bits() == p.Addr().BitLen() }

func ipcacheLPMKey(p netip.Prefix) bpf.PalisadeIpcacheLpmKey {
	a := addrKey(p.Addr())
	return bpf.PalisadeIpcacheLpmKey{Prefixlen: 32 + uint32(p.Bits()), Family: a.Family, Addr: a.Addr}
}

func prefixFromLPMKey(k bpf.PalisadeIpcacheLpmKey) (netip.Prefix, error) {
	a, err := addrFromKey(k.Family, k.Addr)
	if err != nil {
		return netip.Prefix{}, err
	}
	bits := int(k.Prefixlen) - 32
	if bits < 0 || bits > a.BitLen() {
		return netip.Prefix{}, fmt.Errorf("ipcache prefix length %d out of range", k.Prefixlen)
	}
	return a.Prefix(bits)
}

// be32 and be16 return the value whose in-memory bytes are x big endian,
// for the LPM key fields that the trie compares bit by bit.
func be32(x uint32) uint32 {
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], x)
	return binary.NativeEndian.Uint32(b[:])
}

func be16(x uint16) uint16 {
	var b [2]byte
	binary.BigEndian.PutUint16(b[:], x)
	return binary.NativeEndian.Uint16(b[:])
}

// validPolicyKey checks what the programs rely on: a direction, a prefix
// length of at most 24 and no bits set past it.
func validPolicyKey(k engine.PolicyKey) error {
	if k.Direction > engine.Egress {
		return fmt.Errorf("policy key %+v: direction %d", k, k.Direction)
	}
	if k.PrefixLen > 24 {
		return fmt.Errorf("policy key %+v: prefix length %d > 24", k, k.PrefixLen)
	}
	v := uint32(k.Proto)<<16 | uint32(k.Port)
	if v&(1<<(24-k.PrefixLen)-1) != 0 {
		return fmt.Errorf("policy key %+v: bits set past the prefix length", k)
	}
	return nil
}

func policyKey(k engine.PolicyKey) bpf.PalisadePolicyKey {
	return bpf.PalisadePolicyKey{
		PolicyId:  k.PolicyID,
		Identity:  uint32(k.Identity),
		Direction: uint8(k.Direction),
		Proto:     uint8(k.Proto),
		Port:      k.Port,
	}
}

func policyLPMKey(k engine.PolicyKey) bpf.PalisadePolicyLpmKey {
	return bpf.PalisadePolicyLpmKey{
		Prefixlen: policyLPMFixedBits + uint32(k.PrefixLen),
		PolicyId:  be32(k.PolicyID),
		Identity:  be32(uint32(k.Identity)),
		Direction: uint8(k.Direction),
		Proto:     uint8(k.Proto),
		Port:      be16(k.Port),
	}
}

func policyKeyFromHash(k bpf.PalisadePolicyKey) engine.PolicyKey {
	return engine.PolicyKey{
		PolicyID:  k.PolicyId,
		Direction: engine.Direction(k.Direction),
		Identity:  engine.Identity(k.Identity),
		Proto:     engine.Proto(k.Proto),
		Port:      k.Port,
		PrefixLen: 24,
	}
}

func policyKeyFromLPM(k bpf.PalisadePolicyLpmKey) (engine.PolicyKey, error) {
	if k.Prefixlen < policyLPMFixedBits || k.Prefixlen > policyLPMFixedBits+24 {
		return engine.PolicyKey{}, fmt.Errorf("policy prefix length %d out of range", k.Prefixlen)
	}
	return engine.PolicyKey{
		PolicyID:  be32(k.PolicyId),
		Direction: engine.Direction(k.Direction),
		Identity:  engine.Identity(be32(k.Identity)),
		Proto:     engine.Proto(k.Proto),
		Port:      be16(k.Port),
		PrefixLen: uint8(k.Prefixlen - policyLPMFixedBits),
	}, nil
}

func policyValue(e engine.PolicyEntry) bpf.PalisadePolicyValue {
	return bpf.PalisadePolicyValue{
		Flags:          uint8(e.Flags),
		AllowRule:      uint32(e.AllowRule),
		DenyRule:       uint32(e.DenyRule),
		AuditRule:      uint32(e.AuditRule),
		AuditAllowRule: uint32(e.AuditAllowRule),
		L7:             uint32(e.L7),
	}
}

func policyEntry(v bpf.PalisadePolicyValue) engine.PolicyEntry {
	return engine.PolicyEntry{
		Flags:          engine.PolicyFlags(v.Flags),
		AllowRule:      engine.RuleID(v.AllowRule),
		DenyRule:       engine.RuleID(v.DenyRule),
		AuditRule:      engine.RuleID(v.AuditRule),
		AuditAllowRule: engine.RuleID(v.AuditAllowRule),
		L7:             engine.L7ID(v.L7),
	}
}

func endpointValue(e engine.EndpointEntry, hints uint8) bpf.PalisadeEndpointValue {
	return bpf.PalisadeEndpointValue{Identity: uint32(e.Identity), PolicyId: e.PolicyID, Flags: uint8(e.Flags), Hints: hints}
}

// Endpoint hints (palisade.h EP_HINT_*): what the policy maps do not hold
// for a policy ID and direction, so that the programs skip those lookups.
// Bits of the ingress direction; egress is shifted by hintEgressShift.
const (
	hintNoPeerLPM   = 1 << 0 // no LPM entry of a peer identity (not 0)
	hintNoAnyHash   = 1 << 1 // no hash entry of identity 0
	hintNoAnyLPM    = 1 << 2 // no LPM entry of identity 0
	hintNoAllWorld  = 1 << 3 // no entry of engine.IdentityAllWorld
	hintAll         = hintNoPeerLPM | hintNoAnyHash | hintNoAnyLPM | hintNoAllWorld
	hintEgressShift = 4
)

// policyHints returns the hints of every policy ID that has an entry;
// a policy ID without entries has every hint (hintsOf).
func policyHints(policy map[engine.PolicyKey]engine.PolicyEntry) map[uint32]uint8 {
	present := map[uint32]uint8{} // the hints' bits that are false
	for k := range policy {
		var bit uint8
		switch {
		case k.Identity == engine.IdentityAllWorld:
			bit = hintNoAllWorld
		case k.Identity == 0 && k.PrefixLen == 24:
			bit = hintNoAnyHash
		case k.Identity == 0:
			bit = hintNoAnyLPM
		case k.PrefixLen != 24:
			bit = hintNoPeerLPM
		}
		if k.Direction == engine.Egress {
			bit <<= hintEgressShift
		}
		present[k.PolicyID] |= bit
	}
	for id, p := range present {
		present[id] = ^p & (hintAll | hintAll<<hintEgressShift)
	}
	return present
}

func hintsOf(hints map[uint32]uint8, policyID uint32) uint8 {
	if h, ok := hints[policyID]; ok {
		return h
	}
	return hintAll | hintAll<<hintEgressShift
}

func endpointEntry(v bpf.PalisadeEndpointValue) engine.EndpointEntry {
	return engine.EndpointEntry{Identity: engine.Identity(v.Identity), PolicyID: v.PolicyId, Flags: engine.EndpointFlags(v.Flags)}
}
