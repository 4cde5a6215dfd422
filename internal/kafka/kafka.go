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

// Package kafka loads bpf/kafka, the in-kernel Kafka request
// enforcement, and writes the engine's Kafka tables into it: one
// generation beside the active one, then an atomic switch of the active
// slot (see docs/kafka.md).
package kafka

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"

	kafkabpf "github.com/palisade-dev/palisade/bpf/kafka"
	"github.com/palisade-dev/palisade/internal/engine"
	"github.com/palisade-dev/palisade/internal/sockl7"
)

// Limits of one slot, as bpf/kafka/kafka.h sizes its maps (a test
// checks).
const (
	MaxLists  = 1024
	MaxValues = 16384
	MaxPorts  = 4096
	MaxBinds  = 16384
	// FrameMax is the largest request frame (size field included) the
	// kernel frames; a larger one is refused.
	FrameMax = 1 << 20
	// MaxTopics is the most topics of one Metadata request the kernel
	// reads.
	MaxTopics = 16
	// EgressFrameMax is the largest request frame a client may write on
	// an egress binding: kafka_msg holds a frame until it is whole; a
	// larger one is refused (oversize).
	EgressFrameMax = 256 << 10
)

// Reason is a counter of kafka_counters: what happened to a frame.
type Reason uint32

// The reasons, as enum kafka_reason.
const (
	ReasonAllowed    = Reason(kafkabpf.KafkaKafkaReasonKAFKA_R_ALLOWED)
	ReasonDenied     = Reason(kafkabpf.KafkaKafkaReasonKAFKA_R_DENIED)
	ReasonAudit      = Reason(kafkabpf.KafkaKafkaReasonKAFKA_R_AUDIT)
	ReasonMalformed  = Reason(kafkabpf.KafkaKafkaReasonKAFKA_R_MALFORMED)
	ReasonOversize   = Reason(kafkabpf.KafkaKafkaReasonKAFKA_R_OVERSIZE)
	ReasonVersion    = Reason(kafkabpf.KafkaKafkaReasonKAFKA_R_VERSION)
	ReasonTopics     = Reason(kafkabpf.KafkaKafkaReasonKAFKA_R_TOPICS)
	ReasonUnparsed   = Reason(kafkabpf.KafkaKafkaReasonKAFKA_R_UNPARSED)
	ReasonTagged     = Reason(kafkabpf.KafkaKafkaReasonKAFKA_R_TAGGED)
	ReasonNoTables   = Reason(kafkabpf.KafkaKafkaReasonKAFKA_R_NO_TABLES)
	ReasonPassed     = Reason(kafkabpf.KafkaKafkaReasonKAFKA_R_PASSED)
	ReasonSockets    = Reason(kafkabpf.KafkaKafkaReasonKAFKA_R_SOCKETS)
	ReasonClosed     = Reason(kafkabpf.KafkaKafkaReasonKAFKA_R_CLOSED)
	ReasonAnswered   = Reason(kafkabpf.KafkaKafkaReasonKAFKA_R_ANSWERED)
	ReasonAnswerErr  = Reason(kafkabpf.KafkaKafkaReasonKAFKA_R_ANSWER_FAIL)
	ReasonDropped    = Reason(kafkabpf.KafkaKafkaReasonKAFKA_R_DROPPED)
	ReasonEventsLost = Reason(kafkabpf.KafkaKafkaReasonKAFKA_R_EVLOST)
	// The client's side only (egress bindings): kafka_gate dropped a
	// segment holding bytes kafka_msg did not decide, or data in a SYN;
	// kafka_msg found TCP holding bytes it did not decide.
	ReasonUndecided     = Reason(kafkabpf.KafkaKafkaReasonKAFKA_R_UNDECIDED)
	ReasonFastOpen      = Reason(kafkabpf.KafkaKafkaReasonKAFKA_R_FASTOPEN)
	ReasonUnparsedWrite = Reason(kafkabpf.KafkaKafkaReasonKAFKA_R_UNPARSED_WRITE)
	numReasons          = Reason(kafkabpf.KafkaKafkaReasonKAFKA_R_MAX)
)

