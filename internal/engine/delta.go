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

package engine

import (
	"bytes"
	"cmp"
	"encoding/json"
	"fmt"
	"maps"
	"net/netip"
	"reflect"
	"slices"
)

// Delta is the change from one MapState to another, per map: entries to
// write (new or changed) and keys to delete. A datapath applying it writes
// L7 lists before the policy entries that name them and deletes L7 lists
// after the entries that named them.
type Delta struct {
	IPCache          map[netip.Prefix]Identity    `json:"ipcache,omitempty"`
	IPCacheDeleted   []netip.Prefix               `json:"ipcacheDeleted,omitempty"`
	Endpoints        map[netip.Addr]EndpointEntry `json:"endpoints,omitempty"`
	EndpointsDeleted []netip.Addr                 `json:"endpointsDeleted,omitempty"`
	Policy           map[PolicyKey]PolicyEntry    `json:"policy,omitempty"`
	PolicyDeleted    []PolicyKey                  `json:"policyDeleted,omitempty"`
	L7               map[L7ID]L7List              `json:"l7,omitempty"`
	L7Deleted        []L7ID                       `json:"l7Deleted,omitempty"`
	// FQDN selectors and names changed (see MapState). The learned names
	// are the kernel's to learn; a datapath applies the selectors only.
	FQDNSelectors        map[Identity]FQDN       `json:"fqdnSelectors,omitempty"`
	FQDNSelectorsDeleted []Identity              `json:"fqdnSelectorsDeleted,omitempty"`
	FQDNNames            map[string][]netip.Addr `json:"fqdnNames,omitempty"`
	FQDNNamesDeleted     []string                `json:"fqdnNamesDeleted,omitempty"`
}

func newDelta() *Delta {
	return &Delta{IPCache: map[netip.Prefix]Identity{}, Endpoints: map[netip.Addr]EndpointEntry{},
		Policy: map[PolicyKey]PolicyEntry{}, L7: map[L7ID]L7List{},
		FQDNSelectors: map[Identity]FQDN{}, FQDNNames: map[string][]netip.Addr{}}
}

// Len is the number of entries the delta writes or deletes.
func (d *Delta) Len() int {
	return len(d.IPCache) + len(d.IPCacheDeleted) + len(d.Endpoints) + len(d.EndpointsDeleted) +
		len(d.Policy) + len(d.PolicyDeleted) + len(d.L7) + len(d.L7Deleted) +
		len(d.FQDNSelectors) + len(d.FQDNSelectorsDeleted) + len(d.FQDNNames) + len(d.FQDNNamesDeleted)
}

// Apply changes m by the delta.
func (d *Delta) Apply(m *MapState) {
	if m.FQDNSelectors == nil {
		m.FQDNSelectors = map[Identity]FQDN{}
	}
	if m.FQDNNames == nil {
		m.FQDNNames = map[string][]netip.Addr{}
	}
	maps.Copy(m.FQDNSelectors, d.FQDNSelectors)
	for k, v := range d.FQDNNames {
		m.FQDNNames[k] = slices.Clone(v)
	}
	for _, k := range d.FQDNSelectorsDeleted {
		delete(m.FQDNSelectors, k)
	}
	for _, k := range d.FQDNNamesDeleted {
		delete(m.FQDNNames, k)
	}
	maps.Copy(m.L7, d.L7)
	maps.Copy(m.IPCache, d.IPCache)
	maps.Copy(m.Endpoints, d.Endpoints)
	maps.Copy(m.Policy, d.Policy)
	for _, k := range d.IPCacheDeleted {
		delete(m.IPCache, k)
	}
	for _, k := range d.EndpointsDeleted {
		delete(m.Endpoints, k)
	}
	for _, k := range d.PolicyDeleted {
		delete(m.Policy, k)
	}
	for _, k := range d.L7Deleted {
		delete(m.L7, k)
	}
}

