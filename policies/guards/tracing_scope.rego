# METADATA
# title: Enforcing tracing actions are scoped
# description: |
#   A Sigkill or Deny action must be narrowed, by the policy's podSelector or
#   by matchBinaries, matchNamespaces, matchPIDs or matchCapabilities in its
#   selector; otherwise it kills or blocks every process it sees. In audit
#   mode the action is not taken, so the guard warns instead.
package palisade.guards.tracing_scope

msg(c, a) := sprintf("%s: %s on %s is not scoped (%s): add a podSelector, or matchBinaries, matchNamespaces, matchPIDs or matchCapabilities to the selector", [c.id, a.action, a.hook, a.path])

# unscoped lists [change, action] for every unscoped action of a policy the
# change keeps; deny and warn share it, so the changes are walked once.
unscoped := [[c, a] |
	some c in input.changes
	some a in c.facts.unscoped_actions
	c.op != "delete"
]

deny contains {"msg": msg(c, a), "policy": c.id} if {
	some [c, a] in unscoped
	c.facts.mode == "enforce"
}

warn contains {"msg": sprintf("%s (audit mode: not taken yet)", [msg(c, a)]), "policy": c.id} if {
	some [c, a] in unscoped
	c.facts.mode == "audit"
}
