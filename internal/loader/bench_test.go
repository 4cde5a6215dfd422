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

package loader_test

import (
	"context"
	"testing"

	"github.com/palisade-dev/palisade/hack/genpolicies/gen"
	"github.com/palisade-dev/palisade/internal/diag"
	"github.com/palisade-dev/palisade/internal/loader"
)

// The Load benchmarks validate repositories written by hack/genpolicies,
// the ones `make bench-validate` compares with cue vet (docs/bench-validate.md):
//
//	go test ./internal/loader -run '^$' -bench 'Load10k$' -benchtime 3x -cpuprofile cpu.out
//
// Load1k and Load10k resolve the schema import through the repository's
// cue.mod/local-module.cue replace (the copy in _schema/, as cue vet
// does); the Embedded variants have no replace, so the import is served
// from the binary by the loader's registry, as for a real repository.

func BenchmarkLoad1k(b *testing.B)          { benchmarkLoad(b, 1000, false) }
func BenchmarkLoad10k(b *testing.B)         { benchmarkLoad(b, 10000, false) }
func BenchmarkLoadEmbedded1k(b *testing.B)  { benchmarkLoad(b, 1000, true) }
func BenchmarkLoadEmbedded10k(b *testing.B) { benchmarkLoad(b, 10000, true) }

func benchmarkLoad(b *testing.B, n int, embedded bool) {
	dir := b.TempDir()
	if _, err := gen.Write(dir, gen.Config{N: n, Seed: 1, Embedded: embedded}); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() { // the setup above runs once
		res, err := loader.Load(context.Background(), dir, loader.Options{})
		if err != nil {
			b.Fatal(err)
		}
		if res.Diagnostics.HasErrors() || len(res.Objects) != n {
			for i, d := range res.Diagnostics {
				if i == 10 {
					break
				}
				b.Log(d)
			}
			b.Fatalf("loaded %d objects with %d errors, want %d and none",
				len(res.Objects), res.Diagnostics.Count(diag.Error), n)
		}
	}
	b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "policies/s")
}