// Diff returns the delta that turns old into new.
func Diff(old, new *MapState) *Delta {
	d := newDelta()
	d.IPCache, d.IPCacheDeleted = diffMap(old.IPCache, new.IPCache, func(a, b Identity) bool { return a == b }, comparePrefix)
	d.Endpoints, d.EndpointsDeleted = diffMap(old.Endpoints, new.Endpoints, func(a, b EndpointEntry) bool { return a == b }, netip.Addr.Compare)
	d.Policy, d.PolicyDeleted = diffMap(old.Policy, new.Policy, func(a, b PolicyEntry) bool { return a == b }, comparePolicyKey)
	d.L7, d.L7Deleted = diffMap(old.L7, new.L7, func(a, b L7List) bool { return reflect.DeepEqual(a, b) }, cmp.Compare[L7ID])
	d.FQDNSelectors, d.FQDNSelectorsDeleted = diffMap(old.FQDNSelectors, new.FQDNSelectors, func(a, b FQDN) bool { return a == b }, cmp.Compare[Identity])
	d.FQDNNames, d.FQDNNamesDeleted = diffMap(old.FQDNNames, new.FQDNNames, slices.Equal[[]netip.Addr], cmp.Compare[string])
	return d
}

// diffFQDNInto adds to d the changes from m's FQDN selectors and names to
// sels and names, and installs them in m.
func diffFQDNInto(d *Delta, m *MapState, sels map[Identity]FQDN, names map[string][]netip.Addr) {
	d.FQDNSelectors, d.FQDNSelectorsDeleted = diffMap(m.FQDNSelectors, sels, func(a, b FQDN) bool { return a == b }, cmp.Compare[Identity])
	d.FQDNNames, d.FQDNNamesDeleted = diffMap(m.FQDNNames, names, slices.Equal[[]netip.Addr], cmp.Compare[string])
	m.FQDNSelectors, m.FQDNNames = sels, names
}

func diffMap[K comparable, V any](old, new map[K]V, eq func(a, b V) bool, order func(a, b K) int) (map[K]V, []K) {
	up := map[K]V{}
	var del []K
	for k, v := range new {
		if o, ok := old[k]; !ok || !eq(o, v) {
			up[k] = v
		}
	}
	for k := range old {
		if _, ok := new[k]; !ok {
			del = append(del, k)
		}
	}
	slices.SortFunc(del, order)
	return up, del
}

// diffInto adds to d the changes from m's ipcache and endpoint map to ipc
// and eps (nil: unchanged) and installs them in m.
func diffInto(d *Delta, m *MapState, ipc map[netip.Prefix]Identity, eps map[netip.Addr]EndpointEntry) {
	if ipc != nil {
		d.IPCache, d.IPCacheDeleted = diffMap(m.IPCache, ipc, func(a, b Identity) bool { return a == b }, comparePrefix)
		m.IPCache = ipc
	}
	d.Endpoints, d.EndpointsDeleted = diffMap(m.Endpoints, eps, func(a, b EndpointEntry) bool { return a == b }, netip.Addr.Compare)
	m.Endpoints = eps
}

// tracker records the original value of every policy and L7 key an
// incremental update touches, so that the delta is exactly the keys whose
// value differs at the end and a failed update can be rolled back.
type tracker struct {
	pol map[PolicyKey]trackedEntry
	l7  map[L7ID]trackedL7
}

type trackedEntry struct {
	e  PolicyEntry
	ok bool
}

type trackedL7 struct {
	l  L7List
	ok bool
}

func (t *tracker) begin() {
	t.pol, t.l7 = map[PolicyKey]trackedEntry{}, map[L7ID]trackedL7{}
}

func (t *tracker) notePolicy(m *MapState, k PolicyKey) {
	if t.pol == nil {
		return
	}
	if _, seen := t.pol[k]; !seen {
		e, ok := m.Policy[k]
		t.pol[k] = trackedEntry{e, ok}
	}
}

func (t *tracker) noteL7(m *MapState, id L7ID) {
	if t.l7 == nil {
		return
	}
	if _, seen := t.l7[id]; !seen {
		l, ok := m.L7[id]
		t.l7[id] = trackedL7{l, ok}
	}
}

// restore undoes the changes made since begin.
func (t *tracker) restore(m *MapState) {
	for k, o := range t.pol {
		if o.ok {
			m.Policy[k] = o.e
		} else {
			delete(m.Policy, k)
		}
	}
	for id, o := range t.l7 {
		if o.ok {
			m.L7[id] = o.l
		} else {
			delete(m.L7, id)
		}
	}
	t.pol, t.l7 = nil, nil
}

