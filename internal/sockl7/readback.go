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

package sockl7

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"os"
	"slices"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/ringbuf"
)

// MaxDrifts bounds what one read-back reports: past it the kernel's
// state is wrong wholesale, and the repair is the same.
const MaxDrifts = 256

// Drift is one difference between what the kernel decides requests by
// and what was applied: a map, the entry, the value applied and the one
// found ("" when the entry is absent).
type Drift struct {
	Map, Key, Want, Got string
}

func (d Drift) String() string {
	want, got := cmp.Or(d.Want, "absent"), cmp.Or(d.Got, "absent")
	return fmt.Sprintf("%s %s: want %s, found %s", d.Map, d.Key, want, got)
}

// Drifts collects the drifts of one read-back, up to MaxDrifts.
type Drifts []Drift

// Add records a drift, unless Full.
func (ds *Drifts) Add(m, key, want, got string) {
	if !ds.Full() {
		*ds = append(*ds, Drift{Map: m, Key: key, Want: want, Got: got})
	}
}

// Full reports whether MaxDrifts were recorded.
func (ds *Drifts) Full() bool { return len(*ds) >= MaxDrifts }

// ReadPeers reads a peers LPM trie (keys of PeerKey's layout): the
// identity of each prefix.
func ReadPeers(m *ebpf.Map, mapName string) (map[netip.Prefix]uint32, error) {
	out := map[netip.Prefix]uint32{}
	var k PeerKey
	var v uint32
	it := m.Iterate()
	for it.Next(&k, &v) {
		p, err := k.Prefix(mapName)
		if err != nil {
			return nil, err
		}
		out[p] = v
	}
	if err := it.Err(); err != nil {
		return nil, fmt.Errorf("read %s: %w", mapName, err)
	}
	return out, nil
}

// DeletePeer deletes the identity of prefix from a peers LPM trie
// (absent: nothing to do).
func DeletePeer(m *ebpf.Map, mapName string, prefix netip.Prefix) error {
	if err := m.Delete(PeerKeyOf(prefix)); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
		return fmt.Errorf("delete %s %v: %w", mapName, prefix, err)
	}
	return nil
}

// ComparePeers compares the identities a peers map holds (got) with
// want, the identities written. It returns the drifts and, among them,
// the prefixes the kernel holds that want lacks (to delete).
func ComparePeers(mapName string, want, got map[netip.Prefix]uint32) ([]Drift, []netip.Prefix) {
	var drifts []Drift
	var extra []netip.Prefix
	for _, p := range slices.SortedFunc(maps.Keys(want), ComparePrefixes) {
		id := want[p]
		g, ok := got[p]
		switch {
		case !ok:
			drifts = append(drifts, Drift{Map: mapName, Key: p.String(), Want: fmt.Sprintf("identity %d", id)})
		case g != id:
			drifts = append(drifts, Drift{Map: mapName, Key: p.String(), Want: fmt.Sprintf("identity %d", id), Got: fmt.Sprintf("identity %d", g)})
		}
	}
	for _, p := range slices.SortedFunc(maps.Keys(got), ComparePrefixes) {
		if _, ok := want[p]; !ok {
			drifts = append(drifts, Drift{Map: mapName, Key: p.String(), Got: fmt.Sprintf("identity %d", got[p])})
			extra = append(extra, p)
		}
	}
	return drifts, extra
}

// ComparePrefixes orders prefixes by address, then length.
func ComparePrefixes(x, y netip.Prefix) int {
	return cmp.Or(x.Addr().Compare(y.Addr()), cmp.Compare(x.Bits(), y.Bits()))
}

// ComparePorts compares the enforced addresses and ports a ports map
// holds (keys of PortKey's layout, value 1) with want, into ds. The keys
// it finds beyond want are returned, in order, for the next Apply to
// delete.
func ComparePorts(ds *Drifts, mapName string, m *ebpf.Map, want map[PortKey]bool) ([]PortKey, error) {
	found := map[PortKey]uint32{}
	var k PortKey
	var v uint32
	it := m.Iterate()
	for it.Next(&k, &v) {
		found[k] = v
	}
	if err := it.Err(); err != nil {
		return nil, fmt.Errorf("read %s: %w", mapName, err)
	}
	order := func(x, y PortKey) int { return cmp.Compare(x.String(), y.String()) }
	for _, pk := range slices.SortedFunc(maps.Keys(want), order) {
		got, ok := found[pk]
		delete(found, pk)
		switch {
		case !ok:
			ds.Add(mapName, pk.String(), "enforced", "")
		case got != 1:
			ds.Add(mapName, pk.String(), "enforced (1)", fmt.Sprint(got))
		}
	}
	extra := slices.SortedFunc(maps.Keys(found), order)
	for _, pk := range extra {
		ds.Add(mapName, pk.String(), "", fmt.Sprint(found[pk]))
	}
	return extra, nil
}

// Events reads a ring buffer of verdict events until ctx ends, decoding
// each record; the channel is closed then (or when the ring buffer
// cannot be read or a record decoded: the error is sent on errs, which
// has room for one).
func Events[E any](ctx context.Context, m *ebpf.Map, mapName string, decode func([]byte) (E, error)) (<-chan E, <-chan error, error) {
	rd, err := ringbuf.NewReader(m)
	if err != nil {
		return nil, nil, fmt.Errorf("open %s: %w", mapName, err)
	}
	out := make(chan E, 256)
	errs := make(chan error, 1)
	go func() {
		<-ctx.Done()
		rd.Close()
	}()
	go func() {
		defer close(out)
		for {
			rec, err := rd.Read()
			if err != nil {
				if !errors.Is(err, ringbuf.ErrClosed) && !errors.Is(err, os.ErrDeadlineExceeded) {
					errs <- fmt.Errorf("read %s: %w", mapName, err)
				}
				return
			}
			e, err := decode(rec.RawSample)
			if err != nil {
				errs <- err
				return
			}
			select {
			case out <- e:
			case <-ctx.Done():
				return
			}
		}
	}()
	return out, errs, nil
}

// EventAddrs are an event's local and remote address and port, from its
// family (4 or 6) and 16-byte addresses.
func EventAddrs(family uint8, local, remote [16]byte, localPort, remotePort uint16) (netip.AddrPort, netip.AddrPort) {
	var l, r netip.Addr
	if family == 4 {
		l = netip.AddrFrom4([4]byte(local[:4]))
		r = netip.AddrFrom4([4]byte(remote[:4]))
	} else {
		l = netip.AddrFrom16(local).Unmap()
		r = netip.AddrFrom16(remote).Unmap()
	}
	return netip.AddrPortFrom(l, localPort), netip.AddrPortFrom(r, remotePort)
}
