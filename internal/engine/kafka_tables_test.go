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

package engine

import (
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/palisade-dev/palisade/api/v1alpha1"
)

// TestKafkaTablesMatchEngine: for 300 seeded lists and 200 requests each,
// the tables decide as decideL7 does (verdict and rule), with and
// without the audit-mode allows.
func TestKafkaTablesMatchEngine(t *testing.T) {
	topics := []string{"orders", "payments", "", "a"}
	clients := []string{"app", "admin", ""}
	for s := range 300 {
		r := rand.New(rand.NewPCG(7, uint64(s)))
		var list L7List
		for i := range 1 + r.IntN(5) {
			a := L7Allow{Rule: RuleID(i + 1), Audit: r.IntN(4) == 0}
			if r.IntN(6) > 0 {
				a.Rules = &v1alpha1.L7Rules{}
				for range r.IntN(4) {
					var k v1alpha1.KafkaRule
					switch r.IntN(3) {
					case 0:
						k.Role = []v1alpha1.KafkaRole{"produce", "consume"}[r.IntN(2)]
					case 1:
						k.APIKey = v1alpha1.KafkaAPIKey(KafkaKeyName(r.IntN(KafkaNamedKeys)))
					}
					if r.IntN(3) == 0 {
						k.APIVersion = []string{"0", "3", "12", "03", "40000"}[r.IntN(5)]
					}
					if r.IntN(3) == 0 {
						k.ClientID = clients[r.IntN(2)]
					}
					if r.IntN(2) == 0 {
						k.Topic = []string{"orders", "payments", "a"}[r.IntN(3)]
					}
					a.Rules.Kafka = append(a.Rules.Kafka, k)
				}
			}
			list = append(list, a)
		}
		kl, err := CompileKafkaList(list)
		if err != nil {
			t.Fatal(err)
		}
		for range 200 {
			q := &KafkaRequest{APIKey: KafkaKeyName(r.IntN(25)), APIVersion: r.IntN(14), ClientID: clients[r.IntN(3)], Topic: topics[r.IntN(4)]}
			for _, audit := range []bool{false, true} {
				ok, _, rule := kl.Decide(kl.Mask(q))
				v, _, wantRule := decideL7([]L7List{list}, false, 0, &Request{Kafka: q}, audit)
				if !audit {
					// the kernel's view: only enforcing allows restrict
					enforcing := false
					for _, a := range list {
						enforcing = enforcing || !a.Audit
					}
					if !enforcing {
						continue
					}
				} else {
					withAudit := &KafkaList{}
					*withAudit = *kl
					withAudit.Allows = nil
					for _, a := range kl.Allows {
						a.Audit = false
						withAudit.Allows = append(withAudit.Allows, a)
					}
					ok, _, rule = withAudit.Decide(kl.Mask(q))
				}
				if ok != (v == VerdictAllow) || rule != wantRule {
					t.Fatalf("set %d audit %v request %+v: tables %v rule %d, engine %v rule %d", s, audit, q, ok, rule, v, wantRule)
				}
			}
		}
	}
}

// TestKafkaCompileLimits: past the kernel's limits the list is refused,
// naming the rule; fields that can match nothing match nothing.
func TestKafkaCompileLimits(t *testing.T) {
	rules := &v1alpha1.L7Rules{}
	for range KafkaMaxRules + 1 {
		rules.Kafka = append(rules.Kafka, v1alpha1.KafkaRule{Topic: "t"})
	}
	if _, err := CompileKafkaList(L7List{{Rule: 9, Rules: rules}}); err == nil || !strings.Contains(err.Error(), "rule 9") {
		t.Fatalf("65 rules: err %v, want one naming rule 9", err)
	}
	many := make(L7List, KafkaMaxAllows+1)
	if _, err := CompileKafkaList(many); err == nil {
		t.Fatal("65 allows compiled")
	}
	kl, err := CompileKafkaList(L7List{{Rule: 1, Rules: &v1alpha1.L7Rules{Kafka: []v1alpha1.KafkaRule{
		{APIVersion: "007"}, {APIVersion: "40000"}, {Role: "nosuch"}, {APIKey: "nosuch"},
	}}}})
	if err != nil {
		t.Fatal(err)
	}
	for v := range 14 {
		if m := kl.Mask(&KafkaRequest{APIKey: "produce", APIVersion: v}); m&0b0011 != 0 {
			t.Fatalf("version %d matched a non-canonical version rule: %b", v, m)
		}
	}
	if m := kl.Mask(&KafkaRequest{APIKey: "produce"}); m&0b1100 != 0 {
		t.Fatalf("unknown role or key matched: %b", m)
	}
}
