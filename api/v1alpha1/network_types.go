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
	"k8s.io/apimachinery/pkg/util/intstr"
)

// NetworkPolicy selects endpoints (pods) in one namespace and says which
// traffic they may send and receive, in the shape of Cilium's
// CiliumNetworkPolicy. An endpoint selected by at least one policy in a
// direction denies by default in that direction; allow rules add up; deny
// rules win over allow rules.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:scope=Namespaced,shortName=pnp,categories=palisade
// +kubebuilder:printcolumn:name="Mode",type=string,JSONPath=`.spec.mode`,description="enforce (default when empty) or audit"
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Enforced",type=string,JSONPath=`.status.conditions[?(@.type=="Enforced")].status`
// +kubebuilder:printcolumn:name="Drifted",type=string,JSONPath=`.status.conditions[?(@.type=="Drifted")].status`,priority=1
// +kubebuilder:printcolumn:name="Status",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].message`,priority=1
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type NetworkPolicy struct {
	metav1.TypeMeta `json:",inline"`

	// metadata is the object's metadata; a policy sets name, namespace,
	// labels and annotations.
	// +optional
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// spec holds the policy's rules.
	// +required
	Spec NetworkPolicySpec `json:"spec"`

	// status is the policy's observed state.
	// +optional
	Status PolicyStatus `json:"status,omitzero"`
}

// NetworkPolicyList is a list of NetworkPolicy objects.
//
// +kubebuilder:object:root=true
type NetworkPolicyList struct {
	metav1.TypeMeta `json:",inline"`
	// metadata is the list's metadata.
	// +optional
	metav1.ListMeta `json:"metadata,omitempty"`
	// items are the policies.
	Items []NetworkPolicy `json:"items"`
}

// ClusterNetworkPolicy is a cluster-wide NetworkPolicy. With nodeSelector
// instead of endpointSelector it is a host firewall for the selected nodes.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:scope=Cluster,shortName=pcnp,categories=palisade
// +kubebuilder:printcolumn:name="Mode",type=string,JSONPath=`.spec.mode`,description="enforce (default when empty) or audit"
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Enforced",type=string,JSONPath=`.status.conditions[?(@.type=="Enforced")].status`
// +kubebuilder:printcolumn:name="Drifted",type=string,JSONPath=`.status.conditions[?(@.type=="Drifted")].status`,priority=1
// +kubebuilder:printcolumn:name="Status",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].message`,priority=1
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type ClusterNetworkPolicy struct {
	metav1.TypeMeta `json:",inline"`

	// metadata is the object's metadata; a policy sets name, labels and
	// annotations.
	// +optional
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// spec holds the policy's rules.
	// +required
	Spec ClusterNetworkPolicySpec `json:"spec"`

	// status is the policy's observed state.
	// +optional
	Status PolicyStatus `json:"status,omitzero"`
}

// ClusterNetworkPolicyList is a list of ClusterNetworkPolicy objects.
//
// +kubebuilder:object:root=true
type ClusterNetworkPolicyList struct {
	metav1.TypeMeta `json:",inline"`
	// metadata is the list's metadata.
	// +optional
	metav1.ListMeta `json:"metadata,omitempty"`
	// items are the policies.
	Items []ClusterNetworkPolicy `json:"items"`
}

// NetworkPolicySpec is the body of a namespaced network policy.
type NetworkPolicySpec struct {
	// RuleSet holds the rules; its fields are the spec's own.
	RuleSet `json:",inline"`

	// endpointSelector selects the pods of the policy's namespace that the
	// rules apply to; {} selects every pod in the namespace.
	// +required
	EndpointSelector metav1.LabelSelector `json:"endpointSelector"`
}

// ClusterNetworkPolicySpec is the body of a cluster-wide network policy:
// exactly one of endpointSelector (pods in any namespace) and nodeSelector
// (the nodes themselves: a host firewall).
//
// +kubebuilder:validation:XValidation:rule="has(self.endpointSelector) != has(self.nodeSelector)",message="exactly one of endpointSelector and nodeSelector must be set (PAL105)"
type ClusterNetworkPolicySpec struct {
	// RuleSet holds the rules; its fields are the spec's own.
	RuleSet `json:",inline"`

	// endpointSelector selects pods in every namespace.
	// +optional
	EndpointSelector *metav1.LabelSelector `json:"endpointSelector,omitempty"`

	// nodeSelector selects nodes by their labels (host firewall).
	// +optional
	NodeSelector *metav1.LabelSelector `json:"nodeSelector,omitempty"`
}