var reasonNames = map[Reason]string{
	ReasonAllowed: "allowed", ReasonDenied: "denied", ReasonAudit: "audit", ReasonMalformed: "malformed",
	ReasonOversize: "oversize", ReasonVersion: "version", ReasonTopics: "topics", ReasonUnparsed: "unparsed",
	ReasonTagged: "tagged", ReasonNoTables: "no-tables", ReasonPassed: "passed-unbound", ReasonSockets: "sockets",
	ReasonClosed: "connections-closed", ReasonAnswered: "answered", ReasonAnswerErr: "answer-undelivered",
	ReasonDropped: "dropped-after-refusal", ReasonEventsLost: "events-lost",
	ReasonUndecided: "undecided-write", ReasonFastOpen: "fastopen", ReasonUnparsedWrite: "unparsed-write",
}

func (r Reason) String() string {
	if n, ok := reasonNames[r]; ok {
		return n
	}
	return fmt.Sprintf("reason-%d", uint32(r))
}

// Refused reports whether a request counted under r was refused.
func (r Reason) Refused() bool {
	switch r {
	case ReasonDenied, ReasonMalformed, ReasonOversize, ReasonVersion, ReasonTopics, ReasonUnparsed, ReasonTagged, ReasonNoTables,
		ReasonUndecided, ReasonFastOpen, ReasonUnparsedWrite:
		return true
	}
	return false
}

// MetadataAnswerLen is the length of the Metadata response of version
// v that the kernel writes in place of a refused request naming topics
// of these lengths (at most MaxTopics, none empty); it answers only if
// this fits in the request's frame.
func MetadataAnswerLen(v int, topics ...int) int {
	b := func(c bool, x, y int) int {
		if c {
			return x
		}
		return y
	}
	f := v >= 9
	l := 8 + b(f, 1, 0) + b(v >= 3, 4, 0) + b(f, 1, 4) + b(v >= 2, b(f, 1, 2), 0) + b(v >= 1, 4, 0) + b(f, 1, 4)
	for _, n := range topics {
		l += 2 + b(f, b(n+1 < 128, 1, 2), 2) + n + b(v >= 10, 16, 0) + b(v >= 1, 1, 0) + b(f, 1, 4) + b(v >= 8, 4, 0) + b(f, 1, 0)
	}
	l += b(v >= 8 && v <= 10, 4, 0) + b(v >= 13, 2, 0) + b(f, 1, 0)
	return l
}

// ProduceAnswerLen is the length of the Produce response of version v
// that the kernel writes in place of a refused Produce request naming one
// topic of n bytes with partitions partitions (acks not 0); it answers
// only if this fits in the request's frame.
func ProduceAnswerLen(v, n, partitions int) int {
	b := func(c bool, x, y int) int {
		if c {
			return x
		}
		return y
	}
	f := v >= 9
	part := 4 + 2 + 8 + b(v >= 2, 8, 0) + b(v >= 5, 8, 0) + b(v >= 8, b(f, 2, 6), 0) + b(f, 1, 0)
	return 8 + b(f, 1, 0) + b(f, 1, 4) + b(f, b(n+1 < 128, 1, 2), 2) + n + b(f, 1, 4) + partitions*part + b(f, 1, 0) + b(v >= 1, 4, 0) + b(f, 1, 0)
}

// Binding says which list decides the requests to a local address and
// port (Addr unspecified: every address of its family) from peers of
// Identity (0: any peer no more specific binding names).
//
// An Egress binding decides the requests that the client sockets of a
// local address (Addr) write to a remote Port on peers of Identity: the
// source workload's egress rules (see docs/kafka.md, "Egress").
type Binding struct {
	Addr     netip.Addr
	Port     uint16
	Identity uint32
	List     engine.L7ID
	Egress   bool
}

