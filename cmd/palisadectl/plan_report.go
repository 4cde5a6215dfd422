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
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/palisade-dev/palisade/internal/diag"
	"github.com/palisade-dev/palisade/policies/schema"
)

// write prints the plan in one of planFormats.
func (p *plan) write(w io.Writer, format string) error {
	switch format {
	case "json":
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(p)
	case "sarif":
		return diag.Write(w, "sarif", "palisadectl plan", schema.Version, p.diagnostics())
	case "github":
		// Workflow annotations need no rule registry: reuse validate's.
		return diag.Write(w, "github", "palisadectl", schema.Version, p.diagnostics())
	case "markdown":
		return p.writeMarkdown(w)
	}
	return p.writeText(w)
}

// against says what the verdicts were compared with.
func (p *plan) against() string {
	if p.Base == "" {
		return "the recorded verdicts"
	}
	return p.Base
}

func (p *plan) summary() string {
	s := fmt.Sprintf("%d of %d replayed flows change verdict against %s", p.Changed, p.Replayed, p.against())
	if p.Skipped > 0 {
		s += fmt.Sprintf(" (%d records of datapath states skipped)", p.Skipped)
	}
	return s
}

func (p *plan) writeText(w io.Writer) error {
	var b strings.Builder
	for _, pr := range p.Pairs {
		fmt.Fprintf(&b, "%s -> %s: %d flow(s) change, %d allowed flow(s) become dropped\n", pr.Source, pr.Destination, pr.Flows, pr.Broken)
		for _, c := range pr.Changes {
			fmt.Fprintf(&b, "  %d/%s %s -> %s, %d flow(s) (lines %s): now %s\n", c.Port, c.Protocol, c.Before, c.After, c.Count, lines(c.Lines), c.DecidedBy)
			if c.WasDecidedBy != nil {
				fmt.Fprintf(&b, "    was %s\n", c.WasDecidedBy)
			}
		}
	}
	fmt.Fprintf(&b, "%s; %d allowed flow(s) become dropped\n", p.summary(), p.Broken)
	_, err := io.WriteString(w, b.String())
	return err
}

// lines lists record lines, the first few of many.
func lines(ls []int) string {
	const max = 10
	var parts []string
	for i, l := range ls {
		if i == max {
			parts = append(parts, fmt.Sprintf("and %d more", len(ls)-max))
			break
		}
		parts = append(parts, strconv.Itoa(l))
	}
	return strings.Join(parts, ", ")
}

func (p *plan) writeMarkdown(w io.Writer) error {
	var b strings.Builder
	b.WriteString("### Palisade plan\n\n")
	switch {
	case p.Broken > 0:
		fmt.Fprintf(&b, ":x: **%d recorded flow(s) that were allowed would be dropped.** %s.\n\n", p.Broken, p.summary())
	case p.Changed > 0:
		fmt.Fprintf(&b, ":warning: No allowed flow would be dropped. %s.\n\n", p.summary())
	default:
		fmt.Fprintf(&b, ":white_check_mark: No recorded flow changes verdict: %d flow(s) replayed against %s.\n", p.Replayed, p.against())
		_, err := io.WriteString(w, b.String())
		return err
	}
	b.WriteString("| Source | Destination | Port | Before | After | Flows | Now decided by |\n")
	b.WriteString("|---|---|---|---|---|---:|---|\n")
	for _, pr := range p.Pairs {
		for _, c := range pr.Changes {
			after := string(c.After)
			if c.breaks() {
				after = "**" + after + "**"
			}
			fmt.Fprintf(&b, "| `%s` | `%s` | %d/%s | %s | %s | %d | %s |\n", pr.Source, pr.Destination, c.Port, c.Protocol, c.Before, after, c.Count, mdCell(c.DecidedBy.String()))
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// mdCell escapes a table cell.
func mdCell(s string) string {
	return strings.NewReplacer("|", `\|`, "\n", " ").Replace(s)
}

// message says what happens to one change's flows.
func (pr *pairOut) message(c *changeOut) string {
	return fmt.Sprintf("%d recorded flow(s) %s -> %s %d/%s: %s -> %s, now %s", c.Count, pr.Source, pr.Destination, c.Port, c.Protocol, c.Before, c.After, c.DecidedBy)
}

// diagnostics are the changes as findings at the rule now deciding.
func (p *plan) diagnostics() diag.List {
	var l diag.List
	for _, pr := range p.Pairs {
		for _, c := range pr.Changes {
			d := diag.New("PLAN002", c.DecidedBy.pos(), "%s", pr.message(c))
			if c.breaks() {
				d = diag.New("PLAN001", c.DecidedBy.pos(), "%s", pr.message(c))
			}
			l = append(l, d)
		}
	}
	return l
}
