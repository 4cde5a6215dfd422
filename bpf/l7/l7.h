// SPDX-License-Identifier: (GPL-2.0-only OR Apache-2.0)
/* Copyright 2026 The Palisade Authors. */

/*
 * Types and limits that bpf/l7 shares with Go (bpf2go -type); the limits
 * match internal/engine's HTTP table limits (http_tables.go).
 */
#ifndef PALISADE_L7_H
#define PALISADE_L7_H

#include <linux/types.h>

#define L7_MASK_WORDS 4
#define L7_METHODS 10
#define L7_MAX_ALLOWS 64
#define L7_MAX_HDRREQS 64

/* Per slot (generation being built beside the active one). */
#define L7_MAX_LISTS 1024
#define L7_MAX_DFAS (2 * L7_MAX_LISTS)
#define L7_MAX_STATES 32768
#define L7_MAX_NEXT 262144
#define L7_MAX_ALLOW_ROWS 16384
#define L7_MAX_HDR_ROWS 16384

/* A request head (request line and header fields, blank line included),
 * and a chunk-size line with its trailer section, must fit in this. */
#define L7_HEAD_MAX 16384
#define L7_CHUNK 64

enum l7_mode {
	L7_MODE_HEAD = 0,       /* next bytes start a request head */
	L7_MODE_BODY = 1,       /* remaining bytes of a Content-Length body */
	L7_MODE_CHUNK_SIZE = 2, /* next bytes are a chunk-size line (after CRLF if crlf) */
	L7_MODE_CHUNK_DATA = 3, /* remaining bytes of a chunk's data */
	L7_MODE_REFUSED = 4,    /* a request was refused: every later byte is dropped */
};

enum l7_kind {
	L7_KIND_NEED_MORE = 0,
	L7_KIND_REQUEST = 1, /* a request head, decided */
	L7_KIND_BODY = 2,    /* body bytes, chunk framing included */
	L7_KIND_REFUSE = 3,  /* refused before a decision: reason says why */
	L7_KIND_DROP = 4,    /* bytes after a refusal */
	L7_KIND_PASS = 5,    /* bytes of a socket no binding applies to */
};

/* Counter indices (l7_counters), one per outcome; Go names them. */
enum l7_reason {
	L7_R_ALLOWED = 0,
	L7_R_DENIED = 1,      /* no rule matched (403) */
	L7_R_AUDIT = 2,       /* passed, an audit-mode rule would refuse */
	L7_R_MALFORMED = 3,   /* request line or header field not HTTP/1.x */
	L7_R_OVERSIZE = 4,    /* head over L7_HEAD_MAX */
	L7_R_TLS = 5,         /* a TLS record (0x16) where a request starts */
	L7_R_HTTP2 = 6,       /* the HTTP/2 connection preface */
	L7_R_VERSION = 7,     /* HTTP version other than 1.0 and 1.1 */
	L7_R_FRAMING = 8,     /* body framing the kernel will not guess: TE other than chunked, CL with TE, repeated CL or Host, bad chunk line */
	L7_R_NO_TABLES = 9,   /* the socket's binding names a list the generation lacks */
	L7_R_DROPPED = 10,    /* bytes dropped after a refusal */
	L7_R_REDIRECT_FAIL = 11, /* the 403 could not be queued: the request was dropped */
	L7_R_PASSED = 12,     /* messages of sockets no binding applies to */
	L7_R_SOCKETS = 13,    /* sockets put into l7_socks (egress: l7_esocks) */
	L7_R_UPGRADE = 15,    /* Upgrade or CONNECT: the stream would stop being HTTP/1.x */
	L7_R_INORDER = 14,    /* refusals answered by the server (400) to keep pipelined answers in order, or too short for a 403 */
	L7_R_TARGET = 16,     /* a dot segment, %2e, %2f, %5c or a backslash in the path */
	L7_R_EVLOST = 17,     /* events the ring buffer had no room for */
	L7_R_FASTOPEN = 18,   /* a client socket sent data in its SYN (TCP Fast Open): undecided, so the connection is refused from then on */
	L7_R_UNPARSED = 19,   /* a client socket's TCP holds other bytes than l7_msg passed (a write that began before the connection was established, or passed bytes that never reached TCP), seen by l7_msg: refused from then on */
	L7_R_UNDECIDED = 20,  /* l7_gate dropped a client segment carrying bytes l7_msg did not decide: refused from then on */
	L7_R_MAX = 24,
};

/* l7_counters holds L7_R_MAX counters per direction: the ingress ones
 * (the server's side) at reason, the egress ones (the client's side) at
 * L7_R_MAX + reason. */
enum l7_dir {
	L7_DIR_INGRESS = 0,
	L7_DIR_EGRESS = 1,
};

/* What an event captures of a request (bytes beyond are cut off; the
 * event says the whole length of the target). */
#define L7_EV_METHOD 16
#define L7_EV_PATH 128
#define L7_EV_HOST 64

/* l7_evcfg flags of a slot. */
#define L7_EV_ALLOWED 1 /* an event for every decided request, not only refused ones */

/* A verdict event (ring buffer l7_events): one per refused request or
 * refusal before a decision, and per allowed request when the slot's
 * L7_EV_ALLOWED flag is set. */
