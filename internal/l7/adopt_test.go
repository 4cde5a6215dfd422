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
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"

	"github.com/palisade-dev/palisade/api/v1alpha1"
	"github.com/palisade-dev/palisade/internal/engine"
)

// pinnedIDs are the kernel ids of the pinned SOCKHASH and sockops link,
// and of the program the link runs.
func pinnedIDs(t *testing.T, dir string) (socks ebpf.MapID, lnk link.ID, prog ebpf.ProgramID) {
	t.Helper()
	info, err := pinned(t, dir, "l7_socks").Info()
	if err != nil {
		t.Fatal(err)
	}
	socks, _ = info.ID()
	l, err := link.LoadPinnedLink(filepath.Join(dir, sockopsLinkPin+"0"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	li, err := l.Info()
	if err != nil {
		t.Fatal(err)
	}
	return socks, li.ID, li.Program
}

func loadFresh(t *testing.T) *Datapath {
	t.Helper()
	d, err := Load()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

// TestAdoptKeepsConnections: a process pins the state and exits; a new
// one adopts it. A keep-alive connection accepted before is decided by
// the pinned generation until the new process applies one, and then by
// the new one; new connections alike. The SOCKHASH and the sockops link
// are the same kernel objects, the link now runs the new process's
// program, and nothing was unpinned.
func TestAdoptKeepsConnections(t *testing.T) {
	e := startEnforced(t)
	ka, br := dial(t, e.addr)
	get := func(path string) int {
		t.Helper()
		resp, _ := roundTrip(t, ka, br, "GET "+path+" HTTP/1.1\r\nHost: x\r\nUser-Agent: adopt-test\r\n\r\n")
		return resp.StatusCode
	}
	if code := get("/public/ka1"); code != 200 {
		t.Fatalf("keep-alive GET /public/ka1: %d", code)
	}
	socks, lnk, prog := pinnedIDs(t, e.dir)
	if err := e.d.Close(); err != nil { // the agent exits
		t.Fatal(err)
	}
	if code := get("/public/ka2"); code != 200 {
		t.Fatalf("no process: keep-alive GET /public/ka2: %d", code)
	}

	d := loadFresh(t)
	if d.HasCgroup(CgroupRoot()) {
		t.Fatal("a fresh datapath reports a cgroup attached")
	}
	ad, err := d.Adopt(e.dir)
	if err != nil {
		t.Fatal(err)
	}
	if ad == nil || ad.Generation != 1 || ad.Links != 1 || ad.Gates != 1 || !slices.Contains(ad.Maps, "l7_socks") || !slices.Contains(ad.Maps, "l7_lists") {
		t.Fatalf("adopted %+v, want generation 1, one sockops and one gate link, the pinned maps", ad)
	}
	t.Logf("adopted %+v", *ad)
	ka.SetDeadline(time.Now().Add(30 * time.Second)) // the dial's counted from before a load
	e.server.d = d
	if g, err := d.Generation(); err != nil || g != 1 {
		t.Fatalf("Generation() = %d, %v; want 1", g, err)
	}
	// Until the new process applies, the pinned generation decides.
	if ds := e.compare(t); len(ds) != 0 {
		t.Fatalf("the adopted state reads back with drifts %v", ds)
	}
	if code := get("/public/ka3"); code != 200 {
		t.Fatalf("adopted: keep-alive GET /public/ka3: %d", code)
	}
	if code := e.status(t, "/private/adopted"); code != 403 {
		t.Fatalf("adopted: GET /private/adopted: %d, want 403", code)
	}

	// A new generation that allows /private too decides the connection
	// accepted before the restart.
	allowPrivate := slices.Clone(testList)
	allowPrivate = append(allowPrivate, engine.L7Allow{Rule: 13, Rules: rules(v1alpha1.HTTPRule{Method: "GET", Path: "/private/.*"})})
	tables, err := engine.CompileHTTP(map[engine.L7ID]engine.L7List{testListID: allowPrivate})
	if err != nil {
		t.Fatal(err)
	}
	e.tables = tables
	e.repair(t)
	if code := get("/private/ka"); code != 200 {
		t.Errorf("generation %d: keep-alive GET /private/ka (accepted before the restart): %d, want 200", e.gen, code)
	}
	if code := e.status(t, "/private/new"); code != 200 {
		t.Errorf("generation %d: GET /private/new: %d, want 200", e.gen, code)
	}
	if ds := e.compare(t); len(ds) != 0 {
		t.Fatalf("generation %d reads back with drifts %v", e.gen, ds)
	}

	if err := d.Pin(e.dir); err != nil {
		t.Fatalf("pin the adopted state again: %v", err)
	}
	s2, l2, p2 := pinnedIDs(t, e.dir)
	if s2 != socks || l2 != lnk {
		t.Errorf("pinned SOCKHASH %d and link %d, want the adopted %d and %d", s2, l2, socks, lnk)
	}
	pi, err := d.objs.L7Sockops.Info()
	if err != nil {
		t.Fatal(err)
	}
	if id, _ := pi.ID(); p2 == prog || p2 != id {
		t.Errorf("the link runs program %d; the previous process's was %d, this one's is %d", p2, prog, id)
	}

	// And back: the connection is refused by the next generation.
	e.tables, err = engine.CompileHTTP(map[engine.L7ID]engine.L7List{testListID: testList})
	if err != nil {
		t.Fatal(err)
	}
	e.repair(t)
	if code := get("/private/ka-again"); code != 403 {
		t.Errorf("generation %d: keep-alive GET /private/ka-again: %d, want 403", e.gen, code)
	}
	want := []string{"GET /public/ka1", "GET /public/ka2", "GET /public/ka3", "GET /private/ka", "GET /private/new"}
	if got := e.handled(); !slices.Equal(got, want) {
		t.Errorf("handler ran for %q, want %q", got, want)
	}
}

// TestAdoptNothingPinned: an empty pin directory has nothing to adopt,
// and the fresh datapath works as loaded.
func TestAdoptNothingPinned(t *testing.T) {
	requireKernel(t)
	d := loadFresh(t)
	ad, err := d.Adopt(tempPinDir(t))
	if err != nil || ad != nil {
		t.Fatalf("Adopt(empty) = %+v, %v; want nil, nil", ad, err)
	}
	loadTestTables(t, d)
}

// TestAdoptIncomplete: a pinned state that lacks a table is not adopted
// (the error names it), the datapath stays usable, and a datapath that
// applied already refuses to adopt.
func TestAdoptIncomplete(t *testing.T) {
	old := requireKernel(t)
	loadTestTables(t, old)
	dir := tempPinDir(t)
	if err := old.Pin(dir); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(dir, "l7_allows")); err != nil {
		t.Fatal(err)
	}
	d := loadFresh(t)
	ad, err := d.Adopt(dir)
	if err == nil || ad != nil {
		t.Fatalf("Adopt(incomplete) = %+v, %v; want an error", ad, err)
	}
	t.Logf("Adopt(incomplete): %v", err)
	loadTestTables(t, d)
	if _, err := d.Adopt(dir); err == nil {
		t.Fatal("Adopt after Apply: no error")
	}
}

// TestAdoptKeepsEgressConnections: the client side alike. A keep-alive
// connection written from a bound cgroup under one process is decided,
// after the process exits and another adopts the pins, by the adopted
// generation and then by the new process's: a request refused before is
// passed once a generation allows it, and refused again after.
func TestAdoptKeepsEgressConnections(t *testing.T) {
	e := startEgress(t, egressLists, testListID, false)
	dir := tempPinDir(t)
	if err := e.d.Pin(dir); err != nil {
		t.Fatal(err)
	}
	c, br := e.dial(t)
	get := func(req string) (int, string) {
		t.Helper()
		resp, body := roundTrip(t, c, br, req)
		return resp.StatusCode, body
	}
	if code, body := get(allowedGet); code != 200 || body != "ok /public/a" {
		t.Fatalf("before: %d %q", code, body)
	}
	if err := e.d.Close(); err != nil {
		t.Fatal(err)
	}
	if code, _ := get(allowedGet); code != 200 {
		t.Fatalf("no process: %d", code)
	}
	d := loadFresh(t)
	ad, err := d.Adopt(dir)
	if err != nil || ad == nil || !slices.Contains(ad.Maps, "l7_esocks") || !slices.Contains(ad.Maps, "l7_ebinds") {
		t.Fatalf("adopt: %+v, %v; want the egress maps adopted", ad, err)
	}
	e.d = d
	if !d.HasCgroup(e.cg) {
		t.Errorf("HasCgroup(%s) = false after adopting its link", e.cg)
	}
	// The dial's deadline counts from before a load of the object
	// (about 12 s on this loaded machine): a new one for what follows.
	c.SetDeadline(time.Now().Add(30 * time.Second))
	if code, _ := get(allowedGet); code != 200 {
		t.Fatalf("adopted: %d", code)
	}
	allowAdmin := map[engine.L7ID]engine.L7List{testListID: append(slices.Clone(testList),
		engine.L7Allow{Rule: 13, Rules: rules(v1alpha1.HTTPRule{Method: "GET", Path: "/admin"})})}
	e.apply(t, allowAdmin, testListID, 2)
	if code, body := get(refusedGet); code != 200 || body != "ok /admin" {
		t.Errorf("generation 2 allows /admin: on the connection written before the restart: %d %q, want the server's answer", code, body)
	}
	e.apply(t, egressLists, testListID, 3)
	if code, _ := get(refusedGet); code != 403 {
		t.Errorf("generation 3 refuses /admin: %d, want 403", code)
	}
	if h := e.handled(); !slices.Equal(h, []string{"GET /public/a", "GET /public/a", "GET /public/a", "GET /admin"}) {
		t.Errorf("handled %v", h)
	}
}

// TestAdoptAfterPinsRepaired: pins removed from under a running process
// (the SOCKHASH's, a table's, the sockops link's) are found missing and
// pinned again, so that the next process adopts the whole state and the
// connection from before keeps being decided.
func TestAdoptAfterPinsRepaired(t *testing.T) {
	e := startEnforced(t)
	if got := e.d.MissingPins(e.dir); len(got) != 0 {
		t.Fatalf("missing pins right after Pin: %v", got)
	}
	ka, br := dial(t, e.addr)
	if resp, _ := roundTrip(t, ka, br, "GET /public/ka1 HTTP/1.1\r\nHost: x\r\n\r\n"); resp.StatusCode != 200 {
		t.Fatalf("keep-alive GET /public/ka1: %d", resp.StatusCode)
	}
	gone := []string{filepath.Join(e.dir, "l7_lists"), filepath.Join(e.dir, "l7_socks"), filepath.Join(e.dir, sockopsLinkPin+"0"), filepath.Join(e.dir, gateLinkPin+"0")}
	for _, p := range gone {
		if err := os.Remove(p); err != nil {
			t.Fatal(err)
		}
	}
	if got := e.d.MissingPins(e.dir); !slices.Equal(got, gone) {
		t.Fatalf("MissingPins = %v, want %v", got, gone)
	}
	if err := e.d.RepairPins(e.dir); err != nil {
		t.Fatal(err)
	}
	if got := e.d.MissingPins(e.dir); len(got) != 0 {
		t.Fatalf("missing pins after the repair: %v", got)
	}
	if err := e.d.Close(); err != nil {
		t.Fatal(err)
	}
	d := loadFresh(t)
	ad, err := d.Adopt(e.dir)
	if err != nil || ad == nil || ad.Links != 1 || ad.Gates != 1 {
		t.Fatalf("adopt after the repair: %+v, %v", ad, err)
	}
	e.server.d = d
	allowPrivate := append(slices.Clone(testList), engine.L7Allow{Rule: 13, Rules: rules(v1alpha1.HTTPRule{Method: "GET", Path: "/private/.*"})})
	if e.tables, err = engine.CompileHTTP(map[engine.L7ID]engine.L7List{testListID: allowPrivate}); err != nil {
		t.Fatal(err)
	}
	e.repair(t)
	// The dial's deadline counts from before two loads of the object
	// (about 12 s each on this loaded machine): a new one for what follows.
	ka.SetDeadline(time.Now().Add(30 * time.Second))
	if resp, body := roundTrip(t, ka, br, "GET /private/ka HTTP/1.1\r\nHost: x\r\n\r\n"); resp.StatusCode != 200 || body != "ok /private/ka" {
		t.Errorf("keep-alive GET /private/ka after the adoption: %d %q, want the server's answer", resp.StatusCode, body)
	}
}

// TestAdoptAttachesMissingGate: state pinned without the egress gate's
// link (as a version without the gate pinned it) is adopted with its
// sockops link; HasCgroup then says the cgroup is not fully attached, and
// AttachCgroup attaches the gate alone.
func TestAdoptAttachesMissingGate(t *testing.T) {
	e := startEgress(t, egressLists, testListID, false)
	dir := tempPinDir(t)
	if err := e.d.Pin(dir); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(dir, gateLinkPin+"0")); err != nil {
		t.Fatal(err)
	}
	if err := e.d.Close(); err != nil {
		t.Fatal(err)
	}
	d := loadFresh(t)
	ad, err := d.Adopt(dir)
	if err != nil || ad == nil || ad.Links != 1 || ad.Gates != 0 {
		t.Fatalf("adopt: %+v, %v; want the sockops link and no gate", ad, err)
	}
	if d.HasCgroup(e.cg) {
		t.Fatalf("HasCgroup(%s) = true without the gate", e.cg)
	}
	if err := d.AttachCgroup(e.cg); err != nil {
		t.Fatal(err)
	}
	if !d.HasCgroup(e.cg) || len(d.links) != 1 || len(d.gates) != 1 {
		t.Fatalf("after AttachCgroup: HasCgroup %v, %d sockops and %d gate links; want true, 1, 1", d.HasCgroup(e.cg), len(d.links), len(d.gates))
	}
	if got := d.MissingPins(dir); !slices.Equal(got, []string{filepath.Join(dir, gateLinkPin+"0")}) {
		t.Fatalf("MissingPins = %v, want the new gate link's", got)
	}
	if err := d.RepairPins(dir); err != nil {
		t.Fatal(err)
	}
	if got := d.MissingPins(dir); len(got) != 0 {
		t.Fatalf("missing pins after the repair: %v", got)
	}
}
