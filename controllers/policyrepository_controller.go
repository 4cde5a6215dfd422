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
	"net/url"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/fluxcd/pkg/git"
	"github.com/fluxcd/pkg/git/gogit"
	"github.com/fluxcd/pkg/git/repository"
	extgogit "github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/plumbing/storer"
	corev1 "k8s.io/api/core/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/recorder"

	v1 "github.com/palisade-dev/palisade/api/v1alpha1"
)

// defaultGitTimeout bounds one fetch when spec.timeout is unset.
const defaultGitTimeout = 60 * time.Second

// PolicyRepositoryReconciler fetches Git repositories, verifies commit
// signatures and stores each revision as an artifact.
type PolicyRepositoryReconciler struct {
	client.Client
	// Recorder receives events on a new revision, a failure and a
	// recovery.
	Recorder recorder.EventRecorder
	// Storage holds the artifacts.
	Storage *Storage
}

// +kubebuilder:rbac:groups=palisade.dev,resources=policyrepositories,verbs=get;list;watch;update;patch
// +kubebuilder:rbac:groups=palisade.dev,resources=policyrepositories/status,verbs=get;update;patch
// +kubebuilder:rbac:groups="",resources=secrets,verbs=get
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch

// SetupWithManager registers the reconciler. It reacts to spec changes and
// to the reconcile request annotation; polling comes from RequeueAfter.
func (r *PolicyRepositoryReconciler) SetupWithManager(mgr ctrl.Manager) error {
	return ctrl.NewControllerManagedBy(mgr).
		For(&v1.PolicyRepository{}, builder.WithPredicates(
			predicate.Or(predicate.GenerationChangedPredicate{}, predicate.AnnotationChangedPredicate{}))).
		Named("policyrepository").
		Complete(r)
}

// Reconcile fetches, verifies and stores one PolicyRepository's revision.
func (r *PolicyRepositoryReconciler) Reconcile(ctx context.Context, req ctrl.Request) (result ctrl.Result, retErr error) {
	obj := &v1.PolicyRepository{}
	if err := r.Get(ctx, req.NamespacedName, obj); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if !obj.DeletionTimestamp.IsZero() {
		return ctrl.Result{}, r.Storage.GarbageCollect(v1.GroupVersion.WithKind("PolicyRepository").Kind, obj.Namespace, obj.Name)
	}
	if obj.Spec.Suspend {
		log.FromContext(ctx).V(1).Info("suspended; not fetching")
		return ctrl.Result{}, nil
	}
	base := obj.DeepCopy()
	defer func() {
		retErr = r.finish(ctx, base, obj, retErr)
		if retErr == nil || isStalling(retErr) {
			result, retErr = ctrl.Result{RequeueAfter: jittered(obj.Spec.Interval.Duration)}, nil
		}
	}()
	if v, ok := obj.Annotations[v1.ReconcileRequestAnnotation]; ok {
		obj.Status.LastHandledReconcileAt = v
	}

	dir, err := os.MkdirTemp("", "policyrepository-")
	if err != nil {
		return ctrl.Result{}, waiting(v1.StorageOperationFailedReason, err)
	}
	defer os.RemoveAll(dir)

	commit, err := r.reconcileSource(ctx, obj, dir)
	if err != nil {
		return ctrl.Result{}, err
	}
	if err := r.reconcileVerify(ctx, obj, commit); err != nil {
		return ctrl.Result{}, err
	}
	if err := r.reconcileHistory(ctx, obj, commit, dir); err != nil {
		return ctrl.Result{}, err
	}
	return ctrl.Result{}, r.reconcileArtifact(ctx, obj, commit, dir)
}

// finish summarizes the conditions, sends events on a change of Ready and
// patches the status once.
func (r *PolicyRepositoryReconciler) finish(ctx context.Context, base, obj *v1.PolicyRepository, err error) error {
	msg := ""
	if a := obj.Status.Artifact; a != nil {
		msg = fmt.Sprintf("stored artifact for revision '%s'", a.Revision)
	}
	summarize(&obj.Status.Conditions, obj.Generation, err, msg)
	obj.Status.ObservedGeneration = obj.Generation
	r.eventOnChange(base, obj)
	if perr := r.Status().Patch(ctx, obj, client.MergeFrom(base)); perr != nil {
		return errors.Join(err, fmt.Errorf("patch status: %w", perr))
	}
	return err
}

