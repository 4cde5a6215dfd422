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

package kafka

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/palisade-dev/palisade/api/v1alpha1"
	"github.com/palisade-dev/palisade/internal/engine"
)

var (
	diffTopics  = []string{"orders", "payments", "logs", "a", "orders2"}
	diffClients = []string{"app-1", "admin", "x"}
	// the versions each parsed key is read at
	diffParsed = map[int16]int16{0: 12, 1: 12, 2: 10, 3: 13, 8: 9, 9: 7}
	// keys whose requests name no topic; 22 has no name in the schema
	diffTopicless = []int16{10, 11, 12, 13, 14, 15, 16, 17, 18, 22}
)

func diffRule(r *rand.Rand) v1alpha1.KafkaRule {
	var k v1alpha1.KafkaRule
	switch r.IntN(3) {
	case 0:
		k.Role = []v1alpha1.KafkaRole{v1alpha1.KafkaRoleProduce, v1alpha1.KafkaRoleConsume}[r.IntN(2)]
	case 1:
		k.APIKey = v1alpha1.KafkaAPIKey(engine.KafkaKeyName(r.IntN(engine.KafkaNamedKeys)))
	}
	if r.IntN(3) == 0 {
		k.APIVersion = []string{"0", "1", "3", "4", "7", "9", "12", "007"}[r.IntN(8)]
	}
	if r.IntN(3) == 0 {
		k.ClientID = diffClients[r.IntN(len(diffClients))]
	}
	if r.IntN(3) > 0 {
		k.Topic = diffTopics[r.IntN(len(diffTopics))]
	}
	return k
}

// diffList is a list of 1-5 allows (at least one enforcing), some
// allowing everything, some with no Kafka rule.
func diffList(r *rand.Rand) engine.L7List {
	var l engine.L7List
	n := 1 + r.IntN(5)
	for i := range n {
		a := engine.L7Allow{Rule: engine.RuleID(10 * (i + 1)), Audit: i > 0 && r.IntN(4) == 0}
		switch r.IntN(8) {
		case 0:
		case 1:
			a.Rules = &v1alpha1.L7Rules{}
		default:
			a.Rules = &v1alpha1.L7Rules{}
			for range 1 + r.IntN(4) {
				a.Rules.Kafka = append(a.Rules.Kafka, diffRule(r))
			}
		}
		l = append(l, a)
	}
	return l
}

// refDecide is the engine's decision (decideL7 over one list with its
// enforcing allows): the lowest allow whose rules match allows; else the
// lowest refusing one is named.
func refDecide(l engine.L7List, q *engine.KafkaRequest) (bool, engine.RuleID) {
	var restricting engine.RuleID
	for _, a := range l {
		if a.Audit {
			continue
		}
		if a.Rules == nil || engine.MatchL7(a.Rules, &engine.Request{Kafka: q}) {
			return true, a.Rule
		}
		if restricting == 0 {
			restricting = a.Rule
		}
	}
	return false, restricting
}

// TestKafkaKernelMatchesEngine: 100 seeded lists × 500 requests encoded by
// franz-go's kmsg, the kernel's verdict and deciding rule equal the
// engine's. A request names one topic (Metadata: one to three, allowed
// when every topic is) or, for the keys without topics, none.
func TestKafkaKernelMatchesEngine(t *testing.T) {
	d := requireKernel(t)
	const sets, perSet = 100, 500
	seed := uint64(20261207)
	var allowed, denied int
	for s := range sets {
		r := rand.New(rand.NewPCG(seed, uint64(s)))
		list := diffList(r)
		applyList(t, d, uint64(s+1), list)
		for i := range perSet {
			dr := diffRequest(r, list, int32(i))
			key, ver, topics, q, wantOK, wantRule, f := dr.key, dr.ver, dr.topics, dr.q, dr.ok, dr.rule, dr.frame
			got := parseAt(t, d, 1, true, f, 0)
			want := result{Kind: kindRequest, Reason: ReasonAllowed, Len: uint32(len(f)), Rule: uint32(wantRule), Topics: uint32(len(topics))}
			if !wantOK {
				want.Kind, want.Reason = refusedKind(key, ver, topics, len(f)), ReasonDenied
				denied++
			} else {
				allowed++
			}
			if got != want {
				t.Fatalf("seed %d set %d request %d: key %d v%d client %v topics %v\nlist %s\ngot %+v, want %+v",
					seed, s, i, key, ver, q.ClientID, topics, fmtList(list), got, want)
			}
		}
	}
	t.Logf("%d lists, %d requests: %d allowed, %d refused, kernel = engine", sets, sets*perSet, allowed, denied)
	if allowed < sets*perSet/20 || denied < sets*perSet/20 {
		t.Fatalf("the requests do not exercise both outcomes: %d allowed, %d refused", allowed, denied)
	}
}

// diffReq is a random request of a differential and the engine's
// decision of it under a list.
type diffReq struct {
	key, ver int16
	topics   []string
	cid      *string
	q        *engine.KafkaRequest
	ok       bool
	rule     engine.RuleID
	frame    []byte
}

// diffRequest draws a request naming one topic (Metadata: one to three,
// allowed when every topic is) or, for the keys without topics, none, in
// a version the kernel reads, and decides it as the engine does: every
// topic must be allowed; the first refused one names the rule, else the
// first topic's rule.
func diffRequest(r *rand.Rand, list engine.L7List, corr int32) diffReq {
	var key, ver int16
	var topics []string
	if r.IntN(4) == 0 {
		key = diffTopicless[r.IntN(len(diffTopicless))]
		ver = int16(r.IntN(4))
	} else {
		keys := []int16{0, 1, 2, 3, 8, 9}
		key = keys[r.IntN(len(keys))]
		ver = int16(r.IntN(int(diffParsed[key]) + 1))
		if key == 8 && ver == 0 {
			ver = 1
		}
		n := 1
		if key == 3 {
			n += r.IntN(3)
		}
		for range n {
			topics = append(topics, diffTopics[r.IntN(len(diffTopics))])
		}
	}
	var cid *string
	if c := r.IntN(len(diffClients) + 1); c < len(diffClients) {
		cid = &diffClients[c]
	}
	q := &engine.KafkaRequest{APIKey: engine.KafkaKeyName(int(key)), APIVersion: int(ver)}
	if cid != nil {
		q.ClientID = *cid
	}
	wantOK, wantRule := true, engine.RuleID(0)
	if len(topics) == 0 {
		wantOK, wantRule = refDecide(list, q)
	}
	for j, tp := range topics {
		q.Topic = tp
		ok, rule := refDecide(list, q)
		if j == 0 || (!ok && wantOK) {
			wantOK, wantRule = ok, rule
		}
	}
	return diffReq{key: key, ver: ver, topics: topics, cid: cid, q: q, ok: wantOK, rule: wantRule, frame: frame(request(key, ver, topics), cid, corr)}
}

func fmtList(l engine.L7List) string {
	s := ""
	for _, a := range l {
		s += fmt.Sprintf("\n  rule %d audit %v", a.Rule, a.Audit)
		if a.Rules == nil {
			s += " (allows every request)"
			continue
		}
		s += fmt.Sprintf(" %+v", a.Rules.Kafka)
	}
	return s
}
