// SPDX-License-Identifier: (GPL-2.0-only OR Apache-2.0)
/* Copyright 2026 The Palisade Authors. */

/*
 * toFQDNs decided in the kernel (docs/datapath.md, "toFQDNs").
 *
 * 1. A query that the DNS rules pass on a workload's egress (dns_decide
 *    said PASS) is tracked in fqdn_pending, by the client's tuple and the
 *    DNS id, when it has one question whose name some FQDN selector of the
 *    generation selects (the fqdn_* automaton).
 * 2. An answer that reaches the client (a reply of the query's conntrack
 *    entry, on the client's ingress) is matched against it: the reversed
 *    tuple, the id and the question name's hash. A matching answer with
 *    RCODE 0 teaches fqdn_names and fqdn_addrs every A and AAAA record
 *    whose owner is the question name or a CNAME target met before it in
 *    the answer section. The answer is read whole first: a malformed one
 *    teaches nothing. The program writes the addresses before it returns,
 *    so before the answer reaches the workload.
 * 3. A workload's egress to a peer an FQDN selector can select
 *    (engine.FQDNEligible) probes the policy maps with the selector
 *    identities of every unexpired slot of fqdn_addrs[peer] too
 *    (fqdn_gather), folded as the peer's and the any-peer entries are.
 *
 * Names are compared by their 64-bit FNV-1a hash over the normalised
 * name (engine.FQDNNameHash): lower case, '.' between labels, no trailing
 * dot. Compression pointers are followed backwards only (RFC 1035 points
 * to a prior occurrence), at most FQDN_MAX_JUMPS per name, so a pointer
 * loop ends in a refusal, not a loop.
 */
#ifndef PALISADE_FQDN_H
#define PALISADE_FQDN_H

#include "palisade.h"
#include "maps.h"
#include "parse.h"

/* The largest message read (a DNS message of more is not learned from). */
#define FQDN_MSG_MAX 4096
#define FQDN_MSG_MASK (FQDN_MSG_MAX - 1)
/* Compression pointers followed per name. */
#define FQDN_MAX_JUMPS 16
/* Steps of one name walk: 253 characters, 127 length bytes, the jumps, the end. */
#define FQDN_NAME_STEPS 512
/* Answer records read per answer; the rest are not (counted). */
#define FQDN_MAX_RECORDS 64
#define FQDN_MAX_LEARN FQDN_MAX_RECORDS
/* The question name and the CNAME targets met: the owners that teach. */
#define FQDN_MAX_CHAIN 8

#define FNV64_OFFSET 0xcbf29ce484222325ULL
#define FNV64_PRIME 0x100000001b3ULL

#define FQDN_NO_STATE 0xffffffff

#define DNS_TYPE_A 1
#define DNS_TYPE_CNAME 5
#define DNS_TYPE_AAAA 28
#define DNS_CLASS_IN 1

enum fqdn_err {
	FQDN_OK = 0,
	FQDN_ERR_MALFORMED,
	FQDN_ERR_POINTER,
	FQDN_ERR_SPLIT,
};

/* fqdn_walk_name flags */
#define FQDN_WALK_FSM (1 << 0)	/* feed the automaton */
#define FQDN_WALK_TEXT (1 << 1) /* copy the name's text to the scratch */

struct fqdn_learn {
	__u32 family;
	__u8 addr[16];
	__u32 ttl;
};

/*
 * The message and the answer's state, per CPU (the stack has no room).
 * Pinned like every map; it holds nothing between packets.
 */
struct fqdn_scratch {
	__u8 msg[FQDN_MSG_MAX];
	__u8 name[FQDN_NAME_MAX]; /* the question name's text */
	struct fqdn_learn learn[FQDN_MAX_LEARN];
	__u64 chain[FQDN_MAX_CHAIN];
	struct fqdn_name nv; /* a new fqdn_names value */
	struct gathered g;   /* fqdn_gather's result */
	__u64 qhash;
	__u64 w_hash; /* the last name walk: hash, end state, length, error */
	__u32 w_state;
	__u32 w_chars;
	__u32 w_err;
	__u32 msg_len;
	__u32 slot;
	__u32 nchain;
	__u32 nlearn;
	__u32 ids[FQDN_MAX_SELECTORS];
	__u32 nids;
	__u32 qlen; /* the question name's length */
	__u32 cname_at; /* fqdn_rr: a CNAME on the chain whose target is at this offset (0: none) */
	struct fqdn_pending_key pk;
	struct addr_key ak;
	struct fqdn_addr av;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct fqdn_scratch);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} fqdn_scratch SEC(".maps");

