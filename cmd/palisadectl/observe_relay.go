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

package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/palisade-dev/palisade/internal/observer"
	"github.com/palisade-dev/palisade/internal/relay"
)

// relayPath is the API server's service proxy path of the relay's flows:
// the API server authorizes it as "get" on services/proxy in the
// namespace, with the user's identity.
func relayPath(ns, service string) string {
	if !strings.Contains(service, ":") {
		service = "http:" + service + ":flows"
	}
	return "/api/v1/namespaces/" + url.PathEscape(ns) + "/services/" + url.PathEscape(service) + "/proxy" + relay.Path
}

// observeRelay reads the relay through the API server with the user's
// kubeconfig, one JSON line per message.
func observeRelay(ctx context.Context, f *observeFlags, req *observer.Request, fn func(*relay.Message) error) error {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	rules.ExplicitPath = f.kubeconfig
	cfg, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{CurrentContext: f.context}).ClientConfig()
	if err != nil {
		return fmt.Errorf("kubeconfig: %w (or read one agent with --server)", err)
	}
	hc, err := rest.HTTPClientFor(cfg)
	if err != nil {
		return fmt.Errorf("kubeconfig: %w", err)
	}
	u := strings.TrimSuffix(cfg.Host, "/") + relayPath(f.relayNS, f.relayService) + "?" + relay.Query(req).Encode()
	hreq, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	// The service proxy does not forward who the user is: the relay
	// reviews the kubeconfig's token itself (docs/ui.md).
	tok, err := bearerToken(cfg)
	if err != nil {
		return fmt.Errorf("kubeconfig: %w", err)
	}
	if tok != "" {
		hreq.Header.Set(relay.TokenHeader, tok)
	}
	resp, err := hc.Do(hreq)
	if err != nil {
		return fmt.Errorf("relay: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		hint := ""
		switch resp.StatusCode {
		case http.StatusForbidden:
			hint = " (reading flows needs get on services/proxy of the relay's Service: the ClusterRole palisade-flows-viewer)"
		case http.StatusUnauthorized:
			hint = " (the relay needs a bearer token from your kubeconfig; with a client certificate use a ServiceAccount token, docs/ui.md)"
		}
		return fmt.Errorf("relay %s/%s: %s: %s%s", f.relayNS, f.relayService, resp.Status, strings.TrimSpace(string(body)), hint)
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64*1024), 16<<20)
	for sc.Scan() {
		var m relay.Message
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			return fmt.Errorf("relay: %w", err)
		}
		if err := fn(&m); err != nil {
			return err
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("relay: %w", err)
	}
	return nil
}
