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

package agent

// Unit tests of the agent's decisions against a fake kernel and a fake
// API client: they run without root. agent_test.go runs the same agent on
// the real kernel.

import (
	"context"
	"fmt"
	"net/netip"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr/testr"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/yaml"

	v1 "github.com/palisade-dev/palisade/api/v1alpha1"
	"github.com/palisade-dev/palisade/internal/datapath"
	"github.com/palisade-dev/palisade/internal/engine"
	"github.com/palisade-dev/palisade/internal/render"
)

const testNode = "node-1"

// fakeKernel keeps the state in memory, with an endpoints limit.
type fakeKernel struct {
	state       *engine.MapState
	gen         uint64
	maxEndpoint int
	atts        map[int]string // ifindex → "workload" or "host"
	attachErr   map[int]error
	fqdn        []datapath.FQDNEntry // the learned toFQDNs table
	counters    datapath.Counters
	now         func() time.Time // the fake clock of ExpireFQDN
}

func newFakeKernel() *fakeKernel {
	return &fakeKernel{maxEndpoint: 1 << 16, atts: map[int]string{}, attachErr: map[int]error{}, now: time.Now}
}

func (k *fakeKernel) Apply(_ context.Context, s *engine.MapState) error {
	if len(s.Endpoints) > k.maxEndpoint {
		return &datapath.CapacityError{Map: "endpoints", Entries: len(s.Endpoints), Max: k.maxEndpoint}
	}
	k.state = s.Clone()
	k.gen++
	return nil
}

func (k *fakeKernel) Read() (*engine.MapState, uint64, error) {
	if k.state == nil {
		return &engine.MapState{}, 0, nil
	}
	return k.state.Clone(), k.gen, nil
}

func (k *fakeKernel) Compare(d *engine.MapState) ([]datapath.Drift, uint64, error) {
	s, gen, _ := k.Read()
	return datapath.Diff(d, s), gen, nil
}

func (k *fakeKernel) Generation() uint64 { return k.gen }

func (k *fakeKernel) Attachments() ([]datapath.Attachment, error) {
	var out []datapath.Attachment
	for i := range k.atts {
		out = append(out, datapath.Attachment{Ifindex: i})
	}
	return out, nil
}

func (k *fakeKernel) attach(i int, kind string) error {
	if err := k.attachErr[i]; err != nil {
		return err
	}
	k.atts[i] = kind
	return nil
}
func (k *fakeKernel) AttachWorkload(i int) error              { return k.attach(i, "workload") }
func (k *fakeKernel) AttachHost(i int) error                  { return k.attach(i, "host") }
func (k *fakeKernel) DetachWorkload(i int) error              { delete(k.atts, i); return nil }
func (k *fakeKernel) CheckPins() []datapath.Problem           { return nil }
func (k *fakeKernel) RepairPins() error                       { return nil }
func (k *fakeKernel) CheckWorkload(int) []datapath.Problem    { return nil }
func (k *fakeKernel) CheckHost(int) []datapath.Problem        { return nil }
func (k *fakeKernel) RepairWorkload(i int) error              { return k.AttachWorkload(i) }
func (k *fakeKernel) RepairHost(i int) error                  { return k.AttachHost(i) }
func (k *fakeKernel) Usage(*engine.MapState) []datapath.Usage { return nil }
func (k *fakeKernel) Counters() (datapath.Counters, error)    { return k.counters, nil }
func (k *fakeKernel) FQDNTable() ([]datapath.FQDNEntry, error) {
	out := make([]datapath.FQDNEntry, len(k.fqdn))
	for i, e := range k.fqdn {
		e.Addrs = slices.Clone(e.Addrs)
		out[i] = e
	}
	return out, nil
}

// ExpireFQDN deletes the addresses that expired by the fake clock, as the
// datapath does by the kernel's.
func (k *fakeKernel) ExpireFQDN() (int, error) {
	n := 0
	for i := range k.fqdn {
		before := len(k.fqdn[i].Addrs)
		k.fqdn[i].Addrs = slices.DeleteFunc(k.fqdn[i].Addrs, func(a datapath.FQDNAddr) bool { return !a.Expires.After(k.now()) })
		n += before - len(k.fqdn[i].Addrs)
	}
	return n, nil
}

// fakeLinks resolves workload addresses to interfaces from a table.
type fakeLinks map[netip.Addr]int

func (l fakeLinks) Interface(a netip.Addr) (int, string, error) {
	if i, ok := l[a]; ok {
		return i, fmt.Sprintf("veth%d", i), nil
	}
	return 0, "", fmt.Errorf("no route to %s", a)
}

