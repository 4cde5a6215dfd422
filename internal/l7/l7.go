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

// Package l7 loads bpf/l7, the in-kernel HTTP/1.x request enforcement,
// and writes the engine's HTTP tables into it: one generation beside the
// active one, then an atomic switch of the active slot (see docs/l7.md).
package l7

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"slices"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"

	l7bpf "github.com/palisade-dev/palisade/bpf/l7"
	"github.com/palisade-dev/palisade/internal/engine"
	"github.com/palisade-dev/palisade/internal/sockl7"
)

// Limits of one slot, as bpf/l7/l7.h sizes its maps (a test checks).
const (
	MaxLists     = 1024
	maxDFAs      = 2 * MaxLists
	MaxStates    = 32768
	MaxNext      = 262144
	maxAllowRows = 16384
	maxHdrRows   = 16384
	// HeadMax is the largest request head (and chunk-size line with its
	// trailers) the kernel frames; a larger one is refused.
	HeadMax = 16384
)

// Reason is a counter of l7_counters: what happened to a message.
type Reason uint32

// The reasons, as enum l7_reason.
const (
	ReasonAllowed      = Reason(l7bpf.L7L7ReasonL7R_ALLOWED)
	ReasonDenied       = Reason(l7bpf.L7L7ReasonL7R_DENIED)
	ReasonAudit        = Reason(l7bpf.L7L7ReasonL7R_AUDIT)
	ReasonMalformed    = Reason(l7bpf.L7L7ReasonL7R_MALFORMED)
	ReasonOversize     = Reason(l7bpf.L7L7ReasonL7R_OVERSIZE)
	ReasonTLS          = Reason(l7bpf.L7L7ReasonL7R_TLS)
	ReasonHTTP2        = Reason(l7bpf.L7L7ReasonL7R_HTTP2)
	ReasonVersion      = Reason(l7bpf.L7L7ReasonL7R_VERSION)
	ReasonFraming      = Reason(l7bpf.L7L7ReasonL7R_FRAMING)
	ReasonNoTables     = Reason(l7bpf.L7L7ReasonL7R_NO_TABLES)
	ReasonDropped      = Reason(l7bpf.L7L7ReasonL7R_DROPPED)
	ReasonRedirectFail = Reason(l7bpf.L7L7ReasonL7R_REDIRECT_FAIL)
	ReasonPassed       = Reason(l7bpf.L7L7ReasonL7R_PASSED)
	ReasonSockets      = Reason(l7bpf.L7L7ReasonL7R_SOCKETS)
	ReasonInOrder      = Reason(l7bpf.L7L7ReasonL7R_INORDER)
	ReasonUpgrade      = Reason(l7bpf.L7L7ReasonL7R_UPGRADE)
	ReasonTarget       = Reason(l7bpf.L7L7ReasonL7R_TARGET)
	ReasonEventsLost   = Reason(l7bpf.L7L7ReasonL7R_EVLOST)
	ReasonFastOpen     = Reason(l7bpf.L7L7ReasonL7R_FASTOPEN)
	ReasonUnparsed     = Reason(l7bpf.L7L7ReasonL7R_UNPARSED)
	ReasonUndecided    = Reason(l7bpf.L7L7ReasonL7R_UNDECIDED)
	numReasons         = Reason(l7bpf.L7L7ReasonL7R_MAX)
)

var reasonNames = map[Reason]string{
	ReasonAllowed: "allowed", ReasonDenied: "denied", ReasonAudit: "audit", ReasonMalformed: "malformed",
	ReasonOversize: "oversize", ReasonTLS: "tls", ReasonHTTP2: "http2", ReasonVersion: "version",
	ReasonFraming: "framing", ReasonNoTables: "no-tables", ReasonDropped: "dropped-after-refusal",
	ReasonRedirectFail: "refusal-undelivered", ReasonPassed: "passed-unbound", ReasonSockets: "sockets", ReasonInOrder: "refused-in-order", ReasonUpgrade: "upgrade", ReasonTarget: "target",
	ReasonEventsLost: "events-lost", ReasonFastOpen: "fastopen", ReasonUnparsed: "unparsed-write",
	ReasonUndecided: "undecided-write",
}

func (r Reason) String() string {
	if n, ok := reasonNames[r]; ok {
		return n
	}
	return fmt.Sprintf("reason-%d", uint32(r))
}

