//go:build ignore

// SPDX-License-Identifier: (GPL-2.0-only OR Apache-2.0)
/* Copyright 2026 The Palisade Authors. */

/*
 * Palisade's tracing programs: one generic program per hook kind, loaded
 * once per hook of a policy with the hook's target as its attach point,
 * the hook identified at run time by the attach cookie. What a hook reads
 * and matches is data in the unit's maps (hooks, selectors, value sets),
 * never code; the process tracker and the ring buffer are shared by all
 * units. See docs/tracing.md.
 */
#include <linux/types.h>
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_endian.h>

#include "kernel.h"
#include "tracing.h"

char __license[] SEC("license") = "Dual BSD/GPL";

#define SIGKILL 9
#define AF_INET 2
#define AF_INET6 10

/* ---- the unit's maps: each unit loads its own ---- */

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, MAX_HOOKS);
	__type(key, __u32);
	__type(value, struct hook_cfg);
} hooks SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, MAX_HOOKS * MAX_SELECTORS);
	__type(key, __u32);
	__type(value, struct selector);
} selectors SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct int_key);
	__type(value, __u8);
} vals_int SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct str_key);
	__type(value, __u8);
} vals_str SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, 16384);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct lpm_str_key);
	__type(value, __u8);
} vals_lpm SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, 16384);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct lpm_addr_key);
	__type(value, __u8);
} vals_addr SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, __u64);
	__type(value, __u8);
} scope SEC(".maps");

/* ---- the shared base ---- */

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, __u32);
	__type(value, struct proc_info);
} procs SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, __u32);
	__type(value, __u8);
} protected_pids SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, 256);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct prot_key);
	__type(value, __u8);
} protected_names SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 22);
} events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, 8192);
	__type(key, struct counter_key);
	__type(value, __u64);
} counters SEC(".maps");

/* rateLimit: the last event's time by (unit, hook, selector, process). */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, struct rate_key);
	__type(value, __u64);
} ratelimit SEC(".maps");

struct scratch {
	struct trace_event ev;
	struct arg_slot retslot;
	struct hook_cfg cfg;
	__u64 raw[MAX_ARGS];
	__u64 rawsize[MAX_ARGS];
	struct str_key skey;
	struct lpm_str_key lkey;
	struct lpm_addr_key akey;
	struct prot_key pkey;
	struct proc_info pinfo;
	__u8 pbuf[1024];
	/* Unused: names the ABI's types in the object's BTF for bpf2go. */
	struct {
		enum tracing_abi abi;
		enum event_type et;
		enum event_version ev;
		enum hook_kind hk;
		enum arg_type at;
		enum term_kind tk;
		enum term_op to;
		enum ns_kind nk;
		enum cap_set cs;
		enum outcome oc;
		struct sock_info si;
		struct cred_info ci;
	} abi;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct scratch);
} heap SEC(".maps");

static __always_inline struct scratch *get_scratch(void)
{
	__u32 zero = 0;
	return bpf_map_lookup_elem(&heap, &zero);
}

static __always_inline void count(__u32 unit, __u8 action, __u8 outcome)
{
	struct counter_key k = {.unit = unit, .action = action, .outcome = outcome};
	__u64 one = 1, *v = bpf_map_lookup_elem(&counters, &k);
	if (v)
		*v += 1;
	else
		bpf_map_update_elem(&counters, &k, &one, BPF_NOEXIST);
}

/* ---- paths: a bounded dentry walk that crosses mounts ---- */

struct walk {
	struct dentry *d;
	struct mount *mnt;
	__u32 pos;
	__u8 trunc;
};

static __always_inline struct mount *real_mount(struct vfsmount *v)
{
	return (struct mount *)((void *)v - bpf_core_field_offset(struct mount, mnt));
}

static long walk_step(__u32 i, struct walk *w)
{
	struct scratch *s = get_scratch();
	if (!s)
		return 1;
	struct dentry *d = w->d;
	struct mount *mnt = w->mnt;
	struct vfsmount *vm = (struct vfsmount *)((void *)mnt + bpf_core_field_offset(struct mount, mnt));
	struct dentry *root = BPF_CORE_READ(vm, mnt_root);
	if (d == root) {
		struct mount *parent = BPF_CORE_READ(mnt, mnt_parent);
		if (!parent || parent == mnt)
			return 1;
		w->d = BPF_CORE_READ(mnt, mnt_mountpoint);
		w->mnt = parent;
		return 0;
	}
	struct dentry *p = BPF_CORE_READ(d, d_parent);
	if (!p || p == d)
		return 1;
	__u32 len = BPF_CORE_READ(d, d_name.len);
	const unsigned char *name = BPF_CORE_READ(d, d_name.name);
	if (len > 255)
		len = 255;
	if (len + 1 > w->pos) {
		w->trunc = 1;
		return 1;
	}
	w->pos -= len;
	bpf_probe_read_kernel(&s->pbuf[w->pos & 511], len & 255, name);
	w->pos -= 1;
	s->pbuf[w->pos & 511] = '/';
	w->d = p;
	return 0;
}

static __always_inline void render_dentry(struct scratch *s, struct arg_slot *slot, struct dentry *d);

/* Renders the path of (d, vm) into slot->data, crossing mounts. */
static __always_inline void render_path(struct scratch *s, struct arg_slot *slot, struct dentry *d, struct vfsmount *vm)
{
	struct walk w = {.d = d, .mnt = vm ? real_mount(vm) : 0, .pos = 512};
	if (!d) {
		slot->flags |= SLOT_ERR;
		return;
	}
	if (!vm) {
		render_dentry(s, slot, d);
		return;
	}
	bpf_loop(PATH_DEPTH, walk_step, &w, 0);
	if (w.pos == 512) {
		slot->data[0] = '/';
		slot->len = 1;
	} else {
		__u32 n = 512 - w.pos;
		if (n > STR_MAX - 1) {
			n = STR_MAX - 1;
			w.trunc = 1;
		}
		bpf_probe_read_kernel(slot->data, n & 255, &s->pbuf[w.pos & 511]);
		slot->len = n;
	}
	if (w.trunc)
		slot->flags |= SLOT_TRUNC;
	slot->flags |= SLOT_OK;
}

