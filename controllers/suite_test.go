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
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	v1 "github.com/palisade-dev/palisade/api/v1alpha1"
	"github.com/palisade-dev/palisade/internal/testenv"
)

// One real kube-apiserver and etcd for the package, with the controllers
// running in a manager against it: step tests use k8sClient directly,
// integration tests watch the manager's work.
var (
	testCfg     *rest.Config
	k8sClient   client.Client
	testScheme  *runtime.Scheme
	testStorage *Storage
	envSkip     string
)

// testIdentityGrace is the identity controller's grace period in tests.
const testIdentityGrace = 2 * time.Second

func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	flag.Parse()
	// Fuzzing re-runs the binary in worker processes that the coordinator
	// kills: none may start an API server it cannot stop. Fuzz targets
	// need none.
	if f := flag.Lookup("test.fuzz"); f != nil && f.Value.String() != "" {
		envSkip = "fuzzing: no API server"
		return m.Run()
	}
	if f := flag.Lookup("test.fuzzworker"); f != nil && f.Value.String() == "true" {
		envSkip = "fuzz worker: no API server"
		return m.Run()
	}
	assets, err := testenv.AssetsDir()
	if err != nil {
		if os.Getenv("CI") == "true" {
			fmt.Fprintf(os.Stderr, "envtest binaries not found: %v; run `make envtest-bins`\n", err)
			return 1
		}
		envSkip = fmt.Sprintf("envtest binaries not found: %v; run `make envtest-bins` first", err)
		return m.Run()
	}
	root, err := testenv.RepoRoot()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	env := &envtest.Environment{
		BinaryAssetsDirectory:    assets,
		CRDDirectoryPaths:        []string{filepath.Join(root, "config", "crd", "bases")},
		ErrorIfCRDPathMissing:    true,
		ControlPlaneStartTimeout: time.Minute,
	}
	testCfg, err = env.Start()
	if err != nil {
		_ = env.Stop()
		fmt.Fprintf(os.Stderr, "start envtest: %v\n", err)
		return 1
	}
	defer env.Stop()

	testScheme = testenv.Scheme()
	if err := v1.AddToScheme(testScheme); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	k8sClient, err = client.New(testCfg, client.Options{Scheme: testScheme})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	storageDir, err := os.MkdirTemp("", "palisade-storage-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(storageDir)
	testStorage = &Storage{BasePath: storageDir}

	mgr, err := ctrl.NewManager(testCfg, ctrl.Options{
		Scheme:  testScheme,
		Metrics: metricsserver.Options{BindAddress: "0"},
		// As in cmd/manager: Secrets are read uncached (RBAC: get only).
		Client: client.Options{Cache: &client.CacheOptions{DisableFor: []client.Object{&corev1.Secret{}}}},
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if err := (&PolicyRepositoryReconciler{
		Client: mgr.GetClient(), Recorder: mgr.GetEventRecorder("policyrepository-controller"), Storage: testStorage,
	}).SetupWithManager(mgr); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if err := (&PolicySetReconciler{
		Client: mgr.GetClient(), Recorder: mgr.GetEventRecorder("policyset-controller"), Storage: testStorage,
	}).SetupWithManager(mgr); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if err := (&IdentityReconciler{
		Client:      mgr.GetClient(),
		Allocator:   &IdentityAllocator{Client: mgr.GetClient(), Reader: mgr.GetAPIReader()},
		GracePeriod: testIdentityGrace,
	}).SetupWithManager(mgr); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	code := m.Run()
	cancel()
	if err := <-done; err != nil {
		fmt.Fprintf(os.Stderr, "manager: %v\n", err)
	}
	return code
}

// needEnv skips a test when the API server could not be started here.
func needEnv(t *testing.T) {
	t.Helper()
	if envSkip != "" {
		t.Skip(envSkip)
	}
}

// newNamespace creates a namespace for one test.
func newNamespace(t *testing.T) string {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "t-"}}
	if err := k8sClient.Create(context.Background(), ns); err != nil {
		t.Fatal(err)
	}
	return ns.Name
}

// eventually polls cond until it returns nil or the deadline passes.
func eventually(t *testing.T, timeout time.Duration, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %s: %v", timeout, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
