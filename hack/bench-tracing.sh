#!/usr/bin/env bash
# Benchmarks tracing policies (needs root): in one go test run, an
# open/close loop and an exec loop with no policy, a monitor policy and an
# enforcing policy on the same hook (ns per operation), and go build -a of
# a small program in ABBA order without (A) and with (B) a file-access monitor policy
# (seconds per build), with the events delivered to user space and lost.
# Then the medians over the -count repetitions and the ratios to no policy.
# docs/bench-tracing.md explains the set-up and holds measured numbers.
set -euo pipefail
GO=${GO:-go}
COUNT=${BENCH_COUNT:-5}
cd "$(dirname "$0")/.."

if [ "$(id -u)" -ne 0 ]; then
	echo "bench-tracing: needs root (loads eBPF programs, creates cgroups)" >&2
	exit 1
fi
out=$(mktemp)
trap 'rm -f "$out"' EXIT
"$GO" test -run '^$' -bench 'BenchmarkOpenClose$|BenchmarkExec$|BenchmarkGoBuild$' -count "$COUNT" -timeout 60m ./internal/tracing/ | tee "$out"

echo
echo "medians over $COUNT runs (ratio: to policy=none of the same loop)"
awk '
function median(list,   a, n, i, j, t) {
	n = split(list, a, " ")
	for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] + 0 < a[i] + 0) { t = a[i]; a[i] = a[j]; a[j] = t }
	return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
}
/^Benchmark(OpenClose|Exec)\// {
	name = $1; sub(/-[0-9]+$/, "", name)
	for (i = 1; i <= NF; i++) {
		if ($i == "ns/op") ns[name] = ns[name] " " $(i-1)
		if ($i == "events/op") ev[name] = ev[name] " " $(i-1)
		if ($i == "lost/op") lost[name] = lost[name] " " $(i-1)
	}
	if (!(name in seen)) { seen[name] = 1; order[++n] = name }
}
/^BenchmarkGoBuild\/paired/ {
	for (i = 1; i <= NF; i++) {
		if ($i == "s/build-none") bn = bn " " $(i-1)
		if ($i == "s/build-monitor") bm = bm " " $(i-1)
		if ($i == "ratio") br = br " " $(i-1)
		if ($i == "cpu-ratio") cr = cr " " $(i-1)
		if ($i == "cpu-s/build-none") cn = cn " " $(i-1)
		if ($i == "cpu-s/build-monitor") cm = cm " " $(i-1)
		if ($i == "bpf-ms/build") bp = bp " " $(i-1)
		if ($i == "hooked-calls/build") hc = hc " " $(i-1)
		if ($i == "events/op") be = be " " $(i-1)
		if ($i == "lost/op") bl = bl " " $(i-1)
	}
}
END {
	for (k = 1; k <= n; k++) {
		name = order[k]; base = name; sub(/policy=.*/, "policy=none", base)
		m = median(ns[name]); b = median(ns[base])
		printf "%-32s %12.0f ns/op  ratio %.3f  events/op %s  lost/op %s\n", name, m, m / b, median(ev[name]), median(lost[name])
	}
	if (bn != "") {
		printf "%-32s wall: none %.2f s, file-monitor %.2f s per build; ratio median %.3f (each run:%s)\n",
			"BenchmarkGoBuild/paired", median(bn), median(bm), median(br), br
		printf "%-32s CPU of the build: none %.2f s, file-monitor %.2f s; ratio median %.3f (each run:%s)\n",
			"", median(cn), median(cm), median(cr), cr
		if (bp != "") printf "%-32s the policy'"'"'s programs ran %.1f ms per build (each run:%s ms) over %s hooked calls\n", "", median(bp), bp, median(hc)
		printf "%-32s events per op (4 builds, 2 monitored) %s, lost %s\n", "", median(be), median(bl)
	}
}' "$out"
