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

// Package engine states what network policies mean, once, and compiles
// that meaning into the contents of a node's datapath maps.
//
// It has four parts, each usable alone:
//
//   - the intermediate representation (IR): every policy rule normalized to
//     subject, peer, ports, direction and action, with a stable RuleID that
//     leads back to the policy, its file:line and the Git revision;
//   - identities: canonical security label sets, reserved identities and an
//     allocator interface (an in-memory allocator serves the CLI and tests);
//   - the reference evaluator, Evaluate, which answers "is this flow
//     allowed, and which rule decided it" directly from the IR and the
//     cluster's endpoints, with no identities and no maps in between;
//   - the node compiler, which turns the IR, one node's endpoints and the
//     identity table into the desired contents of every map.
//
// The reference evaluator is the oracle for everything else: the compiled
// map state is tested against it (lookup in the maps must give the same
// verdict for every flow) and so is the eBPF datapath.
//
// The semantics are Cilium's, which extend Kubernetes NetworkPolicy:
//
//   - An endpoint is default-deny in a direction as soon as one policy that
//     selects it asks for it. enableDefaultDeny.<direction> asks explicitly;
//     when it is not set, a policy asks for every direction in which it has
//     rules (allow or deny).
//   - Allow rules add up; deny rules win over allow rules.
//   - A rule with no peer field and no ports matches nothing (the Cilium
//     idiom "ingress: [{}]" isolates without allowing). A rule with ports
//     or ICMP types but no peer field applies to every peer. A peer field
//     that is present but empty matches no peer; an empty toPorts list
//     covers every port, as in Cilium and Kubernetes.
//   - A namespaced policy selects pods of its own namespace only, even if
//     its endpointSelector names another namespace; its endpoint peer
//     selectors select pods of its own namespace unless they name the
//     namespace label (io.kubernetes.pod.namespace) themselves.
//   - Endpoint selectors select workloads (pods) only; reserved identities
//     are reached through entities, or through a "reserved:<entity>" key.
//   - CIDR and FQDN peers select addresses outside the cluster only: a pod's
//     or a node's address is reached by its identity, never by a CIDR.
//   - L7 rules on a port allow a request only if one of them matches; an
//     L3/L4 allow of the same peer and port without L7 rules allows every
//     request.
//   - A policy in audit mode neither drops nor opens: the enforcing
//     policies decide, and what the audit-mode ones would drop on top of
//     that is reported with the verdict Audit.
//   - Replies of allowed connections are allowed.
package engine