/* A dentry without its mount: walk d_parent up to its file system's root. */
struct dwalk {
	struct dentry *d;
	__u32 pos;
	__u8 trunc;
};

static long dwalk_step(__u32 i, struct dwalk *w)
{
	struct scratch *s = get_scratch();
	if (!s)
		return 1;
	struct dentry *d = w->d;
	struct dentry *p = BPF_CORE_READ(d, d_parent);
	if (!p || p == d)
		return 1;
	__u32 len = BPF_CORE_READ(d, d_name.len);
	const unsigned char *name = BPF_CORE_READ(d, d_name.name);
	if (len > 255)
		len = 255;
	if (len + 1 > w->pos) {
		w->trunc = 1;
		return 1;
	}
	w->pos -= len;
	bpf_probe_read_kernel(&s->pbuf[w->pos & 511], len & 255, name);
	w->pos -= 1;
	s->pbuf[w->pos & 511] = '/';
	w->d = p;
	return 0;
}

static __always_inline void render_dentry(struct scratch *s, struct arg_slot *slot, struct dentry *d)
{
	struct dwalk w = {.d = d, .pos = 512};
	if (!d) {
		slot->flags |= SLOT_ERR;
		return;
	}
	bpf_loop(PATH_DEPTH, dwalk_step, &w, 0);
	if (w.pos == 512) {
		slot->data[0] = '/';
		slot->len = 1;
	} else {
		__u32 n = 512 - w.pos;
		if (n > STR_MAX - 1) {
			n = STR_MAX - 1;
			w.trunc = 1;
		}
		bpf_probe_read_kernel(slot->data, n & 255, &s->pbuf[w.pos & 511]);
		slot->len = n;
	}
	if (w.trunc)
		slot->flags |= SLOT_TRUNC;
	slot->flags |= SLOT_OK;
}

static __always_inline void render_file(struct scratch *s, struct arg_slot *slot, struct file *f)
{
	if (!f) {
		slot->flags |= SLOT_ERR;
		return;
	}
	render_path(s, slot, BPF_CORE_READ(f, f_path.dentry), BPF_CORE_READ(f, f_path.mnt));
}

/* ---- sockets ---- */

static __always_inline void v4mapped(__u8 *dst, __u32 a)
{
	__builtin_memset(dst, 0, 10);
	dst[10] = 0xff;
	dst[11] = 0xff;
	__builtin_memcpy(dst + 12, &a, 4);
}

static __always_inline void render_sock(struct arg_slot *slot, struct sock *sk)
{
	struct sock_info *si = (struct sock_info *)slot->data;
	if (!sk) {
		slot->flags |= SLOT_ERR;
		return;
	}
	si->family = BPF_CORE_READ(sk, __sk_common.skc_family);
	si->protocol = BPF_CORE_READ(sk, sk_protocol);
	si->state = BPF_CORE_READ(sk, __sk_common.skc_state);
	si->sport = BPF_CORE_READ(sk, __sk_common.skc_num);
	si->dport = bpf_ntohs(BPF_CORE_READ(sk, __sk_common.skc_dport));
	if (si->family == AF_INET) {
		v4mapped(si->saddr, BPF_CORE_READ(sk, __sk_common.skc_rcv_saddr));
		v4mapped(si->daddr, BPF_CORE_READ(sk, __sk_common.skc_daddr));
	} else if (si->family == AF_INET6) {
		BPF_CORE_READ_INTO(&si->saddr, sk, __sk_common.skc_v6_rcv_saddr);
		BPF_CORE_READ_INTO(&si->daddr, sk, __sk_common.skc_v6_daddr);
	}
	slot->len = sizeof(*si);
	slot->flags |= SLOT_OK;
}

struct sa_raw {
	__u16 family;
	__u16 port;
	__u32 addr4;     /* sockaddr_in's sin_addr; sockaddr_in6's flowinfo */
	__u8 addr6[16];  /* sockaddr_in6's sin6_addr */
};

static __always_inline void render_sockaddr(struct arg_slot *slot, void *sa, int user)
{
	struct sock_info *si = (struct sock_info *)slot->data;
	struct sa_raw r = {};
	long err = user ? bpf_probe_read_user(&r, sizeof(r), sa) : bpf_probe_read_kernel(&r, sizeof(r), sa);
	if (err || (r.family != AF_INET && r.family != AF_INET6)) {
		if (err) {
			slot->flags |= SLOT_ERR;
			return;
		}
	}
	/*
	 * A sockaddr has one address and port. Tetragon compares them with
	 * SAddr/SPort (the validator's operators for sockaddr); a connect's
	 * sockaddr is its destination, so DAddr/DPort compare them too: both
	 * sides hold the one address.
	 */
	si->family = r.family;
	si->dport = bpf_ntohs(r.port);
	si->sport = si->dport;
	if (r.family == AF_INET)
		v4mapped(si->daddr, r.addr4);
	else if (r.family == AF_INET6)
		__builtin_memcpy(si->daddr, r.addr6, 16);
	__builtin_memcpy(si->saddr, si->daddr, 16);
	slot->len = sizeof(*si);
	slot->flags |= SLOT_OK;
}

struct iphdr_min {
	__u8 vhl;
	__u8 tos;
	__u16 tot_len;
	__u16 id;
	__u16 frag;
	__u8 ttl;
	__u8 proto;
	__u16 csum;
	__u32 saddr;
	__u32 daddr;
};

struct ip6hdr_min {
	__u32 vtf;
	__u16 plen;
	__u8 nexthdr;
	__u8 hop;
	__u8 saddr[16];
	__u8 daddr[16];
};

