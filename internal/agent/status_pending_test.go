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

package agent

import (
	"context"
	"testing"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"
)

// With ReportBatch, a set's pendingRevision alone is no status write: it
// waits for the set's revision to move (or any other change, or the
// heartbeat), and then is written with it.
func TestPendingRevisionWaitsForTheNextWrite(t *testing.T) {
	f := newFixture(t)
	// After this process's start: a heartbeat older than it is due at once.
	now := time.Now().Add(time.Minute).Truncate(time.Second)
	f.a.Now = func() time.Time { return now }
	f.a.ReportBatch = 50 * time.Millisecond
	writes := 0
	f.a.Client = interceptor.NewClient(f.c.(client.WithWatch), interceptor.Funcs{
		SubResourcePatch: func(ctx context.Context, c client.Client, sub string, obj client.Object, patch client.Patch, opts ...client.SubResourcePatchOption) error {
			writes++
			return c.SubResource(sub).Patch(ctx, obj, patch, opts...)
		},
	})
	f.pod("api", "api", "10.0.0.2", 2, false)
	f.policy("api", "r1", 2, allowFrontend)
	f.policy("api-b", "r1", 2, allowFrontend)
	if _, err := f.sync(); err != nil {
		t.Fatal(err)
	}
	if s := f.status().Status.PolicySets; len(s) != 1 || s[0].Revision != "r1" || writes != 1 {
		t.Fatalf("first report: %d writes, sets %+v", writes, s)
	}
	// The first verification is written at once; count from there.
	now = now.Add(time.Second)
	f.a.VerifyNow(context.Background())
	writes = 1

	// r2's first object, after the window: pendingRevision alone is not
	// written.
	now = now.Add(time.Second)
	f.policy("api", "r2", 2, allowFrontend)
	if _, err := f.sync(); err != nil {
		t.Fatal(err)
	}
	if s := f.status().Status.PolicySets; s[0].Revision != "r1" || s[0].PendingRevision != "" || writes != 1 {
		t.Fatalf("r2 pending: %d writes, sets %+v; want r1 as written", writes, s)
	}

	// A verify pass with nothing else new writes nothing either.
	f.a.VerifyNow(context.Background())
	if writes != 1 {
		t.Fatalf("verify pass with r2 pending: %d writes, want 1", writes)
	}

	// r3's first object while r2 is still incomplete: still nothing.
	f.policy("api-b", "r3", 2, allowFrontend)
	if _, err := f.sync(); err != nil {
		t.Fatal(err)
	}
	if writes != 1 {
		t.Fatalf("r3 pending: %d writes, want 1", writes)
	}

	// r3 complete: the revision moves, one write.
	f.policy("api", "r3", 2, allowFrontend)
	if _, err := f.sync(); err != nil {
		t.Fatal(err)
	}
	if s := f.status().Status.PolicySets; s[0].Revision != "r3" || s[0].PendingRevision != "" || writes != 2 {
		t.Fatalf("r3 complete: %d writes, sets %+v; want r3 in the second write", writes, s)
	}

	// The heartbeat writes a pendingRevision that is still waiting.
	now = now.Add(time.Second)
	f.policy("api", "r4", 2, allowFrontend)
	if _, err := f.sync(); err != nil {
		t.Fatal(err)
	}
	if writes != 2 {
		t.Fatalf("r4 pending: %d writes, want 2", writes)
	}
	now = now.Add(HeartbeatInterval)
	f.a.VerifyNow(context.Background())
	if s := f.status().Status.PolicySets; s[0].Revision != "r3" || s[0].PendingRevision != "r4" || writes != 3 {
		t.Fatalf("heartbeat: %d writes, sets %+v; want r3 with r4 pending in the third write", writes, s)
	}
}
