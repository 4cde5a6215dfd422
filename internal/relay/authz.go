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
	"errors"
	"net/http"

	"github.com/palisade-dev/palisade/internal/flows"
)

// TokenHeader carries the user's bearer token to the relay. The API
// server's service proxy authenticates the user but forwards neither the
// Authorization header nor who the user is, so palisadectl sends the
// token from the kubeconfig a second time, in this header, for the relay
// to review (TokenReview) and authorize per namespace
// (SubjectAccessReview).
const TokenHeader = "X-Palisade-Token"

// ErrUnauthenticated is wrapped by an Authorizer's error when the request
// carries no valid token: the relay answers 401 with the error's text.
var ErrUnauthenticated = errors.New("unauthenticated")

// Authorizer says who sent a request. The relay runs without one in
// tests and where every user the API server lets through may see all.
type Authorizer interface {
	Authenticate(ctx context.Context, req *http.Request) (Viewer, error)
}

// Viewer is an authenticated user.
type Viewer interface {
	// Name is the user's name, for logs and the page.
	Name() string
	// CanSee reports whether the user may see the workloads, flows and
	// policies of namespace ns: whether they may list pods in it. An
	// error counts as no.
	CanSee(ctx context.Context, ns string) (bool, error)
}

// Hidden stands for what a viewer may not see: the entity of an
// endpoint in a namespace they may not see, and the name of a policy of
// one. It is not a valid Kubernetes name, so it never names a real one.
const Hidden = "<hidden>"

// Redact makes f fit for v to see and reports whether v may see it at all.
// An endpoint in a namespace v may not see keeps only its port and
// becomes the entity Hidden; so does a policy of such a namespace, which
// keeps only its kind. A flow is seen when one of its ends is a pod in a
// namespace v may see, or when neither end is a pod (entities, as host to
// world, are everyone's); a flow between a hidden pod and an entity or
// another hidden pod is not. Cluster-scoped policies are shown.
func Redact(ctx context.Context, v Viewer, f *flows.Flow) bool {
	see := func(ns string) bool {
		if ns == "" {
			return true
		}
		ok, err := v.CanSee(ctx, ns)
		return ok && err == nil
	}
	srcPod, dstPod := f.Source.Pod != "" || f.Source.Namespace != "", f.Destination.Pod != "" || f.Destination.Namespace != ""
	srcSeen, dstSeen := srcPod && see(f.Source.Namespace), dstPod && see(f.Destination.Namespace)
	if (srcPod || dstPod) && !srcSeen && !dstSeen {
		return false
	}
	if srcPod && !srcSeen {
		f.Source = flows.Endpoint{Port: f.Source.Port, Entity: Hidden}
	}
	if dstPod && !dstSeen {
		f.Destination = flows.Endpoint{Port: f.Destination.Port, Entity: Hidden}
	}
	if p := f.Policy; p != nil && !see(p.Namespace) {
		f.Policy = &flows.Policy{Kind: p.Kind, Name: Hidden}
	}
	if len(f.Isolating) > 0 {
		iso := make([]flows.Policy, 0, len(f.Isolating))
		hidden := false
		for _, p := range f.Isolating {
			switch {
			case see(p.Namespace):
				iso = append(iso, p)
			case !hidden:
				hidden = true
				iso = append(iso, flows.Policy{Kind: p.Kind, Name: Hidden})
			}
		}
		f.Isolating = iso
	}
	return true
}

// Authenticate returns req's Viewer, or answers 401 (503 when the review
// itself failed) and returns false when a does not accept req; with a nil
// Authorizer every request passes, with a nil Viewer.
func Authenticate(a Authorizer, w http.ResponseWriter, req *http.Request) (Viewer, bool) {
	if a == nil {
		return nil, true
	}
	v, err := a.Authenticate(req.Context(), req)
	switch {
	case errors.Is(err, ErrUnauthenticated):
		http.Error(w, err.Error(), http.StatusUnauthorized)
		return nil, false
	case err != nil:
		http.Error(w, "authenticating the request: "+err.Error(), http.StatusServiceUnavailable)
		return nil, false
	}
	return v, true
}
