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

package agent

import (
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"

	v1 "github.com/palisade-dev/palisade/api/v1alpha1"
)

// TestNodeStatusWritesWakeNoSync: a kubelet's status writes (conditions'
// heartbeats, images, resource version) reach the agent as its cache holds
// nodes (stripNode) and wake no sync; a change of labels, addresses or pod
// CIDRs does. With a thousand nodes the kubelets write several node
// statuses a second, and each woke every agent.
func TestNodeStatusWritesWakeNoSync(t *testing.T) {
	now := metav1.Now()
	node := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: "n1", ResourceVersion: "10", Labels: map[string]string{"kubernetes.io/hostname": "n1"}},
		Spec:       corev1.NodeSpec{PodCIDR: "10.1.0.0/24", PodCIDRs: []string{"10.1.0.0/24"}},
		Status: corev1.NodeStatus{
			Addresses:  []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: "172.16.0.1"}, {Type: corev1.NodeHostName, Address: "n1"}},
			Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue, LastHeartbeatTime: now}},
		},
	}
	strip := func(n *corev1.Node) client.Object {
		o, err := stripNode(n)
		if err != nil {
			t.Fatal(err)
		}
		return o.(client.Object)
	}
	cases := []struct {
		name   string
		change func(*corev1.Node)
		wakes  bool
	}{
		{"heartbeat", func(n *corev1.Node) {
			n.Status.Conditions[0].LastHeartbeatTime = metav1.NewTime(now.Add(5 * time.Minute))
			n.Status.Images = []corev1.ContainerImage{{Names: []string{"hollow"}, SizeBytes: 1}}
		}, false},
		{"condition", func(n *corev1.Node) { n.Status.Conditions[0].Status = corev1.ConditionFalse }, false},
		{"label", func(n *corev1.Node) { n.Labels["zone"] = "b" }, true},
		{"address", func(n *corev1.Node) { n.Status.Addresses[0].Address = "172.16.0.2" }, true},
		{"second address", func(n *corev1.Node) {
			n.Status.Addresses = append(n.Status.Addresses, corev1.NodeAddress{Type: corev1.NodeExternalIP, Address: "192.0.2.1"})
		}, true},
		{"pod CIDRs", func(n *corev1.Node) { n.Spec.PodCIDRs = append(n.Spec.PodCIDRs, "fd00::/64") }, true},
	}
	for _, c := range cases {
		next := node.DeepCopy()
		next.ResourceVersion = "11"
		c.change(next)
		if got := nodeChange.Update(event.UpdateEvent{ObjectOld: strip(node), ObjectNew: strip(next)}); got != c.wakes {
			t.Errorf("%s: the node's update wakes a sync: %v, want %v", c.name, got, c.wakes)
		}
	}
}

// TestIdentityStatusWritesWakeNoSync: the manager's writes of an
// identity's status (unusedSince) wake no sync; its labels or its deletion
// do.
func TestIdentityStatusWritesWakeNoSync(t *testing.T) {
	id := &v1.Identity{ObjectMeta: metav1.ObjectMeta{Name: "300", ResourceVersion: "1"}, Spec: v1.IdentitySpec{Labels: map[string]string{"k8s:app": "web"}}}
	now := metav1.Now()
	cases := []struct {
		name   string
		change func(*v1.Identity)
		wakes  bool
	}{
		{"unused", func(i *v1.Identity) { i.Status.UnusedSince = &now }, false},
		{"labels", func(i *v1.Identity) { i.Spec.Labels = map[string]string{"k8s:app": "db"} }, true},
		{"deleted", func(i *v1.Identity) { i.DeletionTimestamp = &now }, true},
	}
	for _, c := range cases {
		next := id.DeepCopy()
		next.ResourceVersion = "2"
		c.change(next)
		if got := identityChange.Update(event.UpdateEvent{ObjectOld: id, ObjectNew: next}); got != c.wakes {
			t.Errorf("%s: the identity's update wakes a sync: %v, want %v", c.name, got, c.wakes)
		}
	}
}
