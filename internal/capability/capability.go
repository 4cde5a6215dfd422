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

// Package capability is the one place that says what this version's
// datapath enforces. validate warns at every rule it lists as not
// enforced, explain says when the kernel's verdict differs from the
// policy's meaning, and the agent reports every object it cannot enforce
// fully on NodeEnforcement, so that status never claims more than the
// kernel does. When a datapath feature lands, its entry in Table changes
// and the warnings and status follow by themselves.
//
// The package is pure: it reads API types and imports nothing else of
// Palisade's.
package capability

import (
	"fmt"
	"sort"
	"strings"

	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/palisade-dev/palisade/api/v1alpha1"
)

// Feature is a part of the policy language that the datapath enforces or
// not.
type Feature string

// The features of the policy language, as the table knows them.
const (
	L3L4 Feature = "L3/L4 rules"
	// HTTP is HTTP rules of ingress rules: the server's side of a
	// connection, which bpf/l7 decides request by request.
	HTTP Feature = "ingress HTTP rules"
	// HTTPEgress is HTTP rules of egress rules: the client's side, which
	// bpf/l7 decides request by request as the client writes them.
	HTTPEgress Feature = "egress HTTP rules"
	// HTTPOnFQDNPeers is HTTP rules of an egress rule whose peers are
	// toFQDNs: requests to the names' addresses.
	HTTPOnFQDNPeers Feature = "HTTP rules of toFQDNs rules"
	// KafkaOnFQDNPeers is Kafka rules of an egress rule whose peers are
	// toFQDNs: requests to the names' addresses.
	KafkaOnFQDNPeers Feature = "Kafka rules of toFQDNs rules"
	// HTTPHost is ingress HTTP rules of a host policy (a
	// ClusterNetworkPolicy with nodeSelector): requests to the host.
	HTTPHost Feature = "ingress HTTP rules of host policies"
	// HTTPHostEgress is egress HTTP rules of a host policy: requests the
	// host's own processes write.
	HTTPHostEgress Feature = "egress HTTP rules of host policies"
	// Kafka is Kafka rules of ingress rules: the broker's side, which
	// bpf/kafka decides request by request.
	Kafka Feature = "Kafka rules"
	// KafkaEgress is Kafka rules of egress rules: the client's side, which
	// bpf/kafka decides request by request as the client writes them.
	KafkaEgress Feature = "egress Kafka rules"
	// KafkaHost is Kafka rules of a host policy: requests to the host's
	// own brokers (ingress) and requests the host's own clients write
	// (egress).
	KafkaHost Feature = "Kafka rules of host policies"
	// KafkaTopicUnread is a Kafka rule (ingress or egress) naming a topic for an API
	// key whose requests' topics the kernel does not read.
	KafkaTopicUnread Feature = "Kafka rules naming a topic of keys whose topics the kernel does not read"
	DNS              Feature = "DNS rules"
	// DNSOtherProtocols is DNS rules on a port that also admits SCTP.
	DNSOtherProtocols Feature = "DNS rules on SCTP"
	FQDN              Feature = "toFQDNs"
	// FQDNWithoutDNS is toFQDNs of a policy with no DNS rule on any egress
	// port.
	FQDNWithoutDNS Feature = "toFQDNs without DNS rules"
	// DNSOnFQDNPeers is DNS rules of an egress rule whose peers are
	// toFQDNs: queries to the names' addresses.
	DNSOnFQDNPeers Feature = "DNS rules of toFQDNs rules"
	Tracing        Feature = "tracing policies"
	AuditReports   Feature = "audit reports"
)

// Subsystem names the agent subsystem that enforces a feature.
type Subsystem string

// The agent's subsystems.
const (
	SubsystemNetwork Subsystem = "network"
	SubsystemL7      Subsystem = "l7"
	SubsystemTracing Subsystem = "tracing"
	SubsystemFlows   Subsystem = "flows"
)

// Effect is how the kernel's behaviour differs from the policy's meaning
// while a feature is not enforced.
type Effect string

const (
	// Passes: the kernel allows what the rule would refuse (the rule's
	// restriction is missing).
	Passes Effect = "passes"
	// Drops: the kernel refuses what the rule would allow.
	Drops Effect = "drops"
	// NotLoaded: nothing of the object runs.
	NotLoaded Effect = "not loaded"
	// Unreported: verdicts are as the policy says, but what the policy
	// asks to be reported is not.
	Unreported Effect = "unreported"
)

