// SPDX-License-Identifier: (GPL-2.0-only OR Apache-2.0)
/* Copyright 2026 The Palisade Authors. */

/*
 * Packet parsing: Ethernet, IPv4 (options skipped by ihl) or IPv6 (up to
 * MAX_EXT_HDRS extension headers), then the first bytes of TCP, UDP, SCTP,
 * ICMP or ICMPv6. Headers are read with bpf_skb_load_bytes, which works on
 * non-linear skbs and keeps every bound check in one place.
 */
#ifndef PALISADE_PARSE_H
#define PALISADE_PARSE_H

#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/in6.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <bpf/bpf_endian.h>

#include "palisade.h"

#define MAX_EXT_HDRS 8

#ifndef IPPROTO_ICMPV6
#define IPPROTO_ICMPV6 58
#endif
#define NEXTHDR_HOP 0
#define NEXTHDR_ROUTING 43
#define NEXTHDR_FRAGMENT 44
#define NEXTHDR_AUTH 51
#define NEXTHDR_DEST 60

#define ICMP_ECHOREPLY_ 0
#define ICMP_ECHO_ 8
#define ICMPV6_ECHO_REQUEST_ 128
#define ICMPV6_ECHO_REPLY_ 129

enum parse_result {
	PARSE_OK = 0,
	PARSE_NOT_IP,
	PARSE_MALFORMED,
};

#define PKT_FRAG_FIRST (1 << 0) /* first fragment of a fragmented datagram */
#define PKT_FRAG_LATER (1 << 1) /* later fragment: no L4 header */
#define PKT_ECHO_REQUEST (1 << 2)
#define PKT_ECHO_REPLY (1 << 3)

struct pkt {
	/* Aligned, so that copies into keys are word moves, not byte moves. */
	__u8 saddr[16] __attribute__((aligned(8)));
	__u8 daddr[16];
	__u32 frag_id;
	__u16 sport; /* host order; ICMP echo: identifier */
	__u16 dport; /* host order */
	__u16 port;  /* policy port: dport, or ICMP type */
	__u8 family;
	__u8 proto;
	__u8 flags;     /* PKT_* */
	__u8 tcp_flags; /* FIN 0x01, SYN 0x02, RST 0x04, ACK 0x10 */
	__u8 icmp_type;
	__u8 pad;
	__u32 l4off; /* offset of the L4 header (TCP, UDP: DNS parsing) */
	__u32 l4len; /* bytes from l4off to the end of the IP payload */
};

/* parse_l4 reads ports or the ICMP type at off; avail is the L4 length. */
static __always_inline int parse_l4(struct __sk_buff *skb, struct pkt *p, __u32 off, __u32 avail)
{
	__u8 b[20];

	p->l4off = off;
	p->l4len = avail;
	switch (p->proto) {
	case IPPROTO_TCP:
		if (avail < 20 || bpf_skb_load_bytes(skb, off, b, 20) < 0)
			return PARSE_MALFORMED;
		if ((b[12] >> 4) < 5) /* data offset */
			return PARSE_MALFORMED;
		p->tcp_flags = b[13];
		break;
	case IPPROTO_UDP:
		if (avail < 8 || bpf_skb_load_bytes(skb, off, b, 8) < 0)
			return PARSE_MALFORMED;
		break;
	case IPPROTO_SCTP:
		if (avail < 12 || bpf_skb_load_bytes(skb, off, b, 12) < 0)
			return PARSE_MALFORMED;
		break;
	case IPPROTO_ICMP:
	case IPPROTO_ICMPV6:
		/* ICMP in IPv4 and ICMPv6 in IPv6 only; the other is any protocol. */
		if ((p->proto == IPPROTO_ICMP) != (p->family == AF_INET4))
			return PARSE_OK;
		if (avail < 8 || bpf_skb_load_bytes(skb, off, b, 8) < 0)
			return PARSE_MALFORMED;
		p->icmp_type = b[0];
		p->port = b[0];
		if (b[0] == (p->family == AF_INET4 ? ICMP_ECHO_ : ICMPV6_ECHO_REQUEST_))
			p->flags |= PKT_ECHO_REQUEST;
		else if (b[0] == (p->family == AF_INET4 ? ICMP_ECHOREPLY_ : ICMPV6_ECHO_REPLY_))
			p->flags |= PKT_ECHO_REPLY;
		if (p->flags & (PKT_ECHO_REQUEST | PKT_ECHO_REPLY))
			p->sport = ((__u16)b[4] << 8) | b[5];
		return PARSE_OK;
	default:
		return PARSE_OK;
	}
	p->sport = ((__u16)b[0] << 8) | b[1];
	p->dport = ((__u16)b[2] << 8) | b[3];
	p->port = p->dport;
	return PARSE_OK;
}

