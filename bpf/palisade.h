// SPDX-License-Identifier: (GPL-2.0-only OR Apache-2.0)
/* Copyright 2026 The Palisade Authors. */

/*
 * Types and maps shared by Palisade's TC programs and, through bpf2go's
 * -type, by the Go package internal/datapath. Every struct here is part of
 * the kernel ABI of pinned maps: change a layout and the agent refuses to
 * adopt the old pins (see docs/datapath.md).
 */
#ifndef PALISADE_H
#define PALISADE_H

#include <linux/types.h>
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#define AF_INET4 4
#define AF_INET6 6

/* Directions, as engine.Direction. */
enum direction {
	DIR_INGRESS = 0,
	DIR_EGRESS = 1,
};

/* Verdicts, as engine.Verdict. */
enum verdict {
	VERDICT_ALLOW = 0,
	VERDICT_DENY = 1,
	VERDICT_AUDIT = 2,
};

/* Reasons: 0-5 are engine.Reason; the datapath adds its own from 16. */
enum reason {
	REASON_NOT_ENFORCED = 0,
	REASON_NOT_SELECTED = 1,
	REASON_ALLOWED = 2,
	REASON_DENIED = 3,
	REASON_DEFAULT_DENY = 4,
	REASON_L7_DENIED = 5,
	REASON_REPLY = 16,     /* a reply of a tracked connection */
	REASON_MALFORMED = 17, /* an IP packet the parser rejects */
	/*
	 * Dropped on a workload's interface, which fails closed: the packet's
	 * local address has no endpoint entry in the active generation
	 * (REASON_NO_ENDPOINT), or there is no generation (REASON_NO_STATE).
	 */
	REASON_NO_ENDPOINT = 18,
	REASON_NO_STATE = 19,
	/*
	 * A DNS query on a port whose enforcing rules restrict names that the
	 * kernel cannot decide: malformed, a compression pointer in a question,
	 * 0 or more than DNS_MAX_QUESTIONS questions, a byte it does not match,
	 * or not whole in one packet (counters say which). Refused as a name
	 * no rule allows would be.
	 */
	REASON_DNS_MALFORMED = 20,
};

/* engine.EndpointFlags */
#define EP_INGRESS_DEFAULT_DENY (1 << 0)
#define EP_INGRESS_DEFAULT_AUDIT (1 << 1)
#define EP_EGRESS_DEFAULT_DENY (1 << 2)
#define EP_EGRESS_DEFAULT_AUDIT (1 << 3)

/*
 * Hints, written by the agent with each generation: what the policy maps
 * do not hold for the endpoint's policy ID in a direction, so that a packet
 * skips lookups that cannot hit. Zero (as in a state written before hints
 * existed) skips nothing. Bits of the ingress direction; egress is << 4.
 */
#define EP_HINT_NO_PEER_LPM (1 << 0) /* no LPM entry of a peer identity (not 0) */
#define EP_HINT_NO_ANY_HASH (1 << 1) /* no hash entry of identity 0 */
#define EP_HINT_NO_ANY_LPM (1 << 2)  /* no LPM entry of identity 0 */
#define EP_HINT_NO_ALL_WORLD (1 << 3) /* no entry of IDENTITY_ALL_WORLD (such entries clear no other hint) */
#define EP_HINT_EGRESS_SHIFT 4

/* engine.PolicyFlags */
#define POLICY_ALLOW (1 << 0)
#define POLICY_DENY (1 << 1)
#define POLICY_AUDIT_DENY (1 << 2)
#define POLICY_AUDIT_ALLOW (1 << 3)

/*
 * Key of the endpoints map and of the ipcache's exact (/32, /128) map: an
 * address of either family; IPv4 uses the first 4 bytes, the rest are 0.
 */
struct addr_key {
	__u32 family; /* AF_INET4 or AF_INET6 */
	__u8 addr[16];
};

