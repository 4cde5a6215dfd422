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
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/palisade-dev/palisade/internal/validate"
)

const examples = "../../policies/examples"

// testCmd runs "palisadectl test" with args.
func testCmd(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	return runCLI(t, "test", args...)
}

// TestExampleFlowTests runs the flow tests of the example repository, so
// that `make test` fails when a change to the examples breaks one.
func TestExampleFlowTests(t *testing.T) {
	out, errOut, code := testCmd(t, examples, "-o", "json")
	if code != exitOK {
		t.Fatalf("exit %d: %s\n%s", code, errOut, out)
	}
	var rep testReport
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatal(err)
	}
	if rep.Failed != 0 || rep.Passed != len(rep.Tests) {
		t.Fatalf("passed %d, failed %d of %d", rep.Passed, rep.Failed, len(rep.Tests))
	}
	// The set covers what the examples are there to show.
	want := map[string]string{
		"frontend may not call api's admin pages": "deny", // L7 HTTP denied by frontend's rules
		"no ssh into the frontend":                "deny", // default deny
		"frontend calls api":                      "allow",
		"ledger is onboarding in audit mode":      "audit",
	}
	for _, r := range rep.Tests {
		if v, ok := want[r.Name]; ok {
			if got := r.Explanation.Verdict.String(); got != v {
				t.Errorf("%s: verdict %s, want %s", r.Name, got, v)
			}
			if !strings.HasSuffix(r.Pos.File, "flowtests.cue") || r.Pos.Line == 0 {
				t.Errorf("%s: position %s is not in the file the test is written in", r.Name, r.Pos)
			}
			delete(want, r.Name)
		}
	}
	for n := range want {
		t.Errorf("no flow test %q in the examples", n)
	}
}

// TestFlowTestsAreNotPolicies checks that flow tests load beside the
// policies and never as policies: no object, no finding.
func TestFlowTestsAreNotPolicies(t *testing.T) {
	rep, err := validate.Dir(context.Background(), examples, validate.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if !rep.Valid() || len(rep.Tests) == 0 {
		t.Fatalf("valid %v, %d tests", rep.Valid(), len(rep.Tests))
	}
	for _, p := range rep.Objects {
		if p.Kind == "FlowTest" {
			t.Errorf("flow test %s loaded as a policy", p.Name)
		}
	}
	for _, d := range rep.Diagnostics {
		if strings.HasSuffix(d.Pos.File, "flowtests.cue") {
			t.Errorf("finding on a flow test: %s", d)
		}
	}
}

// withTests copies the example repository and adds a file of flow tests
// to its shop package.
func withTests(t *testing.T, src string) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.CopyFS(dir, os.DirFS(examples)); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "shop", "wrong.cue"), []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestFlowTestFailures writes wrong expectations and checks that each
// fails at the line of the expectation, with what was expected, what the
// policies say and the deciding rule's file:line.
func TestFlowTestFailures(t *testing.T) {
	dir := withTests(t, `package shop

import "example.com/policies/lib"

wrong: lib.#FlowTests & {
	"admin pages are open": {
		from: "shop/frontend-7d9f"
		to:   "shop/api-5c8b"
		port: 8080
		http: {path: "/admin", host: "api.shop.svc.cluster.local"}
		expect: "allow"
	}
	"postgres is decided by the wrong policy": {
		from:   "shop/api-5c8b"
		to:     "shop/postgres-0"
		port:   5432
		expect: "allow"
		policy: "shop/frontend"
	}
	"the kernel passes HTTP": {
		from: "shop/frontend-7d9f"
		to:   "shop/api-5c8b"
		port: 8080
		http: {path: "/admin", host: "api.shop.svc.cluster.local"}
		expect: "deny"
		kernel: "allow"
	}
	"no such pod": {
		from:   "shop/nope"
		to:     "shop/api-5c8b"
		port:   8080
		expect: "deny"
	}
	"api reaches postgres": {
		from:   "shop/api-5c8b"
		to:     "shop/postgres-0"
		port:   5432
		expect: "allow"
	}
}
`)
	out, errOut, code := testCmd(t, dir, "--endpoints", filepath.Join(examples, "endpoints.yaml"))
	if code != exitInvalid {
		t.Fatalf("exit %d, want %d: %s\n%s", code, exitInvalid, errOut, out)
	}
	for _, want := range []string{
		// expect at line 11, decided by frontend's egress HTTP rules.
		`shop/wrong.cue:11:11: FAIL admin pages are open: expected allow, got deny, decided at egress: at shop/frontend-7d9f: deny, no L7 rule matches the request in NetworkPolicy shop/frontend spec.egress[1] (shop/frontend.cue:50:4)`,
		`shop/wrong.cue:18:11: FAIL postgres is decided by the wrong policy: expected policy shop/frontend to decide, got shop/api, shop/postgres, decided at egress: at shop/api-5c8b: allow, allowed by NetworkPolicy shop/api spec.egress[1] (shop/api.cue:25:4)`,
		`shop/wrong.cue:26:11: FAIL the kernel passes HTTP: expected the kernel to allow, it would deny: the kernel enforces the deciding rules as written`,
		`shop/wrong.cue:29:11: FAIL no such pod: from: no endpoint "shop/nope" in the endpoints file`,
		" passed, 4 failed\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks\n%s\n---\n%s", want, out)
		}
	}
	if strings.Contains(out, "api reaches postgres") {
		t.Errorf("a passing test is listed without -v:\n%s", out)
	}
}

// TestFlowTestUsage covers the cases that are not test results.
func TestFlowTestUsage(t *testing.T) {
	if _, _, code := testCmd(t, examples, "-o", "yaml"); code != exitUsage {
		t.Errorf("-o yaml: exit %d, want %d", code, exitUsage)
	}
	if _, _, code := testCmd(t, t.TempDir()); code != exitUsage {
		t.Errorf("no endpoints.yaml: exit %d, want %d", code, exitUsage)
	}
	// A repository without flow tests runs nothing, which is a failure,
	// not a pass.
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "p.cue"), []byte(`package p

p: {
	apiVersion: "palisade.dev/v1alpha1"
	kind:       "NetworkPolicy"
	metadata: {name: "p", namespace: "shop"}
	spec: endpointSelector: {}
}
`), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, errOut, code := testCmd(t, dir, "--endpoints", filepath.Join(examples, "endpoints.yaml")); code != exitInvalid {
		t.Errorf("no flow tests: exit %d, want %d: %s", code, exitInvalid, errOut)
	}
}

// TestFlowTestSchemaError checks that a flow test the schema refuses is a
// finding at its field, as for any policy, and no test runs.
func TestFlowTestSchemaError(t *testing.T) {
	dir := withTests(t, `package shop

import "example.com/policies/lib"

wrong: lib.#FlowTests & {
	"maybe": {
		from:   "shop/api-5c8b"
		to:     "shop/postgres-0"
		port:   5432
		expect: "maybe"
	}
}
`)
	out, errOut, code := testCmd(t, dir, "--endpoints", filepath.Join(examples, "endpoints.yaml"))
	if code != exitInvalid {
		t.Fatalf("exit %d, want %d: %s\n%s", code, exitInvalid, errOut, out)
	}
	if !strings.Contains(errOut, "shop/wrong.cue:10:") || out != "" {
		t.Errorf("want a finding at shop/wrong.cue:10, no report; stderr:\n%s\nstdout:\n%s", errOut, out)
	}
}
