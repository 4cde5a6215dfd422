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

package loader

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"unicode/utf8"

	"cuelang.org/go/cue"
	cueerrors "cuelang.org/go/cue/errors"
	"cuelang.org/go/cue/parser"
	"cuelang.org/go/cue/token"

	"github.com/palisade-dev/palisade/internal/diag"
)

// scan walks the repository before CUE sees it and enforces what CUE does
// not: files stay inside the repository, within the size budget, and UTF-8.
// It returns the CUE files found.
func scan(root string, opts Options) ([]string, diag.List, error) {
	info, err := os.Stat(root)
	if err != nil {
		return nil, nil, err
	}
	if !info.IsDir() {
		return nil, nil, fmt.Errorf("%s is not a directory", root)
	}
	var (
		files []string
		diags diag.List
		total int64
	)
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		rel := relPath(root, path)
		if err != nil {
			diags = append(diags, diag.New("PAL012", diag.Pos{File: rel}, "%v", err))
			return nil
		}
		if d.IsDir() {
			if path != root && (strings.HasPrefix(d.Name(), ".") || strings.HasPrefix(d.Name(), "_")) {
				return fs.SkipDir // as cue/load does
			}
			return nil
		}
		if d.Type()&fs.ModeSymlink != 0 {
			target, err := filepath.EvalSymlinks(path)
			if err != nil {
				diags = append(diags, diag.New("PAL012", diag.Pos{File: rel}, "broken symlink: %v", err))
				return nil
			}
			if !inside(root, target) {
				diags = append(diags, diag.New("PAL005", diag.Pos{File: rel}, "symlink %s points to %s, outside the repository", rel, target))
				return nil
			}
		}
		if !strings.HasSuffix(path, ".cue") {
			return nil
		}
		st, err := os.Stat(path)
		if err != nil {
			diags = append(diags, diag.New("PAL012", diag.Pos{File: rel}, "%v", err))
			return nil
		}
		if st.IsDir() {
			return nil
		}
		if st.Size() > opts.MaxFileBytes {
			diags = append(diags, diag.New("PAL003", diag.Pos{File: rel}, "%s is %d bytes, more than the %d-byte budget per file", rel, st.Size(), opts.MaxFileBytes))
			return nil
		}
		total += st.Size()
		if total > opts.MaxTotalBytes {
			diags = append(diags, diag.New("PAL004", diag.Pos{File: rel}, "CUE files exceed %d bytes in total", opts.MaxTotalBytes))
			return fs.SkipAll
		}
		data, err := os.ReadFile(path)
		if err != nil {
			diags = append(diags, diag.New("PAL012", diag.Pos{File: rel}, "%v", err))
			return nil
		}
		if p, ok := invalidUTF8(data); !ok {
			diags = append(diags, diag.New("PAL002", diag.Pos{File: rel, Line: p.Line, Column: p.Column}, "invalid UTF-8 byte 0x%02x", data[p.offset]))
			return nil
		}
		// cue/load skips a file without a package clause; its policies
		// would vanish without a word.
		if f, err := parser.ParseFile(path, data, parser.PackageClauseOnly); err == nil && f.PackageName() == "" && !strings.Contains(filepath.ToSlash(rel), "cue.mod/") {
			diags = append(diags, diag.New("PAL001", diag.Pos{File: rel, Line: 1, Column: 1}, "%s has no package clause, so CUE would ignore it; start it with \"package <name>\"", rel))
			return nil
		}
		files = append(files, path)
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	return files, diags, nil
}

// hasModuleFile reports whether root has a cue.mod/module.cue of its own.
func hasModuleFile(root string) bool {
	_, err := os.Stat(filepath.Join(root, "cue.mod", "module.cue"))
	return err == nil
}

// inside reports whether path (absolute, symlinks resolved) lies in root.
func inside(root, path string) bool {
	r, err := filepath.EvalSymlinks(root)
	if err != nil {
		r = root
	}
	rel, err := filepath.Rel(r, path)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator))
}

type bytePos struct{ Line, Column, offset int }

// invalidUTF8 finds the first byte that is not valid UTF-8.
func invalidUTF8(data []byte) (bytePos, bool) {
	if utf8.Valid(data) {
		return bytePos{}, true
	}
	p := bytePos{Line: 1, Column: 1}
	for i := 0; i < len(data); {
		r, n := utf8.DecodeRune(data[i:])
		if r == utf8.RuneError && n <= 1 {
			p.offset = i
			return p, false
		}
		if r == '\n' {
			p.Line++
			p.Column = 1
		} else {
			p.Column++
		}
		i += n
	}
	return p, true
}

// relPath makes path relative to root, slash-separated, when it is inside.
func relPath(root, path string) string {
	rel, err := filepath.Rel(root, path)
	if err != nil || strings.HasPrefix(rel, "..") {
		return filepath.ToSlash(path)
	}
	return filepath.ToSlash(rel)
}

