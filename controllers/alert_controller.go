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
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/recorder"

	v1 "github.com/palisade-dev/palisade/api/v1alpha1"
	"github.com/palisade-dev/palisade/internal/notify"
)

// Defaults of the AlertReconciler.
const (
	// DefaultAlertRetryInterval is how soon an Alert whose Secret is
	// unusable looks at it again: Secrets are not watched.
	DefaultAlertRetryInterval = time.Minute
	// DefaultAlertSendTimeout bounds the deliveries of one reconcile, so
	// that a receiver that is down holds a worker for a bounded time; what
	// is left is sent on the next try.
	DefaultAlertSendTimeout = 5 * time.Minute
	// DefaultAlertConcurrency is how many Alerts reconcile at once: a
	// reconcile mostly waits on a receiver.
	DefaultAlertConcurrency = 4
)

// AlertReconciler sends each Alert's notifications: kernel drift recorded
// on any NodeEnforcement, and changes of the Ready and Drifted conditions
// of the PolicySets it selects.
//
// Delivery is at least once. What was sent is kept in the Alert's status,
// not in memory, so a restarted manager does not send it again: per node,
// a cursor (the newest drift's time and the hashes of the drifts sent at
// that time); per PolicySet, the state of its conditions last seen. The
// status is patched after the deliveries, so a manager that dies between
// a delivery and the patch sends that notification again, with the same
// ID for the receiver to deduplicate.
type AlertReconciler struct {
	client.Client
	// APIReader reads Alerts and Secrets from the API server, never from
	// the cache: Secrets, so that the manager needs only get on them, not
	// list and watch on every Secret of the cluster; Alerts, so that a
	// reconcile that follows the previous one's status patch sees its
	// cursors rather than a stale copy from which it would send again.
	// mgr.GetAPIReader() when nil.
	APIReader client.Reader
	// Recorder receives an event when an Alert's Ready changes.
	Recorder recorder.EventRecorder
	// Backoff between delivery attempts; notify's default (1 s doubling
	// up to 1 min, 6 attempts) when zero.
	Backoff wait.Backoff
	// HTTPClient makes the deliveries; notify's default when nil.
	HTTPClient *http.Client
	// RetryInterval is DefaultAlertRetryInterval when zero.
	RetryInterval time.Duration
	// SendTimeout is DefaultAlertSendTimeout when zero.
	SendTimeout time.Duration
	// MaxConcurrentReconciles is DefaultAlertConcurrency when zero.
	MaxConcurrentReconciles int
}

// +kubebuilder:rbac:groups=palisade.dev,resources=alerts,verbs=get;list;watch
// +kubebuilder:rbac:groups=palisade.dev,resources=alerts/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=palisade.dev,resources=policysets,verbs=get;list;watch
// +kubebuilder:rbac:groups=palisade.dev,resources=nodeenforcements,verbs=get;list;watch
// +kubebuilder:rbac:groups="",resources=secrets,verbs=get
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch

// SetupWithManager registers the reconciler. An Alert reconciles on a
// change of its spec or the reconcile request annotation, on a change of
// the kernel drifts of any NodeEnforcement (Alerts with kernelDrift), and
// on a change of Ready, Drifted, the attempted revision or the labels of a
// PolicySet in its namespace.
func (r *AlertReconciler) SetupWithManager(mgr ctrl.Manager) error {
	if r.APIReader == nil {
		r.APIReader = mgr.GetAPIReader()
	}
	n := r.MaxConcurrentReconciles
	if n <= 0 {
		n = DefaultAlertConcurrency
	}
	return ctrl.NewControllerManagedBy(mgr).
		For(&v1.Alert{}, builder.WithPredicates(
			predicate.Or(predicate.GenerationChangedPredicate{}, predicate.AnnotationChangedPredicate{}))).
		Watches(&v1.NodeEnforcement{}, handler.EnqueueRequestsFromMapFunc(r.kernelDriftAlerts),
			builder.WithPredicates(kernelDriftChanged{})).
		Watches(&v1.PolicySet{}, handler.EnqueueRequestsFromMapFunc(r.policySetAlerts),
			builder.WithPredicates(policySetAlertable{})).
		WithOptions(controller.Options{MaxConcurrentReconciles: n}).
		Named("alert").
		Complete(r)
}

