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
	"bytes"
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/palisade-dev/palisade/internal/relay"
)

func init() { commands = append(commands, newUICmd) }

type uiFlags struct {
	kubeconfig, context   string
	token                 string
	relayNS, relayService string
	port                  int
	plan                  string
}

func newUICmd() *cobra.Command {
	var f uiFlags
	cmd := &cobra.Command{
		Use:   "ui [--port N] [--plan plan.json]",
		Short: "Serve Palisade's web view (service map, policies, impact preview) on a local port",
		Long: `ui opens a local port on 127.0.0.1 that forwards to the relay's web view
through the API server's service proxy with your kubeconfig (--kubeconfig,
$KUBECONFIG, ~/.kube/config; --context), as observe does, and prints the
address to open in a browser.

The relay shows you the flows, workloads and policies of the namespaces whose
pods you may list. It learns who you are from your kubeconfig's bearer token
(a token, a token file, or what an exec or auth plugin gives), which ui sends
in the X-Palisade-Token header. A kubeconfig that authenticates with a client
certificate has no token: pass one with --token (e.g. kubectl create token),
see docs/ui.md.

--plan FILE serves the output of "palisadectl plan -o json" to the page's
impact preview: the map with the edges the change breaks or opens.

The address carries a key; the page sets it as a cookie, and the port answers
nothing without it, so other users of this machine cannot use your
credentials through it.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runUI(cmd, &f) },
	}
	fl := cmd.Flags()
	fl.StringVar(&f.kubeconfig, "kubeconfig", "", "kubeconfig file (default $KUBECONFIG or ~/.kube/config)")
	fl.StringVar(&f.context, "context", "", "kubeconfig context (default the current one)")
	fl.StringVar(&f.token, "token", "", "bearer token to use instead of the kubeconfig's (e.g. a ServiceAccount's, from kubectl create token)")
	fl.StringVar(&f.relayNS, "relay-namespace", "palisade-system", "namespace of the relay's Service")
	fl.StringVar(&f.relayService, "relay-service", "palisade-relay", "the relay's Service: NAME, or SCHEME:NAME:PORT as the API server's proxy path takes it (default scheme http, port flows)")
	fl.IntVar(&f.port, "port", 0, "local port on 127.0.0.1 (0: any free port)")
	fl.StringVar(&f.plan, "plan", "", "a plan (palisadectl plan -o json) for the impact preview")
	return cmd
}

func runUI(cmd *cobra.Command, f *uiFlags) error {
	var plan []byte
	if f.plan != "" {
		var err error
		if plan, err = readPlan(f.plan); err != nil {
			return &exitError{code: exitUsage, err: err}
		}
	}
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	rules.ExplicitPath = f.kubeconfig
	over := &clientcmd.ConfigOverrides{CurrentContext: f.context}
	over.AuthInfo.Token = f.token
	cfg, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, over).ClientConfig()
	if err != nil {
		return &exitError{code: exitUsage, err: fmt.Errorf("kubeconfig: %w", err)}
	}
	token, err := bearerToken(cfg)
	if err != nil {
		return &exitError{code: exitUsage, err: fmt.Errorf("kubeconfig: %w", err)}
	}
	if token == "" {
		fmt.Fprintln(cmd.ErrOrStderr(), "palisadectl ui: your kubeconfig has no bearer token (a client certificate?): the relay will refuse the page unless it runs with --relay-authorization=none; pass --token (docs/ui.md)")
	}
	h, err := newUIProxy(cfg, token, f.relayNS, f.relayService, plan)
	if err != nil {
		return &exitError{code: exitUsage, err: err}
	}
	lis, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(f.port)))
	if err != nil {
		return &exitError{code: exitUsage, err: err}
	}
	ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return serveUI(ctx, lis, h, cmd.OutOrStdout())
}

// serveUI serves h on lis until ctx ends, after printing the page's
// address (with its key) on out.
func serveUI(ctx context.Context, lis net.Listener, h *uiProxy, out interface{ Write([]byte) (int, error) }) error {
	h.host = lis.Addr().String()
	fmt.Fprintf(out, "Palisade web view: http://%s/?key=%s\n", h.host, h.key)
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(lis) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	srv.Shutdown(sctx)
	srv.Close() // following streams do not end by themselves
	return nil
}

// readPlan reads a plan and checks that it is plan -o json's.
func readPlan(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("--plan: %w", err)
	}
	var p struct {
		Pairs *[]json.RawMessage `json:"pairs"`
	}
	if err := json.Unmarshal(b, &p); err != nil {
		var se *json.SyntaxError
		if errors.As(err, &se) {
			line := 1 + bytes.Count(b[:se.Offset], []byte("\n"))
			col := int(se.Offset) - bytes.LastIndexByte(b[:se.Offset], '\n') - 1
			return nil, fmt.Errorf("%s:%d:%d: %v", path, line, col, err)
		}
		return nil, fmt.Errorf("%s: %v", path, err)
	}
	if p.Pairs == nil {
		return nil, fmt.Errorf("%s: not the output of palisadectl plan -o json (no \"pairs\")", path)
	}
	return b, nil
}

// uiProxy forwards the page's requests to the relay through the API
// server, adding the user's token for the relay, and serves the plan.
type uiProxy struct {
	proxy *httputil.ReverseProxy
	plan  []byte
	key   string
	host  string // the listener's address: requests for another Host are refused
}

func newUIProxy(cfg *rest.Config, token, ns, service string, plan []byte) (*uiProxy, error) {
	hc, err := rest.HTTPClientFor(cfg)
	if err != nil {
		return nil, fmt.Errorf("kubeconfig: %w", err)
	}
	base, err := url.Parse(strings.TrimSuffix(cfg.Host, "/") + strings.TrimSuffix(relayPath(ns, service), relay.Path))
	if err != nil {
		return nil, fmt.Errorf("kubeconfig: server: %w", err)
	}
	k := make([]byte, 16)
	rand.Read(k)
	p := &uiProxy{plan: plan, key: hex.EncodeToString(k)}
	p.proxy = &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.Out.URL.Scheme, r.Out.URL.Host = base.Scheme, base.Host
			r.Out.URL.Path = base.Path + r.In.URL.Path
			r.Out.URL.RawPath = ""
			r.Out.Host = ""
			r.Out.Header.Del("Cookie")
			r.Out.Header.Del(relay.TokenHeader)
			if token != "" {
				r.Out.Header.Set(relay.TokenHeader, token)
			}
		},
		Transport:     hc.Transport,
		FlushInterval: -1, // the flow stream, line by line
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			http.Error(w, "palisadectl ui: the API server: "+err.Error(), http.StatusBadGateway)
		},
		ModifyResponse: func(resp *http.Response) error {
			if resp.StatusCode == http.StatusForbidden {
				resp.Header.Set("X-Palisade-Hint", "reaching the relay needs get on services/proxy of its Service: the Role palisade-flows-viewer")
			}
			return nil
		},
	}
	return p, nil
}

const uiCookie = "palisade-ui-key"

func (p *uiProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	// A page of another site that resolves its name to 127.0.0.1 (DNS
	// rebinding) sends its own Host.
	if r.Host != p.host && r.Host != strings.Replace(p.host, "127.0.0.1", "localhost", 1) {
		http.Error(w, "wrong host", http.StatusForbidden)
		return
	}
	if k := r.URL.Query().Get("key"); k != "" && r.URL.Path == "/" {
		if subtle.ConstantTimeCompare([]byte(k), []byte(p.key)) != 1 {
			http.Error(w, "wrong key: open the address palisadectl ui printed", http.StatusForbidden)
			return
		}
		http.SetCookie(w, &http.Cookie{Name: uiCookie, Value: p.key, Path: "/", HttpOnly: true, SameSite: http.SameSiteStrictMode})
		http.Redirect(w, r, "/ui/", http.StatusFound)
		return
	}
	c, err := r.Cookie(uiCookie)
	if err != nil || subtle.ConstantTimeCompare([]byte(c.Value), []byte(p.key)) != 1 {
		http.Error(w, "no key: open the address palisadectl ui printed", http.StatusForbidden)
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		http.Error(w, "the web view is read-only", http.StatusMethodNotAllowed)
		return
	}
	if r.URL.Path == "/v1/plan" && p.plan != nil {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		w.Write(p.plan)
		return
	}
	p.proxy.ServeHTTP(w, r)
}

// bearerToken is the token the kubeconfig sends the API server: a token,
// a token file, or what an exec or auth provider plugin gives. It is read
// by running the kubeconfig's request wrappers against a request that
// goes nowhere. "" when the kubeconfig authenticates otherwise (a client
// certificate).
func bearerToken(cfg *rest.Config) (string, error) {
	var auth string
	rt, err := rest.HTTPWrappersForConfig(cfg, roundTripFunc(func(r *http.Request) (*http.Response, error) {
		auth = r.Header.Get("Authorization")
		return &http.Response{StatusCode: http.StatusOK, Body: http.NoBody, Request: r}, nil
	}))
	if err != nil {
		return "", err
	}
	req, err := http.NewRequest(http.MethodGet, "http://palisadectl.invalid/", nil)
	if err != nil {
		return "", err
	}
	resp, err := rt.RoundTrip(req)
	if err != nil {
		return "", err
	}
	resp.Body.Close()
	tok, _ := strings.CutPrefix(auth, "Bearer ")
	if tok == auth {
		return "", nil // none, or basic auth
	}
	return strings.TrimSpace(tok), nil
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }
