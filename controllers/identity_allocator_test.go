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
	"strconv"
	"sync"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "github.com/palisade-dev/palisade/api/v1alpha1"
	"github.com/palisade-dev/palisade/internal/engine"
)

// TestIdentityAllocatorTwoManagers runs two allocators, each with its own
// client as two manager processes have, against the real API server: for
// each of many label sets both allocate at the same moment. Both must
// return the same number, and the labels must have exactly one Identity
// object afterwards. (Before the allocators settled between them, both
// found the labels without an identity, one took the lowest free number
// and the other, refused that name, the next: two identities for one
// label set, which nodes could disagree on.)
func TestIdentityAllocatorTwoManagers(t *testing.T) {
	needEnv(t)
	ctx := context.Background()
	newAllocator := func() *IdentityAllocator {
		c, err := client.New(testCfg, client.Options{Scheme: testScheme})
		if err != nil {
			t.Fatal(err)
		}
		return &IdentityAllocator{Client: c}
	}
	a, b := newAllocator(), newAllocator()
	// No pod has these labels, so the suite's identity controller
	// collects them, but not before its grace period: each round checks
	// at once.
	ns := newNamespace(t)
	const rounds = 40
	for i := range rounds {
		l := engine.Labels{engine.LabelNamespace: ns, "app": fmt.Sprintf("race-%d", i)}
		var (
			wg     sync.WaitGroup
			start  = make(chan struct{})
			got    [2]engine.Identity
			errs   [2]error
			allocs = [2]*IdentityAllocator{a, b}
		)
		for j := range allocs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				got[j], errs[j] = allocs[j].Allocate(l)
			}()
		}
		close(start)
		wg.Wait()
		for j, err := range errs {
			if err != nil {
				t.Fatalf("round %d: allocator %d: %v", i, j, err)
			}
		}
		if got[0] != got[1] {
			t.Errorf("round %d: labels %s got %d from one manager and %d from the other", i, l, got[0], got[1])
		}
		list := &v1.IdentityList{}
		if err := k8sClient.List(ctx, list, client.MatchingLabels{v1.IdentityLabelsHashLabel: LabelsHash(l)}); err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, id := range list.Items {
			if id.DeletionTimestamp.IsZero() {
				names = append(names, id.Name)
			}
		}
		if len(names) != 1 || names[0] != fmt.Sprint(got[0]) {
			t.Errorf("round %d: labels %s have identities %v, want exactly %d", i, l, names, got[0])
		}
		claim := &v1.IdentityClaim{}
		if err := k8sClient.Get(ctx, client.ObjectKey{Name: ClaimName(l, 0)}, claim); err != nil {
			t.Errorf("round %d: claim of %s: %v", i, l, err)
		} else if engine.Identity(claim.Spec.Number) != got[0] {
			t.Errorf("round %d: claim of %s names %d, allocators returned %d", i, l, claim.Spec.Number, got[0])
		}
	}
}

func newTestAllocator(t *testing.T) *IdentityAllocator {
	t.Helper()
	c, err := client.New(testCfg, client.Options{Scheme: testScheme})
	if err != nil {
		t.Fatal(err)
	}
	return &IdentityAllocator{Client: c}
}

// identitiesWith returns the numbers of the live Identity objects of l.
func identitiesWith(t *testing.T, l engine.Labels) []string {
	t.Helper()
	list := &v1.IdentityList{}
	if err := k8sClient.List(context.Background(), list, client.MatchingLabels{v1.IdentityLabelsHashLabel: LabelsHash(l)}); err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, id := range list.Items {
		if id.DeletionTimestamp.IsZero() && maps.Equal(id.Spec.Labels, map[string]string(l)) {
			names = append(names, id.Name)
		}
	}
	return names
}

// forget deletes the Identity and the claim of l, as the identity
// controller's collection does.
func forget(t *testing.T, l engine.Labels, n engine.Identity) {
	t.Helper()
	ctx := context.Background()
	for _, o := range []client.Object{
		&v1.Identity{ObjectMeta: metav1.ObjectMeta{Name: strconv.FormatUint(uint64(n), 10)}},
		&v1.IdentityClaim{ObjectMeta: metav1.ObjectMeta{Name: ClaimName(l, 0)}},
	} {
		if err := k8sClient.Delete(ctx, o); err != nil && !apierrors.IsNotFound(err) {
			t.Fatal(err)
		}
	}
}

