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

package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// NodeEnforcement is one node's report of what it enforces: the policy
// set revisions compiled into its datapath, map usage, its last
// verification and any kernel drift. The node's agent writes it; the
// PolicySet controller aggregates it.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:scope=Cluster,shortName=pne,categories=palisade
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Drift",type=string,JSONPath=`.status.conditions[?(@.type=="Drifted")].status`
// +kubebuilder:printcolumn:name="Verified",type=date,JSONPath=`.status.lastVerifiedTime`
// +kubebuilder:printcolumn:name="Status",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].message`,priority=1
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
// +kubebuilder:validation:XValidation:rule="self.metadata.name == self.spec.nodeName",message="metadata.name must equal spec.nodeName"
type NodeEnforcement struct {
	metav1.TypeMeta `json:",inline"`
	// metadata is the object's metadata; its name is the node's.
	// +optional
	metav1.ObjectMeta `json:"metadata,omitempty"`
	// spec names the node.
	// +required
	Spec NodeEnforcementSpec `json:"spec"`
	// status is the node's report.
	// +optional
	Status NodeEnforcementStatus `json:"status,omitzero"`
}

// NodeEnforcementList is a list of NodeEnforcement objects.
//
// +kubebuilder:object:root=true
type NodeEnforcementList struct {
	metav1.TypeMeta `json:",inline"`
	// metadata is the list's metadata.
	// +optional
	metav1.ListMeta `json:"metadata,omitempty"`
	// items are the reports.
	Items []NodeEnforcement `json:"items"`
}

// NodeEnforcementSpec names the node reported on.
type NodeEnforcementSpec struct {
	// nodeName is the node's name.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="nodeName is immutable"
	NodeName string `json:"nodeName"`
}

// PolicySetEnforcement is the revision of one PolicySet a node enforces.
type PolicySetEnforcement struct {
	// namespace of the PolicySet.
	// +required
	Namespace string `json:"namespace"`
	// name of the PolicySet.
	// +required
	Name string `json:"name"`
	// revision of the set compiled into the datapath.
	// +required
	Revision string `json:"revision"`
	// policies is how many of the set's policies concern this node.
	// +optional
	Policies int32 `json:"policies,omitempty"`
	// generation is the datapath policy generation that enforces this
	// revision: it grows by one with every atomic switch of the node's
	// maps.
	// +optional
	// +kubebuilder:validation:Minimum=0
	Generation int64 `json:"generation,omitempty"`
	// enforced is how many of the policies that concern this node it
	// enforces fully, every rule as written.
	// +optional
	Enforced int32 `json:"enforced,omitempty"`
	// partial is how many it enforces in part: objects listed with
	// state Partial.
	// +optional
	Partial int32 `json:"partial,omitempty"`
	// notEnforced is how many it does not enforce at all: objects listed
	// with state NotEnforced.
	// +optional
	NotEnforced int32 `json:"notEnforced,omitempty"`
	// objects lists the set's objects that concern this node and that it
	// does not enforce fully, with what is missing (at most
	// MaxObjectsPerSet, and MaxObjectsPerNode over all sets; the counts
	// above cover every object).
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=64
	Objects []ObjectEnforcement `json:"objects,omitempty"`
	// pendingRevision is a newer revision whose objects are in the API but
	// not all of them yet (a PolicySet mid-apply): the node keeps
	// enforcing revision until pendingRevision is complete.
	// +optional
	PendingRevision string `json:"pendingRevision,omitempty"`
}

// MaxObjectsPerSet bounds PolicySetEnforcement.objects, and
// MaxObjectsPerNode the objects listed over all sets of one
// NodeEnforcement, so that its status stays far below the API server's
// object size limit however many sets a node enforces.
const (
	MaxObjectsPerSet  = 64
	MaxObjectsPerNode = 256
)

// ObjectEnforcementState is how much of one policy object a node enforces.
// +kubebuilder:validation:Enum=Enforced;Partial;NotEnforced
type ObjectEnforcementState string

const (
	// ObjectEnforced: every rule of the object is enforced as written.
	ObjectEnforced ObjectEnforcementState = "Enforced"
	// ObjectPartial: some of the object's rules or fields are not
	// enforced as written; the message says which and what the kernel
	// does instead.
	ObjectPartial ObjectEnforcementState = "Partial"
	// ObjectNotEnforced: nothing of the object is enforced.
	ObjectNotEnforced ObjectEnforcementState = "NotEnforced"
)

// ObjectEnforcement is what a node does with one policy object.
type ObjectEnforcement struct {
	// kind of the object, e.g. NetworkPolicy or TracingPolicy.
	// +required
	Kind string `json:"kind"`
	// namespace of the object; empty for cluster-scoped kinds.
	// +optional
	Namespace string `json:"namespace,omitempty"`
	// name of the object.
	// +required
	Name string `json:"name"`
	// state is Enforced, Partial or NotEnforced.
	// +required
	State ObjectEnforcementState `json:"state"`
	// reason is a CamelCase reason: NotSupported (this version's
	// datapath lacks the feature), HookUnavailable (the kernel lacks it),
	// LoadFailed (the verifier refused a program; the message holds its
	// log's tail), FailClosed.
	// +required
	Reason string `json:"reason"`
	// message says what is not enforced and what the kernel does instead,
	// e.g. "HTTP rules on 80/TCP are not enforced: the kernel passes every
	// request on the port".
	// +required
	// +kubebuilder:validation:MaxLength=2048
	Message string `json:"message"`
}

// KernelDriftKind is what part of the kernel state drifted.
// +kubebuilder:validation:Enum=MapEntry;Program;Pin
type KernelDriftKind string

