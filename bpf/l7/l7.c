//go:build ignore

// SPDX-License-Identifier: (GPL-2.0-only OR Apache-2.0)
/* Copyright 2026 The Palisade Authors. */

/*
 * HTTP/1.x requests decided in the kernel, on the server side of a
 * connection (ingress of the workload that serves) and on the client side
 * (egress of the workload that writes them). See docs/l7.md.
 *
 * l7_sockops puts each established server socket whose local address and
 * port have an entry in l7_ports into the SOCKHASH l7_socks; the socket's
 * receive path then runs the stream parser l7_parser, which frames the
 * byte stream into messages (a request head, body bytes, chunk framing),
 * and the stream verdict l7_verdict, which passes each message to the
 * server or, for a refused request, rewrites it into a 403 answer and
 * redirects it to the same socket's egress: the client reads 403 and the
 * server never reads the request. After a refusal every later byte of the
 * connection is dropped (the answer says Connection: close).
 *
 * On the client side of a connection (egress of the workload that
 * writes requests), l7_sockops puts each established client socket whose
 * local address and remote port have an entry in l7_eports into the
 * SOCKHASH l7_esocks, whose sk_msg program l7_msg decides what the client
 * writes: it corks a head until it is whole, passes a decided head alone
 * (and a body without running again), and answers a refused request with
 * a 403 redirected to the client socket's own receive queue, so that the
 * server never sees it. Every refusal (and, when asked, every allowed
 * request) is sent as an event on the ring buffer l7_events.
 *
 * The parser decides a request head whole: it returns "need more" until
 * the blank line that ends the head has arrived (or the head is over
 * L7_HEAD_MAX, or it is not HTTP/1.x), and stores what it found in the
 * socket's storage for the verdict. The parse itself, l7_parse_msg, is a
 * global function that the test program l7_test_parse (tc, which has
 * BPF_PROG_TEST_RUN) calls too.
 */
#include <linux/types.h>
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_core_read.h>

#include "l7.h"
#include "../gate.h"
#include "../esock.h"

ESOCK_PORT_KEY_LAYOUT(l7_port_key);

char LICENSE[] SEC("license") = "GPL";

#define AF_INET 2
#define AF_INET6 10

#define FNV_OFFSET 0xcbf29ce484222325ULL
#define FNV_PRIME 0x100000001b3ULL

/* bpf2go -type needs the enums in BTF; these variables put them there. */
const volatile enum l7_mode l7_btf_mode = L7_MODE_HEAD;
const volatile enum l7_kind l7_btf_kind = L7_KIND_NEED_MORE;
const volatile enum l7_reason l7_btf_reason = L7_R_ALLOWED;
const volatile enum l7_dir l7_btf_dir = L7_DIR_INGRESS;
const volatile struct l7_event l7_btf_event = {};

/* ---- maps ---- */

struct {
	__uint(type, BPF_MAP_TYPE_SOCKHASH);
	__uint(max_entries, 65536);
	__type(key, __u64); /* socket cookie */
	__type(value, __u64);
} l7_socks SEC(".maps");


struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct l7_active);
} l7_slot SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, struct l7_config);
} l7_gens SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, struct l7_port_key);
	__type(value, __u32);
} l7_ports SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 2 * 16384);
	__type(key, struct l7_bind_key);
	__type(value, struct l7_bind);
} l7_binds SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, 65536);
	__type(key, struct l7_peer_key);
	__type(value, __u32);
} l7_peers SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 2 * L7_MAX_LISTS);
	__type(key, struct l7_list_key);
	__type(value, struct l7_list);
} l7_lists SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 2 * L7_MAX_DFAS);
	__type(key, __u32);
	__type(value, struct l7_classes);
} l7_class_rows SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 2 * L7_MAX_NEXT);
	__type(key, __u32);
	__type(value, __u32);
} l7_next SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 2 * L7_MAX_STATES);
	__type(key, __u32);
	__type(value, struct l7_mask);
} l7_accept SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 2 * L7_MAX_ALLOW_ROWS);
	__type(key, __u32);
	__type(value, struct l7_allow);
} l7_allows SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 2 * L7_MAX_HDR_ROWS);
	__type(key, __u32);
	__type(value, struct l7_mask);
} l7_hdrreqs SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 2 * L7_MAX_HDR_ROWS);
	__type(key, struct l7_hdr_key);
	__type(value, __u32);
} l7_hdrs SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 2 * L7_R_MAX);
	__type(key, __u32);
	__type(value, __u64);
} l7_counters SEC(".maps");

/* Egress: the client sockets whose writes l7_msg decides, the local
 * addresses and remote ports that put them there, and the bindings
 * (remote identity, remote port, local address). */
struct {
	__uint(type, BPF_MAP_TYPE_SOCKHASH);
	__uint(max_entries, 65536);
	__type(key, __u64); /* socket cookie */
	__type(value, __u64);
} l7_esocks SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, struct l7_port_key);
	__type(value, __u32);
} l7_eports SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 2 * 16384);
	__type(key, struct l7_bind_key);
	__type(value, struct l7_bind);
} l7_ebinds SEC(".maps");

/* Verdict events, and per slot whether allowed requests get one too. */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 20);
} l7_events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, __u32);
} l7_evcfg SEC(".maps");

/* BPF_PROG_TEST_RUN of l7_test_parse. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct l7_test_in);
} l7_test_input SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct l7_sock);
} l7_test_out SEC(".maps");

static __always_inline void count_dir(__u32 dir, __u32 reason)
{
	__u32 k = dir * L7_R_MAX + (reason < L7_R_MAX ? reason : 0);
	__u64 *c = bpf_map_lookup_elem(&l7_counters, &k);
	if (c)
		*c += 1;
}

static __always_inline void count(__u32 reason)
{
	count_dir(L7_DIR_INGRESS, reason);
}

/* ---- the head parser ---- */

enum phase {
	P_METHOD = 0,
	P_TARGET,
	P_VERSION,
	P_VERSION_LF,
	P_NAME_START,
	P_NAME,
	P_VALUE_OWS,
	P_VALUE,
	P_LF,
	P_END_LF,
	P_DONE,
};

enum kw {
	KW_HOST = 1,
	KW_CL = 2,
	KW_TE = 4,
	KW_UPGRADE = 8,
};

#define NOT_FOUND 0xffffffffu

/* The parse of one message, on the caller's stack. */
struct l7_parse {
	/* tables (has_list: the binding's list exists in the slot) */
	__u64 seed;
	__u32 slot;
	__u32 list_id;
	struct l7_dfa_ref path;
	struct l7_dfa_ref host;
	/* progress */
	__u32 pos;
	__u8 has_list;
	__u8 phase;
	__u8 result;   /* 0 go on, 1 done, else reason + 100 */
	/* request line */
	__u8 mlen;
	__u64 mword;   /* first 8 bytes of the method */
	__u32 tlen;
	__u32 pstate;
	__u32 vlen;
	__u8 query;    /* the target's query has begun */
	__u8 segdots;  /* dots of the path segment so far; 3: not dots only */
	__u8 pct;      /* after '%' (1), "%2" (2), "%5" (3) */
	/* header field */
	__u8 kw;       /* keywords the name may still be */
	__u64 vword;
	__u32 nlen;
	__u32 vcount;  /* non-OWS bytes of the value */
	__u64 nhash;
	__u64 vhash;
	__u64 vhash_last; /* after the value's last non-OWS byte */
	__u32 hstate;
	__u32 hstate_last;
	__u8 ows;      /* OWS after value bytes */
	__u8 cur;      /* the keyword of the current field */
	__u8 te_ok;
	/* the head */
	__u8 hosts;
	__u8 cls;
	__u8 tes;
	__u8 upgrade;
	__u8 valid;    /* a scan in progress: resume at pos */
	__u32 hstate_final;
	__u64 clen;
	__u64 hdrs;    /* header requirements satisfied */
	/* for events: the method, target and Host value (cut off) */
	__u32 hcount;  /* bytes of the Host value after leading OWS */
	__u32 hlen;    /* ... up to its last non-OWS byte */
	__u8 evmethod[L7_EV_METHOD];
	__u8 evpath[L7_EV_PATH];
	__u8 evhost[L7_EV_HOST];
	__u8 buf[L7_CHUNK];
};

static __always_inline int tchar(__u32 c)
{
	if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
		return 1;
	switch (c) {
	case '!': case '#': case '$': case '%': case '&': case '\'': case '*':
	case '+': case '-': case '.': case '^': case '_': case '`': case '|': case '~':
		return 1;
	}
	return 0;
}

static __always_inline __u32 lower(__u32 c)
{
	return (c >= 'A' && c <= 'Z') ? c + 32 : c;
}

static __always_inline __u64 fnv(__u64 h, __u32 c)
{
	return (h ^ c) * FNV_PRIME;
}

/* dfa_step: the next state of a DFA (states are relative to ref). */
static __always_inline __u32 dfa_step(const struct l7_dfa_ref *ref, __u32 slot, __u32 state, __u32 c)
{
	if (state == 0)
		return 0;
	__u32 k = slot * L7_MAX_DFAS + ref->classes;
	struct l7_classes *cl = bpf_map_lookup_elem(&l7_class_rows, &k);
	if (!cl)
		return 0;
	__u32 cls = cl->c[c & 0xff];
	__u32 i = slot * L7_MAX_NEXT + ref->next + state * ref->nclasses + cls;
	__u32 *n = bpf_map_lookup_elem(&l7_next, &i);
	return n ? *n : 0;
}