static __always_inline struct fqdn_scratch *fqdn_sc(void)
{
	__u32 zero = 0;
	return bpf_map_lookup_elem(&fqdn_scratch, &zero);
}

/* The state of one name walk (bpf_loop's context). */
struct fqdn_walk {
	__u64 hash;
	__u32 pos;	 /* the next byte to read */
	__u32 label_end; /* the index after the current label */
	__u32 next;	 /* where the name ends where it was met (0: not yet) */
	__u32 msg_len;
	__u32 state;
	__u32 slot;
	__u32 chars;
	__u8 jumps;
	__u8 flags;
	__u8 err;
	__u8 done;
	__u8 in_label;
	__u8 pad[3];
};

static long fqdn_step(__u32 i, void *ctx)
{
	struct fqdn_walk *w = ctx;
	struct fqdn_scratch *sc = fqdn_sc();
	__u32 pos = w->pos;
	if (!sc || pos >= w->msg_len || pos >= FQDN_MSG_MAX) {
		w->err = FQDN_ERR_MALFORMED; /* the name runs past the message */
		return 1;
	}
	__u8 b = sc->msg[pos & FQDN_MSG_MASK];
	__u8 c;
	if (!w->in_label) {
		if (b == 0) {
			if (!w->next)
				w->next = pos + 1;
			w->done = 1;
			return 1;
		}
		if ((b & 0xc0) == 0xc0) {
			if (pos + 1 >= w->msg_len) {
				w->err = FQDN_ERR_MALFORMED;
				return 1;
			}
			__u32 target = ((__u32)(b & 0x3f) << 8) | sc->msg[(pos + 1) & FQDN_MSG_MASK];
			if (!w->next)
				w->next = pos + 2;
			/* Backwards only, into the message, a bounded number of times. */
			if (++w->jumps > FQDN_MAX_JUMPS || target >= pos || target < DNS_HDR_LEN) {
				w->err = FQDN_ERR_POINTER;
				return 1;
			}
			w->pos = target;
			return 0;
		}
		if (b & 0xc0) {
			w->err = FQDN_ERR_MALFORMED; /* 64 and up: no such label */
			return 1;
		}
		w->label_end = pos + 1 + b;
		w->in_label = 1;
		w->pos = pos + 1;
		if (w->chars == 0)
			return 0;
		c = '.';
	} else {
		c = b;
		/* Printable ASCII but '.', as the DNS rules read names. */
		if (c < 0x21 || c > 0x7e || c == '.') {
			w->err = FQDN_ERR_MALFORMED;
			return 1;
		}
		if (c >= 'A' && c <= 'Z')
			c += 'a' - 'A';
		w->pos = pos + 1;
		if (w->pos == w->label_end)
			w->in_label = 0;
	}
	if (w->chars >= 253) {
		w->err = FQDN_ERR_MALFORMED; /* longer than 253 characters */
		return 1;
	}
	if (w->flags & FQDN_WALK_TEXT)
		sc->name[w->chars & 0xff] = c;
	w->chars++;
	w->hash = (w->hash ^ c) * FNV64_PRIME;
	if ((w->flags & FQDN_WALK_FSM) && w->state != FQDN_NO_STATE) {
		void *next = bpf_map_lookup_elem(&gen_fqdn_next, &w->slot);
		__u32 k = (w->state << 8) | c;
		__u32 *n = next ? bpf_map_lookup_elem(next, &k) : 0;
		/* No transition: the generation's tables select nothing here. */
		w->state = n ? *n : FQDN_NO_STATE;
	}
	return 0;
}

/*
 * fqdn_walk_name walks the name at off of the message in the scratch and
 * returns the offset after it where it was met (after the first pointer,
 * if any), or 0 with w_err set. Its hash, length and, with FQDN_WALK_FSM,
 * the automaton's end state are left in the scratch. A global function:
 * the verifier checks it (and its loop) once.
 */
