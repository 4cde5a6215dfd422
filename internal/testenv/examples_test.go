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
	"encoding/json"
	"fmt"
	"reflect"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/diff"
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
	c := startWithCRDs(t)
	ctx := context.Background()
	t.Run("the comparison sees a server change", func(t *testing.T) { roundTripSeesServerChanges(t, c) })

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
		sent, stored, err := roundTrip(ctx, c, obj)
		if err != nil {
			t.Errorf("%s (%s): %v", p.ID(), p.Pos, err)
			continue
		}
		if !reflect.DeepEqual(spec(stored), spec(sent)) {
			t.Errorf("%s (%s): spec changed on the way through the API server (- sent, + stored):\n%s", p.ID(), p.Pos, diff.Diff(spec(sent), spec(stored)))
		}
	}
	t.Logf("%d policies created and read back", len(rep.Objects))
}

// roundTripSeesServerChanges is the comparison's negative control: a
// PolicySet whose guard source names no kind comes back with the CRD's
// default kind, a change deep inside a pointer and a slice (where a copy
// that shares them with the object the reply is decoded into would have
// changed too), and the comparison above must see it.
func roundTripSeesServerChanges(t *testing.T, c client.Client) {
	ctx := context.Background()
	if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "roundtrip"}}); err != nil {
		t.Fatal(err)
	}
	prune := true
	ps := &v1alpha1.PolicySet{ObjectMeta: metav1.ObjectMeta{Namespace: "roundtrip", Name: "defaulted"},
		Spec: v1alpha1.PolicySetSpec{
			SourceRef: v1alpha1.SourceReference{Kind: v1alpha1.SourceKindPolicyRepository, Name: "policies"},
			Interval:  metav1.Duration{Duration: time.Minute},
			Prune:     &prune,
			Guards:    &v1alpha1.Guards{Sources: []v1alpha1.GuardSource{{SourceRef: v1alpha1.SourceReference{Name: "security"}}}},
		}}
	sent, stored, err := roundTrip(ctx, c, ps)
	if err != nil {
		t.Fatal(err)
	}
	want, got := sent.(*v1alpha1.PolicySet).Spec, stored.(*v1alpha1.PolicySet).Spec
	if reflect.DeepEqual(got, want) {
		t.Fatalf("the server defaulted spec.guards.sources[0].sourceRef.kind, yet sent and stored compare equal: %+v", got.Guards)
	}
	if k := got.Guards.Sources[0].SourceRef.Kind; k != v1alpha1.SourceKindPolicyRepository {
		t.Errorf("stored guard source kind = %q, want the CRD default %q", k, v1alpha1.SourceKindPolicyRepository)
	}
	if k := want.Guards.Sources[0].SourceRef.Kind; k != "" {
		t.Errorf("sent guard source kind = %q: the server's reply reached the object as sent", k)
	}
	t.Logf("difference seen (- sent, + stored):\n%s", diff.Diff(want, got))
}

func startWithCRDs(t *testing.T) client.Client {
	t.Helper()
	cfg, _ := testenv.Start(t, testenv.RepoPath(t, "config", "crd", "bases"))
	scheme := testenv.Scheme()
	if err := v1alpha1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	c, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// roundTrip creates obj and returns it as sent and as stored, each decoded
// into an object of its own: sent from the JSON the client sends, taken
// before the call (the client decodes the server's reply into obj, which
// shares slices, maps and pointers with anything copied from it
// shallowly), stored from a read into a fresh object. Both sides go
// through the same decoding, so only what the server changed can differ.
func roundTrip(ctx context.Context, c client.Client, obj client.Object) (sent, stored client.Object, err error) {
	b, err := json.Marshal(obj)
	if err != nil {
		return nil, nil, err
	}
	sent = newLike(obj)
	if err := json.Unmarshal(b, sent); err != nil {
		return nil, nil, err
	}
	if err := c.Create(ctx, obj); err != nil {
		return nil, nil, fmt.Errorf("the API server refused it: %w", err)
	}
	stored = newLike(obj)
	if err := c.Get(ctx, client.ObjectKeyFromObject(obj), stored); err != nil {
		return nil, nil, fmt.Errorf("read back: %w", err)
	}
	return sent, stored, nil
}

// newLike returns a new, empty object of obj's type.
func newLike(obj client.Object) client.Object {
	return reflect.New(reflect.TypeOf(obj).Elem()).Interface().(client.Object)
}
