/*
Copyright 2026 The Palisade Authors.

Licensed under the Apache License, Version 2.0 (the "License");
you may not use this file except in compliance with the License.
You may obtain a copy of the License at

    http://www.apache.org/licenses/LICENSE-2.0

Unless required by applicable law or agreed to in writing, software
distributed under the License is distributed on an "AS IS" BASIS,
WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
See the License for the specific language governing permissions and
limitations under the License.
*/

package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TracingPolicy hooks kernel functions, tracepoints, LSM hooks and user
// functions, filters the calls with selectors and acts on matches, in the
// shape of Tetragon's TracingPolicy. It applies to the pods of its namespace
// that podSelector selects.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:scope=Namespaced,shortName=ptp,categories=palisade
// +kubebuilder:printcolumn:name="Mode",type=string,JSONPath=`.spec.mode`,description="enforce (default when empty) or audit"
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Enforced",type=string,JSONPath=`.status.conditions[?(@.type=="Enforced")].status`
// +kubebuilder:printcolumn:name="Drifted",type=string,JSONPath=`.status.conditions[?(@.type=="Drifted")].status`,priority=1
// +kubebuilder:printcolumn:name="Status",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].message`,priority=1
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type TracingPolicy struct {
	metav1.TypeMeta `json:",inline"`

	// metadata is the object's metadata; a policy sets name, namespace,
	// labels and annotations.
	// +optional
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// spec holds the policy's hooks.
	// +required
	Spec TracingPolicySpec `json:"spec"`

	// status is the policy's observed state.
	// +optional
	Status PolicyStatus `json:"status,omitzero"`
}

// TracingPolicyList is a list of TracingPolicy objects.
//
// +kubebuilder:object:root=true
type TracingPolicyList struct {
	metav1.TypeMeta `json:",inline"`
	// metadata is the list's metadata.
	// +optional
	metav1.ListMeta `json:"metadata,omitempty"`
	// items are the policies.
	Items []TracingPolicy `json:"items"`
}

// ClusterTracingPolicy is a TracingPolicy for the whole node: every
// process, in pods of any namespace or on the host, unless podSelector
// narrows it.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:scope=Cluster,shortName=pctp,categories=palisade
// +kubebuilder:printcolumn:name="Mode",type=string,JSONPath=`.spec.mode`,description="enforce (default when empty) or audit"
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Enforced",type=string,JSONPath=`.status.conditions[?(@.type=="Enforced")].status`
// +kubebuilder:printcolumn:name="Drifted",type=string,JSONPath=`.status.conditions[?(@.type=="Drifted")].status`,priority=1
// +kubebuilder:printcolumn:name="Status",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].message`,priority=1
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type ClusterTracingPolicy struct {
	metav1.TypeMeta `json:",inline"`

	// metadata is the object's metadata; a policy sets name, labels and
	// annotations.
	// +optional
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// spec holds the policy's hooks.
	// +required
	Spec TracingPolicySpec `json:"spec"`

	// status is the policy's observed state.
	// +optional
	Status PolicyStatus `json:"status,omitzero"`
}

// ClusterTracingPolicyList is a list of ClusterTracingPolicy objects.
//
// +kubebuilder:object:root=true
type ClusterTracingPolicyList struct {
	metav1.TypeMeta `json:",inline"`
	// metadata is the list's metadata.
	// +optional
	metav1.ListMeta `json:"metadata,omitempty"`
	// items are the policies.
	Items []ClusterTracingPolicy `json:"items"`
}

