#!/usr/bin/env bash
# Installs Debian packages that tests or generators need, only those that are
# missing: `hack/apt-install.sh PACKAGE...`. Idempotent; needs root (or sudo)
# only when something is missing. Waits for the dpkg lock rather than failing
# when another install runs.
set -euo pipefail

missing=()
for p in "$@"; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
		missing+=("$p")
	fi
done
if [ ${#missing[@]} -eq 0 ]; then
	exit 0
fi
if ! command -v apt-get >/dev/null; then
	echo "apt-install: missing ${missing[*]} and apt-get is not available; install them by hand" >&2
	exit 1
fi
sudo=()
if [ "$(id -u)" -ne 0 ]; then
	sudo=(sudo)
fi
echo "apt-install: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt=("${sudo[@]}" apt-get -o DPkg::Lock::Timeout=600 -qq)
"${apt[@]}" update
# The packages' services (a Prometheus server, say) are not wanted: forbid
# starting them while installing.
rc=/usr/sbin/policy-rc.d
made_rc=
if [ ! -e "$rc" ] && [ "$(id -u)" -eq 0 ]; then
	printf '#!/bin/sh\nexit 101\n' >"$rc" && chmod +x "$rc" && made_rc=1
fi
status=0
"${apt[@]}" install -y --no-install-recommends "${missing[@]}" >/dev/null || status=$?
if [ -n "$made_rc" ]; then rm -f "$rc"; fi
exit $status
