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
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/palisade-dev/palisade/api/v1alpha1"
	"github.com/palisade-dev/palisade/internal/engine"
	"github.com/palisade-dev/palisade/internal/testenv"
)

var fqdnCurls = flag.Int("datapath.fqdncurls", 1000, "curl runs (each a fresh lookup through the C library's resolver) of TestFQDNRealTraffic")

var fqdnLookups = flag.Int("datapath.fqdnlookups", 10000, "lookups (each a fresh answer) and first-attempt connections of TestFQDNRealTraffic")

// The names TestFQDNRealTraffic's server answers, and their addresses:
// every address of 10.99.0.0/16, 10.98.0.0/24 and 10.97.0.0/24 is B's
// (local routes in B), so B's TCP 443 listener accepts on all of them.
const (
	fqdnUnique = "api.example.com"    // a new address of 10.99.0.0/16 per answer, TTL 60
	fqdnRotate = "rotate.example.com" // the next of 10.98.0.1-50 per answer, TTL 300
	fqdnShort  = "short.example.com"  // 10.97.0.1, TTL 1
	fqdnOther  = "evil.example.org"   // 10.97.0.66: no selector selects it
)

// fqdnTrafficState: A may query B (UDP and TCP 53) for any name (a DNS
// rule, so the kernel parses the queries) and connect to TCP 443 of the
// addresses learned for the three selected names. A is default-deny on
// egress; only A's interface is enforced (B answers from addresses that
// are no endpoint's).
func fqdnTrafficState() *engine.MapState {
	entry := engine.PolicyEntry{Flags: engine.FlagAllow, AllowRule: 700, L7: 9}
	s := &engine.MapState{
		Endpoints: map[netip.Addr]engine.EndpointEntry{wlA: {Identity: 256, PolicyID: 256, Flags: engine.EgressDefaultDeny}},
		IPCache:   map[netip.Prefix]engine.Identity{netip.PrefixFrom(wlA, 32): 256, netip.PrefixFrom(wlB, 32): 257},
		Policy: map[engine.PolicyKey]engine.PolicyEntry{
			{PolicyID: 256, Direction: engine.Egress, Identity: 257, Proto: engine.ProtoUDP, Port: 53, PrefixLen: 24}: entry,
			{PolicyID: 256, Direction: engine.Egress, Identity: 257, Proto: engine.ProtoTCP, Port: 53, PrefixLen: 24}: entry,
		},
		L7: map[engine.L7ID]engine.L7List{9: {{Rule: 700, Rules: &v1alpha1.L7Rules{DNS: []v1alpha1.DNSRule{{MatchPattern: "*"}}}}}},
		FQDNSelectors: map[engine.Identity]engine.FQDN{
			engine.MinLocalIdentity + 1: {Name: fqdnUnique},
			engine.MinLocalIdentity + 2: {Name: fqdnRotate},
			engine.MinLocalIdentity + 3: {Pattern: "short.*.com"},
		},
	}
	for id := range s.FQDNSelectors {
		s.Policy[engine.PolicyKey{PolicyID: 256, Direction: engine.Egress, Identity: id, Proto: engine.ProtoTCP, Port: 443, PrefixLen: 24}] =
			engine.PolicyEntry{Flags: engine.FlagAllow, AllowRule: 701}
	}
	return s
}

