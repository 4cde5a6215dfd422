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
	"net/netip"
	"reflect"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	v1 "github.com/palisade-dev/palisade/api/v1alpha1"
	"github.com/palisade-dev/palisade/internal/datapath"
	"github.com/palisade-dev/palisade/internal/metrics"
)

// The verify pass expires the kernel's learned toFQDNs entries and shows
// the table on NodeEnforcement, bounded, with the capped names and what
// was not learned; an unchanged table writes nothing.
func TestFQDNTableOnNodeEnforcement(t *testing.T) {
	f := newFixture(t)
	m, err := metrics.New(prometheus.NewRegistry(), "")
	if err != nil {
		t.Fatal(err)
	}
	f.a.Metrics = m
	f.pod("api", "api", "10.0.0.2", 2, false)
	f.policy("api", "r1", 1, allowFrontend)
	if _, err := f.sync(); err != nil {
		t.Fatal(err)
	}
	// An empty table: no status.fqdn, the gauges at 0 (this pass once
	// dereferenced the nil summary).
	f.a.VerifyNow(context.Background())
	if got := f.status().Status.FQDN; got != nil {
		t.Fatalf("status.fqdn with nothing learned: %+v", got)
	}
	if g := gaugeValue(t, m.FQDNNames); g != 0 {
		t.Fatalf("palisade_fqdn_names = %v with nothing learned", g)
	}
	now := time.Unix(1_800_000_000, 0)
	f.k.now = func() time.Time { return now }
	addr := func(s string, ttl time.Duration) datapath.FQDNAddr {
		return datapath.FQDNAddr{Addr: netip.MustParseAddr(s), Expires: now.Add(ttl)}
	}
	f.k.fqdn = []datapath.FQDNEntry{
		{Name: "api.stripe.com", Addrs: []datapath.FQDNAddr{addr("203.0.113.9", time.Minute), addr("203.0.113.7", time.Minute), addr("2001:db8::1", time.Second)}},
		{Name: "cdn.example.com", Addrs: []datapath.FQDNAddr{addr("198.51.100.1", time.Hour)}, Capped: true},
		{Name: "gone.example.com", Addrs: []datapath.FQDNAddr{addr("198.51.100.2", time.Second)}},
	}
	f.k.counters = datapath.Counters{FQDNLearned: 9, FQDNCap: 3, FQDNUnsolicited: 1}
	f.a.VerifyNow(context.Background())
	got := f.status().Status.FQDN
	want := &v1.FQDNSummary{Names: 3, Addresses: 5,
		Table: map[string][]string{
			"api.stripe.com":   {"2001:db8::1", "203.0.113.7", "203.0.113.9"},
			"cdn.example.com":  {"198.51.100.1"},
			"gone.example.com": {"198.51.100.2"},
		},
		Capped:     []string{"cdn.example.com"},
		NotLearned: map[string]int64{"cap": 3, "unsolicited": 1},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("status.fqdn:\n got %+v\nwant %+v", got, want)
	}

	// Two seconds on, the short entries expire: the kernel's table loses
	// them, and so does the status.
	now = now.Add(2 * time.Second)
	f.a.VerifyNow(context.Background())
	got = f.status().Status.FQDN
	if got.Names != 2 || got.Addresses != 3 || got.Table["gone.example.com"] != nil || len(got.Table["api.stripe.com"]) != 2 {
		t.Fatalf("after expiry: %+v", got)
	}
	if len(f.k.fqdn[2].Addrs) != 0 || len(f.k.fqdn[0].Addrs) != 2 {
		t.Fatalf("the verify pass did not expire the kernel's entries: %+v", f.k.fqdn)
	}

	// The gauges follow the table.
	if g := gaugeValue(t, m.FQDNAddresses); g != 3 {
		t.Errorf("palisade_fqdn_addresses = %v, want 3", g)
	}

	// Nothing changed: no write.
	rv := f.status().ResourceVersion
	f.a.VerifyNow(context.Background())
	if f.status().ResourceVersion != rv {
		t.Error("an unchanged toFQDNs table wrote the status again")
	}
}

// A table larger than the status bounds is listed in part, and says so;
// the counts stay whole.
func TestFQDNSummaryBounds(t *testing.T) {
	var table []datapath.FQDNEntry
	for i := range v1.MaxFQDNNamesListed + 10 {
		e := datapath.FQDNEntry{Name: fmt.Sprintf("n%04d.example.com", i)}
		n := 1
		if i == 0 {
			n = v1.MaxFQDNAddrsListed + 5
		}
		for j := range n {
			e.Addrs = append(e.Addrs, datapath.FQDNAddr{Addr: netip.AddrFrom4([4]byte{10, byte(i >> 8), byte(i), byte(j)})})
		}
		table = append(table, e)
	}
	s := fqdnSummary(table, datapath.Counters{})
	if s.Names != int64(len(table)) || s.Addresses != int64(len(table)-1+v1.MaxFQDNAddrsListed+5) {
		t.Errorf("counts: %d names, %d addresses", s.Names, s.Addresses)
	}
	if !s.Truncated || len(s.Table) != v1.MaxFQDNNamesListed || len(s.Table["n0000.example.com"]) != v1.MaxFQDNAddrsListed {
		t.Errorf("bounds: truncated %v, %d names, %d addresses of the first", s.Truncated, len(s.Table), len(s.Table["n0000.example.com"]))
	}
	if _, ok := s.Table[fmt.Sprintf("n%04d.example.com", v1.MaxFQDNNamesListed)]; ok {
		t.Error("the table lists a name past the bound, not the first ones in name order")
	}
	if fqdnSummary(nil, datapath.Counters{FQDNLearned: 4}) != nil {
		t.Error("an empty table with nothing refused shows a summary")
	}
}

func gaugeValue(t *testing.T, g prometheus.Gauge) float64 {
	t.Helper()
	var m dto.Metric
	if err := g.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetGauge().GetValue()
}
