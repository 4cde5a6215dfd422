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
	"cmp"
	"fmt"
	"net/netip"
	"os"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/palisade-dev/palisade/internal/diag"
	"github.com/palisade-dev/palisade/internal/engine"
	"github.com/palisade-dev/palisade/internal/flows"
	"github.com/palisade-dev/palisade/internal/guard"
	"github.com/palisade-dev/palisade/internal/validate"
	"github.com/palisade-dev/palisade/policies/schema"
)

func init() { commands = append(commands, newPlanCmd) }

// planFormats are plan's output formats.
var planFormats = []string{"text", "json", "sarif", "github", "markdown"}

type planFlags struct {
	base, flows, endpoints, output string
}

func newPlanCmd() *cobra.Command {
	var f planFlags
	cmd := &cobra.Command{
		Use:   "plan --flows FILE [--base REF] [--endpoints FILE] DIR",
		Short: "Replay recorded flows against a policy change and report the verdicts it changes",
		Long: `plan replays recorded flows (the JSON lines that observe prints) against the
policies in DIR's working tree with Palisade's reference evaluator, and
reports every flow whose verdict changes, grouped by source and destination
workload, with the rule (file:line) that decides it now.

With --base REF, each flow's verdict under the policies of Git revision REF
is compared with its verdict under the working tree's: a pure comparison of
the two policy sets. Without --base, the recorded verdict is compared with
what the datapath of this version would do under the working tree's
policies; records of datapath states rather than policy (verdict error, and
the drop reasons malformed, no-endpoint, no-state, fail-closed-map-full,
identity-pending, l7-refused) are then skipped and counted.

The cluster is built from the records: each one names its workloads'
namespace, pod, labels and addresses, and reserved entities (host,
remote-node, kube-apiserver, cluster, unmanaged, world). --endpoints adds an
endpoints file as explain reads it; where both describe an address, a
workload or a namespace, the endpoints file wins.

Output (-o): text, json, sarif, github (workflow annotations) or markdown (a
pull request comment).

Exit status: 0 no allowed flow becomes dropped, 1 one does (or the policies
in DIR are invalid), 2 usage error, including a malformed flow record
(reported at file:line:col).`,
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) != 1 {
				return usage("give one policy repository DIR")
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error { return runPlan(cmd, &f, args[0]) },
	}
	fl := cmd.Flags()
	fl.StringVar(&f.flows, "flows", "", "recorded flows, JSON lines as observe prints them (required; - for stdin)")
	fl.StringVar(&f.base, "base", "", "Git revision whose policies the change is compared with; default: the recorded verdicts")
	fl.StringVar(&f.endpoints, "endpoints", "", "endpoints file, YAML, as explain reads it; wins over the records")
	fl.StringVarP(&f.output, "output", "o", "text", "output format: "+strings.Join(planFormats, ", "))
	return cmd
}

func runPlan(cmd *cobra.Command, f *planFlags, dir string) error {
	if f.flows == "" {
		return usage("--flows is required")
	}
	if !slices.Contains(planFormats, f.output) {
		return usage("unknown --output %q (want %s)", f.output, strings.Join(planFormats, ", "))
	}
	recs, err := readFlows(f.flows)
	if err != nil {
		return usage("%v", err)
	}
	var fromFile *engine.Cluster
	if f.endpoints != "" {
		if fromFile, err = readCluster(f.endpoints); err != nil {
			return usage("%v", err)
		}
	}
	cluster, err := clusterOf(recs, f.flows, fromFile)
	if err != nil {
		return usage("%v", err)
	}
	rep, err := validate.Dir(cmd.Context(), dir, validate.Options{})
	if err != nil {
		return usage("%v", err)
	}
	if !rep.Valid() {
		_ = diag.Write(cmd.ErrOrStderr(), "text", "palisadectl", schema.Version, relativeTo(dir, rep.Diagnostics))
		return &exitError{exitInvalid, fmt.Errorf("%s: the policies are invalid", dir)}
	}
	head, err := engine.Build(rep.Objects, "")
	if err != nil {
		return usage("%v", err)
	}
	var base *engine.IR
	if f.base != "" {
		if base, err = baseIR(cmd, dir, f.base); err != nil {
			return usage("%v", err)
		}
	}
	p := replay(recs, cluster, base, head, dir)
	p.Base = f.base
	if err := p.write(cmd.OutOrStdout(), f.output); err != nil {
		return usage("%v", err)
	}
	if p.Broken > 0 {
		return &exitError{code: exitInvalid}
	}
	return nil
}

