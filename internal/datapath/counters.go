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

package datapath

import (
	"fmt"

	"github.com/palisade-dev/palisade/bpf"
)

// Counters are the programs' per-CPU counters, summed over CPUs.
type Counters struct {
	Packets     uint64 // every packet the programs saw
	Allowed     uint64 // decided allow by policy (not replies)
	Denied      uint64 // dropped by policy
	Audited     uint64 // allowed, but an audit-mode policy would drop them
	NotEnforced uint64 // the enforcement point is not a managed endpoint (passed)
	Replies     uint64 // replies of tracked connections
	Malformed   uint64 // IP packets the parser rejected (dropped)
	NonIP       uint64 // not IPv4 or IPv6 (passed)
	Fragments   uint64 // IP fragments of enforced endpoints
	// EventsLost counts events lost because the ring buffer was full;
	// EventsLostDenied, EventsLostAllowed and EventsLostAudited split it
	// by the lost event's verdict.
	EventsLost uint64
	NoState    uint64 // packets seen before the first generation (passed on host interfaces)
	// L7Unenforced counts packets allowed on a port with L7 rules, which
	// the kernel does not match yet (allowed at L4).
	L7Unenforced uint64
	// NoEndpoint counts packets dropped on a workload's interface, which
	// fails closed: the local address has no endpoint entry in the active
	// generation (event reason no-endpoint), or there is no generation yet
	// (no-state; those count in NoState too). Addresses that are never a
	// workload's own are exempt (docs/datapath.md).
	NoEndpoint uint64
	// EventsSent counts the events written to the ring buffer: a reader
	// that received fewer lost the difference on its side.
	EventsSent        uint64
	EventsLostDenied  uint64
	EventsLostAllowed uint64
	EventsLostAudited uint64
	// DNS queries on ports with DNS rules (docs/datapath.md, "DNS"):
	// decided in the kernel (DNSQueries), of which allowed, refused by
	// rule and audited; those it could not decide, by reason (refused
	// where the enforcing rules restrict names, passed where they do not);
	// and the answers it crafted for refused UDP queries.
	DNSQueries   uint64
	DNSAllowed   uint64
	DNSRefused   uint64
	DNSAudited   uint64
	DNSMalformed uint64 // bad header or lengths, a truncated question, a label of 64 or more, not a QUERY
	DNSPointer   uint64 // a compression pointer in a question
	DNSQDCount   uint64 // 0 or more than 4 questions
	DNSName      uint64 // a name with a byte outside 0x21-0x7e or a '.' in a label, or longer than 253
	DNSSplit     uint64 // not one whole message in the packet (TCP segment, IP fragment)
	DNSAnswered  uint64
	// toFQDNs (docs/datapath.md, "toFQDNs"): queries tracked for their
	// answers, and those not tracked (not one question, a name the parser
	// refuses); answers of tracked queries read (FQDNAnswers) and
	// addresses learned or refreshed (FQDNLearned); answers that taught
	// nothing, by reason; answer records past the bound (not read); and
	// addresses not learned, by reason.
	FQDNTracked     uint64
	FQDNUntracked   uint64
	FQDNAnswers     uint64
	FQDNLearned     uint64
	FQDNUnsolicited uint64 // no tracked query for the tuple and id, or another question name
	FQDNMalformed   uint64 // bad header or lengths, a record past the message, a bad label or name
	FQDNPointer     uint64 // a compression pointer forward, out of the message, or past the jump bound (loops)
	FQDNRcode       uint64 // an answer with an RCODE other than 0 (or not a QUERY's)
	FQDNSplit       uint64 // not whole in the packet: IP fragment, TCP segment, more than 4096 bytes
	FQDNRecords     uint64 // answers with more than 64 records: the rest were not read
	FQDNCap         uint64 // the name held its cap of addresses
	FQDNSlots       uint64 // the address held four other names
	FQDNFull        uint64 // fqdn_names or fqdn_addrs was full
	// FlowCacheFills counts flow cache slots written: allowed packets of
	// IPv4 connections that the cache did not answer (docs/datapath.md,
	// "The flow cache"). Against Allowed, how often it missed.
	FlowCacheFills uint64
}

// FQDNEvents returns the toFQDNs counters by event name: "fqdn-learned"
// and the reasons an answer or an address taught nothing.
func (c Counters) FQDNEvents() map[string]uint64 {
	return map[string]uint64{
		"fqdn-tracked":     c.FQDNTracked,
		"fqdn-untracked":   c.FQDNUntracked,
		"fqdn-answers":     c.FQDNAnswers,
		"fqdn-learned":     c.FQDNLearned,
		"fqdn-unsolicited": c.FQDNUnsolicited,
		"fqdn-malformed":   c.FQDNMalformed,
		"fqdn-pointer":     c.FQDNPointer,
		"fqdn-rcode":       c.FQDNRcode,
		"fqdn-split":       c.FQDNSplit,
		"fqdn-records":     c.FQDNRecords,
		"fqdn-cap":         c.FQDNCap,
		"fqdn-slots":       c.FQDNSlots,
		"fqdn-full":        c.FQDNFull,
	}
}

// Counters reads and sums the per-CPU counters.
func (d *Datapath) Counters() (Counters, error) {
	var c Counters
	fields := []*uint64{&c.Packets, &c.Allowed, &c.Denied, &c.Audited, &c.NotEnforced, &c.Replies,
		&c.Malformed, &c.NonIP, &c.Fragments, &c.EventsLost, &c.NoState, &c.L7Unenforced, &c.NoEndpoint,
		&c.EventsSent, &c.EventsLostDenied, &c.EventsLostAllowed, &c.EventsLostAudited,
		&c.DNSQueries, &c.DNSAllowed, &c.DNSRefused, &c.DNSAudited, &c.DNSMalformed, &c.DNSPointer,
		&c.DNSQDCount, &c.DNSName, &c.DNSSplit, &c.DNSAnswered,
		&c.FQDNTracked, &c.FQDNUntracked, &c.FQDNAnswers, &c.FQDNLearned, &c.FQDNUnsolicited, &c.FQDNMalformed,
		&c.FQDNPointer, &c.FQDNRcode, &c.FQDNSplit, &c.FQDNRecords, &c.FQDNCap, &c.FQDNSlots, &c.FQDNFull, &c.FlowCacheFills}
	if len(fields) != int(bpf.PalisadeCounterCOUNTER_MAX) {
		return c, fmt.Errorf("counters: %d fields for %d counters", len(fields), bpf.PalisadeCounterCOUNTER_MAX)
	}
	var per []uint64
	for i, f := range fields {
		if err := d.objs.Counters.Lookup(uint32(i), &per); err != nil {
			return c, fmt.Errorf("read counter %d: %w", i, err)
		}
		for _, v := range per {
			*f += v
		}
	}
	return c, nil
}
