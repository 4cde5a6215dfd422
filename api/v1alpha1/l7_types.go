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

// L7Rules restricts a port rule to matching application requests. Only one
// protocol may be set per port rule. Every rule here is compiled into the
// kernel's tables; what cannot be matched there is a validation error.
type L7Rules struct {
	// http rules match HTTP/1.x requests; a request is allowed if any
	// rule matches.
	// +optional
	HTTP []HTTPRule `json:"http,omitzero"`

	// dns rules match DNS queries by name.
	// +optional
	DNS []DNSRule `json:"dns,omitzero"`

	// kafka rules match Kafka requests.
	// +optional
	Kafka []KafkaRule `json:"kafka,omitzero"`
}

// HTTPMethod is an HTTP request method.
// +kubebuilder:validation:Enum=GET;HEAD;POST;PUT;DELETE;CONNECT;OPTIONS;TRACE;PATCH
type HTTPMethod string

// HTTPRule matches an HTTP/1.x request; every field set must match.
type HTTPRule struct {
	// method is the request method; omitted matches every method.
	// +optional
	Method HTTPMethod `json:"method,omitempty"`

	// path is an anchored regular expression (RE2 subset that the datapath
	// compiles to a DFA, see PAL2xx) matched against the request path.
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=256
	Path string `json:"path,omitempty"`

	// host is the exact Host header value, or a pattern with one leading
	// "*." wildcard label.
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Host string `json:"host,omitempty"`

	// headers lists headers that must be present, by name, or with an
	// exact value as "Name: value".
	// +optional
	Headers []HTTPHeader `json:"headers,omitzero"`
}

// HTTPHeader is "Name" (present) or "Name: value" (present with value).
//
// +kubebuilder:validation:MaxLength=256
// +kubebuilder:validation:Pattern="^[!#$%&'*+.^_\x60|~0-9A-Za-z-]+(: ?.*)?$"
type HTTPHeader string

// DNSRule matches DNS queries. Exactly one of matchName and matchPattern is
// set (PAL302).
//
// +kubebuilder:validation:XValidation:rule="has(self.matchName) != has(self.matchPattern)",message="exactly one of matchName and matchPattern must be set (PAL302)"
type DNSRule struct {
	// matchName is an exact query name.
	// +optional
	MatchName DNSName `json:"matchName,omitempty"`

	// matchPattern is a query name where "*" matches within one label, or
	// "*" alone for every name.
	// +optional
	MatchPattern DNSPattern `json:"matchPattern,omitempty"`
}

// KafkaRole is a shorthand for the API keys a Kafka client role needs.
// +kubebuilder:validation:Enum=produce;consume
type KafkaRole string

// The Kafka roles.
const (
	// KafkaRoleProduce allows the requests a producer needs.
	KafkaRoleProduce KafkaRole = "produce"
	// KafkaRoleConsume allows the requests a consumer needs.
	KafkaRoleConsume KafkaRole = "consume"
)

// KafkaAPIKey names the Kafka API keys the datapath understands.
// +kubebuilder:validation:Enum=produce;fetch;offsets;metadata;leaderandisr;stopreplica;updatemetadata;controlledshutdown;offsetcommit;offsetfetch;findcoordinator;joingroup;heartbeat;leavegroup;syncgroup;describegroups;listgroups;saslhandshake;apiversions;createtopics;deletetopics
type KafkaAPIKey string

// KafkaRule matches Kafka requests; every field set must match. role and
// apiKey are mutually exclusive (PAL402).
//
// +kubebuilder:validation:XValidation:rule="!(has(self.role) && has(self.apiKey))",message="role and apiKey are mutually exclusive (PAL402)"
type KafkaRule struct {
	// role is "produce" or "consume", a shorthand for the API keys each
	// role needs.
	// +optional
	Role KafkaRole `json:"role,omitempty"`

	// apiKey is a Kafka API key name, e.g. "produce", "fetch", "metadata".
	// +optional
	APIKey KafkaAPIKey `json:"apiKey,omitempty"`

	// apiVersion is the request's API version number as a string.
	// +optional
	// +kubebuilder:validation:Pattern=`^[0-9]+$`
	APIVersion string `json:"apiVersion,omitempty"`

	// clientID is the exact client ID.
	// +optional
	// +kubebuilder:validation:Pattern=`^[A-Za-z0-9._-]{1,255}$`
	ClientID string `json:"clientID,omitempty"`

	// topic is the exact topic name.
	// +optional
	// +kubebuilder:validation:Pattern=`^[A-Za-z0-9._-]{1,249}$`
	Topic string `json:"topic,omitempty"`
}
