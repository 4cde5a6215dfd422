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

package flows

import "strings"

// Workload names the workload of a pod, as `palisadectl plan` and the web
// view (and its page's workloadOf, in app.js) show it: namespace/name
// without what its controller appended to the pod's name (PodWorkload).
func Workload(ns, pod string, labels map[string]string) string {
	return ns + "/" + PodWorkload(pod, labels)
}

// PodWorkload strips what a controller appends to a pod's name: a
// ReplicaSet's pod-template-hash and random suffix, a StatefulSet's
// ordinal, or up to two generated segments ("api-5c8b9d7f6-x7k2p" is
// "api").
func PodWorkload(pod string, labels map[string]string) string {
	if h := labels["pod-template-hash"]; h != "" {
		if i := strings.LastIndex(pod, "-"+h); i > 0 {
			return pod[:i]
		}
	}
	name := pod
	for range 2 {
		i := strings.LastIndex(name, "-")
		if i <= 0 || !generated(name[i+1:]) {
			break
		}
		name = name[:i]
	}
	return name
}

// generated reports a name segment that a controller made up: an ordinal,
// a hash (4 to 10 letters and digits, with a digit), or a random suffix (5
// characters of the alphabet Kubernetes draws them from).
func generated(seg string) bool {
	if seg == "" || len(seg) > 10 {
		return false
	}
	digits, random := 0, true
	for _, r := range seg {
		switch {
		case r >= '0' && r <= '9':
			digits++
		case r >= 'a' && r <= 'z':
		default:
			return false
		}
		random = random && strings.ContainsRune("bcdfghjklmnpqrstvwxz2456789", r)
	}
	return digits == len(seg) || (digits > 0 && len(seg) >= 4) || (random && len(seg) == 5)
}
