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

package gitserver

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	gogit "github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/config"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"
	githttp "github.com/go-git/go-git/v5/plumbing/transport/http"
)

// Author is the default author of commits.
var Author = object.Signature{Name: "Ada Author", Email: "ada@example.org"}

// Checkout is a user's working copy of a repository on the server.
type Checkout struct {
	t    testing.TB
	dir  string
	repo *gogit.Repository
	auth *githttp.BasicAuth
	url  string
	ca   []byte
	now  time.Time
}

// Checkout returns a new, empty working copy whose origin is repository
// name (created with InitBare) and whose branch is main.
func (s *Server) Checkout(t testing.TB, name string) *Checkout {
	t.Helper()
	dir := t.TempDir()
	r, err := gogit.PlainInitWithOptions(dir, &gogit.PlainInitOptions{
		InitOptions: gogit.InitOptions{DefaultBranch: plumbing.NewBranchReferenceName("main")},
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.CreateRemote(&config.RemoteConfig{Name: "origin", URLs: []string{s.URL(name)}}); err != nil {
		t.Fatal(err)
	}
	c := &Checkout{t: t, dir: dir, repo: r, url: s.URL(name), ca: s.CAPEM(), now: time.Unix(1767225600, 0).UTC()}
	if s.username != "" {
		c.auth = &githttp.BasicAuth{Username: s.username, Password: s.password}
	}
	return c
}

// CommitOptions change how Commit commits.
type CommitOptions struct {
	// SignKey signs the commit with PGP.
	SignKey *openpgp.Entity
	// Signer signs the commit another way (an SSH key).
	Signer gogit.Signer
	// Author overrides Author.
	Author *object.Signature
}

// Commit writes files (path → content; "" deletes the file), commits them
// on the current branch and returns the commit hash. Commit times advance
// one minute per commit, so histories are reproducible.
func (c *Checkout) Commit(msg string, files map[string]string, opts CommitOptions) plumbing.Hash {
	c.t.Helper()
	w, err := c.repo.Worktree()
	if err != nil {
		c.t.Fatal(err)
	}
	for p, content := range files {
		full := filepath.Join(c.dir, filepath.FromSlash(p))
		if content == "" {
			if _, err := w.Remove(p); err != nil {
				c.t.Fatalf("remove %s: %v", p, err)
			}
			continue
		}
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			c.t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(content), 0o644); err != nil {
			c.t.Fatal(err)
		}
		if _, err := w.Add(p); err != nil {
			c.t.Fatalf("add %s: %v", p, err)
		}
	}
	c.now = c.now.Add(time.Minute)
	author := Author
	if opts.Author != nil {
		author = *opts.Author
	}
	author.When = c.now
	h, err := w.Commit(msg, &gogit.CommitOptions{Author: &author, SignKey: opts.SignKey, Signer: opts.Signer, AllowEmptyCommits: len(files) == 0})
	if err != nil {
		c.t.Fatalf("commit: %v", err)
	}
	return h
}

// Tag creates a lightweight tag at the current HEAD.
func (c *Checkout) Tag(name string) {
	c.t.Helper()
	head, err := c.repo.Head()
	if err != nil {
		c.t.Fatal(err)
	}
	if _, err := c.repo.CreateTag(name, head.Hash(), nil); err != nil {
		c.t.Fatal(err)
	}
}

// ResetHard moves the current branch to commit h, as `git reset --hard`.
func (c *Checkout) ResetHard(h plumbing.Hash) {
	c.t.Helper()
	w, err := c.repo.Worktree()
	if err != nil {
		c.t.Fatal(err)
	}
	if err := w.Reset(&gogit.ResetOptions{Commit: h, Mode: gogit.HardReset}); err != nil {
		c.t.Fatal(err)
	}
}

// Head returns the commit the current branch points to.
func (c *Checkout) Head() plumbing.Hash {
	c.t.Helper()
	head, err := c.repo.Head()
	if err != nil {
		c.t.Fatal(err)
	}
	return head.Hash()
}

// Push pushes main and every tag; force allows rewriting history.
func (c *Checkout) Push(force bool) {
	c.t.Helper()
	spec := "refs/heads/main:refs/heads/main"
	tags := "refs/tags/*:refs/tags/*"
	if force {
		spec, tags = "+"+spec, "+"+tags
	}
	opts := &gogit.PushOptions{
		RemoteName: "origin",
		RefSpecs:   []config.RefSpec{config.RefSpec(spec), config.RefSpec(tags)},
		CABundle:   c.ca,
		Force:      force,
	}
	if c.auth != nil {
		opts.Auth = c.auth
	}
	err := c.repo.Push(opts)
	if err != nil && err != gogit.NoErrAlreadyUpToDate {
		c.t.Fatalf("push: %v", err)
	}
}
