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

// PolicySet loads the CUE policies under a path of a source's artifact,
// validates them, guards the change with OPA, and applies the rendered
// policy objects with server-side apply, pruning what left Git.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:scope=Namespaced,shortName=pset,categories=palisade
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Revision",type=string,JSONPath=`.status.lastAppliedRevision`
// +kubebuilder:printcolumn:name="Enforced",type=string,JSONPath=`.status.enforcement.summary`,description="nodes enforcing the applied revision / nodes reporting"
// +kubebuilder:printcolumn:name="Drift",type=string,JSONPath=`.status.conditions[?(@.type=="Drifted")].status`
// +kubebuilder:printcolumn:name="Status",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].message`,priority=1
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type PolicySet struct {
	metav1.TypeMeta `json:",inline"`
	// metadata is the object's metadata.
	// +optional
	metav1.ObjectMeta `json:"metadata,omitempty"`
	// spec says which policies to apply and how.
	// +required
	Spec PolicySetSpec `json:"spec"`
	// status is the applied revision, the inventory and the conditions.
	// +optional
	Status PolicySetStatus `json:"status,omitzero"`
}

// PolicySetList is a list of PolicySet objects.
//
// +kubebuilder:object:root=true
type PolicySetList struct {
	metav1.TypeMeta `json:",inline"`
	// metadata is the list's metadata.
	// +optional
	metav1.ListMeta `json:"metadata,omitempty"`
	// items are the policy sets.
	Items []PolicySet `json:"items"`
}

// SourceKind names a kind of source.
// +kubebuilder:validation:Enum=PolicyRepository;GitRepository
type SourceKind string

// The source kinds.
const (
	// SourceKindPolicyRepository is Palisade's own Git source.
	SourceKindPolicyRepository SourceKind = "PolicyRepository"
	// SourceKindGitRepository is a Flux source.toolkit.fluxcd.io
	// GitRepository, consumed by its artifact's URL and digest.
	SourceKindGitRepository SourceKind = "GitRepository"
)

// SourceReference names a source in the PolicySet's namespace.
type SourceReference struct {
	// kind of the source; the default is PolicyRepository.
	// +optional
	// +kubebuilder:default=PolicyRepository
	Kind SourceKind `json:"kind,omitempty"`

	// name of the source.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name"`
}

// GuardSource is a set of guards owned by someone else: Rego files under a
// path of another source.
type GuardSource struct {
	// sourceRef names the source that holds the guards.
	// +required
	SourceRef SourceReference `json:"sourceRef"`

	// path of the guards' directory in the source.
	// +optional
	// +kubebuilder:validation:MaxLength=1024
	// +kubebuilder:validation:XValidation:rule="!self.matches('(^|/)[.][.](/|$)')",message="path must not contain '..'"
	Path string `json:"path,omitempty"`
}

// Guards selects the OPA guards that every change must pass.
type Guards struct {
	// disableBuiltIn lists built-in guards, by name, that this set skips.
	// +optional
	// +listType=set
	DisableBuiltIn []string `json:"disableBuiltIn,omitempty"`

	// sources are guard sets owned by someone else.
	// +optional
	// +kubebuilder:validation:MaxItems=16
	Sources []GuardSource `json:"sources,omitempty"`
}

// PolicySetSpec is the desired state of a PolicySet.
type PolicySetSpec struct {
	// sourceRef names the source of the policies.
	// +required
	SourceRef SourceReference `json:"sourceRef"`

	// path of the CUE package tree in the source; the default is its root.
	// +optional
	// +kubebuilder:validation:MaxLength=1024
	// +kubebuilder:validation:XValidation:rule="!self.matches('(^|/)[.][.](/|$)')",message="path must not contain '..'"
	Path string `json:"path,omitempty"`

	// guards that every change must pass; the built-in set runs unless
	// disabled by name.
	// +optional
	Guards *Guards `json:"guards,omitempty"`

	// mode overrides every policy's mode: "audit" reports what would be
	// dropped and drops nothing. Empty keeps each policy's own mode.
	// +optional
	Mode EnforcementMode `json:"mode,omitempty"`

	// interval between reconciles.
	// +required
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern=`^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$`
	Interval metav1.Duration `json:"interval"`

	// timeout of one reconcile; the default is the interval.
	// +optional
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern=`^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$`
	Timeout *metav1.Duration `json:"timeout,omitempty"`

	// prune deletes applied objects that left Git; the default is true.
	// +optional
	// +kubebuilder:default=true
	Prune *bool `json:"prune,omitempty"`

	// allowRollback lets a revision that is not a descendant of the
	// applied one (a force-push to older history) be applied.
	// +optional
	AllowRollback bool `json:"allowRollback,omitempty"`

	// suspend stops reconciling; applied objects stay as they are.
	// +optional
	Suspend bool `json:"suspend,omitempty"`
}

