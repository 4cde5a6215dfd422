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
	"cmp"
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/storage/inmem"
	"github.com/open-policy-agent/opa/v1/tester"

	"github.com/palisade-dev/palisade/internal/diag"
)

// TestResult is the outcome of one Rego test (a rule named test_*).
type TestResult struct {
	// Package is the test's package, e.g. data.palisade.guards.x_test.
	Package string
	// Name is the test rule's name.
	Name string
	// Pos is where the test is.
	Pos diag.Pos
	// Pass and Skip say how it went; a test that is neither failed.
	Pass, Skip bool
	// Error is the evaluation error of a test that could not run.
	Error string
}

// testTimeout bounds one Rego test, like opa test's default.
const testTimeout = 5 * time.Second

// RunTests runs the Rego tests (*_test.rego) of sources with OPA's test
// runner, the way `opa test` does, under the same restrictions as Compile
// (no non-deterministic built-ins, Rego v1). Modules that do not compile
// are PAL603 diagnostics, and then no test runs.
func RunTests(ctx context.Context, sources ...Source) ([]TestResult, diag.List, error) {
	srcs := slices.Clone(sources)
	slices.SortFunc(srcs, func(a, b Source) int { return cmp.Compare(a.Name, b.Name) })
	modules, _, data, diags := parseSources(srcs, true)
	if diags.HasErrors() {
		return nil, diags.Sort(), nil
	}
	if data == nil {
		data = map[string]any{}
	}
	store := inmem.NewFromObjectWithOpts(data, inmem.OptRoundTripOnWrite(true))
	compiler := ast.NewCompiler().WithCapabilities(capabilities())
	runner := tester.NewRunner().
		SetCompiler(compiler).
		SetStore(store).
		SetModules(modules).
		SetTimeout(testTimeout).
		RaiseBuiltinErrors(true)
	txn, err := store.NewTransaction(ctx)
	if err != nil {
		return nil, nil, fmt.Errorf("run guard tests: %w", err)
	}
	defer store.Abort(ctx, txn)
	ch, err := runner.RunTests(ctx, txn)
	if err != nil {
		if errs, ok := err.(ast.Errors); ok {
			return nil, astDiags(errs).Sort(), nil
		}
		return nil, nil, fmt.Errorf("run guard tests: %w", err)
	}
	var out []TestResult
	for r := range ch {
		tr := TestResult{Package: r.Package, Name: r.Name, Pass: r.Pass(), Skip: r.Skip, Pos: locPos(r.Location, "")}
		if r.Error != nil {
			tr.Error = r.Error.Error()
		}
		out = append(out, tr)
	}
	slices.SortFunc(out, func(a, b TestResult) int {
		return cmp.Or(cmp.Compare(a.Pos.File, b.Pos.File), cmp.Compare(a.Pos.Line, b.Pos.Line), cmp.Compare(a.Name, b.Name))
	})
	return out, nil, nil
}