// eventOnChange records a Warning when Ready turns False or its message
// changes, and a Normal event on recovery; never on a steady loop.
func (r *PolicyRepositoryReconciler) eventOnChange(base, obj *v1.PolicyRepository) {
	if r.Recorder == nil {
		return
	}
	before := apimeta.FindStatusCondition(base.Status.Conditions, v1.ReadyCondition)
	now := apimeta.FindStatusCondition(obj.Status.Conditions, v1.ReadyCondition)
	if now == nil || (before != nil && before.Status == now.Status && before.Message == now.Message) {
		return
	}
	ann := map[string]string{}
	if a := obj.Status.Artifact; a != nil {
		ann["palisade.dev/revision"] = a.Revision
	}
	if now.Status == metav1.ConditionTrue {
		r.Recorder.AnnotatedEventf(obj, nil, ann, corev1.EventTypeNormal, now.Reason, "Reconcile", "%s", now.Message)
		return
	}
	r.Recorder.AnnotatedEventf(obj, nil, ann, corev1.EventTypeWarning, now.Reason, "Reconcile", "%s", now.Message)
}

// checkoutStrategy maps the spec's ref to a checkout; no ref follows main.
func checkoutStrategy(ref *v1.GitRef) (repository.CheckoutStrategy, string) {
	if ref == nil {
		return repository.CheckoutStrategy{Branch: "main"}, "branch main"
	}
	cs := repository.CheckoutStrategy{Branch: ref.Branch, Tag: ref.Tag, SemVer: ref.SemVer, Commit: ref.Commit}
	switch {
	case ref.Commit != "":
		return cs, "commit " + ref.Commit
	case ref.SemVer != "":
		return cs, "semver " + ref.SemVer
	case ref.Tag != "":
		return cs, "tag " + ref.Tag
	case ref.Branch != "":
		return cs, "branch " + ref.Branch
	}
	cs.Branch = "main"
	return cs, "branch main"
}

// reconcileSource clones the ref into dir and returns its commit.
func (r *PolicyRepositoryReconciler) reconcileSource(ctx context.Context, obj *v1.PolicyRepository, dir string) (*git.Commit, error) {
	u, err := url.Parse(obj.Spec.URL)
	if err != nil {
		return nil, stalled(v1.GitOperationFailedReason, fmt.Errorf("spec.url: %w", err))
	}
	var data map[string][]byte
	if ref := obj.Spec.SecretRef; ref != nil {
		sec := &corev1.Secret{}
		if err := r.Get(ctx, types.NamespacedName{Namespace: obj.Namespace, Name: ref.Name}, sec); err != nil {
			return nil, waiting(v1.AuthenticationFailedReason, fmt.Errorf("get credentials Secret %s/%s: %w", obj.Namespace, ref.Name, err))
		}
		data = sec.Data
	}
	if u.Scheme == "http" && len(data) > 0 {
		return nil, stalled(v1.AuthenticationFailedReason, fmt.Errorf("spec.url %s: refusing to send credentials over plain http; use https or ssh", u.Redacted()))
	}
	auth, err := git.NewAuthOptions(*u, data)
	if err != nil {
		return nil, stalled(v1.AuthenticationFailedReason, fmt.Errorf("credentials Secret %s: %w", obj.Spec.SecretRef.Name, redactErr(err, data)))
	}
	gc, err := gogit.NewClient(dir, auth, gogit.WithDiskStorage())
	if err != nil {
		return nil, waiting(v1.GitOperationFailedReason, redactErr(err, data))
	}
	defer gc.Close()

	timeout := defaultGitTimeout
	if obj.Spec.Timeout != nil {
		timeout = obj.Spec.Timeout.Duration
	}
	cctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cs, what := checkoutStrategy(obj.Spec.Ref)
	commit, err := gc.Clone(cctx, u.String(), repository.CloneConfig{CheckoutStrategy: cs})
	if err != nil {
		return nil, waiting(v1.GitOperationFailedReason, fmt.Errorf("fetch %s at %s: %w", u.Redacted(), what, redactErr(err, data)))
	}
	if commit == nil {
		return nil, waiting(v1.GitOperationFailedReason, fmt.Errorf("fetch %s at %s: the repository is empty", u.Redacted(), what))
	}
	return commit, nil
}