func readFlows(path string) ([]flows.Record, error) {
	if path == "-" {
		return flows.Read(os.Stdin, "<stdin>")
	}
	fh, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read flows: %w", err)
	}
	defer fh.Close()
	return flows.Read(fh, path)
}

// baseIR builds the policies of DIR at Git revision ref, checked out as
// validate --base does it.
func baseIR(cmd *cobra.Command, dir, ref string) (*engine.IR, error) {
	var meta guard.Meta
	bt, err := checkoutBase(dir, ref, &meta)
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(bt.tmp)
	rep, err := validate.Dir(cmd.Context(), bt.dir, validate.Options{})
	if err != nil {
		return nil, fmt.Errorf("validate base %s: %w", ref, err)
	}
	if !rep.Valid() {
		// As validate --base (PAL605): what loads is the base.
		fmt.Fprintf(cmd.ErrOrStderr(), "palisadectl: warning: the policies at %s (%s) have %d error(s); replaying against the %d that loaded\n",
			ref, meta.PreviousRevision, rep.Diagnostics.Count(diag.Error), len(rep.Objects))
	}
	return engine.Build(rep.Objects, meta.PreviousRevision)
}

// notReplayed are drop reasons of the datapath's state, not of policy:
// compared with a recorded verdict, they would be reported as changes that
// no policy makes. l7-refused is here because records carry no request.
var notReplayed = []flows.DropReason{flows.Malformed, flows.NoEndpoint, flows.NoState, flows.FailClosedFull, flows.IdentityPending, flows.L7Refused}

// replay evaluates every record under head and compares the verdict with
// base's, or with the recorded one when base is nil.
func replay(recs []flows.Record, c *engine.Cluster, base, head *engine.IR, dir string) *plan {
	p := &plan{Flows: len(recs), Pairs: []*pairOut{}}
	now := head
	if base == nil {
		// Recorded verdicts are the kernel's: compare like with like.
		now = kernelView(head)
	}
	pairs := map[[2]string]*pairOut{}
	for _, r := range recs {
		if base == nil && (r.Verdict == flows.Error || slices.Contains(notReplayed, r.DropReason)) {
			p.Skipped++
			continue
		}
		p.Replayed++
		fl := engineFlow(r.Flow)
		after := engine.Evaluate(now, c, fl)
		before := r.Verdict
		var was *decision
		if base != nil {
			res := engine.Evaluate(base, c, fl)
			before = verdictOf(res.Verdict)
			// What decided at the base on the side that decides now:
			// the rule the change removed or added.
			was = decisionOf(res, after.Decider, dir)
		}
		if before == verdictOf(after.Verdict) {
			continue
		}
		p.Changed++
		key := [2]string{workloadOf(r.Source), workloadOf(r.Destination)}
		pr := pairs[key]
		if pr == nil {
			pr = &pairOut{Source: key[0], Destination: key[1]}
			pairs[key] = pr
			p.Pairs = append(p.Pairs, pr)
		}
		ch := changeOut{Port: fl.Port, Protocol: fl.Proto.String(), Before: before, After: verdictOf(after.Verdict), DecidedBy: decisionOf(after, after.Decider, dir), WasDecidedBy: was}
		pr.Flows++
		if ch.breaks() {
			pr.Broken++
			p.Broken++
		}
		i := slices.IndexFunc(pr.Changes, func(o *changeOut) bool { return o.same(&ch) })
		if i < 0 {
			pr.Changes = append(pr.Changes, &ch)
			i = len(pr.Changes) - 1
		}
		pr.Changes[i].Count++
		pr.Changes[i].Lines = append(pr.Changes[i].Lines, r.Line)
	}
	// Broken pairs first, then by name: the comment's reader starts with
	// what the change breaks.
	slices.SortFunc(p.Pairs, func(a, b *pairOut) int {
		return cmp.Or(cmp.Compare(b.Broken, a.Broken), cmp.Compare(a.Source, b.Source), cmp.Compare(a.Destination, b.Destination))
	})
	for _, pr := range p.Pairs {
		slices.SortStableFunc(pr.Changes, func(a, b *changeOut) int {
			return cmp.Or(cmp.Compare(a.Protocol, b.Protocol), cmp.Compare(a.Port, b.Port))
		})
	}
	return p
}

