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
	"maps"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"github.com/palisade-dev/palisade/bpf"
	"github.com/palisade-dev/palisade/internal/engine"
)

// The kernel's toFQDNs table (docs/datapath.md, "toFQDNs"): fqdn_names
// (name hash -> name, selector identities, address count, flags) and
// fqdn_addrs (address -> up to fqdnSlots (name hash, expiry) slots).
const (
	fqdnSlots        = 4
	fqdnNameCapped   = 1 << 0 // FQDN_NAME_CAPPED: the name's address cap was hit
	fqdnNameSlots    = 1 << 1 // FQDN_NAME_SLOTS: an address held four other names
	fqdnNameFull     = 1 << 2 // FQDN_NAME_FULL: fqdn_addrs was full
	fqdnMaxAddrsCeil = 1 << 16
)

// encodedFQDN is a state's toFQDNs automaton (engine.CompileFQDN) and its
// selectors in the programs' layout.
type encodedFQDN struct {
	nextKeys     []uint32
	nextValues   []uint32
	acceptKeys   []uint32
	acceptValues []bpf.PalisadeFqdnAccept
	selKeys      []uint32
	selValues    []bpf.PalisadeFqdnSelector
}

func encodeFQDN(s *engine.MapState) (encodedFQDN, error) {
	var e encodedFQDN
	if len(s.FQDNSelectors) == 0 {
		return e, nil
	}
	t, err := engine.CompileFQDN(s.FQDNSelectors)
	if err != nil {
		return e, fmt.Errorf("toFQDNs tables: %w", err)
	}
	e.nextKeys = make([]uint32, len(t.Next))
	for i := range e.nextKeys {
		e.nextKeys[i] = uint32(i)
	}
	e.nextValues = t.Next
	e.acceptKeys = make([]uint32, len(t.Accept))
	e.acceptValues = make([]bpf.PalisadeFqdnAccept, len(t.Accept))
	for i, a := range t.Accept {
		e.acceptKeys[i] = uint32(i)
		v, err := fqdnAcceptValue(a.IDs)
		if err != nil {
			return e, fmt.Errorf("toFQDNs tables: state %d: %w", i, err)
		}
		e.acceptValues[i] = v
	}
	for _, id := range slices.Sorted(maps.Keys(s.FQDNSelectors)) {
		v, err := fqdnSelectorValue(s.FQDNSelectors[id])
		if err != nil {
			return e, fmt.Errorf("toFQDNs selector %d: %w", id, err)
		}
		e.selKeys = append(e.selKeys, uint32(id))
		e.selValues = append(e.selValues, v)
	}
	return e, nil
}

func fqdnAcceptValue(ids []engine.Identity) (bpf.PalisadeFqdnAccept, error) {
	var v bpf.PalisadeFqdnAccept
	if len(ids) > len(v.Ids) {
		return v, fmt.Errorf("%d selector identities, the kernel stores %d", len(ids), len(v.Ids))
	}
	v.N = uint32(len(ids))
	for i, id := range ids {
		v.Ids[i] = uint32(id)
	}
	return v, nil
}

func fqdnSelectorValue(f engine.FQDN) (bpf.PalisadeFqdnSelector, error) {
	var v bpf.PalisadeFqdnSelector
	text := engine.NormalizeFQDN(f.Name)
	if f.Name == "" {
		text = engine.NormalizeFQDN(f.Pattern)
		v.Pattern = 1
	}
	if len(text) == 0 || len(text) > len(v.Text) {
		return v, fmt.Errorf("selector %q: length %d out of range", text, len(text))
	}
	v.Len = uint16(len(text))
	copy(v.Text[:], text)
	return v, nil
}

func fqdnSelector(v bpf.PalisadeFqdnSelector) engine.FQDN {
	text := string(v.Text[:min(int(v.Len), len(v.Text))])
	if v.Pattern != 0 {
		return engine.FQDN{Pattern: text}
	}
	return engine.FQDN{Name: text}
}

func isFQDNOuter(name string) bool {
	return name == outerFQDNNext || name == outerFQDNAccept || name == outerFQDNSelectors
}

// readFQDN reads a generation's toFQDNs maps back, in the encoded layout;
// a generation without them (written by an agent from before toFQDNs)
// reads as empty.
func readFQDN(inner map[string]*ebpf.Map) (encodedFQDN, error) {
	var e encodedFQDN
	if inner[outerFQDNNext] == nil || inner[outerFQDNAccept] == nil || inner[outerFQDNSelectors] == nil {
		return e, nil
	}
	next := inner[outerFQDNNext]
	e.nextValues = make([]uint32, next.MaxEntries())
	if err := readArray(next, e.nextValues); err != nil {
		return e, fmt.Errorf("read fqdn transitions: %w", err)
	}
	acc := inner[outerFQDNAccept]
	e.acceptValues = make([]bpf.PalisadeFqdnAccept, acc.MaxEntries())
	if err := readArray(acc, e.acceptValues); err != nil {
		return e, fmt.Errorf("read fqdn accept values: %w", err)
	}
	var k uint32
	var sv bpf.PalisadeFqdnSelector
	it := inner[outerFQDNSelectors].Iterate()
	for it.Next(&k, &sv) {
		e.selKeys = append(e.selKeys, k)
		e.selValues = append(e.selValues, sv)
	}
	if err := it.Err(); err != nil {
		return e, fmt.Errorf("read fqdn selectors: %w", err)
	}
	return e, nil
}