static __always_inline void render_skb(struct arg_slot *slot, struct sk_buff *skb)
{
	struct sock_info *si = (struct sock_info *)slot->data;
	if (!skb) {
		slot->flags |= SLOT_ERR;
		return;
	}
	unsigned char *head = BPF_CORE_READ(skb, head);
	__u16 nh = BPF_CORE_READ(skb, network_header);
	__u16 th = BPF_CORE_READ(skb, transport_header);
	__u8 v = 0;
	bpf_probe_read_kernel(&v, 1, head + nh);
	__u16 ports[2] = {};
	if ((v >> 4) == 4) {
		struct iphdr_min ip = {};
		bpf_probe_read_kernel(&ip, sizeof(ip), head + nh);
		si->family = AF_INET;
		si->protocol = ip.proto;
		v4mapped(si->saddr, ip.saddr);
		v4mapped(si->daddr, ip.daddr);
		if (th == nh)
			th = nh + (ip.vhl & 0xf) * 4;
	} else if ((v >> 4) == 6) {
		struct ip6hdr_min ip6 = {};
		bpf_probe_read_kernel(&ip6, sizeof(ip6), head + nh);
		si->family = AF_INET6;
		si->protocol = ip6.nexthdr;
		__builtin_memcpy(si->saddr, ip6.saddr, 16);
		__builtin_memcpy(si->daddr, ip6.daddr, 16);
		if (th == nh)
			th = nh + 40;
	} else {
		slot->flags |= SLOT_ERR;
		return;
	}
	if (si->protocol == 6 || si->protocol == 17 || si->protocol == 132) {
		bpf_probe_read_kernel(ports, sizeof(ports), head + th);
		si->sport = bpf_ntohs(ports[0]);
		si->dport = bpf_ntohs(ports[1]);
	}
	slot->len = sizeof(*si);
	slot->flags |= SLOT_OK;
}

static __always_inline void render_cred(struct arg_slot *slot, struct cred *c)
{
	struct cred_info *ci = (struct cred_info *)slot->data;
	if (!c) {
		slot->flags |= SLOT_ERR;
		return;
	}
	ci->uid = BPF_CORE_READ(c, uid.val);
	ci->gid = BPF_CORE_READ(c, gid.val);
	ci->euid = BPF_CORE_READ(c, euid.val);
	ci->egid = BPF_CORE_READ(c, egid.val);
	ci->cap_effective = BPF_CORE_READ(c, cap_effective.val);
	ci->cap_permitted = BPF_CORE_READ(c, cap_permitted.val);
	ci->cap_inheritable = BPF_CORE_READ(c, cap_inheritable.val);
	ci->user_ns = BPF_CORE_READ(c, user_ns, ns.inum);
	slot->len = sizeof(*ci);
	slot->flags |= SLOT_OK;
}

/* ---- raw argument values ---- */

static __always_inline __u64 reg_at(struct pt_regs *r, __u16 i, int syscall)
{
	switch (i) {
	case 0:
		return BPF_CORE_READ(r, di);
	case 1:
		return BPF_CORE_READ(r, si);
	case 2:
		return BPF_CORE_READ(r, dx);
	case 3:
		if (syscall)
			return BPF_CORE_READ(r, r10);
		return BPF_CORE_READ(r, cx);
	case 4:
		return BPF_CORE_READ(r, r8);
	case 5:
		return BPF_CORE_READ(r, r9);
	}
	return 0;
}

static __always_inline __u64 raw_arg(void *ctx, __u8 kind, struct hook_cfg *h, __u16 idx, __u8 size)
{
	__u64 v = 0;
	int sys = h->flags & HF_SYSCALL;
	switch (kind) {
	case KIND_FENTRY:
	case KIND_FEXIT:
	case KIND_LSM:
		if (sys) {
			bpf_get_func_arg(ctx, 0, &v);
			return reg_at((struct pt_regs *)v, idx, 1);
		}
		bpf_get_func_arg(ctx, idx, &v);
		return v;
	case KIND_KPROBE:
	case KIND_KRETPROBE:
		if (sys)
			return reg_at((struct pt_regs *)BPF_CORE_READ((struct pt_regs *)ctx, di), idx, 1);
		return reg_at((struct pt_regs *)ctx, idx, 0);
	case KIND_UPROBE:
		return reg_at((struct pt_regs *)ctx, idx, 0);
	case KIND_SYS_ENTER:
	case KIND_SYS_EXIT:
		/* ctx is the task's user pt_regs here (run_hook). */
		return reg_at((struct pt_regs *)ctx, idx, 1);
	case KIND_TRACEPOINT:
		if (size > 8)
			size = 8;
		bpf_probe_read_kernel(&v, size & 15, (void *)ctx + (idx & 0xfff));
		return v;
	}
	return 0;
}

static __always_inline __u64 int_of(__u64 v, __u8 size, __u8 flags)
{
	if (size >= 8 || size == 0)
		return v;
	int sh = 64 - size * 8;
	if (flags & ARG_SIGNED)
		return (__u64)(((__s64)(v << sh)) >> sh);
	return (v << sh) >> sh;
}

/* ---- decoding arguments into slots ---- */

