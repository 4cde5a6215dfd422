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

package guard

import (
	"sync"

	"github.com/open-policy-agent/opa/v1/ast"
)

// maxCachedJSON bounds the policies' JSON the value cache holds per
// generation; the OPA values take several times that.
const maxCachedJSON = 16 << 20

// values caches policies converted to OPA values, by their JSON. Turning a
// policy's JSON into an OPA value costs more than guarding it, and a
// controller sees each policy's JSON twice: as "after" when it changes,
// then as "before" in the next change. Two generations approximate LRU:
// when the current one is full it becomes the old one, and hits in the old
// one move back.
var values = struct {
	sync.Mutex
	cur, old map[string]ast.Value
	size     int
}{cur: map[string]ast.Value{}, old: map[string]ast.Value{}}

// policyTerm returns a policy's JSON as an OPA term, null for none.
func policyTerm(js []byte) *ast.Term {
	if js == nil {
		return ast.NullTerm()
	}
	values.Lock()
	v, ok := values.cur[string(js)]
	if !ok {
		if v, ok = values.old[string(js)]; ok {
			remember(string(js), v)
		}
	}
	values.Unlock()
	if ok {
		return ast.NewTerm(v)
	}
	v, err := jsonValue(js)
	if err != nil {
		// The loader produced it; should it not parse, guards see null
		// rather than half a policy, and the facts still hold.
		return ast.NullTerm()
	}
	values.Lock()
	remember(string(js), v)
	values.Unlock()
	return ast.NewTerm(v)
}

// remember adds to the current generation; values must be locked.
func remember(k string, v ast.Value) {
	if values.size+len(k) > maxCachedJSON {
		values.old, values.cur, values.size = values.cur, map[string]ast.Value{}, 0
	}
	values.cur[k] = v
	values.size += len(k)
}

// forgetValues empties the cache (benchmarks measure cold conversions).
func forgetValues() {
	values.Lock()
	values.cur, values.old, values.size = map[string]ast.Value{}, map[string]ast.Value{}, 0
	values.Unlock()
}