// Datapath is the loaded bpf/kafka object: its maps, and the programs
// attached to its SOCKHASH.
type Datapath struct {
	objs kafkabpf.KafkaObjects
	// links are the sockops cgroup links, gates the egress gate's
	// (cgroup_skb egress), one of each per cgroup.
	links  []link.Link
	gates  []link.Link
	active uint32
	// written holds what each slot's hash maps hold, to clear a slot
	// before it is written again.
	written [2]slotKeys
	ports   map[sockl7.PortKey]bool
	eports  map[sockl7.PortKey]bool
	// evflags is the kafka_config flags the next Apply writes.
	evflags uint32
}

// SetAllowedEvents says whether generations applied from now on send an
// event for every allowed request too (Events), not only for refused
// ones and those an audit-mode rule would refuse.
func (d *Datapath) SetAllowedEvents(on bool) {
	d.evflags = 0
	if on {
		d.evflags = kafkaEvAllowed
	}
}

type slotKeys struct {
	lists  []kafkabpf.KafkaKafkaListKey
	binds  []sockl7.BindKey
	ebinds []sockl7.BindKey
	vals   []kafkabpf.KafkaKafkaValKey
}

// Load loads bpf/kafka and attaches the stream parser and verdict to its
// SOCKHASH. Sockets reach it once AttachCgroup has attached sockops.
func Load() (*Datapath, error) {
	d := &Datapath{ports: map[sockl7.PortKey]bool{}, eports: map[sockl7.PortKey]bool{}}
	if err := kafkabpf.LoadKafkaObjects(&d.objs, nil); err != nil {
		var ve *ebpf.VerifierError
		if errors.As(err, &ve) {
			return nil, fmt.Errorf("load kafka objects: %+v", ve)
		}
		return nil, fmt.Errorf("load kafka objects: %w", err)
	}
	if err := sockl7.AttachAll(d.sockAttach()); err != nil {
		d.Close()
		return nil, err
	}
	return d, nil
}

// sockAttach are the programs attached to the SOCKHASHes: the stream
// parser and verdict that frame and decide every request a broker
// receives, and the sk_msg verdict of what a client writes.
func (d *Datapath) sockAttach() []sockl7.Attach {
	return []sockl7.Attach{{Program: d.objs.KafkaParser, Type: ebpf.AttachSkSKBStreamParser, Map: d.objs.KafkaSocks},
		{Program: d.objs.KafkaVerdict, Type: ebpf.AttachSkSKBStreamVerdict, Map: d.objs.KafkaSocks},
		{Program: d.objs.KafkaMsg, Type: ebpf.AttachSkMsgVerdict, Map: d.objs.KafkaEsocks}}
}

// AttachCgroup attaches the programs that see a cgroup's sockets to a
// cgroup v2 directory (as links, so beside other programs such as
// bpf/l7's): the egress gate (cgroup_skb egress, first, so that no
// client socket is enforced without it), then sockops. The server
// sockets (ingress bindings) and client sockets (egress bindings) of its
// processes are then enforced. What is attached there already (by this
// process, or adopted) is not attached again.
func (d *Datapath) AttachCgroup(path string) error {
	if !sockl7.HasCgroup(d.gates, path) {
		l, err := link.AttachCgroup(link.CgroupOptions{Path: path, Attach: ebpf.AttachCGroupInetEgress, Program: d.objs.KafkaGate})
		if err != nil {
			return fmt.Errorf("attach the kafka egress gate to %s: %w", path, err)
		}
		d.gates = append(d.gates, l)
	}
	if !sockl7.HasCgroup(d.links, path) {
		l, err := link.AttachCgroup(link.CgroupOptions{Path: path, Attach: ebpf.AttachCGroupSockOps, Program: d.objs.KafkaSockops})
		if err != nil {
			return fmt.Errorf("attach kafka sockops to %s: %w", path, err)
		}
		d.links = append(d.links, l)
	}
	return nil
}

// Pin pins every map and the sockops cgroup links under dir (which must
// exist on a bpffs): after Close, the kernel keeps enforcing with the
// pinned state (the SOCKHASH keeps its parser and verdict while it is
// pinned), and a new process adopts it (Adopt). What is pinned already
// (by an earlier Pin, or adopted) stays as it is.
func (d *Datapath) Pin(dir string) error { return d.pins().Pin(dir) }