// TracingPolicySpec lists the hooks of a tracing policy.
type TracingPolicySpec struct {
	// description is free text for people.
	// +optional
	Description *string `json:"description,omitempty"`

	// mode: "enforce" (default when omitted) runs Sigkill and Deny
	// actions; "audit" reports them without acting.
	// +optional
	Mode EnforcementMode `json:"mode,omitempty"`

	// podSelector narrows the policy to pods with these labels.
	// +optional
	PodSelector *metav1.LabelSelector `json:"podSelector,omitempty"`

	// nodeSelector narrows the policy to nodes with these labels. A node
	// it does not select loads nothing of the policy and reports it
	// skipped on its NodeEnforcement.
	// +optional
	NodeSelector *metav1.LabelSelector `json:"nodeSelector,omitempty"`

	// kprobes hook kernel functions by name. Palisade attaches them as
	// fentry (fexit when return is true) where the kernel has BTF
	// trampolines, and as kprobe/kretprobe otherwise: same hook, same
	// arguments, same selectors.
	// +optional
	KProbes []FunctionHook `json:"kprobes,omitzero"`

	// tracepoints hook static kernel tracepoints.
	// +optional
	Tracepoints []TracepointHook `json:"tracepoints,omitzero"`

	// lsmhooks hook BPF-LSM security hooks; only these can Deny.
	// +optional
	LSMHooks []LSMHook `json:"lsmhooks,omitzero"`

	// uprobes hook functions of user-space binaries.
	// +optional
	UProbes []UprobeHook `json:"uprobes,omitzero"`
}

// HookCommon holds what every hook kind has.
type HookCommon struct {
	// args lists the arguments to read, with their types.
	// +optional
	Args []Arg `json:"args,omitzero"`

	// selectors filter the calls; a call matches if any selector matches
	// (all of a selector's terms must hold). No selectors: every call.
	// +optional
	Selectors []Selector `json:"selectors,omitzero"`

	// message is a short text attached to the events this hook emits.
	// +optional
	// +kubebuilder:validation:MaxLength=256
	Message *string `json:"message,omitempty"`

	// tags label the events for filtering downstream.
	// +optional
	// +kubebuilder:validation:items:MinLength=1
	// +kubebuilder:validation:items:MaxLength=64
	Tags []string `json:"tags,omitzero"`
}

// FunctionHook hooks a kernel function (fentry/fexit, or kprobe).
type FunctionHook struct {
	// HookCommon holds the arguments, selectors, message and tags; its
	// fields are the hook's own.
	HookCommon `json:",inline"`

	// call is the kernel function or syscall name, e.g. "security_file_open"
	// or "sys_execve".
	// +required
	Call Symbol `json:"call"`

	// syscall says call is a syscall name; Palisade adds the arch prefix.
	// +optional
	Syscall *bool `json:"syscall,omitempty"`

	// return hooks the function's return (fexit / kretprobe).
	// +optional
	Return *bool `json:"return,omitempty"`

	// returnArg is the type of the return value when return is true.
	// +optional
	ReturnArg *Arg `json:"returnArg,omitempty"`
}

// TracepointHook hooks a static tracepoint "subsystem/event".
type TracepointHook struct {
	// HookCommon holds the arguments, selectors, message and tags; its
	// fields are the hook's own.
	HookCommon `json:",inline"`

	// subsystem of the tracepoint, e.g. "syscalls".
	// +required
	Subsystem Symbol `json:"subsystem"`

	// event of the tracepoint, e.g. "sys_enter_openat".
	// +required
	Event Symbol `json:"event"`
}

// LSMHook hooks a BPF-LSM security hook; Deny actions apply here only.
type LSMHook struct {
	// HookCommon holds the arguments, selectors, message and tags; its
	// fields are the hook's own.
	HookCommon `json:",inline"`

	// hook is the LSM hook name without the "security_" prefix, e.g.
	// "file_open" or "bprm_check_security".
	// +required
	Hook Symbol `json:"hook"`
}

// UprobeHook hooks functions of a user-space binary.
type UprobeHook struct {
	// HookCommon holds the arguments, selectors, message and tags; its
	// fields are the hook's own.
	HookCommon `json:",inline"`

	// path is the absolute path of the binary or library.
	// +required
	// +kubebuilder:validation:MaxLength=4096
	// +kubebuilder:validation:Pattern=`^/`
	Path string `json:"path"`

	// symbols lists the function symbols to hook.
	// +required
	// +kubebuilder:validation:MinItems=1
	Symbols []Symbol `json:"symbols"`
}

