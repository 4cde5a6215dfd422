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
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/palisade-dev/palisade/internal/capability"
	"github.com/palisade-dev/palisade/internal/diag"
)

// l3Only is a valid repository whose rules the datapath enforces as
// written: validate reports nothing.
const l3Only = `package p

np: {
	apiVersion: "palisade.dev/v1alpha1"
	kind:       "NetworkPolicy"
	metadata: {name: "db", namespace: "shop"}
	spec: {
		endpointSelector: matchLabels: app: "db"
		ingress: [{
			fromEndpoints: [{matchLabels: app: "api"}]
			toPorts: [{ports: [{port: 5432, protocol: "TCP"}]}]
		}]
	}
}
`

// withHTTP is valid, with an HTTP rule that the datapath does not enforce
// (ingress HTTP rules of a host policy: the host's servers are in no pod
// cgroup), so validate warns about it.
const withHTTP = `package p

cnp: {
	apiVersion: "palisade.dev/v1alpha1"
	kind:       "ClusterNetworkPolicy"
	metadata: name: "node-api"
	spec: {
		nodeSelector: matchLabels: "kubernetes.io/os": "linux"
		ingress: [{
			fromEntities: ["cluster"]
			toPorts: [{
				ports: [{port: 8080, protocol: "TCP"}]
				rules: http: [{method: "GET", path: "/api/.*"}]
			}]
		}]
	}
}
`

// TestValidateCapabilityStrict: an L7 rule is accepted with a positioned
// warning; --strict makes it an error and the exit status 1.
func TestValidateCapabilityStrict(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "api.cue", withHTTP)

	out, errOut, code := validateCmd(t, dir)
	if code != exitOK {
		t.Fatalf("exit %d, want 0 (warnings allowed)\n%s%s", code, out, errOut)
	}
	want := "api.cue:13:12: warning PAL060: ClusterNetworkPolicy//node-api: ingress HTTP rules on 8080/TCP are not enforced: the kernel " +
		capability.Table[capability.HTTPHost].Kernel
	if !strings.Contains(out, want) {
		t.Errorf("output lacks\n%s\ngot\n%s", want, out)
	}

	out, _, code = validateCmd(t, "--strict", "-o", "json", dir)
	if code != exitInvalid {
		t.Errorf("--strict: exit %d, want %d\n%s", code, exitInvalid, out)
	}
	var doc struct{ Diagnostics []diag.Diagnostic }
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if len(doc.Diagnostics) != 1 || doc.Diagnostics[0].Code != "PAL060" || doc.Diagnostics[0].Severity != diag.Error ||
		doc.Diagnostics[0].Path != "spec.ingress[0].toPorts[0].rules.http" {
		t.Errorf("--strict json: %+v", doc.Diagnostics)
	}

	// --strict fails on warnings only: a repository the datapath enforces
	// as written passes.
	clean := t.TempDir()
	writeFile(t, clean, "db.cue", l3Only)
	if out, errOut, code := validateCmd(t, "--strict", clean); code != exitOK || strings.Contains(out, "PAL") {
		t.Errorf("--strict on L3/L4 rules: exit %d\n%s%s", code, out, errOut)
	}
}

// TestValidateSeveralDirs validates each directory on its own and reports
// the findings of all; one invalid directory makes the exit status 1.
func TestValidateSeveralDirs(t *testing.T) {
	a, b, bad := t.TempDir(), t.TempDir(), t.TempDir()
	writeFile(t, a, "api.cue", withHTTP)
	// The same policy name in another directory is another PolicySet's
	// business, not a duplicate.
	writeFile(t, b, "api.cue", withHTTP)
	writeFile(t, bad, "db.cue", strings.Replace(l3Only, "port: 5432", "port: 70000", 1))

	out, errOut, code := validateCmd(t, a, b)
	if code != exitOK {
		t.Fatalf("exit %d\n%s%s", code, out, errOut)
	}
	for _, d := range []string{a, b} {
		if !strings.Contains(out, filepath.ToSlash(d)+"/api.cue:13:12: warning PAL060") {
			t.Errorf("no warning for %s:\n%s", d, out)
		}
	}
	if strings.Contains(out, "PAL103") {
		t.Errorf("policies of two directories reported as duplicates:\n%s", out)
	}

	out, _, code = validateCmd(t, a, bad)
	if code != exitInvalid || !strings.Contains(out, filepath.ToSlash(bad)+"/db.cue:") || !strings.Contains(out, "error") ||
		!strings.Contains(out, filepath.ToSlash(a)+"/api.cue:13:12") {
		t.Errorf("one bad directory: exit %d\n%s", code, out)
	}

	if _, _, code := validateCmd(t); code != exitUsage {
		t.Errorf("no directory: exit %d, want %d", code, exitUsage)
	}
}
