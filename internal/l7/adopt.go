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
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"syscall"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"

	l7bpf "github.com/palisade-dev/palisade/bpf/l7"
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
// (SetAllowedEvents), written with its next generation.
//
// Adopt must run before anything is attached or applied. It returns nil
// when dir holds no pinned state; on an error the datapath is left as
// loaded and the pins as they were.
func (d *Datapath) Adopt(dir string) (*Adopted, error) {
	if len(d.links) > 0 || len(d.gates) > 0 || d.written[0].lists != nil || d.written[1].lists != nil || len(d.ports) > 0 {
		return nil, errors.New("adopt: the datapath has attached or applied already")
	}
	if _, err := os.Stat(filepath.Join(dir, "l7_socks")); errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	} else if err != nil {
		return nil, fmt.Errorf("adopt: %w", err)
	}
	spec, err := l7bpf.LoadL7()
	if err != nil {
		return nil, fmt.Errorf("adopt: %w", err)
	}
	pinned := map[string]*ebpf.Map{}
	closePinned := func() {
		for _, m := range pinned {
			m.Close()
		}
	}
	for _, name := range slices.Sorted(func(yield func(string) bool) {
		for n := range spec.Maps {
			if !yield(n) {
				return
			}
		}
	}) {
		if strings.HasPrefix(name, ".") {
			continue // global data: Pin never pins it
		}
		p := filepath.Join(dir, name)
		if _, err := os.Stat(p); errors.Is(err, fs.ErrNotExist) {
			continue
		}
		m, err := ebpf.LoadPinnedMap(p, nil)
		if err != nil {
			closePinned()
			return nil, fmt.Errorf("adopt: open pinned %s: %w", name, err)
		}
		pinned[name] = m
	}
	for _, name := range adoptRequired {
		if pinned[name] == nil {
			closePinned()
			return nil, fmt.Errorf("adopt: the state pinned under %s lacks %s", dir, name)
		}
	}
	var objs l7bpf.L7Objects
	if err := spec.LoadAndAssign(&objs, &ebpf.CollectionOptions{MapReplacements: pinned}); err != nil {
		closePinned()
		var ve *ebpf.VerifierError
		if errors.As(err, &ve) {
			return nil, fmt.Errorf("adopt: load l7 objects on the pinned maps: %+v", ve)
		}
		return nil, fmt.Errorf("adopt: load l7 objects on the pinned maps (pinned by an incompatible version?): %w", err)
	}
	// The loaded objects hold clones, which forget their pins: keep the
	// pinned handles instead, so that Pin finds them pinned already.
	names := swapPinned(&objs.L7Maps, pinned)

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
	var links, gates []link.Link
	failLinks := func(err error) (*Adopted, error) {
		for _, l := range slices.Concat(links, gates) {
			l.Close()
		}
		return fail(err)
	}
	linkPins, err := pinnedLinks(dir, sockopsLinkPin)
	if err != nil {
		return fail(err)
	}
	gatePins, err := pinnedLinks(dir, gateLinkPin)
	if err != nil {
		return fail(err)
	}
	for _, pl := range []struct {
		pins []string
		out  *[]link.Link
	}{{linkPins, &links}, {gatePins, &gates}} {
		for _, p := range pl.pins {
			l, err := link.LoadPinnedLink(p, nil)
			if err != nil {
				return failLinks(fmt.Errorf("open pinned link: %w", err))
			}
			*pl.out = append(*pl.out, l)
			if _, err := linkCgroup(l); err != nil {
				return failLinks(fmt.Errorf("%s: %w", p, err))
			}
		}
	}
	// From here on the kernel runs this process's programs: first the
	// parser and verdict of sockets added to the SOCKHASH from now on
	// (sockets in it keep the programs they were added with, which
	// decide by the same maps), then the egress gate and the sockops
	// program, link by link. A cgroup whose gate was not pinned (state
	// of a version without it) gets one at its next AttachCgroup:
	// HasCgroup reports it not attached.
	for _, a := range []struct {
		p *ebpf.Program
		t ebpf.AttachType
		m *ebpf.Map
	}{{objs.L7Parser, ebpf.AttachSkSKBStreamParser, objs.L7Socks}, {objs.L7Verdict, ebpf.AttachSkSKBStreamVerdict, objs.L7Socks},
		{objs.L7Msg, ebpf.AttachSkMsgVerdict, objs.L7Esocks}} {
		if err := link.RawAttachProgram(link.RawAttachProgramOptions{Target: a.m.FD(), Program: a.p, Attach: a.t}); err != nil {
			return failLinks(fmt.Errorf("attach %v to %v: %w", a.t, a.m, err))
		}
	}
	for i, l := range gates {
		if err := l.Update(objs.L7Gate); err != nil {
			return failLinks(fmt.Errorf("switch %s to this process's egress gate: %w", gatePins[i], err))
		}
	}
	for i, l := range links {
		if err := l.Update(objs.L7Sockops); err != nil {
			return failLinks(fmt.Errorf("switch %s to this process's sockops program: %w", linkPins[i], err))
		}
	}
	ad.Links, ad.Gates = len(links), len(gates)

	old := d.objs
	d.objs, d.links, d.gates, d.active, d.written, d.ports, d.eports = objs, links, gates, act.Slot, written, ports, eports
	old.Close()
	return ad, nil
}

// pinnedLinks returns the link pins under dir named prefix and an
// index, in index order.
func pinnedLinks(dir, prefix string) ([]string, error) {
	pins, err := filepath.Glob(filepath.Join(dir, prefix+"*"))
	if err != nil {
		return nil, err
	}
	index := func(pin string) int {
		n, err := strconv.Atoi(strings.TrimPrefix(filepath.Base(pin), prefix))
		if err != nil {
			return 1 << 30
		}
		return n
	}
	slices.SortFunc(pins, func(x, y string) int { return index(x) - index(y) })
	return pins, nil
}

