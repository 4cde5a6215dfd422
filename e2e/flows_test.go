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
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/palisade-dev/palisade/internal/devenv"
	"github.com/palisade-dev/palisade/internal/flows"
	"github.com/palisade-dev/palisade/internal/netlab"
)

// relayIP is where the manager's relay listens: an address of the test's
// own node namespace (never the machine's), since the API server's
// service proxy refuses loopback endpoints. It sits on the namespace's lo
// (a dummy device needs a kernel module that may be missing), where it is
// local like any other address but not a loopback one.
const relayIP = "10.99.0.1"

// relayAddress adds relayIP in the node namespace and picks the relay's
// port.
func (s *system) relayAddress() {
	if !netlab.Isolated() {
		s.t.Fatal("not in a node namespace of its own")
	}
	if out, err := exec.Command("ip", "addr", "add", relayIP+"/32", "dev", "lo").CombinedOutput(); err != nil {
		s.t.Fatalf("ip addr add %s/32 dev lo: %v: %s", relayIP, err, out)
	}
	s.t.Cleanup(func() { exec.Command("ip", "addr", "del", relayIP+"/32", "dev", "lo").Run() })
	port, err := devenv.FreePort()
	if err != nil {
		s.t.Fatal(err)
	}
	s.relayPort = port
}

// relayService creates what config/manager deploys for the relay, with
// endpoints by hand (no controller-manager runs here): the Service
// palisade-system/palisade-relay and its EndpointSlice, which the API
// server's service proxy resolves.
func (s *system) relayService() {
	ctx := context.Background()
	const ns, name = "palisade-system", "palisade-relay"
	create := func(o client.Object) {
		if err := s.c.Create(ctx, o); err != nil && !apierrors.IsAlreadyExists(err) {
			s.t.Fatal(err)
		}
	}
	create(&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}})
	// The proxy dials only an endpoint whose targetRef is a Pod with that
	// IP: the manager's, on the host network as the relay here.
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "palisade-manager-e2e"},
		Spec: corev1.PodSpec{NodeName: nodeName, HostNetwork: true, Containers: []corev1.Container{{Name: "manager", Image: "ghcr.io/palisade-dev/palisade-manager:e2e"}}}}
	create(pod)
	pod.Status = corev1.PodStatus{Phase: corev1.PodRunning, PodIP: relayIP, PodIPs: []corev1.PodIP{{IP: relayIP}}, HostIP: relayIP}
	if err := s.c.Status().Update(ctx, pod); err != nil {
		s.t.Fatal(err)
	}
	create(&discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Namespace: ns, Name: name + "-e2e", Labels: map[string]string{discoveryv1.LabelServiceName: name}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Endpoints: []discoveryv1.Endpoint{{Addresses: []string{relayIP}, NodeName: ptr.To(nodeName), Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(true)},
			TargetRef: &corev1.ObjectReference{Kind: "Pod", Namespace: ns, Name: pod.Name, UID: pod.UID}}},
		Ports: []discoveryv1.EndpointPort{{Name: ptr.To("flows"), Port: ptr.To(int32(s.relayPort)), Protocol: ptr.To(corev1.ProtocolTCP)}},
	})
	create(&corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: corev1.ServiceSpec{Ports: []corev1.ServicePort{{Name: "flows", Port: 4246, Protocol: corev1.ProtocolTCP, TargetPort: intstr.FromInt(s.relayPort)}}}})

}

