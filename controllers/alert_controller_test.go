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
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr/funcr"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	v1 "github.com/palisade-dev/palisade/api/v1alpha1"
	"github.com/palisade-dev/palisade/internal/notify"
)

// TestAlertPolicySetChanges calls the PolicySet comparison directly: which
// changes of Ready and Drifted notify, with what severity, and which are
// only recorded.
func TestAlertPolicySetChanges(t *testing.T) {
	const revA, revB = "main@sha1:aaaa", "main@sha1:bbbb"
	state := func(s metav1.ConditionStatus, reason string) *v1.AlertConditionState {
		return &v1.AlertConditionState{Status: s, Reason: reason}
	}
	set := func(attempted string, conds ...metav1.Condition) *v1.PolicySet {
		ps := &v1.PolicySet{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "web"}}
		ps.Status.LastAttemptedRevision, ps.Status.LastAppliedRevision = attempted, revA
		ps.Status.Conditions = conds
		return ps
	}
	ready := func(s metav1.ConditionStatus, reason string) metav1.Condition {
		return metav1.Condition{Type: v1.ReadyCondition, Status: s, Reason: reason, Message: "ready says " + reason}
	}
	drifted := func(s metav1.ConditionStatus, reason string) metav1.Condition {
		return metav1.Condition{Type: v1.DriftedCondition, Status: s, Reason: reason, Message: "drifted says " + reason}
	}
	F, T := metav1.ConditionFalse, metav1.ConditionTrue
	for _, tc := range []struct {
		name string
		ps   *v1.PolicySet
		prev *v1.AlertPolicySetState
		// want lists "<severity> <reason>" per change; "-" for one that
		// is only recorded.
		want []string
	}{
		{name: "first seen healthy: recorded, nothing sent", ps: set(revA, ready(T, v1.SucceededReason), drifted(F, v1.NoDriftReason)),
			want: []string{"-", "-"}},
		{name: "first seen failing", ps: set(revB, ready(F, v1.GuardDeniedReason)),
			want: []string{"warning GuardDenied"}},
		{name: "no conditions yet", ps: set("")},
		{name: "Ready Unknown changes nothing", ps: set(revA, ready(metav1.ConditionUnknown, v1.ProgressingReason)),
			prev: &v1.AlertPolicySetState{Name: "web", Ready: state(F, v1.GuardDeniedReason), Revision: revB}},
		{name: "turns False", ps: set(revB, ready(F, v1.ValidationFailedReason)),
			prev: &v1.AlertPolicySetState{Name: "web", Ready: state(T, v1.SucceededReason)},
			want: []string{"warning ValidationFailed"}},
		{name: "same failure again: nothing", ps: set(revB, ready(F, v1.ValidationFailedReason)),
			prev: &v1.AlertPolicySetState{Name: "web", Ready: state(F, v1.ValidationFailedReason), Revision: revB}},
		{name: "same reason, another revision", ps: set("main@sha1:cccc", ready(F, v1.ValidationFailedReason)),
			prev: &v1.AlertPolicySetState{Name: "web", Ready: state(F, v1.ValidationFailedReason), Revision: revB},
			want: []string{"warning ValidationFailed"}},
		{name: "another reason, same revision", ps: set(revB, ready(F, v1.ApplyFailedReason)),
			prev: &v1.AlertPolicySetState{Name: "web", Ready: state(F, v1.ValidationFailedReason), Revision: revB},
			want: []string{"warning ApplyFailed"}},
		{name: "recovers", ps: set(revA, ready(T, v1.SucceededReason)),
			prev: &v1.AlertPolicySetState{Name: "web", Ready: state(F, v1.GuardDeniedReason), Revision: revB},
			want: []string{"info Succeeded"}},
		{name: "drift", ps: set(revA, ready(T, v1.SucceededReason), drifted(T, v1.APIDriftReason)),
			prev: &v1.AlertPolicySetState{Name: "web", Ready: state(T, v1.SucceededReason), Drifted: state(F, v1.NoDriftReason)},
			want: []string{"warning APIDrift"}},
		{name: "drift changes reason", ps: set(revA, ready(T, v1.SucceededReason), drifted(T, v1.KernelDriftReason)),
			prev: &v1.AlertPolicySetState{Name: "web", Ready: state(T, v1.SucceededReason), Drifted: state(T, v1.APIDriftReason)},
			want: []string{"warning KernelDrift"}},
		{name: "drift over", ps: set(revA, ready(T, v1.SucceededReason), drifted(F, v1.NoDriftReason)),
			prev: &v1.AlertPolicySetState{Name: "web", Ready: state(T, v1.SucceededReason), Drifted: state(T, v1.KernelDriftReason)},
			want: []string{"info NoDrift"}},
		{name: "fails and drifts at once", ps: set(revB, ready(F, v1.ApplyFailedReason), drifted(T, v1.APIDriftReason)),
			prev: &v1.AlertPolicySetState{Name: "web", Ready: state(T, v1.SucceededReason), Drifted: state(F, v1.NoDriftReason)},
			want: []string{"warning ApplyFailed", "warning APIDrift"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			changes := policySetChanges(tc.ps, tc.prev)
			var got []string
			st := &v1.AlertStatus{}
			if tc.prev != nil {
				st.PolicySets = []v1.AlertPolicySetState{*tc.prev}
			}
			for _, ch := range changes {
				ch.record(st)
				if ch.n == nil {
					got = append(got, "-")
					continue
				}
				got = append(got, string(ch.n.Severity)+" "+ch.n.Reason)
				if ch.n.Object != (notify.ObjectRef{Kind: "PolicySet", Namespace: "shop", Name: "web"}) || !strings.Contains(ch.n.Message, " says ") || ch.n.ID == "" {
					t.Errorf("notification %+v", ch.n)
				}
			}
			if strings.Join(got, ",") != strings.Join(tc.want, ",") {
				t.Fatalf("changes %q, want %q", got, tc.want)
			}
			// Once recorded, the same PolicySet is no change at all.
			if again := policySetChanges(tc.ps, findPolicySetState(st, "web")); len(again) != 0 {
				t.Errorf("%d changes after recording, want 0", len(again))
			}
		})
	}
}