// compareFQDN lists how a generation's toFQDNs automaton differs from the
// one Apply writes for desired (map "fqdn"; the selectors themselves are
// compared by Diff). An empty table is written as arrays of one zero
// entry.
func compareFQDN(desired *engine.MapState, got encodedFQDN) ([]Drift, error) {
	want, err := encodeFQDN(desired)
	if err != nil {
		return nil, err
	}
	var out []Drift
	wn := want.nextValues
	if len(wn) == 0 {
		wn = []uint32{0}
	}
	if g := got.nextValues; !slices.Equal(wn, g) {
		out = append(out, Drift{Map: "fqdn", Key: "transitions", Want: fmt.Sprintf("%d entries", len(wn)), Got: fmt.Sprintf("%d entries, %d differ", len(g), countDiff(wn, g))})
	}
	wa := want.acceptValues
	if len(wa) == 0 {
		wa = []bpf.PalisadeFqdnAccept{{}}
	}
	if g := got.acceptValues; !slices.Equal(wa, g) {
		out = append(out, Drift{Map: "fqdn", Key: "accept", Want: fmt.Sprintf("%d entries", len(wa)), Got: fmt.Sprintf("%d entries, %d differ", len(g), countDiff(wa, g))})
	}
	return out, nil
}

// fqdnIDs returns the selector identities that select name, sorted, as
// the kernel stores them with a learned name.
func fqdnIDs(selectors map[engine.Identity]engine.FQDN, name string) ([]engine.Identity, error) {
	var ids []engine.Identity
	for id, f := range selectors {
		if f.Matches(name) {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	if len(ids) > engine.FQDNMaxSelectorsPerName {
		return nil, fmt.Errorf("name %q: %d selectors select it, the kernel stores %d", name, len(ids), engine.FQDNMaxSelectorsPerName)
	}
	return ids, nil
}

func setNameIDs(v *bpf.PalisadeFqdnName, ids []engine.Identity) {
	v.Ids = [len(v.Ids)]uint32{}
	for i, id := range ids {
		v.Ids[i] = uint32(id)
	}
	v.Nids = uint32(len(ids))
}

func nameIDs(v bpf.PalisadeFqdnName) []engine.Identity {
	var ids []engine.Identity
	for i := range min(int(v.Nids), len(v.Ids)) {
		ids = append(ids, engine.Identity(v.Ids[i]))
	}
	return ids
}

func nameText(v bpf.PalisadeFqdnName) string {
	return string(v.Name[:min(int(v.Len), len(v.Name))])
}

// rewriteFQDNNames gives every learned name the selector identities of
// selectors (the generation just switched to): the kernel stored those of
// the generation that learned it. It returns how many it changed.
func (d *Datapath) rewriteFQDNNames(selectors map[engine.Identity]engine.FQDN) (int, error) {
	var k uint64
	var v bpf.PalisadeFqdnName
	type upd struct {
		k uint64
		v bpf.PalisadeFqdnName
	}
	var todo []upd
	var errs []error
	it := d.objs.FqdnNames.Iterate()
	for it.Next(&k, &v) {
		ids, err := fqdnIDs(selectors, nameText(v))
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if slices.Equal(ids, nameIDs(v)) {
			continue
		}
		setNameIDs(&v, ids)
		todo = append(todo, upd{k, v})
	}
	if err := it.Err(); err != nil {
		return 0, fmt.Errorf("read fqdn names: %w", err)
	}
	n := 0
	for _, u := range todo {
		// Only the identities change: read-modify-write of one entry, racing
		// the programs' count updates at worst (ExpireFQDN recounts).
		var cur bpf.PalisadeFqdnName
		if err := d.objs.FqdnNames.Lookup(u.k, &cur); err != nil {
			continue // expired meanwhile
		}
		cur.Ids, cur.Nids = u.v.Ids, u.v.Nids
		if err := d.objs.FqdnNames.Update(u.k, cur, ebpf.UpdateExist); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
			errs = append(errs, fmt.Errorf("rewrite fqdn name %q: %w", nameText(cur), err))
			continue
		}
		n++
	}
	return n, errors.Join(errs...)
}

// compareFQDNNames lists every learned name whose selector identities are
// not those of desired's selectors (map "fqdn-names").
func (d *Datapath) compareFQDNNames(desired *engine.MapState) ([]Drift, error) {
	var out []Drift
	var k uint64
	var v bpf.PalisadeFqdnName
	it := d.objs.FqdnNames.Iterate()
	for it.Next(&k, &v) {
		name := nameText(v)
		want, err := fqdnIDs(desired.FQDNSelectors, name)
		if err != nil {
			return nil, err
		}
		if got := nameIDs(v); !slices.Equal(want, got) {
			out = append(out, Drift{Map: "fqdn-names", Key: name, Want: fmt.Sprintf("selectors %v", want), Got: fmt.Sprintf("selectors %v", got)})
		}
	}
	if err := it.Err(); err != nil {
		return nil, fmt.Errorf("read fqdn names: %w", err)
	}
	return out, nil
}

// FQDNSettings bound what the kernel learns from DNS answers.
type FQDNSettings struct {
	// MinTTL is the least time an address is kept after an answer: an
	// answer's TTL below it counts as MinTTL. Whole seconds, at least 1 s;
	// 0 means the kernel's default (60 s).
	MinTTL time.Duration
	// MaxAddrsPerName caps the addresses one name holds; an address past
	// the cap is not learned, counted (FQDNCap) and the name flagged
	// (FQDNEntry.Capped). 0 means the kernel's default (128).
	MaxAddrsPerName int
}

// SetFQDNSettings writes the toFQDNs settings; they apply to answers seen
// from then on.
func (d *Datapath) SetFQDNSettings(s FQDNSettings) error {
	if s.MinTTL < 0 || (s.MinTTL != 0 && s.MinTTL < time.Second) || s.MinTTL%time.Second != 0 || s.MinTTL > (1<<31-1)*time.Second {
		return fmt.Errorf("toFQDNs min TTL %v: want whole seconds from 1s to 2^31-1s (or 0 for the default)", s.MinTTL)
	}
	if s.MaxAddrsPerName < 0 || s.MaxAddrsPerName > fqdnMaxAddrsCeil {
		return fmt.Errorf("toFQDNs max addresses per name %d: want 1 to %d (or 0 for the default)", s.MaxAddrsPerName, fqdnMaxAddrsCeil)
	}
	v := bpf.PalisadeFqdnConfig{MinTtl: uint32(s.MinTTL / time.Second), MaxAddrs: uint32(s.MaxAddrsPerName)}
	if err := d.objs.FqdnSettings.Update(uint32(0), v, ebpf.UpdateAny); err != nil {
		return fmt.Errorf("write toFQDNs settings: %w", err)
	}
	return nil
}

// FQDNEntry is one learned name and its unexpired addresses.
type FQDNEntry struct {
	Name  string
	Addrs []FQDNAddr
	// Capped says that an address of the name was not learned: the name
	// was at its cap, the address held four other names already, or the
	// address table was full (the counters say which).
	Capped bool
}

// FQDNAddr is a learned address and when it expires.
type FQDNAddr struct {
	Addr    netip.Addr
	Expires time.Time
}

// fqdnClock converts bpf_ktime_get_boot_ns() values to wall time and
// returns the boot clock now.
func fqdnClock() (func(ns uint64) time.Time, uint64, error) {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_BOOTTIME, &ts); err != nil {
		return nil, 0, fmt.Errorf("read boot clock: %w", err)
	}
	now := time.Now()
	boot := uint64(ts.Nano())
	return func(ns uint64) time.Time { return now.Add(time.Duration(int64(ns) - int64(boot))) }, boot, nil
}

