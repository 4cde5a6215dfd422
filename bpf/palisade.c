//go:build ignore

// SPDX-License-Identifier: (GPL-2.0-only OR Apache-2.0)
/* Copyright 2026 The Palisade Authors. */

/*
 * Palisade's L3/L4 policy enforcement for TC (TCX) hooks.
 *
 * palisade_from_workload decides a packet as the egress of its source,
 * palisade_to_workload as the ingress of its destination; on the host side
 * of a workload's veth, TCX ingress runs from_workload and TCX egress runs
 * to_workload. palisade_from_endpoint and palisade_to_endpoint do the same
 * on a host interface, where TCX ingress runs to_endpoint and TCX egress
 * from_endpoint.
 *
 * The two pairs differ only when a packet's local address (source on
 * egress, destination on ingress) has no endpoint entry, or there is no
 * generation to decide by. On a host interface most addresses are no
 * workload's, and such a packet passes (not enforced). On a workload's
 * interface the workload's own address must have an entry, so the
 * programs fail closed: the packet is dropped and reported, unless its
 * local address can never be a workload's own (never_own).
 *
 * A packet is decided as engine.MapState.LookupSide says (see
 * internal/engine/lookup.go): enforcement point by address, peer identity
 * by longest prefix, policy probes (peer identity, any, and for a peer
 * outside the cluster every-world and, on egress, its toFQDNs selector
 * identities), flags ORed, then the enforced view and the full (audit)
 * view of decide(). Replies of
 * connections that a side allowed (or audited) pass that side through
 * conntrack. Allowed packets return TC_ACT_UNSPEC (TCX_NEXT: the next
 * program on the hook, e.g. a chained CNI's, still runs); denied packets
 * TC_ACT_SHOT.
 */
#include <linux/pkt_cls.h>

#include "palisade.h"
#include "maps.h"
#include "parse.h"

char LICENSE[] SEC("license") = "GPL";

#define IDENTITY_WORLD 2

#define NSEC 1000000000ULL
#define CT_TIMEOUT_TCP_SYN (60 * NSEC)
#define CT_TIMEOUT_TCP_ESTABLISHED (21600 * NSEC)
#define CT_TIMEOUT_TCP_CLOSE (10 * NSEC)
#define CT_TIMEOUT_OTHER (60 * NSEC)
/* An entry's deadline is rewritten only when it moves by more than this. */
#define CT_REFRESH_SLACK NSEC

#define TCP_FIN 0x01
#define TCP_RST 0x04

#define READ_ONCE_U32(x) (*(volatile __u32 *)&(x))

struct state {
	void *endpoints;
	void *ipcache;
	void *ipcache_lpm;
	void *policy;
	void *policy_lpm;
	__u64 generation;
	__u32 slot;
};

struct decision {
	__u32 rule;
	__u8 verdict;
	__u8 reason;
	__u8 l7;
};

/*
 * load_slot reads the active slot, once per packet, and the generation it
 * holds; load_maps then takes every map of that slot, so a packet sees one
 * generation whole.
 */
static __always_inline int load_slot(struct state *s)
{
	__u32 zero = 0;
	struct active_slot *a = bpf_map_lookup_elem(&active, &zero);
	if (!a)
		return -1;
	__u32 slot = READ_ONCE_U32(a->slot) & 1;
	__u64 *g = bpf_map_lookup_elem(&generations, &slot);
	if (!g)
		return -1;
	s->slot = slot;
	s->generation = *g;
	return 0;
}

static __always_inline int load_maps(struct state *s)
{
	__u32 slot = s->slot;

	s->endpoints = bpf_map_lookup_elem(&gen_endpoints, &slot);
	s->ipcache = bpf_map_lookup_elem(&gen_ipcache, &slot);
	s->ipcache_lpm = bpf_map_lookup_elem(&gen_ipcache_lpm, &slot);
	s->policy = bpf_map_lookup_elem(&gen_policy, &slot);
	s->policy_lpm = bpf_map_lookup_elem(&gen_policy_lpm, &slot);
	if (!s->endpoints || !s->ipcache || !s->ipcache_lpm || !s->policy || !s->policy_lpm)
		return -1;
	return 0;
}

static __always_inline __u32 lookup_identity(struct state *s, __u8 family, const __u8 *addr)
{
	struct addr_key k = {.family = family};
	__builtin_memcpy(k.addr, addr, 16);
	struct ipcache_value *v = bpf_map_lookup_elem(s->ipcache, &k);
	if (v)
		return v->identity;

	struct ipcache_lpm_key lk = {
		.prefixlen = 32 + (family == AF_INET4 ? 32 : 128),
		.family = family,
	};
	__builtin_memcpy(lk.addr, addr, 16);
	v = bpf_map_lookup_elem(s->ipcache_lpm, &lk);
	if (v)
		return v->identity;
	return IDENTITY_WORLD;
}

/*
 * probe finds the policy entry of one identity: exact hash first, then LPM
 * (entries of one identity never overlap, so a hash hit is the entry); the
 * endpoint's hints skip lookups that cannot hit.
 */
