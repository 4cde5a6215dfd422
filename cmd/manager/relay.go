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
	"fmt"
	"net"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	v1 "github.com/palisade-dev/palisade/api/v1alpha1"
	"github.com/palisade-dev/palisade/internal/relay"
)

// The relay reads the nodes' flowsAddress.
// +kubebuilder:rbac:groups=palisade.dev,resources=nodeenforcements,verbs=get;list;watch

// addRelay runs the flow relay on addr: a controller keeps its nodes in
// step with the NodeEnforcements' flowsAddress, and the HTTP server
// serves users. Both run on every replica, not just the leader, since the
// relay's Service sends a user to any of them.
func addRelay(mgr ctrl.Manager, addr string) error {
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("relay: %w", err)
	}
	r := relay.New()
	r.Log = ctrl.Log.WithName("relay")
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
