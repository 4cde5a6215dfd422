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

// Package controllers holds Palisade's reconcilers: PolicyRepository
// (fetch and verify Git), PolicySet (load, validate, guard, apply),
// identity allocation, and the webhook receiver that triggers them.
//
// Every reconciler follows Flux's shape: fetch the object, snapshot it for
// one status patch, run an ordered list of steps that each own their
// conditions and return a typed error, then summarize Ready, Reconciling
// and Stalled from the outcome in one place.
package controllers

import (
	"errors"
	"fmt"
	"strings"

	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1 "github.com/palisade-dev/palisade/api/v1alpha1"
)

// stepError is a failed reconcile step: the condition reason it reports
// and whether retrying can help. A stalling error (a bad commit, a missing
// key) waits for the object or its source to change and is retried only at
// the interval; any other error is retried with backoff.
type stepError struct {
	reason   string
	err      error
	stalling bool
}

func (e *stepError) Error() string { return e.err.Error() }
func (e *stepError) Unwrap() error { return e.err }

// stalled returns a stepError that retrying cannot fix.
func stalled(reason string, err error) *stepError {
	return &stepError{reason: reason, err: err, stalling: true}
}

// waiting returns a stepError that may go away on retry.
func waiting(reason string, err error) *stepError {
	return &stepError{reason: reason, err: err}
}

// isStalling reports whether err is a stalling step error.
func isStalling(err error) bool {
	var se *stepError
	return errors.As(err, &se) && se.stalling
}

// reasonOf returns a step error's reason, or fallback.
func reasonOf(err error, fallback string) string {
	var se *stepError
	if errors.As(err, &se) {
		return se.reason
	}
	return fallback
}

// setCondition sets a condition with the object's generation.
func setCondition(conds *[]metav1.Condition, gen int64, typ string, status metav1.ConditionStatus, reason, msg string) {
	apimeta.SetStatusCondition(conds, metav1.Condition{
		Type: typ, Status: status, Reason: reason, Message: msg, ObservedGeneration: gen,
	})
}

// summarize derives Ready, Reconciling and Stalled from the steps' outcome:
// the only place that sets them. okMsg is Ready's message on success.
func summarize(conds *[]metav1.Condition, gen int64, err error, okMsg string) {
	apimeta.RemoveStatusCondition(conds, v1.ReconcilingCondition)
	switch {
	case err == nil:
		apimeta.RemoveStatusCondition(conds, v1.StalledCondition)
		setCondition(conds, gen, v1.ReadyCondition, metav1.ConditionTrue, v1.SucceededReason, okMsg)
	case isStalling(err):
		reason := reasonOf(err, v1.ProgressingReason)
		setCondition(conds, gen, v1.StalledCondition, metav1.ConditionTrue, reason, err.Error())
		setCondition(conds, gen, v1.ReadyCondition, metav1.ConditionFalse, reason, err.Error())
	default:
		reason := reasonOf(err, v1.ProgressingReason)
		apimeta.RemoveStatusCondition(conds, v1.StalledCondition)
		setCondition(conds, gen, v1.ReconcilingCondition, metav1.ConditionTrue, v1.ProgressingReason, "retrying: "+err.Error())
		setCondition(conds, gen, v1.ReadyCondition, metav1.ConditionFalse, reason, err.Error())
	}
}

// redact replaces every secret value that occurs in msg, so that errors
// from Git or HTTP libraries cannot carry a credential into status, events
// or logs. Values shorter than 4 bytes are left alone: they cannot be told
// apart from ordinary words, and no real credential is that short.
func redact(msg string, data map[string][]byte) string {
	for _, v := range data {
		s := strings.TrimSpace(string(v))
		if len(s) >= 4 {
			msg = strings.ReplaceAll(msg, s, "***")
		}
	}
	return msg
}

// redactErr is redact for errors; it keeps nil nil.
func redactErr(err error, data map[string][]byte) error {
	if err == nil || len(data) == 0 {
		return err
	}
	return fmt.Errorf("%s", redact(err.Error(), data))
}