static __always_inline struct policy_value *probe(struct state *s, __u32 policy_id, __u8 dir,
						  __u32 identity, __u8 proto, __u16 port, int hash,
						  int lpm)
{
	struct policy_value *v;
	if (hash) {
		struct policy_key k = {
			.policy_id = policy_id,
			.identity = identity,
			.direction = dir,
			.proto = proto,
			.port = port,
		};
		v = bpf_map_lookup_elem(s->policy, &k);
		if (v)
			return v;
	}
	if (!lpm)
		return 0;

	struct policy_lpm_key lk = {
		.prefixlen = POLICY_LPM_FIXED_BITS + 24,
		.policy_id = bpf_htonl(policy_id),
		.identity = bpf_htonl(identity),
		.direction = dir,
		.proto = proto,
		.port = bpf_htons(port),
	};
	return bpf_map_lookup_elem(s->policy_lpm, &lk);
}

static __always_inline __u32 min_rule(__u32 a, __u32 b)
{
	return (a == 0 || (b != 0 && b < a)) ? b : a;
}

/*
 * A connection's key: IPv4 connections are in conntrack4 under a 16-byte
 * key (which the kernel hashes and compares in about half the time of the
 * 40 bytes of ct_key: it is the largest cost of the fast path), IPv6 ones
 * in conntrack.
 */
union ct_any {
	struct ct_key k6;
	struct ct4_key k4;
};

/*
 * ct_key_set writes the key of the connection from saddr, sport to daddr,
 * dport on side dir, every byte of the family's variant.
 */
static __always_inline void ct_key_set(union ct_any *k, __u8 family, const __u8 *saddr,
				       const __u8 *daddr, __u16 sport, __u16 dport, __u8 proto,
				       __u8 dir)
{
	/* Addresses are at least 4-aligned (struct pkt): word moves, not byte moves. */
	saddr = __builtin_assume_aligned(saddr, 4);
	daddr = __builtin_assume_aligned(daddr, 4);
	if (family == AF_INET4) {
		struct ct4_key k4 = {.sport = sport, .dport = dport, .proto = proto, .direction = dir};
		__builtin_memcpy(&k4.saddr, saddr, 4);
		__builtin_memcpy(&k4.daddr, daddr, 4);
		k->k4 = k4;
		return;
	}
	struct ct_key *k6 = __builtin_assume_aligned(&k->k6, 4);
	__builtin_memcpy(k6->saddr, saddr, 16);
	__builtin_memcpy(k6->daddr, daddr, 16);
	k6->sport = sport;
	k6->dport = dport;
	k6->proto = proto;
	k6->family = family;
	k6->direction = dir;
	k6->pad = 0;
}

/*
 * The empty asm keeps the two lookups apart: merged into one call on a
 * chosen map, the verifier could no longer inline either (a call site
 * that sees two maps goes through the map's ops, an indirect call).
 */
static __always_inline struct ct_value *ct_lookup(union ct_any *k, __u8 family)
{
	struct ct_value *v;
	if (family == AF_INET4) {
		v = bpf_map_lookup_elem(&conntrack4, &k->k4);
		asm volatile("" : "+r"(v));
		return v;
	}
	return bpf_map_lookup_elem(&conntrack, &k->k6);
}

static __always_inline void ct_update(union ct_any *k, __u8 family, struct ct_value *v)
{
	if (family == AF_INET4)
		bpf_map_update_elem(&conntrack4, &k->k4, v, BPF_ANY);
	else
		bpf_map_update_elem(&conntrack, &k->k6, v, BPF_ANY);
}

static __always_inline void ct_delete(union ct_any *k, __u8 family)
{
	if (family == AF_INET4)
		bpf_map_delete_elem(&conntrack4, &k->k4);
	else
		bpf_map_delete_elem(&conntrack, &k->k6);
}

/*
 * A packet's fields and its conntrack key, per CPU: the programs' stack
 * has no room for them beside the DNS functions' frames. Pinned like every
 * map; it holds nothing between packets.
 */
struct pkt_scratch {
	struct pkt p;
	union ct_any ck;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct pkt_scratch);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} pkt_scratch SEC(".maps");

#include "dns.h"

/* gather ORs one policy entry into the decision's inputs; a rule counts only under its flag. */
struct gathered {
	__u32 allow, deny, audit_deny, audit_allow;
	__u8 flags;
	__u8 l7;
};

static __always_inline void gather(struct gathered *g, struct policy_value *v)
{
	if (!v)
		return;
	__u8 f = v->flags;
	g->flags |= f;
	if (f & POLICY_DENY)
		g->deny = min_rule(g->deny, v->deny_rule);
	if (f & POLICY_ALLOW)
		g->allow = min_rule(g->allow, v->allow_rule);
	if (f & POLICY_AUDIT_DENY)
		g->audit_deny = min_rule(g->audit_deny, v->audit_rule);
	if (f & POLICY_AUDIT_ALLOW)
		g->audit_allow = min_rule(g->audit_allow, v->audit_allow_rule);
	if ((f & (POLICY_ALLOW | POLICY_AUDIT_ALLOW)) && v->l7)
		g->l7 = 1;
}

#include "fqdn.h"


/*
 * world_peer is engine.WorldPeer (and FQDNEligible): a peer outside the
 * cluster, world, kube-apiserver or node-local. Such a peer is decided with
 * the entries of IDENTITY_ALL_WORLD too (engine.IdentityAllWorld), where
 * the rules that select every world address are written once.
 */