// TestAlertSelectsPolicySet checks the PolicySet selectors.
func TestAlertSelectsPolicySet(t *testing.T) {
	ps := &v1.PolicySet{ObjectMeta: metav1.ObjectMeta{Name: "web", Labels: map[string]string{"team": "shop", "tier": "prod"}}}
	for _, tc := range []struct {
		name string
		sels []v1.PolicySetSelector
		want bool
	}{
		{"by name", []v1.PolicySetSelector{{Name: "web"}}, true},
		{"another name", []v1.PolicySetSelector{{Name: "db"}}, false},
		{"every set", []v1.PolicySetSelector{{Name: "*"}}, true},
		{"labels match", []v1.PolicySetSelector{{MatchLabels: map[string]string{"team": "shop"}}}, true},
		{"labels differ", []v1.PolicySetSelector{{MatchLabels: map[string]string{"team": "shop", "tier": "dev"}}}, false},
		{"empty labels select all", []v1.PolicySetSelector{{MatchLabels: map[string]string{}}}, true},
		{"any of several", []v1.PolicySetSelector{{Name: "db"}, {MatchLabels: map[string]string{"tier": "prod"}}}, true},
		{"none", nil, false},
		{"an empty selector selects nothing", []v1.PolicySetSelector{{}}, false},
	} {
		if got := selectsPolicySet(tc.sels, ps); got != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
}

// TestAlertKernelDriftCursor calls the drift cursor directly: drifts are
// sent oldest first, once, including several found in the same second,
// and none older than the Alert's start.
func TestAlertKernelDriftCursor(t *testing.T) {
	t0 := time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)
	d := func(sec int, what string) v1.KernelDrift {
		return v1.KernelDrift{Time: metav1.NewTime(t0.Add(time.Duration(sec) * time.Second)), Kind: v1.KernelDriftMapEntry, What: what, Repaired: true}
	}
	whats := func(ds []v1.KernelDrift) string {
		var s []string
		for _, x := range ds {
			s = append(s, x.What)
		}
		return strings.Join(s, ",")
	}
	st := &v1.AlertStatus{}
	cursor := func() *v1.AlertDriftCursor {
		if len(st.Nodes) == 0 {
			return nil
		}
		return &st.Nodes[0]
	}
	send := func(ds []v1.KernelDrift) {
		for _, x := range ds {
			advanceCursor(st, "node-a", x.Time, driftKey(x))
		}
	}
	since := t0.Add(2 * time.Second)

	// Newest first, as the agent writes them; one before since.
	list := []v1.KernelDrift{d(5, "c"), d(3, "b"), d(1, "old")}
	got := newKernelDrifts(list, cursor(), since)
	if whats(got) != "b,c" {
		t.Fatalf("first pass: %s, want b,c", whats(got))
	}
	send(got)
	if got := newKernelDrifts(list, cursor(), since); len(got) != 0 {
		t.Fatalf("after sending: %s, want nothing", whats(got))
	}
	// Two more in the second of c, one later; the list is capped, so the
	// oldest fell off.
	list = []v1.KernelDrift{d(9, "f"), d(5, "e"), d(5, "d"), d(5, "c"), d(3, "b")}
	got = newKernelDrifts(list, cursor(), since)
	if whats(got) != "d,e,f" {
		t.Fatalf("second pass: %s, want d,e,f", whats(got))
	}
	// Only d is sent (the receiver failed on e): e and f stay due.
	send(got[:1])
	if got := newKernelDrifts(list, cursor(), since); whats(got) != "e,f" {
		t.Fatalf("after a partial send: %s, want e,f", whats(got))
	}
	send(newKernelDrifts(list, cursor(), since))
	if c := cursor(); !c.Time.Time.Equal(t0.Add(9*time.Second)) || len(c.Sent) != 1 {
		t.Errorf("cursor %+v, want the time of f and one hash", c)
	}
	if got := newKernelDrifts(list, cursor(), since); len(got) != 0 {
		t.Fatalf("at the end: %s, want nothing", whats(got))
	}
}

