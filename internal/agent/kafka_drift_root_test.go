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
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/rlimit"
	"golang.org/x/sys/unix"

	v1 "github.com/palisade-dev/palisade/api/v1alpha1"
	kafkabpf "github.com/palisade-dev/palisade/bpf/kafka"
	"github.com/palisade-dev/palisade/internal/kafka"
)

// kafkaBpffs mounts a bpffs of the test's own at a temporary directory
// (unmounted at the end) and returns it.
func kafkaBpffs(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if err := unix.Mount("bpf", dir, "bpf", 0, "mode=0700"); err != nil {
		t.Skipf("mount bpffs: %v", err)
	}
	t.Cleanup(func() {
		if err := unix.Unmount(dir, unix.MNT_DETACH); err != nil {
			t.Errorf("unmount bpffs %s: %v", dir, err)
		}
	})
	return dir
}

// TestKafkaDriftRepairedRealKernel: the kafka subsystem on the real
// bpf/kafka datapath, its state pinned on a bpffs. The test tampers with
// the pinned maps from outside (cilium/ebpf on the pins, as bpftool
// would): the active list record (every topic admitted), then a
// binding removed, then a client's egress binding removed: each verify pass reads the kernel back, records a
// repaired MapEntry drift naming kafka, and applies a new generation
// whose tables are the applied ones. Then the broker's identity in
// kafka_peers and an extra prefix (written again, deleted), then the
// SOCKHASH's pin removed (pinned again, a Pin drift). A pass over an
// untampered kernel finds nothing.
func TestKafkaDriftRepairedRealKernel(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("loading bpf/kafka needs root")
	}
	if err := rlimit.RemoveMemlock(); err != nil {
		t.Skipf("remove memlock limit: %v", err)
	}
	pins := filepath.Join(kafkaBpffs(t), "kafka")
	dp, err := kafka.Load()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dp.Close() })
	f, _ := newKafkaFixture(t)
	f.a.Kafka, f.a.KafkaPinDir = dp, pins
	f.podUID("broker", "broker", "10.0.0.2", 2, false)
	f.podUID("client", "client", "10.0.0.3", 3, false)
	f.policy("broker", "r1", 2, `
endpointSelector: {matchLabels: {app: broker}}
ingress:
- toPorts: [{ports: [{port: "9092", protocol: TCP}], rules: {kafka: [{role: produce, topic: orders}]}}]
`)
	f.policy("client", "r1", 2, `
endpointSelector: {matchLabels: {app: client}}
egress:
- toEndpoints: [{matchLabels: {app: broker}}]
  toPorts: [{ports: [{port: "9092", protocol: TCP}], rules: {kafka: [{role: produce, topic: orders}]}}]
`)
	if _, err := f.sync(); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	f.a.VerifyNow(ctx)
	if len(f.a.drifts) != 0 {
		t.Fatalf("drifts over an untampered kernel: %+v", f.a.drifts)
	}
	open := func(name string) *ebpf.Map {
		t.Helper()
		m, err := ebpf.LoadPinnedMap(filepath.Join(pins, name), nil)
		if err != nil {
			t.Fatalf("open pinned %s: %v", name, err)
		}
		t.Cleanup(func() { m.Close() })
		return m
	}
	slotMap, lists, binds := open("kafka_slot"), open("kafka_lists"), open("kafka_binds")
	active := func() uint32 {
		t.Helper()
		var a kafkabpf.KafkaKafkaActive
		if err := slotMap.Lookup(uint32(0), &a); err != nil {
			t.Fatal(err)
		}
		return a.Slot
	}
	// the list of the active slot's one (ingress) binding: the broker's
	oneList := func(slot uint32) (kafkabpf.KafkaKafkaListKey, kafkabpf.KafkaKafkaList) {
		t.Helper()
		var bk kafkabpf.KafkaKafkaBindKey
		var bv kafkabpf.KafkaKafkaBind
		var list []uint32
		for it := binds.Iterate(); it.Next(&bk, &bv); {
			if bk.Slot == slot {
				list = append(list, bv.List)
			}
		}
		if len(list) != 1 {
			t.Fatalf("%d bindings in the active slot %d, want the broker's one", len(list), slot)
		}
		k := kafkabpf.KafkaKafkaListKey{Slot: slot, List: list[0]}
		var v kafkabpf.KafkaKafkaList
		if err := lists.Lookup(k, &v); err != nil {
			t.Fatalf("the broker's list %+v: %v", k, err)
		}
		return k, v
	}
	gen0, err := dp.Generation()
	if err != nil {
		t.Fatal(err)
	}

	// 1. The list record: every topic admitted.
	lk, orig := oneList(active())
	tampered := orig
	tampered.TopicAny = ^uint64(0)
	if err := lists.Update(lk, &tampered, ebpf.UpdateExist); err != nil {
		t.Fatal(err)
	}
	f.a.VerifyNow(ctx)
	if len(f.a.drifts) != 1 {
		t.Fatalf("drifts after the list tamper: %+v, want 1", f.a.drifts)
	}
	d := f.a.drifts[0]
	if d.Kind != v1.KernelDriftMapEntry || !d.Repaired || !strings.HasPrefix(d.What, "kafka generation: 1 entries differ: kafka_lists {slot") ||
		!strings.Contains(d.What, "found any version") {
		t.Fatalf("drift %+v: want a repaired MapEntry drift naming the kafka list record", d)
	}
	t.Logf("drift: %s", d.What)
	gen1, err := dp.Generation()
	if err != nil || gen1 <= gen0 {
		t.Fatalf("generation after the repair: %d (%v), want above %d", gen1, err, gen0)
	}
	if _, v := oneList(active()); v != orig {
		t.Fatalf("the active list after the repair: topic any %#x, want the applied %#x", v.TopicAny, orig.TopicAny)
	}

	// 2. The binding removed.
	slot := active()
	var bk, found kafkabpf.KafkaKafkaBindKey
	var bv kafkabpf.KafkaKafkaBind
	n := 0
	for it := binds.Iterate(); it.Next(&bk, &bv); {
		if bk.Slot == slot {
			found, n = bk, n+1
		}
	}
	if n != 1 {
		t.Fatalf("%d bindings in the active slot, want 1", n)
	}
	if err := binds.Delete(found); err != nil {
		t.Fatal(err)
	}
	f.a.VerifyNow(ctx)
	if len(f.a.drifts) != 2 {
		t.Fatalf("drifts after the binding tamper: %+v, want 2", f.a.drifts)
	}
	var what string
	for _, d := range f.a.drifts {
		if strings.Contains(d.What, "kafka_binds") {
			what = d.What
			if !d.Repaired || d.Kind != v1.KernelDriftMapEntry {
				t.Errorf("drift %+v not a repaired MapEntry drift", d)
			}
		}
	}
	if !strings.HasPrefix(what, "kafka generation: 1 entries differ: kafka_binds") || !strings.Contains(what, "found absent") {
		t.Fatalf("drifts %+v: want one naming the removed binding", f.a.drifts)
	}
	found.Slot = active()
	if err := binds.Lookup(found, &bv); err != nil {
		t.Fatalf("the binding after the repair: %v", err)
	}

	// 2b. The client's egress binding removed.
	ebinds := open("kafka_ebinds")
	slot = active()
	n = 0
	for it := ebinds.Iterate(); it.Next(&bk, &bv); {
		if bk.Slot == slot {
			found, n = bk, n+1
		}
	}
	if n != 1 {
		t.Fatalf("%d egress bindings in the active slot, want the client's 1", n)
	}
	if err := ebinds.Delete(found); err != nil {
		t.Fatal(err)
	}
	f.a.VerifyNow(ctx)
	if len(f.a.drifts) != 3 {
		t.Fatalf("drifts after the egress binding tamper: %+v, want 3", f.a.drifts)
	}
	what = ""
	for _, d := range f.a.drifts {
		if strings.Contains(d.What, "kafka_ebinds") && d.Repaired && d.Kind == v1.KernelDriftMapEntry {
			what = d.What
		}
	}
	if !strings.HasPrefix(what, "kafka generation: 1 entries differ: kafka_ebinds") || !strings.Contains(what, "found absent") {
		t.Fatalf("drifts %+v: want a repaired MapEntry drift naming the removed egress binding", f.a.drifts)
	}
	t.Logf("drift: %s", what)
	found.Slot = active()
	if err := ebinds.Lookup(found, &bv); err != nil {
		t.Fatalf("the egress binding after the repair: %v", err)
	}

	// 3. The broker pod's identity changed, an extra prefix added.
	peers := open("kafka_peers")
	pk := kafkabpf.KafkaKafkaPeerKey{Prefixlen: 32 + 32, Family: 4}
	copy(pk.Addr[:], []byte{10, 0, 0, 2})
	var id uint32
	if err := peers.Lookup(pk, &id); err != nil {
		t.Fatalf("the broker's identity in kafka_peers: %v", err)
	}
	if err := peers.Update(pk, id+1000, ebpf.UpdateExist); err != nil {
		t.Fatal(err)
	}
	xk := kafkabpf.KafkaKafkaPeerKey{Prefixlen: 32 + 24, Family: 4}
	copy(xk.Addr[:], []byte{192, 0, 2, 0})
	if err := peers.Update(xk, uint32(9), ebpf.UpdateNoExist); err != nil {
		t.Fatal(err)
	}
	f.a.VerifyNow(ctx)
	if len(f.a.drifts) != 4 {
		t.Fatalf("drifts after the identity tamper: %+v, want 4", f.a.drifts)
	}
	what = ""
	for _, d := range f.a.drifts {
		if strings.HasPrefix(d.What, "kafka identities: 2 entries differ") && d.Repaired && d.Kind == v1.KernelDriftMapEntry {
			what = d.What
		}
	}
	if !strings.Contains(what, "kafka_peers 10.0.0.2/32") || !strings.Contains(what, "kafka_peers 192.0.2.0/24: want absent, found identity 9") {
		t.Fatalf("drifts %+v: want a repaired one naming both prefixes", f.a.drifts)
	}
	var after uint32
	if err := peers.Lookup(pk, &after); err != nil || after != id {
		t.Errorf("the broker's identity after the repair: %d, %v; want %d", after, err, id)
	}
	// (a lookup in an LPM trie is a longest-prefix match: the keys are
	// walked for the exact one)
	var k kafkabpf.KafkaKafkaPeerKey
	var v uint32
	for it := peers.Iterate(); it.Next(&k, &v); {
		if k == xk {
			t.Errorf("the extra prefix 192.0.2.0/24 was not deleted (identity %d)", v)
		}
	}

	// 4. The SOCKHASH's pin removed: pinned again.
	socks := filepath.Join(pins, "kafka_socks")
	if err := os.Remove(socks); err != nil {
		t.Fatal(err)
	}
	f.a.VerifyNow(ctx)
	if len(f.a.drifts) != 5 {
		t.Fatalf("drifts after the pin removal: %+v, want 5", f.a.drifts)
	}
	found4 := false
	for _, d := range f.a.drifts {
		if d.Kind == v1.KernelDriftPin && d.Repaired && d.What == "kafka pin "+socks+" removed" {
			found4 = true
		}
	}
	if !found4 {
		t.Fatalf("drifts %+v: want a repaired Pin drift naming %s", f.a.drifts, socks)
	}
	if _, err := os.Stat(socks); err != nil {
		t.Errorf("after the pin's repair: %v", err)
	}

	// 5. Untampered: nothing found.
	f.a.VerifyNow(ctx)
	if len(f.a.drifts) != 5 {
		t.Fatalf("drifts after an untampered pass: %+v", f.a.drifts)
	}
}
