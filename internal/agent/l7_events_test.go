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

package agent

import (
	"context"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-logr/logr/funcr"

	"github.com/palisade-dev/palisade/internal/l7"
)

type fakeEvents[E any] struct{ ch chan E }

func (f fakeEvents[E]) Events(ctx context.Context) (<-chan E, <-chan error, error) {
	return f.ch, make(chan error, 1), nil
}

// logEvents runs an eventLog of line over first, the events of one
// second, and then, a second later, over next; it returns the lines
// logged.
func logEvents[E any](t *testing.T, line func(E) (string, []any, bool), perSecond int, first, next []E) []string {
	t.Helper()
	var mu sync.Mutex
	var lines []string
	log := funcr.New(func(prefix, args string) {
		mu.Lock()
		lines = append(lines, args)
		mu.Unlock()
	}, funcr.Options{})
	src := fakeEvents[E]{ch: make(chan E)}
	var now atomic.Int64
	now.Store(1000)
	e := &eventLog[E]{log: log, src: src, now: func() time.Time { return time.Unix(now.Load(), 0) }, line: line, perSecond: perSecond}
	done := make(chan error)
	go func() { done <- e.Start(context.Background()) }()
	for _, ev := range first {
		src.ch <- ev
	}
	// an unbuffered send: received means the events before it are
	// handled (the last of first is sent again, which perSecond drops or
	// logs alike)
	if len(first) > 0 {
		src.ch <- first[len(first)-1]
	}
	now.Add(1)
	for _, ev := range next {
		src.ch <- ev
	}
	close(src.ch)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	return lines
}

// TestL7EventsLogged: a refused request's event is logged with its
// fields; allowed ones are not; past l7EventsPerSecond in one second the
// rest are counted and said by the next line logged.
func TestL7EventsLogged(t *testing.T) {
	refused := l7.Event{Generation: 4, Egress: true, Reason: l7.ReasonDenied, Status: 403, Rule: 11, List: 7, Method: "GET", Path: "/admin",
		Host: "s", TargetLen: 6, Local: netip.MustParseAddrPort("10.0.0.3:40000"), Remote: netip.MustParseAddrPort("10.0.0.2:80")}
	first := []l7.Event{{Reason: l7.ReasonAllowed, Method: "GET", Path: "/public"}}
	for range l7EventsPerSecond + 5 {
		first = append(first, refused)
	}
	first = append(first, l7.Event{Reason: l7.ReasonAllowed})
	lines := logEvents(t, l7EventLine, l7EventsPerSecond, first, []l7.Event{refused})
	if len(lines) != l7EventsPerSecond+1 {
		t.Fatalf("%d lines, want %d: %q", len(lines), l7EventsPerSecond+1, lines)
	}
	for _, want := range []string{`"side"="egress"`, `"local"="10.0.0.3:40000"`, `"remote"="10.0.0.2:80"`, `"method"="GET"`, `"path"="/admin"`,
		`"host"="s"`, `"reason"="denied"`, `"status"=403`, `"rule"=11`, `"generation"=4`} {
		if !strings.Contains(lines[0], want) {
			t.Errorf("line %q lacks %s", lines[0], want)
		}
	}
	if strings.Contains(strings.Join(lines, "\n"), "/public") {
		t.Errorf("an allowed request was logged: %q", lines)
	}
	if last := lines[len(lines)-1]; !strings.Contains(last, `"notLogged"=5`) {
		t.Errorf("last line %q does not say 5 were not logged", last)
	}
}
