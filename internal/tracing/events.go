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
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/ringbuf"
	"golang.org/x/sys/unix"

	v1 "github.com/palisade-dev/palisade/api/v1alpha1"
	bt "github.com/palisade-dev/palisade/bpf/tracing"
)

// errUnknownUnit: a record of a unit this Manager has not applied (a
// pinned unit between Open and the first Apply).
var errUnknownUnit = errors.New("unit not applied by this manager")

var (
	eventSize = binary.Size(bt.TracingTraceEvent{})
	slotSize  = binary.Size(bt.TracingArgSlot{})
	fixedSize = eventSize - MaxArgsPerHook*slotSize
)

func actionName(a uint8) v1.ActionType {
	switch a {
	case actSigkill:
		return v1.ActionSigkill
	case actDeny:
		return v1.ActionDeny
	case actSignal:
		return v1.ActionSignal
	}
	return v1.ActionNotify
}

// ReadEvents decodes the ring buffer's records into Events and passes
// them to fn until ctx ends. Records it cannot decode are counted in
// Stats.Lost["undecodable record"].
func (m *Manager) ReadEvents(ctx context.Context, fn func(Event)) error {
	m.mu.Lock()
	evm, ok := m.base["events"]
	var mp, procs *ebpf.Map
	var err error
	if ok {
		mp, err = evm.Clone()
		if err == nil {
			procs, err = m.base["procs"].Clone()
		}
	}
	m.mu.Unlock()
	if !ok {
		return errors.New("tracing: manager is closed")
	}
	if err != nil {
		return fmt.Errorf("tracing: events map: %w", err)
	}
	defer mp.Close()
	defer procs.Close()
	rd, err := ringbuf.NewReader(mp)
	if err != nil {
		return fmt.Errorf("tracing: ring buffer reader: %w", err)
	}
	done := make(chan struct{})
	defer close(done)
	go func() {
		select {
		case <-ctx.Done():
		case <-done:
		}
		rd.Close()
	}()
	boot := bootOffset()
	for {
		rec, err := rd.Read()
		if err != nil {
			if errors.Is(err, ringbuf.ErrClosed) || ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("tracing: read ring buffer: %w", err)
		}
		e, err := m.decode(rec.RawSample, boot, procs)
		if err != nil {
			reason := "undecodable record"
			if errors.Is(err, errUnknownUnit) {
				reason = "unit not applied by this agent"
			}
			m.readerMu.Lock()
			if m.decodeErrs == nil {
				m.decodeErrs = map[string]uint64{}
			}
			m.decodeErrs[reason]++
			m.readerMu.Unlock()
			m.log.V(1).Info("tracing: undecodable record", "error", err.Error())
			continue
		}
		fn(e)
	}
}

// bootOffset is the wall-clock time of boot, to turn the kernel's
// CLOCK_BOOTTIME stamps into times.
func bootOffset() time.Time {
	var ts unix.Timespec
	unix.ClockGettime(unix.CLOCK_BOOTTIME, &ts)
	return time.Now().Add(-time.Duration(ts.Nano()))
}

