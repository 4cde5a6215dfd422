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

// Package datapath owns the kernel side of Palisade's enforcement: it
// loads the eBPF programs of package bpf, pins their maps and links in
// bpffs, adopts what an earlier agent pinned, writes the engine's desired
// map state as a new policy generation and switches to it atomically,
// reads the kernel's state back for drift detection, and decodes verdict
// events and counters. It knows the kernel and engine.MapState, and
// nothing of Kubernetes.
package datapath

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"github.com/palisade-dev/palisade/bpf"
	"github.com/palisade-dev/palisade/internal/engine"
)

// DefaultPinDir is where the agent pins its maps and links.
const DefaultPinDir = "/sys/fs/bpf/palisade"

// Limits are hard capacity limits. A state that exceeds one is refused
// whole, with an error that names the map: the kernel keeps enforcing the
// previous generation.
type Limits struct {
	Endpoints int
	IPCache   int
	Policy    int
}

// DefaultLimits are the limits when Options leave them zero.
var DefaultLimits = Limits{Endpoints: 1 << 16, IPCache: 1 << 20, Policy: 1 << 20}

// Options tune Open.
type Options struct {
	// Limits override DefaultLimits field by field.
	Limits Limits

	// flowCacheSeed keys the flow cache's hash instead of a random seed
	// (tests); flowCacheOff turns the cache off (benchmarks).
	flowCacheSeed uint64
	flowCacheOff  bool
}

// Datapath is the loaded programs and their pinned maps and links. Its
// methods are safe for concurrent use; Apply calls are serialized.
type Datapath struct {
	pinDir string
	limits Limits
	objs   bpf.PalisadeObjects
	inner  map[string]*ebpf.MapSpec // inner map templates by outer map name

	mu         sync.Mutex
	slot       uint32 // the active slot
	generation uint64 // the active generation; 0 before the first Apply
	fenced     bool   // no program can still read the inactive slot

	flowCacheSeed uint64 // the flow cache's hash key
}

// Open loads the programs and opens the maps pinned under pinDir, creating
// and pinning those that are missing. Pinned maps are adopted with their
// contents, so enforcement continues across agent restarts; pinned links
// are switched to the freshly loaded programs atomically. pinDir must be
// on a bpffs mount.
func Open(pinDir string, opts *Options) (*Datapath, error) {
	if opts == nil {
		opts = &Options{}
	}
	if err := checkBPFFS(pinDir); err != nil {
		return nil, err
	}
	for _, d := range []string{mapsDir(pinDir), linksDir(pinDir)} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("create pin dir: %w", err)
		}
	}
	spec, err := bpf.LoadPalisade()
	if err != nil {
		return nil, fmt.Errorf("load bpf spec: %w", err)
	}

	d := &Datapath{pinDir: pinDir, limits: withDefaults(opts.Limits), inner: map[string]*ebpf.MapSpec{}}
	for _, name := range outerMaps {
		d.inner[name] = spec.Maps[name].InnerMap.Copy()
	}
	if err := migrateCounters(spec.Maps["counters"], mapsDir(pinDir)); err != nil {
		return nil, err
	}
	if err := replaceFlowCache(spec.Maps[bpf.PalisadeMapFlowCache], mapsDir(pinDir)); err != nil {
		return nil, err
	}
	if d.flowCacheSeed, err = setFlowCache(spec, opts.flowCacheSeed, opts.flowCacheOff); err != nil {
		return nil, err
	}
	err = spec.LoadAndAssign(&d.objs, &ebpf.CollectionOptions{Maps: ebpf.MapOptions{PinPath: mapsDir(pinDir)}})
	if err != nil {
		var ve *ebpf.VerifierError
		if errors.As(err, &ve) {
			return nil, fmt.Errorf("load bpf programs: %w (verifier: %s)", err, verifierTail(ve))
		}
		if errors.Is(err, ebpf.ErrMapIncompatible) {
			return nil, fmt.Errorf("adopt pinned maps in %s: %w (the pins are from an incompatible version; remove them to start over)", mapsDir(pinDir), err)
		}
		return nil, fmt.Errorf("load bpf objects: %w", err)
	}
	if err := d.adoptState(); err != nil {
		d.objs.Close()
		return nil, err
	}
	// An older agent's IPv4 connections, before and after the links switch.
	if _, err := migrateConntrack4(d.objs.Conntrack, d.objs.Conntrack4); err != nil {
		d.objs.Close()
		return nil, err
	}
	if err := d.adoptLinks(); err != nil {
		d.objs.Close()
		return nil, err
	}
	if _, err := migrateConntrack4(d.objs.Conntrack, d.objs.Conntrack4); err != nil {
		d.objs.Close()
		return nil, err
	}
	return d, nil
}

