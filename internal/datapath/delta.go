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
	"net/netip"
	"reflect"

	"github.com/cilium/ebpf"

	"github.com/palisade-dev/palisade/bpf"
	"github.com/palisade-dev/palisade/internal/engine"
)

// Writer writes policy generations by delta. The two slots hold the last
// two generations: while N is active the inactive slot holds N-1, which no
// program reads (Apply fences after every switch). To make N+1 the writer
// patches the inactive slot with the delta N-1 → N+1 (the delta it applied
// last composed with the new one), then switches with the same one write
// to the active slot as Apply: a packet sees N or N+1 whole, never a mix.
//
// It falls back to Apply (a whole generation in fresh maps) when it does
// not know the inactive slot's content (its first write, after an agent
// restart, after any Apply it did not make such as a drift repair, after a
// failed write), when the delta touches the L7 or toFQDNs tables (their
// automata are built whole), when the delta is large, or when a map has no
// room left for the patch (the kernel refuses the write: the slot is then
// rebuilt whole and sized anew). A Writer is not safe for concurrent use;
// it shares the Datapath's lock with Apply.
type Writer struct {
	d *Datapath
	// gen is the generation the writer last made active. What it knows of
	// the inactive slot holds only while the active generation is gen.
	gen uint64
	// behind is the delta from the inactive slot's content to the active
	// slot's; nil when the inactive slot's content is unknown.
	behind *engine.Delta
	last   ApplyInfo
}

// ApplyInfo says how a Writer made its last generation.
type ApplyInfo struct {
	Generation uint64
	// Incremental is whether the inactive slot was patched in place.
	Incremental bool
	// Written and Deleted count the entries a patch wrote and deleted
	// (endpoints rewritten for their hints included).
	Written, Deleted int
	// Rebuilt says why a whole generation was built; empty when patched.
	Rebuilt string
}

// NewWriter returns a writer over d. It knows nothing of the slots yet,
// so its first Apply builds a whole generation.
func NewWriter(d *Datapath) *Writer { return &Writer{d: d} }

// Last describes the last generation the writer made.
func (w *Writer) Last() ApplyInfo { return w.last }

// deltaShare is the fraction of the entries above which a delta is
// written as a whole generation instead: a patch writes about as much,
// and fresh maps are sized anew.
const deltaShare = 2

// Apply makes s the state that packets see, as a new generation. delta is
// the change from the state of the active generation to s, as the caller
// last wrote it (Apply or this writer); nil when unknown, which writes s
// whole. Like Datapath.Apply it refuses a state that does not fit the
// limits (a *CapacityError, nothing written) and on any error before the
// switch leaves the active generation enforced and untouched.
func (w *Writer) Apply(ctx context.Context, s *engine.MapState, delta *engine.Delta) error {
	d := w.d
	if err := d.check(s); err != nil {
		return err
	}
	d.mu.Lock()
	var why string
	var patch *engine.Delta
	switch {
	case delta == nil:
		why = "the change is not known"
	case w.behind == nil || d.generation != w.gen || w.gen == 0:
		why = "the inactive slot's content is not known"
	default:
		patch = engine.ComposeDeltas(w.behind, delta)
		why = patchable(s, patch)
	}
	if why != "" {
		d.mu.Unlock()
		return w.rebuild(ctx, s, delta, why)
	}
	info, err := w.patch(ctx, s, patch)
	d.mu.Unlock()
	if err != nil {
		var bad *badEntryError
		if errors.As(err, &bad) || ctx.Err() != nil {
			// Nothing was written, or the caller gave up: the slots
			// stay as they were, the inactive one unknown.
			w.behind = nil
			return err
		}
		return w.rebuild(ctx, s, delta, "patch failed: "+err.Error())
	}
	w.gen, w.behind, w.last = info.Generation, delta, info
	return nil
}

// patchable says why patch cannot be written in place, or "".
func patchable(s *engine.MapState, p *engine.Delta) string {
	if len(p.L7)+len(p.L7Deleted) > 0 {
		return "L7 lists changed"
	}
	if len(p.FQDNSelectors)+len(p.FQDNSelectorsDeleted) > 0 {
		return "toFQDNs selectors changed"
	}
	n := len(p.Policy) + len(p.PolicyDeleted) + len(p.IPCache) + len(p.IPCacheDeleted) + len(p.Endpoints) + len(p.EndpointsDeleted)
	if total := len(s.Policy) + len(s.IPCache) + len(s.Endpoints); n > 64 && n > total/deltaShare {
		return fmt.Sprintf("the delta writes %d of %d entries", n, total)
	}
	return ""
}

