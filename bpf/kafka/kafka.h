// SPDX-License-Identifier: (GPL-2.0-only OR Apache-2.0)
/* Copyright 2026 The Palisade Authors. */

/*
 * Types and limits that bpf/kafka shares with Go (bpf2go -type); the
 * limits match internal/engine's Kafka table limits (kafka_tables.go).
 */
#ifndef PALISADE_KAFKA_H
#define PALISADE_KAFKA_H

#include <linux/types.h>

/* API keys 0..20 have names (the schema's #KafkaAPIKey, numbered as
 * Kafka numbers them); every other key is KAFKA_KEY_OTHER. */
#define KAFKA_NAMED_KEYS 21
#define KAFKA_KEY_OTHER 21
#define KAFKA_KEYS 22

#define KAFKA_MAX_RULES 64  /* Kafka rules of one list: one 64-bit mask */
#define KAFKA_MAX_ALLOWS 64 /* allow rules of one list */
#define KAFKA_MAX_LISTS 1024 /* per slot */
#define KAFKA_MAX_VALS 16384 /* version, client ID and topic entries per slot */
#define KAFKA_VAL_MAX 255   /* longest client ID or topic the tables hold */

/* A request frame (size field included) larger than this is refused. */
#define KAFKA_FRAME_MAX (1 << 20)
/* Topics of one Metadata request the kernel reads; more: refused where a
 * rule needs the topic. */
#define KAFKA_MAX_TOPICS 16

enum kafka_kind {
	KAFKA_KIND_NEED_MORE = 0,
	KAFKA_KIND_PASS = 1,    /* a frame of a socket no binding applies to */
	KAFKA_KIND_REQUEST = 2, /* a request, decided: reason says how */
	KAFKA_KIND_CLOSE = 3,   /* refused: answered with a frame that makes the client close the connection */
	KAFKA_KIND_ANSWER = 4,  /* refused: answered with TOPIC_AUTHORIZATION_FAILED in its place */
	KAFKA_KIND_DROP = 5,    /* bytes after a closing refusal */
};

/* Kafka's TOPIC_AUTHORIZATION_FAILED. */
#define KAFKA_TOPIC_AUTHORIZATION_FAILED 29
/* Kafka's LEADER_NOT_AVAILABLE (retriable): the allowed topics of a
 * refused Metadata request. */
#define KAFKA_LEADER_NOT_AVAILABLE 5

/* Counter indices (kafka_counters); Go names them. */
enum kafka_reason {
	KAFKA_R_ALLOWED = 0,
	KAFKA_R_DENIED = 1,    /* no rule admits the request */
	KAFKA_R_AUDIT = 2,     /* passed; an audit-mode rule would refuse */
	KAFKA_R_MALFORMED = 3, /* size, header or a field not Kafka's encoding */
	KAFKA_R_OVERSIZE = 4,  /* frame over KAFKA_FRAME_MAX */
	KAFKA_R_VERSION = 5,   /* a version of a topic-carrying key the kernel does not read, a rule needing the topic */
	KAFKA_R_TOPICS = 6,    /* more topics than the kernel reads, a rule needing the topic */
	KAFKA_R_UNPARSED = 7,  /* a key whose topics the kernel does not read (or topic IDs), a rule needing the topic */
	KAFKA_R_TAGGED = 8,    /* tagged fields in a header or topic entry */
	KAFKA_R_NO_TABLES = 9, /* the binding names a list the generation lacks */
	KAFKA_R_PASSED = 10,   /* frames of sockets no binding applies to */
	KAFKA_R_SOCKETS = 11,  /* sockets put into kafka_socks */
	KAFKA_R_CLOSED = 12,   /* refusals answered with a closing frame */
	KAFKA_R_ANSWERED = 13, /* refusals answered with TOPIC_AUTHORIZATION_FAILED */
	KAFKA_R_ANSWER_FAIL = 14, /* the answer, or an allowed frame, could not be written or queued: the request was dropped */
	KAFKA_R_DROPPED = 15,  /* frames dropped after a closing refusal */
	KAFKA_R_EVLOST = 16,   /* verdict events the ring buffer had no room for */
	/* the client's side only (egress): */
	KAFKA_R_UNDECIDED = 17,  /* a segment with bytes kafka_msg did not decide (kafka_gate dropped it) */
	KAFKA_R_FASTOPEN = 18,   /* data in the SYN (TCP Fast Open) */
	KAFKA_R_UNPARSED_WRITE = 19, /* TCP holds bytes kafka_msg did not decide, or lacks some it passed */
	KAFKA_R_MAX = 20,
};

