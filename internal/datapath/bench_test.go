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
	"context"
	"encoding/binary"
	"fmt"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/cilium/ebpf"

	"github.com/palisade-dev/palisade/internal/engine"
)

// benchState is endpoint A with n policy entries; A→B TCP 80 is allowed
// by a full-length entry (the hash path) and A→B TCP 5000 by a /16 range
// (the LPM path). The other entries are full-length ports of other peers.
func benchState(n int) *engine.MapState {
	A, B := addr("10.0.0.1"), addr("10.0.0.2")
	s := &engine.MapState{
		Endpoints: map[netip.Addr]engine.EndpointEntry{A: {Identity: 256, PolicyID: 256, Flags: engine.EgressDefaultDeny | engine.IngressDefaultDeny}},
		IPCache:   map[netip.Prefix]engine.Identity{netip.PrefixFrom(A, 32): 256, netip.PrefixFrom(B, 32): 257},
		Policy: map[engine.PolicyKey]engine.PolicyEntry{
			{PolicyID: 256, Direction: engine.Egress, Identity: 257, Proto: engine.ProtoTCP, Port: 80, PrefixLen: 24}:   {Flags: engine.FlagAllow, AllowRule: 1},
			{PolicyID: 256, Direction: engine.Egress, Identity: 257, Proto: engine.ProtoTCP, Port: 4096, PrefixLen: 12}: {Flags: engine.FlagAllow, AllowRule: 2},
		},
	}
	for i := 0; len(s.Policy) < n; i++ {
		k := engine.PolicyKey{PolicyID: 256, Direction: engine.Egress, Identity: engine.Identity(1000 + i/1000), Proto: engine.ProtoTCP, Port: uint16(i % 1000), PrefixLen: 24}
		s.Policy[k] = engine.PolicyEntry{Flags: engine.FlagAllow, AllowRule: engine.RuleID(10 + i)}
	}
	return s
}

func benchPacket(dport uint16) []byte {
	return packet{src: addr("10.0.0.1"), dst: addr("10.0.0.2"), proto: 6, sport: 40000, dport: dport, tcpFlags: 0x10, payload: 64}.build()
}

// BenchmarkParseOnly is the baseline: the parser alone.
func BenchmarkParseOnly(b *testing.B) {
	d := openTest(b, nil)
	benchRun(b, d, "parse", benchPacket(80))
}

// BenchmarkPolicy is the whole program on an allowed, established
// connection with n rules, on the hash and the LPM path, repeated inside
// BPF_PROG_TEST_RUN calls: with the flow cache (as the agent loads it;
// after the first packet the cache answers) and without it (the conntrack4
// fast path), and the parse-only baseline, in benchRounds interleaved
// rounds. ns/pkt is the median round with the cache; over-ns the median of
// each round's difference from its own baseline; nocache-* the same
// without the cache.
func BenchmarkPolicy(b *testing.B) {
	on := openTest(b, nil)
	off := openTest(b, &Options{flowCacheOff: true})
	for _, n := range []int{10, 1000, 10000, 100000} {
		for _, d := range []*Datapath{on, off} {
			if err := d.Apply(context.Background(), benchState(n)); err != nil {
				b.Fatal(err)
			}
		}
		for _, path := range []struct {
			name string
			port uint16
		}{{"hash", 80}, {"lpm", 5000}} {
			b.Run(fmt.Sprintf("rules=%d/path=%s", n, path.name), func(b *testing.B) {
				pkt := benchPacket(path.port)
				benchRounds(b, []*ebpf.Program{on.objs.PalisadeParseOnly, on.objs.PalisadeFromEndpoint, off.objs.PalisadeFromEndpoint},
					func(p *ebpf.Program, reps int) time.Duration {
						ret, per, err := p.Benchmark(pkt, reps, nil)
						if err != nil {
							b.Fatal(err)
						}
						if ret != actPass {
							b.Fatalf("benchmark packet returned %d, want pass", int32(ret))
						}
						return per
					})
			})
		}
	}
}

// benchRoundCount is the interleaved rounds of BenchmarkPolicy and
// BenchmarkFlows: the load of a shared machine shifts all three
// programs of a round alike.
const benchRoundCount = 15

// benchRounds runs progs (the baseline, with the cache, without) in
// benchRoundCount rounds of b.N/benchRounds packets each, through run (ns per
// packet of reps packets), and reports the medians.
func benchRounds(b *testing.B, progs []*ebpf.Program, run func(p *ebpf.Program, reps int) time.Duration) {
	reps := max(b.N/benchRoundCount, 1)
	for _, p := range progs { // warm up: establish the connection, fill the cache
		run(p, 1)
	}
	var base, with, without, over, overOff []float64
	b.ResetTimer()
	for range benchRoundCount {
		pb, pw, po := float64(run(progs[0], reps)), float64(run(progs[1], reps)), float64(run(progs[2], reps))
		base, with, without = append(base, pb), append(with, pw), append(without, po)
		over, overOff = append(over, pw-pb), append(overOff, po-pb)
	}
	b.ReportMetric(median(with), "ns/pkt")
	b.ReportMetric(median(base), "parse-ns/pkt")
	b.ReportMetric(median(over), "over-ns")
	b.ReportMetric(median(without), "nocache-ns/pkt")
	b.ReportMetric(median(overOff), "nocache-over-ns")
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	return s[len(s)/2]
}

