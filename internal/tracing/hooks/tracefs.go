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

package hooks

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// TracefsDir is where LoadKernel finds (or mounts) tracefs.
const TracefsDir = "/sys/kernel/tracing"

// mountTracefs returns a directory where tracefs is mounted: dir when it
// already is, or after mounting it there (idempotent: a concurrent mount
// by someone else is fine).
func mountTracefs(dir string) (string, error) {
	if hasEvents(dir) {
		return dir, nil
	}
	if err := unix.Mount("tracefs", dir, "tracefs", 0, ""); err != nil && !errors.Is(err, unix.EBUSY) {
		// debugfs exposes the same files under tracing/.
		if old := "/sys/kernel/debug/tracing"; hasEvents(old) {
			return old, nil
		}
		return "", fmt.Errorf("mount tracefs at %s: %w", dir, err)
	}
	if !hasEvents(dir) {
		return "", fmt.Errorf("tracefs at %s has no events directory", dir)
	}
	return dir, nil
}

func hasEvents(dir string) bool {
	st, err := os.Stat(filepath.Join(dir, "events"))
	return err == nil && st.IsDir()
}

// field is one field of a tracepoint's record.
type field struct {
	name   string
	typ    ctype
	offset uint32
	size   uint32
}

// errNoTracepoint says the tracepoint has no format file.
var errNoTracepoint = errors.New("no such tracepoint")

// readFormat reads the fields of tracepoint subsystem/event from tracefs,
// without the common_ fields every record starts with.
func readFormat(tracefs, subsystem, event string) ([]field, error) {
	if subsystem == "" || event == "" || strings.ContainsRune(subsystem+event, '/') || subsystem[0] == '.' || event[0] == '.' {
		return nil, errNoTracepoint
	}
	f, err := os.Open(filepath.Join(tracefs, "events", subsystem, event, "format"))
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, errNoTracepoint
		}
		return nil, err
	}
	defer f.Close()
	var out []field
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if !strings.HasPrefix(line, "field:") {
			continue
		}
		fd, err := parseFieldLine(line)
		if err != nil {
			return nil, fmt.Errorf("%s/%s format: %w", subsystem, event, err)
		}
		if strings.HasPrefix(fd.name, "common_") {
			continue
		}
		out = append(out, fd)
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	return out, nil
}

// parseFieldLine parses one "field:TYPE NAME;\toffset:N;\tsize:N;\tsigned:N;"
// line of a format file.
func parseFieldLine(line string) (field, error) {
	var decl string
	var offset, size uint64
	signed := false
	for part := range strings.SplitSeq(line, ";") {
		part = strings.TrimSpace(part)
		k, v, ok := strings.Cut(part, ":")
		if !ok {
			continue
		}
		var err error
		switch k {
		case "field":
			decl = v
		case "offset":
			offset, err = strconv.ParseUint(v, 10, 32)
		case "size":
			size, err = strconv.ParseUint(v, 10, 32)
		case "signed":
			signed = v == "1"
		}
		if err != nil {
			return field{}, fmt.Errorf("field %q: %s: %w", line, k, err)
		}
	}
	if decl == "" {
		return field{}, fmt.Errorf("field %q has no declaration", line)
	}
	t, name := fromFormat(decl, uint32(size), signed)
	return field{name: name, typ: t, offset: uint32(offset), size: uint32(size)}, nil
}