func (l fakeLinks) ByName(name string) (int, error) {
	if name == "eth0" {
		return 1, nil
	}
	return 0, fmt.Errorf("host interface %s: not found", name)
}

type fixture struct {
	t     *testing.T
	c     client.Client
	k     *fakeKernel
	links fakeLinks
	a     *Agent
}

func newFixture(t *testing.T) *fixture {
	s := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{clientgoscheme.AddToScheme, v1.AddToScheme} {
		if err := add(s); err != nil {
			t.Fatal(err)
		}
	}
	c := fake.NewClientBuilder().WithScheme(s).WithStatusSubresource(&v1.NodeEnforcement{}).Build()
	f := &fixture{t: t, c: c, k: newFakeKernel(), links: fakeLinks{}}
	f.a = &Agent{Client: c, Datapath: f.k, Node: testNode, Links: f.links, Log: testr.New(t)}
	f.create(&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "shop"}})
	f.create(&corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: testNode, Labels: map[string]string{"kubernetes.io/hostname": testNode}}})
	f.create(&discoveryv1.EndpointSlice{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "kubernetes",
		Labels: map[string]string{discoveryv1.LabelServiceName: "kubernetes"}}, AddressType: discoveryv1.AddressTypeIPv4})
	return f
}

func (f *fixture) create(o client.Object) {
	f.t.Helper()
	if err := f.c.Create(context.Background(), o); err != nil {
		f.t.Fatalf("create %T %s: %v", o, o.GetName(), err)
	}
}

// pod adds a running pod of app on the node at ip; with an Identity for
// its labels unless pending, and an interface unless ifindex is 0.
func (f *fixture) pod(name, app, ip string, ifindex int, pending bool) {
	f.t.Helper()
	f.podOn(testNode, name, app, ip, ifindex, pending)
}

func (f *fixture) podOn(node, name, app, ip string, ifindex int, pending bool) {
	f.t.Helper()
	p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: name, Labels: map[string]string{"app": app}},
		Spec:   corev1.PodSpec{NodeName: node},
		Status: corev1.PodStatus{Phase: corev1.PodRunning, PodIPs: []corev1.PodIP{{IP: ip}}}}
	f.create(p)
	if ifindex > 0 {
		f.links[netip.MustParseAddr(ip)] = ifindex
	}
	if pending {
		return
	}
	l := engine.LabelPolicy{}.WorkloadLabels("shop", p.Labels, nil, "")
	var ids v1.IdentityList
	if err := f.c.List(context.Background(), &ids); err != nil {
		f.t.Fatal(err)
	}
	for _, id := range ids.Items {
		if engine.Labels(id.Spec.Labels).String() == l.String() {
			return
		}
	}
	f.create(&v1.Identity{ObjectMeta: metav1.ObjectMeta{Name: strconv.Itoa(1000 + len(ids.Items))}, Spec: v1.IdentitySpec{Labels: l}})
}

// policy creates or updates NetworkPolicy shop/name of set shop/demo at
// rev, whose revision renders total objects.
func (f *fixture) policy(name, rev string, total int, spec string) {
	f.t.Helper()
	np := &v1.NetworkPolicy{}
	if err := yaml.UnmarshalStrict([]byte(spec), &np.Spec); err != nil {
		f.t.Fatal(err)
	}
	np.Name, np.Namespace = name, "shop"
	np.Labels = map[string]string{render.LabelPolicySetName: "demo", render.LabelPolicySetNamespace: "shop"}
	np.Annotations = map[string]string{render.AnnotationRevision: rev, render.AnnotationRevisionObjects: strconv.Itoa(total)}
	old := &v1.NetworkPolicy{}
	ctx := context.Background()
	if err := f.c.Get(ctx, client.ObjectKeyFromObject(np), old); err == nil {
		np.ResourceVersion = old.ResourceVersion
		if err := f.c.Update(ctx, np); err != nil {
			f.t.Fatal(err)
		}
		return
	}
	f.create(np)
}

func (f *fixture) sync() (ctrl.Result, error) {
	f.t.Helper()
	return f.a.Reconcile(context.Background(), ctrl.Request{})
}

func (f *fixture) status() *v1.NodeEnforcement {
	f.t.Helper()
	ne := &v1.NodeEnforcement{}
	if err := f.c.Get(context.Background(), client.ObjectKey{Name: testNode}, ne); err != nil {
		f.t.Fatal(err)
	}
	return ne
}

