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
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const goodPolicy = `apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata:
  name: l3-rule
spec:
  endpointSelector:
    matchLabels: {role: backend}
  ingress:
  - fromEndpoints:
    - matchLabels: {role: frontend}
`

const rejectedPolicy = `apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata:
  name: requires
spec:
  endpointSelector: {}
  ingress:
  - fromRequires: [{matchLabels: {env: prod}}]
`

const tracing = `apiVersion: cilium.io/v1alpha1
kind: TracingPolicy
metadata:
  name: l3-rule
spec:
  kprobes:
  - call: fd_install
`

func writeFile(t *testing.T, dir, name, data string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func exitCode(err error) int {
	if err == nil {
		return exitOK
	}
	var ee *exitError
	if errors.As(err, &ee) {
		return ee.code
	}
	return -1
}

func defaultImportOptions() importOptions {
	return importOptions{pkg: "policies", output: "text"}
}

func TestImportExitCodes(t *testing.T) {
	dir := t.TempDir()
	good := writeFile(t, dir, "good.yaml", goodPolicy)
	bad := writeFile(t, dir, "bad.yaml", rejectedPolicy)
	tests := []struct {
		name  string
		files []string
		opts  func(*importOptions)
		code  int
	}{
		{"all imported", []string{good}, nil, exitOK},
		{"one rejected", []string{good, bad}, nil, exitInvalid},
		{"missing file", []string{filepath.Join(dir, "nope.yaml")}, nil, exitUsage},
		{"bad report format", []string{good}, func(o *importOptions) { o.output = "xml" }, exitUsage},
		{"bad package", []string{good}, func(o *importOptions) { o.pkg = "not-a-package" }, exitUsage},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			opts := defaultImportOptions()
			if tc.opts != nil {
				tc.opts(&opts)
			}
			var out, errOut bytes.Buffer
			err := runImport(strings.NewReader(""), &out, &errOut, tc.files, opts)
			if got := exitCode(err); got != tc.code {
				t.Errorf("exit %d, want %d (err %v, stderr %s)", got, tc.code, err, errOut.String())
			}
		})
	}
}

func TestImportStdout(t *testing.T) {
	dir := t.TempDir()
	good := writeFile(t, dir, "good.yaml", goodPolicy)
	var out, errOut bytes.Buffer
	opts := defaultImportOptions()
	opts.pkg = "mypolicies"
	if err := runImport(strings.NewReader(tracing), &out, &errOut, []string{good, "-"}, opts); err != nil {
		t.Fatalf("import: %v\n%s", err, errOut.String())
	}
	for _, want := range []string{"package mypolicies", `networkPolicy: "l3-rule": {`, `clusterTracingPolicy: "l3-rule": {`} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("stdout lacks %q:\n%s", want, out.String())
		}
	}
	if strings.Count(out.String(), "package ") != 1 {
		t.Errorf("stdout must be one CUE file:\n%s", out.String())
	}
	if !strings.Contains(errOut.String(), "2 imported") {
		t.Errorf("report lacks the summary:\n%s", errOut.String())
	}
}

func TestImportOutputDir(t *testing.T) {
	dir := t.TempDir()
	a := writeFile(t, dir, "a/policy.yaml", goodPolicy)
	b := writeFile(t, dir, "b/policy.yaml", strings.ReplaceAll(goodPolicy, "l3-rule", "other"))
	bad := writeFile(t, dir, "bad.yaml", rejectedPolicy)
	out := filepath.Join(dir, "out")
	opts := defaultImportOptions()
	opts.outDir = out
	opts.output = "json"
	var stdout, stderr bytes.Buffer
	err := runImport(strings.NewReader(""), &stdout, &stderr, []string{a, b, bad}, opts)
	if exitCode(err) != exitInvalid {
		t.Fatalf("exit %d, want %d: %v", exitCode(err), exitInvalid, err)
	}
	var rep struct {
		Summary importSummary `json:"summary"`
		Files   []struct {
			File    string `json:"file"`
			Output  string `json:"output"`
			Objects []struct {
				Status      string `json:"status"`
				Diagnostics []struct {
					Code string `json:"code"`
				} `json:"diagnostics"`
			} `json:"objects"`
		} `json:"files"`
	}
	if err := json.Unmarshal(stdout.Bytes(), &rep); err != nil {
		t.Fatalf("report is not JSON: %v\n%s", err, stdout.String())
	}
	if rep.Summary.Objects != 3 || rep.Summary.Imported != 2 || rep.Summary.Rejected != 1 {
		t.Errorf("summary %+v", rep.Summary)
	}
	if len(rep.Files) != 3 || rep.Files[2].Objects[0].Status != "rejected" || rep.Files[2].Objects[0].Diagnostics[0].Code != "PAL902" {
		t.Errorf("files %+v", rep.Files)
	}
	entries, err := os.ReadDir(out)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	// Same base name, so both are named after their path; bad.yaml had
	// nothing to write.
	if len(names) != 2 || !strings.HasSuffix(names[0], "a_policy.cue") || !strings.HasSuffix(names[1], "b_policy.cue") {
		t.Errorf("wrote %v", names)
	}
	if rep.Files[0].Output == "" {
		t.Error("report does not name the written file")
	}
}

