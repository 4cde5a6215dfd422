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

// Package flows is the flow record: one verdict of the datapath, resolved
// to workloads, policies, Git revisions and file:line. The agent's
// observer produces records, `palisadectl observe` prints them as JSON
// lines, and `palisadectl plan` replays them. The JSON form is a stable,
// documented interface (docs/flows.md): fields are added, never renamed.
//
// The package is pure: no Kubernetes client, no kernel.
package flows

import "time"

// Verdict is what the datapath did with a flow.
type Verdict string

// The verdicts.
const (
	// Forwarded: allowed by policy (reported when the connection is
	// created, not per packet).
	Forwarded Verdict = "forwarded"
	// Dropped: refused; always reported (rate limiting is counted).
	Dropped Verdict = "dropped"
	// Audit: allowed, but an audit-mode policy would have dropped it.
	Audit Verdict = "audit"
	// Error: the datapath could not decide and refused (e.g. no state).
	Error Verdict = "error"
)

// DropReason says why a flow was dropped. The values are documented in
// docs/flows.md.
type DropReason string

// The drop reasons.
const (
	ExplicitDeny    DropReason = "explicit-deny"        // a deny rule matched
	DefaultDeny     DropReason = "default-deny"         // isolated, no allow rule matched
	L7Refused       DropReason = "l7-refused"           // an L7 rule list refused the request
	Malformed       DropReason = "malformed"            // the parser rejected the packet
	NoEndpoint      DropReason = "no-endpoint"          // fail closed: the workload has no entry (maps full, not programmed)
	NoState         DropReason = "no-state"             // fail closed: no policy generation yet
	FailClosedFull  DropReason = "fail-closed-map-full" // the workload's policy did not fit the maps
	IdentityPending DropReason = "identity-pending"     // the workload has no Identity yet
)

// Endpoint is one end of a flow: a workload, an entity (world, host,
// remote-node, kube-apiserver, unmanaged), or a bare address.
type Endpoint struct {
	IP        string            `json:"ip"`
	Port      uint16            `json:"port,omitempty"`
	Namespace string            `json:"namespace,omitempty"`
	Pod       string            `json:"pod,omitempty"`
	Labels    map[string]string `json:"labels,omitempty"`
	Identity  uint32            `json:"identity,omitempty"`
	// Entity is set for reserved identities, e.g. "world".
	Entity string `json:"entity,omitempty"`
}

// Policy is the rule that decided a flow, where it comes from.
type Policy struct {
	Kind      string `json:"kind"`
	Namespace string `json:"namespace,omitempty"`
	Name      string `json:"name"`
	// Path is the rule's place in the object, e.g. "spec.ingress[1]".
	Path     string `json:"path,omitempty"`
	File     string `json:"file,omitempty"`
	Line     int    `json:"line,omitempty"`
	Column   int    `json:"column,omitempty"`
	Revision string `json:"revision,omitempty"`
	// PolicySet is "namespace/name" of the set that applied the policy.
	PolicySet string `json:"policySet,omitempty"`
}

// Flow is one flow record.
type Flow struct {
	Time        time.Time `json:"time"`
	Node        string    `json:"node"`
	Source      Endpoint  `json:"source"`
	Destination Endpoint  `json:"destination"`
	// Protocol is TCP, UDP, SCTP, ICMP or ICMPv6.
	Protocol string `json:"protocol"`
	// ICMPType is the ICMP type, for ICMP flows.
	ICMPType *uint8 `json:"icmpType,omitempty"`
	// TCPFlags are the flags of the packet, e.g. "SYN".
	TCPFlags string `json:"tcpFlags,omitempty"`
	// Direction is the side the verdict was taken on: "ingress" (of the
	// destination) or "egress" (of the source).
	Direction  string     `json:"direction"`
	Verdict    Verdict    `json:"verdict"`
	DropReason DropReason `json:"dropReason,omitempty"`
	// Policy is the deciding rule; nil for a default-deny drop, whose
	// isolating policies are in Isolating.
	Policy    *Policy  `json:"policy,omitempty"`
	Isolating []Policy `json:"isolating,omitempty"`
	// Generation and RuleID are the datapath's, for debugging.
	Generation uint64 `json:"generation,omitempty"`
	RuleID     uint32 `json:"ruleID,omitempty"`
}
