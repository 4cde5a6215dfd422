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
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/palisade-dev/palisade/internal/engine"
	"github.com/palisade-dev/palisade/internal/testenv"
)

var egressLists = map[engine.L7ID]engine.L7List{testListID: testList}

const (
	allowedGet = "GET /public/a HTTP/1.1\r\nHost: s\r\n\r\n"
	refusedGet = "GET /admin HTTP/1.1\r\nHost: s\r\n\r\n"
)

// TestEgressKeepAlive: a client in a bound cgroup writes allowed and
// refused requests on one connection: allowed ones get the server's
// answer, the refused one gets 403 from the kernel and never reaches the
// server; after it, writes fail (EACCES) and the server read exactly the
// allowed requests.
func TestEgressKeepAlive(t *testing.T) {
	e := startEgress(t, egressLists, testListID, false)
	ev := events(t, e.d)
	c, br := e.dial(t)
	for range 3 {
		resp, body := roundTrip(t, c, br, allowedGet)
		if resp.StatusCode != 200 || body != "ok /public/a" {
			t.Fatalf("allowed: %d %q", resp.StatusCode, body)
		}
	}
	resp, body := roundTrip(t, c, br, refusedGet)
	if resp.StatusCode != 403 || body != "" || !resp.Close {
		t.Fatalf("refused: %d %q close %v, want 403, empty, Connection: close", resp.StatusCode, body, resp.Close)
	}
	_, err := io.WriteString(c, allowedGet)
	if !errors.Is(err, syscall.EACCES) {
		t.Fatalf("write after a refusal: %v, want EACCES", err)
	}
	got := e.finish(t, c)
	if want := strings.Repeat(allowedGet, 3); got != want {
		t.Fatalf("the server read %q, want %q", got, want)
	}
	if h := e.handled(); !slices.Equal(h, []string{"GET /public/a", "GET /public/a", "GET /public/a"}) {
		t.Fatalf("handled %v", h)
	}
	x := nextEvent(t, ev)
	if !x.Egress || x.Reason != ReasonDenied || x.Status != 403 || x.Method != "GET" || x.Path != "/admin" || x.Host != "s" ||
		x.Rule != 11 || x.List != testListID || x.Generation != 1 || x.Local.Port() != uint16(c.LocalAddr().(*net.TCPAddr).Port) ||
		x.Remote.String() != e.addr || x.TargetLen != 6 {
		t.Fatalf("event %+v", x)
	}
	counts, err := e.d.CountersDir(true)
	if err != nil {
		t.Fatal(err)
	}
	if counts[ReasonAllowed] != 3 || counts[ReasonDenied] != 1 || counts[ReasonDropped] != 1 || counts[ReasonSockets] != 1 {
		t.Fatalf("egress counters %v", counts)
	}
}

// curlIn runs Debian's curl with its process born in the test's cgroup.
func (e *egress) curlIn(t *testing.T, args ...string) (string, error) {
	t.Helper()
	curl := testenv.Tool(t, "curl")
	fd, err := os.Open(e.cg)
	if err != nil {
		t.Fatal(err)
	}
	defer fd.Close()
	cmd := exec.Command(curl, append([]string{"-sS", "--max-time", "30"}, args...)...)
	cmd.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: int(fd.Fd())}
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// TestEgressCurl: curl in the client cgroup, one invocation over one
// connection: an allowed request gets the server's answer, the refused
// one 403 (and curl opens a new connection for the next, as the answer
// says Connection: close); the handler ran for the allowed ones only.
func TestEgressCurl(t *testing.T) {
	e := startEgress(t, egressLists, testListID, false)
	base := "http://" + e.addr
	out, err := e.curlIn(t, "-w", " %{http_code} %{num_connects}\n", base+"/public/1", base+"/admin", base+"/public/2")
	if err != nil {
		t.Fatalf("curl: %v\n%s", err, out)
	}
	if want := "ok /public/1 200 1\n 403 0\n" + "ok /public/2 200 1\n"; out != want {
		t.Fatalf("curl printed %q, want %q", out, want)
	}
	if h := e.handled(); !slices.Equal(h, []string{"GET /public/1", "GET /public/2"}) {
		t.Fatalf("handled %v", h)
	}
	// TLS on the port: curl's handshake reads the 403 and fails.
	out, err = e.curlIn(t, "-k", "https://"+e.addr+"/public/1")
	if err == nil {
		t.Fatalf("curl over TLS succeeded: %s", out)
	}
	t.Logf("curl https: %v: %s", err, strings.TrimSpace(out))
	c, err := e.d.CountersDir(true)
	if err != nil {
		t.Fatal(err)
	}
	if c[ReasonTLS] != 1 || c[ReasonDenied] != 1 || c[ReasonAllowed] != 2 {
		t.Fatalf("egress counters %v", c)
	}
	if h := e.handled(); len(h) != 2 {
		t.Fatalf("handled %v after TLS", h)
	}
}

