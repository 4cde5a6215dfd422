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

package tracing

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/btf"
	"github.com/cilium/ebpf/link"
	"github.com/go-logr/logr"
	"golang.org/x/sys/unix"

	v1 "github.com/palisade-dev/palisade/api/v1alpha1"
	bt "github.com/palisade-dev/palisade/bpf/tracing"
	"github.com/palisade-dev/palisade/internal/tracing/hooks"
)

// Options configure a Manager.
type Options struct {
	// PinDir is where units and the shared base are pinned; it must be
	// on bpffs, e.g. /sys/fs/bpf/palisade/tracing.
	PinDir string
	// BTF is the kernel's BTF; nil loads the running kernel's.
	BTF *btf.Spec
	Log logr.Logger
	// ProtectedBinaries extends ProtectedBinaries.
	ProtectedBinaries []string
}

// Manager runs tracing policies in the kernel: it loads the shared base
// (process tracking, the process map, the protected maps, the ring
// buffer and counters), then one unit per policy. Close leaves all of it
// pinned, so enforcement goes on while the agent is down.
type Manager struct {
	opts   Options
	log    logr.Logger
	spec   *ebpf.CollectionSpec
	kernel *hooks.Kernel

	mu        sync.Mutex
	base      map[string]*ebpf.Map
	baseLinks map[string]link.Link
	units     map[string]*unit
	// plans resolve the ids of events; replaced whole on Apply.
	plans sync.Map // uint32 -> *plan

	// noTrampolines makes fentry/fexit hooks take the kprobe path, as on
	// a kernel without BPF trampolines (tests).
	noTrampolines bool

	readerMu sync.Mutex
	// decodeErrs counts records the reader dropped, by reason.
	decodeErrs map[string]uint64
}

var errClosed = errors.New("tracing: the manager is closed")

// unit is one policy as loaded.
type unit struct {
	plan    *plan
	dir     string // PinDir/units/<safe key>/<spec hash>
	maps    map[string]*ebpf.Map
	progs   map[uint32]*ebpf.Program
	links   map[uint32]link.Link
	results []HookResult
	adopted bool
}

var (
	baseMaps = []string{"procs", "protected_pids", "protected_names", "events", "counters", "heap", "ratelimit"}
	unitMaps = []string{"hooks", "selectors", "vals_int", "vals_str", "vals_lpm", "vals_addr", "scope"}
	trackers = map[string]string{"track_exec": "sched_process_exec", "track_fork": "sched_process_fork", "track_exit": "sched_process_exit"}
)

// Open loads the shared base, or adopts it from PinDir.
func Open(opts Options) (*Manager, error) {
	if opts.PinDir == "" {
		return nil, errors.New("tracing: no pin dir")
	}
	if err := os.MkdirAll(opts.PinDir, 0o700); err != nil {
		return nil, fmt.Errorf("tracing: pin dir: %w", err)
	}
	var st unix.Statfs_t
	if err := unix.Statfs(opts.PinDir, &st); err != nil {
		return nil, fmt.Errorf("tracing: pin dir: %w", err)
	}
	if st.Type != unix.BPF_FS_MAGIC {
		return nil, fmt.Errorf("tracing: pin dir %s is not on bpffs (file system magic %#x); mount one with `mount -t bpf bpf <dir>`", opts.PinDir, st.Type)
	}
	spec, err := bt.LoadTracing()
	if err != nil {
		return nil, fmt.Errorf("tracing: load object: %w", err)
	}
	k, err := hooks.LoadKernel()
	if err != nil {
		return nil, fmt.Errorf("tracing: %w", err)
	}
	if opts.BTF != nil {
		k.BTF = opts.BTF
	} else {
		opts.BTF = k.BTF
	}
	m := &Manager{opts: opts, log: opts.Log, spec: spec, kernel: k, base: map[string]*ebpf.Map{},
		baseLinks: map[string]link.Link{}, units: map[string]*unit{}}
	if err := m.openBase(); err != nil {
		m.Close()
		return nil, err
	}
	if err := m.seedProcs(); err != nil {
		m.log.Info("tracing: seeding processes from /proc failed", "error", err.Error())
	}
	return m, nil
}

func (m *Manager) baseDir() string  { return filepath.Join(m.opts.PinDir, "base-"+abi) }
func (m *Manager) unitsDir() string { return filepath.Join(m.opts.PinDir, "units-"+abi) }

