package palisade.guards.l7_protected_test

import data.palisade.guards.l7_protected
import data.palisade.testlib

ledger := [{"namespace": "payments", "labels": {"app": "ledger", "tier": "db"}}]

req(key, op, values) := {"key": key, "operator": op, "values": values}

fact(dir, reason) := {"direction": dir, "protocol": "TCP", "port": 8080, "end_port": 8080, "named_port": "", "l7": "http", "reason": reason, "path": "spec.ingress[0].toPorts[0]"}

cs(scope, endpoints, facts) := testlib.changeset([testlib.change("update", "NetworkPolicy/payments/ledger", {
	"scope_namespaces": scope,
	"subject": {"endpoints": endpoints, "nodes": null},
	"l7_match_all": facts,
})], {})

test_match_all_rule_on_protected_service_denied if {
	d := l7_protected.deny with input as cs(["payments"], [req("app", "In", ["ledger"])], [fact("ingress", "match-all-rule")])
		with data.palisade.params.protected_services as ledger
	count(d) == 1
	some x in d
	x.policy == "NetworkPolicy/payments/ledger"
	contains(x.msg, "a rule now matches every request")
}

test_l7_removed_by_cluster_policy_selecting_namespace_denied if {
	eps := [req("k8s:io.kubernetes.pod.namespace", "In", ["payments"]), req("tier", "Exists", []), req("debug", "DoesNotExist", []), req("app", "NotIn", ["web"])]
	count(l7_protected.deny) == 1 with input as cs(["payments"], eps, [fact("ingress", "l7-removed")])
		with data.palisade.params.protected_services as ledger
}

test_other_service_allowed if {
	count(l7_protected.deny) == 0 with input as cs(["payments"], [req("app", "In", ["web"])], [fact("ingress", "match-all-rule")])
		with data.palisade.params.protected_services as ledger
}

test_selector_excluding_service_allowed if {
	eps := [req("app", "NotIn", ["ledger"])]
	count(l7_protected.deny) == 0 with input as cs(["payments"], eps, [fact("ingress", "match-all-rule")])
		with data.palisade.params.protected_services as ledger
	count(l7_protected.deny) == 0 with input as cs(["payments"], [req("tier", "DoesNotExist", [])], [fact("ingress", "match-all-rule")])
		with data.palisade.params.protected_services as ledger
}

test_other_namespace_allowed if {
	count(l7_protected.deny) == 0 with input as cs(["shop"], [], [fact("ingress", "match-all-rule")])
		with data.palisade.params.protected_services as ledger
}

test_egress_allowed if {
	count(l7_protected.deny) == 0 with input as cs(["payments"], [], [fact("egress", "match-all-rule")])
		with data.palisade.params.protected_services as ledger
}

test_no_protected_services_by_default if {
	count(l7_protected.deny) == 0 with input as cs(["payments"], [], [fact("ingress", "match-all-rule")])
}
