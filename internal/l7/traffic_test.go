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
	"bufio"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/palisade-dev/palisade/internal/engine"
	"github.com/palisade-dev/palisade/internal/testenv"
)

// server is a net/http server whose listening socket belongs to a cgroup
// the test created, with l7 enforcing its port; handled lists the
// requests its handler ran for.
type server struct {
	d    *Datapath
	addr string
	mu   sync.Mutex
	seen []string
}

func (s *server) handled() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.seen)
}

// ownCgroup returns the cgroup v2 directory this process is in.
func ownCgroup(t testing.TB) string {
	t.Helper()
	b, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "0::"); ok {
			return filepath.Join(CgroupRoot(), rest)
		}
	}
	t.Skip("no cgroup v2 membership in /proc/self/cgroup")
	return ""
}

// startServer creates a cgroup, attaches sockops to it, listens from
// inside it (the process enters it for the listen only), and enforces
// testList on the port.
func startServer(t testing.TB) *server {
	t.Helper()
	return startServerOn(t, "tcp4", "127.0.0.1")
}

// startServerOn is startServer on network ("tcp4" or "tcp6") and a local
// address of it.
func startServerOn(t testing.TB, network, addr string) *server {
	t.Helper()
	return startServerWith(t, network, addr, true)
}

// startServerWith starts the server; with enforce false its port has no
// binding, so its sockets never enter l7_socks (the baseline).
func startServerWith(t testing.TB, network, addr string, enforce bool) *server {
	t.Helper()
	return startServerBind(t, network, addr, addr, enforce)
}

// startServerBind listens on addr and binds the list to bindAddr and the
// port (a dual-stack listener on "::" serves IPv4 peers as ::ffff:a.b.c.d,
// which the kernel decides as the IPv4 address).
func startServerBind(t testing.TB, network, addr, bindAddr string, enforce bool) *server {
	t.Helper()
	d := requireKernel(t)
	if _, err := os.Stat(filepath.Join(CgroupRoot(), "cgroup.procs")); err != nil {
		t.Skipf("no cgroup v2 at %s: %v", CgroupRoot(), err)
	}
	var rnd [4]byte
	rand.Read(rnd[:])
	cg := filepath.Join(CgroupRoot(), fmt.Sprintf("palisade-l7-test-%d-%s", os.Getpid(), hex.EncodeToString(rnd[:])))
	if err := os.Mkdir(cg, 0o755); err != nil {
		t.Fatalf("create cgroup: %v", err)
	}
	t.Cleanup(func() {
		if err := os.Remove(cg); err != nil {
			t.Errorf("remove cgroup %s: %v", cg, err)
		}
	})
	if err := d.AttachCgroup(cg); err != nil {
		t.Fatal(err)
	}
	home := ownCgroup(t)
	pid := []byte(strconv.Itoa(os.Getpid()))
	if err := os.WriteFile(filepath.Join(cg, "cgroup.procs"), pid, 0); err != nil {
		t.Fatalf("enter cgroup: %v", err)
	}
	ln, lerr := net.Listen(network, net.JoinHostPort(addr, "0"))
	if err := os.WriteFile(filepath.Join(home, "cgroup.procs"), pid, 0); err != nil {
		t.Fatalf("leave cgroup: %v", err)
	}
	if lerr != nil {
		t.Fatal(lerr)
	}
	s := &server{d: d, addr: ln.Addr().String()}
	if bindAddr != addr {
		s.addr = net.JoinHostPort(bindAddr, strconv.Itoa(ln.Addr().(*net.TCPAddr).Port))
	}
	srv := &http.Server{ConnState: func(c net.Conn, st http.ConnState) {
		if os.Getenv("L7_DEBUG") != "" {
			t.Logf("conn %v %v", c.RemoteAddr(), st)
		}
	}, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		s.mu.Lock()
		s.seen = append(s.seen, r.Method+" "+r.URL.RequestURI())
		s.mu.Unlock()
		fmt.Fprintf(w, "ok %s", r.URL.Path)
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })

	tables, err := engine.CompileHTTP(map[engine.L7ID]engine.L7List{testListID: testList})
	if err != nil {
		t.Fatal(err)
	}
	port := uint16(ln.Addr().(*net.TCPAddr).Port)
	var binds []Binding
	if enforce {
		binds = []Binding{{Addr: netip.MustParseAddr(bindAddr), Port: port, List: testListID}}
	}
	if err := d.Apply(1, tables, binds); err != nil {
		t.Fatal(err)
	}
	return s
}

