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

// Package notify delivers Palisade's alerts (drift, enforcement failures,
// guard denials) to HTTP receivers: a generic JSON webhook, signed with
// HMAC-SHA256, and Slack-compatible incoming webhooks (Slack, Mattermost,
// Rocket.Chat). Deliveries are retried with exponential backoff on
// transient failures. The receiver's address and the signing key are
// secrets: they never appear in errors, logs or events.
package notify

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/util/wait"
)

// Severity of a notification.
type Severity string

// Severities.
const (
	SeverityInfo     Severity = "info"
	SeverityWarning  Severity = "warning"
	SeverityCritical Severity = "critical"
)

// Notification is one alert. Its JSON is the generic webhook's body.
type Notification struct {
	// Version versions this document.
	Version string `json:"version"`
	// ID identifies the notification; receivers deduplicate retries by it.
	ID       string   `json:"id"`
	Time     string   `json:"time"`
	Severity Severity `json:"severity"`
	// Reason is a CamelCase reason, as in conditions (e.g. KernelDrift).
	Reason  string `json:"reason"`
	Message string `json:"message"`
	// Object is what the notification is about.
	Object ObjectRef `json:"object"`
	// Node is the node it happened on, for node-level events.
	Node string `json:"node,omitempty"`
	// Revision is the Git revision concerned.
	Revision string `json:"revision,omitempty"`
	// Metadata holds further facts (what drifted, whether repaired, …).
	Metadata map[string]string `json:"metadata,omitempty"`
}

// ObjectRef names a Kubernetes object.
type ObjectRef struct {
	Kind      string `json:"kind"`
	Namespace string `json:"namespace,omitempty"`
	Name      string `json:"name"`
}

// DocumentVersion is Notification.Version.
const DocumentVersion = "notify.palisade.dev/v1"

// Headers of the generic webhook.
const (
	// HeaderSignature is "sha256=" and the hex HMAC-SHA256, keyed with the
	// shared secret, of the timestamp header's value, a ".", and the body.
	HeaderSignature = "X-Palisade-Signature"
	// HeaderTimestamp is the Unix time of the delivery attempt; receivers
	// reject old ones to refuse replays.
	HeaderTimestamp = "X-Palisade-Timestamp"
	// HeaderDelivery is the notification's ID.
	HeaderDelivery = "X-Palisade-Delivery"
)

// Kind of receiver.
type Kind string

// Receiver kinds.
const (
	KindGeneric Kind = "generic"
	KindSlack   Kind = "slack"
)

// Receiver is where notifications go.
type Receiver struct {
	Kind Kind
	// Name names the receiver in errors (never its address).
	Name string
	// URL is the receiver's address. Secret: Slack's carries its token.
	URL string
	// Secret signs generic webhook deliveries; required for generic.
	Secret []byte
	// Channel and Username are optional Slack message fields.
	Channel, Username string
}

// Options tune delivery.
type Options struct {
	// Client sends the requests; if nil, a client with a 10 s timeout
	// that does not follow redirects.
	Client *http.Client
	// Backoff between attempts: 1 s doubling up to 1 min, 6 attempts by
	// default. Steps is the number of attempts.
	Backoff wait.Backoff
	// Now is the clock (for tests).
	Now func() time.Time
}

// Sender delivers notifications to one receiver.
type Sender struct {
	r    Receiver
	u    *url.URL
	opts Options
}

// NewSender checks the receiver and returns its sender.
func NewSender(r Receiver, opts Options) (*Sender, error) {
	u, err := url.Parse(r.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		// The URL is secret: say what is wrong, not what it is.
		return nil, fmt.Errorf("receiver %s: the address must be an absolute http or https URL", r.Name)
	}
	switch r.Kind {
	case KindGeneric:
		if len(r.Secret) == 0 {
			return nil, fmt.Errorf("receiver %s: a generic webhook needs a signing secret", r.Name)
		}
	case KindSlack:
	default:
		return nil, fmt.Errorf("receiver %s: unknown kind %q (want %s or %s)", r.Name, r.Kind, KindGeneric, KindSlack)
	}
	if opts.Client == nil {
		opts.Client = &http.Client{Timeout: 10 * time.Second, CheckRedirect: noRedirects}
	}
	if opts.Backoff.Steps == 0 {
		opts.Backoff = wait.Backoff{Duration: time.Second, Factor: 2, Jitter: 0.1, Steps: 6, Cap: time.Minute}
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Sender{r: r, u: u, opts: opts}, nil
}

// noRedirects makes a redirect the receiver's answer rather than a new
// request: Go would follow a 301, 302 or 303 with a GET and no body, which
// a receiver may answer with 200, and a delivery that never arrived would
// count as made; a 307 or 308 would send the body, signed, elsewhere.
func noRedirects(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

// DeliveryError is a delivery that failed for good. It names the receiver
// and the last failure, never the receiver's address or secret.
type DeliveryError struct {
	Receiver string
	Attempts int
	// Status is the last HTTP status (0 if no response).
	Status int
	Reason string
}

func (e *DeliveryError) Error() string {
	return fmt.Sprintf("notify %s: not delivered after %d attempt(s): %s", e.Receiver, e.Attempts, e.Reason)
}

// Send delivers n, retrying transient failures (network errors, 408, 429
// and 5xx, honouring Retry-After) with backoff until the attempts run out
// or ctx ends. Other answers (4xx, and redirects, which are not
// followed) are permanent: retrying cannot help.
func (s *Sender) Send(ctx context.Context, n Notification) error {
	if n.Version == "" {
		n.Version = DocumentVersion
	}
	if n.Time == "" {
		n.Time = s.opts.Now().UTC().Format(time.RFC3339)
	}
	body, err := s.body(n)
	if err != nil {
		return err
	}
	b := s.opts.Backoff
	attempts := b.Steps
	derr := &DeliveryError{Receiver: s.r.Name}
	for derr.Attempts < attempts {
		derr.Attempts++
		retry, after := s.attempt(ctx, n.ID, body, derr)
		if derr.Reason == "" {
			return nil
		}
		if !retry || derr.Attempts == attempts {
			return derr
		}
		delay := b.Step()
		if after > delay {
			delay = min(after, max(b.Cap, delay))
		}
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			derr.Reason += "; gave up: " + ctx.Err().Error()
			return derr
		case <-t.C:
		}
	}
	return derr
}

// attempt makes one delivery. It records a failure in derr (Reason empty
// on success) and says whether to retry and the receiver's Retry-After.
func (s *Sender) attempt(ctx context.Context, id string, body []byte, derr *DeliveryError) (retry bool, after time.Duration) {
	derr.Reason, derr.Status = "", 0
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.u.String(), bytes.NewReader(body))
	if err != nil {
		derr.Reason = "cannot build the request"
		return false, 0
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "palisade-notify")
	if s.r.Kind == KindGeneric {
		ts := strconv.FormatInt(s.opts.Now().Unix(), 10)
		req.Header.Set(HeaderTimestamp, ts)
		req.Header.Set(HeaderDelivery, id)
		req.Header.Set(HeaderSignature, Sign(s.r.Secret, ts, body))
	}
	resp, err := s.opts.Client.Do(req)
	if err != nil {
		derr.Reason = redact(err)
		return ctx.Err() == nil, 0
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	derr.Status = resp.StatusCode
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return false, 0
	}
	derr.Reason = "the receiver answered " + resp.Status
	switch {
	case resp.StatusCode == http.StatusTooManyRequests, resp.StatusCode == http.StatusRequestTimeout, resp.StatusCode >= 500:
		return true, retryAfter(resp.Header.Get("Retry-After"), s.opts.Now())
	}
	return false, 0
}

