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

package validate_test

import (
	"fmt"
	"strconv"
	"strings"
	"testing"

	"github.com/palisade-dev/palisade/api/v1alpha1"
	"github.com/palisade-dev/palisade/internal/tracing"
	"github.com/palisade-dev/palisade/internal/validate"
)

// TestLimitsAreTheDatapaths: the validator's copies of the tracing
// datapath's limits equal the datapath's own, so that what validates
// loads. (The validator cannot import the datapath; its test can.)
func TestLimitsAreTheDatapaths(t *testing.T) {
	for _, l := range []struct {
		name           string
		validate, data int
	}{
		{"MaxHooksPerUnit", validate.MaxHooksPerUnit, tracing.MaxHooksPerUnit},
		{"MaxArgsPerHook", validate.MaxArgsPerHook, tracing.MaxArgsPerHook},
		{"MaxSelectorsPerHook", validate.MaxSelectorsPerHook, tracing.MaxSelectorsPerHook},
		{"MaxTermsPerSelector", validate.MaxTermsPerSelector, tracing.MaxTermsPerSelector},
		{"MaxStringBytes", validate.MaxStringBytes, tracing.MaxStringBytes},
		{"MaxPrefixBytes", validate.MaxPrefixBytes, tracing.MaxPrefixBytes},
		{"MaxIntValues", validate.MaxIntValues, tracing.MaxIntValues},
		{"MaxStringValues", validate.MaxStringValues, tracing.MaxStringValues},
		{"MaxPrefixValues", validate.MaxPrefixValues, tracing.MaxPrefixValues},
		{"MaxAddrValues", validate.MaxAddrValues, tracing.MaxAddrValues},
	} {
		if l.validate != l.data {
			t.Errorf("%s: validate says %d, the datapath %d", l.name, l.validate, l.data)
		}
	}
}

// TestValuesOfAPolicy: a policy's values, counted by the map that holds
// them, may fill each map and no more (PAL517 at spec).
func TestValuesOfAPolicy(t *testing.T) {
	values := func(n int, f func(int) string) []string {
		out := make([]string, n)
		for i := range out {
			out[i] = f(i)
		}
		return out
	}
	path := func(i int) string { return fmt.Sprintf("/f%d", i) }
	cidr := func(i int) string { return fmt.Sprintf("10.%d.%d.0/24", i/256, i%256) }
	num := func(i int) string { return strconv.Itoa(i) }
	for _, tc := range []struct {
		name   string
		arg    v1alpha1.ArgType
		op     v1alpha1.ArgOperator
		values []string
		want   string // "" or a substring of the PAL517 message
	}{
		{"strings at most", "file", "Equal", values(validate.MaxStringValues, path), ""},
		{"strings", "file", "Equal", values(validate.MaxStringValues+1, path), "16385 whole-string values"},
		{"prefixes", "file", "Prefix", values(validate.MaxPrefixValues+1, path), "16385 prefix and suffix values"},
		{"addresses", "sock", "DAddr", values(validate.MaxAddrValues+1, cidr), "16385 address values"},
		{"integers at most", "int", "InMap", values(validate.MaxIntValues, num), ""},
		{"integers", "int", "InMap", values(validate.MaxIntValues+1, num), "65537 integer values"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := &validate.Policy{Kind: "ClusterTracingPolicy", Name: "values", ClusterTracingPolicy: &v1alpha1.ClusterTracingPolicy{
				Spec: v1alpha1.TracingPolicySpec{KProbes: []v1alpha1.FunctionHook{{
					Call: "f",
					HookCommon: v1alpha1.HookCommon{
						Args:      []v1alpha1.Arg{{Index: 0, Type: tc.arg}},
						Selectors: []v1alpha1.Selector{{MatchArgs: []v1alpha1.ArgSelector{{Index: 0, Operator: tc.op, Values: tc.values}}}},
					},
				}}},
			}}
			var got []string
			for _, d := range validate.Check([]*validate.Policy{p}) {
				if d.Code == "PAL517" {
					got = append(got, d.Path+": "+d.Message)
				}
			}
			switch {
			case tc.want == "" && len(got) > 0:
				t.Errorf("want no PAL517, got %q", got)
			case tc.want != "" && (len(got) != 1 || !strings.HasPrefix(got[0], "spec: ") || !strings.Contains(got[0], tc.want)):
				t.Errorf("want one PAL517 at spec saying %q, got %q", tc.want, got)
			}
		})
	}
}
