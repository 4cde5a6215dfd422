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

// Package validate is Palisade's validator: the loader's schema checks plus
// the semantic checks CUE cannot express (selectors that never match,
// reversed port ranges, L7 rules the datapath cannot enforce, CIDR
// mistakes, tracing selectors that do not fit their arguments, ...). The CLI
// and the controllers call the same Dir function, so CI and the cluster
// reach the same decision.
package validate

import (
	"context"

	"github.com/palisade-dev/palisade/internal/diag"
	"github.com/palisade-dev/palisade/internal/loader"
)

// Options configures a validation.
type Options struct {
	// Load bounds the loader's budgets.
	Load loader.Options
	// Hooks, when set, checks the hooks of tracing policies against a
	// kernel (PAL520 and up); nil checks none.
	Hooks HookChecker
}

// Report is the outcome of a validation.
type Report struct {
	// Objects are the policies that loaded, typed.
	Objects []*Policy
	// Tests are the flow tests the repository holds beside its policies
	// (kind FlowTest, palisadectl test); they are not policies and are
	// neither checked nor rendered here.
	Tests []*loader.Object
	// Diagnostics are every finding, sorted.
	Diagnostics diag.List
}

// Valid reports whether the repository has no error-severity diagnostic.
func (r *Report) Valid() bool { return !r.Diagnostics.HasErrors() }

// Dir loads and validates the policy repository at dir.
func Dir(ctx context.Context, dir string, opts Options) (*Report, error) {
	res, err := loader.Load(ctx, dir, opts.Load)
	if err != nil {
		return nil, err
	}
	rep := &Report{Diagnostics: res.Diagnostics, Tests: res.Tests}
	policies, diags := Decode(res.Objects)
	rep.Diagnostics = append(rep.Diagnostics, diags...)
	rep.Objects = policies
	rep.Diagnostics = append(rep.Diagnostics, CheckWith(policies, opts)...)
	rep.Diagnostics = rep.Diagnostics.Sort()
	return rep, nil
}
