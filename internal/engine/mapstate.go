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
	"net/netip"

	"github.com/palisade-dev/palisade/api/v1alpha1"
)

// MapState is the desired content of one node's datapath maps, as the node
// compiler produces it and the datapath package writes it to the kernel.
// It is plain data: two MapStates compiled from the same input are equal,
// whatever the order of policies, rules and endpoints.
//
// A packet is decided by Lookup, which is the contract between the
// compiler and the eBPF programs:
//
//  1. The enforcement point (the source on egress, the destination on
//     ingress) is looked up in Endpoints by address. Absent: not enforced.
//  2. The peer's identity is the IPCache entry with the longest prefix
//     that contains the peer's address (0.0.0.0/0 and ::/0 are world).
//  3. The Policy map is probed with the peer's identity and with identity
//     0 (any peer), and, for a peer outside the cluster (WorldPeer), with
//     IdentityAllWorld, which holds the rules that select every world
//     address: key (endpoint's PolicyID, direction, identity, protocol
//     and port). Policy keys are prefixes of the 24 bits proto<<16|port,
//     and the entries of one (PolicyID, direction, identity) never
//     overlap, so each probe finds at most one entry.
//  4. The side is decided twice from the entries found (flags OR-ed, the
//     lowest rule of each kind, the L7 lists collected). The enforced view
//     uses Deny, Allow (subject to the enforcing rules of L7 lists) and the
//     endpoint's DefaultDeny flag: Deny → deny; else Allow → allow unless
//     L7 refuses; else default deny, or not selected. When the enforced view
//     allows, the full view decides the same way with the audit flags
//     added (AuditDeny, AuditAllow, every rule of L7 lists, DefaultAudit):
//     if it denies, the verdict is audit. So audit-mode policies report
//     what they would drop and never open or close anything. A flow no
//     enforcing policy selects that the full view allows is reported with
//     the full view's rule.
//
// On egress, step 3 has more probes when the peer is one that FQDN
// selectors can select (FQDNEligible of its ipcache identity): one with
// every selector identity S in FQDNSelectors that selects a name N with
// the peer's address in FQDNNames[N]. Every entry found is folded into the
// decision of step 4 as the first two are (flags OR-ed, the lowest rule of
// each kind, the L7 lists collected), which does not depend on their
// order. Ingress never probes selector identities.
type MapState struct {
	IPCache   map[netip.Prefix]Identity    `json:"ipcache"`
	Endpoints map[netip.Addr]EndpointEntry `json:"endpoints"`
	Policy    map[PolicyKey]PolicyEntry    `json:"policy"`
	// L7 holds the L7 lists that policy entries refer to by L7ID.
	L7 map[L7ID]L7List `json:"l7"`
	// FQDNSelectors holds every selector identity and its selector,
	// normalised (NormalizeFQDN). CompileFQDN makes the kernel's name
	// automaton of it.
	FQDNSelectors map[Identity]FQDN `json:"fqdnSelectors,omitempty"`
	// FQDNNames is the learned table: normalised name → addresses, sorted.
	// Compile fills it from Cluster.DNS, so that Lookup decides as
	// Evaluate; the datapath's read-back fills it from the kernel's table
	// (unexpired entries only). The datapath never writes it: the kernel
	// learns it from the DNS answers it sees.
	FQDNNames map[string][]netip.Addr `json:"fqdnNames,omitempty"`
}

// EndpointFlags say how an enforcement point is default-deny.
type EndpointFlags uint8

// Endpoint flags: default deny per direction, enforced or audited.
const (
	IngressDefaultDeny EndpointFlags = 1 << iota
	IngressDefaultAudit
	EgressDefaultDeny
	EgressDefaultAudit
)

// EndpointEntry describes a local enforcement point (a workload, or the
// host for the host firewall).
type EndpointEntry struct {
	Identity Identity `json:"identity"`
	// PolicyID selects the endpoint's policy entries. Endpoints with the
	// same identity share one (it is the identity's number).
	PolicyID uint32        `json:"policyID"`
	Flags    EndpointFlags `json:"flags"`
}

// PolicyKey is one prefix of the policy map.
type PolicyKey struct {
	PolicyID  uint32    `json:"policyID"`
	Direction Direction `json:"direction"`
	// Identity is the peer's identity; 0 matches every peer.
	Identity Identity `json:"identity"`
	Proto    Proto    `json:"proto"`
	Port     uint16   `json:"port"`
	// PrefixLen is how many of the 24 bits proto<<16|port are significant:
	// 0 is every protocol and port, 8 every port of Proto, 24 one port.
	PrefixLen uint8 `json:"prefixLen"`
}

// PolicyFlags say what matched at a point of the policy map.
type PolicyFlags uint8

// Policy entry flags.
const (
	// FlagAllow: an allow rule of an enforcing policy matches.
	FlagAllow PolicyFlags = 1 << iota
	// FlagDeny: a deny rule of an enforcing policy matches.
	FlagDeny
	// FlagAuditDeny: a deny rule of an audit-mode policy matches.
	FlagAuditDeny
	// FlagAuditAllow: an allow rule of an audit-mode policy matches.
	FlagAuditAllow
)

// PolicyEntry is the value at a policy map prefix. Each rule field holds
// the lowest RuleID of its kind at this point, or 0: AllowRule of the
// enforcing allows, DenyRule of the enforcing denies, AuditRule of the
// audit-mode denies, AuditAllowRule of the audit-mode allows.
type PolicyEntry struct {
	Flags     PolicyFlags `json:"flags"`
	AllowRule RuleID      `json:"allowRule,omitempty"`
	DenyRule  RuleID      `json:"denyRule,omitempty"`
	AuditRule RuleID      `json:"auditRule,omitempty"`
	// AuditAllowRule names the audit-mode allow that a flow no enforcing
	// policy selects is reported as allowed by.
	AuditAllowRule RuleID `json:"auditAllowRule,omitempty"`
	// L7 is 0 when no allow rule at this point has L7 rules; otherwise it
	// names the list of every allow rule at this point with its L7 rules
	// (nil for a rule without), so that requests are decided, and the
	// deciding rule named, exactly as the reference evaluator does.
	L7 L7ID `json:"l7,omitempty"`
}

// L7ID names an L7 list. IDs are content hashes, so the same list has the
// same ID on every node and across compilations.
type L7ID uint32

// L7List is the allow rules at one policy map point with their L7 rules,
// sorted by RuleID.
type L7List []L7Allow

// L7Allow is one allow rule at a point; Rules nil allows every request.
type L7Allow struct {
	Rule  RuleID            `json:"rule"`
	Audit bool              `json:"audit,omitempty"`
	Rules *v1alpha1.L7Rules `json:"rules,omitempty"`
}
