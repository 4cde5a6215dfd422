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

package config

import (
	"bytes"
	"context"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/palisade-dev/palisade/internal/testenv"
)

// standInCRDs are CRDs that config/default uses but does not install: a
// cluster has them from the Prometheus Operator. See the file's header.
var standInCRDs = filepath.Join("testdata", "monitoring.coreos.com_prometheusrules.yaml")

// startCluster starts a real kube-apiserver and etcd holding only the
// stand-in CRDs, and points k at it.
func startCluster(t *testing.T, k *kubectl) (*rest.Config, client.Client) {
	t.Helper()
	cfg, c := testenv.Start(t, standInCRDs)
	k.connect(t, cfg)
	return cfg, c
}

// TestDefaultAppliesToRealAPIServer runs the README's deploy command,
// `kubectl apply -k config/default`, against a fresh real API server, then
// asks that server what the result allows: which requests the service
// accounts may make (its RBAC authorizer) and which pods the namespace
// admits (its PodSecurity admission).
func TestDefaultAppliesToRealAPIServer(t *testing.T) {
	k := newKubectl(t)
	_, objs := build(t, k, "default")
	_, c := startCluster(t, k)
	ctx := context.Background()
	dir := testenv.RepoPath(t, "config", "default")

	out, err := k.run(nil, "apply", "--validate=strict", "-k", dir)
	if err != nil {
		t.Fatal(err)
	}
	checkEveryObject(t, out, objs, " created")
	// A second apply changes nothing: no field is fought over with the
	// server's defaults.
	out, err = k.run(nil, "apply", "--validate=strict", "-k", dir)
	if err != nil {
		t.Fatal(err)
	}
	checkEveryObject(t, out, objs, " unchanged")

	t.Run("PrometheusRule", func(t *testing.T) {
		pr := &unstructured.Unstructured{}
		pr.SetAPIVersion("monitoring.coreos.com/v1")
		pr.SetKind("PrometheusRule")
		if err := c.Get(ctx, client.ObjectKey{Namespace: namespace, Name: prefix + "alerts"}, pr); err != nil {
			t.Fatal(err)
		}
		got, _, _ := unstructured.NestedSlice(pr.Object, "spec", "groups")
		if want := rulesYAMLGroups(t); !reflect.DeepEqual(got, want) {
			t.Errorf("the stored PrometheusRule's groups differ from config/prometheus/rules.yaml\ngot  %v\nwant %v", got, want)
		}
	})

	t.Run("RBAC", func(t *testing.T) {
		agent := serviceAccount(agentName)
		mgr := serviceAccount(mgrName)
		for _, tc := range []struct {
			who   []string
			verb  string
			group string
			res   string
			sub   string
			ns    string // "" is every namespace
			allow bool
		}{
			// The agent reads policy, identities, pods and nodes, writes
			// its NodeEnforcement and events, and nothing else.
			{agent, "list", "", "pods", "", "", true},
			{agent, "watch", "palisade.dev", "networkpolicies", "", "", true},
			{agent, "watch", "palisade.dev", "identities", "", "", true},
			{agent, "create", "palisade.dev", "nodeenforcements", "", "", true},
			{agent, "patch", "palisade.dev", "nodeenforcements", "status", "", true},
			{agent, "create", "events.k8s.io", "events", "", "default", true},
			{agent, "update", "palisade.dev", "networkpolicies", "", "shop", false},
			{agent, "delete", "palisade.dev", "nodeenforcements", "", "", false},
			{agent, "delete", "", "pods", "", "shop", false},
			{agent, "create", "coordination.k8s.io", "leases", "", namespace, false},
			// The manager gets a Secret by name when a PolicyRepository
			// references one, and never lists or watches them.
			{mgr, "get", "", "secrets", "", "shop", true},
			{mgr, "list", "", "secrets", "", "", false},
			{mgr, "watch", "", "secrets", "", "shop", false},
			{mgr, "create", "coordination.k8s.io", "leases", "", namespace, true},
			{mgr, "create", "coordination.k8s.io", "leases", "", "default", false},
			{mgr, "patch", "palisade.dev", "policysets", "status", "shop", true},
			{mgr, "delete", "", "pods", "", "shop", false},
		} {
			if got := allowed(t, c, tc.who, authorizationv1.ResourceAttributes{
				Verb: tc.verb, Group: tc.group, Resource: tc.res, Subresource: tc.sub, Namespace: tc.ns,
			}); got != tc.allow {
				t.Errorf("%s %s %s.%s/%s in %q: allowed=%v, want %v", tc.who[0], tc.verb, tc.res, tc.group, tc.sub, tc.ns, got, tc.allow)
			}
		}
		// Secrets are never readable by the agent, in any namespace.
		for _, ns := range []string{"", namespace, "default", "kube-system"} {
			for _, verb := range []string{"get", "list", "watch"} {
				if allowed(t, c, agent, authorizationv1.ResourceAttributes{Verb: verb, Resource: "secrets", Namespace: ns}) {
					t.Errorf("the agent may %s secrets in %q", verb, ns)
				}
			}
		}
	})

	// Each program may list and watch every kind its controllers watch,
	// where its cache lists them: otherwise its informers never sync and it
	// never becomes ready.
	t.Run("RBAC covers watches", func(t *testing.T) {
		scheme := codeScheme(t)
		for _, p := range []struct {
			who     []string
			watches []watched
		}{
			{serviceAccount(agentName), agentWatches(t, scheme)},
			{serviceAccount(mgrName), managerWatches(t, scheme)},
		} {
			for _, w := range p.watches {
				m, err := c.RESTMapper().RESTMapping(w.gvk.GroupKind(), w.gvk.Version)
				if err != nil {
					t.Errorf("%s watches %s, which config/default does not install: %v", p.who[0], w.gvk.Kind, err)
					continue
				}
				for _, ns := range w.namespaces {
					for _, verb := range []string{"list", "watch"} {
						if !allowed(t, c, p.who, authorizationv1.ResourceAttributes{
							Verb: verb, Group: m.Resource.Group, Resource: m.Resource.Resource, Namespace: ns,
						}) {
							t.Errorf("%s watches %s, but may not %s %s in %q", p.who[0], w.gvk.Kind, verb, m.Resource.GroupResource(), ns)
						}
					}
				}
			}
		}
	})

	t.Run("PodSecurity", func(t *testing.T) {
		ds := typed[appsv1.DaemonSet](t, find(t, objs, "DaemonSet", agentName))
		d := typed[appsv1.Deployment](t, find(t, objs, "Deployment", mgrName))

		// The agent's pod is admitted where config/default puts it.
		if err := createPod(ctx, c, namespace, ds.Spec.Template); err != nil {
			t.Errorf("the agent's pod is refused in %s: %v", namespace, err)
		}
		// Under "baseline" it is refused (hostNetwork, hostPath, added
		// capabilities): the reason the namespace enforces "privileged".
		ns := labelledNamespace(t, c, "psa-baseline", "baseline", agentName)
		if err := createPod(ctx, c, ns, ds.Spec.Template); !apierrors.IsForbidden(err) || !strings.Contains(err.Error(), "PodSecurity") {
			t.Errorf("the agent's pod under baseline: want a PodSecurity denial, got %v", err)
		}
		// The manager's pod is admitted where config/default puts it,
		// and meets "restricted" but for hostNetwork.
		if err := createPod(ctx, c, namespace, d.Spec.Template); err != nil {
			t.Errorf("the manager's pod is refused in %s: %v", namespace, err)
		}
		ns = labelledNamespace(t, c, "psa-restricted", "restricted", mgrName)
		if err := createPod(ctx, c, ns, d.Spec.Template); !apierrors.IsForbidden(err) || !strings.Contains(err.Error(), "hostNetwork") {
			t.Errorf("the manager's pod under restricted: want a PodSecurity denial for hostNetwork, got %v", err)
		}
		podNet := *d.Spec.Template.DeepCopy()
		podNet.Spec.HostNetwork = false
		podNet.Spec.DNSPolicy = corev1.DNSClusterFirst
		if err := createPod(ctx, c, ns, podNet); err != nil {
			t.Errorf("the manager's pod without hostNetwork is refused under restricted: %v", err)
		}
	})
}

