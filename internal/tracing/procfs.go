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
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/cilium/ebpf"

	bt "github.com/palisade-dev/palisade/bpf/tracing"
)

// seedProcs adds the processes that ran before the process tracker to the
// process map, from /proc: binary (exe), arguments (cmdline), parent,
// protected flag. Entries the tracker wrote are kept.
func (m *Manager) seedProcs() error {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return err
	}
	protected := append(append([]string{}, ProtectedBinaries...), m.opts.ProtectedBinaries...)
	procs := m.base["procs"]
	for _, e := range entries {
		pid, err := strconv.ParseUint(e.Name(), 10, 32)
		if err != nil {
			continue
		}
		dir := filepath.Join("/proc", e.Name())
		exe, err := os.Readlink(filepath.Join(dir, "exe"))
		if err != nil {
			continue // a kernel thread, or gone
		}
		exe = strings.TrimSuffix(exe, " (deleted)")
		stat, err := os.ReadFile(filepath.Join(dir, "stat"))
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...: comm may hold spaces and parentheses.
		i := strings.LastIndexByte(string(stat), ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(stat[i+1:]))
		if len(f) < 2 {
			continue
		}
		ppid, _ := strconv.ParseUint(f[1], 10, 32)
		pi := bt.TracingProcInfo{Ppid: uint32(ppid), Flags: procProcfs, Len: uint32(min(len(exe), MaxStringBytes))}
		copy(pi.Binary[:MaxStringBytes], exe)
		argv, trunc := readArgv(uint32(pid))
		pi.ArgvLen = uint32(copy(pi.Argv[:], argv))
		if trunc {
			pi.Flags |= procArgvTrunc
		}
		if protectedName(filepath.Base(exe), protected) {
			pi.Flags |= procProtected
		}
		if err := procs.Update(uint32(pid), &pi, ebpf.UpdateNoExist); err != nil && !isExist(err) {
			return err
		}
	}
	return nil
}

// readArgv reads the first MaxArgvBytes bytes of a process's arguments
// from /proc/<pid>/cmdline, as process tracking keeps them at exec, and
// whether there were more.
func readArgv(pid uint32) ([]byte, bool) {
	f, err := os.Open(filepath.Join("/proc", strconv.FormatUint(uint64(pid), 10), "cmdline"))
	if err != nil {
		return nil, false
	}
	defer f.Close()
	b, _ := io.ReadAll(io.LimitReader(f, MaxArgvBytes+1))
	if len(b) > MaxArgvBytes {
		return b[:MaxArgvBytes], true
	}
	return b, false
}

// argvOf is a process's arguments from /proc, for events of processes
// the process map does not hold.
func argvOf(pid uint32) ([]string, bool) {
	b, trunc := readArgv(pid)
	return splitArgv(b), trunc
}

func isExist(err error) bool {
	return err == ebpf.ErrKeyExist || strings.Contains(err.Error(), "exists")
}

// protectedName matches a base name against names, where a trailing *
// matches a prefix; the kernel matches exec'd binaries the same way.
func protectedName(base string, names []string) bool {
	for _, n := range names {
		if p, ok := strings.CutSuffix(n, "*"); ok {
			if strings.HasPrefix(base, p) {
				return true
			}
		} else if base == n {
			return true
		}
	}
	return false
}
