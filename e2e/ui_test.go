//go:build e2e

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

package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/palisade-dev/palisade/internal/devenv"
	"github.com/palisade-dev/palisade/internal/flows"
	"github.com/palisade-dev/palisade/internal/netlab"
	"github.com/palisade-dev/palisade/internal/relay"
)

// TestUIStory: the web view of the e2e system's real flows (the kernel's
// verdicts, resolved by the agent's observer, fanned in by the manager's
// relay, read through the API server's service proxy by the real
// palisadectl ui), in headless Chromium. An admin's map shows the
// client's three kinds of verdict with their policies and file:line; a
// user who may list pods only in another namespace sees nothing of shop.
func TestUIStory(t *testing.T) {
	if err := netlab.Available(); err != nil {
		if os.Geteuid() == 0 {
			t.Fatal(err)
		}
		t.Skip(err)
	}
	chrome := chromiumPath(t)
	s := start(t)
	s.applySources()
	s.waitEnforced(s.waitApplied("the seed commit", ""))
	s.relayService()
	// The flows story's policies: 8081 allowed and audited, 8082 default
	// denied, 8083 denied by a rule.
	s.repo.WriteFile("shop/server.cue", strings.ReplaceAll(s.read("shop/server.cue"), "8080", "8081"))
	for _, f := range []string{"deny.cue", "audit.cue"} {
		b, err := os.ReadFile(filepath.Join(s.root, "e2e", "testdata", "flows", f))
		if err != nil {
			t.Fatal(err)
		}
		s.repo.WriteFile("shop/"+f, string(b))
	}
	commit, err := s.repo.CommitAll("8081, an explicit deny and an audit-mode policy")
	if err != nil {
		t.Fatal(err)
	}
	rev := s.waitApplied("the flows commit", commit)
	s.waitEnforced(rev)
	s.probe(8082, false)
	s.probe(8083, false)
	s.probe(8081, true)
	s.uiStory(chrome, rev)
}

