// SPDX-License-Identifier: (GPL-2.0-only OR Apache-2.0)
/* Copyright 2026 The Palisade Authors. */

/*
 * DNS rules decided in the kernel (docs/datapath.md, "DNS").
 *
 * On a port whose allow entries carry an L7 list with DNS rules, each DNS
 * message the client sends (a UDP datagram; a TCP segment that holds one
 * whole message, length prefix included) is parsed here: the header, then
 * every question's name, which is fed byte by byte (labels lower-cased,
 * '.' between them) through each found list's automaton (the dns_* maps,
 * compiled by engine.CompileDNS). The accept values decide the query as
 * engine.MapState.LookupSide decides a DNS request. A refused query is
 * answered here (dns_answer): the packet becomes the server's answer, a
 * UDP datagram or the TCP segment that closes the connection toward the
 * client.
 *
 * The question parser is meant to serve answers later (toFQDNs): dns_name
 * walks one name at an offset and reports where it ends; it refuses
 * compression pointers, which questions never need and answers will.
 */
#ifndef PALISADE_DNS_H
#define PALISADE_DNS_H

#include "palisade.h"
#include "maps.h"
#include "parse.h"

#define DNS_HDR_LEN 12
#define DNS_MAX_QUESTIONS 4
/* A name's wire form: at most 255 bytes, the final zero included. */
#define DNS_NAME_WIRE_MAX 255
#define DNS_RCODE_NXDOMAIN 3
#define DNS_RCODE_REFUSED 5

/* Why the kernel could not decide a query (0: it could). */
enum dns_err {
	DNS_OK = 0,
	DNS_ERR_MALFORMED,
	DNS_ERR_POINTER,
	DNS_ERR_QDCOUNT,
	DNS_ERR_NAME,
	DNS_ERR_SPLIT,
};

/* dns_query results. */
enum dns_result {
	DNS_NOT_DNS = 0, /* no DNS list on this port: decided at L4 */
	DNS_EMPTY,	 /* a DNS port, but no message (TCP without payload): decided at L4 */
	DNS_PASS,	 /* passes: d says allow or audit */
	DNS_REFUSE,	 /* refused: d says why */
};

/* The state of one name walk (bpf_loop's context). */
struct dns_walk {
	__u32 slot;
	__u32 len;   /* bytes of the name buffer that the packet holds */
	__u32 pos;   /* index of the next label length byte */
	__u32 end;   /* index after the final zero byte, once found */
	__u32 st[2]; /* automaton states of the two lists */
	__u8 has[2]; /* which lists are walked */
	__u8 err;    /* enum dns_err */
	__u8 pad;
};

static long dns_step(__u32 i, void *ctx)
{
	struct dns_walk *w = ctx;
	__u32 zero = 0;
	struct dns_scratch *sc = bpf_map_lookup_elem(&dns_scratch, &zero);
	if (!sc || i >= w->len) {
		w->err = DNS_ERR_MALFORMED; /* the name runs past the message */
		return 1;
	}
	__u8 b = sc->buf[i & 0xff];
	if (i == w->pos) {
		if (b == 0) {
			w->end = i + 1;
			return 1;
		}
		if ((b & 0xc0) == 0xc0) {
			w->err = DNS_ERR_POINTER;
			return 1;
		}
		if (b > 63) {
			w->err = DNS_ERR_MALFORMED; /* 64 and up: no such label */
			return 1;
		}
		w->pos = i + 1 + b;
		if (i == 0)
			return 0;
		b = '.';
	} else {
		/* Printable ASCII but '.', the bytes FQDN.Matches reads as such. */
		if (b < 0x21 || b > 0x7e || b == '.') {
			w->err = DNS_ERR_NAME;
			return 1;
		}
		if (b >= 'A' && b <= 'Z')
			b += 'a' - 'A';
	}
	void *next = bpf_map_lookup_elem(&gen_dns_next, &w->slot);
	if (!next) {
		w->err = DNS_ERR_MALFORMED;
		return 1;
	}
	if (w->has[0]) {
		__u32 k = (w->st[0] << 8) | b;
		__u32 *n = bpf_map_lookup_elem(next, &k);
		if (!n) {
			w->err = DNS_ERR_MALFORMED;
			return 1;
		}
		w->st[0] = *n;
	}
	if (w->has[1]) {
		__u32 k = (w->st[1] << 8) | b;
		__u32 *n = bpf_map_lookup_elem(next, &k);
		if (!n) {
			w->err = DNS_ERR_MALFORMED;
			return 1;
		}
		w->st[1] = *n;
	}
	return 0;
}

