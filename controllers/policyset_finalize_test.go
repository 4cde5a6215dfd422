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

package controllers

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "github.com/palisade-dev/palisade/api/v1alpha1"
	"github.com/palisade-dev/palisade/internal/render"
)

// TestPolicySetDelete deletes PolicySets with the manager's controllers
// against the real API server: with prune, exactly the inventory's objects
// go; with prune: false they stay and lose the set's labels; a suspended
// set leaves them untouched.
func TestPolicySetDelete(t *testing.T) {
	needEnv(t)
	apiCUE := strings.Replace(netpol("api", `fromEndpoints: [{matchLabels: app: "web"}]`, 8080), "package shop", "package other", 1)
	files := map[string]string{"shop/web.cue": webCUE, "shop/db.cue": dbCUE, "other/api.cue": apiCUE}
	for _, tc := range []struct {
		name    string
		prune   *bool
		suspend bool
	}{
		{name: "prune"},
		{name: "prune false", prune: ptrTo(false)},
		{name: "suspended", suspend: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			f := newPolicySetFixtureWith(t, files, fixtureOptions{set: func(ps *v1.PolicySet) { ps.Spec.Prune = tc.prune }})
			other := f.addSet("other", "other", nil)
			rev := "main@sha1:" + f.co.Head().String()
			ps := f.waitSet(rev, setReadyIs(metav1.ConditionTrue, v1.SucceededReason, rev))
			f.waitSetKey(other, rev, setReadyIs(metav1.ConditionTrue, v1.SucceededReason, rev))
			if !slices.Contains(ps.Finalizers, PolicySetFinalizer) {
				t.Fatalf("finalizers %v, want %s", ps.Finalizers, PolicySetFinalizer)
			}
			// An object nobody applied, in the same namespace.
			web := f.policies()["web"]
			manual := &v1.NetworkPolicy{ObjectMeta: metav1.ObjectMeta{Name: "manual", Namespace: f.ns}, Spec: *web.Spec.DeepCopy()}
			if err := k8sClient.Create(ctx, manual); err != nil {
				t.Fatal(err)
			}
			if tc.suspend {
				patch := client.RawPatch(types.MergePatchType, []byte(`{"spec":{"suspend":true}}`))
				if err := k8sClient.Patch(ctx, &v1.PolicySet{ObjectMeta: metav1.ObjectMeta{Name: f.set.Name, Namespace: f.ns}}, patch); err != nil {
					t.Fatal(err)
				}
			}
			before := f.policies()
			if got := slices.Sorted(maps.Keys(before)); !slices.Equal(got, []string{"api", "db", "manual", "web"}) {
				t.Fatalf("objects before deletion: %v", got)
			}

			if err := k8sClient.Delete(ctx, &v1.PolicySet{ObjectMeta: metav1.ObjectMeta{Name: f.set.Name, Namespace: f.ns}}); err != nil {
				t.Fatal(err)
			}
			eventually(t, 60*time.Second, func() error {
				err := k8sClient.Get(ctx, f.set, &v1.PolicySet{})
				if apierrors.IsNotFound(err) {
					return nil
				}
				return fmt.Errorf("PolicySet still there: %v", err)
			})

			after := f.policies()
			unchanged := []string{"api", "manual"}
			switch {
			case tc.suspend:
				unchanged = append(unchanged, "db", "web")
			case tc.prune == nil:
				for _, name := range []string{"db", "web"} {
					if _, ok := after[name]; ok {
						t.Errorf("%s was not pruned", name)
					}
				}
			default:
				for _, name := range []string{"db", "web"} {
					o, ok := after[name]
					if !ok {
						t.Errorf("%s was deleted with prune: false", name)
						continue
					}
					if l := o.Labels; l[render.LabelPolicySetName] != "" || l[render.LabelPolicySetNamespace] != "" {
						t.Errorf("%s keeps the set's labels: %v", name, l)
					}
					if o.Annotations[render.AnnotationRevision] != rev {
						t.Errorf("%s lost its revision annotation: %v", name, o.Annotations)
					}
					if !equality.Semantic.DeepEqual(o.Spec, before[name].Spec) {
						t.Errorf("%s spec changed", name)
					}
				}
			}
			for _, name := range unchanged {
				if o, ok := after[name]; !ok || o.ResourceVersion != before[name].ResourceVersion {
					t.Errorf("%s changed or went: present %v, resourceVersion %s → %s", name, ok, before[name].ResourceVersion, o.ResourceVersion)
				}
			}
		})
	}
}