func (f *fixture) condition(t string) *metav1.Condition {
	f.t.Helper()
	c := apimeta.FindStatusCondition(f.status().Status.Conditions, t)
	if c == nil {
		f.t.Fatalf("no %s condition", t)
	}
	return c
}

func (f *fixture) endpoint(ip string) (engine.EndpointEntry, bool) {
	e, ok := f.k.state.Endpoints[netip.MustParseAddr(ip)]
	return e, ok
}

const allowFrontend = `
endpointSelector: {matchLabels: {app: api}}
ingress:
- fromEndpoints: [{matchLabels: {app: frontend}}]
  toPorts: [{ports: [{port: "8080", protocol: TCP}]}]
`

const allowHTTP = `
endpointSelector: {matchLabels: {app: api}}
ingress:
- fromEndpoints: [{matchLabels: {app: frontend}}]
  toPorts: [{ports: [{port: "80", protocol: TCP}], rules: {http: [{method: GET, path: /public}]}}]
`

func TestEnforcesAndReportsEveryObject(t *testing.T) {
	f := newFixture(t)
	f.pod("api", "api", "10.0.0.2", 2, false)
	f.policy("api", "r1", 1, allowFrontend)
	if _, err := f.sync(); err != nil {
		t.Fatal(err)
	}
	ep, ok := f.endpoint("10.0.0.2")
	if !ok || ep == denyAll {
		t.Fatalf("api's endpoint entry: %+v, %v; want its policy", ep, ok)
	}
	if f.k.atts[2] != "workload" {
		t.Fatalf("api's interface is not attached: %v", f.k.atts)
	}
	sets := f.status().Status.PolicySets
	if len(sets) != 1 || sets[0].Revision != "r1" || sets[0].Policies != 1 || sets[0].Enforced != 1 || sets[0].Partial+sets[0].NotEnforced != 0 {
		t.Fatalf("policy sets: %+v", sets)
	}
	for _, c := range []string{v1.EnforcedCondition, v1.NetworkEnforcedCondition, v1.L7EnforcedCondition, v1.TracingEnforcedCondition, v1.FlowsObservedCondition, v1.ReadyCondition} {
		if got := f.condition(c); got.Status != metav1.ConditionTrue {
			t.Errorf("%s: %s %s: %s", c, got.Status, got.Reason, got.Message)
		}
	}
}

func TestL7AndTracingAreReportedNotEnforced(t *testing.T) {
	f := newFixture(t)
	f.pod("api", "api", "10.0.0.2", 2, false)
	f.policy("api", "r1", 2, allowHTTP)
	tp := &v1.TracingPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "kill-shells",
		Labels:      map[string]string{render.LabelPolicySetName: "demo", render.LabelPolicySetNamespace: "shop"},
		Annotations: map[string]string{render.AnnotationRevision: "r1", render.AnnotationRevisionObjects: "2"}}}
	f.create(tp)
	if _, err := f.sync(); err != nil {
		t.Fatal(err)
	}
	sets := f.status().Status.PolicySets
	if len(sets) != 1 {
		t.Fatalf("policy sets: %+v", sets)
	}
	s := sets[0]
	if s.Policies != 2 || s.Enforced != 0 || s.Partial != 1 || s.NotEnforced != 1 || len(s.Objects) != 2 {
		t.Fatalf("set entry: %+v", s)
	}
	byName := map[string]v1.ObjectEnforcement{}
	for _, o := range s.Objects {
		byName[o.Kind+"/"+o.Name] = o
	}
	np := byName["NetworkPolicy/api"]
	if np.State != v1.ObjectPartial || np.Reason != v1.NotSupportedReason || !strings.Contains(np.Message, "ingress HTTP rules on 80/TCP are not enforced") {
		t.Errorf("NetworkPolicy shop/api: %+v", np)
	}
	tr := byName["TracingPolicy/kill-shells"]
	if tr.State != v1.ObjectNotEnforced || tr.Reason != v1.NotSupportedReason {
		t.Errorf("TracingPolicy shop/kill-shells: %+v", tr)
	}
	if c := f.condition(v1.EnforcedCondition); c.Status != metav1.ConditionFalse || c.Reason != v1.PartiallyEnforcedReason ||
		!strings.Contains(c.Message, "NetworkPolicy shop/api: ingress HTTP rules on 80/TCP") {
		t.Errorf("Enforced: %s %s: %s", c.Status, c.Reason, c.Message)
	}
	if c := f.condition(v1.L7EnforcedCondition); c.Status != metav1.ConditionFalse || c.Reason != v1.NotSupportedReason {
		t.Errorf("L7Enforced: %s %s: %s", c.Status, c.Reason, c.Message)
	}
	if c := f.condition(v1.TracingEnforcedCondition); c.Status != metav1.ConditionFalse {
		t.Errorf("TracingEnforced: %s %s: %s", c.Status, c.Reason, c.Message)
	}
	// L3/L4 is enforced all the same.
	if c := f.condition(v1.NetworkEnforcedCondition); c.Status != metav1.ConditionTrue {
		t.Errorf("NetworkEnforced: %s %s: %s", c.Status, c.Reason, c.Message)
	}
}