// Symbol is a C identifier.
//
// +kubebuilder:validation:MaxLength=128
// +kubebuilder:validation:Pattern=`^[A-Za-z_][A-Za-z0-9_.]*$`
type Symbol string

// Arg describes one argument of a hook.
type Arg struct {
	// index is the argument's position, counted from 0: the function's
	// (or syscall's, or LSM hook's) parameter, or for a tracepoint the
	// event's own field as its format file lists them after the common_*
	// fields (Tetragon counts those four too; palisadectl import
	// translates).
	// +required
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=15
	Index int32 `json:"index"`

	// type says how the argument is read.
	// +required
	Type ArgType `json:"type"`

	// label names the argument in events.
	// +optional
	// +kubebuilder:validation:MaxLength=64
	Label *string `json:"label,omitempty"`

	// returnCopy reads the argument again when the function returns.
	// +optional
	ReturnCopy *bool `json:"returnCopy,omitempty"`

	// maxData reads up to the maximum buffer size instead of the default.
	// +optional
	MaxData *bool `json:"maxData,omitempty"`

	// sizeArgIndex gives the 1-based index of the argument holding the
	// buffer size (char_buf, char_iovec).
	// +optional
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=16
	SizeArgIndex *int32 `json:"sizeArgIndex,omitempty"`
}

// ArgType is how a hook argument is read from the kernel:
//
//   - integer types (operators: Equal, NotEqual, GT, LT, Mask, InMap,
//     NotInMap): int, int8, int16, int32, int64, uint8, uint16, uint32,
//     uint64, size_t, fd, syscall64, capability, kernel_cap_t,
//     cap_inheritable, cap_permitted, cap_effective;
//   - string-like types (operators: Equal, NotEqual, Prefix, NotPrefix,
//     Postfix, NotPostfix): string, char_buf, char_iovec, const_buf, file,
//     path, dentry, linux_binprm, data_loc;
//   - socket-like types (operators: SAddr, DAddr, NotSAddr, NotDAddr, SPort,
//     DPort, NotSPort, NotDPort, SPortPriv, DPortPriv, NotSPortPriv,
//     NotDPortPriv, Protocol, Family, State): sock, skb, sockaddr, socket;
//   - kernel objects reported as a whole (operator: Equal on their
//     documented fields only, checked by the validator): cred, bpf_attr,
//     perf_event, bpf_map, user_namespace, module, load_info, net_device,
//     kiocb, iov_iter, nop.
//
// +kubebuilder:validation:Enum=int;int8;int16;int32;int64;uint8;uint16;uint32;uint64;size_t;fd;syscall64;capability;kernel_cap_t;cap_inheritable;cap_permitted;cap_effective;string;char_buf;char_iovec;const_buf;file;path;dentry;linux_binprm;data_loc;sock;skb;sockaddr;socket;cred;bpf_attr;perf_event;bpf_map;user_namespace;module;load_info;net_device;kiocb;iov_iter;nop
type ArgType string

// Selector filters hook calls; all terms set must hold.
type Selector struct {
	// matchArgs compares argument values.
	// +optional
	MatchArgs []ArgSelector `json:"matchArgs,omitzero"`

	// matchReturnArgs compares the return value (return hooks only).
	// +optional
	MatchReturnArgs []ArgSelector `json:"matchReturnArgs,omitzero"`

	// matchPIDs matches the calling process ID.
	// +optional
	MatchPIDs []PIDSelector `json:"matchPIDs,omitzero"`

	// matchBinaries matches the calling process's executable path.
	// +optional
	MatchBinaries []BinarySelector `json:"matchBinaries,omitzero"`

	// matchNamespaces matches the caller's Linux namespaces.
	// +optional
	MatchNamespaces []NamespaceSelector `json:"matchNamespaces,omitzero"`

	// matchCapabilities matches the caller's capabilities.
	// +optional
	MatchCapabilities []CapabilitySelector `json:"matchCapabilities,omitzero"`

	// matchActions are taken when the selector matches.
	// +optional
	MatchActions []Action `json:"matchActions,omitzero"`
}

