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
	"net"
	"net/netip"
	"strings"
	"testing"

	"github.com/palisade-dev/palisade/internal/engine"
)

// TestEventsIngress: on the server's side, a refused request yields one
// event with its fields (a long path cut off at EventPathMax, its whole
// length said), a TLS record one without method or path; allowed requests
// yield none until SetAllowedEvents(true) and a new generation, then one
// each.
func TestEventsIngress(t *testing.T) {
	s := startServer(t)
	ev := events(t, s.d)
	conn, br := dial(t, s.addr)
	if resp, _ := roundTrip(t, conn, br, "GET /public/a HTTP/1.1\r\nHost: x\r\n\r\n"); resp.StatusCode != 200 {
		t.Fatalf("allowed: %d", resp.StatusCode)
	}
	long := "/private/" + strings.Repeat("p", 200)
	if resp, _ := roundTrip(t, conn, br, "GET "+long+" HTTP/1.1\r\nHost:  api.example.com \r\n\r\n"); resp.StatusCode != 403 {
		t.Fatalf("refused: %d", resp.StatusCode)
	}
	x := nextEvent(t, ev) // the first event is the refusal: the allowed request sent none
	client := conn.LocalAddr().(*net.TCPAddr)
	if x.Egress || x.Reason != ReasonDenied || x.Status != 403 || x.Method != "GET" || x.Path != long[:EventPathMax] ||
		x.TargetLen != uint32(len(long)) || x.Host != "api.example.com" || x.Rule != 11 || x.List != testListID || x.Generation != 1 ||
		x.Local.String() != s.addr || x.Remote.Port() != uint16(client.Port) {
		t.Fatalf("event %+v", x)
	}
	tlsConn, _ := dial(t, s.addr)
	if _, err := tlsConn.Write([]byte("\x16\x03\x01\x00\x05hello")); err != nil {
		t.Fatal(err)
	}
	if x := nextEvent(t, ev); x.Reason != ReasonTLS || x.Method != "" || x.Path != "" || x.Rule != 0 {
		t.Fatalf("TLS event %+v", x)
	}
	s.d.SetAllowedEvents(true)
	loadTestTablesOn(t, s)
	c2, br2 := dial(t, s.addr)
	if resp, _ := roundTrip(t, c2, br2, "GET /public/b HTTP/1.1\r\nHost: x\r\n\r\n"); resp.StatusCode != 200 {
		t.Fatalf("allowed: %d", resp.StatusCode)
	}
	if x := nextEvent(t, ev); x.Reason != ReasonAllowed || x.Status != 0 || x.Path != "/public/b" || x.Rule != 11 || x.Generation != 2 {
		t.Fatalf("allowed event %+v", x)
	}
}

// loadTestTablesOn applies generation 2 of the server's binding.
func loadTestTablesOn(t *testing.T, s *server) {
	t.Helper()
	tables, err := engine.CompileHTTP(map[engine.L7ID]engine.L7List{testListID: testList})
	if err != nil {
		t.Fatal(err)
	}
	ap := netip.MustParseAddrPort(s.addr)
	if err := s.d.Apply(2, tables, []Binding{{Addr: ap.Addr(), Port: ap.Port(), List: testListID}}); err != nil {
		t.Fatal(err)
	}
}