/* Global: reads argument i into its slot. */
__attribute__((noinline)) int tr_decode_arg(__u32 i)
{
	struct scratch *s = get_scratch();
	if (!s || i >= MAX_ARGS)
		return 0;
	struct arg_desc *a = &s->cfg.args[i];
	struct arg_slot *slot = &s->ev.args[i];
	__u64 raw = s->raw[i];
	int user = a->flags & ARG_USER;
	long n;

	slot->type = a->type;
	slot->flags = 0;
	slot->len = 0;
	slot->ival = 0;
	__builtin_memset(slot->data, 0, STR_MAX);

	switch (a->type) {
	case AT_INT:
		slot->ival = int_of(raw, a->size, a->flags);
		slot->flags = SLOT_OK;
		break;
	case AT_CAPS:
		slot->ival = raw;
		slot->flags = SLOT_OK;
		break;
	case AT_STRING:
		n = user ? bpf_probe_read_user_str(slot->data, STR_MAX, (void *)raw)
			 : bpf_probe_read_kernel_str(slot->data, STR_MAX, (void *)raw);
		if (n <= 0) {
			slot->flags = SLOT_ERR;
			break;
		}
		slot->len = n - 1;
		slot->flags = SLOT_OK;
		if (n == STR_MAX)
			slot->flags |= SLOT_TRUNC;
		break;
	case AT_DATA_LOC: {
		/* raw: the string's address in the record; rawsize: its length. */
		__u64 sz = s->rawsize[i];
		if (!raw || !sz) {
			slot->flags = SLOT_OK;
			break;
		}
		n = bpf_probe_read_kernel_str(slot->data, STR_MAX, (void *)raw);
		if (n <= 0) {
			slot->flags = SLOT_ERR;
			break;
		}
		slot->len = n - 1;
		slot->flags = SLOT_OK;
		if (n == STR_MAX && sz > STR_MAX)
			slot->flags |= SLOT_TRUNC;
		break;
	}
	case AT_CHAR_BUF: {
		__u64 sz = STR_MAX;
		if (a->has_size)
			sz = int_of(s->rawsize[i], a->size_size, ARG_SIGNED);
		if ((__s64)sz < 0) {
			slot->flags = SLOT_ERR;
			break;
		}
		if (sz > STR_MAX) {
			sz = STR_MAX;
			slot->flags |= SLOT_TRUNC;
		}
		n = user ? bpf_probe_read_user(slot->data, sz & 0x1ff, (void *)raw)
			 : bpf_probe_read_kernel(slot->data, sz & 0x1ff, (void *)raw);
		if (n) {
			slot->flags = SLOT_ERR;
			break;
		}
		slot->ival = sz;
		slot->len = sz;
		slot->flags |= SLOT_OK;
		break;
	}
	case AT_FD: {
		__s32 fd = (__s32)raw;
		slot->ival = fd;
		struct task_struct *t = (struct task_struct *)bpf_get_current_task();
		struct fdtable *fdt = BPF_CORE_READ(t, files, fdt);
		unsigned int max = BPF_CORE_READ(fdt, max_fds);
		if (fd < 0 || (unsigned int)fd >= max) {
			slot->flags = SLOT_ERR;
			break;
		}
		struct file **fds = BPF_CORE_READ(fdt, fd);
		struct file *f = 0;
		bpf_probe_read_kernel(&f, sizeof(f), &fds[fd]);
		render_file(s, slot, f);
		break;
	}
	case AT_FILE:
		render_file(s, slot, (struct file *)raw);
		break;
	case AT_PATH: {
		struct path *p = (struct path *)raw;
		if (!p) {
			slot->flags = SLOT_ERR;
			break;
		}
		render_path(s, slot, BPF_CORE_READ(p, dentry), BPF_CORE_READ(p, mnt));
		break;
	}
	case AT_DENTRY:
		render_dentry(s, slot, (struct dentry *)raw);
		break;
	case AT_BINPRM:
		render_file(s, slot, BPF_CORE_READ((struct linux_binprm *)raw, file));
		break;
	case AT_SOCK:
		render_sock(slot, (struct sock *)raw);
		break;
	case AT_SOCKET:
		render_sock(slot, BPF_CORE_READ((struct socket *)raw, sk));
		break;
	case AT_SOCKADDR:
		render_sockaddr(slot, (void *)raw, user);
		break;
	case AT_SKB:
		render_skb(slot, (struct sk_buff *)raw);
		break;
	case AT_CRED:
		render_cred(slot, (struct cred *)raw);
		break;
	}
	return 0;
}

/* ---- matching ---- */

static __always_inline int int_in(__u32 id, __u64 v)
{
	struct int_key k = {.id = id, .val = v};
	return bpf_map_lookup_elem(&vals_int, &k) != 0;
}

static __always_inline int str_eq(struct scratch *s, __u32 id, __u8 *str)
{
	s->skey.id = id;
	__builtin_memcpy(s->skey.s, str, STR_MAX);
	return bpf_map_lookup_elem(&vals_str, &s->skey) != 0;
}

static __always_inline int str_prefix(struct scratch *s, __u32 id, __u8 *str, __u32 len)
{
	if (len > LPM_STR)
		len = LPM_STR;
	s->lkey.id = id;
	s->lkey.prefixlen = 32 + len * 8;
	__builtin_memcpy(s->lkey.s, str, LPM_STR);
	return bpf_map_lookup_elem(&vals_lpm, &s->lkey) != 0;
}

struct rev_ctx {
	__u32 len; /* of the string in pbuf */
	__u32 n;   /* bytes to reverse */
};

static long rev_step(__u32 i, struct rev_ctx *r)
{
	struct scratch *s = get_scratch();
	if (!s || i >= r->n || i >= LPM_STR)
		return 1;
	s->lkey.s[i] = s->pbuf[(r->len - 1 - i) & 255];
	return 0;
}

/* Postfix: the last bytes, reversed, looked up by prefix. */
static __always_inline int str_postfix(struct scratch *s, __u32 id, __u8 *str, __u32 len)
{
	if (len >= STR_MAX)
		len = STR_MAX - 1;
	struct rev_ctx r = {.len = len, .n = len > LPM_STR ? LPM_STR : len};
	__builtin_memcpy(s->pbuf, str, STR_MAX);
	__builtin_memset(s->lkey.s, 0, LPM_STR);
	s->lkey.id = id;
	s->lkey.prefixlen = 32 + r.n * 8;
	bpf_loop(LPM_STR, rev_step, &r, 0);
	return bpf_map_lookup_elem(&vals_lpm, &s->lkey) != 0;
}

#define SRC_RET MAX_ARGS      /* the return value's slot */
#define SRC_BIN (MAX_ARGS + 1) /* scratch->pinfo: a binary */

/*
 * Global (verified once, on its own): does the string at src match the
 * term's values by op?
 */
__attribute__((noinline)) int tr_str_match(__u32 op, __u32 id, __u32 src)
{
	struct scratch *s = get_scratch();
	__u8 *str;
	__u32 len;
	if (!s)
		return 0;
	if (src < MAX_ARGS) {
		str = s->ev.args[src].data;
		len = s->ev.args[src].len;
	} else if (src == SRC_RET) {
		str = s->retslot.data;
		len = s->retslot.len;
	} else {
		str = s->pinfo.binary;
		len = s->pinfo.len;
	}
	switch (op) {
	case OP_STR_EQ:
		return str_eq(s, id, str);
	case OP_PREFIX:
		return str_prefix(s, id, str, len);
	case OP_POSTFIX:
		return str_postfix(s, id, str, len);
	}
	return 0;
}

