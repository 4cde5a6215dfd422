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

// Package kafka holds Palisade's in-kernel Kafka request enforcement: a
// sockops program that puts the server side of connections to Kafka
// ports into a SOCKHASH, and the sk_skb stream parser and verdict that
// frame and decide every request on them (see docs/kafka.md). The
// generated Go and object files are committed; internal/kafka loads them.
package kafka

// The multiarch include directories give <asm/types.h> to the UAPI headers
// on Debian-like hosts; -idirafter keeps absent ones harmless.
//go:generate go run github.com/cilium/ebpf/cmd/bpf2go -cc clang-14 -strip llvm-strip-14 -target bpfel -no-global-types -type kafka_kind -type kafka_reason -type kafka_val_kind -type kafka_config -type kafka_active -type kafka_port_key -type kafka_bind_key -type kafka_bind -type kafka_peer_key -type kafka_list_key -type kafka_allow -type kafka_list -type kafka_val_key -type kafka_sock -type kafka_test_in -type kafka_sockw -type kafka_names -type kafka_scratch -type kafka_event -type kafka_dir -type kafka_esock Kafka kafka.c -- -O2 -mcpu=v3 -Wall -Werror -idirafter /usr/include/x86_64-linux-gnu -idirafter /usr/include/aarch64-linux-gnu