/* What a name walk takes and gives back: the automata's states. */
struct dns_io {
	__u32 st[2];
	__u32 slot;
	__u8 has[2];
	__u8 err;
	__u8 pad;
};

/*
 * dns_name walks the name at off (msg_end: the message's end) through the
 * automata in io, and returns its wire length, or 0 with io->err set. A
 * global function: the verifier checks it (and its loop) once. The walk's
 * state is on this function's stack, as bpf_loop wants.
 */
__attribute__((noinline)) __u32 dns_name(struct __sk_buff *skb, struct dns_io *io, __u32 off, __u32 msg_end)
{
	if (!io)
		return 0;
	__u32 zero = 0;
	struct dns_scratch *sc = bpf_map_lookup_elem(&dns_scratch, &zero);
	if (!sc || off >= msg_end) {
		io->err = DNS_ERR_MALFORMED;
		return 0;
	}
	__u32 n = msg_end - off;
	if (n > 256)
		n = 256;
	if (n == 0 || bpf_skb_load_bytes(skb, off, sc->buf, n) < 0) {
		io->err = DNS_ERR_MALFORMED;
		return 0;
	}
	struct dns_walk w = {
		.slot = io->slot & 1,
		.len = n,
		.st = {io->st[0], io->st[1]},
		.has = {io->has[0], io->has[1]},
	};
	bpf_loop(DNS_NAME_WIRE_MAX, dns_step, &w, 0);
	io->st[0] = w.st[0];
	io->st[1] = w.st[1];
	if (w.err) {
		io->err = w.err;
		return 0;
	}
	if (!w.end) {
		io->err = DNS_ERR_NAME; /* longer than 255 bytes: more than 253 characters */
		return 0;
	}
	return w.end;
}

/* A side's verdict, as engine decideView returns it. */
struct dns_side {
	__u32 rule;
	__u8 verdict;
	__u8 reason;
};

/*
 * dns_view is engine.MapState.decideView for a DNS request: e are the
 * policy entries found, a the accept values of their lists (when has),
 * audit the full view.
 */
static __always_inline void dns_view(struct policy_value *e0, struct policy_value *e1,
				     struct dns_accept *a0, struct dns_accept *a1, __u8 ep_flags, __u8 dir,
				     int audit, struct dns_side *out)
{
	__u8 allow_mask = POLICY_ALLOW | (audit ? POLICY_AUDIT_ALLOW : 0);
	__u8 deny_mask = POLICY_DENY | (audit ? POLICY_AUDIT_DENY : 0);
	__u8 dd = dir == DIR_EGRESS ? EP_EGRESS_DEFAULT_DENY : EP_INGRESS_DEFAULT_DENY;
	if (audit)
		dd |= dd << 1;
	__u8 flags = 0;
	__u32 deny = 0, matched = 0, refusing = 0;
	int open = 0;

#pragma unroll
	for (int k = 0; k < 2; k++) {
		struct policy_value *e = k ? e1 : e0;
		struct dns_accept *a = k ? a1 : a0;
		if (!e)
			continue;
		__u8 f = e->flags;
		flags |= f;
		if (f & POLICY_DENY)
			deny = min_rule(deny, e->deny_rule);
		if (audit && (f & POLICY_AUDIT_DENY))
			deny = min_rule(deny, e->audit_rule);
		if (!(f & allow_mask))
			continue;
		__u32 rule = 0;
		if (f & POLICY_ALLOW)
			rule = min_rule(rule, e->allow_rule);
		if (audit && (f & POLICY_AUDIT_ALLOW))
			rule = min_rule(rule, e->audit_allow_rule);
		if (!e->l7) {
			open = 1;
			matched = min_rule(matched, rule);
		} else if (a) {
			__u32 m = audit ? a->audit_allow : a->allow;
			if (m) {
				open = 1;
				matched = min_rule(matched, m);
			}
			refusing = min_rule(refusing, audit ? a->audit_refuse : a->refuse);
		} else {
			/* A list without tables: its allow refuses every name. */
			refusing = min_rule(refusing, rule);
		}
	}
	if (flags & deny_mask) {
		out->verdict = VERDICT_DENY, out->reason = REASON_DENIED, out->rule = deny;
	} else if (flags & allow_mask) {
		if (open)
			out->verdict = VERDICT_ALLOW, out->reason = REASON_ALLOWED, out->rule = matched;
		else
			out->verdict = VERDICT_DENY, out->reason = REASON_L7_DENIED, out->rule = refusing;
	} else if (ep_flags & dd) {
		out->verdict = VERDICT_DENY, out->reason = REASON_DEFAULT_DENY, out->rule = 0;
	} else {
		out->verdict = VERDICT_ALLOW, out->reason = REASON_NOT_SELECTED, out->rule = 0;
	}
}

