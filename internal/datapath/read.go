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
	"errors"
	"fmt"
	"net/netip"
	"sort"

	"github.com/cilium/ebpf"

	"github.com/palisade-dev/palisade/bpf"
	"github.com/palisade-dev/palisade/internal/engine"
)

// Read returns the map state that packets see now, read back from the
// kernel, and its generation. L7 lists are not in the kernel: the result's
// L7 is nil, and policy entries carry their L7 IDs only. Nor does a
// MapState hold the hints byte of endpoint entries (which lookups the
// programs skip); Compare checks it.
func (d *Datapath) Read() (*engine.MapState, uint64, error) {
	s, _, gen, err := d.read()
	return s, gen, err
}

// Compare reads the generation that packets see now and lists how it
// differs from desired, as Diff does, and its DNS tables from those Apply
// writes for desired (map "dns"), its toFQDNs automaton (map "fqdn"), the
// selector identities of every learned name from those desired's
// selectors give it (map "fqdn-names"; Apply rewrites them), and also
// every endpoint whose hints
// byte is not the one Apply writes for desired: a wrong hint makes packets
// skip policy entries that are there (or probe for ones that are not), so
// it is drift even when every entry is right. It returns the generation
// read.
func (d *Datapath) Compare(desired *engine.MapState) ([]Drift, uint64, error) {
	actual, hints, dns, fq, gen, err := d.readAll()
	if err != nil {
		return nil, gen, err
	}
	out := Diff(desired, actual)
	if gen != 0 {
		dd, err := compareDNS(desired, dns)
		if err != nil {
			return nil, gen, err
		}
		out = append(out, dd...)
		fd, err := compareFQDN(desired, fq)
		if err != nil {
			return nil, gen, err
		}
		out = append(out, fd...)
		nd, err := d.compareFQDNNames(desired)
		if err != nil {
			return nil, gen, err
		}
		out = append(out, nd...)
	}
	want := policyHints(desired.Policy)
	for a, ep := range desired.Endpoints {
		got, ok := hints[a]
		if !ok {
			continue // a missing endpoint is in Diff's list
		}
		if w := hintsOf(want, ep.PolicyID); got != w {
			out = append(out, Drift{Map: "endpoints", Key: a.String(), Want: hintsString(w), Got: hintsString(got)})
		}
	}
	sortDrift(out)
	return out, gen, nil
}

func hintsString(h uint8) string { return fmt.Sprintf("hints 0x%02x", h) }

// read reads the active generation: its state, the hints byte of every
// endpoint, and its number.
func (d *Datapath) read() (*engine.MapState, map[netip.Addr]uint8, uint64, error) {
	s, hints, _, _, gen, err := d.readAll()
	return s, hints, gen, err
}

// readAll is read with the generation's DNS and toFQDNs tables.
func (d *Datapath) readAll() (*engine.MapState, map[netip.Addr]uint8, encodedDNS, encodedFQDN, uint64, error) {
	var dns encodedDNS
	var fq encodedFQDN
	s, hints, gen, err := d.readLocked(&dns, &fq)
	return s, hints, dns, fq, gen, err
}

func (d *Datapath) readLocked(dns *encodedDNS, fq *encodedFQDN) (*engine.MapState, map[netip.Addr]uint8, uint64, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	s := &engine.MapState{
		IPCache:       map[netip.Prefix]engine.Identity{},
		Endpoints:     map[netip.Addr]engine.EndpointEntry{},
		Policy:        map[engine.PolicyKey]engine.PolicyEntry{},
		FQDNSelectors: map[engine.Identity]engine.FQDN{},
		FQDNNames:     map[string][]netip.Addr{},
	}
	// The learned table is not per generation: the kernel's answer for
	// addresses learned from DNS answers (unexpired entries only).
	names, err := d.fqdnNames()
	if err != nil {
		return nil, nil, 0, err
	}
	s.FQDNNames = names
	hints := map[netip.Addr]uint8{}
	var a bpf.PalisadeActiveSlot
	if err := d.objs.Active.Lookup(uint32(0), &a); err != nil {
		return nil, nil, 0, fmt.Errorf("read active slot: %w", err)
	}
	slot := a.Slot & 1
	var gen uint64
	if err := d.objs.Generations.Lookup(slot, &gen); err != nil {
		return nil, nil, 0, fmt.Errorf("read generation: %w", err)
	}
	inner := map[string]*ebpf.Map{}
	defer func() {
		for _, m := range inner {
			m.Close()
		}
	}()
	for _, name := range outerMaps {
		var id uint32
		err := d.outer(name).Lookup(slot, &id)
		if errors.Is(err, ebpf.ErrKeyNotExist) {
			if gen == 0 {
				return s, hints, 0, nil // nothing applied yet
			}
			if isFQDNOuter(name) {
				// A generation of an agent from before toFQDNs: its tables
				// read as empty, which Compare reports as drift.
				continue
			}
			return nil, nil, gen, fmt.Errorf("read %s: generation %d has no map", name, gen)
		}
		if err != nil {
			return nil, nil, gen, fmt.Errorf("read %s: %w", name, err)
		}
		m, err := ebpf.NewMapFromID(ebpf.MapID(id))
		if err != nil {
			return nil, nil, gen, fmt.Errorf("open %s of generation %d: %w", name, gen, err)
		}
		inner[name] = m
	}
	if err := readInto(s, hints, inner); err != nil {
		return nil, nil, gen, err
	}
	e, err := readDNS(inner)
	if err != nil {
		return nil, nil, gen, err
	}
	*dns = e
	f, err := readFQDN(inner)
	if err != nil {
		return nil, nil, gen, err
	}
	for i, id := range f.selKeys {
		s.FQDNSelectors[engine.Identity(id)] = fqdnSelector(f.selValues[i])
	}
	*fq = f
	return s, hints, gen, nil
}

