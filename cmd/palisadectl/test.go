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
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/palisade-dev/palisade/internal/diag"
	"github.com/palisade-dev/palisade/internal/engine"
	"github.com/palisade-dev/palisade/internal/loader"
	"github.com/palisade-dev/palisade/internal/validate"
)

func init() { commands = append(commands, newTestCmd) }

type testFlags struct {
	endpoints string
	output    string
	verbose   bool
	revision  string
}

func newTestCmd() *cobra.Command {
	var f testFlags
	cmd := &cobra.Command{
		Use:   "test DIR",
		Short: "Run the flow tests written beside the policies",
		Long: `test loads and validates the policy repository in DIR as validate does,
then evaluates each flow test it holds (values of kind FlowTest, the
schema's #FlowTest; see docs/flows.md) with Palisade's reference evaluator
against the workloads of the endpoints file, offline, and checks the
verdict (and, where the test says, the deciding side's reason and policy,
and the kernel's verdict) against the test's expectations.

A flow test asserts what the policies mean. Where this version's datapath
does not enforce the deciding rule as written, "kernel" asserts what the
kernel does instead (as explain's kernel line says).

Each failure starts with the file:line:col of the expectation that failed
and says what was expected, what the policies gave and which rule decided,
at its file:line:col. --endpoints defaults to DIR/endpoints.yaml.

Exit status: 0 every test passed, 1 a test failed, the repository holds no
flow test or the policies are invalid, 2 usage error.`,
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) != 1 {
				return usage("give one policy repository DIR")
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error { return runTest(cmd, args[0], &f) },
	}
	fl := cmd.Flags()
	fl.StringVar(&f.endpoints, "endpoints", "", "endpoints file, YAML (default DIR/endpoints.yaml)")
	fl.StringVarP(&f.output, "output", "o", "text", "output format: text or json")
	fl.BoolVarP(&f.verbose, "verbose", "v", false, "list the tests that pass too (text)")
	fl.StringVar(&f.revision, "revision", "", "revision to record in the rules' origins")
	return cmd
}

// flowTest is a FlowTest value as the schema's #FlowTest defines it,
// defaults applied.
type flowTest struct {
	Name        string               `json:"name"`
	Description string               `json:"description"`
	From        string               `json:"from"`
	To          string               `json:"to"`
	Port        uint16               `json:"port"`
	Protocol    string               `json:"protocol"`
	Reply       bool                 `json:"reply"`
	HTTP        *engine.HTTPRequest  `json:"http"`
	DNS         *engine.DNSRequest   `json:"dns"`
	Kafka       *engine.KafkaRequest `json:"kafka"`
	Expect      string               `json:"expect"`
	Reason      string               `json:"reason"`
	Policy      string               `json:"policy"`
	Kernel      string               `json:"kernel"`
}

// testReport is test's output; its JSON form is documented in
// docs/flows.md.
type testReport struct {
	Tests  []testResult `json:"tests"`
	Passed int          `json:"passed"`
	Failed int          `json:"failed"`
}

// testResult is the outcome of one flow test.
type testResult struct {
	Name string   `json:"name"`
	Pos  diag.Pos `json:"pos"`
	Pass bool     `json:"pass"`
	// Failures say which expectations did not hold, each at its field.
	Failures []testFailure `json:"failures,omitempty"`
	// Explanation is how the policies decided the flow, as explain
	// prints it; absent when the flow could not be built.
	Explanation *explanation `json:"explanation,omitempty"`
}

// testFailure is one expectation that did not hold, or a flow that could
// not be built from the test (Expected and Got empty).
type testFailure struct {
	Pos      diag.Pos `json:"pos"`
	Field    string   `json:"field"`
	Expected string   `json:"expected,omitempty"`
	Got      string   `json:"got,omitempty"`
	Message  string   `json:"message"`
}

