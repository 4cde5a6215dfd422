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

package ui

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/palisade-dev/palisade/internal/relay"
)

// DefaultDecisionTTL is how long a token's review and a namespace's
// decision are reused: a revoked RoleBinding or token stops working
// within it.
const DefaultDecisionTTL = 30 * time.Second

// maxCached bounds each cache; past it, the cache starts over.
const maxCached = 4096

// TokenAuth is the relay's Authorizer: the user's bearer token, sent in
// relay.TokenHeader (or Authorization, for a client that reaches the
// relay directly), is reviewed with a TokenReview, and a namespace is
// visible when a SubjectAccessReview allows the user to list pods in it.
// Tokens are kept only as SHA-256 hashes and never logged.
type TokenAuth struct {
	// Client creates the TokenReviews and SubjectAccessReviews.
	Client client.Client
	// TTL is how long a decision is reused (DefaultDecisionTTL when 0).
	TTL time.Duration

	mu        sync.Mutex
	tokens    map[[32]byte]cachedUser
	decisions map[decisionKey]cachedDecision
}

type cachedUser struct {
	user    authenticationv1.UserInfo
	err     error // of an unauthenticated token
	expires time.Time
}

type decisionKey struct {
	user, ns string
}

type cachedDecision struct {
	allowed bool
	expires time.Time
}

func (a *TokenAuth) ttl() time.Duration {
	if a.TTL > 0 {
		return a.TTL
	}
	return DefaultDecisionTTL
}

// unauthenticated is the 401's message: what is missing and what to do.
func unauthenticated(format string, args ...any) error {
	return fmt.Errorf("%w: "+format+"; the relay shows each user only the namespaces whose pods they may list, so it needs your bearer token in the %s header: use `palisadectl ui` or `palisadectl observe`, which send the token of your kubeconfig (users of client certificates: see docs/ui.md)",
		append([]any{relay.ErrUnauthenticated}, append(args, relay.TokenHeader)...)...)
}

// Authenticate implements relay.Authorizer.
func (a *TokenAuth) Authenticate(ctx context.Context, req *http.Request) (relay.Viewer, error) {
	tok := strings.TrimSpace(req.Header.Get(relay.TokenHeader))
	if tok == "" {
		if b, ok := strings.CutPrefix(req.Header.Get("Authorization"), "Bearer "); ok {
			tok = strings.TrimSpace(b)
		}
	}
	if tok == "" {
		return nil, unauthenticated("no token")
	}
	key := sha256.Sum256([]byte(tok))
	now := time.Now()
	a.mu.Lock()
	c, ok := a.tokens[key]
	a.mu.Unlock()
	if !ok || now.After(c.expires) {
		tr := &authenticationv1.TokenReview{Spec: authenticationv1.TokenReviewSpec{Token: tok}}
		if err := a.Client.Create(ctx, tr); err != nil {
			return nil, fmt.Errorf("token review: %w", err)
		}
		c = cachedUser{user: tr.Status.User, expires: now.Add(a.ttl())}
		if !tr.Status.Authenticated {
			msg := tr.Status.Error
			if msg == "" {
				msg = "the API server does not accept it"
			}
			c.err = unauthenticated("the token was refused (%s)", msg)
		}
		a.mu.Lock()
		if a.tokens == nil || len(a.tokens) >= maxCached {
			a.tokens = map[[32]byte]cachedUser{}
		}
		a.tokens[key] = c
		a.mu.Unlock()
	}
	if c.err != nil {
		return nil, c.err
	}
	return &viewer{a: a, user: c.user}, nil
}

// viewer is one authenticated user.
type viewer struct {
	a    *TokenAuth
	user authenticationv1.UserInfo
}

func (v *viewer) Name() string { return v.user.Username }

// CanSee implements relay.Viewer: may the user list pods in ns?
func (v *viewer) CanSee(ctx context.Context, ns string) (bool, error) {
	if ns == "" {
		return false, errors.New("no namespace")
	}
	a := v.a
	key := decisionKey{user: v.user.UID + "\x00" + v.user.Username + "\x00" + strings.Join(v.user.Groups, ","), ns: ns}
	now := time.Now()
	a.mu.Lock()
	d, ok := a.decisions[key]
	a.mu.Unlock()
	if ok && now.Before(d.expires) {
		return d.allowed, nil
	}
	extra := map[string]authorizationv1.ExtraValue{}
	for k, vs := range v.user.Extra {
		extra[k] = authorizationv1.ExtraValue(vs)
	}
	sar := &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{
		User: v.user.Username, UID: v.user.UID, Groups: v.user.Groups, Extra: extra,
		ResourceAttributes: &authorizationv1.ResourceAttributes{Namespace: ns, Verb: "list", Resource: "pods"},
	}}
	err := a.Client.Create(ctx, sar)
	// A failed review counts as no, for a few seconds: a stream of flows
	// does not send the API server one review per flow while it is down.
	d = cachedDecision{allowed: err == nil && sar.Status.Allowed, expires: now.Add(a.ttl())}
	if err != nil {
		d.expires = now.Add(min(a.ttl(), errorTTL))
		err = fmt.Errorf("subject access review: %w", err)
	}
	a.mu.Lock()
	if a.decisions == nil || len(a.decisions) >= maxCached {
		a.decisions = map[decisionKey]cachedDecision{}
	}
	a.decisions[key] = d
	a.mu.Unlock()
	return d.allowed, err
}

// errorTTL is how long a failed SubjectAccessReview counts as no.
const errorTTL = 5 * time.Second
