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

package devenv

import (
	"context"
	"errors"
	"fmt"
	"os"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/palisade-dev/palisade/internal/engine"
	"github.com/palisade-dev/palisade/internal/netlab"
)

// ReadCluster reads an endpoints file (the format of
// policies/examples/endpoints.yaml and `palisadectl explain`).
func ReadCluster(path string) (*engine.Cluster, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var c engine.Cluster
	if err := yaml.UnmarshalStrict(b, &c); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &c, nil
}

// Workload is a demo pod: a network namespace serving its ports, and its
// Pod object.
type Workload struct {
	Endpoint engine.Endpoint
	Net      *netlab.Workload
	Ports    []int
}

// ID is "namespace/name".
func (w *Workload) ID() string { return w.Endpoint.ID() }

// CreateWorkloads makes every endpoint of cluster a workload on node: a
// network namespace named prefix+index that serves TCP and UDP on the
// endpoint's ports (8080 if it declares none), and a running Pod on node
// with its labels and address. Namespaces come from cluster.Namespaces.
// The returned cleanup removes the namespaces and links (Pod objects go
// with the control plane).
func CreateWorkloads(ctx context.Context, c client.Client, node, prefix string, cluster *engine.Cluster) ([]*Workload, func() error, error) {
	var made []*Workload
	cleanup := func() error {
		var errs []error
		for _, w := range made {
			errs = append(errs, w.Net.Delete())
		}
		return errors.Join(errs...)
	}
	for name, labels := range cluster.Namespaces {
		ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}}
		if err := c.Create(ctx, ns); err != nil && !apierrors.IsAlreadyExists(err) {
			return nil, cleanup, fmt.Errorf("namespace %s: %w", name, err)
		}
	}
	for i, ep := range cluster.Endpoints {
		if len(ep.IPs) == 0 {
			continue
		}
		nw, err := netlab.Create(fmt.Sprintf("%s%d", prefix, i), ep.IPs[0])
		if err != nil {
			return nil, cleanup, fmt.Errorf("workload %s: %w", ep.ID(), err)
		}
		w := &Workload{Endpoint: ep, Net: nw}
		made = append(made, w)
		for _, p := range ep.Ports {
			w.Ports = append(w.Ports, int(p.Port))
		}
		if len(w.Ports) == 0 {
			w.Ports = []int{8080}
		}
		for _, p := range w.Ports {
			if err := nw.Serve(ctx, p); err != nil {
				return nil, cleanup, fmt.Errorf("workload %s: serve %d: %w", ep.ID(), p, err)
			}
		}
		pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ep.Namespace, Name: ep.Name, Labels: ep.Labels},
			Spec: corev1.PodSpec{NodeName: node, ServiceAccountName: ep.ServiceAccount,
				Containers: []corev1.Container{{Name: "app", Image: "netns"}}}}
		for _, p := range ep.Ports {
			pod.Spec.Containers[0].Ports = append(pod.Spec.Containers[0].Ports,
				corev1.ContainerPort{Name: p.Name, ContainerPort: int32(p.Port), Protocol: corev1.Protocol(p.Protocol.String())})
		}
		if err := c.Create(ctx, pod); err != nil {
			return nil, cleanup, fmt.Errorf("pod %s: %w", ep.ID(), err)
		}
		ip := ep.IPs[0].String()
		pod.Status = corev1.PodStatus{Phase: corev1.PodRunning, PodIP: ip, PodIPs: []corev1.PodIP{{IP: ip}}}
		if err := c.Status().Update(ctx, pod); err != nil {
			return nil, cleanup, fmt.Errorf("pod %s status: %w", ep.ID(), err)
		}
	}
	return made, cleanup, nil
}

// Node registers this machine as the Node the workloads run on.
func Node(ctx context.Context, c client.Client, name string) error {
	n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"kubernetes.io/hostname": name}}}
	if err := c.Create(ctx, n); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("node %s: %w", name, err)
	}
	return nil
}
