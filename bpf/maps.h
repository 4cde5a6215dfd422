// SPDX-License-Identifier: (GPL-2.0-only OR Apache-2.0)
/* Copyright 2026 The Palisade Authors. */

/*
 * Maps. The policy state (endpoints, ipcache, policy) exists in two slots,
 * each an inner map of an ARRAY_OF_MAPS; active_slot names the slot that
 * packets read. A new generation is built in the other slot and made
 * visible by one 4-byte write to active_slot (only its lowest byte ever
 * changes, so no reader can see a torn value). A program reads the slot
 * once per packet and takes every inner map from that slot, so a packet
 * sees one generation whole. Before a slot is rebuilt the agent waits for
 * every program that may still read it: an update of an ARRAY_OF_MAPS
 * returns only after synchronize_rcu() (kernel/bpf/syscall.c,
 * maybe_wait_bpf_programs), and TC programs run in RCU read sections.
 *
 * Inner maps are created by the agent for each generation, sized from the
 * data; the templates below fix type, key, value and flags (max_entries of
 * hash and LPM inner maps may differ from the template).
 */
#ifndef PALISADE_MAPS_H
#define PALISADE_MAPS_H

#include "palisade.h"

#define NUM_SLOTS 2

/*
 * clang 14 emits the key and value types of inner map templates as forward
 * declarations unless they are complete elsewhere in BTF: these unused
 * pointers make them so (and give bpf2go's -type the event and frag types).
 */
const struct addr_key *__btf_addr_key __attribute__((unused));
const struct endpoint_value *__btf_endpoint_value __attribute__((unused));
const struct ipcache_lpm_key *__btf_ipcache_lpm_key __attribute__((unused));
const struct ipcache_value *__btf_ipcache_value __attribute__((unused));
const struct policy_key *__btf_policy_key __attribute__((unused));
const struct policy_lpm_key *__btf_policy_lpm_key __attribute__((unused));
const struct policy_value *__btf_policy_value __attribute__((unused));
const struct verdict_event *__btf_verdict_event __attribute__((unused));
const enum event_type *__btf_event_type __attribute__((unused));
const enum event_version *__btf_event_version __attribute__((unused));
const enum counter *__btf_counter __attribute__((unused));
const enum verdict *__btf_verdict __attribute__((unused));
const enum reason *__btf_reason __attribute__((unused));
const enum direction *__btf_direction __attribute__((unused));
const struct dns_list *__btf_dns_list __attribute__((unused));
const struct dns_accept *__btf_dns_accept __attribute__((unused));
const struct fqdn_accept *__btf_fqdn_accept __attribute__((unused));
const struct fqdn_selector *__btf_fqdn_selector __attribute__((unused));

/* Inner map templates. */
#define INNER_ENDPOINTS_TEMPLATE \
	struct { \
		__uint(type, BPF_MAP_TYPE_HASH); \
		__uint(max_entries, 1); \
		__type(key, struct addr_key); \
		__type(value, struct endpoint_value); \
	}

#define INNER_IPCACHE_TEMPLATE \
	struct { \
		__uint(type, BPF_MAP_TYPE_HASH); \
		__uint(max_entries, 1); \
		__type(key, struct addr_key); \
		__type(value, struct ipcache_value); \
	}

#define INNER_IPCACHE_LPM_TEMPLATE \
	struct { \
		__uint(type, BPF_MAP_TYPE_LPM_TRIE); \
		__uint(max_entries, 1); \
		__uint(map_flags, BPF_F_NO_PREALLOC); \
		__type(key, struct ipcache_lpm_key); \
		__type(value, struct ipcache_value); \
	}

#define INNER_POLICY_TEMPLATE \
	struct { \
		__uint(type, BPF_MAP_TYPE_HASH); \
		__uint(max_entries, 1); \
		__type(key, struct policy_key); \
		__type(value, struct policy_value); \
	}

#define INNER_POLICY_LPM_TEMPLATE \
	struct { \
		__uint(type, BPF_MAP_TYPE_LPM_TRIE); \
		__uint(max_entries, 1); \
		__uint(map_flags, BPF_F_NO_PREALLOC); \
		__type(key, struct policy_lpm_key); \
		__type(value, struct policy_value); \
	}

/* DNS tables; arrays are BPF_F_INNER_MAP so that their sizes may differ. */
#define INNER_DNS_LISTS_TEMPLATE \
	struct { \
		__uint(type, BPF_MAP_TYPE_HASH); \
		__uint(max_entries, 1); \
		__type(key, __u32); \
		__type(value, struct dns_list); \
	}

#define INNER_DNS_NEXT_TEMPLATE \
	struct { \
		__uint(type, BPF_MAP_TYPE_ARRAY); \
		__uint(max_entries, 1); \
		__uint(map_flags, BPF_F_INNER_MAP); \
		__type(key, __u32); \
		__type(value, __u32); \
	}