// alertLogs collects the log lines of the test's managers.
type alertLogs struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *alertLogs) write(prefix, args string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	fmt.Fprintf(&l.buf, "%s %s\n", prefix, args)
}

func (l *alertLogs) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// startAlertManager runs an AlertReconciler in a manager of its own (the
// suite's manager runs the other controllers), logging into logs at every
// verbosity. It returns a function that stops it.
func startAlertManager(t *testing.T, logs *alertLogs) func() {
	t.Helper()
	mgr, err := ctrl.NewManager(testCfg, ctrl.Options{
		Scheme:  testScheme,
		Logger:  funcr.New(logs.write, funcr.Options{Verbosity: 10}),
		Metrics: metricsserver.Options{BindAddress: "0"},
		Client:  client.Options{Cache: &client.CacheOptions{DisableFor: []client.Object{&corev1.Secret{}}}},
		// The test restarts the manager: a second "alert" controller.
		Controller: config.Controller{SkipNameValidation: ptr.To(true)},
	})
	if err != nil {
		t.Fatal(err)
	}
	r := &AlertReconciler{
		Client:        mgr.GetClient(),
		Recorder:      mgr.GetEventRecorder("alert-controller"),
		Backoff:       wait.Backoff{Duration: 10 * time.Millisecond, Factor: 2, Steps: 4, Cap: 100 * time.Millisecond},
		RetryInterval: 200 * time.Millisecond,
	}
	if err := r.SetupWithManager(mgr); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("alert manager: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

// alertReceiver is a real HTTP receiver on loopback. It answers only on
// its secret path, verifies generic deliveries with notify.Verify, and
// answers with the statuses it is given before 204.
type alertReceiver struct {
	srv *httptest.Server
	// path is the secret part of the address.
	path   string
	key    []byte
	mu     sync.Mutex
	status []int
	reqs   []alertRequest
}

// alertRequest is one delivery attempt.
type alertRequest struct {
	header http.Header
	body   []byte
	// verify is notify.Verify's verdict on a generic delivery.
	verify error
	status int
}

func newAlertReceiver(t *testing.T, path string, key []byte, status ...int) *alertReceiver {
	r := &alertReceiver{path: path, key: key, status: status}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.URL.Path != r.path || req.Method != http.MethodPost {
			http.NotFound(w, req)
			return
		}
		body, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		defer r.mu.Unlock()
		ar := alertRequest{header: req.Header.Clone(), body: body, status: http.StatusNoContent}
		if r.key != nil {
			ar.verify = notify.Verify(r.key, req.Header, body, time.Now(), 5*time.Minute)
		}
		if len(r.status) > 0 {
			ar.status, r.status = r.status[0], r.status[1:]
		}
		r.reqs = append(r.reqs, ar)
		w.WriteHeader(ar.status)
	}))
	t.Cleanup(r.srv.Close)
	return r
}

// address is the receiver's URL, the Secret's "address".
func (r *alertReceiver) address() string { return r.srv.URL + r.path }

// requests returns the attempts so far.
func (r *alertReceiver) requests() []alertRequest {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]alertRequest(nil), r.reqs...)
}

// delivered returns the generic notifications answered with 2xx for which
// keep holds, failing the test on a bad signature.
func (r *alertReceiver) delivered(t *testing.T, keep func(notify.Notification) bool) []notify.Notification {
	t.Helper()
	var out []notify.Notification
	for _, q := range r.requests() {
		if q.verify != nil {
			t.Fatalf("a delivery failed verification: %v", q.verify)
		}
		var n notify.Notification
		if err := json.Unmarshal(q.body, &n); err != nil {
			t.Fatalf("delivery is not a notification: %v: %s", err, q.body)
		}
		if q.status/100 == 2 && keep(n) {
			out = append(out, n)
		}
	}
	return out
}

// waitDelivered waits until exactly want notifications for which keep
// holds were delivered, and returns them.
func (r *alertReceiver) waitDelivered(t *testing.T, want int, keep func(notify.Notification) bool) []notify.Notification {
	t.Helper()
	var got []notify.Notification
	eventually(t, 60*time.Second, func() error {
		got = r.delivered(t, keep)
		if len(got) < want {
			return fmt.Errorf("%d deliveries, want %d", len(got), want)
		}
		return nil
	})
	if len(got) != want {
		t.Fatalf("%d deliveries, want %d: %+v", len(got), want, got)
	}
	return got
}

// secretWord returns a random word to hide in a Secret and look for in
// logs, events and status.
func secretWord(prefix string) string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return prefix + hex.EncodeToString(b)
}

// alertStatuses holds the status of every Alert the tests created, as
// JSON, taken before the Alert is deleted.
var alertStatuses []string

// newAlert creates an Alert and returns its key. At the end of the test
// its status is kept in alertStatuses and it is deleted.
func newAlert(t *testing.T, ns, secret string, typ v1.AlertType, mutate func(*v1.Alert)) types.NamespacedName {
	t.Helper()
	a := &v1.Alert{ObjectMeta: metav1.ObjectMeta{GenerateName: "alert-", Namespace: ns}}
	a.Spec.Type = typ
	a.Spec.SecretRef.Name = secret
	if mutate != nil {
		mutate(a)
	}
	if err := k8sClient.Create(context.Background(), a); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		got := &v1.Alert{}
		if err := k8sClient.Get(context.Background(), client.ObjectKeyFromObject(a), got); err == nil {
			b, _ := json.Marshal(got.Status)
			alertStatuses = append(alertStatuses, string(b))
		}
		_ = k8sClient.Delete(context.Background(), a)
	})
	return client.ObjectKeyFromObject(a)
}