// redact describes a transport error without the URL, which *url.Error
// would print and which is secret for Slack receivers.
func redact(err error) string {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	msg := err.Error()
	if errors.Is(err, context.DeadlineExceeded) {
		msg = "timed out"
	}
	return "request failed: " + msg
}

func retryAfter(v string, now time.Time) time.Duration {
	if v == "" {
		return 0
	}
	if s, err := strconv.Atoi(strings.TrimSpace(v)); err == nil && s >= 0 {
		return time.Duration(s) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		return t.Sub(now)
	}
	return 0
}

// Sign computes the generic webhook's signature header value.
func Sign(secret []byte, timestamp string, body []byte) string {
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte(timestamp))
	mac.Write([]byte{'.'})
	mac.Write(body)
	return "sha256=" + hex.EncodeToString(mac.Sum(nil))
}

// Verify checks a generic webhook delivery as a receiver should: the
// signature matches, and the timestamp is within maxAge of now (older
// deliveries are refused as replays).
func Verify(secret []byte, header http.Header, body []byte, now time.Time, maxAge time.Duration) error {
	ts := header.Get(HeaderTimestamp)
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return fmt.Errorf("missing or bad %s", HeaderTimestamp)
	}
	if age := now.Sub(time.Unix(sec, 0)); age > maxAge || age < -maxAge {
		return fmt.Errorf("delivery is %s old, more than %s: refused as a replay", age.Round(time.Second), maxAge)
	}
	want := Sign(secret, ts, body)
	if !hmac.Equal([]byte(want), []byte(header.Get(HeaderSignature))) {
		return errors.New("bad signature")
	}
	return nil
}

func (s *Sender) body(n Notification) ([]byte, error) {
	if s.r.Kind == KindGeneric {
		return json.Marshal(n)
	}
	return json.Marshal(slackMessage(n, s.r.Channel, s.r.Username))
}

// slackMessage renders n for Slack-compatible incoming webhooks: a text
// fallback and one attachment coloured by severity.
func slackMessage(n Notification, channel, username string) map[string]any {
	color := map[Severity]string{SeverityInfo: "#2eb886", SeverityWarning: "#daa038", SeverityCritical: "#a30200"}[n.Severity]
	obj := n.Object.Kind + " " + n.Object.Name
	if n.Object.Namespace != "" {
		obj = n.Object.Kind + " " + n.Object.Namespace + "/" + n.Object.Name
	}
	fields := []map[string]any{{"title": "Object", "value": obj, "short": true}}
	if n.Node != "" {
		fields = append(fields, map[string]any{"title": "Node", "value": n.Node, "short": true})
	}
	if n.Revision != "" {
		fields = append(fields, map[string]any{"title": "Revision", "value": n.Revision, "short": true})
	}
	keys := make([]string, 0, len(n.Metadata))
	for k := range n.Metadata {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		fields = append(fields, map[string]any{"title": k, "value": n.Metadata[k], "short": true})
	}
	msg := map[string]any{
		"text": fmt.Sprintf("[%s] %s: %s", n.Severity, n.Reason, n.Message),
		"attachments": []map[string]any{{
			"color":    color,
			"title":    n.Reason,
			"text":     n.Message,
			"fields":   fields,
			"fallback": fmt.Sprintf("%s %s: %s", obj, n.Reason, n.Message),
		}},
	}
	if channel != "" {
		msg["channel"] = channel
	}
	if username != "" {
		msg["username"] = username
	}
	return msg
}
