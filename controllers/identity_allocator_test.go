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
	"sync"
	"testing"

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
	}
}