func (m *Manager) decode(raw []byte, boot time.Time, procs *ebpf.Map) (Event, error) {
	var e Event
	if len(raw) < fixedSize {
		return e, fmt.Errorf("record of %d bytes, shorter than %d", len(raw), fixedSize)
	}
	if raw[0] != uint8(bt.TracingEventTypeEVENT_TYPE_TRACE) || raw[1] != uint8(bt.TracingEventVersionTRACE_EVENT_VERSION) {
		return e, fmt.Errorf("record type %d version %d is not a trace event v%d", raw[0], raw[1], bt.TracingEventVersionTRACE_EVENT_VERSION)
	}
	buf := make([]byte, eventSize)
	copy(buf, raw)
	var ev bt.TracingTraceEvent
	if err := binary.Read(bytes.NewReader(buf), binary.LittleEndian, &ev); err != nil {
		return e, err
	}
	if int(ev.Nargs) > MaxArgsPerHook || len(raw) < fixedSize+int(ev.Nargs)*slotSize {
		return e, fmt.Errorf("record of %d bytes cannot hold %d arguments", len(raw), ev.Nargs)
	}
	v, ok := m.plans.Load(ev.Unit)
	if !ok {
		return e, fmt.Errorf("record of unit %08x: %w", ev.Unit, errUnknownUnit)
	}
	pl := v.(*plan)
	if int(ev.Hook) >= len(pl.hooks) {
		return e, fmt.Errorf("record of unit %q names hook %d of %d", pl.key, ev.Hook, len(pl.hooks))
	}
	h := pl.hooks[ev.Hook]
	e = Event{
		Time:     boot.Add(time.Duration(ev.Hdr.Time)),
		Policy:   pl.key,
		HookPath: h.path,
		Attach:   h.attachName(),
		Selector: int(ev.Selector),
		Action:   actionName(ev.Action),
		Taken:    ev.Taken != 0,
		Revision: pl.pol.Revision,
		Process: Process{PID: ev.Pid, TID: ev.Tid, Binary: cstring(ev.Binary[:]), UID: ev.Uid, CgroupID: ev.Cgroup,
			Args: splitArgv(ev.Argv[:min(int(ev.ArgvLen), len(ev.Argv))]), ArgsTruncated: ev.ProcFlags&procArgvTrunc != 0},
		Parent: Process{PID: ev.Ppid, TID: ev.Ppid},
	}
	if ev.HasParent != 0 {
		e.Parent.Binary = cstring(ev.Pbinary[:])
		e.Parent.Args = splitArgv(ev.Pargv[:min(int(ev.PargvLen), len(ev.Pargv))])
		e.Parent.ArgsTruncated = ev.PprocFlags&procArgvTrunc != 0
	} else {
		e.Parent.Binary, e.Parent.Args, e.Parent.ArgsTruncated = processOf(procs, ev.Ppid)
	}
	if e.Process.Binary == "" {
		e.Process.Binary = exeOf(ev.Pid)
	}
	if e.Process.Args == nil && !e.Process.ArgsTruncated {
		e.Process.Args, e.Process.ArgsTruncated = argvOf(ev.Pid)
	}
	switch ev.Suppressed {
	case suppAudit:
		e.Suppressed = "audit mode"
	case suppProtected:
		e.Suppressed = "protected process"
	}
	e.Source = pl.pol.Sources[h.path]
	if int(ev.Selector) < len(h.sources) {
		if s, ok := pl.pol.Sources[h.sources[ev.Selector]]; ok {
			e.Source = s
		}
	}
	if ev.HasRet != 0 {
		r := ev.Ret
		e.Return = &r
	}
	for i := 0; i < int(ev.Nargs) && i < len(h.args); i++ {
		a := h.args[i]
		e.Args = append(e.Args, ArgValue{Index: a.Index, Label: a.Label, Type: a.Type, Value: render(a.Type, &ev.Args[i])})
	}
	return e, nil
}

// processOf is a process's binary and arguments from the process map,
// else /proc: for events whose parent the kernel did not find in the map.
func processOf(procs *ebpf.Map, pid uint32) (string, []string, bool) {
	var pi bt.TracingProcInfo
	if err := procs.Lookup(pid, &pi); err == nil {
		if b := cstring(pi.Binary[:]); b != "" {
			return b, splitArgv(pi.Argv[:min(int(pi.ArgvLen), len(pi.Argv))]), pi.Flags&procArgvTrunc != 0
		}
	}
	args, trunc := argvOf(pid)
	return exeOf(pid), args, trunc
}

// splitArgv turns argv as the kernel keeps it (each argument
// NUL-terminated; the last one cut, without its NUL, when truncated) into
// its arguments. Empty input is nil: nothing known.
func splitArgv(b []byte) []string {
	if len(b) == 0 {
		return nil
	}
	b = bytes.TrimSuffix(b, []byte{0})
	return strings.Split(string(b), "\x00")
}

func exeOf(pid uint32) string {
	p, err := os.Readlink(filepath.Join("/proc", strconv.FormatUint(uint64(pid), 10), "exe"))
	if err != nil {
		return ""
	}
	return p
}

func cstring(b []byte) string {
	if i := bytes.IndexByte(b, 0); i >= 0 {
		b = b[:i]
	}
	return string(b)
}

