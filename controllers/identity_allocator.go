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

// claimSlots is how many label sets may share one labels hash before
// Allocate gives up: each gets the claim name hash, hash-1, hash-2, ...
const claimSlots = 16

// allocateAttempts bounds Allocate's retries when other allocators change
// the claim or the number under it; each retry re-reads both.
const allocateAttempts = 64

// IdentityAllocator is the cluster-wide engine.Allocator: identities are
// Identity objects named by their number, so every node and every restart
// of the manager sees the same numbers. Managers allocate; agents look up.
//
// It does not rely on one leader: two managers (a leader election hand-over,
// a split brain, two replicas) may allocate at once. Two API server
// guarantees settle them, each on one name:
//
//   - A label set is won by creating its IdentityClaim, named by the labels'
//     hash: the API server creates a name once, so exactly one allocator
//     creates the claim, and the claim carries the number in that same
//     create (the winner picked a free number first). Every other allocator
//     reads the number from the claim. Label sets that share a hash (the
//     claim's labels differ) take the next name, hash-1, hash-2, ...
//   - A number is won by creating its Identity object, named by the number.
//     A claim whose number another label set's Identity took first (two
//     label sets picked the same free number) is moved to a new number by
//     an update that carries the claim's resourceVersion, so two allocators
//     that both saw the collision move it once.
//
// Allocate returns n only after it read the claim naming n, saw (or
// created) Identity n with the labels, and then read the claim again still
// naming n. The claim moves away from n only when Identity n has other
// labels, which it cannot while n is the labels' Identity, so no two
// allocators return two numbers for one label set. (Before claims, a
// manager that listed free numbers earlier and created its identity later
// could keep a lower number than one another manager had already returned:
// TestIdentityAllocatorSlowClaimant.) An allocator whose second read finds
// the claim moved or gone deletes the Identity it created (precondition:
// its UID) and starts over; a winner that crashed before it created the
// Identity left a claim that the next allocator completes.
//
// Use of an identity is derived from the pods that exist (the identity
// controller), not from reference counts, so Release only checks that the
// labels have an identity; garbage collection frees numbers and removes
// the claims of collected identities (IdentityReconciler, collectClaims).
type IdentityAllocator struct {
	// Client creates Identity and IdentityClaim objects.
	Client client.Client
	// Reader reads them; nil means Client. Give it an uncached reader
	// (the manager's APIReader): a cache that lags a create would send
	// the allocator round its retries until it caught up.
	Reader client.Reader

	mu sync.Mutex
	// hook, when set (tests), is called at the named steps of Allocate:
	// "looked-up" (no claim found), "picked" (about to create the claim),
	// "claimed" (claim read, about to read its Identity), "confirm"
	// (Identity seen, about to read the claim again).
	hook func(step string, l engine.Labels)
}

var _ engine.Allocator = (*IdentityAllocator)(nil)

// LabelsHash is the value of v1.IdentityLabelsHashLabel for labels: the
// first 48 hex digits of the SHA-256 of their canonical string (a label
// value holds at most 63 characters).
func LabelsHash(l engine.Labels) string {
	sum := sha256.Sum256([]byte(l.String()))
	return hex.EncodeToString(sum[:])[:48]
}

// ClaimName is the name of the IdentityClaim of labels in slot i: the
// labels' hash, then "-i" for the label sets that share a hash.
func ClaimName(l engine.Labels, slot int) string {
	if slot == 0 {
		return LabelsHash(l)
	}
	return LabelsHash(l) + "-" + strconv.Itoa(slot)
}

func (a *IdentityAllocator) reader() client.Reader {
	if a.Reader != nil {
		return a.Reader
	}
	return a.Client
}