type learned struct {
	names map[uint64]bpf.PalisadeFqdnName
	addrs map[netip.Addr]bpf.PalisadeFqdnAddr
}

func (d *Datapath) readLearned() (learned, error) {
	l := learned{names: map[uint64]bpf.PalisadeFqdnName{}, addrs: map[netip.Addr]bpf.PalisadeFqdnAddr{}}
	var k uint64
	var v bpf.PalisadeFqdnName
	it := d.objs.FqdnNames.Iterate()
	for it.Next(&k, &v) {
		l.names[k] = v
	}
	if err := it.Err(); err != nil {
		return l, fmt.Errorf("read fqdn names: %w", err)
	}
	var ak bpf.PalisadeAddrKey
	var av bpf.PalisadeFqdnAddr
	it = d.objs.FqdnAddrs.Iterate()
	for it.Next(&ak, &av) {
		a, err := addrFromKey(ak.Family, ak.Addr)
		if err != nil {
			return l, fmt.Errorf("read fqdn addrs: %w", err)
		}
		l.addrs[a] = av
	}
	if err := it.Err(); err != nil {
		return l, fmt.Errorf("read fqdn addrs: %w", err)
	}
	return l, nil
}

// FQDNTable returns the names the kernel learned with their unexpired
// addresses, sorted by name (addresses by address). A name whose
// addresses all expired is listed without addresses until ExpireFQDN
// removes it.
func (d *Datapath) FQDNTable() ([]FQDNEntry, error) {
	wall, now, err := fqdnClock()
	if err != nil {
		return nil, err
	}
	l, err := d.readLearned()
	if err != nil {
		return nil, err
	}
	byHash := map[uint64]*FQDNEntry{}
	for h, v := range l.names {
		byHash[h] = &FQDNEntry{Name: nameText(v), Capped: v.Flags != 0}
	}
	for a, av := range l.addrs {
		for _, s := range av.Slots {
			e := byHash[s.Name]
			if s.Name == 0 || s.Expires < now || e == nil {
				continue
			}
			e.Addrs = append(e.Addrs, FQDNAddr{Addr: a, Expires: wall(s.Expires)})
		}
	}
	out := make([]FQDNEntry, 0, len(byHash))
	for _, e := range byHash {
		slices.SortFunc(e.Addrs, func(x, y FQDNAddr) int { return x.Addr.Compare(y.Addr) })
		out = append(out, *e)
	}
	slices.SortFunc(out, func(x, y FQDNEntry) int { return strings.Compare(x.Name, y.Name) })
	return out, nil
}

