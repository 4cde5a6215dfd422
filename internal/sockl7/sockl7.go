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

// Package sockl7 is what the socket-level request datapaths (bpf/l7 for
// HTTP, bpf/kafka for Kafka) share in user space: their map keys of the
// same layout (addresses, ports, bindings, peer prefixes), the pins of
// their maps and sockops cgroup links, the adoption of a previous
// process's pinned state, the read-back's drifts, the per-CPU counters
// and the verdict events' ring buffer. Each datapath keeps what is its
// own: its tables, its slot switch, its events' fields.
package sockl7

import (
	"fmt"
	"net/netip"
	"structs"

	"github.com/cilium/ebpf"
)

// PortKey is an enforced local address and port, as both datapaths key
// their ports maps (struct l7_port_key, struct kafka_port_key): convert
// it to the datapath's generated type.
type PortKey struct {
	_      structs.HostLayout
	Port   uint16
	Family uint16
	Addr   [16]uint8
}

// BindKey is a binding's key (struct l7_bind_key, struct kafka_bind_key).
type BindKey struct {
	_        structs.HostLayout
	Slot     uint32
	Identity uint32
	Port     uint16
	Family   uint16
	Addr     [16]uint8
}

// PeerKey is a peer prefix's LPM key (struct l7_peer_key, struct
// kafka_peer_key): the prefix length counts the 32 bits of the family.
type PeerKey struct {
	_         structs.HostLayout
	Prefixlen uint32
	Family    uint32
	Addr      [16]uint8
}

// AddrKey is the family and the 16 address bytes the kernel keys an
// address by (IPv4 in the first four; an unspecified address, every
// address of its family, all zero).
func AddrKey(a netip.Addr) (uint16, [16]byte) {
	var out [16]byte
	a = a.Unmap()
	fam := uint16(4)
	if a.Is6() {
		fam = 6
	}
	if a.IsUnspecified() {
		return fam, out
	}
	copy(out[:], a.AsSlice())
	return fam, out
}

// KeyAddr is AddrKey's inverse.
func KeyAddr(fam uint16, a [16]byte) netip.Addr {
	if fam == 4 {
		return netip.AddrFrom4([4]byte(a[:4]))
	}
	return netip.AddrFrom16(a)
}

// PortKeyOf is the key of a bound address and port.
func PortKeyOf(a netip.Addr, port uint16) PortKey {
	fam, addr := AddrKey(a)
	return PortKey{Port: port, Family: fam, Addr: addr}
}

// String is the key as the read-back names it: "{addr:port}".
func (k PortKey) String() string {
	return "{" + netip.AddrPortFrom(KeyAddr(k.Family, k.Addr), k.Port).String() + "}"
}

// BindKeyOf is the key of a binding in a slot.
func BindKeyOf(slot uint32, a netip.Addr, port uint16, identity uint32) BindKey {
	fam, addr := AddrKey(a)
	return BindKey{Slot: slot, Identity: identity, Port: port, Family: fam, Addr: addr}
}

func (k BindKey) String() string {
	return fmt.Sprintf("{slot %d identity %d %s}", k.Slot, k.Identity, netip.AddrPortFrom(KeyAddr(k.Family, k.Addr), k.Port))
}

// PeerKeyOf is the LPM key of a prefix (an IPv4-mapped IPv6 prefix is
// keyed as the IPv4 one).
func PeerKeyOf(p netip.Prefix) PeerKey {
	a := p.Addr().Unmap()
	k := PeerKey{Family: 4, Prefixlen: 32 + uint32(p.Bits())}
	if a.Is6() {
		k.Family = 6
	} else if p.Addr().Is4In6() {
		k.Prefixlen = 32 + uint32(max(p.Bits()-96, 0))
	}
	copy(k.Addr[:], a.AsSlice())
	return k
}

// Prefix is PeerKeyOf's inverse; map names the map for the error about
// a key Palisade never writes.
func (k PeerKey) Prefix(mapName string) (netip.Prefix, error) {
	bits := int(k.Prefixlen) - 32
	switch {
	case k.Family == 4 && bits >= 0 && bits <= 32:
		return netip.PrefixFrom(netip.AddrFrom4([4]byte(k.Addr[:4])), bits).Masked(), nil
	case k.Family == 6 && bits >= 0 && bits <= 128:
		return netip.PrefixFrom(netip.AddrFrom16(k.Addr), bits).Masked(), nil
	}
	return netip.Prefix{}, fmt.Errorf("%s holds a key of family %d and length %d, which Palisade never writes", mapName, k.Family, k.Prefixlen)
}

// SumCounters reads n per-CPU counters from index base of a
// BPF_MAP_TYPE_PERCPU_ARRAY and returns the non-zero sums by index from
// base (0 to n-1).
func SumCounters(m *ebpf.Map, mapName string, base, n uint32) (map[uint32]uint64, error) {
	out := map[uint32]uint64{}
	for i := uint32(0); i < n; i++ {
		var per []uint64
		if err := m.Lookup(base+i, &per); err != nil {
			return nil, fmt.Errorf("read %s[%d]: %w", mapName, base+i, err)
		}
		var sum uint64
		for _, v := range per {
			sum += v
		}
		if sum != 0 {
			out[i] = sum
		}
	}
	return out, nil
}
