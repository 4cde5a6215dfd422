// SPDX-License-Identifier: (GPL-2.0-only OR Apache-2.0)
/* Copyright 2026 The Palisade Authors. */

/*
 * Types and limits shared by the tracing programs and, through bpf2go's
 * -type, by the Go package internal/tracing. Every struct here is part of
 * the ABI of pinned maps: change a layout and bump TRACING_ABI so that the
 * agent reloads the units instead of adopting them (docs/tracing.md).
 */
#ifndef PALISADE_TRACING_H
#define PALISADE_TRACING_H

#include <linux/types.h>

/* The layout of the pinned maps; the agent pins under base-v<N>/units-v<N>. */
enum tracing_abi {
	TRACING_ABI = 3, /* 3: proc_info carries the process's arguments */
};

#define MAX_ARGS 6         /* arguments read per hook */
#define MAX_SELECTORS 64   /* selectors per hook */
#define MAX_TERMS 16       /* terms per selector */
#define MAX_HOOKS 32       /* hooks per unit */
#define STR_MAX 256        /* bytes of a string argument, NUL included */
#define LPM_STR 252        /* bytes compared by Prefix and Postfix */
#define PATH_DEPTH 64      /* path components walked */
#define CGROUP_LEVELS 16   /* cgroup ancestors looked up for scope */
#define ANCESTORS 16       /* parents walked by followForks/followChildren */
#define PROT_NAME 64       /* bytes of a protected binary's base name */
#define ARGV_MAX 256       /* bytes of a process's arguments kept (argv, NUL-separated) */

/* Event header, the shape of bpf/palisade.h's. */
struct event_header {
	__u8 type;    /* enum event_type */
	__u8 version; /* the type's layout version */
	__u16 len;    /* bytes of the record, header included */
	__u32 pad;
	__u64 time; /* ns since boot (bpf_ktime_get_boot_ns) */
};

/* Event types of the tracing ring buffer; 0 is never a type. */
enum event_type {
	EVENT_TYPE_TRACE = 16, /* struct trace_event */
};

enum event_version {
	TRACE_EVENT_VERSION = 2, /* 2: the process's and the parent's arguments, the parent's binary */
};

/* How a hook's program is attached: which context it reads. */
enum hook_kind {
	KIND_FENTRY = 1,
	KIND_FEXIT = 2,
	KIND_LSM = 3,
	KIND_TRACEPOINT = 4,
	KIND_UPROBE = 5,
	KIND_KPROBE = 6,
	KIND_KRETPROBE = 7,
	/*
	 * A syscall hook on syscalls/sys_enter_<name> or sys_exit_<name>
	 * (fentry not loadable): arguments from the task's user pt_regs, as
	 * the syscall wrapper reads them; the return value from sys_exit's
	 * ret field.
	 */
	KIND_SYS_ENTER = 8,
	KIND_SYS_EXIT = 9,
};

/* Argument types, as the programs read them. */
enum arg_type {
	AT_NONE = 0,
	AT_INT = 1,      /* integer of size bytes; ARG_SIGNED sign-extends */
	AT_STRING = 2,   /* NUL-terminated string */
	AT_CHAR_BUF = 3, /* buffer of the size held by argument size_index */
	AT_FD = 4,       /* fd of the current task: number and path */
	AT_FILE = 5,     /* struct file *: path */
	AT_PATH = 6,     /* struct path *: path */
	AT_DENTRY = 7,   /* struct dentry *: path within its mount */
	AT_BINPRM = 8,   /* struct linux_binprm *: path of its file */
	AT_SOCK = 9,     /* struct sock * */
	AT_SOCKET = 10,  /* struct socket * */
	AT_SOCKADDR = 11, /* struct sockaddr * */
	AT_SKB = 12,     /* struct sk_buff *: IP header and ports */
	AT_CRED = 13,    /* struct cred * */
	AT_CAPS = 14,    /* kernel_cap_t by value: the 64-bit set */
	AT_DATA_LOC = 15, /* tracepoint __data_loc: u32, offset (low 16 bits) and length (high 16) in the record */
};

#define ARG_SIGNED (1 << 0)
#define ARG_USER (1 << 1) /* pointers are user memory */

struct arg_desc {
	__u8 type;  /* enum arg_type */
	__u8 size;  /* integer or field width in bytes (1, 2, 4, 8) */
	__u8 flags; /* ARG_* */
	__u8 has_size;
	__u16 index;      /* argument index, or field offset on tracepoints */
	__u16 size_index; /* char_buf: where its size is (as index) */
	__u8 size_size;   /* char_buf: width of the size field */
	__u8 decl;        /* the arg's position in the policy's args */
	__u16 pad;
};

