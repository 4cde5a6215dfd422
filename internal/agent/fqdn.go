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
	"maps"
	"slices"
	"strings"

	v1 "github.com/palisade-dev/palisade/api/v1alpha1"
	"github.com/palisade-dev/palisade/internal/datapath"
)

// fqdnVerify is the toFQDNs part of the network subsystem's verify pass:
// it expires the kernel's learned entries whose TTL ran out (the kernel
// ignores them already; this frees their room), reads the table for the
// node's status and exports the DNS and toFQDNs counters.
func (n *network) fqdnVerify(c datapath.Counters) error {
	if n.a.Datapath == nil {
		return nil
	}
	a := n.a
	if _, err := a.Datapath.ExpireFQDN(); err != nil {
		return err
	}
	table, err := a.Datapath.FQDNTable()
	if err != nil {
		return err
	}
	n.fqdn = fqdnSummary(table, c)
	if a.Metrics != nil {
		var names, addrs int64
		if n.fqdn != nil { // nil: nothing learned, nothing refused
			names, addrs = n.fqdn.Names, n.fqdn.Addresses
		}
		a.Metrics.FQDNNames.Set(float64(names))
		a.Metrics.FQDNAddresses.Set(float64(addrs))
	}
	return nil
}

// fqdnSummary bounds the kernel's table for NodeEnforcement: at most
// MaxFQDNNamesListed names of at most MaxFQDNAddrsListed addresses, in
// name order, and the counts of what was not learned. It holds no expiry
// times, so an unchanged table writes no status.
func fqdnSummary(table []datapath.FQDNEntry, c datapath.Counters) *v1.FQDNSummary {
	s := &v1.FQDNSummary{NotLearned: map[string]int64{}}
	for reason, v := range fqdnNotLearned(c) {
		if v > 0 {
			s.NotLearned[reason] = int64(v)
		}
	}
	for _, e := range slices.SortedFunc(slices.Values(table), func(x, y datapath.FQDNEntry) int { return strings.Compare(x.Name, y.Name) }) {
		if len(e.Addrs) == 0 {
			continue
		}
		s.Names++
		s.Addresses += int64(len(e.Addrs))
		if e.Capped && len(s.Capped) < v1.MaxFQDNNamesListed {
			s.Capped = append(s.Capped, e.Name)
		}
		if len(s.Table) >= v1.MaxFQDNNamesListed {
			s.Truncated = true
			continue
		}
		addrs := make([]string, 0, min(len(e.Addrs), v1.MaxFQDNAddrsListed))
		for _, ad := range e.Addrs {
			addrs = append(addrs, ad.Addr.String())
		}
		slices.Sort(addrs)
		if len(addrs) > v1.MaxFQDNAddrsListed {
			addrs, s.Truncated = addrs[:v1.MaxFQDNAddrsListed], true
		}
		if s.Table == nil {
			s.Table = map[string][]string{}
		}
		s.Table[e.Name] = addrs
	}
	if s.Names == 0 && len(s.NotLearned) == 0 {
		return nil
	}
	if len(s.NotLearned) == 0 {
		s.NotLearned = nil
	}
	return s
}

// fqdnNotLearned is the datapath's counters of answers and addresses it
// did not learn, by reason ("cap", "full", "unsolicited", ...): every
// toFQDNs event but the queries tracked, the answers read and the
// addresses learned.
func fqdnNotLearned(c datapath.Counters) map[string]uint64 {
	out := maps.Clone(c.FQDNEvents())
	for _, ok := range []string{"fqdn-tracked", "fqdn-answers", "fqdn-learned"} {
		delete(out, ok)
	}
	for k, v := range out {
		delete(out, k)
		out[strings.TrimPrefix(k, "fqdn-")] = v
	}
	return out
}

// countFQDN exports the toFQDNs counters' growth since the last pass.
func (n *network) countFQDN(c datapath.Counters) {
	if n.a.Metrics == nil {
		return
	}
	was := n.lastCounters.FQDNEvents()
	for ev, v := range c.FQDNEvents() {
		if v > was[ev] {
			n.a.Metrics.FQDN.WithLabelValues(strings.TrimPrefix(ev, "fqdn-")).Add(float64(v - was[ev]))
		}
	}
}
