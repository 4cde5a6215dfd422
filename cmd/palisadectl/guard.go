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

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"time"

	git "github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/spf13/cobra"

	"github.com/palisade-dev/palisade/internal/diag"
	"github.com/palisade-dev/palisade/internal/guard"
	"github.com/palisade-dev/palisade/internal/validate"
	"github.com/palisade-dev/palisade/policies/schema"
)

func init() { commands = append(commands, newGuardCmd) }

// guardFlags are validate's flags for guarding the change against a base
// revision.
type guardFlags struct {
	base      string
	sources   []string // NAME=DIR or DIR
	data      string
	policySet string
	overrides []string
	decision  string
	changeSet string
	timeout   time.Duration
}

func (f *guardFlags) register(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.StringVar(&f.base, "base", "", "Git revision (branch, tag, commit) to guard the change from; enables the guards")
	fl.StringArrayVar(&f.sources, "guards", nil, "external guard source, NAME=DIR or DIR (repeatable); applied with the built-in guards")
	fl.StringVar(&f.data, "guard-data", "", "JSON file of the PolicySet's guard parameters (data.palisade.params)")
	fl.StringVar(&f.policySet, "policy-set", "", "NAMESPACE/NAME of the PolicySet the repository is for")
	fl.StringArrayVar(&f.overrides, "override", nil, "approve an override (repeatable), like a Palisade-Override: commit trailer")
	fl.StringVar(&f.decision, "decision", "", "write the guards' decision JSON to this file")
	fl.StringVar(&f.changeSet, "change-set", "", "write the change-set document (the guards' input) to this file")
	fl.DurationVar(&f.timeout, "guard-timeout", guard.DefaultTimeout, "time budget of all guards together")
}

// misused reports a guard flag set without --base, which would silently
// do nothing.
func (f *guardFlags) misused(cmd *cobra.Command) error {
	if f.base != "" {
		return nil
	}
	for _, n := range []string{"guards", "guard-data", "policy-set", "override", "decision", "change-set", "guard-timeout"} {
		if cmd.Flags().Changed(n) {
			return fmt.Errorf("--%s needs --base: guards judge a change", n)
		}
	}
	return nil
}

// guardChange computes the change from f.base to the working tree of dir,
// applies the guards and returns their findings (positions relative to
// dir), the guards' compile errors (positions as the --guards paths were
// given; then nothing is evaluated) and whether the change may pass.
func (f *guardFlags) guardChange(ctx context.Context, dir string, head []*validate.Policy, opts validate.Options) (findings, compile diag.List, allowed bool, err error) {
	sources := []guard.Source{guard.Builtin()}
	for _, s := range f.sources {
		name, p, ok := strings.Cut(s, "=")
		if !ok {
			name, p = filepath.ToSlash(filepath.Clean(s)), s
		}
		src, err := guard.FromDir(name, p)
		if err != nil {
			return nil, nil, false, err
		}
		sources = append(sources, src)
	}
	g, cd := guard.Compile(sources...)
	if cd.HasErrors() {
		return nil, cd, false, nil // nothing evaluated
	}
	var diags diag.List
	meta, err := f.meta()
	if err != nil {
		return nil, nil, false, err
	}
	base, err := checkoutBase(dir, f.base, &meta)
	if err != nil {
		return nil, nil, false, err
	}
	defer os.RemoveAll(base.tmp)
	rep, err := validate.Dir(ctx, base.dir, opts)
	if err != nil {
		return nil, nil, false, fmt.Errorf("validate base %s: %w", f.base, err)
	}
	if !rep.Valid() {
		diags = append(diags, diag.New("PAL605", diag.Pos{File: "."}, "the policies at %s (%s) have %d error(s); %d of them loaded", f.base, meta.PreviousRevision, rep.Diagnostics.Count(diag.Error), len(rep.Objects)))
	}
	if f.changeSet != "" {
		cs := guard.NewChangeSet(guard.Canonical(rep.Objects, meta), guard.Canonical(head, meta), meta)
		if err := os.WriteFile(f.changeSet, cs.JSON(), 0o644); err != nil {
			return nil, nil, false, err
		}
	}
	js, d := guard.Review(ctx, g, rep.Objects, head, meta, guard.Options{Timeout: f.timeout})
	if f.decision != "" {
		if err := os.WriteFile(f.decision, js, 0o644); err != nil {
			return nil, nil, false, err
		}
	}
	return append(diags, d.Diagnostics()...), nil, d.Allowed, nil
}

