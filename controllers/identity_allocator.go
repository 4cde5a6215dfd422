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
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"sort"
	"strconv"
	"sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "github.com/palisade-dev/palisade/api/v1alpha1"
	"github.com/palisade-dev/palisade/internal/engine"
)

// identityCallTimeout bounds one API call of the allocator, whose
// interface (engine.Allocator) has no context.
const identityCallTimeout = 30 * time.Second

// IdentityAllocator is the cluster-wide engine.Allocator: identities are
// Identity objects named by their number, found by a hash of the canonical
// label string, so every node and every restart of the manager sees the
// same numbers. Managers allocate; agents look up.
//
// It does not rely on one leader: two managers (a leader election hand-over,
// a split brain, two replicas) may allocate at once. A number is claimed by
// creating its object (the API server refuses a name that is taken), and
// labels that two allocators claimed at once are settled without a lock:
// after its create, an allocator reads the labels' identities again from
// the API server, and the lowest number wins. A claimant that lost deletes
// its own object (precondition: its UID) and returns the winner. The
// winner's object is visible to the loser's read, because the loser
// either found the winner's number taken when it tried it, or listed it
// as taken before: numbers are tried lowest first.
//
// Use of an identity is derived from the pods that exist (the identity
// controller), not from reference counts, so Release only checks that the
// labels have an identity; garbage collection frees numbers.
type IdentityAllocator struct {
	// Client creates Identity objects; the API server refuses a number
	// that is taken.
	Client client.Client
	// Reader reads them; nil means Client. Give it an uncached reader
	// (the manager's APIReader): a cache that lags a create would let the
	// same labels get a second number.
	Reader client.Reader

	mu sync.Mutex
}

var _ engine.Allocator = (*IdentityAllocator)(nil)

// LabelsHash is the value of v1.IdentityLabelsHashLabel for labels: the
// first 48 hex digits of the SHA-256 of their canonical string (a label
// value holds at most 63 characters).
func LabelsHash(l engine.Labels) string {
	sum := sha256.Sum256([]byte(l.String()))
	return hex.EncodeToString(sum[:])[:48]
}

func (a *IdentityAllocator) reader() client.Reader {
	if a.Reader != nil {
		return a.Reader
	}
	return a.Client
}

func ctxTimeout() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), identityCallTimeout)
}

// find returns the Identity objects of labels, lowest number first.
func (a *IdentityAllocator) find(ctx context.Context, l engine.Labels) ([]v1.Identity, error) {
	list := &v1.IdentityList{}
	if err := a.reader().List(ctx, list, client.MatchingLabels{v1.IdentityLabelsHashLabel: LabelsHash(l)}); err != nil {
		return nil, fmt.Errorf("list identities: %w", err)
	}
	var out []v1.Identity
	for _, id := range list.Items {
		if maps.Equal(id.Spec.Labels, map[string]string(l)) && id.DeletionTimestamp.IsZero() {
			out = append(out, id)
		}
	}
	sort.Slice(out, func(i, j int) bool { return identityNumber(&out[i]) < identityNumber(&out[j]) })
	return out, nil
}

func identityNumber(o *v1.Identity) engine.Identity {
	n, err := strconv.ParseUint(o.Name, 10, 32)
	if err != nil {
		return engine.IdentityUnknown
	}
	return engine.Identity(n)
}