/* An enforcement point: a workload or the host (engine.EndpointEntry). */
struct endpoint_value {
	__u32 identity;
	__u32 policy_id;
	__u8 flags;
	__u8 hints; /* EP_HINT_*: lookups this generation's policy maps can skip */
	__u8 pad[2];
};

/* ipcache LPM key: prefixlen counts the 32 bits of family, then address bits. */
struct ipcache_lpm_key {
	__u32 prefixlen;
	__u32 family;
	__u8 addr[16];
};

struct ipcache_value {
	__u32 identity;
};

/* Policy entries of full length (PrefixLen 24): the hash path. */
struct policy_key {
	__u32 policy_id;
	__u32 identity;
	__u8 direction;
	__u8 proto;
	__u16 port; /* host byte order */
};

/*
 * Policy entries shorter than 24 bits. The data after prefixlen is big
 * endian so the trie's bit order is policy_id, identity, direction, then
 * the 24 bits proto<<16|port; prefixlen = 72 + engine PrefixLen.
 */
struct policy_lpm_key {
	__u32 prefixlen;
	__u32 policy_id; /* big endian */
	__u32 identity;  /* big endian */
	__u8 direction;
	__u8 proto;
	__u16 port; /* big endian */
};

#define POLICY_LPM_FIXED_BITS 72

/* engine.PolicyEntry */
struct policy_value {
	__u8 flags;
	__u8 pad[3];
	__u32 allow_rule;
	__u32 deny_rule;
	__u32 audit_rule;       /* lowest audit-mode deny rule */
	__u32 audit_allow_rule; /* lowest audit-mode allow rule */
	__u32 l7;               /* L7 list ID; DNS lists are matched (dns_* maps) */
};

/*
 * DNS name tables (engine.DNSTables), per generation: dns_lists maps an L7
 * list ID to its automaton, dns_next[state * 256 + byte] is the next state,
 * dns_accept[state] what the list says of a name that ends there.
 */
#define DNS_LIST_HAS_DNS (1 << 0)

struct dns_list {
	__u32 start;
	__u32 flags; /* DNS_LIST_* */
};

/* The lowest admitting and refusing rule, enforcing and with audit (0: none). */
struct dns_accept {
	__u32 allow;
	__u32 refuse;
	__u32 audit_allow;
	__u32 audit_refuse;
};

/* DNS settings (the dns_settings array's one element), written by the agent. */
struct dns_config {
	__u32 rcode; /* RCODE of crafted refusals; 0 means REFUSED (5) */
};

/*
 * toFQDNs (docs/datapath.md, "toFQDNs"). Per generation, the automaton of
 * the node's FQDN selectors (engine.CompileFQDN): fqdn_next[state * 256 +
 * byte] is the next state, fqdn_accept[state] the selector identities of
 * a name that ends there; fqdn_selectors holds each selector's text, for
 * read-back. Not per generation (pinned, kept across agent restarts): the
 * learned table, fqdn_names (name hash -> name, selector identities,
 * address count, flags) and fqdn_addrs (address -> up to FQDN_SLOTS
 * (name hash, expiry) slots); and fqdn_pending, the queries whose answers
 * may teach it.
 */
#define FQDN_MAX_SELECTORS 4 /* engine.FQDNMaxSelectorsPerName */
#define FQDN_SLOTS 4
#define FQDN_NAME_MAX 256

struct fqdn_accept {
	__u32 n;
	__u32 ids[FQDN_MAX_SELECTORS];
};

/* A selector: a name, or a pattern (pattern = 1); text without the trailing dot. */
struct fqdn_selector {
	__u8 pattern;
	__u8 pad;
	__u16 len;
	__u8 text[FQDN_NAME_MAX];
};

/* fqdn_name.flags: an address of the name was not learned, and why. */
#define FQDN_NAME_CAPPED (1 << 0) /* the name holds its cap of addresses */
#define FQDN_NAME_SLOTS (1 << 1)  /* the address held FQDN_SLOTS other names */
#define FQDN_NAME_FULL (1 << 2)	  /* fqdn_addrs was full */

