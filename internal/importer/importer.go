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
	"bytes"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"
	"sync"

	"cuelang.org/go/cue"
	"go.yaml.in/yaml/v3"

	"github.com/palisade-dev/palisade/internal/diag"
)

// APIVersion is the apiVersion of every object the importer emits.
const APIVersion = "palisade.dev/v1alpha1"

// Palisade kinds the importer emits.
const (
	KindNetworkPolicy        = "NetworkPolicy"
	KindClusterNetworkPolicy = "ClusterNetworkPolicy"
	KindTracingPolicy        = "TracingPolicy"
	KindClusterTracingPolicy = "ClusterTracingPolicy"
)

// Status says what became of one source document.
type Status string

const (
	// Imported: every Palisade object the document translates to was
	// emitted and validates against the schema; warnings may say what was
	// left out without widening the policy.
	Imported Status = "imported"
	// Rejected: nothing was emitted for the document; at least one
	// positioned error says why.
	Rejected Status = "rejected"
)

// Source identifies a source document.
type Source struct {
	// File is the input file, as given.
	File string `json:"file"`
	// Index counts the YAML documents of the file from 0.
	Index int `json:"index"`
	// APIVersion and Kind as written (empty when missing).
	APIVersion string `json:"apiVersion,omitempty"`
	Kind       string `json:"kind,omitempty"`
	// Namespace and Name from metadata (empty when missing).
	Namespace string `json:"namespace,omitempty"`
	Name      string `json:"name,omitempty"`
	// Pos is where the document starts.
	Pos diag.Pos `json:"pos"`
}

// ID names the source as kind/namespace/name.
func (s Source) ID() string { return s.Kind + "/" + s.Namespace + "/" + s.Name }

// Object is the import of one source document.
type Object struct {
	// Source is the document.
	Source Source `json:"source"`
	// Policy says whether the document is of a policy kind the importer
	// translates; a Deployment or an Envoy configuration is not, and is
	// always rejected with a reason.
	Policy bool `json:"policy"`
	// Status says whether it was imported.
	Status Status `json:"status"`
	// Emitted are the Palisade objects it translates to: one, or one per
	// rule of a Cilium "specs" list. Empty when rejected.
	Emitted []*Policy `json:"emitted,omitempty"`
	// Diagnostics are the findings about this document.
	Diagnostics diag.List `json:"diagnostics,omitempty"`
}

// Policy is one emitted Palisade object.
type Policy struct {
	// Kind, Namespace and Name of the Palisade object.
	Kind      string `json:"kind"`
	Namespace string `json:"namespace,omitempty"`
	Name      string `json:"name"`
	// Field is the top-level CUE field the object is written under, e.g.
	// networkPolicy: "prod/l3-rule".
	Field string `json:"field"`
	// Key is the label under Field: "namespace/name", or "name" when the
	// object has no namespace.
	Key string `json:"key"`

	value *val
	// rulePath is the source path of the rule it came from ("spec",
	// "specs[1]"), to attach the right diagnostics as comments.
	rulePath string
}

// FileResult is the import of one input file.
type FileResult struct {
	// File is the input file, as given.
	File string `json:"file"`
	// Objects are its documents in order (empty documents left out).
	Objects []*Object `json:"objects"`
	// Diagnostics are findings about the file itself (YAML syntax).
	Diagnostics diag.List `json:"diagnostics,omitempty"`
}

// All returns every diagnostic of the file, sorted.
func (r *FileResult) All() diag.List {
	l := append(diag.List{}, r.Diagnostics...)
	for _, o := range r.Objects {
		l = append(l, o.Diagnostics...)
	}
	return l.Sort()
}

// Failed reports whether anything in the file was not imported.
func (r *FileResult) Failed() bool {
	if r.Diagnostics.HasErrors() {
		return true
	}
	for _, o := range r.Objects {
		if o.Status != Imported {
			return true
		}
	}
	return false
}

// Importer translates Cilium, Kubernetes and Tetragon policy YAML into
// Palisade objects and checks each against the embedded schema. It is safe
// for concurrent use; files are imported one at a time because a CUE
// context is not.
type Importer struct {
	mu    sync.Mutex
	ctx   *cue.Context
	kinds cue.Value
}

