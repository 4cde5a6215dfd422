package palisade.guards.max_changes_test

import data.palisade.guards.max_changes
import data.palisade.testlib

changes(n) := [testlib.change("update", sprintf("NetworkPolicy/shop/p%d", [i]), {}) | some i in numbers.range(1, n)]

test_over_default_limit_denied if {
	d := max_changes.deny with input as testlib.changeset(changes(51), {})
	count(d) == 1
	some x in d
	contains(x, "51 policies, more than 50")
}

test_at_limit_allowed if {
	count(max_changes.deny) == 0 with input as testlib.changeset(changes(50), {})
}

test_limit_parameter if {
	count(max_changes.deny) == 1 with input as testlib.changeset(changes(3), {}) with data.palisade.params.max_changes as 2
}

test_override_turns_denial_into_warning if {
	cs := testlib.changeset(changes(51), {"overrides": ["max-changes"]})
	count(max_changes.deny) == 0 with input as cs
	count(max_changes.warn) == 1 with input as cs
}

test_unrelated_override_does_not_approve if {
	count(max_changes.deny) == 1 with input as testlib.changeset(changes(51), {"overrides": ["default-deny"]})
}