// trustedKeys splits a verification Secret into PGP keyrings and SSH
// public keys (authorized_keys lines; allowed_signers principals dropped).
func trustedKeys(data map[string][]byte) (pgp, ssh []string) {
	names := make([]string, 0, len(data))
	for k := range data {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		switch {
		case strings.HasSuffix(k, ".asc") || strings.HasSuffix(k, ".gpg"):
			pgp = append(pgp, string(data[k]))
		case strings.HasSuffix(k, ".pub") || k == "allowed_signers":
			ssh = append(ssh, authorizedKeys(string(data[k])))
		}
	}
	return pgp, ssh
}

// authorizedKeys turns allowed_signers lines ("principals [options] type
// key") into authorized_keys lines by dropping what precedes the key type.
func authorizedKeys(s string) string {
	var out []string
	for _, line := range strings.Split(s, "\n") {
		f := strings.Fields(line)
		for i, w := range f {
			if strings.HasPrefix(w, "ssh-") || strings.HasPrefix(w, "ecdsa-") || strings.HasPrefix(w, "sk-") {
				out = append(out, strings.Join(f[i:], " "))
				break
			}
		}
	}
	return strings.Join(out, "\n")
}

// reconcileVerify checks the commit's signature when spec.verify asks for
// it and owns the SourceVerified condition.
func (r *PolicyRepositoryReconciler) reconcileVerify(ctx context.Context, obj *v1.PolicyRepository, commit *git.Commit) error {
	conds := &obj.Status.Conditions
	if obj.Spec.Verify == nil {
		apimeta.RemoveStatusCondition(conds, v1.SourceVerifiedCondition)
		return nil
	}
	fail := func(err *stepError) error {
		setCondition(conds, obj.Generation, v1.SourceVerifiedCondition, metav1.ConditionFalse, err.reason, err.Error())
		return err
	}
	ref := obj.Spec.Verify.SecretRef.Name
	sec := &corev1.Secret{}
	if err := r.Get(ctx, types.NamespacedName{Namespace: obj.Namespace, Name: ref}, sec); err != nil {
		return fail(waiting(v1.VerificationErrorReason, fmt.Errorf("get verification Secret %s/%s: %w", obj.Namespace, ref, err)))
	}
	pgp, ssh := trustedKeys(sec.Data)
	if len(pgp) == 0 && len(ssh) == 0 {
		return fail(stalled(v1.VerificationErrorReason, fmt.Errorf("verification Secret %s/%s has no keys: want *.asc or *.gpg (PGP), *.pub or allowed_signers (SSH)", obj.Namespace, ref)))
	}
	hash := commit.Hash.String()
	who := fmt.Sprintf("%s <%s>", commit.Author.Name, commit.Author.Email)
	var (
		key string
		err error
	)
	switch {
	case commit.Signature == "":
		return fail(stalled(v1.VerificationErrorReason, fmt.Errorf("commit %s by %s is not signed; spec.verify requires a signature, so the revision is not used", hash, who)))
	case commit.IsSSHSigned():
		if len(ssh) == 0 {
			return fail(stalled(v1.VerificationErrorReason, fmt.Errorf("commit %s by %s is SSH-signed, but verification Secret %s has no SSH keys", hash, who, ref)))
		}
		key, err = commit.VerifySSH(ssh...)
	default:
		if len(pgp) == 0 {
			return fail(stalled(v1.VerificationErrorReason, fmt.Errorf("commit %s by %s is %s-signed, but verification Secret %s has no PGP keys", hash, who, commit.SignatureType(), ref)))
		}
		key, err = commit.VerifyPGP(pgp...)
	}
	if err != nil {
		return fail(stalled(v1.VerificationErrorReason, fmt.Errorf("signature of commit %s by %s does not verify with the keys in Secret %s: %w", hash, who, ref, err)))
	}
	setCondition(conds, obj.Generation, v1.SourceVerifiedCondition, metav1.ConditionTrue, v1.VerificationSucceededReason,
		fmt.Sprintf("verified signature of commit %s by %s with key %s", hash, who, key))
	return nil
}

