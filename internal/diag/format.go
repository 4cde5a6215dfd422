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

package diag

import (
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
)

// Formats lists the output formats Write understands.
var Formats = []string{"text", "json", "sarif", "github"}

// Write prints diagnostics in a format: "text" (file:line:col: severity
// CODE: message), "json", "sarif" (SARIF 2.1.0, for code scanning) or
// "github" (GitHub Actions workflow commands, shown as annotations).
func Write(w io.Writer, format, tool, version string, l List) error {
	switch format {
	case "text":
		return writeText(w, l)
	case "json":
		return writeJSON(w, l)
	case "sarif":
		return writeSARIF(w, tool, version, l)
	case "github":
		return writeGitHub(w, l)
	}
	return fmt.Errorf("unknown output format %q (want one of %s)", format, strings.Join(Formats, ", "))
}

func writeText(w io.Writer, l List) error {
	for _, d := range l {
		if _, err := fmt.Fprintln(w, d); err != nil {
			return err
		}
	}
	_, err := fmt.Fprintf(w, "%d error(s), %d warning(s)\n", l.Count(Error), l.Count(Warning))
	return err
}

// jsonReport is the stable JSON output of validation.
type jsonReport struct {
	Valid       bool         `json:"valid"`
	Errors      int          `json:"errors"`
	Warnings    int          `json:"warnings"`
	Diagnostics []Diagnostic `json:"diagnostics"`
}

func writeJSON(w io.Writer, l List) error {
	if l == nil {
		l = List{}
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(jsonReport{Valid: !l.HasErrors(), Errors: l.Count(Error), Warnings: l.Count(Warning), Diagnostics: l})
}

func sarifLevel(s Severity) string {
	switch s {
	case Error:
		return "error"
	case Warning:
		return "warning"
	}
	return "note"
}

type sarifMessage struct {
	Text string `json:"text"`
}

type sarifRule struct {
	ID                   string       `json:"id"`
	ShortDescription     sarifMessage `json:"shortDescription"`
	Help                 sarifMessage `json:"help,omitempty"`
	DefaultConfiguration struct {
		Level string `json:"level"`
	} `json:"defaultConfiguration"`
}

type sarifRegion struct {
	StartLine   int `json:"startLine,omitempty"`
	StartColumn int `json:"startColumn,omitempty"`
}

type sarifLocation struct {
	PhysicalLocation struct {
		ArtifactLocation struct {
			URI string `json:"uri"`
		} `json:"artifactLocation"`
		Region *sarifRegion `json:"region,omitempty"`
	} `json:"physicalLocation"`
}

type sarifResult struct {
	RuleID    string          `json:"ruleId"`
	Level     string          `json:"level"`
	Message   sarifMessage    `json:"message"`
	Locations []sarifLocation `json:"locations"`
}

func writeSARIF(w io.Writer, tool, version string, l List) error {
	var ids []string
	for _, d := range l {
		if !slices.Contains(ids, d.Code) {
			ids = append(ids, d.Code)
		}
	}
	slices.Sort(ids)
	rules := make([]sarifRule, 0, len(ids))
	for _, id := range ids {
		c := Codes[id]
		r := sarifRule{ID: id, ShortDescription: sarifMessage{c.Title}, Help: sarifMessage{c.Hint}}
		r.DefaultConfiguration.Level = sarifLevel(c.Severity)
		rules = append(rules, r)
	}
	results := make([]sarifResult, 0, len(l))
	for _, d := range l {
		var loc sarifLocation
		loc.PhysicalLocation.ArtifactLocation.URI = d.Pos.File
		if d.Pos.Line > 0 {
			loc.PhysicalLocation.Region = &sarifRegion{StartLine: d.Pos.Line, StartColumn: d.Pos.Column}
		}
		msg := d.Message
		if d.Hint != "" {
			msg += " (hint: " + d.Hint + ")"
		}
		results = append(results, sarifResult{RuleID: d.Code, Level: sarifLevel(d.Severity), Message: sarifMessage{msg}, Locations: []sarifLocation{loc}})
	}
	doc := map[string]any{
		"$schema": "https://json.schemastore.org/sarif-2.1.0.json",
		"version": "2.1.0",
		"runs": []any{map[string]any{
			"tool": map[string]any{"driver": map[string]any{
				"name":           tool,
				"version":        version,
				"informationUri": "https://palisade.dev",
				"rules":          rules,
			}},
			"results": results,
		}},
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(doc)
}

// githubEscape escapes workflow command data and properties as the
// Actions runner expects.
func githubEscape(s string, property bool) string {
	s = strings.NewReplacer("%", "%25", "\r", "%0D", "\n", "%0A").Replace(s)
	if property {
		s = strings.NewReplacer(":", "%3A", ",", "%2C").Replace(s)
	}
	return s
}

func writeGitHub(w io.Writer, l List) error {
	for _, d := range l {
		cmd := map[Severity]string{Error: "error", Warning: "warning", Info: "notice"}[d.Severity]
		props := []string{"file=" + githubEscape(d.Pos.File, true)}
		if d.Pos.Line > 0 {
			props = append(props, fmt.Sprintf("line=%d", d.Pos.Line))
		}
		if d.Pos.Column > 0 {
			props = append(props, fmt.Sprintf("col=%d", d.Pos.Column))
		}
		props = append(props, "title="+githubEscape(d.Code, true))
		msg := d.Message
		if d.Hint != "" {
			msg += " (hint: " + d.Hint + ")"
		}
		if _, err := fmt.Fprintf(w, "::%s %s::%s\n", cmd, strings.Join(props, ","), githubEscape(msg, false)); err != nil {
			return err
		}
	}
	return nil
}
