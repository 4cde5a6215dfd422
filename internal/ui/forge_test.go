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

package ui

import "testing"

func TestBrowseTemplate(t *testing.T) {
	for _, c := range []struct{ url, dir, want string }{
		{"https://github.com/acme/policies.git", "", "https://github.com/acme/policies/blob/{rev}/{file}#L{line}"},
		{"https://github.com/acme/policies", "./clusters/prod/", "https://github.com/acme/policies/blob/{rev}/clusters/prod/{file}#L{line}"},
		{"ssh://git@github.com/acme/policies.git", "", "https://github.com/acme/policies/blob/{rev}/{file}#L{line}"},
		{"ssh://git@github.com:22/acme/policies.git", "", "https://github.com/acme/policies/blob/{rev}/{file}#L{line}"},
		{"git@github.com:acme/policies.git", "", "https://github.com/acme/policies/blob/{rev}/{file}#L{line}"},
		{"https://gitlab.com/acme/net/policies.git", "p", "https://gitlab.com/acme/net/policies/-/blob/{rev}/p/{file}#L{line}"},
		{"git@codeberg.org:acme/policies.git", "", "https://codeberg.org/acme/policies/src/commit/{rev}/{file}#L{line}"},
		{"https://GitHub.com/acme/policies", "", "https://github.com/acme/policies/blob/{rev}/{file}#L{line}"},
		{"https://git.example.com/acme/policies.git", "", ""},
		{"https://github.com/acme", "", ""},
		{"file:///srv/git/policies", "", ""},
		{"http://127.0.0.1:8080/policies.git", "", ""},
	} {
		if got := BrowseTemplate(c.url, c.dir); got != c.want {
			t.Errorf("BrowseTemplate(%q, %q) = %q, want %q", c.url, c.dir, got, c.want)
		}
	}
}

func TestSourcePos(t *testing.T) {
	for s, want := range map[string]struct {
		file string
		line int
	}{"shop/api.cue:12:4": {"shop/api.cue", 12}, "c:/x.cue:3:1": {"c:/x.cue", 3}, "": {"", 0}, "x.cue": {"", 0}} {
		if f, l := sourcePos(s); f != want.file || l != want.line {
			t.Errorf("sourcePos(%q) = %q, %d", s, f, l)
		}
	}
}