static const char kw_host[] = "host";
static const char kw_cl[] = "content-length";
static const char kw_te[] = "transfer-encoding";
static const char kw_upgrade[] = "upgrade";
static const char te_chunked[] = "chunked";

#define FAIL(r) do { p->result = 100 + (r); return 1; } while (0)

/* The end of a header field: what it says about the request. */
static __always_inline int field_end(struct l7_parse *p)
{
	switch (p->cur) {
	case KW_HOST:
		if (++p->hosts > 1)
			FAIL(L7_R_FRAMING);
		p->hstate_final = p->vcount ? p->hstate_last : 1;
		break;
	case KW_CL:
		if (++p->cls > 1 || p->vcount == 0)
			FAIL(L7_R_FRAMING);
		break;
	case KW_UPGRADE:
		p->upgrade = 1;
		break;
	case KW_TE:
		if (++p->tes > 1 || !p->te_ok || p->vcount != 7)
			FAIL(L7_R_FRAMING);
		break;
	}
	if (!p->has_list)
		return 0;
	struct l7_hdr_key k = {
		.slot = p->slot,
		.list = p->list_id,
		.name = p->nhash,
	};
	__u32 *bit = bpf_map_lookup_elem(&l7_hdrs, &k);
	if (bit && *bit < 64)
		p->hdrs |= 1ULL << *bit;
	k.value = p->vcount ? p->vhash_last : (FNV_OFFSET ^ p->seed);
	k.has_value = 1;
	bit = bpf_map_lookup_elem(&l7_hdrs, &k);
	if (bit && *bit < 64)
		p->hdrs |= 1ULL << *bit;
	return 0;
}

/*
 * l7_head_byte advances the head parse by one byte; it returns non-zero
 * when the parse has ended (p->result says how).
 */
__noinline int l7_head_byte(struct l7_parse *p, __u32 c)
{
	if (!p)
		return 1;
	c &= 0xff;
	p->pos++;
	switch (p->phase) {
	case P_METHOD:
		if (c == ' ') {
			if (p->mlen == 0)
				FAIL(L7_R_MALFORMED);
			p->phase = P_TARGET;
			return 0;
		}
		if (p->pos == 1 && c == 0x16)
			FAIL(L7_R_TLS);
		if (!tchar(c) || p->mlen >= 32)
			FAIL(L7_R_MALFORMED);
		if (p->mlen < 8)
			p->mword |= (__u64)c << (8 * (p->mlen & 7));
		if (p->mlen < L7_EV_METHOD)
			p->evmethod[p->mlen & (L7_EV_METHOD - 1)] = c;
		p->mlen++;
		return 0;
	case P_TARGET:
		if (c == ' ') {
			if (p->tlen == 0)
				FAIL(L7_R_MALFORMED);
			if (!p->query && (p->segdots == 1 || p->segdots == 2))
				FAIL(L7_R_TARGET);
			p->phase = P_VERSION;
			return 0;
		}
		if (c <= 0x20 || c == 0x7f)
			FAIL(L7_R_MALFORMED);
		/* origin-form, or "*" (OPTIONS, the HTTP/2 preface) */
		if (p->tlen == 0 && c != '/' && c != '*')
			FAIL(L7_R_MALFORMED);
		if (p->tlen < L7_EV_PATH)
			p->evpath[p->tlen & (L7_EV_PATH - 1)] = c;
		p->tlen++;
		/*
		 * The path is matched as sent, and servers normalize it before
		 * routing: a dot segment, an encoded dot, slash or backslash, or
		 * a backslash could make a pattern admit what the server serves
		 * from elsewhere ("/public/../admin"). Such a path is refused.
		 */
		if (!p->query) {
			if (c == '?' || c == '/') {
				if (p->segdots == 1 || p->segdots == 2)
					FAIL(L7_R_TARGET);
				p->segdots = 0;
				p->query = c == '?';
			} else if (c == '\\') {
				FAIL(L7_R_TARGET);
			} else if (c == '.' && p->segdots < 3) {
				p->segdots++;
			} else {
				p->segdots = 3;
			}
			if (c == '%') {
				p->pct = 1;
			} else if (p->pct == 1) {
				p->pct = c == '2' ? 2 : c == '5' ? 3 : 0;
			} else if (p->pct == 2) {
				if (c == 'e' || c == 'E' || c == 'f' || c == 'F')
					FAIL(L7_R_TARGET);
				p->pct = 0;
			} else if (p->pct == 3) {
				if (c == 'c' || c == 'C')
					FAIL(L7_R_TARGET);
				p->pct = 0;
			}
		}
		if (p->has_list)
			p->pstate = c >= 0x80 ? 0 : dfa_step(&p->path, p->slot, p->pstate, c);
		return 0;
	case P_VERSION:
		if (c == '\r') {
			if (p->vlen != 8)
				FAIL(L7_R_MALFORMED);
			p->phase = P_VERSION_LF;
			return 0;
		}
		if (p->vlen >= 8)
			FAIL(L7_R_MALFORMED);
		p->vword |= (__u64)c << (8 * (p->vlen & 7));
		p->vlen++;
		return 0;
	case P_VERSION_LF:
		if (c != '\n')
			FAIL(L7_R_MALFORMED);
		/* "HTTP/1.1", "HTTP/1.0", "HTTP/2.0" little-endian */
		if (p->vword == 0x312e312f50545448ULL || p->vword == 0x302e312f50545448ULL) {
			p->phase = P_NAME_START;
			return 0;
		}
		if (p->vword == 0x302e322f50545448ULL && p->mword == 0x495250 /* PRI */)
			FAIL(L7_R_HTTP2);
		if ((p->vword & 0xffffffffffULL) == 0x2f50545448ULL /* HTTP/ */)
			FAIL(L7_R_VERSION);
		FAIL(L7_R_MALFORMED);
	case P_NAME_START:
		if (c == '\r') {
			p->phase = P_END_LF;
			return 0;
		}
		if (!tchar(c))
			FAIL(L7_R_MALFORMED); /* obs-fold and whitespace before a name too */
		p->phase = P_NAME;
		p->nlen = 0;
		p->kw = KW_HOST | KW_CL | KW_TE | KW_UPGRADE;
		p->nhash = FNV_OFFSET ^ p->seed;
		/* fall through */
	case P_NAME: {
		if (c == ':') {
			__u32 kw = 0;
			if ((p->kw & KW_HOST) && p->nlen == 4)
				kw = KW_HOST;
			else if ((p->kw & KW_CL) && p->nlen == 14)
				kw = KW_CL;
			else if ((p->kw & KW_TE) && p->nlen == 17)
				kw = KW_TE;
			else if ((p->kw & KW_UPGRADE) && p->nlen == 7)
				kw = KW_UPGRADE;
			p->cur = kw;
			p->phase = P_VALUE_OWS;
			p->vhash = FNV_OFFSET ^ p->seed;
			p->vhash_last = p->vhash;
			p->hstate = 1;
			p->hstate_last = 1;
			p->vcount = 0;
			p->ows = 0;
			p->te_ok = 1;
			return 0;
		}
		if (!tchar(c))
			FAIL(L7_R_MALFORMED);
		__u32 l = lower(c);
		__u32 n = p->nlen;
		if (n >= 4 || kw_host[n & 3] != l)
			p->kw &= ~KW_HOST;
		if (n >= 14 || kw_cl[n < 14 ? n : 0] != l)
			p->kw &= ~KW_CL;
		if (n >= 17 || kw_te[n < 17 ? n : 0] != l)
			p->kw &= ~KW_TE;
		if (n >= 7 || kw_upgrade[n < 7 ? n : 0] != l)
			p->kw &= ~KW_UPGRADE;
		p->nhash = fnv(p->nhash, l);
		p->nlen = n + 1;
		return 0;
	}
	case P_VALUE_OWS:
		if (c == ' ' || c == '\t')
			return 0;
		p->phase = P_VALUE;
		/* fall through */
	case P_VALUE:
		if (c == '\r') {
			p->phase = P_LF;
			return field_end(p);
		}
		if ((c < 0x20 && c != '\t') || c == 0x7f)
			FAIL(L7_R_MALFORMED);
		p->vhash = fnv(p->vhash, c);
		if (c == ' ' || c == '\t') {
			p->ows = 1;
		} else {
			p->vhash_last = p->vhash;
			if (p->cur == KW_CL) {
				if (c < '0' || c > '9' || p->ows || p->clen > (1ULL << 40))
					FAIL(L7_R_FRAMING);
				p->clen = p->clen * 10 + (c - '0');
			}
			if (p->cur == KW_TE) {
				__u32 i = p->vcount;
				if (p->ows || i >= 7 || te_chunked[i < 7 ? i : 0] != lower(c))
					p->te_ok = 0;
			}
			p->ows = 0;
			p->vcount++;
		}
		if (p->cur == KW_HOST && p->hosts == 0) {
			if (p->hcount < L7_EV_HOST)
				p->evhost[p->hcount & (L7_EV_HOST - 1)] = c;
			p->hcount++;
			if (c != ' ' && c != '\t')
				p->hlen = p->hcount;
		}
		if (p->cur == KW_HOST && p->has_list) {
			p->hstate = dfa_step(&p->host, p->slot, p->hstate, c);
			if (c != ' ' && c != '\t')
				p->hstate_last = p->hstate;
		}
		return 0;
	case P_LF:
		if (c != '\n')
			FAIL(L7_R_MALFORMED);
		p->phase = P_NAME_START;
		return 0;
	case P_END_LF:
		if (c != '\n')
			FAIL(L7_R_MALFORMED);
		p->phase = P_DONE;
		p->result = 1;
		return 1;
	}
	FAIL(L7_R_MALFORMED);
}

