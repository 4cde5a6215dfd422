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
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "github.com/palisade-dev/palisade/api/v1alpha1"
	"github.com/palisade-dev/palisade/internal/engine"
)

func newPod(t *testing.T, ns, name string, labels map[string]string) *corev1.Pod {
	t.Helper()
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: labels},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "busybox"}}, ServiceAccountName: "default"},
	}
	if err := k8sClient.Create(context.Background(), p); err != nil {
		t.Fatal(err)
	}
	return p
}

// identitiesOf returns the Identity objects of namespace ns by number.
func identitiesOf(ns string) (map[string]v1.Identity, error) {
	list := &v1.IdentityList{}
	if err := k8sClient.List(context.Background(), list); err != nil {
		return nil, err
	}
	out := map[string]v1.Identity{}
	for _, id := range list.Items {
		if id.Spec.Labels[engine.LabelNamespace] == ns {
			out[id.Name] = id
		}
	}
	return out, nil
}

func TestIdentityController(t *testing.T) {
	needEnv(t)
	ctx := context.Background()
	nsObj := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "id-", Labels: map[string]string{"team": "a"}}}
	if err := k8sClient.Create(ctx, nsObj); err != nil {
		t.Fatal(err)
	}
	ns := nsObj.Name
	// Two replicas of one workload differ only in a volatile label.
	newPod(t, ns, "web-1", map[string]string{"app": "web", "pod-template-hash": "aaa"})
	newPod(t, ns, "web-2", map[string]string{"app": "web", "pod-template-hash": "bbb"})
	db := newPod(t, ns, "db", map[string]string{"app": "db"})

	policy := engine.LabelPolicy{}
	webLabels := policy.WorkloadLabels(ns, map[string]string{"app": "web"}, nsObj.Labels, "default")
	dbLabels := policy.WorkloadLabels(ns, map[string]string{"app": "db"}, nsObj.Labels, "default")

	var ids map[string]v1.Identity
	eventually(t, 20*time.Second, func() error {
		var err error
		if ids, err = identitiesOf(ns); err != nil {
			return err
		}
		if len(ids) != 2 {
			return fmt.Errorf("%d identities, want 2 (web, db): %v", len(ids), ids)
		}
		return nil
	})
	byLabels := map[string]string{}
	for name, id := range ids {
		if n := identityNumber(&id); n < engine.MinWorkloadIdentity || n > engine.MaxWorkloadIdentity {
			t.Errorf("identity number %s out of the workload range", name)
		}
		if id.Labels[v1.IdentityLabelsHashLabel] != LabelsHash(engine.Labels(id.Spec.Labels)) {
			t.Errorf("identity %s: hash label %q", name, id.Labels[v1.IdentityLabelsHashLabel])
		}
		byLabels[engine.Labels(id.Spec.Labels).String()] = name
	}
	webID, dbID := byLabels[webLabels.String()], byLabels[dbLabels.String()]
	if webID == "" || dbID == "" {
		t.Fatalf("identities %v do not match web %q / db %q", byLabels, webLabels, dbLabels)
	}
	if strings.Contains(webLabels.String(), "pod-template-hash") {
		t.Fatal("volatile label in the security labels")
	}

	// A fresh allocator (a restarted manager) sees the same numbers.
	fresh := &IdentityAllocator{Client: k8sClient}
	for _, tc := range []struct {
		l    engine.Labels
		want string
	}{{webLabels, webID}, {dbLabels, dbID}} {
		got, ok := fresh.Lookup(tc.l)
		if !ok || fmt.Sprint(uint32(got)) != tc.want {
			t.Errorf("Lookup(%s) = %d, %v; want %s", tc.l, got, ok, tc.want)
		}
		got, err := fresh.Allocate(tc.l)
		if err != nil || fmt.Sprint(uint32(got)) != tc.want {
			t.Errorf("Allocate(%s) = %d, %v; want %s", tc.l, got, err, tc.want)
		}
		back, ok := fresh.Labels(got)
		if !ok || back.String() != tc.l.String() {
			t.Errorf("Labels(%d) = %s, %v", got, back, ok)
		}
	}
	if l, ok := fresh.Labels(engine.IdentityHost); !ok || !l.Has(engine.EntityHost) {
		t.Errorf("Labels(host) = %v, %v", l, ok)
	}
	if _, err := fresh.Allocate(engine.Reserved(engine.EntityWorld)); err == nil {
		t.Error("allocated an identity for reserved labels")
	}
	if err := fresh.Release(policy.WorkloadLabels(ns, map[string]string{"app": "never"}, nil, "")); err == nil {
		t.Error("released labels without an identity")
	}

	// The db pod goes: its identity is marked unused, then collected after
	// the grace period; web's stays.
	if err := k8sClient.Delete(ctx, db, client.GracePeriodSeconds(0)); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, func() error {
		id := &v1.Identity{}
		if err := k8sClient.Get(ctx, client.ObjectKey{Name: dbID}, id); err != nil {
			return err
		}
		if id.Status.UnusedSince == nil {
			return fmt.Errorf("identity %s not marked unused", dbID)
		}
		return nil
	})
	eventually(t, 5*testIdentityGrace+10*time.Second, func() error {
		err := k8sClient.Get(ctx, client.ObjectKey{Name: dbID}, &v1.Identity{})
		if !apierrors.IsNotFound(err) {
			return fmt.Errorf("unused identity %s still there: %v", dbID, err)
		}
		return nil
	})
	id := &v1.Identity{}
	if err := k8sClient.Get(ctx, client.ObjectKey{Name: webID}, id); err != nil || id.Status.UnusedSince != nil {
		t.Errorf("web identity %s: %v, unusedSince %v", webID, err, id.Status.UnusedSince)
	}
}
