#!/usr/bin/env bash
# Installs the Debian packages that build and test Palisade's eBPF datapath:
# clang-14 and llvm-14 (compile bpf/*.c and strip it; pinned so that the
# committed object is reproducible), libbpf-dev (bpf_helpers.h),
# linux-libc-dev (UAPI headers), bpftool and iproute2 (inspection, netns and
# veth in tests). Only what is missing is installed.
set -euo pipefail
exec "$(dirname "$0")/apt-install.sh" clang-14 llvm-14 libbpf-dev linux-libc-dev bpftool iproute2