// render turns an argument slot into text for people.
func render(t v1.ArgType, s *bt.TracingArgSlot) string {
	if s.Flags&slotOK == 0 {
		return "<unreadable>"
	}
	data := s.Data[:min(int(s.Len), len(s.Data))]
	trunc := ""
	if s.Flags&slotTrunc != 0 {
		trunc = "...(truncated)"
	}
	switch bt.TracingArgType(s.Type) {
	case bt.TracingArgTypeAT_INT:
		typ, _, signed, _ := argType(t)
		_ = typ
		if t == "capability" {
			if name, ok := capName(int(int32(s.Ival))); ok {
				return name
			}
		}
		if signed {
			return strconv.FormatInt(int64(s.Ival), 10)
		}
		return strconv.FormatUint(s.Ival, 10)
	case bt.TracingArgTypeAT_CAPS:
		return capSet(s.Ival)
	case bt.TracingArgTypeAT_FD:
		return fmt.Sprintf("%d:%s%s", int32(s.Ival), cstring(data), trunc)
	case bt.TracingArgTypeAT_STRING, bt.TracingArgTypeAT_FILE, bt.TracingArgTypeAT_PATH, bt.TracingArgTypeAT_DENTRY,
		bt.TracingArgTypeAT_BINPRM, bt.TracingArgTypeAT_DATA_LOC:
		return string(data) + trunc
	case bt.TracingArgTypeAT_CHAR_BUF:
		q := strconv.QuoteToASCII(string(data))
		return q[1:len(q)-1] + trunc
	case bt.TracingArgTypeAT_SOCK, bt.TracingArgTypeAT_SOCKET, bt.TracingArgTypeAT_SKB, bt.TracingArgTypeAT_SOCKADDR:
		var si bt.TracingSockInfo
		binary.Read(bytes.NewReader(s.Data[:]), binary.LittleEndian, &si)
		return renderSock(bt.TracingArgType(s.Type), &si)
	case bt.TracingArgTypeAT_CRED:
		var ci bt.TracingCredInfo
		binary.Read(bytes.NewReader(s.Data[:]), binary.LittleEndian, &ci)
		return fmt.Sprintf("uid=%d gid=%d euid=%d egid=%d effective=%s permitted=%s inheritable=%s userns=%d",
			ci.Uid, ci.Gid, ci.Euid, ci.Egid, capSet(ci.CapEffective), capSet(ci.CapPermitted), capSet(ci.CapInheritable), ci.UserNs)
	}
	return ""
}

func addrOf(b [16]uint8) netip.Addr {
	return netip.AddrFrom16(b).Unmap()
}

func renderSock(t bt.TracingArgType, si *bt.TracingSockInfo) string {
	fam := fmt.Sprintf("family=%d", si.Family)
	for n, v := range sockNames["Family"] {
		if uint64(si.Family) == v {
			fam = n
		}
	}
	if t == bt.TracingArgTypeAT_SOCKADDR {
		if si.Family != 2 && si.Family != 10 {
			return fam
		}
		return fmt.Sprintf("%s %s", fam, netip.AddrPortFrom(addrOf(si.Daddr), si.Dport))
	}
	proto := strconv.Itoa(int(si.Protocol))
	for n, v := range sockNames["Protocol"] {
		if uint64(si.Protocol) == v {
			proto = strings.TrimPrefix(n, "IPPROTO_")
		}
	}
	out := fmt.Sprintf("%s %s %s -> %s", fam, proto, netip.AddrPortFrom(addrOf(si.Saddr), si.Sport), netip.AddrPortFrom(addrOf(si.Daddr), si.Dport))
	if t != bt.TracingArgTypeAT_SKB {
		for n, v := range sockNames["State"] {
			if uint64(si.State) == v {
				out += " " + n
			}
		}
	}
	return out
}

func capName(n int) (string, bool) {
	for name, v := range capabilities {
		if int(v) == n {
			return name, true
		}
	}
	return "", false
}

func capSet(v uint64) string {
	var names []string
	for i := 0; i < 64; i++ {
		if v&(1<<i) != 0 {
			if n, ok := capName(i); ok {
				names = append(names, n)
			} else {
				names = append(names, strconv.Itoa(i))
			}
		}
	}
	if len(names) == 0 {
		return "none"
	}
	return strings.Join(names, ",")
}
