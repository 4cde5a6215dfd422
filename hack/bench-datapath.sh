#!/usr/bin/env bash
# Benchmarks the eBPF datapath (needs root): ns per packet via
# BPF_PROG_TEST_RUN for the parse-only baseline and for Palisade with 10,
# 1k, 10k and 100k rules (hash and LPM path), the ratios between them, and
# the rate at which 100k policy entries are written and switched.
#
# Not yet here: the iptables and nftables comparison on the veth path.
set -euo pipefail
GO=${GO:-go}
cd "$(dirname "$0")/.."

if [ "$(id -u)" -ne 0 ]; then
	echo "bench-datapath: needs root (loads eBPF programs)" >&2
	exit 1
fi
out=$(mktemp)
trap 'rm -f "$out"' EXIT
"$GO" test -count=1 -run '^$' -bench 'ParseOnly|Policy' -benchtime=2000000x ./internal/datapath | tee "$out"
"$GO" test -count=1 -run '^$' -bench 'Apply100k' -benchtime=5x ./internal/datapath | tee -a "$out"

awk '
/^BenchmarkParseOnly/ { for (i = 1; i <= NF; i++) if ($i == "ns/pkt") base = $(i-1) }
/^BenchmarkPolicy\// {
	split($1, f, "/"); sub(/-[0-9]+$/, "", f[3]); name = f[2] "/" f[3]
	for (i = 1; i <= NF; i++) if ($i == "ns/pkt") ns[name] = $(i-1)
	order[++n] = name
}
/^BenchmarkApply100k/ { for (i = 1; i <= NF; i++) { if ($i == "ns/op") apply = $(i-1); if ($i == "entries/s") rate = $(i-1) } }
END {
	printf "\n%-28s %10s %14s %10s\n", "program", "ns/packet", "over baseline", "vs 10 rules"
	printf "%-28s %10.0f %14s %10s\n", "parse-only baseline", base, "-", "-"
	for (i = 1; i <= n; i++) {
		name = order[i]; split(name, p, "/"); ref = ns["rules=10/" p[2]]
		printf "%-28s %10.0f %14.0f %9.2fx\n", name, ns[name], ns[name] - base, ns[name] / ref
	}
	printf "\nmap load: 100k policy entries written and switched in %.0f ms (%.0f entries/s)\n", apply / 1e6, rate
}' "$out"
