# Helpers for the guards' tests: change sets in the shape of
# guard.palisade.dev/v1 (docs/guards.md), with every fact present.
package palisade.testlib

facts := {
	"subject": {"endpoints": [], "nodes": null},
	"selects_all": false,
	"scope_namespaces": ["shop"],
	"mode": "enforce",
	"default_deny": {"ingress": false, "egress": false},
	"is_default_deny": false,
	"was_default_deny": false,
	"allow_all": [],
	"widened_selectors": [],
	"new_ingress_entities": [],
	"new_egress_entities": [],
	"new_ports": [],
	"lifted_denies": [],
	"l7_match_all": [],
	"enforcing_actions": [],
	"scoped": true,
	"unscoped_actions": [],
}

# change(op, id, f) is a change of policy id (kind/namespace/name) with
# facts f over the defaults.
change(op, id, f) := {
	"op": op,
	"id": id,
	"kind": split(id, "/")[0],
	"namespace": split(id, "/")[1],
	"name": split(id, "/")[2],
	"file": "policies.cue",
	"line": 1,
	"before": null,
	"after": null,
	"facts": object.union(facts, f),
}

# changeset(changes, extra) wraps changes in a document; extra overrides
# top-level fields (overrides, namespaces, summary).
changeset(changes, extra) := object.union(
	{
		"apiVersion": "guard.palisade.dev/v1",
		"kind": "ChangeSet",
		"revision": "b",
		"previous_revision": "a",
		"author": {"name": "A", "email": "a@example.com"},
		"policy_set": {"namespace": "palisade-system", "name": "main"},
		"overrides": [],
		"summary": {"create": 0, "update": count(changes), "delete": 0, "total": count(changes)},
		"namespaces": {},
		"changes": changes,
	},
	extra,
)

# port(dir, kind, value, world, proto, lo, hi) is a port fact.
port(dir, kind, value, world, proto, lo, hi) := {
	"direction": dir,
	"peer": {"kind": kind, "value": value},
	"world": world,
	"protocol": proto,
	"port": lo,
	"end_port": hi,
	"named_port": "",
	"path": "spec.ingress[0]",
}
