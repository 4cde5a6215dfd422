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

package observer

import (
	"context"
	"fmt"
	"net"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/test/bufconn"

	"github.com/palisade-dev/palisade/internal/flows"
)

func flow(i int, verdict flows.Verdict) flows.Flow {
	return flows.Flow{Node: "n1", Protocol: "TCP", Direction: "ingress", Verdict: verdict,
		Source:      flows.Endpoint{IP: fmt.Sprintf("10.0.0.%d", i), Port: 40000, Namespace: "shop", Pod: fmt.Sprintf("client-%d", i), Labels: map[string]string{"app": "client"}},
		Destination: flows.Endpoint{IP: "10.0.1.1", Port: uint16(8000 + i), Namespace: "db", Pod: "pg", Labels: map[string]string{"app": "pg"}}}
}

func collect(t *testing.T, b *Buffer, req *Request) (fs []flows.Flow, lost []Lost) {
	t.Helper()
	err := b.Observe(context.Background(), req, func(r *Response) error {
		if r.Flow != nil {
			fs = append(fs, *r.Flow)
		}
		if r.Lost != nil {
			lost = append(lost, *r.Lost)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return fs, lost
}

// TestBufferOverwritesAndCounts: a full ring keeps the newest flows and
// counts each overwritten one, and a request is told the totals.
func TestBufferOverwritesAndCounts(t *testing.T) {
	b := NewBuffer(4)
	var reported uint64
	b.OnLost = func(stage string, n uint64) {
		if stage == StageBuffer {
			reported += n
		}
	}
	for i := range 10 {
		b.Add(flow(i, flows.Forwarded))
	}
	b.Lost(StageKernel, 3)
	fs, lost := collect(t, b, &Request{})
	if len(fs) != 4 || fs[0].Source.Pod != "client-6" || fs[3].Source.Pod != "client-9" {
		t.Fatalf("held %d flows: %+v", len(fs), fs)
	}
	want := []Lost{{Stage: StageKernel, Count: 3, Total: true}, {Stage: StageBuffer, Count: 6, Total: true}}
	if fmt.Sprint(lost) != fmt.Sprint(want) || reported != 6 {
		t.Fatalf("lost %+v (reported %d), want %+v", lost, reported, want)
	}
	if s := b.Stats(); s.Seen != 10 || s.Held != 4 {
		t.Fatalf("stats %+v", s)
	}
	if fs, _ := collect(t, b, &Request{Last: 2}); len(fs) != 2 || fs[1].Source.Pod != "client-9" {
		t.Fatalf("last 2: %+v", fs)
	}
}

func TestFilter(t *testing.T) {
	dropped := flow(1, flows.Dropped)
	dropped.DropReason = flows.DefaultDeny
	dropped.Isolating = []flows.Policy{{Kind: "NetworkPolicy", Namespace: "db", Name: "pg-ingress"}}
	allowed := flow(2, flows.Forwarded)
	allowed.Policy = &flows.Policy{Kind: "ClusterNetworkPolicy", Name: "baseline"}
	world := flow(3, flows.Dropped)
	world.Source = flows.Endpoint{IP: "203.0.113.7", Identity: 2, Entity: "world"}
	world.Protocol = "UDP"
	for _, tc := range []struct {
		name string
		f    Filter
		want []*flows.Flow
	}{
		{"none", Filter{}, []*flows.Flow{&dropped, &allowed, &world}},
		{"from pod", Filter{FromPod: []string{"shop/client-1"}}, []*flows.Flow{&dropped}},
		{"pod by name and prefix", Filter{Pod: []string{"client-*"}}, []*flows.Flow{&dropped, &allowed}},
		{"to pod is either end with pod", Filter{Pod: []string{"db/pg"}}, []*flows.Flow{&dropped, &allowed, &world}},
		{"from namespace", Filter{FromNamespace: []string{"shop"}}, []*flows.Flow{&dropped, &allowed}},
		{"to namespace", Filter{ToNamespace: []string{"shop"}}, nil},
		{"label", Filter{FromLabel: []string{"app=client"}}, []*flows.Flow{&dropped, &allowed}},
		{"label key", Filter{ToLabel: []string{"app"}}, []*flows.Flow{&dropped, &allowed, &world}},
		{"entity", Filter{FromLabel: []string{"reserved:world"}}, []*flows.Flow{&world}},
		{"ip prefix", Filter{FromIP: []string{"203.0.113.0/24"}}, []*flows.Flow{&world}},
		{"ip", Filter{IP: []string{"10.0.0.2"}}, []*flows.Flow{&allowed}},
		{"port", Filter{ToPort: []uint16{8001, 8002}}, []*flows.Flow{&dropped, &allowed}},
		{"protocol", Filter{Protocol: []string{"udp"}}, []*flows.Flow{&world}},
		{"verdict", Filter{Verdict: []flows.Verdict{flows.Dropped}}, []*flows.Flow{&dropped, &world}},
		{"drop reason", Filter{DropReason: []flows.DropReason{flows.DefaultDeny}}, []*flows.Flow{&dropped}},
		{"isolating policy", Filter{Policy: []string{"db/pg-ingress"}}, []*flows.Flow{&dropped}},
		{"cluster policy", Filter{Policy: []string{"ClusterNetworkPolicy/baseline"}}, []*flows.Flow{&allowed}},
		{"and across fields", Filter{Verdict: []flows.Verdict{flows.Dropped}, Protocol: []string{"TCP"}}, []*flows.Flow{&dropped}},
		{"node", Filter{Node: []string{"n2"}}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got []*flows.Flow
			for _, f := range []*flows.Flow{&dropped, &allowed, &world} {
				if tc.f.Match(f) {
					got = append(got, f)
				}
			}
			if fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Errorf("matched %d, want %d", len(got), len(tc.want))
			}
		})
	}
}

// serve runs the gRPC service on an in-memory listener and returns a
// client connection.
func serve(t *testing.T, b *Buffer) *grpc.ClientConn {
	lis := bufconn.Listen(1 << 20)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, lis, b) }()
	conn, err := grpc.NewClient("passthrough:///bufnet", grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) {
		return lis.DialContext(ctx)
	}), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		conn.Close()
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	return conn
}

