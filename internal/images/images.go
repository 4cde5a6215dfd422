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

// Package images builds Palisade's container images without a container
// engine: one layer holding static binaries and the few files they need,
// on no base image (nothing is pulled), written as an OCI image layout.
//
// The build is reproducible: every timestamp is the Unix epoch, entries are
// sorted, owners are numeric, and the config carries no build host or time,
// so the same files give the same digests (the Go binaries themselves must
// be built reproducibly: -trimpath, no VCS stamp).
package images

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"path"
	"sort"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// epoch is every timestamp in an image: the config's and each file's.
var epoch = time.Unix(0, 0).UTC()

// File is a regular file or a directory of an image's layer.
type File struct {
	// Path is absolute within the image ("/manager").
	Path string
	// Mode holds the permission bits (0o755); directories get the
	// directory bit from Dir.
	Mode int64
	// UID and GID own the file (numeric only: the image has no name
	// service to resolve names at build time).
	UID, GID int
	// Dir makes a directory; Data is then ignored.
	Dir bool
	// Data is the file's content.
	Data []byte
}

// Spec describes one image.
type Spec struct {
	// Files are the layer's files; parent directories are added (0755,
	// root) when not listed.
	Files []File
	// Entrypoint is the command the container runs.
	Entrypoint []string
	// User is "uid:gid", numeric, so Kubernetes' runAsNonRoot can verify
	// it without a passwd lookup.
	User string
	// Env is the process environment ("KEY=value").
	Env []string
	// Labels are the config's OCI labels.
	Labels map[string]string
	// Arch is the GOARCH of the binaries ("amd64").
	Arch string
}

// Build assembles the image of s: one gzip layer, OCI media types.
func Build(s Spec) (v1.Image, error) {
	if len(s.Entrypoint) == 0 {
		return nil, fmt.Errorf("image has no entrypoint")
	}
	if s.Arch == "" {
		return nil, fmt.Errorf("image has no architecture")
	}
	layerTar, err := Layer(s.Files)
	if err != nil {
		return nil, err
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(layerTar)), nil
	}, tarball.WithMediaType(types.OCILayer))
	if err != nil {
		return nil, fmt.Errorf("layer: %w", err)
	}
	base := mutate.ConfigMediaType(mutate.MediaType(empty.Image, types.OCIManifestSchema1), types.OCIConfigJSON)
	img, err := mutate.Append(base, mutate.Addendum{
		Layer:     layer,
		MediaType: types.OCILayer,
		History:   v1.History{Created: v1.Time{Time: epoch}, CreatedBy: "palisade images"},
	})
	if err != nil {
		return nil, fmt.Errorf("append layer: %w", err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.Architecture, cf.OS = s.Arch, "linux"
	cf.Created = v1.Time{Time: epoch}
	cf.Config = v1.Config{
		Entrypoint: s.Entrypoint,
		User:       s.User,
		Env:        s.Env,
		Labels:     s.Labels,
		WorkingDir: "/",
	}
	return mutate.ConfigFile(img, cf)
}

// Layer returns the uncompressed tar of files, with their parent
// directories, sorted by path, every header's time the epoch.
func Layer(files []File) ([]byte, error) {
	byPath := map[string]File{}
	for _, f := range files {
		p := path.Clean(f.Path)
		if !path.IsAbs(f.Path) || p == "/" {
			return nil, fmt.Errorf("file %q: want an absolute path below /", f.Path)
		}
		if _, dup := byPath[p]; dup {
			return nil, fmt.Errorf("file %q listed twice", p)
		}
		f.Path = p
		byPath[p] = f
	}
	for p := range byPath {
		for d := path.Dir(p); d != "/"; d = path.Dir(d) {
			if _, ok := byPath[d]; !ok {
				byPath[d] = File{Path: d, Dir: true, Mode: 0o755}
			} else if !byPath[d].Dir {
				return nil, fmt.Errorf("file %q: parent %q is a file", p, d)
			}
		}
	}
	paths := make([]string, 0, len(byPath))
	for p := range byPath {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, p := range paths {
		f := byPath[p]
		h := &tar.Header{
			Name:    strings.TrimPrefix(p, "/"),
			Mode:    f.Mode,
			Uid:     f.UID,
			Gid:     f.GID,
			ModTime: epoch,
			Format:  tar.FormatPAX,
		}
		if f.Dir {
			h.Typeflag, h.Name = tar.TypeDir, h.Name+"/"
		} else {
			h.Typeflag, h.Size = tar.TypeReg, int64(len(f.Data))
		}
		if err := tw.WriteHeader(h); err != nil {
			return nil, fmt.Errorf("tar %s: %w", p, err)
		}
		if !f.Dir {
			if _, err := tw.Write(f.Data); err != nil {
				return nil, fmt.Errorf("tar %s: %w", p, err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// Passwd returns /etc/passwd and /etc/group naming root and one
// unprivileged user, nonroot (uid = gid = id), for tools that look names up.
func Passwd(id int) (passwd, group []byte) {
	passwd = fmt.Appendf(nil, "root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:%d:%d:nonroot:/home/nonroot:/sbin/nologin\n", id, id)
	group = fmt.Appendf(nil, "root:x:0:\nnonroot:x:%d:\n", id)
	return passwd, group
}