/* l7_head_chunk feeds p->buf[0..n) to l7_head_byte; non-zero when the
 * parse has ended. */
__noinline int l7_head_chunk(struct l7_parse *p, __u32 n)
{
	if (!p)
		return 1;
	for (__u32 i = 0; i < L7_CHUNK; i++) {
		if (i >= n)
			return 0;
		if (l7_head_byte(p, p->buf[i]))
			return 1;
	}
	return 0;
}

static __always_inline void mask_or_into(struct l7_mask *a, const struct l7_mask *b, const struct l7_mask *c)
{
	for (int i = 0; i < L7_MASK_WORDS; i++)
		a->w[i] &= b->w[i] | c->w[i];
}

static __always_inline int mask_meets(const struct l7_mask *a, const struct l7_mask *b)
{
	__u64 r = 0;
	for (int i = 0; i < L7_MASK_WORDS; i++)
		r |= a->w[i] & b->w[i];
	return r != 0;
}

static __always_inline __u32 method_index(__u64 w, __u32 len)
{
	switch (len) {
	case 3:
		if (w == 0x544547) return 1;       /* GET */
		if (w == 0x545550) return 4;       /* PUT */
		break;
	case 4:
		if (w == 0x44414548) return 2;     /* HEAD */
		if (w == 0x54534f50) return 3;     /* POST */
		break;
	case 5:
		if (w == 0x4543415254ULL) return 8; /* TRACE */
		if (w == 0x4843544150ULL) return 9; /* PATCH */
		break;
	case 6:
		if (w == 0x4554454c4544ULL) return 5; /* DELETE */
		break;
	case 7:
		if (w == 0x5443454e4e4f43ULL) return 6; /* CONNECT */
		if (w == 0x534e4f4954504fULL) return 7; /* OPTIONS */
		break;
	}
	return 0;
}

/*
 * l7_decide decides a parsed head from the list's tables, as
 * engine.HTTPList.Decide: res->reason is L7_R_ALLOWED, L7_R_DENIED or
 * L7_R_AUDIT, res->rule the deciding rule.
 */
__noinline int l7_decide(struct l7_parse *p, struct l7_sock *res)
{
	if (!p || !res)
		return 0;
	struct l7_list_key lk = { .slot = p->slot, .list = p->list_id };
	struct l7_list *l = bpf_map_lookup_elem(&l7_lists, &lk);
	if (!l) {
		res->reason = L7_R_NO_TABLES;
		return 0;
	}
	struct l7_mask m;
	__u32 mi = method_index(p->mword, p->mlen);
	if (mi >= L7_METHODS)
		mi = 0;
	__builtin_memcpy(&m, &l->methods[mi], sizeof(m));

	__u32 k = p->slot * L7_MAX_STATES + l->path.accept + p->pstate;
	struct l7_mask *acc = bpf_map_lookup_elem(&l7_accept, &k);
	if (!acc)
		return 0;
	mask_or_into(&m, acc, &l->path_any);

	__u32 hs = p->hosts ? p->hstate_final : 1;
	k = p->slot * L7_MAX_STATES + l->host.accept + hs;
	acc = bpf_map_lookup_elem(&l7_accept, &k);
	if (!acc)
		return 0;
	mask_or_into(&m, acc, &l->host_any);

	__u32 nh = l->nhdrreqs;
	for (__u32 h = 0; h < L7_MAX_HDRREQS; h++) {
		if (h >= nh)
			break;
		if (p->hdrs & (1ULL << h))
			continue;
		k = p->slot * L7_MAX_HDR_ROWS + l->hdrreqs + h;
		struct l7_mask *need = bpf_map_lookup_elem(&l7_hdrreqs, &k);
		if (!need)
			return 0;
		for (int i = 0; i < L7_MASK_WORDS; i++)
			m.w[i] &= ~need->w[i];
	}

	/* The enforcing allows, then (if they allow) every allow. */
	__u32 na = l->nallows, base = l->allows;
	__u32 enforced = 0, restricting = 0, seen = 0, full = 0;
	for (__u32 a = 0; a < L7_MAX_ALLOWS; a++) {
		if (a >= na)
			break;
		k = p->slot * L7_MAX_ALLOW_ROWS + base + a;
		struct l7_allow *al = bpf_map_lookup_elem(&l7_allows, &k);
		if (!al)
			return 0;
		__u32 ok = al->any || mask_meets(&m, &al->rules);
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
		res->reason = L7_R_DENIED;
		res->rule = restricting;
	} else if (!full) {
		res->reason = L7_R_AUDIT;
		res->rule = 0;
	} else {
		res->reason = L7_R_ALLOWED;
		res->rule = seen ? enforced : full;
	}
	return 0;
}

/* ---- chunked framing ---- */

enum cphase {
	C_CR = 0, C_LF, C_HEX, C_EXT, C_SIZE_LF, C_TR_START, C_TR_LINE, C_TR_LF, C_END_LF, C_DONE,
};

struct l7_chunkp {
	__u32 phase;
	__u32 pos;
	__u32 digits;
	__u32 result; /* 0 go on, 1 done, 2 bad */
	__u64 size;
	__u8 buf[L7_CHUNK];
};

__noinline int l7_chunk_byte(struct l7_chunkp *p, __u32 c)
{
	if (!p)
		return 1;
	c &= 0xff;
	p->pos++;
	switch (p->phase) {
	case C_CR:
		if (c != '\r')
			goto bad;
		p->phase = C_LF;
		return 0;
	case C_LF:
		if (c != '\n')
			goto bad;
		p->phase = C_HEX;
		return 0;
	case C_HEX: {
		__u32 d;
		if (c >= '0' && c <= '9')
			d = c - '0';
		else if (c >= 'a' && c <= 'f')
			d = c - 'a' + 10;
		else if (c >= 'A' && c <= 'F')
			d = c - 'A' + 10;
		else if (p->digits && (c == ';' || c == ' ' || c == '\t')) {
			p->phase = C_EXT;
			return 0;
		} else if (p->digits && c == '\r') {
			p->phase = C_SIZE_LF;
			return 0;
		} else
			goto bad;
		if (++p->digits > 15)
			goto bad;
		p->size = p->size * 16 + d;
		return 0;
	}
	case C_EXT:
		if (c == '\r') {
			p->phase = C_SIZE_LF;
			return 0;
		}
		if ((c < 0x20 && c != '\t') || c == 0x7f)
			goto bad;
		return 0;
	case C_SIZE_LF:
		if (c != '\n')
			goto bad;
		if (p->size) {
			p->result = 1;
			return 1;
		}
		p->phase = C_TR_START;
		return 0;
	case C_TR_START:
		if (c == '\r') {
			p->phase = C_END_LF;
			return 0;
		}
		if (!tchar(c))
			goto bad;
		p->phase = C_TR_LINE;
		return 0;
	case C_TR_LINE:
		if (c == '\r') {
			p->phase = C_TR_LF;
			return 0;
		}
		if ((c < 0x20 && c != '\t') || c == 0x7f)
			goto bad;
		return 0;
	case C_TR_LF:
		if (c != '\n')
			goto bad;
		p->phase = C_TR_START;
		return 0;
	case C_END_LF:
		if (c != '\n')
			goto bad;
		p->result = 1;
		return 1;
	}
bad:
	p->result = 2;
	return 1;
}

__noinline int l7_chunk_chunk(struct l7_chunkp *p, __u32 n)
{
	if (!p)
		return 1;
	for (__u32 i = 0; i < L7_CHUNK; i++) {
		if (i >= n)
			return 0;
		if (l7_chunk_byte(p, p->buf[i]))
			return 1;
	}
	return 0;
}

/* ---- one message ---- */

/* A refusal before a decision frames the first bytes only (the 403 fills
 * them); the rest of the connection is dropped. */
static __always_inline __u32 refusal_len(__u32 avail)
{
	return avail > 64 ? 64 : avail;
}

/* The bpf_loop context of a scan: L7_CHUNK bytes per iteration. */
struct scan {
	struct __sk_buff *skb;
	struct l7_parse *head;
	struct l7_chunkp *chunk;
	__u32 off;
	__u32 avail;
	__u32 start; /* bytes of the message already scanned */
};

static __always_inline __u32 scan_len(struct scan *sc, __u32 i)
{
	__u32 at = sc->start + i * L7_CHUNK;
	if (at >= sc->avail)
		return 0;
	__u32 n = sc->avail - at;
	return n > L7_CHUNK ? L7_CHUNK : n;
}

static long scan_head_cb(__u32 i, void *ctx)
{
	struct scan *sc = ctx;
	__u32 n = scan_len(sc, i);
	if (n == 0 || n > L7_CHUNK)
		return 1;
	struct l7_parse *p = sc->head;
	if (bpf_skb_load_bytes(sc->skb, sc->off + sc->start + i * L7_CHUNK, p->buf, n) < 0)
		return 1;
	return l7_head_chunk(p, n) ? 1 : 0;
}

static long scan_chunk_cb(__u32 i, void *ctx)
{
	struct scan *sc = ctx;
	__u32 n = scan_len(sc, i);
	if (n == 0 || n > L7_CHUNK)
		return 1;
	struct l7_chunkp *p = sc->chunk;
	if (bpf_skb_load_bytes(sc->skb, sc->off + sc->start + i * L7_CHUNK, p->buf, n) < 0)
		return 1;
	return l7_chunk_chunk(p, n) ? 1 : 0;
}

