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
	"errors"
	"fmt"

	kafkabpf "github.com/palisade-dev/palisade/bpf/kafka"
	"github.com/palisade-dev/palisade/internal/sockl7"
)

// adoptRequired are the pins without which there is no state to adopt
// whole: the SOCKHASH and the sockets' states (the connections), the
// generation's switch and every table a request is decided by.
var adoptRequired = []string{"kafka_socks", "kafka_sock_state", "kafka_slot", "kafka_gens", "kafka_ports", "kafka_binds",
	"kafka_peers", "kafka_lists", "kafka_vals"}

// Adopted is what Adopt took over from the state a previous process
// pinned.
type Adopted struct {
	// Generation and Slot are the active generation's, as the kernel
	// decides requests by it.
	Generation uint64
	Slot       uint32
	// Maps are the maps taken over (by name); Links the sockops cgroup
	// links, each now running this process's program.
	Maps  []string
	Links int
}

// Adopt takes over the state pinned under dir by a previous process
// (Pin): this process's programs are loaded on the pinned maps, the
// stream parser and verdict attached to the pinned SOCKHASH, and the
// pinned sockops cgroup links switched to this process's program, each
// in one step. The tables, the bindings, the sockets' states and the
// connections in the SOCKHASH stay as they are, so requests are decided
// by the pinned generation until the next Apply, which writes beside it
// and switches, and then decides the requests of every connection, those
// accepted before the restart included. Nothing is detached on the way.
//
// The state is adopted only if this process's maps are the pinned ones'
// (type, sizes, entries, flags and the layout of keys and values, see
// sockl7.SameLayout): a version whose maps differ cannot decide by the
// pinned tables, and Adopt returns an error saying which map differs.
// The allowed-events flag is not adopted: it is the new process's
// (SetAllowedEvents), written with its next generation.
//
// Adopt must run before anything is attached or applied. It returns nil
// when dir holds no pinned state; on an error the datapath is left as
// loaded and the pins as they were.
func (d *Datapath) Adopt(dir string) (*Adopted, error) {
	if len(d.links) > 0 || len(d.gates) > 0 || d.written[0].lists != nil || d.written[1].lists != nil || len(d.ports) > 0 {
		return nil, errors.New("adopt: the datapath has attached or applied already")
	}
	spec, err := kafkabpf.LoadKafka()
	if err != nil {
		return nil, fmt.Errorf("adopt: %w", err)
	}
	a := sockl7.Adoption{What: "kafka", Dir: dir, Socks: "kafka_socks", Required: adoptRequired, LinkPrefix: sockopsLinkPin}
	var objs kafkabpf.KafkaObjects
	names, found, err := a.Load(spec, &objs, &objs.KafkaMaps)
	if err != nil || !found {
		return nil, err
	}
	fail := func(err error) (*Adopted, error) {
		objs.Close()
		return nil, fmt.Errorf("adopt: %w", err)
	}
	var act kafkabpf.KafkaKafkaActive
	if err := objs.KafkaSlot.Lookup(uint32(0), &act); err != nil {
		return fail(fmt.Errorf("read kafka_slot: %w", err))
	}
	slot := act.Slot & 1 // what the kernel uses; Compare reports the rest
	var conf kafkabpf.KafkaKafkaConfig
	if err := objs.KafkaGens.Lookup(slot, &conf); err != nil {
		return fail(fmt.Errorf("read kafka_gens: %w", err))
	}
	written, ports, eports, err := scanWritten(&objs)
	if err != nil {
		return fail(err)
	}
	nd := &Datapath{objs: objs}
	// The egress gate and the sockops program, link by link; a cgroup
	// whose gate was not pinned (state of a version without it) gets one
	// at its next AttachCgroup: HasCgroup reports it not attached.
	taken, err := a.TakeOverLinks(nd.sockAttach(),
		sockl7.LinkKind{Prefix: gateLinkPin, Name: "egress gate", Program: objs.KafkaGate},
		sockl7.LinkKind{Prefix: sockopsLinkPin, Name: "sockops program", Program: objs.KafkaSockops})
	if err != nil {
		return fail(err)
	}
	gates, links := taken[0], taken[1]
	old := d.objs
	d.objs, d.links, d.gates, d.active, d.written, d.ports, d.eports = objs, links, gates, slot, written, ports, eports
	old.Close()
	return &Adopted{Generation: conf.Generation, Slot: slot, Maps: names, Links: len(links)}, nil
}

// scanWritten finds what each slot's hash maps hold, for Apply to clear
// a slot before it writes it, and the enforced ports.
func scanWritten(objs *kafkabpf.KafkaObjects) (w [2]slotKeys, ports, eports map[sockl7.PortKey]bool, err error) {
	var lk kafkabpf.KafkaKafkaListKey
	var lv kafkabpf.KafkaKafkaList
	it := objs.KafkaLists.Iterate()
	for it.Next(&lk, &lv) {
		if lk.Slot < 2 {
			w[lk.Slot].lists = append(w[lk.Slot].lists, lk)
		}
	}
	if err := it.Err(); err != nil {
		return w, nil, nil, fmt.Errorf("read kafka_lists: %w", err)
	}
	var bk sockl7.BindKey
	var bv kafkabpf.KafkaKafkaBind
	it = objs.KafkaBinds.Iterate()
	for it.Next(&bk, &bv) {
		if bk.Slot < 2 {
			w[bk.Slot].binds = append(w[bk.Slot].binds, bk)
		}
	}
	if err := it.Err(); err != nil {
		return w, nil, nil, fmt.Errorf("read kafka_binds: %w", err)
	}
	it = objs.KafkaEbinds.Iterate()
	for it.Next(&bk, &bv) {
		if bk.Slot < 2 {
			w[bk.Slot].ebinds = append(w[bk.Slot].ebinds, bk)
		}
	}
	if err := it.Err(); err != nil {
		return w, nil, nil, fmt.Errorf("read kafka_ebinds: %w", err)
	}
	var vk kafkabpf.KafkaKafkaValKey
	var vv uint64
	it = objs.KafkaVals.Iterate()
	for it.Next(&vk, &vv) {
		if vk.Slot < 2 {
			w[vk.Slot].vals = append(w[vk.Slot].vals, vk)
		}
	}
	if err := it.Err(); err != nil {
		return w, nil, nil, fmt.Errorf("read kafka_vals: %w", err)
	}
	ports, eports = map[sockl7.PortKey]bool{}, map[sockl7.PortKey]bool{}
	var pk sockl7.PortKey
	var pv uint32
	it = objs.KafkaPorts.Iterate()
	for it.Next(&pk, &pv) {
		ports[pk] = true
	}
	if err := it.Err(); err != nil {
		return w, nil, nil, fmt.Errorf("read kafka_ports: %w", err)
	}
	it = objs.KafkaEports.Iterate()
	for it.Next(&pk, &pv) {
		eports[pk] = true
	}
	if err := it.Err(); err != nil {
		return w, nil, nil, fmt.Errorf("read kafka_eports: %w", err)
	}
	return w, ports, eports, nil
}

// HasCgroup reports whether the sockops program and the egress gate are
// attached to the cgroup v2 directory path (by this process, or by a
// previous one whose links Adopt took over).
func (d *Datapath) HasCgroup(path string) bool {
	return sockl7.HasCgroup(d.links, path) && sockl7.HasCgroup(d.gates, path)
}
