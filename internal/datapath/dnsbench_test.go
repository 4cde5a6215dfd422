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
	"flag"
	"fmt"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/palisade-dev/palisade/internal/engine"
)

// make bench-dns: the cost of DNS rules decided in the kernel, per query,
// against no policy and against a userspace DNS proxy hop (a miekg/dns
// forwarder that checks the name, the stand-in for Cilium's DNS proxy).
// A client in workload A queries a server in workload B over UDP:
// sequential queries give the latency (p50, p99), 8 concurrent clients for
// a fixed time the queries per second at saturation.
var (
	dnsBench        = flag.Bool("datapath.dnsbench", false, "run TestDNSBench (make bench-dns)")
	dnsBenchQueries = flag.Int("datapath.dnsbench.queries", 20000, "sequential queries per configuration in TestDNSBench")
	dnsBenchSat     = flag.Duration("datapath.dnsbench.saturation", 3*time.Second, "how long each configuration runs at saturation in TestDNSBench")
)

type dnsBenchResult struct {
	name     string
	p50, p99 time.Duration
	qps      float64
}

// dnsProxy forwards queries to upstream after checking the name, as a
// DNS proxy does, on a UDP socket of its own.
func dnsProxy(t *testing.T, pc net.PacketConn, upstream string) {
	fq := engine.FQDN{Pattern: "*.allowed.org"}
	fn := engine.FQDN{Name: "api.example.com"}
	pool := sync.Pool{New: func() any {
		c, err := net.Dial("udp", upstream)
		if err != nil {
			panic(err)
		}
		return &dns.Conn{Conn: c}
	}}
	h := dns.HandlerFunc(func(rw dns.ResponseWriter, q *dns.Msg) {
		if n := q.Question[0].Name; !fq.Matches(n) && !fn.Matches(n) {
			m := new(dns.Msg)
			m.SetRcode(q, dns.RcodeRefused)
			rw.WriteMsg(m)
			return
		}
		c := pool.Get().(*dns.Conn)
		defer pool.Put(c)
		if err := c.WriteMsg(q); err != nil {
			return
		}
		r, err := c.ReadMsg()
		if err != nil {
			return
		}
		rw.WriteMsg(r)
	})
	s := &dns.Server{PacketConn: pc, Handler: h}
	go s.ActivateAndServe()
	t.Cleanup(func() { s.Shutdown() })
}

func (w *workloads) dnsBenchRun(t *testing.T, name, server string) dnsBenchResult {
	t.Helper()
	var conns []*dns.Conn
	inNS(t, w.nsA, func() {
		for range 9 {
			c, err := net.Dial("udp", server)
			if err != nil {
				t.Fatal(err)
			}
			conns = append(conns, &dns.Conn{Conn: c})
		}
	})
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	q := new(dns.Msg)
	q.SetQuestion("api.example.com.", dns.TypeA)
	ask := func(c *dns.Conn) error {
		q.Id = dns.Id()
		c.SetDeadline(time.Now().Add(2 * time.Second))
		if err := c.WriteMsg(q); err != nil {
			return err
		}
		r, err := c.ReadMsg()
		if err == nil && r.Rcode != dns.RcodeSuccess {
			err = fmt.Errorf("rcode %s", dns.RcodeToString[r.Rcode])
		}
		return err
	}
	for range 500 { // warm up
		if err := ask(conns[0]); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}
	lat := make([]time.Duration, *dnsBenchQueries)
	for i := range lat {
		start := time.Now()
		if err := ask(conns[0]); err != nil {
			t.Fatalf("%s: query %d: %v", name, i, err)
		}
		lat[i] = time.Since(start)
	}
	slices.Sort(lat)
	var n atomic.Int64
	var wg sync.WaitGroup
	stop := time.Now().Add(*dnsBenchSat)
	for _, c := range conns[1:] {
		wg.Go(func() {
			q := q.Copy()
			for time.Now().Before(stop) {
				q.Id = dns.Id()
				c.SetDeadline(time.Now().Add(2 * time.Second))
				if c.WriteMsg(q) != nil {
					return
				}
				if _, err := c.ReadMsg(); err != nil {
					return
				}
				n.Add(1)
			}
		})
	}
	wg.Wait()
	return dnsBenchResult{name: name, p50: lat[len(lat)/2], p99: lat[len(lat)*99/100], qps: float64(n.Load()) / dnsBenchSat.Seconds()}
}

func TestDNSBench(t *testing.T) {
	if !*dnsBench {
		t.Skip("a benchmark: make bench-dns (-datapath.dnsbench)")
	}
	w := setupWorkloads(t)
	dnsServe(t, w)
	var pc net.PacketConn
	inNS(t, w.nsB, func() {
		var err error
		if pc, err = net.ListenPacket("udp4", wlB.String()+":5353"); err != nil {
			t.Fatal(err)
		}
	})
	dnsProxy(t, pc, wlB.String()+":53")
	direct, proxied := wlB.String()+":53", wlB.String()+":5353"

	none := w.dnsBenchRun(t, "no policy", direct)
	proxy := w.dnsBenchRun(t, "userspace proxy hop, no policy", proxied)

	d := openTest(t, nil)
	if err := d.Apply(context.Background(), dnsTrafficState()); err != nil {
		t.Fatal(err)
	}
	if err := d.AttachWorkload(w.hA); err != nil {
		t.Fatal(err)
	}
	if err := d.AttachWorkload(w.hB); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.DetachWorkload(w.hA); d.DetachWorkload(w.hB) })
	kernel := w.dnsBenchRun(t, "DNS rules in the kernel", direct)
	c, err := d.Counters()
	if err != nil {
		t.Fatal(err)
	}
	if c.DNSAllowed == 0 {
		t.Fatalf("the kernel decided no query: counters %+v", c)
	}

	for _, r := range []dnsBenchResult{none, kernel, proxy} {
		t.Logf("%-32s p50 %8v  p99 %8v  %8.0f queries/s (8 clients)", r.name, r.p50, r.p99, r.qps)
	}
	addK, addP := kernel.p50-none.p50, proxy.p50-none.p50
	t.Logf("added p50: kernel %v, proxy hop %v (goal: kernel at most 10µs, at least 10× less than the proxy hop); added p99: kernel %v, proxy hop %v",
		addK, addP, kernel.p99-none.p99, proxy.p99-none.p99)
	t.Logf("kernel: %d queries decided (%d allowed), warm-up and saturation included", c.DNSQueries, c.DNSAllowed)
}
