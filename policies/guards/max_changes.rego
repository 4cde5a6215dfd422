# METADATA
# title: Large changes need an explicit override
# description: |
#   A change that creates, updates or deletes more than max_changes policies
#   at once is denied unless approved with the override "max-changes" (the
#   commit trailer "Palisade-Override: max-changes" in the CLI, the
#   PolicySet's overrides in the cluster).
#   Parameter: data.palisade.params.max_changes (default 50).
package palisade.guards.max_changes

default limit := 50

limit := data.palisade.params.max_changes

deny contains msg if {
	input.summary.total > limit
	not "max-changes" in input.overrides
	msg := sprintf("the change touches %d policies, more than %d: split it, or approve it with the override max-changes", [input.summary.total, limit])
}

warn contains msg if {
	input.summary.total > limit
	"max-changes" in input.overrides
	msg := sprintf("the change touches %d policies, more than %d, approved by the override max-changes", [input.summary.total, limit])
}
