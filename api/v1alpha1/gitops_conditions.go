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

// Condition types of the GitOps kinds (PolicyRepository, PolicySet,
// NodeEnforcement), beside the ones in conditions.go. They follow Flux's
// kstatus-compatible set: Ready summarizes, Reconciling and Stalled say
// whether more work is coming.
const (
	// ReconcilingCondition is True while a reconcile is in progress or will
	// be retried.
	ReconcilingCondition = "Reconciling"

	// StalledCondition is True when retrying cannot help until the object
	// or its source changes (a bad commit, a missing Secret key).
	StalledCondition = "Stalled"

	// SourceVerifiedCondition is True when the commit's signature verified
	// against the trusted keys; False names the commit, its author and why.
	SourceVerifiedCondition = "SourceVerified"

	// ArtifactInStorageCondition is True when the fetched revision is
	// stored as an artifact with a digest.
	ArtifactInStorageCondition = "ArtifactInStorage"

	// GuardedCondition is True when the change passed every guard; False
	// names the guard that denied it.
	GuardedCondition = "Guarded"
)

// Condition reasons of the GitOps kinds.
const (
	// GitOperationFailedReason: the clone or fetch failed (unreachable
	// host, missing ref, a path that no longer exists).
	GitOperationFailedReason = "GitOperationFailed"

	// AuthenticationFailedReason: the referenced Secret is missing or its
	// data cannot be used to authenticate.
	AuthenticationFailedReason = "AuthenticationFailed"

	// VerificationErrorReason: the commit is not signed, or its signature
	// does not verify against the trusted keys.
	VerificationErrorReason = "VerificationError"

	// VerificationSucceededReason: the commit's signature verified.
	VerificationSucceededReason = "VerificationSucceeded"

	// StorageOperationFailedReason: the artifact could not be written.
	StorageOperationFailedReason = "StorageOperationFailed"

	// ArtifactStoredReason: the revision's artifact is in storage.
	ArtifactStoredReason = "ArtifactStored"

	// NewRevisionReason: a new revision was found and is being processed.
	NewRevisionReason = "NewRevision"

	// SuspendedReason: the object is suspended; nothing is reconciled.
	SuspendedReason = "Suspended"

	// ArtifactFailedReason: the source has no usable artifact yet.
	ArtifactFailedReason = "ArtifactFailed"

	// ValidationFailedReason: the revision's CUE does not load or does not
	// validate; the message names the file:line:col and code of the first
	// errors.
	ValidationFailedReason = "ValidationFailed"

	// GuardDeniedReason: a guard denied the change.
	GuardDeniedReason = "GuardDenied"

	// GuardSucceededReason: every guard allowed the change.
	GuardSucceededReason = "GuardSucceeded"

	// RollbackRefusedReason: the new revision is not a descendant of the
	// applied one (a force-push to older history) and rollback is not
	// allowed.
	RollbackRefusedReason = "RollbackRefused"

	// PruneFailedReason: an object that left Git could not be deleted.
	PruneFailedReason = "PruneFailed"

	// IdentityAllocatedReason: the identity is held by at least one
	// workload.
	IdentityAllocatedReason = "IdentityAllocated"

	// MapFullReason: a datapath map would exceed its capacity; the node
	// keeps enforcing its previous state and fails closed for endpoints
	// it has no state for.
	MapFullReason = "MapFull"

	// VerifyFailedReason: the agent could not read the kernel state back
	// to compare it with the desired state.
	VerifyFailedReason = "VerifyFailed"

	// DatapathErrorReason: loading, attaching or writing the datapath
	// failed; the message has the kernel's error.
	DatapathErrorReason = "DatapathError"
)

// Annotations understood by the controllers.
const (
	// ReconcileRequestAnnotation asks for an immediate reconcile when its
	// value changes (any value; a timestamp by convention). The webhook
	// receiver sets it.
	ReconcileRequestAnnotation = "reconcile.palisade.dev/requestedAt"

	// IdentityLabelsHashLabel is set on every Identity object to a hash of
	// its canonical label string, so an allocator finds the identity of a
	// label set with one indexed list.
	IdentityLabelsHashLabel = "palisade.dev/labels-hash"
)