// kernelDriftChanged passes NodeEnforcement events that may carry a new
// drift. A deleted node only leaves a cursor behind, pruned on the next
// reconcile.
type kernelDriftChanged struct{ predicate.Funcs }

func (kernelDriftChanged) Create(e event.CreateEvent) bool {
	ne, ok := e.Object.(*v1.NodeEnforcement)
	return ok && len(ne.Status.Drifts) > 0
}

func (kernelDriftChanged) Update(e event.UpdateEvent) bool {
	o, ok1 := e.ObjectOld.(*v1.NodeEnforcement)
	n, ok2 := e.ObjectNew.(*v1.NodeEnforcement)
	return ok1 && ok2 && !reflect.DeepEqual(o.Status.Drifts, n.Status.Drifts)
}

func (kernelDriftChanged) Delete(event.DeleteEvent) bool   { return false }
func (kernelDriftChanged) Generic(event.GenericEvent) bool { return false }

// policySetAlertable passes PolicySet events an Alert may notify about:
// not the enforcement counts or inventory that change on every loop.
type policySetAlertable struct{ predicate.Funcs }

func (policySetAlertable) Update(e event.UpdateEvent) bool {
	o, ok1 := e.ObjectOld.(*v1.PolicySet)
	n, ok2 := e.ObjectNew.(*v1.PolicySet)
	if !ok1 || !ok2 {
		return false
	}
	if o.Status.LastAttemptedRevision != n.Status.LastAttemptedRevision || !reflect.DeepEqual(o.Labels, n.Labels) {
		return true
	}
	for _, typ := range []string{v1.ReadyCondition, v1.DriftedCondition} {
		if conditionState(o.Status.Conditions, typ) != conditionState(n.Status.Conditions, typ) {
			return true
		}
	}
	return false
}

func (policySetAlertable) Create(event.CreateEvent) bool   { return true }
func (policySetAlertable) Delete(event.DeleteEvent) bool   { return true }
func (policySetAlertable) Generic(event.GenericEvent) bool { return false }

// conditionState is a condition's status and reason; zero if absent.
func conditionState(conds []metav1.Condition, typ string) v1.AlertConditionState {
	if c := apimeta.FindStatusCondition(conds, typ); c != nil {
		return v1.AlertConditionState{Status: c.Status, Reason: c.Reason}
	}
	return v1.AlertConditionState{}
}

// kernelDriftAlerts lists the Alerts that send kernel drift.
func (r *AlertReconciler) kernelDriftAlerts(ctx context.Context, _ client.Object) []reconcile.Request {
	return r.alerts(ctx, func(a *v1.Alert) bool { return a.Spec.EventSources.KernelDrift })
}

// policySetAlerts lists the Alerts in a PolicySet's namespace that select
// PolicySets. A set that stopped matching is still notified to them: they
// prune its state.
func (r *AlertReconciler) policySetAlerts(ctx context.Context, o client.Object) []reconcile.Request {
	return r.alerts(ctx, func(a *v1.Alert) bool { return len(a.Spec.EventSources.PolicySets) > 0 }, client.InNamespace(o.GetNamespace()))
}

// alerts lists the Alerts, not suspended, for which keep holds.
func (r *AlertReconciler) alerts(ctx context.Context, keep func(*v1.Alert) bool, opts ...client.ListOption) []reconcile.Request {
	var list v1.AlertList
	if err := r.List(ctx, &list, opts...); err != nil {
		log.FromContext(ctx).Error(err, "list alerts")
		return nil
	}
	var out []reconcile.Request
	for i := range list.Items {
		if a := &list.Items[i]; !a.Spec.Suspend && keep(a) {
			out = append(out, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(a)})
		}
	}
	return out
}

// pendingNotification is a notification due and how to record in the
// status that it was handled: sent, or left out by the severity filter.
type pendingNotification struct {
	n notify.Notification
	// at orders the notifications: the drift's or the transition's time.
	at     time.Time
	record func(*v1.AlertStatus)
}

