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

package hollow

import (
	"context"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"syscall"
)

// startProfiles starts the CPU profiles of the rollouts when
// -hollow.profile is set: this process's (the manager's) and the agents'
// (the child is signalled); the returned func stops them and has the
// child write a heap profile. The API server's is not taken: envtest
// runs it without --profiling.
func (s *scale) startProfiles() func() {
	dir := *flagProfile
	if dir == "" {
		return func() {}
	}
	s.must(os.MkdirAll(dir, 0o755))
	f, err := os.Create(filepath.Join(dir, "manager.cpu.pprof"))
	s.must(err)
	s.must(pprof.StartCPUProfile(f))
	s.must(s.child.Process.Signal(syscall.SIGUSR1))
	return func() {
		pprof.StopCPUProfile()
		s.must(f.Close())
		s.must(s.child.Process.Signal(syscall.SIGUSR2))
		s.logf("profiles in %s", dir)
	}
}

// childProfiles, in the agents' process, starts a CPU profile on SIGUSR1
// and on SIGUSR2 stops it and writes a heap profile (after a GC: what
// the agents hold, not their garbage).
func childProfiles(ctx context.Context, dir string) {
	if dir == "" {
		return
	}
	sig := make(chan os.Signal, 2)
	signal.Notify(sig, syscall.SIGUSR1, syscall.SIGUSR2)
	go func() {
		var cpu *os.File
		for {
			select {
			case <-ctx.Done():
				return
			case v := <-sig:
				switch {
				case v == syscall.SIGUSR1 && cpu == nil:
					f, err := os.Create(filepath.Join(dir, "agents.cpu.pprof"))
					if err == nil && pprof.StartCPUProfile(f) == nil {
						cpu = f
					}
				case v == syscall.SIGUSR2:
					if cpu != nil {
						pprof.StopCPUProfile()
						cpu.Close()
						cpu = nil
					}
					runtime.GC()
					if f, err := os.Create(filepath.Join(dir, "agents.heap.pprof")); err == nil {
						_ = pprof.Lookup("heap").WriteTo(f, 0)
						f.Close()
					}
				}
			}
		}
	}()
}
