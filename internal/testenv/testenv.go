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

// Package testenv starts a real kube-apiserver and etcd (controller-runtime's
// envtest) for tests that need an API server: CRD schema validation, server
// side apply, controllers.
//
// The binaries are built from source by `make envtest-bins` (hack/tools.mk)
// into bin/k8s/<kube>-<etcd>/; nothing is downloaded at test time.
package testenv

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
)

const (
	// AssetsEnv names the directory holding kube-apiserver and etcd; it is
	// the variable envtest itself honours.
	AssetsEnv = "KUBEBUILDER_ASSETS"
	// MakeAssetsEnv is the same directory as exported by hack/tools.mk, so
	// tests run from make find the binaries without KUBEBUILDER_ASSETS.
	MakeAssetsEnv = "ENVTEST_ASSETS"

	// startTimeout replaces envtest's 20s default: a cold start on a loaded
	// 2-core CI machine can take longer.
	startTimeout = time.Minute
)

// Start runs a fresh API server and etcd for the calling test, installs the
// CRDs found in crdDirs (directories or files of YAML; a missing path is an
// error) and stops everything in t.Cleanup. It returns the admin REST config
// and a client whose scheme knows the built-in and apiextensions/v1 types.
//
// Without the binaries it calls t.Skip, telling the user to run
// `make envtest-bins`; under CI (CI=true) it fails instead, so a pipeline
// that forgot to build them cannot pass by skipping.
func Start(t testing.TB, crdDirs ...string) (*rest.Config, client.Client) {
	t.Helper()
	_, cfg, c := StartEnv(t, crdDirs...)
	return cfg, c
}

// StartEnv is Start, and also returns the environment, whose control
// plane a test may stop and start again (an API server restart).
func StartEnv(t testing.TB, crdDirs ...string) (*envtest.Environment, *rest.Config, client.Client) {
	t.Helper()

	assets, err := AssetsDir()
	if err != nil {
		msg := fmt.Sprintf("envtest binaries not found: %v; run `make envtest-bins` first", err)
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}

	env := &envtest.Environment{
		BinaryAssetsDirectory: assets,
		CRDDirectoryPaths:     crdDirs,
		ErrorIfCRDPathMissing: true,
	}
	if os.Getenv("KUBEBUILDER_CONTROLPLANE_START_TIMEOUT") == "" {
		env.ControlPlaneStartTimeout = startTimeout
	}
	cfg, err := env.Start()
	if err != nil {
		// Start can fail after launching processes (e.g. bad CRD): stop them.
		_ = env.Stop()
		t.Fatalf("starting envtest from %s: %v", assets, err)
	}
	t.Cleanup(func() {
		if err := env.Stop(); err != nil {
			t.Errorf("stopping envtest: %v", err)
		}
	})

	c, err := client.New(cfg, client.Options{Scheme: Scheme()})
	if err != nil {
		t.Fatalf("creating client: %v", err)
	}
	return env, cfg, c
}

// Scheme returns a new scheme with the client-go built-in types and
// apiextensions/v1 (CustomResourceDefinition) registered.
func Scheme() *runtime.Scheme {
	s := runtime.NewScheme()
	// Both only fail on conflicting registrations, a programming error.
	if err := clientgoscheme.AddToScheme(s); err != nil {
		panic(err)
	}
	if err := apiextensionsv1.AddToScheme(s); err != nil {
		panic(err)
	}
	return s
}

// AssetsDir returns the directory holding the kube-apiserver and etcd
// binaries: $KUBEBUILDER_ASSETS, else $ENVTEST_ASSETS, else the most recently
// built <repo root>/bin/k8s/* directory that has both.
func AssetsDir() (string, error) {
	for _, name := range []string{AssetsEnv, MakeAssetsEnv} {
		if dir := os.Getenv(name); dir != "" {
			if err := hasBinaries(dir); err != nil {
				return "", fmt.Errorf("$%s=%s: %w", name, dir, err)
			}
			return dir, nil
		}
	}

	root, err := RepoRoot()
	if err != nil {
		return "", err
	}
	dirs, err := filepath.Glob(filepath.Join(root, "bin", "k8s", "*"))
	if err != nil {
		return "", err
	}
	// Several versions may be cached after a bump; prefer the newest build.
	var best string
	var bestTime time.Time
	for _, dir := range dirs {
		if hasBinaries(dir) != nil {
			continue
		}
		info, err := os.Stat(filepath.Join(dir, "kube-apiserver"))
		if err != nil {
			continue
		}
		if best == "" || info.ModTime().After(bestTime) {
			best, bestTime = dir, info.ModTime()
		}
	}
	if best == "" {
		return "", fmt.Errorf("no kube-apiserver and etcd under %s, and $%s is unset",
			filepath.Join(root, "bin", "k8s"), AssetsEnv)
	}
	return best, nil
}

