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

package controllers

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/fluxcd/pkg/git"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "github.com/palisade-dev/palisade/api/v1alpha1"
	"github.com/palisade-dev/palisade/internal/diag"
	"github.com/palisade-dev/palisade/internal/guard"
	"github.com/palisade-dev/palisade/internal/render"
	"github.com/palisade-dev/palisade/internal/validate"
)

// maxErrorsInMessage bounds how many diagnostics or guard findings a
// condition message quotes; the rest are counted.
const maxErrorsInMessage = 3

// policySource is the revision a reconcile works on: where its artifact was
// extracted and where the PolicySet's path lies in it.
type policySource struct {
	// Revision is the source's artifact revision, e.g. "main@sha1:...".
	Revision string
	// Dir is the PolicySet's path inside the extracted artifact.
	Dir string
}

// reconcileSource records the referenced PolicyRepository's current
// revision as attempted, refuses it unless it descends from the applied
// one (or rollback is allowed), and extracts spec.path of its artifact
// into tmp, the digest checked; the loader reads nothing outside the path,
// so the rest of the repository is not written out. A source without an
// artifact waits; a path that does not exist in the revision stalls until
// the next one.
func (r *PolicySetReconciler) reconcileSource(ctx context.Context, obj *v1.PolicySet, tmp string) (*policySource, error) {
	ref := obj.Spec.SourceRef
	if ref.Kind != "" && ref.Kind != v1.SourceKindPolicyRepository {
		return nil, stalled(v1.ArtifactFailedReason, fmt.Errorf("source kind %s is not supported yet; use PolicyRepository", ref.Kind))
	}
	repo := &v1.PolicyRepository{}
	if err := r.Get(ctx, types.NamespacedName{Namespace: obj.Namespace, Name: ref.Name}, repo); err != nil {
		return nil, waiting(v1.ArtifactFailedReason, fmt.Errorf("get PolicyRepository %s/%s: %w", obj.Namespace, ref.Name, err))
	}
	a := repo.Status.Artifact
	if a == nil {
		return nil, waiting(v1.ArtifactFailedReason, fmt.Errorf("PolicyRepository %s/%s has no artifact yet", obj.Namespace, ref.Name))
	}
	obj.Status.LastAttemptedRevision = a.Revision
	if err := r.checkDescends(obj, a); err != nil {
		return nil, err
	}
	root := filepath.Join(tmp, "src")
	if err := r.Storage.ExtractDir(a.Path, a.Digest, root, obj.Spec.Path); err != nil {
		// The repository may have replaced the artifact meanwhile; its
		// update wakes this set again.
		return nil, waiting(v1.ArtifactFailedReason, fmt.Errorf("revision %s: %w", a.Revision, err))
	}
	dir := filepath.Join(root, filepath.FromSlash(path.Clean("/"+obj.Spec.Path)))
	info, err := os.Stat(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil, stalled(v1.GitOperationFailedReason, fmt.Errorf("path %q does not exist in revision %s", displayPath(obj.Spec.Path), a.Revision))
	case err != nil:
		return nil, waiting(v1.ArtifactFailedReason, err)
	case !info.IsDir():
		return nil, stalled(v1.GitOperationFailedReason, fmt.Errorf("path %q in revision %s is not a directory", displayPath(obj.Spec.Path), a.Revision))
	}
	return &policySource{Revision: a.Revision, Dir: dir}, nil
}

