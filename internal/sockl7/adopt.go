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

package sockl7

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"unsafe"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/btf"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"
)

// Adoption is how a datapath takes over the state a previous process
// pinned (see Load and TakeOver), so that the connections in the pinned
// SOCKHASH are decided by the new process's generations.
type Adoption struct {
	// What names the datapath in errors ("kafka", "l7").
	What string
	// Dir is the pin directory; Socks the SOCKHASH's pin name: without
	// it there is nothing to adopt.
	Dir, Socks string
	// Required are the pins without which there is no state to adopt
	// whole: the SOCKHASH (the connections), the generation's switch and
	// every table a request is decided by.
	Required []string
	// LinkPrefix names the sockops cgroup links' pins.
	LinkPrefix string
}

// Load loads spec's programs into objs (a bpf2go Objects struct) on the
// maps pinned under a.Dir, and puts the pinned maps' handles in the maps
// struct that objs embeds (mapsOf), so that they stay pinned. It returns
// the names of the maps taken over, or none (and nothing loaded) when
// a.Dir holds no SOCKHASH pin.
//
// A pinned map is adopted only if this process's spec describes it as
// the pinned one was created: type, key and value sizes, entries and
// flags (as cilium/ebpf checks), and the same layout of key and value
// (their BTF, field by field: a new version that reorders or renames a
// field of the same size is not adopted). On an error nothing is loaded
// and the pins stay as they are.
func (a Adoption) Load(spec *ebpf.CollectionSpec, objs, mapsOf any) (names []string, found bool, err error) {
	if _, err := os.Stat(filepath.Join(a.Dir, a.Socks)); errors.Is(err, fs.ErrNotExist) {
		return nil, false, nil
	} else if err != nil {
		return nil, false, fmt.Errorf("adopt: %w", err)
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
			continue // global data: never pinned
		}
		p := filepath.Join(a.Dir, name)
		if _, err := os.Stat(p); errors.Is(err, fs.ErrNotExist) {
			continue
		}
		m, err := ebpf.LoadPinnedMap(p, nil)
		if err != nil {
			closePinned()
			return nil, true, fmt.Errorf("adopt: open pinned %s: %w", name, err)
		}
		pinned[name] = m
		if err := SameLayout(spec.Maps[name], m); err != nil {
			closePinned()
			return nil, true, fmt.Errorf("adopt: pinned %s (pinned by an incompatible version): %w", name, err)
		}
	}
	for _, name := range a.Required {
		if pinned[name] == nil {
			closePinned()
			return nil, true, fmt.Errorf("adopt: the state pinned under %s lacks %s", a.Dir, name)
		}
	}
	if err := spec.LoadAndAssign(objs, &ebpf.CollectionOptions{MapReplacements: pinned}); err != nil {
		closePinned()
		var ve *ebpf.VerifierError
		if errors.As(err, &ve) {
			return nil, true, fmt.Errorf("adopt: load %s objects on the pinned maps: %+v", a.What, ve)
		}
		return nil, true, fmt.Errorf("adopt: load %s objects on the pinned maps (pinned by an incompatible version?): %w", a.What, err)
	}
	// The loaded objects hold clones, which forget their pins: keep the
	// pinned handles instead, so that Pin finds them pinned already.
	return swapPinned(mapsOf, pinned), true, nil
}

