//go:build ignore

// SPDX-License-Identifier: (GPL-2.0-only OR Apache-2.0)
/* Copyright 2026 The Palisade Authors. */

/*
 * Kafka requests decided in the kernel, on the server side of a
 * connection (ingress of the workload that serves, the broker). See
 * docs/kafka.md.
 *
 * kafka_sockops puts each established server socket whose local address
 * and port have an entry in kafka_ports into the SOCKHASH kafka_socks; its
 * receive path then runs the stream parser kafka_parser, which holds the
 * bytes until a whole request frame (int32 size, then the request) has
 * arrived, and decides it: by API key, version, client ID and topic, from
 * the tables internal/engine compiles (kafka_tables.go). An allowed frame
 * is handed to the broker whole by kafka_verdict. A refused one never is:
 * kafka_verdict writes an answer in its place and sends it back on the
 * same connection: for a Metadata request, the Metadata response naming
 * its refused topics with TOPIC_AUTHORIZATION_FAILED (when it fits in the
 * frame), for a Produce request naming one topic, the Produce response
 * with TOPIC_AUTHORIZATION_FAILED for each of its partitions;
 * for any other, a frame under another correlation ID, which clients
 * take for a broken connection and close (see docs/kafka.md).
 *
 * The parse itself, kafka_parse_frame, is a global function that the test
 * program kafka_test_parse (tc, which has BPF_PROG_TEST_RUN) calls too.
 */
#include <linux/types.h>
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_core_read.h>

#include "kafka.h"

#ifndef SOL_SOCKET
#define SOL_SOCKET 1
#endif
#ifndef SO_RCVBUF
#define SO_RCVBUF 8
#endif

char LICENSE[] SEC("license") = "GPL";

#define AF_INET 2
#define AF_INET6 10

/* bpf2go -type needs the enums in BTF; these variables put them there. */
const volatile enum kafka_kind kafka_btf_kind = KAFKA_KIND_NEED_MORE;
const volatile enum kafka_reason kafka_btf_reason = KAFKA_R_ALLOWED;
const volatile enum kafka_val_kind kafka_btf_val_kind = KAFKA_VAL_VERSION;
const volatile struct kafka_event kafka_btf_event = {};

/* ---- maps ---- */

struct {
	__uint(type, BPF_MAP_TYPE_SOCKHASH);
	__uint(max_entries, 65536);
	__type(key, __u64); /* socket cookie */
	__type(value, __u64);
} kafka_socks SEC(".maps");

/* The socket's state, and the scratch key for value lookups (the parser
 * of one socket runs under its lock; a per-CPU scratch could be reused
 * by a softirq on the same CPU). */
struct kafka_sockw {
	struct kafka_sock s;
	struct kafka_scratch x;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, __u64);
	__type(value, struct kafka_sockw);
} kafka_sock_state SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct kafka_active);
} kafka_slot SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, struct kafka_config);
} kafka_gens SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, struct kafka_port_key);
	__type(value, __u32);
} kafka_ports SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 2 * 16384);
	__type(key, struct kafka_bind_key);
	__type(value, struct kafka_bind);
} kafka_binds SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, 65536);
	__type(key, struct kafka_peer_key);
	__type(value, __u32);
} kafka_peers SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 2 * KAFKA_MAX_LISTS);
	__type(key, struct kafka_list_key);
	__type(value, struct kafka_list);
} kafka_lists SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 2 * KAFKA_MAX_VALS);
	__type(key, struct kafka_val_key);
	__type(value, __u64);
} kafka_vals SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, KAFKA_R_MAX);
	__type(key, __u32);
	__type(value, __u64);
} kafka_counters SEC(".maps");

/* Verdict events. */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 20);
} kafka_events SEC(".maps");

/* BPF_PROG_TEST_RUN of kafka_test_parse. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct kafka_test_in);
} kafka_test_input SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct kafka_sockw);
} kafka_test_out SEC(".maps");

static __always_inline void count(__u32 reason)
{
	__u64 *c = bpf_map_lookup_elem(&kafka_counters, &reason);
	if (c)
		*c += 1;
}

/* ---- reading the frame ---- */

/* The walk over one frame: [pos, end) is what is left of it. */
struct kafka_rd {
	__u32 pos;
	__u32 end;
	__u32 bad; /* a read past the frame or a bad encoding */
};

static __always_inline __u32 rd_u8(struct __sk_buff *skb, struct kafka_rd *r)
{
	__u8 b = 0;
	if (r->pos + 1 > r->end || bpf_skb_load_bytes(skb, r->pos, &b, 1) < 0) {
		r->bad = 1;
		return 0;
	}
	r->pos += 1;
	return b;
}

static __always_inline __s32 rd_i16(struct __sk_buff *skb, struct kafka_rd *r)
{
	__u16 v = 0;
	if (r->pos + 2 > r->end || bpf_skb_load_bytes(skb, r->pos, &v, 2) < 0) {
		r->bad = 1;
		return 0;
	}
	r->pos += 2;
	return (__s16)bpf_ntohs(v);
}

static __always_inline __s32 rd_i32(struct __sk_buff *skb, struct kafka_rd *r)
{
	__u32 v = 0;
	if (r->pos + 4 > r->end || bpf_skb_load_bytes(skb, r->pos, &v, 4) < 0) {
		r->bad = 1;
		return 0;
	}
	r->pos += 4;
	return (__s32)bpf_ntohl(v);
}

static __always_inline void rd_skip(struct kafka_rd *r, __u32 n)
{
	if (n > r->end - r->pos || r->pos > r->end) {
		r->bad = 1;
		return;
	}
	r->pos += n;
}

/* An unsigned varint of at most 5 bytes (Kafka's compact lengths and tag
 * counts fit in 32 bits). */
static __always_inline __u32 rd_uvarint(struct __sk_buff *skb, struct kafka_rd *r)
{
	__u32 v = 0;
	for (int i = 0; i < 5; i++) {
		__u32 b = rd_u8(skb, r);
		if (r->bad)
			return 0;
		v |= (b & 0x7f) << (7 * i);
		if (!(b & 0x80))
			return v;
	}
	r->bad = 1;
	return 0;
}

/* A string's length: int16 (-1 null), or in flexible versions an
 * unsigned varint of length + 1 (0 null). Null is -1. */
static __always_inline __s32 rd_strlen(struct __sk_buff *skb, struct kafka_rd *r, __u32 flex)
{
	if (flex) {
		__u32 n = rd_uvarint(skb, r);
		if (r->bad)
			return 0;
		if (n > 0x7fff + 1) {
			r->bad = 1;
			return 0;
		}
		return (__s32)n - 1;
	}
	__s32 n = rd_i16(skb, r);
	if (n < -1)
		r->bad = 1;
	return n;
}

/* An array's length: int32 (-1 null), or an unsigned varint of length +
 * 1 (0 null). Null is -1. */
static __always_inline __s32 rd_arrlen(struct __sk_buff *skb, struct kafka_rd *r, __u32 flex)
{
	if (flex) {
		__u32 n = rd_uvarint(skb, r);
		if (r->bad)
			return 0;
		if (n > 0x7fffffff) {
			r->bad = 1;
			return 0;
		}
		return (__s32)n - 1;
	}
	__s32 n = rd_i32(skb, r);
	if (n < -1)
		r->bad = 1;
	return n;
}

/* Skips a string (its length read), checking it lies in the frame. */
static __always_inline void rd_skip_str(struct __sk_buff *skb, struct kafka_rd *r, __u32 flex, __u32 nullable)
{
	__s32 n = rd_strlen(skb, r, flex);
	if (r->bad)
		return;
	if (n < 0) {
		if (!nullable)
			r->bad = 1;
		return;
	}
	rd_skip(r, (__u32)n);
}

