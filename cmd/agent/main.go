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

// Command agent is Palisade's node agent, run as a DaemonSet: it compiles
// the cluster's network policies for its node, writes them to the eBPF
// datapath, verifies the kernel against them and reports on the node's
// NodeEnforcement.
package main

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"

	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	v1 "github.com/palisade-dev/palisade/api/v1alpha1"
	"github.com/palisade-dev/palisade/internal/agent"
	"github.com/palisade-dev/palisade/internal/datapath"
	"github.com/palisade-dev/palisade/internal/kafka"
	"github.com/palisade-dev/palisade/internal/l7"
	"github.com/palisade-dev/palisade/internal/metrics"
	"github.com/palisade-dev/palisade/internal/observer"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "agent:", err)
		os.Exit(1)
	}
}

func run() error {
	tracingOK, tracingWhy := tracingSupport()
	var (
		nodeName      = flag.String("node-name", os.Getenv("NODE_NAME"), "name of this node (default $NODE_NAME)")
		pinDir        = flag.String("pin-dir", datapath.DefaultPinDir, "bpffs directory for the datapath's pinned maps and links")
		metricsAddr   = flag.String("metrics-bind-address", ":9091", "address of the Prometheus metrics endpoint; 0 disables it")
		probeAddr     = flag.String("health-probe-bind-address", ":8082", "address of the /healthz and /readyz endpoints")
		pprofAddr     = flag.String("pprof-bind-address", "0", "address of the Go runtime's /debug/pprof endpoints (profiles, execution trace); 0 (the default) disables them")
		verifyEvery   = flag.Duration("verify-interval", agent.DefaultVerifyInterval, "period of the verify loop that compares the kernel with the desired state")
		driftWindow   = flag.Duration("drift-window", agent.DefaultDriftWindow, "how long a kernel drift keeps Drifted=True")
		hostIfs       = flag.String("host-interfaces", "", "comma-separated host interfaces to attach the host firewall to")
		limEps        = flag.Int("max-endpoints", 0, "capacity of the endpoints map (0: the default)")
		limIPCache    = flag.Int("max-ipcache", 0, "capacity of the ipcache maps (0: the default)")
		limPolicy     = flag.Int("max-policy", 0, "capacity of the policy maps (0: the default)")
		flowsAddr     = flag.String("flows-bind-address", fmt.Sprintf(":%d", observer.DefaultPort), "address of the flow observer's gRPC service (palisadectl observe); 0 runs the agent without the observer")
		flowsSize     = flag.Int("flows-buffer-size", observer.DefaultBufferSize, "how many recent flows the observer keeps")
		flowsQueue    = flag.Int("flows-client-queue", observer.DefaultClientQueue, "how many flows a following client may fall behind before its flows are dropped (and counted)")
		flowsGens     = flag.Int("flows-generations", agent.DefaultGenerations, "how many policy generations' rule tables the observer keeps to name the rule of an older generation's event")
		flowsAdv      = flag.String("flows-advertise-address", "", "host:port the relay reaches the flow observer at, reported on NodeEnforcement; empty: the bound address, an unspecified host replaced by $NODE_IP (the node's address, from the downward API's status.hostIP) or else 127.0.0.1")
		flowsAllow    = flag.Bool("flows-allowed", false, "report allowed packets as forwarded flows too (one event per packet: for debugging, not for busy nodes)")
		tracingOn     = flag.Bool("tracing", tracingOK, "run TracingPolicies and ClusterTracingPolicies (default: on when the kernel has BTF and BPF-LSM is active); off, every tracing policy of the node is reported not enforced")
		tracingPins   = flag.String("tracing-pin-dir", "", "bpffs directory for the tracing units' pinned programs, links and maps (default: <pin-dir>/tracing, /sys/fs/bpf/palisade/tracing)")
		cgroupRoot    = flag.String("cgroup-root", agent.DefaultCgroupBase, "the host's cgroup mount, where pods' cgroups are found; the cgroup v2 hierarchy is its unified/ directory on a hybrid layout, or itself")
		tracingEvents = flag.String("tracing-events", "", "write every tracing event as a JSON line to this file (\"-\": standard output); empty: only count them in metrics")
		dnsRefusal    = flag.String("dns-refusal", "REFUSED", "the RCODE the kernel answers a DNS query that the DNS rules refuse with: REFUSED or NXDOMAIN (UDP and TCP; over TCP the connection is then closed toward the client)")
		fqdnMinTTL    = flag.Duration("fqdn-min-ttl", 0, "toFQDNs: the least time an address learned from a DNS answer is kept; a shorter TTL counts as this (whole seconds; 0: the kernel's default, 60s)")
		l7On          = flag.Bool("l7", true, "decide ingress HTTP rules in the kernel, request by request (bpf/l7: sockops on the pods' cgroup v2 directories, pinned under <pin-dir>/l7); off, or where it cannot load, ingress HTTP rules are reported not enforced")
		fqdnMaxAddrs  = flag.Int("fqdn-max-addresses-per-name", 0, "toFQDNs: the most addresses one name holds; further addresses are not learned, counted and shown on NodeEnforcement status.fqdn.capped (0: the kernel's default, 128)")
	)
	opts := zap.Options{}
	opts.BindFlags(flag.CommandLine)
	flag.Parse()
	ctrl.SetLogger(zap.New(zap.UseFlagOptions(&opts)))
	if *nodeName == "" {
		return errors.New("the node name is unknown: set --node-name or NODE_NAME (from the downward API's spec.nodeName)")
	}

	dp, err := datapath.Open(*pinDir, &datapath.Options{Limits: datapath.Limits{Endpoints: *limEps, IPCache: *limIPCache, Policy: *limPolicy}})
	if err != nil {
		return fmt.Errorf("datapath: %w", err)
	}
	defer dp.Close() // pins stay: enforcement continues without the agent
	switch *dnsRefusal {
	case "REFUSED":
		err = dp.SetDNSRcode(datapath.DNSRcodeRefused)
	case "NXDOMAIN":
		err = dp.SetDNSRcode(datapath.DNSRcodeNXDomain)
	default:
		err = fmt.Errorf("--dns-refusal=%q: want REFUSED or NXDOMAIN", *dnsRefusal)
	}
	if err != nil {
		return fmt.Errorf("datapath: %w", err)
	}
	if err := dp.SetFQDNSettings(datapath.FQDNSettings{MinTTL: *fqdnMinTTL, MaxAddrsPerName: *fqdnMaxAddrs}); err != nil {
		return fmt.Errorf("--fqdn-min-ttl/--fqdn-max-addresses-per-name: %w", err)
	}

	scheme := runtime.NewScheme()
	if err := errors.Join(clientgoscheme.AddToScheme(scheme), v1.AddToScheme(scheme)); err != nil {
		return err
	}
	mgr, err := ctrl.NewManager(ctrl.GetConfigOrDie(), ctrl.Options{
		Scheme:                 scheme,
		Metrics:                metricsserver.Options{BindAddress: *metricsAddr},
		HealthProbeBindAddress: *probeAddr,
		PprofBindAddress:       *pprofAddr,
		Cache:                  agent.NodeCacheOptions(*nodeName),
	})
	if err != nil {
		return fmt.Errorf("create manager: %w", err)
	}
	m, err := metrics.New(ctrlmetrics.Registry, *nodeName)
	if err != nil {
		return fmt.Errorf("metrics: %w", err)
	}
	a := &agent.Agent{
		Client:         mgr.GetClient(),
		APIReader:      mgr.GetAPIReader(),
		Datapath:       dp,
		Node:           *nodeName,
		Links:          agent.RouteLinks{},
		Metrics:        m,
		Recorder:       mgr.GetEventRecorder("palisade-agent"),
		VerifyInterval: *verifyEvery,
		ReportBatch:    agent.DefaultReportBatch,
		DriftWindow:    *driftWindow,
		Log:            ctrl.Log.WithName("agent"),
	}
	if *tracingOn {
		closeTracing, err := addTracing(a, cmp.Or(*tracingPins, filepath.Join(*pinDir, "tracing")), *cgroupRoot, *tracingEvents)
		if err != nil {
			return err
		}
		defer closeTracing() // pins stay: tracing policies keep acting without the agent
	} else {
		a.TracingOff = "the agent runs with --tracing=false, so no program is loaded for it: its hooks never run and its actions never happen"
		if !tracingOK {
			a.TracingOff = "this node's kernel cannot run it (" + tracingWhy + "), so no program is loaded for it: its hooks never run and its actions never happen"
		}
	}
	if *l7On {
		closeL7 := addL7(a, filepath.Join(*pinDir, "l7"), *cgroupRoot)
		defer closeL7() // pins stay: requests are still decided without the agent
		closeKafka := addKafka(a, filepath.Join(*pinDir, "kafka"))
		defer closeKafka()
	} else {
		a.L7Off = "the agent runs with --l7=false"
		a.KafkaOff = "the agent runs with --l7=false"
	}
	if *flowsAddr != "0" {
		if err := addObserver(mgr, a, dp, m, *flowsAddr, *flowsAdv, *flowsSize, *flowsQueue, *flowsGens, *flowsAllow); err != nil {
			return err
		}
	}
	if *hostIfs != "" {
		a.HostInterfaces = strings.Split(*hostIfs, ",")
	}
	if err := a.SetupWithManager(mgr, true); err != nil {
		return fmt.Errorf("agent: %w", err)
	}
	if err := mgr.AddHealthzCheck("healthz", healthz.Ping); err != nil {
		return err
	}
	if err := mgr.AddReadyzCheck("synced", func(*http.Request) error {
		if !a.Synced() {
			return errors.New("the first sync has not completed")
		}
		return nil
	}); err != nil {
		return err
	}
	return mgr.Start(ctrl.SetupSignalHandler())
}