// Reconcile reads the receiver from the Secret, collects the notifications
// due (PolicySet changes, then kernel drift) and sends them oldest first,
// recording each one in the status as it is sent.
func (r *AlertReconciler) Reconcile(ctx context.Context, req ctrl.Request) (result ctrl.Result, retErr error) {
	obj := &v1.Alert{}
	if err := r.APIReader.Get(ctx, req.NamespacedName, obj); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	base := obj.DeepCopy()
	// secrets holds the Secret's values once read: every message is
	// cleaned of them before it reaches the status, an event or a log.
	var secrets map[string][]byte
	defer func() {
		retErr = r.finish(ctx, base, obj, redactStep(retErr, secrets))
		if isStalling(retErr) {
			result, retErr = ctrl.Result{RequeueAfter: r.retryInterval()}, nil
		}
	}()
	if v, ok := obj.Annotations[v1.ReconcileRequestAnnotation]; ok {
		obj.Status.LastHandledReconcileAt = v
	}
	if obj.Spec.Suspend {
		// Drift found while suspended is not sent on resume.
		obj.Status.KernelDriftSince, obj.Status.Nodes = nil, nil
		return ctrl.Result{}, nil
	}
	r.reconcileSince(obj)
	sender, secrets, err := r.reconcileReceiver(ctx, obj)
	if err != nil {
		return ctrl.Result{}, err
	}
	pending, err := r.reconcilePolicySets(ctx, obj)
	if err != nil {
		return ctrl.Result{}, err
	}
	drifts, err := r.reconcileKernelDrift(ctx, obj)
	if err != nil {
		return ctrl.Result{}, err
	}
	return ctrl.Result{}, r.reconcileDelivery(ctx, obj, sender, append(pending, drifts...))
}

// reconcileSince starts or stops the kernel drift cursor. An Alert created
// with kernelDrift sends drift from its creation on, so none found before
// its first reconcile (or while its Secret was unusable) is lost; one that
// turns kernelDrift on later, or resumes, starts from now rather than
// sending the nodes' whole history.
func (r *AlertReconciler) reconcileSince(obj *v1.Alert) {
	st := &obj.Status
	if !obj.Spec.EventSources.KernelDrift {
		st.KernelDriftSince, st.Nodes = nil, nil
		return
	}
	if st.KernelDriftSince != nil {
		return
	}
	since := obj.CreationTimestamp
	if st.ObservedGeneration > 0 {
		since = metav1.NewTime(time.Now().Truncate(time.Second))
	}
	st.KernelDriftSince = &since
}

// reconcileReceiver reads the Secret and returns the sender to its
// receiver, and the Secret's values.
func (r *AlertReconciler) reconcileReceiver(ctx context.Context, obj *v1.Alert) (*notify.Sender, map[string][]byte, error) {
	name := obj.Spec.SecretRef.Name
	sec := &corev1.Secret{}
	// client-go logs response bodies, the Secret's values with them, to
	// the context's logger at verbosity 8: this read logs nothing.
	quiet := log.IntoContext(ctx, logr.Discard())
	if err := r.APIReader.Get(quiet, types.NamespacedName{Namespace: obj.Namespace, Name: name}, sec); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, nil, waiting(v1.SecretNotFoundReason, fmt.Errorf("Secret %s not found in namespace %s", name, obj.Namespace))
		}
		return nil, nil, waiting(v1.SecretNotFoundReason, fmt.Errorf("get Secret %s: %w", name, err))
	}
	data := sec.Data
	addr := strings.TrimSpace(string(data[v1.AlertSecretAddressKey]))
	if addr == "" {
		return nil, data, stalled(v1.SecretInvalidReason, fmt.Errorf("Secret %s has no %q key: it holds the receiver's URL", name, v1.AlertSecretAddressKey))
	}
	rcv := notify.Receiver{
		Kind:     notify.KindSlack,
		Name:     obj.Namespace + "/" + obj.Name,
		URL:      addr,
		Channel:  obj.Spec.Channel,
		Username: obj.Spec.Username,
	}
	if obj.Spec.Type == v1.AlertTypeGeneric {
		rcv.Kind = notify.KindGeneric
		rcv.Secret = data[v1.AlertSecretTokenKey]
		if len(rcv.Secret) == 0 {
			return nil, data, stalled(v1.SecretInvalidReason, fmt.Errorf("Secret %s has no %q key: type generic signs every delivery with it", name, v1.AlertSecretTokenKey))
		}
	}
	s, err := notify.NewSender(rcv, notify.Options{Client: r.HTTPClient, Backoff: r.Backoff})
	if err != nil {
		// notify never prints the address; say which Secret to fix.
		return nil, data, stalled(v1.SecretInvalidReason, fmt.Errorf("Secret %s: %w", name, err))
	}
	return s, data, nil
}