struct fqdn_name {
	__u32 ids[FQDN_MAX_SELECTORS]; /* selector identities, sorted */
	__u32 nids;
	__u32 addrs; /* slots of fqdn_addrs that name it, expired ones included */
	__u32 flags; /* FQDN_NAME_* */
	__u16 len;
	__u8 pad[2];
	__u8 name[FQDN_NAME_MAX]; /* lower case, '.' between labels, no trailing dot */
};

struct fqdn_slot {
	__u64 name;    /* the name's hash; 0: free */
	__u64 expires; /* bpf_ktime_get_boot_ns() deadline */
};

struct fqdn_addr {
	struct fqdn_slot slots[FQDN_SLOTS];
};

/* A query whose answer may teach: the client's tuple and the DNS id. */
struct fqdn_pending_key {
	__u8 saddr[16];
	__u8 daddr[16];
	__u16 sport;
	__u16 dport;
	__u16 id; /* as on the wire */
	__u8 proto;
	__u8 family;
};

struct fqdn_query {
	__u64 name; /* the question name's hash */
};

/* toFQDNs settings (the fqdn_settings array's one element), written by the agent. */
struct fqdn_config {
	__u32 min_ttl;	 /* seconds; 0: FQDN_DEFAULT_MIN_TTL */
	__u32 max_addrs; /* per name; 0: FQDN_DEFAULT_MAX_ADDRS */
};

#define FQDN_DEFAULT_MIN_TTL 60
#define FQDN_DEFAULT_MAX_ADDRS 128

/* The generation that packets see: slot (0 or 1) of the gen_* outer maps. */
struct active_slot {
	__u32 slot;
};

/* Conntrack: one entry per connection and enforcement side (IPv6; IPv4 uses ct4_key). */
struct ct_key {
	__u8 saddr[16];
	__u8 daddr[16];
	__u16 sport; /* ICMP echo: the identifier */
	__u16 dport; /* ICMP echo: 0 */
	__u8 proto;
	__u8 family;
	__u8 direction; /* the side that allowed the connection */
	__u8 pad;
};

/*
 * Conntrack of IPv4 connections: the same entries under a 16-byte key
 * (conntrack4), since the kernel hashes and compares a key on every lookup
 * and ct_key's 40 bytes cost about twice a 16-byte key's (the largest
 * cost of an established connection's fast path; docs/datapath.md).
 * Addresses are the packet's 4 bytes, in network order.
 */
struct ct4_key {
	__u32 saddr;
	__u32 daddr;
	__u16 sport; /* ICMP echo: the identifier */
	__u16 dport; /* ICMP echo: 0 */
	__u8 proto;
	__u8 direction; /* the side that allowed the connection */
	__u8 pad[2];
};

/* ct_value.l7 */
#define CT_L7_UNENFORCED 1 /* L7 rules the kernel does not match (counted) */
#define CT_L7_DNS 2	   /* DNS rules: every packet is decided, no fast path */

#define CT_SEEN_REPLY (1 << 0)
#define CT_CLOSING (1 << 1)

struct ct_value {
	__u64 expires; /* bpf_ktime_get_ns() deadline */
	__u8 verdict;  /* VERDICT_ALLOW or VERDICT_AUDIT */
	__u8 flags;
	__u8 l7;	    /* CT_L7_*: the allow has an L7 list */
	__u8 pad;
	/*
	 * Low 32 bits of the generation that last decided the connection: a
	 * later packet of an allowed connection in that generation reuses its
	 * verdict without the policy lookups (0: never, as generations start
	 * at 1 and entries of older agents hold 0).
	 */
	__u32 generation;
};