static __always_inline __u32 min_u64(__u64 a, __u32 b)
{
	return a < b ? (__u32)a : b;
}

/*
 * l7_parse_msg frames the message that starts at off in skb (avail bytes
 * there), given the socket's state st, and says in res what it is and
 * what the verdict does with it: res->len 0 asks for more bytes.
 * a->list (if a->has_list) names the list that decides requests.
 */
struct l7_args {
	__u32 off;
	__u32 avail;
	__u32 list;
	__u32 has_list;
	__u32 resume; /* p holds the scan of this message's first p->pos bytes if p->valid */
};

__noinline int l7_parse_chunk_line(struct __sk_buff *skb, struct l7_args *a, struct l7_sock *st, struct l7_sock *res);
__noinline int l7_parse_head(struct __sk_buff *skb, struct l7_args *a, struct l7_sock *res, struct l7_parse *p);

__noinline int l7_parse_msg(struct __sk_buff *skb, struct l7_args *a, struct l7_sock *st, struct l7_sock *res,
			    struct l7_parse *p)
{
	if (!skb || !a || !st || !res || !p)
		return 0;
	__u32 avail = a->avail;
	res->len = 0;
	res->kind = L7_KIND_NEED_MORE;
	res->reason = 0;
	res->rule = 0;
	res->next_mode = st->mode;
	res->next_remaining = 0;
	if (avail == 0)
		return 0;

	switch (st->mode) {
	case L7_MODE_REFUSED:
		res->len = avail;
		res->kind = L7_KIND_DROP;
		res->reason = L7_R_DROPPED;
		res->next_mode = L7_MODE_REFUSED;
		return 0;
	case L7_MODE_BODY:
	case L7_MODE_CHUNK_DATA: {
		__u32 n = min_u64(st->remaining, avail);
		res->len = n;
		res->kind = L7_KIND_BODY;
		res->next_remaining = st->remaining - n;
		if (res->next_remaining == 0)
			res->next_mode = st->mode == L7_MODE_BODY ? L7_MODE_HEAD : L7_MODE_CHUNK_SIZE;
		return 0;
	}
	case L7_MODE_CHUNK_SIZE:
		return l7_parse_chunk_line(skb, a, st, res);
	}
	return l7_parse_head(skb, a, res, p);
}

/* l7_chunk_end says what a chunk-size line scan found (avail bytes of
 * the message seen). */
__noinline int l7_chunk_end(struct l7_chunkp *cp, __u32 avail, struct l7_sock *res)
{
	if (!cp || !res)
		return 0;
	if (cp->result == 1) {
		res->len = cp->pos;
		res->kind = L7_KIND_BODY;
		if (cp->size) {
			res->next_mode = L7_MODE_CHUNK_DATA;
			res->next_remaining = cp->size;
		} else {
			res->next_mode = L7_MODE_HEAD;
		}
		return 0;
	}
	if (cp->result == 2 || avail >= L7_HEAD_MAX) {
		res->len = refusal_len(avail);
		res->kind = L7_KIND_REFUSE;
		res->reason = cp->result == 2 ? L7_R_FRAMING : L7_R_OVERSIZE;
		res->next_mode = L7_MODE_REFUSED;
	}
	return 0;
}

/* l7_parse_chunk_line frames a chunk-size line (and, after the last
 * chunk, the trailer section). */
__noinline int l7_parse_chunk_line(struct __sk_buff *skb, struct l7_args *a, struct l7_sock *st, struct l7_sock *res)
{
	if (!skb || !a || !st || !res)
		return 0;
	__u32 avail = a->avail;
	struct l7_chunkp cp = {};
	if (!st->crlf)
		cp.phase = C_HEX;
	struct scan sc = { .skb = skb, .off = a->off, .avail = avail, .chunk = &cp };
	bpf_loop(L7_HEAD_MAX / L7_CHUNK, scan_chunk_cb, &sc, 0);
	return l7_chunk_end(&cp, avail, res);
}

/* l7_head_begin starts the scan of a head: the active slot, its seed, and
 * the list's automata. Zero if the slot cannot be read. */
__noinline int l7_head_begin(struct l7_parse *pp, __u32 list, __u32 has_list)
{
	if (!pp)
		return 0;
	__builtin_memset(pp, 0, sizeof(*pp));
	__u32 zero = 0;
	struct l7_active *act = bpf_map_lookup_elem(&l7_slot, &zero);
	if (!act)
		return 0;
	pp->slot = act->slot & 1;
	__u32 slot = pp->slot;
	struct l7_config *cfg = bpf_map_lookup_elem(&l7_gens, &slot);
	if (!cfg)
		return 0;
	pp->seed = cfg->seed;
	pp->pstate = 1;
	pp->hstate_final = 1;
	if (has_list) {
		struct l7_list_key lk = { .slot = slot, .list = list };
		struct l7_list *l = bpf_map_lookup_elem(&l7_lists, &lk);
		if (l) {
			pp->has_list = 1;
			pp->list_id = list;
			pp->path = l->path;
			pp->host = l->host;
		}
	}
	return 1;
}

/* l7_head_end says what the scan of a head found (a->avail bytes of the
 * message seen), and decides a whole head. */
__noinline int l7_head_end(struct l7_args *a, struct l7_sock *res, struct l7_parse *pp)
{
	if (!a || !res || !pp)
		return 0;
	__u32 avail = a->avail, has_list = a->has_list;
	pp->valid = pp->result == 0 && avail < L7_HEAD_MAX;
	if (pp->result >= 100) {
		res->len = refusal_len(avail);
		res->kind = L7_KIND_REFUSE;
		res->reason = pp->result - 100;
		res->next_mode = L7_MODE_REFUSED;
		return 0;
	}
	if (pp->result != 1) {
		if (avail >= L7_HEAD_MAX) {
			res->len = refusal_len(avail);
			res->kind = L7_KIND_REFUSE;
			res->reason = L7_R_OVERSIZE;
			res->next_mode = L7_MODE_REFUSED;
		}
		return 0;
	}
	/* After an upgrade (WebSocket, h2c) or a CONNECT tunnel the stream is
	 * no longer HTTP/1.x; whether it switches depends on the server's
	 * answer, which the kernel does not see: refused, never passed. */
	if (pp->upgrade || (pp->mlen == 7 && pp->mword == 0x5443454e4e4f43ULL)) {
		res->len = refusal_len(avail);
		res->kind = L7_KIND_REFUSE;
		res->reason = L7_R_UPGRADE;
		res->next_mode = L7_MODE_REFUSED;
		return 0;
	}
	/* Content-Length with Transfer-Encoding, or Transfer-Encoding in
	 * HTTP/1.0 (which servers ignore, Go's among them: the chunked body
	 * would be read as requests): faulty framing (RFC 9112 6.1). */
	if ((pp->cls && pp->tes) || (pp->tes && pp->vword == 0x302e312f50545448ULL)) {
		res->len = refusal_len(avail);
		res->kind = L7_KIND_REFUSE;
		res->reason = L7_R_FRAMING;
		res->next_mode = L7_MODE_REFUSED;
		return 0;
	}
	res->len = pp->pos;
	res->kind = L7_KIND_REQUEST;
	if (pp->tes) {
		res->next_mode = L7_MODE_CHUNK_SIZE;
	} else if (pp->clen) {
		res->next_mode = L7_MODE_BODY;
		res->next_remaining = pp->clen;
	} else {
		res->next_mode = L7_MODE_HEAD;
	}
	if (!has_list) {
		res->reason = L7_R_PASSED;
		return 0;
	}
	if (!pp->has_list) {
		res->reason = L7_R_NO_TABLES;
		return 0;
	}
	l7_decide(pp, res);
	return 0;
}

/* l7_parse_head frames and decides a request head. */
__noinline int l7_parse_head(struct __sk_buff *skb, struct l7_args *a, struct l7_sock *res, struct l7_parse *pp)
{
	if (!skb || !a || !res || !pp)
		return 0;
	/*
	 * The strparser calls the parser again, with more bytes, until it
	 * frames the message: the scan resumes where the last call stopped
	 * (its state is the socket's), so a head that arrives a byte at a
	 * time costs one pass, not one per segment.
	 */
	if (!(a->resume && pp->valid && pp->pos <= a->avail)) {
		if (!l7_head_begin(pp, a->list, a->has_list))
			return 0;
	}
	struct scan sc = { .skb = skb, .off = a->off, .avail = a->avail, .head = pp, .start = pp->pos };
	bpf_loop(L7_HEAD_MAX / L7_CHUNK + 1, scan_head_cb, &sc, 0);
	return l7_head_end(a, res, pp);
}

/* ---- the socket programs ---- */

/* A socket's state: the framing state, and the head scan in progress. */
struct l7_sockw {
	struct l7_sock s;
	struct l7_parse p;
};

/* Per-socket state by socket cookie (sk_skb programs cannot use socket
 * storage): created by sockops when the socket enters l7_socks, deleted
 * by sockops when it closes. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, __u64);
	__type(value, struct l7_sockw);
} l7_sock_state SEC(".maps");

/* The test program's head scan. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct l7_parse);
} l7_test_scan SEC(".maps");

static const struct l7_sockw l7_sockw_zero;

/*
 * The stream parser and verdict see the strparser's skb from the start of
 * the segment it was cloned from: their message starts at the strparser's
 * offset, kept in skb->cb (struct sk_skb_cb), and the verdict's message
 * is full_len bytes long. Both are read through the kernel's sk_buff
 * (bpf_cast_to_kern_ctx), the field offsets relocated by CO-RE.
 */
