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
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/palisade-dev/palisade/internal/flows"
	"github.com/palisade-dev/palisade/internal/observer"
	"github.com/palisade-dev/palisade/internal/relay"
)

func init() { commands = append(commands, newObserveCmd) }

type observeFlags struct {
	server, output string
	// Without server: the relay, through the API server.
	kubeconfig, context   string
	relayNS, relayService string
	follow                bool
	last                  int
	filter                observer.Filter
	fromPort              []string
	toPort, port          []string
	verdict               []string
	dropReason            []string
}

func newObserveCmd() *cobra.Command {
	var f observeFlags
	cmd := &cobra.Command{
		Use:   "observe [--server HOST:PORT] [filters]",
		Short: "Print the flows the node agents observed",
		Long: `observe prints the flows the node agents observed: every dropped packet and
audited connection, resolved to workloads, the deciding policy, its Git
revision and file:line, and, for a default-deny drop, the policies that isolate
the workload.

By default it reads the relay, which fans in from every node, through the API
server's service proxy with your kubeconfig (--kubeconfig, $KUBECONFIG,
~/.kube/config; --context): you need "get" on services/proxy of the relay's
Service (the ClusterRole palisade-flows-viewer, docs/flows.md). Nodes the
relay cannot read, and nodes that join or leave while following, are printed
to stderr. --server HOST:PORT reads one agent's gRPC service directly
(--flows-bind-address, port 4245 by default).

Filters are as hubble observe's: flags of different kinds must all match,
several values of one flag (repeated or comma-separated) match when any does.
--from-* match the source, --to-* the destination, the others either end.

Losses (the kernel's ring buffer full, the agent's buffer overwritten, this
client too slow) are printed to stderr, never hidden.

Output: -o text (one line per flow) or -o jsonl (the flow record of
docs/flows.md, one JSON object per line, as palisadectl plan replays).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runObserve(cmd, &f) },
	}
	fl := cmd.Flags()
	fl.StringVar(&f.server, "server", "", fmt.Sprintf("read one agent's flow service at HOST:PORT (its port is %d by default) instead of the relay", observer.DefaultPort))
	fl.StringVar(&f.kubeconfig, "kubeconfig", "", "kubeconfig file (default $KUBECONFIG or ~/.kube/config)")
	fl.StringVar(&f.context, "context", "", "kubeconfig context (default the current one)")
	fl.StringVar(&f.relayNS, "relay-namespace", "palisade-system", "namespace of the relay's Service")
	fl.StringVar(&f.relayService, "relay-service", "palisade-relay", "the relay's Service: NAME, or SCHEME:NAME:PORT as the API server's proxy path takes it (default scheme http, port flows)")
	fl.StringVarP(&f.output, "output", "o", "text", "output format: text or jsonl")
	fl.BoolVarP(&f.follow, "follow", "f", false, "keep printing new flows")
	fl.IntVar(&f.last, "last", 0, "print the last N flows held (0: all of them, or none with --follow)")
	flt := &f.filter
	fl.StringSliceVar(&flt.Pod, "pod", nil, "pod at either end: NAMESPACE/NAME or NAME, a trailing * matches a prefix")
	fl.StringSliceVar(&flt.FromPod, "from-pod", nil, "source pod")
	fl.StringSliceVar(&flt.ToPod, "to-pod", nil, "destination pod")
	fl.StringSliceVarP(&flt.Namespace, "namespace", "n", nil, "namespace at either end")
	fl.StringSliceVar(&flt.FromNamespace, "from-namespace", nil, "source namespace")
	fl.StringSliceVar(&flt.ToNamespace, "to-namespace", nil, "destination namespace")
	fl.StringSliceVarP(&flt.Label, "label", "l", nil, "label at either end: KEY=VALUE, KEY, or reserved:ENTITY (world, host, ...)")
	fl.StringSliceVar(&flt.FromLabel, "from-label", nil, "source label")
	fl.StringSliceVar(&flt.ToLabel, "to-label", nil, "destination label")
	fl.StringSliceVar(&flt.IP, "ip", nil, "address or prefix at either end")
	fl.StringSliceVar(&flt.FromIP, "from-ip", nil, "source address or prefix")
	fl.StringSliceVar(&flt.ToIP, "to-ip", nil, "destination address or prefix")
	fl.StringSliceVar(&f.port, "port", nil, "port at either end")
	fl.StringSliceVar(&f.fromPort, "from-port", nil, "source port")
	fl.StringSliceVar(&f.toPort, "to-port", nil, "destination port")
	fl.StringSliceVar(&flt.Protocol, "protocol", nil, "TCP, UDP, SCTP, ICMP or ICMPv6")
	fl.StringSliceVar(&f.verdict, "verdict", nil, "forwarded, dropped, audit or error")
	fl.StringSliceVar(&f.dropReason, "drop-reason", nil, "drop reason, e.g. default-deny, explicit-deny (docs/flows.md)")
	fl.StringSliceVar(&flt.Policy, "policy", nil, "deciding or isolating policy: NAME, NAMESPACE/NAME or KIND/NAMESPACE/NAME")
	fl.StringSliceVar(&flt.Node, "node", nil, "node that observed the flow")
	return cmd
}

var verdicts = []flows.Verdict{flows.Forwarded, flows.Dropped, flows.Audit, flows.Error}

func (f *observeFlags) request() (*observer.Request, error) {
	req := &observer.Request{Filter: f.filter, Follow: f.follow, Last: f.last}
	var err error
	for _, p := range []struct {
		in  []string
		out *[]uint16
	}{{f.port, &req.Filter.Port}, {f.fromPort, &req.Filter.FromPort}, {f.toPort, &req.Filter.ToPort}} {
		if *p.out, err = observer.ParsePorts(p.in); err != nil {
			return nil, fmt.Errorf("port: %w", err)
		}
	}
	for _, v := range f.verdict {
		if !slices.Contains(verdicts, flows.Verdict(v)) {
			return nil, fmt.Errorf("verdict %q: want forwarded, dropped, audit or error", v)
		}
		req.Filter.Verdict = append(req.Filter.Verdict, flows.Verdict(v))
	}
	for _, r := range f.dropReason {
		req.Filter.DropReason = append(req.Filter.DropReason, flows.DropReason(r))
	}
	if f.last < 0 {
		return nil, errors.New("--last must not be negative")
	}
	if f.output != "text" && f.output != "jsonl" {
		return nil, fmt.Errorf("output %q: want text or jsonl", f.output)
	}
	return req, nil
}

func runObserve(cmd *cobra.Command, f *observeFlags) error {
	req, err := f.request()
	if err != nil {
		return &exitError{code: 2, err: err}
	}
	ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	out, errOut := cmd.OutOrStdout(), cmd.ErrOrStderr()
	enc := json.NewEncoder(out)
	print := func(m *relay.Message) error {
		switch {
		case m.Node != nil:
			printNode(errOut, m.Node)
		case m.Lost != nil:
			printLost(errOut, m.Lost)
		case m.Flow != nil && f.output == "jsonl":
			return enc.Encode(m.Flow)
		case m.Flow != nil:
			_, err := fmt.Fprintln(out, flowLine(m.Flow))
			return err
		}
		return nil
	}
	if f.server == "" {
		err = observeRelay(ctx, f, req, print)
		if err != nil && ctx.Err() == nil {
			return err
		}
		return nil
	}
	conn, err := grpc.NewClient(f.server, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return fmt.Errorf("connect %s: %w", f.server, err)
	}
	defer conn.Close()
	err = observer.Observe(ctx, conn, req, func(r *observer.Response) error {
		m := &relay.Message{Flow: r.Flow}
		if r.Lost != nil {
			m = &relay.Message{Lost: &relay.Lost{Lost: *r.Lost}}
		}
		return print(m)
	})
	if err != nil && ctx.Err() == nil {
		return fmt.Errorf("observe %s: %w", f.server, err)
	}
	return nil
}

func printLost(w io.Writer, l *relay.Lost) {
	on := ""
	if l.Node != "" {
		on = " on node " + l.Node
	}
	if l.Total {
		fmt.Fprintf(w, "lost since the agent started%s: %d flows at stage %s\n", on, l.Count, l.Stage)
		return
	}
	fmt.Fprintf(w, "LOST %d flows at stage %s%s\n", l.Count, l.Stage, on)
}

func printNode(w io.Writer, n *relay.NodeEvent) {
	switch n.State {
	case relay.NodeUnreachable:
		fmt.Fprintf(w, "NODE %s UNREACHABLE: its flows are missing until it is reconnected: %s\n", n.Name, n.Error)
	case relay.NodeReconnected:
		fmt.Fprintf(w, "node %s reconnected: what it observed while unreachable is missing\n", n.Name)
	case relay.NodeNoObserver:
		fmt.Fprintf(w, "NODE %s HAS NO OBSERVER: %s\n", n.Name, n.Error)
	case relay.NodeGone:
		fmt.Fprintf(w, "node %s gone: %s\n", n.Name, n.Error)
	default:
		fmt.Fprintf(w, "node %s %s %s\n", n.Name, n.State, n.Error)
	}
}

// flowLine is a flow in one line, as hubble observe prints it, with the
// deciding policy and where it is written.
func flowLine(f *flows.Flow) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s: %s -> %s %s %s %s", f.Time.Format(time.StampMilli), f.Node,
		endpointString(&f.Source), endpointString(&f.Destination), f.Protocol, f.Direction, strings.ToUpper(string(f.Verdict)))
	if f.DropReason != "" {
		fmt.Fprintf(&b, " (%s)", f.DropReason)
	}
	if f.Policy != nil {
		b.WriteString(" by " + policyString(f.Policy))
	}
	for i := range f.Isolating {
		if i == 0 {
			b.WriteString(" isolated by ")
		} else {
			b.WriteString(", ")
		}
		b.WriteString(policyString(&f.Isolating[i]))
	}
	return b.String()
}

func endpointString(e *flows.Endpoint) string {
	var s string
	switch {
	case e.Pod != "":
		s = e.Namespace + "/" + e.Pod
	case e.Entity != "":
		s = e.IP + " (" + e.Entity + ")"
	default:
		s = e.IP
	}
	if e.Port != 0 {
		s += fmt.Sprintf(":%d", e.Port)
	}
	return s
}

func policyString(p *flows.Policy) string {
	s := p.Kind + " " + p.Name
	if p.Namespace != "" {
		s = p.Kind + " " + p.Namespace + "/" + p.Name
	}
	if p.Path != "" {
		s += " " + p.Path
	}
	if p.File != "" {
		s += fmt.Sprintf(" at %s:%d:%d", p.File, p.Line, p.Column)
	}
	if p.Revision != "" {
		s += " @" + p.Revision
	}
	return s
}
