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

package policy_test

import (
	"reflect"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/palisade-dev/palisade/api/v1alpha1"
	"github.com/palisade-dev/palisade/internal/policy"
)

// TestRules: every rule list flattens into the one shape, in the order
// ingress, ingressDeny, egress, egressDeny, with its path, direction and
// action, peers that keep "omitted" apart from "empty", and deny ports
// that carry no L7 rules.
func TestRules(t *testing.T) {
	web := metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}}
	tcp80 := []v1alpha1.PortProtocol{{Port: intstr.FromInt32(80), Protocol: v1alpha1.ProtocolTCP}}
	http := &v1alpha1.L7Rules{HTTP: []v1alpha1.HTTPRule{{Method: "GET"}}}
	rs := &v1alpha1.RuleSet{
		Egress: []v1alpha1.EgressRule{{
			ToFQDNs: []v1alpha1.FQDNSelector{{MatchName: "example.com"}},
			ToPorts: []v1alpha1.PortRule{{Ports: tcp80, Rules: http}},
		}},
		Ingress: []v1alpha1.IngressRule{
			{FromEndpoints: []metav1.LabelSelector{web}},
			{FromEndpoints: []metav1.LabelSelector{}, ToPorts: []v1alpha1.PortRule{{Ports: tcp80}}},
		},
		EgressDeny:  []v1alpha1.EgressDenyRule{{ToCIDR: []v1alpha1.CIDR{"10.0.0.0/8"}, ToPorts: []v1alpha1.PortDenyRule{{Ports: tcp80}}}},
		IngressDeny: []v1alpha1.IngressDenyRule{{FromEntities: []v1alpha1.Entity{v1alpha1.EntityWorld}}},
	}
	got := policy.Rules(rs)
	want := []policy.Rule{
		{Section: "ingress", Index: 0, Path: "spec.ingress[0]", Endpoints: []metav1.LabelSelector{web}},
		{Section: "ingress", Index: 1, Path: "spec.ingress[1]", Endpoints: []metav1.LabelSelector{}, Ports: []v1alpha1.PortRule{{Ports: tcp80}}},
		{Section: "ingressDeny", Index: 0, Path: "spec.ingressDeny[0]", Deny: true, Entities: []v1alpha1.Entity{v1alpha1.EntityWorld}},
		{Section: "egress", Index: 0, Path: "spec.egress[0]", Egress: true, FQDNs: []v1alpha1.FQDNSelector{{MatchName: "example.com"}}, Ports: []v1alpha1.PortRule{{Ports: tcp80, Rules: http}}},
		{Section: "egressDeny", Index: 0, Path: "spec.egressDeny[0]", Egress: true, Deny: true, CIDRs: []v1alpha1.CIDR{"10.0.0.0/8"}, Ports: []v1alpha1.PortRule{{Ports: tcp80}}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("Rules:\n got %+v\nwant %+v", got, want)
	}

	// An empty endpoint list names a peer (and matches none); an omitted
	// one does not (and the rule matches every peer).
	if !got[1].HasPeers() {
		t.Error("fromEndpoints: [] does not count as a peer field")
	}
	if r := (policy.Rule{Ports: []v1alpha1.PortRule{{Ports: tcp80}}}); r.HasPeers() {
		t.Error("a rule with no peer field has peers")
	}
	for _, c := range []struct {
		r         policy.Rule
		dir, peer string
	}{{got[0], "ingress", "fromEndpoints"}, {got[2], "ingress", "fromEndpoints"}, {got[3], "egress", "toEndpoints"}, {got[4], "egress", "toEndpoints"}} {
		if c.r.Direction() != c.dir || c.r.PeerField("Endpoints") != c.peer {
			t.Errorf("%s: direction %q, peer field %q; want %q, %q", c.r.Path, c.r.Direction(), c.r.PeerField("Endpoints"), c.dir, c.peer)
		}
	}
	if f := got[4].PeerField("CIDRSet"); f != "toCIDRSet" {
		t.Errorf("egress CIDR set field %q", f)
	}
	if len(policy.Rules(&v1alpha1.RuleSet{})) != 0 {
		t.Error("an empty rule set has rules")
	}
}

// TestICMPType: names resolve per family, IPv4 when the family is
// omitted; numbers outside a byte and names a family lacks do not.
func TestICMPType(t *testing.T) {
	for _, c := range []struct {
		f      v1alpha1.ICMPField
		family v1alpha1.ICMPFamily
		typ    int
		ok     bool
	}{
		{v1alpha1.ICMPField{Type: intstr.FromString("EchoRequest")}, v1alpha1.ICMPFamilyIPv4, 8, true},
		{v1alpha1.ICMPField{Family: v1alpha1.ICMPFamilyIPv6, Type: intstr.FromString("EchoRequest")}, v1alpha1.ICMPFamilyIPv6, 128, true},
		{v1alpha1.ICMPField{Type: intstr.FromString("PacketTooBig")}, v1alpha1.ICMPFamilyIPv4, 0, false},
		{v1alpha1.ICMPField{Type: intstr.FromInt32(3)}, v1alpha1.ICMPFamilyIPv4, 3, true},
		{v1alpha1.ICMPField{Type: intstr.FromInt32(256)}, v1alpha1.ICMPFamilyIPv4, 256, false},
	} {
		fam, typ, ok := policy.ICMPType(c.f)
		if fam != c.family || ok != c.ok || ok && typ != c.typ {
			t.Errorf("%+v: %s %d %v, want %s %d %v", c.f, fam, typ, ok, c.family, c.typ, c.ok)
		}
	}
}
