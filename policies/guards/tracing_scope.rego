# METADATA
# title: Enforcing tracing actions are scoped
# description: |
#   A Sigkill or Deny action must be narrowed, by the policy's podSelector or
#   by matchBinaries, matchNamespaces, matchPIDs or matchCapabilities in its
#   selector; otherwise it kills or blocks every process it sees. In audit
#   mode the action is not taken, so the guard warns instead.
package palisade.guards.tracing_scope

msg(c, a) := sprintf("%s: %s on %s is not scoped (%s): add a podSelector, or matchBinaries, matchNamespaces, matchPIDs or matchCapabilities to the selector", [c.id, a.action, a.hook, a.path])

# unscoped(c) are the unscoped actions of a policy the change keeps. deny
# and warn each iterate input.changes once and read nothing else of it, so
# the review judges each change alone and keeps the findings per change
# (internal/guard/perchange.go).
unscoped(c) := [a |
	c.op != "delete"
	some a in c.facts.unscoped_actions
]

deny contains {"msg": msg(c, a), "policy": c.id} if {
	some c in input.changes
	c.facts.mode == "enforce"
	some a in unscoped(c)
}

warn contains {"msg": sprintf("%s (audit mode: not taken yet)", [msg(c, a)]), "policy": c.id} if {
	some c in input.changes
	c.facts.mode == "audit"
	some a in unscoped(c)
}
