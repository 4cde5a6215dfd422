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

// Package guards embeds Palisade's built-in guard library: Rego packages
// under palisade.guards that every change to a PolicySet must pass, with
// their Rego tests. Embedding it means a binary always applies the guards it
// was tested with; internal/guard loads it with guard.Builtin.
package guards

import "embed"

// FS holds the library's Rego modules (*.rego) and their tests
// (*_test.rego), flat in one directory.
//
//go:embed *.rego
var FS embed.FS
