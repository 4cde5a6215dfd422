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

	"github.com/cilium/ebpf/btf"
)

// ckind is the shape of a C type, as far as reading an argument cares.
type ckind int

const (
	cUnknown ckind = iota // no type information (e.g. a syscall without BTF prototype or tracefs)
	cInt                  // integer, enum or bool
	cPtr
	cStruct // struct or union
	cArray
	cDataLoc // a tracepoint's __data_loc locator
	cVoid
	cOther // function, float, ...
)

// ctype is a C type reduced to what argument checks need: its shape, size
// and signedness, the struct name behind a pointer, and its spelling for
// messages.
type ctype struct {
	kind   ckind
	size   uint32 // bytes; 0 when unknown
	signed bool
	// name is the struct or union name (the typedef's for an anonymous
	// struct, e.g. kernel_cap_t), or the integer's name.
	name string
	// elem is the pointee of a pointer or the element of an array.
	elem *ctype
	// text is the C spelling, e.g. "const char *" or "struct file *".
	text string
}

// isCharLike reports whether t is a one-byte integer (char, u8, ...).
func (t *ctype) isCharLike() bool { return t != nil && t.kind == cInt && t.size == 1 }

// pointsTo reports whether t is a pointer to the struct or union name.
func (t *ctype) pointsTo(name string) bool {
	return t.kind == cPtr && t.elem != nil && t.elem.kind == cStruct && t.elem.name == name
}

// fromBTF reduces a BTF type.
func fromBTF(typ btf.Type) ctype {
	t := reduceBTF(typ, 0)
	t.text = spellBTF(typ)
	return t
}

func reduceBTF(typ btf.Type, depth int) ctype {
	if depth > 16 {
		return ctype{kind: cOther}
	}
	switch v := typ.(type) {
	case *btf.Int:
		return ctype{kind: cInt, size: v.Size, signed: v.Encoding&btf.Signed != 0, name: v.Name}
	case *btf.Enum:
		return ctype{kind: cInt, size: v.Size, signed: v.Signed, name: "enum " + v.Name}
	case *btf.Pointer:
		e := reduceBTF(v.Target, depth+1)
		return ctype{kind: cPtr, size: 8, elem: &e}
	case *btf.Struct:
		return ctype{kind: cStruct, size: v.Size, name: v.Name}
	case *btf.Union:
		return ctype{kind: cStruct, size: v.Size, name: v.Name}
	case *btf.Fwd:
		return ctype{kind: cStruct, name: v.Name}
	case *btf.Array:
		e := reduceBTF(v.Type, depth+1)
		return ctype{kind: cArray, size: e.size * v.Nelems, elem: &e}
	case *btf.Typedef:
		t := reduceBTF(v.Type, depth+1)
		if t.kind == cStruct && t.name == "" {
			t.name = v.Name // typedef struct { ... } kernel_cap_t;
		}
		return t
	case *btf.Const:
		return reduceBTF(v.Type, depth+1)
	case *btf.Volatile:
		return reduceBTF(v.Type, depth+1)
	case *btf.Restrict:
		return reduceBTF(v.Type, depth+1)
	case *btf.TypeTag:
		return reduceBTF(v.Type, depth+1)
	case *btf.Void:
		return ctype{kind: cVoid}
	}
	return ctype{kind: cOther}
}

// spellBTF writes a BTF type as C, e.g. "const char *".
func spellBTF(typ btf.Type) string {
	var b strings.Builder
	spell(&b, typ, 0)
	return strings.TrimSpace(b.String())
}

func spell(b *strings.Builder, typ btf.Type, depth int) {
	if depth > 16 {
		b.WriteString("...")
		return
	}
	switch v := typ.(type) {
	case *btf.Pointer:
		spell(b, v.Target, depth+1)
		b.WriteString(" *")
	case *btf.Const:
		if _, ptr := v.Type.(*btf.Pointer); ptr {
			spell(b, v.Type, depth+1)
			b.WriteString(" const")
			return
		}
		b.WriteString("const ")
		spell(b, v.Type, depth+1)
	case *btf.Volatile:
		b.WriteString("volatile ")
		spell(b, v.Type, depth+1)
	case *btf.Restrict:
		spell(b, v.Type, depth+1)
	case *btf.TypeTag:
		spell(b, v.Type, depth+1)
	case *btf.Struct:
		b.WriteString("struct " + orAnon(v.Name))
	case *btf.Union:
		b.WriteString("union " + orAnon(v.Name))
	case *btf.Enum:
		b.WriteString("enum " + orAnon(v.Name))
	case *btf.Fwd:
		b.WriteString(v.Kind.String() + " " + v.Name)
	case *btf.Array:
		spell(b, v.Type, depth+1)
		fmt.Fprintf(b, "[%d]", v.Nelems)
	case *btf.Void:
		b.WriteString("void")
	case *btf.FuncProto:
		b.WriteString("function")
	case nil:
		b.WriteString("void")
	default:
		b.WriteString(typ.TypeName())
	}
}

