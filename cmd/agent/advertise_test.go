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

package main

import (
	"net"
	"testing"
)

func TestAdvertised(t *testing.T) {
	for _, c := range []struct{ flag, bound, nodeIP, want string }{
		{"", "[::]:4245", "10.0.0.5", "10.0.0.5:4245"},
		{"", "0.0.0.0:4245", "", "127.0.0.1:4245"},
		{"", "10.1.2.3:4245", "10.0.0.5", "10.1.2.3:4245"},
		{"", "[::]:4245", "fd00::5", "[fd00::5]:4245"},
		{"agent.example:1", "[::]:4245", "10.0.0.5", "agent.example:1"},
	} {
		bound, err := net.ResolveTCPAddr("tcp", c.bound)
		if err != nil {
			t.Fatal(err)
		}
		if got := advertised(c.flag, bound, c.nodeIP); got != c.want {
			t.Errorf("advertised(%q, %s, %q) = %s, want %s", c.flag, c.bound, c.nodeIP, got, c.want)
		}
	}
}
