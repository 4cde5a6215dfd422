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

package policy_test

import (
	"os/exec"
	"strings"
	"testing"
)

// TestLayers measures what the shared packages link, as DESIGN.md's
// "Dependency direction" asks: the policy model, the engine and render
// (what the node agent compiles with) link no CUE, and none of them, nor
// guard (which palisadectl links), links controller-runtime.
func TestLayers(t *testing.T) {
	if testing.Short() {
		t.Skip("runs go list")
	}
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go tool on PATH: ", err)
	}
	const mod = "github.com/palisade-dev/palisade/internal/"
	for _, c := range []struct {
		pkg    string
		banned []string
	}{
		{"policy", []string{"cuelang.org/", "sigs.k8s.io/controller-runtime"}},
		{"engine", []string{"cuelang.org/", "sigs.k8s.io/controller-runtime", mod + "validate", mod + "loader"}},
		{"render", []string{"cuelang.org/", "sigs.k8s.io/controller-runtime", mod + "validate", mod + "loader"}},
		{"guard", []string{"sigs.k8s.io/controller-runtime"}},
	} {
		out, err := exec.Command(goTool, "list", "-deps", mod+c.pkg).Output()
		if err != nil {
			t.Fatalf("go list %s: %v", c.pkg, err)
		}
		for _, dep := range strings.Fields(string(out)) {
			for _, b := range c.banned {
				if strings.HasPrefix(dep, b) {
					t.Errorf("%s links %s", c.pkg, dep)
				}
			}
		}
	}
}