func runTest(cmd *cobra.Command, dir string, f *testFlags) error {
	if f.output != "text" && f.output != "json" {
		return usage("unknown --output %q (want text or json)", f.output)
	}
	endpoints := f.endpoints
	if endpoints == "" {
		endpoints = filepath.Join(dir, "endpoints.yaml")
		if _, err := os.Stat(endpoints); err != nil {
			return usage("no --endpoints given and no endpoints.yaml in %s", dir)
		}
	}
	cluster, err := readCluster(endpoints)
	if err != nil {
		return usage("%v", err)
	}
	rep, ir, err := loadPolicies(cmd, dir, f.revision)
	if err != nil {
		return err
	}
	if len(rep.Tests) == 0 {
		return &exitError{exitInvalid, fmt.Errorf("%s: no flow tests (values of kind FlowTest) found", dir)}
	}
	kern := kernelView(ir)
	var out testReport
	for _, obj := range rep.Tests {
		r := runFlowTest(obj, dir, ir, kern, cluster, rep.Objects)
		if r.Pass {
			out.Passed++
		} else {
			out.Failed++
		}
		out.Tests = append(out.Tests, r)
	}
	if f.output == "json" {
		b, err := json.MarshalIndent(out, "", "  ")
		if err != nil {
			return err
		}
		if _, err := fmt.Fprintf(cmd.OutOrStdout(), "%s\n", b); err != nil {
			return err
		}
	} else if err := out.writeText(cmd.OutOrStdout(), f.verbose); err != nil {
		return err
	}
	if out.Failed > 0 {
		// The report says what failed; run prints nothing more.
		return &exitError{code: exitInvalid}
	}
	return nil
}

// runFlowTest evaluates one flow test.
func runFlowTest(obj *loader.Object, dir string, ir, kern *engine.IR, c *engine.Cluster, policies []*validate.Policy) testResult {
	pos := func(field string) diag.Pos {
		p := obj.Pos
		if field != "" {
			p = obj.PosOf(field)
		}
		p.File = relativeFile(dir, p.File)
		return p
	}
	res := testResult{Name: obj.Name, Pos: pos("")}
	if res.Name == "" {
		res.Name = obj.Path
		if obj.Package != "." && obj.Package != "" {
			res.Name = obj.Package + ":" + obj.Path
		}
	}
	fail := func(field, expected, got, format string, args ...any) {
		res.Failures = append(res.Failures, testFailure{Pos: pos(field), Field: field, Expected: expected, Got: got, Message: fmt.Sprintf(format, args...)})
	}
	var t flowTest
	if err := json.Unmarshal(obj.JSON, &t); err != nil {
		fail("", "", "", "%v", err)
		return res
	}
	flow, field, err := t.flow(c)
	if err != nil {
		fail(field, "", "", "%v", err)
		return res
	}
	got := engine.Evaluate(ir, c, flow)
	ex := newExplanation(c, flow, got, dir)
	ex.Kernel = kernelOf(got, engine.Evaluate(kern, c, flow), flow, policies)
	res.Explanation = ex

	decider := ex.Egress
	if got.Decider == engine.Ingress {
		decider = ex.Ingress
	}
	decided := fmt.Sprintf("decided at %s: %s", got.Decider, decider.describe())
	if v := got.Verdict.String(); v != t.Expect {
		fail("expect", t.Expect, v, "expected %s, got %s, %s", t.Expect, v, decided)
	}
	// An allowed flow is allowed by both sides; reason and policy may
	// name either. A denied or audited flow is the decider's.
	sides := []sideOut{decider}
	if got.Verdict == engine.VerdictAllow {
		sides = []sideOut{ex.Egress, ex.Ingress}
	}
	if t.Reason != "" && !slices.ContainsFunc(sides, func(s sideOut) bool { return s.Reason.String() == t.Reason }) {
		var gotReasons []string
		for _, s := range sides {
			gotReasons = append(gotReasons, s.Reason.String())
		}
		g := strings.Join(gotReasons, ", ")
		fail("reason", t.Reason, g, "expected reason %s, got %s, %s", t.Reason, g, decided)
	}
	if t.Policy != "" {
		var names []string
		for _, s := range sides {
			names = append(names, decidingPolicies(s)...)
		}
		if !slices.ContainsFunc(names, func(n string) bool { return samePolicy(n, t.Policy) }) {
			g := strings.Join(names, ", ")
			if g == "" {
				g = "no policy"
			}
			fail("policy", t.Policy, g, "expected policy %s to decide, got %s, %s", t.Policy, g, decided)
		}
	}
	if k := ex.Kernel.Verdict.String(); t.Kernel != "" && k != t.Kernel {
		why := ex.Kernel.Reason
		if why == "" {
			why = "the kernel enforces the deciding rules as written"
		}
		fail("kernel", t.Kernel, k, "expected the kernel to %s, it would %s: %s", t.Kernel, k, why)
	}
	res.Pass = len(res.Failures) == 0
	return res
}

