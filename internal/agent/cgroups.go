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
	"fmt"
	"io/fs"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
	"k8s.io/apimachinery/pkg/types"
)

// DefaultCgroupBase is where the host's cgroup hierarchies are looked for.
const DefaultCgroupBase = "/sys/fs/cgroup"

// DetectCgroupRoot returns the cgroup v2 hierarchy under base (the host's
// /sys/fs/cgroup, or where it is mounted in the agent's container):
// base/unified on a hybrid layout, base itself on a pure v2 one. Tracing
// scopes policies to pods by their cgroup v2 ids, which exist only there.
func DetectCgroupRoot(base string) (string, error) {
	base = filepath.Clean(base)
	for _, p := range []string{filepath.Join(base, "unified"), base} {
		var st unix.Statfs_t
		if err := unix.Statfs(p, &st); err == nil && st.Type == unix.CGROUP2_SUPER_MAGIC {
			return p, nil
		}
	}
	return "", fmt.Errorf("no cgroup v2 hierarchy is mounted at %s/unified or %s", base, base)
}

// maxCgroupDepth bounds the walk below the root: kubelet's deepest pod
// cgroup is kubepods.slice/kubepods-burstable.slice/<pod>.slice, and a
// container's is one or two levels below it.
const maxCgroupDepth = 8

// podCgroup is one pod-level cgroup found under the root.
type podCgroup struct {
	id   uint64
	path string
}

// cgroupIndex is one walk of the cgroup tree: the pod-level cgroup of
// each pod found, and the pod that owns each cgroup at or below a pod
// cgroup (its containers'), for naming the pod of an event's process.
type cgroupIndex struct {
	pods  map[types.UID]podCgroup
	owner map[uint64]types.UID
}

// podUIDOfCgroup reads the pod UID from a pod-level cgroup's directory
// name: "pod<UID>" (kubelet's cgroupfs driver) or
// "kubepods[-<qos>]-pod<UID with _ for ->.slice" (its systemd driver).
func podUIDOfCgroup(name string) (types.UID, bool) {
	var uid string
	switch {
	case strings.HasSuffix(name, ".slice"):
		i := strings.LastIndex(name, "-pod")
		if i < 0 {
			return "", false
		}
		uid = strings.ReplaceAll(strings.TrimSuffix(name[i+len("-pod"):], ".slice"), "_", "-")
	case strings.HasPrefix(name, "pod"):
		uid = name[len("pod"):]
	default:
		return "", false
	}
	if !isUUID(uid) {
		return "", false
	}
	return types.UID(uid), true
}

// isUUID reports whether s has the shape of a pod UID (8-4-4-4-12 hex
// digits), so that "podman" or "pods.slice" is not read as a pod.
func isUUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i, c := range s {
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
				return false
			}
		}
	}
	return true
}

// cgroupID is a cgroup v2 directory's id: its inode number.
func cgroupID(info fs.FileInfo) (uint64, bool) {
	st, ok := info.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, false
	}
	return st.Ino, true
}

// scanCgroups walks the cgroup tree under root.
func scanCgroups(root string) (*cgroupIndex, error) {
	idx := &cgroupIndex{pods: map[types.UID]podCgroup{}, owner: map[uint64]types.UID{}}
	root = filepath.Clean(root)
	depth0 := strings.Count(root, string(filepath.Separator))
	// under is the pod whose cgroup the walk is in, with that cgroup's
	// path; WalkDir walks depth first, so a path outside it ends it.
	var under types.UID
	var underPath string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if p == root {
				return err
			}
			return nil // a cgroup removed during the walk, or unreadable
		}
		if !d.IsDir() {
			return nil
		}
		if strings.Count(p, string(filepath.Separator))-depth0 > maxCgroupDepth {
			return filepath.SkipDir
		}
		if under != "" && !strings.HasPrefix(p, underPath+string(filepath.Separator)) {
			under = ""
		}
		uid, isPod := podUIDOfCgroup(d.Name())
		isPod = isPod && under == "" && p != root
		if under == "" && !isPod {
			return nil // not a pod's: its id is not needed (no stat)
		}
		info, err := d.Info()
		if err != nil {
			return nil
		}
		id, ok := cgroupID(info)
		if !ok {
			return nil
		}
		if !isPod {
			idx.owner[id] = under
			return nil
		}
		if _, dup := idx.pods[uid]; !dup {
			idx.pods[uid] = podCgroup{id: id, path: p}
		}
		idx.owner[id] = uid
		under, underPath = uid, p
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("walk cgroups under %s: %w", root, err)
	}
	return idx, nil
}

// podName is a pod's namespace and name.
type podName struct{ namespace, name string }

// cgroupResolver maps pods to their cgroups for policies, and cgroups to
// pods for events. Syncs rescan; the event reader reads concurrently and
// rescans, at most once per rescanEvery, when it meets a cgroup it does
// not know (a container started since the last sync).
type cgroupResolver struct {
	root string

	mu       sync.Mutex
	idx      *cgroupIndex
	names    map[types.UID]podName
	scanned  time.Time
	scanErr  error
	lastMiss map[uint64]bool
}

const rescanEvery = time.Second

func newCgroupResolver(root string) *cgroupResolver {
	return &cgroupResolver{root: root, idx: &cgroupIndex{pods: map[types.UID]podCgroup{}, owner: map[uint64]types.UID{}}}
}

// scan walks the tree and learns the names of the node's pods.
func (c *cgroupResolver) scan(names map[types.UID]podName) error {
	idx, err := scanCgroups(c.root)
	c.mu.Lock()
	defer c.mu.Unlock()
	c.names = names
	c.scanned = time.Now()
	c.scanErr = err
	c.lastMiss = nil
	if err != nil {
		return err
	}
	c.idx = idx
	return nil
}

// pod returns the pod-level cgroup of pod uid from the last scan.
func (c *cgroupResolver) pod(uid types.UID) (podCgroup, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	pc, ok := c.idx.pods[uid]
	return pc, ok
}

// podOf names the pod whose cgroup is id or an ancestor of it; ok is
// false for a process outside every pod (the host's).
func (c *cgroupResolver) podOf(id uint64) (podName, bool) {
	if id == 0 {
		return podName{}, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	uid, ok := c.idx.owner[id]
	if !ok && !c.lastMiss[id] && time.Since(c.scanned) >= rescanEvery {
		c.scanned = time.Now()
		if idx, err := scanCgroups(c.root); err == nil {
			c.idx = idx
			uid, ok = idx.owner[id]
		}
		if !ok {
			// A host process: not looked for again until the next sync.
			if c.lastMiss == nil {
				c.lastMiss = map[uint64]bool{}
			}
			c.lastMiss[id] = true
		}
	}
	if !ok {
		return podName{}, false
	}
	n, ok := c.names[uid]
	return n, ok
}