// New compiles the embedded schema once for all the files to import.
func New() (*Importer, error) {
	ctx := newContext()
	k, err := schemaKinds(ctx)
	if err != nil {
		return nil, err
	}
	return &Importer{ctx: ctx, kinds: k}, nil
}

// File imports the YAML documents of one file. It never fails as a whole:
// what is wrong with the input is in the result's diagnostics.
func (im *Importer) File(name string, data []byte) *FileResult {
	im.mu.Lock()
	defer im.mu.Unlock()
	res := &FileResult{File: name}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	for i := 0; ; i++ {
		var doc yaml.Node
		err := dec.Decode(&doc)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			res.Diagnostics = append(res.Diagnostics, yamlError(name, err))
			break
		}
		n := deref(&doc)
		if isNull(n) {
			continue // an empty document, e.g. after a trailing "---"
		}
		res.Objects = append(res.Objects, im.document(name, i, n))
	}
	MarkDuplicates(res)
	return res
}

var yamlLine = regexp.MustCompile(`line (\d+)`)

// yamlError turns a YAML decoding error into a positioned diagnostic.
func yamlError(file string, err error) diag.Diagnostic {
	pos := diag.Pos{File: file}
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	if m := yamlLine.FindStringSubmatchIndex(msg); m != nil {
		pos.Line, _ = strconv.Atoi(msg[m[2]:m[3]])
		if m[0] == 0 {
			msg = strings.TrimPrefix(msg[m[1]:], ": ")
		}
	}
	return diag.New("PAL904", pos, "%s", msg)
}

// kindTranslator translates a document of one source kind.
type kindTranslator func(im *Importer, t *tr, doc *yaml.Node, src Source) []*Policy

// sourceKinds lists the kinds the importer translates, by apiVersion and
// kind; a kind listed here with another apiVersion is refused, because its
// fields may mean something else.
var sourceKinds = map[string]struct {
	apiVersion string
	translate  kindTranslator
}{
	"CiliumNetworkPolicy":            {"cilium.io/v2", (*Importer).cilium},
	"CiliumClusterwideNetworkPolicy": {"cilium.io/v2", (*Importer).cilium},
	"NetworkPolicy":                  {"networking.k8s.io/v1", (*Importer).kubernetes},
	"TracingPolicy":                  {"cilium.io/v1alpha1", (*Importer).tetragon},
	"TracingPolicyNamespaced":        {"cilium.io/v1alpha1", (*Importer).tetragon},
}

// notPolicies says why some well-known kinds are not imported.
var notPolicies = map[string]string{
	"CiliumClusterwideEnvoyConfig": "an Envoy proxy configuration has no Palisade equivalent (Palisade enforces L7 rules in the kernel and runs no proxy)",
	"CiliumEnvoyConfig":            "an Envoy proxy configuration has no Palisade equivalent (Palisade enforces L7 rules in the kernel and runs no proxy)",
	"CiliumCIDRGroup":              "CIDR groups have no Palisade equivalent; write the CIDRs into the policies that use them",
	"CiliumLocalRedirectPolicy":    "local redirect policies steer traffic and have no Palisade equivalent",
	"CiliumEgressGatewayPolicy":    "egress gateway policies route traffic and have no Palisade equivalent",
}

// document imports one YAML document.
func (im *Importer) document(file string, index int, n *yaml.Node) *Object {
	src := Source{File: file, Index: index, Pos: diag.Pos{File: file, Line: n.Line, Column: n.Column}}
	o := &Object{Source: src, Status: Rejected}
	t := &tr{file: file}
	defer func() {
		o.Diagnostics = t.diags.Sort()
	}()
	if n.Kind != yaml.MappingNode {
		t.fail(n, "", "document is %s, not a Kubernetes object", describe(n))
		return o
	}
	head := readHeader(n)
	o.Source.APIVersion, o.Source.Kind = head.apiVersion, head.kind
	o.Source.Namespace, o.Source.Name = head.namespace, head.name
	t.object = o.Source.ID()
	sk, known := sourceKinds[head.kind]
	if strings.HasPrefix(head.apiVersion, "palisade.dev/") {
		known = false
	}
	switch {
	case head.kind == "":
		t.fail(n, "", "document has no kind, so it is not a Kubernetes object the importer can translate")
		return o
	case !known:
		why, ok := notPolicies[head.kind]
		if !ok {
			why = "it is not a network or tracing policy"
			if strings.HasPrefix(head.apiVersion, "palisade.dev/") {
				why = "it is already a Palisade object; write it in CUE as it is"
			}
		}
		t.fail(head.kindNode, "kind", "%s %q (apiVersion %q) is not imported: %s", head.kind, head.name, head.apiVersion, why)
		return o
	}
	o.Policy = true
	if head.apiVersion != sk.apiVersion {
		at := head.apiVersionNode
		if at == nil {
			at = n
		}
		t.fail(at, "apiVersion", "%s with apiVersion %q is not imported: the importer translates %s only", head.kind, head.apiVersion, sk.apiVersion)
		return o
	}
	policies := sk.translate(im, t, n, o.Source)
	if t.failed() {
		return o
	}
	for _, p := range policies {
		im.check(t, p.Kind, p.value)
	}
	if t.failed() {
		return o
	}
	o.Status = Imported
	o.Emitted = policies
	return o
}

