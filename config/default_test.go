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
	"errors"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"maps"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/yaml"

	"github.com/palisade-dev/palisade/internal/testenv"
)

const (
	namespace = "palisade-system"
	prefix    = "palisade-"
	agentName = prefix + "agent"
	mgrName   = prefix + "manager"

	// bpffsHostPath is where nodes mount bpffs and the agent's pins live.
	bpffsHostPath = "/sys/fs/bpf"
)

// agentCapabilities is the agent's documented set (config/agent/agent.yaml
// says why each is there), without the CAP_ prefix as Kubernetes spells them.
// SYS_ADMIN is in it only while the agent opens BPF objects by ID; see
// TestAgentSysAdminHasAReason.
var agentCapabilities = []corev1.Capability{"SYS_ADMIN", "SYS_PTRACE"}

func buildDefault(t *testing.T) []*unstructured.Unstructured {
	t.Helper()
	_, objs := build(t, newKubectl(t), "default")
	return objs
}

// TestAgentPrivileges checks that the agent gets what it needs and no more:
// not privileged, exactly the documented capabilities, no host namespaces
// but the network and (for tracing) PID, one writable hostPath (bpffs) that
// it cannot propagate mounts into, and read-only views of the host's
// cgroups, securityfs and tracefs.
func TestAgentPrivileges(t *testing.T) {
	ds := typed[appsv1.DaemonSet](t, find(t, buildDefault(t), "DaemonSet", agentName))
	pod := ds.Spec.Template.Spec

	if !pod.HostNetwork {
		t.Error("hostNetwork: want true, the agent attaches to host-side veths and host interfaces")
	}
	// Tracing: the kernel's PIDs and the processes to protect are the
	// host PID namespace's.
	if !pod.HostPID || pod.HostIPC {
		t.Errorf("hostPID=%v hostIPC=%v: want hostPID only (tracing)", pod.HostPID, pod.HostIPC)
	}
	if pod.ServiceAccountName != agentName {
		t.Errorf("serviceAccountName = %q, want %q", pod.ServiceAccountName, agentName)
	}
	if len(pod.InitContainers) != 0 || len(pod.Containers) != 1 {
		t.Fatalf("want exactly one container and no init containers, got %d and %d", len(pod.Containers), len(pod.InitContainers))
	}
	c := pod.Containers[0]
	sc := c.SecurityContext
	if sc == nil || sc.Capabilities == nil {
		t.Fatal("the agent container has no securityContext.capabilities")
	}
	if sc.Privileged != nil && *sc.Privileged {
		t.Error("the agent container is privileged")
	}
	if sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
		t.Error("allowPrivilegeEscalation: want false")
	}
	if sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
		t.Error("readOnlyRootFilesystem: want true")
	}
	if !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) {
		t.Errorf("capabilities.drop = %v, want [ALL]", sc.Capabilities.Drop)
	}
	add := slices.Clone(sc.Capabilities.Add)
	slices.Sort(add)
	if !slices.Equal(add, agentCapabilities) {
		t.Errorf("capabilities.add = %v, want exactly %v", sc.Capabilities.Add, agentCapabilities)
	}

	// Volumes: bpffs from the host, and for tracing read-only views of
	// the host's cgroup hierarchy, securityfs and tracefs; nothing else.
	tracingHostPaths := map[string]bool{"/sys/fs/cgroup": true, "/sys/kernel/security": true, "/sys/kernel/tracing": true}
	readOnly := map[string]bool{}
	var bpffs string
	for _, v := range pod.Volumes {
		if v.HostPath == nil {
			continue
		}
		if tracingHostPaths[v.HostPath.Path] {
			readOnly[v.Name] = true
			continue
		}
		if v.HostPath.Path != bpffsHostPath {
			t.Errorf("volume %s: hostPath %s; the agent may mount only %s and, read-only, %v from the host", v.Name, v.HostPath.Path, bpffsHostPath, slices.Sorted(maps.Keys(tracingHostPaths)))
			continue
		}
		bpffs = v.Name
	}
	for _, m := range c.VolumeMounts {
		if readOnly[m.Name] && !m.ReadOnly {
			t.Errorf("volume %s is mounted read-write; tracing only reads it", m.Name)
		}
	}
	if bpffs == "" {
		t.Fatalf("no hostPath volume for %s", bpffsHostPath)
	}
	var mountPath string
	for _, m := range c.VolumeMounts {
		if m.Name != bpffs {
			continue
		}
		mountPath = m.MountPath
		// Bidirectional is for privileged containers only, and the agent
		// mounts nothing; HostToContainer lets it see a bpffs the host
		// mounts after the pod started.
		if m.MountPropagation == nil || *m.MountPropagation != corev1.MountPropagationHostToContainer {
			t.Errorf("bpffs mountPropagation = %v, want HostToContainer", ptrString(m.MountPropagation))
		}
		if m.ReadOnly {
			t.Error("bpffs is mounted read-only; the agent pins there")
		}
	}
	if mountPath == "" {
		t.Fatal("the bpffs volume is not mounted")
	}

	flags := argFlags(c.Args)
	if pin := flags["--pin-dir"]; !strings.HasPrefix(pin, mountPath+"/") {
		t.Errorf("--pin-dir=%q is not under the bpffs mount %s: pins would not outlive the pod", pin, mountPath)
	}
	if flags["--node-name"] != "$(NODE_NAME)" {
		t.Errorf("--node-name=%q, want $(NODE_NAME)", flags["--node-name"])
	}
	var nodeName bool
	for _, e := range c.Env {
		if e.Name == "NODE_NAME" && e.ValueFrom != nil && e.ValueFrom.FieldRef != nil && e.ValueFrom.FieldRef.FieldPath == "spec.nodeName" {
			nodeName = true
		}
	}
	if !nodeName {
		t.Error("NODE_NAME does not come from the downward API's spec.nodeName")
	}
	checkPorts(t, c, flags)
}

