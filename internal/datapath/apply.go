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
	"context"
	"errors"
	"fmt"

	"github.com/cilium/ebpf"

	"github.com/palisade-dev/palisade/bpf"
	"github.com/palisade-dev/palisade/internal/engine"
)

// The outer maps, one per kind of per-generation inner map.
const (
	outerEndpoints  = bpf.PalisadeMapGenEndpoints
	outerIPCache    = bpf.PalisadeMapGenIpcache
	outerIPCacheLPM = bpf.PalisadeMapGenIpcacheLpm
	outerPolicy     = bpf.PalisadeMapGenPolicy
	outerPolicyLPM  = bpf.PalisadeMapGenPolicyLpm
	outerDNSLists   = bpf.PalisadeMapGenDnsLists
	outerDNSNext    = bpf.PalisadeMapGenDnsNext
	outerDNSAccept  = bpf.PalisadeMapGenDnsAccept

	outerFQDNNext      = bpf.PalisadeMapGenFqdnNext
	outerFQDNAccept    = bpf.PalisadeMapGenFqdnAccept
	outerFQDNSelectors = bpf.PalisadeMapGenFqdnSelectors
)

var outerMaps = []string{outerEndpoints, outerIPCache, outerIPCacheLPM, outerPolicy, outerPolicyLPM,
	outerDNSLists, outerDNSNext, outerDNSAccept, outerFQDNNext, outerFQDNAccept, outerFQDNSelectors}

func (d *Datapath) outer(name string) *ebpf.Map {
	switch name {
	case outerEndpoints:
		return d.objs.GenEndpoints
	case outerIPCache:
		return d.objs.GenIpcache
	case outerIPCacheLPM:
		return d.objs.GenIpcacheLpm
	case outerPolicy:
		return d.objs.GenPolicy
	case outerPolicyLPM:
		return d.objs.GenPolicyLpm
	case outerDNSLists:
		return d.objs.GenDnsLists
	case outerDNSNext:
		return d.objs.GenDnsNext
	case outerDNSAccept:
		return d.objs.GenDnsAccept
	case outerFQDNNext:
		return d.objs.GenFqdnNext
	case outerFQDNAccept:
		return d.objs.GenFqdnAccept
	case outerFQDNSelectors:
		return d.objs.GenFqdnSelectors
	}
	panic("unknown outer map " + name)
}

// CapacityError says that a state does not fit a hard limit. Nothing of
// the state was written.
type CapacityError struct {
	Map          string
	Entries, Max int
}

func (e *CapacityError) Error() string {
	return fmt.Sprintf("capacity: %s map needs %d entries, limit is %d; state refused, previous generation stays enforced", e.Map, e.Entries, e.Max)
}

// encoded is a MapState in the programs' layout, one key and one value
// slice per inner map.
type encoded struct {
	epKeys     []bpf.PalisadeAddrKey
	epValues   []bpf.PalisadeEndpointValue
	ipKeys     []bpf.PalisadeAddrKey
	ipValues   []bpf.PalisadeIpcacheValue
	ipLPMKeys  []bpf.PalisadeIpcacheLpmKey
	ipLPMVals  []bpf.PalisadeIpcacheValue
	polKeys    []bpf.PalisadePolicyKey
	polValues  []bpf.PalisadePolicyValue
	polLPMKeys []bpf.PalisadePolicyLpmKey
	polLPMVals []bpf.PalisadePolicyValue
	dns        encodedDNS
	fqdn       encodedFQDN
}

func (d *Datapath) check(s *engine.MapState) error {
	for _, c := range []struct {
		name string
		n    int
		max  int
	}{
		{"endpoints", len(s.Endpoints), d.limits.Endpoints},
		{"ipcache", len(s.IPCache), d.limits.IPCache},
		{"policy", len(s.Policy), d.limits.Policy},
	} {
		if c.n > c.max {
			return &CapacityError{Map: c.name, Entries: c.n, Max: c.max}
		}
	}
	return nil
}