func (l *loadRun) rel(path string) string { return relPath(l.root, path) }

// or returns p, or q when p has no line.
func (p posValue) or(q diag.Pos) diag.Pos {
	if p.Line > 0 {
		return diag.Pos(p)
	}
	return q
}

// posValue is a diag.Pos with the or method.
type posValue diag.Pos

// posOf returns the position of a value in the user's files (not the
// schema's), relative to root.
func posOf(v cue.Value, root string) posValue {
	return posValue(toPos(v.Pos(), root))
}

func toPos(p token.Pos, root string) diag.Pos {
	if !p.IsValid() || p.Filename() == "" || strings.HasPrefix(p.Filename(), schemaRoot) {
		return diag.Pos{}
	}
	return diag.Pos{File: relPath(root, p.Filename()), Line: p.Line(), Column: p.Column()}
}

type cueErr struct {
	pos      diag.Pos
	path     string
	msg      string
	inSchema bool // the error involves a constraint of the schema
	// also are the error's other positions in the user's files, e.g. the
	// other side of a conflict.
	also []string
}

// userPos returns the position of v in the user's files, preferring the
// file prefer. The position of a struct unified with a definition is the
// definition's, so for structs and lists it falls back to the first
// position among their fields that lies in the preferred file.
func userPos(v cue.Value, root, prefer string, depth int) diag.Pos {
	p := toPos(v.Pos(), root)
	if p.Line > 0 && (prefer == "" || p.File == prefer) {
		return p
	}
	// A value written in the user's file and unified with the schema has
	// the schema's position; its conjuncts say where the user wrote it.
	if op, args := v.Expr(); op == cue.AndOp {
		var best diag.Pos
		for _, a := range args {
			q := toPos(a.Pos(), root)
			if q.Line > 0 && (prefer == "" || q.File == prefer) && !strings.HasPrefix(q.File, "/") &&
				(best.Line == 0 || q.Line < best.Line || (q.Line == best.Line && q.Column < best.Column)) {
				best = q
			}
		}
		if best.Line > 0 {
			return best
		}
	}
	if depth < 8 {
		var best diag.Pos
		consider := func(c cue.Value) {
			q := userPos(c, root, prefer, depth+1)
			if q.Line > 0 && (prefer == "" || q.File == prefer) &&
				(best.Line == 0 || q.Line < best.Line || (q.Line == best.Line && q.Column < best.Column)) {
				best = q
			}
		}
		switch v.IncompleteKind() {
		case cue.StructKind:
			if it, err := v.Fields(cue.Optional(true)); err == nil {
				for it.Next() {
					consider(it.Value())
				}
			}
		case cue.ListKind:
			if it, err := v.List(); err == nil {
				for it.Next() {
					consider(it.Value())
				}
			}
		}
		if best.Line > 0 {
			return best
		}
	}
	if prefer != "" {
		return diag.Pos{}
	}
	return p
}

// cueErrors flattens a CUE error into messages with the best position: the
// first one in the file prefer (where the object is declared), else in the
// user's other files (their templates), else at. Errors of one field that
// differ only by the disjunct they tried are merged into one message.
// With full, the whole message chain is kept, which cue/load's errors need
// ("import failed: cannot find package ...").
func (l *loadRun) cueErrors(err error, at diag.Pos, prefer string, full bool) []cueErr {
	var out []cueErr
	errs := cueerrors.Errors(err)
	for _, e := range errs {
		if len(errs) > 1 && strings.Contains(e.Error(), "errors in empty disjunction") {
			continue // the summary of the disjuncts' errors, which follow
		}
		format, args := e.Msg()
		msg := fmt.Sprintf(format, args...)
		path := fieldPath(e.Path())
		if full {
			msg, path = e.Error(), ""
			if i := strings.LastIndex(msg, "import failed: "); i >= 0 {
				msg = msg[i+len("import failed: "):]
			}
			msg = loadPrefix.ReplaceAllString(msg, "")
		}
		var pos, other diag.Pos
		var schemaPos token.Pos
		var users []diag.Pos // every position in the user's files, in CUE's order
		for _, p := range cueerrors.Positions(e) {
			q := toPos(p, l.root)
			if q.Line > 0 && !slices.Contains(users, q) {
				users = append(users, q)
			}
			switch {
			case q.Line == 0:
				if p.IsValid() && !schemaPos.IsValid() {
					schemaPos = p
				}
			case prefer == "" || q.File == prefer:
				if pos.Line == 0 {
					pos = q
				}
			case other.Line == 0:
				other = q
			}
		}
		if pos.Line == 0 {
			pos = other
		}
		var also []string
		if !full && pos.Line > 0 {
			// A conflict has two sides, often in two files: name every
			// position, not only the one the diagnostic is placed at
			// (others on its line are the same expression).
			for _, q := range users {
				if q.File != pos.File || q.Line != pos.Line {
					also = append(also, q.String())
				}
			}
		}
		if pos.Line == 0 {
			pos = at
			if schemaPos.IsValid() {
				msg += fmt.Sprintf(" (schema %s:%d)", strings.TrimPrefix(schemaPos.Filename(), schemaRoot+"/"), schemaPos.Line())
			}
		}
		out = append(out, cueErr{pos: pos, path: path, msg: msg, inSchema: schemaPos.IsValid(), also: also})
	}
	out = mergeDisjuncts(out)
	for i := range out {
		if len(out[i].also) > 0 {
			out[i].msg += " (also at " + strings.Join(out[i].also, ", ") + ")"
		}
		if out[i].path != "" {
			out[i].msg = out[i].path + ": " + out[i].msg
		}
	}
	return out
}

