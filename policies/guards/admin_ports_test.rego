package palisade.guards.admin_ports_test

import data.palisade.guards.admin_ports
import data.palisade.testlib

web := "NetworkPolicy/shop/web"

with_ports(ports) := testlib.changeset([testlib.change("update", web, {"new_ports": ports})], {})

test_world_to_ssh_denied if {
	d := admin_ports.deny with input as with_ports([testlib.port("ingress", "entity", "world", true, "TCP", 22, 22)])
	count(d) == 1
	some x in d
	x.policy == web
	contains(x.msg, "port(s) 22/TCP at spec.ingress[0]")
}

test_all_ports_from_public_cidr_names_every_admin_port if {
	d := admin_ports.deny with input as with_ports([testlib.port("ingress", "cidr", "0.0.0.0/0", true, "ANY", 0, 65535)])
	count(d) == 1
	some x in d
	contains(x.msg, "22/ANY, 23/ANY")
	contains(x.msg, "10250/ANY")
}

test_range_covering_rdp_denied if {
	count(admin_ports.deny) == 1 with input as with_ports([testlib.port("ingress", "all", "", true, "UDP", 3000, 4000)])
}

test_world_to_https_allowed if {
	count(admin_ports.deny) == 0 with input as with_ports([testlib.port("ingress", "entity", "world", true, "TCP", 443, 443)])
}

test_cluster_peer_to_ssh_allowed if {
	count(admin_ports.deny) == 0 with input as with_ports([testlib.port("ingress", "cidr", "10.0.0.0/8", false, "TCP", 22, 22)])
}

test_egress_to_ssh_allowed if {
	count(admin_ports.deny) == 0 with input as with_ports([testlib.port("egress", "entity", "world", true, "TCP", 22, 22)])
}

test_icmp_type_is_not_a_port if {
	count(admin_ports.deny) == 0 with input as with_ports([testlib.port("ingress", "entity", "world", true, "ICMP", 22, 22)])
}

test_admin_ports_parameter if {
	count(admin_ports.deny) == 1 with input as with_ports([testlib.port("ingress", "entity", "world", true, "TCP", 8443, 8443)])
		with data.palisade.params.admin_ports as [8443]
	count(admin_ports.deny) == 0 with input as with_ports([testlib.port("ingress", "entity", "world", true, "TCP", 22, 22)])
		with data.palisade.params.admin_ports as [8443]
}

test_lifted_deny_of_world_to_kubelet_denied if {
	cs := testlib.changeset([testlib.change("update", web, {"lifted_denies": [testlib.port("ingress", "entity", "world", true, "TCP", 10250, 10250)]})], {})
	d := admin_ports.deny with input as cs
	count(d) == 1
	some x in d
	contains(x.msg, "no longer denies")
}

test_lifted_deny_of_cluster_peer_allowed if {
	cs := testlib.changeset([testlib.change("delete", web, {"lifted_denies": [testlib.port("ingress", "entity", "cluster", false, "TCP", 22, 22)]})], {})
	count(admin_ports.deny) == 0 with input as cs
}
