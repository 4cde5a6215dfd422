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

package testenv_test

import (
	"context"
	"reflect"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/palisade-dev/palisade/api/v1alpha1"
	"github.com/palisade-dev/palisade/internal/testenv"
	"github.com/palisade-dev/palisade/internal/validate"
)

// TestExamplesApplyToRealAPIServer installs Palisade's generated CRDs into a
// real kube-apiserver and creates every policy of policies/examples, as
// the validator decoded it, then reads each back: what CI accepts, the
// cluster accepts and stores unchanged.
func TestExamplesApplyToRealAPIServer(t *testing.T) {
	cfg, _ := testenv.Start(t, testenv.RepoPath(t, "config", "crd", "bases"))
	scheme := testenv.Scheme()
	if err := v1alpha1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	c, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()

	rep, err := validate.Dir(ctx, testenv.RepoPath(t, "policies", "examples"), validate.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if !rep.Valid() || len(rep.Objects) == 0 {
		t.Fatalf("examples do not validate: %v", rep.Diagnostics)
	}
	namespaces := map[string]bool{}
	for _, p := range rep.Objects {
		var obj client.Object
		var spec func(client.Object) any
		switch {
		case p.NetworkPolicy != nil:
			obj, spec = p.NetworkPolicy, func(o client.Object) any { return o.(*v1alpha1.NetworkPolicy).Spec }
		case p.ClusterNetworkPolicy != nil:
			obj, spec = p.ClusterNetworkPolicy, func(o client.Object) any { return o.(*v1alpha1.ClusterNetworkPolicy).Spec }
		case p.TracingPolicy != nil:
			obj, spec = p.TracingPolicy, func(o client.Object) any { return o.(*v1alpha1.TracingPolicy).Spec }
		case p.ClusterTracingPolicy != nil:
			obj, spec = p.ClusterTracingPolicy, func(o client.Object) any { return o.(*v1alpha1.ClusterTracingPolicy).Spec }
		}
		if ns := obj.GetNamespace(); ns != "" && !namespaces[ns] {
			err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}})
			if err != nil && !apierrors.IsAlreadyExists(err) {
				t.Fatal(err)
			}
			namespaces[ns] = true
		}
		want := spec(obj)
		if err := c.Create(ctx, obj); err != nil {
			t.Errorf("%s (%s): the API server refused it: %v", p.ID(), p.Pos, err)
			continue
		}
		got := obj.DeepCopyObject().(client.Object)
		if err := c.Get(ctx, client.ObjectKeyFromObject(obj), got); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(spec(got), want) {
			t.Errorf("%s: spec changed on the way through the API server\ngot  %+v\nwant %+v", p.ID(), spec(got), want)
		}
	}
	t.Logf("%d policies created and read back", len(rep.Objects))
}