#define IDENTITY_ALL_WORLD 5
#define IDENTITY_KUBE_APISERVER 7
#define MIN_LOCAL_IDENTITY (1U << 24)

static __always_inline int world_peer(__u32 id)
{
	return id == IDENTITY_WORLD || id == IDENTITY_KUBE_APISERVER || id >= MIN_LOCAL_IDENTITY;
}

/*
 * dns_keep_world adds the every-world entry to the entries kept for the DNS
 * rules (dns_keep_entries keeps two). The engine writes no L7 list under
 * IDENTITY_ALL_WORLD (a rule with L7 rules is written under each world
 * identity instead), so the entry folds exactly into a kept entry without
 * a list (flags ORed, lowest rule of each kind): both allow every request
 * of their rules. When both kept entries have lists it is not kept; see
 * docs/datapath.md.
 */
static __always_inline void dns_keep_world(struct policy_value *w)
{
	__u32 zero = 0;
	struct dns_scratch *sc = bpf_map_lookup_elem(&dns_scratch, &zero);
	if (!sc)
		return;
	struct dns_args *a = (struct dns_args *)sc->args;
	struct policy_value *t;
	if (!a->has_e[0] || !a->e[0].l7) {
		t = &a->e[0];
		if (!a->has_e[0]) {
			*t = *w;
			a->has_e[0] = 1;
			return;
		}
	} else if (!a->has_e[1] || !a->e[1].l7) {
		t = &a->e[1];
		if (!a->has_e[1]) {
			*t = *w;
			a->has_e[1] = 1;
			return;
		}
	} else {
		return;
	}
	t->flags |= w->flags;
	t->allow_rule = min_rule(t->allow_rule, w->allow_rule);
	t->deny_rule = min_rule(t->deny_rule, w->deny_rule);
	t->audit_rule = min_rule(t->audit_rule, w->audit_rule);
	t->audit_allow_rule = min_rule(t->audit_allow_rule, w->audit_allow_rule);
}

/*
 * world_gather folds the entry of IDENTITY_ALL_WORLD, where the engine
 * writes the rules that select every world address, into out, and into the
 * entries kept for the DNS rules when out has an L7 list (which comes from
 * the peer's and the any entries: the engine writes none under
 * IDENTITY_ALL_WORLD). dpp is dir << 24 | proto << 16 | port. A global
 * function, like fqdn_gather: its keys stay off the programs' frame, whose
 * calls into the DNS and FQDN functions are at the verifier's stack bound.
 */
__attribute__((noinline)) int world_gather(__u32 slot, __u32 policy_id, __u32 dpp, struct gathered *out)
{
	if (!out)
		return 0;
	slot &= 1;
	struct state s = {};
	s.policy = bpf_map_lookup_elem(&gen_policy, &slot);
	s.policy_lpm = bpf_map_lookup_elem(&gen_policy_lpm, &slot);
	if (!s.policy || !s.policy_lpm)
		return 0;
	struct policy_value *ew = probe(&s, policy_id, dpp >> 24, IDENTITY_ALL_WORLD, dpp >> 16, dpp, 1, 1);
	if (!ew)
		return 0;
	gather(out, ew);
	if (out->l7)
		dns_keep_world(ew);
	return 1;
}

/*
 * decide is engine.MapState.LookupSide for an enforced endpoint and no L7
 * request: the enforced view (deny, else allow, else default deny, else not
 * selected) and, when it allows, the full view with the audit flags, whose
 * deny makes the verdict audit. Entries with an L7 list are decided at L4
 * (the L7 proxy matches requests); d->l7 says so.
 */
static __always_inline void decide(struct state *s, struct endpoint_value *ep, __u8 dir, __u32 peer,
				   struct pkt *p, struct decision *d)
{
	struct gathered g = {};

	__u8 hints = dir == DIR_EGRESS ? ep->hints >> EP_HINT_EGRESS_SHIFT : ep->hints;

	struct policy_value *e0 = probe(s, ep->policy_id, dir, peer, p->proto, p->port, 1,
					!(hints & EP_HINT_NO_PEER_LPM));
	gather(&g, e0);
	struct policy_value *e1 = probe(s, ep->policy_id, dir, 0, p->proto, p->port,
					!(hints & EP_HINT_NO_ANY_HASH), !(hints & EP_HINT_NO_ANY_LPM));
	gather(&g, e1);
	if (g.l7)
		dns_keep_entries(e0, e1);
	if (world_peer(peer) && !(hints & EP_HINT_NO_ALL_WORLD))
		world_gather(s->slot, ep->policy_id, (__u32)dir << 24 | (__u32)p->proto << 16 | p->port, &g);
	/*
	 * toFQDNs: the selector identities of the names learned for the peer
	 * (egress only, and only for peers outside the cluster). Their entries
	 * fold as the ones above; an L7 list of theirs is decided at L4.
	 */
	if (dir == DIR_EGRESS && world_peer(peer))
		fqdn_gather(s->slot, ep->policy_id, (__u32)p->proto << 16 | p->port, !(hints & EP_HINT_NO_PEER_LPM), &g);

	__u8 dd = dir == DIR_EGRESS ? EP_EGRESS_DEFAULT_DENY : EP_INGRESS_DEFAULT_DENY;
	__u8 da = dir == DIR_EGRESS ? EP_EGRESS_DEFAULT_AUDIT : EP_INGRESS_DEFAULT_AUDIT;

