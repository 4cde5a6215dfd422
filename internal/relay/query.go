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

package relay

import (
	"fmt"
	"net/url"
	"reflect"
	"strconv"
	"strings"
	"unicode"

	"github.com/palisade-dev/palisade/internal/observer"
)

// The query parameters are the fields of observer.Request and Filter, named
// as palisadectl's flags are (Filter's JSON name in kebab case: fromPod is
// from-pod, fromIP from-ip): follow, last, pod, from-pod, verdict,
// drop-reason, ... A filter may be repeated or hold comma-separated values.
// They are derived from Filter by reflection, so a new filter field is a
// parameter without a change here.

// Query encodes req as the relay's query parameters.
func Query(req *observer.Request) url.Values {
	q := url.Values{}
	if req.Follow {
		q.Set("follow", "1")
	}
	if req.Last > 0 {
		q.Set("last", strconv.Itoa(req.Last))
	}
	v := reflect.ValueOf(req.Filter)
	for i, f := range reflect.VisibleFields(v.Type()) {
		s := v.Field(i)
		for j := range s.Len() {
			e := s.Index(j)
			if e.Kind() == reflect.String {
				q.Add(param(f), e.String())
			} else {
				q.Add(param(f), strconv.FormatUint(e.Uint(), 10))
			}
		}
	}
	return q
}

// ParseQuery decodes the relay's query parameters; an unknown parameter or
// a malformed value is an error.
func ParseQuery(q url.Values) (*observer.Request, error) {
	req := &observer.Request{}
	v := reflect.ValueOf(&req.Filter).Elem()
	fields := map[string]reflect.Value{}
	for i, f := range reflect.VisibleFields(v.Type()) {
		fields[param(f)] = v.Field(i)
	}
	for k, vals := range q {
		switch k {
		case "follow":
			b, err := strconv.ParseBool(vals[len(vals)-1])
			if err != nil {
				return nil, fmt.Errorf("follow: %w", err)
			}
			req.Follow = b
			continue
		case "last":
			n, err := strconv.Atoi(vals[len(vals)-1])
			if err != nil || n < 0 {
				return nil, fmt.Errorf("last %q: want a count", vals[len(vals)-1])
			}
			req.Last = n
			continue
		}
		s, ok := fields[k]
		if !ok {
			return nil, fmt.Errorf("unknown parameter %q", k)
		}
		for _, val := range vals {
			for _, x := range strings.Split(val, ",") {
				if x = strings.TrimSpace(x); x == "" {
					continue
				}
				e := reflect.New(s.Type().Elem()).Elem()
				if e.Kind() == reflect.String {
					e.SetString(x)
				} else {
					n, err := strconv.ParseUint(x, 10, e.Type().Bits())
					if err != nil {
						return nil, fmt.Errorf("%s %q: %w", k, x, err)
					}
					e.SetUint(n)
				}
				s.Set(reflect.Append(s, e))
			}
		}
	}
	return req, nil
}

// param is a Filter field's parameter: its JSON name in kebab case.
func param(f reflect.StructField) string {
	name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
	var b strings.Builder
	prev := rune(0)
	for _, r := range name {
		if unicode.IsUpper(r) && unicode.IsLower(prev) {
			b.WriteByte('-')
		}
		b.WriteRune(unicode.ToLower(r))
		prev = r
	}
	return b.String()
}
