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

package tracing

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/link"

	v1 "github.com/palisade-dev/palisade/api/v1alpha1"
	"github.com/palisade-dev/palisade/internal/tracing/hooks"
)

// Check says what keeps the hooks of spec from loading on k, each problem
// at its field: hooks.Resolve's problems, everything the datapath's
// compiler refuses (types it does not read, values it cannot parse,
// limits), and, on the running kernel (k.Running, or k.Loads already
// probed), hooks whose kind the kernel cannot attach by any mechanism: a
// kernel function when neither fentry nor kprobes load (a syscall hook
// that falls back to its tracepoints is fine), an LSM hook when BPF-LSM
// programs do not load. A policy that Check accepts loads on k.
func Check(k *hooks.Kernel, spec v1.TracingPolicySpec) []hooks.Problem {
	_, out := hooks.Resolve(k, spec)
	// host_ns is resolved on the node when the policy loads.
	pl := compile(k, Policy{Key: "check", Spec: spec}, func(v1.NamespaceType) (uint32, error) { return 0, nil })
	for _, hp := range pl.hooks {
		for _, pr := range hp.problems {
			if pr.Code == hooks.CodeNotCompiled {
				out = append(out, pr)
			}
		}
	}
	for _, c := range []struct {
		what   string
		n, max int
	}{{"integer", len(pl.ints), MaxIntValues}, {"string", len(pl.strs), MaxStringValues}, {"prefix and postfix", len(pl.lpms), MaxPrefixValues}, {"address", len(pl.addrs), MaxAddrValues}} {
		if c.n > c.max {
			out = append(out, hooks.Problem{Path: "spec", Code: hooks.CodeNotCompiled,
				Message: fmt.Sprintf("the policy's selectors hold %d %s values (ranges expanded), at most %d per policy", c.n, c.what, c.max)})
		}
	}
	loads := k.Loads
	if loads == nil && k.Running {
		if err := ProbeKernel(k); err == nil {
			loads = k.Loads
		}
	}
	if loads == nil {
		return out
	}
	for _, hp := range pl.hooks {
		if hp.state != "" {
			continue
		}
		if msg := unattachable(k, loads, hp); msg != "" {
			out = append(out, hooks.Problem{Path: hp.path, Code: hooks.CodeNotAttachable, Message: msg})
		}
	}
	return out
}

// unattachable says why a compiled hook cannot attach on a kernel that
// loads what loads says, or "" when it can; the order is the Manager's.
func unattachable(k *hooks.Kernel, loads *hooks.Loads, hp *hookPlan) string {
	switch hp.kind {
	case hooks.KindFentry, hooks.KindFexit:
		if loads.Fentry == nil {
			return ""
		}
		ret := hp.kind == hooks.KindFexit
		what := "kernel function " + hp.target
		var tp string
		if hp.syscall {
			what = "syscall " + syscallName(hp.target)
			tp = "syscalls/" + syscallTracepoint(hp)
			if k.Tracefs != "" {
				if _, err := os.Stat(filepath.Join(k.Tracefs, "events", tp)); err == nil {
					return ""
				}
			}
		}
		if loads.Kprobe == nil && (!ret || len(hp.args) == 0) {
			return ""
		}
		msg := fmt.Sprintf("%s cannot be hooked on this kernel: fentry/fexit programs do not load (%v)", what, loads.Fentry)
		if tp != "" {
			msg += fmt.Sprintf(", it has no tracepoint %s", tp)
		}
		if loads.Kprobe != nil {
			msg += fmt.Sprintf(", and kprobes do not attach (probed on %s: %v)", probeFunc, loads.Kprobe)
		} else {
			msg += ", and a kretprobe cannot read arguments at return"
		}
		return msg
	case hooks.KindLSM:
		if loads.LSM != nil {
			return fmt.Sprintf("LSM hook %s cannot attach: the kernel does not load BPF-LSM programs (%v)", hp.target, loads.LSM)
		}
	}
	return ""
}

var (
	probeOnce sync.Once
	probed    *hooks.Loads
	probeErr  error
)

// ProbeKernel loads a trivial program of each kind that hooks kernel
// functions and LSM hooks (fentry, kprobe attached to a function, BPF-LSM)
// on the running kernel, once per process, and sets k.Loads. It returns
// an error, and leaves k.Loads nil, when probing itself is not possible
// (a trivial tracepoint program does not load: no privileges).
func ProbeKernel(k *hooks.Kernel) error {
	probeOnce.Do(func() { probed, probeErr = probe() })
	if probeErr != nil {
		return probeErr
	}
	l := *probed
	k.Loads = &l
	return nil
}

// probeFunc is the kernel function the probes hook: present on every
// kernel with LSM support compiled in, and not notrace.
const probeFunc = "security_file_open"

func trivial(typ ebpf.ProgramType, at ebpf.AttachType, to string) (*ebpf.Program, error) {
	return ebpf.NewProgram(&ebpf.ProgramSpec{
		Type: typ, AttachType: at, AttachTo: to, License: "GPL",
		Instructions: asm.Instructions{asm.Mov.Imm(asm.R0, 0), asm.Return()},
	})
}

func probe() (*hooks.Loads, error) {
	base, err := trivial(ebpf.TracePoint, ebpf.AttachNone, "")
	if err != nil {
		return nil, fmt.Errorf("cannot probe what the kernel loads: a trivial tracepoint program does not load (%w)", err)
	}
	base.Close()
	l := &hooks.Loads{}
	if p, err := trivial(ebpf.Tracing, ebpf.AttachTraceFEntry, probeFunc); err != nil {
		l.Fentry = err
	} else {
		p.Close()
	}
	if p, err := trivial(ebpf.Kprobe, ebpf.AttachNone, ""); err != nil {
		l.Kprobe = err
	} else {
		kp, err := link.Kprobe(probeFunc, p, nil)
		if err != nil {
			l.Kprobe = err
		} else {
			kp.Close()
		}
		p.Close()
	}
	if p, err := trivial(ebpf.LSM, ebpf.AttachLSMMac, "file_open"); err != nil {
		l.LSM = err
	} else {
		p.Close()
	}
	for _, e := range []*error{&l.Fentry, &l.Kprobe, &l.LSM} {
		if *e != nil {
			*e = shortErr(*e)
		}
	}
	return l, nil
}

// shortErr keeps a probe's error to its first line (the verifier's log
// of a two-instruction program says nothing more), without cilium/ebpf's
// MEMLOCK hint: the baseline program loaded under the same limit, so the
// limit is not why another two-instruction program does not.
func shortErr(err error) error {
	var ve *ebpf.VerifierError
	if errors.As(err, &ve) {
		err = ve.Cause
	}
	if s := err.Error(); strings.Contains(s, memlockHint) {
		return errors.New(strings.Replace(s, memlockHint, "", 1))
	}
	return err
}

const memlockHint = " (MEMLOCK may be too low, consider rlimit.RemoveMemlock)"