// meta is what the flags say about the change; checkoutBase adds what Git
// says.
func (f *guardFlags) meta() (guard.Meta, error) {
	m := guard.Meta{Overrides: slices.Clone(f.overrides)}
	if f.policySet != "" {
		ns, name, ok := strings.Cut(f.policySet, "/")
		if !ok || ns == "" || name == "" || strings.Contains(name, "/") {
			return m, fmt.Errorf("--policy-set %q: want NAMESPACE/NAME", f.policySet)
		}
		m.PolicySet = guard.PolicySetRef{Namespace: ns, Name: name}
	}
	if f.data != "" {
		b, err := os.ReadFile(f.data)
		if err != nil {
			return m, fmt.Errorf("--guard-data: %w", err)
		}
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.UseNumber()
		if err := dec.Decode(&m.Params); err != nil {
			return m, fmt.Errorf("--guard-data %s: want a JSON object: %w", f.data, err)
		}
		if _, err := dec.Token(); err != io.EOF {
			return m, fmt.Errorf("--guard-data %s: want one JSON object", f.data)
		}
	}
	return m, nil
}

// Budgets of a base checkout, like the loader's for the working tree.
const (
	maxBaseFiles = 100_000
	maxBaseBytes = 256 << 20
)

// baseTree is a base revision's policy directory written to disk.
type baseTree struct{ tmp, dir string }

// checkoutBase writes the CUE files (and cue.mod directories) of the Git
// revision ref, of the repository that contains dir, into a temporary
// directory, and returns the directory that corresponds to dir there. It
// fills meta's revisions and author from Git: the previous revision is
// ref's commit, the revision is HEAD's ("-dirty" when the working tree has
// uncommitted changes), overrides come from HEAD's Palisade-Override
// trailers.
func checkoutBase(dir, ref string, meta *guard.Meta) (baseTree, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return baseTree{}, err
	}
	repo, err := git.PlainOpenWithOptions(abs, &git.PlainOpenOptions{DetectDotGit: true})
	if err != nil {
		return baseTree{}, fmt.Errorf("--base: %s is not in a Git repository: %w", dir, err)
	}
	wt, err := repo.Worktree()
	if err != nil {
		return baseTree{}, fmt.Errorf("--base: %w", err)
	}
	root, err := filepath.EvalSymlinks(wt.Filesystem.Root())
	if err != nil {
		return baseTree{}, err
	}
	if abs, err = filepath.EvalSymlinks(abs); err != nil {
		return baseTree{}, err
	}
	rel, err := filepath.Rel(root, abs)
	if err != nil || strings.HasPrefix(rel, "..") {
		return baseTree{}, fmt.Errorf("--base: %s is outside the repository at %s", dir, root)
	}
	h, err := repo.ResolveRevision(plumbing.Revision(ref))
	if err != nil {
		return baseTree{}, fmt.Errorf("--base %s: %w", ref, err)
	}
	baseCommit, err := repo.CommitObject(*h)
	if err != nil {
		return baseTree{}, fmt.Errorf("--base %s: %w", ref, err)
	}
	meta.PreviousRevision = baseCommit.Hash.String()
	if head, err := repo.Head(); err == nil {
		c, err := repo.CommitObject(head.Hash())
		if err != nil {
			return baseTree{}, fmt.Errorf("HEAD: %w", err)
		}
		meta.Revision = c.Hash.String()
		meta.Author = guard.Author{Name: c.Author.Name, Email: c.Author.Email}
		meta.Overrides = append(meta.Overrides, trailers(c.Message, "Palisade-Override")...)
		st, err := wt.Status()
		if err != nil {
			return baseTree{}, fmt.Errorf("working tree status: %w", err)
		}
		if !st.IsClean() {
			meta.Revision += "-dirty"
		}
	} else if !errors.Is(err, plumbing.ErrReferenceNotFound) {
		return baseTree{}, fmt.Errorf("HEAD: %w", err)
	}
	tree, err := baseCommit.Tree()
	if err != nil {
		return baseTree{}, fmt.Errorf("--base %s: %w", ref, err)
	}
	tmp, err := os.MkdirTemp("", "palisade-base-")
	if err != nil {
		return baseTree{}, err
	}
	if err := writeTree(tree, tmp); err != nil {
		os.RemoveAll(tmp)
		return baseTree{}, fmt.Errorf("--base %s: %w", ref, err)
	}
	out := filepath.Join(tmp, rel)
	if err := os.MkdirAll(out, 0o755); err != nil { // DIR may not exist at the base: every policy is new
		os.RemoveAll(tmp)
		return baseTree{}, err
	}
	return baseTree{tmp: tmp, dir: out}, nil
}