func TestPendingIdentityFailsClosedAndStillAttaches(t *testing.T) {
	f := newFixture(t)
	f.pod("api", "api", "10.0.0.2", 2, true)
	f.policy("api", "r1", 1, allowFrontend)
	if _, err := f.sync(); err != nil {
		t.Fatal(err)
	}
	if ep, _ := f.endpoint("10.0.0.2"); ep != denyAll {
		t.Fatalf("endpoint entry %+v, want deny-all", ep)
	}
	if f.k.atts[2] != "workload" {
		t.Fatalf("the pending workload's interface must carry the programs: %v", f.k.atts)
	}
	errs := f.status().Status.Errors
	if len(errs) != 1 || errs[0].Endpoint != "shop/api" || errs[0].Reason != reasonIdentityPending {
		t.Fatalf("errors: %+v", errs)
	}
	if c := f.condition(v1.NetworkEnforcedCondition); c.Status != metav1.ConditionFalse || c.Reason != v1.FailClosedReason {
		t.Errorf("NetworkEnforced: %s %s", c.Status, c.Reason)
	}
	s := f.status().Status.PolicySets[0]
	if s.Partial != 1 || s.Objects[0].Reason != v1.FailClosedReason {
		t.Errorf("set entry: %+v", s)
	}
}

func TestUnresolvedInterfaceFailsClosedAndRetries(t *testing.T) {
	f := newFixture(t)
	f.pod("api", "api", "10.0.0.2", 0, false) // no interface
	f.policy("api", "r1", 1, allowFrontend)
	res, err := f.sync()
	if err != nil {
		t.Fatal(err)
	}
	if res.RequeueAfter == 0 {
		t.Error("a workload whose interface is not there yet must be retried")
	}
	if ep, _ := f.endpoint("10.0.0.2"); ep != denyAll {
		t.Fatalf("endpoint entry %+v, want deny-all", ep)
	}
	errs := f.status().Status.Errors
	if len(errs) != 1 || errs[0].Reason != reasonInterfaceNotFound {
		t.Fatalf("errors: %+v", errs)
	}
	// The interface appears: the workload gets its policy and programs.
	f.links[netip.MustParseAddr("10.0.0.2")] = 7
	if res, err = f.sync(); err != nil || res.RequeueAfter != 0 {
		t.Fatalf("sync: %v, %+v", err, res)
	}
	if ep, _ := f.endpoint("10.0.0.2"); ep == denyAll || f.k.atts[7] != "workload" {
		t.Fatalf("after the interface appeared: entry %+v, attachments %v", ep, f.k.atts)
	}
}

func TestUnresolvedInterfaceKeepsItsPrograms(t *testing.T) {
	f := newFixture(t)
	f.pod("api", "api", "10.0.0.2", 2, false)
	if _, err := f.sync(); err != nil {
		t.Fatal(err)
	}
	delete(f.links, netip.MustParseAddr("10.0.0.2")) // the route lookup fails this time
	if _, err := f.sync(); err != nil {
		t.Fatal(err)
	}
	if f.k.atts[2] != "workload" {
		t.Fatal("an interface that may still be the workload's lost its programs")
	}
}

