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

package ui_test

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	v1 "github.com/palisade-dev/palisade/api/v1alpha1"
	"github.com/palisade-dev/palisade/internal/flows"
	"github.com/palisade-dev/palisade/internal/observer"
	"github.com/palisade-dev/palisade/internal/relay"
	"github.com/palisade-dev/palisade/internal/render"
	"github.com/palisade-dev/palisade/internal/testenv"
	"github.com/palisade-dev/palisade/internal/ui"
)

const (
	revision = "main@sha1:0123456789abcdef0123456789abcdef01234567"
	commit   = "0123456789abcdef0123456789abcdef01234567"
	repoURL  = "ssh://git@github.com/palisade-dev/policies.git" // an ssh URL: the link is https
)

// cluster is the test's API server with the objects the page shows, and
// the tokens of two ServiceAccounts: admin may list pods everywhere,
// viewer only in shop.
type cluster struct {
	c             client.Client
	admin, viewer string
}

func startCluster(t *testing.T) *cluster {
	t.Helper()
	_, c := testenv.Start(t, testenv.RepoPath(t, "config", "crd", "bases"))
	s := c.Scheme()
	if err := v1.AddToScheme(s); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	create := func(objs ...client.Object) {
		for _, o := range objs {
			if err := c.Create(ctx, o); err != nil {
				t.Fatalf("create %T %s: %v", o, o.GetName(), err)
			}
		}
	}
	meta := func(ns, name string) metav1.ObjectMeta { return metav1.ObjectMeta{Namespace: ns, Name: name} }
	pod := func(ns, name string, labels map[string]string) *corev1.Pod {
		return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: labels},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "example.com/c"}}}}
	}
	create(&corev1.Namespace{ObjectMeta: meta("", "shop")}, &corev1.Namespace{ObjectMeta: meta("", "other")},
		pod("shop", "frontend-7d9f8b6c5-x7k2p", map[string]string{"app": "frontend", "pod-template-hash": "7d9f8b6c5"}),
		pod("shop", "api-5c8b9d7f6-zq4wm", map[string]string{"app": "api", "pod-template-hash": "5c8b9d7f6"}),
		pod("other", "db-0", map[string]string{"app": "db"}),
		pod("other", "batch-29101-x8fkm", map[string]string{"app": "batch"}),
	)

	// The PolicySet shop/main, from a repository on GitHub, with a policy
	// in shop and one in other (which the viewer may not see).
	create(&v1.PolicyRepository{ObjectMeta: meta("shop", "policies"), Spec: v1.PolicyRepositorySpec{URL: repoURL, Interval: metav1.Duration{Duration: time.Minute}}})
	ps := &v1.PolicySet{ObjectMeta: meta("shop", "main"), Spec: v1.PolicySetSpec{SourceRef: v1.SourceReference{Name: "policies"}, Path: "./clusters/prod", Interval: metav1.Duration{Duration: time.Minute}}}
	create(ps)
	now := metav1.Now()
	ps.Status = v1.PolicySetStatus{LastAppliedRevision: revision, LastAttemptedRevision: revision,
		Conditions: []metav1.Condition{
			{Type: v1.ReadyCondition, Status: metav1.ConditionTrue, Reason: "Succeeded", Message: "applied revision " + revision, LastTransitionTime: now},
			{Type: v1.EnforcedCondition, Status: metav1.ConditionTrue, Reason: "Enforced", Message: "1/1 nodes enforce " + revision, LastTransitionTime: now},
			{Type: v1.DriftedCondition, Status: metav1.ConditionFalse, Reason: "NoDrift", Message: "no drift", LastTransitionTime: now},
		},
		Inventory: &v1.Inventory{Entries: []v1.InventoryEntry{
			{ID: "other_db_palisade.dev_NetworkPolicy", Version: "v1alpha1"},
			{ID: "shop_api_palisade.dev_NetworkPolicy", Version: "v1alpha1"},
		}},
		Enforcement: &v1.EnforcementSummary{Nodes: 1, Enforced: 1, Summary: "1/1"},
	}
	if err := c.Status().Update(ctx, ps); err != nil {
		t.Fatal(err)
	}
	np := func(ns, name, app, src string) *v1.NetworkPolicy {
		return &v1.NetworkPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Annotations: map[string]string{render.AnnotationSource: src}},
			Spec: v1.NetworkPolicySpec{EndpointSelector: metav1.LabelSelector{MatchLabels: map[string]string{"app": app}},
				RuleSet: v1.RuleSet{Ingress: []v1.IngressRule{{FromEndpoints: []metav1.LabelSelector{{MatchLabels: map[string]string{"app": "frontend"}}}}}}}}
	}
	create(np("shop", "api", "api", "shop/api.cue:3:1"), np("other", "db", "db", "other/db.cue:3:1"))

	// One node: it enforces the set and repaired a drift.
	ne := &v1.NodeEnforcement{ObjectMeta: meta("", "node-a"), Spec: v1.NodeEnforcementSpec{NodeName: "node-a"}}
	create(ne)
	ne.Status = v1.NodeEnforcementStatus{
		Conditions: []metav1.Condition{{Type: v1.ReadyCondition, Status: metav1.ConditionTrue, Reason: "Enforced", Message: "ok", LastTransitionTime: now},
			{Type: v1.EnforcedCondition, Status: metav1.ConditionTrue, Reason: "Enforced", Message: "ok", LastTransitionTime: now},
			{Type: v1.DriftedCondition, Status: metav1.ConditionFalse, Reason: "Repaired", Message: "repaired", LastTransitionTime: now}},
		PolicySets:       []v1.PolicySetEnforcement{{Namespace: "shop", Name: "main", Revision: revision, Policies: 2, Generation: 7, Enforced: 2}},
		LastVerifiedTime: &now, DriftRepairs: 1,
		Drifts: []v1.KernelDrift{{Time: now, Kind: v1.KernelDriftMapEntry, What: "policy map of shop/api-5c8b9d7f6-zq4wm: entry 8443/TCP changed", Repaired: true},
			{Time: now, Kind: v1.KernelDriftMapEntry, What: "policy map of other/db-0: entry 5432/TCP deleted", Repaired: true}},
	}
	if err := c.Status().Update(ctx, ne); err != nil {
		t.Fatal(err)
	}

	// admin may list pods everywhere, viewer only in shop.
	create(&corev1.ServiceAccount{ObjectMeta: meta("shop", "admin")}, &corev1.ServiceAccount{ObjectMeta: meta("shop", "viewer")},
		&rbacv1.ClusterRole{ObjectMeta: meta("", "pod-lister"), Rules: []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: []string{"list"}}}},
		&rbacv1.ClusterRoleBinding{ObjectMeta: meta("", "admin-lists-pods"), RoleRef: rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "pod-lister"},
			Subjects: []rbacv1.Subject{{Kind: "ServiceAccount", Namespace: "shop", Name: "admin"}}},
		&rbacv1.RoleBinding{ObjectMeta: meta("shop", "viewer-lists-pods"), RoleRef: rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "pod-lister"},
			Subjects: []rbacv1.Subject{{Kind: "ServiceAccount", Namespace: "shop", Name: "viewer"}}},
	)
	token := func(name string) string {
		tr := &authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: ptr.To(int64(3600))}}
		if err := c.SubResource("token").Create(ctx, &corev1.ServiceAccount{ObjectMeta: meta("shop", name)}, tr); err != nil {
			t.Fatalf("token of %s: %v", name, err)
		}
		return tr.Status.Token
	}
	return &cluster{c: c, admin: token("admin"), viewer: token("viewer")}
}