// TestObserveOverGRPC: history with a filter, then following.
func TestObserveOverGRPC(t *testing.T) {
	b := NewBuffer(16)
	b.Add(flow(1, flows.Dropped))
	b.Add(flow(2, flows.Forwarded))
	conn := serve(t, b)

	var got []flows.Flow
	err := Observe(context.Background(), conn, &Request{Filter: Filter{Verdict: []flows.Verdict{flows.Dropped}}}, func(r *Response) error {
		got = append(got, *r.Flow)
		return nil
	})
	if err != nil || len(got) != 1 || got[0].Source.Pod != "client-1" || got[0].Source.Labels["app"] != "client" {
		t.Fatalf("got %+v, %v", got, err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	recv := make(chan *Response, 10)
	go Observe(ctx, conn, &Request{Follow: true, Last: 1}, func(r *Response) error { recv <- r; return nil })
	if r := <-recv; r.Flow == nil || r.Flow.Source.Pod != "client-2" {
		t.Fatalf("first followed: %+v", r)
	}
	// The follower is registered once the history is sent; a flow added
	// from now on arrives.
	for i := 3; ; i++ {
		b.Add(flow(i, flows.Audit))
		select {
		case r := <-recv:
			if r.Flow == nil || r.Flow.Verdict != flows.Audit {
				t.Fatalf("followed: %+v", r)
			}
			b.Lost(StageKernel, 2)
			for r := range recv {
				if r.Lost != nil {
					if r.Lost.Stage != StageKernel || r.Lost.Count != 2 || r.Lost.Total {
						t.Fatalf("lost: %+v", r.Lost)
					}
					return
				}
			}
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// TestSlowClientCounted: a follower that does not read loses flows, and
// each loss is counted and sent to it.
func TestSlowClientCounted(t *testing.T) {
	b := NewBuffer(64)
	b.ClientQueue = 2
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	started, release := make(chan struct{}), make(chan struct{})
	var got []*Response
	done := make(chan error, 1)
	go func() {
		first := true
		done <- b.Observe(ctx, &Request{Follow: true}, func(r *Response) error {
			if first {
				first = false
				close(started)
				<-release
			}
			got = append(got, r)
			if len(got) == 3 {
				cancel()
			}
			return nil
		})
	}()
	// Wait until the follower is registered (Stats cannot say; add until
	// the sender blocks on the first flow).
	for {
		b.Add(flow(0, flows.Dropped))
		select {
		case <-started:
		case <-time.After(10 * time.Millisecond):
			continue
		}
		break
	}
	for i := range 5 {
		b.Add(flow(i+1, flows.Dropped))
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if n := b.Stats().Lost[StageClient]; n < 3 {
		t.Fatalf("client losses %d, want at least 3", n)
	}
	if got[1].Lost == nil || got[1].Lost.Stage != StageClient || got[1].Lost.Count < 3 {
		t.Fatalf("the follower was not told of its losses: %+v", got[1])
	}
}