struct l7_event {
	__u64 generation;
	__u64 cookie;     /* the socket's */
	__u32 rule;       /* the deciding rule (0: none, e.g. a refusal before a decision) */
	__u32 list;       /* the binding's list (0: none) */
	__u16 status;     /* 403: answered 403; 400: overwritten, the server answers 400; 0: passed, or dropped */
	__u8 dir;         /* enum l7_dir */
	__u8 reason;      /* enum l7_reason */
	__u8 family;      /* 4 or 6 */
	__u8 method_len;
	__u8 host_len;    /* bytes in host (at most L7_EV_HOST) */
	__u8 path_len;    /* bytes in path (at most L7_EV_PATH) */
	__u16 local_port;
	__u16 remote_port;
	__u32 target_len; /* the whole request target's length */
	__u8 local[16];
	__u8 remote[16];
	__u8 method[L7_EV_METHOD];
	__u8 path[L7_EV_PATH];
	__u8 host[L7_EV_HOST];
};

struct l7_mask {
	__u64 w[L7_MASK_WORDS];
};

/* The active slot and each slot's generation and hash seed. */
struct l7_config {
	__u64 generation;
	__u64 seed;
};

struct l7_active {
	__u32 slot;
	__u32 pad;
};

/* Which sockets are put into l7_socks: the server side of a connection to
 * addr:port (addr all zero: any local address of the family). */
struct l7_port_key {
	__u16 port;
	__u16 family; /* 4 or 6 */
	__u8 addr[16];
};

/* Egress (l7_eports): the client side of a connection from addr (all
 * zero: any local address of the family) to a remote port. */

/* A binding: requests to addr:port from a peer of identity (0: any peer
 * the more specific entry does not name) are decided by list. */
struct l7_bind_key {
	__u32 slot;
	__u32 identity;
	__u16 port;
	__u16 family;
	__u8 addr[16];
};

struct l7_bind {
	__u32 list;
	__u32 flags;
};

struct l7_peer_key {
	__u32 prefixlen; /* of family and addr, in bits: 32 + prefix */
	__u32 family;
	__u8 addr[16];
};

struct l7_list_key {
	__u32 slot;
	__u32 list;
};

struct l7_dfa_ref {
	__u32 classes; /* row of l7_classes */
	__u32 next;    /* first row of l7_next */
	__u32 accept;  /* first row of l7_accept */
	__u32 nclasses;
};

struct l7_list {
	struct l7_dfa_ref path;
	struct l7_dfa_ref host;
	__u32 allows; /* first row of l7_allows */
	__u32 nallows;
	__u32 hdrreqs; /* first row of l7_hdrreqs */
	__u32 nhdrreqs;
	struct l7_mask methods[L7_METHODS];
	struct l7_mask path_any;
	struct l7_mask host_any;
};

struct l7_classes {
	__u8 c[256];
};

struct l7_allow {
	__u32 rule;
	__u8 audit;
	__u8 any;
	__u8 pad[2];
	struct l7_mask rules;
};

struct l7_hdr_key {
	__u32 slot;
	__u32 list;
	__u64 name;  /* l7 hash of the lower-cased name */
	__u64 value; /* l7 hash of the value, or 0 with has_value 0 */
	__u32 has_value;
	__u32 pad;
};

/* The per-socket state: the framing mode, and what the parser found for
 * the message it framed last (the verdict program applies it). */
struct l7_sock {
	__u64 remaining; /* BODY, CHUNK_DATA: bytes left */
	__u8 mode;
	__u8 crlf;       /* CHUNK_SIZE: a CRLF ends the previous chunk's data first */
	__u8 passed;     /* bytes were passed to the server */
	__u8 pad;
	__u32 requests;  /* requests decided on this connection */
	/* the pending message */
	__u32 len;
	__u8 kind;
	__u8 reason;
	__u8 pad1;
	__u8 next_mode;
	__u64 next_remaining;
	__u32 rule;
	__u32 wseq;      /* the server's write_seq when bytes were last passed */
};

/* l7_esock flags. */
#define L7_ES_CONNECTING 1 /* connect sent the SYN; not established yet */
#define L7_ES_GATED 2      /* l7_gate dropped a segment: counted, refused */

/* The state of a client socket (egress), in socket storage: the framing
 * state and the result of the last message, the socket's cookie (its key
 * in l7_esocks) and the client's rcv_nxt when bytes were last passed.
 * l7_gate passes a segment's payload only up to wbase + wpassed. */
struct l7_esock {
	struct l7_sock s;
	__u64 cookie;
	__u32 rseq;
	__u32 wbase;   /* the sequence number of the connection's first data byte (ISN + 1) */
	__u32 wpassed; /* bytes l7_msg let into TCP since: exactly those of its SK_PASS verdicts */
	__u32 flags;   /* L7_ES_* */
};

/* BPF_PROG_TEST_RUN of l7_test_parse: in, the socket state and the list;
 * out, the result. */
struct l7_test_in {
	struct l7_sock sock;
	__u32 list;
	__u32 has_list;
	__u32 off; /* the message starts here (test runs need 14 bytes) */
	__u32 resume; /* resume the scan of the last run */
};

#endif
