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

// A note on JSON tags, which every spec type in this package follows: the
// types must carry a policy from CUE to the API server and back without
// changing it, so
//   - optional lists are tagged omitzero, not omitempty: an absent list (nil)
//     is omitted but an explicitly empty one ([]) is kept, because an empty
//     peer or port list may mean something different from an absent one;
//   - optional bools and optional ints are pointers, so that false and 0
//     survive, and so are optional free-text strings whose "" the schema
//     allows;
//   - required fields have no omitempty, so a required 0 (e.g. an argument
//     index) is always written.
// The round-trip test (roundtrip_test.go) holds the types to this against
// the CUE schema itself.

// EnforcementMode says whether a policy drops what it denies ("enforce",
// the default when omitted) or only reports what it would drop ("audit").
// +kubebuilder:validation:Enum=enforce;audit
type EnforcementMode string

const (
	// EnforcementModeEnforce drops what the policy denies (the default).
	EnforcementModeEnforce EnforcementMode = "enforce"
	// EnforcementModeAudit reports what the policy would drop and drops
	// nothing.
	EnforcementModeAudit EnforcementMode = "audit"
)

// PolicyStatus is the observed state of a policy object, shared by every
// policy kind.
type PolicyStatus struct {
	// observedGeneration is the metadata.generation that the conditions
	// describe.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// conditions report the policy's state: Ready, Validated, Applied,
	// Enforced and Drifted.
	// +optional
	// +listType=map
	// +listMapKey=type
	// +patchStrategy=merge
	// +patchMergeKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty" patchStrategy:"merge" patchMergeKey:"type"`
}