__attribute__((noinline)) __u32 fqdn_walk_name(__u32 off, __u32 flags)
{
	struct fqdn_scratch *sc = fqdn_sc();
	if (!sc)
		return 0;
	struct fqdn_walk w = {
		.hash = FNV64_OFFSET,
		.pos = off,
		.msg_len = sc->msg_len,
		.slot = sc->slot & 1,
		.flags = flags,
	};
	bpf_loop(FQDN_NAME_STEPS, fqdn_step, &w, 0);
	sc->w_hash = w.hash;
	sc->w_state = w.state;
	sc->w_chars = w.chars;
	sc->w_err = w.err;
	if (w.err)
		return 0;
	if (!w.done) {
		sc->w_err = FQDN_ERR_MALFORMED;
		return 0;
	}
	return w.next;
}

/* fqdn_accept_of returns the selector identities of a name that ended in state. */
static __always_inline struct fqdn_accept *fqdn_accept_of(__u32 slot, __u32 state)
{
	if (state == FQDN_NO_STATE)
		return 0;
	void *acc = bpf_map_lookup_elem(&gen_fqdn_accept, &slot);
	if (!acc)
		return 0;
	return bpf_map_lookup_elem(acc, &state);
}

/* fqdn_load copies the DNS message at off (len bytes) to the scratch. */
static __always_inline int fqdn_load(struct __sk_buff *skb, struct fqdn_scratch *sc, __u32 off, __u32 len)
{
	if (len < DNS_HDR_LEN || len > FQDN_MSG_MAX)
		return -1;
	if (bpf_skb_load_bytes(skb, off, sc->msg, len) < 0)
		return -1;
	sc->msg_len = len;
	return 0;
}

static __always_inline __u16 fqdn_u16(struct fqdn_scratch *sc, __u32 off)
{
	return (__u16)sc->msg[off & FQDN_MSG_MASK] << 8 | sc->msg[(off + 1) & FQDN_MSG_MASK];
}

/*
 * fqdn_track records a query that passed (the message at msg_off..msg_end
 * of the packet in pkt_scratch) when it has one question. A global
 * function.
 */
__attribute__((noinline)) int fqdn_track(struct __sk_buff *skb, __u32 slot, __u32 msg_off, __u32 msg_end)
{
	struct fqdn_scratch *sc = fqdn_sc();
	__u32 zero = 0;
	struct pkt_scratch *ps = bpf_map_lookup_elem(&pkt_scratch, &zero);
	if (!sc || !ps || !skb)
		return 0;
	msg_off &= 0xffff;
	msg_end &= 0xffff;
	if (msg_end < msg_off || fqdn_load(skb, sc, msg_off, msg_end - msg_off) < 0) {
		count(COUNTER_FQDN_UNTRACKED);
		return 0;
	}
	sc->slot = slot & 1;
	/* One question: the answer's records are that name's. */
	if (fqdn_u16(sc, 4) != 1) {
		count(COUNTER_FQDN_UNTRACKED);
		return 0;
	}
	if (!fqdn_walk_name(DNS_HDR_LEN, FQDN_WALK_FSM)) {
		count(COUNTER_FQDN_UNTRACKED);
		return 0;
	}
	/*
	 * Every passed query of one question is tracked, also one whose name
	 * no selector selects (its answer then teaches nothing): so that an
	 * answer that matches no query is one nobody asked for.
	 */
	struct pkt *p = &ps->p;
	struct fqdn_pending_key *k = &sc->pk;
	k->sport = p->sport;
	k->dport = p->dport;
	k->proto = p->proto;
	k->family = p->family;
	__builtin_memcpy(k->saddr, p->saddr, 16);
	__builtin_memcpy(k->daddr, p->daddr, 16);
	__builtin_memcpy(&k->id, sc->msg, 2);
	struct fqdn_query v = {.name = sc->w_hash};
	bpf_map_update_elem(&fqdn_pending, k, &v, BPF_ANY);
	count(COUNTER_FQDN_TRACKED);
	return 1;
}

