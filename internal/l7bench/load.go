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

package l7bench

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"sync"
	"syscall"
	"time"
)

// Conn is a keep-alive HTTP/1.1 client connection that sends one fixed
// request at a time and reads its answer. It parses only what it needs
// (status, Content-Length, Connection: close), so that the load
// generator, which shares the machine with the server, costs little.
type Conn struct {
	c   net.Conn
	br  *bufio.Reader
	req []byte
}

// NewConn wraps an open connection that will send req.
func NewConn(c net.Conn, req string) *Conn {
	return &Conn{c: c, br: bufio.NewReaderSize(c, 4096), req: []byte(req)}
}

// Close closes the connection.
func (c *Conn) Close() error { return c.c.Close() }

// ErrClosed says the server answered with Connection: close.
var ErrClosed = errors.New("the server closed the connection")

var (
	contentLength = []byte("content-length:")
	connClose     = []byte("connection: close")
)

// Do sends the request and reads one answer (a Content-Length body),
// returning its status. After an answer that closes the connection, the
// status is returned with ErrClosed.
func (c *Conn) Do() (int, error) {
	if _, err := c.c.Write(c.req); err != nil {
		return 0, fmt.Errorf("write request: %w", err)
	}
	line, err := c.br.ReadSlice('\n')
	if err != nil {
		return 0, fmt.Errorf("read status line: %w", err)
	}
	if len(line) < 12 || !bytes.HasPrefix(line, []byte("HTTP/1.")) {
		return 0, fmt.Errorf("status line %q", line)
	}
	status, err := strconv.Atoi(string(line[9:12]))
	if err != nil {
		return 0, fmt.Errorf("status line %q: %w", line, err)
	}
	length, closing := 0, false
	for {
		line, err = c.br.ReadSlice('\n')
		if err != nil {
			return 0, fmt.Errorf("read header: %w", err)
		}
		if len(line) <= 2 {
			break
		}
		lower := bytes.ToLower(line)
		if v, ok := bytes.CutPrefix(lower, contentLength); ok {
			if length, err = strconv.Atoi(string(bytes.TrimSpace(v))); err != nil {
				return 0, fmt.Errorf("content-length %q: %w", line, err)
			}
		}
		if bytes.HasPrefix(lower, connClose) {
			closing = true
		}
	}
	if _, err := c.br.Discard(length); err != nil {
		return 0, fmt.Errorf("read body: %w", err)
	}
	if closing {
		return status, ErrClosed
	}
	return status, nil
}

// Saturation is the outcome of Saturate.
type Saturation struct {
	Conns int
	// Requests were completed in the window.
	Requests int
	Window   time.Duration
	// Total requests were completed from the first dial to the end, and
	// the process used CPU (user and system time, which includes the
	// network stack's and the BPF programs' work done in its context)
	// meanwhile: when the client and the server are this process,
	// CPU/Total is the cost of a request on the path, which the machine's
	// other load changes much less than the rate.
	Total int
	CPU   time.Duration
}

// CPUPerRequest is the process's CPU time per request.
func (s Saturation) CPUPerRequest() time.Duration {
	if s.Total == 0 {
		return 0
	}
	return s.CPU / time.Duration(s.Total)
}

// processCPU is the process's user and system time so far.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// PerSecond is requests per second over the window.
func (s Saturation) PerSecond() float64 { return float64(s.Requests) / s.Window.Seconds() }

// Saturate opens conns connections with dial and has each send req back
// to back: requests completed in the window [warm, warm+window) from the
// start are counted. Every answer must be 200 on a kept-alive connection.
func Saturate(dial func() (net.Conn, error), req string, conns int, warm, window time.Duration) (Saturation, error) {
	cpu0 := processCPU()
	cs := make([]*Conn, 0, conns)
	defer func() {
		for _, c := range cs {
			c.Close()
		}
	}()
	for range conns {
		nc, err := dial()
		if err != nil {
			return Saturation{}, fmt.Errorf("dial: %w", err)
		}
		cs = append(cs, NewConn(nc, req))
	}
	start := time.Now()
	from, to := start.Add(warm), start.Add(warm+window)
	counts, totals := make([]int, conns), make([]int, conns)
	errs := make([]error, conns)
	var wg sync.WaitGroup
	for i, c := range cs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				status, err := c.Do()
				if err == nil && status != 200 {
					err = fmt.Errorf("status %d", status)
				}
				if err != nil {
					errs[i] = fmt.Errorf("connection %d after %d requests: %w", i, counts[i], err)
					return
				}
				totals[i]++
				now := time.Now()
				if !now.Before(to) {
					return
				}
				if !now.Before(from) {
					counts[i]++
				}
			}
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return Saturation{}, err
	}
	s := Saturation{Conns: conns, Window: window, CPU: processCPU() - cpu0}
	for i := range counts {
		s.Requests += counts[i]
		s.Total += totals[i]
	}
	return s, nil
}

// Latencies sends req warm times and then n times, one at a time on c,
// and returns the n round trips, sorted. Every answer must be 200.
func Latencies(c *Conn, warm, n int) ([]time.Duration, error) {
	out := make([]time.Duration, 0, n)
	for i := 0; i < warm+n; i++ {
		t0 := time.Now()
		status, err := c.Do()
		rtt := time.Since(t0)
		if err == nil && status != 200 {
			err = fmt.Errorf("status %d", status)
		}
		if err != nil {
			return nil, fmt.Errorf("request %d: %w", i, err)
		}
		if i >= warm {
			out = append(out, rtt)
		}
	}
	slices.Sort(out)
	return out, nil
}

// Percentile returns the p-th percentile (0 < p ≤ 100) of sorted
// durations, by the nearest-rank method.
func Percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	rank := int(float64(len(sorted))*p/100+0.999999) - 1
	return sorted[min(max(rank, 0), len(sorted)-1)]
}