// TestAgentSysAdminHasAReason ties CAP_SYS_ADMIN to the code that needs it:
// the kernel lets only CAP_SYS_ADMIN turn a BPF object's ID into a file
// descriptor (BPF_*_GET_FD_BY_ID), which cilium/ebpf's New*FromID calls do.
// The test fails when the agent is granted SYS_ADMIN and no such call is
// left, and when such a call exists and SYS_ADMIN is not granted. It reads
// the source, so it sees explicit calls only: cilium/ebpf also opens by ID
// inside, e.g. when a map-of-maps is looked up into an *ebpf.Map, which the
// person dropping the capability has to rule out.
func TestAgentSysAdminHasAReason(t *testing.T) {
	var calls []string
	for _, dir := range []string{"internal/datapath", "internal/agent", "cmd/agent"} {
		calls = append(calls, fromIDCalls(t, testenv.RepoPath(t, strings.Split(dir, "/")...))...)
	}
	granted := slices.Contains(agentCapabilities, "SYS_ADMIN")
	switch {
	case granted && len(calls) == 0:
		t.Error("the agent is granted SYS_ADMIN for opening BPF objects by ID, and no New*FromID call is left: " +
			"unless cilium/ebpf still does it inside (a map-of-maps looked up into an *ebpf.Map), " +
			"drop SYS_ADMIN from config/agent/agent.yaml and agentCapabilities")
	case !granted && len(calls) > 0:
		t.Errorf("the agent opens BPF objects by ID, which needs CAP_SYS_ADMIN: %s", strings.Join(calls, ", "))
	}
	t.Logf("calls that need CAP_SYS_ADMIN: %v", calls)
}

// fromIDCalls lists file:line of calls to functions named New*FromID in the
// non-test Go files under dir (none if dir does not exist).
func fromIDCalls(t *testing.T, dir string) []string {
	t.Helper()
	var files []string
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if errors.Is(err, fs.ErrNotExist) && path == dir {
			return filepath.SkipDir
		}
		if err == nil && !d.IsDir() && strings.HasSuffix(path, ".go") {
			files = append(files, path)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	root := testenv.RepoPath(t)
	var calls []string
	fset := token.NewFileSet()
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, parser.SkipObjectResolution)
		if err != nil {
			t.Fatal(err)
		}
		ast.Inspect(f, func(n ast.Node) bool {
			call, ok := n.(*ast.CallExpr)
			if !ok {
				return true
			}
			var fn string
			switch f := call.Fun.(type) {
			case *ast.SelectorExpr:
				fn = f.Sel.Name
			case *ast.Ident:
				fn = f.Name
			}
			if strings.HasPrefix(fn, "New") && strings.HasSuffix(fn, "FromID") {
				pos := fset.Position(call.Pos())
				rel, _ := filepath.Rel(root, pos.Filename)
				calls = append(calls, rel+":"+strconv.Itoa(pos.Line)+" "+fn)
			}
			return true
		})
	}
	return calls
}

