// SPDX-License-Identifier: (GPL-2.0-only OR Apache-2.0)
/* Copyright 2026 The Palisade Authors. */

/*
 * What bpf/l7 and bpf/kafka share of a client socket whose writes an
 * sk_msg program decides (docs/l7.md, "Egress"): which sockets are
 * enforced (a port map keyed by local address and port), the socket
 * storage the sockops program gives them at connect and at
 * ACTIVE_ESTABLISHED, the sk_msg program's preamble, and the TCP
 * sequence numbers the programs read. Each object keeps its own structs,
 * maps and counters and passes them (or the fields these functions
 * read and write) in; the calls are inlined, so each program sees its
 * own maps as constants, as before.
 */
#ifndef PALISADE_ESOCK_H
#define PALISADE_ESOCK_H

#define ESOCK_AF_INET 2
#define ESOCK_AF_INET6 10

static __always_inline int v4mapped(const __u32 *a)
{
	return a[0] == 0 && a[1] == 0 && a[2] == bpf_htonl(0xffff);
}

/* A port in a ctx's remote_port field (network byte order, shifted or
 * not depending on the context type) in host byte order. */
static __always_inline __u16 remote_port(__u32 v)
{
	__u32 r = bpf_ntohl(v);
	return r > 0xffff ? r >> 16 : r;
}

/*
 * The key of a port map (l7_ports, l7_eports, kafka_ports,
 * kafka_eports): each object declares its own type for its Go side
 * (struct l7_port_key, struct kafka_port_key) with this layout, which it
 * asserts with ESOCK_PORT_KEY_LAYOUT.
 */
struct esock_port_key {
	__u16 port;
	__u16 family; /* 4 or 6 */
	__u8 addr[16];
};