// Binding says which list decides the requests to a local address and
// port (Addr unspecified: every address of its family) from peers of
// Identity (0: any peer no more specific binding names).
//
// An Egress binding decides the requests that the client sockets of a
// local address (Addr) write to a remote Port on peers of Identity: the
// source workload's egress rules (see docs/l7.md, "Egress").
type Binding struct {
	Addr     netip.Addr
	Port     uint16
	Identity uint32
	List     engine.L7ID
	Egress   bool
}

// Datapath is the loaded bpf/l7 object: its maps, and the programs
// attached to its SOCKHASH.
type Datapath struct {
	objs l7bpf.L7Objects
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
	// evflags is written with the next generation (SetAllowedEvents).
	evflags uint32
}

type slotKeys struct {
	lists  []l7bpf.L7L7ListKey
	binds  []sockl7.BindKey
	ebinds []sockl7.BindKey
	hdrs   []l7bpf.L7L7HdrKey
}

// Load loads bpf/l7 and attaches the stream parser and verdict to its
// SOCKHASH. Sockets reach it once AttachCgroup has attached sockops.
func Load() (*Datapath, error) {
	d := &Datapath{ports: map[sockl7.PortKey]bool{}, eports: map[sockl7.PortKey]bool{}}
	if err := l7bpf.LoadL7Objects(&d.objs, nil); err != nil {
		var ve *ebpf.VerifierError
		if errors.As(err, &ve) {
			return nil, fmt.Errorf("load l7 objects: %+v", ve)
		}
		return nil, fmt.Errorf("load l7 objects: %w", err)
	}
	if err := sockl7.AttachAll(sockAttach(&d.objs)); err != nil {
		d.Close()
		return nil, err
	}
	return d, nil
}

// sockAttach are the programs attached to the SOCKHASHes: the stream
// parser and verdict that frame and decide every request a server
// receives, and the sk_msg verdict of what a client writes.
func sockAttach(objs *l7bpf.L7Objects) []sockl7.Attach {
	return []sockl7.Attach{{Program: objs.L7Parser, Type: ebpf.AttachSkSKBStreamParser, Map: objs.L7Socks},
		{Program: objs.L7Verdict, Type: ebpf.AttachSkSKBStreamVerdict, Map: objs.L7Socks},
		{Program: objs.L7Msg, Type: ebpf.AttachSkMsgVerdict, Map: objs.L7Esocks}}
}

// AttachCgroup attaches the programs that see a cgroup's sockets to a
// cgroup v2 directory: the gate on the wire (cgroup_skb egress, first, so
// that no client socket is enforced without it), then sockops. The server
// sockets (ingress bindings) and client sockets (egress bindings) of its
// processes are then enforced. What is attached there already (by this
// process, or adopted from a previous one) is not attached again.
func (d *Datapath) AttachCgroup(path string) error {
	if _, err := os.Stat(path); err != nil {
		return fmt.Errorf("attach to %s: %w", path, err)
	}
	if !sockl7.HasCgroup(d.gates, path) {
		l, err := link.AttachCgroup(link.CgroupOptions{Path: path, Attach: ebpf.AttachCGroupInetEgress, Program: d.objs.L7Gate})
		if err != nil {
			return fmt.Errorf("attach the egress gate to %s: %w", path, err)
		}
		d.gates = append(d.gates, l)
	}
	if !sockl7.HasCgroup(d.links, path) {
		l, err := link.AttachCgroup(link.CgroupOptions{Path: path, Attach: ebpf.AttachCGroupSockOps, Program: d.objs.L7Sockops})
		if err != nil {
			return fmt.Errorf("attach sockops to %s: %w", path, err)
		}
		d.links = append(d.links, l)
	}
	return nil
}

// Pin pins every map and the cgroup links under dir (which must exist on
// a bpffs): after Close, the kernel keeps enforcing with the pinned state
// (the SOCKHASH keeps its parser and verdict while it is pinned); Adopt
// takes it over in a new process.
func (d *Datapath) Pin(dir string) error { return d.pins(false).Pin(dir) }

