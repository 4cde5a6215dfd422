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

// Condition types of policy objects. Ready summarizes the others.
const (
	// ReadyCondition is True when the policy is validated, applied and
	// enforced on every node it concerns, and nothing has drifted.
	ReadyCondition = "Ready"

	// ValidatedCondition is True when the policy unifies with the CUE schema
	// and passes the semantic checks; False names the file, line and rule.
	ValidatedCondition = "Validated"

	// AppliedCondition is True when the object in the API server is the one
	// the PolicySet rendered from its current revision.
	AppliedCondition = "Applied"

	// EnforcedCondition is True when every node the policy concerns has
	// compiled it into its datapath.
	EnforcedCondition = "Enforced"

	// DriftedCondition is True when the object or its kernel state was
	// changed by something other than Palisade; the message says what.
	DriftedCondition = "Drifted"

	// NetworkEnforcedCondition is a NodeEnforcement's L3/L4 subsystem:
	// maps written, programs attached on every local workload.
	NetworkEnforcedCondition = "NetworkEnforced"

	// L7EnforcedCondition is a NodeEnforcement's L7 subsystem: HTTP, DNS,
	// Kafka and toFQDNs rules decided in the kernel.
	L7EnforcedCondition = "L7Enforced"

	// TracingEnforcedCondition is a NodeEnforcement's tracing subsystem:
	// TracingPolicy programs loaded and attached.
	TracingEnforcedCondition = "TracingEnforced"

	// FlowsObservedCondition is a NodeEnforcement's flow observer: the
	// kernel's verdict events read and kept.
	FlowsObservedCondition = "FlowsObserved"
)

// Condition reasons: CamelCase, one per cause, shared by every policy kind.
const (
	// SucceededReason is the reason of a True Ready condition.
	SucceededReason = "Succeeded"

	// ProgressingReason is the reason of a Ready condition that waits for
	// a step that has not finished yet.
	ProgressingReason = "Progressing"

	// ValidationSucceededReason: the policy passed schema and semantic
	// validation.
	ValidationSucceededReason = "ValidationSucceeded"

	// SchemaViolationReason: the policy does not unify with the CUE schema.
	SchemaViolationReason = "SchemaViolation"

	// SemanticViolationReason: the policy unifies with the schema but fails
	// a semantic check (a PAL rule) that CUE cannot express.
	SemanticViolationReason = "SemanticViolation"

	// ApplySucceededReason: the object was applied with server-side apply.
	ApplySucceededReason = "ApplySucceeded"

	// ApplyFailedReason: the API server rejected or failed the apply.
	ApplyFailedReason = "ApplyFailed"

	// EnforcementSucceededReason: every concerned node enforces the
	// policy's current generation.
	EnforcementSucceededReason = "EnforcementSucceeded"

	// EnforcementPendingReason: some concerned nodes have not yet reported
	// the policy's current generation.
	EnforcementPendingReason = "EnforcementPending"

	// EnforcementFailedReason: a node could not compile or load the policy;
	// it keeps enforcing its last good state.
	EnforcementFailedReason = "EnforcementFailed"

	// PartiallyEnforcedReason: a node enforces some of the objects' rules
	// but not all of them as written; the message names the objects and
	// what is missing.
	PartiallyEnforcedReason = "PartiallyEnforced"

	// NotSupportedReason: this version's datapath does not enforce the
	// feature (see the capability table, docs/datapath.md).
	NotSupportedReason = "NotSupported"

	// HookUnavailableReason: the node's kernel lacks what the object needs
	// (a hook, a program type, BTF).
	HookUnavailableReason = "HookUnavailable"

	// LoadFailedReason: the kernel's verifier refused a program; the
	// message holds its log's tail.
	LoadFailedReason = "LoadFailed"

	// FailClosedReason: the node cannot program a workload and drops its
	// traffic instead.
	FailClosedReason = "FailClosed"

	// HostInterfaceMissingReason: a host firewall policy selects the node
	// but no host interface carries Palisade's programs there.
	HostInterfaceMissingReason = "HostInterfaceMissing"

	// RevisionIncompleteReason: the objects of a newer revision are not
	// all in the API yet; the node keeps the previous revision.
	RevisionIncompleteReason = "RevisionIncomplete"

	// AuditModeReason: the policy is in audit mode; it reports what it
	// would drop and drops nothing.
	AuditModeReason = "AuditMode"

	// NoDriftReason: the object and its kernel state match what Palisade
	// wrote.
	NoDriftReason = "NoDrift"

	// APIDriftReason: the object was edited or deleted by hand.
	APIDriftReason = "APIDrift"

	// KernelDriftReason: a map entry, program attachment or pin on a node
	// no longer matches the desired state.
	KernelDriftReason = "KernelDrift"

	// DriftCorrectedReason: drift was detected and repaired.
	DriftCorrectedReason = "DriftCorrected"
)