static __always_inline int addr_in(struct scratch *s, __u32 id, __u8 *addr)
{
	s->akey.prefixlen = 32 + 128;
	s->akey.id = id;
	__builtin_memcpy(s->akey.addr, addr, 16);
	return bpf_map_lookup_elem(&vals_addr, &s->akey) != 0;
}

static __always_inline int slot_term(struct scratch *s, struct term *t, struct arg_slot *slot, __u32 src)
{
	struct sock_info *si = (struct sock_info *)slot->data;
	__u64 v = slot->ival;
	if (!(slot->flags & SLOT_OK))
		return 0;
	switch (t->op) {
	case OP_INT_IN:
		return int_in(t->id, v);
	case OP_GT:
		return (t->flags & TF_SIGNED) ? (__s64)v > (__s64)t->val : v > t->val;
	case OP_LT:
		return (t->flags & TF_SIGNED) ? (__s64)v < (__s64)t->val : v < t->val;
	case OP_MASK:
		return (v & t->val) != 0;
	case OP_STR_EQ:
	case OP_PREFIX:
	case OP_POSTFIX:
		return tr_str_match(t->op, t->id, src);
	case OP_SADDR:
		return addr_in(s, t->id, si->saddr);
	case OP_DADDR:
		return addr_in(s, t->id, si->daddr);
	case OP_SPORT:
		return int_in(t->id, si->sport);
	case OP_DPORT:
		return int_in(t->id, si->dport);
	case OP_SPORT_PRIV:
		return si->sport < 1024;
	case OP_DPORT_PRIV:
		return si->dport < 1024;
	case OP_PROTO:
		return int_in(t->id, si->protocol);
	case OP_FAMILY:
		return int_in(t->id, si->family);
	case OP_STATE:
		return int_in(t->id, si->state);
	}
	return 0;
}

static __always_inline __u32 ns_inum(struct task_struct *t, __u8 kind)
{
	switch (kind) {
	case NS_UTS:
		return BPF_CORE_READ(t, nsproxy, uts_ns, ns.inum);
	case NS_IPC:
		return BPF_CORE_READ(t, nsproxy, ipc_ns, ns.inum);
	case NS_MNT:
		return BPF_CORE_READ(t, nsproxy, mnt_ns, ns.inum);
	case NS_PID: {
		struct pid *p = BPF_CORE_READ(t, thread_pid);
		unsigned int level = BPF_CORE_READ(p, level);
		struct upid *u = (struct upid *)((void *)p + bpf_core_field_offset(struct pid, numbers) +
						 (level & 31) * bpf_core_type_size(struct upid));
		return BPF_CORE_READ(u, ns, ns.inum);
	}
	case NS_PID_CHILDREN:
		return BPF_CORE_READ(t, nsproxy, pid_ns_for_children, ns.inum);
	case NS_NET:
		return BPF_CORE_READ(t, nsproxy, net_ns, ns.inum);
	case NS_TIME:
		return BPF_CORE_READ(t, nsproxy, time_ns, ns.inum);
	case NS_TIME_CHILDREN:
		return BPF_CORE_READ(t, nsproxy, time_ns_for_children, ns.inum);
	case NS_CGROUP:
		return BPF_CORE_READ(t, nsproxy, cgroup_ns, ns.inum);
	case NS_USER:
		return BPF_CORE_READ(t, cred, user_ns, ns.inum);
	}
	return 0;
}

static __always_inline __u32 ns_pid(struct task_struct *t)
{
	struct pid *p = BPF_CORE_READ(t, group_leader, thread_pid);
	unsigned int level = BPF_CORE_READ(p, level);
	struct upid *u = (struct upid *)((void *)p + bpf_core_field_offset(struct pid, numbers) +
					 (level & 31) * bpf_core_type_size(struct upid));
	return BPF_CORE_READ(u, nr);
}

/* PIDs: the caller's tgid (or, with TF_FOLLOW, one of its ancestors'). */
static __always_inline int pid_term(struct scratch *s, struct term *t)
{
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;
	if (t->flags & TF_NSPID)
		return int_in(t->id, ns_pid((struct task_struct *)bpf_get_current_task()));
	if (int_in(t->id, tgid))
		return 1;
	if (!(t->flags & TF_FOLLOW))
		return 0;
	for (int i = 0; i < ANCESTORS; i++) {
		struct proc_info *p = bpf_map_lookup_elem(&procs, &tgid);
		if (!p || p->ppid == 0 || p->ppid == tgid)
			return 0;
		tgid = p->ppid;
		if (int_in(t->id, tgid))
			return 1;
	}
	return 0;
}

struct bin_ctx {
	__u32 tgid;
	__u32 key;  /* the selector's key */
	__u32 term; /* the term's index */
	__u8 matched;
};

/* One process of the caller's ancestry (the caller first). */
static long bin_step(__u32 i, struct bin_ctx *b)
{
	struct scratch *s = get_scratch();
	struct selector *sel = bpf_map_lookup_elem(&selectors, &b->key);
	if (!s || !sel)
		return 1;
	struct term *t = &sel->terms[b->term & (MAX_TERMS - 1)];
	__u32 tgid = b->tgid;
	struct proc_info *p = bpf_map_lookup_elem(&procs, &tgid);
	if (!p)
		return 1;
	__builtin_memcpy(s->pinfo.binary, p->binary, STR_MAX);
	s->pinfo.len = p->len;
	__u32 ppid = p->ppid;
	if (tr_str_match(t->op, t->id, SRC_BIN)) {
		b->matched = 1;
		return 1;
	}
	if (!(t->flags & TF_FOLLOW) || ppid == 0 || ppid == tgid)
		return 1;
	b->tgid = ppid;
	return 0;
}

static __always_inline int bin_term(__u32 key, __u32 term)
{
	struct bin_ctx b = {.tgid = bpf_get_current_pid_tgid() >> 32, .key = key, .term = term};
	bpf_loop(ANCESTORS, bin_step, &b, 0);
	return b.matched;
}

