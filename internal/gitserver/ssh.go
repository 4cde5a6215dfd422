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
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/binary"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// SSHServer serves a Server's repositories over SSH on 127.0.0.1, as Git
// hosts do: public key authentication, then an exec request for
// git-upload-pack (fetch) or git-receive-pack (push) of a repository path,
// run by git itself.
type SSHServer struct {
	srv      *Server
	ln       net.Listener
	hostKey  ssh.Signer
	config   *ssh.ServerConfig
	wg       sync.WaitGroup
	mu       sync.Mutex
	conns    map[net.Conn]bool
	closed   bool
	requests int64
}

// ClientKey is an SSH key a client authenticates with.
type ClientKey struct {
	// PrivateKeyPEM is the OpenSSH private key, as a Secret's "identity".
	PrivateKeyPEM []byte
	// Public is its public key.
	Public ssh.PublicKey
}

// NewClientKey generates an Ed25519 client key.
func NewClientKey(t testing.TB) ClientKey {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	block, err := ssh.MarshalPrivateKey(priv, "")
	if err != nil {
		t.Fatal(err)
	}
	sp, err := ssh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return ClientKey{PrivateKeyPEM: pem.EncodeToMemory(block), Public: sp}
}

// ServeSSH starts an SSH server for s's repositories that admits the
// given client keys; it stops in t.Cleanup.
func (s *Server) ServeSSH(t testing.TB, authorized ...ssh.PublicKey) *SSHServer {
	t.Helper()
	if _, err := exec.LookPath("git"); err != nil {
		if os.Getenv("PALISADE_REQUIRE_TOOLS") != "" {
			t.Fatalf("git not available: %v", err)
		}
		t.Skipf("git not available: %v", err)
	}
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	hk, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	ss := &SSHServer{srv: s, hostKey: hk, conns: map[net.Conn]bool{}}
	ss.config = &ssh.ServerConfig{
		PublicKeyCallback: func(_ ssh.ConnMetadata, key ssh.PublicKey) (*ssh.Permissions, error) {
			for _, a := range authorized {
				if bytes.Equal(a.Marshal(), key.Marshal()) {
					return &ssh.Permissions{}, nil
				}
			}
			return nil, errors.New("public key not authorized")
		},
	}
	ss.config.AddHostKey(hk)
	ss.ln, err = net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ss.wg.Add(1)
	go ss.accept()
	t.Cleanup(ss.Close)
	return ss
}

// URL returns the ssh:// URL of repository name.
func (ss *SSHServer) URL(name string) string {
	return "ssh://git@" + ss.ln.Addr().String() + "/" + name + ".git"
}

// Addr is the server's host:port.
func (ss *SSHServer) Addr() string { return ss.ln.Addr().String() }

// KnownHosts returns the known_hosts line for the server's host key, as a
// Secret's "known_hosts".
func (ss *SSHServer) KnownHosts() string {
	return knownhosts.Line([]string{knownhosts.Normalize(ss.ln.Addr().String())}, ss.hostKey.PublicKey()) + "\n"
}

// Close stops the server and drops its connections.
func (ss *SSHServer) Close() {
	ss.mu.Lock()
	if ss.closed {
		ss.mu.Unlock()
		return
	}
	ss.closed = true
	ss.ln.Close()
	for c := range ss.conns {
		c.Close()
	}
	ss.mu.Unlock()
	ss.wg.Wait()
}

func (ss *SSHServer) accept() {
	defer ss.wg.Done()
	for {
		c, err := ss.ln.Accept()
		if err != nil {
			return
		}
		ss.mu.Lock()
		if ss.closed {
			ss.mu.Unlock()
			c.Close()
			return
		}
		ss.conns[c] = true
		ss.wg.Add(1)
		ss.mu.Unlock()
		go func() {
			defer ss.wg.Done()
			ss.serve(c)
			ss.mu.Lock()
			delete(ss.conns, c)
			ss.mu.Unlock()
			c.Close()
		}()
	}
}

// serve handles one connection: session channels with one exec each.
func (ss *SSHServer) serve(c net.Conn) {
	conn, chans, reqs, err := ssh.NewServerConn(c, ss.config)
	if err != nil {
		return
	}
	defer conn.Close()
	go ssh.DiscardRequests(reqs)
	var wg sync.WaitGroup
	for nc := range chans {
		if nc.ChannelType() != "session" {
			nc.Reject(ssh.UnknownChannelType, "only sessions")
			continue
		}
		ch, creqs, err := nc.Accept()
		if err != nil {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			ss.session(ch, creqs)
		}()
	}
	wg.Wait()
}

// session waits for the exec request and runs it.
func (ss *SSHServer) session(ch ssh.Channel, reqs <-chan *ssh.Request) {
	defer ch.Close()
	for req := range reqs {
		if req.Type != "exec" {
			// env (GIT_PROTOCOL), pty-req and the like: not needed.
			if req.WantReply {
				req.Reply(false, nil)
			}
			continue
		}
		var payload struct{ Command string }
		if err := ssh.Unmarshal(req.Payload, &payload); err != nil {
			req.Reply(false, nil)
			return
		}
		cmd, err := ss.command(payload.Command)
		if err != nil {
			req.Reply(false, nil)
			fmt.Fprintln(ch.Stderr(), err)
			exitStatus(ch, 128)
			return
		}
		req.Reply(true, nil)
		ss.mu.Lock()
		ss.requests++
		ss.mu.Unlock()
		cmd.Stdin, cmd.Stdout, cmd.Stderr = ch, ch, ch.Stderr()
		status := 0
		if err := cmd.Run(); err != nil {
			status = 1
			var ee *exec.ExitError
			if errors.As(err, &ee) {
				status = ee.ExitCode()
			}
		}
		exitStatus(ch, status)
		return
	}
}

// command maps "git-upload-pack '/name.git'" (or git-receive-pack) to git
// run on the repository under the server's root; nothing else runs.
func (ss *SSHServer) command(line string) (*exec.Cmd, error) {
	verb, arg, ok := strings.Cut(strings.TrimSpace(line), " ")
	if !ok || (verb != "git-upload-pack" && verb != "git-receive-pack") {
		return nil, fmt.Errorf("only git-upload-pack and git-receive-pack are served, not %q", line)
	}
	repo := strings.Trim(strings.TrimSpace(arg), `'"`)
	repo = strings.TrimPrefix(path.Clean("/"+repo), "/")
	if repo == "" || strings.Contains(repo, "/") || !strings.HasSuffix(repo, ".git") {
		return nil, fmt.Errorf("no repository %q", arg)
	}
	dir := filepath.Join(ss.srv.root, repo)
	if _, err := os.Stat(dir); err != nil {
		return nil, fmt.Errorf("no repository %q", arg)
	}
	cmd := exec.Command("git", strings.TrimPrefix(verb, "git-"), dir)
	cmd.Env = append(os.Environ(), "GIT_CONFIG_NOSYSTEM=1", "HOME="+os.TempDir())
	return cmd, nil
}

// Requests is how many git commands the server ran.
func (ss *SSHServer) Requests() int64 {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	return ss.requests
}

func exitStatus(ch ssh.Channel, status int) {
	b := make([]byte, 4)
	binary.BigEndian.PutUint32(b, uint32(status))
	_, _ = ch.SendRequest("exit-status", false, b)
}