/* A tagged-field section: the kernel reads only empty ones. */
static __always_inline int rd_no_tags(struct __sk_buff *skb, struct kafka_rd *r)
{
	__u32 n = rd_uvarint(skb, r);
	return !r->bad && n == 0;
}

/* ---- tables ---- */

/* val_mask looks a value up: len bytes at skb offset at, or (skb NULL)
 * the 2 bytes of ver. A value longer than KAFKA_VAL_MAX is no rule's. */
static __always_inline __u64 val_mask(struct __sk_buff *skb, struct kafka_val_key *k, __u32 slot, __u32 list,
				      __u32 kind, __u32 at, __u32 len, __u32 ver)
{
	if (len == 0 || len > KAFKA_VAL_MAX)
		return 0;
	__builtin_memset(k, 0, sizeof(*k));
	k->slot = slot;
	k->list = list;
	k->kind = kind;
	k->len = len;
	if (kind == KAFKA_VAL_VERSION) {
		k->val[0] = ver & 0xff;
		k->val[1] = ver >> 8;
	} else if (bpf_skb_load_bytes(skb, at, k->val, len & 0xff) < 0) {
		return 0;
	}
	__u64 *m = bpf_map_lookup_elem(&kafka_vals, k);
	return m ? *m : 0;
}

struct kafka_dec {
	__u32 reason; /* KAFKA_R_ALLOWED, _DENIED or _AUDIT */
	__u32 rule;
};

/*
 * kafka_decide decides a request whose matching rules are m, from the
 * list's allows, as engine.KafkaList.Decide: the lowest enforcing allow
 * that admits it allows it; if enforcing allows exist and none admits
 * it, it is denied (the lowest refusing allow named); a list whose
 * allows are all audit-mode ones passes it (audit if none admits).
 */
__noinline int kafka_decide(struct kafka_list *l, __u64 m, struct kafka_dec *d)
{
	if (!l || !d)
		return 0;
	__u32 na = l->nallows;
	__u32 enforced = 0, restricting = 0, seen = 0, full = 0;
	for (__u32 a = 0; a < KAFKA_MAX_ALLOWS; a++) {
		if (a >= na)
			break;
		struct kafka_allow *al = &l->allows[a];
		__u32 ok = al->any || (al->rules & m) != 0;
		if (ok && !full)
			full = al->rule;
		if (al->audit)
			continue;
		seen = 1;
		if (ok && !enforced)
			enforced = al->rule;
		if (!ok && !restricting)
			restricting = al->rule;
	}
	if (seen && !enforced) {
		d->reason = KAFKA_R_DENIED;
		d->rule = restricting;
	} else if (!full) {
		d->reason = KAFKA_R_AUDIT;
		d->rule = 0;
	} else {
		d->reason = KAFKA_R_ALLOWED;
		d->rule = seen ? enforced : full;
	}
	return 0;
}

/* ---- the request ---- */

/* What the body walk found. */
enum topics_state {
	T_NONE = 0,   /* the key carries no topic */
	T_ALL = 1,    /* every topic (Metadata, OffsetFetch with null topics) */
	T_EMPTY = 2,  /* no topic named */
	T_READ = 3,   /* every topic read and decided (in dec) */
	T_UNREAD = 4, /* topics the kernel does not read: why in why */
};

/* The parse of one frame, on the caller's stack. */
struct kafka_parse {
	struct kafka_rd r;
	__u64 h; /* the rules the header admits */
	__u32 slot;
	__u32 list_id;
	__u32 flex;
	__u32 uuid;   /* topic entries start with a topic ID (Metadata v10+) */
	__u32 state;  /* enum topics_state */
	__u32 why;    /* T_UNREAD: the reason */
	__u32 ntopics;
	__u32 key;
	__u32 ver;
	struct kafka_dec dec; /* T_READ: the combined decision */
	__u32 tat;  /* the deciding topic's name: its offset in the skb */
	__u32 tlen; /* and length (0: none read) */
};

/* Combines a topic's decision into the request's: denied if one is,
 * else audit if one is, else allowed; the first such topic names the
 * rule. */
static __always_inline int combine(struct kafka_dec *all, struct kafka_dec *d, __u32 first)
{
	if (first || (d->reason == KAFKA_R_DENIED && all->reason != KAFKA_R_DENIED) ||
	    (d->reason == KAFKA_R_AUDIT && all->reason == KAFKA_R_ALLOWED)) {
		all->reason = d->reason;
		all->rule = d->rule;
		return 1;
	}
	return 0;
}

/*
 * kafka_topic reads one topic entry of a Metadata request (its topic ID
 * in v10+, its name, its tagged fields in flexible versions) and decides
 * the request for that topic.
 */
__noinline int kafka_topic(struct __sk_buff *skb, struct kafka_parse *p, struct kafka_list *l, struct kafka_scratch *x)
{
	if (!skb || !p || !l || !x)
		return 0;
	struct kafka_val_key *k = &x->key;
	struct kafka_rd *r = &p->r;
	if (p->uuid)
		rd_skip(r, 16);
	__s32 n = rd_strlen(skb, r, p->flex);
	if (r->bad) {
		p->state = T_UNREAD;
		p->why = KAFKA_R_MALFORMED;
		return 0;
	}
	if (n < 0) {
		/* a topic named by its ID only */
		p->state = T_UNREAD;
		p->why = KAFKA_R_UNPARSED;
		return 0;
	}
	__u32 at = r->pos;
	rd_skip(r, (__u32)n);
	if (p->flex && !r->bad && !rd_no_tags(skb, r)) {
		p->state = T_UNREAD;
		p->why = r->bad ? KAFKA_R_MALFORMED : KAFKA_R_TAGGED;
		return 0;
	}
	if (r->bad) {
		p->state = T_UNREAD;
		p->why = KAFKA_R_MALFORMED;
		return 0;
	}
	__u64 m = p->h & (l->topic_any | val_mask(skb, k, p->slot, p->list_id, KAFKA_VAL_TOPIC, at, (__u32)n, 0));
	struct kafka_dec d = {};
	kafka_decide(l, m, &d);
	if (combine(&p->dec, &d, p->ntopics == 0)) {
		/* the topic the event names */
		p->tat = at;
		p->tlen = (__u32)n;
	}
	/* the name, for an answer */
	struct kafka_names *nm = &x->names;
	__u32 i = p->ntopics;
	if (i < KAFKA_MAX_TOPICS && n > 0 && n <= KAFKA_VAL_MAX && nm->len < KAFKA_NAMES_MAX &&
	    bpf_skb_load_bytes(skb, at, &nm->buf[nm->len & (KAFKA_NAMES_MAX - 1)], (((__u32)n - 1) & 0xff) + 1) == 0) {
		nm->nlen[i & (KAFKA_MAX_TOPICS - 1)] = n;
		nm->len += n;
		nm->count++;
		if (d.reason == KAFKA_R_DENIED)
			nm->denied |= 1u << (i & 31);
	} else {
		nm->ok = 0;
	}
	p->ntopics++;
	return 0;
}

/* The first version of each parsed key whose requests are flexible
 * (compact strings, tagged fields, request header v2). */
static __always_inline __u32 flexible(__u32 key, __u32 ver)
{
	switch (key) {
	case 0: return ver >= 9;  /* Produce */
	case 1: return ver >= 12; /* Fetch */
	case 2: return ver >= 6;  /* ListOffsets */
	case 3: return ver >= 9;  /* Metadata */
	case 8: return ver >= 8;  /* OffsetCommit */
	case 9: return ver >= 6;  /* OffsetFetch */
	}
	return 0;
}

