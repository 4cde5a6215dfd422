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
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
)

// Named is an image and the reference it is known by
// ("ghcr.io/palisade-dev/palisade-agent:dev").
type Named struct {
	Ref   string
	Image v1.Image
}

// refAnnotations name an image in an index: the OCI annotation, and
// containerd's, which `ctr images import` takes the image's name from.
func refAnnotations(ref string) map[string]string {
	return map[string]string{
		"org.opencontainers.image.ref.name": ref,
		"io.containerd.image.name":          ref,
	}
}

// WriteLayout writes imgs, in order, as a new OCI image layout at dir
// (which must not exist yet, so no stale blob or entry survives) and
// returns each image's manifest digest by reference.
func WriteLayout(dir string, imgs []Named) (map[string]v1.Hash, error) {
	if _, err := os.Stat(dir); err == nil {
		return nil, fmt.Errorf("layout %s exists already: remove it first", dir)
	}
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		return nil, fmt.Errorf("layout %s: %w", dir, err)
	}
	digests := map[string]v1.Hash{}
	for _, n := range imgs {
		cf, err := n.Image.ConfigFile()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", n.Ref, err)
		}
		if err := p.AppendImage(n.Image, layout.WithAnnotations(refAnnotations(n.Ref)), layout.WithPlatform(*cf.Platform())); err != nil {
			return nil, fmt.Errorf("write %s: %w", n.Ref, err)
		}
		if digests[n.Ref], err = n.Image.Digest(); err != nil {
			return nil, fmt.Errorf("%s: %w", n.Ref, err)
		}
	}
	return digests, nil
}

// Archive writes the layout at dir as a tar stream (an "OCI archive", what
// `ctr images import` reads), sorted, with epoch times.
func Archive(dir string, w io.Writer) error {
	var paths []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p != dir {
			paths = append(paths, p)
		}
		return nil
	})
	if err != nil {
		return err
	}
	sort.Strings(paths)
	tw := tar.NewWriter(w)
	for _, p := range paths {
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		h := &tar.Header{Name: filepath.ToSlash(rel), ModTime: epoch, Mode: 0o644, Format: tar.FormatPAX}
		switch {
		case fi.IsDir():
			h.Typeflag, h.Name, h.Mode = tar.TypeDir, h.Name+"/", 0o755
		case fi.Mode().IsRegular():
			h.Typeflag, h.Size = tar.TypeReg, fi.Size()
		default:
			return fmt.Errorf("%s: not a file or directory", p)
		}
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		if h.Typeflag == tar.TypeReg {
			f, err := os.Open(p)
			if err != nil {
				return err
			}
			_, err = io.Copy(tw, f)
			f.Close()
			if err != nil {
				return fmt.Errorf("archive %s: %w", p, err)
			}
		}
	}
	return tw.Close()
}
