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

package agent

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// protectedBinaries are the executables (by base name) whose processes no
// tracing action may signal or deny: the kubelet and the container
// runtimes. A trailing "*" matches a prefix (containerd-shim-runc-v2).
var protectedBinaries = []string{"kubelet", "containerd", "containerd-shim*", "runc", "crio", "cri-o", "conmon"}

func protectedBinary(base string) bool {
	for _, p := range protectedBinaries {
		if pre, ok := strings.CutSuffix(p, "*"); ok && strings.HasPrefix(base, pre) || base == p {
			return true
		}
	}
	return false
}

// protectedPIDs lists, from the proc filesystem at procRoot, the processes
// that tracing actions must never hit: self (the agent), PID 1, and every
// process of a protected binary that runs in PID 1's mount namespace. The
// agent runs in the host's PID namespace, so these are the kernel's (init
// namespace) PIDs. A process in another mount namespace (a container's) is
// not protected by its binary's name: a workload cannot shield itself from
// Sigkill by naming its binary runc. Where PID 1's mount namespace cannot
// be read (some sandboxes' PID 1 refuses every reader), processes of
// protected binaries are protected in every mount namespace instead: the
// kubelet and the runtime stay protected, at the cost of that shield.
//
// A process whose executable or mount namespace the agent may not read
// (it lacks CAP_SYS_PTRACE, which reading the /proc links of a root
// process with more capabilities than the agent takes) cannot be told
// apart: protectedPIDs then returns an error naming it, rather than a list
// that silently leaves the kubelet or the runtime out.
func protectedPIDs(procRoot string, self int) ([]uint32, error) {
	pids := []uint32{1}
	if self > 0 {
		pids = append(pids, uint32(self))
	}
	hostMnt, err := os.Readlink(filepath.Join(procRoot, "1", "ns", "mnt"))
	byName := err != nil
	ents, err := os.ReadDir(procRoot)
	if err != nil {
		return pids, fmt.Errorf("list processes: %w", err)
	}
	needsPtrace := func(what string, pid uint64, err error) error {
		return fmt.Errorf("read the %s of process %d: %w (the agent needs CAP_SYS_PTRACE to tell the kubelet and the runtime from other processes)", what, pid, err)
	}
	var denied error
	for _, e := range ents {
		pid, err := strconv.ParseUint(e.Name(), 10, 32)
		if err != nil || !e.IsDir() || pid == 1 {
			continue
		}
		dir := filepath.Join(procRoot, e.Name())
		exe, err := os.Readlink(filepath.Join(dir, "exe"))
		if errors.Is(err, fs.ErrPermission) && denied == nil {
			denied = needsPtrace("executable", pid, err)
		}
		if err != nil || !protectedBinary(filepath.Base(strings.TrimSuffix(exe, " (deleted)"))) {
			continue // kernel threads and exited processes have no exe
		}
		if byName {
			pids = append(pids, uint32(pid))
			continue
		}
		mnt, err := os.Readlink(filepath.Join(dir, "ns", "mnt"))
		if errors.Is(err, fs.ErrPermission) && denied == nil {
			denied = needsPtrace("mount namespace", pid, err)
		}
		if err == nil && mnt == hostMnt {
			pids = append(pids, uint32(pid))
		}
	}
	slices.Sort(pids)
	return slices.Compact(pids), denied
}
