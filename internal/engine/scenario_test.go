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

// The semantics scenario suite.
//
// Each testdata/scenarios/*.txtar archive holds one scenario, or a few
// related ones as consecutive steps: a policy repository, a cluster, and
// flows with the verdicts the semantics give them. The expected verdicts
// are written by hand from Cilium's semantics as doc.go states them; they
// are never captured from the evaluator's output.
//
// Archive layout:
//
//	comment          free text; a line "cluster: NAME" uses the shared
//	                 cluster testdata/scenarios/clusters/NAME.yaml
//	*.cue, cue.mod/  the policy repository of the first step (v1)
//	cluster.yaml     the cluster (overrides "cluster:"), decoded with
//	                 sigs.k8s.io/yaml into Cluster; protocols by name
//	flows            the first step's flows
//	vN/...           step N (N = 2, 3, ...): the previous step's
//	                 repository, minus the paths (or path.Match globs)
//	                 listed in vN/remove, plus the files vN/<path>
//	                 (replacing files of the same path); vN/cluster.yaml
//	                 replaces the cluster; vN/flows are its flows
//
// A step is a scenario: a policy set, a cluster and expected verdicts.
//
// Flows, one per line ('#' starts a comment):
//
//	SRC -> DST:PORT/PROTO [reply] [REQUEST] VERDICT [SIDE] [REASON] [by KIND NAME [PATH]]
//
//	SRC, DST  ns/pod         the pod's first address (ns/pod@4, ns/pod@6:
//	                         its first IPv4 or IPv6 address)
//	          node/NAME      the node's first address (also @4, @6)
//	          IP             an address; [IPv6] where a port follows
//	          label(IP)      an address with a note, e.g. world(203.0.113.7)
//	PORT      the destination port, or the ICMP type for ICMP and ICMPv6
//	PROTO     TCP, UDP, SCTP, ICMP or ICMPv6
//	reply     a packet of the reply direction of the connection DST opened
//	          towards SRC
//	REQUEST   http METHOD PATH [host=HOST] [header=NAME[:VALUE]]...
//	          dns NAME
//	          kafka APIKEY [topic=T] [version=N] [client=ID]
//	VERDICT   allow, deny or audit: the flow's verdict (always checked)
//	SIDE      ingress or egress: the side that REASON and by describe;
//	          when omitted, the deciding side for deny and audit, and for
//	          allow either side that fits
//	REASON    not-enforced, not-selected, allowed, denied, default-deny,
//	          l7-denied
//	by        the deciding rule: KIND NetworkPolicy or ClusterNetworkPolicy,
//	          NAME ns/name or name, PATH e.g. spec.ingress[0]; for
//	          default-deny, a policy (no PATH) among those that made the
//	          side default-deny
//
// The loading and flow parsing (loadScenario, parseFlows) are shared with
// tests of the node compiler, which must reach the same verdicts.

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/tools/txtar"
	"sigs.k8s.io/yaml"

	"github.com/palisade-dev/palisade/internal/validate"
)

const scenarioDir = "testdata/scenarios"

// scenario is one archive.
type scenario struct {
	File  string
	Steps []*scenarioStep
}

// scenarioStep is one policy set, cluster and flows of a scenario.
type scenarioStep struct {
	Name    string            // "v1", "v2", ...
	Files   map[string][]byte // the policy repository, path → content
	Cluster *Cluster
	Flows   []flowCase
}

// flowCase is one flow line and its expectation.
type flowCase struct {
	Pos  string // archive:line
	Text string
	Flow Flow
	Want flowWant
}

// flowWant is what a flow line expects.
type flowWant struct {
	Verdict Verdict
	Side    *Direction
	Reason  *Reason
	By      *ruleRef
}

// ruleRef names a rule (Path set) or a policy (Path empty).
type ruleRef struct {
	Kind, Name, Path string
}

func (r ruleRef) String() string {
	return strings.TrimSpace(r.Kind + " " + r.Name + " " + r.Path)
}

func (r ruleRef) matches(o Origin) bool {
	name := o.Name
	if o.Namespace != "" {
		name = o.Namespace + "/" + o.Name
	}
	return r.Kind == o.Kind && r.Name == name && (r.Path == "" || r.Path == o.Path)
}

