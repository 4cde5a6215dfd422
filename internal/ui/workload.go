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

package ui

import "github.com/palisade-dev/palisade/internal/flows"

// Workload names the workload of a pod as `palisadectl plan` does (and
// the page's workloadOf, in app.js): flows.Workload.
func Workload(ns, pod string, labels map[string]string) string {
	return flows.Workload(ns, pod, labels)
}