const (
	// KernelDriftMapEntry: a map entry was changed, added or deleted.
	KernelDriftMapEntry KernelDriftKind = "MapEntry"
	// KernelDriftProgram: a program was detached from an interface or
	// replaced by another.
	KernelDriftProgram KernelDriftKind = "Program"
	// KernelDriftPin: a pin under the agent's bpffs directory was removed.
	KernelDriftPin KernelDriftKind = "Pin"
)

// KernelDrift is one difference the verify loop found between the kernel
// and the desired state.
type KernelDrift struct {
	// time the verify loop found it.
	// +required
	Time metav1.Time `json:"time"`
	// kind of state that drifted.
	// +required
	Kind KernelDriftKind `json:"kind"`
	// what drifted, for people: the map and entry, the interface and hook,
	// or the pin path, with the expected and the found value.
	// +required
	// +kubebuilder:validation:MaxLength=1024
	What string `json:"what"`
	// repaired is true when the agent restored the desired state.
	// +required
	Repaired bool `json:"repaired"`
	// message says why a repair failed.
	// +optional
	// +kubebuilder:validation:MaxLength=1024
	Message string `json:"message,omitempty"`
}

// EndpointError is an endpoint the node cannot enforce policy for as Git
// says; the datapath fails closed for it.
type EndpointError struct {
	// endpoint is the workload, as "<namespace>/<pod>".
	// +required
	Endpoint string `json:"endpoint"`
	// reason is a CamelCase reason, e.g. MapFull.
	// +required
	Reason string `json:"reason"`
	// message says what failed, for people.
	// +required
	// +kubebuilder:validation:MaxLength=1024
	Message string `json:"message"`
}

// MapUsage is the fill of one eBPF map.
type MapUsage struct {
	// name of the map.
	// +required
	Name string `json:"name"`
	// entries in use.
	// +required
	// +kubebuilder:validation:Minimum=0
	Entries int64 `json:"entries"`
	// maxEntries the map holds.
	// +required
	// +kubebuilder:validation:Minimum=0
	MaxEntries int64 `json:"maxEntries"`
}

// FQDNSummary is what the node's datapath learned from DNS answers for
// toFQDNs rules (docs/datapath.md, "toFQDNs"): the kernel's name -> address
// table, bounded, and what it could not learn.
type FQDNSummary struct {
	// names is how many names the table holds.
	// +required
	// +kubebuilder:validation:Minimum=0
	Names int64 `json:"names"`
	// addresses is how many (name, address) entries the table holds.
	// +required
	// +kubebuilder:validation:Minimum=0
	Addresses int64 `json:"addresses"`
	// table is the learned names (lower-case, no trailing dot) and their
	// unexpired addresses: at most MaxFQDNNamesListed names of at most
	// MaxFQDNAddrsListed addresses each, in name order. It is the file
	// `palisadectl explain --dns` reads.
	// +optional
	Table map[string][]string `json:"table,omitempty"`
	// truncated says that table lists less than the kernel holds.
	// +optional
	Truncated bool `json:"truncated,omitempty"`
	// capped are names that reached the cap of addresses per name: an
	// answer's further addresses were not learned (connections to them are
	// dropped until an entry expires). At most MaxFQDNNamesListed.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=256
	Capped []string `json:"capped,omitempty"`
	// notLearned counts, since the datapath's maps were created, the
	// answers or addresses the kernel did not learn, by reason
	// (cap, full, names-per-address, unsolicited, malformed, ...).
	// +optional
	NotLearned map[string]int64 `json:"notLearned,omitempty"`
}

// Bounds of FQDNSummary's lists.
const (
	MaxFQDNNamesListed = 256
	MaxFQDNAddrsListed = 64
)

// NodeEnforcementStatus is a node's report.
type NodeEnforcementStatus struct {
	// observedGeneration is the metadata.generation the status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// conditions: Ready, Enforced, Drifted.
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`

	// policySets are the set revisions the node enforces.
	// +optional
	// +listType=map
	// +listMapKey=namespace
	// +listMapKey=name
	PolicySets []PolicySetEnforcement `json:"policySets,omitempty"`

	// maps is the usage of each eBPF map.
	// +optional
	// +listType=map
	// +listMapKey=name
	Maps []MapUsage `json:"maps,omitempty"`

	// lastVerifiedTime is when the verify loop last compared the kernel
	// with the desired state.
	// +optional
	LastVerifiedTime *metav1.Time `json:"lastVerifiedTime,omitempty"`

	// driftRepairs counts kernel drift found and repaired since the agent
	// started.
	// +optional
	DriftRepairs int64 `json:"driftRepairs,omitempty"`

	// drifts are the most recent kernel drifts, newest first (at most
	// MaxKernelDrifts).
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=32
	Drifts []KernelDrift `json:"drifts,omitempty"`

	// errors are endpoints the node cannot enforce as Git says.
	// +optional
	// +listType=map
	// +listMapKey=endpoint
	Errors []EndpointError `json:"errors,omitempty"`

	// flowsAddress is host:port of the agent's flow observer (gRPC), which
	// the relay fans in from; empty when the observer is off.
	// +optional
	// +kubebuilder:validation:MaxLength=256
	FlowsAddress string `json:"flowsAddress,omitempty"`

	// fqdn is the toFQDNs table the node's kernel learned from DNS
	// answers; absent when it holds nothing and learned nothing.
	// +optional
	FQDN *FQDNSummary `json:"fqdn,omitempty"`
}

// MaxKernelDrifts is how many drifts a NodeEnforcement keeps.
const MaxKernelDrifts = 32
