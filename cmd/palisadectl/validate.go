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
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/palisade-dev/palisade/internal/diag"
	"github.com/palisade-dev/palisade/internal/validate"
	"github.com/palisade-dev/palisade/policies/schema"
)

func init() { commands = append(commands, newValidateCmd) }

func newValidateCmd() *cobra.Command {
	var (
		output  string
		strict  bool
		opts    validate.Options
		maxFile int64
		gf      guardFlags
		kf      kernelFlags
	)
	cmd := &cobra.Command{
		Use:   "validate DIR...",
		Short: "Validate policy repositories against the schema and Palisade's semantic checks",
		Long: `validate loads the CUE policy repository in each DIR, unifies every policy
with the embedded schema and runs the semantic checks. Every finding has a
file:line:col, a stable code, a severity and a message. Each DIR is
validated on its own, as a PolicySet's path would be; the findings of all
of them are reported together.

A rule that this version's datapath does not enforce as written (L7 rules,
toFQDNs, tracing policies, audit reports; see docs/datapath.md) is accepted
with a warning (PAL060) at its field that says what the kernel does
instead. --strict turns every warning into an error, for CI that must not
merge what the kernel would not enforce.

With --base REF, validate also guards the change of each DIR: it computes
the change set between the Git revision REF and the working tree
(docs/guards.md), evaluates the built-in guards and those given with
--guards, and reports their denials (PAL601), warnings (PAL602) and failures
(PAL604) like any other finding.

With --kernel, the hooks of tracing policies are checked against the
running kernel: every function, LSM hook, tracepoint and uprobe symbol must
exist, argument indexes must be within the hook's arguments, and declared
argument types must read the kernel's real types (PAL520-PAL527), every
field must be one the tracing datapath compiles (PAL529), and each hook's
kind must load here: validate probes once whether fentry, kprobe and BPF-LSM
programs load on this kernel and refuses a hook that no mechanism attaches
(PAL528; a syscall hook falls back to its tracepoints). With --btf FILE
they are checked against the kernel whose BTF FILE holds (e.g. the target
nodes'); nothing can be probed then, uprobe binaries are not looked for
(they are the nodes' and not this machine's), and validate says so. Without
either, hooks are not checked, and validate says so once.

Exit status: 0 valid (warnings allowed unless --strict), 1 invalid or denied
by a guard, 2 usage or internal error.`,
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) == 0 {
				return usage("give at least one policy repository DIR")
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			if !slices.Contains(diag.Formats, output) {
				return &exitError{exitUsage, fmt.Errorf("unknown --output %q (want %s)", output, strings.Join(diag.Formats, ", "))}
			}
			if err := gf.misused(cmd); err != nil {
				return &exitError{exitUsage, err}
			}
			opts.Load.MaxFileBytes = maxFile
			unchecked := 0
			hc, notes, err := kf.checker(&unchecked)
			if err != nil {
				return &exitError{exitUsage, err}
			}
			opts.Hooks = hc
			var diags diag.List
			invalid := false
			for _, dir := range args {
				d, ok, err := validateDir(cmd, dir, opts, &gf, len(args) > 1)
				if err != nil {
					return &exitError{exitUsage, err}
				}
				diags = append(diags, d...)
				invalid = invalid || !ok
			}
			noteUnchecked(cmd.ErrOrStderr(), unchecked, notes)
			if strict {
				diags = strictly(diags)
			}
			diags = diags.Sort()
			if err := diag.Write(cmd.OutOrStdout(), output, "palisadectl", schema.Version, diags); err != nil {
				return &exitError{exitUsage, err}
			}
			if invalid || diags.HasErrors() {
				return &exitError{code: exitInvalid}
			}
			return nil
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "text", "output format: "+strings.Join(diag.Formats, ", "))
	cmd.Flags().BoolVar(&strict, "strict", false, "treat warnings (e.g. PAL060, a rule the datapath does not enforce as written) as errors")
	cmd.Flags().DurationVar(&opts.Load.Timeout, "timeout", 60*time.Second, "evaluation time budget")
	cmd.Flags().Int64Var(&maxFile, "max-file-size", 4<<20, "size budget per CUE file, in bytes")
	cmd.Flags().Int64Var(&opts.Load.MaxTotalBytes, "max-total-size", 256<<20, "size budget for all CUE files, in bytes")
	gf.register(cmd)
	kf.register(cmd)
	return cmd
}

// validateDir validates one policy repository and, with --base, guards its
// change. It returns the findings with positions relative to the working
// directory and whether the repository is valid and its change allowed.
// With several repositories, a position in one outside the working
// directory keeps DIR in front, so that "api.cue" of two of them stay
// apart.
func validateDir(cmd *cobra.Command, dir string, opts validate.Options, gf *guardFlags, several bool) (diag.List, bool, error) {
	rep, err := validate.Dir(cmd.Context(), dir, opts)
	if err != nil {
		return nil, false, err
	}
	all, allowed := rep.Diagnostics, true
	var guardErrs diag.List
	// Guards judge a change to valid policies: with errors in the working
	// tree there is nothing the cluster would apply.
	if gf.base != "" && rep.Valid() {
		// The base revision is what the cluster runs now: its hooks are
		// not this change's findings.
		baseOpts := opts
		baseOpts.Hooks = nil
		gd, ce, ok, err := gf.guardChange(cmd.Context(), dir, rep.Objects, baseOpts)
		if err != nil {
			return nil, false, err
		}
		all, guardErrs, allowed = append(slices.Clone(all), gd...), ce, ok
	}
	// Guard sources' positions are already relative to the working
	// directory; the policies' are relative to DIR.
	out := relativeTo(dir, all)
	if several {
		for i, d := range out {
			if f := d.Pos.File; f != "" && !filepath.IsAbs(f) && relativeFile(dir, f) == f {
				out[i].Pos.File = filepath.ToSlash(filepath.Join(dir, f))
			}
		}
	}
	return append(out, guardErrs...), rep.Valid() && allowed, nil
}

// strictly turns warnings into errors, saying so in the message, so that
// every output format (SARIF, GitHub annotations) shows them as failures.
func strictly(l diag.List) diag.List {
	out := make(diag.List, len(l))
	for i, d := range l {
		if d.Severity == diag.Warning {
			d.Severity = diag.Error
			d.Message += " [--strict]"
		}
		out[i] = d
	}
	return out
}

// relativeTo rewrites positions, which the validator reports relative to
// the repository, to be relative to the working directory when the
// repository lies inside it: CI annotations and SARIF need paths from the
// root of the Git checkout, where the command runs.
func relativeTo(dir string, l diag.List) diag.List {
	out := make(diag.List, len(l))
	for i, d := range l {
		d.Pos.File = relativeFile(dir, d.Pos.File)
		out[i] = d
	}
	return out
}

// relativeFile makes a repository-relative file ("." for the repository
// itself) relative to the working directory when the repository lies
// inside it; otherwise, or for no file or an absolute one, it returns file
// unchanged.
func relativeFile(dir, file string) string {
	if file == "" || filepath.IsAbs(file) {
		return file
	}
	wd, err := os.Getwd()
	if err != nil {
		return file
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return file
	}
	prefix, err := filepath.Rel(wd, abs)
	if err != nil || strings.HasPrefix(prefix, "..") || prefix == "." {
		return file
	}
	return filepath.ToSlash(filepath.Join(prefix, file))
}