// RuleSet holds the rules shared by both network policy kinds.
type RuleSet struct {
	// description is free text for people.
	// +optional
	Description *string `json:"description,omitempty"`

	// mode: "enforce" (default when omitted) or "audit".
	// +optional
	Mode EnforcementMode `json:"mode,omitempty"`

	// ingress rules allow traffic into the selected endpoints.
	// +optional
	Ingress []IngressRule `json:"ingress,omitzero"`

	// ingressDeny rules deny traffic into the selected endpoints; they win
	// over every allow rule.
	// +optional
	IngressDeny []IngressDenyRule `json:"ingressDeny,omitzero"`

	// egress rules allow traffic out of the selected endpoints.
	// +optional
	Egress []EgressRule `json:"egress,omitzero"`

	// egressDeny rules deny traffic out of the selected endpoints.
	// +optional
	EgressDeny []EgressDenyRule `json:"egressDeny,omitzero"`

	// enableDefaultDeny controls whether selecting an endpoint makes it
	// deny by default in a direction. When a direction is not set, it is
	// true if the policy has rules (allow or deny) in that direction and
	// false otherwise, as in Cilium. Set false to add allows to an
	// endpoint without isolating it.
	// +optional
	EnableDefaultDeny *DefaultDeny `json:"enableDefaultDeny,omitempty"`
}

// DefaultDeny switches default deny per direction.
type DefaultDeny struct {
	// ingress: default deny for incoming traffic.
	// +optional
	Ingress *bool `json:"ingress,omitempty"`

	// egress: default deny for outgoing traffic.
	// +optional
	Egress *bool `json:"egress,omitempty"`
}

// Entity names a reserved identity: traffic from or to something that is
// not a pod selected by labels.
//
//   - world: anything outside the cluster
//   - host: the local node, including host-network pods
//   - remote-node: any other node of the cluster
//   - cluster: every endpoint of the cluster (pods, hosts, nodes)
//   - kube-apiserver: the Kubernetes API server
//   - unmanaged: pods not managed by Palisade
//   - all: everything (world and cluster)
//
// +kubebuilder:validation:Enum=world;host;remote-node;cluster;kube-apiserver;unmanaged;all
type Entity string

// The reserved entities.
const (
	// EntityWorld is anything outside the cluster.
	EntityWorld Entity = "world"
	// EntityHost is the local node, including host-network pods.
	EntityHost Entity = "host"
	// EntityRemoteNode is any other node of the cluster.
	EntityRemoteNode Entity = "remote-node"
	// EntityCluster is every endpoint of the cluster (pods, hosts, nodes).
	EntityCluster Entity = "cluster"
	// EntityKubeAPIServer is the Kubernetes API server.
	EntityKubeAPIServer Entity = "kube-apiserver"
	// EntityUnmanaged is the pods not managed by Palisade.
	EntityUnmanaged Entity = "unmanaged"
	// EntityAll is everything (world and cluster).
	EntityAll Entity = "all"
)

// CIDR is an IPv4 or IPv6 prefix in canonical form, e.g. "10.0.0.0/8";
// a plain address means a single host (/32 or /128).
//
// The CRD checks only the shape; the schema and the validator check the
// address. (A CEL isCIDR/isIP rule here is what it should be, but CIDRs sit
// in lists of lists without maxItems, and the API server's cost estimate
// for such a rule exceeds its budget, so it refuses the CRD.)
//
// +kubebuilder:validation:Pattern=`^[0-9A-Fa-f:.]+(%[-0-9A-Za-z_.]+)?(/[0-9]{1,3})?$`
type CIDR string

// CIDRRule is a CIDR with exceptions: the except prefixes, which must lie
// inside cidr, are removed from it.
type CIDRRule struct {
	// cidr is the prefix the rule matches.
	// +required
	CIDR CIDR `json:"cidr"`

	// except lists sub-prefixes of cidr that the rule does not match.
	// +optional
	Except []CIDR `json:"except,omitzero"`
}

// Protocol is an L4 protocol; ANY matches TCP, UDP and SCTP.
// +kubebuilder:validation:Enum=TCP;UDP;SCTP;ANY
type Protocol string

// The L4 protocols.
const (
	// ProtocolTCP is TCP.
	ProtocolTCP Protocol = "TCP"
	// ProtocolUDP is UDP.
	ProtocolUDP Protocol = "UDP"
	// ProtocolSCTP is SCTP.
	ProtocolSCTP Protocol = "SCTP"
	// ProtocolAny matches TCP, UDP and SCTP (the default when omitted).
	ProtocolAny Protocol = "ANY"
)