// TestManagerSecurity checks the manager's pod: the host network (so the
// datapath never fails it closed before its own Identity exists) and no
// other host access, no capabilities, a read-only root, and wiring that
// matches cmd/manager's flags. The API server's PodSecurity admission
// judges it "restricted" but for hostNetwork in
// TestDefaultAppliesToRealAPIServer.
func TestManagerSecurity(t *testing.T) {
	d := typed[appsv1.Deployment](t, find(t, buildDefault(t), "Deployment", mgrName))
	pod := d.Spec.Template.Spec
	if !pod.HostNetwork || pod.DNSPolicy != corev1.DNSClusterFirstWithHostNet {
		t.Errorf("hostNetwork %v, dnsPolicy %q: want the host network with ClusterFirstWithHostNet", pod.HostNetwork, pod.DNSPolicy)
	}
	if pod.HostPID || pod.HostIPC {
		t.Error("the manager uses the host's PID or IPC namespace")
	}
	for _, v := range pod.Volumes {
		if v.HostPath != nil {
			t.Errorf("volume %s: the manager mounts a hostPath", v.Name)
		}
	}
	if pod.SecurityContext == nil || pod.SecurityContext.RunAsNonRoot == nil || !*pod.SecurityContext.RunAsNonRoot {
		t.Error("runAsNonRoot: want true")
	}
	if len(pod.Containers) != 1 {
		t.Fatalf("want one container, got %d", len(pod.Containers))
	}
	c := pod.Containers[0]
	sc := c.SecurityContext
	if sc == nil || sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) || len(sc.Capabilities.Add) != 0 {
		t.Error("the manager must drop ALL capabilities and add none")
	}
	if sc != nil && (sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem) {
		t.Error("readOnlyRootFilesystem: want true")
	}
	flags := argFlags(c.Args)
	if flags["--leader-elect"] != "true" {
		t.Errorf("--leader-elect=%q, want true", flags["--leader-elect"])
	}
	// --storage-path must be a writable volume: the root is read-only.
	var storage bool
	for _, m := range c.VolumeMounts {
		storage = storage || (m.MountPath == flags["--storage-path"] && !m.ReadOnly)
	}
	if !storage {
		t.Errorf("--storage-path=%q is not a writable volume mount", flags["--storage-path"])
	}
	checkPorts(t, c, flags)
}

// checkPorts checks that the container's probes and its named ports use the
// ports its flags bind, and that it has requests and limits.
func checkPorts(t *testing.T, c corev1.Container, flags map[string]string) {
	t.Helper()
	want := map[string]string{"metrics": "--metrics-bind-address", "health": "--health-probe-bind-address"}
	for name, flag := range want {
		_, port, err := net.SplitHostPort(flags[flag])
		if err != nil {
			t.Errorf("%s: %s=%q: %v", c.Name, flag, flags[flag], err)
			continue
		}
		p := namedPort(c, name)
		if p == nil || strconv.Itoa(int(p.ContainerPort)) != port {
			t.Errorf("%s: container port %q is %v, but %s binds %s", c.Name, name, p, flag, port)
		}
	}
	for what, probe := range map[string]*corev1.Probe{"liveness": c.LivenessProbe, "readiness": c.ReadinessProbe} {
		if probe == nil || probe.HTTPGet == nil {
			t.Errorf("%s: no HTTP %s probe", c.Name, what)
			continue
		}
		if probe.HTTPGet.Port != intstr.FromString("health") {
			t.Errorf("%s: %s probe on port %v, want the health port", c.Name, what, probe.HTTPGet.Port)
		}
	}
	for _, r := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
		if _, ok := c.Resources.Requests[r]; !ok {
			t.Errorf("%s: no %s request", c.Name, r)
		}
		if _, ok := c.Resources.Limits[r]; !ok {
			t.Errorf("%s: no %s limit", c.Name, r)
		}
	}
}