// fqdnNames is the learned table as engine.MapState.FQDNNames holds it:
// unexpired addresses by name.
func (d *Datapath) fqdnNames() (map[string][]netip.Addr, error) {
	t, err := d.FQDNTable()
	if err != nil {
		return nil, err
	}
	out := map[string][]netip.Addr{}
	for _, e := range t {
		if len(e.Addrs) == 0 {
			continue
		}
		for _, a := range e.Addrs {
			out[e.Name] = append(out[e.Name], a.Addr)
		}
	}
	return out, nil
}

// ExpireFQDN deletes the addresses of the learned table whose slots all
// expired and the names no address holds any more, and recounts every
// name's addresses. An expired slot of an address that other slots keep is
// left for the programs, which reuse it. It returns how many expired slots
// it removed. The agent calls it periodically.
//
// The programs write the table while this runs: an entry is read again
// just before it is deleted or rewritten, which leaves a window of
// microseconds in which an answer's update may be lost (the next answer
// writes it again).
func (d *Datapath) ExpireFQDN() (removed int, err error) {
	_, now, err := fqdnClock()
	if err != nil {
		return 0, err
	}
	l, err := d.readLearned()
	if err != nil {
		return 0, err
	}
	dead := func(av bpf.PalisadeFqdnAddr) (int, bool) {
		n := 0
		for _, s := range av.Slots {
			if s.Name == 0 {
				continue
			}
			if s.Expires >= now {
				return 0, false
			}
			n++
		}
		return n, true
	}
	// counts: the slots that name each hash in the addresses kept; gone:
	// in the addresses deleted.
	counts, gone := map[uint64]uint32{}, map[uint64]uint32{}
	var errs []error
	for a, av := range l.addrs {
		if _, ok := dead(av); !ok {
			for _, s := range av.Slots {
				if s.Name != 0 {
					counts[s.Name]++
				}
			}
			continue
		}
		k := addrKey(a)
		var cur bpf.PalisadeFqdnAddr
		if err := d.objs.FqdnAddrs.Lookup(k, &cur); err != nil {
			continue
		}
		n, ok := dead(cur)
		if !ok {
			for _, s := range cur.Slots {
				if s.Name != 0 {
					counts[s.Name]++
				}
			}
			continue
		}
		if err := d.objs.FqdnAddrs.Delete(k); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
			errs = append(errs, fmt.Errorf("expire fqdn address %v: %w", a, err))
			continue
		}
		removed += n
		for _, s := range cur.Slots {
			if s.Name != 0 {
				gone[s.Name]++
			}
		}
	}
	for h := range l.names {
		var cur bpf.PalisadeFqdnName
		if err := d.objs.FqdnNames.Lookup(h, &cur); err != nil {
			continue
		}
		if cur.Addrs > counts[h]+gone[h] {
			continue // an answer taught the name an address meanwhile
		}
		if counts[h] == 0 {
			if err := d.objs.FqdnNames.Delete(h); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
				errs = append(errs, fmt.Errorf("expire fqdn name %q: %w", nameText(cur), err))
			}
			continue
		}
		if cur.Addrs == counts[h] {
			continue
		}
		cur.Addrs = counts[h]
		if err := d.objs.FqdnNames.Update(h, cur, ebpf.UpdateExist); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
			errs = append(errs, fmt.Errorf("recount fqdn name %q: %w", nameText(cur), err))
		}
	}
	return removed, errors.Join(errs...)
}