/* kafka_config flags of a slot. */
#define KAFKA_EV_ALLOWED 1 /* an event for every decided request, not only refused ones */

struct kafka_config {
	__u64 generation;
	__u32 flags;
	__u32 pad;
};

/* What an event holds of the client ID and the topic (longer ones are
 * cut off; the event says their whole lengths). */
#define KAFKA_EV_CLIENT 64
#define KAFKA_EV_TOPIC 128

/* A verdict event (ring buffer kafka_events): one per refused request,
 * and per request passed with an audit-mode refusal; one per allowed
 * request too when the slot's KAFKA_EV_ALLOWED flag is set. */
struct kafka_event {
	__u64 generation;
	__u64 cookie;      /* the socket's (the broker's, or the client's on egress) */
	__u32 rule;        /* the deciding rule (0: none, e.g. a malformed request) */
	__u32 list;        /* the binding's list */
	__s32 correlation; /* the request's correlation ID */
	__s16 api_key;
	__s16 api_version;
	__u8 reason;       /* enum kafka_reason */
	__u8 answer;       /* enum kafka_kind: REQUEST passed, ANSWER error 29 in its place, CLOSE closing frame; NEED_MORE (0) dropped */
	__u8 family;       /* 4 or 6 */
	__u8 client_len;   /* bytes in client (at most KAFKA_EV_CLIENT) */
	__u8 topic_len;    /* bytes in topic (at most KAFKA_EV_TOPIC) */
	__u8 dir;          /* enum kafka_dir: whose socket (local: the broker's, or the client's) */
	__u16 local_port;
	__u16 remote_port;
	__u16 client_full; /* the client ID's whole length */
	__u16 topic_full;  /* the topic's whole length (0: no topic was read) */
	__u16 pad2;
	__u8 local[16];
	__u8 remote[16];
	__u8 client[KAFKA_EV_CLIENT];
	__u8 topic[KAFKA_EV_TOPIC];
};

struct kafka_active {
	__u32 slot;
	__u32 pad;
};

/* Which sockets are put into kafka_socks: the server side of a connection
 * to addr:port (addr all zero: any local address of the family). */
struct kafka_port_key {
	__u16 port;
	__u16 family; /* 4 or 6 */
	__u8 addr[16];
};

struct kafka_bind_key {
	__u32 slot;
	__u32 identity;
	__u16 port;
	__u16 family;
	__u8 addr[16];
};

struct kafka_bind {
	__u32 list;
	__u32 flags;
};

struct kafka_peer_key {
	__u32 prefixlen; /* of family and addr, in bits: 32 + prefix */
	__u32 family;
	__u8 addr[16];
};

struct kafka_list_key {
	__u32 slot;
	__u32 list;
};

struct kafka_allow {
	__u32 rule;
	__u8 audit;
	__u8 any;
	__u8 pad[2];
	__u64 rules;
};

/* One list: rule r admits a request with topic t when r is in keys[key],
 * in ver_any or the version's entry, in client_any or the client ID's
 * entry, in topic_any or t's entry (kafka_vals). */
struct kafka_list {
	__u64 keys[KAFKA_KEYS];
	__u64 ver_any;
	__u64 client_any;
	__u64 topic_any;
	__u32 nallows;
	__u32 pad;
	struct kafka_allow allows[KAFKA_MAX_ALLOWS];
};

enum kafka_val_kind {
	KAFKA_VAL_VERSION = 1, /* val: the version, 2 bytes little endian */
	KAFKA_VAL_CLIENT = 2,
	KAFKA_VAL_TOPIC = 3,
};