// engineFlow is the packet of a record, as the evaluator takes it. The
// records were checked by flows.Read, so the addresses and protocol parse.
func engineFlow(f flows.Flow) engine.Flow {
	proto, _ := engine.ParseProto(f.Protocol)
	fl := engine.Flow{
		Src:   netip.MustParseAddr(f.Source.IP),
		Dst:   netip.MustParseAddr(f.Destination.IP),
		Proto: proto,
		Port:  f.Destination.Port,
	}
	if (proto == engine.ProtoICMP || proto == engine.ProtoICMPv6) && f.ICMPType != nil {
		fl.Port = uint16(*f.ICMPType)
	}
	return fl
}

func verdictOf(v engine.Verdict) flows.Verdict {
	switch v {
	case engine.VerdictDeny:
		return flows.Dropped
	case engine.VerdictAudit:
		return flows.Audit
	}
	return flows.Forwarded
}

// workloadOf names the workload of an endpoint: namespace/name for a pod,
// without the suffix its controller generated; the entity for a reserved
// one other than world; the address otherwise.
func workloadOf(e flows.Endpoint) string {
	switch {
	case e.Pod != "":
		return flows.Workload(e.Namespace, e.Pod, e.Labels)
	case e.Entity != "" && e.Entity != string(engine.EntityWorld):
		return e.Entity
	}
	return e.IP
}

// plan is plan's report; its JSON form is documented in docs/flows.md.
type plan struct {
	// Base is the Git revision compared with; "" for the recorded
	// verdicts.
	Base     string     `json:"base,omitempty"`
	Flows    int        `json:"flows"`
	Replayed int        `json:"replayed"`
	Skipped  int        `json:"skipped"`
	Changed  int        `json:"changed"`
	Broken   int        `json:"broken"`
	Pairs    []*pairOut `json:"pairs"`
}

// pairOut is the changed flows from one workload to another.
type pairOut struct {
	Source      string       `json:"source"`
	Destination string       `json:"destination"`
	Flows       int          `json:"flows"`
	Broken      int          `json:"broken"`
	Changes     []*changeOut `json:"changes"`
}

// changeOut is the flows of a pair with one port, one change of verdict
// and one deciding rule.
type changeOut struct {
	Port     uint16        `json:"port"`
	Protocol string        `json:"protocol"`
	Before   flows.Verdict `json:"before"`
	After    flows.Verdict `json:"after"`
	Count    int           `json:"flows"`
	// Lines are the records' lines in the flows file.
	Lines        []int     `json:"lines"`
	DecidedBy    *decision `json:"decidedBy"`
	WasDecidedBy *decision `json:"wasDecidedBy,omitempty"`
}

// breaks reports an allowed flow that becomes dropped.
func (c *changeOut) breaks() bool {
	return c.After == flows.Dropped && (c.Before == flows.Forwarded || c.Before == flows.Audit)
}

func (c *changeOut) same(o *changeOut) bool {
	return c.Port == o.Port && c.Protocol == o.Protocol && c.Before == o.Before && c.After == o.After &&
		c.DecidedBy.String() == o.DecidedBy.String() && c.WasDecidedBy.String() == o.WasDecidedBy.String()
}

