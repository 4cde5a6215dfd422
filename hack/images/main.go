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

// Command images assembles Palisade's manager and agent images (and, for
// the real-node story, any number of single-binary test images) from
// static binaries built beforehand, into an OCI image layout, an OCI
// archive of it for `ctr images import`, and a kustomization that points
// config/default at the images by digest. It prints each image's digest
// and size. `make images` runs it; see docs/deploy.md.
package main

import (
	"bytes"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/palisade-dev/palisade/internal/images"
)

// nonroot is the manager's user and group: distroless's "nonroot", the id
// config/manager/manager.yaml runs as.
const nonroot = 65532

type extra []string

func (e *extra) String() string     { return strings.Join(*e, ",") }
func (e *extra) Set(s string) error { *e = append(*e, s); return nil }

func main() {
	if err := run(); err != nil {
		fmt.Fprintf(os.Stderr, "images: %v\n", err)
		os.Exit(1)
	}
}

func run() error {
	var (
		out      = flag.String("out", "bin/images", "output directory: oci/ (layout), images.tar (archive), kustomization.yaml")
		registry = flag.String("registry", "ghcr.io/palisade-dev", "registry and path the images are named under")
		version  = flag.String("version", "dev", "the images' tag and version label")
		manager  = flag.String("manager", "", "manager binary (static)")
		agent    = flag.String("agent", "", "agent binary (static)")
		ca       = flag.String("ca-certificates", "/etc/ssl/certs/ca-certificates.crt", "CA bundle for the manager (Git and alert receivers over HTTPS)")
		config   = flag.String("config", "config/default", "the kustomization the generated one builds on")
		tests    extra
	)
	flag.Var(&tests, "test-image", "name=binary: a single-binary image named <registry>/<name>, run as 65532 (repeatable; the real-node story's pause and workload images)")
	flag.Parse()
	if *manager == "" || *agent == "" {
		return fmt.Errorf("-manager and -agent are required")
	}
	certs, err := os.ReadFile(*ca)
	if err != nil {
		return fmt.Errorf("CA certificates (Debian: ca-certificates): %w", err)
	}
	labels := map[string]string{
		"org.opencontainers.image.source":   "https://github.com/palisade-dev/palisade",
		"org.opencontainers.image.version":  *version,
		"org.opencontainers.image.licenses": "Apache-2.0",
	}
	passwd, group := images.Passwd(nonroot)
	user := fmt.Sprintf("%d:%d", nonroot, nonroot)
	var specs []namedSpec
	mgr, err := binary(*manager, "/manager")
	if err != nil {
		return err
	}
	specs = append(specs, namedSpec{"palisade-manager", images.Spec{
		Files: []images.File{mgr,
			{Path: "/etc/ssl/certs/ca-certificates.crt", Mode: 0o644, Data: certs},
			{Path: "/etc/passwd", Mode: 0o644, Data: passwd},
			{Path: "/etc/group", Mode: 0o644, Data: group},
			{Path: "/home/nonroot", Dir: true, Mode: 0o700, UID: nonroot, GID: nonroot},
			{Path: "/tmp", Dir: true, Mode: 0o1777},
		},
		Entrypoint: []string{"/manager"},
		User:       user,
		Env:        []string{"HOME=/home/nonroot", "SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt"},
	}})
	// The agent runs as root with added capabilities (see
	// config/agent/agent.yaml) and reaches only the API server, with the
	// service account's CA: its binary is all it needs.
	ag, err := binary(*agent, "/agent")
	if err != nil {
		return err
	}
	specs = append(specs, namedSpec{"palisade-agent", images.Spec{
		Files:      []images.File{ag},
		Entrypoint: []string{"/agent"},
		User:       "0:0",
	}})
	for _, t := range tests {
		name, bin, ok := strings.Cut(t, "=")
		if !ok || name == "" || bin == "" {
			return fmt.Errorf("-test-image %q: want name=binary", t)
		}
		f, err := binary(bin, "/"+name)
		if err != nil {
			return err
		}
		specs = append(specs, namedSpec{name, images.Spec{Files: []images.File{f}, Entrypoint: []string{"/" + name}, User: user}})
	}

	var named []images.Named
	for _, s := range specs {
		s.spec.Arch = runtime.GOARCH
		if s.spec.Labels == nil {
			s.spec.Labels = labels
		}
		img, err := images.Build(s.spec)
		if err != nil {
			return fmt.Errorf("%s: %w", s.name, err)
		}
		named = append(named, images.Named{Ref: fmt.Sprintf("%s/%s:%s", *registry, s.name, *version), Image: img})
	}
	layoutDir := filepath.Join(*out, "oci")
	if err := os.RemoveAll(layoutDir); err != nil {
		return err
	}
	if err := os.MkdirAll(*out, 0o755); err != nil {
		return err
	}
	digests, err := images.WriteLayout(layoutDir, named)
	if err != nil {
		return err
	}
	var archive bytes.Buffer
	if err := images.Archive(layoutDir, &archive); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(*out, "images.tar"), archive.Bytes(), 0o644); err != nil {
		return err
	}
	if err := writeKustomization(*out, *config, *registry, named, digests); err != nil {
		return err
	}
	for _, n := range named {
		size, unpacked, err := sizes(n.Image)
		if err != nil {
			return err
		}
		fmt.Printf("%s@%s  %s compressed, %s unpacked\n", n.Ref, digests[n.Ref], mib(size), mib(unpacked))
	}
	fmt.Printf("layout %s, archive %s, kustomization %s\n", layoutDir, filepath.Join(*out, "images.tar"), filepath.Join(*out, "kustomization.yaml"))
	return nil
}