static __always_inline void fqdn_count_err(__u32 err)
{
	if (err == FQDN_ERR_POINTER)
		count(COUNTER_FQDN_POINTER);
	else if (err == FQDN_ERR_SPLIT)
		count(COUNTER_FQDN_SPLIT);
	else
		count(COUNTER_FQDN_MALFORMED);
}

/*
 * fqdn_rr reads the answer record whose owner name (walked: its hash is
 * w_hash) ends at n: an A or AAAA record of an owner on the chain is kept
 * to be learned; a CNAME of an owner on the chain leaves its target's
 * offset in cname_at. It returns the offset after the record, or 0 with
 * w_err set. A global function.
 */
__attribute__((noinline)) __u32 fqdn_rr(__u32 n)
{
	struct fqdn_scratch *sc = fqdn_sc();
	if (!sc)
		return 0;
	sc->cname_at = 0;
	__u64 owner = sc->w_hash;
	__u32 len = sc->msg_len;
	if (n + 10 > len || n > FQDN_MSG_MAX) {
		sc->w_err = FQDN_ERR_MALFORMED;
		return 0;
	}
	__u16 type = fqdn_u16(sc, n);
	__u16 class = fqdn_u16(sc, n + 2);
	__u32 ttl = (__u32)fqdn_u16(sc, n + 4) << 16 | fqdn_u16(sc, n + 6);
	__u16 rdlen = fqdn_u16(sc, n + 8);
	__u32 rd = n + 10;
	if (rd + rdlen > len) {
		sc->w_err = FQDN_ERR_MALFORMED; /* the record runs past the message */
		return 0;
	}
	int on = 0;
#pragma unroll
	for (int i = 0; i < FQDN_MAX_CHAIN; i++)
		if (i < sc->nchain && sc->chain[i] == owner)
			on = 1;
	if (!on || class != DNS_CLASS_IN)
		return rd + rdlen;
	if ((type == DNS_TYPE_A && rdlen == 4) || (type == DNS_TYPE_AAAA && rdlen == 16)) {
		__u32 k = sc->nlearn;
		if (k < FQDN_MAX_LEARN) {
			struct fqdn_learn *l = &sc->learn[k & (FQDN_MAX_LEARN - 1)];
			__builtin_memset(l->addr, 0, 16);
			if (type == DNS_TYPE_A) {
				l->family = AF_INET4;
#pragma unroll
				for (int j = 0; j < 4; j++)
					l->addr[j] = sc->msg[(rd + j) & FQDN_MSG_MASK];
			} else {
				l->family = AF_INET6;
#pragma unroll
				for (int j = 0; j < 16; j++)
					l->addr[j] = sc->msg[(rd + j) & FQDN_MSG_MASK];
			}
			l->ttl = ttl & 0x7fffffff; /* RFC 2181: a TTL with the top bit set is 0 */
			if (ttl & 0x80000000)
				l->ttl = 0;
			sc->nlearn = k + 1;
		}
	} else if (type == DNS_TYPE_CNAME) {
		sc->cname_at = rd; /* fqdn_answer walks the target */
	}
	return rd + rdlen;
}

/* fqdn_forget takes one address slot from a name's count. */
static __always_inline void fqdn_forget(__u64 *name)
{
	struct fqdn_name *o = bpf_map_lookup_elem(&fqdn_names, name);
	if (o && o->addrs > 0)
		__sync_fetch_and_add(&o->addrs, -1);
}

/*
 * fqdn_learn_one writes learned address i for the question name: a slot
 * of fqdn_addrs[address] that names it, expiring at now + max(TTL, min
 * TTL). A global function.
 */