// roundTrip writes req on conn and reads one response.
func roundTrip(t testing.TB, conn net.Conn, br *bufio.Reader, req string) (*http.Response, string) {
	t.Helper()
	if _, err := io.WriteString(conn, req); err != nil {
		t.Fatalf("write %q: %v", req, err)
	}
	return readResponse(t, br)
}

func readResponse(t testing.TB, br *bufio.Reader) (*http.Response, string) {
	t.Helper()
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("read response: %v", err)
	}
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read body: %v", err)
	}
	resp.Body.Close()
	return resp, string(b)
}

func dial(t testing.TB, addr string) (*net.TCPConn, *bufio.Reader) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	// A bound on a test that would otherwise hang on a lost answer.
	c.SetDeadline(time.Now().Add(30 * time.Second))
	return c.(*net.TCPConn), bufio.NewReader(c)
}

func TestTrafficHTTPClient(t *testing.T) {
	s := startServer(t)
	client := &http.Client{Timeout: 30 * time.Second}
	resp, err := client.Get("http://" + s.addr + "/public/a")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(body) != "ok /public/a" {
		t.Fatalf("allowed request: %d %q", resp.StatusCode, body)
	}
	resp, err = client.Get("http://" + s.addr + "/private")
	if err != nil {
		t.Fatal(err)
	}
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 403 || string(body) != "" || !resp.Close {
		t.Fatalf("refused request: %d %q close=%v", resp.StatusCode, body, resp.Close)
	}
	if got, want := s.handled(), []string{"GET /public/a"}; !slices.Equal(got, want) {
		t.Fatalf("handler ran for %q, want %q", got, want)
	}
	c, err := s.d.Counters()
	if err != nil {
		t.Fatal(err)
	}
	if c[ReasonAllowed] != 1 || c[ReasonDenied] != 1 || c[ReasonSockets] < 1 {
		t.Fatalf("counters %v", c)
	}
}

// TestTrafficKeepAlive mixes allowed and refused requests on one
// connection: the allowed ones are answered by the server, the refused
// one by 403, after which the connection carries nothing more.
func TestTrafficKeepAlive(t *testing.T) {
	s := startServer(t)
	conn, br := dial(t, s.addr)
	smuggled := "GET /private HTTP/1.1\r\nHost: x\r\n\r\n"
	for i, tc := range []struct {
		req    string
		status int
		body   string
	}{
		{"GET /public/1 HTTP/1.1\r\nHost: x\r\n\r\n", 200, "ok /public/1"},
		{fmt.Sprintf("POST /api/v1/items HTTP/1.1\r\nHost: x\r\nX-Token: secret\r\nContent-Length: %d\r\n\r\n%s", len(smuggled), smuggled), 200, "ok /api/v1/items"},
		{"DELETE /d/7 HTTP/1.1\r\nHost: x\r\n\r\n", 200, "ok /d/7"},
		{"GET /private HTTP/1.1\r\nHost: x\r\nUser-Agent: keep-alive-test\r\n\r\n", 403, ""},
	} {
		resp, body := roundTrip(t, conn, br, tc.req)
		if resp.StatusCode != tc.status || body != tc.body {
			t.Fatalf("request %d: %d %q, want %d %q", i, resp.StatusCode, body, tc.status, tc.body)
		}
	}
	// The refused request said Connection: close; what follows is dropped.
	io.WriteString(conn, "GET /public/after HTTP/1.1\r\nHost: x\r\n\r\n")
	conn.CloseWrite()
	if b, err := io.ReadAll(br); err != nil || len(b) != 0 {
		t.Fatalf("after the refusal: read %q, %v; want EOF", b, err)
	}
	want := []string{"GET /public/1", "POST /api/v1/items", "DELETE /d/7"}
	if got := s.handled(); !slices.Equal(got, want) {
		t.Fatalf("handler ran for %q, want %q", got, want)
	}
}