// uiStory checks the web view of the flows of client → server 8081
// (audit), 8082 (default deny) and 8083 (explicit deny) at rev.
func (s *system) uiStory(chrome, rev string) {
	s.t.Helper()
	admin, viewer := s.uiUsers()
	dir := os.Getenv("PALISADE_ARTIFACTS")
	if dir == "" {
		dir = s.t.TempDir()
	}
	os.MkdirAll(dir, 0o755)
	s.t.Logf("artifacts (screenshots) in %s", dir)

	// The admin's map, through palisadectl ui and the API server.
	url := s.palisadectlUI(admin)
	ctx := chromeTab(s.t, chrome)
	if err := chromedp.Do(ctx, chromedp.Navigate(url)); err != nil {
		s.t.Fatal(err)
	}
	deny := s.read("shop/deny.cue")
	line := s.lineOf(deny, "ingressDeny:")
	edges := map[string]string{
		"shop/client→shop/server 8081/TCP": "audit",
		"shop/client→shop/server 8082/TCP": "dropped",
		"shop/client→shop/server 8083/TCP": "dropped",
	}
	for k, v := range edges {
		pageWait(s.t, ctx, "edge "+k+" "+v, `document.querySelector('path.e[data-k=`+fmt.Sprintf("%q", k)+`]')?.classList.contains(`+fmt.Sprintf("%q", v)+`)`)
	}
	pageWait(s.t, ctx, "the workloads", `document.querySelector('g.node[data-id="shop/client"][data-group="shop"]') !== null && document.querySelector('g.node[data-id="shop/server"]') !== null`)
	shot(s.t, ctx, dir, "e2e-map.png", "#map")
	pageEval[bool](s.t, ctx, `(() => { document.querySelector('path.e[data-k="shop/client→shop/server 8083/TCP"]').dispatchEvent(new MouseEvent('click', {bubbles: true})); return true })()`)
	pageWait(s.t, ctx, "the dropped edge's panel", `document.getElementById('edge-title')?.textContent === "shop/client → shop/server 8083/TCP"`)
	panel := pageEval[string](s.t, ctx, `document.getElementById('edge-panel').innerText`)
	for _, want := range []string{"explicit-deny", "NetworkPolicy shop/deny-admin spec.ingressDeny[0]", fmt.Sprintf("shop/deny.cue:%d", line), rev[:len(rev)-28]} {
		if !strings.Contains(panel, want) {
			s.t.Errorf("the dropped edge's panel lacks %q:\n%s", want, panel)
		}
	}
	shot(s.t, ctx, dir, "e2e-edge.png", "body")
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS(`#tabs button[data-tab="policies"]`)), chromedp.Click(chromedp.CSS(`#set-list a[data-set="shop/shop"]`))); err != nil {
		s.t.Fatal(err)
	}
	pageWait(s.t, ctx, "the policy view", `document.body.dataset.set === "shop/shop"`)
	view := pageEval[string](s.t, ctx, `document.getElementById('set-view').innerText`)
	for _, want := range []string{rev, nodeName, "NetworkPolicy/shop/deny-admin", "shop/server", "shop/client → shop/server 8083/TCP denies"} {
		if !strings.Contains(view, want) {
			s.t.Errorf("the policy view lacks %q:\n%s", want, view)
		}
	}
	shot(s.t, ctx, dir, "e2e-policies.png", "body")
	s.uiImpact(chrome, url, admin, dir)

	// A user who may list pods in other only: nothing of shop, at the
	// HTTP API (through palisadectl ui) and in the page.
	vurl := s.palisadectlUI(viewer)
	jar, _ := cookiejar.New(nil)
	hc := &http.Client{Jar: jar}
	resp, err := hc.Get(vurl)
	if err != nil {
		s.t.Fatal(err)
	}
	resp.Body.Close()
	resp, err = hc.Get(strings.Split(vurl, "/?")[0] + relay.Path + "?last=1000")
	if err != nil {
		s.t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		s.t.Fatalf("the viewer's flows: %s %s", resp.Status, body)
	}
	sc := bufio.NewScanner(strings.NewReader(string(body)))
	for sc.Scan() {
		var m relay.Message
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			s.t.Fatal(err)
		}
		if m.Flow != nil {
			s.t.Errorf("a user of other sees a flow: %s", sc.Bytes())
		}
	}
	vctx := chromeTab(s.t, chrome)
	if err := chromedp.Do(vctx, chromedp.Navigate(vurl)); err != nil {
		s.t.Fatal(err)
	}
	pageWait(s.t, vctx, "the viewer's page", `document.getElementById('status').textContent.startsWith('live') && document.getElementById('user').textContent.includes('other:viewer')`)
	// A new drop reaches the admin's page; the viewer's, open meanwhile,
	// has had every chance to show it too.
	seen := pageEval[int](s.t, ctx, `window.palisade.model.flows`)
	s.probe(8082, false)
	pageWait(s.t, ctx, "the admin's page after a new drop", fmt.Sprintf(`window.palisade.model.flows > %d`, seen))
	if n := pageEval[int](s.t, vctx, `window.palisade.model.nodes.size + window.palisade.model.flows`); n != 0 {
		s.t.Errorf("a user of other sees %d nodes and flows of shop: %s", n, pageEval[string](s.t, vctx, `document.getElementById('map').textContent`))
	}
	if sets := pageEval[int](s.t, vctx, `document.querySelectorAll('#set-list a').length`); sets != 0 {
		s.t.Errorf("a user of other sees %d PolicySets", sets)
	}
	shot(s.t, vctx, dir, "e2e-map-viewer.png", "body")
}