// Support is one row of the table.
type Support struct {
	// Enforced is true when the kernel enforces the feature as written.
	Enforced bool
	// Subsystem is the agent subsystem that owns the feature.
	Subsystem Subsystem
	// Effect and Kernel say what happens instead while it is not
	// enforced; Kernel completes the sentence "the kernel ...".
	Effect Effect
	Kernel string
}

// Table is what this version's datapath enforces. It is the only place
// that says so.
var Table = map[Feature]Support{
	L3L4: {Enforced: true, Subsystem: SubsystemNetwork},
	// Ingress HTTP rules are decided request by request in the kernel
	// (docs/l7.md): the agent's l7 subsystem binds the destination
	// workload's address and port to the tables of its allow rules and
	// attaches the stream parser to the workload's cgroup. What a node
	// cannot do of it (no cgroup found for a pod yet, an agent run without
	// --l7, tables the kernel cannot hold) is reported per node and object,
	// not as a gap here. Effect and Kernel say what a node that runs
	// without the L7 datapath does.
	HTTP: {Enforced: true, Subsystem: SubsystemL7, Effect: Passes, Kernel: "passes every request on the port that L3/L4 allows"},
	// Egress HTTP rules are decided request by request in the kernel as
	// the source workload writes them (docs/l7.md, "Egress"): the agent
	// binds the source's address, the remote port and the peer's identity
	// to the tables of its allow rules and attaches sockops and the
	// egress gate to the source's cgroup; a refused request is answered 403 on the client's
	// own socket and never sent. A write that begins before the
	// connection is established (or TCP Fast Open data) is not seen by
	// the sk_msg program: the egress gate on the source's cgroup drops
	// every segment carrying bytes the program did not decide, and the
	// connection is refused (it stalls; later writes fail with EACCES).
	// Effect and Kernel say what a node that runs without the L7 datapath
	// does.
	HTTPEgress: {Enforced: true, Subsystem: SubsystemL7, Effect: Passes, Kernel: "passes every request on the port that L3/L4 allows"},
	// The client's side finds a request's binding by the peer's identity
	// in the agent's ipcache (or any peer); the identities of toFQDNs
	// selectors, which the kernel learns from DNS answers, are not among
	// them, so an entry found through one is decided at L4.
	HTTPOnFQDNPeers: {Subsystem: SubsystemL7, Effect: Passes,
		Kernel: "decides HTTP rules only of egress rules whose peer is an identity, a CIDR, an entity or every peer, not a toFQDNs selector: every request to these names' addresses on the port that L3/L4 allows passes"},
	// The stream parser runs for the sockets of the pods' cgroups only;
	// the host's own servers are not in one.
	HTTPHost: {Subsystem: SubsystemL7, Effect: Passes,
		Kernel: "decides HTTP requests to pods only, and passes every request to the host on the port that L3/L4 allows"},
	// Egress HTTP rules are decided for the sockets of pods' cgroups only;
	// the host's own clients are not in one.
	HTTPHostEgress: {Subsystem: SubsystemL7, Effect: Passes,
		Kernel: "decides HTTP requests of pods only, and passes every request the host writes on the port that L3/L4 allows"},
	// Ingress Kafka rules are decided request by request in the kernel
	// (docs/kafka.md): the agent's kafka subsystem binds the broker's
	// address and port to the tables of its allow rules and attaches
	// bpf/kafka's sockops to its cgroup. The kernel reads the topics of
	// Produce, Fetch, ListOffsets, Metadata, OffsetCommit and OffsetFetch
	// in the versions that name topics by name; what it does not read it
	// refuses where a rule needs the topic, never passes. Effect and
	// Kernel say what a node that runs without the Kafka datapath does.
	Kafka: {Enforced: true, Subsystem: SubsystemL7, Effect: Passes, Kernel: "passes every request on the port that L3/L4 allows"},
	// Egress Kafka rules are decided request by request in the kernel on
	// the client's side, as the source workload writes them
	// (docs/kafka.md, "Egress"): the agent's kafka subsystem binds the
	// source's address, the remote port and the peer's identity to the
	// tables of its allow rules and attaches bpf/kafka's sockops and
	// egress gate to the source's cgroup; a refused request never leaves
	// the socket and is answered on the client's own socket
	// (TOPIC_AUTHORIZATION_FAILED for Metadata and Produce, else a frame
	// that makes the client close the connection). The same parser as
	// ingress decides; what it does not read it refuses where a rule
	// needs the topic. Effect and Kernel say what a node that runs
	// without the Kafka datapath does.
	KafkaEgress: {Enforced: true, Subsystem: SubsystemL7, Effect: Passes, Kernel: "passes every request on the port that L3/L4 allows"},
	// The client's binding is found by the peer's identity in kafka_peers
	// (the ipcache); the selector identities the network datapath learns
	// from DNS answers are not there, so a request to a toFQDNs peer finds
	// no binding of its rule and passes, as HTTPOnFQDNPeers.
	KafkaOnFQDNPeers: {Subsystem: SubsystemL7, Effect: Passes,
		Kernel: "decides Kafka rules only of egress rules whose peer is an identity, a CIDR, an entity or every peer, not a toFQDNs selector: every request to these names' addresses on the port that L3/L4 allows passes"},
	// The stream parser runs for the sockets of the pods' cgroups only;
	// the host's own brokers are not in one.
	KafkaHost: {Subsystem: SubsystemL7, Effect: Passes,
		Kernel: "decides Kafka requests to and from pods only, and passes every request to the host, and every request the host writes, on the port that L3/L4 allows"},
	KafkaTopicUnread: {Subsystem: SubsystemL7, Effect: Drops,
		Kernel: "reads topics only of produce, fetch, offsets, metadata, offsetcommit and offsetfetch requests (in the versions that name topics by name), and refuses the requests of other keys that only a rule naming a topic would admit"},
	// DNS rules are decided per query in the kernel (docs/datapath.md,
	// "DNS"): names matched as engine.FQDN.Matches does, refused UDP
	// queries answered REFUSED (or NXDOMAIN), refused TCP queries dropped.
	// What the kernel cannot decide it refuses (malformed, a TCP query
	// split over segments, more than 4 questions); it never passes a
	// query the rules refuse.
	DNS: {Enforced: true, Subsystem: SubsystemL7},
	// The kernel parses DNS over UDP and TCP only: on a port whose rule
	// also admits SCTP (protocol ANY, or omitted), an SCTP packet is
	// decided at L3/L4.
	DNSOtherProtocols: {Subsystem: SubsystemL7, Effect: Passes,
		Kernel: "parses DNS over UDP and TCP only and decides SCTP packets on the port at L3/L4"},
	// toFQDNs are decided in the kernel (docs/datapath.md, "toFQDNs"): it
	// learns a name's addresses from the answers to the queries it parses
	// on ports with DNS rules, before the workload receives the answer,
	// and decides the workload's packets to them with the selectors'
	// identities (docs/engine.md).
	FQDN: {Enforced: true, Subsystem: SubsystemL7},
	// The kernel learns only from queries it parses, which are those on
	// ports with DNS rules (as in Cilium, whose DNS proxy sees only those).
	// A policy with toFQDNs and no DNS rule relies on another policy to
	// give its endpoints one; Network cannot see other policies, so it
	// reports the gap for the policy alone.
	FQDNWithoutDNS: {Subsystem: SubsystemL7, Effect: Drops,
		Kernel: "learns a name's addresses only from answers to queries on ports with DNS rules, and this policy has none: unless another policy gives its endpoints a DNS rule, traffic to these names is dropped"},
	// The kernel decides a query's DNS rules from the peer's and the
	// any-peer (identity 0) entries only (bpf/dns.h); an L7 list on an
	// entry found through a toFQDNs selector identity is decided at L4
	// (docs/datapath.md, "toFQDNs", counted in L7Unenforced).
	DNSOnFQDNPeers: {Subsystem: SubsystemL7, Effect: Passes,
		Kernel: "matches DNS rules only of rules whose peer is an identity or every peer, not a toFQDNs selector: every query to these names' addresses on the port that L3/L4 allows passes"},
	// Tracing policies are loaded by the agent's tracing subsystem, one
	// unit each (docs/agent.md); what a node's kernel cannot load of one
	// (a hook it lacks, a program its verifier refuses) is reported per
	// node and object from the load's results, not as a gap here. Effect
	// and Kernel say what a node that runs without tracing does.
	Tracing: {Enforced: true, Subsystem: SubsystemTracing, Effect: NotLoaded,
		Kernel: "loads no program for it: its hooks never run and its actions never happen"},
	// Audit verdicts are read from the datapath's events and reported as
	// flows by the agent's observer (docs/flows.md).
	AuditReports: {Enforced: true, Subsystem: SubsystemFlows},
}