var stepDir = regexp.MustCompile(`^v([0-9]+)/(.+)$`)

// loadScenario reads an archive into its steps. The steps' flows are
// parsed against their clusters, which are indexed.
func loadScenario(file string) (*scenario, error) {
	raw, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	ar := txtar.Parse(raw)
	starts := fileLines(raw)
	sc := &scenario{File: file}

	var sharedCluster string
	for _, line := range strings.Split(string(ar.Comment), "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "cluster:"); ok {
			sharedCluster = strings.TrimSpace(v)
		}
	}

	type stepFiles struct {
		files   map[string][]byte
		remove  []string
		cluster []byte
		flows   []byte
		flowsAt int
		cluName string
	}
	steps := map[int]*stepFiles{}
	get := func(n int) *stepFiles {
		if steps[n] == nil {
			steps[n] = &stepFiles{files: map[string][]byte{}}
		}
		return steps[n]
	}
	for _, f := range ar.Files {
		n, name := 1, f.Name
		if m := stepDir.FindStringSubmatch(f.Name); m != nil {
			n, _ = strconv.Atoi(m[1])
			name = m[2]
			if n < 2 {
				return nil, fmt.Errorf("%s: %s: steps in directories start at v2", file, f.Name)
			}
		}
		s := get(n)
		switch name {
		case "flows":
			s.flows, s.flowsAt = f.Data, starts[f.Name]
		case "cluster.yaml":
			s.cluster, s.cluName = f.Data, file+":"+f.Name
		case "remove":
			for _, l := range strings.Split(string(f.Data), "\n") {
				if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
					s.remove = append(s.remove, l)
				}
			}
		default:
			s.files[name] = f.Data
		}
	}
	if steps[1] == nil {
		return nil, fmt.Errorf("%s: no files", file)
	}

	repo := map[string][]byte{}
	var cluster []byte
	var cluName string
	if sharedCluster != "" {
		p := filepath.Join(filepath.Dir(file), "clusters", sharedCluster+".yaml")
		if cluster, err = os.ReadFile(p); err != nil {
			return nil, fmt.Errorf("%s: cluster: %w", file, err)
		}
		cluName = p
	}
	for n := 1; n <= len(steps); n++ {
		s := steps[n]
		if s == nil {
			return nil, fmt.Errorf("%s: steps must be numbered v2, v3, ... without gaps (v%d missing)", file, n)
		}
		for _, pat := range s.remove {
			found := false
			for p := range repo {
				if ok, err := path.Match(pat, p); err != nil {
					return nil, fmt.Errorf("%s: v%d/remove: %w", file, n, err)
				} else if ok {
					delete(repo, p)
					found = true
				}
			}
			if !found {
				return nil, fmt.Errorf("%s: v%d/remove: %q removes nothing", file, n, pat)
			}
		}
		for p, d := range s.files {
			repo[p] = d
		}
		if s.cluster != nil {
			cluster, cluName = s.cluster, s.cluName
		}
		if cluster == nil {
			return nil, fmt.Errorf("%s: v%d: no cluster (cluster.yaml or a \"cluster:\" line)", file, n)
		}
		if s.flows == nil {
			return nil, fmt.Errorf("%s: v%d: no flows", file, n)
		}
		c, err := decodeCluster(cluster)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", cluName, err)
		}
		flowsName := "flows"
		if n > 1 {
			flowsName = fmt.Sprintf("v%d/flows", n)
		}
		flows, err := parseFlows(file+":"+flowsName, s.flows, s.flowsAt, file, c)
		if err != nil {
			return nil, err
		}
		files := make(map[string][]byte, len(repo))
		for p, d := range repo {
			files[p] = d
		}
		sc.Steps = append(sc.Steps, &scenarioStep{Name: fmt.Sprintf("v%d", n), Files: files, Cluster: c, Flows: flows})
	}
	return sc, nil
}

// fileLines returns the 1-based line where each archive file's content
// starts.
func fileLines(raw []byte) map[string]int {
	out := map[string]int{}
	for i, l := range strings.Split(string(raw), "\n") {
		l = strings.TrimSuffix(l, "\r")
		if strings.HasPrefix(l, "-- ") && strings.HasSuffix(l, " --") && len(l) >= 6 {
			name := strings.TrimSpace(l[3 : len(l)-3])
			if _, ok := out[name]; !ok {
				out[name] = i + 2
			}
		}
	}
	return out
}