/* The keys whose requests name no topic. */
static __always_inline __u32 topicless(__u32 key)
{
	switch (key) {
	case 10: /* FindCoordinator */
	case 11: /* JoinGroup */
	case 12: /* Heartbeat */
	case 13: /* LeaveGroup */
	case 14: /* SyncGroup */
	case 15: /* DescribeGroups */
	case 16: /* ListGroups */
	case 17: /* SaslHandshake */
	case 18: /* ApiVersions */
	case 22: /* InitProducerId */
	case 26: /* EndTxn */
	case 36: /* SaslAuthenticate */
	case 42: /* DeleteGroups */
	case 60: /* DescribeCluster */
		return 1;
	}
	return 0;
}

/* The versions of the parsed keys whose topics the kernel reads. */
static __always_inline __u32 parsed(__u32 key, __u32 ver)
{
	switch (key) {
	case 0: return ver <= 12; /* v13+: topic IDs */
	case 1: return ver <= 12; /* v13+: topic IDs */
	case 2: return ver <= 10;
	case 3: return ver <= 13;
	case 8: return ver <= 9;  /* v10+: topic IDs */
	case 9: return ver <= 7;  /* v8+: groups of topics */
	}
	return 0;
}

/*
 * kafka_produce_parts records, for the answer of a refused Produce
 * request, its topic's name (n bytes at at) and the index of each of its
 * partitions (at most KAFKA_MAX_PARTS), walking their records; names.ok
 * says whether all of it was recorded.
 */
__noinline int kafka_produce_parts(struct __sk_buff *skb, struct kafka_parse *p, struct kafka_scratch *x, __u32 at, __u32 n)
{
	if (!skb || !p || !x)
		return 0;
	struct kafka_names *nm = &x->names;
	struct kafka_rd *r = &p->r;
	nm->ok = 0;
	if (n == 0 || n > KAFKA_VAL_MAX || bpf_skb_load_bytes(skb, at, nm->buf, ((n - 1) & 0xff) + 1) < 0)
		return 0;
	nm->nlen[0] = n;
	nm->len = n;
	nm->count = 1;
	nm->denied = 1;
	__s32 np = rd_arrlen(skb, r, p->flex);
	if (r->bad || np < 1 || np > KAFKA_MAX_PARTS)
		return 0;
	for (__u32 i = 0; i < KAFKA_MAX_PARTS; i++) {
		if (i >= (__u32)np)
			break;
		__u32 idx = (__u32)rd_i32(skb, r);
		__s32 rl;
		if (p->flex) {
			rl = (__s32)rd_uvarint(skb, r) - 1;
		} else {
			rl = rd_i32(skb, r);
		}
		if (r->bad)
			return 0;
		if (rl > 0)
			rd_skip(r, (__u32)rl);
		if (p->flex && !rd_no_tags(skb, r))
			return 0;
		if (r->bad)
			return 0;
		nm->parts[i & (KAFKA_MAX_PARTS - 1)] = idx;
		nm->nparts = i + 1;
	}
	nm->ok = 1;
	return 0;
}

/*
 * kafka_body walks the request body of a parsed key and version up to
 * its topics: the fields before the topic array, the array's length, and
 * the topics (the first of a one-topic array; every one of a Metadata
 * request, up to KAFKA_MAX_TOPICS).
 */
__noinline int kafka_body(struct __sk_buff *skb, struct kafka_parse *p, struct kafka_list *l, struct kafka_scratch *x)
{
	if (!skb || !p || !l || !x)
		return 0;
	struct kafka_val_key *k = &x->key;
	__u32 key = p->key, ver = p->ver;
	struct kafka_rd *r = &p->r;
	__u32 flex = p->flex;
	__u32 nullall = 0; /* a null array means every topic */
	switch (key) {
	case 0: /* Produce: [transactional_id], acks, timeout_ms */
		if (ver >= 3)
			rd_skip_str(skb, r, flex, 1);
		x->names.acks = (__u32)(rd_i16(skb, r) & 0xffff);
		rd_skip(r, 4);
		break;
	case 1: /* Fetch: replica_id, max_wait_ms, min_bytes, [max_bytes], [isolation_level], [session_id, session_epoch] */
		rd_skip(r, 12);
		if (ver >= 3)
			rd_skip(r, 4);
		if (ver >= 4)
			rd_skip(r, 1);
		if (ver >= 7)
			rd_skip(r, 8);
		break;
	case 2: /* ListOffsets: replica_id, [isolation_level] */
		rd_skip(r, 4);
		if (ver >= 2)
			rd_skip(r, 1);
		break;
	case 3: /* Metadata: the topics first */
		nullall = 1;
		p->uuid = ver >= 10;
		break;
	case 8: /* OffsetCommit: group_id, [generation_id, member_id], [group_instance_id], [retention_time_ms] */
		rd_skip_str(skb, r, flex, 0);
		if (ver >= 1) {
			rd_skip(r, 4);
			rd_skip_str(skb, r, flex, 0);
		}
		if (ver >= 7)
			rd_skip_str(skb, r, flex, 1);
		if (ver >= 2 && ver <= 4)
			rd_skip(r, 8);
		break;
	case 9: /* OffsetFetch: group_id */
		rd_skip_str(skb, r, flex, 0);
		nullall = ver >= 2;
		break;
	}
	__s32 n = rd_arrlen(skb, r, flex);
	if (r->bad) {
		p->state = T_UNREAD;
		p->why = KAFKA_R_MALFORMED;
		return 0;
	}
	if (n < 0) {
		if (!nullall) {
			p->state = T_UNREAD;
			p->why = KAFKA_R_MALFORMED;
		} else {
			p->state = T_ALL;
		}
		return 0;
	}
	if (n == 0) {
		/* Metadata v0: an empty array asks for every topic */
		p->state = key == 3 && ver == 0 ? T_ALL : T_EMPTY;
		return 0;
	}
	if (key != 3) {
		if (n > 1) {
			p->state = T_UNREAD;
			p->why = KAFKA_R_TOPICS;
			return 0;
		}
		__s32 tn = rd_strlen(skb, r, flex);
		if (r->bad || tn < 0) {
			p->state = T_UNREAD;
			p->why = KAFKA_R_MALFORMED;
			return 0;
		}
		__u32 at = r->pos;
		rd_skip(r, (__u32)tn);
		if (r->bad) {
			p->state = T_UNREAD;
			p->why = KAFKA_R_MALFORMED;
			return 0;
		}
		__u64 m = p->h & (l->topic_any | val_mask(skb, k, p->slot, p->list_id, KAFKA_VAL_TOPIC, at, (__u32)tn, 0));
		kafka_decide(l, m, &p->dec);
		p->tat = at;
		p->tlen = (__u32)tn;
		p->ntopics = 1;
		p->state = T_READ;
		if (key == 0 && p->dec.reason == KAFKA_R_DENIED)
			kafka_produce_parts(skb, p, x, at, (__u32)tn);
		return 0;
	}
	if (n > KAFKA_MAX_TOPICS) {
		p->state = T_UNREAD;
		p->why = KAFKA_R_TOPICS;
		return 0;
	}
	p->state = T_READ;
	for (__u32 i = 0; i < KAFKA_MAX_TOPICS; i++) {
		if (i >= (__u32)n || p->state != T_READ)
			break;
		kafka_topic(skb, p, l, x);
	}
	return 0;
}

/* The frame's result: close (refused) or pass (decided). */
static __always_inline void result(struct kafka_sock *res, __u32 reason, __u32 rule)
{
	res->reason = reason;
	res->rule = rule;
	res->kind = (reason == KAFKA_R_ALLOWED || reason == KAFKA_R_AUDIT) ? KAFKA_KIND_REQUEST : KAFKA_KIND_CLOSE;
}

/* The length of a Metadata answer of version v without its topic
 * entries (count: how many topics, for the array's length), as
 * kafka_answer writes it. */
