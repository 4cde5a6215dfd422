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

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/palisade-dev/palisade/internal/engine"
	"github.com/palisade-dev/palisade/internal/flows"
	"github.com/palisade-dev/palisade/internal/validate"
)

const examplesDir = "../../policies/examples"

// planCmd runs palisadectl plan with args.
func planCmd(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	return runCLI(t, "plan", args...)
}

// copyExamples copies policies/examples into dst.
func copyExamples(t *testing.T, dst string) {
	t.Helper()
	err := filepath.WalkDir(examplesDir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(examplesDir, p)
		writeFile(t, dst, rel, string(b))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// observed is a flow of the example cluster to record.
type observed struct {
	from, to string // NS/POD or an address
	port     uint16
}

// record plays observe: it evaluates each flow against the policies in dir
// as this version's datapath enforces them, in the example cluster, and
// writes the flow records observe would print, one per line, in order.
func record(t *testing.T, dir string, fs []observed) string {
	t.Helper()
	c, err := readCluster(filepath.Join(examplesDir, "endpoints.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	rep, err := validate.Dir(context.Background(), dir, validate.Options{})
	if err != nil || !rep.Valid() {
		t.Fatalf("%v %v", err, rep.Diagnostics)
	}
	ir, err := engine.Build(rep.Objects, "rec")
	if err != nil {
		t.Fatal(err)
	}
	var out []flows.Flow
	for i, o := range fs {
		src, err := resolveAddr(c, o.from)
		if err != nil {
			t.Fatal(err)
		}
		dst, err := resolveAddr(c, o.to)
		if err != nil {
			t.Fatal(err)
		}
		fl := engine.Flow{Src: src, Dst: dst, Proto: engine.ProtoTCP, Port: o.port}
		res := engine.Evaluate(kernelView(ir), c, fl)
		side, local := res.Egress, src
		if res.Decider == engine.Ingress {
			side, local = res.Ingress, dst
		}
		node := ""
		if e, ok := c.EndpointByIP(local); ok {
			node = e.Node
		} else if n, ok := c.NodeByIP(local); ok {
			node = n.Name
		}
		f := flows.Flow{
			Time: time.Unix(1_700_000_000+int64(i), 0).UTC(), Node: node,
			Source: endpointOf(c, src, node), Destination: endpointOf(c, dst, node),
			Protocol: "TCP", Direction: res.Decider.String(),
			Verdict: map[engine.Verdict]flows.Verdict{engine.VerdictAllow: flows.Forwarded, engine.VerdictDeny: flows.Dropped, engine.VerdictAudit: flows.Audit}[res.Verdict],
		}
		f.Destination.Port = o.port
		if res.Verdict == engine.VerdictDeny {
			f.DropReason = map[engine.Reason]flows.DropReason{engine.ReasonDefaultDeny: flows.DefaultDeny, engine.ReasonDenied: flows.ExplicitDeny, engine.ReasonL7Denied: flows.L7Refused}[side.Reason]
		}
		if side.Rule != nil {
			o := side.Rule.Origin
			f.Policy = &flows.Policy{Kind: o.Kind, Namespace: o.Namespace, Name: o.Name, Path: o.Path, File: o.File, Line: o.Line, Column: o.Column, Revision: o.Revision}
		}
		for _, o := range side.Policies {
			f.Isolating = append(f.Isolating, flows.Policy{Kind: o.Kind, Namespace: o.Namespace, Name: o.Name, File: o.File, Line: o.Line, Column: o.Column})
		}
		out = append(out, f)
	}
	var buf bytes.Buffer
	if err := flows.Write(&buf, out...); err != nil {
		t.Fatal(err)
	}
	return writeFile(t, t.TempDir(), "flows.jsonl", buf.String())
}

// endpointOf is what the observer knows of an address seen on node: a
// pod's identity labels, or a reserved entity.
func endpointOf(c *engine.Cluster, addr netip.Addr, node string) flows.Endpoint {
	ep := flows.Endpoint{IP: addr.String()}
	if e, ok := c.EndpointByIP(addr); ok {
		ep.Namespace, ep.Pod, ep.Labels = e.Namespace, e.Name, c.WorkloadLabels(e)
		if e.Unmanaged {
			ep.Entity = string(engine.EntityUnmanaged)
		}
		return ep
	}
	l := c.PeerLabels(addr, node)
	for _, ent := range []engine.Entity{engine.EntityHost, engine.EntityRemoteNode, engine.EntityKubeAPIServer, engine.EntityCluster, engine.EntityWorld} {
		if l.Has(ent) {
			ep.Entity = string(ent)
			break
		}
	}
	return ep
}

// The flows of the example cluster the tests record. Lines 3 and 6 are api
// calling postgres, allowed by shop/postgres's first ingress rule.
var exampleFlows = []observed{
	{"shop/frontend-7d9f", "shop/api-5c8b", 8080},       // 1 allowed
	{"203.0.113.10", "shop/frontend-7d9f", 80},          // 2 allowed
	{"shop/api-5c8b", "shop/postgres-0", 5432},          // 3 allowed by postgres ingress[0]
	{"shop/frontend-7d9f", "shop/postgres-0", 5432},     // 4 dropped
	{"10.20.7.9", "shop/postgres-0", 8435},              // 5 allowed (backup network)
	{"shop/api-5c8b", "shop/postgres-0", 5432},          // 6 as 3
	{"shop/api-5c8b", "payments/kafka-0", 9092},         // 7 allowed
	{"203.0.113.10", "shop/frontend-7d9f", 22},          // 8 dropped
	{"ledger/ledger-1", "203.0.113.10", 443},            // 9 audit
	{"shop/frontend-7d9f", "kube-system/coredns-1", 53}, // 10
}

// apiToPostgres is shop/postgres's ingress rule that lets api in.
const apiToPostgres = `			{
				fromEndpoints: [#API]
				toPorts: [{ports: [{port: 5432, protocol: "TCP"}]}]
			},
`

type planJSON struct {
	Base                                      string
	Flows, Replayed, Skipped, Changed, Broken int
	Pairs                                     []struct {
		Source, Destination string
		Flows, Broken       int
		Changes             []struct {
			Port                    uint16
			Protocol, Before, After string
			Count                   int `json:"flows"`
			Lines                   []int
			DecidedBy, WasDecidedBy *struct {
				Direction, Endpoint, Reason string
				Rule                        *engine.Origin
				Policies                    []engine.Origin
			}
		}
	}
}

func parsePlan(t *testing.T, out string) planJSON {
	t.Helper()
	var p planJSON
	if err := json.Unmarshal([]byte(out), &p); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	return p
}

// changedLines are the lines of every record the plan reports.
func (p planJSON) changedLines() []int {
	var ls []int
	for _, pr := range p.Pairs {
		for _, c := range pr.Changes {
			ls = append(ls, c.Lines...)
		}
	}
	slices.Sort(ls)
	return ls
}

// TestPlanRemovedAllow: a commit that removes shop/postgres's rule for api
// breaks exactly the recorded api -> postgres flows (lines 3 and 6), both
// against the base revision and against the recorded verdicts; plan exits 1.
func TestPlanRemovedAllow(t *testing.T) {
	g := newGitRepo(t)
	dir := filepath.Join(g.dir, "policies")
	copyExamples(t, dir)
	base := g.commit(t, "examples")
	flowsFile := record(t, dir, exampleFlows)

	pg := filepath.Join(dir, "shop", "postgres.cue")
	src, err := os.ReadFile(pg)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(src), apiToPostgres) {
		t.Fatalf("shop/postgres.cue has no rule\n%s", apiToPostgres)
	}
	writeFile(t, dir, "shop/postgres.cue", strings.Replace(string(src), apiToPostgres, "", 1))
	g.commit(t, "postgres: api no longer connects")

	for _, args := range [][]string{{"--base", base.Hash.String()}, nil} {
		name := "recorded verdicts"
		if args != nil {
			name = "base"
		}
		t.Run(name, func(t *testing.T) {
			out, errOut, code := planCmd(t, append(args, "--flows", flowsFile, "-o", "json", dir)...)
			if code != exitInvalid {
				t.Fatalf("exit %d, want %d\n%s%s", code, exitInvalid, out, errOut)
			}
			p := parsePlan(t, out)
			if got := p.changedLines(); !slices.Equal(got, []int{3, 6}) {
				t.Fatalf("changed records at lines %v, want [3 6]\n%s", got, out)
			}
			if p.Flows != len(exampleFlows) || p.Changed != 2 || p.Broken != 2 || len(p.Pairs) != 1 {
				t.Fatalf("counts: %+v", p)
			}
			pr := p.Pairs[0]
			if pr.Source != "shop/api" || pr.Destination != "shop/postgres" || pr.Flows != 2 || pr.Broken != 2 || len(pr.Changes) != 1 {
				t.Fatalf("pair: %+v", pr)
			}
			c := pr.Changes[0]
			if c.Port != 5432 || c.Protocol != "TCP" || c.Before != "forwarded" || c.After != "dropped" || c.Count != 2 {
				t.Errorf("change: %+v", c)
			}
			// Now postgres's ingress is default deny, for want of the rule.
			d := c.DecidedBy
			if d == nil || d.Direction != "ingress" || d.Endpoint != "shop/postgres-0" || d.Reason != "default-deny" ||
				!slices.ContainsFunc(d.Policies, func(o engine.Origin) bool {
					return o.Name == "postgres" && o.File == "shop/postgres.cue" && o.Line > 0
				}) {
				t.Errorf("decided by %+v", d)
			}
			if args == nil {
				if c.WasDecidedBy != nil {
					t.Errorf("no base, but was decided by %+v", c.WasDecidedBy)
				}
				return
			}
			// At the base it was the removed rule, on line 12 of the file.
			w := c.WasDecidedBy
			if w == nil || w.Rule == nil || w.Rule.Name != "postgres" || w.Rule.Path != "spec.ingress[0]" || w.Rule.File != "shop/postgres.cue" ||
				!strings.Contains(strings.Split(string(src), "\n")[w.Rule.Line-1], "{") {
				t.Errorf("was decided by %+v", w)
			}
		})
	}

	t.Run("formats", func(t *testing.T) {
		args := []string{"--base", base.Hash.String(), "--flows", flowsFile, dir}
		out, _, code := planCmd(t, append(args, "-o", "text")...)
		t.Logf("text:\n%s", out) // docs/flows.md shows it
		if code != exitInvalid || !strings.Contains(out, "shop/api -> shop/postgres: 2 flow(s) change, 2 allowed flow(s) become dropped") ||
			!strings.Contains(out, "5432/TCP forwarded -> dropped, 2 flow(s) (lines 3, 6): now default-deny by ") ||
			!strings.Contains(out, "was allowed by NetworkPolicy shop/postgres spec.ingress[0] (shop/postgres.cue:") {
			t.Errorf("text, exit %d:\n%s", code, out)
		}
		out, _, _ = planCmd(t, append(args, "-o", "markdown")...)
		if !strings.Contains(out, "**2 recorded flow(s) that were allowed would be dropped.**") ||
			!strings.Contains(out, "| `shop/api` | `shop/postgres` | 5432/TCP | forwarded | **dropped** | 2 |") {
			t.Errorf("markdown:\n%s", out)
		}
		out, _, _ = planCmd(t, append(args, "-o", "sarif")...)
		var sarif struct {
			Runs []struct {
				Results []struct {
					RuleID    string
					Level     string
					Locations []struct {
						PhysicalLocation struct {
							ArtifactLocation struct{ URI string }
							Region           struct{ StartLine int }
						}
					}
				}
			}
		}
		if err := json.Unmarshal([]byte(out), &sarif); err != nil || len(sarif.Runs) != 1 || len(sarif.Runs[0].Results) != 1 {
			t.Fatalf("sarif: %v\n%s", err, out)
		}
		r := sarif.Runs[0].Results[0]
		if r.RuleID != "PLAN001" || r.Level != "error" || len(r.Locations) != 1 || r.Locations[0].PhysicalLocation.Region.StartLine == 0 ||
			!strings.HasSuffix(r.Locations[0].PhysicalLocation.ArtifactLocation.URI, ".cue") {
			t.Errorf("sarif result: %+v", r)
		}
		out, _, _ = planCmd(t, append(args, "-o", "github")...)
		if !strings.HasPrefix(out, "::error file=") || !strings.Contains(out, "title=PLAN001::2 recorded flow(s) shop/api -> shop/postgres 5432/TCP") {
			t.Errorf("github:\n%s", out)
		}
	})
}

// TestPlanRefactor: moving a value into a definition changes no meaning,
// so plan reports nothing and exits 0, against the base and against the
// recorded verdicts. That the recorded verdicts come out unchanged also
// shows the cluster rebuilt from the records is the one they were
// recorded in.
func TestPlanRefactor(t *testing.T) {
	g := newGitRepo(t)
	dir := filepath.Join(g.dir, "policies")
	copyExamples(t, dir)
	base := g.commit(t, "examples")
	flowsFile := record(t, dir, exampleFlows)

	src, err := os.ReadFile(filepath.Join(dir, "shop", "postgres.cue"))
	if err != nil {
		t.Fatal(err)
	}
	const port = `toPorts: [{ports: [{port: 5432, protocol: "TCP"}]}]`
	if strings.Count(string(src), port) != 4 {
		t.Fatalf("shop/postgres.cue does not name the port four times")
	}
	refactored := strings.ReplaceAll(string(src), port, "toPorts: #PostgresPort") +
		"\n// #PostgresPort is the database's port.\n#PostgresPort: [{ports: [{port: 5432, protocol: \"TCP\"}]}]\n"
	writeFile(t, dir, "shop/postgres.cue", refactored) // not committed: the working tree is the candidate

	for _, args := range [][]string{{"--base", base.Hash.String()}, nil} {
		out, errOut, code := planCmd(t, append(args, "--flows", flowsFile, "-o", "json", dir)...)
		if code != exitOK {
			t.Fatalf("%v: exit %d\n%s%s", args, code, out, errOut)
		}
		if p := parsePlan(t, out); p.Changed != 0 || len(p.Pairs) != 0 || p.Replayed != len(exampleFlows) {
			t.Errorf("%v: %+v", args, p)
		}
	}
	out, _, _ := planCmd(t, "--base", base.Hash.String(), "--flows", flowsFile, "-o", "markdown", dir)
	if !strings.Contains(out, "No recorded flow changes verdict: 10 flow(s) replayed against "+base.Hash.String()) {
		t.Errorf("markdown:\n%s", out)
	}
}

// TestPlanEndpointsFile: records carry no named ports, so a flow allowed
// by a named port (prometheus scraping "metrics") needs the endpoints
// file, which wins over the records.
func TestPlanEndpointsFile(t *testing.T) {
	flowsFile := record(t, examplesDir, []observed{{"monitoring/prometheus-0", "shop/api-5c8b", 9090}})
	out, _, code := planCmd(t, "--flows", flowsFile, "-o", "json", examplesDir)
	if p := parsePlan(t, out); code != exitInvalid || p.Broken != 1 {
		t.Errorf("without the endpoints file the named port is unknown: exit %d %+v", code, p)
	}
	out, errOut, code := planCmd(t, "--flows", flowsFile, "--endpoints", filepath.Join(examplesDir, "endpoints.yaml"), "-o", "json", examplesDir)
	if p := parsePlan(t, out); code != exitOK || p.Changed != 0 {
		t.Errorf("with it: exit %d %+v%s", code, p, errOut)
	}
}

// TestPlanMalformedFlows: a malformed record is a usage error at its
// file:line(:col); an address two records give to different pods too.
func TestPlanMalformedFlows(t *testing.T) {
	good := `{"node":"worker-1","source":{"ip":"10.244.1.10","namespace":"shop","pod":"frontend-7d9f"},"destination":{"ip":"10.244.1.20","port":8080,"namespace":"shop","pod":"api-5c8b"},"protocol":"TCP","direction":"ingress","verdict":"forwarded"}`
	tests := []struct{ in, want string }{
		{good + "\n" + `{"source": {"ip": "10.244.1.10"}` + "\n", "flows.jsonl:2:"},
		{good + "\n\n" + strings.Replace(good, `"TCP"`, `"GRE"`, 1) + "\n", `flows.jsonl:3: protocol "GRE"`},
		{good + "\n" + strings.Replace(good, `"pod":"api-5c8b"`, `"pod":"api-other"`, 1) + "\n",
			"flows.jsonl:2: address 10.244.1.20 is shop/api-other here but shop/api-5c8b at line 1"},
		{good + "\n" + strings.Replace(good, `"ip":"10.244.1.20","port":8080,"namespace":"shop","pod":"api-5c8b"`, `"ip":"10.9.9.9","port":8080,"entity":"moon"`, 1) + "\n", `flows.jsonl:2: unknown entity "moon"`},
	}
	for _, tc := range tests {
		dir := t.TempDir()
		f := writeFile(t, dir, "flows.jsonl", tc.in)
		out, errOut, code := planCmd(t, "--flows", f, examplesDir)
		if code != exitUsage || !strings.Contains(errOut, filepath.Join(dir, tc.want)) {
			t.Errorf("exit %d, want %d and %s\n%s%s", code, exitUsage, tc.want, out, errOut)
		}
	}
	if _, errOut, code := planCmd(t, examplesDir); code != exitUsage || !strings.Contains(errOut, "--flows is required") {
		t.Errorf("no --flows: exit %d %s", code, errOut)
	}
}

func TestPodWorkload(t *testing.T) {
	for pod, want := range map[string]string{
		"api-5c8b9d7f6-x7k2p":    "api",
		"postgres-0":             "postgres",
		"payment-processor-6f4d": "payment-processor",
		"web-v2-x7k2p":           "web-v2", // v2 is too short for a hash
		"coredns-6f4d9b-xkzqw":   "coredns",
		"frontend":               "frontend",
		"fraud-detector":         "fraud-detector",
	} {
		if got := flows.PodWorkload(pod, nil); got != want {
			t.Errorf("%s: %s, want %s", pod, got, want)
		}
	}
	if got := flows.PodWorkload("web-v2-6f4d-abcde", map[string]string{"pod-template-hash": "6f4d"}); got != "web-v2" {
		t.Errorf("with pod-template-hash: %s", got)
	}
}
