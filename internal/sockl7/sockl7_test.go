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
	"net/netip"
	"testing"
)

// TestPeerKeyRoundTrip: a prefix's key reads back as the prefix (an
// IPv4-mapped one as its IPv4 prefix); a key Palisade never writes is an
// error naming the map.
func TestPeerKeyRoundTrip(t *testing.T) {
	for in, want := range map[string]string{
		"10.0.0.0/8": "10.0.0.0/8", "0.0.0.0/0": "0.0.0.0/0", "10.1.2.3/32": "10.1.2.3/32", "::/0": "::/0",
		"2001:db8::/32": "2001:db8::/32", "::ffff:10.0.0.0/104": "10.0.0.0/8",
	} {
		k := PeerKeyOf(netip.MustParsePrefix(in))
		got, err := k.Prefix("peers")
		if err != nil || got.String() != want {
			t.Errorf("PeerKeyOf(%s).Prefix() = %v, %v; want %s", in, got, err, want)
		}
	}
	if _, err := (PeerKey{Family: 4, Prefixlen: 80}).Prefix("kafka_peers"); err == nil || err.Error() != "kafka_peers holds a key of family 4 and length 80, which Palisade never writes" {
		t.Errorf("bad key: %v", err)
	}
}

// TestKeysAndDrifts: addresses key by family (unspecified: all zero),
// keys print as the read-back names them, and Drifts stops at MaxDrifts.
func TestKeysAndDrifts(t *testing.T) {
	if fam, a := AddrKey(netip.IPv6Unspecified()); fam != 6 || a != [16]byte{} {
		t.Errorf("AddrKey(::) = %d %v", fam, a)
	}
	if got := PortKeyOf(netip.MustParseAddr("::ffff:10.1.0.5"), 9092).String(); got != "{10.1.0.5:9092}" {
		t.Errorf("port key %s", got)
	}
	if got := BindKeyOf(1, netip.MustParseAddr("10.1.0.5"), 9092, 300).String(); got != "{slot 1 identity 300 10.1.0.5:9092}" {
		t.Errorf("bind key %s", got)
	}
	var ds Drifts
	for range MaxDrifts + 5 {
		ds.Add("m", "k", "w", "")
	}
	if len(ds) != MaxDrifts || !ds.Full() || ds[0].String() != "m k: want w, found absent" {
		t.Errorf("%d drifts, first %v", len(ds), ds[0])
	}
}
