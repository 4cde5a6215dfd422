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

package l7

import (
	"cmp"
	"fmt"
	"maps"
	"net/netip"
	"slices"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"

	l7bpf "github.com/palisade-dev/palisade/bpf/l7"
	"github.com/palisade-dev/palisade/internal/engine"
	"github.com/palisade-dev/palisade/internal/sockl7"
)

// Drift is one difference between what the kernel decides requests by
// and what was applied (sockl7.Drift).
type Drift = sockl7.Drift

// readback collects the drifts of one read-back.
type readback struct {
	d      *Datapath
	slot   uint32
	drifts sockl7.Drifts
}

func (r *readback) add(m, key, want, got string) { r.drifts.Add(m, key, want, got) }

func (r *readback) full() bool { return r.drifts.Full() }

// Compare reads back from the kernel the generation requests are decided
// by (the slot l7_slot names, its generation, every table row its lists
// reach, its header keys, bindings of both directions and event flags,
// and the enforced ports of both directions) and
// compares it exactly with generation, tables and binds as Apply wrote
// them. The rows are compared where the kernel's list records point, so
// what is compared is what a request is decided by; a list, binding or
// header key the generation does not have is a drift too. The hash seed
// is the kernel's: the header keys must be those of its seed.
//
// Compare also makes the next Apply replace whatever it found: a switched
// slot becomes the one the next generation is written beside, and entries
// the generation does not have are deleted by it (Apply deletes only what
// it knows of).
func (d *Datapath) Compare(generation uint64, tables *engine.HTTPTables, binds []Binding) ([]Drift, error) {
	var act l7bpf.L7L7Active
	if err := d.objs.L7Slot.Lookup(uint32(0), &act); err != nil {
		return nil, fmt.Errorf("read l7_slot: %w", err)
	}
	r := &readback{d: d, slot: act.Slot}
	if act.Slot > 1 {
		r.add("l7_slot", "0", fmt.Sprint(d.active), fmt.Sprint(act.Slot))
		return r.drifts, nil
	}
	if act.Slot != d.active {
		r.add("l7_slot", "0", fmt.Sprint(d.active), fmt.Sprint(act.Slot))
		d.active = act.Slot
	}
	var conf l7bpf.L7L7Config
	if err := d.objs.L7Gens.Lookup(act.Slot, &conf); err != nil {
		return nil, fmt.Errorf("read l7_gens: %w", err)
	}
	if conf.Generation != generation {
		r.add("l7_gens", fmt.Sprintf("slot %d", act.Slot), fmt.Sprintf("generation %d", generation), fmt.Sprintf("generation %d", conf.Generation))
	}
	var ev uint32
	if err := d.objs.L7Evcfg.Lookup(act.Slot, &ev); err != nil {
		return nil, fmt.Errorf("read l7_evcfg: %w", err)
	}
	if ev != d.evflags {
		r.add("l7_evcfg", fmt.Sprintf("slot %d", act.Slot), fmt.Sprintf("flags %#x", d.evflags), fmt.Sprintf("flags %#x", ev))
	}
	if err := r.lists(tables); err != nil {
		return nil, err
	}
	if err := r.hdrs(conf.Seed, tables); err != nil {
		return nil, err
	}
	var in, eg []Binding
	for _, b := range binds {
		if b.Egress {
			eg = append(eg, b)
		} else {
			in = append(in, b)
		}
	}
	w := &d.written[act.Slot]
	if err := r.binds("l7_binds", d.objs.L7Binds, in, &w.binds); err != nil {
		return nil, err
	}
	if err := r.binds("l7_ebinds", d.objs.L7Ebinds, eg, &w.ebinds); err != nil {
		return nil, err
	}
	if err := r.ports("l7_ports", d.objs.L7Ports, in, d.ports); err != nil {
		return nil, err
	}
	if err := r.ports("l7_eports", d.objs.L7Eports, eg, d.eports); err != nil {
		return nil, err
	}
	if err := r.links(); err != nil {
		return nil, err
	}
	return r.drifts, nil
}

