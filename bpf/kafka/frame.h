// SPDX-License-Identifier: (GPL-2.0-only OR Apache-2.0)
/* Copyright 2026 The Palisade Authors. */

/*
 * The frame parser and the answer writers of bpf/kafka, included twice by
 * kafka.c: once over the strparser's skb (ingress, the broker's side) and
 * once over the message a client writes (sk_msg, egress), so that both
 * directions decide a frame with the same code. The includer defines:
 *
 *   KCTX          the context the parser reads (struct __sk_buff or
 *                 struct sk_msg_md)
 *   KLOAD(c, off, dst, n)   copies n bytes at off of the frame
 *   KWCTX         what the answer is written to (the skb, or a buffer)
 *   KSTORE(w, off, src, n)  writes n bytes there
 *   KFN(name)     the name of this copy's function
 *
 * No include guard: each inclusion is one copy.
 */

static __always_inline __u32 KFN(rd_u8)(KCTX *skb, struct kafka_rd *r)
{
	__u8 b = 0;
	if (r->pos + 1 > r->end || KLOAD(skb, r->pos, &b, 1) < 0) {
		r->bad = 1;
		return 0;
	}
	r->pos += 1;
	return b;
}

static __always_inline __s32 KFN(rd_i16)(KCTX *skb, struct kafka_rd *r)
{
	__u16 v = 0;
	if (r->pos + 2 > r->end || KLOAD(skb, r->pos, &v, 2) < 0) {
		r->bad = 1;
		return 0;
	}
	r->pos += 2;
	return (__s16)bpf_ntohs(v);
}

static __always_inline __s32 KFN(rd_i32)(KCTX *skb, struct kafka_rd *r)
{
	__u32 v = 0;
	if (r->pos + 4 > r->end || KLOAD(skb, r->pos, &v, 4) < 0) {
		r->bad = 1;
		return 0;
	}
	r->pos += 4;
	return (__s32)bpf_ntohl(v);
}

/* An unsigned varint of at most 5 bytes (Kafka's compact lengths and tag
 * counts fit in 32 bits). */