__attribute__((noinline)) int fqdn_learn_one(__u32 i)
{
	struct fqdn_scratch *sc = fqdn_sc();
	__u32 zero = 0;
	if (!sc || i >= FQDN_MAX_LEARN)
		return 0;
	struct fqdn_learn *l = &sc->learn[i & (FQDN_MAX_LEARN - 1)];
	struct fqdn_config *cfg = bpf_map_lookup_elem(&fqdn_settings, &zero);
	__u32 min_ttl = cfg && cfg->min_ttl ? cfg->min_ttl : FQDN_DEFAULT_MIN_TTL;
	__u32 cap = cfg && cfg->max_addrs ? cfg->max_addrs : FQDN_DEFAULT_MAX_ADDRS;
	__u32 ttl = l->ttl > min_ttl ? l->ttl : min_ttl;
	__u64 now = bpf_ktime_get_boot_ns();
	__u64 expires = now + (__u64)ttl * 1000000000ULL;

	struct fqdn_name *nm = bpf_map_lookup_elem(&fqdn_names, &sc->qhash);
	if (!nm) {
		struct fqdn_name *nv = &sc->nv;
		__builtin_memset(nv, 0, sizeof(*nv));
		__builtin_memcpy(nv->name, sc->name, FQDN_NAME_MAX);
		nv->len = sc->qlen & 0xff;
		long err = bpf_map_update_elem(&fqdn_names, &sc->qhash, nv, BPF_NOEXIST);
		nm = bpf_map_lookup_elem(&fqdn_names, &sc->qhash);
		if (!nm) {
			if (err)
				count(COUNTER_FQDN_FULL);
			return 0;
		}
	}
	/* The selector identities of the generation that learned it. */
#pragma unroll
	for (int j = 0; j < FQDN_MAX_SELECTORS; j++)
		nm->ids[j] = sc->ids[j];
	nm->nids = sc->nids;

	struct addr_key *k = &sc->ak;
	k->family = l->family;
	__builtin_memcpy(k->addr, l->addr, 16);
	struct fqdn_addr *av = bpf_map_lookup_elem(&fqdn_addrs, k);
	if (!av) {
		if (nm->addrs >= cap) {
			nm->flags |= FQDN_NAME_CAPPED;
			count(COUNTER_FQDN_CAP);
			return 0;
		}
		struct fqdn_addr *nv = &sc->av;
		__builtin_memset(nv, 0, sizeof(*nv));
		nv->slots[0].name = sc->qhash;
		nv->slots[0].expires = expires;
		if (bpf_map_update_elem(&fqdn_addrs, k, nv, BPF_NOEXIST) == 0) {
			__sync_fetch_and_add(&nm->addrs, 1);
			count(COUNTER_FQDN_LEARNED);
			return 1;
		}
		/* Another CPU added it meanwhile, or the map is full. */
		av = bpf_map_lookup_elem(&fqdn_addrs, k);
		if (!av) {
			nm->flags |= FQDN_NAME_FULL;
			count(COUNTER_FQDN_FULL);
			return 0;
		}
	}
	int free = -1;
#pragma unroll
	for (int j = 0; j < FQDN_SLOTS; j++) {
		if (av->slots[j].name == sc->qhash) {
			if (expires > av->slots[j].expires)
				av->slots[j].expires = expires;
			count(COUNTER_FQDN_LEARNED);
			return 1;
		}
		if (free < 0 && (av->slots[j].name == 0 || av->slots[j].expires < now))
			free = j;
	}
	if (nm->addrs >= cap) {
		nm->flags |= FQDN_NAME_CAPPED;
		count(COUNTER_FQDN_CAP);
		return 0;
	}
	if (free < 0) {
		nm->flags |= FQDN_NAME_SLOTS;
		count(COUNTER_FQDN_SLOTS);
		return 0;
	}
	struct fqdn_slot *s = &av->slots[free & (FQDN_SLOTS - 1)];
	if (s->name)
		fqdn_forget(&s->name); /* an expired slot of another name */
	/* The name last: a reader that sees it sees its expiry (stores are ordered). */
	*(volatile __u64 *)&s->name = 0;
	*(volatile __u64 *)&s->expires = expires;
	*(volatile __u64 *)&s->name = sc->qhash;
	__sync_fetch_and_add(&nm->addrs, 1);
	count(COUNTER_FQDN_LEARNED);
	return 1;
}

/*
 * fqdn_answer learns from the DNS answer in the packet (a reply on the
 * client's ingress of a connection whose queries the DNS rules decide).
 * The tuple in pkt_scratch is the answer's (server to client). A global
 * function.
 */
