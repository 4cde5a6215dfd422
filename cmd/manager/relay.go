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
	"context"
	"flag"
	"fmt"
	"net"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	v1 "github.com/palisade-dev/palisade/api/v1alpha1"
	"github.com/palisade-dev/palisade/internal/relay"
	"github.com/palisade-dev/palisade/internal/ui"
)

// The relay reads the nodes' flowsAddress; the web view reads PolicySets,
// their sources and policies, and pods; both review the user's token and
// ask whether the user may list pods in a namespace.
// +kubebuilder:rbac:groups=palisade.dev,resources=nodeenforcements,verbs=get;list;watch
// +kubebuilder:rbac:groups=palisade.dev,resources=policysets;policyrepositories;networkpolicies;clusternetworkpolicies;tracingpolicies;clustertracingpolicies,verbs=get;list;watch
// +kubebuilder:rbac:groups="",resources=pods,verbs=get;list;watch
// +kubebuilder:rbac:groups=authentication.k8s.io,resources=tokenreviews,verbs=create
// +kubebuilder:rbac:groups=authorization.k8s.io,resources=subjectaccessreviews,verbs=create

// relayAuthorization is how the relay decides what a user sees.
var relayAuthorization = flag.String("relay-authorization", relayAuthNamespaces,
	`how the relay and its web view decide what a user sees: "namespaces" reviews the user's token (sent by palisadectl in the X-Palisade-Token header) and shows the flows, pods and policies of the namespaces whose pods the user may list; "none" shows everything to whoever the API server lets reach the relay's Service (get services/proxy)`)

const (
	relayAuthNamespaces = "namespaces"
	relayAuthNone       = "none"
)

// addRelay runs the flow relay on addr: a controller keeps its nodes in
// step with the NodeEnforcements' flowsAddress, and the HTTP server
// serves users their flows and the web view (internal/ui). Both run on every replica, not just the leader, since the
// relay's Service sends a user to any of them.
func addRelay(mgr ctrl.Manager, addr string) error {
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("relay: %w", err)
	}
	r := relay.New()
	r.Log = ctrl.Log.WithName("relay")
	switch *relayAuthorization {
	case relayAuthNamespaces:
		r.Auth = &ui.TokenAuth{Client: mgr.GetClient()}
	case relayAuthNone:
	default:
		lis.Close()
		return fmt.Errorf("--relay-authorization %q: want %q or %q", *relayAuthorization, relayAuthNamespaces, relayAuthNone)
	}
	r.UI = (&ui.Server{Reader: mgr.GetClient(), Auth: r.Auth, Log: ctrl.Log.WithName("ui")}).Handler()
	err = ctrl.NewControllerManagedBy(mgr).
		Named("relay").
		For(&v1.NodeEnforcement{}).
		WithOptions(controller.Options{NeedLeaderElection: ptr.To(false)}).
		Complete(reconcile.Func(func(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
			ne := &v1.NodeEnforcement{}
			if err := mgr.GetClient().Get(ctx, req.NamespacedName, ne); apierrors.IsNotFound(err) {
				r.RemoveNode(req.Name)
				return reconcile.Result{}, nil
			} else if err != nil {
				return reconcile.Result{}, err
			}
			r.SetNode(ne.Name, ne.Status.FlowsAddress)
			return reconcile.Result{}, nil
		}))
	if err != nil {
		return fmt.Errorf("relay: %w", err)
	}
	return mgr.Add(relayRunnable{r, lis})
}

// relayRunnable serves the relay on every replica.
type relayRunnable struct {
	r   *relay.Relay
	lis net.Listener
}

func (rr relayRunnable) Start(ctx context.Context) error { return rr.r.Serve(ctx, rr.lis) }
func (relayRunnable) NeedLeaderElection() bool           { return false }
