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

// Package ui is Palisade's web view: a service map of the flows the relay
// fans in, coloured by verdict, with the deciding policy, its Git revision
// and file:line behind every edge; a policy view of each PolicySet; and an
// impact preview of `palisadectl plan -o json`. The relay serves it beside
// its flows (relay.Relay.UI): the page's assets under /ui/ (plain HTML,
// CSS and JavaScript modules, embedded, nothing fetched from elsewhere)
// and the JSON it reads under /v1/. The map is laid out and kept up to
// date in the browser from the relay's stream (GET /v1/flows?follow=1).
//
// Every JSON answer holds only what the request's user may see: with an
// Authorizer, a namespace is shown to users who may list its pods
// (TokenAuth), as the relay does for flows (relay.Redact).
package ui

import (
	"embed"
	"encoding/json"
	"errors"
	"io/fs"
	"net/http"

	"github.com/go-logr/logr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/palisade-dev/palisade/internal/relay"
)

//go:embed assets
var assets embed.FS

// Assets are the page's files: index.html and its modules.
func Assets() fs.FS {
	sub, err := fs.Sub(assets, "assets")
	if err != nil {
		panic(err) // the directory is embedded above
	}
	return sub
}

// PlanPath is where the page looks for a plan to preview; the relay has
// none, `palisadectl ui --plan FILE` serves one there.
const PlanPath = "/v1/plan"

// Server serves the page and its JSON.
type Server struct {
	// Reader reads PolicySets, PolicyRepositories, NodeEnforcements,
	// policies and Pods: the manager's cached client.
	Reader client.Reader
	// Auth authenticates the JSON requests; nil lets every request see
	// everything (tests, or a relay reachable by cluster admins only).
	Auth relay.Authorizer
	Log  logr.Logger
}

// Handler routes the page and its JSON:
//
//	GET /                                  redirect to ui/
//	GET /ui/...                            the page (embedded assets)
//	GET /v1/whoami                         {"user": NAME}
//	GET /v1/policysets                     [PolicySetSummary]
//	GET /v1/policysets/{namespace}/{name}  PolicySetView
//	GET /v1/plan                           404: the relay has no plan
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	// Relative redirects and URLs only: through the API server's service
	// proxy the page lives under /api/v1/namespaces/.../proxy/.
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Location", "ui/")
		w.WriteHeader(http.StatusFound)
	})
	files := http.StripPrefix("/ui/", http.FileServerFS(Assets()))
	mux.Handle("GET /ui/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-cache")
		w.Header().Set("Content-Security-Policy", "default-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; frame-ancestors 'none'")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		files.ServeHTTP(w, r)
	}))
	mux.HandleFunc("GET /v1/whoami", s.json(func(r *http.Request, v relay.Viewer) (any, error) {
		name := ""
		if v != nil {
			name = v.Name()
		}
		return map[string]string{"user": name}, nil
	}))
	mux.HandleFunc("GET /v1/policysets", s.json(func(r *http.Request, v relay.Viewer) (any, error) {
		return listPolicySets(r.Context(), s.Reader, visibility{r.Context(), v})
	}))
	mux.HandleFunc("GET /v1/policysets/{namespace}/{name}", s.json(func(r *http.Request, v relay.Viewer) (any, error) {
		return policySetView(r.Context(), s.Reader, visibility{r.Context(), v}, r.PathValue("namespace"), r.PathValue("name"))
	}))
	mux.HandleFunc("GET "+PlanPath, func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusNotFound, map[string]string{"error": "no plan here: run `palisadectl ui --plan plan.json`, or load one in the page"})
	})
	return mux
}

// json authenticates the request, runs fn and writes its answer.
func (s *Server) json(fn func(*http.Request, relay.Viewer) (any, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		v, ok := relay.Authenticate(s.Auth, w, r)
		if !ok {
			return
		}
		out, err := fn(r, v)
		var nf errNotFound
		switch {
		case errors.As(err, &nf):
			writeJSON(w, http.StatusNotFound, map[string]string{"error": err.Error()})
		case err != nil:
			s.Log.Error(err, "ui", "path", r.URL.Path)
			writeJSON(w, http.StatusInternalServerError, map[string]string{"error": err.Error()})
		default:
			writeJSON(w, http.StatusOK, out)
		}
	}
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v)
}