func TestMapFullAttachesNewWorkloadAndFailsClosed(t *testing.T) {
	f := newFixture(t)
	f.k.maxEndpoint = 1
	f.pod("api", "api", "10.0.0.2", 2, false)
	f.policy("api", "r1", 1, allowFrontend)
	if _, err := f.sync(); err != nil {
		t.Fatal(err)
	}
	f.pod("api2", "api", "10.0.0.3", 3, false)
	f.policy("api", "r2", 1, allowFrontend)
	if res, err := f.sync(); err != nil || res.RequeueAfter == 0 {
		t.Fatalf("a sync that cannot write the state must be retried: %v, %+v", err, res)
	}
	if _, ok := f.endpoint("10.0.0.3"); ok {
		t.Fatal("the endpoints map is full: the new workload cannot have an entry")
	}
	if f.k.atts[3] != "workload" {
		t.Fatalf("the new workload's interface must carry the programs, which drop an address without an entry: %v", f.k.atts)
	}
	ne := f.status()
	if len(ne.Status.Errors) != 1 || ne.Status.Errors[0].Endpoint != "shop/api2" || ne.Status.Errors[0].Reason != v1.MapFullReason {
		t.Fatalf("errors: %+v", ne.Status.Errors)
	}
	if c := f.condition(v1.EnforcedCondition); c.Status != metav1.ConditionFalse || c.Reason != v1.MapFullReason {
		t.Errorf("Enforced: %s %s: %s", c.Status, c.Reason, c.Message)
	}
	if s := ne.Status.PolicySets; len(s) != 1 || s[0].Revision != "r1" {
		t.Errorf("the node still enforces r1 only: %+v", s)
	}
}

func TestOneRevisionAtATime(t *testing.T) {
	f := newFixture(t)
	f.pod("api", "api", "10.0.0.2", 2, false)
	f.podOn("node-2", "frontend", "frontend", "10.0.1.2", 0, false)
	f.policy("api", "r1", 2, allowFrontend)
	f.policy("api-deny", "r1", 2, `
endpointSelector: {matchLabels: {app: api}}
ingressDeny: [{fromEntities: [world]}]
`)
	if _, err := f.sync(); err != nil {
		t.Fatal(err)
	}
	r1 := f.k.state.Clone()
	gen := f.k.gen

	// The manager applies r2's first object and dies.
	f.policy("api", "r2", 2, `
endpointSelector: {matchLabels: {app: api}}
ingress:
- fromEndpoints: [{matchLabels: {app: frontend}}]
  toPorts: [{ports: [{port: "9090", protocol: TCP}]}]
`)
	if _, err := f.sync(); err != nil {
		t.Fatal(err)
	}
	if f.k.gen != gen || len(datapath.Diff(r1, f.k.state)) != 0 {
		t.Fatal("a half-applied revision reached the kernel")
	}
	s := f.status().Status.PolicySets
	if len(s) != 1 || s[0].Revision != "r1" || s[0].PendingRevision != "r2" {
		t.Fatalf("set entry: %+v", s)
	}

	// r2 with a new object counted but not created yet: still r1.
	f.policy("api-deny", "r2", 3, `
endpointSelector: {matchLabels: {app: api}}
ingressDeny: [{fromEntities: [world]}]
`)
	f.policy("api", "r2", 3, `
endpointSelector: {matchLabels: {app: api}}
ingress:
- fromEndpoints: [{matchLabels: {app: frontend}}]
  toPorts: [{ports: [{port: "9090", protocol: TCP}]}]
`)
	if _, err := f.sync(); err != nil {
		t.Fatal(err)
	}
	if f.k.gen != gen {
		t.Fatal("a revision with an object missing reached the kernel")
	}
	f.policy("api-extra", "r2", 3, allowFrontend)
	if _, err := f.sync(); err != nil {
		t.Fatal(err)
	}
	if f.k.gen == gen || len(datapath.Diff(r1, f.k.state)) == 0 {
		t.Fatalf("the complete revision r2 was not written: %+v", f.status().Status)
	}
	if s := f.status().Status.PolicySets; s[0].Revision != "r2" || s[0].PendingRevision != "" || s[0].Policies != 3 {
		t.Fatalf("set entry: %+v", s)
	}
}

// cacheless serves lists from one client, as if the cache had lost every
// policy object, and everything else from the other.
type emptyCache struct{ client.Client }

func (c emptyCache) List(ctx context.Context, l client.ObjectList, opts ...client.ListOption) error {
	switch l.(type) {
	case *v1.NetworkPolicyList, *v1.ClusterNetworkPolicyList, *v1.TracingPolicyList, *v1.ClusterTracingPolicyList:
		return nil
	}
	return c.Client.List(ctx, l, opts...)
}

