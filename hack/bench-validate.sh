#!/usr/bin/env bash
# Copyright 2026 The Palisade Authors.
#
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at
#
#     http://www.apache.org/licenses/LICENSE-2.0
#
# Unless required by applicable law or agreed to in writing, software
# distributed under the License is distributed on an "AS IS" BASIS,
# WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
# See the License for the specific language governing permissions and
# limitations under the License.

# bench-validate: validate generated repositories of N NetworkPolicies with
# Palisade and with `cue vet -c ./...` (same files, same schema, same run)
# and print the median wall time, peak RSS and CPU time of each, and their
# ratio. See docs/bench-validate.md.
#
# Environment:
#   CUE          cue binary, built from the cuelang.org/go version the
#                loader uses (default bin/cue-v0.17.1, from hack/tools.mk)
#   PALISADECTL  palisadectl binary; if executable, Palisade is measured as
#                "$PALISADECTL validate DIR --output json", else with the
#                loader harness "genpolicies load DIR" (default
#                bin/palisadectl)
#   TIMEOUT      palisadectl's evaluation budget, --timeout (default 10m:
#                its own default, 1m, fails the 10k run on a loaded host,
#                and the benchmark measures speed, not the budget)
#   SIZES        policy counts (default "1000 10000")
#   RUNS         measured runs per tool and size, median reported (default 3)
#   SEED         generator seed (default 1)
#   WORK         work directory (default: a new temp dir, removed at exit
#                unless KEEP=1)
#   ENFORCE      if 1, exit 1 when the goal for the largest size is missed
#   GOAL_SECONDS goal for the largest size (default 5)
#   GOAL_RATIO   goal for the time ratio Palisade / cue vet (default 1.5)
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$PWD

CUE=${CUE:-bin/cue-v0.17.1}
PALISADECTL=${PALISADECTL:-bin/palisadectl}
TIMEOUT=${TIMEOUT:-10m}
SIZES=${SIZES:-1000 10000}
RUNS=${RUNS:-3}
SEED=${SEED:-1}
GOAL_SECONDS=${GOAL_SECONDS:-5}
GOAL_RATIO=${GOAL_RATIO:-1.5}

die() { echo "bench-validate: $*" >&2; exit 2; }

