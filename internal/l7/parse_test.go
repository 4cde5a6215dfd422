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

package l7

import (
	"fmt"
	"strings"
	"testing"

	"github.com/cilium/ebpf"

	"github.com/palisade-dev/palisade/api/v1alpha1"
	l7bpf "github.com/palisade-dev/palisade/bpf/l7"
	"github.com/palisade-dev/palisade/internal/engine"
)

// testPrefix pads every test run: BPF_PROG_TEST_RUN of a tc program needs
// at least an Ethernet header's worth of bytes, and the parser is given
// the message's offset, as the stream parser is.
const testPrefix = 14

// msg is what the parser framed: a message of the stream.
type msg struct {
	Kind   l7bpf.L7L7Kind
	Reason Reason
	Len    uint32
	Rule   uint32
}

func (m msg) String() string {
	return fmt.Sprintf("{kind %d %v len %d rule %d}", m.Kind, m.Reason, m.Len, m.Rule)
}

// parse runs the parser once over data, from state st, with a fresh scan.
func parse(t *testing.T, d *Datapath, st l7bpf.L7L7Sock, list uint32, data []byte) l7bpf.L7L7Sock {
	t.Helper()
	return parseWith(t, d, st, list, data, false)
}

// parseWith runs the parser; with resume, the head scan goes on from
// where the last run left it (as the stream parser's calls for one
// message do).
func parseWith(t *testing.T, d *Datapath, st l7bpf.L7L7Sock, list uint32, data []byte, resume bool) l7bpf.L7L7Sock {
	t.Helper()
	in := l7bpf.L7L7TestIn{Sock: st, List: list, HasList: 1, Off: testPrefix}
	if resume {
		in.Resume = 1
	}
	if list == 0 {
		in.HasList = 0
	}
	if err := d.objs.L7TestInput.Update(uint32(0), &in, ebpf.UpdateAny); err != nil {
		t.Fatalf("write test input: %v", err)
	}
	buf := append(make([]byte, testPrefix), data...)
	if _, err := d.objs.L7TestParse.Run(&ebpf.RunOptions{Data: buf}); err != nil {
		t.Fatalf("test run: %v", err)
	}
	var out l7bpf.L7L7Sock
	if err := d.objs.L7TestOut.Lookup(uint32(0), &out); err != nil {
		t.Fatalf("read test output: %v", err)
	}
	return out
}

// frame frames a whole stream as the stream parser and verdict do: parse
// from the current state, then commit what the verdict commits. It stops
// at the first "need more".
func frame(t *testing.T, d *Datapath, list uint32, stream []byte) ([]msg, l7bpf.L7L7Sock) {
	t.Helper()
	var st l7bpf.L7L7Sock
	var out []msg
	for pos := 0; pos < len(stream); {
		r := parse(t, d, st, list, stream[pos:])
		if r.Kind == uint8(l7bpf.L7L7KindL7KIND_NEED_MORE) {
			break
		}
		if r.Len == 0 || int(r.Len) > len(stream)-pos {
			t.Fatalf("at %d: framed %d of %d bytes", pos, r.Len, len(stream)-pos)
		}
		out = append(out, msg{Kind: l7bpf.L7L7Kind(r.Kind), Reason: Reason(r.Reason), Len: r.Len, Rule: r.Rule})
		// as l7_verdict
		st.Mode, st.Remaining = r.NextMode, r.NextRemaining
		st.Crlf = 0
		if st.Mode == uint8(l7bpf.L7L7ModeL7MODE_CHUNK_SIZE) && r.Kind == uint8(l7bpf.L7L7KindL7KIND_BODY) {
			st.Crlf = 1
		}
		if r.Kind == uint8(l7bpf.L7L7KindL7KIND_REQUEST) && Reason(r.Reason) == ReasonDenied {
			st.Mode = uint8(l7bpf.L7L7ModeL7MODE_REFUSED)
		}
		pos += int(r.Len)
	}
	return out, st
}

func rules(h ...v1alpha1.HTTPRule) *v1alpha1.L7Rules { return &v1alpha1.L7Rules{HTTP: h} }

