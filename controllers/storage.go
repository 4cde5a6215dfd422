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

package controllers

import (
	"archive/tar"
	"bufio"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"sort"
	"strings"
)

// Storage keeps source artifacts on the manager's disk: one gzipped tar per
// revision, named by commit, with a sha256 digest that consumers check
// before they trust the contents.
type Storage struct {
	// BasePath is the directory that holds every artifact.
	BasePath string
}

// artifactDir is where one source's artifacts live, relative to BasePath.
func artifactDir(kind, namespace, name string) string {
	return path.Join(strings.ToLower(kind), namespace, name)
}

// Store archives dir (without its .git) as the artifact of revision id and
// returns its path relative to BasePath, its digest and size. The archive
// is reproducible: the same tree always yields the same digest.
func (s *Storage) Store(kind, namespace, name, id, dir string) (rel, digest string, size int64, err error) {
	rel = path.Join(artifactDir(kind, namespace, name), id+".tar.gz")
	full := filepath.Join(s.BasePath, filepath.FromSlash(rel))
	if err := os.MkdirAll(filepath.Dir(full), 0o750); err != nil {
		return "", "", 0, fmt.Errorf("create artifact directory: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(full), ".tmp-*")
	if err != nil {
		return "", "", 0, fmt.Errorf("create artifact: %w", err)
	}
	defer os.Remove(tmp.Name())
	h := sha256.New()
	if err := writeTarGz(io.MultiWriter(tmp, h), dir); err != nil {
		tmp.Close()
		return "", "", 0, err
	}
	if err := tmp.Close(); err != nil {
		return "", "", 0, fmt.Errorf("write artifact: %w", err)
	}
	info, err := os.Stat(tmp.Name())
	if err != nil {
		return "", "", 0, err
	}
	if err := os.Rename(tmp.Name(), full); err != nil {
		return "", "", 0, fmt.Errorf("store artifact: %w", err)
	}
	return rel, "sha256:" + hex.EncodeToString(h.Sum(nil)), info.Size(), nil
}

// Has reports whether the artifact at rel exists with the given digest.
func (s *Storage) Has(rel, digest string) bool {
	got, err := s.digest(rel)
	return err == nil && got == digest
}

func (s *Storage) digest(rel string) (string, error) {
	f, err := os.Open(filepath.Join(s.BasePath, filepath.FromSlash(rel)))
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil)), nil
}

// GarbageCollect deletes every artifact of the source except those whose
// relative paths are in keep.
func (s *Storage) GarbageCollect(kind, namespace, name string, keep ...string) error {
	dir := filepath.Join(s.BasePath, filepath.FromSlash(artifactDir(kind, namespace, name)))
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	} else if err != nil {
		return err
	}
	kept := map[string]bool{}
	for _, k := range keep {
		kept[filepath.Base(k)] = true
		kept[filepath.Base(historyPath(k))] = true
	}
	var errs []error
	for _, e := range entries {
		if !kept[e.Name()] {
			errs = append(errs, os.RemoveAll(filepath.Join(dir, e.Name())))
		}
	}
	return errors.Join(errs...)
}

// Extract checks the artifact's digest and unpacks it into dest, which
// must be empty or absent. Entries that would land outside dest are
// refused.
func (s *Storage) Extract(rel, digest, dest string) error {
	return s.ExtractDir(rel, digest, dest, "")
}

// ExtractDir is Extract for the files under dir (slash-separated, relative
// to the archive's root; "" for all): a PolicySet reads one directory of a
// repository, and writing the rest for every set and every reconcile would
// cost as much as the repository is large. The digest still covers the
// whole archive.
func (s *Storage) ExtractDir(rel, digest, dest, dir string) error {
	f, err := os.Open(filepath.Join(s.BasePath, filepath.FromSlash(rel)))
	if err != nil {
		return fmt.Errorf("open artifact: %w", err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return fmt.Errorf("read artifact: %w", err)
	}
	if got := "sha256:" + hex.EncodeToString(h.Sum(nil)); got != digest {
		return fmt.Errorf("artifact %s: digest %s, want %s", rel, got, digest)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return err
	}
	dir = strings.Trim(path.Clean("/"+dir), "/")
	return readTarGz(f, dest, func(name string) bool {
		return dir == "" || name == dir || strings.HasPrefix(name, dir+"/")
	})
}

func writeTarGz(w io.Writer, dir string) error {
	gz := gzip.NewWriter(w)
	tw := tar.NewWriter(gz)
	var files []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		switch {
		case rel == ".":
			return nil
		case d.IsDir() && d.Name() == ".git":
			return filepath.SkipDir
		case d.IsDir():
			return nil
		case d.Type()&fs.ModeSymlink != 0:
			return fmt.Errorf("%s: symbolic links are not supported in a policy repository", filepath.ToSlash(rel))
		case !d.Type().IsRegular():
			return fmt.Errorf("%s: not a regular file", filepath.ToSlash(rel))
		}
		files = append(files, rel)
		return nil
	})
	if err != nil {
		return fmt.Errorf("archive: %w", err)
	}
	sort.Strings(files)
	for _, rel := range files {
		data, err := os.ReadFile(filepath.Join(dir, rel))
		if err != nil {
			return fmt.Errorf("archive: %w", err)
		}
		hdr := &tar.Header{Name: filepath.ToSlash(rel), Mode: 0o644, Size: int64(len(data)), Typeflag: tar.TypeReg, Format: tar.FormatPAX}
		if err := tw.WriteHeader(hdr); err != nil {
			return fmt.Errorf("archive: %w", err)
		}
		if _, err := tw.Write(data); err != nil {
			return fmt.Errorf("archive: %w", err)
		}
	}
	if err := tw.Close(); err != nil {
		return fmt.Errorf("archive: %w", err)
	}
	return gz.Close()
}