var t0 = time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)

func pol(kind, ns, name, path, file string, line int) *flows.Policy {
	return &flows.Policy{Kind: kind, Namespace: ns, Name: name, Path: path, File: file, Line: line, Column: 4, Revision: revision, PolicySet: "shop/main"}
}

func ep(ns, pod, ip string, port uint16, labels map[string]string) flows.Endpoint {
	return flows.Endpoint{Namespace: ns, Pod: pod, IP: ip, Port: port, Labels: labels}
}

var (
	frontend = func(port uint16) flows.Endpoint {
		return ep("shop", "frontend-7d9f8b6c5-x7k2p", "10.0.1.10", port, map[string]string{"app": "frontend", "pod-template-hash": "7d9f8b6c5"})
	}
	api = func(port uint16) flows.Endpoint {
		return ep("shop", "api-5c8b9d7f6-zq4wm", "10.0.1.20", port, map[string]string{"app": "api", "pod-template-hash": "5c8b9d7f6"})
	}
	db = func(port uint16) flows.Endpoint {
		return ep("other", "db-0", "10.0.2.30", port, map[string]string{"app": "db"})
	}
	batch = func(port uint16) flows.Endpoint {
		return ep("other", "batch-29101-x8fkm", "10.0.2.40", port, map[string]string{"app": "batch"})
	}
)