// Enforced reports whether the datapath enforces f as written.
func Enforced(f Feature) bool { return Table[f].Enforced }

// Gap is one part of a policy that the datapath does not enforce as
// written.
type Gap struct {
	Feature Feature
	// Path is the field the gap is about, e.g.
	// "spec.ingress[0].toPorts[0].rules.http".
	Path string
	// What names the part, e.g. "HTTP rules on 80/TCP"; it is plural
	// ("... are not enforced").
	What string
}

// Support returns the table's row for the gap's feature.
func (g Gap) Support() Support { return Table[g.Feature] }

// String says what is not enforced and what the kernel does instead.
func (g Gap) String() string {
	return fmt.Sprintf("%s are not enforced: the kernel %s", g.What, g.Support().Kernel)
}

// Network returns the gaps of a network policy's rules, in field order.
func Network(rs *v1alpha1.RuleSet) []Gap {
	var gaps []Gap
	for _, g := range networkParts(rs) {
		gaps = add(gaps, g)
	}
	return gaps
}

// Host returns the gaps of a host policy's rules (a ClusterNetworkPolicy
// with nodeSelector), in field order: Network's, except that its HTTP
// rules are host HTTP rules (ingress and egress), which the kernel does
// not decide.
func Host(rs *v1alpha1.RuleSet) []Gap {
	var gaps []Gap
	for _, g := range networkParts(rs) {
		switch g.Feature {
		case HTTP:
			g.Feature = HTTPHost
		case HTTPEgress:
			g.Feature = HTTPHostEgress
		case HTTPOnFQDNPeers:
			continue // the rule's HTTPHostEgress gap says it
		case KafkaOnFQDNPeers:
			continue // the rule's KafkaHost gap says it
		case Kafka, KafkaEgress:
			g.Feature = KafkaHost
		case KafkaTopicUnread:
			continue // the rule's KafkaHost gap says it
		}
		gaps = add(gaps, g)
	}
	return gaps
}

