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
	"net"
	"net/netip"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/miekg/dns"

	"github.com/palisade-dev/palisade/api/v1alpha1"
	"github.com/palisade-dev/palisade/internal/engine"
)

// dnsTrafficState: A may query B on UDP and TCP 53 for api.example.com and
// *.allowed.org (rule 600); B admits everything from A. Both default-deny.
func dnsTrafficState() *engine.MapState {
	both := engine.IngressDefaultDeny | engine.EgressDefaultDeny
	entry := engine.PolicyEntry{Flags: engine.FlagAllow, AllowRule: 600, L7: 9}
	return &engine.MapState{
		Endpoints: map[netip.Addr]engine.EndpointEntry{
			wlA: {Identity: 256, PolicyID: 256, Flags: both},
			wlB: {Identity: 257, PolicyID: 257, Flags: both},
		},
		IPCache: map[netip.Prefix]engine.Identity{netip.PrefixFrom(wlA, 32): 256, netip.PrefixFrom(wlB, 32): 257},
		Policy: map[engine.PolicyKey]engine.PolicyEntry{
			{PolicyID: 256, Direction: engine.Egress, Identity: 257, Proto: engine.ProtoUDP, Port: 53, PrefixLen: 24}: entry,
			{PolicyID: 256, Direction: engine.Egress, Identity: 257, Proto: engine.ProtoTCP, Port: 53, PrefixLen: 24}: entry,
			{PolicyID: 257, Direction: engine.Ingress, PrefixLen: 0}:                                                  {Flags: engine.FlagAllow, AllowRule: 601},
		},
		L7: map[engine.L7ID]engine.L7List{9: {{Rule: 600, Rules: &v1alpha1.L7Rules{DNS: []v1alpha1.DNSRule{
			{MatchName: "api.example.com"}, {MatchPattern: "*.allowed.org"},
		}}}}},
	}
}

// dnsServe runs a DNS server (miekg/dns) in B on UDP and TCP 53: every A
// query is answered with 192.0.2.1, and big.allowed.org with 60 addresses,
// truncated over UDP to the client's size (512 without EDNS0).
func dnsServe(t *testing.T, w *workloads) {
	h := dns.HandlerFunc(func(rw dns.ResponseWriter, q *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(q)
		name := q.Question[0].Name
		n := 1
		if strings.EqualFold(name, "big.allowed.org.") {
			n = 60
		}
		for i := range n {
			rr, _ := dns.NewRR(name + " 60 IN A 192.0.2." + strconv.Itoa(1+i))
			m.Answer = append(m.Answer, rr)
		}
		if _, udp := rw.RemoteAddr().(*net.UDPAddr); udp {
			size := 512
			if o := q.IsEdns0(); o != nil {
				size = int(o.UDPSize())
			}
			m.Truncate(size)
		}
		rw.WriteMsg(m)
	})
	var pc net.PacketConn
	var l net.Listener
	inNS(t, w.nsB, func() {
		var err error
		if pc, err = net.ListenPacket("udp4", wlB.String()+":53"); err != nil {
			t.Fatal(err)
		}
		if l, err = net.Listen("tcp4", wlB.String()+":53"); err != nil {
			t.Fatal(err)
		}
	})
	us, ts := &dns.Server{PacketConn: pc, Handler: h}, &dns.Server{Listener: l, Handler: h}
	go us.ActivateAndServe()
	go ts.ActivateAndServe()
	t.Cleanup(func() { us.Shutdown(); ts.Shutdown() })
}

type digResult struct {
	status  string // NOERROR, REFUSED, ... ; "" when no answer came
	answers int
	msec    int
	out     string
}

var (
	digStatus  = regexp.MustCompile(`status: ([A-Z]+)`)
	digAnswers = regexp.MustCompile(`ANSWER: ([0-9]+)`)
	digTime    = regexp.MustCompile(`Query time: ([0-9]+) msec`)
)

// dig runs dig in A against B; the timeout is 3 s, one try.
func (w *workloads) dig(t *testing.T, args ...string) digResult {
	t.Helper()
	cmd := exec.Command("ip", append([]string{"netns", "exec", w.nsA, "dig", "@" + wlB.String(), "+time=3", "+tries=1", "+retry=0"}, args...)...)
	out, _ := cmd.CombinedOutput()
	r := digResult{out: string(out)}
	if m := digStatus.FindAllStringSubmatch(r.out, -1); m != nil {
		r.status = m[len(m)-1][1]
	}
	if m := digAnswers.FindAllStringSubmatch(r.out, -1); m != nil {
		r.answers, _ = strconv.Atoi(m[len(m)-1][1])
	}
	if m := digTime.FindStringSubmatch(r.out); m != nil {
		r.msec, _ = strconv.Atoi(m[1])
	}
	return r
}