// TestEgressByteAtATime: requests written one byte per write with
// TCP_NODELAY are decided whole: the allowed one is answered, the
// refused one gets 403 and the server read none of its bytes.
func TestEgressByteAtATime(t *testing.T) {
	e := startEgress(t, egressLists, testListID, false)
	for _, tc := range []struct {
		req    string
		status int
	}{{allowedGet, 200}, {refusedGet, 403}} {
		c, br := e.dial(t)
		if err := c.SetNoDelay(true); err != nil {
			t.Fatal(err)
		}
		for i := range len(tc.req) {
			if _, err := c.Write([]byte{tc.req[i]}); err != nil {
				t.Fatalf("write byte %d: %v", i, err)
			}
		}
		resp, _ := readResponse(t, br)
		if resp.StatusCode != tc.status {
			t.Fatalf("%q: %d, want %d", tc.req, resp.StatusCode, tc.status)
		}
		got := e.finish(t, c)
		if want := map[int]string{200: tc.req, 403: ""}[tc.status]; got != want {
			t.Fatalf("server read %q, want %q", got, want)
		}
	}
}

// TestEgressTLS: a TLS client handshake on an L7 port is refused: the
// client's TLS stack reads the 403 and fails, the server reads nothing.
func TestEgressTLS(t *testing.T) {
	e := startEgress(t, egressLists, testListID, false)
	ev := events(t, e.d)
	c, _ := e.dial(t)
	err := tls.Client(c, &tls.Config{InsecureSkipVerify: true}).Handshake()
	if err == nil {
		t.Fatal("TLS handshake succeeded")
	}
	t.Logf("handshake: %v", err)
	if got := e.finish(t, c); got != "" {
		t.Fatalf("server read %q", got)
	}
	if x := nextEvent(t, ev); x.Reason != ReasonTLS || x.Status != 403 || !x.Egress || x.Method != "" {
		t.Fatalf("event %+v", x)
	}
}

// TestEgressPipelined: ten requests in one write: all allowed, ten
// answers in order; the last refused, nine answers then 400 (the kernel
// passes an invalid line in its place so that the pending answers come
// first) and the server never read the refused request.
func TestEgressPipelined(t *testing.T) {
	e := startEgress(t, egressLists, testListID, false)
	var reqs []string
	for i := range 10 {
		reqs = append(reqs, fmt.Sprintf("GET /public/%s HTTP/1.1\r\nHost: s\r\n\r\n", strings.Repeat("p", i)))
	}
	c, br := e.dial(t)
	if _, err := io.WriteString(c, strings.Join(reqs, "")); err != nil {
		t.Fatal(err)
	}
	for i := range 10 {
		resp, body := readResponse(t, br)
		if resp.StatusCode != 200 || body != "ok /public/"+strings.Repeat("p", i) {
			t.Fatalf("answer %d: %d %q", i, resp.StatusCode, body)
		}
	}
	e.finish(t, c)
	c, br = e.dial(t)
	reqs[9] = "GET /secret HTTP/1.1\r\nHost: s\r\n\r\n"
	if _, err := io.WriteString(c, strings.Join(reqs, "")); err != nil {
		t.Fatal(err)
	}
	for i := range 9 {
		resp, _ := readResponse(t, br)
		if resp.StatusCode != 200 {
			t.Fatalf("answer %d: %d", i, resp.StatusCode)
		}
	}
	resp, _ := readResponse(t, br)
	if resp.StatusCode != 400 {
		t.Fatalf("answer to the refused request: %d, want 400", resp.StatusCode)
	}
	got := e.finish(t, c)
	if strings.Contains(got, "/secret") || !strings.HasPrefix(got, strings.Join(reqs[:9], "")) {
		t.Fatalf("the server read %q", got)
	}
}