// knownFlows are the verdicts a node's observer holds: what the agent
// resolves from the datapath's events, in the form docs/flows.md gives.
func knownFlows() []flows.Flow {
	at := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }
	return []flows.Flow{
		{Time: at(1), Node: "node-a", Protocol: "TCP", Direction: "ingress", Verdict: flows.Forwarded, Source: frontend(40001), Destination: api(8080),
			Policy: pol("NetworkPolicy", "shop", "api", "spec.ingress[0]", "shop/api.cue", 7)},
		{Time: at(2), Node: "node-a", Protocol: "TCP", Direction: "ingress", Verdict: flows.Dropped, DropReason: flows.ExplicitDeny, Source: frontend(40002), Destination: api(8443),
			Policy: pol("NetworkPolicy", "shop", "api", "spec.ingressDeny[0]", "shop/api.cue", 12)},
		{Time: at(3), Node: "node-a", Protocol: "TCP", Direction: "ingress", Verdict: flows.Dropped, DropReason: flows.DefaultDeny, Source: api(40003), Destination: db(5432),
			Isolating: []flows.Policy{*pol("NetworkPolicy", "other", "db", "", "other/db.cue", 3)}},
		{Time: at(4), Node: "node-a", Protocol: "TCP", Direction: "ingress", Verdict: flows.Forwarded, Source: batch(40004), Destination: db(5432),
			Policy: pol("NetworkPolicy", "other", "db", "spec.ingress[0]", "other/db.cue", 6)},
		{Time: at(5), Node: "node-a", Protocol: "TCP", Direction: "egress", Verdict: flows.Audit, DropReason: flows.ExplicitDeny, Source: frontend(40005),
			Destination: flows.Endpoint{IP: "203.0.113.9", Port: 443, Entity: "world"}, Policy: pol("NetworkPolicy", "shop", "frontend-audit", "spec.egressDeny[0]", "shop/audit.cue", 9)},
	}
}

// startRelay runs the relay with the web view as the manager does, with
// one node whose observer holds knownFlows.
func startRelay(t *testing.T, cl *cluster) (string, *observer.Buffer) {
	t.Helper()
	b := observer.NewBuffer(1024)
	for _, f := range knownFlows() {
		b.Add(f)
	}
	r := relay.New()
	r.Auth = &ui.TokenAuth{Client: cl.c}
	r.UI = (&ui.Server{Reader: cl.c, Auth: r.Auth}).Handler()
	r.SetNode("node-a", agent(t, b))
	t.Cleanup(r.Close)
	return serveRelay(t, r), b
}