// checkDescends refuses an artifact whose commit does not descend from the
// applied revision's commit, unless spec.allowRollback: the enforced
// revision never goes backwards by accident. The ancestry comes from the
// history the PolicyRepository stores beside the artifact; the set checks
// against its own lastAppliedRevision, since sets reading one repository
// may have applied different revisions of it.
func (r *PolicySetReconciler) checkDescends(obj *v1.PolicySet, a *v1.Artifact) error {
	applied := obj.Status.LastAppliedRevision
	if applied == "" || obj.Spec.AllowRollback {
		return nil
	}
	old, now := git.ExtractHashFromRevision(applied).String(), git.ExtractHashFromRevision(a.Revision).String()
	if old == now {
		return nil
	}
	h, err := r.Storage.History(a.Path)
	if err == nil && h.Head != now {
		err = fmt.Errorf("history is of commit %s", h.Head)
	}
	if err != nil {
		// The repository writes the history before it publishes the
		// artifact; an artifact stored by an older manager has none until
		// the repository's next fetch.
		return waiting(v1.ArtifactFailedReason, fmt.Errorf("revision %s: cannot tell whether it descends from the applied revision %s: %w", a.Revision, applied, err))
	}
	if h.Contains(old) {
		return nil
	}
	why := "history was rewritten (a force-push to older or unrelated commits)"
	if !h.Complete {
		why = fmt.Sprintf("it is not among the newest %d commits of the new revision, or history was rewritten", h.Len())
	}
	return stalled(v1.RollbackRefusedReason, fmt.Errorf(
		"revision %s is not a descendant of the applied revision %s: %s; refusing to roll back; push a commit on top of %s (git revert) or set spec.allowRollback to apply it",
		a.Revision, applied, why, old))
}

// displayPath is spec.path as people read it: "./" for the root.
func displayPath(p string) string {
	p = strings.Trim(path.Clean("/"+p), "/")
	if p == "" {
		return "./"
	}
	return p
}

// repoFile is a file named relative to the PolicySet's path, named
// relative to the repository root for messages.
func repoFile(obj *v1.PolicySet, file string) string {
	if file == "" {
		return file
	}
	return path.Join(strings.Trim(path.Clean("/"+obj.Spec.Path), "/"), file)
}

// reconcilePolicies loads and validates the CUE under the set's path and
// owns the Validated condition. Any error-severity diagnostic stalls the
// set with the first errors' positions and codes.
func (r *PolicySetReconciler) reconcilePolicies(ctx context.Context, obj *v1.PolicySet, src *policySource) ([]*validate.Policy, error) {
	conds := &obj.Status.Conditions
	rep, err := validate.Dir(ctx, src.Dir, validate.Options{})
	if err != nil {
		serr := waiting(v1.ValidationFailedReason, fmt.Errorf("load revision %s: %w", src.Revision, err))
		setCondition(conds, obj.Generation, v1.ValidatedCondition, metav1.ConditionFalse, serr.reason, serr.Error())
		return nil, serr
	}
	if !rep.Valid() {
		serr := stalled(v1.ValidationFailedReason, fmt.Errorf("revision %s is invalid: %s", src.Revision, diagSummary(obj, rep.Diagnostics)))
		setCondition(conds, obj.Generation, v1.ValidatedCondition, metav1.ConditionFalse, serr.reason, serr.Error())
		return nil, serr
	}
	setCondition(conds, obj.Generation, v1.ValidatedCondition, metav1.ConditionTrue, v1.ValidationSucceededReason,
		fmt.Sprintf("%d policies in revision %s are valid", len(rep.Objects), src.Revision))
	return rep.Objects, nil
}

// diagSummary quotes the first error diagnostics as
// "file:line:col: CODE: message" and counts the rest.
func diagSummary(obj *v1.PolicySet, l diag.List) string {
	var parts []string
	n := 0
	for _, d := range l {
		if d.Severity != diag.Error {
			continue
		}
		n++
		if len(parts) < maxErrorsInMessage {
			d.Pos.File = repoFile(obj, d.Pos.File)
			parts = append(parts, fmt.Sprintf("%s: %s: %s", d.Pos, d.Code, d.Message))
		}
	}
	s := strings.Join(parts, "; ")
	if n > len(parts) {
		s += fmt.Sprintf("; and %d more errors", n-len(parts))
	}
	return s
}

