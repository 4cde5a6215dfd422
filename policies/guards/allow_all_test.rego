package palisade.guards.allow_all_test

import data.palisade.guards.allow_all
import data.palisade.testlib

rule(reason, new) := {"direction": "ingress", "path": "spec.ingress[0]", "reason": reason, "all_ports": true, "new": new}

cs(id, scope, rules) := testlib.changeset([testlib.change("update", id, {"scope_namespaces": scope, "allow_all": rules})], {})

test_empty_selector_in_kube_system_denied if {
	d := allow_all.deny with input as cs("NetworkPolicy/kube-system/dns", ["kube-system"], [rule("empty-selector", true)])
	count(d) == 1
	some x in d
	x.policy == "NetworkPolicy/kube-system/dns"
	contains(x.msg, "protected namespace kube-system")
}

test_entity_all_in_configured_namespace_denied if {
	count(allow_all.deny) == 1 with input as cs("NetworkPolicy/payments/api", ["payments"], [rule("entity-all", true)])
		with data.palisade.params.protected_namespaces as ["payments"]
}

test_no_peers_cluster_wide_denied if {
	d := allow_all.deny with input as cs("ClusterNetworkPolicy//open", ["*"], [rule("no-peers", true)])
	count(d) == 1
	some x in d
	contains(x.msg, "every namespace")
}

test_unprotected_namespace_allowed if {
	count(allow_all.deny) == 0 with input as cs("NetworkPolicy/shop/web", ["shop"], [rule("entity-all", true)])
}

test_existing_allow_all_not_judged_again if {
	count(allow_all.deny) == 0 with input as cs("NetworkPolicy/kube-system/dns", ["kube-system"], [rule("empty-selector", false)])
}

test_no_protected_namespaces_allows_cluster_wide if {
	count(allow_all.deny) == 0 with input as cs("ClusterNetworkPolicy//open", ["*"], [rule("no-peers", true)])
		with data.palisade.params.protected_namespaces as []
}
