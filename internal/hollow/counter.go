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

package hollow

import (
	"encoding/json"
	"io"
	"maps"
	"net/http"
	"slices"
	"strings"
	"sync"
)

// Counter counts the requests that pass through the transports it wraps,
// by verb and resource ("list pods", "patch nodeenforcements/status",
// "watch identities"), the way the API server's own
// apiserver_request_total does, but only for the clients it wraps.
type Counter struct {
	mu sync.Mutex
	n  map[string]int64
	// statusFields counts the NodeEnforcement status patches by the
	// status fields they write (StatusFields).
	statusFields map[string]int64
}

// Wrap is a rest.Config WrapTransport that counts every request.
func (c *Counter) Wrap(rt http.RoundTripper) http.RoundTripper {
	return roundTripper{c: c, rt: rt}
}

type roundTripper struct {
	c  *Counter
	rt http.RoundTripper
}

func (r roundTripper) RoundTrip(req *http.Request) (*http.Response, error) {
	key := Classify(req)
	r.c.add(key)
	if key == "patch nodeenforcements/status" && req.GetBody != nil {
		if body, err := req.GetBody(); err == nil {
			b, err := io.ReadAll(body)
			body.Close()
			if err == nil {
				r.c.addStatus(StatusFields(b))
			}
		}
	}
	return r.rt.RoundTrip(req)
}

func (c *Counter) add(key string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n == nil {
		c.n = map[string]int64{}
	}
	c.n[key]++
}

func (c *Counter) addStatus(key string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.statusFields == nil {
		c.statusFields = map[string]int64{}
	}
	c.statusFields[key]++
}

// StatusFields names what a NodeEnforcement status merge patch writes:
// the status fields it sets, sorted and joined by "+", lastVerifiedTime
// left out unless it is all ("lastVerifiedTime": a heartbeat); a patch
// that is not a JSON object with a status is "other". A sync that
// enforces a new revision writes conditions (their messages name the
// generation) and policySets; "policySets" alone is a change of a set's
// entry with no new generation, such as a pendingRevision (a PolicySet
// mid-apply).
func StatusFields(patch []byte) string {
	var p struct {
		Status map[string]json.RawMessage `json:"status"`
	}
	if json.Unmarshal(patch, &p) != nil || p.Status == nil {
		return "other"
	}
	var keys []string
	for k := range p.Status {
		if k != "lastVerifiedTime" {
			keys = append(keys, k)
		}
	}
	if len(keys) == 0 {
		return "lastVerifiedTime"
	}
	slices.Sort(keys)
	return strings.Join(keys, "+")
}

// StatusSnapshot returns the NodeEnforcement status patches so far by
// the fields they write (StatusFields).
func (c *Counter) StatusSnapshot() map[string]int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return maps.Clone(c.statusFields)
}

// Snapshot returns the counts so far.
func (c *Counter) Snapshot() map[string]int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return maps.Clone(c.n)
}

// Total is the sum of counts.
func Total(m map[string]int64) int64 {
	var t int64
	for _, v := range m {
		t += v
	}
	return t
}

// Sub is after minus before, per key, without zeros.
func Sub(after, before map[string]int64) map[string]int64 {
	out := map[string]int64{}
	for k, v := range after {
		if d := v - before[k]; d != 0 {
			out[k] = d
		}
	}
	return out
}

// Classify names a request to the API server as "verb resource", with
// the verbs the API server uses: get and list, watch, create, update,
// patch, delete; the resource is the path's resource with its
// subresource ("nodeenforcements/status").
func Classify(req *http.Request) string {
	parts := strings.Split(strings.Trim(req.URL.Path, "/"), "/")
	// /api/v1/..., /apis/<group>/<version>/...
	switch {
	case len(parts) >= 2 && parts[0] == "api":
		parts = parts[2:]
	case len(parts) >= 3 && parts[0] == "apis":
		parts = parts[3:]
	default:
		return strings.ToLower(req.Method) + " " + req.URL.Path
	}
	if len(parts) >= 2 && parts[0] == "namespaces" && len(parts) > 2 {
		parts = parts[2:]
	}
	resource, named := "", false
	if len(parts) > 0 {
		resource = parts[0]
	}
	if len(parts) > 1 {
		named = true
	}
	if len(parts) > 2 {
		resource += "/" + parts[2]
	}
	verb := strings.ToLower(req.Method)
	switch req.Method {
	case http.MethodGet:
		switch {
		case req.URL.Query().Get("watch") == "true" || req.URL.Query().Get("watch") == "1":
			verb = "watch"
		case named:
			verb = "get"
		default:
			verb = "list"
		}
	case http.MethodPost:
		verb = "create"
	case http.MethodPut:
		verb = "update"
	}
	return verb + " " + resource
}