// reconcilePolicySets compares the selected PolicySets' Ready and Drifted
// with what the Alert last saw and returns the notifications due. Changes
// that notify nobody (a first look at a healthy set) are recorded at once;
// sets no longer selected are forgotten.
func (r *AlertReconciler) reconcilePolicySets(ctx context.Context, obj *v1.Alert) ([]pendingNotification, error) {
	st := &obj.Status
	if len(obj.Spec.EventSources.PolicySets) == 0 {
		st.PolicySets = nil
		return nil, nil
	}
	var list v1.PolicySetList
	if err := r.List(ctx, &list, client.InNamespace(obj.Namespace)); err != nil {
		return nil, waiting(v1.ProgressingReason, fmt.Errorf("list PolicySets: %w", err))
	}
	selected := map[string]bool{}
	var out []pendingNotification
	for i := range list.Items {
		ps := &list.Items[i]
		if !selectsPolicySet(obj.Spec.EventSources.PolicySets, ps) {
			continue
		}
		selected[ps.Name] = true
		for _, ch := range policySetChanges(ps, findPolicySetState(st, ps.Name)) {
			if ch.n == nil {
				ch.record(st)
				continue
			}
			out = append(out, pendingNotification{n: *ch.n, at: ch.at, record: ch.record})
		}
	}
	st.PolicySets = slices.DeleteFunc(st.PolicySets, func(s v1.AlertPolicySetState) bool { return !selected[s.Name] })
	return out, nil
}

// selectsPolicySet reports whether any selector matches ps.
func selectsPolicySet(sels []v1.PolicySetSelector, ps *v1.PolicySet) bool {
	for _, s := range sels {
		switch {
		case s.Name == "*" || (s.Name != "" && s.Name == ps.Name):
			return true
		case s.Name == "" && s.MatchLabels != nil && labels.SelectorFromSet(s.MatchLabels).Matches(labels.Set(ps.Labels)):
			return true
		}
	}
	return false
}

// findPolicySetState returns the Alert's record of a PolicySet, or nil.
func findPolicySetState(st *v1.AlertStatus, name string) *v1.AlertPolicySetState {
	for i := range st.PolicySets {
		if st.PolicySets[i].Name == name {
			return &st.PolicySets[i]
		}
	}
	return nil
}

// policySetState returns the Alert's record of a PolicySet, adding it.
func policySetState(st *v1.AlertStatus, name string) *v1.AlertPolicySetState {
	if s := findPolicySetState(st, name); s != nil {
		return s
	}
	st.PolicySets = append(st.PolicySets, v1.AlertPolicySetState{Name: name})
	return &st.PolicySets[len(st.PolicySets)-1]
}

// conditionChange is a change of one condition of a PolicySet since the
// Alert last looked: the notification it is worth (nil if none) and how
// to record it.
type conditionChange struct {
	n      *notify.Notification
	at     time.Time
	record func(*v1.AlertStatus)
}

