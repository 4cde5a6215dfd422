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

package l7

import (
	"testing"

	"github.com/palisade-dev/palisade/api/v1alpha1"
	l7bpf "github.com/palisade-dev/palisade/bpf/l7"
	"github.com/palisade-dev/palisade/internal/engine"
)

// TestLayout checks that the Go side's limits are the C side's: the map
// sizes per slot and the mask and method table widths.
func TestLayout(t *testing.T) {
	spec, err := l7bpf.LoadL7()
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]uint32{
		"l7_class_rows": 2 * maxDFAs, "l7_next": 2 * MaxNext, "l7_accept": 2 * MaxStates,
		"l7_allows": 2 * maxAllowRows, "l7_hdrreqs": 2 * maxHdrRows, "l7_lists": 2 * MaxLists,
		"l7_counters": 2 * uint32(numReasons), // ingress, then egress
	} {
		if got := spec.Maps[name].MaxEntries; got != want {
			t.Errorf("%s: %d entries, Go expects %d", name, got, want)
		}
	}
	var l l7bpf.L7L7List
	var m l7bpf.L7L7Mask
	if len(m.W) != engine.HTTPMaskWords || len(l.Methods) != engine.HTTPMethodCount {
		t.Errorf("mask of %d words and %d methods in C, %d and %d in the engine", len(m.W), len(l.Methods), engine.HTTPMaskWords, engine.HTTPMethodCount)
	}
	var e l7bpf.L7L7Event
	if len(e.Method) != EventMethodMax || len(e.Path) != EventPathMax || len(e.Host) != EventHostMax {
		t.Errorf("event fields of %d, %d, %d bytes in C, Go cuts at %d, %d, %d", len(e.Method), len(e.Path), len(e.Host), EventMethodMax, EventPathMax, EventHostMax)
	}
}

// TestApplySwitchesGenerations writes a second generation that changes a
// list: requests are decided by the new tables, and the old slot's hash
// entries are gone.
func TestApplySwitchesGenerations(t *testing.T) {
	d := requireKernel(t)
	list := func(path string) map[engine.L7ID]engine.L7List {
		return map[engine.L7ID]engine.L7List{5: {{Rule: 3, Rules: rules(v1alpha1.HTTPRule{Path: path, Headers: []v1alpha1.HTTPHeader{"X-A: b"}})}}}
	}
	head := "GET /one HTTP/1.1\r\nX-A: b\r\n\r\n"
	for gen, tc := range []struct {
		path string
		want Reason
	}{{"/one", ReasonAllowed}, {"/two", ReasonDenied}, {"/o.e", ReasonAllowed}} {
		tables, err := engine.CompileHTTP(list(tc.path))
		if err != nil {
			t.Fatal(err)
		}
		if err := d.Apply(uint64(gen+1), tables, nil); err != nil {
			t.Fatal(err)
		}
		if got := parse(t, d, l7bpf.L7L7Sock{}, 5, []byte(head)); Reason(got.Reason) != tc.want {
			t.Fatalf("generation %d (path %s): %v, want %v", gen+1, tc.path, Reason(got.Reason), tc.want)
		}
		var k l7bpf.L7L7ListKey
		var v l7bpf.L7L7List
		n := 0
		for it := d.objs.L7Lists.Iterate(); it.Next(&k, &v); n++ {
			if k.Slot != d.active {
				t.Fatalf("generation %d: l7_lists holds %+v of the inactive slot", gen+1, k)
			}
		}
		var hk l7bpf.L7L7HdrKey
		var hv uint32
		for it := d.objs.L7Hdrs.Iterate(); it.Next(&hk, &hv); {
			if hk.Slot != d.active {
				t.Fatalf("generation %d: l7_hdrs holds %+v of the inactive slot", gen+1, hk)
			}
		}
		var cfg l7bpf.L7L7Config
		if err := d.objs.L7Gens.Lookup(d.active, &cfg); err != nil || cfg.Generation != uint64(gen+1) {
			t.Fatalf("active slot's generation %d, %v", cfg.Generation, err)
		}
		if n != 1 {
			t.Fatalf("l7_lists has %d entries, want 1", n)
		}
	}
}
