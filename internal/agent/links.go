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
	"fmt"
	"net"
	"net/netip"

	"github.com/vishvananda/netlink"
)

// RouteLinks finds a workload's host-side interface the way the node
// routes to it: the route to a pod address on a veth-based CNI points at
// the pod's host-side veth.
type RouteLinks struct{}

// Interface implements Links.
func (RouteLinks) Interface(addr netip.Addr) (int, string, error) {
	routes, err := netlink.RouteGet(net.IP(addr.AsSlice()))
	if err != nil {
		return 0, "", fmt.Errorf("route to %s: %w", addr, err)
	}
	if len(routes) == 0 {
		return 0, "", fmt.Errorf("no route to %s", addr)
	}
	r := routes[0]
	l, err := netlink.LinkByIndex(r.LinkIndex)
	if err != nil {
		return 0, "", fmt.Errorf("route to %s: interface %d: %w", addr, r.LinkIndex, err)
	}
	name := l.Attrs().Name
	if r.Gw != nil {
		return 0, "", fmt.Errorf("the route to %s goes through gateway %s on %s, not to a local workload's interface", addr, r.Gw, name)
	}
	if l.Type() != "veth" {
		return 0, "", fmt.Errorf("the route to %s leads to %s, a %s interface, not a workload's veth", addr, name, l.Type())
	}
	return r.LinkIndex, name, nil
}

// ByName returns the index of the named interface.
func (RouteLinks) ByName(name string) (int, error) {
	l, err := netlink.LinkByName(name)
	if err != nil {
		return 0, fmt.Errorf("host interface %s: %w", name, err)
	}
	return l.Attrs().Index, nil
}

// WatchLinks calls fn on every link change (added, removed, up, down)
// until ctx ends: a detached or re-created interface is verified at once
// rather than at the next period.
func WatchLinks(ctx context.Context, fn func()) error {
	ch := make(chan netlink.LinkUpdate, 64)
	done := make(chan struct{})
	if err := netlink.LinkSubscribe(ch, done); err != nil {
		return fmt.Errorf("subscribe to link events: %w", err)
	}
	defer close(done)
	for {
		select {
		case <-ctx.Done():
			return nil
		case _, ok := <-ch:
			if !ok {
				return fmt.Errorf("link event subscription closed")
			}
			fn()
		}
	}
}
