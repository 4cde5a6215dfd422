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

package kafka

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/cilium/ebpf"

	kafkabpf "github.com/palisade-dev/palisade/bpf/kafka"
	"github.com/palisade-dev/palisade/internal/engine"
	"github.com/palisade-dev/palisade/internal/sockl7"
)

// TestKafkaCompareFindsAndRepairs: the generation Apply wrote reads back
// with no drift; each kind of tampering (a topic entry's rules, a list's
// record, an extra list, a binding removed, an extra binding, the
// generation, an enforced port removed and an extra one; a client's egress
// binding removed and an extra egress port) is found, named
// by map and entry; the tampered topic entry changes the kernel's verdict;
// a fresh Apply after Compare leaves no drift (the extras deleted too)
// and the verdict is the applied one again.
func TestKafkaCompareFindsAndRepairs(t *testing.T) {
	d := requireKernel(t)
	kl, err := engine.CompileKafkaList(ordersOnly())
	if err != nil {
		t.Fatal(err)
	}
	tables := &engine.KafkaTables{Lists: map[engine.L7ID]*engine.KafkaList{7: kl}}
	binds := []Binding{
		{Addr: netip.MustParseAddr("10.1.0.5"), Port: 9092, List: 7},
		{Addr: netip.IPv6Unspecified(), Port: 9093, Identity: 300, List: 7},
		{Addr: netip.MustParseAddr("10.1.0.6"), Port: 9092, Identity: 300, List: 7, Egress: true},
	}
	for gen := uint64(1); gen <= 2; gen++ { // both slots used
		if err := d.Apply(gen, tables, binds); err != nil {
			t.Fatal(err)
		}
	}
	if ds, err := d.Compare(2, tables, binds); err != nil || len(ds) != 0 {
		t.Fatalf("compare right after apply: %v %v", ds, err)
	}
	id := "c"
	produceOrders := frame(request(0, 9, []string{"orders"}), &id, 1)
	if r := parseAt(t, d, 7, true, produceOrders, 0); r.Reason != ReasonAllowed {
		t.Fatalf("produce to orders before tampering: %+v", r)
	}

	slot := d.active
	// A topic entry's rules cleared: orders is refused.
	topic := kafkabpf.KafkaKafkaValKey{Slot: slot, List: 7, Kind: uint16(kafkabpf.KafkaKafkaValKindKAFKA_VAL_TOPIC), Len: 6}
	copy(topic.Val[:], "orders")
	if err := d.objs.KafkaVals.Update(topic, uint64(0), ebpf.UpdateExist); err != nil {
		t.Fatalf("tamper kafka_vals: %v", err)
	}
	if r := parseAt(t, d, 7, true, produceOrders, 0); r.Reason != ReasonDenied {
		t.Fatalf("produce to orders with the tampered entry: %+v, want denied", r)
	}
	// The list's any-version mask, an extra list, a binding gone, an
	// extra binding, the generation, a port gone and an extra port.
	var l kafkabpf.KafkaKafkaList
	lk := kafkabpf.KafkaKafkaListKey{Slot: slot, List: 7}
	if err := d.objs.KafkaLists.Lookup(lk, &l); err != nil {
		t.Fatal(err)
	}
	l.VerAny ^= 1 << 40
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("tamper: %v", err)
		}
	}
	must(d.objs.KafkaLists.Update(lk, &l, ebpf.UpdateExist))
	must(d.objs.KafkaLists.Update(kafkabpf.KafkaKafkaListKey{Slot: slot, List: 99}, &l, ebpf.UpdateNoExist))
	fam, addr := sockl7.AddrKey(binds[0].Addr)
	must(d.objs.KafkaBinds.Delete(kafkabpf.KafkaKafkaBindKey{Slot: slot, Port: 9092, Family: fam, Addr: addr}))
	must(d.objs.KafkaBinds.Update(kafkabpf.KafkaKafkaBindKey{Slot: slot, Port: 9999, Family: fam, Addr: addr}, kafkabpf.KafkaKafkaBind{List: 7}, ebpf.UpdateNoExist))
	must(d.objs.KafkaGens.Update(slot, kafkabpf.KafkaKafkaConfig{Generation: 41}, ebpf.UpdateAny))
	must(d.objs.KafkaPorts.Delete(kafkabpf.KafkaKafkaPortKey{Port: 9092, Family: fam, Addr: addr}))
	must(d.objs.KafkaPorts.Update(kafkabpf.KafkaKafkaPortKey{Port: 9999, Family: fam, Addr: addr}, uint32(1), ebpf.UpdateNoExist))
	// The client's egress binding gone, an extra egress port.
	efam, eaddr := sockl7.AddrKey(binds[2].Addr)
	must(d.objs.KafkaEbinds.Delete(kafkabpf.KafkaKafkaBindKey{Slot: slot, Identity: 300, Port: 9092, Family: efam, Addr: eaddr}))
	must(d.objs.KafkaEports.Update(kafkabpf.KafkaKafkaPortKey{Port: 9998, Family: efam, Addr: eaddr}, uint32(1), ebpf.UpdateNoExist))

	ds, err := d.Compare(2, tables, binds)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, x := range ds {
		got = append(got, x.String())
	}
	all := strings.Join(got, "\n")
	for _, want := range []string{
		`kafka_gens slot ` + string(rune('0'+slot)) + `: want generation 2 flags 0x0, found generation 41 flags 0x0`,
		`kafka_lists {slot ` + string(rune('0'+slot)) + ` list 7}: want any version`,
		`kafka_lists {slot ` + string(rune('0'+slot)) + ` list 99}: want absent, found a list record`,
		`kafka_vals {slot ` + string(rune('0'+slot)) + ` list 7 topic "orders"}: want rules 0x`,
		`kafka_binds {slot ` + string(rune('0'+slot)) + ` identity 0 10.1.0.5:9092}: want list 7, found absent`,
		`kafka_binds {slot ` + string(rune('0'+slot)) + ` identity 0 10.1.0.5:9999}: want absent, found list 7`,
		`kafka_ports {10.1.0.5:9092}: want enforced, found absent`,
		`kafka_ports {10.1.0.5:9999}: want absent, found 1`,
		`kafka_ebinds {slot ` + string(rune('0'+slot)) + ` identity 300 10.1.0.6:9092}: want list 7, found absent`,
		`kafka_eports {10.1.0.6:9998}: want absent, found 1`,
	} {
		if !strings.Contains(all, want) {
			t.Errorf("drifts lack %q:\n%s", want, all)
		}
	}
	if len(ds) != 10 {
		t.Errorf("%d drifts, want 10:\n%s", len(ds), all)
	}

	// The repair: a fresh generation; nothing of the tampering is left.
	if err := d.Apply(3, tables, binds); err != nil {
		t.Fatal(err)
	}
	if ds, err := d.Compare(3, tables, binds); err != nil || len(ds) != 0 {
		t.Fatalf("compare after the repair: %v %v", ds, err)
	}
	for _, s := range []uint32{0, 1} {
		var x kafkabpf.KafkaKafkaList
		if err := d.objs.KafkaLists.Lookup(kafkabpf.KafkaKafkaListKey{Slot: s, List: 99}, &x); err == nil {
			t.Errorf("the extra list 99 is still in slot %d", s)
		}
	}
	var v uint32
	if err := d.objs.KafkaPorts.Lookup(kafkabpf.KafkaKafkaPortKey{Port: 9999, Family: fam, Addr: addr}, &v); err == nil {
		t.Error("the extra port 10.1.0.5:9999 is still enforced")
	}
	if err := d.objs.KafkaEports.Lookup(kafkabpf.KafkaKafkaPortKey{Port: 9998, Family: efam, Addr: eaddr}, &v); err == nil {
		t.Error("the extra egress port 10.1.0.6:9998 is still enforced")
	}
	if r := parseAt(t, d, 7, true, produceOrders, 0); r.Reason != ReasonAllowed {
		t.Fatalf("produce to orders after the repair: %+v", r)
	}

	// A slot switched behind the agent's back, and the event flag.
	d.SetAllowedEvents(true)
	if err := d.Apply(4, tables, binds); err != nil {
		t.Fatal(err)
	}
	must(d.objs.KafkaSlot.Update(uint32(0), kafkabpf.KafkaKafkaActive{Slot: d.active ^ 1}, ebpf.UpdateAny))
	ds, err = d.Compare(4, tables, binds)
	if err != nil {
		t.Fatal(err)
	}
	if len(ds) == 0 || ds[0].Map != "kafka_slot" {
		t.Fatalf("a switched slot: drifts %v, want kafka_slot first", ds)
	}
	if err := d.Apply(5, tables, binds); err != nil {
		t.Fatal(err)
	}
	if ds, err := d.Compare(5, tables, binds); err != nil || len(ds) != 0 {
		t.Fatalf("compare after repairing the slot: %v %v", ds, err)
	}
	var conf kafkabpf.KafkaKafkaConfig
	if err := d.objs.KafkaGens.Lookup(d.active, &conf); err != nil || conf.Flags != kafkaEvAllowed || conf.Generation != 5 {
		t.Fatalf("kafka_gens of the active slot: %+v %v, want generation 5 with the allowed-events flag", conf, err)
	}
}
