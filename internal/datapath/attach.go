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
	"strconv"
	"strings"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"

	"github.com/palisade-dev/palisade/internal/engine"
)

// Hook is a TCX attach point of an interface.
type Hook uint8

// The TCX hooks.
const (
	HookIngress Hook = iota
	HookEgress
)

func (h Hook) String() string {
	if h == HookEgress {
		return "egress"
	}
	return "ingress"
}

func (h Hook) attachType() ebpf.AttachType {
	if h == HookEgress {
		return ebpf.AttachTCXEgress
	}
	return ebpf.AttachTCXIngress
}

// AttachWorkload attaches to the host side of a workload's veth: what the
// workload sends arrives on the veth's ingress and is its egress; what it
// receives leaves through the veth's egress and is its ingress.
func (d *Datapath) AttachWorkload(ifindex int) error {
	return errors.Join(d.Attach(ifindex, HookIngress, engine.Egress), d.Attach(ifindex, HookEgress, engine.Ingress))
}

// AttachHost attaches to a host interface for the host firewall: what
// arrives is the host's ingress, what leaves its egress.
func (d *Datapath) AttachHost(ifindex int) error {
	return errors.Join(d.Attach(ifindex, HookIngress, engine.Ingress), d.Attach(ifindex, HookEgress, engine.Egress))
}

// Attach runs the program that decides dir on the hook of the interface,
// through a TCX link pinned under the pin dir, so that it outlives the
// agent. Attaching again replaces the program atomically.
//
// A hook that decides the direction opposite to its own faces a workload
// (the endpoint is at the interface's other end, as AttachWorkload sets
// up) and runs the workload program, which fails closed: a packet whose
// local address has no endpoint entry, or that comes before the first
// generation, is dropped unless the address can never be a workload's own
// (link-local, multicast, broadcast, unspecified). A hook that decides its
// own direction (AttachHost) runs the host program, which passes such a
// packet. The link pin's name holds hook and direction, so adopting,
// checking and repairing a link all know which program belongs on it.
func (d *Datapath) Attach(ifindex int, hook Hook, dir engine.Direction) error {
	prog := d.programAt(hook, dir)
	pin := linkPin(d.pinDir, ifindex, hook, dir)
	if old, err := d.findLink(ifindex, hook); err == nil && old != "" {
		l, err := link.LoadPinnedLink(old, nil)
		if err == nil {
			defer l.Close()
			if err := l.Update(prog); err != nil {
				return fmt.Errorf("attach %s program to %s of ifindex %d: update link: %w", dir, hook, ifindex, err)
			}
			if old != pin {
				return os.Rename(old, pin)
			}
			return nil
		}
		os.Remove(old)
	}
	l, err := link.AttachTCX(link.TCXOptions{Interface: ifindex, Program: prog, Attach: hook.attachType()})
	if err != nil {
		return fmt.Errorf("attach %s program to %s of ifindex %d: %w", dir, hook, ifindex, err)
	}
	defer l.Close()
	if err := l.Pin(pin); err != nil {
		return fmt.Errorf("pin link of ifindex %d %s: %w", ifindex, hook, err)
	}
	return nil
}

// Detach removes Palisade's program from the hook of the interface.
func (d *Datapath) Detach(ifindex int, hook Hook) error {
	p, err := d.findLink(ifindex, hook)
	if err != nil || p == "" {
		return err
	}
	l, err := link.LoadPinnedLink(p, nil)
	if err != nil {
		return fmt.Errorf("detach ifindex %d %s: %w", ifindex, hook, err)
	}
	defer l.Close()
	if err := l.Unpin(); err != nil {
		return fmt.Errorf("detach ifindex %d %s: %w", ifindex, hook, err)
	}
	return nil
}

// Attachment is one pinned link.
type Attachment struct {
	Ifindex   int
	Hook      Hook
	Direction engine.Direction
}

// Workload reports whether the link faces a workload (AttachWorkload) and
// runs the program that fails closed, rather than a host interface's.
func (a Attachment) Workload() bool { return facesWorkload(a.Hook, a.Direction) }

// facesWorkload reports whether a hook that decides dir faces a workload:
// on the host side of a workload's veth, the ingress hook decides the
// workload's egress and the egress hook its ingress.
func facesWorkload(hook Hook, dir engine.Direction) bool {
	return (hook == HookIngress) == (dir == engine.Egress)
}

// Attachments lists the pinned links.
func (d *Datapath) Attachments() ([]Attachment, error) {
	ents, err := os.ReadDir(linksDir(d.pinDir))
	if err != nil {
		return nil, fmt.Errorf("list links: %w", err)
	}
	var out []Attachment
	for _, e := range ents {
		if a, ok := parseLinkPin(e.Name()); ok {
			out = append(out, a)
		}
	}
	return out, nil
}

// adoptLinks points every pinned link at the programs just loaded; a link
// whose interface is gone is unpinned. A workload's link of an older agent,
// whatever program it ran, gets the workload program.
func (d *Datapath) adoptLinks() error {
	atts, err := d.Attachments()
	if err != nil {
		return err
	}
	for _, a := range atts {
		p := linkPin(d.pinDir, a.Ifindex, a.Hook, a.Direction)
		l, err := link.LoadPinnedLink(p, nil)
		if err != nil {
			return fmt.Errorf("adopt link %s: %w", p, err)
		}
		err = l.Update(d.programAt(a.Hook, a.Direction))
		if err != nil {
			// A TCX link whose device was removed can no longer be updated.
			if uerr := l.Unpin(); uerr != nil {
				l.Close()
				return fmt.Errorf("adopt link %s: %w; unpin: %w", p, err, uerr)
			}
		}
		l.Close()
	}
	return nil
}

func linkPin(pinDir string, ifindex int, hook Hook, dir engine.Direction) string {
	return filepath.Join(linksDir(pinDir), fmt.Sprintf("tcx_%d_%s_%s", ifindex, hook, dir))
}

func parseLinkPin(name string) (Attachment, bool) {
	f := strings.Split(name, "_")
	if len(f) != 4 || f[0] != "tcx" {
		return Attachment{}, false
	}
	ifindex, err := strconv.Atoi(f[1])
	if err != nil {
		return Attachment{}, false
	}
	a := Attachment{Ifindex: ifindex}
	switch f[2] {
	case "ingress":
		a.Hook = HookIngress
	case "egress":
		a.Hook = HookEgress
	default:
		return Attachment{}, false
	}
	switch f[3] {
	case "ingress":
		a.Direction = engine.Ingress
	case "egress":
		a.Direction = engine.Egress
	default:
		return Attachment{}, false
	}
	return a, true
}

func (d *Datapath) findLink(ifindex int, hook Hook) (string, error) {
	atts, err := d.Attachments()
	if err != nil {
		return "", err
	}
	for _, a := range atts {
		if a.Ifindex == ifindex && a.Hook == hook {
			return linkPin(d.pinDir, a.Ifindex, a.Hook, a.Direction), nil
		}
	}
	return "", nil
}
