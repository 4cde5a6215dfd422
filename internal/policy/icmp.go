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

package policy

import (
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/palisade-dev/palisade/api/v1alpha1"
)

// icmpTypes lists the ICMP type names per family with their numbers.
var icmpTypes = map[v1alpha1.ICMPFamily]map[string]int{
	v1alpha1.ICMPFamilyIPv4: {
		"EchoReply": 0, "DestinationUnreachable": 3, "Redirect": 5, "EchoRequest": 8,
		"RouterAdvertisement": 9, "RouterSelection": 10, "TimeExceeded": 11, "ParameterProblem": 12,
		"Timestamp": 13, "TimestampReply": 14, "Photuris": 40, "ExtendedEchoRequest": 42, "ExtendedEchoReply": 43,
	},
	v1alpha1.ICMPFamilyIPv6: {
		"DestinationUnreachable": 1, "PacketTooBig": 2, "TimeExceeded": 3, "ParameterProblem": 4,
		"EchoRequest": 128, "EchoReply": 129, "MulticastListenerQuery": 130, "MulticastListenerReport": 131,
		"MulticastListenerDone": 132, "RouterSolicitation": 133, "RouterAdvertisement": 134,
		"NeighborSolicitation": 135, "NeighborAdvertisement": 136, "Redirect": 137,
		"ExtendedEchoRequest": 160, "ExtendedEchoReply": 161,
	},
}

// ICMPType returns the number of an ICMP field's type and its family
// (IPv4 when omitted); ok is false for a name the family does not define
// or a number outside 0..255.
func ICMPType(f v1alpha1.ICMPField) (family v1alpha1.ICMPFamily, typ int, ok bool) {
	family = f.Family
	if family == "" {
		family = v1alpha1.ICMPFamilyIPv4
	}
	if f.Type.Type == intstr.String {
		typ, ok = icmpTypes[family][f.Type.StrVal]
		return family, typ, ok
	}
	return family, f.Type.IntValue(), f.Type.IntValue() >= 0 && f.Type.IntValue() <= 255
}