// policySetChanges compares ps with prev, the Alert's record of it (nil
// if none). A missing or Unknown condition changes nothing.
//
//   - Ready turning False notifies (warning) with its reason and message;
//     so does a failure with another reason, or at another revision. Ready
//     turning True after False is a recovery (info). A set first seen Ready
//     is recorded silently; one first seen failing is notified.
//   - Drifted turning True notifies (warning), and again when its reason
//     changes (APIDrift, KernelDrift); turning False after True is a
//     recovery (info).
func policySetChanges(ps *v1.PolicySet, prev *v1.AlertPolicySetState) []conditionChange {
	var was v1.AlertPolicySetState
	if prev != nil {
		was = *prev
	}
	var out []conditionChange
	if c := apimeta.FindStatusCondition(ps.Status.Conditions, v1.ReadyCondition); c != nil && c.Status != metav1.ConditionUnknown {
		now := v1.AlertConditionState{Status: c.Status, Reason: c.Reason}
		rev := ""
		if c.Status == metav1.ConditionFalse {
			rev = ps.Status.LastAttemptedRevision
		}
		if was.Ready == nil || *was.Ready != now || was.Revision != rev {
			ch := conditionChange{at: c.LastTransitionTime.Time, record: func(st *v1.AlertStatus) {
				s := policySetState(st, ps.Name)
				s.Ready, s.Revision = &now, rev
			}}
			switch {
			case c.Status == metav1.ConditionFalse:
				ch.n = policySetNotification(ps, c, was.Ready, notify.SeverityWarning, rev)
			case was.Ready != nil && was.Ready.Status == metav1.ConditionFalse:
				ch.n = policySetNotification(ps, c, was.Ready, notify.SeverityInfo, ps.Status.LastAppliedRevision)
			}
			out = append(out, ch)
		}
	}
	if c := apimeta.FindStatusCondition(ps.Status.Conditions, v1.DriftedCondition); c != nil && c.Status != metav1.ConditionUnknown {
		now := v1.AlertConditionState{Status: c.Status, Reason: c.Reason}
		if was.Drifted == nil || *was.Drifted != now {
			ch := conditionChange{at: c.LastTransitionTime.Time, record: func(st *v1.AlertStatus) {
				policySetState(st, ps.Name).Drifted = &now
			}}
			switch {
			case c.Status == metav1.ConditionTrue:
				ch.n = policySetNotification(ps, c, was.Drifted, notify.SeverityWarning, ps.Status.LastAppliedRevision)
			case was.Drifted != nil && was.Drifted.Status == metav1.ConditionTrue:
				ch.n = policySetNotification(ps, c, was.Drifted, notify.SeverityInfo, ps.Status.LastAppliedRevision)
			}
			out = append(out, ch)
		}
	}
	return out
}

// policySetNotification describes condition c of ps, which was prev.
func policySetNotification(ps *v1.PolicySet, c *metav1.Condition, prev *v1.AlertConditionState, sev notify.Severity, rev string) *notify.Notification {
	md := map[string]string{"condition": c.Type, "status": string(c.Status)}
	if prev != nil {
		md["previous"] = string(prev.Status) + "/" + prev.Reason
	}
	return &notify.Notification{
		ID: deliveryID("PolicySet", ps.Namespace, ps.Name, c.Type, string(c.Status), c.Reason, rev,
			c.LastTransitionTime.UTC().Format(time.RFC3339)),
		Severity: sev,
		Reason:   c.Reason,
		Message:  c.Message,
		Object:   notify.ObjectRef{Kind: "PolicySet", Namespace: ps.Namespace, Name: ps.Name},
		Revision: rev,
		Metadata: md,
	}
}

// reconcileKernelDrift returns a notification for each drift recorded on
// a NodeEnforcement since the node's cursor (and since kernelDriftSince),
// oldest first, and forgets the cursors of nodes that are gone.
func (r *AlertReconciler) reconcileKernelDrift(ctx context.Context, obj *v1.Alert) ([]pendingNotification, error) {
	st := &obj.Status
	if st.KernelDriftSince == nil {
		return nil, nil
	}
	var nodes v1.NodeEnforcementList
	if err := r.List(ctx, &nodes); err != nil {
		return nil, waiting(v1.ProgressingReason, fmt.Errorf("list NodeEnforcements: %w", err))
	}
	present := map[string]bool{}
	var out []pendingNotification
	for i := range nodes.Items {
		ne := &nodes.Items[i]
		present[ne.Name] = true
		var cur *v1.AlertDriftCursor
		if j := slices.IndexFunc(st.Nodes, func(c v1.AlertDriftCursor) bool { return c.Node == ne.Name }); j >= 0 {
			cur = &st.Nodes[j]
		}
		for _, d := range newKernelDrifts(ne.Status.Drifts, cur, st.KernelDriftSince.Time) {
			node, t, key := ne.Name, d.Time, driftKey(d)
			out = append(out, pendingNotification{
				n:      kernelDriftNotification(node, d),
				at:     d.Time.Time,
				record: func(st *v1.AlertStatus) { advanceCursor(st, node, t, key) },
			})
		}
	}
	st.Nodes = slices.DeleteFunc(st.Nodes, func(c v1.AlertDriftCursor) bool { return !present[c.Node] })
	return out, nil
}