/* dns_side_of is engine.MapState.LookupSide from its two views. */
static __always_inline void dns_side_of(struct dns_side *enf, struct dns_side *all, struct dns_side *out)
{
	if (enf->verdict == VERDICT_DENY) {
		*out = *enf;
	} else if (all->verdict == VERDICT_DENY) {
		*out = *all;
		out->verdict = VERDICT_AUDIT;
	} else if (enf->reason == REASON_NOT_SELECTED) {
		*out = *all;
	} else {
		*out = *enf;
	}
}

/*
 * dns_restricts says whether a view restricts names: it allows only through
 * entries with L7 lists (no open allow), so a query the kernel cannot decide
 * is refused there (and audited where only the full view restricts).
 */
static __always_inline int dns_restricts(struct policy_value *e0, struct policy_value *e1, int audit)
{
	__u8 allow_mask = POLICY_ALLOW | (audit ? POLICY_AUDIT_ALLOW : 0);
	int allows = 0, open = 0;
	if (e0 && (e0->flags & allow_mask)) {
		allows = 1;
		open |= !e0->l7;
	}
	if (e1 && (e1->flags & allow_mask)) {
		allows = 1;
		open |= !e1->l7;
	}
	return allows && !open;
}

static __always_inline void dns_count_err(__u8 err)
{
	switch (err) {
	case DNS_ERR_POINTER:
		count(COUNTER_DNS_POINTER);
		break;
	case DNS_ERR_QDCOUNT:
		count(COUNTER_DNS_QDCOUNT);
		break;
	case DNS_ERR_NAME:
		count(COUNTER_DNS_NAME);
		break;
	case DNS_ERR_SPLIT:
		count(COUNTER_DNS_SPLIT);
		break;
	default:
		count(COUNTER_DNS_MALFORMED);
	}
}

/*
 * The inputs and outputs of dns_decide, in the per-CPU scratch map (the
 * programs' stacks have no room left): the policy entries found for the
 * port, copied, and the packet's L4 position.
 */
struct dns_args {
	struct policy_value e[2];
	__u32 slot;
	__u32 l4off;
	__u32 l4len;
	__u32 msg_off; /* out: the message's offset */
	__u32 q_end;   /* out: where the questions end, when all were read; else 0 */
	__u32 rule;    /* in and out, with verdict */
	__u32 start[2]; /* the lists' start states (dns_decide) */
	__u8 has_e[2];
	__u8 ep_flags;
	__u8 dir;
	__u8 proto;
	__u8 frag; /* the packet is an IP fragment */
	/* in: the L4 decision; out: the query's (unchanged when not decided) */
	__u8 verdict;
	__u8 reason;
};

_Static_assert(sizeof(struct dns_args) <= sizeof(((struct dns_scratch *)0)->args), "dns_args fits the scratch");

/*
 * dns_keep_entries copies the policy entries that decide() found for a port
 * with L7 lists into the scratch's dns_args, for dns_decide.
 */
static __always_inline void dns_keep_entries(struct policy_value *e0, struct policy_value *e1)
{
	__u32 zero = 0;
	struct dns_scratch *sc = bpf_map_lookup_elem(&dns_scratch, &zero);
	if (!sc)
		return;
	struct dns_args *a = (struct dns_args *)sc->args;
	__builtin_memset(a, 0, sizeof(*a));
	if (e0) {
		a->e[0] = *e0;
		a->has_e[0] = 1;
	}
	if (e1) {
		a->e[1] = *e1;
		a->has_e[1] = 1;
	}
}

#define DNS_JUDGE_ERR (~0ULL)

/*
 * dns_judge decides one name that ended in states st0 and st1 of the
 * lists walked (has: bit 0 and 1), as LookupSide, and returns the side
 * packed: verdict | reason << 8 | rule << 32, or DNS_JUDGE_ERR. A global
 * function, so that its branches do not multiply its caller's paths.
 */