// testList is the list the parser tables decide by.
var testList = engine.L7List{
	{Rule: 11, Rules: rules(
		v1alpha1.HTTPRule{Method: "GET", Path: "/public/.*"},
		v1alpha1.HTTPRule{Method: "POST", Path: "/api/v1/items", Headers: []v1alpha1.HTTPHeader{"X-Token: secret"}},
		v1alpha1.HTTPRule{Path: "/h", Host: "*.example.com"},
		v1alpha1.HTTPRule{Method: "PUT", Path: "/any-token", Headers: []v1alpha1.HTTPHeader{"X-Present"}},
	)},
	{Rule: 12, Rules: rules(v1alpha1.HTTPRule{Method: "DELETE", Path: "/d/[0-9]+"})},
}

const testListID = 7

func loadTestTables(t *testing.T, d *Datapath) {
	t.Helper()
	tables, err := engine.CompileHTTP(map[engine.L7ID]engine.L7List{testListID: testList})
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Apply(1, tables, nil); err != nil {
		t.Fatalf("apply: %v", err)
	}
}

const (
	kNeed    = l7bpf.L7L7KindL7KIND_NEED_MORE
	kRequest = l7bpf.L7L7KindL7KIND_REQUEST
	kBody    = l7bpf.L7L7KindL7KIND_BODY
	kRefuse  = l7bpf.L7L7KindL7KIND_REFUSE
	kDrop    = l7bpf.L7L7KindL7KIND_DROP
)