func decodeCluster(data []byte) (*Cluster, error) {
	var c Cluster
	if err := yaml.UnmarshalStrict(data, &c); err != nil {
		return nil, err
	}
	if err := c.Index(); err != nil {
		return nil, err
	}
	return &c, nil
}

// parseFlows parses the flow lines of data. name is for messages; line is
// the line of data's first line within file, so positions are file:line.
// Addresses are resolved in c.
func parseFlows(name string, data []byte, line int, file string, c *Cluster) ([]flowCase, error) {
	var out []flowCase
	for i, l := range strings.Split(string(data), "\n") {
		pos := fmt.Sprintf("%s:%d", file, line+i)
		if j := strings.Index(l, "#"); j >= 0 {
			l = l[:j]
		}
		l = strings.TrimSpace(l)
		if l == "" {
			continue
		}
		fc, err := parseFlow(l, c)
		if err != nil {
			return nil, fmt.Errorf("%s: %q: %w", pos, l, err)
		}
		fc.Pos, fc.Text = pos, l
		out = append(out, fc)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s: no flows", name)
	}
	return out, nil
}

func parseFlow(line string, c *Cluster) (flowCase, error) {
	var fc flowCase
	tok := strings.Fields(line)
	next := func() string {
		if len(tok) == 0 {
			return ""
		}
		t := tok[0]
		tok = tok[1:]
		return t
	}
	src, arrow, dst := next(), next(), next()
	if arrow != "->" || dst == "" {
		return fc, fmt.Errorf("want SRC -> DST:PORT/PROTO")
	}
	var err error
	if fc.Flow.Src, err = resolveAddr(src, c); err != nil {
		return fc, fmt.Errorf("source: %w", err)
	}
	i := strings.LastIndex(dst, ":")
	if i < 0 {
		return fc, fmt.Errorf("destination %q: want ADDR:PORT/PROTO", dst)
	}
	if fc.Flow.Dst, err = resolveAddr(dst[:i], c); err != nil {
		return fc, fmt.Errorf("destination: %w", err)
	}
	portS, protoS, ok := strings.Cut(dst[i+1:], "/")
	if !ok {
		return fc, fmt.Errorf("destination %q: want ADDR:PORT/PROTO", dst)
	}
	port, err := strconv.ParseUint(portS, 10, 16)
	if err != nil {
		return fc, fmt.Errorf("port %q: %w", portS, err)
	}
	fc.Flow.Port = uint16(port)
	if fc.Flow.Proto, err = ParseProto(protoS); err != nil {
		return fc, err
	}
	if fc.Flow.Proto == ProtoAny {
		return fc, fmt.Errorf("a flow has a concrete protocol, not ANY")
	}
	if fc.Flow.Src.Is4() != fc.Flow.Dst.Is4() {
		return fc, fmt.Errorf("source %s and destination %s are of different families", fc.Flow.Src, fc.Flow.Dst)
	}

	if len(tok) > 0 && tok[0] == "reply" {
		fc.Flow.Reply = true
		next()
	}
	keyvals := func() map[string][]string {
		kv := map[string][]string{}
		for len(tok) > 0 {
			k, v, ok := strings.Cut(tok[0], "=")
			if !ok {
				break
			}
			kv[k] = append(kv[k], v)
			next()
		}
		return kv
	}
	switch {
	case len(tok) > 0 && tok[0] == "http":
		next()
		m, p := next(), next()
		if m == "" || p == "" {
			return fc, fmt.Errorf("want http METHOD PATH")
		}
		h := &HTTPRequest{Method: m, Path: p}
		for k, vs := range keyvals() {
			switch k {
			case "host":
				h.Host = vs[0]
			case "header":
				h.Headers = map[string]string{}
				for _, v := range vs {
					n, val, _ := strings.Cut(v, ":")
					h.Headers[n] = strings.TrimSpace(val)
				}
			default:
				return fc, fmt.Errorf("http: unknown %s=", k)
			}
		}
		fc.Flow.Request = &Request{HTTP: h}
	case len(tok) > 0 && tok[0] == "dns":
		next()
		n := next()
		if n == "" {
			return fc, fmt.Errorf("want dns NAME")
		}
		fc.Flow.Request = &Request{DNS: &DNSRequest{Name: n}}
	case len(tok) > 0 && tok[0] == "kafka":
		next()
		k := &KafkaRequest{APIKey: next()}
		if k.APIKey == "" {
			return fc, fmt.Errorf("want kafka APIKEY")
		}
		for key, vs := range keyvals() {
			switch key {
			case "topic":
				k.Topic = vs[0]
			case "client":
				k.ClientID = vs[0]
			case "version":
				if k.APIVersion, err = strconv.Atoi(vs[0]); err != nil {
					return fc, fmt.Errorf("kafka version: %w", err)
				}
			default:
				return fc, fmt.Errorf("kafka: unknown %s=", key)
			}
		}
		fc.Flow.Request = &Request{Kafka: k}
	}

	v := next()
	if err := fc.Want.Verdict.UnmarshalText([]byte(v)); err != nil {
		return fc, err
	}
	for len(tok) > 0 {
		t := next()
		switch {
		case t == "ingress" || t == "egress":
			d := Ingress
			if t == "egress" {
				d = Egress
			}
			fc.Want.Side = &d
		case slices.Contains(reasonNames[:], t):
			var r Reason
			_ = r.UnmarshalText([]byte(t))
			fc.Want.Reason = &r
		case t == "by":
			kind, name := next(), next()
			if kind != "NetworkPolicy" && kind != "ClusterNetworkPolicy" || name == "" {
				return fc, fmt.Errorf("want by NetworkPolicy|ClusterNetworkPolicy NAME [PATH]")
			}
			fc.Want.By = &ruleRef{Kind: kind, Name: name, Path: next()}
			if len(tok) > 0 {
				return fc, fmt.Errorf("unexpected %q after the rule", tok[0])
			}
		default:
			return fc, fmt.Errorf("unexpected %q (want a side, a reason or by)", t)
		}
	}
	return fc, nil
}