// InventoryEntry is one applied object.
type InventoryEntry struct {
	// id is "<namespace>_<name>_<group>_<kind>", as in Flux.
	// +required
	ID string `json:"id"`
	// v is the object's API version.
	// +required
	Version string `json:"v"`
}

// Inventory lists the objects a PolicySet applied.
type Inventory struct {
	// entries, sorted by id.
	// +optional
	Entries []InventoryEntry `json:"entries,omitempty"`
}

// EnforcementSummary aggregates the NodeEnforcement reports for a set.
type EnforcementSummary struct {
	// nodes is how many nodes report.
	// +optional
	Nodes int32 `json:"nodes,omitempty"`
	// enforced is how many of them enforce the applied revision.
	// +optional
	Enforced int32 `json:"enforced,omitempty"`
	// drifted is how many of them report kernel drift.
	// +optional
	Drifted int32 `json:"drifted,omitempty"`
	// summary is "<enforced>/<nodes>", for kubectl.
	// +optional
	Summary string `json:"summary,omitempty"`
}

// MaxAppliedHistory bounds PolicySetStatus.history.
const MaxAppliedHistory = 10

// MaxChangedObjects bounds AppliedRevision.changed.
const MaxChangedObjects = 32

// AppliedRevision is one revision a PolicySet applied in full.
type AppliedRevision struct {
	// revision is the source revision.
	// +required
	Revision string `json:"revision"`
	// changed lists the inventory ids of the objects whose spec the apply
	// created or changed, at most MaxChangedObjects.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=32
	Changed []string `json:"changed,omitempty"`
	// changedAll is true when the apply changed more objects than changed
	// can list, or could not tell which (the objects were not all of the
	// previous revision): every object counts as changed.
	// +optional
	ChangedAll bool `json:"changedAll,omitempty"`
}

// PolicySetStatus is the observed state of a PolicySet.
type PolicySetStatus struct {
	// observedGeneration is the metadata.generation the status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// conditions: Ready, Reconciling, Stalled, Validated, Guarded,
	// Applied, Enforced, Drifted.
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`

	// lastAppliedRevision is the source revision whose objects are in the
	// API server. It moves only when a revision is applied in full.
	// +optional
	LastAppliedRevision string `json:"lastAppliedRevision,omitempty"`

	// lastAttemptedRevision is the last source revision tried, good or bad.
	// +optional
	LastAttemptedRevision string `json:"lastAttemptedRevision,omitempty"`

	// inventory of the applied objects.
	// +optional
	Inventory *Inventory `json:"inventory,omitempty"`

	// enforcement summarizes the nodes' reports.
	// +optional
	Enforcement *EnforcementSummary `json:"enforcement,omitempty"`

	// history is the revisions applied in full, newest first, at most
	// MaxAppliedHistory, each with the objects whose spec its apply
	// created or changed. A node that still enforces an older revision
	// listed here enforces every object no newer entry changed exactly as
	// the applied revision has it: such an object's Enforced condition
	// does not go back to pending for it, so a rollout writes only the
	// status of the objects it changes.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=10
	History []AppliedRevision `json:"history,omitempty"`

	// lastHandledReconcileAt is the value of the reconcile request
	// annotation last acted on.
	// +optional
	LastHandledReconcileAt string `json:"lastHandledReconcileAt,omitempty"`
}
