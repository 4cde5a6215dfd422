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

// Package metrics defines Palisade's Prometheus metrics: one place that
// names them, so that the manager, the agent and the alerting rules in
// config/prometheus agree. The rules test (rules_test.go) checks that
// every metric an alert uses is defined here.
package metrics

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

// Drift sources.
const (
	// SourceAPI is an object a PolicySet owns, edited or deleted by hand.
	SourceAPI = "api"
	// SourceKernel is a map entry, a program attachment or a pin that no
	// longer matches the desired state on a node.
	SourceKernel = "kernel"
)

// Metrics is the set of Palisade's metrics, registered once per process.
type Metrics struct {
	// Drift counts drifts detected, by source, what drifted (an object
	// kind, or map, link, pin) and whether it was repaired.
	Drift *prometheus.CounterVec
	// EnforcementLag is, per PolicySet, how long the revision the node
	// enforces has been behind the PolicySet's applied revision (0 when
	// current).
	EnforcementLag *prometheus.GaugeVec
	// MapEntries and MapCapacity are each datapath map's use and size.
	MapEntries, MapCapacity *prometheus.GaugeVec
	// VerifyDuration is how long a verify pass (kernel against desired
	// state) takes; VerifyFailures counts passes that could not complete.
	VerifyDuration prometheus.Histogram
	VerifyFailures prometheus.Counter
	// Verdicts counts packets by verdict (allow, deny, audit) and
	// direction, from the datapath's per-CPU counters.
	Verdicts *prometheus.CounterVec
	// Flows counts the flows the agent's observer resolved, by verdict,
	// direction and drop reason ("" when forwarded).
	Flows *prometheus.CounterVec
	// PolicyVerdicts counts flows by deciding (or isolating) policy and
	// verdict; see CountPolicyVerdict for its bounded cardinality.
	PolicyVerdicts *prometheus.CounterVec
	// FlowsLost counts flows lost, by stage (kernel, decode, buffer,
	// client; docs/flows.md).
	FlowsLost *prometheus.CounterVec
	// TracingEvents counts the tracing events the agent read, by policy
	// (the unit's key) and action; see CountTracingEvent for its bounded
	// cardinality. TracingEventsLost counts the events the kernel could
	// not deliver, by reason.
	TracingEvents, TracingEventsLost *prometheus.CounterVec
	// DNSQueries counts the DNS queries the kernel decided on ports with
	// DNS rules, by result (allowed, refused, audited, and the reasons it
	// could not decide one: malformed, pointer, qdcount, name, split), and
	// the refusals it answered (answered).
	DNSQueries *prometheus.CounterVec
	// L7Requests counts the HTTP requests (messages) the kernel decided on
	// ports with ingress HTTP rules, by reason (bpf/l7's counters).
	L7Requests *prometheus.CounterVec
	// KafkaRequests counts the Kafka requests (frames) the kernel decided
	// on ports with ingress Kafka rules, by reason (bpf/kafka's counters).
	KafkaRequests *prometheus.CounterVec
	// FQDN counts toFQDNs learning from DNS answers by event: learned (an
	// address written), and the reasons an answer or address was not
	// learned (cap, full, names-per-address, unsolicited, malformed, ...).
	FQDN *prometheus.CounterVec
	// FQDNNames and FQDNAddresses are the size of the kernel's learned
	// table: names, and (name, address) entries.
	FQDNNames, FQDNAddresses prometheus.Gauge

	policyMu sync.Mutex
	policies map[string]bool
	tracing  map[string]bool
}

// MaxPolicyLabels bounds the policy label of PolicyVerdicts: past this
// many distinct policies, the others count as OtherPolicy.
const MaxPolicyLabels = 200

// OtherPolicy is the policy label of the policies past MaxPolicyLabels.
const OtherPolicy = "other"

