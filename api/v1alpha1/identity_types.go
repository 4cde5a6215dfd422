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

// Identity is the cluster-wide numeric security identity of one set of
// security-relevant labels. Its name is the number, so the API server
// itself guarantees that no two label sets get the same number. The
// manager allocates identities; every node agent reads them.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:scope=Cluster,shortName=pid,categories=palisade
// +kubebuilder:printcolumn:name="Namespace",type=string,JSONPath=`.spec.labels.io\.kubernetes\.pod\.namespace`
// +kubebuilder:printcolumn:name="Unused-Since",type=date,JSONPath=`.status.unusedSince`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
// +kubebuilder:validation:XValidation:rule="self.metadata.name.matches('^[1-9][0-9]{0,7}$') && int(self.metadata.name) >= 256 && int(self.metadata.name) <= 16777215",message="metadata.name must be the identity number, 256 to 16777215"
type Identity struct {
	metav1.TypeMeta `json:",inline"`
	// metadata is the object's metadata; its name is the identity number.
	// +optional
	metav1.ObjectMeta `json:"metadata,omitempty"`
	// spec holds the identity's labels.
	// +required
	Spec IdentitySpec `json:"spec"`
	// status says whether the identity is in use.
	// +optional
	Status IdentityStatus `json:"status,omitzero"`
}

// IdentityList is a list of Identity objects.
//
// +kubebuilder:object:root=true
type IdentityList struct {
	metav1.TypeMeta `json:",inline"`
	// metadata is the list's metadata.
	// +optional
	metav1.ListMeta `json:"metadata,omitempty"`
	// items are the identities.
	Items []Identity `json:"items"`
}

// IdentitySpec is the label set an identity stands for. It never changes:
// a different label set is a different identity.
type IdentitySpec struct {
	// labels are the security-relevant labels, in the engine's canonical
	// keys (the namespace as io.kubernetes.pod.namespace, namespace labels
	// prefixed io.cilium.k8s.namespace.labels.).
	// +required
	// +kubebuilder:validation:MinProperties=1
	// +kubebuilder:validation:MaxProperties=256
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="labels are immutable"
	// +kubebuilder:validation:XValidation:rule="'io.kubernetes.pod.namespace' in self",message="labels must include io.kubernetes.pod.namespace"
	Labels map[string]string `json:"labels"`
}

// IdentityStatus is the observed use of an identity.
type IdentityStatus struct {
	// unusedSince is when the last workload holding the identity went away;
	// the identity is deleted once a grace period has passed. Unset while
	// in use.
	// +optional
	UnusedSince *metav1.Time `json:"unusedSince,omitempty"`
}