func namedPort(c corev1.Container, name string) *corev1.ContainerPort {
	for i := range c.Ports {
		if c.Ports[i].Name == name {
			return &c.Ports[i]
		}
	}
	return nil
}

func ptrString[T ~string](p *T) string {
	if p == nil {
		return "<unset>"
	}
	return string(*p)
}

// argFlags maps "--name=value" arguments to their values.
func argFlags(args []string) map[string]string {
	m := map[string]string{}
	for _, a := range args {
		name, value, _ := strings.Cut(a, "=")
		m[name] = value
	}
	return m
}

// TestRBACLeastPrivilege checks every Role and ClusterRole of config/default:
// no wildcards, no verbs that grant more RBAC or identities, and the agent
// cannot read Secrets anywhere. TestDefaultAppliesToRealAPIServer asks the
// API server's authorizer the same questions.
func TestRBACLeastPrivilege(t *testing.T) {
	objs := buildDefault(t)
	roles := map[string][]rbacv1.PolicyRule{}
	for _, u := range append(ofKind(objs, "ClusterRole"), ofKind(objs, "Role")...) {
		var rules []rbacv1.PolicyRule
		if u.GetKind() == "Role" {
			rules = typed[rbacv1.Role](t, u).Rules
		} else {
			rules = typed[rbacv1.ClusterRole](t, u).Rules
		}
		id := u.GetKind() + "/" + u.GetName()
		roles[id] = rules
		for _, r := range rules {
			for _, field := range [][]string{r.Verbs, r.APIGroups, r.Resources, r.ResourceNames, r.NonResourceURLs} {
				for _, v := range field {
					if strings.Contains(v, "*") {
						t.Errorf("%s: wildcard %q in %+v", id, v, r)
					}
				}
			}
			for _, v := range r.Verbs {
				if v == "escalate" || v == "bind" || v == "impersonate" {
					t.Errorf("%s: verb %q", id, v)
				}
			}
			if len(r.NonResourceURLs) > 0 {
				t.Errorf("%s: non-resource URLs %v", id, r.NonResourceURLs)
			}
		}
	}
	agent, ok := roles["ClusterRole/"+prefix+"agent-role"]
	if !ok {
		t.Fatalf("no ClusterRole %sagent-role; roles: %v", prefix, slices.Collect(maps.Keys(roles)))
	}
	for _, r := range agent {
		if slices.Contains(r.APIGroups, "") && (slices.Contains(r.Resources, "secrets") || slices.Contains(r.Resources, "configmaps")) {
			t.Errorf("the agent's ClusterRole grants %v on %v", r.Verbs, r.Resources)
		}
	}
	// Every binding must point at one of these roles and at our own
	// service accounts.
	for _, u := range append(ofKind(objs, "ClusterRoleBinding"), ofKind(objs, "RoleBinding")...) {
		b := typed[rbacv1.RoleBinding](t, u) // a ClusterRoleBinding has the same fields
		if _, ok := roles[b.RoleRef.Kind+"/"+b.RoleRef.Name]; !ok {
			t.Errorf("%s %s binds %s/%s, which config/default does not define", u.GetKind(), u.GetName(), b.RoleRef.Kind, b.RoleRef.Name)
		}
		for _, s := range b.Subjects {
			if s.Kind != "ServiceAccount" || s.Namespace != namespace || (s.Name != agentName && s.Name != mgrName) {
				t.Errorf("%s %s: subject %+v is not Palisade's own service account", u.GetKind(), u.GetName(), s)
			}
		}
	}
}