// sockopsLinkPin names the pins of the sockops cgroup links (numbered),
// gateLinkPin the egress gate's.
const (
	sockopsLinkPin = "kafka_sockops_link_"
	gateLinkPin    = "kafka_gate_link_"
)

// pins are the maps Pin pins, by pin name, and the sockops links.
func (d *Datapath) pins() sockl7.Pins {
	return sockl7.Pins{What: "kafka", LinkPrefix: sockopsLinkPin, Links: d.links, Maps: map[string]*ebpf.Map{
		"kafka_socks": d.objs.KafkaSocks, "kafka_sock_state": d.objs.KafkaSockState, "kafka_slot": d.objs.KafkaSlot,
		"kafka_gens": d.objs.KafkaGens, "kafka_ports": d.objs.KafkaPorts, "kafka_binds": d.objs.KafkaBinds,
		"kafka_peers": d.objs.KafkaPeers, "kafka_lists": d.objs.KafkaLists, "kafka_vals": d.objs.KafkaVals,
		"kafka_counters": d.objs.KafkaCounters, "kafka_events": d.objs.KafkaEvents,
		"kafka_esocks": d.objs.KafkaEsocks, "kafka_esk": d.objs.KafkaEsk, "kafka_eports": d.objs.KafkaEports,
		"kafka_ebinds": d.objs.KafkaEbinds,
	}, More: []sockl7.LinkSet{{Prefix: gateLinkPin, Name: "egress gate", Links: d.gates}}}
}

// MissingPins returns the pins under dir that Pin made (or Adopt took
// over) and that are gone (someone removed them): without them, a new
// agent cannot adopt the state and the SOCKHASH is freed once the
// process's handles are.
func (d *Datapath) MissingPins(dir string) []string { return d.pins().Missing(dir) }

// RepairPins pins again what MissingPins finds missing under dir.
func (d *Datapath) RepairPins(dir string) error { return d.pins().Repair(dir) }

// Close releases the process's handles. What is pinned stays in the
// kernel and keeps enforcing; what is not is detached and freed.
func (d *Datapath) Close() error {
	var errs []error
	for _, l := range d.links {
		errs = append(errs, l.Close())
	}
	for _, l := range d.gates {
		errs = append(errs, l.Close())
	}
	d.links, d.gates = nil, nil
	errs = append(errs, d.objs.Close())
	return errors.Join(errs...)
}

// Counters returns the counters summed over CPUs and both sides, by
// reason.
func (d *Datapath) Counters() (map[Reason]uint64, error) {
	out := map[Reason]uint64{}
	for _, egress := range []bool{false, true} {
		c, err := d.CountersDir(egress)
		if err != nil {
			return nil, err
		}
		for r, n := range c {
			out[r] += n
		}
	}
	return out, nil
}

// CountersDir returns one side's counters summed over CPUs, by reason:
// the broker's (ingress bindings) or the client's (egress bindings).
func (d *Datapath) CountersDir(egress bool) (map[Reason]uint64, error) {
	base := uint32(0)
	if egress {
		base = uint32(numReasons)
	}
	c, err := sockl7.SumCounters(d.objs.KafkaCounters, "kafka_counters", base, uint32(numReasons))
	if err != nil {
		return nil, err
	}
	out := make(map[Reason]uint64, len(c))
	for r, n := range c {
		out[Reason(r)] = n
	}
	return out, nil
}

// SetPeer says which identity the addresses of prefix have (for
// bindings by identity).
func (d *Datapath) SetPeer(prefix netip.Prefix, identity uint32) error {
	if err := d.objs.KafkaPeers.Update(peerKey(prefix), identity, ebpf.UpdateAny); err != nil {
		return fmt.Errorf("update kafka_peers %v: %w", prefix, err)
	}
	return nil
}

func peerKey(p netip.Prefix) sockl7.PeerKey {
	return sockl7.PeerKeyOf(p)
}

// Generation returns the generation of the active slot (0 before the
// first Apply).
func (d *Datapath) Generation() (uint64, error) {
	var act kafkabpf.KafkaKafkaActive
	if err := d.objs.KafkaSlot.Lookup(uint32(0), &act); err != nil {
		return 0, fmt.Errorf("read kafka_slot: %w", err)
	}
	var c kafkabpf.KafkaKafkaConfig
	if err := d.objs.KafkaGens.Lookup(act.Slot&1, &c); err != nil {
		return 0, fmt.Errorf("read kafka_gens: %w", err)
	}
	return c.Generation, nil
}

// Apply writes a generation: the tables of every list and the bindings,
// into the slot beside the active one; then switches the active slot
// with one write, so that each request is decided by one generation
// whole; then removes the old slot's entries.
func (d *Datapath) Apply(generation uint64, tables *engine.KafkaTables, binds []Binding) error {
	if len(tables.Lists) > MaxLists {
		return fmt.Errorf("%d kafka lists, the kernel holds %d per generation", len(tables.Lists), MaxLists)
	}
	if len(binds) > MaxBinds {
		return fmt.Errorf("%d kafka bindings, the kernel holds %d per generation", len(binds), MaxBinds)
	}
	next := d.active ^ 1
	if err := d.clearSlot(next); err != nil {
		return err
	}
	var valKeys []kafkabpf.KafkaKafkaValKey
	var valMasks []uint64
	ids := make([]engine.L7ID, 0, len(tables.Lists))
	for id := range tables.Lists {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	for _, id := range ids {
		l := tables.Lists[id]
		kl, err := listValue(l)
		if err != nil {
			return fmt.Errorf("kafka list %d: %w", id, err)
		}
		lk := kafkabpf.KafkaKafkaListKey{Slot: next, List: uint32(id)}
		if err := d.objs.KafkaLists.Update(lk, kl, ebpf.UpdateAny); err != nil {
			return fmt.Errorf("update kafka_lists: %w", err)
		}
		d.written[next].lists = append(d.written[next].lists, lk)
		for k, v := range ValueKeys(next, uint32(id), l) {
			valKeys = append(valKeys, k)
			valMasks = append(valMasks, v)
		}
	}
	if len(valKeys) > MaxValues {
		return fmt.Errorf("%d version, client ID and topic entries, the kernel holds %d per generation", len(valKeys), MaxValues)
	}
	if len(valKeys) > 0 {
		if _, err := d.objs.KafkaVals.BatchUpdate(valKeys, valMasks, nil); err != nil {
			return fmt.Errorf("write kafka_vals: %w", err)
		}
	}
	d.written[next].vals = valKeys
	// Ports first (no slot: a superset while both generations live).
	// Egress bindings go to their own maps: kafka_eports names the
	// client sockets (local address, remote port), kafka_ebinds their
	// lists.
	newPorts := map[sockl7.PortKey]bool{}
	newEPorts := map[sockl7.PortKey]bool{}
	for _, b := range binds {
		if _, ok := tables.Lists[b.List]; !ok {
			return fmt.Errorf("binding %v:%d names kafka list %d, which has no tables", b.Addr, b.Port, b.List)
		}
		pk := sockl7.PortKeyOf(b.Addr, b.Port)
		ports, bindMap, name, written := d.objs.KafkaPorts, d.objs.KafkaBinds, "kafka_binds", &d.written[next].binds
		if b.Egress {
			ports, bindMap, name, written = d.objs.KafkaEports, d.objs.KafkaEbinds, "kafka_ebinds", &d.written[next].ebinds
			newEPorts[pk] = true
		} else {
			newPorts[pk] = true
		}
		if err := ports.Update(pk, uint32(1), ebpf.UpdateAny); err != nil {
			return fmt.Errorf("update the ports of %s: %w", name, err)
		}
		bk := sockl7.BindKeyOf(next, b.Addr, b.Port, b.Identity)
		if err := bindMap.Update(bk, kafkabpf.KafkaKafkaBind{List: uint32(b.List)}, ebpf.UpdateAny); err != nil {
			return fmt.Errorf("update %s: %w", name, err)
		}
		*written = append(*written, bk)
	}
	if err := d.objs.KafkaGens.Update(next, kafkabpf.KafkaKafkaConfig{Generation: generation, Flags: d.evflags}, ebpf.UpdateAny); err != nil {
		return fmt.Errorf("update kafka_gens: %w", err)
	}
	if err := d.objs.KafkaSlot.Update(uint32(0), kafkabpf.KafkaKafkaActive{Slot: next}, ebpf.UpdateAny); err != nil {
		return fmt.Errorf("switch kafka slot: %w", err)
	}
	old := d.active
	d.active = next
	for pk := range d.ports {
		if !newPorts[pk] {
			if err := d.objs.KafkaPorts.Delete(pk); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
				return fmt.Errorf("delete kafka_ports: %w", err)
			}
		}
	}
	d.ports = newPorts
	for pk := range d.eports {
		if !newEPorts[pk] {
			if err := d.objs.KafkaEports.Delete(pk); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
				return fmt.Errorf("delete kafka_eports: %w", err)
			}
		}
	}
	d.eports = newEPorts
	return d.clearSlot(old)
}