	d->l7 = g.l7;
	if (g.flags & POLICY_DENY) {
		d->verdict = VERDICT_DENY, d->reason = REASON_DENIED, d->rule = g.deny;
	} else if (!(g.flags & POLICY_ALLOW) && (ep->flags & dd)) {
		d->verdict = VERDICT_DENY, d->reason = REASON_DEFAULT_DENY, d->rule = 0;
	} else if (g.flags & POLICY_AUDIT_DENY) {
		/* The enforced view allows; the full view denies. */
		d->verdict = VERDICT_AUDIT, d->reason = REASON_DENIED, d->rule = g.audit_deny;
	} else if (g.flags & POLICY_ALLOW) {
		d->verdict = VERDICT_ALLOW, d->reason = REASON_ALLOWED, d->rule = g.allow;
	} else if (g.flags & POLICY_AUDIT_ALLOW) {
		/* No enforcing policy selects; an audit-mode allow is reported. */
		d->verdict = VERDICT_ALLOW, d->reason = REASON_ALLOWED, d->rule = g.audit_allow;
	} else if (ep->flags & da) {
		d->verdict = VERDICT_AUDIT, d->reason = REASON_DEFAULT_DENY, d->rule = 0;
	} else {
		d->verdict = VERDICT_ALLOW, d->reason = REASON_NOT_SELECTED, d->rule = 0;
	}
	if (d->verdict == VERDICT_DENY)
		d->l7 = 0;
}

/*
 * A reader is woken when the unread data crosses EVENTS_WAKEUP_BYTES, not
 * for every event: a wakeup is an irq_work (a self-IPI, dear in a VM) on
 * the packet's path. The reader polls too (internal/datapath/events.go,
 * eventsPoll), so events below the mark wait for at most its period.
 * Crossing is a window of two records, since another CPU may submit in
 * between; one missed is caught by the poll.
 */
#define EVENTS_WAKEUP_BYTES (64 * 1024)
#define EVENTS_RECORD_BYTES (sizeof(struct verdict_event) + 8) /* with the ring's record header */

static __always_inline __u64 events_wakeup(void)
{
	__u64 unread = bpf_ringbuf_query(&events, BPF_RB_AVAIL_DATA);
	if (unread >= EVENTS_WAKEUP_BYTES && unread < EVENTS_WAKEUP_BYTES + 2 * EVENTS_RECORD_BYTES)
		return BPF_RB_FORCE_WAKEUP;
	return BPF_RB_NO_WAKEUP;
}

/*
 * emit writes a verdict event to the ring buffer. A full ring buffer loses
 * the event, never silently: COUNTER_EVENTS_LOST and the verdict's own
 * lost counter count it; COUNTER_EVENTS_SENT counts those written, so that
 * a reader can tell the kernel's losses from its own.
 */
static __always_inline void emit(struct __sk_buff *skb, __u64 generation, struct pkt *p, __u8 dir,
				 __u32 local_id, __u32 peer_id, __u8 verdict, __u8 reason, __u32 rule,
				 __u8 flags)
{
	struct verdict_event *e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (!e) {
		count(COUNTER_EVENTS_LOST);
		count(verdict == VERDICT_DENY	 ? COUNTER_EVENTS_LOST_DENY
		      : verdict == VERDICT_AUDIT ? COUNTER_EVENTS_LOST_AUDIT
						 : COUNTER_EVENTS_LOST_ALLOW);
		return;
	}
	e->hdr.type = EVENT_TYPE_VERDICT;
	e->hdr.version = VERDICT_EVENT_VERSION;
	e->hdr.len = sizeof(*e);
	e->hdr.pad = 0;
	e->hdr.time = bpf_ktime_get_boot_ns();
	e->generation = generation;
	e->ifindex = skb->ifindex;
	e->local_identity = local_id;
	e->peer_identity = peer_id;
	e->rule = rule;
	__builtin_memcpy(e->saddr, p->saddr, 16);
	__builtin_memcpy(e->daddr, p->daddr, 16);
	e->sport = p->sport;
	e->dport = p->dport;
	e->port = p->port;
	e->family = p->family;
	e->proto = p->proto;
	e->direction = dir;
	e->verdict = verdict;
	e->reason = reason;
	e->flags = flags;
	e->tcp_flags = p->proto == IPPROTO_TCP ? p->tcp_flags : 0;
	e->pad[0] = 0;
	e->pad[1] = 0;
	e->pad[2] = 0;
	bpf_ringbuf_submit(e, events_wakeup());
	count(COUNTER_EVENTS_SENT);
}

/*
 * events_allowed says whether every allowed packet is reported (tracing,
 * tests), not only the first of each connection.
 */
static __always_inline int events_allowed(void)
{
	__u32 zero = 0;
	struct runtime_settings *st = bpf_map_lookup_elem(&settings, &zero);
	return st && (st->events & EVENTS_ALLOWED);
}

static __always_inline __u64 ct_timeout(__u8 proto, __u8 flags)
{
	if (proto != IPPROTO_TCP)
		return CT_TIMEOUT_OTHER;
	if (flags & CT_CLOSING)
		return CT_TIMEOUT_TCP_CLOSE;
	if (flags & CT_SEEN_REPLY)
		return CT_TIMEOUT_TCP_ESTABLISHED;
	return CT_TIMEOUT_TCP_SYN;
}