func (m *Manager) openBase() error {
	dir := m.baseDir()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("tracing: base pin dir: %w", err)
	}
	for _, name := range baseMaps {
		mp, err := pinnedMap(m.spec.Maps[name], dir)
		if err != nil {
			return fmt.Errorf("tracing: base map %s: %w", name, err)
		}
		m.base[name] = mp
	}
	names := map[string][]byte{}
	for _, n := range append(slices.Clone(ProtectedBinaries), m.opts.ProtectedBinaries...) {
		names[string(protKey(n))] = []byte{1}
	}
	if _, err := syncMap(m.base["protected_names"], names, false); err != nil {
		return fmt.Errorf("tracing: protected binaries: %w", err)
	}
	_, err := m.ensureTrackers()
	return err
}

// ensureTrackers adopts or attaches the process tracking programs and
// reports what it had to repair.
func (m *Manager) ensureTrackers() ([]string, error) {
	var repaired []string
	for prog, tp := range trackers {
		pin := filepath.Join(m.baseDir(), "link_"+prog)
		if l, ok := m.baseLinks[prog]; ok {
			if _, err := os.Stat(pin); err == nil && linkAlive(l) {
				continue
			}
			l.Close()
			delete(m.baseLinks, prog)
		}
		if l, err := link.LoadPinnedLink(pin, nil); err == nil {
			if linkAlive(l) {
				m.baseLinks[prog] = l
				continue
			}
			l.Unpin()
			l.Close()
		}
		p, err := m.loadProgram(prog, tp, m.base)
		if err != nil {
			return repaired, fmt.Errorf("tracing: process tracker %s: %w", prog, err)
		}
		l, err := link.AttachTracing(link.TracingOptions{Program: p, AttachType: ebpf.AttachTraceRawTp})
		p.Close()
		if err != nil {
			return repaired, fmt.Errorf("tracing: attach process tracker %s: %w", prog, err)
		}
		os.Remove(pin)
		if err := l.Pin(pin); err != nil {
			l.Close()
			return repaired, fmt.Errorf("tracing: pin process tracker %s: %w", prog, err)
		}
		m.baseLinks[prog] = l
		repaired = append(repaired, prog)
	}
	return repaired, nil
}

// linkAlive says whether a link is still attached to its program.
func linkAlive(l link.Link) bool {
	info, err := l.Info()
	return err == nil && info.Program != 0
}

// pinnedMap creates a map pinned by name in dir, or opens the pinned one.
func pinnedMap(spec *ebpf.MapSpec, dir string) (*ebpf.Map, error) {
	s := spec.Copy()
	s.Pinning = ebpf.PinByName
	return ebpf.NewMapWithOptions(s, ebpf.MapOptions{PinPath: dir})
}

// loadProgram loads one program of the object with its maps replaced.
func (m *Manager) loadProgram(name, attachTo string, maps map[string]*ebpf.Map) (*ebpf.Program, error) {
	ps := m.spec.Programs[name].Copy()
	ps.AttachTo = attachTo
	all := map[string]*ebpf.Map{}
	for k, v := range m.base {
		all[k] = v
	}
	for k, v := range maps {
		all[k] = v
	}
	specs := map[string]*ebpf.MapSpec{}
	for k := range all {
		specs[k] = m.spec.Maps[k]
	}
	cs := &ebpf.CollectionSpec{Maps: specs, Programs: map[string]*ebpf.ProgramSpec{name: ps}, Types: m.spec.Types, ByteOrder: m.spec.ByteOrder}
	coll, err := ebpf.NewCollectionWithOptions(cs, ebpf.CollectionOptions{
		MapReplacements: all,
		Programs:        ebpf.ProgramOptions{KernelTypes: m.opts.BTF},
	})
	if err != nil {
		return nil, err
	}
	defer coll.Close()
	return coll.DetachProgram(name), nil
}