// swapPinned puts the pinned maps in place of the loaded clones (closing
// those) and returns the names swapped.
func swapPinned(ms *l7bpf.L7Maps, pinned map[string]*ebpf.Map) []string {
	var names []string
	v := reflect.ValueOf(ms).Elem()
	for i := 0; i < v.NumField(); i++ {
		name := v.Type().Field(i).Tag.Get("ebpf")
		p, ok := pinned[name]
		if !ok {
			continue
		}
		f := v.Field(i).Addr().Interface().(**ebpf.Map)
		(*f).Close()
		*f = p
		delete(pinned, name)
		names = append(names, name)
	}
	for _, m := range pinned { // maps no field holds
		m.Close()
	}
	slices.Sort(names)
	return names
}

// scanWritten finds what each slot's hash maps hold, for Apply to clear
// a slot before it writes it, and the enforced ports of both directions.
func scanWritten(objs *l7bpf.L7Objects) (w [2]slotKeys, ports, eports map[l7bpf.L7L7PortKey]bool, err error) {
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
		keys func(slot uint32) *[]l7bpf.L7L7BindKey
	}{
		{"l7_binds", objs.L7Binds, func(s uint32) *[]l7bpf.L7L7BindKey { return &w[s].binds }},
		{"l7_ebinds", objs.L7Ebinds, func(s uint32) *[]l7bpf.L7L7BindKey { return &w[s].ebinds }},
	} {
		var bk l7bpf.L7L7BindKey
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
	ports, eports = map[l7bpf.L7L7PortKey]bool{}, map[l7bpf.L7L7PortKey]bool{}
	for name, p := range map[string]struct {
		m   *ebpf.Map
		set map[l7bpf.L7L7PortKey]bool
	}{"l7_ports": {objs.L7Ports, ports}, "l7_eports": {objs.L7Eports, eports}} {
		var pk l7bpf.L7L7PortKey
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

// linkCgroup is the id of the cgroup a sockops link attaches to.
func linkCgroup(l link.Link) (uint64, error) {
	info, err := l.Info()
	if err != nil {
		return 0, err
	}
	cg := info.Cgroup()
	if cg == nil {
		return 0, errors.New("not a cgroup link")
	}
	return cg.CgroupId, nil
}

// cgroupID is the id of the cgroup v2 directory path (its inode).
func cgroupID(path string) (uint64, error) {
	var st syscall.Stat_t
	if err := syscall.Stat(path, &st); err != nil {
		return 0, err
	}
	return st.Ino, nil
}

// hasLink reports whether one of links attaches to the cgroup id.
func hasLink(links []link.Link, id uint64) bool {
	for _, l := range links {
		if got, err := linkCgroup(l); err == nil && got == id {
			return true
		}
	}
	return false
}

// HasCgroup reports whether the sockops program and the egress gate are
// both attached to the cgroup v2 directory path (by this process, or by
// a previous one whose links Adopt took over).
func (d *Datapath) HasCgroup(path string) bool {
	id, err := cgroupID(path)
	if err != nil {
		return false
	}
	return hasLink(d.links, id) && hasLink(d.gates, id)
}

// pinnedMaps are the maps that are pinned, by name.
func (d *Datapath) pinnedMaps() map[string]*ebpf.Map {
	out := map[string]*ebpf.Map{}
	v := reflect.ValueOf(&d.objs.L7Maps).Elem()
	for i := 0; i < v.NumField(); i++ {
		if m, ok := v.Field(i).Interface().(*ebpf.Map); ok && m != nil && m.IsPinned() {
			out[v.Type().Field(i).Tag.Get("ebpf")] = m
		}
	}
	return out
}

// MissingPins returns the pins under dir that Pin made (or Adopt took
// over) and that are gone: without them the next process cannot adopt
// the state, and the kernel frees what only the pin held once this
// process exits.
func (d *Datapath) MissingPins(dir string) []string {
	var out []string
	for _, name := range slices.Sorted(maps.Keys(d.pinnedMaps())) {
		if _, err := os.Stat(filepath.Join(dir, name)); errors.Is(err, fs.ErrNotExist) {
			out = append(out, filepath.Join(dir, name))
		}
	}
	for _, ls := range []struct {
		links  []link.Link
		prefix string
	}{{d.links, sockopsLinkPin}, {d.gates, gateLinkPin}} {
		for i := range ls.links {
			p := filepath.Join(dir, fmt.Sprintf("%s%d", ls.prefix, i))
			if _, err := os.Stat(p); errors.Is(err, fs.ErrNotExist) {
				out = append(out, p)
			}
		}
	}
	return out
}

// RepairPins pins again what MissingPins finds missing under dir.
func (d *Datapath) RepairPins(dir string) error {
	var errs []error
	for name, m := range d.pinnedMaps() {
		if _, err := os.Stat(filepath.Join(dir, name)); errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, m.Unpin()) // forget the path: Pin pins it again
		}
	}
	for _, ls := range []struct {
		links  []link.Link
		prefix string
	}{{d.links, sockopsLinkPin}, {d.gates, gateLinkPin}} {
		for i, l := range ls.links {
			if _, err := os.Stat(filepath.Join(dir, fmt.Sprintf("%s%d", ls.prefix, i))); errors.Is(err, fs.ErrNotExist) {
				errs = append(errs, l.Unpin())
			}
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("repair l7 pins: %w", err)
	}
	return d.Pin(dir)
}
