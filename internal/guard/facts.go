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

package guard

// Facts are what Palisade derives from a changed policy for guards: the
// answers Rego computes badly or slowly (selector implication, CIDR
// containment, port-range coverage, "is this new"). Lists are never null,
// so guards can iterate them without checks. See docs/guards.md.
type Facts struct {
	// Subject says whom the policy applies to (after the change, or before
	// it for a deletion).
	Subject Subject `json:"subject"`
	// SelectsAll: the policy applies to every pod of its scope (an empty
	// endpointSelector or podSelector, or one that only names namespaces).
	SelectsAll bool `json:"selects_all"`
	// ScopeNamespaces are the namespaces the policy reaches: its own, the
	// ones a cluster policy's selector names, or ["*"] for all.
	ScopeNamespaces []string `json:"scope_namespaces"`
	// Mode is "enforce" or "audit".
	Mode string `json:"mode"`

	// DefaultDeny is the directions the policy isolates its subject in.
	DefaultDeny Directions `json:"default_deny"`
	// IsDefaultDeny: after the change, the policy is an enforced default
	// deny of its whole scope. WasDefaultDeny: before it.
	IsDefaultDeny  bool `json:"is_default_deny"`
	WasDefaultDeny bool `json:"was_default_deny"`

	// AllowAll lists allow rules that admit every peer.
	AllowAll []AllowAll `json:"allow_all"`
	// WidenedSelectors are selectors, at the same path before and after,
	// whose match set grew.
	WidenedSelectors []WidenedSelector `json:"widened_selectors"`
	// NewIngressEntities and NewEgressEntities are entities that allow
	// rules name after the change and did not before.
	NewIngressEntities []string `json:"new_ingress_entities"`
	NewEgressEntities  []string `json:"new_egress_entities"`
	// NewPorts are (peer, protocol, port range) combinations allowed after
	// the change that no allow rule of the policy covered before.
	NewPorts []PortFact `json:"new_ports"`
	// LiftedDenies are deny combinations of before that the policy no longer
	// denies.
	LiftedDenies []PortFact `json:"lifted_denies"`
	// L7MatchAll are ports whose L7 restriction became match-everything.
	L7MatchAll []L7Fact `json:"l7_match_all"`

	// EnforcingActions are the distinct Sigkill/Deny actions of a tracing
	// policy, sorted.
	EnforcingActions []string `json:"enforcing_actions"`
	// Scoped: every enforcing action is narrowed by podSelector or by its
	// selector's matchBinaries, matchNamespaces, matchPIDs or
	// matchCapabilities. True when there is nothing to scope.
	Scoped bool `json:"scoped"`
	// UnscopedActions are the enforcing actions that are not scoped.
	UnscopedActions []ActionFact `json:"unscoped_actions"`
}

// Subject is whom a policy applies to, as normalized selectors. Endpoints
// is null when the policy selects no pods (a host firewall) and [] when it
// selects every pod of its scope.
type Subject struct {
	Endpoints []Requirement `json:"endpoints"`
	Nodes     []Requirement `json:"nodes"`
}

// Directions says per direction whether something holds.
type Directions struct {
	Ingress bool `json:"ingress"`
	Egress  bool `json:"egress"`
}

// AllowAll is an allow rule that admits every peer: an empty selector
// ("empty-selector", every pod of the namespace), the entity all
// ("entity-all"), or no peer at all ("no-peers", every peer).
type AllowAll struct {
	Direction string `json:"direction"`
	Path      string `json:"path"`
	Reason    string `json:"reason"`
	// AllPorts: the rule does not restrict ports either.
	AllPorts bool `json:"all_ports"`
	// New: the policy had no such rule before the change.
	New bool `json:"new"`
}

// WidenedSelector is a selector whose match set grew.
type WidenedSelector struct {
	Path   string        `json:"path"`
	Before []Requirement `json:"before"`
	After  []Requirement `json:"after"`
}

// Peer is the other side of a rule. Kind is "all", "entity", "cidr",
// "endpoints" or "fqdn"; Value the entity, CIDR, canonical selector or DNS
// name/pattern ("" for all).
type Peer struct {
	Kind  string `json:"kind"`
	Value string `json:"value"`
}

// PortFact is one peer × protocol × port range a rule allows or denies.
type PortFact struct {
	Direction string `json:"direction"`
	Peer      Peer   `json:"peer"`
	// World: the peer includes addresses outside the cluster (entity world
	// or all, a rule without peers, a public CIDR, a DNS name).
	World bool `json:"world"`
	// Protocol is TCP, UDP, SCTP, ANY, ICMP or ICMPv6.
	Protocol string `json:"protocol"`
	// Port..EndPort is inclusive; 0..65535 is every port. For ICMP they
	// hold the type.
	Port    int `json:"port"`
	EndPort int `json:"end_port"`
	// NamedPort is set (and Port, EndPort are 0) for a named port or ICMP
	// type name.
	NamedPort string `json:"named_port"`
	// Path is the rule's field path in the policy.
	Path string `json:"path"`
}

// L7Fact is a port whose L7 rules became match-everything.
type L7Fact struct {
	Direction string `json:"direction"`
	Protocol  string `json:"protocol"`
	Port      int    `json:"port"`
	EndPort   int    `json:"end_port"`
	NamedPort string `json:"named_port"`
	// L7 is the protocol of the rules before (or after, for a new
	// match-everything rule): http, dns or kafka.
	L7 string `json:"l7"`
	// Reason is "match-all-rule" (a rule that matches every request) or
	// "l7-removed" (the port is now allowed without L7 rules).
	Reason string `json:"reason"`
	Path   string `json:"path"`
}

// ActionFact is an enforcing tracing action.
type ActionFact struct {
	Path   string `json:"path"`
	Hook   string `json:"hook"`
	Action string `json:"action"`
}

// newFacts returns facts with every list empty rather than null.
func newFacts() Facts {
	return Facts{
		ScopeNamespaces: []string{}, AllowAll: []AllowAll{}, WidenedSelectors: []WidenedSelector{},
		NewIngressEntities: []string{}, NewEgressEntities: []string{}, NewPorts: []PortFact{},
		LiftedDenies: []PortFact{}, L7MatchAll: []L7Fact{}, EnforcingActions: []string{},
		Scoped: true, UnscopedActions: []ActionFact{}, Mode: "enforce",
	}
}

// budget bounds the work facts may take for one policy: selector
// implication and coverage are quadratic in the worst case, and a hostile
// policy must not be able to stall the guard. A change whose facts ran out
// of budget is denied (fail closed).
type budget struct{ left int }

// maxFactWork is the work budget per changed policy, in elementary
// comparisons: far above what a policy written by people needs.
const maxFactWork = 2_000_000

func (b *budget) spend(n int) bool {
	b.left -= n
	return b.left >= 0
}