// writeTree writes the regular .cue files of a Git tree, and every regular
// file below a cue.mod directory, under dst.
func writeTree(tree *object.Tree, dst string) error {
	files, size := 0, int64(0)
	return tree.Files().ForEach(func(f *object.File) error {
		if f.Mode != filemode.Regular && f.Mode != filemode.Executable {
			return nil
		}
		if path.Ext(f.Name) != ".cue" && !slices.Contains(strings.Split(path.Dir(f.Name), "/"), "cue.mod") {
			return nil
		}
		if files++; files > maxBaseFiles {
			return fmt.Errorf("more than %d CUE files", maxBaseFiles)
		}
		if size += f.Size; size > maxBaseBytes {
			return fmt.Errorf("CUE files exceed %d bytes", maxBaseBytes)
		}
		r, err := f.Reader()
		if err != nil {
			return err
		}
		defer r.Close()
		p := filepath.Join(dst, filepath.FromSlash(f.Name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		w, err := os.Create(p)
		if err != nil {
			return err
		}
		if _, err := io.Copy(w, r); err != nil {
			w.Close()
			return err
		}
		return w.Close()
	})
}

// trailers returns the values of the trailer key in the last paragraph of
// a commit message.
func trailers(msg, key string) []string {
	paras := strings.Split(strings.TrimSpace(strings.ReplaceAll(msg, "\r\n", "\n")), "\n\n")
	var out []string
	for _, line := range strings.Split(paras[len(paras)-1], "\n") {
		k, v, ok := strings.Cut(line, ":")
		if ok && strings.EqualFold(strings.TrimSpace(k), key) && strings.TrimSpace(v) != "" {
			out = append(out, strings.TrimSpace(v))
		}
	}
	return out
}

func newGuardCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "guard",
		Short: "Work with OPA guards",
	}
	cmd.AddCommand(newGuardTestCmd())
	return cmd
}