// get requests the relay with a token.
func get(t *testing.T, url, token string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	if token != "" {
		req.Header.Set(relay.TokenHeader, token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// flowsOf reads the held flows as a user sees them.
func flowsOf(t *testing.T, base, token string) []flows.Flow {
	t.Helper()
	code, body := get(t, base+relay.Path+"?last=100", token)
	if code != http.StatusOK {
		t.Fatalf("GET %s: %d %s", relay.Path, code, body)
	}
	var out []flows.Flow
	sc := bufio.NewScanner(strings.NewReader(body))
	for sc.Scan() {
		var m relay.Message
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatal(err)
		}
		if m.Flow != nil {
			out = append(out, *m.Flow)
		}
	}
	return out
}

// login opens the page, which asks for a token, and gives it one as a
// user does in the page's form.
func login(t *testing.T, ctx context.Context, base, token string) {
	t.Helper()
	if err := chromedp.Do(ctx, chromedp.Navigate(base+"/"), chromedp.WaitVisible(chromedp.CSS("#auth-form"))); err != nil {
		t.Fatalf("the page did not ask for a token: %v", err)
	}
	msg := text(t, ctx, "#auth-message")
	if !strings.Contains(msg, relay.TokenHeader) {
		t.Errorf("the 401 message %q does not say what to send", msg)
	}
	do(t, ctx, chromedp.SendKeys(chromedp.CSS("#auth-token"), token), chromedp.Click(chromedp.CSS(`#auth-form button[type="submit"]`)))
}

func TestWebViewInBrowser(t *testing.T) {
	chromium(t)
	cl := startCluster(t)
	base, buf := startRelay(t, cl)
	dir := artifacts(t)

	t.Run("unauthenticated", func(t *testing.T) {
		for _, p := range []string{relay.Path, "/v1/policysets", "/v1/whoami"} {
			code, body := get(t, base+p, "")
			if code != http.StatusUnauthorized || !strings.Contains(body, relay.TokenHeader) || !strings.Contains(body, "docs/ui.md") {
				t.Errorf("GET %s without a token: %d %q, want 401 naming %s and docs/ui.md", p, code, body, relay.TokenHeader)
			}
		}
		if code, body := get(t, base+"/v1/whoami", "not-a-token"); code != http.StatusUnauthorized {
			t.Errorf("GET /v1/whoami with a bad token: %d %q, want 401", code, body)
		}
	})

	t.Run("admin", func(t *testing.T) {
		ctx := browser(t)
		login(t, ctx, base, cl.admin)
		// Every workload and entity of the known flows, grouped by
		// namespace, and an edge per (source, destination, port).
		waitJS(t, ctx, "the map's edges", `document.body.dataset.edges === "5"`)
		for _, n := range []struct{ id, group string }{{"shop/frontend", "shop"}, {"shop/api", "shop"}, {"other/db", "other"}, {"other/batch", "other"}, {"world", " entities"}} {
			waitJS(t, ctx, "node "+n.id, `document.querySelector('g.node[data-id=`+jsString(n.id)+`][data-group=`+jsString(n.group)+`]') !== null`)
		}
		edges := map[string]string{
			"shop/frontend→shop/api 8080/TCP": "forwarded",
			"shop/frontend→shop/api 8443/TCP": "dropped",
			"shop/api→other/db 5432/TCP":      "dropped",
			"other/batch→other/db 5432/TCP":   "forwarded",
			"shop/frontend→world 443/TCP":     "audit",
		}
		for k, verdict := range edges {
			waitJS(t, ctx, "edge "+k+" "+verdict, `document.querySelector('path.e[data-k=`+jsString(k)+`]')?.classList.contains(`+jsString(verdict)+`)`)
		}
		// A small map is drawn larger than its natural size to fill the
		// view, and "fit" brings it back after a zoom.
		waitJS(t, ctx, "the map scaled up to fill the view", `parseFloat(document.getElementById('map').dataset.scale) > 1`)
		fitted := eval[string](t, ctx, `document.getElementById('map').dataset.scale`)
		do(t, ctx, chromedp.Click(chromedp.CSS(`button[data-zoom="in"]`)))
		waitJS(t, ctx, "zoomed in", `document.getElementById('map').dataset.scale !== `+jsString(fitted))
		do(t, ctx, chromedp.Click(chromedp.CSS(`button[data-zoom="fit"]`)))
		waitJS(t, ctx, "fitted again", `document.getElementById('map').dataset.scale === `+jsString(fitted))
		saveScreenshot(t, ctx, dir, "map.png", "#map")

		// A dropped flow's edge names its policy and file:line, with a
		// link to the file at the revision on GitHub.
		clickEdge(t, ctx, `path.e[data-k="shop/frontend→shop/api 8443/TCP"]`)
		waitJS(t, ctx, "the edge panel", `document.getElementById('edge-title')?.textContent === "shop/frontend → shop/api 8443/TCP"`)
		// The selected edge stays marked, with its two ends.
		waitJS(t, ctx, "the selected edge's ends marked", `[...document.querySelectorAll('g.node.hl')].map(n => n.dataset.id).sort().join(',') === "shop/api,shop/frontend"`)
		panel := text(t, ctx, "#edge-panel")
		href := eval[string](t, ctx, `document.querySelector('#edge-panel a.src')?.href || ''`)
		for _, want := range []string{"dropped", "explicit-deny", "NetworkPolicy shop/api spec.ingressDeny[0]", "shop/api.cue:12", "main@sha1:0123456789ab"} {
			if !strings.Contains(panel, want) {
				t.Errorf("the dropped edge's panel lacks %q:\n%s", want, panel)
			}
		}
		if want := "https://github.com/palisade-dev/policies/blob/" + commit + "/clusters/prod/shop/api.cue#L12"; href != want {
			t.Errorf("the rule's link is %q, want %q", href, want)
		}
		saveScreenshot(t, ctx, dir, "edge.png", "body")

		// Live: a new flow appears without a reload.
		buf.Add(flows.Flow{Time: t0.Add(time.Minute), Node: "node-a", Protocol: "TCP", Direction: "ingress", Verdict: flows.Dropped, DropReason: flows.DefaultDeny,
			Source: frontend(40100), Destination: api(9090), Isolating: []flows.Policy{*pol("NetworkPolicy", "shop", "api", "", "shop/api.cue", 3)}})
		waitJS(t, ctx, "the live flow's edge", `document.querySelector('path.e[data-k="shop/frontend→shop/api 9090/TCP"]')?.classList.contains('dropped')`)

		// The policy view: revision, conditions, the node, drift, and per
		// policy the workloads it selects and the edges it decides.
		do(t, ctx, chromedp.Click(chromedp.CSS(`#tabs button[data-tab="policies"]`)))
		waitJS(t, ctx, "the set list", `document.querySelector('#set-list a[data-set="shop/main"]') !== null`)
		do(t, ctx, chromedp.Click(chromedp.CSS(`#set-list a[data-set="shop/main"]`)))
		waitJS(t, ctx, "the policy view", `document.body.dataset.set === "shop/main"`)
		view := text(t, ctx, "#set-view")
		for _, want := range []string{revision, "Ready", "Enforced", "Drifted", "node-a", "policy map of shop/api-5c8b9d7f6-zq4wm", "policy map of other/db-0", "NetworkPolicy/shop/api", "shop/api.cue:3",
			"NetworkPolicy/other/db", "other/db", "shop/frontend → shop/api 8443/TCP denies", "shop/frontend → shop/api 8080/TCP allows", "shop/api → other/db 5432/TCP denies by default"} {
			if !strings.Contains(view, want) {
				t.Errorf("the policy view lacks %q:\n%s", want, view)
			}
		}
		saveScreenshot(t, ctx, dir, "policies.png", "body")

		// The impact preview of a plan.
		planFile := filepath.Join(t.TempDir(), "plan.json")
		if err := os.WriteFile(planFile, []byte(planJSON), 0o644); err != nil {
			t.Fatal(err)
		}
		do(t, ctx, chromedp.Click(chromedp.CSS(`#tabs button[data-tab="impact"]`)),
			chromedp.SetUploadFiles(chromedp.CSS("#plan-file"), []string{planFile}))
		waitJS(t, ctx, "the plan's edges", `document.body.dataset.plan === "2"`)
		waitJS(t, ctx, "a broken edge", `document.querySelector('#impact path.e.broken[data-k="plan:shop/frontend→shop/api 8080/TCP"]') !== null`)
		waitJS(t, ctx, "an opened edge", `document.querySelector('#impact path.e.opened[data-k="plan:shop/api→other/db 5432/TCP"]') !== null`)
		clickEdge(t, ctx, `#impact path.e.broken`)
		waitJS(t, ctx, "the change's rule", `document.getElementById('impact-panel').textContent.includes('shop/default-deny.cue:10:3')`)
		saveScreenshot(t, ctx, dir, "impact.png", "body")
	})

	t.Run("viewer of shop only", func(t *testing.T) {
		// At the HTTP API: nothing of other but an anonymous end.
		fs := flowsOf(t, base, cl.viewer)
		raw, _ := json.Marshal(fs)
		if strings.Contains(string(raw), `"other"`) || strings.Contains(string(raw), "other/") || strings.Contains(string(raw), "10.0.2.") {
			t.Errorf("the viewer of shop sees something of other:\n%s", raw)
		}
		if len(fs) != 5 {
			t.Errorf("the viewer sees %d flows, want 5 (all but other/batch → other/db, and the live one):\n%s", len(fs), raw)
		}
		var toDB *flows.Flow
		for i := range fs {
			if fs[i].Destination.Port == 5432 {
				toDB = &fs[i]
			}
		}
		if toDB == nil || toDB.Destination.Entity != relay.Hidden || toDB.Source.Pod != "api-5c8b9d7f6-zq4wm" ||
			len(toDB.Isolating) != 1 || toDB.Isolating[0].Name != relay.Hidden {
			t.Errorf("shop/api → other/db as the viewer sees it: %+v, want the destination and its policy hidden", toDB)
		}
		if code, body := get(t, base+"/v1/policysets", cl.viewer); code != 200 || !strings.Contains(body, `"shop"`) {
			t.Errorf("GET /v1/policysets: %d %s", code, body)
		}
		code, body := get(t, base+"/v1/policysets/shop/main", cl.viewer)
		var v ui.PolicySetView
		if err := json.Unmarshal([]byte(body), &v); code != 200 || err != nil {
			t.Fatalf("GET /v1/policysets/shop/main: %d %s", code, body)
		}
		// The node's drift in other is there, its text hidden.
		if v.HiddenPolicies != 1 || len(v.Policies) != 1 || v.Policies[0].Name != "api" || strings.Contains(body, "other") || len(v.Nodes) != 1 || len(v.Nodes[0].Drifts) != 2 {
			t.Errorf("the viewer's policy view of shop/main: %s", body)
		}
		code, body = get(t, base+"/v1/whoami", cl.viewer)
		if code != 200 || !strings.Contains(body, "system:serviceaccount:shop:viewer") {
			t.Errorf("GET /v1/whoami as the viewer: %d %s", code, body)
		}

		// In the page: the map has no node of other.
		ctx := browser(t)
		login(t, ctx, base, cl.viewer)
		waitJS(t, ctx, "the viewer's map", `document.body.dataset.edges === "5"`) // 4 held and the live one
		waitJS(t, ctx, "the hidden end", `document.querySelector('g.node[data-id="<hidden>"]') !== null`)
		others := eval[int](t, ctx, `document.querySelectorAll('g.node[data-group="other"]').length`)
		page := eval[string](t, ctx, `document.getElementById('map').textContent + JSON.stringify([...window.palisade.model.edges.values()])`)
		if others != 0 || strings.Contains(page, "other") || strings.Contains(page, "10.0.2.") {
			t.Errorf("the viewer's page shows %d nodes of other; its map and model:\n%s", others, page)
		}
		saveScreenshot(t, ctx, dir, "map-viewer.png", "#map")
	})
}

// clickEdge clicks an edge. A mouse click at the centre of a curve's box
// misses the curve, so the click is dispatched on the path itself.
func clickEdge(t *testing.T, ctx context.Context, sel string) {
	t.Helper()
	if !eval[bool](t, ctx, `(() => { const e = document.querySelector(`+jsString(sel)+`); if (!e) return false; e.dispatchEvent(new MouseEvent('click', {bubbles: true})); return true })()`) {
		t.Fatalf("no edge %s", sel)
	}
}

func scheme(t testing.TB) *runtime.Scheme {
	s := testenv.Scheme()
	if err := v1.AddToScheme(s); err != nil {
		t.Fatal(err)
	}
	return s
}

// TestWorkloadNamesAgree checks that the page names workloads as the
// policy view (and palisadectl plan) does.
func TestWorkloadNamesAgree(t *testing.T) {
	cases := []struct {
		pod    string
		labels map[string]string
	}{
		{"api-5c8b9d7f6-x7k2p", nil}, {"api-5c8b9d7f6-x7k2p", map[string]string{"pod-template-hash": "5c8b9d7f6"}},
		{"db-0", nil}, {"batch-29101-x8fkm", nil}, {"frontend", nil}, {"my-app-v2", nil}, {"web-abcde", nil}, {"web-bcdfg", nil},
	}
	ctx := browser(t)
	r := relay.New()
	r.UI = (&ui.Server{Reader: fake.NewClientBuilder().WithScheme(scheme(t)).Build()}).Handler()
	base := serveRelay(t, r)
	do(t, ctx, chromedp.Navigate(base+"/ui/"))
	waitJS(t, ctx, "the page's module", `window.palisade !== undefined`)
	for _, c := range cases {
		lb, _ := json.Marshal(c.labels)
		got := eval[string](t, ctx, `window.palisade.podWorkload(`+jsString(c.pod)+`, `+string(lb)+`)`)
		if want := strings.TrimPrefix(ui.Workload("ns", c.pod, c.labels), "ns/"); got != want {
			t.Errorf("pod %s %v: the page says %q, Go %q", c.pod, c.labels, got, want)
		}
	}
}

// planJSON is a plan in the form of palisadectl plan -o json
// (docs/flows.md): one allowed flow breaks, one dropped flow opens.
const planJSON = `{"base": "origin/main", "flows": 12, "replayed": 10, "skipped": 2, "changed": 3, "broken": 2,
 "pairs": [
  {"source": "shop/frontend", "destination": "shop/api", "flows": 2, "broken": 2, "changes": [
    {"port": 8080, "protocol": "TCP", "before": "forwarded", "after": "dropped", "flows": 2, "lines": [3, 6],
     "decidedBy": {"direction": "ingress", "endpoint": "shop/api-5c8b9d7f6-zq4wm", "reason": "default-deny",
       "policies": [{"kind": "NetworkPolicy", "namespace": "shop", "name": "default-deny", "file": "shop/default-deny.cue", "line": 10, "column": 3}]},
     "wasDecidedBy": {"direction": "ingress", "reason": "allowed", "rule": {"kind": "NetworkPolicy", "namespace": "shop", "name": "api", "path": "spec.ingress[0]", "file": "shop/api.cue", "line": 7, "column": 4}}}]},
  {"source": "shop/api", "destination": "other/db", "flows": 1, "broken": 0, "changes": [
    {"port": 5432, "protocol": "TCP", "before": "dropped", "after": "forwarded", "flows": 1, "lines": [9],
     "decidedBy": {"direction": "ingress", "reason": "allowed", "rule": {"kind": "NetworkPolicy", "namespace": "other", "name": "db", "path": "spec.ingress[1]", "file": "other/db.cue", "line": 8, "column": 4}}}]}
 ]}`