#define HF_SYSCALL (1 << 0) /* the function is a syscall wrapper taking pt_regs */
#define HF_AUDIT (1 << 1)   /* report actions without taking them */
#define HF_ALL (1 << 2)     /* every process is in scope */
#define HF_RETURN (1 << 3)  /* the return value is read */

struct hook_cfg {
	__u32 unit;
	__u16 hook;
	__u8 kind;  /* enum hook_kind */
	__u8 flags; /* HF_* */
	__u32 nsel;
	__u32 nargs;
	struct arg_desc args[MAX_ARGS];
	struct arg_desc ret;
};

/* Term kinds. */
enum term_kind {
	T_ARG = 1,
	T_RET = 2,
	T_PID = 3,
	T_BIN = 4,
	T_NS = 5,
	T_CAP = 6,
};

/* Term operators. TF_NEGATE inverts any of them. */
enum term_op {
	OP_INT_IN = 1,  /* value in vals_int */
	OP_GT = 2,      /* value > val */
	OP_LT = 3,      /* value < val */
	OP_MASK = 4,    /* value & val != 0 */
	OP_STR_EQ = 5,  /* string in vals_str */
	OP_PREFIX = 6,  /* a prefix in vals_lpm */
	OP_POSTFIX = 7, /* a suffix in vals_lpm (reversed) */
	OP_SADDR = 8,   /* socket source address in vals_addr */
	OP_DADDR = 9,
	OP_SPORT = 10, /* socket source port in vals_int */
	OP_DPORT = 11,
	OP_SPORT_PRIV = 12, /* source port < 1024 */
	OP_DPORT_PRIV = 13,
	OP_PROTO = 14, /* socket protocol in vals_int */
	OP_FAMILY = 15,
	OP_STATE = 16,
	OP_CAP_ANY = 17, /* capability set & val != 0 */
};

#define TF_NEGATE (1 << 0)
#define TF_SIGNED (1 << 1) /* GT/LT compare signed */
#define TF_FOLLOW (1 << 2) /* followForks / followChildren: ancestors too */
#define TF_NSPID (1 << 3)  /* PID in the caller's PID namespace */

/* Namespaces of T_NS, in term.arg. */
enum ns_kind {
	NS_UTS = 0,
	NS_IPC = 1,
	NS_MNT = 2,
	NS_PID = 3,
	NS_PID_CHILDREN = 4,
	NS_NET = 5,
	NS_TIME = 6,
	NS_TIME_CHILDREN = 7,
	NS_CGROUP = 8,
	NS_USER = 9,
};

/* Capability sets of T_CAP, in term.arg. */
enum cap_set {
	CAPS_EFFECTIVE = 0,
	CAPS_INHERITABLE = 1,
	CAPS_PERMITTED = 2,
};

struct term {
	__u8 kind;  /* enum term_kind */
	__u8 op;    /* enum term_op */
	__u8 arg;   /* argument slot (T_ARG), ns_kind (T_NS), cap_set (T_CAP) */
	__u8 flags; /* TF_* */
	__u32 id;   /* the term's values in the unit's value maps */
	__u64 val;  /* GT/LT threshold, Mask, capability mask */
};

/* Actions, a bit set per selector. */
#define ACT_NOTIFY (1 << 0)
#define ACT_SIGKILL (1 << 1)
#define ACT_DENY (1 << 2)
#define ACT_SIGNAL (1 << 3)
#define ACT_FOLLOWFD (1 << 4)
#define ACT_UNFOLLOWFD (1 << 5)

struct selector {
	__u32 nterms;
	__u32 actions;   /* ACT_* */
	__s32 arg_error; /* Deny's return value */
	__u32 signal;    /* Signal's number */
	__u64 rate_ns;   /* Notify's rateLimit: at most one event per process per rate_ns; 0: none */
	struct term terms[MAX_TERMS];
};

struct int_key {
	__u32 id;
	__u32 pad;
	__u64 val;
};

struct str_key {
	__u32 id;
	__u8 s[STR_MAX];
};

struct lpm_str_key {
	__u32 prefixlen; /* 32 (the id) + 8 per byte */
	__u32 id;
	__u8 s[LPM_STR];
};

struct lpm_addr_key {
	__u32 prefixlen; /* 32 (the id) + bits of the address */
	__u32 id;
	__u8 addr[16]; /* IPv6, or IPv4-mapped IPv6 */
};

