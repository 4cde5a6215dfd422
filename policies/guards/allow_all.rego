# METADATA
# title: No allow-all in protected namespaces
# description: |
#   In a protected namespace no allow rule may admit every peer: an empty
#   peer selector ({}), the entity "all", or a rule that names no peer at
#   all. Cluster-wide policies reach every namespace, so they count as
#   protected as soon as one namespace is. Only rules the change introduces
#   are judged.
#   Parameter: data.palisade.params.protected_namespaces (list of names).
package palisade.guards.allow_all

default protected := ["kube-system"]

protected := data.palisade.params.protected_namespaces

# reached(c) are the protected namespaces the change's policy reaches;
# "every namespace" for a cluster-wide one.
reached(c) := {ns | some ns in c.facts.scope_namespaces; ns in protected} | {"every namespace" |
	"*" in c.facts.scope_namespaces
	count(protected) > 0
}

what := {
	"empty-selector": "an empty selector ({}) admits every pod",
	"entity-all": "the entity \"all\" admits every peer",
	"no-peers": "a rule without peers admits every peer",
}

deny contains {"msg": msg, "policy": c.id} if {
	some c in input.changes
	some a in c.facts.allow_all
	a.new
	c.op != "delete"
	some ns in reached(c)
	msg := sprintf("%s: %s rule %s: %s, in protected namespace %s", [c.id, a.direction, a.path, what[a.reason], ns])
}
