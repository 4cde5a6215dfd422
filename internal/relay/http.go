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
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"time"
)

// ServeHTTP serves GET Path: the query (ParseQuery) selects the flows,
// and the response is JSON lines, one Message each, flushed one by one so
// that a follower sees each flow as it comes. With Auth set, the request
// must carry a token Auth accepts, and each flow is redacted for its
// user (Redact) or left out.
func (r *Relay) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	if req.URL.Path != Path {
		http.NotFound(w, req)
		return
	}
	if req.Method != http.MethodGet {
		http.Error(w, "method not allowed: GET only", http.StatusMethodNotAllowed)
		return
	}
	viewer, ok := Authenticate(r.Auth, w, req)
	if !ok {
		return
	}
	oreq, err := ParseQuery(req.URL.Query())
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	w.Header().Set("Content-Type", "application/jsonl")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	rc.Flush()
	enc := json.NewEncoder(w)
	err = r.Observe(req.Context(), oreq, func(m *Message) error {
		if viewer != nil && m.Flow != nil && !Redact(req.Context(), viewer, m.Flow) {
			return nil
		}
		if err := enc.Encode(m); err != nil {
			return err
		}
		return rc.Flush()
	})
	if err != nil && req.Context().Err() == nil {
		r.Log.Error(err, "observe")
	}
}

// Serve serves the relay over HTTP on lis until ctx ends.
func (r *Relay) Serve(ctx context.Context, lis net.Listener) error {
	mux := http.NewServeMux()
	mux.Handle(Path, r)
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusOK) })
	if r.UI != nil {
		mux.Handle("/", r.UI)
	}
	// No write timeout: a following stream lasts as long as its reader.
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second,
		BaseContext: func(net.Listener) context.Context { return ctx }}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(lis) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	srv.Shutdown(sctx) // followers end with ctx, through BaseContext
	if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	r.Close()
	return nil
}