struct strp_msg___l7 {
	int full_len;
	int offset;
} __attribute__((preserve_access_index));

struct _strp_msg___l7 {
	struct strp_msg___l7 strp;
	int accum_len;
} __attribute__((preserve_access_index));

struct sk_skb_cb___l7 {
	struct _strp_msg___l7 strp;
} __attribute__((preserve_access_index));

struct sk_buff___l7 {
	char cb[48];
} __attribute__((preserve_access_index));

extern void *bpf_cast_to_kern_ctx(void *obj) __ksym;

static __always_inline void strp_msg(struct __sk_buff *skb, __u32 *off, __u32 *full_len)
{
	struct sk_buff___l7 *k = bpf_cast_to_kern_ctx(skb);
	__u32 base = bpf_core_field_offset(struct sk_skb_cb___l7, strp) +
		     bpf_core_field_offset(struct _strp_msg___l7, strp);
	__u32 o_off = base + bpf_core_field_offset(struct strp_msg___l7, offset);
	__u32 o_len = base + bpf_core_field_offset(struct strp_msg___l7, full_len);
	if (o_off > 44 || o_len > 44) {
		*off = 0;
		*full_len = 0;
		return;
	}
	*off = *(int *)(k->cb + o_off);
	*full_len = *(int *)(k->cb + o_len);
}

/* A refusal whose message is shorter than this cannot carry a 403 (only
 * an HTTP/1.0 head without Host can be). */
#define L7_MIN_REFUSAL 36

struct tcp_sock___l7 {
	__u32 write_seq;
	__u32 snd_nxt;
	__u32 snd_una;
} __attribute__((preserve_access_index));

/* tcp_seqs reads the server socket's write_seq (bytes the server wrote)
 * and snd_una (bytes the client acknowledged). */
static __always_inline int tcp_seqs(struct __sk_buff *skb, __u32 *wseq, __u32 *una)
{
	struct bpf_sock *sk = skb->sk;
	if (!sk)
		return -1;
	struct tcp_sock___l7 *tp = (void *)bpf_skc_to_tcp_sock(sk);
	if (!tp)
		return -1;
	*wseq = tp->write_seq;
	*una = tp->snd_una;
	return 0;
}

/* The binding of a request from the skb's peer to its local address. */
static __always_inline int find_bind(struct __sk_buff *skb, __u32 *list)
{
	__u32 zero = 0;
	struct l7_active *act = bpf_map_lookup_elem(&l7_slot, &zero);
	if (!act)
		return 0;
	struct l7_bind_key k = { .slot = act->slot & 1, .port = skb->local_port };
	struct l7_peer_key pk = {};
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
	__u32 *id = bpf_map_lookup_elem(&l7_peers, &pk);
	k.identity = id ? *id : 0;
	struct l7_bind *b = bpf_map_lookup_elem(&l7_binds, &k);
	if (!b && k.identity) {
		k.identity = 0;
		b = bpf_map_lookup_elem(&l7_binds, &k);
	}
	if (!b) {
		/* any local address of the family */
		__builtin_memset(k.addr, 0, sizeof(k.addr));
		k.identity = id ? *id : 0;
		b = bpf_map_lookup_elem(&l7_binds, &k);
		if (!b && k.identity) {
			k.identity = 0;
			b = bpf_map_lookup_elem(&l7_binds, &k);
		}
	}
	if (!b)
		return 0;
	*list = b->list;
	return 1;
}

/* ---- events ---- */

#ifndef barrier_var
#define barrier_var(var) asm volatile("" : "+r"(var))
#endif

#define CTX_IP6(dst, src) do { \
	__u32 a0 = (src)[0]; barrier_var(a0); \
	__u32 a1 = (src)[1]; barrier_var(a1); \
	__u32 a2 = (src)[2]; barrier_var(a2); \
	__u32 a3 = (src)[3]; barrier_var(a3); \
	(dst)[0] = a0; (dst)[1] = a1; (dst)[2] = a2; (dst)[3] = a3; \
} while (0)

/* The connection of an event: local and remote address and port. */
struct l7_tuple {
	__u8 family;
	__u16 lport;
	__u16 rport;
	__u32 local[4];
	__u32 remote[4];
};

/*
 * emit sends the event of a message the parse p framed (res: its
 * outcome; status: what the client is given). Allowed requests get one
 * only if the slot's L7_EV_ALLOWED flag is set.
 */
static __always_inline void emit(__u32 dir, struct l7_parse *p, struct l7_sock *res, __u32 list, __u32 status,
				 __u64 cookie, struct l7_tuple *t, int allowed)
{
	__u32 slot = p->slot & 1;
	if (allowed) {
		__u32 *f = bpf_map_lookup_elem(&l7_evcfg, &slot);
		if (!f || !(*f & L7_EV_ALLOWED))
			return;
	}
	struct l7_event *e = bpf_ringbuf_reserve(&l7_events, sizeof(*e), 0);
	if (!e) {
		count_dir(dir, L7_R_EVLOST);
		return;
	}
	struct l7_config *cfg = bpf_map_lookup_elem(&l7_gens, &slot);
	e->generation = cfg ? cfg->generation : 0;
	e->cookie = cookie;
	e->rule = res->rule;
	e->list = list;
	e->status = status;
	e->dir = dir;
	e->reason = res->reason;
	e->family = t->family;
	e->method_len = p->mlen < L7_EV_METHOD ? p->mlen : L7_EV_METHOD;
	e->host_len = p->hlen < L7_EV_HOST ? p->hlen : L7_EV_HOST;
	e->path_len = p->tlen < L7_EV_PATH ? p->tlen : L7_EV_PATH;
	e->local_port = t->lport;
	e->remote_port = t->rport;
	e->target_len = p->tlen;
	__builtin_memcpy(e->local, t->local, 16);
	__builtin_memcpy(e->remote, t->remote, 16);
	__builtin_memcpy(e->method, p->evmethod, L7_EV_METHOD);
	__builtin_memcpy(e->path, p->evpath, L7_EV_PATH);
	__builtin_memcpy(e->host, p->evhost, L7_EV_HOST);
	bpf_ringbuf_submit(e, 0);
}

static __always_inline void skb_tuple(struct __sk_buff *skb, struct l7_tuple *t)
{
	/* Each field read on its own (the verifier refuses a load through
	 * a ctx pointer the compiler offset to share it between branches). */
	__u32 fam = skb->family;
	barrier_var(fam);
	__u32 lp = skb->local_port;
	barrier_var(lp);
	__u32 rp = skb->remote_port;
	barrier_var(rp);
	t->lport = lp;
	t->rport = remote_port(rp);
	if (fam == AF_INET) {
		__u32 l = skb->local_ip4;
		barrier_var(l);
		__u32 r = skb->remote_ip4;
		barrier_var(r);
		t->family = 4;
		t->local[0] = l;
		t->remote[0] = r;
		return;
	}
	t->family = 6;
	CTX_IP6(t->local, skb->local_ip6);
	CTX_IP6(t->remote, skb->remote_ip6);
}

SEC("sk_skb/stream_parser")
int l7_parser(struct __sk_buff *skb)
{
	__u64 cookie = bpf_get_socket_cookie(skb);
	struct l7_sockw *w = bpf_map_lookup_elem(&l7_sock_state, &cookie);
	if (!w)
		return -12; /* -ENOMEM: the strparser stops; the connection errors */
	struct l7_sock *st = &w->s;
	__u32 list = 0;
	__u32 has = find_bind(skb, &list);
	__u32 off = 0, full = 0;
	strp_msg(skb, &off, &full);
	struct l7_args a = { .off = off, .avail = skb->len > off ? skb->len - off : 0, .list = list, .has_list = has, .resume = 1 };
	/* st is both the state read and the result written: the result
	 * fields are not state (l7_parse_msg reads the state first). */
	l7_parse_msg(skb, &a, st, st, &w->p);
	return st->len;
}

/*
 * The 403 answer fills the refused message exactly (the kernel sends
 * full_len bytes from the message's offset): the reason phrase is padded
 * with spaces. Shorter messages drop Connection: close, then "Forbidden".
 */
#define R_STATUS "HTTP/1.1 403 Forbidden"
#define R_STATUS_SHORT "HTTP/1.1 403 "
#define R_TAIL "\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
#define R_TAIL_SHORT "\r\nContent-Length: 0\r\n\r\n"
#define SLEN(s) (sizeof(s) - 1)

static const char r_status[] = R_STATUS;
static const char r_tail[] = R_TAIL;
static const char r_tail_short[] = R_TAIL_SHORT;
static const char junk[L7_CHUNK] = "XXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX";
static const char spaces[L7_CHUNK] = "                                                                ";

struct pad {
	struct __sk_buff *skb;
	__u32 at;
	__u32 end;
	__u32 x; /* fill with 'X', else spaces */
	int err;
};

static long pad_cb(__u32 i, void *ctx)
{
	struct pad *p = ctx;
	__u32 at = p->at + i * L7_CHUNK;
	if (at >= p->end)
		return 1;
	__u32 n = p->end - at;
	if (n > L7_CHUNK)
		n = L7_CHUNK;
	if (n == 0)
		return 1;
	if (bpf_skb_store_bytes(p->skb, at, p->x ? junk : spaces, n, 0) < 0) {
		p->err = 1;
		return 1;
	}
	return 0;
}

