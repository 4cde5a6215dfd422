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
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"cuelang.org/go/cue/ast"
	"github.com/spf13/cobra"

	"github.com/palisade-dev/palisade/internal/diag"
	"github.com/palisade-dev/palisade/internal/importer"
)

func init() { commands = append(commands, newImportCmd) }

// importOptions are the flags of palisadectl import.
type importOptions struct {
	outDir  string
	pkg     string
	output  string
	verbose bool
}

func newImportCmd() *cobra.Command {
	var opts importOptions
	cmd := &cobra.Command{
		Use:   "import FILE...",
		Short: "Convert Cilium, Kubernetes and Tetragon policy YAML into Palisade CUE",
		Long: `import converts CiliumNetworkPolicy, CiliumClusterwideNetworkPolicy
(cilium.io/v2), Kubernetes NetworkPolicy (networking.k8s.io/v1) and Tetragon
TracingPolicy / TracingPolicyNamespaced (cilium.io/v1alpha1) documents into
Palisade policies in CUE. FILE may hold several YAML documents; "-" reads
standard input.

Every field is translated by an explicit table. A field with no Palisade
equivalent is reported with its file:line:col; when leaving it out would make
the policy less restrictive than the source, the whole object is rejected
instead of imported. Every emitted object is checked against the embedded
schema.

Without --out-dir, the CUE goes to standard output (one package clause for
all files) and the report to standard error. With --out-dir DIR (-d DIR),
each input file becomes DIR/<name>.cue and the report goes to standard
output. As in validate and guard test, -o (--output) is the report's format.

Exit status: 0 every object imported (warnings allowed), 1 some object was
rejected, 2 usage or I/O error.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runImport(cmd.InOrStdin(), cmd.OutOrStdout(), cmd.ErrOrStderr(), args, opts)
		},
	}
	cmd.Flags().StringVarP(&opts.outDir, "out-dir", "d", "", "write one CUE file per input file into this directory instead of standard output")
	// --output-dir was this flag's old name, when -o was its short form.
	cmd.Flags().StringVar(&opts.outDir, "output-dir", "", "")
	_ = cmd.Flags().MarkDeprecated("output-dir", "use --out-dir (-d)")
	cmd.Flags().StringVar(&opts.pkg, "package", importer.DefaultPackage, "CUE package of the written files")
	cmd.Flags().StringVarP(&opts.output, "output", "o", "text", "report format: text or json")
	cmd.Flags().BoolVarP(&opts.verbose, "verbose", "v", false, "also report translation notes (info)")
	return cmd
}

// runImport is the import command without cobra, for tests.
func runImport(stdin io.Reader, stdout, stderr io.Writer, files []string, opts importOptions) error {
	if opts.output != "text" && opts.output != "json" {
		// -o used to name the output directory: say where it went rather
		// than guess which was meant.
		return &exitError{exitUsage, fmt.Errorf("unknown --output %q (want text or json); -o is the report format, the output directory is --out-dir (-d)", opts.output)}
	}
	if !ast.IsValidIdent(opts.pkg) || strings.HasPrefix(opts.pkg, "_") || strings.HasPrefix(opts.pkg, "#") {
		return &exitError{exitUsage, fmt.Errorf("--package %q is not a CUE package name", opts.pkg)}
	}
	im, err := importer.New()
	if err != nil {
		return &exitError{exitUsage, err}
	}
	var (
		results []*importer.FileResult
		ioErrs  []error
	)
	for _, f := range files {
		var data []byte
		var err error
		if f == "-" {
			data, err = io.ReadAll(stdin)
		} else {
			data, err = os.ReadFile(f)
		}
		if err != nil {
			ioErrs = append(ioErrs, fmt.Errorf("read %s: %w", f, err))
			continue
		}
		results = append(results, im.File(filepath.ToSlash(f), data))
	}
	importer.MarkDuplicates(results...)

	report, cueOut := stderr, stdout
	outputs := map[*importer.FileResult]string{}
	if opts.outDir != "" {
		report = stdout
		written, err := writeImports(opts.outDir, opts.pkg, results)
		if err != nil {
			ioErrs = append(ioErrs, err)
		}
		outputs = written
	} else {
		b, err := importer.Render(opts.pkg, results...)
		if err != nil {
			return &exitError{exitUsage, err}
		}
		if _, err := cueOut.Write(b); err != nil {
			return &exitError{exitUsage, fmt.Errorf("write CUE: %w", err)}
		}
	}
	if err := writeImportReport(report, opts, results, outputs); err != nil {
		ioErrs = append(ioErrs, err)
	}
	failed := false
	for _, r := range results {
		failed = failed || r.Failed()
	}
	switch {
	case len(ioErrs) > 0:
		return &exitError{exitUsage, errors.Join(ioErrs...)}
	case failed:
		return &exitError{code: exitInvalid}
	}
	return nil
}

// writeImports writes one CUE file per input file that has an imported
// object, and returns the path written for each.
func writeImports(dir, pkg string, results []*importer.FileResult) (map[*importer.FileResult]string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("create %s: %w", dir, err)
	}
	names := outputNames(results)
	out := map[*importer.FileResult]string{}
	for _, r := range results {
		b, err := importer.Render(pkg, r)
		if err != nil {
			return out, err
		}
		if b == nil {
			continue
		}
		p := filepath.Join(dir, names[r])
		if err := os.WriteFile(p, b, 0o644); err != nil {
			return out, fmt.Errorf("write %s: %w", p, err)
		}
		out[r] = p
	}
	return out, nil
}

// outputNames names each input's CUE file after the input's base name; when
// two inputs share a base name, those two are named after their whole path
// instead, so no file overwrites another.
func outputNames(results []*importer.FileResult) map[*importer.FileResult]string {
	base := func(f string) string {
		if f == "-" {
			return "stdin"
		}
		b := filepath.Base(f)
		return strings.TrimSuffix(b, filepath.Ext(b))
	}
	count := map[string]int{}
	for _, r := range results {
		count[base(r.File)]++
	}
	names := map[*importer.FileResult]string{}
	for _, r := range results {
		n := base(r.File)
		if count[n] > 1 {
			p := filepath.ToSlash(filepath.Clean(r.File))
			p = strings.TrimSuffix(p, filepath.Ext(p))
			for strings.HasPrefix(p, "../") {
				p = strings.TrimPrefix(p, "../")
			}
			n = strings.NewReplacer("/", "_", ":", "_").Replace(strings.TrimPrefix(p, "/"))
		}
		names[r] = n + ".cue"
	}
	return names
}

// importSummary counts what became of the input.
type importSummary struct {
	Files      int `json:"files"`
	Objects    int `json:"objects"`
	Imported   int `json:"imported"`
	Rejected   int `json:"rejected"`
	NotPolicy  int `json:"notPolicy"`
	Emitted    int `json:"emitted"`
	Errors     int `json:"errors"`
	Warnings   int `json:"warnings"`
	SyntaxErrs int `json:"yamlErrors"`
}

func summarize(results []*importer.FileResult) (importSummary, diag.List) {
	s := importSummary{Files: len(results)}
	var all diag.List
	for _, r := range results {
		s.SyntaxErrs += len(r.Diagnostics)
		for _, o := range r.Objects {
			s.Objects++
			switch {
			case o.Status == importer.Imported:
				s.Imported++
				s.Emitted += len(o.Emitted)
			case !o.Policy:
				s.NotPolicy++
			default:
				s.Rejected++
			}
		}
		all = append(all, r.All()...)
	}
	all = all.Sort()
	s.Errors, s.Warnings = all.Count(diag.Error), all.Count(diag.Warning)
	return s, all
}

// importFileReport is one file of the JSON report.
type importFileReport struct {
	*importer.FileResult
	Output string `json:"output,omitempty"`
}

func writeImportReport(w io.Writer, opts importOptions, results []*importer.FileResult, outputs map[*importer.FileResult]string) error {
	s, all := summarize(results)
	if opts.output == "json" {
		files := make([]importFileReport, 0, len(results))
		for _, r := range results {
			files = append(files, importFileReport{r, outputs[r]})
		}
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(struct {
			Summary importSummary      `json:"summary"`
			Files   []importFileReport `json:"files"`
		}{s, files})
	}
	for _, d := range all {
		if d.Severity == diag.Info && !opts.verbose {
			continue
		}
		if _, err := fmt.Fprintln(w, d); err != nil {
			return err
		}
	}
	for _, r := range results {
		if p, ok := outputs[r]; ok {
			if _, err := fmt.Fprintf(w, "wrote %s\n", p); err != nil {
				return err
			}
		}
	}
	_, err := fmt.Fprintf(w, "%d object(s) in %d file(s): %d imported as %d Palisade object(s), %d rejected, %d not a policy; %d error(s), %d warning(s)\n",
		s.Objects, s.Files, s.Imported, s.Emitted, s.Rejected, s.NotPolicy, s.Errors, s.Warnings)
	return err
}