// ArgOperator compares an argument with values.
// +kubebuilder:validation:Enum=Equal;NotEqual;Prefix;NotPrefix;Postfix;NotPostfix;Mask;GT;LT;InMap;NotInMap;SAddr;DAddr;NotSAddr;NotDAddr;SPort;DPort;NotSPort;NotDPort;SPortPriv;DPortPriv;NotSPortPriv;NotDPortPriv;Protocol;Family;State
type ArgOperator string

// ArgSelector compares the argument at index with values.
type ArgSelector struct {
	// index of the argument (as declared in args).
	// +required
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=15
	Index int32 `json:"index"`

	// operator of the comparison; it must suit the argument's type (PAL5xx).
	// +required
	Operator ArgOperator `json:"operator"`

	// values compared with; any value matching is a match.
	// +required
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:items:MaxLength=4096
	Values []string `json:"values"`
}

// SetOperator is In or NotIn.
// +kubebuilder:validation:Enum=In;NotIn
type SetOperator string

// The set operators.
const (
	// SetOperatorIn matches when the value is one of the values.
	SetOperatorIn SetOperator = "In"
	// SetOperatorNotIn matches when the value is none of the values.
	SetOperatorNotIn SetOperator = "NotIn"
)

// PIDSelector matches process IDs.
type PIDSelector struct {
	// operator: In or NotIn.
	// +required
	Operator SetOperator `json:"operator"`

	// values are PIDs.
	// +required
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:items:Minimum=0
	Values []int32 `json:"values"`

	// followForks also matches the children of matching processes.
	// +optional
	FollowForks *bool `json:"followForks,omitempty"`

	// isNamespacePID compares PIDs in the caller's PID namespace.
	// +optional
	IsNamespacePID *bool `json:"isNamespacePID,omitempty"`
}

// BinaryOperator compares an executable's absolute path.
// +kubebuilder:validation:Enum=In;NotIn;Prefix;NotPrefix;Postfix;NotPostfix
type BinaryOperator string

// BinarySelector matches the executable path of the caller.
type BinarySelector struct {
	// operator compares the executable's absolute path.
	// +required
	Operator BinaryOperator `json:"operator"`

	// values are absolute paths (or path prefixes/suffixes).
	// +required
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:items:MinLength=1
	// +kubebuilder:validation:items:MaxLength=4096
	Values []string `json:"values"`

	// followChildren also matches processes started by a match.
	// +optional
	FollowChildren *bool `json:"followChildren,omitempty"`
}

// NamespaceType is a kind of Linux namespace.
// +kubebuilder:validation:Enum=Uts;Ipc;Mnt;Pid;PidForChildren;Net;Time;TimeForChildren;Cgroup;User
type NamespaceType string

// NamespaceSelector matches the caller's Linux namespaces by inode number,
// or "host_ns" for the host's.
type NamespaceSelector struct {
	// namespace is the kind of Linux namespace.
	// +required
	Namespace NamespaceType `json:"namespace"`

	// operator: In or NotIn.
	// +required
	Operator SetOperator `json:"operator"`

	// values are namespace inode numbers or "host_ns".
	// +required
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:items:Pattern=`^([0-9]+|host_ns)$`
	Values []string `json:"values"`
}

// CapabilitySet is a kind of capability set.
// +kubebuilder:validation:Enum=Effective;Inheritable;Permitted
type CapabilitySet string

// CapabilitySelector matches the caller's capability sets.
type CapabilitySelector struct {
	// type of capability set.
	// +optional
	Type CapabilitySet `json:"type,omitempty"`

	// operator: In (has any of) or NotIn (has none of).
	// +required
	Operator SetOperator `json:"operator"`

	// isNamespaceCapability compares in the caller's user namespace.
	// +optional
	IsNamespaceCapability *bool `json:"isNamespaceCapability,omitempty"`

	// values are capability names, e.g. "CAP_SYS_ADMIN".
	// +required
	// +kubebuilder:validation:MinItems=1
	Values []Capability `json:"values"`
}

