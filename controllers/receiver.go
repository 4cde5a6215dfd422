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

package controllers

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"

	v1 "github.com/palisade-dev/palisade/api/v1alpha1"
)

// Webhook providers, told apart by their headers.
const (
	ProviderGitHub  = "github"
	ProviderGitLab  = "gitlab"
	ProviderGeneric = "generic"
)

// Headers of the generic provider: the signature is
// "sha256=" + hex(HMAC-SHA256(token, timestamp + "." + body)), so a
// captured payload cannot be replayed with a fresh timestamp.
const (
	GenericSignatureHeader = "X-Palisade-Signature"
	GenericTimestampHeader = "X-Palisade-Timestamp"
	GenericDeliveryHeader  = "X-Palisade-Delivery"
)

// maxPayload bounds a webhook body; push payloads are far smaller.
const maxPayload = 1 << 20

// Push is what the receiver learns from a push notification.
type Push struct {
	Provider string
	// Event is the provider's event name (push, ping, Tag Push Hook).
	Event string
	// Delivery identifies the delivery, for replay detection.
	Delivery string
	// Ref is the pushed ref ("refs/heads/main"); empty for a ping.
	Ref string
	// After is the commit the ref points to after the push.
	After string
}

// pushPayload is the part of GitHub's, GitLab's and the generic push
// bodies that the receiver reads: all three name them ref and after.
type pushPayload struct {
	Ref   string `json:"ref"`
	After string `json:"after"`
}

// ParsePush reads a push notification's headers and body. It does not
// authenticate; VerifyPush does.
func ParsePush(h http.Header, body []byte) (Push, error) {
	var p Push
	switch {
	case h.Get("X-GitHub-Event") != "":
		p = Push{Provider: ProviderGitHub, Event: h.Get("X-GitHub-Event"), Delivery: h.Get("X-GitHub-Delivery")}
	case h.Get("X-Gitlab-Event") != "":
		p = Push{Provider: ProviderGitLab, Event: h.Get("X-Gitlab-Event"), Delivery: h.Get("X-Gitlab-Event-UUID")}
	case h.Get(GenericSignatureHeader) != "":
		p = Push{Provider: ProviderGeneric, Event: "push", Delivery: h.Get(GenericDeliveryHeader)}
	default:
		return Push{}, errors.New("unknown provider: no X-GitHub-Event, X-Gitlab-Event or " + GenericSignatureHeader + " header")
	}
	if p.Delivery == "" || len(p.Delivery) > 128 {
		return Push{}, fmt.Errorf("%s: missing or oversized delivery id", p.Provider)
	}
	switch p.Event {
	case "ping":
		if p.Provider != ProviderGitHub {
			return Push{}, fmt.Errorf("%s: unsupported event %q", p.Provider, p.Event)
		}
		return p, nil
	case "push", "Push Hook", "Tag Push Hook":
	default:
		return Push{}, fmt.Errorf("%s: unsupported event %q", p.Provider, p.Event)
	}
	var pl pushPayload
	if err := json.Unmarshal(body, &pl); err != nil {
		return Push{}, fmt.Errorf("%s: push payload: %w", p.Provider, err)
	}
	if !strings.HasPrefix(pl.Ref, "refs/") || len(pl.Ref) > 1024 {
		return Push{}, fmt.Errorf("%s: push payload: ref %q is not a Git ref", p.Provider, pl.Ref)
	}
	p.Ref, p.After = pl.Ref, pl.After
	return p, nil
}

// VerifyPush authenticates a notification with the shared token: an
// HMAC-SHA256 of the body (GitHub), of timestamp and body within window of
// now (generic), or the shared token itself (GitLab, which signs nothing).
func VerifyPush(p Push, h http.Header, body, token []byte, now time.Time, window time.Duration) error {
	switch p.Provider {
	case ProviderGitHub:
		return checkHMAC(h.Get("X-Hub-Signature-256"), token, body)
	case ProviderGitLab:
		got := h.Get("X-Gitlab-Token")
		if got == "" || subtle.ConstantTimeCompare([]byte(got), token) != 1 {
			return errors.New("gitlab: X-Gitlab-Token does not match")
		}
		return nil
	case ProviderGeneric:
		ts := h.Get(GenericTimestampHeader)
		sec, err := strconv.ParseInt(ts, 10, 64)
		if err != nil {
			return fmt.Errorf("generic: %s %q is not a Unix time", GenericTimestampHeader, ts)
		}
		if d := now.Sub(time.Unix(sec, 0)); d > window || d < -window {
			return fmt.Errorf("generic: timestamp is %s away from now, outside the %s window", d.Round(time.Second), window)
		}
		return checkHMAC(h.Get(GenericSignatureHeader), token, append([]byte(ts+"."), body...))
	}
	return fmt.Errorf("unknown provider %q", p.Provider)
}

func checkHMAC(sig string, token, data []byte) error {
	hexSig, ok := strings.CutPrefix(sig, "sha256=")
	if !ok {
		return errors.New("signature missing or not sha256=<hex>")
	}
	got, err := hex.DecodeString(hexSig)
	if err != nil {
		return errors.New("signature is not hex")
	}
	m := hmac.New(sha256.New, token)
	m.Write(data)
	if !hmac.Equal(got, m.Sum(nil)) {
		return errors.New("signature does not match")
	}
	return nil
}

