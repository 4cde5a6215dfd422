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

// Package agent is Palisade's node agent: it turns the cluster's policy
// objects, identities and this node's pods into datapath state, keeps the
// kernel equal to it, and reports on the node's NodeEnforcement.
package agent

// The agent's RBAC, least privilege: it reads policies, identities and
// pods, and writes only its own node's NodeEnforcement and events.
//
// +kubebuilder:rbac:groups=palisade.dev,resources=networkpolicies;clusternetworkpolicies;tracingpolicies;clustertracingpolicies;identities,verbs=get;list;watch
// +kubebuilder:rbac:groups=palisade.dev,resources=nodeenforcements,verbs=get;list;watch;create
// +kubebuilder:rbac:groups=palisade.dev,resources=nodeenforcements/status,verbs=get;update;patch
// +kubebuilder:rbac:groups="",resources=pods,verbs=get;list;watch
// +kubebuilder:rbac:groups="",resources=nodes;namespaces,verbs=get;list;watch
// +kubebuilder:rbac:groups=discovery.k8s.io,resources=endpointslices,verbs=get;list;watch
// +kubebuilder:rbac:groups="";events.k8s.io,resources=events,verbs=create;patch