# Absolute paths: the tools run in other directories.
abs() { case $1 in /*) echo "$1" ;; *) echo "$ROOT/$1" ;; esac; }
CUE=$(abs "$CUE")
PALISADECTL=$(abs "$PALISADECTL")

# cue must be the version the loader is built with, or the comparison
# measures two evaluators.
want=$(go list -m -f '{{.Version}}' cuelang.org/go)
[ -x "$CUE" ] || die "no cue binary at $CUE: run 'make -f hack/tools.mk $CUE', or set CUE (e.g. GOBIN=/tmp/cuebin go install cuelang.org/go/cmd/cue@$want; CUE=/tmp/cuebin/cue)"
have=$("$CUE" version | awk 'NR==1 {print $3}')
[ "$have" = "$want" ] || die "$CUE is cue $have, but the loader uses cuelang.org/go $want"

if [ -z "${WORK:-}" ]; then
	WORK=$(mktemp -d "${TMPDIR:-/tmp}/bench-validate.XXXXXX")
	[ "${KEEP:-0}" = 1 ] || trap 'rm -rf "$WORK"' EXIT
fi
mkdir -p "$WORK"

# The harness is built like the cue binary in hack/tools.mk (static,
# trimmed, stripped), so both are release-like builds.
GP=$WORK/genpolicies
CGO_ENABLED=0 go build -trimpath -ldflags '-s -w' -o "$GP" ./hack/genpolicies

if [ -x "$PALISADECTL" ]; then
	palisade_desc="$PALISADECTL validate DIR --output json --timeout $TIMEOUT"
else
	palisade_desc="genpolicies load DIR (internal/loader.Load; no palisadectl at $PALISADECTL)"
fi
palisade_cmd() { # dir n
	if [ -x "$PALISADECTL" ]; then
		echo "$PALISADECTL validate $1 --output json --timeout $TIMEOUT"
	else
		echo "$GP load -want $2 $1"
	fi
}

# measure1 DIR CMD...: one run; prints "wall_s rss_mib cpu_s".
measure1() {
	local dir=$1
	shift
	"$GP" measure -runs 1 -warmup 0 -dir "$dir" -- "$@" 2>>"$WORK/measure.log"
}

# median of the values on stdin.
median() { sort -g | awk '{v[NR]=$1} END {if (NR%2) print v[(NR+1)/2]; else printf "%.3f\n", (v[NR/2]+v[NR/2+1])/2}'; }

echo "# bench-validate $(date -u +%Y-%m-%dT%H:%M:%SZ)"
echo "# host: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(go version | awk '{print $3}'), cue $have, loadavg $(cut -d' ' -f1-3 /proc/loadavg)"
echo "# palisade: $palisade_desc"
echo "# cue vet:  $CUE vet -c ./...  (in DIR)"
echo "# runs: $RUNS per tool and size after one warm-up each, alternating; medians"
echo

rows=()
for n in $SIZES; do
	dir=$WORK/n$n
	rm -rf "$dir"
	"$GP" gen -n "$n" -seed "$SEED" -out "$dir" >&2
	read -r -a pcmd <<<"$(palisade_cmd "$dir" "$n")"

	# Correctness first: both must accept every policy (the warm-up runs).
	measure1 "$dir" "${pcmd[@]}" >/dev/null || die "Palisade rejected the generated repository $dir (see $WORK/measure.log)"
	measure1 "$dir" "$CUE" vet -c ./... >/dev/null || die "cue vet rejected the generated repository $dir (see $WORK/measure.log)"

	: >"$WORK/p$n" && : >"$WORK/c$n"
	for ((r = 1; r <= RUNS; r++)); do
		measure1 "$dir" "${pcmd[@]}" >>"$WORK/p$n"
		measure1 "$dir" "$CUE" vet -c ./... >>"$WORK/c$n"
	done
	pt=$(awk '{print $1}' "$WORK/p$n" | median)
	pm=$(awk '{print $2}' "$WORK/p$n" | median)
	pc=$(awk '{print $3}' "$WORK/p$n" | median)
	ct=$(awk '{print $1}' "$WORK/c$n" | median)
	cm=$(awk '{print $2}' "$WORK/c$n" | median)
	cc=$(awk '{print $3}' "$WORK/c$n" | median)
	ratio=$(awk -v a="$pt" -v b="$ct" 'BEGIN {printf "%.2f", a/b}')
	rss_ratio=$(awk -v a="$pm" -v b="$cm" 'BEGIN {printf "%.2f", a/b}')
	rows+=("| $n | $pt s | $pm MiB | $ct s | $cm MiB | ${ratio}× | $pc s | $cc s | ${rss_ratio}× |")
	last_n=$n last_pt=$pt last_ratio=$ratio
done

echo "| N | Palisade time | Palisade peak RSS | cue vet time | cue vet peak RSS | time ratio | Palisade CPU | cue vet CPU | RSS ratio |"
echo "|--:|--:|--:|--:|--:|--:|--:|--:|--:|"
printf '%s\n' "${rows[@]}"
echo
echo "# loadavg after: $(cut -d' ' -f1-3 /proc/loadavg) (other load on the host inflates wall times; CPU times are steadier)"

ok_time=$(awk -v t="$last_pt" -v g="$GOAL_SECONDS" 'BEGIN {print (t < g) ? "met" : "MISSED"}')
ok_ratio=$(awk -v r="$last_ratio" -v g="$GOAL_RATIO" 'BEGIN {print (r <= g) ? "met" : "MISSED"}')
echo "# goal N=$last_n: time < ${GOAL_SECONDS} s: $ok_time ($last_pt s); ratio <= ${GOAL_RATIO}: $ok_ratio (${last_ratio}×)"
if [ "${ENFORCE:-0}" = 1 ] && { [ "$ok_time" != met ] || [ "$ok_ratio" != met ]; }; then
	exit 1
fi
