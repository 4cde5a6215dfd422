package palisade.guards.default_deny_test

import data.palisade.guards.default_deny
import data.palisade.testlib

dd := "NetworkPolicy/shop/default-deny"

both := {"ingress": true, "egress": true}

none := {"ingress": false, "egress": false}

cs(op, is_dd, after, overrides) := testlib.changeset(
	[testlib.change(op, dd, {"was_default_deny": true, "is_default_deny": is_dd})],
	{
		"namespaces": {"shop": {"default_deny_before": both, "default_deny_after": after, "policies_before": 3, "policies_after": 2}},
		"overrides": overrides,
	},
)

test_deleting_default_deny_denied if {
	d := default_deny.deny with input as cs("delete", false, none, [])
	count(d) == 1
	some x in d
	x.policy == dd
	contains(x.msg, "deleting it removes its isolation (ingress, egress)")
}

test_disabling_egress_default_deny_denied if {
	d := default_deny.deny with input as cs("update", false, {"ingress": true, "egress": false}, [])
	count(d) == 1
	some x in d
	contains(x.msg, "(egress)")
}

test_another_default_deny_still_isolates if {
	count(default_deny.deny) == 0 with input as cs("delete", false, both, [])
}

test_still_default_deny_allowed if {
	count(default_deny.deny) == 0 with input as cs("update", true, both, [])
}

test_override_allows_decommissioning if {
	count(default_deny.deny) == 0 with input as cs("delete", false, none, ["default-deny"])
}