// TestTrafficByteByByte writes requests one byte per write with
// TCP_NODELAY: each is decided whole.
func TestTrafficByteByByte(t *testing.T) {
	s := startServer(t)
	for _, tc := range []struct {
		req    string
		status int
	}{
		{"GET /public/slow HTTP/1.1\r\nHost: x\r\nX-Long: " + strings.Repeat("v", 200) + "\r\n\r\n", 200},
		{"GET /private/slow HTTP/1.1\r\nHost: x\r\n\r\n", 403},
	} {
		conn, br := dial(t, s.addr)
		if err := conn.SetNoDelay(true); err != nil {
			t.Fatal(err)
		}
		for i := 0; i < len(tc.req); i++ {
			if _, err := conn.Write([]byte{tc.req[i]}); err != nil {
				t.Fatalf("write byte %d: %v", i, err)
			}
		}
		resp, _ := readResponse(t, br)
		if resp.StatusCode != tc.status {
			t.Fatalf("%q: %d, want %d", tc.req, resp.StatusCode, tc.status)
		}
	}
	if got, want := s.handled(), []string{"GET /public/slow"}; !slices.Equal(got, want) {
		t.Fatalf("handler ran for %q, want %q", got, want)
	}
}

// TestTrafficPipelined sends 10 requests in one write.
func TestTrafficPipelined(t *testing.T) {
	s := startServer(t)
	conn, br := dial(t, s.addr)
	// Heads of different lengths, so that a message framed at the wrong
	// offset shows; the tenth is refused, behind nine unanswered.
	var b strings.Builder
	var want []string
	for i := range 9 {
		p := "/public/" + strings.Repeat("p", i*7)
		fmt.Fprintf(&b, "GET %s HTTP/1.1\r\nHost: x\r\n\r\n", p)
		want = append(want, "GET "+p)
	}
	b.WriteString("GET /private/last HTTP/1.1\r\nHost: x\r\n\r\n")
	io.WriteString(conn, b.String())
	for i := range 9 {
		resp, body := readResponse(t, br)
		if resp.StatusCode != 200 || body != "ok "+strings.TrimPrefix(want[i], "GET ") {
			t.Fatalf("response %d: %d %q", i, resp.StatusCode, body)
		}
	}
	// The refusal must not overtake the server's answers: the server
	// answers it, in order, 400 (and closes).
	resp, _ := readResponse(t, br)
	if resp.StatusCode != 400 {
		t.Fatalf("response 9: %d, want 400", resp.StatusCode)
	}
	if got := s.handled(); !slices.Equal(got, want) {
		t.Fatalf("handler ran for %q, want %q", got, want)
	}
}

// TestTrafficRefusedUninspectable: TLS and an oversize head are refused,
// counted by reason, and never reach the server.
func TestTrafficRefusedUninspectable(t *testing.T) {
	s := startServer(t)
	conn, _ := dial(t, s.addr)
	tc := tls.Client(conn, &tls.Config{InsecureSkipVerify: true, ServerName: "x"})
	err := tc.Handshake()
	if err == nil {
		t.Fatal("TLS handshake succeeded through an L7 port")
	}
	t.Logf("TLS client sees: %v", err)

	conn, br := dial(t, s.addr)
	big := "GET /public/a HTTP/1.1\r\nHost: a\r\n" + strings.Repeat("X-Fill: "+strings.Repeat("f", 1000)+"\r\n", 64) + "\r\n"
	go io.WriteString(conn, big) // the server never reads it: do not block on it
	resp, body := readResponse(t, br)
	if resp.StatusCode != 403 {
		t.Fatalf("64 KiB header block: %d %q, want 403", resp.StatusCode, body)
	}
	if got := s.handled(); len(got) != 0 {
		t.Fatalf("handler ran for %q", got)
	}
	c, err := s.d.Counters()
	if err != nil {
		t.Fatal(err)
	}
	if c[ReasonTLS] != 1 || c[ReasonOversize] != 1 {
		t.Fatalf("counters %v, want tls 1 and oversize 1", c)
	}
	if errors.Is(err, io.EOF) {
		t.Fatal(err)
	}
}

