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
	"fmt"
	"maps"
	"slices"
	"strconv"

	"github.com/palisade-dev/palisade/api/v1alpha1"
)

// Limits of the Kafka tables, shared with bpf/kafka (kafka.h): a list's
// Kafka rules are one 64-bit mask, its allows at most KafkaMaxAllows, and
// a client ID or topic the kernel compares at most KafkaValueMax bytes.
const (
	KafkaMaxRules  = 64
	KafkaMaxAllows = 64
	KafkaValueMax  = 255
	// KafkaNamedKeys are the API keys 0..20, which the schema names;
	// every other key is decided as KafkaKeyOther, which only the rules
	// without apiKey and role admit.
	KafkaNamedKeys = 21
	KafkaKeyOther  = 21
	KafkaKeySlots  = 22
)

// kafkaKeyNames are the schema's API key names (v1alpha1.KafkaAPIKey),
// indexed by the key's number in the Kafka protocol.
var kafkaKeyNames = [KafkaNamedKeys]string{
	"produce", "fetch", "offsets", "metadata", "leaderandisr", "stopreplica", "updatemetadata",
	"controlledshutdown", "offsetcommit", "offsetfetch", "findcoordinator", "joingroup", "heartbeat",
	"leavegroup", "syncgroup", "describegroups", "listgroups", "saslhandshake", "apiversions",
	"createtopics", "deletetopics",
}

// KafkaKeyName is the name a request of API key n carries in a
// KafkaRequest: the schema's name for keys 0..20, "key-<n>" (which no
// rule names) for the others.
func KafkaKeyName(n int) string {
	if n >= 0 && n < KafkaNamedKeys {
		return kafkaKeyNames[n]
	}
	return "key-" + strconv.Itoa(n)
}

// KafkaKeyNumber is the protocol number of a schema API key name.
func KafkaKeyNumber(name string) (int, bool) {
	i := slices.Index(kafkaKeyNames[:], name)
	return i, i >= 0
}

// KafkaRoleKeys is the API keys a role admits, as matchKafka has them.
func KafkaRoleKeys(r v1alpha1.KafkaRole) []string { return slices.Clone(kafkaRoles[r]) }

// KafkaTables is the kernel form of the Kafka rules of a set of L7
// lists (see docs/kafka.md).
type KafkaTables struct {
	Lists map[L7ID]*KafkaList
}

// KafkaList is one L7 list's Kafka rules, numbered 0..Rules-1 in list
// order. A request of key k, version v, client ID c and topic t matches
// rule r when r is in Keys[slot of k], in VerAny or Versions[v], in
// ClientAny or Clients[c], and in TopicAny or Topics[t].
type KafkaList struct {
	Allows   []KafkaAllow
	Rules    int
	Keys     [KafkaKeySlots]uint64
	VerAny   uint64
	Versions map[int]uint64
	// ClientAny holds the rules without clientID; Clients the others by
	// their exact client ID.
	ClientAny uint64
	Clients   map[string]uint64
	TopicAny  uint64
	Topics    map[string]uint64
}

// KafkaAllow is one allow of the list, in the list's order (by RuleID).
// Any says it allows every request (its L7 rules are nil); otherwise Rules
// holds its Kafka rules' indices (none: it refuses every Kafka request,
// as MatchL7 does).
type KafkaAllow struct {
	Rule  RuleID
	Audit bool
	Any   bool
	Rules uint64
}

// KafkaListHasKafka reports whether a list holds a Kafka rule.
func KafkaListHasKafka(l L7List) bool {
	return slices.ContainsFunc(l, func(a L7Allow) bool { return a.Rules != nil && len(a.Rules.Kafka) > 0 })
}

// CompileKafka compiles the Kafka rules of every list. It fails, naming
// the list, for what the kernel cannot hold: more than KafkaMaxRules
// Kafka rules or KafkaMaxAllows allows in one list.
func CompileKafka(lists map[L7ID]L7List) (*KafkaTables, error) {
	t := &KafkaTables{Lists: make(map[L7ID]*KafkaList, len(lists))}
	for _, id := range slices.Sorted(maps.Keys(lists)) {
		l, err := CompileKafkaList(lists[id])
		if err != nil {
			return nil, fmt.Errorf("l7 list %d: %w", id, err)
		}
		t.Lists[id] = l
	}
	return t, nil
}

