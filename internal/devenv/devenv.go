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

// Package devenv runs Palisade's whole system on one machine: a local
// control plane (kube-apiserver and etcd from bin/), a Git server on
// loopback, the manager and the agent as processes, and workloads made of
// network namespaces registered as Pods. `make run` and the e2e suite are
// built on it.
package devenv

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/cgi"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	v1 "github.com/palisade-dev/palisade/api/v1alpha1"
	"github.com/palisade-dev/palisade/internal/testenv"
)

// ControlPlane is a kube-apiserver and etcd with their state under Dir.
type ControlPlane struct {
	Dir        string
	Config     *rest.Config
	Client     client.Client
	Kubeconfig string // path of an admin kubeconfig
	env        *envtest.Environment
}

// StartControlPlane starts kube-apiserver and etcd from bin/ with their
// data under dir (emptied first) and installs the CRDs in crdDir.
func StartControlPlane(dir, crdDir string) (*ControlPlane, error) {
	assets, err := testenv.AssetsDir()
	if err != nil {
		return nil, fmt.Errorf("kube-apiserver and etcd not found (run `make envtest-bins`): %w", err)
	}
	if err := os.RemoveAll(dir); err != nil {
		return nil, err
	}
	for _, d := range []string{"etcd", "apiserver"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o700); err != nil {
			return nil, err
		}
	}
	env := &envtest.Environment{
		BinaryAssetsDirectory:    assets,
		CRDDirectoryPaths:        []string{crdDir},
		ErrorIfCRDPathMissing:    true,
		ControlPlaneStartTimeout: 2 * time.Minute,
	}
	env.ControlPlane.Etcd = &envtest.Etcd{DataDir: filepath.Join(dir, "etcd")}
	env.ControlPlane.APIServer = &envtest.APIServer{CertDir: filepath.Join(dir, "apiserver")}
	cfg, err := env.Start()
	if err != nil {
		env.Stop()
		return nil, fmt.Errorf("start control plane: %w", err)
	}
	cp := &ControlPlane{Dir: dir, Config: cfg, env: env}
	user, err := env.AddUser(envtest.User{Name: "palisade-admin", Groups: []string{"system:masters"}}, cfg)
	if err != nil {
		cp.Stop()
		return nil, fmt.Errorf("admin user: %w", err)
	}
	kc, err := user.KubeConfig()
	if err != nil {
		cp.Stop()
		return nil, err
	}
	cp.Kubeconfig = filepath.Join(dir, "kubeconfig")
	if err := os.WriteFile(cp.Kubeconfig, kc, 0o600); err != nil {
		cp.Stop()
		return nil, err
	}
	s := testenv.Scheme()
	if err := v1.AddToScheme(s); err != nil {
		cp.Stop()
		return nil, err
	}
	if cp.Client, err = client.New(cfg, client.Options{Scheme: s}); err != nil {
		cp.Stop()
		return nil, err
	}
	return cp, nil
}

// Stop stops the API server and etcd.
func (cp *ControlPlane) Stop() error { return cp.env.Stop() }

// GitServer serves the bare repositories under Root over plain HTTP on
// loopback with git's own http-backend, pushes allowed.
type GitServer struct {
	Root string
	URL  string // http://127.0.0.1:port
	srv  *http.Server
}

// StartGitServer serves root on a free loopback port.
func StartGitServer(root string) (*GitServer, error) {
	out, err := exec.Command("git", "--exec-path").Output()
	if err != nil {
		return nil, fmt.Errorf("git is not installed: %w", err)
	}
	backend := filepath.Join(strings.TrimSpace(string(out)), "git-http-backend")
	if _, err := os.Stat(backend); err != nil {
		return nil, fmt.Errorf("git http-backend: %w", err)
	}
	if err := os.MkdirAll(root, 0o755); err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	g := &GitServer{Root: root, URL: "http://" + ln.Addr().String()}
	g.srv = &http.Server{Handler: &cgi.Handler{Path: backend,
		Env: []string{"GIT_PROJECT_ROOT=" + root, "GIT_HTTP_EXPORT_ALL=1"}}, ReadHeaderTimeout: 10 * time.Second}
	go g.srv.Serve(ln)
	return g, nil
}

// Close stops the server.
func (g *GitServer) Close() error { return g.srv.Close() }

// RepoURL is the clone URL of repository name.
func (g *GitServer) RepoURL(name string) string { return g.URL + "/" + name + ".git" }

// Repo is a working copy that pushes to the server.
type Repo struct {
	Dir string
}

