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
	"os"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/rlimit"
	"github.com/twmb/franz-go/pkg/kmsg"

	kafkabpf "github.com/palisade-dev/palisade/bpf/kafka"
	"github.com/palisade-dev/palisade/internal/engine"
)

// requireKernel skips a test that needs root and loads bpf/kafka.
func requireKernel(t testing.TB) *Datapath {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("loading bpf/kafka needs root")
	}
	if err := rlimit.RemoveMemlock(); err != nil {
		t.Skipf("remove memlock limit: %v", err)
	}
	d, err := Load()
	if err != nil {
		t.Fatalf("load: %v", err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

// testPrefix pads every test run: BPF_PROG_TEST_RUN of a tc program needs
// at least an Ethernet header's worth of bytes, and the parser is given
// the frame's offset, as the stream parser is.
const testPrefix = 14

// result is what the parser did with a frame.
type result struct {
	Kind   kafkabpf.KafkaKafkaKind
	Reason Reason
	Len    uint32
	Rule   uint32
	Topics uint32
}

// parseAt runs the parser over data from offset off (after the test
// prefix), deciding with list (hasList false: no binding).
func parseAt(t testing.TB, d *Datapath, list uint32, hasList bool, data []byte, off uint32) result {
	t.Helper()
	return parseMax(t, d, list, hasList, data, off, 0)
}

// parseMax is parseAt with the socket's receive buffer (sk_rcvbuf) the
// parser is told; 0 tells it FrameMax.
func parseMax(t testing.TB, d *Datapath, list uint32, hasList bool, data []byte, off, max uint32) result {
	t.Helper()
	in := kafkabpf.KafkaKafkaTestIn{List: list, Off: testPrefix + off, Max: max}
	if hasList {
		in.HasList = 1
	}
	if err := d.objs.KafkaTestInput.Update(uint32(0), in, ebpf.UpdateAny); err != nil {
		t.Fatalf("test input: %v", err)
	}
	pkt := make([]byte, testPrefix+len(data))
	copy(pkt[testPrefix:], data)
	if _, err := d.objs.KafkaTestParse.Run(&ebpf.RunOptions{Data: pkt}); err != nil {
		t.Fatalf("test run: %v", err)
	}
	var out kafkabpf.KafkaKafkaSockw
	if err := d.objs.KafkaTestOut.Lookup(uint32(0), &out); err != nil {
		t.Fatalf("test output: %v", err)
	}
	return result{Kind: kafkabpf.KafkaKafkaKind(out.S.Kind), Reason: Reason(out.S.Reason), Len: out.S.Len, Rule: out.S.Rule, Topics: out.S.Topics}
}

// frame encodes a request as a client sends it (size, header, body), by
// franz-go's kmsg.
func frame(r kmsg.Request, clientID *string, corr int32) []byte {
	var f *kmsg.RequestFormatter
	if clientID != nil {
		f = kmsg.NewRequestFormatter(kmsg.FormatterClientID(*clientID))
	} else {
		f = kmsg.NewRequestFormatter()
	}
	return f.AppendRequest(nil, r, corr)
}

// request builds a request of key at version naming topics (nil: the
// key's "every topic" form, where it has one).
func request(key int16, version int16, topics []string) kmsg.Request {
	switch key {
	case 0:
		r := kmsg.NewPtrProduceRequest()
		r.Acks = -1
		r.TimeoutMillis = 1000
		for _, t := range topics {
			rt := kmsg.NewProduceRequestTopic()
			rt.Topic = t
			p := kmsg.NewProduceRequestTopicPartition()
			p.Records = make([]byte, 70)
			rt.Partitions = append(rt.Partitions, p)
			r.Topics = append(r.Topics, rt)
		}
		r.SetVersion(version)
		return r
	case 1:
		r := kmsg.NewPtrFetchRequest()
		for _, t := range topics {
			rt := kmsg.NewFetchRequestTopic()
			rt.Topic = t
			p := kmsg.NewFetchRequestTopicPartition()
			p.PartitionMaxBytes = 1 << 20
			rt.Partitions = append(rt.Partitions, p)
			r.Topics = append(r.Topics, rt)
		}
		r.SetVersion(version)
		return r
	case 2:
		r := kmsg.NewPtrListOffsetsRequest()
		for _, t := range topics {
			rt := kmsg.NewListOffsetsRequestTopic()
			rt.Topic = t
			p := kmsg.NewListOffsetsRequestTopicPartition()
			p.Timestamp = -1
			rt.Partitions = append(rt.Partitions, p)
			r.Topics = append(r.Topics, rt)
		}
		r.SetVersion(version)
		return r
	case 3:
		r := kmsg.NewPtrMetadataRequest()
		if topics != nil {
			r.Topics = []kmsg.MetadataRequestTopic{}
		}
		for _, t := range topics {
			rt := kmsg.NewMetadataRequestTopic()
			rt.Topic = kmsg.StringPtr(t)
			r.Topics = append(r.Topics, rt)
		}
		r.SetVersion(version)
		return r
	case 8:
		r := kmsg.NewPtrOffsetCommitRequest()
		r.Group = "group-1"
		r.MemberID = "member-1"
		for _, t := range topics {
			rt := kmsg.NewOffsetCommitRequestTopic()
			rt.Topic = t
			p := kmsg.NewOffsetCommitRequestTopicPartition()
			p.Offset = 10
			rt.Partitions = append(rt.Partitions, p)
			r.Topics = append(r.Topics, rt)
		}
		r.SetVersion(version)
		return r
	case 9:
		r := kmsg.NewPtrOffsetFetchRequest()
		r.Group = "group-1"
		if topics != nil {
			r.Topics = []kmsg.OffsetFetchRequestTopic{}
		}
		for _, t := range topics {
			rt := kmsg.NewOffsetFetchRequestTopic()
			rt.Topic = t
			rt.Partitions = []int32{0}
			r.Topics = append(r.Topics, rt)
		}
		r.SetVersion(version)
		return r
	}
	r := kmsg.RequestForKey(key)
	r.SetVersion(version)
	return r
}

// applyList compiles list and applies it as list 1 (no binding: the test
// runs name the list).
func applyList(t testing.TB, d *Datapath, gen uint64, list engine.L7List) *engine.KafkaList {
	t.Helper()
	kl, err := engine.CompileKafkaList(list)
	if err != nil {
		t.Fatalf("compile: %v", err)
	}
	if err := d.Apply(gen, &engine.KafkaTables{Lists: map[engine.L7ID]*engine.KafkaList{1: kl}}, nil); err != nil {
		t.Fatalf("apply: %v", err)
	}
	return kl
}