struct prot_key {
	__u32 prefixlen; /* 8 per byte; a trailing NUL makes it exact */
	__u8 name[PROT_NAME];
};

#define PROC_PROTECTED (1 << 0)
#define PROC_PROCFS (1 << 1) /* seeded from /proc */
#define PROC_ARGV_TRUNC (1 << 2) /* argv was longer than ARGV_MAX bytes and is cut */

struct proc_info {
	__u32 ppid;
	__u32 flags; /* PROC_* */
	__u64 exec_time;
	__u32 len;      /* bytes of binary */
	__u32 argv_len; /* bytes of argv */
	__u8 binary[STR_MAX];
	/*
	 * The arguments as exec'd (mm->arg_start..arg_end, as
	 * /proc/<pid>/cmdline): each NUL-terminated, the last one cut
	 * without its NUL when PROC_ARGV_TRUNC is set.
	 */
	__u8 argv[ARGV_MAX];
};

/* Rendered socket: the data of an AT_SOCK/SOCKET/SOCKADDR/SKB slot. */
struct sock_info {
	__u16 family; /* AF_INET, AF_INET6 */
	__u16 protocol;
	__u16 sport; /* host order */
	__u16 dport;
	__u8 state;
	__u8 pad[7];
	__u8 saddr[16]; /* IPv6, or IPv4-mapped IPv6 */
	__u8 daddr[16];
};

/* Rendered credentials: the data of an AT_CRED slot. */
struct cred_info {
	__u32 uid, gid, euid, egid;
	__u64 cap_effective, cap_permitted, cap_inheritable;
	__u32 user_ns;
	__u32 pad;
};

#define SLOT_OK (1 << 0)
#define SLOT_TRUNC (1 << 1)
#define SLOT_ERR (1 << 2)

struct arg_slot {
	__u8 type;  /* enum arg_type */
	__u8 flags; /* SLOT_* */
	__u16 len;  /* bytes of data used */
	__u32 pad;
	__u64 ival; /* integer value; fd number; capability */
	__u8 data[STR_MAX];
};

#define SUPP_NONE 0
#define SUPP_AUDIT 1
#define SUPP_PROTECTED 2

struct trace_event {
	struct event_header hdr;
	__u32 unit;
	__u16 hook;
	__u16 selector;
	__u8 action; /* ACT_* bit of the main action */
	__u8 taken;
	__u8 suppressed; /* SUPP_* */
	__u8 nargs;
	__u8 has_ret;
	__u8 proc_flags;
	__u16 pad;
	__u32 pid, tid, ppid, uid;
	__u64 cgroup;
	__s64 ret;
	__u16 argv_len;    /* bytes of argv */
	__u16 pargv_len;   /* bytes of pargv */
	__u8 pproc_flags;  /* the parent's PROC_* */
	__u8 has_parent;   /* the parent is in the process map: pbinary and pargv hold it */
	__u8 pad2[2];
	__u8 binary[STR_MAX];
	__u8 argv[ARGV_MAX];    /* the caller's arguments, as proc_info's */
	__u8 pbinary[STR_MAX];  /* the parent's binary */
	__u8 pargv[ARGV_MAX];   /* the parent's arguments */
	struct arg_slot args[MAX_ARGS];
};

/* Counter outcomes. */
enum outcome {
	OUT_EVENT = 0,     /* an event was written */
	OUT_LOST = 1,      /* the ring buffer was full */
	OUT_PROTECTED = 2, /* an action suppressed on a protected process */
	OUT_AUDIT = 3,     /* an action suppressed by audit mode */
	OUT_HIT = 4,       /* a call in scope; action holds the hook's index */
	OUT_RATELIMITED = 5, /* an event not sent: rateLimit */
};

/* The last event of a selector for a process, for rateLimit. */
struct rate_key {
	__u32 unit;
	__u16 hook;
	__u16 selector;
	__u32 tgid;
	__u32 pad;
};

struct counter_key {
	__u32 unit;
	__u8 action;
	__u8 outcome;
	__u16 pad;
};

_Static_assert(sizeof(struct event_header) == 16, "event header layout");
_Static_assert(sizeof(struct arg_slot) == 272, "arg slot layout");
_Static_assert(sizeof(struct sock_info) == 48, "sock info layout");
_Static_assert(sizeof(struct proc_info) == 24 + STR_MAX + ARGV_MAX, "proc info layout");
_Static_assert(sizeof(struct trace_event) == 72 + 2 * (STR_MAX + ARGV_MAX) + MAX_ARGS * 272, "trace event layout");

#endif
