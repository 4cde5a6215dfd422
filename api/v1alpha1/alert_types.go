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
	"k8s.io/apimachinery/pkg/runtime"
)

// Alert sends notifications to one receiver, a generic webhook (JSON,
// signed with HMAC-SHA256) or a Slack-compatible incoming webhook, about
// the PolicySets of its namespace (a failure, a drift, a recovery) and,
// when asked, about every kernel drift a node's agent records. It is
// Flux's Provider and Alert in one kind: the receiver's address and key
// are in a Secret, what to send about is in the spec.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:scope=Namespaced,shortName=palert,categories=palisade
// +kubebuilder:printcolumn:name="Type",type=string,JSONPath=`.spec.type`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Last Sent",type=date,JSONPath=`.status.lastSent.time`
// +kubebuilder:printcolumn:name="Suspended",type=boolean,JSONPath=`.spec.suspend`,priority=1
// +kubebuilder:printcolumn:name="Status",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].message`,priority=1
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type Alert struct {
	metav1.TypeMeta `json:",inline"`
	// metadata is the object's metadata.
	// +optional
	metav1.ObjectMeta `json:"metadata,omitempty"`
	// spec says where to send and about what.
	// +required
	Spec AlertSpec `json:"spec"`
	// status is the last delivery, the conditions and what was sent.
	// +optional
	Status AlertStatus `json:"status,omitzero"`
}

// AlertList is a list of Alert objects.
//
// +kubebuilder:object:root=true
type AlertList struct {
	metav1.TypeMeta `json:",inline"`
	// metadata is the list's metadata.
	// +optional
	metav1.ListMeta `json:"metadata,omitempty"`
	// items are the alerts.
	Items []Alert `json:"items"`
}

// AlertType is the kind of receiver.
// +kubebuilder:validation:Enum=generic;slack
type AlertType string

const (
	// AlertTypeGeneric posts the notification as JSON, signed with
	// HMAC-SHA256 in the X-Palisade-Signature header.
	AlertTypeGeneric AlertType = "generic"
	// AlertTypeSlack posts a Slack message (Slack, Mattermost,
	// Rocket.Chat incoming webhooks).
	AlertTypeSlack AlertType = "slack"
)

// AlertSeverity filters notifications by severity.
// +kubebuilder:validation:Enum=info;error
type AlertSeverity string

const (
	// AlertSeverityInfo sends everything, recoveries included.
	AlertSeverityInfo AlertSeverity = "info"
	// AlertSeverityError sends failures and drift only.
	AlertSeverityError AlertSeverity = "error"
)

// Keys of an Alert's Secret.
const (
	// AlertSecretAddressKey holds the receiver's URL.
	AlertSecretAddressKey = "address"
	// AlertSecretTokenKey holds the generic webhook's HMAC-SHA256 key.
	AlertSecretTokenKey = "token"
)

// AlertSpec is the desired state of an Alert.
//
// +kubebuilder:validation:XValidation:rule="self.type == 'slack' || (!has(self.channel) && !has(self.username))",message="channel and username apply to type slack only"
type AlertSpec struct {
	// type of the receiver: generic or slack.
	// +required
	Type AlertType `json:"type"`

	// secretRef names a Secret in the Alert's namespace. Its "address" key
	// is the receiver's URL (a secret: a Slack webhook URL carries its
	// token); for type generic, its "token" key is the HMAC-SHA256 key
	// that signs each delivery.
	// +required
	SecretRef LocalObjectReference `json:"secretRef"`

	// channel overrides the Slack webhook's default channel.
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=80
	Channel string `json:"channel,omitempty"`

	// username overrides the name the Slack webhook posts as.
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=80
	Username string `json:"username,omitempty"`

	// eventSources say what to send notifications about.
	// +required
	EventSources AlertEventSources `json:"eventSources"`

	// severity filters what is sent: info sends everything, recoveries
	// included; error sends failures and drift only. The default is info.
	// +optional
	// +kubebuilder:default=info
	Severity AlertSeverity `json:"severity,omitempty"`

	// suspend stops sending. Kernel drift found while suspended is not
	// sent on resume; a PolicySet still failing on resume is.
	// +optional
	Suspend bool `json:"suspend,omitempty"`
}

// AlertEventSources say what an Alert sends notifications about.
//
// +kubebuilder:validation:XValidation:rule="(has(self.policySets) && size(self.policySets) > 0) || (has(self.kernelDrift) && self.kernelDrift)",message="select at least one PolicySet or kernelDrift"
type AlertEventSources struct {
	// policySets select PolicySets in the Alert's namespace. A selected
	// set is notified when Ready turns False (and again when it fails
	// with another reason or at another revision), when Drifted turns True
	// (API or kernel drift), and when either recovers.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=32
	PolicySets []PolicySetSelector `json:"policySets,omitempty"`

	// kernelDrift sends each kernel drift that a node's agent records on
	// its NodeEnforcement, on every node of the cluster, once.
	// +optional
	KernelDrift bool `json:"kernelDrift,omitempty"`
}

