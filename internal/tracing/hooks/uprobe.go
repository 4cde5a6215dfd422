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
	"debug/elf"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"

	"github.com/palisade-dev/palisade/api/v1alpha1"
)

// uprobeArgs is the number of arguments passed in registers: a uprobe
// reads no more (6 on x86_64, 8 on arm64).
func (r *resolver) uprobeArgs() int {
	if r.k != nil && r.k.Arch == "arm64" {
		return 8
	}
	return 6
}

func (r *resolver) uprobe(i int, u *v1alpha1.UprobeHook) {
	path := fmt.Sprintf("spec.uprobes[%d]", i)
	var syms map[string]bool
	if r.k != nil && r.k.Binaries {
		var err error
		syms, err = elfSymbols(r.k.BinaryRoot, u.Path)
		if err != nil {
			r.problem(path+".path", CodeUprobeNotFound, "%v", err)
			return
		}
	}
	n := r.uprobeArgs()
	t := &target{what: "uprobe " + u.Path, src: fromUser, known: true}
	for j := range n {
		t.params = append(t.params, param{name: fmt.Sprintf("arg%d", j), typ: ctype{kind: cUnknown}})
	}
	// Arguments are checked once per hook, not per symbol.
	args := r.args(path, t, u.Args)
	for j, s := range u.Symbols {
		if syms != nil && !syms[string(s)] {
			r.problem(fmt.Sprintf("%s.symbols[%d]", path, j), CodeUprobeNotFound, "%s defines no symbol %q (in .symtab or .dynsym)", u.Path, s)
			continue
		}
		r.hooks = append(r.hooks, Hook{
			Path: fmt.Sprintf("%s.symbols[%d]", path, j), Kind: KindUprobe, Target: u.Path + ":" + string(s),
			NumArgs: n, Args: args,
		})
	}
}

// elfSymbols returns the function symbols an ELF file defines; file is
// looked up under root ("" for /).
func elfSymbols(root, file string) (map[string]bool, error) {
	f, err := elf.Open(filepath.Join("/", root, file))
	if root != "" && root != "/" {
		file = fmt.Sprintf("%s (under %s)", file, root)
	}
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("binary %s does not exist on this machine", file)
		}
		var fe *elf.FormatError
		if errors.As(err, &fe) {
			return nil, fmt.Errorf("%s is not an ELF binary: %v", file, err)
		}
		return nil, fmt.Errorf("read %s: %w", file, err)
	}
	defer f.Close()
	out := map[string]bool{}
	for _, read := range []func() ([]elf.Symbol, error){f.Symbols, f.DynamicSymbols} {
		syms, err := read()
		if err != nil && !errors.Is(err, elf.ErrNoSymbols) {
			return nil, fmt.Errorf("read symbols of %s: %w", file, err)
		}
		for _, s := range syms {
			if elf.ST_TYPE(s.Info) == elf.STT_FUNC && s.Section != elf.SHN_UNDEF {
				out[s.Name] = true
			}
		}
	}
	return out, nil
}