static __always_inline int cap_term(struct term *t)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	__u64 caps = 0;
	switch (t->arg) {
	case CAPS_EFFECTIVE:
		caps = BPF_CORE_READ(task, cred, cap_effective.val);
		break;
	case CAPS_INHERITABLE:
		caps = BPF_CORE_READ(task, cred, cap_inheritable.val);
		break;
	case CAPS_PERMITTED:
		caps = BPF_CORE_READ(task, cred, cap_permitted.val);
		break;
	}
	return (caps & t->val) != 0;
}

/* Global: does term i of the selector at key hold? */
__attribute__((noinline)) int tr_eval_term(__u32 key, __u32 i)
{
	struct scratch *s = get_scratch();
	struct selector *sel = bpf_map_lookup_elem(&selectors, &key);
	if (!s || !sel || i >= MAX_TERMS)
		return 0;
	struct term *t = &sel->terms[i];
	int r = 0;
	switch (t->kind) {
	case T_ARG: {
		__u32 a = t->arg;
		barrier_var(a);
		if (a < MAX_ARGS)
			r = slot_term(s, t, &s->ev.args[a], a);
		break;
	}
	case T_RET:
		r = slot_term(s, t, &s->retslot, SRC_RET);
		break;
	case T_PID:
		r = pid_term(s, t);
		break;
	case T_BIN:
		r = bin_term(key, i);
		break;
	case T_NS:
		r = int_in(t->id, ns_inum((struct task_struct *)bpf_get_current_task(), t->arg));
		break;
	case T_CAP:
		r = cap_term(t);
		break;
	}
	if (t->flags & TF_NEGATE)
		r = !r;
	return r;
}

/* Global: do all terms of selector i of the hook hold? */
__attribute__((noinline)) int tr_eval_selector(__u32 hook, __u32 i)
{
	__u32 key = hook * MAX_SELECTORS + i;
	struct selector *sel = bpf_map_lookup_elem(&selectors, &key);
	if (!sel)
		return 0;
	__u32 n = sel->nterms;
	for (__u32 j = 0; j < MAX_TERMS; j++) {
		if (j >= n)
			break;
		if (!tr_eval_term(key, j))
			return 0;
	}
	return 1;
}

struct sel_ctx {
	__u32 hook;
	__s32 matched;
};

static long eval_selector(__u32 i, struct sel_ctx *sc)
{
	if (tr_eval_selector(sc->hook, i)) {
		sc->matched = i;
		return 1;
	}
	return 0;
}

/* ---- scope and safety ---- */

static __always_inline int in_scope(void)
{
	for (int l = 0; l < CGROUP_LEVELS; l++) {
		__u64 id = bpf_get_current_ancestor_cgroup_id(l);
		if (!id)
			break;
		if (bpf_map_lookup_elem(&scope, &id))
			return 1;
	}
	return 0;
}

static __always_inline int is_protected(__u32 tgid, struct proc_info *p)
{
	if (tgid == 1)
		return 1;
	if (bpf_map_lookup_elem(&protected_pids, &tgid))
		return 1;
	return p && (p->flags & PROC_PROTECTED);
}

/* ---- the generic hook body ---- */