/* ct_touch records a packet of a tracked connection; reply says which way. */
static __always_inline void ct_touch(struct ct_value *ct, struct pkt *p, __u64 now, int reply)
{
	__u8 flags = ct->flags;
	if (reply)
		flags |= CT_SEEN_REPLY;
	if (p->proto == IPPROTO_TCP && (p->tcp_flags & (TCP_FIN | TCP_RST)))
		flags |= CT_CLOSING;
	__u64 expires = now + ct_timeout(p->proto, flags);
	if (flags != ct->flags) {
		ct->flags = flags;
		ct->expires = expires;
	} else if (expires > ct->expires + CT_REFRESH_SLACK) {
		ct->expires = expires;
	}
}

/*
 * The flow cache (docs/datapath.md, "The flow cache"): a per-CPU,
 * direct-mapped array in front of conntrack4 for the fast path. A slot
 * holds what the fast path would do with a packet of one connection
 * without writing its entry: pass it, as an allow of generation
 * `generation` without an L7 list, until `until`. ct_touch rewrites a
 * deadline only when it moves by more than CT_REFRESH_SLACK, so an entry
 * whose deadline was last written at t needs no write before t + slack
 * (fc_until), and a slot answers for at most CT_REFRESH_SLACK after it
 * was written. `until` is in jiffies, which the verifier inlines as one
 * load where the coarse clock is a helper call (about 13 ns, the largest
 * cost left on the path): a slot written at jiffy j with a window of W ns
 * answers up to jiffy j + W / FC_TICK_MAX_NS - 1, so with ticks of at
 * most FC_TICK_MAX_NS (HZ >= 100) it never answers past the window, one
 * tick of skew between the two clocks included (with HZ = 1000 it answers
 * for a tenth of it, and conntrack4 refills it). The slot's key is
 * compared whole: a slot taken by another connection is a miss, never the
 * other connection's verdict.
 * FIN and RST go to conntrack4 (ct_touch marks the entry closing), and so
 * does every packet of another generation, IPv6, fragments and events
 * for every allowed packet.
 *
 * fc_seed keys the slot's hash, so that nobody outside can aim
 * connections at one slot; the agent sets it at load (read-only data: the
 * JIT sees a constant). fc_off turns the cache off, for benchmarks that
 * measure with and without it in one run.
 */
const volatile __u64 fc_seed = 0;
const volatile __u32 fc_off = 0;

/* The longest tick: HZ is at least 100. */
#define FC_TICK_MAX_NS (NSEC / 100)

/* fc_slot returns k's slot and k as two words. k is 8-aligned (pkt_scratch). */
static __always_inline struct flow_cache_entry *fc_slot(const struct ct4_key *k, __u64 *w0, __u64 *w1)
{
	const __u8 *b = __builtin_assume_aligned(k, 8);
	__builtin_memcpy(w0, b, 8);
	__builtin_memcpy(w1, b + 8, 8);
	__u64 h = ((*w0 ^ fc_seed) * 0x9e3779b97f4a7c15ULL ^ *w1) * 0xbf58476d1ce4e5b9ULL;
	__u32 i = h >> (64 - FLOW_CACHE_BITS);
	return bpf_map_lookup_elem(&flow_cache, &i);
}

/*
 * fc_until is when ct's entry may next need a write by a packet that
 * changes none of its flags: ct_touch writes when now + timeout > expires
 * + slack. Capped at now + slack (an entry written otherwise, by the agent).
 */
static __always_inline __u64 fc_until(const struct ct_value *ct, __u8 proto, __u64 now)
{
	__u64 t = ct_timeout(proto, ct->flags);
	__u64 e = ct->expires + CT_REFRESH_SLACK;
	if (e < t)
		return 0;
	e -= t;
	return e < now + CT_REFRESH_SLACK ? e : now + CT_REFRESH_SLACK;
}

/* fc_answers says whether slot e passes packet p of the connection w0, w1 now. */
static __always_inline int fc_answers(const struct flow_cache_entry *e, __u64 w0, __u64 w1, __u32 gen,
				      const struct pkt *p)
{
	return e->generation == gen && e->key[0] == w0 && e->key[1] == w1 && bpf_jiffies64() <= e->until &&
	       !(p->proto == IPPROTO_TCP && (p->tcp_flags & (TCP_FIN | TCP_RST)));
}

/* fc_fill writes slot e: the connection w0, w1 passes until (coarse-clock ns; now is that clock's). */
static __always_inline void fc_fill(struct flow_cache_entry *e, __u64 w0, __u64 w1, __u32 gen, __u64 until,
				    __u64 now)
{
	__u64 j = 0;
	if (until >= now + 2 * FC_TICK_MAX_NS)
		j = bpf_jiffies64() + (until - now) / FC_TICK_MAX_NS - 1;
	e->key[0] = w0;
	e->key[1] = w1;
	e->until = j;
	e->generation = gen;
	count(COUNTER_FLOW_CACHE_FILLS);
}

/*
 * fc_decided makes this CPU's slot of the connection k follow a decision
 * of the full path: filled when ct (the connection's entry, as written) is
 * an allow the fast path would take, emptied when it holds k otherwise.
 * Other CPUs' slots hold at most CT_REFRESH_SLACK longer.
 */