func TestParseHeads(t *testing.T) {
	d := requireKernel(t)
	loadTestTables(t, d)
	// A 64 KiB header block is over BPF_PROG_TEST_RUN's data limit (a
	// page); TestTrafficOversize sends one through a real socket.
	for _, tc := range []struct {
		name   string
		in     string
		kind   l7bpf.L7L7Kind
		reason Reason
		rule   uint32
	}{
		{"allowed", "GET /public/a HTTP/1.1\r\nHost: x\r\n\r\n", kRequest, ReasonAllowed, 11},
		{"denied path", "GET /private HTTP/1.1\r\nHost: x\r\n\r\n", kRequest, ReasonDenied, 11},
		{"query is part of the path", "GET /public/a?x=1 HTTP/1.1\r\n\r\n", kRequest, ReasonAllowed, 11},
		{"header lower-case name", "POST /api/v1/items HTTP/1.1\r\nx-token: secret\r\nContent-Length: 0\r\n\r\n", kRequest, ReasonAllowed, 11},
		{"header mixed-case name", "POST /api/v1/items HTTP/1.1\r\nX-ToKeN:   secret  \r\n\r\n", kRequest, ReasonAllowed, 11},
		{"header value is exact", "POST /api/v1/items HTTP/1.1\r\nX-Token: Secret\r\n\r\n", kRequest, ReasonDenied, 11},
		{"header missing", "POST /api/v1/items HTTP/1.1\r\nX-Tokens: secret\r\n\r\n", kRequest, ReasonDenied, 11},
		{"header present, any value", "PUT /any-token HTTP/1.1\r\nx-present:\r\n\r\n", kRequest, ReasonAllowed, 11},
		{"wildcard host", "GET /h HTTP/1.1\r\nHost: API.Example.com\r\n\r\n", kRequest, ReasonAllowed, 11},
		{"host with port is not the host", "GET /h HTTP/1.1\r\nHost: a.example.com:80\r\n\r\n", kRequest, ReasonDenied, 11},
		{"missing host", "GET /h HTTP/1.1\r\n\r\n", kRequest, ReasonDenied, 11},
		{"missing host, no host rule", "GET /public/ HTTP/1.1\r\n\r\n", kRequest, ReasonAllowed, 11},
		{"HTTP/1.0", "GET /public/x HTTP/1.0\r\n\r\n", kRequest, ReasonAllowed, 11},
		{"second allow decides", "DELETE /d/42 HTTP/1.1\r\n\r\n", kRequest, ReasonAllowed, 12},
		{"method is case-sensitive", "get /public/a HTTP/1.1\r\n\r\n", kRequest, ReasonDenied, 11},
		{"unknown method", "PROPFIND /public/a HTTP/1.1\r\n\r\n", kRequest, ReasonDenied, 11},
		{"invalid method", "G@T /public/a HTTP/1.1\r\n\r\n", kRefuse, ReasonMalformed, 0},
		{"no target", "GET  HTTP/1.1\r\n\r\n", kRefuse, ReasonMalformed, 0},
		{"absolute form", "GET http://a/public/a HTTP/1.1\r\n\r\n", kRefuse, ReasonMalformed, 0},
		{"non-ASCII path matches no pattern", "GET /public/\xc3\xa9 HTTP/1.1\r\n\r\n", kRequest, ReasonDenied, 11},
		{"control byte in target", "GET /public/\x01 HTTP/1.1\r\n\r\n", kRefuse, ReasonMalformed, 0},
		{"bare LF", "GET /public/a HTTP/1.1\nHost: x\n\n", kRefuse, ReasonMalformed, 0},
		{"space before colon", "GET /public/a HTTP/1.1\r\nHost : x\r\n\r\n", kRefuse, ReasonMalformed, 0},
		{"obs-fold", "GET /public/a HTTP/1.1\r\nX-A: a\r\n b\r\n\r\n", kRefuse, ReasonMalformed, 0},
		{"TLS", "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", kRefuse, ReasonTLS, 0},
		{"HTTP/2 preface", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", kRefuse, ReasonHTTP2, 0},
		{"HTTP/3.0", "GET /public/a HTTP/3.0\r\n\r\n", kRefuse, ReasonVersion, 0},
		{"not HTTP", "GET /public/a FTP/1.1\r\n\r\n", kRefuse, ReasonMalformed, 0},
		{"CL and TE", "POST /public/a HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n", kRefuse, ReasonFraming, 0},
		{"TE in HTTP/1.0", "POST /public/a HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", kRefuse, ReasonFraming, 0},
		{"TE gzip", "POST /public/a HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", kRefuse, ReasonFraming, 0},
		{"two CL", "POST /public/a HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\n", kRefuse, ReasonFraming, 0},
		{"bad CL", "POST /public/a HTTP/1.1\r\nContent-Length: 3x\r\n\r\n", kRefuse, ReasonFraming, 0},
		{"WebSocket upgrade", "GET /public/ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n", kRefuse, ReasonUpgrade, 0},
		{"h2c upgrade, any case", "GET /public/a HTTP/1.1\r\nUPGRADE: h2c\r\n\r\n", kRefuse, ReasonUpgrade, 0},
		{"CONNECT", "CONNECT /public/a HTTP/1.1\r\n\r\n", kRefuse, ReasonUpgrade, 0},
		{"Upgrade-Insecure-Requests is no upgrade", "GET /public/a HTTP/1.1\r\nUpgrade-Insecure-Requests: 1\r\n\r\n", kRequest, ReasonAllowed, 11},
		{"dot-dot segment", "GET /public/../admin HTTP/1.1\r\n\r\n", kRefuse, ReasonTarget, 0},
		{"dot segment", "GET /public/./a HTTP/1.1\r\n\r\n", kRefuse, ReasonTarget, 0},
		{"trailing dot-dot", "GET /public/.. HTTP/1.1\r\n\r\n", kRefuse, ReasonTarget, 0},
		{"dot-dot before the query", "GET /public/..?a HTTP/1.1\r\n\r\n", kRefuse, ReasonTarget, 0},
		{"encoded dot", "GET /public/%2E%2e/admin HTTP/1.1\r\n\r\n", kRefuse, ReasonTarget, 0},
		{"encoded slash", "GET /public/a%2fb HTTP/1.1\r\n\r\n", kRefuse, ReasonTarget, 0},
		{"backslash", "GET /public/..\\admin HTTP/1.1\r\n\r\n", kRefuse, ReasonTarget, 0},
		{"dots in a name are fine", "GET /public/a..b/.c/...d HTTP/1.1\r\n\r\n", kRequest, ReasonAllowed, 11},
		{"dot-dot in the query is fine", "GET /public/a?p=/../x HTTP/1.1\r\n\r\n", kRequest, ReasonAllowed, 11},
		{"other escapes are fine", "GET /public/%20%41 HTTP/1.1\r\n\r\n", kRequest, ReasonAllowed, 11},
		{"two Host", "GET /public/a HTTP/1.1\r\nHost: a\r\nhost: b\r\n\r\n", kRefuse, ReasonFraming, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := parse(t, d, l7bpf.L7L7Sock{}, testListID, []byte(tc.in))
			got := msg{Kind: l7bpf.L7L7Kind(r.Kind), Reason: Reason(r.Reason), Len: r.Len, Rule: r.Rule}
			want := msg{Kind: tc.kind, Reason: tc.reason, Len: uint32(len(tc.in)), Rule: tc.rule}
			if tc.kind == kRefuse { // the 403 fills the first 64 bytes; the rest is dropped
				want.Len = min(want.Len, 64)
			}
			if got != want {
				t.Fatalf("got %v, want %v", got, want)
			}
			if tc.kind == kRequest {
				want := l7bpf.L7L7ModeL7MODE_HEAD
				if strings.Contains(tc.in, "Content-Length: 0") || !strings.Contains(tc.in, "Content-Length") {
					if uint32(r.NextMode) != uint32(want) {
						t.Fatalf("next mode %d, want %d", r.NextMode, want)
					}
				}
			}
		})
	}
}