static __always_inline int run_hook(void *ctx, __u8 kind)
{
	__u32 hk = (__u32)bpf_get_attach_cookie(ctx);
	struct hook_cfg *h = bpf_map_lookup_elem(&hooks, &hk);
	if (!h)
		return 0;
	if (!(h->flags & HF_ALL) && !in_scope())
		return 0;
	struct scratch *s = get_scratch();
	if (!s)
		return 0;
	__builtin_memcpy(&s->cfg, h, sizeof(*h));
	s->cfg.kind = kind;
	count(s->cfg.unit, (__u8)hk, OUT_HIT);

	__u32 nargs = s->cfg.nargs;
	if (nargs > MAX_ARGS)
		nargs = MAX_ARGS;
	/*
	 * A syscall hook on its tracepoints reads the arguments where the
	 * syscall wrapper does (fentry with HF_SYSCALL): the task's user
	 * pt_regs, at entry and at exit alike.
	 */
	void *src = ctx;
	if (kind == KIND_SYS_ENTER || kind == KIND_SYS_EXIT)
		src = (void *)bpf_task_pt_regs(bpf_get_current_task_btf());
	for (int i = 0; i < MAX_ARGS; i++) {
		if (i >= nargs)
			break;
		struct arg_desc *a = &s->cfg.args[i];
		s->raw[i] = raw_arg(src, kind, &s->cfg, a->index, a->size);
		if (a->has_size)
			s->rawsize[i] = raw_arg(src, kind, &s->cfg, a->size_index, a->size_size);
		if (a->type == AT_DATA_LOC && kind == KIND_TRACEPOINT) {
			/* The locator: offset in the low 16 bits, length in the high 16. */
			__u32 loc = (__u32)s->raw[i];
			s->raw[i] = (loc & 0xffff) ? (__u64)ctx + (loc & 0xffff) : 0;
			s->rawsize[i] = loc >> 16;
		}
	}
	for (__u32 i = 0; i < MAX_ARGS; i++) {
		if (i >= nargs)
			break;
		tr_decode_arg(i);
	}

	__s64 ret = 0;
	__u8 has_ret = 0;
	if (kind == KIND_FEXIT) {
		__u64 v = 0;
		bpf_get_func_ret(ctx, &v);
		ret = (__s64)int_of(v, s->cfg.ret.size ? s->cfg.ret.size : 8, ARG_SIGNED);
		has_ret = 1;
	} else if (kind == KIND_KRETPROBE) {
		ret = (__s64)BPF_CORE_READ((struct pt_regs *)ctx, ax);
		has_ret = 1;
	} else if (kind == KIND_SYS_EXIT) {
		/* sys_exit's record: common fields, int __syscall_nr, long ret at 16. */
		__u64 v = 0;
		bpf_probe_read_kernel(&v, sizeof(v), (void *)ctx + 16);
		ret = (__s64)int_of(v, s->cfg.ret.size ? s->cfg.ret.size : 8, ARG_SIGNED);
		has_ret = 1;
	}
	s->retslot.type = AT_INT;
	s->retslot.flags = has_ret ? SLOT_OK : 0;
	s->retslot.ival = ret;

	struct sel_ctx sc = {.hook = hk, .matched = -1};
	__u32 nsel = s->cfg.nsel;
	if (nsel > MAX_SELECTORS)
		nsel = MAX_SELECTORS;
	__u32 actions = ACT_NOTIFY;
	__s32 arg_error = -1;
	__u32 sig = 0;
	__u64 rate_ns = 0;
	if (nsel) {
		bpf_loop(nsel, eval_selector, &sc, 0);
		if (sc.matched < 0)
			return 0;
		__u32 key = hk * MAX_SELECTORS + (sc.matched & (MAX_SELECTORS - 1));
		struct selector *sel = bpf_map_lookup_elem(&selectors, &key);
		if (!sel)
			return 0;
		actions = sel->actions;
		arg_error = sel->arg_error;
		sig = sel->signal;
		rate_ns = sel->rate_ns;
	} else {
		sc.matched = 0;
	}

	__u64 pt = bpf_get_current_pid_tgid();
	__u32 tgid = pt >> 32;
	struct proc_info *p = bpf_map_lookup_elem(&procs, &tgid);

	__u8 main = ACT_NOTIFY;
	if (actions & ACT_DENY)
		main = ACT_DENY;
	else if (actions & ACT_SIGKILL)
		main = ACT_SIGKILL;
	else if (actions & ACT_SIGNAL)
		main = ACT_SIGNAL;
	else if (!(actions & ACT_NOTIFY))
		return 0; /* FollowFD/UnfollowFD only: fds are resolved at the hook */

	int rc = 0;
	__u8 taken = 1, supp = SUPP_NONE;
	if (main != ACT_NOTIFY) {
		if (s->cfg.flags & HF_AUDIT) {
			taken = 0;
			supp = SUPP_AUDIT;
			count(s->cfg.unit, main, OUT_AUDIT);
		} else if (is_protected(tgid, p)) {
			taken = 0;
			supp = SUPP_PROTECTED;
			count(s->cfg.unit, main, OUT_PROTECTED);
		} else {
			if (actions & ACT_SIGKILL)
				bpf_send_signal(SIGKILL);
			else if (actions & ACT_SIGNAL)
				bpf_send_signal(sig);
			if ((actions & ACT_DENY) && kind == KIND_LSM)
				rc = arg_error;
		}
	}

	/* rateLimit: actions are taken; the event is sent once per window per process. */
	if (rate_ns) {
		struct rate_key rk = {.unit = s->cfg.unit, .hook = s->cfg.hook, .selector = sc.matched, .tgid = tgid};
		__u64 now = bpf_ktime_get_boot_ns();
		__u64 *last = bpf_map_lookup_elem(&ratelimit, &rk);
		if (last && now - *last < rate_ns) {
			count(s->cfg.unit, main, OUT_RATELIMITED);
			return rc;
		}
		bpf_map_update_elem(&ratelimit, &rk, &now, BPF_ANY);
	}

	struct trace_event *ev = &s->ev;
	ev->hdr.type = EVENT_TYPE_TRACE;
	ev->hdr.version = TRACE_EVENT_VERSION;
	ev->hdr.pad = 0;
	ev->hdr.time = bpf_ktime_get_boot_ns();
	ev->unit = s->cfg.unit;
	ev->hook = s->cfg.hook;
	ev->selector = sc.matched;
	ev->action = main;
	ev->taken = taken;
	ev->suppressed = supp;
	ev->nargs = nargs;
	ev->has_ret = has_ret;
	ev->proc_flags = p ? p->flags : 0;
	ev->pad = 0;
	ev->pid = tgid;
	ev->tid = (__u32)pt;
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	__u32 ppid = BPF_CORE_READ(task, real_parent, tgid);
	ev->ppid = ppid;
	ev->uid = (__u32)bpf_get_current_uid_gid();
	ev->cgroup = bpf_get_current_cgroup_id();
	ev->ret = ret;
	if (p) {
		__builtin_memcpy(ev->binary, p->binary, STR_MAX);
		__builtin_memcpy(ev->argv, p->argv, ARGV_MAX);
		ev->argv_len = p->argv_len > ARGV_MAX ? ARGV_MAX : p->argv_len;
	} else {
		__builtin_memset(ev->binary, 0, STR_MAX);
		__builtin_memset(ev->argv, 0, ARGV_MAX);
		ev->argv_len = 0;
	}
	/* The parent as the tracker knows it now: it may be gone when the event is read. */
	struct proc_info *pp = bpf_map_lookup_elem(&procs, &ppid);
	ev->pad2[0] = ev->pad2[1] = 0;
	if (pp) {
		ev->has_parent = 1;
		ev->pproc_flags = pp->flags;
		__builtin_memcpy(ev->pbinary, pp->binary, STR_MAX);
		__builtin_memcpy(ev->pargv, pp->argv, ARGV_MAX);
		ev->pargv_len = pp->argv_len > ARGV_MAX ? ARGV_MAX : pp->argv_len;
	} else {
		ev->has_parent = 0;
		ev->pproc_flags = 0;
		__builtin_memset(ev->pbinary, 0, STR_MAX);
		__builtin_memset(ev->pargv, 0, ARGV_MAX);
		ev->pargv_len = 0;
	}
	__u32 len = sizeof(*ev) - (MAX_ARGS - nargs) * sizeof(struct arg_slot);
	if (len > sizeof(*ev))
		len = sizeof(*ev);
	ev->hdr.len = len;
	if (bpf_ringbuf_output(&events, ev, len, 0))
		count(s->cfg.unit, main, OUT_LOST);
	else
		count(s->cfg.unit, main, OUT_EVENT);
	return rc;
}

SEC("fentry")
int generic_fentry(void *ctx)
{
	run_hook(ctx, KIND_FENTRY);
	return 0;
}

