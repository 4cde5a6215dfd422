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
		opts    validate.Options
		maxFile int64
		gf      guardFlags
	)
	cmd := &cobra.Command{
		Use:   "validate DIR",
		Short: "Validate a policy repository against the schema and Palisade's semantic checks",
		Long: `validate loads the CUE policy repository in DIR, unifies every policy with
the embedded schema and runs the semantic checks. Every finding has a
file:line:col, a stable code, a severity and a message.

With --base REF, validate also guards the change: it computes the change set
between the Git revision REF and the working tree (docs/guards.md), evaluates
the built-in guards and those given with --guards, and reports their denials
(PAL601), warnings (PAL602) and failures (PAL604) like any other finding.

Exit status: 0 valid (warnings allowed), 1 invalid or denied by a guard, 2
usage or internal error.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if !slices.Contains(diag.Formats, output) {
				return &exitError{exitUsage, fmt.Errorf("unknown --output %q (want %s)", output, strings.Join(diag.Formats, ", "))}
			}
			if err := gf.misused(cmd); err != nil {
				return &exitError{exitUsage, err}
			}
			opts.Load.MaxFileBytes = maxFile
			rep, err := validate.Dir(cmd.Context(), args[0], opts)
			if err != nil {
				return &exitError{exitUsage, err}
			}
			all, allowed := rep.Diagnostics, true
			var guardErrs diag.List
			// Guards judge a change to valid policies: with errors in the
			// working tree there is nothing the cluster would apply.
			if gf.base != "" && rep.Valid() {
				gd, ce, ok, err := gf.guardChange(cmd.Context(), args[0], rep.Objects, opts)
				if err != nil {
					return &exitError{exitUsage, err}
				}
				all, guardErrs, allowed = append(slices.Clone(all), gd...), ce, ok
			}
			// Guard sources' positions are already relative to the
			// working directory; the policies' are relative to DIR.
			diags := append(relativeTo(args[0], all), guardErrs...).Sort()
			if err := diag.Write(cmd.OutOrStdout(), output, "palisadectl", schema.Version, diags); err != nil {
				return &exitError{exitUsage, err}
			}
			if !rep.Valid() || !allowed || diags.HasErrors() {
				return &exitError{code: exitInvalid}
			}
			return nil
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "text", "output format: "+strings.Join(diag.Formats, ", "))
	cmd.Flags().DurationVar(&opts.Load.Timeout, "timeout", 60*time.Second, "evaluation time budget")
	cmd.Flags().Int64Var(&maxFile, "max-file-size", 4<<20, "size budget per CUE file, in bytes")
	cmd.Flags().Int64Var(&opts.Load.MaxTotalBytes, "max-total-size", 256<<20, "size budget for all CUE files, in bytes")
	gf.register(cmd)
	return cmd
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