/*
 * The flow cache (docs/datapath.md, "The flow cache"): per CPU, direct
 * mapped, indexed by a keyed hash of an IPv4 connection's conntrack4 key.
 * A slot says that the conntrack fast path would pass a packet of that
 * connection without writing its entry: an allow of generation generation,
 * without an L7 list, whose deadline needs no refresh before until. A
 * packet that the slot answers skips the conntrack4 lookup; every other
 * goes to conntrack4 as before, which refills the slot.
 */
struct flow_cache_entry {
	__u64 key[2];	  /* the struct ct4_key, as two words */
	__u64 until;	  /* jiffies: answers while bpf_jiffies64() <= until */
	__u32 generation; /* low 32 bits, as ct_value's; 0: empty */
	__u32 pad;
};

/* Ports of a fragmented datagram, from its first fragment. */
struct frag_key {
	__u8 saddr[16];
	__u8 daddr[16];
	__u32 id;
	__u8 proto;
	__u8 family;
	__u8 pad[2];
};

struct frag_value {
	__u16 sport;
	__u16 dport;
	__u16 port;
	__u8 icmp_type;
	__u8 flags; /* echo request or reply (parse.h PKT_ECHO_*) */
};

/*
 * Every event on the events ring buffer starts with this header, which Go
 * decodes first (internal/datapath/events.go) and dispatches on: type says
 * what follows, version its layout (a new field makes a new version; an
 * unknown type or version is counted and skipped by the reader), len the
 * bytes of the whole event, header included. time is bpf_ktime_get_boot_ns()
 * (CLOCK_BOOTTIME: monotonic, and counting suspend), which the reader
 * turns into wall time with its own reading of both clocks.
 */
struct event_header {
	__u8 type;    /* enum event_type */
	__u8 version; /* the type's layout version */
	__u16 len;    /* sizeof the event, header included */
	__u32 pad;
	__u64 time; /* ns since boot (CLOCK_BOOTTIME) */
};

/* Event types; 0 is never a type. New types take new numbers. */
enum event_type {
	EVENT_TYPE_VERDICT = 1, /* struct verdict_event */
};

/* Each type's current layout version, as the kernel writes it. */
enum event_version {
	VERDICT_EVENT_VERSION = 1,
};

/*
 * A verdict event: every drop, each allowed connection when its conntrack
 * entry is created (its first packet), each audited connection once, and,
 * when settings.events has EVENTS_ALLOWED, every allowed packet (tracing).
 */
struct verdict_event {
	struct event_header hdr;
	__u64 generation;
	__u32 ifindex;
	__u32 local_identity;
	__u32 peer_identity;
	__u32 rule;
	__u8 saddr[16];
	__u8 daddr[16];
	__u16 sport;
	__u16 dport;
	__u16 port; /* the policy port: destination port or ICMP type */
	__u8 family;
	__u8 proto;
	__u8 direction;
	__u8 verdict;
	__u8 reason;
	__u8 flags;	/* EVENT_* */
	__u8 tcp_flags; /* the packet's TCP flags (FIN 0x01 SYN 0x02 RST 0x04 PSH 0x08 ACK 0x10 ...); 0 if not TCP */
	__u8 pad[3];
};

_Static_assert(sizeof(struct event_header) == 16, "event header layout");
_Static_assert(sizeof(struct verdict_event) == 88, "verdict event layout");

#define EVENT_FRAGMENT (1 << 0)
#define EVENT_REPLY (1 << 1)

/*
 * Runtime settings (the settings array's one element). EVENTS_ALLOWED
 * reports every allowed packet (tracing, tests), not only the first of each
 * connection.
 */
#define EVENTS_ALLOWED (1 << 0)

struct runtime_settings {
	__u32 events; /* EVENTS_* */
};

/*
 * Per-CPU counters, indexes of the counters array. New counters go before
 * COUNTER_MAX: an index never changes meaning. The array has
 * COUNTER_SLOTS entries so that a new counter does not change the pinned
 * map's layout.
 */
