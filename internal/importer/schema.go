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

package importer

import (
	"fmt"
	"strings"

	"cuelang.org/go/cue"
	"cuelang.org/go/cue/cuecontext"
	"cuelang.org/go/cue/errors"
	"cuelang.org/go/cue/load"

	"github.com/palisade-dev/palisade/policies/schema"
)

// schemaKinds compiles the embedded schema and returns #Kinds, the map
// from kind to definition that every emitted object must satisfy. The
// importer checks against the very schema the binary enforces, so it can
// never emit CUE that palisadectl validate would refuse on schema grounds.
func schemaKinds(ctx *cue.Context) (cue.Value, error) {
	insts := load.Instances([]string{"."}, &load.Config{
		FS:         schema.FS,
		Dir:        "/",
		FromFSPath: func(p string) string { return "schema:" + p },
	})
	if len(insts) != 1 {
		return cue.Value{}, fmt.Errorf("load embedded schema: %d instances", len(insts))
	}
	if err := insts[0].Err; err != nil {
		return cue.Value{}, fmt.Errorf("load embedded schema: %w", err)
	}
	v := ctx.BuildInstance(insts[0])
	if err := v.Err(); err != nil {
		return cue.Value{}, fmt.Errorf("build embedded schema: %w", err)
	}
	k := v.LookupPath(cue.MakePath(cue.Def("Kinds")))
	if !k.Exists() {
		return cue.Value{}, fmt.Errorf("embedded schema has no #Kinds")
	}
	return k, nil
}

func newContext() *cue.Context { return cuecontext.New() }

// check unifies one emitted object with its kind's definition and reports,
// at the source position of the offending value, everything the schema
// refuses. An emitted object that does not validate is either a source
// value out of the schema's range (a port above 65535, a label value with a
// space) or a bug in the importer; either way it is not emitted.
func (im *Importer) check(t *tr, kind string, o *val) {
	def := im.kinds.LookupPath(cue.MakePath(cue.Str(kind)))
	if !def.Exists() {
		t.fail(nil, "", "importer bug: kind %q is not in the schema", kind)
		return
	}
	v := im.ctx.BuildExpr(o.expr())
	if err := v.Err(); err != nil {
		t.fail(nil, "", "importer bug: emitted CUE does not compile: %v", err)
		return
	}
	u := def.Unify(v)
	err := u.Validate(cue.Concrete(true), cue.Final())
	if err == nil {
		return
	}
	seen := map[string]bool{}
	for _, e := range errors.Errors(err) {
		path := e.Path()
		// Paths start at the definition the object was unified with.
		if len(path) >= 2 && path[0] == "#Kinds" && path[1] == kind {
			path = path[2:]
		}
		at := o.lookup(path)
		format, args := e.Msg()
		msg := fmt.Sprintf(format, args...)
		p := strings.Join(path, ".")
		key := p + "\x00" + msg
		if seen[key] {
			continue
		}
		seen[key] = true
		t.reportAt("PAL902", at.pos, at.path, "the translated value does not fit the Palisade schema at %s: %s", p, msg)
	}
}
