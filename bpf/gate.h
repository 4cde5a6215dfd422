// SPDX-License-Identifier: (GPL-2.0-only OR Apache-2.0)
/* Copyright 2026 The Palisade Authors. */

/*
 * The gate on the wire of a client socket whose writes an sk_msg program
 * decides (bpf/l7's l7_gate, bpf/kafka's kafka_gate; docs/l7.md, "The
 * gate on the wire"): which segments a cgroup_skb/egress program lets
 * leave. Both objects keep their own per-socket state and counters and
 * call gate_segment with what it holds.
 */
#ifndef PALISADE_GATE_H
#define PALISADE_GATE_H

#define GATE_ETH_P_IP 0x0800
#define GATE_ETH_P_IPV6 0x86DD
#define GATE_IPPROTO_TCP 6

enum gate_verdict {
	GATE_PASS = 0,       /* no bytes of the stream, or decided bytes only */
	GATE_UNDECIDED = 1,  /* payload past the decided bytes, or not parsed */
	GATE_CONNECTING = 2, /* payload while connecting: data in the SYN */
};

/*
 * gate_segment says whether an IP packet of a socket with egress state
 * may leave: a TCP segment passes only if its payload ends at or before
 * bound (the first data byte's sequence number plus the bytes the
 * sk_msg program passed), so retransmissions of decided bytes pass; a
 * socket still connecting passes no payload. Segments without payload
 * (SYN, ACK, FIN, RST) and packets that are not TCP pass. An IPv6
 * packet with extension headers (not parsed) is undecided.
 */
static __always_inline int gate_segment(struct __sk_buff *skb, __u32 connecting, __u32 bound)
{
	__u32 len = skb->len, iphl = 0;
	__u32 proto = skb->protocol;
	if (proto == bpf_htons(GATE_ETH_P_IP)) {
		__u8 vihl = 0, p = 0;
		if (bpf_skb_load_bytes(skb, 0, &vihl, 1) < 0 || bpf_skb_load_bytes(skb, 9, &p, 1) < 0)
			return GATE_UNDECIDED;
		if (p != GATE_IPPROTO_TCP)
			return GATE_PASS;
		iphl = (vihl & 0xf) * 4;
	} else if (proto == bpf_htons(GATE_ETH_P_IPV6)) {
		__u8 nh = 0;
		if (bpf_skb_load_bytes(skb, 6, &nh, 1) < 0)
			return GATE_UNDECIDED;
		if (nh != GATE_IPPROTO_TCP)
			return GATE_UNDECIDED; /* extension headers: not parsed, refused */
		iphl = 40;
	} else {
		return GATE_PASS;
	}
	__u8 th[14];
	if (bpf_skb_load_bytes(skb, iphl, th, sizeof(th)) < 0)
		return GATE_UNDECIDED;
	__u32 thl = (th[12] >> 4) * 4;
	if (len < iphl + thl)
		return GATE_UNDECIDED;
	__u32 payload = len - iphl - thl;
	if (payload == 0)
		return GATE_PASS; /* SYN, ACK, FIN, RST: no bytes of the stream */
	if (connecting)
		return GATE_CONNECTING;
	__u32 seq = ((__u32)th[4] << 24) | ((__u32)th[5] << 16) | ((__u32)th[6] << 8) | th[7];
	if ((__s32)(seq + payload - bound) <= 0)
		return GATE_PASS;
	return GATE_UNDECIDED;
}

#endif
