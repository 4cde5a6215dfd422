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

package importer

import (
	"strings"
	"testing"
)

// TestKubernetesIPBlockCoversPods: a Kubernetes ipBlock that covers pod
// addresses admits those pods in Kubernetes; the imported Palisade CIDR
// does not, so the importer warns (PAL907) at the ipBlock, naming the
// private ranges it covers and the rule to add; a block that covers none
// (or excepts them) gets no warning.
func TestKubernetesIPBlockCoversPods(t *testing.T) {
	im := newTestImporter(t)
	tests := []struct {
		name, in string
		// want are substrings of the one PAL907 message; nil: no PAL907.
		want []string
		line int
	}{
		{"egress to everywhere", knp("  podSelector: {}\n  policyTypes: [Egress]\n  egress:\n  - to:\n    - ipBlock: {cidr: 0.0.0.0/0}\n"),
			[]string{"ipBlock 0.0.0.0/0 covers private addresses (10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16)", `add toEntities: ["cluster"]`, "toEndpoints"}, 9},
		{"ingress from a pod range", knp("  podSelector: {}\n  ingress:\n  - from:\n    - ipBlock: {cidr: 10.244.0.0/16}\n"),
			[]string{"(10.244.0.0/16)", `add fromEntities: ["cluster"]`, "fromEndpoints"}, 8},
		{"IPv6 everywhere", knp("  podSelector: {}\n  ingress:\n  - from:\n    - ipBlock: {cidr: \"::/0\"}\n"),
			[]string{"(fc00::/7)"}, 8},
		{"private ranges partly excepted", knp("  podSelector: {}\n  ingress:\n  - from:\n    - ipBlock: {cidr: 0.0.0.0/0, except: [10.0.0.0/8]}\n"),
			[]string{"(172.16.0.0/12, 192.168.0.0/16)"}, 8},
		{"private ranges excepted", knp("  podSelector: {}\n  ingress:\n  - from:\n    - ipBlock: {cidr: 0.0.0.0/0, except: [10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16]}\n"), nil, 0},
		{"public block", knp("  podSelector: {}\n  ingress:\n  - from:\n    - ipBlock: {cidr: 203.0.113.0/24}\n"), nil, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res := im.File("in.yaml", []byte(tc.in))
			if len(res.Objects) != 1 || res.Objects[0].Status != Imported {
				t.Fatalf("not imported: %v", res.All())
			}
			var got []string
			for _, d := range res.Objects[0].Diagnostics {
				if d.Code != "PAL907" {
					continue
				}
				got = append(got, d.Message)
				if d.Pos.Line != tc.line || !strings.HasSuffix(d.Path, ".ipBlock") {
					t.Errorf("at %s (%s), want line %d at the ipBlock", d.Pos, d.Path, tc.line)
				}
				for _, w := range tc.want {
					if !strings.Contains(d.Message, w) {
						t.Errorf("message lacks %q: %s", w, d.Message)
					}
				}
			}
			if (tc.want != nil) != (len(got) == 1) || len(got) > 1 {
				t.Errorf("PAL907 messages %q, want one: %v", got, tc.want != nil)
			}
		})
	}
}
