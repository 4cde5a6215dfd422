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
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// TestStorageExtractDir extracts one directory of an artifact: its files
// and nothing else, with the whole archive's digest checked.
func TestStorageExtractDir(t *testing.T) {
	src := t.TempDir()
	for _, f := range []string{"shop/web.cue", "shop/sub/db.cue", "shop2/other.cue", "README.md", "shopfile"} {
		p := filepath.Join(src, filepath.FromSlash(f))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(f), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	st := &Storage{BasePath: t.TempDir()}
	rel, digest, _, err := st.Store("PolicyRepository", "ns", "r", "c1", src)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		dir  string
		want []string
	}{
		{dir: "shop", want: []string{"shop/sub/db.cue", "shop/web.cue"}},
		{dir: "./shop/", want: []string{"shop/sub/db.cue", "shop/web.cue"}},
		{dir: "shop/sub", want: []string{"shop/sub/db.cue"}},
		{dir: "", want: []string{"README.md", "shop/sub/db.cue", "shop/web.cue", "shop2/other.cue", "shopfile"}},
		{dir: "missing"},
	} {
		dest := filepath.Join(t.TempDir(), "out")
		if err := st.ExtractDir(rel, digest, dest, tc.dir); err != nil {
			t.Fatalf("%q: %v", tc.dir, err)
		}
		var got []string
		_ = filepath.WalkDir(dest, func(p string, d fs.DirEntry, err error) error {
			if err == nil && !d.IsDir() {
				r, _ := filepath.Rel(dest, p)
				got = append(got, filepath.ToSlash(r))
			}
			return nil
		})
		slices.Sort(got)
		if !slices.Equal(got, tc.want) {
			t.Errorf("ExtractDir %q: %v, want %v", tc.dir, got, tc.want)
		}
	}
	if err := st.ExtractDir(rel, "sha256:00", t.TempDir(), "shop"); err == nil {
		t.Error("a wrong digest extracted")
	}
}

// TestStorageHistory stores a history and reads it back.
func TestStorageHistory(t *testing.T) {
	st := &Storage{BasePath: t.TempDir()}
	h := NewHistory("c3", []string{"c3", "c1", "c2", "c1"}, false)
	if err := st.StoreHistory("PolicyRepository", "ns", "r", "c3", h); err != nil {
		t.Fatal(err)
	}
	if !st.HasHistory("PolicyRepository", "ns", "r", "c3") || st.HasHistory("PolicyRepository", "ns", "r", "c2") {
		t.Error("HasHistory")
	}
	got, err := st.History("policyrepository/ns/r/c3.tar.gz")
	if err != nil {
		t.Fatal(err)
	}
	if got.Head != "c3" || got.Complete || got.Len() != 3 || !got.Contains("c1") || got.Contains("c4") {
		t.Errorf("history %+v", got)
	}
	if _, err := st.History("policyrepository/ns/r/c2.tar.gz"); err == nil {
		t.Error("a missing history read")
	}
}
