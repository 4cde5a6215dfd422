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

package notify

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/util/wait"
)

// receiver is a real HTTP receiver on loopback that records deliveries and
// answers with the statuses it is given, then 200.
type receiver struct {
	mu       sync.Mutex
	bodies   [][]byte
	headers  []http.Header
	statuses []int
	retryAft string
	srv      *httptest.Server
}

func newReceiver(t *testing.T, statuses ...int) *receiver {
	r := &receiver{statuses: statuses}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		defer r.mu.Unlock()
		r.bodies = append(r.bodies, body)
		r.headers = append(r.headers, req.Header.Clone())
		if len(r.statuses) > 0 {
			code := r.statuses[0]
			r.statuses = r.statuses[1:]
			if r.retryAft != "" {
				w.Header().Set("Retry-After", r.retryAft)
			}
			w.WriteHeader(code)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *receiver) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.bodies)
}

var fast = wait.Backoff{Duration: time.Millisecond, Factor: 2, Steps: 4, Cap: 10 * time.Millisecond}

func drift() Notification {
	return Notification{
		ID: "d-1", Severity: SeverityWarning, Reason: "KernelDrift",
		Message:  "policy map entry changed outside Palisade; repaired",
		Object:   ObjectRef{Kind: "NodeEnforcement", Name: "node-a"},
		Node:     "node-a",
		Revision: "main@sha1:0123abcd",
		Metadata: map[string]string{"what": "map", "repaired": "true"},
	}
}

func TestGenericWebhookIsSignedAndVerifies(t *testing.T) {
	rcv := newReceiver(t)
	secret := []byte("s3cret-hmac-key")
	now := time.Unix(1_800_000_000, 0)
	s, err := NewSender(Receiver{Kind: KindGeneric, Name: "ops", URL: rcv.srv.URL + "/hook", Secret: secret}, Options{Backoff: fast, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Send(context.Background(), drift()); err != nil {
		t.Fatal(err)
	}
	if rcv.count() != 1 {
		t.Fatalf("%d deliveries, want 1", rcv.count())
	}
	h, body := rcv.headers[0], rcv.bodies[0]
	if err := Verify(secret, h, body, now.Add(30*time.Second), 5*time.Minute); err != nil {
		t.Fatalf("receiver-side verification: %v", err)
	}
	if got := h.Get(HeaderDelivery); got != "d-1" {
		t.Errorf("%s = %q, want d-1", HeaderDelivery, got)
	}
	var n Notification
	if err := json.Unmarshal(body, &n); err != nil {
		t.Fatal(err)
	}
	if n.Version != DocumentVersion || n.Reason != "KernelDrift" || n.Node != "node-a" || n.Time != "2027-01-15T08:00:00Z" || n.Metadata["what"] != "map" {
		t.Errorf("delivered %+v", n)
	}

	// What a receiver must refuse.
	tampered := append([]byte{}, body...)
	tampered[len(tampered)-2] ^= 1
	for name, tc := range map[string]struct {
		secret []byte
		body   []byte
		now    time.Time
		want   string
	}{
		"wrong key":       {[]byte("other"), body, now, "bad signature"},
		"tampered body":   {secret, tampered, now, "bad signature"},
		"replayed later":  {secret, body, now.Add(time.Hour), "replay"},
		"from the future": {secret, body, now.Add(-time.Hour), "replay"},
	} {
		if err := Verify(tc.secret, h, tc.body, tc.now, 5*time.Minute); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: Verify = %v, want an error containing %q", name, err, tc.want)
		}
	}
	noTS := h.Clone()
	noTS.Del(HeaderTimestamp)
	if err := Verify(secret, noTS, body, now, time.Minute); err == nil {
		t.Error("Verify accepted a delivery without a timestamp")
	}
}

func TestSlackMessage(t *testing.T) {
	rcv := newReceiver(t)
	s, err := NewSender(Receiver{Kind: KindSlack, Name: "chat", URL: rcv.srv.URL + "/services/T0/B0/tok", Channel: "#sec"}, Options{Backoff: fast})
	if err != nil {
		t.Fatal(err)
	}
	n := drift()
	n.Severity = SeverityCritical
	if err := s.Send(context.Background(), n); err != nil {
		t.Fatal(err)
	}
	var msg struct {
		Text        string `json:"text"`
		Channel     string `json:"channel"`
		Attachments []struct {
			Color  string `json:"color"`
			Title  string `json:"title"`
			Fields []struct {
				Title, Value string
			} `json:"fields"`
		} `json:"attachments"`
	}
	if err := json.Unmarshal(rcv.bodies[0], &msg); err != nil {
		t.Fatal(err)
	}
	if msg.Text != "[critical] KernelDrift: policy map entry changed outside Palisade; repaired" || msg.Channel != "#sec" {
		t.Errorf("text %q channel %q", msg.Text, msg.Channel)
	}
	if len(msg.Attachments) != 1 || msg.Attachments[0].Color != "#a30200" || msg.Attachments[0].Title != "KernelDrift" {
		t.Fatalf("attachments %+v", msg.Attachments)
	}
	var titles []string
	for _, f := range msg.Attachments[0].Fields {
		titles = append(titles, f.Title+"="+f.Value)
	}
	if got := strings.Join(titles, ","); got != "Object=NodeEnforcement node-a,Node=node-a,Revision=main@sha1:0123abcd,repaired=true,what=map" {
		t.Errorf("fields %s", got)
	}
	if rcv.headers[0].Get(HeaderSignature) != "" {
		t.Error("a Slack delivery carries the generic signature header")
	}
}

func TestRetries(t *testing.T) {
	for _, tc := range []struct {
		name     string
		statuses []int
		wantErr  bool
		attempts int
		status   int
	}{
		{"transient then delivered", []int{503, 502}, false, 3, 0},
		{"rate limited then delivered", []int{429}, false, 2, 0},
		{"permanent refusal is not retried", []int{400}, true, 1, 400},
		{"unauthorized is not retried", []int{401}, true, 1, 401},
		{"attempts run out", []int{500, 500, 500, 500, 500}, true, 4, 500},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rcv := newReceiver(t, tc.statuses...)
			s, err := NewSender(Receiver{Kind: KindGeneric, Name: "ops", URL: rcv.srv.URL, Secret: []byte("k")}, Options{Backoff: fast})
			if err != nil {
				t.Fatal(err)
			}
			err = s.Send(context.Background(), drift())
			if rcv.count() != tc.attempts {
				t.Errorf("%d attempts, want %d", rcv.count(), tc.attempts)
			}
			if !tc.wantErr {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			var de *DeliveryError
			if !errors.As(err, &de) {
				t.Fatalf("err = %v, want a DeliveryError", err)
			}
			if de.Attempts != tc.attempts || de.Status != tc.status {
				t.Errorf("%+v, want %d attempts, status %d", de, tc.attempts, tc.status)
			}
		})
	}
}