__attribute__((noinline)) __u64 dns_judge(struct dns_args *a, __u32 st0, __u32 st1, __u32 has)
{
	if (!a)
		return DNS_JUDGE_ERR;
	__u32 slot = a->slot & 1;
	void *acc = bpf_map_lookup_elem(&gen_dns_accept, &slot);
	if (!acc)
		return DNS_JUDGE_ERR;
	struct dns_accept *a0 = 0, *a1 = 0;
	if (has & 1) {
		a0 = bpf_map_lookup_elem(acc, &st0);
		if (!a0)
			return DNS_JUDGE_ERR;
	}
	if (has & 2) {
		a1 = bpf_map_lookup_elem(acc, &st1);
		if (!a1)
			return DNS_JUDGE_ERR;
	}
	struct policy_value *e0 = a->has_e[0] ? &a->e[0] : 0;
	struct policy_value *e1 = a->has_e[1] ? &a->e[1] : 0;
	struct dns_side enf = {}, all = {}, side = {};
	dns_view(e0, e1, a0, a1, a->ep_flags, a->dir, 0, &enf);
	dns_view(e0, e1, a0, a1, a->ep_flags, a->dir, 1, &all);
	dns_side_of(&enf, &all, &side);
	return side.verdict | (__u64)side.reason << 8 | (__u64)side.rule << 32;
}

/*
 * dns_decide decides the DNS message of the packet, when the entries found
 * for its port (the L4 decision allowed) have a list with DNS rules, and
 * returns an enum dns_result. A global function: the verifier checks it
 * once, not once per path of its callers.
 */
__attribute__((noinline)) int dns_decide(struct __sk_buff *skb, struct dns_args *a)
{
	if (!a)
		return DNS_NOT_DNS;
	struct dns_io w = {.slot = a->slot & 1};
	__u32 *start = a->start;
	int dns = 0;
	start[0] = start[1] = 0;
	struct policy_value *e0 = a->has_e[0] ? &a->e[0] : 0;
	struct policy_value *e1 = a->has_e[1] ? &a->e[1] : 0;
	__u32 slot = w.slot;

	a->q_end = 0;
	if (a->proto != IPPROTO_UDP && a->proto != IPPROTO_TCP)
		return DNS_NOT_DNS;
	void *lists = bpf_map_lookup_elem(&gen_dns_lists, &slot);
	if (!lists)
		return DNS_NOT_DNS;
	if (e0 && (e0->flags & (POLICY_ALLOW | POLICY_AUDIT_ALLOW)) && e0->l7) {
		__u32 id = e0->l7;
		struct dns_list *l = bpf_map_lookup_elem(lists, &id);
		if (l) {
			w.has[0] = 1, start[0] = l->start;
			dns |= l->flags & DNS_LIST_HAS_DNS;
		}
	}
	if (e1 && (e1->flags & (POLICY_ALLOW | POLICY_AUDIT_ALLOW)) && e1->l7) {
		__u32 id = e1->l7;
		struct dns_list *l = bpf_map_lookup_elem(lists, &id);
		if (l) {
			w.has[1] = 1, start[1] = l->start;
			dns |= l->flags & DNS_LIST_HAS_DNS;
		}
	}
	if (!dns)
		return DNS_NOT_DNS;

	__u8 err = DNS_OK;
	__u32 off, end;
	__u32 l4off = a->l4off & 0xffff, l4len = a->l4len & 0xffff;
	end = l4off + l4len;
	if (a->proto == IPPROTO_UDP) {
		off = l4off + 8;
		if (a->frag)
			err = DNS_ERR_SPLIT;
	} else {
		__u8 doff;
		if (bpf_skb_load_bytes(skb, l4off + 12, &doff, 1) < 0)
			return DNS_EMPTY;
		__u32 hl = (doff >> 4) * 4;
		if (l4len <= hl)
			return DNS_EMPTY; /* no payload: the handshake, ACKs, FIN */
		off = l4off + hl;
		__u16 plen;
		if (a->frag)
			err = DNS_ERR_SPLIT;
		else if (end - off < 2 || bpf_skb_load_bytes(skb, off, &plen, 2) < 0 ||
			 bpf_ntohs(plen) != end - off - 2)
			err = DNS_ERR_SPLIT; /* not one whole message in this segment */
		off += 2;
	}
	a->msg_off = off;
	count(COUNTER_DNS_QUERIES);

	__u8 hdr[4]; /* flags and QDCOUNT */
	__u16 qd = 0;
	if (!err) {
		if (end < off + DNS_HDR_LEN || bpf_skb_load_bytes(skb, off + 2, hdr, 4) < 0)
			err = DNS_ERR_MALFORMED;
		else if (hdr[0] & 0xf8) /* QR set, or an opcode other than QUERY */
			err = DNS_ERR_MALFORMED;
		else {
			qd = ((__u16)hdr[2] << 8) | hdr[3];
			if (qd == 0 || qd > DNS_MAX_QUESTIONS)
				err = DNS_ERR_QDCOUNT;
		}
	}

	__u64 res = 0;
	int decided = 0;
	__u32 q_off = off + DNS_HDR_LEN;
	for (int q = 0; q < DNS_MAX_QUESTIONS; q++) {
		if (err || q >= qd)
			break;
		w.st[0] = start[0];
		w.st[1] = start[1];
		__u32 n = dns_name(skb, &w, q_off, end);
		if (!n) {
			err = w.err;
			break;
		}
		q_off += n + 4; /* QTYPE, QCLASS */
		if (q_off > end) {
			err = DNS_ERR_MALFORMED;
			break;
		}
		__u64 side = dns_judge(a, w.st[0], w.st[1], w.has[0] | w.has[1] << 1);
		if (side == DNS_JUDGE_ERR) {
			err = DNS_ERR_MALFORMED;
			break;
		}
		/* Several questions: the first refused decides, else the first audited. */
		__u8 sv = side & 0xff, rv = res & 0xff;
		if (!decided || (sv == VERDICT_DENY && rv != VERDICT_DENY) ||
		    (sv == VERDICT_AUDIT && rv == VERDICT_ALLOW))
			res = side;
		decided = 1;
	}

	if (!err && decided)
		a->q_end = q_off;
	if (err) {
		dns_count_err(err);
		if (dns_restricts(e0, e1, 0)) {
			a->verdict = VERDICT_DENY, a->reason = REASON_DNS_MALFORMED, a->rule = 0;
			return DNS_REFUSE;
		}
		if (dns_restricts(e0, e1, 1) && a->verdict == VERDICT_ALLOW) {
			a->verdict = VERDICT_AUDIT, a->reason = REASON_DNS_MALFORMED, a->rule = 0;
			count(COUNTER_DNS_AUDITED);
		}
		return DNS_PASS;
	}
	__u8 rv = res & 0xff;
	a->verdict = rv, a->reason = (res >> 8) & 0xff, a->rule = res >> 32;
	if (rv == VERDICT_DENY)
		return DNS_REFUSE;
	count(rv == VERDICT_AUDIT ? COUNTER_DNS_AUDITED : COUNTER_DNS_ALLOWED);
	return DNS_PASS;
}

