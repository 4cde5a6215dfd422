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
	"context"
	"encoding/json"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	git "github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing/object"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/palisade-dev/palisade/internal/guard"
	policymodel "github.com/palisade-dev/palisade/internal/policy"
	"github.com/palisade-dev/palisade/internal/render"
	"github.com/palisade-dev/palisade/internal/validate"
)

// policy is a NetworkPolicy in CUE; ns "" leaves the namespace to the
// PolicySet.
func policy(ns, name, spec string) string {
	meta := `name: "` + name + `"`
	if ns != "" {
		meta += `, namespace: "` + ns + `"`
	}
	return `package policies

"` + name + `": {
	apiVersion: "palisade.dev/v1alpha1"
	kind:       "NetworkPolicy"
	metadata: {` + meta + `}
	spec: {
` + spec + `
	}
}
`
}

const (
	webSpec     = "\t\tendpointSelector: matchLabels: app: \"web\"\n\t\tingress: [{fromEntities: [\"cluster\"], toPorts: [{ports: [{port: 8080, protocol: \"TCP\"}]}]}]"
	sshSpec     = "\t\tendpointSelector: matchLabels: app: \"web\"\n\t\tingress: [{fromEntities: [\"cluster\"], toPorts: [{ports: [{port: 8080, protocol: \"TCP\"}]}]}, {fromEntities: [\"world\"], toPorts: [{ports: [{port: 22, protocol: \"TCP\"}]}]}]"
	denySpec    = "\t\tendpointSelector: {}\n\t\tenableDefaultDeny: {ingress: true, egress: true}"
	allowAllSpc = "\t\tendpointSelector: matchLabels: app: \"dns\"\n\t\tingress: [{fromEntities: [\"all\"], toPorts: [{ports: [{port: 53, protocol: \"UDP\"}]}]}]"
)

const unscopedTracing = `package policies

"kill-shell": {
	apiVersion: "palisade.dev/v1alpha1"
	kind:       "TracingPolicy"
	metadata: {name: "kill-shell", namespace: "shop"}
	spec: {
		mode: "audit"
		kprobes: [{
			call: "security_bprm_check"
			selectors: [{matchActions: [{action: "Sigkill"}]}]
		}]
	}
}
`

// guardCase is one change: the repository's files before and after (nil
// deletes), the head commit's message and what the guards must say.
type guardCase struct {
	name       string
	base, head map[string]*string
	message    string
	params     string // the PolicySet's guard parameters, JSON
	overrides  []string
	allowed    bool
	denies     []string // guards that deny
	warns      []string // guards that warn
}

func s(v string) *string { return &v }

var guardCases = []guardCase{
	{
		name:    "create passes",
		base:    map[string]*string{"shop/deny.cue": s(policy("shop", "default-deny", denySpec))},
		head:    map[string]*string{"shop/web.cue": s(policy("shop", "web", webSpec))},
		allowed: true,
	},
	{
		name:   "update opens ssh to the world",
		base:   map[string]*string{"shop/web.cue": s(policy("shop", "web", webSpec))},
		head:   map[string]*string{"shop/web.cue": s(policy("shop", "web", sshSpec))},
		denies: []string{"admin_ports"},
	},
	{
		name:   "delete of a default deny",
		base:   map[string]*string{"shop/deny.cue": s(policy("shop", "default-deny", denySpec)), "shop/web.cue": s(policy("shop", "web", webSpec))},
		head:   map[string]*string{"shop/deny.cue": nil},
		denies: []string{"default_deny"},
	},
	{
		name:    "delete passes",
		base:    map[string]*string{"shop/deny.cue": s(policy("shop", "default-deny", denySpec)), "shop/web.cue": s(policy("shop", "web", webSpec))},
		head:    map[string]*string{"shop/web.cue": nil},
		allowed: true,
	},
	{
		name:    "unscoped audit tracing warns",
		base:    map[string]*string{"shop/web.cue": s(policy("", "web", webSpec))},
		head:    map[string]*string{"shop/trace.cue": s(unscopedTracing)},
		allowed: true,
		warns:   []string{"tracing_scope"},
	},
	{
		name:   "allow-all in a protected namespace",
		base:   map[string]*string{"shop/web.cue": s(policy("shop", "web", webSpec))},
		head:   map[string]*string{"kube-system/dns.cue": s(policy("kube-system", "dns", allowAllSpc))},
		denies: []string{"allow_all"},
	},
	{
		name:   "too many changes",
		base:   map[string]*string{"shop/web.cue": s(policy("shop", "web", webSpec))},
		head:   map[string]*string{"shop/a.cue": s(policy("shop", "a", webSpec)), "shop/b.cue": s(policy("shop", "b", webSpec)), "shop/web.cue": nil},
		params: `{"max_changes": 2}`,
		denies: []string{"max_changes"},
	},
	{
		name:      "too many changes, overridden",
		base:      map[string]*string{"shop/web.cue": s(policy("shop", "web", webSpec))},
		head:      map[string]*string{"shop/a.cue": s(policy("shop", "a", webSpec)), "shop/b.cue": s(policy("shop", "b", webSpec)), "shop/web.cue": nil},
		params:    `{"max_changes": 2}`,
		message:   "Split the web policy\n\nPalisade-Override: max-changes\n",
		overrides: []string{"max-changes"},
		allowed:   true,
		warns:     []string{"max_changes"},
	},
}

