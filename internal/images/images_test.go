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

package images

import (
	"archive/tar"
	"bytes"
	"io"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
)

func spec() Spec {
	passwd, group := Passwd(65532)
	return Spec{
		Files: []File{
			{Path: "/manager", Mode: 0o755, Data: []byte("\x7fELF binary")},
			{Path: "/etc/passwd", Mode: 0o644, Data: passwd},
			{Path: "/etc/group", Mode: 0o644, Data: group},
			{Path: "/home/nonroot", Dir: true, Mode: 0o700, UID: 65532, GID: 65532},
		},
		Entrypoint: []string{"/manager"},
		User:       "65532:65532",
		Arch:       "amd64",
	}
}

// The same files give the same digest: nothing of the build's time or
// host gets in.
func TestBuildIsReproducible(t *testing.T) {
	a, err := Build(spec())
	if err != nil {
		t.Fatal(err)
	}
	b, err := Build(spec())
	if err != nil {
		t.Fatal(err)
	}
	da, _ := a.Digest()
	db, _ := b.Digest()
	if da != db {
		t.Fatalf("two builds of the same spec: %s and %s", da, db)
	}
	s := spec()
	s.Files[0].Data = []byte("\x7fELF other binary")
	c, err := Build(s)
	if err != nil {
		t.Fatal(err)
	}
	if dc, _ := c.Digest(); dc == da {
		t.Fatal("a different binary gave the same digest")
	}
}

func TestBuildConfigAndLayer(t *testing.T) {
	img, err := Build(spec())
	if err != nil {
		t.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if cf.Config.User != "65532:65532" || cf.Config.Entrypoint[0] != "/manager" || cf.OS != "linux" || cf.Architecture != "amd64" {
		t.Errorf("config = %+v", cf.Config)
	}
	if !cf.Created.Time.Equal(epoch) {
		t.Errorf("created = %v, want the epoch", cf.Created)
	}
	m, err := img.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	if m.MediaType != "application/vnd.oci.image.manifest.v1+json" || m.Layers[0].MediaType != "application/vnd.oci.image.layer.v1.tar+gzip" {
		t.Errorf("media types: manifest %s, layer %s", m.MediaType, m.Layers[0].MediaType)
	}
	tr := tar.NewReader(mutate.Extract(img))
	var names []string
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, h.Name)
		if !h.ModTime.Equal(epoch) {
			t.Errorf("%s: mtime %v", h.Name, h.ModTime)
		}
		switch h.Name {
		case "manager":
			if h.Mode != 0o755 || h.Uid != 0 {
				t.Errorf("manager: mode %o uid %d", h.Mode, h.Uid)
			}
		case "home/nonroot":
			if h.Typeflag != tar.TypeDir || h.Uid != 65532 || h.Mode != 0o700 {
				t.Errorf("home/nonroot: type %c uid %d mode %o", h.Typeflag, h.Uid, h.Mode)
			}
		}
	}
	// Parents first, in order, added when not listed.
	want := "etc etc/group etc/passwd home home/nonroot manager"
	if got := strings.Join(names, " "); got != want {
		t.Errorf("layer entries:\n got %s\nwant %s", got, want)
	}
}

func TestBuildRejects(t *testing.T) {
	for name, mod := range map[string]func(*Spec){
		"relative path":   func(s *Spec) { s.Files[0].Path = "manager" },
		"root":            func(s *Spec) { s.Files[0].Path = "/" },
		"duplicate":       func(s *Spec) { s.Files = append(s.Files, File{Path: "/manager/"}) },
		"file as parent":  func(s *Spec) { s.Files = append(s.Files, File{Path: "/manager/x"}) },
		"no entrypoint":   func(s *Spec) { s.Entrypoint = nil },
		"no architecture": func(s *Spec) { s.Arch = "" },
	} {
		s := spec()
		mod(&s)
		if _, err := Build(s); err == nil {
			t.Errorf("%s: built", name)
		}
	}
}

// The layout names each image the way `ctr images import` and OCI tools
// read it, and the archive holds the layout.
func TestWriteLayoutAndArchive(t *testing.T) {
	img, err := Build(spec())
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "oci")
	const ref = "ghcr.io/palisade-dev/palisade-manager:test"
	digests, err := WriteLayout(dir, []Named{{Ref: ref, Image: img}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := WriteLayout(dir, nil); err == nil {
		t.Error("WriteLayout over an existing layout succeeded")
	}
	idx, err := layout.ImageIndexFromPath(dir)
	if err != nil {
		t.Fatal(err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	if len(im.Manifests) != 1 {
		t.Fatalf("index has %d manifests", len(im.Manifests))
	}
	d := im.Manifests[0]
	if d.Digest != digests[ref] || d.Annotations["io.containerd.image.name"] != ref || d.Annotations["org.opencontainers.image.ref.name"] != ref {
		t.Errorf("index entry %+v, want digest %s named %s", d, digests[ref], ref)
	}
	if d.Platform == nil || d.Platform.OS != "linux" || d.Platform.Architecture != "amd64" {
		t.Errorf("platform %+v", d.Platform)
	}
	var a1, a2 bytes.Buffer
	if err := Archive(dir, &a1); err != nil {
		t.Fatal(err)
	}
	if err := Archive(dir, &a2); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a1.Bytes(), a2.Bytes()) {
		t.Error("two archives of one layout differ")
	}
	tr := tar.NewReader(&a1)
	found := map[string]bool{}
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		found[h.Name] = true
	}
	for _, n := range []string{"oci-layout", "index.json", "blobs/sha256/" + digests[ref].Hex} {
		if !found[n] {
			t.Errorf("archive lacks %s", n)
		}
	}
}