static __always_inline void fc_decided(const struct ct4_key *k, const struct ct_value *ct, __u8 proto, __u32 gen,
				       __u64 now)
{
	if (fc_off)
		return;
	__u64 w0, w1;
	struct flow_cache_entry *e = fc_slot(k, &w0, &w1);
	if (!e)
		return;
	if (ct && gen && ct->generation == gen && ct->verdict == VERDICT_ALLOW && !ct->l7)
		fc_fill(e, w0, w1, gen, fc_until(ct, proto, now), now);
	else if (e->key[0] == w0 && e->key[1] == w1)
		e->generation = 0;
}

/*
 * never_own says whether a local address can never be a workload's own, so
 * that a workload's programs decide it as a host interface's do (an
 * address without an endpoint entry is not enforced): the unspecified
 * address (0.0.0.0, ::), IPv4 broadcast 255.255.255.255 and multicast
 * 224.0.0.0/4, IPv6 link-local fe80::/10 and multicast ff00::/8. Neighbour
 * discovery, duplicate address detection, router discovery, MLD, IGMP and
 * DHCP use them, and none of them is routed beyond the link.
 */
static __always_inline int never_own(__u8 family, const __u8 *a)
{
	if (family == AF_INET4) {
		__u32 w;
		__builtin_memcpy(&w, a, 4);
		return w == 0 || w == 0xffffffff || (a[0] & 0xf0) == 0xe0;
	}
	if (a[0] == 0xff || (a[0] == 0xfe && (a[1] & 0xc0) == 0x80))
		return 1;
	__u64 hi, lo;
	__builtin_memcpy(&hi, a, 8);
	__builtin_memcpy(&lo, a + 8, 8);
	return (hi | lo) == 0;
}

/*
 * fails_closed says whether a packet without an endpoint entry for its
 * local address is dropped: on a workload's interface, unless the address
 * can never be the workload's own. A malformed packet's addresses may not
 * have been read: no exemption.
 */
static __always_inline int fails_closed(struct pkt *p, int r, __u8 dir, int workload)
{
	const __u8 *local = dir == DIR_EGRESS ? p->saddr : p->daddr;
	return workload && (r == PARSE_MALFORMED || !never_own(p->family, local));
}

/*
 * no_state: there is no generation to decide by (before the first Apply).
 * A host interface passes the packet; a workload's drops it unless
 * fail_closed is 0.
 */
static __always_inline int no_state(struct __sk_buff *skb, __u64 generation, struct pkt *p, __u8 dir,
				    int fail_closed)
{
	count(COUNTER_NO_STATE);
	if (!fail_closed)
		return TC_ACT_UNSPEC;
	count(COUNTER_NO_ENDPOINT);
	emit(skb, generation, p, dir, 0, 0, VERDICT_DENY, REASON_NO_STATE, 0, 0);
	return TC_ACT_SHOT;
}

/* ct_fill sets the key of the connection that p opens on side dir. */
static __always_inline void ct_fill(union ct_any *ck, struct pkt *p, __u8 dir)
{
	ct_key_set(ck, p->family, p->saddr, p->daddr, p->sport, p->dport, p->proto, dir);
}

/*
 * handle decides a packet as side dir of the endpoint that has its local
 * address. workload says the interface is a workload's, whose programs
 * fail closed.
 */
