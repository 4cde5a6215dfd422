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

// Command manager runs Palisade's cluster controllers: PolicyRepository,
// PolicySet, identity allocation and the webhook receiver, with leader election,
// health probes and Prometheus metrics.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	v1 "github.com/palisade-dev/palisade/api/v1alpha1"
	"github.com/palisade-dev/palisade/controllers"
	"github.com/palisade-dev/palisade/internal/metrics"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "manager:", err)
		os.Exit(1)
	}
}

// Leader election holds a Lease in the manager's namespace only.
// +kubebuilder:rbac:groups=coordination.k8s.io,namespace=palisade-system,resources=leases,verbs=get;create;update
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch

func run() error {
	var (
		metricsAddr   = flag.String("metrics-bind-address", ":8080", "address of the Prometheus metrics endpoint; 0 disables it")
		probeAddr     = flag.String("health-probe-bind-address", ":8081", "address of the /healthz and /readyz endpoints")
		receiverAddr  = flag.String("receiver-bind-address", ":9292", "address of the webhook receiver (/hook/<namespace>/<name>); empty disables it")
		leaderElect   = flag.Bool("leader-elect", true, "elect one active manager; the others stand by")
		leaderNS      = flag.String("leader-election-namespace", "", "namespace of the leader election Lease; empty means the manager's own")
		storagePath   = flag.String("storage-path", "/data", "directory for source artifacts")
		relayAddr     = flag.String("relay-bind-address", "", "address of the flow relay (HTTP, GET /v1/flows), which fans in from every node's observer for palisadectl observe; empty disables it")
		identityGrace = flag.Duration("identity-grace-period", controllers.DefaultIdentityGracePeriod, "how long an unused identity is kept before it is deleted")
	)
	opts := zap.Options{}
	opts.BindFlags(flag.CommandLine)
	flag.Parse()
	ctrl.SetLogger(zap.New(zap.UseFlagOptions(&opts)))

	scheme := runtime.NewScheme()
	if err := errors.Join(clientgoscheme.AddToScheme(scheme), v1.AddToScheme(scheme)); err != nil {
		return err
	}
	if err := os.MkdirAll(*storagePath, 0o750); err != nil {
		return fmt.Errorf("storage: %w", err)
	}
	mgr, err := ctrl.NewManager(ctrl.GetConfigOrDie(), ctrl.Options{
		Scheme:                  scheme,
		Metrics:                 metricsserver.Options{BindAddress: *metricsAddr},
		HealthProbeBindAddress:  *probeAddr,
		LeaderElection:          *leaderElect,
		LeaderElectionID:        "manager.palisade.dev",
		LeaderElectionNamespace: *leaderNS,
		// Secrets are read one by one, as referenced, and never cached:
		// the manager may only get them, not list or watch every Secret.
		Client: client.Options{Cache: &client.CacheOptions{DisableFor: []client.Object{&corev1.Secret{}}}},
	})
	if err != nil {
		return fmt.Errorf("create manager: %w", err)
	}
	storage := &controllers.Storage{BasePath: *storagePath}
	if err := (&controllers.PolicyRepositoryReconciler{
		Client: mgr.GetClient(), Recorder: mgr.GetEventRecorder("policyrepository-controller"), Storage: storage,
	}).SetupWithManager(mgr); err != nil {
		return fmt.Errorf("policyrepository controller: %w", err)
	}
	m, err := metrics.New(ctrlmetrics.Registry, "")
	if err != nil {
		return fmt.Errorf("metrics: %w", err)
	}
	if err := (&controllers.PolicySetReconciler{
		Client: mgr.GetClient(), Recorder: mgr.GetEventRecorder("policyset-controller"), Storage: storage, Drift: m.Drift,
	}).SetupWithManager(mgr); err != nil {
		return fmt.Errorf("policyset controller: %w", err)
	}
	if err := (&controllers.IdentityReconciler{
		Client:      mgr.GetClient(),
		Allocator:   &controllers.IdentityAllocator{Client: mgr.GetClient(), Reader: mgr.GetAPIReader()},
		GracePeriod: *identityGrace,
	}).SetupWithManager(mgr); err != nil {
		return fmt.Errorf("identity controller: %w", err)
	}
	if err := (&controllers.AlertReconciler{
		Client: mgr.GetClient(), APIReader: mgr.GetAPIReader(), Recorder: mgr.GetEventRecorder("alert-controller"),
	}).SetupWithManager(mgr); err != nil {
		return fmt.Errorf("alert controller: %w", err)
	}
	if *receiverAddr != "" {
		srv := &http.Server{
			Addr:              *receiverAddr,
			Handler:           &controllers.Receiver{Client: mgr.GetClient()},
			ReadHeaderTimeout: 10 * time.Second,
			ReadTimeout:       30 * time.Second,
		}
		// The receiver only sets an annotation, which any replica may do:
		// it serves on every replica, not just the leader.
		if err := mgr.Add(manager.RunnableFunc(func(ctx context.Context) error { return serve(ctx, srv) })); err != nil {
			return err
		}
	}
	if *relayAddr != "" {
		if err := addRelay(mgr, *relayAddr); err != nil {
			return err
		}
	}
	if err := mgr.AddHealthzCheck("healthz", healthz.Ping); err != nil {
		return err
	}
	if err := mgr.AddReadyzCheck("readyz", healthz.Ping); err != nil {
		return err
	}
	return mgr.Start(ctrl.SetupSignalHandler())
}
