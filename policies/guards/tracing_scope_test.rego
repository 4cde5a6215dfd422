package palisade.guards.tracing_scope_test

import data.palisade.guards.tracing_scope
import data.palisade.testlib

ks := "ClusterTracingPolicy//kill-shells"

unscoped := [{"path": "spec.kprobes[0].selectors[0].matchActions[0]", "hook": "kprobe tcp_connect", "action": "Sigkill"}]

cs(op, mode, actions) := testlib.changeset([testlib.change(op, ks, {
	"mode": mode,
	"enforcing_actions": ["Sigkill"],
	"scoped": count(actions) == 0,
	"unscoped_actions": actions,
})], {})

test_unscoped_sigkill_denied if {
	d := tracing_scope.deny with input as cs("create", "enforce", unscoped)
	count(d) == 1
	some x in d
	x.policy == ks
	contains(x.msg, "Sigkill on kprobe tcp_connect is not scoped")
}

test_scoped_sigkill_allowed if {
	count(tracing_scope.deny) == 0 with input as cs("create", "enforce", [])
	count(tracing_scope.warn) == 0 with input as cs("create", "enforce", [])
}

test_deleting_unscoped_policy_allowed if {
	count(tracing_scope.deny) == 0 with input as cs("delete", "enforce", unscoped)
}

test_audit_mode_warns_instead if {
	count(tracing_scope.deny) == 0 with input as cs("update", "audit", unscoped)
	w := tracing_scope.warn with input as cs("update", "audit", unscoped)
	count(w) == 1
	some x in w
	contains(x.msg, "audit mode")
}