// pins are the maps Pin pins, by pin name (pinned: only those pinned
// already, which MissingPins checks), and the sockops and egress gate
// links.
func (d *Datapath) pins(pinned bool) sockl7.Pins {
	ms := sockl7.PinnedMaps(&d.objs.L7Maps)
	if !pinned {
		ms = map[string]*ebpf.Map{
			"l7_socks": d.objs.L7Socks, "l7_sock_state": d.objs.L7SockState, "l7_slot": d.objs.L7Slot, "l7_gens": d.objs.L7Gens,
			"l7_ports": d.objs.L7Ports, "l7_binds": d.objs.L7Binds, "l7_peers": d.objs.L7Peers, "l7_lists": d.objs.L7Lists,
			"l7_class_rows": d.objs.L7ClassRows, "l7_next": d.objs.L7Next, "l7_accept": d.objs.L7Accept,
			"l7_allows": d.objs.L7Allows, "l7_hdrreqs": d.objs.L7Hdrreqs, "l7_hdrs": d.objs.L7Hdrs, "l7_counters": d.objs.L7Counters,
			"l7_esocks": d.objs.L7Esocks, "l7_esk": d.objs.L7Esk, "l7_eports": d.objs.L7Eports, "l7_ebinds": d.objs.L7Ebinds,
			"l7_events": d.objs.L7Events, "l7_evcfg": d.objs.L7Evcfg,
		}
	}
	return sockl7.Pins{What: "l7", LinkPrefix: sockopsLinkPin, Links: d.links, Maps: ms,
		More: []sockl7.LinkSet{{Prefix: gateLinkPin, Name: "egress gate", Links: d.gates}}}
}

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

// Counters returns the counters summed over CPUs and both directions, by
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

// CountersDir returns one direction's counters summed over CPUs, by
// reason: the server's side (ingress bindings) or the client's (egress).
func (d *Datapath) CountersDir(egress bool) (map[Reason]uint64, error) {
	base := uint32(0)
	if egress {
		base = uint32(numReasons)
	}
	c, err := sockl7.SumCounters(d.objs.L7Counters, "l7_counters", base, uint32(numReasons))
	if err != nil {
		return nil, err
	}
	out := make(map[Reason]uint64, len(c))
	for r, n := range c {
		out[Reason(r)] = n
	}
	return out, nil
}

// SetAllowedEvents says whether the next generation Apply writes sends an
// event for every allowed request too (refused ones always get one).
func (d *Datapath) SetAllowedEvents(on bool) {
	d.evflags = 0
	if on {
		d.evflags = 1 // L7_EV_ALLOWED
	}
}

// SetPeer says which identity the addresses of prefix have (for
// bindings by identity).
func (d *Datapath) SetPeer(prefix netip.Prefix, identity uint32) error {
	k := sockl7.PeerKeyOf(prefix)
	if err := d.objs.L7Peers.Update(k, identity, ebpf.UpdateAny); err != nil {
		return fmt.Errorf("update l7_peers %v: %w", prefix, err)
	}
	return nil
}

// Hash is the l7 hash of a header name or value: FNV-1a 64 from the
// offset basis XOR the generation's seed (names are hashed lower-cased).
func Hash(seed uint64, s string) uint64 {
	h := uint64(0xcbf29ce484222325) ^ seed
	for i := 0; i < len(s); i++ {
		h = (h ^ uint64(s[i])) * 0x100000001b3
	}
	return h
}

// Apply writes a generation: the tables of every list and the bindings,
// into the slot beside the active one; then switches the active slot,
// so that each request is decided by one generation whole; then removes
// the old slot's entries.
func (d *Datapath) Apply(generation uint64, tables *engine.HTTPTables, binds []Binding) error {
	next := d.active ^ 1
	if err := d.clearSlot(next); err != nil {
		return err
	}
	var seedb [8]byte
	if _, err := rand.Read(seedb[:]); err != nil {
		return fmt.Errorf("hash seed: %w", err)
	}
	seed := binary.LittleEndian.Uint64(seedb[:])
	w := &slotWriter{d: d, slot: next, seed: seed}
	for _, id := range sortedIDs(tables) {
		if err := w.list(id, tables.Lists[id]); err != nil {
			return fmt.Errorf("l7 list %d: %w", id, err)
		}
	}
	if err := w.flush(); err != nil {
		return err
	}
	// Ports first (no slot: a superset while both generations live).
	// Egress bindings go to their own maps: l7_eports names the client
	// sockets (local address, remote port), l7_ebinds their lists.
	newPorts := map[sockl7.PortKey]bool{}
	newEPorts := map[sockl7.PortKey]bool{}
	for _, b := range binds {
		if _, ok := tables.Lists[b.List]; !ok {
			return fmt.Errorf("binding %v:%d names l7 list %d, which has no tables", b.Addr, b.Port, b.List)
		}
		pk := sockl7.PortKeyOf(b.Addr, b.Port)
		ports, bindMap, name := d.objs.L7Ports, d.objs.L7Binds, "l7_binds"
		if b.Egress {
			ports, bindMap, name = d.objs.L7Eports, d.objs.L7Ebinds, "l7_ebinds"
			newEPorts[pk] = true
		} else {
			newPorts[pk] = true
		}
		if err := ports.Update(pk, uint32(1), ebpf.UpdateAny); err != nil {
			return fmt.Errorf("update ports of %s: %w", name, err)
		}
		bk := sockl7.BindKeyOf(next, b.Addr, b.Port, b.Identity)
		if err := bindMap.Update(bk, l7bpf.L7L7Bind{List: uint32(b.List)}, ebpf.UpdateAny); err != nil {
			return fmt.Errorf("update %s: %w", name, err)
		}
		if b.Egress {
			d.written[next].ebinds = append(d.written[next].ebinds, bk)
		} else {
			d.written[next].binds = append(d.written[next].binds, bk)
		}
	}
	if err := d.objs.L7Gens.Update(next, l7bpf.L7L7Config{Generation: generation, Seed: seed}, ebpf.UpdateAny); err != nil {
		return fmt.Errorf("update l7_gens: %w", err)
	}
	if err := d.objs.L7Evcfg.Update(next, d.evflags, ebpf.UpdateAny); err != nil {
		return fmt.Errorf("update l7_evcfg: %w", err)
	}
	if err := d.objs.L7Slot.Update(uint32(0), l7bpf.L7L7Active{Slot: next}, ebpf.UpdateAny); err != nil {
		return fmt.Errorf("switch l7 slot: %w", err)
	}
	old := d.active
	d.active = next
	for pk := range d.ports {
		if !newPorts[pk] {
			if err := d.objs.L7Ports.Delete(pk); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
				return fmt.Errorf("delete l7_ports: %w", err)
			}
		}
	}
	d.ports = newPorts
	for pk := range d.eports {
		if !newEPorts[pk] {
			if err := d.objs.L7Eports.Delete(pk); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
				return fmt.Errorf("delete l7_eports: %w", err)
			}
		}
	}
	d.eports = newEPorts
	return d.clearSlot(old)
}