__attribute__((noinline)) int fqdn_answer(struct __sk_buff *skb, __u32 slot, __u32 frag)
{
	struct fqdn_scratch *sc = fqdn_sc();
	__u32 zero = 0;
	struct pkt_scratch *ps = bpf_map_lookup_elem(&pkt_scratch, &zero);
	if (!sc || !ps || !skb)
		return 0;
	__u32 l4off = ps->p.l4off & 0xffff;
	__u32 l4len = ps->p.l4len & 0xffff;
	__u32 proto = ps->p.proto;
	__u32 off, end = l4off + l4len;
	if (proto == IPPROTO_UDP) {
		off = l4off + 8;
	} else if (proto == IPPROTO_TCP) {
		__u8 doff;
		if (bpf_skb_load_bytes(skb, l4off + 12, &doff, 1) < 0)
			return 0;
		__u32 hl = (doff >> 4) * 4;
		if (l4len <= hl)
			return 0; /* no payload */
		off = l4off + hl;
		__u16 plen;
		if (end - off < 2 || bpf_skb_load_bytes(skb, off, &plen, 2) < 0 || bpf_ntohs(plen) != end - off - 2) {
			count(COUNTER_FQDN_SPLIT);
			return 0;
		}
		off += 2;
	} else {
		return 0;
	}
	if (frag || end < off || end - off > FQDN_MSG_MAX) {
		count(COUNTER_FQDN_SPLIT);
		return 0;
	}
	if (fqdn_load(skb, sc, off, end - off) < 0) {
		count(COUNTER_FQDN_MALFORMED);
		return 0;
	}
	sc->slot = slot & 1;
	__u8 f0 = sc->msg[2], f1 = sc->msg[3];
	if (!(f0 & 0x80))
		return 0; /* a query, not an answer */

	struct pkt *p = &ps->p;
	struct fqdn_pending_key *k = &sc->pk;
	k->sport = p->dport;
	k->dport = p->sport;
	k->proto = p->proto;
	k->family = p->family;
	__builtin_memcpy(k->saddr, p->daddr, 16);
	__builtin_memcpy(k->daddr, p->saddr, 16);
	__builtin_memcpy(&k->id, sc->msg, 2);
	struct fqdn_query *pend = bpf_map_lookup_elem(&fqdn_pending, k);
	if (!pend) {
		/*
		 * An error answer teaches nothing, asked for or not: not counted
		 * as unsolicited, since the answers the kernel crafts for refused
		 * queries (never tracked) pass here on their way to the client.
		 */
		if (!(f1 & 0x0f))
			count(COUNTER_FQDN_UNSOLICITED);
		return 0;
	}
	sc->qhash = pend->name;
	if (fqdn_u16(sc, 4) != 1) {
		count(COUNTER_FQDN_MALFORMED);
		return 0;
	}
	__builtin_memset(sc->name, 0, sizeof(sc->name));
	__u32 n = fqdn_walk_name(DNS_HDR_LEN, FQDN_WALK_FSM | FQDN_WALK_TEXT);
	if (!n) {
		fqdn_count_err(sc->w_err);
		return 0;
	}
	sc->qlen = sc->w_chars;
	if (sc->w_hash != sc->qhash) {
		count(COUNTER_FQDN_UNSOLICITED); /* an answer to another question */
		return 0;
	}
	bpf_map_delete_elem(&fqdn_pending, &sc->pk);
	count(COUNTER_FQDN_ANSWERS);
	if ((f0 & 0x78) || (f1 & 0x0f)) {
		count(COUNTER_FQDN_RCODE); /* not a QUERY's answer, or an error */
		return 0;
	}
	struct fqdn_accept *a = fqdn_accept_of(sc->slot, sc->w_state);
	if (!a || a->n == 0 || a->n > FQDN_MAX_SELECTORS)
		return 0; /* no selector of this generation selects the name */
	sc->nids = a->n;
#pragma unroll
	for (int j = 0; j < FQDN_MAX_SELECTORS; j++)
		sc->ids[j] = a->ids[j];

	__u32 an = fqdn_u16(sc, 6);
	if (an > FQDN_MAX_RECORDS) {
		count(COUNTER_FQDN_RECORDS);
		an = FQDN_MAX_RECORDS;
	}
	off = n + 4; /* QTYPE, QCLASS */
	if (off > sc->msg_len) {
		count(COUNTER_FQDN_MALFORMED);
		return 0;
	}
	sc->chain[0] = sc->qhash;
	sc->nchain = 1;
	sc->nlearn = 0;
	for (__u32 i = 0; i < FQDN_MAX_RECORDS; i++) {
		if (i >= an)
			break;
		/* One call deep each: the programs' stack has room for no more. */
		__u32 n = fqdn_walk_name(off, 0);
		if (n)
			off = fqdn_rr(n);
		if (!n || !off) {
			fqdn_count_err(sc->w_err);
			return 0;
		}
		__u32 at = sc->cname_at;
		if (at) {
			/* The CNAME's target joins the chain; it is the record's data. */
			__u32 t = fqdn_walk_name(at, 0);
			if (!t || t != off) {
				fqdn_count_err(t ? FQDN_ERR_MALFORMED : sc->w_err);
				return 0;
			}
			__u32 c = sc->nchain;
			if (c < FQDN_MAX_CHAIN) {
				sc->chain[c & (FQDN_MAX_CHAIN - 1)] = sc->w_hash;
				sc->nchain = c + 1;
			}
		}
	}
	__u32 nl = sc->nlearn;
	for (__u32 i = 0; i < FQDN_MAX_LEARN; i++) {
		if (i >= nl)
			break;
		fqdn_learn_one(i);
	}
	return 1;
}

