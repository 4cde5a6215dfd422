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

package metrics

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"sigs.k8s.io/yaml"
)

const rulesDir = "../../config/prometheus"

// prometheusRule is the part of a PrometheusRule the tests read.
type prometheusRule struct {
	Kind string `json:"kind"`
	Spec struct {
		Groups []struct {
			Name  string `json:"name"`
			Rules []struct {
				Alert string `json:"alert"`
				Expr  string `json:"expr"`
			} `json:"rules"`
		} `json:"groups"`
	} `json:"spec"`
}

func readRules(t *testing.T) (prometheusRule, map[string]any) {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(rulesDir, "rules.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var pr prometheusRule
	if err := yaml.Unmarshal(raw, &pr); err != nil {
		t.Fatalf("rules.yaml: %v", err)
	}
	var doc map[string]any
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	if pr.Kind != "PrometheusRule" || len(pr.Spec.Groups) == 0 {
		t.Fatalf("rules.yaml: want a PrometheusRule with groups, got kind %q with %d groups", pr.Kind, len(pr.Spec.Groups))
	}
	return pr, doc
}

// promtool finds promtool: $PROMTOOL, else on PATH. make test installs it
// (hack/apt-install.sh prometheus) and sets PALISADE_REQUIRE_TOOLS, so
// there a missing promtool fails rather than skips.
func promtool(t *testing.T) string {
	t.Helper()
	p := os.Getenv("PROMTOOL")
	if p == "" {
		p, _ = exec.LookPath("promtool")
	}
	if p == "" {
		if os.Getenv("PALISADE_REQUIRE_TOOLS") != "" {
			t.Fatal("promtool not found; make test installs it with hack/apt-install.sh prometheus")
		}
		t.Skip("promtool not found (make test installs it); skipping the alert rule tests")
	}
	return p
}

// TestAlertRules runs `promtool check rules` and `promtool test rules` on
// the PrometheusRule's groups: every alert fires when it should, with the
// labels and annotations the tests expect, and stays quiet otherwise.
func TestAlertRules(t *testing.T) {
	bin := promtool(t)
	_, doc := readRules(t)
	groups, err := yaml.Marshal(doc["spec"])
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "rules.yaml"), groups, 0o644); err != nil {
		t.Fatal(err)
	}
	tests, err := os.ReadFile(filepath.Join(rulesDir, "tests", "rules_test.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "rules_test.yaml"), tests, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"check", "rules", "rules.yaml"}, {"test", "rules", "rules_test.yaml"}} {
		cmd := exec.Command(bin, args...)
		cmd.Dir = dir
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
}

// TestEveryAlertIsTested: each alert of rules.yaml appears in the promtool
// tests with an expected firing.
func TestEveryAlertIsTested(t *testing.T) {
	pr, _ := readRules(t)
	tests, err := os.ReadFile(filepath.Join(rulesDir, "tests", "rules_test.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Tests []struct {
			AlertRuleTest []struct {
				Alertname string `json:"alertname"`
				ExpAlerts []any  `json:"exp_alerts"`
			} `json:"alert_rule_test"`
		} `json:"tests"`
	}
	if err := yaml.Unmarshal(tests, &doc); err != nil {
		t.Fatal(err)
	}
	fires := map[string]bool{}
	for _, tc := range doc.Tests {
		for _, a := range tc.AlertRuleTest {
			if len(a.ExpAlerts) > 0 {
				fires[a.Alertname] = true
			}
		}
	}
	for _, g := range pr.Spec.Groups {
		for _, r := range g.Rules {
			if r.Alert != "" && !fires[r.Alert] {
				t.Errorf("alert %s has no promtool test that expects it to fire", r.Alert)
			}
		}
	}
}

// TestRulesUseDefinedMetrics: an alert on a metric nobody exports never
// fires; every palisade_* series in the rules must be one New defines.
func TestRulesUseDefinedMetrics(t *testing.T) {
	pr, _ := readRules(t)
	defined := definedNames(t)
	re := regexp.MustCompile(`palisade_[a-z_]+`)
	for _, g := range pr.Spec.Groups {
		for _, r := range g.Rules {
			for _, name := range re.FindAllString(r.Expr, -1) {
				if !slices.Contains(defined, name) {
					t.Errorf("alert %s uses %s, which internal/metrics does not define (defined: %v)", r.Alert, name, defined)
				}
			}
		}
	}
}

// definedNames registers the metrics on a fresh registry and reads back
// the names of what was registered.
func definedNames(t *testing.T) []string {
	t.Helper()
	m, err := New(prometheus.NewRegistry(), "")
	if err != nil {
		t.Fatal(err)
	}
	re := regexp.MustCompile(`fqName: "([^"]+)"`)
	var names []string
	for _, c := range m.collectors() {
		ch := make(chan *prometheus.Desc, 4)
		c.Describe(ch)
		close(ch)
		for d := range ch {
			sub := re.FindStringSubmatch(d.String())
			if sub == nil {
				t.Fatalf("cannot read the name of %s", d)
			}
			names = append(names, sub[1])
		}
	}
	if len(names) != len(m.collectors()) {
		t.Fatalf("got %d names for %d collectors", len(names), len(m.collectors()))
	}
	return names
}

func TestNewLabelsNodeAndRefusesDoubleRegistration(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := New(reg, "node-a")
	if err != nil {
		t.Fatal(err)
	}
	m.Drift.WithLabelValues(SourceKernel, "map", "true").Inc()
	m.MapCapacity.WithLabelValues("policy").Set(1024)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]*dto.Metric{}
	for _, mf := range mfs {
		for _, metric := range mf.GetMetric() {
			seen[mf.GetName()] = metric
		}
	}
	for _, name := range []string{DriftTotal, MapCapacityName} {
		metric, ok := seen[name]
		if !ok {
			t.Fatalf("%s not gathered; got %v", name, seen)
		}
		if !slices.ContainsFunc(metric.GetLabel(), func(l *dto.LabelPair) bool { return l.GetName() == "node" && l.GetValue() == "node-a" }) {
			t.Errorf("%s has labels %v, want node=node-a", name, metric.GetLabel())
		}
	}
	if got := seen[DriftTotal].GetCounter().GetValue(); got != 1 {
		t.Errorf("%s = %v, want 1", DriftTotal, got)
	}
	if _, err := New(reg, "node-a"); err == nil {
		t.Error("registering the metrics twice on one registry succeeded")
	}
}