// header is what identifies a document.
type header struct {
	apiVersion, kind, namespace, name string
	apiVersionNode, kindNode          *yaml.Node
}

// readHeader reads apiVersion, kind and metadata without reporting
// anything: the translators report what is wrong with them.
func readHeader(n *yaml.Node) header {
	var h header
	scalar := func(v *yaml.Node) string {
		v = deref(v)
		if v != nil && v.Kind == yaml.ScalarNode && v.Tag != "!!null" {
			return v.Value
		}
		return ""
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := deref(n.Content[i]), deref(n.Content[i+1])
		switch k.Value {
		case "apiVersion", "apiversion":
			if h.apiVersionNode == nil {
				h.apiVersion, h.apiVersionNode = scalar(v), v
			}
		case "kind":
			h.kind, h.kindNode = scalar(v), v
		case "metadata":
			if v == nil || v.Kind != yaml.MappingNode {
				continue
			}
			for j := 0; j+1 < len(v.Content); j += 2 {
				switch deref(v.Content[j]).Value {
				case "name":
					h.name = scalar(v.Content[j+1])
				case "namespace":
					h.namespace = scalar(v.Content[j+1])
				}
			}
		}
	}
	return h
}

// fieldNames maps a Palisade kind to the top-level CUE field its objects
// are written under.
var fieldNames = map[string]string{
	KindNetworkPolicy:        "networkPolicy",
	KindClusterNetworkPolicy: "clusterNetworkPolicy",
	KindTracingPolicy:        "tracingPolicy",
	KindClusterTracingPolicy: "clusterTracingPolicy",
}

// newPolicy wraps an emitted object.
func newPolicy(kind, namespace, name, rulePath string, v *val) *Policy {
	key := name
	if namespace != "" {
		key = namespace + "/" + name
	}
	return &Policy{Kind: kind, Namespace: namespace, Name: name, Field: fieldNames[kind], Key: key, value: v, rulePath: rulePath}
}

// MarkDuplicates rejects every object that would be written under the same
// CUE field as an earlier one, across all the given files: CUE would
// unify the two into one conflicting value, and Kubernetes would let the
// later silently replace the earlier. The first one wins.
func MarkDuplicates(results ...*FileResult) {
	seen := map[string]Source{}
	for _, r := range results {
		for _, o := range r.Objects {
			if o.Status != Imported {
				continue
			}
			for _, p := range o.Emitted {
				id := p.Field + "/" + p.Key
				if first, dup := seen[id]; dup && first != o.Source {
					d := diag.New("PAL902", o.Source.Pos, "%s %s is also imported from %s; two objects of the same kind, namespace and name cannot both be applied", p.Kind, p.Key, first.Pos)
					d.Object = o.Source.ID()
					d.Hint = "rename one of them, or import the files separately"
					o.Diagnostics = append(o.Diagnostics, d).Sort()
					o.Status = Rejected
				}
			}
			if o.Status != Imported {
				o.Emitted = nil
				continue
			}
			for _, p := range o.Emitted {
				seen[p.Field+"/"+p.Key] = o.Source
			}
		}
	}
}

// String describes a policy for reports.
func (p *Policy) String() string { return fmt.Sprintf("%s %s", p.Kind, p.Key) }