func newGuardTestCmd() *cobra.Command {
	var (
		output    string
		noBuiltin bool
		verbose   bool
	)
	cmd := &cobra.Command{
		Use:   "test [DIR...]",
		Short: "Run the Rego tests of the built-in guards and of the guards in DIR",
		Long: `test runs the Rego tests (rules named test_* in *_test.rego files) of the
built-in guard library and of every guard directory given, with OPA's test
runner and the restrictions guards are evaluated under. A directory is NAME=DIR
or DIR. Guards that do not compile are reported at file:line:col and no test
runs.

A package that a directory declares replaces the built-in package of that
name, and the built-in tests of it (package NAME_test) are left out: a copy
of policies/guards, edited, is tested in place of the built-in library. (In
a PolicySet and in validate --guards, a package belongs to one source: there
a copy must rename its packages.)

Exit status: 0 every test passed, 1 a test failed or a guard does not
compile, 2 usage or internal error.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if output != "text" && output != "json" {
				return &exitError{exitUsage, fmt.Errorf("unknown --output %q (want text, json)", output)}
			}
			var sources []guard.Source
			for _, a := range args {
				name, p, ok := strings.Cut(a, "=")
				if !ok {
					name, p = filepath.ToSlash(filepath.Clean(a)), a
				}
				s, err := guard.FromDir(name, p)
				if err != nil {
					return &exitError{exitUsage, err}
				}
				sources = append(sources, s)
			}
			if !noBuiltin {
				// A package of DIR replaces the built-in one of that
				// name: DIR is an edited copy of the built-in guards.
				b, replaced := guard.Builtin().Without(sources...)
				if len(replaced) > 0 {
					fmt.Fprintf(cmd.ErrOrStderr(), "palisadectl: testing the given guards in place of %d built-in package(s): %s\n", len(replaced), strings.Join(replaced, ", "))
				}
				if len(b.Modules) > 0 {
					sources = append([]guard.Source{b}, sources...)
				}
			}
			if len(sources) == 0 {
				return &exitError{exitUsage, errors.New("no guards to test: give a DIR or drop --no-builtin")}
			}
			results, diags, err := guard.RunTests(cmd.Context(), sources...)
			if err != nil {
				return &exitError{exitUsage, err}
			}
			if diags.HasErrors() {
				if err := diag.Write(cmd.OutOrStdout(), output, "palisadectl", schema.Version, diags); err != nil {
					return &exitError{exitUsage, err}
				}
				return &exitError{code: exitInvalid}
			}
			failed, err := writeTestResults(cmd.OutOrStdout(), output, verbose, results)
			if err != nil {
				return &exitError{exitUsage, err}
			}
			if failed > 0 || len(results) == 0 {
				return &exitError{code: exitInvalid}
			}
			return nil
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "text", "output format: text, json")
	cmd.Flags().BoolVar(&noBuiltin, "no-builtin", false, "test only the given directories, without the built-in library (whose test helpers, data.palisade.testlib, then are missing)")
	cmd.Flags().BoolVarP(&verbose, "verbose", "v", false, "list passing tests too")
	return cmd
}

// testJSON is one test in guard test's JSON output.
type testJSON struct {
	Pos     diag.Pos `json:"pos"`
	Package string   `json:"package"`
	Name    string   `json:"name"`
	Result  string   `json:"result"`
	Error   string   `json:"error,omitempty"`
}

// writeTestResults prints results and returns how many failed.
func writeTestResults(w io.Writer, format string, verbose bool, results []guard.TestResult) (int, error) {
	var (
		failed, passed, skipped int
		list                    = []testJSON{}
	)
	for _, r := range results {
		res := "FAIL"
		switch {
		case r.Skip:
			res, skipped = "SKIP", skipped+1
		case r.Pass:
			res, passed = "PASS", passed+1
		default:
			failed++
		}
		list = append(list, testJSON{Pos: r.Pos, Package: r.Package, Name: r.Name, Result: res, Error: r.Error})
	}
	if format == "json" {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return failed, enc.Encode(map[string]any{"passed": passed, "failed": failed, "skipped": skipped, "tests": list})
	}
	for _, t := range list {
		if t.Result == "PASS" && !verbose {
			continue
		}
		line := fmt.Sprintf("%s: %s %s.%s", t.Pos, t.Result, t.Package, t.Name)
		if t.Error != "" {
			line += ": " + t.Error
		}
		if _, err := fmt.Fprintln(w, line); err != nil {
			return failed, err
		}
	}
	_, err := fmt.Fprintf(w, "%d passed, %d failed, %d skipped\n", passed, failed, skipped)
	return failed, err
}