// swapPinned puts the pinned maps in place of the loaded clones in the
// bpf2go maps struct ms points to (closing those) and returns the names
// swapped.
func swapPinned(ms any, pinned map[string]*ebpf.Map) []string {
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

// PinnedMaps are the maps of the bpf2go maps struct ms points to that are
// pinned, by name.
func PinnedMaps(ms any) map[string]*ebpf.Map {
	out := map[string]*ebpf.Map{}
	v := reflect.ValueOf(ms).Elem()
	for i := 0; i < v.NumField(); i++ {
		if m, ok := v.Field(i).Interface().(*ebpf.Map); ok && m != nil && m.IsPinned() {
			out[v.Type().Field(i).Tag.Get("ebpf")] = m
		}
	}
	return out
}

// Attach is a program to attach to a SOCKHASH (stream parser, stream
// verdict, sk_msg verdict).
type Attach struct {
	Program *ebpf.Program
	Type    ebpf.AttachType
	Map     *ebpf.Map
}

// AttachAll attaches each program to its SOCKHASH.
func AttachAll(as []Attach) error {
	for _, a := range as {
		if err := link.RawAttachProgram(link.RawAttachProgramOptions{Target: a.Map.FD(), Program: a.Program, Attach: a.Type}); err != nil {
			return fmt.Errorf("attach %v to %v: %w", a.Type, a.Map, err)
		}
	}
	return nil
}

// TakeOver opens the sockops cgroup links pinned under a.Dir (in their
// pins' order), then makes the kernel run this process's programs: first
// the SOCKHASH programs (as) for sockets added from now on (sockets in
// it keep the programs they were added with, which decide by the same
// maps), then sockops, link by link, each in one step. Nothing is
// detached on the way. On an error the links opened are closed.
func (a Adoption) TakeOver(as []Attach, sockops *ebpf.Program) ([]link.Link, error) {
	links, err := a.TakeOverLinks(as, LinkKind{Prefix: a.LinkPrefix, Name: "sockops program", Program: sockops})
	if err != nil {
		return nil, err
	}
	return links[0], nil
}

// LinkKind is one kind of cgroup link a datapath pins under its
// directory (as Prefix and an index) and the program TakeOverLinks
// switches them to; Name names the program in errors.
type LinkKind struct {
	Prefix, Name string
	Program      *ebpf.Program
}

// TakeOverLinks is TakeOver for datapaths with more than one kind of
// cgroup link (bpf/l7's sockops and egress gate): it opens each kind's
// pinned links under a.Dir (kind by kind, each in its pins' order),
// attaches the SOCKHASH programs (as), then switches the links to their
// kind's program, kind by kind in the order given, link by link, each in
// one step. It returns each kind's links, in the order of kinds. Nothing
// is detached on the way; on an error the links opened are closed.
func (a Adoption) TakeOverLinks(as []Attach, kinds ...LinkKind) ([][]link.Link, error) {
	out := make([][]link.Link, len(kinds))
	pins := make([][]string, len(kinds))
	fail := func(err error) ([][]link.Link, error) {
		for _, ls := range out {
			for _, l := range ls {
				l.Close()
			}
		}
		return nil, err
	}
	for k, kind := range kinds {
		linkPins, err := filepath.Glob(filepath.Join(a.Dir, kind.Prefix+"*"))
		if err != nil {
			return fail(err)
		}
		slices.SortFunc(linkPins, func(x, y string) int { return linkIndex(kind.Prefix, x) - linkIndex(kind.Prefix, y) })
		pins[k] = linkPins
		for _, p := range linkPins {
			l, err := link.LoadPinnedLink(p, nil)
			if err != nil {
				return fail(fmt.Errorf("open pinned link: %w", err))
			}
			out[k] = append(out[k], l)
			if _, err := LinkCgroup(l); err != nil {
				return fail(fmt.Errorf("%s: %w", p, err))
			}
		}
	}
	if err := AttachAll(as); err != nil {
		return fail(err)
	}
	for k, kind := range kinds {
		for i, l := range out[k] {
			if err := l.Update(kind.Program); err != nil {
				return fail(fmt.Errorf("switch %s to this process's %s: %w", pins[k][i], kind.Name, err))
			}
		}
	}
	return out, nil
}

// SameLayout checks that a pinned map's key and value have the layout
// spec gives them: the types the map's BTF names for them (the kernel's
// btf_key_type_id and btf_value_type_id) against the spec's, field by
// field (kind, name, size, members with their names, offsets and types).
// A map without BTF key and value on either side (a SOCKHASH, a ring
// buffer) is checked by its type, sizes, entries and flags alone, as
// cilium/ebpf does when it loads on it.
func SameLayout(spec *ebpf.MapSpec, m *ebpf.Map) error {
	if spec == nil {
		return errors.New("not in this version's spec")
	}
	if err := spec.Compatible(m); err != nil {
		return err
	}
	btfID, keyID, valueID, err := mapBTF(m)
	if err != nil {
		return err
	}
	if btfID == 0 || keyID == 0 || valueID == 0 || spec.Key == nil || spec.Value == nil {
		return nil
	}
	h, err := btf.NewHandleFromID(btf.ID(btfID))
	if err != nil {
		return fmt.Errorf("the pinned map's BTF: %w", err)
	}
	defer h.Close()
	got, err := h.Spec(nil)
	if err != nil {
		return fmt.Errorf("the pinned map's BTF: %w", err)
	}
	for _, kv := range []struct {
		what string
		id   uint32
		want btf.Type
	}{{"key", keyID, spec.Key}, {"value", valueID, spec.Value}} {
		t, err := got.TypeByID(btf.TypeID(kv.id))
		if err != nil {
			return fmt.Errorf("the pinned map's %s type: %w", kv.what, err)
		}
		if g, w := layout(t, 0), layout(kv.want, 0); g != w {
			i := 0
			for i < len(g) && i < len(w) && g[i] == w[i] {
				i++
			}
			i = max(strings.LastIndexAny(g[:i], "{,")+1, 0)
			return fmt.Errorf("%s layout differs: pinned %s, this version %s", kv.what, clip(g[i:]), clip(w[i:]))
		}
	}
	return nil
}

// clip cuts a layout after 80 bytes.
func clip(s string) string {
	if len(s) > 80 {
		return s[:80] + "..."
	}
	return s
}

// mapBTF reads a map's BTF object and key and value type ids
// (BPF_OBJ_GET_INFO_BY_FD; cilium/ebpf's MapInfo does not give the type
// ids).
func mapBTF(m *ebpf.Map) (btfID, keyID, valueID uint32, err error) {
	// struct bpf_map_info up to btf_vmlinux_id, and the attribute of
	// BPF_OBJ_GET_INFO_BY_FD.
	var info [80]byte
	attr := struct {
		fd, infoLen uint32
		info        uint64
	}{uint32(m.FD()), uint32(len(info)), uint64(uintptr(unsafe.Pointer(&info[0])))}
	const objGetInfoByFD = 15 // BPF_OBJ_GET_INFO_BY_FD
	if _, _, errno := unix.Syscall(unix.SYS_BPF, objGetInfoByFD, uintptr(unsafe.Pointer(&attr)), unsafe.Sizeof(attr)); errno != 0 {
		return 0, 0, 0, fmt.Errorf("map info: %w", errno)
	}
	ne := binary.NativeEndian
	return ne.Uint32(info[64:]), ne.Uint32(info[68:]), ne.Uint32(info[72:]), nil
}

// layout describes a type for SameLayout: kinds, names, sizes, members'
// names, offsets and types, down to depth 16 (pointers by their target's
// name alone).
func layout(t btf.Type, depth int) string {
	if depth > 16 {
		return "..."
	}
	members := func(ms []btf.Member) string {
		parts := make([]string, len(ms))
		for i, m := range ms {
			parts[i] = fmt.Sprintf("%s@%d:%d %s", m.Name, m.Offset, m.BitfieldSize, layout(m.Type, depth+1))
		}
		return strings.Join(parts, ", ")
	}
	switch t := t.(type) {
	case *btf.Struct:
		return fmt.Sprintf("struct %s size %d {%s}", t.Name, t.Size, members(t.Members))
	case *btf.Union:
		return fmt.Sprintf("union %s size %d {%s}", t.Name, t.Size, members(t.Members))
	case *btf.Int:
		return fmt.Sprintf("int %s size %d enc %v", t.Name, t.Size, t.Encoding)
	case *btf.Array:
		return fmt.Sprintf("[%d]%s", t.Nelems, layout(t.Type, depth+1))
	case *btf.Typedef:
		return fmt.Sprintf("%s=%s", t.Name, layout(t.Type, depth+1))
	case *btf.Pointer:
		return "pointer to " + t.Target.TypeName()
	case *btf.Enum:
		return fmt.Sprintf("enum %s size %d signed %t", t.Name, t.Size, t.Signed)
	case *btf.Const:
		return "const " + layout(t.Type, depth+1)
	case *btf.Volatile:
		return "volatile " + layout(t.Type, depth+1)
	case *btf.Restrict:
		return "restrict " + layout(t.Type, depth+1)
	case *btf.Void:
		return "void"
	}
	return fmt.Sprintf("%T %s", t, t.TypeName())
}