// gitRepo is a real Git repository in a temporary directory with the
// policies under policies/.
type gitRepo struct {
	dir  string
	repo *git.Repository
	wt   *git.Worktree
}

func newGitRepo(t *testing.T) *gitRepo {
	t.Helper()
	dir := t.TempDir()
	r, err := git.PlainInit(dir, false)
	if err != nil {
		t.Fatal(err)
	}
	wt, err := r.Worktree()
	if err != nil {
		t.Fatal(err)
	}
	return &gitRepo{dir: dir, repo: r, wt: wt}
}

// write applies files (nil deletes) under policies/.
func (g *gitRepo) write(t *testing.T, files map[string]*string) {
	t.Helper()
	for name, src := range files {
		p := filepath.Join(g.dir, "policies", name)
		if src == nil {
			if err := os.Remove(p); err != nil {
				t.Fatal(err)
			}
			continue
		}
		writeFile(t, filepath.Join(g.dir, "policies"), name, *src)
	}
}

func (g *gitRepo) commit(t *testing.T, msg string) *object.Commit {
	t.Helper()
	if err := g.wt.AddWithOptions(&git.AddOptions{All: true}); err != nil {
		t.Fatal(err)
	}
	h, err := g.wt.Commit(msg, &git.CommitOptions{Author: &object.Signature{Name: "Ann Author", Email: "ann@example.com", When: time.Unix(1_700_000_000, 0)}})
	if err != nil {
		t.Fatal(err)
	}
	c, err := g.repo.CommitObject(h)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// validateCmd runs palisadectl validate with args.
func validateCmd(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	return runCLI(t, "validate", args...)
}

// runCLI runs palisadectl's command with args and returns its output,
// its error output (with a usage error's message) and its exit code.
func runCLI(t *testing.T, command string, args ...string) (string, string, int) {
	t.Helper()
	root := newRootCmd()
	var out, errOut bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&errOut)
	root.SetArgs(append([]string{command}, args...))
	err := root.Execute()
	if err != nil && exitCode(err) == exitUsage {
		errOut.WriteString(err.Error())
	}
	return out.String(), errOut.String(), exitCode(err)
}

// rendered is what the PolicySet controller applies for the policies of
// one revision: render.Objects, owned by the PolicySet shop/main.
func rendered(t *testing.T, ps []*validate.Policy, revision string) []policymodel.Object {
	t.Helper()
	objs, err := render.Objects(ps, render.Owner{Namespace: "shop", Name: "main", Revision: revision})
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range objs {
		if o.GetLabels()[render.LabelPolicySetName] != "main" || o.GetAnnotations()[render.AnnotationSource] == "" || o.GetAnnotations()[render.AnnotationRevision] != revision {
			t.Fatalf("render.Objects did not stamp %s/%s: labels %v, annotations %v", o.GetNamespace(), o.GetName(), o.GetLabels(), o.GetAnnotations())
		}
	}
	return objs
}

// fromAPIServer returns obj as a client reads it back from the API server:
// its CRD JSON with the fields the server sets, decoded into a fresh typed
// object.
// storedVersions numbers the contents fromAPIServer has stored.
var storedVersions atomic.Int64