// links compares the cgroup links with what AttachCgroup made: each
// sockops and egress gate link still attached to its cgroup and running
// this process's program, and every cgroup with sockops also gated (a
// client socket of an enforced port whose cgroup has no gate could send
// bytes l7_msg never decided). Compare does not repair links:
// AttachCgroup attaches what HasCgroup finds missing.
func (r *readback) links() error {
	gated := map[uint64]bool{}
	for _, ls := range []struct {
		name  string
		links []link.Link
		prog  *ebpf.Program
	}{{"l7_gate_link", r.d.gates, r.d.objs.L7Gate}, {"l7_sockops_link", r.d.links, r.d.objs.L7Sockops}} {
		pi, err := ls.prog.Info()
		if err != nil {
			return fmt.Errorf("read %s's program: %w", ls.name, err)
		}
		want, _ := pi.ID()
		for i, l := range ls.links {
			key := fmt.Sprint(i)
			info, err := l.Info()
			if err != nil {
				r.add(ls.name, key, "attached", fmt.Sprintf("unreadable: %v", err))
				continue
			}
			cg := info.Cgroup()
			if cg == nil || cg.CgroupId == 0 {
				r.add(ls.name, key, "attached", "detached")
				continue
			}
			key = fmt.Sprintf("cgroup %d", cg.CgroupId)
			if info.Program != want {
				r.add(ls.name, key, fmt.Sprintf("program %d", want), fmt.Sprintf("program %d", info.Program))
			}
			if ls.name == "l7_gate_link" {
				gated[cg.CgroupId] = true
			} else if !gated[cg.CgroupId] {
				r.add("l7_gate_link", key, "attached", "")
			}
		}
	}
	return nil
}

func listKeyString(k l7bpf.L7L7ListKey) string {
	return fmt.Sprintf("{slot %d list %d}", k.Slot, k.List)
}

// lists compares the slot's list records and the rows they reach.
func (r *readback) lists(tables *engine.HTTPTables) error {
	found := map[uint32]l7bpf.L7L7List{}
	var k l7bpf.L7L7ListKey
	var v l7bpf.L7L7List
	it := r.d.objs.L7Lists.Iterate()
	for it.Next(&k, &v) {
		if k.Slot == r.slot {
			found[k.List] = v
		}
	}
	if err := it.Err(); err != nil {
		return fmt.Errorf("read l7_lists: %w", err)
	}
	for _, id := range sortedIDs(tables) {
		lk := l7bpf.L7L7ListKey{Slot: r.slot, List: uint32(id)}
		kl, ok := found[uint32(id)]
		if !ok {
			r.add("l7_lists", listKeyString(lk), "the list's record", "")
			continue
		}
		delete(found, uint32(id))
		if err := r.list(lk, tables.Lists[id], &kl); err != nil {
			return err
		}
	}
	for _, id := range slices.Sorted(maps.Keys(found)) {
		lk := l7bpf.L7L7ListKey{Slot: r.slot, List: id}
		r.add("l7_lists", listKeyString(lk), "", "a list record")
		r.d.written[r.slot].lists = append(r.d.written[r.slot].lists, lk)
	}
	return nil
}

func maskString(m l7bpf.L7L7Mask) string { return fmt.Sprintf("%#x", m.W) }

// list compares one list record, and the rows it reaches, with the list
// compiled.
func (r *readback) list(lk l7bpf.L7L7ListKey, l *engine.HTTPList, kl *l7bpf.L7L7List) error {
	key := listKeyString(lk)
	for m := range kl.Methods {
		if want := mask(l.Methods[m]); kl.Methods[m] != want {
			r.add("l7_lists", fmt.Sprintf("%s method %d", key, m), maskString(want), maskString(kl.Methods[m]))
		}
	}
	if want := mask(l.PathAny); kl.PathAny != want {
		r.add("l7_lists", key+" path-any", maskString(want), maskString(kl.PathAny))
	}
	if want := mask(l.HostAny); kl.HostAny != want {
		r.add("l7_lists", key+" host-any", maskString(want), maskString(kl.HostAny))
	}
	if err := r.dfa(key+" path", kl.Path, &l.Path); err != nil {
		return err
	}
	if err := r.dfa(key+" host", kl.Host, &l.Host); err != nil {
		return err
	}
	if kl.Nallows != uint32(len(l.Allows)) {
		r.add("l7_lists", key+" allows", fmt.Sprint(len(l.Allows)), fmt.Sprint(kl.Nallows))
	} else if uint64(kl.Allows)+uint64(kl.Nallows) > maxAllowRows {
		r.add("l7_lists", key+" allows", "rows within the slot", fmt.Sprintf("rows %d+%d", kl.Allows, kl.Nallows))
	} else {
		for i, a := range l.Allows {
			want := l7bpf.L7L7Allow{Rule: uint32(a.Rule), Rules: mask(a.Rules)}
			if a.Audit {
				want.Audit = 1
			}
			if a.Any {
				want.Any = 1
			}
			row := r.slot*maxAllowRows + kl.Allows + uint32(i)
			var got l7bpf.L7L7Allow
			if err := r.d.objs.L7Allows.Lookup(row, &got); err != nil {
				return fmt.Errorf("read l7_allows[%d]: %w", row, err)
			}
			if got != want {
				r.add("l7_allows", fmt.Sprintf("[%d] (%s allow %d)", row, key, i), allowString(want), allowString(got))
			}
		}
	}
	if kl.Nhdrreqs != uint32(len(l.Headers)) {
		r.add("l7_lists", key+" header requirements", fmt.Sprint(len(l.Headers)), fmt.Sprint(kl.Nhdrreqs))
	} else if uint64(kl.Hdrreqs)+uint64(kl.Nhdrreqs) > maxHdrRows {
		r.add("l7_lists", key+" header requirements", "rows within the slot", fmt.Sprintf("rows %d+%d", kl.Hdrreqs, kl.Nhdrreqs))
	} else {
		for i, h := range l.Headers {
			row := r.slot*maxHdrRows + kl.Hdrreqs + uint32(i)
			var got l7bpf.L7L7Mask
			if err := r.d.objs.L7Hdrreqs.Lookup(row, &got); err != nil {
				return fmt.Errorf("read l7_hdrreqs[%d]: %w", row, err)
			}
			if want := mask(h.Rules); got != want {
				r.add("l7_hdrreqs", fmt.Sprintf("[%d] (%s header %q)", row, key, h.Name), maskString(want), maskString(got))
			}
		}
	}
	return nil
}

