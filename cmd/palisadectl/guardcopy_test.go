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

package main

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/palisade-dev/palisade/internal/guard"
)

// copyBuiltinGuards copies the built-in guards' Rego (policies/guards) to
// a new directory, as someone who wants to edit them does.
func copyBuiltinGuards(t *testing.T) string {
	t.Helper()
	files, err := filepath.Glob("../../policies/guards/*.rego")
	if err != nil || len(files) == 0 {
		t.Fatalf("no built-in guards: %v", err)
	}
	dir := t.TempDir()
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		writeFile(t, dir, filepath.Base(f), string(b))
	}
	return dir
}

func guardTestCmd(args ...string) (stdout, stderr string, code int) {
	root := newRootCmd()
	var out, errOut bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&errOut)
	root.SetArgs(append([]string{"guard", "test"}, args...))
	err := root.Execute()
	return out.String(), errOut.String(), exitCode(err)
}

// TestGuardTestCopyOfBuiltins: `guard test` of a copy of the built-in
// guards tests the copy in their place, instead of refusing every package
// as declared twice; an edit to the copy is what the tests see.
func TestGuardTestCopyOfBuiltins(t *testing.T) {
	dir := copyBuiltinGuards(t)
	summary := regexp.MustCompile(`(\d+) passed, (\d+) failed`)

	builtinOut, _, code := guardTestCmd()
	if code != exitOK {
		t.Fatalf("built-in tests: exit %d\n%s", code, builtinOut)
	}
	out, errOut, code := guardTestCmd(dir)
	if code != exitOK || strings.Contains(out, "PAL603") {
		t.Fatalf("copy of the built-in guards: exit %d\n%s%s", code, out, errOut)
	}
	if !strings.Contains(errOut, "in place of") || !strings.Contains(errOut, "data.palisade.guards.admin_ports") {
		t.Errorf("no note of the replaced packages: %q", errOut)
	}
	// Every test ran once: from the copy, none twice.
	if a, b := summary.FindString(builtinOut), summary.FindString(out); a == "" || a != b {
		t.Errorf("copy ran %q, the built-in library %q", b, a)
	}

	// Break the copy's admin_ports guard: its tests (the copy's) fail,
	// at the copy's file.
	p := filepath.Join(dir, "admin_ports.rego")
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	broken := strings.Replace(string(b), "default ports := [22,", "default ports := [2,", 1)
	if broken == string(b) {
		t.Fatal("admin_ports.rego changed; update the edit this test makes")
	}
	writeFile(t, dir, "admin_ports.rego", broken)
	out, _, code = guardTestCmd("-v", dir)
	if code != exitInvalid || !strings.Contains(out, filepath.ToSlash(dir)+"/admin_ports_test.rego:") || !strings.Contains(out, ": FAIL data.palisade.guards.admin_ports_test.") {
		t.Errorf("edited copy: exit %d\n%s", code, out)
	}

	// A copy of one guard only: the others and the test library stay
	// built-in, the built-in tests of the replaced package do not run.
	one := t.TempDir()
	writeFile(t, one, "admin_ports.rego", broken)
	out, _, code = guardTestCmd("-v", one)
	if code != exitOK || strings.Contains(out, "admin_ports_test") || !strings.Contains(out, "PASS data.palisade.guards.default_deny_test.") {
		t.Errorf("one edited guard without its tests: exit %d\n%s", code, out)
	}
}

// TestGuardCopyWithBuiltinsCompileHint: where both are evaluated (a
// PolicySet, validate --guards), a copy of a built-in package is still an
// error, whose hint says what to do instead of "fix the Rego".
func TestGuardCopyWithBuiltinsCompileHint(t *testing.T) {
	src, err := guard.FromDir("mine", copyBuiltinGuards(t))
	if err != nil {
		t.Fatal(err)
	}
	_, diags := guard.Compile(guard.Builtin(), src)
	if !diags.HasErrors() {
		t.Fatal("a package declared by two sources compiled")
	}
	for _, d := range diags {
		if d.Code != "PAL603" || !strings.Contains(d.Message, `already declared by guard source "builtin"`) || !strings.Contains(d.Hint, "package name of its own") || !strings.Contains(d.Hint, "guard test DIR") {
			t.Errorf("%s", d)
		}
	}
}
