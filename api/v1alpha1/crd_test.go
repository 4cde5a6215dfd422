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

package v1alpha1_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"k8s.io/apiextensions-apiserver/pkg/apis/apiextensions"
	apiextv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	extvalidation "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/validation"
	structuralschema "k8s.io/apiextensions-apiserver/pkg/apiserver/schema"
	"k8s.io/apiextensions-apiserver/pkg/apiserver/schema/cel"
	"k8s.io/apiextensions-apiserver/pkg/apiserver/schema/pruning"
	apivalidation "k8s.io/apiextensions-apiserver/pkg/apiserver/validation"
	"k8s.io/apimachinery/pkg/runtime"
	utiljson "k8s.io/apimachinery/pkg/util/json"
	"k8s.io/apimachinery/pkg/util/validation/field"
	celconfig "k8s.io/apiserver/pkg/apis/cel"
	"sigs.k8s.io/yaml"
)

// The generated CRDs, checked with the API server's own code: the CRD
// must be accepted (structural schema, CEL rules that compile and fit the
// cost budget), and every example the CUE schema accepts must be accepted
// by the CRD without a field pruned, or the API server would silently drop
// part of a policy. Tests against a running API server live elsewhere;
// these need none.

// crdGlob finds the generated CRDs.
const crdGlob = "../../config/crd/bases/*.yaml"

// crd is a generated CRD, in the API server's internal form, with its
// validators.
type crd struct {
	file       string
	internal   *apiextensions.CustomResourceDefinition
	structural *structuralschema.Structural
	schema     apivalidation.SchemaValidator
	cel        *cel.Validator
}

// loadCRDs reads and converts every generated CRD, keyed by kind.
func loadCRDs(t *testing.T) map[string]*crd {
	t.Helper()
	files, err := filepath.Glob(crdGlob)
	if err != nil {
		t.Fatal(err)
	}
	s := runtime.NewScheme()
	if err := apiextv1.AddToScheme(s); err != nil {
		t.Fatal(err)
	}
	if err := apiextensions.AddToScheme(s); err != nil {
		t.Fatal(err)
	}
	out := map[string]*crd{}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var v1 apiextv1.CustomResourceDefinition
		if err := yaml.UnmarshalStrict(data, &v1); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		apiextv1.SetObjectDefaults_CustomResourceDefinition(&v1)
		in := &apiextensions.CustomResourceDefinition{}
		if err := s.Convert(&v1, in, nil); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		// One version: the conversion hoists its schema to spec.validation.
		if in.Spec.Validation == nil || in.Spec.Validation.OpenAPIV3Schema == nil {
			t.Fatalf("%s: no schema", f)
		}
		props := in.Spec.Validation.OpenAPIV3Schema
		st, err := structuralschema.NewStructural(props)
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		sv, _, err := apivalidation.NewSchemaValidator(props)
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		out[in.Spec.Names.Kind] = &crd{
			file:       filepath.Base(f),
			internal:   in,
			structural: st,
			schema:     sv,
			cel:        cel.NewValidator(st, true, celconfig.PerCallLimit),
		}
	}
	for kind := range newObject {
		if out[kind] == nil {
			t.Fatalf("no CRD for %s in %s", kind, crdGlob)
		}
	}
	return out
}

// validateObject validates a JSON object as the API server validates a
// create, and returns every problem, pruned fields included.
func (c *crd) validateObject(t *testing.T, data []byte) []string {
	t.Helper()
	var obj map[string]any
	// apimachinery's decoder: integers become int64, as in the API server.
	if err := utiljson.Unmarshal(data, &obj); err != nil {
		t.Fatal(err)
	}
	var out []string
	pruned := pruning.PruneWithOptions(runtime.DeepCopyJSON(obj), c.structural, true,
		structuralschema.UnknownFieldPathOptions{TrackUnknownFieldPaths: true})
	for _, p := range pruned {
		out = append(out, "pruned: "+p)
	}
	for _, e := range apivalidation.ValidateCustomResource(nil, obj, c.schema) {
		out = append(out, e.Error())
	}
	errs, _ := c.cel.Validate(context.Background(), field.NewPath("root"), c.structural, obj, nil, celconfig.RuntimeCELCostBudget)
	for _, e := range errs {
		out = append(out, e.Error())
	}
	return out
}

func TestCRDsAcceptedByAPIServer(t *testing.T) {
	for kind, c := range loadCRDs(t) {
		for _, e := range extvalidation.ValidateCustomResourceDefinition(context.Background(), c.internal) {
			t.Errorf("%s (%s): %v", c.file, kind, e)
		}
	}
}

