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

// IdentityClaim says which identity number one label set has. Its name is
// derived from a hash of the labels (the hash, then "-" and a counter when
// two label sets share a hash), so the API server lets exactly one
// allocator create it: whoever creates it has won the label set, and every
// other allocator reads the number from it. Only managers read and write
// claims; node agents read Identity objects.
//
// +kubebuilder:object:root=true
// +kubebuilder:resource:scope=Cluster,categories=palisade
// +kubebuilder:printcolumn:name="Number",type=integer,JSONPath=`.spec.number`
// +kubebuilder:printcolumn:name="Namespace",type=string,JSONPath=`.spec.labels.io\.kubernetes\.pod\.namespace`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type IdentityClaim struct {
	metav1.TypeMeta `json:",inline"`
	// metadata is the object's metadata; its name is derived from the
	// labels' hash.
	// +optional
	metav1.ObjectMeta `json:"metadata,omitempty"`
	// spec holds the labels and their number.
	// +required
	Spec IdentityClaimSpec `json:"spec"`
}

// IdentityClaimSpec is a label set and the identity number it holds.
type IdentityClaimSpec struct {
	// labels are the claimed label set, as in the Identity's spec.
	// +required
	// +kubebuilder:validation:MinProperties=1
	// +kubebuilder:validation:MaxProperties=256
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="labels are immutable"
	Labels map[string]string `json:"labels"`
	// number is the labels' identity number: the name of their Identity
	// object. It changes only when another label set's Identity took the
	// number first.
	// +required
	// +kubebuilder:validation:Minimum=256
	// +kubebuilder:validation:Maximum=16777215
	Number int64 `json:"number"`
}

// IdentityClaimList is a list of IdentityClaim objects.
//
// +kubebuilder:object:root=true
type IdentityClaimList struct {
	metav1.TypeMeta `json:",inline"`
	// metadata is the list's metadata.
	// +optional
	metav1.ListMeta `json:"metadata,omitempty"`
	// items are the claims.
	Items []IdentityClaim `json:"items"`
}