// conflict matches CUE's message for a value that fails one disjunct.
var conflict = regexp.MustCompile(`^conflicting values (.+?) and (.+?)( \(mismatched types .*\))?$`)

// mergeDisjuncts turns the per-disjunct errors of one field into one
// message: a value that is not one of an enum's members is reported once,
// listing them, and a type mismatch with one disjunct is dropped when
// another disjunct of the right type says what is wrong.
func mergeDisjuncts(errs []cueErr) []cueErr {
	// A type mismatch with one disjunct is noise when another error of
	// the same field, wherever it points, says what is wrong.
	explained := map[string]bool{}
	for _, e := range errs {
		if !strings.Contains(e.msg, "(mismatched types") {
			explained[e.path] = true
		}
	}
	kept := errs[:0:0]
	for _, e := range errs {
		if e.path != "" && explained[e.path] && strings.Contains(e.msg, "(mismatched types") {
			continue
		}
		kept = append(kept, e)
	}
	errs = kept
	type key struct {
		pos  diag.Pos
		path string
	}
	groups := map[key][]int{}
	var order []key
	for i, e := range errs {
		k := key{e.pos, e.path}
		if _, ok := groups[k]; !ok {
			order = append(order, k)
		}
		groups[k] = append(groups[k], i)
	}
	var out []cueErr
	for _, k := range order {
		idx := groups[k]
		if len(idx) == 1 {
			out = append(out, errs[idx[0]])
			continue
		}
		var typed, rest []cueErr
		for _, i := range idx {
			if strings.Contains(errs[i].msg, "(mismatched types") {
				typed = append(typed, errs[i])
			} else {
				rest = append(rest, errs[i])
			}
		}
		if len(rest) == 0 {
			rest = typed
		}
		// CUE puts the user's value first or second depending on the
		// disjunction; it is the side all the messages share.
		var firsts, seconds []string
		for _, e := range rest {
			m := conflict.FindStringSubmatch(e.msg)
			if m == nil {
				firsts, seconds = nil, nil
				break
			}
			firsts, seconds = append(firsts, m[1]), append(seconds, m[2])
		}
		value, alts := "", []string(nil)
		switch {
		case len(firsts) > 1 && allSame(firsts):
			value, alts = firsts[0], seconds
		case len(seconds) > 1 && allSame(seconds):
			value, alts = seconds[0], firsts
		}
		if len(alts) > 1 {
			e := rest[0]
			shown := alts
			if len(shown) > 8 {
				shown = append(shown[:8:8], fmt.Sprintf("… (%d more)", len(alts)-8))
			}
			e.msg = fmt.Sprintf("%s is not one of %s", value, strings.Join(shown, ", "))
			e.also = nil // the alternatives' positions, not the user's
			out = append(out, e)
			continue
		}
		out = append(out, rest...)
	}
	return out
}

// fieldPath formats a CUE error path as a field path in the object, e.g.
// spec.ingress[0].toPorts, dropping the schema's #Kinds.<Kind> prefix.
func fieldPath(sel []string) string {
	if len(sel) >= 2 && sel[0] == "#Kinds" {
		sel = sel[2:]
	}
	var b strings.Builder
	for _, s := range sel {
		if s != "" && strings.Trim(s, "0123456789") == "" {
			b.WriteString("[" + s + "]")
			continue
		}
		if b.Len() > 0 {
			b.WriteByte('.')
		}
		b.WriteString(s)
	}
	return b.String()
}

func allSame(s []string) bool {
	for _, x := range s {
		if x != s[0] {
			return false
		}
	}
	return true
}

// loadPrefix matches the "file:line:col: " that cue/load repeats inside
// its messages; the diagnostic carries the position already.
var loadPrefix = regexp.MustCompile(`^(\S+:\d+:\d+: )+`)
