# METADATA
# title: No ingress from the world to administrative ports
# description: |
#   SSH, RDP, the kubelet, etcd, the API server and similar ports are never
#   opened to addresses outside the cluster. A change is denied when a
#   policy newly allows ingress from the world (entity world or all, a rule
#   without peers, a public CIDR) to one of them, or stops denying it.
#   Parameter: data.palisade.params.admin_ports (list of port numbers).
package palisade.guards.admin_ports

default ports := [22, 23, 2375, 2376, 2379, 2380, 3389, 5900, 5985, 5986, 6443, 10250, 10255, 10257, 10259]

ports := data.palisade.params.admin_ports

# hits lists the administrative ports within a port fact's range. Named
# ports and ICMP types are not port numbers.
hits(f) := [p |
	some p in ports
	f.named_port == ""
	not f.protocol in {"ICMP", "ICMPv6"}
	f.port <= p
	p <= f.end_port
]

listed(hit, proto) := concat(", ", [sprintf("%d/%s", [p, proto]) | some p in hit])

peer(p) := "every peer" if p.kind == "all"
peer(p) := sprintf("%s %s", [p.kind, p.value]) if p.kind != "all"

deny contains {"msg": msg, "policy": c.id} if {
	some c in input.changes
	some f in c.facts.new_ports
	f.world
	f.direction == "ingress"
	hit := hits(f)
	count(hit) > 0
	msg := sprintf("%s allows ingress from %s (outside the cluster) to administrative port(s) %s at %s", [c.id, peer(f.peer), listed(hit, f.protocol), f.path])
}

deny contains {"msg": msg, "policy": c.id} if {
	some c in input.changes
	some f in c.facts.lifted_denies
	f.world
	f.direction == "ingress"
	hit := hits(f)
	count(hit) > 0
	msg := sprintf("%s no longer denies ingress from %s (outside the cluster) to administrative port(s) %s (was %s)", [c.id, peer(f.peer), listed(hit, f.protocol), f.path])
}