/*
 * to_server gives the message to the server, redirected to the socket's
 * own receive queue rather than SK_PASS. For a strparser socket the
 * kernel's tcp_bpf_strp_read_sock (Linux 6.14 on; seen on 6.18) sets
 * copied_seq to what the strparser has read minus what that one read
 * passed: bytes passed by an earlier read that the server has not read
 * yet are counted read, then counted again when the server reads them.
 * copied_seq then runs ahead of rcv_nxt, tcp_data_ready does not wake
 * the strparser for a segment shorter than the excess, and the next
 * request waits for the client's next segment or FIN
 * (TestTrafficNotHeld). A redirected message is counted read once, when
 * the strparser reads it.
 *
 * SK_PASS is not safe even when the socket holds no message the server
 * has not read: any later strparser read (the client's next segment: a
 * body, a pipelined request, the start of the next one) before the
 * server reads the passed bytes counts them read, whatever that read's
 * verdict does, and the client decides when it sends. Tried on 6.18.44
 * (SK_PASS when psock->ingress_msg and the psock's backlog are empty,
 * else this redirect): TestTrafficNotHeld held 17 of 600, 8 of 17,992
 * and 6 of 40 requests. The price is the redirect's path: the kernel
 * queues every redirected skb on the target psock's backlog and delivers
 * it from its work queue (a kworker), never in the strparser's read
 * (sk_psock_skb_redirect); l7bench's b3 - b2 measures it.
 */
static __always_inline int to_server(struct __sk_buff *skb)
{
	__u64 cookie = bpf_get_socket_cookie(skb);
	int v = bpf_sk_redirect_hash(skb, &l7_socks, &cookie, BPF_F_INGRESS);
	if (v != SK_PASS)
		count(L7_R_REDIRECT_FAIL);
	return v;
}

/*
 * refuse answers a refused message. The answer is 403, put in the
 * message's place and redirected to the socket's egress, unless an
 * answer of the server to bytes passed before may still be due (the
 * client pipelines): the server has written nothing since, or the client
 * has not acknowledged all of it. Then a 403 could overtake that answer,
 * so the message is overwritten with a line no server takes for a
 * request ("XXX...X" CRLF) and passed: the server answers, in order, 400
 * Bad Request and closes. The same happens to a message too short for a
 * 403. Either way the refused request never reaches the server.
 */
static __always_inline int refuse(struct __sk_buff *skb, struct l7_sock *st, __u32 *status)
{
	__u32 off = 0, n = 0;
	*status = 0;
	strp_msg(skb, &off, &n);
	st->mode = L7_MODE_REFUSED;
	if (n < 2 || n > L7_HEAD_MAX + 2 * L7_CHUNK || off > 0xffff)
		goto fail;
	int inorder = n < L7_MIN_REFUSAL;
	if (st->passed) {
		__u32 wseq = 0, una = 0;
		if (tcp_seqs(skb, &wseq, &una) < 0 || wseq == st->wseq || una != wseq)
			inorder = 1;
	}
	struct pad p = { .skb = skb };
	int err;
	if (inorder) {
		p.at = off;
		p.end = off + n - 2;
		p.x = 1;
		if (bpf_skb_store_bytes(skb, off + n - 2, "\r\n", 2, 0) < 0)
			goto fail;
		bpf_loop((L7_HEAD_MAX + 2 * L7_CHUNK) / L7_CHUNK + 1, pad_cb, &p, 0);
		if (p.err)
			goto fail;
		count(L7_R_INORDER);
		*status = 400;
		return to_server(skb);
	}
	__u32 head, tail;
	if (n >= SLEN(R_STATUS) + SLEN(R_TAIL)) {
		head = SLEN(R_STATUS);
		tail = SLEN(R_TAIL);
		err = bpf_skb_store_bytes(skb, off + n - tail, r_tail, SLEN(R_TAIL), 0);
	} else {
		head = n >= SLEN(R_STATUS) + SLEN(R_TAIL_SHORT) ? SLEN(R_STATUS) : SLEN(R_STATUS_SHORT);
		tail = SLEN(R_TAIL_SHORT);
		err = bpf_skb_store_bytes(skb, off + n - tail, r_tail_short, SLEN(R_TAIL_SHORT), 0);
	}
	if (err < 0)
		goto fail;
	if (head == SLEN(R_STATUS))
		err = bpf_skb_store_bytes(skb, off, r_status, SLEN(R_STATUS), 0);
	else
		err = bpf_skb_store_bytes(skb, off, r_status, SLEN(R_STATUS_SHORT), 0);
	if (err < 0)
		goto fail;
	p.at = off + head;
	p.end = off + n - tail;
	bpf_loop((L7_HEAD_MAX + 2 * L7_CHUNK) / L7_CHUNK + 1, pad_cb, &p, 0);
	if (p.err)
		goto fail;
	__u64 cookie = bpf_get_socket_cookie(skb);
	int v = bpf_sk_redirect_hash(skb, &l7_socks, &cookie, 0);
	if (v == SK_PASS)
		*status = 403;
	return v;
fail:
	count(L7_R_REDIRECT_FAIL);
	return SK_DROP;
}

/* passed records that bytes went to the server, and its write_seq then. */
static __always_inline int passed(struct __sk_buff *skb, struct l7_sock *st)
{
	__u32 wseq = 0, una = 0;
	if (tcp_seqs(skb, &wseq, &una) == 0) {
		st->wseq = wseq;
		st->passed = 1;
	}
	return to_server(skb);
}

SEC("sk_skb/stream_verdict")
int l7_verdict(struct __sk_buff *skb)
{
	__u64 cookie = bpf_get_socket_cookie(skb);
	struct l7_sockw *w = bpf_map_lookup_elem(&l7_sock_state, &cookie);
	if (!w)
		return SK_DROP;
	struct l7_sock *st = &w->s;
	st->mode = st->next_mode;
	st->remaining = st->next_remaining;
	st->crlf = st->mode == L7_MODE_CHUNK_SIZE && st->kind == L7_KIND_BODY;
	struct l7_tuple t = {};
	__u32 status = 0, list = 0;
	int v;
	switch (st->kind) {
	case L7_KIND_BODY:
		return passed(skb, st);
	case L7_KIND_DROP:
		count(L7_R_DROPPED);
		return SK_DROP;
	case L7_KIND_REFUSE:
		count(st->reason);
		v = refuse(skb, st, &status);
		break;
	case L7_KIND_REQUEST:
		st->requests++;
		count(st->reason);
		if (st->reason == L7_R_ALLOWED || st->reason == L7_R_AUDIT || st->reason == L7_R_PASSED) {
			if (st->reason != L7_R_PASSED) {
				skb_tuple(skb, &t);
				emit(L7_DIR_INGRESS, &w->p, st, w->p.list_id, 0, cookie, &t, 1);
			}
			return passed(skb, st);
		}
		v = refuse(skb, st, &status);
		break;
	default:
		return SK_DROP;
	}
	skb_tuple(skb, &t);
	list = w->p.has_list ? w->p.list_id : 0;
	emit(L7_DIR_INGRESS, &w->p, st, list, status, cookie, &t, 0);
	return v;
}


/* ---- egress: the client's writes (sk_msg) ---- */

/*
 * A client socket's state (struct l7_esock) and the scan of its current
 * head, in socket storage: sk_msg runs in the writer's sendmsg with the
 * socket locked, so the scan needs no other scratch.
 */
struct l7_esockw {
	struct l7_esock e;
	struct l7_parse p;
};

struct {
	__uint(type, BPF_MAP_TYPE_SK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct l7_esockw);
} l7_esk SEC(".maps");

/* The bpf_loop context of a scan of a message being sent. */
struct mscan {
	struct sk_msg_md *msg;
	struct l7_parse *head;
	struct l7_chunkp *chunk;
	__u32 avail;
};

/* msg_load copies n (<= L7_CHUNK) bytes at off of the message into buf.
 * The message is a scatterlist: bpf_msg_pull_data makes [off, off + n)
 * one piece (it copies only when the bytes span pieces). */
static __always_inline int msg_load(struct sk_msg_md *msg, __u32 off, __u8 *buf, __u32 n)
{
	if (n == 0 || n > L7_CHUNK)
		return -1;
	if (bpf_msg_pull_data(msg, off, off + n, 0) < 0)
		return -1;
	__u8 *d = msg->data, *e = msg->data_end;
	if ((void *)(d + L7_CHUNK) <= (void *)e) {
		__builtin_memcpy(buf, d, L7_CHUNK);
		return 0;
	}
	for (__u32 i = 0; i < L7_CHUNK; i++) {
		if (i >= n)
			break;
		if ((void *)(d + i + 1) > (void *)e)
			return -1;
		buf[i] = d[i];
	}
	return 0;
}

static long mscan_head_cb(__u32 i, void *ctx)
{
	struct mscan *sc = ctx;
	struct l7_parse *p = sc->head;
	__u32 at = i * L7_CHUNK;
	if (at >= sc->avail)
		return 1;
	__u32 n = sc->avail - at;
	if (n > L7_CHUNK)
		n = L7_CHUNK;
	if (msg_load(sc->msg, at, p->buf, n) < 0) {
		p->result = 100 + L7_R_MALFORMED; /* cannot happen: fail closed */
		return 1;
	}
	return l7_head_chunk(p, n) ? 1 : 0;
}

