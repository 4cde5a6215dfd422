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

package v1alpha1_test

import (
	"context"
	"strings"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/palisade-dev/palisade/internal/testenv"
)

// TestGitOpsCRDsInAPIServer installs every generated CRD into a real
// kube-apiserver and checks that the GitOps kinds' schema and CEL rules
// accept good objects and reject bad ones there, on create and update.
func TestGitOpsCRDsInAPIServer(t *testing.T) {
	_, c := testenv.Start(t, testenv.RepoPath(t, "config", "crd", "bases"))
	ctx := context.Background()

	const (
		repo    = "apiVersion: palisade.dev/v1alpha1\nkind: PolicyRepository\nmetadata: {name: r, namespace: default}\n"
		pset    = "apiVersion: palisade.dev/v1alpha1\nkind: PolicySet\nmetadata: {name: s, namespace: default}\n"
		nodeEnf = "apiVersion: palisade.dev/v1alpha1\nkind: NodeEnforcement\n"
		ident   = "apiVersion: palisade.dev/v1alpha1\nkind: Identity\n"
	)
	for _, tc := range []struct {
		name, obj, wantErr string // wantErr "" means accepted
	}{
		{"repo ok", repo + "spec: {url: 'https://git.example/p.git', interval: 1m, ref: {branch: main, commit: " + strings.Repeat("a", 40) + "}}", ""},
		{"repo ssh ok", strings.Replace(repo, "name: r,", "name: r2,", 1) + "spec: {url: 'ssh://git@git.example/p.git', interval: 1m30s, ref: {semver: '>=1.0.0'}}", ""},
		{"repo bad scheme", repo + "spec: {url: 'file:///etc', interval: 1m}", "spec.url"},
		{"repo bad interval", repo + "spec: {url: 'https://x/y', interval: soon}", "spec.interval"},
		{"repo tag and semver", repo + "spec: {url: 'https://x/y', interval: 1m, ref: {tag: v1, semver: '1.x'}}", "at most one of tag, semver and commit"},
		{"repo branch and tag", repo + "spec: {url: 'https://x/y', interval: 1m, ref: {branch: main, tag: v1}}", "branch cannot be combined"},
		{"repo short commit", repo + "spec: {url: 'https://x/y', interval: 1m, ref: {commit: abc}}", "spec.ref.commit"},
		{"repo verify without secret", repo + "spec: {url: 'https://x/y', interval: 1m, verify: {mode: HEAD}}", "spec.verify.secretRef"},
		{"repo verify bad mode", repo + "spec: {url: 'https://x/y', interval: 1m, verify: {mode: all, secretRef: {name: k}}}", "spec.verify.mode"},
		{"set ok", pset + "spec: {sourceRef: {name: r}, path: ./prod, interval: 5m, mode: audit, guards: {disableBuiltIn: [x], sources: [{sourceRef: {name: g}, path: guards}]}}", ""},
		{"set dotdot", pset + "spec: {sourceRef: {name: r}, path: prod/../../etc, interval: 5m}", "must not contain '..'"},
		{"set guard dotdot", pset + "spec: {sourceRef: {name: r}, interval: 5m, guards: {sources: [{sourceRef: {name: g}, path: ..}]}}", "must not contain '..'"},
		{"set bad kind", pset + "spec: {sourceRef: {kind: Bucket, name: r}, interval: 5m}", "spec.sourceRef.kind"},
		{"set bad mode", pset + "spec: {sourceRef: {name: r}, interval: 5m, mode: block}", "spec.mode"},
		{"identity ok", ident + "metadata: {name: '256'}\nspec: {labels: {io.kubernetes.pod.namespace: shop, app: web}}", ""},
		{"identity reserved number", ident + "metadata: {name: '7'}\nspec: {labels: {io.kubernetes.pod.namespace: shop}}", "256 to 16777215"},
		{"identity not a number", ident + "metadata: {name: web}\nspec: {labels: {io.kubernetes.pod.namespace: shop}}", "256 to 16777215"},
		{"identity too big", ident + "metadata: {name: '16777216'}\nspec: {labels: {io.kubernetes.pod.namespace: shop}}", "256 to 16777215"},
		{"identity no namespace", ident + "metadata: {name: '300'}\nspec: {labels: {app: web}}", "must include io.kubernetes.pod.namespace"},
		{"node ok", nodeEnf + "metadata: {name: n1}\nspec: {nodeName: n1}", ""},
		{"node name mismatch", nodeEnf + "metadata: {name: n2}\nspec: {nodeName: n1}", "must equal spec.nodeName"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			u := parseUnstructured(t, tc.obj)
			err := c.Create(ctx, u)
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("want accepted, got %v", err)
			case tc.wantErr != "" && err == nil:
				t.Fatalf("want rejected with %q, got accepted", tc.wantErr)
			case tc.wantErr != "" && !apierrors.IsInvalid(err):
				t.Fatalf("want an Invalid error, got %v", err)
			case tc.wantErr != "" && !strings.Contains(err.Error(), tc.wantErr):
				t.Fatalf("want an error containing %q, got %v", tc.wantErr, err)
			}
		})
	}

	// Updates: an identity's labels and a node report's node never change.
	t.Run("identity labels immutable", func(t *testing.T) {
		u := getUnstructured(t, c, ident, "256")
		if err := unstructured.SetNestedField(u.Object, "db", "spec", "labels", "app"); err != nil {
			t.Fatal(err)
		}
		err := c.Update(ctx, u)
		if err == nil || !strings.Contains(err.Error(), "labels are immutable") {
			t.Fatalf("want 'labels are immutable', got %v", err)
		}
	})
	t.Run("identity status writable", func(t *testing.T) {
		u := getUnstructured(t, c, ident, "256")
		if err := unstructured.SetNestedField(u.Object, "2026-01-02T03:04:05Z", "status", "unusedSince"); err != nil {
			t.Fatal(err)
		}
		if err := c.Status().Update(ctx, u); err != nil {
			t.Fatalf("status subresource: %v", err)
		}
	})
	t.Run("set prune defaults to true", func(t *testing.T) {
		u := &unstructured.Unstructured{}
		u.SetAPIVersion("palisade.dev/v1alpha1")
		u.SetKind("PolicySet")
		if err := c.Get(ctx, client.ObjectKey{Namespace: "default", Name: "s"}, u); err != nil {
			t.Fatal(err)
		}
		prune, found, _ := unstructured.NestedBool(u.Object, "spec", "prune")
		kind, _, _ := unstructured.NestedString(u.Object, "spec", "sourceRef", "kind")
		if !found || !prune || kind != "PolicyRepository" {
			t.Fatalf("defaults: prune=%v (found %v), sourceRef.kind=%q", prune, found, kind)
		}
	})
}

func parseUnstructured(t *testing.T, doc string) *unstructured.Unstructured {
	t.Helper()
	u := &unstructured.Unstructured{}
	if err := yaml.Unmarshal([]byte(doc), &u.Object); err != nil {
		t.Fatalf("%v\n%s", err, doc)
	}
	return u
}

func getUnstructured(t *testing.T, c client.Client, header, name string) *unstructured.Unstructured {
	t.Helper()
	u := parseUnstructured(t, header)
	if err := c.Get(context.Background(), client.ObjectKey{Name: name}, u); err != nil {
		t.Fatal(err)
	}
	return u
}