// Apply makes the kernel run exactly ps.
func (m *Manager) Apply(ctx context.Context, ps []Policy) []Result {
	m.mu.Lock()
	defer m.mu.Unlock()
	results := make([]Result, len(ps))
	if len(m.base) == 0 {
		for i, p := range ps {
			results[i] = Result{Key: p.Key, Err: errClosed}
		}
		return results
	}
	want := map[string]bool{}
	ids := map[uint32]string{}
	for i, p := range ps {
		results[i].Key = p.Key
		if p.Key == "" {
			results[i].Err = errors.New("tracing: a unit without a key")
			continue
		}
		if other, ok := ids[unitID(p.Key)]; ok {
			results[i].Err = fmt.Errorf("tracing: unit %q has the id of unit %q; rename one", p.Key, other)
			continue
		}
		if want[p.Key] {
			results[i].Err = fmt.Errorf("tracing: unit %q is listed twice", p.Key)
			continue
		}
		ids[unitID(p.Key)] = p.Key
		want[safeName(p.Key)] = true
		want[p.Key] = true
		results[i] = m.applyOne(ctx, p)
	}
	// Units not in ps: detached and unpinned.
	for key, u := range m.units {
		if !want[key] {
			u.remove(filepath.Dir(u.dir))
			m.plans.Delete(u.plan.id)
			delete(m.units, key)
		}
	}
	// Pins of another ABI: their units were just replaced by this one's.
	if all, err := os.ReadDir(m.opts.PinDir); err == nil {
		for _, e := range all {
			if n := e.Name(); (strings.HasPrefix(n, "units-") || strings.HasPrefix(n, "base-")) && n != "units-"+abi && n != "base-"+abi {
				removeDir(filepath.Join(m.opts.PinDir, n))
			}
		}
	}
	entries, _ := os.ReadDir(m.unitsDir())
	for _, e := range entries {
		if !want[e.Name()] {
			if err := removeDir(filepath.Join(m.unitsDir(), e.Name())); err != nil {
				m.log.Error(err, "tracing: remove a stale unit", "dir", e.Name())
			}
		}
	}
	return results
}

func (m *Manager) applyOne(ctx context.Context, p Policy) Result {
	res := Result{Key: p.Key}
	if len(p.Cgroups) > MaxScopeCgroups {
		res.Err = fmt.Errorf("tracing: %d cgroups in scope, at most %d", len(p.Cgroups), MaxScopeCgroups)
		return res
	}
	pl := compile(m.kernel, p, hostNamespace)
	old := m.units[p.Key]
	keyDir := filepath.Join(m.unitsDir(), safeName(p.Key))
	dir := filepath.Join(keyDir, pl.hash)
	var u *unit
	if old != nil && old.dir == dir {
		u = old
		u.plan = pl
	} else {
		nu, err := m.openUnit(pl, dir)
		if err != nil {
			res.Err = err
			if old != nil {
				res.Hooks = old.results
			}
			if nu != nil {
				nu.remove(dir)
			}
			return res
		}
		u = nu
	}
	if err := u.writeScope(p); err != nil {
		res.Err = err
		return res
	}
	m.ensureHooks(u)
	loaded := 0
	for _, h := range u.results {
		if h.State == HookLoaded {
			loaded++
		}
	}
	res.Hooks = u.results
	res.Adopted = u.adopted || u == old
	res.Loaded = loaded == len(u.results)
	if loaded == 0 && len(u.results) > 0 && u != old {
		// Nothing of the new version runs: keep the previous one, this
		// agent's or one pinned before it started.
		res.Err = fmt.Errorf("tracing: no hook of %q loaded; the previous version, if any, keeps running", p.Key)
		if old != nil || otherVersions(keyDir, pl.hash) {
			u.remove(dir)
			return res
		}
	}
	// The new version runs: the old one goes.
	if old != nil && old != u {
		old.remove(old.dir)
	}
	entries, _ := os.ReadDir(keyDir)
	for _, e := range entries {
		if e.Name() != pl.hash {
			removeDir(filepath.Join(keyDir, e.Name()))
		}
	}
	m.units[p.Key] = u
	m.plans.Store(pl.id, pl)
	return res
}

// otherVersions says whether keyDir holds a complete version of the unit
// other than hash.
func otherVersions(keyDir, hash string) bool {
	entries, _ := os.ReadDir(keyDir)
	for _, e := range entries {
		if e.Name() == hash {
			continue
		}
		if _, err := os.Stat(filepath.Join(keyDir, e.Name(), "meta")); err == nil {
			return true
		}
	}
	return false
}

// openUnit creates the unit's maps in dir, or adopts the pinned ones when
// dir holds a complete unit of the same spec.
func (m *Manager) openUnit(pl *plan, dir string) (*unit, error) {
	u := &unit{plan: pl, dir: dir, maps: map[string]*ebpf.Map{}, progs: map[uint32]*ebpf.Program{}, links: map[uint32]link.Link{}}
	_, err := os.Stat(filepath.Join(dir, "meta"))
	complete := err == nil
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("tracing: unit pin dir: %w", err)
	}
	for _, name := range unitMaps {
		mp, err := pinnedMap(m.spec.Maps[name], dir)
		if err != nil {
			return u, fmt.Errorf("tracing: unit map %s: %w", name, err)
		}
		u.maps[name] = mp
	}
	meta, err := pinnedMap(metaSpec, dir)
	if err != nil {
		return u, fmt.Errorf("tracing: unit meta: %w", err)
	}
	defer meta.Close()
	var got [64]byte
	if complete && meta.Lookup(uint32(0), &got) == nil && bytes.HasPrefix(got[:], []byte(pl.hash)) {
		u.adopted = true
		return u, nil
	}
	if _, err := u.syncMaps(); err != nil {
		return u, err
	}
	var v [64]byte
	copy(v[:], pl.hash)
	if err := meta.Update(uint32(0), v, ebpf.UpdateAny); err != nil {
		return u, fmt.Errorf("tracing: unit meta: %w", err)
	}
	return u, nil
}