func fromAPIServer(t *testing.T, obj runtime.Object, i int) runtime.Object {
	t.Helper()
	js, err := json.Marshal(obj)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(js, &m); err != nil {
		t.Fatal(err)
	}
	md := m["metadata"].(map[string]any)
	// As an API server stores them: an object's UID is its own, and a
	// resourceVersion is never given to two contents (reviews may cache
	// what they derive from an object by the two).
	ns, _ := md["namespace"].(string)
	name, _ := md["name"].(string)
	md["uid"] = fmt.Sprintf("6f1c7f2e-0000-4000-8000-%012x", crc32.ChecksumIEEE([]byte(fmt.Sprintf("%T/%s/%s", obj, ns, name))))
	md["resourceVersion"] = fmt.Sprint(1000 + i + 1000*int(storedVersions.Add(1)))
	md["generation"] = 3
	md["creationTimestamp"] = "2026-01-02T03:04:05Z"
	md["managedFields"] = []any{map[string]any{"manager": "palisade-manager", "operation": "Apply", "apiVersion": "palisade.dev/v1alpha1", "fieldsType": "FieldsV1", "fieldsV1": map[string]any{"f:spec": map[string]any{}}}}
	js, err = json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	out := obj.DeepCopyObject()
	if err := json.Unmarshal(js, out); err != nil {
		t.Fatal(err)
	}
	return out
}

