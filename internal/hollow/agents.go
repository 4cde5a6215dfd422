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
	"context"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/config"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/palisade-dev/palisade/internal/agent"
)

// UserAgent is the user agent of every hollow agent's requests, followed
// by the node's name.
const UserAgent = "palisade-hollow-agent"

// Options configure hollow agents.
type Options struct {
	// Config reaches the API server; each agent gets its own copy, with
	// its own connection.
	Config *rest.Config
	// Scheme knows the core and Palisade types.
	Scheme *runtime.Scheme
	// Counter, when set, counts every request of every agent.
	Counter *Counter
	// VerifyInterval is the agents' verify period; zero is the agent's
	// default.
	VerifyInterval time.Duration
	// SharedTransport lets all agents share client-go's cached transport
	// (HTTP/2 connections that each carry many agents' requests) instead
	// of one connection per agent: a thousand agents on two cores then
	// make a few TLS handshakes instead of a thousand, and a storm of
	// them when connections are lost under load.
	SharedTransport bool
	// DisableCompression has the agents ask for uncompressed responses
	// (rest.Config.DisableCompression), as kube-controller-manager and
	// kube-scheduler do. Go's transport asks for gzip otherwise, and the
	// API server then compresses every watch event for every watcher on
	// its own (kube-apiserver 1.37's watch gzip writer flushes per
	// event): at 100 hollow nodes 7 % of the API server's CPU in a
	// rollout (docs/scale.md). cmd/agent does not set it yet.
	DisableCompression bool
	// Log receives the agents' logs; the zero Logger discards them.
	Log logr.Logger
}

// Node is one hollow node: the real agent with its manager, on a hollow
// kernel.
type Node struct {
	Name   string
	Kernel *Kernel
	Agent  *agent.Agent
	mgr    ctrl.Manager
	done   chan error
	cancel context.CancelFunc
}

// Start builds the agent of node as cmd/agent does (its own manager,
// client and cache with the agent's cache options, the agent's
// controllers and verify loop) on a hollow kernel and hollow links, and
// runs it until ctx ends or Stop. It returns once the agent's cache has
// synced.
func Start(ctx context.Context, node string, o Options) (*Node, error) {
	cfg := rest.CopyConfig(o.Config)
	cfg.UserAgent = UserAgent + "/" + node
	// As controller-runtime's GetConfig: no client-side rate limit, the
	// API server's priority and fairness decides.
	cfg.QPS, cfg.Burst = -1, 0
	cfg.DisableCompression = o.DisableCompression
	if !o.SharedTransport {
		// A proxy function keeps client-go from sharing one cached
		// transport (and its HTTP/2 connections) among all agents of the
		// process: each hollow node connects on its own, as a real node
		// does.
		cfg.Proxy = func(*http.Request) (*url.URL, error) { return nil, nil }
	}
	if o.Counter != nil {
		cfg.Wrap(o.Counter.Wrap)
	}
	log := o.Log
	if log.GetSink() == nil {
		log = logr.Discard()
	}
	log = log.WithValues("node", node)
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:  o.Scheme,
		Metrics: metricsserver.Options{BindAddress: "0"},
		Cache:   agent.NodeCacheOptions(node),
		Logger:  log,
		// Every hollow agent names its controller "agent", as the real
		// one; they run in one process.
		Controller: config.Controller{SkipNameValidation: ptr.To(true)},
	})
	if err != nil {
		return nil, fmt.Errorf("hollow node %s: manager: %w", node, err)
	}
	k := &Kernel{}
	a := &agent.Agent{
		Client:         mgr.GetClient(),
		APIReader:      mgr.GetAPIReader(),
		Datapath:       k,
		Node:           node,
		Links:          Links{},
		Recorder:       mgr.GetEventRecorder("palisade-agent"),
		VerifyInterval: o.VerifyInterval,
		ReportBatch:    agent.DefaultReportBatch,
		Log:            log.WithName("agent"),
		TracingOff:     "a hollow node has no tracing datapath",
	}
	if err := a.SetupWithManager(mgr, false); err != nil {
		return nil, fmt.Errorf("hollow node %s: %w", node, err)
	}
	ctx, cancel := context.WithCancel(ctx)
	n := &Node{Name: node, Kernel: k, Agent: a, mgr: mgr, done: make(chan error, 1), cancel: cancel}
	go func() { n.done <- mgr.Start(ctx) }()
	if !mgr.GetCache().WaitForCacheSync(ctx) {
		cancel()
		return nil, fmt.Errorf("hollow node %s: cache did not sync: %w", node, <-n.done)
	}
	return n, nil
}

// Stop stops the agent and waits for its manager to return.
func (n *Node) Stop() error {
	n.cancel()
	return <-n.done
}

// Wait waits until the agent's manager returns (ctx ended, Stop, or it
// failed, e.g. a controller whose watches did not sync) and returns its
// error.
func (n *Node) Wait() error {
	return <-n.done
}