var metaSpec = &ebpf.MapSpec{Name: "meta", Type: ebpf.Array, KeySize: 4, ValueSize: 64, MaxEntries: 1}

// desired returns the contents each unit map must hold.
func (u *unit) desired() map[string]map[string][]byte {
	pl := u.plan
	hooksW, selsW := map[string][]byte{}, map[string][]byte{}
	for _, h := range pl.hooks {
		if h.state != "" {
			continue
		}
		hooksW[string(u32(h.idx))] = mustBytes(&h.cfg)
		for i := range h.sels {
			selsW[string(u32(h.idx*MaxSelectorsPerHook+uint32(i)))] = mustBytes(&h.sels[i])
		}
	}
	return map[string]map[string][]byte{"hooks": hooksW, "selectors": selsW, "vals_int": pl.ints, "vals_str": pl.strs,
		"vals_lpm": pl.lpms, "vals_addr": pl.addrs}
}

// syncMaps makes the unit's maps (scope aside) hold what its plan says and
// reports what differed.
func (u *unit) syncMaps() ([]string, error) {
	var changed []string
	for name, want := range u.desired() {
		n, err := syncMap(u.maps[name], want, name == "hooks" || name == "selectors")
		if err != nil {
			return changed, fmt.Errorf("tracing: write %s: %w", name, err)
		}
		if n > 0 {
			changed = append(changed, fmt.Sprintf("%s: %d entries differed", name, n))
		}
	}
	return changed, nil
}

func (u *unit) writeScope(p Policy) error {
	want := map[string][]byte{}
	for _, c := range p.Cgroups {
		b := make([]byte, 8)
		binary.LittleEndian.PutUint64(b, c)
		want[string(b)] = []byte{1}
	}
	if _, err := syncMap(u.maps["scope"], want, false); err != nil {
		return fmt.Errorf("tracing: write scope: %w", err)
	}
	u.plan.pol.Cgroups = slices.Clone(p.Cgroups)
	return nil
}

// syncMap makes m hold exactly want and returns how many entries it
// changed. An array map's absent entries are zero.
func syncMap(m *ebpf.Map, want map[string][]byte, array bool) (int, error) {
	changed := 0
	key := make([]byte, m.KeySize())
	val := make([]byte, m.ValueSize())
	have := map[string][]byte{}
	it := m.Iterate()
	for it.Next(&key, &val) {
		have[string(key)] = slices.Clone(val)
	}
	if err := it.Err(); err != nil {
		return 0, err
	}
	zero := make([]byte, m.ValueSize())
	for k, v := range have {
		if _, ok := want[k]; ok {
			continue
		}
		if array {
			if !bytes.Equal(v, zero) {
				if err := m.Put([]byte(k), zero); err != nil {
					return changed, err
				}
				changed++
			}
			continue
		}
		if err := m.Delete([]byte(k)); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
			return changed, err
		}
		changed++
	}
	for k, v := range want {
		if hv, ok := have[k]; ok && bytes.Equal(hv, v) {
			continue
		}
		if err := m.Put([]byte(k), v); err != nil {
			return changed, fmt.Errorf("%d entries: %w", len(want), err)
		}
		changed++
	}
	return changed, nil
}

func u32(v uint32) []byte {
	b := make([]byte, 4)
	binary.LittleEndian.PutUint32(b, v)
	return b
}

func mustBytes(v any) []byte {
	var buf bytes.Buffer
	if err := binary.Write(&buf, binary.LittleEndian, v); err != nil {
		panic(err)
	}
	return buf.Bytes()
}