func sortedIDs(t *engine.HTTPTables) []engine.L7ID {
	ids := make([]engine.L7ID, 0, len(t.Lists))
	for id := range t.Lists {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

func (d *Datapath) clearSlot(slot uint32) error {
	w := &d.written[slot]
	for _, k := range w.lists {
		if err := d.objs.L7Lists.Delete(k); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
			return fmt.Errorf("delete l7_lists: %w", err)
		}
	}
	for _, k := range w.binds {
		if err := d.objs.L7Binds.Delete(k); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
			return fmt.Errorf("delete l7_binds: %w", err)
		}
	}
	for _, k := range w.ebinds {
		if err := d.objs.L7Ebinds.Delete(k); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
			return fmt.Errorf("delete l7_ebinds: %w", err)
		}
	}
	for _, k := range w.hdrs {
		if err := d.objs.L7Hdrs.Delete(k); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
			return fmt.Errorf("delete l7_hdrs: %w", err)
		}
	}
	*w = slotKeys{}
	return nil
}

// slotWriter lays the lists' tables out in one slot's rows.
type slotWriter struct {
	d    *Datapath
	slot uint32
	seed uint64

	dfas, next, accept, allows, hdrreqs uint32

	classKeys  []uint32
	classVals  []l7bpf.L7L7Classes
	nextKeys   []uint32
	nextVals   []uint32
	accKeys    []uint32
	accVals    []l7bpf.L7L7Mask
	allowKeys  []uint32
	allowVals  []l7bpf.L7L7Allow
	hdrreqKeys []uint32
	hdrreqVals []l7bpf.L7L7Mask
}

func mask(m engine.HTTPMask) l7bpf.L7L7Mask { return l7bpf.L7L7Mask{W: m} }

func (w *slotWriter) dfa(d *engine.DFA) (l7bpf.L7L7DfaRef, error) {
	n := uint32(d.States())
	if w.dfas >= maxDFAs || w.accept+n > MaxStates || w.next+uint32(len(d.Next)) > MaxNext {
		return l7bpf.L7L7DfaRef{}, fmt.Errorf("the generation's automata exceed the kernel tables (%d automata, %d states, %d transitions)", maxDFAs, MaxStates, MaxNext)
	}
	ref := l7bpf.L7L7DfaRef{Classes: w.dfas, Next: w.next, Accept: w.accept, Nclasses: uint32(d.NumClasses)}
	w.classKeys = append(w.classKeys, w.slot*maxDFAs+w.dfas)
	w.classVals = append(w.classVals, l7bpf.L7L7Classes{C: d.Classes})
	for i, s := range d.Next {
		w.nextKeys = append(w.nextKeys, w.slot*MaxNext+w.next+uint32(i))
		w.nextVals = append(w.nextVals, uint32(s))
	}
	for i, a := range d.Accept {
		w.accKeys = append(w.accKeys, w.slot*MaxStates+w.accept+uint32(i))
		w.accVals = append(w.accVals, mask(a))
	}
	w.dfas++
	w.next += uint32(len(d.Next))
	w.accept += n
	return ref, nil
}