/* TCP flags of the segments the kernel crafts. */
#define DNS_TCP_FIN 0x01
#define DNS_TCP_SYN 0x02
#define DNS_TCP_RST 0x04
#define DNS_TCP_PSH 0x08
#define DNS_TCP_ACK 0x10

/*
 * Bytes cut from a refused TCP query are summed in chunks of this size (so
 * that a chunk at an odd distance from the TCP header, one zero byte in
 * front, fits the 256-byte scratch buffer); a segment holds at most
 * 64 KiB, so DNS_TCP_CHUNKS chunks are enough.
 */
#define DNS_TCP_CHUNK 252
#define DNS_TCP_CHUNKS 264

/*
 * dns_tcp_ts_swap swaps TSval and TSecr of the timestamps option, if the
 * TCP header at t (hl bytes) has one: the crafted segment then echoes the
 * client's TSval and carries the last TSval the client saw from the
 * server, which passes the client's PAWS check. Two 32-bit words at the
 * same parity trade places, so the checksum does not change. A global
 * function: its loop is verified once, apart from its caller's paths.
 */
__attribute__((noinline)) int dns_tcp_ts_swap(struct __sk_buff *skb, __u32 t, __u32 hl)
{
	__u32 zero = 0;
	struct dns_scratch *sc = bpf_map_lookup_elem(&dns_scratch, &zero);
	if (!sc)
		return -1;
	__u8 *o = sc->buf; /* free by now: the names were walked */
	__u32 olen = hl - 20;
	if (olen < 10 || olen > 40)
		return 0;
	if (bpf_skb_load_bytes(skb, t + 20, o, olen) < 0)
		return -1;
	__u32 i = 0;
	for (int k = 0; k < 40; k++) {
		if (i + 1 >= olen)
			return 0;
		__u8 kind = o[i & 63];
		if (kind == 0) /* end of options */
			return 0;
		if (kind == 1) { /* NOP */
			i++;
			continue;
		}
		__u8 len = o[(i + 1) & 63];
		if (len < 2)
			return 0; /* malformed: leave the options as they are */
		if (kind == 8 && len == 10) {
			if (i + 10 > olen)
				return 0;
			__u8 sw[8];
			__u32 v = i + 2;
#pragma unroll
			for (int j = 0; j < 4; j++) {
				sw[j] = o[(v + 4 + j) & 63];
				sw[4 + j] = o[(v + j) & 63];
			}
			return bpf_skb_store_bytes(skb, t + 20 + v, sw, 8, 0) < 0 ? -1 : 0;
		}
		i += len;
	}
	return 0;
}