// resolveAddr turns an address reference into an address.
func resolveAddr(s string, c *Cluster) (netip.Addr, error) {
	if i := strings.Index(s, "("); i > 0 && strings.HasSuffix(s, ")") {
		s = s[i+1 : len(s)-1]
	}
	s = strings.TrimSuffix(strings.TrimPrefix(s, "["), "]")
	if a, err := netip.ParseAddr(s); err == nil {
		return a, nil
	}
	ref, fam, _ := strings.Cut(s, "@")
	var ips []netip.Addr
	if name, ok := strings.CutPrefix(ref, "node/"); ok {
		n, ok := c.Node(name)
		if !ok {
			return netip.Addr{}, fmt.Errorf("no node %q in the cluster", name)
		}
		ips = n.IPs
	} else {
		e, ok := c.Endpoint(ref)
		if !ok {
			return netip.Addr{}, fmt.Errorf("no endpoint %q in the cluster (want ns/pod, node/NAME or an address)", ref)
		}
		ips = e.IPs
	}
	for _, ip := range ips {
		if fam == "" || fam == "4" && ip.Is4() || fam == "6" && ip.Is6() {
			return ip, nil
		}
	}
	return netip.Addr{}, fmt.Errorf("%s has no address %s", ref, map[string]string{"": "", "4": "of family IPv4", "6": "of family IPv6"}[fam])
}