// PortProtocol is a port, or a range with endPort, and a protocol.
//
// The CEL rules mirror the schema's ranges; the port name's pattern is left
// to the schema and the validator, as a regular expression on an unbounded
// string inside nested lists exceeds the API server's CEL cost budget.
//
// +kubebuilder:validation:XValidation:rule="type(self.port) == string || (self.port >= 0 && self.port <= 65535)",message="port must be a number from 0 to 65535 or a port name"
// +kubebuilder:validation:XValidation:rule="type(self.port) == int || (size(self.port) >= 1 && size(self.port) <= 15)",message="a port name has 1 to 15 characters"
// +kubebuilder:validation:XValidation:rule="!has(self.endPort) || (type(self.port) == int && self.endPort >= self.port)",message="endPort needs a numeric port and must not be less than it"
type PortProtocol struct {
	// port number (0 means every port) or a named container port.
	// +required
	// +kubebuilder:validation:XIntOrString
	Port intstr.IntOrString `json:"port"`

	// endPort makes port..endPort an inclusive range; port must be a number.
	// +optional
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=65535
	EndPort *int32 `json:"endPort,omitempty"`

	// protocol defaults to ANY when omitted.
	// +optional
	Protocol Protocol `json:"protocol,omitempty"`
}

// PortRule allows ports and optionally restricts them with L7 rules.
type PortRule struct {
	// ports the rule applies to; omitted means every port.
	// +optional
	Ports []PortProtocol `json:"ports,omitzero"`

	// rules restrict allowed traffic on these ports to matching L7
	// requests; one protocol per port rule.
	// +optional
	Rules *L7Rules `json:"rules,omitempty"`
}

// PortDenyRule lists ports for a deny rule (deny rules carry no L7 rules).
type PortDenyRule struct {
	// ports the deny rule applies to; omitted means every port.
	// +optional
	Ports []PortProtocol `json:"ports,omitzero"`
}

// ICMPRule allows ICMP messages by type.
type ICMPRule struct {
	// fields lists ICMP types, each for one address family.
	// +required
	// +kubebuilder:validation:MinItems=1
	Fields []ICMPField `json:"fields"`
}

// ICMPFamily is the address family of an ICMP type: IPv4 (ICMP) or IPv6
// (ICMPv6).
// +kubebuilder:validation:Enum=IPv4;IPv6
type ICMPFamily string

// The ICMP address families.
const (
	// ICMPFamilyIPv4 is ICMP (the default when omitted).
	ICMPFamilyIPv4 ICMPFamily = "IPv4"
	// ICMPFamilyIPv6 is ICMPv6.
	ICMPFamilyIPv6 ICMPFamily = "IPv6"
)

// ICMPField is one ICMP or ICMPv6 type, by number or by name
// (e.g. "EchoRequest").
//
// +kubebuilder:validation:XValidation:rule="type(self.type) == string ? self.type in ['EchoReply', 'DestinationUnreachable', 'Redirect', 'EchoRequest', 'RouterAdvertisement', 'RouterSelection', 'TimeExceeded', 'ParameterProblem', 'Timestamp', 'TimestampReply', 'Photuris', 'ExtendedEchoRequest', 'ExtendedEchoReply', 'PacketTooBig', 'MulticastListenerQuery', 'MulticastListenerReport', 'MulticastListenerDone', 'RouterSolicitation', 'NeighborSolicitation', 'NeighborAdvertisement'] : (self.type >= 0 && self.type <= 255)",message="type must be an ICMP type number from 0 to 255 or a known ICMP type name"
type ICMPField struct {
	// family: IPv4 (ICMP, default when omitted) or IPv6 (ICMPv6).
	// +optional
	Family ICMPFamily `json:"family,omitempty"`

	// type is the ICMP type number (0-255) or its name.
	// +required
	// +kubebuilder:validation:XIntOrString
	Type intstr.IntOrString `json:"type"`
}

// FQDNSelector matches DNS names that endpoints resolved.
// Exactly one of matchName and matchPattern is set (PAL302).
//
// +kubebuilder:validation:XValidation:rule="has(self.matchName) != has(self.matchPattern)",message="exactly one of matchName and matchPattern must be set (PAL302)"
type FQDNSelector struct {
	// matchName is an exact DNS name.
	// +optional
	MatchName DNSName `json:"matchName,omitempty"`

	// matchPattern is a DNS name where "*" matches any characters within
	// one label, e.g. "*.example.com".
	// +optional
	MatchPattern DNSPattern `json:"matchPattern,omitempty"`
}

// DNSName is a fully qualified DNS name, optionally with a trailing dot.
//
// +kubebuilder:validation:MaxLength=253
// +kubebuilder:validation:Pattern=`^([A-Za-z0-9_]([-A-Za-z0-9_]*[A-Za-z0-9_])?\.)*[A-Za-z0-9_]([-A-Za-z0-9_]*[A-Za-z0-9_])?\.?$`
type DNSName string

