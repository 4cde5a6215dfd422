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
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/palisade-dev/palisade/api/v1alpha1"
)

// HTTPRequest is the part of an HTTP/1.x request that L7 rules look at.
type HTTPRequest struct {
	Method string `json:"method"`
	Path   string `json:"path"`
	Host   string `json:"host,omitempty"`
	// Headers maps header names (any case) to values.
	Headers map[string]string `json:"headers,omitempty"`
}

// DNSRequest is a DNS query.
type DNSRequest struct {
	Name string `json:"name"`
}

// KafkaRequest is a Kafka request header and its topic.
type KafkaRequest struct {
	APIKey     string `json:"apiKey"`
	APIVersion int    `json:"apiVersion"`
	ClientID   string `json:"clientID,omitempty"`
	Topic      string `json:"topic,omitempty"`
}

// Request is an L7 request; at most one field is set.
type Request struct {
	HTTP  *HTTPRequest  `json:"http,omitempty"`
	DNS   *DNSRequest   `json:"dns,omitempty"`
	Kafka *KafkaRequest `json:"kafka,omitempty"`
}

// kafkaRoles lists the API keys each Kafka role allows, as Cilium defines
// them.
var kafkaRoles = map[v1alpha1.KafkaRole][]string{
	v1alpha1.KafkaRoleProduce: {"produce", "metadata", "apiversions"},
	v1alpha1.KafkaRoleConsume: {"fetch", "offsets", "metadata", "offsetcommit", "offsetfetch", "findcoordinator", "joingroup", "heartbeat", "leavegroup", "syncgroup", "apiversions"},
}

// MatchL7 reports whether one of the rules allows the request. A request
// of a protocol the rules do not speak is not allowed: a port with HTTP
// rules carries only HTTP that matches them.
func MatchL7(rules *v1alpha1.L7Rules, req *Request) bool {
	switch {
	case req == nil:
		return false
	case req.HTTP != nil:
		return slices.ContainsFunc(rules.HTTP, func(r v1alpha1.HTTPRule) bool { return matchHTTP(r, req.HTTP) })
	case req.DNS != nil:
		return slices.ContainsFunc(rules.DNS, func(r v1alpha1.DNSRule) bool {
			return FQDN{Name: string(r.MatchName), Pattern: string(r.MatchPattern)}.Matches(req.DNS.Name)
		})
	case req.Kafka != nil:
		return slices.ContainsFunc(rules.Kafka, func(r v1alpha1.KafkaRule) bool { return matchKafka(r, req.Kafka) })
	}
	return false
}

func matchHTTP(r v1alpha1.HTTPRule, q *HTTPRequest) bool {
	if r.Method != "" && string(r.Method) != q.Method {
		return false
	}
	if r.Path != "" {
		re := pathRegexp(r.Path)
		if re == nil || !re.MatchString(q.Path) {
			return false
		}
	}
	if r.Host != "" && !matchHost(r.Host, q.Host) {
		return false
	}
	for _, h := range r.Headers {
		name, value, hasValue := strings.Cut(string(h), ":")
		got, ok := header(q.Headers, name)
		if !ok || hasValue && got != strings.TrimPrefix(value, " ") {
			return false
		}
	}
	return true
}

// pathRegexps caches compiled path patterns; the validator has accepted
// them, so a pattern that does not compile matches nothing.
var pathRegexps sync.Map // string → *regexp.Regexp (nil if invalid)

func pathRegexp(p string) *regexp.Regexp {
	if re, ok := pathRegexps.Load(p); ok {
		return re.(*regexp.Regexp)
	}
	re, err := regexp.Compile("^(?:" + p + ")$")
	if err != nil {
		re = nil
	}
	pathRegexps.Store(p, re)
	return re
}

// matchHost matches an exact host or "*.domain" (one or more labels in
// front of domain), case-insensitively.
func matchHost(pattern, host string) bool {
	pattern, host = strings.ToLower(pattern), strings.ToLower(host)
	if rest, ok := strings.CutPrefix(pattern, "*."); ok {
		return strings.HasSuffix(host, "."+rest) && len(host) > len(rest)+1
	}
	return pattern == host
}

func header(h map[string]string, name string) (string, bool) {
	for k, v := range h {
		if strings.EqualFold(k, name) {
			return v, true
		}
	}
	return "", false
}

func matchKafka(r v1alpha1.KafkaRule, q *KafkaRequest) bool {
	switch {
	case r.Role != "":
		if !slices.Contains(kafkaRoles[r.Role], q.APIKey) {
			return false
		}
	case r.APIKey != "":
		if string(r.APIKey) != q.APIKey {
			return false
		}
	}
	if r.APIVersion != "" && r.APIVersion != strconv.Itoa(q.APIVersion) {
		return false
	}
	if r.ClientID != "" && r.ClientID != q.ClientID {
		return false
	}
	return r.Topic == "" || r.Topic == q.Topic
}