// readTarGz unpacks the regular files whose names keep accepts.
func readTarGz(r io.Reader, dest string, keep func(name string) bool) error {
	gz, err := gzip.NewReader(r)
	if err != nil {
		return fmt.Errorf("extract artifact: %w", err)
	}
	tr := tar.NewReader(gz)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		} else if err != nil {
			return fmt.Errorf("extract artifact: %w", err)
		}
		if hdr.Typeflag != tar.TypeReg {
			return fmt.Errorf("extract artifact: %s: not a regular file", hdr.Name)
		}
		if !filepath.IsLocal(filepath.FromSlash(hdr.Name)) {
			return fmt.Errorf("extract artifact: %s: path outside the archive", hdr.Name)
		}
		if !keep(path.Clean(hdr.Name)) {
			continue
		}
		p := filepath.Join(dest, filepath.FromSlash(hdr.Name))
		if err := os.MkdirAll(filepath.Dir(p), 0o750); err != nil {
			return err
		}
		f, err := os.OpenFile(p, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
		if err != nil {
			return fmt.Errorf("extract artifact: %w", err)
		}
		_, err = io.Copy(f, tr)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("extract artifact: %w", err)
		}
	}
}

// maxHistoryCommits bounds the commit history stored beside an artifact:
// 100k hashes are about 4 MiB. A revision applied longer ago than that
// cannot be told apart from a rewritten history, so it is refused like one.
const maxHistoryCommits = 100000

// historyMagic starts every history file, with its version.
const historyMagic = "palisade-history v1"

// History is the commit ancestry of an artifact's revision: the head and
// every commit reachable from it (newest first by committer time, up to
// maxHistoryCommits). A consumer reads it to tell whether a revision it
// applied before is an ancestor of the new one; when it is not, history was
// rewritten, e.g. by a force-push to older or unrelated commits.
type History struct {
	// Head is the revision's commit hash.
	Head string
	// Complete is false when the walk stopped at the bound.
	Complete bool
	// commits are the hashes, sorted for lookup.
	commits []string
}

// NewHistory returns the history of head from the reachable commits
// (head included).
func NewHistory(head string, commits []string, complete bool) *History {
	c := slices.Clone(commits)
	slices.Sort(c)
	return &History{Head: head, Complete: complete, commits: slices.Compact(c)}
}

// Contains reports whether commit is head or one of its ancestors.
func (h *History) Contains(commit string) bool {
	_, ok := slices.BinarySearch(h.commits, commit)
	return ok
}

// Len is the number of commits in the history.
func (h *History) Len() int { return len(h.commits) }

// historyPath is the history file of the artifact at rel.
func historyPath(rel string) string {
	return strings.TrimSuffix(rel, ".tar.gz") + ".history"
}

// StoreHistory writes the history of revision id beside its artifact
// (which Store writes under the same id), atomically.
func (s *Storage) StoreHistory(kind, namespace, name, id string, h *History) error {
	rel := historyPath(path.Join(artifactDir(kind, namespace, name), id+".tar.gz"))
	full := filepath.Join(s.BasePath, filepath.FromSlash(rel))
	if err := os.MkdirAll(filepath.Dir(full), 0o750); err != nil {
		return fmt.Errorf("create artifact directory: %w", err)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s %t\n", historyMagic, h.Head, h.Complete)
	for _, c := range h.commits {
		b.WriteString(c)
		b.WriteByte('\n')
	}
	tmp, err := os.CreateTemp(filepath.Dir(full), ".tmp-*")
	if err != nil {
		return fmt.Errorf("create history: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.WriteString(b.String()); err != nil {
		tmp.Close()
		return fmt.Errorf("write history: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write history: %w", err)
	}
	if err := os.Rename(tmp.Name(), full); err != nil {
		return fmt.Errorf("store history: %w", err)
	}
	return nil
}

// HasHistory reports whether the history of revision id is stored. It
// reads only the header.
func (s *Storage) HasHistory(kind, namespace, name, id string) bool {
	rel := historyPath(path.Join(artifactDir(kind, namespace, name), id+".tar.gz"))
	f, err := os.Open(filepath.Join(s.BasePath, filepath.FromSlash(rel)))
	if err != nil {
		return false
	}
	defer f.Close()
	header, err := bufio.NewReader(f).ReadString('\n')
	return err == nil && strings.HasPrefix(header, historyMagic+" "+id+" ")
}

// History reads the history stored beside the artifact at rel.
func (s *Storage) History(rel string) (*History, error) {
	data, err := os.ReadFile(filepath.Join(s.BasePath, filepath.FromSlash(historyPath(rel))))
	if err != nil {
		return nil, fmt.Errorf("read history: %w", err)
	}
	header, body, _ := strings.Cut(string(data), "\n")
	f := strings.Fields(strings.TrimPrefix(header, historyMagic))
	if !strings.HasPrefix(header, historyMagic+" ") || len(f) != 2 || (f[1] != "true" && f[1] != "false") {
		return nil, fmt.Errorf("history of %s: malformed header %q", rel, header)
	}
	h := &History{Head: f[0], Complete: f[1] == "true", commits: strings.Fields(body)}
	if !slices.IsSorted(h.commits) {
		return nil, fmt.Errorf("history of %s: commits are not sorted", rel)
	}
	return h, nil
}
