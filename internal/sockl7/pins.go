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
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
)

// Pins are what a datapath pins under one directory of a bpffs: its maps
// by pin name, and its sockops cgroup links, pinned as LinkPrefix and
// their index ("kafka_sockops_link_0", ...).
type Pins struct {
	Maps       map[string]*ebpf.Map
	Links      []link.Link
	LinkPrefix string
	// What names the datapath in errors ("kafka", "l7").
	What string
	// More are further kinds of cgroup links (bpf/l7's egress gate),
	// pinned after the sockops links as their Prefix and index.
	More []LinkSet
}

// LinkSet is one kind of cgroup link: the links, pinned as Prefix and
// their index; Name names the kind in errors ("egress gate").
type LinkSet struct {
	Prefix, Name string
	Links        []link.Link
}

// sets are the sockops links, then More.
func (p Pins) sets() []LinkSet {
	return append([]LinkSet{{Prefix: p.LinkPrefix, Name: "sockops", Links: p.Links}}, p.More...)
}

func linkPin(dir, prefix string, i int) string {
	return filepath.Join(dir, prefix+strconv.Itoa(i))
}

// LinkPin is the pin of link i under dir.
func (p Pins) LinkPin(dir string, i int) string {
	return linkPin(dir, p.LinkPrefix, i)
}

// Pin pins every map and link under dir that is not pinned yet (a map
// pinned already, by this process or adopted, and a link whose pin
// exists are left as they are): after the process's handles are closed,
// the kernel keeps enforcing with the pinned state.
func (p Pins) Pin(dir string) error {
	for _, name := range slices.Sorted(maps.Keys(p.Maps)) {
		m := p.Maps[name]
		if m.IsPinned() {
			continue
		}
		if err := m.Pin(filepath.Join(dir, name)); err != nil {
			return fmt.Errorf("pin %s: %w", name, err)
		}
	}
	for _, set := range p.sets() {
		for i, l := range set.Links {
			lp := linkPin(dir, set.Prefix, i)
			if _, err := os.Stat(lp); err == nil {
				continue
			}
			if err := l.Pin(lp); err != nil {
				return fmt.Errorf("pin %s %s link: %w", p.What, set.Name, err)
			}
		}
	}
	return nil
}

// Missing returns the pins under dir that Pin made (or adoption took
// over) and that are gone: without them the next process cannot adopt
// the state, and the kernel frees what only the pin held once this
// process exits.
func (p Pins) Missing(dir string) []string {
	var out []string
	for _, name := range slices.Sorted(maps.Keys(p.Maps)) {
		if _, err := os.Stat(filepath.Join(dir, name)); errors.Is(err, fs.ErrNotExist) {
			out = append(out, filepath.Join(dir, name))
		}
	}
	for _, set := range p.sets() {
		for i := range set.Links {
			if lp := linkPin(dir, set.Prefix, i); !exists(lp) {
				out = append(out, lp)
			}
		}
	}
	return out
}

func exists(p string) bool {
	_, err := os.Stat(p)
	return !errors.Is(err, fs.ErrNotExist)
}

// Repair pins again what Missing finds missing under dir.
func (p Pins) Repair(dir string) error {
	var errs []error
	for name, m := range p.Maps {
		if !exists(filepath.Join(dir, name)) {
			errs = append(errs, m.Unpin()) // forget the path: Pin pins it again
		}
	}
	for _, set := range p.sets() {
		for i, l := range set.Links {
			if !exists(linkPin(dir, set.Prefix, i)) {
				errs = append(errs, l.Unpin())
			}
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("repair %s pins: %w", p.What, err)
	}
	return p.Pin(dir)
}

// LinkCgroup is the id of the cgroup a sockops link attaches to.
func LinkCgroup(l link.Link) (uint64, error) {
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

// HasCgroup reports whether one of links attaches to the cgroup v2
// directory path.
func HasCgroup(links []link.Link, path string) bool {
	var st syscall.Stat_t
	if err := syscall.Stat(path, &st); err != nil {
		return false
	}
	for _, l := range links {
		if id, err := LinkCgroup(l); err == nil && id == st.Ino {
			return true
		}
	}
	return false
}

// linkIndex is the index a link pin's name ends in.
func linkIndex(prefix, pin string) int {
	n, err := strconv.Atoi(strings.TrimPrefix(filepath.Base(pin), prefix))
	if err != nil {
		return 1 << 30
	}
	return n
}