func (w *Writer) rebuild(ctx context.Context, s *engine.MapState, delta *engine.Delta, why string) error {
	w.behind = nil
	if err := w.d.Apply(ctx, s); err != nil {
		return err
	}
	w.gen = w.d.Generation()
	// The inactive slot now holds the generation that was active, which
	// is s before delta.
	w.behind = delta
	w.last = ApplyInfo{Generation: w.gen, Rebuilt: why}
	return nil
}

// badEntryError is an entry of a delta that cannot be encoded; nothing
// was written.
type badEntryError struct{ err error }

func (e *badEntryError) Error() string { return e.err.Error() }
func (e *badEntryError) Unwrap() error { return e.err }

// encodedPatch is a delta in the programs' layout.
type encodedPatch struct {
	up  encoded // the entries to write
	del struct {
		ep, ip    []bpf.PalisadeAddrKey
		ipLPM     []bpf.PalisadeIpcacheLpmKey
		pol       []bpf.PalisadePolicyKey
		polLPM    []bpf.PalisadePolicyLpmKey
		endpoints int
	}
}

// encodePatch encodes p against s, the state after it. Endpoints whose
// policy ID has policy keys written or deleted are rewritten with their
// hints, which depend on the keys present.
func encodePatch(s *engine.MapState, p *engine.Delta) (*encodedPatch, error) {
	e := &encodedPatch{}
	touched := p.PolicyIDsTouched()
	rewrite := map[netip.Addr]engine.EndpointEntry{}
	need := map[uint32]bool{}
	for a, ep := range s.Endpoints {
		if touched[ep.PolicyID] {
			rewrite[a] = ep
			need[ep.PolicyID] = true
		}
	}
	for a, ep := range p.Endpoints {
		rewrite[a] = ep
		need[ep.PolicyID] = true
	}
	var hints map[uint32]uint8
	if len(need) > 0 {
		hints = policyHintsOf(s.Policy, need)
	}
	for a, ep := range rewrite {
		if !a.IsValid() || a.Zone() != "" {
			return nil, fmt.Errorf("endpoint address %v is not a plain IP address", a)
		}
		e.up.epKeys = append(e.up.epKeys, addrKey(a))
		e.up.epValues = append(e.up.epValues, endpointValue(ep, hintsOf(hints, ep.PolicyID)))
	}
	for _, a := range p.EndpointsDeleted {
		e.del.ep = append(e.del.ep, addrKey(a))
	}
	for pfx, id := range p.IPCache {
		if !pfx.IsValid() || pfx != pfx.Masked() {
			return nil, fmt.Errorf("ipcache prefix %v is not canonical (host bits set)", pfx)
		}
		v := bpf.PalisadeIpcacheValue{Identity: uint32(id)}
		if isExact(pfx) {
			e.up.ipKeys = append(e.up.ipKeys, addrKey(pfx.Addr()))
			e.up.ipValues = append(e.up.ipValues, v)
		} else {
			e.up.ipLPMKeys = append(e.up.ipLPMKeys, ipcacheLPMKey(pfx))
			e.up.ipLPMVals = append(e.up.ipLPMVals, v)
		}
	}
	for _, pfx := range p.IPCacheDeleted {
		if !pfx.IsValid() || pfx != pfx.Masked() {
			return nil, fmt.Errorf("ipcache prefix %v is not canonical (host bits set)", pfx)
		}
		if isExact(pfx) {
			e.del.ip = append(e.del.ip, addrKey(pfx.Addr()))
		} else {
			e.del.ipLPM = append(e.del.ipLPM, ipcacheLPMKey(pfx))
		}
	}
	for k, v := range p.Policy {
		if err := validPolicyKey(k); err != nil {
			return nil, err
		}
		if k.PrefixLen == 24 {
			e.up.polKeys = append(e.up.polKeys, policyKey(k))
			e.up.polValues = append(e.up.polValues, policyValue(v))
		} else {
			e.up.polLPMKeys = append(e.up.polLPMKeys, policyLPMKey(k))
			e.up.polLPMVals = append(e.up.polLPMVals, policyValue(v))
		}
	}
	for _, k := range p.PolicyDeleted {
		if err := validPolicyKey(k); err != nil {
			return nil, err
		}
		if k.PrefixLen == 24 {
			e.del.pol = append(e.del.pol, policyKey(k))
		} else {
			e.del.polLPM = append(e.del.polLPM, policyLPMKey(k))
		}
	}
	return e, nil
}

