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

package validate_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/palisade-dev/palisade/api/v1alpha1"
	"github.com/palisade-dev/palisade/internal/validate"
)

// TestHookChecker: the problems a hook checker finds become diagnostics at
// the file:line of the field they name, for tracing policies only.
func TestHookChecker(t *testing.T) {
	src := tracingPolicy("TracingPolicy", `
		podSelector: matchLabels: app: "web"
		kprobes: [{
			call: "security_file_permission"
			args: [{
				index: 0
				type:  "string" // want PAL526
			}]
		}]
`)
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, tracingFile), []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	calls := 0
	opts := validate.Options{Hooks: func(spec *v1alpha1.TracingPolicySpec) []validate.HookProblem {
		calls++
		if spec.KProbes[0].Call != "security_file_permission" {
			t.Errorf("checker got spec %+v", spec)
		}
		return []validate.HookProblem{{Path: "spec.kprobes[0].args[0].type", Code: "PAL526", Message: "argument 0 is a struct file *"}}
	}}
	rep, err := validate.Dir(context.Background(), dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	if calls != 1 {
		t.Errorf("checker called %d times, want once", calls)
	}
	want, have := wanted(src), got(rep.Diagnostics)
	if len(want) != 1 || len(have) != 1 || want[0] != have[0] {
		t.Errorf("diagnostics (code:line): want %v, have %v: %v", want, have, rep.Diagnostics)
	}
	for _, d := range rep.Diagnostics {
		if d.Code == "PAL526" && (d.Object != "TracingPolicy/default/t" || d.Path != "spec.kprobes[0].args[0].type" || d.Message != "argument 0 is a struct file *") {
			t.Errorf("diagnostic %+v", d)
		}
	}
	if rep.Valid() {
		t.Error("a hook problem leaves the repository valid")
	}
}