// InitRepo creates the bare repository name, and a working copy of it in
// workDir seeded with the files of seedDir, committed and pushed to main.
func (g *GitServer) InitRepo(name, workDir, seedDir string) (*Repo, error) {
	bare := filepath.Join(g.Root, name+".git")
	if err := git("", "init", "--quiet", "--bare", "--initial-branch=main", bare); err != nil {
		return nil, err
	}
	if err := git(bare, "config", "http.receivepack", "true"); err != nil {
		return nil, err
	}
	os.RemoveAll(workDir)
	if err := git("", "init", "--quiet", "--initial-branch=main", workDir); err != nil {
		return nil, err
	}
	r := &Repo{Dir: workDir}
	for _, kv := range [][2]string{{"user.name", "Palisade Demo"}, {"user.email", "demo@palisade.dev"}, {"commit.gpgsign", "false"}} {
		if err := git(workDir, "config", kv[0], kv[1]); err != nil {
			return nil, err
		}
	}
	if err := git(workDir, "remote", "add", "origin", g.RepoURL(name)); err != nil {
		return nil, err
	}
	if seedDir != "" {
		if err := os.CopyFS(workDir, os.DirFS(seedDir)); err != nil {
			return nil, fmt.Errorf("seed %s: %w", workDir, err)
		}
	}
	if _, err := r.CommitAll("seed from " + seedDir); err != nil {
		return nil, err
	}
	return r, nil
}

// WriteFile writes a file of the working copy.
func (r *Repo) WriteFile(path, content string) error {
	p := filepath.Join(r.Dir, path)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	return os.WriteFile(p, []byte(content), 0o644)
}

// CommitAll commits every change and pushes; it returns the commit hash.
func (r *Repo) CommitAll(msg string) (string, error) {
	if err := git(r.Dir, "add", "-A"); err != nil {
		return "", err
	}
	if err := git(r.Dir, "commit", "--quiet", "--allow-empty", "-m", msg); err != nil {
		return "", err
	}
	if err := git(r.Dir, "push", "--quiet", "--set-upstream", "origin", "main"); err != nil {
		return "", err
	}
	out, err := exec.Command("git", "-C", r.Dir, "rev-parse", "HEAD").Output()
	return strings.TrimSpace(string(out)), err
}

func git(dir string, args ...string) error {
	if dir != "" {
		args = append([]string{"-C", dir}, args...)
	}
	cmd := exec.Command("git", args...)
	cmd.Env = append(os.Environ(), "GIT_TERMINAL_PROMPT=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("git %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// Build builds the named commands (cmd/<name>) into dir.
func Build(repoRoot, dir string, names ...string) error {
	for _, n := range names {
		cmd := exec.Command("go", "build", "-o", filepath.Join(dir, n), "./cmd/"+n)
		cmd.Dir = repoRoot
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("go build ./cmd/%s: %v: %s", n, err, out)
		}
	}
	return nil
}

// Proc is a running program with its output in a log file.
type Proc struct {
	Name string
	Log  string
	cmd  *exec.Cmd
	done chan error
}

// Start runs bin with args, KUBECONFIG set, output appended to logPath.
func Start(name, bin, kubeconfig, logPath string, args ...string) (*Proc, error) {
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), "KUBECONFIG="+kubeconfig)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &Proc{Name: name, Log: logPath, cmd: cmd, done: make(chan error, 1)}
	go func() { p.done <- cmd.Wait(); f.Close() }()
	return p, nil
}

// Pid is the process's ID.
func (p *Proc) Pid() int { return p.cmd.Process.Pid }

// Stop asks the process to stop (SIGTERM) and waits up to 30s, then kills
// it.
func (p *Proc) Stop() error {
	if p.cmd.ProcessState != nil {
		return nil
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		return nil
	case <-time.After(30 * time.Second):
		return p.Kill()
	}
}

// Kill kills the process at once (SIGKILL), as a crash or OOM would.
func (p *Proc) Kill() error {
	if err := p.cmd.Process.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return err
	}
	<-p.done
	return nil
}

// FreePort returns a free loopback TCP port.
func FreePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// WaitFor polls f every 200ms until it returns nil, ctx ends or timeout
// passes; the error names what was awaited and f's last error.
func WaitFor(ctx context.Context, timeout time.Duration, what string, f func() error) error {
	deadline := time.Now().Add(timeout)
	for {
		err := f()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("waiting for %s: %w", what, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// PinDir returns a fresh directory on a bpffs for an agent's pins: a new
// directory under /sys/fs/bpf when that is a bpffs, else a bpffs mounted
// at fallback (an empty directory it creates). Either outlives the agent
// process, as /sys/fs/bpf does on a node. cleanup removes the pins.
func PinDir(fallback string) (dir string, cleanup func() error, err error) {
	var st unix.Statfs_t
	if err := unix.Statfs("/sys/fs/bpf", &st); err == nil && st.Type == unix.BPF_FS_MAGIC {
		d, err := os.MkdirTemp("/sys/fs/bpf", "palisade-")
		if err != nil {
			return "", nil, err
		}
		return filepath.Join(d, "palisade"), func() error { return os.RemoveAll(d) }, nil
	}
	if err := os.MkdirAll(fallback, 0o700); err != nil {
		return "", nil, err
	}
	if err := unix.Mount("bpf", fallback, "bpf", 0, ""); err != nil {
		return "", nil, fmt.Errorf("no bpffs at /sys/fs/bpf and cannot mount one at %s: %w", fallback, err)
	}
	return filepath.Join(fallback, "palisade"), func() error { return unix.Unmount(fallback, unix.MNT_DETACH) }, nil
}