// TestDefaultServerDryRun runs `kubectl apply --dry-run=server -k
// config/default` against a real API server: every object passes the
// server's validation and admission, and nothing is created.
//
// A server-side dry run creates nothing, so what other objects need to exist
// first cannot come from the same run: dry-run on an empty cluster, every
// namespaced object fails with 'namespaces "palisade-system" not found'
// (and a custom resource of a Palisade CRD would fail the same way). So the
// test first applies, for real, the Namespace and the CRDs of the same
// build, as a cluster that runs Palisade already has them, then dry-runs
// everything.
func TestDefaultServerDryRun(t *testing.T) {
	k := newKubectl(t)
	_, objs := build(t, k, "default")
	_, c := startCluster(t, k)
	ctx := context.Background()

	var prereq bytes.Buffer
	var crds []string
	for _, o := range objs {
		switch o.GetKind() {
		case "CustomResourceDefinition":
			crds = append(crds, "crd/"+o.GetName())
		case "Namespace":
		default:
			continue
		}
		y, err := yaml.Marshal(o.Object)
		if err != nil {
			t.Fatal(err)
		}
		prereq.WriteString("---\n")
		prereq.Write(y)
	}
	if _, err := k.run(prereq.Bytes(), "apply", "--validate=strict", "-f", "-"); err != nil {
		t.Fatal(err)
	}
	if _, err := k.run(nil, append([]string{"wait", "--for=condition=Established", "--timeout=60s"}, crds...)...); err != nil {
		t.Fatal(err)
	}

	out, err := k.run(nil, "apply", "--dry-run=server", "--validate=strict", "-k", testenv.RepoPath(t, "config", "default"))
	if err != nil {
		t.Fatal(err)
	}
	checkEveryObject(t, out, objs, " (server dry run)")

	// Nothing beyond the prerequisites exists.
	err = c.Get(ctx, client.ObjectKey{Namespace: namespace, Name: agentName}, &appsv1.DaemonSet{})
	if !apierrors.IsNotFound(err) {
		t.Errorf("after the dry run, get DaemonSet %s: want NotFound, got %v", agentName, err)
	}
}

