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
#include "../gate.h"
#include "../esock.h"

ESOCK_PORT_KEY_LAYOUT(kafka_port_key);

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
const volatile enum kafka_dir kafka_btf_dir = KAFKA_DIR_INGRESS;

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
	__uint(max_entries, 2 * KAFKA_R_MAX); /* the broker's side, then the client's */
	__type(key, __u32);
	__type(value, __u64);
} kafka_counters SEC(".maps");

/* ---- egress: the client's side ---- */

/* Client sockets whose writes kafka_msg decides (sk_msg verdict only). */
struct {
	__uint(type, BPF_MAP_TYPE_SOCKHASH);
	__uint(max_entries, 65536);
	__type(key, __u64); /* socket cookie */
	__type(value, __u64);
} kafka_esocks SEC(".maps");

/* A client socket's state, its current frame's scratch, and the buffer
 * its answer is written to (socket storage: kafka_msg runs in the
 * writer's sendmsg with the socket locked). */
struct kafka_esockw {
	struct kafka_esock e;
	struct kafka_sock s;
	struct kafka_scratch x;
	struct kafka_abuf ans;
};

struct {
	__uint(type, BPF_MAP_TYPE_SK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct kafka_esockw);
} kafka_esk SEC(".maps");

/* Which client sockets are enforced: local address (all zero: any of the
 * family) and remote port. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, struct kafka_port_key);
	__type(value, __u32);
} kafka_eports SEC(".maps");

/* The list of a client's requests: (slot, remote peer's identity, remote
 * port, local address), as kafka_binds is for the broker's side. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 2 * 16384);
	__type(key, struct kafka_bind_key);
	__type(value, struct kafka_bind);
} kafka_ebinds SEC(".maps");

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

/* ecount counts on the client's side (egress bindings). */
static __always_inline void ecount(__u32 reason)
{
	count(KAFKA_R_MAX + reason);
}

/* Reads a ctx's IPv6 address one field at a time (the verifier refuses
 * a load through a ctx pointer the compiler offset to share it between
 * branches). */
#define CTX_IP6(dst, src) do { \
	__u32 a0 = (src)[0]; barrier_var(a0); \
	__u32 a1 = (src)[1]; barrier_var(a1); \
	__u32 a2 = (src)[2]; barrier_var(a2); \
	__u32 a3 = (src)[3]; barrier_var(a3); \
	(dst)[0] = a0; (dst)[1] = a1; (dst)[2] = a2; (dst)[3] = a3; \
} while (0)

/* ---- reading the frame ---- */

/* The walk over one frame: [pos, end) is what is left of it. */
struct kafka_rd {
	__u32 pos;
	__u32 end;
	__u32 bad; /* a read past the frame or a bad encoding */
};

static __always_inline void rd_skip(struct kafka_rd *r, __u32 n)
{
	if (n > r->end - r->pos || r->pos > r->end) {
		r->bad = 1;
		return;
	}
	r->pos += n;
}

/* ---- tables ---- */


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

static const __u8 zeros[64];

/* The parser and answers over the strparser's skb (the broker's side). */
#define KCTX struct __sk_buff
#define KLOAD(c, off, dst, n) bpf_skb_load_bytes(c, off, dst, n)
#define KWCTX struct __sk_buff
#define KSTORE(c, off, src, n) bpf_skb_store_bytes(c, off, src, n, 0)
#define KFN(name) name
#include "frame.h"
#undef KCTX
#undef KLOAD
#undef KWCTX
#undef KSTORE
#undef KFN

/*
 * msg_load copies n (1..256) bytes at off of the message a client is
 * sending into dst: bpf_msg_pull_data makes [off, off + n) one piece
 * (copying only when the bytes span pieces).
 */
static __always_inline long msg_load(struct sk_msg_md *msg, __u32 off, void *dst, __u32 n)
{
	if (n == 0 || n > 256 || off > KAFKA_FRAME_MAX || off + n > msg->size)
		return -1;
	if (bpf_msg_pull_data(msg, off, off + n, 0) < 0)
		return -1;
	void *d = msg->data;
	return bpf_probe_read_kernel(dst, n, d);
}

