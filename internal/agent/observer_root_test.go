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

package agent_test

// The flow observer on the real datapath: traffic between netlab
// workloads comes back as flows through the gRPC service.

import (
	"context"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/test/bufconn"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/manager"

	v1 "github.com/palisade-dev/palisade/api/v1alpha1"
	"github.com/palisade-dev/palisade/internal/agent"
	"github.com/palisade-dev/palisade/internal/datapath"
	"github.com/palisade-dev/palisade/internal/flows"
	"github.com/palisade-dev/palisade/internal/observer"
	"github.com/palisade-dev/palisade/internal/render"
)

// annotateSource sets the policy's palisade.dev/source as render does.
func (e *env) annotateSource(name, src string) {
	e.t.Helper()
	np := &v1.NetworkPolicy{}
	if err := e.c.Get(context.Background(), client.ObjectKey{Namespace: "shop", Name: name}, np); err != nil {
		e.t.Fatal(err)
	}
	np.Annotations[render.AnnotationSource] = src
	if err := e.c.Update(context.Background(), np); err != nil {
		e.t.Fatal(err)
	}
}

// observing returns a hook for start that gives the agent an observer
// reading dp's events (allowed ones too) and serving them on an in-memory
// listener, and the client connection to it.
func observing(t *testing.T) (func(ctrl.Manager, *agent.Agent, *datapath.Datapath), func() *grpc.ClientConn) {
	return observerHook(t, observer.NewBuffer(1024), true, 0)
}

// observerHook is observing into buf; allowed reports every allowed
// packet too, lossInterval (0: the default) is how often kernel losses
// are counted.
func observerHook(t *testing.T, buf *observer.Buffer, allowed bool, lossInterval time.Duration) (func(ctrl.Manager, *agent.Agent, *datapath.Datapath), func() *grpc.ClientConn) {
	lis := bufconn.Listen(1 << 20)
	hook := func(mgr ctrl.Manager, a *agent.Agent, dp *datapath.Datapath) {
		if allowed {
			if err := dp.SetEventsAllowed(true); err != nil {
				t.Fatal(err)
			}
		}
		src, err := dp.Events()
		if err != nil {
			t.Fatal(err)
		}
		a.Observer = &agent.Observer{Source: src, Buffer: buf, LossInterval: lossInterval, Log: mgr.GetLogger()}
		if err := mgr.Add(a.Observer); err != nil {
			t.Fatal(err)
		}
		if err := mgr.Add(manager.RunnableFunc(func(ctx context.Context) error { return observer.Serve(ctx, lis, buf) })); err != nil {
			t.Fatal(err)
		}
	}
	dial := func() *grpc.ClientConn {
		conn, err := grpc.NewClient("passthrough:///agent", grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) {
			return lis.DialContext(ctx)
		}), grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		return conn
	}
	return hook, dial
}

func TestObserverReportsRealTraffic(t *testing.T) {
	e := newEnv(t)
	e.pod("client", "client", "10.77.0.1")
	e.pod("server", "server", "10.77.0.2")
	e.policy("server", "rev1", serverPolicy)
	e.annotateSource("server", "shop/server.cue:4:2")

	hook, dial := observing(t)
	e.setup = hook
	e.start(datapath.Limits{}, time.Hour)
	e.enforced("rev1")
	e.traffic("rev1", true, false)

	conn := dial()
	var fwd, drop *flows.Flow
	e.eventually("an allowed and a dropped flow from the client", func() error {
		fwd, drop = nil, nil
		err := observer.Observe(context.Background(), conn, &observer.Request{Filter: observer.Filter{FromPod: []string{"shop/client"}, Protocol: []string{"TCP"}}},
			func(r *observer.Response) error {
				switch f := r.Flow; {
				case f == nil:
				case f.Verdict == flows.Forwarded && f.Destination.Port == 8080 && f.Direction == "ingress":
					fwd = f
				case f.Verdict == flows.Dropped && f.Destination.Port == 8081:
					drop = f
				}
				return nil
			})
		if err != nil {
			return err
		}
		if fwd == nil || drop == nil {
			e.traffic("again", true, false)
			return fmt.Errorf("forwarded %v, dropped %v", fwd != nil, drop != nil)
		}
		return nil
	})
	t.Logf("forwarded: %+v", *fwd)
	t.Logf("dropped: %+v", *drop)

	if fwd.Source.Pod != "client" || fwd.Destination.Pod != "server" || fwd.Destination.Labels["app"] != "server" || fwd.Node != node {
		t.Errorf("forwarded endpoints: %+v -> %+v on %s", fwd.Source, fwd.Destination, fwd.Node)
	}
	if p := fwd.Policy; p == nil || p.Kind != "NetworkPolicy" || p.Name != "server" || p.Revision != "rev1" ||
		p.File != "shop/server.cue" || p.Line != 4 || !strings.HasPrefix(p.Path, "spec.ingress") || p.PolicySet != "shop/demo" {
		t.Errorf("forwarded policy: %+v", fwd.Policy)
	}
	if drop.DropReason != flows.DefaultDeny || drop.Direction != "ingress" || drop.Source.Pod != "client" {
		t.Errorf("dropped: %+v", drop)
	}
	if len(drop.Isolating) != 1 || drop.Isolating[0].Name != "server" || drop.Isolating[0].Revision != "rev1" || drop.Isolating[0].File != "shop/server.cue" || drop.Isolating[0].Line != 4 {
		t.Errorf("isolating: %+v", drop.Isolating)
	}
}