static __always_inline __u32 metadata_answer_len(__u32 v)
{
	__u32 f = v >= 9;
	__u32 len = 8 + (f ? 1 : 0) + (v >= 3 ? 4 : 0) + (f ? 1 : 4) + (v >= 2 ? (f ? 1 : 2) : 0) + (v >= 1 ? 4 : 0);
	len += f ? 1 : 4; /* the topic array's length (at most 16 topics: one byte) */
	len += (v >= 8 && v <= 10 ? 4 : 0) + (v >= 13 ? 2 : 0) + (f ? 1 : 0);
	return len;
}

/* The length of one topic's entry of a Metadata answer. */
static __always_inline __u32 metadata_topic_len(__u32 v, __u32 n)
{
	__u32 f = v >= 9;
	return 2 + (f ? (n + 1 < 128 ? 1 : 2) : 2) + n + (v >= 10 ? 16 : 0) + (v >= 1 ? 1 : 0) + (f ? 1 : 4) +
	       (v >= 8 ? 4 : 0) + (f ? 1 : 0);
}

/* The length of the Produce answer of version v naming one topic of n
 * bytes with np partitions, as kafka_answer_produce writes it. */
static __always_inline __u32 produce_answer_len(__u32 v, __u32 n, __u32 np)
{
	__u32 f = v >= 9;
	__u32 part = 4 + 2 + 8 + (v >= 2 ? 8 : 0) + (v >= 5 ? 8 : 0) + (v >= 8 ? (f ? 2 : 6) : 0) + (f ? 1 : 0);
	return 8 + (f ? 1 : 0) + (f ? 1 : 4) + (f ? (n + 1 < 128 ? 1 : 2) : 2) + n + (f ? 1 : 4) + np * part + (f ? 1 : 0) +
	       (v >= 1 ? 4 : 0) + (f ? 1 : 0);
}

struct tcp_sock___kafka {
	__u32 write_seq;
	__u32 snd_una;
} __attribute__((preserve_access_index));

struct sock___kafka {
	int sk_rcvbuf;
} __attribute__((preserve_access_index));

/* rcvbuf is the socket's sk_rcvbuf: the strparser refuses (EMSGSIZE, and
 * stops without a verdict) a message longer than it. 0 when it cannot be
 * read: every frame is then refused as oversize, never left undecided. */
static __always_inline __u32 rcvbuf(struct __sk_buff *skb)
{
	struct bpf_sock *sk = skb->sk;
	if (!sk)
		return 0;
	struct sock___kafka *s = (void *)bpf_skc_to_tcp_sock(sk);
	if (!s)
		return 0;
	int n = s->sk_rcvbuf;
	return n > 0 ? (__u32)n : 0;
}

/* tcp_seqs reads the broker socket's write_seq (bytes the broker wrote)
 * and snd_una (bytes the client acknowledged). */
static __always_inline int tcp_seqs(struct __sk_buff *skb, __u32 *wseq, __u32 *una)
{
	struct bpf_sock *sk = skb->sk;
	if (!sk)
		return -1;
	struct tcp_sock___kafka *tp = (void *)bpf_skc_to_tcp_sock(sk);
	if (!tp)
		return -1;
	*wseq = tp->write_seq;
	*una = tp->snd_una;
	return 0;
}

struct kafka_args {
	__u32 off;
	__u32 avail;
	__u32 list;
	__u32 has_list;
	__u32 max; /* the longest frame the strparser can hold: the socket's sk_rcvbuf */
};

/*
 * kafka_parse_frame frames and decides the request that starts at off in
 * skb (avail bytes there): res->len 0 asks for more bytes; otherwise
 * res->kind says what to do with the res->len bytes of the frame.
 */
__noinline int kafka_decide_frame(struct __sk_buff *skb, struct kafka_args *a, struct kafka_sock *res,
				  struct kafka_scratch *x)
{
	if (!skb || !a || !res || !x)
		return 0;
	struct kafka_val_key *k = &x->key;
	x->names.len = 0;
	x->names.count = 0;
	x->names.ok = 1;
	x->names.denied = 0;
	x->names.nparts = 0;
	x->names.acks = 1;
	res->len = 0;
	res->kind = KAFKA_KIND_NEED_MORE;
	res->reason = 0;
	res->rule = 0;
	res->topics = 0;
	res->client_len = 0;
	res->topic_off = 0;
	res->topic_len = 0;
	res->list = a->has_list ? a->list : 0;
	/* the slot read once: the generation the event names is the one
	 * whose tables decide the frame */
	__u32 zero = 0;
	struct kafka_active *act = bpf_map_lookup_elem(&kafka_slot, &zero);
	if (!act)
		return 0;
	__u32 slot = act->slot & 1;
	struct kafka_config *cfg = bpf_map_lookup_elem(&kafka_gens, &slot);
	res->generation = cfg ? cfg->generation : 0;
	res->evall = cfg ? cfg->flags & KAFKA_EV_ALLOWED : 0;
	if (a->avail < 4)
		return 0;
	__u32 sz = 0;
	if (bpf_skb_load_bytes(skb, a->off, &sz, 4) < 0)
		return 0;
	__s32 size = (__s32)bpf_ntohl(sz);
	/* a request header is at least key, version, correlation ID and
	 * the client ID's length */
	if (size < 10) {
		res->len = 4;
		res->kind = KAFKA_KIND_CLOSE;
		res->reason = KAFKA_R_MALFORMED;
		return 0;
	}
	/* Over FrameMax, or longer than the socket's receive buffer: the
	 * strparser refuses a message longer than sk_rcvbuf (EMSGSIZE) and
	 * stops, without a verdict, and the frame would stall undecided
	 * (see kafka_sockops for the buffer a connection is given). */
	if (size > KAFKA_FRAME_MAX - 4 || 4 + (__u32)size > a->max) {
		res->len = 4;
		res->kind = KAFKA_KIND_CLOSE;
		res->reason = KAFKA_R_OVERSIZE;
		return 0;
	}
	__u32 flen = 4 + (__u32)size;
	if (a->avail < flen)
		return 0;
	res->len = flen;

	struct kafka_parse p = {};
	p.r.pos = a->off + 4;
	p.r.end = a->off + flen;
	__s32 key = rd_i16(skb, &p.r);
	__s32 ver = rd_i16(skb, &p.r);
	res->correlation = rd_i32(skb, &p.r);
	__s32 cl = rd_i16(skb, &p.r);
	res->api_key = key;
	res->api_version = ver;
	res->client_len = !p.r.bad && cl > 0 ? (__u32)cl : 0;
	if (!a->has_list) {
		res->kind = KAFKA_KIND_PASS;
		res->reason = KAFKA_R_PASSED;
		return 0;
	}
	if (p.r.bad || key < 0 || ver < 0 || cl < -1) {
		result(res, KAFKA_R_MALFORMED, 0);
		return 0;
	}
	__u32 cat = p.r.pos;
	if (cl > 0)
		rd_skip(&p.r, (__u32)cl);
	if (p.r.bad) {
		result(res, KAFKA_R_MALFORMED, 0);
		return 0;
	}

	p.slot = slot;
	p.list_id = a->list;
	struct kafka_list_key lk = { .slot = p.slot, .list = a->list };
	struct kafka_list *l = bpf_map_lookup_elem(&kafka_lists, &lk);
	if (!l) {
		result(res, KAFKA_R_NO_TABLES, 0);
		return 0;
	}
	__u32 ki = key < KAFKA_NAMED_KEYS ? (__u32)key : KAFKA_KEY_OTHER;
	if (ki >= KAFKA_KEYS)
		return 0;
	p.h = l->keys[ki];
	p.h &= l->ver_any | val_mask(skb, k, p.slot, p.list_id, KAFKA_VAL_VERSION, 0, 2, (__u32)ver);
	if (cl > 0)
		p.h &= l->client_any | val_mask(skb, k, p.slot, p.list_id, KAFKA_VAL_CLIENT, cat, (__u32)cl, 0);
	else
		p.h &= l->client_any;