// PolicySetSelector selects PolicySets in the Alert's namespace: one by
// name, every one with name "*", or those whose labels match.
//
// +kubebuilder:validation:XValidation:rule="has(self.name) != has(self.matchLabels)",message="set exactly one of name and matchLabels"
type PolicySetSelector struct {
	// name of a PolicySet, or "*" for every PolicySet in the namespace.
	// +optional
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^(\*|[a-z0-9]([-a-z0-9.]*[a-z0-9])?)$`
	Name string `json:"name,omitempty"`

	// matchLabels selects the PolicySets whose labels include all of
	// these; {} selects every PolicySet.
	// +optional
	MatchLabels map[string]string `json:"matchLabels,omitempty"`
}

// AlertStatus is the observed state of an Alert.
type AlertStatus struct {
	// observedGeneration is the metadata.generation the status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// conditions: Ready, Reconciling, Stalled.
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`

	// lastSent is the last notification delivered.
	// +optional
	LastSent *AlertDelivery `json:"lastSent,omitempty"`

	// policySets is, per selected PolicySet, the state of its Ready and
	// Drifted conditions when the Alert last looked: a notification goes
	// out when it changes, once, across restarts of the manager.
	// +optional
	// +listType=map
	// +listMapKey=name
	PolicySets []AlertPolicySetState `json:"policySets,omitempty"`

	// kernelDriftSince is when the Alert began sending kernel drift: older
	// drifts are not sent. Empty while kernelDrift is off or suspended.
	// +optional
	KernelDriftSince *metav1.Time `json:"kernelDriftSince,omitempty"`

	// nodes is, per node, the newest kernel drift sent: the cursor that
	// keeps a drift from being sent twice, across restarts of the manager.
	// Only nodes with drift since kernelDriftSince are listed.
	// +optional
	// +listType=map
	// +listMapKey=node
	Nodes []AlertDriftCursor `json:"nodes,omitempty"`

	// lastHandledReconcileAt is the value of the reconcile request
	// annotation last acted on.
	// +optional
	LastHandledReconcileAt string `json:"lastHandledReconcileAt,omitempty"`
}

// AlertDelivery describes a delivered notification, without the
// receiver's address.
type AlertDelivery struct {
	// time it was delivered.
	// +required
	Time metav1.Time `json:"time"`
	// id is the notification's ID (the X-Palisade-Delivery header).
	// +required
	ID string `json:"id"`
	// severity of the notification: info, warning or critical.
	// +required
	Severity string `json:"severity"`
	// reason of the notification, e.g. KernelDrift or GuardDenied.
	// +required
	Reason string `json:"reason"`
	// object it is about, as "<Kind> [<namespace>/]<name>".
	// +required
	Object string `json:"object"`
}

// AlertConditionState is the status and reason of a condition.
type AlertConditionState struct {
	// status of the condition.
	// +required
	Status metav1.ConditionStatus `json:"status"`
	// reason of the condition.
	// +required
	Reason string `json:"reason"`
}

// AlertPolicySetState is what an Alert last saw of one PolicySet.
type AlertPolicySetState struct {
	// name of the PolicySet.
	// +required
	Name string `json:"name"`
	// ready is its Ready condition.
	// +optional
	Ready *AlertConditionState `json:"ready,omitempty"`
	// revision is the revision last attempted when Ready was False: a
	// failure at another revision is notified again.
	// +optional
	Revision string `json:"revision,omitempty"`
	// drifted is its Drifted condition.
	// +optional
	Drifted *AlertConditionState `json:"drifted,omitempty"`
}

// AlertDriftCursor is the newest kernel drift of one node that an Alert
// sent. A drift is identified by the node, its time and a hash of its kind
// and what; drifts found in the same second share a time, so the cursor
// keeps the hashes of those sent at its time.
type AlertDriftCursor struct {
	// node whose NodeEnforcement recorded the drift.
	// +required
	Node string `json:"node"`
	// time of the newest drift sent.
	// +required
	Time metav1.Time `json:"time"`
	// sent are the hashes of the drifts sent at that time.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=32
	Sent []string `json:"sent,omitempty"`
}

// Condition reasons of Alert.
const (
	// SecretNotFoundReason: the Secret the Alert names does not exist.
	SecretNotFoundReason = "SecretNotFound"

	// SecretInvalidReason: the Secret lacks a key the Alert's type needs,
	// or its address is not an absolute http or https URL.
	SecretInvalidReason = "SecretInvalid"

	// DeliveryFailedReason: the receiver refused or could not be reached
	// after the retries; the notification is retried later.
	DeliveryFailedReason = "DeliveryFailed"
)

func init() {
	SchemeBuilder.Register(func(s *runtime.Scheme) error {
		s.AddKnownTypes(GroupVersion, &Alert{}, &AlertList{})
		return nil
	})
}
