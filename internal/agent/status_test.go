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
	"errors"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	v1 "github.com/palisade-dev/palisade/api/v1alpha1"
)

// TestReportCreatesOnceWhileTheCacheLags: the agent's cache has not seen
// its NodeEnforcement yet (a thousand agents starting at once), so every
// read of it through the cache says NotFound. The first report creates
// it and patches its status on the created object; the next one, still
// not finding it in the cache, reads it from the API server instead of
// creating it again; an agent that restarted (knows no UID) tries to
// create it, is refused, and reads it.
func TestReportCreatesOnceWhileTheCacheLags(t *testing.T) {
	f := newFixture(t)
	f.pod("api", "api", "10.0.0.2", 2, false)
	f.policy("api", "r1", 1, allowFrontend)
	creates := 0
	f.a.APIReader = f.c
	f.a.Client = interceptor.NewClient(f.c.(client.WithWatch), interceptor.Funcs{
		Get: func(ctx context.Context, c client.WithWatch, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
			if _, ok := obj.(*v1.NodeEnforcement); ok {
				return apierrors.NewNotFound(v1.GroupVersion.WithResource("nodeenforcements").GroupResource(), key.Name)
			}
			return c.Get(ctx, key, obj, opts...)
		},
		Create: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.CreateOption) error {
			if _, ok := obj.(*v1.NodeEnforcement); ok {
				creates++
				obj.SetUID("ne-uid") // as the API server does; the fake does not
			}
			return c.Create(ctx, obj, opts...)
		},
	})
	for i := range 2 {
		if _, err := f.sync(); err != nil {
			t.Fatalf("sync %d: %v", i, err)
		}
	}
	if creates != 1 {
		t.Fatalf("%d creates, want 1 (the second report reads it from the API server)", creates)
	}
	// A restarted agent (no UID known) finds it existing and reads it.
	f.a.neUID = ""
	if _, err := f.sync(); err != nil {
		t.Fatalf("sync after a restart: %v", err)
	}
	if creates != 2 {
		t.Fatalf("%d creates, want 2 (the restarted agent's refused as existing)", creates)
	}
	sets := f.status().Status.PolicySets
	if len(sets) != 1 || sets[0].Revision != "r1" || sets[0].Enforced != 1 {
		t.Fatalf("policy sets: %+v", sets)
	}
}

// TestReportBatch: with ReportBatch, a change within the window after a
// status write waits (the API keeps the last written state, which the
// kernel is not behind of) and is written at the window's end by the
// report the agent asks its verify loop for then, with the newest state;
// changes in the window cost one write.
func TestReportBatch(t *testing.T) {
	f := newFixture(t)
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
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

	// r2 arrives in two steps within the window: nothing is written.
	now = now.Add(10 * time.Millisecond)
	f.policy("api", "r2", 2, allowFrontend)
	if _, err := f.sync(); err != nil {
		t.Fatal(err)
	}
	f.policy("api-b", "r2", 2, allowFrontend)
	if _, err := f.sync(); err != nil {
		t.Fatal(err)
	}
	if s := f.status().Status.PolicySets; s[0].Revision != "r1" || s[0].PendingRevision != "" || writes != 1 {
		t.Fatalf("within the window: %d writes, sets %+v; want r1 as written", writes, s)
	}

	// The window's end asks the verify loop for a report (not a whole
	// verify pass), which writes r2.
	select {
	case <-f.a.reportC():
	case <-time.After(time.Minute):
		t.Fatal("no report was asked for at the end of the window")
	}
	now = now.Add(50 * time.Millisecond)
	f.a.ReportNow(context.Background())
	if s := f.status().Status.PolicySets; s[0].Revision != "r2" || s[0].PendingRevision != "" || writes != 2 {
		t.Fatalf("after the window: %d writes, sets %+v; want r2 in the second write", writes, s)
	}

	// Without ReportBatch every change is written at once.
	f.a.ReportBatch = 0
	f.policy("api", "r3", 2, allowFrontend)
	if _, err := f.sync(); err != nil {
		t.Fatal(err)
	}
	if s := f.status().Status.PolicySets; s[0].PendingRevision != "r3" || writes != 3 {
		t.Fatalf("without ReportBatch: %d writes, sets %+v", writes, s)
	}
}

// TestReportOffTheSyncPath: with the verify loop running and ReportBatch,
// a sync leaves the status write to that loop (it asks for a report and
// writes nothing itself); the report made then is written after the
// agent's lock is released, and a write older than one already made is
// dropped, so the status never goes back.
func TestReportOffTheSyncPath(t *testing.T) {
	f := newFixture(t)
	f.a.ReportBatch = time.Millisecond
	writes := 0
	f.a.Client = interceptor.NewClient(f.c.(client.WithWatch), interceptor.Funcs{
		SubResourcePatch: func(ctx context.Context, c client.Client, sub string, obj client.Object, patch client.Patch, opts ...client.SubResourcePatchOption) error {
			if !f.a.mu.TryLock() {
				t.Error("the status was written under the agent's lock")
			} else {
				f.a.mu.Unlock()
			}
			writes++
			return c.SubResource(sub).Patch(ctx, obj, patch, opts...)
		},
	})
	f.a.reporting = true // as Start sets it
	f.pod("api", "api", "10.0.0.2", 2, false)
	f.policy("api", "r1", 1, allowFrontend)
	if _, err := f.sync(); err != nil {
		t.Fatal(err)
	}
	if writes != 0 {
		t.Fatalf("the sync wrote the status %d times", writes)
	}
	select {
	case <-f.a.reportC():
	default:
		t.Fatal("the sync asked for no report")
	}
	f.a.ReportNow(context.Background())
	if s := f.status().Status.PolicySets; len(s) != 1 || s[0].Revision != "r1" || writes != 1 {
		t.Fatalf("after the report: %d writes, sets %+v", writes, s)
	}

	// Two reports made in turn and written in the other order: the older
	// one is dropped.
	time.Sleep(2 * time.Millisecond)
	f.policy("api", "r2", 1, allowFrontend)
	if _, err := f.sync(); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	f.a.mu.Lock()
	older, err := f.a.prepareReport(ctx)
	f.a.mu.Unlock()
	if err != nil || older == nil {
		t.Fatalf("report r2: %v %v", older, err)
	}
	time.Sleep(2 * time.Millisecond)
	f.policy("api", "r3", 1, allowFrontend)
	if _, err := f.sync(); err != nil {
		t.Fatal(err)
	}
	f.a.mu.Lock()
	newer, err := f.a.prepareReport(ctx)
	f.a.mu.Unlock()
	if err != nil || newer == nil {
		t.Fatalf("report r3: %v %v", newer, err)
	}
	if err := errors.Join(f.a.writeReport(ctx, newer), f.a.writeReport(ctx, older)); err != nil {
		t.Fatal(err)
	}
	if s := f.status().Status.PolicySets; s[0].Revision != "r3" || writes != 2 {
		t.Fatalf("%d writes, sets %+v; want r3 only written", writes, s)
	}
}
