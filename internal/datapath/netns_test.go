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

package datapath

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"

	"github.com/palisade-dev/palisade/internal/netlab"
)

// ip runs iproute2's ip.
func ip(t testing.TB, args ...string) {
	t.Helper()
	out, err := exec.Command("ip", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
	}
}

func requireIP(t testing.TB) {
	t.Helper()
	if _, err := exec.LookPath("ip"); err != nil {
		if os.Getenv("PALISADE_REQUIRE_TOOLS") != "" {
			t.Fatal("iproute2's ip not found; make test installs it (hack/apt-install.sh iproute2)")
		}
		t.Skip("needs iproute2's ip (make test installs it)")
	}
}

// requireNode fails a test that adds devices or routes to the node when
// the test binary has no node namespace of its own (netlab.Isolate in
// TestMain): it would change the machine's network under every other test
// running at the time.
func requireNode(t testing.TB) {
	t.Helper()
	requireIP(t)
	if !netlab.Isolated() {
		t.Fatal("not in a node namespace of its own: TestMain must run the tests through netlab.Isolate")
	}
}

var linkSeq int

// dummyLink creates a veth pair on the node for the test and returns one
// end's index.
func dummyLink(t testing.TB) int {
	t.Helper()
	requireNode(t)
	linkSeq++
	name := fmt.Sprintf("paltst%d", linkSeq)
	ip(t, "link", "add", name, "type", "veth", "peer", "name", name+"p")
	t.Cleanup(func() { exec.Command("ip", "link", "del", name).Run() })
	ifc, err := net.InterfaceByName(name)
	if err != nil {
		t.Fatal(err)
	}
	return ifc.Index
}

// linkProgram returns the program ID that a pinned link runs.
func linkProgram(t testing.TB, pin string, a Attachment) ebpf.ProgramID {
	t.Helper()
	l, err := link.LoadPinnedLink(linkPin(pin, a.Ifindex, a.Hook, a.Direction), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	info, err := l.Info()
	if err != nil {
		t.Fatal(err)
	}
	return info.Program
}
