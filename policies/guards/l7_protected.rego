# METADATA
# title: L7 rules of protected services stay restrictive
# description: |
#   For a protected service, an ingress port that was restricted by L7 rules
#   (HTTP, DNS, Kafka) may not become match-everything: neither through a
#   rule that matches every request (e.g. an HTTP rule without method, path,
#   host or headers, or path "/.*") nor by allowing the port without L7
#   rules. A policy concerns a service when its subject selector matches the
#   service's labels in the service's namespace.
#   Parameter: data.palisade.params.protected_services, a list of
#   {"namespace": "payments", "labels": {"app": "ledger"}}.
package palisade.guards.l7_protected

default services := []

services := data.palisade.params.protected_services

namespace_labels := ["k8s:io.kubernetes.pod.namespace", "io.kubernetes.pod.namespace"]

# labels(s) are the service's pod labels plus the namespace labels Cilium
# adds, which cluster policies select namespaces by.
labels(s) := object.union(s.labels, {k: s.namespace | some k in namespace_labels})

in_scope(c, s) if s.namespace in c.facts.scope_namespaces

in_scope(c, _) if "*" in c.facts.scope_namespaces

# matches(r, l) is a label selector requirement's meaning.
matches(r, l) if {
	r.operator == "In"
	l[r.key] in r.values
}

matches(r, l) if {
	r.operator == "NotIn"
	not l[r.key] in r.values
}

matches(r, l) if {
	r.operator == "Exists"
	r.key in object.keys(l)
}

matches(r, l) if {
	r.operator == "DoesNotExist"
	not r.key in object.keys(l)
}

selects(c, s) if {
	in_scope(c, s)
	c.facts.subject.endpoints != null
	l := labels(s)
	every r in c.facts.subject.endpoints {
		matches(r, l)
	}
}

why := {
	"match-all-rule": "a rule now matches every request",
	"l7-removed": "the port is now allowed without L7 rules",
}

deny contains {"msg": msg, "policy": c.id} if {
	some s in services # first: without protected services, no change is looked at
	some c in input.changes
	some f in c.facts.l7_match_all
	c.op != "delete"
	f.direction == "ingress"
	selects(c, s)
	msg := sprintf("%s: %s on port %d/%s of protected service %s/%v is no longer restricted: %s (%s)", [c.id, f.l7, f.port, f.protocol, s.namespace, s.labels, why[f.reason], f.path])
}