// uiImpact records the flows the admin sees (through palisadectl ui's
// address url), plans a change with the real palisadectl plan (the
// server's port back to 8080, so the audited 8081 calls break), and
// opens palisadectl ui --plan on it: the impact preview shows the edge
// that breaks.
func (s *system) uiImpact(chrome, url, admin, dir string) {
	jar, _ := cookiejar.New(nil)
	hc := &http.Client{Jar: jar}
	resp, err := hc.Get(url)
	if err != nil {
		s.t.Fatal(err)
	}
	resp.Body.Close()
	resp, err = hc.Get(strings.Split(url, "/?")[0] + relay.Path + "?last=1000")
	if err != nil {
		s.t.Fatal(err)
	}
	var recorded []flows.Flow
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		var m relay.Message
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			s.t.Fatal(err)
		}
		if m.Flow != nil {
			recorded = append(recorded, *m.Flow)
		}
	}
	resp.Body.Close()
	flowsFile := filepath.Join(s.dir, "ui-flows.jsonl")
	f, err := os.Create(flowsFile)
	if err != nil {
		s.t.Fatal(err)
	}
	flows.Write(f, recorded...)
	f.Close()

	work := filepath.Join(s.dir, "ui-plan-policies")
	err = filepath.WalkDir(s.repo.Dir, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(s.repo.Dir, p)
		if d.IsDir() {
			if d.Name() == ".git" {
				return filepath.SkipDir
			}
			return os.MkdirAll(filepath.Join(work, rel), 0o755)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if rel == filepath.Join("shop", "server.cue") {
			b = []byte(strings.ReplaceAll(string(b), "8081", "8080"))
		}
		return os.WriteFile(filepath.Join(work, rel), b, 0o644)
	})
	if err != nil {
		s.t.Fatal(err)
	}
	plan := exec.Command(filepath.Join(s.bin, "palisadectl"), "plan", "--flows", flowsFile, "-o", "json", work)
	var errOut strings.Builder
	plan.Stderr = &errOut
	out, err := plan.Output()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 {
		s.t.Fatalf("palisadectl plan: %v (want exit 1: allowed flows break): %s%s", err, out, errOut.String())
	}
	planFile := filepath.Join(s.dir, "ui-plan.json")
	if err := os.WriteFile(planFile, out, 0o644); err != nil {
		s.t.Fatal(err)
	}
	s.t.Logf("palisadectl plan -o json over %d recorded flows:\n%s", len(recorded), out)

	ctx := chromeTab(s.t, chrome)
	if err := chromedp.Do(ctx, chromedp.Navigate(s.palisadectlUI(admin, "--plan", planFile))); err != nil {
		s.t.Fatal(err)
	}
	pageWait(s.t, ctx, "the impact preview of the plan", `!document.getElementById('tab-impact').hidden && document.querySelector('#impact path.e.broken[data-k="plan:shop/client→shop/server 8081/TCP"]') !== null`)
	pageEval[bool](s.t, ctx, `(() => { document.querySelector('#impact path.e.broken').dispatchEvent(new MouseEvent('click', {bubbles: true})); return true })()`)
	pageWait(s.t, ctx, "the broken edge's rule", `document.getElementById('impact-panel').textContent.includes('shop/server.cue:')`)
	shot(s.t, ctx, dir, "e2e-impact.png", "body")
}

// uiUsers makes two ServiceAccounts that may reach the relay: admin may
// list pods everywhere, viewer only in other; it returns a kubeconfig
// with each one's token.
func (s *system) uiUsers() (admin, viewer string) {
	ctx := context.Background()
	create := func(o client.Object) {
		if err := s.c.Create(ctx, o); err != nil && !apierrors.IsAlreadyExists(err) {
			s.t.Fatal(err)
		}
	}
	meta := func(ns, name string) metav1.ObjectMeta { return metav1.ObjectMeta{Namespace: ns, Name: name} }
	ref := func(kind, name string) rbacv1.RoleRef {
		return rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: kind, Name: name}
	}
	sa := func(ns, name string) []rbacv1.Subject {
		return []rbacv1.Subject{{Kind: "ServiceAccount", Namespace: ns, Name: name}}
	}
	create(&corev1.Namespace{ObjectMeta: meta("", "other")})
	create(&corev1.ServiceAccount{ObjectMeta: meta("shop", "ui-admin")})
	create(&corev1.ServiceAccount{ObjectMeta: meta("other", "viewer")})
	create(&rbacv1.ClusterRole{ObjectMeta: meta("", "e2e-pod-lister"), Rules: []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: []string{"list"}}}})
	// config/rbac/flows_viewer_role.yaml, as kustomize names it.
	create(&rbacv1.Role{ObjectMeta: meta("palisade-system", "palisade-flows-viewer"), Rules: []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"services/proxy"},
		ResourceNames: []string{"http:palisade-relay:flows", "palisade-relay"}, Verbs: []string{"get"}}}})
	create(&rbacv1.ClusterRoleBinding{ObjectMeta: meta("", "e2e-ui-admin"), RoleRef: ref("ClusterRole", "e2e-pod-lister"), Subjects: sa("shop", "ui-admin")})
	create(&rbacv1.RoleBinding{ObjectMeta: meta("other", "viewer"), RoleRef: ref("ClusterRole", "e2e-pod-lister"), Subjects: sa("other", "viewer")})
	create(&rbacv1.RoleBinding{ObjectMeta: meta("palisade-system", "ui-flows"), RoleRef: ref("Role", "palisade-flows-viewer"),
		Subjects: append(sa("shop", "ui-admin"), sa("other", "viewer")...)})
	return s.tokenKubeconfig("shop", "ui-admin"), s.tokenKubeconfig("other", "viewer")
}