func TestAnEmptyCacheIsNotADeletion(t *testing.T) {
	f := newFixture(t)
	f.pod("api", "api", "10.0.0.2", 2, false)
	f.policy("api", "r1", 1, allowFrontend)
	if _, err := f.sync(); err != nil {
		t.Fatal(err)
	}
	gen := f.k.gen
	f.a.Client = emptyCache{f.c}
	f.a.APIReader = f.c
	if _, err := f.sync(); err != nil {
		t.Fatal(err)
	}
	if f.k.gen != gen {
		t.Fatal("a cache without the set's objects was read as their deletion")
	}
	// Deleted for real: the API server confirms, and the set goes.
	if err := f.c.Delete(context.Background(), &v1.NetworkPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "api"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.sync(); err != nil {
		t.Fatal(err)
	}
	if f.k.gen == gen {
		t.Fatal("the deleted set is still enforced")
	}
	if s := f.status().Status.PolicySets; len(s) != 0 {
		t.Fatalf("policy sets: %+v", s)
	}
}

func TestHostFirewallWithoutInterfaceIsNotEnforced(t *testing.T) {
	f := newFixture(t)
	cnp := &v1.ClusterNetworkPolicy{ObjectMeta: metav1.ObjectMeta{Name: "host",
		Labels:      map[string]string{render.LabelPolicySetName: "demo", render.LabelPolicySetNamespace: "shop"},
		Annotations: map[string]string{render.AnnotationRevision: "r1", render.AnnotationRevisionObjects: "1"}},
		Spec: v1.ClusterNetworkPolicySpec{NodeSelector: &metav1.LabelSelector{}}}
	f.create(cnp)
	if _, err := f.sync(); err != nil {
		t.Fatal(err)
	}
	s := f.status().Status.PolicySets
	if len(s) != 1 || s[0].NotEnforced != 1 || s[0].Objects[0].Reason != v1.HostInterfaceMissingReason {
		t.Fatalf("set entry: %+v", s)
	}
	f.a.HostInterfaces = []string{"eth0"}
	if _, err := f.sync(); err != nil {
		t.Fatal(err)
	}
	if s := f.status().Status.PolicySets; s[0].Enforced != 1 || f.k.atts[1] != "host" {
		t.Fatalf("set entry %+v, attachments %v", s, f.k.atts)
	}
}

func TestMergeErrors(t *testing.T) {
	got := mergeErrors([]v1.EndpointError{
		{Endpoint: "shop/b", Reason: "MapFull", Message: "full"},
		{Endpoint: "shop/a", Reason: "IdentityPending", Message: "no identity"},
		{Endpoint: "shop/b", Reason: "InterfaceNotFound", Message: "no route"},
	})
	want := []v1.EndpointError{
		{Endpoint: "shop/a", Reason: "IdentityPending", Message: "no identity"},
		{Endpoint: "shop/b", Reason: "MapFull", Message: "full; InterfaceNotFound: no route"},
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("got %+v\nwant %+v", got, want)
	}
}

func TestListedObjectsAreBounded(t *testing.T) {
	f := newFixture(t)
	f.pod("api", "api", "10.0.0.2", 2, false)
	// 5 sets × 70 objects with HTTP rules: every one partly enforced.
	const sets, per = 5, 70
	for s := 0; s < sets; s++ {
		for i := 0; i < per; i++ {
			np := &v1.NetworkPolicy{}
			if err := yaml.UnmarshalStrict([]byte(allowHTTP), &np.Spec); err != nil {
				t.Fatal(err)
			}
			np.Name, np.Namespace = fmt.Sprintf("p%d-%d", s, i), "shop"
			np.Labels = map[string]string{render.LabelPolicySetName: fmt.Sprintf("set%d", s), render.LabelPolicySetNamespace: "shop"}
			np.Annotations = map[string]string{render.AnnotationRevision: "r1", render.AnnotationRevisionObjects: strconv.Itoa(per)}
			f.create(np)
		}
	}
	if _, err := f.sync(); err != nil {
		t.Fatal(err)
	}
	st := f.status().Status
	listed := 0
	for _, s := range st.PolicySets {
		if s.Partial != per || len(s.Objects) > v1.MaxObjectsPerSet {
			t.Errorf("set %s: partial %d, %d listed", s.Name, s.Partial, len(s.Objects))
		}
		listed += len(s.Objects)
	}
	if len(st.PolicySets) != sets || listed != v1.MaxObjectsPerNode {
		t.Fatalf("%d sets, %d objects listed; want %d sets and %d listed in all", len(st.PolicySets), listed, sets, v1.MaxObjectsPerNode)
	}
	// The same state reports the same status: no write per report.
	before := st.PolicySets
	if _, err := f.sync(); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(before, f.status().Status.PolicySets) {
		t.Fatal("the listed objects changed between two reports of the same state")
	}
}