// ensureHooks adopts each hook's pinned link, or loads and attaches its
// program; it sets u.results and returns what it had to (re)attach.
func (m *Manager) ensureHooks(u *unit) []string {
	var attached []string
	u.results = u.results[:0]
	defer func() {
		for i, h := range u.plan.hooks {
			if i < len(u.results) && u.results[i].Attach != h.attach {
				a := u.results[i].Attach
				h.attached.Store(&a)
			}
		}
	}()
	for _, h := range u.plan.hooks {
		r := HookResult{Path: h.path, Attach: h.attach, State: h.state, Message: h.msg}
		if h.state != "" {
			u.results = append(u.results, r)
			continue
		}
		pin := filepath.Join(u.dir, fmt.Sprintf("link_%d", h.idx))
		if l, ok := u.links[h.idx]; ok {
			if _, err := os.Stat(pin); err == nil && linkAlive(l) {
				r.State, r.Attach = HookLoaded, attachOf(h, l)
				u.results = append(u.results, r)
				continue
			}
			l.Close()
			delete(u.links, h.idx)
		}
		if l, err := link.LoadPinnedLink(pin, nil); err == nil {
			if linkAlive(l) {
				u.links[h.idx] = l
				r.State, r.Attach = HookLoaded, attachOf(h, l)
				u.results = append(u.results, r)
				continue
			}
			l.Unpin()
			l.Close()
		}
		attach, l, err := m.attachHook(u, h)
		if attach != "" {
			r.Attach = attach
		}
		if err != nil {
			r.State, r.Message, r.VerifierLog = classify(h, err)
			u.results = append(u.results, r)
			continue
		}
		os.Remove(pin)
		if err := l.Pin(pin); err != nil {
			l.Close()
			r.State, r.Message = HookLoadError, fmt.Sprintf("%s: pin link: %v", h.path, err)
			u.results = append(u.results, r)
			continue
		}
		u.links[h.idx] = l
		r.State = HookLoaded
		u.results = append(u.results, r)
		attached = append(attached, h.path)
	}
	return attached
}

// attachOf says how a kernel-function hook's link is attached: the plan
// says fentry/fexit, the link may be a fallback (adopted after a restart).
func attachOf(h *hookPlan, l link.Link) string {
	if h.kind != hooks.KindFentry && h.kind != hooks.KindFexit {
		return h.attach
	}
	info, err := l.Info()
	if err != nil || info.Type != link.PerfEventType {
		return h.attach
	}
	pe := info.PerfEvent()
	if pe == nil {
		return h.attach
	}
	switch {
	case pe.Tracepoint() != nil:
		mech := "fentry"
		if h.kind == hooks.KindFexit {
			mech = "fexit"
		}
		return fmt.Sprintf("tracepoint/syscalls/%s (syscall kprobe: %s not loadable on this kernel)", syscallTracepoint(h), mech)
	case pe.Kprobe() != nil && h.kind == hooks.KindFexit:
		return "kretprobe/" + h.target
	case pe.Kprobe() != nil:
		return "kprobe/" + h.target
	}
	return h.attach
}

// errNotSupported marks a hook kind the kernel cannot attach.
type notSupported struct{ msg string }

func (e *notSupported) Error() string { return e.msg }

func classify(h *hookPlan, err error) (HookState, string, string) {
	var ns *notSupported
	if errors.As(err, &ns) {
		return HookNotSupported, h.path + ": " + ns.msg, ""
	}
	var ve *ebpf.VerifierError
	if errors.As(err, &ve) {
		lines := ve.Log
		if len(lines) > 20 {
			lines = lines[len(lines)-20:]
		}
		return HookLoadError, fmt.Sprintf("%s: the verifier refused the program: %v", h.path, ve.Cause), strings.Join(lines, "\n")
	}
	if errors.Is(err, os.ErrNotExist) {
		return HookNotFound, fmt.Sprintf("%s: %v", h.path, err), ""
	}
	return HookLoadError, fmt.Sprintf("%s: %v", h.path, err), ""
}