func (w *slotWriter) list(id engine.L7ID, l *engine.HTTPList) error {
	var kl l7bpf.L7L7List
	var err error
	if kl.Path, err = w.dfa(&l.Path); err != nil {
		return err
	}
	if kl.Host, err = w.dfa(&l.Host); err != nil {
		return err
	}
	if w.allows+uint32(len(l.Allows)) > maxAllowRows || w.hdrreqs+uint32(len(l.Headers)) > maxHdrRows {
		return fmt.Errorf("the generation's allows or header requirements exceed the kernel tables")
	}
	kl.Allows, kl.Nallows = w.allows, uint32(len(l.Allows))
	for i, a := range l.Allows {
		ka := l7bpf.L7L7Allow{Rule: uint32(a.Rule), Rules: mask(a.Rules)}
		if a.Audit {
			ka.Audit = 1
		}
		if a.Any {
			ka.Any = 1
		}
		w.allowKeys = append(w.allowKeys, w.slot*maxAllowRows+w.allows+uint32(i))
		w.allowVals = append(w.allowVals, ka)
	}
	w.allows += kl.Nallows
	kl.Hdrreqs, kl.Nhdrreqs = w.hdrreqs, uint32(len(l.Headers))
	for i, h := range l.Headers {
		w.hdrreqKeys = append(w.hdrreqKeys, w.slot*maxHdrRows+w.hdrreqs+uint32(i))
		w.hdrreqVals = append(w.hdrreqVals, mask(h.Rules))
		k := l7bpf.L7L7HdrKey{Slot: w.slot, List: uint32(id), Name: Hash(w.seed, h.Name)}
		if h.HasValue {
			k.Value, k.HasValue = Hash(w.seed, h.Value), 1
		}
		if err := w.d.objs.L7Hdrs.Update(k, uint32(i), ebpf.UpdateAny); err != nil {
			return fmt.Errorf("update l7_hdrs: %w", err)
		}
		w.d.written[w.slot].hdrs = append(w.d.written[w.slot].hdrs, k)
	}
	w.hdrreqs += kl.Nhdrreqs
	for m := range kl.Methods {
		kl.Methods[m] = mask(l.Methods[m])
	}
	kl.PathAny, kl.HostAny = mask(l.PathAny), mask(l.HostAny)
	lk := l7bpf.L7L7ListKey{Slot: w.slot, List: uint32(id)}
	if err := w.d.objs.L7Lists.Update(lk, &kl, ebpf.UpdateAny); err != nil {
		return fmt.Errorf("update l7_lists: %w", err)
	}
	w.d.written[w.slot].lists = append(w.d.written[w.slot].lists, lk)
	return nil
}

// flush writes the array rows in batches.
func (w *slotWriter) flush() error {
	for _, b := range []struct {
		name string
		m    *ebpf.Map
		k, v any
		n    int
	}{
		{"l7_class_rows", w.d.objs.L7ClassRows, w.classKeys, w.classVals, len(w.classKeys)},
		{"l7_next", w.d.objs.L7Next, w.nextKeys, w.nextVals, len(w.nextKeys)},
		{"l7_accept", w.d.objs.L7Accept, w.accKeys, w.accVals, len(w.accKeys)},
		{"l7_allows", w.d.objs.L7Allows, w.allowKeys, w.allowVals, len(w.allowKeys)},
		{"l7_hdrreqs", w.d.objs.L7Hdrreqs, w.hdrreqKeys, w.hdrreqVals, len(w.hdrreqKeys)},
	} {
		if b.n == 0 {
			continue
		}
		if _, err := b.m.BatchUpdate(b.k, b.v, nil); err != nil {
			return fmt.Errorf("write %s: %w", b.name, err)
		}
	}
	return nil
}

// cgroupRoot is where cgroup v2 is mounted on this machine's hybrid
// layout; tests and make run create workload cgroups under it.
var cgroupRoot = func() string {
	if _, err := os.Stat("/sys/fs/cgroup/unified/cgroup.procs"); err == nil {
		return "/sys/fs/cgroup/unified"
	}
	return "/sys/fs/cgroup"
}()

// CgroupRoot returns the cgroup v2 mount point.
func CgroupRoot() string { return cgroupRoot }