#define INNER_DNS_ACCEPT_TEMPLATE \
	struct { \
		__uint(type, BPF_MAP_TYPE_ARRAY); \
		__uint(max_entries, 1); \
		__uint(map_flags, BPF_F_INNER_MAP); \
		__type(key, __u32); \
		__type(value, struct dns_accept); \
	}

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
	__uint(max_entries, NUM_SLOTS);
	__type(key, __u32);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
	__array(values, INNER_ENDPOINTS_TEMPLATE);
} gen_endpoints SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
	__uint(max_entries, NUM_SLOTS);
	__type(key, __u32);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
	__array(values, INNER_DNS_LISTS_TEMPLATE);
} gen_dns_lists SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
	__uint(max_entries, NUM_SLOTS);
	__type(key, __u32);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
	__array(values, INNER_DNS_NEXT_TEMPLATE);
} gen_dns_next SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
	__uint(max_entries, NUM_SLOTS);
	__type(key, __u32);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
	__array(values, INNER_DNS_ACCEPT_TEMPLATE);
} gen_dns_accept SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct dns_config);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} dns_settings SEC(".maps");

/*
 * A question's name, copied from the packet (per CPU). Pinned like every
 * map, so that the pin checks hold for all; it holds nothing between
 * packets.
 */
struct dns_scratch {
	__u8 buf[256];
	__u8 args[96]; /* struct dns_args (dns.h) */
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct dns_scratch);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} dns_scratch SEC(".maps");

/* toFQDNs tables (engine.CompileFQDN), per generation. */
#define INNER_FQDN_NEXT_TEMPLATE \
	struct { \
		__uint(type, BPF_MAP_TYPE_ARRAY); \
		__uint(max_entries, 1); \
		__uint(map_flags, BPF_F_INNER_MAP); \
		__type(key, __u32); \
		__type(value, __u32); \
	}

#define INNER_FQDN_ACCEPT_TEMPLATE \
	struct { \
		__uint(type, BPF_MAP_TYPE_ARRAY); \
		__uint(max_entries, 1); \
		__uint(map_flags, BPF_F_INNER_MAP); \
		__type(key, __u32); \
		__type(value, struct fqdn_accept); \
	}

#define INNER_FQDN_SELECTORS_TEMPLATE \
	struct { \
		__uint(type, BPF_MAP_TYPE_HASH); \
		__uint(max_entries, 1); \
		__type(key, __u32); \
		__type(value, struct fqdn_selector); \
	}

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
	__uint(max_entries, NUM_SLOTS);
	__type(key, __u32);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
	__array(values, INNER_FQDN_NEXT_TEMPLATE);
} gen_fqdn_next SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
	__uint(max_entries, NUM_SLOTS);
	__type(key, __u32);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
	__array(values, INNER_FQDN_ACCEPT_TEMPLATE);
} gen_fqdn_accept SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
	__uint(max_entries, NUM_SLOTS);
	__type(key, __u32);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
	__array(values, INNER_FQDN_SELECTORS_TEMPLATE);
} gen_fqdn_selectors SEC(".maps");

/*
 * The learned table: never LRU (an entry is removed by expiry only, by
 * the agent's ExpireFQDN); a full map is counted and flagged.
 */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__type(key, __u64);
	__type(value, struct fqdn_name);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} fqdn_names SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, struct addr_key);
	__type(value, struct fqdn_addr);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} fqdn_addrs SEC(".maps");

/* Queries waiting for their answers: LRU, an unanswered query ages out. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, struct fqdn_pending_key);
	__type(value, struct fqdn_query);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} fqdn_pending SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct fqdn_config);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} fqdn_settings SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
	__uint(max_entries, NUM_SLOTS);
	__type(key, __u32);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
	__array(values, INNER_IPCACHE_TEMPLATE);
} gen_ipcache SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
	__uint(max_entries, NUM_SLOTS);
	__type(key, __u32);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
	__array(values, INNER_IPCACHE_LPM_TEMPLATE);
} gen_ipcache_lpm SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
	__uint(max_entries, NUM_SLOTS);
	__type(key, __u32);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
	__array(values, INNER_POLICY_TEMPLATE);
} gen_policy SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
	__uint(max_entries, NUM_SLOTS);
	__type(key, __u32);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
	__array(values, INNER_POLICY_LPM_TEMPLATE);
} gen_policy_lpm SEC(".maps");

/* The slot that packets read. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct active_slot);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} active SEC(".maps");

/* Runtime settings, written by the agent. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct runtime_settings);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} settings SEC(".maps");

/* The policy generation held by each slot, for events. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, NUM_SLOTS);
	__type(key, __u32);
	__type(value, __u64);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} generations SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 262144);
	__type(key, struct ct_key);
	__type(value, struct ct_value);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} conntrack SEC(".maps");

/* IPv4 connections (struct ct4_key); conntrack holds IPv6 ones. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 262144);
	__type(key, struct ct4_key);
	__type(value, struct ct_value);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} conntrack4 SEC(".maps");

/*
 * The flow cache: FLOW_CACHE_SLOTS per CPU (32 bytes each, 256 KiB per
 * CPU). A cache: its contents are never needed, so Open replaces a pinned
 * one of another layout instead of refusing it.
 */
#define FLOW_CACHE_BITS 13
#define FLOW_CACHE_SLOTS (1 << FLOW_CACHE_BITS)

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, FLOW_CACHE_SLOTS);
	__type(key, __u32);
	__type(value, struct flow_cache_entry);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} flow_cache SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, struct frag_key);
	__type(value, struct frag_value);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} fragments SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 22);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, COUNTER_SLOTS);
	__type(key, __u32);
	__type(value, __u64);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} counters SEC(".maps");

static __always_inline void count(__u32 c)
{
	__u64 *v = bpf_map_lookup_elem(&counters, &c);
	if (v)
		*v += 1;
}

#endif /* PALISADE_MAPS_H */