// readInto reads the inner maps of one generation into s and hints.
func readInto(s *engine.MapState, hints map[netip.Addr]uint8, inner map[string]*ebpf.Map) error {
	var ak bpf.PalisadeAddrKey
	var ev bpf.PalisadeEndpointValue
	it := inner[outerEndpoints].Iterate()
	for it.Next(&ak, &ev) {
		a, err := addrFromKey(ak.Family, ak.Addr)
		if err != nil {
			return fmt.Errorf("read endpoints: %w", err)
		}
		s.Endpoints[a] = endpointEntry(ev)
		hints[a] = ev.Hints
	}
	if err := it.Err(); err != nil {
		return fmt.Errorf("read endpoints: %w", err)
	}

	var iv bpf.PalisadeIpcacheValue
	it = inner[outerIPCache].Iterate()
	for it.Next(&ak, &iv) {
		a, err := addrFromKey(ak.Family, ak.Addr)
		if err != nil {
			return fmt.Errorf("read ipcache: %w", err)
		}
		s.IPCache[netip.PrefixFrom(a, a.BitLen())] = engine.Identity(iv.Identity)
	}
	if err := it.Err(); err != nil {
		return fmt.Errorf("read ipcache: %w", err)
	}
	var lk bpf.PalisadeIpcacheLpmKey
	it = inner[outerIPCacheLPM].Iterate()
	for it.Next(&lk, &iv) {
		p, err := prefixFromLPMKey(lk)
		if err != nil {
			return fmt.Errorf("read ipcache: %w", err)
		}
		s.IPCache[p] = engine.Identity(iv.Identity)
	}
	if err := it.Err(); err != nil {
		return fmt.Errorf("read ipcache: %w", err)
	}

	var pk bpf.PalisadePolicyKey
	var pv bpf.PalisadePolicyValue
	it = inner[outerPolicy].Iterate()
	for it.Next(&pk, &pv) {
		s.Policy[policyKeyFromHash(pk)] = policyEntry(pv)
	}
	if err := it.Err(); err != nil {
		return fmt.Errorf("read policy: %w", err)
	}
	var plk bpf.PalisadePolicyLpmKey
	it = inner[outerPolicyLPM].Iterate()
	for it.Next(&plk, &pv) {
		k, err := policyKeyFromLPM(plk)
		if err != nil {
			return fmt.Errorf("read policy: %w", err)
		}
		s.Policy[k] = policyEntry(pv)
	}
	if err := it.Err(); err != nil {
		return fmt.Errorf("read policy: %w", err)
	}
	return nil
}

// Drift is one difference between a desired and an actual map state.
type Drift struct {
	// Map is "endpoints", "ipcache" or "policy". Compare's drifts of an
	// endpoint's hints byte are "endpoints" drifts whose values are
	// "hints 0x..".
	Map string
	Key string
	// Want and Got are the desired and actual values; "" means absent.
	Want, Got string
}

func (d Drift) String() string {
	switch {
	case d.Got == "":
		return fmt.Sprintf("%s %s: missing (want %s)", d.Map, d.Key, d.Want)
	case d.Want == "":
		return fmt.Sprintf("%s %s: unexpected %s", d.Map, d.Key, d.Got)
	}
	return fmt.Sprintf("%s %s: %s, want %s", d.Map, d.Key, d.Got, d.Want)
}

// Diff lists how actual differs from desired, sorted by map and key. L7
// lists are not compared (the kernel does not hold them), nor the learned
// FQDN names (the kernel learns its own from DNS answers; Compare checks
// their selector identities).
func Diff(desired, actual *engine.MapState) []Drift {
	var out []Drift
	out = appendDiff(out, "endpoints", desired.Endpoints, actual.Endpoints)
	out = appendDiff(out, "ipcache", desired.IPCache, actual.IPCache)
	out = appendDiff(out, "policy", desired.Policy, actual.Policy)
	out = appendDiff(out, "fqdn-selectors", normalizedSelectors(desired.FQDNSelectors), normalizedSelectors(actual.FQDNSelectors))
	sortDrift(out)
	return out
}

func sortDrift(out []Drift) {
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].Map != out[j].Map {
			return out[i].Map < out[j].Map
		}
		return out[i].Key < out[j].Key
	})
}

func appendDiff[K comparable, V comparable](out []Drift, name string, want, got map[K]V) []Drift {
	for k, w := range want {
		g, ok := got[k]
		switch {
		case !ok:
			out = append(out, Drift{Map: name, Key: fmt.Sprintf("%+v", k), Want: fmt.Sprintf("%+v", w)})
		case g != w:
			out = append(out, Drift{Map: name, Key: fmt.Sprintf("%+v", k), Want: fmt.Sprintf("%+v", w), Got: fmt.Sprintf("%+v", g)})
		}
	}
	for k, g := range got {
		if _, ok := want[k]; !ok {
			out = append(out, Drift{Map: name, Key: fmt.Sprintf("%+v", k), Got: fmt.Sprintf("%+v", g)})
		}
	}
	return out
}

// normalizedSelectors returns selectors as the kernel stores them (names
// and patterns normalised).
func normalizedSelectors(in map[engine.Identity]engine.FQDN) map[engine.Identity]engine.FQDN {
	out := make(map[engine.Identity]engine.FQDN, len(in))
	for id, f := range in {
		if f.Name != "" {
			f.Name = engine.NormalizeFQDN(f.Name)
		} else {
			f.Pattern = engine.NormalizeFQDN(f.Pattern)
		}
		out[id] = f
	}
	return out
}
