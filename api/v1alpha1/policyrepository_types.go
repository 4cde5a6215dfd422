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

// PolicyRepository fetches a Git repository of CUE policies at a ref,
// verifies the commit's signature when asked to, and stores the tree as an
// artifact per revision for PolicySets to consume.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:scope=Namespaced,shortName=prepo,categories=palisade
// +kubebuilder:printcolumn:name="URL",type=string,JSONPath=`.spec.url`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Revision",type=string,JSONPath=`.status.artifact.revision`
// +kubebuilder:printcolumn:name="Verified",type=string,JSONPath=`.status.conditions[?(@.type=="SourceVerified")].status`,priority=1
// +kubebuilder:printcolumn:name="Status",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].message`,priority=1
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type PolicyRepository struct {
	metav1.TypeMeta `json:",inline"`
	// metadata is the object's metadata.
	// +optional
	metav1.ObjectMeta `json:"metadata,omitempty"`
	// spec says what to fetch and how to trust it.
	// +required
	Spec PolicyRepositorySpec `json:"spec"`
	// status is the fetched artifact and the conditions.
	// +optional
	Status PolicyRepositoryStatus `json:"status,omitzero"`
}

// PolicyRepositoryList is a list of PolicyRepository objects.
//
// +kubebuilder:object:root=true
type PolicyRepositoryList struct {
	metav1.TypeMeta `json:",inline"`
	// metadata is the list's metadata.
	// +optional
	metav1.ListMeta `json:"metadata,omitempty"`
	// items are the repositories.
	Items []PolicyRepository `json:"items"`
}

// PolicyRepositorySpec is the desired state of a PolicyRepository.
type PolicyRepositorySpec struct {
	// url of the Git repository: http, https or ssh.
	// +required
	// +kubebuilder:validation:Pattern=`^(https?|ssh)://.+$`
	// +kubebuilder:validation:MaxLength=2048
	URL string `json:"url"`

	// ref selects the commit to fetch; the default is branch "main".
	// +optional
	Ref *GitRef `json:"ref,omitempty"`

	// secretRef names a Secret in the same namespace with the credentials:
	// "username" and "password", or "bearerToken" for HTTPS; "identity"
	// (a private key) and "known_hosts" for SSH.
	// +optional
	SecretRef *LocalObjectReference `json:"secretRef,omitempty"`

	// verify, when set, requires the commit to carry a signature that
	// verifies against the trusted keys; an unverified commit is not used.
	// +optional
	Verify *GitVerification `json:"verify,omitempty"`

	// interval between fetches.
	// +required
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern=`^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$`
	Interval metav1.Duration `json:"interval"`

	// timeout of one Git operation; the default is 60s.
	// +optional
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern=`^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$`
	Timeout *metav1.Duration `json:"timeout,omitempty"`

	// webhook, when set, lets the receiver trigger an immediate fetch on a
	// push; the Secret's "token" key is the HMAC key (GitHub, generic) or
	// the shared token (GitLab).
	// +optional
	Webhook *WebhookSpec `json:"webhook,omitempty"`

	// suspend stops fetching; the stored artifact stays.
	// +optional
	Suspend bool `json:"suspend,omitempty"`
}

// GitRef selects a commit: one of tag, semver and commit, optionally with
// a branch (which alone means its head).
//
// +kubebuilder:validation:XValidation:rule="[has(self.tag), has(self.semver), has(self.commit)].filter(x, x).size() <= 1",message="at most one of tag, semver and commit may be set"
// +kubebuilder:validation:XValidation:rule="!has(self.branch) || !(has(self.tag) || has(self.semver))",message="branch cannot be combined with tag or semver"
type GitRef struct {
	// branch to follow.
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=255
	Branch string `json:"branch,omitempty"`

	// tag to fetch.
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=255
	Tag string `json:"tag,omitempty"`

	// semver range of tags; the highest matching tag is fetched.
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=255
	SemVer string `json:"semver,omitempty"`

	// commit SHA to fetch, full length.
	// +optional
	// +kubebuilder:validation:Pattern=`^([0-9a-f]{40}|[0-9a-f]{64})$`
	Commit string `json:"commit,omitempty"`
}

// LocalObjectReference names an object in the same namespace.
type LocalObjectReference struct {
	// name of the object.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name"`
}

// GitVerifyMode says what has to be signed.
// +kubebuilder:validation:Enum=HEAD
type GitVerifyMode string

// GitVerifyModeHEAD verifies the commit that the ref resolves to.
const GitVerifyModeHEAD GitVerifyMode = "HEAD"

// GitVerification is the commit signature policy.
type GitVerification struct {
	// mode: HEAD, the fetched commit must be signed.
	// +optional
	// +kubebuilder:default=HEAD
	Mode GitVerifyMode `json:"mode,omitempty"`

	// secretRef names a Secret with the trusted keys: every key ending in
	// ".asc" or ".gpg" holds an armored PGP public keyring; every key
	// ending in ".pub" or named "allowed_signers" holds SSH public keys in
	// authorized_keys format.
	// +required
	SecretRef LocalObjectReference `json:"secretRef"`
}

// WebhookSpec configures push notifications for a repository.
type WebhookSpec struct {
	// secretRef names a Secret whose "token" key authenticates payloads.
	// +required
	SecretRef LocalObjectReference `json:"secretRef"`
}

// Artifact is a stored revision of a source.
type Artifact struct {
	// revision is "<branch or tag>@sha1:<commit>".
	// +required
	Revision string `json:"revision"`

	// digest of the stored archive, "sha256:<hex>".
	// +required
	Digest string `json:"digest"`

	// path of the archive in the controller's storage.
	// +required
	Path string `json:"path"`

	// size of the archive in bytes.
	// +optional
	Size *int64 `json:"size,omitempty"`

	// lastUpdateTime is when the artifact was stored.
	// +required
	LastUpdateTime metav1.Time `json:"lastUpdateTime"`
}

// PolicyRepositoryStatus is the observed state of a PolicyRepository.
type PolicyRepositoryStatus struct {
	// observedGeneration is the metadata.generation the status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// conditions: Ready, Reconciling, Stalled, SourceVerified,
	// ArtifactInStorage.
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`

	// artifact is the last stored revision; a failed fetch or verification
	// leaves it as it was.
	// +optional
	Artifact *Artifact `json:"artifact,omitempty"`

	// lastHandledReconcileAt is the value of the reconcile request
	// annotation last acted on.
	// +optional
	LastHandledReconcileAt string `json:"lastHandledReconcileAt,omitempty"`
}