// TestTrafficShortRefusal: a refused head too short to carry a 403 (an
// HTTP/1.0 request without Host) reaches the server as a line it refuses:
// the client reads 400 and the handler never runs.
func TestTrafficShortRefusal(t *testing.T) {
	s := startServer(t)
	conn, br := dial(t, s.addr)
	resp, _ := roundTrip(t, conn, br, "GET /x HTTP/1.0\r\n\r\n")
	if resp.StatusCode != 400 {
		t.Fatalf("short refused head: %d, want 400", resp.StatusCode)
	}
	if got := s.handled(); len(got) != 0 {
		t.Fatalf("handler ran for %q", got)
	}
	c, err := s.d.Counters()
	if err != nil {
		t.Fatal(err)
	}
	if c[ReasonDenied] != 1 || c[ReasonInOrder] != 1 {
		t.Fatalf("counters %v, want denied 1, refused-in-order 1", c)
	}
}

// TestTrafficCurl drives the server with Debian's curl: one invocation,
// three URLs on a reused connection; the refused one gets 403 and makes
// curl open a new connection for the next; HTTP/2 with prior knowledge
// is refused.
func TestTrafficCurl(t *testing.T) {
	curl := testenv.Tool(t, "curl")
	s := startServer(t)
	base := "http://" + s.addr
	out, err := exec.Command(curl, "-sS", "--max-time", "30", "-w", " %{http_code} %{num_connects}\n",
		base+"/public/1", base+"/private", base+"/public/2").CombinedOutput()
	if err != nil {
		t.Fatalf("curl: %v\n%s", err, out)
	}
	if want := "ok /public/1 200 1\n 403 0\nok /public/2 200 1\n"; string(out) != want {
		t.Fatalf("curl printed %q, want %q", out, want)
	}
	out, err = exec.Command(curl, "-sS", "--max-time", "30", "--http2-prior-knowledge", base+"/public/1").CombinedOutput()
	if err == nil {
		t.Fatalf("HTTP/2 with prior knowledge passed: %s", out)
	}
	t.Logf("curl --http2-prior-knowledge: %v: %s", err, strings.TrimSpace(string(out)))
	if got, want := s.handled(), []string{"GET /public/1", "GET /public/2"}; !slices.Equal(got, want) {
		t.Fatalf("handler ran for %q, want %q", got, want)
	}
	c, err := s.d.Counters()
	if err != nil {
		t.Fatal(err)
	}
	if c[ReasonHTTP2] != 1 || c[ReasonDenied] != 1 || c[ReasonAllowed] != 2 {
		t.Fatalf("counters %v", c)
	}
}

// TestTrafficRefusalSizes refuses heads around the sizes where the 403
// loses Connection: close (under 64 bytes) and "Forbidden" (under 45):
// each is answered 403, exactly as long as the head.
func TestTrafficRefusalSizes(t *testing.T) {
	s := startServer(t)
	for _, n := range []int{36, 44, 45, 63, 64, 65, 300} {
		// "GET /private HTTP/1.1\r\n" + "X: " + v + "\r\n" + "\r\n"
		head := "GET /private HTTP/1.1\r\nX: " + strings.Repeat("v", n-23-3-2-2) + "\r\n\r\n"
		if len(head) != n {
			t.Fatalf("head of %d bytes, want %d", len(head), n)
		}
		conn, br := dial(t, s.addr)
		io.WriteString(conn, head)
		raw := make([]byte, n)
		if _, err := io.ReadFull(br, raw); err != nil {
			t.Fatalf("%d: read %q, %v", n, raw, err)
		}
		if !strings.HasPrefix(string(raw), "HTTP/1.1 403 ") {
			t.Fatalf("%d-byte head answered %q", n, raw)
		}
		resp, err := http.ReadResponse(bufio.NewReader(strings.NewReader(string(raw))), nil)
		if err != nil || resp.StatusCode != 403 || resp.ContentLength != 0 || resp.Close != (n >= 64) || br.Buffered() != 0 {
			t.Fatalf("%d-byte head: %q parsed as %+v, %v", n, raw, resp, err)
		}
	}
	if got := s.handled(); len(got) != 0 {
		t.Fatalf("handler ran for %q", got)
	}
}

