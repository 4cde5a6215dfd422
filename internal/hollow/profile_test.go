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
// child write a heap profile. The API server's is taken apart
// (apiServerProfile).
func (s *scale) startProfiles() func() {
	return s.profile("manager.cpu.pprof", true)
}

// startPhaseProfiles starts this process's CPU profile of the agents'
// start (from the child's launch to every node enforcing the first
// revision); the child profiles itself from its launch (childProfiles).
// The returned func stops both and has the child write its heap.
func (s *scale) startPhaseProfiles() func() {
	return s.profile("manager.start.cpu.pprof", false)
}

func (s *scale) profile(name string, signalStart bool) func() {
	dir := *flagProfile
	if dir == "" {
		return func() {}
	}
	s.must(os.MkdirAll(dir, 0o755))
	f, err := os.Create(filepath.Join(dir, name))
	s.must(err)
	s.must(pprof.StartCPUProfile(f))
	if signalStart {
		s.must(s.child.Process.Signal(syscall.SIGUSR1))
	}
	return func() {
		pprof.StopCPUProfile()
		s.must(f.Close())
		s.must(s.child.Process.Signal(syscall.SIGUSR2))
		s.logf("profiles in %s", dir)
	}
}

// childProfiles, in the agents' process, profiles the start phase from
// its launch (agents.start.cpu.pprof) until the first SIGUSR2, which
// writes agents.start.heap.pprof; then starts a CPU profile on SIGUSR1
// (agents.cpu.pprof) and on SIGUSR2 stops it and writes a heap profile
// (agents.heap.pprof). Heap profiles follow a GC: what the agents hold,
// not their garbage. It runs before any agent starts, so the parent's
// signals never find SIGUSR1 and SIGUSR2 at their default (exit).
func childProfiles(ctx context.Context, dir string) {
	if dir == "" {
		return
	}
	sig := make(chan os.Signal, 2)
	signal.Notify(sig, syscall.SIGUSR1, syscall.SIGUSR2)
	var cpu *os.File
	start := func(name string) {
		f, err := os.Create(filepath.Join(dir, name))
		if err == nil && pprof.StartCPUProfile(f) == nil {
			cpu = f
		}
	}
	phase := "start."
	start("agents.start.cpu.pprof")
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case v := <-sig:
				switch {
				case v == syscall.SIGUSR1 && cpu == nil:
					start("agents.cpu.pprof")
				case v == syscall.SIGUSR2:
					if cpu != nil {
						pprof.StopCPUProfile()
						cpu.Close()
						cpu = nil
					}
					runtime.GC()
					if f, err := os.Create(filepath.Join(dir, "agents."+phase+"heap.pprof")); err == nil {
						_ = pprof.Lookup("heap").WriteTo(f, 0)
						f.Close()
					}
					phase = ""
				}
			}
		}
	}()
}