type namedSpec struct {
	name string
	spec images.Spec
}

func binary(src, dst string) (images.File, error) {
	b, err := os.ReadFile(src)
	if err != nil {
		return images.File{}, err
	}
	return images.File{Path: dst, Mode: 0o755, Data: b}, nil
}

// writeKustomization writes out/kustomization.yaml: config at the product
// images' digests, so `kubectl apply -k <out>` installs exactly what was
// built. The test images are not in config and are left out.
func writeKustomization(out, config, registry string, named []images.Named, digests map[string]v1.Hash) error {
	// Real paths: out may be reached through a symbolic link (a bin/
	// shared between checkouts), and kustomize resolves the relative path
	// from where the file really is.
	absOut, err := realPath(out)
	if err != nil {
		return err
	}
	absConfig, err := realPath(config)
	if err != nil {
		return err
	}
	rel, err := filepath.Rel(absOut, absConfig)
	if err != nil {
		return err
	}
	var b strings.Builder
	b.WriteString("# Written by `make images`: config/default with the images just built,\n# pinned by digest. Install with `kubectl apply -k " + out + "`.\n")
	b.WriteString("apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n- " + filepath.ToSlash(rel) + "\nimages:\n")
	var refs []string
	for _, n := range named {
		refs = append(refs, n.Ref)
	}
	sort.Strings(refs)
	for _, ref := range refs {
		name, _, _ := strings.Cut(ref, ":")
		if name != registry+"/palisade-manager" && name != registry+"/palisade-agent" {
			continue
		}
		fmt.Fprintf(&b, "- name: %s\n  digest: %s\n", name, digests[ref])
	}
	return os.WriteFile(filepath.Join(out, "kustomization.yaml"), []byte(b.String()), 0o644)
}

func realPath(p string) (string, error) {
	abs, err := filepath.Abs(p)
	if err != nil {
		return "", err
	}
	return filepath.EvalSymlinks(abs)
}

// sizes returns what a registry stores (manifest, config, compressed
// layers) and what the layers hold unpacked.
func sizes(img v1.Image) (stored, unpacked int64, err error) {
	m, err := img.RawManifest()
	if err != nil {
		return 0, 0, err
	}
	c, err := img.RawConfigFile()
	if err != nil {
		return 0, 0, err
	}
	stored = int64(len(m) + len(c))
	layers, err := img.Layers()
	if err != nil {
		return 0, 0, err
	}
	for _, l := range layers {
		s, err := l.Size()
		if err != nil {
			return 0, 0, err
		}
		stored += s
		rc, err := l.Uncompressed()
		if err != nil {
			return 0, 0, err
		}
		n, err := io.Copy(io.Discard, rc)
		rc.Close()
		if err != nil {
			return 0, 0, err
		}
		unpacked += n
	}
	return stored, unpacked, nil
}

func mib(n int64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }
