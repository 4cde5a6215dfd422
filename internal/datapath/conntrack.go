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
	"fmt"

	"github.com/cilium/ebpf"

	"github.com/palisade-dev/palisade/bpf"
)

// migrateConntrack4 moves the IPv4 connections that an older agent's
// programs recorded in conntrack (under the 40-byte key of both families)
// to conntrack4, where these programs look for them (a 16-byte key, which
// the kernel hashes in about half the time; docs/datapath.md). Without it
// the replies of connections opened before an upgrade would be decided as
// new packets, and dropped where the other side is default deny, until
// their next request. Open runs it before the pinned links switch to the
// new programs and again after, for what the old programs recorded in
// between; these programs never write IPv4 entries to conntrack, so once
// the links run them one pass empties it of them. An entry that
// conntrack4 has already is the newer and stays. It returns the number of
// entries moved.
func migrateConntrack4(old, ct4 *ebpf.Map) (int, error) {
	var (
		k    bpf.PalisadeCtKey
		v    bpf.PalisadeCtValue
		keys []bpf.PalisadeCtKey
		vals []bpf.PalisadeCtValue
	)
	it := old.Iterate()
	for it.Next(&k, &v) {
		if k.Family == familyIPv4 {
			keys = append(keys, k)
			vals = append(vals, v)
		}
	}
	if err := it.Err(); err != nil {
		return 0, fmt.Errorf("migrate conntrack: read: %w", err)
	}
	for i, k := range keys {
		err := ct4.Update(ct4Key(k), vals[i], ebpf.UpdateNoExist)
		if err != nil && !errors.Is(err, ebpf.ErrKeyExist) {
			return i, fmt.Errorf("migrate conntrack: write: %w", err)
		}
		if err := old.Delete(k); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
			return i, fmt.Errorf("migrate conntrack: delete: %w", err)
		}
	}
	return len(keys), nil
}

// ct4Key is the conntrack4 key of an IPv4 connection's ct_key.
func ct4Key(k bpf.PalisadeCtKey) bpf.PalisadeCt4Key {
	// The programs copy the address bytes as they are in the packet.
	return bpf.PalisadeCt4Key{
		Saddr:     binary.NativeEndian.Uint32(k.Saddr[:4]),
		Daddr:     binary.NativeEndian.Uint32(k.Daddr[:4]),
		Sport:     k.Sport,
		Dport:     k.Dport,
		Proto:     k.Proto,
		Direction: k.Direction,
	}
}