/* abuf_store writes n (1..256) bytes of an answer at pos of the buffer. */
static __always_inline long abuf_store(struct kafka_abuf *a, __u32 pos, const void *src, __u32 n)
{
	if (!a || pos >= KAFKA_ANS_MAX || n == 0 || n > 256)
		return -1;
	return bpf_probe_read_kernel(&a->b[pos & (KAFKA_ANS_MAX - 1)], n, src);
}

/* The same parser and answers over the message a client writes (sk_msg,
 * its egress): the answer is written to a buffer, then into the message. */
#define KCTX struct sk_msg_md
#define KLOAD(c, off, dst, n) msg_load(c, off, dst, n)
#define KWCTX struct kafka_abuf
#define KSTORE(c, off, src, n) abuf_store(c, off, src, n)
#define KFN(name) name##_msg
#include "frame.h"
#undef KCTX
#undef KLOAD
#undef KWCTX
#undef KSTORE
#undef KFN

/*
 * answer_len is the length of the answer the kernel can give in the
 * request's terms to the frame the parser refused (res, with the names
 * it recorded): the Metadata response naming every topic of a refused
 * Metadata request, or the Produce response of a refused Produce request
 * naming one topic (acks not 0). 0: none (the closing frame).
 */
__noinline __u32 answer_len(struct kafka_sock *res, struct kafka_names *nm)
{
	if (!res || !nm)
		return 0;
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
		return n;
	}
	if (res->api_key == 0 && nm->count == 1 && nm->acks != 0 && nm->nparts > 0)
		return produce_answer_len(v, nm->nlen[0], nm->nparts);
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
	__u32 n = answer_len(res, &x->names);
	if (n == 0 || n > res->len)
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

/*
 * bind_lookup finds the list of a connection's requests in binds (the
 * active slot's): by local address (family fam: 4, or 6 whose v4-mapped
 * addresses are 4), port, and the remote peer's identity (kafka_peers,
 * longest prefix); the peer's identity's, else any peer's; the exact
 * address's, else any address of the family's.
 */