// tokenKubeconfig writes a kubeconfig of the e2e API server with a token
// of ServiceAccount ns/name: palisadectl sends it to the relay, which
// reviews it (a client certificate, as the admin kubeconfig has, it
// cannot).
func (s *system) tokenKubeconfig(ns, name string) string {
	tr := &authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: ptr.To(int64(3600))}}
	if err := s.c.SubResource("token").Create(context.Background(), &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}, tr); err != nil {
		s.t.Fatalf("token of %s/%s: %v", ns, name, err)
	}
	cfg := s.cp.Config
	kc := clientcmdapi.NewConfig()
	kc.Clusters["e2e"] = &clientcmdapi.Cluster{Server: cfg.Host, CertificateAuthorityData: cfg.CAData}
	kc.AuthInfos[name] = &clientcmdapi.AuthInfo{Token: tr.Status.Token}
	kc.Contexts["e2e"] = &clientcmdapi.Context{Cluster: "e2e", AuthInfo: name}
	kc.CurrentContext = "e2e"
	path := filepath.Join(s.dir, "kubeconfig-"+ns+"-"+name)
	if err := clientcmd.WriteToFile(*kc, path); err != nil {
		s.t.Fatal(err)
	}
	return path
}

// palisadectlUI runs the real palisadectl ui with kubeconfig (and args)
// and returns the address it prints.
func (s *system) palisadectlUI(kubeconfig string, args ...string) string {
	cmd := exec.Command(filepath.Join(s.bin, "palisadectl"), append([]string{"ui", "--kubeconfig", kubeconfig}, args...)...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		s.t.Fatal(err)
	}
	var errOut strings.Builder
	cmd.Stderr = &errOut
	if err := cmd.Start(); err != nil {
		s.t.Fatal(err)
	}
	s.t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		s.t.Fatalf("palisadectl ui: %v: %s", err, errOut.String())
	}
	url, ok := strings.CutPrefix(strings.TrimSpace(line), "Palisade web view: ")
	if !ok {
		s.t.Fatalf("palisadectl ui printed %q", line)
	}
	return url
}

// chromiumPath is Debian's chromium (make test-tools installs it).
func chromiumPath(t *testing.T) string {
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	msg := "chromium not found: run `hack/apt-install.sh chromium` (make test-tools)"
	if os.Getenv("PALISADE_REQUIRE_TOOLS") == "1" || os.Geteuid() == 0 {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

// chromeTab starts a headless chromium of the test's own.
func chromeTab(t *testing.T, path string) context.Context {
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(path), chromedp.UserDataDir(t.TempDir()),
		chromedp.NoSandbox, chromedp.DisableGPU, chromedp.WindowSize(1600, 1000))
	actx, cancel := chromedp.NewExecAllocator(context.Background(), opts...)
	t.Cleanup(cancel)
	ctx, cancel2 := chromedp.NewContext(actx)
	t.Cleanup(cancel2)
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	return ctx
}

func pageEval[T any](t *testing.T, ctx context.Context, expr string) T {
	t.Helper()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		t.Fatalf("%s: %v", expr, err)
	}
	return v
}

// pageWait polls expr in the page until it is true.
func pageWait(t *testing.T, ctx context.Context, what, expr string) {
	t.Helper()
	err := devenv.WaitFor(context.Background(), time.Minute, what, func() error {
		ok, err := chromedp.Run(ctx, chromedp.Evaluate[bool](expr))
		if err != nil {
			return err
		}
		if !ok {
			text, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.body.innerText.slice(0, 3000)`))
			return fmt.Errorf("not yet; the page says:\n%s", text)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func shot(t *testing.T, ctx context.Context, dir, name, sel string) {
	t.Helper()
	png, err := chromedp.Run(ctx, chromedp.Screenshot(chromedp.CSS(sel)))
	if err != nil {
		t.Fatalf("screenshot %s: %v", name, err)
	}
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot %s", path)
}