/*
 * fqdn_gather probes the policy maps of the slot with the selector
 * identities of every unexpired slot of fqdn_addrs[destination] (the
 * packet in pkt_scratch) and folds what it finds into out, as the peer's
 * and the any-peer entries are; it returns whether it found any entry. A
 * global function.
 */
__attribute__((noinline)) int fqdn_gather(__u32 slot, __u32 policy_id, __u32 proto_port, __u32 lpm,
					  struct gathered *out)
{
	if (!out)
		return 0;
	struct fqdn_scratch *sc = fqdn_sc();
	__u32 zero = 0;
	struct pkt_scratch *ps = bpf_map_lookup_elem(&pkt_scratch, &zero);
	if (!sc || !ps)
		return 0;
	struct pkt *p = &ps->p;
	struct addr_key k = {.family = p->family};
	__builtin_memcpy(k.addr, p->daddr, 16);
	struct fqdn_addr *av = bpf_map_lookup_elem(&fqdn_addrs, &k);
	if (!av)
		return 0;
	slot &= 1;
	struct state s = {};
	s.policy = bpf_map_lookup_elem(&gen_policy, &slot);
	s.policy_lpm = bpf_map_lookup_elem(&gen_policy_lpm, &slot);
	if (!s.policy || !s.policy_lpm)
		return 0;
	__u64 now = bpf_ktime_get_boot_ns();
	struct gathered *g = &sc->g;
	__builtin_memset(g, 0, sizeof(*g));
	int found = 0;
	__u8 proto = proto_port >> 16;
	__u16 port = proto_port;
	for (int j = 0; j < FQDN_SLOTS; j++) {
		__u64 name = *(volatile __u64 *)&av->slots[j].name;
		if (!name || av->slots[j].expires < now)
			continue;
		struct fqdn_name *nm = bpf_map_lookup_elem(&fqdn_names, &name);
		if (!nm)
			continue;
		__u32 nids = nm->nids;
		for (int i = 0; i < FQDN_MAX_SELECTORS; i++) {
			if (i >= nids)
				break;
			struct policy_value *v =
				probe(&s, policy_id, DIR_EGRESS, nm->ids[i], proto, port, 1, lpm);
			if (v) {
				gather(g, v);
				found = 1;
			}
		}
	}
	if (found) {
		out->flags |= g->flags;
		out->deny = min_rule(out->deny, g->deny);
		out->allow = min_rule(out->allow, g->allow);
		out->audit_deny = min_rule(out->audit_deny, g->audit_deny);
		out->audit_allow = min_rule(out->audit_allow, g->audit_allow);
		out->l7 |= g->l7;
	}
	return found;
}

#endif /* PALISADE_FQDN_H */
