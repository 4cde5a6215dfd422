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

// Package v1alpha1 holds the Palisade policy API, group palisade.dev, version
// v1alpha1: the Kubernetes objects that a PolicySet renders from the CUE
// policy language (policies/schema). The spec types mirror the CUE schema
// field for field, so a policy exported from CUE as JSON decodes into them
// without loss and re-encodes to the same JSON.
//
// +kubebuilder:object:generate=true
// +groupName=palisade.dev
package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

var (
	// GroupVersion is the group and version of the objects in this package.
	GroupVersion = schema.GroupVersion{Group: "palisade.dev", Version: "v1alpha1"}

	// SchemeBuilder registers the types of this package with a scheme. It is
	// apimachinery's builder rather than controller-runtime's, so that
	// importing the API pulls in no controller machinery (palisadectl uses
	// these types without a cluster).
	SchemeBuilder = runtime.NewSchemeBuilder(addKnownTypes)

	// AddToScheme adds the types of this package to a scheme.
	AddToScheme = SchemeBuilder.AddToScheme
)

// addKnownTypes registers every root kind and its list with the scheme.
func addKnownTypes(s *runtime.Scheme) error {
	s.AddKnownTypes(GroupVersion,
		&NetworkPolicy{}, &NetworkPolicyList{},
		&ClusterNetworkPolicy{}, &ClusterNetworkPolicyList{},
		&TracingPolicy{}, &TracingPolicyList{},
		&ClusterTracingPolicy{}, &ClusterTracingPolicyList{},
	)
	metav1.AddToGroupVersion(s, GroupVersion)
	return nil
}
