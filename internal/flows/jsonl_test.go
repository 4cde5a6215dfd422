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
	"bytes"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

func sample() Flow {
	icmp := uint8(8)
	return Flow{
		Time: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), Node: "worker-1",
		Source:      Endpoint{IP: "10.244.1.10", Namespace: "shop", Pod: "frontend-7d9f", Labels: map[string]string{"app": "frontend"}, Identity: 1234},
		Destination: Endpoint{IP: "203.0.113.10", Entity: "world"},
		Protocol:    "ICMP", ICMPType: &icmp, Direction: "egress", Verdict: Dropped, DropReason: DefaultDeny,
		Isolating: []Policy{{Kind: "NetworkPolicy", Namespace: "shop", Name: "frontend", File: "shop/frontend.cue", Line: 3, Column: 11}},
	}
}

// TestRoundTrip: what Write writes, Read reads back, with line numbers
// that skip blank lines.
func TestRoundTrip(t *testing.T) {
	a, b := sample(), sample()
	b.Verdict, b.DropReason, b.Isolating = Forwarded, "", nil
	b.Policy = &Policy{Kind: "NetworkPolicy", Name: "x", Namespace: "shop", Path: "spec.egress[0]"}
	var buf bytes.Buffer
	if err := Write(&buf, a); err != nil {
		t.Fatal(err)
	}
	buf.WriteString("\n  \n")
	if err := Write(&buf, b); err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(buf.String(), "\n"); n != 4 {
		t.Fatalf("%d newlines, want one per record plus the blank lines:\n%s", n, buf.String())
	}
	recs, err := Read(&buf, "flows.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 2 || recs[0].Line != 1 || recs[1].Line != 4 {
		t.Fatalf("records %+v", recs)
	}
	if !reflect.DeepEqual(recs[0].Flow, a) || !reflect.DeepEqual(recs[1].Flow, b) {
		t.Errorf("round trip changed the records:\n%+v\n%+v", recs[0].Flow, recs[1].Flow)
	}
}

// TestReadUnknownFieldsAndLastLine: fields added by a newer observe are
// ignored, and a last line without a newline is read.
func TestReadUnknownFieldsAndLastLine(t *testing.T) {
	in := `{"source":{"ip":"10.0.0.1"},"destination":{"ip":"10.0.0.2","port":80},"protocol":"TCP","direction":"ingress","verdict":"forwarded","newField":{"x":1}}`
	recs, err := Read(strings.NewReader(in), "f")
	if err != nil || len(recs) != 1 || recs[0].Destination.Port != 80 {
		t.Fatalf("%v %+v", err, recs)
	}
}

// TestReadMalformed: every malformed line is reported at file:line, and at
// its column when the JSON itself is wrong.
func TestReadMalformed(t *testing.T) {
	good := `{"source":{"ip":"10.0.0.1"},"destination":{"ip":"10.0.0.2","port":80},"protocol":"TCP","direction":"ingress","verdict":"forwarded"}`
	tests := []struct{ line, want string }{
		{`{"source":{"ip":"10.0.0.1"},`, `flows.jsonl:3:29: the JSON object is cut short`},
		{`{"source":{"ip":10}}`, `flows.jsonl:3:18: field "source.ip": want string, not a JSON number`},
		{`not json`, `flows.jsonl:3:2: not a flow record`},
		{strings.Replace(good, `"10.0.0.2"`, `"10.0.0.300"`, 1), `flows.jsonl:3: destination.ip "10.0.0.300" is not an IP address`},
		{strings.Replace(good, `"TCP"`, `"GRE"`, 1), `flows.jsonl:3: protocol "GRE"`},
		{strings.Replace(good, `"forwarded"`, `"allowed"`, 1), `flows.jsonl:3: verdict "allowed"`},
		{strings.Replace(good, `"ingress"`, `"in"`, 1), `flows.jsonl:3: direction "in"`},
		{strings.Replace(good, `{"ip":"10.0.0.1"}`, `{}`, 1), `flows.jsonl:3: source.ip is missing`},
		{good + " {}", `flows.jsonl:3:`},
	}
	for _, tc := range tests {
		_, err := Read(strings.NewReader(good+"\n\n"+tc.line+"\n"+good+"\n"), "flows.jsonl")
		var le *LineError
		if !errors.As(err, &le) || le.Line != 3 || !strings.HasPrefix(err.Error(), tc.want) {
			t.Errorf("%s:\n got %v\nwant %s...", tc.line, err, tc.want)
		}
	}
}