func TestRetryAfterIsHonouredAndContextEndsTheWait(t *testing.T) {
	rcv := newReceiver(t, 429, 429)
	rcv.retryAft = "3600"
	s, err := NewSender(Receiver{Kind: KindGeneric, Name: "ops", URL: rcv.srv.URL, Secret: []byte("k")},
		Options{Backoff: wait.Backoff{Duration: time.Millisecond, Factor: 1, Steps: 3, Cap: time.Hour}})
	if err != nil {
		t.Fatal(err)
	}
	// The receiver asks for an hour: the sender must wait for it (not
	// retry after the millisecond backoff), so the context ends the wait.
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- s.Send(ctx, drift()) }()
	deadline := time.After(5 * time.Second)
	for rcv.count() < 1 {
		select {
		case <-deadline:
			t.Fatal("no delivery attempt")
		case <-time.After(time.Millisecond):
		}
	}
	cancel()
	err = <-done
	if err == nil || !strings.Contains(err.Error(), "gave up") {
		t.Fatalf("err = %v, want a give-up error", err)
	}
	if n := rcv.count(); n != 1 {
		t.Errorf("%d attempts during a 1 h Retry-After, want 1", n)
	}
}

func TestSecretsNeverInErrors(t *testing.T) {
	const token = "xoxb-SECRET-TOKEN-123"
	key := []byte("HMAC-KEY-456")
	rcv := newReceiver(t)
	url := rcv.srv.URL + "/services/" + token
	rcv.srv.Close() // connection refused: the transport error would print the URL
	for _, r := range []Receiver{
		{Kind: KindSlack, Name: "chat", URL: url},
		{Kind: KindGeneric, Name: "ops", URL: "http://user:" + token + "@" + strings.TrimPrefix(url, "http://"), Secret: key},
	} {
		s, err := NewSender(r, Options{Backoff: fast})
		if err != nil {
			t.Fatal(err)
		}
		err = s.Send(context.Background(), drift())
		if err == nil {
			t.Fatal("delivery to a closed receiver succeeded")
		}
		if msg := err.Error(); strings.Contains(msg, token) || strings.Contains(msg, string(key)) || strings.Contains(msg, "/services/") {
			t.Errorf("error leaks a secret: %s", msg)
		}
		if !strings.Contains(err.Error(), "notify "+r.Name) {
			t.Errorf("error does not name the receiver: %s", err)
		}
	}
	for _, bad := range []string{"ftp://h/" + token, "not a url " + token, "/relative/" + token} {
		_, err := NewSender(Receiver{Kind: KindSlack, Name: "chat", URL: bad}, Options{})
		if err == nil || strings.Contains(err.Error(), token) {
			t.Errorf("NewSender(%q) = %v, want an error without the address", bad, err)
		}
	}
}

func TestReceiverChecks(t *testing.T) {
	for _, tc := range []struct {
		r    Receiver
		want string
	}{
		{Receiver{Kind: KindGeneric, Name: "g", URL: "https://example.org/h"}, "needs a signing secret"},
		{Receiver{Kind: "pager", Name: "p", URL: "https://example.org/h"}, `unknown kind "pager"`},
	} {
		if _, err := NewSender(tc.r, Options{}); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("NewSender(%s) = %v, want %q", tc.r.Name, err, tc.want)
		}
	}
}

// TestRedirectsAreNotFollowed: a receiver that redirects has not received
// the notification. Following a 302 would turn the POST into a GET without
// a body, which the target may answer with 200: a lost notification would
// count as delivered.
func TestRedirectsAreNotFollowed(t *testing.T) {
	target := newReceiver(t)
	for _, code := range []int{http.StatusFound, http.StatusTemporaryRedirect} {
		redirector := httptest.NewServer(http.RedirectHandler(target.srv.URL+"/elsewhere", code))
		t.Cleanup(redirector.Close)
		s, err := NewSender(Receiver{Kind: KindGeneric, Name: "ops", URL: redirector.URL, Secret: []byte("k")}, Options{Backoff: fast})
		if err != nil {
			t.Fatal(err)
		}
		err = s.Send(context.Background(), drift())
		var de *DeliveryError
		if !errors.As(err, &de) || de.Status != code || de.Attempts != 1 {
			t.Errorf("redirect %d: Send = %v, want a DeliveryError with status %d after 1 attempt", code, err, code)
		}
	}
	if n := target.count(); n != 0 {
		t.Errorf("the redirect target got %d requests, want 0", n)
	}
}
