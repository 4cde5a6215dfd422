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
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "github.com/palisade-dev/palisade/api/v1alpha1"
	"github.com/palisade-dev/palisade/internal/testenv"
)

// kubectlPath finds the real kubectl (testenv.Kubectl).
func kubectlPath(t *testing.T) string { return testenv.Kubectl(t) }

// kubectlRunner runs kubectl against the test API server with the same
// admin credentials as the tests, through a kubeconfig file.
type kubectlRunner struct {
	t                          *testing.T
	path, kubeconfig, cacheDir string
}

func newKubectlRunner(t *testing.T, path, namespace string) *kubectlRunner {
	t.Helper()
	k := &kubectlRunner{t: t, path: path, cacheDir: t.TempDir()}
	kc := clientcmdapi.NewConfig()
	kc.Clusters["envtest"] = &clientcmdapi.Cluster{Server: testCfg.Host, CertificateAuthorityData: testCfg.CAData}
	kc.AuthInfos["admin"] = &clientcmdapi.AuthInfo{ClientCertificateData: testCfg.CertData, ClientKeyData: testCfg.KeyData, Token: testCfg.BearerToken}
	kc.Contexts["envtest"] = &clientcmdapi.Context{Cluster: "envtest", AuthInfo: "admin", Namespace: namespace}
	kc.CurrentContext = "envtest"
	k.kubeconfig = filepath.Join(t.TempDir(), "kubeconfig")
	if err := clientcmd.WriteToFile(*kc, k.kubeconfig); err != nil {
		t.Fatal(err)
	}
	return k
}

// run runs kubectl with args and returns its standard output.
func (k *kubectlRunner) run(args ...string) (string, error) {
	k.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, k.path, append([]string{"--kubeconfig", k.kubeconfig, "--cache-dir", k.cacheDir}, args...)...)
	cmd.Env = append(os.Environ(), "HOME="+k.cacheDir)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("kubectl %s: %w\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return stdout.String(), nil
}

// getPolicySets runs `kubectl get policysets` and returns its header and
// its rows, as fields.
func (k *kubectlRunner) getPolicySets() ([]string, map[string][]string) {
	k.t.Helper()
	out, err := k.run("get", "policysets")
	if err != nil {
		k.t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	rows := map[string][]string{}
	for _, l := range lines[1:] {
		f := strings.Fields(l)
		rows[f[0]] = f
	}
	return strings.Fields(lines[0]), rows
}

// TestKubectlPolicySets runs the real kubectl against the API server the
// controllers work on: `kubectl get policysets` shows READY, REVISION,
// ENFORCED and DRIFT as the PolicySet's status says, and `kubectl wait
// --for=condition=Ready` returns once the set is Ready.
func TestKubectlPolicySets(t *testing.T) {
	needEnv(t)
	path := kubectlPath(t)
	f := newPolicySetFixture(t, map[string]string{"shop/web.cue": webCUE, "shop/db.cue": dbCUE})
	k := newKubectlRunner(t, path, f.ns)
	rev := "main@sha1:" + f.co.Head().String()

	// kubectl wait, started before the set is Ready or not, returns once
	// it is.
	if out, err := k.run("wait", "--for=condition=Ready", "policyset/shop", "--timeout=120s"); err != nil {
		t.Fatal(err)
	} else if !strings.Contains(out, "policyset.palisade.dev/shop condition met") {
		t.Errorf("kubectl wait printed %q", out)
	}

	writeNode(t, nodeReport{name: "node-kubectl", sets: map[string]string{f.ns + "/shop": rev}})
	f.waitSet(rev, func(ps *v1.PolicySet) error {
		if e := ps.Status.Enforcement; e == nil || e.Summary != "1/1" {
			return fmt.Errorf("enforcement %+v", e)
		}
		return nil
	})
	header, rows := k.getPolicySets()
	if want := []string{"NAME", "READY", "REVISION", "ENFORCED", "DRIFT", "AGE"}; !slices.Equal(header, want) {
		t.Fatalf("kubectl get policysets header %v, want %v", header, want)
	}
	if got, want := rows["shop"], []string{"shop", "True", rev, "1/1", "False"}; len(got) != 6 || !slices.Equal(got[:5], want) {
		t.Errorf("kubectl get policysets row %v, want %v and an age", got, want)
	}

	// A hand edit shows in the DRIFT column (and stays until the next
	// revision).
	web := f.policies()["web"]
	web.Spec.Ingress[0].ToPorts[0].Ports[0].Port = intstr.FromInt32(8443)
	if err := k8sClient.Update(context.Background(), &web, client.FieldOwner("kubectl-edit")); err != nil {
		t.Fatal(err)
	}
	f.waitSet(rev, func(ps *v1.PolicySet) error {
		return conditionIs(ps, v1.DriftedCondition, metav1.ConditionTrue, v1.APIDriftReason)
	})
	if _, rows = k.getPolicySets(); len(rows["shop"]) < 5 || rows["shop"][4] != "True" {
		t.Errorf("after a hand edit: row %v, want DRIFT True", rows["shop"])
	}

	// A bad commit: READY False, REVISION still the applied one.
	bad := f.push("open ssh", map[string]string{"shop/web.cue": sshCUE})
	f.waitSet(bad, setReadyIs(metav1.ConditionFalse, v1.GuardDeniedReason))
	if _, rows = k.getPolicySets(); len(rows["shop"]) < 4 || rows["shop"][1] != "False" || rows["shop"][2] != rev {
		t.Errorf("after a bad commit: row %v, want READY False at %s", rows["shop"], rev)
	}
	if _, err := k.run("wait", "--for=condition=Ready", "policyset/shop", "--timeout=1s"); err == nil {
		t.Error("kubectl wait --for=condition=Ready succeeded on a set that is not Ready")
	}
}
