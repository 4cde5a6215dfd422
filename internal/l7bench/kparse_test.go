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

package l7bench

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/cilium/ebpf"

	l7bpf "github.com/palisade-dev/palisade/bpf/l7"
)

// kparse runs the kernel's head parse (l7_test_parse, which calls the
// same global function as the stream parser) on the live datapath's
// tables through BPF_PROG_TEST_RUN: the cost of deciding one request in
// the program, without the socket machinery around it. The live maps are
// reached through their pins (l7.Datapath.Pin, on a bpffs private to the
// run); the test program and its input and output maps are a second
// load of bpf/l7 sharing them.
type kparse struct {
	objs struct {
		Parse *ebpf.Program `ebpf:"l7_test_parse"`
		In    *ebpf.Map     `ebpf:"l7_test_input"`
		Out   *ebpf.Map     `ebpf:"l7_test_out"`
	}
	maps []*ebpf.Map
}

// testPrefix is the room a test run needs before the message (an
// Ethernet header's worth), as internal/l7's parse tests use.
const testPrefix = 14

func newKparse(pinDir string) (*kparse, error) {
	spec, err := l7bpf.LoadL7()
	if err != nil {
		return nil, err
	}
	k := &kparse{}
	repl := map[string]*ebpf.Map{}
	for name := range spec.Maps {
		if strings.HasPrefix(name, ".") {
			continue // .rodata and the like: the program's own
		}
		m, err := ebpf.LoadPinnedMap(filepath.Join(pinDir, name), nil)
		if errors.Is(err, os.ErrNotExist) {
			continue // a map the datapath does not pin (the test maps)
		}
		if err != nil {
			k.Close()
			return nil, fmt.Errorf("open pinned %s: %w", name, err)
		}
		k.maps = append(k.maps, m)
		repl[name] = m
	}
	if err := spec.LoadAndAssign(&k.objs, &ebpf.CollectionOptions{MapReplacements: repl}); err != nil {
		k.Close()
		var ve *ebpf.VerifierError
		if errors.As(err, &ve) {
			return nil, fmt.Errorf("load l7_test_parse: %+v", ve)
		}
		return nil, fmt.Errorf("load l7_test_parse: %w", err)
	}
	return k, nil
}

func (k *kparse) Close() {
	if k.objs.Parse != nil {
		k.objs.Parse.Close()
	}
	for _, m := range []*ebpf.Map{k.objs.In, k.objs.Out} {
		if m != nil {
			m.Close()
		}
	}
	for _, m := range k.maps {
		m.Close()
	}
}

// run decides req against list repeat times and returns the time per
// decision and the outcome (kind, reason, deciding rule).
func (k *kparse) run(list uint32, req string, repeat int) (time.Duration, l7bpf.L7L7Sock, error) {
	in := l7bpf.L7L7TestIn{List: list, HasList: 1, Off: testPrefix}
	if err := k.objs.In.Update(uint32(0), &in, ebpf.UpdateAny); err != nil {
		return 0, l7bpf.L7L7Sock{}, fmt.Errorf("write test input: %w", err)
	}
	data := append(make([]byte, testPrefix), req...)
	_, per, err := k.objs.Parse.Benchmark(data, repeat, nil)
	if err != nil {
		return 0, l7bpf.L7L7Sock{}, fmt.Errorf("test run: %w", err)
	}
	var out l7bpf.L7L7Sock
	if err := k.objs.Out.Lookup(uint32(0), &out); err != nil {
		return 0, out, fmt.Errorf("read test output: %w", err)
	}
	return per, out, nil
}
