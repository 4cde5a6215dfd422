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
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"k8s.io/client-go/rest"
)

// apiMetrics are the API server's own counters of what it served, read
// from its /metrics: requests by verb and resource (every client's, the
// manager's and the agents' together), and watch events sent by kind
// with their bytes (one per watcher: the fan-out a write costs).
type apiMetrics map[string]float64

// apiServerMetrics reads the counters apiMetrics keeps.
func (s *scale) apiServerMetrics() apiMetrics {
	body, err := s.apiServerGet(context.Background(), "/metrics")
	if err != nil {
		s.logf("API server metrics: %v", err)
		return nil
	}
	defer body.Close()
	m := apiMetrics{}
	sc := bufio.NewScanner(body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		name, rest, ok := strings.Cut(line, "{")
		if !ok {
			continue
		}
		labels, value, ok := strings.Cut(rest, "} ")
		if !ok {
			continue
		}
		v, err := strconv.ParseFloat(strings.TrimSpace(value), 64)
		if err != nil {
			continue
		}
		l := parseLabels(labels)
		var key string
		switch name {
		case "apiserver_request_total":
			res := l["resource"]
			if sub := l["subresource"]; sub != "" {
				res += "/" + sub
			}
			key = "request " + strings.ToLower(l["verb"]) + " " + res
		case "apiserver_watch_events_total":
			key = "watch events " + kindOf(l)
		case "apiserver_watch_events_sizes_sum":
			key = "watch bytes " + kindOf(l)
		default:
			continue
		}
		m[key] += v
	}
	return m
}

func kindOf(l map[string]string) string {
	if k := l["kind"]; k != "" {
		return k
	}
	return l["resource"]
}

func parseLabels(s string) map[string]string {
	out := map[string]string{}
	for s != "" {
		k, rest, ok := strings.Cut(s, "=\"")
		if !ok {
			break
		}
		v, rest, _ := strings.Cut(rest, "\"")
		out[strings.TrimPrefix(k, ",")] = v
		s = strings.TrimPrefix(rest, ",")
	}
	return out
}

// sub is m - o, only what grew, by prefix.
func (m apiMetrics) sub(o apiMetrics, prefix string) map[string]int64 {
	out := map[string]int64{}
	for k, v := range m {
		if d := v - o[k]; d > 0 && strings.HasPrefix(k, prefix) {
			out[strings.TrimPrefix(k, prefix)] = int64(d)
		}
	}
	return out
}

func (s *scale) apiServerGet(ctx context.Context, path string) (io.ReadCloser, error) {
	hc, err := rest.HTTPClientFor(s.cfg)
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(s.cfg.Host, "/")+path, nil)
	if err != nil {
		return nil, err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		return nil, fmt.Errorf("GET %s: %s", path, resp.Status)
	}
	return resp.Body, nil
}

// apiServerProfile takes the API server's CPU profile over d (its
// /debug/pprof, which kube-apiserver serves unless --profiling=false)
// into -hollow.profile/name, in the background; the returned func waits
// for it.
func (s *scale) apiServerProfile(name string, d time.Duration) func() {
	dir := *flagProfile
	if dir == "" || d <= 0 {
		return func() {}
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		ctx, cancel := context.WithTimeout(context.Background(), d+2*time.Minute)
		defer cancel()
		body, err := s.apiServerGet(ctx, fmt.Sprintf("/debug/pprof/profile?seconds=%d", int(d.Seconds())))
		if err != nil {
			s.t.Logf("API server profile: %v", err)
			return
		}
		defer body.Close()
		f, err := os.Create(filepath.Join(dir, name))
		if err != nil {
			s.t.Logf("API server profile: %v", err)
			return
		}
		defer f.Close()
		if _, err := io.Copy(f, body); err != nil {
			s.t.Logf("API server profile: %v", err)
		}
	}()
	return func() { <-done }
}
