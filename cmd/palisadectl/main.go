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

// Command palisadectl validates, imports and explains Palisade policies
// without a cluster; it runs the very loader, validator and guards the
// controllers run, so CI and the cluster reach the same decision.
package main

import (
	"errors"
	"fmt"
	"os"

	"github.com/spf13/cobra"
)

// Exit codes, stable for CI.
const (
	exitOK      = 0 // valid
	exitInvalid = 1 // the input has errors
	exitUsage   = 2 // usage or internal error
)

// commands holds the constructors of the subcommands; each lives in a file
// of its own and registers itself from init.
var commands []func() *cobra.Command

// exitError carries an exit code out of a command.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }

func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:           "palisadectl",
		Short:         "Validate, import and explain Palisade policies",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	for _, c := range commands {
		root.AddCommand(c())
	}
	return root
}

func main() {
	os.Exit(run(os.Args[1:]))
}

// run executes the command line and returns the process exit code.
func run(args []string) int {
	root := newRootCmd()
	root.SetArgs(args)
	err := root.Execute()
	if err == nil {
		return exitOK
	}
	var ee *exitError
	if errors.As(err, &ee) {
		if ee.err != nil && ee.code != exitInvalid {
			fmt.Fprintln(os.Stderr, "palisadectl:", ee.err)
		}
		return ee.code
	}
	fmt.Fprintln(os.Stderr, "palisadectl:", err)
	return exitUsage
}
