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

package kafka

import (
	"context"
	"encoding/binary"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/btf"
	"github.com/cilium/ebpf/link"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
	"golang.org/x/sys/unix"

	"github.com/palisade-dev/palisade/api/v1alpha1"
	kafkabpf "github.com/palisade-dev/palisade/bpf/kafka"
	"github.com/palisade-dev/palisade/internal/engine"
)

// pinDir mounts a bpffs of the test's own (unmounted at the end).
func pinDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if err := unix.Mount("bpf", dir, "bpf", 0, "mode=0700"); err != nil {
		t.Skipf("mount bpffs: %v", err)
	}
	t.Cleanup(func() { unix.Unmount(dir, unix.MNT_DETACH) })
	return dir
}

// adoptClient is long enough for the kernel's Metadata answer to fit in
// the request's frame, so that a refused Metadata request is answered
// with TOPIC_AUTHORIZATION_FAILED rather than by closing the connection.
var adoptClient = "adopt-test-client-" + strings.Repeat("x", 80)

// metadataConn is one raw connection to the broker, held across the
// agents' restarts: the connection accepted before the restart.
type metadataConn struct {
	t    *testing.T
	c    net.Conn
	corr int32
}

func dialMetadata(t *testing.T, addr string) *metadataConn {
	t.Helper()
	return dialMetadataWith(t, func() (net.Conn, error) { return net.DialTimeout("tcp", addr, 5*time.Second) })
}

// dialMetadataWith is dialMetadata over the connection dial makes.
func dialMetadataWith(t *testing.T, dial func() (net.Conn, error)) *metadataConn {
	t.Helper()
	c, err := dial()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &metadataConn{t: t, c: c}
}

// expectTopics checks the errors a Metadata request gives orders and
// secret on c.
func expectTopics(t *testing.T, when string, c *metadataConn, orders, secret int16) {
	t.Helper()
	if got := c.topicError("orders"); got != orders {
		t.Errorf("%s: metadata orders: error %d, want %d", when, got, orders)
	}
	if got := c.topicError("secret"); got != secret {
		t.Errorf("%s: metadata secret: error %d, want %d", when, got, secret)
	}
}

// topicError sends a Metadata v11 request naming topic and returns the
// error code the answer gives it (the broker's, or the kernel's in the
// request's place).
func (m *metadataConn) topicError(topic string) int16 {
	m.t.Helper()
	m.corr++
	if n := MetadataAnswerLen(11, len(topic)); n > len(frame(request(3, 11, []string{topic}), &adoptClient, m.corr))-4 {
		m.t.Fatalf("the kernel's answer (%d bytes) would not fit in the request", n)
	}
	m.c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := m.c.Write(frame(request(3, 11, []string{topic}), &adoptClient, m.corr)); err != nil {
		m.t.Fatalf("metadata %s: write: %v", topic, err)
	}
	var size [4]byte
	if _, err := io.ReadFull(m.c, size[:]); err != nil {
		m.t.Fatalf("metadata %s: read: %v", topic, err)
	}
	body := make([]byte, binary.BigEndian.Uint32(size[:]))
	if _, err := io.ReadFull(m.c, body); err != nil {
		m.t.Fatalf("metadata %s: read: %v", topic, err)
	}
	if corr := int32(binary.BigEndian.Uint32(body)); corr != m.corr {
		m.t.Fatalf("metadata %s: correlation ID %d, want %d", topic, corr, m.corr)
	}
	resp := kmsg.NewPtrMetadataResponse()
	resp.SetVersion(11)
	if err := resp.ReadFrom(body[5:]); err != nil { // after the flexible header's tags
		m.t.Fatalf("metadata %s: decode: %v", topic, err)
	}
	for _, rt := range resp.Topics {
		if rt.Topic != nil && *rt.Topic == topic {
			return rt.ErrorCode
		}
	}
	m.t.Fatalf("metadata %s: the answer names %d other topics", topic, len(resp.Topics))
	return 0
}

// ordersAndSecret admits secret too (rule 30).
func ordersAndSecret() engine.L7List {
	return append(ordersOnly(), engine.L7Allow{Rule: 30, Rules: &v1alpha1.L7Rules{Kafka: []v1alpha1.KafkaRule{{APIKey: "metadata", Topic: "secret"}}}})
}