/* The state of dns_tcp_cut's loop (bpf_loop's context). */
struct dns_cut {
	struct __sk_buff *skb;
	__s64 sum;
	__u32 off;
	__u32 len;
	__u32 odd;
	__u32 err;
};

static long dns_cut_step(__u32 i, void *ctx)
{
	struct dns_cut *c = ctx;
	__u32 zero = 0;
	struct dns_scratch *sc = bpf_map_lookup_elem(&dns_scratch, &zero);
	if (!sc) {
		c->err = 1;
		return 1;
	}
	if (c->len == 0)
		return 1;
	__u8 *buf = sc->buf;
	__u32 n = c->len > DNS_TCP_CHUNK ? DNS_TCP_CHUNK : c->len;
	__u32 odd = c->odd & 1;
	int r;
	if (odd) {
		buf[0] = 0;
		r = bpf_skb_load_bytes(c->skb, c->off, buf + 1, n);
	} else {
		r = bpf_skb_load_bytes(c->skb, c->off, buf, n);
	}
	if (r < 0) {
		c->err = 1;
		return 1;
	}
	__u32 m = n + odd;
	buf[m & 0xff] = 0;
	buf[(m + 1) & 0xff] = 0;
	buf[(m + 2) & 0xff] = 0;
	__s64 sum = bpf_csum_diff((__be32 *)buf, (m + 3) & 0x1fc, 0, 0, c->sum);
	if (sum < 0) {
		c->err = 1;
		return 1;
	}
	c->sum = sum;
	c->off += n;
	c->len -= n;
	return 0;
}

/*
 * dns_tcp_cut cuts the client's TCP segment (a: its TCP header and length)
 * after nl bytes of payload: the bytes cut leave the TCP checksum (summed
 * in a bpf_loop; they start at an odd distance from the TCP header when nl
 * is odd, and then get a zero in front, so that each keeps its place in
 * the 16-bit words; zeros pad a chunk to 4 bytes), the IP length and the
 * pseudo header's TCP length are fixed, and the packet trimmed. Returns 0
 * or -1. A global function apart from dns_tcp_answer, so that neither
 * call chain's stack passes the limit.
 */
__attribute__((noinline)) int dns_tcp_cut(struct __sk_buff *skb, struct dns_args *a, __u32 nl)
{
	if (!a)
		return -1;
	__u32 t = a->l4off & 0xffff, l4len = a->l4len & 0xffff;
	__u8 doff;
	if (bpf_skb_load_bytes(skb, t + 12, &doff, 1) < 0)
		return -1;
	__u32 hl = (doff >> 4) * 4;
	if (l4len < hl + nl)
		return -1;
	__u32 cut = l4len - hl - nl;
	if (!cut)
		return 0;
	struct dns_cut c = {.skb = skb, .off = t + hl + nl, .len = cut, .odd = nl & 1};
	bpf_loop(DNS_TCP_CHUNKS, dns_cut_step, &c, 0);
	if (c.err || c.len)
		return -1;

	__u8 ver;
	if (bpf_skb_load_bytes(skb, ETH_HLEN, &ver, 1) < 0)
		return -1;
	__u16 olen, nlen;
	if ((ver >> 4) == 4) {
		if (bpf_skb_load_bytes(skb, ETH_HLEN + 2, &olen, 2) < 0 || bpf_ntohs(olen) <= cut)
			return -1;
		nlen = bpf_htons(bpf_ntohs(olen) - cut);
		if (bpf_l3_csum_replace(skb, ETH_HLEN + 10, olen, nlen, 2) < 0 ||
		    bpf_skb_store_bytes(skb, ETH_HLEN + 2, &nlen, 2, 0) < 0)
			return -1;
	} else {
		if (bpf_skb_load_bytes(skb, ETH_HLEN + 4, &olen, 2) < 0 || bpf_ntohs(olen) <= cut)
			return -1;
		nlen = bpf_htons(bpf_ntohs(olen) - cut);
		if (bpf_skb_store_bytes(skb, ETH_HLEN + 4, &nlen, 2, 0) < 0)
			return -1;
	}
	/* c.sum is what the cut bytes take away; the length is the pseudo header's. */
	if (bpf_l4_csum_replace(skb, t + 16, 0, c.sum, 0) < 0 ||
	    bpf_l4_csum_replace(skb, t + 16, bpf_htons(l4len), bpf_htons(l4len - cut), BPF_F_PSEUDO_HDR | 2) < 0)
		return -1;
	if (bpf_skb_change_tail(skb, t + hl + nl, 0) < 0)
		return -1;
	return 0;
}