// TestDNSRealTraffic: dig in workload A queries a DNS server in workload
// B through the attached programs.
func TestDNSRealTraffic(t *testing.T) {
	if _, err := exec.LookPath("dig"); err != nil {
		t.Skip("dig (dnsutils) is not installed: hack/apt-install.sh dnsutils")
	}
	w := setupWorkloads(t)
	dnsServe(t, w)
	if r := w.dig(t, "evil.com"); r.status != "NOERROR" {
		t.Fatalf("without policy: %s", r.out)
	}
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

	for _, c := range []struct {
		args    []string
		status  string
		answers int
	}{
		{[]string{"api.example.com"}, "NOERROR", 1},
		{[]string{"API.Example.com."}, "NOERROR", 1},
		{[]string{"x.allowed.org"}, "NOERROR", 1},
		{[]string{"evil.com"}, "REFUSED", 0},
		{[]string{"allowed.org"}, "REFUSED", 0},
		{[]string{"+noedns", "evil.com"}, "REFUSED", 0},
		{[]string{"+tcp", "api.example.com"}, "NOERROR", 1},
		// Truncated over UDP (60 addresses do not fit 512 bytes), then
		// dig's retry over TCP, each decided in the kernel.
		{[]string{"+noedns", "big.allowed.org"}, "NOERROR", 60},
	} {
		r := w.dig(t, c.args...)
		if r.status != c.status || r.answers != c.answers {
			t.Errorf("dig %v: status %q with %d answers, want %s with %d\n%s", c.args, r.status, r.answers, c.status, c.answers, r.out)
			continue
		}
		if c.status == "REFUSED" && r.msec > 1000 {
			t.Errorf("dig %v: refused after %d ms, want at once", c.args, r.msec)
		}
		t.Logf("dig %v: %s, %d answers, %d ms", c.args, r.status, r.answers, r.msec)
		if strings.Contains(strings.Join(c.args, " "), "big") && !strings.Contains(r.out, "retrying in TCP mode") {
			t.Errorf("dig %v: no TCP retry after the truncated answer\n%s", c.args, r.out)
		}
	}
	// A refused query over TCP: the kernel answers it too (and closes the connection).
	if r := w.dig(t, "+tcp", "evil.com"); r.status != "REFUSED" || r.msec > 1000 {
		t.Errorf("dig +tcp evil.com: status %q after %d ms, want REFUSED at once\n%s", r.status, r.msec, r.out)
	}

	// The same rules on B's ingress: the kernel answers from B's side
	// (the answer enters the node as if B had sent it).
	ing := dnsTrafficState()
	in := ing.Policy[engine.PolicyKey{PolicyID: 256, Direction: engine.Egress, Identity: 257, Proto: engine.ProtoUDP, Port: 53, PrefixLen: 24}]
	for k := range ing.Policy {
		delete(ing.Policy, k)
	}
	for _, proto := range []engine.Proto{engine.ProtoUDP, engine.ProtoTCP} {
		ing.Policy[engine.PolicyKey{PolicyID: 256, Direction: engine.Egress, Identity: 257, Proto: proto, Port: 53, PrefixLen: 24}] = engine.PolicyEntry{Flags: engine.FlagAllow, AllowRule: 602}
		ing.Policy[engine.PolicyKey{PolicyID: 257, Direction: engine.Ingress, Identity: 256, Proto: proto, Port: 53, PrefixLen: 24}] = in
	}
	if err := d.Apply(context.Background(), ing); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		args   []string
		status string
	}{
		{[]string{"api.example.com"}, "NOERROR"},
		{[]string{"evil.com"}, "REFUSED"},
		{[]string{"+tcp", "x.allowed.org"}, "NOERROR"},
	} {
		r := w.dig(t, c.args...)
		if r.status != c.status || c.status == "REFUSED" && r.msec > 1000 {
			t.Errorf("ingress rules: dig %v: status %q after %d ms, want %s at once\n%s", c.args, r.status, r.msec, c.status, r.out)
			continue
		}
		t.Logf("ingress rules: dig %v: %s, %d ms", c.args, r.status, r.msec)
	}

	c, err := d.Counters()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("counters: %d DNS queries decided, %d allowed, %d refused, %d answered by the kernel", c.DNSQueries, c.DNSAllowed, c.DNSRefused, c.DNSAnswered)
	if c.DNSAnswered < 3 || c.DNSRefused < 4 {
		t.Errorf("counters %+v: want at least 3 kernel answers and 4 refusals", c)
	}
}