// fqdnServe runs the DNS server in B (miekg/dns, UDP and TCP 53) and a
// TCP 443 listener on every address of B, and routes the answered
// prefixes to B.
func fqdnServe(t *testing.T, w *workloads) {
	t.Helper()
	var unique, rotate atomic.Uint32
	h := dns.HandlerFunc(func(rw dns.ResponseWriter, q *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(q)
		name := strings.ToLower(q.Question[0].Name)
		var rr string
		switch {
		case q.Question[0].Qtype != dns.TypeA:
		case name == fqdnUnique+".":
			i := unique.Add(1)
			rr = fmt.Sprintf("%s 60 IN A 10.99.%d.%d", name, i/250, i%250+1)
		case name == fqdnRotate+".":
			rr = fmt.Sprintf("%s 300 IN A 10.98.0.%d", name, rotate.Add(1)%50+1)
		case name == fqdnShort+".":
			rr = name + " 1 IN A 10.97.0.1"
		case name == fqdnOther+".":
			rr = name + " 60 IN A 10.97.0.66"
		}
		if rr != "" {
			r, err := dns.NewRR(rr)
			if err != nil {
				panic(err)
			}
			m.Answer = append(m.Answer, r)
		}
		rw.WriteMsg(m)
	})
	for _, p := range []string{"10.99.0.0/16", "10.98.0.0/24", "10.97.0.0/24"} {
		// Via B's address: one neighbour entry, not one per address (the
		// node's neighbour table would overflow at 1024 and drop SYNs).
		ip(t, "route", "add", p, "via", wlB.String(), "dev", "h"+w.nsB)
		ip(t, "-n", w.nsB, "route", "add", "local", p, "dev", "lo")
	}
	var pc net.PacketConn
	var l, l443 net.Listener
	inNS(t, w.nsB, func() {
		var err error
		if pc, err = net.ListenPacket("udp4", wlB.String()+":53"); err != nil {
			t.Fatal(err)
		}
		if l, err = net.Listen("tcp4", wlB.String()+":53"); err != nil {
			t.Fatal(err)
		}
		if l443, err = net.Listen("tcp4", "0.0.0.0:443"); err != nil {
			t.Fatal(err)
		}
	})
	go func() {
		for {
			c, err := l443.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	us, ts := &dns.Server{PacketConn: pc, Handler: h}, &dns.Server{Listener: l, Handler: h}
	go us.ActivateAndServe()
	go ts.ActivateAndServe()
	t.Cleanup(func() { us.Shutdown(); ts.Shutdown(); l443.Close() })
}

// fqdnClient resolves and connects from A: one goroutine locked in A's
// namespace, so that its sockets are A's.
type fqdnClient struct {
	dns *dns.Client
}

// resolve asks B for name's A records.
func (c *fqdnClient) resolve(name string, tcp bool) ([]netip.Addr, error) {
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(name), dns.TypeA)
	cl := c.dns
	if tcp {
		cl = &dns.Client{Net: "tcp", Timeout: cl.Timeout}
	}
	r, _, err := cl.Exchange(m, wlB.String()+":53")
	if err != nil {
		return nil, err
	}
	if r.Rcode != dns.RcodeSuccess {
		return nil, fmt.Errorf("%s: %s", name, dns.RcodeToString[r.Rcode])
	}
	var out []netip.Addr
	for _, rr := range r.Answer {
		if a, ok := rr.(*dns.A); ok {
			ip, _ := netip.AddrFromSlice(a.A.To4())
			out = append(out, ip)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s: no address", name)
	}
	return out, nil
}

func connect(a netip.Addr, timeout time.Duration) error {
	c, err := net.DialTimeout("tcp4", netip.AddrPortFrom(a, 443).String(), timeout)
	if err != nil {
		return err
	}
	return c.Close()
}

// TestFQDNRealTraffic: a Go client in workload A resolves names at a
// miekg/dns server in workload B and connects to the answered addresses;
// only A's interface is enforced, default-deny on egress.
func TestFQDNRealTraffic(t *testing.T) {
	w := setupWorkloads(t)
	fqdnServe(t, w)
	pin := tempPinDir(t)
	d, err := Open(pin, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { d.DetachWorkload(w.hA); d.Remove() }()
	ctx := context.Background()
	if err := d.Apply(ctx, fqdnTrafficState()); err != nil {
		t.Fatal(err)
	}
	// Every answer of the unique name is a new address: no cap in the way.
	if err := d.SetFQDNSettings(FQDNSettings{MaxAddrsPerName: 1 << 16}); err != nil {
		t.Fatal(err)
	}
	if err := d.AttachWorkload(w.hA); err != nil {
		t.Fatal(err)
	}
	cl := &fqdnClient{dns: &dns.Client{Net: "udp", Timeout: 2 * time.Second}}
	counters := func() Counters {
		c, err := d.Counters()
		if err != nil {
			t.Fatal(err)
		}
		return c
	}

	t.Run("fresh lookups, first attempts", func(t *testing.T) {
		// The agent's periodic expiry runs meanwhile, as on a node.
		stop := make(chan struct{})
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				case <-time.After(50 * time.Millisecond):
					d.ExpireFQDN()
				}
			}
		}()
		before := counters()
		start := time.Now()
		var fails []string
		inNS(t, w.nsA, func() {
			for i := range *fqdnLookups {
				addrs, err := cl.resolve(fqdnUnique, false)
				if err == nil {
					err = connect(addrs[0], 3*time.Second)
				}
				if err != nil && len(fails) < 10 {
					fails = append(fails, fmt.Sprintf("lookup %d: %v", i, err))
				}
			}
		})
		close(stop)
		wg.Wait()
		after := counters()
		el := time.Since(start)
		t.Logf("%d lookups and connections in %v (%v each): %d learned, %d denied, %d tracked, %d answers",
			*fqdnLookups, el.Round(time.Millisecond), (el / time.Duration(*fqdnLookups)).Round(time.Microsecond),
			after.FQDNLearned-before.FQDNLearned, after.Denied-before.Denied, after.FQDNTracked-before.FQDNTracked, after.FQDNAnswers-before.FQDNAnswers)
		if len(fails) > 0 {
			t.Errorf("failed: %v", fails)
		}
		if n := after.Denied - before.Denied; n != 0 {
			t.Errorf("%d packets dropped (first SYNs before their address was learned), want 0", n)
		}
		if n := after.FQDNLearned - before.FQDNLearned; n != uint64(*fqdnLookups) {
			t.Errorf("%d addresses learned, want %d", n, *fqdnLookups)
		}
	})

	t.Run("curl, fresh lookups, first attempts", func(t *testing.T) {
		curl := testenv.Tool(t, "curl")
		// `ip netns exec` puts /etc/netns/NAME/resolv.conf in place of
		// /etc/resolv.conf for the command: the C library's resolver asks
		// B, as a pod's asks its cluster DNS.
		dir := filepath.Join("/etc/netns", w.nsA)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.RemoveAll(dir) })
		if err := os.WriteFile(filepath.Join(dir, "resolv.conf"), []byte("nameserver "+wlB.String()+"\noptions attempts:1 timeout:2\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		// The listener accepts and closes: curl's exit status 52 (empty
		// reply) or 56 (reset while receiving: the request was unread)
		// says it connected; 7 or 28 that it did not, 6 that the name did
		// not resolve.
		script := fmt.Sprintf(`n=0; fail=0
for i in $(seq %d); do
  %s -4 -s -o /dev/null --connect-timeout 3 http://%s:443/; rc=$?
  if [ $rc -ne 52 ] && [ $rc -ne 56 ]; then fail=$((fail+1)); [ $fail -le 10 ] && echo "run $i: curl exit status $rc"; fi
done
echo "failed $fail"`, *fqdnCurls, curl, fqdnUnique)
		before := counters()
		start := time.Now()
		out, err := exec.Command("ip", "netns", "exec", w.nsA, "sh", "-c", script).CombinedOutput()
		el := time.Since(start)
		after := counters()
		if err != nil {
			t.Fatalf("%v: %s", err, out)
		}
		t.Logf("%d curl runs in %v: %d learned, %d denied; %s", *fqdnCurls, el.Round(time.Millisecond),
			after.FQDNLearned-before.FQDNLearned, after.Denied-before.Denied, strings.TrimSpace(string(out)))
		if !strings.HasSuffix(strings.TrimSpace(string(out)), "failed 0") {
			t.Errorf("curl did not connect every time:\n%s", out)
		}
		if n := after.Denied - before.Denied; n != 0 {
			t.Errorf("%d packets dropped (first SYNs before their address was learned), want 0", n)
		}
		if n := after.FQDNLearned - before.FQDNLearned; n < uint64(*fqdnCurls) {
			t.Errorf("%d addresses learned for %d fresh lookups", n, *fqdnCurls)
		}
	})

	t.Run("a name rotating through 50 addresses", func(t *testing.T) {
		before := counters()
		var fails []string
		seen := map[netip.Addr]bool{}
		inNS(t, w.nsA, func() {
			for i := range 150 {
				addrs, err := cl.resolve(fqdnRotate, i%3 == 2) // every third over TCP
				if err == nil {
					seen[addrs[0]] = true
					err = connect(addrs[0], 3*time.Second)
				}
				if err != nil {
					fails = append(fails, fmt.Sprintf("lookup %d: %v", i, err))
				}
			}
			// Every one of them stays reachable without a new lookup.
			for a := range seen {
				if err := connect(a, 3*time.Second); err != nil {
					fails = append(fails, fmt.Sprintf("%v later: %v", a, err))
				}
			}
		})
		after := counters()
		if len(seen) != 50 || len(fails) > 0 || after.Denied != before.Denied {
			t.Errorf("%d addresses seen, %d denied, failures %v", len(seen), after.Denied-before.Denied, fails)
		}
		tab, err := d.FQDNTable()
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range tab {
			if e.Name == fqdnRotate && len(e.Addrs) != 50 {
				t.Errorf("table holds %d addresses of %s, want 50", len(e.Addrs), fqdnRotate)
			}
		}
	})

	t.Run("a name no selector selects is dropped", func(t *testing.T) {
		before := counters()
		inNS(t, w.nsA, func() {
			addrs, err := cl.resolve(fqdnOther, false)
			if err != nil {
				t.Fatal(err)
			}
			if err := connect(addrs[0], 300*time.Millisecond); err == nil {
				t.Errorf("connected to %v of %s", addrs[0], fqdnOther)
			}
		})
		if after := counters(); after.Denied == before.Denied {
			t.Errorf("no drop counted")
		}
	})

	t.Run("expired addresses are dropped for new connections", func(t *testing.T) {
		if err := d.SetFQDNSettings(FQDNSettings{MinTTL: time.Second, MaxAddrsPerName: 1 << 16}); err != nil {
			t.Fatal(err)
		}
		var a netip.Addr
		inNS(t, w.nsA, func() {
			addrs, err := cl.resolve(fqdnShort, false)
			if err == nil {
				a = addrs[0]
				err = connect(a, 3*time.Second)
			}
			if err != nil {
				t.Fatalf("before expiry: %v", err)
			}
		})
		// Poll the table until the address expired (TTL 1 s, min TTL 1 s).
		deadline := time.Now().Add(10 * time.Second)
		for learned := true; learned; {
			if time.Now().After(deadline) {
				t.Fatalf("%v still learned 10 s after a 1 s TTL", a)
			}
			time.Sleep(50 * time.Millisecond)
			tab, err := d.FQDNTable()
			if err != nil {
				t.Fatal(err)
			}
			learned = false
			for _, e := range tab {
				learned = learned || e.Name == fqdnShort && len(e.Addrs) > 0
			}
		}
		before := counters()
		inNS(t, w.nsA, func() {
			if err := connect(a, 300*time.Millisecond); err == nil {
				t.Errorf("connected to %v after its TTL", a)
			}
		})
		if after := counters(); after.Denied == before.Denied {
			t.Errorf("no drop counted after expiry")
		}
	})

	t.Run("the agent restarts during lookups", func(t *testing.T) {
		before := counters()
		var done atomic.Bool
		var n atomic.Int64
		var fails []string
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			inNS(t, w.nsA, func() {
				for i := 0; !done.Load() || i < 200; i++ {
					addrs, err := cl.resolve(fqdnUnique, i%2 == 1)
					if err == nil {
						err = connect(addrs[0], 3*time.Second)
					}
					if err != nil && len(fails) < 10 {
						fails = append(fails, fmt.Sprintf("lookup %d: %v", i, err))
					}
					n.Add(1)
				}
			})
		}()
		// Close the Go side and open a new one on the same pins, twice,
		// while the client resolves and connects.
		for range 2 {
			for at := n.Load(); n.Load() < at+100; {
				time.Sleep(time.Millisecond)
			}
			if err := d.Close(); err != nil {
				t.Fatal(err)
			}
			d2, err := Open(pin, nil)
			if err != nil {
				t.Fatalf("reopen: %v", err)
			}
			d = d2
			if err := d.AttachWorkload(w.hA); err != nil {
				t.Fatal(err)
			}
			// The new agent applies its state again: a new generation.
			if err := d.Apply(ctx, fqdnTrafficState()); err != nil {
				t.Fatal(err)
			}
		}
		done.Store(true)
		wg.Wait()
		after := counters()
		t.Logf("%d lookups across two restarts: %d denied, %d learned", n.Load(), after.Denied-before.Denied, after.FQDNLearned-before.FQDNLearned)
		if len(fails) > 0 || after.Denied != before.Denied {
			t.Errorf("%d denied, failures %v\ncounters before %+v\nafter %+v", after.Denied-before.Denied, fails, before, after)
		}
		tab, err := d.FQDNTable()
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, e := range tab {
			names = append(names, e.Name)
		}
		if !strings.Contains(strings.Join(names, " "), fqdnRotate) {
			t.Errorf("the learned table after the restarts lacks %s: %v", fqdnRotate, names)
		}
	})
}
