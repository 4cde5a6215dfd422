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
// Sigkill by naming its binary runc.
func protectedPIDs(procRoot string, self int) []uint32 {
	pids := []uint32{1}
	if self > 0 {
		pids = append(pids, uint32(self))
	}
	hostMnt, err := os.Readlink(filepath.Join(procRoot, "1", "ns", "mnt"))
	if err != nil {
		return pids
	}
	ents, err := os.ReadDir(procRoot)
	if err != nil {
		return pids
	}
	for _, e := range ents {
		pid, err := strconv.ParseUint(e.Name(), 10, 32)
		if err != nil || !e.IsDir() {
			continue
		}
		dir := filepath.Join(procRoot, e.Name())
		exe, err := os.Readlink(filepath.Join(dir, "exe"))
		if err != nil || !protectedBinary(filepath.Base(strings.TrimSuffix(exe, " (deleted)"))) {
			continue // kernel threads and exited processes have no exe
		}
		if mnt, err := os.Readlink(filepath.Join(dir, "ns", "mnt")); err == nil && mnt == hostMnt {
			pids = append(pids, uint32(pid))
		}
	}
	slices.Sort(pids)
	return slices.Compact(pids)
}
