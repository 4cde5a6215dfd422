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
// connection with n rules, on the hash and the LPM path.
func BenchmarkPolicy(b *testing.B) {
	d := openTest(b, nil)
	for _, n := range []int{10, 1000, 10000, 100000} {
		if err := d.Apply(context.Background(), benchState(n)); err != nil {
			b.Fatal(err)
		}
		b.Run(fmt.Sprintf("rules=%d/path=hash", n), func(b *testing.B) { benchRun(b, d, "egress", benchPacket(80)) })
		b.Run(fmt.Sprintf("rules=%d/path=lpm", n), func(b *testing.B) { benchRun(b, d, "egress", benchPacket(5000)) })
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
