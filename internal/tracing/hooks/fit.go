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

package hooks

import (
	"fmt"
	"strings"

	"github.com/palisade-dev/palisade/api/v1alpha1"
)

// objectStructs names the struct (or union) a pointer argument of each
// kernel-object type must point to.
var objectStructs = map[v1alpha1.ArgType]string{
	"file":           "file",
	"path":           "path",
	"dentry":         "dentry",
	"linux_binprm":   "linux_binprm",
	"sock":           "sock",
	"socket":         "socket",
	"skb":            "sk_buff",
	"cred":           "cred",
	"bpf_attr":       "bpf_attr",
	"perf_event":     "perf_event",
	"bpf_map":        "bpf_map",
	"user_namespace": "user_namespace",
	"module":         "module",
	"load_info":      "load_info",
	"net_device":     "net_device",
	"kiocb":          "kiocb",
	"iov_iter":       "iov_iter",
}

// intBytes are the sizes the integer argument types read.
var intBytes = map[v1alpha1.ArgType]uint32{
	"int": 4, "int8": 1, "int16": 2, "int32": 4, "int64": 8,
	"uint8": 1, "uint16": 2, "uint32": 4, "uint64": 8,
	"size_t": 8, "fd": 4, "syscall64": 8, "capability": 4,
}

// capSetTypes read a kernel_cap_t.
var capSetTypes = map[v1alpha1.ArgType]bool{"kernel_cap_t": true, "cap_inheritable": true, "cap_permitted": true, "cap_effective": true}

// source is where an argument's value comes from.
type source int

const (
	fromKernel     source = iota // a kernel function's or LSM hook's parameter
	fromSyscall                  // a syscall argument: a user-space value in a register
	fromTracepoint               // a field of a tracepoint's record
	fromUser                     // a uprobe's register: user space, no type information
)

// fit says why declared cannot read an argument of C type t from src, or
// "" when it can. A t of kind cUnknown only rules out what no argument of
// that source can be.
func fit(declared v1alpha1.ArgType, t ctype, src source) string {
	if declared == "nop" {
		return ""
	}
	if st, ok := objectStructs[declared]; ok {
		switch src {
		case fromSyscall:
			if declared == "sockaddr" {
				break
			}
			return "a syscall argument is a user-space value, never a kernel struct " + st
		case fromUser:
			return "a uprobe reads user-space registers, never a kernel struct " + st
		}
		if t.kind == cUnknown {
			return ""
		}
		if t.pointsTo(st) {
			return ""
		}
		return "it is not a struct " + st + " *"
	}
	if declared == "sockaddr" {
		if src == fromUser || t.kind == cUnknown {
			return ""
		}
		if t.kind == cPtr && t.elem != nil && t.elem.kind == cStruct && strings.HasPrefix(t.elem.name, "sockaddr") {
			return ""
		}
		return "it is not a struct sockaddr *"
	}
	if src == fromUser || t.kind == cUnknown {
		return ""
	}
	switch {
	case capSetTypes[declared]:
		switch {
		case t.kind == cStruct && t.name == "kernel_cap_t",
			t.kind == cPtr && t.elem != nil && t.elem.kind == cStruct && t.elem.name == "kernel_cap_t",
			t.kind == cInt && t.size == 8:
			return ""
		}
		return "it is not a kernel_cap_t"
	case intBytes[declared] > 0:
		want := intBytes[declared]
		if t.kind != cInt {
			return "it is not an integer"
		}
		if declared == "fd" && t.size < 4 {
			return "a file descriptor is an int"
		}
		if want > t.size {
			return "it has " + plural(t.size, "byte") + " and the type reads " + plural(want, "byte")
		}
		return ""
	}
	switch declared {
	case "string":
		if t.kind == cPtr && (t.elem.isCharLike()) {
			return ""
		}
		if t.kind == cArray && t.elem.isCharLike() {
			return ""
		}
		if t.kind == cDataLoc && src == fromTracepoint {
			return ""
		}
		return "it is not a char * or char array"
	case "char_buf":
		if t.kind == cPtr && (t.elem.isCharLike() || t.elem.kind == cVoid) || t.kind == cArray {
			return ""
		}
		return "it is not a pointer to bytes (char * or void *)"
	case "char_iovec":
		if t.pointsTo("iovec") {
			return ""
		}
		return "it is not a struct iovec *"
	case "const_buf":
		if t.kind == cPtr || t.kind == cArray {
			return ""
		}
		return "it is not a pointer or array"
	case "data_loc":
		if t.kind == cDataLoc {
			return ""
		}
		return "it is not a tracepoint's __data_loc field"
	}
	return ""
}

// suggest returns the argument type that reads C type t from src, or ""
// when none does.
func suggest(t ctype, src source) v1alpha1.ArgType {
	switch t.kind {
	case cPtr:
		e := t.elem
		switch {
		case e.isCharLike():
			return "string"
		case e.kind == cStruct:
			if strings.HasPrefix(e.name, "sockaddr") {
				return "sockaddr"
			}
			if e.name == "iovec" {
				return "char_iovec"
			}
			if e.name == "kernel_cap_t" {
				return "kernel_cap_t"
			}
			if src != fromKernel && src != fromTracepoint {
				return ""
			}
			for at, st := range objectStructs {
				if st == e.name {
					return at
				}
			}
		case e.kind == cVoid:
			return "char_buf"
		}
		return ""
	case cArray:
		if t.elem.isCharLike() {
			return "string"
		}
		return "const_buf"
	case cDataLoc:
		return "data_loc"
	case cStruct:
		if t.name == "kernel_cap_t" {
			return "kernel_cap_t"
		}
		return ""
	case cInt:
		switch {
		case t.size == 1 && t.signed:
			return "int8"
		case t.size == 1:
			return "uint8"
		case t.size == 2 && t.signed:
			return "int16"
		case t.size == 2:
			return "uint16"
		case t.size == 4 && t.signed:
			return "int"
		case t.size == 4:
			return "uint32"
		case t.signed:
			return "int64"
		default:
			return "uint64"
		}
	}
	return ""
}

func plural(n uint32, unit string) string {
	if n == 1 {
		return "1 " + unit
	}
	return fmt.Sprintf("%d %ss", n, unit)
}