// writeRepo writes a step's repository into dir.
func (s *scenarioStep) writeRepo(dir string) error {
	for p, d := range s.Files {
		full := filepath.Join(dir, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(full, d, 0o644); err != nil {
			return err
		}
	}
	return nil
}

// buildIR validates the step's repository (it must be valid) and builds
// its IR.
func (s *scenarioStep) buildIR(t *testing.T) *IR {
	t.Helper()
	dir := t.TempDir()
	if err := s.writeRepo(dir); err != nil {
		t.Fatal(err)
	}
	rep, err := validate.Dir(context.Background(), dir, validate.Options{})
	if err != nil {
		t.Fatalf("validate: %v", err)
	}
	if !rep.Valid() {
		var b strings.Builder
		for _, d := range rep.Diagnostics {
			fmt.Fprintf(&b, "\n  %s", strings.ReplaceAll(d.String(), dir+string(filepath.Separator), ""))
		}
		t.Fatalf("the scenario's policies are not valid:%s", b.String())
	}
	ir, err := Build(rep.Objects, "scenario")
	if err != nil {
		t.Fatalf("Build: %v", err)
	}
	return ir
}

func TestScenarios(t *testing.T) {
	files, err := filepath.Glob(filepath.Join(scenarioDir, "*.txtar"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("no scenarios")
	}
	sort.Strings(files)
	var nScenarios, nFlows int
	var scenarios []*scenario
	for _, file := range files {
		sc, err := loadScenario(file)
		if err != nil {
			t.Errorf("%v", err)
			continue
		}
		scenarios = append(scenarios, sc)
		for _, s := range sc.Steps {
			nScenarios++
			nFlows += len(s.Flows)
		}
	}
	t.Logf("%d scenarios (%d archives), %d flows", nScenarios, len(files), nFlows)
	for _, sc := range scenarios {
		t.Run(strings.TrimSuffix(filepath.Base(sc.File), ".txtar"), func(t *testing.T) {
			t.Parallel()
			for _, s := range sc.Steps {
				t.Run(s.Name, func(t *testing.T) {
					ir := s.buildIR(t)
					for _, fc := range s.Flows {
						if msg := checkFlow(ir, s.Cluster, fc); msg != "" {
							t.Errorf("%s (%s): %s\n%s", fc.Pos, s.Name, fc.Text, msg)
						}
					}
				})
			}
		})
	}
}

// checkFlow evaluates the flow and returns what differs from the
// expectation, or "".
func checkFlow(ir *IR, c *Cluster, fc flowCase) string {
	res := Evaluate(ir, c, fc.Flow)
	var problems []string
	if res.Verdict != fc.Want.Verdict {
		problems = append(problems, fmt.Sprintf("verdict %s, want %s", res.Verdict, fc.Want.Verdict))
	}
	if fc.Want.Side != nil || fc.Want.Reason != nil || fc.Want.By != nil {
		var cands []Side
		switch {
		case fc.Want.Side != nil && *fc.Want.Side == Egress:
			cands = []Side{res.Egress}
		case fc.Want.Side != nil:
			cands = []Side{res.Ingress}
		case fc.Want.Verdict == VerdictAllow:
			cands = []Side{res.Egress, res.Ingress}
		case res.Decider == Egress:
			cands = []Side{res.Egress}
		default:
			cands = []Side{res.Ingress}
		}
		var why []string
		ok := false
		for _, s := range cands {
			w := sideMismatch(s, fc.Want)
			if w == "" {
				ok = true
				break
			}
			why = append(why, w)
		}
		if !ok {
			problems = append(problems, strings.Join(why, "; "))
		}
	}
	if len(problems) == 0 {
		return ""
	}
	return fmt.Sprintf("  %s\n  got: %s\n    %s\n    %s", strings.Join(problems, "\n  "), res.Verdict, describeSide(res.Egress), describeSide(res.Ingress))
}

func sideMismatch(s Side, w flowWant) string {
	var out []string
	if w.Reason != nil && s.Reason != *w.Reason {
		out = append(out, fmt.Sprintf("%s reason %s, want %s", s.Direction, s.Reason, *w.Reason))
	}
	if w.By != nil {
		found := false
		if s.Reason == ReasonDefaultDeny && w.By.Path == "" {
			found = slices.ContainsFunc(s.Policies, w.By.matches)
		} else if s.Rule != nil {
			found = w.By.matches(s.Rule.Origin)
		}
		if !found {
			out = append(out, fmt.Sprintf("%s not decided by %s", s.Direction, w.By))
		}
	}
	return strings.Join(out, ", ")
}

func describeSide(s Side) string {
	ep := s.Endpoint
	if ep == "" {
		ep = "-"
	}
	out := fmt.Sprintf("%s %s: %s %s", s.Direction, ep, s.Verdict, s.Reason)
	if s.Rule != nil {
		out += fmt.Sprintf(" by %s %s (%s)", s.Rule.Origin.Policy(), s.Rule.Origin.Path, s.Rule.Origin.Position())
	}
	for _, p := range s.Policies {
		out += fmt.Sprintf(" [%s (%s)]", p.Policy(), p.Position())
	}
	return out
}