// migrateCounters replaces a pinned counters map whose size is not this
// version's (an older agent's, with fewer counters) with one of the right
// size that carries the old counts over: counter indexes never change
// meaning, so counters survive the upgrade instead of refusing the pins.
// Links still run the older programs on the old map until adoptLinks
// re-points them, a moment later; what they count meanwhile is lost.
func migrateCounters(spec *ebpf.MapSpec, dir string) error {
	pin := filepath.Join(dir, spec.Name)
	old, err := ebpf.LoadPinnedMap(pin, nil)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("open pinned counters: %w", err)
	}
	defer old.Close()
	if old.MaxEntries() == spec.MaxEntries || old.Type() != spec.Type || old.KeySize() != spec.KeySize ||
		old.ValueSize() != spec.ValueSize {
		// Either compatible, or not a layout this migrates: LoadAndAssign decides.
		return nil
	}
	ns := spec.Copy()
	ns.Pinning = ebpf.PinNone
	m, err := ebpf.NewMap(ns)
	if err != nil {
		return fmt.Errorf("migrate counters: %w", err)
	}
	defer m.Close()
	var per []uint64
	for i := range min(old.MaxEntries(), spec.MaxEntries) {
		if err := old.Lookup(i, &per); err != nil {
			return fmt.Errorf("migrate counters: read %d: %w", i, err)
		}
		if err := m.Put(i, per); err != nil {
			return fmt.Errorf("migrate counters: write %d: %w", i, err)
		}
	}
	// Pin beside the old map, then rename over it: the pin is never absent.
	tmp := pin + "_new" // bpffs refuses names with a dot
	os.Remove(tmp)
	if err := m.Pin(tmp); err != nil {
		return fmt.Errorf("migrate counters: %w", err)
	}
	if err := os.Rename(tmp, pin); err != nil {
		m.Unpin()
		return fmt.Errorf("migrate counters: %w", err)
	}
	return nil
}

func withDefaults(l Limits) Limits {
	if l.Endpoints == 0 {
		l.Endpoints = DefaultLimits.Endpoints
	}
	if l.IPCache == 0 {
		l.IPCache = DefaultLimits.IPCache
	}
	if l.Policy == 0 {
		l.Policy = DefaultLimits.Policy
	}
	return l
}

func mapsDir(pinDir string) string  { return filepath.Join(pinDir, "maps") }
func linksDir(pinDir string) string { return filepath.Join(pinDir, "links") }

// checkBPFFS refuses a pin dir that is not on bpffs: pins elsewhere fail,
// and pins on a bpffs that does not persist would be lost with the agent.
func checkBPFFS(pinDir string) error {
	dir := pinDir
	for {
		var st unix.Statfs_t
		err := unix.Statfs(dir, &st)
		if err == nil {
			if st.Type != unix.BPF_FS_MAGIC {
				return fmt.Errorf("pin dir %s is not on a bpffs mount (mount -t bpf bpf /sys/fs/bpf)", pinDir)
			}
			return nil
		}
		if !errors.Is(err, unix.ENOENT) {
			return fmt.Errorf("pin dir %s: %w", pinDir, err)
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return fmt.Errorf("pin dir %s: %w", pinDir, err)
		}
		dir = parent
	}
}

func verifierTail(ve *ebpf.VerifierError) string {
	log := ve.Log
	if len(log) > 5 {
		log = log[len(log)-5:]
	}
	return fmt.Sprint(log)
}