struct kafka_val_key {
	__u32 slot;
	__u32 list;
	__u16 kind;
	__u16 len;
	__u8 val[KAFKA_VAL_MAX + 1]; /* zero after len */
};

/* The topic names of the last Metadata or Produce request, and the
 * partitions of a Produce request's topic, for its answer. */
#define KAFKA_NAMES_MAX 1024
#define KAFKA_MAX_PARTS 64

struct kafka_names {
	__u32 len;    /* bytes of buf used */
	__u32 count;  /* topics recorded */
	__u32 ok;     /* every topic of the request is recorded */
	__u32 denied; /* bit i: topic i is refused */
	__u32 nparts; /* Produce: partitions recorded */
	__u32 acks;   /* Produce: the request's acks (0: no response is due) */
	__u8 nlen[KAFKA_MAX_TOPICS];
	__u32 parts[KAFKA_MAX_PARTS];
	__u8 buf[KAFKA_NAMES_MAX + KAFKA_VAL_MAX + 1];
};

/* A socket's scratch: the key of value lookups, the names. */
struct kafka_scratch {
	struct kafka_val_key key;
	struct kafka_names names;
};

/* The per-socket state, and what the parser found for the frame it
 * framed last (the verdict applies it). */
struct kafka_sock {
	__u32 len;
	__u8 kind;
	__u8 reason;
	__u8 mode; /* 1: a closing refusal was sent; every later byte is dropped */
	__u8 pad;
	__u32 rule;
	__u32 requests;
	__s16 api_key;
	__s16 api_version;
	__s32 correlation;
	__u32 topics; /* topics read */
	__u32 answer; /* KAFKA_KIND_ANSWER: the answer's length */
	__u8 passed;  /* frames were passed to the broker */
	__u8 pad2[3];
	__u32 wseq;   /* the broker's write_seq when a frame was last passed */
	/* for the frame's event: */
	__u64 generation; /* of the slot that decided it */
	__u32 list;       /* the binding's (0: none) */
	__u32 evall;      /* the slot's KAFKA_EV_ALLOWED */
	__u32 client_len; /* the client ID's, at frame offset 14 */
	__u32 topic_off;  /* the deciding topic's name, from the frame's start */
	__u32 topic_len;  /* 0: no topic was read */
	__u32 pad3;
};

/* BPF_PROG_TEST_RUN of kafka_test_parse: in, the list; out, the result. */
struct kafka_test_in {
	__u32 list;
	__u32 has_list;
	__u32 off; /* the frame starts here (test runs need 14 bytes) */
	__u32 max; /* the receive buffer the parser is told (0: FrameMax) */
};

/* ---- egress: the client's side ---- */

enum kafka_dir {
	KAFKA_DIR_INGRESS = 0, /* the broker's side: kafka_parser, kafka_verdict */
	KAFKA_DIR_EGRESS = 1,  /* the client's side: kafka_msg, kafka_gate */
};

/* The longest request frame a client may write (size field included):
 * kafka_msg holds (corks) a frame until it is whole, and the kernel holds
 * at most 17 pieces of a message; a longer frame is refused, oversize. */
#define KAFKA_EFRAME_MAX (256 << 10)

/* The longest answer written on the client's side (an answer is as long
 * as its content, not as the request). */
#define KAFKA_ANS_MAX 8192

struct kafka_abuf {
	__u8 b[KAFKA_ANS_MAX + 256];
};

/* kafka_esock flags */
#define KAFKA_ES_CONNECTING 1 /* between TCP_CONNECT_CB and ACTIVE_ESTABLISHED */
#define KAFKA_ES_GATED 2      /* kafka_gate refused the connection */

/* A client socket's egress state (kafka_esk). The bytes TCP sends from
 * wbase on are exactly the wpassed bytes kafka_msg decided, unless bytes
 * reached TCP without it: kafka_gate drops any segment past them. */
struct kafka_esock {
	__u64 cookie;
	__u32 wbase;   /* the first data byte's sequence number */
	__u32 wpassed; /* bytes of SK_PASS verdicts */
	__u32 flags;
	__u32 pad;
};

#endif
