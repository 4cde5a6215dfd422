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

// Package l7bench measures HTTP requests decided in the kernel (bpf/l7,
// internal/l7) against the same rules enforced by a userspace reverse
// proxy hop, on one veth path between two workloads: `make bench-l7`
// (BenchmarkL7Path, root). It holds the benchmark's rule sets
// (Rules), its keep-alive load generator (Saturate, Latencies) and the
// proxy that stands in for Envoy (NewProxy); docs/l7.md ("Benchmark")
// has the method and the numbers.
package l7bench