// listValue is a list's kafka_lists value.
func listValue(l *engine.KafkaList) (*kafkabpf.KafkaKafkaList, error) {
	if len(l.Allows) > engine.KafkaMaxAllows {
		return nil, fmt.Errorf("%d allows, the kernel decides at most %d", len(l.Allows), engine.KafkaMaxAllows)
	}
	kl := &kafkabpf.KafkaKafkaList{Keys: l.Keys, VerAny: l.VerAny, ClientAny: l.ClientAny, TopicAny: l.TopicAny, Nallows: uint32(len(l.Allows))}
	for i, a := range l.Allows {
		ka := kafkabpf.KafkaKafkaAllow{Rule: uint32(a.Rule), Rules: a.Rules}
		if a.Audit {
			ka.Audit = 1
		}
		if a.Any {
			ka.Any = 1
		}
		kl.Allows[i] = ka
	}
	return kl, nil
}

// ValueKeys are the kafka_vals entries of one list in a slot: its
// versions, client IDs and topics with the rules that name each.
func ValueKeys(slot, list uint32, l *engine.KafkaList) map[kafkabpf.KafkaKafkaValKey]uint64 {
	out := map[kafkabpf.KafkaKafkaValKey]uint64{}
	for v, m := range l.Versions {
		k := kafkabpf.KafkaKafkaValKey{Slot: slot, List: list, Kind: uint16(kafkabpf.KafkaKafkaValKindKAFKA_VAL_VERSION), Len: 2}
		k.Val[0], k.Val[1] = byte(v), byte(v>>8)
		out[k] = m
	}
	for kind, vals := range map[kafkabpf.KafkaKafkaValKind]map[string]uint64{
		kafkabpf.KafkaKafkaValKindKAFKA_VAL_CLIENT: l.Clients, kafkabpf.KafkaKafkaValKindKAFKA_VAL_TOPIC: l.Topics,
	} {
		for s, m := range vals {
			if len(s) == 0 || len(s) > engine.KafkaValueMax {
				continue
			}
			k := kafkabpf.KafkaKafkaValKey{Slot: slot, List: list, Kind: uint16(kind), Len: uint16(len(s))}
			copy(k.Val[:], s)
			out[k] = m
		}
	}
	return out
}

func (d *Datapath) clearSlot(slot uint32) error {
	w := &d.written[slot]
	for _, k := range w.lists {
		if err := d.objs.KafkaLists.Delete(k); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
			return fmt.Errorf("delete kafka_lists: %w", err)
		}
	}
	for _, k := range w.binds {
		if err := d.objs.KafkaBinds.Delete(k); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
			return fmt.Errorf("delete kafka_binds: %w", err)
		}
	}
	for _, k := range w.ebinds {
		if err := d.objs.KafkaEbinds.Delete(k); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
			return fmt.Errorf("delete kafka_ebinds: %w", err)
		}
	}
	if len(w.vals) > 0 {
		if _, err := d.objs.KafkaVals.BatchDelete(w.vals, nil); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
			return fmt.Errorf("delete kafka_vals: %w", err)
		}
	}
	*w = slotKeys{}
	return nil
}