	if (topicless((__u32)key)) {
		p.state = T_NONE;
	} else if (!parsed((__u32)key, (__u32)ver)) {
		p.state = T_UNREAD;
		p.why = key <= 3 || key == 8 || key == 9 ? KAFKA_R_VERSION : KAFKA_R_UNPARSED;
	} else {
		p.flex = flexible((__u32)key, (__u32)ver);
		if (p.flex && !rd_no_tags(skb, &p.r)) {
			p.state = T_UNREAD;
			p.why = p.r.bad ? KAFKA_R_MALFORMED : KAFKA_R_TAGGED;
		} else {
			p.key = key;
			p.ver = ver;
			kafka_body(skb, &p, l, x);
		}
	}

	struct kafka_dec d = {};
	switch (p.state) {
	case T_READ:
		res->topics = p.ntopics;
		if (p.tlen > 0 && p.tat >= a->off) {
			res->topic_off = p.tat - a->off;
			res->topic_len = p.tlen;
		}
		result(res, p.dec.reason, p.dec.rule);
		return 0;
	case T_EMPTY:
		/* no topic is named: decided by the header */
		kafka_decide(l, p.h, &d);
		result(res, d.reason, d.rule);
		return 0;
	case T_NONE:
	case T_ALL:
		/* only the rules without a topic admit it */
		kafka_decide(l, p.h & l->topic_any, &d);
		result(res, d.reason, d.rule);
		return 0;
	}
	/* T_UNREAD: the rules without a topic decide it if they admit it;
	 * if only a rule with a topic could, it is refused for what the
	 * kernel does not read. A malformed body is refused. */
	if (p.why == KAFKA_R_MALFORMED) {
		result(res, KAFKA_R_MALFORMED, 0);
		return 0;
	}
	kafka_decide(l, p.h & l->topic_any, &d);
	if (d.reason != KAFKA_R_DENIED) {
		result(res, d.reason, d.rule);
		return 0;
	}
	struct kafka_dec d2 = {};
	kafka_decide(l, p.h, &d2);
	if (d2.reason == KAFKA_R_DENIED)
		result(res, KAFKA_R_DENIED, d.rule);
	else
		result(res, p.why, d.rule);
	return 0;
}

/*
 * kafka_parse_frame frames and decides a frame (kafka_decide_frame) and,
 * for a refused Metadata request (every topic read), says whether the
 * kernel can answer it in the frame's place: the answer fits in the
 * frame (the kernel sends exactly the frame's length), and no answer of
 * the broker to a frame passed before can still be due (the broker has
 * written since the last frame it was given, and the client has
 * acknowledged all of it). Otherwise the connection is closed.
 */
__noinline int kafka_parse_frame(struct __sk_buff *skb, struct kafka_args *a, struct kafka_sock *res,
				 struct kafka_scratch *x)
{
	if (!skb || !a || !res || !x)
		return 0;
	if (res->mode) {
		res->len = a->avail;
		res->kind = KAFKA_KIND_DROP;
		res->reason = KAFKA_R_DROPPED;
		res->answer = 0;
		return 0;
	}
	kafka_decide_frame(skb, a, res, x);
	res->answer = 0;
	struct kafka_names *nm = &x->names;
	if (res->kind != KAFKA_KIND_CLOSE || res->reason != KAFKA_R_DENIED || res->topics == 0 || !nm->ok ||
	    nm->count != res->topics || nm->count > KAFKA_MAX_TOPICS)
		return 0;
	__u32 v = (__u32)res->api_version;
	__u32 n = 0;
	if (res->api_key == 3) {
		n = metadata_answer_len(v);
		for (__u32 i = 0; i < KAFKA_MAX_TOPICS; i++) {
			if (i >= nm->count)
				break;
			n += metadata_topic_len(v, nm->nlen[i]);
		}
	} else if (res->api_key == 0 && nm->count == 1 && nm->acks != 0 && nm->nparts > 0) {
		n = produce_answer_len(v, nm->nlen[0], nm->nparts);
	} else {
		return 0;
	}
	if (n > res->len)
		return 0;
	if (res->passed) {
		__u32 wseq = 0, una = 0;
		if (tcp_seqs(skb, &wseq, &una) < 0 || wseq == res->wseq || una != wseq)
			return 0;
	}
	res->kind = KAFKA_KIND_ANSWER;
	res->answer = n;
	return 0;
}

/* ---- programs ---- */

static const struct kafka_sockw kafka_sockw_zero;

/*
 * The stream parser and verdict see the strparser's skb from the start of
 * the segment it was cloned from: their message starts at the strparser's
 * offset, kept in skb->cb (struct sk_skb_cb), read through the kernel's
 * sk_buff (bpf_cast_to_kern_ctx), the field offsets relocated by CO-RE.
 */
struct strp_msg___kafka {
	int full_len;
	int offset;
} __attribute__((preserve_access_index));

struct _strp_msg___kafka {
	struct strp_msg___kafka strp;
	int accum_len;
} __attribute__((preserve_access_index));

struct sk_skb_cb___kafka {
	struct _strp_msg___kafka strp;
} __attribute__((preserve_access_index));

struct sk_buff___kafka {
	char cb[48];
} __attribute__((preserve_access_index));

extern void *bpf_cast_to_kern_ctx(void *obj) __ksym;

static __always_inline __u32 strp_offset(struct __sk_buff *skb)
{
	struct sk_buff___kafka *kb = bpf_cast_to_kern_ctx(skb);
	__u32 o = bpf_core_field_offset(struct sk_skb_cb___kafka, strp) +
		  bpf_core_field_offset(struct _strp_msg___kafka, strp) +
		  bpf_core_field_offset(struct strp_msg___kafka, offset);
	if (o > 44)
		return 0;
	return *(int *)(kb->cb + o);
}

static __always_inline int v4mapped(const __u32 *a)
{
	return a[0] == 0 && a[1] == 0 && a[2] == bpf_htonl(0xffff);
}

/* The binding of a request from the skb's peer to its local address:
 * the peer's identity's, else any peer's; the exact address's, else any
 * address of the family's. */
static __always_inline int find_bind(struct __sk_buff *skb, __u32 *list)
{
	__u32 zero = 0;
	struct kafka_active *act = bpf_map_lookup_elem(&kafka_slot, &zero);
	if (!act)
		return 0;
	struct kafka_bind_key k = { .slot = act->slot & 1, .port = skb->local_port };
	struct kafka_peer_key pk = {};
	if (skb->family == AF_INET) {
		k.family = 4;
		__builtin_memcpy(k.addr, &skb->local_ip4, 4);
		pk.family = 4;
		__builtin_memcpy(pk.addr, &skb->remote_ip4, 4);
		pk.prefixlen = 32 + 32;
	} else {
		__u32 la[4] = { skb->local_ip6[0], skb->local_ip6[1], skb->local_ip6[2], skb->local_ip6[3] };
		__u32 ra[4] = { skb->remote_ip6[0], skb->remote_ip6[1], skb->remote_ip6[2], skb->remote_ip6[3] };
		if (v4mapped(la)) {
			k.family = 4;
			__builtin_memcpy(k.addr, &la[3], 4);
			pk.family = 4;
			__builtin_memcpy(pk.addr, &ra[3], 4);
			pk.prefixlen = 32 + 32;
		} else {
			k.family = 6;
			__builtin_memcpy(k.addr, la, 16);
			pk.family = 6;
			__builtin_memcpy(pk.addr, ra, 16);
			pk.prefixlen = 32 + 128;
		}
	}
	__u32 *id = bpf_map_lookup_elem(&kafka_peers, &pk);
	k.identity = id ? *id : 0;
	struct kafka_bind *b = bpf_map_lookup_elem(&kafka_binds, &k);
	if (!b && k.identity) {
		k.identity = 0;
		b = bpf_map_lookup_elem(&kafka_binds, &k);
	}
	if (!b) {
		__builtin_memset(k.addr, 0, sizeof(k.addr));
		k.identity = id ? *id : 0;
		b = bpf_map_lookup_elem(&kafka_binds, &k);
		if (!b && k.identity) {
			k.identity = 0;
			b = bpf_map_lookup_elem(&kafka_binds, &k);
		}
	}
	if (!b)
		return 0;
	*list = b->list;
	return 1;
}