// CompileKafkaList compiles one list (see CompileKafka).
func CompileKafkaList(list L7List) (*KafkaList, error) {
	if len(list) > KafkaMaxAllows {
		return nil, fmt.Errorf("%d allow rules at one point, the kernel decides at most %d", len(list), KafkaMaxAllows)
	}
	l := &KafkaList{Versions: map[int]uint64{}, Clients: map[string]uint64{}, Topics: map[string]uint64{}}
	for _, a := range list {
		ka := KafkaAllow{Rule: a.Rule, Audit: a.Audit, Any: a.Rules == nil}
		if a.Rules != nil {
			for _, r := range a.Rules.Kafka {
				if l.Rules == KafkaMaxRules {
					return nil, fmt.Errorf("rule %d: more than %d Kafka rules at one point, the kernel decides at most %d", a.Rule, KafkaMaxRules, KafkaMaxRules)
				}
				bit := uint64(1) << l.Rules
				l.Rules++
				ka.Rules |= bit
				l.addRule(r, bit)
			}
		}
		l.Allows = append(l.Allows, ka)
	}
	return l, nil
}

// addRule sets bit where rule r admits, as matchKafka decides. A field
// that can match no request (an unknown role or key name, a version
// that is not a canonical int16, a client ID or topic longer than the
// kernel compares) leaves the rule matching nothing.
func (l *KafkaList) addRule(r v1alpha1.KafkaRule, bit uint64) {
	switch {
	case r.Role != "":
		for _, name := range kafkaRoles[r.Role] {
			if k, ok := KafkaKeyNumber(name); ok {
				l.Keys[k] |= bit
			}
		}
	case r.APIKey != "":
		if k, ok := KafkaKeyNumber(string(r.APIKey)); ok {
			l.Keys[k] |= bit
		}
	default:
		for k := range l.Keys {
			l.Keys[k] |= bit
		}
	}
	if r.APIVersion == "" {
		l.VerAny |= bit
	} else if v, err := strconv.Atoi(r.APIVersion); err == nil && strconv.Itoa(v) == r.APIVersion && v <= 32767 {
		l.Versions[v] |= bit
	}
	switch {
	case r.ClientID == "":
		l.ClientAny |= bit
	case len(r.ClientID) <= KafkaValueMax:
		l.Clients[r.ClientID] |= bit
	}
	switch {
	case r.Topic == "":
		l.TopicAny |= bit
	case len(r.Topic) <= KafkaValueMax:
		l.Topics[r.Topic] |= bit
	}
}

// HeaderMask is the rules a request's API key, version and client ID
// admit (a key outside 0..32767 or a negative version: none).
func (l *KafkaList) HeaderMask(key, version int, clientID string) uint64 {
	if key < 0 || version < 0 {
		return 0
	}
	m := l.Keys[min(key, KafkaKeyOther)]
	m &= l.VerAny | l.Versions[version]
	c := l.ClientAny
	if clientID != "" {
		c |= l.Clients[clientID]
	}
	return m & c
}

// TopicMask is the rules a topic admits ("": only those without topic).
func (l *KafkaList) TopicMask(topic string) uint64 {
	return l.TopicAny | l.Topics[topic]
}

// Mask is the rules that match a request.
func (l *KafkaList) Mask(q *KafkaRequest) uint64 {
	key := KafkaKeyOther
	if k, ok := KafkaKeyNumber(q.APIKey); ok {
		key = k
	}
	return l.HeaderMask(key, q.APIVersion, q.ClientID) & l.TopicMask(q.Topic)
}

// Decide decides a request whose matching rules are m, as the kernel
// does and as decideL7 does for this one list: with the enforcing allows
// only, the lowest that admits it allows it, and if none does, the
// lowest refusing one is named; a list without an enforcing allow does
// not restrict (allowed, rule 0, or with audit the lowest audit allow
// that admits it). It returns whether the request is allowed, whether it
// is passed only because no enforcing allow restricts it while no allow
// admits it (the kernel counts it as audit), and the deciding rule.
func (l *KafkaList) Decide(m uint64) (allowed, audit bool, rule RuleID) {
	var enforced, restricting, full RuleID
	seen := false
	for _, a := range l.Allows {
		ok := a.Any || a.Rules&m != 0
		if ok && full == 0 {
			full = a.Rule
		}
		if a.Audit {
			continue
		}
		seen = true
		if ok && enforced == 0 {
			enforced = a.Rule
		}
		if !ok && restricting == 0 {
			restricting = a.Rule
		}
	}
	switch {
	case seen && enforced == 0:
		return false, false, restricting
	case full == 0:
		return true, true, 0
	case seen:
		return true, false, enforced
	}
	return true, false, full
}
