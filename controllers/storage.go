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
	return readTarGz(f, dest)
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

func readTarGz(r io.Reader, dest string) error {
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
