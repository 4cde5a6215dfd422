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
	"fmt"
	"maps"
	"slices"
	"strings"

	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/palisade-dev/palisade/internal/engine"
	"github.com/palisade-dev/palisade/internal/render"
)

// objectCache keeps what the agent derives from each policy object per
// object version (UID and resourceVersion): the policyObject with its
// capability gaps, the normalized policy, and whether it concerns the
// node. A sync then costs, per unchanged object, a map lookup; only new
// and changed objects are rendered and normalized. Objects are read from
// the informer's cache without a deep copy and never modified.
type objectCache struct {
	objs map[objKey]*policyObject
	// sweep marks the objects the last list saw; the others are dropped.
	sweep uint64
	// order are the keys of objs, sorted; reordered is whether a list
	// added or dropped a key, so that order must be sorted again.
	order     []objKey
	reordered bool
	asm       engine.Assembler
	// epoch counts the changes of the node's local labels (workloads and
	// the node itself), which decide whether a network policy concerns
	// the node; localKey is the last one seen.
	epoch    uint64
	localKey string
}

// object returns the policyObject of o, the one kept when o's version is
// the kept one's.
// o may be an object of the informer's cache, shared and never to be
// modified; fresh returns a copy of it of its own, kept for a new version
// (o itself may be an element of a list whose whole array a kept pointer
// would keep alive).
func (c *objectCache) object(kind string, o client.Object, fresh func() client.Object) *policyObject {
	if c.objs == nil {
		c.objs = map[objKey]*policyObject{}
	}
	k := objKey{kind: kind, namespace: o.GetNamespace(), name: o.GetName()}
	if p := c.objs[k]; p != nil && p.obj.GetUID() == o.GetUID() && o.GetResourceVersion() != "" && p.obj.GetResourceVersion() == o.GetResourceVersion() {
		p.sweep = c.sweep
		return p
	}
	if c.objs[k] == nil {
		c.reordered = true
	}
	p := newPolicyObject(kind, fresh())
	p.sweep = c.sweep
	c.objs[k] = p
	return p
}

// startList begins a list of every object; endList drops the objects it
// did not see and returns the objects listed, sorted by key.
func (c *objectCache) startList() { c.sweep++ }

func (c *objectCache) endList() []*policyObject {
	for k, p := range c.objs {
		if p.sweep != c.sweep {
			delete(c.objs, k)
			c.reordered = true
		}
	}
	if c.reordered || len(c.order) != len(c.objs) {
		c.order = slices.SortedFunc(maps.Keys(c.objs), compareKeys)
		c.reordered = false
	}
	out := make([]*policyObject, len(c.order))
	for i, k := range c.order {
		out[i] = c.objs[k]
	}
	return out
}

// normalized is the object's policy as the engine normalizes it, built
// once per object version.
func (p *policyObject) normalized() (*engine.Policy, error) {
	if !p.normDone {
		p.normDone = true
		rp, err := render.Policy(p.obj)
		if err == nil {
			if p.norm, err = engine.BuildPolicy(rp, ""); err != nil {
				err = fmt.Errorf("build policies: %w", err)
			}
		}
		p.normErr = err
	}
	return p.norm, p.normErr
}

// buildIR is buildIR over the kept normalized policies: only new and
// changed objects are normalized, and an unchanged policy is the same
// pointer as in the previous IR.
func (c *objectCache) buildIR(objs []*policyObject) (*engine.IR, error) {
	pols := make([]*engine.Policy, 0, len(objs))
	for _, o := range objs {
		if !o.network() {
			continue
		}
		p, err := o.normalized()
		if err != nil {
			return nil, err
		}
		if p != nil {
			pols = append(pols, p)
		}
	}
	return c.asm.Assemble(pols), nil
}

// localEpoch returns the epoch of the node's local labels: the labels of
// its local workloads and of the node. A network object's concerns
// computed in the same epoch still hold.
func (c *objectCache) localEpoch(local []engine.Labels, node *engine.Node) uint64 {
	keys := make([]string, 0, len(local)+1)
	for _, l := range local {
		keys = append(keys, l.String())
	}
	slices.Sort(keys)
	if node != nil {
		keys = append(keys, "node:"+engine.Labels(node.Labels).String())
	}
	if k := strings.Join(keys, "\n"); k != c.localKey || c.epoch == 0 {
		c.localKey = k
		c.epoch++
	}
	return c.epoch
}
