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

package guards_test

import (
	"context"
	"strings"
	"testing"

	"github.com/palisade-dev/palisade/internal/guard"
)

// TestRego runs the library's Rego tests through OPA's Go test runner, so
// that `go test ./...` (and make test) fails when a guard or its test does.
func TestRego(t *testing.T) {
	results, diags, err := guard.RunTests(context.Background(), guard.Builtin())
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range diags {
		t.Error(d)
	}
	if len(results) == 0 {
		t.Fatal("no Rego tests found")
	}
	tested := map[string]bool{}
	for _, r := range results {
		tested[strings.TrimSuffix(strings.TrimPrefix(r.Package, "data.palisade.guards."), "_test")] = true
		t.Run(strings.TrimPrefix(r.Package, "data.palisade.guards.")+"/"+r.Name, func(t *testing.T) {
			if !r.Pass {
				t.Errorf("%s: %s.%s failed %s", r.Pos, r.Package, r.Name, r.Error)
			}
		})
	}
	g, diags := guard.Compile(guard.Builtin())
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	for _, name := range g.Names() {
		if !tested[strings.TrimPrefix(name, guard.BuiltinName+"/")] {
			t.Errorf("guard %s has no tests", name)
		}
	}
}