func allowString(a l7bpf.L7L7Allow) string {
	return fmt.Sprintf("{rule %d audit %d any %d rules %s}", a.Rule, a.Audit, a.Any, maskString(a.Rules))
}

// dfa compares the rows of one automaton where ref points.
func (r *readback) dfa(what string, ref l7bpf.L7L7DfaRef, d *engine.DFA) error {
	if ref.Nclasses != uint32(d.NumClasses) {
		r.add("l7_lists", what+" classes", fmt.Sprint(d.NumClasses), fmt.Sprint(ref.Nclasses))
		return nil
	}
	if ref.Classes >= maxDFAs || uint64(ref.Next)+uint64(len(d.Next)) > MaxNext || uint64(ref.Accept)+uint64(d.States()) > MaxStates {
		r.add("l7_lists", what+" rows", "rows within the slot", fmt.Sprintf("class row %d, transitions %d+%d, states %d+%d", ref.Classes, ref.Next, len(d.Next), ref.Accept, d.States()))
		return nil
	}
	row := r.slot*maxDFAs + ref.Classes
	var cl l7bpf.L7L7Classes
	if err := r.d.objs.L7ClassRows.Lookup(row, &cl); err != nil {
		return fmt.Errorf("read l7_class_rows[%d]: %w", row, err)
	}
	if cl.C != d.Classes {
		for b := range cl.C {
			if cl.C[b] != d.Classes[b] {
				r.add("l7_class_rows", fmt.Sprintf("[%d] (%s) byte %#02x", row, what, b), fmt.Sprintf("class %d", d.Classes[b]), fmt.Sprintf("class %d", cl.C[b]))
				break
			}
		}
	}
	for i, want := range d.Next {
		if r.full() {
			return nil
		}
		row := r.slot*MaxNext + ref.Next + uint32(i)
		var got uint32
		if err := r.d.objs.L7Next.Lookup(row, &got); err != nil {
			return fmt.Errorf("read l7_next[%d]: %w", row, err)
		}
		if got != uint32(want) {
			r.add("l7_next", fmt.Sprintf("[%d] (%s state %d class %d)", row, what, i/d.NumClasses, i%d.NumClasses), fmt.Sprintf("state %d", want), fmt.Sprintf("state %d", got))
		}
	}
	for i, a := range d.Accept {
		if r.full() {
			return nil
		}
		row := r.slot*MaxStates + ref.Accept + uint32(i)
		var got l7bpf.L7L7Mask
		if err := r.d.objs.L7Accept.Lookup(row, &got); err != nil {
			return fmt.Errorf("read l7_accept[%d]: %w", row, err)
		}
		if want := mask(a); got != want {
			r.add("l7_accept", fmt.Sprintf("[%d] (%s state %d)", row, what, i), maskString(want), maskString(got))
		}
	}
	return nil
}

func hdrKeyString(k l7bpf.L7L7HdrKey) string {
	if k.HasValue != 0 {
		return fmt.Sprintf("{slot %d list %d name %#x value %#x}", k.Slot, k.List, k.Name, k.Value)
	}
	return fmt.Sprintf("{slot %d list %d name %#x}", k.Slot, k.List, k.Name)
}