// TestParseSplit splits requests at every byte offset of their request
// line and headers: every prefix asks for more, and the whole is decided
// (from scratch, resumed after the prefix, and resumed a byte at a time).
func TestParseSplit(t *testing.T) {
	d := requireKernel(t)
	loadTestTables(t, d)
	for _, req := range []struct {
		in     string
		reason Reason
	}{
		{"GET /public/a/b/c?q=1 HTTP/1.1\r\nHost: www.example.com\r\nUser-Agent: t\r\nAccept: */*\r\n\r\n", ReasonAllowed},
		{"POST /api/v1/items HTTP/1.1\r\nHost: x\r\nx-token: secret\r\nContent-Length: 5\r\n\r\n", ReasonAllowed},
		{"POST /api/v1/items HTTP/1.1\r\nHost: x\r\nx-token: secre\r\nContent-Length: 5\r\n\r\n", ReasonDenied},
	} {
		for k := 1; k < len(req.in); k++ {
			r := parse(t, d, l7bpf.L7L7Sock{}, testListID, []byte(req.in[:k]))
			if r.Kind != uint8(kNeed) || r.Len != 0 {
				t.Fatalf("%q split at %d: kind %d len %d, want need-more", req.in, k, r.Kind, r.Len)
			}
			// The rest arrives: the scan resumes at k.
			r = parseWith(t, d, l7bpf.L7L7Sock{}, testListID, []byte(req.in), true)
			if r.Kind != uint8(kRequest) || Reason(r.Reason) != req.reason || int(r.Len) != len(req.in) {
				t.Fatalf("%q split at %d, resumed: kind %d %v len %d", req.in, k, r.Kind, Reason(r.Reason), r.Len)
			}
		}
		// A byte at a time, resuming each time.
		for k := 1; k < len(req.in); k++ {
			r := parseWith(t, d, l7bpf.L7L7Sock{}, testListID, []byte(req.in[:k]), k > 1)
			if r.Kind != uint8(kNeed) {
				t.Fatalf("%q byte by byte, at %d: kind %d", req.in, k, r.Kind)
			}
		}
		if r := parseWith(t, d, l7bpf.L7L7Sock{}, testListID, []byte(req.in), true); r.Kind != uint8(kRequest) || Reason(r.Reason) != req.reason || int(r.Len) != len(req.in) {
			t.Fatalf("%q byte by byte: kind %d %v len %d", req.in, r.Kind, Reason(r.Reason), r.Len)
		}
		r := parse(t, d, l7bpf.L7L7Sock{}, testListID, []byte(req.in))
		if r.Kind != uint8(kRequest) || Reason(r.Reason) != req.reason || int(r.Len) != len(req.in) {
			t.Fatalf("%q whole: kind %d %v len %d", req.in, r.Kind, Reason(r.Reason), r.Len)
		}
	}
}