// hasBinaries reports whether dir holds executable kube-apiserver and etcd
// files (following symlinks, as the tools.mk layout uses them).
func hasBinaries(dir string) error {
	for _, name := range []string{"kube-apiserver", "etcd"} {
		info, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			return err
		}
		if !info.Mode().IsRegular() || info.Mode().Perm()&0o111 == 0 {
			return fmt.Errorf("%s is not an executable file", filepath.Join(dir, name))
		}
	}
	return nil
}

// RepoRoot returns the root of the palisade module: the nearest directory at
// or above the working directory that contains go.mod. Tests run in their
// package directory, so this finds the repository from any package.
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		} else if !errors.Is(err, fs.ErrNotExist) {
			return "", err
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod at or above the working directory")
		}
		dir = parent
	}
}

// RepoPath joins elem onto the repository root, e.g.
// RepoPath(t, "config", "crd", "bases") for Start's crdDirs.
func RepoPath(t testing.TB, elem ...string) string {
	t.Helper()
	root, err := RepoRoot()
	if err != nil {
		t.Fatalf("locating repository root: %v", err)
	}
	return filepath.Join(append([]string{root}, elem...)...)
}

// KubectlEnv names the kubectl binary tests run; make test sets it to the
// pinned build in bin/.
const KubectlEnv = "PALISADE_KUBECTL"

// Kubectl returns the real kubectl for a test: $PALISADE_KUBECTL, else the
// newest bin/kubectl-* that `make kubectl` built. Without one it skips the
// test, or fails it when $PALISADE_REQUIRE_TOOLS is 1 (make test).
func Kubectl(t testing.TB) string {
	t.Helper()
	path, err := findKubectl(t)
	if err != nil {
		msg := fmt.Sprintf("kubectl not found: %v; run `make kubectl` or set $%s", err, KubectlEnv)
		if os.Getenv("PALISADE_REQUIRE_TOOLS") == "1" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return path
}

// Tool returns the path of a program a test runs (curl, say) from $PATH.
// Without it it skips the test, or fails it when $PALISADE_REQUIRE_TOOLS
// is 1 (make test, whose test-tools target installs them).
func Tool(t testing.TB, name string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err != nil {
		msg := fmt.Sprintf("%s not found: %v; `make test-tools` installs it", name, err)
		if os.Getenv("PALISADE_REQUIRE_TOOLS") == "1" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return path
}

func findKubectl(t testing.TB) (string, error) {
	if p := os.Getenv(KubectlEnv); p != "" {
		return p, isExecutable(p)
	}
	matches, err := filepath.Glob(RepoPath(t, "bin", "kubectl-*"))
	if err != nil {
		return "", err
	}
	var best string
	var newest time.Time
	for _, m := range matches {
		if strings.HasSuffix(m, ".tmp") || isExecutable(m) != nil {
			continue // an interrupted build
		}
		if info, err := os.Stat(m); err == nil && (best == "" || info.ModTime().After(newest)) {
			best, newest = m, info.ModTime()
		}
	}
	if best == "" {
		return "", fmt.Errorf("no bin/kubectl-* and $%s is unset", KubectlEnv)
	}
	return best, nil
}

func isExecutable(path string) error {
	info, err := os.Stat(path)
	if err != nil {
		return err
	}
	if !info.Mode().IsRegular() || info.Mode().Perm()&0o111 == 0 {
		return fmt.Errorf("%s is not an executable file", path)
	}
	return nil
}