// policyHintsOf is policyHints for the policy IDs in ids only. It reads
// every policy entry in memory (no system call), as the hints depend on
// which keys of an ID exist.
func policyHintsOf(policy map[engine.PolicyKey]engine.PolicyEntry, ids map[uint32]bool) map[uint32]uint8 {
	present := map[uint32]uint8{}
	for k := range policy {
		if !ids[k.PolicyID] {
			continue
		}
		var bit uint8
		switch {
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

// patch writes p into the inactive slot, whose content is s before p, and
// switches to it. The caller holds d.mu.
func (w *Writer) patch(ctx context.Context, s *engine.MapState, p *engine.Delta) (ApplyInfo, error) {
	d := w.d
	e, err := encodePatch(s, p)
	if err != nil {
		return ApplyInfo{}, &badEntryError{fmt.Errorf("encode delta: %w", err)}
	}
	if !d.fenced {
		if err := d.fence(); err != nil {
			return ApplyInfo{}, err
		}
	}
	next, gen := d.slot^1, d.generation+1
	info := ApplyInfo{Generation: gen, Incremental: true}
	// Deletes first: they make room for the writes.
	dels := []struct {
		outer string
		keys  any
		n     int
	}{
		{outerEndpoints, e.del.ep, len(e.del.ep)},
		{outerIPCache, e.del.ip, len(e.del.ip)},
		{outerIPCacheLPM, e.del.ipLPM, len(e.del.ipLPM)},
		{outerPolicy, e.del.pol, len(e.del.pol)},
		{outerPolicyLPM, e.del.polLPM, len(e.del.polLPM)},
	}
	for _, x := range dels {
		if x.n == 0 {
			continue
		}
		if err := d.withInner(x.outer, next, func(m *ebpf.Map) error { return deleteKeys(m, x.keys) }); err != nil {
			return info, fmt.Errorf("patch %s of generation %d: %w", x.outer, gen, err)
		}
		info.Deleted += x.n
	}
	ups := []struct {
		outer        string
		keys, values any
		n            int
	}{
		{outerEndpoints, e.up.epKeys, e.up.epValues, len(e.up.epKeys)},
		{outerIPCache, e.up.ipKeys, e.up.ipValues, len(e.up.ipKeys)},
		{outerIPCacheLPM, e.up.ipLPMKeys, e.up.ipLPMVals, len(e.up.ipLPMKeys)},
		{outerPolicy, e.up.polKeys, e.up.polValues, len(e.up.polKeys)},
		{outerPolicyLPM, e.up.polLPMKeys, e.up.polLPMVals, len(e.up.polLPMKeys)},
	}
	for _, x := range ups {
		if x.n == 0 {
			continue
		}
		if err := d.withInner(x.outer, next, func(m *ebpf.Map) error { return batchUpdate(m, x.keys, x.values, x.n) }); err != nil {
			return info, fmt.Errorf("patch %s of generation %d: %w", x.outer, gen, err)
		}
		info.Written += x.n
	}
	if err := ctx.Err(); err != nil {
		return info, err
	}
	if err := d.objs.Generations.Update(next, gen, ebpf.UpdateAny); err != nil {
		return info, fmt.Errorf("write generation: %w", err)
	}
	// The switch: the same one write as Apply's.
	if err := d.objs.Active.Update(uint32(0), bpf.PalisadeActiveSlot{Slot: next}, ebpf.UpdateAny); err != nil {
		return info, fmt.Errorf("switch to generation %d: %w", gen, err)
	}
	d.slot, d.generation, d.fenced = next, gen, false
	if err := d.fence(); err != nil {
		return info, err
	}
	return info, nil
}

// withInner opens the inner map that outer holds in slot and runs fn on
// it.
func (d *Datapath) withInner(outer string, slot uint32, fn func(*ebpf.Map) error) error {
	var id uint32
	if err := d.outer(outer).Lookup(slot, &id); err != nil {
		return fmt.Errorf("read slot %d: %w", slot, err)
	}
	m, err := ebpf.NewMapFromID(ebpf.MapID(id))
	if err != nil {
		return fmt.Errorf("open slot %d's map: %w", slot, err)
	}
	defer m.Close()
	return fn(m)
}

// deleteKeys deletes keys (a slice) from m; an absent key counts as
// deleted (a composed delta may delete a key that its first part wrote).
func deleteKeys(m *ebpf.Map, keys any) error {
	n, err := m.BatchDelete(keys, nil)
	if err == nil {
		return nil
	}
	if !errors.Is(err, ebpf.ErrKeyNotExist) {
		return err
	}
	// The batch stopped at an absent key: delete the rest one by one.
	rest := reflect.ValueOf(keys)
	for i := n; i < rest.Len(); i++ {
		if err := m.Delete(rest.Index(i).Interface()); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
			return err
		}
	}
	return nil
}

// patchableMap reports whether a Writer patches the inner maps of outer
// in place; the others (L7 and toFQDNs automata) are built whole.
func patchableMap(outer string) bool {
	switch outer {
	case outerEndpoints, outerIPCache, outerIPCacheLPM, outerPolicy, outerPolicyLPM:
		return true
	}
	return false
}