func TestImportDuplicatesAcrossFiles(t *testing.T) {
	dir := t.TempDir()
	a := writeFile(t, dir, "a.yaml", goodPolicy)
	b := writeFile(t, dir, "b.yaml", goodPolicy)
	var out, errOut bytes.Buffer
	err := runImport(strings.NewReader(""), &out, &errOut, []string{a, b}, defaultImportOptions())
	if exitCode(err) != exitInvalid {
		t.Fatalf("exit %d, want %d", exitCode(err), exitInvalid)
	}
	if strings.Count(out.String(), `networkPolicy: "l3-rule"`) != 1 || !strings.Contains(errOut.String(), "also imported from") {
		t.Errorf("stdout:\n%s\nstderr:\n%s", out.String(), errOut.String())
	}
}

func TestImportRegistered(t *testing.T) {
	if code := run([]string{"import", filepath.Join(t.TempDir(), "missing.yaml")}); code != exitUsage {
		t.Errorf("exit %d, want %d", code, exitUsage)
	}
}

// TestImportFlags: -o is the report format, as in validate and guard
// test; the directory is --out-dir (-d). The old "-o DIR" is refused with
// a message that names the new flag, and creates nothing.
func TestImportFlags(t *testing.T) {
	dir := t.TempDir()
	good := writeFile(t, dir, "good.yaml", goodPolicy)
	cmd := func(args ...string) (string, string, error) {
		root := newRootCmd()
		var out, errOut bytes.Buffer
		root.SetOut(&out)
		root.SetErr(&errOut)
		root.SetArgs(append([]string{"import"}, args...))
		err := root.Execute()
		return out.String(), errOut.String(), err
	}
	t.Chdir(dir)

	// -o json: a JSON report (on standard error, beside the CUE on
	// standard output), and no directory named json.
	out, errOut, err := cmd("-o", "json", good)
	if err != nil || !strings.Contains(out, `networkPolicy: "l3-rule"`) || !json.Valid([]byte(errOut)) {
		t.Errorf("-o json: %v\nstdout:\n%s\nstderr:\n%s", err, out, errOut)
	}
	if _, err := os.Stat(filepath.Join(dir, "json")); !os.IsNotExist(err) {
		t.Errorf("-o json made a directory: %v", err)
	}

	// -d DIR writes the files; the report goes to standard output.
	out, _, err = cmd("-d", "cue", "-o", "json", good)
	if err != nil || !json.Valid([]byte(out)) {
		t.Errorf("-d cue: %v\n%s", err, out)
	}
	if _, err := os.Stat(filepath.Join(dir, "cue", "good.cue")); err != nil {
		t.Errorf("-d cue: %v", err)
	}
	if _, _, err := cmd("--out-dir", "cue2", good); err != nil {
		t.Errorf("--out-dir: %v", err)
	} else if _, err := os.Stat(filepath.Join(dir, "cue2", "good.cue")); err != nil {
		t.Errorf("--out-dir: %v", err)
	}

	// The old usage, -o DIR, is an error that says where the flag went.
	_, _, err = cmd("-o", "policies", good)
	if exitCode(err) != exitUsage || !strings.Contains(fmt.Sprint(err), "--out-dir (-d)") {
		t.Errorf("-o DIR: exit %d, %v", exitCode(err), err)
	}
	if _, err := os.Stat(filepath.Join(dir, "policies")); !os.IsNotExist(err) {
		t.Errorf("-o DIR made a directory: %v", err)
	}
}