SEC("sk_skb/stream_parser")
int kafka_parser(struct __sk_buff *skb)
{
	__u64 cookie = bpf_get_socket_cookie(skb);
	struct kafka_sockw *w = bpf_map_lookup_elem(&kafka_sock_state, &cookie);
	if (!w)
		return -12; /* -ENOMEM: no state, the strparser stops */
	__u32 list = 0;
	__u32 has = find_bind(skb, &list);
	__u32 off = strp_offset(skb);
	struct kafka_args a = { .off = off, .avail = skb->len > off ? skb->len - off : 0, .list = list, .has_list = has,
				.max = rcvbuf(skb) };
	kafka_parse_frame(skb, &a, &w->s, &w->x);
	return w->s.len;
}

/* ---- the answer ---- */

struct wr {
	struct __sk_buff *skb;
	__u32 pos;
	__u32 end;
	int err;
};

static __always_inline void wr_bytes(struct wr *w, const void *b, __u32 n)
{
	if (w->err || n == 0 || n > 16 || w->pos + n > w->end) {
		w->err = 1;
		return;
	}
	if (bpf_skb_store_bytes(w->skb, w->pos, b, n, 0) < 0)
		w->err = 1;
	w->pos += n;
}

static __always_inline void wr8(struct wr *w, __u8 v) { wr_bytes(w, &v, 1); }

static __always_inline void wr16(struct wr *w, __u16 v)
{
	__u16 b = bpf_htons(v);
	wr_bytes(w, &b, 2);
}

static __always_inline void wr32(struct wr *w, __u32 v)
{
	__u32 b = bpf_htonl(v);
	wr_bytes(w, &b, 4);
}

static const __u8 zeros[64];

static long zero_cb(__u32 i, void *ctx)
{
	struct wr *w = ctx;
	if (w->pos >= w->end)
		return 1;
	__u32 n = w->end - w->pos;
	if (n > sizeof(zeros))
		n = sizeof(zeros);
	if (n == 0 || bpf_skb_store_bytes(w->skb, w->pos, zeros, n, 0) < 0) {
		w->err = 1;
		return 1;
	}
	w->pos += n;
	return 0;
}

/* One topic entry of a Metadata answer: the topic's error, its name
 * (n bytes at buf), no partition. */
static __always_inline void answer_topic(struct wr *w, __u32 v, __u16 err, const __u8 *name, __u32 n)
{
	__u32 f = v >= 9;
	wr16(w, err);
	if (f) {
		if (n + 1 < 128) {
			wr8(w, n + 1);
		} else {
			wr8(w, ((n + 1) & 0x7f) | 0x80);
			wr8(w, (n + 1) >> 7);
		}
	} else {
		wr16(w, n);
	}
	if (w->err || n == 0 || n > KAFKA_VAL_MAX || w->pos + n > w->end) {
		w->err = 1;
		return;
	}
	if (bpf_skb_store_bytes(w->skb, w->pos, name, ((n - 1) & 0xff) + 1, 0) < 0) {
		w->err = 1;
		return;
	}
	w->pos += n;
	if (v >= 10)
		wr_bytes(w, zeros, 16); /* topic_id */
	if (v >= 1)
		wr8(w, 0); /* is_internal */
	if (f)
		wr8(w, 1); /* partitions: none */
	else
		wr32(w, 0);
	if (v >= 8)
		wr32(w, 0x80000000); /* topic_authorized_operations: none given */
	if (f)
		wr8(w, 0);
}

/*
 * kafka_answer_produce writes, in place of a refused Produce request
 * naming one topic, the Produce response of its version under its
 * correlation ID: the topic, each of the request's partitions with
 * TOPIC_AUTHORIZATION_FAILED and offsets -1, then zeros to the frame's
 * end (as kafka_answer).
 */
__noinline int kafka_answer_produce(struct __sk_buff *skb, struct kafka_sock *st, struct kafka_scratch *x, __u32 off)
{
	if (!skb || !st || !x)
		return -1;
	struct kafka_names *nm = &x->names;
	__u32 v = (__u32)st->api_version;
	__u32 f = v >= 9;
	__u32 n = nm->nlen[0];
	__u32 np = nm->nparts;
	if (nm->count != 1 || n == 0 || np == 0 || np > KAFKA_MAX_PARTS || st->len < 8 || st->len > KAFKA_FRAME_MAX)
		return -1;
	struct wr w = { .skb = skb, .pos = off, .end = off + st->len };
	wr32(&w, st->len - 4);
	wr32(&w, (__u32)st->correlation);
	if (f) {
		wr8(&w, 0); /* response header tagged fields */
		wr8(&w, 2); /* topics: one */
		if (n + 1 < 128) {
			wr8(&w, n + 1);
		} else {
			wr8(&w, ((n + 1) & 0x7f) | 0x80);
			wr8(&w, (n + 1) >> 7);
		}
	} else {
		wr32(&w, 1);
		wr16(&w, n);
	}
	if (w.err || w.pos + n > w.end)
		return -1;
	if (bpf_skb_store_bytes(skb, w.pos, nm->buf, ((n - 1) & 0xff) + 1, 0) < 0)
		return -1;
	w.pos += n;
	if (f)
		wr8(&w, np + 1);
	else
		wr32(&w, np);
	for (__u32 i = 0; i < KAFKA_MAX_PARTS; i++) {
		if (i >= np || w.err)
			break;
		wr32(&w, nm->parts[i & (KAFKA_MAX_PARTS - 1)]);
		wr16(&w, KAFKA_TOPIC_AUTHORIZATION_FAILED);
		wr32(&w, 0xffffffff); /* base_offset -1 */
		wr32(&w, 0xffffffff);
		if (v >= 2) { /* log_append_time_ms -1 */
			wr32(&w, 0xffffffff);
			wr32(&w, 0xffffffff);
		}
		if (v >= 5) { /* log_start_offset -1 */
			wr32(&w, 0xffffffff);
			wr32(&w, 0xffffffff);
		}
		if (v >= 8) { /* record_errors: none; error_message: null */
			if (f) {
				wr8(&w, 1);
				wr8(&w, 0);
			} else {
				wr32(&w, 0);
				wr16(&w, 0xffff);
			}
		}
		if (f)
			wr8(&w, 0); /* partition tagged fields */
	}
	if (f)
		wr8(&w, 0); /* topic tagged fields */
	if (v >= 1)
		wr32(&w, 0); /* throttle_time_ms */
	if (f)
		wr8(&w, 0);
	if (w.err)
		return -1;
	bpf_loop(KAFKA_FRAME_MAX / sizeof(zeros) + 1, zero_cb, &w, 0);
	return w.err ? -1 : 0;
}

/*
 * kafka_answer writes, in place of the refused Metadata request at off
 * (len bytes), the Metadata response of the request's version under its
 * correlation ID: no broker, and each topic of the request in its order,
 * the refused ones with TOPIC_AUTHORIZATION_FAILED, the others with
 * LEADER_NOT_AVAILABLE (retriable: the broker was not asked), none with a
 * partition. The response's size field covers the whole frame and the
 * bytes after the response are zero (clients read a response by its
 * schema and ignore what follows).
 */