// attachHook loads the hook's program instance and attaches it with the
// hook's index as cookie. It returns the attach name when it differs
// from the plan's (the kprobe fallback).
func (m *Manager) attachHook(u *unit, h *hookPlan) (string, link.Link, error) {
	cookie := uint64(h.idx)
	switch h.kind {
	case hooks.KindFentry, hooks.KindFexit:
		var ferr error
		if !m.noTrampolines {
			prog := "generic_fentry"
			at := ebpf.AttachTraceFEntry
			if h.kind == hooks.KindFexit {
				prog, at = "generic_fexit", ebpf.AttachTraceFExit
			}
			p, err := m.loadProgram(prog, h.target, u.maps)
			if err == nil {
				defer p.Close()
				u.setProg(h.idx, p)
				l, err := link.AttachTracing(link.TracingOptions{Program: p, AttachType: at, Cookie: cookie})
				return "", l, err
			}
			var ve *ebpf.VerifierError
			if errors.As(err, &ve) {
				return "", nil, err
			}
			// Not the verifier: the kernel cannot load trampoline
			// programs (no BPF trampolines, or refused: EPERM).
			ferr = shortErr(err)
		} else {
			ferr = errors.New("BPF trampolines are not available")
		}
		// A syscall hook: its tracepoints, before kprobes (docs/tracing.md).
		var tperr error
		if h.syscall {
			attach, l, err := m.attachSyscallTracepoint(u, h)
			if err == nil {
				return attach, l, nil
			}
			var ve *ebpf.VerifierError
			if errors.As(err, &ve) {
				return attach, nil, err
			}
			tperr = err
		}
		// No trampolines: kprobe / kretprobe.
		prog, kind := "generic_kprobe", "kprobe"
		if h.kind == hooks.KindFexit {
			prog, kind = "generic_kretprobe", "kretprobe"
			if len(h.args) > 0 {
				return kind + "/" + h.target, nil, &notSupported{fmt.Sprintf("fentry/fexit cannot attach (%v) and a kretprobe cannot read arguments at return", ferr)}
			}
		}
		p, err := m.loadProgram(prog, "", u.maps)
		if err != nil {
			return kind + "/" + h.target, nil, err
		}
		defer p.Close()
		u.setProg(h.idx, p)
		var l link.Link
		if kind == "kprobe" {
			l, err = link.Kprobe(h.target, p, &link.KprobeOptions{Cookie: cookie})
		} else {
			l, err = link.Kretprobe(h.target, p, &link.KprobeOptions{Cookie: cookie})
		}
		if err != nil {
			if tperr != nil {
				return kind + "/" + h.target, nil, &notSupported{fmt.Sprintf("neither fentry/fexit (%v), the syscall tracepoint (%v) nor %s (%v) can attach on this kernel", ferr, tperr, kind, err)}
			}
			return kind + "/" + h.target, nil, &notSupported{fmt.Sprintf("neither fentry/fexit (%v) nor %s (%v) can attach on this kernel", ferr, kind, err)}
		}
		return kind + "/" + h.target, l, nil
	case hooks.KindLSM:
		prog := "generic_lsm"
		if h.void {
			prog = "generic_lsm_void"
		}
		p, err := m.loadProgram(prog, h.target, u.maps)
		if err != nil {
			var ve *ebpf.VerifierError
			if errors.As(err, &ve) {
				return "", nil, err
			}
			return "", nil, &notSupported{fmt.Sprintf("the kernel does not load BPF-LSM programs: %v", shortErr(err))}
		}
		defer p.Close()
		u.setProg(h.idx, p)
		l, err := link.AttachLSM(link.LSMOptions{Program: p, Cookie: cookie})
		return "", l, err
	case hooks.KindTracepoint:
		group, name, ok := strings.Cut(h.target, "/")
		if !ok {
			return "", nil, fmt.Errorf("tracepoint %q is not subsystem/event", h.target)
		}
		p, err := m.loadProgram("generic_tracepoint", "", u.maps)
		if err != nil {
			return "", nil, err
		}
		defer p.Close()
		u.setProg(h.idx, p)
		l, err := link.Tracepoint(group, name, p, &link.TracepointOptions{Cookie: cookie})
		return "", l, err
	case hooks.KindUprobe:
		i := strings.LastIndex(h.target, ":")
		if i < 0 {
			return "", nil, fmt.Errorf("uprobe %q is not path:symbol", h.target)
		}
		ex, err := link.OpenExecutable(h.target[:i])
		if err != nil {
			return "", nil, err
		}
		p, err := m.loadProgram("generic_uprobe", "", u.maps)
		if err != nil {
			return "", nil, err
		}
		defer p.Close()
		u.setProg(h.idx, p)
		l, err := ex.Uprobe(h.target[i+1:], p, &link.UprobeOptions{Cookie: cookie})
		return "", l, err
	}
	return "", nil, &notSupported{fmt.Sprintf("hook kind %q", h.kind)}
}

// syscallName is the syscall of a wrapper: "__x64_sys_openat" → "openat".
func syscallName(wrapper string) string {
	if _, name, ok := strings.Cut(wrapper, "_sys_"); ok {
		return name
	}
	return wrapper
}

// syscallTracepoint is the tracepoint a syscall hook falls back to:
// sys_enter_<name>, or sys_exit_<name> for a return hook.
func syscallTracepoint(h *hookPlan) string {
	if h.kind == hooks.KindFexit {
		return "sys_exit_" + syscallName(h.target)
	}
	return "sys_enter_" + syscallName(h.target)
}