// replayCache remembers deliveries and payload digests for a window.
type replayCache struct {
	mu   sync.Mutex
	seen map[string]time.Time
}

// firstSeen records keys at now and reports whether none was seen within
// window; expired entries are dropped as it goes.
func (c *replayCache) firstSeen(now time.Time, window time.Duration, keys ...string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.seen == nil {
		c.seen = map[string]time.Time{}
	}
	for k, t := range c.seen {
		if now.Sub(t) > window {
			delete(c.seen, k)
		}
	}
	for _, k := range keys {
		if _, ok := c.seen[k]; ok {
			return false
		}
	}
	for _, k := range keys {
		c.seen[k] = now
	}
	return true
}

// Receiver takes push notifications at /hook/<namespace>/<name> for the
// PolicyRepository of that name, authenticates them with the token of the
// Secret in spec.webhook, rejects replays, and asks for an immediate
// fetch by setting the reconcile request annotation.
type Receiver struct {
	Client client.Client
	// Window is how long deliveries are remembered and how far a generic
	// timestamp may be from now; the default is 10 minutes.
	Window time.Duration
	// Now returns the current time; nil means time.Now.
	Now func() time.Time

	replays replayCache
}

// +kubebuilder:rbac:groups=palisade.dev,resources=policyrepositories,verbs=get;list;watch;update;patch

// ServeHTTP implements http.Handler.
func (rc *Receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	now, window := time.Now(), rc.Window
	if rc.Now != nil {
		now = rc.Now()
	}
	if window == 0 {
		window = 10 * time.Minute
	}
	if req.Method != http.MethodPost {
		http.Error(w, "POST only", http.StatusMethodNotAllowed)
		return
	}
	parts := strings.Split(strings.Trim(req.URL.Path, "/"), "/")
	if len(parts) != 3 || parts[0] != "hook" {
		http.Error(w, "want /hook/<namespace>/<name>", http.StatusNotFound)
		return
	}
	key := types.NamespacedName{Namespace: parts[1], Name: parts[2]}
	body, err := io.ReadAll(io.LimitReader(req.Body, maxPayload+1))
	if err != nil || len(body) > maxPayload {
		http.Error(w, "payload unreadable or larger than 1 MiB", http.StatusRequestEntityTooLarge)
		return
	}
	ctx := req.Context()
	logger := log.FromContext(ctx).WithValues("policyrepository", key.String())

	token, status := rc.token(ctx, key)
	if status != http.StatusOK {
		// The same answer for "no such repository" and "no webhook", so the
		// receiver tells an unauthenticated caller nothing.
		http.Error(w, "no webhook for this repository", status)
		return
	}
	push, err := ParsePush(req.Header, body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	if err := VerifyPush(push, req.Header, body, token, now, window); err != nil {
		logger.Info("rejected webhook", "provider", push.Provider, "reason", err.Error())
		http.Error(w, "unauthenticated: "+err.Error(), http.StatusUnauthorized)
		return
	}
	digest := sha256.Sum256(body)
	if !rc.replays.firstSeen(now, window, key.String()+"/delivery/"+push.Provider+"/"+push.Delivery, key.String()+"/body/"+hex.EncodeToString(digest[:])) {
		logger.Info("rejected replayed webhook", "provider", push.Provider, "delivery", push.Delivery)
		http.Error(w, "replayed delivery", http.StatusConflict)
		return
	}
	if push.Event == "ping" {
		w.WriteHeader(http.StatusOK)
		return
	}
	obj := &v1.PolicyRepository{}
	obj.Namespace, obj.Name = key.Namespace, key.Name
	patch := fmt.Sprintf(`{"metadata":{"annotations":{%q:%q}}}`, v1.ReconcileRequestAnnotation, now.UTC().Format(time.RFC3339Nano))
	if err := rc.Client.Patch(ctx, obj, client.RawPatch(types.MergePatchType, []byte(patch))); err != nil {
		logger.Error(err, "request reconcile")
		http.Error(w, "could not request a reconcile", http.StatusInternalServerError)
		return
	}
	logger.Info("push received; reconcile requested", "provider", push.Provider, "ref", push.Ref, "after", push.After)
	w.WriteHeader(http.StatusAccepted)
}

// token returns the webhook token of a repository, or an HTTP status.
func (rc *Receiver) token(ctx context.Context, key types.NamespacedName) ([]byte, int) {
	obj := &v1.PolicyRepository{}
	if err := rc.Client.Get(ctx, key, obj); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, http.StatusNotFound
		}
		return nil, http.StatusServiceUnavailable
	}
	if obj.Spec.Webhook == nil {
		return nil, http.StatusNotFound
	}
	sec := &corev1.Secret{}
	if err := rc.Client.Get(ctx, types.NamespacedName{Namespace: key.Namespace, Name: obj.Spec.Webhook.SecretRef.Name}, sec); err != nil {
		return nil, http.StatusServiceUnavailable
	}
	tok := sec.Data["token"]
	if len(tok) == 0 {
		return nil, http.StatusServiceUnavailable
	}
	return tok, http.StatusOK
}
