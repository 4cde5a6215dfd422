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
	"context"
	"fmt"
	"strings"

	v1 "github.com/palisade-dev/palisade/api/v1alpha1"
	"github.com/palisade-dev/palisade/internal/capability"
)

// pending is a subsystem this version does not implement in the kernel:
// it loads nothing and reports, from the capability table, every object of
// the node that needs it. The L7, tracing and flows issues replace these
// with subsystems that load programs; the capability table then changes,
// and the reports disappear by themselves.
type pending struct {
	name      string
	cond      string
	subsystem capability.Subsystem
	// needs lists, per object that needs the subsystem, its gaps.
	needs map[objKey][]capability.Gap
}

func newPending(name, cond string, s capability.Subsystem) *pending {
	return &pending{name: name, cond: cond, subsystem: s}
}

func (p *pending) Name() string { return p.name }

// Sync finds the objects of the node that need what the subsystem does
// not enforce.
func (p *pending) Sync(_ context.Context, in *inputs) error {
	p.needs = map[objKey][]capability.Gap{}
	for _, o := range in.objects {
		if !o.concerns {
			continue
		}
		for _, g := range o.gaps {
			if g.Support().Subsystem == p.subsystem {
				p.needs[o.key] = append(p.needs[o.key], g)
			}
		}
	}
	return nil
}

// Verify has nothing to check: the subsystem loads nothing.
func (p *pending) Verify(context.Context, driftRecorder) error { return nil }

// Report states the condition and each object's gaps.
func (p *pending) Report(_ *inputs, r *report) {
	if len(p.needs) == 0 {
		r.condition(p.cond, true, v1.EnforcementSucceededReason, "no object on this node needs it")
		return
	}
	var names []string
	for _, k := range sortedKeys(p.needs) {
		gaps := p.needs[k]
		for _, g := range gaps {
			r.gap(k, gap{reason: v1.NotSupportedReason, message: g.String(), whole: g.Support().Effect == capability.NotLoaded})
		}
		if len(names) < 3 {
			names = append(names, k.String())
		}
	}
	msg := fmt.Sprintf("this version's datapath does not enforce what %d objects ask of it (%s", len(p.needs), strings.Join(names, ", "))
	if len(p.needs) > len(names) {
		msg += fmt.Sprintf(", and %d more", len(p.needs)-len(names))
	}
	r.condition(p.cond, false, v1.NotSupportedReason, msg+")")
}