static __always_inline int parse_ipv4(struct __sk_buff *skb, struct pkt *p)
{
	struct iphdr ip;
	__u32 len = skb->len - ETH_HLEN;

	if (bpf_skb_load_bytes(skb, ETH_HLEN, &ip, sizeof(ip)) < 0)
		return PARSE_MALFORMED;
	if (ip.version != 4 || ip.ihl < 5)
		return PARSE_MALFORMED;
	__u32 hlen = ip.ihl * 4;
	__u32 tot = bpf_ntohs(ip.tot_len);
	/* tot_len 0 is a BIG TCP GSO packet longer than 64k: trust skb->len. */
	if (tot == 0 && len > 0xffff)
		tot = len;
	if (tot < hlen || tot > len)
		return PARSE_MALFORMED;

	p->family = AF_INET4;
	p->proto = ip.protocol;
	__builtin_memcpy(p->saddr, &ip.saddr, 4);
	__builtin_memcpy(p->daddr, &ip.daddr, 4);

	__u16 frag = bpf_ntohs(ip.frag_off);
	if (frag & 0x1fff) {
		p->flags |= PKT_FRAG_LATER;
		p->frag_id = bpf_ntohs(ip.id);
		return PARSE_OK;
	}
	if (frag & 0x2000) {
		p->flags |= PKT_FRAG_FIRST;
		p->frag_id = bpf_ntohs(ip.id);
	}
	return parse_l4(skb, p, ETH_HLEN + hlen, tot - hlen);
}

static __always_inline int parse_ipv6(struct __sk_buff *skb, struct pkt *p)
{
	struct ipv6hdr ip;
	__u32 len = skb->len - ETH_HLEN;

	if (bpf_skb_load_bytes(skb, ETH_HLEN, &ip, sizeof(ip)) < 0)
		return PARSE_MALFORMED;
	if (ip.version != 6)
		return PARSE_MALFORMED;
	__u32 end = sizeof(ip) + bpf_ntohs(ip.payload_len);
	/* payload_len 0 is a jumbogram or BIG TCP: trust skb->len. */
	if (ip.payload_len == 0)
		end = len;
	if (end > len)
		return PARSE_MALFORMED;

	p->family = AF_INET6;
	__builtin_memcpy(p->saddr, &ip.saddr, 16);
	__builtin_memcpy(p->daddr, &ip.daddr, 16);

	__u32 off = sizeof(ip);
	__u8 nh = ip.nexthdr;
	int i;
#pragma unroll
	for (i = 0; i < MAX_EXT_HDRS; i++) {
		__u8 h[8];
		if (nh != NEXTHDR_HOP && nh != NEXTHDR_ROUTING && nh != NEXTHDR_DEST &&
		    nh != NEXTHDR_FRAGMENT && nh != NEXTHDR_AUTH)
			break;
		if (off + 8 > end || bpf_skb_load_bytes(skb, ETH_HLEN + off, h, 8) < 0)
			return PARSE_MALFORMED;
		if (nh == NEXTHDR_FRAGMENT) {
			__u16 fo = ((__u16)h[2] << 8) | h[3];
			p->frag_id = ((__u32)h[4] << 24) | ((__u32)h[5] << 16) | ((__u32)h[6] << 8) | h[7];
			if (fo & 0xfff8) {
				p->flags |= PKT_FRAG_LATER;
				p->proto = h[0];
				return PARSE_OK;
			}
			if (fo & 1)
				p->flags |= PKT_FRAG_FIRST;
			off += 8;
		} else if (nh == NEXTHDR_AUTH) {
			off += ((__u32)h[1] + 2) * 4;
		} else {
			off += ((__u32)h[1] + 1) * 8;
		}
		nh = h[0];
	}
	if (nh == NEXTHDR_HOP || nh == NEXTHDR_ROUTING || nh == NEXTHDR_DEST ||
	    nh == NEXTHDR_FRAGMENT || nh == NEXTHDR_AUTH)
		return PARSE_MALFORMED; /* more extension headers than we follow */
	if (off > end)
		return PARSE_MALFORMED;
	p->proto = nh;
	return parse_l4(skb, p, ETH_HLEN + off, end - off);
}

/* parse fills p from the packet in skb. */
static __always_inline int parse(struct __sk_buff *skb, struct pkt *p)
{
	__be16 proto;

	if (bpf_skb_load_bytes(skb, 12, &proto, sizeof(proto)) < 0)
		return PARSE_NOT_IP;
	if (proto == bpf_htons(ETH_P_IP))
		return parse_ipv4(skb, p);
	if (proto == bpf_htons(ETH_P_IPV6))
		return parse_ipv6(skb, p);
	return PARSE_NOT_IP;
}

#endif /* PALISADE_PARSE_H */