func encode(s *engine.MapState) (*encoded, error) {
	e := &encoded{}
	hints := policyHints(s.Policy)
	for a, ep := range s.Endpoints {
		if !a.IsValid() || a.Zone() != "" {
			return nil, fmt.Errorf("endpoint address %v is not a plain IP address", a)
		}
		e.epKeys = append(e.epKeys, addrKey(a))
		e.epValues = append(e.epValues, endpointValue(ep, hintsOf(hints, ep.PolicyID)))
	}
	for p, id := range s.IPCache {
		if !p.IsValid() || p != p.Masked() {
			return nil, fmt.Errorf("ipcache prefix %v is not canonical (host bits set)", p)
		}
		v := bpf.PalisadeIpcacheValue{Identity: uint32(id)}
		if isExact(p) {
			e.ipKeys = append(e.ipKeys, addrKey(p.Addr()))
			e.ipValues = append(e.ipValues, v)
		} else {
			e.ipLPMKeys = append(e.ipLPMKeys, ipcacheLPMKey(p))
			e.ipLPMVals = append(e.ipLPMVals, v)
		}
	}
	for k, v := range s.Policy {
		if err := validPolicyKey(k); err != nil {
			return nil, err
		}
		if k.PrefixLen == 24 {
			e.polKeys = append(e.polKeys, policyKey(k))
			e.polValues = append(e.polValues, policyValue(v))
		} else {
			e.polLPMKeys = append(e.polLPMKeys, policyLPMKey(k))
			e.polLPMVals = append(e.polLPMVals, policyValue(v))
		}
	}
	dns, err := encodeDNS(s)
	if err != nil {
		return nil, err
	}
	e.dns = dns
	if e.fqdn, err = encodeFQDN(s); err != nil {
		return nil, err
	}
	return e, nil
}

// Apply makes s the state that packets see, as a new policy generation:
// it checks capacity (refusing the state whole), builds fresh inner maps
// in the inactive slot with batched updates, switches the active slot with
// one write, waits until no program can still read the old slot, and
// frees the old generation. On any error before the switch the previous
// generation stays enforced and untouched.
func (d *Datapath) Apply(ctx context.Context, s *engine.MapState) error {
	if err := d.check(s); err != nil {
		return err
	}
	enc, err := encode(s)
	if err != nil {
		return fmt.Errorf("encode map state: %w", err)
	}

	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.fenced {
		// A program may still read the inactive slot if an earlier agent
		// switched and died before waiting for it.
		if err := d.fence(); err != nil {
			return err
		}
	}
	next, gen := d.slot^1, d.generation+1

	maps, err := d.build(gen, enc)
	if err != nil {
		return err
	}
	defer func() {
		for _, m := range maps {
			m.Close()
		}
	}()
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := d.objs.Generations.Update(next, gen, ebpf.UpdateAny); err != nil {
		return fmt.Errorf("write generation: %w", err)
	}
	for i, name := range outerMaps {
		if err := d.outer(name).Update(next, uint32(maps[i].FD()), ebpf.UpdateAny); err != nil {
			return fmt.Errorf("install %s of generation %d: %w", name, gen, err)
		}
	}
	if err := ctx.Err(); err != nil {
		return err
	}

	// The switch: one write that packets see whole.
	if err := d.objs.Active.Update(uint32(0), bpf.PalisadeActiveSlot{Slot: next}, ebpf.UpdateAny); err != nil {
		return fmt.Errorf("switch to generation %d: %w", gen, err)
	}
	d.slot, d.generation, d.fenced = next, gen, false

	// The old generation's maps stay in their slot until the next Apply
	// replaces them (or a Writer patches them into the next generation): deleting them would cost five more RCU grace periods
	// (every update or delete of an outer map waits for one), about half
	// of a small Apply, for the memory of one generation.
	if err := d.fence(); err != nil {
		return err
	}
	// Learned names carry the selector identities of the generation that
	// learned them: give them this one's.
	if _, err := d.rewriteFQDNNames(s.FQDNSelectors); err != nil {
		return fmt.Errorf("generation %d: %w", gen, err)
	}
	return nil
}