static __always_inline int handle(struct __sk_buff *skb, __u8 dir, int workload)
{
	struct state s;
	__u32 zero = 0;

	count(COUNTER_PACKETS);
	/* The packet's fields live in a per-CPU map: the stack has no room. */
	struct pkt_scratch *sp = bpf_map_lookup_elem(&pkt_scratch, &zero);
	if (!sp)
		return workload ? TC_ACT_SHOT : TC_ACT_UNSPEC;
	struct pkt *p = &sp->p;
	union ct_any *ck = &sp->ck;
	/* The key is written whole where it is set (ct_key_set). */
	__builtin_memset(p, 0, sizeof(*p));
	int r = parse(skb, p);
	if (r == PARSE_NOT_IP) {
		count(COUNTER_NON_IP);
		return TC_ACT_UNSPEC;
	}
	if (load_slot(&s) < 0)
		return no_state(skb, 0, p, dir, fails_closed(p, r, dir, workload));
	__u64 generation = s.generation;
	__u32 gen = generation;

	/*
	 * Conntrack. ICMP and ICMPv6 track echo only: a request opens, a reply
	 * answers; other ICMP types are decided by policy alone.
	 */
	int icmp = (p->proto == IPPROTO_ICMP && p->family == AF_INET4) ||
		   (p->proto == IPPROTO_ICMPV6 && p->family == AF_INET6);
	int opens = !icmp || (p->flags & PKT_ECHO_REQUEST);
	int answers = !icmp || (p->flags & PKT_ECHO_REPLY);
	struct ct_value *ct = 0;
	int frag = p->flags & (PKT_FRAG_FIRST | PKT_FRAG_LATER);
	struct flow_cache_entry *fc = 0;
	__u64 fw0 = 0, fw1 = 0;

	/*
	 * The fast path: a packet of a connection that this generation allowed
	 * has the verdict the policy gave its first packet (the key holds every
	 * input of the decision), so the lookups are skipped, and so are the
	 * generation's maps. Fragments, whose ports may come from the
	 * fragments map, take the full path. An entry's generation 0 is never
	 * (generations start at 1). An IPv4 connection's flow cache slot
	 * answers first when it can, without the conntrack4 lookup.
	 */
	if (r == PARSE_OK && opens && !frag) {
		ct_fill(ck, p, dir);
		if (p->family == AF_INET4 && !fc_off) {
			fc = fc_slot(&ck->k4, &fw0, &fw1);
			if (fc && gen && fc_answers(fc, fw0, fw1, gen, p) && !events_allowed()) {
				count(COUNTER_ALLOWED);
				return TC_ACT_UNSPEC;
			}
		}
	}
	/* Timeouts are seconds: the coarse clock (same base, no TSC read) will do. */
	__u64 now = bpf_ktime_get_coarse_ns();
	if (r == PARSE_OK && opens && !frag) {
		ct = ct_lookup(ck, p->family);
		if (ct && ct->expires < now)
			ct = 0;
		if (ct && gen && ct->generation == gen && ct->verdict == VERDICT_ALLOW && ct->l7 != CT_L7_DNS &&
		    !events_allowed()) {
			ct_touch(ct, p, now, 0);
			count(COUNTER_ALLOWED);
			if (ct->l7)
				count(COUNTER_L7_UNENFORCED);
			else if (fc)
				fc_fill(fc, fw0, fw1, gen, fc_until(ct, p->proto, now), now);
			return TC_ACT_UNSPEC;
		}
	}

	/* Computed after the fast path, which needs none of it. */
	const __u8 *local = dir == DIR_EGRESS ? p->saddr : p->daddr;
	const __u8 *remote = dir == DIR_EGRESS ? p->daddr : p->saddr;
	int fail_closed = fails_closed(p, r, dir, workload);
	if (load_maps(&s) < 0)
		return no_state(skb, generation, p, dir, fail_closed);
	if (r == PARSE_MALFORMED) {
		count(COUNTER_MALFORMED);
		emit(skb, generation, p, dir, 0, 0, VERDICT_DENY, REASON_MALFORMED, 0, 0);
		return TC_ACT_SHOT;
	}

	struct addr_key ek = {.family = p->family};
	__builtin_memcpy(ek.addr, local, 16);
	struct endpoint_value *ep = bpf_map_lookup_elem(s.endpoints, &ek);
	if (!ep) {
		if (!fail_closed) {
			count(COUNTER_NOT_ENFORCED);
			return TC_ACT_UNSPEC;
		}
		/* A workload the agent could not program: dropped, never passed. */
		count(COUNTER_NO_ENDPOINT);
		emit(skb, generation, p, dir, 0, lookup_identity(&s, p->family, remote), VERDICT_DENY,
		     REASON_NO_ENDPOINT, 0, 0);
		return TC_ACT_SHOT;
	}

	/* Fragments: the first one's ports stand for the later ones. */
	__u8 evflags = 0;
	if (p->flags & (PKT_FRAG_FIRST | PKT_FRAG_LATER)) {
		struct frag_key fk = {.id = p->frag_id, .proto = p->proto, .family = p->family};
		__builtin_memcpy(fk.saddr, p->saddr, 16);
		__builtin_memcpy(fk.daddr, p->daddr, 16);
		count(COUNTER_FRAGMENTS);
		evflags |= EVENT_FRAGMENT;
		if (p->flags & PKT_FRAG_FIRST) {
			struct frag_value fv = {
				.sport = p->sport,
				.dport = p->dport,
				.port = p->port,
				.icmp_type = p->icmp_type,
				.flags = p->flags & (PKT_ECHO_REQUEST | PKT_ECHO_REPLY),
			};
			bpf_map_update_elem(&fragments, &fk, &fv, BPF_ANY);
		} else {
			struct frag_value *fv = bpf_map_lookup_elem(&fragments, &fk);
			if (fv) {
				p->sport = fv->sport;
				p->dport = fv->dport;
				p->port = fv->port;
				p->icmp_type = fv->icmp_type;
				p->flags |= fv->flags & (PKT_ECHO_REQUEST | PKT_ECHO_REPLY);
				/* A later fragment of an echo request or reply is one too. */
				opens = !icmp || (p->flags & PKT_ECHO_REQUEST);
				answers = !icmp || (p->flags & PKT_ECHO_REPLY);
			}
		}
	}

	if (opens && frag) {
		ct_fill(ck, p, dir);
		ct = ct_lookup(ck, p->family);
		if (ct && ct->expires < now)
			ct = 0;
	}
	if (!ct && answers) {
		union ct_any rk;
		ct_key_set(&rk, p->family, p->daddr, p->saddr, icmp ? p->sport : p->dport, icmp ? 0 : p->sport,
			   p->proto, !dir);
		struct ct_value *rct = ct_lookup(&rk, p->family);
		if (rct && rct->expires >= now) {
			ct_touch(rct, p, now, 1);
			/* A DNS answer on its way to the client: toFQDNs learns from it first. */
			if (rct->l7 == CT_L7_DNS && dir == DIR_INGRESS)
				fqdn_answer(skb, s.slot, frag ? 1 : 0);
			count(COUNTER_REPLIES);
			return TC_ACT_UNSPEC;
		}
	}

	__u32 peer = lookup_identity(&s, p->family, remote);
	struct decision d;
	decide(&s, ep, dir, peer, p, &d);

	if (d.verdict == VERDICT_DENY) {
		if (ct)
			ct_delete(ck, p->family);
		if (opens && p->family == AF_INET4)
			fc_decided(&ck->k4, 0, p->proto, gen, now);
		count(COUNTER_DENIED);
		emit(skb, generation, p, dir, ep->identity, peer, d.verdict, d.reason, d.rule, evflags);
		return TC_ACT_SHOT;
	}
	/*
	 * DNS rules: the message is decided here. A refused query is answered
	 * at once (dns_answer: UDP, and TCP with the server's FIN); its
	 * connection entry is kept so that the answer passes both sides as a
	 * reply (docs/datapath.md says what the client sees).
	 */
	__u8 ct_l7 = d.l7 ? CT_L7_UNENFORCED : 0;
	int refused = 0;
	if (d.l7) {
		int dr = DNS_NOT_DNS;
		struct dns_scratch *sc = bpf_map_lookup_elem(&dns_scratch, &zero);
		if (sc) {
			/* The entries are there already: decide() kept them. */
			struct dns_args *a = (struct dns_args *)sc->args;
			a->slot = s.slot;
			a->l4off = p->l4off;
			a->l4len = p->l4len;
			a->ep_flags = ep->flags;
			a->dir = dir;
			a->proto = p->proto;
			a->frag = frag ? 1 : 0;
			a->verdict = d.verdict;
			a->reason = d.reason;
			a->rule = d.rule;
			dr = dns_decide(skb, a);
			d.verdict = a->verdict, d.reason = a->reason, d.rule = a->rule;
			/* toFQDNs: a passed query on a client's egress waits for its answer. */
			if (dr == DNS_PASS && dir == DIR_EGRESS)
				fqdn_track(skb, s.slot, a->msg_off, p->l4off + p->l4len);
		}
		if (dr != DNS_NOT_DNS)
			ct_l7 = CT_L7_DNS;
		if (dr == DNS_REFUSE) {
			refused = 1;
			count(COUNTER_DENIED);
			if (d.reason == REASON_L7_DENIED)
				count(COUNTER_DNS_REFUSED);
			emit(skb, generation, p, dir, ep->identity, peer, d.verdict, d.reason, d.rule, evflags);
			/* The answer (UDP or TCP) is a reply of this query's entry, created as an allow's. */
			d.verdict = VERDICT_ALLOW;
		}
	}
	if (ct_l7 == CT_L7_UNENFORCED)
		count(COUNTER_L7_UNENFORCED);

	/*
	 * Reporting: an audited connection once (when its entry is created or
	 * turns audit), an allowed one when its entry is created; a packet
	 * that opens no connection (ICMP but echo) is reported when audited.
	 */
	int report = d.verdict == VERDICT_AUDIT;
	int created = 0;
	struct ct_value nv = {};
	if (opens) {
		if (ct) {
			ct_touch(ct, p, now, 0);
			if (ct->verdict == d.verdict)
				report = 0;
			else
				ct->verdict = d.verdict;
			ct->l7 = ct_l7;
			ct->generation = gen;
		} else {
			nv.verdict = d.verdict, nv.l7 = ct_l7, nv.generation = gen;
			ct_touch(&nv, p, now, 0);
			nv.expires = now + ct_timeout(p->proto, nv.flags);
			ct_update(ck, p->family, &nv);
			created = 1;
		}
		/* A refused DNS query's entry is rewritten an allow below: it has an L7 list, never cached. */
		if (p->family == AF_INET4)
			fc_decided(&ck->k4, created ? &nv : ct, p->proto, gen, now);
	}
	if (refused) {
		if (!created && ct)
			ct->verdict = VERDICT_ALLOW;
		int r2 = dns_answer(skb, p, dir);
		return r2 < 0 ? TC_ACT_SHOT : r2;
	}
	if (d.verdict == VERDICT_AUDIT) {
		count(COUNTER_AUDITED);
	} else {
		count(COUNTER_ALLOWED);
		report = created || events_allowed();
	}
	if (report)
		emit(skb, generation, p, dir, ep->identity, peer, d.verdict, d.reason, d.rule, evflags);
	return TC_ACT_UNSPEC;
}

/* Host interfaces: a local address without an endpoint entry passes. */
SEC("tc")
int palisade_from_endpoint(struct __sk_buff *skb)
{
	return handle(skb, DIR_EGRESS, 0);
}

SEC("tc")
int palisade_to_endpoint(struct __sk_buff *skb)
{
	return handle(skb, DIR_INGRESS, 0);
}

/* The host side of a workload's veth: fail closed. */
SEC("tc")
int palisade_from_workload(struct __sk_buff *skb)
{
	return handle(skb, DIR_EGRESS, 1);
}

SEC("tc")
int palisade_to_workload(struct __sk_buff *skb)
{
	return handle(skb, DIR_INGRESS, 1);
}

/* palisade_parse_only parses like the others and decides nothing: the
 * baseline that make bench-datapath measures the policy's cost against. */
SEC("tc")
int palisade_parse_only(struct __sk_buff *skb)
{
	struct pkt p = {};
	return parse(skb, &p) == PARSE_MALFORMED ? TC_ACT_SHOT : TC_ACT_UNSPEC;
}