// hdrs compares the slot's header keys with those of the generation's
// header requirements under the kernel's seed.
func (r *readback) hdrs(seed uint64, tables *engine.HTTPTables) error {
	found := map[l7bpf.L7L7HdrKey]uint32{}
	var k l7bpf.L7L7HdrKey
	var v uint32
	it := r.d.objs.L7Hdrs.Iterate()
	for it.Next(&k, &v) {
		if k.Slot == r.slot {
			found[k] = v
		}
	}
	if err := it.Err(); err != nil {
		return fmt.Errorf("read l7_hdrs: %w", err)
	}
	for _, id := range sortedIDs(tables) {
		for i, h := range tables.Lists[id].Headers {
			k := l7bpf.L7L7HdrKey{Slot: r.slot, List: uint32(id), Name: Hash(seed, h.Name)}
			if h.HasValue {
				k.Value, k.HasValue = Hash(seed, h.Value), 1
			}
			what := fmt.Sprintf("%s (header %q)", hdrKeyString(k), h.Name)
			got, ok := found[k]
			switch {
			case !ok:
				r.add("l7_hdrs", what, fmt.Sprintf("requirement %d", i), "")
			case got != uint32(i):
				r.add("l7_hdrs", what, fmt.Sprintf("requirement %d", i), fmt.Sprintf("requirement %d", got))
			}
			delete(found, k)
		}
	}
	for _, k := range slices.SortedFunc(maps.Keys(found), func(x, y l7bpf.L7L7HdrKey) int {
		return cmp.Or(cmp.Compare(x.List, y.List), cmp.Compare(x.Name, y.Name), cmp.Compare(x.Value, y.Value), cmp.Compare(x.HasValue, y.HasValue))
	}) {
		r.add("l7_hdrs", hdrKeyString(k), "", fmt.Sprintf("requirement %d", found[k]))
		r.d.written[r.slot].hdrs = append(r.d.written[r.slot].hdrs, k)
	}
	return nil
}

func bindKeyString(k sockl7.BindKey) string { return k.String() }

func compareBindKeys(x, y sockl7.BindKey) int {
	return cmp.Or(cmp.Compare(x.Identity, y.Identity), cmp.Compare(x.Port, y.Port), cmp.Compare(x.Family, y.Family), slices.Compare(x.Addr[:], y.Addr[:]))
}

// binds compares the slot's bindings of one direction (name, m); the
// keys it finds beyond them are added to written, for Apply to delete.
func (r *readback) binds(name string, m *ebpf.Map, binds []Binding, written *[]sockl7.BindKey) error {
	found := map[sockl7.BindKey]l7bpf.L7L7Bind{}
	var k sockl7.BindKey
	var v l7bpf.L7L7Bind
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
		want := l7bpf.L7L7Bind{List: uint32(b.List)}
		got, ok := found[bk]
		switch {
		case !ok:
			r.add(name, bindKeyString(bk), fmt.Sprintf("list %d", want.List), "")
		case got != want:
			r.add(name, bindKeyString(bk), fmt.Sprintf("list %d flags %#x", want.List, want.Flags), fmt.Sprintf("list %d flags %#x", got.List, got.Flags))
		}
		delete(found, bk)
	}
	for _, k := range slices.SortedFunc(maps.Keys(found), compareBindKeys) {
		r.add(name, bindKeyString(k), "", fmt.Sprintf("list %d", found[k].List))
		*written = append(*written, k)
	}
	return nil
}

// ports compares the enforced addresses and ports of one direction
// (name, m; not by slot: those of the active generation's bindings). The
// ports it finds beyond them are added to known, for Apply to delete.
func (r *readback) ports(name string, m *ebpf.Map, binds []Binding, known map[sockl7.PortKey]bool) error {
	want := map[sockl7.PortKey]bool{}
	for _, b := range binds {
		want[sockl7.PortKeyOf(b.Addr, b.Port)] = true
	}
	extra, err := sockl7.ComparePorts(&r.drifts, name, m, want)
	if err != nil {
		return err
	}
	for _, pk := range extra {
		known[pk] = true
	}
	return nil
}

// Peers returns l7_peers as the kernel holds it: the identity of each
// prefix.
func (d *Datapath) Peers() (map[netip.Prefix]uint32, error) {
	return sockl7.ReadPeers(d.objs.L7Peers, "l7_peers")
}

// DeletePeer deletes the identity of prefix (absent: nothing to do).
func (d *Datapath) DeletePeer(prefix netip.Prefix) error {
	return sockl7.DeletePeer(d.objs.L7Peers, "l7_peers", prefix)
}

// ComparePeers compares l7_peers with want, the identities written. It
// returns the drifts and, among them, the prefixes the kernel holds that
// want lacks (to delete).
func (d *Datapath) ComparePeers(want map[netip.Prefix]uint32) ([]Drift, []netip.Prefix, error) {
	got, err := d.Peers()
	if err != nil {
		return nil, nil, err
	}
	ds, extra := sockl7.ComparePeers("l7_peers", want, got)
	return ds, extra, nil
}
