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
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"

	"github.com/palisade-dev/palisade/internal/policy"
)

// Options configures an evaluation.
type Options struct {
	// Timeout bounds the evaluation of all guards (default 5s). A guard
	// still running then fails, and the change is denied.
	Timeout time.Duration
	// Cache keeps what reviews derive from each policy and change, by
	// content, for the next review (Review and ReviewObjects; see Cache).
	// Nil uses the process's default cache.
	Cache *Cache

	// whole evaluates every guard on the whole change set (tests).
	whole bool
}

// DefaultTimeout is the evaluation budget when Options.Timeout is zero.
const DefaultTimeout = 5 * time.Second

// Review is the CLI's path to guard a change (the controller's,
// ReviewObjects, takes the same steps): it builds the change set from base
// to head of the policies' canonical forms (the one an object read back
// from the API server has), evaluates the guards and returns the decision
// and its JSON. With the same policies, meta and guards, both get the same
// bytes. Only changed policies are encoded: the change set is
// NewChangeSet(Canonical(base), Canonical(head)) without encoding the rest,
// and what an earlier review derived from the same policies and changes is
// taken from opts.Cache.
func Review(ctx context.Context, g *Guards, base, head []*policy.Policy, meta Meta, opts Options) ([]byte, *Decision) {
	d := g.Evaluate(ctx, reviewChangeSet(base, head, meta, opts.Cache), opts)
	return d.JSON(), d
}

// Canonical returns the policies in the form guards see them (see
// docs/guards.md): each typed object re-encoded with only its identity,
// labels, annotations and spec, a namespaced policy without a namespace
// given the PolicySet's. NewChangeSet on canonical policies yields the same
// document from the CLI and from the cluster.
func Canonical(ps []*policy.Policy, meta Meta) []*policy.Policy {
	out := make([]*policy.Policy, len(ps))
	parallel(len(ps), func(i int) { out[i] = canonical(ps[i], meta.PolicySet.Namespace) })
	return out
}

// Evaluate runs every guard on the change set. It fails closed: a guard
// that errors, runs out of time or returns something other than a set of
// messages denies the change with the reason, and so does a change set the
// guards cannot judge in full. A nil g denies too.
func (g *Guards) Evaluate(ctx context.Context, cs *ChangeSet, opts Options) *Decision {
	d := &Decision{APIVersion: APIVersion, Kind: "Decision", Revision: cs.Revision, PreviousRevision: cs.PreviousRevision, Summary: cs.Summary}
	d.Errors = append(d.Errors, cs.problems...)
	if g == nil {
		d.Errors = append(d.Errors, Finding{Message: "no guards: they did not compile, so nothing may pass"})
		return d.finish()
	}
	d.GuardsRevision = g.revision
	if cs.tooBig {
		return d.finish() // a problem says why
	}
	timeout := opts.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	queries, err := g.prepare(ctx, cs.params)
	if err != nil {
		d.Errors = append(d.Errors, Finding{Message: err.Error()})
		return d.finish()
	}

	var rest string
	if len(queries) > 0 {
		if obj, ok := cs.value.(ast.Object); ok {
			rest = restKey(queries[0].paramsKey, obj, g.restKeys)
		}
	}
	perChange := func(q *preparedGuard) bool {
		return q.hasPerChange && !opts.whole && len(cs.changeTerms) > 0 && rest != ""
	}
	var ids []uint64
	for i := range queries {
		if perChange(&queries[i]) {
			// One lookup per change for all the guards' memos.
			ids = g.changeIDs.ids(cs.changeTerms)
			break
		}
	}
	results := make([]result, len(queries))
	var wg sync.WaitGroup
	sem := make(chan struct{}, runtime.GOMAXPROCS(0))
	for i := range queries {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			if perChange(&queries[i]) {
				results[i] = g.runPerChange(ctx, &queries[i], cs, ids, rest, timeout)
			} else {
				results[i] = run(ctx, &queries[i], cs.value, cs, timeout)
			}
		})
	}
	wg.Wait()
	for _, r := range results {
		d.Denies = append(d.Denies, r.denies...)
		d.Warnings = append(d.Warnings, r.warnings...)
		d.Errors = append(d.Errors, r.errs...)
	}
	return d.finish()
}

// result is what one guard said.
type result struct {
	denies, warnings, errs []Finding
}

// run evaluates one guard.
func run(ctx context.Context, q *preparedGuard, input ast.Value, cs *ChangeSet, timeout time.Duration) result {
	fail := func(format string, args ...any) result {
		return result{errs: []Finding{{Guard: q.name, Source: q.source, Message: fmt.Sprintf(format, args...)}}}
	}
	rs, err := q.query.Eval(ctx, rego.EvalParsedInput(input))
	switch {
	case err != nil && ctx.Err() != nil:
		return fail("did not finish within %s", timeout)
	case err != nil:
		return fail("evaluation failed: %v", err)
	case len(rs) != 1:
		return fail("produced %d results, want one (is deny or warn undefined?)", len(rs))
	}
	var out result
	for _, x := range []struct {
		name string
		want bool
		into *[]Finding
	}{{"deny", q.deny, &out.denies}, {"warn", q.warn, &out.warnings}} {
		if !x.want {
			continue
		}
		fs, err := findings(rs[0].Bindings[x.name], q, cs)
		if err != nil {
			return fail("%s: %v", x.name, err)
		}
		*x.into = fs
	}
	return out
}

// findings reads a deny or warn set: each element is a message, or an
// object {"msg": string, "policy"?: string, "file"?: string, "line"?: int}.
// Anything else is malformed, which fails the guard.
func findings(v any, q *preparedGuard, cs *ChangeSet) ([]Finding, error) {
	set, ok := v.([]any)
	if !ok {
		return nil, fmt.Errorf("is %T, want a set of messages", v)
	}
	out := make([]Finding, 0, len(set))
	for _, e := range set {
		f := Finding{Guard: q.name, Source: q.source}
		switch e := e.(type) {
		case string:
			f.Message = e
		case map[string]any:
			msg, ok := e["msg"].(string)
			if !ok {
				return nil, errors.New(`an object message needs "msg", a string`)
			}
			f.Message = msg
			if f.Policy, ok = optString(e, "policy"); !ok {
				return nil, errors.New(`"policy" must be a string`)
			}
			if f.File, ok = optString(e, "file"); !ok {
				return nil, errors.New(`"file" must be a string`)
			}
			if f.Line, ok = optInt(e, "line"); !ok {
				return nil, errors.New(`"line" must be a whole number`)
			}
			if c := cs.byID[f.Policy]; c != nil && f.File == "" {
				f.File, f.Line = c.File, c.Line
			}
		default:
			return nil, fmt.Errorf("contains %s, want a string or an object with msg", typeName(e))
		}
		out = append(out, f)
	}
	return out, nil
}

func optString(m map[string]any, k string) (string, bool) {
	v, ok := m[k]
	if !ok {
		return "", true
	}
	s, ok := v.(string)
	return s, ok
}

func optInt(m map[string]any, k string) (int, bool) {
	v, ok := m[k]
	if !ok {
		return 0, true
	}
	n, ok := v.(json.Number)
	if !ok {
		return 0, false
	}
	i, err := n.Int64()
	return int(i), err == nil && i >= 0
}

func typeName(v any) string {
	switch v.(type) {
	case json.Number:
		return "a number"
	case bool:
		return "a boolean"
	case []any:
		return "a collection"
	case nil:
		return "null"
	}
	return fmt.Sprintf("%T", v)
}
