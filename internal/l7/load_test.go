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

package l7

import (
	"os"
	"testing"

	"github.com/cilium/ebpf/rlimit"
)

// requireKernel skips a test that needs root and loads bpf/l7.
func requireKernel(t testing.TB) *Datapath {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("loading bpf/l7 needs root")
	}
	if err := rlimit.RemoveMemlock(); err != nil {
		t.Skipf("remove memlock limit: %v", err)
	}
	d, err := Load()
	if err != nil {
		t.Fatalf("load: %v", err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

func TestLoad(t *testing.T) {
	requireKernel(t)
}
