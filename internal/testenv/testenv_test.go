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
	"testing"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/dynamic"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/palisade-dev/palisade/internal/testenv"
)

var widgetGVR = schema.GroupVersionResource{Group: "test.palisade.dev", Version: "v1alpha1", Resource: "widgets"}

func widget(name string, spec map[string]any) *unstructured.Unstructured {
	u := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "test.palisade.dev/v1alpha1",
		"kind":       "Widget",
		"metadata":   map[string]any{"name": name, "namespace": "default"},
	}}
	if spec != nil {
		u.Object["spec"] = spec
	}
	return u
}

func TestStart(t *testing.T) {
	cfg, c := testenv.Start(t, "testdata")
	ctx := t.Context()

	dc, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	v, err := dc.ServerVersion()
	if err != nil {
		t.Fatalf("server version: %v", err)
	}
	t.Logf("kube-apiserver %s", v.GitVersion)

	// The typed client sees the CRD that Start installed.
	var crd apiextensionsv1.CustomResourceDefinition
	if err := c.Get(ctx, client.ObjectKey{Name: "widgets.test.palisade.dev"}, &crd); err != nil {
		t.Fatalf("get CRD: %v", err)
	}

	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	widgets := dyn.Resource(widgetGVR).Namespace("default")

	t.Run("valid object round-trips", func(t *testing.T) {
		if _, err := widgets.Create(ctx, widget("ok", map[string]any{"size": int64(3)}), metav1.CreateOptions{}); err != nil {
			t.Fatalf("create: %v", err)
		}
		// Read back through the other client to check both see the server.
		got := &unstructured.Unstructured{}
		got.SetAPIVersion("test.palisade.dev/v1alpha1")
		got.SetKind("Widget")
		if err := c.Get(ctx, client.ObjectKey{Namespace: "default", Name: "ok"}, got); err != nil {
			t.Fatalf("get: %v", err)
		}
		size, found, err := unstructured.NestedInt64(got.Object, "spec", "size")
		if err != nil || !found || size != 3 {
			t.Fatalf("spec.size = %d (found %v, err %v), want 3", size, found, err)
		}
	})

	for _, tc := range []struct {
		name string
		spec map[string]any
	}{
		{"size below minimum", map[string]any{"size": int64(0)}},
		{"size not an integer", map[string]any{"size": "three"}},
		{"size missing", map[string]any{}},
		{"spec missing", nil},
	} {
		t.Run("rejects "+tc.name, func(t *testing.T) {
			_, err := widgets.Create(ctx, widget("bad", tc.spec), metav1.CreateOptions{})
			if !apierrors.IsInvalid(err) {
				t.Fatalf("create: got %v, want an Invalid error", err)
			}
			t.Logf("rejected as expected: %v", err)
		})
	}
}

func TestStartWithoutBinariesSkips(t *testing.T) {
	t.Setenv("CI", "")
	t.Setenv(testenv.AssetsEnv, t.TempDir())

	// Run Start in a subtest so its Skip ends only that subtest.
	var skipped bool
	t.Run("start", func(t *testing.T) {
		defer func() { skipped = t.Skipped() }()
		testenv.Start(t)
		t.Error("Start returned without binaries")
	})
	if !skipped {
		t.Fatal("Start did not skip when the binaries are missing")
	}
}