static __always_inline __u32 KFN(rd_uvarint)(KCTX *skb, struct kafka_rd *r)
{
	__u32 v = 0;
	for (int i = 0; i < 5; i++) {
		__u32 b = KFN(rd_u8)(skb, r);
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
static __always_inline __s32 KFN(rd_strlen)(KCTX *skb, struct kafka_rd *r, __u32 flex)
{
	if (flex) {
		__u32 n = KFN(rd_uvarint)(skb, r);
		if (r->bad)
			return 0;
		if (n > 0x7fff + 1) {
			r->bad = 1;
			return 0;
		}
		return (__s32)n - 1;
	}
	__s32 n = KFN(rd_i16)(skb, r);
	if (n < -1)
		r->bad = 1;
	return n;
}

/* An array's length: int32 (-1 null), or an unsigned varint of length +
 * 1 (0 null). Null is -1. */
static __always_inline __s32 KFN(rd_arrlen)(KCTX *skb, struct kafka_rd *r, __u32 flex)
{
	if (flex) {
		__u32 n = KFN(rd_uvarint)(skb, r);
		if (r->bad)
			return 0;
		if (n > 0x7fffffff) {
			r->bad = 1;
			return 0;
		}
		return (__s32)n - 1;
	}
	__s32 n = KFN(rd_i32)(skb, r);
	if (n < -1)
		r->bad = 1;
	return n;
}

/* Skips a string (its length read), checking it lies in the frame. */
static __always_inline void KFN(rd_skip_str)(KCTX *skb, struct kafka_rd *r, __u32 flex, __u32 nullable)
{
	__s32 n = KFN(rd_strlen)(skb, r, flex);
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
static __always_inline int KFN(rd_no_tags)(KCTX *skb, struct kafka_rd *r)
{
	__u32 n = KFN(rd_uvarint)(skb, r);
	return !r->bad && n == 0;
}


/* val_mask looks a value up: len bytes at skb offset at, or (skb NULL)
 * the 2 bytes of ver. A value longer than KAFKA_VAL_MAX is no rule's. */
static __always_inline __u64 KFN(val_mask)(KCTX *skb, struct kafka_val_key *k, __u32 slot, __u32 list,
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
	} else if (KLOAD(skb, at, k->val, len & 0xff) < 0) {
		return 0;
	}
	__u64 *m = bpf_map_lookup_elem(&kafka_vals, k);
	return m ? *m : 0;
}

/*
 * kafka_topic reads one topic entry of a Metadata request (its topic ID
 * in v10+, its name, its tagged fields in flexible versions) and decides
 * the request for that topic.
 */
__noinline int KFN(kafka_topic)(KCTX *skb, struct kafka_parse *p, struct kafka_list *l, struct kafka_scratch *x)
{
	if (!skb || !p || !l || !x)
		return 0;
	struct kafka_val_key *k = &x->key;
	struct kafka_rd *r = &p->r;
	if (p->uuid)
		rd_skip(r, 16);
	__s32 n = KFN(rd_strlen)(skb, r, p->flex);
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
	if (p->flex && !r->bad && !KFN(rd_no_tags)(skb, r)) {
		p->state = T_UNREAD;
		p->why = r->bad ? KAFKA_R_MALFORMED : KAFKA_R_TAGGED;
		return 0;
	}
	if (r->bad) {
		p->state = T_UNREAD;
		p->why = KAFKA_R_MALFORMED;
		return 0;
	}
	__u64 m = p->h & (l->topic_any | KFN(val_mask)(skb, k, p->slot, p->list_id, KAFKA_VAL_TOPIC, at, (__u32)n, 0));
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
	    KLOAD(skb, at, &nm->buf[nm->len & (KAFKA_NAMES_MAX - 1)], (((__u32)n - 1) & 0xff) + 1) == 0) {
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

/*
 * kafka_produce_parts records, for the answer of a refused Produce
 * request, its topic's name (n bytes at at) and the index of each of its
 * partitions (at most KAFKA_MAX_PARTS), walking their records; names.ok
 * says whether all of it was recorded.
 */
__noinline int KFN(kafka_produce_parts)(KCTX *skb, struct kafka_parse *p, struct kafka_scratch *x, __u32 at, __u32 n)
{
	if (!skb || !p || !x)
		return 0;
	struct kafka_names *nm = &x->names;
	struct kafka_rd *r = &p->r;
	nm->ok = 0;
	if (n == 0 || n > KAFKA_VAL_MAX || KLOAD(skb, at, nm->buf, ((n - 1) & 0xff) + 1) < 0)
		return 0;
	nm->nlen[0] = n;
	nm->len = n;
	nm->count = 1;
	nm->denied = 1;
	__s32 np = KFN(rd_arrlen)(skb, r, p->flex);
	if (r->bad || np < 1 || np > KAFKA_MAX_PARTS)
		return 0;
	for (__u32 i = 0; i < KAFKA_MAX_PARTS; i++) {
		if (i >= (__u32)np)
			break;
		__u32 idx = (__u32)KFN(rd_i32)(skb, r);
		__s32 rl;
		if (p->flex) {
			rl = (__s32)KFN(rd_uvarint)(skb, r) - 1;
		} else {
			rl = KFN(rd_i32)(skb, r);
		}
		if (r->bad)
			return 0;
		if (rl > 0)
			rd_skip(r, (__u32)rl);
		if (p->flex && !KFN(rd_no_tags)(skb, r))
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
__noinline int KFN(kafka_body)(KCTX *skb, struct kafka_parse *p, struct kafka_list *l, struct kafka_scratch *x)
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
			KFN(rd_skip_str)(skb, r, flex, 1);
		x->names.acks = (__u32)(KFN(rd_i16)(skb, r) & 0xffff);
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
		KFN(rd_skip_str)(skb, r, flex, 0);
		if (ver >= 1) {
			rd_skip(r, 4);
			KFN(rd_skip_str)(skb, r, flex, 0);
		}
		if (ver >= 7)
			KFN(rd_skip_str)(skb, r, flex, 1);
		if (ver >= 2 && ver <= 4)
			rd_skip(r, 8);
		break;
	case 9: /* OffsetFetch: group_id */
		KFN(rd_skip_str)(skb, r, flex, 0);
		nullall = ver >= 2;
		break;
	}
	__s32 n = KFN(rd_arrlen)(skb, r, flex);
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
		__s32 tn = KFN(rd_strlen)(skb, r, flex);
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
		__u64 m = p->h & (l->topic_any | KFN(val_mask)(skb, k, p->slot, p->list_id, KAFKA_VAL_TOPIC, at, (__u32)tn, 0));
		kafka_decide(l, m, &p->dec);
		p->tat = at;
		p->tlen = (__u32)tn;
		p->ntopics = 1;
		p->state = T_READ;
		if (key == 0 && p->dec.reason == KAFKA_R_DENIED)
			KFN(kafka_produce_parts)(skb, p, x, at, (__u32)tn);
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
		KFN(kafka_topic)(skb, p, l, x);
	}
	return 0;
}

/*
 * kafka_parse_frame frames and decides the request that starts at off in
 * skb (avail bytes there): res->len 0 asks for more bytes; otherwise
 * res->kind says what to do with the res->len bytes of the frame.
 */
__noinline int KFN(kafka_decide_frame)(KCTX *skb, struct kafka_args *a, struct kafka_sock *res,
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
	if (KLOAD(skb, a->off, &sz, 4) < 0)
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
	__s32 key = KFN(rd_i16)(skb, &p.r);
	__s32 ver = KFN(rd_i16)(skb, &p.r);
	res->correlation = KFN(rd_i32)(skb, &p.r);
	__s32 cl = KFN(rd_i16)(skb, &p.r);
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
	p.h &= l->ver_any | KFN(val_mask)(skb, k, p.slot, p.list_id, KAFKA_VAL_VERSION, 0, 2, (__u32)ver);
	if (cl > 0)
		p.h &= l->client_any | KFN(val_mask)(skb, k, p.slot, p.list_id, KAFKA_VAL_CLIENT, cat, (__u32)cl, 0);
	else
		p.h &= l->client_any;

	if (topicless((__u32)key)) {
		p.state = T_NONE;
	} else if (!parsed((__u32)key, (__u32)ver)) {
		p.state = T_UNREAD;
		p.why = key <= 3 || key == 8 || key == 9 ? KAFKA_R_VERSION : KAFKA_R_UNPARSED;
	} else {
		p.flex = flexible((__u32)key, (__u32)ver);
		if (p.flex && !KFN(rd_no_tags)(skb, &p.r)) {
			p.state = T_UNREAD;
			p.why = p.r.bad ? KAFKA_R_MALFORMED : KAFKA_R_TAGGED;
		} else {
			p.key = key;
			p.ver = ver;
			KFN(kafka_body)(skb, &p, l, x);
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

/* ---- the answer ---- */

struct KFN(wr) {
	KWCTX *skb;
	__u32 pos;
	__u32 end;
	int err;
};

static __always_inline void KFN(wr_bytes)(struct KFN(wr) *w, const void *b, __u32 n)
{
	if (w->err || n == 0 || n > 16 || w->pos + n > w->end) {
		w->err = 1;
		return;
	}
	if (KSTORE(w->skb, w->pos, b, n) < 0)
		w->err = 1;
	w->pos += n;
}

static __always_inline void KFN(wr8)(struct KFN(wr) *w, __u8 v) { KFN(wr_bytes)(w, &v, 1); }

static __always_inline void KFN(wr16)(struct KFN(wr) *w, __u16 v)
{
	__u16 b = bpf_htons(v);
	KFN(wr_bytes)(w, &b, 2);
}

static __always_inline void KFN(wr32)(struct KFN(wr) *w, __u32 v)
{
	__u32 b = bpf_htonl(v);
	KFN(wr_bytes)(w, &b, 4);
}


static long KFN(zero_cb)(__u32 i, void *ctx)
{
	struct KFN(wr) *w = ctx;
	if (w->pos >= w->end)
		return 1;
	__u32 n = w->end - w->pos;
	if (n > sizeof(zeros))
		n = sizeof(zeros);
	if (n == 0 || KSTORE(w->skb, w->pos, zeros, n) < 0) {
		w->err = 1;
		return 1;
	}
	w->pos += n;
	return 0;
}

/* One topic entry of a Metadata answer: the topic's error, its name
 * (n bytes at buf), no partition. */
static __always_inline void KFN(answer_topic)(struct KFN(wr) *w, __u32 v, __u16 err, const __u8 *name, __u32 n)
{
	__u32 f = v >= 9;
	KFN(wr16)(w, err);
	if (f) {
		if (n + 1 < 128) {
			KFN(wr8)(w, n + 1);
		} else {
			KFN(wr8)(w, ((n + 1) & 0x7f) | 0x80);
			KFN(wr8)(w, (n + 1) >> 7);
		}
	} else {
		KFN(wr16)(w, n);
	}
	if (w->err || n == 0 || n > KAFKA_VAL_MAX || w->pos + n > w->end) {
		w->err = 1;
		return;
	}
	if (KSTORE(w->skb, w->pos, name, ((n - 1) & 0xff) + 1) < 0) {
		w->err = 1;
		return;
	}
	w->pos += n;
	if (v >= 10)
		KFN(wr_bytes)(w, zeros, 16); /* topic_id */
	if (v >= 1)
		KFN(wr8)(w, 0); /* is_internal */
	if (f)
		KFN(wr8)(w, 1); /* partitions: none */
	else
		KFN(wr32)(w, 0);
	if (v >= 8)
		KFN(wr32)(w, 0x80000000); /* topic_authorized_operations: none given */
	if (f)
		KFN(wr8)(w, 0);
}

/*
 * kafka_answer_produce writes, in place of a refused Produce request
 * naming one topic, the Produce response of its version under its
 * correlation ID: the topic, each of the request's partitions with
 * TOPIC_AUTHORIZATION_FAILED and offsets -1, then zeros to alen (as
 * kafka_answer).
 */
__noinline int KFN(kafka_answer_produce)(KWCTX *skb, struct kafka_sock *st, struct kafka_scratch *x, __u32 off,
				  __u32 alen)
{
	if (!skb || !st || !x)
		return -1;
	struct kafka_names *nm = &x->names;
	__u32 v = (__u32)st->api_version;
	__u32 f = v >= 9;
	__u32 n = nm->nlen[0];
	__u32 np = nm->nparts;
	if (nm->count != 1 || n == 0 || np == 0 || np > KAFKA_MAX_PARTS || alen < 8 || alen > KAFKA_FRAME_MAX)
		return -1;
	struct KFN(wr) w = { .skb = skb, .pos = off, .end = off + alen };
	KFN(wr32)(&w, alen - 4);
	KFN(wr32)(&w, (__u32)st->correlation);
	if (f) {
		KFN(wr8)(&w, 0); /* response header tagged fields */
		KFN(wr8)(&w, 2); /* topics: one */
		if (n + 1 < 128) {
			KFN(wr8)(&w, n + 1);
		} else {
			KFN(wr8)(&w, ((n + 1) & 0x7f) | 0x80);
			KFN(wr8)(&w, (n + 1) >> 7);
		}
	} else {
		KFN(wr32)(&w, 1);
		KFN(wr16)(&w, n);
	}
	if (w.err || w.pos + n > w.end)
		return -1;
	if (KSTORE(skb, w.pos, nm->buf, ((n - 1) & 0xff) + 1) < 0)
		return -1;
	w.pos += n;
	if (f)
		KFN(wr8)(&w, np + 1);
	else
		KFN(wr32)(&w, np);
	for (__u32 i = 0; i < KAFKA_MAX_PARTS; i++) {
		if (i >= np || w.err)
			break;
		KFN(wr32)(&w, nm->parts[i & (KAFKA_MAX_PARTS - 1)]);
		KFN(wr16)(&w, KAFKA_TOPIC_AUTHORIZATION_FAILED);
		KFN(wr32)(&w, 0xffffffff); /* base_offset -1 */
		KFN(wr32)(&w, 0xffffffff);
		if (v >= 2) { /* log_append_time_ms -1 */
			KFN(wr32)(&w, 0xffffffff);
			KFN(wr32)(&w, 0xffffffff);
		}
		if (v >= 5) { /* log_start_offset -1 */
			KFN(wr32)(&w, 0xffffffff);
			KFN(wr32)(&w, 0xffffffff);
		}
		if (v >= 8) { /* record_errors: none; error_message: null */
			if (f) {
				KFN(wr8)(&w, 1);
				KFN(wr8)(&w, 0);
			} else {
				KFN(wr32)(&w, 0);
				KFN(wr16)(&w, 0xffff);
			}
		}
		if (f)
			KFN(wr8)(&w, 0); /* partition tagged fields */
	}
	if (f)
		KFN(wr8)(&w, 0); /* topic tagged fields */
	if (v >= 1)
		KFN(wr32)(&w, 0); /* throttle_time_ms */
	if (f)
		KFN(wr8)(&w, 0);
	if (w.err)
		return -1;
	bpf_loop(KAFKA_FRAME_MAX / sizeof(zeros) + 1, KFN(zero_cb), &w, 0);
	return w.err ? -1 : 0;
}

/*
 * kafka_answer writes at off, alen bytes long (the refused Metadata
 * request's frame on the broker's side; the answer's own length on the
 * client's), the Metadata response of the request's version under its
 * correlation ID: no broker, and each topic of the request in its order,
 * the refused ones with TOPIC_AUTHORIZATION_FAILED, the others with
 * LEADER_NOT_AVAILABLE (retriable: the broker was not asked), none with a
 * partition. The response's size field covers alen and the bytes after
 * the response are zero (clients read a response by its
 * schema and ignore what follows).
 */
__noinline int KFN(kafka_answer)(KWCTX *skb, struct kafka_sock *st, struct kafka_scratch *x, __u32 off,
				  __u32 alen)
{
	if (!skb || !st || !x)
		return -1;
	struct kafka_names *nm = &x->names;
	__u32 v = (__u32)st->api_version;
	__u32 f = v >= 9;
	__u32 count = nm->count;
	if (count == 0 || count > KAFKA_MAX_TOPICS || alen < 8 || alen > KAFKA_FRAME_MAX)
		return -1;
	struct KFN(wr) w = { .skb = skb, .pos = off, .end = off + alen };
	KFN(wr32)(&w, alen - 4);
	KFN(wr32)(&w, (__u32)st->correlation);
	if (f)
		KFN(wr8)(&w, 0); /* response header tagged fields */
	if (v >= 3)
		KFN(wr32)(&w, 0); /* throttle_time_ms */
	if (f)
		KFN(wr8)(&w, 1); /* brokers: none */
	else
		KFN(wr32)(&w, 0);
	if (v >= 2) { /* cluster_id: null */
		if (f)
			KFN(wr8)(&w, 0);
		else
			KFN(wr16)(&w, 0xffff);
	}
	if (v >= 1)
		KFN(wr32)(&w, 0xffffffff); /* controller_id: none */
	if (f)
		KFN(wr8)(&w, count + 1);
	else
		KFN(wr32)(&w, count);
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
		KFN(answer_topic)(&w, v, err, &nm->buf[at & (KAFKA_NAMES_MAX - 1)], n);
		at += n;
	}
	if (v >= 8 && v <= 10)
		KFN(wr32)(&w, 0x80000000); /* cluster_authorized_operations */
	if (v >= 13)
		KFN(wr16)(&w, 0); /* error_code */
	if (f)
		KFN(wr8)(&w, 0);
	if (w.err)
		return -1;
	bpf_loop(KAFKA_FRAME_MAX / sizeof(zeros) + 1, KFN(zero_cb), &w, 0);
	return w.err ? -1 : 0;
}

/*
 * kafka_close_frame writes, in place of a refused frame the kernel
 * cannot answer in the request's terms, one response frame of alen
 * bytes (as long as the request on the broker's side; 8 on the client's):
 * its size field, then (if there is room) the request's
 * correlation ID inverted, then zeros. No request of the client has that
 * correlation ID, so the client takes the connection for broken and
 * closes it (franz-go: "correlation ID mismatch"); a refused frame too
 * short to hold one is answered by a response frame of size zero.
 */
__noinline int KFN(kafka_close_frame)(KWCTX *skb, struct kafka_sock *st, __u32 off, __u32 alen)
{
	if (!skb || !st || alen < 4 || alen > KAFKA_FRAME_MAX)
		return -1;
	struct KFN(wr) w = { .skb = skb, .pos = off, .end = off + alen };
	if (alen < 8) {
		KFN(wr32)(&w, 0);
	} else {
		KFN(wr32)(&w, alen - 4);
		KFN(wr32)(&w, ~(__u32)st->correlation);
	}
	if (w.err)
		return -1;
	bpf_loop(KAFKA_FRAME_MAX / sizeof(zeros) + 1, KFN(zero_cb), &w, 0);
	return w.err ? -1 : 0;
}