// TestIdentityAllocatorSlowClaimant replays the interleaving that gave one
// label set two numbers when allocators settled by "lowest number wins"
// after creating their Identity: manager A finds the labels without an
// identity and stalls; manager B allocates them in full and returns m
// (a lower number is held by other labels); that lower number is freed;
// A resumes and picks it. Under the old design A created the lower number,
// read both, kept its own as the lowest, and B had already returned m: two
// numbers. With claims A's create of the labels' claim is refused and A
// returns B's number.
func TestIdentityAllocatorSlowClaimant(t *testing.T) {
	needEnv(t)
	ns := newNamespace(t)
	a, b, c := newTestAllocator(t), newTestAllocator(t), newTestAllocator(t)
	blocker := engine.Labels{engine.LabelNamespace: ns, "app": "blocker"}
	l := engine.Labels{engine.LabelNamespace: ns, "app": "slow"}
	low, err := c.Allocate(blocker)
	if err != nil {
		t.Fatal(err)
	}
	var fromB engine.Identity
	var errB error
	a.hook = func(step string, got engine.Labels) {
		if step != "looked-up" || a.hook == nil {
			return
		}
		a.hook = nil // once
		fromB, errB = b.Allocate(l)
		forget(t, blocker, low)
	}
	fromA, err := a.Allocate(l)
	if err != nil || errB != nil {
		t.Fatalf("A: %v, B: %v", err, errB)
	}
	if fromB == low {
		t.Fatalf("B got %d, the number the blocker held while B allocated", fromB)
	}
	if fromA != fromB {
		t.Errorf("labels %s got %d from A and %d from B", l, fromA, fromB)
	}
	if names := identitiesWith(t, l); len(names) != 1 || names[0] != fmt.Sprint(fromB) {
		t.Errorf("labels %s have identities %v, want exactly %d", l, names, fromB)
	}
}