// waitAlert waits until cond holds for the Alert.
func waitAlert(t *testing.T, key types.NamespacedName, cond func(*v1.Alert) error) *v1.Alert {
	t.Helper()
	a := &v1.Alert{}
	eventually(t, 60*time.Second, func() error {
		if err := k8sClient.Get(context.Background(), key, a); err != nil {
			return err
		}
		return cond(a)
	})
	return a
}

// alertReady checks Ready's status and reason at the current generation.
func alertReady(status metav1.ConditionStatus, reason string) func(*v1.Alert) error {
	return func(a *v1.Alert) error {
		c := apimeta.FindStatusCondition(a.Status.Conditions, v1.ReadyCondition)
		if c == nil || c.Status != status || c.Reason != reason || a.Status.ObservedGeneration != a.Generation {
			return fmt.Errorf("Ready is %+v, want %s/%s", c, status, reason)
		}
		return nil
	}
}

// reconcileAlertNow asks for a reconcile and waits until it happened.
func reconcileAlertNow(t *testing.T, key types.NamespacedName) *v1.Alert {
	t.Helper()
	v := secretWord("req-")
	patch := fmt.Sprintf(`{"metadata":{"annotations":{%q:%q}}}`, v1.ReconcileRequestAnnotation, v)
	a := &v1.Alert{ObjectMeta: metav1.ObjectMeta{Namespace: key.Namespace, Name: key.Name}}
	if err := k8sClient.Patch(context.Background(), a, client.RawPatch(types.MergePatchType, []byte(patch))); err != nil {
		t.Fatal(err)
	}
	return waitAlert(t, key, func(a *v1.Alert) error {
		if a.Status.LastHandledReconcileAt != v {
			return fmt.Errorf("lastHandledReconcileAt %q, want %q", a.Status.LastHandledReconcileAt, v)
		}
		return nil
	})
}

// writeNodeDrifts creates or updates a NodeEnforcement with drifts.
func writeNodeDrifts(t *testing.T, node string, drifts ...v1.KernelDrift) {
	t.Helper()
	ctx := context.Background()
	ne := &v1.NodeEnforcement{}
	if err := k8sClient.Get(ctx, types.NamespacedName{Name: node}, ne); err != nil {
		ne = &v1.NodeEnforcement{ObjectMeta: metav1.ObjectMeta{Name: node}, Spec: v1.NodeEnforcementSpec{NodeName: node}}
		if err := k8sClient.Create(ctx, ne); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = k8sClient.Delete(context.Background(), ne) })
	}
	ne.Status.Drifts = drifts
	if err := k8sClient.Status().Update(ctx, ne); err != nil {
		t.Fatal(err)
	}
}

// hexDumpLine is a line of a hex dump (encoding/hex.Dump), as client-go
// logs protobuf bodies.
var hexDumpLine = regexp.MustCompile(`[0-9a-f]{8}  ((?:[0-9a-f]{2} {1,2}){1,16}) *\|`)

// hexDumped returns the bytes of every hex dump in text, concatenated.
func hexDumped(text string) []byte {
	var out []byte
	for _, m := range hexDumpLine.FindAllStringSubmatch(text, -1) {
		b, err := hex.DecodeString(strings.ReplaceAll(m[1], " ", ""))
		if err == nil {
			out = append(out, b...)
		}
	}
	return out
}

// onNode keeps the kernel drift notifications of one node.
func onNode(node string) func(notify.Notification) bool {
	return func(n notify.Notification) bool { return n.Reason == v1.KernelDriftReason && n.Node == node }
}

