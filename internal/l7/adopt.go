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
	"errors"
	"fmt"

	"github.com/cilium/ebpf"

	l7bpf "github.com/palisade-dev/palisade/bpf/l7"
	"github.com/palisade-dev/palisade/internal/sockl7"
)

// sockopsLinkPin is the prefix of the sockops cgroup links' pins,
// gateLinkPin of the egress gate's (cgroup_skb egress).
const (
	sockopsLinkPin = "l7_sockops_link_"
	gateLinkPin    = "l7_gate_link_"
)

// adoptRequired are the pins without which there is no state to adopt
// whole: the SOCKHASH (the connections), the generation's switch and
// every table a request is decided by.
var adoptRequired = []string{"l7_socks", "l7_sock_state", "l7_slot", "l7_gens", "l7_ports", "l7_binds", "l7_peers",
	"l7_lists", "l7_class_rows", "l7_next", "l7_accept", "l7_allows", "l7_hdrreqs", "l7_hdrs"}

// Adopted is what Adopt took over from the state a previous process
// pinned.
type Adopted struct {
	// Generation and Slot are the active generation's, as the kernel
	// decides requests by it.
	Generation uint64
	Slot       uint32
	// Maps are the maps taken over (by name); Links the sockops cgroup
	// links and Gates the egress gate's, each now running this process's
	// program.
	Maps  []string
	Links int
	Gates int
}

// Adopt takes over the state pinned under dir by a previous process
// (Pin): this process's programs are loaded on the pinned maps, the
// stream parser and verdict attached to the pinned SOCKHASH (and the
// sk_msg verdict to the pinned client-side SOCKHASH), and the
// pinned sockops cgroup links switched to this process's program, each
// in one step. The tables, the bindings and the connections in the
// SOCKHASH stay as they are, so requests are decided by the pinned
// generation until the next Apply, which writes beside it and switches,
// and then decides the requests of every connection, those accepted
// before the restart included. Nothing is detached on the way.
//
// The allowed-events flag is not adopted: it is the new process's
// (SetAllowedEvents), written with its next generation. A pinned map is
// adopted only if this version describes it as it was created, its key
// and value layout (BTF) included (sockl7.Adoption.Load).
//
// Adopt must run before anything is attached or applied. It returns nil
// when dir holds no pinned state; on an error the datapath is left as
// loaded and the pins as they were.
func (d *Datapath) Adopt(dir string) (*Adopted, error) {
	if len(d.links) > 0 || len(d.gates) > 0 || d.written[0].lists != nil || d.written[1].lists != nil || len(d.ports) > 0 {
		return nil, errors.New("adopt: the datapath has attached or applied already")
	}
	spec, err := l7bpf.LoadL7()
	if err != nil {
		return nil, fmt.Errorf("adopt: %w", err)
	}
	a := sockl7.Adoption{What: "l7", Dir: dir, Socks: "l7_socks", Required: adoptRequired, LinkPrefix: sockopsLinkPin}
	var objs l7bpf.L7Objects
	names, found, err := a.Load(spec, &objs, &objs.L7Maps)
	if err != nil || !found {
		return nil, err
	}

	ad := &Adopted{Maps: names}
	fail := func(err error) (*Adopted, error) {
		objs.Close()
		return nil, fmt.Errorf("adopt: %w", err)
	}
	var act l7bpf.L7L7Active
	if err := objs.L7Slot.Lookup(uint32(0), &act); err != nil {
		return fail(fmt.Errorf("read l7_slot: %w", err))
	}
	if act.Slot > 1 {
		return fail(fmt.Errorf("l7_slot names slot %d", act.Slot))
	}
	var conf l7bpf.L7L7Config
	if err := objs.L7Gens.Lookup(act.Slot, &conf); err != nil {
		return fail(fmt.Errorf("read l7_gens: %w", err))
	}
	ad.Generation, ad.Slot = conf.Generation, act.Slot
	written, ports, eports, err := scanWritten(&objs)
	if err != nil {
		return fail(err)
	}
	// From here on the kernel runs this process's programs: first the
	// parser and verdict of sockets added to the SOCKHASH from now on
	// (sockets in it keep the programs they were added with, which
	// decide by the same maps), then the egress gate and the sockops
	// program, link by link. A cgroup whose gate was not pinned (state
	// of a version without it) gets one at its next AttachCgroup:
	// HasCgroup reports it not attached.
	taken, err := a.TakeOverLinks(sockAttach(&objs),
		sockl7.LinkKind{Prefix: gateLinkPin, Name: "egress gate", Program: objs.L7Gate},
		sockl7.LinkKind{Prefix: sockopsLinkPin, Name: "sockops program", Program: objs.L7Sockops})
	if err != nil {
		return fail(err)
	}
	gates, links := taken[0], taken[1]
	ad.Links, ad.Gates = len(links), len(gates)

	old := d.objs
	d.objs, d.links, d.gates, d.active, d.written, d.ports, d.eports = objs, links, gates, act.Slot, written, ports, eports
	old.Close()
	return ad, nil
}