// BenchmarkFlows is the flow cache's worst case beside its best: packets
// of n established connections (A to B, TCP 80, a source port each, 10
// rules), one packet per BPF_PROG_TEST_RUN call round-robin over the
// connections, so that with more connections than slots (8192 per CPU)
// most packets find their slot taken by another and go to conntrack4.
// With the cache and without, and the parse-only baseline, measured alike
// in interleaved rounds (each figure carries the per-call overhead; the
// differences do not); fills/pkt is the share of packets the cache did
// not answer.
func BenchmarkFlows(b *testing.B) {
	on := openTest(b, nil)
	off := openTest(b, &Options{flowCacheOff: true})
	for _, d := range []*Datapath{on, off} {
		if err := d.Apply(context.Background(), benchState(10)); err != nil {
			b.Fatal(err)
		}
	}
	for _, n := range []int{1, 1000, 10000, 60000} {
		pkts := make([][]byte, n)
		for i := range pkts {
			pkts[i] = benchPacket(80)
			binary.BigEndian.PutUint16(pkts[i][14+20:], uint16(1024+i))
		}
		b.Run(fmt.Sprintf("flows=%d", n), func(b *testing.B) {
			next := map[*ebpf.Program]int{}
			for _, p := range []*ebpf.Program{on.objs.PalisadeFromEndpoint, off.objs.PalisadeFromEndpoint} {
				for _, pkt := range pkts { // establish every connection
					if ret, _, err := p.Benchmark(pkt, 1, nil); err != nil || ret != actPass {
						b.Fatalf("warm-up packet: ret %d, err %v", int32(ret), err)
					}
				}
			}
			before, err := on.Counters()
			if err != nil {
				b.Fatal(err)
			}
			benchRounds(b, []*ebpf.Program{on.objs.PalisadeParseOnly, on.objs.PalisadeFromEndpoint, off.objs.PalisadeFromEndpoint},
				func(p *ebpf.Program, reps int) time.Duration {
					var total time.Duration
					for range reps {
						i := next[p]
						next[p] = (i + 1) % len(pkts)
						ret, per, err := p.Benchmark(pkts[i], 1, nil)
						if err != nil {
							b.Fatal(err)
						}
						if ret != actPass {
							b.Fatalf("benchmark packet returned %d, want pass", int32(ret))
						}
						total += per
					}
					return total / time.Duration(reps)
				})
			after, err := on.Counters()
			if err != nil {
				b.Fatal(err)
			}
			if a := after.Allowed - before.Allowed; a > 0 {
				b.ReportMetric(float64(after.FlowCacheFills-before.FlowCacheFills)/float64(a), "fills/pkt")
			}
		})
	}
}

// BenchmarkPerPacket measures one packet per BPF_PROG_TEST_RUN call, as
// the kernel times it (so every figure carries the same per-call overhead
// of the test run's timer): the parse-only baseline, packets of an
// established connection (the same packet each time), and first packets
// (a new source port each time: every packet misses conntrack, is decided
// by policy and creates its connection), with n rules on the hash and the
// LPM path.
func BenchmarkPerPacket(b *testing.B) {
	d := openTest(b, nil)
	b.Run("prog=parse", func(b *testing.B) { benchPerCall(b, d, d.objs.PalisadeParseOnly, 80, false) })
	for _, n := range []int{10, 1000, 10000, 100000} {
		if err := d.Apply(context.Background(), benchState(n)); err != nil {
			b.Fatal(err)
		}
		for _, path := range []struct {
			name string
			port uint16
		}{{"hash", 80}, {"lpm", 5000}} {
			for _, first := range []bool{false, true} {
				flow := "established"
				if first {
					flow = "first"
				}
				b.Run(fmt.Sprintf("rules=%d/path=%s/flow=%s", n, path.name, flow), func(b *testing.B) {
					clearTracking(b, d)
					benchPerCall(b, d, d.objs.PalisadeFromEndpoint, path.port, first)
				})
			}
		}
	}
}

// benchPerCall runs p once per iteration on a TCP packet to port from A
// to B; first gives every packet a source port of its own.
func benchPerCall(b *testing.B, d *Datapath, p *ebpf.Program, port uint16, first bool) {
	pkt := benchPacket(port)
	const sportOff = 14 + 20 // the TCP source port
	ports := 0
	var total time.Duration
	b.ResetTimer()
	for range b.N {
		if first {
			if ports == 60000 {
				// Every source port is taken: forget the connections.
				b.StopTimer()
				clearTracking(b, d)
				b.StartTimer()
				ports = 0
			}
			binary.BigEndian.PutUint16(pkt[sportOff:], uint16(1024+ports))
			ports++
		}
		ret, per, err := p.Benchmark(pkt, 1, nil)
		if err != nil {
			b.Fatal(err)
		}
		if ret != actPass {
			b.Fatalf("benchmark packet returned %d, want pass", int32(ret))
		}
		total += per
	}
	b.ReportMetric(float64(total.Nanoseconds())/float64(max(b.N, 1)), "ns/pkt")
}

func benchRun(b *testing.B, d *Datapath, prog string, pkt []byte) {
	p := d.objs.PalisadeFromEndpoint
	if prog == "parse" {
		p = d.objs.PalisadeParseOnly
	}
	ret, _, err := p.Benchmark(pkt, 1, nil)
	if err != nil {
		b.Fatal(err)
	}
	if ret != actPass {
		b.Fatalf("benchmark packet returned %d, want pass", int32(ret))
	}
	b.ResetTimer()
	_, per, err := p.Benchmark(pkt, max(b.N, 1), b.ResetTimer)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(per.Nanoseconds()), "ns/pkt")
}

// BenchmarkApply100k writes 100k policy entries as a new generation and
// switches to it.
func BenchmarkApply100k(b *testing.B) {
	d := openTest(b, nil)
	s := benchState(100000)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := d.Apply(context.Background(), s); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(100000*b.N)/b.Elapsed().Seconds(), "entries/s")
}