// TestLayout checks what ties the overlay together: one namespace, the
// prefix, pinned images, and Services that reach a container's named port.
func TestLayout(t *testing.T) {
	objs := buildDefault(t)
	for _, o := range objs {
		switch o.GetKind() {
		case "Namespace", "CustomResourceDefinition":
			continue
		case "ClusterRole", "ClusterRoleBinding":
			if o.GetNamespace() != "" {
				t.Errorf("%s %s has a namespace", o.GetKind(), o.GetName())
			}
		default:
			if o.GetNamespace() != namespace {
				t.Errorf("%s %s is in namespace %q, want %s", o.GetKind(), o.GetName(), o.GetNamespace(), namespace)
			}
		}
		if !strings.HasPrefix(o.GetName(), prefix) {
			t.Errorf("%s %s lacks the %q prefix", o.GetKind(), o.GetName(), prefix)
		}
	}
	if ns := ofKind(objs, "Namespace"); len(ns) != 1 || ns[0].GetName() != namespace {
		t.Errorf("want the one Namespace %s", namespace)
	}

	pods := map[string]corev1.PodTemplateSpec{
		"Deployment/" + mgrName:  typed[appsv1.Deployment](t, find(t, objs, "Deployment", mgrName)).Spec.Template,
		"DaemonSet/" + agentName: typed[appsv1.DaemonSet](t, find(t, objs, "DaemonSet", agentName)).Spec.Template,
	}
	for id, tmpl := range pods {
		for _, c := range tmpl.Spec.Containers {
			repo, tag, ok := strings.Cut(c.Image, ":")
			if !ok || tag == "" || tag == "latest" || strings.Contains(tag, "/") {
				t.Errorf("%s: image %q has no pinned tag", id, c.Image)
			}
			if !strings.HasPrefix(repo, "ghcr.io/palisade-dev/palisade-") {
				t.Errorf("%s: image %q is not Palisade's", id, c.Image)
			}
		}
	}
	for _, u := range ofKind(objs, "Service") {
		svc := typed[corev1.Service](t, u)
		var matched []string
		for id, tmpl := range pods {
			if len(svc.Spec.Selector) > 0 && selects(svc.Spec.Selector, tmpl.Labels) {
				matched = append(matched, id)
				for _, sp := range svc.Spec.Ports {
					if sp.TargetPort.Type != intstr.String || namedPort(tmpl.Spec.Containers[0], sp.TargetPort.StrVal) == nil {
						t.Errorf("Service %s port %s: targetPort %v is not a named port of %s", svc.Name, sp.Name, sp.TargetPort, id)
					}
				}
			}
		}
		if len(matched) != 1 {
			t.Errorf("Service %s selects %v, want exactly one workload", svc.Name, matched)
		}
	}
}

// TestEveryGeneratedCRDIsDeployed checks that config/default installs every
// CRD that controller-gen wrote into config/crd/bases: kustomize has no
// globs, so a new API kind must also be listed in config/crd's
// kustomization, or the manager and agent would start without it.
func TestEveryGeneratedCRDIsDeployed(t *testing.T) {
	deployed := map[string]bool{}
	for _, o := range ofKind(buildDefault(t), "CustomResourceDefinition") {
		deployed[o.GetName()] = true
	}
	files, err := filepath.Glob(filepath.Join("crd", "bases", "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("no CRDs in config/crd/bases")
	}
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, crd := range decodeAll(t, raw) {
			if !deployed[crd.GetName()] {
				t.Errorf("%s (%s) is not in config/default: add bases/%s to config/crd/kustomization.yaml",
					crd.GetName(), f, filepath.Base(f))
			}
		}
	}
}

func selects(selector, labels map[string]string) bool {
	for k, v := range selector {
		if labels[k] != v {
			return false
		}
	}
	return true
}

// TestPrometheusRuleIsRulesYAML checks that the PrometheusRule config/default
// installs carries exactly the groups of config/prometheus/rules.yaml, the
// file promtool tests (internal/metrics), so the alerts that were tested
// are the alerts that are deployed.
func TestPrometheusRuleIsRulesYAML(t *testing.T) {
	rules := find(t, buildDefault(t), "PrometheusRule", prefix+"alerts")
	want := rulesYAMLGroups(t)
	got, _, err := unstructured.NestedSlice(rules.Object, "spec", "groups")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("the deployed PrometheusRule's groups differ from config/prometheus/rules.yaml\ngot  %v\nwant %v", got, want)
	}
}

// rulesYAMLGroups reads spec.groups of config/prometheus/rules.yaml.
func rulesYAMLGroups(t *testing.T) []any {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("prometheus", "rules.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := yaml.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	groups, _, err := unstructured.NestedSlice(m, "spec", "groups")
	if err != nil || len(groups) == 0 {
		t.Fatalf("rules.yaml: no spec.groups (%v)", err)
	}
	return groups
}
