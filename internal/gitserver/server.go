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

// Package gitserver runs a real Git server on loopback for tests: git's own
// http-backend behind HTTPS with basic or bearer authentication, the same
// repositories over SSH (public keys, git-upload-pack and git-receive-pack
// run by git), and helpers that commit (signed or not), tag and push to it
// the way a user would, force-pushes included.
package gitserver

import (
	"crypto/subtle"
	"crypto/x509"
	"encoding/pem"
	"net/http"
	"net/http/cgi"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
)

// Server is a Git HTTPS server on 127.0.0.1 serving the bare repositories
// under a temporary root.
type Server struct {
	root     string
	srv      *httptest.Server
	username string
	password string
	token    string
	requests atomic.Int64
}

// Options are the credentials the server accepts; all empty means no
// authentication.
type Options struct {
	Username, Password string
	// BearerToken, when set, is accepted as "Authorization: Bearer".
	BearerToken string
}

// New starts a server; it stops in t.Cleanup. It skips the test when git's
// http-backend is not installed.
func New(t testing.TB, opts Options) *Server {
	t.Helper()
	backend, err := httpBackend()
	if err != nil {
		if os.Getenv("PALISADE_REQUIRE_TOOLS") != "" {
			t.Fatalf("git http-backend not available: %v; make test installs git (hack/apt-install.sh git)", err)
		}
		t.Skipf("git http-backend not available: %v", err)
	}
	s := &Server{root: t.TempDir(), username: opts.Username, password: opts.Password, token: opts.BearerToken}
	h := &cgi.Handler{
		Path: backend,
		Env:  []string{"GIT_PROJECT_ROOT=" + s.root, "GIT_HTTP_EXPORT_ALL=1"},
	}
	s.srv = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.requests.Add(1)
		if !s.authorized(r) {
			w.Header().Set("WWW-Authenticate", `Basic realm="git"`)
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(s.srv.Close)
	return s
}

func httpBackend() (string, error) {
	out, err := exec.Command("git", "--exec-path").Output()
	if err != nil {
		return "", err
	}
	p := filepath.Join(strings.TrimSpace(string(out)), "git-http-backend")
	if _, err := os.Stat(p); err != nil {
		return "", err
	}
	return p, nil
}

func (s *Server) authorized(r *http.Request) bool {
	if s.username == "" && s.password == "" && s.token == "" {
		return true
	}
	if s.token != "" {
		if tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok {
			return subtle.ConstantTimeCompare([]byte(tok), []byte(s.token)) == 1
		}
	}
	u, p, ok := r.BasicAuth()
	if !ok || s.username == "" {
		return false
	}
	return subtle.ConstantTimeCompare([]byte(u), []byte(s.username)) == 1 &&
		subtle.ConstantTimeCompare([]byte(p), []byte(s.password)) == 1
}

// URL returns the HTTPS URL of repository name.
func (s *Server) URL(name string) string { return s.srv.URL + "/" + name + ".git" }

// CAPEM returns the server's certificate, PEM-encoded, for a Secret's
// "ca.crt".
func (s *Server) CAPEM() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: s.srv.Certificate().Raw})
}

// CertPool returns a pool that trusts the server.
func (s *Server) CertPool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(s.srv.Certificate())
	return p
}

// Requests is how many HTTP requests the server received.
func (s *Server) Requests() int64 { return s.requests.Load() }

// Close stops the server: clients now find the repository unreachable.
func (s *Server) Close() { s.srv.Close() }

// InitBare creates the bare repository name with default branch main, open
// to pushes over HTTP.
func (s *Server) InitBare(t testing.TB, name string) {
	t.Helper()
	dir := filepath.Join(s.root, name+".git")
	run(t, "", "git", "init", "--quiet", "--bare", "--initial-branch=main", dir)
	run(t, dir, "git", "config", "http.receivepack", "true")
}

func run(t testing.TB, dir string, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GIT_CONFIG_NOSYSTEM=1", "HOME="+os.TempDir())
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}