// checkEveryObject checks that kubectl apply's output has one line per
// object of objs, each ending in suffix, e.g. "daemonset.apps/palisade-agent
// created".
func checkEveryObject(t *testing.T, out string, objs []*unstructured.Unstructured, suffix string) {
	t.Helper()
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != len(objs) {
		t.Errorf("kubectl reported %d objects, config/default has %d:\n%s", len(lines), len(objs), out)
	}
	for _, l := range lines {
		if !strings.HasSuffix(l, suffix) {
			t.Errorf("kubectl: %q, want every line to end in %q", l, suffix)
		}
	}
	for _, o := range objs {
		if !strings.Contains(out, "/"+o.GetName()+" ") {
			t.Errorf("kubectl did not report %s %s", o.GetKind(), o.GetName())
		}
	}
}

// serviceAccount returns the user and groups that the API server gives the
// token of service account name in Palisade's namespace.
func serviceAccount(name string) []string {
	return []string{"system:serviceaccount:" + namespace + ":" + name,
		"system:serviceaccounts", "system:serviceaccounts:" + namespace, "system:authenticated"}
}

// allowed asks the API server's authorizer whether who (user, then groups)
// may make the request attrs describes.
func allowed(t *testing.T, c client.Client, who []string, attrs authorizationv1.ResourceAttributes) bool {
	t.Helper()
	sar := &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{
		User: who[0], Groups: who[1:], ResourceAttributes: &attrs,
	}}
	if err := c.Create(context.Background(), sar); err != nil {
		t.Fatal(err)
	}
	return sar.Status.Allowed
}

// labelledNamespace creates a namespace enforcing Pod Security level,
// holding a service account named sa for the pods created in it.
func labelledNamespace(t *testing.T, c client.Client, name, level, sa string) string {
	t.Helper()
	ctx := context.Background()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{
		"pod-security.kubernetes.io/enforce": level,
	}}}
	if err := c.Create(ctx, ns); err != nil {
		t.Fatal(err)
	}
	if err := c.Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: name, Name: sa}}); err != nil {
		t.Fatal(err)
	}
	return name
}

// createPod dry-run creates a pod from tmpl in ns, through admission.
func createPod(ctx context.Context, c client.Client, ns string, tmpl corev1.PodTemplateSpec) error {
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "pod-security-probe", Labels: tmpl.Labels},
		Spec:       tmpl.Spec,
	}
	return c.Create(ctx, pod, client.DryRunAll)
}