// CountPolicyVerdict counts one flow of verdict decided by policy
// ("Kind/namespace/name"). The first MaxPolicyLabels policies keep their
// names; later ones count as OtherPolicy, so a node with thousands of
// policies does not make thousands of series per verdict.
func (m *Metrics) CountPolicyVerdict(policy, verdict string) {
	m.policyMu.Lock()
	if !m.policies[policy] {
		if len(m.policies) >= MaxPolicyLabels {
			policy = OtherPolicy
		} else {
			if m.policies == nil {
				m.policies = map[string]bool{}
			}
			m.policies[policy] = true
		}
	}
	m.policyMu.Unlock()
	m.PolicyVerdicts.WithLabelValues(policy, verdict).Inc()
}

// CountTracingEvent counts one tracing event of policy (a unit's key,
// "TracingPolicy ns/name") asking for action. As with CountPolicyVerdict,
// the first MaxPolicyLabels policies keep their names and later ones count
// as OtherPolicy.
func (m *Metrics) CountTracingEvent(policy, action string) {
	m.policyMu.Lock()
	if !m.tracing[policy] {
		if len(m.tracing) >= MaxPolicyLabels {
			policy = OtherPolicy
		} else {
			if m.tracing == nil {
				m.tracing = map[string]bool{}
			}
			m.tracing[policy] = true
		}
	}
	m.policyMu.Unlock()
	m.TracingEvents.WithLabelValues(policy, action).Inc()
}

// Metric names, for the rules and dashboards.
const (
	DriftTotal          = "palisade_drift_total"
	EnforcementLagSecs  = "palisade_enforcement_lag_seconds"
	MapEntriesName      = "palisade_map_entries"
	MapCapacityName     = "palisade_map_capacity"
	VerifyDurationSecs  = "palisade_verify_duration_seconds"
	VerifyFailuresTotal = "palisade_verify_failures_total"
	VerdictsTotal       = "palisade_verdicts_total"
	FlowsTotal          = "palisade_flows_total"
	PolicyVerdictsTotal = "palisade_policy_verdicts_total"
	FlowsLostTotal      = "palisade_flows_lost_total"
	TracingEventsTotal  = "palisade_tracing_events_total"
	TracingLostTotal    = "palisade_tracing_events_lost_total"
	DNSQueriesTotal     = "palisade_dns_queries_total"
	L7RequestsTotal     = "palisade_l7_requests_total"
	KafkaRequestsTotal  = "palisade_kafka_requests_total"
	FQDNTotal           = "palisade_fqdn_total"
	FQDNNamesName       = "palisade_fqdn_names"
	FQDNAddressesName   = "palisade_fqdn_addresses"
)