// Parts returns the parts of a network policy's rules that are of feature
// f, in field order, whether the table says f is enforced or not: the
// agent reports what a node fails to do of an enforced feature by them.
func Parts(rs *v1alpha1.RuleSet, f Feature) []Gap {
	var out []Gap
	for _, g := range networkParts(rs) {
		if g.Feature == f {
			out = append(out, g)
		}
	}
	return out
}

// networkParts lists every part of the rules beyond L3/L4, in field
// order.
func networkParts(rs *v1alpha1.RuleSet) []Gap {
	var gaps []Gap
	if rs.Mode == v1alpha1.EnforcementModeAudit {
		gaps = append(gaps, Gap{Feature: AuditReports, Path: "spec.mode", What: "audit mode's reports of what it would drop"})
	}
	for i, r := range rs.Ingress {
		gaps = portGaps(gaps, fmt.Sprintf("spec.ingress[%d]", i), "ingress", r.ToPorts, false)
	}
	dns := hasEgressDNS(rs)
	for i, r := range rs.Egress {
		at := fmt.Sprintf("spec.egress[%d]", i)
		if len(r.ToFQDNs) > 0 {
			names := make([]string, 0, len(r.ToFQDNs))
			for _, f := range r.ToFQDNs {
				names = append(names, string(f.MatchName)+string(f.MatchPattern))
			}
			what := "toFQDNs (" + strings.Join(names, ", ") + ")"
			gaps = append(gaps, Gap{Feature: FQDN, Path: at + ".toFQDNs", What: what})
			if !dns {
				gaps = append(gaps, Gap{Feature: FQDNWithoutDNS, Path: at + ".toFQDNs", What: what + " of a policy without DNS rules"})
			}
		}
		gaps = portGaps(gaps, at, "egress", r.ToPorts, len(r.ToFQDNs) > 0)
	}
	return gaps
}

// hasEgressDNS reports whether a rule set has a DNS rule on an egress port.
func hasEgressDNS(rs *v1alpha1.RuleSet) bool {
	for _, r := range rs.Egress {
		for _, pr := range r.ToPorts {
			if pr.Rules != nil && len(pr.Rules.DNS) > 0 {
				return true
			}
		}
	}
	return false
}

// kafkaTopicUnread reports whether the kernel does not read the topics of
// an API key's requests (docs/kafka.md).
func kafkaTopicUnread(k v1alpha1.KafkaAPIKey) bool {
	switch k {
	case "leaderandisr", "stopreplica", "updatemetadata", "controlledshutdown", "createtopics", "deletetopics":
		return true
	}
	return false
}