// TestAlertIntegration runs the AlertReconciler against the real API
// server, the suite's PolicySet controller and real HTTP receivers.
// Everything the Secrets hold is then looked for in the logs, the events
// and the Alerts' status.
func TestAlertIntegration(t *testing.T) {
	needEnv(t)
	logs := &alertLogs{}
	parent := t
	stop := startAlertManager(parent, logs)
	ctx := context.Background()
	// secrets collects every value a Secret held.
	var secrets []string

	t.Run("CRD rules", func(t *testing.T) {
		ns := newNamespace(t)
		for _, tc := range []struct {
			name   string
			mutate func(*v1.Alert)
			want   string // "" means accepted
		}{
			{"kernel drift only", func(a *v1.Alert) { a.Spec.EventSources.KernelDrift = true }, ""},
			{"sets by name and labels", func(a *v1.Alert) {
				a.Spec.EventSources.PolicySets = []v1.PolicySetSelector{{Name: "*"}, {MatchLabels: map[string]string{"team": "shop"}}}
			}, ""},
			{"nothing to send about", func(a *v1.Alert) {}, "select at least one PolicySet or kernelDrift"},
			{"name and labels in one selector", func(a *v1.Alert) {
				a.Spec.EventSources.PolicySets = []v1.PolicySetSelector{{Name: "web", MatchLabels: map[string]string{"team": "shop"}}}
			}, "set exactly one of name and matchLabels"},
			{"bad set name", func(a *v1.Alert) { a.Spec.EventSources.PolicySets = []v1.PolicySetSelector{{Name: "Web*"}} }, "spec.eventSources.policySets[0].name"},
			{"channel on a generic webhook", func(a *v1.Alert) {
				a.Spec.EventSources.KernelDrift = true
				a.Spec.Channel = "#ops"
			}, "channel and username apply to type slack only"},
			{"unknown severity", func(a *v1.Alert) {
				a.Spec.EventSources.KernelDrift = true
				a.Spec.Severity = "warning"
			}, "spec.severity"},
			{"unknown type", func(a *v1.Alert) {
				a.Spec.EventSources.KernelDrift = true
				a.Spec.Type = "pagerduty"
			}, "spec.type"},
		} {
			a := &v1.Alert{ObjectMeta: metav1.ObjectMeta{GenerateName: "rule-", Namespace: ns}}
			a.Spec.Type, a.Spec.SecretRef.Name, a.Spec.Suspend = v1.AlertTypeGeneric, "s", true
			tc.mutate(a)
			err := k8sClient.Create(ctx, a)
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("%s: rejected: %v", tc.name, err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Errorf("%s: %v, want a rejection with %q", tc.name, err, tc.want)
			}
			if err == nil && tc.want == "" && a.Spec.Severity != v1.AlertSeverityInfo {
				t.Errorf("%s: severity defaulted to %q, want info", tc.name, a.Spec.Severity)
			}
		}
	})

	t.Run("generic kernel drift", func(t *testing.T) {
		ns := newNamespace(t)
		token, path := secretWord("tok-"), "/hook/"+secretWord("path-")
		rcv := newAlertReceiver(t, path, []byte(token))
		secrets = append(secrets, token, path, rcv.address())
		sec := newSecret(t, ns, map[string]string{"address": rcv.address(), "token": token})
		key := newAlert(t, ns, sec, v1.AlertTypeGeneric, func(a *v1.Alert) { a.Spec.EventSources.KernelDrift = true })
		waitAlert(t, key, alertReady(metav1.ConditionTrue, v1.SucceededReason))

		node := secretWord("node-")
		first := v1.KernelDrift{Time: metav1.Now(), Kind: v1.KernelDriftMapEntry, What: "policy map entry 10.0.0.1:443 allow → deny", Repaired: true}
		writeNodeDrifts(t, node, first)
		got := rcv.waitDelivered(t, 1, onNode(node))[0]
		if got.Object.Kind != "NodeEnforcement" || got.Object.Name != node || got.Severity != notify.SeverityWarning ||
			got.Metadata["kind"] != "MapEntry" || got.Metadata["what"] != first.What || got.Metadata["repaired"] != "true" ||
			!strings.Contains(got.Message, first.What) || got.Time != first.Time.UTC().Format(time.RFC3339) {
			t.Errorf("delivered %+v", got)
		}
		a := reconcileAlertNow(t, key)
		if n := len(rcv.delivered(t, onNode(node))); n != 1 {
			t.Errorf("a second reconcile: %d deliveries, want still 1", n)
		}
		if a.Status.LastSent == nil || a.Status.LastSent.ID != got.ID || a.Status.LastSent.Object != "NodeEnforcement "+node {
			t.Errorf("lastSent %+v, want the drift's delivery %s", a.Status.LastSent, got.ID)
		}

		// A second drift found in the same second, unrepaired.
		second := v1.KernelDrift{Time: first.Time, Kind: v1.KernelDriftProgram, What: "tc ingress program detached from lxc1", Message: "link gone"}
		writeNodeDrifts(t, node, second, first)
		got = rcv.waitDelivered(t, 2, onNode(node))[1]
		if got.Metadata["what"] != second.What || got.Severity != notify.SeverityCritical || got.Metadata["repaired"] != "false" || got.Metadata["message"] != "link gone" {
			t.Errorf("second delivery %+v", got)
		}

		// A restarted manager finds the cursor in the status: nothing again.
		stop()
		stop = startAlertManager(parent, logs)
		reconcileAlertNow(t, key)
		if n := len(rcv.delivered(t, onNode(node))); n != 2 {
			t.Errorf("after a restart: %d deliveries, want still 2", n)
		}
	})

	t.Run("policyset changes", func(t *testing.T) {
		f := newPolicySetFixtureWith(t, map[string]string{"shop/web.cue": webCUE}, fixtureOptions{
			set: func(ps *v1.PolicySet) { ps.Labels = map[string]string{"team": "shop"} },
		})
		f.waitSet("", setReadyIs(metav1.ConditionTrue, v1.SucceededReason))
		token, path := secretWord("tok-"), "/hook/"+secretWord("path-")
		rcv := newAlertReceiver(t, path, []byte(token))
		// errRcv gets only what passes severity error.
		errToken, errPath := secretWord("tok-"), "/hook/"+secretWord("path-")
		errRcv := newAlertReceiver(t, errPath, []byte(errToken))
		secrets = append(secrets, token, path, rcv.address(), errToken, errPath, errRcv.address())
		key := newAlert(t, f.ns, newSecret(t, f.ns, map[string]string{"address": rcv.address(), "token": token}), v1.AlertTypeGeneric,
			func(a *v1.Alert) { a.Spec.EventSources.PolicySets = []v1.PolicySetSelector{{Name: "shop"}} })
		errKey := newAlert(t, f.ns, newSecret(t, f.ns, map[string]string{"address": errRcv.address(), "token": errToken}), v1.AlertTypeGeneric,
			func(a *v1.Alert) {
				a.Spec.EventSources.PolicySets = []v1.PolicySetSelector{{MatchLabels: map[string]string{"team": "shop"}}}
				a.Spec.Severity = v1.AlertSeverityError
			})
		for _, k := range []types.NamespacedName{key, errKey} {
			waitAlert(t, k, func(a *v1.Alert) error {
				if s := findPolicySetState(&a.Status, "shop"); s == nil || s.Ready == nil || s.Ready.Status != metav1.ConditionTrue {
					return fmt.Errorf("the healthy set is not recorded: %+v", a.Status.PolicySets)
				}
				return alertReady(metav1.ConditionTrue, v1.SucceededReason)(a)
			})
		}
		if n := len(rcv.requests()) + len(errRcv.requests()); n != 0 {
			t.Fatalf("%d deliveries about a healthy set, want 0", n)
		}

		// A guard denies the next commit: Ready turns False.
		bad := f.push("open ssh", map[string]string{"shop/web.cue": sshCUE})
		f.waitSet(bad, setReadyIs(metav1.ConditionFalse, v1.GuardDeniedReason))
		isSet := func(reason string) func(notify.Notification) bool {
			return func(n notify.Notification) bool { return n.Object.Kind == "PolicySet" && n.Reason == reason }
		}
		for _, r := range []*alertReceiver{rcv, errRcv} {
			got := r.waitDelivered(t, 1, isSet(v1.GuardDeniedReason))[0]
			if got.Object != (notify.ObjectRef{Kind: "PolicySet", Namespace: f.ns, Name: "shop"}) || got.Revision != bad ||
				got.Severity != notify.SeverityWarning || !strings.Contains(got.Message, "guard") || got.Metadata["previous"] != "True/Succeeded" {
				t.Errorf("delivered %+v", got)
			}
		}

		// A fixed commit: a recovery, which severity error leaves out.
		fixed := f.push("close ssh", map[string]string{"shop/web.cue": netpol("web", `fromEntities: ["world"]`, 8443)})
		f.waitSet(fixed, setReadyIs(metav1.ConditionTrue, v1.SucceededReason))
		got := rcv.waitDelivered(t, 1, isSet(v1.SucceededReason))[0]
		if got.Severity != notify.SeverityInfo || got.Revision != fixed || got.Metadata["previous"] != "False/GuardDenied" {
			t.Errorf("recovery %+v", got)
		}
		waitAlert(t, errKey, func(a *v1.Alert) error {
			if s := findPolicySetState(&a.Status, "shop"); s == nil || s.Ready == nil || s.Ready.Status != metav1.ConditionTrue {
				return fmt.Errorf("recovery not recorded: %+v", a.Status.PolicySets)
			}
			return nil
		})
		if n := len(errRcv.delivered(t, isSet(v1.SucceededReason))); n != 0 {
			t.Errorf("severity error: %d recoveries delivered, want 0", n)
		}

		// A hand edit: Drifted turns True with APIDrift.
		web := f.policies()["web"]
		web.Spec.Ingress[0].ToPorts[0].Ports[0].Port = intstr.FromInt32(9443)
		if err := k8sClient.Update(ctx, &web, client.FieldOwner("kubectl-edit")); err != nil {
			t.Fatal(err)
		}
		for _, r := range []*alertReceiver{rcv, errRcv} {
			got := r.waitDelivered(t, 1, isSet(v1.APIDriftReason))[0]
			if got.Severity != notify.SeverityWarning || got.Metadata["condition"] != v1.DriftedCondition || !strings.Contains(got.Message, "web was edited") {
				t.Errorf("drift %+v", got)
			}
		}
		// Each change went out once, however often the set reconciled.
		reconcileAlertNow(t, key)
		if n := len(rcv.delivered(t, func(notify.Notification) bool { return true })); n != 3 {
			t.Errorf("%d deliveries in all, want 3 (GuardDenied, Succeeded, APIDrift)", n)
		}
	})

	t.Run("slack", func(t *testing.T) {
		ns := newNamespace(t)
		path := "/services/T0/B0/" + secretWord("xoxb-")
		rcv := newAlertReceiver(t, path, nil)
		secrets = append(secrets, path, rcv.address())
		key := newAlert(t, ns, newSecret(t, ns, map[string]string{"address": rcv.address()}), v1.AlertTypeSlack, func(a *v1.Alert) {
			a.Spec.EventSources.KernelDrift = true
			a.Spec.Channel = "#security"
		})
		waitAlert(t, key, alertReady(metav1.ConditionTrue, v1.SucceededReason))
		node := secretWord("node-")
		writeNodeDrifts(t, node, v1.KernelDrift{Time: metav1.Now(), Kind: v1.KernelDriftPin, What: "pin /sys/fs/bpf/palisade/policy removed", Message: "bpffs unmounted"})
		var msg struct {
			Text        string `json:"text"`
			Channel     string `json:"channel"`
			Attachments []struct {
				Color  string `json:"color"`
				Title  string `json:"title"`
				Fields []struct {
					Title string `json:"title"`
					Value string `json:"value"`
				} `json:"fields"`
			} `json:"attachments"`
		}
		eventually(t, 60*time.Second, func() error {
			for _, q := range rcv.requests() {
				msg.Text = ""
				if err := json.Unmarshal(q.body, &msg); err != nil {
					return err
				}
				if strings.Contains(msg.Text, node) {
					if q.header.Get(notify.HeaderSignature) != "" || q.header.Get("Content-Type") != "application/json" {
						t.Errorf("Slack delivery headers %v", q.header)
					}
					return nil
				}
			}
			return fmt.Errorf("no Slack message about %s in %d requests", node, len(rcv.requests()))
		})
		if want := "[critical] KernelDrift: Pin drift on node " + node + ", NOT repaired (bpffs unmounted): pin /sys/fs/bpf/palisade/policy removed"; msg.Text != want || msg.Channel != "#security" {
			t.Errorf("text %q channel %q, want %q in #security", msg.Text, msg.Channel, want)
		}
		if len(msg.Attachments) != 1 || msg.Attachments[0].Title != v1.KernelDriftReason || msg.Attachments[0].Color != "#a30200" {
			t.Fatalf("attachments %+v", msg.Attachments)
		}
		fields := map[string]string{}
		for _, f := range msg.Attachments[0].Fields {
			fields[f.Title] = f.Value
		}
		if fields["Node"] != node || fields["kind"] != "Pin" || fields["repaired"] != "false" {
			t.Errorf("fields %v", fields)
		}
	})

	t.Run("retries", func(t *testing.T) {
		ns := newNamespace(t)
		token, path := secretWord("tok-"), "/hook/"+secretWord("path-")
		// Fails twice, then takes the delivery.
		rcv := newAlertReceiver(t, path, []byte(token), http.StatusServiceUnavailable, http.StatusBadGateway)
		secrets = append(secrets, token, path, rcv.address())
		key := newAlert(t, ns, newSecret(t, ns, map[string]string{"address": rcv.address(), "token": token}), v1.AlertTypeGeneric,
			func(a *v1.Alert) { a.Spec.EventSources.KernelDrift = true })
		waitAlert(t, key, alertReady(metav1.ConditionTrue, v1.SucceededReason))
		node := secretWord("node-")
		writeNodeDrifts(t, node, v1.KernelDrift{Time: metav1.Now(), Kind: v1.KernelDriftMapEntry, What: "entry deleted", Repaired: true})
		got := rcv.waitDelivered(t, 1, onNode(node))[0]
		var ids, statuses []string
		for _, q := range rcv.requests() {
			var n notify.Notification
			if json.Unmarshal(q.body, &n) == nil && n.Node == node {
				ids = append(ids, q.header.Get(notify.HeaderDelivery))
				statuses = append(statuses, fmt.Sprint(q.status))
			}
		}
		if strings.Join(statuses, ",") != "503,502,204" || ids[0] != got.ID || ids[1] != got.ID || ids[2] != got.ID {
			t.Errorf("attempts answered %v with IDs %v, want 503,502,204 all with ID %s", statuses, ids, got.ID)
		}
		a := reconcileAlertNow(t, key)
		if n := len(rcv.delivered(t, onNode(node))); n != 1 {
			t.Errorf("%d deliveries, want 1", n)
		}
		if err := alertReady(metav1.ConditionTrue, v1.SucceededReason)(a); err != nil || a.Status.LastSent == nil || a.Status.LastSent.ID != got.ID {
			t.Errorf("after the retries: %v; lastSent %+v", err, a.Status.LastSent)
		}
	})

	t.Run("bad secret", func(t *testing.T) {
		ns := newNamespace(t)
		token, path := secretWord("tok-"), "/hook/"+secretWord("path-")
		rcv := newAlertReceiver(t, path, []byte(token))
		secrets = append(secrets, token, path, rcv.address())
		for _, tc := range []struct {
			name, reason string
			data         map[string]string // nil: no Secret
			want         string
		}{
			{"no token", v1.SecretInvalidReason, map[string]string{"address": rcv.address()}, `has no "token" key`},
			{"not a URL", v1.SecretInvalidReason, map[string]string{"address": "ftp:" + path, "token": token}, "absolute http or https URL"},
			{"no address", v1.SecretInvalidReason, map[string]string{"token": token}, `has no "address" key`},
			{"missing", v1.SecretNotFoundReason, nil, "not found"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				sec := "absent"
				if tc.data != nil {
					sec = newSecret(t, ns, tc.data)
				}
				key := newAlert(t, ns, sec, v1.AlertTypeGeneric, func(a *v1.Alert) { a.Spec.EventSources.KernelDrift = true })
				a := waitAlert(t, key, alertReady(metav1.ConditionFalse, tc.reason))
				c := apimeta.FindStatusCondition(a.Status.Conditions, v1.ReadyCondition)
				if !strings.Contains(c.Message, tc.want) || !strings.Contains(c.Message, sec) {
					t.Errorf("Ready message %q, want it to say %q about Secret %s", c.Message, tc.want, sec)
				}
				// The event says the same.
				eventually(t, 60*time.Second, func() error {
					var evs eventsv1.EventList
					if err := k8sClient.List(ctx, &evs, client.InNamespace(ns)); err != nil {
						return err
					}
					for _, e := range evs.Items {
						if e.Regarding.Name == key.Name && e.Reason == tc.reason && strings.Contains(e.Note, tc.want) {
							return nil
						}
					}
					return fmt.Errorf("no %s event for %s among %d", tc.reason, key.Name, len(evs.Items))
				})
			})
		}

		// Fixing the Secret, which is not watched, heals the Alert at the
		// retry interval.
		sec := newSecret(t, ns, map[string]string{"address": rcv.address()})
		key := newAlert(t, ns, sec, v1.AlertTypeGeneric, func(a *v1.Alert) { a.Spec.EventSources.KernelDrift = true })
		waitAlert(t, key, alertReady(metav1.ConditionFalse, v1.SecretInvalidReason))
		s := &corev1.Secret{}
		if err := k8sClient.Get(ctx, types.NamespacedName{Namespace: ns, Name: sec}, s); err != nil {
			t.Fatal(err)
		}
		s.StringData = map[string]string{"token": token}
		if err := k8sClient.Update(ctx, s); err != nil {
			t.Fatal(err)
		}
		waitAlert(t, key, alertReady(metav1.ConditionTrue, v1.SucceededReason))
	})

	t.Run("receiver refuses", func(t *testing.T) {
		ns := newNamespace(t)
		token, path := secretWord("tok-"), "/hook/"+secretWord("path-")
		statuses := make([]int, 1000)
		for i := range statuses {
			statuses[i] = http.StatusUnauthorized
		}
		rcv := newAlertReceiver(t, path, []byte(token), statuses...)
		secrets = append(secrets, token, path, rcv.address())
		key := newAlert(t, ns, newSecret(t, ns, map[string]string{"address": rcv.address(), "token": token}), v1.AlertTypeGeneric,
			func(a *v1.Alert) { a.Spec.EventSources.KernelDrift = true })
		waitAlert(t, key, alertReady(metav1.ConditionTrue, v1.SucceededReason))
		node := secretWord("node-")
		writeNodeDrifts(t, node, v1.KernelDrift{Time: metav1.Now(), Kind: v1.KernelDriftMapEntry, What: "entry changed", Repaired: true})
		a := waitAlert(t, key, alertReady(metav1.ConditionFalse, v1.DeliveryFailedReason))
		// Keep this status now: the drift's NodeEnforcement is deleted
		// before the Alert at cleanup, and a reconcile in between may
		// leave nothing to deliver.
		b, _ := json.Marshal(a.Status)
		alertStatuses = append(alertStatuses, string(b))
		c := apimeta.FindStatusCondition(a.Status.Conditions, v1.ReadyCondition)
		if !strings.Contains(c.Message, "401") || !strings.Contains(c.Message, "NodeEnforcement "+node) {
			t.Errorf("Ready message %q, want the 401 and the drift's node", c.Message)
		}
		if len(a.Status.Nodes) != 0 {
			t.Errorf("the cursor moved past an undelivered drift: %+v", a.Status.Nodes)
		}
		// The failure reached the log (the secrets are checked below).
		eventually(t, 60*time.Second, func() error {
			if !strings.Contains(logs.String(), "not delivered") {
				return fmt.Errorf("no delivery failure logged yet")
			}
			return nil
		})
	})

	// Nothing a Secret held reached the logs, the events or the status.
	logText := logs.String()
	if !strings.Contains(logText, "notification sent") {
		t.Errorf("the logs have no sent notification: is the log captured?\n%s", logText)
	}
	var evs eventsv1.EventList
	if err := k8sClient.List(ctx, &evs); err != nil {
		t.Fatal(err)
	}
	evText, _ := json.Marshal(evs.Items)
	statusText := strings.Join(alertStatuses, "\n")
	if !strings.Contains(statusText, v1.SecretInvalidReason) || !strings.Contains(statusText, v1.DeliveryFailedReason) {
		t.Errorf("the statuses kept miss the failures: %s", statusText)
	}
	// At high verbosity client-go logs request and response bodies, as
	// hex dumps when they are protobuf: look in the bytes dumped too.
	dumped := string(hexDumped(logText))
	if dumped == "" {
		t.Error("no request or response body in the logs: is verbosity 8 captured?")
	}
	for _, s := range secrets {
		for where, text := range map[string]string{"logs": logText, "bytes dumped in the logs": dumped, "events": string(evText), "status": statusText} {
			if strings.Contains(text, s) {
				t.Errorf("the %s contain the secret %q", where, s)
			}
		}
	}
}