// decision is the side that decided a flow and why.
type decision struct {
	Direction string `json:"direction"`
	Endpoint  string `json:"endpoint,omitempty"`
	Reason    string `json:"reason"`
	// Rule is the deciding rule; for a default deny, Policies are the
	// policies that isolate the endpoint.
	Rule     *engine.Origin  `json:"rule,omitempty"`
	Policies []engine.Origin `json:"policies,omitempty"`
}

// decisionOf is the decision of res's side in direction at.
func decisionOf(res engine.Result, at engine.Direction, dir string) *decision {
	s := res.Egress
	if at == engine.Ingress {
		s = res.Ingress
	}
	out := sideOf(s, dir)
	d := &decision{Direction: at.String(), Endpoint: out.Endpoint, Reason: out.Reason.String(), Policies: out.Policies}
	if out.Rule != nil {
		o := out.Rule.Origin
		d.Rule = &o
	}
	return d
}

// String says what decided, with file:line:col.
func (d *decision) String() string {
	if d == nil {
		return ""
	}
	at := d.Direction
	if d.Endpoint != "" {
		at += " of " + d.Endpoint
	}
	switch {
	case d.Rule != nil:
		return fmt.Sprintf("%s by %s %s (%s) at %s", d.Reason, d.Rule.Policy(), d.Rule.Path, d.Rule.Position(), at)
	case len(d.Policies) > 0:
		ps := make([]string, len(d.Policies))
		for i, p := range d.Policies {
			ps[i] = fmt.Sprintf("%s (%s)", p.Policy(), p.Position())
		}
		return fmt.Sprintf("%s by %s at %s", d.Reason, strings.Join(ps, ", "), at)
	}
	return fmt.Sprintf("%s at %s", d.Reason, at)
}

// pos is the place a change is annotated at: the deciding rule, or the
// first isolating policy.
func (d *decision) pos() diag.Pos {
	switch {
	case d == nil:
	case d.Rule != nil:
		return diag.Pos{File: d.Rule.File, Line: d.Rule.Line, Column: d.Rule.Column}
	case len(d.Policies) > 0:
		p := d.Policies[0]
		return diag.Pos{File: p.File, Line: p.Line, Column: p.Column}
	}
	return diag.Pos{}
}

// clusterOf builds the cluster the records describe, on top of the
// endpoints file's (which wins where both describe an address, a workload
// or a namespace). An address that two records give to different owners
// is an error at the later record's line.
func clusterOf(recs []flows.Record, file string, fromFile *engine.Cluster) (*engine.Cluster, error) {
	b := clusterBuilder{c: &engine.Cluster{Namespaces: map[string]map[string]string{}}, owner: map[netip.Addr]claim{}, file: file}
	if fromFile != nil {
		cp := *fromFile
		b.c = &cp
		b.c.Endpoints = slices.Clone(fromFile.Endpoints)
		b.c.Nodes = slices.Clone(fromFile.Nodes)
		b.c.Namespaces = map[string]map[string]string{}
		for ns, l := range fromFile.Namespaces {
			b.c.Namespaces[ns] = l
			b.fileNS = append(b.fileNS, ns)
		}
		for _, e := range fromFile.Endpoints {
			for _, a := range e.IPs {
				b.fileIPs = append(b.fileIPs, a)
			}
		}
		for _, n := range fromFile.Nodes {
			b.fileIPs = append(b.fileIPs, n.IPs...)
		}
		b.fileIPs = append(b.fileIPs, fromFile.APIServer...)
	}
	for _, r := range recs {
		local := r.Destination
		if r.Direction == "egress" {
			local = r.Source
		}
		for _, e := range []flows.Endpoint{r.Source, r.Destination} {
			if err := b.add(r, e, e.IP == local.IP); err != nil {
				return nil, &flows.LineError{File: file, Line: r.Line, Err: err}
			}
		}
	}
	if err := b.c.Index(); err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	return b.c, nil
}

type clusterBuilder struct {
	c       *engine.Cluster
	file    string
	fileIPs []netip.Addr
	fileNS  []string
	owner   map[netip.Addr]claim
}

// claim is who a record says owns an address.
type claim struct {
	who  string
	line int
}

