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

// Package config tests the kustomize configuration in this directory: what
// `kubectl apply -k config/default` would create, built by the pinned kubectl
// (hack/tools.mk), and that a real kube-apiserver accepts all of it.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/palisade-dev/palisade/internal/testenv"
)

const (
	// kubectlEnv names the kubectl binary; make test sets it to
	// bin/kubectl-$(KUBE_VERSION).
	kubectlEnv = "PALISADE_KUBECTL"
	// requireToolsEnv=1 (make test) turns a missing kubectl from a skip
	// into a failure, so CI cannot pass by skipping.
	requireToolsEnv = "PALISADE_REQUIRE_TOOLS"
)

// kubectl runs the pinned kubectl binary, against kubeconfig when set.
type kubectl struct {
	path       string
	kubeconfig string
	cacheDir   string
}

// newKubectl finds kubectl (testenv.Kubectl).
func newKubectl(t *testing.T) *kubectl {
	t.Helper()
	return &kubectl{path: testenv.Kubectl(t), cacheDir: t.TempDir()}
}

// connect points k at the API server of cfg through a kubeconfig file with
// the same admin credentials.
func (k *kubectl) connect(t *testing.T, cfg *rest.Config) {
	t.Helper()
	kc := clientcmdapi.NewConfig()
	kc.Clusters["envtest"] = &clientcmdapi.Cluster{
		Server:                   cfg.Host,
		CertificateAuthorityData: cfg.CAData,
	}
	kc.AuthInfos["admin"] = &clientcmdapi.AuthInfo{
		ClientCertificateData: cfg.CertData,
		ClientKeyData:         cfg.KeyData,
		Token:                 cfg.BearerToken,
	}
	kc.Contexts["envtest"] = &clientcmdapi.Context{Cluster: "envtest", AuthInfo: "admin"}
	kc.CurrentContext = "envtest"
	k.kubeconfig = filepath.Join(t.TempDir(), "kubeconfig")
	if err := clientcmd.WriteToFile(*kc, k.kubeconfig); err != nil {
		t.Fatal(err)
	}
}

// run runs kubectl with args and stdin, returning its standard output; the
// error carries the standard error.
func (k *kubectl) run(stdin []byte, args ...string) (string, error) {
	full := []string{"--cache-dir", k.cacheDir}
	if k.kubeconfig != "" {
		full = append(full, "--kubeconfig", k.kubeconfig)
	}
	cmd := exec.Command(k.path, append(full, args...)...)
	// Only our flags choose the cluster, never the caller's environment.
	cmd.Env = append(os.Environ(), "KUBECONFIG=")
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("kubectl %s: %w\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return stdout.String(), nil
}

// build renders a kustomization of this directory, e.g. build(t, k,
// "default"), exactly as `kubectl apply -k` would, and decodes every object.
func build(t *testing.T, k *kubectl, dir string) (raw []byte, objs []*unstructured.Unstructured) {
	t.Helper()
	out, err := k.run(nil, "kustomize", testenv.RepoPath(t, "config", dir))
	if err != nil {
		t.Fatal(err)
	}
	return []byte(out), decodeAll(t, []byte(out))
}

// decodeAll decodes a stream of YAML documents.
func decodeAll(t *testing.T, data []byte) []*unstructured.Unstructured {
	t.Helper()
	var objs []*unstructured.Unstructured
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(data), 4096)
	for {
		var m map[string]any
		if err := dec.Decode(&m); err != nil {
			if errors.Is(err, io.EOF) {
				return objs
			}
			t.Fatalf("decode: %v", err)
		}
		if m != nil {
			objs = append(objs, &unstructured.Unstructured{Object: m})
		}
	}
}

// find returns the one object of kind named name, failing the test if
// there is none.
func find(t *testing.T, objs []*unstructured.Unstructured, kind, name string) *unstructured.Unstructured {
	t.Helper()
	for _, o := range objs {
		if o.GetKind() == kind && o.GetName() == name {
			return o
		}
	}
	t.Fatalf("config/default has no %s %s", kind, name)
	return nil
}

// ofKind returns the objects of kind.
func ofKind(objs []*unstructured.Unstructured, kind string) []*unstructured.Unstructured {
	var out []*unstructured.Unstructured
	for _, o := range objs {
		if o.GetKind() == kind {
			out = append(out, o)
		}
	}
	return out
}

// typed converts u into the typed object into.
func typed[T any](t *testing.T, u *unstructured.Unstructured) *T {
	t.Helper()
	into := new(T)
	if err := runtime.DefaultUnstructuredConverter.FromUnstructuredWithValidation(u.Object, into, true); err != nil {
		t.Fatalf("%s %s: %v", u.GetKind(), u.GetName(), err)
	}
	return into
}