// adoptState reads the active slot and generation of pinned maps.
func (d *Datapath) adoptState() error {
	var a bpf.PalisadeActiveSlot
	if err := d.objs.Active.Lookup(uint32(0), &a); err != nil {
		return fmt.Errorf("read active slot: %w", err)
	}
	d.slot = a.Slot & 1
	if err := d.objs.Generations.Lookup(d.slot, &d.generation); err != nil {
		return fmt.Errorf("read generation: %w", err)
	}
	return nil
}

// Generation returns the policy generation that packets see; 0 before the
// first Apply.
func (d *Datapath) Generation() uint64 {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.generation
}

// SetEventsAllowed turns events for every allowed packet on or off.
// Denied packets, new audited connections and new allowed connections
// (the packet that creates the conntrack entry) are always reported;
// every allowed packet only on request (tracing, tests), since each
// would make one and none would take the conntrack fast path.
func (d *Datapath) SetEventsAllowed(on bool) error {
	var s bpf.PalisadeRuntimeSettings
	if on {
		s.Events = 1 // EVENTS_ALLOWED
	}
	if err := d.objs.Settings.Update(uint32(0), s, ebpf.UpdateAny); err != nil {
		return fmt.Errorf("write settings: %w", err)
	}
	return nil
}

// Close releases the agent's handles. Pinned maps and links stay, and so
// does enforcement.
func (d *Datapath) Close() error {
	return d.objs.Close()
}

// Remove detaches every pinned link and removes every pin: enforcement
// stops. For uninstalling and tests.
func (d *Datapath) Remove() error {
	var errs []error
	links, _ := os.ReadDir(linksDir(d.pinDir))
	for _, l := range links {
		errs = append(errs, os.Remove(filepath.Join(linksDir(d.pinDir), l.Name())))
	}
	for _, m := range []*ebpf.Map{d.objs.GenEndpoints, d.objs.GenIpcache, d.objs.GenIpcacheLpm, d.objs.GenPolicy,
		d.objs.GenPolicyLpm, d.objs.Active, d.objs.Settings, d.objs.Generations, d.objs.Conntrack, d.objs.Conntrack4, d.objs.Fragments,
		d.objs.Events, d.objs.Counters, d.objs.GenDnsLists, d.objs.GenDnsNext, d.objs.GenDnsAccept,
		d.objs.DnsSettings, d.objs.DnsScratch, d.objs.PktScratch, d.objs.GenFqdnNext, d.objs.GenFqdnAccept,
		d.objs.GenFqdnSelectors, d.objs.FqdnNames, d.objs.FqdnAddrs, d.objs.FqdnPending, d.objs.FqdnSettings,
		d.objs.FqdnScratch, d.objs.FlowCache} {
		errs = append(errs, m.Unpin())
	}
	errs = append(errs, os.Remove(linksDir(d.pinDir)), os.Remove(mapsDir(d.pinDir)), os.Remove(d.pinDir))
	errs = append(errs, d.Close())
	return errors.Join(errs...)
}

// program returns the host interfaces' program that decides dir: a local
// address without an endpoint entry passes.
func (d *Datapath) program(dir engine.Direction) *ebpf.Program {
	if dir == engine.Egress {
		return d.objs.PalisadeFromEndpoint
	}
	return d.objs.PalisadeToEndpoint
}

// workloadProgram returns the workload interfaces' program that decides
// dir: a local address without an endpoint entry is dropped, but those
// that are never a workload's own (docs/datapath.md).
func (d *Datapath) workloadProgram(dir engine.Direction) *ebpf.Program {
	if dir == engine.Egress {
		return d.objs.PalisadeFromWorkload
	}
	return d.objs.PalisadeToWorkload
}

// programAt returns the program that runs on the hook when it decides
// dir: a workload's program when the hook faces a workload, the host's
// otherwise (facesWorkload).
func (d *Datapath) programAt(hook Hook, dir engine.Direction) *ebpf.Program {
	if facesWorkload(hook, dir) {
		return d.workloadProgram(dir)
	}
	return d.program(dir)
}
