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

// Unit tests of the flow observer with a fake kernel and fake events:
// resolution, attribution, earlier generations, losses.

import (
	"context"
	"errors"
	"net/netip"
	"testing"
	"time"

	"github.com/cilium/ebpf/ringbuf"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "github.com/palisade-dev/palisade/api/v1alpha1"
	"github.com/palisade-dev/palisade/internal/datapath"
	"github.com/palisade-dev/palisade/internal/engine"
	"github.com/palisade-dev/palisade/internal/flows"
	"github.com/palisade-dev/palisade/internal/observer"
	"github.com/palisade-dev/palisade/internal/render"
)

// lossyKernel is the fake kernel with a count of lost events.
type lossyKernel struct {
	*fakeKernel
	lost uint64
}

func (k *lossyKernel) Counters() (datapath.Counters, error) {
	return datapath.Counters{EventsLost: k.lost}, nil
}

// fakeSource hands out events, then errors, then blocks until closed.
type fakeSource struct {
	events []datapath.Event
	errs   []error
	closed chan struct{}
}

func (s *fakeSource) Read() (datapath.Event, error) {
	if len(s.events) > 0 {
		e := s.events[0]
		s.events = s.events[1:]
		return e, nil
	}
	if len(s.errs) > 0 {
		err := s.errs[0]
		s.errs = s.errs[1:]
		return datapath.Event{}, err
	}
	<-s.closed
	return datapath.Event{}, ringbuf.ErrClosed
}

func (s *fakeSource) Close() error { close(s.closed); return nil }

// withObserver gives the fixture's agent an observer keeping gens
// generations.
func withObserver(f *fixture, gens int) *Observer {
	o := &Observer{Buffer: observer.NewBuffer(16), Generations: gens}
	f.a.Observer = o
	return o
}

// annotateSource sets the policy's palisade.dev/source, as render does.
func (f *fixture) annotateSource(name, src string) {
	f.t.Helper()
	np := &v1.NetworkPolicy{}
	if err := f.c.Get(context.Background(), client.ObjectKey{Namespace: "shop", Name: name}, np); err != nil {
		f.t.Fatal(err)
	}
	np.Annotations[render.AnnotationSource] = src
	if err := f.c.Update(context.Background(), np); err != nil {
		f.t.Fatal(err)
	}
}

func (f *fixture) mustSync() {
	f.t.Helper()
	if _, err := f.sync(); err != nil {
		f.t.Fatal(err)
	}
}

// ruleOf is the id of the policy's first rule in the last sync.
func (f *fixture) ruleOf(name string) engine.RuleID {
	f.t.Helper()
	for _, r := range f.a.last.ir.Rules() {
		if r.Origin.Name == name {
			return r.ID
		}
	}
	f.t.Fatalf("no rule of %s", name)
	return 0
}

func ingress(gen uint64, v engine.Verdict, reason datapath.Reason, rule engine.RuleID, src, dst string, port uint16) datapath.Event {
	return datapath.Event{Generation: gen, Direction: engine.Ingress, Verdict: v, Reason: reason, Rule: rule,
		LocalIdentity: 1001, PeerIdentity: 1000, Src: netip.MustParseAddr(src), Dst: netip.MustParseAddr(dst),
		Proto: engine.ProtoTCP, SrcPort: 40000, DstPort: port, Port: port}
}