// finish returns the policy and L7 changes since begin.
func (t *tracker) finish(m *MapState) *Delta {
	d := newDelta()
	for k, o := range t.pol {
		e, ok := m.Policy[k]
		switch {
		case ok && (!o.ok || e != o.e):
			d.Policy[k] = e
		case !ok && o.ok:
			d.PolicyDeleted = append(d.PolicyDeleted, k)
		}
	}
	for id, o := range t.l7 {
		l, ok := m.L7[id]
		switch {
		case ok && (!o.ok || !reflect.DeepEqual(l, o.l)):
			d.L7[id] = l
		case !ok && o.ok:
			d.L7Deleted = append(d.L7Deleted, id)
		}
	}
	slices.SortFunc(d.PolicyDeleted, comparePolicyKey)
	slices.Sort(d.L7Deleted)
	t.pol, t.l7 = nil, nil
	return d
}

// Clone returns a deep copy of the map state (L7 rules are shared: they
// are never modified).
func (m *MapState) Clone() *MapState {
	out := &MapState{IPCache: maps.Clone(m.IPCache), Endpoints: maps.Clone(m.Endpoints),
		Policy: maps.Clone(m.Policy), L7: make(map[L7ID]L7List, len(m.L7))}
	for id, l := range m.L7 {
		out.L7[id] = slices.Clone(l)
	}
	if m.FQDNSelectors != nil {
		out.FQDNSelectors = maps.Clone(m.FQDNSelectors)
	}
	if m.FQDNNames != nil {
		out.FQDNNames = make(map[string][]netip.Addr, len(m.FQDNNames))
		for n, a := range m.FQDNNames {
			out.FQDNNames[n] = slices.Clone(a)
		}
	}
	return out
}

// Encode renders the map state as sorted text, one entry per line: equal
// states encode to equal bytes, so it is what determinism is checked on,
// and a readable dump of what the datapath holds.
func (m *MapState) Encode() []byte {
	var b bytes.Buffer
	for _, k := range slices.SortedFunc(maps.Keys(m.IPCache), comparePrefix) {
		fmt.Fprintf(&b, "ipcache %s %d\n", k, m.IPCache[k])
	}
	for _, k := range slices.SortedFunc(maps.Keys(m.Endpoints), netip.Addr.Compare) {
		e := m.Endpoints[k]
		fmt.Fprintf(&b, "endpoint %s identity=%d policy=%d flags=%#x\n", k, e.Identity, e.PolicyID, e.Flags)
	}
	for _, k := range slices.SortedFunc(maps.Keys(m.Policy), comparePolicyKey) {
		e := m.Policy[k]
		fmt.Fprintf(&b, "policy %d %s %d %d/%d/%d flags=%#x allow=%d deny=%d audit=%d auditAllow=%d l7=%d\n", k.PolicyID, k.Direction, k.Identity,
			k.Proto, k.Port, k.PrefixLen, e.Flags, e.AllowRule, e.DenyRule, e.AuditRule, e.AuditAllowRule, e.L7)
	}
	for _, id := range slices.Sorted(maps.Keys(m.L7)) {
		j, err := json.Marshal(m.L7[id])
		if err != nil {
			panic("engine: encode L7 list: " + err.Error())
		}
		fmt.Fprintf(&b, "l7 %d %s\n", id, j)
	}
	for _, id := range slices.Sorted(maps.Keys(m.FQDNSelectors)) {
		fmt.Fprintf(&b, "fqdnSelector %d %s\n", id, m.FQDNSelectors[id].text())
	}
	for _, n := range slices.Sorted(maps.Keys(m.FQDNNames)) {
		fmt.Fprintf(&b, "fqdnName %s %v\n", n, m.FQDNNames[n])
	}
	return b.Bytes()
}

func comparePrefix(a, b netip.Prefix) int {
	return cmp.Or(a.Addr().Compare(b.Addr()), cmp.Compare(a.Bits(), b.Bits()))
}

func comparePolicyKey(a, b PolicyKey) int {
	return cmp.Or(cmp.Compare(a.PolicyID, b.PolicyID), cmp.Compare(a.Direction, b.Direction), cmp.Compare(a.Identity, b.Identity),
		cmp.Compare(a.Proto, b.Proto), cmp.Compare(a.Port, b.Port), cmp.Compare(a.PrefixLen, b.PrefixLen))
}
