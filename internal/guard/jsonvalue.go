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

package guard

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"unicode/utf8"

	"github.com/open-policy-agent/opa/v1/ast"
)

// jsonValue converts JSON text to the OPA value ast.ValueFromReader makes
// of it (numbers keep their text, as with json.Number), parsing the text
// straight into terms instead of decoding it into Go maps and slices first
// and converting those: half the work and a fraction of the garbage of a
// policy's conversion. Strings with escapes or non-ASCII bytes are
// decoded by encoding/json, so they read exactly as there; anything this
// parser does not take (duplicate keys, malformed text) is left to
// ast.ValueFromReader. Callers bound the nesting first (MaxDepth).
func jsonValue(js []byte) (ast.Value, error) {
	p := jsonParser{b: js}
	v, err := p.value()
	if err == nil {
		p.space()
		if p.i != len(p.b) {
			err = errors.New("data after the value")
		}
	}
	if err != nil {
		return ast.ValueFromReader(bytes.NewReader(js))
	}
	return v, nil
}

type jsonParser struct {
	b []byte
	i int
}

func (p *jsonParser) space() {
	for p.i < len(p.b) {
		switch p.b[p.i] {
		case ' ', '\t', '\n', '\r':
			p.i++
		default:
			return
		}
	}
}

func (p *jsonParser) errorf(format string, args ...any) error {
	return fmt.Errorf("offset %d: %s", p.i, fmt.Sprintf(format, args...))
}

// next skips space and returns the next byte, 0 at the end.
func (p *jsonParser) next() byte {
	p.space()
	if p.i == len(p.b) {
		return 0
	}
	return p.b[p.i]
}

func (p *jsonParser) value() (ast.Value, error) {
	switch c := p.next(); {
	case c == '{':
		p.i++
		var kvs [][2]*ast.Term
		if p.next() == '}' {
			p.i++
			return ast.NewObject(), nil
		}
		for {
			if p.next() != '"' {
				return nil, p.errorf("want a key")
			}
			k, err := p.str()
			if err != nil {
				return nil, err
			}
			if p.next() != ':' {
				return nil, p.errorf("want ':'")
			}
			p.i++
			v, err := p.value()
			if err != nil {
				return nil, err
			}
			kvs = append(kvs, [2]*ast.Term{ast.InternedTerm(k), ast.NewTerm(v)})
			switch p.next() {
			case ',':
				p.i++
			case '}':
				p.i++
				if duplicateKey(kvs) {
					return nil, p.errorf("duplicate key") // decoding keeps the last: leave it to OPA
				}
				return ast.NewObject(kvs...), nil
			default:
				return nil, p.errorf("want ',' or '}'")
			}
		}
	case c == '[':
		p.i++
		var ts []*ast.Term
		if p.next() == ']' {
			p.i++
			return ast.NewArray(), nil
		}
		for {
			v, err := p.value()
			if err != nil {
				return nil, err
			}
			ts = append(ts, ast.NewTerm(v))
			switch p.next() {
			case ',':
				p.i++
			case ']':
				p.i++
				return ast.NewArray(ts...), nil
			default:
				return nil, p.errorf("want ',' or ']'")
			}
		}
	case c == '"':
		s, err := p.str()
		if err != nil {
			return nil, err
		}
		return ast.InternedTerm(s).Value, nil
	case c == '-' || c >= '0' && c <= '9':
		start := p.i
		for p.i < len(p.b) && bytes.IndexByte([]byte("+-.eE0123456789"), p.b[p.i]) >= 0 {
			p.i++
		}
		text := p.b[start:p.i]
		if !json.Valid(text) {
			return nil, p.errorf("malformed number")
		}
		return ast.Number(string(text)), nil
	case bytes.HasPrefix(p.b[p.i:], []byte("true")):
		p.i += 4
		return ast.Boolean(true), nil
	case bytes.HasPrefix(p.b[p.i:], []byte("false")):
		p.i += 5
		return ast.Boolean(false), nil
	case bytes.HasPrefix(p.b[p.i:], []byte("null")):
		p.i += 4
		return ast.Null{}, nil
	}
	return nil, p.errorf("want a value")
}

// str reads a string at p.i (its opening quote).
func (p *jsonParser) str() (string, error) {
	start := p.i
	plain := true
	for j := start + 1; j < len(p.b); j++ {
		switch c := p.b[j]; {
		case c == '"':
			p.i = j + 1
			if plain {
				return string(p.b[start+1 : j]), nil
			}
			var s string
			if err := json.Unmarshal(p.b[start:p.i], &s); err != nil {
				return "", err
			}
			return s, nil
		case c == '\\':
			plain = false
			j++ // the escaped byte cannot close the string
		case c < 0x20 || c >= utf8.RuneSelf:
			plain = false
		}
	}
	return "", p.errorf("unterminated string")
}

// duplicateKey reports whether an object's members repeat a key, which
// ast.NewObject assumes they do not.
func duplicateKey(kvs [][2]*ast.Term) bool {
	if len(kvs) <= 16 {
		for i := range kvs {
			for j := range i {
				if kvs[i][0].Value.Compare(kvs[j][0].Value) == 0 {
					return true
				}
			}
		}
		return false
	}
	seen := make(map[ast.String]bool, len(kvs))
	for _, kv := range kvs {
		k := kv[0].Value.(ast.String)
		if seen[k] {
			return true
		}
		seen[k] = true
	}
	return false
}
