# METADATA
# title: A namespace keeps its default deny
# description: |
#   A change may not leave a namespace without the enforced default deny it
#   had: deleting its default-deny policy, narrowing its selector, turning
#   enableDefaultDeny off or switching it to audit mode. Another policy
#   (or a cluster-wide one) that still isolates the namespace is fine.
#   Decommissioning a namespace needs the override "default-deny".
package palisade.guards.default_deny

verb(c) := "deleting it removes" if c.op == "delete"

verb(c) := "the change removes" if c.op != "delete"

deny contains {"msg": msg, "policy": c.id} if {
	not "default-deny" in input.overrides # first: overridden, no change is looked at
	some c in input.changes
	c.facts.was_default_deny
	not c.facts.is_default_deny
	some ns in c.facts.scope_namespaces
	n := input.namespaces[ns]
	lost := [d |
		some d in ["ingress", "egress"]
		n.default_deny_before[d]
		not n.default_deny_after[d]
	]
	count(lost) > 0
	msg := sprintf("%s is the default deny of namespace %s; %s its isolation (%s). Keep a default deny, or approve with the override default-deny", [c.id, ns, verb(c), concat(", ", lost)])
}
