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

package flows

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"strings"
)

// MaxLineBytes bounds one JSON line, so that a file that is not JSON lines
// (a binary, one huge document) fails fast instead of filling memory.
const MaxLineBytes = 1 << 20

// Record is a flow read from JSON lines, with the line it was on.
type Record struct {
	Line int
	Flow
}

// LineError is a malformed line: File:Line:Column, where Column is 0 when
// the error is about the record rather than a place in its text.
type LineError struct {
	File   string
	Line   int
	Column int
	Err    error
}

func (e *LineError) Error() string {
	if e.Column > 0 {
		return fmt.Sprintf("%s:%d:%d: %v", e.File, e.Line, e.Column, e.Err)
	}
	return fmt.Sprintf("%s:%d: %v", e.File, e.Line, e.Err)
}

func (e *LineError) Unwrap() error { return e.Err }

// Write writes flows as JSON lines, the form `palisadectl observe` prints
// and `palisadectl plan` reads.
func Write(w io.Writer, fs ...Flow) error {
	enc := json.NewEncoder(w) // one compact object and "\n" per flow
	for i := range fs {
		if err := enc.Encode(&fs[i]); err != nil {
			return err
		}
	}
	return nil
}

// Read reads JSON lines of flows from r, named file in errors. Blank lines
// are skipped; unknown fields are ignored, since fields are added to the
// record over time. A line that is not a flow (bad JSON, a wrong type, an
// address that does not parse, an unknown verdict) is a *LineError.
func Read(r io.Reader, file string) ([]Record, error) {
	br := bufio.NewReader(r)
	var out []Record
	for n := 1; ; n++ {
		line, err := readLine(br)
		if err != nil && !errors.Is(err, io.EOF) {
			return out, &LineError{File: file, Line: n, Err: err}
		}
		if len(bytes.TrimSpace(line)) > 0 {
			f, perr := parse(line)
			if perr != nil {
				perr.File, perr.Line = file, n
				return out, perr
			}
			out = append(out, Record{Line: n, Flow: f})
		}
		if err != nil { // io.EOF
			return out, nil
		}
	}
}

// readLine returns the next line without its newline, or io.EOF with the
// last, unterminated line.
func readLine(br *bufio.Reader) ([]byte, error) {
	var line []byte
	for {
		chunk, err := br.ReadSlice('\n')
		line = append(line, chunk...)
		if len(line) > MaxLineBytes {
			return nil, fmt.Errorf("line longer than %d bytes", MaxLineBytes)
		}
		switch {
		case err == nil:
			return bytes.TrimSuffix(bytes.TrimSuffix(line, []byte("\n")), []byte("\r")), nil
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		default:
			return line, err
		}
	}
}

// parse decodes and checks one line; the error's File and Line are left
// for the caller.
func parse(line []byte) (Flow, *LineError) {
	var f Flow
	dec := json.NewDecoder(bytes.NewReader(line))
	if err := dec.Decode(&f); err != nil {
		return f, &LineError{Column: column(line, err), Err: jsonError(err)}
	}
	if dec.More() {
		return f, &LineError{Column: int(dec.InputOffset()) + 1, Err: errors.New("more than one JSON value on the line")}
	}
	if err := check(&f); err != nil {
		return f, &LineError{Err: err}
	}
	return f, nil
}

// column turns a JSON error's byte offset into a 1-based column.
func column(line []byte, err error) int {
	var off int64
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		off = se.Offset
	case errors.As(err, &te):
		off = te.Offset
	case errors.Is(err, io.ErrUnexpectedEOF):
		off = int64(len(line)) + 1 // just past the end
	default:
		return 0
	}
	if off < 1 {
		return 1
	}
	return int(off)
}

func jsonError(err error) error {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) && te.Field != "" {
		return fmt.Errorf("field %q: want %s, not a JSON %s", te.Field, te.Type, te.Value)
	}
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return errors.New("the JSON object is cut short")
	}
	return fmt.Errorf("not a flow record: %v", err)
}

// check refuses records that cannot be replayed: without addresses or a
// known protocol and verdict.
func check(f *Flow) error {
	for _, e := range []struct {
		name string
		ep   Endpoint
	}{{"source", f.Source}, {"destination", f.Destination}} {
		if e.ep.IP == "" {
			return fmt.Errorf("%s.ip is missing", e.name)
		}
		if _, err := netip.ParseAddr(e.ep.IP); err != nil {
			return fmt.Errorf("%s.ip %q is not an IP address", e.name, e.ep.IP)
		}
		if (e.ep.Namespace == "") != (e.ep.Pod == "") {
			return fmt.Errorf("%s: namespace and pod go together", e.name)
		}
	}
	switch strings.ToUpper(f.Protocol) {
	case "TCP", "UDP", "SCTP", "ICMP", "ICMPV6":
	default:
		return fmt.Errorf("protocol %q: want TCP, UDP, SCTP, ICMP or ICMPv6", f.Protocol)
	}
	switch f.Verdict {
	case Forwarded, Dropped, Audit, Error:
	default:
		return fmt.Errorf("verdict %q: want forwarded, dropped, audit or error", f.Verdict)
	}
	switch f.Direction {
	case "ingress", "egress":
	default:
		return fmt.Errorf("direction %q: want ingress or egress", f.Direction)
	}
	return nil
}
