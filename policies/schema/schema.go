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

// Package schema embeds the Palisade policy language (the CUE module
// palisade.dev/schema) so that every binary validates against the schema it
// enforces.
package schema

import "embed"

// ModulePath is the CUE module path users import the schema by.
const ModulePath = "palisade.dev/schema@v0"

// ImportPath is the CUE import path of the schema package.
const ImportPath = "palisade.dev/schema"

// Version is the version the embedded module is served as to CUE's module
// loader; a policy repository's cue.mod/module.cue may depend on it.
const Version = "v0.1.0"

// FS holds the CUE module: cue.mod/module.cue and the package's files.
//
//go:embed cue.mod/module.cue *.cue
var FS embed.FS