func (b *clusterBuilder) add(r flows.Record, e flows.Endpoint, local bool) error {
	addr := netip.MustParseAddr(e.IP)
	if slices.Contains(b.fileIPs, addr) {
		return nil // the endpoints file wins
	}
	who := e.Entity
	if e.Pod != "" {
		who = e.Namespace + "/" + e.Pod
	}
	if who == "" || who == string(engine.EntityWorld) {
		who = string(engine.EntityWorld)
	}
	if c, ok := b.owner[addr]; ok {
		if c.who != who {
			return fmt.Errorf("address %s is %s here but %s at line %d; replay a recording in which no address changes owner", addr, who, c.who, c.line)
		}
		return nil
	}
	b.owner[addr] = claim{who, r.Line}
	if e.Pod != "" {
		b.addPod(r, e, addr, local)
		return nil
	}
	switch engine.Entity(e.Entity) {
	case "", engine.EntityWorld:
	case engine.EntityHost:
		b.addNodeIP(cmp.Or(r.Node, "node@"+e.IP), addr)
	case engine.EntityRemoteNode:
		b.addNodeIP("remote-node@"+e.IP, addr)
	case engine.EntityKubeAPIServer:
		b.c.APIServer = append(b.c.APIServer, addr)
	case engine.EntityCluster:
		b.c.PodCIDRs = append(b.c.PodCIDRs, netip.PrefixFrom(addr, addr.BitLen()))
	case engine.EntityUnmanaged:
		b.c.Endpoints = append(b.c.Endpoints, engine.Endpoint{Namespace: "unmanaged", Name: e.IP, IPs: []netip.Addr{addr}, Unmanaged: true})
	default:
		return fmt.Errorf("unknown entity %q (want host, remote-node, kube-apiserver, cluster, unmanaged or world)", e.Entity)
	}
	return nil
}

// addPod adds a record's pod, or its address to a pod already known. The
// labels may be the pod's own or its identity's: the namespace's labels
// and the service account, which identities carry, are lifted out.
func (b *clusterBuilder) addPod(r flows.Record, e flows.Endpoint, addr netip.Addr, local bool) {
	id := e.Namespace + "/" + e.Pod
	for i := range b.c.Endpoints {
		if b.c.Endpoints[i].ID() == id {
			b.c.Endpoints[i].IPs = append(b.c.Endpoints[i].IPs, addr)
			return
		}
	}
	ep := engine.Endpoint{Namespace: e.Namespace, Name: e.Pod, IPs: []netip.Addr{addr}, Unmanaged: e.Entity == string(engine.EntityUnmanaged), Labels: map[string]string{}}
	ns := map[string]string{}
	for k, v := range e.Labels {
		switch {
		case k == engine.LabelNamespace || strings.HasPrefix(k, "reserved:"):
		case k == engine.LabelServiceAccount:
			ep.ServiceAccount = v
		case strings.HasPrefix(k, engine.LabelNamespaceLabels):
			ns[strings.TrimPrefix(k, engine.LabelNamespaceLabels)] = v
		default:
			ep.Labels[k] = v
		}
	}
	if !slices.Contains(b.fileNS, e.Namespace) {
		if b.c.Namespaces[e.Namespace] == nil {
			b.c.Namespaces[e.Namespace] = ns
		}
	}
	if local && r.Node != "" {
		ep.Node = r.Node
		if _, ok := b.node(r.Node); !ok {
			b.c.Nodes = append(b.c.Nodes, engine.Node{Name: r.Node})
		}
	}
	b.c.Endpoints = append(b.c.Endpoints, ep)
}

func (b *clusterBuilder) node(name string) (*engine.Node, bool) {
	for i := range b.c.Nodes {
		if b.c.Nodes[i].Name == name {
			return &b.c.Nodes[i], true
		}
	}
	return nil, false
}

func (b *clusterBuilder) addNodeIP(name string, addr netip.Addr) {
	if n, ok := b.node(name); ok {
		n.IPs = append(n.IPs, addr)
		return
	}
	b.c.Nodes = append(b.c.Nodes, engine.Node{Name: name, IPs: []netip.Addr{addr}})
}