// reconcileRender renders the policies as the objects to apply, labelled
// with the set and annotated with their source, and applies spec.mode.
func (r *PolicySetReconciler) reconcileRender(obj *v1.PolicySet, src *policySource, policies []*validate.Policy) ([]client.Object, error) {
	objs, err := render.Objects(policies, render.Owner{Namespace: obj.Namespace, Name: obj.Name, Revision: src.Revision})
	if err != nil {
		serr := stalled(v1.ValidationFailedReason, fmt.Errorf("revision %s: %w", src.Revision, err))
		setCondition(&obj.Status.Conditions, obj.Generation, v1.ValidatedCondition, metav1.ConditionFalse, serr.reason, serr.Error())
		return nil, serr
	}
	out := make([]client.Object, len(objs))
	for i, o := range objs {
		out[i] = o
		if m := obj.Spec.Mode; m != "" {
			switch t := o.(type) {
			case *v1.NetworkPolicy:
				t.Spec.Mode = m
			case *v1.ClusterNetworkPolicy:
				t.Spec.Mode = m
			case *v1.TracingPolicy:
				t.Spec.Mode = m
			case *v1.ClusterTracingPolicy:
				t.Spec.Mode = m
			}
		}
	}
	return out, nil
}

// builtinGuards compiles the built-in guards minus the ones the set
// disables by name (a guard's name is its package below palisade.guards,
// which is also its file's name).
func builtinGuards(disable []string) guard.Source {
	src := guard.Builtin()
	for _, name := range disable {
		delete(src.Modules, name+".rego")
		delete(src.Modules, name+"_test.rego")
	}
	return src
}

// guardSources reads the set's external guard sources: the path of each
// referenced PolicyRepository's current artifact, extracted under tmp with
// its digest checked. Guards owned by someone else are read from their own
// repository, so a change to the policies cannot change them.
func (r *PolicySetReconciler) guardSources(ctx context.Context, obj *v1.PolicySet, tmp string) ([]guard.Source, error) {
	if obj.Spec.Guards == nil {
		return nil, nil
	}
	var out []guard.Source
	for i, gs := range obj.Spec.Guards.Sources {
		if k := gs.SourceRef.Kind; k != "" && k != v1.SourceKindPolicyRepository {
			return nil, stalled(v1.GuardDeniedReason, fmt.Errorf("guard source %d: source kind %s is not supported; use PolicyRepository", i, k))
		}
		repo := &v1.PolicyRepository{}
		if err := r.Get(ctx, types.NamespacedName{Namespace: obj.Namespace, Name: gs.SourceRef.Name}, repo); err != nil {
			return nil, waiting(v1.ArtifactFailedReason, fmt.Errorf("guard source PolicyRepository %s/%s: %w", obj.Namespace, gs.SourceRef.Name, err))
		}
		a := repo.Status.Artifact
		if a == nil {
			return nil, waiting(v1.ArtifactFailedReason, fmt.Errorf("guard source PolicyRepository %s/%s has no artifact yet", obj.Namespace, gs.SourceRef.Name))
		}
		root := filepath.Join(tmp, fmt.Sprintf("guards-%d", i))
		if err := r.Storage.ExtractDir(a.Path, a.Digest, root, gs.Path); err != nil {
			return nil, waiting(v1.ArtifactFailedReason, fmt.Errorf("guard source %s revision %s: %w", gs.SourceRef.Name, a.Revision, err))
		}
		dir := filepath.Join(root, filepath.FromSlash(path.Clean("/"+gs.Path)))
		if info, err := os.Stat(dir); err != nil || !info.IsDir() {
			return nil, stalled(v1.GuardDeniedReason, fmt.Errorf("guard source %s: path %q is not a directory in revision %s", gs.SourceRef.Name, displayPath(gs.Path), a.Revision))
		}
		name := "policyrepository/" + gs.SourceRef.Name
		if p := strings.Trim(path.Clean("/"+gs.Path), "/"); p != "" {
			name += "/" + p
		}
		src, err := guard.FromDir(name, dir)
		if err != nil {
			return nil, stalled(v1.GuardDeniedReason, fmt.Errorf("guard source %s at %s: %w", name, a.Revision, err))
		}
		out = append(out, src)
	}
	return out, nil
}

