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

package engine

import (
	"bytes"
	"fmt"
	"net/netip"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// nodeStates compiles ir for every node of c: node name → map state.
func nodeStates(t testing.TB, ir *IR, c *Cluster) map[string]*MapState {
	t.Helper()
	ids := NewMemoryAllocator()
	if err := AllocateIdentities(c, ids); err != nil {
		t.Fatalf("allocate identities: %v", err)
	}
	out := map[string]*MapState{}
	for _, n := range c.Nodes {
		m, err := Compile(ir, c, n.Name, ids)
		if err != nil {
			t.Fatalf("compile for node %s: %v", n.Name, err)
		}
		out[n.Name] = m
	}
	return out
}

// enforcingNode returns the node that enforces policy for addr: the node
// of a managed endpoint, or the node owning the address. ok is false when
// addr is not enforced anywhere; known is false for a managed endpoint
// that has no node (no node's state can hold it).
func enforcingNode(c *Cluster, addr netip.Addr) (node string, ok, known bool) {
	if e, found := c.EndpointByIP(addr); found {
		if e.Unmanaged {
			return "", false, true
		}
		return e.Node, true, e.Node != ""
	}
	if n, found := c.NodeByIP(addr); found {
		return n.Name, true, true
	}
	return "", false, true
}

// compareFlow decides flow with the reference evaluator and with the
// compiled states of the enforcing nodes, and describes every difference
// of verdict, reason and deciding rule per side. skipped counts sides whose
// endpoint has no node.
func compareFlow(ir *IR, c *Cluster, states map[string]*MapState, flow Flow) (diffs []string, skipped int) {
	want := Evaluate(ir, c, flow)
	orig := flow
	if orig.Reply {
		orig.Src, orig.Dst, orig.Reply, orig.Request = flow.Dst, flow.Src, false, nil
	}
	for _, side := range []struct {
		dir           Direction
		local, remote netip.Addr
		want          Side
	}{
		{Egress, orig.Src, orig.Dst, want.Egress},
		{Ingress, orig.Dst, orig.Src, want.Ingress},
	} {
		node, enforced, known := enforcingNode(c, side.local)
		if !known {
			skipped++
			continue
		}
		var check []string
		if enforced {
			check = []string{node}
		} else {
			// Not enforced anywhere: no node's state may enforce it.
			for n := range states {
				check = append(check, n)
			}
			sort.Strings(check)
		}
		wantRule := RuleID(0)
		if side.want.Rule != nil {
			wantRule = side.want.Rule.ID
		}
		for _, n := range check {
			m := states[n]
			if m == nil {
				diffs = append(diffs, fmt.Sprintf("%s: node %q is not in the cluster", side.dir, n))
				continue
			}
			v, r, rule := m.LookupSide(side.dir, side.local, side.remote, orig.Proto, orig.Port, orig.Request)
			if v != side.want.Verdict || r != side.want.Reason || rule != wantRule {
				diffs = append(diffs, fmt.Sprintf("%s at node %s: compiled %s %s rule %s, evaluator %s %s rule %s",
					side.dir, n, v, r, ruleName(ir, rule), side.want.Verdict, side.want.Reason, ruleName(ir, wantRule)))
			}
		}
	}
	return diffs, skipped
}

func ruleName(ir *IR, id RuleID) string {
	if id == 0 {
		return "-"
	}
	r, ok := ir.Rule(id)
	if !ok {
		return fmt.Sprintf("%d (unknown)", id)
	}
	return fmt.Sprintf("%d (%s %s)", id, r.Origin.Policy(), r.Origin.Path)
}

// TestCompileScenarios is the differential test of the node compiler: for
// every scenario step and flow, the compiled state of the node enforcing
// each side decides the side as the reference evaluator does: verdict,
// reason and deciding rule.
func TestCompileScenarios(t *testing.T) {
	files, err := filepath.Glob(filepath.Join(scenarioDir, "*.txtar"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("no scenarios")
	}
	sort.Strings(files)
	var flows, skipped int
	for _, file := range files {
		sc, err := loadScenario(file)
		if err != nil {
			t.Errorf("%v", err)
			continue
		}
		for _, s := range sc.Steps {
			name := strings.TrimSuffix(filepath.Base(file), ".txtar") + "/" + s.Name
			t.Run(name, func(t *testing.T) {
				ir := s.buildIR(t)
				states := nodeStates(t, ir, s.Cluster)
				for _, fc := range s.Flows {
					for _, fl := range []Flow{fc.Flow, withReply(fc.Flow)} {
						flows++
						d, sk := compareFlow(ir, s.Cluster, states, fl)
						skipped += sk
						if len(d) > 0 {
							t.Errorf("%s: %s (reply=%v):\n  %s", fc.Pos, fc.Text, fl.Reply, strings.Join(d, "\n  "))
						}
					}
				}
			})
		}
	}
	t.Logf("%d flows (each also as a reply) compared; %d sides skipped (endpoint without a node)", flows, skipped)
}

// withReply returns the reply packet of flow's connection (or, for a
// reply, the original packet).
func withReply(f Flow) Flow {
	r := f
	r.Src, r.Dst, r.Reply = f.Dst, f.Src, !f.Reply
	if r.Reply {
		r.Request = nil
	}
	return r
}

// TestCompileRangesDoNotExplode checks that a port range is a handful of
// prefixes: a rule for 1-65535 of one protocol costs at most 16 entries
// per (subject, peer), and one for every protocol and port one entry.
func TestCompileRangesDoNotExplode(t *testing.T) {
	cases := []struct {
		name   string
		l4     []L4
		max    int
		covers []uint16
	}{
		{"TCP 1-65535", []L4{{Proto: ProtoTCP, Lo: 1, Hi: 65535}}, 16, []uint16{1, 2, 1023, 8080, 65535}},
		{"TCP 1024-65535", []L4{{Proto: ProtoTCP, Lo: 1024, Hi: 65535}}, 6, []uint16{1024, 65535}},
		{"TCP 1000-2000", []L4{{Proto: ProtoTCP, Lo: 1000, Hi: 2000}}, 2 * 16, []uint16{1000, 1500, 2000}},
		{"ANY 1-65535", []L4{{Proto: ProtoTCP, Lo: 1, Hi: 65535}, {Proto: ProtoUDP, Lo: 1, Hi: 65535}, {Proto: ProtoSCTP, Lo: 1, Hi: 65535}}, 3 * 16, []uint16{1, 65535}},
		{"every port", nil, 1, []uint16{0, 1, 65535}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := &Cluster{
				Namespaces: map[string]map[string]string{"ns": {}},
				Nodes:      []Node{{Name: "n1", IPs: []netip.Addr{netip.MustParseAddr("192.168.0.1")}}},
				Endpoints: []Endpoint{
					{Namespace: "ns", Name: "a", Labels: map[string]string{"app": "a"}, IPs: []netip.Addr{netip.MustParseAddr("10.0.0.1")}, Node: "n1"},
				},
			}
			sel, err := NewSelector(nil, "ns")
			if err != nil {
				t.Fatal(err)
			}
			sub := Subject{Endpoints: &sel}
			r := &Rule{ID: 7, Origin: Origin{Kind: "NetworkPolicy", Namespace: "ns", Name: "p", Path: "spec.ingress[0]"},
				Direction: Ingress, Action: Allow, Subject: sub, Peer: Peer{Any: true}, L4: tc.l4}
			ir := &IR{Policies: []*Policy{{Origin: Origin{Kind: "NetworkPolicy", Namespace: "ns", Name: "p"}, Subject: sub,
				DefaultDeny: [2]bool{true, false}, Rules: []*Rule{r}}}, rules: map[RuleID]*Rule{7: r}}
			states := nodeStates(t, ir, c)
			m := states["n1"]
			n := len(m.Policy)
			t.Logf("%s: %d policy entries", tc.name, n)
			if n == 0 || n > tc.max {
				t.Fatalf("%d policy entries, want 1..%d", n, tc.max)
			}
			local, remote := netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("203.0.113.1")
			for _, l := range tc.l4 {
				for _, p := range tc.covers {
					if v, _, rule := m.LookupSide(Ingress, local, remote, l.Proto, p, nil); v != VerdictAllow || rule != 7 {
						t.Errorf("%s/%d: %s by %d, want allow by 7", l.Proto, p, v, rule)
					}
				}
				if l.Lo > 0 {
					if v, _, _ := m.LookupSide(Ingress, local, remote, l.Proto, l.Lo-1, nil); v != VerdictDeny {
						t.Errorf("%s/%d (below the range): %s, want deny", l.Proto, l.Lo-1, v)
					}
				}
				if l.Hi < 65535 {
					if v, _, _ := m.LookupSide(Ingress, local, remote, l.Proto, l.Hi+1, nil); v != VerdictDeny {
						t.Errorf("%s/%d (above the range): %s, want deny", l.Proto, l.Hi+1, v)
					}
				}
			}
		})
	}
}

// TestEachPrefix checks the prefix cover of ranges: the prefixes are
// disjoint, aligned, cover exactly [lo, hi], and are at most two per bit.
func TestEachPrefix(t *testing.T) {
	ranges := [][2]uint32{{0, portSpace - 1}, {0, 0}, {5, 5}, {1, 65535}, {6 << 16, 6<<16 | 65535},
		{6<<16 | 1, 6<<16 | 65535}, {6<<16 | 1000, 6<<16 | 2000}, {portSpace - 1, portSpace - 1}, {3, portSpace - 2}}
	for _, r := range ranges {
		var got [][2]uint32
		eachPrefix(r[0], r[1], func(v uint32, plen uint8) {
			size := uint32(1) << (24 - plen)
			if v&(size-1) != 0 {
				t.Errorf("[%d,%d]: prefix %d/%d is not aligned", r[0], r[1], v, plen)
			}
			got = append(got, [2]uint32{v, v + size - 1})
		})
		if len(got) > 2*24 {
			t.Errorf("[%d,%d]: %d prefixes", r[0], r[1], len(got))
		}
		next := r[0]
		for _, g := range got {
			if g[0] != next {
				t.Fatalf("[%d,%d]: prefixes %v do not tile the range", r[0], r[1], got)
			}
			next = g[1] + 1
		}
		if next != r[1]+1 {
			t.Errorf("[%d,%d]: prefixes %v end at %d", r[0], r[1], got, next-1)
		}
	}
}

// statesEqual reports whether two states are equal, with a short diff.
func statesEqual(a, b *MapState) (bool, string) {
	ea, eb := a.Encode(), b.Encode()
	if bytes.Equal(ea, eb) {
		return true, ""
	}
	la, lb := strings.Split(string(ea), "\n"), strings.Split(string(eb), "\n")
	sa, sb := map[string]bool{}, map[string]bool{}
	for _, l := range la {
		sa[l] = true
	}
	for _, l := range lb {
		sb[l] = true
	}
	var out []string
	for _, l := range la {
		if !sb[l] {
			out = append(out, "- "+l)
		}
	}
	for _, l := range lb {
		if !sa[l] {
			out = append(out, "+ "+l)
		}
	}
	if len(out) > 20 {
		out = append(out[:20], fmt.Sprintf("... %d more", len(out)-20))
	}
	return false, strings.Join(out, "\n")
}