// newKernelDrifts returns the drifts (a NodeEnforcement's, newest first)
// that the cursor (nil if none) has not passed and that are not older
// than since, oldest first. Times compare in whole seconds, the API's
// precision.
func newKernelDrifts(drifts []v1.KernelDrift, cur *v1.AlertDriftCursor, since time.Time) []v1.KernelDrift {
	var out []v1.KernelDrift
	for _, d := range drifts {
		sec := d.Time.Unix()
		switch {
		case sec < since.Unix():
		case cur == nil || sec > cur.Time.Unix():
			out = append(out, d)
		case sec == cur.Time.Unix() && !slices.Contains(cur.Sent, driftKey(d)):
			out = append(out, d)
		}
	}
	slices.Reverse(out)
	slices.SortStableFunc(out, func(a, b v1.KernelDrift) int { return cmp.Compare(a.Time.Unix(), b.Time.Unix()) })
	return out
}

// advanceCursor records that the drift with key at t was sent for node.
func advanceCursor(st *v1.AlertStatus, node string, t metav1.Time, key string) {
	i := slices.IndexFunc(st.Nodes, func(c v1.AlertDriftCursor) bool { return c.Node == node })
	if i < 0 {
		st.Nodes = append(st.Nodes, v1.AlertDriftCursor{Node: node, Time: t, Sent: []string{key}})
		return
	}
	c := &st.Nodes[i]
	switch {
	case t.Unix() > c.Time.Unix():
		c.Time, c.Sent = t, []string{key}
	case t.Unix() == c.Time.Unix() && !slices.Contains(c.Sent, key):
		c.Sent = append(c.Sent, key)
	}
}

// driftKey tells apart the drifts a node found in the same second.
func driftKey(d v1.KernelDrift) string {
	return deliveryID(string(d.Kind), d.What)[:12]
}

// kernelDriftNotification describes a drift on node: a warning when the
// agent repaired it, critical when the kernel still differs from Git.
func kernelDriftNotification(node string, d v1.KernelDrift) notify.Notification {
	sev, state := notify.SeverityWarning, "repaired"
	md := map[string]string{"kind": string(d.Kind), "what": d.What, "repaired": strconv.FormatBool(d.Repaired)}
	if !d.Repaired {
		sev, state = notify.SeverityCritical, "NOT repaired"
		if d.Message != "" {
			state += " (" + d.Message + ")"
			md["message"] = d.Message
		}
	}
	t := d.Time.UTC().Format(time.RFC3339)
	return notify.Notification{
		ID:       deliveryID("NodeEnforcement", node, t, string(d.Kind), d.What),
		Time:     t,
		Severity: sev,
		Reason:   v1.KernelDriftReason,
		Message:  fmt.Sprintf("%s drift on node %s, %s: %s", d.Kind, node, state, d.What),
		Object:   notify.ObjectRef{Kind: "NodeEnforcement", Name: node},
		Node:     node,
		Metadata: md,
	}
}

// deliveryID is a notification's ID: a hash of what identifies its event,
// the same on every attempt and every reconcile.
func deliveryID(parts ...string) string {
	h := sha256.Sum256([]byte(strings.Join(parts, "\x00")))
	return hex.EncodeToString(h[:16])
}

