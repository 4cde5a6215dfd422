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

package kafka

import (
	"cmp"
	"fmt"
	"maps"
	"net/netip"
	"slices"

	"github.com/cilium/ebpf"

	kafkabpf "github.com/palisade-dev/palisade/bpf/kafka"
	"github.com/palisade-dev/palisade/internal/engine"
	"github.com/palisade-dev/palisade/internal/sockl7"
)

// Drift is one difference between what the kernel decides Kafka requests
// by and what was applied: a map, the entry, the value applied and the
// one found ("" when the entry is absent).
type Drift = sockl7.Drift

type readback struct {
	d      *Datapath
	slot   uint32
	drifts sockl7.Drifts
}

func (r *readback) add(m, key, want, got string) { r.drifts.Add(m, key, want, got) }

// Compare reads back from the kernel the generation Kafka requests are
// decided by (the slot kafka_slot names, its generation and event flags,
// its lists, their version, client ID and topic entries, its bindings,
// and the enforced ports, of the broker's side and of the client's) and compares it exactly with generation,
// tables and binds as Apply wrote them: a list, entry or binding the
// generation does not have is a drift too.
//
// Compare also makes the next Apply replace whatever it found: a switched
// slot becomes the one the next generation is written beside, and entries
// the generation does not have are deleted by it (Apply deletes only what
// it knows of).
func (d *Datapath) Compare(generation uint64, tables *engine.KafkaTables, binds []Binding) ([]Drift, error) {
	if tables == nil {
		tables = &engine.KafkaTables{}
	}
	var act kafkabpf.KafkaKafkaActive
	if err := d.objs.KafkaSlot.Lookup(uint32(0), &act); err != nil {
		return nil, fmt.Errorf("read kafka_slot: %w", err)
	}
	r := &readback{d: d, slot: act.Slot & 1}
	if act.Slot != d.active || act.Pad != 0 {
		// The kernel uses the slot's low bit: that is what is compared.
		r.add("kafka_slot", "0", fmt.Sprintf("slot %d", d.active), fmt.Sprintf("slot %d pad %d", act.Slot, act.Pad))
		d.active = act.Slot & 1
	}
	var conf kafkabpf.KafkaKafkaConfig
	if err := d.objs.KafkaGens.Lookup(r.slot, &conf); err != nil {
		return nil, fmt.Errorf("read kafka_gens: %w", err)
	}
	if want := (kafkabpf.KafkaKafkaConfig{Generation: generation, Flags: d.evflags}); conf != want {
		r.add("kafka_gens", fmt.Sprintf("slot %d", r.slot), fmt.Sprintf("generation %d flags %#x", want.Generation, want.Flags),
			fmt.Sprintf("generation %d flags %#x", conf.Generation, conf.Flags))
	}
	if err := r.lists(tables); err != nil {
		return nil, err
	}
	if err := r.vals(tables); err != nil {
		return nil, err
	}
	for _, egress := range []bool{false, true} {
		var side []Binding
		for _, b := range binds {
			if b.Egress == egress {
				side = append(side, b)
			}
		}
		bm, pm, bname, pname, written, known := d.objs.KafkaBinds, d.objs.KafkaPorts, "kafka_binds", "kafka_ports", &d.written[r.slot].binds, d.ports
		if egress {
			bm, pm, bname, pname, written, known = d.objs.KafkaEbinds, d.objs.KafkaEports, "kafka_ebinds", "kafka_eports", &d.written[r.slot].ebinds, d.eports
		}
		if err := r.binds(bname, bm, side, written); err != nil {
			return nil, err
		}
		if err := r.ports(pname, pm, side, known); err != nil {
			return nil, err
		}
	}
	return r.drifts, nil
}

func listKeyString(k kafkabpf.KafkaKafkaListKey) string {
	return fmt.Sprintf("{slot %d list %d}", k.Slot, k.List)
}