// portGaps appends the gaps of a rule's ports; fqdn says that the rule's
// peers are toFQDNs.
func portGaps(gaps []Gap, at, dir string, ports []v1alpha1.PortRule, fqdn bool) []Gap {
	for j, pr := range ports {
		if pr.Rules == nil {
			continue
		}
		path := fmt.Sprintf("%s.toPorts[%d].rules", at, j)
		on := PortsString(pr.Ports)
		if len(pr.Rules.HTTP) > 0 {
			f := HTTP
			if dir == "egress" {
				f = HTTPEgress
			}
			gaps = append(gaps, Gap{Feature: f, Path: path + ".http", What: dir + " HTTP rules on " + on})
			if fqdn {
				gaps = append(gaps, Gap{Feature: HTTPOnFQDNPeers, Path: path + ".http", What: dir + " HTTP rules on " + on + " of a toFQDNs rule"})
			}
		}
		if len(pr.Rules.Kafka) > 0 {
			f := Kafka
			if dir == "egress" {
				f = KafkaEgress
			}
			gaps = append(gaps, Gap{Feature: f, Path: path + ".kafka", What: dir + " Kafka rules on " + on})
			if fqdn {
				gaps = append(gaps, Gap{Feature: KafkaOnFQDNPeers, Path: path + ".kafka", What: dir + " Kafka rules on " + on + " of a toFQDNs rule"})
			}
			for k, r := range pr.Rules.Kafka {
				if r.Topic != "" && kafkaTopicUnread(r.APIKey) {
					gaps = append(gaps, Gap{Feature: KafkaTopicUnread, Path: fmt.Sprintf("%s.kafka[%d]", path, k),
						What: fmt.Sprintf(dir+" Kafka rules for %s requests of topic %s on %s", r.APIKey, r.Topic, on)})
				}
			}
		}
		if len(pr.Rules.DNS) > 0 {
			gaps = append(gaps, Gap{Feature: DNS, Path: path + ".dns", What: dir + " DNS rules on " + on})
			var sctp []v1alpha1.PortProtocol
			for _, p := range pr.Ports {
				if p.Protocol == "" || p.Protocol == v1alpha1.ProtocolAny || p.Protocol == v1alpha1.ProtocolSCTP {
					sctp = append(sctp, p)
				}
			}
			if len(sctp) > 0 || len(pr.Ports) == 0 {
				gaps = append(gaps, Gap{Feature: DNSOtherProtocols, Path: path + ".dns", What: dir + " DNS rules for SCTP packets on " + PortsString(sctp)})
			}
			if fqdn {
				gaps = append(gaps, Gap{Feature: DNSOnFQDNPeers, Path: path + ".dns", What: dir + " DNS rules on " + on + " of a toFQDNs rule"})
			}
		}
	}
	return gaps
}

// add appends g when the table says its feature is not enforced.
func add(gaps []Gap, g Gap) []Gap {
	if Enforced(g.Feature) {
		return gaps
	}
	return append(gaps, g)
}

// PortsString is "80/TCP" or "53/UDP, 53/TCP", as messages show ports.
func PortsString(ports []v1alpha1.PortProtocol) string {
	if len(ports) == 0 {
		return "every port"
	}
	parts := make([]string, 0, len(ports))
	for _, p := range ports {
		proto := string(p.Protocol)
		if proto == "" {
			proto = string(v1alpha1.ProtocolAny)
		}
		port := p.Port.String()
		if p.Port.Type == intstr.Int && p.EndPort != nil && *p.EndPort > p.Port.IntVal {
			port = fmt.Sprintf("%d-%d", p.Port.IntVal, *p.EndPort)
		}
		parts = append(parts, port+"/"+proto)
	}
	return strings.Join(parts, ", ")
}

// TracingPolicy returns the gaps of a tracing policy.
func TracingPolicy(spec *v1alpha1.TracingPolicySpec) []Gap {
	return add(nil, Gap{Feature: Tracing, Path: "spec", What: "the tracing policy's hooks and actions"})
}

// State sums up an object's gaps: Enforced with none, NotEnforced when
// nothing of the object runs, Partial otherwise. reason is the
// ObjectEnforcement reason and message joins the gaps' sentences.
func State(gaps []Gap) (state v1alpha1.ObjectEnforcementState, reason, message string) {
	if len(gaps) == 0 {
		return v1alpha1.ObjectEnforced, "", ""
	}
	state = v1alpha1.ObjectPartial
	msgs := make([]string, 0, len(gaps))
	for _, g := range gaps {
		if g.Support().Effect == NotLoaded {
			state = v1alpha1.ObjectNotEnforced
		}
		msgs = append(msgs, g.String())
	}
	return state, v1alpha1.NotSupportedReason, strings.Join(msgs, "; ")
}

// Features lists the table's features in a stable order, for docs and
// tests.
func Features() []Feature {
	out := make([]Feature, 0, len(Table))
	for f := range Table {
		out = append(out, f)
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}
