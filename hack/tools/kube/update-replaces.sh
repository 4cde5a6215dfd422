#!/usr/bin/env bash
# Pins k8s.io/kubernetes and rewrites the replace directives that it needs:
# its go.mod requires every k8s.io staging module at v0.0.0 (resolved via
# ./staging in-tree), so consumers must map each one to the matching v0.X.Y.
#
# Usage: hack/tools/kube/update-replaces.sh v1.37.2
set -euo pipefail

version="${1:?usage: $0 vMAJOR.MINOR.PATCH}"
staging="v0.${version#v1.}"
cd "$(dirname "$0")"

gomod="$(go mod download -json "k8s.io/kubernetes@${version}" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')"
mods="$(awk '/^require/ {r=1; next} r && /^\)/ {r=0}
	r && $1 ~ /^k8s\.io\// && $2 == "v0.0.0" {print $1}' "${gomod}")"

# Drop stale k8s.io replaces so removed staging modules do not linger, then
# write one grouped block (go mod edit would emit one line per replace).
for old in $(go mod edit -json | sed -n 's/.*"Path": "\(k8s\.io\/[^"]*\)".*/\1/p' | sort -u); do
	go mod edit -dropreplace="${old}"
done
{
	echo
	echo "replace ("
	for m in ${mods}; do
		printf '\t%s => %s %s\n' "${m}" "${m}" "${staging}"
	done
	echo ")"
} >>go.mod
go mod edit -fmt -require="k8s.io/kubernetes@${version}"
go mod tidy
