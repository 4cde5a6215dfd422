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

// Package hollow runs hollow node agents, as Kubernetes' kubemark runs
// hollow kubelets: the real agent code (internal/agent.Agent with its own
// controller-runtime manager, client and cache, as cmd/agent builds it)
// with the kernel replaced by a recording fake. Many of them in one
// process, against a real API server and the real manager, show what the
// control plane does with a thousand nodes without a thousand machines.
package hollow

import (
	"context"
	"fmt"
	"net/netip"
	"sync"

	"github.com/palisade-dev/palisade/internal/agent"
	"github.com/palisade-dev/palisade/internal/datapath"
	"github.com/palisade-dev/palisade/internal/engine"
)

// Kernel is agent.Kernel without a kernel: it records what would reach
// it. Apply keeps the state it was given (the agent does not change a
// state after applying it) and bumps the generation; attachments are a
// set of interface indexes. It never drifts, so the verify loop finds
// nothing to repair.
type Kernel struct {
	mu      sync.Mutex
	state   *engine.MapState
	gen     uint64
	applies int
	atts    map[int]bool
}

var _ agent.Kernel = (*Kernel)(nil)

// Apply records s as a new generation.
func (k *Kernel) Apply(_ context.Context, s *engine.MapState) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.state = s
	k.gen++
	k.applies++
	return nil
}

// Read returns the recorded state and its generation.
func (k *Kernel) Read() (*engine.MapState, uint64, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.state == nil {
		return &engine.MapState{}, 0, nil
	}
	return k.state.Clone(), k.gen, nil
}

// Compare finds no drift when desired is what was applied (the agent's
// case), and diffs otherwise.
func (k *Kernel) Compare(desired *engine.MapState) ([]datapath.Drift, uint64, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.state == desired {
		return nil, k.gen, nil
	}
	cur := k.state
	if cur == nil {
		cur = &engine.MapState{}
	}
	return datapath.Diff(desired, cur), k.gen, nil
}

// Generation is the number of applies so far.
func (k *Kernel) Generation() uint64 {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.gen
}

// Recorded is what reached the hollow kernel: the number of applies and
// the sizes of the last state.
type Recorded struct {
	Applies                   int
	IPCache, Endpoints, Rules int
	Attached                  int
}

// Recorded returns what the kernel holds.
func (k *Kernel) Recorded() Recorded {
	k.mu.Lock()
	defer k.mu.Unlock()
	r := Recorded{Applies: k.applies, Attached: len(k.atts)}
	if k.state != nil {
		r.IPCache, r.Endpoints, r.Rules = len(k.state.IPCache), len(k.state.Endpoints), len(k.state.Policy)
	}
	return r
}

// Attachments lists the attached interfaces.
func (k *Kernel) Attachments() ([]datapath.Attachment, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	out := make([]datapath.Attachment, 0, len(k.atts))
	for i := range k.atts {
		out = append(out, datapath.Attachment{Ifindex: i})
	}
	return out, nil
}

func (k *Kernel) attach(i int, on bool) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.atts == nil {
		k.atts = map[int]bool{}
	}
	if on {
		k.atts[i] = true
	} else {
		delete(k.atts, i)
	}
	return nil
}

// AttachWorkload records the attachment.
func (k *Kernel) AttachWorkload(i int) error { return k.attach(i, true) }

// AttachHost records the attachment.
func (k *Kernel) AttachHost(i int) error { return k.attach(i, true) }

// DetachWorkload forgets the attachment.
func (k *Kernel) DetachWorkload(i int) error { return k.attach(i, false) }

// CheckPins finds nothing wrong: there are no pins.
func (k *Kernel) CheckPins() []datapath.Problem { return nil }

// RepairPins has nothing to repair.
func (k *Kernel) RepairPins() error { return nil }

// CheckWorkload finds nothing wrong.
func (k *Kernel) CheckWorkload(int) []datapath.Problem { return nil }

// CheckHost finds nothing wrong.
func (k *Kernel) CheckHost(int) []datapath.Problem { return nil }

// RepairWorkload attaches again.
func (k *Kernel) RepairWorkload(i int) error { return k.AttachWorkload(i) }

// RepairHost attaches again.
func (k *Kernel) RepairHost(i int) error { return k.AttachHost(i) }

// Usage reports no map usage: a hollow kernel has no maps.
func (k *Kernel) Usage(*engine.MapState) []datapath.Usage { return nil }

// Counters are zero: no packet reaches a hollow kernel.
func (k *Kernel) Counters() (datapath.Counters, error) { return datapath.Counters{}, nil }

// FQDNTable is empty: a hollow kernel sees no DNS answers to learn from.
func (k *Kernel) FQDNTable() ([]datapath.FQDNEntry, error) { return nil, nil }

// ExpireFQDN has nothing to expire.
func (k *Kernel) ExpireFQDN() (int, error) { return 0, nil }

// Links resolves every workload address to an interface index derived
// from the address, as if each pod had its own veth.
type Links struct{}

var _ agent.Links = Links{}

// Interface returns an index unique to addr within a /16.
func (Links) Interface(addr netip.Addr) (int, string, error) {
	if !addr.Is4() {
		return 0, "", fmt.Errorf("hollow links: %s is not IPv4", addr)
	}
	b := addr.As4()
	i := 2 + (int(b[2])<<8 | int(b[3]))
	return i, fmt.Sprintf("hollow%d", i), nil
}

// ByName knows no host interfaces.
func (Links) ByName(name string) (int, error) {
	return 0, fmt.Errorf("hollow links: host interface %s: not found", name)
}
