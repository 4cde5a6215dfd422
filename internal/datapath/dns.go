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
	"slices"

	"github.com/cilium/ebpf"

	"github.com/palisade-dev/palisade/bpf"
	"github.com/palisade-dev/palisade/internal/engine"
)

// encodedDNS is a state's DNS tables (engine.CompileDNS) in the programs'
// layout: dns_lists by L7 list ID, dns_next and dns_accept by index.
type encodedDNS struct {
	listKeys     []uint32
	listValues   []bpf.PalisadeDnsList
	nextKeys     []uint32
	nextValues   []uint32
	acceptKeys   []uint32
	acceptValues []bpf.PalisadeDnsAccept
}

func encodeDNS(s *engine.MapState) (encodedDNS, error) {
	var e encodedDNS
	t, err := engine.CompileDNS(s.L7)
	if err != nil {
		return e, &CapacityError{Map: "dns", Entries: engine.MaxDNSStates + 1, Max: engine.MaxDNSStates}
	}
	if t == nil {
		return e, nil
	}
	for id, l := range t.Lists {
		e.listKeys = append(e.listKeys, uint32(id))
		e.listValues = append(e.listValues, dnsListValue(l))
	}
	e.nextKeys = make([]uint32, len(t.Next))
	for i := range e.nextKeys {
		e.nextKeys[i] = uint32(i)
	}
	e.nextValues = t.Next
	e.acceptKeys = make([]uint32, len(t.Accept))
	e.acceptValues = make([]bpf.PalisadeDnsAccept, len(t.Accept))
	for i, a := range t.Accept {
		e.acceptKeys[i] = uint32(i)
		e.acceptValues[i] = bpf.PalisadeDnsAccept{Allow: uint32(a.Allow), Refuse: uint32(a.Restrict),
			AuditAllow: uint32(a.AuditAllow), AuditRefuse: uint32(a.AuditRestrict)}
	}
	return e, nil
}

func dnsListValue(l engine.DNSList) bpf.PalisadeDnsList {
	v := bpf.PalisadeDnsList{Start: l.Start}
	if l.DNS {
		v.Flags = 1 // DNS_LIST_HAS_DNS
	}
	return v
}

// DNS refusal codes: what the kernel answers a refused UDP query with.
const (
	DNSRcodeRefused  = 5
	DNSRcodeNXDomain = 3
)

// SetDNSRcode sets the RCODE of the answers the kernel crafts for refused
// DNS queries: DNSRcodeRefused (the default) or DNSRcodeNXDomain.
func (d *Datapath) SetDNSRcode(rcode uint8) error {
	if rcode != DNSRcodeRefused && rcode != DNSRcodeNXDomain {
		return fmt.Errorf("DNS refusal rcode %d: want %d (REFUSED) or %d (NXDOMAIN)", rcode, DNSRcodeRefused, DNSRcodeNXDomain)
	}
	if err := d.objs.DnsSettings.Update(uint32(0), bpf.PalisadeDnsConfig{Rcode: uint32(rcode)}, ebpf.UpdateAny); err != nil {
		return fmt.Errorf("write DNS settings: %w", err)
	}
	return nil
}

// readDNS reads a generation's DNS maps back, in the encoded layout.
func readDNS(inner map[string]*ebpf.Map) (encodedDNS, error) {
	var e encodedDNS
	var k uint32
	var lv bpf.PalisadeDnsList
	it := inner[outerDNSLists].Iterate()
	for it.Next(&k, &lv) {
		e.listKeys = append(e.listKeys, k)
		e.listValues = append(e.listValues, lv)
	}
	if err := it.Err(); err != nil {
		return e, fmt.Errorf("read dns lists: %w", err)
	}
	// Arrays: every index exists; read them whole.
	next := inner[outerDNSNext]
	e.nextValues = make([]uint32, next.MaxEntries())
	if err := readArray(next, e.nextValues); err != nil {
		return e, fmt.Errorf("read dns transitions: %w", err)
	}
	acc := inner[outerDNSAccept]
	e.acceptValues = make([]bpf.PalisadeDnsAccept, acc.MaxEntries())
	if err := readArray(acc, e.acceptValues); err != nil {
		return e, fmt.Errorf("read dns accept values: %w", err)
	}
	return e, nil
}

func readArray[V any](m *ebpf.Map, out []V) error {
	keys := make([]uint32, len(out))
	var cursor ebpf.MapBatchCursor
	n, err := m.BatchLookup(&cursor, keys, out, nil)
	if err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
		return err
	}
	if n != len(out) {
		return fmt.Errorf("read %d of %d entries", n, len(out))
	}
	return nil
}

// compareDNS lists how a generation's DNS maps differ from the tables
// Apply writes for desired. An empty table is written as arrays of one
// zero entry.
func compareDNS(desired *engine.MapState, got encodedDNS) ([]Drift, error) {
	want, err := encodeDNS(desired)
	if err != nil {
		return nil, err
	}
	var out []Drift
	wl, gl := map[uint32]bpf.PalisadeDnsList{}, map[uint32]bpf.PalisadeDnsList{}
	for i, k := range want.listKeys {
		wl[k] = want.listValues[i]
	}
	for i, k := range got.listKeys {
		gl[k] = got.listValues[i]
	}
	out = appendDiff(out, "dns", wl, gl)
	pad := func(v []uint32) []uint32 {
		if len(v) == 0 {
			return []uint32{0}
		}
		return v
	}
	if w, g := pad(want.nextValues), got.nextValues; !slices.Equal(w, g) {
		out = append(out, Drift{Map: "dns", Key: "transitions", Want: fmt.Sprintf("%d entries", len(w)), Got: fmt.Sprintf("%d entries, %d differ", len(g), countDiff(w, g))})
	}
	wa := want.acceptValues
	if len(wa) == 0 {
		wa = []bpf.PalisadeDnsAccept{{}}
	}
	if g := got.acceptValues; !slices.Equal(wa, g) {
		out = append(out, Drift{Map: "dns", Key: "accept", Want: fmt.Sprintf("%d entries", len(wa)), Got: fmt.Sprintf("%d entries, %d differ", len(g), countDiff(wa, g))})
	}
	return out, nil
}

func countDiff[V comparable](a, b []V) int {
	n := max(len(a), len(b)) - min(len(a), len(b))
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			n++
		}
	}
	return n
}