/*
 * dns_tcp_answer turns the client's TCP segment that carries a refused
 * query (the TCP header at a->l4off, a->l4len bytes to the end of the IP
 * payload) into the server's last segment toward the client: seq = the
 * segment's ack, ack = its seq + payload length (+1 for a FIN), flags
 * ACK|PSH|FIN, the timestamps swapped, the urgent pointer cleared, and the
 * payload a DNS response of the query: the 2-byte length prefix, the
 * query's header with QR and RA set, AA and TC cleared, RCODE rcode,
 * ANCOUNT, NSCOUNT and ARCOUNT 0, then the questions as sent (when the
 * parser read them all: a->q_end; else none, QDCOUNT 0). A segment that
 * does not hold one whole message with a header has nothing to answer: it
 * becomes a reset (RST|ACK), so that the client fails at once instead of
 * retransmitting into a drop. It returns the payload length to keep (what
 * follows, such as an EDNS0 OPT record, is cut by dns_tcp_cut; a reset
 * keeps none), or -1 when the segment cannot be turned (it is dropped): an
 * IP fragment, a SYN (data in a SYN: TCP Fast Open), a RST, no ACK, a
 * failed helper. Addresses and ports are left to the caller (swapping them
 * changes no checksum).
 *
 * The TCP checksum is fixed incrementally (bpf_l4_csum_replace): for a
 * segment whose checksum the stack has left to the device
 * (CHECKSUM_PARTIAL, as a local socket's on a veth) the kernel updates
 * only the pseudo header's part, for a complete checksum all of it.
 */
__attribute__((noinline)) int dns_tcp_answer(struct __sk_buff *skb, struct dns_args *a, __u32 rcode)
{
	if (!a || a->frag)
		return -1;
	__u32 t = a->l4off & 0xffff, l4len = a->l4len & 0xffff;
	__u8 th[20];
	if (bpf_skb_load_bytes(skb, t, th, 20) < 0)
		return -1;
	__u32 hl = (th[12] >> 4) * 4;
	if (hl < 20 || l4len <= hl)
		return -1;
	if ((th[13] & (DNS_TCP_SYN | DNS_TCP_RST)) || !(th[13] & DNS_TCP_ACK))
		return -1;
	__u32 pl = l4len - hl; /* the query's payload */
	__u32 p = t + hl;

	/* The payload's first 16 bytes: length prefix, header, 2 more. */
	__u8 old[16] = {}, neu[16] = {};
	__u32 nl = 0; /* the answer's payload; 0: a reset */
	__s64 sum = 0;
	if (pl >= 2 + DNS_HDR_LEN) {
		int r = pl >= 16 ? bpf_skb_load_bytes(skb, p, old, 16) : bpf_skb_load_bytes(skb, p, old, 14);
		if (r < 0)
			return -1;
		__u32 ml = ((__u32)old[0] << 8) | old[1];
		if (ml == pl - 2) {
			__u32 qs = p + 2 + DNS_HDR_LEN, qe = a->q_end, qlen = 0;
			if (qe > qs && qe <= p + pl)
				qlen = qe - qs;
			nl = 2 + DNS_HDR_LEN + qlen;
			__builtin_memcpy(neu, old, 16);
			neu[0] = (nl - 2) >> 8;
			neu[1] = nl - 2;
			neu[4] = (old[4] | 0x80) & ~0x06;
			neu[5] = 0x80 | (rcode & 0xf);
			if (!qlen)
				neu[6] = neu[7] = 0;
			__builtin_memset(neu + 8, 0, 6);
			sum = bpf_csum_diff((__be32 *)old, 16, (__be32 *)neu, 16, 0);
			if (sum < 0 || bpf_skb_store_bytes(skb, p, neu, 14, 0) < 0)
				return -1;
		}
	}

	/* seq, ack, flags and the urgent pointer: bytes 4 to 19 (the checksum kept). */
	__u8 *nh = old; /* reused: the payload's bytes are stored */
	__u32 seq = ((__u32)th[4] << 24) | ((__u32)th[5] << 16) | ((__u32)th[6] << 8) | th[7];
	seq += pl + (th[13] & DNS_TCP_FIN ? 1 : 0);
	__builtin_memcpy(nh, th + 8, 4);
	nh[4] = seq >> 24;
	nh[5] = seq >> 16;
	nh[6] = seq >> 8;
	nh[7] = seq;
	__builtin_memcpy(nh + 8, th + 12, 8);
	nh[9] = nl ? DNS_TCP_ACK | DNS_TCP_PSH | DNS_TCP_FIN : DNS_TCP_RST | DNS_TCP_ACK;
	nh[14] = nh[15] = 0;
	sum = bpf_csum_diff((__be32 *)(th + 4), 16, (__be32 *)nh, 16, sum);
	if (sum < 0 || bpf_skb_store_bytes(skb, t + 4, nh, 16, 0) < 0)
		return -1;
	if (dns_tcp_ts_swap(skb, t, hl) < 0)
		return -1;
	if (bpf_l4_csum_replace(skb, t + 16, 0, sum, 0) < 0)
		return -1;
	return nl;
}

