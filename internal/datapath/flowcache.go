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
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/cilium/ebpf"

	"github.com/palisade-dev/palisade/bpf"
)

// flowCacheBits is FLOW_CACHE_BITS (bpf/maps.h): the flow cache has
// 1<<flowCacheBits slots per CPU.
const flowCacheBits = 13

// setFlowCache keys the flow cache's slot hash with a random seed (the
// programs read it as a constant; docs/datapath.md, "The flow cache"),
// or with seed when it is not 0 (tests that need two connections in one
// slot), and turns the cache off when off is set (benchmarks).
func setFlowCache(spec *ebpf.CollectionSpec, seed uint64, off bool) (uint64, error) {
	for seed == 0 {
		var b [8]byte
		if _, err := rand.Read(b[:]); err != nil {
			return 0, fmt.Errorf("flow cache seed: %w", err)
		}
		seed = binary.NativeEndian.Uint64(b[:])
	}
	s, o := spec.Variables[bpf.PalisadeVarFcSeed], spec.Variables[bpf.PalisadeVarFcOff]
	if s == nil || o == nil {
		return 0, errors.New("flow cache: the bpf object has no fc_seed or fc_off")
	}
	var offv uint32
	if off {
		offv = 1
	}
	if err := s.Set(seed); err != nil {
		return 0, fmt.Errorf("flow cache seed: %w", err)
	}
	if err := o.Set(offv); err != nil {
		return 0, fmt.Errorf("flow cache switch: %w", err)
	}
	return seed, nil
}

// replaceFlowCache removes a pinned flow cache whose layout is not this
// version's, so that LoadAndAssign creates and pins a new one instead of
// refusing the pins: a cache's contents are never needed (a slot answers
// for at most a second, and only for a connection that conntrack holds).
// An older agent's programs keep their map until the links switch.
func replaceFlowCache(spec *ebpf.MapSpec, dir string) error {
	pin := filepath.Join(dir, spec.Name)
	old, err := ebpf.LoadPinnedMap(pin, nil)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("open pinned flow cache: %w", err)
	}
	defer old.Close()
	if old.Type() == spec.Type && old.KeySize() == spec.KeySize && old.ValueSize() == spec.ValueSize &&
		old.MaxEntries() == spec.MaxEntries {
		return nil
	}
	if err := os.Remove(pin); err != nil {
		return fmt.Errorf("replace pinned flow cache: %w", err)
	}
	return nil
}

// flowCacheSlot is the slot of an IPv4 connection's conntrack4 key under
// seed, as fc_slot (bpf/palisade.c) computes it.
func flowCacheSlot(seed uint64, k bpf.PalisadeCt4Key) uint32 {
	var b [16]byte
	binary.NativeEndian.PutUint32(b[0:], k.Saddr)
	binary.NativeEndian.PutUint32(b[4:], k.Daddr)
	binary.NativeEndian.PutUint16(b[8:], k.Sport)
	binary.NativeEndian.PutUint16(b[10:], k.Dport)
	b[12], b[13] = k.Proto, k.Direction
	w0, w1 := binary.NativeEndian.Uint64(b[0:]), binary.NativeEndian.Uint64(b[8:])
	h := ((w0^seed)*0x9e3779b97f4a7c15 ^ w1) * 0xbf58476d1ce4e5b9
	return uint32(h >> (64 - flowCacheBits))
}

// clearFlowCache empties every CPU's flow cache (tests that forget
// connections; the agent never needs to).
func (d *Datapath) clearFlowCache() error {
	n, err := ebpf.PossibleCPU()
	if err != nil {
		return err
	}
	keys := make([]uint32, 1<<flowCacheBits)
	for i := range keys {
		keys[i] = uint32(i)
	}
	vals := make([]bpf.PalisadeFlowCacheEntry, len(keys)*n)
	if _, err := d.objs.FlowCache.BatchUpdate(keys, vals, nil); err != nil {
		return fmt.Errorf("clear flow cache: %w", err)
	}
	return nil
}