enum counter {
	COUNTER_PACKETS = 0,
	COUNTER_ALLOWED,
	COUNTER_DENIED,
	COUNTER_AUDITED,
	COUNTER_NOT_ENFORCED,
	COUNTER_REPLIES,
	COUNTER_MALFORMED,
	COUNTER_NON_IP,
	COUNTER_FRAGMENTS,
	COUNTER_EVENTS_LOST,
	COUNTER_NO_STATE,
	COUNTER_L7_UNENFORCED,
	COUNTER_NO_ENDPOINT, /* dropped on a workload's interface: no endpoint entry or no state */
	/*
	 * Verdict events by what became of them: written to the ring buffer,
	 * or lost because it was full (COUNTER_EVENTS_LOST counts every lost
	 * event; these split it by the event's verdict).
	 */
	COUNTER_EVENTS_SENT,
	COUNTER_EVENTS_LOST_DENY,
	COUNTER_EVENTS_LOST_ALLOW,
	COUNTER_EVENTS_LOST_AUDIT,
	/*
	 * DNS queries on ports with DNS rules: decided, and of those allowed,
	 * refused by rule, audited; refused (where enforcing rules restrict
	 * names) or passed (where not) because the kernel could not decide
	 * them: malformed, a compression pointer in a question, 0 or too many
	 * questions, a name with a byte it does not match or longer than 253,
	 * not whole in one packet (TCP segment, IP fragment); and the crafted
	 * answers sent back (UDP).
	 */
	COUNTER_DNS_QUERIES,
	COUNTER_DNS_ALLOWED,
	COUNTER_DNS_REFUSED,
	COUNTER_DNS_AUDITED,
	COUNTER_DNS_MALFORMED,
	COUNTER_DNS_POINTER,
	COUNTER_DNS_QDCOUNT,
	COUNTER_DNS_NAME,
	COUNTER_DNS_SPLIT,
	COUNTER_DNS_ANSWERED,
	/*
	 * toFQDNs (fqdn.h): queries tracked for their answers and those not
	 * tracked (more than one question, a name the parser refuses); answers
	 * of tracked queries read, and addresses learned (written or
	 * refreshed); answers that learn nothing, by reason: nobody asked
	 * (no pending query for the tuple and id, or another question name),
	 * malformed (header, lengths, a section past the message, a label of
	 * 64 or more, a name longer than 253 or with a byte outside
	 * 0x21-0x7e), a compression pointer that points forward, out of the
	 * message or past the jump bound (loops), an RCODE other than 0, not
	 * whole in the packet (IP fragment, TCP segment, larger than
	 * FQDN_MSG_MAX); answer records past FQDN_MAX_RECORDS (not read); and
	 * addresses not learned: the name at its address cap, an address that
	 * four names hold already, a full fqdn_names or fqdn_addrs map.
	 */
	COUNTER_FQDN_TRACKED,
	COUNTER_FQDN_UNTRACKED,
	COUNTER_FQDN_ANSWERS,
	COUNTER_FQDN_LEARNED,
	COUNTER_FQDN_UNSOLICITED,
	COUNTER_FQDN_MALFORMED,
	COUNTER_FQDN_POINTER,
	COUNTER_FQDN_RCODE,
	COUNTER_FQDN_SPLIT,
	COUNTER_FQDN_RECORDS,
	COUNTER_FQDN_CAP,
	COUNTER_FQDN_SLOTS,
	COUNTER_FQDN_FULL,
	/*
	 * Flow cache slots written: a packet of an allowed IPv4 connection
	 * that the cache did not answer (first packet, a deadline to refresh,
	 * FIN or RST, a slot taken by another connection, a new generation).
	 * Against COUNTER_ALLOWED it says how often the cache missed.
	 */
	COUNTER_FLOW_CACHE_FILLS,
	COUNTER_MAX,
};

#define COUNTER_SLOTS 64
_Static_assert(COUNTER_MAX <= COUNTER_SLOTS, "counters array too small");

#endif /* PALISADE_H */
