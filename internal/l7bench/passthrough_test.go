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

package l7bench

import (
	"errors"
	"fmt"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/link"
)

// passthrough is the kernel machinery that bpf/l7 runs in, with programs
// that do nothing: a sockops program that puts the server side of every
// new connection to port into a SOCKHASH, a stream parser that takes
// each skb whole as a message, and a verdict that gives it to the
// server, either with SK_PASS or (redirect) as bpf/l7's to_server does:
// bpf_sk_redirect_hash to the socket itself with BPF_F_INGRESS, which
// the kernel delivers from the socket's sk_psock work queue (a kworker)
// rather than in the strparser's read. Measured beside bpf/l7, the two
// split the cost of deciding requests in the kernel into the socket map
// and stream parser, the redirect's work-queue hop, and Palisade's
// programs.
type passthrough struct {
	socks             *ebpf.Map
	sockops, par, ver *ebpf.Program
	cgroup            string
	link              link.Link // the sockops link while on
}

// Offsets in struct bpf_sock_ops and struct __sk_buff (linux/bpf.h, UAPI).
const (
	sockOpsOp        = 0
	sockOpsLocalPort = 68 // host byte order
	skbLen           = 0
	passiveEstCB     = 5 // BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB
	skPass           = 1
	fIngress         = 1 // BPF_F_INGRESS
)

func newPassthrough(cgroup string, port uint16, redirect bool) (p *passthrough, err error) {
	p = &passthrough{cgroup: cgroup}
	defer func() {
		if err != nil {
			p.Close()
		}
	}()
	if p.socks, err = ebpf.NewMap(&ebpf.MapSpec{Name: "l7b_socks", Type: ebpf.SockHash, KeySize: 8, ValueSize: 8, MaxEntries: 4096}); err != nil {
		return nil, fmt.Errorf("create sockhash: %w", err)
	}
	if p.sockops, err = ebpf.NewProgram(&ebpf.ProgramSpec{Name: "l7b_sockops", Type: ebpf.SockOps, License: "GPL", Instructions: asm.Instructions{
		asm.Mov.Reg(asm.R6, asm.R1),
		asm.LoadMem(asm.R2, asm.R6, sockOpsOp, asm.Word),
		asm.JNE.Imm(asm.R2, passiveEstCB, "out"),
		asm.LoadMem(asm.R2, asm.R6, sockOpsLocalPort, asm.Word),
		asm.JNE.Imm(asm.R2, int32(port), "out"),
		asm.Mov.Reg(asm.R1, asm.R6),
		asm.FnGetSocketCookie.Call(),
		asm.StoreMem(asm.RFP, -8, asm.R0, asm.DWord),
		asm.Mov.Reg(asm.R1, asm.R6),
		asm.LoadMapPtr(asm.R2, p.socks.FD()),
		asm.Mov.Reg(asm.R3, asm.RFP),
		asm.Add.Imm(asm.R3, -8),
		asm.Mov.Imm(asm.R4, 0), // BPF_ANY
		asm.FnSockHashUpdate.Call(),
		asm.Mov.Imm(asm.R0, 1).WithSymbol("out"),
		asm.Return(),
	}}); err != nil {
		return nil, fmt.Errorf("load sockops: %w", err)
	}
	if p.par, err = ebpf.NewProgram(&ebpf.ProgramSpec{Name: "l7b_parser", Type: ebpf.SkSKB, License: "GPL", Instructions: asm.Instructions{
		asm.LoadMem(asm.R0, asm.R1, skbLen, asm.Word),
		asm.Return(),
	}}); err != nil {
		return nil, fmt.Errorf("load stream parser: %w", err)
	}
	verdict := asm.Instructions{
		asm.Mov.Imm(asm.R0, skPass),
		asm.Return(),
	}
	if redirect {
		// The socket's own receive queue, keyed by its cookie as sockops
		// keyed it: SK_PASS when the redirect is set up, SK_DROP if not.
		verdict = asm.Instructions{
			asm.Mov.Reg(asm.R6, asm.R1),
			asm.FnGetSocketCookie.Call(),
			asm.StoreMem(asm.RFP, -8, asm.R0, asm.DWord),
			asm.Mov.Reg(asm.R1, asm.R6),
			asm.LoadMapPtr(asm.R2, p.socks.FD()),
			asm.Mov.Reg(asm.R3, asm.RFP),
			asm.Add.Imm(asm.R3, -8),
			asm.Mov.Imm(asm.R4, fIngress),
			asm.FnSkRedirectHash.Call(),
			asm.Return(),
		}
	}
	if p.ver, err = ebpf.NewProgram(&ebpf.ProgramSpec{Name: "l7b_verdict", Type: ebpf.SkSKB, License: "GPL", Instructions: verdict}); err != nil {
		return nil, fmt.Errorf("load verdict: %w", err)
	}
	for _, a := range []struct {
		p *ebpf.Program
		t ebpf.AttachType
	}{{p.par, ebpf.AttachSkSKBStreamParser}, {p.ver, ebpf.AttachSkSKBStreamVerdict}} {
		if err := link.RawAttachProgram(link.RawAttachProgramOptions{Target: p.socks.FD(), Program: a.p, Attach: a.t}); err != nil {
			return nil, fmt.Errorf("attach %v: %w", a.t, err)
		}
	}
	return p, nil
}

// on attaches the sockops program: connections opened from now on are
// put in the SOCKHASH.
func (p *passthrough) on() error {
	if p.link != nil {
		return nil
	}
	l, err := link.AttachCgroup(link.CgroupOptions{Path: p.cgroup, Attach: ebpf.AttachCGroupSockOps, Program: p.sockops})
	if err != nil {
		return fmt.Errorf("attach sockops to %s: %w", p.cgroup, err)
	}
	p.link = l
	return nil
}

// off detaches it (connections already in the SOCKHASH stay there).
func (p *passthrough) off() error {
	if p.link == nil {
		return nil
	}
	err := p.link.Close()
	p.link = nil
	return err
}

// sockets is the number of sockets in the SOCKHASH.
func (p *passthrough) sockets() (int, error) {
	n := 0
	var k, next uint64
	var kp any // nil: the first key
	for {
		err := p.socks.NextKey(kp, &next)
		if errors.Is(err, ebpf.ErrKeyNotExist) {
			return n, nil
		}
		if err != nil {
			return n, fmt.Errorf("iterate sockhash: %w", err)
		}
		n++
		k = next
		kp = &k
	}
}

// Close detaches and frees it all.
func (p *passthrough) Close() {
	p.off()
	if p.socks != nil {
		for _, a := range []struct {
			p *ebpf.Program
			t ebpf.AttachType
		}{{p.par, ebpf.AttachSkSKBStreamParser}, {p.ver, ebpf.AttachSkSKBStreamVerdict}} {
			if a.p != nil {
				link.RawDetachProgram(link.RawDetachProgramOptions{Target: p.socks.FD(), Program: a.p, Attach: a.t})
			}
		}
	}
	for _, prog := range []*ebpf.Program{p.sockops, p.par, p.ver} {
		if prog != nil {
			prog.Close()
		}
	}
	if p.socks != nil {
		p.socks.Close()
	}
}