func TestParseStreams(t *testing.T) {
	d := requireKernel(t)
	loadTestTables(t, d)
	get := "GET /public/%d HTTP/1.1\r\nHost: x\r\n\r\n"
	var pipelined strings.Builder
	var want []msg
	for i := range 10 {
		r := fmt.Sprintf(get, i)
		pipelined.WriteString(r)
		want = append(want, msg{kRequest, ReasonAllowed, uint32(len(r)), 11})
	}
	looksLike := "GET /private HTTP/1.1\r\nHost: x\r\n\r\n"
	chunkedHead := "POST /api/v1/items HTTP/1.1\r\nX-Token: secret\r\nTransfer-Encoding: chunked\r\n\r\n"
	clHead := fmt.Sprintf("POST /api/v1/items HTTP/1.1\r\nX-Token: secret\r\nContent-Length: %d\r\n\r\n", len(looksLike))
	next := fmt.Sprintf(get, 99)
	size := fmt.Sprintf("%x\r\n", len(looksLike))
	for _, tc := range []struct {
		name   string
		stream string
		want   []msg
	}{
		{"10 pipelined requests", pipelined.String(), want},
		{"chunked body holding a request", chunkedHead + size + looksLike + "\r\n" + "0\r\n\r\n" + next, []msg{
			{kRequest, ReasonAllowed, uint32(len(chunkedHead)), 11},
			{kBody, 0, uint32(len(size)), 0},
			{kBody, 0, uint32(len(looksLike)), 0},
			{kBody, 0, uint32(len("\r\n0\r\n\r\n")), 0},
			{kRequest, ReasonAllowed, uint32(len(next)), 11},
		}},
		{"chunked body, extensions and trailers", chunkedHead + "3;ext=1\r\nabc\r\n" + "0\r\nX-Trailer: GET / HTTP/1.1\r\n\r\n" + next, []msg{
			{kRequest, ReasonAllowed, uint32(len(chunkedHead)), 11},
			{kBody, 0, uint32(len("3;ext=1\r\n")), 0},
			{kBody, 0, 3, 0},
			{kBody, 0, uint32(len("\r\n0\r\nX-Trailer: GET / HTTP/1.1\r\n\r\n")), 0},
			{kRequest, ReasonAllowed, uint32(len(next)), 11},
		}},
		{"bad chunk size", chunkedHead + "zz\r\n", []msg{
			{kRequest, ReasonAllowed, uint32(len(chunkedHead)), 11},
			{kRefuse, ReasonFraming, uint32(len("zz\r\n")), 0},
		}},
		{"Content-Length body holding a request", clHead + looksLike + next, []msg{
			{kRequest, ReasonAllowed, uint32(len(clHead)), 11},
			{kBody, 0, uint32(len(looksLike)), 0},
			{kRequest, ReasonAllowed, uint32(len(next)), 11},
		}},
		{"after a refusal everything is dropped", "GET /private HTTP/1.1\r\n\r\n" + next, []msg{
			{kRequest, ReasonDenied, uint32(len("GET /private HTTP/1.1\r\n\r\n")), 11},
			{kDrop, ReasonDropped, uint32(len(next)), 0},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, _ := frame(t, d, testListID, []byte(tc.stream))
			if fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Fatalf("framed\n%v\nwant\n%v", got, tc.want)
			}
		})
	}
}

func TestParseUnbound(t *testing.T) {
	d := requireKernel(t)
	loadTestTables(t, d)
	r := parse(t, d, l7bpf.L7L7Sock{}, 0, []byte("GET /private HTTP/1.1\r\n\r\n"))
	if r.Kind != uint8(kRequest) || Reason(r.Reason) != ReasonPassed {
		t.Fatalf("kind %d %v, want a request passed without a binding", r.Kind, Reason(r.Reason))
	}
	r = parse(t, d, l7bpf.L7L7Sock{}, 4242, []byte("GET /private HTTP/1.1\r\n\r\n"))
	if r.Kind != uint8(kRequest) || Reason(r.Reason) != ReasonNoTables {
		t.Fatalf("kind %d %v, want no-tables for a list the generation lacks", r.Kind, Reason(r.Reason))
	}
}