// reconcileGuard reviews the change from the objects the set owns now to
// the rendered ones with the guards, and owns the Guarded condition. A
// denial stalls the set until the next revision, naming the guard, its
// message and the file:line it is about.
func (r *PolicySetReconciler) reconcileGuard(ctx context.Context, obj *v1.PolicySet, src *policySource, tmp string, live, desired []client.Object) error {
	conds := &obj.Status.Conditions
	fail := func(err *stepError) error {
		setCondition(conds, obj.Generation, v1.GuardedCondition, metav1.ConditionFalse, err.reason, err.Error())
		return err
	}
	var disable []string
	if g := obj.Spec.Guards; g != nil {
		disable = g.DisableBuiltIn
	}
	external, err := r.guardSources(ctx, obj, tmp)
	if err != nil {
		var se *stepError
		if errors.As(err, &se) {
			return fail(se)
		}
		return fail(waiting(v1.ArtifactFailedReason, err))
	}
	g, diags := guard.Compile(append([]guard.Source{builtinGuards(disable)}, external...)...)
	if diags.HasErrors() {
		return fail(stalled(v1.GuardDeniedReason, fmt.Errorf("compile guards: %s", diags[0])))
	}
	meta := guard.Meta{
		Revision:         src.Revision,
		PreviousRevision: obj.Status.LastAppliedRevision,
		PolicySet:        guard.PolicySetRef{Namespace: obj.Namespace, Name: obj.Name},
	}
	_, d, err := guard.ReviewObjects(ctx, g, runtimeObjects(live), runtimeObjects(desired), meta, guard.Options{})
	if err != nil {
		return fail(stalled(v1.GuardDeniedReason, fmt.Errorf("guard revision %s: %w", src.Revision, err)))
	}
	if !d.Allowed {
		return fail(stalled(v1.GuardDeniedReason, fmt.Errorf("revision %s denied: %s", src.Revision, findingsSummary(obj, d))))
	}
	msg := fmt.Sprintf("revision %s passed %d guards", src.Revision, len(g.Names()))
	if n := len(d.Warnings); n > 0 {
		msg += fmt.Sprintf(" with %d warnings: %s", n, findingSummary(obj, d.Warnings[0]))
	}
	setCondition(conds, obj.Generation, v1.GuardedCondition, metav1.ConditionTrue, v1.GuardSucceededReason, msg)
	return nil
}

// findingsSummary quotes the first denials and guard failures.
func findingsSummary(obj *v1.PolicySet, d *guard.Decision) string {
	all := append(append([]guard.Finding{}, d.Denies...), d.Errors...)
	var parts []string
	for i, f := range all {
		if i == maxErrorsInMessage {
			parts = append(parts, fmt.Sprintf("and %d more", len(all)-i))
			break
		}
		parts = append(parts, findingSummary(obj, f))
	}
	return strings.Join(parts, "; ")
}

// findingSummary is "file:line: guard <name>: message".
func findingSummary(obj *v1.PolicySet, f guard.Finding) string {
	who := "guard " + f.Guard
	if f.Guard == "" {
		who = "guard input"
	}
	switch {
	case f.File != "" && f.Line > 0:
		return fmt.Sprintf("%s:%d: %s: %s", repoFile(obj, f.File), f.Line, who, f.Message)
	case f.File != "":
		return fmt.Sprintf("%s: %s: %s", repoFile(obj, f.File), who, f.Message)
	}
	return fmt.Sprintf("%s: %s", who, f.Message)
}

func runtimeObjects(objs []client.Object) []runtime.Object {
	out := make([]runtime.Object, len(objs))
	for i, o := range objs {
		out[i] = o
	}
	return out
}