// pinnedIDs are the kernel ids of the pinned SOCKHASH and sockops link,
// and of the program the link runs.
func pinnedIDs(t *testing.T, dir string) (ebpf.MapID, link.ID, ebpf.ProgramID) {
	t.Helper()
	m, err := ebpf.LoadPinnedMap(filepath.Join(dir, "kafka_socks"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	info, err := m.Info()
	if err != nil {
		t.Fatal(err)
	}
	socks, _ := info.ID()
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

// TestKafkaAdoptKeepsConnections: a process pins the state and exits; a
// new one adopts it. A connection to the broker accepted before is
// decided by the pinned generation while no process runs and after the
// adoption, then by each generation the new process applies (a topic
// refused before is admitted, then refused again); a new connection
// alike. The SOCKHASH and the sockops link are the same kernel objects,
// the link now runs the new process's program, the broker never saw the
// topic while it was refused, and nothing was unpinned.
func TestKafkaAdoptKeepsConnections(t *testing.T) {
	b := startBroker(t, ordersOnly())
	dir := pinDir(t)
	if err := b.d.Pin(dir); err != nil {
		t.Fatal(err)
	}
	ka := dialMetadata(t, b.addr)
	const refused = int16(29) // TOPIC_AUTHORIZATION_FAILED
	if refused != kerr.TopicAuthorizationFailed.Code {
		t.Fatal("TOPIC_AUTHORIZATION_FAILED is not 29")
	}
	expect := func(when string, c *metadataConn, orders, secret int16) {
		t.Helper()
		expectTopics(t, when, c, orders, secret)
	}
	expect("generation 1", ka, 0, refused)
	socks, lnk, prog := pinnedIDs(t, dir)
	before, err := b.d.Counters()
	if err != nil {
		t.Fatal(err)
	}
	if err := b.d.Close(); err != nil { // the agent exits
		t.Fatal(err)
	}
	expect("no process", ka, 0, refused)

	d := loadFresh(t)
	ad, err := d.Adopt(dir)
	if err != nil {
		t.Fatal(err)
	}
	if ad == nil || ad.Generation != 1 || ad.Links != 1 || !slices.Contains(ad.Maps, "kafka_socks") || !slices.Contains(ad.Maps, "kafka_lists") {
		t.Fatalf("adopted %+v, want generation 1, one link, the pinned maps", ad)
	}
	t.Logf("adopted %+v", *ad)
	b.d = d
	if g, err := d.Generation(); err != nil || g != 1 {
		t.Fatalf("Generation() = %d, %v; want 1", g, err)
	}
	if !d.HasCgroup(b.cg) {
		t.Errorf("HasCgroup(%s) = false after adopting its link", b.cg)
	}
	if c, err := d.Counters(); err != nil || c[ReasonDenied] < before[ReasonDenied] || c[ReasonAllowed] < before[ReasonAllowed] {
		t.Errorf("adopted counters %v (%v), want at least the previous process's %v", c, err, before)
	}
	ap := netip.MustParseAddrPort(b.addr)
	binds := []Binding{{Addr: ap.Addr(), Port: ap.Port(), List: 7}}
	compile := func(l engine.L7List) *engine.KafkaTables {
		kl, err := engine.CompileKafkaList(l)
		if err != nil {
			t.Fatal(err)
		}
		return &engine.KafkaTables{Lists: map[engine.L7ID]*engine.KafkaList{7: kl}}
	}
	// Until the new process applies, the pinned generation decides.
	if ds, err := d.Compare(1, compile(ordersOnly()), binds); err != nil || len(ds) != 0 {
		t.Fatalf("the adopted state reads back with drifts %v (%v)", ds, err)
	}
	expect("adopted", ka, 0, refused)
	if slices.Contains(b.saw(3), "secret") {
		t.Fatalf("the broker saw a Metadata request naming secret while it was refused: %v", b.saw(3))
	}

	// A generation that admits secret decides the connection accepted
	// before the restart, and new ones.
	if err := d.Apply(2, compile(ordersAndSecret()), binds); err != nil {
		t.Fatal(err)
	}
	expect("generation 2 (on the connection from before the restart)", ka, 0, 0)
	expect("generation 2 (new connection)", dialMetadata(t, b.addr), 0, 0)
	if ds, err := d.Compare(2, compile(ordersAndSecret()), binds); err != nil || len(ds) != 0 {
		t.Fatalf("generation 2 reads back with drifts %v (%v)", ds, err)
	}
	if !slices.Contains(b.saw(3), "secret") {
		t.Errorf("the broker did not see the admitted Metadata request naming secret: %v", b.saw(3))
	}

	if err := d.Pin(dir); err != nil {
		t.Fatalf("pin the adopted state again: %v", err)
	}
	if got := d.MissingPins(dir); len(got) != 0 {
		t.Errorf("missing pins after the adoption: %v", got)
	}
	s2, l2, p2 := pinnedIDs(t, dir)
	if s2 != socks || l2 != lnk {
		t.Errorf("pinned SOCKHASH %d and link %d, want the adopted %d and %d", s2, l2, socks, lnk)
	}
	pi, err := d.objs.KafkaSockops.Info()
	if err != nil {
		t.Fatal(err)
	}
	if id, _ := pi.ID(); p2 == prog || p2 != id {
		t.Errorf("the link runs program %d; the previous process's was %d, this one's is %d", p2, prog, id)
	}

	// And back: refused again by the next generation, on the connection
	// from before the restart.
	if err := d.Apply(3, compile(ordersOnly()), binds); err != nil {
		t.Fatal(err)
	}
	expect("generation 3", ka, 0, refused)
}

// TestKafkaAdoptNothingPinned: an empty pin directory has nothing to
// adopt, and the fresh datapath works as loaded.
func TestKafkaAdoptNothingPinned(t *testing.T) {
	d := requireKernel(t)
	ad, err := d.Adopt(pinDir(t))
	if err != nil || ad != nil {
		t.Fatalf("Adopt(empty) = %+v, %v; want nil, nil", ad, err)
	}
	applyList(t, d, 1, ordersOnly())
}

// TestKafkaAdoptIncomplete: a pinned state that lacks a table is not
// adopted (the error names it), the datapath stays usable, and a
// datapath that applied already refuses to adopt.
func TestKafkaAdoptIncomplete(t *testing.T) {
	old := requireKernel(t)
	applyList(t, old, 1, ordersOnly())
	dir := pinDir(t)
	if err := old.Pin(dir); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(dir, "kafka_vals")); err != nil {
		t.Fatal(err)
	}
	d := loadFresh(t)
	ad, err := d.Adopt(dir)
	if err == nil || ad != nil || !strings.Contains(err.Error(), "lacks kafka_vals") {
		t.Fatalf("Adopt(incomplete) = %+v, %v; want an error naming kafka_vals", ad, err)
	}
	t.Logf("Adopt(incomplete): %v", err)
	applyList(t, d, 1, ordersOnly())
	if _, err := d.Adopt(dir); err == nil {
		t.Fatal("Adopt after Apply: no error")
	}
}

// TestKafkaAdoptIncompatible: state pinned by a version whose map differs
// from this one's is not adopted, and the error names the map and what
// differs: a value of another size, and a value of the same size whose
// fields are laid out otherwise (a new version that renamed or reordered
// them), which only the BTF comparison finds.
func TestKafkaAdoptIncompatible(t *testing.T) {
	requireKernel(t)
	spec, err := kafkabpf.LoadKafka()
	if err != nil {
		t.Fatal(err)
	}
	orig := spec.Maps["kafka_lists"]
	bigger := orig.Copy()
	bigger.ValueSize += 8
	bigger.Value = nil
	renamed := orig.Copy()
	st, ok := btf.As[*btf.Struct](renamed.Value)
	if !ok {
		t.Fatalf("kafka_lists value is %v, want a struct", renamed.Value)
	}
	st = btf.Copy(st).(*btf.Struct)
	st.Members[0].Name, st.Members[1].Name = st.Members[1].Name, st.Members[0].Name
	renamed.Value = st
	for _, c := range []struct {
		name string
		spec *ebpf.MapSpec
		want string
	}{{"same", orig, ""}, {"value size", bigger, "ValueSize"}, {"field names", renamed, "layout differs"}} {
		t.Run(c.name, func(t *testing.T) {
			old := requireKernel(t)
			applyList(t, old, 1, ordersOnly())
			dir := pinDir(t)
			if err := old.Pin(dir); err != nil {
				t.Fatal(err)
			}
			m, err := ebpf.NewMap(c.spec)
			if err != nil {
				t.Fatal(err)
			}
			defer m.Close()
			if err := os.Remove(filepath.Join(dir, "kafka_lists")); err != nil {
				t.Fatal(err)
			}
			if err := m.Pin(filepath.Join(dir, "kafka_lists")); err != nil {
				t.Fatal(err)
			}
			d := loadFresh(t)
			ad, err := d.Adopt(dir)
			if c.want == "" {
				// A map this version creates alike (empty: the lists
				// are gone) is adopted.
				if err != nil || ad == nil {
					t.Fatalf("Adopt = %+v, %v; want adopted", ad, err)
				}
				return
			}
			if err == nil || ad != nil || !strings.Contains(err.Error(), "kafka_lists") || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("Adopt = %+v, %v; want an error naming kafka_lists and %q", ad, err, c.want)
			}
			t.Logf("Adopt: %v", err)
			applyList(t, d, 1, ordersOnly())
		})
	}
}

// TestKafkaAdoptKeepsEgressConnections: as TestKafkaAdoptKeepsConnections
// on the client's side: a connection the client cgroup opened before the
// restart is decided by the pinned generation while no process runs and
// after the adoption (the egress gate's link taken over too), then by
// each generation the new process applies to its egress binding.
func TestKafkaAdoptKeepsEgressConnections(t *testing.T) {
	b, cl := startEgress(t, ordersOnly())
	dir := pinDir(t)
	if err := b.d.Pin(dir); err != nil {
		t.Fatal(err)
	}
	dial := func() (net.Conn, error) { return cl.dial(context.Background(), "tcp", b.addr) }
	ka := dialMetadataWith(t, dial)
	refused := kerr.TopicAuthorizationFailed.Code
	expectTopics(t, "generation 1", ka, 0, refused)
	if err := b.d.Close(); err != nil {
		t.Fatal(err)
	}
	expectTopics(t, "no process", ka, 0, refused)

	d := loadFresh(t)
	ad, err := d.Adopt(dir)
	if err != nil {
		t.Fatal(err)
	}
	if ad == nil || ad.Generation != 1 || ad.Links != 1 || !slices.Contains(ad.Maps, "kafka_esk") || !slices.Contains(ad.Maps, "kafka_ebinds") {
		t.Fatalf("adopted %+v, want generation 1, one link, the pinned egress maps", ad)
	}
	b.d = d
	if !d.HasCgroup(b.cg) {
		t.Errorf("HasCgroup(%s) = false after adopting its sockops and gate links", b.cg)
	}
	ap := netip.MustParseAddrPort(b.addr)
	binds := []Binding{{Addr: netip.IPv4Unspecified(), Port: ap.Port(), List: 7, Egress: true}}
	compile := func(l engine.L7List) *engine.KafkaTables {
		kl, err := engine.CompileKafkaList(l)
		if err != nil {
			t.Fatal(err)
		}
		return &engine.KafkaTables{Lists: map[engine.L7ID]*engine.KafkaList{7: kl}}
	}
	if ds, err := d.Compare(1, compile(ordersOnly()), binds); err != nil || len(ds) != 0 {
		t.Fatalf("the adopted state reads back with drifts %v (%v)", ds, err)
	}
	expectTopics(t, "adopted", ka, 0, refused)
	if err := d.Apply(2, compile(ordersAndSecret()), binds); err != nil {
		t.Fatal(err)
	}
	expectTopics(t, "generation 2 (on the connection from before the restart)", ka, 0, 0)
	expectTopics(t, "generation 2 (new connection)", dialMetadataWith(t, dial), 0, 0)
	if err := d.Apply(3, compile(ordersOnly()), binds); err != nil {
		t.Fatal(err)
	}
	expectTopics(t, "generation 3", ka, 0, refused)
	if got := b.saw(3); !slices.Contains(got, "secret") {
		t.Errorf("the broker did not see the admitted Metadata request naming secret: %v", got)
	}
}
