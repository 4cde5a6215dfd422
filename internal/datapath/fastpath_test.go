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

package datapath

import (
	"context"
	"testing"

	"github.com/palisade-dev/palisade/internal/engine"
)

// TestFastPathFollowsGenerations: packets of an allowed connection reuse
// its verdict only within the generation that decided it; a new generation
// that denies the connection drops its next packet.
func TestFastPathFollowsGenerations(t *testing.T) {
	d := openTest(t, nil)
	er, err := d.Events()
	if err != nil {
		t.Fatal(err)
	}
	defer er.Close()
	allow := benchState(10)
	if err := d.Apply(context.Background(), allow); err != nil {
		t.Fatal(err)
	}
	pkt := benchPacket(80)
	for i := 0; i < 3; i++ { // the first decides (and is reported), the others take the fast path
		if ret, ev := run(t, d, er, engine.Egress, pkt); ret != actPass || (ev != nil) != (i == 0) {
			t.Fatalf("packet %d: ret %d event %v, want pass, an event for the first only", i, int32(ret), ev)
		}
	}
	deny := benchState(10)
	for k := range deny.Policy {
		if k.Port == 80 && k.Identity == 257 {
			delete(deny.Policy, k)
		}
	}
	if err := d.Apply(context.Background(), deny); err != nil {
		t.Fatal(err)
	}
	ret, ev := run(t, d, er, engine.Egress, pkt)
	if ret != actShot || ev == nil || ev.Reason != Reason(engine.ReasonDefaultDeny) {
		t.Fatalf("after the deny generation: ret %d event %+v, want drop by default deny", int32(ret), ev)
	}
	if err := d.Apply(context.Background(), allow); err != nil {
		t.Fatal(err)
	}
	if ret, _ := run(t, d, er, engine.Egress, pkt); ret != actPass {
		t.Fatalf("after the allow generation again: ret %d, want pass", int32(ret))
	}
}