// listDiff names what differs between two list values, field by field.
func listDiff(want, got *kafkabpf.KafkaKafkaList) (string, string) {
	switch {
	case want.Keys != got.Keys:
		return fmt.Sprintf("keys %#x", want.Keys), fmt.Sprintf("keys %#x", got.Keys)
	case want.VerAny != got.VerAny || want.ClientAny != got.ClientAny || want.TopicAny != got.TopicAny:
		f := func(l *kafkabpf.KafkaKafkaList) string {
			return fmt.Sprintf("any version %#x client %#x topic %#x", l.VerAny, l.ClientAny, l.TopicAny)
		}
		return f(want), f(got)
	case want.Nallows != got.Nallows || want.Pad != got.Pad:
		return fmt.Sprintf("%d allows", want.Nallows), fmt.Sprintf("%d allows (pad %d)", got.Nallows, got.Pad)
	}
	for i := range want.Allows {
		if w, g := want.Allows[i], got.Allows[i]; w != g {
			f := func(a kafkabpf.KafkaKafkaAllow) string {
				return fmt.Sprintf("allow %d: rule %d audit %d any %d rules %#x pad %v", i, a.Rule, a.Audit, a.Any, a.Rules, a.Pad)
			}
			return f(w), f(g)
		}
	}
	return "the list", "another list"
}

// lists compares the slot's list records.
func (r *readback) lists(tables *engine.KafkaTables) error {
	found := map[uint32]kafkabpf.KafkaKafkaList{}
	var k kafkabpf.KafkaKafkaListKey
	var v kafkabpf.KafkaKafkaList
	it := r.d.objs.KafkaLists.Iterate()
	for it.Next(&k, &v) {
		if k.Slot == r.slot {
			found[k.List] = v
		}
	}
	if err := it.Err(); err != nil {
		return fmt.Errorf("read kafka_lists: %w", err)
	}
	for _, id := range slices.Sorted(maps.Keys(tables.Lists)) {
		lk := kafkabpf.KafkaKafkaListKey{Slot: r.slot, List: uint32(id)}
		want, err := listValue(tables.Lists[id])
		if err != nil {
			return fmt.Errorf("kafka list %d: %w", id, err)
		}
		got, ok := found[uint32(id)]
		delete(found, uint32(id))
		switch {
		case !ok:
			r.add("kafka_lists", listKeyString(lk), "the list's record", "")
		case *want != got:
			w, g := listDiff(want, &got)
			r.add("kafka_lists", listKeyString(lk), w, g)
		}
	}
	for _, id := range slices.Sorted(maps.Keys(found)) {
		lk := kafkabpf.KafkaKafkaListKey{Slot: r.slot, List: id}
		r.add("kafka_lists", listKeyString(lk), "", "a list record")
		r.d.written[r.slot].lists = append(r.d.written[r.slot].lists, lk)
	}
	return nil
}

func valKeyString(k kafkabpf.KafkaKafkaValKey) string {
	kind := map[uint16]string{
		uint16(kafkabpf.KafkaKafkaValKindKAFKA_VAL_VERSION): "version", uint16(kafkabpf.KafkaKafkaValKindKAFKA_VAL_CLIENT): "client",
		uint16(kafkabpf.KafkaKafkaValKindKAFKA_VAL_TOPIC): "topic",
	}[k.Kind]
	if kind == "" {
		kind = fmt.Sprintf("kind-%d", k.Kind)
	}
	val := fmt.Sprintf("%q", k.Val[:min(int(k.Len), len(k.Val))])
	if k.Kind == uint16(kafkabpf.KafkaKafkaValKindKAFKA_VAL_VERSION) && k.Len == 2 {
		val = fmt.Sprint(uint16(k.Val[0]) | uint16(k.Val[1])<<8)
	}
	return fmt.Sprintf("{slot %d list %d %s %s}", k.Slot, k.List, kind, val)
}