// attachSyscallTracepoint attaches a syscall hook whose fentry/fexit
// program cannot load to syscalls/sys_enter_<name> (sys_exit_<name> with
// return: true). The program reads the arguments from the task's user
// registers, as the syscall wrapper does, at entry and at return alike,
// so arguments, selectors and actions behave as with fentry/fexit.
func (m *Manager) attachSyscallTracepoint(u *unit, h *hookPlan) (string, link.Link, error) {
	event := syscallTracepoint(h)
	prog, mech := "generic_sys_enter", "fentry"
	if h.kind == hooks.KindFexit {
		prog, mech = "generic_sys_exit", "fexit"
	}
	attach := fmt.Sprintf("tracepoint/syscalls/%s (syscall kprobe: %s not loadable on this kernel)", event, mech)
	p, err := m.loadProgram(prog, "", u.maps)
	if err != nil {
		return attach, nil, err
	}
	defer p.Close()
	l, err := link.Tracepoint("syscalls", event, p, &link.TracepointOptions{Cookie: uint64(h.idx)})
	if err != nil {
		return attach, nil, err
	}
	u.setProg(h.idx, p)
	return attach, l, nil
}

func (u *unit) setProg(idx uint32, p *ebpf.Program) {
	c, err := p.Clone()
	if err != nil {
		return
	}
	if old, ok := u.progs[idx]; ok {
		old.Close()
	}
	u.progs[idx] = c
}

// remove unpins dir, then releases the unit's fds: the last reference to
// each link is then an fd, whose close detaches it before remove returns
// (an unpin that drops the last reference detaches it later, from a
// kernel work queue).
func (u *unit) remove(dir string) {
	removeDir(dir)
	u.close()
}

// removeDir unpins a unit's dir, holding its links open until the pins
// are gone so that they are detached when removeDir returns.
func removeDir(dir string) error {
	var held []link.Link
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasPrefix(d.Name(), "link_") {
			if l, err := link.LoadPinnedLink(p, nil); err == nil {
				held = append(held, l)
			}
		}
		return nil
	})
	err := os.RemoveAll(dir)
	for _, l := range held {
		l.Close()
	}
	return err
}

// close releases the unit's fds; pins stay.
func (u *unit) close() {
	for _, l := range u.links {
		l.Close()
	}
	for _, p := range u.progs {
		p.Close()
	}
	for _, mp := range u.maps {
		mp.Close()
	}
	u.links, u.progs, u.maps = map[uint32]link.Link{}, map[uint32]*ebpf.Program{}, map[string]*ebpf.Map{}
}

// Verify compares each unit's pins, links and maps with the last Apply,
// repairs what differs and reports it.
func (m *Manager) Verify(ctx context.Context) []Drift {
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.base) == 0 {
		return []Drift{{Key: "base", What: "verify", Err: errClosed}}
	}
	var drifts []Drift
	for _, name := range baseMaps {
		pin := filepath.Join(m.baseDir(), name)
		if _, err := os.Stat(pin); err != nil {
			err := repin(m.base[name], pin)
			drifts = append(drifts, Drift{Key: "base", What: "map " + name + " was unpinned; pinned again", Err: err})
		}
	}
	if repaired, err := m.ensureTrackers(); err != nil || len(repaired) > 0 {
		drifts = append(drifts, Drift{Key: "base", What: fmt.Sprintf("process tracking was detached or unpinned: %s", strings.Join(repaired, ", ")), Err: err})
	}
	keys := make([]string, 0, len(m.units))
	for k := range m.units {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, key := range keys {
		u := m.units[key]
		if _, err := os.Stat(filepath.Join(u.dir, "meta")); err != nil {
			// The unit's pins are gone: rebuild it.
			u.close()
			nu, err := m.openUnit(u.plan, u.dir)
			if err == nil {
				err = nu.writeScope(u.plan.pol)
			}
			if err == nil {
				m.ensureHooks(nu)
				m.units[key] = nu
			}
			drifts = append(drifts, Drift{Key: key, What: "the unit's pins were removed; reloaded", Err: err})
			continue
		}
		for _, name := range unitMaps {
			if _, err := os.Stat(filepath.Join(u.dir, name)); err != nil {
				if err := repin(u.maps[name], filepath.Join(u.dir, name)); err != nil {
					drifts = append(drifts, Drift{Key: key, What: "map " + name + " was unpinned", Err: err})
				} else {
					drifts = append(drifts, Drift{Key: key, What: "map " + name + " was unpinned; pinned again"})
				}
			}
		}
		changed, err := u.syncMaps()
		for _, c := range changed {
			drifts = append(drifts, Drift{Key: key, What: "map " + c + "; rewritten"})
		}
		if err != nil {
			drifts = append(drifts, Drift{Key: key, What: "maps", Err: err})
		}
		if n, err := syncScope(u); err != nil || n > 0 {
			drifts = append(drifts, Drift{Key: key, What: fmt.Sprintf("scope: %d cgroups differed; rewritten", n), Err: err})
		}
		before := map[string]HookState{}
		for _, r := range u.results {
			before[r.Path] = r.State
		}
		for _, path := range m.ensureHooks(u) {
			if before[path] == HookLoaded {
				drifts = append(drifts, Drift{Key: key, What: path + ": link was detached or unpinned; attached again"})
			}
		}
		for _, r := range u.results {
			if before[r.Path] == HookLoaded && r.State != HookLoaded {
				drifts = append(drifts, Drift{Key: key, What: r.Path + ": link was detached and could not be attached again", Err: errors.New(r.Message)})
			}
		}
	}
	return drifts
}