__noinline int kafka_answer(struct __sk_buff *skb, struct kafka_sock *st, struct kafka_scratch *x, __u32 off)
{
	if (!skb || !st || !x)
		return -1;
	struct kafka_names *nm = &x->names;
	__u32 v = (__u32)st->api_version;
	__u32 f = v >= 9;
	__u32 count = nm->count;
	if (count == 0 || count > KAFKA_MAX_TOPICS || st->len < 8 || st->len > KAFKA_FRAME_MAX)
		return -1;
	struct wr w = { .skb = skb, .pos = off, .end = off + st->len };
	wr32(&w, st->len - 4);
	wr32(&w, (__u32)st->correlation);
	if (f)
		wr8(&w, 0); /* response header tagged fields */
	if (v >= 3)
		wr32(&w, 0); /* throttle_time_ms */
	if (f)
		wr8(&w, 1); /* brokers: none */
	else
		wr32(&w, 0);
	if (v >= 2) { /* cluster_id: null */
		if (f)
			wr8(&w, 0);
		else
			wr16(&w, 0xffff);
	}
	if (v >= 1)
		wr32(&w, 0xffffffff); /* controller_id: none */
	if (f)
		wr8(&w, count + 1);
	else
		wr32(&w, count);
	__u32 at = 0;
	for (__u32 i = 0; i < KAFKA_MAX_TOPICS; i++) {
		if (i >= count || w.err)
			break;
		__u32 n = nm->nlen[i];
		if (at >= KAFKA_NAMES_MAX) {
			w.err = 1;
			break;
		}
		__u16 err = (nm->denied & (1u << i)) ? KAFKA_TOPIC_AUTHORIZATION_FAILED : KAFKA_LEADER_NOT_AVAILABLE;
		answer_topic(&w, v, err, &nm->buf[at & (KAFKA_NAMES_MAX - 1)], n);
		at += n;
	}
	if (v >= 8 && v <= 10)
		wr32(&w, 0x80000000); /* cluster_authorized_operations */
	if (v >= 13)
		wr16(&w, 0); /* error_code */
	if (f)
		wr8(&w, 0);
	if (w.err)
		return -1;
	bpf_loop(KAFKA_FRAME_MAX / sizeof(zeros) + 1, zero_cb, &w, 0);
	return w.err ? -1 : 0;
}

/*
 * kafka_close_frame writes, in place of a refused frame the kernel
 * cannot answer in the request's terms, one response frame as long as
 * the request: its size field, then (if there is room) the request's
 * correlation ID inverted, then zeros. No request of the client has that
 * correlation ID, so the client takes the connection for broken and
 * closes it (franz-go: "correlation ID mismatch"); a refused frame too
 * short to hold one is answered by a response frame of size zero.
 */
__noinline int kafka_close_frame(struct __sk_buff *skb, struct kafka_sock *st, __u32 off)
{
	if (!skb || !st || st->len < 4 || st->len > KAFKA_FRAME_MAX)
		return -1;
	struct wr w = { .skb = skb, .pos = off, .end = off + st->len };
	if (st->len < 8) {
		wr32(&w, 0);
	} else {
		wr32(&w, st->len - 4);
		wr32(&w, ~(__u32)st->correlation);
	}
	if (w.err)
		return -1;
	bpf_loop(KAFKA_FRAME_MAX / sizeof(zeros) + 1, zero_cb, &w, 0);
	return w.err ? -1 : 0;
}

/*
 * to_server gives the frame to the broker, redirected to the socket's own
 * receive queue rather than SK_PASS. For a strparser socket the kernel's
 * tcp_bpf_strp_read_sock (Linux 6.14 on; seen on 6.18) sets copied_seq to
 * what the strparser has read minus what that one read passed: bytes
 * passed by an earlier read that the broker has not read yet are counted
 * read, then counted again when the broker reads them. copied_seq then
 * runs ahead of rcv_nxt, tcp_data_ready does not wake the strparser for a
 * segment shorter than the excess, and the next request waits for the
 * client's next segment or FIN (TestFramesNotHeld in internal/kafka). A
 * redirected frame is counted read once, when the strparser reads it. A
 * failed redirect drops the frame and counts KAFKA_R_ANSWER_FAIL.
 */
static __always_inline int to_server(struct __sk_buff *skb)
{
	__u64 cookie = bpf_get_socket_cookie(skb);
	int v = bpf_sk_redirect_hash(skb, &kafka_socks, &cookie, BPF_F_INGRESS);
	if (v != SK_PASS)
		count(KAFKA_R_ANSWER_FAIL);
	return v;
}

/* passed records that a frame went to the broker, and its write_seq
 * then. */
static __always_inline int passed(struct __sk_buff *skb, struct kafka_sock *st)
{
	__u32 wseq = 0, una = 0;
	if (tcp_seqs(skb, &wseq, &una) == 0) {
		st->wseq = wseq;
		st->passed = 1;
	}
	return to_server(skb);
}

static __always_inline __u32 strp_full_len(struct __sk_buff *skb)
{
	struct sk_buff___kafka *kb = bpf_cast_to_kern_ctx(skb);
	__u32 o = bpf_core_field_offset(struct sk_skb_cb___kafka, strp) +
		  bpf_core_field_offset(struct _strp_msg___kafka, strp) +
		  bpf_core_field_offset(struct strp_msg___kafka, full_len);
	if (o > 44)
		return 0;
	return *(int *)(kb->cb + o);
}

/* ---- the verdict event ---- */

#define CTX_IP6(dst, src) do { \
	__u32 a0 = (src)[0]; barrier_var(a0); \
	__u32 a1 = (src)[1]; barrier_var(a1); \
	__u32 a2 = (src)[2]; barrier_var(a2); \
	__u32 a3 = (src)[3]; barrier_var(a3); \
	(dst)[0] = a0; (dst)[1] = a1; (dst)[2] = a2; (dst)[3] = a3; \
} while (0)

/*
 * ev_fill reserves the event of the frame the verdict has (st: what the
 * parser found) in the ring buffer and fills it, before an answer
 * overwrites the frame (the client ID and topic are read from it); NULL
 * (counted) when the ring buffer is full. ev_send submits it.
 */
static __always_inline struct kafka_event *ev_fill(struct __sk_buff *skb, struct kafka_sock *st, __u64 cookie)
{
	struct kafka_event *e = bpf_ringbuf_reserve(&kafka_events, sizeof(*e), 0);
	if (!e) {
		count(KAFKA_R_EVLOST);
		return NULL;
	}
	e->generation = st->generation;
	e->cookie = cookie;
	e->rule = st->rule;
	e->list = st->list;
	e->correlation = st->correlation;
	e->api_key = st->api_key;
	e->api_version = st->api_version;
	e->reason = st->reason;
	e->answer = 0;
	__u32 fam = skb->family;
	barrier_var(fam);
	__u32 lp = skb->local_port;
	barrier_var(lp);
	__u32 rp = skb->remote_port;
	barrier_var(rp);
	e->local_port = lp;
	rp = bpf_ntohl(rp);
	e->remote_port = rp > 0xffff ? rp >> 16 : rp;
	__u32 la[4] = {}, ra[4] = {};
	if (fam == AF_INET) {
		__u32 l = skb->local_ip4;
		barrier_var(l);
		__u32 r = skb->remote_ip4;
		barrier_var(r);
		e->family = 4;
		la[0] = l;
		ra[0] = r;
	} else {
		e->family = 6;
		CTX_IP6(la, skb->local_ip6);
		CTX_IP6(ra, skb->remote_ip6);
	}
	__builtin_memcpy(e->local, la, 16);
	__builtin_memcpy(e->remote, ra, 16);
	__u32 off = strp_offset(skb);
	__u32 n = st->client_len;
	e->client_full = n;
	e->client_len = 0;
	if (n > KAFKA_EV_CLIENT)
		n = KAFKA_EV_CLIENT;
	if (n > 0 && bpf_skb_load_bytes(skb, off + 14, e->client, ((n - 1) & (KAFKA_EV_CLIENT - 1)) + 1) == 0)
		e->client_len = n;
	n = st->topic_len;
	e->topic_full = n;
	e->topic_len = 0;
	if (n > KAFKA_EV_TOPIC)
		n = KAFKA_EV_TOPIC;
	if (n > 0 && bpf_skb_load_bytes(skb, off + st->topic_off, e->topic, ((n - 1) & (KAFKA_EV_TOPIC - 1)) + 1) == 0)
		e->topic_len = n;
	return e;
}