// reconcileDelivery sends the notifications that pass the severity filter,
// oldest first, and records each one as it is sent (or left out). The first
// that cannot be delivered stops the rest: they wait, in order, for the
// next try.
func (r *AlertReconciler) reconcileDelivery(ctx context.Context, obj *v1.Alert, s *notify.Sender, pending []pendingNotification) error {
	if len(pending) == 0 {
		return nil
	}
	slices.SortStableFunc(pending, func(a, b pendingNotification) int { return a.at.Compare(b.at) })
	timeout := r.SendTimeout
	if timeout <= 0 {
		timeout = DefaultAlertSendTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	logger := log.FromContext(ctx)
	for i, p := range pending {
		n := p.n
		if !severityPasses(obj.Spec.Severity, n.Severity) {
			p.record(&obj.Status)
			continue
		}
		if err := s.Send(ctx, n); err != nil {
			return waiting(v1.DeliveryFailedReason, fmt.Errorf("%s about %s (%d more waiting): %w", n.Reason, objectName(n.Object), len(pending)-i-1, err))
		}
		p.record(&obj.Status)
		obj.Status.LastSent = &v1.AlertDelivery{
			Time: metav1.Now(), ID: n.ID, Severity: string(n.Severity), Reason: n.Reason, Object: objectName(n.Object),
		}
		logger.V(1).Info("notification sent", "id", n.ID, "reason", n.Reason, "object", objectName(n.Object), "severity", n.Severity)
	}
	return nil
}

// severityPasses applies an Alert's severity filter.
func severityPasses(filter v1.AlertSeverity, s notify.Severity) bool {
	return filter != v1.AlertSeverityError || s != notify.SeverityInfo
}

// objectName is "<Kind> [<namespace>/]<name>".
func objectName(o notify.ObjectRef) string {
	if o.Namespace == "" {
		return o.Kind + " " + o.Name
	}
	return o.Kind + " " + o.Namespace + "/" + o.Name
}

// redactStep removes the Secret's values from err's message, keeping its
// reason and whether it stalls.
func redactStep(err error, data map[string][]byte) error {
	if err == nil || len(data) == 0 {
		return err
	}
	var se *stepError
	if errors.As(err, &se) {
		return &stepError{reason: se.reason, stalling: se.stalling, err: errors.New(redact(se.err.Error(), data))}
	}
	return redactErr(err, data)
}

func (r *AlertReconciler) retryInterval() time.Duration {
	if r.RetryInterval > 0 {
		return r.RetryInterval
	}
	return DefaultAlertRetryInterval
}

// finish summarizes Ready, sends an event when it changes and patches the
// status once. The patch is not optimistically locked: the status is this
// reconciler's alone, obj was read from the API server, and a conflict
// would lose the record of notifications already sent.
func (r *AlertReconciler) finish(ctx context.Context, base, obj *v1.Alert, err error) error {
	conds := &obj.Status.Conditions
	if obj.Spec.Suspend {
		apimeta.RemoveStatusCondition(conds, v1.ReconcilingCondition)
		apimeta.RemoveStatusCondition(conds, v1.StalledCondition)
		setCondition(conds, obj.Generation, v1.ReadyCondition, metav1.ConditionFalse, v1.SuspendedReason, "suspended: nothing is sent")
	} else {
		summarize(conds, obj.Generation, err, fmt.Sprintf("sending to the %s receiver in Secret %s", obj.Spec.Type, obj.Spec.SecretRef.Name))
	}
	obj.Status.ObservedGeneration = obj.Generation
	slices.SortFunc(obj.Status.PolicySets, func(a, b v1.AlertPolicySetState) int { return strings.Compare(a.Name, b.Name) })
	slices.SortFunc(obj.Status.Nodes, func(a, b v1.AlertDriftCursor) int { return strings.Compare(a.Node, b.Node) })
	r.eventOnChange(base, obj)
	if perr := r.Status().Patch(ctx, obj, client.MergeFrom(base)); perr != nil && !apierrors.IsNotFound(perr) {
		return errors.Join(err, fmt.Errorf("patch status: %w", perr))
	}
	return err
}

// eventOnChange records a Warning when Ready turns False or its message
// changes while False, and a Normal event when it turns True or the Alert
// is suspended.
func (r *AlertReconciler) eventOnChange(base, obj *v1.Alert) {
	if r.Recorder == nil {
		return
	}
	before := apimeta.FindStatusCondition(base.Status.Conditions, v1.ReadyCondition)
	now := apimeta.FindStatusCondition(obj.Status.Conditions, v1.ReadyCondition)
	if now == nil || (before != nil && before.Status == now.Status && (now.Status == metav1.ConditionTrue || before.Message == now.Message)) {
		return
	}
	typ := corev1.EventTypeWarning
	if now.Status == metav1.ConditionTrue || now.Reason == v1.SuspendedReason {
		typ = corev1.EventTypeNormal
	}
	r.Recorder.Eventf(obj, nil, typ, now.Reason, "Deliver", "%s", now.Message)
}