// repin pins a map again whose pin was removed (Pin alone sees the path
// it remembers and does nothing).
func repin(mp *ebpf.Map, pin string) error {
	if err := mp.Unpin(); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return mp.Pin(pin)
}

func syncScope(u *unit) (int, error) {
	want := map[string][]byte{}
	for _, c := range u.plan.pol.Cgroups {
		b := make([]byte, 8)
		binary.LittleEndian.PutUint64(b, c)
		want[string(b)] = []byte{1}
	}
	return syncMap(u.maps["scope"], want, false)
}

// SetProtected sets the tgids that Sigkill, Signal and Deny never hit.
// PID 1 and processes of ProtectedBinaries are protected regardless.
func (m *Manager) SetProtected(pids []uint32) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.base) == 0 {
		return errClosed
	}
	want := map[string][]byte{}
	for _, p := range pids {
		want[string(u32(p))] = []byte{1}
	}
	if len(want) > int(m.base["protected_pids"].MaxEntries()) {
		return fmt.Errorf("tracing: %d protected pids, at most %d", len(want), m.base["protected_pids"].MaxEntries())
	}
	_, err := syncMap(m.base["protected_pids"], want, false)
	return err
}

// Stats reads the kernel's counters.
func (m *Manager) Stats() (Stats, error) {
	st := Stats{Events: map[string]map[v1.ActionType]uint64{}, Lost: map[string]uint64{}, Suppressed: map[string]uint64{},
		Hits: map[string]map[string]uint64{}}
	m.mu.Lock()
	counters, ok := m.base["counters"]
	var err error
	if ok {
		counters, err = counters.Clone()
	}
	m.mu.Unlock()
	if !ok {
		return st, errors.New("tracing: manager is closed")
	}
	if err != nil {
		return st, fmt.Errorf("tracing: counters: %w", err)
	}
	defer counters.Close()
	var k bt.TracingCounterKey
	var vals []uint64
	it := counters.Iterate()
	for it.Next(&k, &vals) {
		var n uint64
		for _, v := range vals {
			n += v
		}
		key := fmt.Sprintf("unit %08x", k.Unit)
		var pl *plan
		if v, ok := m.plans.Load(k.Unit); ok {
			pl = v.(*plan)
			key = pl.key
		}
		switch k.Outcome {
		case uint8(bt.TracingOutcomeOUT_EVENT):
			if st.Events[key] == nil {
				st.Events[key] = map[v1.ActionType]uint64{}
			}
			st.Events[key][actionName(k.Action)] += n
		case uint8(bt.TracingOutcomeOUT_LOST):
			st.Lost["ringbuf full"] += n
		case uint8(bt.TracingOutcomeOUT_PROTECTED):
			st.Suppressed["protected process"] += n
		case uint8(bt.TracingOutcomeOUT_AUDIT):
			st.Suppressed["audit mode"] += n
		case uint8(bt.TracingOutcomeOUT_RATELIMITED):
			st.Suppressed["rate limited"] += n
		case uint8(bt.TracingOutcomeOUT_HIT):
			hook := fmt.Sprintf("hook %d", k.Action)
			if pl != nil && int(k.Action) < len(pl.hooks) {
				hook = pl.hooks[k.Action].path
			}
			if st.Hits[key] == nil {
				st.Hits[key] = map[string]uint64{}
			}
			st.Hits[key][hook] += n
		}
	}
	if err := it.Err(); err != nil {
		return st, fmt.Errorf("tracing: read counters: %w", err)
	}
	m.readerMu.Lock()
	for reason, n := range m.decodeErrs {
		st.Lost[reason] += n
	}
	m.readerMu.Unlock()
	return st, nil
}

// Close closes the Manager's fds; the pins stay, and with them the
// programs keep running.
func (m *Manager) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, u := range m.units {
		u.close()
	}
	m.units = map[string]*unit{}
	for _, l := range m.baseLinks {
		l.Close()
	}
	m.baseLinks = map[string]link.Link{}
	for _, mp := range m.base {
		mp.Close()
	}
	m.base = map[string]*ebpf.Map{}
	return nil
}
