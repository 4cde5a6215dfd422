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
	"errors"
	"io"
	"net"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/palisade-dev/palisade/internal/engine"
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