func (a *IdentityAllocator) step(name string, l engine.Labels) {
	if a.hook != nil {
		a.hook(name, l)
	}
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

// claimOf returns the claim of labels, or nil and the name a new claim
// takes (the first free slot of their hash).
func (a *IdentityAllocator) claimOf(ctx context.Context, l engine.Labels) (*v1.IdentityClaim, string, error) {
	for slot := range claimSlots {
		name := ClaimName(l, slot)
		c := &v1.IdentityClaim{}
		err := a.reader().Get(ctx, client.ObjectKey{Name: name}, c)
		if apierrors.IsNotFound(err) {
			return nil, name, nil
		}
		if err != nil {
			return nil, "", fmt.Errorf("get identity claim %s: %w", name, err)
		}
		if maps.Equal(c.Spec.Labels, map[string]string(l)) {
			return c, name, nil
		}
		// Another label set with the same hash: the next slot.
	}
	return nil, "", fmt.Errorf("identity claims %s to %s all hold other labels", ClaimName(l, 0), ClaimName(l, claimSlots-1))
}

func identityNumber(o *v1.Identity) engine.Identity {
	n, err := strconv.ParseUint(o.Name, 10, 32)
	if err != nil {
		return engine.IdentityUnknown
	}
	return engine.Identity(n)
}

// pick returns the number a new claim of labels carries: the labels'
// lowest existing Identity (one made before claims existed, or one whose
// claim was collected while a pod came back), else the lowest number that
// no Identity and no claim holds, other than avoid.
func (a *IdentityAllocator) pick(ctx context.Context, l engine.Labels, avoid engine.Identity) (engine.Identity, error) {
	if found, err := a.find(ctx, l); err != nil {
		return engine.IdentityUnknown, err
	} else if len(found) > 0 && identityNumber(&found[0]) != avoid {
		return identityNumber(&found[0]), nil
	}
	ids := &v1.IdentityList{}
	if err := a.reader().List(ctx, ids); err != nil {
		return engine.IdentityUnknown, fmt.Errorf("list identities: %w", err)
	}
	claims := &v1.IdentityClaimList{}
	if err := a.reader().List(ctx, claims); err != nil {
		return engine.IdentityUnknown, fmt.Errorf("list identity claims: %w", err)
	}
	used := make(map[engine.Identity]bool, len(ids.Items)+len(claims.Items)+1)
	used[avoid] = true
	for i := range ids.Items {
		used[identityNumber(&ids.Items[i])] = true
	}
	for i := range claims.Items {
		used[engine.Identity(claims.Items[i].Spec.Number)] = true
	}
	for n := engine.MinWorkloadIdentity; n <= engine.MaxWorkloadIdentity; n++ {
		if !used[n] {
			return n, nil
		}
	}
	return engine.IdentityUnknown, fmt.Errorf("all %d workload identities are in use", engine.MaxWorkloadIdentity-engine.MinWorkloadIdentity+1)
}

// Allocate implements engine.Allocator: the number of the labels' claim,
// whose Identity object it makes if the claim's winner did not.
func (a *IdentityAllocator) Allocate(l engine.Labels) (engine.Identity, error) {
	if !l.IsWorkload() {
		return engine.IdentityUnknown, fmt.Errorf("allocate identity: labels %q are not a workload's (no namespace label, or a reserved label)", l.String())
	}
	ctx, cancel := ctxTimeout()
	defer cancel()
	a.mu.Lock()
	defer a.mu.Unlock()
	for range allocateAttempts {
		n, done, err := a.allocateOnce(ctx, l)
		if err != nil {
			return engine.IdentityUnknown, fmt.Errorf("allocate identity for %q: %w", l.String(), err)
		}
		if done {
			return n, nil
		}
	}
	return engine.IdentityUnknown, fmt.Errorf("allocate identity for %q: the claim or its number changed under each of %d attempts", l.String(), allocateAttempts)
}

// allocateOnce makes one pass of Allocate; done is false when another
// allocator changed something it read and the pass must be made again.
func (a *IdentityAllocator) allocateOnce(ctx context.Context, l engine.Labels) (n engine.Identity, done bool, err error) {
	claim, name, err := a.claimOf(ctx, l)
	if err != nil {
		return 0, false, err
	}
	if claim == nil {
		a.step("looked-up", l)
		n, err := a.pick(ctx, l, engine.IdentityUnknown)
		if err != nil {
			return 0, false, err
		}
		claim = &v1.IdentityClaim{
			ObjectMeta: metav1.ObjectMeta{Name: name},
			Spec:       v1.IdentityClaimSpec{Labels: maps.Clone(map[string]string(l)), Number: int64(n)},
		}
		a.step("picked", l)
		if err := a.Client.Create(ctx, claim); apierrors.IsAlreadyExists(err) {
			return 0, false, nil // another allocator won the labels: read its number
		} else if err != nil {
			return 0, false, fmt.Errorf("create identity claim %s for %d: %w", name, n, err)
		}
	}
	n = engine.Identity(claim.Spec.Number)
	a.step("claimed", l)
	id := &v1.Identity{}
	var created bool
	switch err := a.reader().Get(ctx, client.ObjectKey{Name: strconv.FormatUint(uint64(n), 10)}, id); {
	case apierrors.IsNotFound(err):
		id = &v1.Identity{ObjectMeta: metav1.ObjectMeta{
			Name:   strconv.FormatUint(uint64(n), 10),
			Labels: map[string]string{v1.IdentityLabelsHashLabel: LabelsHash(l)},
		}, Spec: v1.IdentitySpec{Labels: maps.Clone(map[string]string(l))}}
		if err := a.Client.Create(ctx, id); apierrors.IsAlreadyExists(err) {
			return 0, false, nil // someone took the number: see whose
		} else if err != nil {
			return 0, false, fmt.Errorf("create identity %d: %w", n, err)
		}
		created = true
	case err != nil:
		return 0, false, fmt.Errorf("get identity %d: %w", n, err)
	case !maps.Equal(id.Spec.Labels, map[string]string(l)) || !id.DeletionTimestamp.IsZero():
		// Another label set's Identity took the claim's number first:
		// move the claim, unless someone already did (the update carries
		// the claim's resourceVersion).
		m, err := a.pick(ctx, l, n)
		if err != nil {
			return 0, false, err
		}
		claim.Spec.Number = int64(m)
		if err := a.Client.Update(ctx, claim); err != nil && !apierrors.IsConflict(err) && !apierrors.IsNotFound(err) {
			return 0, false, fmt.Errorf("move identity claim %s from %d (taken by other labels) to %d: %w", claim.Name, n, m, err)
		}
		return 0, false, nil
	}
	a.step("confirm", l)
	cur := &v1.IdentityClaim{}
	err = a.reader().Get(ctx, client.ObjectKey{Name: claim.Name}, cur)
	if err == nil && maps.Equal(cur.Spec.Labels, map[string]string(l)) && engine.Identity(cur.Spec.Number) == n {
		return n, true, nil
	}
	if err != nil && !apierrors.IsNotFound(err) {
		return 0, false, fmt.Errorf("get identity claim %s: %w", claim.Name, err)
	}
	// The claim moved or went while we read it: the Identity we made for
	// its old number is nobody's.
	if created {
		err := a.Client.Delete(ctx, id, client.Preconditions{UID: &id.UID})
		if err != nil && !apierrors.IsNotFound(err) {
			return 0, false, fmt.Errorf("delete identity %d made for a claim that moved: %w", n, err)
		}
	}
	return 0, false, nil
}

// Lookup implements engine.Allocator: the number of the labels' claim if
// its Identity exists, else (no claim) their lowest Identity, which is
// what Allocate would adopt.
func (a *IdentityAllocator) Lookup(l engine.Labels) (engine.Identity, bool) {
	ctx, cancel := ctxTimeout()
	defer cancel()
	claim, _, err := a.claimOf(ctx, l)
	if err != nil {
		return engine.IdentityUnknown, false
	}
	if claim != nil {
		id := &v1.Identity{}
		n := engine.Identity(claim.Spec.Number)
		if err := a.reader().Get(ctx, client.ObjectKey{Name: strconv.FormatUint(uint64(n), 10)}, id); err != nil ||
			!maps.Equal(id.Spec.Labels, map[string]string(l)) {
			return engine.IdentityUnknown, false
		}
		return n, true
	}
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

// collectClaims deletes the claims that point at no Identity of their
// labels (it was collected, or its winner crashed before making it) when
// their labels are not held and the claim is older than grace (an
// allocator that just created a claim makes its Identity next). ids are
// the identities that exist; the claims are read before them, so a claim
// whose Identity was made after that read is young and kept. Deletion
// carries the claim's resourceVersion: a claim moved since is kept. An
// allocator that read a claim collected here finds it gone when it reads
// it again, and starts over.
func (a *IdentityAllocator) collectClaims(ctx context.Context, claims []v1.IdentityClaim, ids map[engine.Identity]*v1.Identity, held map[string]engine.Identity, now time.Time, grace time.Duration) error {
	var errs []error
	for i := range claims {
		c := &claims[i]
		l := engine.Labels(c.Spec.Labels)
		if _, ok := held[l.String()]; ok {
			continue
		}
		if id := ids[engine.Identity(c.Spec.Number)]; id != nil && maps.Equal(id.Spec.Labels, c.Spec.Labels) {
			continue
		}
		if now.Sub(c.CreationTimestamp.Time) < grace {
			continue
		}
		err := a.Client.Delete(ctx, c, client.Preconditions{ResourceVersion: &c.ResourceVersion})
		if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
			errs = append(errs, fmt.Errorf("delete identity claim %s: %w", c.Name, err))
		}
	}
	return errors.Join(errs...)
}
