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

package tracing

import (
	"os"
	"path/filepath"
	"slices"
	"testing"

	v1 "github.com/palisade-dev/palisade/api/v1alpha1"
	"github.com/palisade-dev/palisade/internal/tracing/hooks"
)

// matchBinaries names executables as people type them (/bin/sh); process
// tracking records their real path (/usr/bin/dash on a merged-/usr node
// where sh links to dash). On the node, the compiler adds the resolved
// path beside the written one.
func TestNodePathsResolveSymlinks(t *testing.T) {
	root := t.TempDir()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(filepath.Join(root, "usr/bin"), 0o755))
	must(os.WriteFile(filepath.Join(root, "usr/bin/dash"), nil, 0o755))
	must(os.Symlink("dash", filepath.Join(root, "usr/bin/sh")))
	must(os.Symlink("usr/bin", filepath.Join(root, "bin")))
	must(os.Symlink("/etc", filepath.Join(root, "outside")))

	c := &compiler{k: &hooks.Kernel{Binaries: true, BinaryRoot: root}}
	for _, tc := range []struct {
		op     v1.ArgOperator
		values []string
		want   []string
	}{
		{"Equal", []string{"/bin/sh"}, []string{"/bin/sh", "/usr/bin/dash"}},
		{"NotEqual", []string{"/bin/sh", "/usr/bin/dash"}, []string{"/bin/sh", "/usr/bin/dash"}},
		{"Equal", []string{"/bin/missing"}, []string{"/bin/missing"}},
		{"Prefix", []string{"/bin/"}, []string{"/bin/", "/usr/bin/"}},
		{"NotPrefix", []string{"/bin/da"}, []string{"/bin/da", "/usr/bin/da"}},
		{"Postfix", []string{"/sh"}, []string{"/sh"}},
		// A link that leaves the node's root says nothing about the node.
		{"Equal", []string{"/outside/passwd"}, []string{"/outside/passwd"}},
	} {
		if got := c.nodePaths(tc.op, tc.values); !slices.Equal(got, tc.want) {
			t.Errorf("%s %v: %v, want %v", tc.op, tc.values, got, tc.want)
		}
	}
	// Not on the node (validate --btf): values stay as written.
	off := &compiler{k: &hooks.Kernel{BinaryRoot: root}}
	if got := off.nodePaths("Equal", []string{"/bin/sh"}); !slices.Equal(got, []string{"/bin/sh"}) {
		t.Errorf("off the node: %v, want the value as written", got)
	}
}
