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
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"

	"github.com/spf13/cobra"
	"sigs.k8s.io/yaml"

	"github.com/palisade-dev/palisade/internal/capability"
	"github.com/palisade-dev/palisade/internal/diag"
	"github.com/palisade-dev/palisade/internal/engine"
	"github.com/palisade-dev/palisade/internal/validate"
	"github.com/palisade-dev/palisade/policies/schema"
)

func init() { commands = append(commands, newExplainCmd) }

type explainFlags struct {
	policies, endpoints     string
	from, to                string
	fromEntity, toEntity    string
	port                    string
	reply                   bool
	output                  string
	httpMethod, httpPath    string
	httpHost                string
	httpHeaders             []string
	dnsName                 string
	dnsTable                string
	kafkaAPIKey, kafkaTopic string
	kafkaClientID           string
	kafkaAPIVersion         int
	revision                string
}

func newExplainCmd() *cobra.Command {
	var f explainFlags
	cmd := &cobra.Command{
		Use:   "explain --policies DIR --endpoints FILE --from SRC --to DST:PORT/PROTO",
		Short: "Say whether a flow is allowed, and which rule decided it",
		Long: `explain evaluates one flow against the policies in DIR and the workloads in
the endpoints file with Palisade's reference evaluator, and prints the
verdict of each enforcement point (the source's egress, the destination's
ingress) with the rule that decided it and its file:line.

SRC and DST are NS/POD, node/NAME, an IP address or a CIDR (its first
address); DST carries :PORT/PROTO (PROTO is TCP, UDP, SCTP, ICMP or ICMPv6;
for ICMP the port is the type; TCP when omitted). --from-entity and
--to-entity name a reserved entity instead (world, host, remote-node,
kube-apiserver, unmanaged); give the port with --port.

The verdict is the policies' meaning. Where this version's datapath does not
enforce the deciding rule as written (HTTP and Kafka rules; toFQDNs for a
source with no DNS rule on any egress port, whose queries the kernel does
not parse and so learns nothing from; see docs/datapath.md), the kernel line
(and the JSON's "kernel" field) says what the kernel does with the flow
today, and why.

The endpoints file (YAML) lists namespaces with labels, nodes, endpoints
(namespace, name, labels, ips, node, named ports), the API server's
addresses, pod CIDRs and DNS answers (for toFQDNs); see
policies/examples/endpoints.yaml. toFQDNs rules select the addresses of
these answers. --dns FILE replaces them, for the verdict and the kernel line
alike, with a table {name: [addresses]} in YAML or JSON: what a node's
kernel learned from the DNS answers it saw, as the agent publishes it in
NodeEnforcement's status.fqdn.table. With it, the kernel line is the
kernel's answer for that node; without it, the kernel line assumes that the
node learned the endpoints file's answers when the source sends its queries
on a port with DNS rules. The text output says which table it used.

Exit status: 0 the flow was explained (whatever the verdict), 1 the policies
are invalid, 2 usage error.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runExplain(cmd, &f) },
	}
	fl := cmd.Flags()
	fl.StringVar(&f.policies, "policies", "", "policy repository directory (required)")
	fl.StringVar(&f.endpoints, "endpoints", "", "endpoints file, YAML (required)")
	fl.StringVar(&f.from, "from", "", "source: NS/POD, node/NAME, IP or CIDR")
	fl.StringVar(&f.to, "to", "", "destination: NS/POD:PORT/PROTO, node/NAME:PORT/PROTO, IP:PORT/PROTO or CIDR:PORT/PROTO")
	fl.StringVar(&f.fromEntity, "from-entity", "", "source entity: world, host, remote-node, kube-apiserver, unmanaged")
	fl.StringVar(&f.toEntity, "to-entity", "", "destination entity, optionally with :PORT/PROTO")
	fl.StringVar(&f.port, "port", "", "destination PORT/PROTO when --to-entity has none")
	fl.BoolVar(&f.reply, "reply", false, "explain the reply packets of the connection SRC opens to DST")
	fl.StringVarP(&f.output, "output", "o", "text", "output format: text or json")
	fl.StringVar(&f.httpMethod, "http-method", "", "HTTP request method")
	fl.StringVar(&f.httpPath, "http-path", "", "HTTP request path")
	fl.StringVar(&f.httpHost, "http-host", "", "HTTP Host header")
	fl.StringArrayVar(&f.httpHeaders, "http-header", nil, "HTTP header \"Name: value\" (repeatable)")
	fl.StringVar(&f.dnsName, "dns-name", "", "DNS query name")
	fl.StringVar(&f.dnsTable, "dns", "", "learned DNS table {name: [addresses]}, YAML or JSON: replaces the endpoints file's dns answers")
	fl.StringVar(&f.kafkaAPIKey, "kafka-api-key", "", "Kafka request API key (produce, fetch, metadata, ...)")
	fl.IntVar(&f.kafkaAPIVersion, "kafka-api-version", 0, "Kafka request API version")
	fl.StringVar(&f.kafkaTopic, "kafka-topic", "", "Kafka topic")
	fl.StringVar(&f.kafkaClientID, "kafka-client-id", "", "Kafka client ID")
	fl.StringVar(&f.revision, "revision", "", "revision to record in the rules' origins")
	return cmd
}

func usage(format string, args ...any) error {
	return &exitError{exitUsage, fmt.Errorf(format, args...)}
}

func runExplain(cmd *cobra.Command, f *explainFlags) error {
	if f.policies == "" || f.endpoints == "" {
		return usage("--policies and --endpoints are required")
	}
	if (f.from == "") == (f.fromEntity == "") {
		return usage("give exactly one of --from and --from-entity")
	}
	if (f.to == "") == (f.toEntity == "") {
		return usage("give exactly one of --to and --to-entity")
	}
	if f.output != "text" && f.output != "json" {
		return usage("unknown --output %q (want text or json)", f.output)
	}
	cluster, err := readCluster(f.endpoints)
	if err != nil {
		return usage("%v", err)
	}
	dnsFrom := "the endpoints file's answers (" + f.endpoints + ")"
	if f.dnsTable != "" {
		if cluster.DNS, err = readDNSTable(f.dnsTable); err != nil {
			return usage("%v", err)
		}
		dnsFrom = f.dnsTable + ", which replaces the endpoints file's answers"
	}
	rep, ir, err := loadPolicies(cmd, f.policies, f.revision)
	if err != nil {
		return err
	}
	flow, err := buildFlow(cluster, f)
	if err != nil {
		return usage("%v", err)
	}
	res := engine.Evaluate(ir, cluster, flow)
	out := newExplanation(cluster, flow, res, f.policies)
	out.DNS = dnsFrom
	learned := f.dnsTable != "" || capability.Enforced(capability.FQDNWithoutDNS)
	if !learned {
		if learned, err = queriesParsed(ir, cluster, flow); err != nil {
			return err
		}
	}
	out.Kernel = kernelOf(res, engine.Evaluate(kernelViewLearned(ir, learned), cluster, flow), flow, rep.Objects)
	if f.output == "json" {
		b, err := json.MarshalIndent(out, "", "  ")
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(cmd.OutOrStdout(), "%s\n", b)
		return err
	}
	return out.writeText(cmd.OutOrStdout())
}

// loadPolicies loads and validates the policy repository at dir and builds
// the engine's model of it, as the controller would. Invalid policies are
// reported on stderr and end the command with exit status 1.
func loadPolicies(cmd *cobra.Command, dir, revision string) (*validate.Report, *engine.IR, error) {
	rep, err := validate.Dir(cmd.Context(), dir, validate.Options{})
	if err != nil {
		return nil, nil, usage("%v", err)
	}
	if !rep.Valid() {
		_ = diag.Write(cmd.ErrOrStderr(), "text", "palisadectl", schema.Version, relativeTo(dir, rep.Diagnostics))
		return nil, nil, &exitError{exitInvalid, fmt.Errorf("%s: the policies are invalid", dir)}
	}
	ir, err := engine.Build(rep.Objects, revision)
	if err != nil {
		return nil, nil, usage("%v", err)
	}
	return rep, ir, nil
}

// readCluster reads an endpoints file, refusing unknown fields so that a
// misspelt key is an error rather than a workload without labels.
func readCluster(path string) (*engine.Cluster, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read endpoints: %w", err)
	}
	js, err := yaml.YAMLToJSON(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	dec := json.NewDecoder(bytes.NewReader(js))
	dec.DisallowUnknownFields()
	var c engine.Cluster
	if err := dec.Decode(&c); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if err := c.Index(); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &c, nil
}

// readDNSTable reads a learned DNS table: a YAML or JSON map of names to
// lists of addresses.
func readDNSTable(path string) (map[string][]netip.Addr, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read DNS table: %w", err)
	}
	js, err := yaml.YAMLToJSON(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	var raw map[string][]string
	if err := json.Unmarshal(js, &raw); err != nil {
		return nil, fmt.Errorf("%s: want a map of names to lists of addresses: %w", path, err)
	}
	out := make(map[string][]netip.Addr, len(raw))
	for _, name := range slices.Sorted(maps.Keys(raw)) {
		if name == "" || strings.ContainsAny(name, " \t") {
			return nil, fmt.Errorf("%s: %q is not a DNS name", path, name)
		}
		for _, a := range raw[name] {
			addr, err := netip.ParseAddr(a)
			if err != nil {
				return nil, fmt.Errorf("%s: %s: %q is not an IP address", path, name, a)
			}
			out[name] = append(out[name], addr)
		}
	}
	return out, nil
}

// queriesParsed reports whether the kernel parses the DNS queries of the
// flow's source, which is what it learns toFQDNs addresses from: whether
// the source's compiled policy has DNS rules on an egress port, as the
// datapath decides. A source that is not a managed workload or a node has
// no egress enforcement, so it does not matter.
func queriesParsed(ir *engine.IR, c *engine.Cluster, flow engine.Flow) (bool, error) {
	src := flow.Src
	if flow.Reply {
		src = flow.Dst
	}
	var node string
	if e, ok := c.EndpointByIP(src); ok && !e.Unmanaged {
		node = e.Node
	} else if n, ok := c.NodeByIP(src); ok {
		node = n.Name
	}
	if node == "" {
		return true, nil
	}
	ids := engine.NewMemoryAllocator()
	if err := engine.AllocateIdentities(c, ids); err != nil {
		return false, err
	}
	m, err := engine.Compile(ir, c, node, ids)
	if err != nil {
		return false, fmt.Errorf("compile for node %s: %w", node, err)
	}
	ep, ok := m.Endpoints[src]
	if !ok {
		return true, nil
	}
	for k, e := range m.Policy {
		if k.PolicyID == ep.PolicyID && k.Direction == engine.Egress && e.L7 != 0 && engine.DNSListHasDNS(m.L7[e.L7]) {
			return true, nil
		}
	}
	return false, nil
}

func buildFlow(c *engine.Cluster, f *explainFlags) (engine.Flow, error) {
	var flow engine.Flow
	var err error
	if f.from != "" {
		flow.Src, err = resolveAddr(c, f.from)
	} else {
		flow.Src, err = entityAddr(c, engine.Entity(f.fromEntity), netip.Addr{})
	}
	if err != nil {
		return flow, fmt.Errorf("--from: %w", err)
	}
	var dst, port string
	if f.to != "" {
		var ok bool
		if dst, port, ok = splitHostPort(f.to); !ok {
			return flow, fmt.Errorf("--to %q: want DST:PORT/PROTO", f.to)
		}
		if flow.Dst, err = resolveAddr(c, dst); err != nil {
			return flow, fmt.Errorf("--to: %w", err)
		}
	} else {
		ent, p, _ := strings.Cut(f.toEntity, ":")
		port = p
		if flow.Dst, err = entityAddr(c, engine.Entity(ent), flow.Src); err != nil {
			return flow, fmt.Errorf("--to-entity: %w", err)
		}
	}
	if port == "" {
		port = f.port
	}
	if port == "" {
		return flow, fmt.Errorf("no destination port: give DST:PORT/PROTO or --port")
	}
	if flow.Port, flow.Proto, err = parsePort(port); err != nil {
		return flow, err
	}
	if f.reply {
		// The flags describe the connection; the packet is its reply.
		flow.Src, flow.Dst, flow.Reply = flow.Dst, flow.Src, true
	}
	flow.Request, err = request(f)
	return flow, err
}

// splitHostPort splits "DST:PORT/PROTO", where DST may be an IPv6 address
// in brackets or a CIDR.
func splitHostPort(s string) (host, port string, ok bool) {
	if strings.HasPrefix(s, "[") {
		end := strings.Index(s, "]")
		if end < 0 || end+1 >= len(s) || s[end+1] != ':' {
			return "", "", false
		}
		return s[1:end], s[end+2:], true
	}
	i := strings.LastIndex(s, ":")
	if i <= 0 {
		return "", "", false
	}
	return s[:i], s[i+1:], true
}

func parsePort(s string) (uint16, engine.Proto, error) {
	num, protoName, hasProto := strings.Cut(s, "/")
	proto := engine.ProtoTCP
	if hasProto {
		p, err := engine.ParseProto(protoName)
		if err != nil || p == engine.ProtoAny {
			return 0, 0, fmt.Errorf("port %q: want TCP, UDP, SCTP, ICMP or ICMPv6", s)
		}
		proto = p
	}
	n, err := strconv.ParseUint(num, 10, 16)
	if err != nil {
		return 0, 0, fmt.Errorf("port %q: want a number from 0 to 65535", s)
	}
	if (proto == engine.ProtoICMP || proto == engine.ProtoICMPv6) && n > 255 {
		return 0, 0, fmt.Errorf("port %q: an ICMP type is at most 255", s)
	}
	return uint16(n), proto, nil
}

// resolveAddr turns NS/POD, node/NAME, an address or a CIDR into the
// address a packet would carry.
func resolveAddr(c *engine.Cluster, s string) (netip.Addr, error) {
	if a, err := netip.ParseAddr(s); err == nil {
		return a, nil
	}
	if p, err := netip.ParsePrefix(s); err == nil {
		return p.Masked().Addr(), nil
	}
	if name, ok := strings.CutPrefix(s, "node/"); ok {
		n, ok := c.Node(name)
		if !ok || len(n.IPs) == 0 {
			return netip.Addr{}, fmt.Errorf("no node %q with an address in the endpoints file", name)
		}
		return n.IPs[0], nil
	}
	if !strings.Contains(s, "/") {
		return netip.Addr{}, fmt.Errorf("%q is not NS/POD, node/NAME, an address or a CIDR", s)
	}
	e, ok := c.Endpoint(s)
	if !ok {
		return netip.Addr{}, fmt.Errorf("no endpoint %q in the endpoints file", s)
	}
	if len(e.IPs) == 0 {
		return netip.Addr{}, fmt.Errorf("endpoint %q has no address", s)
	}
	return e.IPs[0], nil
}

// entityAddr picks an address that has the entity's identity, seen from
// the node of from (for host and remote-node).
func entityAddr(c *engine.Cluster, ent engine.Entity, from netip.Addr) (netip.Addr, error) {
	var fromNode string
	if e, ok := c.EndpointByIP(from); ok {
		fromNode = e.Node
	} else if n, ok := c.NodeByIP(from); ok {
		fromNode = n.Name
	}
	var cands []netip.Addr
	switch ent {
	case engine.EntityWorld:
		for _, s := range []string{"203.0.113.10", "198.18.0.10", "2001:db8::10"} {
			cands = append(cands, netip.MustParseAddr(s))
		}
	case engine.EntityKubeAPIServer:
		cands = c.APIServer
	case engine.EntityHost, engine.EntityRemoteNode:
		if fromNode == "" && ent == engine.EntityHost {
			return netip.Addr{}, fmt.Errorf("host is the node of the other end, which is not a workload or node")
		}
		for _, n := range c.Nodes {
			if (n.Name == fromNode) == (ent == engine.EntityHost) {
				cands = append(cands, n.IPs...)
			}
		}
	case engine.EntityUnmanaged:
		for _, e := range c.Endpoints {
			if e.Unmanaged {
				cands = append(cands, e.IPs...)
			}
		}
	default:
		return netip.Addr{}, fmt.Errorf("entity %q does not name one kind of address; give an address or endpoint instead", ent)
	}
	for _, a := range cands {
		if l := c.PeerLabels(a, fromNode); l.Has(ent) {
			return a, nil
		}
	}
	return netip.Addr{}, fmt.Errorf("the endpoints file has no address with entity %q", ent)
}

func request(f *explainFlags) (*engine.Request, error) {
	var r engine.Request
	n := 0
	if f.httpMethod != "" || f.httpPath != "" || f.httpHost != "" || len(f.httpHeaders) > 0 {
		n++
		r.HTTP = &engine.HTTPRequest{Method: f.httpMethod, Path: f.httpPath, Host: f.httpHost}
		for _, h := range f.httpHeaders {
			k, v, ok := strings.Cut(h, ":")
			if !ok {
				return nil, fmt.Errorf("--http-header %q: want \"Name: value\"", h)
			}
			if r.HTTP.Headers == nil {
				r.HTTP.Headers = map[string]string{}
			}
			r.HTTP.Headers[strings.TrimSpace(k)] = strings.TrimSpace(v)
		}
		if r.HTTP.Method == "" {
			r.HTTP.Method = "GET"
		}
		if r.HTTP.Path == "" {
			r.HTTP.Path = "/"
		}
	}
	if f.dnsName != "" {
		n++
		r.DNS = &engine.DNSRequest{Name: f.dnsName}
	}
	if f.kafkaAPIKey != "" || f.kafkaTopic != "" || f.kafkaClientID != "" {
		n++
		if f.kafkaAPIKey == "" {
			return nil, fmt.Errorf("a Kafka request needs --kafka-api-key")
		}
		r.Kafka = &engine.KafkaRequest{APIKey: f.kafkaAPIKey, APIVersion: f.kafkaAPIVersion, Topic: f.kafkaTopic, ClientID: f.kafkaClientID}
	}
	switch n {
	case 0:
		return nil, nil
	case 1:
		return &r, nil
	}
	return nil, fmt.Errorf("give one L7 request: HTTP, DNS or Kafka")
}

// explanation is explain's output, in JSON as documented in docs/engine.md.
type explanation struct {
	Flow    flowOut          `json:"flow"`
	Verdict engine.Verdict   `json:"verdict"`
	Decider engine.Direction `json:"decidedBy"`
	Egress  sideOut          `json:"egress"`
	Ingress sideOut          `json:"ingress"`
	// Kernel is what this version's datapath does with the flow.
	Kernel kernelOut `json:"kernel"`
	// DNS says which DNS table toFQDNs rules were decided with.
	DNS string `json:"dnsTable"`
}

// kernelOut is the kernel's verdict, which differs from the policies'
// where the datapath does not enforce the deciding rule as written.
type kernelOut struct {
	Verdict engine.Verdict `json:"verdict"`
	Differs bool           `json:"differs"`
	// Reason says why the verdict differs, or what else the kernel does
	// not do (e.g. audit mode's reports) when it does not.
	Reason string `json:"reason,omitempty"`
}

type flowOut struct {
	Src     string          `json:"src"`
	Dst     string          `json:"dst"`
	Proto   engine.Proto    `json:"proto"`
	Port    uint16          `json:"port"`
	Reply   bool            `json:"reply,omitempty"`
	Request *engine.Request `json:"request,omitempty"`
}

type sideOut struct {
	Endpoint string          `json:"endpoint,omitempty"`
	Verdict  engine.Verdict  `json:"verdict"`
	Reason   engine.Reason   `json:"reason"`
	Rule     *ruleOut        `json:"rule,omitempty"`
	Policies []engine.Origin `json:"defaultDenyBy,omitempty"`
}

type ruleOut struct {
	ID     engine.RuleID `json:"id"`
	Action engine.Action `json:"-"`
	Audit  bool          `json:"audit,omitempty"`
	engine.Origin
}

func newExplanation(c *engine.Cluster, flow engine.Flow, res engine.Result, dir string) *explanation {
	return &explanation{
		Flow:    flowOut{Src: describeAddr(c, flow.Src), Dst: describeAddr(c, flow.Dst), Proto: flow.Proto, Port: flow.Port, Reply: flow.Reply, Request: flow.Request},
		Verdict: res.Verdict,
		Decider: res.Decider,
		Egress:  sideOf(res.Egress, dir),
		Ingress: sideOf(res.Ingress, dir),
	}
}

func sideOf(s engine.Side, dir string) sideOut {
	out := sideOut{Endpoint: s.Endpoint, Verdict: s.Verdict, Reason: s.Reason}
	if s.Rule != nil {
		o := s.Rule.Origin
		o.File = relativeFile(dir, o.File)
		out.Rule = &ruleOut{ID: s.Rule.ID, Action: s.Rule.Action, Audit: s.Rule.Audit, Origin: o}
	}
	for _, p := range s.Policies {
		p.File = relativeFile(dir, p.File)
		out.Policies = append(out.Policies, p)
	}
	return out
}

func describeAddr(c *engine.Cluster, a netip.Addr) string {
	if e, ok := c.EndpointByIP(a); ok {
		return fmt.Sprintf("%s (%s)", e.ID(), a)
	}
	if n, ok := c.NodeByIP(a); ok {
		return fmt.Sprintf("node/%s (%s)", n.Name, a)
	}
	return a.String()
}

func (e *explanation) writeText(w io.Writer) error {
	var b strings.Builder
	f := e.Flow
	fmt.Fprintf(&b, "flow:    %s -> %s %d/%s", f.Src, f.Dst, f.Port, f.Proto)
	if f.Reply {
		b.WriteString(" (reply)")
	}
	b.WriteByte('\n')
	fmt.Fprintf(&b, "verdict: %s (decided at %s)\n", strings.ToUpper(e.Verdict.String()), e.Decider)
	switch k := e.Kernel; {
	case k.Differs:
		fmt.Fprintf(&b, "kernel:  %s, NOT as the policies say: %s\n", strings.ToUpper(k.Verdict.String()), k.Reason)
	case k.Reason != "":
		fmt.Fprintf(&b, "kernel:  %s, as the policies say, but %s\n", strings.ToUpper(k.Verdict.String()), k.Reason)
	default:
		fmt.Fprintf(&b, "kernel:  %s, as the policies say\n", strings.ToUpper(k.Verdict.String()))
	}
	fmt.Fprintf(&b, "dns:     toFQDNs decided with %s\n", e.DNS)
	for _, s := range []struct {
		name string
		side sideOut
	}{{"egress ", e.Egress}, {"ingress", e.Ingress}} {
		fmt.Fprintf(&b, "%s  %s\n", s.name, s.side.describe())
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func (s sideOut) describe() string {
	if s.Reason == engine.ReasonNotEnforced {
		return "not enforced: not a managed workload or node"
	}
	head := fmt.Sprintf("at %s: %s, ", s.Endpoint, s.Verdict)
	switch s.Reason {
	case engine.ReasonNotSelected:
		return head + "no policy isolates it in this direction"
	case engine.ReasonDefaultDeny:
		var ps []string
		for _, p := range s.Policies {
			ps = append(ps, fmt.Sprintf("%s (%s)", p.Policy(), p.Position()))
		}
		return head + "default deny: no rule allows it, and it is isolated by " + strings.Join(ps, ", ")
	}
	r := s.Rule
	verb := map[engine.Reason]string{engine.ReasonAllowed: "allowed by", engine.ReasonDenied: "denied by", engine.ReasonL7Denied: "no L7 rule matches the request in"}[s.Reason]
	audit := ""
	if r.Audit {
		audit = " [audit mode]"
	}
	return fmt.Sprintf("%s%s %s %s (%s)%s", head, verb, r.Policy(), r.Path, r.Position(), audit)
}

// kernelView is ir as this version's datapath enforces it, according to
// the capability table: L7 rules it does not enforce let every request
// through (the port is decided at L3/L4), toFQDNs it does not enforce
// match no address. Evaluating it gives the kernel's verdict when the
// kernel learned the cluster's DNS answers.
func kernelView(ir *engine.IR) *engine.IR { return kernelViewLearned(ir, true) }

// kernelViewLearned is kernelView where learned false says that the kernel
// learned no DNS answer for the flow's source (its queries are not
// parsed), so that its toFQDNs match no address either.
func kernelViewLearned(ir *engine.IR, learned bool) *engine.IR {
	out := &engine.IR{}
	for _, p := range ir.Policies {
		cp := *p
		cp.Rules = make([]*engine.Rule, 0, len(p.Rules))
		for _, r := range p.Rules {
			cr := *r
			if !capability.Enforced(capability.FQDN) || !learned {
				cr.Peer.FQDNs = nil
			}
			if len(cr.Peer.FQDNs) > 0 && !capability.Enforced(capability.DNSOnFQDNPeers) && hasDNS(cr.L4) {
				// The kernel decides the toFQDNs peers' DNS rules at L4:
				// the rule is two, its other peers with DNS rules and its
				// toFQDNs without.
				fq := cr
				fq.Peer = engine.Peer{FQDNs: cr.Peer.FQDNs}
				fq.L4 = kernelL4(r, false)
				cp.Rules = append(cp.Rules, &fq)
				cr.Peer.FQDNs = nil
				if !cr.Peer.Any && len(cr.Peer.Endpoints)+len(cr.Peer.Entities)+len(cr.Peer.CIDRs) == 0 {
					continue
				}
			}
			cr.L4 = kernelL4(r, true)
			cp.Rules = append(cp.Rules, &cr)
		}
		out.Policies = append(out.Policies, &cp)
	}
	return out
}

// hasDNS reports whether a rule's ports have DNS rules.
func hasDNS(l4 []engine.L4) bool {
	return slices.ContainsFunc(l4, func(l engine.L4) bool { return l.L7 != nil && len(l.L7.DNS) > 0 })
}

// kernelL4 is r's ports with the L7 rules the kernel applies to them: those
// the table says it enforces for the rule's side (egress, a host policy's
// ingress, a pod's ingress), and DNS rules only when dns is set.
func kernelL4(r *engine.Rule, dns bool) []engine.L4 {
	out := slices.Clone(r.L4) // nil (every port) stays nil
	for j, l := range out {
		if l.L7 == nil {
			continue
		}
		l7 := *l.L7
		if !capability.Enforced(httpFeature(r)) {
			l7.HTTP = nil
		}
		if !capability.Enforced(capability.Kafka) {
			l7.Kafka = nil
		}
		if !dns || !capability.Enforced(capability.DNS) {
			l7.DNS = nil
		}
		out[j].L7 = &l7
		if len(l7.HTTP)+len(l7.Kafka)+len(l7.DNS) == 0 {
			out[j].L7 = nil
		}
	}
	return out
}

// httpFeature is the capability feature of a rule's HTTP rules, by side.
func httpFeature(r *engine.Rule) capability.Feature {
	switch {
	case r.Direction == engine.Egress:
		return capability.HTTPEgress
	case r.Subject.Nodes != nil:
		return capability.HTTPHost
	}
	return capability.HTTP
}

// kernelOf compares the policies' result with the kernel's and says why
// they differ, from the capability gaps of the rules that decided.
func kernelOf(res, kern engine.Result, flow engine.Flow, policies []*validate.Policy) kernelOut {
	out := kernelOut{Verdict: kern.Verdict, Differs: kern.Verdict != res.Verdict}
	var gaps []capability.Gap
	for _, sides := range [][2]engine.Side{{res.Egress, kern.Egress}, {res.Ingress, kern.Ingress}} {
		pol := sides[0]
		switch {
		case pol.Verdict == sides[1].Verdict && pol.Reason == engine.ReasonAllowed && flow.Request != nil:
			// Allowed as the policies say, but by L7 rules the kernel
			// does not apply: it would pass any other request too.
			gaps = append(gaps, ruleGaps(pol, flow, policies, requestFeature(pol, flow.Request))...)
		case pol.Verdict == sides[1].Verdict:
		case pol.Reason == engine.ReasonL7Denied && flow.Request != nil:
			gaps = append(gaps, ruleGaps(pol, flow, policies, requestFeature(pol, flow.Request))...)
		case pol.Reason == engine.ReasonAllowed:
			gaps = append(gaps, ruleGaps(pol, flow, policies, capability.FQDN)...)
			gaps = append(gaps, ruleGaps(pol, flow, policies, capability.FQDNWithoutDNS)...)
		}
	}
	parts := make([]string, 0, len(gaps)+1)
	for _, g := range gaps {
		p := g.What + " are not enforced by this version"
		if g.Feature == capability.FQDNWithoutDNS || g.Feature == capability.DNSOnFQDNPeers && out.Differs {
			p += ": the kernel " + g.Support().Kernel
		}
		parts = append(parts, p)
	}
	if !out.Differs {
		if res.Verdict == engine.VerdictAudit && !capability.Enforced(capability.AuditReports) {
			parts = append(parts, "audit mode's reports of what it would drop are not enforced by this version: the kernel "+
				capability.Table[capability.AuditReports].Kernel)
		} else if len(gaps) > 0 {
			parts[len(parts)-1] += ": the kernel would pass any other request on the port too"
		}
		out.Reason = strings.Join(parts, "; ")
		return out
	}
	what := "flow"
	if flow.Request != nil {
		what = "request"
	}
	verb := "passes"
	if kern.Verdict == engine.VerdictDeny {
		verb = "drops"
	}
	if len(parts) == 0 {
		parts = append(parts, "a rule that decides it is not enforced as written by this version (see validate's PAL060 warnings)")
	}
	out.Reason = fmt.Sprintf("the kernel %s this %s today: %s", verb, what, strings.Join(parts, "; "))
	return out
}

// requestFeature is the capability feature of an L7 request decided by a
// side's rule: HTTP rules by side (egress, a host policy's ingress, a
// pod's ingress), DNS rules of a rule whose peers are toFQDNs apart.
func requestFeature(s engine.Side, r *engine.Request) capability.Feature {
	switch {
	case r.HTTP != nil && s.Rule != nil:
		return httpFeature(s.Rule)
	case r.HTTP != nil:
		return capability.HTTP
	case r.Kafka != nil:
		return capability.Kafka
	case s.Rule != nil && len(s.Rule.Peer.FQDNs) > 0:
		return capability.DNSOnFQDNPeers
	}
	return capability.DNS
}

// ruleGaps returns the capability gaps of feature want in the rule that
// decided a side, on the flow's port when the gaps name ports.
func ruleGaps(s engine.Side, flow engine.Flow, policies []*validate.Policy, want capability.Feature) []capability.Gap {
	if s.Rule == nil {
		return nil
	}
	o := s.Rule.Origin
	i := slices.IndexFunc(policies, func(p *validate.Policy) bool {
		return p.Kind == o.Kind && p.Namespace == o.Namespace && p.Name == o.Name
	})
	if i < 0 {
		return nil
	}
	rs, _, _, ok := policies[i].Network()
	if !ok {
		return nil
	}
	var all, onPort []capability.Gap
	port := fmt.Sprintf(" %d/%s,", flow.Port, flow.Proto)
	gaps := capability.Network(rs)
	if s.Rule.Subject.Nodes != nil {
		gaps = capability.Host(rs)
	}
	for _, g := range gaps {
		if g.Feature != want || !strings.HasPrefix(g.Path, o.Path+".") {
			continue
		}
		all = append(all, g)
		if strings.Contains(g.What+",", port) {
			onPort = append(onPort, g)
		}
	}
	if len(onPort) > 0 {
		return onPort
	}
	return all
}
