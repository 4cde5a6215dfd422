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
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"

	"github.com/palisade-dev/palisade/internal/engine"
)

// Problem is one way the kernel differs from what the agent set up: a
// missing pin, or a hook that no longer runs Palisade's program.
type Problem struct {
	// Pin is true for a removed pin, false for a hook problem.
	Pin bool
	// What says what differs, for people.
	What string
}

// pinned returns the pinned maps by pin name.
func (d *Datapath) pinned() map[string]*ebpf.Map {
	out := map[string]*ebpf.Map{}
	v := reflect.ValueOf(d.objs.PalisadeMaps)
	t := v.Type()
	for i := range t.NumField() {
		if m, ok := v.Field(i).Interface().(*ebpf.Map); ok && m != nil {
			out[t.Field(i).Tag.Get("ebpf")] = m
		}
	}
	return out
}

// CheckPins returns the map pins that are missing under the pin dir. A
// removed pin changes nothing for packets now, but the next agent could
// not adopt the map and would start from an empty one.
func (d *Datapath) CheckPins() []Problem {
	var out []Problem
	for name := range d.pinned() {
		p := filepath.Join(mapsDir(d.pinDir), name)
		if _, err := os.Stat(p); err != nil {
			out = append(out, Problem{Pin: true, What: fmt.Sprintf("map pin %s is missing", p)})
		}
	}
	slices.SortFunc(out, func(a, b Problem) int { return strings.Compare(a.What, b.What) })
	return out
}

// RepairPins pins again every map whose pin is missing.
func (d *Datapath) RepairPins() error {
	var errs []error
	for name, m := range d.pinned() {
		p := filepath.Join(mapsDir(d.pinDir), name)
		if _, err := os.Stat(p); err == nil {
			continue
		}
		// The map believes it is pinned at p already, so pin a clone of
		// its handle: the same kernel object.
		c, err := m.Clone()
		if err != nil {
			errs = append(errs, fmt.Errorf("repin %s: %w", p, err))
			continue
		}
		if err := os.MkdirAll(mapsDir(d.pinDir), 0o700); err != nil {
			errs = append(errs, err)
		} else if err := c.Pin(p); err != nil {
			errs = append(errs, fmt.Errorf("repin %s: %w", p, err))
		}
		c.Close()
	}
	return errors.Join(errs...)
}

// CheckWorkload reports what differs from Palisade's programs attached to
// both hooks of a workload's host-side interface: a removed link pin, a
// link detached from the interface, or a link running another program.
func (d *Datapath) CheckWorkload(ifindex int) []Problem {
	return d.checkHooks(ifindex, workloadDirs)
}

// CheckHost is CheckWorkload for a host interface (host firewall).
func (d *Datapath) CheckHost(ifindex int) []Problem {
	return d.checkHooks(ifindex, hostDirs)
}

// The direction each hook decides, on a workload's host-side interface
// and on a host interface.
var (
	workloadDirs = [2]engine.Direction{HookIngress: engine.Egress, HookEgress: engine.Ingress}
	hostDirs     = [2]engine.Direction{HookIngress: engine.Ingress, HookEgress: engine.Egress}
)

func (d *Datapath) checkHooks(ifindex int, dirs [2]engine.Direction) []Problem {
	var out []Problem
	for _, hook := range []Hook{HookIngress, HookEgress} {
		dir := dirs[hook]
		pin := linkPin(d.pinDir, ifindex, hook, dir)
		l, err := link.LoadPinnedLink(pin, nil)
		if errors.Is(err, os.ErrNotExist) {
			out = append(out, Problem{Pin: true, What: fmt.Sprintf("link pin %s is missing: the %s program is not attached to %s of ifindex %d", pin, dir, hook, ifindex)})
			continue
		}
		if err != nil {
			out = append(out, Problem{What: fmt.Sprintf("ifindex %d %s: open link %s: %v", ifindex, hook, pin, err)})
			continue
		}
		if p := d.checkLink(l, ifindex, hook, dir); p != "" {
			out = append(out, Problem{What: fmt.Sprintf("ifindex %d %s: %s", ifindex, hook, p)})
		}
		l.Close()
	}
	return out
}

