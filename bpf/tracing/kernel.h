// SPDX-License-Identifier: (GPL-2.0-only OR Apache-2.0)
/* Copyright 2026 The Palisade Authors. */

/*
 * The few kernel types the tracing programs read, declared with
 * preserve_access_index so that every field access is relocated against
 * the running kernel's BTF (CO-RE): only the fields named here matter,
 * not their offsets or the structs' sizes.
 */
#ifndef PALISADE_TRACING_KERNEL_H
#define PALISADE_TRACING_KERNEL_H

#include <linux/types.h>

#define __core __attribute__((preserve_access_index))

struct pt_regs {
	unsigned long r15, r14, r13, r12, bp, bx, r11, r10, r9, r8, ax, cx, dx, si, di;
	unsigned long orig_ax, ip, cs, flags, sp, ss;
} __core;

struct qstr {
	union {
		struct {
			__u32 hash;
			__u32 len;
		};
		__u64 hash_len;
	};
	const unsigned char *name;
} __core;

struct dentry {
	struct dentry *d_parent;
	struct qstr d_name;
} __core;

struct vfsmount {
	struct dentry *mnt_root;
} __core;

struct mount {
	struct mount *mnt_parent;
	struct dentry *mnt_mountpoint;
	struct vfsmount mnt;
} __core;

struct path {
	struct vfsmount *mnt;
	struct dentry *dentry;
} __core;

struct file {
	struct path f_path;
} __core;

struct fdtable {
	unsigned int max_fds;
	struct file **fd;
} __core;

struct files_struct {
	struct fdtable *fdt;
} __core;

struct linux_binprm {
	struct file *file;
} __core;

typedef struct {
	__u64 val;
} kernel_cap_t;

typedef struct {
	__u32 val;
} kuid_t;

typedef struct {
	__u32 val;
} kgid_t;

struct ns_common {
	unsigned int inum;
} __core;

struct user_namespace {
	struct ns_common ns;
} __core;
struct uts_namespace {
	struct ns_common ns;
} __core;
struct ipc_namespace {
	struct ns_common ns;
} __core;
struct mnt_namespace {
	struct ns_common ns;
} __core;
struct pid_namespace {
	struct ns_common ns;
} __core;
struct net {
	struct ns_common ns;
} __core;
struct time_namespace {
	struct ns_common ns;
} __core;
struct cgroup_namespace {
	struct ns_common ns;
} __core;

struct nsproxy {
	struct uts_namespace *uts_ns;
	struct ipc_namespace *ipc_ns;
	struct mnt_namespace *mnt_ns;
	struct pid_namespace *pid_ns_for_children;
	struct net *net_ns;
	struct time_namespace *time_ns;
	struct time_namespace *time_ns_for_children;
	struct cgroup_namespace *cgroup_ns;
} __core;

struct cred {
	kuid_t uid;
	kgid_t gid;
	kuid_t euid;
	kgid_t egid;
	kernel_cap_t cap_inheritable;
	kernel_cap_t cap_permitted;
	kernel_cap_t cap_effective;
	struct user_namespace *user_ns;
} __core;

struct upid {
	int nr;
	struct pid_namespace *ns;
} __core;

struct pid {
	unsigned int level;
	struct upid numbers[1];
} __core;

struct mm_struct {
	unsigned long arg_start;
	unsigned long arg_end;
} __core;

struct task_struct {
	int pid;
	int tgid;
	struct task_struct *real_parent;
	struct task_struct *group_leader;
	struct files_struct *files;
	struct nsproxy *nsproxy;
	const struct cred *cred;
	struct pid *thread_pid;
	struct mm_struct *mm;
	char comm[16];
} __core;

struct in6_addr {
	__u8 s6_addr[16];
} __core;

struct sock_common {
	__u32 skc_daddr;
	__u32 skc_rcv_saddr;
	__u16 skc_dport;
	__u16 skc_num;
	unsigned short skc_family;
	volatile unsigned char skc_state;
	struct in6_addr skc_v6_daddr;
	struct in6_addr skc_v6_rcv_saddr;
} __core;

struct sock {
	struct sock_common __sk_common;
	__u16 sk_protocol;
	__u16 sk_type;
} __core;

struct socket {
	struct sock *sk;
} __core;

struct sk_buff {
	unsigned char *head;
	__u16 transport_header;
	__u16 network_header;
	__u16 protocol;
} __core;

#endif