// TestEgressBodies: request-like text in a chunked body and in a
// Content-Length body, written across several writes, passes as body;
// the next request on the connection is decided.
func TestEgressBodies(t *testing.T) {
	e := startEgress(t, egressLists, testListID, false)
	inner := "GET /admin HTTP/1.1\r\nHost: s\r\n\r\n"
	post := "POST /api/v1/items HTTP/1.1\r\nHost: s\r\nX-Token: secret\r\n"
	chunked := post + "Transfer-Encoding: chunked\r\n\r\n" + fmt.Sprintf("%x;ext=1\r\n%s\r\n", len(inner), inner) + "0\r\nTrailer: x\r\n\r\n"
	sized := post + fmt.Sprintf("Content-Length: %d\r\n\r\n", len(inner)) + inner
	for _, body := range []string{chunked, sized} {
		c, br := e.dial(t)
		// split at odd places: inside the head, the chunk line and the data
		for _, part := range []string{body[:10], body[10 : len(post)+30], body[len(post)+30 : len(body)-20], body[len(body)-20:]} {
			if _, err := io.WriteString(c, part); err != nil {
				t.Fatal(err)
			}
		}
		resp, _ := readResponse(t, br)
		if resp.StatusCode != 200 {
			t.Fatalf("POST with a body holding a request: %d", resp.StatusCode)
		}
		if resp, _ := roundTrip(t, c, br, allowedGet); resp.StatusCode != 200 {
			t.Fatalf("GET after the body: %d", resp.StatusCode)
		}
		if resp, _ := roundTrip(t, c, br, refusedGet); resp.StatusCode != 403 {
			t.Fatalf("refused GET after the body: %d", resp.StatusCode)
		}
		if got := e.finish(t, c); got != body+allowedGet {
			t.Fatalf("server read %q", got)
		}
	}
	if h := e.handled(); !slices.Equal(h, []string{"POST /api/v1/items", "GET /public/a", "POST /api/v1/items", "GET /public/a"}) {
		t.Fatalf("handled %v", h)
	}
}

// TestEgressOversize: a 64 KiB header block is refused (oversize): 403,
// and the server reads nothing.
func TestEgressOversize(t *testing.T) {
	e := startEgress(t, egressLists, testListID, false)
	c, br := e.dial(t)
	head := "GET /public/a HTTP/1.1\r\nHost: s\r\n" + strings.Repeat("X-Pad: "+strings.Repeat("a", 1000)+"\r\n", 64) + "\r\n"
	go io.WriteString(c, head) // the write fails once the connection is refused
	resp, _ := readResponse(t, br)
	if resp.StatusCode != 403 {
		t.Fatalf("64 KiB head: %d", resp.StatusCode)
	}
	if got := e.finish(t, c); got != "" {
		t.Fatalf("server read %d bytes", len(got))
	}
	cs, _ := e.d.CountersDir(true)
	if cs[ReasonOversize] != 1 {
		t.Fatalf("egress counters %v", cs)
	}
}

// TestEgressIPv6: the client side on ::1: allowed answered, refused 403
// and never read by the server.
func TestEgressIPv6(t *testing.T) {
	e := startEgressOn(t, "tcp6", "::1", egressLists, testListID, false)
	c, br := e.dial(t)
	if resp, _ := roundTrip(t, c, br, allowedGet); resp.StatusCode != 200 {
		t.Fatalf("allowed: %d", resp.StatusCode)
	}
	if resp, _ := roundTrip(t, c, br, refusedGet); resp.StatusCode != 403 {
		t.Fatalf("refused: %d", resp.StatusCode)
	}
	if got := e.finish(t, c); got != allowedGet {
		t.Fatalf("server read %q", got)
	}
}

// TestEgressPinnedWithoutAgent: with the state pinned and every handle of
// the process closed, the client side is still decided: on a connection
// opened before and on one opened after.
func TestEgressPinnedWithoutAgent(t *testing.T) {
	e := startEgress(t, egressLists, testListID, false)
	dir := tempPinDir(t)
	if err := e.d.Pin(dir); err != nil {
		t.Fatal(err)
	}
	before, brBefore := e.dial(t)
	if resp, _ := roundTrip(t, before, brBefore, allowedGet); resp.StatusCode != 200 {
		t.Fatalf("before: %d", resp.StatusCode)
	}
	if err := e.d.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	if resp, _ := roundTrip(t, before, brBefore, refusedGet); resp.StatusCode != 403 {
		t.Fatalf("existing connection after close: %d, want 403", resp.StatusCode)
	}
	after, brAfter := e.dial(t)
	if resp, _ := roundTrip(t, after, brAfter, allowedGet); resp.StatusCode != 200 {
		t.Fatalf("new connection after close: %d", resp.StatusCode)
	}
	if resp, _ := roundTrip(t, after, brAfter, refusedGet); resp.StatusCode != 403 {
		t.Fatalf("new connection after close: %d, want 403", resp.StatusCode)
	}
	if got := e.finish(t, after); got != allowedGet {
		t.Fatalf("server read %q", got)
	}
	pins, err := filepath.Glob(filepath.Join(dir, "l7_*"))
	if err != nil || len(pins) == 0 {
		t.Fatalf("pins %v, %v", pins, err)
	}
	for _, p := range pins {
		if err := os.Remove(p); err != nil {
			t.Fatal(err)
		}
	}
}