static long mscan_chunk_cb(__u32 i, void *ctx)
{
	struct mscan *sc = ctx;
	struct l7_chunkp *p = sc->chunk;
	__u32 at = i * L7_CHUNK;
	if (at >= sc->avail)
		return 1;
	__u32 n = sc->avail - at;
	if (n > L7_CHUNK)
		n = L7_CHUNK;
	if (msg_load(sc->msg, at, p->buf, n) < 0) {
		p->result = 2;
		return 1;
	}
	return l7_chunk_chunk(p, n) ? 1 : 0;
}

/* The binding of a request from the socket's local address to its peer:
 * (remote identity, remote port, local address), falling back to any
 * peer, then to any local address, as find_bind does for ingress. */
static __always_inline int find_ebind(struct sk_msg_md *msg, struct l7_tuple *t, __u32 *list)
{
	__u32 zero = 0;
	struct l7_active *act = bpf_map_lookup_elem(&l7_slot, &zero);
	if (!act)
		return 0;
	struct l7_bind_key k = { .slot = act->slot & 1, .port = t->rport };
	struct l7_peer_key pk = {};
	if (t->family == 4) {
		k.family = 4;
		__builtin_memcpy(k.addr, &t->local[0], 4);
		pk.family = 4;
		__builtin_memcpy(pk.addr, &t->remote[0], 4);
		pk.prefixlen = 32 + 32;
	} else if (v4mapped(t->local)) {
		k.family = 4;
		__builtin_memcpy(k.addr, &t->local[3], 4);
		pk.family = 4;
		__builtin_memcpy(pk.addr, &t->remote[3], 4);
		pk.prefixlen = 32 + 32;
	} else {
		k.family = 6;
		__builtin_memcpy(k.addr, t->local, 16);
		pk.family = 6;
		__builtin_memcpy(pk.addr, t->remote, 16);
		pk.prefixlen = 32 + 128;
	}
	__u32 *id = bpf_map_lookup_elem(&l7_peers, &pk);
	k.identity = id ? *id : 0;
	struct l7_bind *b = bpf_map_lookup_elem(&l7_ebinds, &k);
	if (!b && k.identity) {
		k.identity = 0;
		b = bpf_map_lookup_elem(&l7_ebinds, &k);
	}
	if (!b) {
		__builtin_memset(k.addr, 0, sizeof(k.addr));
		k.identity = id ? *id : 0;
		b = bpf_map_lookup_elem(&l7_ebinds, &k);
		if (!b && k.identity) {
			k.identity = 0;
			b = bpf_map_lookup_elem(&l7_ebinds, &k);
		}
	}
	if (!b)
		return 0;
	*list = b->list;
	return 1;
}

static __always_inline void msg_tuple(struct sk_msg_md *msg, struct l7_tuple *t)
{
	/* Each field read on its own (the verifier refuses a load through
	 * a ctx pointer the compiler offset to share it between branches). */
	__u32 fam = msg->family;
	barrier_var(fam);
	__u32 lp = msg->local_port;
	barrier_var(lp);
	__u32 rp = msg->remote_port;
	barrier_var(rp);
	t->lport = lp;
	t->rport = remote_port(rp);
	if (fam == AF_INET) {
		__u32 l = msg->local_ip4;
		barrier_var(l);
		__u32 r = msg->remote_ip4;
		barrier_var(r);
		t->family = 4;
		t->local[0] = l;
		t->remote[0] = r;
		return;
	}
	t->family = 6;
	CTX_IP6(t->local, msg->local_ip6);
	CTX_IP6(t->remote, msg->remote_ip6);
}

/* epass passes n bytes of the message (the verdict's apply bytes, at
 * most the message: TCP queues exactly these after the run), counts
 * them, and records the client's rcv_nxt. */
static __always_inline int epass(struct sk_msg_md *msg, struct l7_esock *e, __u32 n)
{
	return esock_pass(msg, &e->wpassed, &e->rseq, &e->s.passed, n);
}

#define R_FULL R_STATUS R_TAIL
#define R_JUNK "XXXXXXXXXXXXXXXX\r\n"
static const char r_full[] = R_FULL;
static const char r_junk[] = R_JUNK;

/* msg_resize makes the message exactly n bytes long and [0, n) one
 * piece; its content is then the caller's to write. */
static __always_inline int msg_resize(struct sk_msg_md *msg, __u32 n)
{
	__u32 size = msg->size;
	if (size > n) {
		if (bpf_msg_pop_data(msg, n, size - n, 0) < 0)
			return -1;
	} else if (size < n) {
		if (bpf_msg_push_data(msg, 0, n - size, 0) < 0)
			return -1;
	}
	if (msg->size != n)
		return -1;
	return bpf_msg_pull_data(msg, 0, n, 0) < 0 ? -1 : 0;
}

/*
 * erefuse answers a refused request on the client's side. The message
 * (the refused head and whatever the same write carried after it) is
 * replaced by a 403 answer and redirected to the client socket's own
 * receive queue: the client reads 403 and the server never sees the
 * request. If an answer to a request passed before may still be due
 * (the server has sent nothing since, or the client has not read all of
 * it: the client pipelines), a 403 could overtake it: the message is
 * replaced by a line no server takes for a request and passed, so that
 * the server answers its pending requests, then 400, and closes.
 */
static __always_inline int erefuse(struct sk_msg_md *msg, struct l7_esock *e, __u32 *status)
{
	struct l7_sock *st = &e->s;
	st->mode = L7_MODE_REFUSED;
	*status = 0;
	int inorder = !esock_answered(msg, st->passed, e->rseq);
	if (inorder) {
		if (msg_resize(msg, SLEN(R_JUNK)) < 0)
			goto fail;
		__u8 *d = msg->data, *end = msg->data_end;
		if ((void *)(d + SLEN(R_JUNK)) > (void *)end)
			goto fail;
		__builtin_memcpy(d, r_junk, SLEN(R_JUNK));
		count_dir(L7_DIR_EGRESS, L7_R_INORDER);
		*status = 400;
		e->wpassed += SLEN(R_JUNK);
		return SK_PASS;
	}
	if (msg_resize(msg, SLEN(R_FULL)) < 0)
		goto fail;
	__u8 *d = msg->data, *end = msg->data_end;
	if ((void *)(d + SLEN(R_FULL)) > (void *)end)
		goto fail;
	__builtin_memcpy(d, r_full, SLEN(R_FULL));
	if (bpf_msg_redirect_hash(msg, &l7_esocks, &e->cookie, BPF_F_INGRESS) != SK_PASS)
		goto fail;
	*status = 403;
	return SK_PASS;
fail:
	count_dir(L7_DIR_EGRESS, L7_R_REDIRECT_FAIL);
	return SK_DROP;
}

/*
 * l7_msg decides what a client socket of l7_esocks writes. Each run sees
 * the bytes not yet decided, from where the next message starts: a head
 * that is not whole is corked (bpf_msg_cork_bytes: the kernel holds the
 * bytes and runs the program again, on all of them, after the next
 * write); a decided head is passed alone (bpf_msg_apply_bytes), and the
 * kernel runs the program again for what follows it; a body is passed
 * without running the program again until its last byte.
 */
SEC("sk_msg")
int l7_msg(struct sk_msg_md *msg)
{
	struct l7_esockw *w = esock_msg_state(msg, &l7_esk);
	if (!w)
		return SK_DROP; /* no state: refused, never passed */
	struct l7_esock *e = &w->e;
	struct l7_sock *st = &e->s;
	__u32 size = msg->size;
	if (size == 0)
		return SK_PASS;
	if (st->mode != L7_MODE_REFUSED && esock_unparsed(msg, e->wbase, e->wpassed)) {
		st->mode = L7_MODE_REFUSED;
		count_dir(L7_DIR_EGRESS, L7_R_UNPARSED);
	}
	switch (st->mode) {
	case L7_MODE_REFUSED:
		count_dir(L7_DIR_EGRESS, L7_R_DROPPED);
		return SK_DROP; /* the write fails with EACCES */
	case L7_MODE_BODY:
	case L7_MODE_CHUNK_DATA: {
		/*
		 * At most this message: apply bytes beyond it would pass the
		 * client's next writes without a run, so wpassed would count
		 * bytes before TCP has them (and l7_gate's bound with it).
		 */
		__u64 r = st->remaining;
		__u32 n = r > size ? size : (__u32)r;
		bpf_msg_apply_bytes(msg, n);
		st->remaining = r - n;
		if (st->remaining == 0) {
			st->crlf = st->mode == L7_MODE_CHUNK_DATA;
			st->mode = st->mode == L7_MODE_BODY ? L7_MODE_HEAD : L7_MODE_CHUNK_SIZE;
		}
		return epass(msg, e, n);
	}
	case L7_MODE_CHUNK_SIZE: {
		struct l7_chunkp cp = {};
		if (!st->crlf)
			cp.phase = C_HEX;
		struct mscan sc = { .msg = msg, .chunk = &cp, .avail = size };
		bpf_loop(L7_HEAD_MAX / L7_CHUNK, mscan_chunk_cb, &sc, 0);
		st->kind = L7_KIND_NEED_MORE;
		l7_chunk_end(&cp, size, st);
		if (st->kind == L7_KIND_BODY) {
			bpf_msg_apply_bytes(msg, st->len);
			st->mode = st->next_mode;
			st->remaining = st->next_remaining;
			st->crlf = 0;
			return epass(msg, e, st->len);
		}
		if (st->kind == L7_KIND_REFUSE)
			break;
		bpf_msg_cork_bytes(msg, size + 1);
		return SK_DROP; /* not applied while corked; applied if the kernel cannot cork */
	}
	case L7_MODE_HEAD:
		break;
	default:
		return SK_DROP;
	}

	struct l7_tuple t = {};
	msg_tuple(msg, &t);
	struct l7_parse *p = &w->p;
	__u32 status = 0;
	if (st->mode == L7_MODE_HEAD) {
		__u32 list = 0;
		__u32 has = find_ebind(msg, &t, &list);
		if (!l7_head_begin(p, list, has))
			return SK_DROP;
		struct mscan sc = { .msg = msg, .head = p, .avail = size };
		bpf_loop(L7_HEAD_MAX / L7_CHUNK + 1, mscan_head_cb, &sc, 0);
		struct l7_args a = { .avail = size, .list = list, .has_list = has };
		st->len = 0;
		st->kind = L7_KIND_NEED_MORE;
		st->reason = 0;
		st->rule = 0;
		st->next_mode = L7_MODE_HEAD;
		st->next_remaining = 0;
		l7_head_end(&a, st, p);
		if (st->kind == L7_KIND_NEED_MORE) {
			/* Run again, on every byte so far, after the next write. */
			bpf_msg_cork_bytes(msg, size + 1);
			return SK_DROP; /* not applied while corked; applied if the kernel cannot cork */
		}
		if (st->kind == L7_KIND_REQUEST) {
			st->requests++;
			count_dir(L7_DIR_EGRESS, st->reason);
			if (st->reason == L7_R_ALLOWED || st->reason == L7_R_AUDIT || st->reason == L7_R_PASSED) {
				if (st->reason != L7_R_PASSED)
					emit(L7_DIR_EGRESS, p, st, list, 0, e->cookie, &t, 1);
				bpf_msg_apply_bytes(msg, st->len);
				st->mode = st->next_mode;
				st->remaining = st->next_remaining;
				st->crlf = 0;
				return epass(msg, e, st->len);
			}
		} else {
			count_dir(L7_DIR_EGRESS, st->reason);
		}
	} else {
		count_dir(L7_DIR_EGRESS, st->reason); /* a chunk-size line refused */
	}
	int v = erefuse(msg, e, &status);
	emit(L7_DIR_EGRESS, p, st, p->has_list ? p->list_id : 0, status, e->cookie, &t, 0);
	return v;
}