// TestTrafficIPv6 enforces a server on ::1.
func TestTrafficIPv6(t *testing.T) {
	if ln, err := net.Listen("tcp6", "[::1]:0"); err != nil {
		t.Skipf("no IPv6 loopback: %v", err)
	} else {
		ln.Close()
	}
	s := startServerOn(t, "tcp6", "::1")
	conn, br := dial(t, s.addr)
	if resp, _ := roundTrip(t, conn, br, "GET /public/6 HTTP/1.1\r\nHost: x\r\n\r\n"); resp.StatusCode != 200 {
		t.Fatalf("allowed: %d", resp.StatusCode)
	}
	if resp, _ := roundTrip(t, conn, br, "GET /private/6 HTTP/1.1\r\nHost: x\r\nUser-Agent: ipv6-test-agent\r\n\r\n"); resp.StatusCode != 403 {
		t.Fatalf("refused: %d", resp.StatusCode)
	}
	if got, want := s.handled(), []string{"GET /public/6"}; !slices.Equal(got, want) {
		t.Fatalf("handler ran for %q, want %q", got, want)
	}
}

// tempPinDir returns a directory on a bpffs private to the test.
func tempPinDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if err := unix.Mount("bpf", dir, "bpf", 0, ""); err != nil {
		t.Skipf("cannot mount a bpffs: %v", err)
	}
	t.Cleanup(func() { unix.Unmount(dir, unix.MNT_DETACH) })
	return dir
}

// TestTrafficPinnedWithoutAgent pins the state, closes every handle of
// the process (as an agent that exits), and checks that requests on a
// connection opened before and one opened after are still decided.
func TestTrafficPinnedWithoutAgent(t *testing.T) {
	s := startServer(t)
	dir := tempPinDir(t)
	if err := s.d.Pin(dir); err != nil {
		t.Fatal(err)
	}
	before, brBefore := dial(t, s.addr)
	if resp, _ := roundTrip(t, before, brBefore, "GET /public/before HTTP/1.1\r\nHost: x\r\n\r\n"); resp.StatusCode != 200 {
		t.Fatalf("before: %d", resp.StatusCode)
	}
	if err := s.d.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	if resp, _ := roundTrip(t, before, brBefore, "GET /private/before HTTP/1.1\r\nHost: x\r\nUser-Agent: pinned-test\r\n\r\n"); resp.StatusCode != 403 {
		t.Fatalf("existing connection after close: %d, want 403", resp.StatusCode)
	}
	after, brAfter := dial(t, s.addr)
	if resp, _ := roundTrip(t, after, brAfter, "GET /public/after HTTP/1.1\r\nHost: x\r\n\r\n"); resp.StatusCode != 200 {
		t.Fatalf("new connection after close: %d", resp.StatusCode)
	}
	if resp, _ := roundTrip(t, after, brAfter, "GET /private/after HTTP/1.1\r\nHost: x\r\nUser-Agent: pinned-test\r\n\r\n"); resp.StatusCode != 403 {
		t.Fatalf("new connection after close: %d, want 403", resp.StatusCode)
	}
	if got, want := s.handled(), []string{"GET /public/before", "GET /public/after"}; !slices.Equal(got, want) {
		t.Fatalf("handler ran for %q, want %q", got, want)
	}
	// Unpinning lets the kernel free it all: the cgroup link detaches.
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

// TestTrafficDualStack: a listener on "::" takes an IPv4 client as
// ::ffff:127.0.0.1; the binding of 127.0.0.1 decides its requests.
func TestTrafficDualStack(t *testing.T) {
	if ln, err := net.Listen("tcp", "[::]:0"); err != nil {
		t.Skipf("no dual-stack listener: %v", err)
	} else {
		ln.Close()
	}
	s := startServerBind(t, "tcp", "::", "127.0.0.1", true)
	conn, br := dial(t, s.addr)
	if resp, _ := roundTrip(t, conn, br, "GET /public/mapped HTTP/1.1\r\nHost: x\r\n\r\n"); resp.StatusCode != 200 {
		t.Fatalf("allowed: %d", resp.StatusCode)
	}
	if resp, _ := roundTrip(t, conn, br, "GET /private/mapped HTTP/1.1\r\nHost: x\r\nUser-Agent: dual-stack-test\r\n\r\n"); resp.StatusCode != 403 {
		t.Fatalf("refused: %d", resp.StatusCode)
	}
	if got, want := s.handled(), []string{"GET /public/mapped"}; !slices.Equal(got, want) {
		t.Fatalf("handler ran for %q, want %q", got, want)
	}
}
