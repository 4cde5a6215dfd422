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

package diag

// CodeInfo documents a diagnostic code.
type CodeInfo struct {
	// Severity every diagnostic of this code has.
	Severity Severity
	// Title is a one-line description for docs and SARIF rules.
	Title string
	// Hint is the default hint attached to the diagnostic.
	Hint string
}

// Codes is the registry of every diagnostic code. Codes are stable: a code
// is never reused for a different finding.
//
//	PAL0xx  loading: files, syntax, budgets, imports
//	PAL05x  schema: CUE unification with the embedded schema
//	PAL06x  capability: what this version's datapath does not enforce
//	PAL1xx  selectors and policy structure
//	PAL15x  ports and ICMP
//	PAL2xx  L7 (HTTP, and L7 rules in general)
//	PAL3xx  DNS and FQDN
//	PAL35x  CIDR
//	PAL4xx  Kafka and rule relations
//	PAL5xx  tracing policies
//	PAL9xx  importer
var Codes = map[string]CodeInfo{
	"PAL001": {Error, "CUE syntax error", ""},
	"PAL002": {Error, "file is not valid UTF-8", "CUE files must be UTF-8 encoded"},
	"PAL003": {Error, "file exceeds the size budget", "split the file or raise --max-file-size"},
	"PAL004": {Error, "repository exceeds the size budget", "validate a sub-directory or raise --max-total-size"},
	"PAL005": {Error, "symlink points outside the repository", "policy files must live inside the repository"},
	"PAL006": {Error, "evaluation exceeded the time budget", "look for a comprehension or list that grows without bound, or raise --timeout"},
	"PAL007": {Error, "import error", ""},
	"PAL008": {Error, "value nested too deeply", "policies are at most a few levels deep; flatten the value"},
	"PAL009": {Error, "evaluation error", ""},
	"PAL010": {Warning, "no policies found", "a policy is a struct with apiVersion \"palisade.dev/v1alpha1\" and a kind"},
	"PAL011": {Error, "evaluated policies exceed the size budget", "look for a comprehension that generates too many policies, or raise --max-output-size"},
	"PAL012": {Error, "cannot read file", ""},
	"PAL050": {Error, "value does not match the schema", ""},
	"PAL051": {Error, "field not allowed by the schema", "check the field name's spelling and where it is nested"},
	"PAL052": {Error, "required field missing or not concrete", "give the field a concrete value"},
	"PAL053": {Error, "unknown policy kind", "kinds: NetworkPolicy, ClusterNetworkPolicy, TracingPolicy, ClusterTracingPolicy"},
	"PAL054": {Error, "unsupported apiVersion", "use apiVersion: \"palisade.dev/v1alpha1\""},
	"PAL060": {Warning, "rule not enforced as written by this version's datapath", "the kernel behaves as said here until the datapath enforces the feature; validate --strict makes this an error"},
	"PAL101": {Error, "selector can never match", "remove the contradicting terms"},
	"PAL102": {Error, "malformed selector requirement", "In and NotIn need values; Exists and DoesNotExist take none"},
	"PAL103": {Error, "duplicate policy name", "names are unique per kind and namespace"},
	"PAL104": {Warning, "policy has no effect", "add rules, or leave default deny enabled"},
	"PAL105": {Error, "cluster policy needs exactly one of endpointSelector and nodeSelector", "endpointSelector selects pods; nodeSelector makes a host firewall"},
	"PAL106": {Warning, "empty peer list matches no peer", "list the peers, or omit the field"},
	"PAL107": {Warning, "redundant entity", "\"all\" already includes every other entity"},
	"PAL108": {Error, "selector the datapath cannot read", "label keys are plain Kubernetes keys, or carry the source k8s:, any: or reserved:<entity>"},
	"PAL150": {Error, "port range is reversed", "endPort must be greater than or equal to port"},
	"PAL151": {Error, "endPort needs a numeric port", "a range starts at a port number other than 0"},
	"PAL152": {Warning, "duplicate port", ""},
	"PAL153": {Error, "ICMP type not defined for the family", ""},
	"PAL154": {Error, "toPorts and icmps in one rule", "put ICMP in a rule of its own"},
	"PAL201": {Error, "L7 rule on a protocol where it cannot apply", "HTTP and Kafka need TCP; DNS needs UDP or TCP"},
	"PAL202": {Error, "HTTP path is not a valid regular expression", ""},
	"PAL203": {Error, "HTTP path pattern cannot be compiled by the datapath", "use literals, character classes, ., *, +, ? and alternation; no anchors inside, word boundaries or flags"},
	"PAL204": {Error, "more than one L7 protocol in one port rule", "use one port rule per protocol"},
	"PAL205": {Error, "L7 rule on a port range or on every port", "L7 rules need exactly one port number"},
	"PAL206": {Error, "HTTP host pattern is invalid", "an exact host name, or \"*.\" followed by a host name"},
	"PAL207": {Error, "HTTP header rule is invalid", ""},
	"PAL301": {Error, "DNS pattern is invalid", "\"*\" alone, or labels of letters, digits, '-', '_' where \"*\" stands for part of one label"},
	"PAL302": {Error, "exactly one of matchName and matchPattern", ""},
	"PAL303": {Warning, "toFQDNs without a DNS rule that lets the endpoint resolve the names", "add an egress rule to your DNS server on port 53 with rules.dns"},
	"PAL350": {Error, "CIDR is malformed", "use address/prefix-length, e.g. 10.0.0.0/8"},
	"PAL351": {Error, "CIDR has host bits set", ""},
	"PAL352": {Error, "except prefix is not inside its CIDR", ""},
	"PAL353": {Warning, "CIDR matches every address", "use the entity \"world\" (or \"all\") to say so"},
	"PAL401": {Error, "Kafka rule on a protocol where it cannot apply", "Kafka runs over TCP"},
	"PAL402": {Error, "Kafka role and apiKey are mutually exclusive", ""},
	"PAL450": {Warning, "allow rule is fully shadowed by a deny rule", "the allow can never take effect; remove it or narrow the deny"},
	"PAL501": {Error, "selector operator not valid for the argument type", ""},
	"PAL502": {Error, "selector refers to an argument the hook does not declare", "declare the argument in args with its index and type"},
	"PAL503": {Warning, "Sigkill, Signal or Deny without any scoping", "scope with podSelector, matchBinaries, matchNamespaces, matchPIDs or matchCapabilities"},
	"PAL504": {Error, "Deny action on a hook that cannot deny", "Deny works on lsmhooks only"},
	"PAL505": {Error, "FollowFD/UnfollowFD needs argFd (and argName) naming declared arguments", "argFd names an integer (fd) argument, argName a string-like one (e.g. file); UnfollowFD needs argFd only"},
	"PAL506": {Error, "matchReturnArgs on a hook that does not trace the return", "set return: true and returnArg (kprobes only)"},
	"PAL507": {Error, "returnArg without return: true", "set return: true, or remove returnArg"},
	"PAL508": {Error, "argument index declared twice", "declare each argument index once, with one type"},
	"PAL509": {Error, "action may target a protected process", "Sigkill, Signal and Deny never target PID 1, the kubelet, the container runtime or Palisade's agent"},
	"PAL510": {Error, "selector value does not parse for its operator", "addresses: IP or CIDR; ports: 0-65535 or min:max; integers: decimal or 0x hex within the type; Protocol: number or IPPROTO_*; Family: number or AF_*; State: TCP_*"},
	"PAL511": {Error, "matchBinaries value is not a clean absolute path", "In, NotIn, Prefix and NotPrefix compare the executable's absolute path; only Postfix and NotPostfix take a bare suffix"},
	"PAL512": {Error, "tracing policy has no hooks", "add kprobes, tracepoints, lsmhooks or uprobes"},
	"PAL513": {Info, "enforcement actions in an audit-mode policy are reported, not taken", "omit mode (or set mode: \"enforce\") to take them"},
	"PAL514": {Error, "Mask, GT and LT take exactly one value", "for several values use one selector per value (any selector matching is a match), or InMap"},
	"PAL515": {Warning, "action parameter has no effect on this action", "argError is for Deny, argFd for FollowFD and UnfollowFD, argName for FollowFD, argSig for Signal, rateLimit for Notify"},
	"PAL516": {Error, "Signal needs argSig", "set argSig to the signal number (1-64), e.g. 10 for SIGUSR1"},
	"PAL517": {Error, "tracing policy exceeds the tracing datapath's limits", "split the policy, hook or selector the message names; the limits are those of internal/tracing"},
	// PAL52x: hooks checked against a kernel (palisadectl validate --kernel
	// or --btf; internal/tracing/hooks).
	"PAL520": {Error, "kernel function not found", "check the name against the kernel's BTF (bpftool btf dump file /sys/kernel/btf/vmlinux | grep FUNC); syscalls need syscall: true"},
	"PAL521": {Error, "LSM hook not found", "name the hook without security_, as in the kernel's bpf_lsm_<hook> functions"},
	"PAL522": {Error, "BPF-LSM is not active on the kernel", "boot the nodes with \"bpf\" in lsm=, or hook the function with a kprobe"},
	"PAL523": {Error, "tracepoint not found", "see /sys/kernel/tracing/events/<subsystem>/<event>"},
	"PAL524": {Error, "uprobe binary or symbol not found on this machine", "check the binary's path and its symbols (nm -D)"},
	"PAL525": {Error, "argument index past the hook's arguments", "count arguments from 0, as the kernel's prototype or the tracepoint's format lists them"},
	"PAL526": {Error, "argument type cannot read the kernel's argument", ""},
	"PAL527": {Error, "sizeArgIndex names no integer argument", "sizeArgIndex counts from 1 and names the argument holding the buffer's size"},
	"PAL528": {Error, "hook cannot attach on this kernel", "the kernel refuses every mechanism for the hook's kind (see the message); hook a syscall with syscall: true (its tracepoints), or a tracepoint"},
	"PAL529": {Error, "the tracing datapath cannot compile this field", "see docs/tracing.md for the argument types, operators, values and limits it reads"},
	"PAL901": {Warning, "field has no Palisade equivalent and was not imported", ""},
	"PAL902": {Error, "object cannot be imported", ""},
	"PAL903": {Info, "field translated with a change of meaning or form", ""},
	"PAL904": {Error, "input is not valid YAML", ""},
	"PAL905": {Warning, "field translated to a narrower Palisade equivalent", "the imported policy allows less than the source; check that nothing needed is lost"},
	"PAL906": {Warning, "imported selector matches nothing under Palisade", "Palisade has no such endpoints; remove the policy or select pods by their labels"},
	"PAL907": {Warning, "Kubernetes ipBlock covers pod addresses, which a Palisade CIDR does not match", ""},
	// palisadectl plan's findings.
	"PLAN001": {Error, "a recorded flow that was allowed would be dropped", "restore the rule that allowed it, or confirm that the flow must stop"},
	"PLAN002": {Info, "a recorded flow's verdict changes", ""},
	// PAL6xx: guards (internal/guard), OPA/Rego checks of a change.
	"PAL601": {Error, "guard denied the change", "change the policies, or ask the guard's owner; see docs/guards.md"},
	"PAL602": {Warning, "guard warning", ""},
	"PAL603": {Error, "guard does not compile", "fix the Rego; nothing was evaluated"},
	"PAL604": {Error, "guard failed, so the change is denied (fail closed)", "a guard that errors, times out or returns malformed output denies the change; see docs/guards.md"},
	"PAL605": {Warning, "base revision does not validate", "its policies that fail to load are treated as created by the change"},
}
