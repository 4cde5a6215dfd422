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

package l7bench

import (
	"context"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"sync/atomic"

	"github.com/palisade-dev/palisade/internal/engine"
)

// Proxy is the userspace proxy hop that stands in for Envoy: Go's
// httputil.ReverseProxy behind a handler that decides every request
// against an L7 list (Decide, i.e. engine.MatchL7 per allow rule) and
// answers a refused one 403 Forbidden without forwarding it.
type Proxy struct {
	list  engine.L7List
	rp    *httputil.ReverseProxy
	tr    *http.Transport
	alloc atomic.Uint64
	deny  atomic.Uint64
}

// NewProxy returns a proxy to upstream (http://host:port) enforcing list.
// dial opens its upstream connections (nil: a net.Dialer), which it keeps
// alive and reuses as Envoy does.
func NewProxy(upstream *url.URL, list engine.L7List, dial func(ctx context.Context, network, addr string) (net.Conn, error)) *Proxy {
	if dial == nil {
		dial = (&net.Dialer{}).DialContext
	}
	tr := &http.Transport{DialContext: dial, MaxIdleConns: 256, MaxIdleConnsPerHost: 256, DisableCompression: true}
	p := &Proxy{list: list, tr: tr}
	p.rp = &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(upstream)
			pr.Out.Host = pr.In.Host
		},
		Transport: tr,
	}
	return p
}

// ServeHTTP decides the request and forwards it or answers 403.
func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	q := &engine.HTTPRequest{Method: r.Method, Path: r.URL.RequestURI(), Host: r.Host, Headers: make(map[string]string, len(r.Header))}
	for k, v := range r.Header {
		if len(v) > 0 {
			q.Headers[k] = v[0]
		}
	}
	if ok, _ := Decide(p.list, q); !ok {
		p.deny.Add(1)
		w.Header().Set("Content-Length", "0")
		w.WriteHeader(http.StatusForbidden)
		return
	}
	p.alloc.Add(1)
	p.rp.ServeHTTP(w, r)
}

// Counts returns how many requests the proxy forwarded and refused.
func (p *Proxy) Counts() (forwarded, refused uint64) { return p.alloc.Load(), p.deny.Load() }

// Close closes the proxy's idle upstream connections.
func (p *Proxy) Close() { p.tr.CloseIdleConnections() }