// Capability is a Linux capability name.
// +kubebuilder:validation:Enum=CAP_CHOWN;CAP_DAC_OVERRIDE;CAP_DAC_READ_SEARCH;CAP_FOWNER;CAP_FSETID;CAP_KILL;CAP_SETGID;CAP_SETUID;CAP_SETPCAP;CAP_LINUX_IMMUTABLE;CAP_NET_BIND_SERVICE;CAP_NET_BROADCAST;CAP_NET_ADMIN;CAP_NET_RAW;CAP_IPC_LOCK;CAP_IPC_OWNER;CAP_SYS_MODULE;CAP_SYS_RAWIO;CAP_SYS_CHROOT;CAP_SYS_PTRACE;CAP_SYS_PACCT;CAP_SYS_ADMIN;CAP_SYS_BOOT;CAP_SYS_NICE;CAP_SYS_RESOURCE;CAP_SYS_TIME;CAP_SYS_TTY_CONFIG;CAP_MKNOD;CAP_LEASE;CAP_AUDIT_WRITE;CAP_AUDIT_CONTROL;CAP_SETFCAP;CAP_MAC_OVERRIDE;CAP_MAC_ADMIN;CAP_SYSLOG;CAP_WAKE_ALARM;CAP_BLOCK_SUSPEND;CAP_AUDIT_READ;CAP_PERFMON;CAP_BPF;CAP_CHECKPOINT_RESTORE
type Capability string

// ActionType is what happens when a selector matches:
//
//   - Notify: emit an event (the default when a selector has no action)
//   - Sigkill: kill the calling process (synchronously, before return)
//   - Signal: send the signal argSig to the calling process (before the
//     call returns; the process may handle it, unlike SIGKILL)
//   - Deny: fail the call with argError (LSM hooks only)
//   - FollowFD: remember the file behind the fd at argFd with the name at
//     argName, so later fd-based hooks can match by path
//   - UnfollowFD: forget a followed fd (e.g. on close)
//
// +kubebuilder:validation:Enum=Notify;Sigkill;Signal;Deny;FollowFD;UnfollowFD
type ActionType string

// The actions.
const (
	// ActionNotify emits an event.
	ActionNotify ActionType = "Notify"
	// ActionSigkill kills the calling process before the call returns.
	ActionSigkill ActionType = "Sigkill"
	// ActionSignal sends the signal argSig to the calling process.
	ActionSignal ActionType = "Signal"
	// ActionDeny fails the call with argError (LSM hooks only).
	ActionDeny ActionType = "Deny"
	// ActionFollowFD remembers the file behind an fd.
	ActionFollowFD ActionType = "FollowFD"
	// ActionUnfollowFD forgets a followed fd.
	ActionUnfollowFD ActionType = "UnfollowFD"
)

// Action is what happens when a selector matches; see ActionType.
//
// +kubebuilder:validation:XValidation:rule="self.action != 'Signal' || has(self.argSig)",message="Signal needs argSig, the signal number (1-64)"
type Action struct {
	// action to take.
	// +required
	Action ActionType `json:"action"`

	// argError is the negative errno a Deny returns (default -EPERM).
	// +optional
	// +kubebuilder:validation:Minimum=-4095
	// +kubebuilder:validation:Maximum=-1
	ArgError *int32 `json:"argError,omitempty"`

	// argFd is the index of the fd argument (FollowFD, UnfollowFD).
	// +optional
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=15
	ArgFd *int32 `json:"argFd,omitempty"`

	// argName is the index of the path argument (FollowFD).
	// +optional
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=15
	ArgName *int32 `json:"argName,omitempty"`

	// argSig is the signal number a Signal sends, e.g. 10 (SIGUSR1).
	// +optional
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=64
	ArgSig *int32 `json:"argSig,omitempty"`

	// rateLimit limits Notify events per process, e.g. "1m".
	// +optional
	// +kubebuilder:validation:Pattern=`^[0-9]+(ms|s|m|h)$`
	RateLimit string `json:"rateLimit,omitempty"`
}