func (o *Observer) all(t *testing.T) []flows.Flow {
	t.Helper()
	var out []flows.Flow
	if err := o.Buffer.Observe(context.Background(), &observer.Request{}, func(r *observer.Response) error {
		if r.Flow != nil {
			out = append(out, *r.Flow)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

const allowFrontend8080And8081 = `
endpointSelector: {matchLabels: {app: api}}
ingress:
- fromEndpoints: [{matchLabels: {app: frontend}}]
  toPorts: [{ports: [{port: "8080", protocol: TCP}, {port: "8081", protocol: TCP}]}]
`

// TestObserverResolvesAndAttributes: an allowed flow names its rule with
// revision and file:line, a default-deny drop names the isolating
// policy, endpoints resolve to pods and entities, and an event of the
// previous generation still names the rule as that generation had it.
func TestObserverResolvesAndAttributes(t *testing.T) {
	f := newFixture(t)
	o := withObserver(f, 2)
	f.pod("frontend", "frontend", "10.0.0.1", 1, false)
	f.pod("api", "api", "10.0.0.2", 2, false)
	f.policy("allow-frontend", "r1", 1, allowFrontend)
	f.annotateSource("allow-frontend", "shop/api.cue:12:3")
	f.mustSync()
	gen1, rule := f.k.gen, f.ruleOf("allow-frontend")
	if c := f.condition(v1.FlowsObservedCondition); c.Status != metav1.ConditionTrue {
		t.Fatalf("FlowsObserved: %+v", c)
	}

	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	o.Observe(ptr(ingress(gen1, engine.VerdictAllow, datapath.Reason(engine.ReasonAllowed), rule, "10.0.0.1", "10.0.0.2", 8080)), now)
	deny := ingress(gen1, engine.VerdictDeny, datapath.Reason(engine.ReasonDefaultDeny), 0, "203.0.113.9", "10.0.0.2", 22)
	deny.PeerIdentity = engine.IdentityWorld
	deny.TCPFlags = datapath.TCPFlagSYN
	deny.Time = now.Add(time.Second) // the kernel's time wins
	o.Observe(&deny, now)

	// A new revision at another line, which changes the kernel's state:
	// a new generation, where the rule keeps its id.
	f.policy("allow-frontend", "r2", 1, allowFrontend8080And8081)
	f.annotateSource("allow-frontend", "shop/api.cue:20:3")
	f.mustSync()
	gen2 := f.k.gen
	if gen2 == gen1 || f.ruleOf("allow-frontend") != rule {
		t.Fatalf("generations %d, %d; rule %d, %d", gen1, gen2, rule, f.ruleOf("allow-frontend"))
	}
	o.Observe(ptr(ingress(gen1, engine.VerdictAllow, datapath.Reason(engine.ReasonAllowed), rule, "10.0.0.1", "10.0.0.2", 8080)), now)
	o.Observe(ptr(ingress(gen2, engine.VerdictAllow, datapath.Reason(engine.ReasonAllowed), rule, "10.0.0.1", "10.0.0.2", 8081)), now)

	fs := o.all(t)
	if len(fs) != 4 {
		t.Fatalf("%d flows", len(fs))
	}
	allowed := fs[0]
	if allowed.Verdict != flows.Forwarded || allowed.Node != testNode || !allowed.Time.Equal(now) || allowed.Protocol != "TCP" || allowed.Direction != "ingress" {
		t.Errorf("allowed: %+v", allowed)
	}
	if s, d := allowed.Source, allowed.Destination; s.Pod != "frontend" || s.Namespace != "shop" || s.Labels["app"] != "frontend" || s.Identity != 1000 ||
		d.Pod != "api" || d.Port != 8080 || d.IP != "10.0.0.2" {
		t.Errorf("endpoints: %+v -> %+v", s, d)
	}
	want := flows.Policy{Kind: "NetworkPolicy", Namespace: "shop", Name: "allow-frontend", Path: "spec.ingress[0]",
		File: "shop/api.cue", Line: 12, Column: 3, Revision: "r1", PolicySet: "shop/demo"}
	if p := allowed.Policy; p == nil || p.Kind != want.Kind || p.Name != want.Name || p.File != want.File || p.Line != want.Line || p.Revision != want.Revision || p.PolicySet != want.PolicySet {
		t.Errorf("policy: %+v, want %+v", p, want)
	}

	dropped := fs[1]
	if dropped.Verdict != flows.Dropped || dropped.DropReason != flows.DefaultDeny || dropped.Policy != nil {
		t.Errorf("dropped: %+v", dropped)
	}
	if dropped.TCPFlags != "SYN" || !dropped.Time.Equal(now.Add(time.Second)) {
		t.Errorf("dropped: flags %q at %s", dropped.TCPFlags, dropped.Time)
	}
	if dropped.Source.Entity != "world" || dropped.Source.Pod != "" {
		t.Errorf("world source: %+v", dropped.Source)
	}
	if len(dropped.Isolating) != 1 || dropped.Isolating[0].Name != "allow-frontend" || dropped.Isolating[0].Revision != "r1" || dropped.Isolating[0].Line != 12 {
		t.Errorf("isolating: %+v", dropped.Isolating)
	}

	if p := fs[2].Policy; p == nil || p.Revision != "r1" || p.Line != 12 {
		t.Errorf("the previous generation's event: %+v", p)
	}
	if p := fs[3].Policy; p == nil || p.Revision != "r2" || p.Line != 20 {
		t.Errorf("the new generation's event: %+v", p)
	}

	// Two generations are kept: after a third, the first is gone and its
	// events name the rule as the newest generation has it.
	f.policy("allow-frontend", "r3", 1, allowFrontend)
	f.annotateSource("allow-frontend", "shop/api.cue:30:3")
	f.mustSync()
	if len(o.views) != 2 {
		t.Fatalf("%d generations kept, want 2", len(o.views))
	}
	o.Observe(ptr(ingress(gen1, engine.VerdictAllow, datapath.Reason(engine.ReasonAllowed), rule, "10.0.0.1", "10.0.0.2", 8080)), now)
	fs = o.all(t)
	if p := fs[len(fs)-1].Policy; p == nil || p.Revision != "r3" {
		t.Errorf("an event of a generation no longer kept: %+v", p)
	}
}

func ptr[T any](v T) *T { return &v }

// TestObserverFailClosedReasons: a workload without an Identity drops
// with identity-pending, not a bare default-deny.
func TestObserverFailClosedReasons(t *testing.T) {
	f := newFixture(t)
	o := withObserver(f, 0)
	f.pod("api", "api", "10.0.0.2", 2, true)
	f.mustSync()
	o.Observe(ptr(ingress(f.k.gen, engine.VerdictDeny, datapath.Reason(engine.ReasonDefaultDeny), 0, "10.0.0.1", "10.0.0.2", 80)), time.Now())
	o.Observe(ptr(ingress(f.k.gen, engine.VerdictDeny, datapath.ReasonMalformed, 0, "10.0.0.1", "10.0.0.2", 80)), time.Now())
	o.Observe(ptr(ingress(f.k.gen, engine.VerdictDeny, datapath.Reason(engine.ReasonDenied), 0, "10.0.0.1", "10.0.0.3", 80)), time.Now())
	fs := o.all(t)
	for i, want := range []flows.DropReason{flows.IdentityPending, flows.Malformed, flows.ExplicitDeny} {
		if fs[i].DropReason != want || fs[i].Verdict != flows.Dropped {
			t.Errorf("flow %d: %s %s, want dropped %s", i, fs[i].Verdict, fs[i].DropReason, want)
		}
	}
}

// TestObserverCountsLosses: the kernel's lost events are counted at each
// verify pass, undecodable events as decode losses, and the reader stops
// when its source closes.
func TestObserverCountsLosses(t *testing.T) {
	f := newFixture(t)
	k := &lossyKernel{fakeKernel: f.k, lost: 5}
	f.a.Datapath = k
	o := withObserver(f, 0)
	f.pod("api", "api", "10.0.0.2", 2, false)
	f.mustSync()
	f.a.VerifyNow(context.Background()) // the first pass reads the baseline
	k.lost = 12
	f.a.VerifyNow(context.Background())
	if n := o.Buffer.Stats().Lost[observer.StageKernel]; n != 7 {
		t.Fatalf("kernel losses %d, want 7", n)
	}

	src := &fakeSource{events: []datapath.Event{ingress(f.k.gen, engine.VerdictAudit, datapath.Reason(engine.ReasonDefaultDeny), 0, "10.0.0.1", "10.0.0.2", 80)},
		errs: []error{errors.New("decode event: short"), errors.New("decode event: short")}, closed: make(chan struct{})}
	o.Source = src
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- o.Start(ctx) }()
	for o.Buffer.Stats().Lost[observer.StageDecode] < 2 {
		time.Sleep(time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if fs := o.all(t); len(fs) != 1 || fs[0].Verdict != flows.Audit || fs[0].DropReason != flows.DefaultDeny {
		t.Fatalf("flows: %+v", fs)
	}
}

const auditAPI = `
endpointSelector: {matchLabels: {app: api}}
mode: audit
ingress:
- fromEndpoints: [{matchLabels: {app: frontend}}]
`

// TestAuditModeWithoutObserver: audit mode is enforced as the capability
// table says only while the observer runs; without it the node says its
// reports are not made.
func TestAuditModeWithoutObserver(t *testing.T) {
	for _, observing := range []bool{true, false} {
		f := newFixture(t)
		if observing {
			withObserver(f, 0)
		}
		f.pod("api", "api", "10.0.0.2", 2, false)
		f.policy("audit-api", "r1", 1, auditAPI)
		f.mustSync()
		c := f.condition(v1.FlowsObservedCondition)
		sets := f.status().Status.PolicySets
		if observing && (c.Status != metav1.ConditionTrue || len(sets) != 1 || sets[0].Enforced != 1) {
			t.Errorf("observing: %+v, %+v", c, sets)
		}
		if !observing && (c.Status != metav1.ConditionFalse || len(sets) != 1 || sets[0].Partial != 1) {
			t.Errorf("not observing: %+v, %+v", c, sets)
		}
	}
}