/*
 * dns_answer turns a refused query into its answer and sends it back where
 * it came from. UDP: QR set, AA and TC cleared, RA set, RCODE REFUSED (or
 * the configured one), the UDP checksum fixed for the flags word; the
 * question and any EDNS0 OPT record are echoed as sent. TCP: the segment
 * becomes the server's answer and FIN (dns_tcp_answer). Both: Ethernet and
 * IP addresses and ports swapped (which changes no checksum).
 *
 * The way back is where the packet came from, whichever side (dir) was
 * decided: a query received on this interface (TCX ingress: the host side
 * of a workload's veth, or a host interface's ingress) is answered out of
 * it; one that leaves through it (TCX egress: sent by the host, or
 * forwarded from another interface) is answered into it, as if received
 * there.
 */
static __always_inline int dns_answer(struct __sk_buff *skb, struct pkt *p, __u8 dir)
{
	__u32 zero = 0;
	struct dns_scratch *sc = bpf_map_lookup_elem(&dns_scratch, &zero);
	if (!sc)
		return -1;
	struct dns_args *args = (struct dns_args *)sc->args;
	__u32 msg_off = args->msg_off & 0xffff;
	__u8 rcode = DNS_RCODE_REFUSED;
	struct dns_config *cfg = bpf_map_lookup_elem(&dns_settings, &zero);
	if (cfg && cfg->rcode)
		rcode = cfg->rcode & 0xf;

	if (p->proto == IPPROTO_TCP) {
		int nl = dns_tcp_answer(skb, args, rcode);
		if (nl < 0 || dns_tcp_cut(skb, args, nl) < 0)
			return -1;
	} else {
		__u8 fl[2];
		if (bpf_skb_load_bytes(skb, msg_off + 2, fl, 2) < 0)
			return -1;
		__u8 nf[2] = {(fl[0] | 0x80) & ~0x06, 0x80 | rcode};
		__u16 o16, n16;
		__builtin_memcpy(&o16, fl, 2);
		__builtin_memcpy(&n16, nf, 2);
		if (bpf_skb_store_bytes(skb, msg_off + 2, nf, 2, 0) < 0)
			return -1;
		if (bpf_l4_csum_replace(skb, p->l4off + 6, o16, n16, sizeof(__u16) | BPF_F_MARK_MANGLED_0) < 0)
			return -1;
	}

	__u8 eth[12], sw[12];
	if (bpf_skb_load_bytes(skb, 0, eth, 12) < 0)
		return -1;
	__builtin_memcpy(sw, eth + 6, 6);
	__builtin_memcpy(sw + 6, eth, 6);
	if (bpf_skb_store_bytes(skb, 0, sw, 12, 0) < 0)
		return -1;
	if (p->family == AF_INET4) {
		if (bpf_skb_store_bytes(skb, ETH_HLEN + 12, p->daddr, 4, 0) < 0 ||
		    bpf_skb_store_bytes(skb, ETH_HLEN + 16, p->saddr, 4, 0) < 0)
			return -1;
	} else {
		if (bpf_skb_store_bytes(skb, ETH_HLEN + 8, p->daddr, 16, 0) < 0 ||
		    bpf_skb_store_bytes(skb, ETH_HLEN + 24, p->saddr, 16, 0) < 0)
			return -1;
	}
	__u16 ports[2] = {bpf_htons(p->dport), bpf_htons(p->sport)};
	if (bpf_skb_store_bytes(skb, p->l4off, ports, 4, 0) < 0)
		return -1;
	count(COUNTER_DNS_ANSWERED);
	return bpf_redirect(skb->ifindex, skb->ingress_ifindex == skb->ifindex ? 0 : BPF_F_INGRESS);
}

#endif /* PALISADE_DNS_H */