// reconcileHistory stores the commit's ancestry beside its artifact, from
// the clone in dir, before the artifact is published in status: a
// PolicySet reads it to refuse a revision that does not descend from the
// one it applied (history rewritten by a force-push). A failure leaves the
// previous artifact in place and is retried; it reports on
// ArtifactInStorage, like the artifact itself.
func (r *PolicyRepositoryReconciler) reconcileHistory(ctx context.Context, obj *v1.PolicyRepository, commit *git.Commit, dir string) error {
	id := commit.Hash.String()
	if r.Storage.HasHistory("PolicyRepository", obj.Namespace, obj.Name, id) {
		return nil
	}
	h, err := commitHistory(ctx, dir, id, maxHistoryCommits)
	if err == nil {
		err = r.Storage.StoreHistory("PolicyRepository", obj.Namespace, obj.Name, id, h)
	}
	if err != nil {
		serr := waiting(v1.StorageOperationFailedReason, fmt.Errorf("store commit history of revision %s: %w", commit.String(), err))
		setCondition(&obj.Status.Conditions, obj.Generation, v1.ArtifactInStorageCondition, metav1.ConditionFalse, serr.reason, serr.Error())
		return serr
	}
	return nil
}

// commitHistory walks the commits reachable from head in the clone at
// dir, newest first, and stops after limit commits.
func commitHistory(ctx context.Context, dir, head string, limit int) (*History, error) {
	repo, err := extgogit.PlainOpen(dir)
	if err != nil {
		return nil, fmt.Errorf("open clone: %w", err)
	}
	iter, err := repo.Log(&extgogit.LogOptions{From: plumbing.NewHash(head), Order: extgogit.LogOrderCommitterTime})
	if err != nil {
		return nil, fmt.Errorf("walk history: %w", err)
	}
	defer iter.Close()
	var commits []string
	complete := true
	err = iter.ForEach(func(c *object.Commit) error {
		if len(commits) == limit {
			complete = false
			return storer.ErrStop
		}
		if len(commits)%1024 == 0 && ctx.Err() != nil {
			return ctx.Err()
		}
		commits = append(commits, c.Hash.String())
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("walk history: %w", err)
	}
	return NewHistory(head, commits, complete), nil
}

// reconcileArtifact stores the checked-out tree as the revision's artifact
// and owns the ArtifactInStorage condition.
func (r *PolicyRepositoryReconciler) reconcileArtifact(ctx context.Context, obj *v1.PolicyRepository, commit *git.Commit, dir string) error {
	rev := commit.String()
	conds := &obj.Status.Conditions
	if a := obj.Status.Artifact; a != nil && a.Revision == rev && r.Storage.Has(a.Path, a.Digest) {
		setCondition(conds, obj.Generation, v1.ArtifactInStorageCondition, metav1.ConditionTrue, v1.ArtifactStoredReason, "stored artifact for revision '"+rev+"'")
		return nil
	}
	kind := "PolicyRepository"
	rel, digest, size, err := r.Storage.Store(kind, obj.Namespace, obj.Name, commit.Hash.String(), dir)
	if err != nil {
		serr := stalled(v1.StorageOperationFailedReason, fmt.Errorf("store revision %s: %w", rev, err))
		if !strings.Contains(err.Error(), "not supported") && !strings.Contains(err.Error(), "not a regular file") {
			serr = waiting(v1.StorageOperationFailedReason, serr.err)
		}
		setCondition(conds, obj.Generation, v1.ArtifactInStorageCondition, metav1.ConditionFalse, serr.reason, serr.Error())
		return serr
	}
	prev := obj.Status.Artifact
	obj.Status.Artifact = &v1.Artifact{Revision: rev, Digest: digest, Path: rel, Size: &size, LastUpdateTime: metav1.Now()}
	setCondition(conds, obj.Generation, v1.ArtifactInStorageCondition, metav1.ConditionTrue, v1.ArtifactStoredReason, "stored artifact for revision '"+rev+"'")
	if r.Recorder != nil {
		r.Recorder.AnnotatedEventf(obj, nil, map[string]string{"palisade.dev/revision": rev}, corev1.EventTypeNormal, v1.NewRevisionReason, "Fetch",
			"stored artifact for revision '%s' (%s)", rev, digest)
	}
	// Keep the previous artifact: a PolicySet may still be reading it.
	keep := []string{rel}
	if prev != nil {
		keep = append(keep, prev.Path)
	}
	if err := r.Storage.GarbageCollect(kind, obj.Namespace, obj.Name, keep...); err != nil {
		log.FromContext(ctx).Error(err, "garbage-collect old artifacts")
	}
	return nil
}