// addL7 loads the L7 datapath; where it cannot run (no cgroup v2, a
// kernel without sockops or the stream parser), the agent runs without it
// and says why on NodeEnforcement.
func addL7(a *agent.Agent, pinDir, cgroupBase string) func() error {
	off := func(err error) func() error {
		ctrl.Log.Error(err, "the L7 datapath does not run on this node")
		a.L7Off = fmt.Sprintf("the L7 datapath could not start on this node (%v)", err)
		return func() error { return nil }
	}
	root, err := agent.DetectCgroupRoot(cgroupBase)
	if err != nil {
		return off(fmt.Errorf("--cgroup-root: %w", err))
	}
	dp, err := l7.Load()
	if err != nil {
		return off(err)
	}
	a.L7, a.L7PinDir, a.CgroupRoot = dp, pinDir, root
	return dp.Close
}

// addKafka loads the Kafka datapath (bpf/kafka) beside the L7 one; where
// it cannot run, the agent runs without it and says why per object.
func addKafka(a *agent.Agent, pinDir string) func() error {
	if a.CgroupRoot == "" {
		a.KafkaOff = "the Kafka datapath could not start on this node: " + a.L7Off
		return func() error { return nil }
	}
	dp, err := kafka.Load()
	if err != nil {
		ctrl.Log.Error(err, "the Kafka datapath does not run on this node")
		a.KafkaOff = fmt.Sprintf("the Kafka datapath could not start on this node (%v)", err)
		return func() error { return nil }
	}
	a.Kafka, a.KafkaPinDir = dp, pinDir
	return dp.Close
}