SEC("fexit")
int generic_fexit(void *ctx)
{
	run_hook(ctx, KIND_FEXIT);
	return 0;
}

SEC("lsm")
int generic_lsm(void *ctx)
{
	int rc = run_hook(ctx, KIND_LSM);
	/* An LSM program returns 0 or a negative errno. */
	if (rc > 0 || rc < -4095)
		rc = -1;
	return rc;
}

/* For LSM hooks that return void: they cannot deny. */
SEC("lsm")
int generic_lsm_void(void *ctx)
{
	run_hook(ctx, KIND_LSM);
	return 0;
}

SEC("tracepoint")
int generic_tracepoint(void *ctx)
{
	run_hook(ctx, KIND_TRACEPOINT);
	return 0;
}

/* A syscall hook (kprobes with syscall: true) on syscalls/sys_enter_<name>. */
SEC("tracepoint")
int generic_sys_enter(void *ctx)
{
	run_hook(ctx, KIND_SYS_ENTER);
	return 0;
}

/* A return syscall hook on syscalls/sys_exit_<name>. */
SEC("tracepoint")
int generic_sys_exit(void *ctx)
{
	run_hook(ctx, KIND_SYS_EXIT);
	return 0;
}

SEC("uprobe")
int generic_uprobe(struct pt_regs *ctx)
{
	run_hook(ctx, KIND_UPROBE);
	return 0;
}

SEC("kprobe")
int generic_kprobe(struct pt_regs *ctx)
{
	run_hook(ctx, KIND_KPROBE);
	return 0;
}

SEC("kretprobe")
int generic_kretprobe(struct pt_regs *ctx)
{
	run_hook(ctx, KIND_KRETPROBE);
	return 0;
}

/* ---- process tracking ---- */

struct base_ctx {
	__u32 len;
	__u32 start;
};

static long find_base(__u32 i, struct base_ctx *b)
{
	struct scratch *s = get_scratch();
	if (!s || i >= b->len)
		return 1;
	if (s->pinfo.binary[i & 255] == '/')
		b->start = i + 1;
	return 0;
}

/* Sets PROC_PROTECTED when the binary's base name is in protected_names. */
static __always_inline void protect_by_name(struct scratch *s, struct proc_info *pi)
{
	struct base_ctx b = {.len = pi->len};
	if (b.len > STR_MAX - 1)
		b.len = STR_MAX - 1;
	bpf_loop(STR_MAX, find_base, &b, 0);
	__builtin_memset(s->pkey.name, 0, PROT_NAME);
	long n = bpf_probe_read_kernel_str(s->pkey.name, PROT_NAME, &pi->binary[b.start & 255]);
	pi->flags &= ~PROC_PROTECTED;
	if (n <= 0)
		return;
	s->pkey.prefixlen = n * 8; /* the NUL included: exact, or a * prefix */
	if (bpf_map_lookup_elem(&protected_names, &s->pkey))
		pi->flags |= PROC_PROTECTED;
}

/*
 * The new program's arguments: at sched_process_exec the new mm is
 * installed and its argument strings are on the new stack, between
 * mm->arg_start and mm->arg_end (what /proc/<pid>/cmdline reads).
 */
static __always_inline void read_argv(struct proc_info *pi, struct task_struct *p)
{
	struct mm_struct *mm = BPF_CORE_READ(p, mm);
	unsigned long start = BPF_CORE_READ(mm, arg_start), end = BPF_CORE_READ(mm, arg_end);
	__u64 n = end > start ? end - start : 0;
	__builtin_memset(pi->argv, 0, ARGV_MAX);
	pi->argv_len = 0;
	if (n > ARGV_MAX) {
		n = ARGV_MAX;
		pi->flags |= PROC_ARGV_TRUNC;
	}
	if (n && bpf_probe_read_user(pi->argv, n, (void *)start) == 0)
		pi->argv_len = n;
}

SEC("tp_btf/sched_process_exec")
int BPF_PROG(track_exec, struct task_struct *p, int old_pid, struct linux_binprm *bprm)
{
	struct scratch *s = get_scratch();
	if (!s)
		return 0;
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;
	struct arg_slot *slot = &s->retslot;
	slot->flags = 0;
	slot->len = 0;
	__builtin_memset(slot->data, 0, STR_MAX);
	render_file(s, slot, BPF_CORE_READ(bprm, file));
	struct proc_info *pi = &s->pinfo;
	pi->ppid = BPF_CORE_READ(p, real_parent, tgid);
	pi->flags = 0;
	pi->exec_time = bpf_ktime_get_boot_ns();
	__builtin_memcpy(pi->binary, slot->data, STR_MAX);
	pi->len = slot->len;
	read_argv(pi, p);
	protect_by_name(s, pi);
	bpf_map_update_elem(&procs, &tgid, pi, BPF_ANY);
	return 0;
}

SEC("tp_btf/sched_process_fork")
int BPF_PROG(track_fork, struct task_struct *parent, struct task_struct *child)
{
	__u32 pid = BPF_CORE_READ(child, pid), tgid = BPF_CORE_READ(child, tgid);
	if (pid != tgid)
		return 0; /* a thread */
	__u32 ptgid = BPF_CORE_READ(parent, tgid);
	struct proc_info *pp = bpf_map_lookup_elem(&procs, &ptgid);
	struct scratch *s = get_scratch();
	if (!s)
		return 0;
	struct proc_info *pi = &s->pinfo;
	if (pp)
		__builtin_memcpy(pi, pp, sizeof(*pi));
	else
		__builtin_memset(pi, 0, sizeof(*pi));
	pi->ppid = ptgid;
	pi->flags &= ~PROC_PROCFS;
	bpf_map_update_elem(&procs, &tgid, pi, BPF_ANY);
	return 0;
}

SEC("tp_btf/sched_process_exit")
int BPF_PROG(track_exit, struct task_struct *p)
{
	__u32 pid = BPF_CORE_READ(p, pid), tgid = BPF_CORE_READ(p, tgid);
	if (pid != tgid)
		return 0;
	bpf_map_delete_elem(&procs, &tgid);
	return 0;
}