// Allocate implements engine.Allocator: the existing identity of labels,
// or the lowest free number, claimed by creating its Identity object.
func (a *IdentityAllocator) Allocate(l engine.Labels) (engine.Identity, error) {
	if !l.IsWorkload() {
		return engine.IdentityUnknown, fmt.Errorf("allocate identity: labels %q are not a workload's (no namespace label, or a reserved label)", l.String())
	}
	ctx, cancel := ctxTimeout()
	defer cancel()
	a.mu.Lock()
	defer a.mu.Unlock()
	if found, err := a.find(ctx, l); err != nil {
		return engine.IdentityUnknown, fmt.Errorf("allocate identity: %w", err)
	} else if len(found) > 0 {
		return identityNumber(&found[0]), nil
	}
	all := &v1.IdentityList{}
	if err := a.reader().List(ctx, all); err != nil {
		return engine.IdentityUnknown, fmt.Errorf("allocate identity: list identities: %w", err)
	}
	used := make(map[engine.Identity]bool, len(all.Items))
	for i := range all.Items {
		used[identityNumber(&all.Items[i])] = true
	}
	for n := engine.MinWorkloadIdentity; n <= engine.MaxWorkloadIdentity; n++ {
		if used[n] {
			continue
		}
		obj := &v1.Identity{ObjectMeta: metav1.ObjectMeta{
			Name:   strconv.FormatUint(uint64(n), 10),
			Labels: map[string]string{v1.IdentityLabelsHashLabel: LabelsHash(l)},
		}, Spec: v1.IdentitySpec{Labels: maps.Clone(map[string]string(l))}}
		err := a.Client.Create(ctx, obj)
		if apierrors.IsAlreadyExists(err) {
			continue // taken since our list: try the next number
		}
		if err != nil {
			return engine.IdentityUnknown, fmt.Errorf("allocate identity %d for %q: %w", n, l.String(), err)
		}
		return a.settle(ctx, l, obj)
	}
	return engine.IdentityUnknown, fmt.Errorf("allocate identity: all %d workload identities are in use", engine.MaxWorkloadIdentity-engine.MinWorkloadIdentity+1)
}

// settle decides between claims of the same labels after ours (obj) was
// created: the lowest number wins, and ours is deleted when it lost.
func (a *IdentityAllocator) settle(ctx context.Context, l engine.Labels, obj *v1.Identity) (engine.Identity, error) {
	ours := identityNumber(obj)
	found, err := a.find(ctx, l)
	if err != nil {
		return engine.IdentityUnknown, fmt.Errorf("allocate identity %d for %q: confirm: %w", ours, l.String(), err)
	}
	if len(found) == 0 || identityNumber(&found[0]) >= ours {
		return ours, nil
	}
	win := identityNumber(&found[0])
	err = a.Client.Delete(ctx, obj, client.Preconditions{UID: &obj.UID})
	if err != nil && !apierrors.IsNotFound(err) {
		// The duplicate stays until the identity controller collects it
		// (a duplicate counts as unused); the winner is the answer.
		return win, fmt.Errorf("allocate identity for %q: %d won over our %d, and deleting ours failed: %w", l.String(), win, ours, err)
	}
	return win, nil
}

// Lookup implements engine.Allocator.
func (a *IdentityAllocator) Lookup(l engine.Labels) (engine.Identity, bool) {
	ctx, cancel := ctxTimeout()
	defer cancel()
	found, err := a.find(ctx, l)
	if err != nil || len(found) == 0 {
		return engine.IdentityUnknown, false
	}
	return identityNumber(&found[0]), true
}

// Labels implements engine.Allocator.
func (a *IdentityAllocator) Labels(id engine.Identity) (engine.Labels, bool) {
	if l, ok := engine.ReservedLabels(id); ok {
		return l, true
	}
	ctx, cancel := ctxTimeout()
	defer cancel()
	obj := &v1.Identity{}
	if err := a.reader().Get(ctx, client.ObjectKey{Name: strconv.FormatUint(uint64(id), 10)}, obj); err != nil {
		return nil, false
	}
	return engine.Labels(maps.Clone(obj.Spec.Labels)), true
}

// Release implements engine.Allocator. Use is derived from pods, so there
// is no count to drop: it reports only whether labels have an identity.
func (a *IdentityAllocator) Release(l engine.Labels) error {
	if _, ok := a.Lookup(l); !ok {
		return errors.New("release identity: labels " + strconv.Quote(l.String()) + " have no identity")
	}
	return nil
}
