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

package agent_test

// BenchmarkFlowsToClient: verdict events from the real datapath through
// the observer (read, decode, resolve, buffer, gRPC stream) to a client in
// another process, with the traffic generator in the same run.

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"testing"
	"time"

	"golang.org/x/sys/unix"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/palisade-dev/palisade/internal/agent"
	"github.com/palisade-dev/palisade/internal/datapath"
	"github.com/palisade-dev/palisade/internal/devenv"
	"github.com/palisade-dev/palisade/internal/engine"
	"github.com/palisade-dev/palisade/internal/netlab"
	"github.com/palisade-dev/palisade/internal/observer"
)

// The client process: the test binary again, running
// TestFlowsClientProcess with these set.
const (
	clientAddrEnv   = "PALISADE_FLOWS_CLIENT_ADDR"
	clientEventsEnv = "PALISADE_FLOWS_CLIENT_EVENTS"
)

// clientResult is what the client process prints when done.
type clientResult struct {
	Flows uint64            `json:"flows"`
	Lost  map[string]uint64 `json:"lost"`
}

// TestFlowsClientProcess is BenchmarkFlowsToClient's client, a process of
// its own so that its CPU is not the agent's: it follows the service at
// $PALISADE_FLOWS_CLIENT_ADDR, says "ready" at its first flow (the
// marker), and once the flows and losses after it add up to
// $PALISADE_FLOWS_CLIENT_EVENTS prints its tally.
func TestFlowsClientProcess(t *testing.T) {
	addr := os.Getenv(clientAddrEnv)
	if addr == "" {
		t.Skip("BenchmarkFlowsToClient's client process")
	}
	want, err := strconv.ParseUint(os.Getenv(clientEventsEnv), 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	res := clientResult{Lost: map[string]uint64{}}
	ready, accounted := false, uint64(0)
	errDone := fmt.Errorf("done")
	err = observer.Observe(ctx, conn, &observer.Request{Follow: true, Last: 1}, func(r *observer.Response) error {
		switch {
		case r.Flow != nil && !ready:
			ready = true
			fmt.Println("ready")
			return nil
		case r.Flow != nil:
			res.Flows++
			accounted++
		case r.Lost != nil && !r.Lost.Total:
			res.Lost[r.Lost.Stage] += r.Lost.Count
			accounted += r.Lost.Count
		}
		if accounted >= want {
			return errDone
		}
		return nil
	})
	if err != errDone {
		t.Fatal(err)
	}
	out, _ := json.Marshal(res)
	fmt.Println(string(out))
}

// BenchmarkFlowsToClient drives b.N drop events into the real datapath
// (BPF_PROG_TEST_RUN with repeat on the workload's ingress program, UDP
// to a default-deny workload) and runs the observer pipeline to one
// following client in another process. It reports the events delivered
// to the client per second, the losses by stage per event, and the
// agent's CPU: the process's (getrusage RUSAGE_SELF: reader, resolve,
// buffer, gRPC server, runtime) minus the generator thread's
// (RUSAGE_THREAD, locked to its thread), in percent of a core per 100k
// events/s read. rate=max floods; rate=500k paces the generator.
func BenchmarkFlowsToClient(b *testing.B) {
	if err := netlab.Available(); err != nil {
		b.Skip(err)
	}
	if !netlab.Isolated() {
		b.Fatal("not in a node namespace of its own")
	}
	for _, rate := range []int{0, 500_000} {
		name := "rate=max"
		if rate > 0 {
			name = fmt.Sprintf("rate=%dk", rate/1000)
		}
		b.Run(name, func(b *testing.B) { benchFlows(b, rate) })
	}
}

func benchFlows(b *testing.B, rate int) {
	pins, cleanup, err := devenv.PinDir(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { cleanup() })
	dp, err := datapath.Open(pins, nil)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { dp.Remove() })
	peer, wlIP := netip.MustParseAddr("10.78.0.1"), netip.MustParseAddr("10.78.0.2")
	if err := dp.Apply(context.Background(), &engine.MapState{
		Endpoints: map[netip.Addr]engine.EndpointEntry{wlIP: {Identity: 256, PolicyID: 256, Flags: engine.IngressDefaultDeny}},
		IPCache:   map[netip.Prefix]engine.Identity{netip.PrefixFrom(wlIP, 32): 256, netip.PrefixFrom(peer, 32): 257},
	}); err != nil {
		b.Fatal(err)
	}
	w, err := netlab.Create(fmt.Sprintf("pb%d", os.Getpid()%100000), wlIP)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { w.Delete() })
	if err := dp.AttachWorkload(w.Ifindex); err != nil {
		b.Fatal(err)
	}
	prog := ingressProgram(b, pins, w.Ifindex)
	frame := udpFrame(peer, wlIP, 40000, 9999)

	er, err := dp.Events()
	if err != nil {
		b.Fatal(err)
	}
	buf := observer.NewBuffer(0)
	o := &agent.Observer{Source: er, Buffer: buf, Kernel: dp, LossInterval: 100 * time.Millisecond}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	started := make(chan error, 1)
	go func() { started <- o.Start(ctx) }()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- observer.Serve(ctx, lis, buf) }()

	cmd := exec.Command(os.Args[0], "-test.run=^TestFlowsClientProcess$", "-test.count=1")
	cmd.Env = append(os.Environ(), clientAddrEnv+"="+lis.Addr().String(), clientEventsEnv+"="+strconv.Itoa(b.N))
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	lines := make(chan string, 4)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	// The marker: events until the client has one (its subscription
	// comes with it), then the buffer holds no other.
	seen := buf.Stats().Seen
	run(b, prog, frame, 1)
	for buf.Stats().Seen == seen {
		time.Sleep(time.Millisecond)
	}
	select {
	case l := <-lines:
		if l != "ready" {
			b.Fatalf("client: %q", l)
		}
	case <-time.After(time.Minute):
		b.Fatal("the client did not start")
	}
	before := buf.Stats()

	var self0, self1 unix.Rusage
	genCPU := make(chan time.Duration, 1)
	b.ResetTimer()
	start := time.Now()
	unix.Getrusage(unix.RUSAGE_SELF, &self0)
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		var t0, t1 unix.Rusage
		unix.Getrusage(unix.RUSAGE_THREAD, &t0)
		const batch = 1000
		for sent := 0; sent < b.N; sent += batch {
			if rate > 0 {
				if d := time.Until(start.Add(time.Duration(sent) * time.Second / time.Duration(rate))); d > 0 {
					time.Sleep(d)
				}
			}
			run(b, prog, frame, min(batch, b.N-sent))
		}
		unix.Getrusage(unix.RUSAGE_THREAD, &t1)
		genCPU <- cpu(&t1) - cpu(&t0)
	}()
	gen := <-genCPU
	generated := time.Since(start)
	var res clientResult
	select {
	case l := <-lines:
		if err := json.Unmarshal([]byte(l), &res); err != nil {
			b.Fatalf("client: %q: %v", l, err)
		}
	case <-time.After(2 * time.Minute):
		b.Fatalf("the client did not account for %d events: %+v", b.N, buf.Stats())
	}
	elapsed := time.Since(start)
	unix.Getrusage(unix.RUSAGE_SELF, &self1)
	b.StopTimer()
	if err := cmd.Wait(); err != nil {
		b.Fatal(err)
	}
	after := buf.Stats()
	cancel()
	<-started
	<-served

	var lost uint64
	for _, n := range res.Lost {
		lost += n
	}
	if res.Flows+lost != uint64(b.N) {
		b.Errorf("client: %d flows + %d lost, want %d", res.Flows, lost, b.N)
	}
	read := after.Seen - before.Seen // events the agent read and resolved
	agentCPU := cpu(&self1) - cpu(&self0) - gen
	perSec := func(n uint64) float64 { return float64(n) / elapsed.Seconds() }
	b.ReportMetric(float64(b.N)/generated.Seconds(), "generated/s")
	b.ReportMetric(perSec(read), "read/s")
	b.ReportMetric(perSec(res.Flows), "delivered/s")
	for _, st := range observer.Stages {
		b.ReportMetric(float64(res.Lost[st])/float64(b.N), "lost-"+st+"/event")
	}
	b.ReportMetric(100*agentCPU.Seconds()/elapsed.Seconds()/(perSec(read)/1e5), "agent-cpu%/100k-read/s")
	b.ReportMetric(100*agentCPU.Seconds()/elapsed.Seconds(), "agent-cpu%")
	b.ReportMetric(100*gen.Seconds()/elapsed.Seconds(), "gen-cpu%")
	b.ReportMetric(100*cmd.ProcessState.UserTime().Seconds()/elapsed.Seconds()+100*cmd.ProcessState.SystemTime().Seconds()/elapsed.Seconds(), "client-cpu%")
	b.ReportMetric(0, "ns/op")
}

func cpu(r *unix.Rusage) time.Duration {
	return time.Duration(r.Utime.Nano() + r.Stime.Nano())
}
