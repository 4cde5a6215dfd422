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

// Package importer translates the policies people already have into
// Palisade's: CiliumNetworkPolicy and CiliumClusterwideNetworkPolicy
// (cilium.io/v2), Kubernetes NetworkPolicy (networking.k8s.io/v1) and
// Tetragon TracingPolicy / TracingPolicyNamespaced (cilium.io/v1alpha1),
// from multi-document YAML, into CUE objects of the Palisade schema.
//
// YAML is read as yaml.v3 nodes so that every finding has a line and
// column. Every mapping is translated by an explicit table of its fields;
// a field that is not in the table is an error, because the importer cannot
// tell whether leaving it out would widen the policy.
//
// The one rule behind every decision: an imported policy never enforces
// less than its source. A field with no Palisade equivalent is left out
// with a warning (PAL901) only when leaving it out allows nothing more (it
// is metadata, only shapes events, or names something that cannot exist
// under Palisade); a translation that allows less than the source is a
// warning too (PAL905). Anything else rejects the whole document (PAL902),
// and nothing is emitted for it. Each emitted object is unified with the
// embedded schema before it is written; a value the schema refuses is
// reported at its source position. docs/import.md has the table of
// decisions, field by field.
package importer