/* ev_send submits the event with what the client was given. */
static __always_inline void ev_send(struct kafka_event *e, __u32 answer)
{
	if (!e)
		return;
	e->answer = answer;
	bpf_ringbuf_submit(e, 0);
}

SEC("sk_skb/stream_verdict")
int kafka_verdict(struct __sk_buff *skb)
{
	__u64 cookie = bpf_get_socket_cookie(skb);
	struct kafka_sockw *w = bpf_map_lookup_elem(&kafka_sock_state, &cookie);
	if (!w)
		return SK_DROP;
	struct kafka_sock *st = &w->s;
	switch (st->kind) {
	case KAFKA_KIND_PASS:
		count(KAFKA_R_PASSED);
		return to_server(skb);
	case KAFKA_KIND_REQUEST:
		st->requests++;
		count(st->reason);
		if (st->reason == KAFKA_R_AUDIT || st->evall)
			ev_send(ev_fill(skb, st, cookie), KAFKA_KIND_REQUEST);
		return passed(skb, st);
	case KAFKA_KIND_ANSWER: {
		st->requests++;
		count(st->reason);
		struct kafka_event *e = ev_fill(skb, st, cookie);
		if (strp_full_len(skb) != st->len ||
		    (st->api_key == 0 ? kafka_answer_produce(skb, st, &w->x, strp_offset(skb)) : kafka_answer(skb, st, &w->x, strp_offset(skb))) < 0) {
			count(KAFKA_R_ANSWER_FAIL);
			ev_send(e, 0);
			return SK_DROP;
		}
		count(KAFKA_R_ANSWERED);
		ev_send(e, KAFKA_KIND_ANSWER);
		return bpf_sk_redirect_hash(skb, &kafka_socks, &cookie, 0);
	}
	case KAFKA_KIND_CLOSE: {
		st->requests++;
		st->mode = 1;
		count(st->reason);
		struct kafka_event *e = ev_fill(skb, st, cookie);
		if (strp_full_len(skb) != st->len || kafka_close_frame(skb, st, strp_offset(skb)) < 0) {
			count(KAFKA_R_ANSWER_FAIL);
			ev_send(e, 0);
			return SK_DROP;
		}
		count(KAFKA_R_CLOSED);
		ev_send(e, KAFKA_KIND_CLOSE);
		return bpf_sk_redirect_hash(skb, &kafka_socks, &cookie, 0);
	}
	case KAFKA_KIND_DROP:
		count(KAFKA_R_DROPPED);
		return SK_DROP;
	}
	return SK_DROP;
}

SEC("sockops")
int kafka_sockops(struct bpf_sock_ops *skops)
{
	__u64 cookie = bpf_get_socket_cookie(skops);
	if (skops->op == BPF_SOCK_OPS_STATE_CB) {
		if (skops->args[1] == BPF_TCP_CLOSE)
			bpf_map_delete_elem(&kafka_sock_state, &cookie);
		return 1;
	}
	if (skops->op != BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB)
		return 1;
	struct kafka_port_key k = { .port = skops->local_port };
	if (skops->family == AF_INET) {
		k.family = 4;
		__u32 la = skops->local_ip4;
		__builtin_memcpy(k.addr, &la, 4);
	} else if (skops->family == AF_INET6) {
		__u32 la[4] = { skops->local_ip6[0], skops->local_ip6[1], skops->local_ip6[2], skops->local_ip6[3] };
		if (v4mapped(la)) {
			k.family = 4;
			__builtin_memcpy(k.addr, &la[3], 4);
		} else {
			k.family = 6;
			__builtin_memcpy(k.addr, la, 16);
		}
	} else {
		return 1;
	}
	if (!bpf_map_lookup_elem(&kafka_ports, &k)) {
		__builtin_memset(k.addr, 0, sizeof(k.addr));
		if (!bpf_map_lookup_elem(&kafka_ports, &k))
			return 1;
	}
	if (bpf_map_update_elem(&kafka_sock_state, &cookie, &kafka_sockw_zero, BPF_ANY) < 0)
		return 1; /* not enforced: counted by the absence of KAFKA_R_SOCKETS */
	/* The strparser holds a frame whole and refuses one longer than
	 * sk_rcvbuf; a new connection's buffer (tcp_rmem[1], 128 KiB by
	 * default) has not been grown by autotuning yet, so a large first
	 * frame stalled undecided. Give the socket room for FrameMax
	 * (SO_RCVBUF doubles it; capped by net.core.rmem_max, and fixed from
	 * then on: no autotuning). Where the cap leaves it shorter, longer
	 * frames are refused as oversize by the parser, counted. */
	int rb = 0;
	if (bpf_getsockopt(skops, SOL_SOCKET, SO_RCVBUF, &rb, sizeof(rb)) < 0 || rb < KAFKA_FRAME_MAX) {
		rb = KAFKA_FRAME_MAX;
		bpf_setsockopt(skops, SOL_SOCKET, SO_RCVBUF, &rb, sizeof(rb));
	}
	bpf_sock_ops_cb_flags_set(skops, skops->bpf_sock_ops_cb_flags | BPF_SOCK_OPS_STATE_CB_FLAG);
	if (bpf_sock_hash_update(skops, &kafka_socks, &cookie, BPF_NOEXIST) == 0)
		count(KAFKA_R_SOCKETS);
	else
		bpf_map_delete_elem(&kafka_sock_state, &cookie);
	return 1;
}

/* ---- test ---- */

/* kafka_test_parse runs kafka_parse_frame over the packet with the list
 * in kafka_test_in, and stores the result in kafka_test_out. */
SEC("tc")
int kafka_test_parse(struct __sk_buff *skb)
{
	__u32 zero = 0;
	struct kafka_test_in *in = bpf_map_lookup_elem(&kafka_test_input, &zero);
	struct kafka_sockw *out = bpf_map_lookup_elem(&kafka_test_out, &zero);
	if (!in || !out)
		return 0;
	struct kafka_args a = { .list = in->list, .has_list = in->has_list, .off = in->off,
				.max = in->max ? in->max : KAFKA_FRAME_MAX };
	a.avail = skb->len > a.off ? skb->len - a.off : 0;
	kafka_parse_frame(skb, &a, &out->s, &out->x);
	return 0;
}

/* kafka_test_answer writes the answer (or closing frame) of the frame
 * kafka_test_parse decided last (its state in kafka_test_out) over the
 * packet. */
SEC("tc")
int kafka_test_answer(struct __sk_buff *skb)
{
	__u32 zero = 0;
	struct kafka_test_in *in = bpf_map_lookup_elem(&kafka_test_input, &zero);
	struct kafka_sockw *out = bpf_map_lookup_elem(&kafka_test_out, &zero);
	if (!in || !out)
		return 0;
	if (out->s.kind == KAFKA_KIND_CLOSE)
		return kafka_close_frame(skb, &out->s, in->off) < 0 ? 1 : 0;
	if (out->s.api_key == 0)
		return kafka_answer_produce(skb, &out->s, &out->x, in->off) < 0 ? 1 : 0;
	return kafka_answer(skb, &out->s, &out->x, in->off) < 0 ? 1 : 0;
}