// scanWritten finds what each slot's hash maps hold, for Apply to clear
// a slot before it writes it, and the enforced ports of both directions.
func scanWritten(objs *l7bpf.L7Objects) (w [2]slotKeys, ports, eports map[sockl7.PortKey]bool, err error) {
	var lk l7bpf.L7L7ListKey
	var lv l7bpf.L7L7List
	it := objs.L7Lists.Iterate()
	for it.Next(&lk, &lv) {
		if lk.Slot < 2 {
			w[lk.Slot].lists = append(w[lk.Slot].lists, lk)
		}
	}
	if err := it.Err(); err != nil {
		return w, nil, nil, fmt.Errorf("read l7_lists: %w", err)
	}
	for _, b := range []struct {
		name string
		m    *ebpf.Map
		keys func(slot uint32) *[]sockl7.BindKey
	}{
		{"l7_binds", objs.L7Binds, func(s uint32) *[]sockl7.BindKey { return &w[s].binds }},
		{"l7_ebinds", objs.L7Ebinds, func(s uint32) *[]sockl7.BindKey { return &w[s].ebinds }},
	} {
		var bk sockl7.BindKey
		var bv l7bpf.L7L7Bind
		it := b.m.Iterate()
		for it.Next(&bk, &bv) {
			if bk.Slot < 2 {
				*b.keys(bk.Slot) = append(*b.keys(bk.Slot), bk)
			}
		}
		if err := it.Err(); err != nil {
			return w, nil, nil, fmt.Errorf("read %s: %w", b.name, err)
		}
	}
	var hk l7bpf.L7L7HdrKey
	var hv uint32
	it = objs.L7Hdrs.Iterate()
	for it.Next(&hk, &hv) {
		if hk.Slot < 2 {
			w[hk.Slot].hdrs = append(w[hk.Slot].hdrs, hk)
		}
	}
	if err := it.Err(); err != nil {
		return w, nil, nil, fmt.Errorf("read l7_hdrs: %w", err)
	}
	ports, eports = map[sockl7.PortKey]bool{}, map[sockl7.PortKey]bool{}
	for name, p := range map[string]struct {
		m   *ebpf.Map
		set map[sockl7.PortKey]bool
	}{"l7_ports": {objs.L7Ports, ports}, "l7_eports": {objs.L7Eports, eports}} {
		var pk sockl7.PortKey
		var pv uint32
		it := p.m.Iterate()
		for it.Next(&pk, &pv) {
			p.set[pk] = true
		}
		if err := it.Err(); err != nil {
			return w, nil, nil, fmt.Errorf("read %s: %w", name, err)
		}
	}
	return w, ports, eports, nil
}

// Generation returns the generation requests are decided by, as the
// kernel holds it.
func (d *Datapath) Generation() (uint64, error) {
	var act l7bpf.L7L7Active
	if err := d.objs.L7Slot.Lookup(uint32(0), &act); err != nil {
		return 0, fmt.Errorf("read l7_slot: %w", err)
	}
	var conf l7bpf.L7L7Config
	if err := d.objs.L7Gens.Lookup(act.Slot, &conf); err != nil {
		return 0, fmt.Errorf("read l7_gens: %w", err)
	}
	return conf.Generation, nil
}

// HasCgroup reports whether the sockops program and the egress gate are
// both attached to the cgroup v2 directory path (by this process, or by
// a previous one whose links Adopt took over).
func (d *Datapath) HasCgroup(path string) bool {
	return sockl7.HasCgroup(d.links, path) && sockl7.HasCgroup(d.gates, path)
}

// MissingPins returns the pins under dir that Pin made (or Adopt took
// over) and that are gone: without them the next process cannot adopt
// the state, and the kernel frees what only the pin held once this
// process exits.
func (d *Datapath) MissingPins(dir string) []string { return d.pins(true).Missing(dir) }

// RepairPins pins again what MissingPins finds missing under dir.
func (d *Datapath) RepairPins(dir string) error { return d.pins(true).Repair(dir) }