// vals compares the slot's version, client ID and topic entries.
func (r *readback) vals(tables *engine.KafkaTables) error {
	found := map[kafkabpf.KafkaKafkaValKey]uint64{}
	var k kafkabpf.KafkaKafkaValKey
	var v uint64
	it := r.d.objs.KafkaVals.Iterate()
	for it.Next(&k, &v) {
		if k.Slot == r.slot {
			found[k] = v
		}
	}
	if err := it.Err(); err != nil {
		return fmt.Errorf("read kafka_vals: %w", err)
	}
	want := map[kafkabpf.KafkaKafkaValKey]uint64{}
	for id, l := range tables.Lists {
		maps.Copy(want, ValueKeys(r.slot, uint32(id), l))
	}
	byString := func(m map[kafkabpf.KafkaKafkaValKey]uint64) []kafkabpf.KafkaKafkaValKey {
		return slices.SortedFunc(maps.Keys(m), func(x, y kafkabpf.KafkaKafkaValKey) int {
			return cmp.Compare(valKeyString(x), valKeyString(y))
		})
	}
	for _, vk := range byString(want) {
		got, ok := found[vk]
		delete(found, vk)
		switch {
		case !ok:
			r.add("kafka_vals", valKeyString(vk), fmt.Sprintf("rules %#x", want[vk]), "")
		case got != want[vk]:
			r.add("kafka_vals", valKeyString(vk), fmt.Sprintf("rules %#x", want[vk]), fmt.Sprintf("rules %#x", got))
		}
	}
	for _, vk := range byString(found) {
		r.add("kafka_vals", valKeyString(vk), "", fmt.Sprintf("rules %#x", found[vk]))
		r.d.written[r.slot].vals = append(r.d.written[r.slot].vals, vk)
	}
	return nil
}

func bindKeyString(k sockl7.BindKey) string { return k.String() }

// binds compares the slot's bindings of one side (name: kafka_binds or
// kafka_ebinds, m the map); the keys found beyond them are added to what
// Apply deletes (written).
func (r *readback) binds(name string, m *ebpf.Map, binds []Binding, written *[]sockl7.BindKey) error {
	found := map[sockl7.BindKey]kafkabpf.KafkaKafkaBind{}
	var k sockl7.BindKey
	var v kafkabpf.KafkaKafkaBind
	it := m.Iterate()
	for it.Next(&k, &v) {
		if k.Slot == r.slot {
			found[k] = v
		}
	}
	if err := it.Err(); err != nil {
		return fmt.Errorf("read %s: %w", name, err)
	}
	for _, b := range binds {
		bk := sockl7.BindKeyOf(r.slot, b.Addr, b.Port, b.Identity)
		want := kafkabpf.KafkaKafkaBind{List: uint32(b.List)}
		got, ok := found[bk]
		delete(found, bk)
		switch {
		case !ok:
			r.add(name, bindKeyString(bk), fmt.Sprintf("list %d", want.List), "")
		case got != want:
			r.add(name, bindKeyString(bk), fmt.Sprintf("list %d flags %#x", want.List, want.Flags), fmt.Sprintf("list %d flags %#x", got.List, got.Flags))
		}
	}
	for _, bk := range slices.SortedFunc(maps.Keys(found), func(x, y sockl7.BindKey) int {
		return cmp.Compare(bindKeyString(x), bindKeyString(y))
	}) {
		r.add(name, bindKeyString(bk), "", fmt.Sprintf("list %d", found[bk].List))
		*written = append(*written, bk)
	}
	return nil
}

// ports compares the enforced addresses and ports of one side (not by
// slot: those of the active generation's bindings); the ports found
// beyond them are added to what Apply deletes (known).
func (r *readback) ports(name string, m *ebpf.Map, binds []Binding, known map[sockl7.PortKey]bool) error {
	want := map[sockl7.PortKey]bool{}
	for _, b := range binds {
		want[sockl7.PortKeyOf(b.Addr, b.Port)] = true
	}
	extra, err := sockl7.ComparePorts(&r.drifts, name, m, want)
	for _, pk := range extra {
		known[pk] = true
	}
	return err
}

// Peers returns kafka_peers as the kernel holds it: the identity of each
// prefix.
func (d *Datapath) Peers() (map[netip.Prefix]uint32, error) {
	return sockl7.ReadPeers(d.objs.KafkaPeers, "kafka_peers")
}

// DeletePeer deletes the identity of prefix (absent: nothing to do).
func (d *Datapath) DeletePeer(prefix netip.Prefix) error {
	return sockl7.DeletePeer(d.objs.KafkaPeers, "kafka_peers", prefix)
}

// ComparePeers compares kafka_peers with want, the identities written. It
// returns the drifts and, among them, the prefixes the kernel holds that
// want lacks (to delete).
func (d *Datapath) ComparePeers(want map[netip.Prefix]uint32) ([]Drift, []netip.Prefix, error) {
	got, err := d.Peers()
	if err != nil {
		return nil, nil, err
	}
	ds, extra := sockl7.ComparePeers("kafka_peers", want, got)
	return ds, extra, nil
}