// loadAt validates the repository's policies as they are on disk.
func loadAt(t *testing.T, dir string) []*validate.Policy {
	t.Helper()
	rep, err := validate.Dir(context.Background(), dir, validate.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if !rep.Valid() {
		t.Fatalf("%s does not validate: %v", dir, rep.Diagnostics)
	}
	return rep.Objects
}

// TestGuardParityCLIAndCluster is the must-show of the guards: over a
// table of changes (create, update, delete; deny, warn, pass, override),
// `palisadectl validate --base` on a real Git repository and the
// controller's path (guard.ReviewObjects on objects as they come back
// from the API server) write byte-identical decision JSON, and that
// decision says what the table expects.
func TestGuardParityCLIAndCluster(t *testing.T) {
	for _, tc := range guardCases {
		t.Run(tc.name, func(t *testing.T) {
			r := newGitRepo(t)
			r.write(t, tc.base)
			baseCommit := r.commit(t, "base\n")
			baseDir := t.TempDir() // what the cluster has applied: the base revision
			for name, src := range tc.base {
				writeFile(t, baseDir, name, *src)
			}
			r.write(t, tc.head)
			msg := tc.message
			if msg == "" {
				msg = "change\n"
			}
			headCommit := r.commit(t, msg)

			// CLI: the change between the base commit and the working tree.
			decisionFile := filepath.Join(t.TempDir(), "decision.json")
			changeSetFile := filepath.Join(t.TempDir(), "changeset.json")
			args := []string{"--base", baseCommit.Hash.String(), "--policy-set", "shop/main", "--decision", decisionFile, "--change-set", changeSetFile, "-o", "json", filepath.Join(r.dir, "policies")}
			if tc.params != "" {
				args = append(args, "--guard-data", writeFile(t, t.TempDir(), "params.json", tc.params))
			}
			out, errOut, code := validateCmd(t, args...)
			wantCode := exitOK
			if !tc.allowed {
				wantCode = exitInvalid
			}
			if code != wantCode {
				t.Fatalf("exit %d, want %d\n%s%s", code, wantCode, out, errOut)
			}
			var report struct {
				Valid       bool `json:"valid"`
				Diagnostics []struct {
					Code, Message string
				} `json:"diagnostics"`
			}
			if err := json.Unmarshal([]byte(out), &report); err != nil {
				t.Fatalf("validate -o json: %v\n%s", err, out)
			}
			cli, err := os.ReadFile(decisionFile)
			if err != nil {
				t.Fatal(err)
			}

			// Cluster: the controller's objects, read back from the API server.
			var params map[string]any
			if tc.params != "" {
				if err := json.Unmarshal([]byte(tc.params), &params); err != nil {
					t.Fatal(err)
				}
			}
			meta := guard.Meta{
				Revision: headCommit.Hash.String(), PreviousRevision: baseCommit.Hash.String(),
				Author:    guard.Author{Name: headCommit.Author.Name, Email: headCommit.Author.Email},
				PolicySet: guard.PolicySetRef{Namespace: "shop", Name: "main"},
				Overrides: tc.overrides, Params: params,
			}
			// Both sides go through render.Objects and back through JSON, as
			// the controller's client reads them: before at the base
			// revision, after at the new one, so render's labels and
			// annotations (revision included) differ between the sides and
			// must not make unchanged policies look changed.
			var before, after []runtime.Object
			for i, o := range rendered(t, loadAt(t, baseDir), baseCommit.Hash.String()) {
				obj := fromAPIServer(t, o, i)
				// A typed client's reads (its cache's, say) often lack
				// apiVersion and kind.
				obj.GetObjectKind().SetGroupVersionKind(schema.GroupVersionKind{})
				before = append(before, obj)
			}
			for i, o := range rendered(t, loadAt(t, filepath.Join(r.dir, "policies")), headCommit.Hash.String()) {
				after = append(after, fromAPIServer(t, o, 100+i))
			}
			g, diags := guard.Compile(guard.Builtin())
			if diags.HasErrors() {
				t.Fatal(diags)
			}
			cluster, d, err := guard.ReviewObjects(context.Background(), g, before, after, meta, guard.Options{})
			if err != nil {
				t.Fatal(err)
			}

			if !bytes.Equal(cli, cluster) {
				t.Fatalf("decisions differ\nCLI:\n%s\ncluster:\n%s", cli, cluster)
			}
			// So is what the guards saw: the change-set documents.
			cliCS, err := os.ReadFile(changeSetFile)
			if err != nil {
				t.Fatal(err)
			}
			cs, err := guard.ObjectsChangeSet(before, after, meta)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(cliCS, cs.JSON()) {
				t.Fatalf("change sets differ\nCLI:\n%s\ncluster:\n%s", cliCS, cs.JSON())
			}
			var denies, warns []string
			for _, f := range d.Denies {
				denies = append(denies, f.Guard)
			}
			for _, f := range d.Warnings {
				warns = append(warns, f.Guard)
			}
			if d.Allowed != tc.allowed || !slices.Equal(slices.Compact(denies), tc.denies) || !slices.Equal(slices.Compact(warns), tc.warns) || len(d.Errors) > 0 {
				t.Errorf("decision: allowed %v, denies %v, warnings %v, want %v, %v, %v\n%s", d.Allowed, denies, warns, tc.allowed, tc.denies, tc.warns, cluster)
			}
			// The CLI reports each finding as a diagnostic too.
			for _, f := range d.Denies {
				if !slices.ContainsFunc(report.Diagnostics, func(x struct{ Code, Message string }) bool {
					return x.Code == "PAL601" && strings.Contains(x.Message, f.Message)
				}) {
					t.Errorf("validate output lacks PAL601 %q:\n%s", f.Message, out)
				}
			}
			if report.Valid != tc.allowed {
				t.Errorf("validate output valid=%v, want %v", report.Valid, tc.allowed)
			}
		})
	}
}

// TestValidateBaseErrors: guard flags without --base, an unknown base
// revision, a directory outside Git, broken external guards.
func TestValidateBaseErrors(t *testing.T) {
	r := newGitRepo(t)
	r.write(t, map[string]*string{"shop/web.cue": s(policy("shop", "web", webSpec))})
	r.commit(t, "base\n")
	dir := filepath.Join(r.dir, "policies")
	bad := writeFile(t, t.TempDir(), "bad.rego", "package palisade.guards.bad\n\ndeny contains msg if {\n\tmsg := nope(input)\n}\n")

	if _, errOut, code := validateCmd(t, "--guards", filepath.Dir(bad), dir); code != exitUsage || !strings.Contains(errOut, "--guards needs --base") {
		t.Errorf("--guards without --base: exit %d, %s", code, errOut)
	}
	if _, errOut, code := validateCmd(t, "--base", "no-such-ref", dir); code != exitUsage || !strings.Contains(errOut, "no-such-ref") {
		t.Errorf("unknown ref: exit %d, %s", code, errOut)
	}
	notGit := t.TempDir()
	writeFile(t, notGit, "web.cue", policy("shop", "web", webSpec))
	if _, errOut, code := validateCmd(t, "--base", "HEAD", notGit); code != exitUsage || !strings.Contains(errOut, "not in a Git repository") {
		t.Errorf("outside Git: exit %d, %s", code, errOut)
	}
	out, _, code := validateCmd(t, "--base", "HEAD", "--guards", "ext="+filepath.Dir(bad), dir)
	if code != exitInvalid || !strings.Contains(out, "ext/bad.rego:4:9: error PAL603: undefined function nope") || strings.Contains(out, "PAL601") {
		t.Errorf("broken guard: exit %d\n%s", code, out)
	}
	// An unchanged working tree is an empty change: allowed.
	out, _, code = validateCmd(t, "--base", "HEAD", dir)
	if code != exitOK {
		t.Errorf("no change: exit %d\n%s", code, out)
	}
}

// TestValidateBaseMissingDir: a policy directory that does not exist at
// the base makes every policy a creation.
func TestValidateBaseMissingDir(t *testing.T) {
	r := newGitRepo(t)
	writeFile(t, r.dir, "README.md", "repo\n")
	base := r.commit(t, "init\n")
	r.write(t, map[string]*string{"shop/web.cue": s(policy("shop", "web", sshSpec))})
	cs := filepath.Join(t.TempDir(), "cs.json")
	out, _, code := validateCmd(t, "--base", base.Hash.String(), "--change-set", cs, filepath.Join(r.dir, "policies"))
	if code != exitInvalid || !strings.Contains(out, "admin_ports") {
		t.Errorf("exit %d\n%s", code, out)
	}
	b, err := os.ReadFile(cs)
	if err != nil {
		t.Fatal(err)
	}
	var doc guard.ChangeSet
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	if doc.Summary.Create != 1 || doc.PreviousRevision != base.Hash.String() || !strings.HasSuffix(doc.Revision, "-dirty") || doc.Author.Name != "Ann Author" {
		t.Errorf("change set: %s", b)
	}
}

// TestGuardTestCommand runs `palisadectl guard test` on a directory of
// user guards with a passing and a failing test, and on one that does
// not compile.
func TestGuardTestCommand(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "team.rego", "package palisade.guards.team\n\ndeny contains c.id if {\n\tsome c in input.changes\n\tc.op == \"delete\"\n}\n")
	writeFile(t, dir, "team_test.rego", `package palisade.guards.team_test

import data.palisade.guards.team
import data.palisade.testlib

test_delete_denied if {
	count(team.deny) == 1 with input as testlib.changeset([testlib.change("delete", "NetworkPolicy/shop/a", {})], {})
}

test_update_denied if {
	count(team.deny) == 1 with input as testlib.changeset([testlib.change("update", "NetworkPolicy/shop/a", {})], {})
}
`)
	run := func(args ...string) (string, int) {
		root := newRootCmd()
		var out bytes.Buffer
		root.SetOut(&out)
		root.SetErr(&out)
		root.SetArgs(append([]string{"guard", "test"}, args...))
		err := root.Execute()
		return out.String(), exitCode(err)
	}
	out, code := run("user=" + dir)
	if code != exitInvalid || !strings.Contains(out, "user/team_test.rego:10:1: FAIL data.palisade.guards.team_test.test_update_denied") || strings.Contains(out, "test_delete_denied") {
		t.Errorf("exit %d\n%s", code, out)
	}
	out, code = run("-o", "json", "user="+dir)
	var res struct{ Passed, Failed int }
	if err := json.Unmarshal([]byte(out), &res); err != nil || code != exitInvalid || res.Failed != 1 || res.Passed < 10 {
		t.Errorf("json: exit %d, %+v, %v", code, res, err)
	}
	if err := os.Remove(filepath.Join(dir, "team_test.rego")); err != nil {
		t.Fatal(err)
	}
	if out, code = run(dir); code != exitOK || !strings.Contains(out, "0 failed") {
		t.Errorf("built-in tests with a user guard: exit %d\n%s", code, out)
	}
	writeFile(t, dir, "broken.rego", "package palisade.guards.broken\n\ndeny contains x if {\n")
	if out, code = run("user=" + dir); code != exitInvalid || !strings.Contains(out, "user/broken.rego:") || !strings.Contains(out, "PAL603") {
		t.Errorf("broken: exit %d\n%s", code, out)
	}
}