#define ESOCK_PORT_KEY_LAYOUT(type)                                                              \
	_Static_assert(sizeof(struct type) == sizeof(struct esock_port_key) &&                   \
			       __builtin_offsetof(struct type, port) == 0 &&                     \
			       __builtin_offsetof(struct type, family) == 2 &&                   \
			       __builtin_offsetof(struct type, addr) == 4 &&                     \
			       sizeof(((struct type *)0)->addr) == 16,                           \
		       #type " is not laid out as struct esock_port_key")

/* port_enforced reports whether a socket's local address and port (the
 * local one for a server's socket, the remote one for a client's) have
 * an entry in ports (exact address, then any address of the family). */
static __always_inline int port_enforced(struct bpf_sock_ops *skops, void *ports, __u16 port)
{
	struct esock_port_key k = { .port = port };
	if (skops->family == ESOCK_AF_INET) {
		k.family = 4;
		__u32 la = skops->local_ip4;
		__builtin_memcpy(k.addr, &la, 4);
	} else if (skops->family == ESOCK_AF_INET6) {
		__u32 la[4] = { skops->local_ip6[0], skops->local_ip6[1], skops->local_ip6[2], skops->local_ip6[3] };
		if (v4mapped(la)) {
			k.family = 4;
			__builtin_memcpy(k.addr, &la[3], 4);
		} else {
			k.family = 6;
			__builtin_memcpy(k.addr, la, 16);
		}
	} else {
		return 0;
	}
	if (bpf_map_lookup_elem(ports, &k))
		return 1;
	__builtin_memset(k.addr, 0, sizeof(k.addr));
	return bpf_map_lookup_elem(ports, &k) != 0;
}

/* ---- sockops: TCP_CONNECT_CB and ACTIVE_ESTABLISHED_CB ---- */

/*
 * esock_storage gives a client socket in the sockops program (at
 * TCP_CONNECT_CB or ACTIVE_ESTABLISHED_CB) its state in the socket
 * storage esk, created if absent, when its local address and remote
 * port have an entry in eports. A socket of a port not enforced (any
 * longer) loses any state a previous connect left: NULL. NULL too when
 * no state could be made (not enforced: counted by the absence of the
 * object's SOCKETS counter).
 */
static __always_inline void *esock_storage(struct bpf_sock_ops *skops, void *eports, void *esk)
{
	struct bpf_sock *sk = skops->sk;
	if (!sk)
		return NULL;
	if (!port_enforced(skops, eports, remote_port(skops->remote_port))) {
		/* Not enforced (any longer): the policy of now applies. */
		bpf_sk_storage_delete(esk, sk);
		return NULL;
	}
	return bpf_sk_storage_get(esk, sk, 0, BPF_SK_STORAGE_GET_F_CREATE);
}

/*
 * esock_established sets, at ACTIVE_ESTABLISHED, a client socket's
 * sequence number of its first data byte (*wbase) and clears connecting
 * in *flags. It reports whether data the client put in its SYN (TCP Fast
 * Open) was not seen by the gate (no state from connect, gated not in
 * *flags): the SYN's data is outstanding (snd_nxt past snd_una) or
 * acknowledged (more than the SYN's one byte of sequence); it then sets
 * gated, and the caller refuses the connection (nothing more of it is
 * passed) and counts it. SYN data the gate saw was dropped and counted
 * there.
 */
static __always_inline int esock_established(struct bpf_sock_ops *skops, __u32 *wbase, __u32 *flags,
					     __u32 connecting, __u32 gated)
{
	*flags &= ~connecting;
	/*
	 * The first data byte's sequence number: ISN + 1. snd_una has moved
	 * past the ISN by bytes_acked (the SYN, and SYN data the server
	 * acknowledged), so this holds whatever the SYN carried.
	 */
	*wbase = skops->snd_una - (__u32)skops->bytes_acked + 1;
	if (!(*flags & gated) && (skops->snd_nxt != skops->snd_una || skops->bytes_acked > 1)) {
		*flags |= gated;
		return 1;
	}
	return 0;
}

/* ---- cgroup_skb/egress: the gate (gate.h) ---- */

/*
 * esock_gate_state returns the state in esk of the full socket an egress
 * packet belongs to, and that socket in *fsk; NULL where there is no
 * socket or it has no state (not a client socket the object enforces):
 * the gate passes its packets.
 */
static __always_inline void *esock_gate_state(struct __sk_buff *skb, void *esk, struct bpf_sock **fsk)
{
	struct bpf_sock *sk = skb->sk;
	if (!sk)
		return NULL;
	sk = bpf_sk_fullsock(sk);
	if (!sk)
		return NULL;
	*fsk = sk;
	return bpf_sk_storage_get(esk, sk, 0, 0);
}

/* ---- sk_msg ---- */

/*
 * esock_msg_state returns the writing socket's state in the socket
 * storage esk, or NULL (no socket, no state: the caller refuses, never
 * passes). With state, it sets the message's apply and cork bytes to 0:
 * the kernel keeps a corked message (and its apply and cork bytes) for
 * the socket's later writes, so both are set on every run, or a stale
 * value would cut a verdict short or cork what is whole.
 */
static __always_inline void *esock_msg_state(struct sk_msg_md *msg, void *esk)
{
	struct bpf_sock *sk = msg->sk;
	if (!sk)
		return NULL;
	void *w = bpf_sk_storage_get(esk, sk, 0, 0);
	if (!w)
		return NULL;
	bpf_msg_apply_bytes(msg, 0);
	bpf_msg_cork_bytes(msg, 0);
	return w;
}

/* The fields of the client's tcp_sock the sk_msg programs read. */
struct tcp_sock___esock {
	__u32 write_seq;
	__u32 rcv_nxt;
	__u32 copied_seq;
} __attribute__((preserve_access_index));

static __always_inline struct tcp_sock___esock *esock_tcp(struct sk_msg_md *msg)
{
	struct bpf_sock *sk = msg->sk;
	if (!sk)
		return NULL;
	return (void *)bpf_skc_to_tcp_sock(sk);
}

/*
 * esock_unparsed reports whether the client's TCP holds other bytes than
 * the sk_msg program let in: it runs with the socket locked before
 * anything of the message is queued, so TCP's write_seq is then exactly
 * wbase plus the bytes of its SK_PASS verdicts (wpassed). More means
 * bytes that did not go through sk_msg (a write that began in TCP's own
 * sendmsg before the socket entered the object's SOCKHASH); fewer means
 * bytes it passed that TCP never took (the kernel's push failed
 * part-way): either way the framing no longer describes the stream the
 * server reads.
 */
static __always_inline int esock_unparsed(struct sk_msg_md *msg, __u32 wbase, __u32 wpassed)
{
	struct tcp_sock___esock *tp = esock_tcp(msg);
	if (!tp)
		return 1;
	__u32 wseq = tp->write_seq;
	return wseq != wbase + wpassed;
}

/*
 * esock_pass counts n passed bytes of the message (the verdict's apply
 * bytes: TCP queues exactly these after the run) in *wpassed, for the
 * gate, and records the client's rcv_nxt (bytes the server sent) in
 * *rseq with *passed set.
 */
static __always_inline int esock_pass(struct sk_msg_md *msg, __u32 *wpassed, __u32 *rseq, __u8 *passed, __u32 n)
{
	*wpassed += n;
	struct tcp_sock___esock *tp = esock_tcp(msg);
	if (tp) {
		*rseq = tp->rcv_nxt;
		*passed = 1;
	}
	return SK_PASS;
}

/*
 * esock_answered reports whether an answer written to the client now
 * cannot overtake the server's answer to bytes passed before: nothing
 * was passed, or the server has sent since bytes were last passed (its
 * rcv_nxt then was rseq) and the client has read all of it (copied_seq
 * is rcv_nxt). Without the client's tcp_sock: not known, 0.
 */
static __always_inline int esock_answered(struct sk_msg_md *msg, __u8 passed, __u32 rseq)
{
	if (!passed)
		return 1;
	struct tcp_sock___esock *tp = esock_tcp(msg);
	if (!tp)
		return 0;
	__u32 rcv = tp->rcv_nxt, copied = tp->copied_seq;
	return rcv != rseq && copied == rcv;
}

#endif