func TestExamplesAcceptedByCRDs(t *testing.T) {
	crds := loadCRDs(t)
	for _, ex := range append(loadExamples(t), loadSamples(t)...) {
		for _, p := range crds[ex.kind].validateObject(t, ex.json) {
			t.Errorf("%s: %s", ex.name, p)
		}
	}
}

// TestCRDRules checks that the CRDs' validation rules (the CEL ones in
// particular) reject what the schema and the validator reject.
func TestCRDRules(t *testing.T) {
	crds := loadCRDs(t)
	const (
		np  = `{"apiVersion":"palisade.dev/v1alpha1","kind":"NetworkPolicy","metadata":{"name":"x","namespace":"y"},"spec":{"endpointSelector":{},`
		cnp = `{"apiVersion":"palisade.dev/v1alpha1","kind":"ClusterNetworkPolicy","metadata":{"name":"x"},"spec":{`
		tp  = `{"apiVersion":"palisade.dev/v1alpha1","kind":"TracingPolicy","metadata":{"name":"x","namespace":"y"},"spec":{`
	)
	for _, tc := range []struct {
		name, obj, wantErr string // wantErr "" means valid
	}{
		{"node selector", cnp + `"nodeSelector":{}}}`, ""},
		{"both selectors", cnp + `"endpointSelector":{},"nodeSelector":{}}}`, "PAL105"},
		{"no selector", cnp + `"ingress":[{}]}}`, "PAL105"},
		{"port range", np + `"ingress":[{"toPorts":[{"ports":[{"port":80,"endPort":80}]}]}]}}`, ""},
		{"endPort below port", np + `"ingress":[{"toPorts":[{"ports":[{"port":80,"endPort":79}]}]}]}}`, "endPort"},
		{"endPort with named port", np + `"ingress":[{"toPorts":[{"ports":[{"port":"http","endPort":90}]}]}]}}`, "endPort"},
		{"port too big", np + `"ingress":[{"toPorts":[{"ports":[{"port":65536}]}]}]}}`, "0 to 65535"},
		{"port name too long", np + `"ingress":[{"toPorts":[{"ports":[{"port":"abcdefghijklmnop"}]}]}]}}`, "port name"},
		{"ICMP type too big", np + `"ingress":[{"icmps":[{"fields":[{"type":256}]}]}]}}`, "ICMP type"},
		{"ICMP type unknown", np + `"ingress":[{"icmps":[{"fields":[{"type":"Echo"}]}]}]}}`, "ICMP type"},
		{"FQDN name and pattern", np + `"egress":[{"toFQDNs":[{"matchName":"a.b","matchPattern":"*.b"}]}]}}`, "PAL302"},
		{"DNS rule empty", np + `"egress":[{"toPorts":[{"rules":{"dns":[{}]}}]}]}}`, "PAL302"},
		{"Kafka role and apiKey", np + `"egress":[{"toPorts":[{"rules":{"kafka":[{"role":"produce","apiKey":"fetch"}]}}]}]}}`, "PAL402"},
		{"entity unknown", np + `"egress":[{"toEntities":["internet"]}]}}`, "Unsupported value"},
		{"CIDR shape", np + `"egress":[{"toCIDR":["10.0.0.0/8 "]}]}}`, "should match"},
		{"argError positive", tp + `"lsmhooks":[{"hook":"bpf","selectors":[{"matchActions":[{"action":"Deny","argError":1}]}]}]}}`, "argError"},
		{"Signal", tp + `"kprobes":[{"call":"f","selectors":[{"matchActions":[{"action":"Signal","argSig":10}]}]}]}}`, ""},
		{"Signal without argSig", tp + `"kprobes":[{"call":"f","selectors":[{"matchActions":[{"action":"Signal"}]}]}]}}`, "Signal needs argSig"},
		{"argSig too big", tp + `"kprobes":[{"call":"f","selectors":[{"matchActions":[{"action":"Signal","argSig":65}]}]}]}}`, "argSig"},
		{"PID negative", tp + `"kprobes":[{"call":"f","selectors":[{"matchPIDs":[{"operator":"In","values":[-1]}]}]}]}}`, "greater than or equal to 0"},
		{"no symbols", tp + `"uprobes":[{"path":"/bin/x","symbols":[]}]}}`, "at least 1 items"},
		{"unknown field", tp + `"kprobes":[{"call":"f","retprobe":true}]}}`, "pruned"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			kind := strings.Split(strings.SplitAfter(tc.obj, `"kind":"`)[1], `"`)[0]
			probs := strings.Join(crds[kind].validateObject(t, []byte(tc.obj)), "\n")
			switch {
			case tc.wantErr == "" && probs != "":
				t.Errorf("want valid, got:\n%s", probs)
			case tc.wantErr != "" && !strings.Contains(probs, tc.wantErr):
				t.Errorf("want an error containing %q, got:\n%s", tc.wantErr, probs)
			}
		})
	}
}