// New creates the metrics and registers them with reg (controller-runtime's
// metrics.Registry in the manager and the agent). node, when not empty,
// labels every metric with the node it comes from (the agent's); the
// alerting rules group by it. It fails if a metric is already registered.
func New(reg prometheus.Registerer, node string) (*Metrics, error) {
	if node != "" {
		reg = prometheus.WrapRegistererWith(prometheus.Labels{"node": node}, reg)
	}
	m := &Metrics{
		Drift: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: DriftTotal,
			Help: "Drifts detected, by source (api: an owned object edited or deleted by hand; kernel: datapath state on a node), what drifted, and whether it was repaired.",
		}, []string{"source", "what", "repaired"}),
		EnforcementLag: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: EnforcementLagSecs,
			Help: "Seconds the revision this node enforces has been behind the PolicySet's applied revision; 0 when current.",
		}, []string{"namespace", "policyset"}),
		MapEntries: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: MapEntriesName,
			Help: "Entries in a datapath map.",
		}, []string{"map"}),
		MapCapacity: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: MapCapacityName,
			Help: "Capacity (max entries) of a datapath map.",
		}, []string{"map"}),
		VerifyDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    VerifyDurationSecs,
			Help:    "Duration of a verify pass comparing the kernel with the desired state.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 14),
		}),
		VerifyFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: VerifyFailuresTotal,
			Help: "Verify passes that could not complete (the kernel state could not be read).",
		}),
		Verdicts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: VerdictsTotal,
			Help: "Packets decided by the datapath, by verdict and direction.",
		}, []string{"verdict", "direction"}),
		Flows: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: FlowsTotal,
			Help: "Flows the agent's observer resolved from the datapath's events, by verdict (forwarded, dropped, audit, error), direction and drop reason.",
		}, []string{"verdict", "direction", "reason"}),
		PolicyVerdicts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: PolicyVerdictsTotal,
			Help: "Flows by the policy that decided them (or isolated the endpoint, for a default-deny drop) and verdict; past 200 policies per node, the others count as policy=\"other\".",
		}, []string{"policy", "verdict"}),
		FlowsLost: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: FlowsLostTotal,
			Help: "Flows lost, by stage: kernel (the datapath's ring buffer was full), decode (an event the agent could not read), buffer (overwritten in the agent's ring of recent flows), client (a follower read too slowly).",
		}, []string{"stage"}),
		TracingEvents: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: TracingEventsTotal,
			Help: "Tracing events the agent read, by policy (its unit key, e.g. \"TracingPolicy ns/name\") and the action its selector asks for (Notify, Sigkill, Deny, ...); past 200 policies per node, the others count as policy=\"other\".",
		}, []string{"policy", "action"}),
		TracingEventsLost: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: TracingLostTotal,
			Help: "Tracing events the kernel could not deliver to the agent, by reason (e.g. the ring buffer was full), counted from the agent's start.",
		}, []string{"reason"}),
		DNSQueries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: DNSQueriesTotal,
			Help: "DNS queries the kernel decided on ports with DNS rules, by result: allowed, refused, audited; malformed, pointer, qdcount, name, split (queries it could not decide, refused where the rules restrict names); answered (refusals answered with a crafted REFUSED or NXDOMAIN).",
		}, []string{"result"}),
		L7Requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: L7RequestsTotal,
			Help: "HTTP messages the kernel decided on ports with ingress HTTP rules, by reason: allowed, denied, audit; malformed, oversize, tls, http2, version, framing, no-tables (refused); dropped-after-refusal, refusal-undelivered, refused-in-order, passed-unbound; sockets (connections enforced).",
		}, []string{"reason"}),
		KafkaRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: KafkaRequestsTotal,
			Help: "Kafka request frames the kernel decided on ports with ingress Kafka rules, by reason: allowed, denied, audit; malformed, oversize, version, topics, unparsed, tagged, no-tables (refused); answered (refusals answered with TOPIC_AUTHORIZATION_FAILED), connections-closed (refusals answered with a frame that makes the client close), answer-undelivered, dropped-after-refusal, passed-unbound; sockets (connections enforced).",
		}, []string{"reason"}),
		FQDN: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: FQDNTotal,
			Help: "toFQDNs learning from DNS answers, by event: learned (an address written to the kernel's table) and the reasons an answer or an address was not learned.",
		}, []string{"event"}),
		FQDNNames: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: FQDNNamesName,
			Help: "Names in the kernel's toFQDNs table.",
		}),
		FQDNAddresses: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: FQDNAddressesName,
			Help: "Unexpired (name, address) entries in the kernel's toFQDNs table.",
		}),
	}
	for _, c := range m.collectors() {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

func (m *Metrics) collectors() []prometheus.Collector {
	return []prometheus.Collector{m.Drift, m.EnforcementLag, m.MapEntries, m.MapCapacity, m.VerifyDuration, m.VerifyFailures, m.Verdicts, m.Flows, m.PolicyVerdicts, m.FlowsLost, m.TracingEvents, m.TracingEventsLost, m.DNSQueries, m.L7Requests, m.KafkaRequests, m.FQDN, m.FQDNNames, m.FQDNAddresses}
}