/*
 * esock_connect runs at TCP_CONNECT_CB, in connect (or the first
 * sendmsg of TCP Fast Open) right before the SYN is built: a client
 * socket whose local address and remote port have an entry in l7_eports
 * gets its state now, marked connecting, so that l7_gate knows it is
 * enforced before it is in l7_esocks (a write can be queued before then:
 * it waits in TCP's own sendmsg, or rides in the SYN). A socket of a
 * port no longer enforced loses any state a previous connect left.
 */
static __always_inline void esock_connect(struct bpf_sock_ops *skops, __u64 cookie)
{
	struct l7_esockw *w = esock_storage(skops, &l7_eports, &l7_esk);
	if (!w)
		return; /* not enforced, or not any longer (esock_storage) */
	__builtin_memset(&w->e, 0, sizeof(w->e));
	w->e.cookie = cookie;
	w->e.flags = L7_ES_CONNECTING;
}

/* esock_add puts a client socket whose local address and remote port
 * have an entry in l7_eports into l7_esocks, with its state. */
static __always_inline void esock_add(struct bpf_sock_ops *skops, __u64 cookie)
{
	struct l7_esockw *w = esock_storage(skops, &l7_eports, &l7_esk);
	if (!w)
		return; /* not enforced, or not any longer (esock_storage) */
	if (!(w->e.flags & L7_ES_CONNECTING)) {
		/* No state from connect (the port became enforced since, or
		 * the programs were attached since): start from nothing. */
		__builtin_memset(&w->e, 0, sizeof(w->e));
	}
	w->e.cookie = cookie;
	if (esock_established(skops, &w->e.wbase, &w->e.flags, L7_ES_CONNECTING, L7_ES_GATED)) {
		w->e.s.mode = L7_MODE_REFUSED;
		count_dir(L7_DIR_EGRESS, L7_R_FASTOPEN);
	}
	if (bpf_sock_hash_update(skops, &l7_esocks, &cookie, BPF_NOEXIST) == 0)
		count_dir(L7_DIR_EGRESS, L7_R_SOCKETS);
}

SEC("sockops")
int l7_sockops(struct bpf_sock_ops *skops)
{
	__u64 cookie = bpf_get_socket_cookie(skops);
	if (skops->op == BPF_SOCK_OPS_STATE_CB) {
		if (skops->args[1] == BPF_TCP_CLOSE)
			bpf_map_delete_elem(&l7_sock_state, &cookie);
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
	if (!port_enforced(skops, &l7_ports, skops->local_port))
		return 1;
	if (bpf_map_update_elem(&l7_sock_state, &cookie, &l7_sockw_zero, BPF_ANY) < 0)
		return 1; /* not enforced: counted by the absence of L7_R_SOCKETS */
	bpf_sock_ops_cb_flags_set(skops, skops->bpf_sock_ops_cb_flags | BPF_SOCK_OPS_STATE_CB_FLAG);
	if (bpf_sock_hash_update(skops, &l7_socks, &cookie, BPF_NOEXIST) == 0)
		count(L7_R_SOCKETS);
	else
		bpf_map_delete_elem(&l7_sock_state, &cookie);
	return 1;
}

/* ---- egress: the gate on the wire (cgroup_skb/egress) ---- */

/* emit_gate sends the event of a segment l7_gate dropped. */
static __always_inline void emit_gate(struct bpf_sock *sk, struct l7_esock *e, __u32 reason)
{
	struct l7_event *ev = bpf_ringbuf_reserve(&l7_events, sizeof(*ev), 0);
	if (!ev) {
		count_dir(L7_DIR_EGRESS, L7_R_EVLOST);
		return;
	}
	__builtin_memset(ev, 0, sizeof(*ev));
	__u32 zero = 0;
	struct l7_active *act = bpf_map_lookup_elem(&l7_slot, &zero);
	if (act) {
		__u32 slot = act->slot & 1;
		struct l7_config *cfg = bpf_map_lookup_elem(&l7_gens, &slot);
		if (cfg)
			ev->generation = cfg->generation;
	}
	ev->cookie = e->cookie;
	ev->dir = L7_DIR_EGRESS;
	ev->reason = reason;
	ev->local_port = sk->src_port;
	ev->remote_port = remote_port(sk->dst_port);
	if (sk->family == AF_INET) {
		ev->family = 4;
		__u32 l = sk->src_ip4, r = sk->dst_ip4;
		__builtin_memcpy(ev->local, &l, 4);
		__builtin_memcpy(ev->remote, &r, 4);
	} else {
		ev->family = 6;
		__u32 l[4], r[4];
		CTX_IP6(l, sk->src_ip6);
		CTX_IP6(r, sk->dst_ip6);
		__builtin_memcpy(ev->local, l, 16);
		__builtin_memcpy(ev->remote, r, 16);
	}
	bpf_ringbuf_submit(ev, 0);
}

/*
 * l7_gate sees every IP packet the sockets of the cgroup send. A TCP
 * segment of a client socket with egress state passes only if its
 * payload ends within the bytes l7_msg decided (wbase + wpassed), so
 * retransmissions of decided bytes pass, and bytes that reached TCP
 * without l7_msg never leave: a write that began before the socket
 * entered l7_esocks, and data in the SYN (any payload while
 * connecting). Such a segment is dropped (TCP keeps it queued and tries
 * again; every try is dropped), and the connection is refused: counted
 * once, an event, and every later write fails with EACCES. Sockets
 * without egress state pass at once.
 */
SEC("cgroup_skb/egress")
int l7_gate(struct __sk_buff *skb)
{
	struct bpf_sock *sk = NULL;
	struct l7_esockw *w = esock_gate_state(skb, &l7_esk, &sk);
	if (!w)
		return 1;
	struct l7_esock *e = &w->e;
	int v = gate_segment(skb, e->flags & L7_ES_CONNECTING, e->wbase + e->wpassed);
	if (v == GATE_PASS)
		return 1;
	/* Data in the SYN (TCP Fast Open): the kernel queues it again and
	 * sends a plain SYN; once established it is dropped as undecided. */
	__u32 reason = v == GATE_CONNECTING ? L7_R_FASTOPEN : L7_R_UNDECIDED;
	if (!(e->flags & L7_ES_GATED)) {
		e->flags |= L7_ES_GATED;
		e->s.mode = L7_MODE_REFUSED;
		count_dir(L7_DIR_EGRESS, reason);
		emit_gate(sk, e, reason);
	}
	return 0;
}

/* ---- test ---- */

/* l7_test_parse runs l7_parse_msg over the packet with the state and list
 * in l7_test_in, and stores the result in l7_test_out. */
SEC("tc")
int l7_test_parse(struct __sk_buff *skb)
{
	__u32 zero = 0;
	struct l7_test_in *in = bpf_map_lookup_elem(&l7_test_input, &zero);
	struct l7_sock *out = bpf_map_lookup_elem(&l7_test_out, &zero);
	if (!in || !out)
		return 0;
	struct l7_parse *scan = bpf_map_lookup_elem(&l7_test_scan, &zero);
	if (!scan)
		return 0;
	struct l7_args a = { .list = in->list, .has_list = in->has_list, .resume = in->resume };
	a.off = in->off;
	a.avail = skb->len > a.off ? skb->len - a.off : 0;
	*out = in->sock;
	l7_parse_msg(skb, &a, out, out, scan);
	return 0;
}