// fence returns once no program still runs that may have read the slot
// that was active before the last switch: updating an ARRAY_OF_MAPS waits
// for an RCU grace period (maybe_wait_bpf_programs), and TC programs run
// inside RCU read sections. The update rewrites the active slot's endpoints
// map with itself.
func (d *Datapath) fence() error {
	var id uint32
	err := d.objs.GenEndpoints.Lookup(d.slot, &id)
	if errors.Is(err, ebpf.ErrKeyNotExist) {
		// No generation was ever active: no program reads any slot's maps.
		d.fenced = true
		return nil
	}
	if err != nil {
		return fmt.Errorf("fence: read active endpoints map: %w", err)
	}
	m, err := ebpf.NewMapFromID(ebpf.MapID(id))
	if err != nil {
		return fmt.Errorf("fence: open active endpoints map: %w", err)
	}
	defer m.Close()
	if err := d.objs.GenEndpoints.Update(d.slot, uint32(m.FD()), ebpf.UpdateAny); err != nil {
		return fmt.Errorf("fence: %w", err)
	}
	d.fenced = true
	return nil
}

// build creates and fills the inner maps of one generation, in outerMaps
// order. On error it closes what it created.
func (d *Datapath) build(gen uint64, e *encoded) (maps []*ebpf.Map, err error) {
	defer func() {
		if err != nil {
			for _, m := range maps {
				m.Close()
			}
			maps = nil
		}
	}()
	fills := []struct {
		keys, values any
		n            int
	}{
		{e.epKeys, e.epValues, len(e.epKeys)},
		{e.ipKeys, e.ipValues, len(e.ipKeys)},
		{e.ipLPMKeys, e.ipLPMVals, len(e.ipLPMKeys)},
		{e.polKeys, e.polValues, len(e.polKeys)},
		{e.polLPMKeys, e.polLPMVals, len(e.polLPMKeys)},
		{e.dns.listKeys, e.dns.listValues, len(e.dns.listKeys)},
		{e.dns.nextKeys, e.dns.nextValues, len(e.dns.nextKeys)},
		{e.dns.acceptKeys, e.dns.acceptValues, len(e.dns.acceptKeys)},
		{e.fqdn.nextKeys, e.fqdn.nextValues, len(e.fqdn.nextKeys)},
		{e.fqdn.acceptKeys, e.fqdn.acceptValues, len(e.fqdn.acceptKeys)},
		{e.fqdn.selKeys, e.fqdn.selValues, len(e.fqdn.selKeys)},
	}
	for i, name := range outerMaps {
		spec := d.inner[name].Copy()
		spec.Name = fmt.Sprintf("pal%d_g%d", i, gen%100000)
		spec.MaxEntries = uint32(max(fills[i].n, 1))
		if patchableMap(name) {
			// Room for a Writer to patch the generation in place later.
			spec.MaxEntries = uint32(fills[i].n + fills[i].n/4 + 64)
		}
		m, err := ebpf.NewMap(spec)
		if err != nil {
			return maps, fmt.Errorf("create %s for generation %d (%d entries): %w", name, gen, fills[i].n, err)
		}
		maps = append(maps, m)
		if fills[i].n == 0 {
			continue
		}
		if err := batchUpdate(m, fills[i].keys, fills[i].values, fills[i].n); err != nil {
			return maps, fmt.Errorf("fill %s for generation %d: %w", name, gen, err)
		}
	}
	return maps, nil
}

// batchUpdate writes keys and values with BPF_MAP_UPDATE_BATCH.
func batchUpdate(m *ebpf.Map, keys, values any, n int) error {
	// Keys are unique (they come from Go maps); the kernel takes no
	// per-element flags but BPF_F_LOCK in a batch.
	done, err := m.BatchUpdate(keys, values, nil)
	if err != nil {
		return err
	}
	if done != n {
		return fmt.Errorf("wrote %d of %d entries", done, n)
	}
	return nil
}