func orAnon(name string) string {
	if name == "" {
		return "(anonymous)"
	}
	return name
}

// intNames are the sizes and signedness of integer type names that
// tracepoint formats use.
var intNames = map[string]struct {
	size   uint32
	signed bool
}{
	"char": {1, true}, "signed char": {1, true}, "unsigned char": {1, false}, "bool": {1, false}, "_Bool": {1, false},
	"u8": {1, false}, "s8": {1, true}, "__u8": {1, false}, "__s8": {1, true}, "uint8_t": {1, false}, "int8_t": {1, true},
	"short": {2, true}, "unsigned short": {2, false}, "short int": {2, true}, "short unsigned int": {2, false},
	"u16": {2, false}, "s16": {2, true}, "__u16": {2, false}, "__s16": {2, true}, "umode_t": {2, false}, "__be16": {2, false},
	"int": {4, true}, "unsigned int": {4, false}, "unsigned": {4, false}, "signed int": {4, true},
	"u32": {4, false}, "s32": {4, true}, "__u32": {4, false}, "__s32": {4, true}, "pid_t": {4, true}, "uid_t": {4, false},
	"gid_t": {4, false}, "key_serial_t": {4, true}, "qid_t": {4, false}, "clockid_t": {4, true}, "timer_t": {4, true},
	"mqd_t": {4, true}, "rwf_t": {4, true}, "__be32": {4, false}, "dev_t": {4, false}, "fmode_t": {4, false},
	"long": {8, true}, "unsigned long": {8, false}, "long int": {8, true}, "long unsigned int": {8, false},
	"long long": {8, true}, "unsigned long long": {8, false}, "long long int": {8, true}, "long long unsigned int": {8, false},
	"u64": {8, false}, "s64": {8, true}, "__u64": {8, false}, "__s64": {8, true}, "size_t": {8, false}, "ssize_t": {8, true},
	"loff_t": {8, true}, "off_t": {8, true}, "aio_context_t": {8, false}, "time_t": {8, true},
	"gfp_t": {4, false}, "ino_t": {8, false},
}

// fromFormat reduces the type of a tracefs format field, e.g.
// "const char * filename" with the field's size and signedness.
// decl is the whole declaration before the ';' (type and name).
func fromFormat(decl string, size uint32, signed bool) (ctype, string) {
	decl = strings.TrimSpace(decl)
	if rest, ok := strings.CutPrefix(decl, "__data_loc "); ok {
		name := lastIdent(rest)
		return ctype{kind: cDataLoc, size: size, text: "__data_loc " + strings.TrimSpace(strings.TrimSuffix(rest, name))}, name
	}
	// A trailing [N] is an array.
	arr := ""
	if i := strings.LastIndex(decl, "["); i > 0 && strings.HasSuffix(decl, "]") {
		arr = decl[i:]
		decl = strings.TrimSpace(decl[:i])
	}
	name := lastIdent(decl)
	typ := strings.TrimSpace(strings.TrimSuffix(decl, name))
	text := typ + arr
	t := parseCType(typ, size, signed)
	if arr != "" {
		e := t
		t = ctype{kind: cArray, size: size, elem: &e}
	}
	t.text = text
	return t, name
}

// parseCType reduces a C type name from a tracefs format; size and signed
// are the field's, and stand in for names this table does not know.
func parseCType(typ string, size uint32, signed bool) ctype {
	typ = strings.TrimSpace(typ)
	if strings.HasSuffix(typ, "*") {
		e := parseCType(strings.TrimSuffix(typ, "*"), 0, false)
		return ctype{kind: cPtr, size: 8, elem: &e}
	}
	words := strings.Fields(typ)
	var kept []string
	for _, w := range words {
		switch w {
		case "const", "volatile", "__user", "__restrict", "restrict":
			continue
		}
		kept = append(kept, w)
	}
	base := strings.Join(kept, " ")
	switch {
	case base == "void":
		return ctype{kind: cVoid}
	case strings.HasPrefix(base, "struct ") || strings.HasPrefix(base, "union "):
		_, n, _ := strings.Cut(base, " ")
		return ctype{kind: cStruct, name: n}
	case strings.HasPrefix(base, "enum "):
		return ctype{kind: cInt, size: orSize(size, 4), signed: signed, name: base}
	}
	if in, ok := intNames[base]; ok {
		return ctype{kind: cInt, size: in.size, signed: in.signed, name: base}
	}
	if size > 0 && size <= 8 {
		// A typedef of an integer this table does not name: the field's
		// own size and sign describe it.
		return ctype{kind: cInt, size: size, signed: signed, name: base}
	}
	return ctype{kind: cUnknown, name: base}
}

func orSize(size, def uint32) uint32 {
	if size == 0 {
		return def
	}
	return size
}

// lastIdent returns the last C identifier of s.
func lastIdent(s string) string {
	s = strings.TrimSpace(s)
	i := len(s)
	for i > 0 {
		c := s[i-1]
		if c == '_' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' {
			i--
			continue
		}
		break
	}
	return s[i:]
}