const msgDetached = "the link was detached from the interface"

// checkLink says how l differs from a TCX link on ifindex running the
// program that decides dir on the hook, or "" if it does not. On a
// workload's interface, the host program (which passes what has no
// endpoint entry) is a difference like any other program.
func (d *Datapath) checkLink(l link.Link, ifindex int, hook Hook, dir engine.Direction) string {
	info, err := l.Info()
	if err != nil {
		return fmt.Sprintf("link info: %v", err)
	}
	tcx := info.TCX()
	if tcx == nil || int(tcx.Ifindex) != ifindex {
		return msgDetached
	}
	want, err := d.programAt(hook, dir).Info()
	if err != nil {
		return fmt.Sprintf("program info: %v", err)
	}
	wantID, _ := want.ID()
	if info.Program != wantID {
		return fmt.Sprintf("the link runs program %d, not Palisade's %s %s program %d", info.Program, side(hook, dir), dir, wantID)
	}
	return ""
}

// side names the program family that runs on a hook deciding dir.
func side(hook Hook, dir engine.Direction) string {
	if facesWorkload(hook, dir) {
		return "workload"
	}
	return "host"
}

// RepairWorkload attaches Palisade's programs to the workload's interface
// again, replacing links that were detached or changed.
func (d *Datapath) RepairWorkload(ifindex int) error {
	d.dropDetached(ifindex, workloadDirs)
	return retryExists(func() error { return d.AttachWorkload(ifindex) })
}

// RepairHost is RepairWorkload for a host interface.
func (d *Datapath) RepairHost(ifindex int) error {
	d.dropDetached(ifindex, hostDirs)
	return retryExists(func() error { return d.AttachHost(ifindex) })
}

// retryExists retries attach for up to a second while the kernel says the
// program is still attached: a link whose last pin was just removed is
// released asynchronously, and attaching before that fails with EEXIST.
func retryExists(attach func() error) error {
	err := attach()
	for i := 0; i < 20 && errors.Is(err, unix.EEXIST); i++ {
		time.Sleep(50 * time.Millisecond)
		err = attach()
	}
	return err
}

// dropDetached unpins links that no longer hang on their interface: a
// detached link cannot be updated, so it is attached anew.
func (d *Datapath) dropDetached(ifindex int, dirs [2]engine.Direction) {
	for _, hook := range []Hook{HookIngress, HookEgress} {
		pin := linkPin(d.pinDir, ifindex, hook, dirs[hook])
		l, err := link.LoadPinnedLink(pin, nil)
		if err != nil {
			continue
		}
		if d.checkLink(l, ifindex, hook, dirs[hook]) == msgDetached {
			l.Unpin()
		}
		l.Close()
	}
}

// DetachWorkload removes Palisade's programs from both hooks of the
// interface.
func (d *Datapath) DetachWorkload(ifindex int) error {
	return errors.Join(d.Detach(ifindex, HookIngress), d.Detach(ifindex, HookEgress))
}

// Usage is the fill of one map: entries and capacity.
type Usage struct {
	Name       string
	Entries    int
	MaxEntries int
}

// Usage returns the fill of the active generation's maps against the
// capacity limits, from a state read back or about to be written.
func (d *Datapath) Usage(s *engine.MapState) []Usage {
	return []Usage{
		{Name: "endpoints", Entries: len(s.Endpoints), MaxEntries: d.limits.Endpoints},
		{Name: "ipcache", Entries: len(s.IPCache), MaxEntries: d.limits.IPCache},
		{Name: "policy", Entries: len(s.Policy), MaxEntries: d.limits.Policy},
	}
}