// TestIdentityAllocatorClaims covers the claim's other states: a winner
// that died before it made the Identity, a claim whose number another
// label set's Identity took, two label sets sharing a hash, and a claim
// that moved while an allocator was between its reads.
func TestIdentityAllocatorClaims(t *testing.T) {
	needEnv(t)
	ctx := context.Background()
	ns := newNamespace(t)
	a := newTestAllocator(t)
	labels := func(app string) engine.Labels { return engine.Labels{engine.LabelNamespace: ns, "app": app} }
	claim := func(name string, l engine.Labels, n engine.Identity) *v1.IdentityClaim {
		t.Helper()
		c := &v1.IdentityClaim{ObjectMeta: metav1.ObjectMeta{Name: name},
			Spec: v1.IdentityClaimSpec{Labels: maps.Clone(map[string]string(l)), Number: int64(n)}}
		if err := k8sClient.Create(ctx, c); err != nil {
			t.Fatal(err)
		}
		return c
	}
	free := func() engine.Identity {
		t.Helper()
		n, err := a.pick(ctx, labels("nobody"), engine.IdentityUnknown)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	allocate := func(l engine.Labels) engine.Identity {
		t.Helper()
		n, err := a.Allocate(l)
		if err != nil {
			t.Fatal(err)
		}
		if names := identitiesWith(t, l); len(names) != 1 || names[0] != fmt.Sprint(n) {
			t.Errorf("labels %s have identities %v, want exactly %d", l, names, n)
		}
		if got, ok := a.Lookup(l); !ok || got != n {
			t.Errorf("Lookup(%s) = %d, %v; Allocate gave %d", l, got, ok, n)
		}
		return n
	}

	t.Run("winner died before its Identity", func(t *testing.T) {
		l := labels("orphan-claim")
		n := free()
		claim(ClaimName(l, 0), l, n)
		if got := allocate(l); got != n {
			t.Errorf("Allocate = %d, want the claim's %d", got, n)
		}
	})
	t.Run("number taken by other labels", func(t *testing.T) {
		other, l := labels("took-it"), labels("lost-it")
		n := allocate(other)
		claim(ClaimName(l, 0), l, n)
		got := allocate(l)
		if got == n {
			t.Fatalf("Allocate = %d, the other labels' number", got)
		}
		c := &v1.IdentityClaim{}
		if err := k8sClient.Get(ctx, client.ObjectKey{Name: ClaimName(l, 0)}, c); err != nil || engine.Identity(c.Spec.Number) != got {
			t.Errorf("claim: %v, number %d, want %d", err, c.Spec.Number, got)
		}
	})
	t.Run("hash shared with other labels", func(t *testing.T) {
		l, squatter := labels("collides"), labels("squatter")
		claim(ClaimName(l, 0), squatter, free())
		got := allocate(l)
		c := &v1.IdentityClaim{}
		if err := k8sClient.Get(ctx, client.ObjectKey{Name: ClaimName(l, 1)}, c); err != nil || engine.Identity(c.Spec.Number) != got {
			t.Errorf("claim in slot 1: %v, number %d, want %d", err, c.Spec.Number, got)
		}
		if n, ok := a.Lookup(squatter); ok {
			t.Errorf("Lookup(squatter) = %d, but its claim's Identity does not exist", n)
		}
	})
	t.Run("claim moved between reads", func(t *testing.T) {
		l := labels("moved")
		first := free()
		c := claim(ClaimName(l, 0), l, first)
		var moved engine.Identity
		a.hook = func(step string, _ engine.Labels) {
			if step != "confirm" || moved != 0 {
				return
			}
			// A made Identity first; another allocator saw the number
			// taken (it read before A's create) and moved the claim.
			moved = first + 1
			for {
				if err := k8sClient.Get(ctx, client.ObjectKey{Name: strconv.FormatUint(uint64(moved), 10)}, &v1.Identity{}); apierrors.IsNotFound(err) {
					break
				}
				moved++
			}
			c.Spec.Number = int64(moved)
			if err := k8sClient.Update(ctx, c); err != nil {
				t.Error(err)
			}
		}
		defer func() { a.hook = nil }()
		got := allocate(l)
		if got != moved {
			t.Errorf("Allocate = %d, want %d, the number the claim moved to", got, moved)
		}
		if err := k8sClient.Get(ctx, client.ObjectKey{Name: fmt.Sprint(first)}, &v1.Identity{}); !apierrors.IsNotFound(err) {
			t.Errorf("identity %d, made for the claim's old number, still there: %v", first, err)
		}
	})
}

// TestIdentityClaimCollection: the identity controller collects the claim
// of an identity it collected, and a claim whose winner never made the
// Identity, once the labels are unused and the claim is older than the
// grace period.
func TestIdentityClaimCollection(t *testing.T) {
	needEnv(t)
	ctx := context.Background()
	ns := newNamespace(t)
	a := newTestAllocator(t)
	used := engine.Labels{engine.LabelNamespace: ns, "app": "gone"}
	if _, err := a.Allocate(used); err != nil {
		t.Fatal(err)
	}
	dead := engine.Labels{engine.LabelNamespace: ns, "app": "dead-winner"}
	n, err := a.pick(ctx, dead, engine.IdentityUnknown)
	if err != nil {
		t.Fatal(err)
	}
	if err := k8sClient.Create(ctx, &v1.IdentityClaim{ObjectMeta: metav1.ObjectMeta{Name: ClaimName(dead, 0)},
		Spec: v1.IdentityClaimSpec{Labels: map[string]string(dead), Number: int64(n)}}); err != nil {
		t.Fatal(err)
	}
	for _, l := range []engine.Labels{used, dead} {
		eventually(t, 5*testIdentityGrace+10*time.Second, func() error {
			if names := identitiesWith(t, l); len(names) > 0 {
				return fmt.Errorf("labels %s still have identities %v", l, names)
			}
			err := k8sClient.Get(ctx, client.ObjectKey{Name: ClaimName(l, 0)}, &v1.IdentityClaim{})
			if !apierrors.IsNotFound(err) {
				return fmt.Errorf("claim of %s still there: %v", l, err)
			}
			return nil
		})
	}
}
