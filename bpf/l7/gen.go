/*
Copyright 2026 The Palisade Authors.

Licensed under the Apache License, Version 2.0 (the "License");
you may not use this file except in compliance with the License.
You may obtain a copy of the License at

    http://www.apache.org/licenses/LICENSE-2.0

Unless required by applicable law or agreed to in writing, software
distributed under the License is distributed on an "AS IS" BASIS,
WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
See the License for the specific language governing permissions and
limitations under the License.
*/

// Package l7 holds Palisade's in-kernel HTTP/1.x request enforcement: a
// sockops program that puts the server side of connections to L7 ports
// into a SOCKHASH, and the sk_skb stream parser and verdict that frame
// and decide every request on them (see docs/l7.md). The generated Go and
// object files are committed; internal/l7 loads them.
package l7

// The multiarch include directories give <asm/types.h> to the UAPI headers
// on Debian-like hosts; -idirafter keeps absent ones harmless.
//go:generate go run github.com/cilium/ebpf/cmd/bpf2go -cc clang-14 -strip llvm-strip-14 -target bpfel -no-global-types -type l7_mode -type l7_kind -type l7_reason -type l7_mask -type l7_config -type l7_active -type l7_port_key -type l7_bind_key -type l7_bind -type l7_peer_key -type l7_list_key -type l7_dfa_ref -type l7_list -type l7_classes -type l7_allow -type l7_hdr_key -type l7_sock -type l7_test_in -type l7_dir -type l7_event -type l7_esock L7 l7.c -- -O2 -mcpu=v3 -Wall -Werror -idirafter /usr/include/x86_64-linux-gnu -idirafter /usr/include/aarch64-linux-gnu