// flow builds the flow the test describes; on error it names the field at
// fault.
func (t *flowTest) flow(c *engine.Cluster) (engine.Flow, string, error) {
	var flow engine.Flow
	var err error
	// An entity such as host is seen from the other end: resolve that
	// first.
	if isEntity(t.From) && !isEntity(t.To) {
		if flow.Dst, err = resolvePeer(c, t.To, netip.Addr{}); err != nil {
			return flow, "to", fmt.Errorf("to: %w", err)
		}
		if flow.Src, err = resolvePeer(c, t.From, flow.Dst); err != nil {
			return flow, "from", fmt.Errorf("from: %w", err)
		}
	} else {
		if flow.Src, err = resolvePeer(c, t.From, netip.Addr{}); err != nil {
			return flow, "from", fmt.Errorf("from: %w", err)
		}
		if flow.Dst, err = resolvePeer(c, t.To, flow.Src); err != nil {
			return flow, "to", fmt.Errorf("to: %w", err)
		}
	}
	if flow.Port, flow.Proto, err = parsePort(fmt.Sprintf("%d/%s", t.Port, t.Protocol)); err != nil {
		return flow, "port", err
	}
	if t.Reply {
		// The test describes the connection; the packet is its reply.
		flow.Src, flow.Dst, flow.Reply = flow.Dst, flow.Src, true
	}
	n := 0
	var req engine.Request
	if t.HTTP != nil {
		n++
		req.HTTP = t.HTTP
	}
	if t.DNS != nil {
		n++
		req.DNS = t.DNS
	}
	if t.Kafka != nil {
		n++
		req.Kafka = t.Kafka
	}
	switch n {
	case 0:
	case 1:
		flow.Request = &req
	default:
		return flow, "", errors.New("give one L7 request: http, dns or kafka")
	}
	return flow, "", nil
}

// isEntity reports whether s names a reserved entity rather than an
// address or endpoint.
func isEntity(s string) bool { return slices.Contains(engine.Entities, engine.Entity(s)) }

// resolvePeer turns one end of a flow, in any form explain's --from and
// --from-entity take, into the address a packet would carry; other is the
// address of the other end, which host and remote-node are seen from.
func resolvePeer(c *engine.Cluster, s string, other netip.Addr) (netip.Addr, error) {
	if isEntity(s) {
		return entityAddr(c, engine.Entity(s), other)
	}
	return resolveAddr(c, s)
}

// decidingPolicies names the policies that decided a side, "ns/name" or
// "name": the deciding rule's, or those that isolate the endpoint.
func decidingPolicies(s sideOut) []string {
	name := func(o engine.Origin) string {
		if o.Namespace == "" {
			return o.Name
		}
		return o.Namespace + "/" + o.Name
	}
	var out []string
	if s.Rule != nil {
		out = append(out, name(s.Rule.Origin))
	}
	for _, p := range s.Policies {
		out = append(out, name(p))
	}
	return out
}

// samePolicy compares a policy name with a test's expectation, which may
// also carry the kind ("NetworkPolicy shop/api").
func samePolicy(name, want string) bool {
	if _, rest, ok := strings.Cut(want, " "); ok {
		want = rest
	}
	return name == want
}

func (r *testReport) writeText(w io.Writer, verbose bool) error {
	var b strings.Builder
	for _, t := range r.Tests {
		if t.Pass {
			if verbose {
				fmt.Fprintf(&b, "%s: ok   %s: %s\n", t.Pos, t.Name, t.Explanation.Verdict)
			}
			continue
		}
		for _, f := range t.Failures {
			fmt.Fprintf(&b, "%s: FAIL %s: %s\n", f.Pos, t.Name, f.Message)
		}
		if e := t.Explanation; e != nil {
			fl := e.Flow
			fmt.Fprintf(&b, "    flow: %s -> %s %d/%s", fl.Src, fl.Dst, fl.Port, fl.Proto)
			if fl.Reply {
				b.WriteString(" (reply)")
			}
			if rq := fl.Request; rq != nil {
				b.WriteString(" " + describeRequest(rq))
			}
			b.WriteByte('\n')
		}
	}
	fmt.Fprintf(&b, "%d flow tests: %d passed, %d failed\n", len(r.Tests), r.Passed, r.Failed)
	_, err := io.WriteString(w, b.String())
	return err
}

// describeRequest says what an L7 request asks, in one line.
func describeRequest(r *engine.Request) string {
	switch {
	case r.HTTP != nil:
		s := r.HTTP.Method + " " + r.HTTP.Path
		if r.HTTP.Host != "" {
			s += " Host: " + r.HTTP.Host
		}
		return s
	case r.DNS != nil:
		return "DNS " + r.DNS.Name
	case r.Kafka != nil:
		s := "Kafka " + r.Kafka.APIKey
		if r.Kafka.Topic != "" {
			s += " topic " + r.Kafka.Topic
		}
		return s
	}
	return ""
}
