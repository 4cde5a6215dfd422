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
	"context"
	"net/netip"

	"github.com/palisade-dev/palisade/internal/datapath"
	"github.com/palisade-dev/palisade/internal/engine"
)

// Kernel is the part of the datapath the network subsystem drives.
// *datapath.Datapath implements it; the agent's unit tests use a fake, so
// that its decisions (attach, fail closed, pending identities, merging
// errors) are tested without root.
type Kernel interface {
	// Apply writes s as a new generation and switches to it atomically;
	// a *datapath.CapacityError means nothing was written.
	Apply(ctx context.Context, s *engine.MapState) error
	// Read returns the state of the active generation and its number.
	Read() (*engine.MapState, uint64, error)
	// Compare lists how the kernel differs from desired.
	Compare(desired *engine.MapState) ([]datapath.Drift, uint64, error)
	// Generation is the active generation, 0 before the first Apply.
	Generation() uint64
	Attachments() ([]datapath.Attachment, error)
	AttachWorkload(ifindex int) error
	AttachHost(ifindex int) error
	DetachWorkload(ifindex int) error
	CheckPins() []datapath.Problem
	RepairPins() error
	CheckWorkload(ifindex int) []datapath.Problem
	CheckHost(ifindex int) []datapath.Problem
	RepairWorkload(ifindex int) error
	RepairHost(ifindex int) error
	Usage(s *engine.MapState) []datapath.Usage
	Counters() (datapath.Counters, error)
	// FQDNTable reads the toFQDNs names and addresses the kernel learned.
	FQDNTable() ([]datapath.FQDNEntry, error)
	// ExpireFQDN deletes the learned addresses whose TTL ran out.
	ExpireFQDN() (int, error)
}

var _ Kernel = (*datapath.Datapath)(nil)

// Links finds the host-side interfaces the agent attaches to.
type Links interface {
	// Interface returns the index and name of the host interface that
	// leads to addr, which must be a workload's own interface (a veth),
	// not a route through a gateway.
	Interface(addr netip.Addr) (int, string, error)
	// ByName returns the index of a host interface.
	ByName(name string) (int, error)
}