// observe runs the real palisadectl observe with the e2e kubeconfig: the
// relay through the API server. It returns the flows (-o jsonl) or the
// text, and stderr.
func (s *system) observe(args ...string) (string, string, error) {
	if s.observer == "" {
		// The relay reviews the user's token (docs/ui.md); the admin
		// kubeconfig has a client certificate: a ServiceAccount's token.
		s.observer, _ = s.uiUsers()
	}
	cmd := exec.Command(filepath.Join(s.bin, "palisadectl"), append([]string{"observe", "--kubeconfig", s.observer}, args...)...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	return out.String(), errOut.String(), err
}

// observed reads the flows from shop that the relay holds.
func (s *system) observed() ([]flows.Flow, error) {
	out, errOut, err := s.observe("--namespace", "shop", "-o", "jsonl")
	if err != nil {
		return nil, fmt.Errorf("palisadectl observe: %v: %s", err, errOut)
	}
	if strings.Contains(errOut, "UNREACHABLE") || strings.Contains(errOut, "NO OBSERVER") {
		return nil, fmt.Errorf("palisadectl observe: %s", errOut)
	}
	recs, err := flows.Read(strings.NewReader(out), "observe")
	if err != nil {
		return nil, err
	}
	fs := make([]flows.Flow, len(recs))
	for i, r := range recs {
		fs[i] = r.Flow
	}
	return fs, nil
}

// flowWant is a flow the story must see, and the rule it must name.
type flowWant struct {
	what      string
	port      uint16
	verdict   flows.Verdict
	reason    flows.DropReason
	isolating bool // the rule is among the isolating policies (a default deny)
	kind      string
	name      string
	file      string
	line      int
	revision  string
}

func (w *flowWant) match(f *flows.Flow) bool {
	if f.Destination.Port != w.port || f.Verdict != w.verdict || f.DropReason != w.reason {
		return false
	}
	named := func(p *flows.Policy) bool {
		return p != nil && p.Kind == w.kind && p.Namespace == "shop" && p.Name == w.name && p.File == w.file && p.Line == w.line && p.Revision == w.revision
	}
	if w.isolating {
		return slices.ContainsFunc(f.Isolating, func(p flows.Policy) bool { return named(&p) })
	}
	return named(f.Policy)
}

func (w *flowWant) String() string {
	return fmt.Sprintf("%s: :%d %s %s by %s shop/%s at %s:%d @%s", w.what, w.port, w.verdict, w.reason, w.kind, w.name, w.file, w.line, w.revision)
}

// waitFlows waits until palisadectl observe shows every wanted flow.
func (s *system) waitFlows(wants ...*flowWant) {
	s.t.Helper()
	s.wait("flows in palisadectl observe", func() error {
		fs, err := s.observed()
		if err != nil {
			return err
		}
		var missing []string
		for _, w := range wants {
			if !slices.ContainsFunc(fs, func(f flows.Flow) bool { return w.match(&f) }) {
				missing = append(missing, w.String())
			}
		}
		if len(missing) > 0 {
			var got strings.Builder
			flows.Write(&got, fs...)
			return fmt.Errorf("missing %s; observed:\n%s", strings.Join(missing, "; "), got.String())
		}
		return nil
	})
	for _, w := range wants {
		s.t.Logf("palisadectl observe shows %s", w)
	}
}

// lineOf is the line of the first line of content that contains frag.
func (s *system) lineOf(content, frag string) int {
	s.t.Helper()
	for i, l := range strings.Split(content, "\n") {
		if strings.Contains(l, frag) {
			return i + 1
		}
	}
	s.t.Fatalf("no %q in\n%s", frag, content)
	return 0
}

// probe sends client→server TCP to port, which must pass or not.
func (s *system) probe(port int, pass bool) {
	s.t.Helper()
	if got := s.wl["client"].Net.TCP(s.wl["server"].Net.IP, port, 500*time.Millisecond); got != pass {
		s.t.Errorf("client→server TCP %d passed=%v, want %v", port, got, pass)
	}
}

func (s *system) flowsStory() {
	s.t.Helper()
	s.relayService()
	for _, f := range []string{"deny.cue", "audit.cue"} {
		b, err := os.ReadFile(filepath.Join(s.root, "e2e", "testdata", "flows", f))
		if err != nil {
			s.t.Fatal(err)
		}
		s.repo.WriteFile("shop/"+f, string(b))
	}
	commit, err := s.repo.CommitAll("an explicit deny and an audit-mode policy")
	if err != nil {
		s.t.Fatal(err)
	}
	rev := s.waitApplied("the deny and audit commit", commit)
	s.waitEnforced(rev)
	s.probe(8082, false) // no rule: default deny
	s.probe(8083, false) // the deny rule
	s.probe(8081, true)  // allowed, and audited by client-audit
	deny := s.read("shop/deny.cue")
	denied := &flowWant{what: "explicit-deny drop", port: 8083, verdict: flows.Dropped, reason: flows.ExplicitDeny,
		kind: "NetworkPolicy", name: "deny-admin", file: "shop/deny.cue", line: s.lineOf(deny, "ingressDeny:"), revision: rev}
	s.waitFlows(
		&flowWant{what: "default-deny drop", port: 8082, verdict: flows.Dropped, reason: flows.DefaultDeny, isolating: true,
			kind: "NetworkPolicy", name: "server", file: "shop/server.cue", line: s.lineOf(s.read("shop/server.cue"), "server: {"), revision: rev},
		denied,
		&flowWant{what: "audit verdict", port: 8081, verdict: flows.Audit, reason: flows.ExplicitDeny,
			kind: "NetworkPolicy", name: "client-audit", file: "shop/audit.cue", line: s.lineOf(s.read("shop/audit.cue"), "egressDeny:"), revision: rev},
	)
	text, errOut, err := s.observe("--namespace", "shop", "--verdict", "dropped,audit")
	if err != nil {
		s.t.Fatalf("palisadectl observe: %v: %s", err, errOut)
	}
	s.t.Logf("palisadectl observe --namespace shop --verdict dropped,audit\n%s%s", text, errOut)

	// A commit moves the deny rule three lines down.
	s.repo.WriteFile("shop/deny.cue", strings.Replace(deny, "package shop\n", "package shop\n\n// The admin port is for the operators' bastion only;\n// see the runbook.\n", 1))
	moved, err := s.repo.CommitAll("deny: a comment above the rule")
	if err != nil {
		s.t.Fatal(err)
	}
	rev2 := s.waitApplied("the commit that moves the deny rule", moved)
	s.waitEnforced(rev2)
	s.probe(8083, false)
	now := *denied
	now.what, now.line, now.revision = "explicit-deny drop after the move", denied.line+3, rev2
	denied.what = "explicit-deny drop before the move"
	s.waitFlows(denied, &now)
}