static __always_inline int bind_lookup(void *binds, __u32 fam, const __u32 *la, const __u32 *ra, __u16 port, __u32 *list)
{
	__u32 zero = 0;
	struct kafka_active *act = bpf_map_lookup_elem(&kafka_slot, &zero);
	if (!act)
		return 0;
	struct kafka_bind_key k = { .slot = act->slot & 1, .port = port };
	struct kafka_peer_key pk = {};
	if (fam == 4) {
		k.family = 4;
		__builtin_memcpy(k.addr, &la[0], 4);
		pk.family = 4;
		__builtin_memcpy(pk.addr, &ra[0], 4);
		pk.prefixlen = 32 + 32;
	} else if (v4mapped(la)) {
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
	__u32 *id = bpf_map_lookup_elem(&kafka_peers, &pk);
	k.identity = id ? *id : 0;
	struct kafka_bind *b = bpf_map_lookup_elem(binds, &k);
	if (!b && k.identity) {
		k.identity = 0;
		b = bpf_map_lookup_elem(binds, &k);
	}
	if (!b) {
		__builtin_memset(k.addr, 0, sizeof(k.addr));
		k.identity = id ? *id : 0;
		b = bpf_map_lookup_elem(binds, &k);
		if (!b && k.identity) {
			k.identity = 0;
			b = bpf_map_lookup_elem(binds, &k);
		}
	}
	if (!b)
		return 0;
	*list = b->list;
	return 1;
}

/* The binding of a request from the skb's peer to its local address. */
static __always_inline int find_bind(struct __sk_buff *skb, __u32 *list)
{
	__u32 la[4] = {}, ra[4] = {};
	__u32 fam = skb->family;
	barrier_var(fam);
	__u32 lp = skb->local_port;
	barrier_var(lp);
	if (fam == AF_INET) {
		__u32 l = skb->local_ip4;
		barrier_var(l);
		__u32 r = skb->remote_ip4;
		barrier_var(r);
		la[0] = l;
		ra[0] = r;
		return bind_lookup(&kafka_binds, 4, la, ra, lp, list);
	}
	CTX_IP6(la, skb->local_ip6);
	CTX_IP6(ra, skb->remote_ip6);
	return bind_lookup(&kafka_binds, 6, la, ra, lp, list);
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


/* ev_head reserves an event and fills what the parser found (st). */
static __always_inline struct kafka_event *ev_head(struct kafka_sock *st, __u64 cookie, __u32 dir)
{
	struct kafka_event *e = bpf_ringbuf_reserve(&kafka_events, sizeof(*e), 0);
	if (!e) {
		count(dir == KAFKA_DIR_EGRESS ? KAFKA_R_MAX + KAFKA_R_EVLOST : KAFKA_R_EVLOST);
		return NULL;
	}
	__builtin_memset(e, 0, sizeof(*e));
	e->generation = st->generation;
	e->cookie = cookie;
	e->rule = st->rule;
	e->list = st->list;
	e->correlation = st->correlation;
	e->api_key = st->api_key;
	e->api_version = st->api_version;
	e->reason = st->reason;
	e->dir = dir;
	return e;
}

/*
 * ev_fill reserves the event of the frame the verdict has (st: what the
 * parser found) in the ring buffer and fills it, before an answer
 * overwrites the frame (the client ID and topic are read from it); NULL
 * (counted) when the ring buffer is full. ev_send submits it.
 */
static __always_inline struct kafka_event *ev_fill(struct __sk_buff *skb, struct kafka_sock *st, __u64 cookie)
{
	struct kafka_event *e = ev_head(st, cookie, KAFKA_DIR_INGRESS);
	if (!e)
		return NULL;
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
		    (st->api_key == 0 ? kafka_answer_produce(skb, st, &w->x, strp_offset(skb), st->len) : kafka_answer(skb, st, &w->x, strp_offset(skb), st->len)) < 0) {
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
		if (strp_full_len(skb) != st->len || kafka_close_frame(skb, st, strp_offset(skb), st->len) < 0) {
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

/* ---- egress: the client's writes (sk_msg) ---- */

/*
 * esock_connect runs at TCP_CONNECT_CB (connect, or the first sendmsg of
 * TCP Fast Open, before the SYN is built): a client socket of an
 * enforced remote port gets its state now, marked connecting, so that
 * kafka_gate knows it is enforced before it is in kafka_esocks. A socket
 * of a port no longer enforced loses any state a previous connect left.
 */
static __always_inline void esock_connect(struct bpf_sock_ops *skops, __u64 cookie)
{
	struct kafka_esockw *w = esock_storage(skops, &kafka_eports, &kafka_esk);
	if (!w)
		return; /* not enforced: counted by the absence of KAFKA_R_SOCKETS */
	__builtin_memset(&w->e, 0, sizeof(w->e));
	__builtin_memset(&w->s, 0, sizeof(w->s));
	w->e.cookie = cookie;
	w->e.flags = KAFKA_ES_CONNECTING;
}

/*
 * esock_add runs at ACTIVE_ESTABLISHED: an enforced client socket is put
 * into kafka_esocks (its writes then run kafka_msg), with the sequence
 * number of its first data byte, from which kafka_gate counts.
 */
static __always_inline void esock_add(struct bpf_sock_ops *skops, __u64 cookie)
{
	struct kafka_esockw *w = esock_storage(skops, &kafka_eports, &kafka_esk);
	if (!w)
		return;
	if (!(w->e.flags & KAFKA_ES_CONNECTING)) {
		/* no state from connect: start from nothing */
		__builtin_memset(&w->e, 0, sizeof(w->e));
		__builtin_memset(&w->s, 0, sizeof(w->s));
	}
	w->e.cookie = cookie;
	/* SYN data kafka_gate did not see (no state at connect) left
	 * undecided: nothing more of the connection is passed. */
	if (esock_established(skops, &w->e.wbase, &w->e.flags, KAFKA_ES_CONNECTING, KAFKA_ES_GATED)) {
		w->s.mode = 1;
		ecount(KAFKA_R_FASTOPEN);
	}
	if (bpf_sock_hash_update(skops, &kafka_esocks, &cookie, BPF_NOEXIST) == 0)
		ecount(KAFKA_R_SOCKETS);
}

/* epass passes the frame's n bytes (the verdict's apply bytes; the
 * kernel runs kafka_msg again for what the message holds after them),
 * counts them for kafka_gate, and records the client's rcv_nxt. */
static __always_inline int epass(struct sk_msg_md *msg, struct kafka_esockw *w, __u32 n)
{
	bpf_msg_apply_bytes(msg, n);
	return esock_pass(msg, &w->e.wpassed, &w->s.wseq, &w->s.passed, n);
}

/* in_order reports whether an answer written now cannot overtake the
 * broker's answer to a frame passed before: nothing was passed, or the
 * broker has sent since the last frame passed and the client has read
 * all of it. */
static __always_inline int in_order(struct sk_msg_md *msg, struct kafka_sock *st)
{
	return esock_answered(msg, st->passed, st->wseq);
}

/* msg_splice replaces the message's first n bytes by m bytes (their
 * content the caller's to write) and makes [0, m) one piece. */
static __always_inline int msg_splice(struct sk_msg_md *msg, __u32 n, __u32 m)
{
	if (n > m) {
		if (bpf_msg_pop_data(msg, m, n - m, 0) < 0)
			return -1;
	} else if (n < m) {
		if (bpf_msg_push_data(msg, n, m - n, 0) < 0)
			return -1;
	}
	return bpf_msg_pull_data(msg, 0, m, 0) < 0 ? -1 : 0;
}

struct ecopy {
	struct sk_msg_md *msg;
	struct kafka_abuf *a;
	__u32 n;
	int err;
};

/* ecopy_cb copies the i-th 64 bytes of the answer into the message. */
static long ecopy_cb(__u32 i, void *ctx)
{
	struct ecopy *c = ctx;
	__u32 at = i * 64;
	if (at >= c->n)
		return 1;
	if (at >= KAFKA_ANS_MAX) {
		c->err = 1;
		return 1;
	}
	__u8 *d = (void *)(long)c->msg->data, *end = (void *)(long)c->msg->data_end;
	__u8 *p = d + (at & (KAFKA_ANS_MAX - 1));
	__u8 *src = &c->a->b[at & (KAFKA_ANS_MAX - 1)];
	if (at + 64 <= c->n) {
		if ((void *)(p + 64) > (void *)end) {
			c->err = 1;
			return 1;
		}
		__builtin_memcpy(p, src, 64);
		return 0;
	}
	for (__u32 j = 0; j < 64; j++) {
		if (at + j >= c->n)
			break;
		if ((void *)(p + j + 1) > (void *)end) {
			c->err = 1;
			return 1;
		}
		p[j] = src[j];
	}
	return 1;
}

/* answer_out puts the n bytes of the answer in place of the message's
 * first len bytes. */
static __always_inline int answer_out(struct sk_msg_md *msg, struct kafka_abuf *a, __u32 len, __u32 n)
{
	if (n == 0 || n > KAFKA_ANS_MAX || msg_splice(msg, len, n) < 0)
		return -1;
	struct ecopy c = { .msg = msg, .a = a, .n = n };
	bpf_loop(KAFKA_ANS_MAX / 64, ecopy_cb, &c, 0);
	return c.err ? -1 : 0;
}

/* msg_tuple reads the client's address and port and the broker's (each
 * field read on its own: the verifier refuses a load through a ctx
 * pointer the compiler offset to share it between branches). */
static __always_inline __u32 msg_tuple(struct sk_msg_md *msg, __u32 *la, __u32 *ra, __u16 *lport, __u16 *rport)
{
	__u32 fam = msg->family;
	barrier_var(fam);
	__u32 lp = msg->local_port;
	barrier_var(lp);
	__u32 rp = msg->remote_port;
	barrier_var(rp);
	*lport = lp;
	*rport = remote_port(rp);
	if (fam == AF_INET) {
		__u32 l = msg->local_ip4;
		barrier_var(l);
		__u32 r = msg->remote_ip4;
		barrier_var(r);
		la[0] = l;
		ra[0] = r;
		return 4;
	}
	CTX_IP6(la, msg->local_ip6);
	CTX_IP6(ra, msg->remote_ip6);
	return 6;
}

/* eev_fill reserves and fills the event of the client's frame (st), as
 * ev_fill does on the broker's side; the frame is at the message's start. */
static __always_inline struct kafka_event *eev_fill(struct sk_msg_md *msg, struct kafka_sock *st, __u64 cookie)
{
	struct kafka_event *e = ev_head(st, cookie, KAFKA_DIR_EGRESS);
	if (!e)
		return NULL;
	__u32 la[4] = {}, ra[4] = {};
	__u16 lp = 0, rp = 0;
	e->family = msg_tuple(msg, la, ra, &lp, &rp);
	e->local_port = lp;
	e->remote_port = rp;
	__builtin_memcpy(e->local, la, 16);
	__builtin_memcpy(e->remote, ra, 16);
	__u32 n = st->client_len;
	e->client_full = n;
	e->client_len = 0;
	if (n > KAFKA_EV_CLIENT)
		n = KAFKA_EV_CLIENT;
	if (n > 0 && msg_load(msg, 14, e->client, ((n - 1) & (KAFKA_EV_CLIENT - 1)) + 1) == 0)
		e->client_len = n;
	n = st->topic_len;
	e->topic_full = n;
	e->topic_len = 0;
	if (n > KAFKA_EV_TOPIC)
		n = KAFKA_EV_TOPIC;
	if (n > 0 && msg_load(msg, st->topic_off, e->topic, ((n - 1) & (KAFKA_EV_TOPIC - 1)) + 1) == 0)
		e->topic_len = n;
	return e;
}

/*
 * kafka_msg decides what a client socket of kafka_esocks writes, frame by
 * frame, with the broker's side's parser (frame.h): each run sees the
 * bytes not yet decided, from where the next frame starts. A frame that
 * is not whole is corked (bpf_msg_cork_bytes: the kernel holds the bytes
 * and runs the program again, on all of them, once the frame's length
 * has been written); a decided frame is passed alone
 * (bpf_msg_apply_bytes), and the kernel runs the program again for what
 * follows it. A refused frame never leaves: it is replaced by the answer
 * (Metadata or Produce response with TOPIC_AUTHORIZATION_FAILED) and the
 * answer redirected to the client socket's own receive queue; or, where
 * no answer can be given, the whole message is replaced by the closing
 * frame (a response under another correlation ID), and every later
 * write fails (EACCES).
 */
SEC("sk_msg")
int kafka_msg(struct sk_msg_md *msg)
{
	struct kafka_esockw *w = esock_msg_state(msg, &kafka_esk);
	if (!w)
		return SK_DROP; /* no state: refused, never passed */
	struct kafka_sock *st = &w->s;
	__u32 size = msg->size;
	if (size == 0)
		return SK_PASS;
	if (!st->mode && esock_unparsed(msg, w->e.wbase, w->e.wpassed)) {
		st->mode = 1;
		ecount(KAFKA_R_UNPARSED_WRITE);
	}
	if (st->mode) {
		ecount(KAFKA_R_DROPPED);
		return SK_DROP; /* the write fails with EACCES */
	}
	__u32 la[4] = {}, ra[4] = {};
	__u16 lp = 0, rp = 0;
	__u32 fam = msg_tuple(msg, la, ra, &lp, &rp);
	__u32 list = 0;
	__u32 has = bind_lookup(&kafka_ebinds, fam, la, ra, rp, &list);
	struct kafka_args a = { .off = 0, .avail = size, .list = list, .has_list = has, .max = KAFKA_EFRAME_MAX };
	kafka_decide_frame_msg(msg, &a, st, &w->x);
	__u64 cookie = w->e.cookie;
	switch (st->kind) {
	case KAFKA_KIND_NEED_MORE: {
		/* Run again, on every byte so far, once the frame is whole
		 * (its size field read: at most KAFKA_EFRAME_MAX, else it was
		 * refused). */
		__u32 need = size + 1, sz = 0;
		if (size >= 4 && msg_load(msg, 0, &sz, 4) == 0) {
			__u32 flen = 4 + bpf_ntohl(sz);
			if (flen > size && flen <= KAFKA_EFRAME_MAX)
				need = flen;
		}
		bpf_msg_cork_bytes(msg, need);
		return SK_DROP; /* not applied while corked; applied if the kernel cannot cork */
	}
	case KAFKA_KIND_PASS:
		ecount(KAFKA_R_PASSED);
		return epass(msg, w, st->len);
	case KAFKA_KIND_REQUEST:
		st->requests++;
		ecount(st->reason);
		if (st->reason == KAFKA_R_AUDIT || st->evall)
			ev_send(eev_fill(msg, st, cookie), KAFKA_KIND_REQUEST);
		return epass(msg, w, st->len);
	}
	/* Refused. The event is filled before the answer replaces the frame. */
	st->requests++;
	ecount(st->reason);
	struct kafka_event *e = eev_fill(msg, st, cookie);
	__u32 n = answer_len(st, &w->x.names);
	if (n > 0 && n <= KAFKA_ANS_MAX && in_order(msg, st)) {
		int r = st->api_key == 0 ? kafka_answer_produce_msg(&w->ans, st, &w->x, 0, n) :
					   kafka_answer_msg(&w->ans, st, &w->x, 0, n);
		if (r == 0 && answer_out(msg, &w->ans, st->len, n) == 0) {
			bpf_msg_apply_bytes(msg, n);
			if (bpf_msg_redirect_hash(msg, &kafka_esocks, &cookie, BPF_F_INGRESS) == SK_PASS) {
				st->kind = KAFKA_KIND_ANSWER;
				ecount(KAFKA_R_ANSWERED);
				ev_send(e, KAFKA_KIND_ANSWER);
				return SK_PASS;
			}
		}
	}
	/* The closing frame, in place of the whole message. */
	st->mode = 1;
	st->kind = KAFKA_KIND_CLOSE;
	__u32 alen = st->len < 8 ? 4 : 8;
	bpf_msg_apply_bytes(msg, 0);
	if (kafka_close_frame_msg(&w->ans, st, 0, alen) == 0 && answer_out(msg, &w->ans, msg->size, alen) == 0 &&
	    bpf_msg_redirect_hash(msg, &kafka_esocks, &cookie, BPF_F_INGRESS) == SK_PASS) {
		ecount(KAFKA_R_CLOSED);
		ev_send(e, KAFKA_KIND_CLOSE);
		return SK_PASS;
	}
	ecount(KAFKA_R_ANSWER_FAIL);
	ev_send(e, 0);
	return SK_DROP;
}

/* ---- egress: the gate on the wire (cgroup_skb/egress) ---- */

/*
 * kafka_gate sees every IP packet the sockets of the cgroup send: a TCP
 * segment of a client socket with Kafka egress state passes only if its
 * payload lies within the bytes kafka_msg decided (bpf/gate.h, shared
 * with bpf/l7's l7_gate). Any other is dropped and the connection
 * refused: counted once, an event, and every later write fails.
 */
SEC("cgroup_skb/egress")
int kafka_gate(struct __sk_buff *skb)
{
	struct bpf_sock *sk = NULL;
	struct kafka_esockw *w = esock_gate_state(skb, &kafka_esk, &sk);
	if (!w)
		return 1;
	struct kafka_esock *es = &w->e;
	int v = gate_segment(skb, es->flags & KAFKA_ES_CONNECTING, es->wbase + es->wpassed);
	if (v == GATE_PASS)
		return 1;
	__u32 reason = v == GATE_CONNECTING ? KAFKA_R_FASTOPEN : KAFKA_R_UNDECIDED;
	if (!(es->flags & KAFKA_ES_GATED)) {
		es->flags |= KAFKA_ES_GATED;
		w->s.mode = 1;
		ecount(reason);
		struct kafka_sock g = {};
		g.reason = reason;
		struct kafka_event *e = ev_head(&g, es->cookie, KAFKA_DIR_EGRESS);
		if (e) {
			e->local_port = sk->src_port;
			e->remote_port = remote_port(sk->dst_port);
			__u32 l[4] = {}, r[4] = {};
			if (sk->family == AF_INET) {
				e->family = 4;
				l[0] = sk->src_ip4;
				r[0] = sk->dst_ip4;
			} else {
				e->family = 6;
				CTX_IP6(l, sk->src_ip6);
				CTX_IP6(r, sk->dst_ip6);
			}
			__builtin_memcpy(e->local, l, 16);
			__builtin_memcpy(e->remote, r, 16);
			ev_send(e, 0);
		}
	}
	return 0;
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
	if (skops->op == BPF_SOCK_OPS_TCP_CONNECT_CB) {
		esock_connect(skops, cookie);
		return 1;
	}
	if (skops->op == BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB) {
		esock_add(skops, cookie);
		return 1;
	}
	if (skops->op != BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB)
		return 1;
	if (!port_enforced(skops, &kafka_ports, skops->local_port))
		return 1;
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
		return kafka_close_frame(skb, &out->s, in->off, out->s.len) < 0 ? 1 : 0;
	if (out->s.api_key == 0)
		return kafka_answer_produce(skb, &out->s, &out->x, in->off, out->s.len) < 0 ? 1 : 0;
	return kafka_answer(skb, &out->s, &out->x, in->off, out->s.len) < 0 ? 1 : 0;
}