// DNSPattern is a DNS name that may contain "*" wildcards. The fine rules
// (where "*" may stand) are checked by the validator (PAL3xx).
//
// +kubebuilder:validation:MaxLength=253
// +kubebuilder:validation:Pattern=`^[-A-Za-z0-9_.*]+$`
type DNSPattern string

// IngressRule allows traffic from peers to the selected endpoints.
// Peers are ORed across fields; toPorts and icmps restrict the traffic.
type IngressRule struct {
	// fromEndpoints selects peer pods; {} selects every pod in the
	// policy's namespace (or the cluster, for cluster policies). Use the
	// label "k8s:io.kubernetes.pod.namespace" to select other namespaces.
	// +optional
	FromEndpoints []metav1.LabelSelector `json:"fromEndpoints,omitzero"`

	// fromCIDR lists peer prefixes outside the cluster.
	// +optional
	FromCIDR []CIDR `json:"fromCIDR,omitzero"`

	// fromCIDRSet lists peer prefixes with exceptions.
	// +optional
	FromCIDRSet []CIDRRule `json:"fromCIDRSet,omitzero"`

	// fromEntities lists reserved peers.
	// +optional
	FromEntities []Entity `json:"fromEntities,omitzero"`

	// toPorts restricts the rule to these ports (and L7 rules).
	// +optional
	ToPorts []PortRule `json:"toPorts,omitzero"`

	// icmps restricts the rule to these ICMP types.
	// +optional
	ICMPs []ICMPRule `json:"icmps,omitzero"`
}

// IngressDenyRule denies traffic from peers to the selected endpoints.
type IngressDenyRule struct {
	// fromEndpoints selects peer pods.
	// +optional
	FromEndpoints []metav1.LabelSelector `json:"fromEndpoints,omitzero"`

	// fromCIDR lists peer prefixes.
	// +optional
	FromCIDR []CIDR `json:"fromCIDR,omitzero"`

	// fromCIDRSet lists peer prefixes with exceptions.
	// +optional
	FromCIDRSet []CIDRRule `json:"fromCIDRSet,omitzero"`

	// fromEntities lists reserved peers.
	// +optional
	FromEntities []Entity `json:"fromEntities,omitzero"`

	// toPorts restricts the deny to these ports.
	// +optional
	ToPorts []PortDenyRule `json:"toPorts,omitzero"`

	// icmps restricts the deny to these ICMP types.
	// +optional
	ICMPs []ICMPRule `json:"icmps,omitzero"`
}

// EgressRule allows traffic from the selected endpoints to peers.
type EgressRule struct {
	// toEndpoints selects peer pods.
	// +optional
	ToEndpoints []metav1.LabelSelector `json:"toEndpoints,omitzero"`

	// toCIDR lists peer prefixes.
	// +optional
	ToCIDR []CIDR `json:"toCIDR,omitzero"`

	// toCIDRSet lists peer prefixes with exceptions.
	// +optional
	ToCIDRSet []CIDRRule `json:"toCIDRSet,omitzero"`

	// toEntities lists reserved peers.
	// +optional
	ToEntities []Entity `json:"toEntities,omitzero"`

	// toFQDNs selects peers by the DNS names the endpoint resolved; it
	// needs a DNS L7 rule that lets the endpoint resolve them.
	// +optional
	ToFQDNs []FQDNSelector `json:"toFQDNs,omitzero"`

	// toPorts restricts the rule to these ports (and L7 rules).
	// +optional
	ToPorts []PortRule `json:"toPorts,omitzero"`

	// icmps restricts the rule to these ICMP types.
	// +optional
	ICMPs []ICMPRule `json:"icmps,omitzero"`
}

// EgressDenyRule denies traffic from the selected endpoints to peers.
type EgressDenyRule struct {
	// toEndpoints selects peer pods.
	// +optional
	ToEndpoints []metav1.LabelSelector `json:"toEndpoints,omitzero"`

	// toCIDR lists peer prefixes.
	// +optional
	ToCIDR []CIDR `json:"toCIDR,omitzero"`

	// toCIDRSet lists peer prefixes with exceptions.
	// +optional
	ToCIDRSet []CIDRRule `json:"toCIDRSet,omitzero"`

	// toEntities lists reserved peers.
	// +optional
	ToEntities []Entity `json:"toEntities,omitzero"`

	// toPorts restricts the deny to these ports.
	// +optional
	ToPorts []PortDenyRule `json:"toPorts,omitzero"`

	// icmps restricts the deny to these ICMP types.
	// +optional
	ICMPs []ICMPRule `json:"icmps,omitzero"`
}
