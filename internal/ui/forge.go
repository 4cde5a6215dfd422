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

package ui

import (
	"net/url"
	"path"
	"strings"
)

// forges are the hosts whose file views BrowseTemplate knows, and the
// path of a file at a commit under a repository's web address.
var forges = map[string]string{
	"github.com":   "/blob/{rev}/{file}#L{line}",
	"gitlab.com":   "/-/blob/{rev}/{file}#L{line}",
	"codeberg.org": "/src/commit/{rev}/{file}#L{line}",
}

// BrowseTemplate is the web address of a file at a revision in the Git
// repository at repoURL, with {rev}, {file} and {line} to fill in, when
// the repository is on a forge it knows (github.com, gitlab.com,
// codeberg.org; https, ssh:// and scp-like git@host:path URLs), and ""
// otherwise. dir is the PolicySet's path in the repository: the files
// flows name are relative to it.
func BrowseTemplate(repoURL, dir string) string {
	host, repo := "", ""
	if u, err := url.Parse(repoURL); err == nil && u.Host != "" {
		switch u.Scheme {
		case "https", "http", "ssh", "git+ssh":
			host, repo = u.Hostname(), u.Path
		}
	} else if at, rest, ok := strings.Cut(repoURL, "@"); ok && !strings.Contains(at, "/") {
		// scp-like: git@github.com:owner/repo.git
		if h, p, ok := strings.Cut(rest, ":"); ok && !strings.Contains(h, "/") {
			host, repo = h, p
		}
	}
	host = strings.ToLower(host)
	view, ok := forges[host]
	repo = strings.Trim(strings.TrimSuffix(strings.Trim(repo, "/"), ".git"), "/")
	if !ok || strings.Count(repo, "/") < 1 {
		return ""
	}
	prefix := strings.Trim(path.Clean("/"+dir), "/")
	if prefix != "" {
		view = strings.Replace(view, "{file}", prefix+"/{file}", 1)
	}
	return "https://" + host + "/" + repo + view
}