// addObserver runs the flow observer: it reads the datapath's events into
// a buffer of recent flows and serves them over gRPC on addr.
func addObserver(mgr ctrl.Manager, a *agent.Agent, dp *datapath.Datapath, m *metrics.Metrics, addr, advertise string, size, queue, gens int, allowed bool) error {
	if err := dp.SetEventsAllowed(allowed); err != nil {
		return fmt.Errorf("flows: %w", err)
	}
	src, err := dp.Events()
	if err != nil {
		return fmt.Errorf("flows: %w", err)
	}
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("flows: %w", err)
	}
	buf := observer.NewBuffer(size)
	buf.ClientQueue = queue
	for _, st := range observer.Stages {
		m.FlowsLost.WithLabelValues(st) // a series from the start, for rate() in the alerts
	}
	buf.OnLost = func(stage string, n uint64) { m.FlowsLost.WithLabelValues(stage).Add(float64(n)) }
	a.Observer = &agent.Observer{Source: src, Buffer: buf, Generations: gens, Log: ctrl.Log.WithName("observer")}
	a.FlowsAddress = advertised(advertise, lis.Addr(), os.Getenv("NODE_IP"))
	if err := mgr.Add(a.Observer); err != nil {
		return err
	}
	return mgr.Add(manager.RunnableFunc(func(ctx context.Context) error { return observer.Serve(ctx, lis, buf) }))
}

// advertised is the observer's address for the relay: flag when set, else
// the bound address with an unspecified host (":4245", "0.0.0.0:4245")
// replaced by the node's address, or by 127.0.0.1 when that is unknown (a
// test on one machine).
func advertised(flag string, bound net.Addr, nodeIP string) string {
	if flag != "" {
		return flag
	}
	host, port, err := net.SplitHostPort(bound.String())
	if err != nil {
		return bound.String()
	}
	if ip := net.ParseIP(host); ip == nil || ip.IsUnspecified() {
		host = cmp.Or(nodeIP, "127.0.0.1")
	}
	return net.JoinHostPort(host, port)
}
